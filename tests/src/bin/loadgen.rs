//! `caretaker-loadgen`: many simulated agents pushing realistic reports to a
//! running collector over TLS, for the ingest benchmark (BENCHMARKS.md).
//! Each agent enrolls, then sends its reports in sequence order, one at a
//! time, as a real agent does; agents run concurrently. Bodies are built and
//! compressed before the clock starts, so the measurement is the collector's.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use caretaker_tests::{client, enroll, gzip, post_report, synthetic_report};
use clap::Parser;

#[derive(Parser)]
#[command(about = "Load generator for the Caretaker collector's ingest.")]
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
    /// Simulated agents (each one connection, one request in flight).
    #[arg(long, default_value_t = 32)]
    agents: usize,
    /// Reports each agent sends.
    #[arg(long, default_value_t = 1000)]
    reports_per_agent: u64,
    /// Samples per report.
    #[arg(long, default_value_t = 200)]
    samples: usize,
    /// Each agent's first report brings an inventory, as a real agent's
    /// does: its host is a known asset, so the rules that fire on it open
    /// cases. Without it every host stays unknown and its firing signals
    /// are held (the heavier path through the store).
    #[arg(long)]
    known: bool,
    /// Prefix of the simulated hosts' names (`PREFIX-0`, `PREFIX-1`, ...):
    /// load generators sharing one store need different ones.
    #[arg(long, default_value = "load")]
    prefix: String,
    /// The customer the simulated hosts report under (their `customer`
    /// label). A rule firing on many hosts of one customer at once is a
    /// storm: one case that each of their reports updates.
    #[arg(long, default_value = "loadtest")]
    customer: String,
    /// Split the hosts into customers of this many hosts each
    /// (`CUSTOMER-PREFIX-0`, ...); 0: all hosts are `--customer`'s.
    #[arg(long, default_value_t = 0)]
    hosts_per_customer: usize,
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let http = client(&a.ca)?;
    let mut agents = Vec::new();
    for i in 0..a.agents {
        agents.push(
            enroll(&http, &a.url, &a.token, &format!("{}-{i}", a.prefix))
                .await
                .context("enrolling")?,
        );
    }
    // Pre-build every body on all cores.
    let started_build = Instant::now();
    let bodies: Vec<Vec<Vec<u8>>> = std::thread::scope(|s| {
        let handles: Vec<_> = agents
            .iter()
            .enumerate()
            .map(|(i, ag)| {
                let (samples, n, known, prefix) = (a.samples, a.reports_per_agent, a.known, a.prefix.as_str());
                let customer = match a.hosts_per_customer {
                    0 => a.customer.clone(),
                    k => format!("{}-{prefix}-{}", a.customer, i / k),
                };
                s.spawn(move || {
                    (1..=n)
                        .map(|seq| {
                            let mut r = synthetic_report(&ag.agent_id, &format!("{prefix}-{i}"), seq, samples);
                            r.labels.insert("customer".into(), customer.clone());
                            if known && seq == 1 {
                                r.inventory = Some(caretaker_shared::wire::Inventory {
                                    machine_id: format!("{prefix}-machine-{i}"),
                                    ..Default::default()
                                });
                            }
                            gzip(&serde_json::to_vec(&r).unwrap_or_default())
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_default()).collect()
    });
    let total_bytes: usize = bodies.iter().flatten().map(Vec::len).sum();
    let total = bodies.iter().map(Vec::len).sum::<usize>();
    eprintln!(
        "built {total} reports ({} samples, {:.0} bytes gzip on average) in {:.1}s",
        a.samples,
        total_bytes as f64 / total as f64,
        started_build.elapsed().as_secs_f64()
    );

    let errors = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (ag, bodies) in agents.into_iter().zip(bodies) {
        let http = http.clone();
        let url = a.url.clone();
        let errors = errors.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(bodies.len());
            for body in bodies {
                let t = Instant::now();
                match post_report(&http, &url, &ag.credential, body).await {
                    Ok((200, _)) => lat.push(t.elapsed()),
                    _ => {
                        errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap_or_default());
    }
    let elapsed = start.elapsed().as_secs_f64();
    lat.sort_unstable();
    let errors = errors.load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "{{\"agents\":{},\"samples\":{},\"accepted\":{},\"errors\":{errors},\"seconds\":{elapsed:.2},\"reports_per_sec\":{:.0},\"p50_ms\":{:.2},\"p99_ms\":{:.2},\"max_ms\":{:.2}}}",
        a.agents,
        a.samples,
        lat.len(),
        lat.len() as f64 / elapsed,
        percentile(&lat, 0.50),
        percentile(&lat, 0.99),
        percentile(&lat, 1.0),
    );
    anyhow::ensure!(errors == 0, "{errors} reports were not accepted");
    Ok(())
}
