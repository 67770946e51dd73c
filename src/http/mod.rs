//! The node's HTTP API, dashboard and websocket entry, served by the `http-N` workers.
//!
//! A request goes: [`http_serve`] (one per `http-N` thread) reads it with a body limit
//! (16 MiB for `/write`, 64 KiB for the JSON endpoints, never more), hands `GET /ws` to the
//! live hub, and passes everything else to [`router::route`], which picks a handler in
//! [`handlers`] (or the dashboard in [`static_files`]) and returns a [`Reply`]. Handlers
//! never see a socket, so the whole API is tested by calling `route`.
//!
//! Every answer is JSON (errors are `{"error": "..."}`, see [`errors`]) except the dashboard
//! and `204 No Content`. Who may call what — credentials ([`auth`]) and other origins'
//! web pages ([`cors`]) — is decided in the router, for `/ws` too.

pub mod auth;
pub mod cors;
pub mod errors;
pub mod handlers;
pub mod json;
pub mod listener;
pub mod prometheus_api;
pub mod router;
pub mod static_files;
pub mod stream;
pub mod wire;

use crate::cluster::secret::{unix_now_ms, SignedRequest, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use crate::node::Node;
use crate::{log_debug, log_error};
use crossbeam_channel::{select, Receiver};
use errors::ApiError;
use listener::{Conn, HttpListener, Ready};
use serde::Serialize;
use static_files::Frontend;
use std::io::Write;
use std::time::{Duration, Instant};
use wire::Head;
pub use wire::Method;

/// Largest accepted write body (`/write`, `/api/v1/write`): a large Telegraf batch.
pub const MAX_WRITE_BODY: usize = 16 * 1024 * 1024;

/// Largest accepted body of the JSON endpoints.
pub const MAX_JSON_BODY: usize = 64 * 1024;

/// One answer, before it meets a socket.
#[derive(Clone, Debug, PartialEq)]
pub struct Reply {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
    pub headers: Vec<(&'static str, String)>,
}

impl Reply {
    pub fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status,
            content_type,
            body: body.into(),
            headers: Vec::new(),
        }
    }

    /// `value` as a JSON answer.
    pub fn json(status: u16, value: &impl Serialize) -> Reply {
        match serde_json::to_vec(value) {
            Ok(body) => Reply::new(status, "application/json", body),
            Err(e) => {
                log_error!("answer not serializable: {e}");
                Reply::error(500, "internal error: answer not serializable")
            }
        }
    }

    /// `{"error": message}`.
    pub fn error(status: u16, message: &str) -> Reply {
        let body = serde_json::json!({ "error": message }).to_string();
        Reply::new(status, "application/json", body)
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }

    /// The value of header `name` (case-insensitive), for tests.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP worker's body: serves complete requests from the listen loop until
/// `shutdown_rx` disconnects.
pub fn http_serve(node: &Node, http: &HttpListener, shutdown_rx: &Receiver<()>) {
    let frontend = Frontend::from_env();
    loop {
        select! {
            recv(shutdown_rx) -> _ => return,
            recv(http.requests()) -> ready => match ready {
                Ok(ready) => serve_request(node, &frontend, http, ready),
                Err(_) => return,
            },
        }
    }
}

/// Reads one request's body, answers it, and gives the connection back when it stays open.
fn serve_request(node: &Node, frontend: &Frontend, http: &HttpListener, ready: Ready) {
    let Ready { mut conn, head } = ready;
    let url = head.target.as_str();
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    let method = &head.method;
    let headers = router::Headers::new(head.headers.iter().cloned());
    let remote = Some(conn.peer);
    if *method == Method::Get && path == "/ws" {
        let live = router::ApiRequest {
            method,
            path,
            query,
            headers: &headers,
            body: &[],
            remote,
            from_peer: false,
        };
        match router::admit_live(node, &live) {
            Ok(()) => node
                .hub
                .accept(method, &headers, conn.peer, conn.into_stream()),
            Err(reply) => {
                let _ = respond(&mut conn, method, reply, false);
            }
        }
        return;
    }
    conn.set_read_deadline(Instant::now() + listener::BODY_TIMEOUT);
    let body = read_request_body(&mut conn, &head, path);
    let body_read = body.is_ok();
    let body = body.and_then(|body| {
        let from_peer = peer_signed(node, method.as_str(), url, path, &headers, &body)?;
        Ok((body, from_peer))
    });
    let reply = match body {
        Ok((body, from_peer)) => {
            let request = router::ApiRequest {
                method,
                path,
                query,
                headers: &headers,
                body: &body,
                remote,
                from_peer,
            };
            let started = Instant::now();
            // A handler bug must cost one request, not a worker thread.
            let reply = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                router::route(node, frontend, &request)
            }))
            .unwrap_or_else(|_| {
                log_error!("{method} {path}: handler panicked");
                Reply::error(500, "internal error")
            });
            node.request_latency.observe(path, started.elapsed());
            reply
        }
        Err(e) => e.into_reply(),
    };
    log_debug!("{method} {url} -> {}", reply.status);
    // A body left unread (refused before or while reading) would be taken for the next
    // request: such connections close.
    let keep_alive = body_read && head.keep_alive();
    let answered = respond(&mut conn, method, reply, keep_alive).is_ok();
    if answered && keep_alive {
        http.keep_alive(conn);
    } else if answered && !body_read {
        linger(conn);
    }
}

/// How long a connection whose body was refused unread is drained before it closes.
const LINGER: Duration = Duration::from_secs(2);

/// Closes a connection whose client may still be sending a refused body. Closing with
/// unread bytes makes the kernel send a reset, which can destroy the answer before the
/// client reads it; so, as nginx's lingering close does, the write side is shut and
/// input is discarded for at most [`LINGER`] first.
fn linger(mut conn: Conn) {
    let _ = conn.stream().tcp().shutdown(std::net::Shutdown::Write);
    conn.set_read_deadline(Instant::now() + LINGER);
    let _ = std::io::copy(&mut conn, &mut std::io::sink());
}

/// The body of `head`'s request, within the endpoint's limit; answers `100 Continue`
/// first when the client waits for it.
fn read_request_body(conn: &mut Conn, head: &Head, path: &str) -> Result<Vec<u8>, ApiError> {
    let limit = body_limit(path);
    let framing = head.framing().map_err(wire_error)?;
    if matches!(framing, wire::Framing::Length(n) if n > limit as u64) {
        return Err(ApiError::too_large(limit));
    }
    if head.expects_continue() {
        let stream = conn.stream();
        stream
            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            .and_then(|()| stream.flush())
            .map_err(|e| ApiError::bad_request(format!("cannot answer 100 Continue: {e}")))?;
    }
    wire::read_body(conn, framing, limit).map_err(wire_error)
}

fn wire_error(e: wire::WireError) -> ApiError {
    ApiError::new(e.status, e.message)
}

/// Whether a peer signed this request with the cluster secret, checked once. An
/// `/internal/*` request must be signed when the node has a secret (401 otherwise, counted
/// in `/status`); elsewhere a signature matters only when tokens are asked, where it lets
/// a peer's call pass as admin.
fn peer_signed(
    node: &Node,
    method: &str,
    url: &str,
    path: &str,
    headers: &router::Headers,
    body: &[u8],
) -> Result<bool, ApiError> {
    let signed = SignedRequest {
        method,
        path_and_query: url,
        timestamp: headers.get(TIMESTAMP_HEADER),
        signature: headers.get(SIGNATURE_HEADER),
        body,
    };
    if path.starts_with("/internal/") {
        node.trust
            .check_request(&signed, unix_now_ms())
            .map_err(|refusal| {
                ApiError::new(401, format!("{path} is for cluster peers: {refusal}"))
            })?;
        return Ok(node.trust.secret().is_some());
    }
    Ok(node.tokens.is_some()
        && signed.signature.is_some()
        && node.trust.is_signed_by_cluster(&signed))
}

/// The body limit of the endpoint at `path`.
pub fn body_limit(path: &str) -> usize {
    if router::is_write_path(path) {
        MAX_WRITE_BODY
    } else {
        MAX_JSON_BODY
    }
}

/// Writes `reply` on the connection.
fn respond(
    conn: &mut Conn,
    method: &Method,
    reply: Reply,
    keep_alive: bool,
) -> std::io::Result<()> {
    let headers: Vec<(&str, &str)> = std::iter::once(("Content-Type", reply.content_type))
        .chain(reply.headers.iter().map(|(n, v)| (*n, v.as_str())))
        .collect();
    wire::write_response(
        conn.stream(),
        reply.status,
        &headers,
        &reply.body,
        keep_alive,
        *method == Method::Head,
    )
    .inspect_err(|e| log_debug!("client went away before the answer: {e}"))
}

/// Decodes `%XX` escapes and `+` (as a space, in query strings only when `plus` is set).
/// `None` when an escape is malformed or the result is not UTF-8.
pub(crate) fn decode(text: &str, plus: bool) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' if plus => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// Decodes a URL path.
pub fn percent_decode(path: &str) -> Option<String> {
    decode(path, false)
}

/// The decoded value of parameter `name` in a query string (the first, if repeated).
pub fn query_param(query: &str, name: &str) -> Result<Option<String>, ApiError> {
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if decode(key, true).as_deref() == Some(name) {
            return decode(value, true).map(Some).ok_or_else(|| {
                ApiError::bad_request(format!("invalid {name}: bad percent-encoding"))
            });
        }
    }
    Ok(None)
}

/// A [`Node`] over a fresh temporary store, removed on drop.
#[cfg(test)]
pub(crate) mod test_node {
    use crate::config::{Config, Mode};
    use crate::node::Node;
    use crate::storage::{Engine, EngineConfig};
    use std::path::PathBuf;

    pub struct TestNode {
        pub node: Node,
        dir: PathBuf,
    }

    impl TestNode {
        pub fn new(name: &str) -> TestNode {
            TestNode::with_mode(name, Mode::All)
        }

        pub fn with_mode(name: &str, mode: Mode) -> TestNode {
            TestNode::build(name, mode, |_| {})
        }

        /// A node asking for the tokens of auth file text `auth_toml`.
        pub fn with_auth(name: &str, auth_toml: &str) -> TestNode {
            TestNode::build(name, Mode::All, |config| {
                let path = config.data_dir.join("auth.toml");
                std::fs::write(&path, auth_toml).expect("write the auth file");
                config.auth_file = Some(path);
            })
        }

        /// A node whose configuration `adjust` may change before the node is made.
        pub fn build(name: &str, mode: Mode, adjust: impl FnOnce(&mut Config)) -> TestNode {
            let dir =
                std::env::temp_dir().join(format!("minitrue-http-{}-{name}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            let (engine, _) = Engine::open(&dir, EngineConfig::default()).expect("open store");
            let mut config = Config {
                mode,
                node_id: "test".into(),
                http_addr: "127.0.0.1:0".parse().expect("address"),
                gossip_addr: "127.0.0.1:0".parse().expect("address"),
                advertise_host: "127.0.0.1".into(),
                broker: "tcp://127.0.0.1:1".into(),
                broker_addr: crate::mqtt_link::parse_broker_url("tcp://127.0.0.1:1")
                    .expect("a valid broker url"),
                broker_security: Default::default(),
                topic_layouts: Default::default(),
                data_dir: dir.clone(),
                seeds: Vec::new(),
                log_level: "error".into(),
                retention: None,
                strict_wal: false,
                replication: 1,
                http_workers: 1,
                max_connections: 64,
                max_future: crate::ingest::timestamp::DEFAULT_MAX_FUTURE,
                suspect_timeout: std::time::Duration::from_secs(3),
                dead_timeout: std::time::Duration::from_secs(10),
                gossip_interval: std::time::Duration::from_millis(500),
                auth_file: None,
                cors: Default::default(),
                cluster_secret: None,
                tls: None,
                tombstone_grace: std::time::Duration::from_secs(240 * 3600),
                keep_stale_data: false,
                dead_member_expiry: crate::cluster::membership::DEFAULT_DEAD_MEMBER_EXPIRY,
            };
            adjust(&mut config);
            TestNode {
                node: Node::new(config, engine).expect("node over a fresh store"),
                dir,
            }
        }
    }

    impl Drop for TestNode {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_endpoints_get_the_large_limit() {
        assert_eq!(body_limit("/write"), MAX_WRITE_BODY);
        assert_eq!(body_limit("/api/v2/write"), MAX_WRITE_BODY);
        assert_eq!(body_limit("/api/v1/write"), MAX_WRITE_BODY);
        assert_eq!(body_limit("/query"), MAX_JSON_BODY);
    }

    #[test]
    fn query_params_are_decoded() {
        assert_eq!(
            query_param("a=1&device_id=sensor%201", "device_id").unwrap(),
            Some("sensor 1".into())
        );
        assert_eq!(
            query_param("device_id=a+b", "device_id").unwrap(),
            Some("a b".into())
        );
        assert_eq!(query_param("x=1", "device_id").unwrap(), None);
        assert_eq!(
            query_param("device_id=%zz", "device_id")
                .unwrap_err()
                .status,
            400
        );
    }

    #[test]
    fn error_reply_is_json() {
        let r = Reply::error(404, "no such endpoint: /x");
        assert_eq!(r.content_type, "application/json");
        assert_eq!(r.body, br#"{"error":"no such endpoint: /x"}"#);
    }
}
