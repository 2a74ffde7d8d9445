//! Observability: metrics by result and reason (feature `metrics`), and rejection log lines
//! that identify a token by fingerprint without ever containing it.

use std::io::Write;
use std::sync::{Arc, Mutex};

use axum::{body::Body, routing::get, Router};
use http::{Request, StatusCode};
use metrics_util::debugging::{DebugValue, DebuggingRecorder};
use tower::ServiceExt;
use tower_token_auth::testing::TestKey;
use tower_token_auth::{AuthConfig, AuthError, TokenAuthLayer};

fn app(key: &TestKey) -> Router {
    let cfg = AuthConfig::builder()
        .keys(key.keys())
        .issuer("https://issuer.test")
        .audience("api")
        .build()
        .unwrap();
    Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(TokenAuthLayer::new(cfg))
}

fn req(token: Option<&str>) -> Request<Body> {
    let mut b = Request::get("/");
    if let Some(t) = token {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    b.body(Body::empty()).unwrap()
}

/// Runs the future on a current-thread runtime so the thread-local recorder sees every event.
fn run<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(f)
}

#[test]
fn requests_are_counted_by_result_and_reason() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let key = TestKey::es256().with_kid("k1");
    let app = app(&key);
    let good = key
        .token()
        .issuer("https://issuer.test")
        .audience("api")
        .sign();
    let expired = key
        .token()
        .issuer("https://issuer.test")
        .audience("api")
        .expired_for(std::time::Duration::from_secs(3600))
        .sign();
    metrics::with_local_recorder(&recorder, || {
        run(async {
            for _ in 0..3 {
                let r = app.clone().oneshot(req(Some(&good))).await.unwrap();
                assert_eq!(r.status(), StatusCode::OK);
            }
            for _ in 0..2 {
                let r = app.clone().oneshot(req(Some(&expired))).await.unwrap();
                assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
            }
            let r = app.clone().oneshot(req(None)).await.unwrap();
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        })
    });
    let mut counts = std::collections::HashMap::new();
    let mut histogram_samples = 0;
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
            DebugValue::Histogram(v) => histogram_samples += v.len(),
            DebugValue::Gauge(_) => {}
        }
    }
    assert_eq!(
        counts.get("tower_token_auth_requests_total result=accepted,reason=none"),
        Some(&3),
        "{counts:?}"
    );
    assert_eq!(
        counts.get("tower_token_auth_requests_total result=rejected,reason=expired"),
        Some(&2),
        "{counts:?}"
    );
    assert_eq!(
        counts.get("tower_token_auth_requests_total result=rejected,reason=missing"),
        Some(&1),
        "{counts:?}"
    );
    assert_eq!(histogram_samples, 6, "one latency sample per request");
    // No label carries the token, the kid or the issuer.
    let all = format!("{counts:?}");
    assert!(!all.contains("k1") && !all.contains("issuer.test") && !all.contains(&good));
}

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

#[test]
fn rejection_log_has_a_fingerprint_and_never_the_token() {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let writer = Capture(buf.clone());
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let key = TestKey::hs256().with_kid("k1");
    let app = app(&key);
    let bad = key
        .token()
        .issuer("https://evil.test")
        .audience("api")
        .sign();
    let err = tracing::subscriber::with_default(subscriber, || {
        run(async {
            let r = app.clone().oneshot(req(Some(&bad))).await.unwrap();
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
            r.extensions().get::<AuthError>().unwrap().clone()
        })
    });
    let log = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
    let fp = err.facts().fingerprint.clone().expect("fingerprint");
    assert_eq!(fp.len(), 16);
    assert!(fp.bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(
        log.contains(&format!("token_fingerprint=\"{fp}\"")),
        "{log}"
    );
    assert!(log.contains("reason=\"wrong_issuer\""), "{log}");
    for (i, part) in bad.split('.').enumerate() {
        assert!(
            !log.contains(part),
            "segment {i} of the token is in the log: {log}"
        );
    }
    // The same token always gets the same fingerprint; another token another one.
    let buf2 = Arc::new(Mutex::new(Vec::new()));
    let writer2 = Capture(buf2);
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_writer(move || writer2.clone())
        .finish();
    let other = key.token().issuer("https://evil.test").sign();
    let (err2, err3) = tracing::subscriber::with_default(subscriber, || {
        run(async {
            let r = app.clone().oneshot(req(Some(&bad))).await.unwrap();
            let e2 = r.extensions().get::<AuthError>().unwrap().clone();
            let r = app.clone().oneshot(req(Some(&other))).await.unwrap();
            let e3 = r.extensions().get::<AuthError>().unwrap().clone();
            (e2, e3)
        })
    });
    assert_eq!(err2.facts().fingerprint.as_deref(), Some(fp.as_str()));
    assert!(err3.facts().fingerprint.is_some());
    assert_ne!(err3.facts().fingerprint.as_deref(), Some(fp.as_str()));
    // Without a subscriber nothing is logged, and the token is not hashed.
    let err4 = run(async {
        let r = app.clone().oneshot(req(Some(&bad))).await.unwrap();
        r.extensions().get::<AuthError>().unwrap().clone()
    });
    assert_eq!(err4.facts().fingerprint, None);
}
