//! Live detection end to end: a real collector with operator overrides of
//! the built-in filesystem rules (short windows, so the test takes seconds),
//! a real agent, and a small tmpfs filled step by step. Also hot reload of
//! `rules_dir`: a broken file keeps the old rules and is counted.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::util::{Agent, Collector, eventually, wait_for_host};

/// Unmounts the tmpfs when the test ends, however it ends.
struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Mounts an 8 MiB tmpfs on `dir`; `None` (test skipped) when that is not
/// possible here, unless CARETAKER_TEST_MOUNT=1 demands it.
fn mount_tmpfs(dir: &Path) -> Option<Mounted> {
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{e}"));
    let out = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=8m", "tmpfs"])
        .arg(dir)
        .output();
    match out {
        Ok(o) if o.status.success() => Some(Mounted(dir.to_path_buf())),
        other => {
            let why = match other {
                Ok(o) => String::from_utf8_lossy(&o.stderr).into_owned(),
                Err(e) => e.to_string(),
            };
            if std::env::var("CARETAKER_TEST_MOUNT").as_deref() == Ok("1") {
                panic!("CARETAKER_TEST_MOUNT=1 but mounting a tmpfs failed (run as root): {why}");
            }
            eprintln!("note: skipping the filesystem fill test, cannot mount a tmpfs: {why}");
            None
        }
    }
}

const OVERRIDES: &str = r#"
[[rule]]
name = "filesystem_fills_within_7d"
kind = "forecast"
metric = "caretaker_filesystem_avail_bytes"
divide_by = "caretaker_filesystem_size_bytes"
window = "20s"
reaches = 0
within = "7d"
component = "mountpoint"
outcome = "finding"
severity = "warning"
summary = "Filesystem {component} on {host} will fill within 7 days at the current rate"

[[rule]]
name = "filesystem_almost_full"
kind = "threshold"
metric = "caretaker_filesystem_avail_bytes"
divide_by = "caretaker_filesystem_size_bytes"
op = "<"
value = 0.3
clear = 0.4
for = "2s"
component = "mountpoint"
outcome = "case"
severity = "major"
summary = "Filesystem {component} on {host} is almost full ({value} available)"
"#;

fn config(rules: &Path) -> String {
    format!("[detect]\nrules_dir = \"{}\"\ntick_secs = 1\n", rules.display())
}

/// Items of `kind` (`findings` or `cases`) for `rule` on `mountpoint`.
async fn items(c: &Collector, kind: &str, rule: &str, mountpoint: &str) -> Vec<Value> {
    let v = c.api(&format!("/api/v1/{kind}?status=all&host=e2e-host")).await;
    v[kind]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|i| i["key"]["check"] == rule && i["key"]["component"] == mountpoint)
        .collect()
}

#[tokio::test]
async fn filesystem_fill_opens_a_finding_then_a_case() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mnt = dir.path().join("fill");
    let Some(_mounted) = mount_tmpfs(&mnt) else {
        return;
    };
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(&rules).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(rules.join("overrides.toml"), OVERRIDES).unwrap_or_else(|e| panic!("{e}"));
    let collector = Collector::start_with_config(dir.path(), &config(&rules)).await;
    let agent = Agent::start(dir.path(), &collector, 1, "");
    wait_for_host(&collector, &agent).await;
    let mp = mnt.display().to_string();

    // Fill steadily: the forecast sees the free space heading for zero.
    let chunk = vec![0u8; 512 * 1024];
    let mut n = 0;
    let finding = eventually("a 'will fill' finding", Duration::from_secs(60), || {
        let (collector, mp, chunk) = (&collector, &mp, &chunk);
        n += 1;
        let file = mnt.join(format!("f{n}"));
        // Stop writing at ~5 MiB: below 30 % free is the next step.
        if n <= 10 {
            let _ = std::fs::write(&file, chunk);
        }
        async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let f = items(collector, "findings", "filesystem_fills_within_7d", mp).await;
            (!f.is_empty()).then_some(f)
        }
    })
    .await;
    assert_eq!(finding.len(), 1, "{finding:?}");

    // Past 70 % used: the threshold holds for its `for` and opens a case.
    // The finding may come after only a few chunks: write enough to pass 70 %
    // used whatever was written before (writes beyond 8 MiB just fail).
    for i in 0..12 {
        let _ = std::fs::write(mnt.join(format!("g{i}")), &chunk);
    }
    let case = eventually("an 'almost full' case", Duration::from_secs(60), || {
        let (collector, mp) = (&collector, &mp);
        async move {
            let c = items(collector, "cases", "filesystem_almost_full", mp).await;
            (!c.is_empty()).then_some(c)
        }
    })
    .await;
    assert_eq!(case.len(), 1, "{case:?}");
    // A few more reports change nothing: still exactly one of each.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(items(&collector, "cases", "filesystem_almost_full", &mp).await.len(), 1);
    assert_eq!(
        items(&collector, "findings", "filesystem_fills_within_7d", &mp)
            .await
            .len(),
        1
    );
    let id = case[0]["id"].as_i64().unwrap_or(0);
    let one = collector.api(&format!("/api/v1/cases/{id}")).await;
    assert!(one["log"].as_array().is_some_and(|l| !l.is_empty()), "{one}");
    assert!(
        collector
            .metric_value("caretaker_item_transitions_total{event=\"opened\"}")
            .await
            .is_some_and(|v| v >= 2.0)
    );
}

#[tokio::test]
async fn broken_rule_file_keeps_the_old_rules_and_is_counted() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let rules = dir.path().join("rules");
    std::fs::create_dir_all(&rules).unwrap_or_else(|e| panic!("{e}"));
    // Fires on every filesystem: a finding shows the rule is active.
    let always = |name: &str| {
        format!(
            "[[rule]]\nname = \"{name}\"\nkind = \"threshold\"\nmetric = \"caretaker_filesystem_size_bytes\"\nop = \">\"\nvalue = 0\ncomponent = \"mountpoint\"\noutcome = \"finding\"\nseverity = \"info\"\nsummary = \"{{component}} exists\"\n"
        )
    };
    std::fs::write(rules.join("a.toml"), always("e2e_first")).unwrap_or_else(|e| panic!("{e}"));
    let collector = Collector::start_with_config(dir.path(), &config(&rules)).await;
    let agent = Agent::start(dir.path(), &collector, 1, "");
    wait_for_host(&collector, &agent).await;
    let has = |rule: &'static str| {
        let c = &collector;
        async move {
            let v = c.api("/api/v1/findings?host=e2e-host").await;
            v["findings"]
                .as_array()
                .is_some_and(|a| a.iter().any(|i| i["rule"] == rule))
                .then_some(())
        }
    };
    eventually("the first rule fires", Duration::from_secs(30), || has("e2e_first")).await;

    std::fs::write(
        rules.join("b.toml"),
        "[[rule]]\nname = \"broken\"\nkind = \"nonsense\"\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    eventually("the error is counted", Duration::from_secs(30), || {
        let c = &collector;
        async move {
            c.metric_value("caretaker_rule_file_errors_total")
                .await
                .filter(|v| *v >= 1.0)
        }
    })
    .await;
    // Still serving with the old rules.
    has("e2e_first").await.unwrap_or_else(|| panic!("the old rule is gone"));

    std::fs::write(rules.join("b.toml"), always("e2e_second")).unwrap_or_else(|e| panic!("{e}"));
    eventually("the fixed file is picked up", Duration::from_secs(30), || {
        has("e2e_second")
    })
    .await;
}
