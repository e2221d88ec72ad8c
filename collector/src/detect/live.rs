//! Live detection: one task owns the [`Engine`], fed with every committed
//! report through a bounded channel, and ticks it (and the lifecycle timers)
//! every `tick_secs`. Signals go to the cases store through the store writer,
//! so SQLite keeps a single writer.
//!
//! Ingest never waits for detection: when the channel is full the report is
//! not evaluated, which is counted (`dropped`) and logged. Dropping is the
//! lesser harm: the next report of that host carries the same series again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use caretaker_shared::wire::Report;
use tokio::sync::mpsc;

use super::Engine;
use crate::cases::Policy;
use crate::metrics::Metrics;
use crate::rules::RuleSet;
use crate::store::{DetectWrite, Writer};

/// Reports waiting for evaluation at most; beyond that they are dropped.
pub const QUEUE: usize = 4096;

/// The ingest side: hands committed reports to the detection task.
#[derive(Clone)]
pub struct DetectHandle {
    tx: mpsc::Sender<Msg>,
    pub metrics: Arc<Metrics>,
}

#[derive(Debug)]
enum Msg {
    Report(Box<Report>, i64),
    Rules(RuleSet),
}

impl DetectHandle {
    /// Queues a committed report for evaluation without waiting.
    pub fn submit(&self, report: Report, at_ms: i64) {
        // A closed channel means detection stopped (shutdown): nothing to count.
        if let Err(mpsc::error::TrySendError::Full(Msg::Report(r, _))) =
            self.tx.try_send(Msg::Report(Box::new(report), at_ms))
        {
            self.metrics.dropped.inc();
            tracing::warn!(host = %r.host, "detection queue full; report not evaluated");
        }
    }

    /// Swaps the engine's rules (after a successful reload).
    pub async fn set_rules(&self, rules: RuleSet) {
        // Rule swaps are rare and must not be lost: wait for room.
        let _ = self.tx.send(Msg::Rules(rules)).await;
    }
}

/// Starts the detection task.
pub fn start(
    rules: RuleSet,
    writer: Writer,
    metrics: Arc<Metrics>,
    policy: Policy,
    tick: Duration,
) -> (DetectHandle, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(QUEUE);
    let task = tokio::spawn(run(
        Engine::new(rules).forget_gone_after(2 * policy.min_hold_ms),
        rx,
        writer,
        metrics.clone(),
        policy,
        tick,
    ));
    (DetectHandle { tx, metrics }, task)
}

async fn run(
    mut engine: Engine,
    mut rx: mpsc::Receiver<Msg>,
    writer: Writer,
    metrics: Arc<Metrics>,
    policy: Policy,
    tick: Duration,
) {
    let mut timer = tokio::time::interval(tick);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            msg = rx.recv() => match msg {
                None => break,
                Some(Msg::Rules(set)) => {
                    tracing::info!(rules = set.rules.len(), "rules reloaded");
                    engine.replace_rules(set);
                }
                Some(Msg::Report(report, at_ms)) => {
                    let mut signals = observe(&mut engine, &metrics, &report, at_ms);
                    // Reports that queued up meanwhile go to the store in the
                    // same job: one round trip to the writer, not one each.
                    let mut pending_rules = None;
                    for _ in 1..BATCH {
                        match rx.try_recv() {
                            Ok(Msg::Report(report, at_ms)) => {
                                signals.extend(observe(&mut engine, &metrics, &report, at_ms));
                            }
                            Ok(Msg::Rules(set)) => {
                                pending_rules = Some(set);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    write(&writer, &metrics, signals, policy).await;
                    if let Some(set) = pending_rules {
                        tracing::info!(rules = set.rules.len(), "rules reloaded");
                        engine.replace_rules(set);
                    }
                }
            },
            _ = timer.tick() => {
                let now = caretaker_shared::now_ms();
                let started = Instant::now();
                let signals = engine.tick(now);
                metrics.evaluation.observe(started.elapsed().as_secs_f64());
                write(&writer, &metrics, signals, policy).await;
                match writer.tick_cases(now, policy).await {
                    Ok(w) => record(&metrics, w),
                    Err(e) => tracing::error!(error = %e, "lifecycle tick failed"),
                }
            }
        }
    }
    tracing::debug!("detection stopped");
}

/// Most queued reports whose signals are written in one job.
const BATCH: usize = 64;

fn observe(engine: &mut Engine, metrics: &Metrics, report: &Report, at_ms: i64) -> Vec<crate::cases::Signal> {
    let started = Instant::now();
    let signals = engine.observe(report, at_ms);
    metrics.evaluation.observe(started.elapsed().as_secs_f64());
    signals
}

async fn write(writer: &Writer, metrics: &Metrics, signals: Vec<crate::cases::Signal>, policy: Policy) {
    if signals.is_empty() {
        return;
    }
    match writer.signals(signals, policy).await {
        Ok(w) => record(metrics, w),
        Err(e) => tracing::error!(error = %e, "cannot store detection signals"),
    }
}

/// Counts a committed detection job's transitions and publishes the open counts.
fn record(metrics: &Metrics, w: DetectWrite) {
    for e in w.transitions {
        metrics
            .transitions
            .get_or_create(&vec![("event".to_string(), e.to_string())])
            .inc();
    }
    *metrics.open.lock().unwrap_or_else(|p| p.into_inner()) = w.open;
    *metrics.held.lock().unwrap_or_else(|p| p.into_inner()) = w.held;
    if let Some(q) = w.queue {
        *metrics.queue.lock().unwrap_or_else(|p| p.into_inner()) = q;
    }
}
