//! One introspection call: discovery when needed, the POST with client authentication, and
//! the strict reading of the answer (an attacker may control the network in between, or the
//! endpoint may misbehave: nothing it sends is trusted beyond what RFC 7662 says).

use std::fmt;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::Value;

use super::state::{Answer, Introspector};
use crate::jws;
use crate::keys::{Lookup, Unresolved};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Why a call gave no answer (logs and metrics only; clients see
/// `introspection_unavailable`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CallError {
    Connect,
    Timeout,
    Status(u16),
    TooLarge,
    Garbage(&'static str),
    Discovery(&'static str),
    Busy,
}

impl CallError {
    pub(crate) fn kind(self) -> &'static str {
        match self {
            CallError::Connect => "connect",
            CallError::Timeout => "timeout",
            CallError::Status(_) => "status",
            CallError::TooLarge => "too_large",
            CallError::Garbage(_) => "garbage",
            CallError::Discovery(_) => "discovery",
            CallError::Busy => "busy",
        }
    }
}

impl CallError {
    /// The `Retry-After` seconds of the 503: a second when calls are at their bound, else
    /// two (the endpoint is failing; a retry soon may find it back).
    pub(crate) fn retry_after(self) -> u64 {
        match self {
            CallError::Busy => 1,
            _ => 2,
        }
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Connect => f.write_str("connection or protocol error"),
            CallError::Timeout => f.write_str("timed out"),
            CallError::Status(s) => write!(f, "HTTP status {s}"),
            CallError::TooLarge => f.write_str("answer larger than the limit"),
            CallError::Garbage(s) => write!(f, "bad answer: {s}"),
            CallError::Discovery(s) => write!(f, "discovery failed: {s}"),
            CallError::Busy => f.write_str("too many introspections in flight"),
        }
    }
}

impl Introspector {
    /// Asks the endpoint about `token`: the whole call (discovery included) bounded by the
    /// timeout.
    pub(super) async fn call(&self, token: &str) -> Result<Answer, CallError> {
        let timeout = self.options.timeout;
        match tokio::time::timeout(timeout, self.call_inner(token)).await {
            Ok(result) => result,
            Err(_) => Err(CallError::Timeout),
        }
    }

    async fn call_inner(&self, token: &str) -> Result<Answer, CallError> {
        let endpoint = self.endpoint().await?;
        let Some(client) = &self.options.client else {
            return Err(CallError::Connect);
        };
        // Built in a block: the serializer is not `Send` and must not live across an await.
        let form = {
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("token", token);
            form.append_pair("token_type_hint", "access_token");
            if client.post {
                form.append_pair("client_id", &client.id);
                form.append_pair("client_secret", &client.secret);
            }
            form.finish()
        };
        let mut request = self.http.post(endpoint.as_str()).header(
            http::header::CONTENT_TYPE,
            "application/x-www-form-urlencoded",
        );
        if !client.post {
            // RFC 6749 §2.3.1: the id and secret are form-encoded before Basic encoding.
            let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            let basic = STANDARD.encode(format!("{}:{}", enc(&client.id), enc(&client.secret)));
            request = request.header(http::header::AUTHORIZATION, format!("Basic {basic}"));
        }
        let result = async {
            if self.options.jwt_response {
                let (body, media) = self.read(request.body(form), JWT_ANSWER).await?;
                if !media.is_some_and(|m| is_media_type(&m, JWT_ANSWER)) {
                    return Err(CallError::Garbage(
                        "not an application/token-introspection+jwt answer",
                    ));
                }
                self.verify_signed(&body, &client.id).await
            } else {
                let (body, _) = self.read(request.body(form), "application/json").await?;
                parse_answer(&body, self.issuer.as_deref())
            }
        }
        .await;
        if matches!(
            result,
            Err(CallError::Connect | CallError::Status(404 | 410 | 500..))
        ) {
            // The provider may have moved its endpoint: read discovery again next time (not
            // when it refused the credentials: the endpoint is right, they are not).
            self.forget_endpoint();
        }
        result
    }

    /// The endpoint: configured, discovered before, or discovered now.
    pub(super) async fn endpoint(&self) -> Result<Arc<String>, CallError> {
        if let Some(url) = &self.options.endpoint {
            return Ok(Arc::new(url.clone()));
        }
        if let Some(url) = self.discovered.load_full() {
            return Ok(url);
        }
        let Some(issuer) = self.issuer.as_deref() else {
            return Err(CallError::Discovery("no issuer"));
        };
        let base = issuer.trim_end_matches('/');
        let oidc = format!("{base}/.well-known/openid-configuration");
        let json = "application/json";
        let doc = match self.read(self.http.get(&oidc), json).await.map(|(d, _)| d) {
            Ok(doc) => doc,
            Err(CallError::Status(_)) => {
                // RFC 8414 §3: the well-known segment goes between the host and the path.
                let url =
                    reqwest::Url::parse(base).map_err(|_| CallError::Discovery("issuer URL"))?;
                let path = url.path().trim_end_matches('/');
                let mut at = url.clone();
                at.set_path(&format!("/.well-known/oauth-authorization-server{path}"));
                self.read(self.http.get(at.as_str()), json).await?.0
            }
            Err(e) => return Err(e),
        };
        let url = discovered_endpoint(&doc, issuer, self.options.allow_http)?;
        let url = Arc::new(url);
        self.discovered.store(Some(Arc::clone(&url)));
        Ok(url)
    }

    /// Sends the request and reads a 200 answer of at most the configured size: the body and
    /// its media type.
    async fn read(
        &self,
        request: reqwest::RequestBuilder,
        accept: &str,
    ) -> Result<(Vec<u8>, Option<String>), CallError> {
        let mut resp = request
            .header(http::header::ACCEPT, accept)
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    CallError::Timeout
                } else {
                    CallError::Connect
                }
            })?;
        let status = resp.status();
        if status != http::StatusCode::OK {
            return Err(CallError::Status(status.as_u16()));
        }
        let max = self.options.max_response_bytes;
        if resp.content_length().is_some_and(|n| n > max as u64) {
            return Err(CallError::TooLarge);
        }
        let media = resp
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| {
            if e.is_timeout() {
                CallError::Timeout
            } else {
                CallError::Connect
            }
        })? {
            if body.len() + chunk.len() > max {
                return Err(CallError::TooLarge);
            }
            body.extend_from_slice(&chunk);
        }
        Ok((body, media))
    }

    /// Verifies a signed answer (RFC 9701 §5) with the issuer's keys and reads its
    /// `token_introspection` member.
    async fn verify_signed(&self, body: &[u8], client_id: &str) -> Result<Answer, CallError> {
        let (Some((keys, allowed)), Some(issuer)) = (&self.keys, self.issuer.as_deref()) else {
            return Err(CallError::Garbage("no keys to verify a signed answer"));
        };
        let text = std::str::from_utf8(body)
            .map_err(|_| CallError::Garbage("signed answer is not text"))?;
        let bad = |_| CallError::Garbage("signed answer is not a compact JWS");
        let jws = jws::split(text).map_err(bad)?;
        let header_json = jws::decode_header(jws.header).map_err(bad)?;
        let header = jws::parse_header(&header_json).map_err(bad)?;
        if header.crit.is_some() {
            return Err(CallError::Garbage("signed answer has a critical header"));
        }
        if !header
            .typ
            .as_deref()
            .is_some_and(|t| is_media_type(t, JWT_ANSWER))
        {
            return Err(CallError::Garbage(
                "signed answer is not of type token-introspection+jwt",
            ));
        }
        let Some(alg) = crate::keys::algorithm(&header.alg) else {
            return Err(CallError::Garbage("signed answer has an unknown alg"));
        };
        let kid = header.kid.as_deref();
        let check = |lookup: Lookup<'_>, _version: u64| match lookup {
            Lookup::Found(key) => {
                let sig = URL_SAFE_NO_PAD.decode(jws.signature).ok()?;
                crate::crypto::verify(alg, &key.key, key.prepared(alg), jws.signing_input, &sig)
                    .ok()
            }
            Lookup::AlgNotAllowed | Lookup::UnknownKey => None,
        };
        let verified = match keys.resolve(kid, alg, *allowed, true, check) {
            Ok(v) => v,
            Err(Unresolved::Wait(pending)) => {
                // The issuer's keys are being fetched (first use, or a new `kid`).
                pending.run().await;
                keys.resolve(kid, alg, *allowed, false, check)
                    .ok()
                    .flatten()
            }
            Err(Unresolved::Unavailable(_)) => None,
        };
        if verified.is_none() {
            return Err(CallError::Garbage(
                "signed answer does not verify with the issuer's keys",
            ));
        }
        let payload = URL_SAFE_NO_PAD
            .decode(jws.payload)
            .map_err(|_| CallError::Garbage("signed answer payload is not base64url"))?;
        let Ok(Value::Object(mut claims)) = serde_json::from_slice::<Value>(&payload) else {
            return Err(CallError::Garbage(
                "signed answer payload is not a JSON object",
            ));
        };
        if claims.get("iss").and_then(Value::as_str) != Some(issuer) {
            return Err(CallError::Garbage("signed answer is from another issuer"));
        }
        let for_us = match claims.get("aud") {
            Some(Value::String(a)) => a == client_id,
            Some(Value::Array(list)) => list.iter().any(|a| a.as_str() == Some(client_id)),
            _ => false,
        };
        if !for_us {
            return Err(CallError::Garbage("signed answer is for another client"));
        }
        if !claims.get("iat").is_some_and(Value::is_i64) {
            return Err(CallError::Garbage("signed answer has no iat"));
        }
        match claims.remove("token_introspection") {
            Some(answer @ Value::Object(_)) => answer_of(answer, Some(issuer)),
            _ => Err(CallError::Garbage(
                "signed answer has no token_introspection object",
            )),
        }
    }
}

/// The media type of RFC 9701 answers.
const JWT_ANSWER: &str = "application/token-introspection+jwt";

/// `true` if a `Content-Type` or `typ` names `wanted` (`application/...`): compared
/// case-insensitively, parameters ignored, and the `application/` prefix optional (RFC 7515
/// §4.1.9). Nothing else is trimmed.
fn is_media_type(value: &str, wanted: &str) -> bool {
    let value = value.split(';').next().unwrap_or(value);
    let short = &wanted["application/".len()..];
    value.eq_ignore_ascii_case(wanted) || value.eq_ignore_ascii_case(short)
}

/// `introspection_endpoint` of a metadata document whose `issuer` is exactly `issuer`.
fn discovered_endpoint(doc: &[u8], issuer: &str, allow_http: bool) -> Result<String, CallError> {
    #[derive(serde::Deserialize)]
    struct Metadata {
        issuer: String,
        introspection_endpoint: Option<String>,
    }
    let doc: Metadata =
        serde_json::from_slice(doc).map_err(|_| CallError::Discovery("not JSON with an issuer"))?;
    if doc.issuer != issuer {
        tracing::error!(
            target: "tower_token_auth::introspection",
            configured = issuer,
            discovered = %crate::error::cap(&doc.issuer),
            "authorization server metadata names another issuer; check the configured issuer URL (trailing slash?)"
        );
        return Err(CallError::Discovery("issuer does not match"));
    }
    let Some(url) = doc.introspection_endpoint else {
        return Err(CallError::Discovery("no introspection_endpoint"));
    };
    let ok = url.starts_with("https://") || (allow_http && url.starts_with("http://"));
    if !ok || reqwest::Url::parse(&url).is_err() {
        return Err(CallError::Discovery(
            "introspection_endpoint is not an https URL",
        ));
    }
    Ok(url)
}

/// Reads an RFC 7662 answer: a JSON object whose `active` is a boolean. An active answer
/// becomes the token's claims: the object without `active`, with `iss` set to the issuer whose
/// endpoint answered when the answer has none.
pub(crate) fn parse_answer(body: &[u8], issuer: Option<&str>) -> Result<Answer, CallError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(answer) => answer_of(answer, issuer),
        Err(_) => Err(CallError::Garbage("not a JSON object")),
    }
}

/// [`parse_answer`] of parsed JSON.
fn answer_of(answer: Value, issuer: Option<&str>) -> Result<Answer, CallError> {
    let Value::Object(mut map) = answer else {
        return Err(CallError::Garbage("not a JSON object"));
    };
    match map.remove("active") {
        Some(Value::Bool(true)) => {}
        Some(Value::Bool(false)) => return Ok(Answer::Inactive),
        // Exact types: `"true"` or `1` are not RFC 7662's boolean.
        _ => return Err(CallError::Garbage("no boolean `active`")),
    }
    if let (None, Some(iss)) = (map.get("iss"), issuer) {
        map.insert("iss".to_owned(), Value::String(iss.to_owned()));
    }
    let exp = match map.get("exp") {
        Some(Value::Number(n)) => n.as_i64(),
        _ => None,
    };
    let claims = serde_json::to_string(&map).map_err(|_| CallError::Garbage("claims"))?;
    Ok(Answer::Active {
        claims: Arc::from(claims),
        exp,
    })
}

#[cfg(test)]
mod tests {
    use super::{parse_answer, Answer, CallError};

    #[test]
    fn only_a_boolean_active_counts() {
        assert!(matches!(
            parse_answer(br#"{"active":false,"sub":"x"}"#, None),
            Ok(Answer::Inactive)
        ));
        for bad in [
            &br#"{"active":"true"}"#[..],
            br#"{"active":1}"#,
            br#"{"sub":"x"}"#,
            br#"[true]"#,
            br#"not json"#,
            b"",
        ] {
            assert!(
                matches!(parse_answer(bad, None), Err(CallError::Garbage(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn an_active_answer_becomes_claims_with_the_issuer() {
        let Ok(Answer::Active { claims, exp }) = parse_answer(
            br#"{"active":true,"sub":"u1","exp":1700000000,"scope":"read"}"#,
            Some("https://as.example"),
        ) else {
            panic!("active answer refused");
        };
        let v: serde_json::Value = serde_json::from_str(&claims).unwrap();
        assert_eq!(v["iss"], "https://as.example");
        assert_eq!(v["sub"], "u1");
        assert!(v.get("active").is_none());
        assert_eq!(exp, Some(1_700_000_000));
        // An `iss` in the answer is kept, to be checked like a JWT's.
        let Ok(Answer::Active { claims, .. }) = parse_answer(
            br#"{"active":true,"iss":"https://other"}"#,
            Some("https://as.example"),
        ) else {
            panic!("active answer refused");
        };
        assert!(claims.contains("https://other"));
    }
}
