//! What an agent claims is checked, not believed: its inventory's content
//! hash (the collector compares the configurations), its clock (a report
//! dated in 2100 or at `i64::MAX` is dated at receipt and opens an
//! `agent_clock_skew` finding), and the report log counts what was sent.
//! The hostile agent is a client with a real credential posting its own
//! reports to the real collector over TLS; the honest one is the real agent.

use std::collections::BTreeMap;
use std::time::Duration;

use caretaker_shared::wire::{Inventory, PROTOCOL_VERSION, Report, Sample};
use caretaker_tests::{Enrolled, enroll, gzip, post_report};
use serde_json::{Value, json};

use crate::util::{Agent, Collector, eventually, wait_for_host};

/// 2100-01-01T00:00:00Z.
const Y2100: i64 = 4_102_444_800_000;

fn report(agent_id: &str, seq: u64, at_ms: i64, kernel: &str) -> Report {
    Report {
        version: PROTOCOL_VERSION,
        agent_id: agent_id.into(),
        seq,
        collected_at_ms: at_ms,
        interval_secs: 60,
        host: "claims-host".into(),
        labels: BTreeMap::from([("customer".into(), "acme".into())]),
        samples: vec![Sample {
            metric: "caretaker_memory_total_bytes".into(),
            labels: BTreeMap::new(),
            value: 1.0,
        }],
        events: vec![],
        inventory: Some(Inventory {
            hostname: "claims-host".into(),
            kernel: kernel.into(),
            // Whatever changes, the agent claims the same configuration.
            content_hash: "0".repeat(64),
            ..Inventory::default()
        }),
        disks: None,
    }
}

async fn send(c: &Collector, a: &Enrolled, r: &Report) {
    let (status, v) = post_report(
        &c.client,
        &c.url(),
        &a.credential,
        gzip(&serde_json::to_vec(r).unwrap_or_default()),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(status, 200, "report {} accepted: {v}", r.seq);
}

async fn enrolled(c: &Collector) -> Enrolled {
    enroll(&c.client, &c.url(), &c.enrollment_token, "claims-host")
        .await
        .unwrap_or_else(|e| panic!("{e}"))
}

/// `(kind, new, at_ms)` of the asset's changes, newest first.
async fn changes(c: &Collector, agent_id: &str) -> Vec<(String, String, i64)> {
    let v = c.api(&format!("/api/v1/assets/{agent_id}")).await;
    v["changes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            (
                c["kind"].as_str().unwrap_or("").to_string(),
                c["new"].as_str().unwrap_or("").to_string(),
                c["at_ms"].as_i64().unwrap_or(0),
            )
        })
        .collect()
}

async fn clock_findings(c: &Collector, host: &str) -> Vec<Value> {
    let v = c.api(&format!("/api/v1/findings?host={host}&status=all")).await;
    v["findings"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|f| f["key"]["check"] == "agent_clock_skew")
        .cloned()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inventory_changes_under_an_unchanged_agent_hash_are_archived() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let c = Collector::start(dir.path()).await;
    let a = enrolled(&c).await;
    let kernels = ["6.1.0-18-amd64", "6.1.0-19-amd64", "6.1.0-20-amd64", "6.1.0-21-amd64"];
    for (i, k) in kernels.iter().enumerate() {
        send(
            &c,
            &a,
            &report(&a.agent_id, i as u64 + 1, caretaker_shared::now_ms(), k),
        )
        .await;
    }
    let got: Vec<(String, String)> = changes(&c, &a.agent_id)
        .await
        .into_iter()
        .map(|(k, n, _)| (k, n))
        .collect();
    let want: Vec<(String, String)> = kernels[1..]
        .iter()
        .rev()
        .map(|k| ("kernel_changed".to_string(), k.to_string()))
        .collect();
    assert_eq!(got, want, "every kernel change archived");
    let asset = c.api(&format!("/api/v1/assets/{}", a.agent_id)).await;
    assert_eq!(asset["kernel"], kernels[3], "{asset}");
    assert_ne!(
        asset["inventory"]["content_hash"].as_str(),
        Some("0".repeat(64).as_str()),
        "the archive holds the collector's own hash"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clock_in_2100_or_at_i64_max_is_dated_at_receipt_and_opens_a_clock_skew_finding() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let c = Collector::start(dir.path()).await;
    let a = enrolled(&c).await;
    let started = caretaker_shared::now_ms();
    send(&c, &a, &report(&a.agent_id, 1, started, "6.1.0-18")).await;
    assert!(clock_findings(&c, "claims-host").await.is_empty());

    for (seq, at, kernel) in [(2, Y2100, "6.1.0-19"), (3, i64::MAX, "6.1.0-20")] {
        let before = caretaker_shared::now_ms();
        send(&c, &a, &report(&a.agent_id, seq, at, kernel)).await;
        let after = caretaker_shared::now_ms();
        let newest = changes(&c, &a.agent_id).await.into_iter().next();
        let (kind, new, at_ms) = newest.unwrap_or_default();
        assert_eq!((kind.as_str(), new.as_str()), ("kernel_changed", kernel));
        assert!(
            (before..=after).contains(&at_ms),
            "dated at receipt ({before}..={after}), not {at_ms}"
        );
        let f = clock_findings(&c, "claims-host").await;
        assert_eq!(f.len(), 1, "one finding: {f:?}");
        assert_eq!(f[0]["status"], "open", "{f:?}");
        assert!(f[0]["cleared_at_ms"].is_null(), "{f:?}");
    }
    // The collector still runs and answers (no overflow on i64::MAX).
    let h = c.host(&a.agent_id).await;
    assert_eq!(h["last_seq"], 3, "{h}");

    // This month's inspection report has both changes.
    let (status, v) = c
        .api_post(
            "/api/v1/reports/inspection",
            &json!({"customer": "acme", "from": month_start(started), "to": caretaker_shared::now_ms()}),
        )
        .await;
    assert_eq!(status.as_u16(), 201, "{v}");
    let r = c.api(&format!("/api/v1/reports/inspection/{}", v["id"])).await;
    let text = r["systems"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|s| s["agent_id"] == a.agent_id.as_str())
        .map(|s| s["changes"].to_string())
        .unwrap_or_default();
    assert!(text.contains("6.1.0-19") && text.contains("6.1.0-20"), "{r}");

    // The clock is right again: the finding clears.
    send(&c, &a, &report(&a.agent_id, 4, caretaker_shared::now_ms(), "6.1.0-20")).await;
    let f = clock_findings(&c, "claims-host").await;
    assert_eq!(f.len(), 1, "{f:?}");
    assert!(f[0]["cleared_at_ms"].is_i64(), "cleared: {f:?}");
}

/// The first instant of the UTC month of `ms`: where the previous month ends.
fn month_start(ms: i64) -> i64 {
    caretaker_collector::report::schedule::previous_month(ms).to_ms
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_log_samples_are_not_always_zero() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let c = Collector::start(dir.path()).await;
    let agent = Agent::start(dir.path(), &c, 1, "");
    let id = wait_for_host(&c, &agent).await;
    let entries = eventually("two reports logged", Duration::from_secs(20), || async {
        let log = c.api(&format!("/api/v1/hosts/{id}/reports")).await;
        let entries = log["reports"].as_array().cloned().unwrap_or_default();
        (entries.len() >= 2).then_some(entries)
    })
    .await;
    for e in &entries {
        assert!(e["samples"].as_u64().is_some_and(|n| n > 10), "samples counted: {e}");
    }
    // The real agent's clock (and its Date header) is believed.
    assert!(clock_findings(&c, "e2e-host").await.is_empty());
}
