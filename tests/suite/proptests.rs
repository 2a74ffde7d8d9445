//! Property tests (proptest): whatever a client sends, validation and the layer answer with a
//! rejection, never a panic.
//!
//! - any byte string as a token is an error (through `AuthConfig::validate`, and through the
//!   layer as the `Authorization` value wherever it is a valid header value);
//! - a valid token with any single byte changed is rejected (random positions and values for
//!   every key type, plus every position with a fixed set of replacement bytes);
//! - cookie headers and query strings of any content never panic;
//! - arbitrary JSON claims, correctly signed, are accepted or refused for a claim reason.
//!
//! Case counts are fixed per test (see `CASES_*`; fewer for the signing tests with the slow
//! pure-Rust crypto backend), the whole file runs in a few seconds. The
//! fuzz targets in `fuzz/` cover the same ground for much longer runs.

use std::convert::Infallible;
use std::sync::OnceLock;

use axum::body::Body;
use http::header::{AUTHORIZATION, COOKIE, WWW_AUTHENTICATE};
use http::{HeaderValue, Request, Response, StatusCode, Uri};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{Map, Value};
use tower::{service_fn, Layer, ServiceExt};
use tower_token_auth::source::{self, TokenSource};
use tower_token_auth::testing::TestKey;
use tower_token_auth::{
    Algorithm, AuthConfig, AuthConfigBuilder, AuthError, Keys, Reason, StandardClaims,
    TokenAuthLayer,
};

const ISS: &str = "https://issuer.test";
const AUD: &str = "api";
const SECRET: &[u8; 32] = b"0123456789abcdef0123456789abcdef";
/// The configurations' fixed clock (2023-11-14), so signed tokens are valid at any real time.
const NOW: i64 = 1_700_000_000;

/// The pure-Rust backend (`rust-crypto` without `aws-lc-rs`) is slow in debug builds (an
/// ECDSA or RSA operation takes milliseconds): the tests that sign or verify many tokens run
/// fewer cases there, so the file stays within a few seconds on both backends.
const FAST_CRYPTO: bool = cfg!(feature = "aws-lc-rs");

/// `n` cases with aws-lc-rs, an eighth with the pure-Rust backend.
const fn crypto_cases(n: u32) -> u32 {
    if FAST_CRYPTO {
        n
    } else {
        n / 8
    }
}

const CASES_BYTES: u32 = 512;
const CASES_HEADER: u32 = 256;
const CASES_TAMPER: u32 = crypto_cases(1024);
const CASES_COOKIE: u32 = 256;
const CASES_QUERY: u32 = 256;
const CASES_CLAIMS: u32 = crypto_cases(256);

/// The test keys, one per family, each with a `kid`.
fn keys() -> &'static [TestKey] {
    static KEYS: OnceLock<Vec<TestKey>> = OnceLock::new();
    KEYS.get_or_init(|| {
        vec![
            TestKey::hmac(Algorithm::HS256, SECRET.to_vec()).with_kid("hs"),
            TestKey::rs256().with_kid("rsa"),
            TestKey::es256().with_kid("p256"),
            TestKey::es384().with_kid("p384"),
            TestKey::ed25519().with_kid("ed"),
        ]
    })
}

/// Every test key, one issuer and audience, the fixed clock.
fn builder() -> AuthConfigBuilder {
    let all = keys()
        .iter()
        .fold(Keys::default(), |acc, k| acc.and(k.keys()));
    AuthConfig::builder()
        .keys(all)
        .issuer(ISS)
        .audience(AUD)
        .realm("api")
        .clock(|| NOW)
}

fn config() -> AuthConfig {
    builder().build().expect("test config builds")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
}

fn runner(cases: u32) -> TestRunner {
    TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    })
}

/// A valid token of `key`, at the fixed clock.
fn valid_token(key: &TestKey) -> String {
    key.token_at(NOW)
        .issuer(ISS)
        .audience(AUD)
        .subject("u1")
        .sign()
}

/// The answer of the layer (default responder, `StandardClaims`) to `req`, with the
/// `AuthError` checks every rejection must pass.
async fn through_layer(
    layer: &TokenAuthLayer,
    req: Request<Body>,
) -> Result<Response<Body>, TestCaseError> {
    let svc = layer.layer(service_fn(|_req: Request<Body>| async {
        Ok::<_, Infallible>(Response::new(Body::empty()))
    }));
    let res = svc.oneshot(req).await.expect("infallible");
    if res.status() != StatusCode::OK {
        let err = res.extensions().get::<AuthError>();
        prop_assert!(err.is_some(), "a {} without its AuthError", res.status());
        prop_assert_eq!(err.map(AuthError::status), Some(res.status()));
        prop_assert!(res.headers().contains_key(WWW_AUTHENTICATE));
    }
    Ok(res)
}

/// Bytes a client could send as a token: anything, JWT-shaped text, or a valid token's bytes
/// cut short or extended.
fn token_bytes() -> impl Strategy<Value = Vec<u8>> {
    let valid = valid_token(&keys()[0]).into_bytes();
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..600),
        "[A-Za-z0-9_=+/-]{0,40}(\\.[A-Za-z0-9_=+/ -]{0,40}){0,5}".prop_map(String::into_bytes),
        (0..valid.len(), prop::collection::vec(any::<u8>(), 0..8)).prop_map(move |(cut, tail)| {
            let mut b = valid[..cut].to_vec();
            b.extend(tail);
            b
        }),
    ]
}

#[test]
fn any_byte_string_as_a_token_is_an_error() {
    let cfg = config();
    let rt = runtime();
    runner(CASES_BYTES)
        .run(&token_bytes(), |bytes| {
            let token = String::from_utf8_lossy(&bytes);
            let r = rt.block_on(cfg.validate::<StandardClaims>(&token));
            let err = match r {
                Ok(_) => return Err(TestCaseError::fail(format!("accepted {token:?}"))),
                Err(e) => e,
            };
            prop_assert_eq!(err.status(), StatusCode::UNAUTHORIZED, "{:?}", err.reason());
            Ok(())
        })
        .unwrap();
}

#[test]
fn any_byte_string_as_the_authorization_header_is_rejected_by_the_layer() {
    let layer = TokenAuthLayer::new(config());
    let rt = runtime();
    let strategy = (any::<bool>(), token_bytes());
    runner(CASES_HEADER)
        .run(&strategy, |(with_scheme, bytes)| {
            let mut value = if with_scheme {
                b"Bearer ".to_vec()
            } else {
                Vec::new()
            };
            value.extend_from_slice(&bytes);
            let Ok(value) = HeaderValue::from_bytes(&value) else {
                return Ok(()); // no client can send it
            };
            let req = Request::get("/")
                .header(AUTHORIZATION, value)
                .body(Body::empty())
                .unwrap();
            let res = rt.block_on(through_layer(&layer, req))?;
            prop_assert!(
                matches!(
                    res.status(),
                    StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED
                ),
                "answered {}",
                res.status()
            );
            Ok(())
        })
        .unwrap();
}

/// `token` with byte `i` replaced by `b`, as text (lossily, as a server would never see
/// invalid UTF-8 as a `&str`).
fn changed(token: &str, i: usize, b: u8) -> String {
    let mut bytes = token.as_bytes().to_vec();
    bytes[i] = b;
    String::from_utf8_lossy(&bytes).into_owned()
}

#[test]
fn a_valid_token_with_any_single_byte_changed_is_rejected() {
    let cfg = config();
    let rt = runtime();
    let tokens: Vec<String> = keys().iter().map(valid_token).collect();
    for t in &tokens {
        assert!(rt.block_on(cfg.validate::<StandardClaims>(t)).is_ok());
    }
    let strategy = (0..tokens.len(), any::<prop::sample::Index>(), any::<u8>());
    runner(CASES_TAMPER)
        .run(&strategy, |(k, at, b)| {
            let token = &tokens[k];
            let i = at.index(token.len());
            if token.as_bytes()[i] == b {
                return Ok(());
            }
            let bad = changed(token, i, b);
            let r = rt.block_on(cfg.validate::<StandardClaims>(&bad));
            prop_assert!(r.is_err(), "byte {} set to {:#04x} was accepted", i, b);
            Ok(())
        })
        .unwrap();
}

#[test]
fn a_valid_token_changed_at_every_position_is_rejected() {
    let cfg = config();
    let rt = runtime();
    for key in keys() {
        let token = valid_token(key);
        // Every position; with the slow backend every 7th for the asymmetric keys.
        let step = if FAST_CRYPTO || key.algorithm() == Algorithm::HS256 {
            1
        } else {
            7
        };
        for (i, &orig) in token.as_bytes().iter().enumerate().step_by(step) {
            // The neighbouring character (often the same 6 bits but one), a separator, a
            // padding character, a space and a non-ASCII byte.
            for b in [orig ^ 1, b'.', b'=', b' ', 0xff] {
                if b == orig {
                    continue;
                }
                let bad = changed(&token, i, b);
                let r = rt.block_on(cfg.validate::<StandardClaims>(&bad));
                assert!(
                    r.is_err(),
                    "{:?}: byte {i} ({:?}) set to {b:#04x} was accepted",
                    key.algorithm(),
                    orig as char
                );
            }
        }
    }
}

/// Cookie header values: anything, or `name=value` pairs around the token cookie.
fn cookie_value() -> impl Strategy<Value = Vec<u8>> {
    let pair = (
        prop_oneof![Just("session".to_owned()), "[ -~]{0,8}"],
        prop::collection::vec(any::<u8>(), 0..40),
    )
        .prop_map(|(n, v)| {
            let mut b = n.into_bytes();
            b.push(b'=');
            b.extend(v);
            b
        });
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..120),
        prop::collection::vec(pair, 0..5).prop_map(|pairs| pairs.join(&b"; "[..])),
    ]
}

#[cfg(feature = "cookie")]
#[test]
fn cookie_headers_of_any_content_never_panic() {
    let cfg = builder().source(source::cookie("session")).build().unwrap();
    let direct = source::cookie("session");
    let layer = TokenAuthLayer::new(cfg);
    let rt = runtime();
    let strategy = prop::collection::vec(cookie_value(), 0..4);
    runner(CASES_COOKIE)
        .run(&strategy, |values| {
            let mut req = Request::get("/").body(Body::empty()).unwrap();
            for v in &values {
                if let Ok(v) = HeaderValue::from_bytes(v) {
                    req.headers_mut().append(COOKIE, v);
                }
            }
            let (parts, body) = req.into_parts();
            match direct.find(&parts) {
                Ok(Some(t)) => prop_assert!(!t.is_empty()),
                Ok(None) => {}
                Err(e) => prop_assert_eq!(e.reason(), Reason::InvalidRequest),
            }
            let res = rt.block_on(through_layer(&layer, Request::from_parts(parts, body)))?;
            prop_assert!(res.status().is_client_error(), "{}", res.status());
            Ok(())
        })
        .unwrap();
}

/// `/?<query>`, with the bytes a URI cannot hold percent-encoded (`&`, `=`, `+`, `%` kept).
fn uri_with_query(query: &[u8]) -> Uri {
    let mut s = String::from("/?");
    for &b in query {
        if b.is_ascii_alphanumeric() || b"&=+%-._~".contains(&b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s.parse().expect("an escaped query parses")
}

#[test]
fn query_strings_of_any_content_never_panic() {
    let cfg = builder()
        .source(source::bearer())
        .source(source::query("access_token"))
        .build()
        .unwrap();
    let direct = source::query("access_token");
    let layer = TokenAuthLayer::new(cfg);
    let rt = runtime();
    let param = prop_oneof![
        prop::collection::vec(any::<u8>(), 0..60),
        prop::collection::vec(any::<u8>(), 0..40)
            .prop_map(|v| [&b"access_token="[..], &v].concat()),
    ];
    let strategy = prop::collection::vec(param, 0..4).prop_map(|p| p.join(&b"&"[..]));
    runner(CASES_QUERY)
        .run(&strategy, |query| {
            let req = Request::get(uri_with_query(&query))
                .body(Body::empty())
                .unwrap();
            let (parts, body) = req.into_parts();
            match direct.find(&parts) {
                Ok(Some(t)) => prop_assert!(!t.is_empty()),
                Ok(None) => {}
                Err(e) => prop_assert_eq!(e.reason(), Reason::InvalidRequest),
            }
            let res = rt.block_on(through_layer(&layer, Request::from_parts(parts, body)))?;
            prop_assert!(res.status().is_client_error(), "{}", res.status());
            Ok(())
        })
        .unwrap();
}

/// JSON values, with the interesting ones (the right issuer and audience, dates around
/// "now") likely.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        "\\PC{0,12}".prop_map(Value::from),
        Just(Value::from(ISS)),
        Just(Value::from(AUD)),
        (-400i64..400).prop_map(|d| Value::from(NOW + d)),
        (-400.0f64..400.0).prop_map(|d| Value::from(NOW as f64 + d)),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec(("[a-z_.]{0,6}", inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

fn claim_name() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "iss", "aud", "exp", "nbf", "iat", "sub", "jti", "scope", "scp", "roles",
        ])
        .prop_map(str::to_owned),
        "[a-z_]{0,8}",
    ]
}

#[test]
fn arbitrary_signed_claims_yield_ok_or_a_claim_reason() {
    let cfg = config();
    let layer = TokenAuthLayer::new(config());
    let rt = runtime();
    let strategy = (
        0..keys().len(),
        prop::collection::vec((claim_name(), json_value()), 0..6),
        prop::collection::vec(claim_name(), 0..3),
    );
    runner(CASES_CLAIMS)
        .run(&strategy, |(k, set, remove)| {
            let mut b = keys()[k].token_at(NOW).issuer(ISS).audience(AUD);
            for (name, value) in set {
                b = b.claim(&name, value);
            }
            for name in &remove {
                b = b.without(name);
            }
            let token = b.sign();
            let validated = rt.block_on(cfg.validate::<StandardClaims>(&token));
            if let Err(e) = &validated {
                prop_assert!(
                    matches!(
                        e.reason(),
                        Reason::Expired
                            | Reason::NotYetValid
                            | Reason::WrongIssuer
                            | Reason::WrongAudience
                            | Reason::MissingClaim
                            | Reason::InvalidClaim
                    ),
                    "a correctly signed token refused for {:?}",
                    e.reason()
                );
            }
            // The layer answers the same, the first time and from its cache.
            for _ in 0..2 {
                let req = Request::get("/")
                    .header(AUTHORIZATION, format!("Bearer {token}"))
                    .body(Body::empty())
                    .unwrap();
                let res = rt.block_on(through_layer(&layer, req))?;
                let reason = res.extensions().get::<AuthError>().map(AuthError::reason);
                prop_assert_eq!(reason, validated.as_ref().err().map(AuthError::reason));
            }
            Ok(())
        })
        .unwrap();
}
