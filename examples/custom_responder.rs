//! A custom responder: your API's own error shape instead of RFC 9457 problem bodies, with the
//! standard `WWW-Authenticate` challenge kept.
//!
//! ```text
//! cargo run --example custom_responder                 # PORT=8080 cargo run --example custom_responder
//! cargo run --example custom_responder -- --help
//!
//! options:
//!   -h, --help   print this help
//! environment:
//!   PORT         the port to listen on, on 127.0.0.1 (default 3002)
//! ```
//!
//! It prints a valid token and an expired one with a `curl` line each. A rejection answers
//! `{"error": {"code": "expired", "message": "...", "retry_after": null}}` with the status and
//! the `WWW-Authenticate` header the default responder would have sent.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use axum::{routing::get, Json, Router};
use http::request::Parts;
use tower_token_auth::response::www_authenticate;
use tower_token_auth::testing::TestKey;
use tower_token_auth::{
    responder_fn, AuthConfig, AuthError, Claims, StandardClaims, TokenAuthLayer,
};

const USAGE: &str = "\
usage: cargo run --example custom_responder [-- --help]

  -h, --help   print this help

environment:
  PORT         the port to listen on, on 127.0.0.1 (default 3002)";

/// The body your clients already parse, and the challenge RFC 6750 asks for, with the realm
/// (and RFC 9728 metadata URL, if any) of the configuration, read from the request parts.
fn respond(err: &AuthError, parts: &Parts) -> Response {
    let body = serde_json::json!({
        "error": {
            "code": err.reason().code(),
            "message": err.reason().description(),
            "retry_after": err.retry_after(),
        }
    });
    let mut res = (err.status(), Json(body)).into_response();
    if let Some(challenge) = www_authenticate(err, parts) {
        res.headers_mut()
            .insert(http::header::WWW_AUTHENTICATE, challenge);
    }
    res
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    if let Some(arg) = std::env::args().nth(1) {
        if arg == "-h" || arg == "--help" {
            println!("{USAGE}");
            return Ok(());
        }
        // Unknown arguments are ignored, as in the other examples.
        eprintln!("custom_responder: ignoring unknown argument {arg:?} (see --help)");
    }
    let key = TestKey::hs256().with_kid("custom");
    let cfg = AuthConfig::builder()
        .keys(key.keys())
        .issuer("https://custom.local")
        .audience("api://custom")
        .realm("custom") // in the challenge of every responder, this one too
        .build()?;

    // `responder_fn` infers the closure's argument types.
    let layer =
        TokenAuthLayer::new(cfg).with_responder(responder_fn(|err, parts| -> Response<Body> {
            respond(err, parts)
        }));
    let app = Router::new()
        .route(
            "/me",
            get(|c: Claims<StandardClaims>| async move { c.sub.clone().unwrap_or_default() }),
        )
        .layer(layer);

    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3002);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    let valid = key
        .token()
        .issuer("https://custom.local")
        .audience("api://custom")
        .subject("alice")
        .sign();
    let expired = key
        .token()
        .issuer("https://custom.local")
        .audience("api://custom")
        .subject("alice")
        .expired_for(std::time::Duration::from_secs(600))
        .sign();
    println!("custom_responder listening on http://{addr}\n");
    println!("Valid token (expect 200 alice):");
    println!("curl -i -H 'Authorization: Bearer {valid}' http://{addr}/me\n");
    println!("Expired token (expect 401 with {{\"error\": {{\"code\": \"expired\", ...}}}}):");
    println!("curl -i -H 'Authorization: Bearer {expired}' http://{addr}/me");
    axum::serve(listener, app).await?;
    Ok(())
}
