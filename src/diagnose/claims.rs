//! Explaining the problems of the other claims: `iss` and `aud` (with near misses), required
//! and invalid claims, and missing scopes.

use std::fmt::Write as _;

use serde_json::Value;

use crate::Reason;

use super::explain::Cx;
use super::input::strip_prefix_ci;
use super::render::{clip, list, one_of, show_json};
use super::Finding;

/// How `actual` differs from `expected` when they are near misses.
fn lookalike(actual: &str, expected: &str) -> Option<String> {
    if actual == expected {
        return None;
    }
    fn split(s: &str) -> (Option<&'static str>, &str) {
        if let Some(rest) = strip_prefix_ci(s, "https://") {
            (Some("https"), rest)
        } else if let Some(rest) = strip_prefix_ci(s, "http://") {
            (Some("http"), rest)
        } else {
            (None, s)
        }
    }
    let (a_trim, e_trim) = (actual.trim(), expected.trim());
    let (a_scheme, a_rest) = split(a_trim);
    let (e_scheme, e_rest) = split(e_trim);
    let (a_core, e_core) = (a_rest.trim_end_matches('/'), e_rest.trim_end_matches('/'));
    if a_core.eq_ignore_ascii_case(e_core) && (a_scheme.is_some() == e_scheme.is_some()) {
        let mut diffs: Vec<String> = Vec::new();
        if a_trim.len() != actual.len() || e_trim.len() != expected.len() {
            diffs.push("surrounding whitespace".into());
        }
        if a_scheme != e_scheme {
            diffs.push(format!(
                "the scheme (`{}` in the token, `{}` configured)",
                a_scheme.unwrap_or(""),
                e_scheme.unwrap_or("")
            ));
        }
        if a_rest.ends_with('/') != e_rest.ends_with('/') {
            let which = if a_rest.ends_with('/') {
                "the token's value has a trailing slash, the configured one not"
            } else {
                "the configured value has a trailing slash, the token's not"
            };
            diffs.push(format!("a trailing slash ({which})"));
        }
        if a_core != e_core {
            diffs.push("letter case (values are compared exactly)".into());
        }
        if !diffs.is_empty() {
            return Some(format!(
                "`{}` and `{}` differ only by {}",
                clip(actual, 120),
                clip(expected, 120),
                diffs.join(" and ")
            ));
        }
    }
    let strip_api = |s: &str| strip_prefix_ci(s, "api://").map(str::to_owned);
    if strip_api(actual).as_deref() == Some(expected)
        || strip_api(expected).as_deref() == Some(actual)
    {
        return Some(format!(
            "`{}` and `{}` differ only by the `api://` prefix (Azure AD: the application ID \
             URI vs the client ID)",
            clip(actual, 120),
            clip(expected, 120)
        ));
    }
    None
}

pub(super) fn wrong_issuer(cx: &Cx<'_>) -> Finding {
    let actual = cx.claim_str("iss").unwrap_or("");
    let expected = cx.expected_issuers();
    let similar = expected.iter().find_map(|e| lookalike(actual, e));
    let azure_v1 = strip_prefix_ci(actual, "https://sts.windows.net/").is_some()
        && expected
            .iter()
            .any(|e| e.contains("login.microsoftonline.com"));
    let mut facts = format!(
        "`iss` is `{}`, expected {}",
        clip(actual, 120),
        one_of(&expected)
    );
    if let Some(s) = &similar {
        let _ = write!(facts, "; {s}");
    }
    if azure_v1 {
        let _ = write!(
            facts,
            "; `sts.windows.net` is the issuer of Azure AD v1.0 tokens, \
             `login.microsoftonline.com/…/v2.0` of v2.0 tokens"
        );
    }
    let hint = if azure_v1 {
        format!(
            "request v2.0 tokens (set `accessTokenAcceptedVersion` to 2 in the API's app \
             manifest), or trust the v1.0 issuer with `.issuer(\"{}\")`",
            clip(actual, 120)
        )
    } else if similar.is_some() {
        format!(
            "issuers are compared exactly: configure `.issuer(\"{}\")`, spelled exactly like \
             the `issuer` of the identity provider's discovery document",
            clip(actual, 120)
        )
    } else {
        format!(
            "get a token from {}; or, if you trust `{}`, add it with `.issuer(..)` (or \
             `.trust(Issuer::new(..).keys(..))` with its own keys)",
            one_of(&expected),
            clip(actual, 120)
        )
    };
    Finding::new(Reason::WrongIssuer, "iss", facts, hint)
        .with("actual", clip(actual, 256))
        .with("expected", expected)
        .with("lookalike", similar.map_or(Value::Null, Value::from))
}

fn audiences_of(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::String(s)) => vec![clip(s, 256)],
        Some(Value::Array(list)) => list
            .iter()
            .filter_map(Value::as_str)
            .take(16)
            .map(|s| clip(s, 256))
            .collect(),
        _ => Vec::new(),
    }
}

pub(super) fn wrong_audience(cx: &Cx<'_>) -> Finding {
    let actual = audiences_of(cx.claim("aud"));
    let expected: Vec<String> = cx.trust.map(|t| t.audiences().to_vec()).unwrap_or_default();
    let similar = actual
        .iter()
        .find_map(|a| expected.iter().find_map(|e| lookalike(a, e)));
    let shown = if actual.len() == 1 {
        format!("`{}`", clip(&actual[0], 120))
    } else {
        format!("[{}]", list(&actual))
    };
    let mut facts = format!("`aud` is {shown}, expected one of {}", list(&expected));
    if let Some(s) = &similar {
        let _ = write!(facts, "; {s}");
    }
    let client = cx
        .claim_str("azp")
        .or_else(|| cx.claim_str("client_id"))
        .filter(|c| actual.iter().any(|a| a == c));
    if let Some(c) = client {
        let _ = write!(
            facts,
            "; `aud` is the client's own id `{}`: the token was issued to the client (an ID \
             token, or a token requested without this API as audience)",
            clip(c, 120)
        );
    }
    let first = actual.first().map(|a| clip(a, 120)).unwrap_or_default();
    let hint = if similar.is_some() {
        format!(
            "audiences are compared exactly: configure `.audience(\"{first}\")`, or request the \
             token for {}",
            list(&expected)
        )
    } else {
        format!(
            "request a token for this API (Auth0: the `audience` parameter; Azure AD: the scope \
             `<application ID URI>/.default`; Keycloak: an audience mapper), or, if this API \
             really is `{first}`, add `.audience(\"{first}\")`"
        )
    };
    Finding::new(Reason::WrongAudience, "aud", facts, hint)
        .with("actual", actual)
        .with("expected", expected)
        .with("lookalike", similar.map_or(Value::Null, Value::from))
}

pub(super) fn missing_claim(cx: &Cx<'_>, claim: &str) -> Finding {
    let (facts, hint) = match claim {
        "exp" => (
            "the token has no `exp`: tokens without an expiry are refused".to_owned(),
            "have the issuer set `exp` (every access token should expire)".to_owned(),
        ),
        "iss" => (
            "the token has no `iss`, and the issuer check is on".to_owned(),
            "have the issuer set `iss`, or call `.skip_issuer_check()` if your tokens never \
             carry one"
                .to_owned(),
        ),
        "aud" => (
            "the token has no `aud`, and the audience check is on".to_owned(),
            "request the token for this API so it carries `aud`, or call \
             `.skip_audience_check()` if your tokens never carry one"
                .to_owned(),
        ),
        c if cx.view.required_claims().iter().any(|r| r == c) => (
            format!(
                "the token has no `{c}`, which the configuration requires (`.require_claim(..)` \
                 or `.access_token_profile()`)"
            ),
            format!(
                "have the issuer include `{c}` (e.g. with a claim mapper), or stop requiring it"
            ),
        ),
        c => (
            format!("a check of the configuration (`.check(..)`) reports `{c}` missing"),
            format!("include `{c}` in the token, or relax the check"),
        ),
    };
    Finding::new(Reason::MissingClaim, claim, facts, hint).with("claim", claim)
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

pub(super) fn invalid_claim(cx: &Cx<'_>, claim: &str) -> Finding {
    let value = cx.claim(claim);
    let shown = value.map(|v| show_json(v, 80)).unwrap_or_default();
    let (facts, hint) = match (claim, value) {
        ("exp" | "nbf" | "iat", Some(v)) => {
            let facts = match v.as_f64() {
                Some(n) if (1e11..1e16).contains(&n.abs()) => format!(
                    "`{claim}` is {shown}: that counts milliseconds; a NumericDate counts \
                     seconds since 1970"
                ),
                Some(_) => format!("`{claim}` is {shown}: not a date between the years 1 and 9999"),
                None => format!(
                    "`{claim}` is {} ({shown}); it must be a NumericDate: a JSON number of \
                     seconds since 1970",
                    json_type(v)
                ),
            };
            (
                facts,
                format!(
                    "have the issuer write `{claim}` as a number of seconds since 1970 (e.g. \
                     `1700000000`)"
                ),
            )
        }
        ("aud", Some(v)) => (
            format!(
                "`aud` is {} ({shown}); it must be a string or an array of strings",
                json_type(v)
            ),
            "have the issuer write `aud` as a string or an array of strings".to_owned(),
        ),
        ("iss", Some(v)) => (
            format!("`iss` is {} ({shown}); it must be a string", json_type(v)),
            "have the issuer write `iss` as a string".to_owned(),
        ),
        (c, Some(_)) => (
            format!("a check of the configuration (`.check(..)`) refuses `{c}` ({shown})"),
            format!("get a token whose `{c}` this API accepts, or relax the check"),
        ),
        (c, None) => (
            format!("the claims do not fit: {c}"),
            "compare the token's claims with the claims type the service expects".to_owned(),
        ),
    };
    Finding::new(Reason::InvalidClaim, claim, facts, hint).with("claim", claim)
}

/// Scopes granted by `scope` / `scp` (a space-separated string or an array).
pub(super) fn scope_finding(cx: &Cx<'_>, required: &[String]) -> Option<Finding> {
    let claims = cx.claims?;
    let mut granted: Vec<String> = Vec::new();
    let mut from: Vec<&str> = Vec::new();
    for name in ["scope", "scp"] {
        let items: Vec<String> = match claims.get(name) {
            Some(Value::String(s)) => s.split_whitespace().map(str::to_owned).collect(),
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect(),
            _ => continue,
        };
        from.push(name);
        for s in items {
            if !granted.contains(&s) {
                granted.push(s);
            }
        }
    }
    let missing: Vec<String> = required
        .iter()
        .filter(|r| !granted.contains(r))
        .cloned()
        .collect();
    if missing.is_empty() {
        return None;
    }
    let facts = if from.is_empty() {
        format!(
            "the token has no `scope` or `scp` claim; required: {}",
            list(required)
        )
    } else {
        let claim_names: Vec<String> = from.iter().map(|s| (*s).to_owned()).collect();
        format!(
            "the token grants {} (claim {}); missing: {}",
            if granted.is_empty() {
                "nothing".to_owned()
            } else {
                list(&granted)
            },
            list(&claim_names),
            list(&missing)
        )
    };
    Some(
        Finding::new(
            Reason::InsufficientScope,
            "scope",
            facts,
            format!(
                "request the missing scope when getting the token (`scope={}` in the token \
                 request) and make sure the identity provider allows it for this client",
                missing.join(" ")
            ),
        )
        .with("required", required.to_vec())
        .with("granted", granted)
        .with("missing", missing),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookalikes_name_the_difference() {
        let slash = lookalike("https://a.example/", "https://a.example").unwrap();
        assert!(slash.contains("trailing slash"), "{slash}");
        let scheme = lookalike("http://a.example", "https://a.example").unwrap();
        assert!(
            scheme.contains("`http` in the token, `https` configured"),
            "{scheme}"
        );
        let case = lookalike("https://A.example", "https://a.example").unwrap();
        assert!(case.contains("letter case"), "{case}");
        let api = lookalike("1234-abcd", "api://1234-abcd").unwrap();
        assert!(api.contains("`api://` prefix"), "{api}");
        assert!(lookalike("https://a.example", "https://b.example").is_none());
    }
}
