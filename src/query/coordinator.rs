//! The coordinator side of a distributed request: ask several nodes the same thing in
//! parallel (one scoped thread per remote node, a timeout each; this node answers on the
//! calling thread) and collect every answer or failure, named by node.
//!
//! Deciding what the answers mean (pick the fullest replica, union listings, require every
//! owner) is the caller's business ([`combine`](super::combine)); this module only
//! moves requests. The targets are always chosen from this node's own ring and member
//! table, never from what a peer says.

use crate::cluster::secret::ClusterSecret;
use crate::cluster::Owner;
use crate::error::Error;
use crate::query::peer::{self, PeerResponse};
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
    /// Signs every forwarded request (`--cluster_secret_file`).
    pub secret: Option<&'a ClusterSecret>,
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
    thread::scope(|scope| {
        let handles: Vec<_> = targets
            .iter()
            .map(|target| {
                if target.is_self {
                    None
                } else {
                    Some(scope.spawn(move || {
                        peer::call(
                            &target.http_addr,
                            forward.method,
                            forward.path,
                            forward.body,
                            forward.timeout,
                            forward.secret,
                        )
                    }))
                }
            })
            .collect();
        targets
            .iter()
            .zip(handles)
            .map(|(target, handle)| {
                let answer = match handle {
                    None => local(),
                    Some(h) => remote(
                        target,
                        h.join().unwrap_or_else(|_| {
                            Err(Error::peer(&target.http_addr, "request thread panicked"))
                        }),
                    ),
                };
                (target, answer)
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::membership::MemberState;
    use std::io::{Read, Write};
    use std::net::TcpListener;

    fn owner(id: &str, addr: String, is_self: bool) -> Owner {
        Owner {
            id: id.into(),
            http_addr: addr,
            state: MemberState::Alive,
            is_self,
        }
    }

    /// A one-shot HTTP server answering `body` with `status`.
    fn one_shot(status: u16, body: &'static str) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
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

    fn query_forward() -> Forward<'static> {
        Forward {
            method: "POST",
            path: "/query?local=1",
            body: b"{}",
            timeout: Duration::from_millis(500),
            secret: None,
        }
    }

    #[test]
    fn answers_come_back_per_target_in_order_with_failures_named() {
        let dead = TcpListener::bind("127.0.0.1:0").unwrap();
        let dead_addr = dead.local_addr().unwrap().to_string();
        drop(dead);
        let targets = vec![
            owner("me", String::new(), true),
            owner("up", one_shot(200, "{\"count\":3}"), false),
            owner("down", dead_addr, false),
            owner("sick", one_shot(503, "{\"error\":\"x\"}"), false),
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
