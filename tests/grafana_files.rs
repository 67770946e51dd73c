//! The Grafana files in `docs/grafana/` (issue 14) stand in for a Grafana we cannot install
//! here: the datasource is a Prometheus one on a node's HTTP address, the dashboard parses,
//! and every query it holds (Grafana's variables filled as Grafana fills them) is answered
//! by a real node's Prometheus API with data for the simulated fleet's metrics.

mod common;

use common::{percent_encode, Server, TempDir};
use serde_json::Value;
use std::path::Path;

fn docs(file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs/grafana")
        .join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn the_grafana_datasource_and_dashboard_work_against_a_node() {
    let datasource = docs("datasource.yaml");
    assert!(datasource.contains("type: prometheus"), "{datasource}");
    assert!(datasource.contains("uid: minitrue"), "{datasource}");
    assert!(
        datasource.contains("url: http://127.0.0.1:8080"),
        "the first node of make cluster: {datasource}"
    );

    let dashboard: Value = serde_json::from_str(&docs("fleet-dashboard.json")).expect("JSON");
    let mut queries: Vec<String> = dashboard["panels"]
        .as_array()
        .expect("panels")
        .iter()
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .map(|t| {
            assert_eq!(t["datasource"]["uid"], "minitrue", "{t}");
            t["expr"].as_str().expect("expr").to_string()
        })
        .collect();
    for variable in dashboard["templating"]["list"]
        .as_array()
        .expect("variables")
    {
        let query = variable["query"]["query"].as_str().expect("variable query");
        // Grafana asks `label_values(metric, label)` as the series of `metric`.
        let inner = query
            .strip_prefix("label_values(")
            .and_then(|q| q.split(',').next())
            .expect("label_values(metric, label)");
        queries.push(inner.to_string());
    }
    assert!(queries.len() >= 6, "{queries:?}");

    // The fleet's five metrics for two devices over the last ten minutes.
    let dir = TempDir::new("grafana");
    let server = Server::start("grafana1", dir.path(), &[]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let mut body = String::new();
    for device in ["sensor_1", "sensor_2"] {
        for metric in ["temperature", "humidity", "pressure", "battery", "light"] {
            for i in 0..60 {
                body.push_str(&format!(
                    "{metric},device_id={device} value={} {}\n",
                    20 + i % 7,
                    now - 600 + i * 10
                ));
            }
        }
    }
    let r = server.post("/write?precision=s", &body);
    assert_eq!(r.status, 204, "{}", r.text());

    for expr in queries {
        let filled = expr
            .replace("$__interval", "1m")
            .replace("$device", "sensor_.*");
        let path = format!(
            "/api/v1/query_range?query={}&start={}&end={now}&step=15",
            percent_encode(&filled),
            now - 600
        );
        let answer = server.get(&path).json();
        assert_eq!(answer["status"], "success", "{filled}: {answer}");
        let series = answer["data"]["result"].as_array().expect("result");
        assert!(!series.is_empty(), "{filled} answered no series: {answer}");
    }
}
