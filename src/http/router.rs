//! Which handler answers a request: the endpoint table, method checks (405 with `Allow`),
//! CORS preflight, the `--mode` gate (503), and the dashboard for every other `GET`.

use super::errors::ApiError;
use super::static_files::Frontend;
use super::{handlers, Reply};
use crate::node::Node;
use tiny_http::Method;

/// The parts of a request a handler may look at.
pub struct ApiRequest<'a> {
    pub method: &'a Method,
    /// Without the query string, not yet percent-decoded.
    pub path: &'a str,
    /// After `?`, not yet decoded; empty when absent.
    pub query: &'a str,
    pub body: &'a [u8],
}

/// What part of the node an endpoint needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    /// Reads or deletes stored data: refused in `--mode=ingestion`.
    Query,
    /// Stores data: refused in `--mode=query`.
    Ingest,
    /// Always served.
    Any,
}

/// `(path, method, role)` of every API endpoint. `GET /ws` is taken before routing (the
/// hub answers it) but is listed so other methods get a 405.
const ENDPOINTS: [(&str, Method, Role); 16] = [
    ("/query", Method::Post, Role::Query),
    ("/query-samples", Method::Post, Role::Query),
    ("/query-aggregated", Method::Post, Role::Query),
    ("/delete", Method::Post, Role::Query),
    ("/devices", Method::Get, Role::Query),
    ("/metrics", Method::Get, Role::Query),
    ("/health", Method::Get, Role::Any),
    ("/status", Method::Get, Role::Any),
    ("/write", Method::Post, Role::Ingest),
    ("/api/v2/write", Method::Post, Role::Ingest),
    ("/ws", Method::Get, Role::Any),
    ("/ws/stats", Method::Get, Role::Any),
    ("/api/v2/health", Method::Get, Role::Any),
    ("/internal/write", Method::Post, Role::Any),
    ("/internal/summary", Method::Get, Role::Any),
    ("/internal/digest", Method::Post, Role::Any),
];

/// True for the line protocol endpoints (which take large bodies).
pub fn is_write_path(path: &str) -> bool {
    path == "/write" || path == "/api/v2/write" || path == "/internal/write"
}

/// Answers one request (except `GET /ws`).
pub fn route(node: &Node, frontend: &Frontend, request: &ApiRequest<'_>) -> Reply {
    match dispatch(node, frontend, request) {
        Ok(reply) => reply,
        Err(e) => e.into_reply(),
    }
}

fn dispatch(node: &Node, frontend: &Frontend, request: &ApiRequest<'_>) -> Result<Reply, ApiError> {
    let endpoint = ENDPOINTS.iter().find(|(p, _, _)| *p == request.path);
    if *request.method == Method::Options {
        return Ok(preflight(endpoint.map(|e| &e.1)));
    }
    let Some((path, method, role)) = endpoint else {
        let api_like = request.path.starts_with("/api/") || request.path.starts_with("/ws/");
        return if *request.method == Method::Get && !api_like {
            frontend.serve(request.path)
        } else {
            Err(ApiError::not_found(request.path))
        };
    };
    if request.method != method {
        let allow = format!("{method}, OPTIONS");
        return Ok(Reply::error(
            405,
            &format!(
                "method {} not allowed on {path}: use {method}",
                request.method
            ),
        )
        .with_header("Allow", allow));
    }
    match role {
        Role::Query if !node.config.mode.queries() => {
            return Err(ApiError::unavailable("node is in ingestion mode"))
        }
        Role::Ingest if !node.config.mode.ingests() => {
            return Err(ApiError::unavailable("node is in query mode"))
        }
        _ => {}
    }
    let (query, body) = (request.query, request.body);
    match *path {
        "/query" => handlers::query(node, query, body),
        "/query-samples" => handlers::query_samples(node, query, body),
        "/query-aggregated" => handlers::query_aggregated(node, body),
        "/delete" => handlers::delete(node, query, body),
        "/devices" => handlers::devices(node, query),
        "/metrics" => handlers::metrics(node, query),
        "/health" | "/api/v2/health" => handlers::health(node),
        "/status" => handlers::status(node),
        "/write" | "/api/v2/write" => handlers::write(node, query, body),
        "/ws/stats" => handlers::ws_stats(node),
        "/internal/write" => handlers::internal_write(node, body),
        "/internal/summary" => handlers::internal_summary(node),
        "/internal/digest" => handlers::internal_digest(node, body),
        // `GET /ws` reaches here only when called without the worker loop (tests).
        _ => Err(ApiError::bad_request("websocket upgrade expected")),
    }
}

/// `OPTIONS`: a CORS preflight answer.
fn preflight(method: Option<&Method>) -> Reply {
    let methods = match method {
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
mod tests {
    use super::*;
    use crate::config::Mode;
    use crate::http::test_node::TestNode;

    fn call(node: &Node, method: Method, path: &str, body: &str) -> Reply {
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        route(
            node,
            &Frontend::new("/nonexistent/minitrue/dist"),
            &ApiRequest {
                method: &method,
                path,
                query,
                body: body.as_bytes(),
            },
        )
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
    fn health_and_status_answer() {
        let t = TestNode::new("router_health");
        let r = call(&t.node, Method::Get, "/health", "");
        assert_eq!(r.status, 200);
        assert_eq!(r.body, br#"{"status":"ok","node_id":"test"}"#);
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
