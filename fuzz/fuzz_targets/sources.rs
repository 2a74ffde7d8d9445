//! Token sources on arbitrary requests: any set of headers (several `Authorization` and
//! `Cookie` headers with arbitrary bytes, custom token headers, arbitrary header names) and
//! any query string, through every built-in source's `TokenSource::find` and through the
//! layer with all sources at once. Nothing may panic, and the documented rules must hold.
#![no_main]

mod common;

use std::sync::OnceLock;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, AUTHORIZATION, WWW_AUTHENTICATE};
use http::request::Parts;
use http::{Request, StatusCode, Uri};
use libfuzzer_sys::fuzz_target;
use tower_layer::Layer;
use tower_service::Service;
use tower_token_auth::source::{self, TokenSource};
use tower_token_auth::{AuthConfig, AuthError, Reason, TokenAuthLayer};

use common::{block_on, test_keys, Ok200, AUD, ISS, NOW};

/// The request, from lines of the input: `name: value` is a header (any name and value
/// bytes; one that `http` refuses is skipped), a line starting with `?` is the query string
/// (the last one wins). Seeds are readable text.
struct Input<'a> {
    headers: Vec<(&'a [u8], &'a [u8])>,
    query: Option<&'a [u8]>,
}

impl<'a> Input<'a> {
    fn parse(data: &'a [u8]) -> Self {
        let mut input = Input {
            headers: Vec::new(),
            query: None,
        };
        for line in data.split(|b| *b == b'\n') {
            if let Some(q) = line.strip_prefix(b"?") {
                input.query = Some(q);
            } else if let Some(i) = line.iter().position(|b| *b == b':') {
                let value = &line[i + 1..];
                let value = value.strip_prefix(b" ").unwrap_or(value);
                input.headers.push((&line[..i], value));
            }
        }
        input
    }
}

struct Sources {
    bearer: source::Bearer,
    header: source::HeaderSource,
    scheme: source::HeaderSource,
    cookie: source::CookieSource,
    query: source::QuerySource,
    /// Every source at once, required token.
    all: TokenAuthLayer,
    /// The cookie source alone, invalid tokens let through anonymously.
    cookie_anon: TokenAuthLayer,
}

fn sources() -> &'static Sources {
    static S: OnceLock<Sources> = OnceLock::new();
    S.get_or_init(|| {
        let mut keys = tower_token_auth::Keys::default();
        for k in test_keys() {
            keys = keys.and(k.keys());
        }
        let base = || {
            AuthConfig::builder()
                .keys(keys.clone())
                .issuer(ISS)
                .audience(AUD)
                .realm("api")
                .clock(|| NOW)
        };
        let all = base()
            .source(source::bearer())
            .source(source::header("x-token"))
            .source(source::header_with_scheme("x-auth", "Token"))
            .source(source::cookie("session"))
            .source(source::query("access_token"))
            .build()
            .expect("fuzz config builds");
        let cookie_only = base()
            .source(source::cookie("session"))
            .build()
            .expect("fuzz config builds");
        Sources {
            bearer: source::bearer(),
            header: source::header("x-token"),
            scheme: source::header_with_scheme("x-auth", "Token"),
            cookie: source::cookie("session"),
            query: source::query("access_token"),
            all: TokenAuthLayer::new(all),
            cookie_anon: TokenAuthLayer::new(cookie_only).anonymous_on_invalid(),
        }
    })
}

/// A URI carrying `query`: as given if it parses, else with the bytes a URI cannot hold
/// percent-encoded (`&`, `=`, `+` and `%` are kept, so the structure survives).
fn uri_with_query(query: &[u8]) -> Uri {
    let mut raw = b"/r?".to_vec();
    raw.extend_from_slice(query);
    if let Ok(uri) = Uri::try_from(raw) {
        return uri;
    }
    let mut s = String::from("/r?");
    for &b in query {
        if b.is_ascii_alphanumeric() || b"&=+%-._~".contains(&b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    Uri::try_from(s).unwrap_or_else(|_| Uri::from_static("/r"))
}

fn parts(input: &Input) -> Parts {
    let mut req = Request::builder();
    if let Some(q) = input.query {
        req = req.uri(uri_with_query(q));
    }
    let (mut parts, ()) = req.body(()).expect("request").into_parts();
    for (name, value) in &input.headers {
        let Ok(name) = HeaderName::from_bytes(name) else {
            continue;
        };
        // A value a server could never receive (control bytes) is skipped.
        if let Ok(v) = HeaderValue::from_bytes(value) {
            parts.headers.append(name, v);
        }
    }
    parts
}

fn check_found(what: &str, r: &Result<Option<std::borrow::Cow<'_, str>>, AuthError>) {
    match r {
        Ok(Some(t)) => assert!(!t.is_empty(), "{what}: empty token returned as found"),
        Ok(None) => {}
        Err(e) => assert!(
            matches!(e.reason(), Reason::InvalidRequest | Reason::Malformed),
            "{what}: unexpected source error {:?}",
            e.reason()
        ),
    }
}

fn run_layer(layer: &TokenAuthLayer, parts: Parts, anonymous: bool) {
    let mut svc = layer.layer(Ok200);
    let req = Request::from_parts(parts, Bytes::new());
    let res = block_on(svc.call(req)).expect("infallible");
    let status = res.status();
    if status == StatusCode::OK {
        return;
    }
    assert!(!anonymous, "anonymous_on_invalid answered {status}");
    assert!(
        matches!(status, StatusCode::BAD_REQUEST | StatusCode::UNAUTHORIZED),
        "unexpected status {status}"
    );
    let err = res
        .extensions()
        .get::<AuthError>()
        .expect("rejection carries its AuthError");
    assert_eq!(err.reason().status(), status, "status and reason disagree");
    assert!(
        res.headers().contains_key(WWW_AUTHENTICATE),
        "a {status} rejection without WWW-Authenticate"
    );
}

fuzz_target!(|data: &[u8]| {
    let input = Input::parse(data);
    let s = sources();
    let p = parts(&input);

    let bearer = s.bearer.find(&p);
    check_found("bearer", &bearer);
    let auth_headers = p.headers.get_all(AUTHORIZATION).iter().count();
    match auth_headers {
        0 => assert!(
            matches!(bearer, Ok(None)),
            "bearer found a token without Authorization"
        ),
        1 => {}
        _ => assert!(
            bearer
                .as_ref()
                .is_err_and(|e| e.reason() == Reason::InvalidRequest),
            "two Authorization headers must be invalid_request"
        ),
    }
    if let Ok(Some(t)) = &bearer {
        assert_eq!(
            t.trim_ascii(),
            t.as_ref(),
            "bearer token keeps surrounding whitespace"
        );
    }
    check_found("header", &s.header.find(&p));
    check_found("header_with_scheme", &s.scheme.find(&p));
    check_found("cookie", &s.cookie.find(&p));
    let q = s.query.find(&p);
    check_found("query", &q);
    if input.query.is_none() {
        assert!(
            matches!(q, Ok(None)),
            "query source found a token without a query"
        );
    }

    run_layer(&s.all, parts(&input), false);
    run_layer(&s.cookie_anon, p, true);
});
