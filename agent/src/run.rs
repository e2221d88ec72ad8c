//! The agent's main loop: collect every interval, spool, and deliver in order.
//!
//! Collection and delivery are separate tasks joined by the spool. A report
//! is on disk before the first attempt to send it, so a dead collector, a
//! restart of the agent or a crash loses nothing beyond the spool's bound.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use backon::BackoffBuilder;
use caretaker_shared::wire::{Event, Severity};
use tokio::sync::{Notify, watch};

use crate::config::Config;
use crate::push::{self, Delivery};
use crate::report::{AgentStatus, Reporter, encode_gzip};
use crate::spool::Spool;
use crate::state::{Counters, Credential};

/// Loads the credential, or enrolls with the configured token (retrying while
/// the collector is unreachable).
async fn credential(
    cfg: &Config,
    client: &reqwest::Client,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<Credential> {
    if let Some(c) = Credential::load(&cfg.state_dir)? {
        return Ok(c);
    }
    let Some(token) = cfg.enrollment_token.as_deref() else {
        anyhow::bail!(
            "not enrolled: no credential in {} and no enrollment_token in the config; run `caretaker-agent enroll`",
            cfg.state_dir.display()
        );
    };
    let mut backoff = backoff(cfg);
    loop {
        match push::enroll(client, &cfg.collector_url, token, &cfg.host(), Some(&cfg.labels)).await {
            Ok(r) => {
                let c = Credential {
                    agent_id: r.agent_id,
                    secret: r.credential,
                    collector_url: cfg.collector_url.clone(),
                };
                c.save(&cfg.state_dir)?;
                tracing::info!(agent_id = %c.agent_id, "enrolled");
                return Ok(c);
            }
            Err(e @ push::PushError::Refused { .. }) => return Err(e.into()),
            Err(e) => {
                let mut wait = backoff.next().unwrap_or(Duration::from_secs(60));
                if let push::PushError::Busy {
                    retry_after: Some(after),
                    ..
                } = &e
                {
                    wait = wait.max(*after);
                }
                tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, "enrollment failed");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.changed() => anyhow::bail!("stopped before enrollment"),
                }
            }
        }
    }
}

fn backoff(cfg: &Config) -> backon::ExponentialBackoff {
    backon::ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(cfg.push.min_backoff_ms))
        .with_max_delay(Duration::from_secs(cfg.push.max_backoff_secs))
        .with_jitter()
        .without_max_times()
        .build()
}

struct Shared {
    spool: Mutex<Spool>,
    counters: Mutex<Counters>,
    wake: Notify,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic elsewhere must not stop the agent from spooling.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub async fn run(cfg: Config, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let client = push::client(&cfg.ca_file, Duration::from_secs(cfg.push.timeout_secs))?;
    let cred = credential(&cfg, &client, shutdown.clone()).await?;
    let spool = Spool::open(&cfg.state_dir.join("spool"), cfg.spool.max_reports, cfg.spool.max_bytes)?;
    let mut counters = Counters::load(&cfg.state_dir)?;
    // Never reuse a sequence number, even if the counters file is older than the spool.
    counters.next_seq = counters.next_seq.max(spool.last_seq().map_or(1, |s| s + 1));
    tracing::info!(agent_id = %cred.agent_id, next_seq = counters.next_seq, spooled = spool.depth(), "agent started");
    let shared = Arc::new(Shared {
        spool: Mutex::new(spool),
        counters: Mutex::new(counters),
        wake: Notify::new(),
    });

    let sender = tokio::spawn(deliver(
        cfg.clone(),
        client,
        cred.clone(),
        shared.clone(),
        shutdown.clone(),
    ));
    let collected = collect_loop(&cfg, &cred, &shared, shutdown).await;
    shared.wake.notify_one();
    let _ = sender.await;
    collected
}

async fn collect_loop(
    cfg: &Config,
    cred: &Credential,
    shared: &Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let reporter = Reporter::new(cfg);
    // smartctl runs on its own thread and interval; dropping `_smart` stops it.
    let _smart = if reporter.smart_enabled() {
        let (stop, _handle) = crate::smart::spawn_worker(cfg.smart.clone(), reporter.smart_state())
            .context("starting the disk-health worker")?;
        Some(stop)
    } else {
        None
    };
    if cfg.collectors.iter().any(|c| c == "databases") {
        crate::databases::spawn_pollers(&cfg.databases, reporter.db_state());
    }
    let reporter = Arc::new(Mutex::new(reporter));
    // CPU usage is a difference: give the first report a short baseline.
    tokio::time::sleep(Duration::from_millis(250)).await;
    let mut tick = tokio::time::interval(Duration::from_secs(u64::from(cfg.interval_secs)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pending_events: Vec<Event> = Vec::new();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => return Ok(()),
        }
        let (seq, status) = {
            let mut c = lock(&shared.counters);
            let seq = c.next_seq;
            c.next_seq += 1;
            // Persist before use: a crash can skip a number, never repeat one.
            c.save(&cfg.state_dir).context("saving the sequence counter")?;
            let status = AgentStatus {
                spool_depth: lock(&shared.spool).depth(),
                spool_dropped_total: c.spool_dropped_total,
                rejected_total: c.rejected_total,
            };
            (seq, status)
        };
        // Collectors do blocking I/O (statvfs can hang on a dead NFS server):
        // run them off the runtime, and skip a cycle rather than pile up.
        let r = reporter.clone();
        let agent_id = cred.agent_id.clone();
        let events = std::mem::take(&mut pending_events);
        let built = tokio::task::spawn_blocking(move || match r.try_lock() {
            Ok(mut rep) => Some(rep.build(&agent_id, seq, status, events)),
            Err(_) => None,
        });
        let report = match tokio::time::timeout(Duration::from_secs(u64::from(cfg.interval_secs).max(5)), built).await {
            Ok(Ok(Some(r))) => r,
            _ => {
                tracing::warn!(seq, "collection still running from an earlier cycle; skipping this one");
                continue;
            }
        };
        let body = match encode_gzip(&report) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "cannot encode report");
                continue;
            }
        };
        let dropped = lock(&shared.spool).push(seq, &body);
        match dropped {
            Ok(0) => {}
            Ok(n) => {
                let mut c = lock(&shared.counters);
                c.spool_dropped_total += n;
                let _ = c.save(&cfg.state_dir);
                tracing::warn!(
                    dropped = n,
                    total = c.spool_dropped_total,
                    "spool full: dropped the oldest reports"
                );
                pending_events.push(Event {
                    at_ms: caretaker_shared::now_ms(),
                    kind: "spool_dropped".into(),
                    severity: Severity::Warning,
                    message: format!(
                        "spool full: dropped {n} oldest report(s), {} in all",
                        c.spool_dropped_total
                    ),
                    labels: Default::default(),
                });
            }
            Err(e) => tracing::error!(error = %e, seq, "cannot write report to the spool"),
        }
        shared.wake.notify_one();
    }
}

/// Saves a rotated credential the collector handed over, durably, before it
/// is used: a crash after this leaves the agent with the new one (which the
/// collector takes), before it with the old one (which still works, and the
/// collector hands the new one over again).
fn take_rotated(cfg: &Config, cred: &mut Credential, secret: String) {
    if secret == cred.secret {
        return;
    }
    let new = Credential { secret, ..cred.clone() };
    match new.save(&cfg.state_dir) {
        Ok(()) => {
            *cred = new;
            tracing::info!(agent_id = %cred.agent_id, "collector rotated this agent's credential; saved, using the new one");
        }
        Err(e) => tracing::error!(
            error = %e,
            "cannot save the rotated credential; keeping the old one (still valid) and trying again with the next report"
        ),
    }
}

async fn deliver(
    cfg: Config,
    client: reqwest::Client,
    mut cred: Credential,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut backoff = backoff(&cfg);
    // Whether the collector refuses the credential now (`Some(revoked)`):
    // logged once per change, not per attempt.
    let mut refused: Option<bool> = None;
    loop {
        if *shutdown.borrow() {
            return;
        }
        let next = lock(&shared.spool).peek();
        let (seq, body) = match next {
            Ok(Some(x)) => x,
            Ok(None) => {
                tokio::select! {
                    _ = shared.wake.notified() => continue,
                    _ = shutdown.changed() => return,
                }
            }
            Err(e) => {
                // An unreadable spool file cannot be delivered; drop it so the rest can go.
                tracing::error!(error = %e, "unreadable report in the spool; dropping it");
                let seq = lock(&shared.spool).first_seq();
                if let Some(first) = seq {
                    let _ = lock(&shared.spool).remove(first);
                }
                continue;
            }
        };
        match push::send_report(&client, &cfg.collector_url, &cred.secret, body).await {
            Delivery::Delivered { duplicate, credential } => {
                if refused.take().is_some() {
                    tracing::info!(
                        seq,
                        "collector accepts this agent's credential again; delivering the spool"
                    );
                }
                if duplicate {
                    tracing::debug!(seq, "collector had this report already");
                }
                if let Some(secret) = credential {
                    take_rotated(&cfg, &mut cred, secret);
                }
                if let Err(e) = lock(&shared.spool).remove(seq) {
                    tracing::error!(error = %e, seq, "cannot remove a delivered report from the spool");
                }
                backoff = self::backoff(&cfg);
            }
            Delivery::Rejected { status, reason } => {
                tracing::error!(seq, status, %reason, "collector rejected the report; discarding it");
                let _ = lock(&shared.spool).remove(seq);
                let mut c = lock(&shared.counters);
                c.rejected_total += 1;
                let _ = c.save(&cfg.state_dir);
            }
            Delivery::Unauthorized { revoked, reason } => {
                let wait = backoff.next().unwrap_or(Duration::from_secs(cfg.push.max_backoff_secs));
                let spooled = lock(&shared.spool).depth();
                if refused != Some(revoked) {
                    refused = Some(revoked);
                    if revoked {
                        tracing::error!(
                            agent_id = %cred.agent_id,
                            %reason,
                            spooled,
                            "this agent's credential was revoked by the collector's operator; reports stay spooled and \
                             are retried; enroll again (caretaker-agent enroll --force) if the host is still in service"
                        );
                    } else {
                        tracing::error!(
                            agent_id = %cred.agent_id,
                            %reason,
                            spooled,
                            "collector refuses this agent's credential; reports stay spooled and are retried"
                        );
                    }
                } else {
                    tracing::debug!(seq, %reason, retry_in_ms = wait.as_millis() as u64, "credential still refused");
                }
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.changed() => return,
                }
            }
            Delivery::Retry { reason } => {
                let wait = backoff.next().unwrap_or(Duration::from_secs(cfg.push.max_backoff_secs));
                tracing::warn!(seq, %reason, retry_in_ms = wait.as_millis() as u64, "delivery failed; report stays spooled");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.changed() => return,
                }
            }
        }
    }
}
