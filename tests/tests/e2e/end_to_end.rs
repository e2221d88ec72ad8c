//! A collector and an agent on this host: the host appears in the API and in
//! `/metrics` with its labels and values that match the kernel's own view.

use std::time::Duration;

use crate::util::{Agent, Collector, eventually, wait_for_host};

fn meminfo_total_bytes() -> f64 {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let kb: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    kb * 1024.0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_reports_this_host_to_the_collector() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let collector = Collector::start(dir.path()).await;
    let agent = Agent::start(dir.path(), &collector, 1, "");
    let id = wait_for_host(&collector, &agent).await;

    // The API knows the host with its labels and inventory.
    let hosts = collector.api("/api/v1/hosts").await;
    let list = hosts["hosts"].as_array().cloned().unwrap_or_default();
    assert_eq!(list.len(), 1, "{hosts}");
    let h = &list[0];
    assert_eq!(h["agent_id"], id.as_str());
    assert_eq!(h["host"], "e2e-host");
    assert_eq!(h["labels"]["customer"], "acme");
    assert_eq!(h["labels"]["site"], "hq");
    assert_eq!(h["labels"]["role"], "db");
    assert_eq!(h["up"], true);
    assert_eq!(h["inventory"]["memory_bytes"].as_f64(), Some(meminfo_total_bytes()));
    let nproc = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0) as u64;
    assert_eq!(h["inventory"]["cpu_cores"].as_u64(), Some(nproc));

    // The asset archive has the host's configuration, and no change yet.
    let assets = collector.api("/api/v1/assets").await;
    let a = &assets["assets"][0];
    assert_eq!(a["agent_id"], id.as_str());
    assert_eq!(a["customer"], "acme");
    assert_eq!(a["memory_bytes"].as_f64(), Some(meminfo_total_bytes()));
    assert_eq!(a["changes"], 0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    assert_eq!(a["kernel"], kernel.trim());
    let asset = collector.api("/api/v1/assets/e2e-host").await;
    assert_eq!(asset["agent_id"], id.as_str());
    assert_eq!(
        asset["inventory"]["content_hash"].as_str().map(str::len),
        Some(64),
        "{asset}"
    );
    assert_eq!(asset["changes"], serde_json::json!([]));

    // /metrics carries the host's series with host/customer/site labels.
    let l = "host=\"e2e-host\",customer=\"acme\",site=\"hq\"";
    let mem = collector
        .metric_value(&format!("caretaker_memory_total_bytes{{{l}}}"))
        .await;
    assert_eq!(mem, Some(meminfo_total_bytes()), "memory total equals /proc/meminfo");
    assert_eq!(
        collector.metric_value(&format!("caretaker_cpu_cores{{{l}}}")).await,
        Some(nproc as f64)
    );
    assert_eq!(
        collector.metric_value(&format!("caretaker_host_up{{{l}}}")).await,
        Some(1.0)
    );
    let uptime = collector
        .metric_value(&format!("caretaker_uptime_seconds{{{l}}}"))
        .await
        .unwrap_or(0.0);
    let proc_uptime: f64 = std::fs::read_to_string("/proc/uptime")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    assert!(
        uptime > 0.0 && (proc_uptime - uptime).abs() < 30.0,
        "uptime {uptime} vs /proc/uptime {proc_uptime}"
    );
    let text = collector.metrics().await;
    let root_size = text
        .lines()
        .find(|s| s.starts_with("caretaker_filesystem_size_bytes{") && s.contains("mountpoint=\"/\""))
        .and_then(|s| s.rsplit(' ').next()?.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(root_size > 0.0, "root filesystem size missing:\n{text}");
    assert!(text.contains(
        "caretaker_network_receive_bytes_total{host=\"e2e-host\",customer=\"acme\",site=\"hq\",interface=\"lo\"}"
    ));
    assert!(text.contains("caretaker_agent_collector_success{host=\"e2e-host\",customer=\"acme\",site=\"hq\",collector=\"filesystem\"} 1"), "{text}");
    assert_eq!(collector.metric_value("caretaker_hosts_known").await, Some(1.0));

    // Reports keep coming, one sequence number after another.
    let first = collector.host(&id).await["last_seq"].as_u64().unwrap_or(0);
    let later = eventually("more reports", Duration::from_secs(15), || async {
        let seq = collector.host(&id).await["last_seq"].as_u64().unwrap_or(0);
        (seq >= first + 2).then_some(seq)
    })
    .await;
    let h = collector.host(&id).await;
    assert_eq!(h["reports_applied"].as_u64(), Some(h["last_seq"].as_u64().unwrap_or(0)));
    assert_eq!(h["seq_gaps"], 0);
    assert!(later > first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_host_goes_down_after_three_intervals() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let collector = Collector::start(dir.path()).await;
    let mut agent = Agent::start(dir.path(), &collector, 1, "");
    wait_for_host(&collector, &agent).await;
    let series = "caretaker_host_up{host=\"e2e-host\",customer=\"acme\",site=\"hq\"}";
    assert_eq!(collector.metric_value(series).await, Some(1.0));
    agent.stop();
    eventually("host_up 0", Duration::from_secs(15), || async {
        (collector.metric_value(series).await == Some(0.0)).then_some(())
    })
    .await;
    assert_eq!(collector.metric_value("caretaker_hosts_up").await, Some(0.0));
}
