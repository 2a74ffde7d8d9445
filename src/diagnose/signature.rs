//! Explaining the problems of the signature: the algorithm, the key, the signature itself and
//! key sets that could not be loaded.

use std::fmt::Write as _;

use jsonwebtoken::Algorithm;
use serde_json::Value;

use crate::pipeline::view::KeyInfo;
use crate::{AuthError, Reason};

use super::explain::Cx;
use super::render::{clip, list};
use super::Finding;

fn family(alg: Algorithm) -> &'static str {
    let name = format!("{alg:?}");
    if name.starts_with("HS") {
        "HMAC"
    } else if name.starts_with("RS") || name.starts_with("PS") {
        "RSA"
    } else if name.starts_with("ES") {
        "EC"
    } else {
        "Ed25519"
    }
}

fn key_constructor(family: &str) -> &'static str {
    match family {
        "HMAC" => "Keys::hmac(..)",
        "RSA" => "Keys::rsa_pem(..)",
        "EC" => "Keys::ec_pem(..)",
        _ => "Keys::ed_pem(..)",
    }
}

fn key_families(keys: &[KeyInfo]) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for k in keys {
        for a in &k.algorithms {
            let f = family(*a);
            if !out.contains(&f) {
                out.push(f);
            }
        }
    }
    out
}

fn key_algorithms(keys: &[KeyInfo]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for k in keys {
        for a in &k.algorithms {
            let name = format!("{a:?}");
            if !out.contains(&name) {
                out.push(name);
            }
        }
    }
    out
}

/// The key the token names, by the lookup rule of [`crate::keys`].
fn find_key<'k>(keys: &'k [KeyInfo], kid: Option<&str>, alg: Algorithm) -> Option<&'k KeyInfo> {
    let single = |pred: &dyn Fn(&KeyInfo) -> bool| {
        let mut it = keys.iter().filter(|k| pred(k));
        match (it.next(), it.next()) {
            (Some(k), None) => Some(k),
            _ => None,
        }
    };
    if let Some(kid) = kid {
        if let Some(k) = keys.iter().find(|k| k.kid.as_deref() == Some(kid)) {
            return Some(k);
        }
        return single(&|k: &KeyInfo| k.kid.is_none() && k.algorithms.contains(&alg));
    }
    single(&|k: &KeyInfo| k.algorithms.contains(&alg))
}

fn describe_key(k: &KeyInfo) -> String {
    let algs: Vec<String> = k.algorithms.iter().map(|a| format!("{a:?}")).collect();
    match &k.kid {
        Some(kid) => format!("key `{kid}` ({}, {})", k.kind, algs.join(", ")),
        None => format!("the {} ({})", k.kind, algs.join(", ")),
    }
}

pub(super) fn alg_not_allowed(cx: &Cx<'_>) -> Finding {
    let alg_text = cx.header_str("alg").unwrap_or("");
    let Some(alg) = cx.alg() else {
        if alg_text.eq_ignore_ascii_case("none") {
            return Finding::new(
                Reason::AlgNotAllowed,
                "alg",
                "`alg` is `none`: the token is not signed",
                "unsigned tokens are never accepted: get a signed token from the issuer (a \
                 `none` token sent to an API is a test token or a forgery attempt)",
            )
            .with("alg", "none");
        }
        return Finding::new(
            Reason::AlgNotAllowed,
            "alg",
            format!(
                "`alg` `{}` is not a supported signature algorithm (HS256–HS512, RS256–RS512, \
                 PS256–PS512, ES256, ES384, EdDSA)",
                clip(alg_text, 40)
            ),
            "have the issuer sign with one of the supported algorithms",
        )
        .with("alg", clip(alg_text, 40));
    };
    let token_family = family(alg);
    let families = key_families(cx.keys);
    let algorithms = key_algorithms(cx.keys);
    let kid = cx.header_str("kid");
    let named = kid.and_then(|kid| cx.keys.iter().find(|k| k.kid.as_deref() == Some(kid)));
    let facts = match named {
        Some(k) if !k.algorithms.contains(&alg) => format!(
            "the token is {alg:?} but {} does not accept it",
            describe_key(k)
        ),
        _ if cx.keys.is_empty() => format!("the token is {alg:?} but no keys are loaded"),
        _ => format!(
            "the token is {alg:?} but the configured keys are {} ({})",
            families.join(" and "),
            algorithms.join(", ")
        ),
    };
    let hint = if token_family == "HMAC" && !families.is_empty() && !families.contains(&"HMAC") {
        format!(
            "an {alg:?} token for an API with {} keys comes from another issuer, or is forged \
             (algorithm confusion): get a token from the configured issuer; only if this API \
             really shares a secret with the issuer, add it with `Keys::hmac(..)`",
            families.join(" and ")
        )
    } else if families.contains(&token_family) {
        format!(
            "the keys accept {} only: have the issuer sign with one of them, or widen what the \
             key accepts (`.algorithms(..)` on the configuration or the key, the JWK's `alg`)",
            algorithms.join(", ")
        )
    } else {
        format!(
            "configure the issuer's {token_family} key ({}), or have the issuer sign with {}",
            key_constructor(token_family),
            if algorithms.is_empty() {
                "an algorithm of the configured keys".to_owned()
            } else {
                algorithms.join(", ")
            }
        )
    };
    Finding::new(Reason::AlgNotAllowed, "alg", facts, hint)
        .with("alg", format!("{alg:?}"))
        .with("key_types", families)
        .with("key_algorithms", algorithms)
}

fn other_issuer(cx: &Cx<'_>) -> Option<String> {
    let iss = cx.claim_str("iss")?;
    let expected = cx.expected_issuers();
    (!expected.is_empty() && !expected.iter().any(|e| e == iss))
        .then(|| format!("`{}`", clip(iss, 120)))
}

pub(super) fn unknown_key(cx: &Cx<'_>) -> Finding {
    let alg = cx.alg();
    let alg_name = alg.map(|a| format!("{a:?}")).unwrap_or_default();
    let known: Vec<String> = cx.keys.iter().filter_map(|k| k.kid.clone()).collect();
    let kidless = cx.keys.iter().filter(|k| k.kid.is_none()).count();
    let source = cx
        .remote
        .as_ref()
        .map(|s| format!(" fetched from {}", s.source))
        .unwrap_or_default();
    let from = other_issuer(cx)
        .map(|iss| format!(" (its `iss` is {iss})"))
        .unwrap_or_default();
    match cx.header_str("kid") {
        Some(kid) => {
            let has = if cx.keys.is_empty() {
                "which is empty".to_owned()
            } else if known.is_empty() {
                format!("whose {} key(s) have no `kid`", cx.keys.len())
            } else {
                let mut s = format!("which has {}", list(&known));
                if kidless > 0 {
                    let _ = write!(s, " and {kidless} key(s) without a `kid`");
                }
                s
            };
            let hint = if cx.remote.is_some() {
                format!(
                    "the key set was refetched and still lacks `{kid}`: the token comes from \
                     another issuer or environment{from}, or it was signed with a key the \
                     issuer has not published yet (check the JWKS URL or OIDC issuer)"
                )
            } else {
                format!(
                    "the configured keys (JWKS) are outdated, since the issuer rotated its \
                     keys: update them, or follow rotation with `Keys::jwks_url(..)`; or the \
                     token comes from a wrong issuer or environment{from}"
                )
            };
            Finding::new(
                Reason::UnknownKey,
                "kid",
                format!(
                    "`kid` `{}` is not in the key set{source}, {has}",
                    clip(kid, 80)
                ),
                hint,
            )
            .with("kid", clip(kid, 80))
            .with("known_kids", known)
            .with("alg", alg_name)
        }
        None => {
            let candidates: Vec<&KeyInfo> = match alg {
                Some(a) => cx
                    .keys
                    .iter()
                    .filter(|k| k.algorithms.contains(&a))
                    .collect(),
                None => Vec::new(),
            };
            let names: Vec<String> = candidates
                .iter()
                .map(|k| k.kid.clone().unwrap_or_else(|| "(no kid)".into()))
                .collect();
            Finding::new(
                Reason::UnknownKey,
                "kid",
                format!(
                    "the token has no `kid` and {} keys accept {alg_name} ({}): the key cannot \
                     be chosen",
                    candidates.len(),
                    list(&names)
                ),
                format!(
                    "have the issuer put a `kid` in the header, or configure a single key for \
                     {alg_name}"
                ),
            )
            .with("kid", Value::Null)
            .with("known_kids", known)
            .with("alg", alg_name)
        }
    }
}

pub(super) fn bad_signature(cx: &Cx<'_>) -> Finding {
    let alg = cx.alg();
    let kid = cx.header_str("kid");
    let key = alg.and_then(|a| find_key(cx.keys, kid, a));
    let key_text = key
        .map(describe_key)
        .unwrap_or_else(|| "the configured key".to_owned());
    let hmac = alg.is_some_and(|a| family(a) == "HMAC");
    let mut facts = format!("the signature does not verify with {key_text}");
    if let Some(iss) = other_issuer(cx) {
        let _ = write!(
            facts,
            "; the token was issued by {iss}, not by the configured issuer"
        );
    }
    let hint = if hmac {
        "the secret differs from the one the issuer signs with: check the client secret or \
         shared secret (same environment, no trailing newline or spaces, base64-decoded if the \
         issuer gives it base64-encoded); or the token was altered after signing"
    } else {
        "the token was signed with another private key: the key of another environment or \
         tenant (staging vs production) under the same `kid`, or an outdated public key; or \
         the token was altered after signing. Compare the token's `iss` and `kid` with the \
         configured keys"
    };
    let mut f = Finding::new(Reason::BadSignature, "signature", facts, hint)
        .with("alg", alg.map(|a| format!("{a:?}")).unwrap_or_default());
    if let Some(k) = key {
        f = f
            .with("kid", k.kid.clone().map_or(Value::Null, Value::from))
            .with("key_type", k.kind);
    }
    f
}

pub(super) fn keys_unavailable(cx: &Cx<'_>, err: &AuthError) -> Finding {
    let retry = err.retry_after();
    let (facts, source) =
        match &cx.remote {
            Some(s) => {
                (
                    format!(
                "no usable keys: the key set at {} could not be fetched ({} failed fetch(es), \
                 {} successful{})",
                s.source,
                s.fetch_error,
                s.fetch_ok,
                if s.stale { ", the last keys are stale past the bound" } else { "" }
            ),
                    Value::from(s.source.clone()),
                )
            }
            None => ("no usable keys could be obtained".to_owned(), Value::Null),
        };
    Finding::new(
        Reason::KeysUnavailable,
        "keys",
        facts,
        "check that this host reaches the key URL (DNS, proxy, firewall, TLS) and that it \
         serves a JWK set; an `http://` URL needs `.allow_http()`. The service answers 503 with \
         `Retry-After` meanwhile",
    )
    .with("source", source)
    .with("retry_after_secs", retry.map_or(Value::Null, Value::from))
}
