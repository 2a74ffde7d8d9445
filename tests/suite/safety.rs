//! Regression tests of the safety issue (#10): each test names the item it covers. Items 2-4
//! (cache hits, stale keys, dropped fetches) are in `tests/suite/consistency.rs` and
//! `tests/suite/remote_keys.rs`; the Redis ones (5, 10) in `tests/suite/redis_revocation.rs`.

use std::time::Duration;

use axum::{body::Body, routing::get, Router};
use http::{Request, StatusCode};
use serde_json::{json, Value};
use tower::ServiceExt;
use tower_token_auth::clock::ManualClock;
use tower_token_auth::revocation::{MemoryRevocationStore, RevocationStore, TokenRef};
use tower_token_auth::testing::{MockIssuer, TestKey};
use tower_token_auth::{AuthConfig, AuthError, Keys, Reason, RequireScope, TokenAuthLayer};

use crate::common::{ok_app as app, status_and_reason as send};

const ISS: &str = "https://issuer.test";
const AUD: &str = "api";

/// A 1024-bit RSA modulus (base64url), from `openssl genrsa 1024`.
const RSA_1024_N: &str = "5IxHPaqYGxKrrqFTnu6qHBcyXiRQ1_jr9JmILLsdigRyhl5CmeJ-5hqyRHSL9A3mKYxfqMCnEsSAth0P4B1BiXdV8pt5gDEl4Xf1mqGTLsYZJdyuT61WVqIObsWClqK2McJq2QNAAweiHVrNUOaIe9xE3sFZyps3GuXaA2PZWP0";

fn hs_cfg(key: &TestKey) -> AuthConfig {
    AuthConfig::builder()
        .keys(key.keys())
        .issuer(ISS)
        .audience(AUD)
        .build()
        .unwrap()
}

/// Expects `token` to be refused by the layer and by `validate` with `reason`.
async fn refused(cfg: &AuthConfig, token: &str, reason: Reason) {
    let (status, got) = send(&app(cfg.clone()), token).await;
    assert_eq!(got, Some(reason), "layer: status {status}");
    let err = cfg.validate::<Value>(token).await.unwrap_err();
    assert_eq!(err.reason(), reason, "validate");
}

// ---------------------------------------------------------------------------------------------
// Item 1: a remote key set never yields a symmetric key.

#[tokio::test]
async fn item1_remote_oct_key_cannot_sign_tokens() {
    // A provider that (wrongly) publishes its HMAC secret next to an EC key. Anyone can download
    // the set: a token signed with that secret must not pass.
    let ec = TestKey::es256().with_kid("ec-1");
    let oct = TestKey::hs256().with_kid("oct-1");
    let mock = MockIssuer::start_with(vec![ec.clone(), oct.clone()]).await;
    let cfg = AuthConfig::builder()
        .keys(mock.keys())
        .audience(AUD)
        .build()
        .unwrap();
    cfg.warm_up().await.unwrap();
    let status = &cfg.key_status()[0];
    assert_eq!(status.keys, 1, "only the EC key is usable");
    assert_eq!(status.skipped, 1, "the oct key is counted as skipped");

    let forged = oct.token().issuer(&mock.issuer()).audience(AUD).sign();
    let (status, reason) = send(&app(cfg.clone()), &forged).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(reason, Some(Reason::UnknownKey));
    assert!(cfg.validate::<Value>(&forged).await.is_err());

    // The EC key of the same set still verifies.
    let good = ec.token().issuer(&mock.issuer()).audience(AUD).sign();
    assert_eq!(send(&app(cfg), &good).await.0, StatusCode::OK);
}

#[tokio::test]
async fn item1_remote_keys_with_private_members_are_skipped() {
    let ec = TestKey::es256().with_kid("ec-1");
    let mock = MockIssuer::start_with(vec![ec.clone()]).await;
    // Serve the EC key again under another kid, with a private member (`d`).
    let mut private = ec.jwk();
    private["kid"] = "leaked".into();
    private["d"] = "AAAA".into();
    let set = json!({ "keys": [ec.jwk(), private] }).to_string();
    let server = jwks_server(set).await;
    let cfg = AuthConfig::builder()
        .keys(Keys::remote(
            tower_token_auth::keys::remote::Remote::jwks_url(server).allow_http(),
        ))
        .issuer(mock.issuer())
        .audience(AUD)
        .build()
        .unwrap();
    cfg.warm_up().await.unwrap();
    let status = &cfg.key_status()[0];
    assert_eq!((status.keys, status.skipped), (1, 1));
    let token = ec
        .token()
        .issuer(&mock.issuer())
        .audience(AUD)
        .header("kid", "leaked")
        .sign();
    refused(&cfg, &token, Reason::UnknownKey).await;
}

#[tokio::test]
async fn item1_local_jwk_set_may_hold_the_users_own_secret() {
    let oct = TestKey::hs256().with_kid("mine");
    let cfg = AuthConfig::builder()
        .keys(Keys::jwks_json(TestKey::jwks(&[&oct])))
        .issuer(ISS)
        .audience(AUD)
        .build()
        .unwrap();
    let token = oct.token().issuer(ISS).audience(AUD).sign();
    assert_eq!(send(&app(cfg), &token).await.0, StatusCode::OK);
}

/// A JWK set server on 127.0.0.1 serving `set` at `/jwks`; returns its URL.
async fn jwks_server(set: String) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().route("/jwks", get(move || async move { set }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}/jwks")
}

// ---------------------------------------------------------------------------------------------
// Item 6: header members and claims are compared exactly.

fn typed_cfg(key: &TestKey) -> AuthConfig {
    AuthConfig::builder()
        .keys(key.keys())
        .issuer(ISS)
        .audience(AUD)
        .require_type("at+jwt")
        .build()
        .unwrap()
}

#[tokio::test]
async fn item6_typ_with_whitespace_is_wrong_type() {
    let key = TestKey::hs256();
    let cfg = typed_cfg(&key);
    for typ in [" at+jwt", "at+jwt ", "application/ at+jwt", "at+jwt\t"] {
        let t = key
            .token()
            .issuer(ISS)
            .audience(AUD)
            .header("typ", typ)
            .sign();
        refused(&cfg, &t, Reason::WrongType).await;
    }
    // What RFC 7515 §4.1.9 allows: case and the `application/` prefix.
    for typ in [
        "at+jwt",
        "AT+JWT",
        "application/at+jwt",
        "Application/At+Jwt",
    ] {
        let t = key
            .token()
            .issuer(ISS)
            .audience(AUD)
            .header("typ", typ)
            .sign();
        assert_eq!(send(&app(cfg.clone()), &t).await.0, StatusCode::OK, "{typ}");
    }
}

#[test]
fn item6_required_type_with_whitespace_fails_at_build() {
    let key = TestKey::hs256();
    let err = AuthConfig::builder()
        .keys(key.keys())
        .issuer(ISS)
        .audience(AUD)
        .require_type(" at+jwt")
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("required type"), "{err}");
}

#[tokio::test]
async fn item6_null_header_members_are_malformed() {
    let key = TestKey::hs256();
    let cfg = hs_cfg(&key);
    for member in ["crit", "kid", "typ", "cty"] {
        let t = key
            .token()
            .issuer(ISS)
            .audience(AUD)
            .header(member, Value::Null)
            .sign();
        refused(&cfg, &t, Reason::Malformed).await;
    }
    // A kid of another type is malformed too (never read as "no kid").
    let t = key
        .token()
        .issuer(ISS)
        .audience(AUD)
        .header("kid", 7)
        .sign();
    refused(&cfg, &t, Reason::Malformed).await;
}

#[tokio::test]
async fn item6_null_time_claims_are_invalid_not_absent() {
    let key = TestKey::hs256();
    let cfg = hs_cfg(&key);
    for claim in ["nbf", "iat"] {
        let t = key
            .token()
            .issuer(ISS)
            .audience(AUD)
            .claim(claim, Value::Null)
            .sign();
        refused(&cfg, &t, Reason::InvalidClaim).await;
    }
}

#[tokio::test]
async fn item6_scopes_are_separated_by_spaces_only() {
    // RFC 6749 §3.3: scope-tokens are separated by %x20; a tab is not a separator, and an
    // entry of a `scp` array is one scope.
    let key = TestKey::hs256();
    let app = Router::new()
        .route(
            "/",
            get(|| async { "ok" }).layer(RequireScope::all(["admin"])),
        )
        .layer(TokenAuthLayer::new(hs_cfg(&key)));
    let with = |name: &str, value: Value| {
        key.token()
            .issuer(ISS)
            .audience(AUD)
            .claim(name, value)
            .sign()
    };
    let refused = [
        with("scope", "orders:read\tadmin".into()),
        with("scope", "orders:read\nadmin".into()),
        with("scp", json!(["orders:read admin"])),
    ];
    for t in refused {
        assert_eq!(send(&app, &t).await.0, StatusCode::FORBIDDEN);
    }
    let granted = [
        with("scope", "orders:read admin".into()),
        with("scope", "orders:read  admin".into()),
        with("scp", json!(["orders:read", "admin"])),
    ];
    for t in granted {
        assert_eq!(send(&app, &t).await.0, StatusCode::OK);
    }
}

#[tokio::test]
async fn item6_quoted_cookie_loses_one_pair_of_quotes_only() {
    let key = TestKey::hs256();
    let cfg = AuthConfig::builder()
        .keys(key.keys())
        .issuer(ISS)
        .audience(AUD)
        .source(tower_token_auth::source::cookie("at"))
        .build()
        .unwrap();
    let app = app(cfg);
    let token = key.token().issuer(ISS).audience(AUD).sign();
    let ask = |cookie: String| {
        let app = app.clone();
        async move {
            let res = app
                .oneshot(
                    Request::get("/")
                        .header("cookie", cookie)
                        .body(Body::empty())
                        .unwrap(),
                )
                .await
                .unwrap();
            (
                res.status(),
                res.extensions().get::<AuthError>().map(AuthError::reason),
            )
        }
    };
    assert_eq!(ask(format!("at=\"{token}\"")).await.0, StatusCode::OK);
    let (status, reason) = ask(format!("at=\"\"{token}\"\"")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(reason, Some(Reason::Malformed));
}

// ---------------------------------------------------------------------------------------------
// Item 7: RSA keys from JWKs get the 2048-bit minimum on both backends.

fn rsa_1024_jwk() -> Value {
    json!({ "kty": "RSA", "kid": "weak", "alg": "RS256", "n": RSA_1024_N, "e": "AQAB" })
}

#[test]
fn item7_rsa_jwk_under_2048_bits_fails_at_build() {
    let err = AuthConfig::builder()
        .keys(Keys::jwk(rsa_1024_jwk().to_string()))
        .issuer(ISS)
        .audience(AUD)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("2048"), "{err}");
}

#[test]
fn item7_rsa_jwk_under_2048_bits_is_skipped_in_a_set() {
    let set = json!({ "keys": [rsa_1024_jwk()] }).to_string();
    let err = AuthConfig::builder()
        .keys(Keys::jwks_json(set))
        .issuer(ISS)
        .audience(AUD)
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("no usable"), "{err}");
    // Beside a good key, the weak one is skipped and the good one works.
    let ec = TestKey::es256().with_kid("ec-1");
    let set = json!({ "keys": [rsa_1024_jwk(), ec.jwk()] }).to_string();
    assert!(AuthConfig::builder()
        .keys(Keys::jwks_json(set))
        .issuer(ISS)
        .audience(AUD)
        .build()
        .is_ok());
}

#[tokio::test]
async fn item7_remote_rsa_jwk_under_2048_bits_is_skipped() {
    let ec = TestKey::es256().with_kid("ec-1");
    let set = json!({ "keys": [rsa_1024_jwk(), ec.jwk()] }).to_string();
    let url = jwks_server(set).await;
    let cfg = AuthConfig::builder()
        .keys(Keys::remote(
            tower_token_auth::keys::remote::Remote::jwks_url(url).allow_http(),
        ))
        .issuer(ISS)
        .audience(AUD)
        .build()
        .unwrap();
    cfg.warm_up().await.unwrap();
    let status = &cfg.key_status()[0];
    assert_eq!((status.keys, status.skipped), (1, 1));
}

// ---------------------------------------------------------------------------------------------
// Item 10: "log out everywhere" revokes a token issued in the same second.

#[tokio::test]
async fn item10_revoke_subject_covers_a_token_issued_in_the_same_second() {
    const NOW: i64 = 1_800_000_000;
    let clock = ManualClock::at(NOW);
    let store = std::sync::Arc::new(MemoryRevocationStore::with_clock(clock.clone()));
    let key = TestKey::hs256();
    let cfg = AuthConfig::builder()
        .keys(key.keys())
        .issuer(ISS)
        .audience(AUD)
        .clock(clock.clone())
        .revocation(store.clone())
        .build()
        .unwrap();
    let same_second = key
        .token_at(NOW)
        .issuer(ISS)
        .audience(AUD)
        .subject("alice")
        .sign();
    let next_second = key
        .token_at(NOW + 1)
        .issuer(ISS)
        .audience(AUD)
        .subject("alice")
        .sign();
    clock.advance(Duration::from_secs(1));
    store
        .revoke_subject("alice", NOW, NOW + 3600)
        .await
        .unwrap();
    refused(&cfg, &same_second, Reason::Revoked).await;
    assert_eq!(send(&app(cfg), &next_second).await.0, StatusCode::OK);
    let t = |iat| TokenRef {
        jti: None,
        iss: None,
        sub: Some("alice"),
        iat: Some(iat),
        exp: None,
    };
    assert_eq!(store.check_local(&t(NOW)), Some(true));
    assert_eq!(store.check_local(&t(NOW + 1)), Some(false));
}
