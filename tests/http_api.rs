//! Black-box test of the HTTP API: a real `minitrue-server` on free loopback ports (its
//! MQTT broker unreachable on purpose: the API must not depend on it), driven with plain
//! HTTP/1.1 requests.

mod common;

use common::{Server, TempDir};
use serde_json::{json, Value};
use std::time::Duration;

/// Ten readings of `sensor_1|temperature` at t = 1000..1009 s, values 20..29, plus one
/// humidity reading: avg 24.5, sum 245, min 20, max 29.
fn line_protocol() -> String {
    let mut body: String = (0..10)
        .map(|i| {
            format!(
                "temperature,device_id=sensor_1 value={} {}\n",
                20 + i,
                1000 + i
            )
        })
        .collect();
    body.push_str("humidity,device_id=sensor_2 value=55.5 1000\n");
    body
}

fn query(server: &Server, op: &str, extra: &str) -> Value {
    let r = server.post(
        "/query",
        &format!(
            r#"{{"device_id":"sensor_1","metric_name":"temperature","operation":"{op}","start_time":0,"end_time":0{extra}}}"#
        ),
    );
    assert_eq!(r.status, 200, "{op}: {}", r.text());
    r.json()
}

fn error_message(r: &common::Response) -> String {
    r.json()["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error field: {}", r.text()))
        .to_string()
}

#[test]
fn write_query_delete_and_restart_keep_the_contract() {
    let dir = TempDir::new("api");
    let mut server = Server::start("t1", dir.path(), &["--mode=all"]);

    let r = server.post("/write?precision=s", &line_protocol());
    assert_eq!(r.status, 204, "{}", r.text());
    assert_eq!(
        r.header("Access-Control-Allow-Origin"),
        None,
        "no wildcard CORS"
    );

    for (op, want) in [
        ("avg", 24.5),
        ("sum", 245.0),
        ("min", 20.0),
        ("max", 29.0),
        ("count", 10.0),
    ] {
        let v = query(&server, op, "");
        assert_eq!(v["result"], want, "{op}: {v}");
        assert_eq!(v["count"], 10);
        assert_eq!(v["operation"], op);
        assert_eq!(v["device_id"], "sensor_1");
        assert_eq!(v["metric_name"], "temperature");
        assert_eq!(v["node"], "t1");
        assert!(v["duration_ns"].is_u64(), "{v}");
    }

    // A bounded range, in seconds, inclusive.
    let r = server.post(
        "/query",
        r#"{"device_id":"sensor_1","metric_name":"temperature","operation":"count","start_time":1002,"end_time":1004.5}"#,
    );
    assert_eq!(r.json()["result"], 3.0);

    // Buckets of 5 s: [1000, 1005) and [1005, 1010).
    let v = query(&server, "avg", r#","step":5"#);
    assert_eq!(
        v["buckets"],
        json!([
            {"start": 1000.0, "result": 22.0, "count": 5},
            {"start": 1005.0, "result": 27.0, "count": 5},
        ])
    );

    let r = server.post(
        "/query-samples",
        r#"{"device_id":"sensor_1","metric_name":"temperature","start_time":0,"end_time":0,"limit":3}"#,
    );
    let v = r.json();
    assert_eq!(v["samples"], json!([20.0, 21.0, 22.0]));
    assert_eq!(v["timestamps"], json!([1000.0, 1001.0, 1002.0]));
    assert_eq!(v["count"], 3);

    let v = server
        .post(
            "/query-aggregated",
            r#"{"device_id":"sensor_1","metric_name":"temperature"}"#,
        )
        .json();
    assert_eq!(
        (&v["sum"], &v["count"], &v["min"], &v["max"]),
        (&json!(245.0), &json!(10), &json!(20.0), &json!(29.0))
    );

    assert_eq!(
        server.get("/devices").json(),
        json!({"devices": ["sensor_1", "sensor_2"], "node": "t1"})
    );
    assert_eq!(
        server.get("/metrics").json(),
        json!({"metrics": ["humidity", "temperature"], "node": "t1"})
    );
    assert_eq!(
        server.get("/metrics?device_id=sensor_2").json(),
        json!({"metrics": ["humidity"], "node": "t1"})
    );

    let status = server.get("/status").json();
    assert_eq!(status["node_id"], "t1");
    assert_eq!(status["mode"], "all");
    assert_eq!(status["points"], 11);
    assert_eq!(status["series"], 2);
    assert_eq!(status["ingest_accepted"], 11);
    for field in [
        "uptime_seconds",
        "broker",
        "segments",
        "disk_bytes",
        "wal_bytes",
        "memory_bytes",
        "points_written",
        "ingest_rate",
        "websocket_clients",
        "rejected",
    ] {
        assert!(
            status.get(field).is_some(),
            "status lacks {field}: {status}"
        );
    }
    assert_eq!(server.get("/ws/stats").status, 200);

    // Delete humidity, then terminate: temperature must survive a restart, humidity not.
    let v = server
        .post(
            "/delete",
            r#"{"device_id":"sensor_2","metric_name":"humidity"}"#,
        )
        .json();
    assert_eq!(v["deleted"], true, "{v}");
    let count = server
        .post(
            "/query",
            r#"{"device_id":"sensor_2","metric_name":"humidity","operation":"count"}"#,
        )
        .json();
    assert_eq!(count["result"], 0.0);
    assert!(server
        .post(
            "/query",
            r#"{"device_id":"sensor_2","metric_name":"humidity","operation":"avg"}"#
        )
        .json()["result"]
        .is_null());

    let exit = server.terminate(Duration::from_secs(2));
    let log = server.log_text();
    let exit = exit.unwrap_or_else(|| panic!("no exit within 2 s after SIGTERM:\n{log}"));
    assert!(exit.success(), "exit {exit}:\n{log}");

    let server = Server::start("t1", dir.path(), &["--mode=all"]);
    assert_eq!(query(&server, "sum", "")["result"], 245.0);
    assert_eq!(
        server.get("/devices").json(),
        json!({"devices": ["sensor_1"], "node": "t1"})
    );
}

#[test]
fn errors_are_json_with_the_right_status() {
    let dir = TempDir::new("errors");
    let server = Server::start("t2", dir.path(), &[]);

    let r = server.post("/query", r#"{"metric_name":"t","operation":"avg"}"#);
    assert_eq!(
        (r.status, error_message(&r)),
        (400, "missing field device_id".into())
    );
    assert_eq!(
        r.header("Access-Control-Allow-Origin"),
        None,
        "no wildcard CORS"
    );
    assert_eq!(r.header("Content-Type"), Some("application/json"));

    let r = server.post(
        "/query",
        r#"{"device_id":"s","metric_name":"t","operation":"median"}"#,
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        error_message(&r),
        r#"invalid operation: "median" is not one of avg, sum, min, max, count"#
    );

    let r = server.post(
        "/query",
        r#"{"device_id":"s","metric_name":"t","operation":"avg","start_time":9,"end_time":1}"#,
    );
    assert_eq!(
        (r.status, error_message(&r)),
        (400, "start_time must be <= end_time".into())
    );

    let r = server.post("/query", "not json");
    assert_eq!(r.status, 400);
    assert!(error_message(&r).starts_with("invalid JSON"));

    let r = server.post("/write", "temperature,__room=a value=1");
    assert_eq!(r.status, 400);
    assert!(
        error_message(&r).contains("line 1: column 13: tag \"__room\"")
            && error_message(&r).contains("reserved"),
        "{}",
        r.text()
    );

    let r = server.post("/no-such-endpoint", "{}");
    assert_eq!(r.status, 404);
    assert!(error_message(&r).contains("/no-such-endpoint"));

    let r = server.get("/query");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("Allow"), Some("POST, OPTIONS"));
    error_message(&r);

    let r = server.request("OPTIONS", "/query", &[]);
    assert_eq!(r.status, 204);
    assert_eq!(
        r.header("Access-Control-Allow-Origin"),
        None,
        "no wildcard CORS"
    );
    assert!(r.header("Access-Control-Allow-Methods").is_some());

    let big = vec![b' '; 64 * 1024 + 1];
    let r = server.request("POST", "/query", &big);
    assert_eq!(r.status, 413);
    error_message(&r);

    let huge = vec![b'\n'; 16 * 1024 * 1024 + 1];
    let r = server.request("POST", "/write", &huge);
    assert_eq!(r.status, 413);
    error_message(&r);

    // The node still answers after all that.
    assert_eq!(server.get("/health").json()["status"], "pass");
    let root = server.get("/");
    assert_eq!(root.status, 200);
    assert!(root
        .header("Content-Type")
        .is_some_and(|t| t.starts_with("text/html")));
}

#[test]
fn modes_refuse_what_they_do_not_serve() {
    let dir = TempDir::new("modes");
    let server = Server::start("t3", dir.path(), &["--mode=query"]);
    let r = server.post("/write", "t,device_id=a value=1");
    assert_eq!(
        (r.status, error_message(&r)),
        (503, "node is in query mode".into())
    );
    assert_eq!(server.get("/status").json()["broker"], "disabled");
}

#[test]
fn dashboard_is_served_with_types_fallback_and_no_traversal() {
    let dir = TempDir::new("dashboard");
    let dist = dir.path().join("dist");
    std::fs::create_dir_all(dist.join("assets")).expect("create dist");
    std::fs::write(dist.join("index.html"), "<html>dashboard</html>").expect("write index");
    std::fs::write(dist.join("assets/app.js"), "console.log(1)").expect("write asset");
    std::fs::write(dir.path().join("secret.txt"), "secret").expect("write secret");
    let server = Server::start_with_env(
        "t4",
        dir.path(),
        &[],
        &[("MINITRUE_FRONTEND_DIR", dist.as_path())],
    );

    let root = server.get("/");
    assert_eq!(
        (root.status, root.text()),
        (200, "<html>dashboard</html>".into())
    );
    let js = server.get("/assets/app.js");
    assert_eq!(js.status, 200);
    assert_eq!(
        js.header("Content-Type"),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(server.get("/live").text(), "<html>dashboard</html>");
    assert_eq!(server.get("/assets/missing.js").status, 404);
    for path in ["/../secret.txt", "/assets/%2e%2e/%2e%2e/secret.txt"] {
        let r = server.get(path);
        assert_eq!(r.status, 400, "{path}: {}", r.text());
        assert!(!r.text().contains("secret\""), "{path}");
    }
    // API paths are never shadowed by the fallback.
    assert_eq!(server.get("/health").json()["node_id"], "t4");
}

#[test]
fn samples_and_deletes_cover_every_series_a_request_selects() {
    let dir = TempDir::new("http-selectors");
    let server = Server::start("sel1", dir.path(), &[]);
    // Two rooms with the same timestamps, and the device's series without a room.
    let body: String = (0..5)
        .flat_map(|i| {
            let ts = 1_760_000_000 + i;
            [
                format!("t,device_id=d,room=lab value={i} {ts}\n"),
                format!("t,device_id=d,room=kitchen value={} {ts}\n", 100 + i),
                format!("t,device_id=d value={} {ts}\n", 200 + i),
            ]
        })
        .collect();
    assert_eq!(server.post("/write?precision=s", &body).status, 204);

    // The device's request covers all three series: merged oldest first, each one's own
    // points in `results`.
    let v = server
        .post(
            "/query-samples",
            r#"{"device_id":"d","metric_name":"t","limit":100}"#,
        )
        .json();
    assert_eq!(
        (v["count"].clone(), v["series"].clone()),
        (15.into(), 3.into()),
        "{v}"
    );
    let results = v["results"].as_array().unwrap();
    assert_eq!(results.len(), 3, "{v}");
    let kitchen = results
        .iter()
        .find(|r| r["labels"]["room"] == "kitchen")
        .unwrap();
    assert_eq!(
        kitchen["samples"],
        json!([100.0, 101.0, 102.0, 103.0, 104.0])
    );
    // A limit keeps the oldest points of all series together: the first second's three.
    let v = server
        .post(
            "/query-samples",
            r#"{"device_id":"d","metric_name":"t","limit":3}"#,
        )
        .json();
    assert_eq!(v["timestamps"], json!(vec![1_760_000_000.0; 3]), "{v}");
    // A label narrows to one series, answered in the original's shape.
    let v = server
        .post(
            "/query-samples",
            r#"{"device_id":"d","metric_name":"t","labels":{"room":"lab"}}"#,
        )
        .json();
    assert_eq!(v["samples"], json!([0.0, 1.0, 2.0, 3.0, 4.0]), "{v}");
    assert!(v.get("results").is_none(), "{v}");
    // `?local=1` is one exact series, the form repair reads replicas with.
    let v = server
        .post(
            "/query-samples?local=1",
            r#"{"device_id":"d","metric_name":"t"}"#,
        )
        .json();
    assert_eq!(
        v["samples"],
        json!([200.0, 201.0, 202.0, 203.0, 204.0]),
        "{v}"
    );

    // The series listing: by selector, limited, every series without one; bad input named.
    let v = server.get("/series?match=t%7Broom%3D%22lab%22%7D").json();
    assert_eq!(
        v["series"],
        json!([{"device_id": "d", "metric_name": "t", "labels": {"room": "lab"}}]),
        "{v}"
    );
    let v = server.get("/series?match=t&limit=2").json();
    assert_eq!(
        (v["count"].clone(), v["truncated"].clone()),
        (2.into(), true.into()),
        "{v}"
    );
    let v = server.get("/series").json();
    assert_eq!(
        (v["count"].clone(), v["truncated"].clone()),
        (3.into(), false.into()),
        "{v}"
    );
    let v = server
        .get("/series?match=t%7Broom%3D~%22k.*%22%7D&match=t%7Broom%3D%22lab%22%7D")
        .json();
    assert_eq!(v["count"], 2, "a union of selectors: {v}");
    for bad in [
        "/series?match=t%7B",
        "/series?limit=0",
        "/series?match=rate(t%5B1m%5D)",
    ] {
        let r = server.get(bad);
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
        let error = r.json()["error"].as_str().unwrap_or_default().to_string();
        assert!(
            error.contains("match") || error.contains("limit"),
            "{bad}: {error}"
        );
    }

    // Deleting one room leaves the others; deleting the device's series takes the rest.
    let v = server
        .post(
            "/delete",
            r#"{"device_id":"d","metric_name":"t","labels":{"room":"kitchen"}}"#,
        )
        .json();
    assert_eq!(
        (v["deleted"].clone(), v["series"].clone()),
        (true.into(), 1.into()),
        "{v}"
    );
    assert_eq!(query_count(&server, r#""device_id":"d""#), 10);
    let v = server
        .post("/delete", r#"{"device_id":"d","metric_name":"t"}"#)
        .json();
    assert_eq!(v["series"], 2, "{v}");
    assert_eq!(v["deleted_series"].as_array().unwrap().len(), 2, "{v}");
    assert_eq!(query_count(&server, r#""device_id":"d""#), 0);
    // Deletes are idempotent: nothing is left to delete.
    let v = server
        .post("/delete", r#"{"device_id":"d","metric_name":"t"}"#)
        .json();
    assert_eq!(
        (v["deleted"].clone(), v["series"].clone()),
        (false.into(), 0.into()),
        "{v}"
    );
}

/// Points of metric `t` a `/query` with `selector` fields counts.
fn query_count(server: &Server, selector: &str) -> u64 {
    let v = server
        .post(
            "/query",
            &format!(r#"{{{selector},"metric_name":"t","operation":"count"}}"#),
        )
        .json();
    v["count"].as_u64().unwrap_or_else(|| panic!("{v}"))
}
