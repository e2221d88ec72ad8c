//! Recommendations on replayed SMART histories: real smartctl fixtures with
//! their counters varied over time, recorded through `disks::record_scan` and
//! assessed by `assess_host` as the store writer does after each report.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use caretaker_shared::disk_health::{Disk, Level};
use caretaker_shared::smartctl;
use caretaker_shared::wire::DiskScan;
use serde_json::json;

use super::*;
use crate::cases::store::Outcome;
use crate::fleet::Fleet;
use crate::store::items::{ItemFilter, Items};
use crate::store::sql::Sql;
use crate::store::testing::{TestDb, add_agent, disk_level, item_count, set_labels_and_inventory};

const DAY: i64 = 86_400_000;
const T0: i64 = 1_700_000_000_000;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/smartctl")
}

fn fixture(rel: &str) -> Disk {
    let text = std::fs::read_to_string(fixtures().join(rel)).unwrap();
    smartctl::parse(&text).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// A store with one enrolled, known host per agent id.
fn conn(agents: &[&str]) -> TestDb {
    let c = TestDb::new();
    enroll(&c, agents);
    c
}

/// One enrolled, known host per agent id.
fn enroll(c: &dyn Sql, agents: &[&str]) {
    for a in agents {
        add_agent(c, a, &format!("host-{a}"));
        crate::cases::hold::mark_known(c, &format!("host-{a}"), Some(a), &[], 0).unwrap();
    }
}

/// [`conn`] for a store writer started inside the tests' async runtime
/// (made apart from it: see [`apart`](crate::store::testing::apart)), and
/// what keeps its PostgreSQL database until the test ends.
fn writer_store(agents: &[&str]) -> (crate::store::sql::Db, Option<crate::store::testing::PgDatabase>) {
    crate::store::testing::apart(|| {
        let c = crate::store::testing::TestDb::new();
        enroll(&c, agents);
        c.into_parts()
    })
}

fn set_attr(d: &mut Disk, id: u8, v: u64) {
    let a = d
        .ata
        .as_mut()
        .unwrap()
        .attributes
        .iter_mut()
        .find(|a| a.id == id)
        .unwrap();
    a.raw = v;
    a.raw_string = v.to_string();
    a.decoded = Some(v);
}

/// One scan of one disk, recorded and assessed as the writer does.
fn scan(c: &dyn Sql, agent: &str, at: i64, disk: &Disk) -> HostSummary {
    let s = DiskScan {
        scanned_at_ms: at,
        disks: vec![disk.clone()],
        error: None,
    };
    crate::disks::record_scan(c, agent, &s).unwrap();
    assess_host(c, agent, &format!("host-{agent}"), "acme", at).unwrap()
}

fn recs(c: &dyn Sql) -> Vec<Recommendation> {
    records::list(c, &Filter::default()).unwrap()
}

fn level(c: &dyn Sql, agent: &str) -> String {
    disk_level(c, agent)
}

#[test]
fn growing_pending_and_reallocated_sectors_are_recommended_before_the_verdict_fails() {
    let c = conn(&["a1"]);
    let mut d = fixture("ata/wdc-wd20efrx-red-healthy.json");
    scan(&c, "a1", T0, &d);
    // A first rise: watched (the rule engine's finding), no part ordered yet.
    set_attr(&mut d, 197, 2);
    scan(&c, "a1", T0 + DAY, &d);
    assert!(recs(&c).is_empty());
    // A second rise within days: replace within days, while the drive still
    // calls itself healthy and the verdict is only a warning.
    set_attr(&mut d, 197, 4);
    set_attr(&mut d, 5, 3);
    let s = scan(&c, "a1", T0 + 3 * DAY, &d);
    assert!(matches!(s.raised.as_slice(), [Raised::Created(_)]), "{s:?}");
    assert_eq!(level(&c, "a1"), "warning");
    assert_eq!(d.smart_passed, Some(true));
    let r = &recs(&c)[0];
    assert_eq!(
        (r.part_type.as_str(), r.urgency.as_str(), r.status.as_str()),
        ("disk", "within_days", "open")
    );
    // 197 = 4 sits in the 68 % AFR bucket: the urgent end.
    assert_eq!(r.due_at_ms, Some(T0 + 3 * DAY + 7 * DAY));
    assert!(r.reason.contains("second_rise_within_30d"), "{}", r.reason);
    assert_eq!(r.part.serial, d.serial);
    assert_eq!(r.part.interface, "ata");
    assert_eq!(r.part.capacity_bytes, d.capacity_bytes);
    assert_eq!(r.part_key, format!("host-a1/disk/{}", d.serial));
    assert_eq!(
        r.evidence["details"]["above_baseline"][0]["counter"],
        "reallocated_sectors"
    );

    // Rescanning refreshes the same record; then the drive fails: the
    // urgency escalates on that record, never a second one.
    scan(&c, "a1", T0 + 4 * DAY, &d);
    d.smart_passed = Some(false);
    scan(&c, "a1", T0 + 5 * DAY, &d);
    assert_eq!(level(&c, "a1"), "failing");
    let all = recs(&c);
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].urgency, "replace_now");
    assert_eq!(all[0].risk, "critical");
    // The drive recovering its status does not make the record less urgent.
    d.smart_passed = Some(true);
    scan(&c, "a1", T0 + 6 * DAY, &d);
    assert_eq!(recs(&c)[0].urgency, "replace_now");
}

#[test]
fn pending_sectors_that_stay_unreallocated_are_recommended() {
    let c = conn(&["a1"]);
    let mut d = fixture("ata/toshiba-mg09aca18te-healthy.json");
    scan(&c, "a1", T0, &d);
    set_attr(&mut d, 197, 1);
    for day in 1..=7 {
        scan(&c, "a1", T0 + day * DAY, &d);
        assert!(recs(&c).is_empty(), "day {day}");
    }
    scan(&c, "a1", T0 + 8 * DAY, &d);
    let all = recs(&c);
    assert_eq!(all.len(), 1);
    assert!(
        all[0].reason.contains("pending_sectors_not_reallocated"),
        "{}",
        all[0].reason
    );
    assert_eq!(all[0].urgency, "within_days");
    // 197 = 1 is the 34 % bucket: within the longer delay.
    assert_eq!(all[0].due_at_ms, Some(T0 + 8 * DAY + 14 * DAY));
}

#[test]
fn crc_errors_alone_open_a_cable_finding_not_a_disk_replacement() {
    let c = conn(&["a1"]);
    let mut d = fixture("ata/hgst-hus724020ale640-crc-12-errorlog.json");
    scan(&c, "a1", T0, &d);
    set_attr(&mut d, 199, 40);
    let s = scan(&c, "a1", T0 + DAY, &d);
    assert!(matches!(s.cable_findings.as_slice(), [Outcome::Created(_)]), "{s:?}");
    set_attr(&mut d, 199, 95);
    let s = scan(&c, "a1", T0 + 2 * DAY, &d);
    assert!(matches!(s.cable_findings.as_slice(), [Outcome::Updated(_)]), "{s:?}");
    assert!(recs(&c).is_empty());
    let items = c.list_items(&ItemFilter::default()).unwrap();
    let [item] = items.as_slice() else {
        panic!("one item: {items:?}")
    };
    assert_eq!((item.kind.as_str(), item.check.as_str()), ("finding", CABLE_CHECK));
    assert_eq!(item.component, d.key);
    let a = assess(&d, &crate::disks::history(&c, "a1", &d.key, 100).unwrap(), T0 + 2 * DAY);
    assert!(a.cable_suspect);
    assert!(!a.urgency.recommends());
}

#[test]
fn rising_crc_alone_is_a_cable_finding_not_disk_wear() {
    let c = conn(&["a1"]);
    let mut d = fixture("ata/seagate-st10000nm001g-crc-1.json");
    // The reading itself: a healthy disk with a link note, no wear reason.
    assert_eq!(d.verdict.level, Level::Healthy, "{:?}", d.verdict);
    assert!(d.verdict.reasons.is_empty(), "{:?}", d.verdict);
    assert_eq!(d.verdict.link[0].code, "udma_crc_errors");
    scan(&c, "a1", T0, &d);
    set_attr(&mut d, 199, 40);
    let s = scan(&c, "a1", T0 + DAY, &d);
    assert!(matches!(s.cable_findings.as_slice(), [Outcome::Created(_)]), "{s:?}");
    assert!(s.raised.is_empty(), "{s:?}");
    assert_eq!(level(&c, "a1"), "healthy");
    let a = assess(&d, &crate::disks::history(&c, "a1", &d.key, 100).unwrap(), T0 + DAY);
    assert!(a.cable_suspect);
    assert_eq!((a.risk, a.urgency), (Risk::Low, Urgency::None));
    assert!(a.reasons.is_empty(), "no wear reason: {:?}", a.reasons);
    assert!(recs(&c).is_empty());
    // The one item is the cable finding.
    let checks: Vec<String> = c
        .list_items(&ItemFilter::default())
        .unwrap()
        .into_iter()
        .map(|i| i.check)
        .collect();
    assert_eq!(checks, [CABLE_CHECK]);
}

#[test]
fn a_replacement_for_wear_does_not_cite_crc_errors() {
    let mut d = fixture("ata/seagate-st10000nm001g-crc-1.json");
    let point = |day: i64, realloc: i64, crc: i64| crate::disks::HistoryPoint {
        at_ms: T0 + day * DAY,
        verdict: "healthy".into(),
        reasons: vec![],
        values: [
            ("reallocated_sectors".to_string(), realloc),
            ("udma_crc_errors".to_string(), crc),
        ]
        .into_iter()
        .collect(),
    };
    // Two reallocation rises within days, then, weeks later, CRC errors.
    let h = [point(0, 0, 1), point(1, 8, 1), point(3, 20, 1), point(20, 20, 1)];
    set_attr(&mut d, 5, 20);
    set_attr(&mut d, 199, 30);
    let a = assess(&d, &h, T0 + 21 * DAY);
    assert!(a.urgency.recommends(), "{a:?}");
    assert!(a.cable_suspect, "{a:?}");
    assert_eq!(a.reasons, ["second_rise_within_30d"]);
}

#[test]
fn steady_nvme_wear_gets_a_dated_forecast() {
    let c = conn(&["a1"]);
    let mut d = fixture("nvme/micron-mtfdhax1t6mce-wear-69-healthy.json");
    assert_eq!(d.nvme.as_ref().unwrap().percentage_used, Some(69));
    // 1 % every two days from 69 % for 30 days: 100 % at day 62.
    for day in 0..=30 {
        d.nvme.as_mut().unwrap().percentage_used = Some(u8::try_from(69 + day / 2).unwrap());
        scan(&c, "a1", T0 + day * DAY, &d);
    }
    let all = recs(&c);
    assert_eq!(all.len(), 1, "{all:?}");
    let r = &all[0];
    assert_eq!((r.part_type.as_str(), r.part.interface.as_str()), ("disk", "nvme"));
    assert_eq!(r.urgency, "within_days");
    let at = r.evidence["forecast_100pct_at_ms"].as_i64().unwrap();
    assert!((at - (T0 + 62 * DAY)).abs() <= DAY, "forecast day {}", (at - T0) / DAY);
    assert!((r.due_at_ms.unwrap() - at).abs() <= DAY);
    assert!(r.reason.contains("wear_reaches_100pct_within_90d"), "{}", r.reason);

    // A slower drive gets its date too, but no part is ordered a year ahead.
    let h: Vec<crate::disks::HistoryPoint> = (0..=30)
        .map(|day| crate::disks::HistoryPoint {
            at_ms: T0 + day * 10 * DAY,
            verdict: "healthy".into(),
            reasons: vec![],
            values: [("nvme_percentage_used".to_string(), 10 + day)].into_iter().collect(),
        })
        .collect();
    d.nvme.as_mut().unwrap().percentage_used = Some(40);
    let a = assess(&d, &h, T0 + 300 * DAY);
    assert!(a.forecast_100pct_at_ms.unwrap() > T0 + 800 * DAY);
    assert!(!a.urgency.recommends());
}

#[test]
fn healthy_fixtures_never_get_a_recommendation() {
    let manifest = std::fs::read_to_string(fixtures().join("MANIFEST.tsv")).unwrap();
    let healthy: Vec<&str> = manifest
        .lines()
        .skip(1)
        .filter_map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            (cols.get(6) == Some(&"healthy")).then(|| cols[0])
        })
        .collect();
    assert!(healthy.len() >= 25, "{}", healthy.len());
    let agents: Vec<String> = (0..healthy.len()).map(|i| format!("a{i}")).collect();
    let c = conn(&agents.iter().map(String::as_str).collect::<Vec<_>>());
    for (i, rel) in healthy.iter().enumerate() {
        let d = fixture(rel);
        assert_ne!(d.verdict.level, Level::Failing, "{rel}");
        // Weeks of daily readings, the drive unchanged.
        for day in 0..30 {
            let s = scan(&c, &agents[i], T0 + day * DAY, &d);
            assert!(s.raised.is_empty() && s.cable_findings.is_empty(), "{rel}: {s:?}");
        }
        let a = assess(
            &d,
            &crate::disks::history(&c, &agents[i], &d.key, 100).unwrap(),
            T0 + 29 * DAY,
        );
        assert!(!a.urgency.recommends() && !a.cable_suspect, "{rel}: {a:?}");
    }
    assert!(recs(&c).is_empty());
    assert_eq!(item_count(&c), 0);
}

fn dimm_signal(at_ms: i64) -> crate::cases::Signal {
    crate::cases::Signal {
        event: None,
        key: crate::cases::IdentityKey {
            customer: "acme".into(),
            asset: "host-a1".into(),
            check: "edac_dimm_correctable_errors_grew".into(),
            component: "CPU_SrcID#0_MC#0_Chan#1_DIMM#0".into(),
        },
        kind: crate::cases::ItemKind::Finding,
        severity: crate::cases::Severity::Warning,
        rule: "edac_dimm_correctable_errors_grew".into(),
        firing: true,
        at_ms,
        evidence: json!({"labels": {"controller": "mc0", "dimm": "dimm1", "label": "CPU_SrcID#0_MC#0_Chan#1_DIMM#0"}, "value": 12}),
    }
}

#[tokio::test]
async fn a_dimm_with_rising_corrected_errors_is_recommended_through_the_writer() {
    let (db, _pg) = writer_store(&["a1"]);
    let fleet = Arc::new(Fleet::default());
    let (writer, _t) = crate::writer::Writer::start(db, fleet.clone()).unwrap();
    let policy = crate::cases::Policy::default();
    writer.signals(vec![dimm_signal(T0)], policy).await.unwrap();
    // The same finding firing again refreshes nothing new.
    writer.signals(vec![dimm_signal(T0 + 60_000)], policy).await.unwrap();
    let list = writer
        .run(|c| Ok(serde_json::to_value(records::list(c, &Filter::default())?).unwrap_or_default()))
        .await
        .unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    let r = &list[0];
    assert_eq!(r["part_type"], "dimm");
    assert_eq!(r["part"]["slot"], "CPU_SrcID#0_MC#0_Chan#1_DIMM#0");
    assert_eq!(r["urgency"], "within_days");
    assert_eq!(r["agent_id"], "a1");
    assert!(r["item_id"].as_i64().is_some());
    assert_eq!(fleet.recommendations_open(), vec![("within_days".to_string(), 1)]);
}

#[test]
fn fan_and_psu_sensors_in_alarm_name_their_part() {
    let c = conn(&["a1"]);
    let mut s = dimm_signal(T0);
    s.rule = "hwmon_alarm".into();
    s.key.check = "hwmon_alarm".into();
    for (label, want) in [
        ("PSU1 Fan", Some("psu")),
        ("fan3", Some("fan")),
        ("PS2 Status", Some("psu")),
        ("Package id 0", None),
    ] {
        s.key.component = label.into();
        let r = on_signal(&c, &s, Outcome::Created(1)).unwrap();
        assert_eq!(matches!(r, Raised::Created(_)), want.is_some(), "{label}");
    }
    let types: Vec<String> = recs(&c).into_iter().map(|r| r.part_type).collect();
    assert_eq!(types.len(), 3);
    assert!(types.contains(&"fan".to_string()) && types.contains(&"psu".to_string()));
    // An updated (already open) finding raises nothing.
    s.key.component = "fan4".into();
    assert_eq!(on_signal(&c, &s, Outcome::Updated(1)).unwrap(), Raised::Nothing);
}

#[test]
fn pending_sectors_turning_into_reallocated_ones_are_not_a_second_rise() {
    let c = conn(&["a1"]);
    let mut d = fixture("ata/wdc-wuh721818ale6l4-hc550-healthy.json");
    scan(&c, "a1", T0, &d);
    set_attr(&mut d, 197, 2);
    scan(&c, "a1", T0 + DAY, &d);
    // The drive rewrote the two sectors elsewhere: repaired, not worse.
    set_attr(&mut d, 197, 0);
    set_attr(&mut d, 5, 2);
    scan(&c, "a1", T0 + 2 * DAY, &d);
    assert!(recs(&c).is_empty());
    // More reallocations a few days later are a second rise.
    set_attr(&mut d, 5, 9);
    scan(&c, "a1", T0 + 5 * DAY, &d);
    assert_eq!(recs(&c).len(), 1);
}

#[test]
fn a_dismissal_holds_until_the_evidence_worsens() {
    let c = conn(&["a1"]);
    let mut d = fixture("ata/wdc-wd20efrx-red-healthy.json");
    scan(&c, "a1", T0, &d);
    set_attr(&mut d, 197, 2);
    scan(&c, "a1", T0 + DAY, &d);
    set_attr(&mut d, 5, 3);
    scan(&c, "a1", T0 + 2 * DAY, &d);
    let id = recs(&c)[0].id;
    let dismiss = RecAction::Dismiss {
        reason: "spare ordered outside Caretaker".into(),
    };
    records::act(&c, id, &dismiss, T0 + 2 * DAY).unwrap();
    scan(&c, "a1", T0 + 3 * DAY, &d);
    let all = recs(&c);
    assert_eq!((all.len(), all[0].status.as_str()), (1, "dismissed"));
    // The drive now fails: a new recommendation, replace now.
    d.smart_passed = Some(false);
    scan(&c, "a1", T0 + 4 * DAY, &d);
    let open = records::list(
        &c,
        &Filter {
            status: Some(RecStatus::Open),
            ..Filter::default()
        },
    )
    .unwrap();
    assert_eq!(open.len(), 1);
    assert_eq!(open[0].urgency, "replace_now");
    assert_ne!(open[0].id, id);
}

/// Reports carrying disk scans, applied by the store writer: the path ingest takes.
#[tokio::test]
async fn reports_with_disk_scans_raise_recommendations_in_the_writer() {
    let (db, _pg) = writer_store(&["a1"]);
    let fleet = Arc::new(Fleet::default());
    let (writer, _t) = crate::writer::Writer::start(db, fleet.clone()).unwrap();
    let mut d = fixture("ata/seagate-st18000nm000j-healthy.json");
    for (seq, (day, pending, realloc)) in [(0, 0, 0), (1, 1, 0), (2, 3, 2)].into_iter().enumerate() {
        set_attr(&mut d, 197, pending);
        set_attr(&mut d, 5, realloc);
        let at = T0 + day * DAY;
        let report = caretaker_shared::wire::Report {
            version: 1,
            agent_id: "a1".into(),
            seq: seq as u64 + 1,
            collected_at_ms: at,
            interval_secs: 60,
            host: "host-a1".into(),
            labels: [("customer".to_string(), "acme".to_string())].into_iter().collect(),
            samples: vec![],
            events: vec![],
            inventory: None,
            disks: Some(DiskScan {
                scanned_at_ms: at,
                disks: vec![d.clone()],
                error: None,
            }),
        };
        let body = serde_json::to_vec(&report).unwrap();
        let applied = writer
            .apply(crate::writer::Incoming {
                credential_hash: None,
                agent_id: "a1".into(),
                report,
                samples: vec![],
                sample_count: 0,
                body,
                encoding: crate::ingest::Encoding::Identity,
                received_at_ms: at,
                clock: None,
            })
            .await
            .unwrap();
        assert!(matches!(applied, crate::writer::Applied::Applied { .. }));
    }
    let list = writer
        .run(|c| Ok(serde_json::to_value(records::list(c, &Filter::default())?).unwrap_or_default()))
        .await
        .unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["customer"], "acme");
    assert_eq!(list[0]["host"], "host-a1");
    assert_eq!(list[0]["urgency"], "within_days");
    assert_eq!(fleet.recommendations_open(), vec![("within_days".to_string(), 1)]);
}

#[test]
fn items_opened_outside_the_signal_job_are_caught_up() {
    let c = conn(&["a1"]);
    // Opened without the writer's hook (as a released held signal is).
    let outcome = crate::cases::store::apply_signal(&c, &dimm_signal(T0), &crate::cases::Policy::default()).unwrap();
    assert!(matches!(outcome, Outcome::Created(_)));
    assert!(recs(&c).is_empty());
    let raised = on_opened_since(&c, 0).unwrap();
    assert!(matches!(raised.as_slice(), [Raised::Created(_)]), "{raised:?}");
    assert_eq!(recs(&c)[0].item_id, outcome.item_id());
    // Again: the same record, refreshed.
    assert!(matches!(
        on_opened_since(&c, 0).unwrap().as_slice(),
        [Raised::Updated { .. }]
    ));
    assert_eq!(recs(&c).len(), 1);
}

/// A failing disk's case, opened as the rule engine does.
fn disk_failing(key: &str, at_ms: i64, firing: bool) -> crate::cases::Signal {
    crate::cases::Signal {
        event: None,
        key: IdentityKey {
            customer: "acme".into(),
            asset: "host-a1".into(),
            check: "disk_failing".into(),
            component: key.into(),
        },
        kind: ItemKind::Case,
        severity: Severity::Critical,
        rule: "disk_failing".into(),
        firing,
        at_ms,
        evidence: json!({}),
    }
}

#[test]
fn a_swapped_disk_cannot_reopen_its_case_and_its_recommendation_is_done() {
    use crate::cases::Action;
    use crate::cases::store::{apply_signal, get, person_action};
    let c = conn(&["a1"]);
    let p = crate::cases::Policy::default();
    let mut d = fixture("ata/wdc-wd20efrx-red-healthy.json");
    d.smart_passed = Some(false);
    let key = d.key.clone();
    let serial = d.serial.clone();
    // The failing disk: a case and a replace-now recommendation.
    scan(&c, "a1", T0, &d);
    let case = apply_signal(&c, &disk_failing(&key, T0, true), &p)
        .unwrap()
        .item_id()
        .unwrap();
    assert_eq!(recs(&c).len(), 1);
    assert_eq!(recs(&c)[0].status, "open");
    // The engineer takes it, swaps the disk and resolves with the report.
    person_action(&c, case, Action::Assign, "eve", None, T0 + 60_000).unwrap();
    let report = crate::spares::ServiceReport {
        id: None,
        case_id: Some(case),
        host: "host-a1".into(),
        mode: "on_site".into(),
        symptom: "disk failing".into(),
        work_done: "replaced the disk".into(),
        engineer: "eve".into(),
        minutes: 30,
        parts: vec![crate::spares::PartReplaced {
            part_type: "disk".into(),
            slot: "/dev/sda".into(),
            old_model: d.model.clone(),
            old_serial: serial.clone(),
            new_model: d.model.clone(),
            new_serial: "NEW-SERIAL-1".into(),
            location: None,
        }],
        at_ms: None,
    };
    crate::spares::record_service_report(&c, &report, "hq", T0 + 120_000).unwrap();
    person_action(&c, case, Action::Resolve, "eve", None, T0 + 120_000).unwrap();
    // The recommendation for the old disk is done.
    assert_eq!(recs(&c)[0].status, "done", "{:?}", recs(&c));
    // The agent keeps sending the old disk's cached verdict until its next
    // SMART pass: the resolved case stays resolved, nothing is raised again.
    for i in 1..=10 {
        let at = T0 + 120_000 + i * 15_000;
        apply_signal(&c, &disk_failing(&key, at, true), &p).unwrap();
        scan(&c, "a1", at, &d);
    }
    let (item, log) = get(&c, case).unwrap().unwrap();
    assert_eq!(item.status.to_string(), "resolved", "{log:#?}");
    assert!(log.iter().all(|l| l.comment.as_deref() != Some("reopened")), "{log:#?}");
    assert_eq!(recs(&c).len(), 1, "{:?}", recs(&c));
}

// --- BMC and hardware RAID ------------------------------------------------------

mod hardware {
    use std::collections::BTreeMap;

    use caretaker_shared::wire::{
        BmcInfo, DiskInfo, DmiInfo, Event, Inventory, MemoryModule, PROTOCOL_VERSION, PsuInfo, RaidControllerInfo,
        Report, Sample, Severity as WireSeverity, VirtualDiskInfo,
    };

    use super::*;
    use crate::cases::Signal;
    use crate::detect::Engine;

    const GB: u64 = 1_000_000_000;

    /// A PowerEdge with a PERC (battery-backed), a RAID5 of four SAS disks
    /// behind it, two power supplies and a BMC.
    fn inventory() -> Inventory {
        let sas = |slot: u32, serial: &str| DiskInfo {
            name: format!("c0/e252/s{slot}"),
            location: format!("c0 252:{slot}"),
            model: "ST4000NM0023".into(),
            serial: serial.into(),
            firmware: "GS0F".into(),
            capacity_bytes: 4_000_787_030_016,
            rotational: Some(true),
            interface: "sas".into(),
            ..DiskInfo::default()
        };
        let psu = |n: u32, serial: &str| PsuInfo {
            name: format!("PS{n}"),
            manufacturer: "DELL".into(),
            model: "0PJMDN".into(),
            serial: serial.into(),
            capacity_watts: Some(750),
        };
        Inventory {
            hostname: "host-a1".into(),
            dmi: DmiInfo {
                sys_vendor: "Dell Inc.".into(),
                product_name: "PowerEdge R730".into(),
                ..DmiInfo::default()
            },
            memory_modules: vec![MemoryModule {
                locator: "A2".into(),
                size_bytes: 32 << 30,
                kind: "DDR4".into(),
                part_number: "M393A4K40CB2".into(),
                serial: "3A1B2C3D".into(),
                ..MemoryModule::default()
            }],
            disks: vec![
                DiskInfo {
                    name: "sda".into(),
                    model: "PERC H730P Mini".into(),
                    capacity_bytes: 12 * 1000 * GB,
                    interface: "raid".into(),
                    ..DiskInfo::default()
                },
                sas(0, "Z1Z3AAAA"),
                sas(1, "Z1Z3BBBB"),
                sas(2, "Z1Z3CCCC"),
                sas(3, "Z1Z3ABCD"),
            ],
            bmc: Some(BmcInfo {
                vendor: "Dell Inc.".into(),
                firmware: "2.81".into(),
                ..BmcInfo::default()
            }),
            power_supplies: vec![psu(1, "CN1797226L0A31"), psu(2, "CN1797226L0A32")],
            raid_controllers: vec![RaidControllerInfo {
                id: "c0".into(),
                kind: "perc".into(),
                model: "PERC H730P Mini".into(),
                serial: "5CF03RP".into(),
                firmware: "25.5.9.0001".into(),
                cache_backup: "bbu".into(),
                cache_backup_model: "70K80".into(),
                cache_bytes: Some(2 << 30),
            }],
            virtual_disks: vec![VirtualDiskInfo {
                id: "c0/v0".into(),
                level: "RAID5".into(),
                size_bytes: 12 * 1000 * GB,
                members: vec!["252:0".into(), "252:1".into(), "252:2".into(), "252:3".into()],
                ..VirtualDiskInfo::default()
            }],
            content_hash: "h".into(),
            ..Inventory::default()
        }
    }

    /// The store of `conn(["a1"])` with the host's inventory and site.
    fn store() -> TestDb {
        let c = conn(&["a1"]);
        set_labels_and_inventory(
            &c,
            "a1",
            &json!({"customer": "acme", "site": "hq"}).to_string(),
            &serde_json::to_string(&inventory()).unwrap(),
        );
        c
    }

    fn sample(metric: &str, labels: &[(&str, &str)], value: f64) -> Sample {
        Sample {
            metric: metric.into(),
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            value,
        }
    }

    fn report(at: i64, samples: Vec<Sample>, events: Vec<Event>) -> Report {
        Report {
            version: PROTOCOL_VERSION,
            agent_id: "a1".into(),
            seq: 1,
            collected_at_ms: at,
            interval_secs: 60,
            host: "host-a1".into(),
            labels: BTreeMap::from([("customer".to_string(), "acme".to_string())]),
            samples,
            events,
            inventory: None,
            disks: None,
        }
    }

    /// The signals of `r` through the store and the recommendation hook, as
    /// the writer's signal job does.
    fn apply(c: &dyn Sql, engine: &mut Engine, r: &Report) -> Vec<(Signal, Outcome)> {
        let mut out = Vec::new();
        for s in engine.observe(r, r.collected_at_ms) {
            let o = crate::cases::store::apply_signal(c, &s, &crate::cases::Policy::default()).unwrap();
            on_signal(c, &s, o).unwrap();
            out.push((s, o));
        }
        out
    }

    fn engine() -> Engine {
        Engine::new(crate::rules::load(None).unwrap())
    }

    fn disk_failed(at_ms: i64) -> Event {
        Event {
            at_ms,
            kind: "raid_disk_failed".into(),
            severity: WireSeverity::Critical,
            message: "Disk 252:3 (ST4000NM0023, serial Z1Z3ABCD) of array c0/v0 is Failed".into(),
            labels: [
                ("controller", "c0"),
                ("vd", "c0/v0"),
                ("slot", "252:3"),
                ("serial", "Z1Z3ABCD"),
                ("model", "ST4000NM0023"),
                ("interface", "sas"),
                ("size_bytes", "4000787030016"),
                ("state", "Failed"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        }
    }

    fn add_spare(
        c: &dyn Sql,
        model: &str,
        part_type: &str,
        interface: &str,
        capacity: Option<u64>,
        controllers: &[&str],
    ) {
        crate::spares::put_model(
            c,
            &crate::spares::SpareModel {
                model: model.into(),
                part_type: part_type.into(),
                interface: interface.into(),
                capacity_bytes: capacity,
                fits_asset_models: Vec::new(),
                fits_controller_models: controllers.iter().map(|s| s.to_string()).collect(),
                description: String::new(),
            },
        )
        .unwrap();
        crate::spares::set_stock(c, model, "hq", 1, 0, 0).unwrap();
    }

    fn accept(c: &dyn Sql, id: i64) -> Option<Value> {
        let rec = records::act(c, id, &RecAction::Accept, T0 + 3_600_000).unwrap();
        on_accept(c, &rec).unwrap()
    }

    #[test]
    fn a_degraded_array_names_its_failed_disk_and_recommends_it_with_a_spare_reserved() {
        let c = store();
        let mut e = engine();
        let vd = [("controller", "c0"), ("vd", "c0/v0")];
        let out = apply(
            &c,
            &mut e,
            &report(
                T0,
                vec![sample("caretaker_raid_vd_degraded", &vd, 1.0)],
                vec![disk_failed(T0 - 20_000)],
            ),
        );
        let cases: Vec<i64> = out
            .iter()
            .filter_map(|(_, o)| match o {
                Outcome::Created(id) => Some(*id),
                _ => None,
            })
            .collect();
        assert_eq!(cases.len(), 1, "{out:?}");
        let (item, log) = crate::cases::store::get(&c, cases[0]).unwrap().unwrap();
        assert_eq!(item.key.check, "raid_array_degraded");
        assert_eq!(item.key.component, "c0/v0");
        assert_eq!(item.occurrences, 2);
        // The history names the failed disk: slot, model and serial.
        let comment = log
            .iter()
            .find(|l| l.actor == "rule:raid_disk_failed_in_array")
            .and_then(|l| l.comment.clone())
            .unwrap_or_else(|| panic!("{log:?}"));
        assert!(comment.contains("252:3") && comment.contains("ST4000NM0023") && comment.contains("Z1Z3ABCD"));
        assert_eq!(item.evidence["events"][0]["labels"]["serial"], "Z1Z3ABCD");
        // One replacement recommendation for that disk, linked to the case.
        let list = recs(&c);
        assert_eq!(list.len(), 1, "{list:?}");
        let r = &list[0];
        assert_eq!((r.part_type.as_str(), r.urgency.as_str()), ("disk", "replace_now"));
        assert_eq!(r.part.slot, "c0 252:3");
        assert_eq!(r.part.serial, "Z1Z3ABCD");
        assert_eq!(r.part.model, "ST4000NM0023");
        assert_eq!(r.part.interface, "sas");
        assert_eq!(r.part.capacity_bytes, Some(4_000_787_030_016));
        assert_eq!(r.item_id, Some(item.id.unwrap()));
        // Later reports (the array still degraded, the event not repeated):
        // the evidence keeps the event, nothing else is raised.
        apply(
            &c,
            &mut e,
            &report(
                T0 + 60_000,
                vec![sample("caretaker_raid_vd_degraded", &vd, 1.0)],
                vec![],
            ),
        );
        let (item, _) = crate::cases::store::get(&c, cases[0]).unwrap().unwrap();
        assert_eq!(item.evidence["events"][0]["labels"]["slot"], "252:3");
        assert_eq!(recs(&c).len(), 1);
        // Accepting it reserves a compatible spare: a SAS disk at least as big.
        add_spare(&c, "ST2000NM0023", "disk", "sas", Some(2_000_398_934_016), &[]);
        add_spare(&c, "ST4000NM0035", "disk", "sata", Some(4_000_787_030_016), &[]);
        add_spare(&c, "ST6000NM0034", "disk", "sas", Some(6_001_175_126_016), &[]);
        let reserved = accept(&c, r.id).unwrap();
        assert_eq!(reserved["model"], "ST6000NM0034");
    }

    #[test]
    fn a_failed_battery_is_a_bbu_recommendation_that_reserves_a_unit_for_its_controller() {
        let c = store();
        let mut e = engine();
        apply(
            &c,
            &mut e,
            &report(
                T0,
                vec![sample("caretaker_raid_bbu_failed", &[("controller", "c0")], 1.0)],
                vec![],
            ),
        );
        let list = recs(&c);
        assert_eq!(list.len(), 1, "{list:?}");
        let r = &list[0];
        assert_eq!((r.part_type.as_str(), r.urgency.as_str()), ("bbu", "within_days"));
        assert_eq!((r.part.model.as_str(), r.part.slot.as_str()), ("70K80", "c0"));
        assert!(r.reason.contains("bbu of RAID controller c0"), "{}", r.reason);
        add_spare(&c, "BBU-H740P", "bbu", "", None, &["PERC H740P Mini"]);
        add_spare(&c, "BBU-H730P", "bbu", "", None, &["PERC H730P Mini", "PERC H730 Mini"]);
        assert_eq!(accept(&c, r.id).unwrap()["model"], "BBU-H730P");
    }

    #[test]
    fn a_failed_controller_is_a_controller_recommendation() {
        let c = store();
        let mut e = engine();
        apply(
            &c,
            &mut e,
            &report(
                T0,
                vec![sample("caretaker_raid_controller_failed", &[("controller", "c0")], 1.0)],
                vec![],
            ),
        );
        let list = recs(&c);
        assert_eq!(list.len(), 1, "{list:?}");
        let r = &list[0];
        assert_eq!(
            (r.part_type.as_str(), r.urgency.as_str()),
            ("controller", "replace_now")
        );
        assert_eq!(
            (r.part.model.as_str(), r.part.serial.as_str(), r.part.slot.as_str()),
            ("PERC H730P Mini", "5CF03RP", "c0")
        );
        add_spare(&c, "PERC H730P Mini", "controller", "", None, &[]);
        assert_eq!(accept(&c, r.id).unwrap()["model"], "PERC H730P Mini");
    }

    #[test]
    fn raid_disks_predicting_failure_are_recommended_from_the_inventory() {
        let c = store();
        let mut e = engine();
        let pd = [("controller", "c0"), ("slot", "252:1"), ("serial", "Z1Z3BBBB")];
        for (i, v) in [3.0, 3.0, 5.0].into_iter().enumerate() {
            apply(
                &c,
                &mut e,
                &report(
                    T0 + i as i64 * 60_000,
                    vec![sample("caretaker_raid_pd_media_errors", &pd, v)],
                    vec![],
                ),
            );
        }
        let list = recs(&c);
        assert_eq!(list.len(), 1, "{list:?}");
        let r = &list[0];
        assert_eq!((r.part_type.as_str(), r.urgency.as_str()), ("disk", "within_days"));
        assert_eq!(
            (
                r.part.slot.as_str(),
                r.part.serial.as_str(),
                r.part.model.as_str(),
                r.part.interface.as_str()
            ),
            ("c0 252:1", "Z1Z3BBBB", "ST4000NM0023", "sas")
        );
        assert_eq!(r.part.capacity_bytes, Some(4_000_787_030_016));
        // The same disk's SMART alert: still one active recommendation.
        apply(
            &c,
            &mut e,
            &report(
                T0 + 300_000,
                vec![sample("caretaker_raid_pd_smart_alert", &pd, 1.0)],
                vec![],
            ),
        );
        assert_eq!(recs(&c).len(), 1);
        // A missing disk is named by controller and slot: no serial to go by.
        let missing = [
            ("controller", "c0"),
            ("slot", "252:7"),
            ("serial", "c0 252:7"),
            ("in_array", "no"),
        ];
        apply(
            &c,
            &mut e,
            &report(
                T0 + 360_000,
                vec![sample("caretaker_raid_pd_failed", &missing, 1.0)],
                vec![],
            ),
        );
        let r = recs(&c).into_iter().find(|r| r.part.slot == "c0 252:7").unwrap();
        assert_eq!((r.part.serial.as_str(), r.urgency.as_str()), ("", "replace_now"));
    }

    fn sel(at_ms: i64, sensor: &str, class: &str, message: &str) -> Event {
        Event {
            at_ms,
            kind: "ipmi_sel".into(),
            severity: WireSeverity::Critical,
            message: message.into(),
            labels: [
                ("sensor", sensor),
                ("type", "power_supply"),
                ("class", class),
                ("record", "42"),
            ]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        }
    }

    #[test]
    fn a_failed_psu_is_one_recommendation_for_that_psu_from_the_sensor_or_the_event_log() {
        let c = store();
        let mut e = engine();
        let state = |sensor: &str, v: f64| {
            sample(
                "caretaker_ipmi_sensor_state",
                &[("sensor", sensor), ("type", "power_supply")],
                v,
            )
        };
        let out = apply(
            &c,
            &mut e,
            &report(
                T0,
                vec![
                    state("PS2 Status", 2.0),
                    state("PS Redundancy", 2.0),
                    state("PS1 Status", 0.0),
                ],
                vec![sel(
                    T0 - 30_000,
                    "PS2 Status",
                    "psu_failure",
                    "Power Supply PS2 Status: Failure detected",
                )],
            ),
        );
        let opened = out.iter().filter(|(_, o)| matches!(o, Outcome::Created(_))).count();
        assert_eq!(opened, 2, "the PSU's case and the redundancy's: {out:?}");
        let list = recs(&c);
        assert_eq!(list.len(), 1, "the redundancy sensor names no unit: {list:?}");
        let r = &list[0];
        assert_eq!(r.part_type, "psu");
        assert_eq!(
            (r.part.slot.as_str(), r.part.model.as_str(), r.part.serial.as_str()),
            ("PS2", "0PJMDN", "CN1797226L0A32")
        );
        add_spare(&c, "0PJMDN", "psu", "", None, &[]);
        assert_eq!(accept(&c, r.id).unwrap()["model"], "0PJMDN");
        // Input power lost is the feed, not the unit.
        let c = store();
        let mut e = engine();
        apply(
            &c,
            &mut e,
            &report(
                T0,
                vec![],
                vec![sel(
                    T0,
                    "PS1 Status",
                    "psu_failure",
                    "Power Supply PS1 Status: Power Supply AC lost",
                )],
            ),
        );
        assert!(recs(&c).is_empty());
    }

    #[test]
    fn the_correctable_ecc_limit_names_its_dimm() {
        let c = store();
        let mut e = engine();
        let mut ev = sel(
            T0,
            "A2",
            "correctable_ecc_limit",
            "Memory A2: Correctable ECC logging limit reached",
        );
        ev.labels.insert("type".into(), "memory".into());
        apply(&c, &mut e, &report(T0, vec![], vec![ev]));
        let list = recs(&c);
        assert_eq!(list.len(), 1, "{list:?}");
        let r = &list[0];
        assert_eq!(r.part_type, "dimm");
        assert_eq!(
            (r.part.slot.as_str(), r.part.model.as_str(), r.part.serial.as_str()),
            ("A2", "M393A4K40CB2", "3A1B2C3D")
        );
    }

    #[test]
    fn psus_match_their_sensors_by_name_or_number() {
        let inv = inventory();
        let name = |s: &str| psu_for_sensor(&inv, s).map(|p| p.name.as_str());
        assert_eq!(name("PS2"), Some("PS2"));
        assert_eq!(name("PS2 Status"), Some("PS2"));
        assert_eq!(name("Power Supply 1"), Some("PS1"));
        assert_eq!(name("PS Redundancy"), None);
        assert_eq!(name("PS3 Status"), None);
    }
}
