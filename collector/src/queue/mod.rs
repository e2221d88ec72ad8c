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

pub mod deliver;
pub mod outbox;

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use crate::cases::store::{self as items, INACTIVE_STATUSES, LogEntry};
use crate::cases::{Action, IdentityKey, Item, ItemKind, Severity, Signal, Status};
use crate::contracts::{self, Clock, Contract, Contracts, Level};
use crate::store::StoreError;

pub const MIGRATION: &str = r#"
CREATE TABLE case_meta (
    item_id INTEGER PRIMARY KEY REFERENCES items(id),
    source TEXT NOT NULL CHECK (source IN ('detection', 'liveness', 'user')),
    title TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    reported_by TEXT,
    -- NULL: no contract covers the asset; the case is advisory, with no SLA.
    contract TEXT,
    site TEXT NOT NULL DEFAULT '',
    skill TEXT NOT NULL,
    assignee TEXT,
    level TEXT NOT NULL DEFAULT 'L1' CHECK (level IN ('L1', 'L2', 'vendor')),
    response_due_ms INTEGER,
    resolution_due_ms INTEGER,
    response_breached_at_ms INTEGER,
    resolution_breached_at_ms INTEGER
);
CREATE INDEX case_meta_assignee ON case_meta(assignee);
-- Escalations, timed (step = the contract's step index) or by a person
-- (step NULL); a timed step fires once per case.
CREATE TABLE case_escalations (
    id INTEGER PRIMARY KEY,
    item_id INTEGER NOT NULL REFERENCES items(id),
    step INTEGER,
    at_ms INTEGER NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('notify', 'escalate')),
    target TEXT NOT NULL,
    actor TEXT NOT NULL,
    comment TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX case_escalations_step ON case_escalations(item_id, step) WHERE step IS NOT NULL;
CREATE TABLE case_satisfaction (
    item_id INTEGER PRIMARY KEY REFERENCES items(id),
    score INTEGER CHECK (score BETWEEN 1 AND 5),
    comment TEXT NOT NULL DEFAULT '',
    no_answer INTEGER NOT NULL,
    at_ms INTEGER NOT NULL,
    recorded_by TEXT NOT NULL
);
-- Every change of a case, in the transaction that made it: the sinks
-- deliver from here, each from its own cursor.
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY,
    item_id INTEGER NOT NULL,
    log_id INTEGER NOT NULL UNIQUE,
    at_ms INTEGER NOT NULL
);
CREATE TRIGGER item_log_to_outbox AFTER INSERT ON item_log
WHEN (SELECT kind FROM items WHERE id = NEW.item_id) = 'case'
BEGIN
    INSERT INTO outbox (item_id, log_id, at_ms) VALUES (NEW.item_id, NEW.id, NEW.at_ms);
END;
CREATE TABLE sink_state (
    sink TEXT PRIMARY KEY,
    delivered_through INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    last_ok_ms INTEGER
);
-- Changes a sink refused for good (a 4xx other than 429, several times):
-- set aside so the rest still flows, and listed for an engineer.
CREATE TABLE sink_dead (
    sink TEXT NOT NULL,
    outbox_id INTEGER NOT NULL,
    at_ms INTEGER NOT NULL,
    error TEXT NOT NULL,
    PRIMARY KEY (sink, outbox_id)
);
-- The id of a case's ticket in a sink (Redmine issue, Jira key): later
-- changes update that ticket, a redelivery never opens a second one.
CREATE TABLE case_external (
    item_id INTEGER NOT NULL,
    sink TEXT NOT NULL,
    external_id TEXT NOT NULL,
    PRIMARY KEY (item_id, sink)
);
"#;

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

const META_COLUMNS: &str = "item_id, source, title, description, reported_by, contract, site, skill, assignee, \
     level, response_due_ms, resolution_due_ms, response_breached_at_ms, resolution_breached_at_ms";

fn meta_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<CaseMeta> {
    let contract: Option<String> = r.get(5)?;
    Ok(CaseMeta {
        item_id: r.get(0)?,
        source: Source::parse(&r.get::<_, String>(1)?),
        title: r.get(2)?,
        description: r.get(3)?,
        reported_by: r.get(4)?,
        out_of_scope: contract.is_none(),
        contract,
        site: r.get(6)?,
        skill: r.get(7)?,
        assignee: r.get(8)?,
        level: r.get(9)?,
        response_due_ms: r.get(10)?,
        resolution_due_ms: r.get(11)?,
        response_breached_at_ms: r.get(12)?,
        resolution_breached_at_ms: r.get(13)?,
    })
}

/// The queue data of case `id`, once it has been settled.
pub fn meta(conn: &Connection, id: i64) -> Result<Option<CaseMeta>, StoreError> {
    Ok(conn
        .prepare_cached(&format!("SELECT {META_COLUMNS} FROM case_meta WHERE item_id = ?1"))?
        .query_row(params![id], meta_row)
        .optional()?)
}

/// The labels of the agent reporting as `host` (its `customer`, `site`...).
pub fn asset_labels(conn: &Connection, host: &str) -> Result<BTreeMap<String, String>, StoreError> {
    let text: Option<String> = conn
        .prepare_cached("SELECT labels FROM agents WHERE host = ?1 ORDER BY last_seen_ms DESC LIMIT 1")?
        .query_row(params![host], |r| r.get(0))
        .optional()?;
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
    conn: &Connection,
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
    conn.prepare_cached(
        "INSERT INTO case_meta (item_id, source, title, description, reported_by, contract, site, skill, \
         response_due_ms, resolution_due_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )?
    .execute(params![
        id,
        opening.source.as_str(),
        opening.title,
        opening.description,
        opening.reported_by,
        contract.map(|c| c.name.as_str()),
        site,
        skill,
        due.and_then(|d| d.response_due_ms),
        due.and_then(|d| d.resolution_due_ms),
    ])?;
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
    conn: &Connection,
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

fn least_loaded(
    conn: &Connection,
    contracts: &Contracts,
    site: &str,
    skill: &str,
) -> Result<Option<String>, StoreError> {
    let mut best: Option<(i64, &str)> = None;
    for e in &contracts.engineers {
        let at_site = e.sites.is_empty() || e.sites.iter().any(|s| s == site);
        let skilled = e.skills.iter().any(|s| s == skill);
        if !(at_site && skilled) {
            continue;
        }
        let load = load_of(conn, &e.name)?;
        if best.is_none_or(|(l, n)| (load, e.name.as_str()) < (l, n)) {
            best = Some((load, &e.name));
        }
    }
    Ok(best.map(|(_, n)| n.to_string()))
}

/// Active cases assigned to `who`.
fn load_of(conn: &Connection, who: &str) -> Result<i64, StoreError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT count(*) FROM case_meta m JOIN items i ON i.id = m.item_id \
             WHERE m.assignee = ?1 AND i.status NOT IN {INACTIVE_STATUSES}"
        ))?
        .query_row(params![who], |r| r.get(0))?)
}

/// Records `who` as the case's assignee, moving a new case to assigned.
fn set_assignee(
    conn: &Connection,
    id: i64,
    status: Status,
    who: &str,
    actor: &str,
    why: &str,
    now_ms: i64,
) -> Result<(), StoreError> {
    conn.prepare_cached("UPDATE case_meta SET assignee = ?2 WHERE item_id = ?1")?
        .execute(params![id, who])?;
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
/// never shows without. Both lookups are ranges on primary keys, cheap on
/// the detection path: every case up to the newest one with queue data has
/// its own (settling goes in id order, and [`report_fault`] settles first).
pub fn settle(conn: &Connection, contracts: &Contracts, since_log_id: i64, now_ms: i64) -> Result<usize, StoreError> {
    let fresh: Vec<i64> = conn
        .prepare_cached(
            "SELECT i.id FROM items i WHERE i.id > (SELECT coalesce(max(item_id), 0) FROM case_meta) \
             AND i.kind = 'case' ORDER BY i.id",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
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
    let reopened: Vec<(i64, String)> = conn
        .prepare_cached(
            "SELECT DISTINCT i.id, m.assignee FROM item_log l JOIN items i ON i.id = l.item_id \
             JOIN case_meta m ON m.item_id = i.id \
             WHERE l.id > ?1 AND l.comment = 'reopened' AND i.kind = 'case' AND i.status = 'new' \
             AND m.assignee IS NOT NULL ORDER BY i.id",
        )?
        .query_map(params![since_log_id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
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
pub fn rematch(conn: &Connection, contracts: &Contracts, now_ms: i64) -> Result<usize, StoreError> {
    if contracts.contracts.is_empty() {
        return Ok(0);
    }
    let unmatched: Vec<i64> = conn
        .prepare_cached(&format!(
            "SELECT i.id FROM items i JOIN case_meta m ON m.item_id = i.id \
             WHERE i.kind = 'case' AND m.contract IS NULL AND i.status NOT IN {INACTIVE_STATUSES} ORDER BY i.id"
        ))?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut matched = 0;
    for id in unmatched {
        let Some(item) = items::item(conn, id)? else { continue };
        let labels = asset_labels(conn, &item.key.asset)?;
        let Some(c) = contracts.contract_for(&item.key.asset, &labels) else {
            continue;
        };
        let due = contracts::deadlines(c, item.severity, item.opened_at_ms);
        conn.prepare_cached(
            "UPDATE case_meta SET contract = ?2, response_due_ms = ?3, resolution_due_ms = ?4 WHERE item_id = ?1",
        )?
        .execute(params![id, c.name, due.response_due_ms, due.resolution_due_ms])?;
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
fn title_of(item: &Item) -> String {
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
pub fn sweep(conn: &Connection, contracts: &Contracts, wait_ms: i64, now_ms: i64) -> Result<usize, StoreError> {
    let mut changed = 0;
    let active: Vec<i64> = conn
        .prepare_cached(&format!(
            "SELECT i.id FROM items i JOIN case_meta m ON m.item_id = i.id \
             WHERE i.kind = 'case' AND m.contract IS NOT NULL AND i.status NOT IN {INACTIVE_STATUSES} ORDER BY i.id"
        ))?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for id in active {
        changed += sweep_case(conn, contracts, id, now_ms)?;
    }
    let unanswered: Vec<i64> = conn
        .prepare_cached(
            "SELECT i.id FROM items i LEFT JOIN case_satisfaction s ON s.item_id = i.id \
             WHERE i.kind = 'case' AND i.status = 'resolved' AND s.item_id IS NULL AND i.resolved_at_ms <= ?1",
        )?
        .query_map(params![now_ms - wait_ms], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
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

fn sweep_case(conn: &Connection, contracts: &Contracts, id: i64, now_ms: i64) -> Result<usize, StoreError> {
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
    for (clock, name, column, already) in [
        (
            &view.response,
            "response",
            "response_breached_at_ms",
            meta.response_breached_at_ms,
        ),
        (
            &view.resolution,
            "resolution",
            "resolution_breached_at_ms",
            meta.resolution_breached_at_ms,
        ),
    ] {
        if let Some(c) = clock
            && c.met_at_ms.is_none()
            && c.used_ms > c.target_ms
            && already.is_none()
        {
            conn.execute(
                &format!("UPDATE case_meta SET {column} = ?2 WHERE item_id = ?1"),
                params![id, now_ms],
            )?;
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
        .prepare_cached("SELECT step FROM case_escalations WHERE item_id = ?1 AND step IS NOT NULL")?
        .query_map(params![id], |r| r.get::<_, i64>(0))?
        .filter_map(|r| r.ok().and_then(|s| usize::try_from(s).ok()))
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
    conn: &Connection,
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
    conn.prepare_cached(
        "INSERT INTO case_escalations (item_id, step, at_ms, action, target, actor, comment) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        id,
        step.map(|s| i64::try_from(s).unwrap_or(i64::MAX)),
        now_ms,
        action_name,
        to,
        actor,
        why
    ])?;
    let text = match action {
        contracts::Action::Notify => format!("escalation: notify {to} ({why})"),
        contracts::Action::Escalate => {
            conn.prepare_cached("UPDATE case_meta SET level = ?2 WHERE item_id = ?1")?
                .execute(params![id, to])?;
            format!("escalated to {to} ({why})")
        }
    };
    items::note(conn, id, actor, &text, now_ms)?;
    Ok(())
}

/// One escalation of a case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Escalation {
    pub step: Option<i64>,
    pub at_ms: i64,
    pub action: String,
    pub target: String,
    pub actor: String,
    pub comment: String,
}

pub fn escalations(conn: &Connection, id: i64) -> Result<Vec<Escalation>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT step, at_ms, action, target, actor, comment FROM case_escalations WHERE item_id = ?1 ORDER BY id",
        )?
        .query_map(params![id], |r| {
            Ok(Escalation {
                step: r.get(0)?,
                at_ms: r.get(1)?,
                action: r.get(2)?,
                target: r.get(3)?,
                actor: r.get(4)?,
                comment: r.get(5)?,
            })
        })?
        .collect::<Result<_, _>>()?)
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

/// A recorded satisfaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SatisfactionRecord {
    pub score: Option<u8>,
    pub comment: String,
    pub no_answer: bool,
    pub at_ms: i64,
    pub recorded_by: String,
}

pub fn satisfaction(conn: &Connection, id: i64) -> Result<Option<SatisfactionRecord>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT score, comment, no_answer, at_ms, recorded_by FROM case_satisfaction WHERE item_id = ?1",
        )?
        .query_row(params![id], |r| {
            Ok(SatisfactionRecord {
                score: r.get(0)?,
                comment: r.get(1)?,
                no_answer: r.get(2)?,
                at_ms: r.get(3)?,
                recorded_by: r.get(4)?,
            })
        })
        .optional()?)
}

/// Records the satisfaction and closes the resolved case.
fn close_with(conn: &Connection, id: i64, s: &Satisfaction, actor: &str, now_ms: i64) -> Result<Item, StoreError> {
    let problems = s.problems();
    if !problems.is_empty() {
        return Err(StoreError::QueueInput(problems.join("; ")));
    }
    let item = case(conn, id)?;
    if item.status != Status::Resolved {
        return Err(StoreError::Queue(format!(
            "case {id} is {}: only a resolved case can be closed",
            item.status
        )));
    }
    conn.prepare_cached(
        "INSERT INTO case_satisfaction (item_id, score, comment, no_answer, at_ms, recorded_by) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![id, s.score, s.comment, s.no_answer, now_ms, actor])?;
    let comment = match s.score {
        Some(score) if s.comment.is_empty() => format!("satisfaction {score}/5"),
        Some(score) => format!("satisfaction {score}/5: {}", s.comment),
        None => "satisfaction: no answer".to_string(),
    };
    items::act_by(conn, id, Action::Close, actor, Some(&comment), now_ms)
}

/// A case by id; a finding or a missing id is an error.
fn case(conn: &Connection, id: i64) -> Result<Item, StoreError> {
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
    Comment {
        comment: String,
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
    Resolve {
        report: crate::spares::ServiceReport,
    },
    /// Close with the satisfaction record (required).
    Close {
        satisfaction: Satisfaction,
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
        }
    }
}

fn non_empty<'a>(field: &str, v: &'a str) -> Result<&'a str, StoreError> {
    let t = v.trim();
    if t.is_empty() {
        return Err(StoreError::QueueInput(format!("{field}: must not be empty")));
    }
    Ok(t)
}

/// Applies a person's action to case `id`; everything it changes is in the
/// caller's transaction (all or nothing). Returns the case afterwards.
pub fn act(
    conn: &Connection,
    contracts: &Contracts,
    id: i64,
    action: &CaseAction,
    person: &str,
    now_ms: i64,
) -> Result<Item, StoreError> {
    let item = case(conn, id)?;
    let meta = meta(conn, id)?.ok_or_else(|| StoreError::Queue(format!("case {id} is not in the queue yet")))?;
    let comment = |c: &Option<String>| {
        c.as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_string)
    };
    match action {
        CaseAction::Acknowledge { comment: c } => {
            if meta.assignee.is_none() {
                set_assignee(
                    conn,
                    id,
                    item.status,
                    person,
                    &format!("person:{person}"),
                    "took it",
                    now_ms,
                )?;
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
            set_assignee(conn, id, item.status, to, &format!("person:{person}"), &why, now_ms)?;
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
            record_escalation(
                conn,
                id,
                None,
                contracts::Action::Escalate,
                name,
                &format!("person:{person}"),
                c,
                now_ms,
            )?;
        }
        CaseAction::Comment { comment: c } => {
            let c = non_empty("comment", c)?;
            items::note(conn, id, &format!("person:{person}"), c, now_ms)?;
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
            close_with(conn, id, satisfaction, &format!("person:{person}"), now_ms)?;
        }
    }
    case(conn, id)
}

/// Resolves a case with its service report: the report is recorded (parts,
/// spares, stock) and the case resolved, or neither.
fn resolve_with(
    conn: &Connection,
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
pub fn has_service_report(conn: &Connection, id: i64) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM service_reports WHERE case_id = ?1)")?
        .query_row(params![id], |r| r.get(0))?)
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

/// Opens (or finds: the same title on the same asset is the same fault) a
/// case for a reported fault. The asset must be known. Returns the case id
/// and whether it is new.
pub fn report_fault(
    conn: &Connection,
    contracts: &Contracts,
    report: &FaultReport,
    person: &str,
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
    let (id, created) = items::open_reported(conn, &signal, &format!("person:{person}"), now_ms)?;
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

/// Which cases [`queue`] lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueFilter {
    /// Status name (`on_hold` for every reason); `None`: every active case.
    pub status: Option<String>,
    pub severity_min: Option<Severity>,
    pub customer: Option<String>,
    /// An engineer's name; `Some("")`: unassigned only.
    pub assignee: Option<String>,
}

/// One line of the queue.
#[derive(Debug, Clone, Serialize)]
pub struct QueueEntry {
    pub item: Item,
    pub meta: CaseMeta,
    pub sla: SlaView,
}

/// The queue: matching cases, the one closest to an SLA breach first (the
/// breached ones before them), then cases without SLA by severity and age.
pub fn queue(
    conn: &Connection,
    contracts: &Contracts,
    filter: &QueueFilter,
    now_ms: i64,
) -> Result<Vec<QueueEntry>, StoreError> {
    let mut ids_sql = String::from(
        "SELECT i.id FROM items i JOIN case_meta m ON m.item_id = i.id WHERE i.kind = 'case' \
         AND (?1 IS NULL OR i.status = ?1) AND (?2 IS NULL OR i.customer = ?2) \
         AND (?3 IS NULL OR coalesce(m.assignee, '') = ?3)",
    );
    if filter.status.is_none() {
        ids_sql.push_str(&format!(" AND i.status NOT IN {INACTIVE_STATUSES}"));
    }
    ids_sql.push_str(" ORDER BY i.id DESC LIMIT 5000");
    let ids: Vec<i64> = conn
        .prepare_cached(&ids_sql)?
        .query_map(params![filter.status, filter.customer, filter.assignee], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let (Some((item, log)), Some(meta)) = (items::get(conn, id)?, meta(conn, id)?) else {
            continue;
        };
        if filter.severity_min.is_some_and(|m| item.severity < m) {
            continue;
        }
        let contract = meta.contract.as_deref().and_then(|n| contracts.named(n));
        let sla = sla_view(contract, &item, &meta, &log, now_ms);
        out.push(QueueEntry { item, meta, sla });
    }
    out.sort_by(|a, b| {
        a.sla
            .standing()
            .cmp(&b.sla.standing())
            .then(b.item.severity.cmp(&a.item.severity))
            .then(a.item.opened_at_ms.cmp(&b.item.opened_at_ms))
    });
    Ok(out)
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
    conn: &Connection,
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
pub fn asset_history(conn: &Connection, host: &str) -> Result<Option<AssetHistory>, StoreError> {
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

/// Whether the store has the queue's tables (a store written by an older
/// version and opened read-only has not).
fn has_queue_tables(conn: &Connection) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'case_meta')")?
        .query_row([], |r| r.get(0))?)
}

/// For the inspection report: the share of the customer's cases under
/// contract that ended in `[from, to)` with neither SLA clock breached.
/// `None`: no such case ended in the period.
pub fn sla_met_pct(conn: &Connection, customer: &str, from_ms: i64, to_ms: i64) -> Result<Option<f64>, StoreError> {
    if !has_queue_tables(conn)? {
        return Ok(None);
    }
    let (total, met): (i64, i64) = conn
        .prepare_cached(
            "SELECT count(*), coalesce(sum(m.response_breached_at_ms IS NULL AND m.resolution_breached_at_ms IS NULL), 0) \
             FROM items i JOIN case_meta m ON m.item_id = i.id \
             WHERE i.kind = 'case' AND i.customer = ?1 AND m.contract IS NOT NULL \
             AND i.resolved_at_ms >= ?2 AND i.resolved_at_ms < ?3 AND i.status NOT LIKE 'cancelled%'",
        )?
        .query_row(params![customer, from_ms, to_ms], |r| Ok((r.get(0)?, r.get(1)?)))?;
    #[allow(clippy::cast_precision_loss)]
    Ok((total > 0).then(|| met as f64 * 100.0 / total as f64))
}

/// For the inspection report: the satisfaction records of the customer's
/// cases made in `[from, to)`; `None` when the store predates them.
pub fn satisfaction_summary(
    conn: &Connection,
    customer: &str,
    from_ms: i64,
    to_ms: i64,
) -> Result<Option<crate::report::Satisfaction>, StoreError> {
    if !has_queue_tables(conn)? {
        return Ok(None);
    }
    let rows: Vec<(Option<u8>, String, bool)> = conn
        .prepare_cached(
            "SELECT s.score, s.comment, s.no_answer FROM case_satisfaction s JOIN items i ON i.id = s.item_id \
             WHERE i.customer = ?1 AND s.at_ms >= ?2 AND s.at_ms < ?3 ORDER BY s.at_ms",
        )?
        .query_map(params![customer, from_ms, to_ms], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?
        .collect::<Result<_, _>>()?;
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

/// Per customer with active cases under contract: how many have breached
/// an SLA clock, and how many nobody is assigned to (for /metrics).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueCounts {
    pub customer: String,
    pub breached: u64,
    pub unassigned: u64,
}

pub fn queue_counts(conn: &Connection) -> Result<Vec<QueueCounts>, StoreError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT i.customer, \
             sum(m.response_breached_at_ms IS NOT NULL OR m.resolution_breached_at_ms IS NOT NULL), \
             sum(m.assignee IS NULL) \
             FROM items i JOIN case_meta m ON m.item_id = i.id \
             WHERE i.kind = 'case' AND m.contract IS NOT NULL AND i.status NOT IN {INACTIVE_STATUSES} \
             GROUP BY i.customer ORDER BY i.customer"
        ))?
        .query_map([], |r| {
            Ok(QueueCounts {
                customer: r.get(0)?,
                breached: r.get::<_, i64>(1)?.try_into().unwrap_or(0),
                unassigned: r.get::<_, i64>(2)?.try_into().unwrap_or(0),
            })
        })?
        .collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests;
