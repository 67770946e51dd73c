//! `minitrue-broker`: the MQTT broker that ships with MiniTrue, for machines that have none.
//! It parses flags and hands them to [`minitrue::broker`]; everything else lives there.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::exit;

use clap::Parser;
use minitrue::broker::{self, BrokerConfig, BrokerTls};
use minitrue::mqtt_link::{read_password_file, Credentials};
use minitrue::Error;

/// An MQTT 3.1.1 broker (embedded rumqttd) that keeps QoS 1 messages for offline
/// persistent sessions, in memory.
#[derive(Parser, Debug)]
#[command(name = "minitrue-broker", version)]
struct Flags {
    /// Address to accept MQTT connections on.
    #[arg(long, default_value = broker::DEFAULT_LISTEN)]
    listen: SocketAddr,

    /// MiB of messages kept per subscription filter for subscribers that are offline or
    /// behind, shared by that filter's subscribers; the oldest go first. A full log takes
    /// 1.4-3.7 times this in memory (large to small messages).
    #[arg(long, default_value_t = broker::DEFAULT_MAX_QUEUED_BYTES >> 20)]
    max_queued_mb: usize,

    /// The one user name clients must log in with (on every listener); needs
    /// --password-file. Omitted: anonymous clients are accepted.
    #[arg(long, requires = "password_file")]
    username: Option<String>,

    /// File holding that user's password (a trailing newline is dropped).
    #[arg(long, requires = "username")]
    password_file: Option<PathBuf>,

    /// Address of a second listener that speaks MQTT over TLS (e.g. 0.0.0.0:8883); needs
    /// --tls-cert and --tls-key.
    #[arg(long, requires_all = ["tls_cert", "tls_key"])]
    tls_listen: Option<SocketAddr>,

    /// PEM certificate chain of the TLS listener, its own certificate first.
    #[arg(long, requires = "tls_listen")]
    tls_cert: Option<PathBuf>,

    /// PEM private key (PKCS#8, RSA or SEC1 EC) of --tls-cert.
    #[arg(long, requires = "tls_listen")]
    tls_key: Option<PathBuf>,

    /// Concurrent client connections before new ones are refused.
    #[arg(long, default_value_t = broker::DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,

    /// Log filter for standard error: off, error, warn, info, debug, trace, or directives
    /// such as "rumqttd=debug". A client's clean disconnect is logged at debug.
    #[arg(long, alias = "log_level", default_value = "warn")]
    log_level: String,

    /// Log lines: text (`TIME LEVEL [THREAD] MESSAGE`) or json (one object per line: ts,
    /// level, thread, msg), as minitrue-server's `--log_format`.
    #[arg(long, alias = "log_format", value_enum, default_value = "text")]
    log_format: minitrue::log::Format,
}

fn main() {
    if let Err(e) = run() {
        minitrue::log_error!("{e}");
        exit(1);
    }
}

fn run() -> minitrue::Result<()> {
    let flags = Flags::parse();
    broker::init_logging(&flags.log_level, flags.log_format)?;
    let credentials = match (flags.username, flags.password_file) {
        (Some(username), Some(file)) if !username.is_empty() => Some(Credentials {
            username,
            password: read_password_file(&file, "password-file")?,
        }),
        (None, None) => None,
        _ => {
            return Err(Error::invalid(
                "username",
                "must be non-empty, with --password-file",
            ))
        }
    };
    let tls = match (flags.tls_listen, flags.tls_cert, flags.tls_key) {
        (Some(listen), Some(cert), Some(key)) => Some(BrokerTls { listen, cert, key }),
        (None, None, None) => None,
        _ => {
            return Err(Error::invalid(
                "tls-listen",
                "--tls-listen, --tls-cert and --tls-key go together",
            ))
        }
    };
    let config = BrokerConfig {
        listen: flags.listen,
        max_connections: flags.max_connections,
        max_queued_bytes: flags.max_queued_mb.saturating_mul(1 << 20),
        credentials,
        tls,
    };
    broker::serve(&config)
}
