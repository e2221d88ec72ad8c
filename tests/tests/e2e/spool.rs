//! The collector goes away for a while; the agent keeps collecting into its
//! spool; when the collector is back every report arrives, in order, once.

use std::time::Duration;

use serde_json::Value;

use crate::util::{Agent, Collector, eventually, wait_for_host};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_made_while_the_collector_is_down_arrive_in_order_once() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut collector = Collector::start(dir.path()).await;
    let agent = Agent::start(dir.path(), &collector, 1, "");
    let id = wait_for_host(&collector, &agent).await;

    collector.stop();
    let down_at = caretaker_shared::now_ms();
    // The agent spools while nobody listens.
    eventually("spooled reports", Duration::from_secs(20), || async {
        (agent.spool_depth() >= 4).then_some(())
    })
    .await;
    let up_at = caretaker_shared::now_ms();
    collector.spawn().await;

    eventually("spool drained", Duration::from_secs(30), || async {
        (agent.spool_depth() == 0).then_some(())
    })
    .await;
    let h = collector.host(&id).await;
    let last = h["last_seq"].as_u64().unwrap_or(0);
    assert_eq!(
        h["reports_applied"].as_u64(),
        Some(last),
        "every sequence number applied exactly once: {h}"
    );
    assert_eq!(h["seq_gaps"], 0, "{h}");

    let log = collector.api(&format!("/api/v1/hosts/{id}/reports?limit=10000")).await;
    let mut entries: Vec<Value> = log["reports"].as_array().cloned().unwrap_or_default();
    entries.reverse();
    let seqs: Vec<u64> = entries.iter().filter_map(|e| e["seq"].as_u64()).collect();
    let expected: Vec<u64> = (1..=last).collect();
    assert_eq!(seqs, expected, "one entry per sequence number");
    // Reports collected during the outage were received after it, in order.
    let during: Vec<&Value> = entries
        .iter()
        .filter(|e| e["collected_at_ms"].as_i64().is_some_and(|t| t > down_at && t < up_at))
        .collect();
    assert!(
        during.len() >= 3,
        "reports collected during the outage: {}",
        during.len()
    );
    let received: Vec<i64> = entries.iter().filter_map(|e| e["received_at_ms"].as_i64()).collect();
    assert!(received.windows(2).all(|w| w[0] <= w[1]), "received in sequence order");
    assert!(
        during
            .iter()
            .all(|e| e["received_at_ms"].as_i64().unwrap_or(0) >= up_at - 1000)
    );
    let m = collector.metrics().await;
    assert!(
        m.contains("caretaker_agent_spool_dropped_total{host=\"e2e-host\",customer=\"acme\",site=\"hq\"} 0"),
        "{m}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_spool_drops_the_oldest_and_says_so() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut collector = Collector::start(dir.path()).await;
    let agent = Agent::start(dir.path(), &collector, 1, "[spool]\nmax_reports = 3\n");
    let id = wait_for_host(&collector, &agent).await;
    collector.stop();
    // Wait for more reports than the spool holds.
    let counters = agent.state_dir.join("counters.json");
    eventually("drops", Duration::from_secs(30), || async {
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&counters).ok()?).ok()?;
        (v["spool_dropped_total"].as_u64()? >= 2).then_some(())
    })
    .await;
    assert!(agent.spool_depth() <= 3);
    collector.spawn().await;
    let series = "caretaker_agent_spool_dropped_total{host=\"e2e-host\",customer=\"acme\",site=\"hq\"}";
    let dropped = eventually("dropped count exposed", Duration::from_secs(30), || async {
        collector.metric_value(series).await.filter(|v| *v >= 2.0)
    })
    .await;
    let h = collector.host(&id).await;
    assert!(
        h["seq_gaps"].as_f64().unwrap_or(0.0) >= dropped.min(2.0),
        "dropped reports show as gaps: {h}"
    );
}
