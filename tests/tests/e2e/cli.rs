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
fn agent_once_reads_the_controllers_and_leaves_the_services_state_alone() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let d = dir.path();
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/hardware/raid/storcli");
    let storcli = d.join("storcli64");
    std::fs::write(
        &storcli,
        format!(
            "#!/bin/sh\ncase \"$*\" in\n  *eall*) cat \"{}\";;\n  *) cat \"{}\";;\nesac\n",
            fixtures
                .join("derived-praid-ep420i-dgrd-252-1-failed-drives.json")
                .display(),
            fixtures
                .join("derived-praid-ep420i-dgrd-252-1-failed-show-all.json")
                .display()
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&storcli, std::fs::Permissions::from_mode(0o755)).unwrap_or_else(|e| panic!("{e}"));
    let state = d.join("state");
    std::fs::create_dir_all(&state).unwrap_or_else(|e| panic!("{e}"));
    let none = d.join("not-installed");
    let f = d.join("agent.toml");
    std::fs::write(
        &f,
        format!(
            "collector_url = \"https://127.0.0.1:1\"\nca_file = \"/dev/null\"\nstate_dir = \"{}\"\n[raid]\nstorcli_path = \"{}\"\nperccli_path = \"{n}\"\nstorcli2_path = \"{n}\"\nperccli2_path = \"{n}\"\nssacli_path = \"{n}\"\n",
            state.display(),
            storcli.display(),
            n = none.display()
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    for _ in 0..2 {
        let out = Command::new(bin("caretaker-agent"))
            .args(["once", "--print", "--config"])
            .arg(&f)
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let r = caretaker_shared::wire::decode(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
        let degraded = r
            .samples
            .iter()
            .find(|s| s.metric == "caretaker_raid_vd_degraded")
            .map(|s| s.value);
        assert_eq!(degraded, Some(1.0), "the controller was read");
        assert!(
            r.events.iter().any(|e| e.kind == "raid_disk_failed"),
            "each `once` tells of the failed disk: {:?}",
            r.events
        );
    }
    let left: Vec<_> = std::fs::read_dir(&state)
        .unwrap_or_else(|e| panic!("{e}"))
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(left.is_empty(), "the service's state dir was written: {left:?}");
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

#[test]
fn check_config_lists_every_unknown_key_not_only_the_first() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let agent = dir.path().join("agent.toml");
    std::fs::write(
        &agent,
        "collector_url = \"https://x:1\"\nca_file = \"/c\"\nintervall_secs = 5\n[spool]\nmax_report = 3\n[push]\nmin_backof_ms = 1\n",
    )
    .unwrap_or_default();
    let collector = dir.path().join("collector.toml");
    std::fs::write(
        &collector,
        "lissen = \"127.0.0.1:1\"\n[ingest]\nmax_body_byte = 1\n[store]\nsynchronous = \"sometimes\"\n[detect]\ntick_secs = 0\n",
    )
    .unwrap_or_default();
    for (binary, file, want) in [
        (
            "caretaker-agent",
            &agent,
            &[
                "agent.toml: 3 problem(s)",
                "intervall_secs: unknown field `intervall_secs`",
                "(line 3)",
                "spool.max_report: unknown field `max_report`",
                "(line 5)",
                "push.min_backof_ms: unknown field `min_backof_ms`",
                "(line 7)",
            ][..],
        ),
        (
            "caretaker-collector",
            &collector,
            &[
                "collector.toml: 4 problem(s)",
                "lissen: unknown field `lissen`",
                "(line 1)",
                "ingest.max_body_byte: unknown field `max_body_byte`",
                "(line 3)",
                "store.synchronous: unknown variant `sometimes`",
                "(line 5)",
                "detect.tick_secs: must be between 1 and 3600",
            ][..],
        ),
    ] {
        let out = Command::new(bin(binary))
            .args(["check-config", "--config"])
            .arg(file)
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out.status.code(), Some(2), "{binary}");
        let err = String::from_utf8_lossy(&out.stderr);
        for w in want {
            assert!(err.contains(w), "{binary}: {w}: {err}");
        }
    }
}
