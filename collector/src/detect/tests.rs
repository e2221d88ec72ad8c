//! Replays of built streams through the built-in rules: each priority rule
//! fires exactly once on a faulty stream and never on a healthy but noisy one;
//! plus flapping, reopening, silence and determinism.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use caretaker_shared::wire::{PROTOCOL_VERSION, Report, Sample};

use super::{ReplayEvent, replay};
use crate::cases::Policy;
use crate::rules;

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;
const T0: i64 = 1_800_000_000_000;

/// Builds the reports of one or more hosts over virtual time.
#[derive(Default)]
struct Stream {
    reports: Vec<(i64, Report)>,
}

fn sample(metric: &str, labels: &[(&str, &str)], value: f64) -> Sample {
    Sample {
        metric: metric.to_string(),
        labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        value,
    }
}

impl Stream {
    /// `steps` reports of `host`, every `interval_secs`, from `start_ms`;
    /// `samples(i, at_ms)` gives the samples of step `i`.
    fn host(
        mut self,
        host: &str,
        interval_secs: u32,
        start_ms: i64,
        steps: usize,
        samples: impl Fn(usize, i64) -> Vec<Sample>,
    ) -> Stream {
        for i in 0..steps {
            let at = start_ms + i as i64 * i64::from(interval_secs) * 1000;
            self.reports.push((at, report(host, interval_secs, at, samples(i, at))));
        }
        self
    }

    /// Reports in time order (stable, so same-time reports keep their order).
    fn build(mut self) -> Vec<(i64, Report)> {
        self.reports.sort_by_key(|(t, _)| *t);
        self.reports
    }
}

fn report(host: &str, interval_secs: u32, at: i64, samples: Vec<Sample>) -> Report {
    Report {
        version: PROTOCOL_VERSION,
        agent_id: format!("agent-{host}"),
        seq: 1,
        collected_at_ms: at,
        interval_secs,
        host: host.to_string(),
        labels: BTreeMap::from([("customer".to_string(), "acme".to_string())]),
        samples,
        events: Vec::new(),
        inventory: None,
        disks: None,
    }
}

fn run(reports: &[(i64, Report)]) -> Vec<ReplayEvent> {
    replay(reports, rules::load(None).unwrap(), &Policy::default()).unwrap()
}

fn count(events: &[ReplayEvent], rule: &str, event: &str) -> usize {
    events.iter().filter(|e| e.rule == rule && e.event == event).count()
}

/// Any event for `rule` that changes an item's status (a finding's signal
/// clearing while it stays open is not one).
fn any(events: &[ReplayEvent], rule: &str) -> usize {
    events.iter().filter(|e| e.rule == rule && e.event != "cleared").count()
}

/// Deterministic noise in [-1, 1].
fn noise(i: usize) -> f64 {
    ((i as f64) * 1.7).sin()
}

fn fs(avail_ratio: f64) -> Vec<Sample> {
    let l = [("mountpoint", "/var"), ("device", "/dev/sda1")];
    vec![
        sample("caretaker_filesystem_avail_bytes", &l, avail_ratio * 1e12),
        sample("caretaker_filesystem_size_bytes", &l, 1e12),
    ]
}

#[test]
fn filesystem_almost_full_fires_once_with_hysteresis() {
    // Healthy for an hour, then 3 % free, then wobbling between 4 and 7 %:
    // under the 8 % clear mark, so the case stays open.
    let s = Stream::default()
        .host("web1", 60, T0, 240, |i, _| {
            fs(match i {
                0..60 => 0.5,
                60..90 => 0.03,
                _ => 0.055 + 0.015 * noise(i),
            })
        })
        .build();
    let ev = run(&s);
    assert_eq!(count(&ev, "filesystem_almost_full", "opened"), 1, "{ev:#?}");
    assert_eq!(any(&ev, "filesystem_almost_full"), 1, "{ev:#?}");
    let opened = ev.iter().find(|e| e.rule == "filesystem_almost_full").unwrap();
    assert_eq!(opened.key, "acme/web1/filesystem_almost_full//var");
    // Not before `for` (5 min) has passed.
    assert!(opened.at_ms >= T0 + 65 * MIN);
}

#[test]
fn filesystem_almost_full_quiet_on_noise_above_threshold() {
    let s = Stream::default()
        .host("web1", 60, T0, 600, |i, _| fs(0.12 + 0.06 * noise(i)))
        .build();
    assert_eq!(any(&run(&s), "filesystem_almost_full"), 0);
}

#[test]
fn filesystem_fills_within_7d_fires_once_on_a_steady_fall() {
    // 60 % free, falling 8 %/day: empty in ~7.5 days at first, sooner later.
    let s = Stream::default()
        .host("db1", 600, T0, 6 * 24 * 2, |i, _| {
            fs(0.6 - 0.08 * (i as f64) / 144.0 + 0.002 * noise(i))
        })
        .build();
    let ev = run(&s);
    assert_eq!(count(&ev, "filesystem_fills_within_7d", "opened"), 1, "{ev:#?}");
    assert_eq!(any(&ev, "filesystem_fills_within_7d"), 1, "{ev:#?}");
}

#[test]
fn filesystem_fills_within_7d_quiet_on_flat_noise() {
    let s = Stream::default()
        .host("db1", 600, T0, 6 * 24 * 4, |i, _| fs(0.4 + 0.05 * noise(i)))
        .build();
    assert_eq!(any(&run(&s), "filesystem_fills_within_7d"), 0);
}

fn state_stream(
    metric: &str,
    labels: &[(&str, &str)],
    bad: f64,
    good: f64,
    fault: std::ops::Range<usize>,
) -> Vec<(i64, Report)> {
    Stream::default()
        .host("app1", 60, T0, 180, |i, _| {
            vec![sample(metric, labels, if fault.contains(&i) { bad } else { good })]
        })
        .build()
}

/// A state rule opens one item for a 20-minute fault and stays quiet when the
/// metric only ever shows the healthy value (noise in other label values).
fn state_rule(rule: &str, metric: &str, labels: &[(&str, &str)], bad: f64, good: f64) {
    let ev = run(&state_stream(metric, labels, bad, good, 60..80));
    assert_eq!(count(&ev, rule, "opened"), 1, "{rule}: {ev:#?}");
    let starts = ev
        .iter()
        .filter(|e| e.rule == rule && matches!(e.event, "opened" | "reopened" | "recurrence"))
        .count();
    assert_eq!(starts, 1, "{rule}: {ev:#?}");
    let quiet = run(&state_stream(metric, labels, bad, good, 0..0));
    assert_eq!(any(&quiet, rule), 0, "{rule}: {quiet:#?}");
}

#[test]
fn disk_failing() {
    state_rule(
        "disk_failing",
        "caretaker_disk_health_verdict",
        &[("disk", "sda"), ("verdict", "failing")],
        1.0,
        0.0,
    );
    // The "passed" verdict at 1 is healthy noise for disk_failing.
    let s = state_stream(
        "caretaker_disk_health_verdict",
        &[("disk", "sda"), ("verdict", "passed")],
        1.0,
        1.0,
        0..0,
    );
    assert_eq!(any(&run(&s), "disk_failing"), 0);
}

#[test]
fn md_array_degraded() {
    state_rule(
        "md_array_degraded",
        "caretaker_md_degraded",
        &[("device", "md0")],
        1.0,
        0.0,
    );
}

#[test]
fn database_down() {
    state_rule("database_down", "caretaker_db_up", &[("db", "main")], 0.0, 1.0);
}

#[test]
fn systemd_unit_failed() {
    state_rule(
        "systemd_unit_failed",
        "caretaker_systemd_unit_failed",
        &[("unit", "nginx.service")],
        1.0,
        0.0,
    );
}

fn counter_stream(metric: &str, labels: &[(&str, &str)], value: impl Fn(usize) -> f64) -> Vec<(i64, Report)> {
    Stream::default()
        .host("store1", 300, T0, 12 * 48, |i, _| {
            vec![sample(metric, labels, value(i))]
        })
        .build()
}

#[test]
fn disk_reallocated_sectors_grew() {
    let l = [("disk", "sdb"), ("attribute", "reallocated_sectors")];
    let m = "caretaker_disk_ata_attribute_raw";
    // 8 sectors, 2 more after 10 hours, then stable for 38 hours.
    let ev = run(&counter_stream(m, &l, |i| if i < 120 { 8.0 } else { 10.0 }));
    assert_eq!(count(&ev, "disk_reallocated_sectors_grew", "opened"), 1, "{ev:#?}");
    // A high but constant count, and a counter reset (drop to 0): never an increase.
    let quiet = run(&counter_stream(m, &l, |i| if i < 200 { 40.0 } else { 0.0 }));
    assert_eq!(any(&quiet, "disk_reallocated_sectors_grew"), 0, "{quiet:#?}");
    // Another attribute growing is not this rule's business.
    let other = [("disk", "sdb"), ("attribute", "power_on_hours")];
    let quiet = run(&counter_stream(m, &other, |i| i as f64));
    assert_eq!(any(&quiet, "disk_reallocated_sectors_grew"), 0);
}

#[test]
fn edac_uncorrectable_errors_grew() {
    let l = [("controller", "mc0")];
    let m = "caretaker_edac_uncorrectable_errors";
    let ev = run(&counter_stream(m, &l, |i| if i < 100 { 0.0 } else { 1.0 }));
    assert_eq!(count(&ev, "edac_uncorrectable_errors_grew", "opened"), 1, "{ev:#?}");
    // A reset and a constant count never fire; the `_total` spelling is accepted.
    let quiet = run(&counter_stream("caretaker_edac_uncorrectable_errors_total", &l, |i| {
        if i < 50 { 3.0 } else { 0.0 }
    }));
    assert_eq!(any(&quiet, "edac_uncorrectable_errors_grew"), 0, "{quiet:#?}");
}

#[test]
fn nvme_wear_out_within_90d() {
    let l = [("disk", "nvme0n1")];
    let m = "caretaker_disk_nvme_percentage_used_ratio";
    // Daily reports; 40 % used, +1 %/day: 60 days to go once the trend shows.
    let s = Stream::default()
        .host("nvme1", 86_400, T0, 60, |i, _| {
            vec![sample(m, &l, 0.4 + 0.01 * i as f64)]
        })
        .build();
    let ev = run(&s);
    assert_eq!(count(&ev, "nvme_wear_out_within_90d", "opened"), 1, "{ev:#?}");
    assert_eq!(any(&ev, "nvme_wear_out_within_90d"), 1);
    // 10 % used, creeping 0.01 %/day with noise: centuries to go.
    let s = Stream::default()
        .host("nvme1", 86_400, T0, 60, |i, _| {
            vec![sample(m, &l, 0.1 + 0.0001 * i as f64 + 0.001 * noise(i))]
        })
        .build();
    assert_eq!(any(&run(&s), "nvme_wear_out_within_90d"), 0);
}

#[test]
fn host_unreachable_opens_one_case_and_no_others() {
    // web1 reports for an hour, is silent for an hour, and comes back; its
    // database is down when it comes back only after the silence ended, so
    // nothing but the unreachable case may open during the silence.
    let s = Stream::default()
        .host("web1", 60, T0, 60, |_, _| {
            vec![sample("caretaker_db_up", &[("db", "main")], 1.0)]
        })
        .host("web1", 60, T0 + 2 * HOUR, 60, |_, _| {
            vec![sample("caretaker_db_up", &[("db", "main")], 1.0)]
        })
        .build();
    let ev = run(&s);
    assert_eq!(count(&ev, "host_unreachable", "opened"), 1, "{ev:#?}");
    let opened: Vec<_> = ev.iter().filter(|e| e.event == "opened").collect();
    assert_eq!(opened.len(), 1, "{ev:#?}");
    let o = opened[0];
    // Noticed after 3 missed intervals, not at the end of the silence.
    assert!(
        o.at_ms > T0 + 59 * MIN + 3 * MIN && o.at_ms <= T0 + 59 * MIN + 5 * MIN,
        "{o:?}"
    );
    // It recovers after the host is back and resolves after the quiet period.
    assert_eq!(count(&ev, "host_unreachable", "recovered"), 1, "{ev:#?}");
    assert_eq!(count(&ev, "host_unreachable", "resolved"), 1, "{ev:#?}");
}

#[test]
fn host_unreachable_quiet_on_jittered_reports() {
    // Reports every 60 s, but every seventh one 90 s late: under 3 intervals.
    let mut st = Stream::default();
    let mut t = T0;
    for i in 0..300 {
        t += if i % 7 == 0 { 150_000 } else { 60_000 };
        st.reports.push((t, report("web1", 60, t, Vec::new())));
    }
    assert_eq!(any(&run(&st.build()), "host_unreachable"), 0);
}

#[test]
fn flapping_around_a_threshold_is_one_case_marked_flapping() {
    // 6 hours of a database going down and up every 10 minutes.
    let s = Stream::default()
        .host("db1", 60, T0, 6 * 60, |i, _| {
            vec![sample(
                "caretaker_db_up",
                &[("db", "main")],
                if (i / 10) % 2 == 1 { 0.0 } else { 1.0 },
            )]
        })
        .build();
    let ev = run(&s);
    assert_eq!(count(&ev, "database_down", "opened"), 1, "{ev:#?}");
    assert_eq!(count(&ev, "database_down", "reopened"), 0);
    assert_eq!(count(&ev, "database_down", "recurrence"), 0);
    assert_eq!(count(&ev, "database_down", "resolved"), 0);
    assert!(count(&ev, "database_down", "flapping") >= 1, "{ev:#?}");
    let ids: std::collections::BTreeSet<i64> = ev.iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), 1);
}

#[test]
fn filesystem_flapping_across_its_threshold_is_one_flapping_case() {
    // 6 hours of a filesystem swinging between 3 % and 10 % free every 10
    // minutes: past both the threshold (for 5 min) and the clear mark.
    let s = Stream::default()
        .host("web1", 60, T0, 6 * 60, |i, _| {
            fs(if (i / 10) % 2 == 1 { 0.03 } else { 0.10 })
        })
        .build();
    let ev = run(&s);
    assert_eq!(count(&ev, "filesystem_almost_full", "opened"), 1, "{ev:#?}");
    assert_eq!(count(&ev, "filesystem_almost_full", "reopened"), 0);
    assert_eq!(count(&ev, "filesystem_almost_full", "recurrence"), 0);
    assert!(count(&ev, "filesystem_almost_full", "flapping") >= 1, "{ev:#?}");
}

#[test]
fn a_cleared_fault_resolves_then_reopens_the_same_case() {
    // Down 20 min, up 2 hours (resolved after the 30-minute quiet period),
    // down again within the reopen window.
    let s = Stream::default()
        .host("db1", 60, T0, 200, |i, _| {
            let down = (10..30).contains(&i) || (150..170).contains(&i);
            vec![sample(
                "caretaker_db_up",
                &[("db", "main")],
                if down { 0.0 } else { 1.0 },
            )]
        })
        .build();
    let ev = run(&s);
    let names: Vec<&str> = ev.iter().map(|e| e.event).collect();
    assert_eq!(
        names,
        ["opened", "recovered", "resolved", "reopened", "recovered"],
        "{ev:#?}"
    );
    assert!(ev.iter().all(|e| e.id == ev[0].id));
    let resolved = ev.iter().find(|e| e.event == "resolved").unwrap();
    assert!(resolved.at_ms >= T0 + 30 * MIN + 30 * MIN);
}

#[test]
fn replay_is_deterministic() {
    let s = Stream::default()
        .host("a", 60, T0, 300, |i, _| {
            let mut v = fs(0.04 + 0.1 * noise(i).abs());
            v.push(sample(
                "caretaker_db_up",
                &[("db", "x")],
                if i % 13 < 4 { 0.0 } else { 1.0 },
            ));
            v
        })
        .host("b", 60, T0 + 30 * MIN, 100, |i, _| {
            vec![sample(
                "caretaker_md_degraded",
                &[("device", "md1")],
                (i % 40 > 30) as u8 as f64,
            )]
        })
        .build();
    let one = serde_json::to_string(&run(&s)).unwrap();
    let two = serde_json::to_string(&run(&s)).unwrap();
    assert!(one.len() > 100);
    assert_eq!(one, two);
}

#[test]
fn other_state_rules() {
    state_rule(
        "filesystem_remounted_readonly",
        "caretaker_filesystem_remounted_readonly",
        &[("mountpoint", "/data")],
        1.0,
        0.0,
    );
    state_rule(
        "disk_warning",
        "caretaker_disk_health_verdict",
        &[("disk", "sdc"), ("verdict", "warning")],
        1.0,
        0.0,
    );
    state_rule("clock_not_synchronised", "caretaker_time_synchronized", &[], 0.0, 1.0);
    state_rule("reboot_required", "caretaker_reboot_required", &[], 1.0, 0.0);
}

/// An increase rule opens one item when its counter grows once and stays
/// quiet on a constant counter that is reset once.
fn increase_rule(rule: &str, metric: &str, labels: &[(&str, &str)]) {
    let ev = run(&counter_stream(metric, labels, |i| if i < 100 { 5.0 } else { 9.0 }));
    assert_eq!(count(&ev, rule, "opened"), 1, "{rule}: {ev:#?}");
    let quiet = run(&counter_stream(metric, labels, |i| if i < 300 { 50.0 } else { 0.0 }));
    assert_eq!(any(&quiet, rule), 0, "{rule}: {quiet:#?}");
}

#[test]
fn other_increase_rules() {
    let ata = "caretaker_disk_ata_attribute_raw";
    increase_rule(
        "disk_pending_sectors_grew",
        ata,
        &[("disk", "sda"), ("attribute", "pending_sectors")],
    );
    increase_rule(
        "disk_crc_errors_grew",
        ata,
        &[("disk", "sda"), ("attribute", "udma_crc_errors")],
    );
    increase_rule(
        "nvme_media_errors_grew",
        "caretaker_disk_nvme_media_errors",
        &[("disk", "nvme0n1")],
    );
    increase_rule(
        "edac_correctable_errors_grew",
        "caretaker_edac_correctable_errors",
        &[("controller", "mc0")],
    );
    increase_rule("oom_kills_grew", "caretaker_oom_kills", &[]);
    increase_rule(
        "redis_evictions_grew",
        "caretaker_redis_evicted_keys",
        &[("db", "cache")],
    );
}

#[test]
fn pg_long_transaction() {
    let l = [("db", "main")];
    let m = "caretaker_pg_oldest_transaction_seconds";
    // A transaction open from minute 10 to minute 100: over an hour from
    // minute 70, firing from minute 80 (for 10 min).
    let s = Stream::default()
        .host("pg1", 60, T0, 180, |i, _| {
            let age = if (10..100).contains(&i) {
                (i - 10) as f64 * 60.0
            } else {
                5.0
            };
            vec![sample(m, &l, age)]
        })
        .build();
    let ev = run(&s);
    assert_eq!(count(&ev, "pg_long_transaction", "opened"), 1, "{ev:#?}");
    let o = ev.iter().find(|e| e.rule == "pg_long_transaction").unwrap();
    assert_eq!(o.at_ms, T0 + 81 * MIN);
    // Spikes over an hour that never last 10 minutes.
    let s = Stream::default()
        .host("pg1", 60, T0, 300, |i, _| {
            vec![sample(m, &l, if i % 12 < 8 { 100.0 } else { 4000.0 })]
        })
        .build();
    assert_eq!(any(&run(&s), "pg_long_transaction"), 0);
}

#[test]
fn disk_temperature_at_trip_point() {
    let l = [("disk", "sda")];
    let temps = |t: f64| {
        vec![
            sample("caretaker_disk_temperature_celsius", &l, t),
            sample("caretaker_disk_temperature_trip_celsius", &l, 70.0),
        ]
    };
    let s = Stream::default()
        .host("nas1", 60, T0, 120, |i, _| {
            temps(if (30..60).contains(&i) { 72.0 } else { 45.0 })
        })
        .build();
    let ev = run(&s);
    assert_eq!(count(&ev, "disk_temperature_at_trip_point", "opened"), 1, "{ev:#?}");
    let s = Stream::default()
        .host("nas1", 60, T0, 300, |i, _| temps(60.0 + 8.0 * noise(i)))
        .build();
    assert_eq!(any(&run(&s), "disk_temperature_at_trip_point"), 0);
}

#[test]
fn a_pending_threshold_does_not_complete_across_a_silence() {
    // 3 % free for 2 minutes, silent for an hour, back at 3 %: the 5 minutes
    // of `for` count from the return, not from before the silence.
    let s = Stream::default()
        .host("web1", 60, T0, 3, |_, _| fs(0.03))
        .host("web1", 60, T0 + HOUR, 10, |_, _| fs(0.03))
        .build();
    let ev = run(&s);
    let o = ev.iter().find(|e| e.rule == "filesystem_almost_full").unwrap();
    assert_eq!(o.event, "opened");
    assert_eq!(o.at_ms, T0 + HOUR + 5 * MIN, "{ev:#?}");
}

#[test]
fn engine_emits_clears_for_every_covered_series() {
    let mut engine = super::Engine::new(rules::load(None).unwrap());
    let r = report(
        "h",
        60,
        T0,
        vec![
            sample("caretaker_db_up", &[("db", "a")], 1.0),
            sample("caretaker_db_up", &[("db", "b")], 0.0),
        ],
    );
    let signals: Vec<_> = engine
        .observe(&r, T0)
        .into_iter()
        .filter(|s| s.rule == "database_down")
        .collect();
    assert_eq!(signals.len(), 2);
    assert!(!signals[0].firing && signals[0].key.component == "a");
    assert!(signals[1].firing && signals[1].key.component == "b");
    assert_eq!(signals[1].evidence["value"], 0.0);
    assert_eq!(signals[1].evidence["at_ms"], T0);
    // A state rule's evidence carries its summary: the case's title.
    assert_eq!(signals[1].evidence["summary"], "Database b on h is down");
    assert!(signals[0].evidence.is_null(), "a clear carries no evidence");
    // The engine is pure: a tick long after marks the host unreachable.
    let t = engine.tick(T0 + 10 * MIN);
    assert!(t.iter().any(|s| s.rule == "host_unreachable" && s.firing));
}

#[test]
fn a_network_outage_is_one_storm_case_not_a_case_per_host() {
    // Fourteen hosts of one customer report for an hour, all go silent for
    // an hour (a switch died), then come back.
    let mut s = Stream::default();
    let hosts: Vec<String> = (0..14).map(|i| format!("web{i:02}")).collect();
    for h in &hosts {
        s = s
            .host(h, 60, T0, 60, |_, _| Vec::new())
            .host(h, 60, T0 + 2 * HOUR, 90, |_, _| Vec::new());
    }
    let ev = run(&s.build());
    let p = Policy::default();
    let opened = count(&ev, "host_unreachable", "opened");
    assert_eq!(opened, p.storm_cases as usize, "{ev:#?}");
    assert_eq!(count(&ev, "case_storm", "opened"), 1, "{ev:#?}");
    let storm = ev.iter().find(|e| e.rule == "case_storm").unwrap();
    assert_eq!(storm.key, "acme/*/case_storm/");
    assert_eq!(storm.severity, "major");
    let held: Vec<_> = ev.iter().filter(|e| e.event == "held").collect();
    assert_eq!(held.len(), 14 - p.storm_cases as usize, "{ev:#?}");
    assert!(
        held.iter()
            .all(|e| e.status == "held:storm" && e.rule == "host_unreachable")
    );
    // When the hosts are back everything resolves; the attached signals
    // never become cases of their own.
    assert_eq!(count(&ev, "case_storm", "resolved"), 1, "{ev:#?}");
    assert_eq!(
        count(&ev, "host_unreachable", "resolved"),
        p.storm_cases as usize,
        "{ev:#?}"
    );
    assert_eq!(count(&ev, "host_unreachable", "opened"), opened);
}

#[test]
fn a_maintenance_window_holds_the_fault_until_it_ends() {
    use crate::cases::hold::Window;
    // web1's filesystem fills during the window and is still full after it;
    // web2's fills and is cleaned up inside the window.
    let window = Window {
        id: 0,
        customer: "acme".into(),
        asset: None,
        starts_at_ms: T0 + 30 * MIN,
        ends_at_ms: T0 + 3 * HOUR,
        reason: "storage migration".into(),
        created_by: "ops".into(),
        created_at_ms: 0,
    };
    let s = Stream::default()
        .host("web1", 60, T0, 300, |i, _| fs(if i < 60 { 0.5 } else { 0.03 }))
        .host("web2", 60, T0, 300, |i, _| {
            fs(if (60..120).contains(&i) { 0.03 } else { 0.5 })
        })
        .build();
    let ev = super::replay_with(&s, rules::load(None).unwrap(), &Policy::default(), &[window]).unwrap();
    let opened: Vec<_> = ev.iter().filter(|e| e.event == "opened").collect();
    assert_eq!(opened.len(), 1, "{ev:#?}");
    assert_eq!(opened[0].key, "acme/web1/filesystem_almost_full//var");
    // At the window's end (the first tick at or after it), not before.
    assert!(
        opened[0].at_ms >= T0 + 3 * HOUR && opened[0].at_ms <= T0 + 3 * HOUR + MIN,
        "{:?}",
        opened[0]
    );
    let held: Vec<_> = ev.iter().filter(|e| e.event == "held").collect();
    assert!(held.iter().all(|e| e.status == "held:maintenance"), "{held:#?}");
    assert!(held.iter().any(|e| e.key.contains("/web2/")), "{held:#?}");
    // Without the window, both would have opened a case.
    let plain = run(&s);
    assert_eq!(plain.iter().filter(|e| e.event == "opened").count(), 2, "{plain:#?}");
}

#[test]
fn a_rules_reload_keeps_the_state_of_unchanged_rules() {
    let set = rules::load(None).unwrap();
    let mut engine = super::Engine::new(set.clone());
    let firing_of = |signals: &[crate::cases::Signal]| {
        signals
            .iter()
            .find(|s| s.rule == "filesystem_almost_full")
            .map(|s| s.firing)
    };
    let mut last = None;
    for i in 0..10 {
        let at = T0 + i * MIN;
        last = firing_of(&engine.observe(&report("web1", 60, at, fs(0.03)), at));
    }
    assert_eq!(last, Some(true), "firing after its `for`");
    // The same rules in another order (as when a file is added before them):
    // still firing at once, no clear that would recover the case.
    let mut reordered = set.clone();
    reordered.rules.reverse();
    engine.replace_rules(reordered);
    let at = T0 + 10 * MIN;
    assert_eq!(
        firing_of(&engine.observe(&report("web1", 60, at, fs(0.03)), at)),
        Some(true)
    );
    // A changed rule starts afresh: pending again, not firing.
    let mut changed = set;
    for r in &mut changed.rules {
        if r.name == "filesystem_almost_full" {
            r.severity = crate::cases::Severity::Critical;
        }
    }
    engine.replace_rules(changed);
    let at = T0 + 11 * MIN;
    assert_eq!(
        firing_of(&engine.observe(&report("web1", 60, at, fs(0.03)), at)),
        Some(false)
    );
}

/// The built-in rules plus operator rules given as TOML text.
fn rules_with(text: &str) -> crate::rules::RuleSet {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("operator.toml"), text).unwrap();
    rules::load(Some(dir.path())).unwrap()
}

#[test]
fn a_failed_unit_whose_series_disappears_recovers_and_resolves() {
    // The unit fails for 20 minutes; after the rerun the agent no longer
    // lists it (healthy units are not sent) while the host keeps reporting.
    let s = Stream::default()
        .host("app1", 15, T0, 4 * 60 * 3, |i, _| {
            let mut v = vec![sample("caretaker_cpu_usage_ratio", &[], 0.1)];
            if i < 80 {
                v.push(sample(
                    "caretaker_systemd_unit_failed",
                    &[("unit", "backup.service")],
                    1.0,
                ));
            }
            v
        })
        .build();
    let ev = run(&s);
    assert_eq!(count(&ev, "systemd_unit_failed", "opened"), 1, "{ev:#?}");
    let recovered = ev
        .iter()
        .find(|e| e.rule == "systemd_unit_failed" && e.event == "recovered")
        .unwrap_or_else(|| panic!("the case recovers once the series is gone: {ev:#?}"));
    // Gone after 3 report intervals, not at once; recovered once the
    // lifecycle's minimum hold (5 min) since the last firing has passed.
    let last_sent = T0 + 79 * 15_000;
    assert!(recovered.at_ms > last_sent + 3 * 15_000, "{recovered:?}");
    assert!(recovered.at_ms <= last_sent + 5 * MIN + 15_000, "{recovered:?}");
    // The untouched case resolves after the quiet period, by itself.
    assert_eq!(count(&ev, "systemd_unit_failed", "resolved"), 1, "{ev:#?}");
    assert_eq!(count(&ev, "systemd_unit_failed", "reopened"), 0, "{ev:#?}");
}

#[test]
fn a_silent_host_is_the_storm_case_not_a_mass_clear_of_its_series() {
    // The unit is failing when the host goes silent for an hour: the absence
    // case opens, and the unit's case is not cleared by the silence.
    let mut s = Stream::default()
        .host("app1", 15, T0, 80, |_, _| {
            vec![sample(
                "caretaker_systemd_unit_failed",
                &[("unit", "backup.service")],
                1.0,
            )]
        })
        .build();
    let back = T0 + 80 * 15_000 + HOUR;
    s.extend(
        Stream::default()
            .host("app1", 15, back, 40, |_, _| {
                vec![sample(
                    "caretaker_systemd_unit_failed",
                    &[("unit", "backup.service")],
                    1.0,
                )]
            })
            .build(),
    );
    let ev = run(&s);
    assert_eq!(count(&ev, "host_unreachable", "opened"), 1, "{ev:#?}");
    assert_eq!(count(&ev, "systemd_unit_failed", "opened"), 1, "{ev:#?}");
    assert_eq!(count(&ev, "systemd_unit_failed", "recovered"), 0, "{ev:#?}");
}

/// A staging volume emptied every morning at 06:00 and filled during the
/// night, with its daily low at `low(day)` (a ratio of free space).
fn sawtooth(days: usize, high_free: impl Fn(usize) -> f64) -> Vec<(i64, Report)> {
    Stream::default()
        .host("stage1", 600, T0, days * 144, |i, _| {
            let day = i / 144;
            let minute_of_day = (i % 144) * 10;
            // 06:00 is the emptying; from 18:00 to 06:00 it fills to 3 % free.
            let hours_since_empty = ((minute_of_day + 24 * 60 - 6 * 60) % (24 * 60)) as f64 / 60.0;
            let top = high_free(day);
            let free = if hours_since_empty < 12.0 {
                top
            } else {
                top - (top - 0.03) * (hours_since_empty - 12.0) / 12.0
            };
            fs(free + 0.002 * noise(i))
        })
        .build()
}

#[test]
fn a_nightly_sawtooth_is_not_forecast_as_filling() {
    let ev = run(&sawtooth(6, |_| 0.9));
    assert_eq!(any(&ev, "filesystem_fills_within_7d"), 0, "{ev:#?}");
}

#[test]
fn a_sawtooth_whose_daily_low_keeps_rising_is_forecast() {
    // Each morning 8 % less comes free: full within days.
    let ev = run(&sawtooth(8, |day| 0.9 - 0.08 * day as f64));
    assert_eq!(count(&ev, "filesystem_fills_within_7d", "opened"), 1, "{ev:#?}");
}

#[test]
fn a_short_window_rule_gets_its_own_points_beside_a_long_one() {
    // An operator's 2-minute forecast on the same ratio the built-in 2-day
    // rule reads: points every 5 s, not every 2 h.
    let set = rules_with(
        r#"
[[rule]]
name = "tmp_fills_fast"
kind = "forecast"
metric = "caretaker_filesystem_avail_bytes"
divide_by = "caretaker_filesystem_size_bytes"
window = "2m"
reaches = 0
within = "30m"
component = "mountpoint"
outcome = "finding"
severity = "major"
summary = "{component} on {host} fills within minutes"
"#,
    );
    // 90 % free falling 1 %/15 s: empty in ~22 minutes from the start.
    let s = Stream::default()
        .host("web1", 15, T0, 60, |i, _| fs(0.9 - 0.01 * i as f64))
        .build();
    let ev = replay(&s, set, &Policy::default()).unwrap();
    let opened = ev
        .iter()
        .find(|e| e.rule == "tmp_fills_fast" && e.event == "opened")
        .unwrap_or_else(|| panic!("{ev:#?}"));
    assert!(opened.at_ms <= T0 + 3 * MIN, "{opened:?}");
}

/// A real smartctl capture, parsed as the agent parses it.
fn smart_fixture(rel: &str) -> caretaker_shared::disk_health::Disk {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/smartctl")
        .join(rel);
    let text = std::fs::read_to_string(&path).unwrap();
    caretaker_shared::smartctl::parse(&text).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// A report as the agent sends it after a SMART pass: the disk's verdict
/// samples (one per level, 1 for the current one), the scan itself, and
/// the inventory when it changed.
fn disk_report(
    host: &str,
    at: i64,
    disk: &caretaker_shared::disk_health::Disk,
    scanned_at_ms: i64,
    inventory: Option<caretaker_shared::wire::Inventory>,
) -> (i64, Report) {
    use caretaker_shared::disk_health::Level;
    let samples = Level::ALL
        .iter()
        .map(|l| {
            sample(
                "caretaker_disk_health_verdict",
                &[("disk", disk.key.as_str()), ("verdict", l.as_str())],
                if disk.verdict.level == *l { 1.0 } else { 0.0 },
            )
        })
        .collect();
    let mut r = report(host, 15, at, samples);
    r.disks = Some(caretaker_shared::wire::DiskScan {
        scanned_at_ms,
        disks: vec![disk.clone()],
        error: None,
    });
    r.inventory = inventory;
    (at, r)
}

fn inventory_with(disk: &caretaker_shared::disk_health::Disk) -> caretaker_shared::wire::Inventory {
    caretaker_shared::wire::Inventory {
        hostname: "db1".into(),
        machine_id: "0123456789abcdef".into(),
        disks: vec![caretaker_shared::wire::DiskInfo {
            location: String::new(),
            name: "sda".into(),
            model: disk.model.clone(),
            serial: disk.serial.clone(),
            wwn: disk.wwn.clone(),
            firmware: disk.firmware.clone(),
            capacity_bytes: disk.capacity_bytes.unwrap_or(0),
            rotational: Some(true),
            interface: "sata".into(),
        }],
        ..Default::default()
    }
}

#[test]
fn replay_a_disk_whose_serial_left_the_inventory_cannot_reopen_and_its_recommendation_is_done() {
    // A failing disk; at minute 10 it is swapped: the inventory lists the
    // new disk at once, but the agent keeps sending the old disk's cached
    // verdict until its next SMART pass, 20 minutes later.
    let old = smart_fixture("ata/hitachi-hds721050dle630-usbjmicron-reallocated-failing.json");
    let mut new = smart_fixture("ata/wdc-wd20efrx-red-healthy.json");
    new.serial = "WD-NEW0001".into();
    let swap = T0 + 10 * MIN;
    let pass = swap + 20 * MIN;
    let mut s = Vec::new();
    for i in 0..(4 * 90) {
        let at = T0 + i * 15_000;
        let inventory = match at {
            t if t == T0 => Some(inventory_with(&old)),
            t if t == swap => Some(inventory_with(&new)),
            _ => None,
        };
        s.push(if at < pass {
            disk_report("db1", at, &old, T0, inventory)
        } else {
            disk_report("db1", at, &new, pass, inventory)
        });
    }
    let ev = run(&s);
    assert_eq!(count(&ev, "disk_failing", "opened"), 1, "{ev:#?}");
    assert_eq!(count(&ev, "disk_failing", "reopened"), 0, "{ev:#?}");
    let recommended: Vec<_> = ev.iter().filter(|e| e.event == "recommended").collect();
    assert_eq!(recommended.len(), 1, "{ev:#?}");
    assert_eq!(recommended[0].severity, "replace_now");
    assert_eq!(recommended[0].detail["part"]["serial"], old.serial.as_str());
    // The swap finishes the recommendation, and the old disk's cached
    // verdict is a clear from then on: the untouched case recovers after
    // the minimum hold, well before the next SMART pass, then resolves.
    let done = ev
        .iter()
        .find(|e| e.event == "done")
        .unwrap_or_else(|| panic!("{ev:#?}"));
    assert_eq!(done.at_ms, swap, "{done:?}");
    let recovered = ev
        .iter()
        .find(|e| e.rule == "disk_failing" && e.event == "recovered")
        .unwrap_or_else(|| panic!("{ev:#?}"));
    assert!(recovered.at_ms < pass, "{recovered:?}");
    assert_eq!(count(&ev, "disk_failing", "resolved"), 1, "{ev:#?}");
    // The new disk raises nothing.
    assert_eq!(ev.iter().filter(|e| e.kind == "recommendation").count(), 2, "{ev:#?}");
}

/// A report of `host` at `at` whose samples are `n` failed-unit series and
/// `n` filesystems (read by a windowed forecast and a threshold), all named
/// with `tag`: what an agent listing churning unit or mount names sends.
fn wide_report(host: &str, at: i64, n: usize, tag: &str) -> Report {
    let mut samples = Vec::with_capacity(3 * n);
    for i in 0..n {
        let unit = format!("job-{tag}-{i}.service");
        samples.push(sample("caretaker_systemd_unit_failed", &[("unit", &unit)], 0.0));
        let mp = format!("/srv/{tag}/{i}");
        samples.push(sample("caretaker_filesystem_avail_bytes", &[("mountpoint", &mp)], 6e9));
        samples.push(sample("caretaker_filesystem_size_bytes", &[("mountpoint", &mp)], 1e10));
    }
    report(host, 15, at, samples)
}

/// The work (label sets compared) of observing one fresh report of `n`
/// series per family, then the same series again.
fn work_of(n: usize) -> (u64, u64) {
    let mut engine = super::Engine::new(rules::load(None).unwrap());
    engine.observe(&wide_report("big", T0, n, "a"), T0);
    let new = engine.work();
    engine.observe(&wide_report("big", T0 + 15_000, n, "a"), T0 + 15_000);
    (new, engine.work() - new)
}

// One 20,000-sample report stalled detection for the whole fleet: each
// series was found by scanning every series of its rule, so a report's cost
// grew with the square of its size. Four times the series must cost about
// four times the work, whether the series are new or known.
#[test]
fn a_large_report_costs_work_linear_in_its_size() {
    let (new_small, known_small) = work_of(1_000);
    let (new_large, known_large) = work_of(4_000);
    assert!(new_small > 0 && known_small > 0);
    assert!(
        new_large <= 5 * new_small,
        "new series: {new_small} for 1,000, {new_large} for 4,000"
    );
    assert!(
        known_large <= 5 * known_small,
        "known series: {known_small} for 1,000, {known_large} for 4,000"
    );
}

// Label values that change with every report made every evaluation slower
// than the last: the series piled up. The host's series stay within the
// bound, the refused ones are counted, and the reports cost the same work
// once the bound is reached.
#[test]
fn churning_label_values_keep_a_host_within_its_series_bound() {
    let mut engine = super::Engine::new(rules::load(None).unwrap()).max_series_per_host(2_000);
    let mut work = Vec::new();
    for k in 0..200 {
        let at = T0 + k * 15_000;
        let before = engine.work();
        engine.observe(&wide_report("churn", at, 100, &format!("r{k}")), at);
        work.push(engine.work() - before);
        let count = engine.series_of("churn").unwrap();
        assert!(count.live <= 2_000, "report {k}: {count:?}");
    }
    let count = engine.series_of("churn").unwrap();
    assert!(count.limited, "{count:?}");
    assert!(count.dropped > 0, "{count:?}");
    // Each report refuses its new series past the bound: the work per
    // report stops growing (what it costs is the bound, not the history).
    let late = work[150..].iter().max().copied().unwrap_or(0);
    let at_bound = work[40..60].iter().max().copied().unwrap_or(0);
    assert!(late <= 2 * at_bound, "work per report: {work:?}");
    // Strings of forgotten series are let go too: not every value ever sent.
    assert!(
        engine.footprint().strings < 3 * 2_000 + 2_048,
        "{:?}",
        engine.footprint()
    );
}

// Series that stop reporting expire: after the forget horizon a churning
// host holds only about an hour of series, below any bound, and is no
// longer limited.
#[test]
fn series_that_stop_reporting_expire() {
    let mut engine = super::Engine::new(rules::load(None).unwrap()).max_series_per_host(100_000);
    let per_report = 3 * 2; // 2 units and 2 filesystems read by 2 rules
    let reports_per_hour = HOUR / 15_000;
    let churned = 2 * reports_per_hour;
    for k in 0..churned {
        let at = T0 + k * 15_000;
        engine.observe(&wide_report("churn", at, 2, &format!("r{k}")), at);
    }
    let live = engine.series_of("churn").unwrap().live as i64;
    // An hour and a few intervals of series, not two hours of them.
    assert!(live <= (reports_per_hour + 8) * per_report, "{live}");
    assert!(live >= reports_per_hour * per_report / 2, "{live}");
    // Back to the same series: everything churned is forgotten in time.
    for k in 0..(reports_per_hour + 10) {
        let at = T0 + (churned + k) * 15_000;
        engine.observe(&wide_report("churn", at, 2, "steady"), at);
    }
    let count = engine.series_of("churn").unwrap();
    assert_eq!(count.live as i64, per_report, "{count:?}");
    assert!(!count.limited && count.dropped == 0, "{count:?}");
}

// The bound belongs to each host: one host at its bound refuses nothing of
// another's, and a critical fault of the other still fires.
#[test]
fn one_host_at_its_bound_does_not_limit_another() {
    let mut engine = super::Engine::new(rules::load(None).unwrap()).max_series_per_host(500);
    for k in 0..20 {
        let at = T0 + k * 15_000;
        engine.observe(&wide_report("flood", at, 100, &format!("r{k}")), at);
    }
    assert!(engine.series_of("flood").unwrap().limited);
    let fault = report(
        "quiet",
        15,
        T0,
        vec![sample("caretaker_md_degraded", &[("device", "md0")], 1.0)],
    );
    let signals = engine.observe(&fault, T0 + 300_000);
    assert!(
        signals.iter().any(|s| s.rule == "md_array_degraded" && s.firing),
        "{signals:?}"
    );
    let quiet = engine.series_of("quiet").unwrap();
    assert!(!quiet.limited && quiet.dropped == 0, "{quiet:?}");
}

// --- BMC and hardware RAID ------------------------------------------------------

fn event(kind: &str, at_ms: i64, message: &str, labels: &[(&str, &str)]) -> caretaker_shared::wire::Event {
    caretaker_shared::wire::Event {
        at_ms,
        kind: kind.to_string(),
        severity: caretaker_shared::wire::Severity::Critical,
        message: message.to_string(),
        labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
    }
}

/// The event the agent sends when a disk of array c0/v0 fails.
fn disk_failed_event(at_ms: i64) -> caretaker_shared::wire::Event {
    event(
        "raid_disk_failed",
        at_ms,
        "Disk 252:3 (ST4000NM0023, serial Z1Z3ABCD) of array c0/v0 is Failed",
        &[
            ("controller", "c0"),
            ("vd", "c0/v0"),
            ("slot", "252:3"),
            ("serial", "Z1Z3ABCD"),
            ("model", "ST4000NM0023"),
            ("interface", "sas"),
            ("size_bytes", "4000787030016"),
            ("state", "Failed"),
        ],
    )
}

fn vd(degraded: bool, rebuilding: bool) -> Vec<Sample> {
    let l = [("controller", "c0"), ("vd", "c0/v0")];
    vec![
        sample("caretaker_raid_vd_degraded", &l, f64::from(u8::from(degraded))),
        sample("caretaker_raid_vd_rebuilding", &l, f64::from(u8::from(rebuilding))),
        sample("caretaker_raid_vd_rebuild_stalled", &l, 0.0),
        sample("caretaker_raid_cache_write_through", &l, 0.0),
        sample("caretaker_raid_controller_failed", &[("controller", "c0")], 0.0),
        sample("caretaker_raid_bbu_failed", &[("controller", "c0")], 0.0),
        sample("caretaker_raid_bbu_learning", &[("controller", "c0")], 0.0),
    ]
}

fn opened_items(ev: &[ReplayEvent]) -> Vec<&ReplayEvent> {
    ev.iter()
        .filter(|e| matches!(e.event, "opened" | "reopened" | "recurrence"))
        .collect()
}

#[test]
fn a_degraded_array_and_its_failed_disk_event_open_one_case_that_recovers_when_optimal() {
    // Optimal for 30 minutes; a disk fails (the array degrades and the agent
    // announces the disk in the same report); the spare rebuilds from
    // minute 60 to 90; optimal again after.
    let mut s = Stream::default()
        .host("srv1", 60, T0, 240, |i, _| match i {
            0..30 => vd(false, false),
            30..60 => vd(true, false),
            60..90 => vd(true, true),
            _ => vd(false, false),
        })
        .build();
    s[30].1.events.push(disk_failed_event(T0 + 30 * MIN - 20_000));
    let ev = run(&s);
    let opened = opened_items(&ev);
    let cases: Vec<_> = opened.iter().filter(|e| e.kind == "case").collect();
    assert_eq!(cases.len(), 1, "{ev:#?}");
    assert_eq!(cases[0].key, "acme/srv1/raid_array_degraded/c0/v0");
    assert_eq!(cases[0].rule, "raid_array_degraded");
    assert_eq!(cases[0].severity, "critical");
    // The rebuild is a finding beside it, and the case recovers and resolves.
    assert_eq!(count(&ev, "raid_rebuild_in_progress", "opened"), 1, "{ev:#?}");
    assert_eq!(opened.len(), 2, "{ev:#?}");
    let recovered = ev
        .iter()
        .find(|e| e.rule == "raid_array_degraded" && e.event == "recovered")
        .unwrap_or_else(|| panic!("{ev:#?}"));
    assert!(recovered.at_ms >= T0 + 90 * MIN, "{recovered:?}");
    assert_eq!(count(&ev, "raid_array_degraded", "resolved"), 1, "{ev:#?}");
    assert_eq!(
        any(&ev, "raid_disk_failed_in_array"),
        0,
        "the event joins the array's case: {ev:#?}"
    );
}

#[test]
fn a_failed_disk_event_before_its_array_state_opens_the_array_case_once() {
    // The event alone opens the array's case (titled by the event rule);
    // the array's state then lands on the same case.
    let mut s = Stream::default()
        .host("srv1", 60, T0, 60, |i, _| vd((10..40).contains(&i), false))
        .build();
    s[9].1.events.push(disk_failed_event(T0 + 9 * MIN));
    let ev = run(&s);
    let opened = opened_items(&ev);
    assert_eq!(opened.len(), 1, "{ev:#?}");
    assert_eq!(opened[0].key, "acme/srv1/raid_array_degraded/c0/v0");
    assert_eq!(opened[0].rule, "raid_disk_failed_in_array");
    assert_eq!(count(&ev, "raid_array_degraded", "recovered"), 1, "{ev:#?}");
}

#[test]
fn a_battery_learn_cycle_is_only_an_info_finding() {
    let s = Stream::default()
        .host("srv1", 60, T0, 120, |i, _| {
            let mut v = vd(false, false);
            v.push(sample("caretaker_raid_bbu_present", &[("controller", "c0")], 1.0));
            if (30..90).contains(&i) {
                v.retain(|x| x.metric != "caretaker_raid_bbu_learning");
                v.push(sample("caretaker_raid_bbu_learning", &[("controller", "c0")], 1.0));
            }
            v
        })
        .build();
    let ev = run(&s);
    let opened = opened_items(&ev);
    assert_eq!(opened.len(), 1, "{ev:#?}");
    assert_eq!(
        (
            opened[0].rule.as_str(),
            opened[0].kind.as_str(),
            opened[0].severity.as_str()
        ),
        ("raid_bbu_learning", "finding", "info")
    );
}

#[test]
fn raid_state_and_counter_rules() {
    state_rule(
        "raid_controller_failed",
        "caretaker_raid_controller_failed",
        &[("controller", "c0")],
        1.0,
        0.0,
    );
    state_rule(
        "raid_bbu_failed",
        "caretaker_raid_bbu_failed",
        &[("controller", "c0")],
        1.0,
        0.0,
    );
    state_rule(
        "raid_cache_write_through",
        "caretaker_raid_cache_write_through",
        &[("controller", "c0"), ("vd", "c0/v0")],
        1.0,
        0.0,
    );
    state_rule(
        "raid_rebuild_stalled",
        "caretaker_raid_vd_rebuild_stalled",
        &[("controller", "c0"), ("vd", "c0/v0")],
        1.0,
        0.0,
    );
    let pd = [("controller", "c0"), ("slot", "252:4"), ("serial", "Z1Z3EFGH")];
    state_rule("raid_disk_smart_alert", "caretaker_raid_pd_smart_alert", &pd, 1.0, 0.0);
    let spare = [
        ("controller", "c0"),
        ("slot", "252:5"),
        ("serial", "Z1Z3IJKL"),
        ("in_array", "no"),
    ];
    state_rule("raid_disk_failed", "caretaker_raid_pd_failed", &spare, 1.0, 0.0);
    // A disk of an array is the array's case, not its own.
    let member = [
        ("controller", "c0"),
        ("slot", "252:3"),
        ("serial", "Z1Z3ABCD"),
        ("in_array", "yes"),
    ];
    let ev = run(&state_stream("caretaker_raid_pd_failed", &member, 1.0, 0.0, 60..80));
    assert_eq!(any(&ev, "raid_disk_failed"), 0, "{ev:#?}");
    // Cumulative counters: a rise opens, a high constant count never does.
    increase_rule("raid_disk_media_errors_grew", "caretaker_raid_pd_media_errors", &pd);
    increase_rule(
        "raid_disk_predictive_failures_grew",
        "caretaker_raid_pd_predictive_failures",
        &pd,
    );
    increase_rule("raid_disk_other_errors_grew", "caretaker_raid_pd_other_errors", &pd);
    let quiet = run(&counter_stream("caretaker_raid_pd_media_errors", &pd, |_| 4711.0));
    assert_eq!(any(&quiet, "raid_disk_media_errors_grew"), 0, "{quiet:#?}");
}

fn psu(state: f64) -> Vec<Sample> {
    vec![
        sample(
            "caretaker_ipmi_sensor_state",
            &[("sensor", "PS2 Status"), ("type", "power_supply")],
            state,
        ),
        sample(
            "caretaker_ipmi_sensor_state",
            &[("sensor", "Inlet Temp"), ("type", "temperature")],
            0.0,
        ),
    ]
}

fn sel_psu_failure(at_ms: i64, record: &str) -> caretaker_shared::wire::Event {
    event(
        "ipmi_sel",
        at_ms,
        "Power Supply PS2 Status: Failure detected",
        &[
            ("sensor", "PS2 Status"),
            ("type", "power_supply"),
            ("class", "psu_failure"),
            ("record", record),
            ("event", "Failure detected"),
        ],
    )
}

#[test]
fn an_old_sel_entry_does_not_reopen_the_resolved_psu_case_and_a_new_one_does() {
    // The PSU sensor is critical from minute 10 to 30; the case recovers and
    // resolves. At minute 150 the SEL entry of the failure (minute 12) is
    // read again: nothing. At minute 200 a new failure is logged: reopened.
    let mut s = Stream::default()
        .host("srv1", 60, T0, 240, |i, _| {
            psu(if (10..30).contains(&i) { 2.0 } else { 0.0 })
        })
        .build();
    s[12].1.events.push(sel_psu_failure(T0 + 12 * MIN - 5_000, "17"));
    s[150].1.events.push(sel_psu_failure(T0 + 12 * MIN - 5_000, "17"));
    let ev = run(&s);
    assert_eq!(count(&ev, "ipmi_psu_critical", "opened"), 1, "{ev:#?}");
    let resolved = ev
        .iter()
        .find(|e| e.rule == "ipmi_psu_critical" && e.event == "resolved")
        .unwrap_or_else(|| panic!("{ev:#?}"));
    assert!(resolved.at_ms < T0 + 150 * MIN, "{resolved:?}");
    assert_eq!(opened_items(&ev).len(), 1, "{ev:#?}");
    assert_eq!(any(&ev, "ipmi_sel_psu_failure"), 0, "{ev:#?}");

    s[200].1.events.push(sel_psu_failure(T0 + 200 * MIN - 5_000, "18"));
    let ev = run(&s);
    let again: Vec<_> = opened_items(&ev).into_iter().skip(1).collect();
    assert_eq!(again.len(), 1, "{ev:#?}");
    assert_eq!(again[0].event, "reopened");
    assert_eq!(again[0].key, "acme/srv1/ipmi_psu_critical/PS2 Status");
    assert_eq!(again[0].rule, "ipmi_sel_psu_failure");
}

#[test]
fn sel_entries_without_a_live_sensor_open_their_own_items_and_noise_opens_none() {
    let mut s = Stream::default().host("srv1", 60, T0, 30, |_, _| psu(0.0)).build();
    s[5].1.events.push(event(
        "ipmi_sel",
        T0 + 5 * MIN,
        "Memory DIMM_B1: Uncorrectable ECC",
        &[
            ("sensor", "DIMM_B1"),
            ("type", "memory"),
            ("class", "uncorrectable_ecc"),
        ],
    ));
    s[6].1.events.push(event(
        "ipmi_sel",
        T0 + 6 * MIN,
        "Memory DIMM_A2: Correctable ECC logging limit reached",
        &[
            ("sensor", "DIMM_A2"),
            ("type", "memory"),
            ("class", "correctable_ecc_limit"),
        ],
    ));
    s[7].1.events.push(event(
        "ipmi_sel",
        T0 + 7 * MIN,
        "Physical Security Intrusion: General Chassis intrusion",
        &[
            ("sensor", "Intrusion"),
            ("type", "physical_security"),
            ("class", "intrusion"),
        ],
    ));
    // Entries of no class a rule reads: nothing.
    s[8].1.events.push(event(
        "ipmi_sel",
        T0 + 8 * MIN,
        "Memory DIMM_A2: Correctable ECC",
        &[("sensor", "DIMM_A2"), ("type", "memory"), ("class", "correctable_ecc")],
    ));
    s[9].1.events.push(event(
        "ipmi_sel",
        T0 + 9 * MIN,
        "OEM record",
        &[("sensor", "OEM"), ("type", "other"), ("class", "other")],
    ));
    // An event dated after its report (an agent clock ahead) is dated by the report.
    s[10].1.events.push(event(
        "ipmi_sel",
        T0 + 500 * MIN,
        "Fan FAN3: Lower Critical going low",
        &[("sensor", "FAN3"), ("type", "fan"), ("class", "fan_failure")],
    ));
    let ev = run(&s);
    let opened = opened_items(&ev);
    let got: Vec<(&str, &str, &str)> = opened
        .iter()
        .map(|e| (e.rule.as_str(), e.kind.as_str(), e.key.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            (
                "ipmi_sel_uncorrectable_ecc",
                "case",
                "acme/srv1/ipmi_sel_uncorrectable_ecc/DIMM_B1"
            ),
            (
                "ipmi_sel_correctable_ecc_limit",
                "case",
                "acme/srv1/ipmi_sel_correctable_ecc_limit/DIMM_A2"
            ),
            (
                "ipmi_sel_intrusion",
                "finding",
                "acme/srv1/ipmi_sel_intrusion/Intrusion"
            ),
            ("ipmi_sel_fan_failure", "case", "acme/srv1/ipmi_fan_critical/FAN3"),
        ],
        "{ev:#?}"
    );
    assert_eq!(opened[3].at_ms, T0 + 10 * MIN);
    // Events never clear: the items stay open while the host keeps reporting.
    assert!(!ev.iter().any(|e| e.event == "recovered"), "{ev:#?}");
}

#[test]
fn ipmi_sensor_rules() {
    let l = [("sensor", "CPU1 Temp"), ("type", "temperature")];
    state_rule("ipmi_temperature_critical", "caretaker_ipmi_sensor_state", &l, 2.0, 0.0);
    state_rule("ipmi_sensor_warning", "caretaker_ipmi_sensor_state", &l, 1.0, 0.0);
    let fan = [("sensor", "FAN1"), ("type", "fan")];
    state_rule("ipmi_fan_critical", "caretaker_ipmi_sensor_state", &fan, 2.0, 0.0);
    let volt = [("sensor", "12V"), ("type", "voltage")];
    state_rule("ipmi_voltage_critical", "caretaker_ipmi_sensor_state", &volt, 2.0, 0.0);
    state_rule(
        "ipmi_chassis_fault",
        "caretaker_ipmi_chassis_fault",
        &[("fault", "cooling_fault")],
        1.0,
        0.0,
    );
    state_rule("ipmi_sel_almost_full", "caretaker_ipmi_sel_used_ratio", &[], 0.95, 0.4);
    // A critical fan is not a temperature case.
    let ev = run(&state_stream("caretaker_ipmi_sensor_state", &fan, 2.0, 0.0, 60..80));
    assert_eq!(any(&ev, "ipmi_temperature_critical"), 0);
}

#[test]
fn replay_refuses_a_report_serve_would_refuse_at_admission() {
    let first = report("db1", 60, T0, Vec::new());
    let mut renamed = report("db2", 60, T0 + MIN, Vec::new());
    renamed.agent_id = first.agent_id.clone();
    let e = replay(
        &[(T0, first), (T0 + MIN, renamed)],
        rules::load(None).unwrap(),
        &Policy::default(),
    )
    .unwrap_err();
    assert!(
        matches!(&e, super::ReplayError::Refused { agent_id, seq: 2, reason }
            if agent_id == "agent-db1" && reason.contains("host")),
        "{e}"
    );
    assert!(e.is_bad_input());
}

#[test]
fn replay_input_is_decoded_and_validated_as_serve_does() {
    let valid = r#"{"version":1,"agent_id":"a1","seq":1,"collected_at_ms":1800000000000,"interval_secs":60,"host":"h","labels":{},"samples":[]}"#;
    let invalid = valid.replace(r#""interval_secs":60"#, r#""interval_secs":0"#);
    let malformed = valid.replace(r#""host":"h""#, r#""host":7"#);
    let timed = format!(r#"{{"at_ms": 1800000000500, "report": {valid}}}"#);
    let read = super::read_lines(format!("{valid}\n\n{timed}\n").as_bytes()).unwrap();
    assert_eq!(
        read.iter().map(|(at, _)| *at).collect::<Vec<_>>(),
        [1_800_000_000_000, 1_800_000_000_500]
    );
    for (input, line, field) in [
        (format!("{valid}\n{invalid}\n"), 2, "interval_secs"),
        (format!("\n{malformed}\n"), 2, "host"),
        (format!(r#"{{"at_ms": 1, "report": {invalid}}}"#), 1, "interval_secs"),
    ] {
        match super::read_lines(input.as_bytes()) {
            Err(super::ReplayError::BadLine { line: l, reason }) => {
                assert_eq!(l, line, "{reason}");
                assert!(reason.contains(field), "{reason}");
            }
            other => panic!("{other:?}"),
        }
    }
}

// --- checkpoints: detection survives restarts ----------------------------------

/// A mixed fleet for checkpoint tests: a filling filesystem (forecast and
/// threshold), a growing counter (increase), a pending then firing
/// threshold, over 30 hours.
fn mixed_stream() -> Vec<(i64, Report)> {
    Stream::default()
        .host("db1", 300, T0, 12 * 30, |i, _| {
            fs(0.6 - 0.08 * (i as f64) / 288.0 + 0.002 * noise(i))
        })
        .host("store1", 300, T0, 12 * 30, |i, _| {
            let l = [("disk", "sdb"), ("attribute", "reallocated_sectors")];
            vec![sample(
                "caretaker_disk_ata_attribute_raw",
                &l,
                if i < 200 { 8.0 } else { 10.0 },
            )]
        })
        .host("web1", 60, T0, 60 * 30, |i, _| {
            fs(if i % 240 < 120 { 0.5 } else { 0.03 })
        })
        .build()
}

fn signals_of(engine: &mut super::Engine, reports: &[(i64, Report)]) -> Vec<crate::cases::Signal> {
    let mut out = Vec::new();
    for (at, r) in reports {
        out.extend(engine.observe(r, *at));
        out.extend(engine.tick(*at));
    }
    out
}

// The engine's state saved as a blob and restored into a fresh engine gives
// the very signals (values bit-exact, pending `for`s, firing rules, gone
// series) the running engine gives for the rest of the stream.
#[test]
fn a_restored_engine_gives_the_signals_the_running_one_gives() {
    let set = rules::load(None).unwrap();
    let stream = mixed_stream();
    let (before, after) = stream.split_at(stream.len() * 2 / 5);
    let mut running = super::Engine::new(set.clone());
    signals_of(&mut running, before);
    let at = before.last().unwrap().0;
    let mut restored = super::Engine::new(set);
    let saved = running.checkpoint_changed();
    assert_eq!(saved.len(), 3);
    for (host, blob) in &saved {
        let r = restored.restore_host(host, blob, at).unwrap();
        assert_eq!((r.series_dropped, r.states_dropped), (0, 0));
    }
    assert_eq!(restored.footprint().series, running.footprint().series);
    assert_eq!(restored.footprint().points, running.footprint().points);
    let want = signals_of(&mut running, after);
    let got = signals_of(&mut restored, after);
    assert!(want.iter().any(|s| s.rule == "filesystem_fills_within_7d" && s.firing));
    assert_eq!(got.len(), want.len());
    assert!(got == want, "the restored engine's signals differ");
    // Unchanged since the restore: nothing to checkpoint until it changes.
    let mut fresh = super::Engine::new(rules::load(None).unwrap());
    fresh.restore_host("db1", &saved[0].1, at).unwrap();
    assert!(fresh.checkpoint_changed().is_empty());
}

// A checkpoint of another format version, or a damaged one, is refused
// (the host starts empty) and never half-applied.
#[test]
fn an_old_or_corrupt_checkpoint_is_refused_and_changes_nothing() {
    let set = rules::load(None).unwrap();
    let mut engine = super::Engine::new(set.clone());
    signals_of(&mut engine, &mixed_stream()[..200]);
    let good = engine.checkpoint_host("db1").unwrap();
    assert_eq!(good[0], super::CHECKPOINT_FORMAT);
    let mut other = good.clone();
    other[0] = super::CHECKPOINT_FORMAT + 1;
    let mut truncated = good.clone();
    truncated.truncate(good.len() / 2);
    let mut flipped = good.clone();
    let mid = flipped.len() / 2;
    flipped[mid] ^= 0xff;
    let mut fresh = super::Engine::new(set);
    assert!(matches!(
        fresh.restore_host("db1", &other, T0),
        Err(super::CheckpointError::Version(v)) if v == super::CHECKPOINT_FORMAT + 1
    ));
    assert!(matches!(
        fresh.restore_host("db1", &[], T0),
        Err(super::CheckpointError::Empty)
    ));
    for bad in [&truncated, &flipped, &vec![super::CHECKPOINT_FORMAT, 1, 2, 3]] {
        assert!(matches!(
            fresh.restore_host("db1", bad, T0),
            Err(super::CheckpointError::Corrupt(_))
        ));
    }
    assert_eq!(fresh.series_of("db1"), None);
    assert!(fresh.restore_host("db1", &good, T0).is_ok());
    assert!(fresh.series_of("db1").is_some());
}

// Rules changed between checkpoint and restore: a series is kept while a
// rule still reads its source (whatever rule); an evaluation state only for
// the very same rule; the rest is dropped and counted.
#[test]
fn a_restore_under_changed_rules_keeps_what_still_applies() {
    let set = rules::load(None).unwrap();
    let mut engine = super::Engine::new(set.clone());
    // 13 hours filling at 20 %/day, the last 10 minutes almost full.
    let stream = Stream::default()
        .host("web1", 60, T0, 13 * 60, |i, _| {
            fs(if i >= 13 * 60 - 10 {
                0.03
            } else {
                0.6 - 0.2 * (i as f64) / 1440.0
            })
        })
        .build();
    let last = signals_of(&mut engine, &stream);
    let firing = |s: &[crate::cases::Signal], rule: &str| s.iter().rev().find(|s| s.rule == rule).map(|s| s.firing);
    assert_eq!(firing(&last, "filesystem_fills_within_7d"), Some(true));
    assert_eq!(firing(&last, "filesystem_almost_full"), Some(true));
    let blob = engine.checkpoint_host("web1").unwrap();
    let at = stream.last().unwrap().0;
    let next = at + 60_000;
    // Unchanged rules: both still firing at the next report.
    let mut same = super::Engine::new(set.clone());
    same.restore_host("web1", &blob, at).unwrap();
    let s = same.observe(&report("web1", 60, next, fs(0.03)), next);
    assert_eq!(firing(&s, "filesystem_almost_full"), Some(true));
    assert_eq!(firing(&s, "filesystem_fills_within_7d"), Some(true));
    // filesystem_almost_full changed (its state goes); the forecast renamed,
    // so another rule reads the same source with the same window (the
    // series stays, the old rule's state goes).
    let mut changed = set.clone();
    for r in &mut changed.rules {
        if r.name == "filesystem_almost_full" {
            r.severity = crate::cases::Severity::Critical;
        }
        if r.name == "filesystem_fills_within_7d" {
            r.name = "filesystem_fills_soon".into();
        }
    }
    let mut restored = super::Engine::new(changed);
    let r = restored.restore_host("web1", &blob, at).unwrap();
    assert_eq!((r.series, r.series_dropped), (1, 0), "{r:?}");
    assert_eq!(r.states_dropped, 2, "{r:?}");
    let s = restored.observe(&report("web1", 60, next, fs(0.03)), next);
    // The kept series: the renamed forecast fires at once, no window to wait for.
    assert_eq!(firing(&s, "filesystem_fills_soon"), Some(true));
    assert_eq!(
        firing(&s, "filesystem_almost_full"),
        Some(false),
        "a changed rule starts its `for` afresh"
    );
    // No rule reads the source any more: the series is dropped.
    let mut fewer = set;
    fewer.rules.retain(|r| r.name != "filesystem_fills_within_7d");
    let r = super::Engine::new(fewer).restore_host("web1", &blob, at).unwrap();
    assert_eq!((r.series, r.series_dropped), (0, 1), "{r:?}");
}

// A restart in the middle of a forecast window started the window over: a
// filesystem forecast due 1 h after the restart fired ~12 h late (the
// window needs 12 h of points). With the state checkpointed into the store
// and restored by the fresh engine, it fires within one report interval of
// the time it fires without the restart; everything else is the same too.
#[test]
fn a_restart_mid_window_does_not_delay_the_filesystem_forecast() {
    let interval = 600;
    let s = Stream::default()
        .host("db1", interval, T0, 6 * 24 * 2, |i, _| {
            fs(0.6 - 0.08 * (i as f64) / 144.0 + 0.002 * noise(i))
        })
        .build();
    let opened = |ev: &[ReplayEvent]| {
        ev.iter()
            .find(|e| e.rule == "filesystem_fills_within_7d" && e.event == "opened")
            .map(|e| e.at_ms)
    };
    let plain = run(&s);
    let fired = opened(&plain).expect("fires without a restart");
    let restart = fired - HOUR;
    assert!(restart > T0 + 2 * HOUR, "the restart is mid-window");
    let options = super::ReplayOptions {
        restarts: vec![restart],
        ..super::ReplayOptions::default()
    };
    let restarted = super::replay_full(&s, rules::load(None).unwrap(), &options).unwrap();
    let again = opened(&restarted).expect("fires after the restart");
    assert!(
        (again - fired).abs() <= i64::from(interval) * 1000,
        "fired at {again}, {} min from {fired}",
        (again - fired) / MIN
    );
    assert_eq!(restarted, plain);
    // The control: the same restart with nothing restored (the stream from
    // the restart on, on an empty engine) fires far later.
    let after: Vec<(i64, Report)> = s.iter().filter(|(t, _)| *t >= restart).cloned().collect();
    let empty = opened(&run(&after));
    assert!(
        empty.is_none_or(|t| t > fired + 6 * HOUR),
        "without the checkpoint: {empty:?} vs {fired}"
    );
}

// The detection task restores what the store holds before the first
// report; a checkpoint it cannot read is skipped with a warning, not an
// error, and the other hosts are restored.
#[test]
fn the_live_task_skips_an_unreadable_checkpoint_and_restores_the_rest() {
    let set = rules::load(None).unwrap();
    let mut engine = super::Engine::new(set.clone());
    signals_of(&mut engine, &mixed_stream()[..200]);
    let good = engine.checkpoint_host("db1").unwrap();
    let checkpoint = |host: &str, body: Vec<u8>| crate::store::checkpoints::Checkpoint {
        host: host.into(),
        saved_at_ms: T0,
        rules_fingerprint: engine.rules_fingerprint(),
        body,
    };
    let saved = vec![
        checkpoint("web1", vec![super::CHECKPOINT_FORMAT + 7, 0]),
        checkpoint("db1", good),
    ];
    let mut fresh = super::Engine::new(set);
    super::live::restore_checkpoints(&mut fresh, saved);
    assert!(fresh.series_of("db1").is_some());
    assert_eq!(fresh.series_of("web1"), None);
}

// The collector's own downtime is no evidence about its hosts: restored
// after a 2-hour outage, a host is not unreachable until it misses its
// reports after the restore, and a pending `for` does not complete across
// the gap.
#[test]
fn the_collectors_downtime_neither_silences_hosts_nor_completes_a_pending_for() {
    let set = rules::load(None).unwrap();
    let mut engine = super::Engine::new(set.clone());
    for i in 0..4 {
        let at = T0 + i * MIN;
        engine.observe(&report("web1", 60, at, fs(0.03)), at);
    }
    let blob = engine.checkpoint_host("web1").unwrap();
    let back = T0 + 2 * HOUR;
    let mut restored = super::Engine::new(set);
    restored.restore_host("web1", &blob, back).unwrap();
    let unreachable = |s: Vec<crate::cases::Signal>| s.iter().find(|s| s.rule == "host_unreachable").map(|s| s.firing);
    assert_eq!(unreachable(restored.tick(back + MIN)), Some(false));
    assert_eq!(unreachable(restored.tick(back + 4 * MIN)), Some(true));
    // Its first report after the restore: the threshold, pending since
    // before the outage, starts its 5 minutes afresh.
    let mut restored = super::Engine::new(rules::load(None).unwrap());
    restored.restore_host("web1", &blob, back).unwrap();
    let at = back + MIN;
    let s = restored.observe(&report("web1", 60, at, fs(0.03)), at);
    let almost = s.iter().find(|s| s.rule == "filesystem_almost_full").unwrap();
    assert!(!almost.firing);
    let at = back + 6 * MIN;
    let s = restored.observe(&report("web1", 60, at, fs(0.03)), at);
    let almost = s.iter().find(|s| s.rule == "filesystem_almost_full").unwrap();
    assert!(almost.firing);
}

#[test]
fn metric_rules_put_their_summary_with_the_value_in_words_into_the_evidence() {
    let mut engine = super::Engine::new(rules::load(None).unwrap());
    let fs = |at, avail: f64, grown: f64| {
        report(
            "db01",
            60,
            at,
            vec![
                sample("caretaker_filesystem_avail_bytes", &[("mountpoint", "/srv")], avail),
                sample("caretaker_filesystem_size_bytes", &[("mountpoint", "/srv")], 1000.0),
                sample(
                    "caretaker_disk_ata_attribute_raw",
                    &[("disk", "wwn-1"), ("attribute", "reallocated_sectors")],
                    grown,
                ),
            ],
        )
    };
    engine.observe(&fs(T0, 21.0, 0.0), T0);
    let fired = engine.observe(&fs(T0 + 10 * MIN, 21.0, 8.0), T0 + 10 * MIN);
    let summary = |rule: &str| {
        fired
            .iter()
            .find(|s| s.rule == rule && s.firing)
            .map(|s| s.evidence["summary"].clone())
            .unwrap_or_else(|| panic!("{rule} did not fire: {fired:?}"))
    };
    // A ratio (`divide_by`) as a percentage; an increase as the increase.
    assert_eq!(
        summary("filesystem_almost_full"),
        "Filesystem /srv on db01 is almost full (2.1 % available)"
    );
    assert_eq!(
        summary("disk_reallocated_sectors_grew"),
        "Disk wwn-1 on db01 reallocated 8 more sectors in 24h"
    );
}

/// Regression: a disk case's title (its rule's summary) named the disk by
/// the disk rules' key, "Disk wwn-0x50014ee2b5a1c3d4 on db01 is failing";
/// it names it as a person finds it, from the report's disk info.
#[test]
fn a_disk_rules_summary_names_the_disk_by_device_model_and_serial() {
    let mut engine = super::Engine::new(rules::load(None).unwrap());
    let key = "wwn-0x50014ee2b5a1c3d4";
    let info = |labels: &[(&str, &str)]| {
        let mut l = vec![("disk", key)];
        l.extend_from_slice(labels);
        sample("caretaker_disk_info", &l, 1.0)
    };
    let verdict = sample(
        "caretaker_disk_health_verdict",
        &[("disk", key), ("verdict", "failing")],
        1.0,
    );
    let summary = |engine: &mut super::Engine, at: i64, host: &str, samples: Vec<Sample>| {
        engine
            .observe(&report(host, 60, at, samples), at)
            .into_iter()
            .find(|s| s.rule == "disk_failing" && s.firing)
            .map(|s| s.evidence["summary"].clone())
            .unwrap_or_else(|| panic!("disk_failing did not fire"))
    };
    let described = vec![
        verdict.clone(),
        info(&[
            ("device", "/dev/sdb"),
            ("model", "WDC WD2003FYYS-02W0B1"),
            ("serial", "WD-WMAY04123456"),
        ]),
    ];
    assert_eq!(
        summary(&mut engine, T0, "db01", described),
        "Disk /dev/sdb (WDC WD2003FYYS-02W0B1, serial WD-WMAY04123456) on db01 is failing"
    );
    // Without a model or serial, the device; without disk info, the key.
    let bare = vec![
        verdict.clone(),
        info(&[("device", "/dev/sdc"), ("model", ""), ("serial", " ")]),
    ];
    assert_eq!(
        summary(&mut engine, T0, "db02", bare),
        "Disk /dev/sdc on db02 is failing"
    );
    assert_eq!(
        summary(&mut engine, T0, "db03", vec![verdict]),
        format!("Disk {key} on db03 is failing")
    );
}
