//! An axum API protected with the keys of any OpenID Connect provider, found by discovery,
//! and optionally accepting its opaque access tokens by RFC 7662 introspection.
//!
//! ```text
//! cargo run --example oidc --features remote -- <issuer-url> <audience>... [--allow-http] [--port N] [--access-token-profile]
//!     [--introspection-client-id ID --introspection-client-secret SECRET] [--dpop allowed|required]
//!
//! cargo run --example oidc --features remote -- https://login.example.com/tenant/v2.0 api://orders
//! ```
//!
//! - `<issuer-url>`: the issuer exactly as the provider names it (its
//!   `/.well-known/openid-configuration` must carry this `issuer`; mind the trailing slash);
//! - `<audience>`: the `aud` this API accepts; give several to accept any of them (e.g. the
//!   audience of the provider's JWTs and that of its opaque tokens);
//! - `--allow-http`: accept an `http://` issuer (loopback tests only);
//! - `--port N`: listen on 127.0.0.1:N (default 3000; 0 picks a free port);
//! - `--access-token-profile`: require RFC 9068 JWT access tokens (`typ: at+jwt`, with
//!   `sub`, `client_id`, `iat`, `jti`); those claims are then required of introspection
//!   answers too;
//! - `--introspection-client-id ID` and `--introspection-client-secret SECRET` (both or
//!   neither): also accept opaque access tokens (anything that is not a JWT) by asking the
//!   provider's RFC 7662 `introspection_endpoint`, found by discovery, as the client `ID`
//!   authenticated with `client_secret_basic`. The answer's claims are checked like a JWT's
//!   (`exp`, `iss`, `aud`, ...); an active answer is cached up to 60 s (never past its `exp`),
//!   so a token revoked at the provider is refused at most a minute later. With
//!   `--allow-http`, an `http://` endpoint is accepted as well. The secret is never printed,
//!   but a command-line argument is visible to local users (`ps`): use this with test
//!   credentials;
//! - `--dpop allowed|required`: accept DPoP (RFC 9449) sender-constrained tokens:
//!   `Authorization: DPoP <token>` with a `DPoP: <proof>` header, the proof signed by the key
//!   the token is bound to (`cnf.jkt`), for this method and URL (`htu`:
//!   `http://127.0.0.1:<port>/...`, the address this example serves on), fresh (60 s), and
//!   never replayed. `allowed` accepts bearer tokens too (a DPoP-bound token sent as a bearer
//!   token is refused, `bound_token`); `required` accepts only the DPoP scheme (a bearer
//!   request gets a `DPoP` challenge only). Any other value is a usage error;
//! - `-h`, `--help`: print the usage.
//!
//! It fetches the provider's keys before serving (and says whether they loaded), then serves:
//!
//! - `GET /`      public;
//! - `GET /me`    protected: echoes the caller's claims as JSON (a JWT's, or the introspection
//!   answer of an opaque token);
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
//!
//! Opaque tokens: the provider issues them for the resource `api://opaque`, and its
//! resource-server client `api-client` / `api-secret` may introspect them. Accept them along
//! with the JWTs of `api://orders` (no `--access-token-profile`: the provider's introspection
//! answers carry no `sub` or `jti`):
//!
//! ```text
//! cargo run --example oidc --features remote -- http://127.0.0.1:NNNN api://opaque api://orders --allow-http \
//!   --introspection-client-id api-client --introspection-client-secret api-secret
//!
//! OPAQUE=$(curl -s -u test-client:test-secret -d grant_type=client_credentials \
//!   -d resource=api://opaque -d scope=read http://127.0.0.1:NNNN/token | sed 's/.*"access_token":"\([^"]*\)".*/\1/')
//! curl -i -H "Authorization: Bearer $OPAQUE" http://127.0.0.1:3000/me    # the introspection answer's claims
//! curl -s -u test-client:test-secret -d token=$OPAQUE http://127.0.0.1:NNNN/token/revocation
//! curl -i -H "Authorization: Bearer $OPAQUE" http://127.0.0.1:3000/me    # 401 "inactive", within 60 s
//! ```
//!
//! DPoP: the provider issues DPoP-bound access tokens (`cnf.jkt`) for the resource
//! `api://dpop` when the token request carries a proof. `tests/oidc/dpop.mjs` (node `jose`)
//! makes a key, gets such a token and prints it as JSON with proofs for one request
//! (`proofs.good`, `proofs.good2`, `proofs.replay`, attack variants; see its header comment).
//! The URL given to it must be the one this example serves (`htu`), and a proof is good for
//! about a minute:
//!
//! ```text
//! cargo run --example oidc --features remote -- http://127.0.0.1:NNNN api://dpop --allow-http --dpop required --port 3000
//!
//! OUT=$(node tests/oidc/dpop.mjs http://127.0.0.1:NNNN api://dpop http://127.0.0.1:3000/me)
//! TOKEN=$(echo "$OUT" | node -pe 'JSON.parse(require("fs").readFileSync(0, "utf8")).access_token')
//! PROOF=$(echo "$OUT" | node -pe 'JSON.parse(require("fs").readFileSync(0, "utf8")).proofs.good')
//! curl -i -H "Authorization: DPoP $TOKEN" -H "DPoP: $PROOF" http://127.0.0.1:3000/me    # 200, the claims (with cnf)
//! curl -i -H "Authorization: DPoP $TOKEN" -H "DPoP: $PROOF" http://127.0.0.1:3000/me    # 401 invalid_dpop_proof: a replay
//! curl -i -H "Authorization: Bearer $TOKEN" http://127.0.0.1:3000/me                   # 401, a DPoP challenge only
//! ```

use axum::{extract::State, http::StatusCode, routing::get, Json, Router};
use serde_json::{json, Value};
use tower_token_auth::binding::Dpop;
use tower_token_auth::introspection::Introspection;
use tower_token_auth::keys::remote::Remote;
use tower_token_auth::{AuthConfig, Claims, KeyStatus, Keys, StandardClaims, TokenAuthLayer};

const USAGE: &str = "\
usage: cargo run --example oidc --features remote -- <issuer-url> <audience>... [--allow-http] [--port N] [--access-token-profile]
           [--introspection-client-id ID --introspection-client-secret SECRET] [--dpop allowed|required]

  <issuer-url>             the issuer exactly as the provider names it
  <audience>...            the `aud` this API accepts (one or more)
  --allow-http             accept an http:// issuer (loopback tests only)
  --port N                 listen on 127.0.0.1:N (default 3000; 0 picks a free port)
  --access-token-profile   require RFC 9068 JWT access tokens (typ at+jwt)
  --introspection-client-id ID, --introspection-client-secret SECRET
                           (both or neither) also accept opaque access tokens by RFC 7662
                           introspection at the discovered introspection_endpoint, as client ID
                           (client_secret_basic)
  --dpop allowed|required  accept DPoP (RFC 9449) bound tokens with their proofs (htu:
                           http://127.0.0.1:<port>/...); `required`: only the DPoP scheme
  -h, --help               print this help";

struct Args {
    issuer: String,
    audiences: Vec<String>,
    allow_http: bool,
    port: u16,
    profile: bool,
    /// The introspection client id and secret (the secret is never printed).
    introspection: Option<(String, String)>,
    /// `--dpop`: `Some(true)` for `required`, `Some(false)` for `allowed`.
    dpop: Option<bool>,
}

fn parse_args() -> Result<Args, String> {
    let mut positional = Vec::new();
    let mut allow_http = false;
    let mut profile = false;
    let mut port = 3000;
    let mut client_id = None;
    let mut client_secret = None;
    let mut dpop = None;
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
            "--introspection-client-id" => {
                let value = args
                    .next()
                    .filter(|v| !v.is_empty() && !v.starts_with("--"))
                    .ok_or("--introspection-client-id needs a client id")?;
                client_id = Some(value);
            }
            "--introspection-client-secret" => {
                // Never echoed, not even in an error.
                let value = args
                    .next()
                    .filter(|v| !v.is_empty() && !v.starts_with("--"))
                    .ok_or("--introspection-client-secret needs a secret")?;
                client_secret = Some(value);
            }
            "--dpop" => {
                dpop = match args.next().as_deref() {
                    Some("allowed") => Some(false),
                    Some("required") => Some(true),
                    Some(other) => {
                        return Err(format!(
                            "--dpop: {other:?} is not a DPoP mode (allowed or required)"
                        ))
                    }
                    None => return Err("--dpop needs a mode: allowed or required".to_owned()),
                };
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            flag if flag.starts_with("--") => return Err(format!("unknown option {flag}")),
            _ => positional.push(arg),
        }
    }
    let introspection = match (client_id, client_secret) {
        (Some(id), Some(secret)) => Some((id, secret)),
        (None, None) => None,
        (Some(_), None) => {
            return Err(
                "--introspection-client-id needs --introspection-client-secret as well".to_owned(),
            )
        }
        (None, Some(_)) => {
            return Err(
                "--introspection-client-secret needs --introspection-client-id as well".to_owned(),
            )
        }
    };
    if positional.len() < 2 {
        return Err("expected at least two arguments: <issuer-url> <audience>...".to_owned());
    }
    let issuer = positional.remove(0);
    Ok(Args {
        issuer,
        audiences: positional,
        allow_http,
        port,
        profile,
        introspection,
        dpop,
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

    // Bound before the configuration is built: with DPoP, proofs name this address (`htu`),
    // and `--port 0` only has a port once bound.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await?;
    let url = format!("http://{}", listener.local_addr()?);

    let mut remote = Remote::oidc(&args.issuer);
    if args.allow_http {
        remote = remote.allow_http();
    }
    let mut builder = AuthConfig::builder()
        .keys(Keys::remote(remote))
        .realm("oidc");
    for audience in &args.audiences {
        builder = builder.audience(audience);
    }
    if args.profile {
        builder = builder.access_token_profile();
    }
    if let Some((id, secret)) = &args.introspection {
        let mut introspection = Introspection::discover().client_secret_basic(id, secret);
        if args.allow_http {
            introspection = introspection.allow_http();
        }
        builder = builder.introspection(introspection);
    }
    if let Some(required) = args.dpop {
        let dpop = if required {
            Dpop::required()
        } else {
            Dpop::allowed()
        };
        builder = builder.dpop(dpop.base_url(url.as_str()));
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
    println!("Audience: {}", args.audiences.join(", "));
    if args.profile {
        println!("Profile:  RFC 9068 (typ at+jwt; sub, client_id, iat, jti required)");
    }
    if let Some((id, _)) = &args.introspection {
        println!(
            "Opaque tokens: RFC 7662 introspection at the introspection_endpoint named by discovery, \
             as client {id} (client_secret_basic); active answers cached up to 60 s"
        );
    }
    match args.dpop {
        Some(true) => println!(
            "DPoP:     required (Authorization: DPoP with a proof for {url}/...; no bearer tokens)"
        ),
        Some(false) => println!(
            "DPoP:     allowed (Authorization: DPoP with a proof for {url}/..., or Bearer for unbound tokens)"
        ),
        None => {}
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

    println!();
    println!("Listening on {url}");
    println!("  public:    curl -i {url}/");
    println!("  readiness: curl -i {url}/ready");
    if args.dpop.is_some() {
        println!(
            "  protected: curl -i -H \"Authorization: DPoP $TOKEN\" -H \"DPoP: $PROOF\" {url}/me   (a proof for GET {url}/me)",
        );
    }
    if args.dpop != Some(true) {
        println!(
            "  protected: curl -i -H \"Authorization: Bearer $TOKEN\" {url}/me   (a token for audience {})",
            args.audiences.join(" or ")
        );
    }

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
