//! The agent's state dir fills up: the real agent, its state dir on a small
//! tmpfs that the test fills, reporting to a real collector. The agent keeps
//! reporting from memory and says so, the collector opens a finding, a
//! restart meanwhile reuses no sequence number, and freeing the space ends
//! it all by itself.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::util::{Agent, Collector, eventually, mount_tmpfs, wait_for_host};

const RULE: &str = "agent_state_write_failed";

/// Fills the filesystem of `dir` to the last byte (again, when something
/// there freed space since).
fn fill(dir: &Path) {
    let Ok(mut f) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("filler"))
    else {
        return;
    };
    let chunk = vec![0u8; 4096];
    while f.write_all(&chunk).is_ok() {}
    let _ = f.sync_all();
}

/// The `agent_state_write_failed` findings of the host.
async fn findings(c: &Collector) -> Vec<Value> {
    let v = c.api("/api/v1/findings?status=all&host=e2e-host").await;
    v["findings"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|i| i["rule"] == RULE)
        .collect()
}

fn log_of(agent: &Agent) -> String {
    std::fs::read_to_string(&agent.log).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_state_dir_does_not_stop_the_agent_and_reuses_no_sequence_number() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let d = dir.path();
    let state_dir = d.join("agent-state");
    let Some(_mounted) = mount_tmpfs(&state_dir, "1m") else {
        return;
    };
    let c =
        Collector::start_with_config(d, "[detect]\ntick_secs = 1\nmin_hold_secs = 2\nquiet_period_secs = 3\n").await;
    let mut agent = Agent::start(d, &c, 1, "");
    let id = wait_for_host(&c, &agent).await;
    let host_url = format!("/api/v1/hosts/{id}");

    // The disk fills up. Reports delivered from the spool free a little
    // space now and then: fill again until the agent is told to be failing.
    let opened = eventually("the finding for the full state dir", Duration::from_secs(30), || {
        fill(&state_dir);
        let c = &c;
        async move {
            let f = findings(c).await;
            f.into_iter().find(|i| i["active"] == true)
        }
    })
    .await;
    assert_eq!(opened["severity"], "major", "{opened}");
    assert!(
        agent.running(),
        "the agent stopped on a full disk; log:\n{}",
        log_of(&agent)
    );
    let log = log_of(&agent);
    assert!(log.contains("cannot write the agent state"), "{log}");
    assert!(log.contains("No space left on device"), "{log}");

    // Reports keep coming from memory.
    let before = c.host(&id).await["last_seq"].as_u64().unwrap_or(0);
    eventually("reports from memory", Duration::from_secs(20), || {
        fill(&state_dir);
        let c = &c;
        let url = host_url.clone();
        async move { (c.api(&url).await["last_seq"].as_u64()? >= before + 2).then_some(()) }
    })
    .await;

    // Restarted while the disk is still full (as systemd would): the saved
    // counter is behind what the collector applied.
    fill(&state_dir);
    let applied_before_restart = c.host(&id).await["last_seq"].as_u64().unwrap_or(0);
    agent.stop();
    agent.spawn();
    eventually("reports after the restart", Duration::from_secs(30), || {
        fill(&state_dir);
        let c = &c;
        let url = host_url.clone();
        async move { (c.api(&url).await["last_seq"].as_u64()? >= applied_before_restart + 3).then_some(()) }
    })
    .await;
    assert!(agent.running(), "{}", log_of(&agent));
    let log = log_of(&agent);
    assert!(log.contains("renumbering the queued reports"), "{log}");

    // Space comes back: the agent writes again and the finding's signal
    // clears (a finding keeps its status for people to close; the
    // inspection report shows it cleared).
    let freed_at = caretaker_shared::now_ms();
    std::fs::remove_file(state_dir.join("filler")).unwrap_or_else(|e| panic!("{e}"));
    let cleared = eventually("the finding cleared", Duration::from_secs(30), || {
        let c = &c;
        async move {
            let f = findings(c).await;
            let clear = |i: &Value| {
                i["cleared_at_ms"]
                    .as_i64()
                    .is_some_and(|t| t >= freed_at && t > i["last_firing_at_ms"].as_i64().unwrap_or(i64::MAX))
            };
            (!f.is_empty() && f.iter().all(clear)).then_some(f)
        }
    })
    .await;
    assert_eq!(cleared.len(), 1, "one finding for the whole episode: {cleared:?}");
    assert_eq!(cleared[0]["id"], opened["id"]);
    let counters: Value = eventually("the counter saved again", Duration::from_secs(10), || async {
        serde_json::from_str(&std::fs::read_to_string(state_dir.join("counters.json")).ok()?).ok()
    })
    .await;
    let h = c.host(&id).await;
    let last = h["last_seq"].as_u64().unwrap_or(0);
    assert!(
        counters["next_seq"].as_u64().is_some_and(|n| n > last),
        "the saved counter is past every applied number: {counters} {h}"
    );
    eventually("reports after the recovery", Duration::from_secs(20), || {
        let c = &c;
        let url = host_url.clone();
        async move { (c.api(&url).await["last_seq"].as_u64()? >= last + 2).then_some(()) }
    })
    .await;
    assert!(log_of(&agent).contains("the agent state can be written again"));

    // Every applied report has its own number, in the order it was
    // collected: nothing collected after the restart was numbered below
    // what the collector had, and at most the one report that told the
    // agent so was refused as a duplicate.
    let log = c.api(&format!("{host_url}/reports?limit=10000")).await;
    let mut entries: Vec<Value> = log["reports"].as_array().cloned().unwrap_or_default();
    entries.sort_by_key(|e| e["seq"].as_u64());
    let seqs: Vec<u64> = entries.iter().filter_map(|e| e["seq"].as_u64()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let collected: Vec<i64> = entries.iter().filter_map(|e| e["collected_at_ms"].as_i64()).collect();
    assert!(
        collected.windows(2).all(|w| w[0] <= w[1]),
        "a later report under a lower number: {entries:?}"
    );
    let duplicates = c
        .metric_value("caretaker_ingest_reports_duplicate_total")
        .await
        .unwrap_or(0.0);
    assert!(duplicates <= 1.0, "{duplicates} reports refused as duplicates");
    let h = c.host(&id).await;
    assert_eq!(
        h["reports_applied"].as_u64().unwrap_or(0) + h["seq_gaps"].as_u64().unwrap_or(0),
        h["last_seq"].as_u64().unwrap_or(0),
        "{h}"
    );
}
