#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use super::*;
use crate::cases::{CancelReason, HoldReason, Policy};
use crate::spares::{PartReplaced, ServiceReport};

const H: i64 = 3_600_000;
const M: i64 = 60_000;

const FILE: &str = r#"
[[customer]]
name = "acme"
sites = ["hq"]

[[contract]]
name = "acme-office"
customer = "acme"
covers = { labels = { customer = "acme" } }
hours = "5x8"
time_zone = "Europe/Berlin"
response = { critical = "1h", major = "4h" }
resolution = { critical = "8h", major = "2d" }
pausing_holds = ["awaiting_customer"]
escalation = [
  { at = "50%", of = "resolution", action = "notify", to = "team-lead" },
  { at = "100%", of = "resolution", action = "escalate", to = "L2" },
  { at = "100%", of = "response", action = "notify", to = "duty-manager" },
]

[[engineer]]
name = "ana"
skills = ["hardware"]
sites = ["hq"]
level = "L1"

[[engineer]]
name = "ben"
skills = ["os"]
sites = ["hq"]
level = "L1"

[[engineer]]
name = "cy"
skills = ["hardware"]
sites = ["hq"]
level = "L2"

[[rotation]]
site = "hq"
skill = "hardware"
members = ["ana", "cy"]
shift = "1w"
start = "2026-11-23T08:00:00+01:00"
"#;

fn contracts() -> Contracts {
    crate::contracts::parse_file(FILE, Path::new("contracts.toml")).unwrap()
}

/// "2026-11-27T18:00:00+01:00" in ms.
fn at(s: &str) -> i64 {
    s.parse::<jiff::Timestamp>().unwrap().as_millisecond()
}

/// The test store (SQLite, or PostgreSQL with CARETAKER_TEST_STORE), with
/// two known hosts. `_dir` keeps the tests' shape: nothing is kept there.
fn store(_dir: &tempfile::TempDir) -> crate::store::testing::TestDb {
    let conn = crate::store::testing::TestDb::new();
    for (host, customer) in [("db01", "acme"), ("lab01", "nobody")] {
        let labels = serde_json::json!({"customer": customer, "site": "hq"}).to_string();
        crate::store::testing::add_asset(&conn, host, &labels, "{}");
        crate::cases::hold::mark_known(&conn, host, None, &[], 0).unwrap();
    }
    conn
}

fn signal(asset: &str, customer: &str, check: &str, severity: Severity, firing: bool, at_ms: i64) -> Signal {
    Signal {
        event: None,
        key: IdentityKey {
            customer: customer.into(),
            asset: asset.into(),
            check: check.into(),
            component: "/dev/sda".into(),
        },
        kind: ItemKind::Case,
        severity,
        rule: check.into(),
        firing,
        at_ms,
        evidence: serde_json::json!({"summary": format!("{check} on {asset}")}),
    }
}

/// A rule opens a case, as the writer does: apply, then settle.
fn open(conn: &dyn Sql, c: &Contracts, asset: &str, customer: &str, severity: Severity, at_ms: i64) -> i64 {
    let s = signal(asset, customer, "disk_failing", severity, true, at_ms);
    let id = items::apply_signal(conn, &s, &Policy::default())
        .unwrap()
        .item_id()
        .unwrap();
    settle(conn, c, 0, at_ms).unwrap();
    id
}

fn report(parts: Vec<PartReplaced>) -> ServiceReport {
    ServiceReport {
        id: None,
        case_id: None,
        host: String::new(),
        mode: "on_site".into(),
        symptom: "disk failing".into(),
        work_done: "replaced the disk".into(),
        engineer: String::new(),
        minutes: 45,
        parts,
        at_ms: None,
    }
}

fn log_comments(conn: &dyn Sql, id: i64) -> Vec<String> {
    items::get(conn, id)
        .unwrap()
        .unwrap()
        .1
        .into_iter()
        .map(|e| format!("{} {}", e.actor, e.comment.unwrap_or_default()))
        .collect()
}

#[test]
fn a_friday_evening_fault_is_due_on_monday_and_assigned_by_rotation() {
    let dir = tempfile::tempdir().unwrap();
    let conn = store(&dir);
    let c = contracts();
    let opened = at("2026-11-27T18:00:00+01:00");
    let id = open(&conn, &c, "db01", "acme", Severity::Major, opened);
    let m = meta(&conn, id).unwrap().unwrap();
    assert_eq!(m.contract.as_deref(), Some("acme-office"));
    assert!(!m.out_of_scope);
    assert_eq!(m.source, Source::Detection);
    assert_eq!(m.skill, "hardware");
    // 4 h of 5×8 service time from Friday 18:00: Monday 08:00 + 4 h.
    assert_eq!(m.response_due_ms, Some(at("2026-11-30T12:00:00+01:00")));
    // 5×8 is 08:00–17:00 on weekdays: 2 days (48 h) of service time are
    // five such days and 3 h, so the Monday after at 11:00.
    assert_eq!(m.resolution_due_ms, Some(at("2026-12-07T11:00:00+01:00")));
    // The hardware rotation started on Monday 23 Nov with ana for a week.
    assert_eq!(m.assignee.as_deref(), Some("ana"));
    let (item, _) = items::get(&conn, id).unwrap().unwrap();
    assert_eq!(item.status, Status::Assigned);
    // Rule assignment does not count as a person's touch.
    assert!(!item.touched_by_person);
    let log = log_comments(&conn, id);
    assert!(
        log.iter().any(|l| l.starts_with("rule:contract contract acme-office")),
        "{log:?}"
    );
    assert!(
        log.iter()
            .any(|l| l == "rule:assignment assigned to ana (on call for hq)"),
        "{log:?}"
    );
    // Over the weekend no service time passes: nothing breaches or escalates.
    assert_eq!(
        sweep(&conn, &c, 7 * 24 * H, at("2026-11-30T07:59:00+01:00")).unwrap(),
        0
    );
    // Settling again changes nothing.
    assert_eq!(settle(&conn, &c, 0, opened + H).unwrap(), 0);
}

#[test]
fn a_case_on_an_asset_without_contract_is_advisory() {
    let dir = tempfile::tempdir().unwrap();
    let conn = store(&dir);
    let c = contracts();
    let id = open(
        &conn,
        &c,
        "lab01",
        "nobody",
        Severity::Critical,
        at("2026-11-27T10:00:00Z"),
    );
    let m = meta(&conn, id).unwrap().unwrap();
    assert!(m.out_of_scope);
    assert_eq!(m.contract, None);
    assert_eq!(
        (m.response_due_ms, m.resolution_due_ms, m.assignee.as_deref()),
        (None, None, None)
    );
    let (item, log) = items::get(&conn, id).unwrap().unwrap();
    assert_eq!(item.status, Status::New);
    assert_eq!(
        sla_view(None, &item, &m, &log, at("2026-12-27T10:00:00Z")),
        SlaView::default()
    );
    // No escalation ever fires on it.
    assert_eq!(sweep(&conn, &c, 7 * 24 * H, at("2026-12-27T10:00:00Z")).unwrap(), 0);
    assert!(log_comments(&conn, id).iter().any(|l| l.contains("out of scope")));
    // Advice is not counted among the queue's breached or unassigned cases.
    assert_eq!(queue_counts(&conn).unwrap(), []);
}

#[test]
fn escalation_steps_fire_once_at_their_share_and_on_breach() {
    let dir = tempfile::tempdir().unwrap();
    let conn = store(&dir);
    let c = contracts();
    // Critical on Wednesday 09:00 Berlin: response 1 h, resolution 8 h.
    let t0 = at("2026-11-25T09:00:00+01:00");
    let id = open(&conn, &c, "db01", "acme", Severity::Critical, t0);
    // 59 minutes: nothing yet.
    assert_eq!(sweep(&conn, &c, 7 * 24 * H, t0 + 59 * M).unwrap(), 0);
    // 61 minutes, nobody answered: the response breach and its notify step.
    assert_eq!(sweep(&conn, &c, 7 * 24 * H, t0 + 61 * M).unwrap(), 2);
    assert!(meta(&conn, id).unwrap().unwrap().response_breached_at_ms.is_some());
    // Swept again: nothing fires twice.
    assert_eq!(sweep(&conn, &c, 7 * 24 * H, t0 + 62 * M).unwrap(), 0);
    // 4 h 1 min: 50 % of resolution (notify team-lead).
    assert_eq!(sweep(&conn, &c, 7 * 24 * H, t0 + 4 * H + M).unwrap(), 1);
    // 8 h of service time end at 17:00 on Wednesday: on Thursday morning
    // the resolution breach and the move to L2.
    assert_eq!(
        sweep(&conn, &c, 7 * 24 * H, at("2026-11-26T09:01:00+01:00")).unwrap(),
        2
    );
    let m = meta(&conn, id).unwrap().unwrap();
    assert_eq!(m.level, "L2");
    assert!(m.resolution_breached_at_ms.is_some());
    let e = escalations(&conn, id).unwrap();
    let targets: Vec<&str> = e.iter().map(|e| e.target.as_str()).collect();
    assert_eq!(targets, ["duty-manager", "team-lead", "L2"]);
    assert!(e.iter().all(|e| e.actor == "rule:sla"));
    // /metrics counts it as breached (and assigned).
    let counts = queue_counts(&conn).unwrap();
    assert_eq!(
        counts,
        [QueueCounts {
            customer: "acme".into(),
            breached: 1,
            unassigned: 0
        }]
    );
    let log = log_comments(&conn, id);
    assert!(
        log.iter()
            .any(|l| l.starts_with("rule:sla escalated to L2 (100% of resolution time used)")),
        "{log:?}"
    );
    assert!(
        log.iter().any(|l| l.starts_with("rule:sla response SLA breached")),
        "{log:?}"
    );
}

#[test]
fn only_the_contracts_hold_reasons_pause_the_clock() {
    let dir = tempfile::tempdir().unwrap();
    let conn = store(&dir);
    let c = contracts();
    let t0 = at("2026-11-25T09:00:00+01:00");
    let id = open(&conn, &c, "db01", "acme", Severity::Critical, t0);
    act(
        &conn,
        &c,
        id,
        &CaseAction::Acknowledge { comment: None },
        "ana",
        t0 + 10 * M,
    )
    .unwrap();
    let hold = |reason| CaseAction::Hold { reason, comment: None };
    act(&conn, &c, id, &hold(HoldReason::AwaitingCustomer), "ana", t0 + H).unwrap();
    act(&conn, &c, id, &CaseAction::Resume { comment: None }, "ana", t0 + 3 * H).unwrap();
    act(&conn, &c, id, &hold(HoldReason::AwaitingParts), "ana", t0 + 4 * H).unwrap();
    let view = |now| {
        let (item, log) = items::get(&conn, id).unwrap().unwrap();
        let m = meta(&conn, id).unwrap().unwrap();
        sla_view(c.contracts.first(), &item, &m, &log, now)
    };
    let v = view(t0 + 5 * H);
    // The response was met by the acknowledgement after 10 minutes.
    let r = v.response.unwrap();
    assert_eq!((r.met_at_ms, r.used_ms, r.breached), (Some(t0 + 10 * M), 10 * M, false));
    // 5 h passed, 2 h of them awaiting the customer (pausing); awaiting
    // parts does not pause under this contract.
    let res = v.resolution.unwrap();
    assert_eq!(res.used_ms, 3 * H);
    assert!(!res.paused);
    // At 3 h used of 8 the breach is 5 service hours away: 14:00 to 17:00
    // on Wednesday, then 2 h on Thursday.
    assert_eq!(res.breach_at_ms, Some(at("2026-11-26T10:00:00+01:00")));
    // Awaiting the customer: paused, no breach time.
    act(&conn, &c, id, &hold(HoldReason::AwaitingCustomer), "ana", t0 + 5 * H).unwrap();
    let res = view(t0 + 6 * H).resolution.unwrap();
    assert!(res.paused);
    assert_eq!((res.used_ms, res.breach_at_ms), (3 * H, None));
}

#[test]
fn resolving_needs_a_service_report_and_closing_a_satisfaction_record() {
    let dir = tempfile::tempdir().unwrap();
    let conn = store(&dir);
    let c = contracts();
    let t0 = at("2026-11-25T09:00:00+01:00");
    let id = open(&conn, &c, "db01", "acme", Severity::Major, t0);
    act(&conn, &c, id, &CaseAction::Acknowledge { comment: None }, "ana", t0 + M).unwrap();
    // The plain lifecycle move is refused without a report...
    assert!(!has_service_report(&conn, id).unwrap());
    // ...and a report with problems records nothing and changes nothing.
    let mut bad = report(vec![]);
    bad.mode = "by pigeon".into();
    bad.work_done = " ".into();
    let err = act(&conn, &c, id, &CaseAction::Resolve { report: bad }, "ana", t0 + H).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("report.mode") && text.contains("report.work_done"),
        "{text}"
    );
    assert!(!has_service_report(&conn, id).unwrap());
    assert_eq!(items::item(&conn, id).unwrap().unwrap().status, Status::InProgress);
    // A report for another host is refused.
    let mut other = report(vec![]);
    other.host = "web01".into();
    assert!(act(&conn, &c, id, &CaseAction::Resolve { report: other }, "ana", t0 + H).is_err());
    // Closing before resolving is refused.
    let happy = Satisfaction {
        score: Some(5),
        comment: "quick".into(),
        no_answer: false,
    };
    let err = act(
        &conn,
        &c,
        id,
        &CaseAction::Close {
            satisfaction: happy.clone(),
        },
        "ana",
        t0 + H,
    )
    .unwrap_err();
    assert!(err.to_string().contains("only a resolved case can be closed"), "{err}");
    // Resolve with the report: recorded with the case id and the part.
    let part = PartReplaced {
        part_type: "disk".into(),
        slot: "/dev/sda".into(),
        old_model: "WDC WD20EFRX".into(),
        old_serial: "WD-OLD".into(),
        new_model: "WDC WD20EFRX".into(),
        new_serial: "WD-NEW".into(),
        location: None,
    };
    let item = act(
        &conn,
        &c,
        id,
        &CaseAction::Resolve {
            report: report(vec![part]),
        },
        "ana",
        t0 + 2 * H,
    )
    .unwrap();
    assert_eq!(item.status, Status::Resolved);
    assert!(has_service_report(&conn, id).unwrap());
    let stored = crate::spares::service_reports(&conn, Some("db01")).unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!((stored[0].case_id, stored[0].engineer.as_str()), (Some(id), "ana"));
    assert_eq!(stored[0].parts[0].new_serial, "WD-NEW");
    // A bad score changes nothing.
    let bad = Satisfaction {
        score: Some(7),
        comment: String::new(),
        no_answer: false,
    };
    let err = act(
        &conn,
        &c,
        id,
        &CaseAction::Close { satisfaction: bad },
        "ana",
        t0 + 3 * H,
    )
    .unwrap_err();
    assert!(err.to_string().contains("score: 7 is not from 1 to 5"), "{err}");
    assert_eq!(satisfaction(&conn, id).unwrap(), None);
    let item = act(
        &conn,
        &c,
        id,
        &CaseAction::Close { satisfaction: happy },
        "ana",
        t0 + 3 * H,
    )
    .unwrap();
    assert_eq!(item.status, Status::Closed);
    let s = satisfaction(&conn, id).unwrap().unwrap();
    assert_eq!((s.score, s.recorded_by.as_str()), (Some(5), "person:ana"));
    // The resolution clock stopped when it was resolved.
    let (item, log) = items::get(&conn, id).unwrap().unwrap();
    let m = meta(&conn, id).unwrap().unwrap();
    let v = sla_view(c.contracts.first(), &item, &m, &log, t0 + 30 * H);
    assert_eq!(v.resolution.unwrap().met_at_ms, Some(t0 + 2 * H));
}

#[test]
fn an_unanswered_survey_closes_the_case_after_the_wait() {
    let dir = tempfile::tempdir().unwrap();
    let conn = store(&dir);
    let c = contracts();
    let t0 = at("2026-11-25T09:00:00+01:00");
    let id = open(&conn, &c, "db01", "acme", Severity::Major, t0);
    act(
        &conn,
        &c,
        id,
        &CaseAction::Resolve { report: report(vec![]) },
        "ana",
        t0 + H,
    )
    .unwrap();
    let wait = 7 * 24 * H;
    assert_eq!(sweep(&conn, &c, wait, t0 + H + wait - M).unwrap(), 0);
    assert_eq!(sweep(&conn, &c, wait, t0 + H + wait).unwrap(), 1);
    assert_eq!(items::item(&conn, id).unwrap().unwrap().status, Status::Closed);
    let s = satisfaction(&conn, id).unwrap().unwrap();
    assert!(s.no_answer && s.score.is_none());
    assert_eq!(s.recorded_by, "rule:satisfaction");
}

#[test]
fn people_assign_escalate_comment_and_cancel_with_a_record_of_each() {
    let dir = tempfile::tempdir().unwrap();
    let conn = store(&dir);
    let c = contracts();
    let t0 = at("2026-11-25T09:00:00+01:00");
    let id = open(&conn, &c, "db01", "acme", Severity::Major, t0);
    let assign = |to: &str| CaseAction::Assign {
        to: to.into(),
        comment: None,
    };
    // Only engineers in the file.
    let err = act(&conn, &c, id, &assign("mallory"), "ben", t0 + M).unwrap_err();
    assert!(err.to_string().contains("to: \"mallory\" is not an engineer"), "{err}");
    act(&conn, &c, id, &assign("cy"), "ben", t0 + M).unwrap();
    assert_eq!(meta(&conn, id).unwrap().unwrap().assignee.as_deref(), Some("cy"));
    // Escalation needs a reason and goes up only.
    let esc = |to: Option<&str>, c: &str| CaseAction::Escalate {
        to: to.map(str::to_string),
        comment: c.into(),
    };
    assert!(act(&conn, &c, id, &esc(None, " "), "cy", t0 + 2 * M).is_err());
    act(&conn, &c, id, &esc(None, "needs storage expertise"), "cy", t0 + 2 * M).unwrap();
    act(
        &conn,
        &c,
        id,
        &esc(Some("vendor"), "controller firmware bug"),
        "cy",
        t0 + 3 * M,
    )
    .unwrap();
    let err = act(&conn, &c, id, &esc(Some("L2"), "down again?"), "cy", t0 + 4 * M).unwrap_err();
    assert!(err.to_string().contains("already at vendor"), "{err}");
    assert_eq!(meta(&conn, id).unwrap().unwrap().level, "vendor");
    act(
        &conn,
        &c,
        id,
        &CaseAction::Comment {
            comment: "vendor case 4711".into(),
            visibility: None,
        },
        "cy",
        t0 + 5 * M,
    )
    .unwrap();
    assert!(
        act(
            &conn,
            &c,
            id,
            &CaseAction::Comment {
                comment: "".into(),
                visibility: None
            },
            "cy",
            t0 + 5 * M
        )
        .is_err()
    );
    act(
        &conn,
        &c,
        id,
        &CaseAction::Cancel {
            reason: CancelReason::FalsePositive,
            comment: Some("sensor glitch".into()),
        },
        "cy",
        t0 + 6 * M,
    )
    .unwrap();
    let log = log_comments(&conn, id);
    for expected in [
        "person:ben assigned to cy (by ben)",
        "person:cy escalated to L2 (needs storage expertise)",
        "person:cy escalated to vendor (controller firmware bug)",
        "person:cy vendor case 4711",
        "person:cy sensor glitch",
    ] {
        assert!(log.contains(&expected.to_string()), "{expected} not in {log:?}");
    }
    // A finding is not a case.
    assert!(matches!(
        act(
            &conn,
            &c,
            999,
            &CaseAction::Comment {
                comment: "x".into(),
                visibility: None
            },
            "cy",
            t0
        ),
        Err(StoreError::NoSuchItem(999))
    ));
}

#[test]
fn every_case_change_lands_in_the_outbox_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let conn = store(&dir);
    let c = contracts();
    let t0 = at("2026-11-25T09:00:00+01:00");
    outbox::ensure_sink(&conn, "hook").unwrap();
    let id = open(&conn, &c, "db01", "acme", Severity::Major, t0);
    // A finding's changes do not go out.
    let mut f = signal(
        "db01",
        "acme",
        "filesystem_fills_within_7d",
        Severity::Warning,
        true,
        t0,
    );
    f.kind = ItemKind::Finding;
    items::apply_signal(&conn, &f, &Policy::default()).unwrap();
    act(
        &conn,
        &c,
        id,
        &CaseAction::Comment {
            comment: "looking".into(),
            visibility: None,
        },
        "ana",
        t0 + M,
    )
    .unwrap();
    let log_rows = items::get(&conn, id).unwrap().unwrap().1.len();
    // The sink's cursor was at the start: everything in the outbox is pending.
    let outbox_rows = outbox::sink_state(&conn, "hook").unwrap().unwrap().pending;
    // Opened, contract note, assigned, comment.
    assert_eq!((log_rows, outbox_rows), (4, 4));
    let mut seen = Vec::new();
    while let Some(p) = outbox::next_pending(&conn, "hook").unwrap() {
        seen.push(p.change.comment.clone().unwrap_or_default());
        let ext = (seen.len() == 1).then_some("T-1");
        outbox::delivered(&conn, "hook", p.outbox_id, p.item.id.unwrap(), ext, t0).unwrap();
    }
    assert_eq!(seen.len(), 4);
    assert_eq!(seen.last().map(String::as_str), Some("looking"));
    assert_eq!(outbox::external_id(&conn, id, "hook").unwrap().as_deref(), Some("T-1"));
    let s = outbox::sink_state(&conn, "hook").unwrap().unwrap();
    assert_eq!((s.pending, s.dead), (0, 0));
    // A sink configured later starts at the end: no history flood.
    outbox::ensure_sink(&conn, "late").unwrap();
    assert!(outbox::next_pending(&conn, "late").unwrap().is_none());
    // Pruning takes old rows every sink has passed, and only those.
    act(
        &conn,
        &c,
        id,
        &CaseAction::Comment {
            comment: "undelivered".into(),
            visibility: None,
        },
        "ana",
        t0 + 2 * M,
    )
    .unwrap();
    assert_eq!(outbox::prune(&conn, t0 + 10 * M).unwrap(), 4);
    let left: Vec<String> = {
        let mut v = Vec::new();
        while let Some(p) = outbox::next_pending(&conn, "hook").unwrap() {
            v.push(p.change.comment.clone().unwrap_or_default());
            outbox::delivered(&conn, "hook", p.outbox_id, id, None, t0).unwrap();
        }
        v
    };
    assert_eq!(left, ["undelivered"]);
}

#[test]
fn a_reported_fault_opens_one_case_on_a_known_asset() {
    let dir = tempfile::tempdir().unwrap();
    let conn = store(&dir);
    let c = contracts();
    let t0 = at("2026-11-25T09:00:00+01:00");
    let fault = |asset: &str, title: &str| FaultReport {
        asset: asset.into(),
        title: title.into(),
        description: "users cannot log in".into(),
        severity: Severity::Major,
        component: String::new(),
    };
    let err = report_fault(&conn, &c, &fault("ghost01", "App down"), "ana", t0).unwrap_err();
    assert!(err.to_string().contains("no known asset named \"ghost01\""), "{err}");
    let err = report_fault(&conn, &c, &fault("db01", "  "), "ana", t0).unwrap_err();
    assert!(err.to_string().contains("title: must not be empty"), "{err}");
    let (id, new) = report_fault(&conn, &c, &fault("db01", "App down!"), "ana", t0).unwrap();
    assert!(new);
    let m = meta(&conn, id).unwrap().unwrap();
    assert_eq!((m.source, m.title.as_str()), (Source::User, "App down!"));
    assert_eq!(m.reported_by.as_deref(), Some("ana"));
    assert_eq!(m.skill, "os");
    assert_eq!(m.contract.as_deref(), Some("acme-office"));
    // The same fault reported again is the same case.
    assert_eq!(
        report_fault(&conn, &c, &fault("db01", "app down"), "ben", t0 + M).unwrap(),
        (id, false)
    );
    let item = items::item(&conn, id).unwrap().unwrap();
    assert_eq!(item.key.customer, "acme");
    assert!(item.touched_by_person);
}

#[test]
fn a_customer_reports_on_its_own_assets_comments_publicly_and_does_no_staff_work() {
    let dir = tempfile::tempdir().unwrap();
    let conn = store(&dir);
    let c = contracts();
    let t0 = at("2026-11-25T09:00:00+01:00");
    let carol = Actor::Customer {
        name: "carol",
        customer: "acme",
    };
    let fault = |asset: &str| FaultReport {
        asset: asset.into(),
        title: "App down".into(),
        description: String::new(),
        severity: Severity::Major,
        component: String::new(),
    };
    // Another customer's asset is refused exactly like an unknown one.
    let other = report_fault_as(&conn, &c, &fault("lab01"), carol, t0).unwrap_err();
    let unknown = report_fault_as(&conn, &c, &fault("ghost01"), carol, t0).unwrap_err();
    assert!(matches!(other, StoreError::UnknownAsset(_)), "{other}");
    assert_eq!(
        other.to_string().replace("lab01", "H"),
        unknown.to_string().replace("ghost01", "H")
    );
    let (id, _) = report_fault_as(&conn, &c, &fault("db01"), carol, t0).unwrap();
    assert_eq!(meta(&conn, id).unwrap().unwrap().reported_by.as_deref(), Some("carol"));
    let comment = |visibility| CaseAction::Comment {
        comment: "still down".into(),
        visibility,
    };
    // Staff work and an internal comment: refused, naming the field.
    for (action, field) in [
        (CaseAction::Acknowledge { comment: None }, "action"),
        (CaseAction::Resume { comment: None }, "action"),
        (comment(Some(Visibility::Internal)), "visibility"),
    ] {
        match act_as(&conn, &c, id, &action, carol, t0 + M) {
            Err(StoreError::QueueForbidden(m)) => assert!(m.starts_with(field), "{m}"),
            other => panic!("{action:?}: {other:?}"),
        }
    }
    // Another customer's case is not found.
    let gus = Actor::Customer {
        name: "gus",
        customer: "nobody",
    };
    assert!(matches!(
        act_as(&conn, &c, id, &comment(None), gus, t0 + M),
        Err(StoreError::NoSuchItem(_))
    ));
    act_as(&conn, &c, id, &comment(None), carol, t0 + M).unwrap();
    act(&conn, &c, id, &comment(None), "ana", t0 + 2 * M).unwrap();
    let (_, log) = items::get(&conn, id).unwrap().unwrap();
    let comments: Vec<(&str, Visibility)> = log
        .iter()
        .filter(|e| e.comment.as_deref() == Some("still down"))
        .map(|e| (e.actor.as_str(), e.visibility))
        .collect();
    assert_eq!(
        comments,
        [
            ("customer:carol", Visibility::Public),
            ("person:ana", Visibility::Internal)
        ]
    );
    // Her comment is no response; the engineer's is.
    assert_eq!(first_response_ms(&log), Some(t0 + 2 * M));
}

#[test]
fn the_queue_puts_the_nearest_breach_first() {
    let dir = tempfile::tempdir().unwrap();
    let conn = store(&dir);
    let c = contracts();
    let t0 = at("2026-11-25T09:00:00+01:00");
    let major = open(&conn, &c, "db01", "acme", Severity::Major, t0);
    let advisory = open(&conn, &c, "lab01", "nobody", Severity::Critical, t0);
    let s = signal("db01", "acme", "md_array_degraded", Severity::Critical, true, t0 + H);
    let critical = items::apply_signal(&conn, &s, &Policy::default())
        .unwrap()
        .item_id()
        .unwrap();
    settle(&conn, &c, 0, t0 + H).unwrap();
    let q = queue(&conn, &c, &QueueFilter::default(), t0 + 2 * H).unwrap();
    let order: Vec<i64> = q.iter().map(|e| e.item.id.unwrap()).collect();
    // The critical case (response due 11:00, now) first, then the major
    // one (response due 13:00), the advisory one last.
    assert_eq!(order, [critical, major, advisory]);
    let only_ana = QueueFilter {
        assignee: Some("ana".into()),
        ..QueueFilter::default()
    };
    let q = queue(&conn, &c, &only_ana, t0 + 2 * H).unwrap();
    assert!(q.iter().all(|e| e.meta.assignee.as_deref() == Some("ana")) && !q.is_empty());
    let unassigned = QueueFilter {
        assignee: Some(String::new()),
        ..QueueFilter::default()
    };
    let q = queue(&conn, &c, &unassigned, t0 + 2 * H).unwrap();
    assert_eq!(q.iter().map(|e| e.item.id.unwrap()).collect::<Vec<_>>(), [advisory]);
}

#[test]
fn a_paused_clock_has_no_breach_time_and_goes_last() {
    let dir = tempfile::tempdir().unwrap();
    let conn = store(&dir);
    let c = contracts();
    let t0 = at("2026-11-25T09:00:00+01:00");
    let paused = open(&conn, &c, "db01", "acme", Severity::Critical, t0);
    let s = signal("db01", "acme", "md_array_degraded", Severity::Major, true, t0);
    let running = items::apply_signal(&conn, &s, &Policy::default())
        .unwrap()
        .item_id()
        .unwrap();
    settle(&conn, &c, 0, t0).unwrap();
    let hold = CaseAction::Hold {
        reason: HoldReason::AwaitingCustomer,
        comment: None,
    };
    act(&conn, &c, paused, &hold, "ana", t0 + 10 * M).unwrap();
    let q = queue(&conn, &c, &QueueFilter::default(), t0 + H).unwrap();
    let order: Vec<i64> = q.iter().map(|e| e.item.id.unwrap()).collect();
    // Critical, but its clock is paused: after the running major case.
    assert_eq!(order, [running, paused]);
    let sla = &q[1].sla;
    assert!(sla.paused());
    assert_eq!(sla.next_breach_ms(), None);
    assert_eq!(sla.standing(), SlaStanding::NotRunning);
    // The running case's breach is a real instant: the major response
    // target (4h) from its opening.
    let running_sla = &q[0].sla;
    assert_eq!(running_sla.next_breach_ms(), Some(t0 + 4 * H));
    assert_eq!(running_sla.standing(), SlaStanding::RunsOutAt(t0 + 4 * H));
}

#[test]
fn a_reopened_case_goes_back_to_its_engineer() {
    let dir = tempfile::tempdir().unwrap();
    let conn = store(&dir);
    let c = contracts();
    let t0 = at("2026-11-25T09:00:00+01:00");
    let id = open(&conn, &c, "db01", "acme", Severity::Major, t0);
    assert_eq!(meta(&conn, id).unwrap().unwrap().assignee.as_deref(), Some("ana"));
    act(
        &conn,
        &c,
        id,
        &CaseAction::Resolve { report: report(vec![]) },
        "ana",
        t0 + H,
    )
    .unwrap();
    // The same fault within the reopen window reopens the case as new...
    let mark = items::log_high_water(&conn).unwrap();
    let s = signal("db01", "acme", "disk_failing", Severity::Major, true, t0 + 2 * H);
    let out = items::apply_signal(&conn, &s, &Policy::default()).unwrap();
    assert_eq!(out, items::Outcome::Reopened(id));
    assert_eq!(items::item(&conn, id).unwrap().unwrap().status, Status::New);
    // ...and settling gives it back to ana, once.
    assert_eq!(settle(&conn, &c, mark, t0 + 2 * H).unwrap(), 1);
    assert_eq!(items::item(&conn, id).unwrap().unwrap().status, Status::Assigned);
    assert!(log_comments(&conn, id).contains(&"rule:assignment assigned to ana (reopened)".to_string()));
    assert_eq!(settle(&conn, &c, mark, t0 + 2 * H).unwrap(), 0);
}

#[test]
fn a_case_opened_while_no_contract_matched_is_matched_when_the_contracts_change() {
    let dir = tempfile::tempdir().unwrap();
    let conn = store(&dir);
    let t0 = at("2026-11-25T10:00:00+01:00");
    // Opened while the contracts file was empty (an editor mid-save).
    let id = open(&conn, &Contracts::default(), "db01", "acme", Severity::Critical, t0);
    let lab = open(&conn, &Contracts::default(), "lab01", "nobody", Severity::Critical, t0);
    assert!(meta(&conn, id).unwrap().unwrap().out_of_scope);

    assert_eq!(rematch(&conn, &contracts(), t0 + 10 * M).unwrap(), 1);
    let m = meta(&conn, id).unwrap().unwrap();
    assert_eq!(m.contract.as_deref(), Some("acme-office"));
    // Due as if matched at the opening: one service hour after 10:00.
    assert_eq!(m.response_due_ms, Some(t0 + H));
    assert_eq!(m.assignee.as_deref(), Some("ana"), "on call for hq hardware");
    assert!(
        log_comments(&conn, id)
            .iter()
            .any(|c| c.starts_with("rule:contract contract acme-office (matched when the contracts changed)")),
        "{:?}",
        log_comments(&conn, id)
    );
    // A host no contract covers stays advisory; matching again changes nothing.
    assert!(meta(&conn, lab).unwrap().unwrap().out_of_scope);
    assert_eq!(rematch(&conn, &contracts(), t0 + 20 * M).unwrap(), 0);
}

fn ids(entries: &[QueueEntry]) -> Vec<i64> {
    entries.iter().map(|e| e.item.id.unwrap()).collect()
}

/// A case a rule opens on db01 for `check`, settled, at `at_ms`.
fn open_check(conn: &dyn Sql, c: &Contracts, check: &str, severity: Severity, at_ms: i64) -> i64 {
    let s = signal("db01", "acme", check, severity, true, at_ms);
    let id = items::apply_signal(conn, &s, &Policy::default())
        .unwrap()
        .item_id()
        .unwrap();
    settle(conn, c, 0, at_ms).unwrap();
    id
}

/// The pages of the queue in `paging`'s order, one after the other, and
/// the total each page gave.
fn every_page(conn: &dyn Sql, c: &Contracts, filter: &QueueFilter, paging: Paging, now: i64) -> (Vec<i64>, Vec<u64>) {
    let mut all = Vec::new();
    let mut totals = Vec::new();
    for page in 1.. {
        let p = queue_page(conn, c, filter, &Paging { page, ..paging }, now).unwrap();
        totals.push(p.total);
        if p.entries.is_empty() {
            break;
        }
        assert!(p.entries.len() as u64 <= paging.per_page);
        all.extend(ids(&p.entries));
    }
    (all, totals)
}

#[test]
fn a_critical_case_whose_response_was_met_goes_by_its_resolution_clock() {
    let dir = tempfile::tempdir().unwrap();
    let conn = store(&dir);
    let c = contracts();
    // Wednesday 09:00 in Berlin, within the 5x8 contract's hours.
    let t0 = at("2026-11-25T09:00:00+01:00");
    let answered = open_check(&conn, &c, "disk_failing", Severity::Critical, t0);
    let unanswered = open_check(&conn, &c, "edac_errors", Severity::Critical, t0);
    let major = open_check(&conn, &c, "md_array_degraded", Severity::Major, t0);
    let ack = CaseAction::Acknowledge { comment: None };
    act(&conn, &c, answered, &ack, "ana", t0 + 30 * M).unwrap();
    let now = t0 + 2 * H;
    let q = queue(&conn, &c, &QueueFilter::default(), now).unwrap();
    // The unanswered critical case missed its response (10:00); the major
    // one's response is due at 13:00; the answered critical case's
    // resolution at 17:00 (8 service hours): last, though critical.
    assert_eq!(ids(&q), [unanswered, major, answered]);
    let clock = |e: &QueueEntry| e.sla.next_clock().map(|(name, c)| (name, c.breach_at_ms));
    assert_eq!(clock(&q[0]).map(|c| c.0), Some("response"));
    assert_eq!(clock(&q[1]), Some(("response", Some(t0 + 4 * H))));
    assert_eq!(clock(&q[2]), Some(("resolution", Some(t0 + 8 * H))));
    assert_eq!(q[0].sla.standing(), SlaStanding::Breached);
    // Page by page, the same order.
    let one = Paging {
        per_page: 1,
        ..Paging::default()
    };
    let (paged, totals) = every_page(&conn, &c, &QueueFilter::default(), one, now);
    assert_eq!(paged, [unanswered, major, answered]);
    assert!(totals.iter().all(|t| *t == 3), "{totals:?}");
}

/// The nearest-breach order reads only the cases its bounds cannot rule
/// out; page by page it must give the order of the whole queue, with holds
/// that pushed deadlines later, holds pausing the clock now, holds that do
/// not, answered cases and advisory ones.
#[test]
fn paging_in_the_sla_order_gives_the_order_of_the_whole_queue() {
    let dir = tempfile::tempdir().unwrap();
    let conn = store(&dir);
    let c = contracts();
    let t0 = at("2026-11-25T09:00:00+01:00");
    let severities = [Severity::Critical, Severity::Major, Severity::Warning, Severity::Info];
    let mut opened = Vec::new();
    for n in 0..24_i64 {
        let id = open_check(
            &conn,
            &c,
            &format!("disk_check_{n}"),
            severities[(n % 4) as usize],
            t0 + n * 7 * M,
        );
        let at = t0 + n * 7 * M + 5 * M;
        let hold = |reason| CaseAction::Hold { reason, comment: None };
        match n % 6 {
            // Paused a while, then running again: its breach is after its deadline.
            0 => {
                act(&conn, &c, id, &hold(HoldReason::AwaitingCustomer), "ana", at).unwrap();
                act(&conn, &c, id, &CaseAction::Resume { comment: None }, "ana", at + 90 * M).unwrap();
            }
            // Paused now.
            1 => {
                act(&conn, &c, id, &hold(HoldReason::AwaitingCustomer), "ana", at).unwrap();
            }
            // On hold, but the contract's clock keeps running.
            2 => {
                act(&conn, &c, id, &hold(HoldReason::AwaitingParts), "ana", at).unwrap();
            }
            3 => {
                act(&conn, &c, id, &CaseAction::Acknowledge { comment: None }, "ana", at).unwrap();
            }
            _ => {}
        }
        opened.push(id);
    }
    let advisory = open(&conn, &c, "lab01", "nobody", Severity::Critical, t0);
    opened.push(advisory);
    let now = t0 + 3 * H;
    let whole = ids(&queue(&conn, &c, &QueueFilter::default(), now).unwrap());
    let mut sorted = whole.clone();
    sorted.sort_unstable();
    opened.sort_unstable();
    assert_eq!(sorted, opened, "every case once");
    for per_page in [1, 4, 7, 50] {
        let paging = Paging {
            per_page,
            ..Paging::default()
        };
        let (paged, totals) = every_page(&conn, &c, &QueueFilter::default(), paging, now);
        assert_eq!(paged, whole, "{per_page} a page");
        assert!(totals.iter().all(|t| *t == 25), "{totals:?}");
        // The other way round: every case once as well.
        let (mut back, _) = every_page(
            &conn,
            &c,
            &QueueFilter::default(),
            Paging {
                descending: true,
                ..paging
            },
            now,
        );
        back.sort_unstable();
        assert_eq!(back, opened, "{per_page} a page, descending");
    }
    // The same order as the clocks give, case by case.
    let entries = queue(&conn, &c, &QueueFilter::default(), now).unwrap();
    let keys: Vec<_> = entries
        .iter()
        .map(|e| {
            (
                e.sla.standing(),
                std::cmp::Reverse(e.item.severity),
                e.item.opened_at_ms,
                e.item.id,
            )
        })
        .collect();
    assert!(keys.windows(2).all(|w| w[0] < w[1]), "{keys:#?}");
    // A search by number finds that case, and paging counts only matches.
    let by_number = QueueFilter {
        search: Some(format!("#{}", opened[3])),
        ..QueueFilter::default()
    };
    let p = queue_page(&conn, &c, &by_number, &Paging::default(), now).unwrap();
    assert_eq!((ids(&p.entries), p.total), (vec![opened[3]], 1));
}

/// How long a page of the queue takes on a big store (50,000 active cases,
/// 500,000 log rows), on the test store. A figure to read, not a check:
/// `cargo test --release -p caretaker-collector --lib -- --ignored
/// queue_pages_on_a_big_store --nocapture`.
#[test]
#[ignore = "a timing to read, not a check"]
fn queue_pages_on_a_big_store() {
    let conn = crate::store::testing::TestDb::new();
    let c = contracts();
    let now: i64 = 1_800_000_000_000;
    crate::store::testing::fill_big_queue(&conn, 50_000, now);
    let time = |what: &str, paging: Paging, filter: &QueueFilter| {
        let start = std::time::Instant::now();
        let page = queue_page(&conn, &c, filter, &paging, now).unwrap();
        eprintln!(
            "{what}: {} of {} in {:?}",
            page.entries.len(),
            page.total,
            start.elapsed()
        );
    };
    let every = QueueFilter::default();
    let p = Paging::default();
    time("nearest breach, page 1", p, &every);
    time("nearest breach, page 2", Paging { page: 2, ..p }, &every);
    time("nearest breach, page 100", Paging { page: 100, ..p }, &every);
    for sort in [SortBy::Age, SortBy::Severity, SortBy::Asset, SortBy::Assignee] {
        time(sort.as_str(), Paging { sort, ..p }, &every);
    }
    let search = QueueFilter {
        search: Some("host12".into()),
        ..QueueFilter::default()
    };
    time("search host12", p, &search);
}

#[test]
fn acknowledging_takes_the_case_for_the_engineer_who_does_it() {
    let dir = tempfile::tempdir().unwrap();
    let conn = store(&dir);
    let c = contracts();
    let t0 = at("2026-11-25T09:00:00+01:00");
    let ack = CaseAction::Acknowledge { comment: None };
    // The rotation gave it to ana; cy, an engineer, acknowledges: cy has it.
    let id = open(&conn, &c, "db01", "acme", Severity::Major, t0);
    assert_eq!(meta(&conn, id).unwrap().unwrap().assignee.as_deref(), Some("ana"));
    act(&conn, &c, id, &ack, "cy", t0 + M).unwrap();
    assert_eq!(meta(&conn, id).unwrap().unwrap().assignee.as_deref(), Some("cy"));
    assert_eq!(items::item(&conn, id).unwrap().unwrap().status, Status::InProgress);
    assert!(
        log_comments(&conn, id)
            .iter()
            .any(|l| l.contains("assigned to cy (took it)")),
        "{:?}",
        log_comments(&conn, id)
    );
    // Someone the contracts do not name as an engineer (a manager, the API
    // token) acknowledges without taking it from its engineer.
    let other = open_check(&conn, &c, "edac_errors", Severity::Major, t0);
    act(&conn, &c, other, &ack, "duty-manager", t0 + M).unwrap();
    assert_eq!(meta(&conn, other).unwrap().unwrap().assignee.as_deref(), Some("ana"));
    assert_eq!(items::item(&conn, other).unwrap().unwrap().status, Status::InProgress);
}
