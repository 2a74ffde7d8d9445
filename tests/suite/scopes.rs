//! Scopes and roles: `RequireScope` (`all` / `any`, `all_roles` / `any_roles`) on routes and
//! routers, the exact 403 answer, scopes from `scope` and `scp`, roles from a configured claim
//! path, handler-side checks with the `Grants` extractor, and the answers when no token was
//! verified.

use std::io::Write;
use std::sync::{Arc, Mutex};

use axum::{
    body::Body,
    response::{IntoResponse, Response},
    routing::{get, post},
    Json, Router,
};
use bytes::Bytes;
use http::{header, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};
use tower::{service_fn, Layer, ServiceExt};
use tower_token_auth::testing::TestKey;
use tower_token_auth::{
    AuthConfig, AuthConfigBuilder, AuthError, Grants, Reason, RequireScope, TokenAuthLayer,
};

const DESCRIPTION: &str = "The token lacks the scope this resource requires.";

fn builder(key: &TestKey) -> AuthConfigBuilder {
    AuthConfig::builder()
        .keys(key.keys())
        .issuer("iss")
        .audience("aud")
}

fn config(key: &TestKey) -> AuthConfig {
    builder(key).build().unwrap()
}

/// A token for `iss`/`aud` with these extra claims.
fn token(key: &TestKey, claims: Value) -> String {
    let mut b = key.token().issuer("iss").audience("aud").subject("alice");
    for (name, value) in claims.as_object().unwrap() {
        b = b.claim(name, value.clone());
    }
    b.sign()
}

async fn call(app: &Router, method: &str, path: &str, token: Option<&str>) -> Response {
    let mut req = Request::builder().method(method).uri(path);
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    app.clone()
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap()
}

async fn body_text(res: Response) -> String {
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

async fn body_json(res: Response) -> Value {
    serde_json::from_str(&body_text(res).await).unwrap()
}

fn www_authenticate(res: &Response) -> &str {
    res.headers()
        .get(header::WWW_AUTHENTICATE)
        .expect("WWW-Authenticate")
        .to_str()
        .unwrap()
}

fn reason(res: &Response) -> Option<Reason> {
    res.extensions().get::<AuthError>().map(AuthError::reason)
}

/// Asserts the full default 403 answer: status, challenge, content type, problem body, and the
/// error in the response extensions. `scope` is `None` for roles.
async fn assert_forbidden(res: Response, realm: Option<&str>, scope: Option<&str>) {
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let mut challenge = String::from("Bearer ");
    if let Some(realm) = realm {
        challenge.push_str(&format!("realm=\"{realm}\", "));
    }
    challenge.push_str(&format!(
        "error=\"insufficient_scope\", error_description=\"{DESCRIPTION}\""
    ));
    if let Some(scope) = scope {
        challenge.push_str(&format!(", scope=\"{scope}\""));
    }
    assert_eq!(www_authenticate(&res), challenge);
    assert_eq!(
        res.headers().get(header::CONTENT_TYPE).unwrap(),
        "application/problem+json"
    );
    let err = res
        .extensions()
        .get::<AuthError>()
        .expect("AuthError")
        .clone();
    assert_eq!(err.reason(), Reason::InsufficientScope);
    assert_eq!(err.required_scopes(), scope);
    let mut expected = json!({
        "type": "https://docs.rs/tower-token-auth/latest/tower_token_auth/enum.Reason.html#variant.InsufficientScope",
        "title": "Insufficient scope",
        "status": 403,
        "detail": DESCRIPTION,
        "error": "insufficient_scope",
        "reason": "insufficient_scope",
    });
    if let Some(scope) = scope {
        expected["scope"] = scope.into();
    }
    assert_eq!(body_json(res).await, expected);
}

/// Asserts the default 401 `missing` answer.
async fn assert_missing(res: Response, challenge: &str) {
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(www_authenticate(&res), challenge);
    assert_eq!(reason(&res), Some(Reason::Missing));
    let body = body_json(res).await;
    assert_eq!(body["reason"], "missing");
    assert_eq!(body["status"], 401);
    assert!(body.get("error").is_none(), "{body}");
}

fn orders_app(cfg: AuthConfig) -> Router {
    Router::new()
        .route("/orders", get(|| async { "list" }))
        .route(
            "/orders",
            post(|| async { "created" }).layer(RequireScope::all(["orders:read", "orders:write"])),
        )
        .route(
            "/reports",
            get(|| async { "report" }).layer(RequireScope::any(["reports:read", "orders:admin"])),
        )
        .layer(TokenAuthLayer::new(cfg))
}

// ---------------------------------------------------------------------------------------------
// All of / any of, on a route

#[tokio::test]
async fn route_all_of_passes_with_every_scope() {
    let key = TestKey::hs256();
    let app = orders_app(config(&key));
    let t = token(&key, json!({ "scope": "orders:write profile orders:read" }));
    let res = call(&app, "POST", "/orders", Some(&t)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body_text(res).await, "created");
}

#[tokio::test]
async fn route_all_of_rejects_a_token_missing_one_scope_with_exact_403() {
    let key = TestKey::hs256();
    let app = orders_app(config(&key));
    let t = token(&key, json!({ "scope": "orders:read" }));
    let res = call(&app, "POST", "/orders", Some(&t)).await;
    assert_forbidden(res, None, Some("orders:read orders:write")).await;
}

#[tokio::test]
async fn route_requirement_leaves_other_methods_and_routes_alone() {
    let key = TestKey::hs256();
    let app = orders_app(config(&key));
    let t = token(&key, json!({ "scope": "profile" }));
    // GET /orders has no requirement: any verified token passes.
    let res = call(&app, "GET", "/orders", Some(&t)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body_text(res).await, "list");
    // The token itself is still required there.
    let res = call(&app, "GET", "/orders", None).await;
    assert_missing(res, "Bearer").await;
}

#[tokio::test]
async fn route_any_of_passes_with_one_of_the_scopes() {
    let key = TestKey::hs256();
    let app = orders_app(config(&key));
    for scope in ["reports:read", "orders:admin", "orders:admin reports:read"] {
        let t = token(&key, json!({ "scope": scope }));
        let res = call(&app, "GET", "/reports", Some(&t)).await;
        assert_eq!(res.status(), StatusCode::OK, "scope {scope}");
    }
}

#[tokio::test]
async fn route_any_of_rejects_a_token_with_none_and_names_the_alternatives() {
    let key = TestKey::hs256();
    let app = orders_app(config(&key));
    let t = token(&key, json!({ "scope": "orders:read orders:write" }));
    let res = call(&app, "GET", "/reports", Some(&t)).await;
    assert_forbidden(res, None, Some("reports:read orders:admin")).await;
}

#[tokio::test]
async fn token_without_any_scope_claim_is_forbidden_not_unauthorized() {
    let key = TestKey::hs256();
    let app = orders_app(config(&key));
    let t = token(&key, json!({}));
    let res = call(&app, "POST", "/orders", Some(&t)).await;
    assert_forbidden(res, None, Some("orders:read orders:write")).await;
}

#[tokio::test]
async fn scope_matching_is_exact() {
    let key = TestKey::hs256();
    let app = orders_app(config(&key));
    // Prefixes, case variants and a scope glued to another do not count.
    let t = token(
        &key,
        json!({ "scope": "orders:rea ORDERS:WRITE orders:read,orders:write" }),
    );
    let res = call(&app, "POST", "/orders", Some(&t)).await;
    assert_forbidden(res, None, Some("orders:read orders:write")).await;
}

#[tokio::test]
async fn the_configured_realm_is_put_in_the_challenge() {
    let key = TestKey::hs256();
    let app = Router::new()
        .route(
            "/admin",
            post(|| async { "ok" }).layer(RequireScope::all(["orders:admin"])),
        )
        .layer(TokenAuthLayer::new(
            builder(&key).realm("shop").build().unwrap(),
        ));
    let t = token(&key, json!({ "scope": "orders:read" }));
    let res = call(&app, "POST", "/admin", Some(&t)).await;
    assert_forbidden(res, Some("shop"), Some("orders:admin")).await;
}

#[tokio::test]
async fn several_names_in_one_string_are_several_scopes() {
    let key = TestKey::hs256();
    let app = Router::new()
        .route(
            "/",
            get(|| async { "ok" }).layer(RequireScope::all(["a b", "c"])),
        )
        .layer(TokenAuthLayer::new(config(&key)));
    let t = token(&key, json!({ "scope": "a c" }));
    let res = call(&app, "GET", "/", Some(&t)).await;
    assert_forbidden(res, None, Some("a b c")).await;
    let t = token(&key, json!({ "scope": "c b a" }));
    assert_eq!(
        call(&app, "GET", "/", Some(&t)).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn empty_all_of_only_requires_a_verified_token_and_empty_any_of_admits_none() {
    let key = TestKey::hs256();
    let app = Router::new()
        .route(
            "/all",
            get(|| async { "ok" }).layer(RequireScope::all(Vec::<String>::new())),
        )
        .route(
            "/any",
            get(|| async { "ok" }).layer(RequireScope::any(Vec::<String>::new())),
        )
        .layer(TokenAuthLayer::new(config(&key)).optional());
    let t = token(&key, json!({ "scope": "x" }));
    assert_eq!(
        call(&app, "GET", "/all", Some(&t)).await.status(),
        StatusCode::OK
    );
    assert_missing(call(&app, "GET", "/all", None).await, "Bearer").await;
    // Nothing can satisfy "one of nothing": 403, and no empty `scope=""` attribute.
    let res = call(&app, "GET", "/any", Some(&t)).await;
    assert_forbidden(res, None, None).await;
}

// ---------------------------------------------------------------------------------------------
// All of / any of, on a whole router

#[tokio::test]
async fn router_all_of_protects_every_route_of_the_router() {
    let key = TestKey::hs256();
    let admin = Router::new()
        .route("/admin/users", get(|| async { "users" }))
        .route("/admin/stats", post(|| async { "stats" }))
        .route_layer(RequireScope::all(["admin:read", "admin:write"]));
    let app = Router::new()
        .route("/public", get(|| async { "public" }))
        .merge(admin)
        .layer(TokenAuthLayer::new(config(&key)));

    let weak = token(&key, json!({ "scope": "admin:read" }));
    for (method, path) in [("GET", "/admin/users"), ("POST", "/admin/stats")] {
        let res = call(&app, method, path, Some(&weak)).await;
        assert_forbidden(res, None, Some("admin:read admin:write")).await;
    }
    // A route outside the protected router only needs a valid token.
    let res = call(&app, "GET", "/public", Some(&weak)).await;
    assert_eq!(res.status(), StatusCode::OK);

    let strong = token(&key, json!({ "scope": "admin:write admin:read" }));
    let res = call(&app, "GET", "/admin/users", Some(&strong)).await;
    assert_eq!(body_text(res).await, "users");
    let res = call(&app, "POST", "/admin/stats", Some(&strong)).await;
    assert_eq!(body_text(res).await, "stats");
    // route_layer: unknown paths stay 404 rather than 403.
    let res = call(&app, "GET", "/admin/nope", Some(&weak)).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn router_any_of_protects_a_nested_router() {
    let key = TestKey::hs256();
    let reports = Router::new()
        .route("/daily", get(|| async { "daily" }))
        .route("/monthly", get(|| async { "monthly" }))
        .layer(RequireScope::any(["reports:read", "reports:admin"]));
    let app = Router::new()
        .nest("/reports", reports)
        .layer(TokenAuthLayer::new(config(&key)));

    let t = token(&key, json!({ "scope": "reports:admin" }));
    for path in ["/reports/daily", "/reports/monthly"] {
        assert_eq!(
            call(&app, "GET", path, Some(&t)).await.status(),
            StatusCode::OK
        );
    }
    let t = token(&key, json!({ "scope": "orders:read" }));
    for path in ["/reports/daily", "/reports/monthly"] {
        let res = call(&app, "GET", path, Some(&t)).await;
        assert_forbidden(res, None, Some("reports:read reports:admin")).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Where scopes come from

#[tokio::test]
async fn scopes_from_scp_string() {
    let key = TestKey::hs256();
    let app = orders_app(config(&key));
    let t = token(&key, json!({ "scp": "orders:read orders:write" }));
    assert_eq!(
        call(&app, "POST", "/orders", Some(&t)).await.status(),
        StatusCode::OK
    );
    let t = token(&key, json!({ "scp": "orders:read" }));
    let res = call(&app, "POST", "/orders", Some(&t)).await;
    assert_forbidden(res, None, Some("orders:read orders:write")).await;
}

#[tokio::test]
async fn scopes_from_scp_array() {
    let key = TestKey::hs256();
    let app = orders_app(config(&key));
    let t = token(&key, json!({ "scp": ["orders:read", "orders:write"] }));
    assert_eq!(
        call(&app, "POST", "/orders", Some(&t)).await.status(),
        StatusCode::OK
    );
    let t = token(&key, json!({ "scp": ["orders:write"] }));
    let res = call(&app, "POST", "/orders", Some(&t)).await;
    assert_forbidden(res, None, Some("orders:read orders:write")).await;
}

#[tokio::test]
async fn scopes_from_scope_and_scp_together() {
    let key = TestKey::hs256();
    let app = orders_app(config(&key));
    let t = token(
        &key,
        json!({ "scope": "orders:read", "scp": ["orders:write"] }),
    );
    assert_eq!(
        call(&app, "POST", "/orders", Some(&t)).await.status(),
        StatusCode::OK
    );
}

// ---------------------------------------------------------------------------------------------
// Roles

fn roles_app(cfg: AuthConfig) -> Router {
    Router::new()
        .route(
            "/ops",
            get(|| async { "ops" }).layer(RequireScope::any_roles(["admin", "ops"])),
        )
        .route(
            "/payouts",
            get(|| async { "payouts" }).layer(RequireScope::all_roles(["finance", "approver"])),
        )
        .layer(TokenAuthLayer::new(cfg))
}

#[tokio::test]
async fn roles_from_keycloak_realm_access_roles() {
    let key = TestKey::hs256();
    let app = roles_app(
        builder(&key)
            .roles_claim("realm_access.roles")
            .build()
            .unwrap(),
    );
    let t = token(
        &key,
        json!({ "realm_access": { "roles": ["offline_access", "ops"] } }),
    );
    assert_eq!(
        call(&app, "GET", "/ops", Some(&t)).await.status(),
        StatusCode::OK
    );
    // Roles are never named in the challenge.
    let res = call(&app, "GET", "/payouts", Some(&t)).await;
    assert_forbidden(res, None, None).await;

    let t = token(
        &key,
        json!({ "realm_access": { "roles": ["approver", "finance"] } }),
    );
    assert_eq!(
        call(&app, "GET", "/payouts", Some(&t)).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn roles_from_groups() {
    let key = TestKey::hs256();
    let app = roles_app(builder(&key).roles_claim("groups").build().unwrap());
    let t = token(&key, json!({ "groups": ["admin"] }));
    assert_eq!(
        call(&app, "GET", "/ops", Some(&t)).await.status(),
        StatusCode::OK
    );
    let t = token(&key, json!({ "groups": ["users"] }));
    let res = call(&app, "GET", "/ops", Some(&t)).await;
    assert_forbidden(res, None, None).await;
}

#[tokio::test]
async fn roles_at_another_path_or_in_scopes_do_not_count() {
    let key = TestKey::hs256();
    let app = roles_app(
        builder(&key)
            .roles_claim("realm_access.roles")
            .build()
            .unwrap(),
    );
    // A top-level `roles` claim, a `groups` claim and a scope named like the role: none is the
    // configured claim path.
    let t = token(
        &key,
        json!({ "roles": ["admin"], "groups": ["admin"], "scope": "admin ops" }),
    );
    let res = call(&app, "GET", "/ops", Some(&t)).await;
    assert_forbidden(res, None, None).await;
}

#[tokio::test]
async fn scope_and_role_layers_stack() {
    let key = TestKey::hs256();
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .route_layer(RequireScope::all(["payouts:read"]))
        .route_layer(RequireScope::all_roles(["finance"]))
        .layer(TokenAuthLayer::new(config(&key)));
    let both = token(
        &key,
        json!({ "scope": "payouts:read", "roles": ["finance"] }),
    );
    assert_eq!(
        call(&app, "GET", "/", Some(&both)).await.status(),
        StatusCode::OK
    );
    let no_role = token(&key, json!({ "scope": "payouts:read" }));
    assert_forbidden(call(&app, "GET", "/", Some(&no_role)).await, None, None).await;
    let no_scope = token(&key, json!({ "roles": ["finance"] }));
    assert_forbidden(
        call(&app, "GET", "/", Some(&no_scope)).await,
        None,
        Some("payouts:read"),
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// Handler-side checks and the Grants extractor

async fn create_order(grants: Grants) -> Result<&'static str, AuthError> {
    grants.require_all(["orders:write"])?;
    Ok("created")
}

async fn refund(grants: Grants) -> Result<&'static str, AuthError> {
    grants.require_any(["orders:refund", "orders:admin"])?;
    grants.require_any_role(["support", "admin"])?;
    Ok("refunded")
}

async fn whoami(grants: Grants) -> Json<Value> {
    Json(json!({ "scopes": grants.scopes(), "roles": grants.roles() }))
}

async fn landing(grants: Option<Grants>) -> String {
    match grants {
        Some(g) => format!("{} scopes", g.scopes().len()),
        None => "anonymous".into(),
    }
}

fn handler_app(cfg: AuthConfig, optional: bool) -> Router {
    let layer = TokenAuthLayer::new(cfg);
    let layer = if optional { layer.optional() } else { layer };
    Router::new()
        .route("/orders", post(create_order))
        .route("/refund", post(refund))
        .route("/whoami", get(whoami))
        .route("/", get(landing))
        .layer(layer)
}

#[tokio::test]
async fn handler_require_all_passes_and_rejects_with_exact_403() {
    let key = TestKey::hs256();
    let app = handler_app(config(&key), false);
    let t = token(&key, json!({ "scp": ["orders:write"] }));
    let res = call(&app, "POST", "/orders", Some(&t)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body_text(res).await, "created");

    let t = token(&key, json!({ "scp": ["orders:read"] }));
    let res = call(&app, "POST", "/orders", Some(&t)).await;
    assert_forbidden(res, None, Some("orders:write")).await;
}

#[tokio::test]
async fn handler_require_any_and_role_checks() {
    let key = TestKey::hs256();
    let app = handler_app(config(&key), false);
    let ok = token(
        &key,
        json!({ "scope": "orders:admin", "roles": ["support"] }),
    );
    assert_eq!(
        call(&app, "POST", "/refund", Some(&ok)).await.status(),
        StatusCode::OK
    );
    let no_scope = token(
        &key,
        json!({ "scope": "orders:read", "roles": ["support"] }),
    );
    let res = call(&app, "POST", "/refund", Some(&no_scope)).await;
    assert_forbidden(res, None, Some("orders:refund orders:admin")).await;
    let no_role = token(&key, json!({ "scope": "orders:refund", "roles": ["user"] }));
    let res = call(&app, "POST", "/refund", Some(&no_role)).await;
    assert_forbidden(res, None, None).await;
}

#[tokio::test]
async fn grants_extractor_gives_scopes_and_roles() {
    let key = TestKey::hs256();
    let app = handler_app(builder(&key).roles_claim("groups").build().unwrap(), false);
    let t = token(
        &key,
        json!({ "scope": "a b", "scp": ["c"], "groups": ["g1", "g2"] }),
    );
    let res = call(&app, "GET", "/whoami", Some(&t)).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        body_json(res).await,
        json!({ "scopes": ["a", "b", "c"], "roles": ["g1", "g2"] })
    );
}

#[tokio::test]
async fn grants_extractor_without_token_answers_401_missing() {
    let key = TestKey::hs256();
    let app = handler_app(config(&key), true);
    let res = call(&app, "GET", "/whoami", None).await;
    assert_missing(res, "Bearer").await;
    let res = call(&app, "POST", "/orders", None).await;
    assert_missing(res, "Bearer").await;
}

#[tokio::test]
async fn optional_grants_extractor_is_none_without_token() {
    let key = TestKey::hs256();
    let app = handler_app(config(&key), true);
    let res = call(&app, "GET", "/", None).await;
    assert_eq!(body_text(res).await, "anonymous");
    let t = token(&key, json!({ "scope": "a b" }));
    let res = call(&app, "GET", "/", Some(&t)).await;
    assert_eq!(body_text(res).await, "2 scopes");
}

#[tokio::test]
async fn grants_extractor_without_any_layer_answers_401_missing() {
    let app = Router::new().route("/whoami", get(whoami));
    let res = call(&app, "GET", "/whoami", None).await;
    assert_missing(res, "Bearer").await;
}

#[tokio::test]
async fn auth_error_into_response_is_the_default_problem_response() {
    let res = AuthError::new(Reason::Expired).into_response();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        www_authenticate(&res),
        "Bearer error=\"invalid_token\", error_description=\"The token has expired; obtain a new one.\""
    );
    assert_eq!(reason(&res), Some(Reason::Expired));
    assert_eq!(body_json(res).await["reason"], "expired");
}

// ---------------------------------------------------------------------------------------------
// No verified token in front of RequireScope

#[tokio::test]
async fn require_scope_without_token_auth_layer_answers_401_missing() {
    let key = TestKey::hs256();
    let app = Router::new().route(
        "/admin",
        post(|| async { "ok" }).layer(RequireScope::all(["orders:admin"])),
    );
    // Even a valid token with the scope: nothing verified it, so nothing is granted.
    let t = token(&key, json!({ "scope": "orders:admin" }));
    assert_missing(call(&app, "POST", "/admin", Some(&t)).await, "Bearer").await;
    assert_missing(call(&app, "POST", "/admin", None).await, "Bearer").await;
}

#[tokio::test]
async fn require_scope_outside_token_auth_layer_rejects_every_request() {
    let key = TestKey::hs256();
    // Wrong order: the last `.layer` is the outermost, so RequireScope runs first.
    let app = Router::new()
        .route("/", get(|| async { "ok" }))
        .layer(TokenAuthLayer::new(config(&key)))
        .layer(RequireScope::all(["a"]));
    let t = token(&key, json!({ "scope": "a" }));
    assert_missing(call(&app, "GET", "/", Some(&t)).await, "Bearer").await;
}

#[tokio::test]
async fn require_scope_behind_optional_layer_without_token_answers_401_missing_with_realm() {
    let key = TestKey::hs256();
    let app = Router::new()
        .route("/", get(|| async { "public" }))
        .route(
            "/admin",
            get(|| async { "ok" }).layer(RequireScope::all(["admin"])),
        )
        .layer(TokenAuthLayer::new(builder(&key).realm("api").build().unwrap()).optional());
    assert_eq!(call(&app, "GET", "/", None).await.status(), StatusCode::OK);
    assert_missing(
        call(&app, "GET", "/admin", None).await,
        "Bearer realm=\"api\"",
    )
    .await;
}

#[tokio::test]
async fn require_scope_behind_anonymous_on_invalid_answers_with_the_token_error() {
    let key = TestKey::hs256();
    let app = Router::new()
        .route(
            "/admin",
            get(|| async { "ok" }).layer(RequireScope::all(["admin"])),
        )
        .layer(TokenAuthLayer::new(config(&key)).anonymous_on_invalid());
    let expired = key
        .token()
        .issuer("iss")
        .audience("aud")
        .scope("admin")
        .expired_for(std::time::Duration::from_secs(600))
        .sign();
    let res = call(&app, "GET", "/admin", Some(&expired)).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(reason(&res), Some(Reason::Expired));
    assert_eq!(
        www_authenticate(&res),
        "Bearer error=\"invalid_token\", error_description=\"The token has expired; obtain a new one.\""
    );
    assert_missing(call(&app, "GET", "/admin", None).await, "Bearer").await;
}

// ---------------------------------------------------------------------------------------------
// Responders

fn json_responder(err: &AuthError, _parts: &http::request::Parts) -> Response<Body> {
    let body = json!({ "code": err.reason().code(), "needs": err.required_scopes() });
    (err.status(), Json(body)).into_response()
}

#[tokio::test]
async fn custom_token_auth_responder_with_default_require_scope() {
    let key = TestKey::hs256();
    let app = Router::new()
        .route(
            "/admin",
            get(|| async { "ok" }).layer(RequireScope::all(["admin"])),
        )
        .layer(TokenAuthLayer::new(config(&key)).with_responder(json_responder));
    // The token layer's own rejections use its custom responder…
    let res = call(&app, "GET", "/admin", None).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(res.headers().get(header::WWW_AUTHENTICATE).is_none());
    assert_eq!(reason(&res), Some(Reason::Missing));
    assert_eq!(
        body_json(res).await,
        json!({ "code": "missing", "needs": null })
    );
    // …and RequireScope's use its own (here the default).
    let t = token(&key, json!({ "scope": "user" }));
    let res = call(&app, "GET", "/admin", Some(&t)).await;
    assert_forbidden(res, None, Some("admin")).await;
    let t = token(&key, json!({ "scope": "admin" }));
    assert_eq!(
        call(&app, "GET", "/admin", Some(&t)).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn custom_require_scope_responder_builds_the_403_and_401() {
    let key = TestKey::hs256();
    let app = Router::new()
        .route(
            "/admin",
            get(|| async { "ok" })
                .layer(RequireScope::any(["admin", "root"]).with_responder(json_responder)),
        )
        .layer(
            TokenAuthLayer::new(config(&key))
                .with_responder(json_responder)
                .optional(),
        );
    let t = token(&key, json!({ "scope": "user" }));
    let res = call(&app, "GET", "/admin", Some(&t)).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(res.headers().get(header::WWW_AUTHENTICATE).is_none());
    let err = res.extensions().get::<AuthError>().unwrap().clone();
    assert_eq!(err.reason(), Reason::InsufficientScope);
    assert_eq!(err.required_scopes(), Some("admin root"));
    assert_eq!(
        body_json(res).await,
        json!({ "code": "insufficient_scope", "needs": "admin root" })
    );
    // Without a token (optional layer) RequireScope's responder answers the 401.
    let res = call(&app, "GET", "/admin", None).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(reason(&res), Some(Reason::Missing));
    assert_eq!(
        body_json(res).await,
        json!({ "code": "missing", "needs": null })
    );
}

// ---------------------------------------------------------------------------------------------
// Plain tower, and the log event

#[tokio::test]
async fn works_as_plain_tower_layers_around_a_service_fn() {
    let key = TestKey::hs256();
    let inner = service_fn(|_req: Request<Full<Bytes>>| async {
        Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(Bytes::from_static(
            b"inner",
        ))))
    });
    let svc = TokenAuthLayer::new(config(&key)).layer(RequireScope::all(["a"]).layer(inner));
    let req = |t: &str| {
        Request::get("/")
            .header("authorization", format!("Bearer {t}"))
            .body(Full::new(Bytes::new()))
            .unwrap()
    };
    let ok = token(&key, json!({ "scope": "a" }));
    let res = svc.clone().oneshot(req(&ok)).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let no = token(&key, json!({ "scope": "b" }));
    let res = svc.clone().oneshot(req(&no)).await.unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        res.headers().get(header::WWW_AUTHENTICATE).unwrap(),
        &format!(
            "Bearer error=\"insufficient_scope\", error_description=\"{DESCRIPTION}\", scope=\"a\""
        )
    );
    let body = res.into_body().collect().await.unwrap().to_bytes();
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["scope"], "a");
}

#[derive(Clone)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn one_log_event_per_scope_rejection_without_the_token() {
    let buf = Arc::new(Mutex::new(Vec::new()));
    let writer = Capture(buf.clone());
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let key = TestKey::hs256();
    let app = orders_app(config(&key));
    let t = token(&key, json!({ "scope": "orders:read profile" }));
    let res = call(&app, "POST", "/orders", Some(&t)).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);

    let log = String::from_utf8(buf.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("tower_token_auth"))
        .collect();
    assert_eq!(lines.len(), 1, "{log}");
    let line = lines[0];
    assert!(line.contains("reason=\"insufficient_scope\""), "{line}");
    assert!(line.contains("required=orders:read orders:write"), "{line}");
    assert!(line.contains("present=2"), "{line}");
    for (i, part) in t.split('.').enumerate() {
        assert!(
            !log.contains(part),
            "segment {i} of the token is in the log"
        );
    }
}
