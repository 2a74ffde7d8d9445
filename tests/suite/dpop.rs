//! DPoP (RFC 9449) against an independent implementation: DPoP-bound access tokens from the
//! real provider (node oidc-provider) and proofs made by `tests/oidc/dpop.mjs` (node `jose`),
//! good ones and every attack, sent through the layer.

use std::path::Path;
use std::process::Command;

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use http::{Request, StatusCode};
use serde_json::Value;
use tower::ServiceExt;
use tower_token_auth::binding::Dpop;
use tower_token_auth::keys::remote::Remote;
use tower_token_auth::{
    AuthConfig, AuthError, Claims, Keys, Reason, StandardClaims, TokenAuthLayer,
};

use crate::oidc_provider::Provider;

/// Where the API is, as clients name it in their proofs (`htu`).
const API: &str = "http://127.0.0.1:3000";

/// Runs `tests/oidc/dpop.mjs` against the shared provider: a DPoP-bound token for
/// `resource` and proofs for `GET {API}/me`.
fn fixture(provider: &Provider, resource: &str, alg: &str) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oidc/dpop.mjs");
    let out = Command::new("node")
        .arg(script)
        .args([
            provider.issuer.as_str(),
            resource,
            &format!("{API}/me"),
            "--alg",
            alg,
        ])
        .output()
        .expect("node runs tests/oidc/dpop.mjs");
    assert!(
        out.status.success(),
        "dpop.mjs failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("dpop.mjs prints JSON")
}

fn config(provider: &Provider, dpop: Dpop) -> AuthConfig {
    AuthConfig::builder()
        .keys(Keys::remote(Remote::oidc(&provider.issuer).allow_http()))
        .audience("api://dpop")
        .realm("api")
        .dpop(dpop.base_url(API))
        .build()
        .unwrap()
}

fn app(cfg: AuthConfig) -> Router {
    Router::new()
        .route(
            "/me",
            get(|c: Claims<StandardClaims>| async move { c.sub.clone().unwrap_or_default() }),
        )
        .layer(TokenAuthLayer::new(cfg))
}

/// `GET /me` with `Authorization: <scheme> <token>` and these `DPoP` headers.
async fn call(
    app: &Router,
    scheme: &str,
    token: &str,
    proofs: &[&str],
) -> (StatusCode, Option<AuthError>, Option<String>) {
    let mut req = Request::get("/me").header("authorization", format!("{scheme} {token}"));
    for p in proofs {
        req = req.header("dpop", *p);
    }
    let res = app
        .clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let challenge = res
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    (
        res.status(),
        res.extensions().get::<AuthError>().cloned(),
        challenge,
    )
}

fn subject(err: &Option<AuthError>) -> Option<String> {
    err.as_ref().and_then(|e| {
        e.problems()
            .first()
            .and_then(|p| p.subject().map(str::to_owned))
    })
}

#[tokio::test]
async fn a_dpop_bound_token_from_the_provider_with_proofs_from_jose() {
    let provider = Provider::shared();
    for alg in ["ES256", "EdDSA", "RS256", "PS256"] {
        let f = fixture(provider, "api://dpop", alg);
        let token = f["access_token"].as_str().unwrap();
        let proof = |name: &str| f["proofs"][name].as_str().unwrap().to_owned();
        let app = app(config(provider, Dpop::allowed()));

        let (status, err, _) = call(&app, "DPoP", token, &[&proof("good")]).await;
        assert_eq!(status, StatusCode::OK, "{alg}: {err:?}");
        // The same proof again: a replay, refused even though the token is now cached.
        let (status, err, challenge) = call(&app, "DPoP", token, &[&proof("replay")]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{alg}");
        assert_eq!(
            err.as_ref().map(AuthError::reason),
            Some(Reason::InvalidDpopProof)
        );
        assert_eq!(subject(&err).as_deref(), Some("jti"), "{alg}");
        let challenge = challenge.unwrap();
        assert!(
            challenge.contains(r#"DPoP realm="api", algs=""#),
            "{challenge}"
        );
        assert!(
            challenge.contains(r#"error="invalid_dpop_proof""#),
            "{challenge}"
        );
        assert!(
            challenge.starts_with(r#"Bearer realm="api""#),
            "{challenge}"
        );
        // A new proof for the cached token: accepted.
        let (status, err, _) = call(&app, "DPoP", token, &[&proof("good2")]).await;
        assert_eq!(status, StatusCode::OK, "{alg}: {err:?}");

        // Every attack, each with the check that catches it.
        for (name, want) in [
            ("wrong_method", "htm"),
            ("wrong_url", "htu"),
            ("wrong_ath", "ath"),
            ("no_ath", "ath"),
            ("other_key", "jkt"),
            ("old_iat", "iat"),
            ("future_iat", "iat"),
            ("alg_none", "alg"),
            ("hs256", "alg"),
            ("private_jwk", "jwk"),
            ("wrong_typ", "typ"),
            ("no_jwk", "jwk"),
            ("bad_signature", "signature"),
        ] {
            let (status, err, _) = call(&app, "DPoP", token, &[&proof(name)]).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{alg} {name}");
            assert_eq!(
                err.as_ref().map(AuthError::reason),
                Some(Reason::InvalidDpopProof),
                "{alg} {name}"
            );
            assert_eq!(subject(&err).as_deref(), Some(want), "{alg} {name}");
        }
        // RFC 9449 §4.3: `htu` is compared without its query.
        let (status, err, _) = call(&app, "DPoP", token, &[&proof("query_url")]).await;
        assert_eq!(status, StatusCode::OK, "{alg}: {err:?}");
    }
}

#[tokio::test]
async fn downgrades_missing_and_double_proofs_are_refused() {
    let provider = Provider::shared();
    let f = fixture(provider, "api://dpop", "ES256");
    let token = f["access_token"].as_str().unwrap();
    let bearer_token = f["bearer_access_token"].as_str().unwrap();
    let good = f["proofs"]["good"].as_str().unwrap();
    let good2 = f["proofs"]["good2"].as_str().unwrap();
    let app = app(config(provider, Dpop::allowed()));

    // The bound token sent as a bearer token (with or without a proof header).
    for proofs in [&[][..], &[good][..]] {
        let (status, err, challenge) = call(&app, "Bearer", token, proofs).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            err.as_ref().map(AuthError::reason),
            Some(Reason::BoundToken)
        );
        let challenge = challenge.unwrap();
        assert!(
            challenge.contains(r#"Bearer realm="api", error="invalid_token""#),
            "{challenge}"
        );
        assert!(
            challenge.contains("DPoP realm=\"api\", algs="),
            "{challenge}"
        );
    }
    // The DPoP scheme without a proof, and with two.
    let (_, err, _) = call(&app, "DPoP", token, &[]).await;
    assert_eq!(
        err.as_ref().map(AuthError::reason),
        Some(Reason::InvalidDpopProof)
    );
    assert_eq!(subject(&err).as_deref(), Some("dpop"));
    let (_, err, _) = call(&app, "DPoP", token, &[good, good2]).await;
    assert_eq!(subject(&err).as_deref(), Some("dpop"));
    // A plain bearer token with the DPoP scheme: no `cnf` to bind it.
    let (_, err, _) = call(&app, "DPoP", bearer_token, &[good]).await;
    assert_eq!(
        err.as_ref().map(AuthError::reason),
        Some(Reason::InvalidDpopProof)
    );
    assert_eq!(subject(&err).as_deref(), Some("cnf"));
    // The plain bearer token as a bearer token: accepted when DPoP is only allowed...
    let (status, _, _) = call(&app, "Bearer", bearer_token, &[]).await;
    assert_eq!(status, StatusCode::OK);
    // ...and not read at all when DPoP is required (DPoP challenge only).
    let required = self::app(config(provider, Dpop::required()));
    let (status, err, challenge) = call(&required, "Bearer", bearer_token, &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(err.as_ref().map(AuthError::reason), Some(Reason::Missing));
    let challenge = challenge.unwrap();
    assert!(
        challenge.starts_with("DPoP realm=\"api\", algs="),
        "{challenge}"
    );
    assert!(!challenge.contains("Bearer"), "{challenge}");
    // A bearer-only configuration refuses the bound token too.
    let bearer_only = AuthConfig::builder()
        .keys(Keys::remote(Remote::oidc(&provider.issuer).allow_http()))
        .audience("api://dpop")
        .build()
        .unwrap();
    let (status, err, _) = call(&self::app(bearer_only), "Bearer", token, &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        err.as_ref().map(AuthError::reason),
        Some(Reason::BoundToken)
    );
}

#[tokio::test]
async fn an_opaque_dpop_bound_token_is_checked_through_introspection() {
    use tower_token_auth::introspection::Introspection;
    let provider = Provider::shared();
    let f = fixture(provider, "api://opaque", "ES256");
    let token = f["access_token"].as_str().unwrap();
    let cfg = AuthConfig::builder()
        .issuer(&provider.issuer)
        .audience("api://opaque")
        .introspection(
            Introspection::discover()
                .client_secret_basic("api-client", "api-secret")
                .allow_http(),
        )
        .dpop(Dpop::allowed().base_url(API))
        .build()
        .unwrap();
    let app = app(cfg);
    let (status, err, _) = call(
        &app,
        "DPoP",
        token,
        &[f["proofs"]["good"].as_str().unwrap()],
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{err:?}");
    let (_, err, _) = call(
        &app,
        "DPoP",
        token,
        &[f["proofs"]["other_key"].as_str().unwrap()],
    )
    .await;
    assert_eq!(subject(&err).as_deref(), Some("jkt"));
    let (_, err, _) = call(&app, "Bearer", token, &[]).await;
    assert_eq!(
        err.as_ref().map(AuthError::reason),
        Some(Reason::BoundToken)
    );
}

// ----- examples/oidc.rs with --dpop -----

/// `examples/oidc.rs --dpop required` against the provider, with a DPoP-bound token and proofs
/// from `dpop.mjs` for the example's real URL (`htu` is `http://127.0.0.1:<port>/me`): a good
/// proof is accepted, the same proof again is a replay, a bearer request gets only a DPoP
/// challenge.
#[tokio::test]
async fn oidc_example_with_dpop_required_accepts_a_proof_once() {
    use std::io::{BufRead, BufReader};
    use std::process::{Child, Stdio};
    use std::time::Duration;

    /// The example's process, killed when dropped (also when an assertion fails).
    struct Running(Child);
    impl Drop for Running {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    let provider = Provider::shared();
    let mut child = Command::new(crate::common::example_exe("oidc"))
        .args([
            provider.issuer.as_str(),
            "api://dpop",
            "--allow-http",
            "--port",
            "0",
            "--dpop",
            "required",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the oidc example starts");
    let stdout = child.stdout.take().unwrap();
    let example = Running(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut banner = String::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("Listening on ") {
                let _ = tx.send(Ok(url.trim().to_owned()));
            }
            banner.push_str(&line);
            banner.push('\n');
            if line.starts_with("DPoP:") {
                let _ = tx.send(Err(line));
            }
        }
    });
    let mut base = None;
    let mut dpop_line = None;
    while base.is_none() {
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Ok(url)) => base = Some(url),
            Ok(Err(line)) => dpop_line = Some(line),
            Err(_) => panic!("the oidc example did not say where it listens"),
        }
    }
    let base = base.unwrap();
    let dpop_line = dpop_line.expect("the banner names the DPoP mode");
    assert!(dpop_line.contains("required"), "{dpop_line}");
    assert!(base.starts_with("http://127.0.0.1:"), "{base}");

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oidc/dpop.mjs");
    let out = Command::new("node")
        .arg(script)
        .args([
            provider.issuer.as_str(),
            "api://dpop",
            &format!("{base}/me"),
        ])
        .output()
        .expect("node runs tests/oidc/dpop.mjs");
    assert!(
        out.status.success(),
        "dpop.mjs failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let f: Value = serde_json::from_slice(&out.stdout).expect("dpop.mjs prints JSON");
    let token = f["access_token"].as_str().unwrap();
    let good = f["proofs"]["good"].as_str().unwrap();

    let client = reqwest::Client::new();
    let me = |authorization: String, proof: Option<&str>| {
        let mut request = client
            .get(format!("{base}/me"))
            .header("authorization", authorization);
        if let Some(p) = proof {
            request = request.header("dpop", p);
        }
        async move {
            let res = request.send().await.expect("GET /me");
            let challenge = res
                .headers()
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap().to_owned());
            let status = res.status();
            let body: Value =
                serde_json::from_slice(&res.bytes().await.expect("body")).expect("a JSON body");
            (status, challenge, body)
        }
    };

    // The good proof: accepted, the claims echoed (with the binding).
    let (status, _, claims) = me(format!("DPoP {token}"), Some(good)).await;
    assert_eq!(status, StatusCode::OK, "{claims}");
    assert_eq!(claims["cnf"]["jkt"], f["jkt"], "{claims}");
    // The same proof again: a replay.
    let (status, challenge, body) = me(format!("DPoP {token}"), Some(good)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let challenge = challenge.expect("a challenge");
    assert!(challenge.starts_with("DPoP "), "{challenge}");
    assert!(
        challenge.contains(r#"error="invalid_dpop_proof""#),
        "{challenge}"
    );
    assert_eq!(body["reason"], "invalid_dpop_proof", "{body}");
    // Bearer requests, with the bound token and with a plain one: no token read (DPoP is
    // required), a DPoP challenge only.
    let bearer = f["bearer_access_token"].as_str().unwrap();
    for t in [token, bearer] {
        let (status, challenge, body) = me(format!("Bearer {t}"), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        let challenge = challenge.expect("a challenge");
        assert!(challenge.starts_with("DPoP "), "{challenge}");
        assert!(!challenge.contains("Bearer"), "{challenge}");
    }
    drop(example);
}

/// `--dpop` takes `allowed` or `required`; anything else is a usage error (exit 2).
#[test]
fn oidc_example_refuses_an_unknown_dpop_mode() {
    let exe = crate::common::example_exe("oidc");
    for mode in [&["--dpop", "sometimes"][..], &["--dpop"][..]] {
        let out = Command::new(&exe)
            .args(["http://127.0.0.1:9", "api://dpop", "--allow-http"])
            .args(mode)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("the oidc example runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{mode:?}: {stderr}");
        assert!(stderr.starts_with("error: --dpop"), "{mode:?}: {stderr}");
        assert!(stderr.contains("usage:"), "{stderr}");
        assert!(out.stdout.is_empty(), "{mode:?}: nothing served");
    }
}
