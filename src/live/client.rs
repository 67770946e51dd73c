//! One connected client's writer: the `ws-client-N` thread that moves frames from the
//! client's bounded queue onto its websocket.
//!
//! The upgraded connection is a single `Read + Write` object, so a thread blocked reading
//! it could not also write. The writer therefore only writes:
//! frames the client sends (pings, close) are never read and stay in the kernel buffer until
//! the connection ends. A client that goes away is noticed by the next write failing; so that
//! this also happens on a quiet stream, the writer sends an unsolicited pong (RFC 6455 §5.5.3,
//! a one-way heartbeat that needs no answer) after [`HubConfig::keepalive`] without frames.
//!
//! A write to a client that stopped reading blocks once the kernel buffers fill, for at most
//! the socket's write timeout ([`crate::http::listener::WRITE_TIMEOUT`]); only this thread
//! waits, holding no lock, and the hub meanwhile drops and then evicts the client.
//!
//! [`HubConfig::keepalive`]: super::HubConfig::keepalive

use super::fanout::{ClientLink, LinkState};
use super::handshake::Socket;
use super::Counters;
use crossbeam_channel::{Receiver, RecvTimeoutError};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::CloseFrame;
use tungstenite::{Bytes, Message, Utf8Bytes};

/// Most frames written before one flush, so a backlog goes out in few syscalls.
const FRAMES_PER_FLUSH: usize = 256;

/// The writer thread's body: runs until the hub closes the link, the queue disconnects or a
/// write fails.
pub fn ws_client_write(
    mut socket: Socket,
    queue_rx: Receiver<Utf8Bytes>,
    link: Arc<ClientLink>,
    counters: Arc<Counters>,
    keepalive: Duration,
) {
    match write_frames(&mut socket, &queue_rx, &link, &counters, keepalive) {
        Ok(()) => {
            let frame = match link.state() {
                LinkState::Evicted => CloseFrame {
                    code: CloseCode::Policy,
                    reason: "client too slow: its live queue stayed full".into(),
                },
                _ => CloseFrame {
                    code: CloseCode::Away,
                    reason: "server shutting down".into(),
                },
            };
            // Best effort: the client learns why, then the connection is dropped.
            let _ = socket.close(Some(frame));
            let _ = socket.flush();
        }
        Err(e) => crate::log_debug!("live client disconnected: {e}"),
    }
    link.close(LinkState::Failed);
}

fn write_frames(
    socket: &mut Socket,
    queue_rx: &Receiver<Utf8Bytes>,
    link: &ClientLink,
    counters: &Counters,
    keepalive: Duration,
) -> tungstenite::Result<()> {
    loop {
        let first = match queue_rx.recv_timeout(keepalive) {
            Ok(frame) => frame,
            Err(RecvTimeoutError::Timeout) => {
                if !link.is_open() {
                    return Ok(());
                }
                socket.send(Message::Pong(Bytes::new()))?;
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        };
        if !link.is_open() {
            return Ok(());
        }
        socket.write(Message::Text(first))?;
        let mut written = 1;
        while written < FRAMES_PER_FLUSH {
            let Ok(frame) = queue_rx.try_recv() else {
                break;
            };
            socket.write(Message::Text(frame))?;
            written += 1;
        }
        socket.flush()?;
        counters.sent.fetch_add(written as u64, Ordering::Relaxed);
    }
}
