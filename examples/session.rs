//! Browser sessions with self-issued tokens in cookies: login, refresh with rotation and
//! reuse detection, logout.
//!
//! ```text
//! cargo run --example session --features issuer                  # PORT=8080 cargo run ...
//! cargo run --example session --features issuer -- --port 8080   # --port wins over PORT
//!
//! options:
//!   --port N         the port to listen on, on 127.0.0.1 (default: PORT, else 3001;
//!                    0 picks a free port)
//!   -h, --help       print this help
//! environment:
//!   PORT             the port to listen on when --port is not given (default 3001)
//!   SESSION_SECRET   the HMAC signing secret (at least 32 bytes; default: random per start)
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
//! [`TokenIssuer`]: tower_token_auth::issuer::TokenIssuer

use std::sync::Arc;

use axum::extract::{FromRequest, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use serde_json::json;
use tower_token_auth::issuer::{Login, TokenIssuer, TokenPair};
use tower_token_auth::response::problem_response;
use tower_token_auth::revocation::MemoryRevocationStore;
use tower_token_auth::{source, AuthError, Claims, Reason, StandardClaims, TokenAuthLayer};

const ISSUER: &str = "https://session.local";
const AUDIENCE: &str = "https://session.local/api";
const REALM: &str = "session";
const ACCESS_COOKIE: &str = "access_token";
const REFRESH_COOKIE: &str = "refresh_token";
const REFRESH_PATH: &str = "/refresh";

/// Demo users: name, password, scopes. Use a password hash (argon2) in a real app.
const USERS: [(&str, &str, &str); 2] = [
    ("alice", "wonderland", "orders:read orders:write"),
    ("bob", "builder", "orders:read"),
];

const USAGE: &str = "\
usage: cargo run --example session --features issuer [-- [--port N] [--help]]

  --port N         the port to listen on, on 127.0.0.1 (default: PORT, else 3001;
                   0 picks a free port)
  -h, --help       print this help

environment:
  PORT             the port to listen on when --port is not given (default 3001)
  SESSION_SECRET   the HMAC signing secret (at least 32 bytes; default: random per start)";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut port_flag = None;
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
            // Arguments were ignored before `--help` existed: keep starting, and say so.
            _ => eprintln!("session: ignoring unknown argument {arg:?} (see --help)"),
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
    let revoked = Arc::new(MemoryRevocationStore::new());
    let builder = TokenIssuer::builder()
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .revocation(revoked);
    let issuer = match std::env::var("SESSION_SECRET") {
        Ok(secret) => builder.hmac(secret.as_bytes()),
        Err(_) => builder.random_hmac(),
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
