//! The requirement: which scopes or roles, whether all or any of them, the check against
//! [`Grants`] and the `insufficient_scope` error it gives. Used by the
//! [`RequireScope`](super::RequireScope) layer and by the handler-side checks on [`Grants`]
//! ([`Grants::require_all`] and the others below).

use http::request::Parts;

use crate::error::{AuthError, Reason};
use crate::grants::Grants;

/// Whether a requirement names scopes or roles.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Scope,
    Role,
}

impl Kind {
    pub(super) fn label(self) -> &'static str {
        match self {
            Kind::Scope => "scope",
            Kind::Role => "role",
        }
    }
}

/// Whether every item or one of them must be granted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Mode {
    All,
    Any,
}

impl Mode {
    pub(super) fn label(self) -> &'static str {
        match self {
            Mode::All => "all",
            Mode::Any => "any",
        }
    }
}

/// A set of scopes or roles and how many of them must be granted.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Requirement {
    pub(super) kind: Kind,
    pub(super) mode: Mode,
    pub(super) items: Vec<String>,
}

impl Requirement {
    /// Each item may itself hold several space-separated names; duplicates are dropped.
    pub(super) fn new<I>(kind: Kind, mode: Mode, items: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let mut list: Vec<String> = Vec::new();
        for item in items {
            for name in item.as_ref().split_ascii_whitespace() {
                if !list.iter().any(|n| n == name) {
                    list.push(name.to_owned());
                }
            }
        }
        Requirement {
            kind,
            mode,
            items: list,
        }
    }

    fn granted(&self, grants: &Grants, name: &str) -> bool {
        match self.kind {
            Kind::Scope => grants.has_scope(name),
            Kind::Role => grants.has_role(name),
        }
    }

    pub(super) fn present(&self, grants: &Grants) -> usize {
        match self.kind {
            Kind::Scope => grants.scopes().len(),
            Kind::Role => grants.roles().len(),
        }
    }

    pub(super) fn check(&self, grants: &Grants) -> Result<(), AuthError> {
        let ok = match self.mode {
            Mode::All => self.items.iter().all(|n| self.granted(grants, n)),
            Mode::Any => self.items.iter().any(|n| self.granted(grants, n)),
        };
        if ok {
            Ok(())
        } else {
            Err(self.error())
        }
    }

    fn error(&self) -> AuthError {
        match self.kind {
            Kind::Scope if !self.items.is_empty() => {
                AuthError::insufficient_scope(self.items.join(" "))
            }
            _ => AuthError::new(Reason::InsufficientScope),
        }
    }

    /// One `tracing` event: reason, what was required, how many grants the token had. Never
    /// the token, nor the grants themselves.
    pub(super) fn log(&self, present: usize, err: &AuthError, parts: &Parts) {
        tracing::info!(
            target: "tower_token_auth",
            reason = err.reason().code(),
            status = err.status().as_u16(),
            kind = self.kind.label(),
            mode = self.mode.label(),
            required = %self.items.join(" "),
            present,
            method = parts.method.as_str(),
            path = parts.uri.path(),
            "token lacks required {}", self.kind.label()
        );
    }
}

/// Handler-side checks. With feature `axum`, [`Grants`] is an extractor and the returned
/// [`AuthError`] is a response, so a handler can write `grants.require_all([..])?`.
impl Grants {
    /// `Ok` if the token grants **every** one of these scopes; otherwise an
    /// `insufficient_scope` error naming them (403, `scope="…"` in the challenge).
    ///
    /// ```
    /// use tower_token_auth::{AuthError, Grants};
    ///
    /// async fn create_order(grants: Grants) -> Result<&'static str, AuthError> {
    ///     grants.require_all(["orders:write"])?;
    ///     Ok("created")
    /// }
    ///
    /// let grants = Grants::new(["orders:read"], Vec::<String>::new());
    /// let err = grants.require_all(["orders:read", "orders:write"]).unwrap_err();
    /// assert_eq!(err.status(), http::StatusCode::FORBIDDEN);
    /// assert_eq!(err.required_scopes(), Some("orders:read orders:write"));
    /// ```
    ///
    /// # Errors
    ///
    /// `insufficient_scope` when a scope is missing.
    pub fn require_all<I>(&self, scopes: I) -> Result<(), AuthError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        Requirement::new(Kind::Scope, Mode::All, scopes).check(self)
    }

    /// `Ok` if the token grants **at least one** of these scopes; otherwise an
    /// `insufficient_scope` error naming them.
    ///
    /// ```
    /// use tower_token_auth::Grants;
    ///
    /// let grants = Grants::new(["orders:admin"], Vec::<String>::new());
    /// assert!(grants.require_any(["orders:write", "orders:admin"]).is_ok());
    /// assert!(grants.require_any(["billing:read"]).is_err());
    /// ```
    ///
    /// # Errors
    ///
    /// `insufficient_scope` when none is granted.
    pub fn require_any<I>(&self, scopes: I) -> Result<(), AuthError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        Requirement::new(Kind::Scope, Mode::Any, scopes).check(self)
    }

    /// `Ok` if the token has **every** one of these roles; otherwise an `insufficient_scope`
    /// error (403, without `scope` attribute).
    ///
    /// ```
    /// use tower_token_auth::Grants;
    ///
    /// let grants = Grants::new(Vec::<String>::new(), ["admin", "finance"]);
    /// assert!(grants.require_all_roles(["admin", "finance"]).is_ok());
    /// assert!(grants.require_all_roles(["admin", "ops"]).is_err());
    /// ```
    ///
    /// # Errors
    ///
    /// `insufficient_scope` when a role is missing.
    pub fn require_all_roles<I>(&self, roles: I) -> Result<(), AuthError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        Requirement::new(Kind::Role, Mode::All, roles).check(self)
    }

    /// `Ok` if the token has **at least one** of these roles; otherwise an
    /// `insufficient_scope` error (403, without `scope` attribute).
    ///
    /// ```
    /// use tower_token_auth::Grants;
    ///
    /// let grants = Grants::new(Vec::<String>::new(), ["ops"]);
    /// assert!(grants.require_any_role(["admin", "ops"]).is_ok());
    /// assert!(grants.require_any_role(["admin"]).is_err());
    /// ```
    ///
    /// # Errors
    ///
    /// `insufficient_scope` when no role matches.
    pub fn require_any_role<I>(&self, roles: I) -> Result<(), AuthError>
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        Requirement::new(Kind::Role, Mode::Any, roles).check(self)
    }
}
