//! The cluster secret (`--cluster_secret_file`): how a node proves to its peers that it
//! belongs to the cluster, and checks that what reaches it comes from a node that does.
//!
//! Every gossip frame and every node-to-node HTTP request carries an HMAC-SHA256 keyed with
//! the secret and a timestamp (unix milliseconds). The MAC input is always
//!
//! 1. the timestamp, u64 big-endian [8 bytes]
//! 2. a domain tag [4 bytes]: `MTGS` for a gossip frame, `HTTP` for a request
//! 3. for a request only: `METHOD SP PATH_AND_QUERY LF` (exactly as on the request line)
//! 4. the body [all remaining bytes]
//!
//! so a gossip MAC can never pass as a request's, nor one request's as another's. A
//! receiver refuses a MAC that does not verify (compared in constant time by
//! [`hmac::Mac::verify_slice`]) or whose timestamp is more than [`FRESHNESS_WINDOW`] away
//! from its own clock, in either direction. Gossip frames are also refused when the same
//! (timestamp, MAC) was already admitted ([`ReplayGuard`]); requests are not, because every
//! `/internal/*` request is idempotent (writes of the same points, reads).
//!
//! Requests carry the timestamp in [`TIMESTAMP_HEADER`] (decimal) and the MAC in
//! [`SIGNATURE_HEADER`] (64 lower-case hex digits).
//!
//! [`ClusterTrust`] is what a [`Node`](crate::node::Node) holds: the secret if there is one,
//! the replay guard and the counts of refused frames and requests shown in `/status`.

use crate::cluster::peer::PeerLink;
use crate::error::{Error, Result};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Shortest secret accepted.
pub const MIN_SECRET_LEN: usize = 16;

/// How far a signed timestamp may be from the receiver's clock, either way.
pub const FRESHNESS_WINDOW: Duration = Duration::from_secs(30);

/// Most gossip MACs remembered for replay refusal (about 40 bytes each). Far above what a
/// cluster sends in one [`FRESHNESS_WINDOW`]; past it the oldest are forgotten and frames
/// no newer than the forgotten ones are refused, so memory stays bounded and nothing
/// forgotten can be replayed.
pub const REPLAY_CAPACITY: usize = 50_000;

/// Request header carrying the signing time, unix milliseconds in decimal.
pub const TIMESTAMP_HEADER: &str = "X-MiniTrue-Timestamp";

/// Request header carrying the MAC, 64 lower-case hex digits.
pub const SIGNATURE_HEADER: &str = "X-MiniTrue-Signature";

/// Bytes of one MAC.
pub const MAC_LEN: usize = 32;

type HmacSha256 = Hmac<Sha256>;

/// The current time in unix milliseconds (0 before 1970).
pub fn unix_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Why a frame or request was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No signature, where the cluster requires one.
    Unsigned,
    /// A signature header that is not a timestamp or 64 hex digits.
    Malformed(&'static str),
    /// Signed too far from now (`skew_ms` = signed time - now).
    Stale { skew_ms: i128 },
    /// The MAC does not match: another secret, or altered content.
    BadSignature,
    /// A gossip frame already admitted once.
    Replayed,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Unsigned => f.write_str("not signed with the cluster secret"),
            Refusal::Malformed(what) => write!(f, "malformed signature: {what}"),
            Refusal::Stale { skew_ms } => write!(
                f,
                "signed {skew_ms} ms from now (at most {} ms either way)",
                FRESHNESS_WINDOW.as_millis()
            ),
            Refusal::BadSignature => f.write_str("signature does not match the cluster secret"),
            Refusal::Replayed => f.write_str("frame already seen (replayed)"),
        }
    }
}

/// The shared key of the cluster. `Debug` never shows it.
#[derive(Clone)]
pub struct ClusterSecret {
    key: Arc<[u8]>,
}

impl fmt::Debug for ClusterSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClusterSecret(..)")
    }
}

/// A node-to-node request as its receiver sees it, with its two signature headers (either
/// may be missing).
#[derive(Clone, Copy, Debug)]
pub struct SignedRequest<'a> {
    pub method: &'a str,
    /// Exactly as on the request line, query string included.
    pub path_and_query: &'a str,
    /// The value of [`TIMESTAMP_HEADER`].
    pub timestamp: Option<&'a str>,
    /// The value of [`SIGNATURE_HEADER`].
    pub signature: Option<&'a str>,
    pub body: &'a [u8],
}

/// What seals one gossip frame: when it was signed and the MAC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Seal {
    pub timestamp_ms: u64,
    pub mac: [u8; MAC_LEN],
}

impl ClusterSecret {
    /// A secret from its bytes, surrounding whitespace trimmed; refused when shorter than
    /// [`MIN_SECRET_LEN`]. `origin` names where it came from, for the error.
    pub fn new(bytes: &[u8], origin: &str) -> Result<ClusterSecret> {
        let key = bytes.trim_ascii();
        if key.len() < MIN_SECRET_LEN {
            return Err(Error::invalid(
                "cluster_secret_file",
                format!(
                    "{origin}: the secret is {} bytes after trimming whitespace; \
                     it must be at least {MIN_SECRET_LEN} (e.g. `openssl rand -hex 32`)",
                    key.len()
                ),
            ));
        }
        Ok(ClusterSecret { key: key.into() })
    }

    /// Reads the secret file given to `--cluster_secret_file`.
    pub fn from_file(path: &Path) -> Result<ClusterSecret> {
        let bytes = std::fs::read(path).map_err(|e| {
            Error::invalid(
                "cluster_secret_file",
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        ClusterSecret::new(&bytes, &path.display().to_string())
    }

    fn mac(&self, timestamp_ms: u64, parts: &[&[u8]]) -> HmacSha256 {
        let mut mac =
            HmacSha256::new_from_slice(&self.key).expect("HMAC accepts keys of any length");
        mac.update(&timestamp_ms.to_be_bytes());
        for part in parts {
            mac.update(part);
        }
        mac
    }

    /// The MAC of a gossip frame body signed at `timestamp_ms`.
    pub fn sign_frame(&self, timestamp_ms: u64, body: &[u8]) -> [u8; MAC_LEN] {
        self.mac(timestamp_ms, &[b"MTGS", body])
            .finalize()
            .into_bytes()
            .into()
    }

    /// Checks a gossip frame's seal against its body at `now_ms` (freshness and MAC; the
    /// replay check is [`ReplayGuard`]'s).
    pub fn verify_frame(
        &self,
        seal: &Seal,
        body: &[u8],
        now_ms: u64,
    ) -> std::result::Result<(), Refusal> {
        check_fresh(seal.timestamp_ms, now_ms)?;
        self.mac(seal.timestamp_ms, &[b"MTGS", body])
            .verify_slice(&seal.mac)
            .map_err(|_| Refusal::BadSignature)
    }

    fn request_mac(&self, method: &str, path_and_query: &str, ts: u64, body: &[u8]) -> HmacSha256 {
        self.mac(
            ts,
            &[
                b"HTTP",
                method.as_bytes(),
                b" ",
                path_and_query.as_bytes(),
                b"\n",
                body,
            ],
        )
    }

    /// The two headers that sign a request, as `(name, value)`.
    pub fn sign_request(
        &self,
        method: &str,
        path_and_query: &str,
        body: &[u8],
        now_ms: u64,
    ) -> [(&'static str, String); 2] {
        let mac: [u8; MAC_LEN] = self
            .request_mac(method, path_and_query, now_ms, body)
            .finalize()
            .into_bytes()
            .into();
        [
            (TIMESTAMP_HEADER, now_ms.to_string()),
            (SIGNATURE_HEADER, to_hex(&mac)),
        ]
    }

    /// Checks a request's signature headers at `now_ms`.
    pub fn verify_request(
        &self,
        request: &SignedRequest<'_>,
        now_ms: u64,
    ) -> std::result::Result<(), Refusal> {
        let (Some(timestamp), Some(signature)) = (request.timestamp, request.signature) else {
            return Err(Refusal::Unsigned);
        };
        let timestamp: u64 = timestamp
            .trim()
            .parse()
            .map_err(|_| Refusal::Malformed("timestamp is not unix milliseconds"))?;
        let mac = from_hex(signature.trim())
            .ok_or(Refusal::Malformed("signature is not 64 hex digits"))?;
        check_fresh(timestamp, now_ms)?;
        self.request_mac(
            request.method,
            request.path_and_query,
            timestamp,
            request.body,
        )
        .verify_slice(&mac)
        .map_err(|_| Refusal::BadSignature)
    }
}

fn check_fresh(timestamp_ms: u64, now_ms: u64) -> std::result::Result<(), Refusal> {
    let skew_ms = i128::from(timestamp_ms) - i128::from(now_ms);
    if skew_ms.unsigned_abs() > FRESHNESS_WINDOW.as_millis() {
        return Err(Refusal::Stale { skew_ms });
    }
    Ok(())
}

fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

fn from_hex(text: &str) -> Option<[u8; MAC_LEN]> {
    let digits = text.as_bytes();
    if digits.len() != MAC_LEN * 2 {
        return None;
    }
    let mut out = [0u8; MAC_LEN];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        let pair = std::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(out)
}

/// The (timestamp, MAC) of every gossip frame admitted within the freshness window.
#[derive(Debug)]
pub struct ReplayGuard {
    seen: BTreeSet<(u64, [u8; MAC_LEN])>,
    /// Frames signed at or before this time are refused: the newest forgotten entry.
    floor_ms: Option<u64>,
    capacity: usize,
}

impl ReplayGuard {
    pub fn new(capacity: usize) -> ReplayGuard {
        ReplayGuard {
            seen: BTreeSet::new(),
            floor_ms: None,
            capacity: capacity.max(1),
        }
    }

    /// Admits a frame whose seal verified at `now_ms`, or refuses it as a replay.
    pub fn admit(&mut self, seal: &Seal, now_ms: u64) -> std::result::Result<(), Refusal> {
        // What the freshness check refuses anyway need not be remembered.
        let oldest = now_ms.saturating_sub(FRESHNESS_WINDOW.as_millis() as u64);
        while self.seen.first().is_some_and(|(ts, _)| *ts < oldest) {
            self.seen.pop_first();
        }
        if self
            .floor_ms
            .is_some_and(|floor| seal.timestamp_ms <= floor)
        {
            return Err(Refusal::Replayed);
        }
        if !self.seen.insert((seal.timestamp_ms, seal.mac)) {
            return Err(Refusal::Replayed);
        }
        if self.seen.len() > self.capacity {
            if let Some((ts, _)) = self.seen.pop_first() {
                self.floor_ms = Some(ts);
            }
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

/// A node's side of cluster trust: the secret (if any), the TLS client configuration peers
/// are called with (in a TLS cluster), the gossip replay guard and the refusal counts shown
/// in `/status`.
pub struct ClusterTrust {
    secret: Option<ClusterSecret>,
    peer_tls: Option<Arc<rustls::ClientConfig>>,
    replay: Mutex<ReplayGuard>,
    refused_frames: AtomicU64,
    refused_requests: AtomicU64,
}

impl std::fmt::Debug for ClusterTrust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterTrust")
            .field("secret", &self.secret)
            .field("peer_tls", &self.peer_tls.is_some())
            .finish_non_exhaustive()
    }
}

impl ClusterTrust {
    pub fn new(secret: Option<ClusterSecret>) -> ClusterTrust {
        ClusterTrust::with_peer_tls(secret, None)
    }

    /// Trust whose peer calls use HTTPS with `peer_tls` (`--tls_ca`), when given.
    pub fn with_peer_tls(
        secret: Option<ClusterSecret>,
        peer_tls: Option<Arc<rustls::ClientConfig>>,
    ) -> ClusterTrust {
        ClusterTrust {
            secret,
            peer_tls,
            replay: Mutex::new(ReplayGuard::new(REPLAY_CAPACITY)),
            refused_frames: AtomicU64::new(0),
            refused_requests: AtomicU64::new(0),
        }
    }

    /// The secret outgoing frames and requests are signed with.
    pub fn secret(&self) -> Option<&ClusterSecret> {
        self.secret.as_ref()
    }

    /// How node-to-node requests go out: signed with the secret, over HTTPS in a TLS
    /// cluster.
    pub fn link(&self) -> PeerLink<'_> {
        PeerLink {
            secret: self.secret.as_ref(),
            tls: self.peer_tls.as_ref(),
        }
    }

    /// Whether peers are called over HTTPS.
    pub fn peer_tls(&self) -> bool {
        self.peer_tls.is_some()
    }

    /// Checks an incoming gossip frame at `now_ms`: without a secret everything passes
    /// (a sealed frame from a node that has one included); with one, the frame must be
    /// sealed, fresh, verify and not be a replay. A refusal is counted.
    pub fn check_frame(
        &self,
        seal: Option<&Seal>,
        body: &[u8],
        now_ms: u64,
    ) -> std::result::Result<(), Refusal> {
        let Some(secret) = &self.secret else {
            return Ok(());
        };
        let result = seal.ok_or(Refusal::Unsigned).and_then(|seal| {
            secret.verify_frame(seal, body, now_ms)?;
            self.replay
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .admit(seal, now_ms)
        });
        if result.is_err() {
            self.note_refused_frame();
        }
        result
    }

    /// Counts a gossip frame refused before its seal could be checked (a bad header or body).
    pub fn note_refused_frame(&self) {
        self.refused_frames.fetch_add(1, Ordering::Relaxed);
    }

    /// Checks an incoming node-to-node request at `now_ms` (Ok without a secret); a
    /// refusal is counted.
    pub fn check_request(
        &self,
        request: &SignedRequest<'_>,
        now_ms: u64,
    ) -> std::result::Result<(), Refusal> {
        let Some(secret) = &self.secret else {
            return Ok(());
        };
        let result = secret.verify_request(request, now_ms);
        if result.is_err() {
            self.refused_requests.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    /// Whether a request carries a valid signature of this cluster's secret (false without
    /// a secret): a "trusted peer" test for endpoints that also take other credentials.
    /// Counts nothing.
    pub fn is_signed_by_cluster(&self, request: &SignedRequest<'_>) -> bool {
        self.secret
            .as_ref()
            .is_some_and(|s| s.verify_request(request, unix_now_ms()).is_ok())
    }

    pub fn refused_frames(&self) -> u64 {
        self.refused_frames.load(Ordering::Relaxed)
    }

    pub fn refused_requests(&self) -> u64 {
        self.refused_requests.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000_000;

    fn secret(text: &str) -> ClusterSecret {
        ClusterSecret::new(text.as_bytes(), "test").unwrap()
    }

    fn req<'a>(
        method: &'a str,
        path_and_query: &'a str,
        timestamp: Option<&'a str>,
        signature: Option<&'a str>,
        body: &'a [u8],
    ) -> SignedRequest<'a> {
        SignedRequest {
            method,
            path_and_query,
            timestamp,
            signature,
            body,
        }
    }

    fn seal(s: &ClusterSecret, ts: u64, body: &[u8]) -> Seal {
        Seal {
            timestamp_ms: ts,
            mac: s.sign_frame(ts, body),
        }
    }

    #[test]
    fn short_or_empty_secrets_are_refused_naming_the_flag() {
        for text in ["", "   \n", "fifteen-bytes!!", "  fifteen-bytes!!  \n"] {
            let e = ClusterSecret::new(text.as_bytes(), "s.txt").unwrap_err();
            assert!(e.to_string().contains("cluster_secret_file"), "{e}");
            assert!(e.to_string().contains("s.txt"), "{e}");
        }
        // Whitespace around the secret is not part of it.
        let a = secret("sixteen-bytes!!!");
        let b = secret("\n  sixteen-bytes!!!  \n");
        assert_eq!(a.sign_frame(1, b"x"), b.sign_frame(1, b"x"));
    }

    #[test]
    fn a_missing_secret_file_is_an_error_naming_the_flag() {
        let e = ClusterSecret::from_file(Path::new("/nonexistent/minitrue-secret")).unwrap_err();
        assert!(e.to_string().contains("cluster_secret_file"), "{e}");
        assert!(
            e.to_string().contains("/nonexistent/minitrue-secret"),
            "{e}"
        );
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let s = secret("do-not-print-this-secret");
        assert_eq!(format!("{s:?}"), "ClusterSecret(..)");
    }

    #[test]
    fn a_signed_frame_verifies_and_any_change_breaks_it() {
        let s = secret("correct horse battery staple");
        let body = br#"{"from":"a","members":[]}"#;
        let good = seal(&s, NOW, body);
        assert_eq!(s.verify_frame(&good, body, NOW), Ok(()));
        let mut flipped = good;
        flipped.mac[7] ^= 1;
        assert_eq!(
            s.verify_frame(&flipped, body, NOW),
            Err(Refusal::BadSignature)
        );
        let moved = Seal {
            timestamp_ms: NOW + 1,
            ..good
        };
        assert_eq!(
            s.verify_frame(&moved, body, NOW),
            Err(Refusal::BadSignature)
        );
        assert_eq!(
            s.verify_frame(&good, br#"{"from":"b","members":[]}"#, NOW),
            Err(Refusal::BadSignature)
        );
        let other = secret("another secret, same length.");
        assert_eq!(
            other.verify_frame(&good, body, NOW),
            Err(Refusal::BadSignature)
        );
    }

    #[test]
    fn stale_and_future_timestamps_are_refused_at_the_window_edge() {
        let s = secret("correct horse battery staple");
        let window = FRESHNESS_WINDOW.as_millis() as u64;
        for ts in [NOW - window, NOW + window] {
            assert_eq!(s.verify_frame(&seal(&s, ts, b"b"), b"b", NOW), Ok(()));
        }
        for (ts, skew) in [
            (NOW - window - 1, -(window as i128) - 1),
            (NOW + window + 1, window as i128 + 1),
        ] {
            assert_eq!(
                s.verify_frame(&seal(&s, ts, b"b"), b"b", NOW),
                Err(Refusal::Stale { skew_ms: skew })
            );
        }
        assert!(s.verify_frame(&seal(&s, 0, b"b"), b"b", NOW).is_err());
        assert!(s
            .verify_frame(&seal(&s, u64::MAX, b"b"), b"b", NOW)
            .is_err());
    }

    #[test]
    fn the_same_frame_is_admitted_once() {
        let s = secret("correct horse battery staple");
        let mut guard = ReplayGuard::new(100);
        let a = seal(&s, NOW, b"a");
        let b = seal(&s, NOW, b"b");
        assert_eq!(guard.admit(&a, NOW), Ok(()));
        assert_eq!(guard.admit(&b, NOW), Ok(()), "same time, other content");
        assert_eq!(guard.admit(&a, NOW + 1500), Err(Refusal::Replayed));
        // Entries older than the window are forgotten (freshness refuses those frames).
        let later = NOW + FRESHNESS_WINDOW.as_millis() as u64 + 1;
        assert_eq!(guard.admit(&seal(&s, later, b"c"), later), Ok(()));
        assert_eq!(guard.len(), 1);
    }

    #[test]
    fn a_full_guard_forgets_the_oldest_and_refuses_anything_not_newer() {
        let s = secret("correct horse battery staple");
        let mut guard = ReplayGuard::new(3);
        let seals: Vec<Seal> = (0..4).map(|i| seal(&s, NOW + i, b"x")).collect();
        for sealed in &seals {
            assert_eq!(guard.admit(sealed, NOW), Ok(()));
        }
        assert_eq!(guard.len(), 3);
        // The forgotten first one cannot come back, nor anything as old.
        assert_eq!(guard.admit(&seals[0], NOW), Err(Refusal::Replayed));
        assert_eq!(
            guard.admit(&seal(&s, NOW, b"y"), NOW),
            Err(Refusal::Replayed)
        );
        assert_eq!(guard.admit(&seal(&s, NOW + 9, b"y"), NOW), Ok(()));
        assert_eq!(guard.len(), 3);
    }

    #[test]
    fn a_signed_request_verifies_and_method_path_query_body_and_time_are_covered() {
        let s = secret("correct horse battery staple");
        let [(ts_name, ts), (sig_name, sig)] =
            s.sign_request("POST", "/internal/write?x=1", b"{}", NOW);
        assert_eq!((ts_name, sig_name), (TIMESTAMP_HEADER, SIGNATURE_HEADER));
        assert_eq!(sig.len(), 64);
        let check = |method: &str, path: &str, ts: Option<&str>, sig: Option<&str>, body: &[u8]| {
            s.verify_request(&req(method, path, ts, sig, body), NOW)
        };
        let (ts, sig) = (Some(ts.as_str()), Some(sig.as_str()));
        assert_eq!(check("POST", "/internal/write?x=1", ts, sig, b"{}"), Ok(()));
        let bad = Err(Refusal::BadSignature);
        assert_eq!(check("GET", "/internal/write?x=1", ts, sig, b"{}"), bad);
        assert_eq!(check("POST", "/internal/write", ts, sig, b"{}"), bad);
        assert_eq!(check("POST", "/internal/write?x=2", ts, sig, b"{}"), bad);
        assert_eq!(check("POST", "/internal/write?x=1", ts, sig, b"{ }"), bad);
        let later = (NOW + 1).to_string();
        assert_eq!(
            check("POST", "/internal/write?x=1", Some(&later), sig, b"{}"),
            bad
        );
        assert_eq!(
            check("POST", "/internal/write?x=1", None, sig, b"{}"),
            Err(Refusal::Unsigned)
        );
        assert_eq!(
            check("POST", "/internal/write?x=1", ts, None, b"{}"),
            Err(Refusal::Unsigned)
        );
        assert!(matches!(
            check("POST", "/internal/write?x=1", Some("soon"), sig, b"{}"),
            Err(Refusal::Malformed(_))
        ));
        assert!(matches!(
            check("POST", "/internal/write?x=1", ts, Some("zz"), b"{}"),
            Err(Refusal::Malformed(_))
        ));
        let non_ascii = "é".repeat(32);
        assert!(matches!(
            check("POST", "/internal/write?x=1", ts, Some(&non_ascii), b"{}"),
            Err(Refusal::Malformed(_))
        ));
        // A frame's MAC over the same bytes is not a request's.
        let frame_mac = to_hex(&s.sign_frame(NOW, b"{}"));
        assert_eq!(
            check("POST", "/internal/write?x=1", ts, Some(&frame_mac), b"{}"),
            bad
        );
    }

    #[test]
    fn golden_request_signature() {
        // Computed independently (Python's hmac) over time, "HTTP", "POST /internal/write\n", body.
        let s = secret("0123456789abcdef");
        let [(_, ts), (_, sig)] = s.sign_request("POST", "/internal/write", b"{}", NOW);
        assert_eq!(ts, "1700000000000");
        assert_eq!(
            sig,
            "af49c2250e40041192322b9eb1786eb13d9cc99cdc116affb889f4559182bfa0"
        );
    }

    #[test]
    fn an_old_signed_request_is_stale() {
        let s = secret("correct horse battery staple");
        let [(_, ts), (_, sig)] = s.sign_request("GET", "/internal/summary", b"", NOW);
        let much_later = NOW + FRESHNESS_WINDOW.as_millis() as u64 + 1;
        assert!(matches!(
            s.verify_request(
                &req("GET", "/internal/summary", Some(&ts), Some(&sig), b""),
                much_later
            ),
            Err(Refusal::Stale { .. })
        ));
    }

    #[test]
    fn trust_without_a_secret_passes_everything_and_counts_nothing() {
        let trust = ClusterTrust::new(None);
        assert_eq!(trust.check_frame(None, b"x", NOW), Ok(()));
        assert_eq!(
            trust.check_request(&req("POST", "/internal/write", None, None, b""), NOW),
            Ok(())
        );
        assert!(!trust.is_signed_by_cluster(&req("POST", "/internal/write", None, None, b"")));
        assert_eq!((trust.refused_frames(), trust.refused_requests()), (0, 0));
    }

    #[test]
    fn trust_with_a_secret_counts_every_refusal() {
        let s = secret("correct horse battery staple");
        let trust = ClusterTrust::new(Some(s.clone()));
        let good = seal(&s, NOW, b"x");
        assert_eq!(trust.check_frame(None, b"x", NOW), Err(Refusal::Unsigned));
        assert_eq!(trust.check_frame(Some(&good), b"x", NOW), Ok(()));
        assert_eq!(
            trust.check_frame(Some(&good), b"x", NOW),
            Err(Refusal::Replayed)
        );
        assert_eq!(trust.refused_frames(), 2);
        let now = unix_now_ms();
        let [(_, ts), (_, sig)] = s.sign_request("GET", "/internal/summary", b"", now);
        let signed = req("GET", "/internal/summary", Some(&ts), Some(&sig), b"");
        assert!(trust.is_signed_by_cluster(&signed));
        assert_eq!(trust.check_request(&signed, now), Ok(()));
        assert_eq!(
            trust.check_request(&req("GET", "/internal/summary", None, None, b""), now),
            Err(Refusal::Unsigned)
        );
        assert_eq!(trust.refused_requests(), 1);
    }
}
