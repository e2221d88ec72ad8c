//! `caretaker-collector contracts check FILE`: exit 0 and one line per
//! contract on a good file, exit 2 and every problem on a bad one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::ffi::OsStr;

const GOOD: &str = r#"[[customer]]
name = "acme"
sites = ["hq"]

[[contract]]
name = "acme-office"
customer = "acme"
covers = { labels = { site = "hq" } }
hours = "5x8"
time_zone = "Europe/Berlin"
holidays = ["2026-12-25"]
response = { critical = "1h", major = "4h" }
resolution = { critical = "8h", major = "2d" }
pausing_holds = ["awaiting_customer"]
escalation = [
  { at = "50%", of = "resolution", action = "notify", to = "team-lead" },
  { at = "100%", of = "resolution", action = "escalate", to = "L2" },
]

[[engineer]]
name = "ana"
sites = ["hq"]
level = "L1"

[[rotation]]
site = "hq"
members = ["ana"]
shift = "1w"
start = "2026-01-05T08:00:00+01:00"
"#;

fn check(file: &std::path::Path) -> (i32, String, String) {
    common::collector([OsStr::new("contracts"), OsStr::new("check"), file.as_os_str()])
}

#[test]
fn good_file_exits_0_with_a_line_per_contract() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("contracts.toml");
    std::fs::write(&file, GOOD).unwrap();
    let (code, stdout, stderr) = check(&file);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stdout,
        format!(
            "contract \"acme-office\" (customer \"acme\"): covers site=hq; mon-fri 08:00-17:00 Europe/Berlin; \
             1 holiday(s); response critical 1h, major 4h; resolution critical 8h, major 2d; \
             pausing [awaiting_customer]; 2 escalation step(s)\n\
             {}: ok (1 customer(s), 1 contract(s), 1 engineer(s), 1 rotation(s), 0 user(s))\n",
            file.display()
        )
    );
}

#[test]
fn bad_file_exits_2_with_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("contracts.toml");
    let bad = GOOD
        .replace("customer = \"acme\"", "customer = \"acme-corp\"")
        .replace("Europe/Berlin", "Europe/Atlantis")
        .replace("members = [\"ana\"]", "members = []");
    std::fs::write(&file, bad).unwrap();
    let (code, stdout, stderr) = check(&file);
    assert_eq!(code, 2, "{stderr}");
    assert_eq!(stdout, "");
    let f = file.display();
    for line in [
        format!("{f}: contract \"acme-office\": customer: \"acme-corp\" is not a [[customer]] in this file\n"),
        format!(
            "{f}: contract \"acme-office\": time_zone: unknown time zone \"Europe/Atlantis\" (use an IANA name like Europe/Berlin)\n"
        ),
        format!("{f}: rotation 1 (site \"hq\"): members: must name at least one engineer\n"),
    ] {
        assert!(stderr.contains(&line), "{stderr}");
    }
}

#[test]
fn syntax_error_names_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("contracts.toml");
    std::fs::write(&file, GOOD.replace("hours = \"5x8\"", "hours = \"5x8\"\nour = 1")).unwrap();
    let (code, _, stderr) = check(&file);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.starts_with(&format!("{}:10: unknown field `our`", file.display())),
        "{stderr}"
    );
}

#[test]
fn missing_file_exits_2() {
    let (code, _, stderr) = check(std::path::Path::new("/nonexistent/contracts.toml"));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("/nonexistent/contracts.toml: cannot read: "),
        "{stderr}"
    );
}
