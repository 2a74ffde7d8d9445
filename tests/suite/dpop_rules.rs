//! DPoP rules with proofs made here (the independent proofs of node `jose` are in `dpop.rs`):
//! the time window by a manual clock, nonces, the replay bound, how the request URL is found
//! (base URL with a path, `Host`, forwarded headers), unbound tokens, metadata, `validate()`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::{Request, StatusCode};
use serde_json::Value;
use tower::ServiceExt;
use tower_token_auth::binding::Dpop;
use tower_token_auth::clock::ManualClock;
use tower_token_auth::metadata::ResourceMetadata;
use tower_token_auth::testing::TestKey;
use tower_token_auth::{
    AuthConfig, AuthError, ConfigError, Reason, StandardClaims, TokenAuthLayer,
};

use crate::common::hs;

const NOW: i64 = 1_800_000_000;

fn sha256_b64(data: &[u8]) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data);
    URL_SAFE_NO_PAD.encode(digest.as_ref())
}

/// The RFC 7638 thumbprint of an EC key's JWK, computed here from its members.
fn thumbprint(jwk: &Value) -> String {
    let canonical = format!(
        r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
        jwk["crv"].as_str().unwrap(),
        jwk["x"].as_str().unwrap(),
        jwk["y"].as_str().unwrap()
    );
    sha256_b64(canonical.as_bytes())
}

/// An HS256 access token bound to `key` (or unbound).
fn token(key: Option<&TestKey>) -> String {
    let signer = hs::key();
    let b = signer
        .token_at(NOW)
        .issuer(hs::ISS)
        .audience(hs::AUD)
        .subject("alice");
    match key {
        Some(k) => b
            .claim("cnf", serde_json::json!({ "jkt": thumbprint(&k.jwk()) }))
            .sign(),
        None => b.sign(),
    }
}

static JTI: AtomicU64 = AtomicU64::new(0);

/// A proof by `key` for `GET htu`, issued at `iat`, naming `token`; `nonce` if given.
fn proof(key: &TestKey, token: &str, htu: &str, iat: i64, nonce: Option<&str>) -> String {
    let mut b = key
        .token_at(iat)
        .header("typ", "dpop+jwt")
        .header("jwk", key.jwk())
        .without("exp")
        .without("nbf")
        .claim("jti", format!("jti-{}", JTI.fetch_add(1, Ordering::SeqCst)))
        .claim("htm", "GET")
        .claim("htu", htu)
        .claim("ath", sha256_b64(token.as_bytes()));
    if let Some(n) = nonce {
        b = b.claim("nonce", n);
    }
    b.sign()
}

fn config(clock: &ManualClock, dpop: Dpop) -> AuthConfig {
    hs::base().clock(clock.clone()).dpop(dpop).build().unwrap()
}

fn app(cfg: AuthConfig) -> Router {
    Router::new()
        .route("/me", axum::routing::get(|| async { "ok" }))
        .layer(TokenAuthLayer::new(cfg))
}

struct Reply {
    status: StatusCode,
    err: Option<AuthError>,
    nonce: Option<String>,
    challenge: Option<String>,
}

async fn send(
    app: &Router,
    req: http::request::Builder,
    token: &str,
    proof: Option<&str>,
) -> Reply {
    let mut req = req.header("authorization", format!("DPoP {token}"));
    if let Some(p) = proof {
        req = req.header("dpop", p);
    }
    let res = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let header = |n: &str| res.headers().get(n).map(|v| v.to_str().unwrap().to_owned());
    Reply {
        status: res.status(),
        err: res.extensions().get::<AuthError>().cloned(),
        nonce: header("dpop-nonce"),
        challenge: header("www-authenticate"),
    }
}

fn request(path: &str) -> http::request::Builder {
    Request::get(path).header("host", "api.example.com")
}

fn refused(r: &Reply) -> (Reason, String) {
    let e = r.err.as_ref().expect("a rejection");
    let subject = e.problems()[0].subject().unwrap_or("").to_owned();
    (e.reason(), subject)
}

#[tokio::test]
async fn the_proof_age_window_is_max_age_plus_the_leeway_either_way() {
    let key = TestKey::es256();
    let clock = ManualClock::at(NOW);
    let t = token(Some(&key));
    // Default leeway 30 s, max_age 60 s.
    let app = app(config(
        &clock,
        Dpop::allowed().base_url("https://api.example.com"),
    ));
    let url = "https://api.example.com/me";
    for (iat, ok) in [
        (NOW - 89, true),
        (NOW - 91, false),
        (NOW + 29, true),
        (NOW + 31, false),
    ] {
        let r = send(
            &app,
            request("/me"),
            &t,
            Some(&proof(&key, &t, url, iat, None)),
        )
        .await;
        assert_eq!(
            r.status == StatusCode::OK,
            ok,
            "iat {} s from now",
            iat - NOW
        );
        if !ok {
            assert_eq!(refused(&r), (Reason::InvalidDpopProof, "iat".into()));
        }
    }
}

#[tokio::test]
async fn nonces_are_required_issued_and_rotated() {
    let key = TestKey::es256();
    let clock = ManualClock::at(NOW);
    let t = token(Some(&key));
    let dpop = Dpop::required()
        .base_url("https://api.example.com")
        .use_nonce(Duration::from_secs(30));
    let app = app(config(&clock, dpop));
    let url = "https://api.example.com/me";

    let r = send(
        &app,
        request("/me"),
        &t,
        Some(&proof(&key, &t, url, NOW, None)),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(refused(&r).0, Reason::UseDpopNonce);
    let challenge = r.challenge.unwrap();
    assert!(
        challenge.starts_with("DPoP realm=\"api\", algs="),
        "{challenge}"
    );
    assert!(!challenge.contains("Bearer"), "{challenge}");
    assert!(
        challenge.contains(r#"error="use_dpop_nonce""#),
        "{challenge}"
    );
    let nonce = r.nonce.expect("DPoP-Nonce header");

    let r = send(
        &app,
        request("/me"),
        &t,
        Some(&proof(&key, &t, url, NOW, Some(&nonce))),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.err);
    // Still good in the next slot, not two slots later.
    clock.advance(Duration::from_secs(30));
    let r = send(
        &app,
        request("/me"),
        &t,
        Some(&proof(&key, &t, url, NOW + 30, Some(&nonce))),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.err);
    clock.advance(Duration::from_secs(30));
    let r = send(
        &app,
        request("/me"),
        &t,
        Some(&proof(&key, &t, url, NOW + 60, Some(&nonce))),
    )
    .await;
    assert_eq!(refused(&r).0, Reason::UseDpopNonce);
    assert_ne!(r.nonce.as_deref(), Some(nonce.as_str()), "a new nonce");
    // A made-up nonce is no nonce.
    let r = send(
        &app,
        request("/me"),
        &t,
        Some(&proof(&key, &t, url, NOW + 60, Some("made-up"))),
    )
    .await;
    assert_eq!(refused(&r).0, Reason::UseDpopNonce);
}

#[tokio::test]
async fn the_replay_bound_refuses_new_proofs_rather_than_forget_live_ones() {
    let key = TestKey::es256();
    let clock = ManualClock::at(NOW);
    let t = token(Some(&key));
    let app = app(config(
        &clock,
        Dpop::allowed()
            .base_url("https://api.example.com")
            .replay_capacity(2),
    ));
    let url = "https://api.example.com/me";
    let first = proof(&key, &t, url, NOW, None);
    for p in [&first, &proof(&key, &t, url, NOW, None)] {
        assert_eq!(
            send(&app, request("/me"), &t, Some(p)).await.status,
            StatusCode::OK
        );
    }
    let r = send(
        &app,
        request("/me"),
        &t,
        Some(&proof(&key, &t, url, NOW, None)),
    )
    .await;
    assert_eq!(refused(&r), (Reason::InvalidDpopProof, "jti".into()));
    // Once the remembered proofs are past their age, there is room again, and the first
    // proof is too old to be replayed anyway.
    clock.advance(Duration::from_secs(200));
    let r = send(&app, request("/me"), &t, Some(&first)).await;
    assert_eq!(refused(&r), (Reason::InvalidDpopProof, "iat".into()));
    let r = send(
        &app,
        request("/me"),
        &t,
        Some(&proof(&key, &t, url, NOW + 200, None)),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.err);
}

#[tokio::test]
async fn the_request_url_comes_from_the_base_url_the_host_or_trusted_forwarded_headers() {
    let key = TestKey::es256();
    let clock = ManualClock::at(NOW);
    let t = token(Some(&key));
    let ok = |r: &Reply| r.status == StatusCode::OK;

    // A base URL with a path prefix (a proxy that serves this app under `/api`), written in
    // another case and with the default port: compared after normalization.
    let with_prefix = app(config(
        &clock,
        Dpop::allowed().base_url("https://API.example.com:443/api"),
    ));
    let r = send(
        &with_prefix,
        request("/me"),
        &t,
        Some(&proof(
            &key,
            &t,
            "https://api.example.com/api/me",
            NOW,
            None,
        )),
    )
    .await;
    assert!(ok(&r), "{:?}", r.err);

    // No base URL: https and the Host header.
    let by_host = app(config(&clock, Dpop::allowed()));
    let r = send(
        &by_host,
        request("/me"),
        &t,
        Some(&proof(&key, &t, "https://api.example.com/me", NOW, None)),
    )
    .await;
    assert!(ok(&r), "{:?}", r.err);
    // Forwarded headers are not trusted unless asked for.
    let forwarded = || {
        request("/me")
            .header("x-forwarded-proto", "http")
            .header("x-forwarded-host", "edge.example.net")
    };
    let edge = "http://edge.example.net/me";
    let r = send(
        &by_host,
        forwarded(),
        &t,
        Some(&proof(&key, &t, edge, NOW, None)),
    )
    .await;
    assert_eq!(refused(&r), (Reason::InvalidDpopProof, "htu".into()));
    let trusting = app(config(&clock, Dpop::allowed().trust_forwarded_headers()));
    let r = send(
        &trusting,
        forwarded(),
        &t,
        Some(&proof(&key, &t, edge, NOW, None)),
    )
    .await;
    assert!(ok(&r), "{:?}", r.err);
    let rfc7239 = request("/me").header(
        "forwarded",
        r#"for=1.2.3.4;proto=https;host="edge.example.net:8443""#,
    );
    let r = send(
        &trusting,
        rfc7239,
        &t,
        Some(&proof(
            &key,
            &t,
            "https://edge.example.net:8443/me",
            NOW,
            None,
        )),
    )
    .await;
    assert!(ok(&r), "{:?}", r.err);
}

#[tokio::test]
async fn unbound_tokens_with_the_dpop_scheme_only_when_accepted() {
    let key = TestKey::es256();
    let clock = ManualClock::at(NOW);
    let t = token(None);
    let url = "https://api.example.com/me";
    let strict = app(config(
        &clock,
        Dpop::allowed().base_url("https://api.example.com"),
    ));
    let r = send(
        &strict,
        request("/me"),
        &t,
        Some(&proof(&key, &t, url, NOW, None)),
    )
    .await;
    assert_eq!(refused(&r), (Reason::InvalidDpopProof, "cnf".into()));
    let lenient = app(config(
        &clock,
        Dpop::allowed()
            .base_url("https://api.example.com")
            .accept_unbound_tokens(),
    ));
    let r = send(
        &lenient,
        request("/me"),
        &t,
        Some(&proof(&key, &t, url, NOW, None)),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.err);
    // The proof is still checked in full.
    let r = send(
        &lenient,
        request("/me"),
        &t,
        Some(&proof(&key, &t, "https://else.example/me", NOW, None)),
    )
    .await;
    assert_eq!(refused(&r), (Reason::InvalidDpopProof, "htu".into()));
}

#[tokio::test]
async fn validate_refuses_a_bound_token_and_metadata_says_dpop() {
    let key = TestKey::es256();
    let clock = ManualClock::at(NOW);
    let cfg = hs::base()
        .clock(clock.clone())
        .dpop(Dpop::required().algorithms([
            tower_token_auth::Algorithm::ES256,
            tower_token_auth::Algorithm::EdDSA,
        ]))
        .resource_metadata(ResourceMetadata::new("https://api.example.com"))
        .build()
        .unwrap();
    // Outside a request there is no proof: a bound token cannot be used.
    let err = cfg
        .validate::<StandardClaims>(&token(Some(&key)))
        .await
        .unwrap_err();
    assert_eq!(err.reason(), Reason::BoundToken);
    assert!(cfg.validate::<StandardClaims>(&token(None)).await.is_ok());

    let svc = cfg.resource_metadata_service().unwrap();
    let res = svc
        .oneshot(
            Request::get("/.well-known/oauth-protected-resource")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let body = http_body_util::BodyExt::collect(res.into_body())
        .await
        .unwrap()
        .to_bytes();
    let doc: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(doc["dpop_bound_access_tokens_required"], true);
    assert_eq!(
        doc["dpop_signing_alg_values_supported"],
        serde_json::json!(["ES256", "EdDSA"])
    );
}

#[test]
fn misconfigured_dpop_fails_at_build() {
    let e = hs::base()
        .dpop(Dpop::allowed().algorithms([tower_token_auth::Algorithm::HS256]))
        .build()
        .unwrap_err();
    assert!(matches!(e, ConfigError::InvalidDpop(_)));
    assert!(e.to_string().contains("asymmetric"), "{e}");
    let e = hs::base()
        .dpop(Dpop::allowed().base_url("api.example.com"))
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("base_url"), "{e}");
}

#[cfg(feature = "diagnose")]
#[tokio::test]
async fn diagnose_and_the_doctor_name_the_failed_check_with_both_values() {
    use tower_token_auth::diagnose::{diagnose_with, DiagnoseOptions};

    let key = TestKey::es256();
    let t = token(Some(&key));
    // The doctor's clock is the system's: proofs and token made now.
    let now = tower_token_auth::clock::Clock::now(&tower_token_auth::clock::SystemClock);
    let signer = hs::key();
    let t_now = signer
        .token_at(now)
        .issuer(hs::ISS)
        .audience(hs::AUD)
        .claim("cnf", serde_json::json!({ "jkt": thumbprint(&key.jwk()) }))
        .sign();
    let cfg = hs::base()
        .clock(ManualClock::at(NOW))
        .dpop(Dpop::allowed())
        .build()
        .unwrap();
    let wrong_url = proof(&key, &t, "https://api.example.com/other", NOW, None);
    let options =
        DiagnoseOptions::new().dpop(wrong_url, http::Method::GET, "https://api.example.com/me");
    let d = diagnose_with(&t, &cfg, &options).await;
    assert_eq!(d.reason(), Some(Reason::InvalidDpopProof));
    let text = d.to_string();
    assert!(text.contains("https://api.example.com/other"), "{text}");
    assert!(text.contains("https://api.example.com/me"), "{text}");
    // The same token without the proof: sent as a bearer token.
    let d = tower_token_auth::diagnose(&t, &cfg).await;
    assert_eq!(d.reason(), Some(Reason::BoundToken));
    let other = TestKey::ed25519();
    let options = DiagnoseOptions::new().dpop(
        proof(&other, &t, "https://api.example.com/me", NOW, None),
        http::Method::GET,
        "https://api.example.com/me",
    );
    let text = diagnose_with(&t, &cfg, &options).await.to_string();
    assert!(
        text.contains(&thumbprint(&key.jwk())),
        "the bound thumbprint: {text}"
    );

    // The doctor, with the proof given on the command line.
    let secret = std::env::temp_dir().join(format!("dpop-doctor-{}", std::process::id()));
    std::fs::write(&secret, hs::SECRET).unwrap();
    let run = |proof: String, method: &'static str| {
        let exe = crate::common::example_exe("doctor");
        let secret = secret.clone();
        let t_now = t_now.clone();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(exe)
                .arg(&t_now)
                .arg("--secret-file")
                .arg(&secret)
                .args(["--iss", hs::ISS, "--aud", hs::AUD, "--dpop-proof", &proof])
                .args(["--method", method, "--url", "https://api.example.com/me"])
                .env("NO_COLOR", "1")
                .output()
                .unwrap()
        })
    };
    let good = proof(&key, &t_now, "https://api.example.com/me", now, None);
    let out = run(good.clone(), "GET").await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    let out = run(
        proof(&key, &t_now, "https://api.example.com/me", now, None),
        "POST",
    )
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("invalid_dpop_proof"), "{stdout}");
    assert!(
        stdout.contains("`htm` is `GET`") && stdout.contains("`POST`"),
        "{stdout}"
    );
    let _ = std::fs::remove_file(&secret);
}

#[tokio::test]
async fn replicas_with_one_nonce_secret_accept_each_others_nonces() {
    let key = TestKey::es256();
    let clock = ManualClock::at(NOW);
    let t = token(Some(&key));
    let url = "https://api.example.com/me";
    let dpop = |secret: Option<[u8; 32]>| {
        let d = Dpop::allowed()
            .base_url("https://api.example.com")
            .use_nonce(Duration::from_secs(60));
        match secret {
            Some(s) => d.nonce_secret(s),
            None => d,
        }
    };
    let (a, b) = (
        app(config(&clock, dpop(Some([9; 32])))),
        app(config(&clock, dpop(Some([9; 32])))),
    );
    let nonce = send(
        &a,
        request("/me"),
        &t,
        Some(&proof(&key, &t, url, NOW, None)),
    )
    .await
    .nonce
    .unwrap();
    let r = send(
        &b,
        request("/me"),
        &t,
        Some(&proof(&key, &t, url, NOW, Some(&nonce))),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.err);
    // With a secret each (the default), another instance's nonce is refused.
    let c = app(config(&clock, dpop(None)));
    let r = send(
        &c,
        request("/me"),
        &t,
        Some(&proof(&key, &t, url, NOW, Some(&nonce))),
    )
    .await;
    assert_eq!(refused(&r).0, Reason::UseDpopNonce);
}
