//! Where the token is found: the [`TokenSource`] trait and the built-in sources.
//!
//! | source | finds the token in | notes |
//! |---|---|---|
//! | [`bearer()`] (default) | `Authorization: Bearer <token>` | scheme case-insensitive; another scheme (e.g. `Basic`) counts as no token; two `Authorization` headers are `invalid_request` |
//! | [`header(name)`](header) | the whole value of a named header | two such headers are `invalid_request` |
//! | [`header_with_scheme(name, scheme)`](header_with_scheme) | `<name>: <scheme> <token>` | like `bearer()` on another header |
//! | [`cookie(name)`](fn@cookie) | a cookie (feature `cookie`) | all `Cookie` headers are read (HTTP/2 splits them) |
//! | [`query(name)`](query) | a query parameter | **risky**: URLs end up in access logs, proxies and browser history (RFC 6750 §2.3); opt in only where no other way exists (e.g. browser WebSocket upgrades) |
//!
//! Several sources are tried in the order given and **all** of them are asked: a token found
//! by two sources is `invalid_request` (RFC 6750 §2: a client must use one method only). An
//! empty token is `invalid_request` too.
//!
//! Your own source implements [`TokenSource`]:
//!
//! ```
//! use std::borrow::Cow;
//! use tower_token_auth::{source::TokenSource, AuthError};
//!
//! /// `X-Api-Key: <token>` where the header is set by a trusted gateway.
//! struct GatewayHeader;
//!
//! impl TokenSource for GatewayHeader {
//!     fn find<'r>(&self, parts: &'r http::request::Parts) -> Result<Option<Cow<'r, str>>, AuthError> {
//!         match parts.headers.get("x-api-key") {
//!             None => Ok(None),
//!             Some(v) => v
//!                 .to_str()
//!                 .map(|s| Some(Cow::Borrowed(s)))
//!                 .map_err(|_| AuthError::malformed("x-api-key is not ASCII")),
//!         }
//!     }
//!     fn name(&self) -> &'static str {
//!         "x-api-key"
//!     }
//! }
//! ```

use std::borrow::Cow;

use http::header::{HeaderName, AUTHORIZATION};
use http::request::Parts;

use crate::error::AuthError;
use crate::error::ConfigError;

/// A place a token can be found in a request.
///
/// Implementations return `Ok(None)` when the request does not carry a token there, the
/// token text when it does, and an error (usually
/// [`AuthError::invalid_request`]) when the request is ambiguous or broken. Error texts must
/// be fixed strings, never copied from the request.
pub trait TokenSource: Send + Sync + 'static {
    /// Looks for the token.
    ///
    /// # Errors
    ///
    /// An [`AuthError`] when the request carries the token in a way that must be refused.
    fn find<'r>(&self, parts: &'r Parts) -> Result<Option<Cow<'r, str>>, AuthError>;

    /// A short name for logs and diagnosis (e.g. `"authorization"`, `"cookie"`).
    fn name(&self) -> &'static str;

    /// Checks the source's own configuration; called by
    /// [`AuthConfigBuilder::build`](crate::AuthConfigBuilder::build). The default accepts.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming what to fix.
    fn check(&self) -> Result<(), ConfigError> {
        Ok(())
    }
}

fn check_token_name(name: &str) -> Result<(), ConfigError> {
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b';' && b != b'=')
    {
        return Err(ConfigError::InvalidSourceName(name.to_owned()));
    }
    Ok(())
}

/// `Authorization: Bearer <token>` (the default source).
pub fn bearer() -> Bearer {
    Bearer
}

/// The whole value of the header `name` is the token. An invalid header name is refused at
/// `build()`.
pub fn header(name: impl Into<String>) -> HeaderSource {
    HeaderSource::new(name.into(), None)
}

/// `<name>: <scheme> <token>`, the scheme compared case-insensitively; another scheme counts
/// as no token. An invalid header name is refused at `build()`.
pub fn header_with_scheme(name: impl Into<String>, scheme: impl Into<String>) -> HeaderSource {
    HeaderSource::new(name.into(), Some(scheme.into()))
}

/// The cookie `name`.
#[cfg(feature = "cookie")]
#[cfg_attr(docsrs, doc(cfg(feature = "cookie")))]
pub fn cookie(name: impl Into<String>) -> CookieSource {
    CookieSource { name: name.into() }
}

/// The query parameter `name`. See the module docs for why this is risky.
pub fn query(name: impl Into<String>) -> QuerySource {
    QuerySource { name: name.into() }
}

/// The `Authorization: Bearer` source; see [`bearer()`].
#[derive(Clone, Copy, Debug, Default)]
pub struct Bearer;

impl TokenSource for Bearer {
    fn find<'r>(&self, parts: &'r Parts) -> Result<Option<Cow<'r, str>>, AuthError> {
        find_in_header(
            parts,
            &AUTHORIZATION,
            Some("bearer"),
            "two Authorization headers",
        )
    }

    fn name(&self) -> &'static str {
        "authorization"
    }
}

/// `Authorization` with the `Bearer` and/or `DPoP` scheme: the default source when DPoP is
/// configured ([`AuthConfigBuilder::dpop`](crate::AuthConfigBuilder::dpop)).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Authorization {
    pub(crate) bearer: bool,
    pub(crate) dpop: bool,
}

impl TokenSource for Authorization {
    fn find<'r>(&self, parts: &'r Parts) -> Result<Option<Cow<'r, str>>, AuthError> {
        let twice = "two Authorization headers";
        if self.dpop {
            if let Some(token) = find_in_header(parts, &AUTHORIZATION, Some("dpop"), twice)? {
                return Ok(Some(token));
            }
        }
        if self.bearer {
            return find_in_header(parts, &AUTHORIZATION, Some("bearer"), twice);
        }
        Ok(None)
    }

    fn name(&self) -> &'static str {
        "authorization"
    }
}

/// A named header source; see [`header()`] and [`header_with_scheme()`].
#[derive(Clone, Debug)]
pub struct HeaderSource {
    raw: String,
    name: Option<HeaderName>,
    scheme: Option<String>,
}

impl HeaderSource {
    fn new(raw: String, scheme: Option<String>) -> Self {
        HeaderSource {
            name: HeaderName::try_from(raw.as_str()).ok(),
            raw,
            scheme,
        }
    }
}

impl TokenSource for HeaderSource {
    fn find<'r>(&self, parts: &'r Parts) -> Result<Option<Cow<'r, str>>, AuthError> {
        match &self.name {
            Some(name) => find_in_header(
                parts,
                name,
                self.scheme.as_deref(),
                "the token header was sent twice",
            ),
            None => Ok(None),
        }
    }

    fn check(&self) -> Result<(), ConfigError> {
        if self.name.is_none() {
            return Err(ConfigError::InvalidSourceName(self.raw.clone()));
        }
        match &self.scheme {
            Some(s) if s.is_empty() || !s.bytes().all(|b| b.is_ascii_graphic()) => {
                Err(ConfigError::InvalidSourceName(s.clone()))
            }
            _ => Ok(()),
        }
    }

    fn name(&self) -> &'static str {
        "header"
    }
}

fn find_in_header<'r>(
    parts: &'r Parts,
    name: &HeaderName,
    scheme: Option<&str>,
    twice: &'static str,
) -> Result<Option<Cow<'r, str>>, AuthError> {
    let mut values = parts.headers.get_all(name).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(AuthError::invalid_request(twice));
    }
    let raw = value.as_bytes();
    let token = match scheme {
        None => raw,
        Some(scheme) => {
            let (given, rest) = match raw.iter().position(|b| *b == b' ') {
                Some(i) => (&raw[..i], &raw[i..]),
                None => (raw, &raw[raw.len()..]),
            };
            if !given.eq_ignore_ascii_case(scheme.as_bytes()) {
                // Another scheme (Basic, Digest, ...) is not ours: no token.
                return Ok(None);
            }
            rest
        }
    };
    let token = token.trim_ascii();
    if token.is_empty() {
        return Err(AuthError::invalid_request("empty token"));
    }
    match std::str::from_utf8(token) {
        Ok(s) => Ok(Some(Cow::Borrowed(s))),
        Err(_) => Err(AuthError::malformed("token is not ASCII text")),
    }
}

/// A cookie source; see [`cookie()`].
#[cfg(feature = "cookie")]
#[cfg_attr(docsrs, doc(cfg(feature = "cookie")))]
#[derive(Clone, Debug)]
pub struct CookieSource {
    name: String,
}

#[cfg(feature = "cookie")]
impl TokenSource for CookieSource {
    fn find<'r>(&self, parts: &'r Parts) -> Result<Option<Cow<'r, str>>, AuthError> {
        let mut found: Option<Cow<'r, str>> = None;
        for value in parts.headers.get_all(http::header::COOKIE) {
            let Ok(text) = value.to_str() else {
                // A non-ASCII Cookie header may belong to someone else's cookie; skip it.
                continue;
            };
            for cookie in cookie::Cookie::split_parse(text).flatten() {
                if cookie.name() != self.name.as_str() {
                    continue;
                }
                let v = match cookie.value_raw() {
                    // RFC 6265: one optional pair of double quotes around the value.
                    Some(raw) => Cow::Borrowed(
                        raw.strip_prefix('"')
                            .and_then(|r| r.strip_suffix('"'))
                            .unwrap_or(raw),
                    ),
                    None => Cow::Owned(cookie.value().to_owned()),
                };
                match &found {
                    Some(prev) if *prev != v => {
                        return Err(AuthError::invalid_request(
                            "the token cookie was sent twice with different values",
                        ))
                    }
                    _ => found = Some(v),
                }
            }
        }
        match found {
            Some(v) if v.is_empty() => Err(AuthError::invalid_request("empty token")),
            other => Ok(other),
        }
    }

    fn name(&self) -> &'static str {
        "cookie"
    }

    fn check(&self) -> Result<(), ConfigError> {
        check_token_name(&self.name)
    }
}

/// A query parameter source; see [`query()`].
#[derive(Clone, Debug)]
pub struct QuerySource {
    name: String,
}

impl TokenSource for QuerySource {
    fn find<'r>(&self, parts: &'r Parts) -> Result<Option<Cow<'r, str>>, AuthError> {
        let Some(q) = parts.uri.query() else {
            return Ok(None);
        };
        let mut found: Option<Cow<'r, str>> = None;
        for (k, v) in form_urlencoded::parse(q.as_bytes()) {
            if k != self.name.as_str() {
                continue;
            }
            if found.is_some() {
                return Err(AuthError::invalid_request(
                    "the token query parameter was sent twice",
                ));
            }
            found = Some(v);
        }
        match found {
            Some(v) if v.is_empty() => Err(AuthError::invalid_request("empty token")),
            other => Ok(other),
        }
    }

    fn name(&self) -> &'static str {
        "query"
    }

    fn check(&self) -> Result<(), ConfigError> {
        check_token_name(&self.name)
    }
}

/// Asks every source; one token, or none, or an error.
pub(crate) fn find_token<'r>(
    sources: &[std::sync::Arc<dyn TokenSource>],
    parts: &'r Parts,
) -> Result<Option<(Cow<'r, str>, &'static str)>, AuthError> {
    let mut found: Option<(Cow<'r, str>, &'static str)> = None;
    for source in sources {
        match source.find(parts) {
            Ok(None) => {}
            Ok(Some(token)) => {
                if found.is_some() {
                    return Err(AuthError::invalid_request("a token was sent in two places"));
                }
                found = Some((token, source.name()));
            }
            Err(e) => return Err(e.with_source_label(source.name())),
        }
    }
    Ok(found)
}
