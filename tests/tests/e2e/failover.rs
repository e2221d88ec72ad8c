//! The agent is given the collector's replicas, the first two of which are
//! no use: one refuses connections, one is not TLS. It enrolls with and
//! reports to the third, and every report arrives once, in order.

use std::io::Write;
use std::time::Duration;

use serde_json::Value;

use crate::util::{Agent, Collector, eventually, free_port, wait_for_host};

/// An address that takes connections and answers with plain text, not TLS:
/// the agent's handshake fails there.
fn not_tls() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let port = listener
        .local_addr()
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("{e}"));
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let _ = conn.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
        }
    });
    format!("https://127.0.0.1:{port}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_passes_over_dead_replicas_and_every_report_arrives_once() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let collector = Collector::start(dir.path()).await;
    let refusing = format!("https://127.0.0.1:{}", free_port());
    let urls = [refusing.clone(), not_tls(), collector.url()];
    let mut agent = Agent::start_with_replicas(dir.path(), &collector, &urls, 1);
    let id = wait_for_host(&collector, &agent).await;

    let c = &collector;
    let path = format!("/api/v1/hosts/{id}");
    eventually("five reports applied", Duration::from_secs(30), || {
        let path = path.clone();
        async move { (c.api(&path).await["last_seq"].as_u64()? >= 5).then_some(()) }
    })
    .await;
    agent.stop();

    let h = collector.host(&id).await;
    let last = h["last_seq"].as_u64().unwrap_or(0);
    assert_eq!(
        h["reports_applied"].as_u64(),
        Some(last),
        "each sequence number applied once: {h}"
    );
    assert_eq!(h["seq_gaps"], 0, "{h}");
    let log = collector.api(&format!("/api/v1/hosts/{id}/reports?limit=10000")).await;
    let mut entries: Vec<Value> = log["reports"].as_array().cloned().unwrap_or_default();
    entries.reverse();
    let seqs: Vec<u64> = entries.iter().filter_map(|e| e["seq"].as_u64()).collect();
    assert_eq!(seqs, (1..=last).collect::<Vec<_>>(), "one entry per sequence number");

    // The credential names the replica that enrolled the agent.
    let cred: Value = std::fs::read_to_string(agent.state_dir.join("credential.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    assert_eq!(cred["collector_url"], collector.url(), "{cred}");
    let log = agent.log_text();
    assert!(
        log.contains("moving to the next one") && log.contains(&refusing),
        "the moves are logged: {log}"
    );
}
