//! The HTTP side of remote keys: GET with a size limit, `Cache-Control: max-age`, OpenID
//! Connect discovery, and the JWK set it yields.

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::options::Location;
use super::state::RemoteKeys;
use crate::keys::jwk::{parse_jwks, JwksError, JwksOrigin};
use crate::keys::KeySet;

/// Why a fetch failed (for logs and counters; never shown to clients).
#[derive(Debug)]
pub(super) enum FetchError {
    Http(&'static str),
    Status(u16),
    TooLarge,
    Timeout,
    Jwks(&'static str),
    Discovery(&'static str),
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchError::Http(s) => write!(f, "request failed: {s}"),
            FetchError::Status(s) => write!(f, "HTTP status {s}"),
            FetchError::TooLarge => f.write_str("response larger than the limit"),
            FetchError::Timeout => f.write_str("timed out"),
            FetchError::Jwks(s) => write!(f, "bad JWK set: {s}"),
            FetchError::Discovery(s) => write!(f, "bad discovery document: {s}"),
        }
    }
}

impl FetchError {
    pub(super) fn kind(&self) -> &'static str {
        match self {
            FetchError::Http(_) => "connect",
            FetchError::Status(_) => "status",
            FetchError::TooLarge => "too_large",
            FetchError::Timeout => "timeout",
            FetchError::Jwks(_) => "jwks",
            FetchError::Discovery(_) => "discovery",
        }
    }
}

impl RemoteKeys {
    pub(super) async fn fetch_set(&self, rediscover: bool) -> Result<(KeySet, i64), FetchError> {
        let url = self.jwks_location(rediscover).await?;
        let (body, max_age) = self.get(&url).await?;
        let parsed = parse_jwks(&body, JwksOrigin::Remote).map_err(|e| {
            FetchError::Jwks(match e {
                JwksError::NotJson => "not a JSON JWK set",
                JwksError::TooMany => "more than 1000 keys",
                JwksError::Empty => "no usable signature key",
                JwksError::DuplicateKid => "duplicate kid",
            })
        })?;
        self.stats.skipped.store(parsed.skipped, Ordering::Relaxed);
        let set = KeySet::from_keys(parsed.keys, self.allowed)
            .map_err(|_| FetchError::Jwks("duplicate kid"))?;
        if set.len() == 0 {
            return Err(FetchError::Jwks("no key for an allowed algorithm"));
        }
        Ok((set, self.ttl(max_age)))
    }

    /// The URL of the JWK set. With OIDC, discovery is read when no `jwks_uri` is known (first
    /// fetch, or the last fetch failed) and on every scheduled refresh (`rediscover`); a
    /// scheduled refresh whose discovery fails falls back to the `jwks_uri` of the last good
    /// fetch.
    async fn jwks_location(&self, rediscover: bool) -> Result<String, FetchError> {
        let issuer = match &self.options.location {
            Location::Jwks(url) => return Ok(url.clone()),
            Location::Oidc(issuer) => issuer,
        };
        let known = self.jwks_uri.load_full();
        if let (Some(uri), false) = (&known, rediscover) {
            return Ok(String::clone(uri));
        }
        match self.discover(issuer).await {
            Ok(uri) => {
                if let Some(previous) = known.as_deref().filter(|k| **k != uri) {
                    tracing::info!(
                        target: "tower_token_auth::keys",
                        issuer = issuer.as_str(),
                        previous = previous.as_str(),
                        jwks_uri = uri.as_str(),
                        "OIDC discovery names a new jwks_uri"
                    );
                }
                self.jwks_uri.store(Some(Arc::new(uri.clone())));
                Ok(uri)
            }
            Err(e) => match known {
                Some(uri) => {
                    tracing::warn!(
                        target: "tower_token_auth::keys",
                        issuer = issuer.as_str(),
                        error = %e,
                        jwks_uri = uri.as_str(),
                        "OIDC discovery failed; fetching the last known jwks_uri"
                    );
                    Ok(String::clone(&uri))
                }
                None => Err(e),
            },
        }
    }

    async fn discover(&self, issuer: &str) -> Result<String, FetchError> {
        #[derive(serde::Deserialize)]
        struct Discovery {
            issuer: String,
            jwks_uri: String,
        }
        let url = format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        );
        let (body, _) = self.get(&url).await?;
        let doc: Discovery = serde_json::from_slice(&body)
            .map_err(|_| FetchError::Discovery("not JSON with issuer and jwks_uri"))?;
        if doc.issuer != issuer {
            tracing::error!(
                target: "tower_token_auth::keys",
                configured = issuer,
                discovered = %crate::error::cap(&doc.issuer),
                "OIDC discovery names another issuer; check the configured issuer URL (trailing slash?)"
            );
            return Err(FetchError::Discovery("issuer does not match"));
        }
        let ok = doc.jwks_uri.starts_with("https://")
            || (self.options.allow_http && doc.jwks_uri.starts_with("http://"));
        if !ok {
            return Err(FetchError::Discovery("jwks_uri is not https"));
        }
        Ok(doc.jwks_uri)
    }

    async fn get(&self, url: &str) -> Result<(Vec<u8>, Option<i64>), FetchError> {
        let mut resp = self
            .client
            .get(url)
            .header(http::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    FetchError::Timeout
                } else {
                    FetchError::Http("connection or protocol error")
                }
            })?;
        let status = resp.status();
        if !status.is_success() {
            return Err(FetchError::Status(status.as_u16()));
        }
        let max = self.options.max_response_bytes;
        if resp.content_length().is_some_and(|n| n > max as u64) {
            return Err(FetchError::TooLarge);
        }
        let max_age = resp
            .headers()
            .get(http::header::CACHE_CONTROL)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_max_age);
        let mut body = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|_| FetchError::Http("body read failed"))?
        {
            if body.len() + chunk.len() > max {
                return Err(FetchError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok((body, max_age))
    }
}

/// `max-age=N` from a Cache-Control value (`no-store`/`no-cache` give 0).
fn parse_max_age(v: &str) -> Option<i64> {
    let mut age = None;
    for part in v.split(',') {
        let part = part.trim();
        if part.eq_ignore_ascii_case("no-store") || part.eq_ignore_ascii_case("no-cache") {
            return Some(0);
        }
        if let Some(n) = part
            .strip_prefix("max-age=")
            .or_else(|| part.strip_prefix("s-maxage="))
        {
            age = n.trim_matches('"').parse::<i64>().ok().or(age);
        }
    }
    age
}

#[cfg(test)]
mod tests {
    use super::parse_max_age;

    #[test]
    fn max_age_parsing() {
        assert_eq!(parse_max_age("public, max-age=3600"), Some(3600));
        assert_eq!(parse_max_age("no-store"), Some(0));
        assert_eq!(parse_max_age("public"), None);
        assert_eq!(parse_max_age("max-age=abc"), None);
    }
}
