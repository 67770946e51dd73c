//! The MQTT broker that ships with MiniTrue, so a fresh machine has one: rumqttd embedded as a
//! library and configured in code, no config file.
//!
//! How rumqttd keeps messages, which decides every limit below:
//!
//! - The router keeps one in-memory commit log per subscription filter (`iot/sensors/#`), not a
//!   queue per client. A publish is appended to the log of every filter that matches its topic,
//!   and each subscriber holds a cursor into the logs of its filters.
//! - A persistent session (MQTT 3.1.1 `clean_session = false`) keeps its cursors while the
//!   client is away; on reconnect with the same client id delivery resumes at the cursor, so
//!   QoS 1 messages published meanwhile arrive (`tests/broker.rs` proves it, against Mosquitto
//!   too). The session is kept in memory only: a broker restart forgets it.
//! - A log is a ring of segments: when it is full the oldest segment is dropped, and a cursor
//!   that pointed into it jumps to the oldest message still kept. So how much an offline
//!   subscriber can miss is bounded by bytes per filter ([`BrokerConfig::max_queued_bytes`]),
//!   shared by every subscriber of that filter, not by a message count per session as in
//!   Mosquitto's `max_queued_messages`, and past it the oldest are lost where Mosquitto drops
//!   the newest.
//! - A log is not trimmed when its subscribers acknowledge: under steady traffic every filter's
//!   log fills to `max_queued_bytes` and stays there, and it lives as long as the broker,
//!   subscribed or not. Memory is therefore distinct filters ever subscribed ×
//!   (`max_queued_bytes` + one segment) × the overhead measured at
//!   [`DEFAULT_MAX_QUEUED_BYTES`].
//! - A publish that matches no filter is acknowledged and dropped, as in any broker. (rumqttd
//!   0.20's `dynamic_filters`, meant to keep a log per such topic, never takes effect: its
//!   topic match returns an empty list, not none. It is off here so that, should a later
//!   rumqttd honour it, we get no log per sensor topic; instead, publishing to a topic nobody
//!   subscribes to would then disconnect the publisher, which `tests/broker.rs` would catch.)
//! - Towards each client at most 100 QoS 1 messages are unacknowledged at once (a rumqttd
//!   constant), which bounds the delivery rate to one subscriber by its round trip.
//!
//! Who may connect: anyone, unless [`BrokerConfig::credentials`] names one user and its
//! password (`--username`, `--password-file`); then every listener refuses a CONNECT without
//! them (rumqttd compares the password in constant time). An optional second listener speaks
//! MQTT over TLS ([`BrokerConfig::tls`]: `--tls-listen`, `--tls-cert`, `--tls-key`) through
//! rumqttd's rustls 0.22 on ring; clients are not asked for certificates. Both listeners
//! share one router, so a message published on either reaches subscribers on both.

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::time::Duration;

use rumqttd::{ConnectionSettings, RouterConfig, ServerSettings, TlsConfig};
use tracing_subscriber::filter::LevelFilter;

use crate::mqtt_link::Credentials;
use crate::{log, Error, Result};

/// Where the broker listens unless told otherwise: loopback, the MQTT port.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:1883";

/// Concurrent client connections: a fleet of sensors plus MiniTrue's own nodes. Each needs a
/// file descriptor, so `ulimit -n` must be above this for it to be reached.
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

/// Bytes kept per subscription filter: 64 MiB, counted as rumqttd counts a message (topic,
/// payload and 4 bytes). For 1,000 sensors each sending a 64-byte reading a second on topics
/// like `iot/sensors/s17/reading` (about 90 bytes counted), some 12 minutes of backlog. A full log costs
/// more than it counts: measured here about 3.7× for such messages (some 250 MB), 1.4× for
/// 1 KB payloads.
pub const DEFAULT_MAX_QUEUED_BYTES: usize = 64 << 20;

/// Size of one segment of a filter's log. Retention drops a whole segment at a time, so this is
/// how much is forgotten at once (an eighth of the default retention).
pub const SEGMENT_BYTES: usize = 8 << 20;

/// rumqttd refuses segments below 1 KiB, so this is the least `max_queued_bytes` there is.
pub const MIN_QUEUED_BYTES: usize = 1024;

/// Largest publish payload accepted (64 KiB): far above a sensor reading, small enough that a
/// misbehaving client cannot make the broker buffer megabytes per packet.
pub const MAX_PAYLOAD_BYTES: usize = 64 << 10;

/// Packets the broker reads from one connection before handing them to the router.
/// rumqttd calls it `max_inflight_count`, but it limits batching, not QoS 1 inflight.
const CONNECTION_BATCH_PACKETS: usize = 500;

/// QoS 0 messages read from a log for one subscriber in one router pass (rumqttd's default).
const MAX_OUTGOING_PACKETS: u64 = 200;

/// Time a new TCP connection has to send its MQTT CONNECT before it is dropped.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Pause after accepting a connection, which spreads out a fleet reconnecting at once
/// (1,000 connections a second).
const NEXT_CONNECTION_DELAY: Duration = Duration::from_millis(1);

/// What an operator chooses about the broker; the rest are the constants above.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerConfig {
    /// Address of the MQTT 3.1.1 listener.
    pub listen: SocketAddr,
    /// Concurrent client connections before new ones are refused.
    pub max_connections: usize,
    /// Bytes of messages kept per subscription filter for subscribers that are offline or
    /// behind; beyond it the oldest are dropped.
    pub max_queued_bytes: usize,
    /// The one user every client must log in as; `None`: anonymous clients are let in.
    pub credentials: Option<Credentials>,
    /// A second listener, MQTT over TLS; `None`: plain TCP only.
    pub tls: Option<BrokerTls>,
}

/// The TLS listener's address and identity (PEM files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerTls {
    pub listen: SocketAddr,
    /// Certificate chain, the broker's own certificate first.
    pub cert: PathBuf,
    /// Private key of that certificate (PKCS#8, RSA or SEC1 EC).
    pub key: PathBuf,
}

impl Default for BrokerConfig {
    fn default() -> BrokerConfig {
        BrokerConfig {
            listen: DEFAULT_LISTEN
                .parse()
                .expect("DEFAULT_LISTEN is a socket address"),
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_queued_bytes: DEFAULT_MAX_QUEUED_BYTES,
            credentials: None,
            tls: None,
        }
    }
}

impl BrokerConfig {
    /// Checks the limits rumqttd would otherwise panic on or silently misuse.
    pub fn validate(&self) -> Result<()> {
        if self.max_connections == 0 {
            return Err(Error::invalid("max connections", "must be at least 1"));
        }
        if self.max_queued_bytes < MIN_QUEUED_BYTES {
            return Err(Error::invalid(
                "max queued bytes",
                format!(
                    "{} is below the least rumqttd accepts, {MIN_QUEUED_BYTES}",
                    self.max_queued_bytes
                ),
            ));
        }
        if let Some(tls) = &self.tls {
            if tls.listen == self.listen {
                return Err(Error::invalid(
                    "tls-listen",
                    format!(
                        "{} is also --listen: give the TLS listener its own port",
                        tls.listen
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Segment size and count of each filter's log. The active segment counts against the
    /// count and the oldest is dropped as a new one starts, so `count - 1` full segments are
    /// always kept: `max_queued_bytes` is guaranteed, and memory peaks one segment above it.
    pub fn segments(&self) -> (usize, usize) {
        let size = SEGMENT_BYTES.min(self.max_queued_bytes);
        let count = self.max_queued_bytes.div_ceil(size) + 1;
        (size, count)
    }

    /// The rumqttd configuration: router limits, one MQTT 3.1.1 server on plain TCP and, if
    /// configured, one over TLS, nothing else (no v5, websocket, console, metrics or
    /// cluster).
    pub fn to_rumqttd(&self) -> rumqttd::Config {
        let (max_segment_size, max_segment_count) = self.segments();
        let router = RouterConfig {
            max_connections: self.max_connections,
            max_outgoing_packet_count: MAX_OUTGOING_PACKETS,
            max_segment_size,
            max_segment_count,
            custom_segment: None,
            initialized_filters: None,
            ..RouterConfig::default()
        };
        let auth = self.credentials.as_ref().map(|c| {
            [(c.username.clone(), c.password.expose().to_string())]
                .into_iter()
                .collect()
        });
        let server = |name: &str, listen: SocketAddr, tls: Option<TlsConfig>| ServerSettings {
            name: name.to_string(),
            listen,
            tls,
            next_connection_delay_ms: NEXT_CONNECTION_DELAY.as_millis() as u64,
            connections: ConnectionSettings {
                connection_timeout_ms: CONNECT_TIMEOUT.as_millis() as u16,
                max_payload_size: MAX_PAYLOAD_BYTES,
                max_inflight_count: CONNECTION_BATCH_PACKETS,
                auth: auth.clone(),
                external_auth: None,
                dynamic_filters: false,
            },
        };
        let mut servers = vec![("v4".to_string(), server("v4", self.listen, None))];
        if let Some(tls) = &self.tls {
            let rustls = TlsConfig::Rustls {
                capath: None,
                certpath: tls.cert.display().to_string(),
                keypath: tls.key.display().to_string(),
            };
            servers.push((
                "v4-tls".to_string(),
                server("v4-tls", tls.listen, Some(rustls)),
            ));
        }
        rumqttd::Config {
            router,
            v4: Some(servers.into_iter().collect()),
            ..rumqttd::Config::default()
        }
    }
}

/// Runs the broker on the calling thread until its server ends, which only happens on error:
/// rumqttd has no shutdown, so the process hosting it ends to stop it.
pub fn serve(config: &BrokerConfig) -> Result<()> {
    config.validate()?;
    // rumqttd binds on its own threads and only logs a failure there; binding here first
    // turns the usual one (address in use) into an error a user sees.
    TcpListener::bind(config.listen).map_err(|e| {
        Error::invalid("listen", format!("cannot listen on {}: {e}", config.listen))
    })?;
    if let Some(tls) = &config.tls {
        TcpListener::bind(tls.listen).map_err(|e| {
            Error::invalid(
                "tls-listen",
                format!("cannot listen on {}: {e}", tls.listen),
            )
        })?;
        // rumqttd reads the PEM files at every TLS handshake and only logs what is wrong
        // with them; loading them once here reports a bad file at start instead.
        crate::http::stream::tls_config(&tls.cert, &tls.key)?;
    }
    if config.credentials.is_some() && !config.listen.ip().is_loopback() {
        crate::log_warn!(
            "clients send the password unencrypted to the plain listener {}: bind it to \
             loopback and give remote clients --tls-listen",
            config.listen
        );
    }
    let mut broker = rumqttd::Broker::new(config.to_rumqttd());
    match broker.start() {
        Ok(()) => Err(Error::Closed(format!(
            "mqtt server on {} (see its log, --log-level info)",
            config.listen
        ))),
        Err(e) => Err(Error::Closed(format!(
            "mqtt server on {} ({e})",
            config.listen
        ))),
    }
}

/// Sends rumqttd's log (and ours) to standard error in MiniTrue's line format
/// ([`crate::log`], text or JSON), filtered by `level`: a level such as `warn` or a
/// `tracing` directive list such as `rumqttd=debug`.
///
/// rumqttd 0.20 logs an ERROR for every client that disconnects cleanly: `router-drop
/// error=Recv(Disconnected)` (the router drops the link on DISCONNECT, and the link then
/// finds its channel closed), sometimes followed by `no-connection id N is already gone`
/// (the packet and the closed socket each end the connection). Those are lowered to debug
/// (`broker_level`); any other ERROR stays one.
pub fn init_logging(level: &str, format: log::Format) -> Result<()> {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .map_err(|e| Error::invalid("log level", format!("{level:?}: {e}")))?;
    // The filter decides what reaches the layer; our own level only has to let through the
    // most verbose level it passes, so that a lowered line is still filtered like others.
    log::set_level(match filter.max_level_hint() {
        Some(LevelFilter::TRACE | LevelFilter::DEBUG) => log::Level::Debug,
        Some(LevelFilter::INFO) => log::Level::Info,
        Some(LevelFilter::WARN) => log::Level::Warn,
        _ => log::Level::Error,
    });
    log::set_format(format);
    tracing_subscriber::registry()
        .with(filter)
        .with(LogLines)
        .try_init()
        .map_err(|e| Error::invalid("log level", format!("cannot install logger: {e}")))
}

/// A `tracing` layer writing each event as one [`crate::log`] line: `target: message
/// field=value ...`.
struct LogLines;

impl<S: tracing_core::Subscriber> tracing_subscriber::Layer<S> for LogLines {
    fn on_event(
        &self,
        event: &tracing_core::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let mut text = EventText::default();
        event.record(&mut text);
        let meta = event.metadata();
        let level = broker_level(*meta.level(), &text.message, &text.fields);
        log::write(
            level,
            format_args!("{}: {}{}", meta.target(), text.message, text.fields),
        );
    }
}

/// An event's message and its other fields as ` name=value` pairs.
#[derive(Default)]
struct EventText {
    message: String,
    fields: String,
}

impl tracing_core::field::Visit for EventText {
    fn record_debug(&mut self, field: &tracing_core::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.message = format!("{value:?}");
        } else {
            self.fields
                .push_str(&format!(" {}={value:?}", field.name()));
        }
    }
}

/// The level a rumqttd event is logged at: its own, except the ERRORs rumqttd raises for a
/// clean client disconnect, which are debug. `fields` is the ` name=value` text of the
/// event's other fields.
fn broker_level(level: tracing_core::Level, message: &str, fields: &str) -> log::Level {
    let clean_disconnect = (message == "router-drop" && fields == " error=Recv(Disconnected)")
        || (message.starts_with("no-connection id ") && message.ends_with(" is already gone"));
    match level {
        _ if clean_disconnect => log::Level::Debug,
        tracing_core::Level::ERROR => log::Level::Error,
        tracing_core::Level::WARN => log::Level::Warn,
        tracing_core::Level::INFO => log::Level::Info,
        _ => log::Level::Debug,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_config_is_valid() {
        assert!(BrokerConfig::default().validate().is_ok());
    }

    #[test]
    fn queued_bytes_below_rumqttd_minimum_is_rejected() {
        let config = BrokerConfig {
            max_queued_bytes: MIN_QUEUED_BYTES - 1,
            ..BrokerConfig::default()
        };
        assert!(config.validate().is_err());
    }

    #[test]
    fn full_segments_kept_cover_max_queued_bytes() {
        for queued in [
            MIN_QUEUED_BYTES,
            5 << 20,
            SEGMENT_BYTES,
            SEGMENT_BYTES + 1,
            64 << 20,
        ] {
            let config = BrokerConfig {
                max_queued_bytes: queued,
                ..BrokerConfig::default()
            };
            let (size, count) = config.segments();
            assert!(count >= 2, "{queued}: one segment forgets all at rollover");
            assert!((count - 1) * size >= queued, "{queued}: {count} x {size}");
            assert!(
                (count - 2) * size < queued,
                "{queued}: one segment too many"
            );
        }
    }

    #[test]
    fn clean_disconnect_errors_are_debug_and_other_errors_stay() {
        use tracing_core::Level as T;
        for (level, message, fields, want) in [
            (
                T::ERROR,
                "router-drop",
                " error=Recv(Disconnected)",
                log::Level::Debug,
            ),
            (
                T::ERROR,
                "no-connection id 7 is already gone",
                "",
                log::Level::Debug,
            ),
            (
                T::ERROR,
                "router-drop",
                " error=Send(SendError { .. })",
                log::Level::Error,
            ),
            (T::ERROR, "disconnected", " error=Io(x)", log::Level::Error),
            (T::INFO, "accept", "", log::Level::Info),
            (T::TRACE, "x", "", log::Level::Debug),
        ] {
            assert_eq!(
                broker_level(level, message, fields),
                want,
                "{message}{fields}"
            );
        }
    }

    #[test]
    fn rumqttd_config_has_one_v4_server_and_no_extra_logs() {
        let config = BrokerConfig::default().to_rumqttd();
        let servers = config.v4.expect("a v4 server");
        assert_eq!(servers.len(), 1);
        assert!(!servers["v4"].connections.dynamic_filters);
        assert!(config.v5.is_none() && config.ws.is_none() && config.console.is_none());
        assert_eq!(config.router.initialized_filters, None);
        assert_eq!(config.router.max_segment_size, SEGMENT_BYTES);
        assert_eq!(config.router.max_segment_count, 9);
        assert!(servers["v4"].tls.is_none() && servers["v4"].connections.auth.is_none());
    }

    #[test]
    fn credentials_guard_every_listener_and_tls_adds_one() {
        let path = std::env::temp_dir().join(format!("minitrue-broker-pw-{}", std::process::id()));
        std::fs::write(&path, "pw\n").expect("write password file");
        let password = crate::mqtt_link::read_password_file(&path, "password-file").unwrap();
        let _ = std::fs::remove_file(&path);
        let config = BrokerConfig {
            credentials: Some(Credentials {
                username: "sensors".into(),
                password,
            }),
            tls: Some(BrokerTls {
                listen: "127.0.0.1:8883".parse().unwrap(),
                cert: "cert.pem".into(),
                key: "key.pem".into(),
            }),
            ..BrokerConfig::default()
        };
        let servers = config.to_rumqttd().v4.expect("v4 servers");
        assert_eq!(servers.len(), 2);
        for server in servers.values() {
            let auth = server
                .connections
                .auth
                .as_ref()
                .expect("auth on every listener");
            assert_eq!(auth.get("sensors").map(String::as_str), Some("pw"));
        }
        assert!(servers["v4"].tls.is_none());
        assert!(matches!(
            servers["v4-tls"].tls,
            Some(TlsConfig::Rustls { capath: None, .. })
        ));
        assert_eq!(servers["v4-tls"].listen.port(), 8883);
    }

    #[test]
    fn tls_listener_on_the_plain_address_is_refused() {
        let config = BrokerConfig {
            tls: Some(BrokerTls {
                listen: DEFAULT_LISTEN.parse().unwrap(),
                cert: "c".into(),
                key: "k".into(),
            }),
            ..BrokerConfig::default()
        };
        assert!(config.validate().is_err());
    }
}
