//! The integration tests, as one test binary (`cargo test --test suite`): one module per
//! topic, helpers shared by several modules in `common`. One binary links axum, tonic and the
//! crate once instead of once per file.
//!
//! Every module can share the process: none sets a global tracing subscriber, a global
//! metrics recorder or an environment variable (the log tests install a thread-local
//! subscriber, the metrics tests a thread-local recorder). Fixtures are found through
//! `CARGO_MANIFEST_DIR` (`tests/fixtures`, `tests/oidc`).
//!
//! Run one module with a filter: `cargo test --test suite -- remote_keys::`.

mod common;

mod attacks;
mod cache;
mod config;
#[cfg(feature = "remote")]
mod consistency;
#[cfg(feature = "diagnose")]
mod diagnose;
#[cfg(feature = "diagnose")]
mod diagnosis_responses;
#[cfg(feature = "diagnose")]
mod doctor_cli;
#[cfg(feature = "remote")]
mod dpop;
#[cfg(all(feature = "redis", feature = "aws-lc-rs"))]
mod dpop_redis;
#[cfg(feature = "aws-lc-rs")]
mod dpop_rules;
mod examples_help;
mod extractors;
mod fuzz_regressions;
#[cfg(feature = "grpc")]
mod grpc;
mod interop;
#[cfg(feature = "remote")]
mod introspection;
#[cfg(feature = "issuer")]
mod issuer;
mod metadata;
mod modes;
#[cfg(feature = "axum")]
mod mtls;
#[cfg(feature = "metrics")]
mod observability;
#[cfg(feature = "remote")]
pub(crate) mod oidc_provider;
mod plain_services;
mod proptests;
mod reasons;
#[cfg(all(feature = "redis", feature = "issuer"))]
mod redis_refresh;
#[cfg(feature = "redis")]
mod redis_revocation;
#[cfg(feature = "remote")]
mod remote_keys;
mod responders;
mod revocation;
mod safety;
mod scopes;
#[cfg(feature = "issuer")]
mod session;
#[cfg(all(feature = "redis", feature = "issuer"))]
mod session_replicas;
mod smoke;
mod sources;
#[cfg(all(feature = "test-util", feature = "remote"))]
mod testing_helpers;
