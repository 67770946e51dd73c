//! Which handler answers a request, and whether it may: the endpoint table, method checks
//! (405 with `Allow`), the cross-origin check (403, see [`super::cors`]), credentials and
//! roles (401/403, see [`super::auth`]), the `--mode` gate (503), CORS preflight, and the
//! dashboard for every other `GET`. Every delete is written to the audit log with the name
//! of the token that asked for it.

use super::auth::{self, Caller, Role};
use super::cors::OriginVerdict;
use super::errors::ApiError;
use super::static_files::Frontend;
use super::wire::Method;
use super::{handlers, prometheus_api, Reply};
use crate::log_info;
use crate::metrics::Histogram;
use crate::node::Node;
use std::net::SocketAddr;
use std::time::Duration;

/// A request's headers, names compared case-insensitively.
#[derive(Clone, Debug, Default)]
pub struct Headers(Vec<(String, String)>);

impl Headers {
    pub fn new(pairs: impl IntoIterator<Item = (String, String)>) -> Headers {
        Headers(pairs.into_iter().collect())
    }

    /// The first value of header `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// The parts of a request a handler may look at.
pub struct ApiRequest<'a> {
    pub method: &'a Method,
    /// Without the query string, not yet percent-decoded.
    pub path: &'a str,
    /// After `?`, not yet decoded; empty when absent.
    pub query: &'a str,
    pub headers: &'a Headers,
    pub body: &'a [u8],
    /// Who sent it, for the audit log; `None` when unknown (tests).
    pub remote: Option<SocketAddr>,
    /// Signed with the cluster secret by a peer (checked by the worker loop).
    pub from_peer: bool,
}

/// What part of the node an endpoint needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Part {
    /// Reads or deletes stored data: refused in `--mode=ingestion`.
    Query,
    /// Stores data: refused in `--mode=query`.
    Ingest,
    /// Always served.
    Any,
}

/// One API endpoint: where, how, which part of the node and the least role it needs
/// (`None`: open to everyone, even with `--auth_file`).
struct Endpoint {
    path: &'static str,
    method: Method,
    part: Part,
    needs: Option<Role>,
}

const fn endpoint(path: &'static str, method: Method, part: Part, needs: Option<Role>) -> Endpoint {
    Endpoint {
        path,
        method,
        part,
        needs,
    }
}

const READ: Option<Role> = Some(Role::Read);
const WRITE: Option<Role> = Some(Role::Write);
const ADMIN: Option<Role> = Some(Role::Admin);

/// How many API endpoints there are (the router's endpoint table).
pub const ENDPOINT_COUNT: usize = 33;

/// Request latency per endpoint, for `/debug/metrics`: one histogram per API endpoint and
/// one for everything else (the dashboard's files, unknown paths).
#[derive(Debug)]
pub struct RequestLatency {
    endpoints: [Histogram; ENDPOINT_COUNT],
    other: Histogram,
}

// By hand: std derives `Default` for arrays of at most 32.
impl Default for RequestLatency {
    fn default() -> RequestLatency {
        RequestLatency {
            endpoints: std::array::from_fn(|_| Histogram::default()),
            other: Histogram::default(),
        }
    }
}

impl RequestLatency {
    /// Records that a request for `path` took `took` to answer.
    pub fn observe(&self, path: &str, took: Duration) {
        match ENDPOINTS.iter().position(|e| e.path == path) {
            Some(i) => self.endpoints[i].observe(took),
            None => self.other.observe(took),
        }
    }

    /// `(endpoint, histogram)` for every endpoint that has answered at least once, `other`
    /// last.
    pub fn by_endpoint(&self) -> impl Iterator<Item = (&'static str, &Histogram)> {
        ENDPOINTS
            .iter()
            .map(|e| e.path)
            .zip(&self.endpoints)
            .chain([("other", &self.other)])
            .filter(|(_, h)| h.count() > 0)
    }
}

/// Every API endpoint. `GET /ws` is taken before routing (the hub answers it, after
/// [`admit_live`]) but is listed so other methods get a 405.
static ENDPOINTS: [Endpoint; ENDPOINT_COUNT] = [
    endpoint("/query", Method::Post, Part::Query, READ),
    endpoint("/query-samples", Method::Post, Part::Query, READ),
    endpoint("/query-aggregated", Method::Post, Part::Query, READ),
    endpoint("/delete", Method::Post, Part::Query, ADMIN),
    endpoint("/devices", Method::Get, Part::Query, READ),
    endpoint("/metrics", Method::Get, Part::Query, READ),
    endpoint("/series", Method::Get, Part::Query, READ),
    endpoint("/health", Method::Get, Part::Any, None),
    endpoint("/status", Method::Get, Part::Any, READ),
    endpoint("/write", Method::Post, Part::Ingest, WRITE),
    endpoint("/api/v2/write", Method::Post, Part::Ingest, WRITE),
    endpoint("/api/v1/write", Method::Post, Part::Ingest, WRITE),
    endpoint("/ws", Method::Get, Part::Any, READ),
    endpoint("/ws/stats", Method::Get, Part::Any, READ),
    endpoint("/api/v2/health", Method::Get, Part::Any, None),
    endpoint("/ping", Method::Get, Part::Any, None),
    endpoint("/debug/metrics", Method::Get, Part::Any, READ),
    endpoint("/api/v1/status/buildinfo", Method::Get, Part::Any, READ),
    // Prometheus's query API (`prometheus_api`): GET, and POST with a form body.
    endpoint("/api/v1/query", Method::Get, Part::Query, READ),
    endpoint("/api/v1/query", Method::Post, Part::Query, READ),
    endpoint("/api/v1/query_range", Method::Get, Part::Query, READ),
    endpoint("/api/v1/query_range", Method::Post, Part::Query, READ),
    endpoint("/api/v1/series", Method::Get, Part::Query, READ),
    endpoint("/api/v1/series", Method::Post, Part::Query, READ),
    endpoint("/api/v1/labels", Method::Get, Part::Query, READ),
    endpoint("/api/v1/labels", Method::Post, Part::Query, READ),
    endpoint(
        prometheus_api::LABEL_VALUES_ROUTE,
        Method::Get,
        Part::Query,
        READ,
    ),
    endpoint("/api/v1/metadata", Method::Get, Part::Query, READ),
    endpoint("/internal/write", Method::Post, Part::Any, ADMIN),
    endpoint("/internal/summary", Method::Get, Part::Any, ADMIN),
    endpoint("/internal/digest", Method::Post, Part::Any, ADMIN),
    endpoint("/internal/series-aggregate", Method::Post, Part::Any, ADMIN),
    endpoint("/internal/select", Method::Post, Part::Any, ADMIN),
];

/// True for the write endpoints (which take large bodies).
pub fn is_write_path(path: &str) -> bool {
    matches!(
        path,
        "/write" | "/api/v2/write" | "/api/v1/write" | "/internal/write"
    )
}

/// Answers one request (except `GET /ws`).
pub fn route(node: &Node, frontend: &Frontend, request: &ApiRequest<'_>) -> Reply {
    let verdict = judge_origin(node, request);
    let reply = dispatch(node, frontend, request, &verdict).unwrap_or_else(ApiError::into_reply);
    match verdict {
        OriginVerdict::Allowed(origin) => reply
            .with_header("Access-Control-Allow-Origin", origin)
            .with_header("Vary", "Origin"),
        _ => reply.with_header("Vary", "Origin"),
    }
}

/// Whether `GET /ws` may open the live stream: the same origin and credential checks as
/// the API. `Err` is the answer to send instead of the upgrade.
pub fn admit_live(node: &Node, request: &ApiRequest<'_>) -> Result<(), Reply> {
    let verdict = judge_origin(node, request);
    admit(node, request, READ, true, &verdict)
        .map(|_| ())
        .map_err(ApiError::into_reply)
}

fn judge_origin(node: &Node, request: &ApiRequest<'_>) -> OriginVerdict {
    let members = || {
        node.cluster
            .membership()
            .members()
            .map(|m| m.http_addr.clone())
            .collect()
    };
    node.config.cors.judge(
        request.headers.get("Origin"),
        request.headers.get("Host"),
        &members,
    )
}

/// The caller of `request`, if it may use an endpoint that needs `needs`: a cross-site
/// request that could change data is refused first (403), then the credential is checked
/// (401 when missing or unknown, 403 when its role is too low).
fn admit(
    node: &Node,
    request: &ApiRequest<'_>,
    needs: Option<Role>,
    changes_data: bool,
    verdict: &OriginVerdict,
) -> Result<Caller, ApiError> {
    if let Some(origin) = verdict.forbids(changes_data) {
        return Err(ApiError::new(
            403,
            format!(
                "cross-origin request from {origin} refused: list it in --cors_origins to allow it"
            ),
        ));
    }
    let (Some(tokens), Some(needs)) = (&node.tokens, needs) else {
        return Ok(Caller::Anyone);
    };
    if request.from_peer {
        return Ok(Caller::Peer);
    }
    let token = auth::presented_token(request.headers.get("Authorization"), request.query)?
        .ok_or_else(|| {
            auth::unauthorized(
                "credentials required: send Authorization: Bearer <token> (or Token, Basic, ?p=)",
            )
        })?;
    let caller = tokens
        .identify(&token)
        .ok_or_else(|| auth::unauthorized("token not recognised"))?;
    if caller.role() < needs {
        return Err(ApiError::new(
            403,
            format!(
                "{} has role {}; {} needs {}",
                caller.describe(),
                caller.role().as_str(),
                request.path,
                needs.as_str()
            ),
        ));
    }
    Ok(caller)
}

fn dispatch(
    node: &Node,
    frontend: &Frontend,
    request: &ApiRequest<'_>,
    verdict: &OriginVerdict,
) -> Result<Reply, ApiError> {
    // A path may be listed once per method; a path with a variable part by its pattern.
    let table_path = prometheus_api::route_path(request.path);
    let listed = || ENDPOINTS.iter().filter(|e| e.path == table_path);
    let endpoint = listed()
        .find(|e| e.method == *request.method)
        .or_else(|| listed().next());
    let methods: Vec<String> = listed().map(|e| e.method.to_string()).collect();
    let methods = methods.join(", ");
    if *request.method == Method::Options {
        return Ok(preflight(endpoint.map(|_| methods.as_str())));
    }
    let Some(endpoint) = endpoint else {
        let api_like = request.path.starts_with("/api/") || request.path.starts_with("/ws/");
        return if *request.method == Method::Get && !api_like {
            frontend.serve(request.path)
        } else {
            Err(ApiError::not_found(request.path))
        };
    };
    let (path, method) = (endpoint.path, &endpoint.method);
    // HEAD is GET without the body (the writer leaves it out).
    let head_of_get = *request.method == Method::Head && *method == Method::Get;
    if request.method != method && !head_of_get {
        let allow = format!("{methods}, OPTIONS");
        return Ok(Reply::error(
            405,
            &format!(
                "method {} not allowed on {path}: use {methods}",
                request.method
            ),
        )
        .with_header("Allow", allow));
    }
    let changes_data = !matches!(*request.method, Method::Get | Method::Head);
    let caller = admit(node, request, endpoint.needs, changes_data, verdict)?;
    match endpoint.part {
        Part::Query if !node.config.mode.queries() => {
            return Err(ApiError::unavailable("node is in ingestion mode"))
        }
        Part::Ingest if !node.config.mode.ingests() => {
            return Err(ApiError::unavailable("node is in query mode"))
        }
        _ => {}
    }
    let (query, body) = (request.query, request.body);
    match path {
        "/query" => handlers::query(node, query, body),
        "/query-samples" => handlers::query_samples(node, query, body),
        "/query-aggregated" => handlers::query_aggregated(node, body),
        "/delete" => {
            let answer = handlers::delete(node, query, body);
            audit_delete(request, &caller, &answer);
            answer
        }
        "/devices" => handlers::devices(node, query),
        "/metrics" => handlers::metrics(node, query),
        "/health" | "/api/v2/health" => handlers::health(node),
        "/status" => handlers::status(node),
        "/write" | "/api/v2/write" => {
            handlers::write(node, query, request.headers.get("Content-Encoding"), body)
        }
        "/api/v1/write" => handlers::remote_write(
            node,
            request.headers.get("Content-Type"),
            request.headers.get("Content-Encoding"),
            body,
        ),
        "/series" => handlers::series_listing(node, query),
        "/ping" => handlers::ping(),
        "/debug/metrics" => handlers::debug_metrics(node),
        "/api/v1/status/buildinfo" => handlers::buildinfo(),
        p if p.starts_with("/api/v1/") => {
            // One node reads its own store; in a cluster every member is asked.
            let source = handlers::promql_source(node);
            Ok(prometheus_api::answer(
                source.as_ref(),
                p,
                request.path,
                query,
                body,
            ))
        }
        "/ws/stats" => handlers::ws_stats(node),
        "/internal/write" => handlers::internal_write(node, query, body),
        "/internal/summary" => handlers::internal_summary(node),
        "/internal/digest" => handlers::internal_digest(node, body),
        "/internal/series-aggregate" => handlers::internal_series_aggregate(node, body),
        "/internal/select" => handlers::internal_select(node, body),
        // `GET /ws` reaches here only when called without the worker loop (tests).
        _ => Err(ApiError::bad_request("websocket upgrade expected")),
    }
}

/// Longest part of a delete's body quoted in the audit log.
const AUDIT_BODY_CHARS: usize = 256;

/// One audit log line per delete: who, from where, what, and how it ended.
fn audit_delete(request: &ApiRequest<'_>, caller: &Caller, answer: &Result<Reply, ApiError>) {
    let status = match answer {
        Ok(reply) => reply.status,
        Err(e) => e.status,
    };
    let body: String = String::from_utf8_lossy(request.body)
        .chars()
        .take(AUDIT_BODY_CHARS)
        .collect();
    let remote = request
        .remote
        .map_or_else(|| "unknown address".to_string(), |a| a.to_string());
    log_info!(
        // Quoted: a body's newlines or escapes cannot forge log lines.
        "audit: delete by {} from {remote}{}: {body:?} -> {status}",
        caller.describe(),
        if request.query.is_empty() {
            String::new()
        } else {
            format!(" (?{:?})", request.query)
        }
    );
}

/// `OPTIONS`: a CORS preflight answer; `methods` are the endpoint's (`GET, POST`).
fn preflight(methods: Option<&str>) -> Reply {
    let methods = match methods {
        Some(m) => format!("{m}, OPTIONS"),
        None => "GET, POST, OPTIONS".to_string(),
    };
    Reply::new(204, "text/plain", Vec::new())
        .with_header("Allow", methods.clone())
        .with_header("Access-Control-Allow-Methods", methods)
        .with_header(
            "Access-Control-Allow-Headers",
            "Content-Type, Authorization, Accept",
        )
        .with_header("Access-Control-Max-Age", "86400")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::Mode;
    use crate::http::test_node::TestNode;

    pub(crate) fn call(node: &Node, method: Method, path: &str, body: &str) -> Reply {
        call_with(node, method, path, body, &[])
    }

    fn call_with(
        node: &Node,
        method: Method,
        path: &str,
        body: &str,
        headers: &[(&str, &str)],
    ) -> Reply {
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        let headers = Headers::new(
            std::iter::once(("Host", "127.0.0.1:8080"))
                .chain(headers.iter().copied())
                .map(|(n, v)| (n.to_string(), v.to_string())),
        );
        route(
            node,
            &Frontend::new("/nonexistent/minitrue/dist"),
            &ApiRequest {
                method: &method,
                path,
                query,
                headers: &headers,
                body: body.as_bytes(),
                remote: None,
                from_peer: false,
            },
        )
    }

    const SERIES: &str = r#"{"device_id":"d","metric_name":"cpu_usage"}"#;

    fn count_of(node: &Node) -> f64 {
        let r = call(
            node,
            Method::Post,
            "/query",
            r#"{"device_id":"d","metric_name":"cpu_usage","operation":"count"}"#,
        );
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        v["result"].as_f64().unwrap_or(0.0)
    }

    #[test]
    fn cross_site_text_plain_delete_is_refused_and_changes_nothing() {
        let t = TestNode::new("router_cross_site");
        call(
            &t.node,
            Method::Post,
            "/write?precision=ms",
            "cpu,device_id=d usage=3 5000",
        );
        assert_eq!(count_of(&t.node), 1.0);
        let evil = [
            ("Origin", "http://evil.example"),
            ("Content-Type", "text/plain"),
        ];
        let r = call_with(&t.node, Method::Post, "/delete", SERIES, &evil);
        assert_eq!(r.status, 403);
        assert!(error_of(&r).contains("--cors_origins"), "{}", error_of(&r));
        assert_eq!(r.header("Access-Control-Allow-Origin"), None);
        let r = call_with(
            &t.node,
            Method::Post,
            "/write",
            "cpu,device_id=d usage=4",
            &evil,
        );
        assert_eq!(r.status, 403);
        assert_eq!(count_of(&t.node), 1.0, "nothing written or deleted");
        // Reading is not refused, but the browser gets no permission to show the answer.
        let r = call_with(&t.node, Method::Get, "/devices", "", &evil);
        assert_eq!(
            (r.status, r.header("Access-Control-Allow-Origin")),
            (200, None)
        );
        // The node's own dashboard is same-origin.
        let own = [("Origin", "http://127.0.0.1:8080")];
        let r = call_with(&t.node, Method::Post, "/delete", SERIES, &own);
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(count_of(&t.node), 0.0);
    }

    #[test]
    fn listed_origins_are_allowed_by_name_never_star() {
        let t = TestNode::build("router_cors_listed", Mode::All, |c| {
            c.cors =
                crate::http::cors::OriginPolicy::new(&["http://localhost:5173".into()]).unwrap();
        });
        let dev = [("Origin", "http://localhost:5173")];
        let r = call_with(&t.node, Method::Options, "/delete", "", &dev);
        assert_eq!(
            r.header("Access-Control-Allow-Origin"),
            Some("http://localhost:5173")
        );
        let r = call_with(&t.node, Method::Post, "/delete", SERIES, &dev);
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("Access-Control-Allow-Origin"),
            Some("http://localhost:5173")
        );
        let r = call_with(
            &t.node,
            Method::Options,
            "/delete",
            "",
            &[("Origin", "http://x.example")],
        );
        assert_eq!(r.header("Access-Control-Allow-Origin"), None);
    }

    fn auth_node(name: &str) -> TestNode {
        let toml: String = [("reader", "read"), ("writer", "write"), ("ops", "admin")]
            .iter()
            .map(|(name, role)| {
                format!(
                    "[[token]]\nname = \"{name}\"\nrole = \"{role}\"\nsha256 = \"{}\"\n",
                    auth::sha256_hex(&format!("{name}-token"))
                )
            })
            .collect();
        TestNode::with_auth(name, &toml)
    }

    #[test]
    fn each_role_reaches_exactly_its_endpoints() {
        let t = auth_node("router_roles");
        // (method, path, body, least role); None = open.
        let table: [(Method, &str, &str, Option<Role>); 9] = [
            (Method::Get, "/health", "", None),
            (Method::Get, "/status", "", READ),
            (Method::Get, "/devices", "", READ),
            (
                Method::Post,
                "/query",
                r#"{"device_id":"d","metric_name":"cpu_usage","operation":"count"}"#,
                READ,
            ),
            (Method::Post, "/write", "cpu,device_id=d usage=1", WRITE),
            (
                Method::Post,
                "/api/v2/write",
                "cpu,device_id=d usage=2",
                WRITE,
            ),
            (Method::Post, "/api/v1/write", "", WRITE),
            (Method::Post, "/delete", SERIES, ADMIN),
            (Method::Get, "/internal/summary", "", ADMIN),
        ];
        let callers = [
            (None, None),
            (Some("Bearer reader-token"), Some(Role::Read)),
            (Some("Token writer-token"), Some(Role::Write)),
            (Some("Bearer ops-token"), Some(Role::Admin)),
        ];
        for (method, path, body, needs) in &table {
            for (auth, role) in &callers {
                let headers: Vec<(&str, &str)> =
                    auth.iter().map(|a| ("Authorization", *a)).collect();
                let r = call_with(&t.node, method.clone(), path, body, &headers);
                let expected = match (needs, role) {
                    (None, _) => "served",
                    (Some(_), None) => "401",
                    (Some(need), Some(have)) if have < need => "403",
                    _ => "served",
                };
                let got = match r.status {
                    401 => "401",
                    403 => "403",
                    _ => "served",
                };
                assert_eq!(got, expected, "{method} {path} as {auth:?}: {}", r.status);
                if r.status == 401 {
                    assert_eq!(
                        r.header("WWW-Authenticate"),
                        Some(r#"Bearer realm="minitrue""#)
                    );
                    assert!(error_of(&r).contains("credentials required"));
                }
                if r.status == 403 {
                    assert!(error_of(&r).contains("needs"), "{}", error_of(&r));
                }
            }
        }
        let r = call_with(
            &t.node,
            Method::Get,
            "/devices",
            "",
            &[("Authorization", "Bearer nope")],
        );
        assert_eq!(
            (r.status, error_of(&r)),
            (401, "token not recognised".into())
        );
        let r = call(&t.node, Method::Get, "/devices?u=x&p=reader-token", "");
        assert_eq!(r.status, 200);
        let r = call(&t.node, Method::Get, "/status", "");
        assert_eq!(r.status, 401);
    }

    fn error_of(reply: &Reply) -> String {
        let v: serde_json::Value = serde_json::from_slice(&reply.body).expect("JSON error");
        v["error"].as_str().expect("error field").to_string()
    }

    #[test]
    fn unknown_api_path_is_404_json() {
        let t = TestNode::new("router_404");
        let r = call(&t.node, Method::Post, "/nope", "{}");
        assert_eq!(r.status, 404);
        assert_eq!(error_of(&r), "no such endpoint: /nope");
        assert_eq!(call(&t.node, Method::Get, "/api/v9/x", "").status, 404);
    }

    #[test]
    fn wrong_method_is_405_with_allow() {
        let t = TestNode::new("router_405");
        let r = call(&t.node, Method::Get, "/query", "");
        assert_eq!(r.status, 405);
        assert_eq!(r.header("Allow"), Some("POST, OPTIONS"));
        assert!(error_of(&r).contains("GET"));
        assert_eq!(call(&t.node, Method::Post, "/health", "").status, 405);
    }

    #[test]
    fn options_is_a_cors_preflight() {
        let t = TestNode::new("router_options");
        let r = call(&t.node, Method::Options, "/query", "");
        assert_eq!(r.status, 204);
        assert_eq!(
            r.header("Access-Control-Allow-Methods"),
            Some("POST, OPTIONS")
        );
        assert!(r
            .header("Access-Control-Allow-Headers")
            .unwrap()
            .contains("Content-Type"));
    }

    #[test]
    fn status_says_whether_auth_is_on() {
        let open = TestNode::new("router_auth_off");
        let v: serde_json::Value =
            serde_json::from_slice(&call(&open.node, Method::Get, "/status", "").body).unwrap();
        assert_eq!(v["auth"]["enabled"], false);
        let locked = auth_node("router_auth_on");
        let r = call_with(
            &locked.node,
            Method::Get,
            "/status",
            "",
            &[("Authorization", "Bearer reader-token")],
        );
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            (v["auth"]["enabled"].clone(), v["auth"]["tokens"].clone()),
            (true.into(), 3.into())
        );
    }

    #[test]
    fn health_and_status_answer() {
        let t = TestNode::new("router_health");
        let r = call(&t.node, Method::Get, "/health", "");
        assert_eq!(r.status, 200);
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(
            (&v["status"], &v["node_id"]),
            (&"pass".into(), &"test".into())
        );
        // HEAD works wherever GET does; /ping is open and answers as InfluxDB's does.
        assert_eq!(call(&t.node, Method::Head, "/health", "").status, 200);
        let r = call(&t.node, Method::Head, "/ping", "");
        assert_eq!(r.status, 204);
        assert!(r.header("X-Influxdb-Version").is_some());
        assert_eq!(call(&t.node, Method::Get, "/ping", "").status, 204);
        let r = call(&t.node, Method::Get, "/status", "");
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        for field in [
            "node_id",
            "mode",
            "uptime_seconds",
            "broker",
            "points",
            "series",
            "segments",
            "disk_bytes",
            "wal_bytes",
            "memory_bytes",
            "points_written",
            "ingest_accepted",
            "ingest_rate",
            "websocket_clients",
            "rejected",
        ] {
            assert!(v.get(field).is_some(), "status lacks {field}: {v}");
        }
        let r = call(&t.node, Method::Get, "/ws/stats", "");
        assert_eq!(r.status, 200);
    }

    #[test]
    fn modes_gate_their_endpoints() {
        let t = TestNode::with_mode("router_ingestion", Mode::Ingestion);
        let r = call(
            &t.node,
            Method::Post,
            "/query",
            r#"{"device_id":"a","metric_name":"b","operation":"avg"}"#,
        );
        assert_eq!(
            (r.status, error_of(&r)),
            (503, "node is in ingestion mode".into())
        );
        assert_eq!(call(&t.node, Method::Post, "/write", "").status, 204);
        let t = TestNode::with_mode("router_query", Mode::Query);
        let r = call(&t.node, Method::Post, "/write", "t,device_id=a value=1");
        assert_eq!(
            (r.status, error_of(&r)),
            (503, "node is in query mode".into())
        );
        assert_eq!(call(&t.node, Method::Get, "/devices", "").status, 200);
    }

    #[test]
    fn root_without_dashboard_explains_the_build() {
        let t = TestNode::new("router_root");
        let r = call(&t.node, Method::Get, "/", "");
        assert_eq!(r.status, 200);
        assert!(r.content_type.starts_with("text/html"));
        assert_eq!(call(&t.node, Method::Get, "/../secret", "").status, 400);
    }

    #[test]
    fn write_then_query_round_trips_through_the_router() {
        let t = TestNode::new("router_round_trip");
        let r = call(
            &t.node,
            Method::Post,
            "/write?precision=ms",
            "cpu,device_id=d usage=3 5000",
        );
        assert_eq!(r.status, 204, "{}", String::from_utf8_lossy(&r.body));
        let r = call(
            &t.node,
            Method::Post,
            "/query",
            r#"{"device_id":"d","metric_name":"cpu_usage","operation":"max"}"#,
        );
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(v["result"], 3.0);
    }
}
