//! `minitrue-broker`: the MQTT broker that ships with MiniTrue, for machines that have none.
//! It parses flags and hands them to [`minitrue::broker`]; everything else lives there.

use std::net::SocketAddr;
use std::process::exit;

use clap::Parser;
use minitrue::broker::{self, BrokerConfig};

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
    let config = BrokerConfig {
        listen: flags.listen,
        max_connections: flags.max_connections,
        max_queued_bytes: flags.max_queued_mb.saturating_mul(1 << 20),
    };
    broker::serve(&config)
}
