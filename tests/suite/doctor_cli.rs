//! The `doctor` example run as a user runs it: the report, `--json`, the exit status (0 valid,
//! 1 invalid, 2 bad usage, 3 nothing wrong but no key to verify the signature), plain output
//! when piped, every key source that needs no network, and the mode without a key source.
//!
//! The example is built once per test run (`common::example_exe`: `cargo build --example doctor`
//! with the same features as this test when it runs with `--all-features`, so the build is
//! usually fresh).

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::Value;
use tower_token_auth::testing::TestKey;
use tower_token_auth::Algorithm;

const ISS: &str = "https://issuer.example";
const AUD: &str = "api://orders";
const SECRET: &[u8] = b"doctor's HS256 secret, 32 bytes!";

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// The `doctor` executable, built on first use.
fn doctor() -> PathBuf {
    crate::common::example_exe("doctor")
}

/// Runs `doctor` with `args` (and `stdin`), stdout and stderr piped.
fn run(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(doctor())
        .args(args)
        .env_remove("NO_COLOR")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("doctor starts");
    {
        let mut input = child.stdin.take().expect("stdin");
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).expect("write stdin");
        }
    }
    child.wait_with_output().expect("doctor finishes")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exit code")
}

/// A temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "doctor-cli-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }

    fn file(&self, name: &str, contents: impl AsRef<[u8]>) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, contents).expect("write temp file");
        path.to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn key() -> TestKey {
    TestKey::hmac(Algorithm::HS256, SECRET.to_vec())
}

fn valid_token() -> String {
    key()
        .token()
        .issuer(ISS)
        .audience(AUD)
        .subject("alice")
        .sign()
}

// ---------------------------------------------------------------------------------------------
// Verdicts and exit status
// ---------------------------------------------------------------------------------------------

#[test]
fn valid_token_exits_0() {
    let dir = TempDir::new();
    let secret = dir.file("secret.bin", SECRET);
    let t = valid_token();
    let out = run(
        &[&t, "--secret-file", &secret, "--aud", AUD, "--iss", ISS],
        None,
    );
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("VALID: the token is accepted"), "{text}");
    assert!(text.contains("No problems found"), "{text}");
    assert!(!text.contains("Pass --"), "{text}");
}

#[test]
fn expired_token_exits_1_and_says_expired() {
    let dir = TempDir::new();
    let secret = dir.file("secret.bin", SECRET);
    let t = key()
        .token()
        .issuer(ISS)
        .audience(AUD)
        .expired_for(Duration::from_secs(600))
        .sign();
    let out = run(
        &[&t, "--secret-file", &secret, "--aud", AUD, "--iss", ISS],
        None,
    );
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with("INVALID: rejected as expired (401, invalid_token)"),
        "{text}"
    );
    // 600 s, give or take the second the test takes.
    assert!(text.contains("expired 10 min"), "{text}");
    assert!(text.contains("Fix: refresh the token"), "{text}");
}

#[test]
fn json_output_parses_with_the_reason_codes() {
    let dir = TempDir::new();
    let secret = dir.file("secret.bin", SECRET);
    let t = key()
        .token()
        .issuer(ISS)
        .audience("api://billing")
        .expired_for(Duration::from_secs(312))
        .sign();
    let out = run(
        &[
            &t,
            "--secret-file",
            &secret,
            "--aud",
            AUD,
            "--iss",
            ISS,
            "--json",
        ],
        None,
    );
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let json: Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert_eq!(json["valid"], false);
    assert_eq!(json["reason"], "expired");
    assert_eq!(json["status"], 401);
    let codes: Vec<&str> = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["reason"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["expired", "wrong_audience"]);
    assert_eq!(json["claims"]["aud"], "api://billing");
    let signature = t.rsplit('.').next().unwrap();
    assert!(
        !stdout(&out).contains(signature),
        "no signature in the output"
    );
}

#[test]
fn json_output_of_a_valid_token() {
    let dir = TempDir::new();
    let secret = dir.file("secret.bin", SECRET);
    let t = valid_token();
    let out = run(&[&t, "--json", "--secret-file", &secret], None);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let json: Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert_eq!(json["valid"], true);
    assert_eq!(json["reason"], Value::Null);
    assert_eq!(json["signature_verified"], true);
    assert_eq!(json["checked_against"]["signature_check"], true);
}

#[test]
fn piped_output_has_no_ansi_escapes() {
    let dir = TempDir::new();
    let secret = dir.file("secret.bin", SECRET);
    let t = key().token().audience("api://billing").sign();
    let out = run(&[&t, "--secret-file", &secret, "--aud", AUD], None);
    assert_eq!(code(&out), 1);
    let text = stdout(&out);
    assert!(text.contains("wrong_audience"), "{text}");
    assert!(
        !text.contains('\u{1b}'),
        "ANSI escape in piped output: {text:?}"
    );
}

#[test]
fn token_is_read_from_stdin_with_a_dash() {
    let dir = TempDir::new();
    let secret = dir.file("secret.bin", SECRET);
    let t = format!("{}\n", valid_token());
    let out = run(
        &["-", "--secret-file", &secret, "--aud", AUD, "--iss", ISS],
        Some(&t),
    );
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
}

#[test]
fn without_aud_and_iss_the_report_says_the_checks_are_skipped() {
    let dir = TempDir::new();
    let secret = dir.file("secret.bin", SECRET);
    let t = key().token().sign();
    let out = run(&[&t, "--secret-file", &secret], None);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("the issuer check is off"), "{text}");
    assert!(text.contains("the audience check is off"), "{text}");
    assert!(
        text.contains("Pass --aud to check the audience and --iss to check the issuer."),
        "{text}"
    );
}

#[test]
fn leeway_flag_reaches_the_configuration() {
    let dir = TempDir::new();
    let secret = dir.file("secret.bin", SECRET);
    let t = key().token().expired_for(Duration::from_secs(60)).sign();
    let strict = run(&[&t, "--secret-file", &secret, "--leeway", "0"], None);
    assert_eq!(code(&strict), 1);
    assert!(
        stdout(&strict).contains("leeway: 0 s"),
        "{}",
        stdout(&strict)
    );
    let lenient = run(&[&t, "--secret-file", &secret, "--leeway", "120"], None);
    assert_eq!(code(&lenient), 0, "{}", stdout(&lenient));
}

#[test]
fn scope_flag_requires_the_scope() {
    let dir = TempDir::new();
    let secret = dir.file("secret.bin", SECRET);
    let t = key().token().scope("orders:read").sign();
    let out = run(
        &[
            &t,
            "--secret-file",
            &secret,
            "--scope",
            "orders:write",
            "--json",
        ],
        None,
    );
    assert_eq!(code(&out), 1);
    let json: Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert_eq!(json["reason"], "insufficient_scope");
    assert_eq!(json["status"], 403);
}

#[test]
fn opaque_token_is_explained() {
    let dir = TempDir::new();
    let secret = dir.file("secret.bin", SECRET);
    let out = run(&["2YotnFZFEjr1zCsicMWpAA", "--secret-file", &secret], None);
    assert_eq!(code(&out), 1);
    let text = stdout(&out);
    assert!(text.contains("malformed (opaque)"), "{text}");
    assert!(text.contains("introspection"), "{text}");
}

// ---------------------------------------------------------------------------------------------
// Without a key source: everything but the signature, exit 1 or 3, never 0
// ---------------------------------------------------------------------------------------------

const NOT_VERIFIED: &str = "Signature NOT verified: no key source was given";

fn now() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970");
    i64::try_from(since.as_secs()).expect("seconds fit")
}

/// Asserts the report opens with the warning and names the options that would verify.
fn says_not_verified_first(text: &str) {
    assert!(text.starts_with(NOT_VERIFIED), "{text}");
    let first = text.lines().next().unwrap_or("");
    for option in [
        "--secret-file FILE",
        "--jwks-url URL",
        "--jwks-file FILE",
        "--issuer URL",
        "--pem-file FILE",
    ] {
        assert!(first.contains(option), "{option} not named: {first}");
    }
    assert!(text.contains("Claims (not verified)") || text.contains("Claims: not decodable"));
    assert!(text.contains("signature: (not checked: no key)"), "{text}");
}

#[test]
fn no_key_expired_token_exits_1() {
    // Signed with a key the doctor never sees.
    let t = TestKey::es256()
        .token()
        .issuer(ISS)
        .audience(AUD)
        .expired_for(Duration::from_secs(600))
        .sign();
    let out = run(&[&t, "--aud", AUD, "--iss", ISS], None);
    assert_eq!(code(&out), 1, "{}{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    says_not_verified_first(&text);
    assert!(
        text.contains(
            "INVALID: rejected as expired (401, invalid_token); the signature was not checked"
        ),
        "{text}"
    );
    assert!(text.contains("expired 10 min"), "{text}");
    assert!(text.contains("Fix: refresh the token"), "{text}");
    // Only the time is wrong: nothing about keys or the signature.
    assert!(!text.contains("alg_not_allowed"), "{text}");
    assert!(!text.contains("bad_signature"), "{text}");
}

#[test]
fn no_key_not_yet_valid_token_exits_1_with_the_clock_skew_hint() {
    let t = TestKey::rs256()
        .token()
        .issuer(ISS)
        .audience(AUD)
        .claim("nbf", now() + 125)
        .expires_in(Duration::from_secs(3600))
        .sign();
    let out = run(&[&t, "--aud", AUD, "--iss", ISS, "--json"], None);
    assert_eq!(code(&out), 1, "{}{}", stdout(&out), stderr(&out));
    assert!(stderr(&out).contains(NOT_VERIFIED), "{}", stderr(&out));
    let json: Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert_eq!(json["signature_verified"], false);
    assert_eq!(json["checked_against"]["signature_check"], false);
    assert_eq!(json["valid"], false);
    assert_eq!(json["reason"], "not_yet_valid");
    let finding = &json["findings"][0];
    assert_eq!(finding["reason"], "not_yet_valid");
    assert_eq!(finding["fields"]["clock_skew_suspected"], true);
    assert!(
        finding["facts"]
            .as_str()
            .unwrap()
            .contains("not synchronised"),
        "{finding}"
    );
    assert!(
        finding["hint"]
            .as_str()
            .unwrap()
            .contains("synchronise the clocks"),
        "{finding}"
    );
}

#[test]
fn no_key_refresh_token_sent_as_an_access_token() {
    // A Keycloak refresh token: `typ: Refresh`, audience the realm itself.
    let t = TestKey::rs256()
        .token()
        .issuer(ISS)
        .audience(ISS)
        .claim("typ", "Refresh")
        .sign();
    let out = run(&[&t, "--aud", AUD, "--iss", ISS], None);
    assert_eq!(code(&out), 1, "{}{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    says_not_verified_first(&text);
    assert!(text.contains("wrong_audience (aud)"), "{text}");
    assert!(
        text.contains("this is a refresh token, not an access token (claim `typ` is `Refresh`)"),
        "{text}"
    );
    assert!(text.contains("not the refresh token"), "{text}");

    // Nothing else wrong: explained as a warning, and the signature is still unknown.
    let out = run(&[&t, "--iss", ISS], None);
    assert_eq!(code(&out), 3, "{}{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("UNVERIFIED: no problem found, but the signature was not checked"),
        "{text}"
    );
    assert!(text.contains("Warnings"), "{text}");
    assert!(text.contains("this is a refresh token"), "{text}");
}

#[test]
fn no_key_opaque_token_exits_1() {
    let out = run(&["2YotnFZFEjr1zCsicMWpAA", "--aud", AUD], None);
    assert_eq!(code(&out), 1, "{}{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    says_not_verified_first(&text);
    assert!(text.contains("malformed (opaque)"), "{text}");
    assert!(text.contains("opaque token of 22 characters"), "{text}");
    assert!(text.contains("introspection"), "{text}");
}

#[test]
fn no_key_encrypted_token_exits_1() {
    let header = "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ"; // {"alg":"RSA-OAEP","enc":"A256GCM"}
    let jwe = format!("{header}.OKOawDo13gRp2ojaHV7LFpZcgV7T6DVZKTyKOMTYUmKoTCVJRgckCL9kiMT03JGe.48V1_ALb6US04U3b.5eym8TW_c8SuK0ltJ3rpYIzOeDQz7TALvtu6UG9oMo4vpzs9tX_EFShS8iB7j6jiSdiwkIr3ajwQzaBtQD_A.XFBoMYUZodetZdvTiFvSkQ");
    let out = run(&[&jwe, "--json"], None);
    assert_eq!(code(&out), 1, "{}{}", stdout(&out), stderr(&out));
    let json: Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert_eq!(json["signature_verified"], false);
    assert_eq!(json["reason"], "malformed");
    assert_eq!(json["findings"][0]["subject"], "jwe");
    assert!(
        json["findings"][0]["facts"]
            .as_str()
            .unwrap()
            .contains("encrypted (JWE, `alg` `RSA-OAEP`, `enc` `A256GCM`)"),
        "{json}"
    );
    assert_eq!(json["header"]["enc"], "A256GCM");
}

#[test]
fn no_key_pasted_wrongly_is_explained() {
    let t = format!("\"Bearer {}\"", valid_token());
    let out = run(&[&t, "--aud", AUD, "--iss", ISS], None);
    assert_eq!(code(&out), 1, "{}{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    says_not_verified_first(&text);
    assert!(text.contains("malformed (bearer)"), "{text}");
    assert!(text.contains("malformed (quotes)"), "{text}");
}

#[test]
fn no_key_alg_none_is_refused() {
    let t = TestKey::es256()
        .token()
        .issuer(ISS)
        .audience(AUD)
        .header("alg", "none")
        .sign();
    let out = run(&[&t, "--aud", AUD, "--iss", ISS], None);
    assert_eq!(code(&out), 1, "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("alg_not_allowed"), "{}", stdout(&out));
}

#[test]
fn no_key_clean_token_exits_3_never_0() {
    let t = TestKey::es256()
        .token()
        .issuer(ISS)
        .audience(AUD)
        .scope("orders:read")
        .sign();
    let args = [&t, "--aud", AUD, "--iss", ISS, "--scope", "orders:read"];
    let out = run(&args, None);
    assert_eq!(code(&out), 3, "{}{}", stdout(&out), stderr(&out));
    let text = stdout(&out);
    says_not_verified_first(&text);
    assert!(
        text.contains("UNVERIFIED: no problem found, but the signature was not checked"),
        "{text}"
    );
    assert!(!text.contains("VALID: the token is accepted"), "{text}");

    let mut json_args = args.to_vec();
    json_args.push("--json");
    let out = run(&json_args, None);
    assert_eq!(code(&out), 3, "{}", stderr(&out));
    assert!(stderr(&out).contains(NOT_VERIFIED), "{}", stderr(&out));
    let json: Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON");
    assert_eq!(json["signature_verified"], false);
    assert_eq!(json["valid"], false);
    assert_eq!(json["reason"], Value::Null);
    assert_eq!(json["findings"], serde_json::json!([]));
    assert_eq!(json["checked_against"]["signature_check"], false);
    assert_eq!(json["claims"]["aud"], AUD);
}

// ---------------------------------------------------------------------------------------------
// Key sources
// ---------------------------------------------------------------------------------------------

#[test]
fn jwks_file_with_an_unknown_kid_lists_the_kids() {
    let dir = TempDir::new();
    let published = TestKey::es256().with_kid("k1");
    let jwks = dir.file("jwks.json", TestKey::jwks(&[&published]));
    let t = TestKey::es256().with_kid("k9").token().sign();
    let out = run(&[&t, "--jwks-file", &jwks], None);
    assert_eq!(code(&out), 1, "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("`kid` `k9` is not in the key set, which has `k1`"),
        "{text}"
    );
}

#[test]
fn pem_file_verifies_an_es256_token() {
    let dir = TempDir::new();
    let key = TestKey::es256();
    let pem = dir.file("key.pem", key.public_pem().unwrap());
    let t = key.token().issuer(ISS).sign();
    let out = run(&[&t, "--pem-file", &pem, "--iss", ISS], None);
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("EC PEM key (ES256)"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn pem_file_verifies_an_rs256_token() {
    let dir = TempDir::new();
    let key = TestKey::rs256();
    let pem = dir.file("key.pem", key.public_pem().unwrap());
    let t = key.token().sign();
    let out = run(&[&t, "--pem-file", &pem], None);
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
}

// ---------------------------------------------------------------------------------------------
// Bad usage: exit 2
// ---------------------------------------------------------------------------------------------

#[test]
fn unknown_flag_exits_2() {
    let out = run(&["a.b.c", "--secret-file", "x", "--frobnicate"], None);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("unknown flag --frobnicate"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("usage: doctor"), "{}", stderr(&out));
    assert!(stdout(&out).is_empty());
}

#[test]
fn missing_token_exits_2() {
    let dir = TempDir::new();
    let secret = dir.file("secret.bin", SECRET);
    let out = run(&["--secret-file", &secret], None);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("no token given"), "{}", stderr(&out));
}

#[test]
fn flag_without_its_value_exits_2() {
    let out = run(&["a.b.c", "--secret-file"], None);
    assert_eq!(code(&out), 2);
    assert!(
        stderr(&out).contains("--secret-file needs a value"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn unreadable_secret_file_exits_2() {
    let dir = TempDir::new();
    let missing = dir.0.join("no-such-file").to_string_lossy().into_owned();
    let out = run(&[&valid_token(), "--secret-file", &missing], None);
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("cannot read"), "{}", stderr(&out));
}

#[test]
fn two_key_sources_exit_2() {
    let dir = TempDir::new();
    let secret = dir.file("secret.bin", SECRET);
    let out = run(
        &[
            &valid_token(),
            "--secret-file",
            &secret,
            "--jwks-file",
            &secret,
        ],
        None,
    );
    assert_eq!(code(&out), 2);
    assert!(stderr(&out).contains("one key source"), "{}", stderr(&out));
}

#[test]
fn configuration_errors_exit_2() {
    let dir = TempDir::new();
    let secret = dir.file("secret.bin", SECRET);
    let leeway = run(
        &[&valid_token(), "--secret-file", &secret, "--leeway", "600"],
        None,
    );
    assert_eq!(code(&leeway), 2);
    assert!(
        stderr(&leeway).contains("configuration error: a leeway of 600 s is too large"),
        "{}",
        stderr(&leeway)
    );

    let short = dir.file("short.bin", b"too short");
    let weak = run(&[&valid_token(), "--secret-file", &short], None);
    assert_eq!(code(&weak), 2);
    assert!(
        stderr(&weak).contains("use at least 32 random bytes"),
        "{}",
        stderr(&weak)
    );

    let not_a_key = dir.file(
        "cert.pem",
        b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    );
    let pem = run(&[&valid_token(), "--pem-file", &not_a_key], None);
    assert_eq!(code(&pem), 2);
    assert!(stderr(&pem).contains("no usable RSA"), "{}", stderr(&pem));
}

#[test]
fn help_exits_0() {
    let out = run(&["--help"], None);
    assert_eq!(code(&out), 0);
    assert!(stdout(&out).contains("exit status: 0 valid, 1 invalid, 2 bad usage"));
    assert!(
        stdout(&out).contains("3 no problem found but the signature was not verified"),
        "{}",
        stdout(&out)
    );
    let short = run(&["-h"], None);
    assert_eq!(code(&short), 0);
    assert_eq!(stdout(&short), stdout(&out));
}
