//! What the benchmark binaries share: writing a result table into its own section of
//! `docs/benchmarks.md`, between `<!-- NAME:start -->` and `<!-- NAME:end -->`, so each
//! bench refreshes its table in place and leaves the rest of the file alone.

use std::fs;
use std::path::Path;

/// Replaces section `name` of docs/benchmarks.md with `table` (which must start with the
/// start marker and end with the end marker), appending it under `heading` if absent.
pub fn record_section(name: &str, heading: &str, table: &str) -> std::io::Result<()> {
    let start = format!("<!-- {name}:start -->");
    let end = format!("<!-- {name}:end -->");
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/benchmarks.md");
    let existing = fs::read_to_string(&path).unwrap_or_default();
    let updated = match (existing.find(&start), existing.find(&end)) {
        (Some(a), Some(b)) if a < b => format!(
            "{}{}{}",
            &existing[..a],
            table.trim_end(),
            &existing[b + end.len()..]
        ),
        _ => format!("{}\n\n## {heading}\n\n{table}", existing.trim_end()),
    };
    fs::write(&path, updated)?;
    println!("recorded in {}", path.display());
    Ok(())
}
