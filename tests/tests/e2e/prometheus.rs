//! A real Prometheus scrapes the collector over TLS, and `promtool` checks the
//! exposition. Needs `CARETAKER_TEST_PROMETHEUS` and `CARETAKER_TEST_PROMTOOL`
//! (paths of the binaries; `.ci/run` sets them). When they are set, any
//! failure to run Prometheus fails the test.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

use caretaker_shared::catalogue::{CATALOGUE, Kind};
use serde_json::Value;

use crate::util::{
    Agent, Collector, eventually, prom_api, prom_query, start_prometheus, start_prometheus_with, wait_for_host,
};

fn tool(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Some(v),
        _ => {
            eprintln!("{var} is not set: skipping the Prometheus test");
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_collector() {
    let (Some(prometheus), Some(promtool)) = (tool("CARETAKER_TEST_PROMETHEUS"), tool("CARETAKER_TEST_PROMTOOL"))
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let collector = Collector::start(dir.path()).await;
    let agent = Agent::start(dir.path(), &collector, 1, "");
    wait_for_host(&collector, &agent).await;

    // promtool: no parse error; lint notes only about OpenMetrics counters
    // (their `_total` sample lines look help-less to the classic parser).
    let text = collector.metrics().await;
    let mut child = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{promtool}: {e}"));
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(text.as_bytes());
    }
    let out = child.wait_with_output().unwrap_or_else(|e| panic!("promtool: {e}"));
    let code = out.status.code();
    let notes = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(matches!(code, Some(0) | Some(3)), "promtool exit {code:?}: {notes}");
    let counters: Vec<String> = CATALOGUE
        .iter()
        .filter(|d| d.kind == Kind::Counter)
        .map(|d| d.sample_name())
        .collect();
    for line in notes.lines().filter(|l| !l.trim().is_empty()) {
        let ok = line
            .strip_suffix(" no help text")
            .is_some_and(|name| counters.iter().any(|c| c == name.trim()));
        assert!(ok, "unexpected promtool note: {line}");
    }

    // A real Prometheus scraping over TLS with the collector's CA.
    let (_prom, base) = start_prometheus(dir.path(), &collector, &prometheus);
    let client = reqwest::Client::new();
    eventually("up == 1", Duration::from_secs(60), || {
        let base = base.clone();
        async move {
            prom_query(&base, "up{job=\"caretaker\"} == 1")
                .await
                .filter(|r| r.len() == 1)
                .map(|_| ())
        }
    })
    .await;

    let targets: Value = client
        .get(format!("{base}/api/v1/targets"))
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .json()
        .await
        .unwrap_or(Value::Null);
    let t = &targets["data"]["activeTargets"][0];
    assert_eq!(t["health"], "up", "{targets}");
    assert_eq!(t["lastError"], "", "{targets}");

    let meminfo_kb: f64 = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    for (q, expect) in [
        (
            "caretaker_memory_total_bytes{host=\"e2e-host\",customer=\"acme\",site=\"hq\"}",
            Some(meminfo_kb * 1024.0),
        ),
        ("caretaker_host_up{host=\"e2e-host\"}", Some(1.0)),
        ("caretaker_hosts_known", Some(1.0)),
        (
            "rate(caretaker_network_receive_bytes_total{interface=\"lo\"}[1m])",
            None,
        ),
        ("caretaker_ingest_reports_accepted_total", None),
    ] {
        let result = eventually(q, Duration::from_secs(30), || {
            let base = base.clone();
            async move { prom_query(&base, q).await.filter(|r| !r.is_empty()) }
        })
        .await;
        let value: f64 = result[0]["value"][1]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or(f64::NAN);
        assert!(!value.is_nan(), "{q} is NaN");
        if let Some(e) = expect {
            assert_eq!(value, e, "{q}");
        }
    }
    // Scrape health from Prometheus's own series.
    let fails = prom_query(&base, "scrape_samples_post_metric_relabeling{job=\"caretaker\"} > 0")
        .await
        .unwrap_or_default();
    assert_eq!(fails.len(), 1);
}

/// A Prometheus scraping without the collector's metrics token gets 401:
/// the target is down and says why, and it stores no collector series.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_without_the_metrics_token_is_refused() {
    let Some(prometheus) = tool("CARETAKER_TEST_PROMETHEUS") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let collector = Collector::start(dir.path()).await;
    let (_prom, base) = start_prometheus_with(dir.path(), &collector, &prometheus, "");
    let target = eventually("a failed scrape", Duration::from_secs(60), || {
        let base = base.clone();
        async move {
            let t = prom_api(&base, "targets", &[]).await?["activeTargets"][0].clone();
            (t["health"] == "down").then_some(t)
        }
    })
    .await;
    let error = target["lastError"].as_str().unwrap_or_default();
    assert!(error.contains("401"), "{target}");
    let series = prom_query(&base, "caretaker_hosts_known").await.unwrap_or_default();
    assert!(series.is_empty(), "{series:?}");
}
