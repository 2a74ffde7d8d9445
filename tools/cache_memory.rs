//! Bytes per verified-token cache entry and per layer, counted by `dhat`'s allocator.
//!
//! ```text
//! cargo run --release --example cache_memory [-- --help]
//! ```
//!
//! Builds the benchmarks' configuration (HS256, the typical 10-claim access token of
//! `benches/common/mod.rs`, claims as `AccessClaims`), then reports:
//!
//! - the layer: bytes allocated by `TokenAuthLayer::new(cfg).with_claims::<AccessClaims>()`
//!   at the default capacity (4096 slots), before any request;
//! - an entry: the bytes still allocated after 4096 distinct tokens went through the layer
//!   once each, divided by the number of them that are cached (counted as hits of a second
//!   pass), that is the token text, the claims, the grants' source and the entry itself.
//!
//! No flags besides `-h`/`--help`.

#[path = "../benches/common/mod.rs"]
mod common;

use tower::{Layer, Service, ServiceExt};

// The counting allocator of the `dhat` crate (this crate forbids `unsafe`, so no own one).
#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

fn live() -> isize {
    dhat::HeapStats::get().curr_bytes as isize
}

fn main() {
    if std::env::args().skip(1).any(|a| a == "-h" || a == "--help") {
        println!("usage: cargo run --release --example cache_memory\n\nPrints bytes per layer and per cache entry; no flags.");
        return;
    }
    let _profiler = dhat::Profiler::builder().testing().build();
    common::install_provider();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let (key, config) = common::hs256_config();
    let n = tower_token_auth::DEFAULT_CACHE_CAPACITY;
    let tokens: Vec<http::HeaderValue> = (0..n)
        .map(|i| common::bearer_header(&common::typical_token(&key, &format!("mem-{i}"))))
        .collect();

    let before_layer = live();
    let layer = tower_token_auth::TokenAuthLayer::new(config).with_claims::<common::AccessClaims>();
    let layer_bytes = live() - before_layer;
    let mut svc = layer.layer(tower::service_fn(|_req: http::Request<()>| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(bytes::Bytes::new()))
    }));
    let mut call = |auth: &http::HeaderValue| {
        let mut req = http::Request::new(());
        req.headers_mut()
            .insert(http::header::AUTHORIZATION, auth.clone());
        let res = rt
            .block_on(async { svc.ready().await?.call(req).await })
            .expect("infallible");
        assert_eq!(res.status(), 200);
    };

    let before = live();
    for t in &tokens {
        call(t);
    }
    let filled = live() - before;
    let hits_before = layer.cache_stats().hits;
    for t in &tokens {
        call(t);
    }
    let cached = (layer.cache_stats().hits - hits_before) as isize;
    println!("layer at the default capacity ({n} slots), empty: {layer_bytes} bytes");
    println!(
        "{cached} of {n} distinct tokens cached (the others' slots were taken): {filled} bytes, {} bytes per entry",
        filled / cached.max(1)
    );
    let token_len = tokens[0].len() - "Bearer ".len();
    println!("(token: {token_len} bytes of text, claims type AccessClaims with 10 fields)");
}
