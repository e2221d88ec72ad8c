//! `caretaker-collector replay`: JSON lines of item changes on a good input,
//! exit 2 naming the line on a bad one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

fn line(at: i64, up: f64) -> String {
    format!(
        r#"{{"version":1,"agent_id":"a1","seq":1,"collected_at_ms":{at},"interval_secs":60,"host":"db1","labels":{{"customer":"acme"}},"samples":[{{"metric":"caretaker_db_up","labels":{{"db":"main"}},"value":{up}}}]}}"#
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
