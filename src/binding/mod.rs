//! Sender-constrained tokens: the binding step of the pipeline, run after a token is verified
//! (fresh or from the cache), on every request.
//!
//! A token whose claims carry `cnf` (RFC 7800) is bound to a key or certificate, and is only
//! accepted with proof that the sender holds it:
//!
//! - `cnf.jkt` ([DPoP](Dpop), RFC 9449): the request says `Authorization: DPoP <token>` and
//!   carries one `DPoP` proof, a JWT signed by the key whose RFC 7638 thumbprint is `jkt`, for
//!   this method and URL, fresh, never seen before, and naming this token (`ath`);
//! - `cnf["x5t#S256"]` (RFC 8705): the request came over mutual TLS with the client
//!   certificate of that SHA-256 thumbprint ([`ClientCertificate`], put in the request
//!   extensions by your TLS acceptor).
//!
//! A bound token without its proof is refused (`bound_token`, or `certificate_mismatch`), and
//! so is a token bound by a confirmation method this crate cannot check: accepting it as a
//! bearer token would defeat the binding. Bearer-only configurations (no [`Dpop`]) refuse
//! DPoP-bound tokens too.

use std::sync::Arc;

use serde_json::Value;

use crate::error::{AuthError, Problem, Reason};

mod dpop;
mod htu;
mod mtls;
mod replay;

pub use dpop::{Dpop, DEFAULT_DPOP_ALGORITHMS};
pub(crate) use dpop::{DpopChecker, Scheme};
pub use mtls::{AddClientCertificate, ClientCertificate, ClientCertificateLayer};
#[cfg(feature = "redis")]
pub use replay::RedisReplayStore;
pub(crate) use replay::ReplayAsk;
pub use replay::{BoxFuture, ReplayError, ReplayStore};

/// The confirmation (`cnf`) of a bound token: what the sender must prove to hold.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Cnf {
    /// `jkt`: the RFC 7638 thumbprint of the DPoP key.
    pub(crate) jkt: Option<Box<str>>,
    /// `x5t#S256`: the base64url SHA-256 of the client certificate (DER).
    pub(crate) x5t: Option<Box<str>>,
}

impl Cnf {
    /// Reads `cnf` from a verified token's claims (JSON text), when the claims have one:
    /// `Ok(None)` without `cnf`, the problem when it cannot be honoured.
    pub(crate) fn of_claims(json: &str) -> Result<Option<Arc<Cnf>>, Problem> {
        #[derive(serde::Deserialize)]
        struct Claims {
            cnf: Option<Value>,
        }
        let invalid = || Problem::about(Reason::InvalidClaim, "cnf");
        let claims: Claims = serde_json::from_str(json).map_err(|_| invalid())?;
        let Some(cnf) = claims.cnf else {
            return Ok(None);
        };
        let Value::Object(map) = cnf else {
            return Err(invalid());
        };
        let text = |name: &str| match map.get(name) {
            None => Ok(None),
            Some(Value::String(s)) if !s.is_empty() => Ok(Some(Box::from(s.as_str()))),
            Some(_) => Err(invalid()),
        };
        let cnf = Cnf {
            jkt: text("jkt")?,
            x5t: text("x5t#S256")?,
        };
        if cnf.jkt.is_none() && cnf.x5t.is_none() {
            // `jwk`, `kid`, `jku`, ... (RFC 7800): a binding this crate cannot check.
            return Err(Problem::about(Reason::BoundToken, "cnf"));
        }
        Ok(Some(Arc::new(cnf)))
    }
}

/// How the request presented its token, as the binding step needs it. Owned, so a check that
/// waits (remote keys, revocation, introspection) can carry it.
#[derive(Debug, Default)]
pub(crate) struct Presented {
    /// `Authorization: DPoP` (or `Bearer`, or another source).
    pub(crate) scheme: Scheme,
    /// The DPoP proofs of the request, with its method and URL (only when DPoP is on and the
    /// request has a `DPoP` header or uses the DPoP scheme).
    pub(crate) dpop: Option<Box<dpop::Request>>,
    /// The SHA-256 of the client certificate, if the request came over mutual TLS.
    pub(crate) cert: Option<[u8; 32]>,
}

impl Presented {
    /// Reads what the binding step needs from the request: nothing is copied unless the
    /// request uses DPoP or carries a client certificate.
    pub(crate) fn of(
        parts: &http::request::Parts,
        source: &str,
        dpop: Option<&DpopChecker>,
    ) -> Presented {
        // Without DPoP no source reads the DPoP scheme: skip the header.
        let scheme = match dpop {
            Some(_) => Scheme::of(parts, source),
            None => Scheme::Bearer,
        };
        let cert = parts
            .extensions
            .get::<ClientCertificate>()
            .map(ClientCertificate::sha256);
        let dpop = dpop.and_then(|d| d.request(parts, scheme)).map(Box::new);
        Presented { scheme, dpop, cert }
    }
}

impl Presented {
    /// `Authorization: DPoP` without a usable proof (diagnosis of inputs that cannot form a
    /// request).
    #[cfg_attr(not(feature = "diagnose"), allow(dead_code))]
    pub(crate) fn dpop_without_proof() -> Presented {
        Presented {
            scheme: Scheme::Dpop,
            dpop: None,
            cert: None,
        }
    }
}

/// The binding step: `Ok` if the token is unbound and presented as bearer, or bound and
/// presented with its proof; `Ok(Some(ask))` when the proof's replay check must ask a shared
/// store.
pub(crate) fn check(
    dpop: Option<&DpopChecker>,
    token: &str,
    cnf: Option<&Cnf>,
    presented: &Presented,
    now: i64,
    leeway: i64,
) -> Result<Option<ReplayAsk>, AuthError> {
    if let Some(x5t) = cnf.and_then(|c| c.x5t.as_deref()) {
        mtls::check(x5t, presented.cert.as_ref())?;
    }
    let jkt = cnf.and_then(|c| c.jkt.as_deref());
    match (presented.scheme, jkt) {
        (Scheme::Dpop, _) => match dpop {
            Some(d) => d.check(token, jkt, presented.dpop.as_deref(), now, leeway),
            // Without DPoP configured, no source accepts the DPoP scheme.
            None => Err(bound("DPoP is not accepted here")),
        },
        (_, Some(_)) => Err(bound("scheme")),
        (_, None) => Ok(None),
    }
}

fn bound(subject: &'static str) -> AuthError {
    AuthError::from_problems(
        vec![Problem::about(Reason::BoundToken, subject)],
        Default::default(),
    )
}
