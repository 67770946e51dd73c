//! The cluster across real processes: three or four `minitrue-server`s on loopback, a real
//! MQTT broker (every node has its own persistent session), `--replication 2`, short gossip
//! timings, and a publisher writing continuously while nodes are killed, hung, restarted,
//! joined, and removed. Counts are compared exactly: the publisher numbers its readings, so
//! after `n` readings series `dev{d}` holds exactly `expected(n, d)` points, on each of its
//! owners (per the ring, computed here) and nowhere else.
//!
//! Reading `i` goes to device `dev{i % 20}` at timestamp `base + i` seconds (`base` a day
//! ago), so a range query up to `base + n - 1` counts exactly the readings `0..n`.

mod common;

use common::cluster::{log_tails, status, wait_for, CLUSTER_FLAGS};
use common::{free_port, try_request, Broker, BrokerKind, Publisher, Server, TempDir};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const DEVICES: usize = 20;
const METRIC: &str = "temperature";
const ABC: [&str; 3] = ["polaris", "sirius", "vega"];

/// Longest any convergence (membership, repair, handoff) may take.
const CONVERGE: Duration = Duration::from_secs(30);
/// The publisher sends this many readings, then pauses (about 500 readings a second).
const BURST: usize = 10;
const BURST_PAUSE: Duration = Duration::from_millis(20);
/// Repair runs every 5 s: two more rounds.
const TWO_REPAIR_ROUNDS: Duration = Duration::from_secs(12);

fn device(d: usize) -> String {
    format!("dev{d}")
}

/// Readings of `dev{d}` among readings `0..n`.
fn expected(n: usize, d: usize) -> u64 {
    (n / DEVICES + usize::from(d < n % DEVICES)) as u64
}

/// The owners of `dev{d}` on the ring of `ids`, primary first.
fn owners(ids: &[&str], d: usize) -> Vec<String> {
    common::cluster::owners(ids, &device(d), METRIC)
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs() as i64
}

// ---- the publisher ---------------------------------------------------------------------------

/// Publishes numbered readings continuously from its own thread until stopped.
struct Feeder {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicUsize>,
    acked: Arc<AtomicUsize>,
    thread: Option<JoinHandle<usize>>,
}

impl Feeder {
    /// Starts publishing readings `from, from + 1, ...`.
    fn start(broker: &Broker, base: i64, from: usize) -> Feeder {
        let mut publisher = Publisher::connect(broker, &format!("feeder-{}-{from}", broker.port));
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicUsize::new(from));
        let acked = Arc::new(AtomicUsize::new(from));
        let thread = {
            let (stop, sent, acked) = (stop.clone(), sent.clone(), acked.clone());
            thread::spawn(move || {
                let mut i = from;
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..BURST {
                        publisher.publish(
                            &format!("iot/sensors/{METRIC}"),
                            format!(
                                r#"{{"device_id":"{}","metric_name":"{METRIC}","timestamp":{},"value":{i}}}"#,
                                device(i % DEVICES),
                                base + i as i64
                            ),
                        );
                        i += 1;
                    }
                    sent.store(i, Ordering::Relaxed);
                    acked.store(from + publisher.acked(), Ordering::Relaxed);
                    thread::sleep(BURST_PAUSE);
                }
                publisher.finish(CONVERGE);
                i
            })
        };
        Feeder {
            stop,
            sent,
            acked,
            thread: Some(thread),
        }
    }

    /// Readings handed to the MQTT client so far (the next reading's number).
    fn sent(&self) -> usize {
        self.sent.load(Ordering::Relaxed)
    }

    /// Waits until the broker acknowledged every reading below `n` (PUBACKs come in order).
    fn wait_acked(&self, n: usize) {
        common::wait_until(&format!("PUBACKs up to reading {n}"), CONVERGE, || {
            self.acked.load(Ordering::Relaxed) >= n
        });
    }

    /// Lets the publisher run for `how_long`.
    fn run_for(&self, how_long: Duration) {
        thread::sleep(how_long);
    }

    /// Stops, waits for every PUBACK, and returns the number of readings published.
    fn stop(mut self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .expect("feeder running")
            .join()
            .expect("feeder thread")
    }
}

impl Drop for Feeder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

// ---- the cluster -----------------------------------------------------------------------------

/// One node: its id, gossip port (for other nodes' `--seeds`) and process.
struct ClusterNode {
    id: String,
    gossip: u16,
    server: Server,
    /// SIGSTOPped: it would not answer, so nothing asks it.
    stopped: bool,
}

impl ClusterNode {
    /// Whether HTTP requests to it can be answered.
    fn up(&self) -> bool {
        self.server.is_running() && !self.stopped
    }
}

struct TestCluster {
    nodes: Vec<ClusterNode>,
    broker: Broker,
    dir: TempDir,
    /// Timestamp (unix seconds) of reading 0.
    base: i64,
}

impl TestCluster {
    /// Starts a broker and nodes `ids` (each seeded with the gossip ports of those started
    /// before it; the first with its own), waits until all see each other alive with the
    /// same ring, and until every node's MQTT subscription is in place. `None` if the
    /// broker is Mosquitto and it is missing.
    fn start(kind: BrokerKind, ids: &[&str]) -> Option<TestCluster> {
        let mut cluster = TestCluster {
            nodes: Vec::new(),
            broker: Broker::start(kind)?,
            dir: TempDir::new("cluster"),
            base: now_secs() - 86_400,
        };
        for (i, id) in ids.iter().enumerate() {
            cluster.join(id, &ids[..i]);
        }
        let alive: Vec<(&str, &str)> = ids.iter().map(|id| (*id, "alive")).collect();
        cluster.wait_view(&alive);
        cluster.wait_subscribed();
        Some(cluster)
    }

    /// Starts node `id` seeded with the gossip ports of nodes `seeds` (none: its own) and
    /// waits until it answers; it may not know every peer yet. Ports are picked just before
    /// the start, so that no other process takes them in between.
    fn join(&mut self, id: &str, seeds: &[&str]) {
        let gossip = free_port();
        let seed_ports: Vec<u16> = match seeds {
            [] => vec![gossip],
            _ => seeds.iter().map(|s| self.node(s).gossip).collect(),
        };
        let seeds = format!(
            "--seeds={}",
            seed_ports
                .iter()
                .map(|p| format!("127.0.0.1:{p}"))
                .collect::<Vec<_>>()
                .join(",")
        );
        let mut extra: Vec<&str> = CLUSTER_FLAGS.to_vec();
        extra.push(&seeds);
        let server = Server::start_on_ports(
            id,
            self.dir.path(),
            &self.broker.url(),
            free_port(),
            gossip,
            &extra,
        );
        self.nodes.push(ClusterNode {
            id: id.to_string(),
            gossip,
            server,
            stopped: false,
        });
    }

    fn node(&self, id: &str) -> &ClusterNode {
        self.nodes
            .iter()
            .find(|n| n.id == id)
            .unwrap_or_else(|| panic!("no node {id}"))
    }

    fn node_mut(&mut self, id: &str) -> &mut ClusterNode {
        self.nodes
            .iter_mut()
            .find(|n| n.id == id)
            .unwrap_or_else(|| panic!("no node {id}"))
    }

    fn up(&self) -> impl Iterator<Item = &ClusterNode> {
        self.nodes.iter().filter(|n| n.up())
    }

    fn feeder(&self, from: usize) -> Feeder {
        Feeder::start(&self.broker, self.base, from)
    }

    fn kill9(&mut self, id: &str) {
        self.node_mut(id).server.kill9();
    }

    fn restart(&mut self, id: &str) {
        self.node_mut(id).server.restart();
    }

    fn sigstop(&mut self, id: &str) {
        let node = self.node_mut(id);
        node.server.signal("STOP");
        node.stopped = true;
    }

    fn sigcont(&mut self, id: &str) {
        let node = self.node_mut(id);
        node.server.signal("CONT");
        node.stopped = false;
    }

    /// SIGTERM: a clean leave. Waits for the exit.
    fn leave(&mut self, id: &str) {
        let status = self.node_mut(id).server.terminate(Duration::from_secs(10));
        assert!(
            status.is_some_and(|s| s.success()),
            "{id} did not exit cleanly after SIGTERM: {status:?}\n{}",
            self.logs()
        );
    }

    /// The tail of every node's log, for failure messages.
    fn logs(&self) -> String {
        log_tails(self.nodes.iter().map(|n| &n.server), 40)
    }

    /// Polls `check` every 50 ms until it returns `Ok`; panics with its last complaint and
    /// the logs after `timeout`. Returns how long it took.
    fn wait(
        &self,
        what: &str,
        timeout: Duration,
        check: impl FnMut() -> Result<(), String>,
    ) -> Duration {
        wait_for(what, timeout, check, || self.logs())
    }

    /// Waits until every node that is up sees exactly `expected` (id, state) and all of
    /// them have the same ring shares.
    fn wait_view(&self, expected: &[(&str, &str)]) -> Duration {
        let want: BTreeMap<String, String> = expected
            .iter()
            .map(|(id, s)| (id.to_string(), s.to_string()))
            .collect();
        self.wait(&format!("every node to see {want:?}"), CONVERGE, || {
            let mut shares: Vec<(String, Value)> = Vec::new();
            for node in self.up() {
                let status = status(&node.server)?;
                let seen: BTreeMap<String, String> = status["members"]
                    .as_array()
                    .ok_or("no members")?
                    .iter()
                    .map(|m| {
                        (
                            m["id"].as_str().unwrap_or_default().to_string(),
                            m["state"].as_str().unwrap_or_default().to_string(),
                        )
                    })
                    .collect();
                if seen != want {
                    return Err(format!("{} sees {seen:?}", node.id));
                }
                shares.push((node.id.clone(), status["ring_share"].clone()));
            }
            match shares.windows(2).find(|w| w[0].1 != w[1].1) {
                Some(w) => Err(format!("ring shares differ: {w:?}")),
                None => Ok(()),
            }
        })
    }

    /// Publishes probe readings until every node that is up has accepted one, so its
    /// subscription is in place (a broker drops what matches no subscription yet).
    fn wait_subscribed(&self) {
        let accepted = |node: &ClusterNode| -> u64 {
            status(&node.server)
                .ok()
                .and_then(|s| s["ingest_accepted"].as_u64())
                .unwrap_or(0)
        };
        let before: Vec<u64> = self.up().map(accepted).collect();
        let mut probe = Publisher::connect(&self.broker, &format!("probe-{}", self.broker.port));
        let mut n = 0;
        self.wait("every node's MQTT subscription", CONVERGE, || {
            n += 1;
            probe.publish(
                &format!("iot/sensors/{METRIC}"),
                format!(
                    r#"{{"device_id":"probe","metric_name":"{METRIC}","timestamp":{n},"value":0}}"#
                ),
            );
            thread::sleep(Duration::from_millis(100));
            let lagging: Vec<&str> = self
                .up()
                .zip(&before)
                .filter(|(node, b)| accepted(node) <= **b)
                .map(|(node, _)| node.id.as_str())
                .collect();
            if lagging.is_empty() {
                Ok(())
            } else {
                Err(format!("{lagging:?} accepted no probe"))
            }
        });
        probe.finish(CONVERGE);
    }

    /// Waits until, for every series, each node that is up holds `want(d)` points locally
    /// if it owns the series on the ring of `ring_ids` and none if it does not, and every
    /// such node answers the coordinated count `want(d)`. Fails at once if any count, local
    /// or coordinated, exceeds `want(d)`: a reading counted twice.
    fn wait_converged(&self, ring_ids: &[&str], want: impl Fn(usize) -> u64) -> Duration {
        self.wait(
            &format!("every series on exactly its owners among {ring_ids:?}"),
            CONVERGE,
            || {
                for d in 0..DEVICES {
                    let owned_by = owners(ring_ids, d);
                    for node in self.up() {
                        let local = local_count(&node.server, d, None)?;
                        assert!(
                            local <= want(d),
                            "{} holds {local} points of {} locally, only {} were published\n{}",
                            node.id,
                            device(d),
                            want(d),
                            self.logs()
                        );
                        let should = if owned_by.contains(&node.id) {
                            want(d)
                        } else {
                            0
                        };
                        if local != should {
                            return Err(format!(
                                "{} holds {local} of {} locally, want {should} (owners {owned_by:?})",
                                node.id,
                                device(d)
                            ));
                        }
                    }
                }
                for node in self.up() {
                    for d in 0..DEVICES {
                        let count = coordinated_count(&node.server, d, None)?;
                        assert!(count <= want(d), "{} answered {count} for {} of {} published", node.id, device(d), want(d));
                        if count != want(d) {
                            return Err(format!(
                                "{} answers {count} for {}, want {}",
                                node.id,
                                device(d),
                                want(d)
                            ));
                        }
                    }
                }
                Ok(())
            },
        )
    }

    /// Waits until node `id` holds, for every series it owns on the ring of `ring_ids`,
    /// exactly the readings `0..n` in its own store (range up to reading `n - 1`).
    fn wait_local_exact(&self, id: &str, ring_ids: &[&str], n: usize) -> Duration {
        let node = self.node(id);
        let end = self.base + n as i64 - 1;
        self.wait(
            &format!("{id} to hold readings 0..{n} of its own series"),
            CONVERGE,
            || {
                for d in (0..DEVICES).filter(|&d| owners(ring_ids, d).contains(&id.to_string())) {
                    let local = local_count(&node.server, d, Some(end))?;
                    assert!(
                        local <= expected(n, d),
                        "{id} holds {local} of {}",
                        device(d)
                    );
                    if local != expected(n, d) {
                        return Err(format!(
                            "{id} holds {local} of {}, want {}",
                            device(d),
                            expected(n, d)
                        ));
                    }
                }
                Ok(())
            },
        )
    }

    /// How many series node `id` holds points of without owning them on `ring_ids`' ring.
    fn strays(&self, id: &str, ring_ids: &[&str]) -> usize {
        let node = self.node(id);
        (0..DEVICES)
            .filter(|&d| !owners(ring_ids, d).contains(&id.to_string()))
            .filter(|&d| local_count(&node.server, d, None).is_ok_and(|c| c > 0))
            .count()
    }

    /// Waits until every node in `askers` answers exactly `expected(n, d)` for the readings
    /// `0..n` of every series (a range query up to reading `n - 1`); fails at once on more.
    fn wait_queryable(&self, askers: &[&str], n: usize) -> Duration {
        let end = self.base + n as i64 - 1;
        self.wait(
            &format!("readings 0..{n} queryable through {askers:?}"),
            CONVERGE,
            || {
                for id in askers {
                    let node = self.node(id);
                    for d in 0..DEVICES {
                        let count = coordinated_count(&node.server, d, Some(end))?;
                        let want = expected(n, d);
                        assert!(
                            count <= want,
                            "{id} answered {count} for {} up to reading {n}, only {want} published",
                            device(d)
                        );
                        if count != want {
                            return Err(format!(
                                "{id} answers {count} for {}, want {want}",
                                device(d)
                            ));
                        }
                    }
                }
                Ok(())
            },
        )
    }
}

fn count_query(server: &Server, path: &str, d: usize, end: Option<i64>) -> Result<Value, String> {
    common::cluster::count_query(server, path, &device(d), METRIC, end)
}

/// Points of `dev{d}` (up to `end` seconds) in `server`'s own store.
fn local_count(server: &Server, d: usize, end: Option<i64>) -> Result<u64, String> {
    common::cluster::count(server, "/query?local=1", &device(d), METRIC, end)
}

/// Points of `dev{d}` (up to `end` seconds) as `server` coordinates the query.
fn coordinated_count(server: &Server, d: usize, end: Option<i64>) -> Result<u64, String> {
    common::cluster::count(server, "/query", &device(d), METRIC, end)
}

// ---- the tests -------------------------------------------------------------------------------

fn steady_state_counts_are_exact_on_every_node_and_owner(kind: BrokerKind) {
    let Some(cluster) = TestCluster::start(kind, &ABC) else {
        return;
    };
    let feeder = cluster.feeder(0);
    feeder.run_for(Duration::from_secs(2));
    let n = feeder.stop();
    let took = cluster.wait_converged(&ABC, |d| expected(n, d));
    eprintln!("{kind:?}: {n} readings exact on every owner {took:?} after the last PUBACK");

    // Same answer from every node, served by an owner; ring shares identical everywhere.
    let shares: Vec<Value> = cluster
        .up()
        .map(|node| status(&node.server).expect("status")["ring_share"].clone())
        .collect();
    assert!(shares.windows(2).all(|w| w[0] == w[1]), "{shares:?}");
    for node in cluster.up() {
        for d in 0..DEVICES {
            let v = count_query(&node.server, "/query", d, None).expect("query");
            let owned_by = owners(&ABC, d);
            let served_by = v["served_by"].as_str().unwrap_or_default().to_string();
            assert!(owned_by.contains(&served_by), "{v}");
            assert_eq!(v["owners"], serde_json::json!(owned_by), "{v}");
        }
    }

    // Bad input is the client's fault on a coordinator too: 400 naming the field, not a
    // 503 made of every owner's 400.
    let body = serde_json::json!({"device_id": device(0), "metric_name": METRIC,
        "operation": "median"})
    .to_string();
    for path in ["/query", "/query-samples"] {
        let r = cluster.node("polaris").server.post(path, &body);
        assert_eq!(r.status, 400, "{path}: {}", r.text());
        assert!(r.json()["error"]
            .as_str()
            .unwrap_or_default()
            .contains("operation"));
    }
}

#[test]
fn embedded_steady_state_counts_are_exact_on_every_node_and_owner() {
    steady_state_counts_are_exact_on_every_node_and_owner(BrokerKind::Embedded);
}

#[test]
fn mosquitto_steady_state_counts_are_exact_on_every_node_and_owner() {
    steady_state_counts_are_exact_on_every_node_and_owner(BrokerKind::Mosquitto);
}

fn killed_node_loses_no_acknowledged_reading_and_catches_up_after_restart(kind: BrokerKind) {
    let Some(mut cluster) = TestCluster::start(kind, &ABC) else {
        return;
    };
    let feeder = cluster.feeder(0);
    feeder.run_for(Duration::from_secs(1));

    cluster.kill9("vega");
    let killed_at = feeder.sent();
    feeder.wait_acked(killed_at);
    let took = cluster.wait_queryable(&["polaris", "sirius"], killed_at);
    eprintln!(
        "readings 0..{killed_at} (before the kill) exact through both survivors after {took:?}"
    );

    feeder.run_for(Duration::from_secs(2));
    let during = feeder.sent();
    feeder.wait_acked(during);
    cluster.wait_queryable(&["polaris", "sirius"], during);

    cluster.restart("vega");
    let restarted_at = feeder.sent();
    let restarted = Instant::now();
    let caught_up = cluster.wait_local_exact("vega", &ABC, restarted_at);
    let strays = cluster.strays("vega", &ABC);
    feeder.run_for(Duration::from_secs(1));
    let n = feeder.stop();
    let took = cluster.wait_converged(&ABC, |d| expected(n, d));
    eprintln!(
        "{kind:?}: vega missed {} readings; its own series held them all {caught_up:?} after \
         its restart (then it also held {strays} series it does not own); every owner exact \
         {:?} after the restart ({took:?} after the last PUBACK)",
        restarted_at - killed_at,
        restarted.elapsed()
    );
}

#[test]
fn embedded_killed_node_loses_no_acknowledged_reading_and_catches_up_after_restart() {
    killed_node_loses_no_acknowledged_reading_and_catches_up_after_restart(BrokerKind::Embedded);
}

#[test]
fn mosquitto_killed_node_loses_no_acknowledged_reading_and_catches_up_after_restart() {
    killed_node_loses_no_acknowledged_reading_and_catches_up_after_restart(BrokerKind::Mosquitto);
}

#[test]
fn hung_node_comes_back_and_converges_without_double_counting() {
    let mut cluster = TestCluster::start(BrokerKind::Embedded, &ABC).expect("embedded broker");
    let feeder = cluster.feeder(0);
    feeder.run_for(Duration::from_secs(1));

    cluster.sigstop("vega");
    let stopped = Instant::now();
    cluster.wait_view(&[("polaris", "alive"), ("sirius", "alive"), ("vega", "dead")]);
    // Hung well past the dead timeout.
    thread::sleep(Duration::from_millis(2500).saturating_sub(stopped.elapsed()));
    cluster.sigcont("vega");
    let resumed = Instant::now();
    cluster.wait_view(&[("polaris", "alive"), ("sirius", "alive"), ("vega", "alive")]);
    feeder.run_for(Duration::from_secs(1));
    let n = feeder.stop();
    cluster.wait_converged(&ABC, |d| expected(n, d));
    eprintln!(
        "vega hung {:?}; exact everywhere {:?} after SIGCONT",
        resumed - stopped,
        resumed.elapsed()
    );
}

#[test]
fn joining_node_takes_its_share_and_a_leaving_node_hands_its_share_back() {
    let mut cluster = TestCluster::start(BrokerKind::Embedded, &ABC).expect("embedded broker");
    let feeder = cluster.feeder(0);
    feeder.run_for(Duration::from_secs(1));

    cluster.join("deneb", &ABC);
    let joined = Instant::now();
    let abcd = ["polaris", "sirius", "vega", "deneb"];
    let all_alive: Vec<(&str, &str)> = abcd.iter().map(|id| (*id, "alive")).collect();
    cluster.wait_view(&all_alive);
    feeder.run_for(Duration::from_secs(1));
    let n = feeder.stop();
    let moved = (0..DEVICES)
        .filter(|&d| owners(&abcd, d).contains(&"deneb".to_string()))
        .count();
    assert!(moved > 0, "deneb owns nothing: choose other ids");
    cluster.wait_converged(&abcd, |d| expected(n, d));
    eprintln!(
        "join: deneb owns {moved} of {DEVICES} series; all on their new owners {:?} after it started",
        joined.elapsed()
    );

    let feeder = cluster.feeder(n);
    feeder.run_for(Duration::from_millis(500));
    cluster.leave("sirius");
    let left = Instant::now();
    let acd = ["polaris", "vega", "deneb"];
    cluster.wait_view(&[
        ("polaris", "alive"),
        ("sirius", "left"),
        ("vega", "alive"),
        ("deneb", "alive"),
    ]);
    feeder.run_for(Duration::from_secs(1));
    let n = feeder.stop();
    cluster.wait_converged(&acd, |d| expected(n, d));
    eprintln!(
        "leave: sirius's share re-replicated {:?} after its SIGTERM",
        left.elapsed()
    );
}

#[test]
fn series_deleted_during_repair_stays_deleted_and_others_are_untouched() {
    let mut cluster = TestCluster::start(BrokerKind::Embedded, &ABC).expect("embedded broker");
    let feeder = cluster.feeder(0);
    feeder.run_for(Duration::from_secs(1));
    cluster.kill9("vega");
    feeder.run_for(Duration::from_secs(2));
    let n = feeder.stop();

    // A series vega owns: hints for it wait on another node, and vega's MQTT session holds
    // the readings it missed.
    let doomed = (0..DEVICES)
        .find(|&d| owners(&ABC, d).contains(&"vega".to_string()))
        .expect("vega owns a series");
    cluster.restart("vega");
    let body = serde_json::json!({"device_id": device(doomed), "metric_name": METRIC}).to_string();
    cluster.wait(
        "the delete to be confirmed by every owner",
        CONVERGE,
        || {
            let r = try_request(
                cluster.node("polaris").server.port,
                "POST",
                "/delete",
                body.as_bytes(),
                &[],
            )
            .map_err(|e| e.to_string())?;
            match r.status {
                200 => Ok(()),
                s => Err(format!("/delete answered {s}: {}", r.text())),
            }
        },
    );
    let want = |d: usize| if d == doomed { 0 } else { expected(n, d) };
    cluster.wait_converged(&ABC, want);
    let watch = Instant::now();
    while watch.elapsed() < TWO_REPAIR_ROUNDS {
        for node in cluster.up() {
            let local = local_count(&node.server, doomed, None).expect("local count");
            assert_eq!(
                local,
                0,
                "{} of deleted {} came back on {} {:?} after convergence\n{}",
                local,
                device(doomed),
                node.id,
                watch.elapsed(),
                cluster.logs()
            );
        }
        thread::sleep(Duration::from_millis(250));
    }
    cluster.wait_converged(&ABC, want);
}

#[test]
fn coordinators_with_different_views_never_double_count() {
    let mut cluster = TestCluster::start(BrokerKind::Embedded, &ABC).expect("embedded broker");
    let feeder = cluster.feeder(0);
    feeder.run_for(Duration::from_secs(1));
    let n = feeder.stop();
    cluster.wait_converged(&ABC, |d| expected(n, d));

    // deneb knows only polaris at first: while views differ, every coordinator picks one
    // owner copy, so no answer exceeds what was published.
    cluster.join("deneb", &["polaris"]);
    let abcd = ["polaris", "sirius", "vega", "deneb"];
    let all_alive: BTreeMap<String, String> = abcd
        .iter()
        .map(|id| (id.to_string(), "alive".to_string()))
        .collect();
    let mut views_differed = false;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        for node in cluster.up() {
            if let Ok(s) = status(&node.server) {
                let seen: BTreeMap<String, String> = s["members"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|m| {
                        (
                            m["id"].as_str().unwrap_or_default().to_string(),
                            m["state"].as_str().unwrap_or_default().to_string(),
                        )
                    })
                    .collect();
                views_differed |= seen != all_alive;
            }
            for d in 0..DEVICES {
                let v = count_query(&node.server, "/query", d, None).expect("query");
                let count = v["count"].as_u64().expect("count");
                assert!(
                    count <= expected(n, d),
                    "{} answered {count} for {} of {} published: {v}",
                    node.id,
                    device(d),
                    expected(n, d)
                );
            }
        }
    }
    eprintln!("views differed while querying: {views_differed}");
    cluster.wait_converged(&abcd, |d| expected(n, d));
}

// ---- corrupt files ---------------------------------------------------------------------------

/// Flips one bit of byte `offset` of `path`.
fn flip_byte(path: &std::path::Path, offset: usize) {
    let mut data = std::fs::read(path).expect("read file to corrupt");
    data[offset] ^= 0x20;
    std::fs::write(path, data).expect("write corrupted file");
}

/// The files in `dir` whose name ends with `suffix`, sorted.
fn files_ending(dir: &std::path::Path, suffix: &str) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.to_string_lossy().ends_with(suffix))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// An offset inside `kind` of the segment bytes `data` (see the format in
/// `storage::segment`): the first chunk's timestamp column, the index, or the trailer's CRC.
fn segment_offset(data: &[u8], kind: &str) -> usize {
    let len = data.len();
    let index_offset = u64::from_le_bytes(data[len - 24..len - 16].try_into().expect("8 bytes"));
    match kind {
        "chunk" => 6 + 3,
        "index" => index_offset as usize + 5,
        "trailer" => len - 6,
        other => panic!("no segment part {other}"),
    }
}

/// An offset inside the payload of the second record of WAL bytes `data` (8-byte file
/// header; 12-byte record headers with the payload length at bytes 4..8), if there are at
/// least three records.
fn wal_middle_record_offset(data: &[u8]) -> Option<usize> {
    let record_len = |at: usize| -> Option<usize> {
        let len = data.get(at + 4..at + 8)?;
        Some(12 + u32::from_le_bytes(len.try_into().ok()?) as usize)
    };
    let second = 8 + record_len(8)?;
    let third = second + record_len(second)?;
    (third < data.len()).then_some(second + 12 + 1)
}

#[test]
fn flipped_byte_in_each_file_kind_is_quarantined_and_repair_refills_exact_counts() {
    let mut cluster = TestCluster::start(BrokerKind::Embedded, &ABC).expect("embedded broker");
    let feeder = cluster.feeder(0);
    feeder.run_for(Duration::from_secs(2));
    let n = feeder.stop();

    // Deleting one series per pair of owners makes every node flush (and compact) its
    // store into a segment within a second or so: a pending tombstone makes a flush due.
    let mut deleted: Vec<usize> = Vec::new();
    for d in 0..DEVICES {
        let covered: BTreeSet<String> = deleted.iter().flat_map(|&d| owners(&ABC, d)).collect();
        if covered.len() == ABC.len() {
            break;
        }
        if owners(&ABC, d).iter().any(|o| !covered.contains(o)) {
            deleted.push(d);
        }
    }
    for &d in &deleted {
        let body = serde_json::json!({"device_id": device(d), "metric_name": METRIC}).to_string();
        let r = cluster.node("polaris").server.post("/delete", &body);
        assert_eq!(r.status, 200, "/delete {}: {}", device(d), r.text());
    }
    let deleted = &deleted;
    let want = move |n: usize| {
        move |d: usize| {
            if deleted.contains(&d) {
                0
            } else {
                expected(n, d)
            }
        }
    };
    cluster.wait_converged(&ABC, want(n));
    let root = cluster.dir.path().to_path_buf();
    let store = |id: &str| root.join(id);
    cluster.wait(
        "one compacted segment and no WAL record on every node",
        CONVERGE,
        || {
            for id in ABC {
                let segments = files_ending(&store(id).join("segments"), ".seg");
                let wal_bytes: u64 = files_ending(&store(id).join("wal"), ".log")
                    .iter()
                    .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
                    .sum();
                if segments.len() != 1 || wal_bytes > 8 {
                    return Err(format!(
                        "{id}: {} segments, {wal_bytes} WAL bytes",
                        segments.len()
                    ));
                }
            }
            Ok(())
        },
    );

    // One node at a time, so that the other owner of each series still has it.
    for (id, kind) in [
        ("polaris", "chunk"),
        ("sirius", "index"),
        ("vega", "trailer"),
    ] {
        cluster.kill9(id);
        let segment = files_ending(&store(id).join("segments"), ".seg").remove(0);
        let data = std::fs::read(&segment).expect("read segment");
        flip_byte(&segment, segment_offset(&data, kind));
        cluster.restart(id);
        let quarantined = status(&cluster.node(id).server).expect("status")["quarantined"].clone();
        let name = segment
            .file_name()
            .expect("name")
            .to_string_lossy()
            .to_string();
        assert!(
            quarantined.as_array().is_some_and(|q| q
                .iter()
                .any(|f| f["file"].as_str().is_some_and(|f| f.ends_with(&name)))),
            "{id}: {kind} corrupt, /status quarantined: {quarantined}"
        );
        assert!(
            !segment.exists(),
            "{id}: the corrupt segment left segments/"
        );
        let took = cluster.wait_converged(&ABC, want(n));
        eprintln!("{id}: segment {kind} corrupt, exact again after {took:?}");
    }

    // A WAL record in the middle of a file: new readings sit in every owner's WAL.
    let feeder = cluster.feeder(n);
    feeder.run_for(Duration::from_secs(2));
    let n2 = feeder.stop();
    cluster.wait_converged(&ABC, want(n2));
    cluster.kill9("polaris");
    let (wal_file, offset) = files_ending(&store("polaris").join("wal"), ".log")
        .into_iter()
        .find_map(|p| {
            let data = std::fs::read(&p).ok()?;
            wal_middle_record_offset(&data).map(|o| (p, o))
        })
        .expect("a WAL file of polaris with three records");
    flip_byte(&wal_file, offset);
    cluster.restart("polaris");
    let status = status(&cluster.node("polaris").server).expect("status");
    let name = wal_file
        .file_name()
        .expect("name")
        .to_string_lossy()
        .to_string();
    assert!(
        status["quarantined"]
            .as_array()
            .is_some_and(|q| q.iter().any(|f| {
                f["file"].as_str().is_some_and(|f| f.ends_with(&name))
                    && f["reason"].as_str().is_some_and(|r| r.contains("offset"))
            })),
        "WAL record corrupt, /status quarantined: {}",
        status["quarantined"]
    );
    let took = cluster.wait_converged(&ABC, want(n2));
    eprintln!("polaris: WAL record corrupt, exact again after {took:?}");
}

/// `POST /query` with `body` to `server`: (status, answer).
fn post_query(server: &Server, body: &Value) -> (u16, Value) {
    let r = server.post("/query", &body.to_string());
    let status = r.status;
    (status, r.json())
}

#[test]
fn labelled_series_spread_over_the_ring_and_a_query_counts_each_once() {
    let mut cluster = TestCluster::start(BrokerKind::Embedded, &ABC).expect("embedded broker");
    // One device, one metric, 20 rooms with the same timestamps: 20 series, never merged.
    let ts0 = cluster.base * 1000;
    let body: String = (0..20)
        .flat_map(|room| {
            (0..10).map(move |i| {
                format!(
                    "t,device_id=d,room=r{room} value={room} {}\n",
                    ts0 + i * 1000
                )
            })
        })
        .collect();
    let r = cluster
        .node("polaris")
        .server
        .post("/write?precision=ms", &body);
    assert_eq!(r.status, 204, "{}", r.text());

    // Every node holds only its share (replication 2): 400 copies of 200 readings in all,
    // and no node holds every series.
    let mut copies = 0;
    for node in cluster.up() {
        let (status, v) = post_query(
            &node.server,
            &serde_json::json!({"device_id": "d", "metric_name": "t", "operation": "count"}),
        );
        assert_eq!(status, 200, "{v}");
        let local = node
            .server
            .post(
                "/query?local=1",
                &serde_json::json!({"device_id": "d", "metric_name": "t", "operation": "count"})
                    .to_string(),
            )
            .json();
        assert!(
            local["series"].as_u64().unwrap() < 20,
            "{} holds every series: {local}",
            node.id
        );
        copies += local["count"].as_u64().unwrap();
        assert_eq!(v["count"], 200, "{} counted each series once: {v}", node.id);
        assert_eq!(v["series"], 20, "{v}");
        assert_eq!(v["result"], 200.0, "{v}");
    }
    assert_eq!(copies, 400, "each series on two nodes");

    // A label narrows to one series; its sum tells the rooms apart.
    let one = serde_json::json!({"device_id": "d", "metric_name": "t", "labels": {"room": "r7"}, "operation": "sum"});
    let (status, v) = post_query(&cluster.node("sirius").server, &one);
    assert_eq!(
        (status, v["count"].clone(), v["result"].clone()),
        (200, 10.into(), 70.0.into()),
        "{v}"
    );
    assert_eq!(v["labels"], serde_json::json!({"room": "r7"}));
    assert!(
        v["served_by"].is_string(),
        "one series names the copy that answered: {v}"
    );

    // Per step: buckets merge across series.
    let stepped =
        serde_json::json!({"device_id": "d", "metric_name": "t", "operation": "count", "step": 5});
    let (_, v) = post_query(&cluster.node("vega").server, &stepped);
    let total: u64 = v["buckets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["count"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 200, "{v}");

    // Samples cover the same 20 series, each one's copy taken once.
    let r = cluster.node("vega").server.post(
        "/query-samples",
        &serde_json::json!({"device_id": "d", "metric_name": "t", "limit": 1000}).to_string(),
    );
    let v = r.json();
    assert_eq!(
        (v["count"].clone(), v["series"].clone()),
        (200.into(), 20.into()),
        "{v}"
    );
    for result in v["results"].as_array().unwrap() {
        let room: f64 = result["labels"]["room"].as_str().unwrap()[1..]
            .parse()
            .unwrap();
        assert_eq!(
            result["samples"],
            serde_json::json!(vec![room; 10]),
            "{result}"
        );
    }

    // The series listing from any node names each of the 20 series once.
    for node in cluster.up() {
        let v = node.server.get("/series?match=t&limit=100").json();
        assert_eq!(
            (v["count"].clone(), v["truncated"].clone()),
            (20.into(), false.into()),
            "{v}"
        );
    }

    // PromQL from any node counts each series once: 20 series of 10 readings.
    for node in cluster.up() {
        let path = format!(
            "/api/v1/query?query=sum(count_over_time(t%5B1h%5D))%20%2B%20count(t)&time={}",
            ts0 / 1000 + 10
        );
        let v = node.server.get(&path).json();
        assert_eq!(v["status"], "success", "{}: {v}", node.id);
        assert_eq!(
            v["data"]["result"][0]["value"][1], "220",
            "{}: {v}",
            node.id
        );
    }

    // A delete by label removes that series on every copy; one by device removes them all.
    let r = cluster.node("sirius").server.post(
        "/delete",
        &serde_json::json!({"device_id": "d", "metric_name": "t", "labels": {"room": "r3"}})
            .to_string(),
    );
    assert_eq!(
        (r.status, r.json()["series"].clone()),
        (200, 1.into()),
        "{}",
        r.text()
    );
    for node in cluster.up() {
        let (_, v) = post_query(
            &node.server,
            &serde_json::json!({"device_id": "d", "metric_name": "t", "operation": "count"}),
        );
        assert_eq!(
            (v["count"].clone(), v["series"].clone()),
            (190.into(), 19.into()),
            "{v}"
        );
    }

    // One node killed: every series still has a live copy, so the answer is whole.
    cluster.kill9("vega");
    cluster.wait_view(&[("polaris", "alive"), ("sirius", "alive"), ("vega", "dead")]);
    for id in ["polaris", "sirius"] {
        let (status, v) = post_query(
            &cluster.node(id).server,
            &serde_json::json!({"device_id": "d", "metric_name": "t", "operation": "count"}),
        );
        assert_eq!((status, v["count"].clone()), (200, 190.into()), "{v}");
        assert_eq!(
            v["partial"], false,
            "one failure of replication 2 loses nothing: {v}"
        );
    }

    // PromQL too: with one of three members dead every series still has a live copy.
    let v = cluster
        .node("sirius")
        .server
        .get(&format!(
            "/api/v1/query?query=sum(count_over_time(t%5B1h%5D))%20%2B%20count(t)&time={}",
            ts0 / 1000 + 10
        ))
        .json();
    assert_eq!(v["data"]["result"][0]["value"][1], "209", "{v}");

    // A delete while an owner is dead removes every live copy and says it must be retried.
    let r = cluster.node("polaris").server.post(
        "/delete",
        &serde_json::json!({"device_id": "d", "metric_name": "t"}).to_string(),
    );
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.text().contains("not confirmed"), "{}", r.text());
    assert_eq!(r.json()["series"], 19, "{}", r.text());
    let (_, v) = post_query(
        &cluster.node("sirius").server,
        &serde_json::json!({"device_id": "d", "metric_name": "t", "operation": "count"}),
    );
    assert_eq!(v["count"], 0, "{v}");
}
