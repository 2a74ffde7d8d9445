//! Grants: the scopes and roles of a verified token, and how they are read from its claims
//! (the extractor is with the claims', in `claims.rs`).

use std::fmt;
use std::sync::{Arc, OnceLock};

use serde_json::{Map, Value};

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
///     Grants::from_extensions(req.extensions()).is_some_and(|g| g.has_role("admin"))
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
