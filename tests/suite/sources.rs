//! Every token source through the layer: `Authorization: Bearer`, named headers (with and
//! without a scheme), cookies, query parameters, several sources at once and custom
//! [`TokenSource`] implementations.

use std::borrow::Cow;
use std::fmt::Write as _;

use axum::{body::Body, routing::get, Router};
use http::header::{AUTHORIZATION, CONTENT_TYPE, COOKIE};
use http::request::Parts;
use http::{HeaderValue, Request, StatusCode};
use tower_token_auth::source::{self, TokenSource};
use tower_token_auth::{
    AuthConfig, AuthError, Claims, ConfigError, Reason, StandardClaims, TokenAuthLayer,
};

use crate::common::hs::{base, expired_token, token};
use crate::common::{send, Reply};

/// A router whose only handler answers with the token's `sub`.
fn app(cfg: AuthConfig) -> Router {
    Router::new()
        .route(
            "/",
            get(|c: Claims<StandardClaims>| async move { c.sub.clone().unwrap_or_default() }),
        )
        .layer(TokenAuthLayer::new(cfg))
}

fn default_app() -> Router {
    app(base().build().unwrap())
}

/// Assertions of this module (the `Reply` and its basic checks are in `common`).
impl Reply {
    /// Accepted: 200 and the handler saw `sub`.
    fn assert_ok(&self, sub: &str) {
        assert_eq!(
            self.status,
            StatusCode::OK,
            "expected acceptance, got {:?} {}",
            self.error,
            self.body
        );
        assert_eq!(self.body, sub);
        assert!(self.error.is_none());
    }

    /// Rejected with this reason: status, error in extensions, problem+json body.
    fn assert_problem(&self, reason: Reason) {
        assert_eq!(self.status, reason.status(), "body: {}", self.body);
        assert_eq!(self.err().reason(), reason, "{:?}", self.err());
        assert_eq!(
            self.headers.get(CONTENT_TYPE).unwrap(),
            "application/problem+json"
        );
        let body = self.json();
        assert_eq!(body["reason"], reason.code());
        assert_eq!(body["status"], reason.status().as_u16());
    }

    /// A 400 `invalid_request` with its exact challenge.
    fn assert_invalid_request(&self) {
        self.assert_problem(Reason::InvalidRequest);
        assert_eq!(self.status, StatusCode::BAD_REQUEST);
        assert_eq!(
            self.www_authenticate(),
            Some(
                format!(
                    "Bearer realm=\"api\", error=\"invalid_request\", error_description=\"{}\"",
                    Reason::InvalidRequest.description()
                )
                .as_str()
            )
        );
        assert_eq!(self.json()["error"], "invalid_request");
    }

    /// A 401 `missing` with only the realm in the challenge.
    fn assert_missing(&self) {
        self.assert_problem(Reason::Missing);
        assert_eq!(self.status, StatusCode::UNAUTHORIZED);
        assert_eq!(self.www_authenticate(), Some(r#"Bearer realm="api""#));
        assert!(self.json().get("error").is_none());
    }
}

fn get_with(headers: &[(&str, &str)]) -> Request<Body> {
    let mut req = Request::get("/");
    for (name, value) in headers {
        req = req.header(*name, *value);
    }
    req.body(Body::empty()).unwrap()
}

fn get_uri(uri: &str) -> Request<Body> {
    Request::get(uri).body(Body::empty()).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Authorization: Bearer
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn bearer_scheme_capitalised_is_accepted() {
    let tok = token("alice");
    let r = send(
        default_app(),
        get_with(&[("authorization", &format!("Bearer {tok}"))]),
    )
    .await;
    r.assert_ok("alice");
}

#[tokio::test]
async fn bearer_scheme_lowercase_is_accepted() {
    let tok = token("alice");
    let r = send(
        default_app(),
        get_with(&[("authorization", &format!("bearer {tok}"))]),
    )
    .await;
    r.assert_ok("alice");
}

#[tokio::test]
async fn bearer_scheme_uppercase_is_accepted() {
    let tok = token("alice");
    let r = send(
        default_app(),
        get_with(&[("authorization", &format!("BEARER {tok}"))]),
    )
    .await;
    r.assert_ok("alice");
}

#[tokio::test]
async fn bearer_extra_spaces_between_scheme_and_token_are_tolerated() {
    let tok = token("alice");
    let r = send(
        default_app(),
        get_with(&[("authorization", &format!("Bearer    {tok}"))]),
    )
    .await;
    r.assert_ok("alice");
}

#[tokio::test]
async fn basic_scheme_counts_as_no_token() {
    let r = send(
        default_app(),
        get_with(&[("authorization", "Basic dXNlcjpwYXNz")]),
    )
    .await;
    r.assert_missing();
}

#[tokio::test]
async fn no_authorization_header_is_missing() {
    let r = send(default_app(), get_with(&[])).await;
    r.assert_missing();
}

#[tokio::test]
async fn bearer_without_token_is_invalid_request() {
    let r = send(default_app(), get_with(&[("authorization", "Bearer")])).await;
    r.assert_invalid_request();
}

#[tokio::test]
async fn bearer_followed_by_only_spaces_is_invalid_request() {
    let r = send(default_app(), get_with(&[("authorization", "Bearer    ")])).await;
    r.assert_invalid_request();
}

#[tokio::test]
async fn two_authorization_headers_are_invalid_request() {
    let tok = token("alice");
    let bearer = format!("Bearer {tok}");
    let r = send(
        default_app(),
        get_with(&[("authorization", &bearer), ("authorization", &bearer)]),
    )
    .await;
    r.assert_invalid_request();
    assert_eq!(r.err().facts().source, Some("authorization"));
}

#[tokio::test]
async fn non_utf8_authorization_value_is_malformed_without_panic() {
    let mut req = get_with(&[]);
    req.headers_mut().insert(
        AUTHORIZATION,
        HeaderValue::from_bytes(b"Bearer \xff\xfe\x80abc.def.ghi").unwrap(),
    );
    let r = send(default_app(), req).await;
    r.assert_problem(Reason::Malformed);
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(r.json()["error"], "invalid_token");
}

#[tokio::test]
async fn non_ascii_utf8_authorization_value_is_malformed_without_panic() {
    let mut req = get_with(&[]);
    req.headers_mut().insert(
        AUTHORIZATION,
        HeaderValue::from_bytes("Bearer héllo.wörld.sïg".as_bytes()).unwrap(),
    );
    let r = send(default_app(), req).await;
    r.assert_problem(Reason::Malformed);
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn bearer_token_with_inner_space_is_malformed() {
    let r = send(default_app(), get_with(&[("authorization", "Bearer a b")])).await;
    r.assert_problem(Reason::Malformed);
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.www_authenticate(),
        Some(
            format!(
                "Bearer realm=\"api\", error=\"invalid_token\", error_description=\"{}\"",
                Reason::Malformed.description()
            )
            .as_str()
        )
    );
}

// ---------------------------------------------------------------------------------------------
// header(name) and header_with_scheme(name, scheme)
// ---------------------------------------------------------------------------------------------

fn header_app() -> Router {
    app(base().source(source::header("x-token")).build().unwrap())
}

fn scheme_app() -> Router {
    app(base()
        .source(source::header_with_scheme("x-auth", "Token"))
        .build()
        .unwrap())
}

#[tokio::test]
async fn header_source_finds_token() {
    let tok = token("hdr");
    let r = send(header_app(), get_with(&[("x-token", &tok)])).await;
    r.assert_ok("hdr");
}

#[tokio::test]
async fn header_source_missing_header_is_missing() {
    let r = send(header_app(), get_with(&[("x-other", "whatever")])).await;
    r.assert_missing();
}

#[tokio::test]
async fn header_source_ignores_authorization_bearer() {
    let tok = token("hdr");
    let r = send(
        header_app(),
        get_with(&[("authorization", &format!("Bearer {tok}"))]),
    )
    .await;
    r.assert_missing();
}

#[tokio::test]
async fn header_source_twice_is_invalid_request() {
    let tok = token("hdr");
    let r = send(
        header_app(),
        get_with(&[("x-token", &tok), ("x-token", &tok)]),
    )
    .await;
    r.assert_invalid_request();
    assert_eq!(r.err().facts().source, Some("header"));
}

#[tokio::test]
async fn header_source_empty_value_is_invalid_request() {
    let r = send(header_app(), get_with(&[("x-token", "")])).await;
    r.assert_invalid_request();
}

#[tokio::test]
async fn header_source_non_utf8_value_is_malformed() {
    let mut req = get_with(&[]);
    req.headers_mut().insert(
        "x-token",
        HeaderValue::from_bytes(b"abc\xff.def.ghi").unwrap(),
    );
    let r = send(header_app(), req).await;
    r.assert_problem(Reason::Malformed);
    assert_eq!(r.err().facts().source, Some("header"));
}

#[tokio::test]
async fn header_source_name_given_in_uppercase_works() {
    let cfg = base().source(source::header("X-Token")).build().unwrap();
    let tok = token("upper");
    let r = send(app(cfg), get_with(&[("x-token", &tok)])).await;
    r.assert_ok("upper");
}

#[tokio::test]
async fn header_source_invalid_name_is_refused_at_build() {
    let err = base()
        .source(source::header("bad header"))
        .build()
        .unwrap_err();
    assert!(
        matches!(err, ConfigError::InvalidSourceName(ref n) if n == "bad header"),
        "{err:?}"
    );
}

#[tokio::test]
async fn header_with_scheme_finds_token() {
    let tok = token("sch");
    let r = send(
        scheme_app(),
        get_with(&[("x-auth", &format!("Token {tok}"))]),
    )
    .await;
    r.assert_ok("sch");
}

#[tokio::test]
async fn header_with_scheme_compares_scheme_case_insensitively() {
    let tok = token("sch");
    let r = send(
        scheme_app(),
        get_with(&[("x-auth", &format!("tOKEN {tok}"))]),
    )
    .await;
    r.assert_ok("sch");
}

#[tokio::test]
async fn header_with_scheme_missing_header_is_missing() {
    let r = send(scheme_app(), get_with(&[])).await;
    r.assert_missing();
}

#[tokio::test]
async fn header_with_scheme_other_scheme_is_missing() {
    let tok = token("sch");
    let r = send(
        scheme_app(),
        get_with(&[("x-auth", &format!("Bearer {tok}"))]),
    )
    .await;
    r.assert_missing();
}

#[tokio::test]
async fn header_with_scheme_twice_is_invalid_request() {
    let v = format!("Token {}", token("sch"));
    let r = send(scheme_app(), get_with(&[("x-auth", &v), ("x-auth", &v)])).await;
    r.assert_invalid_request();
}

#[tokio::test]
async fn header_with_scheme_without_token_is_invalid_request() {
    let r = send(scheme_app(), get_with(&[("x-auth", "Token")])).await;
    r.assert_invalid_request();
}

#[tokio::test]
async fn header_with_scheme_name_given_in_uppercase_works() {
    let cfg = base()
        .source(source::header_with_scheme("X-AUTH", "Token"))
        .build()
        .unwrap();
    let tok = token("upper");
    let r = send(app(cfg), get_with(&[("x-auth", &format!("Token {tok}"))])).await;
    r.assert_ok("upper");
}

// ---------------------------------------------------------------------------------------------
// cookie(name)
// ---------------------------------------------------------------------------------------------

fn cookie_app() -> Router {
    app(base()
        .source(source::cookie("access_token"))
        .build()
        .unwrap())
}

#[tokio::test]
async fn cookie_found_among_other_cookies() {
    let tok = token("cookie");
    let r = send(
        cookie_app(),
        get_with(&[(
            "cookie",
            &format!("theme=dark; access_token={tok}; lang=en"),
        )]),
    )
    .await;
    r.assert_ok("cookie");
}

#[tokio::test]
async fn cookie_found_across_two_cookie_headers() {
    let tok = token("h2");
    let r = send(
        cookie_app(),
        get_with(&[
            ("cookie", "theme=dark; lang=en"),
            ("cookie", &format!("session=xyz; access_token={tok}")),
        ]),
    )
    .await;
    r.assert_ok("h2");
}

#[tokio::test]
async fn cookie_absent_is_missing() {
    let r = send(cookie_app(), get_with(&[("cookie", "theme=dark; lang=en")])).await;
    r.assert_missing();
}

#[tokio::test]
async fn cookie_twice_with_different_values_is_invalid_request() {
    let a = token("a");
    let b = token("b");
    let r = send(
        cookie_app(),
        get_with(&[("cookie", &format!("access_token={a}; access_token={b}"))]),
    )
    .await;
    r.assert_invalid_request();
    assert_eq!(r.err().facts().source, Some("cookie"));
}

#[tokio::test]
async fn cookie_twice_with_different_values_across_headers_is_invalid_request() {
    let a = token("a");
    let b = token("b");
    let r = send(
        cookie_app(),
        get_with(&[
            ("cookie", &format!("access_token={a}")),
            ("cookie", &format!("access_token={b}")),
        ]),
    )
    .await;
    r.assert_invalid_request();
}

#[tokio::test]
async fn cookie_identical_duplicates_are_accepted() {
    let tok = token("dup");
    let r = send(
        cookie_app(),
        get_with(&[(
            "cookie",
            &format!("access_token={tok}; other=1; access_token={tok}"),
        )]),
    )
    .await;
    r.assert_ok("dup");
}

#[tokio::test]
async fn cookie_empty_value_is_invalid_request() {
    let r = send(
        cookie_app(),
        get_with(&[("cookie", "theme=dark; access_token=; lang=en")]),
    )
    .await;
    r.assert_invalid_request();
}

#[tokio::test]
async fn cookie_thousand_cookies_with_token_last_is_accepted() {
    let tok = token("many");
    let mut header = String::new();
    for i in 0..999 {
        write!(header, "c{i}=v{i}; ").unwrap();
    }
    write!(header, "access_token={tok}").unwrap();
    let r = send(cookie_app(), get_with(&[("cookie", &header)])).await;
    r.assert_ok("many");
}

#[tokio::test]
async fn cookie_quoted_empty_value_is_invalid_request() {
    let r = send(cookie_app(), get_with(&[("cookie", "access_token=\"\"")])).await;
    r.assert_invalid_request();
}

#[tokio::test]
async fn cookie_quoted_value_is_unquoted() {
    let tok = token("quoted");
    let r = send(
        cookie_app(),
        get_with(&[("cookie", &format!("access_token=\"{tok}\""))]),
    )
    .await;
    r.assert_ok("quoted");
}

#[tokio::test]
async fn cookie_name_must_match_exactly() {
    let tok = token("prefix");
    let r = send(
        cookie_app(),
        get_with(&[(
            "cookie",
            &format!("my_access_token={tok}; access_token_2={tok}"),
        )]),
    )
    .await;
    r.assert_missing();
}

#[tokio::test]
async fn cookie_non_ascii_cookie_header_is_skipped_and_token_found_in_another() {
    let tok = token("skip");
    let mut req = get_with(&[("cookie", &format!("access_token={tok}"))]);
    req.headers_mut()
        .append(COOKIE, HeaderValue::from_bytes(b"name=\xffvalue").unwrap());
    let r = send(cookie_app(), req).await;
    r.assert_ok("skip");
}

#[tokio::test]
async fn cookie_source_ignores_authorization_bearer() {
    let tok = token("cookie");
    let r = send(
        cookie_app(),
        get_with(&[("authorization", &format!("Bearer {tok}"))]),
    )
    .await;
    r.assert_missing();
}

#[tokio::test]
async fn cookie_source_invalid_name_is_refused_at_build() {
    let err = base()
        .source(source::cookie("bad;name"))
        .build()
        .unwrap_err();
    assert!(matches!(err, ConfigError::InvalidSourceName(_)), "{err:?}");
}

// ---------------------------------------------------------------------------------------------
// query(name)
// ---------------------------------------------------------------------------------------------

fn query_app() -> Router {
    app(base()
        .source(source::query("access_token"))
        .build()
        .unwrap())
}

#[tokio::test]
async fn query_finds_token() {
    let tok = token("q");
    let r = send(
        query_app(),
        get_uri(&format!("/?x=1&access_token={tok}&y=2")),
    )
    .await;
    r.assert_ok("q");
}

#[tokio::test]
async fn query_percent_encoded_token_is_decoded() {
    let tok = token("pct");
    let encoded = tok.replace('.', "%2E").replace('-', "%2D");
    assert_ne!(encoded, tok);
    let r = send(query_app(), get_uri(&format!("/?access_token={encoded}"))).await;
    r.assert_ok("pct");
}

#[tokio::test]
async fn query_absent_is_missing() {
    let r = send(query_app(), get_uri("/?x=1")).await;
    r.assert_missing();
}

#[tokio::test]
async fn query_twice_is_invalid_request() {
    let tok = token("q");
    let r = send(
        query_app(),
        get_uri(&format!("/?access_token={tok}&access_token={tok}")),
    )
    .await;
    r.assert_invalid_request();
    assert_eq!(r.err().facts().source, Some("query"));
}

#[tokio::test]
async fn query_empty_is_invalid_request() {
    let r = send(query_app(), get_uri("/?access_token=&x=1")).await;
    r.assert_invalid_request();
}

// ---------------------------------------------------------------------------------------------
// Several sources
// ---------------------------------------------------------------------------------------------

fn bearer_and_cookie_app() -> Router {
    app(base()
        .source(source::bearer())
        .source(source::cookie("access_token"))
        .build()
        .unwrap())
}

#[tokio::test]
async fn token_in_authorization_and_cookie_is_invalid_request() {
    let a = token("a");
    let b = token("b");
    let r = send(
        bearer_and_cookie_app(),
        get_with(&[
            ("authorization", &format!("Bearer {a}")),
            ("cookie", &format!("access_token={b}")),
        ]),
    )
    .await;
    r.assert_invalid_request();
}

#[tokio::test]
async fn identical_token_in_authorization_and_cookie_is_invalid_request() {
    let tok = token("same");
    let r = send(
        bearer_and_cookie_app(),
        get_with(&[
            ("authorization", &format!("Bearer {tok}")),
            ("cookie", &format!("access_token={tok}")),
        ]),
    )
    .await;
    r.assert_invalid_request();
}

#[tokio::test]
async fn several_sources_token_only_in_first_is_accepted() {
    let tok = token("first");
    let r = send(
        bearer_and_cookie_app(),
        get_with(&[("authorization", &format!("Bearer {tok}"))]),
    )
    .await;
    r.assert_ok("first");
}

#[tokio::test]
async fn several_sources_token_only_in_second_is_accepted() {
    let tok = token("second");
    let r = send(
        bearer_and_cookie_app(),
        get_with(&[("cookie", &format!("theme=dark; access_token={tok}"))]),
    )
    .await;
    r.assert_ok("second");
}

#[tokio::test]
async fn several_sources_none_found_is_missing() {
    let r = send(
        bearer_and_cookie_app(),
        get_with(&[
            ("cookie", "theme=dark"),
            ("authorization", "Basic dXNlcjpwYXNz"),
        ]),
    )
    .await;
    r.assert_missing();
}

#[tokio::test]
async fn several_sources_are_all_asked_even_after_a_valid_token() {
    // A valid bearer token does not short-circuit: the garbage cookie is found too.
    let tok = token("valid");
    let r = send(
        bearer_and_cookie_app(),
        get_with(&[
            ("authorization", &format!("Bearer {tok}")),
            ("cookie", "access_token=garbage"),
        ]),
    )
    .await;
    r.assert_invalid_request();
}

#[tokio::test]
async fn several_sources_a_later_source_error_wins_over_an_earlier_token() {
    let tok = token("valid");
    let r = send(
        bearer_and_cookie_app(),
        get_with(&[
            ("authorization", &format!("Bearer {tok}")),
            ("cookie", "access_token=one; access_token=two"),
        ]),
    )
    .await;
    r.assert_invalid_request();
    assert_eq!(r.err().facts().source, Some("cookie"));
}

#[tokio::test]
async fn several_sources_order_does_not_matter_for_two_tokens() {
    let cfg = base()
        .source(source::cookie("access_token"))
        .source(source::bearer())
        .build()
        .unwrap();
    let tok = token("x");
    let r = send(
        app(cfg.clone()),
        get_with(&[
            ("cookie", &format!("access_token={tok}")),
            ("authorization", &format!("Bearer {tok}")),
        ]),
    )
    .await;
    r.assert_invalid_request();
    let r = send(
        app(cfg),
        get_with(&[("authorization", &format!("Bearer {tok}"))]),
    )
    .await;
    r.assert_ok("x");
}

#[tokio::test]
async fn token_in_query_and_header_is_invalid_request() {
    let cfg = base()
        .source(source::header("x-token"))
        .source(source::query("t"))
        .build()
        .unwrap();
    let tok = token("x");
    let mut req = get_uri(&format!("/?t={tok}"));
    req.headers_mut()
        .insert("x-token", HeaderValue::from_str(&tok).unwrap());
    let r = send(app(cfg), req).await;
    r.assert_invalid_request();
}

#[tokio::test]
async fn first_source_call_replaces_default_bearer() {
    let tok = token("ignored");
    let r = send(
        cookie_app(),
        get_with(&[
            ("authorization", &format!("Bearer {tok}")),
            ("cookie", "theme=dark"),
        ]),
    )
    .await;
    r.assert_missing();
}

#[tokio::test]
async fn bearer_added_back_explicitly_is_used() {
    let tok = token("back");
    let r = send(
        bearer_and_cookie_app(),
        get_with(&[("authorization", &format!("bearer {tok}"))]),
    )
    .await;
    r.assert_ok("back");
}

// ---------------------------------------------------------------------------------------------
// Custom TokenSource
// ---------------------------------------------------------------------------------------------

/// `x-custom: <token>`; the value `refuse-me` is refused as `invalid_request`.
struct XCustom;

impl TokenSource for XCustom {
    fn find<'r>(&self, parts: &'r Parts) -> Result<Option<Cow<'r, str>>, AuthError> {
        match parts.headers.get("x-custom") {
            None => Ok(None),
            Some(v) if v == "refuse-me" => Err(AuthError::invalid_request(
                "x-custom carries a refused value",
            )),
            Some(v) => v
                .to_str()
                .map(|s| Some(Cow::Borrowed(s)))
                .map_err(|_| AuthError::malformed("x-custom is not ASCII")),
        }
    }

    fn name(&self) -> &'static str {
        "x-custom"
    }
}

/// A source that always returns an owned token built from two headers.
struct Joined;

impl TokenSource for Joined {
    fn find<'r>(&self, parts: &'r Parts) -> Result<Option<Cow<'r, str>>, AuthError> {
        let head = parts.headers.get("x-head").and_then(|v| v.to_str().ok());
        let tail = parts.headers.get("x-tail").and_then(|v| v.to_str().ok());
        match (head, tail) {
            (Some(h), Some(t)) => Ok(Some(Cow::Owned(format!("{h}{t}")))),
            _ => Ok(None),
        }
    }

    fn name(&self) -> &'static str {
        "joined"
    }
}

/// A source whose own configuration is broken.
struct Misconfigured;

impl TokenSource for Misconfigured {
    fn find<'r>(&self, _parts: &'r Parts) -> Result<Option<Cow<'r, str>>, AuthError> {
        Ok(None)
    }

    fn name(&self) -> &'static str {
        "misconfigured"
    }

    fn check(&self) -> Result<(), ConfigError> {
        Err(ConfigError::InvalidSourceName("misconfigured".into()))
    }
}

fn custom_app() -> Router {
    app(base().source(XCustom).build().unwrap())
}

#[tokio::test]
async fn custom_source_finds_token() {
    let tok = token("custom");
    let r = send(custom_app(), get_with(&[("x-custom", &tok)])).await;
    r.assert_ok("custom");
}

#[tokio::test]
async fn custom_source_nothing_found_is_missing() {
    let r = send(custom_app(), get_with(&[])).await;
    r.assert_missing();
}

#[tokio::test]
async fn custom_source_invalid_request_error_is_answered_400() {
    let r = send(custom_app(), get_with(&[("x-custom", "refuse-me")])).await;
    r.assert_invalid_request();
    let err = r.err();
    assert_eq!(
        err.problems()[0].subject(),
        Some("x-custom carries a refused value")
    );
    assert_eq!(err.facts().source, Some("x-custom"));
    // The fixed description is for operators, not clients: the body has the fixed vocabulary.
    assert!(!r.body.contains("refused value"), "{}", r.body);
}

#[tokio::test]
async fn custom_source_owned_token_is_accepted() {
    let tok = token("joined");
    let (head, tail) = tok.split_at(tok.len() / 2);
    let cfg = base().source(Joined).build().unwrap();
    let r = send(app(cfg), get_with(&[("x-head", head), ("x-tail", tail)])).await;
    r.assert_ok("joined");
}

#[tokio::test]
async fn custom_source_alongside_bearer_two_tokens_is_invalid_request() {
    let cfg = base()
        .source(source::bearer())
        .source(XCustom)
        .build()
        .unwrap();
    let tok = token("x");
    let r = send(
        app(cfg),
        get_with(&[
            ("authorization", &format!("Bearer {tok}")),
            ("x-custom", &tok),
        ]),
    )
    .await;
    r.assert_invalid_request();
}

#[tokio::test]
async fn custom_source_check_error_stops_build() {
    let err = base().source(Misconfigured).build().unwrap_err();
    assert_eq!(err, ConfigError::InvalidSourceName("misconfigured".into()));
}

// ---------------------------------------------------------------------------------------------
// facts().source
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn facts_source_names_cookie_for_bad_cookie_token() {
    let r = send(
        bearer_and_cookie_app(),
        get_with(&[("cookie", &format!("access_token={}", expired_token()))]),
    )
    .await;
    r.assert_problem(Reason::Expired);
    assert_eq!(r.err().facts().source, Some("cookie"));
}

#[tokio::test]
async fn facts_source_names_authorization_for_bad_bearer_token() {
    let r = send(
        bearer_and_cookie_app(),
        get_with(&[("authorization", &format!("Bearer {}", expired_token()))]),
    )
    .await;
    r.assert_problem(Reason::Expired);
    assert_eq!(r.err().facts().source, Some("authorization"));
}

#[tokio::test]
async fn facts_source_names_query_for_bad_query_token() {
    let r = send(query_app(), get_uri("/?access_token=not-a-jwt")).await;
    r.assert_problem(Reason::Malformed);
    assert_eq!(r.err().facts().source, Some("query"));
}

#[tokio::test]
async fn facts_source_names_header_for_bad_header_token() {
    let r = send(header_app(), get_with(&[("x-token", &expired_token())])).await;
    r.assert_problem(Reason::Expired);
    assert_eq!(r.err().facts().source, Some("header"));
}

#[tokio::test]
async fn facts_source_names_custom_source_for_bad_token() {
    let r = send(custom_app(), get_with(&[("x-custom", &expired_token())])).await;
    r.assert_problem(Reason::Expired);
    assert_eq!(r.err().facts().source, Some("x-custom"));
}

#[tokio::test]
async fn facts_source_names_authorization_for_malformed_header_bytes() {
    let mut req = get_with(&[]);
    req.headers_mut().insert(
        AUTHORIZATION,
        HeaderValue::from_bytes(b"Bearer \xff").unwrap(),
    );
    let r = send(bearer_and_cookie_app(), req).await;
    r.assert_problem(Reason::Malformed);
    assert_eq!(r.err().facts().source, Some("authorization"));
}

#[tokio::test]
async fn missing_token_has_no_source_fact() {
    let r = send(
        bearer_and_cookie_app(),
        get_with(&[(COOKIE.as_str(), "a=b")]),
    )
    .await;
    r.assert_missing();
    assert_eq!(r.err().facts().source, None);
}
