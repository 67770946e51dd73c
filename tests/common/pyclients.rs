//! The python InfluxDB clients (`influxdb` 1.x and `influxdb-client` 2.x from PyPI), as real
//! users run them against a node: a script given on the command line, its exit status and
//! output. `make pyclients` makes the virtualenv CI uses.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The python with the `influxdb` and `influxdb-client` packages: `$MINITRUE_PYTHON`, or
/// the virtualenv `make pyclients` makes.
pub fn python() -> PathBuf {
    let path = std::env::var_os("MINITRUE_PYTHON").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("target/pyclients/bin/python"),
        PathBuf::from,
    );
    assert!(
        path.exists(),
        "{} missing: run `make pyclients` (a virtualenv with the InfluxDB python clients)",
        path.display()
    );
    path
}

/// Runs `script` with `args`; whether it exited 0, and its stdout and stderr.
pub fn run_python(script: &str, args: &[String]) -> (bool, String) {
    let out = Command::new(python())
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("run python");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}
