//! MQTT credentials and TLS (issue 11) with real processes: `minitrue-broker` with
//! `--username`/`--password-file` and a `--tls-listen` listener, Mosquitto with a TLS listener
//! and a `mosquitto_passwd` file, `minitrue-server` subscribing over `mqtts://` with
//! `--broker_ca` and credentials, `minitrue-publisher` publishing the same way, and
//! `mosquitto_pub --cafile -u -P` as the third-party client. Certificates are made by the test
//! with `openssl` ([`common::certs`]).
//!
//! A test prints why and passes when `openssl`, `mosquitto_pub` or (for the Mosquitto tests)
//! `mosquitto`/`mosquitto_passwd` is missing; CI installs them (`.ci/run`).

mod common;

use common::certs::{have, make_certificates};
use common::{find_mosquitto, free_port, Broker, Server, TempDir};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The user every broker here admits, and its password.
const USER: &str = "sensors";
const PASSWORD: &str = "correct-horse-7731";

/// Metric of the readings published here; each test uses its own device id.
const METRIC: &str = "temperature";

/// How long a reading may take to be stored once the broker accepted it.
const STORE_TIMEOUT: Duration = Duration::from_millis(500);

/// How long a test keeps publishing until its node has subscribed and stores one reading.
const SUBSCRIBE_TIMEOUT: Duration = Duration::from_secs(20);

/// Longest one client or publisher run may take before it is killed.
const RUN_TIMEOUT: Duration = Duration::from_secs(30);

/// Whether every program is installed; if not, says which is missing (the test then passes).
fn have_all(programs: &[&str]) -> bool {
    for program in programs {
        let found = if *program == "mosquitto" {
            find_mosquitto().is_some()
        } else {
            have(program)
        };
        if !found {
            eprintln!("skipped: `{program}` is not installed (apt-get install mosquitto mosquitto-clients openssl)");
            return false;
        }
    }
    true
}

/// Runs `command` to its end, killing it after [`RUN_TIMEOUT`].
fn run_bounded(command: &mut Command) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn client");
    let deadline = Instant::now() + RUN_TIMEOUT;
    while child.try_wait().expect("poll client").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("collect client output")
}

/// A file under `dir` holding `text`, readable by everyone (Mosquitto reads its files as its
/// own user).
fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write test file");
    world_readable(&path);
    path
}

/// A node's data directory under `dir`.
fn data_dir(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::create_dir_all(&path).expect("create data dir");
    path
}

fn world_readable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
        .expect("chmod test file");
}

/// A reading of `device` at a timestamp no other reading here has.
fn reading(device: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let t = 1_100_000_000 + NEXT.fetch_add(1, Ordering::Relaxed);
    format!(r#"{{"device_id":"{device}","metric_name":"{METRIC}","timestamp":{t},"value":21.5}}"#)
}

/// `mosquitto_pub` of one QoS 1 reading of `device` to `port` with `extra` flags
/// (`--cafile`, `-u`, `-P`); returns whether it succeeded, and its stderr.
///
/// It connects to `localhost`, not `127.0.0.1`: libmosquitto sends an IP address as the TLS
/// server name (SNI), against RFC 6066, and rumqttd's rustls 0.22 then refuses the
/// handshake ("Illegal SNI hostname"); a DNS name works with every broker here.
fn mosquitto_pub(port: u16, extra: &[&str], device: &str) -> (bool, String) {
    let out = run_bounded(
        Command::new("mosquitto_pub")
            .args(["-h", "localhost", "-q", "1", "-t"])
            .arg(format!("iot/sensors/{METRIC}"))
            .arg("-p")
            .arg(port.to_string())
            .args(extra)
            .arg("-m")
            .arg(reading(device)),
    );
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Publishes readings of `device` with `mosquitto_pub` until `server` stores one: until then
/// the node may not have subscribed yet (a broker drops what nobody subscribed to) and a new
/// broker listener may not be up. Returns how many the node stored.
fn publish_until_stored(server: &Server, port: u16, extra: &[&str], device: &str) -> u64 {
    let deadline = Instant::now() + SUBSCRIBE_TIMEOUT;
    loop {
        let (ok, stderr) = mosquitto_pub(port, extra, device);
        let waited = Instant::now() + STORE_TIMEOUT;
        while ok && Instant::now() < waited {
            let stored = server.count(device, METRIC);
            if stored > 0 {
                return stored;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(
            Instant::now() < deadline,
            "node {} stored no reading of {device} published to port {port} (last \
             mosquitto_pub ok={ok}: {stderr}); status {}\nnode log:\n{}",
            server.node_id,
            server.status(),
            server.log_text()
        );
    }
}

/// The `mosquitto_pub` flags that log in as [`USER`] with `password`.
fn login(password: &str) -> [&str; 4] {
    ["-u", USER, "-P", password]
}

/// The node flags that log in as [`USER`] with the password in `password_file`.
fn node_login(password_file: &Path) -> [String; 2] {
    [
        format!("--broker_username={USER}"),
        format!("--broker_password_file={}", password_file.display()),
    ]
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// A Mosquitto whose only listener speaks TLS with the certificates in `dir` and admits
/// [`USER`] only (password file made with `mosquitto_passwd -b`).
fn mosquitto_tls(dir: &Path) -> Option<Broker> {
    let passwords = dir.join("mosquitto.passwd");
    let made = run_bounded(
        Command::new("mosquitto_passwd")
            .arg("-c")
            .arg("-b")
            .arg(&passwords)
            .args([USER, PASSWORD]),
    );
    assert!(
        made.status.success(),
        "mosquitto_passwd: {}",
        String::from_utf8_lossy(&made.stderr)
    );
    for file in ["ca.pem", "cert.pem", "key.pem", "mosquitto.passwd"] {
        world_readable(&dir.join(file));
    }
    Broker::start_mosquitto_with(&format!(
        "cafile {ca}\ncertfile {cert}\nkeyfile {key}\nallow_anonymous false\npassword_file {passwords}",
        ca = dir.join("ca.pem").display(),
        cert = dir.join("cert.pem").display(),
        key = dir.join("key.pem").display(),
        passwords = passwords.display(),
    ))
}

/// What the Mosquitto-over-TLS tests share: the broker, a node subscribed to it over
/// `mqtts://` with the test CA and the login, the CA's path and the password file.
struct TlsSetup {
    _broker: Broker,
    server: Server,
    ca: String,
    password_file: PathBuf,
    url: String,
}

/// Certificates in `dir`, [`mosquitto_tls`] and a node `node_id` that has stored a reading
/// of `device` sent through it; `None` when Mosquitto is not installed.
fn mosquitto_tls_node(dir: &Path, node_id: &str, device: &str) -> Option<TlsSetup> {
    make_certificates(dir);
    let broker = mosquitto_tls(dir)?;
    let password_file = write_file(dir, "password", &format!("{PASSWORD}\n"));
    let ca = dir.join("ca.pem").display().to_string();
    let url = format!("mqtts://127.0.0.1:{}", broker.port);
    let mut node_flags = node_login(&password_file).to_vec();
    node_flags.push(format!("--broker_ca={ca}"));
    let server =
        Server::start_with_broker(node_id, &data_dir(dir, "data"), &url, &strs(&node_flags));
    let tls_login = ["--cafile", ca.as_str(), "-u", USER, "-P", PASSWORD];
    publish_until_stored(&server, broker.port, &tls_login, device);
    Some(TlsSetup {
        _broker: broker,
        server,
        ca,
        password_file,
        url,
    })
}

#[test]
fn embedded_broker_with_credentials_admits_the_right_password_only() {
    if !have_all(&["mosquitto_pub"]) {
        return;
    }
    let dir = TempDir::new("mqtt-auth");
    let password_file = write_file(dir.path(), "password", &format!("{PASSWORD}\n"));
    let broker = Broker::start_embedded_with(&[
        "--username".to_string(),
        USER.to_string(),
        "--password-file".to_string(),
        password_file.display().to_string(),
    ]);
    let node_flags = node_login(&password_file);
    let server = Server::start_with_broker(
        "mqttauth1",
        &data_dir(dir.path(), "data"),
        &broker.url(),
        &strs(&node_flags),
    );
    let stored = publish_until_stored(&server, broker.port, &login(PASSWORD), "auth_dev");

    let (ok, stderr) = mosquitto_pub(broker.port, &login("wrong-password"), "auth_dev");
    assert!(!ok, "a wrong password was accepted: {stderr}");
    let (ok, stderr) = mosquitto_pub(broker.port, &[], "auth_dev");
    assert!(!ok, "an anonymous client was accepted: {stderr}");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        server.count("auth_dev", METRIC),
        stored,
        "a refused client's reading was stored"
    );
    // The right password still works after the refusals.
    let (ok, stderr) = mosquitto_pub(broker.port, &login(PASSWORD), "auth_dev");
    assert!(ok, "right password refused: {stderr}");
    assert!(
        !server.log_text().contains(PASSWORD),
        "the node logged the password"
    );

    // A node with the wrong password is refused too, and says so in /status.
    let wrong_file = write_file(dir.path(), "wrong-password", "wrong-password\n");
    let refused = Server::start_with_broker(
        "mqttauth2",
        &data_dir(dir.path(), "data-refused"),
        &broker.url(),
        &strs(&node_login(&wrong_file)),
    );
    common::wait_until(
        "the refused node to report the broker",
        SUBSCRIBE_TIMEOUT,
        || refused.status()["broker_error"].is_string(),
    );
    assert_ne!(refused.status()["broker"], "connected");
}

#[test]
fn embedded_broker_tls_listener_serves_mosquitto_pub_and_a_node_over_mqtts() {
    if !have_all(&["openssl", "mosquitto_pub"]) {
        return;
    }
    let dir = TempDir::new("mqtt-tls-embedded");
    make_certificates(dir.path());
    let password_file = write_file(dir.path(), "password", PASSWORD);
    let tls_port = free_port();
    let path = |name: &str| dir.path().join(name).display().to_string();
    let broker = Broker::start_embedded_with(&[
        "--username".to_string(),
        USER.to_string(),
        "--password-file".to_string(),
        password_file.display().to_string(),
        "--tls-listen".to_string(),
        format!("127.0.0.1:{tls_port}"),
        "--tls-cert".to_string(),
        path("cert.pem"),
        "--tls-key".to_string(),
        path("key.pem"),
    ]);
    let mut node_flags = node_login(&password_file).to_vec();
    node_flags.push(format!("--broker_ca={}", path("ca.pem")));
    let server = Server::start_with_broker(
        "mqtttls1",
        &data_dir(dir.path(), "data"),
        &format!("mqtts://127.0.0.1:{tls_port}"),
        &strs(&node_flags),
    );
    let ca = path("ca.pem");
    let tls_login = ["--cafile", ca.as_str(), "-u", USER, "-P", PASSWORD];
    publish_until_stored(&server, tls_port, &tls_login, "tls_dev");
    assert_eq!(server.status()["broker"], "connected");

    // A client that does not trust the test CA cannot talk to the TLS listener...
    let (ok, stderr) = mosquitto_pub(tls_port, &login(PASSWORD), "tls_dev");
    assert!(!ok, "plain MQTT to the TLS listener was accepted: {stderr}");
    // ... and the TLS listener wants the password too.
    let (ok, stderr) = mosquitto_pub(
        tls_port,
        &["--cafile", ca.as_str(), "-u", USER, "-P", "wrong-password"],
        "tls_dev",
    );
    assert!(!ok, "a wrong password was accepted over TLS: {stderr}");
    // The plain listener still serves, with the same credentials and the same router.
    let before = server.count("tls_dev", METRIC);
    let (ok, stderr) = mosquitto_pub(broker.port, &login(PASSWORD), "tls_dev");
    assert!(ok, "plain listener refused the right password: {stderr}");
    common::wait_until("the plain listener's reading", STORE_TIMEOUT * 10, || {
        server.count("tls_dev", METRIC) > before
    });
}

#[test]
fn embedded_broker_refuses_a_tls_key_it_cannot_use_at_start() {
    let dir = TempDir::new("mqtt-tls-badkey");
    let bogus = write_file(dir.path(), "bogus.pem", "not a certificate\n");
    let out = run_bounded(
        Command::new(env!("CARGO_BIN_EXE_minitrue-broker"))
            .arg(format!("--listen=127.0.0.1:{}", free_port()))
            .arg(format!("--tls-listen=127.0.0.1:{}", free_port()))
            .arg(format!("--tls-cert={}", bogus.display()))
            .arg(format!("--tls-key={}", bogus.display())),
    );
    assert!(!out.status.success(), "started with a bogus certificate");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("bogus.pem"), "stderr: {stderr}");
}

#[test]
fn node_ingests_from_mosquitto_over_mqtts_with_credentials() {
    if !have_all(&["openssl", "mosquitto", "mosquitto_pub", "mosquitto_passwd"]) {
        return;
    }
    let dir = TempDir::new("mqtt-tls-mosquitto");
    let Some(setup) = mosquitto_tls_node(dir.path(), "mqtttls2", "mosq_tls_dev") else {
        return;
    };
    assert!(
        !setup.server.log_text().contains(PASSWORD),
        "the node logged the password"
    );

    // A node trusting another CA refuses the broker's certificate and says so in /status.
    let other = TempDir::new("mqtt-tls-other-ca");
    make_certificates(other.path());
    let mut distrustful = node_login(&setup.password_file).to_vec();
    distrustful.push(format!(
        "--broker_ca={}",
        other.path().join("ca.pem").display()
    ));
    let stranger = Server::start_with_broker(
        "mqtttls3",
        &data_dir(dir.path(), "data-other"),
        &setup.url,
        &strs(&distrustful),
    );
    common::wait_until(
        "the distrustful node to report the broker",
        SUBSCRIBE_TIMEOUT,
        || {
            stranger.status()["broker_error"]
                .as_str()
                .is_some_and(|e| e.to_ascii_lowercase().contains("certificate"))
        },
    );
    assert_ne!(stranger.status()["broker"], "connected");
}

#[test]
fn publisher_replays_over_mqtts_with_credentials() {
    if !have_all(&["openssl", "mosquitto", "mosquitto_pub", "mosquitto_passwd"]) {
        return;
    }
    let dir = TempDir::new("mqtt-tls-publisher");
    let Some(setup) = mosquitto_tls_node(dir.path(), "mqtttls4", "subscribed_probe") else {
        return;
    };

    let csv = write_file(
        dir.path(),
        "readings.csv",
        "timestamp,device_id,metric_name,value\n\
         1700000000,pub_tls_dev,temperature,20.5\n\
         1700000060,pub_tls_dev,temperature,21\n\
         1700000120,pub_tls_dev,temperature,21.5\n",
    );
    let publisher = |extra: &[String]| {
        run_bounded(
            Command::new(env!("CARGO_BIN_EXE_minitrue-publisher"))
                .arg(format!("--replay={}", csv.display()))
                .arg(format!("--broker={}", setup.url))
                .arg("--ack_timeout=10")
                .args(extra),
        )
    };
    let mut flags = node_login(&setup.password_file).to_vec();
    flags.push(format!("--broker_ca={}", setup.ca));
    let out = publisher(&flags);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "publisher failed: {stdout}\n{stderr}");
    assert!(stdout.contains("published=3"), "stdout: {stdout}");
    assert!(
        !stderr.contains(PASSWORD),
        "the publisher logged the password"
    );
    common::wait_until(
        "the replayed readings at the node",
        SUBSCRIBE_TIMEOUT,
        || setup.server.count("pub_tls_dev", METRIC) == 3,
    );

    // mqtts:// without a CA to trust is refused before anything is sent.
    let out = publisher(&node_login(&setup.password_file));
    assert!(!out.status.success(), "mqtts:// without --broker_ca ran");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("broker_ca"), "stderr: {stderr}");
}
