//! Certificate-bound tokens (RFC 8705): an axum API served over mutual TLS with rustls
//! (tokio-rustls, aws-lc-rs), on 127.0.0.1.
//!
//! ```text
//! cargo run --example mtls -- --ca ca.pem --cert server.pem --key server-key.pem \
//!     --hmac-secret-file secret [--port N]
//!
//! options:
//!   --port N                 the port to listen on, on 127.0.0.1 (default 8443; 0: a free port)
//!   --ca FILE                PEM: the CA certificate(s) client certificates must chain to
//!   --cert FILE              PEM: the server's certificate chain (end-entity first)
//!   --key FILE               PEM: the server's private key (PKCS#8, PKCS#1 or SEC1)
//!   --hmac-secret-file FILE  the HS256 secret of the API's tokens (the file's bytes, trailing
//!                            `\n` and `\r` removed)
//!   -h, --help               print this help
//! environment:
//!   EXIT_ON_STDIN_CLOSE=1    exit when standard input closes (for tests: no orphan server)
//! ```
//!
//! The first line on standard output is `LISTENING https://127.0.0.1:N` (N the port, also with
//! `--port 0`); errors go to standard error (exit status 2 for bad arguments, 1 otherwise).
//!
//! Tokens are HS256 JWTs with issuer `https://issuer.example` and audience `api`. A token whose
//! claims have `cnf: {"x5t#S256": "<base64url SHA-256 of a client certificate's DER>"}` is
//! accepted only on a connection that presented that certificate; others get 401
//! `certificate_mismatch` (`WWW-Authenticate: Bearer error="invalid_token"`). A token without
//! `cnf` is a plain bearer token, accepted with or without a client certificate.
//!
//! Client certificates are **optional** at the TLS layer (`WebPkiClientVerifier` with
//! `allow_unauthenticated`): a certificate that is presented must chain to `--ca`, or the
//! handshake fails, but a client without one is let through to HTTP, so a bound token sent
//! without its certificate gets the precise `certificate_mismatch` answer instead of a
//! handshake failure. Make them required (drop `allow_unauthenticated`) when every client has
//! one.
//!
//! Each connection: TCP accept, TLS handshake, the peer's end-entity certificate (the first of
//! its chain) as a `ClientCertificate`, the app wrapped with `ClientCertificateLayer` for that
//! connection, served by hyper (HTTP/1.1). It serves:
//!
//! - `GET /me` protected: echoes the caller's claims as JSON.
//!
//! ```text
//! curl --cacert ca.pem --cert client.pem --key client-key.pem \
//!     -H "Authorization: Bearer $TOKEN" https://127.0.0.1:8443/me
//! ```

use std::io::Read;
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;

use axum::{routing::get, Json, Router};
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tower::Layer;
use tower_token_auth::binding::{ClientCertificate, ClientCertificateLayer};
use tower_token_auth::{AuthConfig, Claims, Keys, StandardClaims, TokenAuthLayer};

const ISSUER: &str = "https://issuer.example";
const AUDIENCE: &str = "api";

const USAGE: &str = "\
usage: mtls --ca FILE --cert FILE --key FILE --hmac-secret-file FILE [--port N]

  --port N                 the port to listen on, on 127.0.0.1 (default 8443; 0: a free port)
  --ca FILE                PEM: the CA certificate(s) client certificates must chain to
  --cert FILE              PEM: the server's certificate chain (end-entity first)
  --key FILE               PEM: the server's private key (PKCS#8, PKCS#1 or SEC1)
  --hmac-secret-file FILE  the HS256 secret of the API's tokens (the file's bytes, trailing
                           \\n and \\r removed)
  -h, --help               print this help

environment:
  EXIT_ON_STDIN_CLOSE=1    exit when standard input closes

Serves GET /me (the caller's claims as JSON) over mutual TLS on 127.0.0.1 and prints
`LISTENING https://127.0.0.1:N` first. Tokens: HS256, issuer https://issuer.example,
audience api. Client certificates are optional in the handshake (one that is presented must
chain to --ca); a token with cnf[\"x5t#S256\"] is accepted only with that certificate,
otherwise 401 certificate_mismatch.";

struct Args {
    port: u16,
    ca: String,
    cert: String,
    key: String,
    secret: String,
}

/// The arguments; `Ok(None)` for `--help`.
fn parse_args() -> Result<Option<Args>, String> {
    let mut port = 8443;
    let (mut ca, mut cert, mut key, mut secret) = (None, None, None, None);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "-h" | "--help" => return Ok(None),
            "--port" => {
                let v = value("--port")?;
                port = v
                    .parse()
                    .map_err(|_| format!("--port: not a port: {v:?}"))?;
            }
            "--ca" => ca = Some(value("--ca")?),
            "--cert" => cert = Some(value("--cert")?),
            "--key" => key = Some(value("--key")?),
            "--hmac-secret-file" => secret = Some(value("--hmac-secret-file")?),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    let need = |v: Option<String>, name: &str| v.ok_or_else(|| format!("{name} FILE is required"));
    Ok(Some(Args {
        port,
        ca: need(ca, "--ca")?,
        cert: need(cert, "--cert")?,
        key: need(key, "--key")?,
        secret: need(secret, "--hmac-secret-file")?,
    }))
}

#[tokio::main]
async fn main() {
    let args = match parse_args() {
        Ok(Some(args)) => args,
        Ok(None) => {
            println!("{USAGE}");
            return;
        }
        Err(e) => {
            eprintln!("mtls: {e} (see --help)");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(args).await {
        eprintln!("mtls: {e}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let secret = read_secret(Path::new(&args.secret))?;
    let config = AuthConfig::builder()
        .keys(Keys::hmac(secret))
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .build()?;
    let app = Router::new()
        .route("/me", get(me))
        .layer(TokenAuthLayer::new(config));
    let acceptor = TlsAcceptor::from(Arc::new(tls_config(&args)?));

    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, args.port)).await?;
    println!(
        "LISTENING https://127.0.0.1:{}",
        listener.local_addr()?.port()
    );
    if std::env::var_os("EXIT_ON_STDIN_CLOSE").is_some_and(|v| v == "1") {
        std::thread::spawn(|| {
            let mut sink = [0u8; 64];
            while matches!(std::io::stdin().read(&mut sink), Ok(n) if n > 0) {}
            std::process::exit(0);
        });
    }

    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                eprintln!("mtls: accept: {e}");
                continue;
            }
        };
        let (acceptor, app) = (acceptor.clone(), app.clone());
        tokio::spawn(async move {
            let tls = match acceptor.accept(tcp).await {
                Ok(tls) => tls,
                Err(e) => {
                    eprintln!("mtls: {peer}: TLS handshake: {e}");
                    return;
                }
            };
            // The handshake verified the chain: the end-entity certificate is the first.
            let cert = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .map(|der| ClientCertificate::from_der(der));
            let svc = TowerToHyperService::new(ClientCertificateLayer::new(cert).layer(app));
            let served = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tls), svc)
                .await;
            if let Err(e) = served {
                eprintln!("mtls: {peer}: {e}");
            }
        });
    }
}

/// TLS 1.2 and 1.3 with aws-lc-rs (given explicitly: no process-wide provider to pick), the
/// server's certificate, and client certificates verified against `--ca` when presented.
fn tls_config(args: &Args) -> Result<ServerConfig, Box<dyn std::error::Error>> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = RootCertStore::empty();
    for ca in CertificateDer::pem_file_iter(&args.ca).map_err(|e| format!("--ca: {e}"))? {
        roots.add(ca.map_err(|e| format!("--ca: {e}"))?)?;
    }
    if roots.is_empty() {
        return Err(format!("--ca {}: no certificate", args.ca).into());
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()?;
    let chain = CertificateDer::pem_file_iter(&args.cert)
        .map_err(|e| format!("--cert: {e}"))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("--cert: {e}"))?;
    let key = PrivateKeyDer::from_pem_file(&args.key).map_err(|e| format!("--key: {e}"))?;
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)?;
    Ok(config)
}

/// The secret file's bytes, trailing `\n` and `\r` removed.
fn read_secret(path: &Path) -> Result<Vec<u8>, String> {
    let mut secret =
        std::fs::read(path).map_err(|e| format!("--hmac-secret-file {}: {e}", path.display()))?;
    while secret.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        secret.pop();
    }
    if secret.is_empty() {
        return Err(format!("--hmac-secret-file {}: empty", path.display()));
    }
    Ok(secret)
}

async fn me(claims: Claims<StandardClaims>) -> Json<Claims<StandardClaims>> {
    Json(claims)
}
