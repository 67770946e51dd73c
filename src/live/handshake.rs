//! The websocket opening handshake (RFC 6455 §4.2) on a parsed HTTP request: checks its
//! headers, answers `101 Switching Protocols` with the derived `Sec-WebSocket-Accept`, and
//! turns the connection into a server-side [`WebSocket`]. A request that is not a valid
//! upgrade gets a JSON error (`{"error": "..."}`) and no socket.

use crate::http::router::Headers;
use crate::http::stream::Stream;
use crate::http::wire::{self, Method};
use tungstenite::handshake::derive_accept_key;
use tungstenite::protocol::Role;
use tungstenite::WebSocket;

/// The upgraded connection of one client.
pub type Socket = WebSocket<Stream>;

/// The only protocol version RFC 6455 defines.
const WEBSOCKET_VERSION: &str = "13";

/// Why a request cannot be upgraded: the HTTP status and a message for the client.
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub message: String,
}

impl Refusal {
    fn bad_request(message: impl Into<String>) -> Refusal {
        Refusal {
            status: 400,
            message: message.into(),
        }
    }
}

/// Checks an upgrade request and returns the `Sec-WebSocket-Accept` value to answer with.
pub fn check(method: &Method, headers: &Headers) -> Result<String, Refusal> {
    if *method != Method::Get {
        return Err(Refusal {
            status: 405,
            message: "the live stream is opened with GET /ws".into(),
        });
    }
    let header = |name: &'static str| headers.get(name).map(str::trim);
    let has_token = |name: &'static str, token: &str| {
        header(name).is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    };
    if !has_token("Upgrade", "websocket") {
        return Err(Refusal::bad_request(
            "expected header 'Upgrade: websocket' (GET /ws is a websocket endpoint)",
        ));
    }
    if !has_token("Connection", "upgrade") {
        return Err(Refusal::bad_request(
            "expected header 'Connection: Upgrade'",
        ));
    }
    match header("Sec-WebSocket-Version") {
        Some(WEBSOCKET_VERSION) => {}
        other => {
            return Err(Refusal {
                status: 426,
                message: format!(
                    "unsupported Sec-WebSocket-Version {:?}: only {WEBSOCKET_VERSION} is supported",
                    other.unwrap_or("")
                ),
            })
        }
    }
    let key = header("Sec-WebSocket-Key")
        .ok_or_else(|| Refusal::bad_request("missing header 'Sec-WebSocket-Key'"))?;
    if !is_valid_key(key) {
        return Err(Refusal::bad_request(format!(
            "Sec-WebSocket-Key {key:?} is not the base64 encoding of 16 bytes"
        )));
    }
    Ok(derive_accept_key(key.as_bytes()))
}

/// A key is 16 bytes in base64: 22 significant characters, the last of which carries only
/// two bits (so it is one of `AQgw`), then `==`.
fn is_valid_key(key: &str) -> bool {
    let bytes = key.as_bytes();
    let is_b64 = |c: &u8| c.is_ascii_alphanumeric() || *c == b'+' || *c == b'/';
    bytes.len() == 24
        && bytes[..21].iter().all(is_b64)
        && matches!(bytes[21], b'A' | b'Q' | b'g' | b'w')
        && &bytes[22..] == b"=="
}

/// Answers the request on `stream`: `101` and the upgraded socket, or the refusal as a
/// JSON error.
pub fn upgrade(method: &Method, headers: &Headers, mut stream: Stream) -> Option<Socket> {
    match check(method, headers) {
        Ok(accept) => {
            let answer = [
                ("Upgrade", "websocket"),
                ("Connection", "Upgrade"),
                ("Sec-WebSocket-Accept", accept.as_str()),
            ];
            let written = write_upgrade(&mut stream, &answer);
            written
                .ok()
                .map(|()| WebSocket::from_raw_socket(stream, Role::Server, None))
        }
        Err(refusal) => {
            let mut extra = Vec::new();
            if refusal.status == 426 {
                extra.push(("Sec-WebSocket-Version", WEBSOCKET_VERSION));
            }
            // The client may already be gone; there is nobody left to tell.
            let _ = json_error(&mut stream, refusal.status, &refusal.message, &extra);
            None
        }
    }
}

/// `101 Switching Protocols` with `headers` (no body, no length).
fn write_upgrade(stream: &mut Stream, headers: &[(&str, &str)]) -> std::io::Result<()> {
    use std::io::Write;
    let mut head = String::from("HTTP/1.1 101 Switching Protocols\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.flush()
}

/// Answers `{"error": message}` with `status` and closes.
pub fn json_error(
    stream: &mut Stream,
    status: u16,
    message: &str,
    extra: &[(&str, &str)],
) -> std::io::Result<()> {
    let body = serde_json::json!({ "error": message }).to_string();
    let mut headers = vec![("Content-Type", "application/json")];
    headers.extend_from_slice(extra);
    wire::write_response(stream, status, &headers, body.as_bytes(), false, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    fn headers(pairs: &[(&str, &str)]) -> Headers {
        Headers::new(pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())))
    }

    fn upgrade_headers() -> Vec<(&'static str, &'static str)> {
        vec![
            ("Host", "localhost"),
            ("Upgrade", "websocket"),
            ("Connection", "keep-alive, Upgrade"),
            ("Sec-WebSocket-Version", "13"),
            ("Sec-WebSocket-Key", KEY),
        ]
    }

    #[test]
    fn valid_request_gets_the_rfc_accept_key() {
        // The worked example of RFC 6455 §1.3.
        let accept = check(&Method::Get, &headers(&upgrade_headers())).unwrap();
        assert_eq!(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn missing_key_is_a_bad_request() {
        let mut pairs = upgrade_headers();
        pairs.retain(|(n, _)| *n != "Sec-WebSocket-Key");
        let refusal = check(&Method::Get, &headers(&pairs)).unwrap_err();
        assert_eq!(refusal.status, 400);
        assert!(refusal.message.contains("Sec-WebSocket-Key"));
    }

    #[test]
    fn malformed_key_is_a_bad_request() {
        for bad in [
            "short==",
            "dGhlIHNhbXBsZSBub25jZR==",
            "dGhlIHNhbXBsZSBub25j!Q==",
        ] {
            let mut pairs = upgrade_headers();
            pairs.retain(|(n, _)| *n != "Sec-WebSocket-Key");
            pairs.push(("Sec-WebSocket-Key", bad));
            let refusal = check(&Method::Get, &headers(&pairs)).unwrap_err();
            assert_eq!(refusal.status, 400, "key {bad:?}");
        }
    }

    #[test]
    fn plain_get_is_a_bad_request() {
        let refusal = check(&Method::Get, &headers(&[("Host", "localhost")])).unwrap_err();
        assert_eq!(refusal.status, 400);
        assert!(refusal.message.contains("Upgrade: websocket"));
    }

    #[test]
    fn other_versions_are_refused_with_426() {
        let mut pairs = upgrade_headers();
        pairs.retain(|(n, _)| *n != "Sec-WebSocket-Version");
        pairs.push(("Sec-WebSocket-Version", "8"));
        assert_eq!(
            check(&Method::Get, &headers(&pairs)).unwrap_err().status,
            426
        );
    }

    #[test]
    fn post_is_refused() {
        let refusal = check(&Method::Post, &headers(&upgrade_headers())).unwrap_err();
        assert_eq!(refusal.status, 405);
    }
}
