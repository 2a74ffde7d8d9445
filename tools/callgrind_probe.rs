//! Runs N requests of one benchmark variant, for instruction counting under callgrind.
//!
//! ```text
//! cargo build --release --example callgrind_probe
//! target/release/examples/callgrind_probe --list            # every GROUP/VARIANT
//! target/release/examples/callgrind_probe --prepare         # build and check each once
//! target/release/examples/callgrind_probe ES256/ours_warm 1000
//!
//! GROUP/VARIANT N   build the variant, check it once, then call it N times
//! --list            print every GROUP/VARIANT
//! --prepare         build and check every variant once (and sign the tokens, see below)
//! -h, --help        print this help
//! ```
//!
//! The variants are the ones of `benches/overhead.rs` (same file, `benches/common/mod.rs`):
//! the probe builds only the named one, checks it once (status, `Reason`, cache hits or
//! misses), then calls it N times. `scripts/callgrind.sh` runs it under
//! `valgrind --tool=callgrind` with a small and a large N and reports
//! `(Ir(large) - Ir(small)) / (N_large - N_small)`: the instructions of one request, with the
//! set-up cancelled out. The script also counts only inside [`run_loop`] (callgrind's
//! `--toggle-collect`), so that the set-up (key parsing, token signing with random nonces)
//! adds neither time nor noise. With `BENCH_TOKEN_DIR` set, every run uses the same tokens
//! (ES256 signatures are randomized, and the cost of verifying one depends on it); the script
//! runs `--prepare` first, which builds and checks every variant once natively and signs the
//! tokens into that directory.

#[path = "../benches/common/mod.rs"]
mod common;

const USAGE: &str = "\
usage: callgrind_probe GROUP/VARIANT N | --list | --prepare

  GROUP/VARIANT N   build the variant, check it once, then call it N times
  --list            print every GROUP/VARIANT
  --prepare         build and check every variant once (signing the tokens into
                    BENCH_TOKEN_DIR when it is set)
  -h, --help        print this help";

fn usage() -> ! {
    eprintln!("{USAGE}");
    std::process::exit(2);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("-h" | "--help") => {
            println!("{USAGE}");
            return;
        }
        Some("--list") => {
            for group in common::group_names() {
                for variant in common::variant_names(group) {
                    println!("{group}/{variant}");
                }
            }
            return;
        }
        Some("--prepare") => {
            common::install_provider();
            let rt = common::runtime();
            for group in common::group_names() {
                for variant in common::variant_names(group) {
                    let built = common::group(&rt, group, Some(variant));
                    assert_eq!(built.len(), 1, "{group}/{variant} was not built");
                }
            }
            println!("every variant built and checked");
            return;
        }
        _ => {}
    }
    let [which, n] = args.as_slice() else { usage() };
    let Some((group, variant)) = which.split_once('/') else {
        usage()
    };
    let Ok(n) = n.parse::<u64>() else { usage() };
    if !common::group_names().contains(&group) || !common::variant_names(group).contains(&variant) {
        eprintln!("unknown variant {which}; see --list");
        std::process::exit(2);
    }

    common::install_provider();
    let rt = common::runtime();
    let mut variants = common::group(&rt, group, Some(variant));
    let (_, f) = variants.first_mut().expect("the variant was built");
    run_loop(f, n);
}

/// The measured loop, a function of its own so that callgrind can count only inside it
/// (`--toggle-collect='*callgrind_probe::run_loop*'`), leaving the set-up out.
#[inline(never)]
fn run_loop(f: &mut common::Variant, n: u64) {
    for _ in 0..n {
        f();
    }
}
