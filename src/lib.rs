//! Bearer-token (JWT) authentication for any tower service: axum, tonic, plain hyper.
//!
//! [`TokenAuthLayer`] finds the token ([`source`]), verifies it with `jsonwebtoken` against the
//! configured [`Keys`] and every rule of the [`AuthConfig`], inserts the verified claims into
//! the request extensions ([`Claims`]), and answers each failure through a [`Responder`] with
//! the exact [`Reason`]: RFC 6750 `WWW-Authenticate` and an RFC 9457 problem body by default.
//!
//! # Quick start
//!
//! ```
//! use axum::{body::Body, routing::get, Router};
//! use http::{Request, StatusCode};
//! use tower::ServiceExt;
//! use tower_token_auth::{AuthConfig, AuthError, Claims, Keys, Reason, StandardClaims, TokenAuthLayer};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let key = tower_token_auth::testing::TestKey::es256();
//! # let pem = key.public_pem().unwrap();
//! let cfg = AuthConfig::builder()
//!     .keys(Keys::ec_pem(pem))
//!     .issuer("https://login.example.com")
//!     .audience("api://orders")
//!     .build()?;
//!
//! async fn me(claims: Claims<StandardClaims>) -> String {
//!     claims.sub.clone().unwrap_or_default()
//! }
//! let app = Router::new().route("/me", get(me)).layer(TokenAuthLayer::new(cfg));
//!
//! // Accepted: a valid token.
//! # let token = key.token().issuer("https://login.example.com").audience("api://orders").subject("alice").sign();
//! let req = Request::get("/me").header("authorization", format!("Bearer {token}")).body(Body::empty())?;
//! assert_eq!(app.clone().oneshot(req).await?.status(), StatusCode::OK);
//!
//! // Rejected: no token.
//! let res = app.oneshot(Request::get("/me").body(Body::empty())?).await?;
//! assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
//! assert_eq!(res.extensions().get::<AuthError>().unwrap().reason(), Reason::Missing);
//! # Ok(()) }
//! ```
//!
//! # Features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `aws-lc-rs` | yes | crypto backend on aws-lc-rs |
//! | `rust-crypto` | no | pure-Rust crypto backend; with both on, aws-lc-rs is used |
//! | `axum` | yes | [`Claims`] and [`Grants`] extractors, `IntoResponse` for [`AuthError`] |
//! | `cookie` | yes | `source::cookie` |
//! | `diagnose` | yes | [`diagnose()`](mod@diagnose): every problem of a token and its fix; the opt-in diagnosis in rejection bodies |
//! | `grpc` | yes | `GrpcResponder`: rejections as gRPC statuses, for tonic |
//! | `remote` | no | JWKS URLs and OpenID Connect discovery (`Keys::jwks_url`, `Keys::remote_oidc`) |
//! | `metrics` | no | counters and latency through the `metrics` facade ([`metrics`]) |
//! | `redis` | no | `revocation::RedisRevocationStore`: revocations shared by many instances |
//! | `issuer` | no | `issuer::TokenIssuer`: access and refresh tokens with rotation |
//! | `test-util` | no | `testing`: keys, signed tokens and a mock OpenID provider for tests |
//!
//! # The verified-token cache
//!
//! A token seen before skips the signature check, and a hit gives the verdict a full
//! validation would give at that instant: it requires byte equality with the verified token
//! (compared in constant time); an entry is only used while the key set that verified it is
//! current and usable (a remote key refresh re-verifies every token once; remote keys stale
//! past `max_stale` give `keys_unavailable` to cached tokens too); user checks run again on
//! every hit; `exp` and `nbf` are re-checked against the clock; revocation is still
//! consulted. Memory is bounded: a fixed table of [`DEFAULT_CACHE_CAPACITY`] (4096) slots per
//! layer, one token each, about 1–2 KiB per entry. Size it or turn it off with
//! [`TokenAuthLayer::cache_capacity`]; read its counters with [`TokenAuthLayer::cache_stats`].
//!
//! # How a request is checked, file by file
//!
//! | step | file |
//! |---|---|
//! | the layer, the service, the response future | `src/middleware/` (`layer.rs`, `service.rs`, `future.rs`) |
//! | find the token | `src/source.rs` |
//! | the pipeline: every step below, in order, for every entrance (layer, gRPC, [`AuthConfig::validate`], [`diagnose()`]) | `src/pipeline/mod.rs` (`view.rs`: what `diagnose` reads of it) |
//! | the verified-token cache | `src/cache.rs` |
//! | route the token to its issuer's trust (`iss`) | `src/config/trust.rs` |
//! | the compact JWS: segments and header | `src/jws.rs` |
//! | the key for the token: static sets, or remote keys behind one `resolve` call (fetch, join a fetch, or answer now) | `src/keys/set.rs`, `src/keys/remote/resolve.rs` |
//! | signature (`check_signature`), claims (`check_claims`), user checks | `src/validate.rs`, `src/crypto.rs` |
//! | revocation | `src/revocation/` |
//! | the answer: status, challenge, problem body | `src/response.rs`, `src/error/` |
//!
//! Imports go one way (`scripts/module-graph.py` lists the edges and fails on a cycle).
//!
//! # Where to read on
//!
//! - [`AuthConfigBuilder`]: every setting and its default.
//! - [`keys`]: which key verifies which token.
//! - [`source`]: where tokens are looked for.
//! - [`Reason`]: every rejection, its status and `WWW-Authenticate` error.
//! - [`response`]: the default response and how to build your own.
//! - [`scope`]: scopes and roles; [`revocation`]: revoked tokens; [`metadata`]: RFC 9728.
//! - [`diagnose`](mod@diagnose): every problem of a token and how to fix it.
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod binding;
mod cache;
mod claims;
pub mod clock;
mod config;
mod crypto;
#[cfg(feature = "diagnose")]
#[cfg_attr(docsrs, doc(cfg(feature = "diagnose")))]
pub mod diagnose;
mod error;
mod grants;
#[cfg(feature = "grpc")]
#[cfg_attr(docsrs, doc(cfg(feature = "grpc")))]
pub mod grpc;
#[cfg(feature = "remote")]
#[cfg_attr(docsrs, doc(cfg(feature = "remote")))]
pub mod introspection;
#[cfg(feature = "issuer")]
#[cfg_attr(docsrs, doc(cfg(feature = "issuer")))]
pub mod issuer;
mod jws;
pub mod keys;
pub mod metadata;
pub mod metrics;
mod middleware;
mod pipeline;
pub mod response;
pub mod revocation;
pub mod scope;
pub mod source;
#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub mod testing;
mod validate;

pub use cache::{CacheStats, DEFAULT_CACHE_CAPACITY};
#[cfg(feature = "axum")]
pub use claims::ClaimsRejection;
pub use claims::{Claims, StandardClaims};
pub use clock::{DEFAULT_LEEWAY, MAX_LEEWAY};
pub use config::{AuthConfig, AuthConfigBuilder, Issuer, DEFAULT_MAX_TOKEN_LEN};
#[cfg(feature = "diagnose")]
pub use diagnose::{diagnose, diagnose_with, DiagnoseOptions, Diagnosis, Finding};
pub use error::{AuthError, ClaimError, ConfigError, Problem, Reason, TokenFacts};
pub use grants::Grants;
#[cfg(feature = "grpc")]
pub use grpc::GrpcResponder;
pub use jsonwebtoken::Algorithm;
pub use keys::{KeyStatus, Keys};
pub use middleware::{ResponseFuture, TokenAuth, TokenAuthLayer};
pub use response::{responder_fn, DefaultResponder, Responder};
pub use scope::RequireScope;

/// The README's Rust examples, compiled as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
