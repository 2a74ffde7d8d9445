//! Browser sessions with self-issued tokens in cookies: login, refresh with rotation and
//! reuse detection, logout.
//!
//! ```text
//! cargo run --example session --features issuer                  # PORT=8080 cargo run ...
//! cargo run --example session --features issuer -- --port 8080   # --port wins over PORT
//! SESSION_SECRET=... cargo run --example session --features issuer,redis -- \
//!     --redis redis://127.0.0.1:6379/ --port 8081                # one replica of several
//!
//! options:
//!   --port N         the port to listen on, on 127.0.0.1 (default: PORT, else 3001;
//!                    0 picks a free port)
//!   --redis URL      keep refresh families and revocations in Redis (redis://host:port[/db]),
//!                    shared by every replica started with the same URL; needs the feature
//!                    `redis` and SESSION_SECRET
//!   -h, --help       print this help
//! environment:
//!   PORT             the port to listen on when --port is not given (default 3001)
//!   SESSION_SECRET   the HMAC signing secret (at least 32 bytes; default: random per start;
//!                    required with --redis: every replica signs and verifies with it)
//! ```
//!
//! The app is its own issuer ([`TokenIssuer`], feature `issuer`) and serves on 127.0.0.1:
//!
//! - `POST /login` (form or JSON `username`, `password`; demo users `alice` / `wonderland`
//!   and `bob` / `builder`): sets two cookies, `HttpOnly; Secure; SameSite=Strict`:
//!   `access_token` (`Path=/`, 10 minutes) and `refresh_token` (`Path=/refresh`, 14 days:
//!   the browser sends it to the refresh endpoint only);
//! - `POST /refresh`: rotates both cookies. A refresh token used twice revokes the whole
//!   session (reason `revoked`), including the newest tokens;
//! - `POST /logout`: revokes the session (its refresh tokens and, through the shared
//!   revocation store, its access tokens) and clears the cookies;
//! - `GET /me`: protected by `TokenAuthLayer`, reading the access token from the cookie (or
//!   `Authorization: Bearer`), echoes the claims. A refresh token sent here is `wrong_type`.
//!
//! Cookies are read and written with axum-extra's [`CookieJar`], request bodies with axum's
//! [`Form`] and [`Json`]. `SameSite=Strict` keeps other sites from making the browser send
//! these cookies (CSRF). The signing secret is random per start unless `SESSION_SECRET` (at
//! least 32 bytes) is set, so restarting logs everybody out.
//!
//! # Replicas on one Redis
//!
//! With `--redis URL` the refresh families ([`RedisRefreshStore`]) and the revocations
//! ([`RedisRevocationStore`], one connection shared by both) live in Redis, so a session
//! started on one process can be refreshed on any other, a refresh token replayed anywhere
//! ends the session everywhere (the other replicas learn the revoked access tokens by
//! pub/sub, within milliseconds), and a logout on one replica is seen by all. Every replica
//! must sign with the same `SESSION_SECRET`. Keys: `tta:jti:*`, `tta:sub:*` and the channel
//! `tta:revocations` for revocations, `tta:rf:*` for the families.
//!
//! Redis failing is answered closed. Refresh and logout need Redis: past 200 ms they answer
//! 503 `revocation_unavailable` with `Retry-After` and keep the cookies; login answers 503
//! `{"error":"revocation_unavailable"}`. `/me` is answered from the replica's copy of the
//! revocations while its subscription is alive; once the subscription is lost (at once when
//! Redis dies, within about 2 s when it hangs) it asks Redis, and answers 503 too, except for
//! tokens it already knows are revoked (401 `revoked`). The replicas reconnect by themselves
//! when Redis is back. Three replicas, by hand:
//!
//! ```text
//! redis-server --port 6379 &
//! cargo build --example session --features issuer,redis
//! export SESSION_SECRET=$(head -c 32 /dev/urandom | base64)
//! for port in 8081 8082 8083; do
//!     target/debug/examples/session --redis redis://127.0.0.1:6379/ --port $port &
//! done
//! curl -i -c jar -b jar -X POST 127.0.0.1:8081/login -d 'username=alice&password=wonderland'
//! cp jar old-jar
//! curl -i -c jar -b jar -X POST 127.0.0.1:8082/refresh   # rotated on another replica
//! curl -i -c jar -b jar -X POST 127.0.0.1:8083/refresh   # and again on the third
//! curl -i -b old-jar -X POST 127.0.0.1:8081/refresh      # reuse: 401 revoked
//! curl -i -b jar 127.0.0.1:8082/me                       # 401 revoked on every replica
//! ```
//!
//! `tests/suite/session_replicas.rs` runs this recipe (and Redis dying, and coming back).
//!
//! [`TokenIssuer`]: tower_token_auth::issuer::TokenIssuer
//! [`RedisRefreshStore`]: https://docs.rs/tower-token-auth/latest/tower_token_auth/issuer/struct.RedisRefreshStore.html
//! [`RedisRevocationStore`]: https://docs.rs/tower-token-auth/latest/tower_token_auth/revocation/struct.RedisRevocationStore.html

use std::sync::Arc;

use axum::extract::{FromRequest, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use serde_json::json;
use tower_token_auth::issuer::{IssueError, Login, TokenIssuer, TokenPair};
use tower_token_auth::response::{problem_response, DEFAULT_RETRY_AFTER};
use tower_token_auth::revocation::MemoryRevocationStore;
use tower_token_auth::{source, AuthError, Claims, Reason, StandardClaims, TokenAuthLayer};

const ISSUER: &str = "https://session.local";
const AUDIENCE: &str = "https://session.local/api";
const REALM: &str = "session";
const ACCESS_COOKIE: &str = "access_token";
const REFRESH_COOKIE: &str = "refresh_token";
const REFRESH_PATH: &str = "/refresh";
/// Prefix of the revocation store's keys and channel in Redis (its default).
#[cfg(feature = "redis")]
const REVOCATION_PREFIX: &str = "tta:";
/// Prefix of the refresh families' keys in Redis (`tta:rf:<family>`): the crate's stores
/// share one prefix, each with its own kind of key.
#[cfg(feature = "redis")]
const FAMILY_PREFIX: &str = "tta:";

/// Demo users: name, password, scopes. Use a password hash (argon2) in a real app.
const USERS: [(&str, &str, &str); 2] = [
    ("alice", "wonderland", "orders:read orders:write"),
    ("bob", "builder", "orders:read"),
];

const USAGE: &str = "\
usage: cargo run --example session --features issuer[,redis] [-- [--port N] [--redis URL] [--help]]

  --port N         the port to listen on, on 127.0.0.1 (default: PORT, else 3001;
                   0 picks a free port)
  --redis URL      keep refresh families and revocations in Redis (redis://host:port[/db]),
                   shared by every replica started with the same URL; needs the feature
                   `redis` and SESSION_SECRET
  -h, --help       print this help

environment:
  PORT             the port to listen on when --port is not given (default 3001)
  SESSION_SECRET   the HMAC signing secret (at least 32 bytes; default: random per start;
                   required with --redis: every replica signs and verifies with it)";

/// The longest a request waits for Redis (both stores); past it, 503 (fail closed).
#[cfg(feature = "redis")]
const REDIS_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(200);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut port_flag = None;
    let mut redis_url: Option<String> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            "--port" => match args.next().map(|v| v.parse::<u16>()) {
                Some(Ok(port)) => port_flag = Some(port),
                _ => {
                    eprintln!("error: --port needs a port number (0 to 65535)\n\n{USAGE}");
                    std::process::exit(2);
                }
            },
            "--redis" => match args.next() {
                Some(url) if !url.is_empty() && !url.starts_with('-') => redis_url = Some(url),
                _ => {
                    eprintln!("error: --redis needs a URL (redis://host:port[/db])\n\n{USAGE}");
                    std::process::exit(2);
                }
            },
            // Arguments were ignored before `--help` existed: keep starting, and say so.
            _ => eprintln!("session: ignoring unknown argument {arg:?} (see --help)"),
        }
    }
    let secret = std::env::var("SESSION_SECRET").ok();
    if redis_url.is_some() {
        if !cfg!(feature = "redis") {
            eprintln!(
                "error: --redis needs the example built with the feature `redis`:\n  \
                 cargo run --example session --features issuer,redis -- --redis URL"
            );
            std::process::exit(2);
        }
        // Replicas verify each other's tokens: a random secret per process would not do.
        if secret.as_ref().is_none_or(|s| s.len() < 32) {
            eprintln!(
                "error: --redis needs SESSION_SECRET, at least 32 bytes, the same for every \
                 replica (e.g. export SESSION_SECRET=$(head -c 32 /dev/urandom | base64))"
            );
            std::process::exit(2);
        }
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "tower_token_auth=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();

    // The layer and the issuer share one revocation store: logging out or reusing a refresh
    // token revokes the session's access tokens too.
    let builder = TokenIssuer::builder().issuer(ISSUER).audience(AUDIENCE);
    let builder = match &redis_url {
        #[cfg(feature = "redis")]
        Some(url) => match redis_stores(builder, url).await {
            Ok(builder) => builder,
            Err(e) => {
                eprintln!("error: cannot use Redis: {e}");
                std::process::exit(1);
            }
        },
        // In memory: this process only (without the feature, `--redis` was refused above).
        _ => builder.revocation(Arc::new(MemoryRevocationStore::new())),
    };
    let issuer = match &secret {
        Some(secret) => builder.hmac(secret.as_bytes()),
        None => builder.random_hmac(),
    }
    .build()?;

    // `--port` wins over `PORT`, so replicas started side by side can each get their own.
    let port = port_flag
        .or_else(|| std::env::var("PORT").ok()?.parse().ok())
        .unwrap_or(3001);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let url = format!("http://{}", listener.local_addr()?);

    println!(
        r#"tower-token-auth session example listening on {url}

Try it with a cookie jar (curl sends Secure cookies to 127.0.0.1 over plain http):
  curl -i -c jar -b jar -X POST {url}/login -d 'username=alice&password=wonderland'
  curl -i -b jar {url}/me
  cp jar old-jar                                # keep the first refresh token
  curl -i -c jar -b jar -X POST {url}/refresh   # rotates both cookies
  curl -i -b jar {url}/me                       # the new access token works
  curl -i -b old-jar -X POST {url}/refresh      # reuse: 401 revoked, the session ends
  curl -i -b jar {url}/me                       # 401 revoked: its access token too
  curl -i -b jar -X POST {url}/refresh          # 401 revoked: the newest refresh token too

Log in again, then log out:
  curl -i -c jar -b jar -X POST {url}/login -H 'content-type: application/json' \
       -d '{{"username":"bob","password":"builder"}}'
  cp jar bob-jar
  curl -i -c jar -b jar -X POST {url}/logout    # 204, cookies cleared
  curl -i -b bob-jar {url}/me                   # 401 revoked
"#
    );

    axum::serve(listener, app(issuer)?)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

/// Refresh families and revocations in Redis, for replicas: the revocation store connects
/// (and follows the revocations by pub/sub), the refresh store shares its connection.
#[cfg(feature = "redis")]
async fn redis_stores(
    builder: tower_token_auth::issuer::TokenIssuerBuilder,
    url: &str,
) -> Result<tower_token_auth::issuer::TokenIssuerBuilder, Box<dyn std::error::Error>> {
    use tower_token_auth::issuer::RedisRefreshStore;
    use tower_token_auth::revocation::RedisRevocationStore;

    let revoked = RedisRevocationStore::builder(url)
        .prefix(REVOCATION_PREFIX)
        .timeout(REDIS_TIMEOUT)
        .connect()
        .await?;
    let families =
        RedisRefreshStore::from_manager(revoked.connection_manager(), FAMILY_PREFIX, REDIS_TIMEOUT);
    Ok(builder
        .refresh_store(families)
        .revocation(Arc::new(revoked)))
}

/// The routes: `/login`, `/refresh` and `/logout` are public, `/me` needs an access token.
fn app(issuer: TokenIssuer) -> Result<Router, Box<dyn std::error::Error>> {
    let config = issuer
        .auth_config()
        .source(source::cookie(ACCESS_COOKIE))
        .source(source::bearer())
        .realm(REALM)
        .build()?;
    let protected = Router::new()
        .route("/me", get(me))
        .layer(TokenAuthLayer::new(config));
    Ok(Router::new()
        .route("/login", post(login))
        .route(REFRESH_PATH, post(refresh))
        .route("/logout", post(logout))
        .with_state(issuer)
        .merge(protected))
}

/// The login form: `username` and `password`, from a JSON body (`Content-Type:
/// application/json`) or an HTML form (`application/x-www-form-urlencoded`).
#[derive(serde::Deserialize)]
struct Credentials {
    username: String,
    password: String,
}

impl<S: Send + Sync> FromRequest<S> for Credentials {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|ct| ct.starts_with("application/json"));
        let credentials = if is_json {
            Json::<Self>::from_request(req, state)
                .await
                .map(|Json(c)| c)
                .ok()
        } else {
            Form::<Self>::from_request(req, state)
                .await
                .map(|Form(c)| c)
                .ok()
        };
        // One answer for every unusable body (wrong type, bad syntax, a field missing), in
        // the JSON the client reads anyway, rather than each extractor's plain-text rejection.
        credentials.ok_or_else(|| error(StatusCode::BAD_REQUEST, "username and password required"))
    }
}

async fn login(State(issuer): State<TokenIssuer>, jar: CookieJar, creds: Credentials) -> Response {
    let Some((user, _, scopes)) = USERS
        .iter()
        .find(|(u, p, _)| *u == creds.username && *p == creds.password)
    else {
        return error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    };
    match issuer.issue(Login::new(*user).scope(*scopes)).await {
        Ok(pair) => {
            let body = json!({
                "sub": user,
                "expires_in": pair.expires_in,
                "refresh_expires_in": pair.refresh_expires_in,
            });
            (with_session(jar, &pair), NO_STORE, Json(body)).into_response()
        }
        // The refresh store (Redis) did not answer: worth a retry.
        Err(IssueError::Store(e)) => {
            tracing::warn!(error = %e, "could not start a session");
            let retry_after = (header::RETRY_AFTER, DEFAULT_RETRY_AFTER.to_string());
            let res = error(StatusCode::SERVICE_UNAVAILABLE, "revocation_unavailable");
            ([retry_after], res).into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "could not issue tokens");
            error(StatusCode::INTERNAL_SERVER_ERROR, "server_error")
        }
    }
}

async fn refresh(State(issuer): State<TokenIssuer>, jar: CookieJar) -> Response {
    let Some(token) = cookie_value(&jar, REFRESH_COOKIE) else {
        return rejection(&AuthError::new(Reason::Missing));
    };
    match issuer.refresh(token).await {
        Ok(pair) => {
            let body = json!({
                "expires_in": pair.expires_in,
                "refresh_expires_in": pair.refresh_expires_in,
            });
            (with_session(jar, &pair), NO_STORE, Json(body)).into_response()
        }
        Err(e) => {
            let err = AuthError::from(e);
            // A store that is down (503) is worth a retry: keep the cookies. Revoked, reused,
            // expired, forged: they are useless, clear them.
            if err.reason().is_unavailable() {
                rejection(&err)
            } else {
                (without_session(jar), rejection(&err)).into_response()
            }
        }
    }
}

async fn logout(State(issuer): State<TokenIssuer>, jar: CookieJar) -> Response {
    if let Some(token) = cookie_value(&jar, ACCESS_COOKIE) {
        if let Err(e) = issuer.logout(token).await {
            let err = AuthError::from(e);
            if err.reason().is_unavailable() {
                return rejection(&err);
            }
            // An invalid token names no session to end: clearing the cookies is all there
            // is to do.
        }
    }
    (StatusCode::NO_CONTENT, without_session(jar)).into_response()
}

async fn me(claims: Claims<StandardClaims>) -> Json<Claims<StandardClaims>> {
    Json(claims)
}

// ----- helpers -----

/// Replies that set cookies holding tokens: no cache may keep them.
const NO_STORE: [(header::HeaderName, &str); 1] = [(header::CACHE_CONTROL, "no-store")];

/// `{"error": code}` with `status`.
fn error(status: StatusCode, code: &str) -> Response {
    (status, Json(json!({ "error": code }))).into_response()
}

/// The crate's problem response for `err` (status, `WWW-Authenticate`, JSON body), with the
/// error in the extensions as the layer does.
fn rejection(err: &AuthError) -> Response {
    let mut res: Response = problem_response(err, Some(REALM));
    res.extensions_mut().insert(err.clone());
    res
}

/// The value of cookie `name`; an empty one counts as absent (a cleared cookie).
fn cookie_value<'j>(jar: &'j CookieJar, name: &str) -> Option<&'j str> {
    jar.get(name).map(Cookie::value).filter(|v| !v.is_empty())
}

/// A session cookie: sent over HTTPS only, hidden from scripts, and never sent on requests
/// started by other sites (no CSRF).
fn session_cookie(
    name: &'static str,
    value: String,
    path: &'static str,
    max_age: u64,
) -> Cookie<'static> {
    Cookie::build((name, value))
        .path(path)
        .max_age(time::Duration::seconds(
            max_age.try_into().unwrap_or(i64::MAX),
        ))
        .http_only(true)
        .secure(true)
        .same_site(SameSite::Strict)
        .build()
}

/// Both cookies of `pair`. The refresh cookie's path keeps the browser from sending it
/// anywhere but the refresh endpoint.
fn with_session(jar: CookieJar, pair: &TokenPair) -> CookieJar {
    jar.add(session_cookie(
        ACCESS_COOKIE,
        pair.access_token.clone(),
        "/",
        pair.expires_in,
    ))
    .add(session_cookie(
        REFRESH_COOKIE,
        pair.refresh_token.clone(),
        REFRESH_PATH,
        pair.refresh_expires_in,
    ))
}

/// Both cookies overwritten by empty ones that expire at once (`Max-Age=0`; the browser
/// replaces a cookie of the same name and path). `CookieJar::remove` would work too; it
/// adds an `Expires` date in the past.
fn without_session(jar: CookieJar) -> CookieJar {
    jar.add(session_cookie(ACCESS_COOKIE, String::new(), "/", 0))
        .add(session_cookie(
            REFRESH_COOKIE,
            String::new(),
            REFRESH_PATH,
            0,
        ))
}
