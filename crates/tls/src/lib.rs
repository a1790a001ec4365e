//! TLS for Strom's listeners (Kafka, etcd, HTTP) and its node-to-node transport.
//!
//! One [`TlsServer`] per set of PEM files: it builds a rustls server config (TLS 1.2 and 1.3,
//! rustls's safe defaults, the aws-lc-rs provider) and rebuilds it when the files change or
//! the process gets SIGHUP ([`spawn_reloader`]); a connection takes whichever config is
//! current when it is accepted, so a renewed certificate needs no restart; a [`TlsClient`] (the
//! node dialling its peers) follows its files the same way. [`incoming`] runs handshakes off
//! the accept loop with a deadline, so a client that stalls its handshake cannot hold up anyone
//! else.

pub mod cert;
mod reload;

pub use reload::spawn_reloader;
use reload::{FromFiles, Reload};

/// The rustls this crate builds its configs with, for crates that hold one.
pub use rustls;

use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// A TLS handshake that takes longer than this is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes running at once per listener; beyond it new connections wait in the kernel's
/// backlog, so a flood of idle sockets cannot exhaust memory.
const HANDSHAKES_MAX: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("{path}: {what}")]
    Pem { path: PathBuf, what: String },
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    #[error("client certificates need a CA (tls_ca): {0}")]
    Verifier(String),
    #[error("certificate generation: {0}")]
    Generate(String),
}

/// The PEM files of one TLS identity.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Trusted CA for client (and peer) certificates.
    pub ca: Option<PathBuf>,
}

/// Whether a listener asks for client certificates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    None,
    /// Verified when presented (a SASL_SSL listener: SASL decides who the client is).
    Optional,
    /// Required and verified against the CA (Kafka's `SSL://` listener, Raft).
    Required,
}

/// The crypto every TLS config of the process uses (aws-lc-rs).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.into(),
        source,
    })
}

fn certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            path: path.into(),
            what: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: path.into(),
            what: "no certificate in the file".into(),
        });
    }
    Ok(certs)
}

fn key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(&read(path)?).map_err(|e| TlsError::Pem {
        path: path.into(),
        what: format!("no private key: {e}"),
    })
}

fn roots(path: &Path) -> Result<Arc<RootCertStore>, TlsError> {
    let mut roots = RootCertStore::empty();
    for c in certs(path)? {
        roots.add(c)?;
    }
    Ok(Arc::new(roots))
}

fn server_config(
    files: &TlsFiles,
    auth: ClientAuth,
    alpn: &[Vec<u8>],
) -> Result<ServerConfig, TlsError> {
    let builder =
        ServerConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()?;
    let builder = match (auth, &files.ca) {
        (ClientAuth::None, _) => builder.with_no_client_auth(),
        (_, None) => return Err(TlsError::Verifier("no tls_ca given".into())),
        (auth, Some(ca)) => {
            let verifier = WebPkiClientVerifier::builder_with_provider(roots(ca)?, provider());
            let verifier = if auth == ClientAuth::Optional {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            builder.with_client_cert_verifier(
                verifier
                    .build()
                    .map_err(|e| TlsError::Verifier(e.to_string()))?,
            )
        }
    };
    let mut config = builder.with_single_cert(certs(&files.cert)?, key(&files.key)?)?;
    config.alpn_protocols = alpn.to_vec();
    Ok(config)
}

/// A TLS server identity whose config follows its files.
pub struct TlsServer {
    auth: ClientAuth,
    /// Application protocols offered in the handshake (ALPN); empty offers none.
    alpn: Vec<Vec<u8>>,
    config: FromFiles<ServerConfig>,
}

impl TlsServer {
    pub fn new(files: TlsFiles, auth: ClientAuth) -> Result<Arc<TlsServer>, TlsError> {
        TlsServer::with_alpn(files, auth, &[])
    }

    /// A server that negotiates one of `alpn` (ALPN): gRPC clients require `h2`.
    pub fn with_alpn(
        files: TlsFiles,
        auth: ClientAuth,
        alpn: &[&[u8]],
    ) -> Result<Arc<TlsServer>, TlsError> {
        let alpn: Vec<Vec<u8>> = alpn.iter().map(|p| p.to_vec()).collect();
        let config = FromFiles::new(files, |f| server_config(f, auth, &alpn))?;
        let server = Arc::new(TlsServer { auth, alpn, config });
        reload::register(Arc::downgrade(&server) as Weak<dyn Reload>);
        Ok(server)
    }

    pub fn client_auth(&self) -> ClientAuth {
        self.auth
    }

    /// Rebuilds the config from the files (when `force`, or when a file changed).
    pub fn reload(&self, force: bool) {
        self.config
            .reload(force, |f| server_config(f, self.auth, &self.alpn));
    }

    /// Runs the server side of a handshake on `tcp`, within [`HANDSHAKE_TIMEOUT`].
    pub async fn accept(&self, tcp: TcpStream) -> io::Result<ServerTls> {
        let acceptor = tokio_rustls::TlsAcceptor::from(self.config.current());
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
            Ok(r) => r,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "TLS handshake timed out",
            )),
        }
    }
}

pub type ServerTls = tokio_rustls::server::TlsStream<TcpStream>;

impl Reload for TlsServer {
    fn reload(&self, force: bool) {
        TlsServer::reload(self, force);
    }
}

/// The principal of a verified client certificate: `User:` and the subject's common name.
pub fn principal(tls: &ServerTls) -> Option<String> {
    let (_, conn) = tls.get_ref();
    principal_of(conn.peer_certificates()?.first()?)
}

fn principal_of(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let cn = parsed
        .subject()
        .iter_common_name()
        .next()?
        .as_str()
        .ok()?
        .to_string();
    Some(format!("User:{cn}"))
}

/// A client config trusting `files.ca` and presenting `files`' certificate (node-to-node
/// mutual TLS), or presenting none when `present` is false.
pub fn client_config(files: &TlsFiles, present: bool) -> Result<Arc<ClientConfig>, TlsError> {
    build_client_config(files, present).map(Arc::new)
}

fn build_client_config(files: &TlsFiles, present: bool) -> Result<ClientConfig, TlsError> {
    let ca = files
        .ca
        .as_ref()
        .ok_or_else(|| TlsError::Verifier("no tls_ca given".into()))?;
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots(ca)?);
    Ok(if present {
        builder.with_client_auth_cert(certs(&files.cert)?, key(&files.key)?)?
    } else {
        builder.with_no_client_auth()
    })
}

/// A long-lived client identity (a node dialling its peers) whose config follows its files as
/// a [`TlsServer`]'s does: a renewed certificate or CA is used by the next connection.
pub struct TlsClient {
    present: bool,
    config: FromFiles<ClientConfig>,
}

impl TlsClient {
    pub fn new(files: TlsFiles, present: bool) -> Result<Arc<TlsClient>, TlsError> {
        let config = FromFiles::new(files, |f| build_client_config(f, present))?;
        let client = Arc::new(TlsClient { present, config });
        reload::register(Arc::downgrade(&client) as Weak<dyn Reload>);
        Ok(client)
    }

    /// The config for a connection made now.
    pub fn current(&self) -> Arc<ClientConfig> {
        self.config.current()
    }

    /// Rebuilds the config from the files (when `force`, or when a file changed).
    pub fn reload(&self, force: bool) {
        self.config
            .reload(force, |f| build_client_config(f, self.present));
    }
}

impl Reload for TlsClient {
    fn reload(&self, force: bool) {
        TlsClient::reload(self, force);
    }
}

/// Connects `tcp` as a TLS client to `addr` (its IP is the name checked in the certificate).
pub async fn connect(
    config: Arc<ClientConfig>,
    addr: SocketAddr,
    tcp: TcpStream,
) -> io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    handshake(config, ServerName::IpAddress(addr.ip().into()), tcp).await
}

/// Connects `tcp` as a TLS client to `host` (a DNS name or an IP address, checked against the
/// server's certificate).
pub async fn connect_named(
    config: Arc<ClientConfig>,
    host: &str,
    tcp: TcpStream,
) -> io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let name = ServerName::try_from(host.trim_matches(['[', ']']).to_string())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, format!("{host}: {e}")))?;
    handshake(config, name, tcp).await
}

async fn handshake(
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
    tcp: TcpStream,
) -> io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let connector = tokio_rustls::TlsConnector::from(config);
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, connector.connect(name, tcp)).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "TLS handshake timed out",
        )),
    }
}

/// An accepted connection, plain or TLS, for servers (tonic, axum) that take a stream of them.
pub enum Conn {
    Plain(TcpStream),
    Tls(Box<ServerTls>),
    /// A connection this process dialled (node to node).
    Client(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Conn {
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        match self {
            Conn::Plain(s) => s.peer_addr().ok(),
            Conn::Tls(s) => s.get_ref().0.peer_addr().ok(),
            Conn::Client(s) => s.get_ref().0.peer_addr().ok(),
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Conn::Client(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Conn::Client(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
            Conn::Client(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Conn::Plain(s) => s.is_write_vectored(),
            Conn::Tls(s) => s.is_write_vectored(),
            Conn::Client(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_flush(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Conn::Client(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Conn::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Conn::Client(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Accepts on `listener` and yields connections once their TLS handshake (if `tls`) is done;
/// failed or stalled handshakes are logged and dropped. For servers that take a stream.
pub fn incoming(
    listener: TcpListener,
    tls: Option<Arc<TlsServer>>,
    face: &'static str,
) -> mpsc::Receiver<io::Result<Conn>> {
    let (tx, rx) = mpsc::channel(64);
    let handshakes = Arc::new(tokio::sync::Semaphore::new(HANDSHAKES_MAX));
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(face, "accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let Some(tls) = tls.clone() else {
                if tx.send(Ok(Conn::Plain(tcp))).await.is_err() {
                    return;
                }
                continue;
            };
            let Ok(permit) = Arc::clone(&handshakes).acquire_owned().await else {
                return;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let _permit = permit;
                match tls.accept(tcp).await {
                    Ok(s) => {
                        let _ = tx.send(Ok(Conn::Tls(Box::new(s)))).await;
                    }
                    Err(e) => tracing::info!(face, %peer, "TLS handshake failed: {e}"),
                }
            });
        }
    });
    rx
}

/// The principal (`User:CN`) of the first certificate in a PEM file: the node's own identity
/// when it connects to an SSL listener.
pub fn cert_principal(path: &Path) -> Option<String> {
    principal_of(certs(path).ok()?.first()?)
}
