//! `diagnose`: one test per cause of rejection (expiry, clock skew, wrong secret or key, key
//! rotation, algorithm vs key type, audience and issuer look-alikes, token type, claims, scope,
//! revocation, keys unavailable, malformed input of every kind), checking the reason codes, the
//! facts and that the hint names the fix; then the shape of the diagnosis itself (all problems
//! listed, header and claims present or absent, never the signature, the report).

use std::time::Duration;

use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};
use tower_token_auth::clock::ManualClock;
use tower_token_auth::diagnose::{diagnose, diagnose_with, DiagnoseOptions, Diagnosis, Finding};
use tower_token_auth::keys::remote::Remote;
use tower_token_auth::revocation::{MemoryRevocationStore, RevocationStore};
use tower_token_auth::testing::{TestKey, TokenBuilder};
use tower_token_auth::{Algorithm, AuthConfig, AuthConfigBuilder, ClaimError, Keys, Reason};

const ISS: &str = "https://issuer.example";
const AUD: &str = "api://orders";
/// The instant every token is checked against: 2023-11-14 22:13:20 UTC.
const NOW: i64 = 1_700_000_000;

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

fn builder(keys: Keys) -> AuthConfigBuilder {
    AuthConfig::builder()
        .keys(keys)
        .issuer(ISS)
        .audience(AUD)
        .clock(ManualClock::at(NOW))
}

fn config(key: &TestKey) -> AuthConfig {
    builder(key.keys()).build().unwrap()
}

/// A token `config(key)` accepts, to be spoiled by the test.
fn token(key: &TestKey) -> TokenBuilder<'_> {
    key.token_at(NOW).issuer(ISS).audience(AUD).subject("alice")
}

fn hs256() -> TestKey {
    TestKey::hmac(
        Algorithm::HS256,
        b"an HS256 test secret of 32 bytes".to_vec(),
    )
    .with_kid("k1")
}

/// The only finding with this reason (fails if there is none).
fn only(d: &Diagnosis, reason: Reason) -> Finding {
    let found: Vec<&Finding> = d
        .findings()
        .iter()
        .filter(|f| f.reason() == reason)
        .collect();
    assert_eq!(found.len(), 1, "one {reason} finding expected in:\n{d}");
    found[0].clone()
}

fn codes(d: &Diagnosis) -> Vec<&'static str> {
    d.findings().iter().map(|f| f.reason().code()).collect()
}

fn assert_contains(text: &str, part: &str) {
    assert!(text.contains(part), "expected {part:?} in {text:?}");
}

// ---------------------------------------------------------------------------------------------
// A valid token
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn valid_token_has_no_findings_and_shows_header_and_claims() {
    let key = hs256();
    let d = diagnose(&token(&key).sign(), &config(&key)).await;
    assert!(d.is_valid(), "{d}");
    assert_eq!(d.reason(), None);
    assert_eq!(d.status(), None);
    assert!(d.findings().is_empty());
    assert!(d.signature_verified());
    assert_eq!(d.checked_at(), NOW);
    assert_eq!(d.header().unwrap()["alg"], "HS256");
    assert_eq!(d.header().unwrap()["kid"], "k1");
    assert_eq!(d.claims().unwrap()["sub"], "alice");
    assert!(d.to_string().starts_with("VALID"), "{d}");
}

// ---------------------------------------------------------------------------------------------
// Time: expiry and clock skew
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn expired_token_says_how_long_ago_and_to_refresh() {
    let key = hs256();
    let t = token(&key).expired_for(Duration::from_secs(312)).sign();
    let d = diagnose(&t, &config(&key)).await;
    assert_eq!(d.reason(), Some(Reason::Expired));
    assert_eq!(codes(&d), ["expired"]);
    let f = only(&d, Reason::Expired);
    assert_eq!(f.subject(), Some("exp"));
    assert_contains(
        f.facts(),
        "expired 5 min 12 s ago, at 2023-11-14 22:08:08 UTC",
    );
    assert_eq!(f.field("expired_secs"), Some(&json!(312)));
    assert_eq!(f.field("exp_utc"), Some(&json!("2023-11-14 22:08:08 UTC")));
    assert_eq!(f.field("clock_skew_suspected"), Some(&json!(false)));
    assert_contains(f.hint(), "refresh the token");
    assert!(!f.hint().contains(".leeway("), "{}", f.hint());
}

#[tokio::test]
async fn expiry_just_past_the_leeway_points_at_unsynchronised_clocks() {
    let key = hs256();
    let t = token(&key).expired_for(Duration::from_secs(90)).sign();
    let d = diagnose(&t, &config(&key)).await;
    let f = only(&d, Reason::Expired);
    assert_contains(f.facts(), "expired 1 min 30 s ago");
    assert_contains(f.facts(), "1 min past the leeway");
    assert_contains(f.facts(), "clocks");
    assert_eq!(f.field("clock_skew_suspected"), Some(&json!(true)));
    assert_contains(f.hint(), "refresh the token");
    assert_contains(f.hint(), "NTP");
    assert_contains(f.hint(), "`.leeway(..)` (now 30 s, at most 5 min)");
}

#[tokio::test]
async fn token_valid_in_two_minutes_points_at_clock_skew() {
    let key = hs256();
    let t = token(&key).claim("nbf", NOW + 125).sign();
    let d = diagnose(&t, &config(&key)).await;
    assert_eq!(d.reason(), Some(Reason::NotYetValid));
    let f = only(&d, Reason::NotYetValid);
    assert_eq!(f.subject(), Some("nbf"));
    assert_contains(
        f.facts(),
        "not valid before 2023-11-14 22:15:25 UTC, 2 min 5 s from now",
    );
    assert_contains(f.facts(), "not synchronised");
    assert_eq!(f.field("clock_skew_suspected"), Some(&json!(true)));
    assert_contains(f.hint(), "synchronise the clocks");
    assert_contains(f.hint(), "`.leeway(..)`");
}

#[tokio::test]
async fn post_dated_token_is_not_blamed_on_clocks() {
    let key = hs256();
    let t = token(&key)
        .claim("nbf", NOW + 3 * 3600 + 120)
        .expires_in(Duration::from_secs(86_400))
        .sign();
    let d = diagnose(&t, &config(&key)).await;
    let f = only(&d, Reason::NotYetValid);
    assert_contains(f.facts(), "3 h 2 min from now");
    assert_eq!(f.field("clock_skew_suspected"), Some(&json!(false)));
    assert_contains(f.hint(), "post-dated");
    assert!(!f.hint().contains(".leeway("), "{}", f.hint());
}

#[tokio::test]
async fn issued_in_the_future_is_a_warning_on_an_accepted_token() {
    let key = hs256();
    let t = token(&key).claim("iat", NOW + 2 * 86_400 + 4 * 3600).sign();
    let d = diagnose(&t, &config(&key)).await;
    assert!(d.is_valid(), "{d}");
    let w = &d.warnings()[0];
    assert_eq!(w.subject(), Some("iat"));
    assert_contains(w.facts(), "`iat` is 2 d 4 h in the future");
    assert_contains(w.hint(), "NTP");
}

// ---------------------------------------------------------------------------------------------
// Keys: wrong secret, other key, rotation, algorithm vs key type
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn wrong_hmac_secret_points_at_the_client_secret() {
    let key = hs256();
    let other = TestKey::hmac(
        Algorithm::HS256,
        b"another secret, also of 32 bytes".to_vec(),
    )
    .with_kid("k1");
    let d = diagnose(&token(&other).sign(), &config(&key)).await;
    assert_eq!(d.reason(), Some(Reason::BadSignature));
    assert!(!d.signature_verified());
    let f = only(&d, Reason::BadSignature);
    assert_contains(
        f.facts(),
        "does not verify with key `k1` (HMAC secret, HS256)",
    );
    assert_contains(f.hint(), "secret differs");
    assert_contains(f.hint(), "client secret");
    assert!(d.notes().iter().any(|n| n.contains("not verified")), "{d}");
}

#[tokio::test]
async fn bad_rsa_signature_points_at_another_environment_key() {
    let key = TestKey::rs256().with_kid("prod-1");
    let a = token(&key).sign();
    let b = token(&key).subject("mallory").sign();
    // Alice's header and claims with the signature of another token.
    let (a_signed, _) = a.rsplit_once('.').unwrap();
    let (_, b_sig) = b.rsplit_once('.').unwrap();
    let forged = format!("{a_signed}.{b_sig}");
    let d = diagnose(&forged, &config(&key)).await;
    let f = only(&d, Reason::BadSignature);
    assert_contains(f.facts(), "key `prod-1` (RSA PEM key");
    assert_contains(f.hint(), "another environment");
    assert_contains(f.hint(), "altered");
    assert_eq!(f.field("kid"), Some(&json!("prod-1")));
}

#[tokio::test]
async fn signature_from_another_issuer_says_so() {
    let key = hs256();
    let other = TestKey::hmac(
        Algorithm::HS256,
        b"the staging tenant's 32-byte key".to_vec(),
    )
    .with_kid("k1");
    let t = other
        .token_at(NOW)
        .issuer("https://staging.issuer.example")
        .audience(AUD)
        .sign();
    let d = diagnose(&t, &config(&key)).await;
    assert_eq!(codes(&d), ["bad_signature", "wrong_issuer"]);
    assert_contains(
        only(&d, Reason::BadSignature).facts(),
        "issued by `https://staging.issuer.example`, not by the configured issuer",
    );
}

#[tokio::test]
async fn unknown_kid_lists_the_key_set() {
    let keys = TestKey::hs256()
        .with_kid("k1")
        .keys()
        .and(TestKey::hs256().with_kid("k2").keys());
    let cfg = builder(keys).build().unwrap();
    let rotated = TestKey::hs256().with_kid("k9");
    let d = diagnose(&token(&rotated).sign(), &cfg).await;
    assert_eq!(d.reason(), Some(Reason::UnknownKey));
    let f = only(&d, Reason::UnknownKey);
    assert_eq!(f.subject(), Some("kid"));
    assert_contains(
        f.facts(),
        "`kid` `k9` is not in the key set, which has `k1`, `k2`",
    );
    assert_eq!(f.field("known_kids"), Some(&json!(["k1", "k2"])));
    assert_contains(f.hint(), "(JWKS) are outdated");
    assert_contains(f.hint(), "rotated");
    assert_contains(f.hint(), "wrong issuer");
}

#[tokio::test]
async fn token_without_kid_and_several_candidate_keys() {
    let keys = TestKey::hs256()
        .with_kid("a")
        .keys()
        .and(TestKey::hs256().with_kid("b").keys());
    let cfg = builder(keys).build().unwrap();
    let t = token(&TestKey::hs256()).sign();
    let d = diagnose(&t, &cfg).await;
    let f = only(&d, Reason::UnknownKey);
    assert_contains(f.facts(), "has no `kid` and 2 keys accept HS256 (`a`, `b`)");
    assert_contains(f.hint(), "put a `kid` in the header");
}

#[tokio::test]
async fn unknown_kid_with_a_jwks_url_names_the_fetched_set() {
    let published = [
        TestKey::es256().with_kid("k1"),
        TestKey::rs256().with_kid("k2"),
    ];
    let jwks = TestKey::jwks(&[&published[0], &published[1]]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks", listener.local_addr().unwrap());
    let app = Router::new().route("/jwks", get(move || async move { jwks }));
    tokio::spawn(async move { axum::serve(listener, app).await });

    let cfg = builder(Keys::remote(Remote::jwks_url(&url).allow_http()))
        .build()
        .unwrap();
    let rotated = TestKey::es256().with_kid("k9");
    let d = diagnose(&token(&rotated).sign(), &cfg).await;
    let f = only(&d, Reason::UnknownKey);
    assert_contains(
        f.facts(),
        &format!("`kid` `k9` is not in the key set fetched from {url}, which has `k1`, `k2`"),
    );
    assert_contains(f.hint(), "refetched");
    assert_contains(f.hint(), "another issuer");
    let json = serde_json::to_value(&d).unwrap();
    assert_eq!(
        json["checked_against"]["trusts"][0]["key_source"],
        url.as_str()
    );
}

#[tokio::test]
async fn hs256_token_against_rsa_keys_names_both_types() {
    let cfg = config(&TestKey::rs256());
    let d = diagnose(&token(&TestKey::hs256()).sign(), &cfg).await;
    assert_eq!(d.reason(), Some(Reason::AlgNotAllowed));
    let f = only(&d, Reason::AlgNotAllowed);
    assert_eq!(f.subject(), Some("alg"));
    assert_contains(
        f.facts(),
        "the token is HS256 but the configured keys are RSA",
    );
    assert_contains(f.facts(), "RS256");
    assert_contains(f.hint(), "algorithm confusion");
    assert_contains(f.hint(), "Keys::hmac(..)");
    assert_eq!(f.field("key_types"), Some(&json!(["RSA"])));
}

#[tokio::test]
async fn es256_token_against_rsa_keys_asks_for_the_ec_key() {
    let cfg = config(&TestKey::rs256());
    let d = diagnose(&token(&TestKey::es256()).sign(), &cfg).await;
    let f = only(&d, Reason::AlgNotAllowed);
    assert_contains(
        f.facts(),
        "the token is ES256 but the configured keys are RSA",
    );
    assert_contains(f.hint(), "Keys::ec_pem(..)");
}

#[tokio::test]
async fn unsigned_token_is_called_out() {
    let key = hs256();
    let t = token(&key).header("alg", "none").sign();
    let d = diagnose(&t, &config(&key)).await;
    let f = only(&d, Reason::AlgNotAllowed);
    assert_contains(f.facts(), "`alg` is `none`: the token is not signed");
    assert_contains(f.hint(), "never accepted");
}

#[tokio::test]
async fn keys_unavailable_names_the_key_url() {
    // Port 9 (discard) is closed on test machines: the fetch fails at once.
    let url = "http://127.0.0.1:9/jwks";
    let remote = Remote::jwks_url(url)
        .allow_http()
        .fetch_timeout(Duration::from_secs(2));
    let cfg = builder(Keys::remote(remote)).build().unwrap();
    let d = diagnose(&token(&hs256()).sign(), &cfg).await;
    assert_eq!(d.reason(), Some(Reason::KeysUnavailable));
    assert_eq!(d.status(), Some(http::StatusCode::SERVICE_UNAVAILABLE));
    let f = only(&d, Reason::KeysUnavailable);
    assert_contains(f.facts(), url);
    assert_contains(f.facts(), "could not be fetched");
    assert_contains(f.hint(), "reaches the key URL");
    assert!(
        d.notes()
            .iter()
            .any(|n| n.contains("no keys were available")),
        "{d}"
    );
}

// ---------------------------------------------------------------------------------------------
// Audience and issuer
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn wrong_audience_shows_actual_and_expected() {
    let key = hs256();
    let t = token(&key).audience("api://billing").sign();
    let d = diagnose(&t, &config(&key)).await;
    assert_eq!(d.reason(), Some(Reason::WrongAudience));
    let f = only(&d, Reason::WrongAudience);
    assert_contains(
        f.facts(),
        "`aud` is `api://billing`, expected one of `api://orders`",
    );
    assert_eq!(f.field("actual"), Some(&json!(["api://billing"])));
    assert_eq!(f.field("expected"), Some(&json!(["api://orders"])));
    assert_eq!(f.field("lookalike"), Some(&Value::Null));
    assert_contains(f.hint(), "request a token for this API");
    assert_contains(f.hint(), ".audience(\"api://billing\")");
}

#[tokio::test]
async fn audience_with_a_trailing_slash_is_a_lookalike() {
    let key = hs256();
    let t = token(&key).audience("api://orders/").sign();
    let d = diagnose(&t, &config(&key)).await;
    let f = only(&d, Reason::WrongAudience);
    assert_contains(f.facts(), "differ only by a trailing slash");
    assert_contains(f.facts(), "the token's value has a trailing slash");
    assert_contains(f.hint(), "compared exactly");
}

#[tokio::test]
async fn audience_without_the_api_prefix_is_a_lookalike() {
    let key = hs256();
    let cfg = builder(key.keys())
        .audience("api://6e74172b-be56-4843-9ff4-e66a39bb12e3")
        .build()
        .unwrap();
    let t = token(&key)
        .audience("6e74172b-be56-4843-9ff4-e66a39bb12e3")
        .sign();
    let d = diagnose(&t, &cfg).await;
    let f = only(&d, Reason::WrongAudience);
    assert_contains(f.facts(), "differ only by the `api://` prefix");
}

#[tokio::test]
async fn issuer_over_http_is_a_scheme_lookalike() {
    let key = hs256();
    let t = token(&key).issuer("http://issuer.example").sign();
    let d = diagnose(&t, &config(&key)).await;
    assert_eq!(d.reason(), Some(Reason::WrongIssuer));
    let f = only(&d, Reason::WrongIssuer);
    assert_eq!(f.subject(), Some("iss"));
    assert_contains(
        f.facts(),
        "`iss` is `http://issuer.example`, expected `https://issuer.example`",
    );
    assert_contains(
        f.facts(),
        "the scheme (`http` in the token, `https` configured)",
    );
    assert_contains(f.hint(), ".issuer(\"http://issuer.example\")");
}

#[tokio::test]
async fn issuer_with_a_trailing_slash_is_a_lookalike() {
    let key = hs256();
    let t = token(&key).issuer("https://issuer.example/").sign();
    let d = diagnose(&t, &config(&key)).await;
    let f = only(&d, Reason::WrongIssuer);
    assert_contains(f.facts(), "differ only by a trailing slash");
    assert!(f.field("lookalike").unwrap().is_string());
}

#[tokio::test]
async fn issuer_in_another_case_is_a_lookalike() {
    let key = hs256();
    let t = token(&key).issuer("https://Issuer.Example").sign();
    let d = diagnose(&t, &config(&key)).await;
    let f = only(&d, Reason::WrongIssuer);
    assert_contains(f.facts(), "differ only by letter case");
}

#[tokio::test]
async fn azure_v1_issuer_is_recognised() {
    let key = hs256();
    let tenant = "72f988bf-86f1-41af-91ab-2d7cd011db47";
    let v2 = format!("https://login.microsoftonline.com/{tenant}/v2.0");
    let cfg = AuthConfig::builder()
        .keys(key.keys())
        .issuer(&v2)
        .audience(AUD)
        .clock(ManualClock::at(NOW))
        .build()
        .unwrap();
    let t = token(&key)
        .issuer(&format!("https://sts.windows.net/{tenant}/"))
        .sign();
    let d = diagnose(&t, &cfg).await;
    let f = only(&d, Reason::WrongIssuer);
    assert_contains(f.facts(), "Azure AD v1.0");
    assert_contains(f.hint(), "accessTokenAcceptedVersion");
}

#[tokio::test]
async fn unrelated_issuer_says_where_to_get_a_token() {
    let key = hs256();
    let t = token(&key).issuer("https://evil.example").sign();
    let d = diagnose(&t, &config(&key)).await;
    let f = only(&d, Reason::WrongIssuer);
    assert_eq!(f.field("lookalike"), Some(&Value::Null));
    assert_contains(f.hint(), "get a token from `https://issuer.example`");
}

// ---------------------------------------------------------------------------------------------
// Token type: ID tokens and refresh tokens sent as access tokens
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn id_token_where_an_access_token_is_required() {
    let key = hs256();
    let cfg = builder(key.keys()).require_type("at+jwt").build().unwrap();
    let t = token(&key)
        .claim("nonce", "n-0S6_WzA2Mj")
        .claim("at_hash", "77QmUPtjPfzWtF2AnpK9RQ")
        .sign();
    let d = diagnose(&t, &cfg).await;
    assert_eq!(d.reason(), Some(Reason::WrongType));
    let f = only(&d, Reason::WrongType);
    assert_eq!(f.subject(), Some("typ"));
    assert_contains(f.facts(), "header `typ` is `JWT`, required `at+jwt`");
    assert_contains(f.facts(), "an ID token (claim `nonce`, claim `at_hash`)");
    assert_eq!(f.field("token_kind"), Some(&json!("ID token")));
    assert_contains(f.hint(), "send the access token");
}

#[tokio::test]
async fn plain_jwt_where_at_jwt_is_required_names_the_setting() {
    let key = hs256();
    let cfg = builder(key.keys()).require_type("at+jwt").build().unwrap();
    let d = diagnose(&token(&key).sign(), &cfg).await;
    let f = only(&d, Reason::WrongType);
    assert_contains(f.hint(), "`.require_type(..)`");
}

#[tokio::test]
async fn id_token_issued_to_the_client_is_recognised_without_a_type_rule() {
    let key = hs256();
    let t = token(&key)
        .audience("spa-client")
        .claim("azp", "spa-client")
        .claim("nonce", "abc")
        .sign();
    let d = diagnose(&t, &config(&key)).await;
    // The service answers wrong_audience; the diagnosis also names the cause.
    assert_eq!(d.reason(), Some(Reason::WrongAudience));
    assert_eq!(codes(&d), ["wrong_type", "wrong_audience"]);
    assert_contains(
        only(&d, Reason::WrongAudience).facts(),
        "`aud` is the client's own id `spa-client`",
    );
    let kind = only(&d, Reason::WrongType);
    assert_eq!(kind.subject(), Some("token kind"));
    assert_contains(kind.facts(), "this is an ID token, not an access token");
    assert_contains(kind.hint(), "not the ID token");
}

#[tokio::test]
async fn refresh_token_sent_as_an_access_token() {
    let key = hs256();
    // A Keycloak refresh token: `typ: Refresh`, audience the realm itself.
    let t = token(&key).audience(ISS).claim("typ", "Refresh").sign();
    let d = diagnose(&t, &config(&key)).await;
    assert_eq!(codes(&d), ["wrong_type", "wrong_audience"]);
    let f = only(&d, Reason::WrongType);
    assert_contains(
        f.facts(),
        "this is a refresh token, not an access token (claim `typ` is `Refresh`)",
    );
    assert_contains(f.hint(), "not the refresh token");
}

#[tokio::test]
async fn token_kind_explains_but_does_not_change_the_verdict() {
    let key = hs256();
    let t = token(&key).claim("nonce", "abc").sign();
    let options = DiagnoseOptions::new().require_scope("orders:read");
    let d = diagnose_with(&t, &config(&key), &options).await;
    assert_eq!(d.reason(), Some(Reason::InsufficientScope));
    assert_eq!(codes(&d), ["wrong_type", "insufficient_scope"]);
}

#[tokio::test]
async fn accepted_id_token_gets_a_warning() {
    let key = hs256();
    let t = token(&key).claim("nonce", "abc").sign();
    let d = diagnose(&t, &config(&key)).await;
    assert!(d.is_valid(), "{d}");
    assert_eq!(d.warnings().len(), 1);
    assert_eq!(d.warnings()[0].reason(), Reason::WrongType);
    assert_contains(d.warnings()[0].facts(), "ID token");
}

// ---------------------------------------------------------------------------------------------
// Claims and scope
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn missing_claims_name_the_requirement() {
    let key = hs256();
    let cfg = builder(key.keys()).require_claim("tenant").build().unwrap();
    let d = diagnose(&token(&key).without("exp").sign(), &cfg).await;
    assert_eq!(d.reason(), Some(Reason::MissingClaim));
    let missing: Vec<&Finding> = d
        .findings()
        .iter()
        .filter(|f| f.reason() == Reason::MissingClaim)
        .collect();
    assert_eq!(missing.len(), 2, "{d}");
    assert_eq!(missing[0].subject(), Some("exp"));
    assert_contains(missing[0].facts(), "tokens without an expiry are refused");
    assert_contains(missing[0].hint(), "set `exp`");
    assert_eq!(missing[1].subject(), Some("tenant"));
    assert_contains(missing[1].facts(), "`.require_claim(..)`");
}

#[tokio::test]
async fn missing_audience_names_the_skip_switch() {
    let key = hs256();
    let d = diagnose(&token(&key).without("aud").sign(), &config(&key)).await;
    let f = only(&d, Reason::MissingClaim);
    assert_eq!(f.subject(), Some("aud"));
    assert_contains(f.hint(), "`.skip_audience_check()`");
}

#[tokio::test]
async fn expiry_as_a_string_is_an_invalid_claim() {
    let key = hs256();
    let t = token(&key).claim("exp", "1700000300").sign();
    let d = diagnose(&t, &config(&key)).await;
    let f = only(&d, Reason::InvalidClaim);
    assert_eq!(f.subject(), Some("exp"));
    assert_contains(f.facts(), "`exp` is a string");
    assert_contains(f.hint(), "number of seconds since 1970");
}

#[tokio::test]
async fn expiry_in_milliseconds_is_recognised() {
    let key = hs256();
    let t = token(&key).claim("exp", (NOW + 300) * 1000).sign();
    let d = diagnose(&t, &config(&key)).await;
    let f = only(&d, Reason::InvalidClaim);
    assert_contains(f.facts(), "milliseconds");
}

#[tokio::test]
async fn refusal_by_a_user_check_names_the_claim() {
    let key = hs256();
    let cfg = builder(key.keys())
        .check(|c| match c.get("tenant").and_then(Value::as_str) {
            Some("acme") => Ok(()),
            Some(_) => Err(ClaimError::invalid("tenant")),
            None => Err(ClaimError::missing("tenant")),
        })
        .build()
        .unwrap();
    let d = diagnose(&token(&key).claim("tenant", "globex").sign(), &cfg).await;
    let f = only(&d, Reason::InvalidClaim);
    assert_eq!(f.subject(), Some("tenant"));
    assert_contains(f.facts(), "(`.check(..)`) refuses `tenant` (\"globex\")");
}

#[tokio::test]
async fn missing_scope_lists_granted_and_missing() {
    let key = hs256();
    let t = token(&key).scope("orders:read profile").sign();
    let options = DiagnoseOptions::new().require_scope("orders:read orders:write");
    let d = diagnose_with(&t, &config(&key), &options).await;
    assert_eq!(d.reason(), Some(Reason::InsufficientScope));
    assert_eq!(d.status(), Some(http::StatusCode::FORBIDDEN));
    let f = only(&d, Reason::InsufficientScope);
    assert_eq!(f.subject(), Some("scope"));
    assert_contains(
        f.facts(),
        "the token grants `orders:read`, `profile` (claim `scope`); missing: `orders:write`",
    );
    assert_eq!(f.field("missing"), Some(&json!(["orders:write"])));
    assert_contains(f.hint(), "`scope=orders:write`");
}

#[tokio::test]
async fn token_without_any_scope_claim() {
    let key = hs256();
    let options = DiagnoseOptions::new().require_scope("orders:read");
    let d = diagnose_with(&token(&key).sign(), &config(&key), &options).await;
    assert_contains(
        only(&d, Reason::InsufficientScope).facts(),
        "no `scope` or `scp` claim",
    );
}

#[tokio::test]
async fn scp_array_grants_the_required_scopes() {
    let key = hs256();
    let t = token(&key)
        .claim("scp", json!(["orders:read", "orders:write"]))
        .sign();
    let options = DiagnoseOptions::new().require_scope("orders:write");
    let d = diagnose_with(&t, &config(&key), &options).await;
    assert!(d.is_valid(), "{d}");
}

#[tokio::test]
async fn revoked_token_names_its_jti() {
    let key = hs256();
    let store = std::sync::Arc::new(MemoryRevocationStore::with_clock(ManualClock::at(NOW)));
    store.revoke_token("jti-7", NOW + 3600).await.unwrap();
    let cfg = builder(key.keys())
        .revocation(store.clone())
        .build()
        .unwrap();
    let d = diagnose(&token(&key).claim("jti", "jti-7").sign(), &cfg).await;
    assert_eq!(d.reason(), Some(Reason::Revoked));
    let f = only(&d, Reason::Revoked);
    assert_contains(f.facts(), "the token (`jti` `jti-7`) has been revoked");
    assert_contains(f.hint(), "get a new token");
}

// ---------------------------------------------------------------------------------------------
// Malformed input
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn opaque_token_is_not_a_jwt() {
    let d = diagnose("2YotnFZFEjr1zCsicMWpAA", &config(&hs256())).await;
    assert_eq!(d.reason(), Some(Reason::Malformed));
    let f = only(&d, Reason::Malformed);
    assert_eq!(f.subject(), Some("opaque"));
    assert_contains(f.facts(), "not a JWT but an opaque token of 22 characters");
    assert_contains(f.hint(), "introspection");
    assert_contains(f.hint(), "not the refresh token");
}

#[tokio::test]
async fn encrypted_token_is_recognised() {
    let header = "eyJhbGciOiJSU0EtT0FFUCIsImVuYyI6IkEyNTZHQ00ifQ"; // {"alg":"RSA-OAEP","enc":"A256GCM"}
    let jwe = format!("{header}.OKOawDo13gRp2ojaHV7LFpZcgV7T6DVZKTyKOMTYUmKoTCVJRgckCL9kiMT03JGe.48V1_ALb6US04U3b.5eym8TW_c8SuK0ltJ3rpYIzOeDQz7TALvtu6UG9oMo4vpzs9tX_EFShS8iB7j6jiSdiwkIr3ajwQzaBtQD_A.XFBoMYUZodetZdvTiFvSkQ");
    let d = diagnose(&jwe, &config(&hs256())).await;
    let f = only(&d, Reason::Malformed);
    assert_eq!(f.subject(), Some("jwe"));
    assert_contains(
        f.facts(),
        "encrypted (JWE, `alg` `RSA-OAEP`, `enc` `A256GCM`)",
    );
    assert_contains(f.hint(), "turn off access-token encryption");
    assert_eq!(d.header().unwrap()["enc"], "A256GCM");
    assert!(d.claims().is_none());
}

#[tokio::test]
async fn base64_padding_is_called_out_and_the_rest_diagnosed() {
    let key = hs256();
    let t = token(&key).audience("api://billing").sign();
    let d = diagnose(&format!("{t}=="), &config(&key)).await;
    assert_eq!(d.reason(), Some(Reason::Malformed));
    assert_eq!(codes(&d), ["malformed", "wrong_audience"]);
    let f = only(&d, Reason::Malformed);
    assert_eq!(f.subject(), Some("padding"));
    assert_contains(
        f.facts(),
        "the signature segment(s) end with base64 padding `=`",
    );
    assert_contains(f.hint(), "remove the trailing `=`");
}

#[tokio::test]
async fn surrounding_quotes_are_called_out() {
    let key = hs256();
    let t = token(&key).sign();
    let d = diagnose(&format!("\"{t}\""), &config(&key)).await;
    assert_eq!(d.reason(), Some(Reason::Malformed));
    let f = only(&d, Reason::Malformed);
    assert_eq!(f.subject(), Some("quotes"));
    assert_contains(f.facts(), "wrapped in quotes");
    assert_contains(f.hint(), "remove the quotes");
    // The token inside is fine, and decoded.
    assert_eq!(d.claims().unwrap()["sub"], "alice");
    assert!(d.signature_verified());
}

#[tokio::test]
async fn bearer_pasted_twice_is_called_out() {
    let key = hs256();
    let t = token(&key).sign();
    let d = diagnose(&format!("Bearer Bearer {t}"), &config(&key)).await;
    assert_eq!(d.reason(), Some(Reason::Malformed));
    let f = only(&d, Reason::Malformed);
    assert_eq!(f.subject(), Some("bearer"));
    assert_contains(f.facts(), "`Bearer` appears twice");
    assert_contains(f.hint(), "send the scheme once");
}

#[tokio::test]
async fn one_bearer_prefix_is_only_a_note() {
    let key = hs256();
    let t = token(&key).sign();
    let d = diagnose(&format!("Authorization: Bearer {t}\n"), &config(&key)).await;
    assert!(d.is_valid(), "{d}");
    assert!(d
        .notes()
        .iter()
        .any(|n| n.contains("`Bearer ` scheme was removed")));
    assert!(d
        .notes()
        .iter()
        .any(|n| n.contains("`Authorization:` header name")));
}

#[tokio::test]
async fn line_breaks_inside_the_token_are_called_out() {
    let key = hs256();
    let t = token(&key).sign();
    let wrapped = format!("{}\n{}", &t[..40], &t[40..]);
    let d = diagnose(&wrapped, &config(&key)).await;
    let f = only(&d, Reason::Malformed);
    assert_eq!(f.subject(), Some("whitespace"));
    assert_contains(
        f.facts(),
        "1 line break(s) and 0 space(s) or tab(s), the first at character 41",
    );
    assert_contains(f.hint(), "a JWT is one line without spaces");
    assert!(d.signature_verified(), "the joined token verifies");
}

#[tokio::test]
async fn token_response_json_is_unwrapped() {
    let key = hs256();
    let t = token(&key).sign();
    let response = json!({"access_token": t, "token_type": "Bearer", "expires_in": 300});
    let d = diagnose(&response.to_string(), &config(&key)).await;
    assert_eq!(d.reason(), Some(Reason::Malformed));
    let f = only(&d, Reason::Malformed);
    assert_eq!(f.subject(), Some("json"));
    assert_contains(f.facts(), "a token response (JSON) was pasted");
    assert_contains(f.hint(), "send only the value of `access_token`");
    assert_eq!(d.claims().unwrap()["sub"], "alice");
}

#[tokio::test]
async fn decoded_claims_pasted_instead_of_the_token() {
    let d = diagnose(r#"{"sub": "alice", "exp": 1700000300}"#, &config(&hs256())).await;
    let f = only(&d, Reason::Malformed);
    assert_contains(f.facts(), "decoded claims (JSON) were pasted");
    assert!(d.header().is_none() && d.claims().is_none());
}

#[tokio::test]
async fn truncated_token_is_called_out() {
    let key = hs256();
    let t = token(&key).sign();
    let d = diagnose(&format!("{}…", &t[..60]), &config(&key)).await;
    let f = d
        .findings()
        .iter()
        .find(|f| f.subject() == Some("truncated"))
        .expect("truncated");
    assert_contains(f.facts(), "shortened for display");
    assert_contains(f.hint(), "copy the whole token");
}

#[tokio::test]
async fn two_segments_mean_a_missing_signature() {
    let key = hs256();
    let t = token(&key).sign();
    let (unsigned, _) = t.rsplit_once('.').unwrap();
    let d = diagnose(unsigned, &config(&key)).await;
    let f = only(&d, Reason::Malformed);
    assert_contains(f.facts(), "the signature is missing");
    assert!(d.claims().is_some());
}

#[tokio::test]
async fn oversized_token_names_the_limit() {
    let key = hs256();
    let cfg = builder(key.keys()).max_token_len(100).build().unwrap();
    let t = token(&key).sign();
    let d = diagnose(&t, &cfg).await;
    let f = only(&d, Reason::TooLarge);
    assert_contains(
        f.facts(),
        &format!("the token is {} bytes; the limit is 100 bytes", t.len()),
    );
    assert_contains(f.hint(), "`.max_token_len(..)`");
    assert!(d.claims().is_some(), "still decoded for display");
}

// ---------------------------------------------------------------------------------------------
// The diagnosis itself
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn several_problems_are_all_listed() {
    let key = hs256();
    let cfg = builder(key.keys()).require_claim("sub").build().unwrap();
    let t = key
        .token_at(NOW)
        .issuer("https://issuer.example/")
        .audience("api://billing")
        .expired_for(Duration::from_secs(3 * 3600 + 120))
        .sign();
    let options = DiagnoseOptions::new().require_scope("orders:read");
    let d = diagnose_with(&t, &cfg, &options).await;
    assert_eq!(d.reason(), Some(Reason::Expired));
    assert_eq!(
        codes(&d),
        [
            "expired",
            "wrong_issuer",
            "wrong_audience",
            "missing_claim",
            "insufficient_scope"
        ]
    );
    assert_contains(only(&d, Reason::Expired).facts(), "expired 3 h 2 min ago");
    let report = d.to_string();
    assert_contains(&report, "5 problems");
    for code in codes(&d) {
        assert_contains(&report, code);
    }
    assert_eq!(report.matches("Fix:").count(), 5);
}

#[tokio::test]
async fn garbage_has_no_header_or_claims() {
    let d = diagnose("hello.world.again", &config(&hs256())).await;
    assert!(!d.is_valid());
    assert!(d.header().is_none());
    assert!(d.claims().is_none());
    let json = serde_json::to_value(&d).unwrap();
    assert_eq!(json["header"], Value::Null);
    assert_eq!(json["claims"], Value::Null);
    assert_eq!(json["reason"], "malformed");
    assert_contains(&d.to_string(), "Header: not decodable");
}

#[tokio::test]
async fn json_and_report_never_contain_the_signature() {
    let key = hs256();
    let other = TestKey::hmac(
        Algorithm::HS256,
        b"another secret, also of 32 bytes".to_vec(),
    )
    .with_kid("k1");
    for t in [
        token(&key).sign(),
        token(&other).audience("api://billing").sign(),
        format!("\"{}\"", token(&key).sign()),
    ] {
        let signature = t.trim_matches('"').rsplit('.').next().unwrap().to_owned();
        let d = diagnose(&t, &config(&key)).await;
        let json = serde_json::to_string(&d).unwrap();
        assert!(!json.contains(&signature), "signature in JSON: {json}");
        assert!(!d.to_string().contains(&signature));
        assert!(!format!("{d:?}").contains(&signature));
        assert!(
            !json.contains("an HS256 test secret"),
            "key material in JSON"
        );
    }
}

#[tokio::test]
async fn json_carries_verdict_findings_and_what_was_checked() {
    let key = hs256();
    let t = token(&key)
        .audience("api://billing")
        .expired_for(Duration::from_secs(312))
        .sign();
    let d = diagnose(&t, &config(&key)).await;
    let json = serde_json::to_value(&d).unwrap();
    assert_eq!(json["valid"], false);
    assert_eq!(json["reason"], "expired");
    assert_eq!(json["status"], 401);
    assert_eq!(json["checked_at"], NOW);
    assert_eq!(json["checked_at_utc"], "2023-11-14 22:13:20 UTC");
    assert_eq!(json["header"]["alg"], "HS256");
    assert_eq!(json["claims"]["aud"], "api://billing");
    assert_eq!(json["findings"][0]["reason"], "expired");
    assert_eq!(json["findings"][0]["subject"], "exp");
    assert_eq!(json["findings"][0]["fields"]["expired_secs"], 312);
    assert_eq!(json["findings"][1]["reason"], "wrong_audience");
    assert!(json["findings"][1]["hint"]
        .as_str()
        .unwrap()
        .contains(".audience("));
    let trust = &json["checked_against"]["trusts"][0];
    assert_eq!(trust["issuers"], json!([ISS]));
    assert_eq!(trust["audiences"], json!([AUD]));
    assert_eq!(
        trust["keys"][0],
        json!({"kid": "k1", "kind": "HMAC secret", "algorithms": ["HS256"]})
    );
    assert_eq!(json["checked_against"]["leeway_secs"], 30);
}

#[tokio::test]
async fn report_is_readable_and_coloured_only_on_request() {
    let key = hs256();
    let t = token(&key)
        .audience("api://billing")
        .expired_for(Duration::from_secs(312))
        .sign();
    let d = diagnose(&t, &config(&key)).await;
    let report = d.to_string();
    assert!(
        report.starts_with("INVALID: rejected as expired (401, invalid_token)"),
        "{report}"
    );
    assert_contains(&report, "Checked at 2023-11-14 22:13:20 UTC");
    assert_contains(
        &report,
        "exp: 1699999688  (2023-11-14 22:08:08 UTC, 5 min 12 s ago)",
    );
    assert_contains(&report, "2 problems");
    assert_contains(&report, "Fix: refresh the token");
    assert_contains(&report, "key: `k1` HMAC secret (HS256)");
    assert!(!report.contains('\u{1b}'));
    let coloured = d.to_ansi_string();
    assert_contains(&coloured, "\u{1b}[1;31mINVALID:\u{1b}[0m");
    assert_eq!(strip_ansi(&coloured), report);
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[tokio::test]
async fn skipped_checks_are_noted() {
    let key = hs256();
    let cfg = AuthConfig::builder()
        .keys(key.keys())
        .skip_issuer_check()
        .skip_audience_check()
        .clock(ManualClock::at(NOW))
        .build()
        .unwrap();
    let t = key.token_at(NOW).issuer("https://anyone").sign();
    let d = diagnose(&t, &cfg).await;
    assert!(d.is_valid(), "{d}");
    assert!(d
        .notes()
        .iter()
        .any(|n| n.contains("the issuer check is off")));
    assert!(d
        .notes()
        .iter()
        .any(|n| n.contains("the audience check is off")));
    assert_contains(&d.to_string(), "issuer: (not checked)");
}

#[tokio::test]
async fn finding_display_has_facts_and_fix() {
    let key = hs256();
    let t = token(&key).audience("api://billing").sign();
    let d = diagnose(&t, &config(&key)).await;
    let line = d.findings()[0].to_string();
    assert!(
        line.starts_with("wrong_audience (aud): `aud` is `api://billing`"),
        "{line}"
    );
    assert_contains(&line, " Fix: request a token for this API");
}

// ---------------------------------------------------------------------------------------------
// Without keys: DiagnoseOptions::skip_signature_check
// ---------------------------------------------------------------------------------------------

fn keyless() -> DiagnoseOptions {
    DiagnoseOptions::new().skip_signature_check()
}

#[tokio::test]
async fn skip_signature_check_ignores_a_key_it_does_not_have() {
    let cfg = config(&hs256());
    let t = token(&TestKey::es256()).sign();
    let with_key = diagnose(&t, &cfg).await;
    assert_eq!(with_key.reason(), Some(Reason::AlgNotAllowed));

    let d = diagnose_with(&t, &cfg, &keyless()).await;
    assert!(d.findings().is_empty(), "{d}");
    assert_eq!(d.reason(), None);
    assert!(!d.is_valid(), "never valid without a verified signature");
    assert!(!d.signature_verified());
    let report = d.to_string();
    assert!(
        report.starts_with("UNVERIFIED: no problem found, but the signature was not checked"),
        "{report}"
    );
    assert_contains(&report, "Claims (not verified)");
    assert_contains(&report, "signature: (not checked: no key)");
    assert!(!report.contains("    key: "), "no key listed: {report}");
    assert!(d
        .notes()
        .iter()
        .any(|n| n.contains("the signature was not checked")));
    let json = serde_json::to_value(&d).unwrap();
    assert_eq!(json["valid"], false);
    assert_eq!(json["signature_verified"], false);
    assert_eq!(json["checked_against"]["signature_check"], false);
    assert_eq!(json["checked_against"]["trusts"][0]["keys"], json!([]));
}

#[tokio::test]
async fn skip_signature_check_finds_every_problem_but_the_signature() {
    let wrong_secret = TestKey::hmac(
        Algorithm::HS256,
        b"another secret, also 32 bytes!!!".to_vec(),
    );
    let t = token(&wrong_secret)
        .audience("api://billing")
        .claim("exp", NOW - 312)
        .sign();
    let cfg = config(&hs256());
    assert_eq!(
        codes(&diagnose(&t, &cfg).await),
        ["bad_signature", "expired", "wrong_audience"]
    );
    let d = diagnose_with(&t, &cfg, &keyless()).await;
    assert_eq!(codes(&d), ["expired", "wrong_audience"]);
    assert_eq!(d.reason(), Some(Reason::Expired));
    assert_contains(only(&d, Reason::Expired).facts(), "5 min 12 s ago");
    assert!(d.to_string().starts_with(
        "INVALID: rejected as expired (401, invalid_token); the signature was not checked"
    ));

    // What needs no key is still refused: `alg: none`, an encrypted token.
    let unsigned = token(&hs256()).header("alg", "none").sign();
    let d = diagnose_with(&unsigned, &cfg, &keyless()).await;
    assert_eq!(codes(&d), ["alg_not_allowed"]);
    let d = diagnose_with("2YotnFZFEjr1zCsicMWpAA", &cfg, &keyless()).await;
    assert_eq!(only(&d, Reason::Malformed).subject(), Some("opaque"));
}

#[tokio::test]
async fn skip_signature_check_fetches_no_keys() {
    // Port 9 (discard) is closed: a fetch would fail with keys_unavailable.
    let remote = Remote::jwks_url("http://127.0.0.1:9/jwks")
        .allow_http()
        .fetch_timeout(Duration::from_secs(2));
    let cfg = builder(Keys::remote(remote)).build().unwrap();
    let d = diagnose_with(&token(&hs256()).sign(), &cfg, &keyless()).await;
    assert!(d.findings().is_empty(), "{d}");
    assert!(!d
        .notes()
        .iter()
        .any(|n| n.contains("no keys were available")));
    let status = &cfg.key_status()[0];
    assert_eq!(
        (status.fetch_ok, status.fetch_error),
        (0, 0),
        "nothing was fetched"
    );
}
