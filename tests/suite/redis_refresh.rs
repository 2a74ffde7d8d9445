//! `RedisRefreshStore` against a real `redis-server` (started by the tests on 127.0.0.1):
//! several stores on one Redis play the replicas of a service. Rotation on one replica and
//! reuse detection on another, concurrent rotations of one token, the same answers as the
//! memory store, key expiry with the family, Redis down, frozen, slow, restarted and
//! flushed, and the same through `TokenIssuer`s sharing one connection with a
//! `RedisRevocationStore`. The latency of a refresh, Redis vs memory, is printed by an
//! ignored test: `cargo test --all-features --test suite redis_refresh:: -- --ignored
//! --nocapture`.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{Map, Value};
use tower_token_auth::clock::{Clock, SystemClock};
use tower_token_auth::issuer::{
    Generation, IssuedToken, Login, MemoryRefreshStore, RedisRefreshStore, RefreshError,
    RefreshStore, Rotation, TokenIssuer,
};
use tower_token_auth::revocation::RedisRevocationStore;
use tower_token_auth::{AuthConfig, Reason, StandardClaims};

/// The stores' timeout in these tests (the default).
const TIMEOUT: Duration = Duration::from_millis(200);
/// The bound asserted for a failing operation: the timeout plus scheduling slack.
const FAIL_BOUND: Duration = Duration::from_secs(1);
const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

// ---------------------------------------------------------------------------------------------
// A real redis-server (DEBUG allowed from loopback, for `DEBUG SLEEP`).

struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
}

impl RedisServer {
    fn start() -> RedisServer {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(format!("tta-rf-{}-{port}", std::process::id()));
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
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .args(["--enable-debug-command", "local", "--port"])
            .arg(self.port.to_string())
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (apt-get install -y redis-server)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.answers() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn answers(&self) -> bool {
        redis::Client::open(self.url())
            .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(1)))
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
            .is_ok()
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts again on the same port, empty (no persistence).
    fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().unwrap().id().to_string();
        assert!(Command::new("kill")
            .arg(sig)
            .arg(pid)
            .status()
            .unwrap()
            .success());
    }

    fn admin(&self) -> redis::Connection {
        redis::Client::open(self.url())
            .unwrap()
            .get_connection_with_timeout(Duration::from_secs(2))
            .unwrap()
    }

    fn query<T: redis::FromRedisValue>(&self, cmd: &mut redis::Cmd) -> T {
        cmd.query(&mut self.admin()).unwrap()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.signal("-CONT");
        }
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers.

async fn store(redis: &RedisServer) -> RedisRefreshStore {
    RedisRefreshStore::builder(redis.url())
        .timeout(TIMEOUT)
        .connect()
        .await
        .expect("connect to redis")
}

fn now() -> i64 {
    SystemClock.now()
}

/// Generation `n` of a family: refresh `r<n>` and access `a<n>`.
fn generation(n: u32, refresh_exp: i64, access_exp: i64) -> Generation {
    Generation::new(
        IssuedToken::new(format!("r{n}"), refresh_exp),
        IssuedToken::new(format!("a{n}"), access_exp),
    )
}

fn jtis(tokens: &[IssuedToken]) -> Vec<&str> {
    let mut v: Vec<&str> = tokens.iter().map(|t| t.jti.as_str()).collect();
    v.sort_unstable();
    v
}

/// Runs `op` and checks it failed within [`FAIL_BOUND`]; returns how long it took.
async fn fails_fast<T: std::fmt::Debug>(
    what: &str,
    op: impl std::future::Future<Output = Result<T, tower_token_auth::issuer::RefreshStoreError>>,
) -> Duration {
    let start = Instant::now();
    let r = tokio::time::timeout(Duration::from_secs(5), op)
        .await
        .unwrap_or_else(|_| panic!("{what}: hung"));
    let took = start.elapsed();
    assert!(r.is_err(), "{what}: answered {r:?} with redis unavailable");
    assert!(took < FAIL_BOUND, "{what}: failed after {took:?}");
    took
}

/// An issuer replica: its own refresh store and revocation store, on one connection.
async fn replica(redis: &RedisServer) -> (TokenIssuer, AuthConfig) {
    let revoked = Arc::new(
        RedisRevocationStore::builder(redis.url())
            .timeout(TIMEOUT)
            .connect()
            .await
            .unwrap(),
    );
    let families = RedisRefreshStore::from_manager(revoked.connection_manager(), "tta:", TIMEOUT);
    let issuer = TokenIssuer::builder()
        .hmac(SECRET)
        .issuer("https://app.test")
        .audience("https://app.test/api")
        .refresh_store(families)
        .revocation(revoked)
        .build()
        .unwrap();
    let cfg = issuer.auth_config().build().unwrap();
    (issuer, cfg)
}

/// An issuer with this refresh store (default: memory) and no revocation store.
fn issuer(store: Option<RedisRefreshStore>) -> TokenIssuer {
    let b = TokenIssuer::builder()
        .hmac(SECRET)
        .issuer("https://app.test")
        .audience("https://app.test/api");
    match store {
        Some(s) => b.refresh_store(s),
        None => b,
    }
    .build()
    .unwrap()
}

fn claim(token: &str, name: &str) -> Value {
    let seg = token.split('.').nth(1).unwrap();
    let claims: Map<String, Value> =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(seg).unwrap()).unwrap();
    claims[name].clone()
}

// ---------------------------------------------------------------------------------------------
// Replicas.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_family_started_on_a_rotated_on_b_and_c_is_revoked_everywhere_by_a_replay_on_a() {
    let redis = RedisServer::start();
    let (a, b, c) = (
        store(&redis).await,
        store(&redis).await,
        store(&redis).await,
    );
    let n = now();
    a.start("fam", &generation(1, n + 3600, n + 600), n)
        .await
        .unwrap();
    let rotated = b
        .rotate("fam", "r1", &generation(2, n + 3601, n + 601), n)
        .await;
    assert_eq!(rotated.unwrap(), Rotation::Rotated);
    let rotated = c
        .rotate("fam", "r2", &generation(3, n + 3602, n + 602), n)
        .await;
    assert_eq!(rotated.unwrap(), Rotation::Rotated);
    assert_eq!(
        redis.query::<u32>(redis::cmd("HGET").arg("tta:rf:fam").arg("gen")),
        3
    );

    // The first refresh token, replayed on A: reuse; the three access tokens are live.
    let Rotation::Reused(live) = a
        .rotate("fam", "r1", &generation(9, n + 3603, n + 603), n + 1)
        .await
        .unwrap()
    else {
        panic!("a replay must be reuse");
    };
    assert_eq!(jtis(&live), ["a1", "a2", "a3"]);
    assert!(live.contains(&IssuedToken::new("a3", n + 602)));

    // The family is revoked on every replica, the current token too.
    for s in [&a, &b, &c] {
        let r = s
            .rotate("fam", "r3", &generation(4, n + 3604, n + 604), n + 2)
            .await;
        assert_eq!(r.unwrap(), Rotation::Revoked);
    }
    // Already revoked: revoke returns nothing more; the key stays until the family's end.
    assert_eq!(b.revoke("fam", n + 2).await.unwrap(), []);
    assert_eq!(
        redis.query::<String>(redis::cmd("HGET").arg("tta:rf:fam").arg("rev")),
        "1"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_on_one_replica_returns_the_live_access_tokens_and_ends_the_family() {
    let redis = RedisServer::start();
    let (a, b) = (store(&redis).await, store(&redis).await);
    let n = now();
    a.start("f", &generation(1, n + 3600, n + 10), n)
        .await
        .unwrap();
    let r = a
        .rotate("f", "r1", &generation(2, n + 3600, n + 20), n)
        .await;
    assert_eq!(r.unwrap(), Rotation::Rotated);
    // At n + 15, a1 has expired: only a2 may still be live.
    assert_eq!(
        b.revoke("f", n + 15).await.unwrap(),
        [IssuedToken::new("a2", n + 20)]
    );
    let r = a
        .rotate("f", "r2", &generation(3, n + 3600, n + 30), n + 16)
        .await;
    assert_eq!(r.unwrap(), Rotation::Revoked);
    // At most 64 access tokens are tracked per family (the newest), as in memory.
    let memory = MemoryRefreshStore::new();
    let first = generation(0, n + 3600, n + 600);
    a.start("long", &first, n).await.unwrap();
    memory.start("long", &first, n).await.unwrap();
    for i in 1..70 {
        let g = generation(i, n + 3600, n + 600);
        let presented = format!("r{}", i - 1);
        let r = b.rotate("long", &presented, &g, n).await.unwrap();
        assert_eq!(r, Rotation::Rotated);
        memory.rotate("long", &presented, &g, n).await.unwrap();
    }
    let live = a.revoke("long", n).await.unwrap();
    assert_eq!(live.len(), 64);
    assert_eq!(live, memory.revoke("long", n).await.unwrap());
    assert_eq!(live[0].jti, "a6");
    // Unknown families: nothing to revoke, and no key is made.
    assert_eq!(a.revoke("nobody", n).await.unwrap(), []);
    assert_eq!(
        redis.query::<i64>(redis::cmd("EXISTS").arg("tta:rf:nobody")),
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_rotations_of_one_token_on_three_replicas_rotate_exactly_once() {
    // The contract, as the memory store's: the scripts run one at a time, so of three
    // rotations of the current token the first one run rotates, the second finds an older
    // token in a live family (reuse: it revokes the family and returns its access tokens,
    // the winner's new one included) and the third finds the family revoked.
    let redis = RedisServer::start();
    let stores = Arc::new([
        store(&redis).await,
        store(&redis).await,
        store(&redis).await,
    ]);
    let n = now();
    let start = Instant::now();
    for round in 0..50 {
        let family = format!("race-{round}");
        stores[0]
            .start(&family, &generation(0, n + 3600, n + 600), n)
            .await
            .unwrap();
        let tasks: Vec<_> = (0..3u32)
            .map(|i| {
                let (stores, family) = (stores.clone(), family.clone());
                tokio::spawn(async move {
                    let next = generation(i + 1, n + 3600, n + 600);
                    let r = stores[i as usize].rotate(&family, "r0", &next, n).await;
                    (i + 1, r.unwrap())
                })
            })
            .collect();
        let mut outcomes = Vec::new();
        for t in tasks {
            outcomes.push(t.await.unwrap());
        }
        let winners: Vec<u32> = outcomes
            .iter()
            .filter(|(_, r)| *r == Rotation::Rotated)
            .map(|(i, _)| *i)
            .collect();
        let reused: Vec<&Vec<IssuedToken>> = outcomes
            .iter()
            .filter_map(|(_, r)| match r {
                Rotation::Reused(live) => Some(live),
                _ => None,
            })
            .collect();
        let revoked = outcomes
            .iter()
            .filter(|(_, r)| *r == Rotation::Revoked)
            .count();
        assert_eq!(winners.len(), 1, "round {round}: {outcomes:?}");
        assert_eq!(reused.len(), 1, "round {round}: {outcomes:?}");
        assert_eq!(revoked, 1, "round {round}: {outcomes:?}");
        let winner_access = format!("a{}", winners[0]);
        assert_eq!(jtis(reused[0]), ["a0", winner_access.as_str()]);
        // The winner's new refresh token is refused: the family is revoked.
        let r = stores[1]
            .rotate(
                &family,
                &format!("r{}", winners[0]),
                &generation(7, n + 3600, n + 600),
                n,
            )
            .await;
        assert_eq!(r.unwrap(), Rotation::Revoked, "round {round}");
    }
    eprintln!(
        "redis refresh race: 50 rounds x 3 concurrent rotations in {:?}",
        start.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_store_answers_as_the_memory_store_on_a_random_sequence() {
    let redis = RedisServer::start();
    let (a, b) = (store(&redis).await, store(&redis).await);
    let memory = MemoryRefreshStore::new();
    let base = now();
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move |m: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % m
    };
    // Families f0..f4; the clock moves forward; refresh tokens live 300 to 1800 s and
    // access tokens 100 s, so families and access tokens expire within the run; jtis
    // r<i>/a<i>; the token presented is mostly the family's current one (as the memory store
    // last rotated it), else an older or unknown one.
    let mut clock = base;
    let mut seen = [0u32; 3];
    let mut current = std::collections::HashMap::new();
    for i in 0..800u32 {
        clock += i64::try_from(next(20)).unwrap();
        let family = format!("f{}", next(5));
        let g = generation(
            i,
            clock + 300 + i64::try_from(next(1500)).unwrap(),
            clock + 100,
        );
        let replica = if next(2) == 0 { &a } else { &b };
        match next(20) {
            0..=2 => {
                memory.start(&family, &g, clock).await.unwrap();
                replica.start(&family, &g, clock).await.unwrap();
                current.insert(family, i);
            }
            3 => {
                let (m, r) = (
                    memory.revoke(&family, clock).await,
                    replica.revoke(&family, clock).await,
                );
                assert_eq!(jtis(&m.unwrap()), jtis(&r.unwrap()), "revoke #{i}");
            }
            k => {
                let cur = current.get(&family).copied().unwrap_or(i);
                let presented = if k < 16 {
                    format!("r{cur}")
                } else {
                    format!("r{}", u64::from(i).saturating_sub(next(40)))
                };
                let m = memory.rotate(&family, &presented, &g, clock).await.unwrap();
                let r = replica
                    .rotate(&family, &presented, &g, clock)
                    .await
                    .unwrap();
                if m == Rotation::Rotated {
                    current.insert(family.clone(), i);
                }
                seen[match m {
                    Rotation::Rotated => 0,
                    Rotation::Reused(_) => 1,
                    _ => 2,
                }] += 1;
                match (&m, &r) {
                    (Rotation::Reused(x), Rotation::Reused(y)) => {
                        assert_eq!(jtis(x), jtis(y), "rotate #{i}");
                    }
                    _ => assert_eq!(m, r, "rotate #{i}"),
                }
            }
        }
    }
    eprintln!("memory vs redis, rotations: {seen:?} (rotated, reused, revoked)");
    // Every answer occurred.
    assert!(seen.iter().all(|&n| n >= 10), "{seen:?}");
}

// ---------------------------------------------------------------------------------------------
// Expiry.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_family_key_expires_with_the_current_refresh_token() {
    let redis = RedisServer::start();
    let s = store(&redis).await;
    let n = now();
    let key = s.family_key("fam");
    s.start("fam", &generation(1, n + 1000, n + 60), n)
        .await
        .unwrap();
    let expiretime = || redis.query::<i64>(redis::cmd("PEXPIRETIME").arg(&key));
    assert_eq!(expiretime(), (n + 1000) * 1000);
    // The layout.
    let fields: std::collections::HashMap<String, String> =
        redis.query(redis::cmd("HGETALL").arg(&key));
    assert_eq!(fields["cur"], "r1");
    assert_eq!(fields["exp"], (n + 1000).to_string());
    assert_eq!(fields["gen"], "1");
    assert_eq!(fields["rev"], "0");
    let acc: Value = serde_json::from_str(&fields["acc"]).unwrap();
    assert_eq!(acc, serde_json::json!([["a1", (n + 60).to_string()]]));
    // A rotation moves the expiry to the new refresh token's.
    let r = s
        .rotate("fam", "r1", &generation(2, n + 2000, n + 60), n)
        .await;
    assert_eq!(r.unwrap(), Rotation::Rotated);
    assert_eq!(expiretime(), (n + 2000) * 1000);
    // Revoking keeps it until then: the family must stay revoked as long as its tokens verify.
    s.revoke("fam", n).await.unwrap();
    assert_eq!(expiretime(), (n + 2000) * 1000);

    // A family whose refresh token expires in a second is gone from Redis after it.
    let n = now();
    s.start("short", &generation(1, n + 1, n + 1), n)
        .await
        .unwrap();
    let ttl: i64 = redis.query(redis::cmd("PTTL").arg(s.family_key("short")));
    assert!((1..=1000).contains(&ttl), "PTTL {ttl}");
    let start = Instant::now();
    while redis.query::<i64>(redis::cmd("EXISTS").arg(s.family_key("short"))) == 1 {
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "the key did not expire"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = s
        .rotate("short", "r1", &generation(2, n + 100, n + 10), n)
        .await;
    assert_eq!(r.unwrap(), Rotation::Revoked);
}

// ---------------------------------------------------------------------------------------------
// Faults.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_every_operation_fails_within_the_timeout_then_recovers_after_a_restart() {
    let mut redis = RedisServer::start();
    let s = store(&redis).await;
    // An issuer with no revocation store: its refresh errors come from the refresh store.
    let issuer = issuer(Some(store(&redis).await));
    let n = now();
    s.start("fam", &generation(1, n + 3600, n + 600), n)
        .await
        .unwrap();
    let pair = issuer.issue(Login::new("alice")).await.unwrap();

    redis.kill();
    let mut slowest = Duration::ZERO;
    for _ in 0..5 {
        let g = generation(2, n + 3600, n + 600);
        slowest = slowest
            .max(fails_fast("start", s.start("other", &g, n)).await)
            .max(fails_fast("rotate", s.rotate("fam", "r1", &g, n)).await)
            .max(fails_fast("revoke", s.revoke("fam", n)).await);
    }
    // Through the issuer: 503 revocation_unavailable, never a new pair.
    let start = Instant::now();
    let err = issuer.refresh(&pair.refresh_token).await.unwrap_err();
    assert!(matches!(err, RefreshError::Store(_)), "{err:?}");
    assert_eq!(err.reason(), Reason::RevocationUnavailable);
    assert_eq!(err.status(), http::StatusCode::SERVICE_UNAVAILABLE);
    assert!(start.elapsed() < FAIL_BOUND);
    assert!(issuer.issue(Login::new("bob")).await.is_err());
    eprintln!("redis down: the slowest failed operation took {slowest:?}");

    // Same port, empty: the same store works again (the connection manager reconnects).
    redis.restart();
    let start = Instant::now();
    loop {
        match s
            .rotate("fam", "r1", &generation(2, n + 3600, n + 600), n)
            .await
        {
            // Redis restarted empty: the family is unknown.
            Ok(r) => {
                assert_eq!(r, Rotation::Revoked);
                break;
            }
            Err(_) => assert!(
                start.elapsed() < Duration::from_secs(5),
                "the store did not reconnect"
            ),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!(
        "redis restarted: the store answered again after {:?}",
        start.elapsed()
    );
    s.start("fam2", &generation(1, n + 3600, n + 600), n)
        .await
        .unwrap();
    let r = s
        .rotate("fam2", "r1", &generation(2, n + 3600, n + 600), n)
        .await;
    assert_eq!(r.unwrap(), Rotation::Rotated);
    // The issuer's family was lost with Redis's data: refresh answers revoked (log in again).
    let mut answered = None;
    for _ in 0..250 {
        match issuer.refresh(&pair.refresh_token).await {
            Err(RefreshError::Store(_)) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => {
                answered = Some(other);
                break;
            }
        }
    }
    assert!(
        matches!(answered, Some(Err(RefreshError::Revoked))),
        "{answered:?}"
    );
    let fresh = issuer.issue(Login::new("alice")).await.unwrap();
    issuer.refresh(&fresh.refresh_token).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_or_frozen_redis_gives_a_timeout_error_never_an_answer() {
    let redis = RedisServer::start();
    let s = store(&redis).await;
    let n = now();
    s.start("fam", &generation(1, n + 3600, n + 600), n)
        .await
        .unwrap();

    // Slow: DEBUG SLEEP 1 from another connection blocks Redis for a second.
    let url = redis.url();
    let sleeper = std::thread::spawn(move || {
        let mut c = redis::Client::open(url).unwrap().get_connection().unwrap();
        redis::cmd("DEBUG")
            .arg("SLEEP")
            .arg(1)
            .query::<()>(&mut c)
            .unwrap();
    });
    std::thread::sleep(Duration::from_millis(100));
    let g = generation(2, n + 3600, n + 600);
    let took = fails_fast("rotate (slow)", s.rotate("fam", "r1", &g, n)).await;
    assert!(took >= TIMEOUT, "failed before the timeout: {took:?}");
    sleeper.join().unwrap();
    eprintln!("slow redis: rotate failed after {took:?}");
    // The script of the timed-out rotation may still have run once Redis woke up: r1 is
    // then used up (fail-safe). Either way no second rotation of r1 is accepted.
    let r = s
        .rotate("fam", "r1", &generation(3, n + 3600, n + 600), n)
        .await;
    assert!(matches!(
        r.unwrap(),
        Rotation::Reused(_) | Rotation::Rotated
    ));

    // Frozen (SIGSTOP: connections accepted, nothing answers).
    s.start("fam2", &generation(1, n + 3600, n + 600), n)
        .await
        .unwrap();
    redis.signal("-STOP");
    let g = generation(2, n + 3600, n + 600);
    fails_fast("rotate (frozen)", s.rotate("fam2", "r1", &g, n)).await;
    fails_fast("revoke (frozen)", s.revoke("fam2", n)).await;
    fails_fast("start (frozen)", s.start("fam3", &g, n)).await;
    redis.signal("-CONT");
    // Thawed: the queued commands ran in order (the rotation, then the revocation).
    let r = s
        .rotate("fam2", "r2", &generation(3, n + 3600, n + 600), n)
        .await;
    assert_eq!(r.unwrap(), Rotation::Revoked);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_flushall_families_are_unknown_and_refresh_answers_revoked() {
    // Fail-safe: a family Redis forgot is unknown, which is `Revoked` (the user logs in
    // again), never a rotation.
    let redis = RedisServer::start();
    let (a, b) = (store(&redis).await, store(&redis).await);
    let (issuer, _) = replica(&redis).await;
    let n = now();
    a.start("fam", &generation(1, n + 3600, n + 600), n)
        .await
        .unwrap();
    let pair = issuer.issue(Login::new("alice")).await.unwrap();
    redis.query::<()>(&mut redis::cmd("FLUSHALL"));
    let r = b
        .rotate("fam", "r1", &generation(2, n + 3600, n + 600), n)
        .await;
    assert_eq!(r.unwrap(), Rotation::Revoked);
    assert_eq!(a.revoke("fam", n).await.unwrap(), []);
    let err = issuer.refresh(&pair.refresh_token).await.unwrap_err();
    assert!(matches!(err, RefreshError::Revoked), "{err:?}");
    assert_eq!(err.reason(), Reason::Revoked);
}

// ---------------------------------------------------------------------------------------------
// Through `TokenIssuer`.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issuer_replicas_share_sessions_and_a_replay_revokes_the_session_and_its_access_tokens() {
    let redis = RedisServer::start();
    let (a, cfg_a) = replica(&redis).await;
    let (b, cfg_b) = replica(&redis).await;
    let (c, cfg_c) = replica(&redis).await;

    let login = a
        .issue(Login::new("alice").scope("orders:read"))
        .await
        .unwrap();
    let on_b = b.refresh(&login.refresh_token).await.unwrap();
    let on_c = c.refresh(&on_b.refresh_token).await.unwrap();
    assert_eq!(on_c.session_id, login.session_id);
    for cfg in [&cfg_a, &cfg_b, &cfg_c] {
        cfg.validate::<StandardClaims>(&on_c.access_token)
            .await
            .unwrap();
    }

    // The first refresh token again, on A: reuse, the session is revoked.
    let err = a.refresh(&login.refresh_token).await.unwrap_err();
    assert!(matches!(err, RefreshError::Reused), "{err:?}");
    let err = b.refresh(&on_c.refresh_token).await.unwrap_err();
    assert!(matches!(err, RefreshError::Revoked), "{err:?}");
    // Its access tokens were revoked through the Redis revocation store: every replica
    // refuses them (B and C learn it by pub/sub).
    let start = Instant::now();
    for cfg in [&cfg_a, &cfg_b, &cfg_c] {
        for token in [&login.access_token, &on_b.access_token, &on_c.access_token] {
            loop {
                match cfg.validate::<StandardClaims>(token).await {
                    Err(e) if e.reason() == Reason::Revoked => break,
                    other => {
                        assert!(other.is_ok(), "{other:?}");
                        assert!(start.elapsed() < Duration::from_secs(2), "not revoked");
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                }
            }
        }
    }
    let jti = claim(&on_c.access_token, "jti");
    let key = format!("tta:jti:{}", jti.as_str().unwrap());
    assert_eq!(redis.query::<i64>(redis::cmd("EXISTS").arg(key)), 1);

    // Logout on C of a session started on B ends it on A.
    let other = b.issue(Login::new("bob")).await.unwrap();
    c.logout(&other.access_token).await.unwrap();
    let err = a.refresh(&other.refresh_token).await.unwrap_err();
    assert!(matches!(err, RefreshError::Revoked), "{err:?}");
}

// ---------------------------------------------------------------------------------------------
// Latency (printed, not asserted).

async fn median_refresh(issuer: &TokenIssuer, n: usize) -> Duration {
    let mut pair = issuer.issue(Login::new("alice")).await.unwrap();
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        pair = issuer.refresh(&pair.refresh_token).await.unwrap();
        times.push(start.elapsed());
    }
    times.sort();
    times[n / 2]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measurement: run with --ignored --nocapture"]
async fn measure_refresh_latency_redis_vs_memory() {
    let redis = RedisServer::start();
    let memory = issuer(None);
    let with_redis = issuer(Some(store(&redis).await));
    // Warm up both, then alternate the runs.
    median_refresh(&memory, 50).await;
    median_refresh(&with_redis, 50).await;
    let (mut m, mut r) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        m.push(median_refresh(&memory, 200).await);
        r.push(median_refresh(&with_redis, 200).await);
    }
    // The store alone: one rotation script round trip.
    let s = store(&redis).await;
    let n = now();
    s.start("lat", &generation(0, n + 3600, n + 600), n)
        .await
        .unwrap();
    let mut rot = Vec::new();
    for i in 0..200u32 {
        let start = Instant::now();
        let g = generation(i + 1, n + 3600, n + 600);
        let r = s.rotate("lat", &format!("r{i}"), &g, n).await.unwrap();
        rot.push(start.elapsed());
        assert_eq!(r, Rotation::Rotated);
    }
    rot.sort();
    eprintln!(
        "median TokenIssuer::refresh over 200 (3 runs): memory {m:?}, redis {r:?}; \
         RedisRefreshStore::rotate alone: median {:?}, p90 {:?}",
        rot[100], rot[180]
    );
}
