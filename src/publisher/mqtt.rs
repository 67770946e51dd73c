//! The publishing MQTT client: a rumqttc sync [`Client`] for the caller and its
//! [`Connection`] driven on one named thread, `mqtt_events`, which counts the broker's
//! PubAcks and reconnects with backoff.
//!
//! Delivery is QoS 1 with at most `inflight` unacknowledged publishes on the wire; beyond
//! that the request channel fills and [`MqttPublisher::publish`] waits (backpressure, no
//! dropping). The session is persistent (`clean_session = false`) because rumqttc discards
//! its unacknowledged and queued publishes when it reconnects into a *new* session; with a
//! resumed session it resends them. At the end [`MqttPublisher::finish`] waits until every
//! publish is acknowledged (or a timeout), then disconnects cleanly.
//!
//! The broker URL, TLS (`mqtts://`) and the login are [`crate::mqtt_link`]'s, shared with the
//! node's receive loop.

use crate::error::{Error, Result};
use crate::mqtt_link::{BrokerAddr, ClientSecurity};
use crate::{log_info, log_warn};
use rumqttc::{Client, Connection, ConnectionError, Event, MqttOptions, Outgoing, Packet, QoS};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use super::pacing::Until;
use super::reading::Reading;
use super::report::ReportThrottle;

/// MQTT keep-alive interval.
const KEEP_ALIVE: Duration = Duration::from_secs(30);

/// First and longest pause between reconnect attempts.
const RECONNECT_MIN: Duration = Duration::from_millis(100);
const RECONNECT_MAX: Duration = Duration::from_secs(5);

/// Pause before retrying a publish while the request channel is full.
const BACKPRESSURE_PAUSE: Duration = Duration::from_micros(500);

/// How long a clean disconnect may take once everything is acknowledged.
const DISCONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// How to reach the broker.
#[derive(Clone, Debug)]
pub struct MqttSettings {
    pub broker: BrokerAddr,
    /// TLS trust and credentials (`--broker_ca`, `--broker_username`,
    /// `--broker_password_file`).
    pub security: ClientSecurity,
    pub client_id: String,
    /// Most unacknowledged publishes on the wire.
    pub inflight: u16,
    /// Topic prefix; a reading goes to `{topic_prefix}/{metric_name}`.
    pub topic_prefix: String,
}

/// Counts shared between the publishing caller and the event thread.
#[derive(Debug, Default)]
struct Progress {
    acked: Mutex<u64>,
    acked_changed: Condvar,
    connected: AtomicBool,
    closing: AtomicBool,
}

/// What was published and what the broker acknowledged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivery {
    pub sent: u64,
    pub acked: u64,
}

impl Delivery {
    /// Whether every publish was acknowledged.
    pub fn complete(&self) -> bool {
        self.acked >= self.sent
    }
}

/// A connected (or connecting) publisher. See the module doc.
pub struct MqttPublisher {
    client: Client,
    progress: Arc<Progress>,
    sent: u64,
    topic_prefix: String,
    broker: BrokerAddr,
    events_done_rx: crossbeam_channel::Receiver<()>,
}

impl MqttPublisher {
    /// Starts the connection's event thread; connecting happens there, with retries, so a
    /// broker that comes up late is fine.
    pub fn start(settings: &MqttSettings) -> Result<MqttPublisher> {
        let mut options = MqttOptions::new(
            settings.client_id.clone(),
            settings.broker.host.clone(),
            settings.broker.port,
        );
        options
            .set_keep_alive(KEEP_ALIVE)
            .set_clean_session(false)
            .set_inflight(settings.inflight.max(1));
        settings.security.apply(&settings.broker, &mut options)?;
        if settings.security.password_in_clear(&settings.broker) {
            log_warn!(
                "the broker password crosses the network unencrypted to {}: use mqtts://",
                settings.broker
            );
        }
        let capacity = (settings.inflight as usize).max(64);
        let (client, connection) = Client::new(options, capacity);
        let progress = Arc::new(Progress::default());
        let (done_tx, events_done_rx) = crossbeam_channel::bounded(1);
        let thread_progress = Arc::clone(&progress);
        let broker = settings.broker.clone();
        std::thread::Builder::new()
            .name("mqtt_events".into())
            .spawn(move || {
                mqtt_events(connection, &thread_progress, &broker);
                let _ = done_tx.send(());
            })
            .map_err(|e| Error::io("mqtt_events thread", e))?;
        Ok(MqttPublisher {
            client,
            progress,
            sent: 0,
            topic_prefix: settings.topic_prefix.clone(),
            broker: settings.broker.clone(),
            events_done_rx,
        })
    }

    /// Queues `reading` for QoS 1 delivery, waiting while the in-flight window and the
    /// request queue are full. Returns false (not queued) if the run ends while waiting.
    pub fn publish(&mut self, reading: &Reading, until: &Until<'_>) -> bool {
        let topic = reading.topic(&self.topic_prefix);
        let payload = reading.to_json();
        loop {
            match self.client.try_publish(
                topic.as_str(),
                QoS::AtLeastOnce,
                false,
                payload.as_bytes(),
            ) {
                Ok(()) => {
                    self.sent += 1;
                    return true;
                }
                // The event thread ended (it never does while this client lives, but a
                // wait on it would then never end) or the caller wants to stop.
                Err(_) if until.reached() || !self.events_done_rx.is_empty() => return false,
                Err(_) => std::thread::sleep(BACKPRESSURE_PAUSE),
            }
        }
    }

    /// Publishes so far, and acknowledgements so far.
    pub fn delivery(&self) -> Delivery {
        Delivery {
            sent: self.sent,
            acked: *lock(&self.progress.acked),
        }
    }

    /// Waits up to `ack_timeout` for every publish to be acknowledged, then disconnects.
    pub fn finish(self, ack_timeout: Duration) -> Delivery {
        let deadline = Instant::now() + ack_timeout;
        let mut acked = lock(&self.progress.acked);
        while *acked < self.sent {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            acked = self
                .progress
                .acked_changed
                .wait_timeout(acked, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        let delivery = Delivery {
            sent: self.sent,
            acked: *acked,
        };
        drop(acked);
        if !delivery.complete() {
            log_warn!(
                "broker {}: {} of {} publishes unacknowledged after {:?}",
                self.broker,
                delivery.sent - delivery.acked,
                delivery.sent,
                ack_timeout
            );
        }
        self.progress.closing.store(true, Ordering::Relaxed);
        if self.progress.connected.load(Ordering::Relaxed) {
            let _ = self.client.try_disconnect();
        }
        // Dropping the client closes the request channel, which also ends the event loop.
        drop(self.client);
        let _ = self.events_done_rx.recv_timeout(DISCONNECT_TIMEOUT);
        delivery
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The event thread: drives the connection, counts PubAcks, reconnects with backoff, and
/// ends after the clean disconnect, when the client is dropped, or on an error once
/// closing.
fn mqtt_events(mut connection: Connection, progress: &Progress, broker: &BrokerAddr) {
    let mut backoff = RECONNECT_MIN;
    let mut trouble = ReportThrottle::default();
    let mut attempts: u64 = 0;
    loop {
        match connection.recv() {
            Ok(Ok(Event::Incoming(Packet::PubAck(_)))) => {
                *lock(&progress.acked) += 1;
                progress.acked_changed.notify_all();
            }
            Ok(Ok(Event::Incoming(Packet::ConnAck(ack)))) => {
                progress.connected.store(true, Ordering::Relaxed);
                backoff = RECONNECT_MIN;
                attempts = 0;
                log_info!(
                    "connected to broker {broker} (session resumed: {})",
                    ack.session_present
                );
            }
            Ok(Ok(Event::Outgoing(Outgoing::Disconnect))) => return,
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                progress.connected.store(false, Ordering::Relaxed);
                if progress.closing.load(Ordering::Relaxed) {
                    return;
                }
                attempts += 1;
                trouble.warn(|| {
                    format!(
                        "broker {broker}: {}; reconnecting in {backoff:?} (attempt {attempts})",
                        describe(&e)
                    )
                });
                if !Until::stopped(&progress.closing).sleep(backoff) {
                    return;
                }
                backoff = (backoff * 2).min(RECONNECT_MAX);
            }
            // Every client handle is gone: nothing more will be published.
            Err(_) => return,
        }
    }
}

fn describe(e: &ConnectionError) -> String {
    match e {
        ConnectionError::Io(io) => format!("connection failed: {io}"),
        other => other.to_string(),
    }
}
