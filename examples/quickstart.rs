//! Quick start: an axum API protected by `TokenAuthLayer`, on an embedded default.
//!
//! ```text
//! cargo run --example quickstart          # PORT=8080 cargo run --example quickstart
//! ```
//!
//! It makes a random HS256 secret at start-up (no files needed), prints three tokens (valid,
//! expired, wrong audience) with a ready `curl` line each, and serves:
//!
//! - `GET /`   public;
//! - `GET /me` protected: echoes the caller's claims as JSON.

use std::time::Duration;

use axum::{routing::get, Json, Router};
use tower_token_auth::testing::TestKey;
use tower_token_auth::{AuthConfig, Claims, StandardClaims, TokenAuthLayer};

const ISSUER: &str = "https://quickstart.local";
const AUDIENCE: &str = "api://quickstart";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "tower_token_auth=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();

    // A key made at start-up. In production use Keys::hmac(secret from your vault),
    // Keys::rsa_pem(..) or a JWK set; tokens come from your identity provider.
    let key = TestKey::hs256().with_kid("quickstart");

    let config = AuthConfig::builder()
        .keys(key.keys())
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .realm("quickstart")
        .build()?;

    let protected = Router::new()
        .route("/me", get(me))
        .layer(TokenAuthLayer::new(config));
    let app = Router::new().route("/", get(index)).merge(protected);

    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let url = format!("http://{}", listener.local_addr()?);

    let valid = key
        .token()
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .subject("alice")
        .scope("orders:read")
        .expires_in(Duration::from_secs(3600))
        .claim("name", "Alice Example")
        .sign();
    let expired = key
        .token()
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .subject("alice")
        .expired_for(Duration::from_secs(600))
        .sign();
    let wrong_audience = key
        .token()
        .issuer(ISSUER)
        .audience("api://someone-else")
        .subject("alice")
        .expires_in(Duration::from_secs(3600))
        .sign();

    println!("tower-token-auth quickstart listening on {url}");
    println!();
    println!("Valid token (expect 200 and your claims):");
    println!("curl -i -H 'Authorization: Bearer {valid}' {url}/me");
    println!();
    println!("Expired token (expect 401 invalid_token, reason expired):");
    println!("curl -i -H 'Authorization: Bearer {expired}' {url}/me");
    println!();
    println!("Wrong audience (expect 401 invalid_token, reason wrong_audience):");
    println!("curl -i -H 'Authorization: Bearer {wrong_audience}' {url}/me");
    println!();
    println!("Public page: curl -i {url}/");

    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

async fn index() -> &'static str {
    "tower-token-auth quickstart: GET /me with a bearer token\n"
}

async fn me(Claims(claims): Claims<StandardClaims>) -> Json<StandardClaims> {
    Json(claims)
}
