//! The claims step's parse: the payload JSON read once, without building a map, into the
//! registered claims the checks need (strings borrowed from the payload where they have no
//! escapes) and the names of every claim.
//!
//! It accepts exactly the JSON a `serde_json::Map` parse accepts, because `diagnose()` and
//! the user checks still read a map of the same payload and every path must agree: the values
//! nobody reads are still parsed in full by [`Skip`] (numbers converted, strings unescaped), so
//! an out-of-range number or a lone surrogate fails here as it fails there. Top-level names
//! must be unique (`{"iss":"a","iss":"b"}` is refused instead of letting the last one win,
//! which other parsers may read differently).

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::{Map, Number, Value};

use crate::clock::numeric_date;

/// Verified claims, as JSON (what user checks and `diagnose` read).
pub(crate) type ClaimsMap = Map<String, Value>;

/// A date claim (`exp`, `nbf`, `iat`) as the checks see it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Date {
    #[default]
    Absent,
    Null,
    /// A NumericDate within years 1 to 9999, floored to seconds.
    At(i64),
    /// Present, but not such a number.
    Invalid,
}

impl Date {
    pub(crate) fn at(self) -> Option<i64> {
        match self {
            Date::At(t) => Some(t),
            _ => None,
        }
    }

    fn of(n: Number) -> Date {
        numeric_date(&Value::Number(n)).map_or(Date::Invalid, Date::At)
    }
}

/// A string claim (`iss`, `sub`, `jti`).
#[derive(Debug, Default)]
pub(crate) enum Text<'a> {
    #[default]
    Absent,
    Null,
    Str(Cow<'a, str>),
    /// Present, but not a string.
    Other,
}

impl Text<'_> {
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Text::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// `aud`: a string or an array of strings.
#[derive(Debug, Default)]
pub(crate) enum Aud<'a> {
    #[default]
    Absent,
    Null,
    One(Cow<'a, str>),
    Many(Vec<Cow<'a, str>>),
    /// Present, but neither a string nor an array of strings.
    Invalid,
}

/// The registered claims of a payload and the names of all its claims.
#[derive(Debug, Default)]
pub(crate) struct Registered<'a> {
    pub(crate) iss: Text<'a>,
    pub(crate) sub: Text<'a>,
    pub(crate) jti: Text<'a>,
    pub(crate) aud: Aud<'a>,
    pub(crate) exp: Date,
    pub(crate) nbf: Date,
    pub(crate) iat: Date,
    /// Every claim name, with whether its value is not `null` (for required claims).
    names: Vec<(Cow<'a, str>, bool)>,
}

impl<'a> Registered<'a> {
    /// Parses a payload; `None` when it is not a JSON object with unique claim names.
    pub(crate) fn parse(json: &'a str) -> Option<Registered<'a>> {
        let mut de = serde_json::Deserializer::from_str(json);
        let r = de.deserialize_map(RegisteredVisitor).ok()?;
        de.end().ok()?;
        Some(r)
    }

    /// `true` if the claim is present and not `null`.
    pub(crate) fn has(&self, name: &str) -> bool {
        self.names.iter().any(|(n, set)| *set && n == name)
    }
}

/// A claims object as a map, with the same rules (unique names); for user checks and
/// `diagnose`, which read claims by name.
pub(crate) fn claims_map(json: &str) -> Option<ClaimsMap> {
    struct Unique(ClaimsMap);
    impl<'de> Deserialize<'de> for Unique {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct V;
            impl<'de> Visitor<'de> for V {
                type Value = Unique;
                fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                    f.write_str("a JSON object")
                }
                fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Unique, A::Error> {
                    let mut map = ClaimsMap::new();
                    while let Some(key) = m.next_key::<String>()? {
                        let value: Value = m.next_value()?;
                        if map.insert(key, value).is_some() {
                            return Err(de::Error::custom("duplicate claim"));
                        }
                    }
                    Ok(Unique(map))
                }
            }
            d.deserialize_map(V)
        }
    }
    serde_json::from_str::<Unique>(json).ok().map(|u| u.0)
}

struct RegisteredVisitor;

/// Above this many claims, names are checked for duplicates with a hash set instead of a
/// scan, so a payload of thousands of tiny claims costs linear time.
const SCAN_LIMIT: usize = 32;

impl<'de> Visitor<'de> for RegisteredVisitor {
    type Value = Registered<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object of claims")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Registered<'de>, A::Error> {
        let mut r = Registered {
            names: Vec::with_capacity(12),
            ..Registered::default()
        };
        let mut seen: Option<std::collections::HashSet<Cow<'de, str>>> = None;
        while let Some(Name(key)) = m.next_key::<Name<'de>>()? {
            let duplicate = match &mut seen {
                Some(set) => !set.insert(key.clone()),
                None => r.names.iter().any(|(n, _)| *n == key),
            };
            if duplicate {
                return Err(de::Error::custom("duplicate claim"));
            }
            let set = match &*key {
                "iss" => set_text(&mut r.iss, m.next_value()?),
                "sub" => set_text(&mut r.sub, m.next_value()?),
                "jti" => set_text(&mut r.jti, m.next_value()?),
                "aud" => {
                    let AudValue(aud) = m.next_value()?;
                    let set = !matches!(aud, Aud::Null);
                    r.aud = aud;
                    set
                }
                "exp" | "nbf" | "iat" => {
                    let DateValue(d) = m.next_value()?;
                    match &*key {
                        "exp" => r.exp = d,
                        "nbf" => r.nbf = d,
                        _ => r.iat = d,
                    }
                    d != Date::Null
                }
                _ => !m.next_value::<Skip>()?.0,
            };
            r.names.push((key, set));
            if seen.is_none() && r.names.len() > SCAN_LIMIT {
                seen = Some(r.names.iter().map(|(n, _)| n.clone()).collect());
            }
        }
        Ok(r)
    }
}

fn set_text<'a>(slot: &mut Text<'a>, v: TextValue<'a>) -> bool {
    *slot = v.0;
    !matches!(slot, Text::Null)
}

/// A claim name, borrowed when it has no escapes.
struct Name<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Name<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Name<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a claim name")
            }
            fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Borrowed(s)))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Name<'de>, E> {
                Ok(Name(Cow::Owned(s)))
            }
        }
        d.deserialize_str(V)
    }
}

/// Any JSON value, parsed in full and dropped; `.0` is `true` for `null`. (Not
/// `serde::de::IgnoredAny`, which only checks the syntax: it would accept numbers and escapes
/// a map parse refuses.)
struct Skip(bool);

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SkipVisitor)
    }
}

struct SkipVisitor;

impl<'de> Visitor<'de> for SkipVisitor {
    type Value = Skip;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Skip, E> {
        Ok(Skip(true))
    }
    fn visit_bool<E>(self, _: bool) -> Result<Skip, E> {
        Ok(Skip(false))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Skip, E> {
        Ok(Skip(false))
    }
    fn visit_u64<E>(self, _: u64) -> Result<Skip, E> {
        Ok(Skip(false))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Skip, E> {
        Ok(Skip(false))
    }
    fn visit_str<E>(self, _: &str) -> Result<Skip, E> {
        Ok(Skip(false))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Skip, A::Error> {
        while s.next_element::<Skip>()?.is_some() {}
        Ok(Skip(false))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Skip, A::Error> {
        // Keys as strings (unescaped, as a map parse does), values in full.
        while m.next_key::<Skip>()?.is_some() {
            m.next_value::<Skip>()?;
        }
        Ok(Skip(false))
    }
}

/// `iss`, `sub`, `jti`: a string, `null`, or another value (parsed in full).
struct TextValue<'a>(Text<'a>);

impl<'de> Deserialize<'de> for TextValue<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = TextValue<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string claim")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<TextValue<'de>, E> {
                Ok(TextValue(Text::Str(Cow::Borrowed(s))))
            }
            fn visit_str<E>(self, s: &str) -> Result<TextValue<'de>, E> {
                Ok(TextValue(Text::Str(Cow::Owned(s.to_owned()))))
            }
            fn visit_unit<E>(self) -> Result<TextValue<'de>, E> {
                Ok(TextValue(Text::Null))
            }
            fn visit_bool<E>(self, _: bool) -> Result<TextValue<'de>, E> {
                Ok(TextValue(Text::Other))
            }
            fn visit_i64<E>(self, _: i64) -> Result<TextValue<'de>, E> {
                Ok(TextValue(Text::Other))
            }
            fn visit_u64<E>(self, _: u64) -> Result<TextValue<'de>, E> {
                Ok(TextValue(Text::Other))
            }
            fn visit_f64<E>(self, _: f64) -> Result<TextValue<'de>, E> {
                Ok(TextValue(Text::Other))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, s: A) -> Result<TextValue<'de>, A::Error> {
                SkipVisitor.visit_seq(s).map(|_| TextValue(Text::Other))
            }
            fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<TextValue<'de>, A::Error> {
                SkipVisitor.visit_map(m).map(|_| TextValue(Text::Other))
            }
        }
        d.deserialize_any(V)
    }
}

/// `exp`, `nbf`, `iat`: a NumericDate, `null`, or another value (parsed in full).
struct DateValue(Date);

impl<'de> Deserialize<'de> for DateValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = DateValue;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a NumericDate")
            }
            fn visit_i64<E>(self, n: i64) -> Result<DateValue, E> {
                Ok(DateValue(Date::of(n.into())))
            }
            fn visit_u64<E>(self, n: u64) -> Result<DateValue, E> {
                Ok(DateValue(Date::of(n.into())))
            }
            fn visit_f64<E>(self, n: f64) -> Result<DateValue, E> {
                // A JSON number is always finite, so `from_f64` succeeds.
                Ok(DateValue(
                    Number::from_f64(n).map_or(Date::Invalid, Date::of),
                ))
            }
            fn visit_unit<E>(self) -> Result<DateValue, E> {
                Ok(DateValue(Date::Null))
            }
            fn visit_bool<E>(self, _: bool) -> Result<DateValue, E> {
                Ok(DateValue(Date::Invalid))
            }
            fn visit_str<E>(self, _: &str) -> Result<DateValue, E> {
                Ok(DateValue(Date::Invalid))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, s: A) -> Result<DateValue, A::Error> {
                SkipVisitor.visit_seq(s).map(|_| DateValue(Date::Invalid))
            }
            fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<DateValue, A::Error> {
                SkipVisitor.visit_map(m).map(|_| DateValue(Date::Invalid))
            }
        }
        d.deserialize_any(V)
    }
}

/// `aud`: a string, an array of strings, `null`, or another value (parsed in full).
struct AudValue<'a>(Aud<'a>);

impl<'de> Deserialize<'de> for AudValue<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = AudValue<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an array of strings")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<AudValue<'de>, E> {
                Ok(AudValue(Aud::One(Cow::Borrowed(s))))
            }
            fn visit_str<E>(self, s: &str) -> Result<AudValue<'de>, E> {
                Ok(AudValue(Aud::One(Cow::Owned(s.to_owned()))))
            }
            fn visit_unit<E>(self) -> Result<AudValue<'de>, E> {
                Ok(AudValue(Aud::Null))
            }
            fn visit_bool<E>(self, _: bool) -> Result<AudValue<'de>, E> {
                Ok(AudValue(Aud::Invalid))
            }
            fn visit_i64<E>(self, _: i64) -> Result<AudValue<'de>, E> {
                Ok(AudValue(Aud::Invalid))
            }
            fn visit_u64<E>(self, _: u64) -> Result<AudValue<'de>, E> {
                Ok(AudValue(Aud::Invalid))
            }
            fn visit_f64<E>(self, _: f64) -> Result<AudValue<'de>, E> {
                Ok(AudValue(Aud::Invalid))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<AudValue<'de>, A::Error> {
                let mut list = Vec::new();
                let mut strings = true;
                while let Some(TextValue(t)) = s.next_element::<TextValue<'de>>()? {
                    match t {
                        Text::Str(a) if strings => list.push(a),
                        _ => strings = false,
                    }
                }
                Ok(AudValue(if strings {
                    Aud::Many(list)
                } else {
                    Aud::Invalid
                }))
            }
            fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<AudValue<'de>, A::Error> {
                SkipVisitor.visit_map(m).map(|_| AudValue(Aud::Invalid))
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agree(json: &str) {
        let fast = Registered::parse(json).is_some();
        let map = claims_map(json).is_some();
        assert_eq!(fast, map, "parsers disagree on {json}");
    }

    #[test]
    fn accepts_exactly_what_a_map_parse_accepts() {
        for json in [
            r#"{"iss":"a","exp":1}"#,
            r#"{"iss":"a","iss":"b"}"#,
            r#"{"a":1,"\u0061":2}"#,
            r#"{"x":1e400}"#,
            r#"{"x":[1,{"y":1e999}]}"#,
            r#"{"x":"\ud800"}"#,
            r#"{"x":{"\ud800":1}}"#,
            r#"{"x":{"a":1,"a":2}}"#,
            r#"{"exp":1.5e9,"nbf":-1e300,"iat":"x"}"#,
            r#"[1]"#,
            r#"{"a":1} x"#,
            r#"{"aud":["a",1,{"b":1e500}]}"#,
            r#"{}"#,
        ] {
            agree(json);
        }
    }

    #[test]
    fn reads_the_registered_claims() {
        let r = Registered::parse(
            r#"{"iss":"i","aud":["a","b"],"exp":1.9e9,"nbf":null,"iat":"x","sub":7,"k":null}"#,
        )
        .unwrap();
        assert_eq!(r.iss.as_str(), Some("i"));
        assert!(matches!(&r.aud, Aud::Many(l) if l.len() == 2));
        assert_eq!(r.exp, Date::At(1_900_000_000));
        assert_eq!(r.nbf, Date::Null);
        assert_eq!(r.iat, Date::Invalid);
        assert!(matches!(r.sub, Text::Other));
        assert!(r.has("iss") && r.has("sub") && !r.has("nbf") && !r.has("k") && !r.has("jti"));
    }

    proptest::proptest! {
        /// Random sequences of JSON pieces (mostly invalid, some valid objects): the fast
        /// parse and a map parse accept exactly the same ones.
        #[test]
        fn agrees_with_a_map_parse_on_random_input(pieces in proptest::collection::vec(
            proptest::sample::select(vec![
                "{", "}", "[", "]", ",", ":", " ", "\"iss\"", "\"aud\"", "\"exp\"",
                "\"nbf\"", "\"x\"", "\"\\u0069ss\"", "\"a\\\"b\"", "1", "-0.5", "1e400",
                "1.9e9", "18446744073709551616", "null", "true", "\"\\ud800\"", "\"v\"",
            ]),
            0..24,
        )) {
            agree(&pieces.concat());
        }

        /// Random valid-looking objects of the registered claims and others.
        #[test]
        fn agrees_on_random_objects(members in proptest::collection::vec(
            (
                proptest::sample::select(vec!["iss", "aud", "exp", "nbf", "iat", "sub", "jti", "x", "y"]),
                proptest::sample::select(vec![
                    "1", "1e400", "-1e300", "2.5", "null", "\"s\"", "[\"a\",\"b\"]", "[1]",
                    "{\"k\":1e999}", "{\"k\":1,\"k\":2}", "\"\\udc00\"", "true", "[]",
                ]),
            ),
            0..8,
        )) {
            let body: Vec<String> = members.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
            agree(&format!("{{{}}}", body.join(",")));
        }
    }

    #[test]
    fn many_claims_are_checked_for_duplicates_in_linear_time() {
        let mut json = String::from("{");
        for i in 0..2000 {
            json.push_str(&format!("\"c{i}\":0,"));
        }
        json.push_str("\"c7\":1}");
        assert!(Registered::parse(&json).is_none());
        agree(&json);
    }
}
