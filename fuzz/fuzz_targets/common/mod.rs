//! Shared by the fuzz targets: a fixed clock, the test keys, a tiny executor, a signer for
//! arbitrary header/payload bytes.
#![allow(dead_code)]

use std::convert::Infallible;
use std::future::{ready, Future, Ready};
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use bytes::Bytes;
use http::{Request, Response};
use std::thread::{self, Thread};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey};
use tower_token_auth::testing::TestKey;

pub const ISS: &str = "https://issuer.test";
pub const AUD: &str = "api";
/// The fixed "now" of every fuzz configuration (2023-11-14), so committed seeds with valid
/// tokens stay valid.
pub const NOW: i64 = 1_700_000_000;
/// A 64-byte HMAC secret (HS256, HS384 and HS512).
pub const SECRET: &[u8; 64] = b"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

const RSA_PRIVATE: &str = include_str!("../../../src/testing/rsa_private.pem");
const P256_PRIVATE: &str = include_str!("../../../src/testing/p256_private.pem");
const P384_PRIVATE: &str = include_str!("../../../src/testing/p384_private.pem");
const ED25519_PRIVATE: &str = include_str!("../../../src/testing/ed25519_private.pem");

/// The verification keys, with kids: `hs`, `rsa`, `p256`, `p384`, `ed`.
pub fn test_keys() -> Vec<TestKey> {
    vec![
        TestKey::hmac(Algorithm::HS256, SECRET.to_vec()).with_kid("hs"),
        TestKey::rs256().with_kid("rsa"),
        TestKey::es256().with_kid("p256"),
        TestKey::es384().with_kid("p384"),
        TestKey::ed25519().with_kid("ed"),
    ]
}

/// A signing key for raw messages: `(alg, kid, key)`.
pub struct Signer {
    pub alg: Algorithm,
    pub kid: &'static str,
    key: EncodingKey,
}

impl Signer {
    /// Signs `message` and returns the base64url signature.
    pub fn sign(&self, message: &[u8]) -> String {
        jsonwebtoken::crypto::sign(message, &self.key, self.alg).expect("test key signs")
    }
}

/// Signers for every key family. RSA signing is slow (about 1 ms), so the fuzz targets pick
/// it rarely.
pub fn signers() -> Vec<Signer> {
    let pem = |alg: Algorithm, pem: &str| {
        match alg {
            Algorithm::ES256 | Algorithm::ES384 => EncodingKey::from_ec_pem(pem.as_bytes()),
            Algorithm::EdDSA => EncodingKey::from_ed_pem(pem.as_bytes()),
            _ => EncodingKey::from_rsa_pem(pem.as_bytes()),
        }
        .expect("bundled PEM")
    };
    vec![
        Signer {
            alg: Algorithm::HS256,
            kid: "hs",
            key: EncodingKey::from_secret(SECRET),
        },
        Signer {
            alg: Algorithm::HS384,
            kid: "hs",
            key: EncodingKey::from_secret(SECRET),
        },
        Signer {
            alg: Algorithm::HS512,
            kid: "hs",
            key: EncodingKey::from_secret(SECRET),
        },
        Signer {
            alg: Algorithm::ES256,
            kid: "p256",
            key: pem(Algorithm::ES256, P256_PRIVATE),
        },
        Signer {
            alg: Algorithm::ES384,
            kid: "p384",
            key: pem(Algorithm::ES384, P384_PRIVATE),
        },
        Signer {
            alg: Algorithm::EdDSA,
            kid: "ed",
            key: pem(Algorithm::EdDSA, ED25519_PRIVATE),
        },
        Signer {
            alg: Algorithm::RS256,
            kid: "rsa",
            key: pem(Algorithm::RS256, RSA_PRIVATE),
        },
        Signer {
            alg: Algorithm::PS256,
            kid: "rsa",
            key: pem(Algorithm::PS256, RSA_PRIVATE),
        },
    ]
}

/// `b64(header).b64(payload).b64(sig(...))`.
pub fn signed_token(signer: &Signer, header: &[u8], payload: &[u8]) -> String {
    let message = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let sig = signer.sign(message.as_bytes());
    format!("{message}.{sig}")
}

struct ThreadWaker(Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

/// Drives a future to completion on this thread. With static keys nothing in the crate
/// waits, so this returns on the first poll.
pub fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let waker = Waker::from(Arc::new(ThreadWaker(thread::current())));
    let mut cx = Context::from_waker(&waker);
    loop {
        match fut.as_mut().poll(&mut cx) {
            Poll::Ready(v) => return v,
            Poll::Pending => thread::park(),
        }
    }
}

/// The inner service behind the layer: 200 with an empty body.
#[derive(Clone, Copy)]
pub struct Ok200;

impl tower_service::Service<Request<Bytes>> for Ok200 {
    type Response = Response<Bytes>;
    type Error = Infallible;
    type Future = Ready<Result<Response<Bytes>, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _: Request<Bytes>) -> Self::Future {
        ready(Ok(Response::new(Bytes::new())))
    }
}
