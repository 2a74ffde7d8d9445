//! An axum API protected with the keys of any OpenID Connect provider, found by discovery.
//!
//! ```text
//! cargo run --example oidc --features remote -- <issuer-url> <audience> [--allow-http] [--port N] [--access-token-profile]
//!
//! cargo run --example oidc --features remote -- https://login.example.com/tenant/v2.0 api://orders
//! ```
//!
//! - `<issuer-url>`: the issuer exactly as the provider names it (its
//!   `/.well-known/openid-configuration` must carry this `issuer`; mind the trailing slash);
//! - `<audience>`: the `aud` this API accepts;
//! - `--allow-http`: accept an `http://` issuer (loopback tests only);
//! - `--port N`: listen on 127.0.0.1:N (default 3000; 0 picks a free port);
//! - `--access-token-profile`: require RFC 9068 JWT access tokens (`typ: at+jwt`, with
//!   `sub`, `client_id`, `iat`, `jti`);
//! - `-h`, `--help`: print the usage.
//!
//! It fetches the provider's keys before serving (and says whether they loaded), then serves:
//!
//! - `GET /`      public;
//! - `GET /me`    protected: echoes the caller's claims as JSON;
//! - `GET /ready` 200 when the keys are loaded, 503 otherwise, with the key status as JSON.
//!
//! # Against the test provider
//!
//! `tests/oidc/provider.mjs` is a real OpenID provider (oidc-provider, node) with one client,
//! `test-client` / `test-secret`, that gets JWT access tokens with the client credentials grant:
//!
//! ```text
//! npm ci --prefix tests/oidc
//! node tests/oidc/provider.mjs                      # prints: LISTENING http://127.0.0.1:NNNN
//! cargo run --example oidc --features remote -- http://127.0.0.1:NNNN api://orders --allow-http --access-token-profile
//!
//! TOKEN=$(curl -s -u test-client:test-secret -d grant_type=client_credentials \
//!   -d resource=api://orders -d scope=orders:read http://127.0.0.1:NNNN/token | sed 's/.*"access_token":"\([^"]*\)".*/\1/')
//! curl -i -H "Authorization: Bearer $TOKEN" http://127.0.0.1:3000/me
//! curl -i http://127.0.0.1:3000/ready
//! ```

use axum::{extract::State, http::StatusCode, routing::get, Json, Router};
use serde_json::{json, Value};
use tower_token_auth::keys::remote::Remote;
use tower_token_auth::{AuthConfig, Claims, KeyStatus, Keys, StandardClaims, TokenAuthLayer};

const USAGE: &str = "\
usage: cargo run --example oidc --features remote -- <issuer-url> <audience> [--allow-http] [--port N] [--access-token-profile]

  <issuer-url>             the issuer exactly as the provider names it
  <audience>               the `aud` this API accepts
  --allow-http             accept an http:// issuer (loopback tests only)
  --port N                 listen on 127.0.0.1:N (default 3000; 0 picks a free port)
  --access-token-profile   require RFC 9068 JWT access tokens (typ at+jwt)
  -h, --help               print this help";

struct Args {
    issuer: String,
    audience: String,
    allow_http: bool,
    port: u16,
    profile: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut positional = Vec::new();
    let mut allow_http = false;
    let mut profile = false;
    let mut port = 3000;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--allow-http" => allow_http = true,
            "--access-token-profile" => profile = true,
            "--port" => {
                let value = args.next().ok_or("--port needs a number")?;
                port = value
                    .parse()
                    .map_err(|_| format!("--port: {value:?} is not a port number"))?;
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            flag if flag.starts_with("--") => return Err(format!("unknown option {flag}")),
            _ => positional.push(arg),
        }
    }
    let [issuer, audience]: [String; 2] = positional
        .try_into()
        .map_err(|_| "expected exactly two arguments: <issuer-url> <audience>".to_owned())?;
    Ok(Args {
        issuer,
        audience,
        allow_http,
        port,
        profile,
    })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("error: {e}");
            }
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "tower_token_auth=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();

    let mut remote = Remote::oidc(&args.issuer);
    if args.allow_http {
        remote = remote.allow_http();
    }
    let mut builder = AuthConfig::builder()
        .keys(Keys::remote(remote))
        .audience(&args.audience)
        .realm("oidc");
    if args.profile {
        builder = builder.access_token_profile();
    }
    let config = match builder.build() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("configuration error: {e}");
            if args.issuer.starts_with("http://") && !args.allow_http {
                eprintln!("(for a loopback test provider, pass --allow-http)");
            }
            std::process::exit(1);
        }
    };

    println!(
        "Issuer:   {} (tokens must carry exactly this `iss`)",
        args.issuer
    );
    println!("Audience: {}", args.audience);
    if args.profile {
        println!("Profile:  RFC 9068 (typ at+jwt; sub, client_id, iat, jti required)");
    }
    println!(
        "Fetching keys: discovery at {}/.well-known/openid-configuration, then its jwks_uri ...",
        args.issuer.trim_end_matches('/')
    );
    match config.warm_up().await {
        Ok(()) => {
            let keys: usize = config.key_status().iter().map(|s| s.keys).sum();
            println!("Keys loaded: {keys} usable signature key(s).");
        }
        Err(e) => {
            println!(
                "Keys NOT loaded ({}; the log on stderr says why). Serving anyway: protected \
                 requests answer 503 and retry the fetch, /ready answers 503 until the keys load.",
                e.reason().code()
            );
        }
    }

    let protected = Router::new()
        .route("/me", get(me))
        .layer(TokenAuthLayer::new(config.clone()));
    let app = Router::new()
        .route("/", get(index))
        .route("/ready", get(ready))
        .with_state(config)
        .merge(protected);

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await?;
    let url = format!("http://{}", listener.local_addr()?);
    println!();
    println!("Listening on {url}");
    println!("  public:    curl -i {url}/");
    println!("  readiness: curl -i {url}/ready");
    println!(
        "  protected: curl -i -H \"Authorization: Bearer $TOKEN\" {url}/me   (a token for audience {})",
        args.audience
    );

    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

async fn index() -> &'static str {
    "tower-token-auth oidc example: GET /me with a bearer token from the issuer; GET /ready\n"
}

async fn me(claims: Claims<StandardClaims>) -> Json<Claims<StandardClaims>> {
    Json(claims)
}

async fn ready(State(config): State<AuthConfig>) -> (StatusCode, Json<Value>) {
    let ready = config.is_ready();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let keys: Vec<Value> = config.key_status().iter().map(key_status_json).collect();
    (status, Json(json!({ "ready": ready, "keys": keys })))
}

fn key_status_json(s: &KeyStatus) -> Value {
    json!({
        "source": s.source,
        "ready": s.ready,
        "keys": s.keys,
        "age_secs": s.age_secs,
        "stale": s.stale,
        "fetch_ok": s.fetch_ok,
        "fetch_error": s.fetch_error,
        "unknown_kid_refetch": s.unknown_kid_refetch,
        "stale_served": s.stale_served,
    })
}
