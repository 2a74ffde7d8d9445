//! Every rejection reason, as a client sees it through `TokenAuthLayer`: status,
//! `WWW-Authenticate`, the RFC 9457 problem body and the `AuthError` in the response
//! extensions; then the validation rules (time windows, issuer, audience, type, required
//! claims, user checks, headers) checked "as of" a fixed instant.

use std::borrow::Cow;
use std::time::Duration;

use axum::body::Body;
use axum::routing::get;
use axum::Router;
use http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::request::Parts;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::BodyExt;
use serde_json::{json, Value};
use tower::ServiceExt;
use tower_token_auth::clock::ManualClock;
use tower_token_auth::response::problem_response;
use tower_token_auth::source::TokenSource;
use tower_token_auth::testing::TestKey;
use tower_token_auth::{
    AuthConfig, AuthConfigBuilder, AuthError, ClaimError, Claims, Reason, TokenAuthLayer,
};

use crate::common::{bearer, ok_app as app};

const REALM: &str = "api";
const ISS: &str = "https://issuer.example";
const AUD: &str = "api://orders";
/// The instant every token is checked against (2023-11-14T22:13:20Z).
const NOW: i64 = 1_700_000_000;
const DEFAULT_LEEWAY: i64 = 30;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// A configuration for `key` with issuer, audience, realm "api" and a clock stopped at `NOW`.
fn builder(key: &TestKey) -> AuthConfigBuilder {
    AuthConfig::builder()
        .keys(key.keys())
        .issuer(ISS)
        .audience(AUD)
        .realm(REALM)
        .clock(|| NOW)
}

/// A token that `builder(key)` accepts, as of `NOW`.
fn good_token(key: &TestKey) -> String {
    key.token_at(NOW)
        .issuer(ISS)
        .audience(AUD)
        .subject("alice")
        .sign()
}

async fn send(cfg: AuthConfig, req: Request<Body>) -> Response<Body> {
    app(cfg).oneshot(req).await.unwrap()
}

/// Sends `token` through the layer: `Ok` if the inner service answered, the `AuthError` of the
/// rejection otherwise.
async fn verdict(cfg: &AuthConfig, token: &str) -> Result<(), AuthError> {
    let res = send(cfg.clone(), bearer(token)).await;
    if res.status() == StatusCode::OK {
        assert!(res.extensions().get::<AuthError>().is_none());
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"ok");
        return Ok(());
    }
    Err(res
        .extensions()
        .get::<AuthError>()
        .cloned()
        .unwrap_or_else(|| panic!("rejection {} without AuthError", res.status())))
}

/// Asserts that `token` is rejected with `reason` (through the layer) and returns the error.
async fn rejected(cfg: &AuthConfig, token: &str, reason: Reason) -> AuthError {
    match verdict(cfg, token).await {
        Ok(()) => panic!("token accepted, expected {reason}"),
        Err(e) => {
            assert_eq!(e.reason(), reason, "{e:?}");
            e
        }
    }
}

/// A rejection response taken apart.
struct Rejection {
    headers: HeaderMap,
    body: Value,
    raw_body: String,
    error: AuthError,
}

/// What a rejection must look like.
struct Expect {
    code: &'static str,
    variant: &'static str,
    status: u16,
    /// The RFC 6750 `error` (also the body's `error`), if any.
    bearer_error: Option<&'static str>,
}

/// Asserts everything a client and an outer middleware see of a rejection.
async fn assert_rejection(res: Response<Body>, expect: Expect) -> Rejection {
    let reason = Reason::from_code(expect.code).expect("a known reason code");
    assert_eq!(
        res.status().as_u16(),
        expect.status,
        "status of {}",
        expect.code
    );
    let headers = res.headers().clone();
    assert_eq!(
        headers.get(CONTENT_TYPE).unwrap(),
        "application/problem+json",
        "content-type of {}",
        expect.code
    );

    // WWW-Authenticate, RFC 6750 §3.
    let challenge = headers.get(WWW_AUTHENTICATE).map(|v| v.to_str().unwrap());
    if expect.status == 503 {
        assert_eq!(challenge, None, "no challenge on 503");
        assert!(
            headers.get(RETRY_AFTER).is_some(),
            "503 without Retry-After"
        );
    } else {
        let want = match expect.bearer_error {
            None => format!(r#"Bearer realm="{REALM}""#),
            Some(e) => format!(
                r#"Bearer realm="{REALM}", error="{e}", error_description="{}""#,
                reason.description()
            ),
        };
        if reason == Reason::InsufficientScope {
            assert!(
                challenge.unwrap().starts_with(&want),
                "{challenge:?} vs {want}"
            );
        } else {
            assert_eq!(
                challenge,
                Some(want.as_str()),
                "challenge of {}",
                expect.code
            );
        }
        assert!(
            headers.get(RETRY_AFTER).is_none(),
            "Retry-After on {}",
            expect.code
        );
    }

    // The error in the response extensions.
    let error = res
        .extensions()
        .get::<AuthError>()
        .cloned()
        .expect("AuthError in response extensions");
    assert_eq!(error.reason(), reason);
    assert_eq!(error.status().as_u16(), expect.status);

    // RFC 9457 body.
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    let raw_body = String::from_utf8(bytes.to_vec()).unwrap();
    let body: Value = serde_json::from_str(&raw_body).expect("JSON body");
    assert_eq!(
        body["type"],
        format!(
            "https://docs.rs/tower-token-auth/latest/tower_token_auth/enum.Reason.html#variant.{}",
            expect.variant
        )
    );
    assert_eq!(body["title"], reason.title());
    assert!(!reason.title().is_empty());
    assert_eq!(body["status"], expect.status);
    assert_eq!(body["detail"], reason.description());
    assert!(!reason.description().is_empty());
    assert_eq!(body["reason"], expect.code);
    match expect.bearer_error {
        Some(e) => assert_eq!(body["error"], e),
        None => assert!(body.get("error").is_none(), "error in body: {body}"),
    }
    let mut keys: Vec<&str> = body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    let mut want: Vec<&str> = vec!["detail", "reason", "status", "title", "type"];
    if expect.bearer_error.is_some() {
        want.push("error");
    }
    if reason == Reason::InsufficientScope {
        want.push("scope");
    }
    want.sort_unstable();
    assert_eq!(keys, want, "body members: {body}");

    Rejection {
        headers,
        body,
        raw_body,
        error,
    }
}

fn invalid_token(code: &'static str, variant: &'static str) -> Expect {
    Expect {
        code,
        variant,
        status: 401,
        bearer_error: Some("invalid_token"),
    }
}

/// A token source that fails every request with the error it is given: how a custom source
/// (or a future revocation / scope / remote-key step) surfaces errors through the layer.
struct Failing(fn() -> AuthError);

impl TokenSource for Failing {
    fn find<'r>(&self, _parts: &'r Parts) -> Result<Option<Cow<'r, str>>, AuthError> {
        Err((self.0)())
    }
    fn name(&self) -> &'static str {
        "failing"
    }
}

async fn through_failing_source(make: fn() -> AuthError) -> Response<Body> {
    let key = TestKey::hs256();
    let cfg = builder(&key).source(Failing(make)).build().unwrap();
    send(cfg, bearer(&good_token(&key))).await
}

// ---------------------------------------------------------------------------------------------
// One test per reason, through the layer
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn reason_missing() {
    let key = TestKey::hs256();
    let cfg = builder(&key).build().unwrap();
    let res = send(cfg, Request::get("/").body(Body::empty()).unwrap()).await;
    let r = assert_rejection(
        res,
        Expect {
            code: "missing",
            variant: "Missing",
            status: 401,
            bearer_error: None,
        },
    )
    .await;
    assert_eq!(
        r.headers.get(WWW_AUTHENTICATE).unwrap(),
        r#"Bearer realm="api""#
    );
    assert!(r.error.is_missing());
}

#[tokio::test]
async fn reason_missing_for_another_scheme() {
    let key = TestKey::hs256();
    let cfg = builder(&key).build().unwrap();
    let req = Request::get("/")
        .header(AUTHORIZATION, "Basic YWxpY2U6c2VjcmV0")
        .body(Body::empty())
        .unwrap();
    let res = send(cfg, req).await;
    assert_rejection(
        res,
        Expect {
            code: "missing",
            variant: "Missing",
            status: 401,
            bearer_error: None,
        },
    )
    .await;
}

#[tokio::test]
async fn reason_invalid_request() {
    let key = TestKey::hs256();
    let cfg = builder(&key).build().unwrap();
    let token = good_token(&key);
    // Two Authorization headers, each with a valid token.
    let req = Request::get("/")
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let res = send(cfg, req).await;
    let r = assert_rejection(
        res,
        Expect {
            code: "invalid_request",
            variant: "InvalidRequest",
            status: 400,
            bearer_error: Some("invalid_request"),
        },
    )
    .await;
    assert_eq!(
        r.headers.get(WWW_AUTHENTICATE).unwrap(),
        "Bearer realm=\"api\", error=\"invalid_request\", error_description=\"The token was sent more than once or in an invalid form; send exactly one bearer token.\""
    );
}

#[tokio::test]
async fn reason_invalid_request_for_empty_token() {
    let key = TestKey::hs256();
    let cfg = builder(&key).build().unwrap();
    let req = Request::get("/")
        .header(AUTHORIZATION, "Bearer ")
        .body(Body::empty())
        .unwrap();
    let res = send(cfg, req).await;
    assert_rejection(
        res,
        Expect {
            code: "invalid_request",
            variant: "InvalidRequest",
            status: 400,
            bearer_error: Some("invalid_request"),
        },
    )
    .await;
}

#[tokio::test]
async fn reason_too_large() {
    let key = TestKey::hs256();
    let cfg = builder(&key).max_token_len(64).build().unwrap();
    let token = good_token(&key);
    assert!(token.len() > 64);
    let res = send(cfg, bearer(&token)).await;
    assert_rejection(res, invalid_token("too_large", "TooLarge")).await;
}

#[tokio::test]
async fn reason_malformed() {
    let key = TestKey::hs256();
    let cfg = builder(&key).build().unwrap();
    let res = send(cfg, bearer("not-a-jwt")).await;
    assert_rejection(res, invalid_token("malformed", "Malformed")).await;
}

#[tokio::test]
async fn reason_bad_signature() {
    let key = TestKey::hs256();
    let forger = TestKey::hs256();
    let cfg = builder(&key).build().unwrap();
    let res = send(cfg, bearer(&good_token(&forger))).await;
    let r = assert_rejection(res, invalid_token("bad_signature", "BadSignature")).await;
    assert_eq!(r.error.problems().len(), 1, "{:?}", r.error);
}

#[tokio::test]
async fn reason_alg_not_allowed() {
    // Only an HMAC key is configured; the token is RS256.
    let key = TestKey::hs256();
    let cfg = builder(&key).build().unwrap();
    let res = send(cfg, bearer(&good_token(&TestKey::rs256()))).await;
    assert_rejection(res, invalid_token("alg_not_allowed", "AlgNotAllowed")).await;
}

#[tokio::test]
async fn reason_unknown_key() {
    let key = TestKey::es256().with_kid("known");
    let cfg = builder(&key).build().unwrap();
    let res = send(
        cfg,
        bearer(&good_token(&TestKey::es256().with_kid("unknown"))),
    )
    .await;
    assert_rejection(res, invalid_token("unknown_key", "UnknownKey")).await;
}

#[tokio::test]
async fn reason_expired() {
    let key = TestKey::hs256();
    let cfg = builder(&key).build().unwrap();
    let token = key
        .token_at(NOW)
        .issuer(ISS)
        .audience(AUD)
        .expired_for(Duration::from_secs(600))
        .sign();
    let res = send(cfg, bearer(&token)).await;
    let r = assert_rejection(res, invalid_token("expired", "Expired")).await;
    assert_eq!(
        r.headers.get(WWW_AUTHENTICATE).unwrap(),
        "Bearer realm=\"api\", error=\"invalid_token\", error_description=\"The token has expired; obtain a new one.\""
    );
    assert_eq!(r.body["detail"], "The token has expired; obtain a new one.");
    assert_eq!(r.body["title"], "Token expired");
    assert!(r.error.is_expired());
    assert_eq!(r.error.facts().expires_at, Some(NOW - 600));
    assert_eq!(r.error.facts().checked_at, Some(NOW));
}

#[tokio::test]
async fn reason_not_yet_valid() {
    let key = TestKey::hs256();
    let cfg = builder(&key).build().unwrap();
    let token = key
        .token_at(NOW)
        .issuer(ISS)
        .audience(AUD)
        .claim("nbf", NOW + 600)
        .claim("exp", NOW + 1200)
        .sign();
    let res = send(cfg, bearer(&token)).await;
    assert_rejection(res, invalid_token("not_yet_valid", "NotYetValid")).await;
}

#[tokio::test]
async fn reason_wrong_issuer() {
    let key = TestKey::hs256();
    let cfg = builder(&key).build().unwrap();
    let token = key
        .token_at(NOW)
        .issuer("https://other-issuer.example")
        .audience(AUD)
        .sign();
    let res = send(cfg, bearer(&token)).await;
    let r = assert_rejection(res, invalid_token("wrong_issuer", "WrongIssuer")).await;
    let facts = r.error.facts();
    assert_eq!(
        facts.issuer.as_deref(),
        Some("https://other-issuer.example")
    );
    assert_eq!(facts.expected_issuers, vec![ISS.to_owned()]);
}

#[tokio::test]
async fn reason_wrong_audience() {
    let key = TestKey::hs256();
    let cfg = builder(&key).build().unwrap();
    let token = key
        .token_at(NOW)
        .issuer(ISS)
        .audience("api://billing")
        .sign();
    let res = send(cfg, bearer(&token)).await;
    let r = assert_rejection(res, invalid_token("wrong_audience", "WrongAudience")).await;
    let facts = r.error.facts();
    assert_eq!(facts.audience, vec!["api://billing".to_owned()]);
    assert_eq!(facts.expected_audiences, vec![AUD.to_owned()]);
}

#[tokio::test]
async fn reason_wrong_type() {
    let key = TestKey::hs256();
    let cfg = builder(&key).require_type("at+jwt").build().unwrap();
    // TestKey tokens carry `typ: JWT`.
    let res = send(cfg, bearer(&good_token(&key))).await;
    assert_rejection(res, invalid_token("wrong_type", "WrongType")).await;
}

#[tokio::test]
async fn reason_missing_claim() {
    let key = TestKey::hs256();
    let cfg = builder(&key).build().unwrap();
    let token = key
        .token_at(NOW)
        .issuer(ISS)
        .audience(AUD)
        .without("exp")
        .sign();
    let res = send(cfg, bearer(&token)).await;
    let r = assert_rejection(res, invalid_token("missing_claim", "MissingClaim")).await;
    assert_eq!(r.error.problems()[0].subject(), Some("exp"));
}

#[tokio::test]
async fn reason_invalid_claim() {
    let key = TestKey::hs256();
    let cfg = builder(&key).build().unwrap();
    let token = key
        .token_at(NOW)
        .issuer(ISS)
        .audience(AUD)
        .claim("iat", "yesterday")
        .sign();
    let res = send(cfg, bearer(&token)).await;
    let r = assert_rejection(res, invalid_token("invalid_claim", "InvalidClaim")).await;
    assert_eq!(r.error.problems()[0].subject(), Some("iat"));
}

#[tokio::test]
async fn reason_revoked() {
    let res = through_failing_source(|| AuthError::new(Reason::Revoked)).await;
    assert_rejection(res, invalid_token("revoked", "Revoked")).await;

    let direct: Response<Body> = problem_response(&AuthError::new(Reason::Revoked), Some(REALM));
    assert_rejection_of_direct(direct, invalid_token("revoked", "Revoked")).await;
}

#[tokio::test]
async fn reason_insufficient_scope() {
    let res =
        through_failing_source(|| AuthError::insufficient_scope("orders:admin orders:write")).await;
    let r = assert_rejection(
        res,
        Expect {
            code: "insufficient_scope",
            variant: "InsufficientScope",
            status: 403,
            bearer_error: Some("insufficient_scope"),
        },
    )
    .await;
    assert_eq!(
        r.headers.get(WWW_AUTHENTICATE).unwrap(),
        "Bearer realm=\"api\", error=\"insufficient_scope\", error_description=\"The token lacks the scope this resource requires.\", scope=\"orders:admin orders:write\""
    );
    assert_eq!(r.body["scope"], "orders:admin orders:write");
    assert_eq!(r.error.required_scopes(), Some("orders:admin orders:write"));

    let direct: Response<Body> = problem_response(
        &AuthError::insufficient_scope("orders:admin orders:write"),
        Some(REALM),
    );
    assert_eq!(
        direct.headers().get(WWW_AUTHENTICATE),
        r.headers.get(WWW_AUTHENTICATE)
    );
    assert_eq!(direct.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn reason_keys_unavailable() {
    let res =
        through_failing_source(|| AuthError::new(Reason::KeysUnavailable).with_retry_after(7))
            .await;
    let r = assert_rejection(
        res,
        Expect {
            code: "keys_unavailable",
            variant: "KeysUnavailable",
            status: 503,
            bearer_error: None,
        },
    )
    .await;
    assert_eq!(r.headers.get(RETRY_AFTER).unwrap(), "7");
    assert!(r.headers.get(WWW_AUTHENTICATE).is_none());
    assert_eq!(r.error.retry_after(), Some(7));

    // Without an explicit Retry-After the default (5 s) is sent.
    let direct: Response<Body> =
        problem_response(&AuthError::new(Reason::KeysUnavailable), Some(REALM));
    assert_eq!(direct.headers().get(RETRY_AFTER).unwrap(), "5");
    assert_rejection_of_direct(
        direct,
        Expect {
            code: "keys_unavailable",
            variant: "KeysUnavailable",
            status: 503,
            bearer_error: None,
        },
    )
    .await;
}

#[tokio::test]
async fn reason_revocation_unavailable() {
    let res = through_failing_source(|| {
        AuthError::new(Reason::RevocationUnavailable).with_retry_after(2)
    })
    .await;
    let r = assert_rejection(
        res,
        Expect {
            code: "revocation_unavailable",
            variant: "RevocationUnavailable",
            status: 503,
            bearer_error: None,
        },
    )
    .await;
    assert_eq!(r.headers.get(RETRY_AFTER).unwrap(), "2");
    assert!(r.headers.get(WWW_AUTHENTICATE).is_none());
}

/// `problem_response` puts no error in the extensions (the layer does): add it, then check the
/// rest like a layer rejection.
async fn assert_rejection_of_direct(mut res: Response<Body>, expect: Expect) {
    let reason = Reason::from_code(expect.code).unwrap();
    assert!(res.extensions().get::<AuthError>().is_none());
    res.extensions_mut().insert(AuthError::new(reason));
    assert_rejection(res, expect).await;
}

#[tokio::test]
async fn every_reason_code_round_trips_and_has_its_status() {
    for reason in Reason::ALL {
        assert_eq!(Reason::from_code(reason.code()), Some(reason));
        let want = match reason.code() {
            "invalid_request" => 400,
            "insufficient_scope" => 403,
            "keys_unavailable"
            | "revocation_unavailable"
            | "introspection_unavailable"
            | "replay_unavailable" => 503,
            _ => 401,
        };
        assert_eq!(reason.status().as_u16(), want, "{reason}");
    }
}

// ---------------------------------------------------------------------------------------------
// Validation rules, "as of" a fixed instant
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn exp_is_accepted_until_the_leeway_boundary() {
    let key = TestKey::hs256();
    let clock = ManualClock::at(NOW);
    let cfg = builder(&key).clock(clock.clone()).build().unwrap();
    let exp = NOW + 100;
    let token = key
        .token_at(NOW - 1000)
        .issuer(ISS)
        .audience(AUD)
        .claim("exp", exp)
        .sign();

    clock.set(exp);
    verdict(&cfg, &token).await.expect("at exp");
    clock.set(exp + DEFAULT_LEEWAY - 1);
    verdict(&cfg, &token).await.expect("at exp + leeway - 1");
    clock.set(exp + DEFAULT_LEEWAY);
    let err = rejected(&cfg, &token, Reason::Expired).await;
    assert_eq!(err.facts().checked_at, Some(exp + DEFAULT_LEEWAY));
}

#[tokio::test]
async fn nbf_is_accepted_from_the_leeway_boundary() {
    let key = TestKey::hs256();
    let clock = ManualClock::at(NOW);
    let cfg = builder(&key).clock(clock.clone()).build().unwrap();
    let nbf = NOW + 100;
    let token = key
        .token_at(NOW)
        .issuer(ISS)
        .audience(AUD)
        .claim("nbf", nbf)
        .claim("exp", nbf + 600)
        .sign();

    clock.set(nbf - DEFAULT_LEEWAY - 1);
    rejected(&cfg, &token, Reason::NotYetValid).await;
    clock.set(nbf - DEFAULT_LEEWAY);
    verdict(&cfg, &token).await.expect("at nbf - leeway");
    clock.set(nbf);
    verdict(&cfg, &token).await.expect("at nbf");
}

#[tokio::test]
async fn custom_leeway_moves_the_boundaries() {
    let key = TestKey::hs256();
    let clock = ManualClock::at(NOW);
    let cfg = builder(&key)
        .clock(clock.clone())
        .leeway(Duration::from_secs(5))
        .build()
        .unwrap();
    let exp = NOW + 100;
    let token = key
        .token_at(NOW)
        .issuer(ISS)
        .audience(AUD)
        .claim("exp", exp)
        .sign();
    clock.set(exp + 4);
    verdict(&cfg, &token)
        .await
        .expect("at exp + 4 with 5 s leeway");
    clock.set(exp + 5);
    rejected(&cfg, &token, Reason::Expired).await;

    let nbf_token = key
        .token_at(NOW)
        .issuer(ISS)
        .audience(AUD)
        .claim("nbf", NOW + 10)
        .sign();
    clock.set(NOW + 4);
    rejected(&cfg, &nbf_token, Reason::NotYetValid).await;
    clock.set(NOW + 5);
    verdict(&cfg, &nbf_token)
        .await
        .expect("at nbf - 5 with 5 s leeway");
}

#[tokio::test]
async fn zero_leeway_expires_exactly_at_exp() {
    let key = TestKey::hs256();
    let clock = ManualClock::at(NOW);
    let cfg = builder(&key)
        .clock(clock.clone())
        .leeway(Duration::ZERO)
        .build()
        .unwrap();
    let token = key
        .token_at(NOW)
        .issuer(ISS)
        .audience(AUD)
        .claim("exp", NOW + 60)
        .sign();
    clock.set(NOW + 59);
    verdict(&cfg, &token).await.expect("one second before exp");
    clock.set(NOW + 60);
    rejected(&cfg, &token, Reason::Expired).await;
}

#[tokio::test]
async fn float_numeric_dates_are_accepted() {
    let key = TestKey::hs256();
    let cfg = builder(&key).build().unwrap();
    let token = key
        .token_at(NOW)
        .issuer(ISS)
        .audience(AUD)
        .claim("iat", NOW as f64 - 0.25)
        .claim("nbf", NOW as f64 - 0.5)
        .claim("exp", NOW as f64 + 300.75)
        .sign();
    verdict(&cfg, &token).await.expect("float dates");

    let expired = key
        .token_at(NOW)
        .issuer(ISS)
        .audience(AUD)
        .claim("exp", NOW as f64 - 100.5)
        .sign();
    let err = rejected(&cfg, &expired, Reason::Expired).await;
    assert!(!err.has(Reason::InvalidClaim), "{err:?}");

    let early = key
        .token_at(NOW)
        .issuer(ISS)
        .audience(AUD)
        .claim("nbf", NOW as f64 + 100.5)
        .sign();
    rejected(&cfg, &early, Reason::NotYetValid).await;
}

#[tokio::test]
async fn exp_as_a_string_is_invalid_claim() {
    let key = TestKey::hs256();
    let cfg = builder(&key).build().unwrap();
    let token = key
        .token_at(NOW)
        .issuer(ISS)
        .audience(AUD)
        .claim("exp", (NOW + 300).to_string())
        .sign();
    let err = rejected(&cfg, &token, Reason::InvalidClaim).await;
    assert_eq!(err.problems().len(), 1, "{err:?}");
    assert_eq!(err.problems()[0].subject(), Some("exp"));
}

#[tokio::test]
async fn aud_array_matches_if_any_member_matches() {
    let key = TestKey::hs256();
    let cfg = builder(&key).build().unwrap();
    let token = key
        .token_at(NOW)
        .issuer(ISS)
        .claim("aud", json!(["api://billing", AUD]))
        .sign();
    verdict(&cfg, &token).await.expect("aud array with a match");
}

#[tokio::test]
async fn aud_array_without_match_is_wrong_audience() {
    let key = TestKey::hs256();
    let cfg = builder(&key).build().unwrap();
    let token = key
        .token_at(NOW)
        .issuer(ISS)
        .claim("aud", json!(["api://billing", "api://shipping"]))
        .sign();
    let err = rejected(&cfg, &token, Reason::WrongAudience).await;
    assert_eq!(
        err.facts().audience,
        vec!["api://billing".to_owned(), "api://shipping".to_owned()]
    );
}

#[tokio::test]
async fn several_issuers_are_each_accepted() {
    let key = TestKey::hs256();
    let cfg = builder(&key)
        .issuer("https://second.example")
        .build()
        .unwrap();
    for iss in [ISS, "https://second.example"] {
        let token = key.token_at(NOW).issuer(iss).audience(AUD).sign();
        verdict(&cfg, &token).await.expect(iss);
    }
    let token = key
        .token_at(NOW)
        .issuer("https://third.example")
        .audience(AUD)
        .sign();
    let err = rejected(&cfg, &token, Reason::WrongIssuer).await;
    assert_eq!(
        err.facts().expected_issuers,
        vec![ISS.to_owned(), "https://second.example".to_owned()]
    );
}

#[tokio::test]
async fn issuer_is_compared_exactly() {
    let key = TestKey::hs256();
    let cfg = builder(&key).build().unwrap();
    for iss in [
        "https://issuer.example/",
        "HTTPS://ISSUER.EXAMPLE",
        "https://issuer.example ",
    ] {
        let token = key.token_at(NOW).issuer(iss).audience(AUD).sign();
        rejected(&cfg, &token, Reason::WrongIssuer).await;
    }
}

#[tokio::test]
async fn skip_audience_check_accepts_any_audience() {
    let key = TestKey::hs256();
    let cfg = AuthConfig::builder()
        .keys(key.keys())
        .issuer(ISS)
        .skip_audience_check()
        .realm(REALM)
        .clock(|| NOW)
        .build()
        .unwrap();
    for aud in [json!("api://anything"), json!(["x", "y"])] {
        let token = key.token_at(NOW).issuer(ISS).claim("aud", aud).sign();
        verdict(&cfg, &token).await.expect("any aud");
    }
    let token = key.token_at(NOW).issuer(ISS).sign();
    verdict(&cfg, &token).await.expect("no aud");
}

#[tokio::test]
async fn type_is_normalized_before_comparison() {
    let key = TestKey::hs256();
    let cfg = builder(&key).require_type("at+jwt").build().unwrap();
    for typ in [
        "at+jwt",
        "application/at+jwt",
        "AT+JWT",
        "Application/AT+JWT",
    ] {
        let token = key
            .token_at(NOW)
            .issuer(ISS)
            .audience(AUD)
            .header("typ", typ)
            .sign();
        verdict(&cfg, &token).await.expect(typ);
    }
}

#[tokio::test]
async fn jwt_type_is_wrong_type_when_at_jwt_is_required() {
    let key = TestKey::hs256();
    let cfg = builder(&key).require_type("at+jwt").build().unwrap();
    let token = key
        .token_at(NOW)
        .issuer(ISS)
        .audience(AUD)
        .header("typ", "JWT")
        .sign();
    let err = rejected(&cfg, &token, Reason::WrongType).await;
    assert_eq!(err.facts().typ.as_deref(), Some("JWT"));
}

#[tokio::test]
async fn missing_type_is_wrong_type_when_a_type_is_required() {
    let key = TestKey::hs256();
    let cfg = builder(&key).require_type("at+jwt").build().unwrap();
    let token = key
        .token_at(NOW)
        .issuer(ISS)
        .audience(AUD)
        .without_header("typ")
        .sign();
    rejected(&cfg, &token, Reason::WrongType).await;
}

#[tokio::test]
async fn access_token_profile_accepts_a_complete_token() {
    let key = TestKey::hs256();
    let cfg = builder(&key).access_token_profile().build().unwrap();
    let token = key
        .token_at(NOW)
        .header("typ", "at+jwt")
        .issuer(ISS)
        .audience(AUD)
        .subject("alice")
        .claim("client_id", "web-app")
        .claim("jti", "3f2a")
        .sign();
    verdict(&cfg, &token)
        .await
        .expect("complete RFC 9068 token");
}

#[tokio::test]
async fn access_token_profile_requires_client_id() {
    let key = TestKey::hs256();
    let cfg = builder(&key).access_token_profile().build().unwrap();
    let token = key
        .token_at(NOW)
        .header("typ", "at+jwt")
        .issuer(ISS)
        .audience(AUD)
        .subject("alice")
        .claim("jti", "3f2a")
        .sign();
    let err = rejected(&cfg, &token, Reason::MissingClaim).await;
    assert_eq!(err.problems().len(), 1, "{err:?}");
    assert_eq!(err.problems()[0].subject(), Some("client_id"));
}

#[tokio::test]
async fn access_token_profile_requires_at_jwt_type() {
    let key = TestKey::hs256();
    let cfg = builder(&key).access_token_profile().build().unwrap();
    let token = key
        .token_at(NOW)
        .issuer(ISS)
        .audience(AUD)
        .subject("alice")
        .claim("client_id", "web-app")
        .claim("jti", "3f2a")
        .sign();
    rejected(&cfg, &token, Reason::WrongType).await;
}

#[tokio::test]
async fn require_claim_refuses_absent_and_null() {
    let key = TestKey::hs256();
    let cfg = builder(&key).require_claim("tenant").build().unwrap();
    let absent = good_token(&key);
    let err = rejected(&cfg, &absent, Reason::MissingClaim).await;
    assert_eq!(err.problems()[0].subject(), Some("tenant"));

    let null = key
        .token_at(NOW)
        .issuer(ISS)
        .audience(AUD)
        .claim("tenant", Value::Null)
        .sign();
    rejected(&cfg, &null, Reason::MissingClaim).await;

    let present = key
        .token_at(NOW)
        .issuer(ISS)
        .audience(AUD)
        .claim("tenant", "acme")
        .sign();
    verdict(&cfg, &present).await.expect("tenant present");
}

fn tenant_config(key: &TestKey) -> AuthConfig {
    builder(key)
        .check(
            |claims| match claims.get("tenant").and_then(Value::as_str) {
                Some("acme") => Ok(()),
                Some(_) => Err(ClaimError::invalid("tenant")),
                None => Err(ClaimError::missing("tenant")),
            },
        )
        .build()
        .unwrap()
}

#[tokio::test]
async fn user_check_missing_is_missing_claim() {
    let key = TestKey::hs256();
    let cfg = tenant_config(&key);
    let err = rejected(&cfg, &good_token(&key), Reason::MissingClaim).await;
    assert_eq!(err.problems()[0].subject(), Some("tenant"));
}

#[tokio::test]
async fn user_check_invalid_is_invalid_claim() {
    let key = TestKey::hs256();
    let cfg = tenant_config(&key);
    let token = key
        .token_at(NOW)
        .issuer(ISS)
        .audience(AUD)
        .claim("tenant", "globex")
        .sign();
    let err = rejected(&cfg, &token, Reason::InvalidClaim).await;
    assert_eq!(err.problems()[0].subject(), Some("tenant"));

    let ok = key
        .token_at(NOW)
        .issuer(ISS)
        .audience(AUD)
        .claim("tenant", "acme")
        .sign();
    verdict(&cfg, &ok).await.expect("tenant acme");
}

#[tokio::test]
async fn crit_header_is_malformed() {
    let key = TestKey::hs256();
    let cfg = builder(&key).build().unwrap();
    let token = key
        .token_at(NOW)
        .issuer(ISS)
        .audience(AUD)
        .header("crit", json!(["exp"]))
        .header("exp", NOW + 300)
        .sign();
    rejected(&cfg, &token, Reason::Malformed).await;
}

#[tokio::test]
async fn nested_jwt_content_type_is_malformed() {
    let key = TestKey::hs256();
    let cfg = builder(&key).build().unwrap();
    let token = key
        .token_at(NOW)
        .issuer(ISS)
        .audience(AUD)
        .header("cty", "JWT")
        .sign();
    rejected(&cfg, &token, Reason::Malformed).await;
}

#[tokio::test]
async fn several_problems_report_the_most_decisive_and_keep_all() {
    let key = TestKey::hs256();
    let forger = TestKey::hs256();
    let cfg = builder(&key).build().unwrap();
    let token = forger
        .token_at(NOW)
        .issuer(ISS)
        .audience("api://billing")
        .expired_for(Duration::from_secs(3600))
        .sign();
    let res = send(cfg, bearer(&token)).await;
    let r = assert_rejection(res, invalid_token("bad_signature", "BadSignature")).await;
    let reasons: Vec<Reason> = r.error.problems().iter().map(|p| p.reason()).collect();
    assert_eq!(
        reasons,
        vec![Reason::BadSignature, Reason::Expired, Reason::WrongAudience]
    );
    assert!(r.error.has(Reason::Expired));
    assert!(r.error.has(Reason::WrongAudience));
    // The client only learns the decisive reason.
    assert_eq!(r.body["reason"], "bad_signature");
    assert!(!r.raw_body.contains("expired"), "{}", r.raw_body);
}

#[tokio::test]
async fn response_contains_no_token_text() {
    let key = TestKey::hs256().with_kid("evil-kid-value");
    let cfg = AuthConfig::builder()
        .keys(TestKey::hs256().with_kid("real").keys())
        .keys(key.keys())
        .issuer(ISS)
        .audience(AUD)
        .realm(REALM)
        .clock(|| NOW)
        .build()
        .unwrap();
    let token = key
        .token_at(NOW)
        .issuer("https://evil.example")
        .audience("evil-audience")
        .subject("<script>alert(1)</script>")
        .header("typ", "evil-type")
        .sign();
    let res = send(cfg, bearer(&token)).await;
    let r = assert_rejection(res, invalid_token("wrong_issuer", "WrongIssuer")).await;
    // The operator sees it, the client does not.
    assert_eq!(
        r.error.facts().issuer.as_deref(),
        Some("https://evil.example")
    );
    let mut seen = r.raw_body.clone();
    for (name, value) in &r.headers {
        seen.push_str(name.as_str());
        seen.push_str(&String::from_utf8_lossy(value.as_bytes()));
    }
    for needle in [
        "evil",
        "<script>",
        "alert(1)",
        token.as_str(),
        token.split('.').nth(1).unwrap(),
        token.split('.').nth(2).unwrap(),
    ] {
        assert!(!seen.contains(needle), "{needle:?} leaked into {seen}");
    }
}

#[derive(Clone, Debug, serde::Deserialize)]
struct MyClaims {
    sub: String,
    tenant: u32,
}

fn my_claims_app(cfg: AuthConfig) -> Router {
    Router::new()
        .route(
            "/",
            get(|c: Claims<MyClaims>| async move { format!("{}@{}", c.sub, c.tenant) }),
        )
        .layer(TokenAuthLayer::new(cfg).with_claims::<MyClaims>())
}

#[tokio::test]
async fn custom_claims_type_is_filled() {
    let key = TestKey::hs256();
    let cfg = builder(&key).build().unwrap();
    let token = key
        .token_at(NOW)
        .issuer(ISS)
        .audience(AUD)
        .subject("alice")
        .claim("tenant", 42)
        .sign();
    let res = my_claims_app(cfg).oneshot(bearer(&token)).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body = res.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(&body[..], b"alice@42");
}

#[tokio::test]
async fn claims_not_fitting_the_custom_type_are_invalid_claim() {
    let key = TestKey::hs256();
    let cfg = builder(&key).build().unwrap();
    for token in [
        // tenant of the wrong type
        key.token_at(NOW)
            .issuer(ISS)
            .audience(AUD)
            .subject("alice")
            .claim("tenant", "acme")
            .sign(),
        // tenant absent
        key.token_at(NOW)
            .issuer(ISS)
            .audience(AUD)
            .subject("alice")
            .sign(),
    ] {
        let res = my_claims_app(cfg.clone())
            .oneshot(bearer(&token))
            .await
            .unwrap();
        assert_rejection(res, invalid_token("invalid_claim", "InvalidClaim")).await;
    }
}
