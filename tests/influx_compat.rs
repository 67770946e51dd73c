//! A node as InfluxDB's own clients see it (issue 13's InfluxDB part): the python `influxdb`
//! (1.x) and `influxdb-client` (2.x) packages ping it, check its health and write gzip
//! batches to it; a Telegraf-shaped batch with a string field is written as InfluxDB does
//! (the rest stored, the client told with a partial-write 400). Needs `make pyclients`.

mod common;

use common::pyclients::run_python;
use common::{Server, TempDir};

/// 2.x client: health, ping, then a gzip batch of `n` points at seconds `base..`.
const INFLUX2: &str = r#"
import sys
from influxdb_client import InfluxDBClient, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS
port, base, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with InfluxDBClient(url="http://127.0.0.1:" + port, token="unused", org="lab", enable_gzip=True) as client:
    health = client.health()
    assert health.status == "pass", health
    assert client.ping(), "ping"
    records = ["temp,device_id=gz2,room=lab value=%d %d" % (i, base + i) for i in range(n)]
    client.write_api(write_options=SYNCHRONOUS).write(bucket="fleet", record=records, write_precision=WritePrecision.S)
print("ok", health.name, health.message)
"#;

/// 1.x client: ping (the version header), then a gzip batch of `n` points.
const INFLUX1: &str = r#"
import sys
from influxdb import InfluxDBClient
port, base, n = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
client = InfluxDBClient(host="127.0.0.1", port=port, database="fleet", gzip=True)
version = client.ping()
assert version, "ping gave no version"
points = [{"measurement": "temp", "tags": {"device_id": "gz1"}, "fields": {"value": float(i)}, "time": base + i} for i in range(n)]
assert client.write_points(points, time_precision="s", batch_size=n)
print("ok", version)
"#;

/// 2.x client writing one Telegraf-shaped line with a string field: the client raises the
/// node's 400; its message is printed.
const INFLUX2_PARTIAL: &str = r#"
import sys
from influxdb_client import InfluxDBClient, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException
port, ts = sys.argv[1], int(sys.argv[2])
lines = [
    'cpu,device_id=tg,host=a usage_idle=98.5,usage_user=1i,throttled=true,governor="ondemand" %d' % ts,
    'cpu,host=a usage_idle=97.0 %d' % ts,
    'mem,device_id=tg used_percent=41.25 %d' % ts,
]
with InfluxDBClient(url="http://127.0.0.1:" + port, token="unused", org="lab") as client:
    try:
        client.write_api(write_options=SYNCHRONOUS).write(bucket="fleet", record=lines, write_precision=WritePrecision.S)
        print("no error")
    except ApiException as e:
        print("status", e.status)
        print(e.body)
"#;

#[test]
fn influxdb_clients_ping_check_health_and_write_gzip_batches() {
    let dir = TempDir::new("influx-compat");
    let server = Server::start("influx1", dir.path(), &[]);
    let port = server.port.to_string();
    let base = 1_760_000_000i64;

    let (ok, text) = run_python(INFLUX2, &[port.clone(), base.to_string(), "500".into()]);
    assert!(ok, "influxdb-client 2.x: {text}");
    assert!(text.contains("ok minitrue"), "{text}");
    assert_eq!(server.count("gz2", "temp"), 500);

    let (ok, text) = run_python(INFLUX1, &[port.clone(), base.to_string(), "300".into()]);
    assert!(ok, "influxdb 1.x: {text}");
    assert!(text.contains("ok 1.8"), "{text}");
    assert_eq!(server.count("gz1", "temp"), 300);
    let (_, first) = server.query_range("gz1", "temp", "min", base, base + 299);
    assert_eq!(first, serde_json::json!(0.0));
}

#[test]
fn a_telegraf_batch_with_a_string_field_is_written_as_influxdb_does() {
    let dir = TempDir::new("influx-partial");
    let server = Server::start("influx2", dir.path(), &[]);
    let ts = 1_760_000_000i64;
    let (ok, text) = run_python(INFLUX2_PARTIAL, &[server.port.to_string(), ts.to_string()]);
    assert!(ok, "{text}");
    assert!(text.contains("status 400"), "{text}");
    assert!(
        text.contains("line 1: column") && text.contains("\\\"governor\\\" is a string")
            || text.contains("\"governor\" is a string"),
        "{text}"
    );
    assert!(
        text.contains("0 of 3 lines not stored, 1 stored in part"),
        "{text}"
    );
    // Line 1's numeric and boolean fields, line 2 (a Telegraf line without device_id: the
    // series cpu_usage_idle{host="a"}) and line 3 are stored.
    assert_eq!(server.count("tg", "cpu_usage_idle"), 1);
    let by_host = server.post(
        "/query",
        r#"{"metric_name":"cpu_usage_idle","labels":{"host":"a"},"operation":"sum"}"#,
    );
    let by_host = by_host.json();
    assert_eq!(by_host["count"], 2, "both lines tagged host=a: {by_host}");
    assert_eq!(by_host["series"], 2, "{by_host}");
    assert_eq!(by_host["result"], 98.5 + 97.0, "{by_host}");
    assert_eq!(server.count("tg", "cpu_usage_user"), 1);
    let (_, throttled) = server.query_range("tg", "cpu_throttled", "max", ts, ts);
    assert_eq!(throttled, serde_json::json!(1.0));
    assert_eq!(server.count("tg", "mem_used_percent"), 1);
    assert_eq!(server.count("tg", "cpu_governor"), 0);
}
