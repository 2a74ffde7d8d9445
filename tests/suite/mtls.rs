//! Certificate-bound tokens (RFC 8705): `examples/mtls.rs` over real mutual TLS on 127.0.0.1,
//! with a CA, a server certificate and two client certificates made here with rcgen, and
//! `ClientCertificateLayer` in process (no TLS).

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use http::header::{AUTHORIZATION, HOST, WWW_AUTHENTICATE};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tower::Layer;
use tower_token_auth::binding::{AddClientCertificate, ClientCertificate, ClientCertificateLayer};
use tower_token_auth::testing::TestKey;
use tower_token_auth::{Algorithm, Reason};

use crate::common::{self, hs};

/// The example's issuer and audience (fixed there).
const ISS: &str = "https://issuer.example";
const AUD: &str = "api";
const SECRET: &[u8] = b"mtls-example-secret-0123456789abcdef";

/// A certificate with its key, as DER (for the client) and PEM (for the example's files).
struct Pair {
    der: CertificateDer<'static>,
    cert_pem: String,
    key: KeyPair,
}

impl Pair {
    fn private_key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(self.key.serialize_der().into())
    }
}

/// A CA, a server certificate for 127.0.0.1 and localhost, and two client certificates, all
/// made now (P-256), valid from yesterday to tomorrow.
struct Pki {
    ca: Pair,
    server: Pair,
    client_a: Pair,
    client_b: Pair,
}

fn validity(params: &mut CertificateParams) {
    let day = time::Duration::days(1);
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - day;
    params.not_after = now + day;
}

fn make_ca(name: &str) -> (Pair, Issuer<'static, KeyPair>) {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut params);
    let key = KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let pair = Pair {
        der: cert.der().clone(),
        cert_pem: cert.pem(),
        key: KeyPair::from_pem(&key.serialize_pem()).unwrap(),
    };
    (pair, Issuer::new(params, key))
}

fn make_leaf(issuer: &Issuer<'_, KeyPair>, names: &[&str], eku: ExtendedKeyUsagePurpose) -> Pair {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut params = CertificateParams::new(names.clone()).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, &names[0]);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![eku];
    validity(&mut params);
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    Pair {
        der: cert.der().clone(),
        cert_pem: cert.pem(),
        key,
    }
}

impl Pki {
    fn new() -> Pki {
        let (ca, issuer) = make_ca("tower-token-auth test CA");
        let server = make_leaf(
            &issuer,
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let client = |name| make_leaf(&issuer, &[name], ExtendedKeyUsagePurpose::ClientAuth);
        Pki {
            server,
            client_a: client("client-a.test"),
            client_b: client("client-b.test"),
            ca,
        }
    }
}

/// A temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let dir = std::env::temp_dir().join(format!("tta-mtls-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn file(&self, name: &str, contents: impl AsRef<[u8]>) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, contents).unwrap();
        path.to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `examples/mtls.rs` running, killed when dropped (and exiting by itself when this process
/// dies: its stdin closes).
struct Example {
    child: Child,
    addr: SocketAddr,
    stderr: Arc<Mutex<String>>,
}

impl Example {
    fn start(pki: &Pki, dir: &TempDir) -> Example {
        let mut child = Command::new(common::example_exe("mtls"))
            .args(["--port", "0"])
            .args(["--ca", &dir.file("ca.pem", &pki.ca.cert_pem)])
            .args(["--cert", &dir.file("server.pem", &pki.server.cert_pem)])
            .args([
                "--key",
                &dir.file("server-key.pem", pki.server.key.serialize_pem()),
            ])
            .args(["--hmac-secret-file", &dir.file("secret", SECRET)])
            .env("EXIT_ON_STDIN_CLOSE", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the mtls example starts");
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err = child.stderr.take().unwrap();
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = err.read(&mut buf) {
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = tx.send(lines.next().and_then(Result::ok));
            for _ in lines {}
        });
        let mut example = Example {
            child,
            addr: ([127, 0, 0, 1], 0).into(),
            stderr,
        };
        let line = rx.recv_timeout(Duration::from_secs(30)).ok().flatten();
        let Some(port) = line
            .as_deref()
            .and_then(|l| l.strip_prefix("LISTENING https://127.0.0.1:"))
            .and_then(|p| p.trim().parse::<u16>().ok())
        else {
            std::thread::sleep(Duration::from_millis(100));
            panic!(
                "the mtls example did not print LISTENING (first line {line:?}):\n{}",
                example.stderr.lock().unwrap()
            );
        };
        example.addr.set_port(port);
        example
    }
}

impl Drop for Example {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TLS client trusting the test CA, presenting `cert` if given.
fn client(pki: &Pki, cert: Option<&Pair>) -> TlsConnector {
    let mut roots = RootCertStore::empty();
    roots.add(pki.ca.der.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match cert {
        Some(c) => builder
            .with_client_auth_cert(vec![c.der.clone()], c.private_key())
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    TlsConnector::from(Arc::new(config))
}

/// An answer of the example: status, `WWW-Authenticate`, body.
#[derive(Debug)]
struct Answer {
    status: StatusCode,
    www_authenticate: Option<String>,
    body: String,
}

impl Answer {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    fn assert_certificate_mismatch(&self) {
        assert_eq!(self.status, StatusCode::UNAUTHORIZED, "{self:?}");
        assert_eq!(self.json()["reason"], "certificate_mismatch", "{self:?}");
        let challenge = self.www_authenticate.as_deref().unwrap_or_default();
        assert!(challenge.starts_with("Bearer"), "{self:?}");
        assert!(challenge.contains(r#"error="invalid_token""#), "{self:?}");
    }
}

/// `GET /me` with `token` over a fresh mutual-TLS connection (HTTP/1.1).
async fn get_me(addr: SocketAddr, tls: &TlsConnector, token: &str) -> Answer {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let stream = tls.connect(name, tcp).await.expect("TLS handshake");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::get("/me")
        .header(HOST, "localhost")
        .header(AUTHORIZATION, format!("Bearer {token}"))
        .body(Empty::<bytes::Bytes>::new())
        .unwrap();
    let res = sender.send_request(req).await.unwrap();
    let status = res.status();
    let www_authenticate = res
        .headers()
        .get(WWW_AUTHENTICATE)
        .map(|v| v.to_str().unwrap().to_owned());
    let body = res.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        www_authenticate,
        body: String::from_utf8(body.to_vec()).unwrap(),
    }
}

fn key() -> TestKey {
    TestKey::hmac(Algorithm::HS256, SECRET.to_vec())
}

/// A token for the example, bound to `cert` when given.
fn token(sub: &str, cert: Option<&Pair>) -> String {
    let key = key();
    let builder = key.token().issuer(ISS).audience(AUD).subject(sub);
    match cert {
        Some(c) => builder
            .claim(
                "cnf",
                serde_json::json!({ "x5t#S256": ClientCertificate::from_der(&c.der).thumbprint() }),
            )
            .sign(),
        None => builder.sign(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_accepts_a_certificate_bound_token_only_with_its_certificate() {
    let pki = Pki::new();
    let dir = TempDir::new();
    let example = Example::start(&pki, &dir);
    let (with_a, with_b, without) = (
        client(&pki, Some(&pki.client_a)),
        client(&pki, Some(&pki.client_b)),
        client(&pki, None),
    );
    let bound = token("bound-to-a", Some(&pki.client_a));

    // Bound to A, over a connection with A: accepted, and `/me` echoes the cnf.
    let ok = get_me(example.addr, &with_a, &bound).await;
    assert_eq!(ok.status, StatusCode::OK, "{ok:?}");
    assert_eq!(ok.json()["sub"], "bound-to-a");
    let thumbprint = ClientCertificate::from_der(&pki.client_a.der).thumbprint();
    assert_eq!(ok.json()["cnf"]["x5t#S256"], thumbprint.as_str());

    // The same token with B (trusted by the server, but not the bound one), and without any.
    get_me(example.addr, &with_b, &bound)
        .await
        .assert_certificate_mismatch();
    get_me(example.addr, &without, &bound)
        .await
        .assert_certificate_mismatch();

    // An unbound token is a bearer token: accepted with or without a certificate.
    let unbound = token("bearer", None);
    for tls in [&with_a, &with_b, &without] {
        let answer = get_me(example.addr, tls, &unbound).await;
        assert_eq!(answer.status, StatusCode::OK, "{answer:?}");
        assert_eq!(answer.json()["sub"], "bearer");
    }

    // A wrong token is still refused for what it is, not for its binding.
    let forged = TestKey::hs256()
        .token()
        .issuer(ISS)
        .audience(AUD)
        .subject("x")
        .sign();
    let answer = get_me(example.addr, &with_a, &forged).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{answer:?}");
    assert_ne!(
        answer.json()["reason"],
        "certificate_mismatch",
        "{answer:?}"
    );
    drop(example);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_refuses_a_client_certificate_from_another_ca() {
    let pki = Pki::new();
    let dir = TempDir::new();
    let example = Example::start(&pki, &dir);
    let (_, other_ca) = make_ca("another CA");
    let stranger = make_leaf(
        &other_ca,
        &["stranger.test"],
        ExtendedKeyUsagePurpose::ClientAuth,
    );
    let tls = client(&pki, Some(&stranger));

    // With TLS 1.3 the client learns of the refusal on its first read, after the handshake.
    let tcp = TcpStream::connect(example.addr).await.unwrap();
    let refused = match tls
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
    {
        Err(_) => true,
        Ok(stream) => {
            let sent = async {
                let (mut sender, conn) =
                    hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
                tokio::spawn(conn);
                let req = Request::get("/me")
                    .header(HOST, "localhost")
                    .body(Empty::<bytes::Bytes>::new())
                    .unwrap();
                sender.send_request(req).await
            };
            sent.await.is_err()
        }
    };
    assert!(refused, "a certificate from an unknown CA got through");
    let log = || example.stderr.lock().unwrap().clone();
    for _ in 0..50 {
        if log().contains("TLS handshake") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(log().contains("TLS handshake"), "stderr: {}", log());
}

// ----- ClientCertificateLayer in process, without TLS -----

/// The suite's HS256 app (`/` answers `ok`), behind `ClientCertificateLayer::new(cert)`.
fn app_with(cert: Option<ClientCertificate>) -> AddClientCertificate<axum::Router> {
    ClientCertificateLayer::new(cert).layer(common::ok_app(hs::cfg()))
}

fn bound_token(cert: &ClientCertificate) -> String {
    hs::key()
        .token()
        .issuer(hs::ISS)
        .audience(hs::AUD)
        .subject("u1")
        .claim("cnf", serde_json::json!({ "x5t#S256": cert.thumbprint() }))
        .sign()
}

#[tokio::test]
async fn layer_puts_the_connection_certificate_in_each_request() {
    let cert = ClientCertificate::from_der(b"the client's certificate");
    let token = bound_token(&cert);
    let svc = app_with(Some(cert));
    for _ in 0..2 {
        let reply = common::send(svc.clone(), common::bearer(&token)).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
        assert_eq!(reply.body, "ok");
    }
    // An unbound token passes too.
    let reply = common::send(svc, common::bearer(&hs::token("u2"))).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
}

#[tokio::test]
async fn layer_refuses_a_bound_token_on_another_or_no_certificate() {
    let cert = ClientCertificate::from_der(b"the client's certificate");
    let token = bound_token(&cert);

    let other = app_with(Some(ClientCertificate::from_der(b"another certificate")));
    let reply = common::send(other, common::bearer(&token)).await;
    reply.assert_rejected(Reason::CertificateMismatch);
    assert!(
        reply
            .www_authenticate()
            .unwrap()
            .contains(r#"error="invalid_token""#),
        "{:?}",
        reply.www_authenticate()
    );

    let none = app_with(None);
    common::send(none.clone(), common::bearer(&token))
        .await
        .assert_rejected(Reason::CertificateMismatch);

    // `None` means "this connection has none": a certificate already in the request (put
    // there by something else) is removed, not trusted.
    let mut req = common::bearer(&token);
    req.extensions_mut().insert(cert);
    common::send(none, req)
        .await
        .assert_rejected(Reason::CertificateMismatch);
}
