//! gRPC: `TokenAuthLayer` with the `GrpcResponder` in front of a real tonic server on
//! 127.0.0.1, called by a real tonic client (HTTP/2).
//!
//! Accepted calls reach the handler with the verified claims and grants in the tonic request
//! extensions; rejected calls arrive at the client as a `tonic::Status` with the gRPC code of
//! the reason (16 UNAUTHENTICATED, 7 PERMISSION_DENIED, 14 UNAVAILABLE), the reason's fixed
//! description as the message, and the RFC 6750 challenge in the status metadata.
//!
//! The service is tonic's hello-world written by hand (prost structs, the routing that
//! `tonic-build` would generate), so no `protoc` is needed.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::uri::PathAndQuery;
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::transport::{server::TcpIncoming, Channel, Server};
use tonic::{Code, Request, Response, Status};
use tonic_prost::ProstCodec;
use tower::Service;
use tower_token_auth::keys::remote::Remote;
use tower_token_auth::testing::TestKey;
use tower_token_auth::{
    AuthConfig, Claims, Grants, GrpcResponder, Keys, RequireScope, StandardClaims, TokenAuthLayer,
};

const ISSUER: &str = "https://issuer.test";
const AUDIENCE: &str = "api://greeter";
const REALM: &str = "greeter";
const SAY_HELLO: &str = "/helloworld.Greeter/SayHello";

#[derive(Clone, PartialEq, prost::Message)]
struct HelloRequest {
    #[prost(string, tag = "1")]
    name: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct HelloReply {
    #[prost(string, tag = "1")]
    message: String,
}

/// Answers with what it found in the request extensions: the subject of the verified claims
/// and the granted scopes.
async fn say_hello(request: Request<HelloRequest>) -> Result<Response<HelloReply>, Status> {
    let claims = Claims::<StandardClaims>::from_extensions(request.extensions())
        .ok_or_else(|| Status::internal("no claims in the request extensions"))?;
    let grants = Grants::from_extensions(request.extensions())
        .ok_or_else(|| Status::internal("no grants in the request extensions"))?;
    let message = format!(
        "hello {}; sub={}; scopes={}",
        request.get_ref().name,
        claims.sub.as_deref().unwrap_or("-"),
        grants.scopes().join(" "),
    );
    Ok(Response::new(HelloReply { message }))
}

/// The server side `tonic-build` would generate for `service Greeter { rpc SayHello .. }`.
#[derive(Clone)]
struct GreeterServer;

impl NamedService for GreeterServer {
    const NAME: &'static str = "helloworld.Greeter";
}

impl Service<http::Request<Body>> for GreeterServer {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        Box::pin(async move {
            Ok(match req.uri().path() {
                SAY_HELLO => {
                    let mut grpc = tonic::server::Grpc::new(ProstCodec::default());
                    grpc.unary(tower::service_fn(say_hello), req).await
                }
                _ => Status::unimplemented("unknown method").into_http(),
            })
        })
    }
}

/// Serves the Greeter on an ephemeral port: `TokenAuthLayer` outermost, then
/// `RequireScope::all(["greet"])`, both answering with `GrpcResponder`; both read the realm
/// of the configuration.
fn serve(config: AuthConfig) -> SocketAddr {
    let incoming = TcpIncoming::bind(([127, 0, 0, 1], 0).into()).expect("bind 127.0.0.1:0");
    let addr = incoming.local_addr().expect("local address");
    let server = Server::builder()
        .layer(TokenAuthLayer::new(config).with_responder(GrpcResponder::new()))
        .layer(RequireScope::all(["greet"]).with_responder(GrpcResponder::new()))
        .add_service(GreeterServer)
        .serve_with_incoming(incoming);
    tokio::spawn(server);
    addr
}

fn config(key: &TestKey) -> AuthConfig {
    AuthConfig::builder()
        .keys(key.keys())
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .realm(REALM)
        .build()
        .expect("valid configuration")
}

/// Calls `SayHello` with a real tonic client, sending each of `authorization` as one
/// `authorization` metadata entry.
async fn say_hello_call(
    addr: SocketAddr,
    authorization: &[&str],
) -> Result<Response<HelloReply>, Status> {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("connect to the test server");
    let mut client = tonic::client::Grpc::new(channel);
    client.ready().await.expect("client ready");
    let mut request = Request::new(HelloRequest { name: "Ann".into() });
    for value in authorization {
        request
            .metadata_mut()
            .append("authorization", value.parse().expect("ASCII metadata"));
    }
    client
        .unary(
            request,
            PathAndQuery::from_static(SAY_HELLO),
            ProstCodec::default(),
        )
        .await
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn www_authenticate(status: &Status) -> &str {
    status
        .metadata()
        .get("www-authenticate")
        .expect("www-authenticate in the status metadata")
        .to_str()
        .expect("ASCII challenge")
}

#[tokio::test]
async fn valid_token_reaches_the_handler_with_claims_and_grants() {
    let key = TestKey::hs256();
    let addr = serve(config(&key));
    let token = key
        .token()
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .subject("alice")
        .scope("greet orders:read")
        .sign();

    let reply = say_hello_call(addr, &[&bearer(&token)])
        .await
        .expect("the call is accepted");

    assert_eq!(
        reply.get_ref().message,
        "hello Ann; sub=alice; scopes=greet orders:read"
    );
}

#[tokio::test]
async fn missing_token_is_unauthenticated() {
    let key = TestKey::hs256();
    let addr = serve(config(&key));

    let status = say_hello_call(addr, &[]).await.expect_err("rejected");

    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), "This resource requires a bearer token.");
    assert_eq!(www_authenticate(&status), r#"Bearer realm="greeter""#);
}

#[tokio::test]
async fn expired_token_is_unauthenticated() {
    let key = TestKey::hs256();
    let addr = serve(config(&key));
    let token = key
        .token()
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .subject("alice")
        .scope("greet")
        .expired_for(Duration::from_secs(600))
        .sign();

    let status = say_hello_call(addr, &[&bearer(&token)])
        .await
        .expect_err("rejected");

    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), "The token has expired; obtain a new one.");
    assert_eq!(
        www_authenticate(&status),
        r#"Bearer realm="greeter", error="invalid_token", error_description="The token has expired; obtain a new one.""#
    );
}

#[tokio::test]
async fn token_signed_by_another_key_is_unauthenticated() {
    let key = TestKey::hs256();
    let addr = serve(config(&key));
    let token = TestKey::hs256()
        .token()
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .scope("greet")
        .sign();

    let status = say_hello_call(addr, &[&bearer(&token)])
        .await
        .expect_err("rejected");

    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(status.message(), "The token signature is invalid.");
}

/// `invalid_request` maps to 16 as well (not 3 INVALID_ARGUMENT): the credentials are at
/// fault, not the method's arguments. The challenge still names `invalid_request`.
#[tokio::test]
async fn two_authorization_entries_are_unauthenticated_invalid_request() {
    let key = TestKey::hs256();
    let addr = serve(config(&key));
    let token = key
        .token()
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .scope("greet")
        .sign();

    let status = say_hello_call(addr, &[&bearer(&token), &bearer(&token)])
        .await
        .expect_err("rejected");

    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(
        www_authenticate(&status).contains(r#"error="invalid_request""#),
        "{}",
        www_authenticate(&status)
    );
}

#[tokio::test]
async fn insufficient_scope_is_permission_denied() {
    let key = TestKey::hs256();
    let addr = serve(config(&key));
    let token = key
        .token()
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .subject("alice")
        .scope("orders:read")
        .sign();

    let status = say_hello_call(addr, &[&bearer(&token)])
        .await
        .expect_err("rejected");

    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(
        status.message(),
        "The token lacks the scope this resource requires."
    );
    assert_eq!(
        www_authenticate(&status),
        r#"Bearer realm="greeter", error="insufficient_scope", error_description="The token lacks the scope this resource requires.", scope="greet""#
    );
}

#[tokio::test]
async fn unreachable_key_endpoint_is_unavailable_with_pushback() {
    // A JWKS URL on a port where nothing listens: the first fetch fails, no keys are loaded.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let jwks_url = format!("http://{}/jwks.json", closed.local_addr().expect("addr"));
    drop(closed);
    let config = AuthConfig::builder()
        .keys(Keys::remote(
            Remote::jwks_url(jwks_url)
                .allow_http()
                .fetch_timeout(Duration::from_secs(2)),
        ))
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .build()
        .expect("valid configuration");
    let addr = serve(config);
    let token = TestKey::es256()
        .with_kid("k1")
        .token()
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .scope("greet")
        .sign();

    let status = say_hello_call(addr, &[&bearer(&token)])
        .await
        .expect_err("rejected");

    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(
        status.message(),
        "Token signing keys are temporarily unavailable; retry later."
    );
    assert!(status.metadata().get("www-authenticate").is_none());
    let pushback: u64 = status
        .metadata()
        .get("grpc-retry-pushback-ms")
        .expect("grpc-retry-pushback-ms")
        .to_str()
        .expect("ASCII")
        .parse()
        .expect("milliseconds");
    assert!(
        pushback >= 1000 && pushback.is_multiple_of(1000),
        "pushback {pushback}"
    );
}
