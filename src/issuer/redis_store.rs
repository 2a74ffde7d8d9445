//! [`RedisRefreshStore`]: refresh-token families shared by every instance through Redis
//! (features `issuer` and `redis`), so rotation and reuse detection hold across replicas.
//!
//! The data layout, the scripts' contract and the failure behaviour are documented on the
//! type (this module is private).

use std::fmt;
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{Client, Value};

use crate::revocation::redis::{DEFAULT_CONNECT_TIMEOUT, DEFAULT_PREFIX, DEFAULT_TIMEOUT};
use crate::revocation::BoxFuture;

use super::{Generation, IssuedToken, RefreshStore, RefreshStoreError, Rotation};

/// Access tokens tracked per family, at most (as the memory store).
const MAX_TRACKED_ACCESS: usize = 64;
/// The latest instant stored (9999-12-31T23:59:59Z).
const MAX_INSTANT: i64 = 253_402_300_799;
/// Backoff of the connection manager's reconnections.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// KEYS[1] = family key; ARGV = refresh jti, refresh exp, access jti, access exp.
const START_LUA: &str = r"
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'cur', ARGV[1], 'exp', ARGV[2], 'gen', '1', 'rev', '0',
  'acc', cjson.encode({{ARGV[3], ARGV[4]}}))
redis.call('EXPIREAT', KEYS[1], ARGV[2])
return 1
";

/// KEYS[1] = family key; ARGV = presented jti, now, next refresh jti, next refresh exp,
/// next access jti, next access exp, most access tokens tracked.
/// Returns {'rotated'}, {'reused', jti, exp, jti, exp, ...} or {'revoked'}.
const ROTATE_LUA: &str = r"
local f = redis.call('HMGET', KEYS[1], 'cur', 'exp', 'rev', 'acc')
local now = tonumber(ARGV[2])
if not f[1] or f[3] == '1' or tonumber(f[2]) <= now then
  return {'revoked'}
end
local live = {}
for _, a in ipairs(cjson.decode(f[4])) do
  if tonumber(a[2]) > now then live[#live + 1] = a end
end
if f[1] ~= ARGV[1] then
  redis.call('HSET', KEYS[1], 'rev', '1', 'acc', '[]')
  local out = {'reused'}
  for _, a in ipairs(live) do
    out[#out + 1] = a[1]
    out[#out + 1] = a[2]
  end
  return out
end
while #live >= tonumber(ARGV[7]) do table.remove(live, 1) end
live[#live + 1] = {ARGV[5], ARGV[6]}
redis.call('HSET', KEYS[1], 'cur', ARGV[3], 'exp', ARGV[4], 'acc', cjson.encode(live))
redis.call('HINCRBY', KEYS[1], 'gen', 1)
redis.call('EXPIREAT', KEYS[1], ARGV[4])
return {'rotated'}
";

/// KEYS[1] = family key; ARGV = now. Returns {jti, exp, jti, exp, ...}: the live access
/// tokens of a live family not yet revoked, else nothing.
const REVOKE_LUA: &str = r"
local f = redis.call('HMGET', KEYS[1], 'exp', 'rev', 'acc')
local now = tonumber(ARGV[1])
if not f[1] or tonumber(f[1]) <= now then return {} end
redis.call('HSET', KEYS[1], 'rev', '1', 'acc', '[]')
local out = {}
if f[2] == '1' then return out end
for _, a in ipairs(cjson.decode(f[3])) do
  if tonumber(a[2]) > now then
    out[#out + 1] = a[1]
    out[#out + 1] = a[2]
  end
end
return out
";

/// Options of a [`RedisRefreshStore`]; start with [`RedisRefreshStore::builder`].
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use tower_token_auth::issuer::RedisRefreshStore;
///
/// let store = RedisRefreshStore::builder("redis://127.0.0.1:6379/")
///     .prefix("myapp:")
///     .timeout(Duration::from_millis(100))
///     .connect_timeout(Duration::from_secs(2))
///     .connect()
///     .await?;
/// assert_eq!(store.family_key("abc"), "myapp:rf:abc");
/// # Ok(()) }
/// ```
#[derive(Clone)]
#[must_use = "call .connect().await"]
pub struct RedisRefreshStoreBuilder {
    url: String,
    prefix: String,
    timeout: Duration,
    connect_timeout: Duration,
}

impl fmt::Debug for RedisRefreshStoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may hold a password: not shown.
        f.debug_struct("RedisRefreshStoreBuilder")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .finish_non_exhaustive()
    }
}

impl RedisRefreshStoreBuilder {
    /// Prefix of every key (default `tta:`, as the revocation store: the keys do not
    /// collide). Instances that share sessions use the same prefix.
    ///
    /// ```
    /// use tower_token_auth::issuer::RedisRefreshStore;
    ///
    /// let builder = RedisRefreshStore::builder("redis://127.0.0.1/").prefix("orders:");
    /// # let _ = builder;
    /// ```
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The longest each operation waits for Redis (default 200 ms); past it the operation
    /// fails and the issuer answers 503.
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_token_auth::issuer::RedisRefreshStore;
    ///
    /// let builder = RedisRefreshStore::builder("redis://127.0.0.1/")
    ///     .timeout(Duration::from_millis(100));
    /// # let _ = builder;
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The longest [`connect`](Self::connect) waits for Redis (default 5 s).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tower_token_auth::issuer::RedisRefreshStore;
    ///
    /// let builder = RedisRefreshStore::builder("redis://127.0.0.1/")
    ///     .connect_timeout(Duration::from_secs(1));
    /// # let _ = builder;
    /// ```
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Connects (needs a tokio runtime). Fails if the URL is invalid or Redis cannot be
    /// reached within the connect timeout.
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use tower_token_auth::issuer::RedisRefreshStore;
    ///
    /// match RedisRefreshStore::builder("redis://127.0.0.1:6379/").connect().await {
    ///     Ok(store) => println!("{store:?}"),
    ///     Err(e) => eprintln!("{e}"), // "refresh store unavailable: redis: ..."
    /// }
    /// # }
    /// ```
    pub async fn connect(self) -> Result<RedisRefreshStore, RefreshStoreError> {
        let client = Client::open(self.url.as_str())
            .map_err(|e| RefreshStoreError(format!("invalid redis URL: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(
                self.connect_timeout
                    .min(self.timeout.max(Duration::from_secs(1))),
            ))
            .set_min_delay(MIN_BACKOFF)
            .set_max_delay(MAX_BACKOFF)
            .set_number_of_retries(3);
        let conn = match tokio::time::timeout(
            self.connect_timeout,
            ConnectionManager::new_with_config(client, config),
        )
        .await
        {
            Ok(Ok(conn)) => conn,
            Ok(Err(e)) => return Err(RefreshStoreError(format!("redis: {e}"))),
            Err(_) => {
                return Err(RefreshStoreError(format!(
                    "redis did not answer within {:?}",
                    self.connect_timeout
                )))
            }
        };
        Ok(RedisRefreshStore::from_manager(
            conn,
            self.prefix,
            self.timeout,
        ))
    }
}

/// Refresh-token families in Redis, shared by every instance of a service (see the
/// [module docs](crate::issuer) for rotation and reuse detection). Give it to
/// [`TokenIssuerBuilder::refresh_store`](super::TokenIssuerBuilder::refresh_store), and a
/// [`RedisRevocationStore`](crate::revocation::RedisRevocationStore) to
/// [`revocation`](super::TokenIssuerBuilder::revocation), so a reused family's access
/// tokens are refused by every instance too.
///
/// One process needs one Redis connection: build the revocation store first and share its
/// connection with [`from_manager`](Self::from_manager).
///
/// # What is kept in Redis
///
/// One hash per family, with the default prefix `tta:`:
///
/// | key | field | value |
/// | --- | --- | --- |
/// | `tta:rf:<family>` | `cur` | the `jti` of the current refresh token |
/// | | `exp` | its `exp`: the family lives until then (seconds) |
/// | | `gen` | the generation: 1 at login, +1 per rotation |
/// | | `rev` | `1` once the family is revoked, else `0` |
/// | | `acc` | JSON `[["<jti>","<exp>"], ...]`: the access tokens that may be live (at most 64) |
///
/// The key expires (`EXPIREAT`) at the current refresh token's `exp`, moved at each
/// rotation: Redis holds only live families, and a revoked family is kept, revoked, until
/// its refresh tokens cannot verify any more.
///
/// # Atomicity
///
/// Each operation is one Lua script (`EVAL`), which Redis runs alone: a rotation reads the
/// family, compares the presented `jti` with `cur` and writes the next generation with no
/// other command in between, whichever instance sent it. Of concurrent rotations with the
/// same current token, the first one run rotates, the next one finds an older token and
/// revokes the family (reuse), and any later one finds the family revoked. The scripts use
/// the issuer's `now` for every decision; only the key's expiry follows Redis's clock.
///
/// # Failure: closed
///
/// Every operation waits at most the [timeout](RedisRefreshStoreBuilder::timeout) (default
/// 200 ms) and then fails with a [`RefreshStoreError`]: the issuer answers 503
/// `revocation_unavailable` with `Retry-After`, never a new token pair. redis-rs's
/// `ConnectionManager` reconnects by itself after Redis restarts; nothing is retried, since
/// a rotation that timed out may have been applied: the client then still holds the old
/// refresh token, its next refresh counts as reuse and the session ends (the user logs in
/// again), which errs on the safe side.
///
/// Redis losing its data (restart without persistence, `FLUSHALL`) makes every family
/// unknown: refreshes answer `revoked` and users log in again. A failover to a replica that
/// missed the last writes can bring an older refresh token back as current; enable
/// persistence (AOF) and prefer a single primary if that matters.
///
/// # Example
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::sync::Arc;
/// use tower_token_auth::issuer::{Login, RedisRefreshStore, TokenIssuer};
/// use tower_token_auth::revocation::RedisRevocationStore;
///
/// let url = "redis://127.0.0.1:6379/";
/// let revoked = Arc::new(RedisRevocationStore::builder(url).connect().await?);
/// let families = RedisRefreshStore::builder(url).connect().await?;
/// let issuer = TokenIssuer::builder()
///     .hmac(b"a secret of at least thirty-two bytes!!")
///     .issuer("https://app.example")
///     .audience("https://app.example/api")
///     .refresh_store(families)
///     .revocation(revoked)
///     .build()?;
/// // Log in on this instance, refresh on any other one.
/// let pair = issuer.issue(Login::new("alice")).await?;
/// let next = issuer.refresh(&pair.refresh_token).await?;
/// # let _ = next; Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisRefreshStore {
    conn: ConnectionManager,
    prefix: String,
    timeout: Duration,
}

impl fmt::Debug for RedisRefreshStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisRefreshStore")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisRefreshStore {
    /// Options, then [`connect`](RedisRefreshStoreBuilder::connect). `url` is a redis-rs
    /// connection URL: `redis://[user:password@]host:port[/db]` or `redis+unix:///path`.
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use tower_token_auth::issuer::RedisRefreshStore;
    ///
    /// let store = RedisRefreshStore::builder("redis://127.0.0.1:6379/").connect().await?;
    /// # let _ = store; Ok(()) }
    /// ```
    pub fn builder(url: impl Into<String>) -> RedisRefreshStoreBuilder {
        RedisRefreshStoreBuilder {
            url: url.into(),
            prefix: DEFAULT_PREFIX.to_owned(),
            timeout: DEFAULT_TIMEOUT,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        }
    }

    /// A store on an existing redis-rs (1.x) connection, e.g. the one of the process's
    /// [`RedisRevocationStore`](crate::revocation::RedisRevocationStore)
    /// ([`connection_manager`](crate::revocation::RedisRevocationStore::connection_manager)):
    /// one multiplexed connection for both stores. No I/O.
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use tower_token_auth::issuer::RedisRefreshStore;
    /// use tower_token_auth::revocation::RedisRevocationStore;
    ///
    /// let revoked = RedisRevocationStore::builder("redis://127.0.0.1:6379/").connect().await?;
    /// let families = RedisRefreshStore::from_manager(
    ///     revoked.connection_manager(),
    ///     "tta:",
    ///     Duration::from_millis(200),
    /// );
    /// # let _ = families; Ok(()) }
    /// ```
    pub fn from_manager(
        conn: ConnectionManager,
        prefix: impl Into<String>,
        timeout: Duration,
    ) -> RedisRefreshStore {
        RedisRefreshStore {
            conn,
            prefix: prefix.into(),
            timeout,
        }
    }

    /// The Redis key of a family (`<prefix>rf:<family>`).
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use tower_token_auth::issuer::RedisRefreshStore;
    ///
    /// let store = RedisRefreshStore::builder("redis://127.0.0.1:6379/").connect().await?;
    /// assert_eq!(store.family_key("f1"), "tta:rf:f1");
    /// # Ok(()) }
    /// ```
    pub fn family_key(&self, family: &str) -> String {
        format!("{}rf:{family}", self.prefix)
    }

    /// The wait for Redis of each operation.
    ///
    /// ```no_run
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// use std::time::Duration;
    /// use tower_token_auth::issuer::RedisRefreshStore;
    ///
    /// let store = RedisRefreshStore::builder("redis://127.0.0.1:6379/").connect().await?;
    /// assert_eq!(store.timeout(), Duration::from_millis(200));
    /// # Ok(()) }
    /// ```
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Runs `script` on the family's key within the timeout; the answer as strings.
    async fn eval(
        &self,
        script: &str,
        family: &str,
        args: &[String],
    ) -> Result<Vec<String>, RefreshStoreError> {
        let mut cmd = ::redis::cmd("EVAL");
        cmd.arg(script)
            .arg(1)
            .arg(self.family_key(family))
            .arg(args);
        let mut conn = self.conn.clone();
        let value =
            match tokio::time::timeout(self.timeout, cmd.query_async::<Value>(&mut conn)).await {
                Ok(Ok(value)) => value,
                Ok(Err(e)) => return Err(RefreshStoreError(format!("redis: {e}"))),
                Err(_) => {
                    return Err(RefreshStoreError(format!(
                        "redis did not answer within {:?}",
                        self.timeout
                    )))
                }
            };
        if let Value::Int(_) = value {
            return Ok(Vec::new());
        }
        ::redis::from_redis_value(value)
            .map_err(|e| RefreshStoreError(format!("unexpected redis answer: {e}")))
    }
}

/// An instant as the scripts store it.
fn instant(t: i64) -> String {
    t.min(MAX_INSTANT).to_string()
}

/// `jti, exp, jti, exp, ...` → tokens.
fn tokens(flat: &[String]) -> Result<Vec<IssuedToken>, RefreshStoreError> {
    flat.chunks(2)
        .map(|pair| match pair {
            [jti, exp] => exp
                .parse()
                .map(|exp| IssuedToken::new(jti.clone(), exp))
                .map_err(|_| RefreshStoreError(format!("unexpected expiry in redis: {exp:?}"))),
            _ => Err(RefreshStoreError(
                "unexpected redis answer: odd list".into(),
            )),
        })
        .collect()
}

impl RefreshStore for RedisRefreshStore {
    fn start<'a>(
        &'a self,
        family: &'a str,
        first: &'a Generation,
        _now: i64,
    ) -> BoxFuture<'a, Result<(), RefreshStoreError>> {
        Box::pin(async move {
            let args = [
                first.refresh.jti.clone(),
                instant(first.refresh.expires_at),
                first.access.jti.clone(),
                instant(first.access.expires_at),
            ];
            self.eval(START_LUA, family, &args).await.map(drop)
        })
    }

    fn rotate<'a>(
        &'a self,
        family: &'a str,
        presented_jti: &'a str,
        next: &'a Generation,
        now: i64,
    ) -> BoxFuture<'a, Result<Rotation, RefreshStoreError>> {
        Box::pin(async move {
            let args = [
                presented_jti.to_owned(),
                now.to_string(),
                next.refresh.jti.clone(),
                instant(next.refresh.expires_at),
                next.access.jti.clone(),
                instant(next.access.expires_at),
                MAX_TRACKED_ACCESS.to_string(),
            ];
            let answer = self.eval(ROTATE_LUA, family, &args).await?;
            match answer.split_first() {
                Some((kind, [])) if kind == "rotated" => Ok(Rotation::Rotated),
                Some((kind, [])) if kind == "revoked" => Ok(Rotation::Revoked),
                Some((kind, rest)) if kind == "reused" => Ok(Rotation::Reused(tokens(rest)?)),
                _ => Err(RefreshStoreError(format!(
                    "unexpected redis answer: {answer:?}"
                ))),
            }
        })
    }

    fn revoke<'a>(
        &'a self,
        family: &'a str,
        now: i64,
    ) -> BoxFuture<'a, Result<Vec<IssuedToken>, RefreshStoreError>> {
        Box::pin(async move {
            let answer = self.eval(REVOKE_LUA, family, &[now.to_string()]).await?;
            tokens(&answer)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_lists_become_tokens() {
        let flat = [
            "a".to_owned(),
            "10".to_owned(),
            "b".to_owned(),
            "20".to_owned(),
        ];
        assert_eq!(
            tokens(&flat).unwrap(),
            vec![IssuedToken::new("a", 10), IssuedToken::new("b", 20)]
        );
        assert!(tokens(&flat[..3]).is_err());
        assert!(tokens(&["a".to_owned(), "x".to_owned()]).is_err());
        assert_eq!(instant(i64::MAX), MAX_INSTANT.to_string());
    }
}
