//! Quick start: an axum API protected by `TokenAuthLayer`, on an embedded default.
//!
//! ```text
//! cargo run --example quickstart          # PORT=8080 cargo run --example quickstart
//! cargo run --example quickstart -- --help
//!
//! options:
//!   -h, --help   print this help
//! environment:
//!   PORT         the port to listen on, on 127.0.0.1 (default 3000)
//! ```
//!
//! It makes a random HS256 secret at start-up and writes it to a file in the system temporary
//! directory (`quickstart-<pid>.secret` under `std::env::temp_dir()`; mode 0600 on Unix,
//! removed when the server stops on Ctrl-C or SIGTERM). It prints three tokens (valid,
//! expired, wrong audience) with a ready `curl` line each and, under each rejected one, the
//! `doctor` command that explains it:
//!
//! ```text
//! cargo run --example doctor -- <token> --secret-file <path> --aud api://quickstart --iss https://quickstart.local
//! ```
//!
//! It serves:
//!
//! - `GET /`   public;
//! - `GET /me` protected: echoes the caller's claims as JSON.

use std::path::{Path, PathBuf};
use std::time::Duration;

use axum::{routing::get, Json, Router};
use tower_token_auth::testing::TestKey;
use tower_token_auth::{Algorithm, AuthConfig, Claims, StandardClaims, TokenAuthLayer};

const ISSUER: &str = "https://quickstart.local";
const AUDIENCE: &str = "api://quickstart";

const USAGE: &str = "\
usage: cargo run --example quickstart [-- --help]

  -h, --help   print this help

environment:
  PORT         the port to listen on, on 127.0.0.1 (default 3000)

Prints a valid, an expired and a wrong-audience token with a curl line each, and for each
rejected one the doctor command that explains it. The HMAC secret is random per start and
written to a file in the temporary directory (mode 0600 on Unix), removed on Ctrl-C or SIGTERM.";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    if let Some(arg) = std::env::args().nth(1) {
        if arg == "-h" || arg == "--help" {
            println!("{USAGE}");
            return Ok(());
        }
        // Arguments were ignored before `--help` existed: keep starting, and say so.
        eprintln!("quickstart: ignoring unknown argument {arg:?} (see --help)");
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "tower_token_auth=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();

    // A key made at start-up. In production use Keys::hmac(secret from your vault),
    // Keys::rsa_pem(..) or a JWK set; tokens come from your identity provider.
    // The secret is 64 hex characters (so it cannot end with a line break, which the doctor's
    // --secret-file would remove), written to a file only for the doctor.
    let secret = random_hex_secret()?;
    let secret_file = SecretFile::create(&secret)?;
    let key = TestKey::hmac(Algorithm::HS256, secret).with_kid("quickstart");

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
    println!("Why it is rejected:");
    println!("{}", doctor_line(&expired, secret_file.path()));
    println!();
    println!("Wrong audience (expect 401 invalid_token, reason wrong_audience):");
    println!("curl -i -H 'Authorization: Bearer {wrong_audience}' {url}/me");
    println!("Why it is rejected:");
    println!("{}", doctor_line(&wrong_audience, secret_file.path()));
    println!();
    println!("Public page: curl -i {url}/");

    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown())
        .await;
    // Removes the secret file (also on an error above, when `secret_file` is dropped).
    drop(secret_file);
    served?;
    Ok(())
}

/// Ctrl-C, or SIGTERM on Unix (what `kill` and service managers send).
async fn shutdown() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The doctor command that explains `token`, ready to paste.
fn doctor_line(token: &str, secret_file: &Path) -> String {
    format!(
        "cargo run --example doctor -- {token} --secret-file {} --aud {AUDIENCE} --iss {ISSUER}",
        shell_quote(&secret_file.to_string_lossy())
    )
}

/// `s` as one shell word: as is when it needs no quoting, else in single quotes.
fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | '-' | ':' | '\\'));
    if plain {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// 32 random bytes as 64 hex characters.
fn random_hex_secret() -> Result<Vec<u8>, Box<dyn std::error::Error>> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| format!("no randomness: {e}"))?;
    Ok(bytes
        .iter()
        .flat_map(|b| format!("{b:02x}").into_bytes())
        .collect())
}

/// The secret, in a file of the temporary directory readable by this user only; removed on
/// drop.
struct SecretFile(PathBuf);

impl SecretFile {
    fn create(secret: &[u8]) -> std::io::Result<Self> {
        use std::io::Write;

        let path = std::env::temp_dir().join(format!("quickstart-{}.secret", std::process::id()));
        // A new file only (never one that is there, or a link planted in a shared directory),
        // created with mode 0600 on Unix.
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = match options.open(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                // Left by an earlier process with the same id that was killed.
                std::fs::remove_file(&path)?;
                options.open(&path)?
            }
            other => other?,
        };
        let guard = SecretFile(path);
        file.write_all(secret)?;
        Ok(guard)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for SecretFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

async fn index() -> &'static str {
    "tower-token-auth quickstart: GET /me with a bearer token\n"
}

async fn me(claims: Claims<StandardClaims>) -> Json<Claims<StandardClaims>> {
    Json(claims)
}
