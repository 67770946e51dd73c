//! The coordinator side of a distributed request: ask several nodes the same thing in
//! parallel (one scoped thread per remote node, a timeout each; this node answers on the
//! calling thread) and collect every answer or failure, named by node.
//!
//! Deciding what the answers mean (pick the fullest replica, union listings, require every
//! owner) is the caller's business ([`query::combine`](crate::query::combine), repair);
//! this module only moves requests. The targets are always chosen from this node's own
//! ring and member table, never from what a peer says.

use crate::cluster::peer::{self, PeerLink, PeerResponse};
use crate::cluster::Owner;
use crate::error::Error;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::Duration;

/// How long a coordinator waits for one peer (connect, send, answer).
pub const PEER_TIMEOUT: Duration = Duration::from_secs(2);

/// One request to forward: the same method, path and body for every target.
#[derive(Clone, Copy, Debug)]
pub struct Forward<'a> {
    pub method: &'a str,
    /// Path and query string, e.g. `/query?local=1`.
    pub path: &'a str,
    pub body: &'a [u8],
    pub timeout: Duration,
    /// How peers are reached: signed (`--cluster_secret_file`), over HTTPS (`--tls_ca`).
    pub link: PeerLink<'a>,
}

/// What one target answered, or why it did not.
#[derive(Debug)]
pub struct TargetAnswer<'a> {
    pub target: &'a Owner,
    pub answer: Result<PeerResponse, Error>,
}

impl TargetAnswer<'_> {
    /// The body of a 200 answer, or a description of the failure.
    pub fn ok_body(&self) -> Result<&[u8], String> {
        match &self.answer {
            Ok(r) if r.status == 200 => Ok(&r.body),
            Ok(r) => Err(format!(
                "answered {}: {}",
                r.status,
                String::from_utf8_lossy(&r.body)
            )),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// Sends `forward` to every target in parallel; targets that are this node are answered by
/// `local` instead. Answers come back in the order of `targets`.
pub fn fan_out<'a>(
    targets: &'a [Owner],
    forward: Forward<'_>,
    local: &(dyn Fn() -> PeerResponse + Sync),
) -> Vec<TargetAnswer<'a>> {
    fan_out_with(targets, forward, &|| Ok(local()), &|_, answer| answer)
        .into_iter()
        .map(|(target, answer)| TargetAnswer { target, answer })
        .collect()
}

/// [`fan_out`] with typed answers: `local` answers for this node without a round trip
/// through the wire format, and `remote` turns each peer's response (or failure) into the
/// same type. Answers come back in the order of `targets`, paired with their target.
pub fn fan_out_with<'a, T: Send>(
    targets: &'a [Owner],
    forward: Forward<'_>,
    local: &(dyn Fn() -> T + Sync),
    remote: &(dyn Fn(&Owner, Result<PeerResponse, Error>) -> T + Sync),
) -> Vec<(&'a Owner, T)> {
    let peers: Vec<&Owner> = targets.iter().filter(|t| !t.is_self).collect();
    let call = |target: &Owner| {
        peer::call(
            &target.http_addr,
            forward.method,
            forward.path,
            forward.body,
            forward.timeout,
            forward.link,
        )
    };
    // This node answers on the calling thread while the peers are asked.
    let (mut mine, answers) = alongside(peers, call, || {
        targets.iter().any(|t| t.is_self).then(local)
    });
    let mut answers = answers.into_iter();
    targets
        .iter()
        .map(|target| {
            let answer = if target.is_self {
                mine.take().unwrap_or_else(local)
            } else {
                let answer = answers.next().flatten().unwrap_or_else(|| {
                    Err(Error::peer(&target.http_addr, "request thread panicked"))
                });
                remote(target, answer)
            };
            (target, answer)
        })
        .collect()
}

/// Runs `work` on every item, each on a scoped thread of its own, and `here` on the calling
/// thread meanwhile; returns `here`'s result and the items' in order, `None` for an item
/// whose work panicked. The one scoped fan-out of the crate (query coordination, routed
/// writes, the leave announcement). A thread the OS refuses to start is not a panic: that
/// item runs on the calling thread instead, after `here`.
pub fn alongside<I: Send, R: Send, H>(
    items: Vec<I>,
    work: impl Fn(I) -> R + Sync,
    here: impl FnOnce() -> H,
) -> (H, Vec<Option<R>>) {
    /// An item on its own thread, or kept back because the thread could not start.
    enum Job<'scope, I, R> {
        Running(thread::ScopedJoinHandle<'scope, Option<R>>),
        Inline(Option<I>),
    }
    fn take<I>(slot: &Mutex<Option<I>>) -> Option<I> {
        slot.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
    let work = &work;
    thread::scope(|scope| {
        let jobs: Vec<Job<'_, I, R>> = items
            .into_iter()
            .map(|item| {
                // Shared with the thread, so the item is not lost if the thread never starts.
                let slot = Arc::new(Mutex::new(Some(item)));
                let theirs = Arc::clone(&slot);
                match thread::Builder::new().spawn_scoped(scope, move || take(&theirs).map(work)) {
                    Ok(handle) => Job::Running(handle),
                    Err(_) => Job::Inline(take(&slot)),
                }
            })
            .collect();
        let mine = here();
        let results = jobs
            .into_iter()
            .map(|job| match job {
                Job::Running(handle) => handle.join().ok().flatten(),
                Job::Inline(item) => item.map(work),
            })
            .collect();
        (mine, results)
    })
}

/// Test-only: a peer that answers one request with `status` and `body`, at the returned
/// address (the coordinator's and the query combiner's tests talk to it).
#[cfg(test)]
pub(crate) fn one_shot(status: u16, body: String) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let addr = listener.local_addr().expect("bound address").to_string();
    thread::spawn(move || {
        if let Ok((mut s, _)) = listener.accept() {
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let _ = write!(
                s,
                "HTTP/1.1 {status} X\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
        }
    });
    addr
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alongside_keeps_the_order_runs_here_meanwhile_and_survives_a_panic() {
        let (here, results) = alongside(
            vec![3u64, 1, 2, 0],
            |n| {
                std::thread::sleep(Duration::from_millis(n * 20));
                assert!(n != 0, "a failing item");
                n * 10
            },
            || "here",
        );
        assert_eq!(here, "here");
        assert_eq!(results, [Some(30), Some(10), Some(20), None]);
        let (_, none) = alongside(Vec::<u8>::new(), |n| n, || ());
        assert!(none.is_empty());
    }
    use crate::cluster::membership::MemberState;
    use std::net::TcpListener;

    fn owner(id: &str, addr: String, is_self: bool) -> Owner {
        Owner {
            id: id.into(),
            http_addr: addr,
            state: MemberState::Alive,
            is_self,
        }
    }

    fn query_forward() -> Forward<'static> {
        Forward {
            method: "POST",
            path: "/query?local=1",
            body: b"{}",
            timeout: Duration::from_millis(500),
            link: PeerLink::default(),
        }
    }

    #[test]
    fn answers_come_back_per_target_in_order_with_failures_named() {
        let dead = TcpListener::bind("127.0.0.1:0").unwrap();
        let dead_addr = dead.local_addr().unwrap().to_string();
        drop(dead);
        let targets = vec![
            owner("me", String::new(), true),
            owner("up", one_shot(200, "{\"count\":3}".into()), false),
            owner("down", dead_addr, false),
            owner("sick", one_shot(503, "{\"error\":\"x\"}".into()), false),
        ];
        let forward = query_forward();
        let local = || PeerResponse {
            status: 200,
            body: b"{\"count\":1}".to_vec(),
        };
        let answers = fan_out(&targets, forward, &local);
        let ids: Vec<&str> = answers.iter().map(|a| a.target.id.as_str()).collect();
        assert_eq!(ids, ["me", "up", "down", "sick"]);
        assert_eq!(answers[0].ok_body().unwrap(), b"{\"count\":1}");
        assert_eq!(answers[1].ok_body().unwrap(), b"{\"count\":3}");
        assert!(answers[2].ok_body().unwrap_err().contains("connect"));
        assert!(answers[3].ok_body().unwrap_err().contains("503"));
    }
}
