//! The agent's main loop: collect every interval, spool, and deliver in order.
//!
//! Collection and delivery are separate tasks joined by the spool. A report
//! is on disk before the first attempt to send it, so a dead collector, a
//! restart of the agent or a crash loses nothing beyond the spool's bound.
//!
//! A state dir that cannot be written (full, read-only) does not stop the
//! agent: the sequence counter lives on in memory and its save is retried
//! every cycle, reports are held in memory by the spool, and every report
//! says so (`caretaker_agent_state_writable` 0, and an
//! `agent_state_write_failed` event when it starts) so the collector opens a
//! finding; the first successful write ends it. Numbers handed out meanwhile
//! are not on disk: an agent restarted before the save succeeded starts from
//! an older number that the collector has applied already. The collector's
//! 409 names the highest number it applied, and the agent then moves its
//! queued reports and its counter past it ([`stale_shift`]) rather than
//! losing new reports as duplicates.
//!
//! Reports go to one of the collector's replicas at a time; when it fails
//! (unreachable, 5xx) the report at the head of the queue goes, as it is, to
//! the next one ([`crate::replicas`]). The replicas share one store, so a
//! report the failing replica applied before its answer was lost comes back
//! as a 409 from the next, and is treated like any answer lost in transit.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use backon::BackoffBuilder;
use caretaker_shared::wire::{Event, Severity};
use tokio::sync::{Notify, watch};

use crate::config::Config;
use crate::push::{self, Delivery};
use crate::replicas::{Next, Replicas};
use crate::report::{AgentStatus, Reporter, encode_gzip, renumber_gzip};
use crate::spool::Spool;
use crate::state::{Counters, Credential, StateError};

/// Loads the credential, or enrolls with the configured token (retrying while
/// the collector is unreachable, failing over between its replicas the way
/// delivery does: see [`crate::replicas`]).
async fn credential(
    cfg: &Config,
    client: &reqwest::Client,
    replicas: &mut Replicas,
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
        let url = replicas.current().to_owned();
        match push::enroll(client, &url, token, &cfg.host(), Some(&cfg.labels)).await {
            Ok(r) => {
                replicas.on_answer();
                let c = Credential {
                    agent_id: r.agent_id,
                    secret: r.credential,
                    // The replica that enrolled it, for the operator's information.
                    collector_url: url,
                };
                c.save(&cfg.state_dir)?;
                tracing::info!(agent_id = %c.agent_id, collector = %c.collector_url, "enrolled");
                return Ok(c);
            }
            Err(e @ push::PushError::Refused { .. }) => return Err(e.into()),
            Err(e) => {
                let next = match e.failure() {
                    Some(f) => replicas.on_failure(f),
                    None => Next::Backoff,
                };
                log_move(&url, replicas, &e.to_string());
                if next == Next::TryNow {
                    continue;
                }
                let mut wait = backoff.next().unwrap_or(Duration::from_secs(60));
                if let push::PushError::Busy {
                    retry_after: Some(after),
                    ..
                } = &e
                {
                    wait = wait.max(*after);
                }
                tracing::warn!(error = %e, collector = %url, retry_in_ms = wait.as_millis() as u64, "enrollment failed");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.changed() => anyhow::bail!("stopped before enrollment"),
                }
            }
        }
    }
}

/// Says so when a failure moved the agent from replica `from` to another.
fn log_move(from: &str, replicas: &Replicas, reason: &str) {
    let to = replicas.current();
    if to != from {
        tracing::warn!(from, to, %reason, "collector replica failed; moving to the next one");
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

/// What the collecting and the delivering task share, under one lock.
struct Inner {
    spool: Spool,
    counters: Counters,
    health: Health,
    /// Added to sequence numbers by renumbering so far: a report being built
    /// while the queue moved moves with it.
    shift: u64,
    /// The first sequence number this process handed out.
    first_seq_of_run: u64,
    /// The report last offered without a known outcome (network error,
    /// 5xx): the collector may have applied it, so its 409 is believed.
    unknown_outcome: Option<u64>,
}

struct Shared {
    inner: Mutex<Inner>,
    wake: Notify,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic elsewhere must not stop the agent from spooling.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Which write to the state dir an outcome is about.
#[derive(Debug, Clone, Copy)]
enum StateWrite {
    Counters,
    Spool,
}

/// Whether the state dir takes writes: the last failure of each kind of
/// write, until that kind of write succeeds again.
#[derive(Debug, Default)]
struct Health {
    counters: Option<String>,
    spool: Option<String>,
    failing_since_ms: Option<i64>,
}

impl Health {
    fn failing(&self) -> bool {
        self.counters.is_some() || self.spool.is_some()
    }

    /// Records one write's outcome, logging when the state dir stops or
    /// starts taking writes (or fails differently); returns the event that
    /// tells the collector so.
    fn record(&mut self, what: StateWrite, outcome: Option<&StateError>, state_dir: &std::path::Path) -> Option<Event> {
        let was_failing = self.failing();
        let slot = match what {
            StateWrite::Counters => &mut self.counters,
            StateWrite::Spool => &mut self.spool,
        };
        let error = outcome.map(ToString::to_string);
        // The same failure again (another file name, the same cause) is not news.
        let changed = slot.as_deref().map(cause) != error.as_deref().map(cause);
        *slot = error.clone();
        let now = caretaker_shared::now_ms();
        match (was_failing, self.failing()) {
            (false, true) => {
                self.failing_since_ms = Some(now);
                let e = error.unwrap_or_default();
                tracing::error!(
                    error = %e,
                    state_dir = %state_dir.display(),
                    "cannot write the agent state; reports are kept in memory and the write is retried every interval"
                );
                Some(Event {
                    at_ms: now,
                    kind: "agent_state_write_failed".into(),
                    severity: Severity::Critical,
                    message: format!(
                        "cannot write the agent state in {}: {e}; reporting from memory until it can",
                        state_dir.display()
                    ),
                    labels: Default::default(),
                })
            }
            (true, false) => {
                let secs = (now - self.failing_since_ms.take().unwrap_or(now)) / 1000;
                tracing::info!(state_dir = %state_dir.display(), failed_for_secs = secs, "the agent state can be written again");
                Some(Event {
                    at_ms: now,
                    kind: "agent_state_write_recovered".into(),
                    severity: Severity::Info,
                    message: format!(
                        "the agent state in {} can be written again after {secs} s",
                        state_dir.display()
                    ),
                    labels: Default::default(),
                })
            }
            (true, true) if changed => {
                if let Some(e) = error {
                    tracing::error!(error = %e, "still cannot write the agent state");
                }
                None
            }
            _ => None,
        }
    }
}

/// An error's text without the file it names: `PATH: cause`.
fn cause(error: &str) -> &str {
    error.rsplit_once(": ").map_or(error, |(_, c)| c)
}

impl Inner {
    /// Saves the counters, recording the outcome.
    fn save_counters(&mut self, state_dir: &std::path::Path) -> Option<Event> {
        let saved = self.counters.save(state_dir);
        self.health
            .record(StateWrite::Counters, saved.as_ref().err(), state_dir)
    }
}

/// When the collector answers 409 for report `seq` saying it applied up to
/// `last_seq`: how far to move the queue and the counter, or `None` when the
/// report really was applied already (offered before, its answer lost).
///
/// The numbers were stale when the collector applied one this process has
/// not handed out yet, or one this process handed out and offers for the
/// first time: both mean an earlier run used them without saving its counter.
fn stale_shift(
    seq: u64,
    last_seq: Option<u64>,
    next_seq: u64,
    first_seq_of_run: u64,
    unknown_outcome: Option<u64>,
) -> Option<u64> {
    let last = last_seq.filter(|l| *l >= seq)?;
    let numbered_here = seq >= first_seq_of_run && unknown_outcome != Some(seq);
    (last >= next_seq || numbered_here).then(|| last + 1 - seq)
}

pub async fn run(cfg: Config, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let client = push::client(&cfg.ca_file, Duration::from_secs(cfg.push.timeout_secs))?;
    let mut replicas = Replicas::new(cfg.collector_urls());
    let cred = credential(&cfg, &client, &mut replicas, shutdown.clone()).await?;
    let spool = Spool::open(&cfg.state_dir.join("spool"), cfg.spool.max_reports, cfg.spool.max_bytes)?;
    let mut counters = Counters::load(&cfg.state_dir)?;
    // Never reuse a sequence number, even if the counters file is older than the spool.
    counters.next_seq = counters.next_seq.max(spool.last_seq().map_or(1, |s| s + 1));
    tracing::info!(
        agent_id = %cred.agent_id,
        next_seq = counters.next_seq,
        spooled = spool.depth(),
        collector = replicas.current(),
        replicas = replicas.len(),
        "agent started"
    );
    let shared = Arc::new(Shared {
        inner: Mutex::new(Inner {
            spool,
            first_seq_of_run: counters.next_seq,
            counters,
            health: Health::default(),
            shift: 0,
            unknown_outcome: None,
        }),
        wake: Notify::new(),
    });

    let sender = tokio::spawn(deliver(
        cfg.clone(),
        client,
        replicas,
        cred.clone(),
        shared.clone(),
        shutdown.clone(),
    ));
    let collected = collect_loop(&cfg, &cred, &shared, shutdown).await;
    if collected.is_ok() {
        // Stopping: the sender stops on the same signal.
        shared.wake.notify_one();
    } else {
        // Collection cannot go on: stop delivering too and exit non-zero,
        // so systemd restarts the agent rather than it idling silently.
        sender.abort();
    }
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
    // The BMC is read on its own thread and interval too; dropping `_ipmi` stops it.
    let _ipmi = if reporter.ipmi_enabled() {
        let (stop, _handle) = crate::ipmi::spawn_worker(cfg.ipmi.clone(), reporter.ipmi_state(), &cfg.state_dir)
            .context("starting the IPMI worker")?;
        Some(stop)
    } else {
        None
    };
    // The RAID tools run on their own thread and interval too.
    let _raid = if reporter.raid_enabled() {
        let (stop, _handle) = crate::raid::spawn_worker(cfg.raid.clone(), reporter.raid_state())
            .context("starting the RAID controller worker")?;
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
        let (seq, shift_then, status) = {
            let mut g = lock(&shared.inner);
            let seq = g.counters.next_seq;
            g.counters.next_seq += 1;
            // Persist before use: a crash can skip a number, never repeat
            // one. When it cannot be saved the report goes out all the same,
            // numbered in memory (see the module's comment).
            pending_events.extend(g.save_counters(&cfg.state_dir));
            let status = AgentStatus {
                spool_depth: g.spool.depth(),
                spool_dropped_total: g.counters.spool_dropped_total,
                rejected_total: g.counters.rejected_total,
                state_write_failing: g.health.failing(),
            };
            (seq, g.shift, status)
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
        let mut report =
            match tokio::time::timeout(Duration::from_secs(u64::from(cfg.interval_secs).max(5)), built).await {
                Ok(Ok(Some(r))) => r,
                _ => {
                    tracing::warn!(seq, "collection still running from an earlier cycle; skipping this one");
                    continue;
                }
            };
        let mut g = lock(&shared.inner);
        // The queue was renumbered while this report was built: follow it.
        report.seq += g.shift - shift_then;
        let body = match encode_gzip(&report) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "cannot encode report");
                continue;
            }
        };
        let pushed = g.spool.push(report.seq, &body);
        if pushed.dropped > 0 {
            let n = pushed.dropped;
            g.counters.spool_dropped_total += n;
            pending_events.extend(g.save_counters(&cfg.state_dir));
            tracing::warn!(
                dropped = n,
                total = g.counters.spool_dropped_total,
                "spool full: dropped the oldest reports"
            );
            pending_events.push(Event {
                at_ms: caretaker_shared::now_ms(),
                kind: "spool_dropped".into(),
                severity: Severity::Warning,
                message: format!(
                    "spool full: dropped {n} oldest report(s), {} in all",
                    g.counters.spool_dropped_total
                ),
                labels: Default::default(),
            });
        }
        pending_events.extend(
            g.health
                .record(StateWrite::Spool, pushed.not_written.as_ref(), &cfg.state_dir),
        );
        drop(g);
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

/// Offers the spool's reports in order, one at a time, to the current
/// replica; a report that fails goes, unchanged (same number, same body),
/// to the next replica when the failure is the replica's.
async fn deliver(
    cfg: Config,
    client: reqwest::Client,
    mut replicas: Replicas,
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
        let next = lock(&shared.inner).spool.peek();
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
                let mut g = lock(&shared.inner);
                if let Some(first) = g.spool.first_seq() {
                    let _ = g.spool.remove(first);
                }
                continue;
            }
        };
        let url = replicas.current().to_owned();
        let delivery = push::send_report(&client, &url, &cred.secret, body).await;
        if !matches!(delivery, Delivery::Retry { .. }) {
            replicas.on_answer();
        }
        match delivery {
            Delivery::Delivered { credential } => {
                if refused.take().is_some() {
                    tracing::info!(
                        seq,
                        "collector accepts this agent's credential again; delivering the spool"
                    );
                }
                if let Some(secret) = credential {
                    take_rotated(&cfg, &mut cred, secret);
                }
                let mut g = lock(&shared.inner);
                g.unknown_outcome = None;
                if let Err(e) = g.spool.remove(seq) {
                    tracing::error!(error = %e, seq, "cannot remove a delivered report from the spool");
                }
                backoff = self::backoff(&cfg);
            }
            Delivery::Duplicate { last_seq } => {
                let mut g = lock(&shared.inner);
                let shift = stale_shift(
                    seq,
                    last_seq,
                    g.counters.next_seq,
                    g.first_seq_of_run,
                    g.unknown_outcome,
                );
                g.unknown_outcome = None;
                match shift {
                    Some(shift) => {
                        tracing::warn!(
                            seq,
                            collector_last_seq = last_seq,
                            queued = g.spool.depth(),
                            "the collector applied sequence numbers this agent's saved counter did not record \
                             (it could not be saved before a restart); renumbering the queued reports past them"
                        );
                        let lost = g.spool.renumber(shift, renumber_gzip);
                        g.counters.next_seq += shift;
                        g.shift += shift;
                        if lost > 0 {
                            g.counters.spool_dropped_total += lost;
                        }
                        // Recorded for the next report; this one is delivered.
                        let _ = g.save_counters(&cfg.state_dir);
                    }
                    None => {
                        tracing::debug!(seq, "collector had this report already");
                        if let Err(e) = g.spool.remove(seq) {
                            tracing::error!(error = %e, seq, "cannot remove a delivered report from the spool");
                        }
                    }
                }
                backoff = self::backoff(&cfg);
            }
            Delivery::Rejected { status, reason } => {
                tracing::error!(seq, status, %reason, "collector rejected the report; discarding it");
                let mut g = lock(&shared.inner);
                g.unknown_outcome = None;
                let _ = g.spool.remove(seq);
                g.counters.rejected_total += 1;
                let _ = g.save_counters(&cfg.state_dir);
            }
            Delivery::Unauthorized { revoked, reason } => {
                let wait = backoff.next().unwrap_or(Duration::from_secs(cfg.push.max_backoff_secs));
                let spooled = lock(&shared.inner).spool.depth();
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
            Delivery::Retry { reason, after, failure } => {
                // The replica may have applied it before failing: its 409,
                // from whichever replica, is believed.
                lock(&shared.inner).unknown_outcome = Some(seq);
                let next = replicas.on_failure(failure);
                log_move(&url, &replicas, &reason);
                if next == Next::TryNow {
                    // The same report, to a replica not tried in this round, now.
                    continue;
                }
                let longest = Duration::from_secs(cfg.push.max_backoff_secs);
                let wait = backoff.next().unwrap_or(longest);
                // The collector's Retry-After (a full store, a full request
                // budget), within the longest backoff configured.
                let wait = after.map_or(wait, |a| wait.max(a.min(longest)));
                tracing::warn!(seq, collector = %url, %reason, retry_in_ms = wait.as_millis() as u64, "delivery failed; report stays spooled");
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.changed() => return,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_409_for_a_number_this_run_handed_out_means_the_counter_was_stale() {
        // Restarted at 10 after an earlier run sent up to 14 unsaved: the
        // first report, 10, is refused naming 14: move the queue to 15.
        assert_eq!(stale_shift(10, Some(14), 11, 10, None), Some(5));
        // Even when the earlier run got exactly as far as this one.
        assert_eq!(stale_shift(10, Some(10), 11, 10, None), Some(1));
        // The collector applied a number not handed out yet: stale, whoever numbered the report.
        assert_eq!(stale_shift(7, Some(20), 12, 10, Some(7)), Some(14));
    }

    #[test]
    fn a_409_for_a_report_offered_before_is_a_real_duplicate() {
        // Sent, the answer lost, sent again: applied the first time.
        assert_eq!(stale_shift(12, Some(12), 13, 10, Some(12)), None);
        // Spooled by an earlier run that sent it and stopped before removing it.
        assert_eq!(stale_shift(8, Some(9), 12, 10, None), None);
        // An older collector that does not say: believe it.
        assert_eq!(stale_shift(12, None, 13, 10, None), None);
    }

    #[test]
    fn the_first_failed_write_and_the_first_good_one_are_events() {
        let dir = std::path::Path::new("/state");
        let err = StateError::Io {
            path: dir.join("counters.json"),
            source: std::io::Error::from_raw_os_error(28),
        };
        let mut h = Health::default();
        let ev = h.record(StateWrite::Counters, Some(&err), dir);
        assert_eq!(ev.map(|e| e.kind), Some("agent_state_write_failed".to_string()));
        assert!(h.failing());
        assert!(h.record(StateWrite::Counters, Some(&err), dir).is_none(), "once");
        assert!(h.record(StateWrite::Spool, Some(&err), dir).is_none());
        // The small counters file fits again, the report does not: still failing.
        assert!(h.record(StateWrite::Counters, None, dir).is_none());
        assert!(h.failing());
        let ev = h.record(StateWrite::Spool, None, dir);
        assert_eq!(ev.map(|e| e.kind), Some("agent_state_write_recovered".to_string()));
        assert!(!h.failing());
    }

    /// A stand-in for one collector replica on 127.0.0.1, over plain HTTP
    /// (the agent's client is what decides TLS; delivery only needs a URL):
    /// answers every request with `status` and `answer`, and keeps each
    /// request's path and body.
    struct Replica {
        url: String,
        seen: Arc<Mutex<Vec<Request>>>,
    }

    /// A request's path and body.
    type Request = (String, Vec<u8>);

    impl Replica {
        async fn start(status: u16, answer: &'static str) -> Replica {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let url = format!("http://{}", listener.local_addr().unwrap_or_else(|e| panic!("{e}")));
            let seen = Arc::new(Mutex::new(Vec::new()));
            let kept = seen.clone();
            tokio::spawn(async move {
                while let Ok((mut conn, _)) = listener.accept().await {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    // Headers, then as much body as Content-Length says.
                    let request = loop {
                        match conn.read(&mut chunk).await {
                            Ok(0) | Err(_) => break None,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                            continue;
                        };
                        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + len {
                            let path = head.split(' ').nth(1).unwrap_or_default().to_string();
                            break Some((path, buf[end + 4..end + 4 + len].to_vec()));
                        }
                    };
                    let Some(request) = request else { continue };
                    lock(&kept).push(request);
                    let reply = format!(
                        "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\nretry-after: 0\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                        answer.len()
                    );
                    let _ = conn.write_all(reply.as_bytes()).await;
                    let _ = conn.shutdown().await;
                }
            });
            Replica { url, seen }
        }

        /// The bodies of the reports it was offered, in order.
        fn reports(&self) -> Vec<Vec<u8>> {
            lock(&self.seen)
                .iter()
                .filter(|(path, _)| path == "/api/v1/reports")
                .map(|(_, body)| body.clone())
                .collect()
        }
    }

    /// A URL nothing listens on: a port taken and given back.
    fn refusing_url() -> String {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let port = l.local_addr().map(|a| a.port()).unwrap_or_else(|e| panic!("{e}"));
        drop(l);
        format!("http://127.0.0.1:{port}")
    }

    /// A config delivering to `urls` (plain HTTP, past the config's check),
    /// whose backoff is `min_backoff_ms` at least.
    fn config_for(dir: &std::path::Path, urls: &[&str], min_backoff_ms: u64) -> Config {
        let mut cfg = Config::parse(
            &format!(
                "collector_url = \"https://x\"\nca_file = \"/c\"\nstate_dir = \"{}\"\n[push]\ntimeout_secs = 5\nmin_backoff_ms = {min_backoff_ms}\nmax_backoff_secs = 60\n",
                dir.display()
            ),
            std::path::Path::new("agent.toml"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        cfg.collector_url = None;
        cfg.collector_urls = Some(urls.iter().map(|u| u.to_string()).collect());
        cfg
    }

    /// Runs the delivery loop over a spool holding `reports` (seq, body)
    /// until `done` holds or `within` passes; says whether `done` held, and
    /// how many reports are left in the spool.
    async fn deliver_until(
        cfg: &Config,
        reports: &[(u64, &[u8])],
        within: Duration,
        done: impl Fn(&Shared) -> bool,
    ) -> (bool, usize) {
        let mut spool = Spool::open(&cfg.state_dir.join("spool"), 100, 1 << 20).unwrap_or_else(|e| panic!("{e}"));
        for (seq, body) in reports {
            spool.push(*seq, body);
        }
        let next_seq = reports.iter().map(|(s, _)| s + 1).max().unwrap_or(1);
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                spool,
                counters: Counters {
                    next_seq,
                    ..Counters::default()
                },
                health: Health::default(),
                shift: 0,
                first_seq_of_run: 1,
                unknown_outcome: None,
            }),
            wake: Notify::new(),
        });
        let cred = Credential {
            agent_id: "a1".into(),
            secret: "s".into(),
            collector_url: String::new(),
        };
        let (stop, stopped) = watch::channel(false);
        let sender = tokio::spawn(deliver(
            cfg.clone(),
            reqwest::Client::new(),
            Replicas::new(cfg.collector_urls()),
            cred,
            shared.clone(),
            stopped,
        ));
        let start = std::time::Instant::now();
        let mut held = false;
        while start.elapsed() < within {
            if done(&shared) {
                held = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = stop.send(true);
        shared.wake.notify_one();
        let _ = sender.await;
        let left = lock(&shared.inner).spool.depth();
        (held, left)
    }

    #[tokio::test]
    async fn a_report_goes_to_the_next_replica_at_once_when_the_first_refuses_connections() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let live = Replica::start(200, "{}").await;
        let dead = refusing_url();
        // A backoff far longer than the test waits: only failing over at once delivers in time.
        let cfg = config_for(dir.path(), &[&dead, &live.url], 60_000);
        let (drained, left) = deliver_until(
            &cfg,
            &[(7, b"report seven"), (8, b"report eight")],
            Duration::from_secs(10),
            |s| lock(&s.inner).spool.depth() == 0,
        )
        .await;
        assert!(drained && left == 0, "spool left: {left}");
        assert_eq!(
            live.reports(),
            [b"report seven".to_vec(), b"report eight".to_vec()],
            "each report once, in order"
        );
    }

    #[tokio::test]
    async fn a_503_moves_the_same_report_to_the_next_replica_and_the_agent_stays_there() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let draining = Replica::start(503, "{\"error\":\"unavailable\",\"reason\":\"draining\"}").await;
        let live = Replica::start(200, "{}").await;
        let cfg = config_for(dir.path(), &[&draining.url, &live.url], 60_000);
        let (drained, left) = deliver_until(
            &cfg,
            &[(3, b"report three"), (4, b"report four")],
            Duration::from_secs(10),
            |s| lock(&s.inner).spool.depth() == 0,
        )
        .await;
        assert!(drained && left == 0, "spool left: {left}");
        // The first report was offered to the draining replica, then, unchanged, to the next;
        // the second went straight to the replica that answers.
        assert_eq!(draining.reports(), [b"report three".to_vec()]);
        assert_eq!(live.reports(), [b"report three".to_vec(), b"report four".to_vec()]);
    }

    #[tokio::test]
    async fn a_429_keeps_the_agent_on_its_replica() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let busy = Replica::start(429, "{\"error\":\"rate_limited\",\"reason\":\"slow down\"}").await;
        let other = Replica::start(200, "{}").await;
        let cfg = config_for(dir.path(), &[&busy.url, &other.url], 20);
        let (_, left) = deliver_until(&cfg, &[(1, b"report one")], Duration::from_millis(800), |_| false).await;
        assert_eq!(left, 1, "the report stays spooled");
        assert!(
            busy.reports().len() >= 2,
            "retried on the same replica: {}",
            busy.reports().len()
        );
        assert!(other.reports().is_empty(), "never moved");
    }

    #[tokio::test]
    async fn a_rejected_report_does_not_move_the_agent() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let refusing = Replica::start(400, "{\"error\":\"bad_report\",\"reason\":\"no\"}").await;
        let other = Replica::start(200, "{}").await;
        let cfg = config_for(dir.path(), &[&refusing.url, &other.url], 60_000);
        let (dropped, _) = deliver_until(
            &cfg,
            &[(1, b"report one"), (2, b"report two")],
            Duration::from_secs(10),
            |s| lock(&s.inner).counters.rejected_total == 2,
        )
        .await;
        assert!(dropped);
        assert_eq!(refusing.reports().len(), 2);
        assert!(other.reports().is_empty());
    }

    #[tokio::test]
    async fn enrollment_fails_over_and_the_credential_names_the_replica_that_enrolled_it() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let broken = Replica::start(500, "{\"error\":\"internal\",\"reason\":\"oops\"}").await;
        let live = Replica::start(200, "{\"agent_id\":\"agent-1\",\"credential\":\"secret\"}").await;
        let dead = refusing_url();
        let mut cfg = config_for(dir.path(), &[&dead, &broken.url, &live.url], 60_000);
        cfg.enrollment_token = Some("token".into());
        let mut replicas = Replicas::new(cfg.collector_urls());
        let (_stop, stopped) = watch::channel(false);
        let enrolled = tokio::time::timeout(
            Duration::from_secs(10),
            credential(&cfg, &reqwest::Client::new(), &mut replicas, stopped),
        )
        .await
        .unwrap_or_else(|_| panic!("enrollment waited for the backoff"))
        .unwrap_or_else(|e| panic!("{e:#}"));
        assert_eq!(enrolled.agent_id, "agent-1");
        assert_eq!(enrolled.collector_url, live.url);
        assert_eq!(
            replicas.current(),
            live.url,
            "delivery starts where enrollment succeeded"
        );
        let saved = Credential::load(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(saved.map(|c| c.collector_url), Some(live.url.clone()));
        assert_eq!(lock(&broken.seen).len(), 1);
    }
}
