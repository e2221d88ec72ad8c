//! The server's own management end to end: the real collector and a real
//! agent whose `storcli64`, `ipmi-sensors`, `ipmi-sel`, `ipmitool`, ... are
//! stand-in scripts printing captures from `tests/fixtures/hardware` (and
//! the labelled variants derived from them), switched while the agent keeps
//! running, the way a controller's or a BMC's answers change on a real host.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::story::{act, call, items_of};
use crate::util::{Agent, Collector, eventually, wait_for_host};

const HOST: &str = "e2e-host";

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/hardware")
        .join(rel)
}

fn write_script(path: &Path, body: &str) {
    std::fs::write(path, body).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap_or_else(|e| panic!("{e}"));
}

/// Replaces what a stand-in prints (`name` in `dir`) with `text`, atomically.
pub(crate) fn answer(dir: &Path, name: &str, text: &str) {
    let tmp = dir.join(format!("{name}.tmp"));
    std::fs::write(&tmp, text).unwrap_or_else(|e| panic!("{e}"));
    std::fs::rename(&tmp, dir.join(name)).unwrap_or_else(|e| panic!("{e}"));
}

pub(crate) fn read_fixture(rel: &str) -> String {
    std::fs::read_to_string(fixture(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// A collector that recovers quickly: ticks every second, holds a fault two
/// seconds before a clear counts.
async fn collector(d: &Path) -> Collector {
    Collector::start_with_config(
        d,
        "[detect]\ntick_secs = 1\nmin_hold_secs = 2\nquiet_period_secs = 600\n",
    )
    .await
}

/// Every case on the host, any status.
async fn cases(c: &Collector) -> Vec<Value> {
    let v = c.api(&format!("/api/v1/cases?status=all&host={HOST}")).await;
    items_of(&v, "cases").into_iter().cloned().collect()
}

async fn findings(c: &Collector) -> Vec<Value> {
    let v = c.api(&format!("/api/v1/findings?status=all&host={HOST}")).await;
    items_of(&v, "findings").into_iter().cloned().collect()
}

async fn recommendations(c: &Collector) -> Vec<Value> {
    let v = c.api(&format!("/api/v1/recommendations?host={HOST}")).await;
    items_of(&v, "recommendations").into_iter().cloned().collect()
}

async fn put_spare(c: &Collector, model: &str, spec: Value) {
    let path = model.replace(' ', "%20");
    let (status, v) = call(
        c,
        Method::PUT,
        &format!("/api/v1/spares/models/{path}"),
        &c.api_token,
        Some(spec),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let (status, v) = call(
        c,
        Method::PUT,
        &format!("/api/v1/spares/stock/{path}/hq"),
        &c.api_token,
        Some(json!({"quantity": 1, "min_stock": 0})),
    )
    .await;
    assert_eq!(status, 200, "{v}");
}

fn series(metric: &str, labels: &str) -> String {
    format!("{metric}{{host=\"{HOST}\",customer=\"acme\",site=\"hq\",{labels}}}")
}

/// The text of a case: its summary, evidence and log, to look for names in.
fn text_of(case: &Value) -> String {
    case.to_string()
}

// --- hardware RAID ------------------------------------------------------------

pub(crate) const PRAID: &str = "raid/storcli/praid-ep420i-call-show-all.json";
pub(crate) const PRAID_DRIVES: &str = "raid/storcli/praid-ep420i-call-eall-sall-show-all.json";
const DGRD: &str = "raid/storcli/derived-praid-ep420i-dgrd-252-1-failed-show-all.json";
const DGRD_DRIVES: &str = "raid/storcli/derived-praid-ep420i-dgrd-252-1-failed-drives.json";
const RBLD: &str = "raid/storcli/derived-praid-ep420i-rbld-252-1-new-disk-show-all.json";
const RBLD_DRIVES: &str = "raid/storcli/derived-praid-ep420i-rbld-252-1-new-disk-drives.json";
const OPTL: &str = "raid/storcli/derived-praid-ep420i-optl-252-1-new-disk-show-all.json";
const OPTL_DRIVES: &str = "raid/storcli/derived-praid-ep420i-optl-252-1-new-disk-drives.json";
/// The disk in 252:1 of the capture, and what its spare must be.
const FAILED_SERIAL: &str = "20032656D63C";
const DISK_MODEL: &str = "Micron_5200_MTFDDAK960TDC";

/// A `storcli64` answering `/call show all J nolog` with `show-all.json`
/// and `/call/eall/sall show all J nolog` with `drives.json`, counting its
/// runs in `runs`.
pub(crate) fn fake_storcli(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{e}"));
    let script = dir.join("storcli64");
    write_script(
        &script,
        "#!/bin/sh\nD=\"$(dirname \"$0\")\"\necho run >> \"$D/runs\"\ncase \"$*\" in\n  *eall*) cat \"$D/drives.json\";;\n  *) cat \"$D/show-all.json\";;\nesac\n",
    );
    script
}

pub(crate) fn storcli_shows(dir: &Path, show_all: &str, drives: &str) {
    answer(dir, "show-all.json", &read_fixture(show_all));
    answer(dir, "drives.json", &read_fixture(drives));
}

pub(crate) fn raid_config(storcli: &Path, d: &Path) -> String {
    let none = d.join("not-installed");
    format!(
        "[raid]\nstorcli_path = \"{}\"\nperccli_path = \"{n}\"\nstorcli2_path = \"{n}\"\nperccli2_path = \"{n}\"\nssacli_path = \"{n}\"\ninterval_secs = 1\ntimeout_secs = 10\n",
        storcli.display(),
        n = none.display()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_degraded_array_is_one_case_naming_the_failed_disk_and_recovers_when_optimal() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let d = dir.path();
    let c = collector(d).await;
    // A spare that fits the array's disks: SATA, at least their size.
    put_spare(
        &c,
        "MTFDDAK960TDN",
        json!({"part_type": "disk", "interface": "sata", "capacity_bytes": 960_197_124_096u64}),
    )
    .await;
    let fake = d.join("raid-tools");
    let storcli = fake_storcli(&fake);
    storcli_shows(&fake, PRAID, PRAID_DRIVES);
    let agent = Agent::start(d, &c, 1, &raid_config(&storcli, d));
    let agent_id = wait_for_host(&c, &agent).await;
    let degraded = series("caretaker_raid_vd_degraded", "controller=\"c0\",vd=\"c0/v0\"");
    eventually("the healthy array in /metrics", Duration::from_secs(30), || async {
        (c.metric_value(&degraded).await == Some(0.0)).then_some(())
    })
    .await;
    // The controller, its array and its disks are in the asset archive.
    let asset = c.api(&format!("/api/v1/assets/{HOST}")).await;
    let text = asset.to_string();
    assert!(
        text.contains("PRAID EP420i") && text.contains("4.680.00-8417"),
        "{asset}"
    );
    assert!(text.contains(FAILED_SERIAL) && text.contains("c0 252:1"), "{asset}");
    assert!(cases(&c).await.is_empty(), "a healthy controller opens nothing");

    // Disk 252:1 fails: the array runs degraded.
    storcli_shows(&fake, DGRD, DGRD_DRIVES);
    let case = eventually("the degraded array's case", Duration::from_secs(30), || async {
        cases(&c)
            .await
            .into_iter()
            .find(|i| i["key"]["check"] == "raid_array_degraded" && i["key"]["component"] == "c0/v0")
    })
    .await;
    let id = case["id"].as_i64().unwrap_or_default();
    assert_eq!(case["severity"], "critical", "{case}");
    // The case names the failed disk: slot, model and serial.
    let detail = eventually("the case naming the failed disk", Duration::from_secs(20), || async {
        let v = c.api(&format!("/api/v1/cases/{id}")).await;
        let t = text_of(&v);
        (t.contains("252:1") && t.contains(DISK_MODEL) && t.contains(FAILED_SERIAL)).then_some(v)
    })
    .await;
    // A replacement for that disk, linked to the case; accepting it
    // reserves the compatible spare.
    let rec = eventually(
        "a recommendation for the failed disk",
        Duration::from_secs(20),
        || async {
            recommendations(&c)
                .await
                .into_iter()
                .find(|r| r["part"]["serial"] == FAILED_SERIAL)
        },
    )
    .await;
    assert_eq!(rec["item_id"], id, "linked to the array's case: {rec} / {detail}");
    assert_eq!(rec["part_type"], "disk", "{rec}");
    let (status, v) = call(
        &c,
        Method::POST,
        &format!("/api/v1/recommendations/{}/accept", rec["id"]),
        &c.api_token,
        None,
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["status"], "reserved", "{v}");
    assert_eq!(v["reserved"]["model"], "MTFDDAK960TDN", "{v}");

    // The engineer swaps the disk; the controller rebuilds onto the new one.
    storcli_shows(&fake, RBLD, RBLD_DRIVES);
    let rebuild = eventually("the rebuild as a finding", Duration::from_secs(30), || async {
        findings(&c)
            .await
            .into_iter()
            .find(|f| f["key"]["check"] == "raid_rebuild_in_progress" && f["status"] == "open")
    })
    .await;
    assert_eq!(rebuild["key"]["component"], "c0/v0", "{rebuild}");
    let v = c.api(&format!("/api/v1/cases/{id}")).await;
    assert!(
        !["recovered", "resolved", "closed"].contains(&v["status"].as_str().unwrap_or_default()),
        "still degraded while it rebuilds: {v}"
    );

    // Optimal again: the case recovers, the rebuild finding clears.
    storcli_shows(&fake, OPTL, OPTL_DRIVES);
    eventually("the case recovered", Duration::from_secs(30), || async {
        let v = c.api(&format!("/api/v1/cases/{id}")).await;
        (v["status"] == "recovered").then_some(())
    })
    .await;
    // A finding is closed by people; the rebuild's shows it cleared.
    eventually("the rebuild finding cleared", Duration::from_secs(30), || async {
        findings(&c)
            .await
            .into_iter()
            .find(|f| f["id"] == rebuild["id"] && f["cleared_at_ms"].as_i64().is_some())
    })
    .await;
    // A few more controller reads: nothing new opens, and through the whole
    // story there was one case, for the array.
    let runs = |dir: &Path| {
        std::fs::read_to_string(dir.join("runs"))
            .unwrap_or_default()
            .lines()
            .count()
    };
    let at = runs(&fake);
    let since = Instant::now();
    while runs(&fake) < at + 6 && since.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let all = cases(&c).await;
    assert_eq!(all.len(), 1, "one case for one fault: {all:?}");
    let m = c
        .metric_value(&series("caretaker_agent_collector_success", "collector=\"raid\""))
        .await;
    assert_eq!(m, Some(1.0));
    drop(agent_id);
}

// --- BMC (IPMI) -----------------------------------------------------------------

pub(crate) const SENSORS_HEALTHY: &str = "ipmi/freeipmi/supermicro-sensors-healthy-derived.csv";
const SENSORS_PSU_FAILED: &str = "ipmi/freeipmi/supermicro-sensors-psu-failed-derived.csv";
/// Two old entries (2024): the log was cleared, then a chassis intrusion.
pub(crate) const SEL_OLD: &str = "ipmi/freeipmi/sel-chassis-intrusion-critical.csv";
const PSU: &str = "PS1 Status";

/// FreeIPMI stand-ins: `ipmi-sensors` prints `sensors.csv`, `ipmi-sel`
/// prints `sel.csv` (or, with `--info`, how full the log is), and the
/// chassis status and BMC identity are fixed answers in FreeIPMI's layout.
pub(crate) fn fake_freeipmi(dir: &Path) -> String {
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{e}"));
    let p = |n: &str| dir.join(n);
    write_script(
        &p("ipmi-sensors"),
        "#!/bin/sh\nD=\"$(dirname \"$0\")\"\necho run >> \"$D/runs\"\ncat \"$D/sensors.csv\"\n",
    );
    write_script(
        &p("ipmi-sel"),
        "#!/bin/sh\nD=\"$(dirname \"$0\")\"\ncase \"$*\" in\n  *--info*) echo \"Number of log entries : $(wc -l < \"$D/sel.csv\")\"; echo 'Free space remaining  : 15000 bytes';;\n  *) cat \"$D/sel.csv\";;\nesac\n",
    );
    write_script(
        &p("ipmi-chassis"),
        "#!/bin/sh\ncat <<'EOF'\nSystem Power                        : on\nPower overload                      : false\nInterlock                           : inactive\nPower fault                         : false\nPower control fault                 : false\nChassis intrusion                   : inactive\nFront panel lockout                 : inactive\nDrive Fault                         : false\nCooling/fan fault                   : false\nEOF\n",
    );
    write_script(
        &p("bmc-info"),
        "#!/bin/sh\ncat <<'EOF'\nDevice ID         : 32\nFirmware Revision : 1.73\nIPMI Version      : 2.0\nManufacturer ID   : Super Micro Computer Inc. (10876)\nEOF\n",
    );
    // A device node stands in for /dev/ipmi0: the host has a BMC.
    std::fs::write(p("ipmi0"), "").unwrap_or_else(|e| panic!("{e}"));
    let none = dir.join("not-installed");
    format!(
        "[ipmi]\ntool = \"freeipmi\"\nipmi_sensors_path = \"{}\"\nipmi_sel_path = \"{}\"\nipmi_chassis_path = \"{}\"\nbmc_info_path = \"{}\"\nipmi_fru_path = \"{n}\"\nipmitool_path = \"{n}\"\nfru = false\ninterval_secs = 1\ntimeout_secs = 10\ndevices = [\"{}\"]\n",
        p("ipmi-sensors").display(),
        p("ipmi-sel").display(),
        p("ipmi-chassis").display(),
        p("bmc-info").display(),
        p("ipmi0").display(),
        n = none.display()
    )
}

/// A FreeIPMI SEL line for a PSU failure happening now (the BMC's clock is
/// the host's: UTC here).
fn psu_failure_entry(id: u32) -> String {
    let now = std::process::Command::new("date")
        .args(["-u", "+%b-%d-%Y,%H:%M:%S"])
        .output()
        .unwrap_or_else(|e| panic!("date: {e}"));
    let when = String::from_utf8_lossy(&now.stdout).trim().to_string();
    format!("{id},{when},{PSU},Power Supply,Critical,Failure detected\n")
}

fn sensor_runs(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("runs"))
        .unwrap_or_default()
        .lines()
        .count()
}

/// Waits until the stand-in `ipmi-sensors` ran `n` more times.
async fn ipmi_runs(dir: &Path, n: usize) {
    let at = sensor_runs(dir);
    let since = Instant::now();
    while sensor_runs(dir) < at + n {
        assert!(
            since.elapsed() < Duration::from_secs(40),
            "the ipmi worker stopped running"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_psu_failure_is_one_case_and_one_recommendation_and_its_old_sel_entry_never_reopens_it() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let d = dir.path();
    let c = collector(d).await;
    put_spare(&c, "PWS-920P-SQ", json!({"part_type": "psu"})).await;
    let fake = d.join("ipmi-tools");
    let config = fake_freeipmi(&fake);
    answer(&fake, "sensors.csv", &read_fixture(SENSORS_HEALTHY));
    let old_sel = read_fixture(SEL_OLD);
    answer(&fake, "sel.csv", &old_sel);
    let mut agent = Agent::start(d, &c, 1, &config);
    wait_for_host(&c, &agent).await;
    let psu_state = series(
        "caretaker_ipmi_sensor_state",
        &format!("sensor=\"{PSU}\",type=\"power_supply\""),
    );
    eventually("the PSU sensor in /metrics", Duration::from_secs(30), || async {
        (c.metric_value(&psu_state).await == Some(0.0)).then_some(())
    })
    .await;
    ipmi_runs(&fake, 2).await;
    // The log's old entries (a cleared log, an intrusion in 2024) are
    // history from before the agent came: nothing opens from them.
    assert!(cases(&c).await.is_empty(), "{:?}", cases(&c).await);
    assert!(findings(&c).await.is_empty(), "{:?}", findings(&c).await);

    // PS1 fails: the sensor goes critical and the BMC logs it.
    answer(&fake, "sensors.csv", &read_fixture(SENSORS_PSU_FAILED));
    answer(&fake, "sel.csv", &format!("{old_sel}{}", psu_failure_entry(3)));
    let case = eventually("the PSU case", Duration::from_secs(30), || async {
        cases(&c)
            .await
            .into_iter()
            .find(|i| i["key"]["check"] == "ipmi_psu_critical" && i["key"]["component"] == PSU)
    })
    .await;
    let id = case["id"].as_i64().unwrap_or_default();
    // The SEL entry adds to the same case.
    eventually("the SEL entry in the case", Duration::from_secs(20), || async {
        let v = c.api(&format!("/api/v1/cases/{id}")).await;
        text_of(&v).contains("Failure detected").then_some(())
    })
    .await;
    let rec = eventually("a recommendation for the PSU", Duration::from_secs(20), || async {
        recommendations(&c).await.into_iter().find(|r| r["part_type"] == "psu")
    })
    .await;
    assert_eq!(rec["item_id"], id, "{rec}");
    ipmi_runs(&fake, 3).await;
    let all = cases(&c).await;
    assert_eq!(all.len(), 1, "one case for the PSU failure: {all:?}");
    let recs = recommendations(&c).await;
    assert_eq!(recs.len(), 1, "one recommendation: {recs:?}");

    // The PSU is swapped: the sensor is nominal, the case recovers, and
    // the engineer resolves it with the service report.
    answer(&fake, "sensors.csv", &read_fixture(SENSORS_HEALTHY));
    eventually("the PSU case recovered", Duration::from_secs(30), || async {
        let v = c.api(&format!("/api/v1/cases/{id}")).await;
        (v["status"] == "recovered").then_some(())
    })
    .await;
    let v = act(
        &c,
        id,
        &c.api_token,
        json!({"action": "resolve", "report": {
            "host": HOST,
            "engineer": "ana",
            "mode": "on_site",
            "symptom": "PS1 failed",
            "work_done": "replaced power supply PS1",
            "minutes": 20,
            "parts": [{"part_type": "psu", "slot": PSU, "new_model": "PWS-920P-SQ"}],
        }}),
    )
    .await;
    assert_eq!(v["status"], "resolved", "{v}");

    // The log still holds the failure: the agent keeps running, then
    // restarts; then it restarts having lost its place in the log and
    // reads the entry again. The resolved case stays resolved.
    ipmi_runs(&fake, 3).await;
    agent.stop();
    agent.spawn();
    ipmi_runs(&fake, 3).await;
    agent.stop();
    let mut removed = 0;
    for e in std::fs::read_dir(&agent.state_dir)
        .unwrap_or_else(|e| panic!("{e}"))
        .flatten()
    {
        if e.file_name().to_string_lossy().contains("sel") {
            std::fs::remove_file(e.path()).unwrap_or_else(|e| panic!("{e}"));
            removed += 1;
        }
    }
    assert!(removed > 0, "the agent keeps its place in the SEL in its state dir");
    agent.spawn();
    ipmi_runs(&fake, 4).await;
    let v = c.api(&format!("/api/v1/cases/{id}")).await;
    assert_eq!(v["status"], "resolved", "an old SEL entry reopened the case: {v}");
    let all = cases(&c).await;
    assert_eq!(all.len(), 1, "{all:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sensors_of_empty_slots_produce_nothing() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let d = dir.path();
    let c = collector(d).await;
    // ipmitool only, on an IBM System x whose backplanes 3 and 4 are not
    // fitted: their sensors are not readable (`ns`).
    let fake = d.join("ipmitool");
    std::fs::create_dir_all(&fake).unwrap_or_else(|e| panic!("{e}"));
    answer(
        &fake,
        "sdr.txt",
        &read_fixture("ipmi/ipmitool/ibm-sdr-v1-ns-not-readable.txt"),
    );
    let ipmitool = fake.join("ipmitool");
    write_script(
        &ipmitool,
        "#!/bin/sh\nD=\"$(dirname \"$0\")\"\ncase \"$*\" in\n  sdr*) echo run >> \"$D/runs\"; cat \"$D/sdr.txt\";;\n  *'sel info'*) printf 'Entries          : 0\\nPercent Used     : 0%%\\n';;\n  'sel elist') ;;\n  *) echo 'not supported by this BMC' >&2; exit 1;;\nesac\n",
    );
    std::fs::write(fake.join("ipmi0"), "").unwrap_or_else(|e| panic!("{e}"));
    let none = d.join("not-installed");
    let config = format!(
        "[ipmi]\ntool = \"ipmitool\"\nipmitool_path = \"{}\"\nipmi_sensors_path = \"{n}\"\nipmi_sel_path = \"{n}\"\nipmi_chassis_path = \"{n}\"\nbmc_info_path = \"{n}\"\nipmi_fru_path = \"{n}\"\nfru = false\ninterval_secs = 1\ntimeout_secs = 10\ndevices = [\"{}\"]\n",
        ipmitool.display(),
        fake.join("ipmi0").display(),
        n = none.display()
    );
    let agent = Agent::start(d, &c, 1, &config);
    wait_for_host(&c, &agent).await;
    let ambient = series(
        "caretaker_ipmi_sensor_value",
        "sensor=\"Ambient Temp\",type=\"temperature\",unit=\"celsius\"",
    );
    eventually("a fitted sensor in /metrics", Duration::from_secs(30), || async {
        (c.metric_value(&ambient).await == Some(20.0)).then_some(())
    })
    .await;
    ipmi_runs(&fake, 3).await;
    let metrics = c.metrics().await;
    for absent in ["DASD Backplane 3", "DASD Backplane 4"] {
        assert!(
            !metrics
                .lines()
                .any(|l| l.starts_with("caretaker_ipmi_sensor") && l.contains(&format!("sensor=\"{absent}\""))),
            "{absent} is not fitted and reads na"
        );
    }
    assert!(cases(&c).await.is_empty(), "{:?}", cases(&c).await);
    assert!(findings(&c).await.is_empty(), "{:?}", findings(&c).await);
}
