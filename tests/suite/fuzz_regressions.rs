//! Regression tests for the findings of the fuzz targets in `fuzz/` (see fuzz/README.md):
//! each test is the minimised crash input, asserting the correct behaviour.

use jsonwebtoken::{Algorithm, EncodingKey};
use tower_token_auth::{AuthConfig, Keys, Reason, StandardClaims};

const ISS: &str = "https://issuer.test";
const AUD: &str = "api";
const SECRET: &[u8; 32] = b"0123456789abcdef0123456789abcdef";
const NOW: i64 = 1_700_000_000;

fn config() -> AuthConfig {
    AuthConfig::builder()
        .keys(Keys::hmac(SECRET).kid("hs"))
        .issuer(ISS)
        .audience(AUD)
        .clock(|| NOW)
        .build()
        .expect("config builds")
}

/// `b64(header).b64(payload).b64(HS256 signature)` over raw bytes, which the test helpers
/// cannot produce (they take JSON values). Call after `config()`: building a configuration
/// installs the crypto provider jsonwebtoken signs with.
fn sign_raw(header: &[u8], payload: &[u8]) -> String {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let sig = jsonwebtoken::crypto::sign(
        message.as_bytes(),
        &EncodingKey::from_secret(SECRET),
        Algorithm::HS256,
    )
    .expect("HS256 signs");
    format!("{message}.{sig}")
}

fn payload() -> Vec<u8> {
    format!(r#"{{"iss":"{ISS}","aud":"{AUD}","exp":{}}}"#, NOW + 60).into_bytes()
}

/// Fuzz target `validate`, crash-d24a8ed6…: a correctly signed token whose header holds a
/// byte that is not UTF-8 inside a member the crate does not read was accepted (serde_json
/// skips ignored strings without checking them). RFC 7515 §5.2: the decoded header must be
/// a UTF-8 encoded JSON object; anything else is not a JWS.
#[tokio::test]
async fn a_header_that_is_not_utf8_is_malformed() {
    let cfg = config();
    // Control: the same token with a valid byte is accepted, so the rejection below is about
    // the encoding and nothing else.
    let good = sign_raw(br#"{"alg":"HS256","kid":"hs","tyt":"at+jwt"}"#, &payload());
    assert!(cfg.validate::<StandardClaims>(&good).await.is_ok());

    let bad = sign_raw(
        b"{\"alg\":\"HS256\",\"kid\":\"hs\",\"tyt\":\"at\xad+jwt\"}",
        &payload(),
    );
    let err = cfg
        .validate::<StandardClaims>(&bad)
        .await
        .expect_err("a header that is not UTF-8 must be refused");
    assert_eq!(err.reason(), Reason::Malformed);
}

/// The same for the claims (this one holds already: claims are parsed into JSON values,
/// which checks every string).
#[tokio::test]
async fn a_payload_that_is_not_utf8_is_malformed() {
    let cfg = config();
    let mut claims = payload();
    claims.pop(); // the closing brace
    claims.extend_from_slice(b",\"x\":\"\xad\"}");
    let bad = sign_raw(br#"{"alg":"HS256","kid":"hs"}"#, &claims);
    let err = cfg
        .validate::<StandardClaims>(&bad)
        .await
        .expect_err("claims that are not UTF-8 must be refused");
    assert_eq!(err.reason(), Reason::Malformed);
}
