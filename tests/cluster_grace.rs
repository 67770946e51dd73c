//! Time in a real 3-node cluster (`--replication 2`, short gossip timings, writes over
//! `POST /write`): a node down longer than `--tombstone_grace_hours` does not bring back a
//! series deleted while it was away, and a member dead longer than `--dead_member_expiry`
//! leaves every table while repair puts what it owned back on two live nodes.
//!
//! Series `dev{d}|temperature` gets `POINTS` points at `base + i` seconds (`base` a day
//! ago); counts are compared exactly on every node's own store (`/query?local=1`), against
//! the owners the ring gives.

mod common;

use common::cluster::{log_tails, status, wait_for, CLUSTER_FLAGS};
use common::{free_port, Server, TempDir};
use serde_json::Value;
use std::collections::BTreeSet;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const DEVICES: usize = 12;
const METRIC: &str = "temperature";
const ABC: [&str; 3] = ["polaris", "sirius", "vega"];
/// Longest any convergence (membership, repair, handoff) may take.
const CONVERGE: Duration = Duration::from_secs(30);
/// Repair runs every 5 s: more than two rounds.
const TWO_REPAIR_ROUNDS: Duration = Duration::from_secs(12);

fn device(d: usize) -> String {
    format!("dev{d}")
}

fn owners(ids: &[&str], d: usize) -> Vec<String> {
    common::cluster::owners(ids, &device(d), METRIC)
}

/// Three nodes on ports chosen here, `polaris` the seed of the others, started with
/// `extra` flags (all of them) and `vega_extra` (vega only).
struct Trio {
    nodes: Vec<Server>,
    _dir: TempDir,
    base_ms: i64,
}

impl Trio {
    fn start(extra: &[&str], vega_extra: &[&str]) -> Trio {
        let dir = TempDir::new("grace");
        let seed = free_port();
        let mut nodes = Vec::new();
        for id in ABC {
            let gossip = if nodes.is_empty() { seed } else { free_port() };
            let seeds = format!("--seeds=127.0.0.1:{seed}");
            let mut flags: Vec<&str> = CLUSTER_FLAGS.to_vec();
            flags.push(&seeds);
            flags.extend_from_slice(extra);
            if id == "vega" {
                flags.extend_from_slice(vega_extra);
            }
            nodes.push(Server::start_on_ports(
                id,
                dir.path(),
                "tcp://127.0.0.1:1",
                free_port(),
                gossip,
                &flags,
            ));
        }
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_millis() as i64;
        let trio = Trio {
            nodes,
            _dir: dir,
            base_ms: now_ms - 86_400_000,
        };
        trio.wait_members(&ABC, &ABC);
        trio
    }

    fn node(&self, id: &str) -> &Server {
        self.nodes
            .iter()
            .find(|n| n.node_id == id)
            .unwrap_or_else(|| panic!("no node {id}"))
    }

    fn node_mut(&mut self, id: &str) -> &mut Server {
        self.nodes
            .iter_mut()
            .find(|n| n.node_id == id)
            .unwrap_or_else(|| panic!("no node {id}"))
    }

    fn logs(&self) -> String {
        log_tails(&self.nodes, 30)
    }

    /// Polls `check` until it is `Ok`; panics with its last complaint and the logs after
    /// [`CONVERGE`].
    fn wait(&self, what: &str, check: impl FnMut() -> Result<(), String>) -> Duration {
        wait_for(what, CONVERGE, check, || self.logs())
    }

    /// Waits until each of `observers` lists exactly `alive`, every one alive.
    fn wait_members(&self, observers: &[&str], alive: &[&str]) -> Duration {
        let want: BTreeSet<(String, String)> = alive
            .iter()
            .map(|id| (id.to_string(), "alive".to_string()))
            .collect();
        self.wait(&format!("{observers:?} to list exactly {alive:?}"), || {
            for id in observers {
                let seen = members(self.node(id))?;
                if seen != want {
                    return Err(format!("{id} lists {seen:?}"));
                }
            }
            Ok(())
        })
    }

    /// Waits until each of `observers` sees `dead` dead.
    fn wait_dead(&self, observers: &[&str], dead: &str) -> Duration {
        self.wait(&format!("{dead} dead on {observers:?}"), || {
            for id in observers {
                let seen = members(self.node(id))?;
                if !seen.contains(&(dead.into(), "dead".into())) {
                    return Err(format!("{id} lists {seen:?}"));
                }
            }
            Ok(())
        })
    }

    /// Writes points `from..to` of every series through `via`.
    fn write(&self, via: &str, from: usize, to: usize) {
        let mut body = String::new();
        for d in 0..DEVICES {
            for i in from..to {
                body.push_str(&format!(
                    "{METRIC},device_id={} value={i} {}\n",
                    device(d),
                    self.base_ms + i as i64 * 1000
                ));
            }
        }
        let r = self.node(via).post("/write?precision=ms", &body);
        assert_eq!(r.status, 204, "/write through {via}: {}", r.text());
    }

    /// Waits until every node in `up` holds `want(d)` points of each series in its own
    /// store if it owns it on the ring of `ring`, and none if not. More than `want(d)`
    /// anywhere fails at once: a point counted twice, or a deleted one back.
    fn wait_copies(&self, up: &[&str], ring: &[&str], want: impl Fn(usize) -> u64) -> Duration {
        self.wait(
            &format!("every series on exactly its owners among {ring:?}"),
            || {
                for d in 0..DEVICES {
                    let owned_by = owners(ring, d);
                    for id in up {
                        let local = local_count(self.node(id), d)?;
                        assert!(
                            local <= want(d),
                            "{id} holds {local} points of {}, want at most {}\n{}",
                            device(d),
                            want(d),
                            self.logs()
                        );
                        let should = if owned_by.iter().any(|o| o == id) {
                            want(d)
                        } else {
                            0
                        };
                        if local != should {
                            return Err(format!(
                                "{id} holds {local} of {}, want {should} (owners {owned_by:?})",
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

/// `(id, state)` of every member `server` lists.
fn members(server: &Server) -> Result<BTreeSet<(String, String)>, String> {
    let status = status(server)?;
    Ok(status["members"]
        .as_array()
        .ok_or("no members in /status")?
        .iter()
        .map(|m| {
            (
                m["id"].as_str().unwrap_or_default().to_string(),
                m["state"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect())
}

/// Points of `dev{d}` in `server`'s own store.
fn local_count(server: &Server, d: usize) -> Result<u64, String> {
    common::cluster::count(server, "/query?local=1", &device(d), METRIC, None)
}

/// Kills vega while it holds a series, deletes that series while vega is down, waits past
/// the grace and restarts vega. Returns the cluster and the deleted series.
fn delete_while_vega_is_down_past_the_grace(vega_extra: &[&str]) -> (Trio, usize) {
    const POINTS: usize = 40;
    let grace = Duration::from_secs_f64(0.002 * 3600.0);
    let mut trio = Trio::start(&["--tombstone_grace_hours=0.002"], vega_extra);
    trio.write("polaris", 0, POINTS);
    trio.wait_copies(&ABC, &ABC, |_| POINTS as u64);
    let doomed = (0..DEVICES)
        .find(|&d| owners(&ABC, d).contains(&"vega".to_string()))
        .expect("vega owns a series: choose other ids");

    trio.node_mut("vega").kill9();
    trio.wait_dead(&["polaris", "sirius"], "vega");
    let deleted_at = Instant::now();
    let body = serde_json::json!({"device_id": device(doomed), "metric_name": METRIC});
    let r = trio.node("polaris").post("/delete", &body.to_string());
    // vega owns it and is down: the delete is not confirmed by every owner, but the two
    // that are up applied it.
    let answer = r.json();
    assert_eq!(r.status, 503, "{answer}");
    let confirmed = &answer["confirmed_by"];
    assert!(
        confirmed.as_array().is_some_and(|c| c.len() == 2),
        "{answer}"
    );
    for id in ["polaris", "sirius"] {
        assert_eq!(local_count(trio.node(id), doomed), Ok(0), "{id}");
    }
    // Past the grace: the survivors forget the delete.
    thread::sleep((grace + Duration::from_secs(1)).saturating_sub(deleted_at.elapsed()));
    trio.node_mut("vega").restart();
    (trio, doomed)
}

#[test]
fn a_node_down_past_the_grace_sets_its_data_aside_and_deletes_stay_deleted() {
    const POINTS: u64 = 40;
    let (trio, doomed) = delete_while_vega_is_down_past_the_grace(&[]);
    let restarted = Instant::now();
    let vega = trio.node("vega");
    let aside = status(vega).expect("vega status")["stale_data_set_aside"].clone();
    let path = aside["path"]
        .as_str()
        .unwrap_or_else(|| panic!("vega did not set its data aside: {aside}\n{}", trio.logs()));
    assert!(
        path.contains("vega/stale-") && std::path::Path::new(path).join("wal").is_dir(),
        "{aside}"
    );
    assert!(
        vega.log_text().contains("set the old data aside"),
        "{}",
        vega.log_text()
    );

    let want = |d: usize| if d == doomed { 0 } else { POINTS };
    let took = trio.wait_copies(&ABC, &ABC, want);
    let watch = Instant::now();
    while watch.elapsed() < TWO_REPAIR_ROUNDS {
        for id in ABC {
            let local = local_count(trio.node(id), doomed).expect("local count");
            assert_eq!(
                local,
                0,
                "deleted {} came back on {id} {:?} after convergence\n{}",
                device(doomed),
                watch.elapsed(),
                trio.logs()
            );
        }
        thread::sleep(Duration::from_millis(250));
    }
    trio.wait_copies(&ABC, &ABC, want);
    eprintln!(
        "vega refilled its series from the replicas {took:?} after its restart \
         ({:?} in all); {} stayed deleted",
        restarted.elapsed(),
        device(doomed)
    );
}

/// The danger `--keep_stale_data` is documented with, shown: the test above would fail
/// without the set-aside.
#[test]
fn keep_stale_data_brings_the_deleted_series_back() {
    const POINTS: u64 = 40;
    let (trio, doomed) = delete_while_vega_is_down_past_the_grace(&["--keep_stale_data"]);
    assert_eq!(
        status(trio.node("vega")).expect("status")["stale_data_set_aside"],
        Value::Null
    );
    // Repair copies vega's old points back to the other owner, which forgot the delete.
    let other = owners(&ABC, doomed)
        .into_iter()
        .find(|o| o != "vega")
        .expect("two owners");
    trio.wait(
        &format!("{} back on {other}", device(doomed)),
        || match local_count(trio.node(&other), doomed)? {
            POINTS => Ok(()),
            n => Err(format!("{other} holds {n}")),
        },
    );
}

/// polaris is the one node without seeds of its own (the others seed to it): once removed,
/// only the others' periodic seed probe can find it again when it restarts.
#[test]
fn a_dead_member_leaves_every_table_and_its_share_is_re_replicated() {
    const FIRST: usize = 30;
    const ALL: usize = 50;
    let mut trio = Trio::start(&["--dead_member_expiry=5s"], &[]);
    trio.write("sirius", 0, FIRST);
    trio.wait_copies(&ABC, &ABC, |_| FIRST as u64);

    trio.node_mut("polaris").kill9();
    let killed = Instant::now();
    let survivors = ["sirius", "vega"];
    trio.wait_dead(&survivors, "polaris");
    // Written while polaris is dead but still in the ring: sirius keeps hints for it.
    trio.write("sirius", FIRST, ALL);
    let hints = status(trio.node("sirius")).expect("status")["hints_pending"]["polaris"].clone();
    assert!(
        hints.as_u64().is_some_and(|n| n > 0),
        "no hints for polaris: {hints}"
    );

    trio.wait_members(&survivors, &survivors);
    let gone = killed.elapsed();
    eprintln!("polaris left both tables {gone:?} after its kill");
    // Dead after 1.5 s of silence, removed 5 s later (the last news came at most a few
    // gossip rounds before the kill).
    assert!(
        gone >= Duration::from_secs(6),
        "removed after only {gone:?}"
    );
    // Both survivors hold every series now (two nodes, replication 2), exactly.
    let took = trio.wait_copies(&survivors, &survivors, |_| ALL as u64);
    trio.wait("hints for the removed polaris delivered", || {
        for id in survivors {
            let pending = status(trio.node(id))?["hints_pending"].clone();
            if pending != serde_json::json!({}) {
                return Err(format!("{id} still holds hints {pending}"));
            }
        }
        Ok(())
    });
    eprintln!("every series back on 2 live nodes {took:?} after the removal");

    // polaris comes back: a new join, and the ring of three again.
    trio.node_mut("polaris").restart();
    trio.wait_members(&ABC, &ABC);
    trio.wait_copies(&ABC, &ABC, |_| ALL as u64);
}
