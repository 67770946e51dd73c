//! The Prometheus query API of a real node (issue 14, read part): points written with
//! `/write` come back through `/api/v1/query`, `/api/v1/query_range`, `/api/v1/series`,
//! `/api/v1/labels` and `/api/v1/label/<name>/values` in Prometheus's JSON envelope, over
//! GET and form-encoded POST; errors carry Prometheus's `errorType`. Where Debian's
//! `promtool` is installed (CI installs `prometheus`), it is pointed at the node too.

mod common;

use common::certs::have;
use common::{Server, TempDir};
use serde_json::{json, Value};
use std::process::Command;

/// Seconds of the first point written.
const T0: i64 = 1_700_000_000;

/// Two devices' counters every 10 s for 2 minutes (`b` resets after 60 s), and two gauges
/// of one device whose names PromQL cannot spell bare (`air-quality_pm2.5`, `_pm10`).
fn write_points(server: &Server) {
    let mut body = String::new();
    for i in 0..=12 {
        let t = T0 + 10 * i;
        body.push_str(&format!(
            "requests,device_id=a,room=lab value={} {t}\n",
            10 * i
        ));
        let b = if i <= 6 { 5 * i } else { 5 * (i - 7) };
        body.push_str(&format!("requests,device_id=b,room=hall value={b} {t}\n"));
    }
    body.push_str(&format!(
        "air-quality,device_id=a pm2.5=7.5,pm10=9 {}\n",
        T0 + 120
    ));
    let r = server.post("/write?precision=s", &body);
    assert_eq!(r.status, 204, "{}", r.text());
}

fn ok_data(server: &Server, method: &str, path: &str, form: &str) -> Value {
    let r = match method {
        "GET" => server.get(&format!("{path}?{form}")),
        _ => server.post(path, form),
    };
    assert_eq!(r.status, 200, "{method} {path}?{form}: {}", r.text());
    let body = r.json();
    assert_eq!(body["status"], "success", "{body}");
    body["data"].clone()
}

#[test]
fn queries_series_and_labels_answer_in_prometheus_shape() {
    let dir = TempDir::new("prometheus_api");
    let server = Server::start("prom_api", dir.path(), &[]);
    write_points(&server);

    // An instant query of a selector: the newest point of each series, `__name__` kept.
    let at = T0 + 120;
    for method in ["GET", "POST"] {
        let form = format!(
            "query={}&time={at}",
            common::percent_encode("requests{room=\"lab\"}")
        );
        let data = ok_data(&server, method, "/api/v1/query", &form);
        assert_eq!(
            data,
            json!({"resultType": "vector", "result": [
                {"metric": {"__name__": "requests", "device_id": "a", "room": "lab"},
                 "value": [at, "120"]}
            ]}),
            "{method}"
        );
    }

    // rate() over the reset: b rose 5 a step, fell to 0 after 60 s, rose 5 a step again.
    // Window (T0+60, T0+120]: 0, 5, 10, 15, 20, 25 at 70..120 s: increase 25 over 50 s of
    // samples, extrapolated 10 s to the start (under 1.1 gaps; the counter's zero is at
    // 70 s, so the start stops there: 0 s): 25 × 50/50 / 60.
    let form = format!(
        "query={}&time={at}",
        common::percent_encode("rate(requests{device_id=\"b\"}[1m])")
    );
    let data = ok_data(&server, "GET", "/api/v1/query", &form);
    let result = &data["result"][0];
    assert_eq!(result["metric"], json!({"device_id": "b", "room": "hall"}));
    let rate: f64 = result["value"][1].as_str().unwrap().parse().unwrap();
    assert!((rate - 25.0 / 60.0).abs() < 1e-9, "{rate}");

    // A range query: steps at start, start+step, … ≤ end; aggregated, name dropped.
    let form = format!(
        "query={}&start={}&end={}&step=30s",
        common::percent_encode("sum by (room) (requests)"),
        T0,
        T0 + 100
    );
    let data = ok_data(&server, "POST", "/api/v1/query_range", &form);
    assert_eq!(
        data,
        json!({"resultType": "matrix", "result": [
            {"metric": {"room": "hall"},
             "values": [[T0, "0"], [T0 + 30, "15"], [T0 + 60, "30"], [T0 + 90, "10"]]},
            {"metric": {"room": "lab"},
             "values": [[T0, "0"], [T0 + 30, "30"], [T0 + 60, "60"], [T0 + 90, "90"]]}
        ]})
    );

    // Fractional times and a scalar.
    let data = ok_data(
        &server,
        "GET",
        "/api/v1/query",
        "query=time()&time=1700000000.5",
    );
    assert_eq!(
        data,
        json!({"resultType": "scalar", "result": [1_700_000_000.5, "1700000000.5"]})
    );

    // A metric name that is no PromQL identifier, reached through __name__.
    let form = format!(
        "query={}&time={at}",
        common::percent_encode("{__name__=\"air-quality_pm2.5\"}")
    );
    let data = ok_data(&server, "GET", "/api/v1/query", &form);
    assert_eq!(data["result"][0]["metric"]["__name__"], "air-quality_pm2.5");
    assert_eq!(data["result"][0]["value"][1], "7.5");

    // Series, labels and label values.
    let form = format!(
        "match[]={}&match[]={}",
        common::percent_encode("requests{device_id=\"a\"}"),
        common::percent_encode("{__name__=~\"air.*\"}")
    );
    let data = ok_data(&server, "GET", "/api/v1/series", &form);
    assert_eq!(
        data,
        json!([
            {"__name__": "air-quality_pm10", "device_id": "a"},
            {"__name__": "air-quality_pm2.5", "device_id": "a"},
            {"__name__": "requests", "device_id": "a", "room": "lab"}
        ])
    );
    let data = ok_data(&server, "GET", "/api/v1/labels", "");
    assert_eq!(data, json!(["__name__", "device_id", "room"]));
    let data = ok_data(&server, "GET", "/api/v1/label/__name__/values", "");
    assert_eq!(
        data,
        json!(["air-quality_pm10", "air-quality_pm2.5", "requests"])
    );
    let form = format!(
        "match[]={}",
        common::percent_encode("requests{room=\"hall\"}")
    );
    let data = ok_data(&server, "GET", "/api/v1/label/device_id/values", &form);
    assert_eq!(data, json!(["b"]));
    let data = ok_data(&server, "GET", "/api/v1/metadata", "");
    assert_eq!(data, json!({}));

    // Errors: Prometheus's envelope and status per type.
    refused(
        &server,
        "/api/v1/query?query=rate(",
        400,
        "bad_data",
        "parse error",
    );
    let too_many = "/api/v1/query_range?query=time()&start=0&end=11001&step=1";
    refused(&server, too_many, 400, "bad_data", "11000");
    let histogram = format!(
        "/api/v1/query?query={}",
        common::percent_encode("histogram_quantile(0.9, requests)")
    );
    refused(&server, &histogram, 400, "bad_data", "histogram_quantile");
    let set = format!(
        "/api/v1/query?query={}",
        common::percent_encode("requests and requests")
    );
    refused(&server, &set, 400, "bad_data", "and");
    // Dropping the names of two series that differ only in them: an execution error.
    let same = format!(
        "/api/v1/query?query={}&time={at}",
        common::percent_encode("{__name__=~\"air.*\"} * 1")
    );
    refused(&server, &same, 422, "execution", "same labelset");

    drive_promtool(&server);
}

/// `GET path` is refused with `status`, Prometheus's `error_type` and a message containing
/// `says`.
fn refused(server: &Server, path: &str, status: u16, error_type: &str, says: &str) {
    let r = server.get(path);
    assert_eq!(r.status, status, "{path}: {}", r.text());
    let body = r.json();
    assert_eq!(body["status"], "error", "{body}");
    assert_eq!(body["errorType"], error_type, "{body}");
    let message = body["error"].as_str().unwrap_or_default();
    assert!(message.contains(says), "{path}: {message}");
}

/// `promtool query …` against the node, where promtool is installed.
fn drive_promtool(server: &Server) {
    if !have("promtool") {
        eprintln!("skipped the promtool part: promtool not installed (apt-get install prometheus)");
        return;
    }
    let url = format!("http://127.0.0.1:{}", server.port);
    let run = |args: &[&str]| -> String {
        let out = Command::new("promtool")
            .arg("query")
            .args(args)
            .output()
            .expect("run promtool");
        assert!(
            out.status.success(),
            "promtool query {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let at = (T0 + 120).to_string();
    let instant = run(&["instant", "--time", &at, &url, "requests{device_id=\"a\"}"]);
    assert!(
        instant.contains(r#"requests{device_id="a", room="lab"} => 120 @["#),
        "{instant}"
    );
    let range = run(&[
        "range",
        "--start",
        &T0.to_string(),
        "--end",
        &(T0 + 60).to_string(),
        "--step",
        "30s",
        &url,
        "sum(requests)",
    ]);
    assert!(range.contains("{} =>"), "{range}");
    assert!(range.contains("0 @["), "{range}");
    assert!(range.contains("90 @["), "{range}");
    // promtool's default window is now ± 9999 h; the points are older.
    let (start, end) = (T0.to_string(), (T0 + 120).to_string());
    let window = ["--start", start.as_str(), "--end", end.as_str()];
    let series = run(&[&["series", "--match", "requests"][..], &window, &[&url]].concat());
    assert!(
        series.contains(r#"{__name__="requests", device_id="b", room="hall"}"#),
        "{series}"
    );
    let labels = run(&[&["labels"][..], &window, &[&url, "room"]].concat());
    assert_eq!(
        labels.split_whitespace().collect::<Vec<_>>(),
        ["hall", "lab"],
        "{labels}"
    );
}
