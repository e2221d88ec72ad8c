//! The benchmark binaries run end to end and print sane figures, so they
//! cannot rot unnoticed. Nothing here looks at timings: the figures that
//! matter are measured in release builds (BENCHMARKS.md).

use std::process::Command;

use serde_json::Value;

use crate::util::{Collector, bin};

/// The JSON summary line a benchmark prints last.
fn summary(stdout: &[u8]) -> Value {
    String::from_utf8_lossy(stdout)
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<Value>(l).ok())
        .unwrap_or(Value::Null)
}

fn positive(v: &Value, key: &str) -> f64 {
    let x = v[key].as_f64().unwrap_or(f64::NAN);
    assert!(x.is_finite() && x > 0.0, "{key} = {x} in {v}");
    x
}

#[test]
fn detect_bench_runs_on_a_small_fleet() {
    let out = Command::new(bin("caretaker-detect-bench"))
        .args(["--hosts", "10", "--reports", "40", "--history-hours", "2", "--digest"])
        .output()
        .unwrap_or_else(|e| panic!("caretaker-detect-bench: {e}"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v = summary(&out.stdout);
    assert_eq!(v["hosts"], 10, "{v}");
    assert_eq!(v["reports"], 40, "{v}");
    assert_eq!(
        v["rules"].as_u64(),
        Some(caretaker_collector::rules::builtin().len() as u64)
    );
    let samples = positive(&v, "samples_per_report");
    assert!((150.0..300.0).contains(&samples), "an agent-sized report: {v}");
    positive(&v, "mean_us");
    positive(&v, "p99_us");
    positive(&v, "signals_per_report");
    positive(&v, "tick_ms");
    assert!(v["rss_bytes_per_host"].as_f64().is_some(), "{v}");
    assert!(v.get("heap_bytes_per_host").is_some(), "{v}");
    // Every rule reading a series has state for it.
    let series = positive(&v, "series_per_host");
    assert!(series > 10.0, "{v}");
    assert!(positive(&v, "points_per_host") >= series, "{v}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("signals digest: "));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn case_latency_sees_its_cases() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let c = Collector::start(dir.path()).await;
    let out = Command::new(bin("caretaker-case-latency"))
        .args([
            "--url",
            &c.url(),
            "--token",
            &c.enrollment_token,
            "--api-token",
            &c.api_token,
        ])
        .arg("--ca")
        .arg(c.data_dir().join("ca.pem"))
        .args(["--probes", "2", "--background", "1", "--samples", "50"])
        .output()
        .unwrap_or_else(|e| panic!("caretaker-case-latency: {e}"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let v = summary(&out.stdout);
    assert_eq!(v["probes"], 2, "{v}");
    positive(&v, "p50_ms");
    positive(&v, "max_ms");
    // The cases are really there, one per probe.
    let cases = c.api("/api/v1/cases").await;
    let probes = cases["cases"]
        .as_array()
        .map(|a| a.iter().filter(|i| i["key"]["check"] == "md_array_degraded").count());
    assert_eq!(probes, Some(2), "{cases}");
}
