//! SIGKILL in the middle of ingest: the store opens again and every report
//! the collector acknowledged is there.

use std::sync::Arc;
use std::time::Duration;

use caretaker_tests::{enroll, gzip, post_report, synthetic_report};
use tokio::sync::Mutex;

use crate::util::Collector;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_acknowledged_is_lost_to_sigkill() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut c = Collector::start(dir.path()).await;
    let url = c.url();
    let mut agents = Vec::new();
    for i in 0..8 {
        agents.push(
            enroll(&c.client, &url, &c.enrollment_token, &format!("crash-{i}"))
                .await
                .unwrap_or_else(|e| panic!("{e}")),
        );
    }
    // Highest acknowledged sequence number per agent.
    let acked = Arc::new(Mutex::new(vec![0u64; agents.len()]));
    let mut tasks = Vec::new();
    for (i, a) in agents.iter().cloned().enumerate() {
        let client = c.client.clone();
        let url = url.clone();
        let acked = acked.clone();
        tasks.push(tokio::spawn(async move {
            for seq in 1..=100_000u64 {
                let r = synthetic_report(&a.agent_id, &format!("crash-{i}"), seq, 200);
                let body = gzip(&serde_json::to_vec(&r).unwrap_or_default());
                match post_report(&client, &url, &a.credential, body).await {
                    Ok((200, _)) => acked.lock().await[i] = seq,
                    _ => return,
                }
            }
        }));
    }
    // Let ingest run, then kill the collector without warning.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    c.kill();
    for t in tasks {
        let _ = t.await;
    }
    let acked = acked.lock().await.clone();
    assert!(acked.iter().all(|n| *n > 0), "ingest was running: {acked:?}");

    c.spawn().await;
    for (i, (a, n)) in agents.iter().zip(&acked).enumerate() {
        let h = c.host(&a.agent_id).await;
        let last = h["last_seq"].as_u64().unwrap_or(0);
        assert!(
            last >= *n,
            "agent {} acknowledged up to {n} but the store has {last}",
            a.agent_id
        );
        assert_eq!(h["reports_applied"].as_u64(), Some(last));
        // The next report continues the sequence (as the host it enrolled as).
        let r = synthetic_report(&a.agent_id, &format!("crash-{i}"), last + 1, 10);
        let (s, _) = post_report(
            &c.client,
            &url,
            &a.credential,
            gzip(&serde_json::to_vec(&r).unwrap_or_default()),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s, 200);
    }
}
