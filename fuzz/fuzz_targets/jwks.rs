//! Key material from outside: arbitrary text as a JWK set (`Keys::jwks_json`, the parser the
//! remote key fetcher uses too) and as a single JWK (`Keys::jwk`), built into a configuration
//! (`build` answers `Ok` or `Err`, never panics); plus structure-aware JWK sets assembled from
//! real and arbitrary key parameters. A configuration that builds then validates one token per
//! test key, and may accept a token only if the set holds that key's public material.
#![no_main]

mod common;

use std::sync::OnceLock;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};
use tower_token_auth::{Algorithm, AuthConfig, Keys};

use common::{block_on, test_keys, AUD, ISS, NOW};

struct Fixture {
    /// The test keys' public JWKs (`kid`, `alg`, `use` included).
    jwks: Vec<Map<String, Value>>,
    /// Per test key: a valid token with its kid, one without kid, and the public component
    /// that must be in a set accepting them (`n`, `x` or `k`), decoded.
    tokens: Vec<(String, String, Vec<u8>)>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let keys = test_keys();
        let jwks: Vec<Map<String, Value>> = keys
            .iter()
            .map(|k| match k.jwk() {
                Value::Object(m) => m,
                other => panic!("jwk is not an object: {other}"),
            })
            .collect();
        let tokens = keys
            .iter()
            .zip(&jwks)
            .map(|(k, jwk)| {
                let with_kid = k.token_at(NOW).issuer(ISS).audience(AUD).sign();
                let without = k
                    .token_at(NOW)
                    .issuer(ISS)
                    .audience(AUD)
                    .without_header("kid")
                    .sign();
                let part = ["n", "x", "k"]
                    .iter()
                    .find_map(|p| jwk.get(*p).and_then(Value::as_str))
                    .expect("a public component");
                (with_kid, without, lenient_b64(part).expect("b64"))
            })
            .collect();
        Fixture { jwks, tokens }
    })
}

/// Decodes base64 in either alphabet, padded or not; leading zero bytes dropped (they do not
/// change an RSA modulus).
fn lenient_b64(s: &str) -> Option<Vec<u8>> {
    let s: String = s
        .trim_end_matches('=')
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            c => c,
        })
        .collect();
    let mut b = URL_SAFE_NO_PAD.decode(s).ok()?;
    let lead = b.iter().take_while(|x| **x == 0).count();
    b.drain(..lead);
    Some(b)
}

fn strings<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
    match v {
        Value::String(s) => out.push(s),
        Value::Array(a) => a.iter().for_each(|v| strings(v, out)),
        Value::Object(m) => m.values().for_each(|v| strings(v, out)),
        _ => {}
    }
}

/// `true` if some string in `text` (JSON) decodes to `material`.
fn holds(text: &str, material: &[u8]) -> bool {
    let Ok(v) = serde_json::from_str::<Value>(text) else {
        // The crate parsed it as JSON; if this target cannot, say "held" rather than guess.
        return true;
    };
    let mut all = Vec::new();
    strings(&v, &mut all);
    all.iter()
        .any(|s| lenient_b64(s).is_some_and(|b| b == material))
}

fn build(keys: Keys, narrow: bool) -> Option<AuthConfig> {
    let mut b = AuthConfig::builder()
        .keys(keys)
        .issuer(ISS)
        .audience(AUD)
        .clock(|| NOW);
    if narrow {
        b = b.algorithms([Algorithm::ES256, Algorithm::EdDSA]);
    }
    b.build().ok()
}

fn exercise(cfg: &AuthConfig, text: &str) {
    let f = fixture();
    for (with_kid, without, material) in &f.tokens {
        for token in [with_kid, without] {
            let r = block_on(cfg.validate::<Map<String, Value>>(token));
            if r.is_ok() {
                assert!(
                    holds(text, material),
                    "a token was accepted by a key set without its key"
                );
            }
        }
    }
    let _ = format!("{cfg:?}");
}

fn try_text(text: &str) {
    for narrow in [false, true] {
        if let Some(cfg) = build(Keys::jwks_json(text), narrow) {
            exercise(&cfg, text);
        }
        if let Some(cfg) = build(Keys::jwk(text).kid("fallback"), narrow) {
            exercise(&cfg, text);
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Val {
    /// The same member of test key `n` (mod 5).
    Real(u8),
    /// Arbitrary bytes, base64url-encoded.
    B64(Vec<u8>),
    Str(String),
    Int(i64),
    Bool(bool),
    Null,
    Arr(Vec<Val>),
}

#[derive(Arbitrary, Debug)]
enum Member {
    Kty,
    Crv,
    Alg,
    Use,
    Kid,
    KeyOps,
    N,
    E,
    X,
    Y,
    K,
    D,
    X5c,
    Other(String),
}

impl Member {
    fn name(&self) -> &str {
        match self {
            Member::Kty => "kty",
            Member::Crv => "crv",
            Member::Alg => "alg",
            Member::Use => "use",
            Member::Kid => "kid",
            Member::KeyOps => "key_ops",
            Member::N => "n",
            Member::E => "e",
            Member::X => "x",
            Member::Y => "y",
            Member::K => "k",
            Member::D => "d",
            Member::X5c => "x5c",
            Member::Other(s) => s,
        }
    }
}

#[derive(Arbitrary, Debug)]
struct JwkSpec {
    /// Start from test key `base` (mod 5), or from nothing.
    base: Option<u8>,
    set: Vec<(Member, Val)>,
    remove: Vec<Member>,
}

/// A JWK set assembled from real and arbitrary parameters (`wrap`: as a set, else the first
/// JWK alone).
#[derive(Arbitrary, Debug)]
struct Assembled {
    keys: Vec<JwkSpec>,
    wrap: bool,
}

fn val(v: &Val, member: &str, jwks: &[Map<String, Value>]) -> Value {
    match v {
        Val::Real(i) => jwks[usize::from(*i) % jwks.len()]
            .get(member)
            .cloned()
            .unwrap_or(Value::Null),
        Val::B64(b) => Value::from(URL_SAFE_NO_PAD.encode(b)),
        Val::Str(s) => Value::from(s.as_str()),
        Val::Int(i) => Value::from(*i),
        Val::Bool(b) => Value::from(*b),
        Val::Null => Value::Null,
        Val::Arr(a) => Value::Array(a.iter().map(|v| val(v, member, jwks)).collect()),
    }
}

// The first byte picks the mode: even, the rest (lossily UTF-8) is the JSON text, so seeds
// are readable JWK sets; odd, the rest builds an [`Assembled`] set.
fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 2 {
        0 => try_text(&String::from_utf8_lossy(rest)),
        _ => {
            let Ok(Assembled { keys, wrap }) =
                Assembled::arbitrary_take_rest(arbitrary::Unstructured::new(rest))
            else {
                return;
            };
            let list: Vec<Value> = keys
                .iter()
                .map(|spec| {
                    let mut m = match spec.base {
                        Some(i) => f.jwks[usize::from(i) % f.jwks.len()].clone(),
                        None => Map::new(),
                    };
                    for (member, v) in &spec.set {
                        let name = member.name();
                        m.insert(name.to_owned(), val(v, name, &f.jwks));
                    }
                    for member in &spec.remove {
                        m.remove(member.name());
                    }
                    Value::Object(m)
                })
                .collect();
            let text = if wrap {
                serde_json::json!({ "keys": list }).to_string()
            } else {
                // The first JWK on its own (for `Keys::jwk`), or an empty set.
                list.into_iter()
                    .next()
                    .map_or_else(|| "{\"keys\":[]}".to_owned(), |v| v.to_string())
            };
            try_text(&text);
        }
    }
});
