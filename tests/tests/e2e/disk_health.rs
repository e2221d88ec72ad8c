//! Disk health end to end: an agent whose `smartctl` is a stand-in script
//! printing a real fixture that changes over time (a drive whose reallocated
//! sector count grows), and the real `smartctl` on this machine.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::util::{Agent, Collector, bin, eventually, once_print, wait_for_host};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/smartctl")
}

/// A `smartctl` that answers `--scan-open` with one SATA disk and any read
/// with `current.json` beside it (exit status in `exit`).
pub fn stand_in(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{e}"));
    let script = dir.join("smartctl");
    std::fs::write(
        dir.join("scan.json"),
        r#"{"json_format_version":[1,0],"smartctl":{"version":[7,3],"exit_status":0},
           "devices":[{"name":"/dev/sda","info_name":"/dev/sda [SAT]","type":"sat","protocol":"ATA"}]}"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        &script,
        "#!/bin/sh\nD=\"$(dirname \"$0\")\"\ncase \"$*\" in\n  *--scan-open*) cat \"$D/scan.json\"; exit 0;;\nesac\necho \"$*\" >> \"$D/calls.log\"\ncat \"$D/current.json\"\nexit \"$(cat \"$D/exit\" 2>/dev/null || echo 0)\"\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap_or_else(|e| panic!("{e}"));
    script
}

/// The healthy WD140EDFZ fixture with attribute 5 (and optionally the serial) changed.
pub fn wd_with(reallocated: u64, serial: Option<&str>) -> Value {
    wd_attribute(5, reallocated, serial)
}

/// The healthy WD140EDFZ fixture with attribute `id`'s raw value (and
/// optionally the serial) changed.
pub fn wd_attribute(id: u64, raw: u64, serial: Option<&str>) -> Value {
    let text = std::fs::read_to_string(fixtures().join("ata/wdc-wd140edfz-sat-healthy.json"))
        .unwrap_or_else(|e| panic!("{e}"));
    let mut v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
    let table = v["ata_smart_attributes"]["table"]
        .as_array_mut()
        .unwrap_or_else(|| panic!("no attribute table"));
    let mut found = false;
    for a in table.iter_mut() {
        if a["id"] == id {
            a["raw"]["value"] = raw.into();
            a["raw"]["string"] = raw.to_string().into();
            found = true;
        }
    }
    assert!(found, "the fixture has no attribute {id}");
    if let Some(s) = serial {
        v["serial_number"] = s.into();
        // A different drive has a different WWN too.
        v["wwn"]["id"] = (s.bytes().map(u64::from).sum::<u64>() + 1).into();
    }
    v
}

/// Replaces what the stand-in prints, atomically.
pub fn show(dir: &Path, doc: &Value) {
    let tmp = dir.join("current.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(doc).unwrap_or_default()).unwrap_or_else(|e| panic!("{e}"));
    std::fs::rename(&tmp, dir.join("current.json")).unwrap_or_else(|e| panic!("{e}"));
}

pub fn smart_config(script: &Path) -> String {
    format!(
        "[smart]\nsmartctl_path = \"{}\"\ninterval_secs = 1\ntimeout_secs = 5\n",
        script.display()
    )
}

async fn disks_of(collector: &Collector, id: &str) -> Vec<Value> {
    collector.api(&format!("/api/v1/disks?agent_id={id}")).await["disks"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

async fn wait_for_verdict(collector: &Collector, id: &str, verdict: &str, reason: Option<&str>) -> Value {
    eventually(&format!("disk verdict {verdict}"), Duration::from_secs(30), || async {
        let d = disks_of(collector, id).await;
        let first = d.first()?.clone();
        let reasons: Vec<String> = first["reasons"]
            .as_array()
            .map(|r| r.iter().filter_map(|x| x.as_str().map(String::from)).collect())
            .unwrap_or_default();
        (first["verdict"] == verdict && reason.is_none_or(|r| reasons.iter().any(|x| x == r))).then_some(first)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_growing_reallocated_count_changes_history_and_verdict() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let fake = dir.path().join("fake-smartctl");
    let script = stand_in(&fake);
    show(&fake, &wd_with(0, None));
    let collector = Collector::start(dir.path()).await;
    let agent = Agent::start(dir.path(), &collector, 1, &smart_config(&script));
    let id = wait_for_host(&collector, &agent).await;

    let d = wait_for_verdict(&collector, &id, "healthy", None).await;
    let key = d["key"].as_str().unwrap_or_default().to_string();
    assert!(key.starts_with("wwn-0x5"), "keyed by WWN, not /dev name: {d}");
    assert_eq!(d["device"], "/dev/sda");
    assert_eq!(d["model"], "WDC WD140EDFZ-11A0VA0");

    show(&fake, &wd_with(8, None));
    wait_for_verdict(&collector, &id, "warning", Some("reallocated_sectors=8")).await;
    show(&fake, &wd_with(24, None));
    wait_for_verdict(&collector, &id, "warning", Some("reallocated_sectors=24")).await;

    let one = collector.api(&format!("/api/v1/hosts/{id}/disks/{key}")).await;
    assert_eq!(one["present"], true, "{one}");
    let points: Vec<(Option<i64>, String)> = one["history"]
        .as_array()
        .map(|h| {
            h.iter()
                .map(|p| {
                    (
                        p["values"]["reallocated_sectors"].as_i64(),
                        p["verdict"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    assert_eq!(
        points,
        vec![
            (Some(0), "healthy".to_string()),
            (Some(8), "warning".to_string()),
            (Some(24), "warning".to_string()),
        ],
        "one history row per change, in order: {one}"
    );
    assert_eq!(one["disk"]["smartctl_version"], "7.0");

    // /metrics follows the latest reading.
    let l = format!("host=\"e2e-host\",customer=\"acme\",site=\"hq\",disk=\"{key}\"");
    // Agent labels come in name order after host, customer and site.
    let raw = format!(
        "caretaker_disk_ata_attribute_raw{{host=\"e2e-host\",customer=\"acme\",site=\"hq\",attribute=\"reallocated_sectors\",disk=\"{key}\"}}"
    );
    eventually("metric at 24", Duration::from_secs(10), || async {
        (collector.metric_value(&raw).await == Some(24.0)).then_some(())
    })
    .await;
    assert_eq!(
        collector
            .metric_value(&format!("caretaker_disk_health_verdict{{{l},verdict=\"warning\"}}"))
            .await,
        Some(1.0)
    );
    assert_eq!(
        collector
            .metric_value(&format!("caretaker_disk_health_verdict{{{l},verdict=\"healthy\"}}"))
            .await,
        Some(0.0)
    );
    assert_eq!(
        collector
            .metric_value(
                "caretaker_agent_collector_success{host=\"e2e-host\",customer=\"acme\",site=\"hq\",collector=\"smart\"}"
            )
            .await,
        Some(1.0)
    );

    // smartctl was asked never to wake a sleeping disk.
    let calls = std::fs::read_to_string(fake.join("calls.log")).unwrap_or_default();
    assert!(
        calls
            .lines()
            .all(|c| c.contains("--nocheck=standby") && c.contains("-d sat")),
        "{calls}"
    );
}

/// Findings of `check` on the e2e host, any status.
async fn findings_of(collector: &Collector, check: &str) -> Vec<Value> {
    collector.api("/api/v1/findings?status=all&host=e2e-host").await["findings"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|f| f["key"]["check"] == check)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crc_errors_alone_open_the_cable_finding_and_no_disk_wear() {
    // UDMA CRC errors (199) rising on an otherwise healthy disk: the link
    // (cable, backplane), not the medium.
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let fake = dir.path().join("fake-smartctl");
    let script = stand_in(&fake);
    show(&fake, &wd_attribute(199, 0, None));
    let collector = Collector::start(dir.path()).await;
    let agent = Agent::start(dir.path(), &collector, 1, &smart_config(&script));
    let id = wait_for_host(&collector, &agent).await;
    wait_for_verdict(&collector, &id, "healthy", None).await;
    show(&fake, &wd_attribute(199, 5, None));
    tokio::time::sleep(Duration::from_secs(3)).await;
    show(&fake, &wd_attribute(199, 12, None));
    let cable = eventually("the cable finding", Duration::from_secs(30), || async {
        let f = findings_of(&collector, "disk_cable_suspect").await;
        (!f.is_empty()).then_some(f)
    })
    .await;
    assert_eq!(cable.len(), 1, "{cable:?}");
    // A few more reports and SMART passes: still no word of wear.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let d = wait_for_verdict(&collector, &id, "healthy", None).await;
    assert!(
        d["reasons"]
            .as_array()
            .is_none_or(|r| r.iter().all(|x| !x.to_string().contains("crc"))),
        "a CRC count is no wear reason: {d}"
    );
    let wear = findings_of(&collector, "disk_warning").await;
    assert!(wear.is_empty(), "CRC errors reported as disk wear: {wear:?}");
    let recs = collector.api("/api/v1/recommendations").await;
    assert!(
        recs["recommendations"].as_array().is_none_or(Vec::is_empty),
        "a disk with CRC errors only is no replacement: {recs}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sleeping_disk_is_skipped_and_unknown() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let fake = dir.path().join("fake-smartctl");
    let script = stand_in(&fake);
    let standby = std::fs::read_to_string(fixtures().join("errors/sat-standby-skipped-exit2.json"))
        .unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(fake.join("current.json"), standby).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(fake.join("exit"), "2").unwrap_or_else(|e| panic!("{e}"));
    let collector = Collector::start(dir.path()).await;
    let agent = Agent::start(dir.path(), &collector, 1, &smart_config(&script));
    let id = wait_for_host(&collector, &agent).await;
    let d = wait_for_verdict(&collector, &id, "unknown", Some("standby_skipped")).await;
    assert_eq!(d["state"], "standby", "{d}");
}

/// Runs `caretaker-agent once --print` with only the smart collector.
fn once_with_smartctl(dir: &Path, smartctl: &str, extra: &str) -> Value {
    once_print(
        dir,
        &format!("collectors = [\"smart\"]\n[smart]\nsmartctl_path = \"{smartctl}\"\n{extra}"),
    )
}

/// The real smartctl of this machine (smartmontools, installed by `.ci/run`):
/// whatever it reports for the local disks is handled, and a device that
/// cannot be read is a clear unreadable state carrying smartctl's message.
#[test]
fn the_real_smartctl_on_this_machine_is_handled() {
    let Some(smartctl) = std::env::var_os("CARETAKER_TEST_SMARTCTL") else {
        eprintln!("CARETAKER_TEST_SMARTCTL not set; skipping the real smartctl test");
        return;
    };
    let smartctl = smartctl.to_string_lossy().into_owned();
    let version = Command::new(&smartctl).arg("--version").output();
    let version = version.unwrap_or_else(|e| panic!("CARETAKER_TEST_SMARTCTL={smartctl} cannot run: {e}"));
    assert!(
        String::from_utf8_lossy(&version.stdout).starts_with("smartctl "),
        "not smartctl"
    );
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let report = once_with_smartctl(
        dir.path(),
        &smartctl,
        "[[smart.devices]]\nname = \"/dev/caretaker-no-such-disk\"\n",
    );
    let scan = &report["disks"];
    assert!(scan["error"].is_null(), "smartctl itself ran: {scan}");
    let disks = scan["disks"].as_array().cloned().unwrap_or_default();
    assert!(!disks.is_empty(), "{scan}");
    for d in &disks {
        let state = d["state"].as_str().unwrap_or_default();
        let level = d["verdict"]["level"].as_str().unwrap_or_default();
        assert!(["ok", "standby", "unreadable", "unsupported"].contains(&state), "{d}");
        if state != "ok" {
            assert_eq!(level, "unknown", "an unread disk is never healthy: {d}");
            assert!(!d["message"].as_str().unwrap_or_default().is_empty(), "{d}");
        }
        eprintln!("local disk {}: {state} {level} {}", d["device"], d["message"]);
    }
    let missing = disks
        .iter()
        .find(|d| d["device"] == "/dev/caretaker-no-such-disk")
        .cloned()
        .unwrap_or_default();
    assert_eq!(missing["state"], "unreadable", "{missing}");
    assert_eq!(missing["verdict"]["level"], "unknown");
    assert!(
        missing["message"]
            .as_str()
            .unwrap_or_default()
            .contains("caretaker-no-such-disk"),
        "smartctl's own message: {missing}"
    );
    let success = report["samples"]
        .as_array()
        .and_then(|s| s.iter().find(|x| x["metric"] == "caretaker_disk_scan_success").cloned())
        .unwrap_or_default();
    assert_eq!(success["value"], 1.0, "{report}");
}

#[test]
fn disk_health_cli_prints_the_disk_or_refuses_non_smartctl_input() {
    let f = fixtures().join("nvme/intel-ssdpe2kx020t7-wear-75pct.json");
    let out = Command::new(bin("caretaker-agent"))
        .args(["disk-health", "--smartctl-json"])
        .arg(&f)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(v["verdict"]["level"], "warning");
    assert_eq!(v["verdict"]["reasons"][0]["code"], "nvme_percentage_used");
    assert_eq!(v["nvme"]["percentage_used"], 75);

    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    for (name, body, says) in [
        (
            "text.txt",
            "smartctl 7.3 2022-02-28 r5338\n=== START OF INFORMATION SECTION ===\n",
            "not JSON (line 1",
        ),
        ("other.json", "{\"hello\": 1}", "not smartctl JSON output"),
        (
            "cut.json",
            "{\"smartctl\": {\"exit_status\": 0}, \"ata_smart_attributes\": {\"tab",
            "not JSON",
        ),
    ] {
        let p = dir.path().join(name);
        std::fs::write(&p, body).unwrap_or_else(|e| panic!("{e}"));
        let out = Command::new(bin("caretaker-agent"))
            .args(["disk-health", "--smartctl-json"])
            .arg(&p)
            .output()
            .unwrap_or_else(|e| panic!("{e}"));
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{name}: {err}");
        assert!(err.contains(name) && err.contains(says), "{name}: {err}");
        assert!(out.stdout.is_empty());
    }
    let out = Command::new(bin("caretaker-agent"))
        .args(["disk-health", "--smartctl-json", "/nonexistent/x.json"])
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.status.code(), Some(2));
}

/// Replacing a disk (a stand-in fixture swap to another serial and WWN) makes
/// exactly one dated change in the asset archive, with old and new serial.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_disk_is_one_dated_change_in_the_asset_archive() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let fake = dir.path().join("fake-smartctl");
    let script = stand_in(&fake);
    show(&fake, &wd_with(0, Some("WD-OLD0001")));
    // An empty sysfs: the disk list is what smartctl says.
    let sys = dir.path().join("empty-sys");
    std::fs::create_dir_all(&sys).unwrap_or_else(|e| panic!("{e}"));
    let extra = format!("sys_root = \"{}\"\n{}", sys.display(), smart_config(&script));
    let collector = Collector::start(dir.path()).await;
    let agent = Agent::start(dir.path(), &collector, 1, &extra);
    let id = wait_for_host(&collector, &agent).await;

    let serial_of_sda = |asset: &Value| -> Option<String> {
        asset["inventory"]["disks"]
            .as_array()?
            .iter()
            .find(|d| d["name"] == "sda")
            .and_then(|d| d["serial"].as_str().map(String::from))
    };
    let before = eventually("the disk in the inventory", Duration::from_secs(30), || async {
        let a = collector.api(&format!("/api/v1/assets/{id}")).await;
        (serial_of_sda(&a).as_deref() == Some("WD-OLD0001")).then_some(a)
    })
    .await;
    // Only disk changes count: the agent reads this machine's real /proc, where
    // other tests' database servers come and go.
    let disk_changes = |asset: &Value| -> Vec<Value> {
        asset["changes"]
            .as_array()
            .map(|c| {
                c.iter()
                    .filter(|x| x["kind"].as_str().is_some_and(|k| k.starts_with("disk_")))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    };
    let changes_before = disk_changes(&before).len();

    show(&fake, &wd_with(0, Some("WD-NEW0002")));
    let after = eventually("the replacement in the inventory", Duration::from_secs(30), || async {
        let a = collector.api(&format!("/api/v1/assets/{id}")).await;
        (serial_of_sda(&a).as_deref() == Some("WD-NEW0002")).then_some(a)
    })
    .await;
    // Let a few more reports (and inventory checks) pass: still one change.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after_more = collector.api(&format!("/api/v1/assets/{id}")).await;
    let changes = disk_changes(&after_more);
    assert_eq!(changes.len(), changes_before + 1, "{after}");
    let c = &changes[0]; // newest first
    assert_eq!(c["kind"], "disk_replaced", "{c}");
    assert_eq!(c["subject"], "sda");
    assert_eq!(c["old"], "WD-OLD0001");
    assert_eq!(c["new"], "WD-NEW0002");
    assert!(c["at_ms"].as_i64().unwrap_or(0) > 0, "dated: {c}");
    assert_eq!(c["summary"], "disk sda serial WD-OLD0001 replaced by WD-NEW0002");

    // The disk-health list follows: the new disk is current, the old one's
    // history is kept.
    let disks = disks_of(&collector, &id).await;
    assert_eq!(disks.len(), 1, "{disks:?}");
    assert_eq!(disks[0]["serial"], "WD-NEW0002");
    // The asset page carries the disks' health too.
    let health = after_more["disk_health"].as_array().cloned().unwrap_or_default();
    assert_eq!(health.len(), 1, "{after_more}");
    assert_eq!(health[0]["serial"], "WD-NEW0002");
    assert_eq!(health[0]["verdict"], "healthy");
}
