//! `minitrue-publisher`: parses flags and runs one publisher mode (see
//! `minitrue::publisher`). Prints the mode's counts and the summary line on stdout; exits
//! non-zero on an error or if the broker did not acknowledge every publish.

use clap::Parser;
use minitrue::log::{set_format, set_level, Level};
use minitrue::publisher::{self, PublisherArgs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

fn main() {
    match run() {
        Ok(true) => {}
        Ok(false) => std::process::exit(2),
        Err(e) => {
            minitrue::log_error!("{e}");
            std::process::exit(1);
        }
    }
}

/// Returns whether every publish was acknowledged.
fn run() -> minitrue::Result<bool> {
    let args = PublisherArgs::parse();
    let level = Level::parse(&args.log_level).ok_or_else(|| {
        minitrue::Error::invalid("log_level", "must be error, warn, info or debug")
    })?;
    set_level(level);
    set_format(args.log_format);
    let config = args.into_config()?;
    let stop = Arc::new(AtomicBool::new(false));
    let handler_stop = Arc::clone(&stop);
    // First signal: finish cleanly (wait for acks). Second: give up at once.
    ctrlc::set_handler(move || {
        if handler_stop.swap(true, Ordering::Relaxed) {
            std::process::exit(130);
        }
    })
    .map_err(|e| minitrue::Error::invalid("signal handler", e.to_string()))?;
    let summary = publisher::run(config, &stop)?;
    println!("{}", summary.detail);
    println!("{summary}");
    if !summary.delivery.complete() {
        minitrue::log_error!(
            "the broker acknowledged {} of {} publishes",
            summary.delivery.acked,
            summary.delivery.sent
        );
        return Ok(false);
    }
    Ok(true)
}
