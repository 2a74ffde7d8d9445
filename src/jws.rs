//! The compact JWS serialization (RFC 7515 §7.1), read by hand: `header.payload.signature`.
//!
//! Why not a library: this is the first thing every request does with attacker-controlled
//! bytes, and it must be both cheap and strict. The shape is found with at most three scans for
//! `.` whatever the token holds (a token of a million dots costs one scan), each segment is
//! decoded once with strict unpadded base64url (which also checks the alphabet), and the header
//! is parsed once, strictly: duplicate members, non-UTF-8 bytes, `null` members and unknown
//! `crit` are refused. jsonwebtoken's `decode_header` accepts some of these and decodes the
//! header again on `decode`. The parser is fuzzed (`fuzz/fuzz_targets/validate.rs`) and unit
//! tested below.

use std::borrow::Cow;
use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Deserialize;

use crate::error::AuthError;

/// The three segments of a compact JWS, still base64url-encoded.
pub(crate) struct Segments<'t> {
    pub(crate) header: &'t [u8],
    pub(crate) payload: &'t [u8],
    pub(crate) signature: &'t [u8],
    /// `header.payload`: what the signature covers.
    pub(crate) signing_input: &'t [u8],
}

/// Signs and serializes a compact JWS: `base64url(header).base64url(claims).base64url(sig)`.
/// The one writer of tokens, for the issuer and the test helpers.
#[cfg(any(feature = "test-util", feature = "issuer"))]
pub(crate) fn encode(
    alg: jsonwebtoken::Algorithm,
    key: &jsonwebtoken::EncodingKey,
    header: &serde_json::Map<String, serde_json::Value>,
    claims: &serde_json::Map<String, serde_json::Value>,
) -> Result<String, jsonwebtoken::errors::Error> {
    let h = URL_SAFE_NO_PAD.encode(serde_json::to_vec(header)?);
    let c = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims)?);
    let message = format!("{h}.{c}");
    let sig = crate::crypto::sign(alg, key, message.as_bytes())?;
    Ok(format!("{message}.{}", URL_SAFE_NO_PAD.encode(sig)))
}

/// Splits a token into its three segments, or says why it is not a compact JWS.
pub(crate) fn split(token: &str) -> Result<Segments<'_>, AuthError> {
    let bytes = token.as_bytes();
    // Three segments, found in one scan for '.' (the `memchr` crate: a word at a time).
    let mut dots = memchr::memchr_iter(b'.', bytes);
    let Some(d1) = dots.next() else {
        return Err(AuthError::malformed("not a JWT: no '.' separated segments"));
    };
    let Some(d2) = dots.next() else {
        return Err(AuthError::malformed(
            "not a JWT: two segments, expected three",
        ));
    };
    if dots.next().is_some() {
        // Four dots in all: five segments, the shape of a JWE.
        let jwe = dots.count() == 1;
        return Err(AuthError::malformed(if jwe {
            "encrypted tokens (JWE) are not supported"
        } else {
            "too many segments"
        }));
    }
    let (header, payload, signature) = (&bytes[..d1], &bytes[d1 + 1..d2], &bytes[d2 + 1..]);
    if header.is_empty() || payload.is_empty() {
        return Err(AuthError::malformed("empty header or payload segment"));
    }
    Ok(Segments {
        header,
        payload,
        signature,
        signing_input: &bytes[..d2],
    })
}

/// Decodes the header segment to JSON text: strict base64url (the alphabet is checked here,
/// so the token is scanned once, not twice), UTF-8, and a JSON object.
pub(crate) fn decode_header(segment: &[u8]) -> Result<Vec<u8>, AuthError> {
    let Ok(json) = URL_SAFE_NO_PAD.decode(segment) else {
        return Err(AuthError::malformed("header is not base64url"));
    };
    // RFC 7515 §5.2: the header is UTF-8 (serde_json does not check strings it skips).
    if std::str::from_utf8(&json).is_err() {
        return Err(AuthError::malformed("header is not UTF-8"));
    }
    // RFC 7515 §4: the header is a JSON object (serde would also fill the struct from an array).
    if json.trim_ascii_start().first() != Some(&b'{') {
        return Err(AuthError::malformed("header is not a JSON object"));
    }
    Ok(json)
}

/// Parses the decoded header, borrowing its strings where it can.
pub(crate) fn parse_header(json: &[u8]) -> Result<Header<'_>, AuthError> {
    serde_json::from_slice(json)
        .map_err(|_| AuthError::malformed("header is not a JSON object with alg"))
}

/// The JOSE header, read strictly. `jku`, `x5u`, `jwk` and `x5c` are read only to be ignored:
/// keys never come from the token. A member that is present must have its type: `"kid": null`
/// or `"crit": null` is malformed, not absent.
#[derive(Deserialize)]
pub(crate) struct Header<'a> {
    #[serde(borrow)]
    pub(crate) alg: Cow<'a, str>,
    #[serde(borrow, default, deserialize_with = "present")]
    pub(crate) kid: Option<HeaderStr<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    pub(crate) typ: Option<HeaderStr<'a>>,
    #[serde(borrow, default, deserialize_with = "present")]
    pub(crate) cty: Option<HeaderStr<'a>>,
    #[serde(default, deserialize_with = "present")]
    pub(crate) crit: Option<serde::de::IgnoredAny>,
}

/// A header string member, borrowed from the decoded header when it has no escapes. Unlike
/// `Option<Cow<str>>`, a JSON `null` is an error.
pub(crate) struct HeaderStr<'a>(Cow<'a, str>);

impl std::ops::Deref for HeaderStr<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for HeaderStr<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Cow<'de, str>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Cow::Borrowed(v))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Cow::Owned(v.to_owned()))
            }
        }
        d.deserialize_str(V).map(HeaderStr)
    }
}

/// A member that is present: its value goes through `T` as is (so `null` is refused unless
/// `T` accepts it; `IgnoredAny` does, which is how `"crit": null` is seen as present).
fn present<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

/// The header of the last token whose header parsed, by its segment: tokens of one issuer
/// and key share their header byte for byte, so most requests skip its base64 and JSON.
/// Shared by every request of a configuration; a different header replaces it.
#[derive(Default)]
pub(crate) struct LastHeader(arc_swap::ArcSwapOption<Parsed>);

/// A header segment and its parsed header.
pub(crate) type Parsed = (Box<[u8]>, Header<'static>);

impl std::fmt::Debug for LastHeader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LastHeader")
    }
}

impl LastHeader {
    /// The parsed header of `segment`: remembered, or decoded and parsed now (strictly, see
    /// [`decode_header`] and [`parse_header`]) and remembered.
    pub(crate) fn get(&self, segment: &[u8]) -> Result<Arc<Parsed>, AuthError> {
        if let Some(last) = &*self.0.load() {
            if *last.0 == *segment {
                return Ok(Arc::clone(last));
            }
        }
        let json = decode_header(segment)?;
        let header = parse_header(&json)?.into_owned();
        let parsed = Arc::new((Box::from(segment), header));
        self.0.store(Some(Arc::clone(&parsed)));
        Ok(parsed)
    }
}

impl Header<'_> {
    fn into_owned(self) -> Header<'static> {
        let own = |s: Option<HeaderStr<'_>>| s.map(|s| HeaderStr(Cow::Owned(s.0.into_owned())));
        Header {
            alg: Cow::Owned(self.alg.into_owned()),
            kid: own(self.kid),
            typ: own(self.typ),
            cty: own(self.cty),
            crit: self.crit,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{decode_header, parse_header, split};
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;

    fn b64(s: &str) -> String {
        URL_SAFE_NO_PAD.encode(s)
    }

    #[test]
    fn splits_three_segments() {
        let s = split("aGVhZA.cGF5.c2ln")
            .map_err(|e| e.to_string())
            .unwrap();
        assert_eq!(s.header, b"aGVhZA");
        assert_eq!(s.payload, b"cGF5");
        assert_eq!(s.signature, b"c2ln");
        assert_eq!(s.signing_input, b"aGVhZA.cGF5");
        // An empty signature is a shape the signature check refuses, not the parser.
        assert!(split("a.b.").is_ok());
    }

    #[test]
    fn refuses_other_shapes() {
        for token in ["", "abc", "a.b", "a.b.c.d", ".b.c", "a..c", "a.b.c.d.e.f"] {
            assert!(split(token).is_err(), "{token:?}");
        }
        let jwe = split("a.b.c.d.e")
            .err()
            .map(|e| format!("{:?}", e.problems()));
        assert!(jwe.is_some_and(|p| p.contains("JWE")));
        // A million dots cost one scan and are refused.
        assert!(split(&".".repeat(1_000_000)).is_err());
    }

    #[test]
    fn header_must_be_strict_base64url_utf8_json_object() {
        assert!(decode_header(b64(r#"{"alg":"HS256"}"#).as_bytes()).is_ok());
        assert!(decode_header(b"eyJhbGciOiJIUzI1NiJ9=").is_err(), "padding");
        assert!(decode_header(b"eyJhbGciOiJIUzI1NiJ9+").is_err(), "alphabet");
        assert!(decode_header(URL_SAFE_NO_PAD.encode([0xff, 0x7b]).as_bytes()).is_err());
        assert!(decode_header(b64(r#"["alg","HS256"]"#).as_bytes()).is_err());
    }

    #[test]
    fn header_members_are_read_strictly() {
        let h = parse_header(br#"{"alg":"HS256","kid":"k1","typ":"at+jwt"}"#).unwrap();
        assert_eq!(&*h.alg, "HS256");
        assert_eq!(h.kid.as_deref(), Some("k1"));
        assert_eq!(h.typ.as_deref(), Some("at+jwt"));
        assert!(h.crit.is_none());
        assert!(parse_header(br#"{"alg":"HS256","crit":null}"#)
            .unwrap()
            .crit
            .is_some());
        for bad in [
            r#"{"alg":"HS256","kid":null}"#,
            r#"{"alg":"HS256","typ":null}"#,
            r#"{"alg":"HS256","kid":7}"#,
            r#"{"alg":"HS256","alg":"none"}"#,
            r#"{"kid":"k"}"#,
            r#"{"alg":null}"#,
        ] {
            assert!(parse_header(bad.as_bytes()).is_err(), "{bad}");
        }
    }
}
