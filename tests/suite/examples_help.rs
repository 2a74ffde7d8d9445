//! Every example answers `--help` and `-h` with its usage, on standard output, with exit
//! status 0 (the flags of the examples are an interface; this keeps them discoverable).
//!
//! The examples are built once with `cargo build --examples` (the same features as this test
//! when it runs with `--all-features`, so the build is usually fresh) and their executables
//! are taken from cargo's JSON messages.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use serde_json::Value;

/// Every example under `examples/`, by name, with the word its usage must contain.
const EXAMPLES: [(&str, &str); 9] = [
    ("callgrind_probe", "--prepare"),
    ("custom_responder", "PORT"),
    ("doctor", "--secret-file"),
    ("grpc", "PORT"),
    ("loadtarget", "--token-dir"),
    ("mtls", "--hmac-secret-file"),
    ("oidc", "--allow-http"),
    ("quickstart", "PORT"),
    ("session", "SESSION_SECRET"),
];

fn build_examples() -> BTreeMap<String, PathBuf> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| env!("CARGO").into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(env!("CARGO_MANIFEST_DIR")).args([
        "build",
        "--quiet",
        "--examples",
        "--message-format=json",
    ]);
    // `rust-crypto` is off by default: with it on, this test runs with `--all-features`.
    if cfg!(feature = "rust-crypto") {
        cmd.arg("--all-features");
    }
    if !cfg!(debug_assertions) {
        cmd.arg("--release");
    }
    let out = cmd.stderr(Stdio::inherit()).output().expect("cargo runs");
    assert!(out.status.success(), "cargo build --examples failed");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["kind"][0] == "example")
        .filter_map(|m| {
            let name = m["target"]["name"].as_str()?.to_owned();
            let exe = m["executable"].as_str()?;
            Some((name, PathBuf::from(exe)))
        })
        .collect()
}

#[test]
fn every_example_answers_help() {
    let built = build_examples();
    let on_disk: Vec<String> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/examples"))
        .expect("examples/")
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".rs").map(str::to_owned)
        })
        .collect();
    for name in &on_disk {
        assert!(
            EXAMPLES.iter().any(|(n, _)| n == name),
            "examples/{name}.rs is not in EXAMPLES: add it (and its --help)"
        );
    }
    for (name, word) in EXAMPLES {
        let exe = built
            .get(name)
            .unwrap_or_else(|| panic!("cargo did not build the example {name}"));
        for flag in ["--help", "-h"] {
            let out = Command::new(exe)
                .arg(flag)
                .stdin(Stdio::null())
                .output()
                .unwrap_or_else(|e| panic!("{name} {flag} does not start: {e}"));
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert_eq!(
                out.status.code(),
                Some(0),
                "{name} {flag}: {stdout}{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert!(stdout.contains("usage:"), "{name} {flag}: {stdout}");
            assert!(stdout.contains(word), "{name} {flag}: {stdout}");
            assert!(stdout.contains("-h, --help"), "{name} {flag}: {stdout}");
        }
    }
}
