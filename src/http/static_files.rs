//! The dashboard: the built React app (`frontend/dist`, made by `npm run build`). `/`
//! serves `index.html`, other paths their file with its content type, and unknown paths
//! without an extension fall back to `index.html` so client-side routes survive a reload.
//!
//! Where the files come from, first match wins, checked on every request (so a build made
//! while the node runs is picked up on reload):
//! 1. `$MINITRUE_FRONTEND_DIR`, when set: that directory only (a development override; if it
//!    holds no `index.html`, `/` says how to build the dashboard, nothing else is tried);
//! 2. `frontend/dist` in the working directory, when it holds `index.html`: a checkout's own
//!    latest `npm run build` (`make cluster` runs the nodes from the repository);
//! 3. the bundle embedded in the binary at build time (`build.rs` embeds `frontend/dist` when
//!    it exists; see [`DASHBOARD_EMBEDDED`]), so an installed binary carries its dashboard;
//! 4. otherwise `/` explains how to build the dashboard.
//!
//! Files on disk come before the embedded bundle so that a binary built before the last
//! `npm run build` never serves its older copy where the newer one is at hand.

use super::errors::ApiError;
use super::Reply;
use std::path::{Path, PathBuf};

/// Where the dashboard is looked for when `$MINITRUE_FRONTEND_DIR` is not set.
pub const DEFAULT_FRONTEND_DIR: &str = "frontend/dist";

/// Environment variable overriding [`DEFAULT_FRONTEND_DIR`].
pub const FRONTEND_DIR_ENV: &str = "MINITRUE_FRONTEND_DIR";

/// The files of `frontend/dist` as it was when the crate was built, sorted by path
/// (`/`-separated, relative to `dist`); empty when there was no build (see `build.rs`).
static EMBEDDED_FILES: EmbeddedFiles = include!(concat!(env!("OUT_DIR"), "/dashboard.rs"));

/// Whether this binary carries a dashboard (`frontend/dist` existed when it was built).
pub const DASHBOARD_EMBEDDED: bool = !EMBEDDED_FILES.is_empty();

/// Shown at `/` when the dashboard has not been built.
const NOT_BUILT_PAGE: &str = "<!doctype html>
<html><head><meta charset=\"utf-8\"><title>MiniTrue</title></head>
<body style=\"font-family:sans-serif;max-width:40em;margin:3em auto\">
<h1>MiniTrue</h1>
<p>The node is running, but the dashboard has not been built.</p>
<p>Build it with <code>cd frontend &amp;&amp; npm ci &amp;&amp; npm run build</code>, then reload
this page (the server looks for <code>frontend/dist</code> in its working directory, or in
<code>$MINITRUE_FRONTEND_DIR</code>), or rebuild the server after it to embed the dashboard
in the binary.</p>
<p>The API answers meanwhile: try <a href=\"/health\">/health</a> and
<a href=\"/status\">/status</a>.</p>
</body></html>
";

/// A dashboard as a list of `(path, bytes)` sorted by path, as `build.rs` embeds it.
pub type EmbeddedFiles = &'static [(&'static str, &'static [u8])];

/// Where the dashboard is served from: a directory, then (unless overridden) the
/// embedded bundle. The order is in the module doc.
#[derive(Clone)]
pub struct Frontend {
    dir: PathBuf,
    embedded: EmbeddedFiles,
}

impl std::fmt::Debug for Frontend {
    // The embedded bytes would fill a log line: name the files' count instead.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frontend")
            .field("dir", &self.dir)
            .field("embedded_files", &self.embedded.len())
            .finish()
    }
}

impl Frontend {
    /// The dashboard in `dir` only.
    pub fn new(dir: impl Into<PathBuf>) -> Frontend {
        Frontend::with_embedded(dir, &[])
    }

    /// The dashboard in `dir` when it holds `index.html`, else `embedded` (sorted by path).
    pub fn with_embedded(dir: impl Into<PathBuf>, embedded: EmbeddedFiles) -> Frontend {
        Frontend {
            dir: dir.into(),
            embedded,
        }
    }

    /// `$MINITRUE_FRONTEND_DIR` alone when set, else `frontend/dist` then the embedded
    /// bundle.
    pub fn from_env() -> Frontend {
        match std::env::var_os(FRONTEND_DIR_ENV) {
            Some(dir) => Frontend::new(dir),
            None => Frontend::with_embedded(DEFAULT_FRONTEND_DIR, EMBEDDED_FILES),
        }
    }

    /// Answers a GET for `path` (already known not to be an API endpoint).
    pub fn serve(&self, path: &str) -> Result<Reply, ApiError> {
        let relative = safe_relative_path(path)?;
        if self.dir.join("index.html").is_file() {
            let file = pick(&relative, path, |r| self.dir.join(r).is_file())?;
            return read(&self.dir.join(&file), &file);
        }
        if !self.embedded.is_empty() {
            let file = pick(&relative, path, |r| self.embedded_file(r).is_some())?;
            let body = self
                .embedded_file(&file)
                .ok_or_else(|| ApiError::not_found(path))?;
            return Ok(reply(body, &file));
        }
        if relative.as_os_str().is_empty() {
            Ok(Reply::new(200, "text/html; charset=utf-8", NOT_BUILT_PAGE))
        } else {
            Err(ApiError::not_found(path))
        }
    }

    /// The embedded file at `relative`, if there is one.
    fn embedded_file(&self, relative: &Path) -> Option<&'static [u8]> {
        let key: Vec<_> = relative.iter().map(|p| p.to_string_lossy()).collect();
        let key = key.join("/");
        let at = self
            .embedded
            .binary_search_by(|(name, _)| (*name).cmp(key.as_str()))
            .ok()?;
        Some(self.embedded[at].1)
    }
}

/// The file a request for `relative` gets, given which files exist: the file itself, else
/// `index.html` for a client-side route (no extension); a missing asset is a 404.
fn pick(relative: &Path, path: &str, exists: impl Fn(&Path) -> bool) -> Result<PathBuf, ApiError> {
    if !relative.as_os_str().is_empty() && exists(relative) {
        return Ok(relative.to_path_buf());
    }
    if relative.extension().is_some() {
        return Err(ApiError::not_found(path));
    }
    Ok(PathBuf::from("index.html"))
}

fn read(file: &Path, relative: &Path) -> Result<Reply, ApiError> {
    let body = std::fs::read(file).map_err(|e| {
        crate::log_error!("dashboard file {}: {e}", file.display());
        ApiError::new(500, format!("cannot read {}", relative.display()))
    })?;
    Ok(reply(body, relative))
}

/// A dashboard file's reply: its content type and how long it may be cached.
fn reply(body: impl Into<Vec<u8>>, relative: &Path) -> Reply {
    // Vite fingerprints everything under assets/; index.html must be revalidated.
    let cache = if relative.starts_with("assets") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    Reply::new(200, content_type(relative), body).with_header("Cache-Control", cache)
}

/// The URL path as a relative file path: percent-decoded, with no `..`, `.`, backslash or
/// NUL segment that could leave the dashboard directory.
fn safe_relative_path(path: &str) -> Result<PathBuf, ApiError> {
    let decoded = super::percent_decode(path)
        .ok_or_else(|| ApiError::bad_request("invalid path: bad percent-encoding"))?;
    let mut relative = PathBuf::new();
    for segment in decoded.split('/').filter(|s| !s.is_empty()) {
        if segment == ".." || segment == "." || segment.contains(['\\', '\0', ':']) {
            return Err(ApiError::bad_request(format!(
                "invalid path: segment {segment:?} is not allowed"
            )));
        }
        relative.push(segment);
    }
    Ok(relative)
}

/// The content type of a dashboard file, by extension.
pub fn content_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "ttf" => "font/ttf",
        "wasm" => "application/wasm",
        "txt" => "text/plain; charset=utf-8",
        "webmanifest" => "application/manifest+json",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("minitrue-static-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("assets")).expect("create temp dir");
        dir
    }

    #[test]
    fn missing_build_explains_how_to_build_at_root_only() {
        let f = Frontend::new("/nonexistent/minitrue/dist");
        let r = f.serve("/").expect("root answers");
        assert_eq!(r.status, 200);
        assert!(String::from_utf8_lossy(&r.body).contains("npm run build"));
        assert_eq!(f.serve("/tabs/live").unwrap_err().status, 404);
    }

    #[test]
    fn built_dashboard_serves_files_with_types_and_falls_back_to_index() {
        let dir = temp_dir("built");
        std::fs::write(dir.join("index.html"), "<html>app</html>").unwrap();
        std::fs::write(dir.join("assets/app.js"), "let x;").unwrap();
        let f = Frontend::new(&dir);
        let root = f.serve("/").unwrap();
        assert_eq!(root.content_type, "text/html; charset=utf-8");
        assert_eq!(root.body, b"<html>app</html>");
        let js = f.serve("/assets/app.js").unwrap();
        assert_eq!(js.content_type, "text/javascript; charset=utf-8");
        assert_eq!(js.body, b"let x;");
        assert_eq!(f.serve("/live").unwrap().body, b"<html>app</html>");
        assert_eq!(f.serve("/assets/gone.js").unwrap_err().status, 404);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn embedded_bundle_serves_when_the_directory_has_no_build() {
        static FILES: EmbeddedFiles = &[
            ("assets/app.js", b"let e;"),
            ("index.html", b"<html>embedded</html>"),
        ];
        let f = Frontend::with_embedded("/nonexistent/minitrue/dist", FILES);
        let root = f.serve("/").unwrap();
        assert_eq!(root.body, b"<html>embedded</html>");
        assert_eq!(root.content_type, "text/html; charset=utf-8");
        let js = f.serve("/assets/app.js").unwrap();
        assert_eq!(js.body, b"let e;");
        assert_eq!(js.content_type, "text/javascript; charset=utf-8");
        assert_eq!(f.serve("/live").unwrap().body, b"<html>embedded</html>");
        assert_eq!(f.serve("/assets/gone.js").unwrap_err().status, 404);
    }

    #[test]
    fn a_build_on_disk_comes_before_the_embedded_bundle() {
        static FILES: EmbeddedFiles = &[("index.html", b"<html>old</html>")];
        let dir = temp_dir("disk-first");
        std::fs::write(dir.join("index.html"), "<html>new</html>").unwrap();
        let f = Frontend::with_embedded(&dir, FILES);
        assert_eq!(f.serve("/").unwrap().body, b"<html>new</html>");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn traversal_is_refused_even_percent_encoded() {
        let f = Frontend::new("/nonexistent");
        assert_eq!(f.serve("/../etc/passwd").unwrap_err().status, 400);
        assert_eq!(f.serve("/assets/%2e%2e/%2e%2e/x").unwrap_err().status, 400);
        assert_eq!(f.serve("/a%5c..%5cb").unwrap_err().status, 400);
    }
}
