//! DPoP findings: which check of the proof failed, with what was expected and what the proof
//! says (the proof is decoded here without trusting it: only to explain).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{Map, Value};

use super::explain::Cx;
use super::render::clip;
use super::Finding;
use crate::pipeline::view::ConfigView;
use crate::Reason;

/// The proof's header and claims, decoded without verification.
fn decoded(proof: &str) -> (Map<String, Value>, Map<String, Value>) {
    let part = |i: usize| {
        proof
            .split('.')
            .nth(i)
            .and_then(|s| URL_SAFE_NO_PAD.decode(s).ok())
            .and_then(|b| serde_json::from_slice::<Map<String, Value>>(&b).ok())
            .unwrap_or_default()
    };
    (part(0), part(1))
}

pub(super) fn finding(cx: &Cx<'_>, reason: Reason, subject: &str) -> Finding {
    let (header, claims) = cx.dpop.map(|(p, _, _)| decoded(p)).unwrap_or_default();
    let said = |m: &Map<String, Value>, name: &str| match m.get(name) {
        Some(Value::String(s)) => format!("`{}`", clip(s, 120)),
        Some(other) => format!("`{}`", clip(&other.to_string(), 120)),
        None => "nothing".to_owned(),
    };
    let (method, url) = cx
        .dpop
        .map(|(_, m, u)| (m.to_string(), u.as_str()))
        .unwrap_or_default();
    let bound = cx
        .claim("cnf")
        .and_then(|c| c.get("jkt"))
        .and_then(Value::as_str);
    let (facts, hint): (String, &str) = match (reason, subject) {
        (Reason::BoundToken, "cnf") => (
            "the token is bound (`cnf`) by a confirmation method other than `jkt` (DPoP) or \
             `x5t#S256` (certificate), which this API cannot check"
                .into(),
            "ask the authorization server for a DPoP-bound or certificate-bound token, or an \
             unbound one",
        ),
        (Reason::BoundToken, _) => (
            format!(
                "the token is bound to a DPoP key (`cnf.jkt` {}) and was sent as a bearer token",
                bound.map_or("?".into(), |b| format!("`{b}`"))
            ),
            "send it as `Authorization: DPoP <token>` with a `DPoP` proof signed by that key; \
             a DPoP-bound token is never accepted as a bearer token",
        ),
        (Reason::UseDpopNonce, _) => (
            format!("the proof's `nonce` is {}, not the server's current nonce", said(&claims, "nonce")),
            "retry with the nonce of the `DPoP-Nonce` response header in the proof's `nonce`",
        ),
        (_, "dpop") => (
            "the request has no usable `DPoP` proof: none, several `DPoP` headers, or one that \
             is not a compact JWS"
                .into(),
            "send exactly one `DPoP` header with a proof made for this request",
        ),
        (_, "cnf") => (
            "the token was sent with the DPoP scheme but is not bound to a key (no `cnf.jkt`)".into(),
            "send an unbound token as `Authorization: Bearer`, or get a DPoP-bound token by \
             sending a proof to the token endpoint",
        ),
        (_, "typ") => (
            format!("the proof's `typ` is {}; it must be `dpop+jwt`", said(&header, "typ")),
            "set the proof header's `typ` to `dpop+jwt`",
        ),
        (_, "alg") => (
            format!(
                "the proof's `alg` is {}, which is not an accepted asymmetric algorithm for its key",
                said(&header, "alg")
            ),
            "sign proofs with ES256, EdDSA, RS256 or PS256 (see the `algs` of the DPoP \
             challenge); `none` and HMAC are never accepted",
        ),
        (_, "jwk") => (
            "the proof's header `jwk` is missing, not a public signature key, or carries \
             private key members"
                .into(),
            "put the public key (only) of the signing key in the proof header's `jwk`",
        ),
        (_, "signature") => (
            "the proof's signature does not verify with the key in its own `jwk` header".into(),
            "sign the proof with the private key of the `jwk` it carries",
        ),
        (_, "htm") => (
            format!("the proof's `htm` is {}; the request method is `{method}`", said(&claims, "htm")),
            "make a new proof for each request, with its method",
        ),
        (_, "htu") => (
            format!(
                "the proof's `htu` is {}; the request URL is `{url}` (compared without query and \
                 fragment, scheme and host case-insensitive, default port removed; behind a proxy \
                 the server uses its configured base URL)",
                said(&claims, "htu")
            ),
            "put the URL the client called in `htu`; on the server, set `Dpop::base_url(..)` to \
             the public URL when a proxy changes host or scheme",
        ),
        (_, "iat") => {
            let age = claims
                .get("iat")
                .and_then(Value::as_i64)
                .map(|iat| format!(" ({} s from now)", iat - cx.now))
                .unwrap_or_default();
            let window = cx.view.dpop_max_age().unwrap_or(60);
            (
                format!(
                    "the proof's `iat` is {}{age}; proofs are accepted from {window} s old to the \
                     leeway ({} s) in the future",
                    said(&claims, "iat"),
                    cx.view.leeway()
                ),
                "make a fresh proof for each request and check the client's clock",
            )
        }
        (_, "ath") => (
            "the proof's `ath` is not the SHA-256 (base64url) of this access token".into(),
            "compute `ath` from the exact access token sent with the proof",
        ),
        (_, "jkt") => (
            format!(
                "the proof is signed by the key with thumbprint `{}`; the token is bound to `{}`",
                header
                    .get("jwk")
                    .and_then(ConfigView::jwk_thumbprint)
                    .unwrap_or_else(|| "?".into()),
                bound.unwrap_or("?")
            ),
            "sign proofs with the key the token was issued to (the one used at the token \
             endpoint)",
        ),
        (_, "jti") => (
            "the proof was used before (its `jti` was seen within its age): a proof is \
             single-use"
                .into(),
            "make a new proof, with a new `jti`, for every request",
        ),
        _ => (
            "the DPoP proof does not fit this request or token".into(),
            "make a new proof for this request",
        ),
    };
    Finding::new(reason, subject, facts, hint)
}
