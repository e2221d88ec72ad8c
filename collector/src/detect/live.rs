//! Live detection: one task owns the [`Engine`], fed with every committed
//! report through a bounded channel, and ticks it (and the lifecycle timers)
//! every `tick_secs`. Signals go to the cases store through the store writer,
//! so SQLite keeps a single writer.
//!
//! Ingest never waits for detection. The task takes what the channel holds
//! into a [`Backlog`] per host (cheap: nothing is evaluated there) and then
//! evaluates the hosts in turn, one report each, so a host flooding large
//! reports delays another host's report by at most one of its own, never by
//! its whole queue. A host keeps at most [`HOST_QUEUE`] reports waiting: when
//! it sends faster than it is evaluated, its newest report takes the place
//! of the newest one waiting (counted as `coalesced`). What the rules need
//! survives that: the oldest waiting reports are evaluated in order, and the
//! newest carries every series' current value, so a fault still present is
//! seen, and counters are cumulative, so an increase is seen in full; the
//! events of a superseded report move over to the one that took its place
//! (an event is not repeated by the next report). Only
//! when every host's waiting reports together reach [`QUEUE`] is a report of
//! a host with none waiting refused (`dropped`).
//!
//! The task checks for shutdown between reports: [`Detector::stop`] ends it
//! within a bounded time whatever the backlog.
//!
//! The engine's state survives restarts: the stored checkpoints are restored
//! before the first report is evaluated, and every `checkpoint_secs` the
//! hosts whose state changed since their last checkpoint are saved in one
//! store job (and all of them once more at shutdown). See
//! [`crate::store::checkpoints`] and the engine's `checkpoint.rs`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use caretaker_shared::wire::Report;
use tokio::sync::{mpsc, watch};

use super::Engine;
use crate::cases::{Policy, Signal};
use crate::metrics::Metrics;
use crate::replicas::Replica;
use crate::rules::RuleSet;
use crate::store::checkpoints::{self, Checkpoint};
use crate::store::leases;
use crate::writer::{DetectWrite, Writer};

/// Reports waiting for evaluation at most, all hosts together.
pub const QUEUE: usize = 4096;

/// Reports of one host waiting at most; a newer one then takes the place of
/// the newest waiting.
pub const HOST_QUEUE: usize = 4;

/// Most reports evaluated before their signals are written in one job.
const BATCH: usize = 64;

/// Most samples evaluated before their signals are written and the tick,
/// the channel and shutdown are looked at again.
const BATCH_SAMPLES: usize = 20_000;

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

/// The running detection task.
pub struct Detector {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Detector {
    /// Asks the task to stop after the report in hand, checkpoint what
    /// changed, and waits for it at most `within`; past that it is aborted
    /// (its unwritten signals are lost: the next reports carry the same
    /// series again; so are unsaved checkpoints: those hosts restore the
    /// state of their previous checkpoint).
    pub async fn stop(self, within: Duration) {
        let _ = self.stop.send(true);
        let mut task = self.task;
        if tokio::time::timeout(within, &mut task).await.is_err() {
            tracing::warn!(
                waited_secs = within.as_secs(),
                "detection did not stop in time; abandoned"
            );
            task.abort();
        }
    }
}

/// How the engine's state is kept across restarts, and shared with the
/// other replicas on the store.
#[derive(Debug)]
pub struct Checkpointing {
    /// How often the hosts whose state changed are checkpointed (`[detect]
    /// checkpoint_secs`); zero: only at shutdown.
    pub every: Duration,
    /// This replica: the hosts it evaluates are those whose lease it holds
    /// (see [`crate::replicas`]). Their checkpoints are restored when it
    /// takes them (at start: those it held before, those nobody holds).
    pub replica: Arc<Replica>,
}

impl Default for Checkpointing {
    fn default() -> Self {
        Self {
            every: Duration::ZERO,
            replica: Replica::alone(),
        }
    }
}

/// Hosts adopted in one round at most (the rest at the next rounds).
const ADOPT: usize = 2_000;

/// Starts the detection task; `max_series` bounds the series kept per host
/// (see [`Engine::max_series_per_host`]).
pub fn start(
    rules: RuleSet,
    writer: Writer,
    metrics: Arc<Metrics>,
    policy: Policy,
    tick: Duration,
    max_series: usize,
    checkpointing: Checkpointing,
) -> (DetectHandle, Detector) {
    let (tx, rx) = mpsc::channel(QUEUE);
    let (stop, stopped) = watch::channel(false);
    let engine = Engine::new(rules)
        .forget_gone_after(2 * policy.min_hold_ms)
        .max_series_per_host(max_series);
    let task = tokio::spawn(run(
        engine,
        rx,
        Tasks {
            writer,
            metrics: metrics.clone(),
            policy,
            max_series,
            replica: checkpointing.replica.clone(),
        },
        tick,
        checkpointing.every,
        stopped,
    ));
    (DetectHandle { tx, metrics }, Detector { stop, task })
}

/// What the task writes to and counts in.
struct Tasks {
    writer: Writer,
    metrics: Arc<Metrics>,
    policy: Policy,
    max_series: usize,
    replica: Arc<Replica>,
}

async fn run(
    mut engine: Engine,
    mut rx: mpsc::Receiver<Msg>,
    t: Tasks,
    tick: Duration,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    // The hosts this replica held before its start, and those nobody
    // holds, restored from their checkpoints before the first report.
    let mut owned = Owned::default();
    owned.round(&mut engine, &t).await;
    let mut leases = tokio::time::interval_at(tokio::time::Instant::now() + t.replica.round(), t.replica.round());
    leases.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut timer = tokio::time::interval(tick);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first checkpoint one period after the start: what was just
    // restored is saved already.
    let every = if every.is_zero() {
        // Only at shutdown: a period no run reaches.
        Duration::from_secs(100 * 365 * 86_400)
    } else {
        every
    };
    let mut saver = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    saver.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut backlog = Backlog::default();
    let mut sweep = Sweep::default();
    let mut open = true;
    loop {
        if *stop.borrow() {
            break;
        }
        // Everything waiting goes to the backlog: cheap, so ingest's
        // channel does not fill behind one slow report.
        while open {
            match rx.try_recv() {
                Ok(msg) => take(&mut engine, &mut backlog, &t.metrics, msg),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => open = false,
            }
        }
        if backlog.is_empty() && sweep.is_empty() {
            if !open {
                break;
            }
            tokio::select! {
                _ = stop.changed() => break,
                msg = rx.recv() => match msg {
                    Some(msg) => take(&mut engine, &mut backlog, &t.metrics, msg),
                    None => open = false,
                },
                _ = timer.tick() => tick_all(&mut engine, &t).await,
                _ = saver.tick() => sweep.start(&engine),
                _ = leases.tick() => owned.round(&mut engine, &t).await,
            }
            continue;
        }
        if !open && backlog.is_empty() {
            break;
        }
        // A tick that is due runs between rounds, however long the backlog.
        tokio::select! {
            biased;
            _ = timer.tick() => tick_all(&mut engine, &t).await,
            _ = saver.tick() => sweep.start(&engine),
            _ = leases.tick() => owned.round(&mut engine, &t).await,
            () = std::future::ready(()) => {}
        }
        // A slice of a checkpoint in progress, between two rounds.
        sweep.slice(&mut engine, &t).await;
        // One round: hosts in turn, one report each, bounded in work; the
        // signals go to the store in one job.
        let (mut batch, mut samples) = (Vec::new(), 0usize);
        for _ in 0..BATCH {
            if *stop.borrow() || samples >= BATCH_SAMPLES {
                break;
            }
            let Some((report, at_ms)) = backlog.pop() else {
                break;
            };
            samples += report.samples.len();
            batch.push((report, at_ms));
        }
        // Hosts new to this replica are taken (and restored) first.
        owned
            .take(&mut engine, &t, batch.iter().map(|(r, _)| r.host.as_str()))
            .await;
        let mut signals = Vec::new();
        for (report, at_ms) in &batch {
            signals.extend(observe(&mut engine, &t, report, *at_ms));
        }
        write(&t, signals).await;
    }
    // What changed since the last checkpoint, so the next start (here or
    // on another collector) carries on from here.
    sweep.start(&engine);
    while !sweep.is_empty() {
        sweep.slice(&mut engine, &t).await;
    }
    tracing::debug!(waiting = backlog.len(), "detection stopped");
}

/// Restores the stored checkpoints into the (empty) engine. One that cannot
/// be restored (another format, corrupt) is skipped with a warning: its
/// host starts empty, as every host did before checkpoints.
pub(super) fn restore_checkpoints(engine: &mut Engine, saved: Vec<Checkpoint>) {
    if saved.is_empty() {
        return;
    }
    let started = Instant::now();
    let now = caretaker_shared::now_ms();
    let rules = engine.rules_fingerprint();
    let (mut hosts, mut skipped, mut total) = (0usize, 0usize, super::Restored::default());
    for c in saved {
        match engine.restore_host(&c.host, &c.body, now) {
            Ok(r) => {
                hosts += 1;
                total.series += r.series;
                total.series_dropped += r.series_dropped;
                total.states += r.states;
                total.states_dropped += r.states_dropped;
            }
            Err(e) => {
                skipped += 1;
                tracing::warn!(host = %c.host, saved_at_ms = c.saved_at_ms, error = %e,
                    "detection checkpoint not restored; the host's windows start afresh");
            }
        }
        if c.rules_fingerprint != rules {
            tracing::debug!(host = %c.host, "checkpoint saved under other rules; changed rules start afresh");
        }
    }
    tracing::info!(
        hosts,
        skipped,
        series = total.series,
        series_dropped = total.series_dropped,
        states = total.states,
        states_dropped = total.states_dropped,
        took_ms = started.elapsed().as_millis() as u64,
        "detection state restored from checkpoints"
    );
}

/// Hosts encoded and stored per slice of a checkpoint: a slice holds the
/// detection task for well under 100 ms (~0.15 ms per realistic host, see
/// BENCHMARKS.md), so reports are not held back behind the whole fleet's.
const CHECKPOINT_SLICE: usize = 256;

/// A checkpoint in progress: the hosts that had changed when it started,
/// saved a slice at a time between rounds of reports. (A host that changes
/// again meanwhile waits for the next checkpoint, so the hosts early in the
/// list cannot starve the rest.)
#[derive(Default)]
struct Sweep {
    hosts: VecDeque<String>,
    started: Option<Instant>,
    stored: usize,
    bytes: usize,
    failed: usize,
}

impl Sweep {
    fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// Starts a checkpoint of the hosts changed now, unless one is running.
    fn start(&mut self, engine: &Engine) {
        if !self.hosts.is_empty() {
            return;
        }
        *self = Sweep {
            hosts: engine.changed_hosts().into(),
            started: Some(Instant::now()),
            ..Sweep::default()
        };
    }

    /// Encodes and stores the next slice in one store job. Hosts whose
    /// checkpoint could not be stored stay marked as changed, so the next
    /// checkpoint tries again. The last slice publishes the metrics.
    async fn slice(&mut self, engine: &mut Engine, t: &Tasks) {
        if self.hosts.is_empty() {
            return;
        }
        let n = self.hosts.len().min(CHECKPOINT_SLICE);
        let hosts: Vec<String> = self.hosts.drain(..n).collect();
        let states = engine.checkpoint_hosts(&hosts);
        let bytes: usize = states.iter().map(|(_, b)| b.len()).sum();
        let rules = engine.rules_fingerprint();
        let now = caretaker_shared::now_ms();
        let owner = t.replica.id.clone();
        let saved = t
            .writer
            .run(move |c| checkpoints::save(c, &rules, now, &states, Some(&owner)).map(serde_json::Value::from))
            .await;
        match saved {
            Ok(_) => {
                self.stored += hosts.len();
                self.bytes += bytes;
            }
            Err(e) => {
                self.failed += hosts.len();
                engine.mark_changed(hosts.iter().map(String::as_str));
                tracing::error!(error = %e, hosts = hosts.len(), "cannot store detection checkpoints; retried at the next checkpoint");
            }
        }
        if !self.hosts.is_empty() {
            return;
        }
        let took = self.started.map(|s| s.elapsed()).unwrap_or_default();
        if self.failed == 0 {
            t.metrics.checkpoint_seconds.set(took.as_secs_f64());
            t.metrics
                .checkpoint_bytes
                .set(i64::try_from(self.bytes).unwrap_or(i64::MAX));
            t.metrics.checkpoint_at.set(now / 1000);
        }
        tracing::debug!(
            hosts = self.stored,
            failed = self.failed,
            bytes = self.bytes,
            took_ms = took.as_millis() as u64,
            "detection state checkpointed"
        );
    }
}

/// A message from the channel: a report joins its host's backlog, rules
/// are swapped at once (between two evaluations).
fn take(engine: &mut Engine, backlog: &mut Backlog, metrics: &Metrics, msg: Msg) {
    match msg {
        Msg::Rules(set) => {
            tracing::info!(rules = set.rules.len(), "rules reloaded");
            engine.replace_rules(set);
        }
        Msg::Report(report, at_ms) => {
            // Heard from, whether or not its report is evaluated soon: a
            // tick between two rounds of a long backlog must not find the
            // host silent.
            engine.heard_from(&report.host, at_ms);
            match backlog.push(report, at_ms) {
                Pushed::Queued => {}
                Pushed::Coalesced => {
                    metrics.coalesced.inc();
                }
                Pushed::Dropped(host) => {
                    metrics.dropped.inc();
                    tracing::warn!(%host, "detection queue full; report not evaluated");
                }
            }
        }
    }
}

async fn tick_all(engine: &mut Engine, t: &Tasks) {
    let now = caretaker_shared::now_ms();
    let started = Instant::now();
    let signals = engine.tick(now);
    t.metrics.evaluation.observe(started.elapsed().as_secs_f64());
    write(t, signals).await;
    // The lifecycle is fleet-wide: one replica runs it.
    if !t.replica.holds(crate::replicas::LIFECYCLE) {
        return;
    }
    match t.writer.tick_cases(now, t.policy).await {
        Ok(w) => record(&t.metrics, w),
        Err(e) => tracing::error!(error = %e, "lifecycle tick failed"),
    }
}

/// The hosts this replica evaluates: those whose detection lease it holds.
#[derive(Default)]
struct Owned {
    hosts: HashSet<String>,
}

impl Owned {
    /// Takes the hosts of reports about to be evaluated that this replica
    /// does not hold yet: a host's detection goes where its reports arrive.
    /// A host that came from another replica (or from this one's earlier
    /// start) gets its checkpoint restored first, so its windows carry on.
    async fn take<'a>(&mut self, engine: &mut Engine, t: &Tasks, hosts: impl Iterator<Item = &'a str>) {
        let new: Vec<String> = hosts
            .filter(|h| !self.hosts.contains(*h))
            .map(String::from)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        if new.is_empty() {
            return;
        }
        let id = t.replica.id.clone();
        let taken = t
            .writer
            .run(move |c| {
                let mut out = Vec::with_capacity(new.len());
                for host in new {
                    let before = leases::take(c, &host, &id)?;
                    let saved = match &before {
                        Some(b) if *b == id => None,
                        _ => checkpoints::load(c, &host)?,
                    };
                    out.push((host, before, saved));
                }
                Ok(out)
            })
            .await;
        let taken = match taken {
            Ok(t) => t,
            Err(e) => {
                // Evaluated anyway; taken again with the next report.
                tracing::warn!(error = %e, "cannot take the detection lease of new hosts");
                return;
            }
        };
        let mut restore = Vec::new();
        for (host, before, saved) in taken {
            match before.as_deref() {
                Some(b) if b == t.replica.id => {}
                Some(b) => {
                    tracing::info!(%host, from = %b, replica = %t.replica.name, "host's detection taken over");
                    engine.drop_host(&host);
                    restore.extend(saved);
                }
                None => {
                    if !engine.knows_host(&host) {
                        restore.extend(saved);
                    }
                }
            }
            self.hosts.insert(host);
        }
        restore_checkpoints(engine, restore);
    }

    /// Reads the leases held, lets go of the hosts another replica took
    /// (their state there is the one that counts), and adopts the hosts
    /// nobody holds any more, from their checkpoints.
    async fn round(&mut self, engine: &mut Engine, t: &Tasks) {
        let (id, earlier, lease_ms) = (t.replica.id.clone(), t.replica.earlier_self(), t.replica.lease_ms());
        let found = t
            .writer
            .run(move |c| {
                // The hosts' leases stand on this replica's heartbeat:
                // refreshed here too, so they stand on the task evaluating
                // them, whatever the coordinator is doing.
                let now = caretaker_shared::now_ms();
                leases::touch(c, &id, now)?;
                let live_since = now - lease_ms;
                let kept = leases::hosts_held(c, &id)?;
                let adopted = leases::adopt_orphans(c, &id, &earlier, live_since, ADOPT)?;
                let mut saved = Vec::with_capacity(adopted.len());
                for host in &adopted {
                    saved.extend(checkpoints::load(c, host)?);
                }
                Ok((kept, adopted, saved))
            })
            .await;
        let (kept, adopted, saved) = match found {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %e, "cannot renew the hosts' detection leases");
                return;
            }
        };
        let now_held: HashSet<String> = kept.into_iter().chain(adopted.iter().cloned()).collect();
        for gone in self.hosts.difference(&now_held) {
            tracing::info!(host = %gone, replica = %t.replica.name, "host's detection moved to another replica");
            engine.drop_host(gone);
        }
        for host in &adopted {
            engine.drop_host(host);
        }
        if !adopted.is_empty() {
            tracing::info!(hosts = adopted.len(), replica = %t.replica.name, "hosts adopted from their checkpoints");
        }
        self.hosts = now_held;
        restore_checkpoints(engine, saved);
    }
}

/// Evaluates one report, and publishes its host's series against the bound
/// (logged when the host reaches it, and when it is back under).
fn observe(engine: &mut Engine, t: &Tasks, report: &Report, at_ms: i64) -> Vec<Signal> {
    let before = engine.series_of(&report.host).unwrap_or_default();
    let started = Instant::now();
    let signals = engine.observe(report, at_ms);
    t.metrics.evaluation.observe(started.elapsed().as_secs_f64());
    let Some(after) = engine.series_of(&report.host) else {
        return signals;
    };
    let host = vec![("host".to_string(), report.host.clone())];
    t.metrics
        .series
        .get_or_create(&host)
        .set(i64::try_from(after.live).unwrap_or(i64::MAX));
    if after.dropped > before.dropped {
        t.metrics
            .series_dropped
            .get_or_create(&host)
            .inc_by(after.dropped - before.dropped);
    }
    match (before.limited, after.limited) {
        (false, true) => tracing::warn!(
            host = %report.host,
            max_series_per_host = t.max_series,
            "host reached its bound of detection series; its new series are not evaluated until old ones are gone"
        ),
        (true, false) => {
            tracing::info!(host = %report.host, series = after.live, "host back under its bound of detection series")
        }
        _ => {}
    }
    signals
}

async fn write(t: &Tasks, signals: Vec<Signal>) {
    if signals.is_empty() {
        return;
    }
    match t.writer.signals(signals, t.policy).await {
        Ok(w) => record(&t.metrics, w),
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

/// Reports waiting for evaluation, per host, taken by host in turn.
#[derive(Debug, Default)]
struct Backlog {
    by_host: HashMap<String, VecDeque<(Box<Report>, i64)>>,
    /// Hosts with reports waiting, next first.
    turn: VecDeque<String>,
    len: usize,
}

#[derive(Debug, PartialEq, Eq)]
enum Pushed {
    Queued,
    /// It took the place of its host's newest waiting report.
    Coalesced,
    /// Refused: the backlog is full and its host had nothing waiting.
    Dropped(String),
}

impl Backlog {
    fn push(&mut self, report: Box<Report>, at_ms: i64) -> Pushed {
        let waiting = self.by_host.get_mut(&report.host);
        match waiting {
            Some(q) if q.len() >= HOST_QUEUE || self.len >= QUEUE => {
                if let Some(newest) = q.back_mut() {
                    // Events are history, not state: the newer report does
                    // not repeat them, so the superseded report's move over.
                    let (old, _) = std::mem::replace(newest, (report, at_ms));
                    let mut events = old.events;
                    events.append(&mut newest.0.events);
                    newest.0.events = events;
                }
                Pushed::Coalesced
            }
            Some(q) => {
                q.push_back((report, at_ms));
                self.len += 1;
                Pushed::Queued
            }
            None if self.len >= QUEUE => Pushed::Dropped(report.host.clone()),
            None => {
                let host = report.host.clone();
                self.turn.push_back(host.clone());
                self.by_host.insert(host, VecDeque::from([(report, at_ms)]));
                self.len += 1;
                Pushed::Queued
            }
        }
    }

    /// The oldest waiting report of the host whose turn it is.
    fn pop(&mut self) -> Option<(Box<Report>, i64)> {
        let host = self.turn.pop_front()?;
        let q = self.by_host.get_mut(&host)?;
        let next = q.pop_front();
        if q.is_empty() {
            self.by_host.remove(&host);
        } else {
            self.turn.push_back(host);
        }
        if next.is_some() {
            self.len -= 1;
        }
        next
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn len(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(host: &str, seq: u64) -> Box<Report> {
        Box::new(Report {
            version: caretaker_shared::wire::PROTOCOL_VERSION,
            agent_id: host.to_string(),
            seq,
            collected_at_ms: 0,
            interval_secs: 15,
            host: host.to_string(),
            labels: Default::default(),
            samples: Vec::new(),
            events: Vec::new(),
            inventory: None,
            disks: None,
        })
    }

    /// A tick between two rounds of a long backlog (a busy collector, or
    /// replicas' agents all failing over to one) found hosts silent whose
    /// reports were waiting, and opened a host_unreachable case on each.
    #[test]
    fn a_host_whose_report_waits_in_the_backlog_is_not_unreachable() {
        #![allow(clippy::unwrap_used)]
        let mut engine = Engine::new(crate::rules::load(None).unwrap());
        let metrics = Metrics::new(Arc::new(crate::fleet::Fleet::default()), 3).unwrap();
        let mut backlog = Backlog::default();
        let unreachable =
            |signals: &[crate::cases::Signal]| signals.iter().any(|s| s.rule == "host_unreachable" && s.firing);
        let t0 = 1_700_000_000_000;
        // Every 15 s; unreachable after 3 intervals (45 s) of silence.
        engine.observe(&report("busy", 1), t0);
        // Received 40 s later, still waiting to be evaluated 60 s after the
        // first: heard from 20 s ago, so not silent.
        take(
            &mut engine,
            &mut backlog,
            &metrics,
            Msg::Report(report("busy", 2), t0 + 40_000),
        );
        assert!(!unreachable(&engine.tick(t0 + 60_000)));
        // Silent since, it is unreachable...
        let silent = t0 + 40_000 + 10 * 60_000;
        assert!(unreachable(&engine.tick(silent)));
        // ...and only its report, evaluated, brings it back.
        take(
            &mut engine,
            &mut backlog,
            &metrics,
            Msg::Report(report("busy", 3), silent + 1),
        );
        assert!(unreachable(&engine.tick(silent + 2)));
        engine.observe(&report("busy", 3), silent + 3);
        assert!(!unreachable(&engine.tick(silent + 4)));
        // A host this replica does not hold is left to the one that does.
        take(
            &mut engine,
            &mut backlog,
            &metrics,
            Msg::Report(report("elsewhere", 1), silent),
        );
        assert!(engine.tick(silent + 5).iter().all(|s| s.key.asset != "elsewhere"));
    }

    fn order(b: &mut Backlog) -> Vec<(String, u64)> {
        std::iter::from_fn(|| b.pop().map(|(r, _)| (r.host.clone(), r.seq))).collect()
    }

    // One host's flood of reports delayed every other host's detection: the
    // hosts are now taken in turn, so a report of another host waits for at
    // most one report of the flooding one.
    #[test]
    fn a_flooding_host_delays_another_by_one_report_at_most() {
        let mut b = Backlog::default();
        for seq in 1..=3 {
            assert_eq!(b.push(report("flood", seq), 0), Pushed::Queued);
        }
        assert_eq!(b.push(report("quiet", 1), 0), Pushed::Queued);
        let got = order(&mut b);
        assert_eq!(got[..2], [("flood".into(), 1), ("quiet".into(), 1)], "{got:?}");
        assert!(b.is_empty());
    }

    // A host sending faster than it is evaluated keeps its oldest waiting
    // reports, in order, and its newest: the ones between are superseded.
    #[test]
    fn a_host_behind_keeps_its_oldest_and_its_newest_report() {
        let mut b = Backlog::default();
        let pushed: Vec<Pushed> = (1..=10).map(|seq| b.push(report("flood", seq), 0)).collect();
        assert_eq!(
            pushed.iter().filter(|p| **p == Pushed::Coalesced).count(),
            10 - HOST_QUEUE
        );
        assert_eq!(b.len(), HOST_QUEUE);
        let seqs: Vec<u64> = order(&mut b).into_iter().map(|(_, s)| s).collect();
        assert_eq!(seqs, [1, 2, 3, 10]);
    }

    // Events are not state: a superseded report's events are evaluated with
    // the report that took its place, in order.
    #[test]
    fn a_superseded_report_passes_its_events_on() {
        let mut b = Backlog::default();
        let event = |n: i64| caretaker_shared::wire::Event {
            at_ms: n,
            kind: "raid_disk_failed".into(),
            severity: caretaker_shared::wire::Severity::Critical,
            message: format!("event {n}"),
            labels: Default::default(),
        };
        for seq in 1..=(HOST_QUEUE as u64 + 2) {
            let mut r = report("flood", seq);
            r.events.push(event(seq as i64));
            b.push(r, 0);
        }
        let newest = std::iter::from_fn(|| b.pop())
            .last()
            .map(|(r, _)| r)
            .unwrap_or_else(|| panic!("no report"));
        let got: Vec<i64> = newest.events.iter().map(|e| e.at_ms).collect();
        let n = HOST_QUEUE as i64;
        assert_eq!(got, [n, n + 1, n + 2]);
    }

    // The whole backlog is bounded: a new host is refused once it is full,
    // a host already waiting coalesces.
    #[test]
    fn the_backlog_is_bounded_for_all_hosts_together() {
        let mut b = Backlog::default();
        for h in 0..QUEUE {
            assert_eq!(b.push(report(&format!("h{h}"), 1), 0), Pushed::Queued);
        }
        assert_eq!(b.push(report("late", 1), 0), Pushed::Dropped("late".into()));
        assert_eq!(b.push(report("h7", 2), 0), Pushed::Coalesced);
        assert_eq!(b.len(), QUEUE);
    }
}
