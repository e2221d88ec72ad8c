//! `caretaker-detect-report-size`: the cost of evaluating one report as the
//! report grows (BENCHMARKS.md, "Detection engine", "Large reports").
//!
//! One `Engine` with the built-in rules per size, fed reports of one host
//! whose samples are all series the rules read: filesystems (avail and size,
//! read by the forecast and the threshold), failed systemd units, SATA
//! attributes, hwmon alarms, each with its own label values. Three figures
//! per size, each the time of one `observe` call (reports are built outside
//! the timed part):
//! - `new`: the first report, every series new;
//! - `steady`: the next report, 15 s later, the same series;
//! - `churned`: the last of `--churn` further reports whose label values all
//!   change every report (a unit or mount name with a counter in it), as a
//!   broken or hostile agent sends them.
//!
//! Single-threaded, with the collector's allocator (mimalloc).

use std::collections::BTreeMap;
use std::time::Instant;

use caretaker_collector::detect::Engine;
use caretaker_collector::rules;
use caretaker_shared::wire::{PROTOCOL_VERSION, Report, Sample};
use clap::Parser;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(about = "Time to evaluate one report as its sample count grows.")]
struct Args {
    /// Samples per report, comma-separated.
    #[arg(long, default_value = "2000,6000,12000,20000", value_delimiter = ',')]
    sizes: Vec<usize>,
    /// Reports with changing label values sent after the steady one; the
    /// last one is timed.
    #[arg(long, default_value_t = 5)]
    churn: u64,
}

const T0_MS: i64 = 1_700_000_000_000;

/// `n` samples of series the built-in rules read, labelled with `tag`.
fn report(n: usize, seq: u64, tag: &str) -> Report {
    let mut samples = Vec::with_capacity(n);
    let mut i = 0usize;
    let label = |pairs: &[(&str, String)]| -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    };
    while samples.len() < n {
        let sample = |metric: &str, labels: BTreeMap<String, String>, value: f64| Sample {
            metric: metric.to_string(),
            labels,
            value,
        };
        match i % 4 {
            0 => {
                let l = label(&[("mountpoint", format!("/srv/{tag}{i}")), ("fstype", "ext4".into())]);
                samples.push(sample("caretaker_filesystem_avail_bytes", l.clone(), 6e9));
                samples.push(sample("caretaker_filesystem_size_bytes", l, 1e10));
            }
            1 => samples.push(sample(
                "caretaker_systemd_unit_failed",
                label(&[("unit", format!("job-{tag}{i}.service"))]),
                0.0,
            )),
            2 => samples.push(sample(
                "caretaker_disk_ata_attribute_raw",
                label(&[
                    ("device", format!("sd{tag}{i}")),
                    ("attribute", "Reallocated_Sector_Ct".into()),
                    ("id", "5".into()),
                ]),
                0.0,
            )),
            _ => samples.push(sample(
                "caretaker_hwmon_alarm",
                label(&[("chip", format!("chip{tag}{i}")), ("sensor", "temp1".into())]),
                0.0,
            )),
        }
        i += 1;
    }
    samples.truncate(n);
    Report {
        version: PROTOCOL_VERSION,
        agent_id: "bench".into(),
        seq,
        collected_at_ms: T0_MS,
        interval_secs: 15,
        host: "big".into(),
        labels: BTreeMap::from([("customer".into(), "bench".into())]),
        samples,
        events: Vec::new(),
        inventory: None,
        disks: None,
    }
}

fn timed(engine: &mut Engine, r: &Report, at_ms: i64) -> (f64, usize) {
    let started = Instant::now();
    let signals = engine.observe(r, at_ms);
    (started.elapsed().as_secs_f64(), signals.len())
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    let rules = rules::load(None).map_err(|e| anyhow::anyhow!("built-in rules: {} errors", e.len()))?;
    println!(
        "| samples | new | steady | churned (report {}) | signals (churned) |",
        a.churn + 2
    );
    println!("|---|---|---|---|---|");
    for &n in &a.sizes {
        let mut engine = Engine::new(rules.clone());
        let (new, _) = timed(&mut engine, &report(n, 1, "a"), T0_MS);
        let (steady, _) = timed(&mut engine, &report(n, 2, "a"), T0_MS + 15_000);
        let (mut churned, mut signals) = (0.0, 0);
        for k in 0..a.churn {
            let r = report(n, 3 + k, &format!("c{k}x"));
            (churned, signals) = timed(&mut engine, &r, T0_MS + 30_000 + 15_000 * k as i64);
        }
        println!(
            "| {n} | {:.1} ms | {:.1} ms | {:.1} ms | {signals} |",
            new * 1e3,
            steady * 1e3,
            churned * 1e3
        );
    }
    Ok(())
}
