//! Fixtures shared by `benches/overhead.rs` (criterion and the ratio table) and
//! `tools/callgrind_probe.rs` (instruction counts), so both measure exactly the same
//! variants: the same services, tokens, requests and runtime.
//!
//! A variant is a closure doing one request (or one decode). [`group`] builds the variants of
//! one group, each checked once (status and `Reason`) before it is returned.
//!
//! Every token is a typical access token ([`typical`]: `iss`, `sub`, `aud`, `exp`, `nbf`, `iat`,
//! `jti`, a 5-entry `scope` string, a `roles` array and a custom `tenant` claim), and every
//! layer and the baseline deserialize it into a custom claims type, [`AccessClaims`]
//! (`TokenAuthLayer::with_claims::<AccessClaims>()`, `jsonwebtoken::decode::<AccessClaims>`).
//!
//! Groups `HS256`, `RS256`, `ES256`, `EdDSA` (accepted requests, one token per algorithm
//! minted once, issued at a fixed past instant and valid for 50 years, unless said otherwise):
//!
//! | variant | what one iteration does |
//! |---|---|
//! | `bare` | a `service_fn` echo service, `ready().call()` on a current-thread `block_on` |
//! | `bare_router` | an axum `Router` with one route (`GET /`, empty 200), `clone().oneshot(req)` |
//! | `router_layer` | that Router with a pass-through layer (`MapRequestLayer` returning the request): what axum charges for any `.layer(..)` |
//! | `verify` | `jsonwebtoken::crypto::verify` alone: the signature floor (verifier built per call, signature base64-decoded) |
//! | `decode` | `jsonwebtoken::decode::<AccessClaims>` alone (`iss`, `aud`, `exp`, `nbf` checked) |
//! | `baseline` | a thin hand-written tower layer around that `decode` ([`JwtLayer`]) |
//! | `ours_cold` | `TokenAuthLayer` with `.cache_capacity(0)`: every request validated in full |
//! | `ours_miss` | `TokenAuthLayer` with the cache on (1 slot) and three tokens taking turns: every request is a cache miss plus an insert, the cold path of the default configuration |
//! | `ours_warm` | `TokenAuthLayer` with the default cache, the same token every time: a cache hit |
//! | `router_warm` | the `bare_router` Router with `.layer(TokenAuthLayer::new(cfg))`, same token: a cache hit through axum |
//!
//! `ours_miss` keeps everything in the CPU caches (one slot, two tokens). Three more variants
//! (bench only, not in the callgrind list: minting the tokens takes seconds) show the cold
//! path with realistic memory, each request taking the next of a pool of [`POOL`] distinct
//! tokens (so far more tokens than the 4096 cache slots come between two uses of one token):
//! `pool_baseline`, `pool_cold` (cache off) and `pool_default` (`TokenAuthLayer::new`,
//! default 4096-slot cache, all misses: evictions touch memory that is no longer cached),
//! plus `pool_repeat90`: the default layer where 9 requests in 10 carry one of [`HOT`]
//! tokens that keep coming back (fewer than the slots) and the 10th the next token of the
//! pool (seen once), the shape of a service whose users send the same token for an hour.
//! They exist for HS256, ES256 and EdDSA; RS256 is left out because signing 32768 tokens with
//! RSA takes too long for a benchmark set-up.
//!
//! Group `introspection` (feature `remote`; ES256 key, one configuration that verifies JWTs
//! locally and introspects opaque tokens at an endpoint on 127.0.0.1, default layer):
//!
//! | variant | what one iteration does |
//! |---|---|
//! | `jwt_warm` | the typical ES256 JWT, a verified-token cache hit |
//! | `opaque_cached` | an opaque token whose answer (the typical claims) is in the introspection cache: keyed hash, claims checks, one deserialization into `AccessClaims` |
//!
//! Group `dpop` (ES256 tokens and ES256 proofs, one configuration with
//! `Dpop::allowed()`, default layer, a manual clock):
//!
//! | variant | what one iteration does |
//! |---|---|
//! | `bearer_warm` | an unbound token as `Bearer`, a cache hit |
//! | `dpop_warm` | a DPoP-bound token (cache hit) with a new proof each request (pre-signed): the proof's parse, public-key import, ES256 verification, checks and replay-cache insert |
//!
//! Group `ES256_rejections` (all `TokenAuthLayer`, ES256 key):
//!
//! | variant | what it measures |
//! |---|---|
//! | `accept_cold` | accepted, cache off (reference for the cold rejections) |
//! | `missing`, `malformed`, `bad_signature`, `expired` | cold rejections, default layer (cache on; rejected tokens are never cached) |
//! | `accept_warm` | accepted from the cache; config with a `ManualClock` and a `MemoryRevocationStore` (reference for the warm rejections) |
//! | `warm_expired` | a token cached while valid, then the clock moved past its `exp` |
//! | `warm_revoked` | a token cached while valid, then its `jti` revoked |

// Each includer (the bench, the callgrind probe) uses a different part of this module.
#![allow(dead_code)]

use std::cell::Cell;
use std::convert::Infallible;
use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use http::{HeaderValue, Request, Response, StatusCode};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use tokio::runtime::Runtime;
use tower::{service_fn, Layer, Service, ServiceExt};
use tower_token_auth::clock::ManualClock;
use tower_token_auth::revocation::{MemoryRevocationStore, RevocationStore};
use tower_token_auth::testing::TestKey;
use tower_token_auth::{AuthConfig, AuthError, Reason, TokenAuthLayer};

pub(crate) const ISSUER: &str = "https://issuer.bench";
pub(crate) const AUDIENCE: &str = "api://bench";
const HMAC_SECRET: &[u8; 32] = b"0123456789abcdef0123456789abcdef";
/// The issue time (`iat`, `nbf`) of every token, fixed so that a token is the same from run
/// to run (HS256, RS256 and EdDSA signatures are deterministic; see [`signed`] for ES256).
const ISSUED_AT: i64 = 1_700_000_000;
/// The lifetime of the accepted tokens: valid from [`ISSUED_AT`] for 50 years.
const LIFETIME: Duration = Duration::from_secs(50 * 365 * 86400);

/// One measured variant: a closure doing one request (or one decode).
pub(crate) type Variant = Box<dyn FnMut()>;

/// A group of variants, in table order.
pub(crate) type Group = Vec<(&'static str, Variant)>;

/// The accepted-path groups, in table order.
pub(crate) const ALGORITHMS: [&str; 4] = ["HS256", "RS256", "ES256", "EdDSA"];

/// The variants of each accepted-path group, in table order.
pub(crate) const ACCEPTED_VARIANTS: [&str; 10] = [
    "bare",
    "bare_router",
    "router_layer",
    "verify",
    "decode",
    "baseline",
    "ours_cold",
    "ours_miss",
    "ours_warm",
    "router_warm",
];

/// Accepted-path variants built only for the criterion bench (see the module docs).
pub(crate) const POOL_VARIANTS: [&str; 4] = [
    "pool_baseline",
    "pool_cold",
    "pool_default",
    "pool_repeat90",
];

/// Distinct tokens that keep coming back in `pool_repeat90` (fewer than the 4096 slots).
pub(crate) const HOT: usize = 1024;

/// Distinct tokens in the pool of the `pool_*` variants.
pub(crate) const POOL: usize = 32_768;

/// The rejection group's name.
pub(crate) const REJECTIONS: &str = "ES256_rejections";

/// The variants of the rejection group, in table order.
pub(crate) const REJECTION_VARIANTS: [&str; 8] = [
    "accept_cold",
    "missing",
    "malformed",
    "bad_signature",
    "expired",
    "accept_warm",
    "warm_expired",
    "warm_revoked",
];

/// The introspection group's name (feature `remote`).
pub(crate) const INTROSPECTION: &str = "introspection";

/// The variants of the introspection group, in table order.
pub(crate) const INTROSPECTION_VARIANTS: [&str; 2] = ["jwt_warm", "opaque_cached"];

/// The DPoP group's name.
pub(crate) const DPOP: &str = "dpop";

/// The variants of the DPoP group, in table order.
pub(crate) const DPOP_VARIANTS: [&str; 2] = ["bearer_warm", "dpop_warm"];

/// Every group name.
pub(crate) fn group_names() -> Vec<&'static str> {
    let mut names = ALGORITHMS.to_vec();
    names.push(REJECTIONS);
    names.push(DPOP);
    if cfg!(feature = "remote") {
        names.push(INTROSPECTION);
    }
    names
}

/// The variant names of a group.
pub(crate) fn variant_names(group: &str) -> &'static [&'static str] {
    match group {
        REJECTIONS => &REJECTION_VARIANTS,
        INTROSPECTION => &INTROSPECTION_VARIANTS,
        DPOP => &DPOP_VARIANTS,
        _ => &ACCEPTED_VARIANTS,
    }
}

// ---------------------------------------------------------------------------------------
// The thin hand-written layer (the baseline).
// ---------------------------------------------------------------------------------------

/// The custom claims type of the benchmarks: what a typical API reads from its tokens.
#[derive(Clone, Debug, serde::Deserialize)]
pub(crate) struct AccessClaims {
    pub(crate) iss: String,
    pub(crate) sub: String,
    pub(crate) aud: String,
    pub(crate) exp: i64,
    pub(crate) nbf: i64,
    pub(crate) iat: i64,
    pub(crate) jti: String,
    pub(crate) scope: String,
    pub(crate) roles: Vec<String>,
    pub(crate) tenant: String,
}

/// A minimal JWT layer: Bearer token, `jsonwebtoken::decode`, claims into the extensions.
#[derive(Clone)]
pub(crate) struct JwtLayer {
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

/// The service of [`JwtLayer`].
#[derive(Clone)]
pub(crate) struct JwtService<S> {
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
            .and_then(|t| {
                jsonwebtoken::decode::<AccessClaims>(t, &self.key, &self.validation).ok()
            });
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
    /// The response future of [`JwtService`].
    #[project = JwtFutureProj]
    pub(crate) enum JwtFuture<F> {
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

/// The request every `service_fn` variant builds per iteration.
fn request(auth: Option<&HeaderValue>) -> Request<()> {
    let mut req = Request::new(());
    if let Some(auth) = auth {
        req.headers_mut().insert(AUTHORIZATION, auth.clone());
    }
    req
}

/// The request every router variant builds per iteration (`GET /`).
fn router_request(auth: &HeaderValue) -> Request<Body> {
    let mut req = Request::new(Body::empty());
    req.headers_mut().insert(AUTHORIZATION, auth.clone());
    req
}

fn bearer(token: &str) -> HeaderValue {
    HeaderValue::try_from(format!("Bearer {token}")).expect("token is a valid header value")
}

/// jsonwebtoken's global crypto provider: needed by `jsonwebtoken::decode`/`verify` when both
/// backends are compiled in (`--all-features`). An earlier one is kept.
pub(crate) fn install_provider() {
    #[cfg(feature = "aws-lc-rs")]
    let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    #[cfg(all(feature = "rust-crypto", not(feature = "aws-lc-rs")))]
    let _ = jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER.install_default();
}

/// The runtime every variant is driven with: current-thread, no I/O or time driver.
pub(crate) fn runtime() -> Rc<Runtime> {
    Rc::new(
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("tokio runtime"),
    )
}

struct Alg {
    key: TestKey,
    decoding: DecodingKey,
}

fn algorithm(name: &str) -> Alg {
    let pem = |k: &TestKey| k.public_pem().expect("asymmetric test key").as_bytes();
    match name {
        "HS256" => Alg {
            key: TestKey::hmac(Algorithm::HS256, HMAC_SECRET.to_vec()),
            decoding: DecodingKey::from_secret(HMAC_SECRET),
        },
        "RS256" => {
            let key = TestKey::rs256();
            let decoding = DecodingKey::from_rsa_pem(pem(&key)).expect("RSA PEM");
            Alg { key, decoding }
        }
        "ES256" => {
            let key = TestKey::es256();
            let decoding = DecodingKey::from_ec_pem(pem(&key)).expect("EC PEM");
            Alg { key, decoding }
        }
        "EdDSA" => {
            let key = TestKey::ed25519();
            let decoding = DecodingKey::from_ed_pem(pem(&key)).expect("Ed25519 PEM");
            Alg { key, decoding }
        }
        other => panic!("unknown algorithm group {other:?}"),
    }
}

/// A token, signed by `sign`, or the one signed earlier under this `name` when
/// `BENCH_TOKEN_DIR` names a directory (written there the first time). ECDSA signatures are
/// randomized and the instructions an ES256 verification takes depend on the signature
/// (about ±0.5 %), so `scripts/callgrind.sh`, whose runs are separate processes, shares one
/// set of tokens between all of them this way.
fn signed(name: &str, sign: impl FnOnce() -> String) -> String {
    let Some(dir) = std::env::var_os("BENCH_TOKEN_DIR") else {
        return sign();
    };
    let path = std::path::Path::new(&dir).join(format!("{name}.jwt"));
    if let Ok(token) = std::fs::read_to_string(&path) {
        return token;
    }
    let token = sign();
    // Written aside and renamed, so a concurrent reader sees all of it or nothing.
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let saved = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(&tmp, &token))
        .and_then(|()| std::fs::rename(&tmp, &path));
    if let Err(e) = saved {
        eprintln!("cannot keep token {}: {e}", path.display());
    }
    token
}

/// A typical access token's claims (`iat`, `nbf` and `exp` come from the builder).
fn typical<'k>(
    b: tower_token_auth::testing::TokenBuilder<'k>,
    jti: &str,
) -> tower_token_auth::testing::TokenBuilder<'k> {
    b.issuer(ISSUER)
        .audience(AUDIENCE)
        .subject("user-4f1c9a2e")
        .scope("orders:read orders:write invoices:read profile email")
        .claim("jti", jti)
        .claim("roles", vec!["admin", "billing"])
        .claim("tenant", "acme-eu")
}

fn accepted_token(key: &TestKey, jti: &str) -> String {
    signed(&format!("{:?}-typical-{jti}", key.algorithm()), || {
        typical(key.token_at(ISSUED_AT), jti)
            .expires_in(LIFETIME)
            .sign()
    })
}

fn validation(alg: Algorithm) -> Validation {
    let mut v = Validation::new(alg);
    v.set_issuer(&[ISSUER]);
    v.set_audience(&[AUDIENCE]);
    v.set_required_spec_claims(&["exp", "iss", "aud"]);
    v.validate_nbf = true;
    v
}

/// The HS256 key and the configuration of the benchmarks (for `tools/cache_memory.rs`).
pub(crate) fn hs256_config() -> (TestKey, AuthConfig) {
    let alg = algorithm("HS256");
    let cfg = config(&alg.key);
    (alg.key, cfg)
}

/// A typical access token with this `jti`, signed by `key`.
pub(crate) fn typical_token(key: &TestKey, jti: &str) -> String {
    typical(key.token_at(ISSUED_AT), jti)
        .expires_in(LIFETIME)
        .sign()
}

/// `Authorization: Bearer <token>`.
pub(crate) fn bearer_header(token: &str) -> HeaderValue {
    bearer(token)
}

/// The layer of every `ours_*` variant: the configuration, claims as [`AccessClaims`].
fn layer(key: &TestKey) -> TokenAuthLayer<AccessClaims> {
    TokenAuthLayer::new(config(key)).with_claims::<AccessClaims>()
}

fn config(key: &TestKey) -> AuthConfig {
    AuthConfig::builder()
        .keys(key.keys())
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .build()
        .expect("valid config")
}

/// What a variant's response must be.
#[derive(Clone, Copy)]
enum Expect {
    Ok,
    Reject(Reason),
}

fn check<B>(res: &Response<B>, expect: Expect, what: &str) {
    match expect {
        Expect::Ok => assert_eq!(res.status(), StatusCode::OK, "{what}: expected acceptance"),
        Expect::Reject(reason) => {
            assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{what}");
            let err = res.extensions().get::<AuthError>().expect("AuthError");
            assert_eq!(err.reason(), reason, "{what}");
        }
    }
}

/// Calls `svc` once with `req` on `rt`.
fn call<S, B, R>(rt: &Runtime, svc: &mut S, req: Request<B>) -> Response<R>
where
    S: Service<Request<B>, Response = Response<R>, Error = Infallible>,
{
    match rt.block_on(async { svc.ready().await?.call(req).await }) {
        Ok(res) => res,
        Err(never) => match never {},
    }
}

/// A `service_fn`-based variant: checks the response once, then returns the measured closure.
fn service_variant<S, R>(
    rt: &Rc<Runtime>,
    what: &str,
    mut svc: S,
    make: impl Fn() -> Request<()> + 'static,
    expect: Expect,
) -> Variant
where
    S: Service<Request<()>, Response = Response<R>, Error = Infallible> + 'static,
    R: 'static,
{
    let res = call(rt, &mut svc, make());
    check(&res, expect, what);
    let rt = rt.clone();
    Box::new(move || {
        let res = call(&rt, &mut svc, make());
        black_box(res);
    })
}

/// A router variant: `router.clone().oneshot(req)` per iteration.
fn router_variant(rt: &Rc<Runtime>, what: &str, router: Router, auth: HeaderValue) -> Variant {
    let once = |router: &Router| match rt.block_on(router.clone().oneshot(router_request(&auth))) {
        Ok(res) => res,
        Err(never) => match never {},
    };
    check(&once(&router), Expect::Ok, what);
    let rt = rt.clone();
    Box::new(move || {
        let res = rt.block_on(router.clone().oneshot(router_request(&auth)));
        black_box(res.ok());
    })
}

fn bare_router() -> Router {
    Router::new().route("/", get(|| async {}))
}

/// Runs `f` a few times and asserts the cache counters moved as expected.
fn assert_cache<T>(layer: &TokenAuthLayer<T>, f: &mut Variant, hits: bool, what: &str) {
    let before = layer.cache_stats();
    for _ in 0..4 {
        f();
    }
    let after = layer.cache_stats();
    let (h, m) = (after.hits - before.hits, after.misses - before.misses);
    if hits {
        assert_eq!((h, m), (4, 0), "{what}: expected 4 cache hits");
    } else {
        assert_eq!((h, m), (0, 4), "{what}: expected 4 cache misses");
    }
}

/// The accepted-path variants for one algorithm, in [`ACCEPTED_VARIANTS`] order.
fn accepted_group(rt: &Rc<Runtime>, name: &str, only: Option<&str>) -> Group {
    let alg = algorithm(name);
    let token = accepted_token(&alg.key, "bench-1");
    let auth = bearer(&token);
    let want = |v: &str| only.is_none_or(|o| o == v);
    let mut out: Group = Vec::new();

    if want("bare") {
        let auth = auth.clone();
        let f = service_variant(
            rt,
            "bare",
            service_fn(echo),
            move || request(Some(&auth)),
            Expect::Ok,
        );
        out.push(("bare", f));
    }
    if want("bare_router") {
        out.push((
            "bare_router",
            router_variant(rt, "bare_router", bare_router(), auth.clone()),
        ));
    }
    if want("router_layer") {
        let router =
            bare_router().layer(tower::util::MapRequestLayer::new(|req: Request<Body>| req));
        out.push((
            "router_layer",
            router_variant(rt, "router_layer", router, auth.clone()),
        ));
    }
    if want("verify") {
        let (message, sig) = token.rsplit_once('.').expect("three segments");
        let (message, sig) = (message.to_owned(), sig.to_owned());
        let key = alg.decoding.clone();
        let a = alg.key.algorithm();
        let ok = jsonwebtoken::crypto::verify(&sig, message.as_bytes(), &key, a);
        assert!(matches!(ok, Ok(true)), "{name}: verify fails: {ok:?}");
        let f: Variant = Box::new(move || {
            let ok = jsonwebtoken::crypto::verify(
                black_box(&sig),
                black_box(message.as_bytes()),
                &key,
                a,
            );
            black_box(ok.ok());
        });
        out.push(("verify", f));
    }
    let validation = validation(alg.key.algorithm());
    if want("decode") {
        let key = alg.decoding.clone();
        let val = validation.clone();
        let token = token.clone();
        let decoded = jsonwebtoken::decode::<AccessClaims>(&token, &key, &val);
        assert!(decoded.is_ok(), "{name}: jsonwebtoken rejects: {decoded:?}");
        let f: Variant = Box::new(move || {
            let res = jsonwebtoken::decode::<AccessClaims>(black_box(token.as_str()), &key, &val);
            black_box(res.ok());
        });
        out.push(("decode", f));
    }
    if want("baseline") {
        let baseline = JwtLayer {
            key: Arc::new(alg.decoding.clone()),
            validation: Arc::new(validation),
        };
        let auth = auth.clone();
        let f = service_variant(
            rt,
            "baseline",
            baseline.layer(service_fn(echo)),
            move || request(Some(&auth)),
            Expect::Ok,
        );
        out.push(("baseline", f));
    }
    if want("ours_cold") {
        let layer = layer(&alg.key).cache_capacity(0);
        assert_eq!(layer.cache_stats().capacity, 0);
        let auth = auth.clone();
        let f = service_variant(
            rt,
            "ours_cold",
            layer.layer(service_fn(echo)),
            move || request(Some(&auth)),
            Expect::Ok,
        );
        out.push(("ours_cold", f));
    }
    if want("ours_miss") {
        // One slot and three tokens taking turns: each request finds another token in the
        // slot, so every request is a lookup that misses, a full validation and an insert
        // (the tokens come back, so admission lets each replace the one before it, which
        // was never hit). Three, not two: with two, admission's second chance would keep one
        // of them resident and it would hit every other request.
        let layer = layer(&alg.key).cache_capacity(1);
        let trio = [
            auth.clone(),
            bearer(&accepted_token(&alg.key, "bench-2")),
            bearer(&accepted_token(&alg.key, "bench-3")),
        ];
        let turn = Cell::new(0usize);
        let mut f = service_variant(
            rt,
            "ours_miss",
            layer.layer(service_fn(echo)),
            move || {
                turn.set((turn.get() + 1) % 3);
                request(Some(&trio[turn.get()]))
            },
            Expect::Ok,
        );
        // Every token past the cache's doorkeeper: from here on every request evicts.
        for _ in 0..9 {
            f();
        }
        assert_cache(&layer, &mut f, false, "ours_miss");
        out.push(("ours_miss", f));
    }
    if want("ours_warm") {
        let layer = layer(&alg.key);
        let auth = auth.clone();
        let mut f = service_variant(
            rt,
            "ours_warm",
            layer.layer(service_fn(echo)),
            move || request(Some(&auth)),
            Expect::Ok,
        );
        assert_cache(&layer, &mut f, true, "ours_warm");
        out.push(("ours_warm", f));
    }
    if want("router_warm") {
        let layer = layer(&alg.key);
        let router = bare_router().layer(layer.clone());
        let mut f = router_variant(rt, "router_warm", router, auth.clone());
        assert_cache(&layer, &mut f, true, "router_warm");
        out.push(("router_warm", f));
    }
    if name != "RS256" && POOL_VARIANTS.iter().any(|v| want(v)) {
        let pool: Rc<[HeaderValue]> = (0..POOL)
            .map(|i| bearer(&accepted_token(&alg.key, &format!("pool-{i}"))))
            .collect();
        // Each variant walks the pool from its own start, one token per request.
        let cycle = |start: usize| {
            let pool = Rc::clone(&pool);
            let next = Cell::new(start);
            move || {
                let i = next.get();
                next.set((i + 1) % pool.len());
                request(Some(&pool[i]))
            }
        };
        if want("pool_baseline") {
            let baseline = JwtLayer {
                key: Arc::new(alg.decoding.clone()),
                validation: Arc::new(self::validation(alg.key.algorithm())),
            };
            let f = service_variant(
                rt,
                "pool_baseline",
                baseline.layer(service_fn(echo)),
                cycle(0),
                Expect::Ok,
            );
            out.push(("pool_baseline", f));
        }
        if want("pool_cold") {
            let layer = layer(&alg.key).cache_capacity(0);
            let f = service_variant(
                rt,
                "pool_cold",
                layer.layer(service_fn(echo)),
                cycle(POOL / 3),
                Expect::Ok,
            );
            out.push(("pool_cold", f));
        }
        if want("pool_default") {
            let layer = layer(&alg.key);
            let mut f = service_variant(
                rt,
                "pool_default",
                layer.layer(service_fn(echo)),
                cycle(2 * POOL / 3),
                Expect::Ok,
            );
            assert_cache(&layer, &mut f, false, "pool_default");
            out.push(("pool_default", f));
        }
        if want("pool_repeat90") {
            let layer = layer(&alg.key);
            let hot: Rc<[HeaderValue]> = (0..HOT)
                .map(|i| bearer(&accepted_token(&alg.key, &format!("hot-{i}"))))
                .collect();
            let pool = Rc::clone(&pool);
            let (n, next) = (Cell::new(0usize), Cell::new(0usize));
            let mut f = service_variant(
                rt,
                "pool_repeat90",
                layer.layer(service_fn(echo)),
                move || {
                    let i = n.get();
                    n.set(i.wrapping_add(1));
                    if i % 10 == 9 {
                        let j = next.get();
                        next.set((j + 1) % pool.len());
                        request(Some(&pool[j]))
                    } else {
                        // A fixed stride through the hot set: every hot token returns
                        // within a few thousand requests.
                        request(Some(&hot[i.wrapping_mul(7919) % hot.len()]))
                    }
                },
                Expect::Ok,
            );
            // Warm it up: every hot token seen a few times.
            for _ in 0..4 * HOT {
                f();
            }
            // The hit rate of this workload (printed with the set-up, not measured in time).
            let before = layer.cache_stats();
            for _ in 0..20 * HOT {
                f();
            }
            let after = layer.cache_stats();
            let (h, m) = (after.hits - before.hits, after.misses - before.misses);
            eprintln!(
                "{name}/pool_repeat90: cache hit rate {:.1} % ({h} hits, {m} misses; 90 % of requests are repeats)",
                100.0 * h as f64 / (h + m).max(1) as f64
            );
            out.push(("pool_repeat90", f));
        }
    }
    out
}

/// The ES256 rejection variants (and their accepted references), in
/// [`REJECTION_VARIANTS`] order.
fn rejection_group(rt: &Rc<Runtime>, only: Option<&str>) -> Group {
    let key = TestKey::es256();
    let want = |v: &str| only.is_none_or(|o| o == v);
    let good = accepted_token(&key, "bench-1");
    let other = accepted_token(&key, "bench-2");
    let expired = signed("ES256-typical-expired", || {
        typical(key.token_at(ISSUED_AT), "expired")
            .expired_for(Duration::from_secs(3600))
            .sign()
    });
    // The signed part of `good` with the (valid, same-length) signature of `other`.
    let (signed_part, _) = good.rsplit_once('.').expect("three segments");
    let (_, other_sig) = other.rsplit_once('.').expect("three segments");
    let bad_signature = format!("{signed_part}.{other_sig}");

    let svc = |cache: usize| layer(&key).cache_capacity(cache).layer(service_fn(echo));
    let cold = |name: &'static str, auth: Option<HeaderValue>, expect: Expect| -> Variant {
        service_variant(
            rt,
            name,
            svc(tower_token_auth::DEFAULT_CACHE_CAPACITY),
            move || request(auth.as_ref()),
            expect,
        )
    };

    // Warm references: a layer on a ManualClock with a revocation store, the token primed
    // into the cache while valid, then (for the rejections) the clock moved or the jti revoked.
    let now = ISSUED_AT + 60;
    let warm = |name: &'static str,
                jti: &str,
                after: &dyn Fn(&ManualClock, &MemoryRevocationStore),
                expect: Expect|
     -> Variant {
        let clock = ManualClock::at(now);
        let store = Arc::new(MemoryRevocationStore::new());
        let cfg = AuthConfig::builder()
            .keys(key.keys())
            .issuer(ISSUER)
            .audience(AUDIENCE)
            .clock(clock.clone())
            .revocation(store.clone())
            .build()
            .expect("valid config");
        let layer = TokenAuthLayer::new(cfg).with_claims::<AccessClaims>();
        let token = signed(&format!("ES256-typical-{jti}"), || {
            typical(key.token_at(ISSUED_AT), jti).sign()
        });
        let auth = bearer(&token);
        let mut svc = layer.layer(service_fn(echo));
        // Prime: accepted and cached.
        check(&call(rt, &mut svc, request(Some(&auth))), Expect::Ok, name);
        assert_eq!(layer.cache_stats().misses, 1, "{name}: primed");
        after(&clock, &store);
        let mut f = service_variant(rt, name, svc, move || request(Some(&auth)), expect);
        // Every one is answered from the cache: accepted, revoked (revocation consulted on
        // the hit) and expired (a byte-equal token past its `exp`, rejected without a
        // signature check).
        assert_cache(&layer, &mut f, true, name);
        f
    };

    let mut out: Group = Vec::new();
    for &name in &REJECTION_VARIANTS {
        if !want(name) {
            continue;
        }
        let f = match name {
            "accept_cold" => {
                let auth = bearer(&good);
                service_variant(rt, name, svc(0), move || request(Some(&auth)), Expect::Ok)
            }
            "missing" => cold(name, None, Expect::Reject(Reason::Missing)),
            "malformed" => cold(name, Some(bearer("abc")), Expect::Reject(Reason::Malformed)),
            "bad_signature" => cold(
                name,
                Some(bearer(&bad_signature)),
                Expect::Reject(Reason::BadSignature),
            ),
            "expired" => cold(
                name,
                Some(bearer(&expired)),
                Expect::Reject(Reason::Expired),
            ),
            "accept_warm" => warm(name, "warm-1", &|_, _| {}, Expect::Ok),
            "warm_expired" => warm(
                name,
                "warm-2",
                &|clock, _| clock.set(now + 3600),
                Expect::Reject(Reason::Expired),
            ),
            "warm_revoked" => warm(
                name,
                "warm-3",
                &|_, store| {
                    rt.block_on(store.revoke_token("warm-3", i64::MAX / 2))
                        .expect("the memory store answers")
                },
                Expect::Reject(Reason::Revoked),
            ),
            other => unreachable!("{other}"),
        };
        out.push((name, f));
    }
    out
}

/// The variants of `group` (all, or only the one named `only`), each checked once.
pub(crate) fn group(rt: &Rc<Runtime>, group: &str, only: Option<&str>) -> Group {
    match group {
        REJECTIONS => rejection_group(rt, only),
        #[cfg(feature = "remote")]
        INTROSPECTION => introspection_group(rt, only),
        DPOP => dpop_group(rt, only),
        _ => accepted_group(rt, group, only),
    }
}

/// An introspection endpoint on 127.0.0.1 (its own thread and runtime) that answers every
/// token with `answer`: its URL.
#[cfg(feature = "remote")]
fn introspection_endpoint(answer: String) -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("endpoint runtime");
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            tx.send(listener.local_addr().expect("address"))
                .expect("send");
            let app = Router::new().route(
                "/introspect",
                axum::routing::post(move || {
                    let answer = answer.clone();
                    async move { ([("content-type", "application/json")], answer) }
                }),
            );
            axum::serve(listener, app).await.expect("serve");
        });
    });
    format!("http://{}/introspect", rx.recv().expect("endpoint address"))
}

/// The introspection group (see the module docs).
#[cfg(feature = "remote")]
fn introspection_group(rt: &Rc<Runtime>, only: Option<&str>) -> Group {
    use tower_token_auth::introspection::Introspection;

    let alg = algorithm("ES256");
    let exp = ISSUED_AT + LIFETIME.as_secs() as i64;
    let answer = serde_json::json!({
        "active": true, "iss": ISSUER, "aud": AUDIENCE, "sub": "user-4f1c9a2e",
        "exp": exp, "nbf": ISSUED_AT, "iat": ISSUED_AT, "jti": "opaque-1",
        "scope": "orders:read orders:write invoices:read profile email",
        "roles": ["admin", "billing"], "tenant": "acme-eu",
        "client_id": "spa", "token_type": "Bearer",
    });
    let url = introspection_endpoint(answer.to_string());
    let cfg = AuthConfig::builder()
        .keys(alg.key.keys())
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .introspection(
            Introspection::endpoint(url)
                .client_secret_basic("bench", "bench-secret")
                .allow_http()
                .active_ttl(Duration::from_secs(24 * 3600)),
        )
        .build()
        .expect("valid config");
    let layer = TokenAuthLayer::new(cfg).with_claims::<AccessClaims>();
    // The bench runtime has no I/O driver: the first call (the one that introspects) runs on
    // one that has, and the measured requests find the answer cached.
    let io = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("io runtime");
    let opaque = bearer("dGhpcyBpcyBhbiBvcGFxdWUgYWNjZXNzIHRva2VuIG9mIDQzIGJ5dGVz");
    let jwt = bearer(&accepted_token(&alg.key, "bench-1"));
    let mut svc = layer.layer(service_fn(echo));
    check(
        &call(&io, &mut svc, request(Some(&opaque))),
        Expect::Ok,
        "opaque first call",
    );
    let want = |v: &str| only.is_none_or(|o| o == v);
    let mut out: Group = Vec::new();
    if want("jwt_warm") {
        let mut f = service_variant(
            rt,
            "jwt_warm",
            layer.layer(service_fn(echo)),
            move || request(Some(&jwt)),
            Expect::Ok,
        );
        assert_cache(&layer, &mut f, true, "jwt_warm");
        out.push(("jwt_warm", f));
    }
    if want("opaque_cached") {
        let f = service_variant(
            rt,
            "opaque_cached",
            layer.layer(service_fn(echo)),
            move || request(Some(&opaque)),
            Expect::Ok,
        );
        out.push(("opaque_cached", f));
    }
    out
}

/// The DPoP group (see the module docs).
fn dpop_group(rt: &Rc<Runtime>, only: Option<&str>) -> Group {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use tower_token_auth::binding::Dpop;

    let sha = |b: &[u8]| {
        URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b).as_ref())
    };
    let alg = algorithm("ES256");
    let client = TestKey::es256();
    let jwk = client.jwk();
    let jkt = sha(format!(
        r#"{{"crv":"{}","kty":"EC","x":"{}","y":"{}"}}"#,
        jwk["crv"].as_str().unwrap_or_default(),
        jwk["x"].as_str().unwrap_or_default(),
        jwk["y"].as_str().unwrap_or_default()
    )
    .as_bytes());
    let now = ISSUED_AT + 10;
    let cfg = AuthConfig::builder()
        .keys(alg.key.keys())
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .clock(ManualClock::at(now))
        .dpop(Dpop::allowed().base_url("https://api.bench"))
        .build()
        .expect("valid config");
    let layer = TokenAuthLayer::new(cfg).with_claims::<AccessClaims>();
    let want = |v: &str| only.is_none_or(|o| o == v);
    let mut out: Group = Vec::new();
    if want("bearer_warm") {
        let auth = bearer(&accepted_token(&alg.key, "bench-1"));
        let mut f = service_variant(
            rt,
            "bearer_warm",
            layer.layer(service_fn(echo)),
            move || request(Some(&auth)),
            Expect::Ok,
        );
        assert_cache(&layer, &mut f, true, "bearer_warm");
        out.push(("bearer_warm", f));
    }
    if want("dpop_warm") {
        let token = signed("ES256-typical-dpop", || {
            typical(alg.key.token_at(ISSUED_AT), "dpop-1")
                .claim("cnf", serde_json::json!({ "jkt": jkt }))
                .expires_in(LIFETIME)
                .sign()
        });
        let auth = HeaderValue::from_str(&format!("DPoP {token}")).expect("header");
        let ath = sha(token.as_bytes());
        // One proof per request (a proof is single-use), signed before the measurement.
        let proofs: Vec<HeaderValue> = (0..1200)
            .map(|i| {
                let proof = client
                    .token_at(now)
                    .header("typ", "dpop+jwt")
                    .header("jwk", jwk.clone())
                    .without("exp")
                    .without("nbf")
                    .claim("jti", format!("bench-{i}"))
                    .claim("htm", "GET")
                    .claim("htu", "https://api.bench/")
                    .claim("ath", ath.clone())
                    .sign();
                HeaderValue::from_str(&proof).expect("header")
            })
            .collect();
        let next = Cell::new(0usize);
        let make = move || {
            let mut req = request(Some(&auth));
            let i = next.get();
            next.set(i + 1);
            req.headers_mut()
                .insert("dpop", proofs[i % proofs.len()].clone());
            req
        };
        let mut f = service_variant(
            rt,
            "dpop_warm",
            layer.layer(service_fn(echo)),
            make,
            Expect::Ok,
        );
        assert_cache(&layer, &mut f, true, "dpop_warm");
        out.push(("dpop_warm", f));
    }
    out
}
