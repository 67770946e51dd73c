//! Cluster trust against real processes: forged gossip frames sent to a node's gossip port
//! (u64::MAX claims about the node itself, `left` for another node, plausible false claims;
//! with a secret also unsigned, wrong-secret, stale and replayed frames) and an unsigned
//! `/internal/write` leave member states, the ring and the stored points unchanged, and
//! the refusals are counted in `/status`. A restarted node comes back at a higher
//! incarnation, read from its data directory.

mod common;

use common::{free_port, try_request, wait_until, Server, TempDir};
use minitrue::cluster::gossip::{encode, encode_at, read_frame, Message};
use minitrue::cluster::membership::{Digest, MemberState};
use minitrue::cluster::secret::{unix_now_ms, ClusterSecret};
use serde_json::Value;
use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

const TIMINGS: [&str; 3] = [
    "--gossip_interval_ms=100",
    "--suspect_timeout_ms=600",
    "--dead_timeout_ms=1500",
];

/// Longer than the dead timeout: what a forged frame could do has happened by then.
const SETTLE: Duration = Duration::from_millis(3000);

const CONVERGE: Duration = Duration::from_secs(15);

struct Pair {
    a: Server,
    b: Server,
    a_gossip: u16,
    b_gossip: u16,
}

/// polaris and sirius, seeded at each other, with `extra` flags.
fn start_pair(dir: &Path, extra: &[&str]) -> Pair {
    let (a_http, a_gossip, b_http, b_gossip) = (free_port(), free_port(), free_port(), free_port());
    let mut flags: Vec<&str> = TIMINGS.to_vec();
    flags.extend_from_slice(extra);
    let seed_b = format!("--seeds=127.0.0.1:{b_gossip}");
    let seed_a = format!("--seeds=127.0.0.1:{a_gossip}");
    let mut a_flags = flags.clone();
    a_flags.push(&seed_b);
    let mut b_flags = flags.clone();
    b_flags.push(&seed_a);
    let broker = "tcp://127.0.0.1:1";
    let a = Server::start_on_ports("polaris", dir, broker, a_http, a_gossip, &a_flags);
    let b = Server::start_on_ports("sirius", dir, broker, b_http, b_gossip, &b_flags);
    let pair = Pair {
        a,
        b,
        a_gossip,
        b_gossip,
    };
    wait_until("both alive on both", CONVERGE, || {
        let both = states(&[("polaris", "alive"), ("sirius", "alive")]);
        members(&pair.a) == both && members(&pair.b) == both
    });
    pair
}

fn states(list: &[(&str, &str)]) -> BTreeMap<String, String> {
    list.iter()
        .map(|(id, s)| (id.to_string(), s.to_string()))
        .collect()
}

/// id → state as `server` sees it, without the test's own `probe`.
fn members(server: &Server) -> BTreeMap<String, String> {
    let Ok(r) = try_request(server.port, "GET", "/status", &[], &[]) else {
        return BTreeMap::new();
    };
    r.json()["members"]
        .as_array()
        .map(|ms| {
            ms.iter()
                .filter(|m| m["id"] != "probe")
                .map(|m| {
                    (
                        m["id"].as_str().unwrap_or_default().to_string(),
                        m["state"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// What must not change: members, ring shares and stored points of both nodes.
fn snapshot(pair: &Pair) -> Vec<Value> {
    [&pair.a, &pair.b]
        .iter()
        .flat_map(|s| {
            let status = s.status();
            [
                serde_json::to_value(members(s)).expect("members"),
                status["ring_share"].clone(),
                status["points"].clone(),
            ]
        })
        .collect()
}

fn write_points(server: &Server) -> u64 {
    let mut body = String::new();
    for device in 0..10 {
        for t in 1..=5 {
            body.push_str(&format!(
                "temperature,device_id=d{device} value={t} {}\n",
                t * 1000
            ));
        }
    }
    let r = server.post("/write?precision=s", &body);
    assert_eq!(r.status, 204, "{}", r.text());
    50
}

fn digest(id: &str, incarnation: u64, state: MemberState) -> Digest {
    Digest {
        id: id.into(),
        http_addr: "127.0.0.1:1".into(),
        gossip_addr: "127.0.0.1:1".into(),
        incarnation,
        heartbeat: u64::MAX,
        state,
    }
}

fn message(from: &str, members: Vec<Digest>) -> Message {
    Message {
        from: from.into(),
        members,
    }
}

/// Sends one frame to a gossip port; the reply's message if the node answered.
fn send(port: u16, frame: &[u8]) -> Option<Message> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to gossip");
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    stream.write_all(frame).ok()?;
    read_frame(&mut stream, "node").ok()?.message().ok()
}

/// `id`'s incarnation as the node on `port` reports it in a reply.
fn incarnation_of(port: u16, id: &str, secret: Option<&ClusterSecret>) -> u64 {
    let reply = send(port, &encode(&message("probe", vec![]), secret)).expect("a reply");
    reply
        .members
        .iter()
        .find(|d| d.id == id)
        .map(|d| d.incarnation)
        .expect("member in reply")
}

fn stored_incarnation(dir: &Path, id: &str) -> u64 {
    std::fs::read_to_string(dir.join(id).join("incarnation"))
        .expect("incarnation file")
        .trim()
        .parse()
        .expect("a number")
}

#[test]
fn forged_claims_cannot_kill_evict_or_outbid_a_node_and_restarts_go_up() {
    let dir = TempDir::new("trust-open");
    let mut pair = start_pair(dir.path(), &[]);
    write_points(&pair.a);
    wait_until("points on both owners", CONVERGE, || {
        pair.b.status()["points"] == 50 && pair.a.status()["points"] == 50
    });
    let before = snapshot(&pair);
    let inc = incarnation_of(pair.a_gossip, "polaris", None);
    let forged = [
        // About polaris, to polaris: u64::MAX claims (the issue's frame), also "from" itself.
        (
            pair.a_gossip,
            "evil",
            digest("polaris", u64::MAX, MemberState::Suspect),
        ),
        (
            pair.a_gossip,
            "evil",
            digest("polaris", u64::MAX, MemberState::Dead),
        ),
        (
            pair.a_gossip,
            "evil",
            digest("polaris", u64::MAX, MemberState::Left),
        ),
        (
            pair.a_gossip,
            "polaris",
            digest("polaris", u64::MAX, MemberState::Left),
        ),
        // About polaris, to sirius: u64::MAX, and left for another.
        (
            pair.b_gossip,
            "polaris",
            digest("polaris", u64::MAX, MemberState::Left),
        ),
        (
            pair.b_gossip,
            "evil",
            digest("polaris", u64::MAX, MemberState::Alive),
        ),
        (
            pair.b_gossip,
            "evil",
            digest("polaris", inc + 1, MemberState::Left),
        ),
        (
            pair.a_gossip,
            "polaris",
            digest("sirius", u64::MAX - 1, MemberState::Left),
        ),
        // Plausible and believed by sirius: polaris must outbid it.
        (
            pair.b_gossip,
            "evil",
            digest("polaris", inc + 5, MemberState::Dead),
        ),
    ];
    for (port, from, d) in forged {
        send(port, &encode(&message(from, vec![d]), None));
    }
    std::thread::sleep(SETTLE);
    assert_eq!(snapshot(&pair), before, "forged frames changed the cluster");
    let now = incarnation_of(pair.a_gossip, "polaris", None);
    assert!(now > inc + 5, "polaris at {now}, claim at {}", inc + 5);
    assert!(now < u64::MAX / 2, "{now}");
    assert!(stored_incarnation(dir.path(), "polaris") >= now);

    // Restarted after a crash: a higher incarnation than any announced, read from disk.
    pair.a.kill9();
    pair.a.restart();
    let restarted = incarnation_of(pair.a_gossip, "polaris", None);
    assert!(restarted > now, "restarted at {restarted}, was {now}");
    wait_until("restarted polaris alive on sirius", CONVERGE, || {
        members(&pair.b) == states(&[("polaris", "alive"), ("sirius", "alive")])
    });
    assert!(pair.a.log_text().contains("no --cluster_secret_file"));
}

#[test]
fn with_a_secret_unsigned_forged_stale_and_replayed_frames_and_requests_are_refused() {
    let dir = TempDir::new("trust-secret");
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, "  correct horse battery staple\n").expect("secret file");
    let flag = format!("--cluster_secret_file={}", secret_file.display());
    let pair = start_pair(dir.path(), &[&flag]);
    // Routed to sirius over a signed /internal/write.
    write_points(&pair.a);
    wait_until("points on both owners", CONVERGE, || {
        pair.b.status()["points"] == 50 && pair.a.status()["points"] == 50
    });
    let before = snapshot(&pair);
    let secret = ClusterSecret::new(b"correct horse battery staple", "test").expect("secret");
    let wrong = ClusterSecret::new(b"a wrong secret of some length", "test").expect("secret");
    let join = || message("evil", vec![digest("evil", 1, MemberState::Alive)]);
    let now = unix_now_ms();

    assert!(
        send(pair.a_gossip, &encode(&join(), None)).is_none(),
        "unsigned"
    );
    assert!(
        send(pair.a_gossip, &encode(&join(), Some(&wrong))).is_none(),
        "wrong secret"
    );
    let stale = encode_at(&join(), Some(&secret), now - 60_000);
    assert!(send(pair.a_gossip, &stale).is_none(), "stale");
    let harmless = encode(
        &message("probe", vec![digest("probe", 1, MemberState::Left)]),
        Some(&secret),
    );
    assert!(send(pair.a_gossip, &harmless).is_some(), "a valid frame");
    std::thread::sleep(Duration::from_millis(1100));
    assert!(send(pair.a_gossip, &harmless).is_none(), "replayed");
    // Signed, but claims no signature may make: u64::MAX, left for another.
    for (from, d) in [
        ("sirius", digest("polaris", u64::MAX, MemberState::Left)),
        ("sirius", digest("polaris", u64::MAX, MemberState::Dead)),
        ("polaris", digest("sirius", u64::MAX - 1, MemberState::Left)),
    ] {
        send(
            pair.a_gossip,
            &encode(&message(from, vec![d.clone()]), Some(&secret)),
        );
        send(
            pair.b_gossip,
            &encode(&message(from, vec![d]), Some(&secret)),
        );
    }

    // /internal/write without a signature, and with another secret's.
    let body = br#"{"points":[["d0","temperature",1000,99.0],["x","y",1,1.0]]}"#;
    let r = try_request(pair.a.port, "POST", "/internal/write", body, &[]).expect("request");
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(
        r.json()["error"]
            .as_str()
            .is_some_and(|e| e.contains("cluster")),
        "{}",
        r.text()
    );
    let [(n1, v1), (n2, v2)] = wrong.sign_request("POST", "/internal/write", body, unix_now_ms());
    let r = try_request(
        pair.a.port,
        "POST",
        "/internal/write",
        body,
        &[(n1, &v1), (n2, &v2)],
    )
    .expect("request");
    assert_eq!(r.status, 401, "{}", r.text());

    std::thread::sleep(SETTLE);
    assert_eq!(
        snapshot(&pair),
        before,
        "forged frames or requests changed the cluster"
    );
    let auth = &pair.a.status()["cluster_auth"];
    assert_eq!(auth["secret"], true, "{auth}");
    assert_eq!(auth["refused_frames"], 4, "{auth}");
    assert_eq!(auth["refused_requests"], 2, "{auth}");
    assert_eq!(pair.b.status()["cluster_auth"]["refused_frames"], 0);

    // A real node with another secret never joins.
    let other = dir.path().join("other");
    std::fs::write(&other, "a wrong secret of some length").expect("secret file");
    let other_flag = format!("--cluster_secret_file={}", other.display());
    let seed = format!("--seeds=127.0.0.1:{}", pair.a_gossip);
    let mut flags: Vec<&str> = TIMINGS.to_vec();
    flags.extend([other_flag.as_str(), seed.as_str()]);
    let c = Server::start("vega", dir.path(), &flags);
    std::thread::sleep(SETTLE);
    assert_eq!(members(&c), states(&[("vega", "alive")]));
    assert_eq!(snapshot(&pair), before);
}
