//! Loopback ports for test processes, handed out from below the kernel's ephemeral range.
//!
//! Asking the kernel for port 0 and releasing it races: the same number is the next pick
//! for any outgoing connection's local end (a peer call, a broker client), so a node that
//! starts, or restarts after a kill, on "its" port a moment later can find it taken
//! (`Address already in use`, seen in CI). Ports 20000–32767 lie below Linux's default
//! ephemeral range (32768–60999), so no outgoing connection is ever given one. Each test
//! process starts at an offset derived from its PID and walks forward with an atomic
//! counter, so the threads of one process never get the same port twice, and a port is
//! handed out only after a listener could bind it.
//!
//! Shared by `common/mod.rs` and by the test files that do not use the whole harness
//! (`#[path = "common/ports.rs"] mod ports;`).

use std::net::TcpListener;
use std::sync::atomic::{AtomicU32, Ordering};

/// First port handed out.
const LOWEST: u32 = 20_000;
/// How many ports there are to hand out (up to 32767, below the ephemeral range).
const SPAN: u32 = 12_768;

/// A loopback port that no other call in this process has returned, free a moment ago,
/// and never chosen by the kernel for an outgoing connection.
pub fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    // Processes run one after another mostly; the PID spread keeps overlapping ones apart.
    let start = std::process::id().wrapping_mul(613) % SPAN;
    for _ in 0..SPAN {
        let step = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = LOWEST + (start + step) % SPAN;
        let port = u16::try_from(port).expect("ports stay below 32768");
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free loopback port in {LOWEST}..{}", LOWEST + SPAN)
}
