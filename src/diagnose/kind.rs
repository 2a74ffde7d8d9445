//! What kind of token it is when it is not an access token (an ID token, a refresh token),
//! and the `typ` check.

use std::fmt::Write as _;

use serde_json::{Map, Value};

use crate::Reason;

use super::explain::Cx;
use super::render::clip;
use super::Finding;

/// What a token that is not an access token is, with the evidence.
pub(super) struct Kind {
    name: &'static str,
    evidence: Vec<String>,
}

pub(super) fn token_kind(header: &Map<String, Value>, claims: &Map<String, Value>) -> Option<Kind> {
    let _ = header;
    let str_claim = |n: &str| claims.get(n).and_then(Value::as_str);
    let mut id = Vec::new();
    for c in ["nonce", "at_hash", "c_hash"] {
        if claims.contains_key(c) {
            id.push(format!("claim `{c}`"));
        }
    }
    if str_claim("token_use") == Some("id") {
        id.push("`token_use` is `id`".into());
    }
    if str_claim("typ").is_some_and(|t| t.eq_ignore_ascii_case("id")) {
        id.push("claim `typ` is `ID`".into());
    }
    let mut refresh = Vec::new();
    if let Some(t) = str_claim("typ") {
        if t.eq_ignore_ascii_case("refresh") || t.eq_ignore_ascii_case("offline") {
            refresh.push(format!("claim `typ` is `{}`", clip(t, 20)));
        }
    }
    if str_claim("token_use") == Some("refresh") {
        refresh.push("`token_use` is `refresh`".into());
    }
    if let Some(t) = str_claim("token_type") {
        if t.eq_ignore_ascii_case("refresh_token") || t.eq_ignore_ascii_case("refresh") {
            refresh.push(format!("`token_type` is `{}`", clip(t, 20)));
        }
    }
    if !refresh.is_empty() {
        Some(Kind {
            name: "a refresh token",
            evidence: refresh,
        })
    } else if !id.is_empty() {
        Some(Kind {
            name: "an ID token",
            evidence: id,
        })
    } else {
        None
    }
}

fn kind_hint(kind: &Kind) -> String {
    if kind.name == "an ID token" {
        "send the access token (`access_token` of the token response), not the ID token: an ID \
         token tells the client who logged in, it does not authorize API calls"
            .to_owned()
    } else {
        "send the access token, not the refresh token: a refresh token is only for getting new \
         access tokens from the issuer"
            .to_owned()
    }
}

pub(super) fn kind_finding(kind: &Kind) -> Finding {
    Finding::new(
        Reason::WrongType,
        "token kind",
        format!(
            "this is {}, not an access token ({})",
            kind.name,
            kind.evidence.join(", ")
        ),
        kind_hint(kind),
    )
    .with(
        "token_kind",
        kind.name.trim_start_matches("a ").trim_start_matches("an "),
    )
    .with("evidence", kind.evidence.clone())
}

pub(super) fn wrong_type(cx: &Cx<'_>) -> Finding {
    let required = cx.view.required_type().unwrap_or_default().to_owned();
    let typ = cx.header_str("typ");
    let mut facts = match typ {
        Some(t) => format!("header `typ` is `{}`, required `{required}`", clip(t, 40)),
        None => format!("the header has no `typ`, required `{required}`"),
    };
    let hint = match cx.kind {
        Some(kind) => {
            let _ = write!(
                facts,
                "; this is {} ({})",
                kind.name,
                kind.evidence.join(", ")
            );
            kind_hint(kind)
        }
        None => format!(
            "send an access token of type `{required}` (RFC 9068); if your issuer does not set \
             it, stop requiring it (`.require_type(..)`, `.access_token_profile()`)"
        ),
    };
    let mut f = Finding::new(Reason::WrongType, "typ", facts, hint)
        .with("typ", typ.map_or(Value::Null, |t| Value::from(clip(t, 40))))
        .with("required", required);
    if let Some(kind) = cx.kind {
        f = f
            .with(
                "token_kind",
                kind.name.trim_start_matches("a ").trim_start_matches("an "),
            )
            .with("evidence", kind.evidence.clone());
    }
    f
}
