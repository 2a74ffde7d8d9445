//! Per-request overhead of `TokenAuthLayer`: cold (every token new), warm (a token seen
//! before, answered from the verified-token cache) and rejections, against the signature
//! floor, a bare router and a hand-written baseline layer.
//!
//! Run with `cargo bench --bench overhead` (release build; about three minutes on two
//! cores). `cargo test --benches` runs every benchmark once as a smoke test and skips the
//! summary. `OVERHEAD_MD=docs/overhead-results.md cargo bench --bench overhead` also writes
//! the summary tables as markdown.
//!
//! The variants are defined in `benches/common/mod.rs` (shared with
//! `tools/callgrind_probe.rs`, which counts instructions for the same variants): for each
//! of HS256, RS256, ES256 and EdDSA, `bare` (a `service_fn` echo), `bare_router` (an axum
//! `Router` with one route, `oneshot`), `verify` (`jsonwebtoken::crypto::verify`: the
//! signature floor), `decode` (`jsonwebtoken::decode`), `baseline` (a thin hand-written
//! layer around `decode`), `ours_cold` (`cache_capacity(0)`), `ours_miss` (cache on, every
//! request a miss and an insert, everything in the CPU caches), `ours_warm` (cache hit) and
//! `router_warm` (cache hit through the `bare_router` Router); for HS256, ES256 and EdDSA
//! also `pool_baseline`, `pool_cold` and `pool_default`, which take each request's token from
//! a pool of 32768 distinct tokens (the default 4096-slot cache then misses on every request
//! and evicts entries no longer in the CPU caches, as a busy server would), and
//! `pool_repeat90` (9 requests in 10 from 1024 hot tokens); group `ES256_rejections` holds the cold and warm
//! rejection paths with their accepted references.
//!
//! Every variant that goes through a service builds its request inside the iteration (from
//! a prebuilt `HeaderValue`) and drives it with the same current-thread runtime. Each variant
//! is checked once before it is measured (status, `Reason`, cache hits or misses).
//!
//! After criterion, a timing pass of its own (after warm-up, 15 interleaved batches of about
//! 10 ms per variant, median) prints the ratio tables, all measured in the same run:
//! cold `ours / baseline` (targets: ≤ 1.00, HS256 ≤ 0.50), warm `ours / bare` and
//! `router_warm / bare_router` (target: ≤ 1.35), distinct tokens `default / cache off` (≤ 1.10), and each rejection against the
//! acceptance of the same path (target: ≤ 1x).

mod common;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use common::{Group, ALGORITHMS, REJECTIONS};
use criterion::Criterion;

fn run_criterion(c: &mut Criterion, groups: &mut [(&'static str, Group)]) {
    for (group_name, variants) in groups.iter_mut() {
        let mut group = c.benchmark_group(*group_name);
        for (name, f) in variants.iter_mut() {
            group.bench_function(*name, |b| b.iter(&mut *f));
        }
        group.finish();
    }
}

/// Median nanoseconds per call of each variant: warm-up and calibration (~100 ms each), then
/// 15 rounds in which every variant runs one batch of ~10 ms (interleaved, so drifting
/// machine load affects all variants alike).
fn measure(variants: &mut Group) -> Vec<(&'static str, f64)> {
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
    variants
        .iter()
        .zip(samples)
        .map(|((name, _), mut s)| {
            s.sort_by(f64::total_cmp);
            (*name, s[ROUNDS / 2])
        })
        .collect()
}

/// Looks a variant's time up by name.
fn t(times: &[(&'static str, f64)], name: &str) -> f64 {
    try_t(times, name).unwrap_or_else(|| panic!("no variant {name}"))
}

fn try_t(times: &[(&'static str, f64)], name: &str) -> Option<f64> {
    times.iter().find(|(n, _)| *n == name).map(|(_, ns)| *ns)
}

fn us(ns: f64) -> String {
    if ns < 10_000.0 {
        format!("{:.2} µs", ns / 1000.0)
    } else {
        format!("{:.1} µs", ns / 1000.0)
    }
}

/// `met` when `ratio <= target`; timing noise on a shared machine is a few percent, so a
/// miss within 5 % is reported as such.
fn verdict(ratio: f64, target: f64) -> &'static str {
    if ratio <= target {
        "met"
    } else if ratio <= target * 1.05 {
        "missed (within 5 % noise)"
    } else {
        "missed"
    }
}

/// A markdown table, also printed aligned.
struct Table {
    head: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    fn new(head: &[&str]) -> Self {
        Table {
            head: head.iter().map(|s| (*s).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    fn row(&mut self, row: Vec<String>) {
        self.rows.push(row);
    }

    fn print(&self) {
        let widths: Vec<usize> = (0..self.head.len())
            .map(|i| {
                self.rows
                    .iter()
                    .map(|r| r[i].chars().count())
                    .chain([self.head[i].chars().count()])
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let line = |cells: &[String]| {
            let mut s = String::new();
            for (i, c) in cells.iter().enumerate() {
                let pad = widths[i] - c.chars().count();
                if i == 0 {
                    let _ = write!(s, "{c}{}", " ".repeat(pad));
                } else {
                    let _ = write!(s, "  {}{c}", " ".repeat(pad));
                }
            }
            println!("{s}");
        };
        line(&self.head);
        for r in &self.rows {
            line(r);
        }
    }

    fn markdown(&self) -> String {
        let mut s = format!("| {} |\n", self.head.join(" | "));
        let _ = writeln!(s, "|{}", "---|".repeat(self.head.len()));
        for r in &self.rows {
            let _ = writeln!(s, "| {} |", r.join(" | "));
        }
        s
    }
}

fn summary(groups: &mut [(&'static str, Group)], code: &str) {
    let mut times = Vec::new();
    for (name, variants) in groups.iter_mut() {
        times.push((*name, measure(variants)));
    }
    let group = |name: &str| {
        &times
            .iter()
            .find(|(n, _)| *n == name)
            .expect("group measured")
            .1
    };

    let mut cold = Table::new(&[
        "alg",
        "verify",
        "decode",
        "baseline",
        "ours cold",
        "ours miss",
        "cold/baseline",
        "miss/baseline",
        "target",
        "cold",
        "miss",
    ]);
    let mut pool = Table::new(&[
        "alg",
        "baseline",
        "ours cache off",
        "ours default",
        "ours 90 % repeats",
        "off/baseline",
        "default/off",
        "target ≤ 1.10",
        "repeat90/off",
    ]);
    let mut warm = Table::new(&[
        "alg",
        "bare",
        "bare router",
        "router + no-op layer",
        "ours warm",
        "router warm",
        "warm/bare",
        "router warm/bare router",
        "router warm/no-op layer",
        "warm − bare",
        "target ≤ 1.35",
    ]);
    for alg in ALGORITHMS {
        let g = group(alg);
        let (baseline, ours, miss) = (t(g, "baseline"), t(g, "ours_cold"), t(g, "ours_miss"));
        let target = if alg == "HS256" { 0.50 } else { 1.0 };
        cold.row(vec![
            alg.to_owned(),
            us(t(g, "verify")),
            us(t(g, "decode")),
            us(baseline),
            us(ours),
            us(miss),
            format!("{:.3}", ours / baseline),
            format!("{:.3}", miss / baseline),
            format!("≤ {target:.2}"),
            verdict(ours / baseline, target).to_owned(),
            verdict(miss / baseline, target).to_owned(),
        ]);
        if let (Some(b), Some(off), Some(on), Some(rep)) = (
            try_t(g, "pool_baseline"),
            try_t(g, "pool_cold"),
            try_t(g, "pool_default"),
            try_t(g, "pool_repeat90"),
        ) {
            pool.row(vec![
                alg.to_owned(),
                us(b),
                us(off),
                us(on),
                us(rep),
                format!("{:.3}", off / b),
                format!("{:.3}", on / off),
                verdict(on / off, 1.10).to_owned(),
                format!("{:.3}", rep / off),
            ]);
        }
        let (bare, router) = (t(g, "bare"), t(g, "bare_router"));
        let (w, rw) = (t(g, "ours_warm"), t(g, "router_warm"));
        warm.row(vec![
            alg.to_owned(),
            us(bare),
            us(router),
            us(t(g, "router_layer")),
            us(w),
            us(rw),
            format!("{:.2}", w / bare),
            format!("{:.2}", rw / router),
            format!("{:.2}", rw / t(g, "router_layer")),
            us(w - bare),
            verdict(rw / router, 1.35).to_owned(),
        ]);
    }

    let g = group(REJECTIONS);
    let mut rej = Table::new(&[
        "ES256 rejection",
        "time",
        "reference",
        "ratio",
        "target ≤ 1x",
    ]);
    for (name, reference) in [
        ("missing", "accept_cold"),
        ("malformed", "accept_cold"),
        ("bad_signature", "accept_cold"),
        ("expired", "accept_cold"),
        ("warm_expired", "accept_warm"),
        ("warm_revoked", "accept_warm"),
    ] {
        let (x, r) = (t(g, name), t(g, reference));
        rej.row(vec![
            name.to_owned(),
            us(x),
            format!("{reference} {}", us(r)),
            format!("{:.2}", x / r),
            verdict(x / r, 1.0).to_owned(),
        ]);
    }

    println!();
    println!("== overhead summary: own timing pass, median of 15 interleaved ~10 ms batches ==");
    println!();
    println!("Cold path (every token new): ours_cold = cache off, ours_miss = cache on, every request a miss");
    cold.print();
    println!();
    println!(
        "Cold path with realistic memory: a pool of {} distinct tokens, default 4096-slot cache (all misses); \
         90 % repeats: 9 requests in 10 from {} hot tokens, the 10th a token of the pool",
        common::POOL,
        common::HOT
    );
    pool.print();
    println!();
    println!("Warm path (the same token: a cache hit)");
    warm.print();
    println!();
    println!("Rejections against the acceptance of the same path");
    rej.print();

    if let Ok(path) = std::env::var("OVERHEAD_MD") {
        let load = std::fs::read_to_string("/proc/loadavg")
            .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|_| "unknown".into());
        let md = format!(
            "# Per-request overhead (`cargo bench --bench overhead`)\n\n\
             Measured {} (code `{}`, git describe) on {}; load average at the end of the run: {load} (a shared machine: \
             compare the variants of one run, whose batches were interleaved, not runs). \
             Release build, aws-lc-rs backend. Times are medians of 15 interleaved batches of \
             about 10 ms per variant after warm-up (the bench's own pass after criterion); the \
             variants are described in `benches/common/mod.rs`. Instruction counts of the same \
             variants, stable where times are not: `scripts/callgrind.sh`.\n\n\
             ### Cold path (every token new)\n\n{}\n\
             ### Cold path, a pool of {} distinct tokens, default cache (and 90 % repeats of {} hot tokens)\n\n{}\n\
             ### Warm path (cache hit)\n\n{}\n### Rejections (ES256)\n\n{}",
            today(),
            code,
            machine(),
            cold.markdown(),
            common::POOL,
            common::HOT,
            pool.markdown(),
            warm.markdown(),
            rej.markdown()
        );
        std::fs::write(&path, md).unwrap_or_else(|e| panic!("writing {path}: {e}"));
        println!("\nmarkdown tables written to {path}");
    }
}

/// Today's date (UTC), from the system clock.
fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    // Civil date from days since 1970-01-01 (Howard Hinnant's `civil_from_days`).
    let z = secs.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// `git describe --always --dirty` of the working tree, or `unknown`.
fn code_version() -> String {
    std::process::Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map_or_else(|| "unknown".to_owned(), |s| s.trim().to_owned())
}

/// CPU model and count, from `/proc/cpuinfo` where there is one.
fn machine() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_owned());
    format!("{model}, {cpus} CPUs")
}

fn main() {
    // At start-up, as close to the build as the bench can get.
    let code = code_version();
    common::install_provider();
    let rt = common::runtime();
    let mut groups: Vec<(&'static str, Group)> = common::group_names()
        .into_iter()
        .map(|name| (name, common::group(&rt, name, None)))
        .collect();

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
        summary(&mut groups, &code);
    }
}
