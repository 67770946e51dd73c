//! The MQTT receive loop: subscribes to the `--topic` layouts' filters (by default
//! `iot/sensors/+/#`, see [`crate::ingest::topic`]) and turns each message into stored
//! points, acknowledging a message only once its points are durable.
//!
//! Delivery contract (at-least-once in, exactly-once stored):
//! 1. The client connects as `minitrue-{node_id}` with a **persistent session**
//!    (`clean_session = false`) and subscribes at QoS 1, so the broker keeps QoS 1 messages
//!    for us while the node is down and redelivers unacknowledged ones when we reconnect.
//! 2. Acks are **manual**. Incoming messages are gathered into a batch (at most
//!    [`BATCH_MAX_MESSAGES`], closed after [`BATCH_MAX_AGE`] or when the connection has been
//!    quiet for [`BATCH_IDLE_GAP`]). The batch's valid points go to the store in one
//!    `Engine::write`, which returns once they are fsynced; only then is every message of the
//!    batch acked — valid ones, and invalid ones, which are dropped for good (counted per
//!    reason) so the broker does not redeliver them forever.
//! 3. If the write fails nothing is acked: the loop drops its connection and reconnects after
//!    a backoff, and the broker redelivers. A message redelivered after a crash between the
//!    write and the ack is written again, which is harmless because writes are idempotent
//!    (one value per series and timestamp).
//!
//! Acks travel to rumqttc's event loop through its bounded request channel, and that event
//! loop only runs while this thread polls it: a blocking `ack` could wait forever on the very
//! thread that would drain it. So acks use `try_ack`, and whatever does not fit waits in a
//! local queue that is retried after every poll.
//!
//! Brokers limit how many QoS 1 messages they have unacked at one subscriber (Mosquitto's
//! `max_inflight_messages`, 20 by default). Since acks follow an fsync, that limit bounds
//! throughput on a disk with slow fsync: raise it on the broker (e.g. to 1000) there. On the
//! development machine (fast fsync) one publisher reached about 50 000 readings/s either way.
//!
//! How the broker is reached (URL, TLS, login) is [`crate::mqtt_link`]'s, shared with the
//! publisher.

use crate::ingest::payload::{parse_mqtt_message, PayloadError};
use crate::ingest::route::store_share;
use crate::ingest::stats::{BrokerState, Source};
use crate::ingest::timestamp::rule_error;
use crate::mqtt_link::BrokerAddr;
use crate::node::Node;
use crate::storage::Point;
use crate::throttle::{Backoff, Throttle};
use crate::{log_debug, log_error, log_info, log_warn};
use crossbeam_channel::{Receiver, RecvTimeoutError as ShutdownTimeout, TryRecvError};
use rumqttc::{
    Client, ClientError, Connection, Event, MqttOptions, Outgoing, Packet, Publish, QoS,
    SubscribeFilter,
};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// A batch is written once it holds this many messages.
pub const BATCH_MAX_MESSAGES: usize = 500;

/// ... or once its payloads add up to this many bytes (a message may be up to
/// [`MAX_PAYLOAD_BYTES`](super::payload::MAX_PAYLOAD_BYTES), so a count alone would let a
/// batch grow to hundreds of MiB) ...
pub const BATCH_MAX_BYTES: usize = 8 * 1024 * 1024;

/// ... or once its first message is this old ...
pub const BATCH_MAX_AGE: Duration = Duration::from_millis(5);

/// ... or once no message has arrived for this long (the broker has sent all it will send
/// before it sees acks, so waiting longer only adds latency).
pub const BATCH_IDLE_GAP: Duration = Duration::from_millis(1);

/// Longest a poll blocks while idle, so shutdown is noticed promptly.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// Longest one connection attempt (TCP connect + CONNECT/CONNACK) may take. A poll that times
/// out abandons the attempt, so this is longer than [`POLL_INTERVAL`] to let a distant broker
/// answer, and short enough to keep shutdown under a second.
pub const CONNECT_ATTEMPT_TIMEOUT: Duration = Duration::from_millis(500);

/// MQTT keep-alive: how soon the broker notices a dead node (1.5 × this).
pub const KEEP_ALIVE: Duration = Duration::from_secs(10);

/// Reconnect backoff: starts here and doubles on each failure ...
pub const BACKOFF_MIN: Duration = Duration::from_millis(100);

/// ... up to this.
pub const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Capacity of rumqttc's request channel (acks, subscribe, disconnect). Several batches of
/// acks fit, so the local overflow queue is rarely used.
pub const REQUEST_CHANNEL_CAPACITY: usize = 4 * BATCH_MAX_MESSAGES;

/// Largest incoming MQTT packet accepted: the protocol maximum. A smaller limit would make an
/// oversized message a connection error, redelivered and failing forever; at this limit it
/// is parsed and rejected as `oversize` like any other bad payload.
pub const MAX_INCOMING_PACKET: usize = 268_435_455;

/// At most one line about rejected payloads is logged per this interval.
pub const REJECT_LOG_INTERVAL: Duration = Duration::from_secs(1);

/// How long shutdown waits for the DISCONNECT (and the acks queued before it) to be sent.
const DISCONNECT_GRACE: Duration = Duration::from_millis(300);

/// The MQTT thread's body: runs until `shutdown_rx` disconnects.
pub fn mqtt_receive(node: &Node, shutdown_rx: &Receiver<()>) {
    let (addr, options) = match client_options(node) {
        Ok(found) => found,
        Err(message) => {
            log_error!("{message}; MQTT ingestion is off, the node still answers queries");
            node.ingest.set_broker(BrokerState::Disconnected(message));
            let _ = shutdown_rx.recv();
            return;
        }
    };
    if node.config.broker_security.password_in_clear(&addr) {
        log_warn!(
            "mqtt: the broker password crosses the network unencrypted to {addr}: use mqtts://"
        );
    }
    let mut receiver = MqttReceiver::new(node, addr, options);
    receiver.run(shutdown_rx);
}

/// The broker's address and the client options for it (delivery contract, TLS,
/// credentials), or why there are none.
fn client_options(node: &Node) -> std::result::Result<(BrokerAddr, MqttOptions), String> {
    let addr = node.config.broker_addr.clone();
    let mut options = MqttOptions::new(
        format!("minitrue-{}", node.config.node_id),
        addr.host.clone(),
        addr.port,
    );
    options
        .set_clean_session(false)
        .set_manual_acks(true)
        .set_keep_alive(KEEP_ALIVE)
        .set_max_packet_size(MAX_INCOMING_PACKET, 64 * 1024)
        .set_request_channel_capacity(REQUEST_CHANNEL_CAPACITY);
    node.config
        .broker_security
        .apply(&addr, &mut options)
        .map_err(|e| format!("broker {addr}: {e}"))?;
    Ok((addr, options))
}

/// Why the poll loop of one client stopped.
enum LoopExit {
    Shutdown,
    /// The store refused a write: start a fresh connection so the broker redelivers.
    Reconnect,
}

struct MqttReceiver<'a> {
    node: &'a Node,
    addr: BrokerAddr,
    options: MqttOptions,
    backoff: Backoff,
    /// Messages received and not yet written, oldest first, with the arrival of the first.
    batch: Vec<Publish>,
    batch_started: Option<Instant>,
    /// Acks that did not fit into rumqttc's request channel, retried after every poll.
    unsent_acks: VecDeque<Publish>,
    reject_log: Throttle,
}

impl<'a> MqttReceiver<'a> {
    fn new(node: &'a Node, addr: BrokerAddr, options: MqttOptions) -> MqttReceiver<'a> {
        MqttReceiver {
            node,
            addr,
            options,
            backoff: Backoff::new(BACKOFF_MIN, BACKOFF_MAX),
            batch: Vec::with_capacity(BATCH_MAX_MESSAGES),
            batch_started: None,
            unsent_acks: VecDeque::new(),
            reject_log: Throttle::new(REJECT_LOG_INTERVAL),
        }
    }

    fn run(&mut self, shutdown_rx: &Receiver<()>) {
        loop {
            self.node.ingest.set_broker(BrokerState::Connecting);
            let (client, mut connection) =
                Client::new(self.options.clone(), REQUEST_CHANNEL_CAPACITY);
            match self.poll_loop(&client, &mut connection, shutdown_rx) {
                LoopExit::Shutdown => return,
                LoopExit::Reconnect => {
                    // Unacked messages come back on the new connection; the queued acks
                    // belong to the old one.
                    self.unsent_acks.clear();
                    drop(connection);
                    if !self.sleep_backoff(shutdown_rx) {
                        return;
                    }
                }
            }
        }
    }

    /// Polls one client until shutdown or a storage failure. rumqttc reconnects by itself
    /// when polled after a connection error.
    fn poll_loop(
        &mut self,
        client: &Client,
        connection: &mut Connection,
        shutdown_rx: &Receiver<()>,
    ) -> LoopExit {
        let mut connected = false;
        loop {
            if shutdown_requested(shutdown_rx) {
                self.shut_down(client, connection, connected);
                return LoopExit::Shutdown;
            }
            let timeout = self.poll_timeout(connected);
            let mut quiet = false;
            match connection.recv_timeout(timeout) {
                Ok(Ok(Event::Incoming(Packet::ConnAck(ack)))) => {
                    connected = true;
                    self.backoff.reset();
                    self.node.ingest.set_broker(BrokerState::Connected);
                    log_info!(
                        "mqtt: connected to {} (session {})",
                        self.addr,
                        if ack.session_present {
                            "resumed"
                        } else {
                            "new"
                        }
                    );
                    if !ack.session_present {
                        // The broker forgot us: old acks mean nothing.
                        self.unsent_acks.clear();
                    }
                    // Also on a resumed session: `--topic` may have changed since it was
                    // made, and subscribing again to the same filter is harmless.
                    self.subscribe(client);
                }
                Ok(Ok(Event::Incoming(Packet::Publish(publish)))) => {
                    if self.batch.is_empty() {
                        self.batch_started = Some(Instant::now());
                    }
                    self.batch.push(publish);
                }
                Ok(Ok(Event::Incoming(Packet::SubAck(ack)))) => {
                    log_info!(
                        "mqtt: subscribed to {}: {:?}",
                        self.filters().join(", "),
                        ack.return_codes
                    );
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    connected = false;
                    // The batch's points are kept (durably) but not acked: the acks would
                    // name packet ids of a dead connection, and the broker redelivers.
                    if !self.batch.is_empty() && !self.write_batch(client, false) {
                        return LoopExit::Reconnect;
                    }
                    let message = format!("{}: {e}", self.addr);
                    log_warn!("mqtt: connection to {message}; retrying");
                    self.node
                        .ingest
                        .set_broker(BrokerState::Disconnected(message));
                    if !self.sleep_backoff(shutdown_rx) {
                        return LoopExit::Shutdown;
                    }
                }
                Err(rumqttc::RecvTimeoutError::Timeout) if !connected => {
                    let message = format!(
                        "{}: no CONNACK within {} ms",
                        self.addr,
                        CONNECT_ATTEMPT_TIMEOUT.as_millis()
                    );
                    log_warn!("mqtt: connection to {message}; retrying");
                    self.node
                        .ingest
                        .set_broker(BrokerState::Disconnected(message));
                    if !self.sleep_backoff(shutdown_rx) {
                        return LoopExit::Shutdown;
                    }
                }
                Err(rumqttc::RecvTimeoutError::Timeout) => quiet = true,
                Err(rumqttc::RecvTimeoutError::Disconnected) => {
                    // Cannot happen while `client` lives; start over rather than spin.
                    return LoopExit::Reconnect;
                }
            }
            if self.batch_due(quiet) && !self.write_batch(client, true) {
                return LoopExit::Reconnect;
            }
            self.send_acks(client);
        }
    }

    fn poll_timeout(&self, connected: bool) -> Duration {
        if !connected {
            return CONNECT_ATTEMPT_TIMEOUT;
        }
        match self.batch_started {
            Some(started) if !self.batch.is_empty() => BATCH_IDLE_GAP
                .min(BATCH_MAX_AGE.saturating_sub(started.elapsed()))
                .max(Duration::from_micros(100)),
            _ => POLL_INTERVAL,
        }
    }

    fn batch_due(&self, quiet: bool) -> bool {
        if self.batch.is_empty() {
            return false;
        }
        quiet
            || self.batch.len() >= BATCH_MAX_MESSAGES
            || self.batch.iter().map(|p| p.payload.len()).sum::<usize>() >= BATCH_MAX_BYTES
            || self
                .batch_started
                .is_some_and(|started| started.elapsed() >= BATCH_MAX_AGE)
    }

    /// Parses the batch, writes its valid points durably, and then (if `ack`) queues an ack
    /// for every message of it. Returns false if the store refused the write; the batch is
    /// then dropped unacked.
    fn write_batch(&mut self, client: &Client, ack: bool) -> bool {
        let batch = std::mem::take(&mut self.batch);
        self.batch_started = None;
        let mut points: Vec<Point> = Vec::with_capacity(batch.len());
        let received = crate::ingest::payload::now();
        let max_future = self.node.config.max_future;
        let layouts = &self.node.config.topic_layouts;
        let mut rejected = 0;
        for publish in &batch {
            let checked = parse_mqtt_message(layouts, &publish.topic, &publish.payload, received)
                .and_then(|readings| {
                    // One reading out of bounds rejects its whole message, as any bad part.
                    match readings
                        .iter()
                        .find_map(|p| rule_error(p.timestamp.0, received, max_future))
                    {
                        None => Ok(readings),
                        Some(why) => Err(PayloadError::too_far_ahead(why)),
                    }
                });
            match checked {
                Ok(readings) => points.extend(readings),
                Err(e) => {
                    rejected += 1;
                    self.reject(&publish.topic, &e);
                }
            }
        }
        if let Err(e) = store_share(self.node, &points) {
            log_error!(
                "mqtt: storing {} readings failed, they stay unacknowledged for redelivery: {e}",
                points.len()
            );
            self.node
                .ingest
                .set_broker(BrokerState::Disconnected(format!("storage: {e}")));
            self.batch = Vec::with_capacity(BATCH_MAX_MESSAGES);
            return false;
        }
        log_debug!(
            "mqtt: stored {} readings from {} messages ({rejected} rejected)",
            points.len(),
            batch.len(),
        );
        // Durable from here on: acknowledging cannot lose anything.
        if ack {
            self.unsent_acks.extend(batch);
            self.send_acks(client);
        }
        self.node.hub.publish(&points);
        self.node
            .ingest
            .count_accepted(Source::Mqtt, points.len() as u64);
        true
    }

    /// The subscription filters of the node's `--topic` layouts.
    fn filters(&self) -> Vec<String> {
        self.node.config.topic_layouts.filters()
    }

    /// Subscribes (QoS 1) to every layout's filter, without blocking.
    fn subscribe(&self, client: &Client) {
        let filters = self.filters();
        let requests = filters
            .iter()
            .map(|filter| SubscribeFilter::new(filter.clone(), QoS::AtLeastOnce));
        if let Err(e) = client.try_subscribe_many(requests) {
            log_error!("mqtt: cannot subscribe to {}: {e}", filters.join(", "));
        }
    }

    fn reject(&mut self, topic: &str, e: &PayloadError) {
        self.node.ingest.count_rejected(e.reason);
        if let Some(suppressed) = self.reject_log.admit(Instant::now()) {
            log_warn!(
                "mqtt: dropped a message on {topic:?}: {} ({}); {suppressed} more rejects not logged since the last line",
                e.detail,
                e.reason
            );
        }
    }

    /// Hands queued acks to rumqttc without blocking; what does not fit stays queued.
    fn send_acks(&mut self, client: &Client) {
        while let Some(publish) = self.unsent_acks.front() {
            match client.try_ack(publish) {
                Ok(()) => {
                    self.unsent_acks.pop_front();
                }
                Err(ClientError::TryRequest(_) | ClientError::Request(_)) => break,
            }
        }
    }

    /// Sleeps for the next backoff delay; returns false if shutdown came first.
    fn sleep_backoff(&mut self, shutdown_rx: &Receiver<()>) -> bool {
        match shutdown_rx.recv_timeout(self.backoff.next_delay()) {
            Err(ShutdownTimeout::Timeout) => true,
            Ok(()) | Err(ShutdownTimeout::Disconnected) => false,
        }
    }

    /// Writes and acks what was received, then sends DISCONNECT (best effort, bounded).
    fn shut_down(&mut self, client: &Client, connection: &mut Connection, connected: bool) {
        if !self.batch.is_empty() {
            self.write_batch(client, connected);
        }
        if !connected {
            return;
        }
        self.send_acks(client);
        if client.try_disconnect().is_err() {
            return;
        }
        let deadline = Instant::now() + DISCONNECT_GRACE;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match connection.recv_timeout(left.min(POLL_INTERVAL)) {
                Ok(Ok(Event::Outgoing(Outgoing::Disconnect))) | Ok(Err(_)) | Err(_) => break,
                Ok(Ok(_)) => self.send_acks(client),
            }
        }
        log_info!("mqtt: disconnected from {}", self.addr);
    }
}

fn shutdown_requested(shutdown_rx: &Receiver<()>) -> bool {
    !matches!(shutdown_rx.try_recv(), Err(TryRecvError::Empty))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnects_back_off_from_100_ms_to_5_s() {
        let mut b = Backoff::new(BACKOFF_MIN, BACKOFF_MAX);
        let delays: Vec<u64> = (0..9).map(|_| b.next_delay().as_millis() as u64).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
    }
}
