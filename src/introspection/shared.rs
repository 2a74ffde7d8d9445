//! Introspection answers shared by every instance through Redis (feature `redis`, optional:
//! the local cache already bounds the load on the endpoint). Keyed by the same HMAC of the
//! token as the local cache, never the token: give every instance the same
//! [`hash_secret`](super::Introspection::hash_secret) so they name a token alike.

use std::time::Duration;

use serde_json::{json, Value};

use super::state::Answer;

/// Where introspection answers are shared: Redis keys `<prefix>intro:<hmac>`, each expiring
/// when the answer may no longer be used (the same bounds as the local cache). Give it to
/// [`Introspection::share_answers`](super::Introspection::share_answers).
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use tower_token_auth::introspection::{Introspection, RedisAnswers};
///
/// let shared = RedisAnswers::connect("redis://127.0.0.1:6379").await?;
/// let introspection = Introspection::discover()
///     .client_secret_basic("api", "s3cret")
///     .hash_secret([7u8; 32]) // the same on every instance
///     .share_answers(shared);
/// # let _ = introspection; Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisAnswers {
    conn: redis::aio::ConnectionManager,
    prefix: String,
    timeout: Duration,
}

impl std::fmt::Debug for RedisAnswers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisAnswers")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisAnswers {
    /// Connects to Redis at `url` (prefix `tta:`, 200 ms per command), waiting at most 5 s.
    ///
    /// # Errors
    ///
    /// The URL is invalid or Redis cannot be reached within 5 s, as a sentence.
    pub async fn connect(url: &str) -> Result<RedisAnswers, String> {
        let client = redis::Client::open(url).map_err(|e| format!("invalid redis URL: {e}"))?;
        let conn = crate::revocation::redis::connect_manager(
            &client,
            Duration::from_secs(5),
            Duration::from_millis(200),
        )
        .await?;
        Ok(RedisAnswers::with_connection(conn, "tta:"))
    }

    /// On a connection the process already has (one for all of the crate's Redis stores).
    pub fn with_connection(conn: redis::aio::ConnectionManager, prefix: impl Into<String>) -> Self {
        RedisAnswers {
            conn,
            prefix: prefix.into(),
            timeout: Duration::from_millis(200),
        }
    }

    /// The bound on one Redis command (default 200 ms); past it, the answer is not shared
    /// (the endpoint is asked instead).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    fn key(&self, digest: &[u8; 32]) -> String {
        let mut key = format!("{}intro:", self.prefix);
        for b in digest {
            key.push_str(&format!("{b:02x}"));
        }
        key
    }

    /// The shared answer, if another instance stored one still usable at `now`. Failures
    /// (Redis down, slow, garbage) are no answer: the endpoint is asked.
    pub(super) async fn get(&self, digest: &[u8; 32], now: i64) -> Option<(Answer, i64)> {
        let mut conn = self.conn.clone();
        let cmd = redis::cmd("GET").arg(self.key(digest)).clone();
        let text: Option<String> = tokio::time::timeout(self.timeout, cmd.query_async(&mut conn))
            .await
            .ok()?
            .ok()?;
        let v: Value = serde_json::from_str(&text?).ok()?;
        let until = v.get("u")?.as_i64()?;
        if until <= now {
            return None;
        }
        let answer = match v.get("a")?.as_bool()? {
            false => Answer::Inactive,
            true => Answer::Active {
                claims: v.get("c")?.as_str()?.into(),
                exp: v.get("e").and_then(Value::as_i64),
            },
        };
        Some((answer, until))
    }

    /// Shares an answer until `until` (best effort: a failure only means another instance
    /// will ask the endpoint).
    pub(super) async fn put(&self, digest: &[u8; 32], answer: &Answer, until: i64) {
        let v = match answer {
            Answer::Inactive => json!({ "a": false, "u": until }),
            Answer::Active { claims, exp } => {
                json!({ "a": true, "c": &**claims, "e": exp, "u": until })
            }
        };
        let mut conn = self.conn.clone();
        let cmd = redis::cmd("SET")
            .arg(self.key(digest))
            .arg(v.to_string())
            .arg("EXAT")
            .arg(until)
            .clone();
        let set = tokio::time::timeout(self.timeout, cmd.query_async::<()>(&mut conn)).await;
        if !matches!(set, Ok(Ok(()))) {
            tracing::debug!(target: "tower_token_auth::introspection", "introspection answer not shared (Redis)");
        }
    }
}
