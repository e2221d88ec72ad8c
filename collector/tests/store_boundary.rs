//! The storage boundary as a check: outside `src/store/`, no module names a
//! database driver or carries SQL text. Domain code calls the store's
//! operations; only `store/` knows there is a database, and which.
//!
//! Modules that still hold SQL while the store layer takes it over are
//! listed in `MOVING`; the list only shrinks: a listed module that no
//! longer holds any fails the check until it is taken off the list.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Modules whose statements have not moved into `store/` yet.
const MOVING: &[&str] = &[];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// What in `text` shows a database: the first offending line, if any.
fn offence(text: &str) -> Option<(usize, String)> {
    // The crates themselves, not the store's own `store::postgres` module.
    let driver = regex::Regex::new(r"(^|[^:\w])(rusqlite|postgres)::|\buse (rusqlite|postgres)\b").ok()?;
    let sql = regex::Regex::new(
        r"\b(SELECT\s+[\w*(]|INSERT\s+(OR\s+[A-Z]+\s+)?INTO\s|UPDATE\s+\w+\s+SET\s|DELETE\s+FROM\s|(CREATE|DROP|ALTER)\s+(UNIQUE\s+)?(TABLE|INDEX|TRIGGER)\s|PRAGMA\s)",
    )
    .ok()?;
    text.lines().enumerate().find_map(|(i, line)| {
        // Comments may name what the store does.
        let code = !line.trim_start().starts_with("//");
        let hit = code && (driver.is_match(line) || sql.is_match(line));
        hit.then(|| (i + 1, line.trim().to_owned()))
    })
}

#[test]
fn no_module_outside_the_store_names_a_driver_or_holds_sql() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let moving: BTreeSet<&str> = MOVING.iter().copied().collect();
    let mut wrong = Vec::new();
    let mut clean_but_listed = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap_or(f).to_string_lossy().replace('\\', "/");
        if rel.starts_with("store/") {
            continue;
        }
        let text = std::fs::read_to_string(f).unwrap_or_default();
        match (offence(&text), moving.contains(rel.as_str())) {
            (Some((line, what)), false) => wrong.push(format!("src/{rel}:{line}: {what}")),
            (None, true) => clean_but_listed.push(rel),
            _ => {}
        }
    }
    assert!(
        wrong.is_empty(),
        "SQL or a driver outside src/store/ (move it into a store operation):\n{}",
        wrong.join("\n")
    );
    let missing: Vec<&str> = MOVING.iter().copied().filter(|m| !src.join(m).exists()).collect();
    assert!(missing.is_empty(), "listed in MOVING but not there: {missing:?}");
    assert!(
        clean_but_listed.is_empty(),
        "no longer hold SQL; take them off MOVING in tests/store_boundary.rs: {clean_but_listed:?}"
    );
}

#[test]
fn the_check_sees_sql_and_drivers_and_not_prose() {
    assert!(offence("let x = 1;\nconn.execute(\"DELETE FROM items WHERE id = ?1\")").is_some());
    assert!(offence("use rusqlite::Connection;").is_some());
    assert!(offence("\"SELECT id FROM t\"").is_some());
    assert!(offence("\"INSERT OR IGNORE INTO t\"").is_some());
    assert!(offence("\"UPDATE items SET status = ?1\"").is_some());
    assert!(offence("let c: postgres::Client;").is_some());
    // Words in comments and messages are not SQL.
    assert!(offence("// select the newest report; update the item; delete it").is_none());
    assert!(offence("    /// How often `PRAGMA quick_check` runs").is_none());
    assert!(offence("/// Stores the report (the store decides).").is_none());
}
