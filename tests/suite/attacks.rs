//! Known attacks on JWT verifiers, each as a named test: `alg: none`, RS256/HS256 key
//! confusion, psychic ECDSA signatures, header-supplied keys (`jwk`, `jku`, `x5u`, `x5c`),
//! oversized and many-dot tokens, parser tricks in the header, hostile `kid` values, huge JWK
//! sets and hostile claim values. Every forged token must be rejected with the right reason and
//! without a panic.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use jsonwebtoken::crypto::CryptoProvider;
use jsonwebtoken::EncodingKey;
use serde::Deserialize;
use serde_json::{json, Value};
use tower::{service_fn, Layer, ServiceExt};
use tower_token_auth::testing::TestKey;
use tower_token_auth::{
    Algorithm, AuthConfig, AuthConfigBuilder, AuthError, ConfigError, Keys, Reason, StandardClaims,
    TokenAuthLayer,
};

const ISS: &str = "https://issuer.test";
const AUD: &str = "api://attacks";
const NOW: i64 = 1_700_000_000;
const REALM: &str = "api";
const SECRET: &[u8; 32] = b"attacks-test-secret-0123456789ab";
const FIXTURE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/interop.json"
));

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn base(keys: Keys) -> AuthConfigBuilder {
    AuthConfig::builder()
        .keys(keys)
        .issuer(ISS)
        .audience(AUD)
        .clock(|| NOW)
        .realm(REALM)
}

fn cfg(keys: Keys) -> AuthConfig {
    base(keys).build().expect("config builds")
}

/// The trusted HMAC key (kid `k1`).
fn hmac_key() -> TestKey {
    TestKey::hmac(Algorithm::HS256, SECRET.to_vec()).with_kid("k1")
}

/// Valid claims as JSON text.
fn claims_json() -> String {
    json!({"iss": ISS, "aud": AUD, "sub": "mallory", "iat": NOW, "nbf": NOW, "exp": NOW + 300})
        .to_string()
}

/// A valid token of `key` (checked as of `NOW`).
fn valid(key: &TestKey) -> String {
    key.token_at(NOW)
        .issuer(ISS)
        .audience(AUD)
        .subject("alice")
        .sign()
}

/// A token from raw segments, hand-built.
fn raw_token(header: impl AsRef<[u8]>, payload: impl AsRef<[u8]>, sig: &str) -> String {
    format!("{}.{}.{sig}", b64(header), b64(payload))
}

/// The crypto provider the crate itself uses (see src/crypto.rs), so signing here never
/// depends on jsonwebtoken's process-wide default.
fn provider() -> &'static CryptoProvider {
    #[cfg(feature = "aws-lc-rs")]
    {
        &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER
    }
    #[cfg(all(feature = "rust-crypto", not(feature = "aws-lc-rs")))]
    {
        &jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER
    }
}

/// A token whose header and payload are exactly these bytes, with a *valid* HS256 signature by
/// `secret`: only the structural flaw under test can make it fail.
fn hs256_raw(secret: &[u8], header: impl AsRef<[u8]>, payload: impl AsRef<[u8]>) -> String {
    let message = format!("{}.{}", b64(header), b64(payload));
    let signer = (provider().signer_factory)(&Algorithm::HS256, &EncodingKey::from_secret(secret))
        .expect("HS256 signer");
    let sig = signer.try_sign(message.as_bytes()).expect("HS256 signs");
    format!("{message}.{}", b64(sig))
}

async fn rejection(cfg: &AuthConfig, token: &str) -> AuthError {
    match cfg.validate::<StandardClaims>(token).await {
        Ok(c) => panic!("forged token accepted: {c:?}"),
        Err(e) => e,
    }
}

async fn reason(cfg: &AuthConfig, token: &str) -> Reason {
    rejection(cfg, token).await.reason()
}

async fn ok_echo(_req: Request<Body>) -> Result<Response<Body>, Infallible> {
    Ok(Response::new(Body::from("handler reached")))
}

/// Sends `authorization` through the layer to a handler that answers 200.
async fn send_auth(cfg: &AuthConfig, authorization: HeaderValue) -> Response<Body> {
    let svc = TokenAuthLayer::new(cfg.clone()).layer(service_fn(ok_echo));
    let req = Request::get("/")
        .header(header::AUTHORIZATION, authorization)
        .body(Body::empty())
        .expect("request builds");
    svc.oneshot(req).await.expect("infallible")
}

async fn send(cfg: &AuthConfig, token: &str) -> Response<Body> {
    let value = HeaderValue::from_str(&format!("Bearer {token}")).expect("ASCII token");
    send_auth(cfg, value).await
}

/// Asserts a 401 rejection for `reason`: status, exact `WWW-Authenticate`, problem body and
/// the `AuthError` in the extensions.
async fn assert_rejected(res: Response<Body>, reason: Reason) {
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let err = res
        .extensions()
        .get::<AuthError>()
        .expect("AuthError in response extensions");
    assert_eq!(err.reason(), reason, "{err:?}");
    assert_eq!(
        res.headers()[header::WWW_AUTHENTICATE],
        format!(
            "Bearer realm=\"{REALM}\", error=\"invalid_token\", error_description=\"{}\"",
            reason.description()
        )
    );
    let body = res.into_body().collect().await.expect("body").to_bytes();
    let body: Value = serde_json::from_slice(&body).expect("problem body is JSON");
    assert_eq!(body["reason"], reason.code());
    assert_eq!(body["status"], 401);
}

/// Public keys from the interop fixture: keys the attacker does not hold.
#[derive(Deserialize)]
struct Fixture {
    keys: FixtureKeys,
}

#[derive(Deserialize)]
struct FixtureKeys {
    rsa: FixtureKey,
    p256: FixtureKey,
    ed25519: FixtureKey,
}

#[derive(Deserialize)]
struct FixtureKey {
    kid: String,
    public_pem: String,
}

fn fixture_keys() -> FixtureKeys {
    serde_json::from_str::<Fixture>(FIXTURE)
        .expect("fixture parses")
        .keys
}

/// The DER inside a PEM.
fn pem_der(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(body).expect("PEM base64")
}

/// One DER TLV at `pos`: (tag, content range).
fn der_tlv(der: &[u8], pos: usize) -> (u8, std::ops::Range<usize>) {
    let tag = der[pos];
    let first = der[pos + 1] as usize;
    let (len, start) = if first < 0x80 {
        (first, pos + 2)
    } else {
        let n = first & 0x7f;
        let len = der[pos + 2..pos + 2 + n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | *b as usize);
        (len, pos + 2 + n)
    };
    (tag, start..start + len)
}

/// `n` and `e` of an RSA SubjectPublicKeyInfo.
fn rsa_n_e(spki: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let (_, outer) = der_tlv(spki, 0);
    let (_, alg) = der_tlv(spki, outer.start);
    let (tag, bits) = der_tlv(spki, alg.end);
    assert_eq!(tag, 0x03, "BIT STRING");
    let (_, seq) = der_tlv(spki, bits.start + 1);
    let (_, n) = der_tlv(spki, seq.start);
    let (_, e) = der_tlv(spki, n.end);
    let strip = |b: &[u8]| {
        b.iter()
            .skip_while(|x| **x == 0)
            .copied()
            .collect::<Vec<u8>>()
    };
    (strip(&spki[n]), strip(&spki[e]))
}

/// The attacker's own public key as a JWK, as a forger would embed it.
fn attacker_jwk(key: &TestKey, kid: &str) -> Value {
    let der = pem_der(key.public_pem().expect("asymmetric test key"));
    match key.algorithm() {
        Algorithm::EdDSA => json!({
            "kty": "OKP", "crv": "Ed25519", "kid": kid, "x": b64(&der[der.len() - 32..])
        }),
        Algorithm::ES256 => {
            let point = &der[der.len() - 65..];
            assert_eq!(point[0], 4, "uncompressed point");
            json!({
                "kty": "EC", "crv": "P-256", "kid": kid,
                "x": b64(&point[1..33]), "y": b64(&point[33..])
            })
        }
        _ => {
            let (n, e) = rsa_n_e(&der);
            assert_eq!(n.len(), 256, "RSA-2048 modulus");
            json!({"kty": "RSA", "kid": kid, "n": b64(n), "e": b64(e)})
        }
    }
}

// ---------------------------------------------------------------------------------------------
// alg: none
// ---------------------------------------------------------------------------------------------

// Defends against unsecured JWTs (`alg: none`, CVE-2015-9235 class) in any letter case.
#[tokio::test]
async fn alg_none_in_any_case_is_rejected() {
    let cfg = cfg(hmac_key().keys().and(TestKey::rs256().keys()));
    for alg in ["none", "None", "NONE", "nOnE"] {
        for kid in [None, Some("k1")] {
            let mut header = json!({"alg": alg, "typ": "JWT"});
            if let Some(kid) = kid {
                header["kid"] = kid.into();
            }
            for sig in [String::new(), b64(b"forged-signature")] {
                let token = raw_token(header.to_string(), claims_json(), &sig);
                assert_eq!(
                    reason(&cfg, &token).await,
                    Reason::AlgNotAllowed,
                    "alg {alg}, kid {kid:?}, sig {sig:?}"
                );
            }
        }
    }
    let token = raw_token(r#"{"alg":"none"}"#, claims_json(), "");
    assert_rejected(send(&cfg, &token).await, Reason::AlgNotAllowed).await;
}

// ---------------------------------------------------------------------------------------------
// RS256 / HS256 key confusion
// ---------------------------------------------------------------------------------------------

// Defends against RS256→HS256 key confusion (CVE-2016-10555 class): the RSA public PEM used as
// an HMAC secret, naming the RSA key's kid.
#[tokio::test]
async fn hs256_signed_with_rsa_public_pem_and_rsa_kid_is_rejected() {
    let rsa = TestKey::rs256().with_kid("rsa-1");
    let pem = rsa.public_pem().expect("RSA PEM").as_bytes().to_vec();
    let only_rsa = cfg(rsa.keys());
    let rsa_and_hmac = cfg(rsa.keys().and(hmac_key().keys()));
    for secret in [pem.clone(), pem.trim_ascii_end().to_vec()] {
        let forged = valid(&TestKey::hmac(Algorithm::HS256, secret).with_kid("rsa-1"));
        for cfg in [&only_rsa, &rsa_and_hmac] {
            assert_eq!(reason(cfg, &forged).await, Reason::AlgNotAllowed);
        }
    }
    // Control: the genuine RS256 token passes on the same configurations.
    for cfg in [&only_rsa, &rsa_and_hmac] {
        cfg.validate::<StandardClaims>(&valid(&rsa))
            .await
            .expect("genuine RS256 token");
    }
    let forged = valid(&TestKey::hmac(Algorithm::HS256, pem).with_kid("rsa-1"));
    assert_rejected(send(&only_rsa, &forged).await, Reason::AlgNotAllowed).await;
}

// Defends against RS256→HS256 key confusion without a kid, when the only key is the RSA key.
#[tokio::test]
async fn hs256_signed_with_rsa_public_pem_without_kid_is_rejected() {
    let rsa = TestKey::rs256();
    let pem = rsa.public_pem().expect("RSA PEM").as_bytes().to_vec();
    let forged = valid(&TestKey::hmac(Algorithm::HS256, pem));
    for keys in [rsa.keys(), rsa.clone().with_kid("rsa-1").keys()] {
        let cfg = cfg(keys);
        assert_eq!(reason(&cfg, &forged).await, Reason::AlgNotAllowed);
    }
}

// ---------------------------------------------------------------------------------------------
// Psychic signatures
// ---------------------------------------------------------------------------------------------

/// Replaces the signature of `token` by `len` zero bytes.
fn with_zero_signature(token: &str, len: usize) -> String {
    let (message, _) = token.rsplit_once('.').expect("three segments");
    format!("{message}.{}", b64(vec![0u8; len]))
}

// Defends against ECDSA "psychic signatures" r = s = 0 (CVE-2022-21449), ES256.
#[tokio::test]
async fn ecdsa_all_zero_signature_es256_is_rejected() {
    let key = TestKey::es256().with_kid("p256");
    let cfg = cfg(key.keys());
    let token = valid(&key);
    cfg.validate::<StandardClaims>(&token)
        .await
        .expect("control: genuine ES256 token");
    let forged = with_zero_signature(&token, 64);
    assert_eq!(reason(&cfg, &forged).await, Reason::BadSignature);
    assert_rejected(send(&cfg, &forged).await, Reason::BadSignature).await;
}

// Defends against ECDSA "psychic signatures" r = s = 0 (CVE-2022-21449), ES384.
#[tokio::test]
async fn ecdsa_all_zero_signature_es384_is_rejected() {
    let key = TestKey::es384().with_kid("p384");
    let cfg = cfg(key.keys());
    let token = valid(&key);
    cfg.validate::<StandardClaims>(&token)
        .await
        .expect("control: genuine ES384 token");
    let forged = with_zero_signature(&token, 96);
    assert_eq!(reason(&cfg, &forged).await, Reason::BadSignature);
}

// ---------------------------------------------------------------------------------------------
// Keys named by the token
// ---------------------------------------------------------------------------------------------

// Defends against trusting a key embedded in the header (`jwk`, CVE-2018-0114 class).
#[tokio::test]
async fn embedded_jwk_header_is_never_used() {
    let fx = fixture_keys();
    let cases = [
        (
            TestKey::ed25519(),
            Keys::ed_pem(&fx.ed25519.public_pem).kid(fx.ed25519.kid.clone()),
            fx.ed25519.kid.clone(),
        ),
        (
            TestKey::es256(),
            Keys::ec_pem(&fx.p256.public_pem).kid(fx.p256.kid.clone()),
            fx.p256.kid.clone(),
        ),
        (
            TestKey::rs256(),
            Keys::rsa_pem(&fx.rsa.public_pem).kid(fx.rsa.kid.clone()),
            fx.rsa.kid.clone(),
        ),
    ];
    for (attacker, trusted, kid) in cases {
        let alg = attacker.algorithm();
        let cfg = cfg(trusted);
        // Naming the trusted kid, and without kid (the single key of the family is chosen).
        let with_kid = attacker.clone().with_kid(kid.clone());
        for key in [&with_kid, &attacker] {
            let forged = key
                .token_at(NOW)
                .issuer(ISS)
                .audience(AUD)
                .header("jwk", attacker_jwk(&attacker, &kid))
                .sign();
            assert_eq!(
                reason(&cfg, &forged).await,
                Reason::BadSignature,
                "{alg:?}, kid {:?}",
                key.kid()
            );
        }
        // A kid only the embedded key has: unknown, never taken from the header.
        let forged = attacker
            .clone()
            .with_kid("attacker")
            .token_at(NOW)
            .issuer(ISS)
            .audience(AUD)
            .header("jwk", attacker_jwk(&attacker, "attacker"))
            .sign();
        assert_eq!(reason(&cfg, &forged).await, Reason::UnknownKey, "{alg:?}");
    }
    // An embedded symmetric key (kty oct) is ignored too.
    let cfg = cfg(hmac_key().keys());
    let other = b"attacker-secret-0123456789abcdef".to_vec();
    let forged = TestKey::hmac(Algorithm::HS256, other.clone())
        .with_kid("k1")
        .token_at(NOW)
        .issuer(ISS)
        .audience(AUD)
        .header("jwk", json!({"kty": "oct", "kid": "k1", "k": b64(&other)}))
        .sign();
    assert_eq!(reason(&cfg, &forged).await, Reason::BadSignature);
    assert_rejected(send(&cfg, &forged).await, Reason::BadSignature).await;
}

// Defends against fetching keys from URLs named by the token (`jku`, `x5u`) or certificates it
// carries (`x5c`): the configured key decides.
#[tokio::test]
async fn jku_x5u_and_x5c_headers_are_never_used() {
    let fx = fixture_keys();
    let cfg = cfg(Keys::rsa_pem(&fx.rsa.public_pem).kid(fx.rsa.kid.clone()));
    let attacker = TestKey::rs256().with_kid(fx.rsa.kid.clone());
    let spki = pem_der(attacker.public_pem().expect("RSA PEM"));
    let headers = [
        ("jku", json!("https://evil.example/jwks.json")),
        ("x5u", json!("https://evil.example/cert.pem")),
        ("x5c", json!([STANDARD.encode(&spki)])),
    ];
    for (name, value) in headers {
        let forged = attacker
            .token_at(NOW)
            .issuer(ISS)
            .audience(AUD)
            .header(name, value)
            .sign();
        assert_eq!(reason(&cfg, &forged).await, Reason::BadSignature, "{name}");
        assert_rejected(send(&cfg, &forged).await, Reason::BadSignature).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Size and shape
// ---------------------------------------------------------------------------------------------

// Defends against quadratic work / allocation on many '.' (CVE-2025-30204 class).
#[tokio::test]
async fn hundred_thousand_dots_is_malformed() {
    let dots = ".".repeat(100_000);
    let roomy = base(hmac_key().keys())
        .max_token_len(200_000)
        .build()
        .expect("config builds");
    assert_eq!(reason(&roomy, &dots).await, Reason::Malformed);
    // With the default 16 KiB cap it is refused before any parsing.
    assert_eq!(
        reason(&cfg(hmac_key().keys()), &dots).await,
        Reason::TooLarge
    );
}

// Defends against a valid token smuggled with trailing segments (CVE-2025-30204 class).
#[tokio::test]
async fn valid_token_with_ten_thousand_dots_appended_is_malformed() {
    let key = hmac_key();
    let cfg = cfg(key.keys());
    let token = valid(&key);
    let forged = format!("{token}{}", ".".repeat(10_000));
    assert!(forged.len() < 16 * 1024);
    assert_eq!(reason(&cfg, &forged).await, Reason::Malformed);
    assert_rejected(send(&cfg, &forged).await, Reason::Malformed).await;
}

// Defends against memory/CPU exhaustion by huge tokens (default cap 16 KiB).
#[tokio::test]
async fn one_megabyte_token_is_too_large() {
    let cfg = cfg(hmac_key().keys());
    let payload = "A".repeat(1 << 20);
    let token = format!("{}.{payload}.{}", b64(r#"{"alg":"HS256"}"#), b64([1u8; 32]));
    let err = rejection(&cfg, &token).await;
    assert_eq!(err.reason(), Reason::TooLarge);
    assert_eq!(err.problems().len(), 1, "nothing else decoded: {err:?}");
}

// Defends against an off-by-one in the size cap: a token at a custom `max_token_len` is parsed.
#[tokio::test]
async fn token_just_under_custom_max_token_len_is_parsed() {
    let key = hmac_key();
    let token = valid(&key);
    let len = token.len();
    for max in [len, len + 1] {
        let cfg = base(key.keys()).max_token_len(max).build().expect("builds");
        cfg.validate::<StandardClaims>(&token)
            .await
            .unwrap_or_else(|e| panic!("max {max}, len {len}: {e:?}"));
    }
    let cfg = base(key.keys())
        .max_token_len(len - 1)
        .build()
        .expect("builds");
    assert_eq!(reason(&cfg, &token).await, Reason::TooLarge);
}

// Defends against header-borne memory exhaustion: a 10 MB Authorization value is 401 too_large.
#[tokio::test]
async fn ten_megabyte_authorization_header_is_too_large() {
    let cfg = cfg(hmac_key().keys());
    let mut value = String::with_capacity(10 * 1024 * 1024 + 7);
    value.push_str("Bearer ");
    value.push_str(&"a".repeat(10 * 1024 * 1024));
    let value = HeaderValue::from_str(&value).expect("visible ASCII");
    assert_rejected(send_auth(&cfg, value).await, Reason::TooLarge).await;
}

// ---------------------------------------------------------------------------------------------
// Header parsing
// ---------------------------------------------------------------------------------------------

// Defends against lenient decoding of invalid UTF-8 in the header (parser differentials).
#[tokio::test]
async fn non_utf8_header_json_is_malformed() {
    let cfg = cfg(hmac_key().keys());
    let headers: [&[u8]; 3] = [
        b"{\"alg\":\"HS256\",\"kid\":\"\xff\xfe\"}",
        b"{\"alg\":\"HS256\",\"kid\":\"k\xc0\xaf\"}",
        b"{\"alg\":\"HS256\",\"kid\":\"k1\"}\xff",
    ];
    for h in headers {
        let token = hs256_raw(SECRET, h, claims_json());
        assert_eq!(
            reason(&cfg, &token).await,
            Reason::Malformed,
            "{}",
            String::from_utf8_lossy(h)
        );
    }
}

// Defends against type confusion in the header: a JSON array read as the header's fields in
// order (a header other JOSE libraries refuse, so a parser differential).
#[tokio::test]
async fn header_json_array_is_malformed() {
    let cfg = cfg(hmac_key().keys());
    for h in [r#"["HS256"]"#, r#"["HS256","k1"]"#, "[]"] {
        let token = hs256_raw(SECRET, h, claims_json());
        let got = cfg
            .validate::<StandardClaims>(&token)
            .await
            .map(|_| "accepted")
            .map_err(|e| e.reason());
        assert_eq!(got, Err(Reason::Malformed), "header {h}");
    }
}

// Defends against type confusion in the header: a JSON number, string, null or boolean, or an
// `alg` that is not a string.
#[tokio::test]
async fn header_json_scalar_is_malformed() {
    let cfg = cfg(hmac_key().keys());
    for h in [
        "42",
        "1e999",
        r#""HS256""#,
        "null",
        "true",
        r#"{"alg":["HS256"]}"#,
        r#"{"alg":256}"#,
    ] {
        let token = hs256_raw(SECRET, h, claims_json());
        assert_eq!(reason(&cfg, &token).await, Reason::Malformed, "header {h}");
    }
}

// Defends against parser differentials on duplicate header members (`alg` twice).
#[tokio::test]
async fn duplicate_alg_header_member_is_malformed() {
    let cfg = cfg(hmac_key().keys());
    for h in [
        r#"{"alg":"HS256","alg":"none","kid":"k1"}"#,
        r#"{"alg":"none","alg":"HS256","kid":"k1"}"#,
        r#"{"alg":"HS256","alg":"HS256","kid":"k1"}"#,
    ] {
        let token = hs256_raw(SECRET, h, claims_json());
        assert_eq!(reason(&cfg, &token).await, Reason::Malformed, "{h}");
    }
    // Control: the same construction without the duplicate verifies.
    let token = hs256_raw(SECRET, r#"{"alg":"HS256","kid":"k1"}"#, claims_json());
    cfg.validate::<StandardClaims>(&token)
        .await
        .expect("control token");
}

// Defends against deep recursion in the header parser (stack exhaustion).
#[tokio::test]
async fn deeply_nested_header_is_malformed() {
    let cfg = base(hmac_key().keys())
        .max_token_len(64 * 1024)
        .build()
        .expect("builds");
    let nested = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let h = format!(r#"{{"alg":"HS256","kid":"k1","crit":{nested}}}"#);
    let token = hs256_raw(SECRET, h, claims_json());
    assert_eq!(reason(&cfg, &token).await, Reason::Malformed);
}

// ---------------------------------------------------------------------------------------------
// Token shape
// ---------------------------------------------------------------------------------------------

// Defends against encrypted tokens (JWE) being half-parsed as signed ones.
#[tokio::test]
async fn jwe_shaped_token_is_malformed() {
    let cfg = cfg(hmac_key().keys());
    let token = format!(
        "{}.{}.{}.{}.{}",
        b64(r#"{"alg":"RSA-OAEP","enc":"A256GCM","kid":"k1"}"#),
        b64([7u8; 256]),
        b64([1u8; 12]),
        b64(b"ciphertext"),
        b64([2u8; 16])
    );
    assert_eq!(reason(&cfg, &token).await, Reason::Malformed);
}

// Defends against non-canonical base64 (padding) changing the signed bytes.
#[tokio::test]
async fn padded_base64_segment_is_malformed() {
    let key = hmac_key();
    let cfg = cfg(key.keys());
    let token = valid(&key);
    let (h, rest) = token.split_once('.').expect("segments");
    for forged in [
        format!("{h}=.{rest}"),
        format!("{h}==.{rest}"),
        format!("{token}="),
    ] {
        assert_eq!(reason(&cfg, &forged).await, Reason::Malformed, "{forged}");
    }
}

// Defends against tokens copied with their JSON quotes being half-accepted.
#[tokio::test]
async fn quoted_token_is_malformed() {
    let key = hmac_key();
    let cfg = cfg(key.keys());
    let token = format!("\"{}\"", valid(&key));
    assert_eq!(reason(&cfg, &token).await, Reason::Malformed);
    assert_rejected(send(&cfg, &token).await, Reason::Malformed).await;
}

// Defends against a doubled scheme being stripped leniently (`Bearer Bearer <tok>`).
#[tokio::test]
async fn bearer_bearer_token_is_malformed() {
    let key = hmac_key();
    let cfg = cfg(key.keys());
    let value = HeaderValue::from_str(&format!("Bearer Bearer {}", valid(&key))).expect("ASCII");
    assert_rejected(send_auth(&cfg, value).await, Reason::Malformed).await;
}

// ---------------------------------------------------------------------------------------------
// Order of checks
// ---------------------------------------------------------------------------------------------

// Defends against trusting claims of an unverified token: a forged, expired token is reported
// as bad_signature first (expired is still listed).
#[tokio::test]
async fn expired_token_with_bad_signature_reports_bad_signature() {
    let cfg = cfg(hmac_key().keys());
    let forged = TestKey::hmac(
        Algorithm::HS256,
        b"attacker-secret-0123456789abcdef".to_vec(),
    )
    .with_kid("k1")
    .token_at(NOW)
    .issuer(ISS)
    .audience(AUD)
    .expired_for(Duration::from_secs(3600))
    .sign();
    let err = rejection(&cfg, &forged).await;
    assert_eq!(err.reason(), Reason::BadSignature);
    assert!(err.has(Reason::Expired), "{err:?}");
    assert_eq!(err.problems()[0].reason(), Reason::BadSignature);
    assert_rejected(send(&cfg, &forged).await, Reason::BadSignature).await;
}

// ---------------------------------------------------------------------------------------------
// Hostile kid
// ---------------------------------------------------------------------------------------------

// Defends against kid injection (path traversal, SQL, NUL) and log flooding by a huge kid.
#[tokio::test]
async fn hostile_kids_are_unknown_key_and_capped_in_facts() {
    let key = hmac_key();
    let cfg = cfg(key.keys());
    for kid in ["../../etc/passwd", "' OR 1=1 --", "\u{0}", "k1\u{0}"] {
        let token = key
            .token_at(NOW)
            .issuer(ISS)
            .audience(AUD)
            .header("kid", kid)
            .sign();
        let err = rejection(&cfg, &token).await;
        assert_eq!(err.reason(), Reason::UnknownKey, "kid {kid:?}");
        assert_eq!(err.facts().kid.as_deref(), Some(kid));
    }
    let huge = "x".repeat(10_000);
    let token = key
        .token_at(NOW)
        .issuer(ISS)
        .audience(AUD)
        .header("kid", huge.as_str())
        .sign();
    assert!(token.len() < 16 * 1024, "stays under the size cap");
    let err = rejection(&cfg, &token).await;
    assert_eq!(err.reason(), Reason::UnknownKey);
    let kid = err.facts().kid.as_deref().expect("kid in facts");
    assert!(kid.len() <= 260, "kid fact is {} bytes", kid.len());
    assert!(kid.starts_with(&huge[..200]));
    let res = send(&cfg, &token).await;
    let err = res.extensions().get::<AuthError>().expect("AuthError");
    assert!(err.facts().kid.as_deref().expect("kid").len() <= 260);
    assert_rejected(res, Reason::UnknownKey).await;
}

// ---------------------------------------------------------------------------------------------
// Huge JWK set
// ---------------------------------------------------------------------------------------------

fn oct_jwks(n: usize) -> String {
    let keys: Vec<Value> = (0..n)
        .map(|i| json!({"kty": "oct", "kid": format!("k{i}"), "k": b64(SECRET)}))
        .collect();
    json!({ "keys": keys }).to_string()
}

// Defends against resource exhaustion by a huge JWK set (at most 1000 keys).
#[test]
fn jwk_set_with_ten_thousand_keys_is_refused() {
    let err = base(Keys::jwks_json(oct_jwks(10_000)))
        .build()
        .expect_err("10,000 keys refused");
    assert!(
        matches!(err, ConfigError::InvalidKey { .. }),
        "InvalidKey expected: {err:?}"
    );
    assert!(err.to_string().contains("1000"), "names the limit: {err}");
    // The limit itself is accepted.
    base(Keys::jwks_json(oct_jwks(1000)))
        .build()
        .expect("1000 keys accepted");
}

// ---------------------------------------------------------------------------------------------
// Hostile claim values
// ---------------------------------------------------------------------------------------------

fn claims_with_exp(exp: &str) -> String {
    format!(r#"{{"iss":"{ISS}","aud":"{AUD}","sub":"mallory","exp":{exp}}}"#)
}

// Defends against numeric overflow in `exp` (1e400 is beyond f64): no panic, no "never expires".
#[tokio::test]
async fn exp_beyond_f64_is_rejected() {
    let cfg = cfg(hmac_key().keys());
    let token = hs256_raw(
        SECRET,
        r#"{"alg":"HS256","kid":"k1"}"#,
        claims_with_exp("1e400"),
    );
    let r = reason(&cfg, &token).await;
    assert!(
        matches!(r, Reason::Malformed | Reason::InvalidClaim),
        "got {r}"
    );
}

// Defends against saturating conversions of absurd `exp` values (-1e300): rejected as a bad
// claim, not silently clamped.
#[tokio::test]
async fn exp_minus_1e300_is_rejected() {
    let cfg = cfg(hmac_key().keys());
    let token = hs256_raw(
        SECRET,
        r#"{"alg":"HS256","kid":"k1"}"#,
        claims_with_exp("-1e300"),
    );
    let r = reason(&cfg, &token).await;
    assert!(
        matches!(r, Reason::Malformed | Reason::InvalidClaim),
        "exp -1e300 must be refused as a claim, not clamped to i64::MIN; got {r}"
    );
}

// Defends against stack overflow on deeply nested claims (10,000 nested arrays).
#[tokio::test]
async fn deeply_nested_claim_is_rejected_without_stack_overflow() {
    let cfg = base(hmac_key().keys())
        .max_token_len(64 * 1024)
        .build()
        .expect("builds");
    let nested = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let payload = format!(
        r#"{{"iss":"{ISS}","aud":"{AUD}","exp":{},"deep":{nested}}}"#,
        NOW + 300
    );
    let token = hs256_raw(SECRET, r#"{"alg":"HS256","kid":"k1"}"#, payload);
    let r = reason(&cfg, &token).await;
    assert!(
        matches!(r, Reason::Malformed | Reason::InvalidClaim),
        "got {r}"
    );
}

// Defends against "never expires" tokens: a huge float `exp` must not saturate to i64::MAX.
#[tokio::test]
async fn exp_1e300_is_invalid_claim_not_eternal() {
    let key = tower_token_auth::testing::TestKey::hs256();
    let cfg = tower_token_auth::AuthConfig::builder()
        .keys(key.keys())
        .issuer("iss")
        .audience("aud")
        .build()
        .unwrap();
    let token = key
        .token()
        .issuer("iss")
        .audience("aud")
        .claim("exp", 1e300)
        .sign();
    let err = cfg
        .validate::<tower_token_auth::StandardClaims>(&token)
        .await
        .unwrap_err();
    assert_eq!(err.reason(), tower_token_auth::Reason::InvalidClaim);
}

/// `n - s` for a big-endian scalar `s` (same length as `n`).
fn negate_mod(n: &[u8], s: &[u8]) -> Vec<u8> {
    let mut out = vec![0u8; n.len()];
    let mut borrow = 0i16;
    for i in (0..n.len()).rev() {
        let mut d = n[i] as i16 - s[i] as i16 - borrow;
        borrow = if d < 0 {
            d += 256;
            1
        } else {
            0
        };
        out[i] = d as u8;
    }
    out
}

// Defends against signature malleability surprises: an ECDSA signature (r, s) and its twin
// (r, n - s) both verify mathematically. Both are accepted (about half of honest signers emit
// high-S values, so refusing them breaks interoperability); nothing keys on signature bytes
// except the cache, which needs exact byte equality, and revocation keys on `jti`.
// Malformed scalars (s = 0, s = n) are rejected.
#[tokio::test]
async fn ecdsa_malleated_signature_verifies_and_out_of_range_scalars_do_not() {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    const P256_N: [u8; 32] = [
        0xFF, 0xFF, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF,
        0xFF, 0xBC, 0xE6, 0xFA, 0xAD, 0xA7, 0x17, 0x9E, 0x84, 0xF3, 0xB9, 0xCA, 0xC2, 0xFC, 0x63,
        0x25, 0x51,
    ];
    let key = tower_token_auth::testing::TestKey::es256();
    let cfg = tower_token_auth::AuthConfig::builder()
        .keys(key.keys())
        .issuer("iss")
        .audience("aud")
        .build()
        .unwrap();
    let token = key.token().issuer("iss").audience("aud").sign();
    let (msg, sig) = token.rsplit_once('.').unwrap();
    let sig = b64.decode(sig).unwrap();
    let (r, s) = sig.split_at(32);
    let twin = [r, &negate_mod(&P256_N, s)[..]].concat();
    let twin_token = format!("{msg}.{}", b64.encode(&twin));
    assert_ne!(twin_token, token);
    cfg.validate::<tower_token_auth::StandardClaims>(&twin_token)
        .await
        .expect("the (r, n - s) twin verifies");
    for bad_s in [[0u8; 32], P256_N] {
        let forged = format!("{msg}.{}", b64.encode([r, &bad_s[..]].concat()));
        let err = cfg
            .validate::<tower_token_auth::StandardClaims>(&forged)
            .await
            .unwrap_err();
        assert_eq!(err.reason(), tower_token_auth::Reason::BadSignature);
    }
}

// Defends against parser differentials: with `{"iss":"evil","iss":"trusted"}` some parsers read
// the first value and some the last. Duplicate claim names are refused, like duplicate header
// members.
#[tokio::test]
async fn duplicate_claim_names_are_malformed() {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let secret = [7u8; 32];
    let cfg = tower_token_auth::AuthConfig::builder()
        .keys(tower_token_auth::Keys::hmac(secret))
        .issuer("trusted")
        .audience("aud")
        .build()
        .unwrap();
    let header = b64.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let sign = |payload: &str| {
        let message = format!("{header}.{}", b64.encode(payload));
        let sig = jsonwebtoken::crypto::sign(
            message.as_bytes(),
            &jsonwebtoken::EncodingKey::from_secret(&secret),
            jsonwebtoken::Algorithm::HS256,
        )
        .unwrap();
        format!("{message}.{sig}")
    };
    let good = sign(r#"{"iss":"trusted","aud":"aud","exp":4000000000}"#);
    cfg.validate::<tower_token_auth::StandardClaims>(&good)
        .await
        .expect("control: the same token without the duplicate passes");
    let dup = sign(r#"{"iss":"evil","iss":"trusted","aud":"aud","exp":4000000000}"#);
    let err = cfg
        .validate::<tower_token_auth::StandardClaims>(&dup)
        .await
        .unwrap_err();
    assert_eq!(err.reason(), tower_token_auth::Reason::Malformed);
}
