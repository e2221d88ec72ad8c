//! Live detection end to end: a real collector with operator overrides of
//! the built-in filesystem rules (short windows, so the test takes seconds),
//! a real agent, and a small tmpfs filled step by step. Also hot reload of
//! `rules_dir`: a broken file keeps the old rules and is counted.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::util::{self, Agent, Collector, Mounted, eventually, wait_for_host};

/// An 8 MiB tmpfs on `dir` (see [`util::mount_tmpfs`]).
fn mount_tmpfs(dir: &Path) -> Option<Mounted> {
    util::mount_tmpfs(dir, "8m")
}

/// The built-in filesystem rules with short windows.
fn overrides() -> String {
    format!("{}{}", util::fill_forecast_rule("20s"), util::FILL_CASE_RULE)
}

fn config(rules: &Path) -> String {
    format!("[detect]\nrules_dir = \"{}\"\ntick_secs = 1\n", rules.display())
}

/// A small tmpfs watched by a real agent reporting every second to a
/// collector running the overrides; kept up while this lives.
struct FsRig {
    collector: Collector,
    _agent: Agent,
    /// The tmpfs, and its mount point as the agent names it.
    mnt: PathBuf,
    mp: String,
    /// Last: unmounted once the agent and collector are gone.
    _mounted: Mounted,
}

/// Mounts a tmpfs at `dir/name` and starts the collector and the agent;
/// `None` when no tmpfs can be mounted here (see [`mount_tmpfs`]).
async fn fs_rig(dir: &Path, name: &str) -> Option<FsRig> {
    let mnt = dir.join(name);
    let mounted = mount_tmpfs(&mnt)?;
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(rules.join("overrides.toml"), overrides()).unwrap_or_else(|e| panic!("{e}"));
    let collector = Collector::start_with_config(dir, &config(&rules)).await;
    let agent = Agent::start(dir, &collector, 1, "");
    wait_for_host(&collector, &agent).await;
    let mp = mnt.display().to_string();
    Some(FsRig {
        collector,
        _agent: agent,
        mnt,
        mp,
        _mounted: mounted,
    })
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
    let Some(rig) = fs_rig(dir.path(), "fill").await else {
        return;
    };
    let (collector, mnt, mp) = (&rig.collector, &rig.mnt, &rig.mp);

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
    assert_eq!(items(collector, "cases", "filesystem_almost_full", mp).await.len(), 1);
    assert_eq!(
        items(collector, "findings", "filesystem_fills_within_7d", mp)
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

/// One sawtooth cycle on `mnt`: three 512 KiB files written a second apart,
/// then removed, as a staging volume is filled and emptied; `keep` more
/// files stay for good (the low rises by that much).
async fn sawtooth_cycle(mnt: &Path, cycle: usize, keep: usize) {
    let chunk = vec![0u8; 512 * 1024];
    for i in 0..keep {
        let _ = std::fs::write(mnt.join(format!("kept-{cycle}-{i}")), &chunk);
    }
    for i in 0..3 {
        let _ = std::fs::write(mnt.join(format!("tmp-{i}")), &chunk);
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    for i in 0..3 {
        let _ = std::fs::remove_file(mnt.join(format!("tmp-{i}")));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
}

#[tokio::test]
async fn a_sawtooth_volume_is_not_forecast_as_filling_but_a_rising_low_is() {
    // The nightly staging volume, in seconds: filled and emptied every 5 s,
    // under the 20 s forecast window of the overrides (4 cycles per window).
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let Some(rig) = fs_rig(dir.path(), "stage").await else {
        return;
    };
    let (collector, mnt, mp) = (&rig.collector, &rig.mnt, &rig.mp);
    // Two full windows of a steady sawtooth: no forecast.
    for cycle in 0..9 {
        sawtooth_cycle(mnt, cycle, 0).await;
    }
    let quiet = items(collector, "findings", "filesystem_fills_within_7d", mp).await;
    assert!(quiet.is_empty(), "a sawtooth was forecast as filling: {quiet:?}");
    // The same sawtooth with a low that rises every cycle: a forecast.
    let mut cycle = 100;
    let finding = eventually("a 'will fill' finding", Duration::from_secs(60), || {
        cycle += 1;
        let (collector, mp, mnt) = (&collector, &mp, &mnt);
        async move {
            sawtooth_cycle(mnt, cycle, 1).await;
            let f = items(collector, "findings", "filesystem_fills_within_7d", mp).await;
            (!f.is_empty()).then_some(f)
        }
    })
    .await;
    assert_eq!(finding.len(), 1, "{finding:?}");
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

/// One report of host `ghost` with its databases' `up` values, optionally
/// carrying an inventory.
fn ghost_report(agent_id: &str, seq: u64, dbs: &[(&str, f64)], inventory: bool) -> Vec<u8> {
    crate::util::db_up_report(agent_id, seq, "ghost", 15, dbs, inventory)
}

fn keys_of(v: &Value, list: &str) -> Vec<String> {
    v[list]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|i| {
                    format!(
                        "{}/{}",
                        i["key"]["asset"].as_str().unwrap_or(""),
                        i["key"]["component"].as_str().unwrap_or("")
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unmapped_until_inventory_and_held_by_a_maintenance_window() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let c = Collector::start_with_config(dir.path(), "[detect]\ntick_secs = 1\n").await;
    let ghost = caretaker_tests::enroll(&c.client, &c.url(), &c.enrollment_token, "ghost")
        .await
        .unwrap_or_else(|e| panic!("enroll: {e}"));
    let post = |seq: u64, dbs: &'static [(&'static str, f64)], inventory: bool| {
        let body = ghost_report(&ghost.agent_id, seq, dbs, inventory);
        let (client, url, cred) = (c.client.clone(), c.url(), ghost.credential.clone());
        async move {
            let (status, v) = caretaker_tests::post_report(&client, &url, &cred, body)
                .await
                .unwrap_or_else(|e| panic!("post: {e}"));
            assert_eq!(status, 200, "{v}");
        }
    };

    // No inventory yet: the fault waits on the unmapped list, no case.
    post(1, &[("main", 0.0)], false).await;
    eventually("the fault on the unmapped list", Duration::from_secs(20), || async {
        let v = c.api("/api/v1/unmapped").await;
        (keys_of(&v, "unmapped") == ["ghost/main"]).then_some(())
    })
    .await;
    assert_eq!(keys_of(&c.api("/api/v1/cases").await, "cases"), Vec::<String>::new());

    // The inventory arrives: the held fault becomes its case.
    post(2, &[("main", 0.0)], true).await;
    eventually("the case after the inventory", Duration::from_secs(20), || async {
        let v = c.api("/api/v1/cases").await;
        (keys_of(&v, "cases") == ["ghost/main"]).then_some(())
    })
    .await;
    assert!(keys_of(&c.api("/api/v1/unmapped").await, "unmapped").is_empty());

    // A window on ghost holds a second database's fault until it is ended.
    let now = caretaker_shared::now_ms();
    let resp = c
        .client
        .post(format!("{}/api/v1/maintenance", c.url()))
        .bearer_auth(&c.api_token)
        .json(
            &serde_json::json!({"customer": "acme", "host": "ghost", "starts_at": now - 1000,
                                  "ends_at": now + 3_600_000, "reason": "PostgreSQL upgrade"}),
        )
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST maintenance: {e}"));
    assert_eq!(resp.status().as_u16(), 201);
    let window: Value = resp.json().await.unwrap_or(Value::Null);
    let wid = window["id"].as_i64().unwrap_or(0);
    post(3, &[("main", 0.0), ("reports", 0.0)], false).await;
    eventually(
        "the second fault held by the window",
        Duration::from_secs(20),
        || async {
            let v = c.api(&format!("/api/v1/maintenance/{wid}")).await;
            (keys_of(&v, "held") == ["ghost/reports"]).then_some(())
        },
    )
    .await;
    assert_eq!(keys_of(&c.api("/api/v1/cases").await, "cases"), ["ghost/main"]);
    eventually(
        "caretaker_signals_held to count it",
        Duration::from_secs(20),
        || async {
            let held = c.metric_value("caretaker_signals_held{reason=\"maintenance\"}").await;
            (held == Some(1.0)).then_some(())
        },
    )
    .await;
    let resp = c
        .client
        .delete(format!("{}/api/v1/maintenance/{wid}", c.url()))
        .bearer_auth(&c.api_token)
        .send()
        .await
        .unwrap_or_else(|e| panic!("DELETE maintenance: {e}"));
    assert_eq!(resp.status().as_u16(), 200);
    eventually(
        "the held fault's case once the window ended",
        Duration::from_secs(20),
        || async {
            let v = c.api("/api/v1/cases").await;
            let mut keys = keys_of(&v, "cases");
            keys.sort();
            (keys == ["ghost/main", "ghost/reports"]).then_some(())
        },
    )
    .await;
}
