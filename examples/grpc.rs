//! gRPC: a tonic `Greeter` server behind `TokenAuthLayer` with the `GrpcResponder`.
//!
//! ```text
//! cargo run --example grpc                # PORT=50051 by default
//!
//! options:
//!   -h, --help   print this help
//! environment:
//!   PORT         the port to listen on, on 127.0.0.1 (default 50051)
//! ```
//!
//! It makes a random HS256 key at start-up, prints a valid token and a `grpcurl` line, and
//! serves `helloworld.Greeter/SayHello` on 127.0.0.1. A call without a valid token fails with
//! `Code: Unauthenticated` (`grpc-status: 16`) and the reason in `grpc-message`; the handler
//! reads the caller's claims from the request extensions.
//!
//! The service is tonic's hello-world, written by hand so the example needs no `protoc`: the
//! messages are prost structs and [`GreeterServer`] is what `tonic-build` would generate. To
//! call it with `grpcurl`, save this as `helloworld.proto`:
//!
//! ```proto
//! syntax = "proto3";
//! package helloworld;
//! service Greeter { rpc SayHello (HelloRequest) returns (HelloReply); }
//! message HelloRequest { string name = 1; }
//! message HelloReply { string message = 1; }
//! ```

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tonic::body::Body;
use tonic::server::NamedService;
use tonic::transport::{server::TcpIncoming, Server};
use tonic::{Request, Response, Status};
use tonic_prost::ProstCodec;
use tower::Service;
use tower_token_auth::testing::TestKey;
use tower_token_auth::{AuthConfig, Claims, GrpcResponder, StandardClaims, TokenAuthLayer};

const ISSUER: &str = "https://grpc.local";
const AUDIENCE: &str = "api://greeter";

/// `message HelloRequest { string name = 1; }`
#[derive(Clone, PartialEq, prost::Message)]
pub struct HelloRequest {
    /// Who to greet.
    #[prost(string, tag = "1")]
    pub name: String,
}

/// `message HelloReply { string message = 1; }`
#[derive(Clone, PartialEq, prost::Message)]
pub struct HelloReply {
    /// The greeting.
    #[prost(string, tag = "1")]
    pub message: String,
}

/// The handler. `TokenAuthLayer` put the verified claims in the HTTP request extensions and
/// tonic copied them into the `tonic::Request` extensions.
async fn say_hello(request: Request<HelloRequest>) -> Result<Response<HelloReply>, Status> {
    let claims = Claims::<StandardClaims>::from_extensions(request.extensions())
        .ok_or_else(|| Status::unauthenticated("no verified token"))?;
    let caller = claims.sub.as_deref().unwrap_or("anonymous");
    Ok(Response::new(HelloReply {
        message: format!(
            "Hello {}! (token subject: {caller})",
            request.get_ref().name
        ),
    }))
}

/// What `tonic-build` generates for `service Greeter`, by hand: route the one method to
/// [`say_hello`] through tonic's unary machinery with the prost codec.
#[derive(Clone)]
pub struct GreeterServer;

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
                "/helloworld.Greeter/SayHello" => {
                    let mut grpc = tonic::server::Grpc::new(ProstCodec::default());
                    grpc.unary(tower::service_fn(say_hello), req).await
                }
                _ => Status::unimplemented("unknown method").into_http(),
            })
        })
    }
}

const USAGE: &str = "\
usage: cargo run --example grpc [-- --help]

  -h, --help   print this help

environment:
  PORT         the port to listen on, on 127.0.0.1 (default 50051)";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    if let Some(arg) = std::env::args().nth(1) {
        if arg == "-h" || arg == "--help" {
            println!("{USAGE}");
            return Ok(());
        }
        // Arguments were ignored before `--help` existed: keep starting, and say so.
        eprintln!("grpc: ignoring unknown argument {arg:?} (see --help)");
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "tower_token_auth=info".into()),
        )
        .with_writer(std::io::stderr)
        .init();

    // A key made at start-up. In production: Keys::jwks_url(..) or Keys::remote_oidc(..) of
    // your identity provider, which also mints the tokens.
    let key = TestKey::hs256().with_kid("grpc-example");
    let config = AuthConfig::builder()
        .keys(key.keys())
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .realm("greeter") // the realm of every challenge, whichever responder answers
        .build()?;

    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(50051);
    let incoming = TcpIncoming::bind(([127, 0, 0, 1], port).into())?;
    let addr = incoming.local_addr()?;

    let token = key
        .token()
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .subject("alice")
        .expires_in(Duration::from_secs(3600))
        .sign();
    println!("gRPC Greeter listening on {addr} (helloworld.Greeter/SayHello)");
    println!();
    println!("Valid for one hour:");
    println!("  {token}");
    println!();
    println!("Call it (helloworld.proto: see the top of examples/grpc.rs):");
    println!(
        "  grpcurl -plaintext -proto helloworld.proto -H 'authorization: Bearer {token}' \
         -d '{{\"name\": \"Alice\"}}' {addr} helloworld.Greeter/SayHello"
    );
    println!("Without the -H option the call fails with Code: Unauthenticated.");

    Server::builder()
        .layer(TokenAuthLayer::new(config).with_responder(GrpcResponder::new()))
        .add_service(GreeterServer)
        .serve_with_incoming_shutdown(incoming, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}
