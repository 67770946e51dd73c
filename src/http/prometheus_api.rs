//! Prometheus's HTTP query API over PromQL: `/api/v1/query`, `/api/v1/query_range`,
//! `/api/v1/series`, `/api/v1/labels`, `/api/v1/label/<name>/values` and
//! `/api/v1/metadata`, so Grafana's Prometheus data source and `promtool` can read MiniTrue.
//!
//! Thin by design: parameters come from the query string and, for `POST`, a form-encoded
//! body (both are read, as Prometheus does); times are RFC 3339 or unix seconds with
//! fractions, a step is a duration (`15s`, `1m30s`) or seconds. The evaluation is
//! [`crate::promql`]'s, over whatever [`Source`] the router hands in. Answers are
//! Prometheus's envelope: `{"status":"success","data":...}`, or
//! `{"status":"error","errorType":"bad_data","error":"..."}` with 400 (`bad_data`), 422
//! (`execution`) or 503 (`unavailable`). Sample values are strings (`"1.5"`, `"NaN"`,
//! `"+Inf"`), timestamps seconds as JSON numbers.

use super::Reply;
use crate::civil::parse_rfc3339_millis;
use crate::metrics::format_value;
use crate::promql::value::{Labels, Series, Value};
use crate::promql::{query, QueryError, QueryErrorKind, Source};
use crate::storage::Matcher;
use std::collections::BTreeSet;
use std::fmt::Write as _;

/// The path prefix and suffix of `/api/v1/label/<name>/values`.
const LABEL_VALUES_PREFIX: &str = "/api/v1/label/";
const LABEL_VALUES_SUFFIX: &str = "/values";

/// The router's table entry for the label values endpoint (its path has a variable part).
pub const LABEL_VALUES_ROUTE: &str = "/api/v1/label/:name/values";

/// Earliest and latest time a `start`/`end` left out stands for, in milliseconds (far
/// enough apart for any stored point, small enough that window arithmetic cannot overflow).
const MIN_TIME_MS: i64 = i64::MIN / 4;
const MAX_TIME_MS: i64 = i64::MAX / 4;

/// The endpoint-table path a request path falls under: [`LABEL_VALUES_ROUTE`] for every
/// `/api/v1/label/<name>/values`, the path itself otherwise.
pub fn route_path(path: &str) -> &str {
    match label_name_of(path) {
        Some(_) => LABEL_VALUES_ROUTE,
        None => path,
    }
}

/// The `<name>` of `/api/v1/label/<name>/values`, still percent-encoded.
fn label_name_of(path: &str) -> Option<&str> {
    let name = path
        .strip_prefix(LABEL_VALUES_PREFIX)?
        .strip_suffix(LABEL_VALUES_SUFFIX)?;
    (!name.is_empty() && !name.contains('/')).then_some(name)
}

/// Answers one Prometheus API request. `route` is the endpoint-table path, `path` the
/// request's, `query` its query string and `body` its (form-encoded) body.
pub fn answer(source: &dyn Source, route: &str, path: &str, query: &str, body: &[u8]) -> Reply {
    let result = Form::parse(query, body).and_then(|form| match route {
        "/api/v1/query" => instant_query(source, &form),
        "/api/v1/query_range" => range_query(source, &form),
        "/api/v1/series" => series(source, &form),
        "/api/v1/labels" => label_names(source, &form),
        LABEL_VALUES_ROUTE => label_values(source, path, &form),
        "/api/v1/metadata" => Ok("{}".to_string()),
        other => Err(QueryError::bad_data(format!("no such endpoint: {other}"))),
    });
    match result {
        Ok(data) => Reply::new(
            200,
            "application/json",
            format!(r#"{{"status":"success","data":{data}}}"#),
        ),
        Err(e) => error_reply(&e),
    }
}

fn error_reply(e: &QueryError) -> Reply {
    let status = match e.kind {
        QueryErrorKind::BadData => 400,
        QueryErrorKind::Execution => 422,
        QueryErrorKind::Unavailable => 503,
    };
    let body = serde_json::json!({
        "status": "error",
        "errorType": e.kind.as_str(),
        "error": e.message,
    });
    Reply::json(status, &body)
}

/// A request's parameters, query string first, then the body's.
struct Form(Vec<(String, String)>);

impl Form {
    fn parse(query: &str, body: &[u8]) -> Result<Form, QueryError> {
        let body = std::str::from_utf8(body)
            .map_err(|_| QueryError::bad_data("request body is not UTF-8 form data"))?;
        let mut pairs = Vec::new();
        for pair in query.split('&').chain(body.split('&')) {
            let pair = pair.trim_matches(['\r', '\n']);
            if pair.is_empty() {
                continue;
            }
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let decoded = super::decode(key, true).zip(super::decode(value, true));
            let (key, value) = decoded.ok_or_else(|| {
                QueryError::bad_data(format!("invalid parameter {key:?}: bad percent-encoding"))
            })?;
            pairs.push((key, value));
        }
        Ok(Form(pairs))
    }

    /// The first value of `name`, if given and not empty.
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn required(&self, name: &str) -> Result<&str, QueryError> {
        self.get(name)
            .ok_or_else(|| QueryError::bad_data(format!("invalid parameter {name:?}: missing")))
    }

    /// Time parameter `name` in milliseconds, `default` when absent.
    fn time(&self, name: &str, default: i64) -> Result<i64, QueryError> {
        self.get(name).map_or(Ok(default), |text| {
            parse_time(text)
                .map_err(|e| QueryError::bad_data(format!("invalid parameter {name:?}: {e}")))
        })
    }

    /// The `match[]` selectors, each as its matchers.
    fn selectors(&self) -> Result<Vec<Vec<Matcher>>, QueryError> {
        self.all("match[]").map(query::selector_matchers).collect()
    }
}

/// How Prometheus's Go clients (promtool) spell "no bound": Go's earliest and latest
/// times that fit in milliseconds, in RFC 3339 with years no other parser takes.
const GO_MIN_TIME: &str = "-292273086-05-16T16:47:06Z";
const GO_MAX_TIME: &str = "292277025-08-18T07:12:54.999999999Z";

/// Unix seconds with an optional fraction, or RFC 3339, to milliseconds.
pub fn parse_time(text: &str) -> Result<i64, String> {
    match text {
        GO_MIN_TIME => return Ok(MIN_TIME_MS),
        GO_MAX_TIME => return Ok(MAX_TIME_MS),
        _ => {}
    }
    if let Ok(seconds) = text.parse::<f64>() {
        let millis = (seconds * 1000.0).round();
        if !millis.is_finite() || millis < MIN_TIME_MS as f64 || millis > MAX_TIME_MS as f64 {
            return Err(format!("cannot parse {text:?} to a valid timestamp"));
        }
        return Ok(millis as i64);
    }
    parse_rfc3339_millis(text)
        .map_err(|e| format!("cannot parse {text:?} to a valid timestamp: {e}"))
}

/// A duration (`15s`, `1m30s`) or seconds with an optional fraction, to milliseconds.
pub fn parse_step(text: &str) -> Result<i64, String> {
    if let Ok(seconds) = text.parse::<f64>() {
        let millis = seconds * 1000.0;
        if !millis.is_finite() || millis.abs() > MAX_TIME_MS as f64 {
            return Err(format!("cannot parse {text:?} to a valid duration"));
        }
        return Ok(millis as i64);
    }
    let duration = promql_parser::util::parse_duration(text)
        .map_err(|e| format!("cannot parse {text:?} to a valid duration: {e}"))?;
    i64::try_from(duration.as_millis()).map_err(|_| format!("duration {text:?} is too long"))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn instant_query(source: &dyn Source, form: &Form) -> Result<String, QueryError> {
    let text = form.required("query")?;
    let time = form.time("time", now_ms())?;
    let value = query::instant(source, text, time)?;
    let mut out = String::new();
    match value {
        Value::Scalar(v) => {
            let _ = write!(
                out,
                r#"{{"resultType":"scalar","result":{}}}"#,
                point(time, v)
            );
        }
        Value::String(s) => {
            let _ = write!(
                out,
                r#"{{"resultType":"string","result":[{},{}]}}"#,
                seconds(time),
                json_string(&s)
            );
        }
        Value::Vector(samples) => {
            out.push_str(r#"{"resultType":"vector","result":["#);
            for (i, s) in samples.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let _ = write!(
                    out,
                    r#"{{"metric":{},"value":{}}}"#,
                    metric(&s.labels),
                    point(time, s.value)
                );
            }
            out.push_str("]}");
        }
        Value::Matrix(series) => out.push_str(&matrix(&series)),
    }
    Ok(out)
}

fn range_query(source: &dyn Source, form: &Form) -> Result<String, QueryError> {
    let text = form.required("query")?;
    let start = parse_time(form.required("start")?)
        .map_err(|e| QueryError::bad_data(format!("invalid parameter \"start\": {e}")))?;
    let end = parse_time(form.required("end")?)
        .map_err(|e| QueryError::bad_data(format!("invalid parameter \"end\": {e}")))?;
    let step = parse_step(form.required("step")?)
        .map_err(|e| QueryError::bad_data(format!("invalid parameter \"step\": {e}")))?;
    let series = query::range(source, text, start, end, step)?;
    Ok(matrix(&series))
}

fn series(source: &dyn Source, form: &Form) -> Result<String, QueryError> {
    let selectors = form.selectors()?;
    if selectors.is_empty() {
        return Err(QueryError::bad_data("no match[] parameter provided"));
    }
    let start = form.time("start", MIN_TIME_MS)?;
    let end = form.time("end", MAX_TIME_MS)?;
    let mut found = BTreeSet::new();
    for matchers in &selectors {
        let keys = source
            .series(matchers, start, end)
            .map_err(QueryError::unavailable)?;
        found.extend(keys.iter().map(Labels::of_series));
    }
    let items: Vec<String> = found.iter().map(metric).collect();
    Ok(format!("[{}]", items.join(",")))
}

fn label_names(source: &dyn Source, form: &Form) -> Result<String, QueryError> {
    union_over_selectors(form, |matchers, start, end| {
        source.label_names(matchers, start, end)
    })
}

fn label_values(source: &dyn Source, path: &str, form: &Form) -> Result<String, QueryError> {
    let encoded = label_name_of(path)
        .ok_or_else(|| QueryError::bad_data(format!("no label name in {path}")))?;
    let name = super::decode(encoded, false)
        .ok_or_else(|| QueryError::bad_data(format!("invalid label name {encoded:?}")))?;
    union_over_selectors(form, |matchers, start, end| {
        source.label_values(&name, matchers, start, end)
    })
}

/// The sorted union of `list`'s answers for each `match[]` (for every series without one)
/// within `start`..`end`, as a JSON list of strings.
fn union_over_selectors(
    form: &Form,
    list: impl Fn(&[Matcher], i64, i64) -> Result<Vec<String>, String>,
) -> Result<String, QueryError> {
    let start = form.time("start", MIN_TIME_MS)?;
    let end = form.time("end", MAX_TIME_MS)?;
    let mut selectors = form.selectors()?;
    if selectors.is_empty() {
        selectors.push(Vec::new());
    }
    let mut union = BTreeSet::new();
    for matchers in &selectors {
        union.extend(list(matchers, start, end).map_err(QueryError::unavailable)?);
    }
    Ok(string_list(&union))
}

/// `{"resultType":"matrix","result":[...]}`.
fn matrix(series: &[Series]) -> String {
    let mut out = String::from(r#"{"resultType":"matrix","result":["#);
    for (i, s) in series.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let points: Vec<String> = s.points.iter().map(|&(t, v)| point(t, v)).collect();
        let _ = write!(
            out,
            r#"{{"metric":{},"values":[{}]}}"#,
            metric(&s.labels),
            points.join(",")
        );
    }
    out.push_str("]}");
    out
}

/// A label set as a JSON object, `__name__` included.
fn metric(labels: &Labels) -> String {
    let pairs: Vec<String> = labels
        .pairs()
        .iter()
        .map(|(n, v)| format!("{}:{}", json_string(n), json_string(v)))
        .collect();
    format!("{{{}}}", pairs.join(","))
}

fn string_list<'a>(items: impl IntoIterator<Item = &'a String>) -> String {
    let quoted: Vec<String> = items.into_iter().map(|s| json_string(s)).collect();
    format!("[{}]", quoted.join(","))
}

fn json_string(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// `[seconds,"value"]`.
fn point(t_ms: i64, value: f64) -> String {
    format!("[{},\"{}\"]", seconds(t_ms), format_value(value))
}

/// Milliseconds as seconds the way Prometheus writes them: `1700000000.5`, `1700000000`.
fn seconds(t_ms: i64) -> String {
    let sign = if t_ms < 0 { "-" } else { "" };
    let (whole, millis) = (t_ms.unsigned_abs() / 1000, t_ms.unsigned_abs() % 1000);
    if millis == 0 {
        format!("{sign}{whole}")
    } else {
        let fraction = format!("{millis:03}");
        format!("{sign}{whole}.{}", fraction.trim_end_matches('0'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_unix_seconds_or_rfc3339() {
        assert_eq!(parse_time("1700000000.5"), Ok(1_700_000_000_500));
        assert_eq!(parse_time("2023-11-14T22:13:20Z"), Ok(1_700_000_000_000));
        assert!(parse_time("yesterday").is_err());
        assert_eq!(parse_time(GO_MIN_TIME), Ok(MIN_TIME_MS));
    }

    #[test]
    fn steps_are_durations_or_seconds() {
        assert_eq!(parse_step("15s"), Ok(15_000));
        assert_eq!(parse_step("1m30s"), Ok(90_000));
        assert_eq!(parse_step("0.5"), Ok(500));
        assert!(parse_step("soon").is_err());
    }

    #[test]
    fn values_and_timestamps_are_written_as_prometheus_writes_them() {
        assert_eq!(point(1_700_000_000_500, 1.5), r#"[1700000000.5,"1.5"]"#);
        assert_eq!(point(1_700_000_000_000, 2.0), r#"[1700000000,"2"]"#);
        assert_eq!(seconds(-1_500), "-1.5");
        assert_eq!(format_value(f64::NAN), "NaN");
        assert_eq!(format_value(f64::NEG_INFINITY), "-Inf");
        assert_eq!(format_value(1e21), "1000000000000000000000");
    }

    fn memory() -> crate::promql::source::MemorySource {
        let key = |device: &str| {
            crate::storage::SeriesKey::with_labels("t", [("device_id", device)]).expect("key")
        };
        crate::promql::source::MemorySource(vec![
            (key("a"), vec![(1_000, 1.0), (2_000, 2.5)]),
            (key("b"), vec![(1_000, 4.0)]),
        ])
    }

    fn body_of(reply: &Reply) -> serde_json::Value {
        serde_json::from_slice(&reply.body).expect("JSON answer")
    }

    #[test]
    fn range_query_answers_a_matrix_in_prometheus_shape_from_a_form_body() {
        let form = "query=t%7Bdevice_id%3D%22a%22%7D&start=1&end=2.5&step=0.5";
        let reply = answer(
            &memory(),
            "/api/v1/query_range",
            "/api/v1/query_range",
            "",
            form.as_bytes(),
        );
        assert_eq!(reply.status, 200);
        assert_eq!(
            String::from_utf8_lossy(&reply.body),
            r#"{"status":"success","data":{"resultType":"matrix","result":[{"metric":{"__name__":"t","device_id":"a"},"values":[[1,"1"],[1.5,"1"],[2,"2.5"],[2.5,"2.5"]]}]}}"#
        );
    }

    #[test]
    fn errors_carry_prometheus_error_types_and_statuses() {
        let reply = answer(
            &memory(),
            "/api/v1/query",
            "/api/v1/query",
            "query=sum(",
            &[],
        );
        assert_eq!(reply.status, 400);
        assert_eq!(body_of(&reply)["errorType"], "bad_data");
        // group_left is refused as unsupported.
        let q = "query=t%20*%20on()%20group_left%20t&time=2";
        let reply = answer(&memory(), "/api/v1/query", "/api/v1/query", q, &[]);
        assert_eq!(reply.status, 400);
        let reply = answer(&memory(), "/api/v1/series", "/api/v1/series", "", &[]);
        assert_eq!(reply.status, 400);
        assert_eq!(body_of(&reply)["error"], "no match[] parameter provided");
        // `on()` matches every series with every other: duplicates on the right.
        let q = "query=t%20%2B%20on()%20t&time=2";
        let reply = answer(&memory(), "/api/v1/query", "/api/v1/query", q, &[]);
        assert_eq!(
            reply.status,
            422,
            "{}",
            String::from_utf8_lossy(&reply.body)
        );
        assert_eq!(body_of(&reply)["errorType"], "execution");
    }

    #[test]
    fn repeated_match_parameters_are_all_read() {
        let body = "match%5B%5D=t%7Bdevice_id%3D%22a%22%7D&match[]=t{device_id=\"b\"}";
        let reply = answer(
            &memory(),
            "/api/v1/series",
            "/api/v1/series",
            "",
            body.as_bytes(),
        );
        assert_eq!(
            body_of(&reply)["data"],
            serde_json::json!([
                {"__name__": "t", "device_id": "a"},
                {"__name__": "t", "device_id": "b"}
            ])
        );
        let path = "/api/v1/label/device_id/values";
        let reply = answer(&memory(), LABEL_VALUES_ROUTE, path, "", &[]);
        assert_eq!(body_of(&reply)["data"], serde_json::json!(["a", "b"]));
    }

    #[test]
    fn the_router_serves_get_and_post_and_names_both_when_refusing() {
        use super::super::router::tests::call as routed;
        use super::super::Method;
        let t = crate::http::test_node::TestNode::new("prometheus_api_routes");
        let r = routed(
            &t.node,
            Method::Post,
            "/write?precision=ms",
            "t,device_id=d value=2 1000",
        );
        assert_eq!(r.status, 204);
        let get = routed(&t.node, Method::Get, "/api/v1/query?query=t&time=1", "");
        let post = routed(&t.node, Method::Post, "/api/v1/query", "query=t&time=1");
        assert_eq!(get.status, 200);
        assert_eq!(get.body, post.body);
        assert_eq!(body_of(&get)["data"]["result"][0]["value"][1], "2");
        let r = routed(&t.node, Method::Get, "/api/v1/label/device_id/values", "");
        assert_eq!(body_of(&r)["data"], serde_json::json!(["d"]));
        let r = routed(&t.node, Method::Put, "/api/v1/query", "");
        assert_eq!(r.status, 405);
        assert_eq!(r.header("Allow"), Some("GET, POST, OPTIONS"));
        let r = routed(&t.node, Method::Options, "/api/v1/query_range", "");
        assert_eq!(
            r.header("Access-Control-Allow-Methods"),
            Some("GET, POST, OPTIONS")
        );
        let r = routed(&t.node, Method::Post, "/api/v1/label/device_id/values", "");
        assert_eq!(r.header("Allow"), Some("GET, OPTIONS"));
    }

    #[test]
    fn label_values_paths_share_one_route() {
        assert_eq!(route_path("/api/v1/label/room/values"), LABEL_VALUES_ROUTE);
        assert_eq!(route_path("/api/v1/label//values"), "/api/v1/label//values");
        assert_eq!(route_path("/api/v1/labels"), "/api/v1/labels");
    }
}
