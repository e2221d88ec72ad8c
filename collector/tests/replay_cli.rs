//! `caretaker-collector replay`: JSON lines of item changes on a good input,
//! exit 2 naming the line on a bad one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

fn line(at: i64, up: f64) -> String {
    format!(
        r#"{{"version":1,"agent_id":"a1","seq":1,"collected_at_ms":{at},"interval_secs":60,"host":"db1","labels":{{"customer":"acme"}},"samples":[{{"metric":"caretaker_db_up","labels":{{"db":"main","kind":"postgresql"}},"value":{up}}}]}}"#
    )
}

fn replay(input: &str) -> (i32, String, String) {
    replay_with(input, None)
}

/// Replays `input`, with a `--maintenance` file holding `maintenance` if given.
fn replay_with(input: &str, maintenance: Option<&str>) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.jsonl");
    std::fs::write(&path, input).unwrap();
    let mut args = vec!["replay".into(), "--input".into(), path.into_os_string()];
    if let Some(m) = maintenance {
        let mpath = dir.path().join("maintenance.toml");
        std::fs::write(&mpath, m).unwrap();
        args.extend(["--maintenance".into(), mpath.into_os_string()]);
    }
    common::collector(args)
}

#[test]
fn prints_item_changes_and_is_deterministic() {
    let t0 = 1_800_000_000_000_i64;
    let mut input = String::new();
    for i in 0..60 {
        let down = (10..30).contains(&i);
        let at = t0 + i * 60_000;
        // Both input forms: a bare report and a timed one.
        if i % 2 == 0 {
            input.push_str(&line(at, if down { 0.0 } else { 1.0 }));
        } else {
            input.push_str(&format!(
                r#"{{"at_ms":{at},"report":{}}}"#,
                line(at, if down { 0.0 } else { 1.0 })
            ));
        }
        input.push('\n');
    }
    let (code, stdout, stderr) = replay(&input);
    assert_eq!(code, 0, "{stderr}");
    let events: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(events.len(), 2, "{stdout}");
    assert_eq!(events[0]["event"], "opened");
    assert_eq!(events[0]["key"], "acme/db1/database_down/main");
    assert_eq!(events[0]["kind"], "case");
    assert_eq!(events[0]["severity"], "critical");
    assert_eq!(events[0]["at_ms"], t0 + 10 * 60_000);
    assert_eq!(events[1]["event"], "recovered");
    assert_eq!(replay(&input).1, stdout);
}

#[test]
fn bad_line_exits_2_naming_it() {
    let input = format!("{}\nnot json\n", line(1_800_000_000_000, 1.0));
    let (code, stdout, stderr) = replay(&input);
    assert_eq!(code, 2, "{stderr}");
    assert!(stdout.is_empty());
    assert!(stderr.contains("line 2"), "{stderr}");
}

fn outage_input(t0: i64) -> String {
    (0..60)
        .map(|i| line(t0 + i * 60_000, if (10..30).contains(&i) { 0.0 } else { 1.0 }))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_maintenance_file_holds_the_fault() {
    // 1_800_000_000_000 ms is 2027-01-15T08:00:00Z; the outage is minutes 10 to 30.
    let t0 = 1_800_000_000_000_i64;
    let window = "[[window]]\ncustomer = \"acme\"\nhost = \"db1\"\n\
                  starts_at = \"2027-01-15T08:05:00Z\"\nends_at = \"2027-01-15T09:00:00Z\"\n\
                  reason = \"database upgrade\"\n";
    let (code, stdout, stderr) = replay_with(&outage_input(t0), Some(window));
    assert_eq!(code, 0, "{stderr}");
    let events: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(events.len(), 1, "{stdout}");
    assert_eq!(events[0]["event"], "held");
    assert_eq!(events[0]["status"], "held:maintenance");
}

#[test]
fn a_bad_maintenance_file_exits_2_naming_file_and_line() {
    let (code, stdout, stderr) = replay_with(
        &outage_input(1_800_000_000_000),
        Some("[[window]]\ncustomer = \"acme\"\nstart = 3\n"),
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(stdout.is_empty());
    assert!(stderr.contains("maintenance.toml:3"), "{stderr}");
}

/// Replays `input` with extra flags.
fn replay_flags(input: &str, flags: &[&str]) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.jsonl");
    std::fs::write(&path, input).unwrap();
    let mut args: Vec<std::ffi::OsString> = vec!["replay".into(), "--input".into(), path.into_os_string()];
    args.extend(flags.iter().map(|f| f.into()));
    common::collector(args)
}

/// Two outages of `db1`, 30 minutes apart.
fn two_outages(t0: i64) -> String {
    (0..150)
        .map(|i| {
            let down = (10..20).contains(&i) || (100..110).contains(&i);
            line(t0 + i * 60_000, if down { 0.0 } else { 1.0 })
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_reopen_window_flag_decides_between_reopening_and_a_linked_recurrence() {
    let t0 = 1_800_000_000_000_i64;
    let input = two_outages(t0);
    let events = |flags: &[&str]| -> Vec<serde_json::Value> {
        let (code, stdout, stderr) = replay_flags(&input, flags);
        assert_eq!(code, 0, "{stderr}");
        stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    };
    // Default: a recurrence within a day reopens the case.
    let ev = events(&["--quiet-period", "10m"]);
    let names: Vec<&str> = ev.iter().filter_map(|e| e["event"].as_str()).collect();
    assert_eq!(
        names,
        ["opened", "recovered", "resolved", "reopened", "recovered", "resolved"],
        "{ev:#?}"
    );
    // Reopen window 0: always a new case, linked to the old one.
    let ev = events(&["--quiet-period", "10m", "--reopen-window", "0s"]);
    let names: Vec<&str> = ev.iter().filter_map(|e| e["event"].as_str()).collect();
    assert_eq!(
        names,
        ["opened", "recovered", "resolved", "recurrence", "recovered", "resolved"],
        "{ev:#?}"
    );
    let recurrence = &ev[3];
    assert_eq!(recurrence["detail"]["recurrence_of"], ev[0]["id"], "{recurrence}");
    // A bad duration exits 2 naming the flag.
    let (code, _, stderr) = replay_flags(&input, &["--reopen-window", "soon"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--reopen-window"), "{stderr}");
}

#[test]
fn prints_the_recommendation_for_a_failing_disk_byte_for_byte_the_same_twice() {
    // A real capture of a failing disk, as an agent's report carries it.
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/smartctl/ata/hitachi-hds721050dle630-usbjmicron-reallocated-failing.json");
    let disk = caretaker_shared::smartctl::parse(&std::fs::read_to_string(path).unwrap()).unwrap();
    let t0 = 1_800_000_000_000_i64;
    let input: Vec<String> = (0..20)
        .map(|i| {
            let at = t0 + i * 15_000;
            let samples: Vec<serde_json::Value> = ["healthy", "warning", "failing", "unknown"]
                .iter()
                .map(|v| {
                    serde_json::json!({"metric": "caretaker_disk_health_verdict",
                        "labels": {"disk": disk.key, "verdict": v},
                        "value": if disk.verdict.level.as_str() == *v { 1.0 } else { 0.0 }})
                })
                .collect();
            serde_json::json!({"version": 1, "agent_id": "a1", "seq": i + 1, "collected_at_ms": at,
                "interval_secs": 15, "host": "db1", "labels": {"customer": "acme"}, "samples": samples,
                "disks": {"scanned_at_ms": t0, "disks": [disk]}})
            .to_string()
        })
        .collect();
    let input = input.join("\n");
    let (code, stdout, stderr) = replay_flags(&input, &[]);
    assert_eq!(code, 0, "{stderr}");
    let ev: Vec<serde_json::Value> = stdout.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let rec = ev
        .iter()
        .find(|e| e["event"] == "recommended")
        .unwrap_or_else(|| panic!("{stdout}"));
    assert_eq!(rec["kind"], "recommendation");
    assert_eq!(rec["severity"], "replace_now");
    assert_eq!(rec["detail"]["part"]["serial"], disk.serial.as_str());
    assert!(
        ev.iter().any(|e| e["event"] == "opened" && e["rule"] == "disk_failing"),
        "{stdout}"
    );
    // Deterministic: the same bytes again.
    assert_eq!(replay_flags(&input, &[]).1, stdout);
}
