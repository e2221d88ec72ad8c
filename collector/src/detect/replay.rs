//! Replay: runs a recorded stream of reports through the [`Engine`] and the
//! cases store (in memory) in virtual time, and says what happened to the
//! findings and cases. It is how rules are tested and tuned without waiting
//! for real faults: the same input always yields the same events.
//!
//! Input: JSON lines, each a wire [`Report`] (its time is `collected_at_ms`)
//! or `{"at_ms": .., "report": {..}}`. Blank lines are skipped.
//!
//! Time: before each report the engine and the store are ticked at every
//! step of the smallest report interval seen so far across the gap since the
//! previous report, so a host that goes silent is noticed even when nothing
//! else reports, and quiet periods pass. After each report they are ticked at
//! its time.
//!
//! Events: one per change of an item: `opened`, `reopened`, `recurrence`,
//! `recovered`, `resolved`, `flapping` (the mark was set), and `updated` for
//! any other status change or the flapping mark being lifted. Occurrences
//! that change neither status nor mark are not printed: a firing fault would
//! otherwise print a line per report.

use std::collections::HashMap;
use std::io::BufRead;

use caretaker_shared::wire::Report;
use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use super::Engine;
use crate::cases::hold::{self, Held};
use crate::cases::store::{self, Filter, Outcome};
use crate::cases::{Item, Policy, Status};
use crate::rules::RuleSet;
use crate::store::StoreError;

/// One change of an item, as printed by `caretaker-collector replay`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplayEvent {
    pub at_ms: i64,
    pub event: &'static str,
    pub id: i64,
    pub kind: String,
    pub key: String,
    pub rule: String,
    pub severity: String,
    pub status: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The input is malformed (the CLI exits 2).
    #[error("line {line}: {reason}")]
    BadLine { line: usize, reason: String },
    #[error("reading the input: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ReplayError {
    /// Whether the fault is in the input rather than in the replay.
    pub fn is_bad_input(&self) -> bool {
        matches!(self, ReplayError::BadLine { .. })
    }
}

#[derive(Deserialize)]
struct Timed {
    at_ms: i64,
    report: Report,
}

/// Parses one input line: a report, or a timed report.
fn parse_line(text: &str) -> Result<(i64, Report), String> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    if value.get("report").is_some() {
        let t: Timed = serde_json::from_value(value).map_err(|e| e.to_string())?;
        Ok((t.at_ms, t.report))
    } else {
        let r: Report = serde_json::from_value(value).map_err(|e| e.to_string())?;
        Ok((r.collected_at_ms, r))
    }
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
    let mut reports = Vec::new();
    for (i, line) in reader.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let parsed = parse_line(&line).map_err(|reason| ReplayError::BadLine { line: i + 1, reason })?;
        reports.push(parsed);
    }
    replay_with(&reports, rules, policy, windows)
}

/// Replays `(at_ms, report)` pairs in the given order and returns the item
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
    let conn = crate::store::open_in_memory()?;
    for w in windows {
        // Virtual time: a window in the past of the wall clock still counts.
        hold::add_window(&conn, w, i64::MIN)?;
    }
    let mut run = Run {
        conn,
        policy: *policy,
        engine: Engine::new(rules),
        seen: HashMap::new(),
        events: Vec::new(),
        clock: None,
        step_ms: None,
    };
    for (at_ms, report) in reports {
        run.advance_to(*at_ms)?;
        let interval = i64::from(report.interval_secs).saturating_mul(1000).max(1000);
        run.step_ms = Some(run.step_ms.map_or(interval, |s: i64| s.min(interval)));
        // The stream stands for the asset archive: a host that reports is
        // known from its first report on.
        if !hold::is_known(&run.conn, &report.host)? {
            hold::mark_known(&run.conn, &report.host, None, &[], *at_ms)?;
        }
        let signals = run.engine.observe(report, *at_ms);
        run.apply(&signals)?;
        run.tick(*at_ms)?;
    }
    Ok(run.events)
}

struct Run {
    conn: Connection,
    policy: Policy,
    engine: Engine,
    /// The last status and flapping mark reported per item.
    seen: HashMap<i64, (Status, bool)>,
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

    fn tick(&mut self, now_ms: i64) -> Result<(), ReplayError> {
        let signals = self.engine.tick(now_ms);
        self.apply(&signals)?;
        if store::tick_all(&self.conn, &self.policy, now_ms)? > 0 {
            // Oldest first, so events come in a stable order.
            let mut items = store::list(&self.conn, &Filter::default())?;
            items.reverse();
            for item in items {
                self.diff(&item, now_ms, None);
            }
        }
        self.clock = Some(self.clock.map_or(now_ms, |c| c.max(now_ms)));
        Ok(())
    }

    fn apply(&mut self, signals: &[crate::cases::Signal]) -> Result<(), ReplayError> {
        for s in signals {
            let (id, first) = match store::apply_signal(&self.conn, s, &self.policy)? {
                Outcome::Nothing(_) => continue,
                Outcome::Created(id) => (id, Some("opened")),
                Outcome::Reopened(id) => (id, Some("reopened")),
                Outcome::Recurrence { id, .. } => (id, Some("recurrence")),
                Outcome::Updated(id) => (id, None),
                Outcome::Held {
                    id,
                    reason,
                    holder,
                    new,
                } => {
                    // A storm hold may have opened or fed the storm case.
                    if let (Held::Storm, Some(case)) = (reason, holder) {
                        if let Some((item, _)) = store::get(&self.conn, case)? {
                            let first = (!self.seen.contains_key(&case)).then_some("opened");
                            self.diff(&item, s.at_ms, first);
                        }
                    }
                    if new {
                        self.events.push(ReplayEvent {
                            at_ms: s.at_ms,
                            event: "held",
                            id,
                            kind: s.kind.as_str().to_string(),
                            key: s.key.to_string(),
                            rule: s.rule.clone(),
                            severity: s.severity.as_str().to_string(),
                            status: format!("held:{}", reason.as_str()),
                        });
                    }
                    continue;
                }
            };
            if let Some((item, _)) = store::get(&self.conn, id)? {
                self.diff(&item, s.at_ms, first);
            }
        }
        Ok(())
    }

    /// Records the events that `item`'s change since it was last seen makes.
    fn diff(&mut self, item: &Item, at_ms: i64, first: Option<&'static str>) {
        let Some(id) = item.id else {
            return;
        };
        let now = (item.status, item.flapping);
        let before = self.seen.insert(id, now);
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
            });
        };
        if let Some(e) = first {
            push(e);
            return;
        }
        let Some((status, flapping)) = before else {
            return;
        };
        if status != item.status {
            push(match item.status {
                Status::Recovered => "recovered",
                Status::Resolved => "resolved",
                _ => "updated",
            });
        }
        if flapping != item.flapping {
            push(if item.flapping { "flapping" } else { "updated" });
        }
    }
}
