#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod claims;
pub mod clock;
mod config;
mod crypto;
mod error;
mod future;
pub mod keys;
mod layer;
pub mod response;
mod service;
pub mod source;
#[cfg(feature = "test-util")]
#[cfg_attr(docsrs, doc(cfg(feature = "test-util")))]
pub mod testing;
mod validate;

#[cfg(feature = "axum")]
pub use claims::ClaimsRejection;
pub use claims::{Claims, StandardClaims};
pub use config::{
    AuthConfig, AuthConfigBuilder, ClaimError, ConfigError, DEFAULT_LEEWAY, DEFAULT_MAX_TOKEN_LEN,
    MAX_LEEWAY,
};
pub use error::{AuthError, Problem, Reason, TokenFacts};
pub use future::ResponseFuture;
pub use jsonwebtoken::Algorithm;
pub use keys::Keys;
pub use layer::TokenAuthLayer;
pub use response::{DefaultResponder, Responder};
pub use service::TokenAuth;
