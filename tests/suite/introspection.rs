//! Opaque tokens through RFC 7662 introspection, against a fake endpoint on 127.0.0.1 that the
//! test controls: client authentication, the answer cache and its bounds, single flight,
//! faults (500, hang, garbage, 5 MB, reset, redirect), floods, claims checks, logs.
//! The real provider (node oidc-provider) is exercised in `oidc_provider.rs`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use http::{HeaderMap, StatusCode};
use serde_json::{json, Value};
use tower::ServiceExt;
use tower_token_auth::clock::ManualClock;
use tower_token_auth::introspection::Introspection;
use tower_token_auth::revocation::{MemoryRevocationStore, RevocationStore};
use tower_token_auth::testing::TestKey;
use tower_token_auth::{
    AuthConfig, Claims, ConfigError, Issuer, Reason, StandardClaims, TokenAuthLayer,
};

use crate::common::{bearer, send, Reply};

const ISS: &str = "https://as.test";
const AUD: &str = "api";
const CLIENT: &str = "orders-api";
/// With characters that RFC 6749 §2.3.1 form-encodes before Basic encoding.
const SECRET: &str = "s3:cr&t+é";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// How the fake endpoint misbehaves.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Fault {
    None,
    Status500,
    Hang,
    Garbage,
    Huge,
    Redirect,
}

#[derive(Default)]
struct Seen {
    authorization: Option<String>,
    form: HashMap<String, String>,
}

/// The fake authorization server: answers introspection from a table of tokens, counts calls.
#[derive(Clone)]
struct Fake {
    /// token → the answer's members (without `active`); a token not in it is inactive.
    tokens: Arc<Mutex<HashMap<String, Value>>>,
    calls: Arc<AtomicUsize>,
    redirected: Arc<AtomicUsize>,
    fault: Arc<Mutex<Fault>>,
    delay: Arc<Mutex<Duration>>,
    last: Arc<Mutex<Seen>>,
    /// Signs answers (RFC 9701) with this key, for this `aud` and `typ`, when set.
    signer: Arc<Mutex<Option<(TestKey, String, String)>>>,
}

impl Fake {
    fn new() -> Self {
        Fake {
            tokens: Arc::default(),
            calls: Arc::default(),
            redirected: Arc::default(),
            fault: Arc::new(Mutex::new(Fault::None)),
            delay: Arc::new(Mutex::new(Duration::ZERO)),
            last: Arc::default(),
            signer: Arc::default(),
        }
    }

    fn sign_with(&self, key: TestKey, aud: &str, typ: &str) {
        *self.signer.lock().unwrap() = Some((key, aud.to_owned(), typ.to_owned()));
    }

    fn active(&self, token: &str, claims: Value) {
        self.tokens.lock().unwrap().insert(token.to_owned(), claims);
    }

    fn forget(&self, token: &str) {
        self.tokens.lock().unwrap().remove(token);
    }

    fn fault(&self, fault: Fault) {
        *self.fault.lock().unwrap() = fault;
    }

    fn delay(&self, delay: Duration) {
        *self.delay.lock().unwrap() = delay;
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    /// Serves on 127.0.0.1: the base URL (the issuer of the discovery document).
    async fn serve(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let doc = json!({
            "issuer": base,
            "introspection_endpoint": format!("{base}/introspect"),
        });
        let app = Router::new()
            .route("/introspect", post(introspect))
            .route(
                "/elsewhere",
                post(|State(f): State<Fake>| async move {
                    f.redirected.fetch_add(1, Ordering::SeqCst);
                    axum::Json(json!({"active": true, "exp": now() + 600}))
                }),
            )
            .route(
                "/.well-known/openid-configuration",
                get(move || {
                    let doc = doc.clone();
                    async move { axum::Json(doc) }
                }),
            )
            .with_state(self.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        base
    }
}

async fn introspect(State(fake): State<Fake>, headers: HeaderMap, body: String) -> Response {
    fake.calls.fetch_add(1, Ordering::SeqCst);
    let form: HashMap<String, String> = form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    let token = form.get("token").cloned().unwrap_or_default();
    *fake.last.lock().unwrap() = Seen {
        authorization: headers
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_owned()),
        form,
    };
    let delay = *fake.delay.lock().unwrap();
    tokio::time::sleep(delay).await;
    let fault = *fake.fault.lock().unwrap();
    match fault {
        Fault::None => {}
        Fault::Status500 => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        Fault::Hang => {
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        Fault::Garbage => return "<html>not json</html>".into_response(),
        Fault::Huge => {
            let big = format!(
                "{{\"active\":true,\"pad\":\"{}\"}}",
                "x".repeat(5 * 1024 * 1024)
            );
            return ([("content-type", "application/json")], big).into_response();
        }
        Fault::Redirect => {
            return (StatusCode::TEMPORARY_REDIRECT, [("location", "/elsewhere")]).into_response()
        }
    }
    let answer = match fake.tokens.lock().unwrap().get(&token) {
        Some(Value::Object(claims)) => {
            let mut m = claims.clone();
            m.insert("active".into(), Value::Bool(true));
            Value::Object(m)
        }
        _ => json!({"active": false}),
    };
    let signer = fake.signer.lock().unwrap().clone();
    if let Some((key, aud, typ)) = signer {
        let jwt = key
            .token()
            .header("typ", typ)
            .issuer(ISS)
            .audience(&aud)
            .claim("token_introspection", answer)
            .sign();
        return (
            [("content-type", "application/token-introspection+jwt")],
            jwt,
        )
            .into_response();
    }
    axum::Json(answer).into_response()
}

/// The usual answer of an active token for `AUD`.
fn claims(sub: &str) -> Value {
    json!({
        "sub": sub, "aud": AUD, "iss": ISS, "exp": now() + 600, "iat": now(),
        "scope": "orders:read orders:write", "client_id": "spa", "token_type": "Bearer",
    })
}

fn introspection(base: &str) -> Introspection {
    Introspection::endpoint(format!("{base}/introspect"))
        .client_secret_basic(CLIENT, SECRET)
        .allow_http()
        .timeout(Duration::from_millis(500))
}

/// Static HS256 keys for JWTs, and introspection for opaque tokens, one issuer.
fn config(intro: Introspection) -> AuthConfig {
    AuthConfig::builder()
        .keys(hs_key().keys())
        .issuer(ISS)
        .audience(AUD)
        .introspection(intro)
        .build()
        .unwrap()
}

/// One fixed HS256 key, so tokens signed in a test verify with every configuration of it.
fn hs_key() -> TestKey {
    crate::common::hs::key()
}

/// A router whose `/` echoes `sub` and `scope` of the verified claims.
fn app(cfg: AuthConfig) -> Router {
    Router::new()
        .route(
            "/",
            get(|c: Claims<StandardClaims>| async move {
                format!(
                    "{} {}",
                    c.sub.clone().unwrap_or_default(),
                    c.scope.clone().unwrap_or_default()
                )
            }),
        )
        .layer(TokenAuthLayer::new(cfg))
}

async fn get_with(app: &Router, token: &str) -> Reply {
    send(app.clone(), bearer(token)).await
}

#[tokio::test]
async fn an_opaque_token_is_introspected_with_basic_auth_and_its_claims_reach_the_handler() {
    let fake = Fake::new();
    let base = fake.serve().await;
    fake.active("opaque-alice", claims("alice"));
    let app = app(config(introspection(&base)));

    let r = get_with(&app, "opaque-alice").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body, "alice orders:read orders:write");

    let seen = fake.last.lock().unwrap();
    // RFC 6749 §2.3.1: id and secret form-encoded, then Basic.
    let expected = {
        use base64::Engine;
        let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", enc(CLIENT), enc(SECRET)))
    };
    assert_eq!(
        seen.authorization.as_deref(),
        Some(format!("Basic {expected}").as_str())
    );
    assert_eq!(
        seen.form.get("token").map(String::as_str),
        Some("opaque-alice")
    );
    assert_eq!(
        seen.form.get("token_type_hint").map(String::as_str),
        Some("access_token")
    );
    assert!(!seen.form.contains_key("client_secret"));
}

#[tokio::test]
async fn client_secret_post_sends_the_credentials_in_the_form() {
    let fake = Fake::new();
    let base = fake.serve().await;
    fake.active("opaque-bob", claims("bob"));
    let intro = Introspection::endpoint(format!("{base}/introspect"))
        .client_secret_post(CLIENT, SECRET)
        .allow_http();
    let app = app(config(intro));
    assert_eq!(get_with(&app, "opaque-bob").await.status, StatusCode::OK);
    let seen = fake.last.lock().unwrap();
    assert_eq!(seen.authorization, None);
    assert_eq!(seen.form.get("client_id").map(String::as_str), Some(CLIENT));
    assert_eq!(
        seen.form.get("client_secret").map(String::as_str),
        Some(SECRET)
    );
}

#[tokio::test]
async fn the_endpoint_is_found_by_discovery() {
    let fake = Fake::new();
    let base = fake.serve().await;
    fake.active("opaque-d", claims("dora"));
    let cfg = AuthConfig::builder()
        .trust(
            Issuer::new(base.clone()).introspection(
                Introspection::discover()
                    .client_secret_basic(CLIENT, SECRET)
                    .allow_http(),
            ),
        )
        .audience(AUD)
        .build()
        .unwrap();
    let mut c = claims("dora");
    c["iss"] = json!(base);
    fake.active("opaque-d", c);
    let r = get_with(&app(cfg), "opaque-d").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(fake.calls(), 1);
}

#[tokio::test]
async fn inactive_is_401_inactive_and_cached_for_the_inactive_ttl() {
    let fake = Fake::new();
    let base = fake.serve().await;
    let clock = ManualClock::at(now());
    let cfg = AuthConfig::builder()
        .keys(hs_key().keys())
        .issuer(ISS)
        .audience(AUD)
        .clock(clock.clone())
        .introspection(introspection(&base).inactive_ttl(Duration::from_secs(10)))
        .build()
        .unwrap();
    let app = app(cfg);
    let r = get_with(&app, "unknown-token").await;
    r.assert_rejected(Reason::Inactive);
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r
        .www_authenticate()
        .unwrap()
        .contains("error=\"invalid_token\""));
    get_with(&app, "unknown-token")
        .await
        .assert_rejected(Reason::Inactive);
    assert_eq!(fake.calls(), 1, "the inactive answer is cached");
    clock.advance(Duration::from_secs(11));
    get_with(&app, "unknown-token")
        .await
        .assert_rejected(Reason::Inactive);
    assert_eq!(fake.calls(), 2, "asked again past the inactive bound");
}

#[tokio::test]
async fn an_active_answer_is_cached_until_the_active_ttl_then_revocation_at_the_provider_shows() {
    let fake = Fake::new();
    let base = fake.serve().await;
    let clock = ManualClock::at(now());
    let cfg = AuthConfig::builder()
        .keys(hs_key().keys())
        .issuer(ISS)
        .audience(AUD)
        .clock(clock.clone())
        .introspection(introspection(&base).active_ttl(Duration::from_secs(60)))
        .build()
        .unwrap();
    let app = app(cfg);
    fake.active("opaque-c", claims("carol"));
    for _ in 0..5 {
        assert_eq!(get_with(&app, "opaque-c").await.status, StatusCode::OK);
    }
    assert_eq!(fake.calls(), 1);
    // Revoked at the provider: still accepted from the cache within the bound...
    fake.forget("opaque-c");
    clock.advance(Duration::from_secs(59));
    assert_eq!(get_with(&app, "opaque-c").await.status, StatusCode::OK);
    assert_eq!(fake.calls(), 1);
    // ...and refused as inactive past it.
    clock.advance(Duration::from_secs(2));
    get_with(&app, "opaque-c")
        .await
        .assert_rejected(Reason::Inactive);
    assert_eq!(fake.calls(), 2);
}

#[tokio::test]
async fn an_active_answer_is_never_cached_past_the_tokens_exp() {
    let fake = Fake::new();
    let base = fake.serve().await;
    let t0 = now();
    let clock = ManualClock::at(t0);
    let cfg = AuthConfig::builder()
        .keys(hs_key().keys())
        .issuer(ISS)
        .audience(AUD)
        .clock(clock.clone())
        .introspection(introspection(&base))
        .build()
        .unwrap();
    let app = app(cfg);
    let mut c = claims("erin");
    c["exp"] = json!(t0 + 5);
    fake.active("opaque-e", c);
    assert_eq!(get_with(&app, "opaque-e").await.status, StatusCode::OK);
    clock.advance(Duration::from_secs(6));
    // The cached answer ended at `exp`: the endpoint is asked again (this fake still says
    // active with the old `exp`; the leeway of 30 s still accepts it, as for a JWT).
    assert_eq!(get_with(&app, "opaque-e").await.status, StatusCode::OK);
    assert_eq!(fake.calls(), 2);
    // Past exp + leeway: expired, exactly as a JWT would be.
    clock.advance(Duration::from_secs(30));
    get_with(&app, "opaque-e")
        .await
        .assert_rejected(Reason::Expired);
}

#[tokio::test]
async fn the_answers_claims_are_checked_like_a_jwts() {
    let fake = Fake::new();
    let base = fake.serve().await;
    let app = app(config(introspection(&base)));
    let cases: [(&str, Value, Option<Reason>); 6] = [
        (
            "aud-other",
            json!({"aud": "other"}),
            Some(Reason::WrongAudience),
        ),
        (
            "iss-other",
            json!({"iss": "https://evil.test"}),
            Some(Reason::WrongIssuer),
        ),
        // RFC 7662 makes `iss` optional: the answering issuer's.
        ("iss-absent", json!({"iss": null}), None),
        (
            "exp-absent",
            json!({"exp": null}),
            Some(Reason::MissingClaim),
        ),
        (
            "exp-past",
            json!({"exp": now() - 3600}),
            Some(Reason::Expired),
        ),
        (
            "nbf-future",
            json!({"nbf": now() + 3600}),
            Some(Reason::NotYetValid),
        ),
    ];
    for (token, patch, want) in cases {
        let mut c = claims("x");
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                c.as_object_mut().unwrap().remove(k);
            } else {
                c[k] = v.clone();
            }
        }
        fake.active(token, c);
        let r = get_with(&app, token).await;
        match want {
            Some(reason) => r.assert_rejected(reason),
            None => assert_eq!(r.status, StatusCode::OK, "{token}: {}", r.body),
        }
    }
}

#[tokio::test]
async fn jwts_and_opaque_tokens_side_by_side_and_all_tokens_mode() {
    let fake = Fake::new();
    let base = fake.serve().await;
    let key = hs_key();
    fake.active("opaque-f", claims("frank"));
    let app1 = app(config(introspection(&base)));
    let jwt = key
        .token()
        .issuer(ISS)
        .audience(AUD)
        .subject("jay")
        .claim("scope", "read")
        .sign();
    assert_eq!(get_with(&app1, &jwt).await.body, "jay read");
    assert_eq!(fake.calls(), 0, "a JWT is verified locally");
    assert_eq!(
        get_with(&app1, "opaque-f").await.body,
        "frank orders:read orders:write"
    );
    assert_eq!(fake.calls(), 1);

    // `all_tokens`: the provider decides for JWTs too (a JWT it does not know is inactive,
    // even with a good signature).
    let app2 = app(config(introspection(&base).all_tokens()));
    get_with(&app2, &jwt)
        .await
        .assert_rejected(Reason::Inactive);
    fake.active(&jwt, claims("jay-by-introspection"));
    let other_jwt = key.token().issuer(ISS).audience(AUD).subject("j2").sign();
    fake.active(&other_jwt, claims("j2-by-introspection"));
    assert_eq!(
        get_with(&app2, &other_jwt).await.body,
        "j2-by-introspection orders:read orders:write"
    );
}

#[tokio::test]
async fn the_revocation_store_is_consulted_on_every_cached_answer() {
    let fake = Fake::new();
    let base = fake.serve().await;
    let store = Arc::new(MemoryRevocationStore::new());
    let cfg = AuthConfig::builder()
        .keys(hs_key().keys())
        .issuer(ISS)
        .audience(AUD)
        .revocation(store.clone())
        .introspection(introspection(&base))
        .build()
        .unwrap();
    let app = app(cfg);
    let mut c = claims("gil");
    c["jti"] = json!("jti-gil");
    fake.active("opaque-g", c);
    assert_eq!(get_with(&app, "opaque-g").await.status, StatusCode::OK);
    store.revoke_token("jti-gil", now() + 600).await.unwrap();
    get_with(&app, "opaque-g")
        .await
        .assert_rejected(Reason::Revoked);
    assert_eq!(
        fake.calls(),
        1,
        "the revocation came from the store, not a new call"
    );
}

#[tokio::test]
async fn every_fault_of_the_endpoint_is_503_introspection_unavailable_without_hanging() {
    let fake = Fake::new();
    let base = fake.serve().await;
    // A token the endpoint would call active: only the fault decides.
    fake.active("opaque-h", claims("hal"));
    for fault in [
        Fault::Status500,
        Fault::Hang,
        Fault::Garbage,
        Fault::Huge,
        Fault::Redirect,
    ] {
        fake.fault(fault);
        // A fresh configuration each time: nothing cached from the previous fault.
        let app = app(config(introspection(&base)));
        let started = Instant::now();
        let r = get_with(&app, "opaque-h").await;
        r.assert_rejected(Reason::IntrospectionUnavailable);
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "{fault:?}");
        assert!(r.headers.contains_key("retry-after"), "{fault:?}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{fault:?} took {:?}",
            started.elapsed()
        );
        // Failures are not cached: the endpoint back, the same token passes.
        fake.fault(Fault::None);
        assert_eq!(
            get_with(&app, "opaque-h").await.status,
            StatusCode::OK,
            "{fault:?}"
        );
    }
    assert_eq!(
        fake.redirected.load(Ordering::SeqCst),
        0,
        "a redirect was followed"
    );
}

#[tokio::test]
async fn a_connection_reset_is_503() {
    // A server that accepts and closes every connection at once.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            drop(sock);
        }
    });
    let app = app(config(introspection(&base)));
    get_with(&app, "opaque-r")
        .await
        .assert_rejected(Reason::IntrospectionUnavailable);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_one_new_token_makes_one_call() {
    let fake = Fake::new();
    let base = fake.serve().await;
    fake.active("opaque-flood", claims("fay"));
    fake.delay(Duration::from_millis(200));
    let app = app(config(introspection(&base)));
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            app.oneshot(bearer("opaque-flood")).await.unwrap().status()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), StatusCode::OK);
    }
    assert_eq!(fake.calls(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_distinct_unknown_tokens_is_bounded_by_max_in_flight() {
    let fake = Fake::new();
    let base = fake.serve().await;
    fake.delay(Duration::from_millis(300));
    let app = app(config(introspection(&base).max_in_flight(8)));
    let mut tasks = Vec::new();
    for i in 0..200 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let r = app.oneshot(bearer(&format!("unknown-{i}"))).await.unwrap();
            r.extensions()
                .get::<tower_token_auth::AuthError>()
                .map(|e| e.reason())
        }));
    }
    let mut inactive = 0;
    let mut busy = 0;
    for t in tasks {
        match t.await.unwrap() {
            Some(Reason::Inactive) => inactive += 1,
            Some(Reason::IntrospectionUnavailable) => busy += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(
        fake.calls() <= 200 && inactive == fake.calls(),
        "{inactive} vs {}",
        fake.calls()
    );
    assert!(busy > 0, "the bound of 8 calls never refused anyone");
    // The slots are all free again.
    fake.delay(Duration::ZERO);
    get_with(&app, "unknown-late")
        .await
        .assert_rejected(Reason::Inactive);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_goes_away_does_not_cancel_the_call() {
    let fake = Fake::new();
    let base = fake.serve().await;
    fake.active("opaque-i", claims("ivy"));
    fake.delay(Duration::from_millis(300));
    let app = app(config(introspection(&base)));
    // Dropped after 50 ms, while the call is in flight.
    let dropped = tokio::time::timeout(
        Duration::from_millis(50),
        app.clone().oneshot(bearer("opaque-i")),
    )
    .await;
    assert!(dropped.is_err());
    // The next request joins the same call (or finds its answer): one call in all.
    assert_eq!(get_with(&app, "opaque-i").await.status, StatusCode::OK);
    assert_eq!(fake.calls(), 1);
}

#[tokio::test]
async fn validate_and_diagnose_give_the_layers_verdict() {
    let fake = Fake::new();
    let base = fake.serve().await;
    fake.active("opaque-j", claims("jo"));
    let cfg = config(introspection(&base));
    let v: StandardClaims = cfg.validate("opaque-j").await.unwrap();
    assert_eq!(v.sub.as_deref(), Some("jo"));
    let err = cfg.validate::<StandardClaims>("nobody").await.unwrap_err();
    assert_eq!(err.reason(), Reason::Inactive);
    #[cfg(feature = "diagnose")]
    {
        let d = tower_token_auth::diagnose("nobody", &cfg).await;
        assert_eq!(d.reason(), Some(Reason::Inactive));
        let text = d.to_string();
        assert!(text.contains("introspected at"), "{text}");
        assert!(text.contains("active=false"), "{text}");
        let d = tower_token_auth::diagnose("opaque-j", &cfg).await;
        assert!(d.is_valid(), "{d}");
        assert!(d.to_string().contains("active=true"), "{d}");
        fake.fault(Fault::Status500);
        let d = tower_token_auth::diagnose("opaque-new", &cfg).await;
        assert_eq!(d.reason(), Some(Reason::IntrospectionUnavailable));
        assert!(d.to_string().contains("HTTP status 500"), "{d}");
    }
}

#[test]
fn misconfigurations_fail_at_build_naming_the_fix() {
    let key = hs_key();
    let e = AuthConfig::builder()
        .trust(
            Issuer::new("https://a.test")
                .keys(key.keys())
                .introspection(Introspection::discover().client_secret_basic("a", "s")),
        )
        .trust(
            Issuer::new("https://b.test")
                .keys(key.keys())
                .introspection(Introspection::discover().client_secret_basic("b", "s")),
        )
        .audience(AUD)
        .build()
        .unwrap_err();
    assert_eq!(e, ConfigError::SeveralIntrospections);
    assert!(e.to_string().contains("one issuer"));

    let e = AuthConfig::builder()
        .keys(key.keys())
        .issuer(ISS)
        .audience(AUD)
        .introspection(
            Introspection::endpoint("http://as.test/introspect").client_secret_basic("a", "s"),
        )
        .build()
        .unwrap_err();
    assert!(matches!(e, ConfigError::InsecureIntrospection(_)));
    assert!(e.to_string().contains(".allow_http()"));

    let e = AuthConfig::builder()
        .keys(key.keys())
        .issuer(ISS)
        .audience(AUD)
        .introspection(Introspection::endpoint("https://as.test/introspect"))
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("client_secret_basic"), "{e}");

    // Introspection alone (no keys) is a complete configuration.
    AuthConfig::builder()
        .issuer(ISS)
        .audience(AUD)
        .introspection(Introspection::discover().client_secret_basic("a", "s"))
        .build()
        .unwrap();
}

#[test]
fn the_secret_never_shows_in_debug() {
    let intro =
        Introspection::endpoint("https://as.test/introspect").client_secret_basic(CLIENT, SECRET);
    let dbg = format!("{intro:?}");
    assert!(dbg.contains(CLIENT));
    assert!(!dbg.contains("s3:cr"), "{dbg}");
    let cfg = AuthConfig::builder()
        .keys(hs_key().keys())
        .issuer(ISS)
        .audience(AUD)
        .introspection(intro)
        .build()
        .unwrap();
    assert!(!format!("{cfg:?}").contains("s3:cr"));
}

#[test]
fn neither_the_secret_nor_the_token_reach_logs_or_bodies() {
    use std::io::Write;

    #[derive(Clone)]
    struct Capture(Arc<Mutex<Vec<u8>>>);
    impl Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let buf = Arc::new(Mutex::new(Vec::new()));
    let writer = Capture(buf.clone());
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let bodies = tracing::subscriber::with_default(subscriber, || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let fake = Fake::new();
            let base = fake.serve().await;
            fake.active("opaque-secret-token-1", claims("kim"));
            let app = app(config(introspection(&base)));
            let mut bodies = Vec::new();
            bodies.push(get_with(&app, "opaque-secret-token-1").await.body);
            bodies.push(get_with(&app, "opaque-secret-token-2").await.body);
            fake.fault(Fault::Status500);
            bodies.push(get_with(&app, "opaque-secret-token-3").await.body);
            fake.fault(Fault::Garbage);
            bodies.push(get_with(&app, "opaque-secret-token-4").await.body);
            bodies
        })
    });
    let log = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
    // Something was logged (the requests' events); which events reach a thread-local
    // subscriber can vary while other tests create and drop theirs (tracing's callsite
    // interest cache), so the check is on what is there: never a token, never the secret.
    assert!(log.contains("token rejected"), "nothing was logged: {log}");
    for text in bodies.iter().chain(std::iter::once(&log)) {
        assert!(
            !text.contains("opaque-secret-token"),
            "a token leaked: {text}"
        );
        assert!(
            !text.contains("s3:cr") && !text.contains("s3%3Acr"),
            "the secret leaked: {text}"
        );
    }
}

#[cfg(feature = "diagnose")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_doctor_introspects_with_client_credentials() {
    let fake = Fake::new();
    let base = fake.serve().await;
    fake.active("opaque-doc", claims("dee"));
    let secret = std::env::temp_dir().join(format!("introspect-secret-{}", std::process::id()));
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    let exe = crate::common::example_exe("doctor");
    let url = format!("{base}/introspect");
    let run = |token: &'static str, extra: &'static [&'static str]| {
        let exe = exe.clone();
        let url = url.clone();
        let secret = secret.clone();
        tokio::task::spawn_blocking(move || {
            std::process::Command::new(exe)
                .args([token, "--introspect-url", &url, "--client-id", CLIENT])
                .arg("--client-secret-file")
                .arg(&secret)
                .args(["--allow-http", "--aud", AUD, "--iss", ISS])
                .args(extra)
                .env("NO_COLOR", "1")
                .output()
                .unwrap()
        })
    };
    let ok = run("opaque-doc", &[]).await.unwrap();
    let out = String::from_utf8_lossy(&ok.stdout);
    assert_eq!(ok.status.code(), Some(0), "{out}");
    assert!(out.contains("introspected at"), "{out}");
    assert!(out.contains("active=true"), "{out}");
    assert!(out.contains("\"dee\"") || out.contains("dee"), "{out}");

    let bad = run("opaque-nobody", &["--client-secret-post"])
        .await
        .unwrap();
    let out = String::from_utf8_lossy(&bad.stdout);
    assert_eq!(bad.status.code(), Some(1), "{out}");
    assert!(out.contains("rejected as inactive"), "{out}");
    assert!(out.contains("active=false"), "{out}");
    assert!(!out.contains("s3:cr"), "{out}");

    // Without client credentials: a usage error naming them.
    let usage = tokio::task::spawn_blocking({
        let exe = exe.clone();
        move || {
            std::process::Command::new(exe)
                .args(["opaque-doc", "--introspect", "--issuer", "https://as.test"])
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert_eq!(usage.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&usage.stderr).contains("--client-id"));
    let _ = std::fs::remove_file(&secret);
}

#[tokio::test]
async fn signed_answers_rfc_9701_are_verified_with_the_issuers_keys() {
    let fake = Fake::new();
    let base = fake.serve().await;
    let key = TestKey::es256().with_kid("as-1");
    let cfg = AuthConfig::builder()
        .keys(key.keys())
        .issuer(ISS)
        .audience(AUD)
        .introspection(
            introspection(&base)
                .jwt_response()
                .inactive_ttl(Duration::ZERO),
        )
        .build()
        .unwrap();
    let app = app(cfg);
    fake.active("opaque-s", claims("sam"));

    // A plain JSON answer is not accepted once signed answers are asked for.
    get_with(&app, "opaque-s")
        .await
        .assert_rejected(Reason::IntrospectionUnavailable);

    fake.sign_with(key.clone(), CLIENT, "token-introspection+jwt");
    let r = get_with(&app, "opaque-s").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.body, "sam orders:read orders:write");
    get_with(&app, "opaque-unknown")
        .await
        .assert_rejected(Reason::Inactive);

    // Each of these is refused; none is cached, so each is asked anew.
    let cases = [
        // The bundled ES256 test key is the issuer's: another key is another algorithm.
        (
            TestKey::ed25519().with_kid("as-1"),
            CLIENT,
            "token-introspection+jwt",
            "another key",
        ),
        (
            TestKey::hs256().with_kid("as-1"),
            CLIENT,
            "token-introspection+jwt",
            "an HMAC key",
        ),
        (
            key.clone(),
            "someone-else",
            "token-introspection+jwt",
            "another client",
        ),
        (key.clone(), CLIENT, "JWT", "another type"),
    ];
    for (i, (signer, aud, typ, what)) in cases.into_iter().enumerate() {
        fake.sign_with(signer, aud, typ);
        let token = format!("opaque-s{i}");
        fake.active(&token, claims("sam"));
        let r = get_with(&app, &token).await;
        assert_eq!(
            r.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{what}: {}",
            r.body
        );
        r.assert_rejected(Reason::IntrospectionUnavailable);
    }

    // Without keys for the issuer, signed answers cannot be asked for.
    let e = AuthConfig::builder()
        .issuer(ISS)
        .audience(AUD)
        .introspection(introspection(&base).jwt_response())
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("keys"), "{e}");
}

#[cfg(feature = "metrics")]
#[test]
fn calls_latency_and_cache_results_are_counted() {
    use metrics_util::debugging::{DebugValue, DebuggingRecorder};

    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    metrics::with_local_recorder(&recorder, || {
        // One thread: the calls' own tasks report to this thread's recorder too.
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let fake = Fake::new();
            let base = fake.serve().await;
            fake.active("opaque-m", claims("max"));
            let app = app(config(introspection(&base)));
            for _ in 0..3 {
                assert_eq!(get_with(&app, "opaque-m").await.status, StatusCode::OK);
            }
            get_with(&app, "opaque-nobody")
                .await
                .assert_rejected(Reason::Inactive);
            fake.fault(Fault::Status500);
            get_with(&app, "opaque-failing")
                .await
                .assert_rejected(Reason::IntrospectionUnavailable);
        })
    });
    let mut counts = HashMap::new();
    let mut latencies = 0;
    for (key, _, _, value) in snapshotter.snapshot().into_vec() {
        let k = key.key();
        let labels: Vec<String> = k
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        match value {
            DebugValue::Counter(n) => {
                counts.insert(format!("{} {}", k.name(), labels.join(",")), n);
            }
            DebugValue::Histogram(v) if k.name() == "tower_token_auth_introspection_seconds" => {
                latencies += v.len()
            }
            _ => {}
        }
    }
    let count = |name: &str| counts.get(name).copied().unwrap_or(0);
    assert_eq!(
        count("tower_token_auth_introspection_calls_total result=active"),
        1,
        "{counts:?}"
    );
    assert_eq!(
        count("tower_token_auth_introspection_calls_total result=inactive"),
        1,
        "{counts:?}"
    );
    assert_eq!(
        count("tower_token_auth_introspection_calls_total result=status"),
        1,
        "{counts:?}"
    );
    assert_eq!(
        count("tower_token_auth_introspection_cache_total result=hit_active"),
        2,
        "{counts:?}"
    );
    assert_eq!(
        count("tower_token_auth_introspection_cache_total result=miss"),
        3,
        "{counts:?}"
    );
    assert_eq!(latencies, 3, "one latency sample per call");
    assert!(
        !format!("{counts:?}").contains("opaque-"),
        "a token in a label"
    );
}

/// The answer cache is a shortcut: for every kind of answer, the layer's second request (from
/// the cache), its first (a call), a fresh `validate()` and `diagnose()` give the same verdict.
#[tokio::test]
async fn a_cached_answer_gives_the_verdict_of_a_fresh_call_on_every_path() {
    let fake = Fake::new();
    let base = fake.serve().await;
    let t = now();
    let variants: Vec<(&str, Value)> = vec![
        ("ok", json!({})),
        ("aud", json!({"aud": "other"})),
        ("aud-list", json!({"aud": ["other", AUD]})),
        ("aud-number", json!({"aud": 7})),
        ("iss", json!({"iss": "https://evil.test"})),
        ("iss-number", json!({"iss": 1})),
        ("exp-past", json!({"exp": t - 100})),
        ("exp-leeway", json!({"exp": t - 10})),
        ("exp-string", json!({"exp": "tomorrow"})),
        ("exp-float", json!({"exp": (t + 600) as f64 + 0.5})),
        ("nbf-future", json!({"nbf": t + 100})),
        ("iat-string", json!({"iat": "x"})),
        ("scope-number", json!({"scope": 5})),
    ];
    for (i, (what, patch)) in variants.into_iter().enumerate() {
        let token = format!("opaque-v{i}");
        let mut c = claims("vic");
        for (k, v) in patch.as_object().unwrap() {
            c[k] = v.clone();
        }
        fake.active(&token, c);
        let cfg = config(introspection(&base));
        let app = app(cfg.clone());
        let reason = |r: &Reply| r.error.as_ref().map(|e| e.reason());
        let first = reason(&get_with(&app, &token).await);
        let cached = reason(&get_with(&app, &token).await);
        let validated = config(introspection(&base))
            .validate::<StandardClaims>(&token)
            .await
            .err()
            .map(|e| e.reason());
        assert_eq!(first, cached, "{what}: cached answer");
        assert_eq!(first, validated, "{what}: validate()");
        // `diagnose` does not know the handler's claims type: a claim of the wrong type for
        // `StandardClaims` (a number as `scope`) is the layer's `invalid_claim` only, as for a
        // JWT.
        #[cfg(feature = "diagnose")]
        if what != "scope-number" {
            let d = tower_token_auth::diagnose(&token, &config(introspection(&base))).await;
            assert_eq!(d.reason(), first, "{what}: diagnose()");
        }
    }
}

/// Instances sharing answers through Redis: a token introspected by one is known to the
/// others without another call, within the same bounds.
#[cfg(feature = "redis")]
#[tokio::test]
async fn instances_share_answers_through_redis() {
    use tower_token_auth::introspection::RedisAnswers;

    let redis = crate::redis_revocation::RedisServer::start();
    let fake = Fake::new();
    let base = fake.serve().await;
    fake.active("opaque-shared", claims("sue"));
    let replica = || async {
        let shared = RedisAnswers::connect(&redis.url()).await.unwrap();
        app(config(
            introspection(&base)
                .hash_secret([3; 32])
                .share_answers(shared),
        ))
    };
    let (a, b, c) = (replica().await, replica().await, replica().await);
    assert_eq!(
        get_with(&a, "opaque-shared").await.body,
        "sue orders:read orders:write"
    );
    assert_eq!(
        get_with(&b, "opaque-shared").await.body,
        "sue orders:read orders:write"
    );
    get_with(&c, "opaque-unknown")
        .await
        .assert_rejected(Reason::Inactive);
    get_with(&a, "opaque-unknown")
        .await
        .assert_rejected(Reason::Inactive);
    assert_eq!(fake.calls(), 2, "one call per token for all the instances");
    // Without a shared hash secret, sharing is refused at build().
    let e = AuthConfig::builder()
        .keys(hs_key().keys())
        .issuer(ISS)
        .audience(AUD)
        .introspection(
            introspection(&base).share_answers(RedisAnswers::connect(&redis.url()).await.unwrap()),
        )
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("hash_secret"), "{e}");
    // Redis gone: each instance asks the endpoint itself (sharing is an optimization).
    drop(redis);
    fake.active("opaque-after", claims("al"));
    assert_eq!(get_with(&b, "opaque-after").await.status, StatusCode::OK);
}
