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

/// The TLS server configuration from a PEM certificate chain and a PEM private key
/// (PKCS#8 or RSA).
pub fn tls_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>> {
    let invalid =
        |what: &Path, why: String| Error::invalid("tls", format!("{}: {why}", what.display()));
    let cert_pem = std::fs::read(cert).map_err(|e| Error::io(cert, e))?;
    let key_pem = std::fs::read(key).map_err(|e| Error::io(key, e))?;
    let chain: Vec<rustls::Certificate> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .map_err(|e| invalid(cert, format!("not a PEM certificate: {e}")))?
        .into_iter()
        .map(rustls::Certificate)
        .collect();
    if chain.is_empty() {
        return Err(invalid(cert, "holds no PEM certificate".into()));
    }
    let mut keys = rustls_pemfile::pkcs8_private_keys(&mut key_pem.as_slice())
        .map_err(|e| invalid(key, format!("not a PEM key: {e}")))?;
    if keys.is_empty() {
        keys = rustls_pemfile::rsa_private_keys(&mut key_pem.as_slice())
            .map_err(|e| invalid(key, format!("not a PEM key: {e}")))?;
    }
    let Some(private_key) = keys.into_iter().next() else {
        return Err(invalid(
            key,
            "holds no PKCS#8 or RSA private key (encrypted keys are not supported)".into(),
        ));
    };
    let config = rustls::ServerConfig::builder()
        .with_safe_defaults()
        .with_no_client_auth()
        .with_single_cert(chain, rustls::PrivateKey(private_key))
        .map_err(|e| invalid(cert, format!("certificate and key do not fit: {e}")))?;
    Ok(Arc::new(config))
}
