//! The dashboard: the built React app in `frontend/dist` (relative to the working
//! directory, or `$MINITRUE_FRONTEND_DIR`). `/` serves `index.html`, other paths their file
//! with its content type, and unknown paths without an extension fall back to `index.html`
//! so client-side routes survive a reload. Without a build, `/` explains how to make one.

use super::errors::ApiError;
use super::Reply;
use std::path::{Path, PathBuf};

/// Where the dashboard is looked for when `$MINITRUE_FRONTEND_DIR` is not set.
pub const DEFAULT_FRONTEND_DIR: &str = "frontend/dist";

/// Environment variable overriding [`DEFAULT_FRONTEND_DIR`].
pub const FRONTEND_DIR_ENV: &str = "MINITRUE_FRONTEND_DIR";

/// Shown at `/` when the dashboard has not been built.
const NOT_BUILT_PAGE: &str = "<!doctype html>
<html><head><meta charset=\"utf-8\"><title>MiniTrue</title></head>
<body style=\"font-family:sans-serif;max-width:40em;margin:3em auto\">
<h1>MiniTrue</h1>
<p>The node is running, but the dashboard has not been built.</p>
<p>Build it with <code>cd frontend &amp;&amp; npm ci &amp;&amp; npm run build</code>, then reload
this page (the server looks for <code>frontend/dist</code> in its working directory, or in
<code>$MINITRUE_FRONTEND_DIR</code>).</p>
<p>The API answers meanwhile: try <a href=\"/health\">/health</a> and
<a href=\"/status\">/status</a>.</p>
</body></html>
";

/// The directory the dashboard is served from.
#[derive(Clone, Debug)]
pub struct Frontend {
    dir: PathBuf,
}

impl Frontend {
    pub fn new(dir: impl Into<PathBuf>) -> Frontend {
        Frontend { dir: dir.into() }
    }

    /// `$MINITRUE_FRONTEND_DIR`, else `frontend/dist`.
    pub fn from_env() -> Frontend {
        Frontend::new(
            std::env::var_os(FRONTEND_DIR_ENV)
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_FRONTEND_DIR)),
        )
    }

    /// Answers a GET for `path` (already known not to be an API endpoint).
    pub fn serve(&self, path: &str) -> Result<Reply, ApiError> {
        let relative = safe_relative_path(path)?;
        let index = self.dir.join("index.html");
        if !index.is_file() {
            return if relative.as_os_str().is_empty() {
                Ok(Reply::new(200, "text/html; charset=utf-8", NOT_BUILT_PAGE))
            } else {
                Err(ApiError::not_found(path))
            };
        }
        let file = self.dir.join(&relative);
        if !relative.as_os_str().is_empty() && file.is_file() {
            return read(&file, &relative);
        }
        // A client-side route (no extension) gets the app; a missing asset is a 404.
        if relative.extension().is_some() {
            return Err(ApiError::not_found(path));
        }
        read(&index, Path::new("index.html"))
    }
}

fn read(file: &Path, relative: &Path) -> Result<Reply, ApiError> {
    let body = std::fs::read(file).map_err(|e| {
        crate::log_error!("dashboard file {}: {e}", file.display());
        ApiError::new(500, format!("cannot read {}", relative.display()))
    })?;
    // Vite fingerprints everything under assets/; index.html must be revalidated.
    let cache = if relative.starts_with("assets") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    Ok(Reply::new(200, content_type(relative), body).with_header("Cache-Control", cache))
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
    fn traversal_is_refused_even_percent_encoded() {
        let f = Frontend::new("/nonexistent");
        assert_eq!(f.serve("/../etc/passwd").unwrap_err().status, 400);
        assert_eq!(f.serve("/assets/%2e%2e/%2e%2e/x").unwrap_err().status, 400);
        assert_eq!(f.serve("/a%5c..%5cb").unwrap_err().status, 400);
    }
}
