//! `caretaker-read-contention`: how long the queue API takes while a large
//! inspection report is being generated (BENCHMARKS.md, "Reads side by
//! side"). With one read connection the queue waits for the report; with a
//! pool it should not.
//!
//! `seed` fills a store made by `caretaker-collector init` with one large
//! customer (`bench`): hosts that report every 15 s, each with asset changes
//! in the last month, so that building its report takes seconds. `measure`
//! then polls `GET /api/v1/queue` of a serving collector, first alone, then
//! while `POST /api/v1/reports/inspection` for that customer runs back to back.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use caretaker_tests::client;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Queue API latency while an inspection report is generated.")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Adds the `bench` customer's hosts to a store (not while it is served).
    Seed {
        /// The store file (DATA_DIR/caretaker.db).
        #[arg(long)]
        db: PathBuf,
        #[arg(long, default_value_t = 20_000)]
        hosts: u32,
        /// Asset changes per host in the last 30 days.
        #[arg(long, default_value_t = 5)]
        changes: u32,
    },
    /// Measures the queue API alone and during report generation.
    Measure {
        #[arg(long)]
        url: String,
        #[arg(long)]
        ca: PathBuf,
        #[arg(long)]
        api_token: String,
        /// Reports generated back to back while the queue is polled.
        #[arg(long, default_value_t = 3)]
        reports: usize,
        /// Pause between two queue requests.
        #[arg(long, default_value_t = 20)]
        interval_ms: u64,
        /// Queue requests alone, before the reports.
        #[arg(long, default_value_t = 100)]
        baseline: usize,
    },
}

fn seed(db: &std::path::Path, hosts: u32, changes: u32) -> anyhow::Result<()> {
    let conn = caretaker_collector::store::open(db, caretaker_collector::config::Synchronous::Normal)
        .with_context(|| format!("opening {}", db.display()))?;
    let now = caretaker_shared::now_ms();
    let month = 30 * 86_400_000_i64;
    conn.execute_batch(&format!(
        r#"BEGIN;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {hosts})
INSERT INTO agents (agent_id, credential_hash, host, enrolled_at_ms, labels, interval_secs, last_seen_ms)
SELECT 'bench-' || i, 'bench-hash-' || i, 'bench-' || i, 0, '{{"customer":"bench","site":"dc1"}}', 15, {now} FROM n;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {hosts}),
     c(j) AS (SELECT 1 UNION ALL SELECT j + 1 FROM c WHERE j < {changes})
INSERT INTO asset_changes (agent_id, at_ms, seq, idx, kind, subject, old, new, summary)
SELECT 'bench-' || i, {now} - {month} + j * ({month} / ({changes} + 1)), j, 0, 'package', 'pkg' || j, '1.0', '1.1',
       'pkg' || j || ' 1.0 -> 1.1' FROM n, c;
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {hosts})
INSERT INTO report_log (agent_id, seq, collected_at_ms, received_at_ms, samples)
SELECT 'bench-' || i, 1, {now} - 1000, {now} - 1000, 200 FROM n;
COMMIT;"#
    ))?;
    println!("seeded {hosts} hosts of customer bench, {changes} asset changes each");
    Ok(())
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

fn summary(what: &str, mut ms: Vec<f64>) {
    ms.sort_by(f64::total_cmp);
    println!(
        "{what}: {} requests, p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        ms.len(),
        pct(&ms, 0.50),
        pct(&ms, 0.99),
        ms.last().copied().unwrap_or(f64::NAN)
    );
}

async fn queue_once(http: &reqwest::Client, url: &str, token: &str) -> anyhow::Result<f64> {
    let t = Instant::now();
    let r = http
        .get(format!("{url}/api/v1/queue"))
        .bearer_auth(token)
        .send()
        .await?;
    anyhow::ensure!(r.status().is_success(), "queue: {}", r.status());
    r.bytes().await?;
    Ok(t.elapsed().as_secs_f64() * 1000.0)
}

async fn measure(
    url: String,
    ca: PathBuf,
    token: String,
    reports: usize,
    interval: Duration,
    baseline: usize,
) -> anyhow::Result<()> {
    let http = client(&ca)?;
    let mut alone = Vec::with_capacity(baseline);
    for _ in 0..baseline {
        alone.push(queue_once(&http, &url, &token).await?);
        tokio::time::sleep(interval).await;
    }
    summary("queue alone", alone);

    let done = Arc::new(AtomicBool::new(false));
    let generator = {
        let (http, url, token, done) = (http.clone(), url.clone(), token.clone(), done.clone());
        tokio::spawn(async move {
            let now = caretaker_shared::now_ms();
            let mut took = Vec::new();
            for _ in 0..reports {
                let t = Instant::now();
                let r = http
                    .post(format!("{url}/api/v1/reports/inspection"))
                    .bearer_auth(&token)
                    .json(&serde_json::json!({
                        "customer": "bench",
                        "from": now - 30 * 86_400_000_i64,
                        "to": now,
                    }))
                    .send()
                    .await;
                let ok = match r {
                    Ok(r) if r.status().is_success() => true,
                    Ok(r) => {
                        eprintln!("report: {} {}", r.status(), r.text().await.unwrap_or_default());
                        false
                    }
                    Err(e) => {
                        eprintln!("report: {e}");
                        false
                    }
                };
                if !ok {
                    break;
                }
                took.push(t.elapsed().as_secs_f64());
            }
            done.store(true, Ordering::SeqCst);
            took
        })
    };
    let mut during = Vec::new();
    while !done.load(Ordering::SeqCst) {
        during.push(queue_once(&http, &url, &token).await?);
        tokio::time::sleep(interval).await;
    }
    let took = generator.await?;
    anyhow::ensure!(took.len() == reports, "a report failed (see above)");
    println!(
        "reports: {} generated, {}",
        took.len(),
        took.iter().map(|s| format!("{s:.2} s")).collect::<Vec<_>>().join(", ")
    );
    summary("queue during reports", during);
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Args::parse().command {
        Command::Seed { db, hosts, changes } => seed(&db, hosts, changes),
        Command::Measure {
            url,
            ca,
            api_token,
            reports,
            interval_ms,
            baseline,
        } => {
            measure(
                url,
                ca,
                api_token,
                reports,
                Duration::from_millis(interval_ms),
                baseline,
            )
            .await
        }
    }
}
