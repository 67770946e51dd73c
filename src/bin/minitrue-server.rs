//! `minitrue-server`: parses flags and runs one node (see `minitrue::server`).

use clap::Parser;
use minitrue::config::ServerArgs;
use minitrue::log::{set_format, set_level, Level};

fn main() {
    if let Err(e) = run() {
        minitrue::log_error!("{e}");
        std::process::exit(1);
    }
}

fn run() -> minitrue::Result<()> {
    let args = ServerArgs::parse();
    let level = Level::parse(&args.log_level).ok_or_else(|| {
        minitrue::Error::invalid("log_level", "must be error, warn, info or debug")
    })?;
    set_level(level);
    set_format(args.log_format);
    let config = args.into_config()?;
    minitrue::server::run(config)
}
