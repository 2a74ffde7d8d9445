//! Input: what was pasted, what a server would receive, and the token inside.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{Map, Value};

use crate::Reason;

use super::Finding;

pub(super) struct Input {
    /// What a server would receive as the token (after the scheme).
    pub(super) sent: String,
    /// The token with paste defects repaired, if it can be checked.
    pub(super) clean: Option<String>,
    /// The best text to decode the header and claims from.
    pub(super) text: String,
    pub(super) defects: Vec<Finding>,
    pub(super) notes: Vec<String>,
}

pub(super) fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// `Bearer <rest>` → `<rest>` (scheme case-insensitive, one or more spaces).
fn strip_scheme(s: &str) -> Option<&str> {
    let rest = strip_prefix_ci(s, "bearer")?;
    let trimmed = rest.trim_start();
    (trimmed.len() < rest.len() && !trimmed.is_empty()).then_some(trimmed)
}

fn strip_quotes(s: &str) -> Option<&str> {
    for q in ['"', '\'', '`'] {
        if s.len() >= 2 && s.starts_with(q) && s.ends_with(q) {
            return Some(&s[1..s.len() - 1]);
        }
    }
    None
}

const INVISIBLE: [char; 6] = [
    '\u{200B}', '\u{200C}', '\u{200D}', '\u{2060}', '\u{FEFF}', '\u{00AD}',
];

pub(super) fn inspect_input(raw: &str) -> Input {
    let mut notes = Vec::new();
    let mut defects = Vec::new();

    let trimmed = raw.trim();
    if trimmed.len() != raw.len() && !trimmed.is_empty() {
        notes.push("surrounding whitespace was removed (servers trim it too)".to_owned());
    }
    let mut s = trimmed;
    if let Some(rest) = strip_prefix_ci(s, "authorization:") {
        notes.push("the `Authorization:` header name was removed".to_owned());
        s = rest.trim_start();
    }
    if let Some(rest) = strip_scheme(s) {
        notes.push("the `Bearer ` scheme was removed: the rest is the token".to_owned());
        s = rest;
    }
    let sent = s.to_owned();

    let mut cur = s.to_owned();
    let (mut quoted, mut bearers) = (false, 0);
    loop {
        if let Some(inner) = strip_quotes(&cur) {
            quoted = true;
            cur = inner.trim().to_owned();
        } else if let Some(rest) = strip_scheme(&cur) {
            bearers += 1;
            cur = rest.to_owned();
        } else {
            break;
        }
    }
    if bearers > 0 {
        defects.push(
            Finding::new(
                Reason::Malformed,
                "bearer",
                "`Bearer` appears twice: the token text itself starts with `Bearer `, so the \
                 request carries `Authorization: Bearer Bearer …`",
                "send the scheme once: `Authorization: Bearer <token>`; the client adds \
                 `Bearer ` to a value that already has it, so store and pass the bare token",
            )
            .with("extra_schemes", bearers),
        );
    }
    if quoted {
        defects.push(Finding::new(
            Reason::Malformed,
            "quotes",
            "the token is wrapped in quotes; a server receives them as part of the token",
            "remove the quotes (they come from copying a JSON string, a shell variable or a \
             config file value)",
        ));
    }

    let mut clean_ok = true;
    if cur.is_empty() {
        defects.push(Finding::new(
            Reason::Malformed,
            "empty",
            "the token is empty",
            "pass the token itself",
        ));
        return Input {
            sent,
            clean: None,
            text: String::new(),
            defects,
            notes,
        };
    }

    if cur.starts_with('{') {
        let (finding, inner) = pasted_json(&cur);
        defects.push(finding);
        match inner {
            Some(token) => {
                notes.push(
                    "the findings after the pasted JSON are about the token it holds".to_owned(),
                );
                cur = token;
            }
            None => {
                return Input {
                    sent,
                    clean: None,
                    text: String::new(),
                    defects,
                    notes,
                }
            }
        }
    }

    if cur.chars().any(char::is_whitespace) {
        let breaks = cur.chars().filter(|c| *c == '\n' || *c == '\r').count();
        let others = cur
            .chars()
            .filter(|c| c.is_whitespace() && *c != '\n' && *c != '\r')
            .count();
        let first = cur.chars().position(char::is_whitespace).unwrap_or(0);
        defects.push(
            Finding::new(
                Reason::Malformed,
                "whitespace",
                format!(
                    "the token contains {breaks} line break(s) and {others} space(s) or tab(s), \
                     the first at character {}: it was wrapped or split when copied",
                    first + 1
                ),
                "remove them: a JWT is one line without spaces (look at how the token is \
                 printed, copied or stored: a wrapping base64 tool, a terminal, a YAML block)",
            )
            .with("line_breaks", breaks)
            .with("spaces", others),
        );
        cur.retain(|c| !c.is_whitespace());
    }
    if cur.contains(INVISIBLE) {
        defects.push(Finding::new(
            Reason::Malformed,
            "invisible",
            "the token contains invisible characters (zero-width space, byte-order mark or \
             soft hyphen)",
            "copy the token from its source again, not from a document or chat that adds them",
        ));
        cur.retain(|c| !INVISIBLE.contains(&c));
    }
    if cur.contains('…') || cur.contains("...") {
        defects.push(Finding::new(
            Reason::Malformed,
            "truncated",
            "the token contains `…`: it was shortened for display and copied that way",
            "copy the whole token from its source, not from a log line or a screen that \
             abbreviates it",
        ));
        clean_ok = false;
        cur = cur.replace('…', "").replace("...", "");
    }
    if cur.contains('%') {
        if let Some(decoded) = percent_decode(&cur) {
            defects.push(Finding::new(
                Reason::Malformed,
                "percent-encoded",
                "the token is URL-encoded (`%XX` escapes)",
                "decode it before sending it in a header; only query parameters are URL-encoded",
            ));
            cur = decoded;
        }
    }
    let segments: Vec<&str> = cur.split('.').collect();
    let padded: Vec<&str> = segments
        .iter()
        .enumerate()
        .filter(|(_, s)| s.ends_with('='))
        .map(|(i, _)| segment_name(i, segments.len()))
        .collect();
    if !padded.is_empty() {
        defects.push(
            Finding::new(
                Reason::Malformed,
                "padding",
                format!(
                    "the {} segment(s) end with base64 padding `=`; JWT segments are unpadded \
                     base64url (RFC 7515 §2)",
                    padded.join(", ")
                ),
                "remove the trailing `=`; if the issuer emits them, fix its encoder (base64url \
                 without padding): a signature computed over padded segments does not verify \
                 once the padding is removed",
            )
            .with("segments", padded.clone()),
        );
        cur = segments
            .iter()
            .map(|s| s.trim_end_matches('='))
            .collect::<Vec<_>>()
            .join(".");
    }
    if cur.contains('+') || cur.contains('/') {
        defects.push(Finding::new(
            Reason::Malformed,
            "base64",
            "the token contains `+` or `/`: standard base64, where a JWT uses base64url (`-` \
             and `_`)",
            "encode the segments with the URL-safe alphabet (base64url, RFC 4648 §5)",
        ));
        cur = cur.replace('+', "-").replace('/', "_");
    }
    if let Some((i, c)) = cur
        .chars()
        .enumerate()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        defects.push(
            Finding::new(
                Reason::Malformed,
                "characters",
                format!(
                    "character {:?} (U+{:04X}) at position {} cannot appear in a JWT, which \
                     holds only base64url characters and `.`",
                    c,
                    c as u32,
                    i + 1
                ),
                "the text is not a JWT, or it was altered when copied: copy it from its \
                 source again",
            )
            .with("position", i + 1),
        );
        clean_ok = false;
    }
    Input {
        sent,
        clean: clean_ok.then(|| cur.clone()),
        text: cur,
        defects,
        notes,
    }
}

fn segment_name(i: usize, n: usize) -> &'static str {
    match (n, i) {
        (3, 0) | (5, 0) => "header",
        (3, 1) => "payload",
        (3, 2) => "signature",
        (_, 0) => "first",
        (_, 1) => "second",
        (_, 2) => "third",
        (_, 3) => "fourth",
        _ => "fifth or later",
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    let mut any = false;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
            any = true;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    any.then(|| String::from_utf8(out).ok()).flatten()
}

/// A JSON object pasted instead of a token: what it is and the token it holds, if any.
fn pasted_json(text: &str) -> (Finding, Option<String>) {
    let obj =
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(m)) => m,
            _ => return (
                Finding::new(
                    Reason::Malformed,
                    "json",
                    "the text starts with `{`: JSON (or a fragment of it) was pasted, not a token",
                    "paste the encoded token (`xxxxx.yyyyy.zzzzz`)",
                ),
                None,
            ),
        };
    let members: Vec<Value> = obj
        .keys()
        .take(20)
        .map(|k| Value::from(k.as_str()))
        .collect();
    for (field, what) in [("access_token", "access token"), ("id_token", "ID token")] {
        if let Some(Value::String(token)) = obj.get(field) {
            let f = Finding::new(
                Reason::Malformed,
                "json",
                format!(
                    "a token response (JSON) was pasted, not a token; its `{field}` is \
                     diagnosed below"
                ),
                format!(
                    "send only the value of `access_token`, not the whole response{}",
                    if field == "id_token" {
                        " (this response has no `access_token`: the ID token is not meant for \
                         APIs)"
                    } else {
                        ""
                    }
                ),
            )
            .with("members", members)
            .with("diagnosed", format!("the {what}"));
            return (f, Some(token.trim().to_owned()));
        }
    }
    let claim_like = ["exp", "iss", "sub", "aud", "iat"]
        .iter()
        .any(|c| obj.contains_key(*c));
    let (facts, hint) = if claim_like {
        (
            "decoded claims (JSON) were pasted, not the encoded token",
            "paste the encoded token (`xxxxx.yyyyy.zzzzz`), not the output of a JWT decoder",
        )
    } else if obj.contains_key("keys") || obj.contains_key("kty") {
        (
            "a JWK or JWK set (JSON) was pasted, not a token",
            "pass the token here; keys belong in the configuration",
        )
    } else {
        (
            "a JSON object was pasted, not a token",
            "paste the encoded token (`xxxxx.yyyyy.zzzzz`)",
        )
    };
    (
        Finding::new(Reason::Malformed, "json", facts, hint).with("members", members),
        None,
    )
}

fn decode_segment(seg: &str) -> Option<Map<String, Value>> {
    if seg.is_empty() || seg.len() > 256 * 1024 {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(seg.trim_end_matches('=')).ok()?;
    match serde_json::from_slice::<Value>(&bytes).ok()? {
        Value::Object(m) => Some(m),
        _ => None,
    }
}

type JsonObject = Map<String, Value>;

/// The header and claims as decoded, for display (never the signature).
pub(super) fn decode_parts(text: &str) -> (Option<JsonObject>, Option<JsonObject>) {
    let segments: Vec<&str> = text.split('.').collect();
    match segments.len() {
        0 | 1 => (None, None),
        2 | 3 => {
            let header = decode_segment(segments[0]);
            // An encrypted token's second segment is not claims.
            let claims = if header.as_ref().is_some_and(|h| h.contains_key("enc")) {
                None
            } else {
                decode_segment(segments[1])
            };
            (header, claims)
        }
        _ => (decode_segment(segments[0]), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding_needs_escapes() {
        assert_eq!(percent_decode("ab%3D%3D").as_deref(), Some("ab=="));
        assert_eq!(percent_decode("abc"), None);
        assert_eq!(percent_decode("ab%"), None);
    }
}
