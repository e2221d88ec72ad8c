#![allow(clippy::unwrap_used, clippy::expect_used)]

use caretaker_shared::disk_health::Disk;
use caretaker_shared::wire::{DiskScan, Inventory};

use super::*;
use crate::cases::store::{self as items, apply_signal, person_action};
use crate::cases::{Action, IdentityKey, Policy, Signal, hold};
use crate::export::parse_time;
use crate::store::agents::{Agents, NewAgent};
use crate::store::queue::{CaseQueue, NewCaseMeta, SatisfactionRecord, SlaClock};
use crate::store::reports::{LogRow, ReportRetention};
use crate::store::sql::Sql;
use crate::store::testing::{TestDb, set_agent_enrolled_at, set_agent_interval, set_agent_labels, set_agent_last_seen};

const HOUR: i64 = 3_600_000;

pub(crate) fn t(s: &str) -> i64 {
    parse_time(s).unwrap()
}

/// November 2026.
pub(crate) fn november() -> Period {
    Period {
        from_ms: t("2026-11-01T00:00:00Z"),
        to_ms: t("2026-12-01T00:00:00Z"),
    }
}

pub(crate) fn now() -> i64 {
    t("2026-12-01T00:05:00Z")
}

fn agent(c: &dyn Sql, id: &str, host: &str, customer: &str, last_seen_ms: i64) {
    c.insert_agent(&NewAgent {
        agent_id: id,
        credential_hash: &format!("cred-{id}"),
        host,
        enrolled_at_ms: t("2026-09-01T00:00:00Z"),
        customer: None,
        site: None,
        token_id: None,
        labels: &serde_json::json!({ "customer": customer, "site": "hq" }).to_string(),
    })
    .unwrap();
    set_agent_interval(c, id, 60);
    set_agent_last_seen(c, Some(id), last_seen_ms);
    hold::mark_known(c, host, Some(id), &[], 0).unwrap();
}

fn inventory(c: &dyn Sql, id: &str, seq: u64, at: i64, kernel: &str) {
    let mut inv = Inventory {
        hostname: id.into(),
        os_name: "Debian GNU/Linux".into(),
        os_version: "12".into(),
        kernel: kernel.into(),
        ..Inventory::default()
    };
    inv.dmi.sys_vendor = "Dell Inc.".into();
    inv.dmi.product_name = "PowerEdge R640".into();
    inv.dmi.product_serial = format!("SN-{id}");
    // The disks the fleet's scans read (see `fleet`).
    for (name, serial) in [("sda", "OLD1"), ("sdb", "BAD1")] {
        inv.disks.push(caretaker_shared::wire::DiskInfo {
            name: name.into(),
            model: "M".into(),
            serial: serial.into(),
            capacity_bytes: 2_000_000_000_000,
            interface: "sata".into(),
            ..Default::default()
        });
    }
    c.add_inventory_version(id, seq, at, &serde_json::to_string(&inv).unwrap())
        .unwrap();
}

fn change(c: &dyn Sql, id: &str, seq: u64, at: i64, kind: &str, summary: &str) {
    let change = crate::assets::Change {
        kind: kind.into(),
        subject: "x".into(),
        old: "a".into(),
        new: "b".into(),
        summary: summary.into(),
    };
    c.add_asset_changes(id, at, seq, &[change]).unwrap();
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn signal(
    customer: &str,
    host: &str,
    check: &str,
    component: &str,
    kind: ItemKind,
    severity: Severity,
    at: i64,
    evidence: serde_json::Value,
) -> Signal {
    Signal {
        event: None,
        key: IdentityKey {
            customer: customer.into(),
            asset: host.into(),
            check: check.into(),
            component: component.into(),
        },
        kind,
        severity,
        rule: check.into(),
        firing: true,
        at_ms: at,
        evidence,
    }
}

/// The ids of what [`fleet`] made.
pub(crate) struct Fleet {
    pub resolved_case: i64,
    pub open_case: i64,
    pub fs_finding: i64,
    pub old_finding: i64,
    pub october_case: i64,
    pub globex_case: i64,
}

/// acme: db01 (up, two inventory versions, a failing and an old disk, a
/// resolved case and a forecast finding in November, a case of October) and
/// web01 (down, an open critical case, a finding open since September);
/// globex: other01 with a case in November.
pub(crate) fn fleet(c: &dyn Sql) -> Fleet {
    let p = Policy::default();
    agent(c, "a1", "db01", "acme", now() - 30_000);
    agent(c, "a2", "web01", "acme", t("2026-11-20T00:00:00Z"));
    agent(c, "b1", "other01", "globex", now() - 30_000);
    inventory(c, "a1", 1, t("2026-10-20T00:00:00Z"), "6.1.0-18-amd64");
    inventory(c, "a1", 5, t("2026-11-10T00:00:00Z"), "6.1.0-21-amd64");
    inventory(c, "a1", 9, t("2026-12-03T00:00:00Z"), "6.1.0-22-amd64");
    inventory(c, "b1", 1, t("2026-10-20T00:00:00Z"), "6.1.0-18-amd64");
    // db01's last report before the end of the period, and one after it.
    for (seq, at) in [(20, t("2026-11-30T23:59:30Z")), (21, now() - 30_000)] {
        c.log_report(&LogRow {
            agent_id: "a1",
            seq,
            collected_at_ms: at,
            received_at_ms: at,
            samples: 10,
        })
        .unwrap();
    }
    change(
        c,
        "a1",
        2,
        t("2026-10-25T00:00:00Z"),
        "nic_added",
        "NIC eth9 added (before the period)",
    );
    change(
        c,
        "a1",
        5,
        t("2026-11-10T00:00:00Z"),
        "kernel_changed",
        "kernel 6.1.0-18-amd64 → 6.1.0-21-amd64",
    );
    change(
        c,
        "a1",
        9,
        t("2026-12-03T00:00:00Z"),
        "kernel_changed",
        "kernel 6.1.0-21-amd64 → 6.1.0-22-amd64 (after)",
    );
    change(
        c,
        "b1",
        3,
        t("2026-11-11T00:00:00Z"),
        "disk_replaced",
        "globex disk replaced",
    );
    let disk = |dev: &str, serial: &str, passed: bool, hours: u64| Disk {
        key: format!("serial-M-{serial}"),
        device: dev.into(),
        model: "M".into(),
        serial: serial.into(),
        smart_passed: Some(passed),
        power_on_hours: Some(hours),
        ..Disk::default()
    };
    crate::disks::record_scan(
        c,
        "a1",
        &DiskScan {
            scanned_at_ms: t("2026-11-30T00:00:00Z"),
            disks: vec![
                disk("/dev/sda", "OLD1", true, 50_000),
                disk("/dev/sdb", "BAD1", false, 1_000),
            ],
            error: None,
        },
    )
    .unwrap();

    let ev = serde_json::json!({});
    // October: opened and resolved before the period.
    let october_case = apply_signal(
        c,
        &signal(
            "acme",
            "db01",
            "systemd_unit_failed",
            "cron.service",
            ItemKind::Case,
            Severity::Warning,
            t("2026-10-01T00:00:00Z"),
            ev.clone(),
        ),
        &p,
    )
    .unwrap()
    .item_id()
    .unwrap();
    person_action(c, october_case, Action::Assign, "eve", None, t("2026-10-01T01:00:00Z")).unwrap();
    person_action(c, october_case, Action::Start, "eve", None, t("2026-10-01T02:00:00Z")).unwrap();
    person_action(c, october_case, Action::Resolve, "eve", None, t("2026-10-02T00:00:00Z")).unwrap();

    let opened = t("2026-11-05T00:00:00Z");
    let resolved_case = apply_signal(
        c,
        &signal(
            "acme",
            "db01",
            "disk_failing",
            "/dev/sdb",
            ItemKind::Case,
            Severity::Major,
            opened,
            ev.clone(),
        ),
        &p,
    )
    .unwrap()
    .item_id()
    .unwrap();
    person_action(c, resolved_case, Action::Assign, "eve", None, opened + 2 * HOUR).unwrap();
    person_action(c, resolved_case, Action::Start, "eve", None, opened + 3 * HOUR).unwrap();
    person_action(
        c,
        resolved_case,
        Action::Resolve,
        "eve",
        Some("disk swapped <b>on site</b>"),
        opened + 26 * HOUR,
    )
    .unwrap();

    let open_case = apply_signal(
        c,
        &signal(
            "acme",
            "web01",
            "host_unreachable",
            "",
            ItemKind::Case,
            Severity::Critical,
            t("2026-11-20T00:10:00Z"),
            ev.clone(),
        ),
        &p,
    )
    .unwrap()
    .item_id()
    .unwrap();
    let fs_finding = apply_signal(
        c,
        &signal(
            "acme",
            "db01",
            "filesystem_fills_within_7d",
            "/var",
            ItemKind::Finding,
            Severity::Warning,
            t("2026-11-28T00:00:00Z"),
            serde_json::json!({ "at_ms": t("2026-11-28T00:00:00Z"), "eta_secs": 3.0 * 86_400.0 }),
        ),
        &p,
    )
    .unwrap()
    .item_id()
    .unwrap();
    let old_finding = apply_signal(
        c,
        &signal(
            "acme",
            "web01",
            "reboot_required",
            "",
            ItemKind::Finding,
            Severity::Info,
            t("2026-09-15T00:00:00Z"),
            ev.clone(),
        ),
        &p,
    )
    .unwrap()
    .item_id()
    .unwrap();
    let globex_case = apply_signal(
        c,
        &signal(
            "globex",
            "other01",
            "database_down",
            "main",
            ItemKind::Case,
            Severity::Critical,
            t("2026-11-07T00:00:00Z"),
            ev,
        ),
        &p,
    )
    .unwrap()
    .item_id()
    .unwrap();
    Fleet {
        resolved_case,
        open_case,
        fs_finding,
        old_finding,
        october_case,
        globex_case,
    }
}

fn acme(c: &dyn Sql) -> InspectionReport {
    let p = november();
    build(c, "acme", p.from_ms, p.to_ms, now()).unwrap()
}

#[test]
fn report_covers_the_customers_devices_only() {
    let c = TestDb::new();
    fleet(&c);
    let r = acme(&c);
    let hosts: Vec<&str> = r.systems.iter().map(|d| d.host.as_str()).collect();
    assert_eq!(hosts, ["db01", "web01"]);
    let db = &r.systems[0];
    assert_eq!(db.state, "up");
    assert_eq!(r.systems[1].state, "down");
    assert_eq!(db.model, "Dell Inc. PowerEdge R640");
    assert_eq!(db.serial, "SN-a1");
    assert_eq!(db.os, "Debian GNU/Linux 12");
    assert_eq!(
        db.kernel, "6.1.0-21-amd64",
        "the inventory in force at the end of the period"
    );
    assert_eq!(r.systems[1].inventory_at_ms, None);
    let verdicts: Vec<(&str, &str)> = db
        .disks
        .iter()
        .map(|d| (d.device.as_str(), d.verdict.as_str()))
        .collect();
    assert_eq!(verdicts, [("/dev/sdb", "failing"), ("/dev/sda", "healthy")]);
    assert_eq!(customers(&c).unwrap(), ["acme", "globex"]);
}

#[test]
fn changes_are_those_of_the_period() {
    let c = TestDb::new();
    fleet(&c);
    let r = acme(&c);
    let summaries: Vec<&str> = r.systems[0].changes.iter().map(|c| c.summary.as_str()).collect();
    assert_eq!(summaries, ["kernel 6.1.0-18-amd64 → 6.1.0-21-amd64"]);
    assert!(r.systems[1].changes.is_empty());
}

#[test]
fn problems_risks_and_case_figures() {
    let c = TestDb::new();
    let f = fleet(&c);
    let r = acme(&c);
    let db = &r.systems[0];
    let ids: Vec<i64> = db.problems.iter().map(|p| p.id).collect();
    assert_eq!(
        ids,
        [f.resolved_case, f.fs_finding],
        "October's case ended before the period"
    );
    let resolved = &db.problems[0];
    assert_eq!(resolved.status, "resolved");
    assert!(
        resolved.outcome.starts_with("resolved 2026-11-06 02:00"),
        "{}",
        resolved.outcome
    );
    assert_eq!(resolved.log.len(), 4);
    assert_eq!(resolved.log[3].comment.as_deref(), Some("disk swapped <b>on site</b>"));
    let web: Vec<i64> = r.systems[1].problems.iter().map(|p| p.id).collect();
    assert_eq!(web, [f.old_finding, f.open_case]);

    let risks: Vec<(i64, &str)> = r.open_risks.iter().map(|k| (k.id, k.remedy.as_str())).collect();
    assert_eq!(
        risks,
        [
            (f.fs_finding, "extend the filesystem /var or clean up before 2026-12-01"),
            (f.old_finding, "schedule a reboot in the next maintenance window"),
        ]
    );

    let k = &r.cases;
    assert_eq!(k.count, 2, "{:?}", k.cases);
    assert_eq!(
        k.by_severity,
        BTreeMap::from([("critical".to_string(), 1), ("major".to_string(), 1)])
    );
    assert_eq!(k.resolved, 1);
    assert_eq!(k.mean_time_to_respond_ms, Some(2 * HOUR));
    assert_eq!(k.mean_time_to_resolve_ms, Some(26 * HOUR));
    assert_eq!(k.sla_met_pct, None);
    let lines: Vec<(i64, Option<i64>, Option<i64>)> = k
        .cases
        .iter()
        .map(|l| (l.id, l.time_to_respond_ms, l.time_to_resolve_ms))
        .collect();
    assert_eq!(
        lines,
        [
            (f.resolved_case, Some(2 * HOUR), Some(26 * HOUR)),
            (f.open_case, None, None)
        ]
    );
    assert!(!k.cases.iter().any(|l| l.id == f.globex_case || l.id == f.october_case));
    // Recommendations, spare coverage and satisfaction come from the store.
    assert_eq!(r.recommendations, Some(Vec::new()));
    assert!(r.spare_coverage.is_some());
    let none = Satisfaction {
        answers: 0,
        mean_score: None,
        no_answer: 0,
        comments: vec![],
    };
    assert_eq!(r.satisfaction, Some(none));
    // No case under contract ended in the period.
    assert_eq!(r.cases.sla_met_pct, None);
}

#[test]
fn sla_and_satisfaction_figures_come_from_the_queue() {
    let c = TestDb::new();
    let f = fleet(&c);
    let p = november();
    // The resolved case was under contract and met both clocks; a second
    // one breached its resolution; the customer answered on the first.
    c.add_case_meta(&NewCaseMeta {
        item_id: f.resolved_case,
        source: "detection",
        title: "t",
        description: "",
        reported_by: None,
        contract: Some("acme-24"),
        site: "",
        skill: "hardware",
        response_due_ms: None,
        resolution_due_ms: None,
    })
    .unwrap();
    c.add_satisfaction(
        f.resolved_case,
        &SatisfactionRecord {
            score: Some(4),
            comment: "quick and clean".into(),
            no_answer: false,
            at_ms: p.from_ms + 86_400_000,
            recorded_by: "person:ana".into(),
        },
    )
    .unwrap();
    let r = build(&c, "acme", p.from_ms, p.to_ms, now()).unwrap();
    assert_eq!(r.cases.sla_met_pct, Some(100.0));
    let s = r.satisfaction.clone().unwrap();
    assert_eq!((s.answers, s.mean_score, s.no_answer), (1, Some(4.0), 0));
    assert_eq!(s.comments, ["quick and clean"]);
    c.set_sla_breached(f.resolved_case, SlaClock::Resolution, 1).unwrap();
    let r = build(&c, "acme", p.from_ms, p.to_ms, now()).unwrap();
    assert_eq!(r.cases.sla_met_pct, Some(0.0));
    assert!(html::render(&r).contains("0.0 %"));
    assert!(markdown::render(&r).contains("quick and clean"));
}

#[test]
fn advice_is_drawn_from_the_data() {
    let c = TestDb::new();
    let f = fleet(&c);
    let a = acme(&c).advice.join("\n");
    for want in [
        "web01: has not reported since 2026-11-20 00:00 UTC",
        "web01: no inventory yet",
        "db01: disk /dev/sdb (BAD1) is failing",
        "db01: disk /dev/sda (OLD1) is healthy but has run 50000 hours",
        "web01: a reboot is required",
        &format!(
            "web01: finding {} (reboot_required) has been open for 77 days",
            f.old_finding
        ),
        "1 case(s) opened in the period were not resolved",
    ] {
        assert!(a.contains(want), "{want:?} missing from:\n{a}");
    }
}

#[test]
fn a_customer_without_hosts_still_gets_a_report() {
    let c = TestDb::new();
    fleet(&c);
    let p = november();
    let r = build(&c, "initech", p.from_ms, p.to_ms, now()).unwrap();
    assert!(r.systems.is_empty() && r.open_risks.is_empty() && r.cases.count == 0);
    assert!(html::render(&r).contains("No systems covered"));
    assert!(markdown::render(&r).contains("No systems covered"));
}

#[test]
fn renderings_carry_the_figures_and_the_not_tracked_notes() {
    let c = TestDb::new();
    fleet(&c);
    let r = acme(&c);
    let h = html::render(&r);
    assert!(h.starts_with("<!DOCTYPE html>"));
    assert!(h.contains("@media print"));
    assert!(!h.contains("<script") && !h.contains("src=") && !h.contains("http://") && !h.contains("https://"));
    for want in [
        "db01",
        "web01",
        "kernel 6.1.0-18-amd64 → 6.1.0-21-amd64",
        "extend the filesystem /var or clean up before 2026-12-01",
        "critical: 1, major: 1",
        "1 d 2 h",
        "n/a: no case under contract ended in the period",
        "No replacements recommended.",
        "Covered: 0.0 % of 2 parts",
        "db01: disk sdb (M sata, 2000 GB)",
        "Answers: 0 · no answer: 0 · mean score: n/a",
        "id=\"systems\"",
        "id=\"risks\"",
        "id=\"cases\"",
        "id=\"advice\"",
    ] {
        assert!(h.contains(want), "HTML lacks {want:?}");
    }
    assert!(!h.contains("other01") && !h.contains("globex disk replaced"));
    let m = markdown::render(&r);
    for want in [
        "# Inspection report — acme",
        "### db01",
        "kernel 6.1.0-18-amd64 → 6.1.0-21-amd64",
        "- Cases opened: 2",
        "- By severity: critical: 1, major: 1",
        "- Mean time to resolve: 1 d 2 h",
        "- SLA met: n/a: no case under contract ended in the period",
        "Answers: 0 · no answer: 0 · mean score: n/a",
    ] {
        assert!(m.contains(want), "Markdown lacks {want:?}:\n{m}");
    }
    assert!(!m.contains("other01"));
    let json = serde_json::to_value(&r).unwrap();
    assert_eq!(json["systems"][0]["host"], "db01");
    assert_eq!(json["cases"]["sla_met_pct"], serde_json::Value::Null);
    assert_eq!(json["recommendations"], serde_json::json!([]));
    assert_eq!(json["satisfaction"]["answers"], 0);
}

#[test]
fn extras_fill_the_sections_they_name() {
    let c = TestDb::new();
    fleet(&c);
    let options = Options {
        extras: Extras {
            recommendations: Some(vec![RecommendationLine {
                host: "db01".into(),
                part: "disk M".into(),
                reason: "failing".into(),
                urgency: "now".into(),
            }]),
            spare_coverage: Some(Coverage {
                covered_pct: 87.5,
                parts: 8,
                gaps: vec!["PSU 750 W".into()],
                stock_at_ms: now(),
            }),
            satisfaction: Some(Satisfaction {
                answers: 3,
                mean_score: Some(4.5),
                no_answer: 1,
                comments: vec![],
            }),
            sla_met_pct: Some(90.0),
        },
        ..Options::default()
    };
    let r = build_with(&c, "acme", november(), now(), &options).unwrap();
    let h = html::render(&r);
    for want in ["disk M", "87.5 %", "PSU 750 W", "mean score: 4.5", "90.0 %"] {
        assert!(h.contains(want), "HTML lacks {want:?}");
    }
    assert!(!h.contains("Not tracked yet"));
}

#[test]
fn hostile_text_is_escaped_in_html_and_markdown() {
    let c = TestDb::new();
    let evil = "<script>alert(1)</script>";
    agent(&c, "x1", &format!("db{evil}"), "acme", now());
    inventory(
        &c,
        "x1",
        1,
        t("2026-11-02T00:00:00Z"),
        "6.1 \"><img src=x onerror=alert(1)>",
    );
    change(
        &c,
        "x1",
        2,
        t("2026-11-03T00:00:00Z"),
        "kernel_changed",
        &format!("kernel {evil} | [x](javascript:alert(1))"),
    );
    apply_signal(
        &c,
        &signal(
            "acme",
            &format!("db{evil}"),
            "disk_failing",
            evil,
            ItemKind::Finding,
            Severity::Major,
            t("2026-11-04T00:00:00Z"),
            serde_json::json!({}),
        ),
        &Policy::default(),
    )
    .unwrap();
    let p = november();
    let r = build(&c, "acme", p.from_ms, p.to_ms, now()).unwrap();
    assert_eq!(r.systems.len(), 1);
    let h = html::render(&r);
    assert!(!h.contains("<script>"), "raw script tag in HTML");
    assert!(!h.contains("<img"), "raw img tag in HTML");
    assert!(h.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(h.contains("&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"));
    let m = markdown::render(&r);
    assert!(!m.contains("<script>") && !m.contains("<img"), "raw tags in Markdown");
    assert!(m.contains("&lt;script&gt;"));
    assert!(!m.contains("[x](javascript"), "a link survived: {m}");
    assert!(m.contains("\\|"), "a pipe could break the table");
}

#[test]
fn markdown_escape() {
    assert_eq!(markdown::escape("a*b_c|d\ne<f>&"), "a\\*b\\_c\\|d e&lt;f&gt;&amp;");
    assert_eq!(markdown::escape("# x - y"), "\\# x - y");
    assert_eq!(markdown::escape("12. x 3.5"), "12\\. x 3.5");
    assert_eq!(markdown::escape("[a](javascript:b)"), "\\[a\\](javascript:b)");
    assert_eq!(markdown::escape("6.1.0-21"), "6.1.0-21");
}

#[test]
fn stored_reports_round_trip_and_one_schedule_report_per_period() {
    let c = TestDb::new();
    fleet(&c);
    let p = november();
    assert!(!stored::exists(&c, "acme", p, stored::Trigger::Schedule).unwrap());
    let id = stored::generate(&c, "acme", p, now(), stored::Trigger::Schedule, &Options::default()).unwrap();
    assert!(stored::exists(&c, "acme", p, stored::Trigger::Schedule).unwrap());
    assert!(!stored::exists(&c, "acme", p, stored::Trigger::OnDemand).unwrap());
    let again = stored::generate(&c, "acme", p, now(), stored::Trigger::Schedule, &Options::default());
    assert!(
        again.is_err(),
        "a second scheduled report of the same period is refused"
    );
    stored::generate(&c, "acme", p, now(), stored::Trigger::OnDemand, &Options::default()).unwrap();
    stored::generate(&c, "globex", p, now(), stored::Trigger::OnDemand, &Options::default()).unwrap();
    assert_eq!(stored::list(&c, Some("acme")).unwrap().len(), 2);
    assert_eq!(stored::list(&c, None).unwrap().len(), 3);
    let s = stored::get(&c, id).unwrap().unwrap();
    assert_eq!(s.summary.trigger, "schedule");
    assert_eq!(s.html, html::render(&acme(&c)));
    let v: serde_json::Value = serde_json::from_str(&s.json).unwrap();
    assert_eq!(v["customer"], "acme");
    assert!(s.markdown.contains("### db01"));
    assert!(stored::get(&c, 9_999).unwrap().is_none());
}

/// The whole renderings of the test fleet against `testdata/inspection/`;
/// `UPDATE_GOLDEN=1 cargo test -p caretaker-collector --lib report::` rewrites them.
#[test]
fn golden_renderings() {
    let c = TestDb::new();
    fleet(&c);
    let r = acme(&c);
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata/inspection");
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut stale = Vec::new();
    for (file, text) in [
        ("acme-2026-11.html", html::render(&r)),
        ("acme-2026-11.md", markdown::render(&r)),
        ("acme-2026-11.json", serde_json::to_string_pretty(&r).unwrap() + "\n"),
    ] {
        let path = dir.join(file);
        if update {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &text).unwrap();
        } else if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            stale.push(file);
        }
    }
    assert!(
        stale.is_empty(),
        "{stale:?} differ from the golden files in {}; rerun with UPDATE_GOLDEN=1 and review the diff",
        dir.display()
    );
}

#[test]
fn a_case_no_person_touched_has_no_response_time() {
    let c = TestDb::new();
    agent(&c, "a1", "db01", "acme", now());
    let p = Policy::default();
    let at = t("2026-11-10T00:00:00Z");
    let mut s = signal(
        "acme",
        "db01",
        "database_down",
        "main",
        ItemKind::Case,
        Severity::Major,
        at,
        serde_json::json!({}),
    );
    let id = apply_signal(&c, &s, &p).unwrap().item_id().unwrap();
    s.firing = false;
    s.at_ms = at + 10 * 60_000;
    apply_signal(&c, &s, &p).unwrap();
    crate::cases::store::tick_all(&c, &p, at + HOUR).unwrap();
    let r = acme(&c);
    assert_eq!(r.cases.cases.len(), 1);
    let line = &r.cases.cases[0];
    assert_eq!((line.id, line.status.as_str()), (id, "resolved"));
    assert_eq!(line.time_to_respond_ms, None, "the rule resolved it: nobody responded");
    assert_eq!(line.time_to_resolve_ms, Some(HOUR));
    assert_eq!(r.cases.mean_time_to_respond_ms, None);
    assert!(html::render(&r).contains("<td>n/a</td>"));
}

#[test]
fn recommendations_and_spare_coverage_come_from_the_store() {
    use crate::predict::{Part, PartType, Raise, Urgency, records};
    let c = TestDb::new();
    fleet(&c);
    let raise = |customer: &str, serial: &str| Raise {
        agent_id: "a1".into(),
        host: "db01".into(),
        customer: customer.into(),
        part_type: PartType::Disk,
        part: Part {
            model: "ST4000NM".into(),
            serial: serial.into(),
            slot: "/dev/sdb".into(),
            interface: "sata".into(),
            capacity_bytes: Some(4_000_000_000_000),
        },
        reason: "pending_sectors_not_reallocated".into(),
        evidence: serde_json::json!({}),
        risk: "high".into(),
        urgency: Urgency::WithinDays(14),
        item_id: None,
        at_ms: t("2026-11-20T00:00:00Z"),
    };
    records::raise(&c, &raise("acme", "BAD1")).unwrap();
    records::raise(&c, &raise("globex", "OTHER")).unwrap();
    // Dismissed before the end of the period, and raised after it: not in force then.
    let id = |r: records::Raised| match r {
        records::Raised::Created(id) => id,
        other => panic!("{other:?}"),
    };
    let early = id(records::raise(&c, &raise("acme", "EARLY")).unwrap());
    let dismiss = records::RecAction::Dismiss {
        reason: "spare on site".into(),
    };
    records::act(&c, early, &dismiss, t("2026-11-25T00:00:00Z")).unwrap();
    let mut after = raise("acme", "AFTER");
    after.at_ms = t("2026-12-02T00:00:00Z");
    records::raise(&c, &after).unwrap();
    let r = acme(&c);
    let recs = r.recommendations.clone().unwrap();
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert_eq!(recs[0].part, "disk /dev/sdb (BAD1)");
    assert!(recs[0].urgency.starts_with("within_days (by "), "{recs:?}");
    assert!(recs[0].urgency.ends_with(", open)"), "{recs:?}");
    // Dismissed after the end of the period: in force then, and said so.
    let bad1 = records::list(&c, &records::Filter::default())
        .unwrap()
        .into_iter()
        .find(|r| r.part.serial == "BAD1")
        .unwrap();
    records::act(&c, bad1.id, &dismiss, t("2026-12-03T00:00:00Z")).unwrap();
    let recs = acme(&c).recommendations.unwrap();
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert!(recs[0].urgency.ends_with(", dismissed since 2026-12-03)"), "{recs:?}");
    let h = html::render(&r);
    assert!(h.contains("pending_sectors_not_reallocated"));
    assert!(r.spare_coverage.is_some());
}

/// A contract for acme with an on-call rotation: a new hardware case is
/// given to ana by `rule:assignment` before any person acts.
const ROTATION: &str = r#"
[[customer]]
name = "acme"
sites = ["hq"]

[[contract]]
name = "acme-24"
customer = "acme"
covers = { labels = { customer = "acme" } }
hours = "7x24"
time_zone = "UTC"
response = { major = "4h" }
resolution = { major = "2d" }

[[engineer]]
name = "ana"
skills = ["hardware"]
sites = ["hq"]
level = "L1"

[[rotation]]
site = "hq"
skill = "hardware"
members = ["ana"]
shift = "1w"
start = "2026-10-05T00:00:00Z"
"#;

#[test]
fn response_figures_count_a_persons_first_action_after_the_rotation_assigned_the_case() {
    use crate::queue::{self, CaseAction};
    let c = TestDb::new();
    agent(&c, "a1", "db01", "acme", now());
    let contracts = crate::contracts::parse_file(ROTATION, std::path::Path::new("contracts.toml")).unwrap();
    let opened = t("2026-11-10T14:00:00Z");
    let s = signal(
        "acme",
        "db01",
        "disk_failing",
        "/dev/sdb",
        ItemKind::Case,
        Severity::Major,
        opened,
        serde_json::json!({}),
    );
    let id = apply_signal(&c, &s, &Policy::default()).unwrap().item_id().unwrap();
    queue::settle(&c, &contracts, 0, opened).unwrap();
    let (item, log) = items::get(&c, id).unwrap().unwrap();
    assert_eq!(item.status, Status::Assigned, "the rotation moved it out of new");
    assert!(log.iter().any(|l| l.actor == "rule:assignment"), "{log:?}");
    let acked = opened + 30 * 60_000;
    let ack = CaseAction::Acknowledge { comment: None };
    queue::act(&c, &contracts, id, &ack, "ana", acked).unwrap();

    let r = acme(&c);
    let line = &r.cases.cases[0];
    assert_eq!(line.id, id);
    assert_eq!(line.time_to_respond_ms, Some(30 * 60_000));
    assert_eq!(r.cases.mean_time_to_respond_ms, Some(30 * 60_000));
    assert!(markdown::render(&r).contains("- Mean time to respond: 30 min"));

    // The case page, the queue and the SLA clock say the same.
    let (item, log) = items::get(&c, id).unwrap().unwrap();
    let meta = queue::meta(&c, id).unwrap().unwrap();
    let sla = queue::sla_view(contracts.named("acme-24"), &item, &meta, &log, now());
    assert_eq!(sla.response.unwrap().met_at_ms, Some(acked));
    assert_eq!(queue::first_response_ms(&log), Some(acked));
}

#[test]
fn the_report_shows_a_cases_status_changes_and_public_comments_never_internal_notes() {
    use crate::cases::store::Visibility;
    use crate::queue::{self, CaseAction};
    let c = TestDb::new();
    agent(&c, "a1", "db01", "acme", now());
    let contracts = crate::contracts::parse_file(ROTATION, std::path::Path::new("contracts.toml")).unwrap();
    let opened = t("2026-11-10T14:00:00Z");
    let s = signal(
        "acme",
        "db01",
        "disk_failing",
        "/dev/sdb",
        ItemKind::Case,
        Severity::Major,
        opened,
        serde_json::json!({}),
    );
    let id = apply_signal(&c, &s, &Policy::default()).unwrap().item_id().unwrap();
    queue::settle(&c, &contracts, 0, opened).unwrap();
    let comment = |text: &str, visibility| CaseAction::Comment {
        comment: text.into(),
        visibility: Some(visibility),
    };
    for (i, action) in [
        CaseAction::Acknowledge { comment: None },
        comment("INTERNAL: the vendor is slow", Visibility::Internal),
        comment("A new disk arrives tomorrow", Visibility::Public),
    ]
    .iter()
    .enumerate()
    {
        let at = opened + (i as i64 + 1) * 60_000;
        queue::act(&c, &contracts, id, action, "ana", at).unwrap();
    }
    let r = acme(&c);
    let problem = r.systems[0].problems.iter().find(|p| p.id == id).unwrap();
    let comments: Vec<&str> = problem.log.iter().filter_map(|l| l.comment.as_deref()).collect();
    assert!(comments.contains(&"A new disk arrives tomorrow"), "{comments:?}");
    assert!(
        !comments
            .iter()
            .any(|c| c.contains("INTERNAL") || c.contains("contract")),
        "{comments:?}"
    );
    assert!(problem.log.iter().any(|l| l.to == "in_progress"), "{:?}", problem.log);
    for text in [markdown::render(&r), html::render(&r)] {
        assert!(!text.contains("INTERNAL"), "{text}");
        assert!(text.contains("A new disk arrives tomorrow"), "{text}");
    }
}

/// The bug report: a November report of a customer whose only host came in
/// December showed December's open risks, today's recommendations, today's
/// spare coverage and "a reboot is required".
#[test]
fn a_period_before_the_customers_hosts_came_shows_nothing_of_later() {
    use crate::predict::{Part, PartType, Raise, Urgency, records};
    let c = TestDb::new();
    let later = t("2026-12-10T00:00:00Z");
    agent(&c, "n1", "new01", "acme", later - 60_000);
    set_agent_enrolled_at(&c, "n1", t("2026-12-02T00:00:00Z"));
    let mut inv = Inventory {
        hostname: "new01".into(),
        ..Inventory::default()
    };
    inv.disks.push(caretaker_shared::wire::DiskInfo {
        name: "sda".into(),
        model: "M".into(),
        serial: "BAD9".into(),
        capacity_bytes: 4_000_000_000_000,
        interface: "sata".into(),
        ..Default::default()
    });
    c.add_inventory_version(
        "n1",
        1,
        t("2026-12-02T00:00:00Z"),
        &serde_json::to_string(&inv).unwrap(),
    )
    .unwrap();
    crate::disks::record_scan(
        &c,
        "n1",
        &DiskScan {
            scanned_at_ms: t("2026-12-03T00:00:00Z"),
            disks: vec![Disk {
                key: "serial-M-BAD9".into(),
                device: "/dev/sda".into(),
                model: "M".into(),
                serial: "BAD9".into(),
                smart_passed: Some(false),
                ..Disk::default()
            }],
            error: None,
        },
    )
    .unwrap();
    apply_signal(
        &c,
        &signal(
            "acme",
            "new01",
            "reboot_required",
            "",
            ItemKind::Finding,
            Severity::Info,
            t("2026-12-03T00:00:00Z"),
            serde_json::json!({}),
        ),
        &Policy::default(),
    )
    .unwrap();
    records::raise(
        &c,
        &Raise {
            agent_id: "n1".into(),
            host: "new01".into(),
            customer: "acme".into(),
            part_type: PartType::Disk,
            part: Part {
                model: "M".into(),
                serial: "BAD9".into(),
                slot: "/dev/sda".into(),
                interface: "sata".into(),
                capacity_bytes: Some(4_000_000_000_000),
            },
            reason: "smart_status_failed".into(),
            evidence: serde_json::json!({}),
            risk: "high".into(),
            urgency: Urgency::ReplaceNow,
            item_id: None,
            at_ms: t("2026-12-03T00:00:00Z"),
        },
    )
    .unwrap();

    let p = november();
    let r = build(&c, "acme", p.from_ms, p.to_ms, later).unwrap();
    assert!(r.systems.is_empty());
    assert!(r.open_risks.is_empty(), "{:?}", r.open_risks);
    assert_eq!(r.recommendations, Some(vec![]));
    let cov = r.spare_coverage.clone().unwrap();
    assert_eq!((cov.parts, cov.gaps.len()), (0, 0), "{cov:?}");
    assert_eq!(
        r.advice,
        ["no systems of customer acme were covered in the period: enroll agents with the label customer=acme"]
    );
    let h = html::render(&r);
    assert!(
        !h.contains("reboot") && !h.contains("BAD9") && !h.contains("new01"),
        "{h}"
    );

    // December's report has all of it.
    let dec = build(&c, "acme", t("2026-12-01T00:00:00Z"), later, later).unwrap();
    assert_eq!(dec.systems[0].disks[0].verdict, "failing");
    assert_eq!(dec.open_risks.len(), 1);
    assert_eq!(dec.recommendations.as_ref().map(Vec::len), Some(1));
    assert_eq!(dec.spare_coverage.as_ref().map(|c| c.parts), Some(1));
    assert!(
        dec.advice
            .iter()
            .any(|a| a == "new01: a reboot is required; schedule it")
    );
}

/// Whatever happens after the period, its report made later says what the
/// report made right at its end said (but for when it was made and the
/// stock, which keeps no history).
#[test]
fn a_report_made_later_says_what_the_report_made_at_the_end_said() {
    use crate::predict::{Part, PartType, Raise, Urgency, records};
    let c = TestDb::new();
    let f = fleet(&c);
    let then = acme(&c);
    let dec = |d: u32| t(&format!("2026-12-{d:02}T00:00:00Z"));

    // December: the open case resolved, the risk fixed, a new risk, a disk
    // read failing, a new recommendation, a new host, db01 reporting on.
    person_action(&c, f.open_case, Action::Assign, "eve", None, dec(2)).unwrap();
    person_action(&c, f.open_case, Action::Start, "eve", None, dec(2) + HOUR).unwrap();
    person_action(&c, f.open_case, Action::Resolve, "eve", None, dec(3)).unwrap();
    person_action(&c, f.fs_finding, Action::Fix, "eve", None, dec(3)).unwrap();
    person_action(&c, f.old_finding, Action::Fix, "eve", None, dec(4)).unwrap();
    apply_signal(
        &c,
        &signal(
            "acme",
            "db01",
            "edac_uncorrected_errors",
            "DIMM_A1",
            ItemKind::Finding,
            Severity::Major,
            dec(4),
            serde_json::json!({}),
        ),
        &Policy::default(),
    )
    .unwrap();
    let failing = Disk {
        key: "serial-M-OLD1".into(),
        device: "/dev/sda".into(),
        model: "M".into(),
        serial: "OLD1".into(),
        smart_passed: Some(false),
        power_on_hours: Some(50_300),
        ..Disk::default()
    };
    crate::disks::record_scan(
        &c,
        "a1",
        &DiskScan {
            scanned_at_ms: dec(5),
            disks: vec![failing],
            error: None,
        },
    )
    .unwrap();
    records::raise(
        &c,
        &Raise {
            agent_id: "a1".into(),
            host: "db01".into(),
            customer: "acme".into(),
            part_type: PartType::Disk,
            part: Part {
                model: "M".into(),
                serial: "OLD1".into(),
                slot: "/dev/sda".into(),
                interface: "sata".into(),
                capacity_bytes: None,
            },
            reason: "smart_status_failed".into(),
            evidence: serde_json::json!({}),
            risk: "high".into(),
            urgency: Urgency::ReplaceNow,
            item_id: None,
            at_ms: dec(5),
        },
    )
    .unwrap();
    agent(&c, "a3", "db02", "acme", dec(9));
    set_agent_enrolled_at(&c, "a3", dec(6));
    set_agent_last_seen(&c, Some("a1"), dec(9));

    let p = november();
    let mut later = build(&c, "acme", p.from_ms, p.to_ms, dec(10)).unwrap();
    assert_eq!(later.spare_coverage.as_ref().map(|c| c.stock_at_ms), Some(dec(10)));
    later.generated_at_ms = then.generated_at_ms;
    later.spare_coverage.clone_from(&then.spare_coverage);
    assert_eq!(later, then);
    assert_eq!(html::render(&later), html::render(&then));
}

/// A host's state at the end of a period long past: the report log (kept a
/// day) is gone, so its `host_unreachable` case says whether it was down.
#[test]
fn host_state_at_the_end_of_an_old_period_comes_from_its_unreachable_case() {
    let c = TestDb::new();
    fleet(&c);
    let later = t("2027-01-10T00:00:00Z");
    c.prune_reports(&ReportRetention {
        report_log_before_ms: i64::MAX,
        raw_reports_before_ms: i64::MIN,
    })
    .unwrap();
    set_agent_last_seen(&c, None, later - 30_000);
    let p = november();
    let r = build(&c, "acme", p.from_ms, p.to_ms, later).unwrap();
    let states: Vec<(&str, &str, Option<i64>)> = r
        .systems
        .iter()
        .map(|d| (d.host.as_str(), d.state.as_str(), d.last_seen_ms))
        .collect();
    assert_eq!(states, [("db01", "up", None), ("web01", "down", None)]);
    assert!(
        r.advice
            .iter()
            .any(|a| a == "web01: was not reporting at the end of the period; check the host and its agent"),
        "{:?}",
        r.advice
    );
    assert!(markdown::render(&r).contains("last report not known any more"));
}

#[test]
fn a_future_end_or_an_unknown_customer_is_refused() {
    let c = TestDb::new();
    fleet(&c);
    let p = november();
    let msg = |e: ReportError| (e.to_string(), e.for_flags());

    assert_eq!(requested_period(Some(p.from_ms), Some(p.to_ms), now()).unwrap(), p);
    assert_eq!(requested_period(None, None, now()).unwrap(), p);
    let (api, cli) = msg(requested_period(Some(p.from_ms), Some(now() + 1), now()).unwrap_err());
    assert!(api.starts_with("to: 2026-12-01 00:05 UTC is in the future"), "{api}");
    assert!(cli.starts_with("--to: "), "{cli}");
    let (api, _) = msg(requested_period(Some(p.to_ms), Some(p.from_ms), now()).unwrap_err());
    assert_eq!(api, "to: must be after the start of the period");
    let (api, cli) = msg(requested_period(Some(p.from_ms), None, now()).unwrap_err());
    assert!(api.starts_with("from, to: give both") && cli.starts_with("--from, --to: give both"));

    assert_eq!(requested_customer(&c, " acme ", &[]).unwrap(), "acme");
    let (api, _) = msg(requested_customer(&c, "initech", &[]).unwrap_err());
    assert!(
        api.starts_with("customer: \"initech\" is not a known customer"),
        "{api}"
    );
    assert!(matches!(
        requested_customer(&c, " ", &[]),
        Err(ReportError::BadRequest {
            fields: ["customer"],
            ..
        })
    ));
    // Known from the contracts (or the configured report customers).
    let contracts =
        crate::contracts::parse_file("[[customer]]\nname = \"initech\"\n", std::path::Path::new("c.toml")).unwrap();
    assert_eq!(contracts.customer_names(), ["initech"]);
    assert_eq!(
        requested_customer(&c, "initech", &["initech".into()]).unwrap(),
        "initech"
    );
    // Known from its cases, though no agent carries its label any more.
    set_agent_labels(&c, "b1", "{}");
    assert_eq!(requested_customer(&c, "globex", &[]).unwrap(), "globex");
}
