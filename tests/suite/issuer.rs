//! `TokenIssuer` without HTTP: minting (header `typ`, claims, lifetimes on a `ManualClock`),
//! every key type signs and `auth_config()` verifies, refresh rotation and reuse detection,
//! logout, and the memory refresh store's expiry.

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Map, Value};
use tower_token_auth::clock::ManualClock;
use tower_token_auth::issuer::{
    BuildError, Generation, IssueError, IssuedToken, Login, MemoryRefreshStore, RefreshError,
    RefreshStore, Rotation, TokenIssuer, TokenIssuerBuilder, DEFAULT_ACCESS_TTL,
    DEFAULT_REFRESH_TTL,
};
use tower_token_auth::revocation::{MemoryRevocationStore, RevocationStore};
use tower_token_auth::{Algorithm, AuthConfig, ConfigError, Keys, Reason, StandardClaims};

const NOW: i64 = 1_800_000_000;
const ISS: &str = "https://app.test";
const AUD: &str = "https://app.test/api";
const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

const RSA_PRIVATE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/src/testing/rsa_private.pem"
));
const P256_PRIVATE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/src/testing/p256_private.pem"
));
const P384_PRIVATE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/src/testing/p384_private.pem"
));
const ED25519_PRIVATE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/src/testing/ed25519_private.pem"
));

fn base(clock: &ManualClock) -> TokenIssuerBuilder {
    TokenIssuer::builder()
        .hmac(SECRET)
        .issuer(ISS)
        .audience(AUD)
        .clock(clock.clone())
}

/// Decodes (without verifying) a segment of a compact JWS: 0 header, 1 claims.
fn part(token: &str, i: usize) -> Map<String, Value> {
    let seg = token.split('.').nth(i).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(seg).unwrap()).unwrap()
}

/// A verifier for the issuer's access tokens on its clock.
fn verifier(issuer: &TokenIssuer) -> AuthConfig {
    issuer.auth_config().build().unwrap()
}

async fn reason_of(cfg: &AuthConfig, token: &str) -> Option<Reason> {
    cfg.validate::<StandardClaims>(token)
        .await
        .err()
        .map(|e| e.reason())
}

// ----- minting -----

#[tokio::test]
async fn access_token_has_at_jwt_header_and_rfc9068_claims() {
    let clock = ManualClock::at(NOW);
    let issuer = base(&clock).kid("k1").build().unwrap();
    let pair = issuer
        .issue(
            Login::new("alice")
                .scope("orders:read")
                .claim("name", "Alice"),
        )
        .await
        .unwrap();

    let header = part(&pair.access_token, 0);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "HS256");
    assert_eq!(header["kid"], "k1");

    let c = part(&pair.access_token, 1);
    assert_eq!(c["iss"], ISS);
    assert_eq!(c["sub"], "alice");
    assert_eq!(c["aud"], AUD);
    assert_eq!(c["iat"], NOW);
    assert_eq!(c["nbf"], NOW);
    assert_eq!(c["exp"], NOW + 600);
    assert_eq!(c["client_id"], ISS, "client_id defaults to the issuer");
    assert_eq!(c["sid"], pair.session_id.as_str());
    assert_eq!(c["auth_time"], NOW);
    assert_eq!(c["scope"], "orders:read");
    assert_eq!(c["name"], "Alice");
    assert!(c["jti"].as_str().is_some_and(|j| j.len() >= 16));
}

#[tokio::test]
async fn refresh_token_has_distinct_type_family_and_own_audience() {
    let clock = ManualClock::at(NOW);
    let issuer = base(&clock).build().unwrap();
    let pair = issuer
        .issue(Login::new("alice").scope("orders:read"))
        .await
        .unwrap();

    assert_eq!(part(&pair.refresh_token, 0)["typ"], "rt+jwt");
    let c = part(&pair.refresh_token, 1);
    assert_eq!(c["fam"], pair.session_id.as_str());
    assert_eq!(c["sub"], "alice");
    assert_eq!(c["iss"], ISS);
    assert_eq!(
        c["aud"], ISS,
        "refresh tokens are addressed to the issuer only"
    );
    assert_eq!(c["ext"], json!({ "scope": "orders:read" }));
    assert_ne!(c["jti"], part(&pair.access_token, 1)["jti"]);
}

#[tokio::test]
async fn default_lifetimes_are_ten_minutes_and_fourteen_days() {
    let clock = ManualClock::at(NOW);
    let issuer = base(&clock).build().unwrap();
    let pair = issuer.issue(Login::new("alice")).await.unwrap();
    assert_eq!(DEFAULT_ACCESS_TTL, Duration::from_secs(600));
    assert_eq!(DEFAULT_REFRESH_TTL, Duration::from_secs(14 * 86_400));
    assert_eq!(pair.expires_in, 600);
    assert_eq!(pair.refresh_expires_in, 14 * 86_400);
    assert_eq!(pair.access_expires_at, NOW + 600);
    assert_eq!(pair.refresh_expires_at, NOW + 14 * 86_400);
    assert_eq!(part(&pair.refresh_token, 1)["exp"], NOW + 14 * 86_400);
}

#[tokio::test]
async fn custom_lifetimes_follow_the_clock() {
    let clock = ManualClock::at(NOW);
    let issuer = base(&clock)
        .access_ttl(Duration::from_secs(300))
        .refresh_ttl(Duration::from_secs(3600))
        .build()
        .unwrap();
    clock.advance(Duration::from_secs(1000));
    let pair = issuer.issue(Login::new("alice")).await.unwrap();
    assert_eq!(part(&pair.access_token, 1)["exp"], NOW + 1000 + 300);
    assert_eq!(part(&pair.access_token, 1)["iat"], NOW + 1000);
    assert_eq!(part(&pair.refresh_token, 1)["exp"], NOW + 1000 + 3600);

    // Verified on the same clock: valid until exp (+ leeway), then expired.
    let cfg = verifier(&issuer);
    assert_eq!(reason_of(&cfg, &pair.access_token).await, None);
    clock.advance(Duration::from_secs(300 + 31));
    assert_eq!(
        reason_of(&cfg, &pair.access_token).await,
        Some(Reason::Expired)
    );
}

#[tokio::test]
async fn login_client_id_and_several_audiences() {
    let clock = ManualClock::at(NOW);
    let issuer = base(&clock)
        .audience("second")
        .client_id("web")
        .build()
        .unwrap();
    let default = issuer.issue(Login::new("a")).await.unwrap();
    assert_eq!(part(&default.access_token, 1)["client_id"], "web");
    assert_eq!(
        part(&default.access_token, 1)["aud"],
        json!([AUD, "second"])
    );
    let ios = issuer
        .issue(Login::new("a").client_id("ios"))
        .await
        .unwrap();
    assert_eq!(part(&ios.access_token, 1)["client_id"], "ios");
    // Kept through a refresh.
    let next = issuer.refresh(&ios.refresh_token).await.unwrap();
    assert_eq!(part(&next.access_token, 1)["client_id"], "ios");
}

#[tokio::test]
async fn reserved_claims_are_refused() {
    let clock = ManualClock::at(NOW);
    let issuer = base(&clock).build().unwrap();
    for name in ["sub", "exp", "aud", "jti", "sid", "fam", "client_id"] {
        let err = issuer
            .issue(Login::new("alice").claim(name, "x"))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, IssueError::ReservedClaim(n) if n == name),
            "{name}: {err:?}"
        );
    }
    let err = issuer
        .access_token(&Login::new("alice").claim("iss", "evil"))
        .unwrap_err();
    assert!(matches!(err, IssueError::ReservedClaim(_)));
}

#[tokio::test]
async fn access_token_alone_has_no_session() {
    let clock = ManualClock::at(NOW);
    let issuer = base(&clock).build().unwrap();
    let token = issuer
        .access_token(&Login::new("svc").scope("jobs:run"))
        .unwrap();
    let c = part(&token, 1);
    assert!(c.get("sid").is_none());
    assert_eq!(c["exp"], NOW + 600);
    let claims: StandardClaims = verifier(&issuer).validate(&token).await.unwrap();
    assert!(claims
        .scope
        .as_deref()
        .unwrap_or("")
        .split(' ')
        .any(|s| s == "jobs:run"));
}

#[tokio::test]
async fn token_pair_serializes_as_oauth_token_response_and_debug_redacts() {
    let clock = ManualClock::at(NOW);
    let issuer = base(&clock).build().unwrap();
    let pair = issuer.issue(Login::new("alice")).await.unwrap();
    let v = serde_json::to_value(&pair).unwrap();
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 600);
    assert_eq!(v["access_token"], pair.access_token.as_str());
    assert_eq!(v["refresh_token"], pair.refresh_token.as_str());
    assert_eq!(v["refresh_expires_in"], 14 * 86_400);
    assert!(v.get("session_id").is_none());
    let debug = format!("{pair:?}");
    assert!(!debug.contains(&pair.access_token));
    assert!(!debug.contains(&pair.refresh_token));
}

// ----- key types -----

async fn signs_and_verifies(builder: TokenIssuerBuilder, alg: &str) {
    let clock = ManualClock::at(NOW);
    let issuer = builder
        .issuer(ISS)
        .audience(AUD)
        .clock(clock.clone())
        .build()
        .unwrap_or_else(|e| panic!("{alg}: {e}"));
    let pair = issuer.issue(Login::new("alice")).await.unwrap();
    assert_eq!(part(&pair.access_token, 0)["alg"], alg);
    assert_eq!(part(&pair.refresh_token, 0)["alg"], alg);
    assert_eq!(format!("{:?}", issuer.algorithm()), alg);
    let claims: StandardClaims = verifier(&issuer)
        .validate(&pair.access_token)
        .await
        .unwrap_or_else(|e| panic!("{alg}: {e}"));
    assert_eq!(claims.sub.as_deref(), Some("alice"));
    // The refresh side verifies too.
    issuer
        .refresh(&pair.refresh_token)
        .await
        .unwrap_or_else(|e| panic!("{alg}: {e}"));
    // The published public key verifies the access token (asymmetric keys only).
    if let Some(jwks) = issuer.jwks() {
        let cfg = AuthConfig::builder()
            .keys(Keys::jwks_json(jwks))
            .issuer(ISS)
            .audience(AUD)
            .clock(clock.clone())
            .build()
            .unwrap();
        cfg.validate::<StandardClaims>(&pair.access_token)
            .await
            .unwrap_or_else(|e| panic!("{alg} via jwks: {e}"));
    }
}

#[tokio::test]
async fn hmac_keys_sign_and_auth_config_verifies() {
    signs_and_verifies(TokenIssuer::builder().hmac(SECRET), "HS256").await;
    signs_and_verifies(
        TokenIssuer::builder()
            .hmac([7u8; 48])
            .algorithm(Algorithm::HS384),
        "HS384",
    )
    .await;
    signs_and_verifies(
        TokenIssuer::builder()
            .hmac([7u8; 64])
            .algorithm(Algorithm::HS512),
        "HS512",
    )
    .await;
    signs_and_verifies(TokenIssuer::builder().random_hmac(), "HS256").await;
    signs_and_verifies(
        TokenIssuer::builder()
            .random_hmac()
            .algorithm(Algorithm::HS512),
        "HS512",
    )
    .await;
}

#[tokio::test]
async fn rsa_keys_sign_and_auth_config_verifies() {
    signs_and_verifies(TokenIssuer::builder().rsa_pem(RSA_PRIVATE), "RS256").await;
    signs_and_verifies(
        TokenIssuer::builder()
            .rsa_pem(RSA_PRIVATE)
            .algorithm(Algorithm::PS256),
        "PS256",
    )
    .await;
    signs_and_verifies(
        TokenIssuer::builder()
            .rsa_pem(RSA_PRIVATE)
            .algorithm(Algorithm::RS512),
        "RS512",
    )
    .await;
}

#[tokio::test]
async fn ec_keys_sign_with_the_algorithm_of_their_curve() {
    signs_and_verifies(TokenIssuer::builder().ec_pem(P256_PRIVATE), "ES256").await;
    signs_and_verifies(TokenIssuer::builder().ec_pem(P384_PRIVATE), "ES384").await;
}

#[tokio::test]
async fn ed25519_key_signs_and_auth_config_verifies() {
    signs_and_verifies(TokenIssuer::builder().ed_pem(ED25519_PRIVATE), "EdDSA").await;
}

#[tokio::test]
async fn jwks_publishes_the_public_key_with_kid_and_never_an_hmac_secret() {
    let issuer = TokenIssuer::builder()
        .ec_pem(P256_PRIVATE)
        .kid("ec-1")
        .issuer(ISS)
        .audience(AUD)
        .build()
        .unwrap();
    let jwks: Value = serde_json::from_str(&issuer.jwks().unwrap()).unwrap();
    let key = &jwks["keys"][0];
    assert_eq!(key["kty"], "EC");
    assert_eq!(key["crv"], "P-256");
    assert_eq!(key["kid"], "ec-1");
    assert_eq!(key["alg"], "ES256");
    assert_eq!(key["use"], "sig");
    assert!(key.get("d").is_none(), "no private part");

    let hmac = TokenIssuer::builder()
        .hmac(SECRET)
        .issuer(ISS)
        .audience(AUD)
        .build()
        .unwrap();
    assert_eq!(hmac.jwks(), None);
}

#[tokio::test]
async fn token_of_another_key_is_refused() {
    let clock = ManualClock::at(NOW);
    let ours = base(&clock).build().unwrap();
    let theirs = TokenIssuer::builder()
        .hmac([9u8; 32])
        .issuer(ISS)
        .audience(AUD)
        .clock(clock.clone())
        .build()
        .unwrap();
    let pair = theirs.issue(Login::new("mallory")).await.unwrap();
    assert_eq!(
        reason_of(&verifier(&ours), &pair.access_token).await,
        Some(Reason::BadSignature)
    );
    let err = ours.refresh(&pair.refresh_token).await.unwrap_err();
    assert_eq!(err.reason(), Reason::BadSignature);
}

// ----- build errors -----

#[test]
fn build_errors_name_the_fix() {
    let err = TokenIssuer::builder()
        .issuer(ISS)
        .audience(AUD)
        .build()
        .unwrap_err();
    assert_eq!(err, BuildError::NoKey);

    let err = TokenIssuer::builder()
        .hmac(b"short")
        .issuer(ISS)
        .audience(AUD)
        .build()
        .unwrap_err();
    assert!(matches!(
        err,
        BuildError::Config(ConfigError::WeakSecret {
            len: 5,
            need: 32,
            ..
        })
    ));

    let err = TokenIssuer::builder()
        .hmac(SECRET)
        .algorithm(Algorithm::HS512)
        .issuer(ISS)
        .audience(AUD)
        .build()
        .unwrap_err();
    assert!(matches!(
        err,
        BuildError::Config(ConfigError::WeakSecret { need: 64, .. })
    ));

    let err = TokenIssuer::builder()
        .ec_pem(P256_PRIVATE)
        .algorithm(Algorithm::ES384)
        .issuer(ISS)
        .audience(AUD)
        .build()
        .unwrap_err();
    assert!(matches!(
        err,
        BuildError::AlgorithmNotForKey {
            alg: Algorithm::ES384,
            ..
        }
    ));

    let err = TokenIssuer::builder()
        .rsa_pem(RSA_PRIVATE)
        .algorithm(Algorithm::ES256)
        .issuer(ISS)
        .audience(AUD)
        .build()
        .unwrap_err();
    assert!(matches!(err, BuildError::AlgorithmNotForKey { .. }));

    // A public key cannot sign.
    let err = TokenIssuer::builder()
        .ec_pem(include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/src/testing/p256_public.pem"
        )))
        .issuer(ISS)
        .audience(AUD)
        .build()
        .unwrap_err();
    assert!(matches!(err, BuildError::InvalidKey(_)), "{err:?}");

    let err = TokenIssuer::builder()
        .rsa_pem("not a pem")
        .issuer(ISS)
        .audience(AUD)
        .build()
        .unwrap_err();
    assert!(matches!(err, BuildError::InvalidKey(_)));

    let err = TokenIssuer::builder()
        .hmac(SECRET)
        .audience(AUD)
        .build()
        .unwrap_err();
    assert_eq!(err, BuildError::Config(ConfigError::NoIssuer));

    let err = TokenIssuer::builder()
        .hmac(SECRET)
        .issuer(ISS)
        .build()
        .unwrap_err();
    assert_eq!(err, BuildError::Config(ConfigError::NoAudience));

    let err = TokenIssuer::builder()
        .hmac(SECRET)
        .issuer(ISS)
        .audience(AUD)
        .access_ttl(Duration::from_secs(3600))
        .refresh_ttl(Duration::from_secs(600))
        .build()
        .unwrap_err();
    assert_eq!(err, BuildError::InvalidTtl);

    let err = TokenIssuer::builder()
        .hmac(SECRET)
        .issuer(ISS)
        .audience(AUD)
        .access_ttl(Duration::ZERO)
        .build()
        .unwrap_err();
    assert_eq!(err, BuildError::InvalidTtl);
    assert!(err.to_string().contains("at least 1 s"));
}

// ----- auth_config and token types -----

#[tokio::test]
async fn auth_config_rejects_a_refresh_token_as_wrong_type() {
    let clock = ManualClock::at(NOW);
    let issuer = base(&clock).build().unwrap();
    let pair = issuer.issue(Login::new("alice")).await.unwrap();
    let cfg = verifier(&issuer);
    assert_eq!(reason_of(&cfg, &pair.access_token).await, None);
    let err = cfg
        .validate::<StandardClaims>(&pair.refresh_token)
        .await
        .unwrap_err();
    assert_eq!(err.reason(), Reason::WrongType);
}

#[tokio::test]
async fn refresh_rejects_an_access_token_as_wrong_type() {
    let clock = ManualClock::at(NOW);
    let issuer = base(&clock).build().unwrap();
    let pair = issuer.issue(Login::new("alice")).await.unwrap();
    let err = issuer.refresh(&pair.access_token).await.unwrap_err();
    assert!(matches!(err, RefreshError::Invalid(_)));
    assert_eq!(err.reason(), Reason::WrongType);
    assert_eq!(err.status(), http::StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn auth_config_requires_the_access_token_profile() {
    // A token of the same key without `typ: at+jwt` or without client_id is refused.
    let clock = ManualClock::at(NOW);
    let issuer = base(&clock).build().unwrap();
    let key = tower_token_auth::testing::TestKey::hmac(Algorithm::HS256, SECRET.to_vec());
    let plain = key
        .token_at(NOW)
        .issuer(ISS)
        .audience(AUD)
        .subject("alice")
        .claim("jti", "j")
        .claim("client_id", "c")
        .sign();
    assert_eq!(
        reason_of(&verifier(&issuer), &plain).await,
        Some(Reason::WrongType)
    );
    let no_client = key
        .token_at(NOW)
        .header("typ", "at+jwt")
        .issuer(ISS)
        .audience(AUD)
        .subject("alice")
        .claim("jti", "j")
        .sign();
    assert_eq!(
        reason_of(&verifier(&issuer), &no_client).await,
        Some(Reason::MissingClaim)
    );
}

// ----- refresh -----

#[tokio::test]
async fn refresh_rotates_within_the_family_and_keeps_the_claims() {
    let clock = ManualClock::at(NOW);
    let issuer = base(&clock).build().unwrap();
    let pair = issuer
        .issue(
            Login::new("alice")
                .scope("orders:read")
                .claim("name", "Alice"),
        )
        .await
        .unwrap();
    clock.advance(Duration::from_secs(500));
    let next = issuer.refresh(&pair.refresh_token).await.unwrap();

    assert_eq!(next.session_id, pair.session_id);
    assert_ne!(next.access_token, pair.access_token);
    assert_ne!(next.refresh_token, pair.refresh_token);
    let a = part(&next.access_token, 1);
    assert_eq!(a["sid"], pair.session_id.as_str());
    assert_eq!(a["sub"], "alice");
    assert_eq!(a["scope"], "orders:read");
    assert_eq!(a["name"], "Alice");
    assert_eq!(a["iat"], NOW + 500);
    assert_eq!(a["exp"], NOW + 500 + 600);
    assert_eq!(a["auth_time"], NOW, "auth_time stays the login time");
    let r = part(&next.refresh_token, 1);
    assert_eq!(r["fam"], pair.session_id.as_str());
    assert_eq!(r["exp"], NOW + 500 + 14 * 86_400, "sliding lifetime");
    assert_ne!(r["jti"], part(&pair.refresh_token, 1)["jti"]);

    // The new access token verifies; the new refresh token rotates again.
    verifier(&issuer)
        .validate::<StandardClaims>(&next.access_token)
        .await
        .unwrap();
    issuer.refresh(&next.refresh_token).await.unwrap();
}

#[tokio::test]
async fn reusing_a_rotated_refresh_token_revokes_the_whole_family() {
    let clock = ManualClock::at(NOW);
    let issuer = base(&clock).build().unwrap();
    let first = issuer.issue(Login::new("alice")).await.unwrap();
    let second = issuer.refresh(&first.refresh_token).await.unwrap();
    let third = issuer.refresh(&second.refresh_token).await.unwrap();

    // The first token comes back: reuse.
    let err = issuer.refresh(&first.refresh_token).await.unwrap_err();
    assert!(matches!(err, RefreshError::Reused), "{err:?}");
    assert_eq!(err.reason(), Reason::Revoked);
    assert_eq!(
        tower_token_auth::AuthError::from(err).reason(),
        Reason::Revoked
    );

    // Every token of the family is refused now, the newest included.
    let err = issuer.refresh(&third.refresh_token).await.unwrap_err();
    assert!(matches!(err, RefreshError::Revoked), "{err:?}");
    assert_eq!(err.reason(), Reason::Revoked);
    let err = issuer.refresh(&second.refresh_token).await.unwrap_err();
    assert!(matches!(err, RefreshError::Revoked), "{err:?}");

    // Other sessions of the same subject are untouched.
    let other = issuer.issue(Login::new("alice")).await.unwrap();
    issuer.refresh(&other.refresh_token).await.unwrap();
}

#[tokio::test]
async fn reuse_revokes_the_familys_access_tokens_through_the_revocation_store() {
    let clock = ManualClock::at(NOW);
    let revoked = Arc::new(MemoryRevocationStore::with_clock(clock.clone()));
    let issuer = base(&clock).revocation(revoked.clone()).build().unwrap();
    let cfg = verifier(&issuer);
    let first = issuer.issue(Login::new("alice")).await.unwrap();
    let second = issuer.refresh(&first.refresh_token).await.unwrap();
    let other = issuer.issue(Login::new("alice")).await.unwrap();
    assert_eq!(reason_of(&cfg, &second.access_token).await, None);

    issuer.refresh(&first.refresh_token).await.unwrap_err();
    assert_eq!(
        reason_of(&cfg, &first.access_token).await,
        Some(Reason::Revoked)
    );
    assert_eq!(
        reason_of(&cfg, &second.access_token).await,
        Some(Reason::Revoked)
    );
    // Only that family: the subject's other session goes on.
    assert_eq!(reason_of(&cfg, &other.access_token).await, None);
    // Entries live as long as the tokens: both access tokens, nothing for the subject.
    assert_eq!(revoked.len(), 2);
}

#[tokio::test]
async fn unknown_family_is_revoked() {
    // Another issuer instance with the same key but its own (empty) memory store, as after
    // a restart.
    let clock = ManualClock::at(NOW);
    let before = base(&clock).build().unwrap();
    let pair = before.issue(Login::new("alice")).await.unwrap();
    let after = base(&clock).build().unwrap();
    let err = after.refresh(&pair.refresh_token).await.unwrap_err();
    assert!(matches!(err, RefreshError::Revoked), "{err:?}");
}

#[tokio::test]
async fn shared_refresh_store_lets_two_instances_rotate() {
    let clock = ManualClock::at(NOW);
    let store = Arc::new(MemoryRefreshStore::new());
    let a = base(&clock).refresh_store(store.clone()).build().unwrap();
    let b = base(&clock).refresh_store(store.clone()).build().unwrap();
    let pair = a.issue(Login::new("alice")).await.unwrap();
    let next = b.refresh(&pair.refresh_token).await.unwrap();
    // Reuse seen by the other instance.
    assert!(matches!(
        a.refresh(&pair.refresh_token).await.unwrap_err(),
        RefreshError::Reused
    ));
    assert!(matches!(
        b.refresh(&next.refresh_token).await.unwrap_err(),
        RefreshError::Revoked
    ));
}

#[tokio::test]
async fn expired_refresh_token_is_expired() {
    let clock = ManualClock::at(NOW);
    let issuer = base(&clock)
        .access_ttl(Duration::from_secs(60))
        .refresh_ttl(Duration::from_secs(3600))
        .build()
        .unwrap();
    let pair = issuer.issue(Login::new("alice")).await.unwrap();
    clock.advance(Duration::from_secs(3600 + 31));
    let err = issuer.refresh(&pair.refresh_token).await.unwrap_err();
    assert!(matches!(err, RefreshError::Invalid(_)));
    assert_eq!(err.reason(), Reason::Expired);
}

#[tokio::test]
async fn max_session_caps_every_token_of_the_family() {
    let clock = ManualClock::at(NOW);
    let issuer = base(&clock)
        .access_ttl(Duration::from_secs(600))
        .refresh_ttl(Duration::from_secs(3600))
        .max_session(Duration::from_secs(4000))
        .build()
        .unwrap();
    let pair = issuer.issue(Login::new("alice")).await.unwrap();
    clock.advance(Duration::from_secs(3500));
    let next = issuer.refresh(&pair.refresh_token).await.unwrap();
    assert_eq!(
        next.refresh_expires_at,
        NOW + 4000,
        "capped at login + 4000"
    );
    assert_eq!(next.access_expires_at, NOW + 4000);
    assert_eq!(next.expires_in, 500);
    clock.advance(Duration::from_secs(490));
    let last = issuer.refresh(&next.refresh_token).await.unwrap();
    assert_eq!(last.refresh_expires_at, NOW + 4000);
    assert_eq!(last.expires_in, 10);
    // Past the cap the refresh token has expired.
    clock.advance(Duration::from_secs(50));
    let err = issuer.refresh(&last.refresh_token).await.unwrap_err();
    assert_eq!(err.reason(), Reason::Expired);
}

#[tokio::test]
async fn subject_revocation_ends_refreshes_too() {
    let clock = ManualClock::at(NOW);
    let revoked = Arc::new(MemoryRevocationStore::with_clock(clock.clone()));
    let issuer = base(&clock).revocation(revoked.clone()).build().unwrap();
    let pair = issuer.issue(Login::new("alice")).await.unwrap();
    clock.advance(Duration::from_secs(10));
    // "Log out everywhere".
    revoked
        .revoke_subject("alice", NOW + 10, NOW + 10 + 14 * 86_400)
        .await
        .unwrap();
    let err = issuer.refresh(&pair.refresh_token).await.unwrap_err();
    assert!(matches!(err, RefreshError::Invalid(_)));
    assert_eq!(err.reason(), Reason::Revoked);
    assert_eq!(
        reason_of(&verifier(&issuer), &pair.access_token).await,
        Some(Reason::Revoked)
    );
}

// ----- logout -----

#[tokio::test]
async fn logout_with_the_access_token_revokes_it_and_its_family() {
    let clock = ManualClock::at(NOW);
    let revoked = Arc::new(MemoryRevocationStore::with_clock(clock.clone()));
    let issuer = base(&clock).revocation(revoked.clone()).build().unwrap();
    let cfg = verifier(&issuer);
    let pair = issuer.issue(Login::new("alice")).await.unwrap();
    let other = issuer.issue(Login::new("alice")).await.unwrap();

    issuer.logout(&pair.access_token).await.unwrap();
    assert_eq!(
        reason_of(&cfg, &pair.access_token).await,
        Some(Reason::Revoked)
    );
    let err = issuer.refresh(&pair.refresh_token).await.unwrap_err();
    assert!(matches!(err, RefreshError::Revoked), "{err:?}");
    // The other session is untouched.
    assert_eq!(reason_of(&cfg, &other.access_token).await, None);
    issuer.refresh(&other.refresh_token).await.unwrap();
}

#[tokio::test]
async fn logout_with_an_expired_access_token_still_ends_the_session() {
    let clock = ManualClock::at(NOW);
    let issuer = base(&clock).build().unwrap();
    let pair = issuer.issue(Login::new("alice")).await.unwrap();
    clock.advance(Duration::from_secs(3600));
    issuer.logout(&pair.access_token).await.unwrap();
    assert!(matches!(
        issuer.refresh(&pair.refresh_token).await.unwrap_err(),
        RefreshError::Revoked
    ));
}

#[tokio::test]
async fn logout_with_the_refresh_token_revokes_the_family_and_its_access_tokens() {
    let clock = ManualClock::at(NOW);
    let revoked = Arc::new(MemoryRevocationStore::with_clock(clock.clone()));
    let issuer = base(&clock).revocation(revoked.clone()).build().unwrap();
    let pair = issuer.issue(Login::new("alice")).await.unwrap();
    issuer.logout(&pair.refresh_token).await.unwrap();
    assert!(matches!(
        issuer.refresh(&pair.refresh_token).await.unwrap_err(),
        RefreshError::Revoked
    ));
    assert_eq!(
        reason_of(&verifier(&issuer), &pair.access_token).await,
        Some(Reason::Revoked)
    );
}

#[tokio::test]
async fn logout_refuses_a_forged_token() {
    let clock = ManualClock::at(NOW);
    let issuer = base(&clock).build().unwrap();
    let other = TokenIssuer::builder()
        .hmac([3u8; 32])
        .issuer(ISS)
        .audience(AUD)
        .clock(clock.clone())
        .build()
        .unwrap();
    let pair = issuer.issue(Login::new("alice")).await.unwrap();
    let forged = other.issue(Login::new("alice")).await.unwrap();
    let err = issuer.logout(&forged.access_token).await.unwrap_err();
    assert_eq!(err.reason(), Reason::BadSignature);
    let err = issuer.logout("garbage").await.unwrap_err();
    assert_eq!(err.reason(), Reason::Malformed);
    // Nothing was revoked.
    issuer.refresh(&pair.refresh_token).await.unwrap();
}

#[tokio::test]
async fn revoke_session_by_id() {
    let clock = ManualClock::at(NOW);
    let revoked = Arc::new(MemoryRevocationStore::with_clock(clock.clone()));
    let issuer = base(&clock).revocation(revoked.clone()).build().unwrap();
    let pair = issuer.issue(Login::new("alice")).await.unwrap();
    issuer.revoke_session(&pair.session_id).await.unwrap();
    assert!(matches!(
        issuer.refresh(&pair.refresh_token).await.unwrap_err(),
        RefreshError::Revoked
    ));
    assert_eq!(
        reason_of(&verifier(&issuer), &pair.access_token).await,
        Some(Reason::Revoked)
    );
}

// ----- errors to responses -----

#[test]
fn store_failures_answer_503_with_retry_after() {
    let err = RefreshError::Store(tower_token_auth::issuer::RefreshStoreError("down".into()));
    assert_eq!(err.reason(), Reason::RevocationUnavailable);
    assert_eq!(err.status(), http::StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        tower_token_auth::AuthError::from(err).retry_after(),
        Some(5)
    );
    let auth: tower_token_auth::AuthError = RefreshError::Reused.into();
    assert_eq!(auth.reason(), Reason::Revoked);
    assert_eq!(auth.retry_after(), None);
}

// ----- memory store -----

fn generation(refresh: &str, refresh_exp: i64, access: &str, access_exp: i64) -> Generation {
    Generation::new(
        IssuedToken::new(refresh, refresh_exp),
        IssuedToken::new(access, access_exp),
    )
}

#[tokio::test]
async fn memory_store_forgets_families_when_their_refresh_token_expires() {
    let store = MemoryRefreshStore::new();
    store
        .start("a", &generation("ra", NOW + 100, "xa", NOW + 10), NOW)
        .await
        .unwrap();
    store
        .start("b", &generation("rb", NOW + 1000, "xb", NOW + 10), NOW)
        .await
        .unwrap();
    assert_eq!(store.len(), 2);

    // Past a's expiry, a is gone for rotation at once, and from memory on the next sweep.
    let next = generation("ra2", NOW + 300, "xa2", NOW + 210);
    assert_eq!(
        store.rotate("a", "ra", &next, NOW + 100).await.unwrap(),
        Rotation::Revoked
    );
    store.remove_expired(NOW + 100);
    assert_eq!(store.len(), 1);

    // Writes sweep by themselves (at most once a minute).
    store
        .start(
            "c",
            &generation("rc", NOW + 5000, "xc", NOW + 1100),
            NOW + 1000,
        )
        .await
        .unwrap();
    assert_eq!(store.len(), 1, "b expired at NOW + 1000 and was swept");
    store.remove_expired(NOW + 5000);
    assert!(store.is_empty());
}

#[tokio::test]
async fn memory_store_keeps_revoked_families_until_expiry() {
    let store = MemoryRefreshStore::new();
    store
        .start("f", &generation("r1", NOW + 1000, "a1", NOW + 100), NOW)
        .await
        .unwrap();
    let live = store.revoke("f", NOW + 50).await.unwrap();
    assert_eq!(live, vec![IssuedToken::new("a1", NOW + 100)]);
    // Revoked, remembered, and its access tokens are not returned twice.
    let next = generation("r2", NOW + 2000, "a2", NOW + 200);
    assert_eq!(
        store.rotate("f", "r1", &next, NOW + 60).await.unwrap(),
        Rotation::Revoked
    );
    assert!(store.revoke("f", NOW + 70).await.unwrap().is_empty());
    assert_eq!(store.len(), 1);
    store.remove_expired(NOW + 1000);
    assert!(store.is_empty());
}

#[tokio::test]
async fn memory_store_returns_only_live_access_tokens_on_reuse() {
    let store = MemoryRefreshStore::new();
    store
        .start("f", &generation("r1", NOW + 9000, "a1", NOW + 100), NOW)
        .await
        .unwrap();
    let g2 = generation("r2", NOW + 9000, "a2", NOW + 700);
    assert_eq!(
        store.rotate("f", "r1", &g2, NOW + 600).await.unwrap(),
        Rotation::Rotated
    );
    let g3 = generation("r3", NOW + 9000, "a3", NOW + 800);
    match store.rotate("f", "r1", &g3, NOW + 650).await.unwrap() {
        Rotation::Reused(access) => {
            assert_eq!(access, vec![IssuedToken::new("a2", NOW + 700)]);
        }
        other => panic!("expected reuse, got {other:?}"),
    }
}
