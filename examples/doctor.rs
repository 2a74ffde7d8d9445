//! `doctor`: explains why a token is rejected (or that it is fine).
//!
//! ```text
//! cargo run --example doctor -- <token|-> [key source] [--aud AUD] [--iss ISS] [--leeway SECS]
//!                                [--scope SCOPE] [--allow-http] [--json]
//!                                [--introspect [--introspect-url URL] --client-id ID
//!                                 --client-secret-file FILE [--client-secret-post]]
//!                                [--dpop-proof PROOF --method METHOD --url URL]
//!
//! key source (at most one; without one, the signature is not verified):
//!   --jwks-url URL      a JWK set URL
//!   --jwks-file FILE    a JWK set file ({"keys": [...]})
//!   --issuer URL        an OpenID Connect issuer (keys by discovery; also checks `iss`)
//!   --secret-file FILE  an HMAC secret: the file's bytes, with trailing `\n` and `\r` removed
//!   --pem-file FILE     an RSA, EC or Ed25519 public key (PEM)
//! other options:
//!   --aud AUD           expected audience (repeatable)
//!   --iss ISS           expected issuer (repeatable)
//!   --leeway SECS       clock-skew leeway for exp/nbf (default 30, at most 300)
//!   --scope SCOPE       a scope the token must grant (repeatable)
//!   --allow-http        allow http:// key URLs (local tests)
//!   --json              print the diagnosis as JSON
//!   -h, --help          print the usage
//!
//! opaque tokens (RFC 7662 introspection):
//!   --introspect              ask the issuer's introspection endpoint about tokens that are
//!                             not JWTs (found by discovery at --issuer URL)
//!   --introspect-url URL      the introspection endpoint itself (implies --introspect)
//!   --client-id ID            the client that may introspect
//!   --client-secret-file FILE its secret (raw bytes, trailing `\n` and `\r` removed; a file,
//!                             so the secret is not in the process list or shell history)
//!   --client-secret-post      send the credentials in the form (default: HTTP Basic)
//!
//! DPoP-bound tokens (RFC 9449):
//!   --dpop-proof PROOF  the `DPoP` header sent with the token (`-` is not accepted here)
//!   --method METHOD     the request's method (default GET)
//!   --url URL           the request's absolute URL, as the client called it
//! ```
//!
//! `-` reads the token from standard input. Without `--aud` (or `--iss`, unless `--issuer` is
//! given) that check is skipped, and the report says so. The report is coloured on a terminal
//! (unless `NO_COLOR` is set) and plain when piped; `--json` prints the diagnosis as JSON, with
//! `"signature_verified"` true only when a key verified the signature.
//!
//! The secret file holds the raw secret. Trailing line breaks (`\n`, `\r`) are removed, so
//! a file written by `echo secret > file` works; a secret that ends with such a byte cannot
//! be given this way.
//!
//! **Without a key source** the doctor still decodes and explains everything that does not
//! need a key: the header and claims, `exp` and `nbf` against the clock (with the clock-skew
//! hint), `typ` and token kind (an ID or refresh token sent as an access token), `iss` and
//! `aud` against `--iss` and `--aud`, the scopes, and opaque, encrypted (JWE) or wrongly
//! pasted input. It says first that the signature was **not** verified and which option
//! would verify it (on standard error with `--json`).
//!
//! Exit status:
//!
//! - 0: the token is valid (a key verified the signature; never without a key source);
//! - 1: it is not: a problem was found (with or without a key source);
//! - 2: bad usage (unknown flag, no token, unreadable file, configuration error);
//! - 3: no key source was given and no problem was found, but the signature was not verified.
//!
//! Warnings (e.g. an ID token that would be accepted) do not change the exit status.

use std::io::{IsTerminal, Read};
use std::process::ExitCode;
use std::time::Duration;

use tower_token_auth::binding::Dpop;
use tower_token_auth::diagnose::{diagnose_with, DiagnoseOptions};
use tower_token_auth::introspection::Introspection;
use tower_token_auth::keys::remote::Remote;
use tower_token_auth::{AuthConfig, ConfigError, Keys};

const USAGE: &str = "\
usage: doctor <token|-> [--jwks-url URL | --jwks-file FILE | --issuer URL | --secret-file FILE | --pem-file FILE]
              [--aud AUD]... [--iss ISS]... [--leeway SECS] [--scope SCOPE]... [--allow-http] [--json]

  <token>             the token; `-` reads it from standard input
  --jwks-url URL      verify with the JWK set at URL
  --jwks-file FILE    verify with the JWK set in FILE
  --issuer URL        verify with the keys of an OpenID Connect issuer (discovery); checks `iss`
  --secret-file FILE  verify with the HMAC secret in FILE (raw bytes; trailing \\n and \\r removed)
  --pem-file FILE     verify with the RSA, EC or Ed25519 public key in FILE (PEM)
  --aud AUD           expected audience (repeatable); without it `aud` is not checked
  --iss ISS           expected issuer (repeatable); without it `iss` is not checked
  --leeway SECS       clock-skew leeway for exp/nbf (default 30, at most 300)
  --scope SCOPE       a scope the token must grant (repeatable)
  --allow-http        allow http:// key URLs (local tests)
  --json              print the diagnosis as JSON
  -h, --help          print this help

opaque tokens (RFC 7662 introspection):
  --introspect              ask the issuer's introspection endpoint about tokens that are not JWTs
                            (found by discovery at --issuer URL)
  --introspect-url URL      the introspection endpoint itself (implies --introspect)
  --client-id ID            the client that may introspect
  --client-secret-file FILE its secret (raw bytes; trailing \\n and \\r removed)
  --client-secret-post      send the credentials in the form (default: HTTP Basic)

DPoP-bound tokens (RFC 9449):
  --dpop-proof PROOF  the DPoP header sent with the token; checks it as the API would
  --method METHOD     the request's method (default GET)
  --url URL           the request's absolute URL, as the client called it (required with --dpop-proof)

Without a key source, everything but the signature is checked and the signature is NOT verified.

exit status: 0 valid, 1 invalid, 2 bad usage, 3 no problem found but the signature was not verified
             (no key source given)";

/// What to say when no key source was given, naming the options that verify.
const NOT_VERIFIED: &str = "Signature NOT verified: no key source was given, so anyone could have \
made this token. To verify it, add one of --secret-file FILE, --jwks-url URL, --jwks-file FILE, \
--issuer URL or --pem-file FILE.";

/// Exit status when no key source was given and nothing else is wrong.
const EXIT_NOT_VERIFIED: u8 = 3;

/// Where the keys come from.
enum KeyArg {
    JwksUrl(String),
    JwksFile(String),
    Issuer(String),
    SecretFile(String),
    PemFile(String),
}

#[derive(Default)]
struct Args {
    token: Option<String>,
    keys: Option<KeyArg>,
    audiences: Vec<String>,
    issuers: Vec<String>,
    scopes: Vec<String>,
    leeway: Option<u64>,
    allow_http: bool,
    json: bool,
    help: bool,
    introspect: bool,
    introspect_url: Option<String>,
    client_id: Option<String>,
    client_secret_file: Option<String>,
    client_secret_post: bool,
    dpop_proof: Option<String>,
    method: Option<String>,
    url: Option<String>,
}

fn parse(mut argv: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut args = Args::default();
    while let Some(arg) = argv.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_owned(), Some(v.to_owned())),
            _ => (arg.clone(), None),
        };
        let mut value = |name: &str| -> Result<String, String> {
            match inline.clone().or_else(|| argv.next()) {
                Some(v) => Ok(v),
                None => Err(format!("{name} needs a value")),
            }
        };
        let key = match flag.as_str() {
            "--jwks-url" => Some(KeyArg::JwksUrl(value("--jwks-url")?)),
            "--jwks-file" => Some(KeyArg::JwksFile(value("--jwks-file")?)),
            "--issuer" => Some(KeyArg::Issuer(value("--issuer")?)),
            "--secret-file" => Some(KeyArg::SecretFile(value("--secret-file")?)),
            "--pem-file" => Some(KeyArg::PemFile(value("--pem-file")?)),
            _ => None,
        };
        if let Some(key) = key {
            if args.keys.replace(key).is_some() {
                return Err("give one key source only".into());
            }
            continue;
        }
        match flag.as_str() {
            "--aud" => args.audiences.push(value("--aud")?),
            "--iss" => args.issuers.push(value("--iss")?),
            "--scope" => args.scopes.push(value("--scope")?),
            "--leeway" => {
                let v = value("--leeway")?;
                args.leeway = Some(
                    v.parse()
                        .map_err(|_| format!("--leeway takes whole seconds, not {v:?}"))?,
                );
            }
            "--allow-http" => args.allow_http = true,
            "--json" => args.json = true,
            "--introspect" => args.introspect = true,
            "--introspect-url" => {
                args.introspect_url = Some(value("--introspect-url")?);
                args.introspect = true;
            }
            "--client-id" => args.client_id = Some(value("--client-id")?),
            "--client-secret-file" => {
                args.client_secret_file = Some(value("--client-secret-file")?)
            }
            "--client-secret-post" => args.client_secret_post = true,
            "--dpop-proof" => args.dpop_proof = Some(value("--dpop-proof")?),
            "--method" => args.method = Some(value("--method")?),
            "--url" => args.url = Some(value("--url")?),
            "-h" | "--help" => args.help = true,
            f if f.starts_with('-') && f != "-" => return Err(format!("unknown flag {f}")),
            _ => {
                if args.token.replace(arg).is_some() {
                    return Err("give one token only".into());
                }
            }
        }
    }
    if args.dpop_proof.is_some() && args.url.is_none() {
        return Err("--dpop-proof needs --url URL (the absolute URL the client called)".into());
    }
    if args.dpop_proof.is_none() && (args.method.is_some() || args.url.is_some()) {
        return Err("--method and --url go with --dpop-proof".into());
    }
    if args.introspect {
        if args.client_id.is_none() || args.client_secret_file.is_none() {
            return Err("--introspect needs --client-id ID and --client-secret-file FILE".into());
        }
        if args.introspect_url.is_none() && !matches!(args.keys, Some(KeyArg::Issuer(_))) {
            return Err(
                "--introspect needs --issuer URL (the endpoint is found by discovery) or \
                 --introspect-url URL"
                    .into(),
            );
        }
    } else if args.client_id.is_some() || args.client_secret_file.is_some() {
        return Err("--client-id and --client-secret-file go with --introspect".into());
    }
    Ok(args)
}

/// The introspection options of `--introspect`, if given.
fn introspection(args: &Args) -> Result<Option<Introspection>, String> {
    if !args.introspect {
        return Ok(None);
    }
    let (Some(id), Some(path)) = (&args.client_id, &args.client_secret_file) else {
        return Ok(None);
    };
    let secret = String::from_utf8(trimmed(read_file(path)?))
        .map_err(|_| format!("{path}: the client secret is not UTF-8"))?;
    let intro = match &args.introspect_url {
        Some(url) => Introspection::endpoint(url),
        None => Introspection::discover(),
    };
    let intro = if args.client_secret_post {
        intro.client_secret_post(id, secret)
    } else {
        intro.client_secret_basic(id, secret)
    };
    Ok(Some(if args.allow_http {
        intro.allow_http()
    } else {
        intro
    }))
}

/// The bytes without trailing `\n` and `\r`.
fn trimmed(mut bytes: Vec<u8>) -> Vec<u8> {
    while bytes.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        bytes.pop();
    }
    bytes
}

fn read_file(path: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("cannot read {path}: {e}"))
}

fn build(args: &Args) -> Result<AuthConfig, String> {
    let remote = |r: Remote| {
        if args.allow_http {
            r.allow_http()
        } else {
            r
        }
    };
    let introspection = introspection(args)?;
    let candidates: Vec<Keys> = match &args.keys {
        // No key, but introspection: the endpoint is the only judge.
        None if introspection.is_some() => vec![Keys::default()],
        // No key: the configuration needs one to build, but the diagnosis runs with
        // `skip_signature_check` and never consults it.
        None => vec![Keys::hmac([0u8; 32])],
        Some(KeyArg::JwksUrl(url)) => vec![Keys::remote(remote(Remote::jwks_url(url)))],
        Some(KeyArg::Issuer(url)) => vec![Keys::remote(remote(Remote::oidc(url)))],
        Some(KeyArg::JwksFile(path)) => {
            let text = String::from_utf8(read_file(path)?)
                .map_err(|_| format!("{path} is not UTF-8 JSON"))?;
            vec![Keys::jwks_json(text)]
        }
        Some(KeyArg::SecretFile(path)) => vec![Keys::hmac(trimmed(read_file(path)?))],
        // The PEM holds one key type: try each; the first that builds is it.
        Some(KeyArg::PemFile(path)) => {
            let pem = read_file(path)?;
            vec![Keys::rsa_pem(&pem), Keys::ec_pem(&pem), Keys::ed_pem(&pem)]
        }
    };
    let oidc = matches!(args.keys, Some(KeyArg::Issuer(_)));
    let mut first_error: Option<ConfigError> = None;
    for keys in candidates {
        let mut b = AuthConfig::builder().keys(keys);
        for iss in &args.issuers {
            b = b.issuer(iss);
        }
        if args.issuers.is_empty() && !oidc {
            b = b.skip_issuer_check();
        }
        for aud in &args.audiences {
            b = b.audience(aud);
        }
        if args.audiences.is_empty() {
            b = b.skip_audience_check();
        }
        if let Some(secs) = args.leeway {
            b = b.leeway(Duration::from_secs(secs));
        }
        if let Some(intro) = &introspection {
            b = b.introspection(intro.clone());
        }
        if args.dpop_proof.is_some() {
            // The request URL is given whole: no base URL to configure.
            b = b.dpop(Dpop::allowed());
        }
        match b.build() {
            Ok(cfg) => return Ok(cfg),
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    Err(match first_error {
        Some(ConfigError::InvalidKey { .. }) if matches!(args.keys, Some(KeyArg::PemFile(_))) => {
            "the PEM file holds no usable RSA (2048 bits or more), EC (P-256, P-384) or Ed25519 \
             public key (BEGIN PUBLIC KEY)"
                .to_owned()
        }
        Some(e) => format!("configuration error: {e}"),
        None => "configuration error".to_owned(),
    })
}

fn usage_error(msg: &str) -> ExitCode {
    eprintln!("doctor: {msg}\n\n{USAGE}");
    ExitCode::from(2)
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse(std::env::args().skip(1)) {
        Ok(a) => a,
        Err(msg) => return usage_error(&msg),
    };
    if args.help {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let token = match args.token.as_deref() {
        None => return usage_error("no token given (pass it, or `-` to read standard input)"),
        Some("-") => {
            let mut text = String::new();
            if let Err(e) = std::io::stdin().read_to_string(&mut text) {
                return usage_error(&format!("cannot read the token from standard input: {e}"));
            }
            text.trim().to_owned()
        }
        Some(t) => t.to_owned(),
    };
    let config = match build(&args) {
        Ok(c) => c,
        Err(msg) => return usage_error(&msg),
    };
    let mut options = DiagnoseOptions::new();
    for s in &args.scopes {
        options = options.require_scope(s);
    }
    // With introspection, an opaque token is judged by its issuer: that is a verification.
    if let (Some(proof), Some(url)) = (&args.dpop_proof, &args.url) {
        let method = args.method.as_deref().unwrap_or("GET");
        let Ok(method) = http::Method::from_bytes(method.as_bytes()) else {
            return usage_error(&format!("--method {method:?} is not an HTTP method"));
        };
        options = options.dpop(proof, method, url);
    }
    let keyless = args.keys.is_none() && !args.introspect;
    if keyless {
        options = options.skip_signature_check();
    }

    let diagnosis = diagnose_with(&token, &config, &options).await;

    if keyless {
        // First, before anything about the token.
        if args.json {
            eprintln!("doctor: {NOT_VERIFIED}");
        } else {
            println!("{NOT_VERIFIED}\n");
        }
    }
    if args.json {
        match serde_json::to_string_pretty(&diagnosis) {
            Ok(json) => println!("{json}"),
            Err(e) => {
                eprintln!("doctor: cannot write JSON: {e}");
                return ExitCode::from(2);
            }
        }
    } else {
        let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        if colour {
            print!("{}", diagnosis.to_ansi_string());
        } else {
            print!("{diagnosis}");
        }
        let mut skipped = Vec::new();
        if args.audiences.is_empty() {
            skipped.push("--aud to check the audience");
        }
        if args.issuers.is_empty() && !matches!(args.keys, Some(KeyArg::Issuer(_))) {
            skipped.push("--iss to check the issuer");
        }
        if !skipped.is_empty() {
            println!("\nPass {}.", skipped.join(" and "));
        }
    }
    if diagnosis.is_valid() {
        ExitCode::SUCCESS
    } else if keyless && diagnosis.findings().is_empty() {
        ExitCode::from(EXIT_NOT_VERIFIED)
    } else {
        ExitCode::from(1)
    }
}
