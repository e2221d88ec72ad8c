//! Replay: runs a recorded stream of reports through the same pipeline
//! `serve` runs after decoding ([`crate::pipeline`]: the report stored with
//! its assets, disk records and assessment, recommendations, the rule
//! engine, holds, the findings and cases, the queue with its contracts, the
//! lifecycle tick) on an in-memory store in virtual time, and says what
//! changed. It is how rules and policies are tried without waiting for real
//! faults: the same input always yields the same events.
//!
//! Input: JSON lines, each a wire [`Report`] (its time is `collected_at_ms`)
//! or `{"at_ms": .., "report": {..}}`. Blank lines are skipped. Each report
//! is decoded and validated as `serve` does ([`crate::ingest::decode`]); a
//! line that `serve` would refuse is an error naming the line and the field.
//! Each agent's reports are applied in the given order (their sequence
//! numbers are renumbered, so a hand-made stream need not count them), and
//! each is admitted as `serve` admits it: an agent is enrolled with its first
//! report, and a later one claiming another host or customer is an error.
//!
//! Time: before each report the engine and the store are ticked at every
//! step of the smallest report interval seen so far across the gap since the
//! previous report, so a host that goes silent is noticed even when nothing
//! else reports, and quiet periods pass. After each report they are ticked at
//! its time.
//!
//! Restarts: [`ReplayOptions::restarts`] restarts the collector at virtual
//! times: before the first report at or after each, every host's engine
//! state is checkpointed into the store and a fresh engine restores it from
//! there ([`crate::store::checkpoints`]), as `serve` does across a restart.
//! With the state carried over, the events are those of a run without the
//! restart.
//!
//! Events, in the order they happened:
//! - findings and cases: `opened`, `recurrence` (opened, linked to the ended
//!   item it repeats: `recurrence_of`), `reopened`, `recovered`, `resolved`,
//!   `cleared` (a finding's signal cleared), `fixed`, `flapping` (the mark was
//!   set), and `updated` for any other status change or the mark lifted;
//! - held signals: `held` (status `held:<reason>`);
//! - recommendations: `recommended`, `escalated` (sooner), `done`,
//!   `dismissed`, and `updated` for accepted or reserved.
//!
//! `detail` carries the evidence a person checks: a forecast's date, the
//! item a recurrence repeats, a recommendation's part, urgency and due date.
//! Occurrences that change nothing are not printed: a firing fault would
//! otherwise print a line per report.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::BufRead;

use caretaker_shared::wire::Report;
use serde::Serialize;
use serde_json::{Value, json};

use super::Engine;
use crate::cases::hold::{self, HeldSignal};
use crate::cases::store;
use crate::cases::{Item, Policy, Status};
use crate::contracts::Contracts;
use crate::ingest::{self, Decoded, Encoding};
use crate::predict::records;
use crate::rules::RuleSet;
use crate::store::agents::{Agents, NewAgent};
use crate::store::items::Items;
use crate::store::recommendations::Recommendations;
use crate::store::sql::Db;
use crate::store::{StoreError, checkpoints};
use crate::writer::{AssetState, Incoming};

/// One change, as printed by `caretaker-collector replay`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReplayEvent {
    pub at_ms: i64,
    pub event: &'static str,
    pub id: i64,
    /// `finding`, `case` or `recommendation`.
    pub kind: String,
    /// The item's identity key, or the recommendation's part key.
    pub key: String,
    /// The rule, or the recommendation's reason.
    pub rule: String,
    /// The item's severity, or the recommendation's urgency.
    pub severity: String,
    pub status: String,
    #[serde(skip_serializing_if = "Value::is_null")]
    pub detail: Value,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The input is malformed (the CLI exits 2).
    #[error("line {line}: {reason}")]
    BadLine { line: usize, reason: String },
    /// A report `serve` would refuse at admission: it claims another
    /// identity than its agent's first report (the CLI exits 2).
    #[error("report {seq} of agent {agent_id}: {reason}")]
    Refused { agent_id: String, seq: u64, reason: String },
    #[error("reading the input: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ReplayError {
    /// Whether the fault is in the input rather than in the replay.
    pub fn is_bad_input(&self) -> bool {
        matches!(self, ReplayError::BadLine { .. } | ReplayError::Refused { .. })
    }
}

/// What a replay runs with besides the rules: the lifecycle policy,
/// maintenance windows, contracts (the queue's), the satisfaction wait, and
/// when the collector restarts.
#[derive(Debug, Clone)]
pub struct ReplayOptions {
    pub policy: Policy,
    pub windows: Vec<hold::Window>,
    pub contracts: Contracts,
    pub satisfaction_wait_ms: i64,
    /// Virtual times at which the collector restarts (see the module docs).
    pub restarts: Vec<i64>,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        ReplayOptions {
            policy: Policy::default(),
            windows: Vec::new(),
            contracts: Contracts::default(),
            satisfaction_wait_ms: crate::writer::WriterOptions::default().satisfaction_wait_ms,
            restarts: Vec::new(),
        }
    }
}

/// Parses one input line: a report, or a timed report, decoded and
/// validated by ingest.
fn parse_line(text: &str) -> Result<(i64, Report), String> {
    let value: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    match value.get("report") {
        Some(report) => {
            let at_ms = value
                .get("at_ms")
                .and_then(Value::as_i64)
                .ok_or("at_ms: an integer (ms since the epoch) is required")?;
            let json = serde_json::to_vec(report).map_err(|e| e.to_string())?;
            let report = ingest::decode(&json).map_err(|e| format!("report: {e}"))?;
            Ok((at_ms, report))
        }
        None => {
            let report = ingest::decode(text.as_bytes()).map_err(|e| e.to_string())?;
            Ok((report.collected_at_ms, report))
        }
    }
}

/// Reads every line of `reader`; a malformed line is an error naming it.
pub fn read_lines(reader: impl BufRead) -> Result<Vec<(i64, Report)>, ReplayError> {
    let mut reports = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let parsed = parse_line(&line).map_err(|reason| ReplayError::BadLine { line: i + 1, reason })?;
        reports.push(parsed);
    }
    Ok(reports)
}

/// Reads every line of `reader` and replays it; see [`replay`].
pub fn replay_lines(reader: impl BufRead, rules: RuleSet, policy: &Policy) -> Result<Vec<ReplayEvent>, ReplayError> {
    replay_lines_with(reader, rules, policy, &[])
}

/// [`replay_lines`] with maintenance windows in force.
pub fn replay_lines_with(
    reader: impl BufRead,
    rules: RuleSet,
    policy: &Policy,
    windows: &[hold::Window],
) -> Result<Vec<ReplayEvent>, ReplayError> {
    replay_with(&read_lines(reader)?, rules, policy, windows)
}

/// Replays `(at_ms, report)` pairs in the given order and returns the
/// changes, in the order they happened.
pub fn replay(reports: &[(i64, Report)], rules: RuleSet, policy: &Policy) -> Result<Vec<ReplayEvent>, ReplayError> {
    replay_with(reports, rules, policy, &[])
}

/// [`replay`] with maintenance windows in force.
pub fn replay_with(
    reports: &[(i64, Report)],
    rules: RuleSet,
    policy: &Policy,
    windows: &[hold::Window],
) -> Result<Vec<ReplayEvent>, ReplayError> {
    let options = ReplayOptions {
        policy: *policy,
        windows: windows.to_vec(),
        ..ReplayOptions::default()
    };
    replay_full(reports, rules, &options)
}

/// [`replay`] with every option.
pub fn replay_full(
    reports: &[(i64, Report)],
    rules: RuleSet,
    options: &ReplayOptions,
) -> Result<Vec<ReplayEvent>, ReplayError> {
    let db = Db::sqlite(crate::store::open_in_memory()?);
    for w in &options.windows {
        // Virtual time: a window in the past of the wall clock still counts.
        hold::add_window(&db, w, i64::MIN)?;
    }
    let mut restarts = options.restarts.clone();
    restarts.sort_unstable();
    let mut restarts = restarts.into_iter().peekable();
    let mut run = Run {
        db,
        options: options.clone(),
        engine: Engine::new(rules).forget_gone_after(2 * options.policy.min_hold_ms),
        assets: HashMap::new(),
        seq: HashMap::new(),
        items: HashMap::new(),
        recs: HashMap::new(),
        held: HashSet::new(),
        events: Vec::new(),
        clock: None,
        step_ms: None,
    };
    for (at_ms, report) in reports {
        run.advance_to(*at_ms)?;
        if restarts.next_if(|r| r <= at_ms).is_some() {
            while restarts.next_if(|r| r <= at_ms).is_some() {}
            run.restart(*at_ms)?;
        }
        let interval = i64::from(report.interval_secs).saturating_mul(1000).max(1000);
        run.step_ms = Some(run.step_ms.map_or(interval, |s: i64| s.min(interval)));
        run.report(report, *at_ms)?;
        run.tick(*at_ms)?;
    }
    Ok(run.events)
}

/// What the replay compares to see an item change: status, flapping mark,
/// reopen count and clear time.
type ItemState = (Status, bool, u32, Option<i64>);

struct Run {
    db: Db,
    options: ReplayOptions,
    engine: Engine,
    /// Each agent's asset state, as the writer keeps it between reports.
    assets: HashMap<String, AssetState>,
    /// Each agent's last sequence number.
    seq: HashMap<String, u64>,
    /// The last status, flapping mark, reopen count and clear time seen per item.
    items: HashMap<i64, ItemState>,
    /// The last status, urgency and due date seen per recommendation.
    recs: HashMap<i64, (String, String, Option<i64>)>,
    /// Held signals already printed.
    held: HashSet<i64>,
    events: Vec<ReplayEvent>,
    /// The last time ticked.
    clock: Option<i64>,
    step_ms: Option<i64>,
}

impl Run {
    /// Ticks every step across the gap up to (not including) `at_ms`.
    fn advance_to(&mut self, at_ms: i64) -> Result<(), ReplayError> {
        let (Some(mut t), Some(step)) = (self.clock, self.step_ms) else {
            return Ok(());
        };
        loop {
            t = t.saturating_add(step);
            if t >= at_ms {
                return Ok(());
            }
            self.tick(t)?;
        }
    }

    /// Restarts the collector at `at_ms`: the engine's state checkpointed
    /// into the store, and a fresh engine restored from it.
    fn restart(&mut self, at_ms: i64) -> Result<(), ReplayError> {
        let states = self.engine.checkpoint_changed();
        let tx = self.db.transaction().map_err(StoreError::from)?;
        checkpoints::save(&tx, &self.engine.rules_fingerprint(), at_ms, &states, None)?;
        tx.commit().map_err(StoreError::from)?;
        let rules = self.engine.rules.clone();
        self.engine = Engine::new(rules).forget_gone_after(2 * self.options.policy.min_hold_ms);
        for c in checkpoints::load_all(&self.db)? {
            if let Err(e) = self.engine.restore_host(&c.host, &c.body, at_ms) {
                // As `serve`: the host starts afresh.
                tracing::warn!(host = %c.host, error = %e, "detection checkpoint not restored");
            }
        }
        Ok(())
    }

    /// Stages 1–8 for one report.
    fn report(&mut self, report: &Report, at_ms: i64) -> Result<(), ReplayError> {
        let agent = report.agent_id.clone();
        let seq = match self.seq.get(&agent) {
            Some(s) => s + 1,
            None => {
                // The stream stands for the enrolled fleet and its asset
                // archive: an agent is enrolled, and its host known, from its
                // first report on.
                self.db
                    .insert_agent(&NewAgent {
                        agent_id: &agent,
                        credential_hash: &format!("replay:{agent}"),
                        host: &report.host,
                        enrolled_at_ms: at_ms,
                        customer: None,
                        site: None,
                        token_id: None,
                        labels: "{}",
                    })
                    .map_err(StoreError::from)?;
                1
            }
        };
        self.seq.insert(agent.clone(), seq);
        if !hold::is_known(&self.db, &report.host)? {
            hold::mark_known(&self.db, &report.host, None, &[], at_ms)?;
        }
        let mut r = report.clone();
        r.seq = seq;
        let Decoded {
            report,
            samples,
            sample_count,
        } = Decoded::of(r);
        let inc = Incoming {
            credential_hash: None,
            agent_id: agent.clone(),
            report,
            samples,
            sample_count,
            body: Vec::new(),
            encoding: Encoding::Identity,
            received_at_ms: at_ms,
            clock: None,
        };
        let previous = self.assets.get(&agent).cloned().unwrap_or_default();
        let tx = self.db.transaction().map_err(StoreError::from)?;
        let done = match crate::pipeline::report(&tx, &inc, Vec::new(), previous, false) {
            Err(e @ (StoreError::Identity(_) | StoreError::Revoked(_))) => {
                return Err(ReplayError::Refused {
                    agent_id: agent,
                    seq,
                    reason: e.to_string(),
                });
            }
            r => r?,
        };
        tx.commit().map_err(StoreError::from)?;
        if let Some(h) = done.host {
            self.assets.insert(agent, AssetState::of(&h));
        }
        self.diff(at_ms)?;
        // The engine reads the catalogue samples from the report, as
        // `serve` hands it over.
        let mut observed = inc.report;
        observed.samples = inc.samples;
        let signals = self.engine.observe(&observed, at_ms);
        self.signals(&signals, at_ms)
    }

    /// Stages 6–8.
    fn signals(&mut self, signals: &[crate::cases::Signal], at_ms: i64) -> Result<(), ReplayError> {
        if signals.is_empty() {
            return Ok(());
        }
        let tx = self.db.transaction().map_err(StoreError::from)?;
        crate::pipeline::signals(&tx, signals, &self.options.policy, &self.options.contracts)?;
        tx.commit().map_err(StoreError::from)?;
        self.diff(at_ms)
    }

    /// Stages 9 and 10.
    fn tick(&mut self, now_ms: i64) -> Result<(), ReplayError> {
        if self.clock.is_some_and(|c| c >= now_ms) {
            // Several hosts reporting at one instant: one tick for it.
            return Ok(());
        }
        let signals = self.engine.tick(now_ms);
        self.signals(&signals, now_ms)?;
        let tx = self.db.transaction().map_err(StoreError::from)?;
        let o = &self.options;
        crate::pipeline::tick(&tx, &o.policy, &o.contracts, false, o.satisfaction_wait_ms, now_ms)?;
        tx.commit().map_err(StoreError::from)?;
        self.diff(now_ms)?;
        self.clock = Some(self.clock.map_or(now_ms, |c| c.max(now_ms)));
        Ok(())
    }

    /// Records the events that every change since the last look makes:
    /// items (oldest first), held signals, then recommendations.
    fn diff(&mut self, at_ms: i64) -> Result<(), ReplayError> {
        // A cheap look at what each item is now; the whole item is read
        // only when it changed.
        let mut now: Vec<(i64, ItemState)> = Vec::new();
        for g in self.db.item_glances().map_err(StoreError::from)? {
            let corrupt = |reason: String| StoreError::CorruptItem { id: g.id, reason };
            let status = Status::from_parts(&g.status, g.hold_reason.as_deref())
                .ok_or_else(|| corrupt(format!("unknown status {}", g.status)))?;
            let reopens = u32::try_from(g.reopen_count).map_err(|_| corrupt("bad reopen_count".to_string()))?;
            now.push((g.id, (status, g.flapping, reopens, g.cleared_at_ms)));
        }
        for (id, state) in now {
            if self.items.get(&id) == Some(&state) {
                continue;
            }
            if let Some(item) = store::item(&self.db, id)? {
                self.diff_item(&item, at_ms);
            }
        }
        let mut held: Vec<HeldSignal> = hold::list_held(&self.db, None, None)?;
        held.retain(|h| !self.held.contains(&h.id));
        held.sort_by_key(|h| h.id);
        for h in held {
            self.held.insert(h.id);
            self.events.push(ReplayEvent {
                at_ms,
                event: "held",
                id: h.id,
                kind: h.kind.clone(),
                key: h.key.to_string(),
                rule: h.rule.clone(),
                severity: h.severity.clone(),
                status: format!("held:{}", h.reason.as_str()),
                detail: Value::Null,
            });
        }
        let changed: Vec<i64> = self
            .db
            .recommendation_glances()
            .map_err(StoreError::from)?
            .into_iter()
            .filter(|g| self.recs.get(&g.id) != Some(&(g.status.clone(), g.urgency.clone(), g.due_at_ms)))
            .map(|g| g.id)
            .collect();
        for id in changed {
            if let Some(r) = records::get(&self.db, id)? {
                self.diff_rec(&r, at_ms);
            }
        }
        Ok(())
    }

    fn diff_item(&mut self, item: &Item, at_ms: i64) {
        let Some(id) = item.id else {
            return;
        };
        let now = (item.status, item.flapping, item.reopen_count, item.cleared_at_ms);
        let before = self.items.insert(id, now);
        let detail = item_detail(item);
        let mut push = |event: &'static str| {
            self.events.push(ReplayEvent {
                at_ms,
                event,
                id,
                kind: item.kind.as_str().to_string(),
                key: item.key.to_string(),
                rule: item.rule.clone(),
                severity: item.severity.as_str().to_string(),
                status: item.status.to_string(),
                detail: detail.clone(),
            });
        };
        let Some((status, flapping, reopens, cleared)) = before else {
            push(if item.recurrence_of.is_some() {
                "recurrence"
            } else {
                "opened"
            });
            return;
        };
        if item.reopen_count > reopens {
            push("reopened");
            return;
        }
        if status != item.status {
            push(match item.status {
                Status::Recovered => "recovered",
                Status::Resolved => "resolved",
                Status::Fixed => "fixed",
                _ => "updated",
            });
        } else if item.kind == crate::cases::ItemKind::Finding && item.cleared_at_ms != cleared && item.signal_clear() {
            push("cleared");
        }
        if flapping != item.flapping {
            push(if item.flapping { "flapping" } else { "updated" });
        }
    }

    fn diff_rec(&mut self, r: &records::Recommendation, at_ms: i64) {
        let now = (r.status.clone(), r.urgency.clone(), r.due_at_ms);
        let before = self.recs.insert(r.id, now);
        let event = match before {
            None => "recommended",
            Some((status, urgency, due)) => {
                if status != r.status {
                    match r.status.as_str() {
                        "done" => "done",
                        "dismissed" => "dismissed",
                        _ => "updated",
                    }
                } else if urgency != r.urgency || due != r.due_at_ms {
                    "escalated"
                } else {
                    return;
                }
            }
        };
        let mut part = BTreeMap::new();
        for (k, v) in [
            ("type", r.part_type.as_str()),
            ("model", r.part.model.as_str()),
            ("serial", r.part.serial.as_str()),
            ("slot", r.part.slot.as_str()),
        ] {
            if !v.is_empty() {
                part.insert(k, v);
            }
        }
        self.events.push(ReplayEvent {
            at_ms,
            event,
            id: r.id,
            kind: "recommendation".to_string(),
            key: r.part_key.clone(),
            rule: r.reason.clone(),
            severity: r.urgency.clone(),
            status: r.status.clone(),
            detail: json!({"part": part, "due_at_ms": r.due_at_ms, "item_id": r.item_id}),
        });
    }
}

/// The evidence a person checks in an item's event: a forecast's date and
/// the item a recurrence repeats.
fn item_detail(item: &Item) -> Value {
    let mut d = serde_json::Map::new();
    if let Some(of) = item.recurrence_of {
        d.insert("recurrence_of".into(), json!(of));
    }
    let eta = item.evidence.get("eta_secs").and_then(Value::as_f64);
    let at = item.evidence.get("at_ms").and_then(Value::as_i64);
    if let (Some(eta), Some(at)) = (eta, at) {
        d.insert("forecast_at_ms".into(), json!(at.saturating_add((eta * 1000.0) as i64)));
    }
    if d.is_empty() { Value::Null } else { Value::Object(d) }
}
