//! A server for `scripts/load.sh`: the same tiny handler behind no authentication and behind
//! `TokenAuthLayer` (default configuration, verified-token cache on) for HS256 and ES256.
//!
//! ```text
//! cargo run --release --example loadtarget -- --port 8080 --tokens 40000 --token-dir /tmp/tokens
//!
//! --port P          listen on 127.0.0.1:P (default 0: a free port)
//! --tokens N        distinct tokens per cold file (default 40000)
//! --token-dir DIR   where to write the token files (default: loadtarget-tokens in the temp dir)
//! --threads N       tokio worker threads (default: one per CPU)
//! -h, --help        print this help
//! ```
//!
//! At start-up it signs the tokens the load generator sends and writes them, one per line, to
//! `--token-dir`: `hs256-cold.txt` and `es256-cold.txt` hold `--tokens` distinct tokens each
//! (distinct `jti`; cycled through, each token comes back only after far more other tokens
//! than the cache has slots, so nearly every request is a cache miss: the cold path), and
//! `hs256-warm.txt`, `es256-warm.txt` one token each (every request after the first is a
//! cache hit). Then it prints `LISTENING http://127.0.0.1:PORT` and serves, on loopback only:
//!
//! - `GET /none`: no authentication;
//! - `GET /hs256-cold`, `GET /hs256-warm`: HS256, one layer (and cache) per route;
//! - `GET /es256-cold`, `GET /es256-warm`: ES256, one layer (and cache) per route;
//! - `GET /hs256-nocache`, `GET /es256-nocache`: the same with the cache off
//!   (`cache_capacity(0)`), to be driven with the cold token files;
//! - `GET /stats`: each layer's cache counters as JSON, so the script can report hit rates.
//!
//! Every handler answers `200 ok`. `--port 0` picks a free port; `--threads N` sets the tokio
//! worker threads (default: one per CPU). It stops on Ctrl-C or SIGTERM.

use std::time::Duration;

use axum::routing::get;
use axum::{Json, Router};
use tower_token_auth::testing::TestKey;
use tower_token_auth::{Algorithm, AuthConfig, TokenAuthLayer};

const ISSUER: &str = "https://issuer.load";
const AUDIENCE: &str = "api://load";
const HMAC_SECRET: &[u8; 32] = b"load-test-secret-0123456789abcde";

const USAGE: &str = "\
usage: loadtarget [--port P] [--tokens N] [--token-dir DIR] [--threads N]

  --port P          listen on 127.0.0.1:P (default 0: a free port)
  --tokens N        distinct tokens per cold file (default 40000)
  --token-dir DIR   where to write the token files (default: loadtarget-tokens in the temp dir)
  --threads N       tokio worker threads (default: one per CPU)
  -h, --help        print this help";

struct Args {
    port: u16,
    tokens: usize,
    token_dir: std::path::PathBuf,
    threads: Option<usize>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        port: 0,
        tokens: 40_000,
        token_dir: std::env::temp_dir().join("loadtarget-tokens"),
        threads: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--port" => args.port = value()?.parse().map_err(|e| format!("--port: {e}"))?,
            "--tokens" => args.tokens = value()?.parse().map_err(|e| format!("--tokens: {e}"))?,
            "--token-dir" => args.token_dir = value()?.into(),
            "--threads" => {
                args.threads = Some(value()?.parse().map_err(|e| format!("--threads: {e}"))?)
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if args.tokens == 0 {
        return Err("--tokens must be at least 1".into());
    }
    Ok(args)
}

fn config(key: &TestKey) -> AuthConfig {
    AuthConfig::builder()
        .keys(key.keys())
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .build()
        .expect("valid config")
}

/// `n` distinct tokens (distinct `jti`), valid for a day.
fn tokens(key: &TestKey, prefix: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            key.token()
                .issuer(ISSUER)
                .audience(AUDIENCE)
                .subject("load-user")
                .scope("orders:read")
                .claim("jti", format!("{prefix}-{i}"))
                .expires_in(Duration::from_secs(86_400))
                .sign()
        })
        .collect()
}

fn write_tokens(dir: &std::path::Path, name: &str, tokens: &[String]) -> std::io::Result<()> {
    let mut text = tokens.join("\n");
    text.push('\n');
    std::fs::write(dir.join(name), text)
}

async fn ok() -> &'static str {
    "ok"
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = parse_args().map_err(|e| {
        eprintln!("{USAGE}\n\n{e}");
        e
    })?;
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = args.threads {
        rt.worker_threads(n);
    }
    rt.enable_all().build()?.block_on(serve(args))
}

async fn serve(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let hs = TestKey::hmac(Algorithm::HS256, HMAC_SECRET.to_vec());
    let es = TestKey::es256();

    std::fs::create_dir_all(&args.token_dir)?;
    let started = std::time::Instant::now();
    write_tokens(
        &args.token_dir,
        "hs256-cold.txt",
        &tokens(&hs, "hs", args.tokens),
    )?;
    write_tokens(
        &args.token_dir,
        "es256-cold.txt",
        &tokens(&es, "es", args.tokens),
    )?;
    write_tokens(
        &args.token_dir,
        "hs256-warm.txt",
        &tokens(&hs, "hs-warm", 1),
    )?;
    write_tokens(
        &args.token_dir,
        "es256-warm.txt",
        &tokens(&es, "es-warm", 1),
    )?;
    eprintln!(
        "signed {} tokens per cold scenario in {:.1} s into {}",
        args.tokens,
        started.elapsed().as_secs_f64(),
        args.token_dir.display()
    );

    let layers = [
        ("hs256-cold", TokenAuthLayer::new(config(&hs))),
        ("hs256-warm", TokenAuthLayer::new(config(&hs))),
        ("es256-cold", TokenAuthLayer::new(config(&es))),
        ("es256-warm", TokenAuthLayer::new(config(&es))),
        (
            "hs256-nocache",
            TokenAuthLayer::new(config(&hs)).cache_capacity(0),
        ),
        (
            "es256-nocache",
            TokenAuthLayer::new(config(&es)).cache_capacity(0),
        ),
    ];
    let mut app = Router::new().route("/none", get(ok));
    for (name, layer) in &layers {
        app = app.route(&format!("/{name}"), get(ok).layer(layer.clone()));
    }
    let stats_layers = layers.clone();
    app = app.route(
        "/stats",
        get(move || {
            let stats: serde_json::Map<String, serde_json::Value> = stats_layers
                .iter()
                .map(|(name, layer)| {
                    let s = layer.cache_stats();
                    let v = serde_json::json!({
                        "capacity": s.capacity,
                        "hits": s.hits,
                        "misses": s.misses,
                    });
                    ((*name).to_owned(), v)
                })
                .collect();
            async move { Json(stats) }
        }),
    );

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port)).await?;
    println!("LISTENING http://{}", listener.local_addr()?);
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown())
        .await?;
    Ok(())
}

async fn shutdown() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
