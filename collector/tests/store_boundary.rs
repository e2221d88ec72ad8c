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

/// Top-level modules of `src/` the store may use: itself and the
/// infrastructure it runs on (settings, the clock, paths).
const STORE_MAY_USE: &[&str] = &["store", "config", "clock", "pki"];

/// Every top-level module of the crate the store may not name: the domain.
fn domain_modules(src: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for e in std::fs::read_dir(src).unwrap().flatten() {
        let p = e.path();
        let name = if p.is_dir() {
            p.file_name().map(|n| n.to_string_lossy().into_owned())
        } else if p.extension().is_some_and(|x| x == "rs") {
            p.file_stem().map(|n| n.to_string_lossy().into_owned())
        } else {
            None
        };
        if let Some(n) = name
            && n != "lib"
            && n != "main"
            && !STORE_MAY_USE.contains(&n.as_str())
        {
            out.insert(n);
        }
    }
    out
}

/// Where `text` names a domain module: the first such line, if any. Doc
/// comments count too: the store names no domain path at all.
fn domain_use(text: &str, domain: &BTreeSet<String>) -> Option<(usize, String)> {
    let names = domain.iter().map(String::as_str).collect::<Vec<_>>().join("|");
    let path = regex::Regex::new(&format!(r"\b(crate|super::super)::({names})\b")).ok()?;
    let group = regex::Regex::new(r"\bcrate::\{([^}]*)\}").ok()?;
    text.lines().enumerate().find_map(|(i, line)| {
        let grouped = group.captures_iter(line).any(|c| {
            c[1].split(',')
                .filter_map(|p| p.trim().split("::").next())
                .any(|first| domain.contains(first.trim()))
        });
        (path.is_match(line) || grouped).then(|| (i + 1, line.trim().to_owned()))
    })
}

#[test]
fn the_store_imports_no_domain_module() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let domain = domain_modules(&src);
    assert!(domain.contains("cases") && domain.contains("writer"), "{domain:?}");
    let mut files = Vec::new();
    sources(&src.join("store"), &mut files);
    assert!(!files.is_empty(), "no sources under src/store/");
    let mut wrong = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap_or(f).to_string_lossy().replace('\\', "/");
        let text = std::fs::read_to_string(f).unwrap_or_default();
        if let Some((line, what)) = domain_use(&text, &domain) {
            wrong.push(format!("src/{rel}:{line}: {what}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "src/store/ names a domain module (give the store its own row types; map them in the domain):\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_domain_check_sees_paths_groups_and_not_infrastructure() {
    let domain: BTreeSet<String> = ["cases", "identity"].iter().map(|s| s.to_string()).collect();
    assert!(domain_use("use crate::cases::Status;", &domain).is_some());
    assert!(domain_use("    let x = crate::identity::admit(db);", &domain).is_some());
    assert!(domain_use("//! ([`crate::cases::hold`])", &domain).is_some());
    assert!(domain_use("use crate::{config, cases::Status};", &domain).is_some());
    assert!(domain_use("use super::super::identity;", &domain).is_some());
    assert!(domain_use("use crate::store::sql::Sql;\nuse crate::config::Synchronous;", &domain).is_none());
    assert!(domain_use("use crate::casesx::Y;", &domain).is_none());
    assert!(domain_use("// the cases module decides", &domain).is_none());
}
