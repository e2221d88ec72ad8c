//! Whole stories, end to end: a real collector (with a contracts file: a
//! customer, a 7x24 contract, two engineers on a rotation, a customer user)
//! and a real agent that keeps running from the first report to the last.
//!
//! 1. A disk degrades and is swapped: findings, a `disk_failing` case
//!    assigned by the rotation, a replacement recommendation that reserves a
//!    spare, the engineer's response, the swap, the service report, the case
//!    staying resolved through the agent's next SMART passes, the spare
//!    consumed and reordered, the satisfaction, and the customer's inspection
//!    report telling all of it.
//! 2. A failed systemd unit is fixed by a rerun: its case opens, nobody
//!    touches it, and it recovers and resolves by itself.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::disk_health::{show, stand_in, wd_with};
use crate::util::{Agent, Collector, eventually, wait_for_host};

/// Report interval of the agent.
const REPORT_SECS: u32 = 1;
/// The agent's SMART pass interval in story 1.
const SMART_SECS: u64 = 3;

/// The engineers' API tokens (their SHA-256 is in the contracts file).
const ANA: &str = "story-token-ana";
const BEN: &str = "story-token-ben";
/// The customer's user.
const CAROL: &str = "story-token-carol";

/// An argon2id PHC string (of "story password"): users need one, although
/// these stories call the API with tokens only.
const PHC: &str = "$argon2id$v=19$m=19456,t=2,p=1$9DRr+KsQQUzhuydRe83Qcg$YjXpmKHQuC0Y+wM0cwG4XH4uS4QKPioqRgUk0tIysNo";

/// The rotation: `ana` and `ben` take turns weekly from 2026-01-05T08:00:00Z.
const ROTATION_START_MS: i64 = 1_767_600_000_000;
const ROTATION_SHIFT_MS: i64 = 7 * 86_400_000;
const ROTATION: [&str; 2] = ["ana", "ben"];

/// The spare kept for the customer's disks: the model of the new disk.
const SPARE: &str = "WDC WD140EDFZ-11A0VA0";
const SPARE_PATH: &str = "WDC%20WD140EDFZ-11A0VA0";
const NEW_SERIAL: &str = "9RK2NEW0";

fn token_line(token: &str) -> String {
    format!("sha256:{}", caretaker_collector::auth::token_hash(token))
}

fn contracts() -> String {
    format!(
        r#"
[[customer]]
name = "acme"
sites = ["hq"]

[[contract]]
name = "acme-gold"
customer = "acme"
covers = {{ labels = {{ customer = "acme" }} }}
hours = "7x24"
time_zone = "UTC"
response = {{ critical = "1h", warning = "4h" }}
resolution = {{ critical = "8h", warning = "2d" }}

[[engineer]]
name = "ana"
skills = ["hardware", "os"]
sites = ["hq"]
level = "L1"

[[engineer]]
name = "ben"
skills = ["hardware", "os"]
sites = ["hq"]
level = "L1"

[[rotation]]
site = "hq"
skill = "hardware"
members = ["ana", "ben"]
shift = "1w"
start = "2026-01-05T08:00:00Z"

[[user]]
name = "ana"
role = "engineer"
password = "{PHC}"
tokens = ["{ana}"]

[[user]]
name = "ben"
role = "engineer"
password = "{PHC}"
tokens = ["{ben}"]

[[user]]
name = "carol"
role = "customer"
customer = "acme"
password = "{PHC}"
tokens = ["{carol}"]
"#,
        ana = token_line(ANA),
        ben = token_line(BEN),
        carol = token_line(CAROL),
    )
}

/// The rotation member on call at `t_ms` (the contracts file's rule).
fn on_call(t_ms: i64) -> &'static str {
    let shift = (t_ms - ROTATION_START_MS).div_euclid(ROTATION_SHIFT_MS);
    ROTATION[usize::try_from(shift.rem_euclid(2)).unwrap_or(0)]
}

fn token_of(engineer: &str) -> &'static str {
    if engineer == "ben" { BEN } else { ANA }
}

/// One API call with `token`: the status and the JSON answer.
pub(crate) async fn call(c: &Collector, method: Method, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = c
        .client
        .request(method.clone(), format!("{}{path}", c.url()))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// A case action by an engineer; it must be accepted.
pub(crate) async fn act(c: &Collector, id: i64, token: &str, body: Value) -> Value {
    let (status, v) = call(
        c,
        Method::POST,
        &format!("/api/v1/cases/{id}/actions"),
        token,
        Some(body.clone()),
    )
    .await;
    assert_eq!(status, 200, "{body} → {v}");
    v
}

fn fixture(rel: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/smartctl")
        .join(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The stand-in prints `doc` and exits with the status smartctl had when it
/// was captured.
fn capture(dir: &Path, doc: &Value) {
    let exit = doc["smartctl"]["exit_status"].as_u64().unwrap_or(0);
    std::fs::write(dir.join("exit"), exit.to_string()).unwrap_or_else(|e| panic!("{e}"));
    show(dir, doc);
}

/// How many disk reads the stand-in served (one per SMART pass here: one disk).
fn smart_reads(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("calls.log"))
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

fn log_of(dir: &Path, name: &str) -> String {
    let text = std::fs::read_to_string(dir.join(name)).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// The failing disk before it failed: the healthy capture's SMART data under
/// the failing capture's identity (model, serial, WWN, capacity, firmware),
/// so both readings are of one disk.
fn same_disk_healthy(failing: &Value) -> Value {
    let mut healthy = fixture("ata/wdc-wd140edfz-sat-healthy.json");
    for field in [
        "model_family",
        "model_name",
        "serial_number",
        "wwn",
        "firmware_version",
        "user_capacity",
    ] {
        healthy[field] = failing[field].clone();
    }
    healthy
}

pub(crate) fn items_of<'a>(v: &'a Value, list: &str) -> Vec<&'a Value> {
    v[list].as_array().map(|a| a.iter().collect()).unwrap_or_default()
}

/// The log rows that reopened a case.
fn reopenings(case: &Value) -> Vec<Value> {
    case["log"]
        .as_array()
        .map(|l| {
            l.iter()
                .filter(|r| {
                    r["comment"].as_str().is_some_and(|c| c.contains("reopen"))
                        || (r["from_status"] == "resolved"
                            && !["resolved", "closed"].contains(&r["to_status"].as_str().unwrap_or_default()))
                })
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swapped_disk_case_stays_resolved_through_the_whole_story() {
    let started = Instant::now();
    let started_ms = caretaker_shared::now_ms();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let d = dir.path();
    let contracts_file = d.join("contracts.toml");
    std::fs::write(&contracts_file, contracts()).unwrap_or_else(|e| panic!("{e}"));
    let config = format!(
        "[queue]\ncontracts_file = \"{}\"\n[detect]\ntick_secs = 1\n",
        contracts_file.display()
    );
    let c = Collector::start_with_config(d, &config).await;
    let api = c.api_token.clone();

    // A spare of the new disk's model at the site, one on the shelf and one
    // the minimum: using it is a shortfall.
    let (status, v) = call(
        &c,
        Method::PUT,
        &format!("/api/v1/spares/models/{SPARE_PATH}"),
        &api,
        Some(json!({"part_type": "disk", "interface": "sata", "capacity_bytes": 14_000_519_643_136u64})),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let (status, v) = call(
        &c,
        Method::PUT,
        &format!("/api/v1/spares/stock/{SPARE_PATH}/hq"),
        &api,
        Some(json!({"quantity": 1, "min_stock": 1})),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["below_minimum"], false, "{v}");
    let (_, v) = call(&c, Method::GET, "/api/v1/spares/replenishment", &api, None).await;
    assert_eq!(items_of(&v, "requests").len(), 0, "{v}");

    // The disk is healthy at first.
    let smart = d.join("smart");
    let script = stand_in(&smart);
    let failing = fixture("ata/hitachi-hds721050dle630-usbjmicron-reallocated-failing.json");
    let old_serial = failing["serial_number"].as_str().unwrap_or_default().to_string();
    let old_model = failing["model_name"].as_str().unwrap_or_default().to_string();
    capture(&smart, &same_disk_healthy(&failing));
    // An empty sysfs: the inventory's disks are what smartctl says.
    let sys = d.join("empty-sys");
    std::fs::create_dir_all(&sys).unwrap_or_else(|e| panic!("{e}"));
    let extra = format!(
        "sys_root = \"{}\"\n[smart]\nsmartctl_path = \"{}\"\ninterval_secs = {SMART_SECS}\ntimeout_secs = 5\n",
        sys.display(),
        script.display()
    );
    // The agent runs from here to the end of the story.
    let agent = Agent::start(d, &c, REPORT_SECS, &extra);
    let agent_id = wait_for_host(&c, &agent).await;
    let disk_url = format!("/api/v1/disks?agent_id={agent_id}");
    let old_key = eventually("the healthy disk", Duration::from_secs(20), || async {
        let v = c.api(&disk_url).await;
        let disk = v["disks"].as_array()?.first()?.clone();
        (disk["serial"] == old_serial.as_str() && disk["verdict"] == "healthy")
            .then(|| disk["key"].as_str().unwrap_or_default().to_string())
    })
    .await;

    // It degrades: the next SMART pass reads the failing capture.
    capture(&smart, &failing);
    let finding = eventually("a finding on the degrading disk", Duration::from_secs(20), || async {
        let v = c.api("/api/v1/findings?host=e2e-host").await;
        items_of(&v, "findings")
            .into_iter()
            .find(|f| f["rule"] == "disk_reallocated_sectors_grew" && f["key"]["component"] == old_key.as_str())
            .cloned()
    })
    .await;
    assert_eq!(finding["status"], "open", "{finding}");
    let case = eventually("the disk_failing case", Duration::from_secs(20), || async {
        let v = c.api("/api/v1/cases?host=e2e-host").await;
        items_of(&v, "cases")
            .into_iter()
            .find(|i| i["rule"] == "disk_failing" && i["key"]["component"] == old_key.as_str())
            .cloned()
    })
    .await;
    let id = case["id"].as_i64().unwrap_or_else(|| panic!("case without id: {case}"));
    let case_url = format!("/api/v1/cases/{id}");
    let engineer = on_call(case["opened_at_ms"].as_i64().unwrap_or_default());
    let v = eventually("the case assigned", Duration::from_secs(10), || async {
        let v = c.api(&case_url).await;
        (v["status"] == "assigned").then_some(v)
    })
    .await;
    let meta = &v["queue"]["meta"];
    assert_eq!(meta["contract"], "acme-gold", "{v}");
    assert_eq!(meta["skill"], "hardware", "{v}");
    assert_eq!(meta["assignee"], engineer, "the on-call member of the rotation: {v}");
    assert!(
        v["log"].as_array().is_some_and(|l| l
            .iter()
            .any(|r| r["actor"] == "rule:assignment" && r["comment"].as_str().is_some_and(|c| c.contains("on call")))),
        "assigned by the rotation: {v}"
    );

    // The replacement recommendation, linked to the case (the scan that
    // raised it was recorded before detection opened the case: the next
    // SMART pass links it); accepting it reserves the spare.
    let rec = eventually(
        "a recommendation for the disk, linked to the case",
        Duration::from_secs(3 * SMART_SECS),
        || async {
            let v = c.api("/api/v1/recommendations?host=e2e-host").await;
            items_of(&v, "recommendations")
                .into_iter()
                .find(|r| r["part"]["serial"] == old_serial.as_str() && r["item_id"] == id)
                .cloned()
        },
    )
    .await;
    assert_eq!(rec["status"], "open", "{rec}");
    assert_eq!(rec["urgency"], "replace_now", "{rec}");
    let rec_id = rec["id"].as_i64().unwrap_or_default();
    let slot = rec["part"]["slot"].as_str().unwrap_or_default().to_string();
    let (status, v) = call(
        &c,
        Method::POST,
        &format!("/api/v1/recommendations/{rec_id}/accept"),
        token_of(engineer),
        None,
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["status"], "reserved", "{v}");
    assert_eq!(v["reserved"]["model"], SPARE, "{v}");
    assert_eq!(v["reserved"]["location"], "hq", "{v}");

    // The engineer on call responds: the response clock is met.
    let v = act(&c, id, token_of(engineer), json!({"action": "acknowledge"})).await;
    assert_eq!(v["status"], "in_progress", "{v}");
    let v = c.api(&case_url).await;
    let response = &v["queue"]["sla"]["response"];
    assert!(response["met_at_ms"].as_i64().is_some(), "response met: {v}");
    assert_eq!(response["breached"], false, "{v}");
    assert!(
        v["queue"]["sla"]["resolution"]["met_at_ms"].is_null(),
        "not resolved yet: {v}"
    );

    // The swap: smartctl now sees a new, healthy disk in the slot. The
    // engineer resolves at once with the service report; the agent still
    // sends the old disk's last readings until its next SMART pass.
    capture(&smart, &wd_with(0, Some(NEW_SERIAL)));
    let v = act(
        &c,
        id,
        token_of(engineer),
        json!({"action": "resolve", "report": {
            "host": "e2e-host",
            "engineer": engineer,
            "mode": "on_site",
            "symptom": format!("disk {slot} failing SMART (reallocated sectors)"),
            "work_done": "replaced the disk, rebuilt the array",
            "minutes": 45,
            "parts": [{"part_type": "disk", "slot": slot, "old_model": old_model, "old_serial": old_serial,
                       "new_model": SPARE, "new_serial": NEW_SERIAL}],
        }}),
    )
    .await;
    assert_eq!(v["status"], "resolved", "{v}");
    let reads_at_resolve = smart_reads(&smart);

    // It stays resolved through the agent's next reports and SMART passes.
    let watch = Duration::from_secs(3 * SMART_SECS + 4 * u64::from(REPORT_SECS));
    let since = Instant::now();
    loop {
        let v = c.api(&case_url).await;
        assert!(
            v["status"] == "resolved" && reopenings(&v).is_empty(),
            "(a) the resolved case reopened after the service report replaced its disk ({}s after the resolve, {} SMART pass(es) since): {v}",
            since.elapsed().as_secs(),
            smart_reads(&smart) - reads_at_resolve
        );
        let passes = smart_reads(&smart) - reads_at_resolve;
        if since.elapsed() >= watch && passes >= 2 {
            break;
        }
        assert!(
            since.elapsed() < watch * 3,
            "only {passes} SMART pass(es) in {:?}; agent log:\n{}",
            since.elapsed(),
            log_of(d, "agent.log")
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let v = c.api(&disk_url).await;
    let disks = items_of(&v, "disks");
    assert_eq!(disks.len(), 1, "only the new disk: {v}");
    assert_eq!(disks[0]["serial"], NEW_SERIAL, "{v}");
    assert_eq!(disks[0]["verdict"], "healthy", "{v}");

    // The recommendation is done, and nothing is recommended for the old disk.
    let v = c.api(&format!("/api/v1/recommendations/{rec_id}")).await;
    assert_eq!(v["status"], "done", "(b) the recommendation for the replaced disk: {v}");
    let v = c.api("/api/v1/recommendations?host=e2e-host").await;
    let active: Vec<&Value> = items_of(&v, "recommendations")
        .into_iter()
        .filter(|r| ["open", "accepted", "reserved"].contains(&r["status"].as_str().unwrap_or_default()))
        .collect();
    assert!(
        active.is_empty(),
        "(b) active recommendations after the swap: {active:?}"
    );

    // The spare was consumed and its reorder is open.
    let (_, v) = call(&c, Method::GET, "/api/v1/spares", &api, None).await;
    let stock = items_of(&v, "stock");
    assert_eq!(stock.len(), 1, "{v}");
    assert_eq!(stock[0]["quantity"], 0, "{v}");
    assert_eq!(stock[0]["reserved"], 0, "{v}");
    assert_eq!(stock[0]["below_minimum"], true, "{v}");
    let (_, v) = call(&c, Method::GET, "/api/v1/spares/replenishment", &api, None).await;
    let requests = items_of(&v, "requests");
    assert_eq!(requests.len(), 1, "{v}");
    assert_eq!(requests[0]["model"], SPARE, "{v}");
    assert_eq!(requests[0]["location"], "hq", "{v}");
    assert_eq!(requests[0]["quantity"], 1, "{v}");
    assert_eq!(requests[0]["status"], "open", "{v}");

    // The customer is satisfied: the case closes.
    let v = act(
        &c,
        id,
        token_of(engineer),
        json!({"action": "close", "satisfaction": {"score": 5, "comment": "swapped within the hour"}}),
    )
    .await;
    assert_eq!(v["status"], "closed", "{v}");
    let v = c.api(&case_url).await;
    assert_eq!(v["queue"]["satisfaction"]["score"], 5, "{v}");
    assert!(v["queue"]["sla"]["resolution"]["met_at_ms"].as_i64().is_some(), "{v}");

    // The customer's inspection report of the period tells the story.
    let now = caretaker_shared::now_ms();
    let (status, made) = call(
        &c,
        Method::POST,
        "/api/v1/reports/inspection",
        &api,
        Some(json!({"customer": "acme", "from": started_ms - 60_000, "to": now})),
    )
    .await;
    assert_eq!(status, 201, "{made}");
    let report_id = made["id"].as_i64().unwrap_or_default();
    let (status, report) = call(
        &c,
        Method::GET,
        &format!("/api/v1/reports/inspection/{report_id}.json"),
        CAROL,
        None,
    )
    .await;
    assert_eq!(status, 200, "the customer reads its report: {report}");
    assert_eq!(report["customer"], "acme", "{report}");
    let line = items_of(&report["cases"], "cases")
        .into_iter()
        .find(|l| l["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("the case is not in the report: {report}"));
    assert_eq!(line["status"], "closed", "{line}");
    assert!(line["time_to_resolve_ms"].as_i64().is_some(), "time to resolve: {line}");
    assert!(
        line["time_to_respond_ms"].as_i64().is_some() && report["cases"]["mean_time_to_respond_ms"].as_i64().is_some(),
        "(c) the response time of a case the rotation assigned and an engineer acknowledged: {}",
        report["cases"]
    );
    assert!(
        report["cases"]["mean_time_to_resolve_ms"].as_i64().is_some(),
        "{report}"
    );
    assert_eq!(report["satisfaction"]["answers"], 1, "{report}");
    assert_eq!(report["satisfaction"]["mean_score"], 5.0, "{report}");

    // The device archive: the swap as a dated change and in the case's
    // service report; the disks as read now.
    let system = items_of(&report, "systems")
        .into_iter()
        .find(|s| s["host"] == "e2e-host")
        .cloned()
        .unwrap_or_else(|| panic!("no e2e-host in the report: {report}"));
    let swap = format!("serial {old_serial} replaced by {NEW_SERIAL}");
    assert!(
        items_of(&system, "changes")
            .iter()
            .any(|ch| ch["kind"] == "disk_replaced" && ch["summary"].as_str().is_some_and(|s| s.contains(&swap))),
        "the swap among the changes: {}",
        system["changes"]
    );
    let problem = items_of(&system, "problems")
        .into_iter()
        .find(|p| p["id"] == id)
        .cloned()
        .unwrap_or_else(|| panic!("the case is not on the device record: {system}"));
    assert_eq!(problem["status"], "closed", "{problem}");
    assert!(
        items_of(&problem, "log").iter().any(|r| r["comment"]
            .as_str()
            .is_some_and(|c| c.contains("service report") && c.contains(&format!("{old_serial} → {NEW_SERIAL}")))),
        "the service report's part in the case log: {problem}"
    );
    let disks = items_of(&system, "disks");
    assert_eq!(disks.len(), 1, "{system}");
    assert_eq!(disks[0]["serial"], NEW_SERIAL, "{system}");
    assert_eq!(disks[0]["verdict"], "healthy", "{system}");

    // No stale risk about the old disk.
    let stale: Vec<&Value> = items_of(&report, "open_risks")
        .into_iter()
        .filter(|r| r["component"] == old_key.as_str())
        .collect();
    assert!(
        stale.is_empty(),
        "open risks about the replaced disk {old_key} ({old_serial}): {stale:?}"
    );
    let recs: Vec<&Value> = items_of(&report, "recommendations")
        .into_iter()
        .filter(|r| r["part"].as_str().is_some_and(|p| p.contains(&old_serial)))
        .collect();
    assert!(recs.is_empty(), "recommendations for the replaced disk: {recs:?}");
    assert!(
        !report["advice"]
            .as_array()
            .is_some_and(|a| a.iter().any(|l| l.as_str().is_some_and(|l| l.contains(&old_serial)))),
        "advice about the replaced disk: {}",
        report["advice"]
    );
    eprintln!("the disk story took {:?}", started.elapsed());
}

/// A `systemctl` that lists `backup.service` as failed while `failed`
/// exists beside it, and no unit once it is gone (healthy units are not
/// listed); every call is appended to `calls.log`.
fn fake_systemctl(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{e}"));
    let script = dir.join("systemctl");
    std::fs::write(
        &script,
        r#"#!/bin/sh
D="$(dirname "$0")"
echo "$*" >> "$D/calls.log"
if [ -e "$D/failed" ]; then
  echo '[{"unit":"backup.service","load":"loaded","active":"failed","sub":"failed","description":"Nightly backup"}]'
else
  echo '[]'
fi
"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap_or_else(|e| panic!("{e}"));
    script
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_unit_fixed_by_a_rerun_recovers_and_resolves_by_itself() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let d = dir.path();
    let contracts_file = d.join("contracts.toml");
    std::fs::write(&contracts_file, contracts()).unwrap_or_else(|e| panic!("{e}"));
    let config = format!(
        "[queue]\ncontracts_file = \"{}\"\n[detect]\ntick_secs = 1\nmin_hold_secs = 2\nquiet_period_secs = 3\n",
        contracts_file.display()
    );
    let c = Collector::start_with_config(d, &config).await;

    // A host booted with systemd whose backup unit failed.
    let run = d.join("run");
    std::fs::create_dir_all(run.join("systemd/system")).unwrap_or_else(|e| panic!("{e}"));
    let fake = d.join("fake-systemctl");
    let systemctl = fake_systemctl(&fake);
    std::fs::write(fake.join("failed"), "").unwrap_or_else(|e| panic!("{e}"));
    let extra = format!(
        "run_root = \"{}\"\nsystemctl_path = \"{}\"\n",
        run.display(),
        systemctl.display()
    );
    let agent = Agent::start(d, &c, REPORT_SECS, &extra);
    wait_for_host(&c, &agent).await;

    let case = eventually("the systemd_unit_failed case", Duration::from_secs(20), || async {
        let v = c.api("/api/v1/cases?host=e2e-host").await;
        items_of(&v, "cases")
            .into_iter()
            .find(|i| i["rule"] == "systemd_unit_failed" && i["key"]["component"] == "backup.service")
            .cloned()
    })
    .await;
    let id = case["id"].as_i64().unwrap_or_else(|| panic!("case without id: {case}"));
    let case_url = format!("/api/v1/cases/{id}");
    assert!(case["active"] == true, "{case}");

    // Someone reruns the unit and it succeeds: systemctl lists no failed
    // unit any more. The agent runs systemctl at most once a minute, so it
    // sees that within a minute of its first listing (this sets the story's
    // length); 3 reports later the collector clears the gone series, and
    // the quiet period after that the untouched case resolves.
    std::fs::remove_file(fake.join("failed")).unwrap_or_else(|e| panic!("{e}"));
    let fixed_at = Instant::now();
    let v = eventually("the case resolved by itself", Duration::from_secs(80), || async {
        let v = c.api(&case_url).await;
        (v["status"] == "resolved").then_some(v)
    })
    .await;
    eprintln!(
        "resolved {:?} after the rerun, {:?} into the story",
        fixed_at.elapsed(),
        started.elapsed()
    );
    let log = v["log"].as_array().cloned().unwrap_or_default();
    let people: Vec<&Value> = log
        .iter()
        .filter(|r| r["actor"].as_str().is_some_and(|a| !a.starts_with("rule:")))
        .collect();
    assert!(people.is_empty(), "nobody touched it: {v}");
    let moves: Vec<(String, String)> = log
        .iter()
        .filter(|r| r["from_status"] != r["to_status"])
        .map(|r| {
            (
                r["from_status"].as_str().unwrap_or("-").to_string(),
                r["to_status"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(
        moves.last(),
        Some(&("recovered".to_string(), "resolved".to_string())),
        "recovered, then resolved after the quiet period: {v}"
    );
    assert!(
        moves.contains(&("assigned".to_string(), "recovered".to_string())),
        "the clear recovered it: {v}"
    );
    assert!(v["resolved_at_ms"].as_i64().is_some(), "{v}");
    assert!(reopenings(&v).is_empty(), "{v}");
    // The agent kept running and asked systemctl again.
    let calls = std::fs::read_to_string(fake.join("calls.log")).unwrap_or_default();
    assert!(calls.lines().count() >= 2, "{calls}");
    eprintln!("the unit story took {:?}", started.elapsed());
}
