//! The rule evaluator: turns the reports agents send into [`Signal`]s for the
//! findings and cases lifecycle ([`crate::cases`]).
//!
//! The [`Engine`] is pure: it has no clock and does no I/O. Time comes only
//! from the arguments of [`Engine::observe`] and [`Engine::tick`], so the same
//! stream of reports always gives the same signals. That is what makes
//! [`replay`] (and the tests built on it) deterministic, and lets live ingest
//! drive it with wall-clock time later.
//!
//! # What it keeps
//!
//! Per host: its customer label, report interval, last report time, whether it
//! is unreachable, and per *source* (a metric, or `metric/divide_by` for rules
//! that divide, and the window of the rules reading it) and label set a
//! bounded history of `(at_ms, value)`. Each window has its own series, so a
//! 2-minute forecast beside a 2-day one on the same metric gets points 5 s
//! apart, not 2 h apart; rules without a window (thresholds, states) keep no
//! history at all. A series keeps at most [`MAX_POINTS`] points, one per
//! `window / MAX_POINTS`: when reports
//! come faster, the newest point is updated instead of appended. A gauge's
//! point is the mean of the samples it stands for (so a forecast fits the
//! trend, not one noisy sample); a counter's is its newest value, and a
//! counter drop is always appended, so resets stay visible. One point is 16
//! bytes, so a series costs at most ~0.5 KiB plus its labels. Per rule and series
//! it keeps the evaluation state: since when a threshold holds and whether the
//! rule is firing (hysteresis).
//!
//! Both are found by label set in constant time (`labels::ByLabels`), so a
//! report costs in proportion to its size. A host keeps at most
//! [`Engine::max_series_per_host`] rule states (a series per rule and label
//! set): past that its new series are refused and counted
//! ([`Engine::series_of`]) until old ones are gone and forgotten (below), so
//! label values that change with every report cannot grow a host's state,
//! and the cost of its reports, without end.
//!
//! # Semantics
//!
//! Every evaluation of a rule on a series present in a report emits a signal,
//! firing or not: the lifecycle is idempotent and needs the clears. A series
//! missing from a report is not evaluated (its absence is no evidence).
//! - `threshold`: the value (or `metric / divide_by`, same labels, same
//!   report) satisfies `op value` continuously for `for` → firing, until the
//!   value is on the safe side of `clear` (or of `value` without `clear`).
//! - `increase`: newest − oldest in the window ≥ `min_increase`; a drop (a
//!   counter reset) restarts the window, so the increase is never negative.
//! - `forecast`: a least-squares line over the window's *floor* (≥ 3 points
//!   spanning ≥ ¼ of the window) moving toward `reaches` and reaching it
//!   within `within` from now. The floor of a point is the value farthest
//!   from `reaches` at or after it: the level the series never fell back
//!   from. Only sustained growth counts: the floor of the window's newer half
//!   must be past the floor of its older half, so a volume that fills every
//!   night and is emptied every morning is no risk, while one whose daily low
//!   keeps rising is. A value already past `reaches` is left to threshold
//!   rules: the forecast then says nothing new.
//! - `state`: value == `equals`.
//! - `absence` on `host`: [`Engine::tick`] fires when the host's last report is
//!   older than `after_intervals` × its interval, and clears after it reports.
//!   A report received but still waiting to be evaluated counts as heard
//!   from ([`Engine::heard_from`]): a backlog is not a silence.
//! - `event`: each of the report's events of the rule's kind whose labels
//!   match fires once, after the metric rules of the same report (so an
//!   event sharing a check with a state rule lands on the item that rule has
//!   just opened). It is dated by the event (never later than the report),
//!   keyed by the rule's `check` (else its name) and the event label the
//!   rule names as component (an event without that label is skipped). An
//!   event rule never clears, keeps no state and has no gone-signal: an
//!   event is history, not state, so what clears its item is the state rule
//!   it shares a check with, or a person.
//!
//! A series that stops while its host keeps reporting (a failed unit that
//! was restarted is no longer listed; a disk, filesystem or database was
//! removed) counts as cleared after [`GONE_AFTER_INTERVALS`] report
//! intervals: each rule's state on it emits one clear and is forgotten, and
//! so is its history. The clear is repeated with each report for an hour
//! (longer when the minimum hold is longer), then the series is forgotten.
//! This is decided on the host's reports only, so a silent host stays the
//! one `host_unreachable` case, never a mass clear.
//!
//! # Checkpoints
//!
//! A host's state (its series and evaluation states) can be saved as a blob
//! and restored into another engine, here after a restart or on another
//! collector ([`Engine::checkpoint_host`], [`Engine::restore_host`]; the
//! format and what survives a rule change are in `checkpoint.rs`), so a
//! restart in the middle of a window does not delay its forecast.
//!
//! # Storm suppression
//!
//! While a host is unreachable its one `host_unreachable` case stands for
//! everything else on it: `tick` emits nothing but the absence signal for it,
//! and when it comes back, thresholds that were only pending before the
//! silence start their `for` afresh, so the gap cannot complete a `for` and
//! open a case for a fault nobody observed.

mod checkpoint;
mod labels;
pub mod live;
mod replay;
pub mod watch;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::Arc;

pub use checkpoint::{CheckpointError, FORMAT as CHECKPOINT_FORMAT, Restored, rule_set_fingerprint};
use labels::{ByLabels, Key, Labels, Strings};

use caretaker_shared::wire::{Event, Report};
use serde_json::json;

use crate::cases::{EventOrigin, IdentityKey, Signal};
use crate::rules::{Condition, Op, Rule, RuleSet, Target};

pub use replay::{
    ReplayError, ReplayEvent, ReplayOptions, read_lines, replay, replay_full, replay_lines, replay_lines_with,
    replay_with,
};

/// Most points kept per series.
pub const MAX_POINTS: usize = 24;

/// Report intervals a series may be missing from its host's reports before
/// it counts as gone (see the module docs).
pub const GONE_AFTER_INTERVALS: i64 = 3;

/// How long a gone series is cleared again with every report before the
/// engine forgets it, by default (see [`Engine::forget_gone_after`]).
pub const FORGET_GONE_AFTER_MS: i64 = 3_600_000;

/// Series (one per rule and label set) the engine keeps per host, by default
/// (see [`Engine::max_series_per_host`]).
pub const MAX_SERIES_PER_HOST: usize = 10_000;

#[derive(Debug, Default)]
struct Series {
    points: VecDeque<(i64, f64)>,
    /// How many samples the newest point averages (gauges only).
    newest_samples: u32,
}

#[derive(Debug, Default, Clone, Copy)]
struct EvalState {
    /// Since when the threshold condition has held (not yet firing).
    since_ms: Option<i64>,
    firing: bool,
    /// When a report last carried the series.
    seen_ms: i64,
}

/// What the engine remembers about one host.
#[derive(Debug, Default)]
pub struct HostState {
    customer: String,
    interval_ms: i64,
    last_report_ms: i64,
    unreachable: bool,
    /// By source, then labels. Nested so that a report's series are found
    /// by reference, without building an owned key per evaluation.
    series: BTreeMap<Arc<str>, ByLabels<Series>>,
    /// By rule index, then the series labels.
    eval: Vec<ByLabels<EvalState>>,
    /// Entries of `eval`, summed: the host's series against its bound.
    live: usize,
    /// New series refused because the host was at its bound, ever.
    dropped: u64,
    /// At its bound: a new series was refused, and the host has not been
    /// under the bound since.
    limited: bool,
    /// Changed since its last checkpoint ([`Engine::checkpoint_changed`]).
    changed: bool,
    /// Absence is counted from here when it is later than the last report:
    /// the time the host's state was restored, so the collector's own
    /// downtime does not make every host unreachable (see [`checkpoint`]).
    absent_from_ms: i64,
}

/// A host's series against the engine's bound (see [`Engine::series_of`]).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SeriesCount {
    /// Series kept (one per rule and label set).
    pub live: usize,
    /// New series refused because the host was at its bound, ever.
    pub dropped: u64,
    /// Whether the host is at its bound and refusing new series.
    pub limited: bool,
}

/// How much the engine holds: counts, for the detection benchmark and for
/// sizing (a point is 16 bytes; `point_capacity` is what the buffers reserve).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Footprint {
    pub hosts: usize,
    pub series: usize,
    pub points: usize,
    pub point_capacity: usize,
    pub eval_states: usize,
    /// Distinct label names and values held.
    pub strings: usize,
}

/// The rule evaluator. See the module docs.
#[derive(Debug)]
pub struct Engine {
    rules: RuleSet,
    hosts: HashMap<String, HostState>,
    /// Per rule (by index), what it reads: the source, how far back the
    /// source's history must reach (ms), and whether an increase rule reads
    /// it (then drops must be kept: they are resets). `None` for absence rules.
    reads: Vec<Option<(Arc<str>, i64, bool)>>,
    /// Every metric a rule reads, as a target or a divisor: the rest of a
    /// report is skipped.
    watched: HashSet<String>,
    /// How long a gone series keeps being cleared before it is forgotten:
    /// longer than the lifecycle's minimum hold, so the clear is believed.
    forget_after_ms: i64,
    /// Label names and values, one copy each across the fleet.
    strings: Strings,
    /// Most series kept per host; new ones beyond it are refused.
    max_series: usize,
    /// Label sets compared to find series, ever: the engine's work, counted
    /// apart from the clock (see [`Engine::work`]).
    work: u64,
    /// Per rule (by index), its fingerprint: how a checkpoint's evaluation
    /// states find their rule again (see [`checkpoint`]).
    fingerprints: Vec<String>,
}

fn ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The series a rule reads: divided rules read the ratio, and each window
/// has its own series (`metric[/divide_by]@window_ms`), so a rule's points
/// are spaced for its own window whatever other rules read the same metric.
fn source(rule: &Rule) -> Option<String> {
    let Target::Metric(m) = rule.target else {
        return None;
    };
    let div = match &rule.condition {
        Condition::Threshold { divide_by, .. } | Condition::Forecast { divide_by, .. } => divide_by.as_deref(),
        _ => None,
    };
    let w = window_ms(rule);
    Some(match div {
        Some(d) => format!("{m}/{d}@{w}"),
        None => format!("{m}@{w}"),
    })
}

fn window_ms(rule: &Rule) -> i64 {
    match &rule.condition {
        Condition::Increase { window, .. } | Condition::Forecast { window, .. } => ms(*window),
        _ => 0,
    }
}

fn compare(op: Op, v: f64, bound: f64) -> bool {
    match op {
        Op::Gt => v > bound,
        Op::Ge => v >= bound,
        Op::Lt => v < bound,
        Op::Le => v <= bound,
    }
}

impl Engine {
    pub fn new(rules: RuleSet) -> Engine {
        let mut retention: HashMap<String, (i64, bool)> = HashMap::new();
        for r in &rules.rules {
            if let Some(s) = source(r) {
                let w = retention.entry(s).or_insert((0, false));
                w.0 = w.0.max(window_ms(r));
                w.1 |= matches!(r.condition, Condition::Increase { .. });
            }
        }
        let reads = rules
            .rules
            .iter()
            .map(|r| {
                let s = source(r)?;
                let (window, keep_drops) = retention.get(&s).copied().unwrap_or((0, false));
                Some((Arc::from(s.as_str()), window, keep_drops))
            })
            .collect();
        let mut watched = HashSet::new();
        for r in &rules.rules {
            if let Target::Metric(m) = r.target {
                watched.insert(m.to_string());
            }
            if let Condition::Threshold { divide_by: Some(d), .. } | Condition::Forecast { divide_by: Some(d), .. } =
                &r.condition
            {
                watched.insert(d.clone());
            }
        }
        let fingerprints = rules.rules.iter().map(checkpoint::fingerprint).collect();
        Engine {
            rules,
            fingerprints,
            hosts: HashMap::new(),
            reads,
            watched,
            strings: Strings::default(),
            forget_after_ms: FORGET_GONE_AFTER_MS,
            max_series: MAX_SERIES_PER_HOST,
            work: 0,
        }
    }

    /// Sets the most series (one per rule and label set) kept per host:
    /// past it a host's new series are not evaluated, and counted (see
    /// [`Engine::series_of`]), until its old ones are gone and forgotten.
    /// Label values that change with every report would otherwise grow the
    /// host's state, and the time of each of its reports, without end.
    pub fn max_series_per_host(mut self, n: usize) -> Engine {
        self.max_series = n.max(1);
        self
    }

    /// `host`'s series against the bound; `None` for a host never seen.
    pub fn series_of(&self, host: &str) -> Option<SeriesCount> {
        self.hosts.get(host).map(|h| SeriesCount {
            live: h.live,
            dropped: h.dropped,
            limited: h.limited,
        })
    }

    /// Label sets compared so far to find the series of the reports
    /// observed: work counted independently of the machine, so a test can
    /// tell that a report twice the size costs twice as much, not four times.
    pub fn work(&self) -> u64 {
        self.work
    }

    /// Sets how long a gone series keeps being cleared before it is
    /// forgotten (at least the default): give it more than the lifecycle's
    /// minimum hold, or a gone fault's clear comes too early to be believed.
    pub fn forget_gone_after(mut self, ms: i64) -> Engine {
        self.forget_after_ms = ms.max(FORGET_GONE_AFTER_MS);
        self
    }

    /// Swaps in a new rule set, keeping every host's history. A rule that is
    /// still there, unchanged, keeps its evaluation state (a pending `for`, a
    /// firing rule stays firing), so a reload does not clear and re-open the
    /// cases it holds; a changed or new rule starts afresh.
    pub fn replace_rules(&mut self, rules: RuleSet) {
        let moved: HashMap<usize, usize> = self
            .rules
            .rules
            .iter()
            .enumerate()
            .filter_map(|(old, r)| rules.rules.iter().position(|n| n == r).map(|new| (old, new)))
            .collect();
        let count = rules.rules.len();
        let mut hosts = std::mem::take(&mut self.hosts);
        for h in hosts.values_mut() {
            let mut eval: Vec<ByLabels<EvalState>> = Vec::new();
            eval.resize_with(count, ByLabels::default);
            for (old, states) in std::mem::take(&mut h.eval).into_iter().enumerate() {
                if let Some(slot) = moved.get(&old).and_then(|&n| eval.get_mut(n)) {
                    *slot = states;
                }
            }
            h.eval = eval;
            h.live = h.eval.iter().map(ByLabels::len).sum();
        }
        let strings = std::mem::take(&mut self.strings);
        let (forget, max_series, work) = (self.forget_after_ms, self.max_series, self.work);
        *self = Engine::new(rules)
            .forget_gone_after(forget)
            .max_series_per_host(max_series);
        self.hosts = hosts;
        self.strings = strings;
        self.work = work;
    }

    /// Host `host` was heard from at `at_ms`: a report of it was received
    /// and waits to be evaluated. Its absence counts from then, so a busy
    /// collector's backlog does not make a reporting host unreachable. A
    /// host this engine does not hold is left alone, and so is one already
    /// unreachable: only its report, evaluated, brings it back (so the gap
    /// cannot complete a pending `for`).
    pub fn heard_from(&mut self, host: &str, at_ms: i64) {
        if let Some(h) = self.hosts.get_mut(host)
            && !h.unreachable
            && at_ms > h.absent_from_ms
        {
            h.absent_from_ms = at_ms;
        }
    }

    /// Takes one report received at `at_ms` and returns the signals of every
    /// rule on every series it covers.
    pub fn observe(&mut self, report: &Report, at_ms: i64) -> Vec<Signal> {
        let mut out = Vec::new();
        if !self.hosts.contains_key(&report.host) {
            self.hosts.insert(report.host.clone(), HostState::default());
        }
        let Some(host) = self.hosts.get_mut(&report.host) else {
            return out;
        };
        let customer = report.labels.get("customer").map_or("", String::as_str);
        if host.customer != customer {
            host.customer = customer.to_string();
        }
        host.interval_ms = i64::from(report.interval_secs).saturating_mul(1000);
        host.last_report_ms = at_ms;
        host.changed = true;
        if host.unreachable {
            host.unreachable = false;
            // The gap must not complete a pending `for` (see the module docs).
            for st in host.eval.iter_mut().flat_map(ByLabels::values_mut) {
                if !st.firing {
                    st.since_ms = None;
                }
            }
        }
        // Counters travel as their family name; accept `_total` too. Only
        // what some rule reads; within a metric, in label order.
        let mut current: HashMap<&str, BTreeMap<&Labels, f64>> = HashMap::new();
        for s in &report.samples {
            let name = s.metric.strip_suffix("_total").unwrap_or(&s.metric);
            if self.watched.contains(name) {
                current.entry(name).or_default().insert(&s.labels, s.value);
            }
        }
        if host.eval.len() < self.rules.rules.len() {
            host.eval.resize_with(self.rules.rules.len(), ByLabels::default);
        }
        // New series refused in this report (the host at its bound).
        let mut dropped = 0u64;
        for ((idx, rule), reads) in self.rules.rules.iter().enumerate().zip(&self.reads) {
            let Some((src, retention, keep_drops)) = reads else {
                // Absence: a report is the host being present.
                if matches!(rule.condition, Condition::Absence { .. }) {
                    out.push(absence_signal(rule, &report.host, host, false, at_ms));
                }
                continue;
            };
            let Target::Metric(metric) = rule.target else {
                continue;
            };
            let divide_by = match &rule.condition {
                Condition::Threshold { divide_by, .. } | Condition::Forecast { divide_by, .. } => divide_by.as_deref(),
                _ => None,
            };
            let Some(of_metric) = current.get(metric) else {
                continue;
            };
            for (labels, value) in of_metric {
                if !rule.matches.iter().all(|(k, v)| labels.get(k) == Some(v)) {
                    continue;
                }
                let value = match divide_by {
                    None => *value,
                    Some(d) => match current.get(d).and_then(|m| m.get(labels)) {
                        Some(den) if *den != 0.0 => value / den,
                        _ => continue,
                    },
                };
                let (strings, work) = (&mut self.strings, &mut self.work);
                let Some(of_rule) = host.eval.get_mut(idx) else {
                    continue;
                };
                let known = of_rule.find(labels, work);
                if known.is_none() && host.live >= self.max_series {
                    // At the bound: a new series is not evaluated (see
                    // `max_series_per_host`); the ones kept still are.
                    dropped += 1;
                    continue;
                }
                // A rule with a window keeps the series' history; one without
                // (a threshold, a state) reads only the value in hand.
                let mut shared: Option<Key> = None;
                let mut series: &Series = &NO_HISTORY;
                if *retention > 0 {
                    if !host.series.contains_key(src.as_ref()) {
                        // The rule set's copy of the name, shared by every host.
                        host.series.insert(src.clone(), ByLabels::default());
                    }
                    let Some(of_source) = host.series.get_mut(src.as_ref()) else {
                        continue;
                    };
                    // One copy of a series' labels, shared with its rule states.
                    let at = match of_source.find(labels, work) {
                        Some(at) => at,
                        None => of_source.insert(strings.key(labels), Series::default()),
                    };
                    let Some((key, s)) = of_source.get_mut(at) else {
                        continue;
                    };
                    s.push(at_ms, value, *retention, *keep_drops);
                    shared = Some(key.clone());
                    series = s;
                }
                let at = match known {
                    Some(at) => at,
                    None => {
                        host.live += 1;
                        let key = shared.unwrap_or_else(|| strings.key(labels));
                        of_rule.insert(key, EvalState::default())
                    }
                };
                let Some((_, state)) = of_rule.get_mut(at) else {
                    continue;
                };
                state.seen_ms = at_ms;
                let (firing, detail) = evaluate(rule, series, state, value, at_ms);
                let component = rule
                    .component
                    .as_ref()
                    .and_then(|c| labels.get(c))
                    .cloned()
                    .unwrap_or_default();
                let evidence = match detail {
                    Some(serde_json::Value::Object(d)) => {
                        let summary = rule.summary.render(
                            &report.host,
                            &component_words(rule, report, &component),
                            &value_text(rule, value, &d),
                        );
                        let mut e = json!({
                            "rule": rule.name,
                            "metric": src.as_ref(),
                            "labels": labels,
                            "value": value,
                            "at_ms": at_ms,
                            "summary": summary,
                        });
                        if let Some(e) = e.as_object_mut() {
                            e.extend(d);
                        }
                        e
                    }
                    _ => serde_json::Value::Null,
                };
                out.push(Signal {
                    event: None,
                    key: IdentityKey {
                        customer: host.customer.clone(),
                        asset: report.host.clone(),
                        check: rule.name.clone(),
                        component,
                    },
                    kind: rule.outcome,
                    severity: rule.severity,
                    rule: rule.name.clone(),
                    firing,
                    at_ms,
                    evidence,
                });
            }
        }
        // Series the host stopped sending count as cleared (see the module
        // docs): each report says so again, like any evaluation, until the
        // series has been gone for the forget horizon.
        let grace = GONE_AFTER_INTERVALS.saturating_mul(host.interval_ms.max(1000));
        let gone_before = at_ms.saturating_sub(grace);
        let forget_before = at_ms.saturating_sub(grace.max(self.forget_after_ms));
        for (rule, states) in self.rules.rules.iter().zip(host.eval.iter_mut()) {
            states.retain_mut(|(labels, state)| {
                if state.seen_ms >= gone_before {
                    return true;
                }
                state.firing = false;
                state.since_ms = None;
                out.push(gone_signal(
                    rule,
                    &report.host,
                    &host.customer,
                    labels,
                    state.seen_ms,
                    at_ms,
                ));
                state.seen_ms >= forget_before
            });
        }
        for of_source in host.series.values_mut() {
            of_source.retain_mut(|(_, s)| s.points.back().is_some_and(|&(t, _)| t >= forget_before));
        }
        host.series.retain(|_, of_source| of_source.len() > 0);
        host.live = host.eval.iter().map(ByLabels::len).sum();
        host.dropped = host.dropped.saturating_add(dropped);
        // Limited from the first refusal until the host is under its bound.
        host.limited = dropped > 0 || (host.limited && host.live >= self.max_series);
        // Event rules, after every metric rule of the report (module docs).
        for rule in &self.rules.rules {
            let Target::Event(kind) = &rule.target else {
                continue;
            };
            for ev in report.events.iter().filter(|e| &e.kind == kind) {
                if !rule.matches.iter().all(|(k, v)| ev.labels.get(k) == Some(v)) {
                    continue;
                }
                if let Some(signal) = event_signal(rule, &report.host, &host.customer, ev, at_ms) {
                    out.push(signal);
                }
            }
        }
        out
    }

    /// What the engine holds now (see [`Footprint`]).
    pub fn footprint(&self) -> Footprint {
        let mut f = Footprint {
            hosts: self.hosts.len(),
            strings: self.strings.len(),
            ..Footprint::default()
        };
        for h in self.hosts.values() {
            f.eval_states += h.eval.iter().map(ByLabels::len).sum::<usize>();
            for s in h.series.values().flat_map(ByLabels::values) {
                f.series += 1;
                f.points += s.points.len();
                f.point_capacity += s.points.capacity();
            }
        }
        f
    }

    /// Advances virtual time to `now_ms`: the absence rules, for every host
    /// (in host-name order, so the output is deterministic).
    pub fn tick(&mut self, now_ms: i64) -> Vec<Signal> {
        let mut names: Vec<&String> = self.hosts.keys().collect();
        names.sort();
        let mut out = Vec::new();
        let mut now_unreachable = Vec::new();
        for name in names {
            let Some(host) = self.hosts.get(name) else {
                continue;
            };
            let mut silent = false;
            for rule in &self.rules.rules {
                let Condition::Absence { after_intervals } = rule.condition else {
                    continue;
                };
                let limit = host.interval_ms.saturating_mul(i64::from(after_intervals));
                let last = host.last_report_ms.max(host.absent_from_ms);
                let firing = now_ms.saturating_sub(last) > limit;
                silent |= firing;
                out.push(absence_signal(rule, name, host, firing, now_ms));
            }
            if silent != host.unreachable {
                now_unreachable.push((name.clone(), silent));
            }
        }
        for (name, silent) in now_unreachable {
            if let Some(h) = self.hosts.get_mut(&name) {
                h.unreachable = silent;
                h.changed = true;
            }
        }
        out
    }
}

/// The history of a rule without a window: none.
static NO_HISTORY: Series = Series {
    points: VecDeque::new(),
    newest_samples: 0,
};

/// `{value}` in a metric rule's summary: what the rule found, as a person
/// reads it. An increase rule's increase; a ratio (`divide_by`) as a
/// percentage; else the value as read, whole numbers without decimals.
fn value_text(rule: &Rule, value: f64, detail: &serde_json::Map<String, serde_json::Value>) -> String {
    if let Some(increase) = detail.get("increase").and_then(serde_json::Value::as_f64) {
        return number_text(increase);
    }
    match &rule.condition {
        Condition::Threshold { divide_by: Some(_), .. } | Condition::Forecast { divide_by: Some(_), .. } => {
            format!("{:.1} %", value * 100.0)
        }
        _ => number_text(value),
    }
}

/// "8", "0.25", "1234567".
fn number_text(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// The firing of an `event` rule on one event: dated by the event, never
/// later than the report that brought it. `None` when the event lacks the
/// label the rule names as component.
fn event_signal(rule: &Rule, host: &str, customer: &str, ev: &Event, report_at_ms: i64) -> Option<Signal> {
    let component = match &rule.component {
        Some(label) => ev
            .labels
            .get(label)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())?
            .to_string(),
        None => String::new(),
    };
    let at_ms = ev.at_ms.min(report_at_ms);
    Some(Signal {
        key: IdentityKey {
            customer: customer.to_string(),
            asset: host.to_string(),
            check: rule.check_name().to_string(),
            component: component.clone(),
        },
        kind: rule.outcome,
        severity: rule.severity,
        rule: rule.name.clone(),
        firing: true,
        at_ms,
        evidence: json!({
            "rule": rule.name,
            "event": ev.kind,
            "message": ev.message,
            "labels": ev.labels,
            "event_severity": ev.severity,
            "event_at_ms": ev.at_ms,
            "at_ms": at_ms,
            "summary": rule.summary.render(host, &component, &ev.message),
        }),
        event: Some(EventOrigin {
            kind: ev.kind.clone(),
            message: ev.message.clone(),
            at_ms: ev.at_ms,
            labels: ev.labels.clone(),
        }),
    })
}

/// The clear of a rule on a series its host stopped sending.
fn gone_signal(rule: &Rule, host: &str, customer: &str, labels: &Key, seen_ms: i64, at_ms: i64) -> Signal {
    let component = rule
        .component
        .as_ref()
        .and_then(|c| labels.iter().find(|(k, _)| k.as_ref() == c.as_str()))
        .map(|(_, v)| v.to_string())
        .unwrap_or_default();
    let labels: BTreeMap<&str, &str> = labels.iter().map(|(k, v)| (k.as_ref(), v.as_ref())).collect();
    Signal {
        event: None,
        key: IdentityKey {
            customer: customer.to_string(),
            asset: host.to_string(),
            check: rule.name.clone(),
            component,
        },
        kind: rule.outcome,
        severity: rule.severity,
        rule: rule.name.clone(),
        firing: false,
        at_ms,
        evidence: json!({
            "rule": rule.name,
            "metric": rule.target.name(),
            "labels": labels,
            "gone_since_ms": seen_ms,
            "at_ms": at_ms,
        }),
    }
}

fn absence_signal(rule: &Rule, name: &str, host: &HostState, firing: bool, at_ms: i64) -> Signal {
    let after = match rule.condition {
        Condition::Absence { after_intervals } => after_intervals,
        _ => 0,
    };
    Signal {
        event: None,
        key: IdentityKey {
            customer: host.customer.clone(),
            asset: name.to_string(),
            check: rule.name.clone(),
            component: String::new(),
        },
        kind: rule.outcome,
        severity: rule.severity,
        rule: rule.name.clone(),
        firing,
        at_ms,
        evidence: json!({
            "rule": rule.name,
            "metric": rule.target.name(),
            "labels": {},
            "last_report_ms": host.last_report_ms,
            "interval_secs": host.interval_ms / 1000,
            "after_intervals": after,
            "at_ms": at_ms,
        }),
    }
}

impl Series {
    /// Appends a point, keeping at most [`MAX_POINTS`] spread over
    /// `retention_ms`, and drops what is older than that. With `keep_drops`
    /// a fall in value is always appended, so a counter reset stays visible.
    fn push(&mut self, at_ms: i64, value: f64, retention_ms: i64, keep_drops: bool) {
        let spacing = retention_ms / MAX_POINTS as i64;
        let n = self.points.len();
        // Overwrite the newest point when it is too close to the one before,
        // so the series keeps the newest value without growing.
        let overwrite = n >= 2
            && at_ms.saturating_sub(self.points[n - 2].0) < spacing
            && !(keep_drops && self.points.back().is_some_and(|&(_, last)| value < last));
        if overwrite {
            let Some((_, last)) = self.points.pop_back() else {
                return;
            };
            if !keep_drops {
                // A gauge's point is the mean of the samples it stands for,
                // so a forecast fits the trend, not one noisy sample.
                let n = f64::from(self.newest_samples.max(1));
                self.newest_samples = self.newest_samples.saturating_add(1);
                self.points.push_back((at_ms, last + (value - last) / (n + 1.0)));
                self.drop_older(at_ms, retention_ms);
                return;
            }
        } else if self.points.len() >= MAX_POINTS {
            // Make room first: the buffer never grows past MAX_POINTS (its
            // capacity would double). The same point goes as below.
            self.points.pop_front();
        }
        if self.points.len() == self.points.capacity() {
            // Grow by doubling, but never past MAX_POINTS: a full series
            // holds exactly that many.
            let want = (self.points.capacity() * 2).clamp(4, MAX_POINTS.max(self.points.len() + 1));
            self.points.reserve_exact(want - self.points.len());
        }
        self.points.push_back((at_ms, value));
        self.newest_samples = 1;
        self.drop_older(at_ms, retention_ms);
    }

    /// Drops points older than the retention (keeping the newest) and any
    /// beyond [`MAX_POINTS`].
    fn drop_older(&mut self, at_ms: i64, retention_ms: i64) {
        let oldest = at_ms.saturating_sub(retention_ms);
        while self.points.len() > 1 && self.points.front().is_some_and(|&(t, _)| t < oldest) {
            self.points.pop_front();
        }
        while self.points.len() > MAX_POINTS {
            self.points.pop_front();
        }
    }

    fn in_window(&self, now_ms: i64, window_ms: i64) -> impl DoubleEndedIterator<Item = &(i64, f64)> + Clone {
        let from = now_ms.saturating_sub(window_ms);
        self.points.iter().filter(move |(t, _)| *t >= from)
    }
}

/// The component as a summary names it: a disk (named by the disk rules'
/// key, `wwn-…`) as a person finds it, "/dev/sdb (WDC WD2003FYYS, serial
/// WD-X)", from the report's `caretaker_disk_info`; anything else, or a
/// disk the report does not describe, as labelled.
fn component_words(rule: &Rule, report: &Report, component: &str) -> String {
    if rule.component.as_deref() != Some("disk") || component.is_empty() {
        return component.to_string();
    }
    let Some(info) = report
        .samples
        .iter()
        .find(|s| s.metric == "caretaker_disk_info" && s.labels.get("disk").is_some_and(|d| d == component))
    else {
        return component.to_string();
    };
    let label = |k: &str| info.labels.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let mut about: Vec<String> = label("model").map(str::to_string).into_iter().collect();
    about.extend(label("serial").map(|s| format!("serial {s}")));
    let name = label("device").unwrap_or(component);
    if about.is_empty() {
        name.to_string()
    } else {
        format!("{name} ({})", about.join(", "))
    }
}

/// Evaluates one rule on one series after its newest point; returns whether it
/// fires and, when it does, the kind-specific evidence (a clear carries none:
/// building it for the many clear evaluations of every report would cost
/// more than all the rest of the evaluation).
fn evaluate(
    rule: &Rule,
    series: &Series,
    state: &mut EvalState,
    value: f64,
    at_ms: i64,
) -> (bool, Option<serde_json::Value>) {
    match &rule.condition {
        Condition::Threshold {
            op,
            value: bound,
            clear,
            for_,
            ..
        } => {
            if state.firing {
                let clear_bound = clear.unwrap_or(*bound);
                if !compare(*op, value, clear_bound) {
                    state.firing = false;
                    state.since_ms = None;
                }
            }
            if !state.firing {
                if compare(*op, value, *bound) {
                    let since = *state.since_ms.get_or_insert(at_ms);
                    if at_ms.saturating_sub(since) >= ms(*for_) {
                        state.firing = true;
                    }
                } else {
                    state.since_ms = None;
                }
            }
            (
                state.firing,
                state.firing.then(
                    || json!({"op": op.as_str(), "threshold": bound, "clear": clear, "for_secs": for_.as_secs()}),
                ),
            )
        }
        Condition::Increase { window, min_increase } => {
            // A drop is a counter reset: count only from the newest one.
            let mut oldest = None;
            let mut prev = f64::NAN;
            for &(_, v) in series.in_window(at_ms, ms(*window)) {
                if oldest.is_none() || v < prev {
                    oldest = Some(v);
                }
                prev = v;
            }
            let oldest = oldest.unwrap_or(value);
            let increase = (value - oldest).max(0.0);
            state.firing = increase >= *min_increase;
            (
                state.firing,
                state
                    .firing
                    .then(|| json!({"increase": increase, "from": oldest, "window_secs": window.as_secs()})),
            )
        }
        Condition::Forecast {
            window,
            reaches,
            within,
            ..
        } => {
            let w = ms(*window);
            let eta = forecast(series.in_window(at_ms, w), at_ms, w, *reaches, value);
            let points = series.in_window(at_ms, w).count();
            state.firing = eta.is_some_and(|(secs, _, _)| secs <= within.as_secs_f64());
            let detail = match eta {
                Some((secs, slope, fit)) if state.firing => Some(json!({"eta_secs": secs, "slope_per_sec": slope,
                    "fitted_now": fit, "reaches": reaches, "window_secs": window.as_secs(), "points": points})),
                _ => None,
            };
            (state.firing, detail)
        }
        Condition::State { equals } => {
            state.firing = value == *equals;
            (state.firing, state.firing.then(|| json!({"equals": equals})))
        }
        Condition::Absence { .. } | Condition::Event => (false, None),
    }
}

/// When a series reaches `reaches` at its sustained rate: `(seconds from now,
/// slope per second, fitted value now)`, or `None` when it is not moving
/// toward it steadily (see the module docs on `forecast`).
///
/// The line is fitted on the window's floor — for each point, the value
/// farthest from `reaches` at or after it — so a series that keeps falling
/// back (a volume emptied every morning) shows the level it returns to, not
/// its peaks. The floor of the newer half of the window must be past that of
/// the older half: growth that did not hold across the window is no trend.
fn forecast<'a>(
    window: impl DoubleEndedIterator<Item = &'a (i64, f64)> + Clone,
    at_ms: i64,
    window_ms: i64,
    reaches: f64,
    value: f64,
) -> Option<(f64, f64, f64)> {
    let (mut count, mut first, mut last) = (0usize, None, 0);
    for &(t, _) in window.clone() {
        count += 1;
        first.get_or_insert(t);
        last = t;
    }
    let first = first?;
    if count < 3 || (last - first).saturating_mul(4) < window_ms {
        return None;
    }
    // +1 when the series must rise to reach, -1 when it must fall.
    let toward = (reaches - value).signum();
    if toward == 0.0 {
        return None;
    }
    // The floor, newest first, then in time order; in seconds relative to
    // now, which keeps the fit well-conditioned.
    let mut floor: Vec<(f64, f64)> = Vec::with_capacity(count);
    let mut low = f64::INFINITY;
    for &(t, v) in window.rev() {
        low = low.min(v * toward);
        floor.push(((t - at_ms) as f64 / 1000.0, low * toward));
    }
    floor.reverse();
    // Sustained: the newer half's floor is past the older half's.
    let mid = ((first - at_ms) + (last - at_ms)) as f64 / 2000.0;
    let older = floor
        .iter()
        .filter(|(x, _)| *x < mid)
        .map(|(_, y)| y * toward)
        .fold(f64::INFINITY, f64::min);
    let newer = floor
        .iter()
        .filter(|(x, _)| *x >= mid)
        .map(|(_, y)| y * toward)
        .fold(f64::INFINITY, f64::min);
    // How fast the floor advanced from one half to the other, per second:
    // the sustained rate, which a few steep points at the end cannot inflate.
    let advanced = newer - older;
    if advanced.is_nan() || advanced <= 0.0 {
        return None;
    }
    let sustained = advanced / ((last - first) as f64 / 2000.0);
    let n = count as f64;
    let mx = floor.iter().map(|(x, _)| x).sum::<f64>() / n;
    let my = floor.iter().map(|(_, y)| y).sum::<f64>() / n;
    let sxx: f64 = floor.iter().map(|(x, _)| (x - mx) * (x - mx)).sum();
    let sxy: f64 = floor.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
    if sxx <= 0.0 {
        return None;
    }
    let fitted = sxy / sxx;
    if fitted.signum() != toward {
        return None;
    }
    let slope = toward * fitted.abs().min(sustained);
    let now_fit = my - fitted * mx;
    let gap = reaches - now_fit;
    (slope != 0.0 && gap.signum() == slope.signum()).then(|| (gap / slope, slope, now_fit))
}
