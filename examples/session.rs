//! Browser sessions with self-issued tokens in cookies: login, refresh with rotation and
//! reuse detection, logout.
//!
//! ```text
//! cargo run --example session --features issuer          # PORT=8080 cargo run ...
//!
//! options:
//!   -h, --help       print this help
//! environment:
//!   PORT             the port to listen on, on 127.0.0.1 (default 3001)
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
//! `SameSite=Strict` keeps other sites from making the browser send these cookies (CSRF).
//! The signing secret is random per start unless `SESSION_SECRET` (at least 32 bytes) is
//! set, so restarting logs everybody out.
//!
//! [`TokenIssuer`]: tower_token_auth::issuer::TokenIssuer

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
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
usage: cargo run --example session --features issuer [-- --help]

  -h, --help       print this help

environment:
  PORT             the port to listen on, on 127.0.0.1 (default 3001)
  SESSION_SECRET   the HMAC signing secret (at least 32 bytes; default: random per start)";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    if let Some(arg) = std::env::args().nth(1) {
        if arg == "-h" || arg == "--help" {
            println!("{USAGE}");
            return Ok(());
        }
        // Arguments were ignored before `--help` existed: keep starting, and say so.
        eprintln!("session: ignoring unknown argument {arg:?} (see --help)");
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

    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
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

#[derive(serde::Deserialize)]
struct Credentials {
    username: String,
    password: String,
}

/// Reads `username` and `password` from a JSON or form body.
fn credentials(headers: &HeaderMap, body: &[u8]) -> Option<Credentials> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.starts_with("application/json"));
    if json {
        return serde_json::from_slice(body).ok();
    }
    let (mut username, mut password) = (None, None);
    for (k, v) in form_urlencoded::parse(body) {
        match &*k {
            "username" => username = Some(v.into_owned()),
            "password" => password = Some(v.into_owned()),
            _ => {}
        }
    }
    Some(Credentials {
        username: username?,
        password: password?,
    })
}

async fn login(
    State(issuer): State<TokenIssuer>,
    headers: HeaderMap,
    body: Bytes,
) -> Response<Body> {
    let Some(creds) = credentials(&headers, &body) else {
        return json(
            StatusCode::BAD_REQUEST,
            serde_json::json!({ "error": "username and password required" }),
        );
    };
    let Some((user, _, scopes)) = USERS
        .iter()
        .find(|(u, p, _)| *u == creds.username && *p == creds.password)
    else {
        return json(
            StatusCode::UNAUTHORIZED,
            serde_json::json!({ "error": "invalid_credentials" }),
        );
    };
    match issuer.issue(Login::new(*user).scope(*scopes)).await {
        Ok(pair) => with_session_cookies(
            json(
                StatusCode::OK,
                serde_json::json!({
                    "sub": user,
                    "expires_in": pair.expires_in,
                    "refresh_expires_in": pair.refresh_expires_in,
                }),
            ),
            &pair,
        ),
        Err(e) => {
            tracing::error!(error = %e, "could not issue tokens");
            json(
                StatusCode::INTERNAL_SERVER_ERROR,
                serde_json::json!({ "error": "server_error" }),
            )
        }
    }
}

async fn refresh(State(issuer): State<TokenIssuer>, headers: HeaderMap) -> Response<Body> {
    let Some(token) = read_cookie(&headers, REFRESH_COOKIE) else {
        return rejection(&AuthError::new(Reason::Missing), false);
    };
    match issuer.refresh(token).await {
        Ok(pair) => with_session_cookies(
            json(
                StatusCode::OK,
                serde_json::json!({
                    "expires_in": pair.expires_in,
                    "refresh_expires_in": pair.refresh_expires_in,
                }),
            ),
            &pair,
        ),
        // Revoked, reused, expired, forged: the cookies are useless, clear them. A store
        // that is down (503) is worth a retry: keep them.
        Err(e) => {
            let err = e.to_auth_error();
            let clear = !err.reason().is_unavailable();
            rejection(&err, clear)
        }
    }
}

async fn logout(State(issuer): State<TokenIssuer>, headers: HeaderMap) -> Response<Body> {
    if let Some(token) = read_cookie(&headers, ACCESS_COOKIE) {
        if let Err(e) = issuer.logout(token).await {
            let err = e.to_auth_error();
            if err.reason().is_unavailable() {
                return rejection(&err, false);
            }
            // An invalid token names no session to end: clearing the cookies is all there
            // is to do.
        }
    }
    let mut res = Response::new(Body::empty());
    *res.status_mut() = StatusCode::NO_CONTENT;
    clear_cookies(&mut res);
    res
}

async fn me(claims: Claims<StandardClaims>) -> Json<Claims<StandardClaims>> {
    Json(claims)
}

// ----- helpers -----

fn json(status: StatusCode, body: serde_json::Value) -> Response<Body> {
    let mut res = Response::new(Body::from(body.to_string()));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

/// The crate's problem response for `err`, with the error in the extensions as the layer
/// does; optionally clearing the session cookies.
fn rejection(err: &AuthError, clear: bool) -> Response<Body> {
    let mut res: Response<Body> = problem_response(err, Some(REALM));
    res.extensions_mut().insert(err.clone());
    if clear {
        clear_cookies(&mut res);
    }
    res
}

fn cookie(name: &str, value: &str, path: &str, max_age: u64) -> HeaderValue {
    let text = format!(
        "{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; Secure; SameSite=Strict"
    );
    // Tokens are base64url and dots: always a valid header value.
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

fn with_session_cookies(mut res: Response<Body>, pair: &TokenPair) -> Response<Body> {
    let h = res.headers_mut();
    h.append(
        header::SET_COOKIE,
        cookie(ACCESS_COOKIE, &pair.access_token, "/", pair.expires_in),
    );
    h.append(
        header::SET_COOKIE,
        cookie(
            REFRESH_COOKIE,
            &pair.refresh_token,
            REFRESH_PATH,
            pair.refresh_expires_in,
        ),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

fn clear_cookies(res: &mut Response<Body>) {
    let h = res.headers_mut();
    h.append(header::SET_COOKIE, cookie(ACCESS_COOKIE, "", "/", 0));
    h.append(
        header::SET_COOKIE,
        cookie(REFRESH_COOKIE, "", REFRESH_PATH, 0),
    );
}

/// The value of cookie `name` in the request's `Cookie` headers.
fn read_cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, v)| *k == name && !v.is_empty())
        .map(|(_, v)| v)
}
