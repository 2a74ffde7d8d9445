//! Certificate-bound tokens (RFC 8705 §3): `cnf["x5t#S256"]` against the client certificate
//! of the request's mutual-TLS connection.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use subtle::ConstantTimeEq;

use crate::error::{AuthError, Problem, Reason};

/// The client certificate of a mutual-TLS connection, as the layer reads it from the request
/// extensions. This crate does not terminate TLS: your acceptor (tokio-rustls, axum-server,
/// hyper-util) knows the peer certificate of each connection and inserts this into every
/// request of that connection; `examples/mtls.rs` shows it with rustls.
///
/// A token with `cnf["x5t#S256"]` is accepted only when this is present with that SHA-256
/// thumbprint; otherwise it is `certificate_mismatch`.
///
/// ```
/// use tower_token_auth::binding::ClientCertificate;
///
/// # let der_bytes: &[u8] = b"the DER bytes of the peer's end-entity certificate";
/// let cert = ClientCertificate::from_der(der_bytes);
/// let mut req = http::Request::new(());
/// req.extensions_mut().insert(cert);
/// # let _ = req;
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ClientCertificate {
    sha256: [u8; 32],
}

impl ClientCertificate {
    /// The certificate from its DER encoding (the end-entity certificate the client presented).
    pub fn from_der(der: &[u8]) -> Self {
        let digest = crate::crypto::sha256(der);
        let mut sha256 = [0u8; 32];
        if digest.len() == 32 {
            sha256.copy_from_slice(&digest);
        }
        ClientCertificate { sha256 }
    }

    /// The RFC 8705 `x5t#S256` value of this certificate (base64url SHA-256 of the DER).
    pub fn thumbprint(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.sha256)
    }

    pub(super) fn sha256(&self) -> [u8; 32] {
        self.sha256
    }
}

impl std::fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("x5t#S256", &self.thumbprint())
            .finish()
    }
}

/// `x5t` (the token's `cnf["x5t#S256"]`) against the connection's certificate.
pub(super) fn check(x5t: &str, cert: Option<&[u8; 32]>) -> Result<(), AuthError> {
    let fail = |subject: &'static str| {
        AuthError::from_problems(
            vec![Problem::about(Reason::CertificateMismatch, subject)],
            Default::default(),
        )
    };
    let Some(cert) = cert else {
        return Err(fail("no client certificate"));
    };
    let Ok(bound) = URL_SAFE_NO_PAD.decode(x5t) else {
        return Err(fail("x5t#S256"));
    };
    if bound.len() != 32 || !bool::from(bound.ct_eq(cert.as_slice())) {
        return Err(fail("x5t#S256"));
    }
    Ok(())
}
