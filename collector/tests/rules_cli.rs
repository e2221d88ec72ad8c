//! `caretaker-collector rules check DIR`: exit 0 and a count on a good
//! directory, exit 2 and every `FILE:LINE: rule NAME: reason` on a bad one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::ffi::OsStr;

const GOOD: &str = r#"[[rule]]
name = "site_db_down"
kind = "state"
metric = "caretaker_db_up"
equals = 0
component = "db"
outcome = "case"
severity = "critical"
summary = "{component} on {host} is down"
"#;

fn check(dir: &std::path::Path) -> (i32, String, String) {
    common::collector([OsStr::new("rules"), OsStr::new("check"), dir.as_os_str()])
}

#[test]
fn good_directory_exits_0_with_counts() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("site.toml"), GOOD).unwrap();
    let (code, stdout, stderr) = check(dir.path());
    assert_eq!(code, 0, "{stderr}");
    let builtin = caretaker_collector::rules::builtin().len();
    assert_eq!(
        stdout.trim(),
        format!(
            "{} rules ok ({builtin} built-in, 1 from {})",
            builtin + 1,
            dir.path().display()
        )
    );
}

#[test]
fn bad_directory_exits_2_with_every_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("site.toml");
    let bad = GOOD
        .replace("equals = 0", "equals = 0\nfor = \"5 minutes\"")
        .replace("{host}", "{hots}");
    std::fs::write(&file, bad).unwrap();
    let (code, _, stderr) = check(dir.path());
    assert_eq!(code, 2, "{stderr}");
    let f = file.display();
    assert!(
        stderr.contains(&format!(
            "{f}:6: rule site_db_down: field `for` does not belong to a state rule\n"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{f}:10: rule site_db_down: summary: unknown placeholder {{hots}} (known: {{host}}, {{component}}, {{value}})\n"
        )),
        "{stderr}"
    );
}

#[test]
fn missing_directory_exits_2() {
    let (code, _, stderr) = check(std::path::Path::new("/nonexistent/caretaker-rules"));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("/nonexistent/caretaker-rules: cannot read the rule directory"),
        "{stderr}"
    );
}

#[test]
fn list_prints_one_line_per_rule() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("site.toml"), GOOD).unwrap();
    let (code, stdout, _) = common::collector([OsStr::new("rules"), OsStr::new("list"), dir.path().as_os_str()]);
    assert_eq!(code, 0);
    assert_eq!(stdout.lines().count(), caretaker_collector::rules::builtin().len() + 1);
    assert!(
        stdout.contains("host_unreachable absence case critical host\n"),
        "{stdout}"
    );
    assert!(
        stdout.ends_with("site_db_down state case critical caretaker_db_up\n"),
        "{stdout}"
    );
}
