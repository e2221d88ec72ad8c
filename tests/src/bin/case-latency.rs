//! `caretaker-case-latency`: how long after a faulty report reaches the
//! collector its case shows in the API (BENCHMARKS.md, "Detection engine").
//!
//! Each probe is a fresh host: it enrolls, sends a healthy report, then one
//! with its RAID array degraded (`md_array_degraded`, a case rule without a
//! `for`, so the case opens on that very report), and polls
//! `GET /api/v1/cases?host=…` until the case is listed. Optionally, other
//! agents keep sending ordinary reports meanwhile, so detection and the store
//! are busy as in a live fleet.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use caretaker_shared::wire::{Report, Sample};
use caretaker_tests::{client, enroll, gzip, post_report, synthetic_report};
use clap::Parser;

#[derive(Parser)]
#[command(about = "Time from a faulty report to its case in the Caretaker API.")]
struct Args {
    /// Collector base URL.
    #[arg(long)]
    url: String,
    /// The collector's CA certificate.
    #[arg(long)]
    ca: PathBuf,
    /// Enrollment token.
    #[arg(long)]
    token: String,
    /// API token (for the cases API).
    #[arg(long)]
    api_token: String,
    /// Faulty hosts to measure, one after the other.
    #[arg(long, default_value_t = 50)]
    probes: usize,
    /// Agents sending ordinary reports back to back during the probes.
    #[arg(long, default_value_t = 0)]
    background: usize,
    /// Samples per report.
    #[arg(long, default_value_t = 200)]
    samples: usize,
    /// Give up on a probe after this long.
    #[arg(long, default_value_t = 10)]
    timeout_secs: u64,
}

const RULE: &str = "md_array_degraded";

/// A report of `host` whose one md array is degraded or not.
fn report(agent_id: &str, host: &str, seq: u64, samples: usize, degraded: bool) -> anyhow::Result<Vec<u8>> {
    let mut r: Report = synthetic_report(agent_id, host, seq, samples);
    // A customer per probe: twenty new cases of one customer within minutes
    // would be a storm, attached to one storm case instead of their own.
    r.labels.insert("customer".into(), host.to_string());
    r.samples.retain(|s| s.metric != "caretaker_md_degraded");
    r.samples.push(Sample {
        metric: "caretaker_md_degraded".into(),
        labels: [("device".to_string(), "md0".to_string())].into(),
        value: if degraded { 1.0 } else { 0.0 },
    });
    // The first (healthy) report carries the inventory, as a starting agent's
    // does: only a known asset's faults open cases.
    if !degraded {
        r.inventory = Some(caretaker_shared::wire::Inventory {
            hostname: host.to_string(),
            machine_id: format!("{agent_id:0>32}"),
            ..Default::default()
        });
    }
    Ok(gzip(&serde_json::to_vec(&r)?))
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let http = client(&a.ca)?;

    // Background load: ordinary reports, back to back, until the probes end.
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for i in 0..a.background {
        let host = format!("background-{i}");
        let ag = enroll(&http, &a.url, &a.token, &host).await.context("enrolling")?;
        let (http, url, stop, sent, samples) = (http.clone(), a.url.clone(), stop.clone(), sent.clone(), a.samples);
        tasks.push(tokio::spawn(async move {
            let mut seq = 0;
            while !stop.load(Ordering::Relaxed) {
                seq += 1;
                let Ok(body) = report(&ag.agent_id, &host, seq, samples, false) else {
                    break;
                };
                if let Ok((200, _)) = post_report(&http, &url, &ag.credential, body).await {
                    sent.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }

    let started = Instant::now();
    let (mut from_sent, mut from_ack, mut missing) = (Vec::new(), Vec::new(), 0usize);
    for i in 0..a.probes {
        let host = format!("latency-{i}");
        let ag = enroll(&http, &a.url, &a.token, &host).await.context("enrolling")?;
        let (status, _) = post_report(
            &http,
            &a.url,
            &ag.credential,
            report(&ag.agent_id, &host, 1, a.samples, false)?,
        )
        .await?;
        anyhow::ensure!(status == 200, "healthy report answered {status}");
        let body = report(&ag.agent_id, &host, 2, a.samples, true)?;
        let t0 = Instant::now();
        let (status, _) = post_report(&http, &a.url, &ag.credential, body).await?;
        let acked = t0.elapsed();
        anyhow::ensure!(status == 200, "faulty report answered {status}");
        let seen = 'poll: loop {
            let resp = http
                .get(format!("{}/api/v1/cases?host={host}", a.url))
                .bearer_auth(&a.api_token)
                .send()
                .await?;
            anyhow::ensure!(resp.status().is_success(), "cases API answered {}", resp.status());
            let v: serde_json::Value = resp.json().await?;
            let found = v["cases"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c["key"]["check"] == RULE));
            if found {
                break 'poll Some(t0.elapsed());
            }
            if t0.elapsed() >= Duration::from_secs(a.timeout_secs) {
                // Counted, not fatal: under load the collector may skip
                // evaluating a report (caretaker_detect_evaluations_dropped_total).
                eprintln!("no {RULE} case for {host} after {}s", a.timeout_secs);
                break 'poll None;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        let Some(seen) = seen else {
            missing += 1;
            continue;
        };
        from_sent.push(seen.as_secs_f64() * 1000.0);
        from_ack.push(seen.saturating_sub(acked).as_secs_f64() * 1000.0);
    }
    let elapsed = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = t.await;
    }
    for v in [&mut from_sent, &mut from_ack] {
        v.sort_by(f64::total_cmp);
    }
    let background_rate = sent.load(Ordering::Relaxed) as f64 / elapsed;
    println!(
        "{{\"probes\":{},\"missing\":{missing},\"background_agents\":{},\"background_reports_per_sec\":{background_rate:.0},\"p50_ms\":{:.1},\"p99_ms\":{:.1},\"max_ms\":{:.1},\"after_ack_p50_ms\":{:.1},\"after_ack_p99_ms\":{:.1},\"after_ack_max_ms\":{:.1}}}",
        from_sent.len(),
        a.background,
        pct(&from_sent, 0.5),
        pct(&from_sent, 0.99),
        pct(&from_sent, 1.0),
        pct(&from_ack, 0.5),
        pct(&from_ack, 0.99),
        pct(&from_ack, 1.0),
    );
    Ok(())
}
