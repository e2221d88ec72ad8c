//! `caretaker-collector report`: the inspection report of a store made by
//! `init`, in each format, to standard output or a file; bad flags (a `--to`
//! in the future, a customer nothing names) exit 2 naming the flag; a
//! customer of the contracts without hosts still gets a report.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::{Command, Output};

use caretaker_collector::cases::store::{apply_signal, person_action};
use caretaker_collector::cases::{Action, IdentityKey, ItemKind, Policy, Severity, Signal, hold};
use caretaker_collector::export::parse_time;
use caretaker_collector::pki::Paths;
use caretaker_collector::store;
use rusqlite::params;

fn t(s: &str) -> i64 {
    parse_time(s).unwrap()
}

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_caretaker-collector")
}

fn run(args: &[&str]) -> Output {
    Command::new(bin()).arg("report").args(args).output().unwrap()
}

/// A data directory with db01 (acme) and other01 (globex): a kernel change
/// and a resolved case of db01 in November 2026.
fn populate(dir: &Path) {
    let place = caretaker_collector::store::place::Place::of(&Default::default(), dir).unwrap();
    caretaker_collector::serve::init(dir, &["localhost".into()], None, &place).unwrap();
    let c = store::open(
        &Paths::new(dir).database,
        caretaker_collector::config::Synchronous::Normal,
    )
    .unwrap();
    for (id, host, customer) in [("a1", "db01", "acme"), ("b1", "other01", "globex")] {
        c.execute(
            "INSERT INTO agents(agent_id, credential_hash, host, enrolled_at_ms, labels, interval_secs, last_seen_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, 60, ?6)",
            params![
                id,
                format!("cred-{id}"),
                host,
                t("2026-10-01T00:00:00Z"),
                format!(r#"{{"customer":"{customer}"}}"#),
                t("2026-11-30T00:00:00Z")
            ],
        )
        .unwrap();
        hold::mark_known(&c, host, Some(id), &[], 0).unwrap();
        c.execute(
            "INSERT INTO inventory(agent_id, seq, collected_at_ms, doc) VALUES (?1, 1, ?2, ?3)",
            params![
                id,
                t("2026-10-01T00:00:00Z"),
                format!(
                    r#"{{"hostname":"{host}","os_name":"Debian GNU/Linux","os_version":"12","kernel":"6.1.0-21-amd64","arch":"x86_64","cpu_model":"x","cpu_cores":4,"memory_bytes":1}}"#
                )
            ],
        )
        .unwrap();
        c.execute(
            "INSERT INTO asset_changes(agent_id, at_ms, seq, idx, kind, subject, old, new, summary)
             VALUES (?1, ?2, 2, 0, 'kernel_changed', 'kernel', 'a', 'b', ?3)",
            params![id, t("2026-11-10T00:00:00Z"), format!("kernel of {host} changed")],
        )
        .unwrap();
    }
    let opened = t("2026-11-05T00:00:00Z");
    let signal = Signal {
        event: None,
        key: IdentityKey {
            customer: "acme".into(),
            asset: "db01".into(),
            check: "disk_failing".into(),
            component: "/dev/sdb".into(),
        },
        kind: ItemKind::Case,
        severity: Severity::Major,
        rule: "disk_failing".into(),
        firing: true,
        at_ms: opened,
        evidence: serde_json::json!({}),
    };
    let id = apply_signal(&c, &signal, &Policy::default())
        .unwrap()
        .item_id()
        .unwrap();
    person_action(&c, id, Action::Assign, "eve", None, opened + 3_600_000).unwrap();
    person_action(&c, id, Action::Start, "eve", None, opened + 7_200_000).unwrap();
    person_action(&c, id, Action::Resolve, "eve", None, opened + 86_400_000).unwrap();
}

const NOV: [&str; 4] = ["--from", "2026-11-01T00:00:00Z", "--to", "2026-12-01T00:00:00Z"];

#[test]
fn report_in_each_format() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path());
    let data = dir.path().to_str().unwrap();
    let base = |format: &'static str| {
        let mut a = vec!["--data-dir", data, "--customer", "acme", "--format", format];
        a.extend(NOV);
        a
    };
    let out = run(&base("json"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let hosts: Vec<&str> = v["systems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["host"].as_str().unwrap())
        .collect();
    assert_eq!(hosts, ["db01"]);
    assert_eq!(v["systems"][0]["changes"][0]["summary"], "kernel of db01 changed");
    assert_eq!(v["cases"]["count"], 1);
    assert_eq!(v["cases"]["by_severity"]["major"], 1);
    assert_eq!(v["cases"]["mean_time_to_respond_ms"], 3_600_000);
    assert_eq!(v["cases"]["mean_time_to_resolve_ms"], 86_400_000);

    let out = run(&base("md"));
    assert!(out.status.success());
    let md = String::from_utf8(out.stdout).unwrap();
    assert!(md.contains("### db01") && md.contains("- Cases opened: 1") && !md.contains("other01"));

    let file = dir.path().join("r.html");
    let mut args = base("html");
    let f = file.to_str().unwrap();
    args.extend(["--output", f]);
    let out = run(&args);
    assert!(out.status.success());
    assert!(out.stdout.is_empty(), "the report went to the file");
    let html = std::fs::read_to_string(&file).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.contains("db01") && !html.contains("other01"));
}

#[test]
fn a_customer_of_the_contracts_without_hosts_gets_a_report_saying_so() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path());
    let contracts = dir.path().join("contracts.toml");
    std::fs::write(&contracts, "[[customer]]\nname = \"initech\"\n").unwrap();
    let mut args = vec![
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--customer",
        "initech",
        "--format",
        "md",
    ];
    args.extend(NOV);
    // Named nowhere: refused, not a quietly empty report.
    let out = run(&args);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("--customer: \"initech\" is not a known customer"), "{err}");
    assert!(out.stdout.is_empty());
    // Named by the contracts: a report saying no systems are covered.
    args.extend(["--contracts", contracts.to_str().unwrap()]);
    let out = run(&args);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("No systems covered"));
}

#[test]
fn bad_flags_exit_2_naming_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    populate(dir.path());
    let data = dir.path().to_str().unwrap();
    for (args, flag) in [
        (vec!["--from", "yesterday", "--to", "2026-12-01T00:00:00Z"], "--from"),
        (vec!["--from", "2026-11-01T00:00:00Z", "--to", "soon"], "--to"),
        (vec!["--format", "pdf"], "--format"),
        (
            vec!["--from", "2026-12-01T00:00:00Z", "--to", "2026-11-01T00:00:00Z"],
            "--to",
        ),
        (vec!["--from", "2026-11-01T00:00:00Z"], "--from"),
        (
            vec!["--from", "2026-11-01T00:00:00Z", "--to", "2999-01-01T00:00:00Z"],
            "--to: ",
        ),
        (vec!["--customer", "acme-typo"], "--customer: "),
    ] {
        let mut all = vec!["--data-dir", data];
        if !args.contains(&"--customer") {
            all.extend(["--customer", "acme"]);
        }
        all.extend(&args);
        let out = run(&all);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(flag), "{args:?}: {err}");
    }
    let out = run(&["--data-dir", "/nonexistent/caretaker", "--customer", "acme"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
}
