//! One function per endpoint: parse the request, ask the node, shape the answer. Nothing
//! here touches a socket, so every endpoint is tested by calling it.
//!
//! Times on the wire are unix seconds (possibly fractional); `0` or an absent bound is open.
//! Empty results: `avg`, `min` and `max` answer `null` (there is no such value); `count`
//! and `sum` answer `0`.

use super::errors::ApiError;
use super::json::Fields;
use super::{Reply, MAX_WRITE_BODY};
use crate::cluster::fan_out::{Forward, PEER_TIMEOUT};
use crate::cluster::handoff::InternalWrite;
use crate::cluster::membership::MemberState;
use crate::cluster::repair::{local_summary, DIGEST_BUCKET_MILLIS};
use crate::ingest::line_protocol::{parse_body, ParsedBody, Precision};
use crate::ingest::remote_write;
use crate::ingest::route::store_everywhere;
use crate::ingest::stats::{BrokerState, Source};
use crate::node::Node;
use crate::promql::query::selector_matchers;
use crate::promql::{self, ClusterSource, LocalSource};
use crate::query::combine::{
    delete_everywhere, union_of, DeleteAnswer, DeleteOutcome, FailedTarget,
};
use crate::query::coordinate::{every_member, NoOwner};
use crate::query::read::{self, AggregateRequest, ListingAnswer, SamplesRequest};
use crate::query::select::{self, SelectRequest};
use crate::storage::quarantine::Quarantined;
use crate::storage::wal::{self, WalEntry};
use crate::storage::{Point, SeriesFields, SeriesKey, TimeRange, Timestamp};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Samples `/query-samples` returns when the request names no `limit`.
pub const DEFAULT_SAMPLE_LIMIT: u64 = 10_000;

/// Largest `limit` `/query-samples` accepts.
pub const MAX_SAMPLE_LIMIT: u64 = 1_000_000;

type Answer = Result<Reply, ApiError>;

/// `POST /query`: one aggregate over every series the request selects (its `device_id`,
/// `metric_name` and `labels`; series with more labels too, see [`read::selected_series`]) and a
/// range, optionally also per `step`. Coordinated unless `?local=1`: every reachable member
/// is asked for its copy of each selected series (a labelled series may live on any node),
/// the fullest copy of each is kept, and they are merged. 503 when no owner of the series
/// the request names answers, as for a single series before labels.
pub fn query(node: &Node, query: &str, body: &[u8]) -> Answer {
    let started = Instant::now();
    let request = aggregate_request(&Fields::parse(body)?)?;
    if answers_locally(node, query)? {
        let answer = read::aggregate(&node.engine, &node.config.node_id, &request, started)?;
        return Ok(Reply::json(200, &answer));
    }
    let local = || {
        read::series_partials(&node.engine, &node.config.node_id, &request)
            .map_err(|e| ApiError::from(e).message)
    };
    let outcome = match every_member(
        &node.cluster,
        node.trust.link(),
        Some(&request.key),
        "/internal/series-aggregate",
        body,
        &local,
    ) {
        Ok(outcome) => outcome,
        Err(unavailable) => return Ok(no_owner(unavailable)),
    };
    let answer = read::aggregate_answer(
        &request,
        &outcome.copies,
        &node.config.node_id,
        read::elapsed_ns(started),
    );
    let mut reply = serde_json::to_value(&answer)
        .map_err(|e| ApiError::new(500, format!("encode answer: {e}")))?;
    outcome.annotate(&mut reply);
    Ok(Reply::json(200, &reply))
}

/// `POST /internal/series-aggregate`: this node's copy of each series a `/query` body
/// selects, per series, for a coordinator to merge ([`read::SeriesPartials`]).
pub fn internal_series_aggregate(node: &Node, body: &[u8]) -> Answer {
    let request = aggregate_request(&Fields::parse(body)?)?;
    let partials = read::series_partials(&node.engine, &node.config.node_id, &request)?;
    Ok(Reply::json(200, &partials))
}

fn aggregate_request(fields: &Fields) -> Result<AggregateRequest, ApiError> {
    let step = match fields.optional_f64("step")? {
        None => None,
        Some(s) if s > 0.0 => Some(
            Duration::try_from_secs_f64(s)
                .map_err(|_| ApiError::bad_request("invalid step: out of range"))?,
        ),
        Some(_) => return Err(ApiError::bad_request("invalid step: must be > 0 seconds")),
    };
    // Checked here, not only by the store, so a request selecting no series is refused too.
    if step.is_some_and(|s| s < Duration::from_millis(1)) {
        return Err(ApiError::bad_request("invalid step: must be at least 1 ms"));
    }
    Ok(AggregateRequest {
        key: fields.series()?,
        op: fields.operation()?,
        range: fields.time_range()?,
        step,
        group_by: fields.group_by()?,
    })
}

/// `POST /query-samples`: raw points, oldest first, at most `limit`, of every series the
/// request selects (as `/query` selects them), merged; with several series, each one's
/// points also in `results`. Coordinated through `/internal/select` to every member.
/// `?local=1` answers this node's copy of exactly the named series (the form repair reads
/// a replica with, so a copy never takes in another series' points).
pub fn query_samples(node: &Node, query: &str, body: &[u8]) -> Answer {
    let request = samples_request(&Fields::parse(body)?)?;
    if super::query_param(query, "local")?.as_deref() == Some("1") {
        return Ok(Reply::json(
            200,
            &read::samples(&node.engine, &node.config.node_id, &request)?,
        ));
    }
    let select = SelectRequest::covering(&request.key, request.range, request.limit)?;
    let local = || {
        select::select(&node.engine, &node.config.node_id, &select)
            .map_err(|e| ApiError::from(e).message)
    };
    if node.cluster.is_single() {
        let copies = local().map_err(|e| ApiError::new(500, e))?.series;
        let answer = select::samples_answer(&request, &copies, &node.config.node_id);
        return Ok(Reply::json(200, &answer));
    }
    let wire = select.to_body()?;
    let outcome = match every_member(
        &node.cluster,
        node.trust.link(),
        Some(&request.key),
        "/internal/select",
        &wire,
        &local,
    ) {
        Ok(outcome) => outcome,
        Err(unavailable) => return Ok(no_owner(unavailable)),
    };
    let answer = select::samples_answer(&request, &outcome.copies, &node.config.node_id);
    let mut reply = serde_json::to_value(&answer)
        .map_err(|e| ApiError::new(500, format!("encode answer: {e}")))?;
    outcome.annotate(&mut reply);
    Ok(Reply::json(200, &reply))
}

/// `POST /internal/select`: this node's copy of every series a selector picks, with its
/// points in a range ([`select::SelectedSeries`]), for a coordinator to merge.
pub fn internal_select(node: &Node, body: &[u8]) -> Answer {
    let request = SelectRequest::from_body(body)?;
    let answer = select::select(&node.engine, &node.config.node_id, &request)?;
    Ok(Reply::json(200, &answer))
}

fn samples_request(fields: &Fields) -> Result<SamplesRequest, ApiError> {
    if fields.optional_str("operation")?.is_some() {
        fields.operation()?;
    }
    let limit = fields
        .optional_u64("limit")?
        .unwrap_or(DEFAULT_SAMPLE_LIMIT);
    if !(1..=MAX_SAMPLE_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "invalid limit: must be between 1 and {MAX_SAMPLE_LIMIT}"
        )));
    }
    Ok(SamplesRequest {
        key: fields.series()?,
        range: fields.time_range()?,
        // At most MAX_SAMPLE_LIMIT, which fits every usize.
        limit: limit as usize,
    })
}

/// `POST /query-aggregated`: this node's partial statistics, for a coordinator to merge.
pub fn query_aggregated(node: &Node, body: &[u8]) -> Answer {
    let fields = Fields::parse(body)?;
    let key = fields.series()?;
    if fields.optional_str("operation")?.is_some() {
        fields.operation()?;
    }
    let range = fields.time_range()?;
    let answer = read::partial(&node.engine, &node.config.node_id, &key, range)?;
    Ok(Reply::json(200, &answer))
}

/// Most series one `/delete` may remove.
pub const MAX_DELETE_SERIES: usize = 10_000;

/// `POST /delete`: removes every point of every series the request selects (as `/query`
/// selects them: the named series and those with more labels), durably. Coordinated: the
/// selected series are found on every member (`/internal/select`), then each is deleted on
/// every reachable member, since a former owner may still hold a copy; 503 naming them if
/// any owner could not confirm. `?local=1` deletes exactly the named series on this node.
pub fn delete(node: &Node, query: &str, body: &[u8]) -> Answer {
    let key = Fields::parse(body)?.series()?;
    let delete_here = |key: &SeriesKey| -> Result<DeleteAnswer, ApiError> {
        let deleted = {
            let _gate = node.tombstones.delete_gate();
            let deleted = node.engine.delete_series(key)?;
            node.tombstones.record(key, now().0)?;
            deleted
        };
        Ok(DeleteAnswer {
            deleted,
            device_id: key.device_id().to_string(),
            metric_name: key.metric_name().to_string(),
            labels: key.extra_label_map(),
            node: node.config.node_id.clone(),
        })
    };
    if super::query_param(query, "local")?.as_deref() == Some("1") {
        return Ok(Reply::json(200, &delete_here(&key)?));
    }
    // The named series always, so a copy only a dead member holds gets its tombstone.
    let mut keys = vec![key.clone()];
    let mut found_partial = None;
    if node.cluster.is_single() {
        keys.extend(read::selected_series(&node.engine, &key)?);
    } else {
        let select = SelectRequest::covering(&key, TimeRange::ALL, 0)?;
        let local = || {
            select::select(&node.engine, &node.config.node_id, &select)
                .map_err(|e| ApiError::from(e).message)
        };
        let found = match every_member(
            &node.cluster,
            node.trust.link(),
            Some(&key),
            "/internal/select",
            &select.to_body()?,
            &local,
        ) {
            Ok(found) => found,
            Err(unavailable) => return Ok(no_owner(unavailable)),
        };
        for copy in &found.copies {
            keys.push(copy.series.key()?);
        }
        if found.partial {
            found_partial = Some(found.failed);
        }
    }
    keys.sort();
    keys.dedup();
    if keys.len() > MAX_DELETE_SERIES {
        return Err(ApiError::bad_request(format!(
            "the request selects {} series; one delete removes at most {MAX_DELETE_SERIES}: \
             name more labels",
            keys.len()
        )));
    }
    let mut deleted_series = Vec::new();
    let mut confirmed_by: Vec<String> = Vec::new();
    let mut unconfirmed: Vec<String> = Vec::new();
    let mut failed: Vec<FailedTarget> = Vec::new();
    for key in &keys {
        let outcome = if node.cluster.is_single() {
            let answer = delete_here(key)?;
            DeleteOutcome {
                deleted: answer.deleted,
                confirmed: vec![answer.node],
                unconfirmed: Vec::new(),
                failed: Vec::new(),
            }
        } else {
            let series = SeriesFields::from(key);
            let body = serde_json::json!({
                "device_id": series.device_id,
                "metric_name": series.metric_name,
                "labels": series.labels,
            })
            .to_string();
            delete_everywhere(
                &node.cluster.owners(key),
                &node.cluster.reachable_members(),
                forward(node, "POST", "/delete?local=1", body.as_bytes()),
                &|| delete_here(key).map_err(|e| e.message),
            )
        };
        if outcome.deleted {
            deleted_series.push(SeriesFields::from(key));
        }
        for member in outcome.confirmed {
            if !confirmed_by.contains(&member) {
                confirmed_by.push(member);
            }
        }
        if !outcome.unconfirmed.is_empty() {
            unconfirmed.push(format!("{key} (owners {})", outcome.unconfirmed.join(", ")));
        }
        for failure in outcome.failed {
            if !failed.iter().any(|f| f.node == failure.node) {
                failed.push(failure);
            }
        }
    }
    let mut answer = serde_json::json!({
        "deleted": !deleted_series.is_empty(),
        "device_id": key.device_id(),
        "metric_name": key.metric_name(),
        "node": node.config.node_id,
        "confirmed_by": confirmed_by,
        "series": deleted_series.len(),
        "deleted_series": deleted_series,
    });
    if !key.extra_label_map().is_empty() {
        answer["labels"] = serde_json::json!(key.extra_label_map());
    }
    if let Some(unreachable) = found_partial {
        answer["error"] = "members unreachable: a series only they hold may not be deleted; \
                           retry (deletes are idempotent)"
            .into();
        answer["failed"] = serde_json::json!(unreachable);
        return Ok(Reply::json(503, &answer));
    }
    if unconfirmed.is_empty() {
        return Ok(Reply::json(200, &answer));
    }
    answer["error"] = format!(
        "delete not confirmed for {}; retry (deletes are idempotent)",
        unconfirmed.join("; ")
    )
    .into();
    answer["failed"] = serde_json::json!(failed);
    Ok(Reply::json(503, &answer))
}

/// `GET /devices`: every device with data, sorted (the union over reachable members unless
/// `?local=1`).
pub fn devices(node: &Node, query: &str) -> Answer {
    let local = || read::devices(&node.engine, &node.config.node_id);
    if answers_locally(node, query)? {
        return Ok(Reply::json(200, &local()));
    }
    listing(node, "/devices?local=1", &|| Ok(local()))
}

/// `GET /metrics[?device_id=X]`: every metric (of one device), sorted.
pub fn metrics(node: &Node, query: &str) -> Answer {
    let device = super::query_param(query, "device_id")?;
    let local = || read::metrics(&node.engine, &node.config.node_id, device.as_deref());
    if answers_locally(node, query)? {
        return Ok(Reply::json(200, &local()));
    }
    let path = match &device {
        Some(d) => format!("/metrics?local=1&device_id={}", percent_encode(d)),
        None => "/metrics?local=1".to_string(),
    };
    listing(node, &path, &|| Ok(local()))
}

/// Series `GET /series` lists when the request names no `limit`.
pub const DEFAULT_SERIES_LIMIT: u64 = 1_000;

/// Largest `limit` `GET /series` accepts.
pub const MAX_SERIES_LIMIT: u64 = 100_000;

/// `GET /series?match=<selector>&limit=&start_time=&end_time=`: the series (with their
/// labels) that hold points, selected by one or more Prometheus series selectors
/// (`temperature{room=~"lab|hall"}`, repeated `match` for a union; none for every series),
/// sorted by device, metric, then labels; at most `limit`, `truncated` saying whether
/// there were more. Answered for the whole cluster, each series once.
pub fn series_listing(node: &Node, query: &str) -> Answer {
    let mut selectors = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if !matches!(
            super::decode(key, true).as_deref(),
            Some("match" | "match[]")
        ) {
            continue;
        }
        let text = super::decode(value, true)
            .ok_or_else(|| ApiError::bad_request("invalid match: bad percent-encoding"))?;
        let matchers = selector_matchers(&text).map_err(|e| {
            ApiError::bad_request(format!(
                "invalid match: {}",
                e.message
                    .trim_start_matches("invalid parameter \"match[]\": ")
            ))
        })?;
        selectors.push(matchers);
    }
    if selectors.is_empty() {
        selectors.push(Vec::new());
    }
    let limit = match super::query_param(query, "limit")? {
        None => DEFAULT_SERIES_LIMIT,
        Some(text) => text
            .parse::<u64>()
            .ok()
            .filter(|l| (1..=MAX_SERIES_LIMIT).contains(l))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "invalid limit: must be a whole number between 1 and {MAX_SERIES_LIMIT}"
                ))
            })?,
    };
    let bound = |name: &str, open: i64| -> Result<i64, ApiError> {
        match super::query_param(query, name)? {
            None => Ok(open),
            Some(text) => text
                .parse::<f64>()
                .ok()
                .and_then(|s| Timestamp::from_unix_seconds(s).ok())
                .map(|t| t.0)
                .ok_or_else(|| {
                    ApiError::bad_request(format!("invalid {name}: must be unix seconds"))
                }),
        }
    };
    let (start_ms, end_ms) = (
        bound("start_time", 0)?,
        bound("end_time", Timestamp::LATEST.0)?,
    );
    if start_ms > end_ms {
        return Err(ApiError::bad_request("start_time must be <= end_time"));
    }
    let source = promql_source(node);
    let mut found = std::collections::BTreeSet::new();
    for matchers in &selectors {
        let keys = source
            .series(matchers, start_ms, end_ms)
            .map_err(|e| ApiError::new(503, e))?;
        found.extend(keys);
    }
    let total = found.len();
    let series: Vec<SeriesFields> = found
        .iter()
        .take(limit as usize)
        .map(SeriesFields::from)
        .collect();
    Ok(Reply::json(
        200,
        &serde_json::json!({
            "count": series.len(),
            "truncated": total > series.len(),
            "series": series,
            "node": node.config.node_id,
        }),
    ))
}

/// Where the Prometheus API and the series listing read: this node's own store when it is
/// alone, else every member (the fullest copy of each series).
pub fn promql_source(node: &Node) -> Box<dyn promql::Source + '_> {
    if node.cluster.is_single() {
        Box::new(LocalSource::new(&node.engine))
    } else {
        Box::new(ClusterSource::new(
            &node.engine,
            &node.config.node_id,
            &node.cluster,
            node.trust.link(),
        ))
    }
}

/// `GET /debug/metrics`: this node's metrics in the Prometheus text format, for Prometheus
/// (or vmagent, Telegraf's prometheus input) to scrape. Names start with `minitrue_`;
/// counters end in `_total`, latencies are histograms in seconds.
pub fn debug_metrics(node: &Node) -> Answer {
    use crate::metrics::{Exposition, Kind};
    let mut e = Exposition::default();
    let stats = node.engine.stats();
    e.family(
        "minitrue_ingest_accepted_total",
        Kind::Counter,
        "Readings accepted, by where they came in.",
    );
    for source in Source::ALL {
        e.sample(
            "minitrue_ingest_accepted_total",
            &[("source", source.as_str())],
            node.ingest.accepted_from(source) as f64,
        );
    }
    e.family(
        "minitrue_ingest_rejected_total",
        Kind::Counter,
        "MQTT payloads rejected, and remote-write samples not stored, by reason.",
    );
    for (reason, n) in node.ingest.rejected() {
        e.sample(
            "minitrue_ingest_rejected_total",
            &[("reason", reason)],
            n as f64,
        );
    }
    e.family(
        "minitrue_write_lines_not_stored_total",
        Kind::Counter,
        "Line protocol lines a write did not store, or stored only in part.",
    )
    .sample(
        "minitrue_write_lines_not_stored_total",
        &[],
        node.ingest.lines_not_stored() as f64,
    );
    e.family(
        "minitrue_remote_write_stale_markers_total",
        Kind::Counter,
        "Prometheus stale markers a remote write skipped (they are not readings).",
    )
    .sample(
        "minitrue_remote_write_stale_markers_total",
        &[],
        node.ingest.stale_markers() as f64,
    );
    e.family(
        "minitrue_wal_fsync_seconds",
        Kind::Histogram,
        "Write-ahead log group-commit fsyncs.",
    )
    .histogram(
        "minitrue_wal_fsync_seconds",
        &[],
        node.engine.wal_sync_latency(),
    );
    e.family(
        "minitrue_http_request_seconds",
        Kind::Histogram,
        "Time to answer an HTTP request, by endpoint (other: the dashboard, unknown paths).",
    );
    for (endpoint, histogram) in node.request_latency.by_endpoint() {
        e.histogram(
            "minitrue_http_request_seconds",
            &[("endpoint", endpoint)],
            histogram,
        );
    }
    let gauges: [(&str, &str, f64); 7] = [
        (
            "minitrue_series",
            "Series held by this node.",
            stats.series as f64,
        ),
        (
            "minitrue_points",
            "Points held by this node.",
            stats.points as f64,
        ),
        (
            "minitrue_memory_bytes",
            "Bytes of series data in memory.",
            stats.memory_bytes as f64,
        ),
        (
            "minitrue_disk_bytes",
            "Bytes of segments and WAL on disk.",
            stats.disk_bytes as f64,
        ),
        (
            "minitrue_wal_bytes",
            "Bytes of write-ahead log on disk.",
            stats.wal_bytes as f64,
        ),
        (
            "minitrue_segments",
            "Segment files on disk.",
            stats.segments as f64,
        ),
        (
            "minitrue_write_failing",
            "1 while writes fail (the write-ahead log cannot write), else 0.",
            f64::from(u8::from(node.engine.write_failure().is_some())),
        ),
    ];
    for (name, help, value) in gauges {
        e.family(name, Kind::Gauge, help).sample(name, &[], value);
    }
    e.family(
        "minitrue_points_written_total",
        Kind::Counter,
        "Points this node's store has written since start.",
    )
    .sample(
        "minitrue_points_written_total",
        &[],
        stats.points_written as f64,
    );
    e.family(
        "minitrue_members",
        Kind::Gauge,
        "Cluster members this node knows, by state (itself included).",
    );
    let membership = node.cluster.membership();
    for state in [
        MemberState::Alive,
        MemberState::Suspect,
        MemberState::Dead,
        MemberState::Left,
    ] {
        let n = membership.members().filter(|m| m.state == state).count();
        e.sample("minitrue_members", &[("state", state.as_str())], n as f64);
    }
    e.family(
        "minitrue_hints_pending",
        Kind::Gauge,
        "Readings kept here for owners that are down, by owner.",
    );
    for (owner, n) in node.hints.pending() {
        e.sample("minitrue_hints_pending", &[("owner", &owner)], n as f64);
    }
    let repair = &node.repair;
    let load =
        |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed) as f64;
    let counters: [(&str, &str, f64); 5] = [
        (
            "minitrue_repair_rounds_total",
            "Anti-entropy repair rounds run.",
            load(&repair.rounds),
        ),
        (
            "minitrue_repair_points_pulled_total",
            "Points repair pulled from peers.",
            load(&repair.points_pulled),
        ),
        (
            "minitrue_repair_points_handed_over_total",
            "Points repair handed to new owners.",
            load(&repair.points_handed_over),
        ),
        (
            "minitrue_repair_tombstones_learned_total",
            "Deletes repair learned from peers.",
            load(&repair.tombstones_learned),
        ),
        (
            "minitrue_repair_peer_failures_total",
            "Peers a repair round could not reach or read.",
            load(&repair.peer_failures),
        ),
    ];
    for (name, help, value) in counters {
        e.family(name, Kind::Counter, help).sample(name, &[], value);
    }
    let broker = match node.ingest.broker() {
        BrokerState::Disabled => "disabled",
        BrokerState::Connecting => "connecting",
        BrokerState::Connected => "connected",
        BrokerState::Disconnected(_) => "disconnected",
    };
    e.family(
        "minitrue_broker_state",
        Kind::Gauge,
        "1 for the MQTT connection's current state.",
    );
    for state in ["disabled", "connecting", "connected", "disconnected"] {
        e.sample(
            "minitrue_broker_state",
            &[("state", state)],
            f64::from(u8::from(state == broker)),
        );
    }
    Ok(Reply::new(
        200,
        "text/plain; version=0.0.4; charset=utf-8",
        e.finish(),
    ))
}

/// `GET /api/v1/status/buildinfo`: Prometheus's build information, which Grafana asks for
/// to tell what kind of server it talks to.
pub fn buildinfo() -> Answer {
    Ok(Reply::json(
        200,
        &serde_json::json!({
            "status": "success",
            "data": {
                "version": env!("CARGO_PKG_VERSION"),
                "revision": "",
                "branch": "",
                "buildUser": "",
                "buildDate": "",
                "goVersion": "",
                "application": "minitrue",
            }
        }),
    ))
}

/// `GET /health`: cheap liveness, in the shape of InfluxDB 2's health check (so
/// influxdb-client's `health()` understands it) plus this node's id: 200 `"status":
/// "pass"`, or 503 `"status": "fail"` with the reason while writes fail (the write-ahead
/// log cannot write, e.g. a full disk).
pub fn health(node: &Node) -> Answer {
    #[derive(Serialize)]
    struct Health<'a> {
        name: &'static str,
        status: &'static str,
        message: String,
        checks: [(); 0],
        version: &'static str,
        commit: &'static str,
        node_id: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    }
    let reason = node.engine.write_failure();
    let (code, status, message) = match &reason {
        None => (200, "pass", "ready for queries and writes".to_string()),
        Some(why) => (503, "fail", format!("writes fail: {why}")),
    };
    Ok(Reply::json(
        code,
        &Health {
            name: "minitrue",
            status,
            message,
            checks: [],
            version: env!("CARGO_PKG_VERSION"),
            commit: "",
            node_id: &node.config.node_id,
            reason,
        },
    ))
}

#[derive(Serialize)]
struct StatusAnswer<'a> {
    node_id: &'a str,
    mode: &'static str,
    uptime_seconds: f64,
    broker: &'static str,
    broker_error: Option<String>,
    broker_url: &'a str,
    points: u64,
    series: usize,
    segments: usize,
    disk_bytes: u64,
    wal_bytes: u64,
    memory_bytes: u64,
    points_written: u64,
    /// Why writes fail, while they do (`null` when they work).
    write_error: Option<String>,
    /// Files set aside because they failed their checks, with the reason.
    quarantined: &'a [Quarantined],
    /// The old store set aside at this start (down past the tombstone grace), or `null`.
    stale_data_set_aside: Option<&'a crate::cluster::stale::StaleData>,
    ingest_accepted: u64,
    /// Accepted readings per second, averaged over the node's uptime.
    ingest_rate: f64,
    websocket_clients: usize,
    rejected: BTreeMap<&'static str, u64>,
    /// Every member as this node sees it, itself included.
    members: Vec<MemberAnswer>,
    /// Fraction of the hash space each ring member is primary for.
    ring_share: BTreeMap<String, f64>,
    replication: usize,
    /// Readings this node keeps for owners that are down, by owner.
    hints_pending: BTreeMap<String, u64>,
    auth: AuthAnswer,
    /// Whether peers must sign with the cluster secret, and what was refused for not doing so.
    cluster_auth: ClusterAuthAnswer,
    /// The connection layer: open connections, the cap, and what was refused or closed.
    http: &'a crate::http::listener::HttpStats,
}

#[derive(Serialize)]
struct ClusterAuthAnswer {
    secret: bool,
    /// Whether calls to peers use HTTPS (`--tls_ca`).
    peer_tls: bool,
    /// Gossip frames refused: unsigned, bad MAC, stale, replayed or malformed.
    refused_frames: u64,
    /// `/internal/*` requests refused for a missing, stale or bad signature.
    refused_requests: u64,
}

/// Whether the node asks credentials: `{"enabled": false}` means anyone may write.
#[derive(Serialize)]
struct AuthAnswer {
    enabled: bool,
    tokens: usize,
}

#[derive(Serialize)]
struct MemberAnswer {
    id: String,
    http_addr: String,
    gossip_addr: String,
    state: MemberState,
    /// Milliseconds since this node last heard news of the member.
    last_heard_ms: u64,
}

/// `GET /status`: what the node holds, how ingestion goes and how it sees the cluster.
pub fn status(node: &Node) -> Answer {
    let stats = node.engine.stats();
    let uptime = node.started.elapsed().as_secs_f64();
    let accepted = node
        .ingest
        .accepted
        .load(std::sync::atomic::Ordering::Relaxed);
    let membership = node.cluster.membership();
    let heard_now = Instant::now();
    let members = membership
        .members()
        .map(|m| MemberAnswer {
            id: m.id.clone(),
            http_addr: m.http_addr.clone(),
            gossip_addr: m.gossip_addr.clone(),
            state: m.state,
            last_heard_ms: heard_now
                .saturating_duration_since(m.last_heard)
                .as_millis() as u64,
        })
        .collect();
    let (broker, broker_error) = match node.ingest.broker() {
        BrokerState::Disabled => ("disabled", None),
        BrokerState::Connecting => ("connecting", None),
        BrokerState::Connected => ("connected", None),
        BrokerState::Disconnected(e) => ("disconnected", Some(e)),
    };
    Ok(Reply::json(
        200,
        &StatusAnswer {
            node_id: &node.config.node_id,
            mode: node.config.mode.as_str(),
            uptime_seconds: uptime,
            broker,
            broker_error,
            broker_url: &node.config.broker,
            points: stats.points,
            series: stats.series,
            segments: stats.segments,
            disk_bytes: stats.disk_bytes,
            wal_bytes: stats.wal_bytes,
            memory_bytes: stats.memory_bytes,
            points_written: stats.points_written,
            write_error: node.engine.write_failure(),
            quarantined: node.engine.quarantined(),
            stale_data_set_aside: node.stale_data.as_ref(),
            ingest_accepted: accepted,
            ingest_rate: if uptime > 0.0 {
                accepted as f64 / uptime
            } else {
                0.0
            },
            websocket_clients: node.hub.stats().connected_clients,
            rejected: node.ingest.rejected().into_iter().collect(),
            members,
            ring_share: node.cluster.ring().primary_share(),
            replication: node.cluster.replication(),
            hints_pending: node.hints.pending(),
            auth: AuthAnswer {
                enabled: node.tokens.is_some(),
                tokens: node.tokens.as_ref().map_or(0, |t| t.len()),
            },
            cluster_auth: ClusterAuthAnswer {
                secret: node.trust.secret().is_some(),
                peer_tls: node.trust.peer_tls(),
                refused_frames: node.trust.refused_frames(),
                refused_requests: node.trust.refused_requests(),
            },
            http: &node.http,
        },
    ))
}

/// Most dropped lines a partial-write answer names one by one (it counts the rest).
pub const MAX_NAMED_PROBLEMS: usize = 10;

/// `POST /write` (and `/api/v2/write`): InfluxDB line protocol, plain or gzip
/// (`Content-Encoding`); 204 once durable. As InfluxDB does, the good lines of a batch are
/// stored even when others are not, and the answer is then a partial-write 400 naming the
/// lines not stored (or stored only in part) and counting what was written. `db`, `rp`,
/// `org` and `bucket` are accepted and ignored: a node holds one database.
pub fn write(node: &Node, query: &str, content_encoding: Option<&str>, body: &[u8]) -> Answer {
    let precision = match super::query_param(query, "precision")? {
        None => Precision::default(),
        Some(p) => Precision::parse(&p)?,
    };
    let body = decode_body(content_encoding, body)?;
    let text = std::str::from_utf8(&body)
        .map_err(|e| ApiError::bad_request(format!("invalid body: not UTF-8 ({e})")))?;
    let parsed = parse_body(text, precision, now(), node.config.max_future);
    if !parsed.points.is_empty() {
        store_everywhere(node, &parsed.points)?;
        node.hub.publish(&parsed.points);
        node.ingest
            .count_accepted(Source::Http, parsed.points.len() as u64);
    }
    if parsed.problems.is_empty() {
        return Ok(Reply::new(204, "text/plain", Vec::new()));
    }
    node.ingest
        .count_lines_not_stored(parsed.problems.len() as u64);
    Ok(partial_write(&parsed))
}

/// `POST /api/v1/write`: Prometheus remote write 1.0 (snappy protobuf, see
/// [`mod@remote_write`]); 204 once durable, as `/write`. The good series are stored even when
/// others are refused, and the answer is then 400 naming the refused series: Prometheus does
/// not retry a 4xx, and resending would not fix the data. 415 for remote write 2.0 or
/// another encoding; 5xx only when storing failed, so the sender retries.
pub fn remote_write(
    node: &Node,
    content_type: Option<&str>,
    content_encoding: Option<&str>,
    body: &[u8],
) -> Answer {
    if let Some(why) = remote_write::unsupported(content_type, content_encoding) {
        return Err(ApiError::new(415, why));
    }
    let request = remote_write::decode_body(body)?;
    let decoded = remote_write::to_points(&request, now(), node.config.max_future);
    if !decoded.points.is_empty() {
        store_everywhere(node, &decoded.points)?;
        node.hub.publish(&decoded.points);
    }
    decoded.count_in(&node.ingest);
    match decoded.refusal() {
        None => Ok(Reply::new(204, "text/plain", Vec::new())),
        Some(message) => Ok(Reply::error(400, &message)),
    }
}

/// InfluxDB's partial-write answer: 400, the lines not stored named (the first
/// [`MAX_NAMED_PROBLEMS`]), with `error` for 1.x clients and `code`/`message` for 2.x.
fn partial_write(parsed: &ParsedBody) -> Reply {
    let dropped = parsed.problems.iter().filter(|p| p.stored == 0).count();
    let partly = parsed.problems.len() - dropped;
    let mut reasons: Vec<String> = parsed
        .problems
        .iter()
        .take(MAX_NAMED_PROBLEMS)
        .map(|p| {
            p.error
                .to_string()
                .trim_start_matches("invalid ")
                .to_string()
        })
        .collect();
    if parsed.problems.len() > MAX_NAMED_PROBLEMS {
        reasons.push(format!(
            "and {} more",
            parsed.problems.len() - MAX_NAMED_PROBLEMS
        ));
    }
    let message = format!(
        "partial write: {dropped} of {} lines not stored, {partly} stored in part, {} points \
         written: {}",
        parsed.lines,
        parsed.points.len(),
        reasons.join("; ")
    );
    #[derive(Serialize)]
    struct PartialWrite<'a> {
        error: &'a str,
        code: &'static str,
        message: &'a str,
        points_written: usize,
        lines_not_stored: Vec<usize>,
    }
    Reply::json(
        400,
        &PartialWrite {
            error: &message,
            code: "invalid",
            message: &message,
            points_written: parsed.points.len(),
            lines_not_stored: parsed.problems.iter().map(|p| p.line).collect(),
        },
    )
}

/// The request body as sent before its `Content-Encoding`: identity or gzip, at most
/// [`MAX_WRITE_BODY`] bytes decoded (413 beyond, so a small bomb cannot fill memory); any
/// other encoding is 415.
fn decode_body<'b>(
    content_encoding: Option<&str>,
    body: &'b [u8],
) -> Result<std::borrow::Cow<'b, [u8]>, ApiError> {
    use std::io::Read;
    let encoding = content_encoding.map(str::trim).unwrap_or("identity");
    if encoding.is_empty() || encoding.eq_ignore_ascii_case("identity") {
        return Ok(std::borrow::Cow::Borrowed(body));
    }
    if !encoding.eq_ignore_ascii_case("gzip") && !encoding.eq_ignore_ascii_case("x-gzip") {
        return Err(ApiError::new(
            415,
            format!("invalid Content-Encoding {encoding:?}: send identity or gzip"),
        ));
    }
    let mut decoded = Vec::new();
    flate2::read::MultiGzDecoder::new(body)
        .take(MAX_WRITE_BODY as u64 + 1)
        .read_to_end(&mut decoded)
        .map_err(|e| ApiError::bad_request(format!("invalid body: not valid gzip ({e})")))?;
    if decoded.len() > MAX_WRITE_BODY {
        return Err(ApiError::new(
            413,
            format!("invalid body: more than {MAX_WRITE_BODY} bytes once decompressed"),
        ));
    }
    Ok(std::borrow::Cow::Owned(decoded))
}

/// `GET`/`HEAD /ping`: 204 with the headers InfluxDB clients look for, so their `ping()`
/// succeeds. Open, like `/health`.
pub fn ping() -> Answer {
    Ok(Reply::new(204, "text/plain", Vec::new())
        .with_header("X-Influxdb-Version", INFLUXDB_COMPATIBLE_VERSION)
        .with_header(
            "X-Influxdb-Build",
            format!("MiniTrue {}", env!("CARGO_PKG_VERSION")),
        ))
}

/// The InfluxDB version whose write API MiniTrue speaks, as `/ping` reports it: 1.8 is the
/// first with both the 1.x `/write` and the 2.x `/api/v2/write`, which is what clients
/// check before using either.
pub const INFLUXDB_COMPATIBLE_VERSION: &str = "1.8.10";

/// `POST /internal/write`: points a peer routes to this node (as an owner or by handoff),
/// stored here only; 204 once durable.
pub fn internal_write(node: &Node, query: &str, body: &[u8]) -> Answer {
    let mut points = match super::query_param(query, "format")?.as_deref() {
        // A WAL record, as `handoff::send_points` sends (keys checked when decoded).
        Some("wal") => batch_points(body)?,
        None | Some("json") => {
            let request: InternalWrite = serde_json::from_slice(body)
                .map_err(|e| ApiError::bad_request(format!("invalid body: {e}")))?;
            request.into_points()?
        }
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "invalid format {other:?}: wal or json"
            )))
        }
    };
    // A hint or hand-over of a series deleted since must not bring it back.
    let _gate = node.tombstones.write_gate();
    node.tombstones.drop_shadowed(&mut points);
    node.engine.write(&points)?;
    Ok(Reply::new(204, "text/plain", Vec::new()))
}

/// The points of an internal write in WAL-record form, each timestamp checked as a JSON
/// write's are; a delete does not travel this way.
fn batch_points(body: &[u8]) -> Result<Vec<Point>, ApiError> {
    let entries = wal::decode_batch(body)
        .map_err(|why| ApiError::bad_request(format!("invalid batch: {why}")))?;
    let mut points = Vec::new();
    for entry in entries {
        let WalEntry::Points { series, points: of } = entry else {
            return Err(ApiError::bad_request(
                "invalid batch: a delete entry in a write",
            ));
        };
        for (ts, value) in of {
            if let Some(why) = Timestamp::calendar_error(ts.0) {
                return Err(ApiError::bad_request(format!(
                    "invalid batch: {series}: {why}"
                )));
            }
            points.push(Point {
                series: series.clone(),
                timestamp: ts,
                value,
            });
        }
    }
    Ok(points)
}

/// `GET /internal/summary`: every local series with count and hash, and the tombstones
/// (what repair compares).
pub fn internal_summary(node: &Node) -> Answer {
    Ok(Reply::json(200, &local_summary(node)?))
}

/// `POST /internal/digest`: per-hour digests of one local series.
pub fn internal_digest(node: &Node, body: &[u8]) -> Answer {
    let fields = Fields::parse(body)?;
    let key = fields.series()?;
    let buckets = node.engine.digest(&key, DIGEST_BUCKET_MILLIS)?;
    Ok(Reply::json(200, &serde_json::json!({ "buckets": buckets })))
}

/// `GET /ws/stats`: the live hub's metadata.
pub fn ws_stats(node: &Node) -> Answer {
    Ok(Reply::json(200, &node.hub.stats()))
}

/// True when this request is answered from this node's store alone: a coordinator's
/// forwarded request (`?local=1`), or a node that knows no peers.
fn answers_locally(node: &Node, query: &str) -> Result<bool, ApiError> {
    Ok(super::query_param(query, "local")?.as_deref() == Some("1") || node.cluster.is_single())
}

/// The same request to every peer, signed when the cluster has a secret.
fn forward<'a>(node: &'a Node, method: &'a str, path: &'a str, body: &'a [u8]) -> Forward<'a> {
    Forward {
        method,
        path,
        body,
        timeout: PEER_TIMEOUT,
        link: node.trust.link(),
    }
}

/// The 503 of a read whose named series no owner could answer for.
fn no_owner(none: NoOwner) -> Reply {
    Reply::json(
        503,
        &serde_json::json!({
            "error": format!("no owner of {} could answer", none.series),
            "owners": none.owners,
            "failed": none.failed,
        }),
    )
}

/// The union of a listing over every reachable member. A member that fails makes the
/// answer `"partial": true` with the failures named.
fn listing<L: ListingAnswer>(
    node: &Node,
    path: &str,
    local: &(dyn Fn() -> Result<L, String> + Sync),
) -> Answer {
    let (union, failed) = union_of(
        &node.config.node_id,
        &node.cluster.reachable_members(),
        forward(node, "GET", path, b""),
        local,
    );
    let mut answer = serde_json::to_value(&union)
        .map_err(|e| ApiError::new(500, format!("internal error: encode listing: {e}")))?;
    if !failed.is_empty() {
        answer["partial"] = true.into();
        answer["failed"] = serde_json::json!(failed);
    }
    Ok(Reply::json(200, &answer))
}

/// Percent-encodes a query-string value.
fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn now() -> Timestamp {
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    Timestamp(millis)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::test_node::TestNode;
    use crate::storage::{Point, SeriesKey};
    use serde_json::Value;

    fn key(device: &str, metric: &str) -> SeriesKey {
        SeriesKey::new(device, metric).expect("valid test key")
    }

    fn seed(node: &Node) {
        let points: Vec<Point> = [(10_000, 1.0), (20_000, 2.0), (30_000, 6.0)]
            .iter()
            .map(|&(ms, v)| Point {
                series: key("s1", "temperature"),
                timestamp: Timestamp(ms),
                value: v,
            })
            .chain(std::iter::once(Point {
                series: key("s2", "humidity"),
                timestamp: Timestamp(10_000),
                value: 50.0,
            }))
            .collect();
        node.engine.write(&points).expect("seed");
    }

    fn json(answer: Answer) -> Value {
        let reply = answer.unwrap_or_else(|e| panic!("{}: {}", e.status, e.message));
        serde_json::from_slice(&reply.body).expect("JSON answer")
    }

    fn err(answer: Answer) -> (u16, String) {
        match answer {
            Ok(r) => panic!("expected an error, got {}", r.status),
            Err(e) => (e.status, e.message),
        }
    }

    fn q(node: &Node, body: &str) -> Value {
        json(query(node, "", body.as_bytes()))
    }

    #[test]
    fn query_answers_every_operation() {
        let t = TestNode::new("query_ops");
        seed(&t.node);
        let base = r#""device_id":"s1","metric_name":"temperature","start_time":0,"end_time":0"#;
        for (op, want) in [
            ("avg", 3.0),
            ("sum", 9.0),
            ("min", 1.0),
            ("max", 6.0),
            ("count", 3.0),
        ] {
            let v = q(&t.node, &format!(r#"{{{base},"operation":"{op}"}}"#));
            assert_eq!(v["result"], want, "{op}");
            assert_eq!(v["count"], 3);
            assert_eq!(v["operation"], op);
            assert_eq!(v["device_id"], "s1");
            assert_eq!(v["metric_name"], "temperature");
            assert_eq!(v["node"], "test");
            assert!(v["duration_ns"].is_u64());
            assert!(v.get("buckets").is_none());
        }
    }

    #[test]
    fn query_selects_every_series_with_the_labels_and_groups_by_them() {
        let t = TestNode::new("query_labels");
        let point = |labels: &[(&str, &str)], ms: i64, value: f64| Point {
            series: SeriesKey::with_labels("t", labels.iter().copied()).unwrap(),
            timestamp: Timestamp(ms),
            value,
        };
        t.node
            .engine
            .write(&[
                point(&[("device_id", "d")], 1_000, 1.0),
                point(&[("device_id", "d"), ("room", "lab")], 1_000, 10.0),
                point(&[("device_id", "d"), ("room", "lab")], 2_000, 20.0),
                point(&[("device_id", "d"), ("room", "hall")], 1_000, 100.0),
                point(&[("device_id", "e"), ("room", "lab")], 1_000, 1000.0),
            ])
            .unwrap();
        let v = q(
            &t.node,
            r#"{"device_id":"d","metric_name":"t","operation":"sum"}"#,
        );
        assert_eq!(
            (v["result"].clone(), v["count"].clone(), v["series"].clone()),
            (131.0.into(), 4.into(), 3.into()),
            "{v}"
        );
        let v = q(
            &t.node,
            r#"{"metric_name":"t","labels":{"room":"lab"},"operation":"sum","group_by":["device_id"],"step":1}"#,
        );
        assert_eq!(v["result"], 1030.0, "{v}");
        assert_eq!(
            v["groups"],
            serde_json::json!([
                {"labels": {"device_id": "d"}, "result": 30.0, "count": 2, "series": 1,
                 "buckets": [{"start": 1.0, "result": 10.0, "count": 1}, {"start": 2.0, "result": 20.0, "count": 1}]},
                {"labels": {"device_id": "e"}, "result": 1000.0, "count": 1, "series": 1,
                 "buckets": [{"start": 1.0, "result": 1000.0, "count": 1}]},
            ]),
            "{v}"
        );
        let v = q(
            &t.node,
            r#"{"device_id":"d","metric_name":"t","operation":"count","group_by":["room"]}"#,
        );
        let groups: Vec<(Value, Value)> = v["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| (g["labels"].clone(), g["count"].clone()))
            .collect();
        assert_eq!(
            groups,
            [
                (serde_json::json!({}), 1.into()),
                (serde_json::json!({"room": "hall"}), 1.into()),
                (serde_json::json!({"room": "lab"}), 2.into()),
            ],
            "a series without the label is its own group"
        );
    }

    #[test]
    fn query_range_is_inclusive_seconds() {
        let t = TestNode::new("query_range");
        seed(&t.node);
        let v = q(
            &t.node,
            r#"{"device_id":"s1","metric_name":"temperature","operation":"sum","start_time":20,"end_time":30}"#,
        );
        assert_eq!(v["result"], 8.0);
    }

    #[test]
    fn empty_query_is_null_for_avg_and_zero_for_count() {
        let t = TestNode::new("query_empty");
        let body =
            |op: &str| format!(r#"{{"device_id":"x","metric_name":"y","operation":"{op}"}}"#);
        assert!(q(&t.node, &body("avg"))["result"].is_null());
        assert!(q(&t.node, &body("max"))["result"].is_null());
        assert_eq!(q(&t.node, &body("count"))["result"], 0.0);
        assert_eq!(q(&t.node, &body("sum"))["result"], 0.0);
    }

    #[test]
    fn query_with_step_adds_buckets() {
        let t = TestNode::new("query_step");
        seed(&t.node);
        let v = q(
            &t.node,
            r#"{"device_id":"s1","metric_name":"temperature","operation":"sum","step":20}"#,
        );
        let buckets = v["buckets"].as_array().expect("buckets");
        assert_eq!(buckets.len(), 2);
        assert_eq!(buckets[0]["start"], 0.0);
        assert_eq!(buckets[0]["result"], 1.0);
        assert_eq!(buckets[1]["start"], 20.0);
        assert_eq!(buckets[1]["result"], 8.0);
        assert_eq!(buckets[1]["count"], 2);
    }

    #[test]
    fn query_errors_name_the_field() {
        let t = TestNode::new("query_errors");
        let cases = [
            (
                r#"{"metric_name":"t","operation":"avg"}"#,
                "missing field device_id",
            ),
            (
                r#"{"device_id":"s","operation":"avg"}"#,
                "missing field metric_name",
            ),
            (
                r#"{"device_id":"s","metric_name":"t"}"#,
                "missing field operation",
            ),
            (
                r#"{"device_id":"s","metric_name":"t","operation":"median"}"#,
                "invalid operation: \"median\" is not one of avg, sum, min, max, count",
            ),
            (
                r#"{"device_id":"s","metric_name":"t","operation":"avg","start_time":5,"end_time":1}"#,
                "start_time must be <= end_time",
            ),
            (
                r#"{"device_id":"","metric_name":"t","operation":"avg"}"#,
                "invalid device_id: must not be empty",
            ),
            (
                r#"{"device_id":"s","metric_name":"t","operation":"avg","step":-1}"#,
                "invalid step: must be > 0 seconds",
            ),
            (
                r#"{"device_id":"s","metric_name":"t","operation":"avg","step":0.0001}"#,
                "invalid step: must be at least 1 ms",
            ),
        ];
        for (body, want) in cases {
            assert_eq!(
                err(query(&t.node, "", body.as_bytes())),
                (400, want.into()),
                "{body}"
            );
        }
    }

    #[test]
    fn hostile_range_and_step_answer_400_or_empty_never_panic() {
        let t = TestNode::new("query_hostile");
        seed(&t.node);
        let extremes = [i64::MIN, i64::MIN + 1, -1, 1, i64::MAX - 1, i64::MAX];
        for &start in &extremes {
            for &end in &extremes {
                for step in ["", r#","step":9223372036854775807"#, r#","step":1"#] {
                    let body = format!(
                        r#"{{"device_id":"s1","metric_name":"temperature","operation":"sum","start_time":{start},"end_time":{end}{step}}}"#
                    );
                    match query(&t.node, "", body.as_bytes()) {
                        Ok(reply) => assert_eq!(reply.status, 200, "{body}"),
                        Err(e) => assert_eq!(e.status, 400, "{body}: {}", e.message),
                    }
                }
            }
        }
    }

    #[test]
    fn samples_carry_timestamps_and_respect_limit() {
        let t = TestNode::new("samples");
        seed(&t.node);
        let v = json(query_samples(
            &t.node,
            "",
            br#"{"device_id":"s1","metric_name":"temperature","limit":2}"#,
        ));
        assert_eq!(v["samples"], serde_json::json!([1.0, 2.0]));
        assert_eq!(v["timestamps"], serde_json::json!([10.0, 20.0]));
        assert_eq!(v["count"], 2);
        let (status, message) = err(query_samples(
            &t.node,
            "",
            br#"{"device_id":"s1","metric_name":"temperature","limit":0}"#,
        ));
        assert_eq!(status, 400);
        assert!(message.starts_with("invalid limit"), "{message}");
    }

    #[test]
    fn aggregated_is_partial_stats_with_null_extremes_when_empty() {
        let t = TestNode::new("aggregated");
        seed(&t.node);
        let v = json(query_aggregated(
            &t.node,
            br#"{"device_id":"s1","metric_name":"temperature"}"#,
        ));
        assert_eq!(
            (v["sum"].clone(), v["count"].clone()),
            (9.0.into(), 3.into())
        );
        assert_eq!(
            (v["min"].clone(), v["max"].clone()),
            (1.0.into(), 6.0.into())
        );
        let v = json(query_aggregated(
            &t.node,
            br#"{"device_id":"n","metric_name":"o"}"#,
        ));
        assert_eq!(v["count"], 0);
        assert!(v["min"].is_null() && v["max"].is_null());
    }

    #[test]
    fn delete_reports_whether_the_series_existed() {
        let t = TestNode::new("delete");
        seed(&t.node);
        let body = br#"{"device_id":"s1","metric_name":"temperature"}"#;
        assert_eq!(json(delete(&t.node, "", body))["deleted"], true);
        assert_eq!(json(delete(&t.node, "", body))["deleted"], false);
        assert_eq!(
            q(
                &t.node,
                r#"{"device_id":"s1","metric_name":"temperature","operation":"count"}"#
            )["result"],
            0.0
        );
    }

    #[test]
    fn devices_and_metrics_are_sorted_and_filtered() {
        let t = TestNode::new("listing");
        seed(&t.node);
        assert_eq!(
            json(devices(&t.node, ""))["devices"],
            serde_json::json!(["s1", "s2"])
        );
        assert_eq!(
            json(metrics(&t.node, ""))["metrics"],
            serde_json::json!(["humidity", "temperature"])
        );
        assert_eq!(
            json(metrics(&t.node, "device_id=s2"))["metrics"],
            serde_json::json!(["humidity"])
        );
    }

    #[test]
    fn write_stores_line_protocol_and_counts_it() {
        let t = TestNode::new("write");
        let reply = write(
            &t.node,
            "precision=s",
            None,
            b"temperature,device_id=s9 value=4 100\ntemperature,device_id=s9 value=6 200\n",
        )
        .expect("write");
        assert_eq!(reply.status, 204);
        let v = q(
            &t.node,
            r#"{"device_id":"s9","metric_name":"temperature","operation":"avg","start_time":100,"end_time":200}"#,
        );
        assert_eq!(v["result"], 5.0);
        let status = json(status(&t.node));
        assert_eq!(status["ingest_accepted"], 2);
        assert_eq!(status["points"], 2);
        assert_eq!(status["node_id"], "test");
        assert!(status["rejected"].is_object());
    }

    #[test]
    fn internal_write_takes_wal_batches_and_refuses_what_is_not_one() {
        let t = TestNode::new("internal_write_wal");
        let series = SeriesKey::new("s7", "temperature").unwrap();
        let points: Vec<Point> = [(100_000, 4.0), (200_000, 6.0)]
            .into_iter()
            .map(|(ms, value)| Point {
                series: series.clone(),
                timestamp: Timestamp(ms),
                value,
            })
            .collect();
        let body = wal::encode_batches(&points).unwrap().remove(0);
        let reply = internal_write(&t.node, "format=wal", &body).expect("stored");
        assert_eq!(reply.status, 204);
        let v = q(
            &t.node,
            r#"{"device_id":"s7","metric_name":"temperature","operation":"avg","start_time":100,"end_time":200}"#,
        );
        assert_eq!(v["result"], 5.0);
        let error = |query: &str, body: &[u8]| {
            let e = internal_write(&t.node, query, body).expect_err("refused");
            (e.status, e.message)
        };
        let (code, message) = error("format=wal", &body[..body.len() - 1]);
        assert_eq!(code, 400);
        assert!(message.starts_with("invalid batch:"), "{message}");
        // The JSON form still works, and a format nobody knows is named.
        let (code, message) = error("format=xml", &body);
        assert_eq!(code, 400);
        assert!(message.contains("\"xml\""), "{message}");
        let (code, message) = error("", &body);
        assert_eq!(code, 400);
        assert!(message.starts_with("invalid body"), "{message}");
        assert_eq!(json(status(&t.node))["points"], 2, "nothing else stored");
    }

    #[test]
    fn bad_line_protocol_and_precision_are_bad_requests() {
        let t = TestNode::new("write_bad");
        let reply = write(&t.node, "", None, b"temperature,__x=1 value=1").expect("an answer");
        assert_eq!(reply.status, 400);
        let body: Value = serde_json::from_slice(&reply.body).unwrap();
        let message = body["error"].as_str().unwrap();
        assert!(
            message.starts_with("partial write: 1 of 1 lines not stored")
                && message.contains("line 1: column 13: tag \"__x\""),
            "{message}"
        );
        let (status, message) = err(write(&t.node, "precision=fortnight", None, b""));
        assert_eq!(status, 400);
        assert!(message.starts_with("invalid precision"), "{message}");
        assert_eq!(err(write(&t.node, "", None, &[0xff, 0xfe])).0, 400);
    }

    #[test]
    fn a_partial_write_stores_the_good_lines_and_names_the_others() {
        let t = TestNode::new("write_partial");
        let body = b"t,device_id=p value=1 1\nt,device_id=p value=oops 2\n\
                     t,device_id=p value=3,note=\"hi\" 3\nt,device_id=p on=true 4";
        let reply = write(&t.node, "precision=s", None, body).expect("an answer");
        assert_eq!(reply.status, 400);
        let answer: Value = serde_json::from_slice(&reply.body).unwrap();
        assert_eq!(answer["points_written"], 3);
        assert_eq!(answer["lines_not_stored"], serde_json::json!([2, 3]));
        assert_eq!(answer["code"], "invalid");
        let message = answer["message"].as_str().unwrap();
        assert!(
            message.starts_with("partial write: 1 of 4 lines not stored, 1 stored in part, 3 points written: line 2: column 21: field \"value\""),
            "{message}"
        );
        let count = |metric: &str| {
            q(
                &t.node,
                &format!(r#"{{"device_id":"p","metric_name":"{metric}","operation":"count"}}"#),
            )["count"]
                .clone()
        };
        assert_eq!((count("t"), count("t_on")), (2.into(), 1.into()));
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn gzip_bodies_are_decoded_bounded_and_other_encodings_refused() {
        let t = TestNode::new("write_gzip");
        let body = gzip(b"t,device_id=z value=1 1\nt,device_id=z value=2 2");
        let reply = write(&t.node, "precision=s", Some("gzip"), &body).expect("write");
        assert_eq!(reply.status, 204);
        let v = q(
            &t.node,
            r#"{"device_id":"z","metric_name":"t","operation":"sum"}"#,
        );
        assert_eq!(v["result"], 3.0);

        let (status, message) = err(write(&t.node, "", Some("br"), b"x"));
        assert_eq!(status, 415, "{message}");
        let (status, message) = err(write(&t.node, "", Some("gzip"), b"not gzip at all"));
        assert_eq!(status, 400, "{message}");
        assert!(message.contains("gzip"), "{message}");
        // A bomb: a small body that inflates past the write limit.
        let bomb = gzip(&vec![b'#'; MAX_WRITE_BODY + 1]);
        assert!(bomb.len() < 100_000, "{}", bomb.len());
        let (status, message) = err(write(&t.node, "", Some("gzip"), &bomb));
        assert_eq!(status, 413, "{message}");
    }

    #[test]
    fn ping_and_health_answer_as_influxdb_clients_expect() {
        let t = TestNode::new("ping");
        let reply = ping().unwrap();
        assert_eq!(reply.status, 204);
        assert_eq!(
            reply.header("X-Influxdb-Version"),
            Some(INFLUXDB_COMPATIBLE_VERSION)
        );
        let health = json(health(&t.node));
        assert_eq!(health["status"], "pass");
        assert_eq!(health["name"], "minitrue");
        assert_eq!(health["node_id"], "test");
        assert!(health["checks"].as_array().is_some_and(|c| c.is_empty()));
    }

    #[test]
    fn debug_metrics_are_prometheus_text_with_the_nodes_counts() {
        let t = TestNode::new("metrics");
        write(
            &t.node,
            "precision=s",
            None,
            b"t,device_id=m value=1 1\nt,device_id=m value=x 2",
        )
        .expect("write");
        let _ = query(
            &t.node,
            "",
            br#"{"device_id":"m","metric_name":"t","operation":"count"}"#,
        );
        t.node
            .request_latency
            .observe("/query", std::time::Duration::from_millis(2));
        let reply = debug_metrics(&t.node).unwrap();
        assert_eq!(
            reply.content_type,
            "text/plain; version=0.0.4; charset=utf-8"
        );
        let text = String::from_utf8(reply.body).unwrap();
        for line in [
            "minitrue_ingest_accepted_total{source=\"http\"} 1",
            "minitrue_ingest_accepted_total{source=\"mqtt\"} 0",
            "minitrue_write_lines_not_stored_total 1",
            "minitrue_points 1",
            "minitrue_series 1",
            "minitrue_members{state=\"alive\"} 1",
            "minitrue_http_request_seconds_bucket{endpoint=\"/query\",le=\"0.0025\"} 1",
            "minitrue_http_request_seconds_count{endpoint=\"/query\"} 1",
            "minitrue_broker_state{state=\"disabled\"} 1",
            "minitrue_write_failing 0",
            "# TYPE minitrue_wal_fsync_seconds histogram",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in:\n{text}");
        }
        // Every sample line is `name{labels} value`, its family announced before it.
        let mut announced = std::collections::BTreeSet::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                announced.insert(rest.split(' ').next().unwrap().to_string());
                continue;
            }
            if line.starts_with('#') {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').unwrap();
            assert!(value.parse::<f64>().is_ok() || value == "+Inf", "{line}");
            let name = series.split('{').next().unwrap();
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s).filter(|f| announced.contains(*f)))
                .unwrap_or(name);
            assert!(announced.contains(family), "{line}: family not announced");
        }
        assert_eq!(json(buildinfo())["status"], "success");
    }
}
