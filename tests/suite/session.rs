//! The cookie session flow of `examples/session.rs`, over real HTTP on 127.0.0.1: login,
//! `/me`, refresh rotation, refresh-token reuse detection (the whole family is revoked),
//! logout, and refresh tokens refused as access tokens (`wrong_type`).
//!
//! Most tests run a router that mirrors the example's (examples cannot be imported), built on
//! the library API only: `TokenIssuer`, `auth_config()`, `source::cookie`, `TokenAuthLayer`.
//! `the_example_serves_the_whole_flow` runs the example itself, built and started as a user
//! starts it (`--port`), through the same client.

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::Value;
use tower_token_auth::issuer::{Login, TokenIssuer, TokenPair};
use tower_token_auth::response::{problem_response, www_authenticate};
use tower_token_auth::revocation::MemoryRevocationStore;
use tower_token_auth::{source, AuthError, Claims, Reason, StandardClaims, TokenAuthLayer};

const REALM: &str = "session";
const ACCESS: &str = "access_token";
const REFRESH: &str = "refresh_token";

// ----- the app under test (as in examples/session.rs) -----

fn app() -> Router {
    let issuer = TokenIssuer::builder()
        .random_hmac()
        .issuer("https://session.test")
        .audience("https://session.test/api")
        .revocation(Arc::new(MemoryRevocationStore::new()))
        .build()
        .unwrap();
    let config = issuer
        .auth_config()
        .source(source::cookie(ACCESS))
        .source(source::bearer())
        .realm(REALM)
        .build()
        .unwrap();
    let protected = Router::new()
        .route("/me", get(me))
        .layer(TokenAuthLayer::new(config));
    Router::new()
        .route("/login", post(login))
        .route("/refresh", post(refresh))
        .route("/logout", post(logout))
        .with_state(issuer)
        .merge(protected)
}

async fn login(
    State(issuer): State<TokenIssuer>,
    headers: HeaderMap,
    body: Bytes,
) -> Response<Body> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    let (user, password) = if is_json {
        let v: Value = serde_json::from_slice(&body).unwrap_or_default();
        (
            v["username"].as_str().unwrap_or_default().to_owned(),
            v["password"].as_str().unwrap_or_default().to_owned(),
        )
    } else {
        let form: HashMap<String, String> = form_urlencoded::parse(&body).into_owned().collect();
        (
            form.get("username").cloned().unwrap_or_default(),
            form.get("password").cloned().unwrap_or_default(),
        )
    };
    if (user.as_str(), password.as_str()) != ("alice", "wonderland") {
        let mut res = Response::new(Body::from(r#"{"error":"invalid_credentials"}"#));
        *res.status_mut() = StatusCode::UNAUTHORIZED;
        return res;
    }
    let pair = issuer
        .issue(Login::new(user).scope("orders:read"))
        .await
        .unwrap();
    with_cookies(Response::new(Body::empty()), &pair)
}

async fn refresh(State(issuer): State<TokenIssuer>, headers: HeaderMap) -> Response<Body> {
    let Some(token) = read_cookie(&headers, REFRESH) else {
        return rejection(&AuthError::new(Reason::Missing), false);
    };
    match issuer.refresh(&token).await {
        Ok(pair) => with_cookies(Response::new(Body::empty()), &pair),
        Err(e) => {
            let err = AuthError::from(e);
            rejection(&err, !err.reason().is_unavailable())
        }
    }
}

async fn logout(State(issuer): State<TokenIssuer>, headers: HeaderMap) -> Response<Body> {
    if let Some(token) = read_cookie(&headers, ACCESS) {
        if let Err(e) = issuer.logout(&token).await {
            let err = AuthError::from(e);
            if err.reason().is_unavailable() {
                return rejection(&err, false);
            }
        }
    }
    let mut res = Response::new(Body::empty());
    *res.status_mut() = StatusCode::NO_CONTENT;
    clear(&mut res);
    res
}

async fn me(claims: Claims<StandardClaims>) -> Json<Claims<StandardClaims>> {
    Json(claims)
}

fn rejection(err: &AuthError, clear_cookies: bool) -> Response<Body> {
    let mut res: Response<Body> = problem_response(err, Some(REALM));
    res.extensions_mut().insert(err.clone());
    if clear_cookies {
        clear(&mut res);
    }
    res
}

fn cookie(name: &str, value: &str, path: &str, max_age: u64) -> HeaderValue {
    HeaderValue::from_str(&format!(
        "{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; Secure; SameSite=Strict"
    ))
    .unwrap()
}

fn with_cookies(mut res: Response<Body>, pair: &TokenPair) -> Response<Body> {
    let h = res.headers_mut();
    h.append(
        header::SET_COOKIE,
        cookie(ACCESS, &pair.access_token, "/", pair.expires_in),
    );
    h.append(
        header::SET_COOKIE,
        cookie(
            REFRESH,
            &pair.refresh_token,
            "/refresh",
            pair.refresh_expires_in,
        ),
    );
    res
}

fn clear(res: &mut Response<Body>) {
    let h = res.headers_mut();
    h.append(header::SET_COOKIE, cookie(ACCESS, "", "/", 0));
    h.append(header::SET_COOKIE, cookie(REFRESH, "", "/refresh", 0));
}

fn read_cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, v)| *k == name && !v.is_empty())
        .map(|(_, v)| v.to_owned())
}

// ----- the HTTP client side -----

/// A `Set-Cookie` as received.
#[derive(Clone, Debug)]
struct SetCookie {
    value: String,
    /// The attributes, lower-cased, e.g. `["path=/", "max-age=600", "httponly", ...]`.
    attrs: Vec<String>,
}

impl SetCookie {
    fn has(&self, attr: &str) -> bool {
        self.attrs.iter().any(|a| a == attr)
    }
}

/// A response as the tests look at it.
struct Reply {
    status: StatusCode,
    www_authenticate: Option<String>,
    cache_control: Option<String>,
    cookies: HashMap<String, SetCookie>,
    body: Value,
}

impl Reply {
    fn reason(&self) -> Option<&str> {
        self.body["reason"].as_str()
    }
    fn cookie(&self, name: &str) -> &SetCookie {
        self.cookies
            .get(name)
            .unwrap_or_else(|| panic!("no Set-Cookie {name}: {:?}", self.cookies))
    }
}

struct Client {
    base: String,
    http: reqwest::Client,
}

impl Client {
    /// Starts the app on an ephemeral port of 127.0.0.1.
    async fn start() -> Client {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app()).await.unwrap() });
        Client::at(format!("http://{addr}"))
    }

    /// A client of the server at `base` (`http://127.0.0.1:port`).
    fn at(base: String) -> Client {
        Client {
            base,
            http: reqwest::Client::new(),
        }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Reply {
        let res = req.send().await.unwrap();
        let status = res.status();
        let header = |name| {
            res.headers()
                .get(name)
                .map(|v: &HeaderValue| v.to_str().unwrap().to_owned())
        };
        let www_authenticate = header(header::WWW_AUTHENTICATE);
        let cache_control = header(header::CACHE_CONTROL);
        let mut cookies = HashMap::new();
        for v in res.headers().get_all(header::SET_COOKIE) {
            let mut parts = v.to_str().unwrap().split(';').map(str::trim);
            let (name, value) = parts.next().unwrap().split_once('=').unwrap();
            cookies.insert(
                name.to_owned(),
                SetCookie {
                    value: value.to_owned(),
                    attrs: parts.map(str::to_ascii_lowercase).collect(),
                },
            );
        }
        let bytes = res.bytes().await.unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            www_authenticate,
            cache_control,
            cookies,
            body,
        }
    }

    async fn login(&self) -> Reply {
        let reply = self
            .send(
                self.http
                    .post(format!("{}/login", self.base))
                    .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                    .body("username=alice&password=wonderland"),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK);
        reply
    }

    /// `POST /login` with a JSON body.
    async fn login_json(&self, username: &str, password: &str) -> Reply {
        let body = serde_json::json!({ "username": username, "password": password });
        self.send(
            self.http
                .post(format!("{}/login", self.base))
                .header(header::CONTENT_TYPE, "application/json")
                .body(body.to_string()),
        )
        .await
    }

    async fn me(&self, cookies: &str) -> Reply {
        self.send(
            self.http
                .get(format!("{}/me", self.base))
                .header(header::COOKIE, cookies),
        )
        .await
    }

    async fn post(&self, path: &str, cookies: &str) -> Reply {
        self.send(
            self.http
                .post(format!("{}{path}", self.base))
                .header(header::COOKIE, cookies),
        )
        .await
    }

    async fn refresh(&self, refresh_token: &str) -> Reply {
        self.post("/refresh", &format!("{REFRESH}={refresh_token}"))
            .await
    }
}

/// `examples/session.rs` running, killed when dropped.
struct Example {
    child: Child,
    base: String,
}

impl Example {
    /// Starts the example with `args`, a random signing secret and `PORT` set to a port that is
    /// taken (so an example that ignored `--port` for `PORT` would fail to start), and waits
    /// for the address it prints.
    fn start(args: &[&str]) -> Example {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut child = Command::new(crate::common::example_exe("session"))
            .args(args)
            .env("PORT", taken.local_addr().unwrap().port().to_string())
            .env_remove("SESSION_SECRET")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the session example starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) =
                    line.strip_prefix("tower-token-auth session example listening on ")
                {
                    let _ = tx.send(url.to_owned());
                }
            }
        });
        let base = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the session example prints the address it listens on");
        Example { child, base }
    }
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The session cookies of a login or refresh reply.
fn tokens(reply: &Reply) -> (String, String) {
    (
        reply.cookie(ACCESS).value.clone(),
        reply.cookie(REFRESH).value.clone(),
    )
}

fn challenge(reason: Reason) -> String {
    www_authenticate(&AuthError::new(reason), Some(REALM))
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned()
}

fn assert_rejected(reply: &Reply, reason: Reason) {
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{:?}", reply.body);
    assert_eq!(reply.reason(), Some(reason.code()), "{:?}", reply.body);
    assert_eq!(
        reply.www_authenticate.as_deref(),
        Some(challenge(reason).as_str())
    );
}

fn claims_of(token: &str) -> Value {
    use base64::Engine;
    let seg = token.split('.').nth(1).unwrap();
    serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(seg)
            .unwrap(),
    )
    .unwrap()
}

// ----- tests -----

#[tokio::test]
async fn login_sets_http_only_secure_same_site_cookies() {
    let client = Client::start().await;
    let reply = client.login().await;
    let access = reply.cookie(ACCESS);
    let refresh = reply.cookie(REFRESH);
    for c in [access, refresh] {
        assert!(c.has("httponly"), "{c:?}");
        assert!(c.has("secure"), "{c:?}");
        assert!(c.has("samesite=strict"), "{c:?}");
        assert!(!c.value.is_empty());
    }
    assert!(access.has("path=/"), "{access:?}");
    assert!(access.has("max-age=600"), "{access:?}");
    assert!(refresh.has("path=/refresh"), "{refresh:?}");
    assert!(refresh.has("max-age=1209600"), "{refresh:?}");
}

#[tokio::test]
async fn login_then_me_echoes_the_claims() {
    let client = Client::start().await;
    let (access, _) = tokens(&client.login().await);
    let reply = client.me(&format!("{ACCESS}={access}")).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.body["sub"], "alice");
    assert_eq!(reply.body["scope"], "orders:read");
    assert_eq!(reply.body["iss"], "https://session.test");
}

#[tokio::test]
async fn login_accepts_json_and_refuses_a_wrong_password() {
    let client = Client::start().await;
    let ok = client
        .send(
            client
                .http
                .post(format!("{}/login", client.base))
                .header(header::CONTENT_TYPE, "application/json")
                .body(r#"{"username":"alice","password":"wonderland"}"#),
        )
        .await;
    assert_eq!(ok.status, StatusCode::OK);
    assert!(ok.cookies.contains_key(ACCESS));
    let bad = client
        .send(
            client
                .http
                .post(format!("{}/login", client.base))
                .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body("username=alice&password=guess"),
        )
        .await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    assert_eq!(bad.body["error"], "invalid_credentials");
    assert!(bad.cookies.is_empty());
}

#[tokio::test]
async fn me_without_a_cookie_is_missing() {
    let client = Client::start().await;
    let reply = client.me("other=1").await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.reason(), Some("missing"));
    assert_eq!(
        reply.www_authenticate.as_deref(),
        Some(r#"Bearer realm="session""#)
    );
}

#[tokio::test]
async fn refresh_rotates_both_cookies() {
    let client = Client::start().await;
    let (access, refresh) = tokens(&client.login().await);
    let reply = client.refresh(&refresh).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let (access2, refresh2) = tokens(&reply);
    assert_ne!(access2, access);
    assert_ne!(refresh2, refresh);
    assert!(reply.cookie(REFRESH).has("path=/refresh"));
    // Same family, new token ids.
    assert_eq!(claims_of(&refresh2)["fam"], claims_of(&refresh)["fam"]);
    assert_eq!(claims_of(&access2)["sid"], claims_of(&refresh)["fam"]);
    assert_ne!(claims_of(&refresh2)["jti"], claims_of(&refresh)["jti"]);
    // The new access token works.
    let me = client.me(&format!("{ACCESS}={access2}")).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.body["sub"], "alice");
}

#[tokio::test]
async fn reusing_a_rotated_refresh_token_revokes_the_whole_family() {
    let client = Client::start().await;
    let (_, first) = tokens(&client.login().await);
    let rotated = client.refresh(&first).await;
    assert_eq!(rotated.status, StatusCode::OK);
    let (newest_access, newest_refresh) = tokens(&rotated);

    // The first refresh token again: reuse.
    let reuse = client.refresh(&first).await;
    assert_rejected(&reuse, Reason::Revoked);
    // The rejection clears the cookies.
    assert!(reuse.cookie(REFRESH).has("max-age=0"));
    assert_eq!(reuse.cookie(REFRESH).value, "");

    // The newest refresh token of the family is refused too...
    let newest = client.refresh(&newest_refresh).await;
    assert_rejected(&newest, Reason::Revoked);
    // ...and so is the family's newest access token (shared revocation store).
    let me = client.me(&format!("{ACCESS}={newest_access}")).await;
    assert_rejected(&me, Reason::Revoked);
}

#[tokio::test]
async fn logout_revokes_the_session_and_clears_the_cookies() {
    let client = Client::start().await;
    let (access, refresh) = tokens(&client.login().await);
    let jar = format!("{ACCESS}={access}");
    assert_eq!(client.me(&jar).await.status, StatusCode::OK);

    let out = client.post("/logout", &jar).await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    for name in [ACCESS, REFRESH] {
        let c = out.cookie(name);
        assert_eq!(c.value, "", "{name}");
        assert!(c.has("max-age=0"), "{name}: {c:?}");
    }
    assert!(out.cookie(REFRESH).has("path=/refresh"));

    // The access token kept by an attacker (or a stale tab) is revoked...
    assert_rejected(&client.me(&jar).await, Reason::Revoked);
    // ...and the session's refresh token too, though /logout never saw it.
    assert_rejected(&client.refresh(&refresh).await, Reason::Revoked);
}

#[tokio::test]
async fn refresh_token_in_the_access_cookie_is_wrong_type() {
    let client = Client::start().await;
    let (_, refresh) = tokens(&client.login().await);
    let reply = client.me(&format!("{ACCESS}={refresh}")).await;
    assert_rejected(&reply, Reason::WrongType);
}

#[tokio::test]
async fn refresh_token_as_bearer_token_is_wrong_type() {
    let client = Client::start().await;
    let (_, refresh) = tokens(&client.login().await);
    let reply = client
        .send(
            client
                .http
                .get(format!("{}/me", client.base))
                .header(header::AUTHORIZATION, format!("Bearer {refresh}")),
        )
        .await;
    assert_rejected(&reply, Reason::WrongType);
}

#[tokio::test]
async fn access_token_at_the_refresh_endpoint_is_wrong_type() {
    let client = Client::start().await;
    let (access, refresh) = tokens(&client.login().await);
    let reply = client.refresh(&access).await;
    assert_rejected(&reply, Reason::WrongType);
    // The session itself is intact.
    assert_eq!(client.refresh(&refresh).await.status, StatusCode::OK);
}

#[tokio::test]
async fn refresh_without_a_cookie_is_missing() {
    let client = Client::start().await;
    let reply = client.post("/refresh", "other=1").await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.reason(), Some("missing"));
    assert_eq!(
        reply.www_authenticate.as_deref(),
        Some(r#"Bearer realm="session""#)
    );
    assert!(reply.cookies.is_empty(), "nothing to clear");
}

/// The example itself, as a user runs it: the flow its startup banner suggests, checked.
#[tokio::test]
async fn the_example_serves_the_whole_flow() {
    let example = Example::start(&["--port", "0"]);
    let client = Client::at(example.base.clone());

    // Login (form): both cookies, with their attributes; the reply is not to be cached.
    let login = client.login().await;
    assert_eq!(login.cache_control.as_deref(), Some("no-store"));
    assert_eq!(login.body["sub"], "alice");
    assert_eq!(login.body["expires_in"], 600);
    assert_eq!(login.body["refresh_expires_in"], 1_209_600);
    for (name, path, max_age) in [
        (ACCESS, "path=/", "max-age=600"),
        (REFRESH, "path=/refresh", "max-age=1209600"),
    ] {
        let c = login.cookie(name);
        for attr in ["httponly", "secure", "samesite=strict", path, max_age] {
            assert!(c.has(attr), "{name}: {attr} missing in {c:?}");
        }
    }
    let (access, first_refresh) = tokens(&login);

    // /me with the access cookie.
    let me = client.me(&format!("{ACCESS}={access}")).await;
    assert_eq!(me.status, StatusCode::OK, "{:?}", me.body);
    assert_eq!(me.body["sub"], "alice");
    assert_eq!(me.body["scope"], "orders:read orders:write");
    assert_eq!(me.body["iss"], "https://session.local");

    // Refresh rotates both cookies; the new access token works.
    let rotated = client.refresh(&first_refresh).await;
    assert_eq!(rotated.status, StatusCode::OK, "{:?}", rotated.body);
    assert_eq!(rotated.cache_control.as_deref(), Some("no-store"));
    assert_eq!(rotated.body["expires_in"], 600);
    let (newest_access, newest_refresh) = tokens(&rotated);
    assert_ne!(newest_access, access);
    assert_ne!(newest_refresh, first_refresh);
    let me = client.me(&format!("{ACCESS}={newest_access}")).await;
    assert_eq!(me.status, StatusCode::OK, "{:?}", me.body);

    // The first refresh token again: reuse. The session ends and the cookies are cleared.
    let reuse = client.refresh(&first_refresh).await;
    assert_rejected(&reuse, Reason::Revoked);
    for name in [ACCESS, REFRESH] {
        let c = reuse.cookie(name);
        assert_eq!(c.value, "", "{name}");
        assert!(c.has("max-age=0"), "{name}: {c:?}");
    }
    assert_rejected(
        &client.me(&format!("{ACCESS}={newest_access}")).await,
        Reason::Revoked,
    );
    assert_rejected(&client.refresh(&newest_refresh).await, Reason::Revoked);

    // Login with JSON, then logout: 204, cookies cleared, the access token revoked.
    assert_eq!(
        client.login_json("alice", "guess").await.status,
        StatusCode::UNAUTHORIZED
    );
    let bob = client.login_json("bob", "builder").await;
    assert_eq!(bob.status, StatusCode::OK, "{:?}", bob.body);
    let (bob_access, bob_refresh) = tokens(&bob);
    let jar = format!("{ACCESS}={bob_access}");
    assert_eq!(client.me(&jar).await.status, StatusCode::OK);
    let out = client.post("/logout", &jar).await;
    assert_eq!(out.status, StatusCode::NO_CONTENT);
    for (name, path) in [(ACCESS, "path=/"), (REFRESH, "path=/refresh")] {
        let c = out.cookie(name);
        assert_eq!(c.value, "", "{name}");
        assert!(c.has("max-age=0") && c.has(path), "{name}: {c:?}");
    }
    assert_rejected(&client.me(&jar).await, Reason::Revoked);
    assert_rejected(&client.refresh(&bob_refresh).await, Reason::Revoked);
}
