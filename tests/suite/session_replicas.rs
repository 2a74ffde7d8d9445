//! Several replicas of `examples/session.rs` on one real Redis: the example itself, built and
//! started three times (`--redis URL --port 0`, one `SESSION_SECRET`), driven over HTTP on
//! 127.0.0.1 with cookies handled by hand.
//!
//! - a session started on A is refreshed on B, then on C; the first refresh token replayed on
//!   A revokes the session, and the access token from C is refused on A and B within 100 ms
//!   (pub/sub); a logout on B is seen by C within 100 ms; a replica started later (D) knows
//!   the revocations made before it started;
//! - one refresh token sent to A, B and C at once is rotated exactly once;
//! - Redis killed: refresh, login, logout and `/me` answer 503 within 1 s (fail closed), tokens
//!   known to be revoked stay refused; Redis restarted on the same port: login and refresh
//!   work again without restarting the replicas;
//! - Redis frozen (SIGSTOP): no request hangs past the stores' timeout.
//!
//! The propagation and recovery times are printed: `cargo test --all-features --test suite
//! session_replicas:: -- --nocapture`.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;

use crate::redis_revocation::RedisServer;

/// The bound asserted for a revocation made on one replica to be enforced by another.
const PROPAGATION_BOUND: Duration = Duration::from_millis(100);
/// The bound asserted for an answer while Redis is down or frozen (the example's stores wait
/// 200 ms; the rest is scheduling slack on a loaded 2-core machine).
const FAIL_BOUND: Duration = Duration::from_secs(1);
/// How long the replicas may take to work again once Redis is back.
const RECOVERY_BOUND: Duration = Duration::from_secs(5);
const ACCESS: &str = "access_token";
const REFRESH: &str = "refresh_token";
const LISTENING: &str = "tower-token-auth session example listening on ";

// ---------------------------------------------------------------------------------------------
// The replicas.

/// One process of the example, killed when dropped.
struct Replica {
    name: &'static str,
    child: Child,
    base: String,
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A random signing secret shared by the replicas of one test (64 hex digits).
fn secret() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).unwrap();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Starts one replica per name (all at once), each on a free port, and waits for the address
/// each one prints.
fn start_replicas(redis: &RedisServer, secret: &str, names: &[&'static str]) -> Vec<Replica> {
    let exe = crate::common::example_exe("session");
    let mut starting = Vec::new();
    for &name in names {
        let child = Command::new(&exe)
            .args(["--redis", &redis.url(), "--port", "0"])
            .env("SESSION_SECRET", secret)
            .env("RUST_LOG", "tower_token_auth=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the session example starts");
        // Owned from here on: killed even if this test panics.
        let mut replica = Replica {
            name,
            child,
            base: String::new(),
        };
        let (tx, rx) = std::sync::mpsc::channel();
        let stdout = replica.child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix(LISTENING) {
                    let _ = tx.send(url.to_owned());
                }
            }
        });
        // Drained all along so the logs never fill the pipe; the first lines are kept for the
        // failure message of a replica that does not come up.
        let stderr = replica.child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
            let mut kept = Vec::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if kept.len() < 200 {
                    kept.push(line);
                }
            }
            kept.join("\n")
        });
        starting.push((replica, rx, stderr));
    }
    let mut replicas = Vec::new();
    for (mut replica, rx, stderr) in starting {
        // Disconnected at once if the replica exits before listening.
        if let Ok(base) = rx.recv_timeout(Duration::from_secs(30)) {
            replica.base = base;
            replicas.push(replica);
            continue;
        }
        let _ = replica.child.kill();
        let status = replica.child.wait().ok();
        let stderr = stderr.join().unwrap_or_default();
        assert!(
            !stderr.contains("feature `redis`"),
            "the session example was built without the feature `redis`: run the tests with \
             --all-features (common::example_exe builds the examples with every feature only \
             then)"
        );
        panic!(
            "replica {} did not start ({status:?}):\n{stderr}",
            replica.name
        );
    }
    replicas
}

// ---------------------------------------------------------------------------------------------
// The client side.

/// A response as the tests look at it.
#[derive(Debug)]
struct Reply {
    status: StatusCode,
    /// `Retry-After`, if any.
    retry_after: Option<String>,
    /// The `Set-Cookie` values by name (an empty value clears the cookie).
    cookies: HashMap<String, String>,
    body: Value,
    took: Duration,
}

impl Reply {
    /// The problem's `reason`, or a login's `error`.
    fn reason(&self) -> Option<&str> {
        self.body["reason"]
            .as_str()
            .or_else(|| self.body["error"].as_str())
    }

    /// The session the reply's cookies set.
    fn session(&self) -> Session {
        assert_eq!(self.status, StatusCode::OK, "{self:?}");
        let cookie = |name: &str| {
            let v = self.cookies.get(name).cloned().unwrap_or_default();
            assert!(!v.is_empty(), "no {name} cookie: {self:?}");
            v
        };
        Session {
            access: cookie(ACCESS),
            refresh: cookie(REFRESH),
        }
    }

    fn assert(&self, status: StatusCode, reason: &str) {
        assert_eq!(
            (self.status, self.reason()),
            (status, Some(reason)),
            "{self:?}"
        );
    }

    /// 503 `revocation_unavailable` with `Retry-After`, within the bound, session cookies
    /// kept (a store that is down is worth a retry).
    fn assert_unavailable(&self, what: &str) {
        self.assert(StatusCode::SERVICE_UNAVAILABLE, "revocation_unavailable");
        assert!(
            self.retry_after.is_some(),
            "{what}: no Retry-After: {self:?}"
        );
        assert!(self.cookies.is_empty(), "{what}: cookies changed: {self:?}");
        assert!(
            self.took < FAIL_BOUND,
            "{what} took {:?} with Redis unavailable",
            self.took
        );
    }
}

/// The two cookies of a session.
#[derive(Clone, Debug)]
struct Session {
    access: String,
    refresh: String,
}

/// An HTTP client with no cookie store (the tests send the cookies by hand) and no proxy.
fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

impl Replica {
    async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        let start = Instant::now();
        let res = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("replica {}: {e}", self.name));
        let status = res.status();
        let retry_after = res
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .map(|v| v.to_str().unwrap().to_owned());
        let mut cookies = HashMap::new();
        for v in res.headers().get_all(reqwest::header::SET_COOKIE) {
            let first = v.to_str().unwrap().split(';').next().unwrap();
            let (name, value) = first.split_once('=').unwrap();
            cookies.insert(name.trim().to_owned(), value.trim().to_owned());
        }
        let body = res.bytes().await.unwrap();
        Reply {
            status,
            retry_after,
            cookies,
            body: serde_json::from_slice(&body).unwrap_or(Value::Null),
            took: start.elapsed(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn login(&self, http: &reqwest::Client) -> Reply {
        let req = http
            .post(self.url("/login"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("username=alice&password=wonderland");
        self.send(req).await
    }

    async fn refresh(&self, http: &reqwest::Client, refresh_token: &str) -> Reply {
        let req = http
            .post(self.url("/refresh"))
            .header("cookie", format!("{REFRESH}={refresh_token}"));
        self.send(req).await
    }

    async fn logout(&self, http: &reqwest::Client, access_token: &str) -> Reply {
        let req = http
            .post(self.url("/logout"))
            .header("cookie", format!("{ACCESS}={access_token}"));
        self.send(req).await
    }

    async fn me(&self, http: &reqwest::Client, access_token: &str) -> Reply {
        let req = http
            .get(self.url("/me"))
            .header("cookie", format!("{ACCESS}={access_token}"));
        self.send(req).await
    }

    /// Asks `/me` with `access_token` until it is refused as `revoked`, which must be within
    /// `PROPAGATION_BOUND` of `since`: how long after `since` the first refusal came, and
    /// how many questions got 200 before it.
    async fn refused_within_bound(
        &self,
        http: &reqwest::Client,
        access_token: &str,
        since: Instant,
    ) -> Refused {
        let mut accepted = 0;
        loop {
            let reply = self.me(http, access_token).await;
            let elapsed = since.elapsed();
            if reply.status == StatusCode::UNAUTHORIZED {
                reply.assert(StatusCode::UNAUTHORIZED, "revoked");
                return Refused { elapsed, accepted };
            }
            accepted += 1;
            assert_eq!(reply.status, StatusCode::OK, "{reply:?}");
            assert!(
                elapsed <= PROPAGATION_BOUND,
                "replica {} still accepts the revoked access token {elapsed:?} after the \
                 revocation",
                self.name
            );
        }
    }
}

/// When a replica first refused a revoked token.
struct Refused {
    elapsed: Duration,
    /// Questions answered 200 before.
    accepted: u32,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} ({} accepted before)", self.elapsed, self.accepted)
    }
}

/// The `/me` answer for a session's access token: 200 with its claims.
async fn assert_accepted(replica: &Replica, http: &reqwest::Client, access_token: &str) {
    let reply = replica.me(http, access_token).await;
    assert_eq!(reply.status, StatusCode::OK, "{}: {reply:?}", replica.name);
    assert_eq!(reply.body["sub"], "alice", "{reply:?}");
}

// ---------------------------------------------------------------------------------------------
// The tests.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_share_rotation_reuse_detection_and_logout() {
    let started = Instant::now();
    let redis = RedisServer::start();
    let secret = secret();
    let replicas = start_replicas(&redis, &secret, &["A", "B", "C"]);
    let [a, b, c] = &replicas[..] else {
        unreachable!()
    };
    let http = http();

    // Log in on A, refresh on B, refresh again on C with the token from B.
    let first = a.login(&http).await.session();
    assert_accepted(b, &http, &first.access).await;
    let from_b = b.refresh(&http, &first.refresh).await.session();
    let from_c = c.refresh(&http, &from_b.refresh).await.session();
    for r in &replicas {
        assert_accepted(r, &http, &from_c.access).await;
    }

    // The first refresh token, replayed on A: reuse, the whole session is revoked.
    let replay = a.refresh(&http, &first.refresh).await;
    let revoked_at = Instant::now();
    replay.assert(StatusCode::UNAUTHORIZED, "revoked");
    assert_eq!(replay.cookies.get(REFRESH).map(String::as_str), Some(""));
    // The access token from C: refused on A (it revoked it) and on B (told by pub/sub).
    let on_a = a
        .refused_within_bound(&http, &from_c.access, revoked_at)
        .await;
    let on_b = b
        .refused_within_bound(&http, &from_c.access, revoked_at)
        .await;
    let on_c = c
        .refused_within_bound(&http, &from_c.access, revoked_at)
        .await;
    eprintln!(
        "replay on A → C's access token refused on A after {on_a}, on B after {on_b}, on C \
         after {on_c} (from A's 401)"
    );
    // Every token of the session: B's access token, and the newest refresh token.
    c.me(&http, &from_b.access)
        .await
        .assert(StatusCode::UNAUTHORIZED, "revoked");
    b.refresh(&http, &from_c.refresh)
        .await
        .assert(StatusCode::UNAUTHORIZED, "revoked");

    // A new login (on C), logged out on B: seen by C.
    let second = c.login(&http).await.session();
    assert_accepted(c, &http, &second.access).await;
    let logout = b.logout(&http, &second.access).await;
    let logged_out_at = Instant::now();
    assert_eq!(logout.status, StatusCode::NO_CONTENT, "{logout:?}");
    assert_eq!(logout.cookies.get(ACCESS).map(String::as_str), Some(""));
    let on_c = c
        .refused_within_bound(&http, &second.access, logged_out_at)
        .await;
    let on_a = a
        .refused_within_bound(&http, &second.access, logged_out_at)
        .await;
    eprintln!("logout on B → refused on C after {on_c}, on A after {on_a} (from B's 204)");
    a.refresh(&http, &second.refresh)
        .await
        .assert(StatusCode::UNAUTHORIZED, "revoked");

    // A replica started now knows what was revoked before it started (it loads them from
    // Redis), and serves the sessions of the others.
    let third = b.login(&http).await.session();
    let late = start_replicas(&redis, &secret, &["D"]);
    let d = &late[0];
    d.me(&http, &from_c.access)
        .await
        .assert(StatusCode::UNAUTHORIZED, "revoked");
    d.me(&http, &second.access)
        .await
        .assert(StatusCode::UNAUTHORIZED, "revoked");
    assert_accepted(d, &http, &third.access).await;
    let from_d = d.refresh(&http, &third.refresh).await.session();
    assert_accepted(a, &http, &from_d.access).await;
    // ...and takes part in reuse detection.
    let replay = d.refresh(&http, &third.refresh).await;
    let revoked_at = Instant::now();
    replay.assert(StatusCode::UNAUTHORIZED, "revoked");
    let on_a = a
        .refused_within_bound(&http, &from_d.access, revoked_at)
        .await;
    eprintln!(
        "late replica D: replay on D → refused on A after {on_a}; test took {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_refresh_token_sent_to_three_replicas_at_once_is_rotated_exactly_once() {
    let started = Instant::now();
    let redis = RedisServer::start();
    let replicas = start_replicas(&redis, &secret(), &["A", "B", "C"]);
    let [a, b, c] = &replicas[..] else {
        unreachable!()
    };
    let http = http();
    const ROUNDS: usize = 10;
    for round in 0..ROUNDS {
        let session = replicas[round % 3].login(&http).await.session();
        let (ra, rb, rc) = tokio::join!(
            a.refresh(&http, &session.refresh),
            b.refresh(&http, &session.refresh),
            c.refresh(&http, &session.refresh),
        );
        let replies = [&ra, &rb, &rc];
        let winners: Vec<&&Reply> = replies
            .iter()
            .filter(|r| r.status == StatusCode::OK)
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: {replies:?}");
        for r in replies.iter().filter(|r| r.status != StatusCode::OK) {
            r.assert(StatusCode::UNAUTHORIZED, "revoked");
        }
        // The losers' tokens were used up by the winner: to the store, one of them is a reuse,
        // which revokes the session, the winner's new tokens included (the store cannot tell
        // a double submit from a stolen token). Its access token is refused everywhere.
        let winner = winners[0].session();
        let since = Instant::now();
        for r in &replicas {
            r.refused_within_bound(&http, &winner.access, since).await;
        }
        b.refresh(&http, &winner.refresh)
            .await
            .assert(StatusCode::UNAUTHORIZED, "revoked");
    }
    eprintln!(
        "{ROUNDS} rounds of 3 concurrent refreshes: one rotation each; test took {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_fails_closed_then_the_replicas_recover_when_it_restarts() {
    let started = Instant::now();
    let mut redis = RedisServer::start();
    let replicas = start_replicas(&redis, &secret(), &["A", "B", "C"]);
    let [a, b, c] = &replicas[..] else {
        unreachable!()
    };
    let http = http();
    let live = a.login(&http).await.session();
    let to_log_out = a.login(&http).await.session();
    let revoked = a.login(&http).await.session();
    assert_eq!(
        b.logout(&http, &revoked.access).await.status,
        StatusCode::NO_CONTENT
    );
    c.refused_within_bound(&http, &revoked.access, Instant::now())
        .await;

    redis.kill();
    let killed_at = Instant::now();

    // A refresh: 503, cookies kept, no hang.
    a.refresh(&http, &live.refresh)
        .await
        .assert_unavailable("refresh on A");
    // `/me` with a valid access token: the layer's revocation policy is fail closed (the
    // default), so once the replica has noticed that its subscription is gone (at once for a
    // killed Redis: the socket closes) it cannot answer from its cache and must ask Redis,
    // which fails: 503 `revocation_unavailable`. Until then (a few ms at most) the complete
    // cache answers 200.
    let mut served_from_cache = 0;
    let noticed = loop {
        let reply = b.me(&http, &live.access).await;
        if reply.status == StatusCode::OK {
            served_from_cache += 1;
            assert!(
                killed_at.elapsed() < FAIL_BOUND,
                "B still answers /me from its cache {:?} after Redis died",
                killed_at.elapsed()
            );
            continue;
        }
        reply.assert_unavailable("/me on B");
        break killed_at.elapsed();
    };
    for r in &replicas {
        r.me(&http, &live.access)
            .await
            .assert_unavailable("/me on every replica");
        // A token known to be revoked stays refused: the cache answers, no Redis needed.
        r.me(&http, &revoked.access)
            .await
            .assert(StatusCode::UNAUTHORIZED, "revoked");
    }
    // Login and logout need Redis too.
    c.login(&http).await.assert_unavailable("login on C");
    b.logout(&http, &to_log_out.access)
        .await
        .assert_unavailable("logout on B");
    // Still down a while later: the same answers (the reconnection attempts do not block).
    tokio::time::sleep(Duration::from_millis(300)).await;
    a.refresh(&http, &live.refresh)
        .await
        .assert_unavailable("refresh on A, later");
    eprintln!(
        "redis killed: /me on B answered 503 after {noticed:?} ({served_from_cache} answers \
         from the cache before)"
    );

    // Same port, empty (no persistence). The replicas are not restarted.
    redis.restart();
    let restarted_at = Instant::now();
    let mut attempts = 0;
    let fresh = loop {
        attempts += 1;
        let login = a.login(&http).await;
        if login.status == StatusCode::OK {
            let session = login.session();
            let refreshed = b.refresh(&http, &session.refresh).await;
            if refreshed.status == StatusCode::OK {
                break refreshed.session();
            }
            refreshed.assert_unavailable("refresh on B while Redis comes back");
        } else {
            login.assert_unavailable("login on A while Redis comes back");
        }
        assert!(
            restarted_at.elapsed() < RECOVERY_BOUND,
            "the replicas do not work again {:?} after Redis restarted",
            restarted_at.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let recovered = restarted_at.elapsed();
    // Every replica serves the new session, and reuse detection works again across them.
    let deadline = Instant::now() + RECOVERY_BOUND;
    for r in &replicas {
        loop {
            let reply = r.me(&http, &fresh.access).await;
            if reply.status == StatusCode::OK {
                break;
            }
            reply.assert_unavailable("/me while Redis comes back");
            assert!(Instant::now() < deadline, "{}: {reply:?}", r.name);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let next = c.refresh(&http, &fresh.refresh).await.session();
    c.refresh(&http, &fresh.refresh)
        .await
        .assert(StatusCode::UNAUTHORIZED, "revoked");
    let since = Instant::now();
    for r in &replicas {
        r.refused_within_bound(&http, &next.access, since).await;
    }
    // Redis restarted empty: the sessions it held are gone (refresh answers revoked: log in
    // again); the revocation the replicas had cached is still enforced by them.
    a.refresh(&http, &live.refresh)
        .await
        .assert(StatusCode::UNAUTHORIZED, "revoked");
    c.me(&http, &revoked.access)
        .await
        .assert(StatusCode::UNAUTHORIZED, "revoked");
    eprintln!(
        "redis restarted: login on A + refresh on B worked after {recovered:?} ({attempts} \
         attempts); test took {:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_redis_never_holds_a_request_past_the_timeout() {
    let started = Instant::now();
    let redis = RedisServer::start();
    let replicas = start_replicas(&redis, &secret(), &["A", "B", "C"]);
    let [a, b, c] = &replicas[..] else {
        unreachable!()
    };
    let http = http();
    let live = a.login(&http).await.session();

    // SIGSTOP: connections stay open, nothing answers.
    redis.freeze();
    let frozen_at = Instant::now();
    b.refresh(&http, &live.refresh)
        .await
        .assert_unavailable("refresh on B");
    c.login(&http).await.assert_unavailable("login on C");
    // `/me` is answered from the cache while the subscription looks alive; once its
    // heartbeat (1 s) goes unanswered (1 s more) the replica asks Redis: 503 within the
    // timeout. Never a hang.
    let mut from_cache = 0;
    let noticed = loop {
        let reply = a.me(&http, &live.access).await;
        assert!(reply.took < FAIL_BOUND, "/me took {:?}", reply.took);
        if reply.status == StatusCode::OK {
            from_cache += 1;
            assert!(
                frozen_at.elapsed() < Duration::from_secs(4),
                "A answers /me from its cache {:?} after Redis froze",
                frozen_at.elapsed()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        reply.assert_unavailable("/me on A");
        break frozen_at.elapsed();
    };

    redis.thaw();
    let thawed_at = Instant::now();
    let fresh = loop {
        let login = c.login(&http).await;
        if login.status == StatusCode::OK {
            break login.session();
        }
        login.assert_unavailable("login on C after thawing");
        assert!(thawed_at.elapsed() < RECOVERY_BOUND, "{login:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    b.refresh(&http, &fresh.refresh).await.session();
    eprintln!(
        "redis frozen: /me on A answered from the cache {from_cache} times, then 503 after \
         {noticed:?}; after thawing, login worked after {:?}; test took {:?}",
        thawed_at.elapsed(),
        started.elapsed()
    );
}
