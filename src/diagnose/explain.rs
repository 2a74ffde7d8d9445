//! Explaining each problem: a [`Finding`] with the facts and a hint for the fix. This module
//! holds what every explanation reads ([`Cx`]) and sends each reason to its explanation (in
//! `signature`, `expiry`, `claims` and `kind`).

use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};

use crate::pipeline::view::{ConfigView, KeyInfo, TrustView};
use crate::{AuthError, KeyStatus, Problem, Reason};

use super::claims::{invalid_claim, missing_claim, wrong_audience, wrong_issuer};
use super::expiry::{expired, not_yet_valid};
use super::kind::{wrong_type, Kind};
use super::render::{clip, show_json};
use super::signature::{alg_not_allowed, bad_signature, keys_unavailable, unknown_key};
use super::Finding;

pub(super) struct Cx<'a> {
    pub(super) view: &'a ConfigView<'a>,
    pub(super) now: i64,
    pub(super) text: &'a str,
    pub(super) header: Option<&'a Map<String, Value>>,
    pub(super) claims: Option<&'a Map<String, Value>>,
    /// The trust the token's `iss` routes to, as the pipeline routes it.
    pub(super) trust: Option<TrustView<'a>>,
    pub(super) keys: &'a [KeyInfo],
    pub(super) remote: Option<KeyStatus>,
    pub(super) kind: Option<&'a Kind>,
    /// The DPoP proof diagnosed with the token, with the request's method and URL.
    pub(super) dpop: Option<&'a (String, http::Method, String)>,
}

impl Cx<'_> {
    pub(super) fn header_str(&self, name: &str) -> Option<&str> {
        self.header?.get(name)?.as_str()
    }
    pub(super) fn claim(&self, name: &str) -> Option<&Value> {
        self.claims?.get(name)
    }
    pub(super) fn claim_str(&self, name: &str) -> Option<&str> {
        self.claim(name)?.as_str()
    }
    pub(super) fn alg(&self) -> Option<Algorithm> {
        self.header_str("alg")?.parse().ok()
    }
    pub(super) fn expected_issuers(&self) -> Vec<String> {
        self.view
            .trusts()
            .flat_map(|t| t.issuers().iter().cloned())
            .collect()
    }
    pub(super) fn leeway_text(&self) -> String {
        format!(
            "`.leeway(..)` (now {} s, at most 5 min)",
            self.view.leeway()
        )
    }
}

pub(super) fn explain(cx: &Cx<'_>, problem: &Problem, err: &AuthError) -> Finding {
    let subject = problem.subject().unwrap_or("");
    match problem.reason() {
        Reason::Malformed => malformed(cx, subject),
        Reason::TooLarge => Finding::new(
            Reason::TooLarge,
            "size",
            format!(
                "the token is {} bytes; the limit is {} bytes",
                cx.text.len(),
                cx.view.max_token_len()
            ),
            "make the token smaller (long `groups` or `roles` lists are the usual cause: \
             send fewer claims) or raise `.max_token_len(..)` (default 16 KiB)",
        )
        .with("length", cx.text.len())
        .with("max", cx.view.max_token_len()),
        Reason::AlgNotAllowed => alg_not_allowed(cx),
        Reason::UnknownKey => unknown_key(cx),
        Reason::BadSignature => bad_signature(cx),
        Reason::Expired => expired(cx),
        Reason::NotYetValid => not_yet_valid(cx),
        Reason::WrongIssuer => wrong_issuer(cx),
        Reason::WrongAudience => wrong_audience(cx),
        Reason::WrongType => wrong_type(cx),
        Reason::MissingClaim => missing_claim(cx, subject),
        Reason::InvalidClaim => invalid_claim(cx, subject),
        Reason::Revoked => {
            let jti = cx
                .claim_str("jti")
                .map(|j| format!(" (`jti` `{}`)", clip(j, 80)))
                .unwrap_or_default();
            Finding::new(
                Reason::Revoked,
                "jti",
                format!("the token{jti} has been revoked"),
                "get a new token (log in again); a revoked token stays refused until it expires",
            )
        }
        Reason::RevocationUnavailable => Finding::new(
            Reason::RevocationUnavailable,
            "",
            "the revocation store could not be asked and the policy is to fail closed",
            "check that this host reaches the revocation store; the service answers 503 with \
             `Retry-After` meanwhile",
        ),
        Reason::KeysUnavailable => keys_unavailable(cx, err),
        Reason::InvalidDpopProof | Reason::UseDpopNonce | Reason::BoundToken => {
            super::dpop::finding(cx, problem.reason(), subject)
        }
        Reason::CertificateMismatch => Finding::new(
            Reason::CertificateMismatch,
            "cnf",
            format!(
                "the token is bound to a client certificate (`cnf[\"x5t#S256\"]` `{}`): {}",
                cx.claim("cnf")
                    .and_then(|c| c.get("x5t#S256"))
                    .and_then(Value::as_str)
                    .map(|s| clip(s, 64))
                    .unwrap_or_default(),
                if subject == "no client certificate" {
                    "the request came without one"
                } else {
                    "the request's certificate has another thumbprint"
                }
            ),
            "send the request over mutual TLS with the certificate the token was issued for; \
             behind a TLS-terminating proxy, have your acceptor put the forwarded certificate \
             in the request extensions (`binding::ClientCertificate`)",
        ),
        Reason::Inactive => Finding::new(
            Reason::Inactive,
            "active",
            "the issuer's introspection endpoint says the token is not active (`active: false`): \
             it expired, was revoked, or is unknown to that issuer",
            "get a new token; if it is new, check that it was issued by the introspecting \
             issuer (an endpoint knows only its own tokens) and that the resource server's client \
             may introspect it",
        ),
        Reason::IntrospectionUnavailable => Finding::new(
            Reason::IntrospectionUnavailable,
            "",
            "the introspection endpoint could not be asked or gave no usable answer (down, \
             timeout, an error status such as 401 for wrong client credentials, or not a JSON \
             object with a boolean `active`)",
            "check that this host reaches the endpoint and that the client id, secret and \
             authentication method are right; the service answers 503 with `Retry-After` \
             meanwhile",
        ),
        Reason::InsufficientScope => {
            let required = err.required_scopes().unwrap_or("");
            Finding::new(
                Reason::InsufficientScope,
                "scope",
                format!("the token lacks a required scope `{required}`"),
                "request the scope when getting the token and make sure the client may have it",
            )
        }
        reason => Finding::new(reason, subject, reason.description(), ""),
    }
}

fn malformed(cx: &Cx<'_>, cause: &str) -> Finding {
    let segments = cx.text.split('.').count();
    let f = if cause.contains("no '.'") {
        Finding::new(
            Reason::Malformed,
            "opaque",
            format!(
                "the token has no `.`: it is not a JWT but an opaque token of {} characters (a \
                 reference token, or a refresh token sent as an access token)",
                cx.text.chars().count()
            ),
            "this API accepts JWT access tokens only; opaque tokens are checked by \
             introspection at the issuer (RFC 7662). Ask the authorization server for a JWT \
             access token (e.g. Auth0 issues opaque tokens when no `audience` is requested) \
             and send the access token, not the refresh token",
        )
        .with("length", cx.text.chars().count())
    } else if cause.contains("JWE") {
        let enc = [("alg", "alg"), ("enc", "enc")]
            .iter()
            .filter_map(|(k, _)| cx.header_str(k).map(|v| format!("`{k}` `{}`", clip(v, 40))))
            .collect::<Vec<_>>();
        let detail = if enc.is_empty() {
            String::new()
        } else {
            format!(", {}", enc.join(", "))
        };
        Finding::new(
            Reason::Malformed,
            "jwe",
            format!("the token has five segments: it is encrypted (JWE{detail})"),
            "this API needs a signed JWT (JWS): turn off access-token encryption for this API \
             at the identity provider, or decrypt the token before it reaches this service",
        )
    } else if cause.contains("two segments") {
        Finding::new(
            Reason::Malformed,
            "segments",
            "the token has two segments: the signature is missing (`header.payload`)",
            "copy the whole token (it was cut at a `.`); unsigned tokens are never accepted",
        )
    } else if cause.contains("too many segments") {
        Finding::new(
            Reason::Malformed,
            "segments",
            format!(
                "the token has {segments} segments; a signed JWT has three \
                 (`header.payload.signature`)"
            ),
            "send one token: several tokens or other text may have been joined",
        )
    } else if cause.contains("empty header or payload") {
        Finding::new(
            Reason::Malformed,
            "segments",
            "the header or the payload segment is empty",
            "copy the whole token; a JWT is `header.payload.signature`, none of them empty",
        )
    } else if cause.contains("nested") {
        Finding::new(
            Reason::Malformed,
            "cty",
            "the header has `cty: JWT`: a token nested inside another token",
            "send the inner token; nested tokens are not supported",
        )
    } else if cause.contains("critical") {
        let crit = cx
            .header
            .and_then(|h| h.get("crit"))
            .map(|v| show_json(v, 100))
            .unwrap_or_default();
        Finding::new(
            Reason::Malformed,
            "crit",
            format!("the header marks extensions as critical (`crit` {crit}), which this API does not understand"),
            "the issuer must not require extensions this API does not implement (RFC 7515 \
             §4.1.11)",
        )
    } else if cause.contains("payload") {
        Finding::new(
            Reason::Malformed,
            "payload",
            "the payload (second segment) does not decode to a JSON object of claims",
            "the token is damaged or not a JWT: copy it from its source again",
        )
    } else if cause.contains("header") {
        Finding::new(
            Reason::Malformed,
            "header",
            "the header (first segment) does not decode to a JSON object with `alg`",
            "the token is damaged or not a JWT: its first segment must be the base64url of a \
             JSON object such as {\"alg\":\"RS256\",\"typ\":\"JWT\"}",
        )
    } else {
        Finding::new(
            Reason::Malformed,
            "segments",
            format!("the token is not a well-formed JWT: {cause}"),
            "send a compact JWS: three unpadded base64url segments joined by `.`",
        )
    };
    f.with("cause", cause).with("segments_count", segments)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AuthConfig, Keys};

    #[test]
    fn revoked_and_revocation_unavailable_are_explained() {
        let cfg = AuthConfig::builder()
            .keys(Keys::hmac([1u8; 32]))
            .skip_issuer_check()
            .skip_audience_check()
            .build()
            .unwrap();
        let mut claims = Map::new();
        claims.insert("jti".into(), "t-42".into());
        let view = ConfigView::new(&cfg);
        let cx = Cx {
            view: &view,
            now: 0,
            text: "",
            header: None,
            claims: Some(&claims),
            trust: None,
            keys: &[],
            remote: None,
            kind: None,
            dpop: None,
        };
        let err = AuthError::new(Reason::Revoked);
        let f = explain(&cx, &err.problems()[0], &err);
        assert_eq!(f.reason(), Reason::Revoked);
        assert!(f.facts().contains("`jti` `t-42`"), "{}", f.facts());
        assert!(f.hint().contains("new token"), "{}", f.hint());

        let err = AuthError::new(Reason::RevocationUnavailable);
        let f = explain(&cx, &err.problems()[0], &err);
        assert!(f.facts().contains("revocation store"), "{}", f.facts());
    }
}
