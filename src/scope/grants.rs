//! Grants: the scopes and roles of a verified token, how they are read from its claims, and
//! the axum extractor.

use std::fmt;
use std::sync::{Arc, OnceLock};

use serde_json::{Map, Value};

use crate::error::{AuthError, Reason};

/// The scopes and roles of the verified token, put in the request extensions by the layer for
/// [`RequireScope`](super::RequireScope) and handler-side checks.
///
/// Scopes come from `scope` (space-separated) and `scp` (a string or an array); roles from the
/// claim path set with [`AuthConfigBuilder::roles_claim`](crate::AuthConfigBuilder::roles_claim)
/// (default `roles`), e.g. `realm_access.roles` for Keycloak or `groups`. Cheap to clone
/// (shared). Outside axum, read them from the request extensions:
///
/// ```
/// use tower_token_auth::Grants;
///
/// fn is_admin(req: &http::Request<()>) -> bool {
///     req.extensions().get::<Grants>().is_some_and(|g| g.has_role("admin"))
/// }
/// # assert!(!is_admin(&http::Request::new(())));
/// ```
#[derive(Clone)]
pub struct Grants {
    inner: Arc<GrantsInner>,
}

/// The grants, read from the claims on first use (most requests never ask), then kept: a
/// cached token's grants are read once for all its hits.
struct GrantsInner {
    read: OnceLock<Read>,
    /// The verified claims (JSON) and the roles claim path, to read them from.
    claims: Vec<u8>,
    roles_path: Arc<[String]>,
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Read {
    scopes: Vec<String>,
    roles: Vec<String>,
}

impl Default for Grants {
    fn default() -> Self {
        Grants::new(Vec::<String>::new(), Vec::<String>::new())
    }
}

impl fmt::Debug for Grants {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let read = self.read();
        f.debug_struct("Grants")
            .field("scopes", &read.scopes)
            .field("roles", &read.roles)
            .finish()
    }
}

impl PartialEq for Grants {
    fn eq(&self, other: &Self) -> bool {
        self.read() == other.read()
    }
}

impl Eq for Grants {}

impl Grants {
    /// Grants with these scopes and roles (for tests and checks outside the layer).
    ///
    /// ```
    /// use tower_token_auth::Grants;
    ///
    /// let grants = Grants::new(["orders:read"], ["admin"]);
    /// assert_eq!(grants.scopes(), ["orders:read"]);
    /// assert_eq!(grants.roles(), ["admin"]);
    /// ```
    pub fn new(
        scopes: impl IntoIterator<Item = impl Into<String>>,
        roles: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        let read = Read {
            scopes: scopes.into_iter().map(Into::into).collect(),
            roles: roles.into_iter().map(Into::into).collect(),
        };
        Grants {
            inner: Arc::new(GrantsInner {
                read: OnceLock::from(read),
                claims: Vec::new(),
                roles_path: Arc::from([]),
            }),
        }
    }

    /// The grants of verified claims (the payload JSON), read on first use.
    pub(crate) fn of_claims(claims: Vec<u8>, roles_path: Arc<[String]>) -> Self {
        Grants {
            inner: Arc::new(GrantsInner {
                read: OnceLock::new(),
                claims,
                roles_path,
            }),
        }
    }

    fn read(&self) -> &Read {
        self.inner.read.get_or_init(|| {
            // Verified claims: a JSON object with unique names (the claims step checked).
            let claims: Map<String, Value> =
                serde_json::from_slice(&self.inner.claims).unwrap_or_default();
            Self::from_claims(&claims, &self.inner.roles_path)
        })
    }

    /// Reads the grants from verified claims: scopes from `scope` and `scp`, roles from the
    /// claim path (`roles` when empty).
    fn from_claims(claims: &Map<String, Value>, roles_path: &[String]) -> Read {
        // RFC 6749 §3.3: scopes are separated by spaces (%x20) only; a tab or a newline is part
        // of a (then unknown) scope, not a separator. Array entries are taken whole.
        let words = |s: &str| {
            s.split(' ')
                .filter(|w| !w.is_empty())
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        let mut scopes = Vec::new();
        if let Some(Value::String(s)) = claims.get("scope") {
            scopes.extend(words(s));
        }
        match claims.get("scp") {
            Some(Value::String(s)) => scopes.extend(words(s)),
            Some(Value::Array(list)) => scopes.extend(
                list.iter()
                    .filter_map(Value::as_str)
                    .filter(|w| !w.is_empty())
                    .map(str::to_owned),
            ),
            _ => {}
        }
        let mut node = Some(claims.get(roles_path.first().map(String::as_str).unwrap_or("roles")));
        for seg in roles_path.iter().skip(1) {
            node = node.map(|n| n.and_then(|v| v.get(seg.as_str())));
        }
        let roles = match node.flatten() {
            Some(Value::String(s)) => words(s),
            Some(Value::Array(list)) => list
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            _ => Vec::new(),
        };
        Read { scopes, roles }
    }

    /// The scopes, from `scope` then `scp`.
    ///
    /// ```
    /// use tower_token_auth::Grants;
    ///
    /// assert_eq!(Grants::new(["a", "b"], Vec::<String>::new()).scopes(), ["a", "b"]);
    /// ```
    pub fn scopes(&self) -> &[String] {
        &self.read().scopes
    }

    /// The roles, from the configured claim path.
    ///
    /// ```
    /// use tower_token_auth::Grants;
    ///
    /// assert_eq!(Grants::new(Vec::<String>::new(), ["ops"]).roles(), ["ops"]);
    /// ```
    pub fn roles(&self) -> &[String] {
        &self.read().roles
    }

    /// `true` if the token has this scope.
    ///
    /// ```
    /// use tower_token_auth::Grants;
    ///
    /// let grants = Grants::new(["orders:read"], ["orders:write"]);
    /// assert!(grants.has_scope("orders:read"));
    /// assert!(!grants.has_scope("orders:write")); // a role, not a scope
    /// ```
    pub fn has_scope(&self, scope: &str) -> bool {
        self.read().scopes.iter().any(|s| s == scope)
    }

    /// `true` if the token has this role.
    ///
    /// ```
    /// use tower_token_auth::Grants;
    ///
    /// let grants = Grants::new(["admin"], ["ops"]);
    /// assert!(grants.has_role("ops"));
    /// assert!(!grants.has_role("admin")); // a scope, not a role
    /// ```
    pub fn has_role(&self, role: &str) -> bool {
        self.read().roles.iter().any(|r| r == role)
    }
}

/// The error for a request without [`Grants`]: the token error that `anonymous_on_invalid`
/// let through, or `missing`.
pub(super) fn unauthenticated(ext: &http::Extensions) -> AuthError {
    ext.get::<AuthError>()
        .cloned()
        .unwrap_or_else(|| AuthError::new(Reason::Missing))
}

#[cfg(feature = "axum")]
mod extract {
    use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
    use http::request::Parts;

    use super::{unauthenticated, Grants};
    use crate::claims::LayerMarker;
    use crate::error::AuthError;

    /// `Grants` as an axum extractor: the scopes and roles of the verified token.
    ///
    /// Without grants (no token behind an optional `TokenAuthLayer`, or no `TokenAuthLayer`
    /// at all) it rejects with a 401 `missing` [`AuthError`] (behind
    /// [`anonymous_on_invalid`](crate::TokenAuthLayer::anonymous_on_invalid), with the
    /// token's error). `Option<Grants>` is `None` instead.
    ///
    /// ```
    /// use axum::{routing::get, Router};
    /// use tower_token_auth::{AuthError, Grants};
    ///
    /// async fn orders(grants: Grants) -> Result<String, AuthError> {
    ///     grants.require_all(["orders:read"])?;
    ///     Ok(format!("{} scopes", grants.scopes().len()))
    /// }
    ///
    /// async fn landing(grants: Option<Grants>) -> &'static str {
    ///     match grants {
    ///         Some(g) if g.has_role("admin") => "hello admin",
    ///         Some(_) => "hello user",
    ///         None => "hello stranger",
    ///     }
    /// }
    ///
    /// let app: Router = Router::new().route("/orders", get(orders)).route("/", get(landing));
    /// ```
    #[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
    impl<S: Send + Sync> FromRequestParts<S> for Grants {
        type Rejection = AuthError;

        async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, AuthError> {
            if let Some(g) = parts.extensions.get::<Grants>() {
                return Ok(g.clone());
            }
            if parts.extensions.get::<LayerMarker>().is_none() {
                tracing::error!(
                    target: "tower_token_auth",
                    "Grants was extracted but no TokenAuthLayer ran for this route: add .layer(TokenAuthLayer::new(config)) to the router or route"
                );
            }
            Err(unauthenticated(&parts.extensions))
        }
    }

    /// `Option<Grants>`: `None` when the request carries no verified token.
    #[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
    impl<S: Send + Sync> OptionalFromRequestParts<S> for Grants {
        type Rejection = std::convert::Infallible;

        async fn from_request_parts(
            parts: &mut Parts,
            _state: &S,
        ) -> Result<Option<Self>, Self::Rejection> {
            Ok(parts.extensions.get::<Grants>().cloned())
        }
    }
}
