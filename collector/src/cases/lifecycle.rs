//! The lifecycle of findings and cases as a pure state machine: given the
//! item that exists for an identity key (if any) and one signal from the rule
//! engine, [`apply`] says what must change; [`tick`] does the same for changes
//! that only the passing of time brings; [`act`] validates a person's action.
//!
//! Nothing here does I/O or reads a clock (time always comes in as `at_ms`),
//! so every rule of `shared/CASES.md` is tested here without a database, and
//! the store only has to persist what a [`Decision`] says.
//!
//! Statuses: one [`Status`] enum holds the case and the finding statuses; each
//! status knows its [`ItemKind`] ([`Status::kind`]) and whether it is active
//! ([`Status::is_active`]). One enum keeps the store, the log and the errors
//! simple (a log row is "from → to" whatever the kind), and every transition
//! function checks the kind, so a finding can never reach a case status.
//!
//! Findings and clear signals: a finding is a latent risk that people close
//! (planned, accepted risk, fixed, verified are human judgements), so a clear
//! signal on a finding only records `cleared_at_ms` — the inspection report
//! shows it cleared — and never changes its status.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What a signal is about. It never depends on message text, grouping or rule
/// order, so a retried or re-worded delivery lands on the same item.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct IdentityKey {
    pub customer: String,
    pub asset: String,
    pub check: String,
    /// A disk, a filesystem, a DIMM…; empty when the check is about the whole asset.
    pub component: String,
}

impl fmt::Display for IdentityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}/{}", self.customer, self.asset, self.check, self.component)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    /// A latent risk (the inspection side).
    Finding,
    /// A fault.
    Case,
}

impl ItemKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ItemKind::Finding => "finding",
            ItemKind::Case => "case",
        }
    }

    pub fn parse(s: &str) -> Option<ItemKind> {
        match s {
            "finding" => Some(ItemKind::Finding),
            "case" => Some(ItemKind::Case),
            _ => None,
        }
    }
}

impl fmt::Display for ItemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Ordered: `Info < Warning < Major < Critical`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Major,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Major => "major",
            Severity::Critical => "critical",
        }
    }

    pub fn parse(s: &str) -> Option<Severity> {
        match s {
            "info" => Some(Severity::Info),
            "warning" => Some(Severity::Warning),
            "major" => Some(Severity::Major),
            "critical" => Some(Severity::Critical),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldReason {
    AwaitingCustomer,
    AwaitingParts,
    AwaitingVendor,
    AwaitingWindow,
}

impl HoldReason {
    pub fn as_str(self) -> &'static str {
        match self {
            HoldReason::AwaitingCustomer => "awaiting_customer",
            HoldReason::AwaitingParts => "awaiting_parts",
            HoldReason::AwaitingVendor => "awaiting_vendor",
            HoldReason::AwaitingWindow => "awaiting_window",
        }
    }

    pub fn parse(s: &str) -> Option<HoldReason> {
        match s {
            "awaiting_customer" => Some(HoldReason::AwaitingCustomer),
            "awaiting_parts" => Some(HoldReason::AwaitingParts),
            "awaiting_vendor" => Some(HoldReason::AwaitingVendor),
            "awaiting_window" => Some(HoldReason::AwaitingWindow),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CancelReason {
    Duplicate,
    FalsePositive,
    Merged,
}

impl CancelReason {
    pub fn as_str(self) -> &'static str {
        match self {
            CancelReason::Duplicate => "duplicate",
            CancelReason::FalsePositive => "false_positive",
            CancelReason::Merged => "merged",
        }
    }

    pub fn parse(s: &str) -> Option<CancelReason> {
        match s {
            "duplicate" => Some(CancelReason::Duplicate),
            "false_positive" => Some(CancelReason::FalsePositive),
            "merged" => Some(CancelReason::Merged),
            _ => None,
        }
    }
}

/// The status of a case or of a finding (see the module docs for why one enum).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    // Cases.
    New,
    Assigned,
    InProgress,
    OnHold(HoldReason),
    /// The signal cleared but nobody has confirmed the repair.
    Recovered,
    Resolved,
    Closed,
    Cancelled(CancelReason),
    // Findings.
    Open,
    Planned,
    AcceptedRisk,
    Fixed,
    Verified,
}

impl Status {
    pub fn kind(self) -> ItemKind {
        match self {
            Status::New
            | Status::Assigned
            | Status::InProgress
            | Status::OnHold(_)
            | Status::Recovered
            | Status::Resolved
            | Status::Closed
            | Status::Cancelled(_) => ItemKind::Case,
            Status::Open | Status::Planned | Status::AcceptedRisk | Status::Fixed | Status::Verified => {
                ItemKind::Finding
            }
        }
    }

    /// Active items are the ones the unique index allows once per key.
    pub fn is_active(self) -> bool {
        !matches!(
            self,
            Status::Resolved | Status::Closed | Status::Cancelled(_) | Status::Fixed | Status::Verified
        )
    }

    /// The status a new (or reopened) item of `kind` starts in.
    pub fn initial(kind: ItemKind) -> Status {
        match kind {
            ItemKind::Case => Status::New,
            ItemKind::Finding => Status::Open,
        }
    }

    /// The status name without its reason, as stored in `items.status`.
    pub fn name(self) -> &'static str {
        match self {
            Status::New => "new",
            Status::Assigned => "assigned",
            Status::InProgress => "in_progress",
            Status::OnHold(_) => "on_hold",
            Status::Recovered => "recovered",
            Status::Resolved => "resolved",
            Status::Closed => "closed",
            Status::Cancelled(_) => "cancelled",
            Status::Open => "open",
            Status::Planned => "planned",
            Status::AcceptedRisk => "accepted_risk",
            Status::Fixed => "fixed",
            Status::Verified => "verified",
        }
    }

    /// The hold or cancel reason, as stored in `items.hold_reason`.
    pub fn reason(self) -> Option<&'static str> {
        match self {
            Status::OnHold(r) => Some(r.as_str()),
            Status::Cancelled(r) => Some(r.as_str()),
            _ => None,
        }
    }

    /// The inverse of ([`Status::name`], [`Status::reason`]).
    pub fn from_parts(name: &str, reason: Option<&str>) -> Option<Status> {
        Some(match (name, reason) {
            ("new", None) => Status::New,
            ("assigned", None) => Status::Assigned,
            ("in_progress", None) => Status::InProgress,
            ("on_hold", Some(r)) => Status::OnHold(HoldReason::parse(r)?),
            ("recovered", None) => Status::Recovered,
            ("resolved", None) => Status::Resolved,
            ("closed", None) => Status::Closed,
            ("cancelled", Some(r)) => Status::Cancelled(CancelReason::parse(r)?),
            ("open", None) => Status::Open,
            ("planned", None) => Status::Planned,
            ("accepted_risk", None) => Status::AcceptedRisk,
            ("fixed", None) => Status::Fixed,
            ("verified", None) => Status::Verified,
            _ => return None,
        })
    }

    /// Parses the [`Display`](fmt::Display) form, `name` or `name:reason`.
    pub fn parse(s: &str) -> Option<Status> {
        match s.split_once(':') {
            Some((name, reason)) => Status::from_parts(name, Some(reason)),
            None => Status::from_parts(s, None),
        }
    }
}

/// `name` or `name:reason` (`on_hold:awaiting_parts`), one token for logs.
impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.reason() {
            Some(r) => write!(f, "{}:{}", self.name(), r),
            None => f.write_str(self.name()),
        }
    }
}

/// What the rule engine says about one key at one evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signal {
    pub key: IdentityKey,
    pub kind: ItemKind,
    pub severity: Severity,
    pub rule: String,
    /// `true` while the condition holds, `false` once it has cleared.
    pub firing: bool,
    pub at_ms: i64,
    pub evidence: serde_json::Value,
    /// The agent event behind an `event` rule's signal; `None` for a
    /// signal about a state. An event fires once and never clears: the
    /// lifecycle counts it on an active item instead of taking the item over.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<EventOrigin>,
}

/// The agent event a signal comes from ([`Signal::event`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventOrigin {
    /// The event's kind, e.g. `raid_disk_failed`.
    pub kind: String,
    pub message: String,
    /// When it happened, by the agent's word.
    pub at_ms: i64,
    pub labels: std::collections::BTreeMap<String, String>,
}

impl EventOrigin {
    /// The event an item was opened by, read back from the item's stored
    /// evidence (the engine writes `event`, `message`, `labels` and
    /// `event_at_ms` there); `None` for an item a state opened.
    pub fn of_evidence(evidence: &serde_json::Value) -> Option<EventOrigin> {
        Some(EventOrigin {
            at_ms: evidence.get("event_at_ms")?.as_i64()?,
            kind: evidence.get("event")?.as_str()?.to_string(),
            message: evidence.get("message")?.as_str()?.to_string(),
            labels: serde_json::from_value(evidence.get("labels")?.clone()).unwrap_or_default(),
        })
    }
}

impl Signal {
    /// The message of the agent event behind the signal, if any.
    pub fn event_message(&self) -> Option<&str> {
        self.event.as_ref().map(|e| e.message.as_str())
    }

    /// The entry an event signal adds to its item's `events` evidence list.
    fn event_entry(&self) -> Option<serde_json::Value> {
        let e = self.event.as_ref()?;
        Some(serde_json::json!({
            "rule": self.rule,
            "event": e.kind,
            "message": e.message,
            "labels": e.labels,
            "at_ms": e.at_ms,
        }))
    }
}

/// Events an item's evidence keeps (`events`), newest last: enough to name
/// every disk of an array that failed, bounded against a chatty event log.
pub const EVENTS_KEPT: usize = 20;

/// The `events` list of an item's evidence (empty when it has none).
fn events_of(evidence: &serde_json::Value) -> Vec<serde_json::Value> {
    evidence
        .get("events")
        .and_then(|e| e.as_array())
        .cloned()
        .unwrap_or_default()
}

/// `evidence` with `events` set (when there are any and it is an object).
fn with_events(mut evidence: serde_json::Value, mut events: Vec<serde_json::Value>) -> serde_json::Value {
    if events.len() > EVENTS_KEPT {
        events.drain(..events.len() - EVENTS_KEPT);
    }
    if let Some(obj) = evidence.as_object_mut()
        && !events.is_empty()
    {
        obj.insert("events".into(), serde_json::Value::Array(events));
    }
    evidence
}

/// The timing knobs of the lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// How long after its last firing a case must stay open before a clear
    /// moves it to recovered, so a single good sample does not end a fault.
    pub min_hold_ms: i64,
    /// How long an untouched recovered case must stay clear before it
    /// resolves by itself.
    pub quiet_period_ms: i64,
    /// A firing within this time after an item ended reopens it; later, a new
    /// item is linked to it. Zero: always a new item.
    pub reopen_window_ms: i64,
    /// More than this many firing/clear changes within `flap_window_ms` mark
    /// the item flapping.
    pub flap_changes: u32,
    /// The flap counting window, and the stability an item needs to lose the mark.
    pub flap_window_ms: i64,
    /// More than this many new cases for one customer within
    /// `storm_window_ms` open one storm case that the rest attach to.
    /// Zero: no storm handling.
    pub storm_cases: u32,
    pub storm_window_ms: i64,
}

const MINUTE_MS: i64 = 60_000;
const HOUR_MS: i64 = 60 * MINUTE_MS;

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            min_hold_ms: 5 * MINUTE_MS,
            quiet_period_ms: 30 * MINUTE_MS,
            reopen_window_ms: 24 * HOUR_MS,
            flap_changes: 4,
            flap_window_ms: HOUR_MS,
            storm_cases: 10,
            storm_window_ms: 10 * MINUTE_MS,
        }
    }
}

/// A finding or a case.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    /// `None` until the store has inserted it.
    pub id: Option<i64>,
    pub key: IdentityKey,
    pub kind: ItemKind,
    pub status: Status,
    pub severity: Severity,
    /// The rule that last fired for it.
    pub rule: String,
    pub opened_at_ms: i64,
    pub updated_at_ms: i64,
    pub last_firing_at_ms: i64,
    /// When the signal last cleared; the signal is clear now while this is
    /// later than `last_firing_at_ms`.
    pub cleared_at_ms: Option<i64>,
    /// When the item ended (resolved, closed, cancelled, fixed, verified).
    pub resolved_at_ms: Option<i64>,
    /// Firing evaluations counted, including those while flapping.
    pub occurrences: u64,
    pub reopen_count: u32,
    /// The earlier item with the same key that this one is a recurrence of.
    pub recurrence_of: Option<i64>,
    /// The finding this case was promoted from.
    pub promoted_from: Option<i64>,
    pub flapping: bool,
    /// Set by every person action: such a case waits for the engineer
    /// instead of auto-resolving.
    pub touched_by_person: bool,
    /// The status a recovered case returns to when its signal fires again.
    pub status_before_recovery: Option<Status>,
    /// The newest evidence; recovery never deletes it.
    pub evidence: serde_json::Value,
    /// Times of firing↔clear changes inside the flap window.
    pub recent_changes: Vec<i64>,
}

impl Item {
    /// A fresh item opened by a firing signal. One opened by an event keeps
    /// the event in its evidence's `events` list, as later events add theirs.
    pub(crate) fn opened_by(signal: &Signal) -> Item {
        let evidence = match signal.event_entry() {
            Some(entry) => with_events(signal.evidence.clone(), vec![entry]),
            None => signal.evidence.clone(),
        };
        Item {
            id: None,
            key: signal.key.clone(),
            kind: signal.kind,
            status: Status::initial(signal.kind),
            severity: signal.severity,
            rule: signal.rule.clone(),
            opened_at_ms: signal.at_ms,
            updated_at_ms: signal.at_ms,
            last_firing_at_ms: signal.at_ms,
            cleared_at_ms: None,
            resolved_at_ms: None,
            occurrences: 1,
            reopen_count: 0,
            recurrence_of: None,
            promoted_from: None,
            flapping: false,
            touched_by_person: false,
            status_before_recovery: None,
            evidence,
            recent_changes: Vec::new(),
        }
    }

    /// Whether the signal is clear now (it cleared after its last firing).
    pub fn signal_clear(&self) -> bool {
        self.cleared_at_ms.is_some_and(|c| c > self.last_firing_at_ms)
    }

    /// When the item ended, for the reopen window and for telling a late
    /// firing (dated before the end) from a new one.
    fn ended_at_ms(&self) -> i64 {
        self.resolved_at_ms.unwrap_or(self.updated_at_ms)
    }

    /// Records a firing↔clear change and sets the flapping mark when there
    /// were too many inside the window. Only `tick` removes the mark, after a
    /// stable window, so a flapping item does not flap its mark too.
    fn record_change(&mut self, at_ms: i64, policy: &Policy) {
        self.recent_changes.push(at_ms);
        let since = at_ms.saturating_sub(policy.flap_window_ms);
        self.recent_changes.retain(|&t| t > since);
        if self.recent_changes.len() > policy.flap_changes as usize {
            self.flapping = true;
        }
    }
}

/// What the store must do after a signal or a tick.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Insert a new item.
    Create(Item),
    /// Write the item back; `transition` is `(from, to)` when its status changed.
    Update {
        item: Item,
        transition: Option<(Status, Status)>,
    },
    /// The ended item brought back to its initial status (`reopen_count` + 1).
    Reopen {
        item: Item,
    },
    /// Insert a new item linked `recurrence_of` the ended one.
    CreateRecurrence(Item),
    Nothing,
}

/// Decides what one signal does.
///
/// `current` is the active item for the signal's kind and key; `last_for_key`
/// is the newest ended item for them (consulted only when none is active).
pub fn apply(current: Option<&Item>, last_for_key: Option<&Item>, signal: &Signal, policy: &Policy) -> Decision {
    match current {
        Some(item) if item.status.is_active() => on_active(item, signal, policy),
        _ => on_none_active(last_for_key, signal, policy),
    }
}

fn on_none_active(last: Option<&Item>, signal: &Signal, policy: &Policy) -> Decision {
    if !signal.firing {
        return Decision::Nothing;
    }
    let Some(old) = last else {
        return Decision::Create(Item::opened_by(signal));
    };
    // A late or repeated delivery of a firing the old item already counted
    // must not bring it back; nor may anything dated at or before the item
    // ended: an old entry of the BMC's event log read again, a report the
    // agent spooled while the collector was away. The item was ended in the
    // knowledge of that time; only what happens after can reopen it.
    if signal.at_ms <= old.last_firing_at_ms || signal.at_ms <= old.ended_at_ms() {
        return Decision::Nothing;
    }
    let within =
        policy.reopen_window_ms > 0 && signal.at_ms.saturating_sub(old.ended_at_ms()) <= policy.reopen_window_ms;
    if within {
        let mut item = old.clone();
        item.status = Status::initial(old.kind);
        item.severity = signal.severity;
        item.rule = signal.rule.clone();
        item.updated_at_ms = signal.at_ms;
        item.last_firing_at_ms = signal.at_ms;
        item.cleared_at_ms = None;
        item.resolved_at_ms = None;
        item.occurrences += 1;
        item.reopen_count += 1;
        item.flapping = false;
        // A new episode: whether a person works on it is decided afresh.
        item.touched_by_person = false;
        item.status_before_recovery = None;
        item.evidence = signal.evidence.clone();
        item.recent_changes.clear();
        Decision::Reopen { item }
    } else {
        let mut item = Item::opened_by(signal);
        item.recurrence_of = old.id;
        Decision::CreateRecurrence(item)
    }
}

/// An event landing on an active item: one more occurrence, its entry added
/// to the evidence's `events` list (the store logs its message), and nothing
/// else about the item changes: not its title, rule or evidence of state (the
/// state rule it shares a check with owns those). An event dated after the
/// signal cleared means the fault is back: a recovered case returns to work.
/// The same event delivered twice (same time, same message) changes nothing.
fn on_active_event(item: &Item, signal: &Signal, entry: serde_json::Value, policy: &Policy) -> Decision {
    if !signal.firing {
        // An event never clears (the store may turn a retired part's firing
        // into a clear): nothing to do.
        return Decision::Nothing;
    }
    let mut events = events_of(&item.evidence);
    let same = |e: &serde_json::Value| e.get("at_ms") == entry.get("at_ms") && e.get("message") == entry.get("message");
    if events.iter().any(same) {
        return Decision::Nothing;
    }
    events.push(entry);
    let mut next = item.clone();
    next.occurrences += 1;
    next.evidence = with_events(item.evidence.clone(), events);
    next.updated_at_ms = item.updated_at_ms.max(signal.at_ms);
    // Severity re-prioritises upward only: an event says something happened,
    // not that the state it joins became milder.
    next.severity = item.severity.max(signal.severity);
    let mut transition = None;
    if signal.at_ms > item.last_firing_at_ms {
        next.last_firing_at_ms = signal.at_ms;
        if item.signal_clear() && item.cleared_at_ms.is_some_and(|c| signal.at_ms > c) {
            next.record_change(signal.at_ms, policy);
            transition = back_to_work(item, &mut next);
        }
    }
    Decision::Update { item: next, transition }
}

/// A recovered item whose fault is back returns to the status it had
/// before it recovered (or its first one): the transition, if any.
fn back_to_work(item: &Item, next: &mut Item) -> Option<(Status, Status)> {
    if item.status != Status::Recovered {
        return None;
    }
    let back = item.status_before_recovery.unwrap_or(Status::initial(item.kind));
    next.status = back;
    next.status_before_recovery = None;
    Some((Status::Recovered, back))
}

fn on_active(item: &Item, signal: &Signal, policy: &Policy) -> Decision {
    if let Some(entry) = signal.event_entry() {
        return on_active_event(item, signal, entry, policy);
    }
    // Same or older than what the item has already seen: a duplicate or a
    // late retry, which must change nothing.
    if signal.at_ms <= item.last_firing_at_ms {
        return Decision::Nothing;
    }
    if signal.firing {
        let mut next = item.clone();
        next.occurrences += 1;
        next.last_firing_at_ms = signal.at_ms;
        next.updated_at_ms = signal.at_ms;
        // The newest evidence of state, keeping the events the item gathered
        // (a failed disk's event on its array's case names the disk).
        next.evidence = with_events(signal.evidence.clone(), events_of(&item.evidence));
        // Severity re-prioritises only; it never closes or reopens.
        next.severity = signal.severity;
        next.rule = signal.rule.clone();
        if item.signal_clear() {
            next.record_change(signal.at_ms, policy);
        }
        let transition = back_to_work(item, &mut next);
        return Decision::Update { item: next, transition };
    }
    // A clear signal.
    if item.signal_clear() {
        // Already clear (a duplicate, or a further clear evaluation): the
        // first clear time is what the quiet period counts from.
        return Decision::Nothing;
    }
    match item.kind {
        ItemKind::Finding => {
            let mut next = item.clone();
            next.cleared_at_ms = Some(signal.at_ms);
            next.updated_at_ms = signal.at_ms;
            next.record_change(signal.at_ms, policy);
            Decision::Update {
                item: next,
                transition: None,
            }
        }
        ItemKind::Case => {
            if signal.at_ms.saturating_sub(item.last_firing_at_ms) < policy.min_hold_ms {
                // Too soon to believe the clear; a later evaluation decides.
                return Decision::Nothing;
            }
            let mut next = item.clone();
            next.cleared_at_ms = Some(signal.at_ms);
            next.updated_at_ms = signal.at_ms;
            next.status_before_recovery = Some(item.status);
            next.status = Status::Recovered;
            next.record_change(signal.at_ms, policy);
            Decision::Update {
                item: next,
                transition: Some((item.status, Status::Recovered)),
            }
        }
    }
}

/// Changes that only time brings: an untouched recovered case whose signal
/// stayed clear for the quiet period resolves; a flapping item stable for the
/// flap window loses the mark. `None` when nothing changes.
pub fn tick(item: &Item, policy: &Policy, now_ms: i64) -> Option<Decision> {
    if !item.status.is_active() {
        return None;
    }
    let mut next = item.clone();
    let mut changed = false;
    if item.flapping {
        let since = now_ms.saturating_sub(policy.flap_window_ms);
        next.recent_changes.retain(|&t| t > since);
        if next.recent_changes.is_empty() {
            next.flapping = false;
            changed = true;
        }
    }
    let mut transition = None;
    if item.status == Status::Recovered
        && !item.touched_by_person
        && item.signal_clear()
        && item
            .cleared_at_ms
            .is_some_and(|c| now_ms.saturating_sub(c) >= policy.quiet_period_ms)
    {
        next.status = Status::Resolved;
        next.status_before_recovery = None;
        next.resolved_at_ms = Some(now_ms);
        // An ended item no longer flaps; a reopen starts counting afresh.
        next.flapping = false;
        next.recent_changes.clear();
        transition = Some((Status::Recovered, Status::Resolved));
        changed = true;
    }
    if !changed {
        return None;
    }
    next.updated_at_ms = now_ms;
    Some(Decision::Update { item: next, transition })
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LifecycleError {
    #[error("cannot move a {kind} from {from} to {to}")]
    InvalidTransition { kind: ItemKind, from: Status, to: Status },
    #[error("{action} applies to a {expected}, not to a {actual}")]
    WrongKind {
        action: &'static str,
        expected: ItemKind,
        actual: ItemKind,
    },
}

impl From<LifecycleError> for crate::store::StoreError {
    fn from(e: LifecycleError) -> Self {
        crate::store::StoreError::Lifecycle(e.to_string())
    }
}

/// What a person can do to an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "action", content = "reason")]
pub enum Action {
    // Cases.
    Assign,
    Start,
    Hold(HoldReason),
    Resume,
    Resolve,
    Close,
    Cancel(CancelReason),
    // Findings.
    Plan,
    AcceptRisk,
    Fix,
    Verify,
}

impl Action {
    pub fn name(self) -> &'static str {
        match self {
            Action::Assign => "assign",
            Action::Start => "start",
            Action::Hold(_) => "hold",
            Action::Resume => "resume",
            Action::Resolve => "resolve",
            Action::Close => "close",
            Action::Cancel(_) => "cancel",
            Action::Plan => "plan",
            Action::AcceptRisk => "accept_risk",
            Action::Fix => "fix",
            Action::Verify => "verify",
        }
    }

    fn kind(self) -> ItemKind {
        match self {
            Action::Plan | Action::AcceptRisk | Action::Fix | Action::Verify => ItemKind::Finding,
            _ => ItemKind::Case,
        }
    }

    /// The status the action leads to.
    pub fn target(self) -> Status {
        match self {
            Action::Assign => Status::Assigned,
            Action::Start => Status::InProgress,
            Action::Hold(r) => Status::OnHold(r),
            Action::Resume => Status::InProgress,
            Action::Resolve => Status::Resolved,
            Action::Close => Status::Closed,
            Action::Cancel(r) => Status::Cancelled(r),
            Action::Plan => Status::Planned,
            Action::AcceptRisk => Status::AcceptedRisk,
            Action::Fix => Status::Fixed,
            Action::Verify => Status::Verified,
        }
    }

    /// Whether the action may start from `from`. The table of valid moves.
    fn allowed_from(self, from: Status) -> bool {
        use Status as S;
        match self {
            // Assigning again is a re-assignment; work already started is not
            // sent back to "assigned".
            Action::Assign => matches!(from, S::New | S::Assigned),
            // An engineer may start on a recovered case to confirm the repair.
            Action::Start => matches!(from, S::New | S::Assigned | S::Recovered),
            // Changing the hold reason is a new hold.
            Action::Hold(r) => match from {
                S::Assigned | S::InProgress => true,
                S::OnHold(old) => old != r,
                _ => false,
            },
            Action::Resume => matches!(from, S::OnHold(_)),
            // A New case has had nobody look at it: it cannot be resolved yet.
            Action::Resolve => {
                matches!(from, S::Assigned | S::InProgress | S::OnHold(_) | S::Recovered)
            }
            // Closing follows resolution (and its satisfaction record).
            Action::Close => from == S::Resolved,
            Action::Cancel(_) => from.kind() == ItemKind::Case && from.is_active(),
            Action::Plan => from == S::Open,
            Action::AcceptRisk => matches!(from, S::Open | S::Planned),
            Action::Fix => matches!(from, S::Open | S::Planned | S::AcceptedRisk),
            Action::Verify => from == S::Fixed,
        }
    }
}

/// Applies a person's action at `at_ms`, returning the changed item and the
/// `(from, to)` transition, or why the action is not allowed.
pub fn act(item: &Item, action: Action, at_ms: i64) -> Result<(Item, (Status, Status)), LifecycleError> {
    if action.kind() != item.kind {
        return Err(LifecycleError::WrongKind {
            action: action.name(),
            expected: action.kind(),
            actual: item.kind,
        });
    }
    let from = item.status;
    let to = action.target();
    if !action.allowed_from(from) {
        return Err(LifecycleError::InvalidTransition {
            kind: item.kind,
            from,
            to,
        });
    }
    let mut next = item.clone();
    next.status = to;
    next.updated_at_ms = at_ms;
    next.touched_by_person = true;
    next.status_before_recovery = None;
    // Closing keeps the resolution time: the reopen window counts from when
    // the fault was resolved, not from the paperwork.
    if !to.is_active() && next.resolved_at_ms.is_none() {
        next.resolved_at_ms = Some(at_ms);
    }
    // An ended item no longer flaps (and `tick` never visits it again).
    if !to.is_active() {
        next.flapping = false;
        next.recent_changes.clear();
    }
    Ok((next, (from, to)))
}

pub fn assign(item: &Item, at_ms: i64) -> Result<(Item, (Status, Status)), LifecycleError> {
    act(item, Action::Assign, at_ms)
}
pub fn start(item: &Item, at_ms: i64) -> Result<(Item, (Status, Status)), LifecycleError> {
    act(item, Action::Start, at_ms)
}
pub fn hold(item: &Item, reason: HoldReason, at_ms: i64) -> Result<(Item, (Status, Status)), LifecycleError> {
    act(item, Action::Hold(reason), at_ms)
}
pub fn resume(item: &Item, at_ms: i64) -> Result<(Item, (Status, Status)), LifecycleError> {
    act(item, Action::Resume, at_ms)
}
pub fn resolve(item: &Item, at_ms: i64) -> Result<(Item, (Status, Status)), LifecycleError> {
    act(item, Action::Resolve, at_ms)
}
pub fn close(item: &Item, at_ms: i64) -> Result<(Item, (Status, Status)), LifecycleError> {
    act(item, Action::Close, at_ms)
}
pub fn cancel(item: &Item, reason: CancelReason, at_ms: i64) -> Result<(Item, (Status, Status)), LifecycleError> {
    act(item, Action::Cancel(reason), at_ms)
}
pub fn plan(item: &Item, at_ms: i64) -> Result<(Item, (Status, Status)), LifecycleError> {
    act(item, Action::Plan, at_ms)
}
pub fn accept_risk(item: &Item, at_ms: i64) -> Result<(Item, (Status, Status)), LifecycleError> {
    act(item, Action::AcceptRisk, at_ms)
}
pub fn fix(item: &Item, at_ms: i64) -> Result<(Item, (Status, Status)), LifecycleError> {
    act(item, Action::Fix, at_ms)
}
pub fn verify(item: &Item, at_ms: i64) -> Result<(Item, (Status, Status)), LifecycleError> {
    act(item, Action::Verify, at_ms)
}

/// A new case for an active finding's key and evidence, linked by
/// `promoted_from` (the risk has become a fault). The finding itself is
/// unchanged: it stays on the inspection record until a person closes it.
pub fn promote_to_case(finding: &Item, at_ms: i64) -> Result<Item, LifecycleError> {
    if finding.kind != ItemKind::Finding {
        return Err(LifecycleError::WrongKind {
            action: "promote_to_case",
            expected: ItemKind::Finding,
            actual: finding.kind,
        });
    }
    if !finding.status.is_active() {
        return Err(LifecycleError::InvalidTransition {
            kind: ItemKind::Finding,
            from: finding.status,
            to: Status::New,
        });
    }
    Ok(Item {
        id: None,
        key: finding.key.clone(),
        kind: ItemKind::Case,
        status: Status::New,
        severity: finding.severity,
        rule: finding.rule.clone(),
        opened_at_ms: at_ms,
        updated_at_ms: at_ms,
        last_firing_at_ms: finding.last_firing_at_ms,
        cleared_at_ms: finding.cleared_at_ms,
        resolved_at_ms: None,
        occurrences: 1,
        reopen_count: 0,
        recurrence_of: None,
        promoted_from: finding.id,
        flapping: false,
        // A person (or a rule acting for one) asked for it: it waits for the
        // engineer rather than auto-resolving.
        touched_by_person: true,
        status_before_recovery: None,
        evidence: finding.evidence.clone(),
        recent_changes: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    const MIN: i64 = 60_000;

    fn key() -> IdentityKey {
        IdentityKey {
            customer: "acme".into(),
            asset: "srv1".into(),
            check: "disk_reallocated".into(),
            component: "sda".into(),
        }
    }

    fn sig(kind: ItemKind, firing: bool, at_ms: i64) -> Signal {
        Signal {
            event: None,
            key: key(),
            kind,
            severity: Severity::Major,
            rule: "realloc".into(),
            firing,
            at_ms,
            evidence: serde_json::json!({ "at": at_ms }),
        }
    }

    fn fire(at: i64) -> Signal {
        sig(ItemKind::Case, true, at)
    }
    fn clear(at: i64) -> Signal {
        sig(ItemKind::Case, false, at)
    }

    /// Applies `signal` to `item` the way the store does, returning the new
    /// state of the item.
    fn step(item: &Item, signal: &Signal, p: &Policy) -> Item {
        match apply(Some(item), None, signal, p) {
            Decision::Update { item, .. } => item,
            Decision::Nothing => item.clone(),
            other => panic!("unexpected {other:?}"),
        }
    }

    fn created(signal: &Signal) -> Item {
        match apply(None, None, signal, &Policy::default()) {
            Decision::Create(mut i) => {
                i.id = Some(1);
                i
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn identity_key_display_never_includes_message() {
        assert_eq!(key().to_string(), "acme/srv1/disk_reallocated/sda");
        let mut k = key();
        k.component = String::new();
        assert_eq!(k.to_string(), "acme/srv1/disk_reallocated/");
    }

    #[test]
    fn status_round_trips_through_parts_and_text() {
        let all = [
            Status::New,
            Status::Assigned,
            Status::InProgress,
            Status::OnHold(HoldReason::AwaitingCustomer),
            Status::OnHold(HoldReason::AwaitingParts),
            Status::OnHold(HoldReason::AwaitingVendor),
            Status::OnHold(HoldReason::AwaitingWindow),
            Status::Recovered,
            Status::Resolved,
            Status::Closed,
            Status::Cancelled(CancelReason::Duplicate),
            Status::Cancelled(CancelReason::FalsePositive),
            Status::Cancelled(CancelReason::Merged),
            Status::Open,
            Status::Planned,
            Status::AcceptedRisk,
            Status::Fixed,
            Status::Verified,
        ];
        for s in all {
            assert_eq!(Status::from_parts(s.name(), s.reason()), Some(s));
            assert_eq!(Status::parse(&s.to_string()), Some(s));
        }
        assert_eq!(Status::parse("on_hold"), None);
        assert_eq!(Status::parse("new:duplicate"), None);
        assert!(Severity::Info < Severity::Warning && Severity::Major < Severity::Critical);
    }

    #[test]
    fn firing_without_item_creates_and_clear_does_nothing() {
        let p = Policy::default();
        let item = created(&fire(0));
        assert_eq!(item.status, Status::New);
        assert_eq!(item.occurrences, 1);
        assert_eq!(apply(None, None, &clear(0), &p), Decision::Nothing);
        let f = created(&sig(ItemKind::Finding, true, 0));
        assert_eq!(f.status, Status::Open);
    }

    #[test]
    fn repeated_firing_counts_occurrences_on_one_item() {
        let p = Policy::default();
        let mut item = created(&fire(0));
        for i in 1..10 {
            item = step(&item, &fire(i * MIN), &p);
        }
        assert_eq!(item.occurrences, 10);
        assert_eq!(item.last_firing_at_ms, 9 * MIN);
        assert_eq!(item.evidence, serde_json::json!({ "at": 9 * MIN }));
        assert_eq!(item.status, Status::New);
    }

    #[test]
    fn duplicate_delivery_changes_nothing() {
        let p = Policy::default();
        let item = created(&fire(0));
        assert_eq!(apply(Some(&item), None, &fire(0), &p), Decision::Nothing);
        let item = step(&item, &fire(MIN), &p);
        assert_eq!(apply(Some(&item), None, &fire(MIN), &p), Decision::Nothing);
        // A late retry of an older firing is no new occurrence either.
        assert_eq!(apply(Some(&item), None, &fire(0), &p), Decision::Nothing);
        let rec = step(&item, &clear(MIN + p.min_hold_ms), &p);
        assert_eq!(rec.status, Status::Recovered);
        assert_eq!(
            apply(Some(&rec), None, &clear(MIN + p.min_hold_ms), &p),
            Decision::Nothing
        );
    }

    #[test]
    fn clear_before_min_hold_does_nothing_after_it_recovers() {
        let p = Policy::default();
        let item = created(&fire(0));
        assert_eq!(apply(Some(&item), None, &clear(MIN), &p), Decision::Nothing);
        match apply(Some(&item), None, &clear(p.min_hold_ms), &p) {
            Decision::Update { item: r, transition } => {
                assert_eq!(r.status, Status::Recovered);
                assert_eq!(r.cleared_at_ms, Some(p.min_hold_ms));
                assert_eq!(r.status_before_recovery, Some(Status::New));
                assert_eq!(transition, Some((Status::New, Status::Recovered)));
                // Recovery keeps the evidence.
                assert_eq!(r.evidence, item.evidence);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn refire_while_recovered_returns_to_previous_status() {
        let p = Policy::default();
        let item = created(&fire(0));
        assert!(hold(&item, HoldReason::AwaitingParts, MIN).is_err());
        let (item, _) = assign(&item, MIN).unwrap();
        let (item, _) = hold(&item, HoldReason::AwaitingParts, MIN).unwrap();
        let rec = step(&item, &clear(10 * MIN), &p);
        assert_eq!(rec.status, Status::Recovered);
        match apply(Some(&rec), None, &fire(11 * MIN), &p) {
            Decision::Update { item: back, transition } => {
                let held = Status::OnHold(HoldReason::AwaitingParts);
                assert_eq!(back.status, held);
                assert_eq!(back.status_before_recovery, None);
                assert_eq!(transition, Some((Status::Recovered, held)));
                assert_eq!(back.occurrences, 2);
                assert_eq!(back.recent_changes, vec![10 * MIN, 11 * MIN]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn quiet_period_auto_resolves_untouched_case() {
        let p = Policy::default();
        let rec = step(&created(&fire(0)), &clear(p.min_hold_ms), &p);
        assert_eq!(tick(&rec, &p, p.min_hold_ms + p.quiet_period_ms - 1), None);
        match tick(&rec, &p, p.min_hold_ms + p.quiet_period_ms) {
            Some(Decision::Update { item, transition }) => {
                assert_eq!(item.status, Status::Resolved);
                assert_eq!(item.resolved_at_ms, Some(p.min_hold_ms + p.quiet_period_ms));
                assert_eq!(transition, Some((Status::Recovered, Status::Resolved)));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn touched_case_does_not_auto_resolve() {
        let p = Policy::default();
        let (item, _) = assign(&created(&fire(0)), MIN).unwrap();
        let rec = step(&item, &clear(p.min_hold_ms), &p);
        assert_eq!(rec.status, Status::Recovered);
        assert_eq!(tick(&rec, &p, 100 * p.quiet_period_ms), None);
    }

    #[test]
    fn clear_on_finding_records_cleared_at_only() {
        let p = Policy::default();
        let f = created(&sig(ItemKind::Finding, true, 0));
        match apply(Some(&f), None, &sig(ItemKind::Finding, false, MIN), &p) {
            Decision::Update { item, transition } => {
                assert_eq!(item.status, Status::Open);
                assert_eq!(item.cleared_at_ms, Some(MIN));
                assert_eq!(transition, None);
                assert_eq!(tick(&item, &p, 100 * p.quiet_period_ms), None);
            }
            other => panic!("{other:?}"),
        }
    }

    fn resolved_at(at: i64) -> Item {
        let (item, _) = start(&created(&fire(0)), 0).unwrap();
        let (item, _) = resolve(&item, at).unwrap();
        item
    }

    #[test]
    fn recurrence_within_window_reopens_same_item() {
        let p = Policy::default();
        let old = resolved_at(HOUR_MS);
        let at = HOUR_MS + p.reopen_window_ms;
        match apply(None, Some(&old), &fire(at), &p) {
            Decision::Reopen { item } => {
                assert_eq!(item.id, old.id);
                assert_eq!(item.status, Status::New);
                assert_eq!(item.reopen_count, 1);
                assert_eq!(item.occurrences, 2);
                assert_eq!(item.resolved_at_ms, None);
                assert!(!item.touched_by_person);
            }
            other => panic!("{other:?}"),
        }
        // A late copy of the firing the old item already counted: nothing.
        assert_eq!(apply(None, Some(&old), &fire(0), &p), Decision::Nothing);
    }

    #[test]
    fn recurrence_after_window_is_new_item_linked_to_old() {
        let p = Policy::default();
        let old = resolved_at(HOUR_MS);
        match apply(None, Some(&old), &fire(HOUR_MS + p.reopen_window_ms + 1), &p) {
            Decision::CreateRecurrence(item) => {
                assert_eq!(item.id, None);
                assert_eq!(item.recurrence_of, old.id);
                assert_eq!(item.reopen_count, 0);
                assert_eq!(item.occurrences, 1);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn reopen_window_zero_always_creates_new() {
        let p = Policy {
            reopen_window_ms: 0,
            ..Policy::default()
        };
        let old = resolved_at(HOUR_MS);
        assert!(matches!(
            apply(None, Some(&old), &fire(HOUR_MS + 1), &p),
            Decision::CreateRecurrence(i) if i.recurrence_of == old.id
        ));
    }

    #[test]
    fn firing_dated_at_or_before_the_end_never_reopens_nor_recurs() {
        // An old BMC event log entry read again, or a report the agent
        // spooled while the collector was away: the fault it describes
        // happened before the item was resolved (or closed), in the
        // knowledge of which it was ended.
        for window in [Policy::default().reopen_window_ms, 0] {
            let p = Policy {
                reopen_window_ms: window,
                ..Policy::default()
            };
            let old = resolved_at(HOUR_MS);
            assert_eq!(apply(None, Some(&old), &fire(HOUR_MS / 2), &p), Decision::Nothing);
            assert_eq!(apply(None, Some(&old), &fire(HOUR_MS), &p), Decision::Nothing);
            let (closed, _) = close(&old, 2 * HOUR_MS).unwrap();
            // Closing keeps the resolution time: the end is when it was resolved.
            assert_eq!(apply(None, Some(&closed), &fire(HOUR_MS), &p), Decision::Nothing);
            // One millisecond after the end is a new firing.
            assert!(matches!(
                apply(None, Some(&old), &fire(HOUR_MS + 1), &p),
                Decision::Reopen { .. } | Decision::CreateRecurrence(_)
            ));
            let mut event = event_sig("SEL: PS2 failure", HOUR_MS / 2);
            event.key = key();
            assert_eq!(apply(None, Some(&old), &event, &p), Decision::Nothing);
        }
    }

    /// A signal from an `event` rule, as the engine makes it.
    fn event_sig(message: &str, at_ms: i64) -> Signal {
        Signal {
            key: key(),
            kind: ItemKind::Case,
            severity: Severity::Critical,
            rule: "raid_disk_failed_in_array".into(),
            firing: true,
            at_ms,
            evidence: serde_json::json!({
                "rule": "raid_disk_failed_in_array",
                "event": "raid_disk_failed",
                "message": message,
                "labels": {"slot": "252:3"},
                "event_at_ms": at_ms,
                "at_ms": at_ms,
                "summary": "disk failed",
            }),
            event: Some(EventOrigin {
                kind: "raid_disk_failed".into(),
                message: message.into(),
                at_ms,
                labels: [("slot".to_string(), "252:3".to_string())].into(),
            }),
        }
    }

    #[test]
    fn event_on_an_active_item_counts_and_keeps_its_message_without_taking_it_over() {
        let p = Policy::default();
        let item = created(&fire(10 * MIN));
        assert_eq!(event_sig("x", 0).event_message(), Some("x"));
        assert_eq!(fire(0).event_message(), None);
        // Dated before the state firing (same report): still counted.
        let ev = event_sig(
            "Disk 252:3 (ST4000NM0023, serial Z1Z3ABCD) of array c0/v0 is Failed",
            9 * MIN,
        );
        let next = match apply(Some(&item), None, &ev, &p) {
            Decision::Update { item: next, transition } => {
                assert_eq!(transition, None);
                next
            }
            other => panic!("{other:?}"),
        };
        assert_eq!(next.occurrences, 2);
        assert_eq!(next.rule, item.rule, "the state rule keeps the item");
        assert_eq!(next.severity, Severity::Critical, "re-prioritised upward");
        assert_eq!(next.last_firing_at_ms, 10 * MIN);
        assert_eq!(next.evidence["at"], 10 * MIN, "the state evidence stays");
        assert_eq!(next.evidence["events"][0]["labels"]["slot"], "252:3");
        // The same event again: nothing.
        assert_eq!(apply(Some(&next), None, &ev, &p), Decision::Nothing);
        // A later state firing replaces the state evidence, keeps the events.
        let later = step(&next, &fire(20 * MIN), &p);
        assert_eq!(later.evidence["at"], 20 * MIN);
        assert_eq!(later.evidence["events"].as_array().map(Vec::len), Some(1));
        // An event never clears.
        let cleared = Signal {
            firing: false,
            ..event_sig("y", 30 * MIN)
        };
        assert_eq!(apply(Some(&later), None, &cleared, &p), Decision::Nothing);
    }

    #[test]
    fn event_after_the_clear_brings_a_recovered_case_back_and_one_before_does_not() {
        let p = Policy::default();
        let item = created(&fire(0));
        let recovered = step(&item, &clear(10 * MIN), &p);
        assert_eq!(recovered.status, Status::Recovered);
        match apply(Some(&recovered), None, &event_sig("old", 5 * MIN), &p) {
            Decision::Update { item, transition } => {
                assert_eq!((item.status, transition), (Status::Recovered, None));
                assert_eq!(item.occurrences, 2);
            }
            other => panic!("{other:?}"),
        }
        match apply(Some(&recovered), None, &event_sig("new", 20 * MIN), &p) {
            Decision::Update { item, transition } => {
                assert_eq!(transition, Some((Status::Recovered, Status::New)));
                assert_eq!(item.last_firing_at_ms, 20 * MIN);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn item_opened_by_an_event_lists_it_and_bounds_the_list() {
        let p = Policy::default();
        let mut item = created(&event_sig("first", 0));
        assert_eq!(item.evidence["summary"], "disk failed");
        assert_eq!(item.evidence["events"][0]["message"], "first");
        for i in 1..=(EVENTS_KEPT as i64 + 5) {
            item = step(&item, &event_sig(&format!("e{i}"), i * MIN), &p);
        }
        let events = item.evidence["events"].as_array().unwrap();
        assert_eq!(events.len(), EVENTS_KEPT);
        assert_eq!(events[EVENTS_KEPT - 1]["message"], format!("e{}", EVENTS_KEPT + 5));
        assert_eq!(item.occurrences, EVENTS_KEPT as u64 + 6);
    }

    /// A metric crossing its threshold every 5 minutes for 6 hours.
    #[test]
    fn flapping_metric_is_one_item_marked_flapping_then_stable() {
        let p = Policy::default();
        let mut item = created(&fire(0));
        let mut firings = 1;
        let mut was_flapping = false;
        for i in 1..(6 * 12) {
            let at = i * 5 * MIN;
            let firing = i % 2 == 0;
            let s = fire(at);
            let s = Signal { firing, ..s };
            match apply(Some(&item), None, &s, &p) {
                Decision::Update { item: next, .. } => item = next,
                Decision::Nothing => {}
                other => panic!("a flapping signal must never {other:?}"),
            }
            if firing {
                firings += 1;
            }
            was_flapping |= item.flapping;
            // Time passes between evaluations; the mark must hold meanwhile.
            if let Some(Decision::Update { item: next, .. }) = tick(&item, &p, at + MIN) {
                item = next;
            }
        }
        assert!(was_flapping);
        assert!(item.flapping);
        assert_eq!(item.occurrences, firings);
        assert_eq!(item.id, Some(1));
        assert!(item.recent_changes.len() <= 13);
        // Last evaluation was a clear; stable from then on.
        let last = item.updated_at_ms;
        assert_eq!(item.status, Status::Recovered);
        // Untouched, it resolves after the quiet period, and a resolved item
        // no longer flaps.
        assert_eq!(tick(&item, &p, last + p.quiet_period_ms - 1), None);
        match tick(&item, &p, last + p.quiet_period_ms) {
            Some(Decision::Update { item, .. }) => {
                assert_eq!(item.status, Status::Resolved);
                assert!(!item.flapping);
            }
            other => panic!("{other:?}"),
        }
        // Touched, it stays recovered and loses the mark after a stable window.
        item.touched_by_person = true;
        assert_eq!(tick(&item, &p, last + p.flap_window_ms - 1), None);
        match tick(&item, &p, last + p.flap_window_ms) {
            Some(Decision::Update { item, transition }) => {
                assert!(!item.flapping);
                assert!(item.recent_changes.is_empty());
                assert_eq!(item.status, Status::Recovered);
                assert_eq!(transition, None);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn few_changes_do_not_mark_flapping() {
        let p = Policy::default();
        let mut item = created(&fire(0));
        // Four changes in an hour: not more than flap_changes.
        for (i, firing) in [false, true, false, true].into_iter().enumerate() {
            let at = (i as i64 + 1) * 10 * MIN;
            item = step(&item, &Signal { firing, ..fire(at) }, &p);
        }
        assert_eq!(item.recent_changes.len(), 4);
        assert!(!item.flapping);
        item = step(&item, &clear(50 * MIN), &p);
        assert!(item.flapping);
    }

    #[test]
    fn severity_change_never_closes_or_reopens() {
        let p = Policy::default();
        let item = created(&fire(0));
        let s = Signal {
            severity: Severity::Critical,
            ..fire(MIN)
        };
        match apply(Some(&item), None, &s, &p) {
            Decision::Update { item: up, transition } => {
                assert_eq!(up.severity, Severity::Critical);
                assert_eq!(up.status, Status::New);
                assert_eq!(transition, None);
            }
            other => panic!("{other:?}"),
        }
        let s = Signal {
            severity: Severity::Info,
            ..fire(2 * MIN)
        };
        let down = step(&item, &s, &p);
        assert_eq!(down.severity, Severity::Info);
        assert_eq!(down.status, Status::New);
    }

    fn case_in(status: Status) -> Item {
        let mut i = created(&fire(0));
        i.status = status;
        i
    }

    fn finding_in(status: Status) -> Item {
        let mut i = created(&sig(ItemKind::Finding, true, 0));
        i.status = status;
        i
    }

    #[test]
    fn every_person_action_valid_and_invalid_transitions() {
        use CancelReason as C;
        use HoldReason as H;
        use Status as S;
        let parts = S::OnHold(H::AwaitingParts);
        let case_statuses = [
            S::New,
            S::Assigned,
            S::InProgress,
            parts,
            S::Recovered,
            S::Resolved,
            S::Closed,
            S::Cancelled(C::Duplicate),
        ];
        let finding_statuses = [S::Open, S::Planned, S::AcceptedRisk, S::Fixed, S::Verified];
        let valid: &[(Action, &[Status])] = &[
            (Action::Assign, &[S::New, S::Assigned]),
            (Action::Start, &[S::New, S::Assigned, S::Recovered]),
            (Action::Hold(H::AwaitingCustomer), &[S::Assigned, S::InProgress, parts]),
            (Action::Hold(H::AwaitingParts), &[S::Assigned, S::InProgress]),
            (Action::Resume, &[parts]),
            (Action::Resolve, &[S::Assigned, S::InProgress, parts, S::Recovered]),
            (Action::Close, &[S::Resolved]),
            (
                Action::Cancel(C::FalsePositive),
                &[S::New, S::Assigned, S::InProgress, parts, S::Recovered],
            ),
            (Action::Plan, &[S::Open]),
            (Action::AcceptRisk, &[S::Open, S::Planned]),
            (Action::Fix, &[S::Open, S::Planned, S::AcceptedRisk]),
            (Action::Verify, &[S::Fixed]),
        ];
        for &(action, ok_from) in valid {
            let (statuses, make): (&[Status], fn(Status) -> Item) = match action.kind() {
                ItemKind::Case => (&case_statuses, case_in),
                ItemKind::Finding => (&finding_statuses, finding_in),
            };
            for &from in statuses {
                let item = make(from);
                let got = act(&item, action, 5 * MIN);
                if ok_from.contains(&from) {
                    let (next, t) = got.unwrap_or_else(|e| panic!("{action:?} from {from}: {e}"));
                    assert_eq!(t, (from, action.target()));
                    assert_eq!(next.status, action.target());
                    assert!(next.touched_by_person);
                    assert_eq!(next.updated_at_ms, 5 * MIN);
                    assert_eq!(next.resolved_at_ms.is_some(), !next.status.is_active());
                } else {
                    assert_eq!(
                        got.unwrap_err(),
                        LifecycleError::InvalidTransition {
                            kind: item.kind,
                            from,
                            to: action.target()
                        },
                        "{action:?} from {from}"
                    );
                }
            }
            // The other kind is refused whatever its status.
            let other = match action.kind() {
                ItemKind::Case => finding_in(S::Open),
                ItemKind::Finding => case_in(S::New),
            };
            assert!(matches!(act(&other, action, 0), Err(LifecycleError::WrongKind { .. })));
        }
        // The named wrappers and the error message.
        let err = close(&case_in(S::New), 0).unwrap_err();
        assert_eq!(err.to_string(), "cannot move a case from new to closed");
        assert!(resume(&case_in(S::InProgress), 0).is_err());
        assert!(cancel(&case_in(S::New), C::Merged, 0).is_ok());
        assert!(plan(&finding_in(S::Open), 0).is_ok());
        assert!(accept_risk(&finding_in(S::Planned), 0).is_ok());
        assert!(fix(&finding_in(S::AcceptedRisk), 0).is_ok());
        assert!(verify(&finding_in(S::Fixed), 0).is_ok());
    }

    #[test]
    fn close_keeps_the_resolution_time() {
        let item = resolved_at(HOUR_MS);
        let (closed, _) = close(&item, 2 * HOUR_MS).unwrap();
        assert_eq!(closed.resolved_at_ms, Some(HOUR_MS));
    }

    #[test]
    fn finding_promoted_to_case() {
        let mut f = finding_in(Status::Planned);
        f.id = Some(7);
        let case = promote_to_case(&f, MIN).unwrap();
        assert_eq!(case.kind, ItemKind::Case);
        assert_eq!(case.status, Status::New);
        assert_eq!(case.key, f.key);
        assert_eq!(case.evidence, f.evidence);
        assert_eq!(case.promoted_from, Some(7));
        assert!(promote_to_case(&case_in(Status::New), 0).is_err());
        assert!(promote_to_case(&finding_in(Status::Verified), 0).is_err());
    }
}
