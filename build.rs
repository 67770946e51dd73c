//! Embeds the dashboard in the binary, as Prometheus and VictoriaMetrics embed their UIs:
//! when `frontend/dist` holds a build (`npm run build`), every file under it is listed in
//! `$OUT_DIR/dashboard.rs` as `("relative/path", include_bytes!("/absolute/path"))`, sorted
//! by path, and `src/http/static_files.rs` serves them. Without a build the list is empty
//! and `cargo build` still works (no npm needed); the node then says how to build the
//! dashboard.
//!
//! Cargo re-runs this script when anything under `frontend/dist` changes, so a rebuilt
//! bundle is embedded again. Without `frontend/dist` it watches `frontend/` instead (a
//! missing path would make Cargo re-run the script, and rebuild the crate, on every build),
//! so the first `npm run build` is noticed too.

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};

fn main() -> io::Result<()> {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").ok_or_else(|| {
        io::Error::new(io::ErrorKind::NotFound, "OUT_DIR is not set (run by cargo)")
    })?);
    let dist = manifest_dir.join("frontend").join("dist");
    println!("cargo:rerun-if-changed=build.rs");

    let mut files = Vec::new();
    if dist.join("index.html").is_file() {
        println!("cargo:rerun-if-changed=frontend/dist");
        collect(&dist, &dist, &mut files)?;
        files.sort();
    } else {
        println!("cargo:rerun-if-changed=frontend");
    }

    let mut code = String::from("&[\n");
    for (relative, absolute) in &files {
        // `{:?}` of a str is a valid Rust string literal (quotes and escapes included).
        let _ = writeln!(code, "    ({relative:?}, include_bytes!({absolute:?})),");
    }
    code.push(']');
    std::fs::write(out_dir.join("dashboard.rs"), code)
}

/// Every file under `dir`, as (path relative to `root` with `/` separators, absolute path).
fn collect(root: &Path, dir: &Path, files: &mut Vec<(String, String)>) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            collect(root, &path, files)?;
            continue;
        }
        let relative = path.strip_prefix(root).unwrap_or(&path);
        let parts: Option<Vec<&str>> = relative.iter().map(|p| p.to_str()).collect();
        match (parts, path.to_str()) {
            (Some(parts), Some(absolute)) => files.push((parts.join("/"), absolute.to_string())),
            _ => println!(
                "cargo:warning=dashboard file {} skipped: its name is not UTF-8",
                path.display()
            ),
        }
    }
    Ok(())
}
