//! Starts one node: opens the store, then spawns one named thread per role inside a
//! `std::thread::scope` and waits for SIGINT/SIGTERM. This is the only place that spawns
//! the long-lived threads.
//!
//! Roles: `http-listen` (accepts connections and reads request heads, see
//! [`crate::http::listener`]), `http-N` (workers that answer complete requests),
//! `ws-broadcast` (live hub fan-out), `mqtt-receive` (ingestion, unless `--mode=query`),
//! `wal-flush` (flush/compaction/retention every second, and the last-alive mark),
//! `hint-handoff` (hints to owners that came back), `repair` (anti-entropy),
//! `gossip-listen` (answers peers' member tables) and `gossip-round` (heartbeat, failure
//! detection and exchanges every `--gossip_interval_ms`; the gossip roles run their
//! short-lived per-connection threads in the same scope). Shutdown: the signal handler drops the only `shutdown_tx`; every loop
//! that selects on `shutdown_rx` ends (the HTTP listen loop and workers too),
//! `gossip-round` first announces the leave to every known peer (within 300 ms), and the
//! engine flushes and fsyncs before `run` returns.

use crate::cluster::gossip::{gossip_listen, gossip_round, seed_addrs};
use crate::cluster::repair::repair_round;
use crate::cluster::secret::unix_now_ms;
use crate::cluster::stale::{self, AliveMark};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::http::http_serve;
use crate::http::listener::HttpListener;
use crate::http::stream::tls_config;
use crate::ingest::mqtt::mqtt_receive;
use crate::ingest::stats::BrokerState;
use crate::node::Node;
use crate::sighup;
use crate::storage::{Engine, EngineConfig};
use crate::{log_error, log_info, log_warn};
use crossbeam_channel::{bounded, select, tick, Receiver};
use std::net::TcpListener;
use std::sync::Mutex;
use std::thread;
use std::time::Duration;

/// How often the `wal-flush` thread asks the engine whether a flush or compaction is due.
pub const MAINTENANCE_TICK: Duration = Duration::from_secs(1);

/// Runs a node until SIGINT/SIGTERM, then shuts it down cleanly.
pub fn run(config: Config) -> Result<()> {
    let (shutdown_tx, shutdown_rx) = bounded::<()>(0);
    let shutdown_tx = Mutex::new(Some(shutdown_tx));
    ctrlc::set_handler(move || {
        // Dropping the sender disconnects every receiver: each role's loop ends.
        shutdown_tx.lock().unwrap_or_else(|p| p.into_inner()).take();
    })
    .map_err(|e| Error::invalid("signal handler", e.to_string()))?;
    serve(config, shutdown_rx)
}

/// Runs a node until `shutdown_rx` disconnects (the testable core of [`run`]).
pub fn serve(config: Config, shutdown_rx: Receiver<()>) -> Result<()> {
    // Before the store opens: data of a node down past the grace must not be served.
    let check = stale::StartCheck {
        dir: &config.data_dir,
        grace: config.tombstone_grace,
        // Explicit seeds only: a lone node on a local slot probes the other slots too.
        has_seeds: !config.seeds.is_empty(),
        keep: config.keep_stale_data,
    };
    let start = stale::check_at_start(check, unix_now_ms())?;
    let engine_config = EngineConfig {
        retention: config.retention,
        strict_wal: config.strict_wal,
        ..EngineConfig::default()
    };
    let (engine, report) = Engine::open(&config.data_dir, engine_config)?;
    log_info!(
        "{}: opened {} with {} series, {} points ({} segments, {} WAL records replayed)",
        config.node_id,
        config.data_dir.display(),
        report.series,
        report.points,
        report.segments,
        report.wal.records
    );
    for (path, offset, bytes) in &report.wal.truncated {
        log_warn!(
            "WAL {}: torn tail truncated at offset {offset} ({bytes} bytes dropped)",
            path.display()
        );
    }
    for (path, offset, reason) in &report.wal.skipped {
        log_warn!(
            "WAL {}: corrupt record skipped at offset {offset}: {reason}",
            path.display()
        );
    }
    for file in &report.quarantined {
        log_error!(
            "quarantined {} (started without it): {}",
            file.file.display(),
            file.reason
        );
    }
    if let Some(e) = &report.quarantine_flush_error {
        log_warn!("flush after quarantining a WAL file failed (retried every flush): {e}");
    }
    let tls = match &config.tls {
        None => None,
        Some(files) => Some(tls_config(&files.cert, &files.key)?),
    };
    let gossip = TcpListener::bind(config.gossip_addr).map_err(|e| {
        Error::invalid(
            "tcp_port",
            format!("cannot listen for gossip on {}: {e}", config.gossip_addr),
        )
    })?;
    let mut node = Node::new(config, engine)?;
    node.stale_data = start.set_aside;
    mark_alive(&node, start.peers_before);
    let http = HttpListener::bind(
        node.config.http_addr,
        tls,
        node.config.http_workers,
        node.config.max_connections,
        node.http.clone(),
    )
    .map_err(|e| {
        Error::invalid(
            "port",
            format!("cannot listen on {}: {e}", node.config.http_addr),
        )
    })?;
    node.hints.load_existing()?;
    warn_if_open(&node);
    log_info!(
        "{} ({}) serving {}://{} , gossip {} , broker {}",
        node.config.node_id,
        node.config.mode.as_str(),
        if node.config.tls.is_some() {
            "https"
        } else {
            "http"
        },
        node.config.http_addr,
        node.config.gossip_addr,
        node.config.broker
    );

    if let Some(ca) = node.config.tls.as_ref().and_then(|t| t.peer_ca.as_ref()) {
        log_info!(
            "{}: peers are called over HTTPS, their certificates checked against {}",
            node.config.node_id,
            ca.display()
        );
    }
    if node.trust.secret().is_some() {
        log_info!(
            "{}: cluster secret set: gossip frames and /internal/* requests are signed and checked",
            node.config.node_id
        );
    } else {
        log_warn!(
            "{}: no --cluster_secret_file: anyone who reaches the gossip port {} can join the \
             cluster, and /internal/* takes unsigned requests",
            node.config.node_id,
            node.config.gossip_addr
        );
    }

    thread::scope(|scope| -> Result<()> {
        let node = &node;
        let shutdown_rx = &shutdown_rx;
        let http = &http;
        let gossip = &gossip;
        spawn_role(scope, "http-listen".into(), move || {
            http.listen(shutdown_rx)
        })?;
        for i in 0..node.config.http_workers {
            spawn_role(scope, format!("http-{i}"), move || {
                http_serve(node, http, shutdown_rx)
            })?;
        }
        spawn_role(scope, "ws-broadcast".into(), move || {
            node.hub.ws_broadcast(shutdown_rx)
        })?;
        if node.config.mode.ingests() {
            spawn_role(scope, "mqtt-receive".into(), move || {
                if wait_for_peers(node, shutdown_rx) {
                    mqtt_receive(node, shutdown_rx)
                }
            })?;
        } else {
            node.ingest.set_broker(BrokerState::Disabled);
        }
        spawn_role(scope, "wal-flush".into(), move || {
            wal_flush(node, shutdown_rx)
        })?;
        spawn_role(scope, "hint-handoff".into(), move || {
            hint_handoff(node, shutdown_rx)
        })?;
        spawn_role(scope, "repair".into(), move || repair(node, shutdown_rx))?;
        spawn_role(scope, "gossip-listen".into(), move || {
            gossip_listen(node, gossip, scope, shutdown_rx)
        })?;
        spawn_role(scope, "gossip-round".into(), move || {
            gossip_round(node, scope, shutdown_rx)
        })?;
        if node.tokens.is_some() {
            if !sighup::install() {
                log_warn!("SIGHUP cannot be caught here: restart the node to reload --auth_file");
            }
            spawn_role(scope, "auth-reload".into(), move || {
                auth_reload(node, shutdown_rx)
            })?;
        }

        // Wait for the signal: `recv` fails once the handler drops the sender.
        let _ = shutdown_rx.recv();
        log_info!("{}: shutting down", node.config.node_id);
        Ok(())
    })?;
    mark_alive(&node, 0);
    node.hints.close()?;
    node.engine.close()?;
    log_info!("{}: stopped cleanly", node.config.node_id);
    Ok(())
}

/// How long a node with peers to find waits for gossip to reach one before it starts
/// ingesting. Until then it would believe it is alone and store every reading, including
/// the backlog the broker redelivers after a restart, as if it owned every series.
pub const JOIN_WAIT: Duration = Duration::from_secs(3);

/// Waits until gossip knows a live peer, `JOIN_WAIT` passes, or there is nobody to look
/// for (no seeds). Returns false if shutdown came first.
fn wait_for_peers(node: &Node, shutdown_rx: &Receiver<()>) -> bool {
    if seed_addrs(&node.config).is_empty() {
        return true;
    }
    let deadline = std::time::Instant::now() + JOIN_WAIT;
    while std::time::Instant::now() < deadline {
        if node.cluster.membership().knows_live_peer() {
            return true;
        }
        select! {
            recv(shutdown_rx) -> _ => return false,
            default(Duration::from_millis(20)) => {}
        }
    }
    log_info!(
        "{}: no peer answered within {JOIN_WAIT:?}; ingesting as a single node until one does",
        node.config.node_id
    );
    true
}

/// How often the `hint-handoff` thread looks for owners that came back.
pub const HANDOFF_TICK: Duration = Duration::from_secs(2);

/// The `hint-handoff` thread: delivers hints to owners that are alive again.
fn hint_handoff(node: &Node, shutdown_rx: &Receiver<()>) {
    let ticker = tick(HANDOFF_TICK);
    loop {
        select! {
            recv(shutdown_rx) -> _ => return,
            recv(ticker) -> _ => {
                node.hints.hand_off(&node.cluster, node.trust.link());
            }
        }
    }
}

/// How often the `repair` thread runs an anti-entropy round.
pub const REPAIR_INTERVAL: Duration = Duration::from_secs(5);

/// The `repair` thread: anti-entropy rounds (see `cluster::repair`).
fn repair(node: &Node, shutdown_rx: &Receiver<()>) {
    let ticker = tick(REPAIR_INTERVAL);
    loop {
        select! {
            recv(shutdown_rx) -> _ => return,
            recv(ticker) -> _ => {
                let report = repair_round(node);
                node.repair.record(&report);
            }
        }
    }
}

/// How often the `auth-reload` thread looks whether SIGHUP arrived.
pub const RELOAD_POLL: Duration = Duration::from_millis(250);

/// The `auth-reload` thread: re-reads `--auth_file` after each SIGHUP; a bad file is
/// logged and the tokens in force stay.
fn auth_reload(node: &Node, shutdown_rx: &Receiver<()>) {
    let Some(tokens) = &node.tokens else {
        return;
    };
    let ticker = tick(RELOAD_POLL);
    loop {
        select! {
            recv(shutdown_rx) -> _ => return,
            recv(ticker) -> _ => {
                if sighup::take() {
                    match tokens.reload() {
                        Ok(count) => log_info!(
                            "SIGHUP: reloaded {} ({count} tokens)",
                            tokens.path().display()
                        ),
                        Err(e) => log_error!("SIGHUP: kept the previous tokens: {e}"),
                    }
                }
            }
        }
    }
}

/// Start-up warnings for a node anyone on the network may write to.
fn warn_if_open(node: &Node) {
    match &node.tokens {
        None if !node.config.http_addr.ip().is_loopback() => log_warn!(
            "auth is off and HTTP listens on {}: anyone who reaches it may write and delete; \
             give --auth_file (see docs/security.md)",
            node.config.http_addr
        ),
        Some(tokens) if tokens.is_empty() => log_warn!(
            "{} lists no tokens: every API request will be refused",
            tokens.path().display()
        ),
        _ => {}
    }
}

/// Spawns one named role thread in `scope`.
fn spawn_role<'scope, F>(
    scope: &'scope thread::Scope<'scope, '_>,
    name: String,
    body: F,
) -> Result<()>
where
    F: FnOnce() + Send + 'scope,
{
    thread::Builder::new()
        .name(name.clone())
        .spawn_scoped(scope, body)
        .map(|_| ())
        .map_err(|e| Error::io(name, e))
}

/// Records now as the last time this node was alive (see [`stale`]), with how many other
/// members its table holds (at least `peers_floor`); a failure is logged (the next mark
/// retries).
fn mark_alive(node: &Node, peers_floor: u64) {
    let mark = AliveMark {
        unix_ms: unix_now_ms(),
        peers: node
            .cluster
            .membership()
            .members()
            .count()
            .saturating_sub(1)
            .try_into()
            .unwrap_or(u64::MAX)
            .max(peers_floor),
    };
    if let Err(e) = stale::write_mark(&node.config.data_dir, mark) {
        log_warn!("cannot record that this node is alive: {e}");
    }
}

/// The `wal-flush` thread: flushes, compacts and applies retention when due, and marks the
/// node alive (see [`stale`]). Also says once when writes start failing (the WAL stopped)
/// and once when they work again.
fn wal_flush(node: &Node, shutdown_rx: &Receiver<()>) {
    let ticker = tick(MAINTENANCE_TICK);
    let mark_ticker = tick(stale::mark_interval(node.config.tombstone_grace));
    let mut failing = false;
    loop {
        select! {
            recv(shutdown_rx) -> _ => return,
            recv(mark_ticker) -> _ => mark_alive(node, 0),
            recv(ticker) -> _ => {
                if let Err(e) = node.engine.maintain() {
                    log_error!("maintenance of {}: {e}", node.config.data_dir.display());
                }
                match (failing, node.engine.write_failure()) {
                    (false, Some(reason)) => {
                        failing = true;
                        log_error!("writes failing, /health answers 503: {reason}");
                    }
                    (true, None) => {
                        failing = false;
                        log_info!("writes work again: the write-ahead log restarted in a new file");
                    }
                    _ => {}
                }
            }
        }
    }
}
