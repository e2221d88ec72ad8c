//! The engineers' queue on top of the cases store: which contract covers a
//! case (or that none does: advisory), its SLA deadlines, who gets it, when
//! it escalates, and the closing paperwork (service report to resolve,
//! satisfaction record to close).
//!
//! Nothing here keeps a running counter: SLA time is recomputed from the
//! case's append-only log against the contract's calendar
//! ([`crate::contracts::elapsed`]). What is stored per case (`case_meta`) is
//! what was decided once: the contract matched, the deadlines fixed then,
//! the assignee and the escalation level; every decision also goes to the
//! case's log, and from there (a trigger, in the same transaction) to the
//! outbox the sinks deliver from.
//!
//! Staff act on every case; a customer's user ([`Actor::Customer`]) reports
//! faults on its own assets, comments publicly on its own cases and answers
//! their satisfaction survey, and sees them as [`customer_view`] has it.
//! Comments are internal (staff only) unless made public.
//!
//! The queue as a list (filters, search, order, pages) is `list`'s.

pub mod customer_view;
pub mod deliver;
mod list;
pub mod outbox;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::cases::store::{self as items, LogEntry, Visibility};
use crate::cases::{Action, IdentityKey, Item, ItemKind, Severity, Signal, Status};
use crate::contracts::{self, Clock, Contract, Contracts, Level};
use crate::store::StoreError;
use crate::store::queue::{CaseMetaRow, CaseQueue, NewCaseMeta, SlaClock};
use crate::store::sql::Sql;

pub use crate::store::queue::{Escalation, QueueCounts, SatisfactionRecord};
pub use list::{PER_PAGE_DEFAULT, PER_PAGE_MAX, Paging, QueueEntry, QueueFilter, QueuePage, SortBy, queue, queue_page};

/// Where a case came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A rule on the agent's metrics.
    Detection,
    /// The follow-up check that the host still reports at all.
    Liveness,
    /// A person reported it (API or the web form).
    User,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Detection => "detection",
            Source::Liveness => "liveness",
            Source::User => "user",
        }
    }

    fn parse(s: &str) -> Source {
        match s {
            "liveness" => Source::Liveness,
            "user" => Source::User,
            _ => Source::Detection,
        }
    }

    /// The source of a case a rule opened.
    pub fn of_check(check: &str) -> Source {
        if check == "host_unreachable" {
            Source::Liveness
        } else {
            Source::Detection
        }
    }
}

/// The skill a case needs, from its check: disks, RAID, memory, sensors are
/// `hardware`; database checks `database`; everything else `os`. Rotations
/// and engineers name these skills.
pub fn skill_for(check: &str) -> &'static str {
    const HARDWARE: &[&str] = &["disk_", "nvme_", "md_", "edac_", "hwmon_", "raid_", "ipmi_"];
    const DATABASE: &[&str] = &["database_", "pg_", "redis_", "mysql_", "mariadb_"];
    if HARDWARE.iter().any(|p| check.starts_with(p)) {
        "hardware"
    } else if DATABASE.iter().any(|p| check.starts_with(p)) {
        "database"
    } else {
        "os"
    }
}

/// What was decided for a case once, and its escalation level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CaseMeta {
    pub item_id: i64,
    pub source: Source,
    pub title: String,
    pub description: String,
    pub reported_by: Option<String>,
    pub contract: Option<String>,
    /// No contract covers the asset: advice only, no SLA.
    pub out_of_scope: bool,
    pub site: String,
    pub skill: String,
    pub assignee: Option<String>,
    pub level: String,
    pub response_due_ms: Option<i64>,
    pub resolution_due_ms: Option<i64>,
    pub response_breached_at_ms: Option<i64>,
    pub resolution_breached_at_ms: Option<i64>,
}

impl From<CaseMetaRow> for CaseMeta {
    fn from(r: CaseMetaRow) -> Self {
        CaseMeta {
            item_id: r.item_id,
            source: Source::parse(&r.source),
            title: r.title,
            description: r.description,
            reported_by: r.reported_by,
            out_of_scope: r.contract.is_none(),
            contract: r.contract,
            site: r.site,
            skill: r.skill,
            assignee: r.assignee,
            level: r.level,
            response_due_ms: r.response_due_ms,
            resolution_due_ms: r.resolution_due_ms,
            response_breached_at_ms: r.response_breached_at_ms,
            resolution_breached_at_ms: r.resolution_breached_at_ms,
        }
    }
}

/// The queue data of case `id`, once it has been settled.
pub fn meta(db: &dyn Sql, id: i64) -> Result<Option<CaseMeta>, StoreError> {
    Ok(db.case_meta(id)?.map(CaseMeta::from))
}

/// The labels of the agent reporting as `host` (its `customer`, `site`...).
pub fn asset_labels(db: &dyn Sql, host: &str) -> Result<BTreeMap<String, String>, StoreError> {
    let text = db.host_labels(host)?;
    Ok(text.and_then(|t| serde_json::from_str(&t).ok()).unwrap_or_default())
}

/// How a new case is described, beyond its item.
struct Opening<'a> {
    source: Source,
    title: String,
    description: String,
    reported_by: Option<&'a str>,
}

/// Matches case `item`'s asset against the contracts, fixes its deadlines,
/// stores its queue data and assigns it. Out of scope: marked advisory, no
/// deadlines, left unassigned (advice is read, not worked).
fn open_meta(
    conn: &dyn Sql,
    contracts: &Contracts,
    item: &Item,
    opening: Opening<'_>,
    now_ms: i64,
) -> Result<(), StoreError> {
    let id = item.id.ok_or_else(|| StoreError::Queue("case without id".into()))?;
    let labels = asset_labels(conn, &item.key.asset)?;
    let contract = contracts.contract_for(&item.key.asset, &labels);
    let site = labels.get("site").cloned().unwrap_or_default();
    let skill = skill_for(&item.key.check);
    let due = contract.map(|c| contracts::deadlines(c, item.severity, item.opened_at_ms));
    conn.add_case_meta(&NewCaseMeta {
        item_id: id,
        source: opening.source.as_str(),
        title: &opening.title,
        description: &opening.description,
        reported_by: opening.reported_by,
        contract: contract.map(|c| c.name.as_str()),
        site: &site,
        skill,
        response_due_ms: due.and_then(|d| d.response_due_ms),
        resolution_due_ms: due.and_then(|d| d.resolution_due_ms),
    })?;
    match contract {
        None => {
            items::note(
                conn,
                id,
                "rule:contract",
                "out of scope: no contract covers this asset; advisory, no SLA",
                now_ms,
            )?;
        }
        Some(c) => {
            let mut text = format!("contract {}", c.name);
            if let Some(d) = due.and_then(|d| d.response_due_ms) {
                text.push_str(&format!("; response due {}", format_ms(d)));
            }
            if let Some(d) = due.and_then(|d| d.resolution_due_ms) {
                text.push_str(&format!("; resolution due {}", format_ms(d)));
            }
            items::note(conn, id, "rule:contract", &text, now_ms)?;
            auto_assign(conn, contracts, id, item.status, &site, skill, now_ms)?;
        }
    }
    Ok(())
}

/// Assigns a new case: the on-call member of the rotation for its site and
/// skill; without one, the least-loaded engineer with the skill at the
/// site. Nobody fits: the case stays new, for a manager to assign.
fn auto_assign(
    conn: &dyn Sql,
    contracts: &Contracts,
    id: i64,
    status: Status,
    site: &str,
    skill: &str,
    now_ms: i64,
) -> Result<(), StoreError> {
    let picked = match contracts::on_call(&contracts.rotations, site, Some(skill), now_ms) {
        Some(name) => Some((name.to_string(), format!("on call for {site}"))),
        None => least_loaded(conn, contracts, site, skill)?.map(|n| (n, format!("least loaded at {site}"))),
    };
    let Some((who, why)) = picked else {
        return Ok(());
    };
    set_assignee(conn, id, status, &who, "rule:assignment", &why, now_ms)
}

fn least_loaded(db: &dyn Sql, contracts: &Contracts, site: &str, skill: &str) -> Result<Option<String>, StoreError> {
    let mut best: Option<(i64, &str)> = None;
    for e in &contracts.engineers {
        let at_site = e.sites.is_empty() || e.sites.iter().any(|s| s == site);
        let skilled = e.skills.iter().any(|s| s == skill);
        if !(at_site && skilled) {
            continue;
        }
        let load = db.active_cases_of(&e.name)?;
        if best.is_none_or(|(l, n)| (load, e.name.as_str()) < (l, n)) {
            best = Some((load, &e.name));
        }
    }
    Ok(best.map(|(_, n)| n.to_string()))
}

/// Records `who` as the case's assignee, moving a new case to assigned.
fn set_assignee(
    conn: &dyn Sql,
    id: i64,
    status: Status,
    who: &str,
    actor: &str,
    why: &str,
    now_ms: i64,
) -> Result<(), StoreError> {
    conn.set_case_assignee(id, who)?;
    let comment = format!("assigned to {who} ({why})");
    if matches!(status, Status::New) {
        items::act_by(conn, id, Action::Assign, actor, Some(&comment), now_ms)?;
    } else {
        items::note(conn, id, actor, &comment, now_ms)?;
    }
    Ok(())
}

/// Gives every case that has no queue data yet its contract, deadlines and
/// assignee, and sends a case reopened since log row `since_log_id` back to
/// its engineer. Runs in the transaction that applied the signals, so a case
/// never shows without. The lookups are ranges on primary keys, cheap on
/// the detection path: cases newer than the newest one with queue data, and
/// the cases logged since `since_log_id` (the transaction's own, which on
/// PostgreSQL may have lower ids than a case another replica committed
/// meanwhile).
pub fn settle(conn: &dyn Sql, contracts: &Contracts, since_log_id: i64, now_ms: i64) -> Result<usize, StoreError> {
    let fresh = conn.cases_without_meta(since_log_id)?;
    for &id in &fresh {
        let Some(item) = items::item(conn, id)? else { continue };
        let title = title_of(&item);
        let opening = Opening {
            source: Source::of_check(&item.key.check),
            description: item
                .evidence
                .get("description")
                .and_then(|d| d.as_str())
                .unwrap_or_default()
                .to_string(),
            title,
            reported_by: None,
        };
        open_meta(conn, contracts, &item, opening, now_ms)?;
    }
    // A reopened case is new again: back to the engineer who had it.
    let reopened = conn.reopened_assigned_cases(since_log_id)?;
    for (id, who) in &reopened {
        items::act_by(
            conn,
            *id,
            Action::Assign,
            "rule:assignment",
            Some(&format!("assigned to {who} (reopened)")),
            now_ms,
        )?;
    }
    Ok(fresh.len() + reopened.len())
}

/// Matches the active cases no contract covered when they opened against
/// `contracts` again, run when the contracts file changed: a case opened
/// while the file was half-written, or before the contract that covers its
/// asset was added, gets that contract, deadlines counted from its opening
/// (the same service time its log already shows) and an assignee, as if it
/// had been matched then. Returns how many cases came into scope.
pub fn rematch(conn: &dyn Sql, contracts: &Contracts, now_ms: i64) -> Result<usize, StoreError> {
    if contracts.contracts.is_empty() {
        return Ok(0);
    }
    let unmatched = conn.active_cases_without_contract()?;
    let mut matched = 0;
    for id in unmatched {
        let Some(item) = items::item(conn, id)? else { continue };
        let labels = asset_labels(conn, &item.key.asset)?;
        let Some(c) = contracts.contract_for(&item.key.asset, &labels) else {
            continue;
        };
        let due = contracts::deadlines(c, item.severity, item.opened_at_ms);
        conn.set_case_contract(id, &c.name, due.response_due_ms, due.resolution_due_ms)?;
        let mut text = format!("contract {} (matched when the contracts changed)", c.name);
        if let Some(d) = due.response_due_ms {
            text.push_str(&format!("; response due {}", format_ms(d)));
        }
        if let Some(d) = due.resolution_due_ms {
            text.push_str(&format!("; resolution due {}", format_ms(d)));
        }
        items::note(conn, id, "rule:contract", &text, now_ms)?;
        let unassigned = meta(conn, id)?.is_some_and(|m| m.assignee.is_none());
        if unassigned {
            let site = labels.get("site").cloned().unwrap_or_default();
            auto_assign(
                conn,
                contracts,
                id,
                item.status,
                &site,
                skill_for(&item.key.check),
                now_ms,
            )?;
        }
        matched += 1;
    }
    Ok(matched)
}

/// A case's title: the rule's summary when the evidence has one.
pub(crate) fn title_of(item: &Item) -> String {
    item.evidence
        .get("summary")
        .and_then(|s| s.as_str())
        .filter(|s| !s.trim().is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| {
            let mut t = format!("{} on {}", item.key.check, item.key.asset);
            if !item.key.component.is_empty() {
                t.push_str(&format!(" ({})", item.key.component));
            }
            t
        })
}

/// "2026-11-27 14:00 UTC".
pub fn format_ms(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.strftime("%Y-%m-%d %H:%M UTC").to_string())
        .unwrap_or_else(|_| ms.to_string())
}

/// "2026-11-27 15:00 Europe/Berlin": an instant on the wall clock of time
/// zone `tz`, the zone named (as [`format_ms`] in UTC for a zone unknown).
pub fn format_ms_in(ms: i64, tz: &str) -> String {
    let Ok(zone) = jiff::tz::TimeZone::get(tz) else {
        return format_ms(ms);
    };
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| format!("{} {tz}", t.to_zoned(zone).strftime("%Y-%m-%d %H:%M")))
        .unwrap_or_else(|_| ms.to_string())
}

/// One SLA clock of a case, as of now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClockView {
    /// The contract's target in service time.
    pub target_ms: i64,
    /// Service time used so far (or until it was met).
    pub used_ms: i64,
    /// The deadline fixed when the contract was matched.
    pub due_ms: i64,
    /// When the clock, at its current pace, runs out (now, once it has):
    /// later than `due_ms` when holds paused it. `None` while paused, once
    /// met, or when the calendar never gets there.
    pub breach_at_ms: Option<i64>,
    /// When it was met (the first response, the resolution); `None`: not yet.
    pub met_at_ms: Option<i64>,
    pub breached: bool,
    pub paused: bool,
}

/// A case's SLA as of now; `None` clocks: the contract sets no target for
/// the severity, or the case is out of scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct SlaView {
    pub response: Option<ClockView>,
    pub resolution: Option<ClockView>,
}

/// Where a case stands against its SLA, the queue's order: breached first,
/// then running clocks by when they run out, then cases with no running
/// clock (paused, met or without a target) last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SlaStanding {
    Breached,
    RunsOutAt(i64),
    NotRunning,
}

impl SlaView {
    /// The clocks not met yet (running or paused).
    fn unmet(&self) -> impl Iterator<Item = &ClockView> {
        [&self.response, &self.resolution]
            .into_iter()
            .flatten()
            .filter(|c| c.met_at_ms.is_none())
    }

    /// When the earliest running clock runs out; `None` when no clock is
    /// running (every clock paused, met or without a target): there is no
    /// deadline then, and none is made up.
    pub fn next_breach_ms(&self) -> Option<i64> {
        self.unmet().filter_map(|c| c.breach_at_ms).min()
    }

    /// The clock the case's standing comes from, by name (`response`,
    /// `resolution`): a breached one not met, else the running one that
    /// runs out first, else one a hold pauses; `None`: nothing to watch
    /// (met, or no target). A critical case whose response was met shows
    /// its resolution clock.
    pub fn next_clock(&self) -> Option<(&'static str, &ClockView)> {
        let unmet = [
            ("response", self.response.as_ref()),
            ("resolution", self.resolution.as_ref()),
        ]
        .into_iter()
        .filter_map(|(n, c)| c.map(|c| (n, c)))
        .filter(|(_, c)| c.met_at_ms.is_none());
        if let Some(b) = unmet.clone().find(|(_, c)| c.breached) {
            return Some(b);
        }
        if let Some(r) = unmet
            .clone()
            .filter(|(_, c)| c.breach_at_ms.is_some())
            .min_by_key(|(_, c)| c.breach_at_ms)
        {
            return Some(r);
        }
        unmet.clone().find(|(_, c)| c.paused)
    }

    /// Whether an unmet clock is paused by a hold.
    pub fn paused(&self) -> bool {
        self.unmet().any(|c| c.paused)
    }

    /// The case's place in the queue's order.
    pub fn standing(&self) -> SlaStanding {
        if self.unmet().any(|c| c.breached) {
            return SlaStanding::Breached;
        }
        match self.next_breach_ms() {
            Some(t) => SlaStanding::RunsOutAt(t),
            None => SlaStanding::NotRunning,
        }
    }
}

/// The status stretches of a case's log, for [`contracts::elapsed`].
fn status_log(log: &[LogEntry]) -> Vec<(i64, Status)> {
    let mut out: Vec<(i64, Status)> = Vec::with_capacity(log.len());
    for e in log {
        if out.last().is_none_or(|(_, s)| *s != e.to_status) {
            out.push((e.at_ms, e.to_status));
        }
    }
    out
}

/// The response: when a person first acted on the case (took, assigned,
/// commented, held, resolved it...), after the row that opened it. Rules
/// (`rule:assignment` giving it to the engineer on call, a rule resolving
/// it) are no response. The one definition: the SLA clocks, the queue, the
/// case page and the inspection report all ask this function.
pub fn first_response_ms(log: &[LogEntry]) -> Option<i64> {
    log.iter()
        .find(|e| e.actor.starts_with("person:") && e.from_status.is_some())
        .map(|e| e.at_ms)
}

/// Computes the SLA of a case from its log against its contract's calendar.
pub fn sla_view(contract: Option<&Contract>, item: &Item, meta: &CaseMeta, log: &[LogEntry], now_ms: i64) -> SlaView {
    let Some(c) = contract else {
        return SlaView::default();
    };
    let statuses = status_log(log);
    let paused_now = match item.status {
        Status::OnHold(r) => c.pausing.contains(&r),
        s => !s.is_active(),
    };
    let clock = |target: Option<i64>, due: Option<i64>, met_at: Option<i64>, breached_at: Option<i64>| {
        let target = target?;
        let until = met_at.unwrap_or(now_ms);
        let used = contracts::elapsed(&c.calendar, &statuses, &c.pausing, until);
        let paused = met_at.is_none() && paused_now;
        let breach_at = if met_at.is_none() && !paused {
            c.calendar.add_service_time(now_ms, (target - used).max(0))
        } else {
            None
        };
        Some(ClockView {
            target_ms: target,
            used_ms: used,
            due_ms: due.unwrap_or(item.opened_at_ms + target),
            breach_at_ms: breach_at,
            met_at_ms: met_at,
            breached: breached_at.is_some() || used > target,
            paused,
        })
    };
    let resolved_at = (!item.status.is_active()).then_some(item.resolved_at_ms).flatten();
    SlaView {
        response: clock(
            c.response.get(item.severity),
            meta.response_due_ms,
            first_response_ms(log),
            meta.response_breached_at_ms,
        ),
        resolution: clock(
            c.resolution.get(item.severity),
            meta.resolution_due_ms,
            resolved_at,
            meta.resolution_breached_at_ms,
        ),
    }
}

/// The time-driven part of the queue, run with the lifecycle tick: SLA
/// breaches and escalation steps fire (each once, recorded), and resolved
/// cases whose satisfaction survey went unanswered for `wait_ms` close.
pub fn sweep(conn: &dyn Sql, contracts: &Contracts, wait_ms: i64, now_ms: i64) -> Result<usize, StoreError> {
    let mut changed = 0;
    let active = conn.active_cases_under_contract()?;
    for id in active {
        changed += sweep_case(conn, contracts, id, now_ms)?;
    }
    let unanswered = conn.resolved_cases_without_satisfaction(now_ms - wait_ms)?;
    for id in unanswered {
        let s = Satisfaction {
            score: None,
            comment: String::new(),
            no_answer: true,
        };
        close_with(conn, id, &s, "rule:satisfaction", now_ms)?;
        changed += 1;
    }
    Ok(changed)
}

fn sweep_case(conn: &dyn Sql, contracts: &Contracts, id: i64, now_ms: i64) -> Result<usize, StoreError> {
    let (Some((item, log)), Some(meta)) = (items::get(conn, id)?, meta(conn, id)?) else {
        return Ok(0);
    };
    let Some(contract) = meta.contract.as_deref().and_then(|n| contracts.named(n)) else {
        // The contract left the file after the case opened: its deadlines
        // stand, but there is no calendar to escalate against.
        return Ok(0);
    };
    let view = sla_view(Some(contract), &item, &meta, &log, now_ms);
    let mut changed = 0;
    for (clock, name, which, already) in [
        (
            &view.response,
            "response",
            SlaClock::Response,
            meta.response_breached_at_ms,
        ),
        (
            &view.resolution,
            "resolution",
            SlaClock::Resolution,
            meta.resolution_breached_at_ms,
        ),
    ] {
        if let Some(c) = clock
            && c.met_at_ms.is_none()
            && c.used_ms > c.target_ms
            && already.is_none()
        {
            conn.set_sla_breached(id, which, now_ms)?;
            items::note(
                conn,
                id,
                "rule:sla",
                &format!("{name} SLA breached (due {})", format_ms(c.due_ms)),
                now_ms,
            )?;
            changed += 1;
        }
    }
    let fired: Vec<usize> = conn
        .fired_escalation_steps(id)?
        .into_iter()
        .filter_map(|s| usize::try_from(s).ok())
        .collect();
    for (clock, of) in [(&view.response, Clock::Response), (&view.resolution, Clock::Resolution)] {
        let Some(c) = clock else { continue };
        if c.met_at_ms.is_some() {
            continue;
        }
        for (index, step) in contracts::escalations_due(contract, item.severity, c.used_ms, &fired) {
            if step.of != of {
                continue;
            }
            let clock_name = match of {
                Clock::Response => "response",
                Clock::Resolution => "resolution",
            };
            let why = format!("{}% of {clock_name} time used", step.percent);
            record_escalation(conn, id, Some(index), step.action, &step.to, "rule:sla", &why, now_ms)?;
            changed += 1;
        }
    }
    Ok(changed)
}

/// Records an escalation step and, for a move to another level, sets the
/// case's level. Logged on the case (so the sinks hear of it).
#[allow(clippy::too_many_arguments)]
fn record_escalation(
    conn: &dyn Sql,
    id: i64,
    step: Option<usize>,
    action: contracts::Action,
    to: &str,
    actor: &str,
    why: &str,
    now_ms: i64,
) -> Result<(), StoreError> {
    let action_name = match action {
        contracts::Action::Notify => "notify",
        contracts::Action::Escalate => "escalate",
    };
    conn.add_escalation(
        id,
        &Escalation {
            step: step.map(|s| i64::try_from(s).unwrap_or(i64::MAX)),
            at_ms: now_ms,
            action: action_name.to_string(),
            target: to.to_string(),
            actor: actor.to_string(),
            comment: why.to_string(),
        },
    )?;
    let text = match action {
        contracts::Action::Notify => format!("escalation: notify {to} ({why})"),
        contracts::Action::Escalate => {
            conn.set_case_level(id, to)?;
            format!("escalated to {to} ({why})")
        }
    };
    items::note(conn, id, actor, &text, now_ms)?;
    Ok(())
}

/// A case's escalations, oldest first.
pub fn escalations(db: &dyn Sql, id: i64) -> Result<Vec<Escalation>, StoreError> {
    Ok(db.case_escalations(id)?)
}

/// The customer's verdict on a resolved case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Satisfaction {
    /// 1 (bad) to 5 (good); `None` with `no_answer`.
    #[serde(default)]
    pub score: Option<u8>,
    #[serde(default)]
    pub comment: String,
    /// The customer did not answer.
    #[serde(default)]
    pub no_answer: bool,
}

impl Satisfaction {
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        match (self.score, self.no_answer) {
            (Some(s), false) if !(1..=5).contains(&s) => p.push(format!("score: {s} is not from 1 to 5")),
            (Some(_), true) => p.push("score: give a score or no_answer, not both".into()),
            (None, false) => p.push("score: required (1 to 5), or set no_answer".into()),
            _ => {}
        }
        p
    }
}

/// A case's satisfaction record, once it has one.
pub fn satisfaction(db: &dyn Sql, id: i64) -> Result<Option<SatisfactionRecord>, StoreError> {
    Ok(db.case_satisfaction(id)?)
}

/// Records the satisfaction and closes the resolved case.
fn close_with(conn: &dyn Sql, id: i64, s: &Satisfaction, actor: &str, now_ms: i64) -> Result<Item, StoreError> {
    let problems = s.problems();
    if !problems.is_empty() {
        return Err(StoreError::QueueInput(problems.join("; ")));
    }
    if let Some(done) = satisfaction(conn, id)? {
        return Err(StoreError::Queue(format!(
            "case {id}'s satisfaction survey was already answered ({}, {})",
            done.recorded_by,
            format_ms(done.at_ms)
        )));
    }
    let item = case(conn, id)?;
    if item.status != Status::Resolved {
        return Err(StoreError::Queue(format!(
            "case {id} is {}: only a resolved case can be closed",
            item.status
        )));
    }
    conn.add_satisfaction(
        id,
        &SatisfactionRecord {
            score: s.score,
            comment: s.comment.clone(),
            no_answer: s.no_answer,
            at_ms: now_ms,
            recorded_by: actor.to_string(),
        },
    )?;
    let comment = match s.score {
        Some(score) if s.comment.is_empty() => format!("satisfaction {score}/5"),
        Some(score) => format!("satisfaction {score}/5: {}", s.comment),
        None => "satisfaction: no answer".to_string(),
    };
    items::act_by(conn, id, Action::Close, actor, Some(&comment), now_ms)
}

/// A case by id; a finding or a missing id is an error.
fn case(conn: &dyn Sql, id: i64) -> Result<Item, StoreError> {
    match items::item(conn, id)? {
        Some(i) if i.kind == ItemKind::Case => Ok(i),
        _ => Err(StoreError::NoSuchItem(id)),
    }
}

/// What a person does to a case from the queue.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case", deny_unknown_fields)]
pub enum CaseAction {
    /// Take the case: it is being worked on (the first response).
    Acknowledge {
        #[serde(default)]
        comment: Option<String>,
    },
    /// Give the case to an engineer.
    Assign {
        to: String,
        #[serde(default)]
        comment: Option<String>,
    },
    /// Move the case one level up (L1 → L2 → vendor), or to a named level.
    Escalate {
        #[serde(default)]
        to: Option<String>,
        comment: String,
    },
    /// A comment, `internal` (staff only) or `public` (the customer sees
    /// it). Left out: internal for staff, public for a customer's user, who
    /// cannot choose internal.
    Comment {
        comment: String,
        #[serde(default, deserialize_with = "visibility_field")]
        visibility: Option<Visibility>,
    },
    Hold {
        reason: crate::cases::HoldReason,
        #[serde(default)]
        comment: Option<String>,
    },
    Resume {
        #[serde(default)]
        comment: Option<String>,
    },
    Cancel {
        reason: crate::cases::CancelReason,
        #[serde(default)]
        comment: Option<String>,
    },
    /// Resolve with the service report (required).
    Resolve { report: crate::spares::ServiceReport },
    /// Close with the satisfaction record (required): staff recording the
    /// customer's answer (by phone, or that there was none).
    Close { satisfaction: Satisfaction },
    /// The customer's own answer to the satisfaction survey of a resolved
    /// case: a score from 1 to 5 and a comment. Answering confirms the
    /// repair, so it closes the case, as in ITSM practice (a customer who is
    /// not satisfied says so in the score and the comment; the case stays
    /// on record and a recurrence reopens or links it). Once only.
    Survey {
        score: u8,
        #[serde(default)]
        comment: String,
    },
}

impl CaseAction {
    pub fn name(&self) -> &'static str {
        match self {
            CaseAction::Acknowledge { .. } => "acknowledge",
            CaseAction::Assign { .. } => "assign",
            CaseAction::Escalate { .. } => "escalate",
            CaseAction::Comment { .. } => "comment",
            CaseAction::Hold { .. } => "hold",
            CaseAction::Resume { .. } => "resume",
            CaseAction::Cancel { .. } => "cancel",
            CaseAction::Resolve { .. } => "resolve",
            CaseAction::Close { .. } => "close",
            CaseAction::Survey { .. } => "survey",
        }
    }

    /// The actions (by name) a customer's user may take on its own case: it
    /// comments (publicly) and answers the survey; the rest is staff work.
    pub const OPEN_TO_CUSTOMERS: [&'static str; 2] = ["comment", "survey"];

    /// Whether a customer's user may take this action on its own case.
    pub fn open_to_customers(&self) -> bool {
        Self::OPEN_TO_CUSTOMERS.contains(&self.name())
    }

    /// Why a customer's user may not take action `name`.
    pub fn not_for_customers(name: &str) -> String {
        format!("action: {name} is for engineers and managers; a customer's user comments and answers the survey")
    }
}

/// Who acts on a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor<'a> {
    /// An engineer, a manager or the machine API token, by name.
    Staff(&'a str),
    /// A customer's user, by name, with its customer: it acts on that
    /// customer's cases and assets only.
    Customer { name: &'a str, customer: &'a str },
}

impl Actor<'_> {
    /// The actor as the case log names it: `person:<name>` for staff,
    /// `customer:<name>` for a customer's user (which is never the
    /// engineers' response, see [`first_response_ms`]).
    pub fn log_name(&self) -> String {
        match self {
            Actor::Staff(n) => format!("person:{n}"),
            Actor::Customer { name, .. } => format!("customer:{name}"),
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Actor::Staff(n) | Actor::Customer { name: n, .. } => n,
        }
    }
}

/// A comment's `visibility`, refused by name: inside the action's tagged
/// enum a plain enum's error would not say which field was wrong.
fn visibility_field<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Visibility>, D::Error> {
    let given: Option<String> = Option::deserialize(d)?;
    given
        .map(|v| {
            Visibility::parse(&v)
                .ok_or_else(|| serde::de::Error::custom(format!("visibility: {v:?} is not internal or public")))
        })
        .transpose()
}

fn non_empty<'a>(field: &str, v: &'a str) -> Result<&'a str, StoreError> {
    let t = v.trim();
    if t.is_empty() {
        return Err(StoreError::QueueInput(format!("{field}: must not be empty")));
    }
    Ok(t)
}

/// Applies staff member `person`'s action to case `id` (see [`act_as`]).
pub fn act(
    conn: &dyn Sql,
    contracts: &Contracts,
    id: i64,
    action: &CaseAction,
    person: &str,
    now_ms: i64,
) -> Result<Item, StoreError> {
    act_as(conn, contracts, id, action, Actor::Staff(person), now_ms)
}

/// Applies `who`'s action to case `id`; everything it changes is in the
/// caller's transaction (all or nothing). Returns the case afterwards. A
/// customer's user may only comment (publicly) and answer the survey, on
/// its own customer's cases: another customer's case is refused like a
/// missing one.
pub fn act_as(
    conn: &dyn Sql,
    contracts: &Contracts,
    id: i64,
    action: &CaseAction,
    who: Actor<'_>,
    now_ms: i64,
) -> Result<Item, StoreError> {
    let item = case(conn, id)?;
    if let Actor::Customer { customer, .. } = who {
        if item.key.customer != customer {
            return Err(StoreError::NoSuchItem(id));
        }
        if !action.open_to_customers() {
            return Err(StoreError::QueueForbidden(CaseAction::not_for_customers(action.name())));
        }
        if let CaseAction::Comment {
            visibility: Some(Visibility::Internal),
            ..
        } = action
        {
            return Err(StoreError::QueueForbidden(
                "visibility: a customer's comments are always public".into(),
            ));
        }
    }
    let person = who.name();
    let actor = who.log_name();
    let meta = meta(conn, id)?.ok_or_else(|| StoreError::Queue(format!("case {id} is not in the queue yet")))?;
    let comment = |c: &Option<String>| {
        c.as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_string)
    };
    match action {
        CaseAction::Acknowledge { comment: c } => {
            // Acknowledging is taking the case: an engineer of the contracts
            // becomes its assignee (from whoever had it); anyone else (a
            // manager, the API token) takes it only when nobody has it.
            let engineer = contracts.engineers.iter().any(|e| e.name == person);
            let takes = if engineer {
                meta.assignee.as_deref() != Some(person)
            } else {
                meta.assignee.is_none()
            };
            if takes {
                set_assignee(conn, id, item.status, person, &actor, "took it", now_ms)?;
            }
            items::person_action(
                conn,
                id,
                Action::Start,
                person,
                Some(comment(c).as_deref().unwrap_or("acknowledged")),
                now_ms,
            )?;
        }
        CaseAction::Assign { to, comment: c } => {
            let to = non_empty("to", to)?;
            if !contracts.engineers.iter().any(|e| e.name == to) {
                return Err(StoreError::UnknownEngineer(to.to_string()));
            }
            if !matches!(
                item.status,
                Status::New | Status::Assigned | Status::InProgress | Status::OnHold(_)
            ) {
                return Err(StoreError::Queue(format!(
                    "case {id} is {}: it cannot be assigned",
                    item.status
                )));
            }
            let why = comment(c).unwrap_or_else(|| format!("by {person}"));
            set_assignee(conn, id, item.status, to, &actor, &why, now_ms)?;
        }
        CaseAction::Escalate { to, comment: c } => {
            let c = non_empty("comment", c)?;
            if !item.status.is_active() {
                return Err(StoreError::Queue(format!(
                    "case {id} is {}: it cannot be escalated",
                    item.status
                )));
            }
            let current = Level::parse(&meta.level).unwrap_or(Level::L1);
            let target = match to.as_deref() {
                Some(t) => Level::parse(t)
                    .ok_or_else(|| StoreError::QueueInput(format!("to: {t:?} is not a level (L1, L2, vendor)")))?,
                None => match current {
                    Level::L1 => Level::L2,
                    Level::L2 | Level::Vendor => Level::Vendor,
                },
            };
            if target <= current {
                return Err(StoreError::Queue(format!("case {id} is already at {}", meta.level)));
            }
            let name = match target {
                Level::L1 => "L1",
                Level::L2 => "L2",
                Level::Vendor => "vendor",
            };
            record_escalation(conn, id, None, contracts::Action::Escalate, name, &actor, c, now_ms)?;
        }
        CaseAction::Comment { comment: c, visibility } => {
            let c = non_empty("comment", c)?;
            let visibility = match who {
                Actor::Staff(_) => visibility.unwrap_or(Visibility::Internal),
                Actor::Customer { .. } => Visibility::Public,
            };
            items::comment_as(conn, id, &actor, c, visibility, now_ms)?;
        }
        CaseAction::Hold { reason, comment: c } => {
            items::person_action(conn, id, Action::Hold(*reason), person, comment(c).as_deref(), now_ms)?;
        }
        CaseAction::Resume { comment: c } => {
            items::person_action(conn, id, Action::Resume, person, comment(c).as_deref(), now_ms)?;
        }
        CaseAction::Cancel { reason, comment: c } => {
            items::person_action(conn, id, Action::Cancel(*reason), person, comment(c).as_deref(), now_ms)?;
        }
        CaseAction::Resolve { report } => {
            resolve_with(conn, &item, report, person, now_ms)?;
        }
        CaseAction::Close { satisfaction } => {
            close_with(conn, id, satisfaction, &actor, now_ms)?;
        }
        CaseAction::Survey { score, comment } => {
            // Said before "only a resolved case can be closed": the survey
            // is what opens at resolution.
            if item.status != Status::Resolved && satisfaction(conn, id)?.is_none() {
                return Err(StoreError::Queue(format!(
                    "case {id} is {}: its satisfaction survey opens once it is resolved",
                    item.status
                )));
            }
            let s = Satisfaction {
                score: Some(*score),
                comment: comment.trim().to_string(),
                no_answer: false,
            };
            close_with(conn, id, &s, &actor, now_ms)?;
        }
    }
    case(conn, id)
}

/// Resolves a case with its service report: the report is recorded (parts,
/// spares, stock) and the case resolved, or neither.
fn resolve_with(
    conn: &dyn Sql,
    item: &Item,
    report: &crate::spares::ServiceReport,
    person: &str,
    now_ms: i64,
) -> Result<(), StoreError> {
    let id = item.id.ok_or(StoreError::NoSuchItem(0))?;
    let mut report = report.clone();
    if report.host.trim().is_empty() {
        report.host = item.key.asset.clone();
    }
    if report.host != item.key.asset {
        return Err(StoreError::QueueInput(format!(
            "report.host: {:?} is not the case's asset {:?}",
            report.host, item.key.asset
        )));
    }
    if report.case_id.is_some_and(|c| c != id) {
        return Err(StoreError::QueueInput(format!(
            "report.case_id: must be {id} or left out"
        )));
    }
    if report.engineer.trim().is_empty() {
        report.engineer = person.to_string();
    }
    report.case_id = Some(id);
    let problems = report.problems();
    if !problems.is_empty() {
        let named: Vec<String> = problems.iter().map(|p| format!("report.{p}")).collect();
        return Err(StoreError::QueueInput(named.join("; ")));
    }
    // Check the move first, so a refused resolve records no report.
    crate::cases::lifecycle::act(item, Action::Resolve, now_ms)?;
    let site = asset_labels(conn, &item.key.asset)?
        .get("site")
        .cloned()
        .unwrap_or_default();
    let report_id = crate::spares::record_service_report(conn, &report, &site, now_ms)?;
    let mut comment = format!("service report {report_id}: {}", report.work_done.trim());
    if !report.parts.is_empty() {
        let parts: Vec<String> = report
            .parts
            .iter()
            .map(|p| format!("{} {} {} → {}", p.part_type, p.slot, p.old_serial, p.new_serial))
            .collect();
        comment.push_str(&format!("; parts: {}", parts.join(", ")));
    }
    items::person_action(conn, id, Action::Resolve, person, Some(&comment), now_ms)?;
    Ok(())
}

/// Whether case `id` has a service report: a person may only resolve it
/// through [`act`] with one.
pub fn has_service_report(db: &dyn Sql, id: i64) -> Result<bool, StoreError> {
    Ok(db.case_has_service_report(id)?)
}

/// A fault a person reports (API or web form).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultReport {
    pub asset: String,
    pub title: String,
    #[serde(default)]
    pub description: String,
    #[serde(default = "default_report_severity")]
    pub severity: Severity,
    /// What part of the asset (a disk, a database...); empty: the whole asset.
    #[serde(default)]
    pub component: String,
}

fn default_report_severity() -> Severity {
    Severity::Major
}

impl FaultReport {
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.asset.trim().is_empty() {
            p.push("asset: must not be empty".to_string());
        }
        if self.title.trim().is_empty() {
            p.push("title: must not be empty".to_string());
        } else if self.title.chars().count() > 200 {
            p.push("title: at most 200 characters".to_string());
        }
        if self.description.len() > 20_000 {
            p.push("description: at most 20000 bytes".to_string());
        }
        p
    }
}

/// Staff member `person` reports a fault (see [`report_fault_as`]).
pub fn report_fault(
    conn: &dyn Sql,
    contracts: &Contracts,
    report: &FaultReport,
    person: &str,
    now_ms: i64,
) -> Result<(i64, bool), StoreError> {
    report_fault_as(conn, contracts, report, Actor::Staff(person), now_ms)
}

/// Opens (or finds: the same title on the same asset is the same fault) a
/// case for a reported fault. The asset must be known, and for a customer's
/// user one of its own customer's: another customer's asset is refused
/// exactly like an unknown one, so its existence does not leak. Returns the
/// case id and whether it is new.
pub fn report_fault_as(
    conn: &dyn Sql,
    contracts: &Contracts,
    report: &FaultReport,
    who: Actor<'_>,
    now_ms: i64,
) -> Result<(i64, bool), StoreError> {
    let problems = report.problems();
    if !problems.is_empty() {
        return Err(StoreError::QueueInput(problems.join("; ")));
    }
    let asset = report.asset.trim();
    if !crate::cases::hold::is_known(conn, asset)? {
        return Err(StoreError::UnknownAsset(asset.to_string()));
    }
    let labels = asset_labels(conn, asset)?;
    let customer = labels.get("customer").cloned().unwrap_or_default();
    if let Actor::Customer { customer: own, .. } = who
        && customer != own
    {
        return Err(StoreError::UnknownAsset(asset.to_string()));
    }
    let person = who.name();
    let component = if report.component.trim().is_empty() {
        slug(&report.title)
    } else {
        report.component.trim().to_string()
    };
    let signal = Signal {
        event: None,
        key: IdentityKey {
            customer,
            asset: asset.to_string(),
            check: "reported_fault".into(),
            component,
        },
        kind: ItemKind::Case,
        severity: report.severity,
        rule: "reported_fault".into(),
        firing: true,
        at_ms: now_ms,
        evidence: serde_json::json!({
            "summary": report.title.trim(),
            "description": report.description.trim(),
            "reported_by": person,
        }),
    };
    // Cases opened elsewhere since the last settling get theirs first, so
    // this one's queue data does not pass over them.
    settle(conn, contracts, items::log_high_water(conn)?, now_ms)?;
    let (id, created) = items::open_reported(conn, &signal, &who.log_name(), now_ms)?;
    if created {
        let item = case(conn, id)?;
        let opening = Opening {
            source: Source::User,
            title: report.title.trim().to_string(),
            description: report.description.trim().to_string(),
            reported_by: Some(person),
        };
        open_meta(conn, contracts, &item, opening, now_ms)?;
    }
    Ok((id, created))
}

/// A component name from a title: lower-case words joined by `-`.
fn slug(title: &str) -> String {
    let s: String = title
        .to_lowercase()
        .chars()
        .map(|c| if c.is_alphanumeric() { c } else { ' ' })
        .collect();
    let words: Vec<&str> = s.split_whitespace().collect();
    words.join("-").chars().take(64).collect()
}

/// Everything about one case, for its page and its API answer.
#[derive(Debug, Clone, Serialize)]
pub struct CaseDetail {
    pub item: Item,
    pub log: Vec<LogEntry>,
    pub meta: Option<CaseMeta>,
    pub sla: SlaView,
    pub escalations: Vec<Escalation>,
    pub satisfaction: Option<SatisfactionRecord>,
    pub service_reports: Vec<crate::spares::ServiceReport>,
    /// `(sink, ticket id)`: where the case is mirrored.
    pub external: Vec<(String, String)>,
    /// The asset's other cases, newest first (at most 20).
    pub earlier: Vec<Item>,
}

/// The whole of case `id` as of `now_ms`; `None` for no such case.
pub fn case_detail(
    conn: &dyn Sql,
    contracts: &Contracts,
    id: i64,
    now_ms: i64,
) -> Result<Option<CaseDetail>, StoreError> {
    let Some((item, log)) = items::get(conn, id)? else {
        return Ok(None);
    };
    if item.kind != ItemKind::Case {
        return Ok(None);
    }
    let meta = meta(conn, id)?;
    let sla = match &meta {
        Some(m) => {
            let contract = m.contract.as_deref().and_then(|n| contracts.named(n));
            sla_view(contract, &item, m, &log, now_ms)
        }
        None => SlaView::default(),
    };
    let service_reports = crate::spares::service_reports(conn, Some(&item.key.asset))?
        .into_iter()
        .filter(|r| r.case_id == Some(id))
        .collect();
    let earlier = items::list(
        conn,
        &items::Filter {
            kind: Some(ItemKind::Case),
            asset: Some(item.key.asset.clone()),
            limit: Some(21),
            ..items::Filter::default()
        },
    )?
    .into_iter()
    .filter(|i| i.id != Some(id))
    .take(20)
    .collect();
    Ok(Some(CaseDetail {
        escalations: escalations(conn, id)?,
        satisfaction: satisfaction(conn, id)?,
        external: outbox::external_ids(conn, id)?,
        item,
        log,
        meta,
        sla,
        service_reports,
        earlier,
    }))
}

/// An asset's record for its page: its cases (newest first) and every
/// service report with the parts replaced.
#[derive(Debug, Clone, Serialize)]
pub struct AssetHistory {
    pub host: String,
    pub customer: Option<String>,
    pub labels: BTreeMap<String, String>,
    pub cases: Vec<Item>,
    pub findings: Vec<Item>,
    pub service_reports: Vec<crate::spares::ServiceReport>,
}

/// `None` when the asset is not known.
pub fn asset_history(conn: &dyn Sql, host: &str) -> Result<Option<AssetHistory>, StoreError> {
    if !crate::cases::hold::is_known(conn, host)? {
        return Ok(None);
    }
    let labels = asset_labels(conn, host)?;
    let of_kind = |kind| {
        items::list(
            conn,
            &items::Filter {
                kind: Some(kind),
                asset: Some(host.to_string()),
                limit: Some(200),
                ..items::Filter::default()
            },
        )
    };
    Ok(Some(AssetHistory {
        host: host.to_string(),
        customer: labels.get("customer").cloned(),
        cases: of_kind(ItemKind::Case)?,
        findings: of_kind(ItemKind::Finding)?,
        service_reports: crate::spares::service_reports(conn, Some(host))?,
        labels,
    }))
}

/// For the inspection report: the share of the customer's cases under
/// contract that ended in `[from, to)` with neither SLA clock breached.
/// `None`: no such case ended in the period.
pub fn sla_met_pct(db: &dyn Sql, customer: &str, from_ms: i64, to_ms: i64) -> Result<Option<f64>, StoreError> {
    if !db.has_queue_tables()? {
        return Ok(None);
    }
    let (total, met) = db.sla_outcomes(customer, from_ms, to_ms)?;
    #[allow(clippy::cast_precision_loss)]
    Ok((total > 0).then(|| met as f64 * 100.0 / total as f64))
}

/// For the inspection report: the satisfaction records of the customer's
/// cases made in `[from, to)`; `None` when the store predates them.
pub fn satisfaction_summary(
    db: &dyn Sql,
    customer: &str,
    from_ms: i64,
    to_ms: i64,
) -> Result<Option<crate::report::Satisfaction>, StoreError> {
    if !db.has_queue_tables()? {
        return Ok(None);
    }
    let rows: Vec<(Option<u8>, String, bool)> = db
        .customer_satisfaction(customer, from_ms, to_ms)?
        .into_iter()
        .map(|r| (r.score, r.comment, r.no_answer))
        .collect();
    let scores: Vec<f64> = rows.iter().filter_map(|(s, _, _)| s.map(f64::from)).collect();
    #[allow(clippy::cast_precision_loss)]
    let mean_score = (!scores.is_empty()).then(|| scores.iter().sum::<f64>() / scores.len() as f64);
    Ok(Some(crate::report::Satisfaction {
        answers: scores.len() as u64,
        mean_score,
        no_answer: rows.iter().filter(|(_, _, n)| *n).count() as u64,
        comments: rows
            .into_iter()
            .map(|(_, c, _)| c.trim().to_string())
            .filter(|c| !c.is_empty())
            .collect(),
    }))
}

/// Breached and unassigned active cases under contract, per customer (for
/// /metrics).
pub fn queue_counts(db: &dyn Sql) -> Result<Vec<QueueCounts>, StoreError> {
    Ok(db.queue_counts()?)
}

#[cfg(test)]
mod tests;
