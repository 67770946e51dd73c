//! HTTP API (CONTRACT, implemented by the http work; signature fixed).

use crate::node::Node;

/// One HTTP worker's body: serves requests until `server.unblock()`.
pub fn http_serve(_node: &Node, server: &tiny_http::Server) {
    while let Ok(request) = server.recv() {
        let _ = request.respond(tiny_http::Response::empty(501));
    }
}
