//! A minimal blocking HTTP/1.1 client for node-to-node calls: one request per connection,
//! connect/read/write timeouts, a bounded response. Peers are our own nodes, so this needs
//! no redirects or chunked uploads — only what our server answers (`Content-Length`
//! bodies, see `http::wire`). It is the only client of node-to-node HTTP
//! (coordinator fan-out, routed writes, handoff, repair), so how a node reaches its peers
//! is decided here once ([`PeerLink`]): with a cluster secret every request is signed (see
//! [`secret`](crate::cluster::secret)), and in a TLS cluster (`--tls_ca`) every call is
//! HTTPS, the peer's certificate checked against the cluster's CAs and the address dialled
//! (IP or host name).

use crate::cluster::secret::{unix_now_ms, ClusterSecret};
use crate::error::{Error, Result};
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, StreamOwned};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::sync::Arc;
use std::time::Duration;

/// Largest response body accepted from a peer.
pub const MAX_PEER_RESPONSE: usize = 64 * 1024 * 1024;

/// A peer's answer: status and body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerResponse {
    pub status: u16,
    pub body: Vec<u8>,
}

/// How this node talks to its peers: the secret that signs each request (if the cluster
/// has one) and the TLS client configuration (if the cluster speaks HTTPS).
#[derive(Clone, Copy, Debug, Default)]
pub struct PeerLink<'a> {
    pub secret: Option<&'a ClusterSecret>,
    pub tls: Option<&'a Arc<ClientConfig>>,
}

/// Sends `method path` with `body` (JSON) to `addr` (`host:port`) over `link`, and reads
/// the answer, failing with [`Error::Peer`] on any network or TLS problem or a timeout.
/// `path` includes the query string.
pub fn call(
    addr: &str,
    method: &str,
    path: &str,
    body: &[u8],
    timeout: Duration,
    link: PeerLink<'_>,
) -> Result<PeerResponse> {
    let fail = |reason: String| Error::peer(addr, reason);
    let socket = addr
        .to_socket_addrs()
        .map_err(|e| fail(format!("cannot resolve: {e}")))?
        .next()
        .ok_or_else(|| fail("resolves to no address".into()))?;
    let stream =
        TcpStream::connect_timeout(&socket, timeout).map_err(|e| fail(format!("connect: {e}")))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|_| stream.set_write_timeout(Some(timeout)))
        .and_then(|_| stream.set_nodelay(true))
        .map_err(|e| fail(format!("socket options: {e}")))?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(secret) = link.secret {
        for (name, value) in secret.sign_request(method, path, body, unix_now_ms()) {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    head.push_str("\r\n");
    let mut request = head.into_bytes();
    request.extend_from_slice(body);
    match link.tls {
        None => exchange(stream, &request),
        Some(tls) => {
            let name = ServerName::try_from(host_of(addr).to_string())
                .map_err(|e| fail(format!("no TLS server name in {addr:?}: {e}")))?;
            let connection = ClientConnection::new(Arc::clone(tls), name)
                .map_err(|e| fail(format!("tls: {e}")))?;
            exchange(StreamOwned::new(connection, stream), &request)
        }
    }
    .map_err(fail)
}

/// Writes `request` and reads the answer on one connection, plain or TLS (the handshake
/// happens on the first write).
fn exchange(
    mut stream: impl Read + Write,
    request: &[u8],
) -> std::result::Result<PeerResponse, String> {
    stream
        .write_all(request)
        .and_then(|()| stream.flush())
        .map_err(|e| format!("send: {e}"))?;
    read_response(BufReader::new(stream))
}

/// The host part of `host:port` (`[v6]:port` gives `v6`).
fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

fn read_response(mut reader: impl BufRead) -> std::result::Result<PeerResponse, String> {
    let mut line = String::new();
    reader
        .read_line(&mut line)
        .map_err(|e| format!("read status: {e}"))?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {:?}", line.trim_end()))?;
    let mut content_length = None;
    let mut chunked = false;
    loop {
        line.clear();
        reader
            .read_line(&mut line)
            .map_err(|e| format!("read header: {e}"))?;
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                content_length = Some(
                    value
                        .parse::<usize>()
                        .map_err(|_| format!("bad content-length {value:?}"))?,
                );
            } else if name.eq_ignore_ascii_case("transfer-encoding")
                && value.eq_ignore_ascii_case("chunked")
            {
                chunked = true;
            }
        }
    }
    let body = if chunked {
        read_chunked(&mut reader)?
    } else if let Some(len) = content_length {
        if len > MAX_PEER_RESPONSE {
            return Err(format!("response of {len} bytes is too large"));
        }
        let mut body = vec![0; len];
        reader
            .read_exact(&mut body)
            .map_err(|e| format!("read body: {e}"))?;
        body
    } else {
        let mut body = Vec::new();
        reader
            .take(MAX_PEER_RESPONSE as u64 + 1)
            .read_to_end(&mut body)
            .map_err(|e| format!("read body: {e}"))?;
        if body.len() > MAX_PEER_RESPONSE {
            return Err("response too large".into());
        }
        body
    };
    Ok(PeerResponse { status, body })
}

fn read_chunked(reader: &mut impl BufRead) -> std::result::Result<Vec<u8>, String> {
    let mut body = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        reader
            .read_line(&mut line)
            .map_err(|e| format!("read chunk size: {e}"))?;
        let size_text = line.trim_end().split(';').next().unwrap_or("");
        let size = usize::from_str_radix(size_text, 16)
            .map_err(|_| format!("bad chunk size {size_text:?}"))?;
        if size == 0 {
            return Ok(body);
        }
        if body.len() + size > MAX_PEER_RESPONSE {
            return Err("response too large".into());
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader
            .read_exact(&mut body[start..])
            .map_err(|e| format!("read chunk: {e}"))?;
        line.clear();
        reader
            .read_line(&mut line)
            .map_err(|e| format!("read chunk end: {e}"))?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_content_length_and_chunked_bodies() {
        let plain = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        let r = read_response(&plain[..]).unwrap();
        assert_eq!((r.status, r.body.as_slice()), (200, &b"hello"[..]));
        let chunked =
            b"HTTP/1.1 503 Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        let r = read_response(&chunked[..]).unwrap();
        assert_eq!((r.status, r.body.as_slice()), (503, &b"abcde"[..]));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(read_response(&b"nonsense\r\n\r\n"[..]).is_err());
        assert!(read_response(&b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"[..]).is_err());
        assert!(read_response(&b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"[..]).is_err());
    }

    #[test]
    fn host_of_strips_the_port_and_brackets() {
        assert_eq!(host_of("10.0.0.5:8080"), "10.0.0.5");
        assert_eq!(host_of("node-a.local:8443"), "node-a.local");
        assert_eq!(host_of("[::1]:8080"), "::1");
    }

    #[test]
    fn unreachable_peer_is_a_peer_error() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let e = call(
            &format!("127.0.0.1:{port}"),
            "GET",
            "/health",
            b"",
            Duration::from_millis(200),
            PeerLink::default(),
        )
        .unwrap_err();
        assert!(matches!(e, Error::Peer { .. }), "{e}");
    }
}
