//! Scopes and roles: the [`RequireScope`] layer for routes and routers, [`Grants`] checks for
//! handlers.
//!
//! | file | what it holds |
//! |---|---|
//! | `requirement.rs` | what is required (scopes or roles, all or any), the check and its error |
//! | `layer.rs` | the tower layer, service and response future of [`RequireScope`] |
//!
//! [`TokenAuthLayer`](crate::TokenAuthLayer) puts the [`Grants`] of every accepted token (its
//! scopes from `scope` and `scp`, its roles from the configured claim path, see
//! [`AuthConfigBuilder::roles_claim`](crate::AuthConfigBuilder::roles_claim)) into the request
//! extensions. Two ways to require them:
//!
//! - **On a route or a router**: the layers built by [`RequireScope::all`],
//!   [`RequireScope::any`], [`RequireScope::all_roles`] and [`RequireScope::any_roles`] (one
//!   type for both: a missing role is answered as `insufficient_scope` too). They must sit
//!   *inside* the `TokenAuthLayer` (so the token is verified first): in axum, add them to the
//!   route (`post(h).layer(RequireScope::all([..]))`) or with `route_layer` on a router, and
//!   add `TokenAuthLayer` afterwards (the last `.layer` call is the outermost).
//! - **In the handler**: extract [`Grants`] (feature `axum`) and call
//!   [`Grants::require_all`] / [`Grants::require_any`] (or the `_roles` / `_role` variants);
//!   the `AuthError` they return is an axum response.
//!
//! A token that lacks what is required is answered with 403 and reason `insufficient_scope`:
//!
//! ```text
//! HTTP/1.1 403 Forbidden
//! WWW-Authenticate: Bearer error="insufficient_scope", error_description="The token lacks the scope this resource requires.", scope="orders:write orders:admin"
//! Content-Type: application/problem+json
//!
//! {"type":"…#variant.InsufficientScope","title":"Insufficient scope","status":403,
//!  "detail":"The token lacks the scope this resource requires.","error":"insufficient_scope",
//!  "reason":"insufficient_scope","scope":"orders:write orders:admin"}
//! ```
//!
//! The `scope` attribute names every scope of the requirement (for an any-of requirement, the
//! alternatives). Missing **roles** are answered the same way but without `scope`: roles are
//! not OAuth scopes a client could ask its authorization server for, and naming them would
//! describe the authorization model to any caller. The required roles are in the log event.
//!
//! ```
//! use axum::{routing::{get, post}, Router};
//! use tower_token_auth::{AuthConfig, AuthError, Grants, Keys, RequireScope, TokenAuthLayer};
//!
//! # fn main() -> Result<(), tower_token_auth::ConfigError> {
//! let cfg = AuthConfig::builder()
//!     .keys(Keys::hmac(b"0123456789abcdef0123456789abcdef"))
//!     .issuer("https://issuer.example")
//!     .audience("api")
//!     .roles_claim("realm_access.roles")
//!     .build()?;
//!
//! async fn list() -> &'static str { "orders" }
//! async fn create() -> &'static str { "created" }
//! async fn refund(grants: Grants) -> Result<&'static str, AuthError> {
//!     grants.require_any(["orders:refund", "orders:admin"])?;
//!     Ok("refunded")
//! }
//!
//! let admin = Router::new()
//!     .route("/admin/stats", get(list))
//!     .route_layer(RequireScope::any_roles(["admin", "ops"]));
//!
//! let app: Router = Router::new()
//!     .route("/orders", get(list).layer(RequireScope::all(["orders:read"])))
//!     .route("/orders/new", post(create).layer(RequireScope::all(["orders:read", "orders:write"])))
//!     .route("/orders/refund", post(refund))
//!     .merge(admin)
//!     .layer(TokenAuthLayer::new(cfg)); // outermost: runs first
//! # Ok(()) }
//! ```

mod layer;
mod requirement;

pub use crate::grants::Grants;
pub use layer::{RequireScope, RequireScopeFuture, RequireScopeService};
