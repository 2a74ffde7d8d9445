//! What goes in and out of the issuer: the [`Login`] that tokens are issued for and the
//! [`TokenPair`] issued.

use std::fmt;

use serde_json::{Map, Value};

use super::IssueError;

/// Claims the issuer sets itself; a [`Login`] cannot set them.
const RESERVED: [&str; 12] = [
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "nbf",
    "jti",
    "client_id",
    "sid",
    "auth_time",
    "fam",
    "ext",
];

/// Who the tokens are for and what they carry: the subject, the `client_id` and your own
/// claims. The issuer sets the registered ones (`iss`, `sub`, `aud`, `exp`, `iat`, `nbf`,
/// `jti`, `client_id`, `sid`, `auth_time`); giving one of those with
/// [`claim`](Login::claim) makes [`TokenIssuer::issue`](super::TokenIssuer::issue) fail with
/// [`IssueError::ReservedClaim`].
///
/// ```
/// use tower_token_auth::issuer::Login;
///
/// let login = Login::new("alice")
///     .scope("orders:read orders:write")
///     .claim("roles", serde_json::json!(["admin"]))
///     .claim("name", "Alice");
/// # let _ = login;
/// ```
#[derive(Clone, Debug, PartialEq)]
#[must_use]
pub struct Login {
    pub(super) subject: String,
    pub(super) client_id: Option<String>,
    pub(super) claims: Map<String, Value>,
}

impl Login {
    /// Tokens for `subject` (the `sub` claim: a stable user id).
    pub fn new(subject: impl Into<String>) -> Self {
        Login {
            subject: subject.into(),
            client_id: None,
            claims: Map::new(),
        }
    }

    /// Sets `scope` (space-separated scopes).
    pub fn scope(self, scope: impl Into<String>) -> Self {
        self.claim("scope", scope.into())
    }

    /// Sets any other claim; kept through refreshes.
    pub fn claim(mut self, name: impl Into<String>, value: impl Into<Value>) -> Self {
        self.claims.insert(name.into(), value.into());
        self
    }

    /// Sets `client_id` (default: the issuer's, see
    /// [`TokenIssuerBuilder::client_id`](super::TokenIssuerBuilder::client_id)), e.g. `"web"` or
    /// `"ios"`. Kept through refreshes.
    pub fn client_id(mut self, client_id: impl Into<String>) -> Self {
        self.client_id = Some(client_id.into());
        self
    }

    /// The subject.
    pub fn subject(&self) -> &str {
        &self.subject
    }
}

/// An access token and a refresh token of one family.
///
/// Serializes as an OAuth 2.0 token response (RFC 6749 §5.1): `access_token`, `token_type`,
/// `expires_in`, `refresh_token`, plus `refresh_expires_in`. `Debug` does not show the
/// tokens.
#[derive(Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct TokenPair {
    /// The access token (`typ: at+jwt`).
    pub access_token: String,
    /// Always `"Bearer"`.
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// The refresh token (`typ: rt+jwt`).
    pub refresh_token: String,
    /// Seconds until the refresh token expires.
    pub refresh_expires_in: u64,
    /// The access token's `exp` (seconds since the epoch).
    #[serde(skip)]
    pub access_expires_at: i64,
    /// The refresh token's `exp` (seconds since the epoch).
    #[serde(skip)]
    pub refresh_expires_at: i64,
    /// The family id: the refresh token's `fam` and the access token's `sid`.
    #[serde(skip)]
    pub session_id: String,
}

impl fmt::Debug for TokenPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenPair")
            .field("access_token", &"[redacted]")
            .field("refresh_token", &"[redacted]")
            .field("expires_in", &self.expires_in)
            .field("refresh_expires_in", &self.refresh_expires_in)
            .field("session_id", &self.session_id)
            .finish()
    }
}

pub(super) fn check_reserved(login: &Login) -> Result<(), IssueError> {
    match login.claims.keys().find(|k| RESERVED.contains(&k.as_str())) {
        Some(name) => Err(IssueError::ReservedClaim(name.clone())),
        None => Ok(()),
    }
}
