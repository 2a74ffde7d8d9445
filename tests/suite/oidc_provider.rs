//! Against a real OpenID provider: `oidc-provider` 9 (node, `tests/oidc/provider.mjs`) issues
//! RFC 9068 JWT access tokens (`typ: at+jwt`) with the client credentials grant, signed with
//! RS256, ES256 or EdDSA depending on the requested resource; the layer finds its keys by
//! OpenID Connect discovery (`Keys::remote(Remote::oidc(issuer).allow_http())`) and checks
//! them with `.access_token_profile()`.
//!
//! Needs node and the fixture's packages: `npm ci --prefix tests/oidc` (scripts/test.sh runs
//! it). Without them every test here fails and says so; none passes silently.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use axum::{body::Body, routing::get, Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;
use tower_token_auth::keys::remote::Remote;
use tower_token_auth::{
    AuthConfig, AuthError, Claims, Keys, Reason, StandardClaims, TokenAuthLayer,
};

const CLIENT_ID: &str = "test-client";
const CLIENT_SECRET: &str = "test-secret";
const INSTALL_HINT: &str = "run `npm ci --prefix tests/oidc` (node 20 or later is needed)";

/// The node provider, killed when dropped.
struct Provider {
    child: Child,
    issuer: String,
}

impl Provider {
    /// Starts `node tests/oidc/provider.mjs` on a free port and waits for its
    /// `LISTENING <issuer>` line.
    fn start() -> Provider {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oidc");
        let script = dir.join("provider.mjs");
        assert!(
            dir.join("node_modules/oidc-provider/package.json")
                .is_file(),
            "the OpenID provider fixture is not installed ({} is missing): {INSTALL_HINT}",
            dir.join("node_modules/oidc-provider").display()
        );
        let node = std::env::var_os("NODE").map_or_else(|| PathBuf::from("node"), PathBuf::from);
        let mut child = match Command::new(&node)
            .arg(&script)
            .env("PORT", "0")
            // The provider exits when our end of its stdin closes: no orphan if this test
            // process dies without running destructors.
            .env("EXIT_ON_STDIN_CLOSE", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
        {
            Ok(c) => c,
            Err(e) => panic!("cannot start `{}`: {e}; {INSTALL_HINT}", node.display()),
        };

        // stderr: kept for the failure message (the provider warns about its node version).
        let log = Arc::new(Mutex::new(String::new()));
        let mut stderr = child.stderr.take().unwrap();
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });

        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let first = lines.next().and_then(Result::ok);
            let _ = tx.send(first);
            for _ in lines {}
        });
        let mut provider = Provider {
            child,
            issuer: String::new(),
        };
        let line = rx.recv_timeout(Duration::from_secs(30)).ok().flatten();
        match line.as_deref().and_then(|l| l.strip_prefix("LISTENING ")) {
            Some(issuer) => provider.issuer = issuer.trim().to_owned(),
            None => {
                let status = provider.child.try_wait().ok().flatten();
                std::thread::sleep(Duration::from_millis(200));
                panic!(
                    "the OpenID provider did not start (first stdout line {line:?}, exit {status:?}); \
                     if its packages are missing: {INSTALL_HINT}\nstderr:\n{}",
                    log.lock().unwrap()
                );
            }
        }
        provider
    }

    /// An access token from the client credentials grant for `resource` (its audience).
    async fn token(&self, resource: &str) -> String {
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("resource", resource)
            .append_pair("scope", "read")
            .finish();
        let res = reqwest::Client::new()
            .post(format!("{}/token", self.issuer))
            .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("token request");
        let status = res.status();
        let bytes = res.bytes().await.expect("token response body");
        assert_eq!(
            status,
            StatusCode::OK,
            "token endpoint: {}",
            String::from_utf8_lossy(&bytes)
        );
        let json: Value = serde_json::from_slice(&bytes).expect("token response is JSON");
        assert_eq!(json["token_type"], "Bearer");
        json["access_token"]
            .as_str()
            .expect("access_token in the token response")
            .to_owned()
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The configuration under test: keys by discovery, RFC 9068 profile.
fn config(issuer: &str, audience: &str) -> AuthConfig {
    AuthConfig::builder()
        .keys(Keys::remote(Remote::oidc(issuer).allow_http()))
        .audience(audience)
        .access_token_profile()
        .realm("oidc")
        .build()
        .expect("configuration")
}

/// `/me` behind the layer, echoing the verified claims.
fn app(cfg: AuthConfig) -> Router {
    Router::new()
        .route(
            "/me",
            get(|c: Claims<StandardClaims>| async move { Json(c) }),
        )
        .layer(TokenAuthLayer::new(cfg))
}

async fn call(app: &Router, token: &str) -> http::Response<Body> {
    app.clone()
        .oneshot(
            Request::get("/me")
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap()
}

async fn json_body(res: http::Response<Body>) -> Value {
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)))
}

fn segment(token: &str, i: usize) -> Value {
    let seg = token.split('.').nth(i).expect("three segments");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(seg).expect("base64url")).expect("JSON")
}

/// A token of the provider for `resource` goes through the router; the handler sees its claims.
async fn accepted(resource: &str, alg: &str, kid: &str) {
    let provider = Provider::start();
    let token = provider.token(resource).await;
    let header = segment(&token, 0);
    assert_eq!(header["alg"], alg, "the provider signed with another alg");
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["kid"], kid);

    let cfg = config(&provider.issuer, resource);
    let app = app(cfg.clone());
    // No warm-up: the first request fetches the keys by discovery.
    let res = call(&app, &token).await;
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "{:?}",
        res.extensions().get::<AuthError>()
    );
    assert_eq!(cfg.key_status()[0].fetch_ok, 1);
    let claims = json_body(res).await;
    assert_eq!(claims["iss"], provider.issuer.as_str());
    assert_eq!(claims["aud"], serde_json::json!([resource]));
    assert_eq!(claims["sub"], CLIENT_ID);
    assert_eq!(claims["client_id"], CLIENT_ID);
    assert_eq!(claims["scope"], "read");
    assert!(claims["jti"].is_string(), "{claims}");
    let (iat, exp) = (
        claims["iat"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
    );
    assert_eq!(exp - iat, 600, "{claims}");
}

#[tokio::test]
async fn rs256_token_from_provider_is_accepted() {
    accepted("api://rs256", "RS256", "rsa-1").await;
}

#[tokio::test]
async fn es256_token_from_provider_is_accepted() {
    accepted("api://es256", "ES256", "ec-1").await;
}

#[tokio::test]
async fn eddsa_token_from_provider_is_accepted() {
    accepted("api://eddsa", "EdDSA", "ed-1").await;
}

#[tokio::test]
async fn token_for_another_resource_is_wrong_audience() {
    let provider = Provider::start();
    let token = provider.token("api://rs256").await;
    assert_eq!(segment(&token, 1)["aud"], "api://rs256");

    let app = app(config(&provider.issuer, "api://orders"));
    let res = call(&app, &token).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        res.extensions().get::<AuthError>().unwrap().reason(),
        Reason::WrongAudience
    );
    assert_eq!(
        res.headers()[header::WWW_AUTHENTICATE],
        r#"Bearer realm="oidc", error="invalid_token", error_description="The token was not issued for this audience.""#
    );
    let body = json_body(res).await;
    assert_eq!(body["reason"], "wrong_audience");
    assert_eq!(body["error"], "invalid_token");
    assert_eq!(body["status"], 401);
}

#[tokio::test]
async fn tampered_token_from_provider_is_bad_signature() {
    let provider = Provider::start();
    let token = provider.token("api://es256").await;
    // Same header and signature, payload granting more than was issued.
    let mut claims = segment(&token, 1);
    claims["scope"] = "read write admin".into();
    let parts: Vec<&str> = token.split('.').collect();
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap()),
        parts[2]
    );

    let app = app(config(&provider.issuer, "api://es256"));
    // The untouched token is accepted: only the tampering makes the difference.
    assert_eq!(call(&app, &token).await.status(), StatusCode::OK);
    let res = call(&app, &forged).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let err = res.extensions().get::<AuthError>().unwrap();
    assert_eq!(err.reason(), Reason::BadSignature);
    assert_eq!(
        res.headers()[header::WWW_AUTHENTICATE],
        r#"Bearer realm="oidc", error="invalid_token", error_description="The token signature is invalid.""#
    );
    assert_eq!(json_body(res).await["reason"], "bad_signature");
}

#[tokio::test]
async fn key_status_shows_one_discovery_fetch_for_all_algorithms() {
    let provider = Provider::start();
    let cfg = AuthConfig::builder()
        .keys(Keys::remote(Remote::oidc(&provider.issuer).allow_http()))
        .audience("api://rs256")
        .audience("api://es256")
        .audience("api://eddsa")
        .access_token_profile()
        .build()
        .unwrap();
    assert!(!cfg.is_ready(), "no keys before the first fetch");
    cfg.warm_up().await.expect("keys load from the provider");
    assert!(cfg.is_ready());

    let app = app(cfg.clone());
    for resource in ["api://rs256", "api://es256", "api://eddsa"] {
        let token = provider.token(resource).await;
        let res = call(&app, &token).await;
        assert_eq!(res.status(), StatusCode::OK, "{resource}");
        // Outside HTTP too, with the same keys.
        let claims: StandardClaims = cfg.validate(&token).await.expect(resource);
        assert_eq!(claims.aud, vec![resource.to_owned()]);
    }

    let status = cfg.key_status();
    assert_eq!(status.len(), 1, "{status:?}");
    let s = &status[0];
    assert_eq!(s.source, provider.issuer);
    assert!(s.ready, "{s:?}");
    assert_eq!(s.keys, 3, "RSA, EC P-256 and Ed25519 keys: {s:?}");
    assert_eq!(
        s.fetch_ok, 1,
        "one fetch for warm-up, none per request: {s:?}"
    );
    assert_eq!(s.fetch_error, 0, "{s:?}");
    assert_eq!(s.unknown_kid_refetch, 0, "{s:?}");
    assert!(!s.stale, "{s:?}");
    assert_eq!(s.stale_served, 0, "{s:?}");
}
