//! Command-line flags of `minitrue-server` (clap derive) turned into a validated [`Config`],
//! including the local slot auto-assignment: started without `--node_id`, a node takes the
//! first of polaris (8080/9000), sirius (8081/9001), vega (8082/9002) whose ports are free,
//! so three identical commands make a cluster.

use crate::cluster::secret::ClusterSecret;
use crate::error::{Error, Result};
use crate::http::cors::OriginPolicy;
use crate::ingest::topic::{TopicLayouts, DEFAULT_TOPIC};
use crate::mqtt_link::{parse_broker_url, BrokerAddr, BrokerFlags, ClientSecurity};
use clap::{Parser, ValueEnum};
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::time::Duration;

/// The original's three local slots: node id, HTTP port, gossip (TCP) port.
pub const LOCAL_SLOTS: [(&str, u16, u16); 3] = [
    ("polaris", 8080, 9000),
    ("sirius", 8081, 9001),
    ("vega", 8082, 9002),
];

/// Default of `--tombstone_grace_hours`: ten days, as Cassandra's `gc_grace_seconds`.
pub const DEFAULT_TOMBSTONE_GRACE_HOURS: f64 = 240.0;

/// Longest accepted `--tombstone_grace_hours`: about 114 years, so the grace in
/// milliseconds always fits the `i64` timestamps it is compared with.
pub const MAX_TOMBSTONE_GRACE_HOURS: f64 = 1_000_000.0;

/// Longest accepted `--dead_member_expiry`: ten years (the removal clock adds it to an
/// `Instant`, which must not overflow).
pub const MAX_DEAD_MEMBER_EXPIRY: Duration = Duration::from_secs(10 * 365 * 86_400);

/// Parses a duration flag: seconds as a number (`90`, `0.5`), or a number followed by one
/// of the units `s`, `m`, `h`, `d` (`90s`, `30m`, `72h`, `3d`). It must be positive and
/// finite; the error says what was wrong, for the caller to name its flag.
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let text = text.trim();
    let (number, unit_secs) = match text.char_indices().last() {
        Some((i, 's')) => (&text[..i], 1.0),
        Some((i, 'm')) => (&text[..i], 60.0),
        Some((i, 'h')) => (&text[..i], 3600.0),
        Some((i, 'd')) => (&text[..i], 86_400.0),
        Some(_) => (text, 1.0),
        None => return Err("empty: give seconds, or a number with s, m, h or d".into()),
    };
    let value: f64 = number.trim().parse().map_err(|_| {
        format!("{text:?} is not a duration: give seconds, or a number with s, m, h or d (72h)")
    })?;
    let secs = value * unit_secs;
    if !secs.is_finite() || secs <= 0.0 {
        return Err(format!("{text:?} must be a positive, finite duration"));
    }
    Duration::try_from_secs_f64(secs).map_err(|_| format!("{text:?} is too long"))
}

/// What a node does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Subscribes to MQTT and stores readings; answers no queries.
    Ingestion,
    /// Answers queries; does not subscribe to MQTT.
    Query,
    /// Both (the normal mode).
    All,
}

impl Mode {
    pub fn ingests(self) -> bool {
        matches!(self, Mode::Ingestion | Mode::All)
    }
    pub fn queries(self) -> bool {
        matches!(self, Mode::Query | Mode::All)
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Ingestion => "ingestion",
            Mode::Query => "query",
            Mode::All => "all",
        }
    }
}

/// `minitrue-server`: one node of a MiniTrue cluster.
#[derive(Parser, Debug, Clone)]
#[command(name = "minitrue-server", version, about, long_about = None)]
pub struct ServerArgs {
    /// ingestion | query | all
    #[arg(long, value_enum, default_value = "all")]
    pub mode: Mode,
    /// Node name. Omitted: the first free local slot (polaris, sirius, vega).
    #[arg(long = "node_id")]
    pub node_id: Option<String>,
    /// HTTP port (API, websocket, dashboard).
    #[arg(long)]
    pub port: Option<u16>,
    /// Gossip (cluster TCP) port.
    #[arg(long = "tcp_port")]
    pub tcp_port: Option<u16>,
    #[command(flatten)]
    pub mqtt: BrokerFlags,
    /// MQTT topic layout readings arrive on; repeatable or comma-separated. `{metric}` and
    /// `{device_id}` are placeholders, each a whole level, filling in what a payload lacks.
    /// A topic that matches no layout is rejected (counted as `topic`).
    #[arg(long = "topic", value_delimiter = ',', default_value = DEFAULT_TOPIC)]
    pub topic: Vec<String>,
    /// Data directory; the node keeps its files in DATA_DIR/NODE_ID.
    #[arg(long = "data_dir", default_value = "data")]
    pub data_dir: PathBuf,
    /// Comma-separated peer gossip addresses (host:port). Omitted on a local run: the known
    /// local ports 9000-9002.
    #[arg(long, value_delimiter = ',')]
    pub seeds: Vec<String>,
    /// Address to listen on for HTTP and gossip.
    #[arg(long, default_value = "0.0.0.0")]
    pub bind: IpAddr,
    /// Host other nodes and browsers use to reach this node (default: the bind address, or
    /// 127.0.0.1 when binding to all interfaces).
    #[arg(long = "advertise_host")]
    pub advertise_host: Option<String>,
    /// error | warn | info | debug
    #[arg(long = "log_level", default_value = "info")]
    pub log_level: String,
    /// Log lines on stderr: text (`TIME LEVEL [THREAD] MESSAGE`) or json (one object per
    /// line: ts, level, thread, msg).
    #[arg(long = "log_format", value_enum, default_value = "text")]
    pub log_format: crate::log::Format,
    /// Drop data older than this many hours (0: keep forever).
    #[arg(long = "retention_hours", default_value_t = 0)]
    pub retention_hours: u64,
    /// Refuse to start when a write-ahead log record in the middle of a file is corrupt.
    /// Without it the node starts with the good records and copies the file to
    /// DATA_DIR/NODE_ID/quarantine/ (a torn tail after a crash is truncated either way).
    #[arg(long = "strict_wal")]
    pub strict_wal: bool,
    /// How many nodes hold each series (primary + replicas).
    #[arg(long, default_value_t = 2)]
    pub replication: usize,
    /// HTTP worker threads.
    #[arg(long = "http_workers", default_value_t = 8)]
    pub http_workers: usize,
    /// Most open HTTP connections; above it the longest-waiting idle one is closed. 0: half
    /// of the file descriptors the process may open, between 64 and 10000.
    #[arg(long = "max_connections", default_value_t = 0)]
    pub max_connections: usize,
    /// Seconds a reading's timestamp may lie ahead of this node's clock (MQTT, /write).
    #[arg(long = "max_future_s", default_value_t = 172_800)]
    pub max_future_s: u64,
    /// Milliseconds without news of a member before it is suspected.
    #[arg(long = "suspect_timeout_ms", default_value_t = 3000)]
    pub suspect_timeout_ms: u64,
    /// Milliseconds without news of a member before it is declared dead.
    #[arg(long = "dead_timeout_ms", default_value_t = 10000)]
    pub dead_timeout_ms: u64,
    /// Milliseconds between gossip rounds (heartbeat and table exchange).
    #[arg(long = "gossip_interval_ms", default_value_t = 500)]
    pub gossip_interval_ms: u64,
    /// TOML file of accepted tokens (`[[token]]` name, role, sha256); omitted: no
    /// credentials asked (warned about on a non-loopback address). Reloaded on SIGHUP.
    #[arg(long = "auth_file")]
    pub auth_file: Option<PathBuf>,
    /// Comma-separated origins (`scheme://host[:port]`) whose web pages may call this node;
    /// the node's own dashboard and the cluster members' are always allowed.
    #[arg(long = "cors_origins", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
    /// File holding the cluster secret (at least 16 bytes; surrounding whitespace ignored).
    /// Every gossip frame and node-to-node request is then signed with it, and unsigned
    /// ones are refused. Omitted: peers are not authenticated (a warning at start-up).
    #[arg(long = "cluster_secret_file")]
    pub cluster_secret_file: Option<PathBuf>,
    /// Hours a delete is remembered (its tombstone kept and passed on by repair), as
    /// Cassandra's gc_grace. A node down longer than this sets its old data aside at start
    /// (see `--keep_stale_data`). Fractions are accepted (0.5: 30 minutes).
    #[arg(long = "tombstone_grace_hours", default_value_t = DEFAULT_TOMBSTONE_GRACE_HOURS)]
    pub tombstone_grace_hours: f64,
    /// Start with the data of a node that was down longer than `--tombstone_grace_hours`
    /// instead of setting it aside. Dangerous: deletes made while it was down come back.
    #[arg(long = "keep_stale_data")]
    pub keep_stale_data: bool,
    /// How long a member stays dead in the membership table before every node removes it
    /// (and the ring gives its share to the others): a number of seconds, or a number with
    /// the unit s, m, h or d (`90s`, `30m`, `72h`, `3d`).
    #[arg(long = "dead_member_expiry", default_value = "72h")]
    pub dead_member_expiry: String,
    /// PEM certificate chain for HTTPS on the API and `/ws`; needs `--tls_key`.
    #[arg(long = "tls_cert")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key matching `--tls_cert`; needs `--tls_cert`.
    #[arg(long = "tls_key")]
    pub tls_key: Option<PathBuf>,
    /// PEM file of the CA certificates peers' HTTPS certificates must chain to. With
    /// `--tls_cert`, node-to-node calls then use HTTPS too, so TLS nodes form a cluster:
    /// every node of it needs all three flags. Required with `--tls_cert` and `--seeds`.
    #[arg(long = "tls_ca")]
    pub tls_ca: Option<PathBuf>,
}

impl Config {
    /// `host:port` of this node's HTTP API as peers should dial it.
    pub fn advertised_http(&self) -> String {
        format!("{}:{}", self.advertise_host, self.http_addr.port())
    }

    /// `host:port` of this node's gossip listener as peers should dial it.
    pub fn advertised_gossip(&self) -> String {
        format!("{}:{}", self.advertise_host, self.gossip_addr.port())
    }
}

/// A validated configuration: every field set.
#[derive(Clone, Debug)]
pub struct Config {
    pub mode: Mode,
    pub node_id: String,
    pub http_addr: SocketAddr,
    pub gossip_addr: SocketAddr,
    /// Host part of the addresses this node advertises to peers.
    pub advertise_host: String,
    pub broker: String,
    /// `--broker`, parsed.
    pub broker_addr: BrokerAddr,
    /// `--broker_ca`, `--broker_username` and `--broker_password_file`, read.
    pub broker_security: ClientSecurity,
    /// The `--topic` layouts, in flag order.
    pub topic_layouts: TopicLayouts,
    pub data_dir: PathBuf,
    pub seeds: Vec<String>,
    pub log_level: String,
    pub retention: Option<Duration>,
    /// Refuse to open a store whose WAL has a corrupt record mid-file (`--strict_wal`).
    pub strict_wal: bool,
    pub replication: usize,
    pub http_workers: usize,
    /// Most open HTTP connections (resolved from 0 at start, see `--max_connections`).
    pub max_connections: usize,
    /// How far ahead of the clock an ingested timestamp may be (`--max_future_s`).
    pub max_future: Duration,
    /// Silence after which a member is suspected.
    pub suspect_timeout: Duration,
    /// Silence after which a member is declared dead (longer than `suspect_timeout`).
    pub dead_timeout: Duration,
    /// Time between gossip rounds.
    pub gossip_interval: Duration,
    /// The token file; `None`: every caller may do everything.
    pub auth_file: Option<PathBuf>,
    /// Which other origins' web pages may call this node.
    pub cors: OriginPolicy,
    /// The secret read from `--cluster_secret_file`.
    pub cluster_secret: Option<ClusterSecret>,
    /// Certificate and key (PEM files) to serve HTTPS with; `None`: plain HTTP.
    pub tls: Option<TlsFiles>,
    /// How long a delete is remembered (`--tombstone_grace_hours`).
    pub tombstone_grace: Duration,
    /// Start with stale data anyway (`--keep_stale_data`).
    pub keep_stale_data: bool,
    /// How long a dead member stays in the table (`--dead_member_expiry`).
    pub dead_member_expiry: Duration,
}

/// The PEM files of this node's HTTPS identity.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The CAs peers' certificates must chain to (`--tls_ca`): with it, calls to peers
    /// use HTTPS. `None` only on a node with no seeds.
    pub peer_ca: Option<PathBuf>,
}

impl ServerArgs {
    /// Validates the flags and picks a local slot when no node id was given.
    pub fn into_config(self) -> Result<Config> {
        let (node_id, port, tcp_port) = match (self.node_id, self.port, self.tcp_port) {
            (Some(id), Some(port), Some(tcp)) => (id, port, tcp),
            (Some(id), port, tcp) => {
                let slot = LOCAL_SLOTS.iter().find(|s| s.0 == id);
                match (port.or(slot.map(|s| s.1)), tcp.or(slot.map(|s| s.2))) {
                    (Some(p), Some(t)) => (id, p, t),
                    _ => {
                        return Err(Error::invalid(
                            "port",
                            format!("node {id:?} is not a local slot: give --port and --tcp_port"),
                        ))
                    }
                }
            }
            (None, None, None) => {
                let slot = LOCAL_SLOTS
                    .iter()
                    .find(|s| port_free(self.bind, s.1) && port_free(self.bind, s.2))
                    .ok_or_else(|| {
                        Error::invalid(
                            "node_id",
                            "all local slots (8080-8082, 9000-9002) are taken: give --node_id, --port and --tcp_port",
                        )
                    })?;
                (slot.0.to_string(), slot.1, slot.2)
            }
            (None, _, _) => {
                return Err(Error::invalid(
                    "node_id",
                    "--port/--tcp_port given without --node_id",
                ))
            }
        };
        if node_id.is_empty()
            || !node_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(Error::invalid(
                "node_id",
                "must be letters, digits, '_' or '-'",
            ));
        }
        if !(1..=5).contains(&self.replication) {
            return Err(Error::invalid("replication", "must be between 1 and 5"));
        }
        if self.http_workers == 0 {
            return Err(Error::invalid("http_workers", "must be at least 1"));
        }
        if self.gossip_interval_ms == 0 || self.suspect_timeout_ms == 0 {
            return Err(Error::invalid(
                "gossip_interval_ms",
                "gossip interval and suspect timeout must be at least 1 ms",
            ));
        }
        if self.dead_timeout_ms <= self.suspect_timeout_ms {
            return Err(Error::invalid(
                "dead_timeout_ms",
                "must be longer than --suspect_timeout_ms",
            ));
        }
        let grace = self.tombstone_grace_hours;
        if !grace.is_finite() || grace <= 0.0 || grace > MAX_TOMBSTONE_GRACE_HOURS {
            return Err(Error::invalid(
                "tombstone_grace_hours",
                format!(
                    "{grace} is not a grace: give a positive number of hours up to \
                     {MAX_TOMBSTONE_GRACE_HOURS} (default {DEFAULT_TOMBSTONE_GRACE_HOURS})"
                ),
            ));
        }
        let dead_member_expiry = parse_duration(&self.dead_member_expiry)
            .and_then(|d| {
                if d <= MAX_DEAD_MEMBER_EXPIRY {
                    Ok(d)
                } else {
                    Err(format!("{d:?} is longer than ten years"))
                }
            })
            .map_err(|why| Error::invalid("dead_member_expiry", why))?;
        let tls = match (self.tls_cert, self.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert,
                key,
                peer_ca: self.tls_ca,
            }),
            (None, None) if self.tls_ca.is_some() => {
                return Err(Error::invalid(
                    "tls_ca",
                    "needs --tls_cert and --tls_key: peers are called over HTTPS only \
                     by a node that serves HTTPS itself",
                ));
            }
            (None, None) => None,
            (Some(_), None) => {
                return Err(Error::invalid(
                    "tls_key",
                    "required when --tls_cert is given",
                ));
            }
            (None, Some(_)) => {
                return Err(Error::invalid(
                    "tls_cert",
                    "required when --tls_key is given",
                ));
            }
        };
        if tls.as_ref().is_some_and(|t| t.peer_ca.is_none()) && !self.seeds.is_empty() {
            // Peers of a TLS node serve HTTPS too, and this node must know whom to trust.
            return Err(Error::invalid(
                "tls_ca",
                "required when --tls_cert is combined with --seeds: the CA file that \
                 peers' certificates chain to (every node of a TLS cluster needs it)",
            ));
        }
        let cors = OriginPolicy::new(&self.cors_origins)
            .map_err(|reason| Error::invalid("cors_origins", reason))?;
        let cluster_secret = self
            .cluster_secret_file
            .as_deref()
            .map(ClusterSecret::from_file)
            .transpose()?;
        if self.auth_file.is_some() && cluster_secret.is_none() {
            return Err(Error::invalid(
                "auth_file",
                "needs --cluster_secret_file too: peers prove themselves with it on the \
                 calls they make to each other (one node alone needs it as well)",
            ));
        }
        let broker_security = self.mqtt.security()?;
        // Parsed once, here, like every other flag: a typo stops the start naming --broker,
        // and flags that contradict the URL (mqtts:// without --broker_ca, a CA for
        // tcp://) are refused too.
        let broker_addr = parse_broker_url(&self.mqtt.broker)
            .map_err(|e| Error::invalid("broker", format!("{:?}: {e}", self.mqtt.broker)))?;
        broker_security.check(&broker_addr)?;
        let topic_layouts =
            TopicLayouts::parse(&self.topic).map_err(|reason| Error::invalid("topic", reason))?;
        let data_dir = self.data_dir.join(&node_id);
        let advertise_host = self.advertise_host.unwrap_or_else(|| {
            if self.bind.is_unspecified() {
                "127.0.0.1".to_string()
            } else {
                self.bind.to_string()
            }
        });
        Ok(Config {
            mode: self.mode,
            node_id,
            http_addr: SocketAddr::new(self.bind, port),
            gossip_addr: SocketAddr::new(self.bind, tcp_port),
            advertise_host,
            broker: self.mqtt.broker,
            broker_addr,
            broker_security,
            topic_layouts,
            data_dir,
            seeds: self.seeds,
            log_level: self.log_level,
            retention: (self.retention_hours > 0)
                .then(|| Duration::from_secs(self.retention_hours * 3600)),
            strict_wal: self.strict_wal,
            replication: self.replication,
            http_workers: self.http_workers,
            max_connections: match self.max_connections {
                0 => crate::http::listener::default_max_connections(),
                n => n,
            },
            max_future: Duration::from_secs(self.max_future_s),
            suspect_timeout: Duration::from_millis(self.suspect_timeout_ms),
            dead_timeout: Duration::from_millis(self.dead_timeout_ms),
            gossip_interval: Duration::from_millis(self.gossip_interval_ms),
            auth_file: self.auth_file,
            cors,
            cluster_secret,
            tls,
            tombstone_grace: Duration::from_secs_f64(grace * 3600.0),
            keep_stale_data: self.keep_stale_data,
            dead_member_expiry,
        })
    }
}

fn port_free(ip: IpAddr, port: u16) -> bool {
    TcpListener::bind(SocketAddr::new(ip, port)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> ServerArgs {
        let mut all = vec!["minitrue-server"];
        all.extend_from_slice(extra);
        ServerArgs::try_parse_from(all).unwrap()
    }

    #[test]
    fn original_flag_names_parse() {
        let a = args(&[
            "--mode=all",
            "--node_id=node_a",
            "--port=8090",
            "--tcp_port=10090",
            "--seeds=localhost:9000,localhost:9001",
        ]);
        let c = a.into_config().unwrap();
        assert_eq!(c.node_id, "node_a");
        assert_eq!(c.http_addr.port(), 8090);
        assert_eq!(c.gossip_addr.port(), 10090);
        assert_eq!(c.seeds, vec!["localhost:9000", "localhost:9001"]);
        assert_eq!(c.broker, "tcp://localhost:1883");
        assert!(c.data_dir.ends_with("node_a"));
    }

    #[test]
    fn tls_needs_both_files_and_a_peer_ca_in_a_cluster() {
        let field = |extra: &[&str]| match args(extra).into_config() {
            Err(Error::InvalidInput { field, .. }) => field,
            other => panic!("expected a refusal, got {other:?}"),
        };
        assert_eq!(field(&["--tls_cert=c.pem"]), "tls_key");
        assert_eq!(field(&["--tls_key=k.pem"]), "tls_cert");
        assert_eq!(field(&["--tls_ca=ca.pem"]), "tls_ca");
        assert_eq!(
            field(&[
                "--tls_cert=c.pem",
                "--tls_key=k.pem",
                "--seeds=localhost:9000"
            ]),
            "tls_ca"
        );
        let c = args(&["--tls_cert=c.pem", "--tls_key=k.pem"])
            .into_config()
            .unwrap();
        assert!(c.tls.is_some_and(|t| t.cert.ends_with("c.pem")
            && t.key.ends_with("k.pem")
            && t.peer_ca.is_none()));
        let c = args(&[
            "--tls_cert=c.pem",
            "--tls_key=k.pem",
            "--tls_ca=ca.pem",
            "--seeds=localhost:9000",
        ])
        .into_config()
        .unwrap();
        assert!(c
            .tls
            .is_some_and(|t| t.peer_ca.is_some_and(|ca| ca.ends_with("ca.pem"))));
        assert!(args(&[]).into_config().unwrap().tls.is_none());
    }

    #[test]
    fn broker_flags_that_contradict_the_url_are_refused() {
        let field = |extra: &[&str]| match args(extra).into_config() {
            Err(Error::InvalidInput { field, .. }) => field,
            other => panic!("expected a refusal, got {other:?}"),
        };
        assert_eq!(field(&["--broker=mqtts://broker.local"]), "broker_ca");
        assert_eq!(field(&["--broker_username=u"]), "broker_password_file");
        assert_eq!(
            field(&["--broker_password_file=/nonexistent/pw"]),
            "broker_username"
        );
        assert_eq!(field(&["--broker=ssl://h"]), "broker");
        assert_eq!(field(&["--broker=tcp://h:99999"]), "broker");
    }

    #[test]
    fn gossip_timings_default_and_parse() {
        let c = args(&["--node_id=polaris"]).into_config().unwrap();
        assert_eq!(c.suspect_timeout, Duration::from_millis(3000));
        assert_eq!(c.dead_timeout, Duration::from_millis(10000));
        assert_eq!(c.gossip_interval, Duration::from_millis(500));
        let c = args(&[
            "--node_id=polaris",
            "--suspect_timeout_ms=600",
            "--dead_timeout_ms=1500",
            "--gossip_interval_ms=100",
        ])
        .into_config()
        .unwrap();
        assert_eq!(
            (c.suspect_timeout, c.dead_timeout, c.gossip_interval),
            (
                Duration::from_millis(600),
                Duration::from_millis(1500),
                Duration::from_millis(100)
            )
        );
        let e = args(&["--node_id=polaris", "--dead_timeout_ms=3000"])
            .into_config()
            .unwrap_err();
        assert!(e.to_string().contains("dead_timeout_ms"), "{e}");
    }

    #[test]
    fn cors_origins_are_validated() {
        let c = args(&[
            "--node_id=polaris",
            "--cors_origins=http://localhost:5173,https://grafana.example",
        ])
        .into_config()
        .unwrap();
        assert!(!c.cors.is_empty());
        let e = args(&["--node_id=polaris", "--cors_origins=*"])
            .into_config()
            .unwrap_err();
        assert!(e.to_string().contains("cors_origins"), "{e}");
    }

    #[test]
    fn cluster_secret_file_is_read_and_a_short_one_refused() {
        let dir = std::env::temp_dir().join(format!("minitrue-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good");
        let short = dir.join("short");
        std::fs::write(&good, "0123456789abcdef0123\n").unwrap();
        std::fs::write(&short, "  tiny  \n").unwrap();
        let flag = |p: &std::path::Path| format!("--cluster_secret_file={}", p.display());
        let c = args(&["--node_id=polaris", &flag(&good)])
            .into_config()
            .unwrap();
        assert!(c.cluster_secret.is_some());
        assert!(args(&["--node_id=polaris"])
            .into_config()
            .unwrap()
            .cluster_secret
            .is_none());
        for path in [short, dir.join("missing")] {
            let e = args(&["--node_id=polaris", &flag(&path)])
                .into_config()
                .unwrap_err();
            assert!(e.to_string().contains("cluster_secret_file"), "{e}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn durations_parse_as_seconds_or_with_a_unit() {
        let ok = |text: &str| parse_duration(text).unwrap();
        assert_eq!(ok("90"), Duration::from_secs(90));
        assert_eq!(ok("0.5"), Duration::from_millis(500));
        assert_eq!(ok("90s"), Duration::from_secs(90));
        assert_eq!(ok("30m"), Duration::from_secs(1800));
        assert_eq!(ok("72h"), Duration::from_secs(72 * 3600));
        assert_eq!(ok("3d"), Duration::from_secs(3 * 86_400));
        assert_eq!(ok(" 1.5h "), Duration::from_secs(5400));
        for bad in [
            "", "h", "0", "-5s", "0d", "5x", "5 hours", "nan", "inf", "1e300d",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn grace_and_expiry_default_and_bad_values_are_refused_naming_the_flag() {
        let c = args(&["--node_id=polaris"]).into_config().unwrap();
        assert_eq!(c.tombstone_grace, Duration::from_secs(240 * 3600));
        assert_eq!(c.dead_member_expiry, Duration::from_secs(72 * 3600));
        assert!(!c.keep_stale_data);
        let c = args(&[
            "--node_id=polaris",
            "--tombstone_grace_hours=0.002",
            "--dead_member_expiry=5s",
        ])
        .into_config()
        .unwrap();
        assert_eq!(c.tombstone_grace, Duration::from_millis(7200));
        assert_eq!(c.dead_member_expiry, Duration::from_secs(5));
        let field = |extra: &str| match args(&["--node_id=polaris", extra]).into_config() {
            Err(Error::InvalidInput { field, .. }) => field,
            other => panic!("{extra} was accepted: {other:?}"),
        };
        for bad in ["0", "-1", "NaN", "inf", "1e9"] {
            let flag = format!("--tombstone_grace_hours={bad}");
            assert_eq!(field(&flag), "tombstone_grace_hours", "{flag}");
        }
        assert_eq!(field("--dead_member_expiry=soon"), "dead_member_expiry");
        assert_eq!(field("--dead_member_expiry=0s"), "dead_member_expiry");
        assert_eq!(field("--dead_member_expiry=4000d"), "dead_member_expiry");
    }

    #[test]
    fn topic_layouts_default_repeat_and_split_on_commas() {
        let filters = |extra: &[&str]| args(extra).into_config().unwrap().topic_layouts.filters();
        assert_eq!(filters(&["--node_id=polaris"]), ["iot/sensors/+/#"]);
        assert_eq!(
            filters(&[
                "--node_id=polaris",
                "--topic=iot/{device_id}/{metric},plant/{metric}",
                "--topic=x/{metric}",
            ]),
            ["iot/+/+/#", "plant/+/#", "x/+/#"]
        );
        let e = args(&["--node_id=polaris", "--topic=iot/+/{metric}"])
            .into_config()
            .unwrap_err();
        assert!(e.to_string().contains("topic"), "{e}");
    }

    #[test]
    fn known_slot_name_brings_its_ports() {
        let c = args(&["--node_id=sirius"]).into_config().unwrap();
        assert_eq!((c.http_addr.port(), c.gossip_addr.port()), (8081, 9001));
    }

    #[test]
    fn ports_without_node_id_are_refused() {
        let e = args(&["--port=8090"]).into_config().unwrap_err();
        assert!(e.to_string().contains("node_id"), "{e}");
    }

    #[test]
    fn unknown_node_without_ports_is_refused() {
        assert!(args(&["--node_id=zeta"]).into_config().is_err());
    }
}
