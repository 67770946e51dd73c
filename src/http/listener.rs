//! The HTTP connection layer: one `http-listen` thread owns the listening socket and every
//! connection that is waiting for a request head; the `http-N` workers get only complete
//! heads. Idle, slow and half-sent connections therefore cost a file descriptor and a small
//! buffer, never a thread, so a flood cannot exhaust threads (tiny_http, used before,
//! spawned one thread per connection, stopped accepting for good on the first `accept`
//! error, and had no timeouts: issue 12).
//!
//! The rules, with the defaults nginx and Go's net/http taught users to expect:
//! - at most `max_connections` open connections (`--max_connections`; by default half the
//!   file descriptors this process may open, which is raised to its hard limit at start,
//!   between 64 and 10,000). A connection above the cap closes the one that has waited
//!   longest for a request (an idle keep-alive or a half-sent head), so a fresh client is
//!   always served; with none waiting, the newcomer gets `503` and is closed;
//! - a request head must arrive within [`HEADER_TIMEOUT`] of the connection (or of its
//!   first byte after an idle keep-alive) and fit in [`wire::MAX_HEAD`] bytes;
//! - an idle keep-alive connection is closed after [`IDLE_TIMEOUT`];
//! - a worker reads the body within [`BODY_TIMEOUT`] and writes the answer within
//!   [`WRITE_TIMEOUT`];
//! - when every worker is busy and [`QUEUED_PER_WORKER`] heads per worker wait, a new
//!   request is answered `503` at once;
//! - `accept` errors (out of descriptors, out of memory) are counted, logged at most every
//!   10 s, and survived: the oldest waiting connection is closed to free a descriptor, or
//!   accepting pauses for 100 ms.
//!
//! Waiting uses `poll(2)` on Unix; elsewhere the loop polls its non-blocking sockets every
//! 5 ms. Counters are in `/status` under `http`.

use super::stream::Stream;
use super::wire::{self, Head};
use crate::throttle::Throttle;
use crate::{log_debug, log_warn};
use crossbeam_channel::{bounded, Receiver, Sender, TryRecvError, TrySendError};
use serde::Serialize;
use std::io::{self, BufRead, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// `accept` errors (out of descriptors) are logged at most this often.
const ACCEPT_ERROR_LOG_EVERY: Duration = Duration::from_secs(10);

/// How long a connection may take to send a complete request head.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a kept-alive connection may stay idle between requests.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a worker waits for a whole request body.
pub const BODY_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a worker (or the websocket writer) waits on one blocked write.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

/// Complete heads that may wait for a worker, per worker. A head is at most 16 KiB, so
/// 8 workers' queues hold at most 16 MiB; 16 per worker refused a burst of 200 concurrent
/// clients (`make bench`'s query load) with 503s that waiting a few milliseconds avoids.
pub const QUEUED_PER_WORKER: usize = 128;

/// Longest the listen loop sleeps before it looks at its deadlines and shutdown again.
const POLL_SLICE: Duration = Duration::from_millis(250);

/// How long accepting pauses after an `accept` error with nothing to close.
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// Most connections accepted in one turn of the loop, so reads are not starved.
const ACCEPTS_PER_TURN: usize = 256;

/// The answer to a connection the node cannot take now.
const BUSY_ANSWER: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n\
Content-Length: 47\r\nRetry-After: 1\r\nConnection: close\r\n\r\n{\"error\":\"server busy: too many open requests\"}";

/// The connection cap when `--max_connections` is 0: half of the descriptors this
/// process may open, between 64 and 10,000.
pub fn default_max_connections() -> usize {
    (raise_descriptor_limit() / 2).clamp(64, 10_000)
}

/// Raises the soft limit on open descriptors to the hard limit (as Go's runtime does) and
/// returns it.
#[cfg(unix)]
fn raise_descriptor_limit() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed by pointer.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit.rlim_cur = limit.rlim_max;
            }
        }
    }
    usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX)
}

#[cfg(not(unix))]
fn raise_descriptor_limit() -> usize {
    2048
}

/// What `/status` shows of the connection layer.
#[derive(Debug, Default, Serialize)]
pub struct HttpStats {
    pub open_connections: AtomicUsize,
    pub max_connections: AtomicUsize,
    pub accepted: AtomicU64,
    /// Closed while waiting for a request, to make room for a newer connection.
    pub evicted: AtomicU64,
    /// Answered 503 because the cap or the worker queue was full.
    pub refused_busy: AtomicU64,
    /// Closed because a head or an idle keep-alive outlived its timeout.
    pub timed_out: AtomicU64,
    /// Heads refused as malformed (4xx/5xx answered, connection closed).
    pub malformed: AtomicU64,
    pub accept_errors: AtomicU64,
}

/// Holds one place under the cap; gives it back when dropped.
struct Slot(Arc<HttpStats>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.open_connections.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One client connection with the bytes read from it but not yet used.
pub struct Conn {
    stream: Stream,
    buf: Vec<u8>,
    start: usize,
    pub peer: SocketAddr,
    /// When reads give up (a worker's body deadline); `None` while the listen loop owns it.
    read_deadline: Option<Instant>,
    _slot: Slot,
}

impl Conn {
    /// Gives the connection away for good (to the websocket writer): it no longer counts
    /// under the cap. Bytes already read past the head are dropped.
    pub fn into_stream(self) -> Stream {
        self.stream
    }

    /// Writes raw bytes (a `100 Continue`, an answer).
    pub fn stream(&mut self) -> &mut Stream {
        &mut self.stream
    }

    /// Reads stop with `TimedOut` at `deadline`.
    pub fn set_read_deadline(&mut self, deadline: Instant) {
        self.read_deadline = Some(deadline);
    }

    fn unused(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    /// Reads what the socket has without blocking. `Ok(false)`: the peer closed.
    fn read_available(&mut self, cap: usize) -> io::Result<bool> {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        let mut chunk = [0u8; 4096];
        while self.buf.len() <= cap {
            match self.stream.read(&mut chunk) {
                Ok(0) => return Ok(false),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            if wire::head_end(&self.buf).is_some() {
                break;
            }
        }
        // A TLS handshake may have answers to send; a full socket is retried on POLLOUT.
        match self.stream.flush_tls() {
            Err(e) if e.kind() != io::ErrorKind::WouldBlock => Err(e),
            _ => Ok(true),
        }
    }
}

impl Read for Conn {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = {
            let available = self.fill_buf()?;
            let n = available.len().min(out.len());
            out[..n].copy_from_slice(&available[..n]);
            n
        };
        self.consume(n);
        Ok(n)
    }
}

impl BufRead for Conn {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
            if let Some(deadline) = self.read_deadline {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(io::ErrorKind::TimedOut.into());
                }
                self.stream.tcp().set_read_timeout(Some(left))?;
            }
            self.buf.resize(16 * 1024, 0);
            let n = loop {
                match self.stream.read(&mut self.buf) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    other => break other,
                }
            };
            self.buf.truncate(*n.as_ref().unwrap_or(&0));
            n?;
        }
        Ok(&self.buf[self.start..])
    }

    fn consume(&mut self, amount: usize) {
        self.start = (self.start + amount).min(self.buf.len());
    }
}

/// A complete head, handed to a worker with its connection.
pub struct Ready {
    pub conn: Conn,
    pub head: Head,
}

/// A connection in the listen loop's table. The table is kept in the order connections
/// entered it, so the first is the one that has waited longest (closed first for room).
struct Waiting {
    conn: Conn,
    deadline: Instant,
}

/// The listening socket, the table's limits and the queues between the listen loop and
/// the workers.
pub struct HttpListener {
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    max_connections: usize,
    ready_tx: Sender<Ready>,
    ready_rx: Receiver<Ready>,
    back_tx: Sender<Conn>,
    back_rx: Receiver<Conn>,
    wake: Wake,
    stats: Arc<HttpStats>,
    /// `accept` errors are logged at most every [`ACCEPT_ERROR_LOG_EVERY`].
    accept_log: Mutex<Throttle>,
}

impl HttpListener {
    /// Binds `addr`, serving TLS when `tls` is set.
    pub fn bind(
        addr: SocketAddr,
        tls: Option<Arc<rustls::ServerConfig>>,
        workers: usize,
        max_connections: usize,
        stats: Arc<HttpStats>,
    ) -> io::Result<HttpListener> {
        let listener = TcpListener::bind(addr)?;
        widen_backlog(&listener);
        listener.set_nonblocking(true)?;
        let (ready_tx, ready_rx) = bounded(workers.max(1) * QUEUED_PER_WORKER);
        // A worker never waits to give a connection back.
        let (back_tx, back_rx) = crossbeam_channel::unbounded();
        stats
            .max_connections
            .store(max_connections, Ordering::Relaxed);
        Ok(HttpListener {
            listener,
            tls,
            max_connections: max_connections.max(1),
            ready_tx,
            ready_rx,
            back_tx,
            back_rx,
            wake: Wake::new()?,
            stats,
            accept_log: Mutex::new(Throttle::new(ACCEPT_ERROR_LOG_EVERY)),
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    pub fn stats(&self) -> &HttpStats {
        &self.stats
    }

    /// Where workers take complete requests from.
    pub fn requests(&self) -> &Receiver<Ready> {
        &self.ready_rx
    }

    /// A worker gives back a connection to wait for its next request.
    pub fn keep_alive(&self, conn: Conn) {
        if self.back_tx.send(conn).is_ok() {
            self.wake.wake();
        }
    }

    /// The `http-listen` thread's body: runs until `shutdown_rx` disconnects.
    pub fn listen(&self, shutdown_rx: &Receiver<()>) {
        let mut waiting: Vec<Waiting> = Vec::new();
        let mut paused_until: Option<Instant> = None;
        let mut ready = Vec::new();
        loop {
            if !matches!(shutdown_rx.try_recv(), Err(TryRecvError::Empty)) {
                return;
            }
            let now = Instant::now();
            let before = waiting.len();
            waiting.retain(|w| w.deadline > now);
            let expired = before - waiting.len();
            if expired > 0 {
                self.stats
                    .timed_out
                    .fetch_add(expired as u64, Ordering::Relaxed);
            }
            if paused_until.is_some_and(|t| t <= now) {
                paused_until = None;
            }
            let next_deadline = waiting.iter().map(|w| w.deadline).min();
            let timeout = next_deadline
                .map_or(POLL_SLICE, |d| d.saturating_duration_since(now))
                .min(POLL_SLICE);
            let readiness = wait_ready(
                &self.wake,
                paused_until.is_none().then_some(&self.listener),
                &waiting,
                timeout,
            );
            let (listener_ready, conn_ready) = match readiness {
                Ok(r) => r,
                Err(e) => {
                    log_warn!("http: poll failed: {e}");
                    std::thread::sleep(ACCEPT_PAUSE);
                    continue;
                }
            };

            // Connections with bytes (or a hang-up) to look at.
            let mut kept = Vec::with_capacity(waiting.len());
            for (mut w, has_news) in waiting.drain(..).zip(conn_ready) {
                if !has_news {
                    kept.push(w);
                    continue;
                }
                match w.conn.read_available(wire::MAX_HEAD) {
                    Ok(true) => {}
                    Ok(false) | Err(_) => continue,
                }
                match self.take_head(&mut w.conn) {
                    HeadState::Incomplete => {
                        if !w.conn.buf.is_empty() && w.deadline > now + HEADER_TIMEOUT {
                            // The first byte after an idle keep-alive starts the head's clock.
                            w.deadline = now + HEADER_TIMEOUT;
                        }
                        kept.push(w);
                    }
                    HeadState::Complete(head) => ready.push(Ready { conn: w.conn, head }),
                    HeadState::Refused => {}
                }
            }
            waiting = kept;

            if listener_ready {
                paused_until = self.accept_new(&mut waiting, now);
            }
            while let Ok(conn) = self.back_rx.try_recv() {
                self.wait_again(conn, &mut waiting, &mut ready, now);
            }
            for request in ready.drain(..) {
                self.dispatch(request);
            }
        }
    }

    /// Accepts what is pending. Returns when accepting should resume after an error.
    fn accept_new(&self, waiting: &mut Vec<Waiting>, now: Instant) -> Option<Instant> {
        for _ in 0..ACCEPTS_PER_TURN {
            match self.listener.accept() {
                Ok((tcp, peer)) => self.admit(tcp, peer, waiting, now),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_transient_accept_error(&e) => {
                    self.count_accept_error(&e);
                    // Out of descriptors: close the connection that waited longest, which
                    // frees one for a client that will send a request.
                    if waiting.is_empty() {
                        return Some(now + ACCEPT_PAUSE);
                    }
                    waiting.remove(0);
                    self.stats.evicted.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    self.count_accept_error(&e);
                    return Some(now + ACCEPT_PAUSE);
                }
            }
        }
        None
    }

    /// Takes one new connection under the cap.
    fn admit(&self, tcp: TcpStream, peer: SocketAddr, waiting: &mut Vec<Waiting>, now: Instant) {
        self.stats.accepted.fetch_add(1, Ordering::Relaxed);
        let open = self.stats.open_connections.load(Ordering::Relaxed);
        if open >= self.max_connections {
            if waiting.is_empty() {
                // Every open connection is being served: this one cannot be.
                self.stats.refused_busy.fetch_add(1, Ordering::Relaxed);
                if self.tls.is_none() {
                    let _ = tcp.set_nonblocking(true);
                    let _ = (&tcp).write(BUSY_ANSWER);
                }
                return;
            }
            waiting.remove(0);
            self.stats.evicted.fetch_add(1, Ordering::Relaxed);
        }
        self.stats.open_connections.fetch_add(1, Ordering::Relaxed);
        let slot = Slot(self.stats.clone());
        let _ = tcp.set_nodelay(true);
        if let Err(e) = tcp.set_nonblocking(true) {
            log_debug!("http: {peer}: {e}");
            return;
        }
        let stream = match Stream::new(tcp, self.tls.as_ref()) {
            Ok(stream) => stream,
            Err(e) => {
                log_debug!("http: {peer}: {e}");
                return;
            }
        };
        waiting.push(Waiting {
            conn: Conn {
                stream,
                buf: Vec::new(),
                start: 0,
                peer,
                read_deadline: None,
                _slot: slot,
            },
            deadline: now + HEADER_TIMEOUT,
        });
    }

    /// A connection back from a worker: its next request may already be buffered
    /// (pipelining); otherwise it waits, idle.
    fn wait_again(
        &self,
        mut conn: Conn,
        waiting: &mut Vec<Waiting>,
        ready: &mut Vec<Ready>,
        now: Instant,
    ) {
        conn.read_deadline = None;
        if conn.stream.tcp().set_nonblocking(true).is_err() {
            return;
        }
        let deadline = if conn.unused().is_empty() {
            now + IDLE_TIMEOUT
        } else {
            now + HEADER_TIMEOUT
        };
        match self.take_head(&mut conn) {
            HeadState::Complete(head) => ready.push(Ready { conn, head }),
            HeadState::Refused => {}
            HeadState::Incomplete => waiting.push(Waiting { conn, deadline }),
        }
    }

    /// Parses the head at the start of the connection's unused bytes, if complete.
    fn take_head(&self, conn: &mut Conn) -> HeadState {
        let unused = conn.unused();
        let Some(end) = wire::head_end(unused) else {
            if unused.len() > wire::MAX_HEAD {
                self.refuse(
                    conn,
                    431,
                    &format!("request head longer than {} bytes", wire::MAX_HEAD),
                );
                return HeadState::Refused;
            }
            return HeadState::Incomplete;
        };
        match wire::parse_head(&unused[..end]) {
            Ok(head) => {
                conn.start += end;
                HeadState::Complete(head)
            }
            Err(e) => {
                self.refuse(conn, e.status, &e.message);
                HeadState::Refused
            }
        }
    }

    /// Answers a malformed head (best effort, without blocking) before the connection
    /// closes.
    fn refuse(&self, conn: &mut Conn, status: u16, message: &str) {
        self.stats.malformed.fetch_add(1, Ordering::Relaxed);
        let body = serde_json::json!({ "error": message }).to_string();
        let stream = conn.stream();
        let _ = wire::write_response(
            stream,
            status,
            &[("Content-Type", "application/json")],
            body.as_bytes(),
            false,
            false,
        );
    }

    /// Hands a complete request to the workers, or answers 503 when they are all busy.
    fn dispatch(&self, mut request: Ready) {
        let tcp = request.conn.stream.tcp();
        if tcp.set_nonblocking(false).is_err()
            || tcp.set_write_timeout(Some(WRITE_TIMEOUT)).is_err()
        {
            return;
        }
        match self.ready_tx.try_send(request) {
            Ok(()) => {}
            Err(TrySendError::Full(r)) => {
                request = r;
                self.stats.refused_busy.fetch_add(1, Ordering::Relaxed);
                let stream = request.conn.stream();
                let _ = stream
                    .tcp()
                    .set_write_timeout(Some(Duration::from_millis(100)));
                let _ = stream.write_all(BUSY_ANSWER).and_then(|()| stream.flush());
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    fn count_accept_error(&self, e: &io::Error) {
        self.stats.accept_errors.fetch_add(1, Ordering::Relaxed);
        let admitted = self
            .accept_log
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .admit(Instant::now());
        if let Some(held_back) = admitted {
            log_warn!(
                "http: accept failed ({} times since the last report): {e}; the oldest \
                 waiting connection is closed to make room",
                held_back + 1
            );
        }
    }
}

/// What the head of a connection's unused bytes is.
enum HeadState {
    Incomplete,
    Complete(Head),
    /// Malformed: answered, and the connection is to be closed.
    Refused,
}

/// Deepens the listen queue from std's 128 to the kernel's cap, so a burst of connects
/// waits in the kernel instead of having its SYNs dropped (a second `listen` on a
/// listening socket only changes the backlog).
#[cfg(unix)]
fn widen_backlog(listener: &TcpListener) {
    use std::os::unix::io::AsRawFd;
    // SAFETY: listen(2) on a descriptor this listener owns for the whole call.
    unsafe {
        libc::listen(listener.as_raw_fd(), 4096);
    }
}

#[cfg(not(unix))]
fn widen_backlog(_listener: &TcpListener) {}

/// `accept` errors that say the process or system is out of something for now.
fn is_transient_accept_error(e: &io::Error) -> bool {
    #[cfg(unix)]
    {
        matches!(
            e.raw_os_error(),
            Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM | libc::ECONNABORTED)
        )
    }
    #[cfg(not(unix))]
    {
        e.kind() == io::ErrorKind::ConnectionAborted
    }
}

/// Wakes the listen loop when a worker gives a connection back.
#[cfg(unix)]
struct Wake {
    rx: std::os::unix::net::UnixStream,
    tx: std::os::unix::net::UnixStream,
}

#[cfg(unix)]
impl Wake {
    fn new() -> io::Result<Wake> {
        let (rx, tx) = std::os::unix::net::UnixStream::pair()?;
        rx.set_nonblocking(true)?;
        tx.set_nonblocking(true)?;
        Ok(Wake { rx, tx })
    }

    fn wake(&self) {
        // A full pipe already holds a wake-up.
        let _ = (&self.tx).write(&[1]);
    }

    fn drain(&self) {
        let mut sink = [0u8; 64];
        while matches!((&self.rx).read(&mut sink), Ok(n) if n > 0) {}
    }
}

/// Waits up to `timeout` for the wake-up, the listener or a waiting connection; returns
/// whether the listener and each connection (in order) have something to look at.
#[cfg(unix)]
fn wait_ready(
    wake: &Wake,
    listener: Option<&TcpListener>,
    waiting: &[Waiting],
    timeout: Duration,
) -> io::Result<(bool, Vec<bool>)> {
    use std::os::unix::io::AsRawFd;
    let entry = |fd, events| libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    let mut fds = Vec::with_capacity(waiting.len() + 2);
    fds.push(entry(wake.rx.as_raw_fd(), libc::POLLIN));
    // A negative descriptor is skipped by poll: accepting is paused.
    fds.push(entry(listener.map_or(-1, |l| l.as_raw_fd()), libc::POLLIN));
    for w in waiting {
        let mut events = libc::POLLIN;
        if w.conn.stream.wants_write() {
            events |= libc::POLLOUT;
        }
        fds.push(entry(w.conn.stream.tcp().as_raw_fd(), events));
    }
    let millis = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
    let count = libc::nfds_t::try_from(fds.len()).map_err(io::Error::other)?;
    // SAFETY: `fds` is a live, correctly sized array of pollfd for the whole call.
    let rc = unsafe { libc::poll(fds.as_mut_ptr(), count, millis) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.kind() == io::ErrorKind::Interrupted {
            return Ok((false, vec![false; waiting.len()]));
        }
        return Err(e);
    }
    if fds[0].revents != 0 {
        wake.drain();
    }
    let listener_ready = fds[1].revents != 0;
    let conns = fds[2..].iter().map(|f| f.revents != 0).collect();
    Ok((listener_ready, conns))
}

#[cfg(not(unix))]
struct Wake;

#[cfg(not(unix))]
impl Wake {
    fn new() -> io::Result<Wake> {
        Ok(Wake)
    }

    fn wake(&self) {}
}

/// Without `poll(2)`: sleeps a short slice and lets the loop try every non-blocking socket.
#[cfg(not(unix))]
fn wait_ready(
    _wake: &Wake,
    listener: Option<&TcpListener>,
    waiting: &[Waiting],
    timeout: Duration,
) -> io::Result<(bool, Vec<bool>)> {
    std::thread::sleep(timeout.min(Duration::from_millis(5)));
    Ok((listener.is_some(), vec![true; waiting.len()]))
}
