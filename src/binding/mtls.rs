//! Certificate-bound tokens (RFC 8705 §3): `cnf["x5t#S256"]` against the client certificate
//! of the request's mutual-TLS connection, and [`ClientCertificateLayer`], which puts that
//! certificate in the extensions of every request of the connection.

use std::task::{Context, Poll};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use subtle::ConstantTimeEq;
use tower_layer::Layer;
use tower_service::Service;

use crate::error::{AuthError, Problem, Reason};

/// The client certificate of a mutual-TLS connection, as the layer reads it from the request
/// extensions. This crate does not terminate TLS: your acceptor (tokio-rustls, axum-server,
/// hyper-util) knows the peer certificate of each connection and inserts this into every
/// request of that connection, most simply with [`ClientCertificateLayer`] around the
/// connection's service; `examples/mtls.rs` shows it with rustls.
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
    /// The certificate from its DER encoding: the end-entity certificate the client presented,
    /// the first of the chain (with rustls, `peer_certificates()?.first()`). Only its SHA-256
    /// is kept; the DER is not parsed, and trusting the certificate is the TLS acceptor's job.
    ///
    /// ```
    /// use tower_token_auth::binding::ClientCertificate;
    ///
    /// # let der_bytes: &[u8] = b"the DER bytes of the peer's end-entity certificate";
    /// let cert = ClientCertificate::from_der(der_bytes);
    /// assert_eq!(cert, ClientCertificate::from_der(der_bytes));
    /// assert_ne!(cert, ClientCertificate::from_der(b"another certificate"));
    /// ```
    pub fn from_der(der: &[u8]) -> Self {
        let digest = crate::crypto::sha256(der);
        let mut sha256 = [0u8; 32];
        if digest.len() == 32 {
            sha256.copy_from_slice(&digest);
        }
        ClientCertificate { sha256 }
    }

    /// The RFC 8705 `x5t#S256` value of this certificate (base64url SHA-256 of the DER): what
    /// the authorization server puts in `cnf` of the tokens it binds to this certificate.
    ///
    /// ```
    /// use tower_token_auth::binding::ClientCertificate;
    ///
    /// // The SHA-256 of no bytes, base64url without padding.
    /// let cert = ClientCertificate::from_der(b"");
    /// assert_eq!(cert.thumbprint(), "47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU");
    /// let cnf = serde_json::json!({ "x5t#S256": cert.thumbprint() });
    /// # let _ = cnf;
    /// ```
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

/// A [`Layer`] that puts the client certificate of a connection in the extensions of every
/// request of that connection, for the binding check of certificate-bound tokens: apply it,
/// per connection, to the service that connection is served with (an axum `Router` cloned
/// for the connection, under `hyper_util::service::TowerToHyperService`).
///
/// `None` says the connection has no client certificate: a [`ClientCertificate`] already in
/// a request's extensions is removed, so a bound token is refused (`certificate_mismatch`)
/// rather than checked against a certificate this connection did not present.
///
/// ```no_run
/// use tower::Layer;
/// use tower_token_auth::binding::{ClientCertificate, ClientCertificateLayer};
///
/// // One accepted connection, after its TLS handshake (rustls verified the client's chain).
/// async fn serve(tls: tokio_rustls::server::TlsStream<tokio::net::TcpStream>, app: axum::Router) {
///     let cert = tls
///         .get_ref()
///         .1
///         .peer_certificates()
///         .and_then(|chain| chain.first())
///         .map(|end_entity| ClientCertificate::from_der(end_entity));
///     let svc = ClientCertificateLayer::new(cert).layer(app);
///     let svc = hyper_util::service::TowerToHyperService::new(svc);
///     let io = hyper_util::rt::TokioIo::new(tls);
///     let _ = hyper::server::conn::http1::Builder::new()
///         .serve_connection(io, svc)
///         .await;
/// }
/// ```
#[derive(Clone, Copy, Debug)]
pub struct ClientCertificateLayer {
    cert: Option<ClientCertificate>,
}

impl ClientCertificateLayer {
    /// The layer for a connection with this client certificate (`None`: without one).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use tower::{service_fn, Layer, ServiceExt};
    /// use tower_token_auth::binding::{ClientCertificate, ClientCertificateLayer};
    ///
    /// let cert = ClientCertificate::from_der(b"the DER of the peer's certificate");
    /// // A service that answers with the certificate it sees.
    /// let seen = service_fn(|req: http::Request<()>| async move {
    ///     Ok::<_, std::convert::Infallible>(req.extensions().get::<ClientCertificate>().copied())
    /// });
    ///
    /// let svc = ClientCertificateLayer::new(Some(cert)).layer(seen.clone());
    /// assert_eq!(svc.oneshot(http::Request::new(())).await.unwrap(), Some(cert));
    ///
    /// let svc = ClientCertificateLayer::new(None).layer(seen);
    /// assert_eq!(svc.oneshot(http::Request::new(())).await.unwrap(), None);
    /// # }
    /// ```
    pub fn new(cert: Option<ClientCertificate>) -> Self {
        ClientCertificateLayer { cert }
    }
}

impl<S> Layer<S> for ClientCertificateLayer {
    type Service = AddClientCertificate<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AddClientCertificate::new(inner, self.cert)
    }
}

/// The service of [`ClientCertificateLayer`]: sets (or, with `None`, removes) the
/// [`ClientCertificate`] in each request's extensions, then calls `S`. Any request body; it
/// is `Clone` when `S` is, as `hyper_util::service::TowerToHyperService` needs.
///
/// ```
/// use tower::Layer;
/// use tower_token_auth::binding::{AddClientCertificate, ClientCertificateLayer};
///
/// let app = axum::Router::new();
/// let svc: AddClientCertificate<axum::Router> = ClientCertificateLayer::new(None).layer(app);
/// let _per_connection = hyper_util::service::TowerToHyperService::new(svc);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct AddClientCertificate<S> {
    inner: S,
    cert: Option<ClientCertificate>,
}

impl<S> AddClientCertificate<S> {
    /// `inner`, called with `cert` in the extensions of every request (what
    /// `ClientCertificateLayer::new(cert).layer(inner)` makes).
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// use tower::{service_fn, ServiceExt};
    /// use tower_token_auth::binding::{AddClientCertificate, ClientCertificate};
    ///
    /// let cert = ClientCertificate::from_der(b"the DER of the peer's certificate");
    /// let inner = service_fn(|req: http::Request<String>| async move {
    ///     let cert = req.extensions().get::<ClientCertificate>().copied();
    ///     Ok::<_, std::convert::Infallible>(cert.map(|c| c.thumbprint()))
    /// });
    /// let svc = AddClientCertificate::new(inner, Some(cert));
    /// let seen = svc.oneshot(http::Request::new(String::new())).await.unwrap();
    /// assert_eq!(seen, Some(cert.thumbprint()));
    /// # }
    /// ```
    pub fn new(inner: S, cert: Option<ClientCertificate>) -> Self {
        AddClientCertificate { inner, cert }
    }
}

impl<S, B> Service<http::Request<B>> for AddClientCertificate<S>
where
    S: Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<B>) -> Self::Future {
        let extensions = req.extensions_mut();
        match self.cert {
            Some(cert) => {
                extensions.insert(cert);
            }
            None => {
                extensions.remove::<ClientCertificate>();
            }
        }
        self.inner.call(req)
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
    // All zeros: `from_der` could not hash the certificate (fail closed, never a match).
    let unhashed = *cert == [0u8; 32];
    if unhashed || bound.len() != 32 || !bool::from(bound.ct_eq(cert.as_slice())) {
        return Err(fail("x5t#S256"));
    }
    Ok(())
}
