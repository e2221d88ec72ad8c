//! A full disk under the store, on the real binaries: the collector's data
//! directory on a small tmpfs, filled up while a real agent reports.

use std::io::Write;
use std::time::Duration;

use caretaker_tests::{enroll, gzip, synthetic_report};

use crate::util::{Agent, Collector, eventually, wait_for_host};

/// Fills the filesystem holding `file` until it has no space left.
fn fill(file: &std::path::Path) {
    let mut f = std::fs::File::create(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let chunk = vec![0u8; 64 * 1024];
    while f.write_all(&chunk).is_ok() {}
    // The last bytes that fit, page by page.
    while f.write_all(&chunk[..4096]).is_ok() {}
    let _ = f.sync_all();
}

/// The status, `Retry-After` and body of a GET or POST.
async fn answer(resp: reqwest::Response) -> (u16, Option<String>, String) {
    let status = resp.status().as_u16();
    let retry = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    (status, retry, resp.text().await.unwrap_or_default())
}

async fn healthz(c: &Collector) -> (u16, Option<String>, String) {
    match c.client.get(format!("{}/healthz", c.url())).send().await {
        Ok(r) => answer(r).await,
        Err(e) => panic!("GET /healthz: {e}"),
    }
}

/// While the store's disk was full, ingest answered 500 (agents saw a server
/// fault, load balancers nothing) and `/healthz` answered "ok".
#[tokio::test]
async fn a_full_store_answers_503_with_retry_after_and_recovers() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    // Declared first, dropped last: unmounted once the processes are gone.
    let Some(_mounted) = crate::util::mount_tmpfs(&dir.path().join("data"), "8m") else {
        return;
    };
    let c = Collector::start_sqlite(dir.path()).await;
    let agent = Agent::start(dir.path(), &c, 1, "");
    let agent_id = wait_for_host(&c, &agent).await;
    let other = enroll(&c.client, &c.url(), &c.enrollment_token, "other")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let seq_before = c.host(&agent_id).await["last_seq"].as_u64().unwrap_or(0);

    let filler = c.data_dir().join("filler");
    fill(&filler);

    // The agent's next report cannot be stored: /healthz says so.
    let (_, retry, reason) = eventually("/healthz answering 503", Duration::from_secs(60), || async {
        let (status, retry, body) = healthz(&c).await;
        (status == 503).then_some((status, retry, body))
    })
    .await;
    assert!(
        retry.is_some_and(|r| r.parse::<u64>().is_ok_and(|s| s > 0)),
        "Retry-After"
    );
    assert!(reason.contains("full"), "{reason}");

    // Ingest answers 503 with Retry-After, not 500.
    let body = gzip(&serde_json::to_vec(&synthetic_report(&other.agent_id, "other", 1, 20)).unwrap_or_default());
    let resp = c
        .client
        .post(format!("{}/api/v1/reports", c.url()))
        .bearer_auth(&other.credential)
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let (status, retry, text) = answer(resp).await;
    assert_eq!(status, 503, "{text}");
    assert!(retry.is_some(), "Retry-After");
    assert!(text.contains("full"), "{text}");

    // The agent keeps its reports meanwhile.
    eventually("reports spooled on the agent", Duration::from_secs(30), || async {
        (agent.spool_depth() >= 3).then_some(())
    })
    .await;

    // Space again: both recover, and every spooled report arrives.
    std::fs::remove_file(&filler).unwrap_or_else(|e| panic!("{e}"));
    eventually("/healthz answering ok", Duration::from_secs(30), || async {
        (healthz(&c).await.0 == 200).then_some(())
    })
    .await;
    eventually("the spool delivered", Duration::from_secs(60), || async {
        (agent.spool_depth() == 0).then_some(())
    })
    .await;
    let h = c.host(&agent_id).await;
    let last = h["last_seq"].as_u64().unwrap_or(0);
    assert!(last >= seq_before + 3, "{h}");
    assert_eq!(h["seq_gaps"], 0, "no report was lost: {h}");
    assert_eq!(h["reports_applied"].as_u64(), Some(last), "{h}");
    let log = std::fs::read_to_string(dir.path().join("collector.log")).unwrap_or_default();
    assert!(log.contains("the store cannot write"), "the failure is logged");
    assert!(log.contains("the store can write again"), "and the recovery");
}
