//! One host flooding detection (issue 21, item 8): large reports back to
//! back, every label value new in each, from an enrolled agent. Another
//! host's critical fault still gets its case, the flooding host's series
//! stay within their bound (counted), and SIGTERM in the middle of it stops
//! the collector within the unit's stop timeout.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use caretaker_shared::wire::{Inventory, PROTOCOL_VERSION, Report, Sample};

use crate::util::{Collector, eventually};

/// `TimeoutStopSec` of packaging/systemd/caretaker-collector.service.
const UNIT_STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// Series of the flooding host kept at most (the collector's config).
const BOUND: usize = 2_000;

fn sample(metric: &str, labels: &[(&str, &str)], value: f64) -> Sample {
    Sample {
        metric: metric.into(),
        labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        value,
    }
}

fn body(r: &Report) -> Vec<u8> {
    caretaker_tests::gzip(&serde_json::to_vec(r).unwrap_or_default())
}

fn report(agent_id: &str, host: &str, seq: u64, samples: Vec<Sample>) -> Report {
    Report {
        version: PROTOCOL_VERSION,
        agent_id: agent_id.into(),
        seq,
        collected_at_ms: caretaker_shared::now_ms(),
        interval_secs: 15,
        host: host.into(),
        labels: [("customer".to_string(), host.to_string())].into(),
        samples,
        events: Vec::new(),
        inventory: None,
        disks: None,
    }
}

/// 20,000 samples (the most a report may carry) the rules read, every label
/// value new with `seq`: failed units and filesystems named after the report.
fn flood_report(agent_id: &str, seq: u64) -> Vec<u8> {
    let mut samples = Vec::with_capacity(20_000);
    for i in 0..6_800 {
        let unit = format!("job-{seq}-{i}.service");
        samples.push(sample("caretaker_systemd_unit_failed", &[("unit", &unit)], 0.0));
    }
    for i in 0..6_600 {
        let mp = format!("/srv/{seq}/{i}");
        let labels = [("mountpoint", mp.as_str()), ("device", "/dev/sdz1"), ("fstype", "ext4")];
        samples.push(sample("caretaker_filesystem_avail_bytes", &labels, 6e9));
        samples.push(sample("caretaker_filesystem_size_bytes", &labels, 1e10));
    }
    body(&report(agent_id, "flood", seq, samples))
}

/// The quiet host's report: its md array degraded or not; the healthy one
/// carries the inventory, so the host is a known asset whose fault opens a case.
fn quiet_report(agent_id: &str, seq: u64, degraded: bool) -> Vec<u8> {
    let md = sample(
        "caretaker_md_degraded",
        &[("device", "md0")],
        if degraded { 1.0 } else { 0.0 },
    );
    let mut r = report(agent_id, "quiet", seq, vec![md]);
    if !degraded {
        r.inventory = Some(Inventory {
            hostname: "quiet".into(),
            machine_id: "0123456789abcdef0123456789abcdef".into(),
            ..Inventory::default()
        });
    }
    body(&r)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_host_delays_neither_another_hosts_case_nor_the_stop() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let config = format!("[detect]\ntick_secs = 1\nmax_series_per_host = {BOUND}\n");
    let mut c = Collector::start_with_config(dir.path(), &config).await;
    let enroll = |host: &'static str| {
        let (client, url, token) = (c.client.clone(), c.url(), c.enrollment_token.clone());
        async move {
            caretaker_tests::enroll(&client, &url, &token, host)
                .await
                .unwrap_or_else(|e| panic!("enroll {host}: {e}"))
        }
    };
    let (flood, quiet) = (enroll("flood").await, enroll("quiet").await);
    let (client, url) = (c.client.clone(), c.url());
    let post = move |cred: String, body: Vec<u8>| {
        let (client, url) = (client.clone(), url.clone());
        async move { caretaker_tests::post_report(&client, &url, &cred, body).await }
    };
    let (status, v) = post(quiet.credential.clone(), quiet_report(&quiet.agent_id, 1, false))
        .await
        .unwrap_or_else(|e| panic!("post: {e}"));
    assert_eq!(status, 200, "{v}");

    // The flood: reports back to back until the collector stops taking them.
    let stop = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(AtomicU64::new(0));
    let flooding = {
        let (stop, accepted, post) = (stop.clone(), accepted.clone(), post.clone());
        let (cred, agent_id) = (flood.credential.clone(), flood.agent_id.clone());
        tokio::spawn(async move {
            let mut seq = 0;
            while !stop.load(Ordering::Relaxed) {
                seq += 1;
                match post(cred.clone(), flood_report(&agent_id, seq)).await {
                    Ok((200, _)) => {
                        accepted.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) => {}
                    // The collector stopping.
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        })
    };
    eventually("the flood under way", Duration::from_secs(60), || {
        let accepted = accepted.clone();
        async move { (accepted.load(Ordering::Relaxed) >= 10).then_some(()) }
    })
    .await;

    // The quiet host's array degrades while the flood goes on: its case
    // opens without waiting for the flood's backlog.
    let (status, v) = post(quiet.credential.clone(), quiet_report(&quiet.agent_id, 2, true))
        .await
        .unwrap_or_else(|e| panic!("post: {e}"));
    assert_eq!(status, 200, "{v}");
    eventually(
        "the quiet host's md case during the flood",
        Duration::from_secs(90),
        || async {
            let v = c.api("/api/v1/cases?host=quiet").await;
            v["cases"]
                .as_array()
                .is_some_and(|a| a.iter().any(|i| i["key"]["check"] == "md_array_degraded"))
                .then_some(())
        },
    )
    .await;

    // The flooding host is held to its bound, and what it loses is counted.
    let dropped = eventually(
        "the flooding host's refused series counted",
        Duration::from_secs(90),
        || async {
            c.metric_value("caretaker_detect_series_dropped_total{host=\"flood\"}")
                .await
                .filter(|d| *d > 0.0)
        },
    )
    .await;
    let live = c.metric_value("caretaker_detect_series{host=\"flood\"}").await;
    assert!(live.is_some_and(|l| l <= BOUND as f64), "{live:?} series kept");
    let log = std::fs::read_to_string(dir.path().join("collector.log")).unwrap_or_default();
    assert_eq!(
        log.matches("host reached its bound of detection series").count(),
        1,
        "logged once per state change ({dropped} refused)"
    );

    // SIGTERM in the middle of the flood: the collector exits, cleanly,
    // within the unit's stop timeout.
    let mut child = c.child.take().unwrap_or_else(|| panic!("no collector process"));
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let asked = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if asked.elapsed() < UNIT_STOP_TIMEOUT => tokio::time::sleep(Duration::from_millis(100)).await,
            _ => break None,
        }
    };
    stop.store(true, Ordering::Relaxed);
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let _ = flooding.await;
    assert!(
        status.is_some_and(|s| s.success()),
        "the collector did not stop within {UNIT_STOP_TIMEOUT:?} of SIGTERM: {status:?}"
    );
}
