//! Configuration: every `ConfigError` the builder returns (and that its message names the
//! fix), keys in every form (PEM, DER, JWK, JWK set) verifying tokens minted by `TestKey`,
//! the `kid` matching rules and the algorithm allow-list.

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use std::time::Duration;
use tower::ServiceExt;
use tower_token_auth::testing::TestKey;
use tower_token_auth::{
    source, Algorithm, AuthConfig, AuthConfigBuilder, AuthError, ConfigError, Keys, Reason,
    TokenAuthLayer,
};

const ISS: &str = "https://issuer.example";
const AUD: &str = "api://orders";
const NOW: i64 = 1_700_000_000;
const SECRET_32: &[u8; 32] = b"0123456789abcdef0123456789abcdef";

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Issuer, audience, realm and a clock stopped at `NOW`; keys are up to the test.
fn base() -> AuthConfigBuilder {
    AuthConfig::builder()
        .issuer(ISS)
        .audience(AUD)
        .realm("api")
        .clock(|| NOW)
}

fn build_err(builder: AuthConfigBuilder) -> ConfigError {
    match builder.build() {
        Ok(cfg) => panic!("expected a ConfigError, built {cfg:?}"),
        Err(e) => e,
    }
}

fn token(key: &TestKey) -> String {
    key.token_at(NOW)
        .issuer(ISS)
        .audience(AUD)
        .subject("alice")
        .sign()
}

/// Sends `token` through the layer: `Ok` if the inner service answered, the `AuthError` of the
/// rejection otherwise (after checking the rejection's status and challenge).
async fn verdict(cfg: &AuthConfig, token: &str) -> Result<(), AuthError> {
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(TokenAuthLayer::new(cfg.clone()));
    let req = Request::get("/")
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let res = app.oneshot(req).await.unwrap();
    if res.status() == StatusCode::OK {
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"ok");
        return Ok(());
    }
    let err = res
        .extensions()
        .get::<AuthError>()
        .cloned()
        .expect("AuthError in the rejection's extensions");
    assert_eq!(res.status(), err.status());
    assert_eq!(
        res.headers().get(WWW_AUTHENTICATE).unwrap(),
        &format!(
            r#"Bearer realm="api", error="invalid_token", error_description="{}""#,
            err.reason().description()
        )
    );
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["reason"], err.reason().code());
    Err(err)
}

async fn accepts(cfg: &AuthConfig, key: &TestKey, what: &str) {
    if let Err(e) = verdict(cfg, &token(key)).await {
        panic!("{what}: token of {:?} rejected: {e:?}", key.algorithm());
    }
}

async fn rejects(cfg: &AuthConfig, token: &str, reason: Reason) -> AuthError {
    match verdict(cfg, token).await {
        Ok(()) => panic!("token accepted, expected {reason}"),
        Err(e) => {
            assert_eq!(e.reason(), reason, "{e:?}");
            e
        }
    }
}

// Minimal DER reading, to derive the DER and JWK forms from the PEM of the test keys.

/// Reads one TLV: (tag, contents, rest).
fn der_tlv(buf: &[u8]) -> (u8, &[u8], &[u8]) {
    let tag = buf[0];
    let first = buf[1] as usize;
    let (len, header) = if first < 0x80 {
        (first, 2)
    } else {
        let n = first & 0x7f;
        let len = buf[2..2 + n]
            .iter()
            .fold(0usize, |l, b| (l << 8) | *b as usize);
        (len, 2 + n)
    };
    (tag, &buf[header..header + len], &buf[header + len..])
}

fn pem_to_der(pem: &str) -> Vec<u8> {
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(b64).unwrap()
}

/// The subjectPublicKey bits of a SubjectPublicKeyInfo PEM: PKCS#1 for RSA, the point for EC,
/// the raw key for Ed25519.
fn spki_key(pem: &str) -> Vec<u8> {
    let der = pem_to_der(pem);
    let (tag, spki, _) = der_tlv(&der);
    assert_eq!(tag, 0x30);
    let (tag, _alg_id, rest) = der_tlv(spki);
    assert_eq!(tag, 0x30);
    let (tag, bits, _) = der_tlv(rest);
    assert_eq!(tag, 0x03);
    assert_eq!(bits[0], 0, "no unused bits");
    bits[1..].to_vec()
}

/// (n, e) of a PKCS#1 RSAPublicKey, without leading zero bytes.
fn rsa_n_e(pkcs1: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let (_, seq, _) = der_tlv(pkcs1);
    let (_, n, rest) = der_tlv(seq);
    let (_, e, _) = der_tlv(rest);
    let strip = |v: &[u8]| {
        let i = v.iter().position(|b| *b != 0).unwrap_or(v.len());
        v[i..].to_vec()
    };
    (strip(n), strip(e))
}

fn b64u(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The JWK of a test key's public half, with `kid`.
fn jwk_of(key: &TestKey, kid: &str) -> Value {
    let raw = spki_key(key.public_pem().expect("asymmetric key"));
    match key.algorithm() {
        Algorithm::ES256 | Algorithm::ES384 => {
            let (crv, size) = if key.algorithm() == Algorithm::ES256 {
                ("P-256", 32)
            } else {
                ("P-384", 48)
            };
            assert_eq!(raw.len(), 1 + 2 * size);
            json!({
                "kty": "EC", "kid": kid, "crv": crv, "use": "sig",
                "x": b64u(&raw[1..1 + size]), "y": b64u(&raw[1 + size..]),
            })
        }
        Algorithm::EdDSA => json!({ "kty": "OKP", "kid": kid, "crv": "Ed25519", "x": b64u(&raw) }),
        _ => {
            let (n, e) = rsa_n_e(&raw);
            json!({ "kty": "RSA", "kid": kid, "use": "sig", "n": b64u(&n), "e": b64u(&e) })
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Every ConfigError
// ---------------------------------------------------------------------------------------------

#[test]
fn no_keys() {
    let err = build_err(base());
    assert_eq!(err, ConfigError::NoKeys);
    let msg = err.to_string();
    assert!(msg.contains(".keys(Keys::hmac(..))"), "{msg}");
    assert!(msg.contains("Keys::jwks_json"), "{msg}");
}

#[test]
fn no_issuer() {
    let err = build_err(
        AuthConfig::builder()
            .keys(Keys::hmac(SECRET_32))
            .audience(AUD),
    );
    assert_eq!(err, ConfigError::NoIssuer);
    let msg = err.to_string();
    assert!(msg.contains(".issuer("), "{msg}");
    assert!(msg.contains(".skip_issuer_check()"), "{msg}");
}

#[test]
fn skip_issuer_check_satisfies_the_issuer_requirement() {
    AuthConfig::builder()
        .keys(Keys::hmac(SECRET_32))
        .audience(AUD)
        .skip_issuer_check()
        .build()
        .unwrap();
}

#[test]
fn no_audience() {
    let err = build_err(
        AuthConfig::builder()
            .keys(Keys::hmac(SECRET_32))
            .issuer(ISS),
    );
    assert_eq!(err, ConfigError::NoAudience);
    let msg = err.to_string();
    assert!(msg.contains(".audience("), "{msg}");
    assert!(msg.contains(".skip_audience_check()"), "{msg}");
}

#[test]
fn skip_audience_check_satisfies_the_audience_requirement() {
    AuthConfig::builder()
        .keys(Keys::hmac(SECRET_32))
        .issuer(ISS)
        .skip_audience_check()
        .build()
        .unwrap();
}

#[test]
fn weak_secret_of_12_bytes() {
    let err = build_err(base().keys(Keys::hmac(b"twelve bytes")));
    assert_eq!(
        err,
        ConfigError::WeakSecret {
            alg: Algorithm::HS256,
            len: 12,
            need: 32
        }
    );
    let msg = err.to_string();
    assert!(msg.contains("12 bytes"), "{msg}");
    assert!(msg.contains("use at least 32"), "{msg}");
}

#[test]
fn weak_secret_for_hs512_of_32_bytes() {
    let err = build_err(base().keys(Keys::hmac(SECRET_32).algorithms([Algorithm::HS512])));
    assert_eq!(
        err,
        ConfigError::WeakSecret {
            alg: Algorithm::HS512,
            len: 32,
            need: 64
        }
    );
    let msg = err.to_string();
    assert!(msg.contains("HS512"), "{msg}");
    assert!(msg.contains("use at least 64"), "{msg}");
}

#[test]
fn weak_oct_jwk_is_invalid_key() {
    let jwk = json!({ "kty": "oct", "k": b64u(b"short secret") }).to_string();
    let err = build_err(base().keys(Keys::jwk(jwk)));
    assert!(
        matches!(err, ConfigError::InvalidKey { key: "JWK", .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("shorter than 32 bytes"), "{err}");
}

fn assert_invalid_key(keys: Keys, label: &str, fix_mentions: &str) {
    let err = build_err(base().keys(keys));
    match &err {
        ConfigError::InvalidKey { key, fix } => {
            assert_eq!(*key, label);
            assert!(!fix.is_empty());
        }
        other => panic!("expected InvalidKey for {label}, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains(label), "{msg}");
    assert!(msg.contains(fix_mentions), "{msg}");
}

const GARBAGE_PEM: &str = "-----BEGIN PUBLIC KEY-----\nbm90IGEga2V5\n-----END PUBLIC KEY-----\n";

#[test]
fn invalid_key_garbage_rsa_pem() {
    assert_invalid_key(
        Keys::rsa_pem(GARBAGE_PEM),
        "RSA PEM key",
        "RSA public key PEM",
    );
    assert_invalid_key(Keys::rsa_pem("hello"), "RSA PEM key", "RSA public key PEM");
}

#[test]
fn invalid_key_private_rsa_pem() {
    // A private key where the public one belongs: refused, with the fix named.
    let private = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/testing/rsa_private.pem"
    ));
    assert_invalid_key(Keys::rsa_pem(private), "RSA PEM key", "not a private key");
}

#[test]
fn invalid_key_private_ec_and_ed_pem() {
    let p256 = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/testing/p256_private.pem"
    ));
    assert_invalid_key(Keys::ec_pem(p256), "EC PEM key", "EC public key PEM");
    let ed = include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src/testing/ed25519_private.pem"
    ));
    assert_invalid_key(
        Keys::ed_pem(ed),
        "Ed25519 PEM key",
        "Ed25519 public key PEM",
    );
}

#[test]
fn invalid_key_garbage_ec_pem() {
    assert_invalid_key(Keys::ec_pem(GARBAGE_PEM), "EC PEM key", "EC public key PEM");
}

#[test]
fn invalid_key_garbage_ed_pem() {
    assert_invalid_key(
        Keys::ed_pem(GARBAGE_PEM),
        "Ed25519 PEM key",
        "Ed25519 public key PEM",
    );
}

#[test]
fn invalid_key_short_rsa_der() {
    assert_invalid_key(
        Keys::rsa_der([0x30, 0x03, 0x02, 0x01, 0x01]),
        "RSA DER key",
        "PKCS#1",
    );
}

#[test]
fn invalid_key_garbage_rsa_der() {
    // Long enough to pass a length check, but not DER at all.
    assert_invalid_key(Keys::rsa_der([0xAB; 270]), "RSA DER key", "PKCS#1");
}

#[test]
fn invalid_key_garbage_ec_point() {
    assert_invalid_key(
        Keys::ec_point([0x02; 33]),
        "raw EC point key",
        "uncompressed P-256 or P-384",
    );
    assert_invalid_key(
        Keys::ec_point([0x04; 64]),
        "raw EC point key",
        "uncompressed P-256 or P-384",
    );
}

#[test]
fn invalid_key_garbage_ed_raw() {
    assert_invalid_key(Keys::ed_raw([7u8; 31]), "raw Ed25519 key", "32-byte");
}

#[test]
fn invalid_key_garbage_jwk() {
    assert_invalid_key(Keys::jwk("not json"), "JWK", "kty");
    assert_invalid_key(
        Keys::jwk(r#"{"kty":"EC","crv":"P-521","x":"AA","y":"AA"}"#),
        "JWK",
        "P-256 or P-384",
    );
}

#[test]
fn invalid_key_encryption_jwk() {
    let mut jwk = jwk_of(&TestKey::rs256(), "enc-1");
    jwk["use"] = "enc".into();
    assert_invalid_key(Keys::jwk(jwk.to_string()), "JWK", "signature key");
}

#[test]
fn invalid_key_garbage_jwk_set() {
    assert_invalid_key(Keys::jwks_json("not json"), "JWK set", "{\"keys\": [...]}");
    assert_invalid_key(
        Keys::jwks_json(r#"{"keys": []}"#),
        "JWK set",
        "no usable signature key",
    );
    assert_invalid_key(
        Keys::jwks_json(r#"{"keys": [{"kty": "nope"}]}"#),
        "JWK set",
        "no usable signature key",
    );
}

#[test]
fn invalid_key_jwk_set_with_duplicate_kid() {
    let set =
        json!({ "keys": [jwk_of(&TestKey::rs256(), "same"), jwk_of(&TestKey::es256(), "same")] });
    assert_invalid_key(Keys::jwks_json(set.to_string()), "JWK set", "same kid");
}

#[test]
fn algorithm_not_for_key() {
    let err = build_err(base().keys(
        Keys::rsa_pem(TestKey::rs256().public_pem().unwrap()).algorithms([Algorithm::ES256]),
    ));
    assert_eq!(
        err,
        ConfigError::AlgorithmNotForKey {
            alg: Algorithm::ES256,
            key: "RSA PEM key"
        }
    );
    let msg = err.to_string();
    assert!(
        msg.contains("allow only the algorithms of the key's type"),
        "{msg}"
    );

    let err = build_err(base().keys(Keys::hmac(SECRET_32).algorithms([Algorithm::RS256])));
    assert_eq!(
        err,
        ConfigError::AlgorithmNotForKey {
            alg: Algorithm::RS256,
            key: "HMAC secret"
        }
    );
}

#[test]
fn duplicate_kid() {
    let err = build_err(
        base()
            .keys(TestKey::rs256().with_kid("k1").keys())
            .keys(TestKey::es256().with_kid("k1").keys()),
    );
    assert_eq!(err, ConfigError::DuplicateKid("k1".into()));
    assert!(
        err.to_string().contains("give each key its own kid"),
        "{err}"
    );
}

#[test]
fn duplicate_kid_between_jwk_and_pem() {
    let err = build_err(
        base()
            .keys(Keys::jwk(jwk_of(&TestKey::ed25519(), "k1").to_string()))
            .keys(TestKey::es384().with_kid("k1").keys()),
    );
    assert_eq!(err, ConfigError::DuplicateKid("k1".into()));
}

#[test]
fn no_usable_key() {
    // An RSA key only, and only ES256 allowed: nothing left.
    let err = build_err(
        base()
            .keys(TestKey::rs256().keys())
            .algorithms([Algorithm::ES256]),
    );
    assert_eq!(err, ConfigError::NoUsableKey);
    let msg = err.to_string();
    assert!(msg.contains("widen .algorithms(..)"), "{msg}");
    assert!(msg.contains("add a key of the allowed type"), "{msg}");
}

#[test]
fn algorithm_without_key() {
    let err = build_err(
        base()
            .keys(TestKey::rs256().keys())
            .algorithms([Algorithm::RS256, Algorithm::EdDSA]),
    );
    assert_eq!(err, ConfigError::AlgorithmWithoutKey(Algorithm::EdDSA));
    let msg = err.to_string();
    assert!(msg.contains("EdDSA"), "{msg}");
    assert!(
        msg.contains("remove it from .algorithms(..) or add a key for it"),
        "{msg}"
    );
}

#[test]
fn leeway_too_large() {
    let err = build_err(
        base()
            .keys(Keys::hmac(SECRET_32))
            .leeway(Duration::from_secs(301)),
    );
    assert_eq!(err, ConfigError::LeewayTooLarge(301));
    let msg = err.to_string();
    assert!(msg.contains("at most 300 s"), "{msg}");
    assert!(msg.contains("NTP"), "{msg}");
    // The maximum itself is accepted.
    base()
        .keys(Keys::hmac(SECRET_32))
        .leeway(Duration::from_secs(300))
        .build()
        .unwrap();
}

#[test]
fn zero_token_length() {
    let err = build_err(base().keys(Keys::hmac(SECRET_32)).max_token_len(0));
    assert_eq!(err, ConfigError::ZeroTokenLength);
    assert!(err.to_string().contains("at least 1 byte"), "{err}");
}

#[test]
fn invalid_text_realm_with_a_quote() {
    let err = build_err(base().keys(Keys::hmac(SECRET_32)).realm("my \"api\""));
    assert_eq!(err, ConfigError::InvalidText("realm"));
    let msg = err.to_string();
    assert!(msg.contains("realm"), "{msg}");
    assert!(msg.contains("printable ASCII without"), "{msg}");
}

#[test]
fn invalid_text_realm_with_a_newline_or_backslash() {
    for realm in ["api\r\nSet-Cookie: x=1", "a\\b", "caf\u{e9}"] {
        let err = build_err(base().keys(Keys::hmac(SECRET_32)).realm(realm));
        assert_eq!(err, ConfigError::InvalidText("realm"), "{realm:?}");
    }
}

#[test]
fn invalid_text_required_type() {
    let err = build_err(base().keys(Keys::hmac(SECRET_32)).require_type("at+\"jwt"));
    assert_eq!(err, ConfigError::InvalidText("required type"));
    let err = build_err(base().keys(Keys::hmac(SECRET_32)).require_type(""));
    assert_eq!(err, ConfigError::InvalidText("required type"));
}

#[test]
fn invalid_source_name_header_with_a_space() {
    let err = build_err(
        base()
            .keys(Keys::hmac(SECRET_32))
            .source(source::header("x token")),
    );
    assert_eq!(err, ConfigError::InvalidSourceName("x token".into()));
    let msg = err.to_string();
    assert!(msg.contains("`x token`"), "{msg}");
    assert!(
        msg.contains("use a non-empty name of visible ASCII"),
        "{msg}"
    );
}

#[test]
fn invalid_source_name_scheme_cookie_and_query() {
    let err = build_err(
        base()
            .keys(Keys::hmac(SECRET_32))
            .source(source::header_with_scheme("x-token", "")),
    );
    assert_eq!(err, ConfigError::InvalidSourceName(String::new()));
    let err = build_err(
        base()
            .keys(Keys::hmac(SECRET_32))
            .source(source::cookie("a=b")),
    );
    assert_eq!(err, ConfigError::InvalidSourceName("a=b".into()));
    let err = build_err(base().keys(Keys::hmac(SECRET_32)).source(source::query("")));
    assert_eq!(err, ConfigError::InvalidSourceName(String::new()));
}

// ---------------------------------------------------------------------------------------------
// Keys in every form verify TestKey tokens
// ---------------------------------------------------------------------------------------------

fn asymmetric_keys() -> [TestKey; 4] {
    [
        TestKey::rs256(),
        TestKey::es256(),
        TestKey::es384(),
        TestKey::ed25519(),
    ]
}

fn pem_keys(key: &TestKey) -> Keys {
    let pem = key.public_pem().unwrap();
    match key.algorithm() {
        Algorithm::ES256 | Algorithm::ES384 => Keys::ec_pem(pem),
        Algorithm::EdDSA => Keys::ed_pem(pem),
        _ => Keys::rsa_pem(pem),
    }
}

fn der_keys(key: &TestKey) -> Keys {
    let raw = spki_key(key.public_pem().unwrap());
    match key.algorithm() {
        Algorithm::ES256 | Algorithm::ES384 => Keys::ec_point(raw),
        Algorithm::EdDSA => Keys::ed_raw(raw),
        _ => Keys::rsa_der(raw),
    }
}

#[tokio::test]
async fn pem_keys_verify() {
    for key in asymmetric_keys() {
        let cfg = base().keys(pem_keys(&key)).build().unwrap();
        accepts(&cfg, &key, "PEM").await;
    }
}

#[tokio::test]
async fn pkcs1_rsa_pem_verifies() {
    // `BEGIN RSA PUBLIC KEY`, built from the SPKI PEM.
    let pkcs1 = spki_key(TestKey::rs256().public_pem().unwrap());
    let b64 = STANDARD.encode(pkcs1);
    let mut pem = String::from("-----BEGIN RSA PUBLIC KEY-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(chunk).unwrap());
        pem.push('\n');
    }
    pem.push_str("-----END RSA PUBLIC KEY-----\n");
    let cfg = base().keys(Keys::rsa_pem(pem)).build().unwrap();
    accepts(&cfg, &TestKey::rs256(), "PKCS#1 PEM").await;
}

#[tokio::test]
async fn der_keys_verify() {
    for key in asymmetric_keys() {
        let cfg = base().keys(der_keys(&key)).build().unwrap();
        accepts(&cfg, &key, "DER").await;
    }
}

#[tokio::test]
async fn jwk_keys_verify() {
    for key in asymmetric_keys() {
        let key = key.with_kid("jwk-1");
        let cfg = base()
            .keys(Keys::jwk(jwk_of(&key, "jwk-1").to_string()))
            .build()
            .unwrap();
        accepts(&cfg, &key, "JWK").await;
    }
}

#[tokio::test]
async fn jwk_set_verifies_each_of_its_keys() {
    let keys: Vec<TestKey> = asymmetric_keys()
        .into_iter()
        .enumerate()
        .map(|(i, k)| k.with_kid(format!("k{i}")))
        .collect();
    let mut set: Vec<Value> = keys.iter().map(|k| jwk_of(k, k.kid().unwrap())).collect();
    // An encryption key and a key of an unknown type are skipped, not fatal.
    let mut enc = jwk_of(&TestKey::rs256(), "enc");
    enc["use"] = "enc".into();
    set.push(enc);
    set.push(json!({ "kty": "unknown", "kid": "weird" }));
    let cfg = base()
        .keys(Keys::jwks_json(json!({ "keys": set }).to_string()))
        .build()
        .unwrap();
    for key in &keys {
        accepts(&cfg, key, "JWK set").await;
    }
    let enc_token = token(&TestKey::rs256().with_kid("enc"));
    rejects(&cfg, &enc_token, Reason::UnknownKey).await;
}

#[tokio::test]
async fn rsa_key_accepts_the_whole_rsa_family() {
    let cfg = base().keys(pem_keys(&TestKey::rs256())).build().unwrap();
    for alg in [
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
    ] {
        accepts(&cfg, &TestKey::rsa(alg), "RSA family").await;
    }
}

#[tokio::test]
async fn jwk_alg_pins_the_algorithm() {
    let key = TestKey::rsa(Algorithm::PS256).with_kid("r");
    let mut jwk = jwk_of(&key, "r");
    jwk["alg"] = "PS256".into();
    let cfg = base().keys(Keys::jwk(jwk.to_string())).build().unwrap();
    accepts(&cfg, &key, "pinned PS256").await;
    let rs = TestKey::rsa(Algorithm::RS256).with_kid("r");
    rejects(&cfg, &token(&rs), Reason::AlgNotAllowed).await;
}

#[tokio::test]
async fn hmac_secret_and_oct_jwk_verify() {
    let secret = [0x5Au8; 64];
    let jwk = json!({ "kty": "oct", "kid": "h", "k": b64u(&secret) }).to_string();
    for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
        let key = TestKey::hmac(alg, secret.to_vec());
        let cfg = base().keys(Keys::hmac(secret)).build().unwrap();
        accepts(&cfg, &key, "HMAC secret").await;

        let key = key.with_kid("h");
        let cfg = base().keys(Keys::jwk(jwk.clone())).build().unwrap();
        accepts(&cfg, &key, "oct JWK").await;
    }
}

#[tokio::test]
async fn hmac_secret_allows_only_algorithms_its_length_supports() {
    let secret = *SECRET_32;
    let cfg = base().keys(Keys::hmac(secret)).build().unwrap();
    accepts(
        &cfg,
        &TestKey::hmac(Algorithm::HS256, secret.to_vec()),
        "HS256",
    )
    .await;
    let hs512 = TestKey::hmac(Algorithm::HS512, secret.to_vec());
    rejects(&cfg, &token(&hs512), Reason::AlgNotAllowed).await;
}

// ---------------------------------------------------------------------------------------------
// kid rules
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn kidless_single_key_is_a_wildcard() {
    let key = TestKey::es256();
    let cfg = base().keys(key.keys()).build().unwrap();
    accepts(&cfg, &key, "token without kid").await;
    accepts(
        &cfg,
        &key.clone().with_kid("rotated-2025"),
        "token with any kid",
    )
    .await;
}

#[tokio::test]
async fn kidless_key_is_a_wildcard_beside_keys_with_kids() {
    let rsa = TestKey::rs256().with_kid("rsa-1");
    let ec = TestKey::es256();
    let cfg = base().keys(rsa.keys()).keys(ec.keys()).build().unwrap();
    accepts(&cfg, &rsa, "named key").await;
    accepts(
        &cfg,
        &ec.clone().with_kid("whatever"),
        "unknown kid, kid-less EC key",
    )
    .await;
    // An RS256 token with an unknown kid: the only kid-less key cannot verify RS256.
    let stray = TestKey::rs256().with_kid("rsa-2");
    rejects(&cfg, &token(&stray), Reason::UnknownKey).await;
}

#[tokio::test]
async fn two_kidless_keys_and_a_kidless_token_is_unknown_key() {
    let a = TestKey::hs256();
    let b = TestKey::hs256();
    let cfg = base().keys(a.keys()).keys(b.keys()).build().unwrap();
    let err = rejects(&cfg, &token(&a), Reason::UnknownKey).await;
    assert!(!err.has(Reason::BadSignature), "{err:?}");
}

#[tokio::test]
async fn two_kidless_keys_of_different_families_are_told_apart_by_alg() {
    let rsa = TestKey::rs256();
    let ed = TestKey::ed25519();
    let cfg = base().keys(rsa.keys()).keys(ed.keys()).build().unwrap();
    accepts(&cfg, &rsa, "RS256 without kid").await;
    accepts(&cfg, &ed, "EdDSA without kid").await;
}

#[tokio::test]
async fn unknown_kid_with_all_keys_named_is_unknown_key() {
    let a = TestKey::es256().with_kid("a");
    let b = TestKey::es384().with_kid("b");
    let cfg = base().keys(a.keys()).keys(b.keys()).build().unwrap();
    accepts(&cfg, &a, "kid a").await;
    accepts(&cfg, &b, "kid b").await;
    let err = rejects(
        &cfg,
        &token(&TestKey::es256().with_kid("c")),
        Reason::UnknownKey,
    )
    .await;
    assert_eq!(err.facts().kid.as_deref(), Some("c"));
    // A kid-less token is matched by algorithm: exactly one key verifies ES256.
    accepts(&cfg, &TestKey::es256(), "kid-less ES256, one ES256 key").await;
}

#[tokio::test]
async fn rs256_token_naming_an_hmac_key_is_alg_not_allowed() {
    let hmac = TestKey::hs256().with_kid("shared");
    let rsa = TestKey::rs256().with_kid("rsa");
    let cfg = base().keys(hmac.keys()).keys(rsa.keys()).build().unwrap();
    let forged = TestKey::rs256().with_kid("shared");
    rejects(&cfg, &token(&forged), Reason::AlgNotAllowed).await;
}

#[tokio::test]
async fn hs256_token_keyed_with_the_rsa_public_pem_is_alg_not_allowed() {
    // The classic confusion attack: HMAC over the RSA public key, naming the RSA key.
    let rsa = TestKey::rs256().with_kid("rsa");
    let hmac = TestKey::hs256().with_kid("h");
    let cfg = base().keys(rsa.keys()).keys(hmac.keys()).build().unwrap();
    let pem = TestKey::rs256().public_pem().unwrap().as_bytes().to_vec();
    let forged = TestKey::hmac(Algorithm::HS256, pem).with_kid("rsa");
    rejects(&cfg, &token(&forged), Reason::AlgNotAllowed).await;
}

// ---------------------------------------------------------------------------------------------
// Algorithm allow-list
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn algorithms_narrow_so_ps256_is_alg_not_allowed() {
    let cfg = base()
        .keys(TestKey::rs256().keys())
        .algorithms([Algorithm::RS256])
        .build()
        .unwrap();
    accepts(&cfg, &TestKey::rs256(), "RS256 allowed").await;
    let ps = TestKey::rsa(Algorithm::PS256);
    rejects(&cfg, &token(&ps), Reason::AlgNotAllowed).await;
}

#[tokio::test]
async fn key_algorithms_narrow_that_key_only() {
    let rsa = TestKey::rs256().with_kid("rsa");
    let ec = TestKey::es256().with_kid("ec");
    let cfg = base()
        .keys(rsa.keys().algorithms([Algorithm::PS384]))
        .keys(ec.keys())
        .build()
        .unwrap();
    accepts(
        &cfg,
        &TestKey::rsa(Algorithm::PS384).with_kid("rsa"),
        "PS384",
    )
    .await;
    accepts(&cfg, &ec, "ES256 untouched").await;
    rejects(&cfg, &token(&rsa), Reason::AlgNotAllowed).await;
}

#[tokio::test]
async fn algorithms_drop_keys_of_other_families() {
    let rsa = TestKey::rs256().with_kid("rsa");
    let ec = TestKey::es256().with_kid("ec");
    let cfg = base()
        .keys(rsa.keys())
        .keys(ec.keys())
        .algorithms([Algorithm::ES256])
        .build()
        .unwrap();
    accepts(&cfg, &ec, "ES256").await;
    rejects(&cfg, &token(&rsa), Reason::AlgNotAllowed).await;
}

#[tokio::test]
async fn none_algorithm_is_never_accepted() {
    let key = TestKey::hs256();
    let cfg = base().keys(key.keys()).build().unwrap();
    let good = token(&key);
    let mut parts = good.split('.');
    let _header = parts.next().unwrap();
    let payload = parts.next().unwrap();
    let header = b64u(br#"{"alg":"none","typ":"JWT"}"#);
    let unsigned = format!("{header}.{payload}.");
    rejects(&cfg, &unsigned, Reason::AlgNotAllowed).await;
}
