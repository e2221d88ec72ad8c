//! The command lines: bad input gets a clear error naming what was wrong and
//! exit code 2; `once --print` needs no collector.

use std::process::Command;

use crate::util::bin;

#[test]
fn agent_check_config_names_file_line_and_key() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let f = dir.path().join("agent.toml");
    std::fs::write(
        &f,
        "collector_url = \"https://x:1\"\nca_file = \"/c\"\nintervall_secs = 5\n",
    )
    .unwrap_or_default();
    let out = Command::new(bin("caretaker-agent"))
        .args(["check-config", "--config"])
        .arg(&f)
        .output();
    let out = out.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("agent.toml") && err.contains("line 3") && err.contains("intervall_secs"),
        "{err}"
    );

    std::fs::write(&f, "collector_url = \"https://x:1\"\nca_file = \"/c\"\n").unwrap_or_default();
    let out = Command::new(bin("caretaker-agent"))
        .args(["check-config", "--config"])
        .arg(&f)
        .output();
    assert!(out.is_ok_and(|o| o.status.success()));
}

#[test]
fn agent_once_prints_a_valid_report_without_a_collector() {
    let out = Command::new(bin("caretaker-agent"))
        .args(["once", "--print"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r = caretaker_shared::wire::decode(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.seq, 0);
    assert!(r.samples.iter().any(|s| s.metric == "caretaker_memory_total_bytes"));
    assert!(r.inventory.is_some());
}

#[test]
fn agent_without_credential_or_token_says_how_to_enroll() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let f = dir.path().join("agent.toml");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, "").unwrap_or_default();
    std::fs::write(
        &f,
        format!(
            "collector_url = \"https://127.0.0.1:1\"\nca_file = \"{}\"\nstate_dir = \"{}\"\n",
            ca.display(),
            dir.path().display()
        ),
    )
    .unwrap_or_default();
    let out = Command::new(bin("caretaker-agent"))
        .args(["run", "--config"])
        .arg(&f)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("ca.pem") && err.contains("no usable PEM certificate"),
        "an empty CA file is named: {err}"
    );
    // With a real CA but no credential and no token: says how to enroll.
    let init = Command::new(bin("caretaker-collector"))
        .args(["init", "--data-dir"])
        .arg(dir.path().join("c"))
        .output();
    assert!(init.is_ok_and(|o| o.status.success()));
    std::fs::copy(dir.path().join("c/ca.pem"), &ca).unwrap_or_default();
    let out = Command::new(bin("caretaker-agent"))
        .args(["run", "--config"])
        .arg(&f)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("not enrolled") && err.contains("caretaker-agent enroll"),
        "{err}"
    );
}

#[test]
fn collector_refuses_an_uninitialized_dir_and_a_second_init() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let data = dir.path().join("data");
    let out = Command::new(bin("caretaker-collector"))
        .args(["serve", "--data-dir"])
        .arg(&data)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("run `caretaker-collector init"), "{err}");
    let init = || {
        Command::new(bin("caretaker-collector"))
            .args(["init", "--data-dir"])
            .arg(&data)
            .output()
    };
    assert!(init().is_ok_and(|o| o.status.success()));
    let again = init().unwrap_or_else(|e| panic!("{e}"));
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already initialized"));

    let f = dir.path().join("collector.toml");
    std::fs::write(&f, "[hosts]\ndown_after_intervals = 0\nbogus = 1\n").unwrap_or_default();
    let out = Command::new(bin("caretaker-collector"))
        .args(["check-config", "--config"])
        .arg(&f)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 3") && err.contains("bogus"), "{err}");
}
