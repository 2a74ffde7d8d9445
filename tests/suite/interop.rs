//! Interop: tokens minted by PyJWT (an independent implementation) in
//! `tests/fixtures/interop.json` must get exactly the verdict the fixture expects, whichever
//! form the keys are given in (JWK set, single JWKs, PEM, DER), both through
//! [`AuthConfig::validate`] and through the HTTP layer.

use std::convert::Infallible;

use axum::body::Body;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use serde::Deserialize;
use serde_json::Value;
use tower::{service_fn, Layer, ServiceExt};
use tower_token_auth::{AuthConfig, AuthError, Keys, Reason, StandardClaims, TokenAuthLayer};

const FIXTURE: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/interop.json"
));
const REALM: &str = "interop";

#[derive(Deserialize)]
struct Fixture {
    now: i64,
    issuer: String,
    audience: String,
    keys: FixtureKeys,
    jwks: Value,
    tokens: Vec<FixtureToken>,
}

#[derive(Deserialize)]
struct FixtureKeys {
    hmac: HmacKey,
    rsa: PublicKey,
    p256: PublicKey,
    p384: PublicKey,
    ed25519: PublicKey,
}

#[derive(Deserialize)]
struct HmacKey {
    kid: String,
    secret_b64url: String,
}

#[derive(Deserialize)]
struct PublicKey {
    kid: String,
    public_pem: String,
    public_der_b64url: String,
    jwk: Value,
}

#[derive(Deserialize)]
struct FixtureToken {
    name: String,
    key: Option<String>,
    token: String,
    expect: String,
    note: String,
}

impl FixtureToken {
    /// Signed by no trusted key at all: must never pass, whatever the claims say.
    fn untrusted_signer(&self) -> bool {
        matches!(self.key.as_deref(), None | Some("attacker_rsa"))
    }

    /// Does the header `alg` belong to the family of the key that signed the token?
    fn alg_matches_key(&self) -> bool {
        let Some(alg) = header_alg(&self.token) else {
            return false;
        };
        match self.key.as_deref() {
            Some("hmac") => alg.starts_with("HS"),
            Some("rsa") => alg.starts_with("RS") || alg.starts_with("PS"),
            Some("p256") => alg == "ES256",
            Some("p384") => alg == "ES384",
            Some("ed25519") => alg == "EdDSA",
            _ => false,
        }
    }

    fn family(&self) -> Family {
        if self.untrusted_signer()
            || matches!(self.expect.as_str(), "alg_not_allowed" | "malformed")
            || !self.alg_matches_key()
        {
            return Family::Attack;
        }
        match self.key.as_deref() {
            Some("hmac") => Family::Hmac,
            Some("rsa") => Family::Rsa,
            Some("p256" | "p384") => Family::Ec,
            Some("ed25519") => Family::Ed,
            _ => Family::Attack,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Family {
    Hmac,
    Rsa,
    Ec,
    Ed,
    /// Forged, structurally broken or key-confused tokens.
    Attack,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum KeyForm {
    Jwks,
    Jwk,
    Pem,
    Der,
}

const ALL_FORMS: [KeyForm; 4] = [KeyForm::Jwks, KeyForm::Jwk, KeyForm::Pem, KeyForm::Der];

fn fixture() -> Fixture {
    serde_json::from_str(FIXTURE).expect("tests/fixtures/interop.json parses")
}

/// The header `alg`, read leniently (padding stripped), for grouping tokens only.
fn header_alg(token: &str) -> Option<String> {
    let seg = token.split('.').next()?.trim_end_matches('=');
    let json = URL_SAFE_NO_PAD.decode(seg).ok()?;
    let header: Value = serde_json::from_slice(&json).ok()?;
    header.get("alg")?.as_str().map(str::to_owned)
}

fn b64(text: &str) -> Vec<u8> {
    URL_SAFE_NO_PAD
        .decode(text)
        .expect("fixture base64url decodes")
}

fn hmac_keys(fx: &Fixture) -> Keys {
    Keys::hmac(b64(&fx.keys.hmac.secret_b64url)).kid(fx.keys.hmac.kid.clone())
}

fn keys(fx: &Fixture, form: KeyForm) -> Keys {
    let k = &fx.keys;
    let hmac = hmac_keys(fx);
    match form {
        KeyForm::Jwks => hmac.and(Keys::jwks_json(fx.jwks.to_string())),
        KeyForm::Jwk => hmac
            .and(Keys::jwk(k.rsa.jwk.to_string()))
            .and(Keys::jwk(k.p256.jwk.to_string()))
            .and(Keys::jwk(k.p384.jwk.to_string()))
            .and(Keys::jwk(k.ed25519.jwk.to_string())),
        KeyForm::Pem => hmac
            .and(Keys::rsa_pem(&k.rsa.public_pem).kid(k.rsa.kid.clone()))
            .and(Keys::ec_pem(&k.p256.public_pem).kid(k.p256.kid.clone()))
            .and(Keys::ec_pem(&k.p384.public_pem).kid(k.p384.kid.clone()))
            .and(Keys::ed_pem(&k.ed25519.public_pem).kid(k.ed25519.kid.clone())),
        KeyForm::Der => hmac
            .and(Keys::rsa_der(b64(&k.rsa.public_der_b64url)).kid(k.rsa.kid.clone()))
            .and(Keys::ec_point(b64(&k.p256.public_der_b64url)).kid(k.p256.kid.clone()))
            .and(Keys::ec_point(b64(&k.p384.public_der_b64url)).kid(k.p384.kid.clone()))
            .and(Keys::ed_raw(b64(&k.ed25519.public_der_b64url)).kid(k.ed25519.kid.clone())),
    }
}

fn config_at(fx: &Fixture, form: KeyForm, now: i64) -> AuthConfig {
    AuthConfig::builder()
        .keys(keys(fx, form))
        .issuer(fx.issuer.as_str())
        .audience(fx.audience.as_str())
        .clock(move || now)
        .realm(REALM)
        .build()
        .unwrap_or_else(|e| panic!("{form:?} keys from the fixture build: {e}"))
}

fn config(fx: &Fixture, form: KeyForm) -> AuthConfig {
    config_at(fx, form, fx.now)
}

/// `"ok"` or the reason code, as the fixture writes it.
async fn verdict(cfg: &AuthConfig, token: &str) -> String {
    match cfg.validate::<StandardClaims>(token).await {
        Ok(_) => "ok".to_owned(),
        Err(e) => e.reason().code().to_owned(),
    }
}

/// Echoes `sub` and `tenant` of the verified claims as JSON.
async fn echo(req: Request<Body>) -> Result<Response<Body>, Infallible> {
    let body = match tower_token_auth::Claims::<StandardClaims>::from_extensions(req.extensions()) {
        Some(c) => serde_json::json!({
            "sub": c.sub,
            "tenant": c.extra.get("tenant"),
            "scope": c.scope,
        })
        .to_string(),
        None => "no claims".to_owned(),
    };
    Ok(Response::new(Body::from(body)))
}

async fn send(cfg: &AuthConfig, token: &str) -> Response<Body> {
    let svc = TokenAuthLayer::new(cfg.clone()).layer(service_fn(echo));
    let value = HeaderValue::from_str(&format!("Bearer {token}")).expect("tokens are ASCII");
    let req = Request::get("/")
        .header(header::AUTHORIZATION, value)
        .body(Body::empty())
        .expect("request builds");
    svc.oneshot(req).await.expect("infallible")
}

/// The verdict of the HTTP layer: `"ok"` for 200, else the reason in the response extensions
/// (checked against the status).
async fn http_verdict(cfg: &AuthConfig, token: &str) -> String {
    let res = send(cfg, token).await;
    if res.status() == StatusCode::OK {
        return "ok".to_owned();
    }
    match res.extensions().get::<AuthError>() {
        Some(err) if err.status() == res.status() => err.reason().code().to_owned(),
        Some(err) => format!(
            "{} with inconsistent status {}",
            err.reason().code(),
            res.status()
        ),
        None => format!("status {} without AuthError", res.status()),
    }
}

/// Runs `tokens` through every key form (validate and, if `http`, the layer) and returns one
/// line per mismatch.
async fn mismatches<'a>(
    fx: &Fixture,
    tokens: impl IntoIterator<Item = &'a FixtureToken>,
    http: bool,
) -> Vec<String> {
    let configs: Vec<(KeyForm, AuthConfig)> =
        ALL_FORMS.iter().map(|f| (*f, config(fx, *f))).collect();
    let mut out = Vec::new();
    for t in tokens {
        for (form, cfg) in &configs {
            let got = verdict(cfg, &t.token).await;
            if got != t.expect {
                out.push(format!(
                    "{} [{form:?}, validate]: expected {}, got {got} ({})",
                    t.name, t.expect, t.note
                ));
            }
            if http {
                let got = http_verdict(cfg, &t.token).await;
                if got != t.expect {
                    out.push(format!(
                        "{} [{form:?}, http]: expected {}, got {got} ({})",
                        t.name, t.expect, t.note
                    ));
                }
            }
        }
    }
    out
}

async fn check_family(family: Family) {
    let fx = fixture();
    let tokens: Vec<&FixtureToken> = fx.tokens.iter().filter(|t| t.family() == family).collect();
    assert!(!tokens.is_empty(), "the fixture has no {family:?} tokens");
    if family != Family::Attack {
        assert!(
            tokens.iter().any(|t| t.expect == "ok"),
            "the fixture has no valid {family:?} token"
        );
    }
    let bad = mismatches(&fx, tokens, true).await;
    assert!(
        bad.is_empty(),
        "{} {family:?} verdict mismatch(es):\n{}",
        bad.len(),
        bad.join("\n")
    );
}

#[test]
fn interop_fixture_is_well_formed() {
    let fx = fixture();
    assert_eq!(fx.tokens.len(), 42, "README promises 42 tokens");
    for t in &fx.tokens {
        assert!(
            t.expect == "ok" || Reason::from_code(&t.expect).is_some(),
            "{}: expect {:?} is neither ok nor a reason code",
            t.name,
            t.expect
        );
    }
    let mut names: Vec<&str> = fx.tokens.iter().map(|t| t.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), fx.tokens.len(), "token names are unique");
    // Every key form builds.
    for form in ALL_FORMS {
        let _ = config(&fx, form);
    }
}

#[tokio::test]
async fn interop_hmac_tokens() {
    check_family(Family::Hmac).await;
}

#[tokio::test]
async fn interop_rsa_tokens() {
    check_family(Family::Rsa).await;
}

#[tokio::test]
async fn interop_ec_tokens() {
    check_family(Family::Ec).await;
}

#[tokio::test]
async fn interop_eddsa_tokens() {
    check_family(Family::Ed).await;
}

#[tokio::test]
async fn interop_attack_tokens() {
    check_family(Family::Attack).await;
}

/// Every fixture token, every key form, validate and HTTP: all mismatches reported at once.
#[tokio::test]
async fn interop_all_tokens_all_key_forms() {
    let fx = fixture();
    let bad = mismatches(&fx, &fx.tokens, true).await;
    assert!(
        bad.is_empty(),
        "{} verdict mismatch(es) over {} tokens x {} key forms x 2 paths:\n{}",
        bad.len(),
        fx.tokens.len(),
        ALL_FORMS.len(),
        bad.join("\n")
    );
}

/// Tokens signed by no trusted key (key null or attacker_rsa) never pass, even with the claim
/// checks relaxed: they fail on the signature, key or algorithm, not on a claim.
#[tokio::test]
async fn interop_untrusted_signers_never_pass() {
    let fx = fixture();
    let untrusted: Vec<&FixtureToken> = fx.tokens.iter().filter(|t| t.untrusted_signer()).collect();
    assert!(untrusted.len() >= 10, "fixture lost its forged tokens");
    let now = fx.now;
    let mut passed = Vec::new();
    for form in ALL_FORMS {
        let lax = AuthConfig::builder()
            .keys(keys(&fx, form))
            .skip_issuer_check()
            .skip_audience_check()
            .leeway(tower_token_auth::MAX_LEEWAY)
            .clock(move || now)
            .build()
            .expect("lax config builds");
        let strict = config(&fx, form);
        for t in &untrusted {
            for (which, cfg) in [("lax", &lax), ("strict", &strict)] {
                let v = verdict(cfg, &t.token).await;
                let structural = matches!(
                    Reason::from_code(&v),
                    Some(
                        Reason::Malformed
                            | Reason::BadSignature
                            | Reason::AlgNotAllowed
                            | Reason::UnknownKey
                    )
                );
                if !structural {
                    passed.push(format!("{} [{form:?}, {which}]: {v}", t.name));
                }
            }
            let h = http_verdict(&strict, &t.token).await;
            if h == "ok" {
                passed.push(format!("{} [{form:?}, http]: ok", t.name));
            }
        }
    }
    assert!(
        passed.is_empty(),
        "untrusted tokens passed or failed only on claims:\n{}",
        passed.join("\n")
    );
}

/// A valid PyJWT token's claims are read: sub, aud, scope, jti, iss and the custom `tenant`.
#[tokio::test]
async fn interop_valid_token_claims_are_read() {
    let fx = fixture();
    let valid: Vec<&FixtureToken> = fx.tokens.iter().filter(|t| t.expect == "ok").collect();
    assert!(valid.len() >= 12);
    for form in ALL_FORMS {
        let cfg = config(&fx, form);
        for t in &valid {
            let c: StandardClaims = cfg
                .validate(&t.token)
                .await
                .unwrap_or_else(|e| panic!("{} [{form:?}]: {e:?}", t.name));
            assert_eq!(c.sub.as_deref(), Some("user-123"), "{}", t.name);
            assert_eq!(c.iss.as_deref(), Some(fx.issuer.as_str()), "{}", t.name);
            assert!(c.aud.contains(&fx.audience), "{}: aud {:?}", t.name, c.aud);
            assert_eq!(c.scope.as_deref(), Some("read write"), "{}", t.name);
            assert_eq!(
                c.extra.get("tenant"),
                Some(&Value::from("acme")),
                "{}",
                t.name
            );
            assert_eq!(c.jti, Some(format!("jti-{}", t.name)), "{}", t.name);
            assert_eq!(c.iat, Some(1_700_000_000), "{}", t.name);
            assert_eq!(c.exp, Some(1_700_003_600), "{}", t.name);
        }
    }
    // The array audience keeps both values, in order.
    let cfg = config(&fx, KeyForm::Jwks);
    let t = fx
        .tokens
        .iter()
        .find(|t| t.name == "aud_array_RS256")
        .expect("aud_array_RS256 in fixture");
    let c: StandardClaims = cfg.validate(&t.token).await.expect("aud_array_RS256 valid");
    assert_eq!(c.aud, vec!["api://other".to_owned(), fx.audience.clone()]);
    // Only the RFC 9068 token carries client_id.
    let t = fx
        .tokens
        .iter()
        .find(|t| t.name == "valid_at_jwt_RS256")
        .expect("valid_at_jwt_RS256 in fixture");
    let c: StandardClaims = cfg.validate(&t.token).await.expect("at+jwt valid");
    assert_eq!(c.extra.get("client_id"), Some(&Value::from("client-1")));
}

/// Through the layer, the handler sees the claims of a PyJWT token.
#[tokio::test]
async fn interop_http_valid_tokens_reach_the_handler_with_claims() {
    let fx = fixture();
    let cfg = config(&fx, KeyForm::Jwks);
    for t in fx.tokens.iter().filter(|t| t.expect == "ok") {
        let res = send(&cfg, &t.token).await;
        assert_eq!(res.status(), StatusCode::OK, "{}", t.name);
        assert!(res.extensions().get::<AuthError>().is_none(), "{}", t.name);
        let body = res.into_body().collect().await.expect("body").to_bytes();
        let body: Value = serde_json::from_slice(&body).expect("echo body is JSON");
        assert_eq!(
            body,
            serde_json::json!({"sub": "user-123", "tenant": "acme", "scope": "read write"}),
            "{}",
            t.name
        );
    }
}

/// One PyJWT token per reason through the layer: status, exact `WWW-Authenticate`, problem
/// body, and the `AuthError` in the response extensions.
#[tokio::test]
async fn interop_http_one_rejection_per_reason() {
    let fx = fixture();
    let cfg = config(&fx, KeyForm::Jwks);
    let mut seen: Vec<Reason> = Vec::new();
    for t in fx.tokens.iter().filter(|t| t.expect != "ok") {
        let reason = Reason::from_code(&t.expect).expect("reason code");
        if seen.contains(&reason) {
            continue;
        }
        seen.push(reason);
        let res = send(&cfg, &t.token).await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{}", t.name);
        let err = res
            .extensions()
            .get::<AuthError>()
            .unwrap_or_else(|| panic!("{}: no AuthError in extensions", t.name));
        assert_eq!(err.reason(), reason, "{}", t.name);
        assert_eq!(
            res.headers()[header::WWW_AUTHENTICATE],
            format!(
                "Bearer realm=\"{REALM}\", error=\"invalid_token\", error_description=\"{}\"",
                reason.description()
            ),
            "{}",
            t.name
        );
        assert_eq!(
            res.headers()[header::CONTENT_TYPE],
            "application/problem+json",
            "{}",
            t.name
        );
        let body = res.into_body().collect().await.expect("body").to_bytes();
        let text = String::from_utf8(body.to_vec()).expect("UTF-8 body");
        let json: Value = serde_json::from_str(&text).expect("problem body is JSON");
        assert_eq!(json["reason"], reason.code(), "{}", t.name);
        assert_eq!(json["error"], "invalid_token", "{}", t.name);
        assert_eq!(json["status"], 401, "{}", t.name);
        assert_eq!(json["title"], reason.title(), "{}", t.name);
        assert_eq!(json["detail"], reason.description(), "{}", t.name);
        // Nothing from the token leaks into the body.
        for leak in ["user-123", "evil.example", "api://other", "rsa-1", "nope"] {
            assert!(
                !text.contains(leak),
                "{}: body leaks {leak}: {text}",
                t.name
            );
        }
    }
    let expected = [
        Reason::Expired,
        Reason::NotYetValid,
        Reason::WrongIssuer,
        Reason::WrongAudience,
        Reason::MissingClaim,
        Reason::BadSignature,
        Reason::UnknownKey,
        Reason::AlgNotAllowed,
        Reason::Malformed,
    ];
    for r in expected {
        assert!(seen.contains(&r), "fixture has no {r} token");
    }
}

/// Rejections keep the facts operators need (kid, alg, issuer, audience, exp, now).
#[tokio::test]
async fn interop_rejection_facts() {
    let fx = fixture();
    let cfg = config(&fx, KeyForm::Jwks);
    let token = |name: &str| {
        fx.tokens
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("{name} in fixture"))
            .token
            .clone()
    };
    let err = cfg
        .validate::<StandardClaims>(&token("wrong_issuer_RS256"))
        .await
        .unwrap_err();
    let f = err.facts();
    assert_eq!(f.issuer.as_deref(), Some("https://evil.example"));
    assert_eq!(f.expected_issuers, vec![fx.issuer.clone()]);
    assert_eq!(f.kid.as_deref(), Some("rsa-1"));
    assert_eq!(f.alg.as_deref(), Some("RS256"));
    assert_eq!(f.checked_at, Some(fx.now));

    let err = cfg
        .validate::<StandardClaims>(&token("wrong_audience_RS256"))
        .await
        .unwrap_err();
    assert_eq!(err.facts().audience, vec!["api://other".to_owned()]);
    assert_eq!(err.facts().expected_audiences, vec![fx.audience.clone()]);

    let err = cfg
        .validate::<StandardClaims>(&token("expired_ES256"))
        .await
        .unwrap_err();
    assert_eq!(err.facts().expires_at, Some(1_699_999_000));
    assert_eq!(err.problems().len(), 1, "{err:?}");

    let err = cfg
        .validate::<StandardClaims>(&token("unknown_kid_RS256"))
        .await
        .unwrap_err();
    assert_eq!(err.facts().kid.as_deref(), Some("nope"));
}

/// The verdicts depend on the configured clock, not the system clock: the fixture's
/// expired token is valid before its `exp`, and valid tokens expire after theirs (30 s leeway).
#[tokio::test]
async fn interop_verdicts_follow_the_clock() {
    let fx = fixture();
    let token = |name: &str| {
        fx.tokens
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("{name} in fixture"))
            .token
            .clone()
    };
    let expired = token("expired_ES256"); // exp 1699999000
    let early = token("not_yet_valid_EdDSA"); // nbf 1700001000
    let valid = token("valid_EdDSA"); // exp 1700003600
    for form in ALL_FORMS {
        let at = |now| config_at(&fx, form, now);
        assert_eq!(verdict(&at(1_699_998_000), &expired).await, "ok");
        assert_eq!(verdict(&at(1_699_999_029), &expired).await, "ok");
        assert_eq!(verdict(&at(1_699_999_030), &expired).await, "expired");
        assert_eq!(verdict(&at(1_700_000_970), &early).await, "ok");
        assert_eq!(verdict(&at(1_700_000_969), &early).await, "not_yet_valid");
        assert_eq!(verdict(&at(1_700_003_629), &valid).await, "ok");
        assert_eq!(verdict(&at(1_700_003_630), &valid).await, "expired");
    }
}

/// The RFC 9068 profile accepts PyJWT's `at+jwt` token and refuses a plain `JWT` one.
#[tokio::test]
async fn interop_access_token_profile() {
    let fx = fixture();
    let now = fx.now;
    let cfg = AuthConfig::builder()
        .keys(keys(&fx, KeyForm::Jwks))
        .issuer(fx.issuer.as_str())
        .audience(fx.audience.as_str())
        .access_token_profile()
        .clock(move || now)
        .build()
        .expect("profile config builds");
    let find = |name: &str| {
        fx.tokens
            .iter()
            .find(|t| t.name == name)
            .unwrap_or_else(|| panic!("{name} in fixture"))
    };
    let at = find("valid_at_jwt_RS256");
    assert_eq!(verdict(&cfg, &at.token).await, "ok");
    let plain = find("valid_RS256");
    let err = cfg
        .validate::<StandardClaims>(&plain.token)
        .await
        .unwrap_err();
    assert_eq!(err.reason(), Reason::WrongType);
    assert!(err.has(Reason::MissingClaim), "client_id missing: {err:?}");
}
