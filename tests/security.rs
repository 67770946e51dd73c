//! Who may call a node, tried as users and attackers would against real processes: tokens
//! of an `--auth_file` with curl and the python InfluxDB clients (1.x with user/password,
//! 2.x with a token), the 401/403 answers, the delete audit log, a SIGHUP reload, the
//! websocket's token parameter, and a browser-style cross-site `text/plain` delete.

mod common;

use common::pyclients::run_python;
use common::{free_port, try_request, wait_until, Response, Server, TempDir};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// `(name, role)` of the test's tokens; each token is `<name>-token`.
const TOKENS: [(&str, &str); 3] = [("reader", "read"), ("writer", "write"), ("ops", "admin")];

fn sha256_hex(text: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn auth_toml(tokens: &[(&str, &str)]) -> String {
    tokens
        .iter()
        .map(|(name, role)| {
            format!(
                "[[token]]\nname = \"{name}\"\nrole = \"{role}\"\nsha256 = \"{}\"\n\n",
                sha256_hex(&format!("{name}-token"))
            )
        })
        .collect()
}

/// Writes the auth file and a cluster secret into `dir`; the flags naming them.
fn lock_files(dir: &Path) -> (PathBuf, [String; 2]) {
    let auth = dir.join("auth.toml");
    std::fs::write(&auth, auth_toml(&TOKENS)).expect("write auth file");
    let secret = dir.join("cluster.secret");
    std::fs::write(&secret, "test-cluster-secret-0123456789\n").expect("write secret");
    let flags = [
        format!("--auth_file={}", auth.display()),
        format!("--cluster_secret_file={}", secret.display()),
    ];
    (auth, flags)
}

fn start_locked(dir: &TempDir, name: &str) -> (Server, PathBuf) {
    let (auth, flags) = lock_files(dir.path());
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    (Server::start(name, dir.path(), &flags), auth)
}

fn call(server: &Server, method: &str, path: &str, body: &str, token: Option<&str>) -> Response {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = bearer
        .iter()
        .map(|b| ("Authorization", b.as_str()))
        .collect();
    try_request(server.port, method, path, body.as_bytes(), &headers)
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}

fn count(server: &Server, device: &str, metric: &str) -> f64 {
    let body =
        format!(r#"{{"device_id":"{device}","metric_name":"{metric}","operation":"count"}}"#);
    let r = call(server, "POST", "/query", &body, Some("reader-token"));
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["result"].as_f64().unwrap_or(0.0)
}

fn curl(args: &[&str]) -> String {
    let out = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .args(args)
        .output()
        .expect("run curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// InfluxDB 1.x client: user/password go as `?u=&p=`.
const INFLUX1_WRITE: &str = r#"
import sys
from influxdb import InfluxDBClient
port, password, device = int(sys.argv[1]), sys.argv[2], sys.argv[3]
client = InfluxDBClient(host="127.0.0.1", port=port, username="someone", password=password, database="fleet")
ok = client.write_points([{"measurement": "temp", "tags": {"device_id": device}, "fields": {"c": 21.5}}], time_precision="s")
print("written", ok)
"#;

/// InfluxDB 2.x client: `Authorization: Token T`.
const INFLUX2_WRITE: &str = r#"
import sys
from influxdb_client import InfluxDBClient
from influxdb_client.client.write_api import SYNCHRONOUS
port, token, device = sys.argv[1], sys.argv[2], sys.argv[3]
with InfluxDBClient(url="http://127.0.0.1:" + port, token=token, org="lab") as client:
    client.write_api(write_options=SYNCHRONOUS).write(bucket="fleet", record="temp,device_id=%s c=22.5" % device)
print("written")
"#;

#[test]
fn real_clients_write_with_their_own_credential_shapes() {
    let dir = TempDir::new("sec-clients");
    let (server, _) = start_locked(&dir, "sec1");
    let port = server.port.to_string();
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");

    // curl with a Bearer token, and without one.
    let line = "temp,device_id=curl c=20.5";
    let write = url("/write");
    assert_eq!(curl(&["--data-binary", line, &write]), "401");
    assert_eq!(
        curl(&[
            "-H",
            "Authorization: Bearer reader-token",
            "--data-binary",
            line,
            &write
        ]),
        "403"
    );
    assert_eq!(
        curl(&[
            "-H",
            "Authorization: Bearer writer-token",
            "--data-binary",
            line,
            &write
        ]),
        "204"
    );
    assert_eq!(count(&server, "curl", "temp_c"), 1.0);

    let (ok, text) = run_python(
        INFLUX1_WRITE,
        &[port.clone(), "writer-token".into(), "py1".into()],
    );
    assert!(ok, "influxdb 1.x client: {text}");
    assert_eq!(count(&server, "py1", "temp_c"), 1.0);
    let (ok, text) = run_python(
        INFLUX1_WRITE,
        &[port.clone(), "wrong".into(), "py1bad".into()],
    );
    assert!(
        !ok && text.contains("401"),
        "a wrong password must fail: {text}"
    );

    let (ok, text) = run_python(
        INFLUX2_WRITE,
        &[port.clone(), "writer-token".into(), "py2".into()],
    );
    assert!(ok, "influxdb-client 2.x: {text}");
    assert_eq!(count(&server, "py2", "temp_c"), 1.0);
    let (ok, text) = run_python(
        INFLUX2_WRITE,
        &[port.clone(), "reader-token".into(), "py2bad".into()],
    );
    assert!(
        !ok && text.contains("403"),
        "a read token must not write: {text}"
    );
    assert_eq!(
        count(&server, "py1bad", "temp_c") + count(&server, "py2bad", "temp_c"),
        0.0
    );
}

#[test]
fn refusals_are_json_and_deletes_are_audited() {
    let dir = TempDir::new("sec-refusals");
    let (server, _) = start_locked(&dir, "sec2");
    let r = call(&server, "GET", "/health", "", None);
    assert_eq!(r.status, 200, "/health stays open");

    let r = call(&server, "GET", "/devices", "", None);
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("WWW-Authenticate"),
        Some(r#"Bearer realm="minitrue""#)
    );
    assert!(r.json()["error"]
        .as_str()
        .unwrap()
        .contains("credentials required"));

    let r = call(
        &server,
        "POST",
        "/write",
        "m,device_id=a v=1",
        Some("writer-token"),
    );
    assert_eq!(r.status, 204, "{}", r.text());
    let series = r#"{"device_id":"a","metric_name":"m_v"}"#;
    let r = call(&server, "POST", "/delete", series, Some("writer-token"));
    assert_eq!(r.status, 403);
    let error = r.json()["error"].as_str().unwrap().to_string();
    assert!(
        error.contains("writer") && error.contains("admin"),
        "{error}"
    );
    assert_eq!(
        count(&server, "a", "m_v"),
        1.0,
        "a refused delete changes nothing"
    );

    let r = call(&server, "POST", "/delete", series, Some("ops-token"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(count(&server, "a", "m_v"), 0.0);
    wait_until("the audit line", Duration::from_secs(5), || {
        server
            .log_text()
            .contains(r#"audit: delete by token "ops""#)
    });
    let log = server.log_text();
    let line = log
        .lines()
        .find(|l| l.contains("audit: delete"))
        .expect("audit line");
    assert!(line.contains("m_v") && line.contains("-> 200"), "{line}");

    let r = call(&server, "GET", "/status", "", Some("reader-token"));
    assert_eq!(r.json()["auth"]["enabled"], true);
}

#[test]
fn sighup_reloads_the_tokens() {
    let dir = TempDir::new("sec-reload");
    let (server, auth) = start_locked(&dir, "sec3");
    assert_eq!(
        call(&server, "GET", "/devices", "", Some("reader-token")).status,
        200
    );
    assert_eq!(
        call(&server, "GET", "/devices", "", Some("intern-token")).status,
        401
    );

    std::fs::write(&auth, auth_toml(&[("intern", "read")])).unwrap();
    server.signal("HUP");
    wait_until("the new token", Duration::from_secs(5), || {
        call(&server, "GET", "/devices", "", Some("intern-token")).status == 200
    });
    assert_eq!(
        call(&server, "GET", "/devices", "", Some("reader-token")).status,
        401
    );

    // A broken file keeps the tokens in force, and the node keeps running.
    std::fs::write(&auth, "[[token]]\nname = 1\n").unwrap();
    server.signal("HUP");
    wait_until("the reload failure logged", Duration::from_secs(5), || {
        server.log_text().contains("kept the previous tokens")
    });
    assert_eq!(
        call(&server, "GET", "/devices", "", Some("intern-token")).status,
        200
    );
}

#[test]
fn websocket_takes_its_token_as_a_query_parameter() {
    let dir = TempDir::new("sec-ws");
    let (server, _) = start_locked(&dir, "sec4");
    let upgrade = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("Sec-WebSocket-Version", "13"),
    ];
    let r = try_request(server.port, "GET", "/ws", b"", &upgrade).expect("GET /ws");
    assert_eq!(r.status, 401, "{}", r.text());

    let url = format!("ws://127.0.0.1:{}/ws?token=reader-token", server.port);
    let stream = std::net::TcpStream::connect(("127.0.0.1", server.port)).expect("connect");
    let (mut socket, response) = tungstenite::client(url.as_str(), stream).expect("handshake");
    assert_eq!(response.status().as_u16(), 101);
    let _ = socket.close(None);
}

#[test]
fn a_cross_site_text_plain_delete_is_refused() {
    let dir = TempDir::new("sec-cors");
    // No auth file: the origin check alone must stop a page in the user's browser.
    let server = Server::start(
        "sec5",
        dir.path(),
        &["--cors_origins=http://localhost:5173"],
    );
    let port = server.port.to_string();
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
    assert_eq!(
        curl(&["--data-binary", "m,device_id=a v=1", &url("/write")]),
        "204"
    );
    let series = r#"{"device_id":"a","metric_name":"m_v"}"#;
    let evil = [
        "-H",
        "Origin: http://evil.example",
        "-H",
        "Content-Type: text/plain",
        "--data-binary",
        series,
    ];
    assert_eq!(
        curl(&[&evil[..], &[url("/delete").as_str()]].concat()),
        "403"
    );
    assert_eq!(
        call(
            &server,
            "POST",
            "/query",
            r#"{"device_id":"a","metric_name":"m_v","operation":"count"}"#,
            None
        )
        .json()["result"],
        1.0,
        "the series is intact"
    );
    // The listed origin gets its name back, never `*`.
    let r = try_request(
        server.port,
        "POST",
        "/delete",
        series.as_bytes(),
        &[("Origin", "http://localhost:5173")],
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("Access-Control-Allow-Origin"),
        Some("http://localhost:5173")
    );
    let r = call(&server, "GET", "/status", "", None);
    assert_eq!(
        r.json()["auth"]["enabled"],
        false,
        "status says auth is off"
    );
}

#[test]
fn auth_file_without_a_cluster_secret_is_refused_at_start() {
    let dir = TempDir::new("sec-nosecret");
    let (auth, _) = lock_files(dir.path());
    let out = Command::new(env!("CARGO_BIN_EXE_minitrue-server"))
        .args([
            "--node_id=lonely",
            &format!("--port={}", free_port()),
            &format!("--tcp_port={}", free_port()),
            &format!("--data_dir={}", dir.path().display()),
            &format!("--auth_file={}", auth.display()),
        ])
        .output()
        .expect("run minitrue-server");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cluster_secret_file"), "{err}");
}

#[test]
fn a_locked_cluster_answers_for_its_peers_with_their_signatures() {
    let dir = TempDir::new("sec-cluster");
    let (_, flags) = lock_files(dir.path());
    let (a_http, a_gossip, b_http, b_gossip) = (free_port(), free_port(), free_port(), free_port());
    let seeds_a = format!("--seeds=127.0.0.1:{b_gossip}");
    let seeds_b = format!("--seeds=127.0.0.1:{a_gossip}");
    let broker = "tcp://127.0.0.1:1";
    let a_flags = [
        flags[0].as_str(),
        flags[1].as_str(),
        "--gossip_interval_ms=100",
        &seeds_a,
    ];
    let b_flags = [
        flags[0].as_str(),
        flags[1].as_str(),
        "--gossip_interval_ms=100",
        &seeds_b,
    ];
    let a = Server::start_on_ports("polaris", dir.path(), broker, a_http, a_gossip, &a_flags);
    let b = Server::start_on_ports("sirius", dir.path(), broker, b_http, b_gossip, &b_flags);
    wait_until(
        "both see two alive members",
        Duration::from_secs(15),
        || {
            [&a, &b].iter().all(|s| {
                let r = call(s, "GET", "/status", "", Some("reader-token"));
                r.status == 200
                    && r.json()["members"]
                        .as_array()
                        .is_some_and(|ms| ms.iter().filter(|m| m["state"] == "alive").count() == 2)
            })
        },
    );
    let lines: String = (0..20)
        .map(|i| format!("m,device_id=dev{i} v={i} {}\n", 1_000 + i))
        .collect();
    let r = call(
        &a,
        "POST",
        "/write?precision=s",
        &lines,
        Some("writer-token"),
    );
    assert_eq!(r.status, 204, "{}", r.text());
    // Every series is found through either node: their calls to each other are signed
    // and accepted even though they carry no token.
    for server in [&a, &b] {
        for i in 0..20 {
            assert_eq!(
                count(server, &format!("dev{i}"), "m_v"),
                1.0,
                "dev{i} on {}",
                server.node_id
            );
        }
    }
    let series = r#"{"device_id":"dev3","metric_name":"m_v"}"#;
    let r = call(&b, "POST", "/delete", series, Some("ops-token"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(count(&a, "dev3", "m_v"), 0.0);
}
