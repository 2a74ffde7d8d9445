//! DPoP (RFC 9449) proofs through the layer, for a valid access token bound (`cnf.jkt`) to a
//! P-256 key, an unbound one, and tokens bound to other keys:
//!
//! - raw bytes as the `DPoP` header value (and as a second `DPoP` header), with any method
//!   and path: never a panic, never a 5xx, a rejection is a 401 (or 400) with its `AuthError`
//!   and `WWW-Authenticate`, and a request is accepted only if it satisfies every rule below
//!   (random bytes never do);
//! - structure-aware: proofs built member by member (`typ`, `alg`, `jwk` variants, extra and
//!   duplicated members; `htm`, `htu` with case/port/query/fragment/path changes, `iat`
//!   offsets, `ath` right and wrong, `jti`), signed with the bound key, another key, HMAC or
//!   nothing, a few requests in a row against one layer. A model of the rules predicts the
//!   verdict: a proof breaking a rule is refused and the problem names a broken check; a proof
//!   breaking none is accepted (the variants where RFC 9449 leaves room are not predicted);
//! - every accepted request is checked independently of the library: scheme `DPoP`, one
//!   proof, `typ` `dpop+jwt`, an allowed asymmetric `alg` matching a public `jwk` of a known
//!   key (no private members), the signature (verified with `jsonwebtoken`), `htm` = method,
//!   `htu` = the request's URL after normalization, `iat` within max age and leeway, `ath` =
//!   SHA-256 of the token, the `jwk` thumbprint = the token's `cnf.jkt`, the (`jwk`, `jti`)
//!   pair never accepted before, the replay cache not above its capacity; and the same
//!   request sent again is refused (`invalid_dpop_proof`, `jti`).
//!
//! Every execution builds its own layer (so the replay cache starts empty and the result does
//! not depend on earlier inputs); the clock is fixed (`NOW`).
#![no_main]

mod common;

use std::collections::HashSet;
use std::sync::OnceLock;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use jsonwebtoken::{Algorithm, DecodingKey};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Map, Number, Value};
use tower_layer::Layer;
use tower_service::Service;
use tower_token_auth::binding::Dpop;
use tower_token_auth::testing::TestKey;
use tower_token_auth::{AuthConfig, AuthError, Reason, TokenAuthLayer, DEFAULT_LEEWAY};

use common::{block_on, signers, Ok200, Signer, AUD, ISS, NOW, SECRET};

const P256_PUBLIC: &str = include_str!("../../src/testing/p256_public.pem");
const P384_PUBLIC: &str = include_str!("../../src/testing/p384_public.pem");
const ED25519_PUBLIC: &str = include_str!("../../src/testing/ed25519_public.pem");

/// The largest proof the library reads (`MAX_PROOF_LEN` in src/binding/dpop.rs).
const MAX_PROOF_LEN: usize = 8 * 1024;

/// The members a JWK must never carry in a proof (private parts, symmetric secret).
const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

// ----- keys and tokens -----

/// The keys proofs are signed with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum KeyId {
    P256,
    P384,
    Ed,
}

struct ProofKey {
    id: KeyId,
    signer: Signer,
    /// The public JWK with only its required members (`kty`, `crv`, `x`, `y`).
    jwk: Map<String, Value>,
    /// `TestKey::jwk()`: with `alg`, `use` and `kid`.
    full_jwk: Value,
    decoding: DecodingKey,
    /// The `alg` header values that name this key's algorithm.
    alg_names: &'static [&'static str],
    alg: Algorithm,
    /// RFC 7638 thumbprint, computed by `jsonwebtoken`.
    thumbprint: String,
}

/// The access tokens (all valid, HS256): bound to P-256, to P-384, unbound, bound to a key
/// no proof is signed with.
#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
enum TokenV {
    BoundP256,
    BoundP384,
    Unbound,
    BoundElsewhere,
}

struct Token {
    text: String,
    jkt: Option<String>,
    /// base64url(SHA-256(text)).
    ath: String,
}

struct Fixture {
    keys: Vec<ProofKey>,
    hmac: Signer,
    hs: TestKey,
    tokens: [Token; 4],
}

fn sha256(data: &[u8]) -> Vec<u8> {
    (jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER
        .key_utils
        .compute_digest)(data, ThumbprintHash::SHA256)
    .expect("SHA-256")
}

fn b64(data: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let mut all = signers();
        let mut take = |alg: Algorithm| {
            let i = all.iter().position(|s| s.alg == alg).expect("signer");
            all.remove(i)
        };
        let hmac = take(Algorithm::HS256);
        let mut key = |id: KeyId, test: TestKey, alg: Algorithm, pem: &str, names| {
            let full_jwk = test.jwk();
            let members: &[&str] = if id == KeyId::Ed {
                &["kty", "crv", "x"]
            } else {
                &["kty", "crv", "x", "y"]
            };
            let jwk: Map<String, Value> = members
                .iter()
                .map(|m| ((*m).to_owned(), full_jwk[*m].clone()))
                .collect();
            let parsed: Jwk = serde_json::from_value(Value::Object(jwk.clone())).expect("jwk");
            let thumbprint = parsed
                .thumbprint(ThumbprintHash::SHA256)
                .expect("thumbprint");
            let decoding = match id {
                KeyId::Ed => DecodingKey::from_ed_pem(pem.as_bytes()),
                _ => DecodingKey::from_ec_pem(pem.as_bytes()),
            }
            .expect("public PEM");
            ProofKey {
                id,
                signer: take(alg),
                jwk,
                full_jwk,
                decoding,
                alg_names: names,
                alg,
                thumbprint,
            }
        };
        let keys = vec![
            key(
                KeyId::P256,
                TestKey::es256(),
                Algorithm::ES256,
                P256_PUBLIC,
                &["ES256"],
            ),
            key(
                KeyId::P384,
                TestKey::es384(),
                Algorithm::ES384,
                P384_PUBLIC,
                &["ES384"],
            ),
            key(
                KeyId::Ed,
                TestKey::ed25519(),
                Algorithm::EdDSA,
                ED25519_PUBLIC,
                &["EdDSA", "Ed25519"],
            ),
        ];
        let hs = TestKey::hmac(Algorithm::HS256, SECRET.to_vec());
        let token = |jkt: Option<String>| {
            let mut b = hs.token_at(NOW).issuer(ISS).audience(AUD).subject("u1");
            if let Some(jkt) = &jkt {
                b = b.claim("cnf", json!({ "jkt": jkt }));
            }
            let text = b.sign();
            let ath = b64(&sha256(text.as_bytes()));
            Token { text, jkt, ath }
        };
        // Sanity: the RFC 7638 thumbprint computed by hand agrees with jsonwebtoken's.
        let p256 = &keys[0].jwk;
        let by_hand = format!(
            r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
            p256["crv"].as_str().unwrap(),
            p256["x"].as_str().unwrap(),
            p256["y"].as_str().unwrap()
        );
        assert_eq!(b64(&sha256(by_hand.as_bytes())), keys[0].thumbprint);
        let tokens = [
            token(Some(keys[0].thumbprint.clone())),
            token(Some(keys[1].thumbprint.clone())),
            token(None),
            token(Some(b64(&sha256(b"no proof key has this thumbprint")))),
        ];
        Fixture {
            keys,
            hmac,
            hs,
            tokens,
        }
    })
}

impl Fixture {
    fn key(&self, id: KeyId) -> &ProofKey {
        self.keys.iter().find(|k| k.id == id).expect("key")
    }

    fn token(&self, t: TokenV) -> &Token {
        &self.tokens[t as usize]
    }

    /// The known key whose public members this JWK carries exactly.
    fn key_of_jwk(&self, jwk: &Map<String, Value>) -> Option<&ProofKey> {
        self.keys
            .iter()
            .find(|k| k.jwk.iter().all(|(m, v)| jwk.get(m) == Some(v)))
    }
}

// ----- the layer -----

/// The API's external origin (`Dpop::base_url`).
#[derive(Arbitrary, Clone, Copy, Debug)]
enum Base {
    /// `http://127.0.0.1:3000`
    Loopback,
    /// `https://API.Example.com`: upper case, default port.
    Upper,
    /// `https://api.example.com:443/v1/`: explicit default port, path prefix.
    Prefixed,
}

impl Base {
    fn url(self) -> &'static str {
        match self {
            Base::Loopback => "http://127.0.0.1:3000",
            Base::Upper => "https://API.Example.com",
            Base::Prefixed => "https://api.example.com:443/v1/",
        }
    }

    /// `(scheme, host, port as written, path prefix without its trailing slash)`.
    fn parts(
        self,
    ) -> (
        &'static str,
        &'static str,
        Option<&'static str>,
        &'static str,
    ) {
        match self {
            Base::Loopback => ("http", "127.0.0.1", Some("3000"), ""),
            Base::Upper => ("https", "API.Example.com", None, ""),
            Base::Prefixed => ("https", "api.example.com", Some("443"), "/v1"),
        }
    }
}

#[derive(Arbitrary, Clone, Copy, Debug)]
enum Capacity {
    One,
    Two,
    Three,
    Default,
}

#[derive(Arbitrary, Clone, Copy, Debug)]
enum MaxAge {
    Default,
    One,
    Five,
}

#[derive(Arbitrary, Clone, Copy, Debug)]
struct Env {
    base: Base,
    required: bool,
    accept_unbound: bool,
    /// Proof algorithms narrowed to ES256.
    narrow: bool,
    max_age: MaxAge,
    capacity: Capacity,
}

impl Env {
    fn max_age(self) -> i64 {
        match self.max_age {
            MaxAge::Default => 60,
            MaxAge::One => 1,
            MaxAge::Five => 300,
        }
    }

    fn capacity(self) -> usize {
        match self.capacity {
            Capacity::One => 1,
            Capacity::Two => 2,
            Capacity::Three => 3,
            Capacity::Default => 100_000,
        }
    }

    fn allowed_algs(self) -> &'static [Algorithm] {
        if self.narrow {
            &[Algorithm::ES256]
        } else {
            &[
                Algorithm::ES256,
                Algorithm::ES384,
                Algorithm::RS256,
                Algorithm::PS256,
                Algorithm::PS384,
                Algorithm::EdDSA,
            ]
        }
    }

    fn layer(self, f: &Fixture) -> TokenAuthLayer {
        let mut dpop = if self.required {
            Dpop::required()
        } else {
            Dpop::allowed()
        }
        .base_url(self.base.url())
        .max_age(Duration::from_secs(self.max_age() as u64))
        .replay_capacity(self.capacity());
        if self.accept_unbound {
            dpop = dpop.accept_unbound_tokens();
        }
        if self.narrow {
            dpop = dpop.algorithms([Algorithm::ES256]);
        }
        let config = AuthConfig::builder()
            .keys(f.hs.keys())
            .issuer(ISS)
            .audience(AUD)
            .realm("api")
            .clock(|| NOW)
            .dpop(dpop)
            .build()
            .expect("dpop config");
        TokenAuthLayer::new(config)
    }
}

// ----- requests -----

#[derive(Arbitrary, Clone, Debug)]
enum MethodV {
    Get,
    Post,
    Put,
    Delete,
    Patch,
    Head,
    Options,
    /// A lower-case extension method (`get`), distinct from `GET`.
    LowerGet,
    Custom(String),
}

impl MethodV {
    fn method(&self) -> Method {
        match self {
            MethodV::Get => Method::GET,
            MethodV::Post => Method::POST,
            MethodV::Put => Method::PUT,
            MethodV::Delete => Method::DELETE,
            MethodV::Patch => Method::PATCH,
            MethodV::Head => Method::HEAD,
            MethodV::Options => Method::OPTIONS,
            MethodV::LowerGet => Method::from_bytes(b"get").expect("method"),
            MethodV::Custom(s) => Method::from_bytes(s.as_bytes()).unwrap_or(Method::GET),
        }
    }
}

#[derive(Arbitrary, Clone, Debug)]
enum PathV {
    Me,
    Root,
    Nested,
    /// `/me?x=1`: the request's query is not part of `htu`.
    WithQuery,
    Encoded,
    /// `http://evil.example:8080/me` (absolute form): `htu` comes from the base URL, not
    /// from the request target.
    AbsoluteForm,
    Custom(String),
}

impl PathV {
    fn uri(&self) -> http::Uri {
        let s = match self {
            PathV::Me => "/me",
            PathV::Root => "/",
            PathV::Nested => "/api/v1/Items/42",
            PathV::WithQuery => "/me?x=1",
            PathV::Encoded => "/a%20b/%7Euser",
            PathV::AbsoluteForm => "http://evil.example:8080/me",
            PathV::Custom(s) if s.starts_with('/') => s.as_str(),
            PathV::Custom(_) => "/me",
        };
        s.parse().unwrap_or_else(|_| http::Uri::from_static("/me"))
    }
}

/// The `Authorization` header.
#[derive(Arbitrary, Clone, Copy, Debug)]
enum SchemeV {
    Dpop,
    Lower,
    Upper,
    TwoSpaces,
    Bearer,
    /// `DPoP\t<token>`: not the DPoP scheme (no token found).
    Tab,
    None,
}

impl SchemeV {
    fn header(self, token: &str) -> Option<String> {
        Some(match self {
            SchemeV::Dpop => format!("DPoP {token}"),
            SchemeV::Lower => format!("dpop {token}"),
            SchemeV::Upper => format!("DPOP {token}"),
            SchemeV::TwoSpaces => format!("DPoP  {token}"),
            SchemeV::Bearer => format!("Bearer {token}"),
            SchemeV::Tab => format!("DPoP\t{token}"),
            SchemeV::None => return None,
        })
    }
}

/// One request, as sent.
struct Sent {
    method: Method,
    uri: http::Uri,
    authorization: Option<String>,
    dpop: Vec<Vec<u8>>,
    token: TokenV,
}

impl Sent {
    fn request(&self) -> Option<Request<Bytes>> {
        let mut b = Request::builder()
            .method(self.method.clone())
            .uri(self.uri.clone());
        if let Some(a) = &self.authorization {
            b = b.header("authorization", a);
        }
        for p in &self.dpop {
            b = b.header("dpop", HeaderValue::from_bytes(p).ok()?);
        }
        b.body(Bytes::new()).ok()
    }

    /// The request's URL as a proof must name it: the base URL's origin and prefix, the
    /// request path.
    fn url(&self, env: Env) -> String {
        let (scheme, host, port, prefix) = env.base.parts();
        let port = port.map(|p| format!(":{p}")).unwrap_or_default();
        format!("{scheme}://{host}{port}{prefix}{}", self.uri.path())
    }

    fn scheme_is_dpop(&self) -> bool {
        self.authorization.as_ref().is_some_and(|a| {
            a.as_bytes()
                .get(..5)
                .is_some_and(|s| s.eq_ignore_ascii_case(b"dpop "))
        })
    }
}

/// What one request got.
struct Answer {
    status: StatusCode,
    reason: Option<Reason>,
    subject: Option<String>,
}

fn send(env: Env, layer: &TokenAuthLayer, sent: &Sent) -> Option<Answer> {
    let req = sent.request()?;
    if std::env::var_os("DPOP_FUZZ_TRACE").is_some() {
        // To read a crash input: DPOP_FUZZ_TRACE=1 cargo fuzz run dpop <file>
        eprintln!(
            "{env:?}\n{} {} token={:?} authorization={:?}",
            sent.method,
            sent.uri,
            sent.token,
            sent.authorization.as_deref().map(|a| a.split(' ').next())
        );
        for p in &sent.dpop {
            let text = String::from_utf8_lossy(p);
            eprintln!("  DPoP: {text}");
            for seg in text.split('.').take(2) {
                if let Ok(json) = URL_SAFE_NO_PAD.decode(seg) {
                    eprintln!("    {}", String::from_utf8_lossy(&json));
                }
            }
        }
    }
    let res: Response<Bytes> = block_on(layer.layer(Ok200).call(req)).expect("infallible");
    let status = res.status();
    assert!(
        matches!(status.as_u16(), 200 | 400 | 401),
        "status {status} (never a 5xx or anything else)"
    );
    if status == StatusCode::OK {
        if std::env::var_os("DPOP_FUZZ_TRACE").is_some() {
            eprintln!("  -> 200");
        }
        return Some(Answer {
            status,
            reason: None,
            subject: None,
        });
    }
    let err = res
        .extensions()
        .get::<AuthError>()
        .expect("a rejection carries its AuthError");
    assert_eq!(err.status(), status);
    let challenge = res
        .headers()
        .get("www-authenticate")
        .expect("a rejection has WWW-Authenticate")
        .to_str()
        .expect("ASCII challenge")
        .to_owned();
    if env.required {
        assert!(challenge.starts_with("DPoP "), "{challenge}");
        assert!(!challenge.contains("Bearer"), "{challenge}");
    } else {
        assert!(
            challenge.contains("DPoP realm=\"api\", algs="),
            "{challenge}"
        );
    }
    if err.reason() == Reason::InvalidDpopProof {
        assert!(
            challenge.contains("error=\"invalid_dpop_proof\""),
            "{challenge}"
        );
    }
    if std::env::var_os("DPOP_FUZZ_TRACE").is_some() {
        eprintln!(
            "  -> {status} {:?} {:?}",
            err.reason(),
            err.problems().first().and_then(|p| p.subject())
        );
    }
    Some(Answer {
        status,
        reason: Some(err.reason()),
        subject: err
            .problems()
            .first()
            .and_then(|p| p.subject().map(str::to_owned)),
    })
}

// ----- the independent checks of an accepted request -----

/// Finding 3 of fuzz/README.md (target `dpop`): the library's `htu` normalization strips a
/// `:80` / `:443` suffix from the authority even when the authority already has a port, so
/// with `base_url("http://127.0.0.1:3000")` a proof naming `http://127.0.0.1:3000:80/me`
/// (not a URL: two ports) was accepted for `/me` (fixed). `true` tolerates it (the model does not
/// predict `AppendDefaultPort`, and an accepted `htu` may carry that one extra suffix), so the
/// run goes on to other checks; `false` makes it a crash again.
const TOLERATE_DOUBLE_DEFAULT_PORT: bool = false;

/// Finding 4 of fuzz/README.md (target `dpop`): the library reads a proof's claims into a
/// derived struct, and serde fills a struct from a JSON array too, so a proof whose payload is
/// `["j1","GET","https://...",1700000000,"<ath>",null]` (the claims in field order) is
/// accepted (fixed); RFC 7519 §7.2 requires a JSON object. `true` tolerates it (no prediction for
/// `claims_as_array`; an accepted array is read in that order); `false` makes it a crash.
const TOLERATE_ARRAY_CLAIMS: bool = false;

/// The claims of an array payload, in the order the library's struct reads them.
fn array_claims(payload: &[u8]) -> Option<Vec<(String, Value)>> {
    let Value::Array(items) = serde_json::from_slice(payload).ok()? else {
        return None;
    };
    let names = ["jti", "htm", "htu", "iat", "ath", "nonce"];
    Some(
        names
            .iter()
            .zip(items)
            .map(|(n, v)| ((*n).to_owned(), v))
            .collect(),
    )
}

/// `url` without a default-port suffix after an authority that already has a port (what the
/// library tolerates, see [`TOLERATE_DOUBLE_DEFAULT_PORT`]).
fn without_second_default_port(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let suffix = match scheme.to_ascii_lowercase().as_str() {
        "http" => ":80",
        "https" => ":443",
        _ => return None,
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    let host_port = authority.strip_suffix(suffix)?;
    host_port
        .contains(':')
        .then(|| format!("{scheme}://{host_port}{path}"))
}

/// A URL normalized for comparison (RFC 3986 §6.2.2-6.2.3): `(scheme, host, port, path)`,
/// scheme and host lower-case, the port explicit, an empty path as `/`, query and fragment
/// dropped; `None` unless an absolute http(s) URL with a plain `host[:port]` authority.
fn normalize(url: &str) -> Option<(String, String, u16, String)> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, rest) = rest.split_at(end);
    let path = &rest[..rest.find(['?', '#']).unwrap_or(rest.len())];
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, "")) => (h, default),
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => (h, p.parse().ok()?),
        Some(_) => return None,
        None => (authority, default),
    };
    if host.is_empty()
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
    {
        return None;
    }
    let path = if path.is_empty() { "/" } else { path };
    Some((scheme, host.to_ascii_lowercase(), port, path.to_owned()))
}

/// The members of a JSON object in order, duplicates kept (each with the value serde_json
/// keeps: the last); `None` if not a JSON object.
///
/// Like the `validate` target (its finding 2): a member the library skips may nest deeper
/// than serde_json's recursion limit (128), which the library's skipping does not have; such
/// text is read member by member (a member too deep to parse reads as `null`).
fn members(json: &[u8]) -> Option<Vec<(String, Value)>> {
    let entries = top_level_members(json)?;
    match serde_json::from_slice::<Map<String, Value>>(json) {
        Ok(map) => Some(
            entries
                .into_iter()
                .map(|(n, _)| {
                    let v = map[&n].clone();
                    (n, v)
                })
                .collect(),
        ),
        Err(e) if e.to_string().contains("recursion limit") => Some(
            entries
                .into_iter()
                .map(|(n, raw)| (n, serde_json::from_slice(raw).unwrap_or(Value::Null)))
                .collect(),
        ),
        Err(_) => None,
    }
}

/// The names and raw values of a JSON object's members, by a scan that never recurses;
/// `None` if the text is not shaped like one object.
fn top_level_members(json: &[u8]) -> Option<Vec<(String, &[u8])>> {
    let ws = |mut i: usize| {
        while json.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        i
    };
    // The index of the closing quote of the string starting at `i`.
    let string_end = |i: usize| {
        let mut j = i + 1;
        loop {
            match *json.get(j)? {
                b'"' => return Some(j),
                b'\\' => j += 2,
                _ => j += 1,
            }
        }
    };
    let mut out = Vec::new();
    let mut i = ws(0);
    if json.get(i) != Some(&b'{') {
        return None;
    }
    i = ws(i + 1);
    if json.get(i) == Some(&b'}') {
        return (ws(i + 1) == json.len()).then_some(out);
    }
    loop {
        i = ws(i);
        if json.get(i) != Some(&b'"') {
            return None;
        }
        let end = string_end(i)?;
        let name: String = serde_json::from_slice(&json[i..=end]).ok()?;
        i = ws(end + 1);
        if json.get(i) != Some(&b':') {
            return None;
        }
        let start = ws(i + 1);
        let (mut j, mut depth) = (start, 0usize);
        loop {
            match *json.get(j)? {
                b'"' => j = string_end(j)?,
                b'{' | b'[' => depth += 1,
                b'}' | b']' | b',' if depth == 0 => break,
                b'}' | b']' => depth -= 1,
                _ => {}
            }
            j += 1;
        }
        out.push((name, &json[start..j]));
        match json[j] {
            b',' => i = j + 1,
            b'}' => return (ws(j + 1) == json.len()).then_some(out),
            _ => return None,
        }
    }
}

/// The one value of member `name`; panics (`what`) if it is there twice.
fn member<'a>(entries: &'a [(String, Value)], name: &str, what: &str) -> Option<&'a Value> {
    let mut found = entries.iter().filter(|(k, _)| k == name);
    let first = found.next().map(|(_, v)| v);
    assert!(
        found.next().is_none(),
        "{what}: accepted with a duplicate {name:?}"
    );
    first
}

/// The replay state of one execution, as the rules say it must be.
#[derive(Default)]
struct Seen {
    /// (`jwk` key, `jti`) of every proof accepted.
    accepted: HashSet<(KeyId, String)>,
}

/// Asserts everything an accepted request must satisfy, without the library; records the
/// proof as seen.
fn assert_accepted(f: &Fixture, env: Env, sent: &Sent, seen: &mut Seen) {
    let token = f.token(sent.token);
    if !sent.scheme_is_dpop() {
        assert!(
            !env.required,
            "a non-DPoP request accepted with DPoP required"
        );
        assert!(token.jkt.is_none(), "a bound token accepted as bearer");
        assert!(
            sent.authorization
                .as_deref()
                .is_some_and(|a| a.starts_with("Bearer ")),
            "accepted without a token"
        );
        return;
    }
    assert!(
        token.jkt.is_some() || env.accept_unbound,
        "an unbound token accepted with the DPoP scheme"
    );
    assert_eq!(
        sent.dpop.len(),
        1,
        "accepted with {} proofs",
        sent.dpop.len()
    );
    let proof = std::str::from_utf8(&sent.dpop[0]).expect("an accepted proof is text");
    assert!(proof.len() <= MAX_PROOF_LEN, "a proof above the size cap");
    let segments: Vec<&str> = proof.split('.').collect();
    assert_eq!(segments.len(), 3, "accepted proof {proof:?}");
    let decode = |s: &str, what: &str| {
        URL_SAFE_NO_PAD
            .decode(s)
            .unwrap_or_else(|_| panic!("accepted proof: {what} is not base64url"))
    };
    let header_bytes = decode(segments[0], "header");
    assert!(
        std::str::from_utf8(&header_bytes).is_ok(),
        "accepted proof: header is not UTF-8"
    );
    let header = members(&header_bytes).expect("accepted proof: header is an object");
    let h = |name: &str| member(&header, name, "header");
    assert_eq!(h("typ"), Some(&json!("dpop+jwt")), "accepted typ");
    assert!(h("crit").is_none(), "accepted with crit");
    let alg = h("alg")
        .and_then(Value::as_str)
        .expect("accepted without alg");
    let jwk = match h("jwk") {
        Some(Value::Object(m)) => m,
        other => panic!("accepted with jwk {other:?}"),
    };
    for m in PRIVATE_MEMBERS {
        assert!(!jwk.contains_key(m), "accepted a jwk with {m}");
    }
    assert_ne!(jwk.get("kty"), Some(&json!("oct")), "accepted an oct jwk");
    let key = f
        .key_of_jwk(jwk)
        .unwrap_or_else(|| panic!("accepted a jwk of no known key: {jwk:?}"));
    assert!(
        key.alg_names.contains(&alg),
        "accepted alg {alg} for {:?}",
        key.id
    );
    assert!(
        env.allowed_algs().contains(&key.alg),
        "accepted alg {alg} outside the allow-list"
    );
    let signing_input = &proof[..segments[0].len() + 1 + segments[1].len()];
    assert!(
        jsonwebtoken::crypto::verify(
            segments[2],
            signing_input.as_bytes(),
            &key.decoding,
            key.alg
        )
        .unwrap_or(false),
        "accepted a proof whose signature does not verify"
    );

    let payload = decode(segments[1], "payload");
    let claims = members(&payload)
        .or_else(|| {
            TOLERATE_ARRAY_CLAIMS
                .then(|| array_claims(&payload))
                .flatten()
        })
        .expect("accepted proof: claims are not a JSON object");
    let c = |name: &str| member(&claims, name, "claims");
    assert_eq!(
        c("htm").and_then(Value::as_str),
        Some(sent.method.as_str()),
        "accepted htm"
    );
    let htu = c("htu")
        .and_then(Value::as_str)
        .expect("accepted without htu");
    let want = normalize(&sent.url(env)).expect("the request URL normalizes");
    let named = normalize(htu).or_else(|| {
        TOLERATE_DOUBLE_DEFAULT_PORT
            .then(|| without_second_default_port(htu))
            .flatten()
            .and_then(|u| normalize(&u))
    });
    assert_eq!(
        named.as_ref(),
        Some(&want),
        "accepted htu {htu:?} for {}",
        sent.url(env)
    );
    let iat = c("iat")
        .and_then(Value::as_i64)
        .expect("accepted without an integer iat");
    let leeway = DEFAULT_LEEWAY.as_secs() as i64;
    assert!(
        iat <= NOW + leeway && iat >= NOW - env.max_age() - leeway,
        "accepted iat {iat} (now {NOW})"
    );
    assert_eq!(
        c("ath").and_then(Value::as_str),
        Some(token.ath.as_str()),
        "accepted ath"
    );
    let jti = c("jti")
        .and_then(Value::as_str)
        .expect("accepted without jti");
    assert!(
        !jti.is_empty() && jti.len() <= 256,
        "accepted jti of {} bytes",
        jti.len()
    );
    if let Some(jkt) = &token.jkt {
        assert_eq!(&key.thumbprint, jkt, "accepted a proof of another key");
    }
    assert!(
        seen.accepted.insert((key.id, jti.to_owned())),
        "a replayed proof (same jwk and jti) was accepted"
    );
    assert!(
        seen.accepted.len() <= env.capacity(),
        "more proofs accepted than the replay cache holds"
    );
}

/// Sends the request; if accepted, checks it and sends it again (a replay must be refused).
fn exchange(
    f: &Fixture,
    env: Env,
    layer: &TokenAuthLayer,
    sent: &Sent,
    seen: &mut Seen,
) -> Option<Answer> {
    let answer = send(env, layer, sent)?;
    if answer.status == StatusCode::OK {
        assert_accepted(f, env, sent, seen);
        if sent.scheme_is_dpop() {
            let again = send(env, layer, sent).expect("the same request");
            assert_eq!(
                again.status,
                StatusCode::UNAUTHORIZED,
                "a replay was accepted"
            );
            assert_eq!(again.reason, Some(Reason::InvalidDpopProof));
            assert_eq!(again.subject.as_deref(), Some("jti"));
        }
    }
    Some(answer)
}

// ----- structure-aware proofs -----

#[derive(Arbitrary, Debug)]
enum Val {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Arr(Vec<Val>),
    Obj(Vec<(String, Val)>),
}

impl Val {
    fn json(&self) -> Value {
        match self {
            Val::Null => Value::Null,
            Val::Bool(b) => Value::Bool(*b),
            Val::Int(i) => Value::from(*i),
            Val::Float(x) => Number::from_f64(*x).map_or(Value::Null, Value::Number),
            Val::Str(s) => Value::from(s.as_str()),
            Val::Arr(l) => Value::Array(l.iter().map(Val::json).collect()),
            Val::Obj(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), v.json())).collect()),
        }
    }
}

#[derive(Arbitrary, Clone, Copy, Debug, PartialEq, Eq)]
enum SignerV {
    P256,
    P384,
    Ed,
    /// HS256 with the shared secret (the `jwk` is then its `oct` key).
    Hmac,
    /// No signature (`<header>.<payload>.`).
    Unsigned,
}

#[derive(Arbitrary, Debug)]
enum TypV {
    Right,
    Upper,
    MediaType,
    Jwt,
    AtJwt,
    Missing,
    Null,
    Number,
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum AlgV {
    /// The signer's algorithm.
    Signer,
    /// `Ed25519` (RFC 9864) for an Ed25519 signer, else the signer's.
    FullySpecified,
    Named(AlgName),
    Lower,
    Missing,
    Number,
    Other(String),
}

#[derive(Arbitrary, Clone, Copy, Debug)]
enum AlgName {
    Es256,
    Es384,
    EdDsa,
    Ed25519,
    Rs256,
    Ps256,
    Hs256,
    None,
    NoneUpper,
}

impl AlgName {
    fn text(self) -> &'static str {
        match self {
            AlgName::Es256 => "ES256",
            AlgName::Es384 => "ES384",
            AlgName::EdDsa => "EdDSA",
            AlgName::Ed25519 => "Ed25519",
            AlgName::Rs256 => "RS256",
            AlgName::Ps256 => "PS256",
            AlgName::Hs256 => "HS256",
            AlgName::None => "none",
            AlgName::NoneUpper => "NONE",
        }
    }
}

#[derive(Arbitrary, Debug)]
enum JwkV {
    /// The signer's public key, required members only.
    Signer,
    /// The signer's public key with `alg`, `use` and `kid` (`TestKey::jwk`).
    SignerFull,
    /// The key the token is bound to (P-256 for the other tokens).
    Bound,
    /// A known key.
    Key(KeyPick),
    /// The signer's key with a private member.
    Private(PrivatePick),
    /// The signer's key pinned (`alg`) to another algorithm.
    PinnedOther,
    /// The signer's key with `use: enc`.
    Enc,
    /// The signer's key with one character of `x` changed.
    ChangedX(u8),
    Oct,
    Missing,
    NotObject,
    Arbitrary(Vec<(String, Val)>),
}

#[derive(Arbitrary, Clone, Copy, Debug)]
enum KeyPick {
    P256,
    P384,
    Ed,
}

#[derive(Arbitrary, Clone, Copy, Debug)]
enum PrivatePick {
    D,
    P,
    K,
    Oth,
}

#[derive(Arbitrary, Debug)]
enum HtmV {
    Right,
    Lower,
    Named(MethodV),
    Missing,
    Number,
}

#[derive(Arbitrary, Debug)]
enum HtuV {
    Exact,
    UpperScheme,
    UpperHost,
    /// The default port of the scheme, written out (replacing any port).
    DefaultPort,
    OtherPort,
    /// `:80` / `:443` appended to the authority as written (for a base with a port: two
    /// ports, not a URL).
    AppendDefaultPort,
    /// `host:` (an empty port).
    EmptyPort,
    Query,
    Fragment,
    QueryAndFragment,
    TrailingSlash,
    OriginOnly,
    UpperPath,
    OtherScheme,
    Userinfo,
    /// The first path character percent-encoded.
    PercentEncoded,
    /// `/x/..` before the path.
    DotSegment,
    /// The authority the request named (absolute form), else `evil.example`.
    RequestAuthority,
    Relative,
    LeadingSpace,
    Missing,
    Number,
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum IatV {
    Offset(i16),
    /// Within a few seconds of the window's edges.
    Edge(bool, i8),
    Fraction(i16),
    Text,
    Max,
    TooBig,
    Missing,
}

#[derive(Arbitrary, Debug)]
enum AthV {
    Right,
    /// The hash of another of the tokens.
    OtherToken(TokenV),
    Padded,
    Upper,
    Raw,
    Missing,
    Number,
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum JtiV {
    /// `j<n>`: a small space, so replays happen.
    Id(u8),
    Empty,
    Max,
    TooLong,
    Number,
    Missing,
    Other(String),
}

/// A member added to the header.
#[derive(Arbitrary, Debug)]
enum HeaderExtra {
    Typ(Val),
    Alg(Val),
    Jwk(Val),
    Crit(Val),
    Kid(Val),
    Cty(Val),
    Other(String, Val),
}

/// A member added to the claims.
#[derive(Arbitrary, Debug)]
enum ClaimExtra {
    Named(ClaimName, Val),
    Other(String, Val),
}

#[derive(Arbitrary, Clone, Copy, Debug)]
enum ClaimName {
    Jti,
    Htm,
    Htu,
    Iat,
    Ath,
    Nonce,
}

impl ClaimName {
    fn text(self) -> &'static str {
        match self {
            ClaimName::Jti => "jti",
            ClaimName::Htm => "htm",
            ClaimName::Htu => "htu",
            ClaimName::Iat => "iat",
            ClaimName::Ath => "ath",
            ClaimName::Nonce => "nonce",
        }
    }
}

/// The second `DPoP` header, or none at all.
#[derive(Arbitrary, Debug)]
enum Extra {
    One,
    Absent,
    SameTwice,
    Empty,
    Other(String),
}

#[derive(Arbitrary, Debug)]
struct ProofSpec {
    signer: SignerV,
    typ: TypV,
    alg: AlgV,
    jwk: JwkV,
    header_extra: Vec<HeaderExtra>,
    htm: HtmV,
    htu: HtuV,
    iat: IatV,
    ath: AthV,
    jti: JtiV,
    claims_extra: Vec<ClaimExtra>,
    /// The claims as a JSON array (`[jti, htm, htu, iat, ath, nonce]`), not an object.
    claims_as_array: bool,
    /// One byte of the finished proof replaced.
    tamper: Option<(u16, u8)>,
}

#[derive(Arbitrary, Debug)]
struct Step {
    method: MethodV,
    path: PathV,
    scheme: SchemeV,
    token: TokenV,
    proof: ProofSpec,
    extra: Extra,
}

#[derive(Arbitrary, Debug)]
struct Input {
    env: Env,
    steps: Vec<Step>,
}

/// How one rule fares: broken (the proof must be refused, with one of these subjects), maybe
/// broken (RFC 9449 leaves room; if refused, one of these subjects), or kept.
#[derive(Default)]
struct Model {
    broken: Vec<&'static str>,
    maybe: Vec<&'static str>,
    /// Refused for sure, for a reason not modelled (a tampered byte).
    refused_anyhow: bool,
    /// A member the model does not follow (a first `typ` among the extra members, ...): no
    /// prediction at all.
    unmodelled: bool,
}

impl Model {
    fn broken(&mut self, subjects: &[&'static str]) {
        self.broken.extend_from_slice(subjects);
        if subjects.is_empty() {
            self.refused_anyhow = true;
        }
    }

    fn maybe(&mut self, subjects: &[&'static str]) {
        self.maybe.extend_from_slice(subjects);
    }

    fn check(&mut self, ok: bool, subject: &'static str) {
        if !ok {
            self.broken(&[subject]);
        }
    }
}

/// The key a proof is signed with, and the algorithm.
fn signer_of(f: &Fixture, s: SignerV) -> Option<&ProofKey> {
    match s {
        SignerV::P256 | SignerV::Unsigned => Some(f.key(KeyId::P256)),
        SignerV::P384 => Some(f.key(KeyId::P384)),
        SignerV::Ed => Some(f.key(KeyId::Ed)),
        SignerV::Hmac => None,
    }
}

/// How deeply arrays and objects nest in `v` (a scalar is 0).
fn depth(v: &Value) -> usize {
    match v {
        Value::Array(l) => 1 + l.iter().map(depth).max().unwrap_or(0),
        Value::Object(m) => 1 + m.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

fn json_object(entries: &[(String, Value)]) -> String {
    let body: Vec<String> = entries
        .iter()
        .map(|(k, v)| format!("{}:{v}", Value::from(k.as_str())))
        .collect();
    format!("{{{}}}", body.join(","))
}

/// Builds the proof and the model's prediction of its proof-level checks (not `cnf`,
/// header count, `jkt` or replay). Also returns the known key of its `jwk`, if any, and its
/// `jti`.
fn build_proof(
    f: &Fixture,
    env: Env,
    step: &Step,
    sent_method: &Method,
    sent_url: &str,
    model: &mut Model,
) -> (Vec<u8>, Option<KeyId>, Option<String>) {
    let p = &step.proof;
    let token = f.token(step.token);
    let signer = signer_of(f, p.signer);
    let mut header: Vec<(String, Value)> = Vec::new();

    // typ
    let typ = match &p.typ {
        TypV::Right => Some(json!("dpop+jwt")),
        TypV::Upper => Some(json!("DPOP+JWT")),
        TypV::MediaType => Some(json!("application/dpop+jwt")),
        TypV::Jwt => Some(json!("JWT")),
        TypV::AtJwt => Some(json!("at+jwt")),
        TypV::Missing => None,
        TypV::Null => Some(Value::Null),
        TypV::Number => Some(json!(1)),
        TypV::Other(s) => Some(json!(s)),
    };
    match &typ {
        Some(Value::String(s)) if s == "dpop+jwt" => {}
        // Media types are case-insensitive, and `application/` may be written (RFC 7515
        // §4.1.9): refusing them is allowed, accepting them too.
        Some(Value::String(s))
            if s.eq_ignore_ascii_case("dpop+jwt")
                || s.eq_ignore_ascii_case("application/dpop+jwt") =>
        {
            model.maybe(&["typ"])
        }
        Some(Value::String(_)) | None => model.broken(&["typ"]),
        // Present but not a string: the strict header parse fails.
        Some(_) => model.broken(&["dpop"]),
    }
    if let Some(t) = typ {
        header.push(("typ".into(), t));
    }

    // alg
    let signer_alg = match p.signer {
        SignerV::Hmac => "HS256",
        _ => signer.map_or("ES256", |k| k.alg_names[0]),
    };
    let alg = match &p.alg {
        AlgV::Signer => Some(json!(signer_alg)),
        AlgV::FullySpecified => Some(json!(if signer_alg == "EdDSA" {
            "Ed25519"
        } else {
            signer_alg
        })),
        AlgV::Named(n) => Some(json!(n.text())),
        AlgV::Lower => Some(json!(signer_alg.to_ascii_lowercase())),
        AlgV::Missing => None,
        AlgV::Number => Some(json!(256)),
        AlgV::Other(s) => Some(json!(s)),
    };
    // The algorithm the header names, as the library maps names (`Ed25519` is EdDSA).
    let named_alg: Option<Algorithm> = match &alg {
        Some(Value::String(s)) => match s.as_str() {
            "ES256" => Some(Algorithm::ES256),
            "ES384" => Some(Algorithm::ES384),
            "EdDSA" | "Ed25519" => Some(Algorithm::EdDSA),
            "RS256" => Some(Algorithm::RS256),
            "PS256" => Some(Algorithm::PS256),
            "HS256" => Some(Algorithm::HS256),
            _ => None,
        },
        _ => None,
    };
    match (&alg, named_alg) {
        // Absent or not a string: the strict header parse fails.
        (None | Some(Value::Number(_)), _) => model.broken(&["dpop"]),
        // A name jsonwebtoken does not know, or one that is no proof key's algorithm (RS384,
        // PS384, ...): never the algorithm of the proof's key.
        (_, None) => model.broken(&["alg"]),
        (_, Some(a)) => model.check(env.allowed_algs().contains(&a), "alg"),
    }
    if let Some(a) = alg {
        header.push(("alg".into(), a));
    }

    // jwk
    let public_of = |k: &ProofKey| k.jwk.clone();
    let signer_jwk = || match signer {
        Some(k) => Value::Object(public_of(k)),
        None => json!({ "kty": "oct", "k": b64(SECRET) }),
    };
    let bound_key = match step.token {
        TokenV::BoundP384 => f.key(KeyId::P384),
        _ => f.key(KeyId::P256),
    };
    let (jwk, jwk_key): (Option<Value>, Option<&ProofKey>) = match &p.jwk {
        JwkV::Signer => (Some(signer_jwk()), signer),
        JwkV::SignerFull => match signer {
            Some(k) => (Some(k.full_jwk.clone()), Some(k)),
            None => (Some(signer_jwk()), None),
        },
        JwkV::Bound => (Some(Value::Object(public_of(bound_key))), Some(bound_key)),
        JwkV::Key(pick) => {
            let k = f.key(match pick {
                KeyPick::P256 => KeyId::P256,
                KeyPick::P384 => KeyId::P384,
                KeyPick::Ed => KeyId::Ed,
            });
            (Some(Value::Object(public_of(k))), Some(k))
        }
        JwkV::Private(pick) => {
            let mut j = signer_jwk();
            let (name, value) = match pick {
                PrivatePick::D => ("d", json!(b64(&[7u8; 32]))),
                PrivatePick::P => ("p", json!(b64(&[7u8; 32]))),
                PrivatePick::K => ("k", json!(b64(SECRET))),
                PrivatePick::Oth => ("oth", json!([])),
            };
            j[name] = value;
            (Some(j), None)
        }
        JwkV::PinnedOther => {
            let mut j = signer_jwk();
            j["alg"] = json!(if signer.is_some_and(|k| k.id == KeyId::P384) {
                "ES256"
            } else {
                "ES384"
            });
            (Some(j), None)
        }
        JwkV::Enc => {
            let mut j = signer_jwk();
            j["use"] = json!("enc");
            (Some(j), None)
        }
        JwkV::ChangedX(at) => {
            let mut j = signer_jwk();
            if let Some(Value::String(x)) = j.get("x") {
                let mut bytes = x.clone().into_bytes();
                // Not the last character (its low bits may be padding): a different key.
                let i = usize::from(*at) % (bytes.len() - 1);
                bytes[i] = if bytes[i] == b'A' { b'B' } else { b'A' };
                j["x"] = json!(String::from_utf8(bytes).expect("ASCII"));
            }
            (Some(j), None)
        }
        JwkV::Oct => (Some(json!({ "kty": "oct", "k": b64(SECRET) })), None),
        JwkV::Missing => (None, None),
        JwkV::NotObject => (Some(json!(b64(b"not a jwk"))), None),
        JwkV::Arbitrary(m) => (
            Some(Value::Object(
                m.iter().map(|(k, v)| (k.clone(), v.json())).collect(),
            )),
            None,
        ),
    };
    let jwk_known = !matches!(p.jwk, JwkV::Arbitrary(_));
    match (&p.jwk, jwk_key) {
        (JwkV::ChangedX(_), _) if signer.is_some() => model.broken(&["jwk", "signature", "alg"]),
        (JwkV::Arbitrary(_), _) => model.maybe(&["jwk", "alg", "signature"]),
        (_, None) => model.broken(&["jwk"]),
        (_, Some(k)) => {
            // The header's algorithm against the key, then the signature.
            if let Some(a) = named_alg {
                if a != k.alg {
                    model.broken(&["alg"]);
                } else {
                    let signed_by_it = signer.is_some_and(|s| s.id == k.id)
                        && p.signer != SignerV::Unsigned
                        && p.signer != SignerV::Hmac;
                    model.check(signed_by_it, "signature");
                }
            }
        }
    }
    if let Some(j) = jwk {
        header.push(("jwk".into(), j));
    }

    // Extra header members: a second typ/alg/kid/cty/crit fails the strict parse, a second
    // jwk the read of jwk; crit is never understood.
    for e in &p.header_extra {
        let (name, value) = match e {
            HeaderExtra::Typ(v) => ("typ".to_owned(), v.json()),
            HeaderExtra::Alg(v) => ("alg".to_owned(), v.json()),
            HeaderExtra::Jwk(v) => ("jwk".to_owned(), v.json()),
            HeaderExtra::Crit(v) => ("crit".to_owned(), v.json()),
            HeaderExtra::Kid(v) => ("kid".to_owned(), v.json()),
            HeaderExtra::Cty(v) => ("cty".to_owned(), v.json()),
            HeaderExtra::Other(n, v) => (n.clone(), v.json()),
        };
        let twice = header.iter().any(|(k, _)| *k == name);
        match name.as_str() {
            "typ" | "alg" | "crit" | "kid" | "cty" if twice => model.broken(&["dpop"]),
            "crit" => model.broken(&["dpop"]),
            "kid" | "cty" if !value.is_string() => model.broken(&["dpop"]),
            "jwk" if twice => model.broken(&["jwk"]),
            // A typ, alg or jwk the variants left out, given here: not modelled.
            "typ" | "alg" | "jwk" => model.unmodelled = true,
            _ => {}
        }
        header.push((name, value));
    }

    // Claims.
    let mut claims: Vec<(String, Value)> = Vec::new();
    let htm = match &p.htm {
        HtmV::Right => Some(json!(sent_method.as_str())),
        HtmV::Lower => Some(json!(sent_method.as_str().to_ascii_lowercase())),
        HtmV::Named(m) => Some(json!(m.method().as_str())),
        HtmV::Missing => None,
        HtmV::Number => Some(json!(1)),
    };
    model.check(
        htm.as_ref().and_then(Value::as_str) == Some(sent_method.as_str()),
        "htm",
    );

    let htu = htu_text(&p.htu, env, step, sent_url);
    // Equivalent under RFC 3986 normalization the library need not do (percent-encoding,
    // dot segments, an empty port), arbitrary text, and finding 3: not predicted.
    let unpredicted = matches!(
        p.htu,
        HtuV::PercentEncoded | HtuV::DotSegment | HtuV::EmptyPort | HtuV::Other(_)
    ) || (TOLERATE_DOUBLE_DEFAULT_PORT
        && matches!(p.htu, HtuV::AppendDefaultPort));
    match htu.as_ref().and_then(Value::as_str) {
        Some(u) if u == sent_url => {}
        _ if unpredicted => model.maybe(&["htu"]),
        Some(u) => model.check(
            normalize(u).is_some_and(|n| Some(n) == normalize(sent_url)),
            "htu",
        ),
        None => model.broken(&["htu"]),
    }

    let leeway = DEFAULT_LEEWAY.as_secs() as i64;
    let (lo, hi) = (NOW - env.max_age() - leeway, NOW + leeway);
    let iat = match &p.iat {
        IatV::Offset(o) => Some(json!(NOW + i64::from(*o))),
        IatV::Edge(top, d) => Some(json!((if *top { hi } else { lo }) + i64::from(*d % 4))),
        IatV::Fraction(o) => Some(json!(NOW as f64 + f64::from(*o) + 0.5)),
        IatV::Text => Some(json!(NOW.to_string())),
        IatV::Max => Some(json!(i64::MAX)),
        IatV::TooBig => Some(json!(u64::MAX)),
        IatV::Missing => None,
    };
    match (&p.iat, iat.as_ref().and_then(Value::as_i64)) {
        (_, Some(t)) => model.check(t >= lo && t <= hi, "iat"),
        // A NumericDate may have a fraction (RFC 7519 §2); refusing one is allowed.
        (IatV::Fraction(o), None) => {
            let t = NOW as f64 + f64::from(*o) + 0.5;
            if t >= lo as f64 && t <= hi as f64 {
                model.maybe(&["iat"]);
            } else {
                model.broken(&["iat"]);
            }
        }
        _ => model.broken(&["iat"]),
    }

    let ath = match &p.ath {
        AthV::Right => Some(json!(token.ath)),
        AthV::OtherToken(t) => Some(json!(f.token(*t).ath)),
        AthV::Padded => Some(json!(format!("{}=", token.ath))),
        AthV::Upper => Some(json!(token.ath.to_ascii_uppercase())),
        AthV::Raw => Some(json!(token.text)),
        AthV::Missing => None,
        AthV::Number => Some(json!(0)),
        AthV::Other(s) => Some(json!(s)),
    };
    model.check(
        ath.as_ref().and_then(Value::as_str) == Some(token.ath.as_str()),
        "ath",
    );

    let jti = match &p.jti {
        JtiV::Id(n) => Some(json!(format!("j{n}"))),
        JtiV::Empty => Some(json!("")),
        JtiV::Max => Some(json!("m".repeat(256))),
        JtiV::TooLong => Some(json!("l".repeat(257))),
        JtiV::Number => Some(json!(7)),
        JtiV::Missing => None,
        JtiV::Other(s) => Some(json!(s)),
    };
    let jti_text = jti
        .as_ref()
        .and_then(Value::as_str)
        .filter(|j| !j.is_empty() && j.len() <= 256)
        .map(str::to_owned);
    model.check(jti_text.is_some(), "jti");

    for (name, value) in [
        ("jti", jti),
        ("htm", htm),
        ("htu", htu),
        ("iat", iat),
        ("ath", ath),
    ] {
        if let Some(v) = value {
            claims.push((name.to_owned(), v));
        }
    }
    for e in &p.claims_extra {
        let (name, value) = match e {
            ClaimExtra::Named(n, v) => (n.text().to_owned(), v.json()),
            ClaimExtra::Other(n, v) => (n.clone(), v.json()),
        };
        let read = ["jti", "htm", "htu", "iat", "ath"].contains(&name.as_str());
        // In an array payload only the first of each name is written.
        let twice = claims.iter().any(|(k, _)| *k == name) && !p.claims_as_array;
        if read && twice {
            // A claim the library reads, twice: the claims do not parse.
            model.broken(&["dpop"]);
        } else if read && !claims.iter().any(|(k, _)| *k == name) {
            // A claim the variants left out, given here: not modelled.
            model.unmodelled = true;
        } else if name == "nonce" && (twice || depth(&value) > 120) {
            // Read (as any JSON value) only by a nonce-checking version of the library: twice,
            // or nested beyond serde_json's recursion limit, the claims may not parse.
            model.maybe(&["dpop"]);
        }
        claims.push((name, value));
    }
    let payload = if p.claims_as_array {
        // RFC 7519 §7.2: the claims are a JSON object.
        if TOLERATE_ARRAY_CLAIMS {
            model.maybe(&["dpop"]);
        } else {
            model.broken(&["dpop"]);
        }
        let get = |n: &str| {
            claims
                .iter()
                .find(|(k, _)| k == n)
                .map_or(Value::Null, |(_, v)| v.clone())
        };
        Value::Array(
            ["jti", "htm", "htu", "iat", "ath", "nonce"]
                .iter()
                .map(|n| get(n))
                .collect(),
        )
        .to_string()
    } else {
        json_object(&claims)
    };

    let message = format!(
        "{}.{}",
        b64(json_object(&header).as_bytes()),
        b64(payload.as_bytes())
    );
    let signature = match (p.signer, signer) {
        (SignerV::Unsigned, _) => String::new(),
        (SignerV::Hmac, _) | (_, None) => f.hmac.sign(message.as_bytes()),
        (_, Some(k)) => k.signer.sign(message.as_bytes()),
    };
    if p.signer == SignerV::Unsigned && !matches!(p.jwk, JwkV::Arbitrary(_)) {
        model.broken(&["signature", "jwk", "alg"]);
    }
    let mut proof = format!("{message}.{signature}").into_bytes();
    if let Some((at, byte)) = p.tamper {
        let i = usize::from(at) % proof.len();
        if proof[i] != byte {
            proof[i] = byte;
            model.broken(&[]);
        }
    }
    if proof.len() > MAX_PROOF_LEN {
        model.broken(&["dpop"]);
    }
    let key = if jwk_known {
        jwk_key.map(|k| k.id)
    } else {
        None
    };
    (proof, key, jti_text)
}

/// The `htu` claim for a variant.
fn htu_text(v: &HtuV, env: Env, step: &Step, sent_url: &str) -> Option<Value> {
    let (scheme, host, port, prefix) = env.base.parts();
    let path = format!("{prefix}{}", step.path.uri().path());
    let default = if scheme == "https" { "443" } else { "80" };
    let authority = match port {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    };
    let url = |scheme: &str, authority: &str, path: &str| format!("{scheme}://{authority}{path}");
    Some(json!(match v {
        HtuV::Exact => sent_url.to_owned(),
        HtuV::UpperScheme => url(&scheme.to_ascii_uppercase(), &authority, &path),
        HtuV::UpperHost => url(scheme, &authority.to_ascii_uppercase(), &path),
        HtuV::DefaultPort => url(scheme, &format!("{host}:{default}"), &path),
        HtuV::OtherPort => url(scheme, &format!("{host}:8443"), &path),
        HtuV::AppendDefaultPort => url(scheme, &format!("{authority}:{default}"), &path),
        HtuV::EmptyPort => url(scheme, &format!("{host}:"), &path),
        HtuV::Query => format!("{sent_url}?a=1"),
        HtuV::Fragment => format!("{sent_url}#f"),
        HtuV::QueryAndFragment => format!("{sent_url}?a=1&b#f?g"),
        HtuV::TrailingSlash => format!("{sent_url}/"),
        HtuV::OriginOnly => url(scheme, &authority, ""),
        HtuV::UpperPath => url(scheme, &authority, &path.to_ascii_uppercase()),
        HtuV::OtherScheme => url(
            if scheme == "https" { "http" } else { "https" },
            &authority,
            &path
        ),
        HtuV::Userinfo => url(scheme, &format!("user@{authority}"), &path),
        HtuV::PercentEncoded => {
            let mut p = path.clone();
            if let Some(c) = p.chars().nth(1).filter(char::is_ascii_alphanumeric) {
                p.replace_range(1..2, &format!("%{:02X}", c as u32));
            }
            url(scheme, &authority, &p)
        }
        HtuV::DotSegment => url(scheme, &authority, &format!("/x/..{path}")),
        HtuV::RequestAuthority => {
            let uri = step.path.uri();
            let named = uri.authority().map_or("evil.example", |a| a.as_str());
            url(uri.scheme_str().unwrap_or(scheme), named, &path)
        }
        HtuV::Relative => path,
        HtuV::LeadingSpace => format!(" {sent_url}"),
        HtuV::Missing => return None,
        HtuV::Number => return Some(json!(443)),
        HtuV::Other(s) => s.clone(),
    }))
}

fn run_steps(f: &Fixture, input: &Input) {
    let env = input.env;
    let layer = env.layer(f);
    let mut seen = Seen::default();
    for step in input.steps.iter().take(4) {
        let token = f.token(step.token);
        let method = step.method.method();
        let mut sent = Sent {
            method: method.clone(),
            uri: step.path.uri(),
            authorization: step.scheme.header(&token.text),
            dpop: Vec::new(),
            token: step.token,
        };
        let url = sent.url(env);
        let mut model = Model::default();
        let (proof, key, jti) = build_proof(f, env, step, &method, &url, &mut model);
        match &step.extra {
            Extra::One => sent.dpop.push(proof),
            Extra::Absent => {}
            Extra::SameTwice => sent.dpop.extend([proof.clone(), proof]),
            Extra::Empty => sent.dpop.extend([proof, Vec::new()]),
            Extra::Other(s) => sent.dpop.extend([proof, s.as_bytes().to_vec()]),
        }

        // The binding and the replay cache, as they stand before this request.
        match (key, &token.jkt) {
            (Some(k), Some(jkt)) => model.check(f.key(k).thumbprint == *jkt, "jkt"),
            (None, Some(_)) => model.maybe(&["jkt"]),
            (_, None) => {}
        }
        match (key, &jti) {
            (Some(k), Some(j)) => model.check(!seen.accepted.contains(&(k, j.clone())), "jti"),
            _ => model.maybe(&["jti"]),
        }
        model.check(seen.accepted.len() < env.capacity(), "jti");
        let want = expect(env, step, token, model);

        let Some(answer) = exchange(f, env, &layer, &sent, &mut seen) else {
            continue;
        };
        match want {
            Want::Accepted => assert_eq!(
                answer.status,
                StatusCode::OK,
                "refused ({:?} {:?}) though every rule is kept",
                answer.reason,
                answer.subject
            ),
            Want::Refused(reason, subjects) => {
                assert_ne!(
                    answer.status,
                    StatusCode::OK,
                    "accepted, but the model says {reason:?} {subjects:?}"
                );
                assert_eq!(answer.reason, Some(reason), "{:?}", answer.subject);
                if let Some(subjects) = subjects {
                    let got = answer.subject.as_deref().unwrap_or("");
                    assert!(
                        subjects.contains(&got),
                        "refused for {got:?}, expected one of {subjects:?}"
                    );
                }
            }
            Want::Either(subjects) => {
                if answer.status != StatusCode::OK {
                    assert_eq!(answer.reason, Some(Reason::InvalidDpopProof));
                    if let Some(subjects) = subjects {
                        let got = answer.subject.as_deref().unwrap_or("");
                        assert!(
                            subjects.contains(&got),
                            "refused for {got:?}, expected one of {subjects:?}"
                        );
                    }
                }
            }
        }
    }
}

/// What the model predicts for one request.
#[derive(Debug)]
enum Want {
    Accepted,
    /// Refused for this reason, with one of these subjects (any, if `None`).
    Refused(Reason, Option<Vec<&'static str>>),
    /// Either; if refused, `invalid_dpop_proof` with one of these subjects (any, if `None`).
    Either(Option<Vec<&'static str>>),
}

fn expect(env: Env, step: &Step, token: &Token, m: Model) -> Want {
    let dpop_scheme = matches!(
        step.scheme,
        SchemeV::Dpop | SchemeV::Lower | SchemeV::Upper | SchemeV::TwoSpaces
    );
    let bearer = matches!(step.scheme, SchemeV::Bearer);
    let token_read = dpop_scheme || (bearer && !env.required);
    if !token_read {
        // No token found: no Authorization, `DPoP<TAB>`, or Bearer when DPoP is required.
        return Want::Refused(Reason::Missing, None);
    }
    if bearer {
        return match token.jkt {
            Some(_) => Want::Refused(Reason::BoundToken, None),
            None => Want::Accepted,
        };
    }
    if token.jkt.is_none() && !env.accept_unbound {
        return Want::Refused(Reason::InvalidDpopProof, Some(vec!["cnf"]));
    }
    if !matches!(step.extra, Extra::One) {
        return Want::Refused(Reason::InvalidDpopProof, Some(vec!["dpop"]));
    }
    if m.unmodelled {
        return Want::Either(None);
    }
    if m.refused_anyhow {
        return Want::Refused(Reason::InvalidDpopProof, None);
    }
    if !m.broken.is_empty() {
        let mut subjects = m.broken;
        subjects.extend(m.maybe);
        return Want::Refused(Reason::InvalidDpopProof, Some(subjects));
    }
    if m.maybe.is_empty() {
        Want::Accepted
    } else {
        Want::Either(Some(m.maybe))
    }
}

// ----- raw bytes -----

/// `flags`: method (3 bits), scheme (2 bits), token (2 bits), required (1 bit); the rest
/// split at 0x00: the proof, an optional second proof, an optional path.
fn run_raw(f: &Fixture, flags: u8, rest: &[u8]) {
    let env = Env {
        base: Base::Loopback,
        required: flags & 0x80 != 0,
        accept_unbound: false,
        narrow: false,
        max_age: MaxAge::Default,
        capacity: Capacity::Default,
    };
    let method = [
        Method::GET,
        Method::POST,
        Method::PUT,
        Method::DELETE,
        Method::PATCH,
        Method::HEAD,
        Method::OPTIONS,
        Method::CONNECT,
    ][usize::from(flags & 7)]
    .clone();
    let scheme = [
        SchemeV::Dpop,
        SchemeV::Lower,
        SchemeV::Bearer,
        SchemeV::Upper,
    ][usize::from((flags >> 3) & 3)];
    let token = [
        TokenV::BoundP256,
        TokenV::Unbound,
        TokenV::BoundP384,
        TokenV::BoundElsewhere,
    ][usize::from((flags >> 5) & 3)];
    let mut parts = rest.splitn(3, |b| *b == 0);
    let proof = parts.next().unwrap_or_default().to_vec();
    let second = parts.next();
    let uri = parts
        .next()
        .and_then(|p| std::str::from_utf8(p).ok())
        .filter(|p| p.starts_with('/'))
        .and_then(|p| p.parse::<http::Uri>().ok())
        .unwrap_or_else(|| http::Uri::from_static("/me"));
    let mut dpop = vec![proof];
    if let Some(s) = second {
        dpop.push(s.to_vec());
    }
    let sent = Sent {
        method,
        uri,
        authorization: scheme.header(&f.token(token).text),
        dpop,
        token,
    };
    let layer = env.layer(f);
    let mut seen = Seen::default();
    if let Some(answer) = exchange(f, env, &layer, &sent, &mut seen) {
        if answer.status != StatusCode::OK {
            let reason = answer.reason.expect("reason");
            assert!(
                matches!(
                    reason,
                    Reason::InvalidDpopProof | Reason::BoundToken | Reason::Missing
                ),
                "refused for {reason:?}"
            );
        }
    }
}

// The first byte picks the mode: even, raw bytes (the next byte is the flags of
// [`run_raw`]); odd, structure-aware ([`Input`]).
fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        let Some((&flags, rest)) = rest.split_first() else {
            return;
        };
        run_raw(f, flags, rest);
        return;
    }
    let Ok(input) = Input::arbitrary_take_rest(arbitrary::Unstructured::new(rest)) else {
        return;
    };
    run_steps(f, &input);
});
