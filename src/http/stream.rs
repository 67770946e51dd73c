//! The byte stream of one client connection: plain TCP, or TLS over TCP when the node
//! serves HTTPS (`--tls_cert`/`--tls_key`). Both are `Read + Write`, so the connection
//! layer, the workers and the websocket writer handle them alike; timeouts and
//! blocking mode are set on the TCP socket underneath.

use crate::error::{Error, Result};
use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;

/// One client connection's transport.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<rustls::StreamOwned<rustls::ServerConnection, TcpStream>>),
}

impl Stream {
    /// A new connection, wrapped in TLS when `tls` is set (the handshake happens as bytes
    /// are read).
    pub fn new(tcp: TcpStream, tls: Option<&Arc<rustls::ServerConfig>>) -> io::Result<Stream> {
        match tls {
            None => Ok(Stream::Plain(tcp)),
            Some(config) => {
                let session = rustls::ServerConnection::new(config.clone())
                    .map_err(|e| io::Error::other(format!("TLS session: {e}")))?;
                Ok(Stream::Tls(Box::new(rustls::StreamOwned::new(
                    session, tcp,
                ))))
            }
        }
    }

    /// The TCP socket underneath.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            Stream::Plain(tcp) => tcp,
            Stream::Tls(tls) => &tls.sock,
        }
    }

    /// Whether TLS has bytes of its own to send (a handshake message) before it can read on.
    pub fn wants_write(&self) -> bool {
        match self {
            Stream::Plain(_) => false,
            Stream::Tls(tls) => tls.conn.wants_write(),
        }
    }

    /// Sends what TLS has queued, without blocking for longer than the socket allows.
    pub fn flush_tls(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(_) => Ok(()),
            Stream::Tls(tls) => {
                while tls.conn.wants_write() {
                    tls.conn.write_tls(&mut tls.sock)?;
                }
                Ok(())
            }
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(tcp) => tcp.read(buf),
            Stream::Tls(tls) => tls.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(tcp) => tcp.write(buf),
            Stream::Tls(tls) => tls.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Stream::Plain(tcp) => tcp.flush(),
            Stream::Tls(tls) => {
                tls.flush()?;
                // rustls' flush hands plaintext to the session; this puts it on the wire.
                while tls.conn.wants_write() {
                    tls.conn.write_tls(&mut tls.sock)?;
                }
                Ok(())
            }
        }
    }
}

/// The TLS server configuration (rustls on ring) from a PEM certificate chain and a PEM
/// private key (PKCS#8, PKCS#1 RSA or SEC1 EC; encrypted keys are not supported).
pub fn tls_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let invalid =
        |what: &Path, why: String| Error::invalid("tls", format!("{}: {why}", what.display()));
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| invalid(cert, format!("cannot read: {e}")))?
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| invalid(cert, format!("not a PEM certificate: {e}")))?;
    if chain.is_empty() {
        return Err(invalid(cert, "holds no PEM certificate".into()));
    }
    let private_key = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        invalid(
            key,
            format!("holds no usable PEM private key (PKCS#8, RSA or EC; not encrypted): {e}"),
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(cert, format!("tls setup: {e}")))?
        .with_no_client_auth()
        .with_single_cert(chain, private_key)
        .map_err(|e| invalid(cert, format!("certificate and key do not fit: {e}")))?;
    Ok(Arc::new(config))
}
