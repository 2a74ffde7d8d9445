//! gRPC rejections: [`GrpcResponder`] answers a rejected call the way a gRPC server does, so
//! a tonic (or any gRPC) client sees a proper [`Status`] instead of a transport error.
//!
//! gRPC runs over HTTP/2 and answers HTTP 200 even for failed calls; the outcome is in the
//! `grpc-status` and `grpc-message` headers. [`GrpcResponder`] builds such a *trailers-only*
//! response (headers only, empty body, as the gRPC spec allows for a call that fails before
//! any message):
//!
//! ```text
//! :status: 200
//! content-type: application/grpc
//! grpc-status: 16
//! grpc-message: The token has expired; obtain a new one.
//! www-authenticate: Bearer realm="api", error="invalid_token", error_description="The token has expired; obtain a new one."
//! ```
//!
//! | reason | `grpc-status` |
//! |---|---|
//! | `missing`, `invalid_request` and every token problem (`too_large`, `malformed` … `revoked`, `inactive`) | 16 `UNAUTHENTICATED` |
//! | `insufficient_scope` | 7 `PERMISSION_DENIED` |
//! | `keys_unavailable`, `revocation_unavailable`, `introspection_unavailable`, `replay_unavailable` | 14 `UNAVAILABLE`, with `grpc-retry-pushback-ms` |
//!
//! `invalid_request` (two tokens, an empty token, two `Authorization` headers) is answered with
//! 16, not 3 `INVALID_ARGUMENT`: gRPC reserves `INVALID_ARGUMENT` for the method's arguments,
//! and what is wrong is the call's credentials. The `www-authenticate` header still says
//! `error="invalid_request"` for clients that need to tell the cases apart.
//!
//! `grpc-message` is the reason's fixed [`description`](crate::Reason::description),
//! percent-encoded as the gRPC spec requires: nothing from the token, nothing about keys.
//! `www-authenticate` is the RFC 6750 challenge the default responder sends
//! ([`response::www_authenticate`](crate::response::www_authenticate)), with the realm and
//! RFC 9728 `resource_metadata` URL of the configuration; tonic hands it to the
//! client in [`Status::metadata`]. For the 503 reasons, `grpc-retry-pushback-ms` (the server
//! pushback of gRPC's retry design, gRFC A6) carries the `Retry-After` of the HTTP answer in
//! milliseconds; clients with a retry policy wait that long before retrying. As with every
//! responder, the layer puts the [`AuthError`] in the response extensions.
//!
//! # With tonic
//!
//! Put [`TokenAuthLayer`](crate::TokenAuthLayer) in front of the whole server with
//! `Server::builder().layer(..)`. The crate does not depend on tonic: the responder works for
//! every response body that implements [`Default`], and `tonic::body::Body` does.
//!
//! The verified claims reach the handlers: tonic copies the HTTP request extensions into
//! [`tonic::Request::extensions`], so a handler reads
//! `Claims::<StandardClaims>::from_extensions(request.extensions())` (the claims type of the
//! layer, see [`TokenAuthLayer::with_claims`](crate::TokenAuthLayer::with_claims)) and
//! `Grants::from_extensions(request.extensions())`. Behind a required layer they are always there.
//!
//! ```no_run
//! use tonic::{service::Routes, transport::Server, Request, Status};
//! use tower_token_auth::{AuthConfig, Claims, GrpcResponder, Keys, RequireScope, StandardClaims, TokenAuthLayer};
//!
//! async fn serve(routes: Routes, keys: Keys) -> Result<(), Box<dyn std::error::Error>> {
//!     let cfg = AuthConfig::builder()
//!         .keys(keys)
//!         .issuer("https://login.example.com")
//!         .audience("api://greeter")
//!         .realm("greeter") // in every challenge, of both layers
//!         .build()?;
//!     Server::builder()
//!         // outermost: verifies the token of every call
//!         .layer(TokenAuthLayer::new(cfg).with_responder(GrpcResponder::new()))
//!         // then: every call needs the scope `greet` (7 PERMISSION_DENIED otherwise)
//!         .layer(RequireScope::all(["greet"]).with_responder(GrpcResponder::new()))
//!         .add_routes(routes)
//!         .serve("127.0.0.1:50051".parse()?)
//!         .await?;
//!     Ok(())
//! }
//!
//! // In a handler (generated trait method or hand-written service):
//! fn caller<M>(request: &Request<M>) -> Result<String, Status> {
//!     let claims = Claims::<StandardClaims>::from_extensions(request.extensions())
//!         .ok_or_else(|| Status::unauthenticated("no verified token"))?;
//!     Ok(claims.sub.clone().unwrap_or_default())
//! }
//! ```
//!
//! `examples/grpc.rs` is a complete tonic server, and `tests/suite/grpc.rs` drives one with a real
//! tonic client.
//!
//! [`Status`]: https://docs.rs/tonic/latest/tonic/struct.Status.html
//! [`Status::metadata`]: https://docs.rs/tonic/latest/tonic/struct.Status.html#method.metadata
//! [`tonic::Request::extensions`]: https://docs.rs/tonic/latest/tonic/struct.Request.html#method.extensions

use std::fmt::Write as _;

use http::header::{HeaderName, HeaderValue, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::request::Parts;
use http::Response;

use crate::error::{AuthError, Reason};
use crate::response::{www_authenticate, Responder, DEFAULT_RETRY_AFTER};

// gRPC status codes (3 `INVALID_ARGUMENT` is deliberately not used: see the module docs).
const PERMISSION_DENIED: i32 = 7;
const UNAVAILABLE: i32 = 14;
const UNAUTHENTICATED: i32 = 16;

const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
const GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");
const GRPC_RETRY_PUSHBACK_MS: HeaderName = HeaderName::from_static("grpc-retry-pushback-ms");

/// The gRPC status code a rejection is answered with: 16 `UNAUTHENTICATED`, 7
/// `PERMISSION_DENIED` for [`Reason::InsufficientScope`], 14 `UNAVAILABLE` for the 503
/// reasons (see the [module docs](self)). Handy for turning an [`AuthError`] into a
/// `tonic::Status` in a handler: `Status::new(Code::from(status_code(err.reason())), ..)`.
///
/// ```
/// use tower_token_auth::{grpc::status_code, Reason};
///
/// assert_eq!(status_code(Reason::Expired), 16);
/// assert_eq!(status_code(Reason::InvalidRequest), 16);
/// assert_eq!(status_code(Reason::InsufficientScope), 7);
/// assert_eq!(status_code(Reason::KeysUnavailable), 14);
/// assert_eq!(tonic::Code::from(status_code(Reason::Missing)), tonic::Code::Unauthenticated);
/// ```
pub fn status_code(reason: Reason) -> i32 {
    match reason {
        Reason::InsufficientScope => PERMISSION_DENIED,
        Reason::KeysUnavailable
        | Reason::RevocationUnavailable
        | Reason::IntrospectionUnavailable
        | Reason::ReplayUnavailable => UNAVAILABLE,
        _ => UNAUTHENTICATED,
    }
}

/// A [`Responder`] for gRPC servers (tonic or any other): HTTP 200, `content-type:
/// application/grpc`, `grpc-status` 16 / 7 / 14, a percent-encoded `grpc-message`, the RFC 6750
/// `www-authenticate` challenge and an empty body; see the [module docs](self). The realm and
/// `resource_metadata` URL of the challenge are those of the configuration of the
/// [`TokenAuthLayer`](crate::TokenAuthLayer) that ran for the call
/// ([`ChallengeParams`](crate::response::ChallengeParams)).
///
/// It answers for any response body type `B: Default` (`tonic::body::Body`, axum's `Body`,
/// `String`, …). Use it with [`TokenAuthLayer::with_responder`](crate::TokenAuthLayer::with_responder)
/// and with [`RequireScope::with_responder`](crate::RequireScope::with_responder):
///
/// ```
/// use tower_token_auth::{AuthConfig, GrpcResponder, Keys, RequireScope, TokenAuthLayer};
///
/// # fn main() -> Result<(), tower_token_auth::ConfigError> {
/// let cfg = AuthConfig::builder()
///     .keys(Keys::hmac(b"0123456789abcdef0123456789abcdef"))
///     .issuer("https://issuer.example")
///     .audience("api")
///     .build()?;
/// let auth = TokenAuthLayer::new(cfg).with_responder(GrpcResponder::new());
/// let scope = RequireScope::all(["orders:read"]).with_responder(GrpcResponder::new());
/// # Ok(()) }
/// ```
///
/// The response it builds, behind a layer configured with `.realm("shop")`:
///
/// ```
/// use http::{Request, Response};
/// use tower::{service_fn, Layer, ServiceExt};
/// use tower_token_auth::{AuthConfig, GrpcResponder, Keys, TokenAuthLayer};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let cfg = AuthConfig::builder()
///     .keys(Keys::hmac([7u8; 32]))
///     .issuer("https://issuer.example")
///     .audience("api")
///     .realm("shop")
///     .build()?;
/// let svc = TokenAuthLayer::new(cfg)
///     .with_responder(GrpcResponder::new())
///     .layer(service_fn(|_req: Request<String>| async {
///         Ok::<_, std::convert::Infallible>(Response::new(String::new()))
///     }));
/// // A call without token.
/// let res = svc.oneshot(Request::post("/shop.Orders/List").body(String::new())?).await?;
///
/// assert_eq!(res.status(), 200);
/// assert_eq!(res.headers()["content-type"], "application/grpc");
/// assert_eq!(res.headers()["grpc-status"], "16");
/// assert_eq!(res.headers()["grpc-message"], "This resource requires a bearer token.");
/// assert_eq!(res.headers()["www-authenticate"], r#"Bearer realm="shop""#);
/// assert!(res.body().is_empty());
/// # Ok(()) }
/// ```
#[derive(Clone, Copy, Debug, Default)]
#[non_exhaustive]
pub struct GrpcResponder;

impl GrpcResponder {
    /// The gRPC responder. Its challenges carry the realm and `resource_metadata` URL of the
    /// configuration of the layer that ran for the call.
    ///
    /// ```
    /// use tower_token_auth::{AuthError, GrpcResponder, Reason, Responder};
    ///
    /// let (parts, ()) = http::Request::post("/x.Y/Z").body(()).unwrap().into_parts();
    /// let res: http::Response<String> =
    ///     GrpcResponder::new().respond(&AuthError::new(Reason::Expired), &parts);
    /// assert_eq!(res.headers()["grpc-status"], "16");
    /// // No layer ran for these parts: no realm.
    /// assert!(res.headers()["www-authenticate"].to_str().unwrap().starts_with(r#"Bearer error="invalid_token""#));
    /// ```
    pub fn new() -> Self {
        GrpcResponder
    }
}

impl<B: Default> Responder<B> for GrpcResponder {
    fn respond(&self, error: &AuthError, parts: &Parts) -> Response<B> {
        let reason = error.reason();
        let mut res = Response::new(B::default());
        let headers = res.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        headers.insert(GRPC_STATUS, HeaderValue::from(status_code(reason)));
        if let Ok(message) = HeaderValue::from_str(&percent_encode(reason.description())) {
            headers.insert(GRPC_MESSAGE, message);
        }
        if let Some(challenge) = www_authenticate(error, parts) {
            headers.insert(WWW_AUTHENTICATE, challenge);
        }
        if reason.is_unavailable() {
            let secs = error.retry_after().unwrap_or(DEFAULT_RETRY_AFTER);
            headers.insert(
                GRPC_RETRY_PUSHBACK_MS,
                HeaderValue::from(secs.saturating_mul(1000)),
            );
        }
        res
    }
}

/// Percent-encodes a `grpc-message` value as the gRPC HTTP/2 spec says: every UTF-8 byte
/// outside `0x20..=0x7E`, and `%` itself, becomes `%XX`.
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        if (0x20..=0x7E).contains(&b) && b != b'%' {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encoding_follows_the_grpc_spec() {
        assert_eq!(percent_encode("plain text; ok."), "plain text; ok.");
        assert_eq!(percent_encode("100%"), "100%25");
        assert_eq!(percent_encode("a\nb\tc"), "a%0Ab%09c");
        assert_eq!(percent_encode("é"), "%C3%A9");
        assert_eq!(percent_encode("\u{7f}"), "%7F");
    }

    #[test]
    fn every_description_is_a_valid_grpc_message() {
        for reason in Reason::ALL {
            let encoded = percent_encode(reason.description());
            assert!(HeaderValue::from_str(&encoded).is_ok(), "{reason:?}");
        }
    }

    #[test]
    fn unavailable_reasons_carry_a_pushback() {
        let (parts, ()) = http::Request::new(()).into_parts();
        let err = AuthError::new(Reason::KeysUnavailable).with_retry_after(2);
        let res: Response<String> = GrpcResponder::new().respond(&err, &parts);
        assert_eq!(res.headers()[GRPC_STATUS], "14");
        assert_eq!(res.headers()[GRPC_RETRY_PUSHBACK_MS], "2000");
        assert!(res.headers().get(WWW_AUTHENTICATE).is_none());
    }
}
