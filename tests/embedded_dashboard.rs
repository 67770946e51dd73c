//! The dashboard travels inside the binary: a node started from a directory outside the
//! repository, with `MINITRUE_FRONTEND_DIR` unset, serves the `index.html` that `build.rs`
//! embedded from `frontend/dist`. Skipped (with a message) when the crate was built without
//! a `frontend/dist`, as then there is nothing to embed.
//!
//! This file holds one test on purpose: it changes the test process's working directory
//! (the node inherits it) and environment, which would race with other tests in the file.

mod common;

use common::{Server, TempDir};
use minitrue::http::static_files::{DASHBOARD_EMBEDDED, FRONTEND_DIR_ENV};

#[test]
fn node_outside_the_repo_serves_the_embedded_dashboard() {
    if !DASHBOARD_EMBEDDED {
        eprintln!(
            "skipped: frontend/dist did not exist when this crate was built, so no dashboard \
             is embedded (run `cd frontend && npm ci && npm run build`, then `cargo test`)"
        );
        return;
    }
    let work = TempDir::new("embedded-dashboard");
    std::env::set_current_dir(work.path()).expect("enter the temp working directory");
    std::env::remove_var(FRONTEND_DIR_ENV);
    assert!(!work.path().join("frontend/dist").exists());

    let data = work.path().join("data");
    std::fs::create_dir_all(&data).expect("create the data directory");
    let server = Server::start("embedded", &data, &[]);
    let root = server.get("/");
    assert_eq!(root.status, 200, "{}", root.text());
    assert_eq!(
        root.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let page = root.text();
    assert!(
        page.contains("<div id=\"root\">"),
        "not the dashboard's index.html:\n{page}"
    );
    assert!(!page.contains("has not been built"), "{page}");
    // The script it loads is embedded too.
    let script = page
        .split("src=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("index.html loads a script");
    let js = server.get(script);
    assert_eq!(js.status, 200, "{script}: {}", js.text());
    assert_eq!(
        js.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    // A client-side route gets the app too; a missing asset is a 404.
    assert_eq!(server.get("/live").text(), page);
    assert_eq!(server.get("/assets/no-such-file.js").status, 404);
}
