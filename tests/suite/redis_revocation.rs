//! Revocation shared through a real Redis (`redis-server` started by the tests on 127.0.0.1):
//! two layer instances with separate local caches, propagation by pub/sub (measured), expiry
//! with the token, answers from the local cache without Redis round trips, and Redis dying,
//! freezing and coming back under both failure policies.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::{body::Body, routing::get, Router};
use http::{Request, StatusCode};
use tower::ServiceExt;
use tower_token_auth::clock::{Clock, SystemClock};
use tower_token_auth::revocation::{
    RedisRevocationStore, RevocationPolicy, RevocationStore, TokenRef,
};
use tower_token_auth::testing::TestKey;
use tower_token_auth::{AuthConfig, AuthError, Reason, TokenAuthLayer};

/// The store's request timeout in these tests (the default).
const TIMEOUT: Duration = Duration::from_millis(200);
/// What a request may take beyond the timeout (scheduling on a loaded 2-core machine).
const MARGIN: Duration = Duration::from_millis(300);
/// The propagation bound asserted: revoke on A → B refuses.
const PROPAGATION_BOUND: Duration = Duration::from_millis(500);

// ---------------------------------------------------------------------------------------------
// A real redis-server.

/// Also used by `dpop_redis.rs`.
pub(crate) struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
}

impl RedisServer {
    pub(crate) fn start() -> RedisServer {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let dir =
            std::env::temp_dir().join(format!("tta-redis-{}-{port}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut server = RedisServer {
            child: None,
            port,
            dir,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--save")
            .arg("")
            .arg("--appendonly")
            .arg("no")
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match child {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
                "redis-server is not installed: run scripts/test.sh, which installs it \
                 (apt-get install -y redis-server), or install it yourself"
            ),
            Err(e) => panic!("cannot start redis-server: {e}"),
        };
        self.child = Some(child);
        // Ready when it answers PING.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut con) = redis::Client::open(self.url()).and_then(|c| c.get_connection()) {
                if redis::cmd("PING").query::<String>(&mut con).is_ok() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not start on port {}",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn pid(&self) -> String {
        self.child.as_ref().unwrap().id().to_string()
    }

    /// SIGKILL, as a crash would.
    pub(crate) fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts again on the same port, empty (no persistence).
    pub(crate) fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// SIGSTOP: the port still accepts connections, nothing answers.
    pub(crate) fn freeze(&self) {
        signal("-STOP", &self.pid());
    }

    pub(crate) fn thaw(&self) {
        signal("-CONT", &self.pid());
    }

    /// A plain connection for the test's own questions.
    fn admin(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .unwrap()
            .get_connection_with_timeout(Duration::from_secs(2))
            .unwrap()
    }

    /// How many times Redis ran `command` (from `INFO commandstats`).
    fn calls(&self, command: &str) -> u64 {
        let info: String = redis::cmd("INFO")
            .arg("commandstats")
            .query(&mut self.admin())
            .unwrap();
        let prefix = format!("cmdstat_{command}:calls=");
        info.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .map(|rest| rest.split(',').next().unwrap().parse().unwrap())
            .unwrap_or(0)
    }

    fn pttl(&self, key: &str) -> i64 {
        redis::cmd("PTTL")
            .arg(key)
            .query(&mut self.admin())
            .unwrap()
    }

    fn exists(&self, key: &str) -> bool {
        redis::cmd("EXISTS")
            .arg(key)
            .query::<i64>(&mut self.admin())
            .unwrap()
            > 0
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.thaw();
        }
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn signal(sig: &str, pid: &str) {
    let status = Command::new("kill").arg(sig).arg(pid).status().unwrap();
    assert!(status.success(), "kill {sig} {pid} failed");
}

// ---------------------------------------------------------------------------------------------
// Instances of the service.

async fn store(redis: &RedisServer) -> Arc<RedisRevocationStore> {
    Arc::new(
        RedisRevocationStore::builder(redis.url())
            .timeout(TIMEOUT)
            .connect()
            .await
            .expect("connect to redis"),
    )
}

fn app(key: &TestKey, store: Arc<RedisRevocationStore>, policy: RevocationPolicy) -> Router {
    let cfg = AuthConfig::builder()
        .keys(key.keys())
        .issuer("iss")
        .audience("aud")
        .revocation(store)
        .revocation_policy(policy)
        .build()
        .unwrap();
    Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(TokenAuthLayer::new(cfg))
}

struct Answer {
    status: StatusCode,
    reason: Option<Reason>,
    retry_after: Option<String>,
    took: Duration,
}

/// One request; panics if it hangs past the timeout plus a generous bound.
async fn send(app: &Router, token: &str) -> Answer {
    let start = Instant::now();
    let res = tokio::time::timeout(
        Duration::from_secs(5),
        app.clone().oneshot(
            Request::get("/")
                .header("authorization", format!("Bearer {token}"))
                .body(Body::empty())
                .unwrap(),
        ),
    )
    .await
    .expect("request hung")
    .unwrap();
    Answer {
        status: res.status(),
        reason: res.extensions().get::<AuthError>().map(|e| e.reason()),
        retry_after: res
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned()),
        took: start.elapsed(),
    }
}

fn now() -> i64 {
    SystemClock.now()
}

/// A token of `sub` with `jti`, issued at `iat`, expiring 5 minutes from now.
fn token(key: &TestKey, jti: &str, sub: &str, iat: i64) -> String {
    key.token_at(now())
        .issuer("iss")
        .audience("aud")
        .subject(sub)
        .claim("jti", jti)
        .claim("iat", iat)
        .sign()
}

/// Polls `ok` until true; returns how long it took, or panics after `limit`.
async fn wait_until(limit: Duration, what: &str, mut ok: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    start.elapsed()
}

/// Sends until `app` refuses `token` as revoked; returns how long it took.
async fn until_revoked(app: &Router, token: &str, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let a = send(app, token).await;
        if a.reason == Some(Reason::Revoked) {
            return start.elapsed();
        }
        assert_eq!(
            a.status,
            StatusCode::OK,
            "unexpected answer before revocation"
        );
        assert!(
            start.elapsed() < limit,
            "not refused within {limit:?} of the revocation"
        );
        tokio::task::yield_now().await;
    }
}

fn tref<'a>(jti: &'a str, sub: &'a str, iat: i64) -> TokenRef<'a> {
    TokenRef {
        jti: Some(jti),
        iss: Some("iss"),
        sub: Some(sub),
        iat: Some(iat),
        exp: Some(now() + 300),
    }
}

// ---------------------------------------------------------------------------------------------
// Sharing between instances.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jti_revoked_on_one_instance_is_refused_by_the_other_within_the_measured_bound() {
    let redis = RedisServer::start();
    let key = TestKey::es256();
    let (a, b) = (store(&redis).await, store(&redis).await);
    let (app_a, app_b) = (
        app(&key, a.clone(), RevocationPolicy::FailClosed),
        app(&key, b.clone(), RevocationPolicy::FailClosed),
    );
    assert!(a.is_synced() && b.is_synced());
    let exists_before = redis.calls("exists");

    let mut times = Vec::new();
    for i in 0..20 {
        let jti = format!("jti-{i}");
        let t = token(&key, &jti, "alice", now());
        assert_eq!(send(&app_b, &t).await.status, StatusCode::OK);
        let start = Instant::now();
        a.revoke_token(&jti, now() + 300).await.unwrap();
        // The revoking instance refuses at once.
        assert_eq!(send(&app_a, &t).await.reason, Some(Reason::Revoked));
        until_revoked(&app_b, &t, Duration::from_secs(2)).await;
        times.push(start.elapsed());
    }
    times.sort();
    let (median, max) = (times[times.len() / 2], times[times.len() - 1]);
    eprintln!(
        "redis revocation propagation A -> B over {} revocations: median {median:?}, max {max:?}",
        times.len()
    );
    assert!(
        max < PROPAGATION_BOUND,
        "propagation took {max:?} (bound {PROPAGATION_BOUND:?})"
    );
    // B learnt every revocation by pub/sub, never by asking Redis.
    assert_eq!(redis.calls("exists"), exists_before);
    // Another token of the same subject is unaffected.
    let other = token(&key, "jti-other", "alice", now());
    assert_eq!(send(&app_b, &other).await.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logging_out_everywhere_on_one_instance_refuses_older_tokens_of_the_subject_on_the_other() {
    let redis = RedisServer::start();
    let key = TestKey::es256();
    let (a, b) = (store(&redis).await, store(&redis).await);
    let app_b = app(&key, b.clone(), RevocationPolicy::FailClosed);
    let n = now();
    let old = token(&key, "1", "alice", n - 10);
    let fresh = token(&key, "2", "alice", n);
    let bob = token(&key, "3", "bob", n - 10);
    assert_eq!(send(&app_b, &old).await.status, StatusCode::OK);

    let start = Instant::now();
    a.revoke_subject("alice", n - 5, n + 300).await.unwrap();
    until_revoked(&app_b, &old, PROPAGATION_BOUND).await;
    eprintln!(
        "redis subject revocation propagation A -> B: {:?}",
        start.elapsed()
    );
    assert_eq!(send(&app_b, &fresh).await.status, StatusCode::OK);
    assert_eq!(send(&app_b, &bob).await.status, StatusCode::OK);
    // Redis holds the cut-off, so it is also the answer when asked directly.
    assert!(b.is_revoked(tref("1", "alice", n - 10)).await.unwrap());
    assert!(!b.is_revoked(tref("2", "alice", n)).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocations_made_before_an_instance_starts_are_loaded_into_its_cache() {
    let redis = RedisServer::start();
    let key = TestKey::hs256();
    let a = store(&redis).await;
    let n = now();
    a.revoke_token("early", n + 300).await.unwrap();
    a.revoke_subject("carol", n - 5, n + 300).await.unwrap();

    let c = store(&redis).await;
    assert!(c.is_synced());
    assert_eq!(c.cached(), 2);
    let (exists, gets) = (redis.calls("exists"), redis.calls("get"));
    let app_c = app(&key, c.clone(), RevocationPolicy::FailClosed);
    let early = token(&key, "early", "dave", n);
    let carol = token(&key, "x", "carol", n - 10);
    let fine = token(&key, "y", "dave", n);
    assert_eq!(send(&app_c, &early).await.reason, Some(Reason::Revoked));
    assert_eq!(send(&app_c, &carol).await.reason, Some(Reason::Revoked));
    assert_eq!(send(&app_c, &fine).await.status, StatusCode::OK);
    assert_eq!(
        (redis.calls("exists"), redis.calls("get")),
        (exists, gets),
        "answered from the loaded cache"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_synced_instance_answers_100_requests_without_a_redis_round_trip() {
    let redis = RedisServer::start();
    let key = TestKey::es256();
    let (a, b) = (store(&redis).await, store(&redis).await);
    let app_b = app(&key, b.clone(), RevocationPolicy::FailClosed);
    let n = now();
    let revoked = token(&key, "gone", "erin", n);
    a.revoke_token("gone", n + 300).await.unwrap();
    until_revoked(&app_b, &revoked, PROPAGATION_BOUND).await;

    let (exists, gets) = (redis.calls("exists"), redis.calls("get"));
    let fine: Vec<String> = (0..50)
        .map(|i| token(&key, &format!("ok-{i}"), &format!("user-{i}"), n))
        .collect();
    for t in &fine {
        assert_eq!(send(&app_b, t).await.status, StatusCode::OK);
        assert_eq!(send(&app_b, &revoked).await.reason, Some(Reason::Revoked));
    }
    assert_eq!(
        (redis.calls("exists"), redis.calls("get")),
        (exists, gets),
        "100 requests on a synced instance asked Redis"
    );
    assert_eq!(b.check_local(&tref("ok-0", "user-0", n)), Some(false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_expire_in_redis_with_the_token() {
    let redis = RedisServer::start();
    let a = Arc::new(
        RedisRevocationStore::builder(redis.url())
            .grace(Duration::ZERO)
            .connect()
            .await
            .unwrap(),
    );
    let b = store(&redis).await;
    let n = now();
    a.revoke_token("long", n + 300).await.unwrap();
    a.revoke_subject("frank", n, n + 600).await.unwrap();
    let ttl = redis.pttl(&a.token_key("long"));
    assert!(
        (298_000..=300_000).contains(&ttl),
        "PTTL of the jti key: {ttl} ms, expected the token's exp"
    );
    let ttl = redis.pttl(&a.subject_key("frank"));
    assert!(
        (598_000..=600_000).contains(&ttl),
        "PTTL of the subject key: {ttl} ms, expected `until`"
    );

    // A token about to expire: its entry leaves Redis and the caches with it.
    a.revoke_token("short", n + 2).await.unwrap();
    assert!(redis.exists(&a.token_key("short")));
    let short = tref("short", "nobody", n);
    wait_until(Duration::from_secs(1), "B learns the revocation", || {
        b.check_local(&short) == Some(true)
    })
    .await;
    wait_until(Duration::from_secs(5), "the entry expires in redis", || {
        !redis.exists(&a.token_key("short"))
    })
    .await;
    assert_eq!(a.check_local(&short), Some(false));
    assert_eq!(b.check_local(&short), Some(false));
    assert_eq!(b.cached(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_outlive_exp_by_the_grace_so_the_leeway_cannot_revive_a_token() {
    let redis = RedisServer::start();
    // Default grace: 5 min, the largest leeway a configuration can have.
    let a = store(&redis).await;
    let n = now();
    a.revoke_token("t", n + 60).await.unwrap();
    let ttl = redis.pttl(&a.token_key("t"));
    assert!(
        (358_000..=360_000).contains(&ttl),
        "PTTL {ttl} ms, expected exp + 300 s"
    );
    // A token already past its exp, but inside the leeway, stays revoked.
    a.revoke_token("late", n - 250).await.unwrap();
    assert!(redis.exists(&a.token_key("late")));
    assert!(a.is_revoked(tref("late", "x", n - 400)).await.unwrap());
    // Past exp + grace there is nothing to keep.
    a.revoke_token("dead", n - 310).await.unwrap();
    assert!(!redis.exists(&a.token_key("dead")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prefix_separates_keys_and_channels() {
    let redis = RedisServer::start();
    let plain = store(&redis).await;
    let other = Arc::new(
        RedisRevocationStore::builder(redis.url())
            .prefix("svc2:")
            .connect()
            .await
            .unwrap(),
    );
    let n = now();
    plain.revoke_token("p", n + 300).await.unwrap();
    other.revoke_token("o", n + 300).await.unwrap();
    assert!(redis.exists("tta:jti:p"));
    assert!(redis.exists("svc2:jti:o"));
    // Give pub/sub time to (not) deliver.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(other.check_local(&tref("p", "x", n)), Some(false));
    assert!(!other.is_revoked(tref("p", "x", n)).await.unwrap());
    assert_eq!(plain.check_local(&tref("o", "x", n)), Some(false));
    assert!(other.is_revoked(tref("o", "x", n)).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_cache_keeps_what_it_holds_and_asks_redis_for_the_rest() {
    let redis = RedisServer::start();
    let key = TestKey::hs256();
    let a = store(&redis).await;
    let small = Arc::new(
        RedisRevocationStore::builder(redis.url())
            .max_cached(2)
            .connect()
            .await
            .unwrap(),
    );
    let app_s = app(&key, small.clone(), RevocationPolicy::FailClosed);
    let n = now();
    for j in ["r1", "r2", "r3"] {
        a.revoke_token(j, n + 300).await.unwrap();
    }
    wait_until(PROPAGATION_BOUND, "the cache fills", || small.cached() == 2).await;
    tokio::time::sleep(Duration::from_millis(50)).await; // r3 arrives and does not fit
    assert_eq!(small.cached(), 2);
    assert_eq!(small.check_local(&tref("r1", "u", n)), Some(true));
    assert_eq!(small.check_local(&tref("r3", "u", n)), None);

    let exists = redis.calls("exists");
    assert_eq!(
        send(&app_s, &token(&key, "r1", "u", n)).await.reason,
        Some(Reason::Revoked)
    );
    assert_eq!(redis.calls("exists"), exists, "r1 is cached");
    assert_eq!(
        send(&app_s, &token(&key, "r3", "u", n)).await.reason,
        Some(Reason::Revoked)
    );
    assert_eq!(
        send(&app_s, &token(&key, "r4", "u", n)).await.status,
        StatusCode::OK
    );
    assert_eq!(redis.calls("exists"), exists + 2, "r3 and r4 asked Redis");
}

// ---------------------------------------------------------------------------------------------
// Redis dying, freezing and coming back.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_fail_closed_answers_503_within_the_timeout() {
    let mut redis = RedisServer::start();
    let key = TestKey::es256();
    let b = store(&redis).await;
    let app_b = app(&key, b.clone(), RevocationPolicy::FailClosed);
    let n = now();
    let revoked = token(&key, "gone", "ann", n);
    b.revoke_token("gone", n + 300).await.unwrap();
    let fine = token(&key, "fine", "ann", n);
    assert_eq!(send(&app_b, &fine).await.status, StatusCode::OK);

    redis.kill();
    let noticed = wait_until(Duration::from_secs(3), "the store notices", || {
        !b.is_synced()
    })
    .await;
    eprintln!("redis killed: subscription loss noticed after {noticed:?}");
    for _ in 0..10 {
        let a = send(&app_b, &fine).await;
        assert_eq!(a.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(a.reason, Some(Reason::RevocationUnavailable));
        assert!(a.retry_after.is_some(), "503 without Retry-After");
        assert!(a.took < TIMEOUT + MARGIN, "a request took {:?}", a.took);
    }
    // A revocation this instance knows stays known without Redis.
    let a = send(&app_b, &revoked).await;
    assert_eq!(a.reason, Some(Reason::Revoked));
    assert!(a.took < MARGIN);
    // A revocation cannot reach Redis: the caller is told (and this instance applies it).
    assert!(b.revoke_token("later", n + 300).await.is_err());
    assert_eq!(b.check_local(&tref("later", "ann", n)), Some(true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_fail_open_lets_tokens_pass_within_the_timeout() {
    let mut redis = RedisServer::start();
    let key = TestKey::es256();
    let b = store(&redis).await;
    let app_b = app(&key, b.clone(), RevocationPolicy::FailOpen);
    let n = now();
    let revoked = token(&key, "gone", "ann", n);
    b.revoke_token("gone", n + 300).await.unwrap();
    let fine = token(&key, "fine", "ann", n);

    redis.kill();
    wait_until(Duration::from_secs(3), "the store notices", || {
        !b.is_synced()
    })
    .await;
    for _ in 0..10 {
        let a = send(&app_b, &fine).await;
        assert_eq!(a.status, StatusCode::OK);
        assert!(a.took < TIMEOUT + MARGIN, "a request took {:?}", a.took);
    }
    assert_eq!(send(&app_b, &revoked).await.reason, Some(Reason::Revoked));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_redis_fails_closed_within_the_timeout_and_no_request_hangs() {
    let redis = RedisServer::start();
    let key = TestKey::es256();
    let b = store(&redis).await;
    let app_b = app(&key, b.clone(), RevocationPolicy::FailClosed);
    let fine = token(&key, "fine", "ann", now());
    assert_eq!(send(&app_b, &fine).await.status, StatusCode::OK);

    // SIGSTOP: connections are accepted, nothing answers, nothing is closed.
    redis.freeze();
    let start = Instant::now();
    let mut first_503 = None;
    while start.elapsed() < Duration::from_secs(5) {
        let a = send(&app_b, &fine).await;
        assert!(a.took < TIMEOUT + MARGIN, "a request took {:?}", a.took);
        match a.status {
            StatusCode::OK => assert!(first_503.is_none(), "200 after a 503"),
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(a.reason, Some(Reason::RevocationUnavailable));
                first_503.get_or_insert(start.elapsed());
            }
            s => panic!("unexpected status {s}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Until the heartbeat finds the subscription dead, the cache answers; then Redis is asked.
    let first_503 = first_503.expect("never failed closed while redis was frozen");
    eprintln!(
        "redis frozen: answers from the cache for {first_503:?}, then 503 within the timeout"
    );
    assert!(first_503 < Duration::from_secs(3));
    assert!(!b.is_synced());

    redis.thaw();
    wait_until(Duration::from_secs(5), "the store resyncs", || {
        b.is_synced()
    })
    .await;
    assert_eq!(send(&app_b, &fine).await.status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_redis_restarts_the_stores_recover_and_revocations_propagate_again() {
    let mut redis = RedisServer::start();
    let key = TestKey::es256();
    let (a, b) = (store(&redis).await, store(&redis).await);
    let app_b = app(&key, b.clone(), RevocationPolicy::FailClosed);
    let n = now();
    let before = token(&key, "before", "ann", n);
    a.revoke_token("before", n + 300).await.unwrap();
    until_revoked(&app_b, &before, PROPAGATION_BOUND).await;

    redis.kill();
    wait_until(Duration::from_secs(3), "B notices", || !b.is_synced()).await;
    let fine = token(&key, "fine", "ann", n);
    assert_eq!(
        send(&app_b, &fine).await.reason,
        Some(Reason::RevocationUnavailable)
    );

    let start = Instant::now();
    redis.restart();
    let resynced = wait_until(Duration::from_secs(10), "both stores resync", || {
        a.is_synced() && b.is_synced()
    })
    .await;
    eprintln!("redis restarted: stores resubscribed after {resynced:?}");
    assert!(b.syncs() >= 2);
    assert_eq!(send(&app_b, &fine).await.status, StatusCode::OK);
    // Redis came back empty; B still knows what it had learnt.
    assert_eq!(send(&app_b, &before).await.reason, Some(Reason::Revoked));

    // Commands work again (the connection manager reconnects) and pub/sub carries revocations.
    let after = token(&key, "after", "ann", n);
    loop {
        match a.revoke_token("after", n + 300).await {
            Ok(()) => break,
            Err(e) => assert!(
                start.elapsed() < Duration::from_secs(10),
                "revoking still fails: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = until_revoked(&app_b, &after, PROPAGATION_BOUND).await;
    eprintln!("after the restart, propagation A -> B: {took:?}");
    assert!(redis.exists(&a.token_key("after")));
}

#[tokio::test]
async fn connecting_to_nothing_fails_within_the_connect_timeout() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let start = Instant::now();
    let err = RedisRevocationStore::builder(format!("redis://127.0.0.1:{port}/"))
        .connect_timeout(Duration::from_secs(1))
        .connect()
        .await
        .unwrap_err();
    assert!(start.elapsed() < Duration::from_millis(1500));
    assert!(err.to_string().contains("revocation store unavailable"));
    assert!(RedisRevocationStore::builder("not a url")
        .connect()
        .await
        .is_err());
}

// ---------------------------------------------------------------------------------------------
// Safety issue (#10), items 5 and 10.

/// A layer with a 120 s leeway on `store` (built after the store, as a service does).
fn app_with_leeway(key: &TestKey, store: Arc<RedisRevocationStore>) -> Router {
    let cfg = AuthConfig::builder()
        .keys(key.keys())
        .issuer("iss")
        .audience("aud")
        .leeway(Duration::from_secs(120))
        .revocation(store)
        .build()
        .unwrap();
    Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(TokenAuthLayer::new(cfg))
}

/// A token that expired 60 s ago: still accepted with a 120 s leeway.
fn expired_60s_ago(key: &TestKey, jti: &str) -> String {
    key.token_at(now() - 360)
        .issuer("iss")
        .audience("aud")
        .subject("grace")
        .claim("jti", jti)
        .sign()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item5_revocation_outlives_exp_by_the_largest_leeway() {
    let redis = RedisServer::start();
    let key = TestKey::hs256();
    // The writer (an admin process) knows no configuration: its default grace must cover any
    // reader's leeway.
    let writer = store(&redis).await;
    let reader = store(&redis).await;
    let app = app_with_leeway(&key, reader);
    let token = expired_60s_ago(&key, "grace-1");
    assert_eq!(send(&app, &token).await.status, StatusCode::OK);
    writer.revoke_token("grace-1", now() - 60).await.unwrap();
    assert!(redis.exists(&writer.token_key("grace-1")));
    until_revoked(&app, &token, PROPAGATION_BOUND).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item5_a_configuration_raises_a_lower_grace_to_its_leeway() {
    let redis = RedisServer::start();
    let key = TestKey::hs256();
    let short = Arc::new(
        RedisRevocationStore::builder(redis.url())
            .grace(Duration::from_secs(30))
            .connect()
            .await
            .unwrap(),
    );
    let app = app_with_leeway(&key, short.clone());
    let token = expired_60s_ago(&key, "grace-2");
    assert_eq!(send(&app, &token).await.status, StatusCode::OK);
    short.revoke_token("grace-2", now() - 60).await.unwrap();
    let ttl = redis.pttl(&short.token_key("grace-2"));
    assert!(
        ttl > 55_000,
        "PTTL {ttl} ms: the entry must outlive exp by the 120 s leeway"
    );
    until_revoked(&app, &token, PROPAGATION_BOUND).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item10_revoke_subject_covers_a_token_issued_in_the_same_second() {
    let redis = RedisServer::start();
    let a = store(&redis).await;
    let b = store(&redis).await;
    let n = now();
    a.revoke_subject("same-second", n, n + 600).await.unwrap();
    // B learns it by pub/sub (local answer), and asks Redis when it must.
    wait_until(Duration::from_secs(1), "B learns the cut-off", || {
        b.check_local(&tref("x", "same-second", n)) == Some(true)
    })
    .await;
    assert_eq!(b.check_local(&tref("x", "same-second", n + 1)), Some(false));
    assert!(a.is_revoked(tref("x", "same-second", n)).await.unwrap());
    let fresh = Arc::new(
        RedisRevocationStore::builder(redis.url())
            .max_cached(0)
            .connect()
            .await
            .unwrap(),
    );
    assert!(fresh.is_revoked(tref("y", "same-second", n)).await.unwrap());
    assert!(!fresh
        .is_revoked(tref("y", "same-second", n + 1))
        .await
        .unwrap());
}
