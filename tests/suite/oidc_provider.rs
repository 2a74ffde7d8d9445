//! Against a real OpenID provider: `oidc-provider` 9 (node, `tests/oidc/provider.mjs`) issues
//! RFC 9068 JWT access tokens (`typ: at+jwt`) with the client credentials grant, signed with
//! RS256, ES256 or EdDSA depending on the requested resource; the layer finds its keys by
//! OpenID Connect discovery (`Keys::remote(Remote::oidc(issuer).allow_http())`) and checks
//! them with `.access_token_profile()`.
//!
//! The same provider issues opaque access tokens (resources `api://opaque`, 600 s, and
//! `api://opaque-short`, 2 s) that only it can read: the layer asks its RFC 7662 introspection
//! endpoint (found by discovery) about them as the resource-server client `api-client`, checks
//! the answer's claims like a JWT's, and is told `active: false` once a token is revoked
//! (RFC 7009) or expired. `examples/oidc.rs` is run against it too, with its introspection
//! flags.
//!
//! Needs node and the fixture's packages: `npm ci --prefix tests/oidc` (scripts/test.sh runs
//! it). Without them every test here fails and says so; none passes silently.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::{body::Body, routing::get, Json, Router};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::{header, Request, StatusCode};
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tower::ServiceExt;
use tower_token_auth::clock::{Clock, ManualClock, SystemClock};
use tower_token_auth::introspection::Introspection;
use tower_token_auth::keys::remote::Remote;
use tower_token_auth::{
    AuthConfig, AuthError, Claims, Keys, Reason, RequireScope, StandardClaims, TokenAuthLayer,
};

const CLIENT_ID: &str = "test-client";
const CLIENT_SECRET: &str = "test-secret";
/// The provider's resource-server client: may introspect every access token.
const RS_CLIENT_ID: &str = "api-client";
const RS_CLIENT_SECRET: &str = "api-secret";
const INSTALL_HINT: &str = "run `npm ci --prefix tests/oidc` (node 20 or later is needed)";

/// The node provider, killed when dropped (also used by `dpop.rs`).
pub(crate) struct Provider {
    child: Child,
    pub(crate) issuer: String,
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

    /// One provider for the whole test run, started by the first test that asks. The tests
    /// that share it change nothing another test relies on (each revokes or lets expire only
    /// tokens it got itself), and a node start costs ~0.6 s of CPU. Never dropped: it exits
    /// with this process, when its stdin closes.
    pub(crate) fn shared() -> &'static Provider {
        static SHARED: OnceLock<Provider> = OnceLock::new();
        SHARED.get_or_init(Provider::start)
    }

    /// An access token from the client credentials grant for `resource` (its audience), with
    /// the scope `read`.
    async fn token(&self, resource: &str) -> String {
        self.token_with_scope(resource, "read").await
    }

    /// An access token from the client credentials grant for `resource` with `scope`.
    async fn token_with_scope(&self, resource: &str, scope: &str) -> String {
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("grant_type", "client_credentials")
            .append_pair("resource", resource)
            .append_pair("scope", scope)
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

    /// Revokes `token` at the RFC 7009 endpoint, as the client it was issued to.
    async fn revoke(&self, token: &str) {
        let body = form_urlencoded::Serializer::new(String::new())
            .append_pair("token", token)
            .append_pair("token_type_hint", "access_token")
            .finish();
        let res = reqwest::Client::new()
            .post(format!("{}/token/revocation", self.issuer))
            .basic_auth(CLIENT_ID, Some(CLIENT_SECRET))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .expect("revocation request");
        let status = res.status();
        let text = res.text().await.unwrap_or_default();
        assert_eq!(status, StatusCode::OK, "revocation endpoint: {text}");
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

// ----- opaque tokens: RFC 7662 introspection at the provider -----

/// Introspection at the `introspection_endpoint` named by the provider's discovery, as its
/// resource-server client.
fn introspection() -> Introspection {
    Introspection::discover()
        .client_secret_basic(RS_CLIENT_ID, RS_CLIENT_SECRET)
        .allow_http()
}

/// A configuration that knows the provider through introspection only (no keys).
fn opaque_builder(
    issuer: &str,
    audience: &str,
    introspection: Introspection,
) -> tower_token_auth::AuthConfigBuilder {
    AuthConfig::builder()
        .issuer(issuer)
        .introspection(introspection)
        .audience(audience)
        .realm("oidc")
}

/// `res` is a rejection with `status` and `reason`, in the extensions and in the JSON body;
/// the body, for more checks.
async fn assert_rejected(res: http::Response<Body>, status: StatusCode, reason: Reason) -> Value {
    assert_eq!(
        res.status(),
        status,
        "{:?}",
        res.extensions().get::<AuthError>()
    );
    assert_eq!(
        res.extensions().get::<AuthError>().map(AuthError::reason),
        Some(reason)
    );
    let body = json_body(res).await;
    assert_eq!(body["reason"], reason.code(), "{body}");
    assert_eq!(body["status"], status.as_u16(), "{body}");
    body
}

/// Waits until the system clock (whole seconds, as the layer reads it) shows `unix_seconds`.
async fn wait_until(unix_seconds: i64) {
    let target = UNIX_EPOCH + Duration::from_secs(u64::try_from(unix_seconds).unwrap());
    if let Ok(left) = target.duration_since(SystemTime::now()) {
        tokio::time::sleep(left + Duration::from_millis(20)).await;
    }
    while SystemClock.now() < unix_seconds {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// What a handler reads of an introspected opaque token: the provider's answer, typed.
#[derive(Debug, Serialize, Deserialize)]
struct OpaqueClaims {
    iss: String,
    /// This provider answers a single audience as a string.
    aud: String,
    client_id: String,
    scope: String,
    token_type: String,
    iat: i64,
    exp: i64,
    sub: Option<String>,
    jti: Option<String>,
}

#[tokio::test]
async fn opaque_token_from_provider_is_introspected_and_accepted() {
    let provider = Provider::shared();
    let token = provider.token("api://opaque").await;
    assert_ne!(
        token.matches('.').count(),
        2,
        "the provider issued a JWS, not an opaque token"
    );

    let cfg = opaque_builder(&provider.issuer, "api://opaque", introspection())
        .build()
        .expect("configuration");
    let app = Router::new()
        .route(
            "/me",
            get(|c: Claims<OpaqueClaims>| async move {
                format!("{} {} {}", c.client_id, c.scope, c.token_type)
            }),
        )
        .layer(TokenAuthLayer::new(cfg.clone()).with_claims::<OpaqueClaims>());
    // No warm-up: the first request reads discovery, then asks the introspection endpoint.
    let res = call(&app, &token).await;
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "{:?}",
        res.extensions().get::<AuthError>()
    );
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&bytes[..], b"test-client read Bearer");

    // The same answer outside HTTP (from the introspection cache): the provider's claims,
    // without `active`.
    let claims: OpaqueClaims = cfg.validate(&token).await.expect("valid");
    assert_eq!(claims.iss, provider.issuer);
    assert_eq!(claims.aud, "api://opaque");
    assert_eq!(claims.client_id, CLIENT_ID);
    assert_eq!(claims.scope, "read");
    assert_eq!(claims.exp - claims.iat, 600, "{claims:?}");
    assert_eq!((claims.sub, claims.jti), (None, None), "no sub or jti here");
    let raw: Value = cfg.validate(&token).await.expect("valid");
    assert!(raw.get("active").is_none(), "{raw}");
}

/// The layer's clock stands still: the cached active answer is deterministic, however slow
/// the machine.
#[tokio::test]
async fn revoked_opaque_token_is_accepted_from_the_cache_until_active_ttl_then_inactive() {
    let provider = Provider::shared();
    let token = provider.token("api://opaque").await;
    let clock = ManualClock::at(SystemClock.now());
    let cfg = opaque_builder(
        &provider.issuer,
        "api://opaque",
        introspection().active_ttl(Duration::from_secs(1)),
    )
    .clock(clock.clone())
    .build()
    .unwrap();
    let app = app(cfg);

    // At t the provider answers active; the answer is cached until min(exp, t + active_ttl)
    // = t + 1 (exp is t + 600).
    let res = call(&app, &token).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(json_body(res).await["client_id"], CLIENT_ID);

    provider.revoke(&token).await;
    // Still t: the cached answer decides, the provider is not asked (it would say inactive).
    assert_eq!(call(&app, &token).await.status(), StatusCode::OK);

    // t + 1, the bound: the cache no longer answers (an entry serves while now < t + 1), the
    // provider is asked again and says active: false.
    clock.advance(Duration::from_secs(1));
    let body = assert_rejected(
        call(&app, &token).await,
        StatusCode::UNAUTHORIZED,
        Reason::Inactive,
    )
    .await;
    assert_eq!(body["error"], "invalid_token");
    // The inactive answer is cached in turn (inactive_ttl, 10 s).
    assert_rejected(
        call(&app, &token).await,
        StatusCode::UNAUTHORIZED,
        Reason::Inactive,
    )
    .await;
}

/// The same on the system clock: refused as inactive once the bound has passed.
#[tokio::test]
async fn revoked_opaque_token_is_inactive_once_active_ttl_has_passed() {
    let provider = Provider::shared();
    let token = provider.token("api://opaque").await;
    let cfg = opaque_builder(
        &provider.issuer,
        "api://opaque",
        introspection().active_ttl(Duration::from_secs(1)),
    )
    .build()
    .unwrap();
    let app = app(cfg);

    let res = call(&app, &token).await;
    assert_eq!(res.status(), StatusCode::OK);
    // The clock has whole seconds: the answer was cached during second s (s <= now) until
    // s + 1, so it no longer serves from the next whole second on (at most 1 s from now).
    // Whether a request right after the revocation still meets it depends on where in the
    // second we are: not asserted here (the ManualClock test above shows it).
    let bound = SystemClock.now() + 1;
    provider.revoke(&token).await;
    wait_until(bound).await;
    assert_rejected(
        call(&app, &token).await,
        StatusCode::UNAUTHORIZED,
        Reason::Inactive,
    )
    .await;
}

#[tokio::test]
async fn expired_opaque_token_is_inactive() {
    let provider = Provider::shared();
    let token = provider.token("api://opaque-short").await;
    // Default active_ttl (60 s): the active answer is cached until min(exp, now + 60 s) = exp.
    let cfg = opaque_builder(&provider.issuer, "api://opaque-short", introspection())
        .build()
        .unwrap();
    let app = app(cfg);
    let res = call(&app, &token).await;
    assert_eq!(res.status(), StatusCode::OK);
    let claims = json_body(res).await;
    let exp = claims["exp"].as_i64().unwrap();
    assert_eq!(exp - claims["iat"].as_i64().unwrap(), 2, "{claims}");

    // At exp the cache no longer answers (an entry serves while now < exp), so the provider is
    // asked again; it says active: false for a token whose exp <= now: the reason is
    // `inactive`, not `expired`. (Our own exp check would not say `expired` yet: with the
    // default 30 s leeway an answer with this exp passes it for another 30 s. Bounding the
    // cache by exp is what hands the decision back to the provider.)
    wait_until(exp).await;
    assert_rejected(
        call(&app, &token).await,
        StatusCode::UNAUTHORIZED,
        Reason::Inactive,
    )
    .await;
}

#[tokio::test]
async fn opaque_token_for_another_resource_is_wrong_audience() {
    let provider = Provider::shared();
    let token = provider.token("api://opaque").await;
    let cfg = opaque_builder(&provider.issuer, "api://other", introspection())
        .build()
        .unwrap();
    let res = call(&app(cfg), &token).await;
    assert_eq!(
        res.headers()[header::WWW_AUTHENTICATE],
        r#"Bearer realm="oidc", error="invalid_token", error_description="The token was not issued for this audience.""#
    );
    let body = assert_rejected(res, StatusCode::UNAUTHORIZED, Reason::WrongAudience).await;
    assert_eq!(body["error"], "invalid_token");
}

#[tokio::test]
async fn opaque_token_without_the_required_scope_is_insufficient_scope() {
    let provider = Provider::shared();
    let read_only = provider.token("api://opaque").await;
    let read_write = provider
        .token_with_scope("api://opaque", "read write")
        .await;
    let cfg = opaque_builder(&provider.issuer, "api://opaque", introspection())
        .build()
        .unwrap();
    let app = Router::new()
        .route(
            "/orders",
            get(|| async { "list" }).layer(RequireScope::all(["read"])),
        )
        .route(
            "/orders/new",
            get(|| async { "created" }).layer(RequireScope::all(["write"])),
        )
        .layer(TokenAuthLayer::new(cfg));
    let request = |path: &'static str, token: String| {
        let app = app.clone();
        async move {
            app.oneshot(
                Request::get(path)
                    .header(header::AUTHORIZATION, format!("Bearer {token}"))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap()
        }
    };

    assert_eq!(
        request("/orders", read_only.clone()).await.status(),
        StatusCode::OK
    );
    let res = request("/orders/new", read_only).await;
    assert_eq!(
        res.headers()[header::WWW_AUTHENTICATE],
        r#"Bearer realm="oidc", error="insufficient_scope", error_description="The token lacks the scope this resource requires.", scope="write""#
    );
    assert_eq!(
        res.extensions()
            .get::<AuthError>()
            .and_then(AuthError::required_scopes),
        Some("write")
    );
    assert_rejected(res, StatusCode::FORBIDDEN, Reason::InsufficientScope).await;
    // The provider's scope decides: a token granted `read write` passes.
    assert_eq!(
        request("/orders/new", read_write).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn jwt_and_opaque_tokens_side_by_side() {
    let provider = Provider::shared();
    // JWTs verified here with the keys found by discovery; anything else introspected.
    let cfg = AuthConfig::builder()
        .keys(Keys::remote(Remote::oidc(&provider.issuer).allow_http()))
        .issuer(&provider.issuer)
        .introspection(introspection())
        .audience("api://rs256")
        .audience("api://opaque")
        .realm("oidc")
        .build()
        .unwrap();
    let app = app(cfg.clone());
    let jwt = provider.token("api://rs256").await;
    let opaque = provider.token("api://opaque").await;

    let res = call(&app, &jwt).await;
    assert_eq!(res.status(), StatusCode::OK);
    let claims = json_body(res).await;
    assert_eq!(claims["aud"], serde_json::json!(["api://rs256"]));
    assert_eq!(claims["sub"], CLIENT_ID);
    assert!(claims["jti"].is_string(), "{claims}");

    let res = call(&app, &opaque).await;
    assert_eq!(res.status(), StatusCode::OK);
    let claims = json_body(res).await;
    assert_eq!(claims["aud"], serde_json::json!(["api://opaque"]));
    assert_eq!(claims["iss"], provider.issuer.as_str());
    assert_eq!(claims["client_id"], CLIENT_ID);
    assert_eq!(claims["scope"], "read");
    assert!(claims.get("sub").is_none(), "{claims}");
    assert!(claims.get("active").is_none(), "{claims}");

    // The JWT went to the keys (one discovery + JWKS fetch), not to introspection: a forged
    // one fails its signature here (the provider would have said `inactive`).
    assert_eq!(cfg.key_status()[0].fetch_ok, 1);
    let forged = forge_scope(&jwt);
    assert_rejected(
        call(&app, &forged).await,
        StatusCode::UNAUTHORIZED,
        Reason::BadSignature,
    )
    .await;
}

/// `token` with its payload's scope widened, header and signature kept.
fn forge_scope(token: &str) -> String {
    let mut claims = segment(token, 1);
    claims["scope"] = "read write admin".into();
    let parts: Vec<&str> = token.split('.').collect();
    format!(
        "{}.{}.{}",
        parts[0],
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap()),
        parts[2]
    )
}

#[tokio::test]
async fn all_tokens_sends_jwts_to_introspection() {
    let provider = Provider::shared();
    let jwt = provider.token("api://rs256").await;
    // No keys at all: a JWT can only be accepted by the provider's answer.
    let cfg = opaque_builder(
        &provider.issuer,
        "api://rs256",
        introspection().all_tokens(),
    )
    .build()
    .unwrap();
    let everything = app(cfg);
    let res = call(&everything, &jwt).await;
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "{:?}",
        res.extensions().get::<AuthError>()
    );
    let claims = json_body(res).await;
    assert_eq!(claims["sub"], CLIENT_ID);
    assert_eq!(claims["client_id"], CLIENT_ID);
    assert_eq!(
        claims["token_type"], "Bearer",
        "the answer's, not the JWT's"
    );
    assert_eq!(claims["jti"], segment(&jwt, 1)["jti"]);

    // The provider decides alone: a forged JWT is inactive there.
    assert_rejected(
        call(&everything, &forge_scope(&jwt)).await,
        StatusCode::UNAUTHORIZED,
        Reason::Inactive,
    )
    .await;

    // Without all_tokens, the same configuration verifies JWTs itself, and has no key: the
    // JWT's key is unknown (and it is never sent to the provider).
    let cfg = opaque_builder(&provider.issuer, "api://rs256", introspection())
        .build()
        .unwrap();
    assert_rejected(
        call(&app(cfg), &jwt).await,
        StatusCode::UNAUTHORIZED,
        Reason::UnknownKey,
    )
    .await;
}

#[tokio::test]
async fn client_secret_post_introspects_too() {
    let provider = Provider::shared();
    let token = provider.token("api://opaque").await;
    let cfg = opaque_builder(
        &provider.issuer,
        "api://opaque",
        Introspection::discover()
            .client_secret_post(RS_CLIENT_ID, RS_CLIENT_SECRET)
            .allow_http(),
    )
    .build()
    .unwrap();
    let res = call(&app(cfg), &token).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(json_body(res).await["client_id"], CLIENT_ID);
}

#[tokio::test]
async fn wrong_introspection_secret_is_unavailable_never_401() {
    const WRONG: &str = "not-the-api-secret";
    let provider = Provider::shared();
    let token = provider.token("api://opaque").await;
    let cfg = opaque_builder(
        &provider.issuer,
        "api://opaque",
        Introspection::discover()
            .client_secret_basic(RS_CLIENT_ID, WRONG)
            .allow_http(),
    )
    .build()
    .unwrap();

    // The endpoint answers 401 invalid_client: our failure, not the token's.
    let res = call(&app(cfg.clone()), &token).await;
    assert_eq!(res.headers()[header::RETRY_AFTER], "2");
    let body = assert_rejected(
        res,
        StatusCode::SERVICE_UNAVAILABLE,
        Reason::IntrospectionUnavailable,
    )
    .await;
    let text = body.to_string();
    assert!(!text.contains(WRONG) && !text.contains(&token), "{text}");

    #[cfg(feature = "diagnose")]
    {
        let d = tower_token_auth::diagnose(&token, &cfg).await;
        assert_eq!(d.reason(), Some(Reason::IntrospectionUnavailable), "{d}");
        assert_eq!(d.status(), Some(StatusCode::SERVICE_UNAVAILABLE));
        let note = d
            .notes()
            .iter()
            .find(|n| n.contains("introspected at"))
            .unwrap_or_else(|| panic!("no introspection note: {:?}", d.notes()));
        assert!(note.contains("HTTP status 401"), "{note}");
        assert!(note.contains("client credentials"), "{note}");
        let shown = d.to_string();
        assert!(!shown.contains(WRONG), "{shown}");
    }
}

// ----- examples/oidc.rs with its introspection flags -----

/// `examples/oidc.rs` running, killed when dropped; its stdout and stderr are kept.
struct OidcExample {
    child: Child,
    base: String,
    output: Arc<Mutex<String>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl OidcExample {
    /// Starts the example with `args` and waits for the address it prints.
    fn start(args: &[&str]) -> OidcExample {
        let mut child = Command::new(crate::common::example_exe("oidc"))
            .args(args)
            .env("RUST_LOG", "tower_token_auth=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the oidc example starts");
        let output = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let sink = Arc::clone(&output);
        let out_reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("Listening on ") {
                    let _ = tx.send(url.trim().to_owned());
                }
                let mut out = sink.lock().unwrap();
                out.push_str(&line);
                out.push('\n');
            }
        });
        let stderr = child.stderr.take().unwrap();
        let sink = Arc::clone(&output);
        let err_reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut out = sink.lock().unwrap();
                out.push_str(&line);
                out.push('\n');
            }
        });
        let mut example = OidcExample {
            child,
            base: String::new(),
            output,
            readers: vec![out_reader, err_reader],
        };
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(base) => example.base = base,
            Err(_) => panic!(
                "the oidc example did not say where it listens:\n{}",
                example.output.lock().unwrap()
            ),
        }
        example
    }

    /// Stops it; everything it wrote.
    fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        self.output.lock().unwrap().clone()
    }
}

impl Drop for OidcExample {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn oidc_example_accepts_opaque_tokens_and_jwts() {
    let provider = Provider::shared();
    let example = OidcExample::start(&[
        &provider.issuer,
        "api://opaque",
        "api://rs256",
        "--allow-http",
        "--port",
        "0",
        "--introspection-client-id",
        RS_CLIENT_ID,
        "--introspection-client-secret",
        RS_CLIENT_SECRET,
    ]);
    let client = reqwest::Client::new();
    let me = |token: String| {
        let request = client
            .get(format!("{}/me", example.base))
            .bearer_auth(token)
            .send();
        async move {
            let res = request.await.expect("GET /me");
            let status = res.status();
            let bytes = res.bytes().await.expect("body");
            let body: Value = serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)));
            (status, body)
        }
    };

    let opaque = provider.token("api://opaque").await;
    let (status, claims) = me(opaque).await;
    assert_eq!(status, StatusCode::OK, "{claims}");
    assert_eq!(claims["aud"], serde_json::json!(["api://opaque"]));
    assert_eq!(claims["client_id"], CLIENT_ID);
    assert_eq!(claims["scope"], "read");
    assert!(
        claims.get("sub").is_none(),
        "an introspection answer: {claims}"
    );

    let jwt = provider.token("api://rs256").await;
    let (status, claims) = me(jwt).await;
    assert_eq!(status, StatusCode::OK, "{claims}");
    assert_eq!(claims["aud"], serde_json::json!(["api://rs256"]));
    assert_eq!(claims["sub"], CLIENT_ID);

    // A token the provider does not know: introspected, inactive.
    let (status, body) = me("no-such-token-at-the-provider".to_owned()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["reason"], "inactive");

    let output = example.stop();
    assert!(output.contains("introspection"), "{output}");
    assert!(
        output.contains(RS_CLIENT_ID),
        "the banner names the client: {output}"
    );
    assert!(
        !output.contains(RS_CLIENT_SECRET),
        "the example printed the secret:\n{output}"
    );
}

#[test]
fn oidc_example_wants_both_introspection_flags() {
    const SECRET: &str = "s3cret-never-echoed";
    let exe = crate::common::example_exe("oidc");
    for (flags, error) in [
        (
            ["--introspection-client-id", RS_CLIENT_ID],
            "error: --introspection-client-id needs --introspection-client-secret as well",
        ),
        (
            ["--introspection-client-secret", SECRET],
            "error: --introspection-client-secret needs --introspection-client-id as well",
        ),
    ] {
        let out = Command::new(&exe)
            .args(["http://127.0.0.1:9", "api://opaque", "--allow-http"])
            .args(flags)
            .stdin(Stdio::null())
            .output()
            .expect("the oidc example runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{flags:?}: {stderr}");
        assert!(stderr.starts_with(error), "{flags:?}: {stderr}");
        assert!(stderr.contains("usage:"), "{stderr}");
        assert!(!stderr.contains(SECRET), "{stderr}");
        assert!(out.stdout.is_empty(), "{flags:?}: nothing served");
    }
}
