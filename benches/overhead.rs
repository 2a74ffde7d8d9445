//! Per-request overhead of `TokenAuthLayer`, against the floor and a hand-written baseline.
//!
//! Run with `cargo bench --bench overhead` (release build; about two minutes on two cores).
//! `cargo test --benches` runs every benchmark once as a smoke test and skips the summary.
//!
//! For each of HS256, RS256, ES256 and EdDSA (the bundled test keys, one token per algorithm
//! minted once with a far-future `exp`), four criterion benchmarks in the group named after
//! the algorithm:
//!
//! - `bare`: a `service_fn` echo service called with `ready().call()`: the floor of a
//!   service call (request construction plus a current-thread tokio `block_on`).
//! - `jsonwebtoken_decode`: `jsonwebtoken::decode::<serde_json::Value>` alone, with the
//!   matching key and a `Validation` that checks what the layer checks (`iss`, `aud`, `exp`,
//!   `nbf`; `exp`, `iss` and `aud` required).
//! - `baseline_layer`: a thin hand-written tower layer around that `decode` (defined in this
//!   file): take the Bearer token, decode it, insert the claims into the request extensions,
//!   call the inner service, or answer 401.
//! - `tower_token_auth`: `TokenAuthLayer::new(cfg).layer(service_fn(echo))` with the same
//!   accepted token.
//!
//! Group `ES256_rejections` measures the rejection paths through `tower_token_auth`: no
//! token, an expired (correctly signed) token, a bad signature (another token's valid
//! signature, so the crypto runs in full) and a malformed token (`"abc"`).
//!
//! Every variant that goes through a service builds its `http::Request<()>` inside the
//! iteration (from a prebuilt `HeaderValue`) and drives it with the same runtime, so those
//! costs are equal everywhere. Each variant is checked once before it is measured (accepted
//! tokens answer 200, rejections answer 401 with the expected `Reason`).
//!
//! After criterion, a timing pass of its own (after warm-up, 15 interleaved batches of about
//! 10 ms per variant, median) prints the ratio table: `ours / baseline_layer`,
//! `ours / jsonwebtoken_decode` and the absolute overhead `ours - bare`, all measured in the
//! same run.

use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::Criterion;
use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{HeaderValue, Request, Response, StatusCode};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;
use tokio::runtime::Runtime;
use tower::{service_fn, Layer, Service, ServiceExt};
use tower_token_auth::testing::TestKey;
use tower_token_auth::{AuthConfig, AuthError, Reason, TokenAuthLayer};

const ISSUER: &str = "https://issuer.bench";
const AUDIENCE: &str = "api://bench";
const HMAC_SECRET: &[u8; 32] = b"0123456789abcdef0123456789abcdef";
const FAR_FUTURE: Duration = Duration::from_secs(10 * 365 * 86400);

/// One measured variant: a closure doing one request (or one decode).
type Variant = Box<dyn FnMut()>;

// ---------------------------------------------------------------------------------------
// The thin hand-written layer (the baseline).
// ---------------------------------------------------------------------------------------

/// A minimal JWT layer: Bearer token, `jsonwebtoken::decode`, claims into the extensions.
#[derive(Clone)]
struct JwtLayer {
    key: Arc<DecodingKey>,
    validation: Arc<Validation>,
}

impl<S> Layer<S> for JwtLayer {
    type Service = JwtService<S>;

    fn layer(&self, inner: S) -> JwtService<S> {
        JwtService {
            inner,
            key: self.key.clone(),
            validation: self.validation.clone(),
        }
    }
}

#[derive(Clone)]
struct JwtService<S> {
    inner: S,
    key: Arc<DecodingKey>,
    validation: Arc<Validation>,
}

impl<S, B> Service<Request<B>> for JwtService<S>
where
    S: Service<Request<B>, Response = Response<Bytes>>,
{
    type Response = Response<Bytes>;
    type Error = S::Error;
    type Future = JwtFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        let claims = req
            .headers()
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .and_then(|t| jsonwebtoken::decode::<Value>(t, &self.key, &self.validation).ok());
        match claims {
            Some(data) => {
                req.extensions_mut().insert(data.claims);
                JwtFuture::Inner {
                    fut: self.inner.call(req),
                }
            }
            None => {
                let mut res = Response::new(Bytes::new());
                *res.status_mut() = StatusCode::UNAUTHORIZED;
                res.headers_mut().insert(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer error=\"invalid_token\""),
                );
                JwtFuture::Rejected {
                    response: Some(res),
                }
            }
        }
    }
}

pin_project_lite::pin_project! {
    #[project = JwtFutureProj]
    enum JwtFuture<F> {
        Inner { #[pin] fut: F },
        Rejected { response: Option<Response<Bytes>> },
    }
}

impl<F, E> Future for JwtFuture<F>
where
    F: Future<Output = Result<Response<Bytes>, E>>,
{
    type Output = Result<Response<Bytes>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project() {
            JwtFutureProj::Inner { fut } => fut.poll(cx),
            JwtFutureProj::Rejected { response } => {
                Poll::Ready(Ok(response.take().expect("polled after completion")))
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Fixtures.
// ---------------------------------------------------------------------------------------

async fn echo(req: Request<()>) -> Result<Response<Bytes>, Infallible> {
    black_box(&req);
    Ok(Response::new(Bytes::new()))
}

/// The request every service variant builds per iteration.
fn request(auth: Option<&HeaderValue>) -> Request<()> {
    let mut req = Request::new(());
    if let Some(auth) = auth {
        req.headers_mut().insert(AUTHORIZATION, auth.clone());
    }
    req
}

fn bearer(token: &str) -> HeaderValue {
    HeaderValue::try_from(format!("Bearer {token}")).expect("token is a valid header value")
}

/// Calls `svc` once with `req` on `rt`.
fn call<S>(rt: &Runtime, svc: &mut S, req: Request<()>) -> Response<Bytes>
where
    S: Service<Request<()>, Response = Response<Bytes>, Error = Infallible>,
{
    match rt.block_on(async { svc.ready().await?.call(req).await }) {
        Ok(res) => res,
        Err(never) => match never {},
    }
}

/// jsonwebtoken's global crypto provider: only needed when both backends are compiled in
/// (`--all-features`); building an `AuthConfig` installs it too. An earlier one is kept.
fn install_provider() {
    #[cfg(feature = "aws-lc-rs")]
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    #[cfg(all(feature = "rust-crypto", not(feature = "aws-lc-rs")))]
    let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
}

struct Alg {
    name: &'static str,
    key: TestKey,
    decoding: DecodingKey,
}

fn algorithms() -> Vec<Alg> {
    let pem = |k: &TestKey| k.public_pem().expect("asymmetric test key").as_bytes();
    let hs = TestKey::hmac(Algorithm::HS256, HMAC_SECRET.to_vec());
    let rs = TestKey::rs256();
    let es = TestKey::es256();
    let ed = TestKey::ed25519();
    vec![
        Alg {
            name: "HS256",
            decoding: DecodingKey::from_secret(HMAC_SECRET),
            key: hs,
        },
        Alg {
            name: "RS256",
            decoding: DecodingKey::from_rsa_pem(pem(&rs)).expect("RSA PEM"),
            key: rs,
        },
        Alg {
            name: "ES256",
            decoding: DecodingKey::from_ec_pem(pem(&es)).expect("EC PEM"),
            key: es,
        },
        Alg {
            name: "EdDSA",
            decoding: DecodingKey::from_ed_pem(pem(&ed)).expect("Ed25519 PEM"),
            key: ed,
        },
    ]
}

fn accepted_token(key: &TestKey) -> String {
    key.token()
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .subject("bench-user")
        .scope("orders:read orders:write")
        .expires_in(FAR_FUTURE)
        .sign()
}

fn validation(alg: Algorithm) -> Validation {
    let mut v = Validation::new(alg);
    v.set_issuer(&[ISSUER]);
    v.set_audience(&[AUDIENCE]);
    v.set_required_spec_claims(&["exp", "iss", "aud"]);
    v.validate_nbf = true;
    v
}

fn ours_layer(key: &TestKey) -> TokenAuthLayer {
    let cfg = AuthConfig::builder()
        .keys(key.keys())
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .build()
        .expect("valid config");
    TokenAuthLayer::new(cfg)
}

/// A service variant: checks the response once, then returns the measured closure.
fn service_variant<S>(
    rt: &Rc<Runtime>,
    mut svc: S,
    auth: Option<HeaderValue>,
    expect: Result<(), Reason>,
) -> Variant
where
    S: Service<Request<()>, Response = Response<Bytes>, Error = Infallible> + 'static,
{
    let res = call(rt, &mut svc, request(auth.as_ref()));
    match expect {
        Ok(()) => assert_eq!(res.status(), StatusCode::OK, "expected acceptance"),
        Err(reason) => {
            assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
            let err = res.extensions().get::<AuthError>().expect("AuthError");
            assert_eq!(err.reason(), reason);
        }
    }
    let rt = rt.clone();
    Box::new(move || {
        let res = call(&rt, &mut svc, request(auth.as_ref()));
        black_box(res);
    })
}

/// The four accepted-path variants for one algorithm, in table order.
fn accepted_variants(rt: &Rc<Runtime>, alg: &Alg) -> Vec<(&'static str, Variant)> {
    let token = accepted_token(&alg.key);
    let auth = bearer(&token);
    let validation = validation(alg.key.algorithm());

    let key = alg.decoding.clone();
    let val = validation.clone();
    let decoded = jsonwebtoken::decode::<Value>(&token, &key, &val);
    assert!(
        decoded.is_ok(),
        "{}: jsonwebtoken rejects: {decoded:?}",
        alg.name
    );
    let decode: Variant = Box::new(move || {
        let res = jsonwebtoken::decode::<Value>(black_box(token.as_str()), &key, &val);
        black_box(res.ok());
    });

    let baseline = JwtLayer {
        key: Arc::new(alg.decoding.clone()),
        validation: Arc::new(validation),
    };
    vec![
        (
            "bare",
            service_variant(rt, service_fn(echo), Some(auth.clone()), Ok(())),
        ),
        ("jsonwebtoken_decode", decode),
        (
            "baseline_layer",
            service_variant(
                rt,
                baseline.layer(service_fn(echo)),
                Some(auth.clone()),
                Ok(()),
            ),
        ),
        (
            "tower_token_auth",
            service_variant(
                rt,
                ours_layer(&alg.key).layer(service_fn(echo)),
                Some(auth),
                Ok(()),
            ),
        ),
    ]
}

/// The ES256 rejection paths through `tower_token_auth`.
fn rejection_variants(rt: &Rc<Runtime>) -> Vec<(&'static str, Variant)> {
    let key = TestKey::es256();
    let good = accepted_token(&key);
    let other = key
        .token()
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .subject("someone-else")
        .expires_in(FAR_FUTURE)
        .sign();
    let expired = key
        .token()
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .subject("bench-user")
        .expired_for(Duration::from_secs(3600))
        .sign();
    // The signed part of `good` with the (valid, same-length) signature of `other`.
    let (signed, _) = good.rsplit_once('.').expect("three segments");
    let (_, other_sig) = other.rsplit_once('.').expect("three segments");
    let bad_signature = format!("{signed}.{other_sig}");

    let svc = || ours_layer(&key).layer(service_fn(echo));
    vec![
        (
            "missing",
            service_variant(rt, svc(), None, Err(Reason::Missing)),
        ),
        (
            "expired",
            service_variant(rt, svc(), Some(bearer(&expired)), Err(Reason::Expired)),
        ),
        (
            "bad_signature",
            service_variant(
                rt,
                svc(),
                Some(bearer(&bad_signature)),
                Err(Reason::BadSignature),
            ),
        ),
        (
            "malformed",
            service_variant(rt, svc(), Some(bearer("abc")), Err(Reason::Malformed)),
        ),
    ]
}

// ---------------------------------------------------------------------------------------
// Criterion, then the summary.
// ---------------------------------------------------------------------------------------

fn run_criterion(c: &mut Criterion, groups: &mut [(String, Vec<(&'static str, Variant)>)]) {
    for (group_name, variants) in groups.iter_mut() {
        let mut group = c.benchmark_group(group_name.as_str());
        for (name, f) in variants.iter_mut() {
            group.bench_function(*name, |b| b.iter(&mut *f));
        }
        group.finish();
    }
}

/// Median nanoseconds per call of each variant: warm-up and calibration (~100 ms each), then
/// 15 rounds in which every variant runs one batch of ~10 ms (interleaved, so drifting
/// machine load affects all variants alike).
fn measure(variants: &mut [(&'static str, Variant)]) -> Vec<f64> {
    const ROUNDS: usize = 15;
    let batch_iters: Vec<u64> = variants
        .iter_mut()
        .map(|(_, f)| {
            let start = Instant::now();
            let mut n = 0u64;
            while start.elapsed() < Duration::from_millis(100) {
                f();
                n += 1;
            }
            let per_call = start.elapsed().as_secs_f64() / n as f64;
            ((0.010 / per_call).ceil() as u64).max(1)
        })
        .collect();
    let mut samples = vec![Vec::with_capacity(ROUNDS); variants.len()];
    for _ in 0..ROUNDS {
        for (i, (_, f)) in variants.iter_mut().enumerate() {
            let start = Instant::now();
            for _ in 0..batch_iters[i] {
                f();
            }
            samples[i].push(start.elapsed().as_secs_f64() * 1e9 / batch_iters[i] as f64);
        }
    }
    samples
        .into_iter()
        .map(|mut s| {
            s.sort_by(f64::total_cmp);
            s[ROUNDS / 2]
        })
        .collect()
}

fn us(ns: f64) -> String {
    format!("{:.2}us", ns / 1000.0)
}

fn summary(groups: &mut [(String, Vec<(&'static str, Variant)>)]) {
    println!();
    println!("== overhead summary: own timing pass, median of 15 interleaved ~10 ms batches ==");
    println!(
        "{:<6} {:>9} {:>9} {:>9} {:>9} | {:>14} {:>12} {:>10} {:>14}",
        "alg",
        "bare",
        "decode",
        "baseline",
        "ours",
        "ours/baseline",
        "ours/decode",
        "ours-bare",
        "ours-baseline"
    );
    let (accepted, rejections) = groups.split_at_mut(4);
    for (alg, variants) in accepted.iter_mut() {
        let t = measure(variants);
        let (bare, decode, baseline, ours) = (t[0], t[1], t[2], t[3]);
        println!(
            "{:<6} {:>9} {:>9} {:>9} {:>9} | {:>14.3} {:>12.3} {:>10} {:>14}",
            alg,
            us(bare),
            us(decode),
            us(baseline),
            us(ours),
            ours / baseline,
            ours / decode,
            us(ours - bare),
            us(ours - baseline),
        );
    }
    for (group, variants) in rejections.iter_mut() {
        let t = measure(variants);
        println!("{group} (tower_token_auth):");
        for ((name, _), ns) in variants.iter().zip(t) {
            println!("  {name:<14} {:>9}", us(ns));
        }
    }
}

fn main() {
    install_provider();
    let rt = Rc::new(
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("tokio runtime"),
    );
    let mut groups: Vec<(String, Vec<(&'static str, Variant)>)> = algorithms()
        .iter()
        .map(|alg| (alg.name.to_owned(), accepted_variants(&rt, alg)))
        .collect();
    groups.push(("ES256_rejections".to_owned(), rejection_variants(&rt)));

    let mut c = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    run_criterion(&mut c, &mut groups);
    c.final_summary();

    // Only when benchmarking (`cargo bench`), not in `cargo test --benches` or `--list`.
    let args: Vec<String> = std::env::args().collect();
    let has = |flag: &str| args.iter().any(|a| a == flag);
    if has("--bench") && !has("--test") && !has("--list") {
        summary(&mut groups);
    }
}
