//! Recommendation records: which part of which asset should be replaced, why,
//! and how soon; and their lifecycle `open → accepted → reserved → done`, or
//! `dismissed` with a reason.
//!
//! At most one active (open, accepted or reserved) recommendation exists per
//! part (`part_key`, a unique partial index), so raising is an idempotent
//! upsert: a later assessment refreshes the evidence and may make the
//! urgency sooner, never later. Moving it back is an engineer's call
//! (dismiss, with a reason).

use rusqlite::{Connection, OptionalExtension, Row, params};
use serde::Serialize;
use serde_json::Value;

use super::assess::Urgency;
use crate::store::StoreError;

pub const MIGRATION: &str = r#"
CREATE TABLE recommendations (
    id INTEGER PRIMARY KEY,
    agent_id TEXT NOT NULL,
    host TEXT NOT NULL,
    customer TEXT NOT NULL,
    part_type TEXT NOT NULL CHECK (part_type IN ('disk', 'dimm', 'fan', 'psu')),
    part_model TEXT NOT NULL DEFAULT '',
    part_serial TEXT NOT NULL DEFAULT '',
    part_slot TEXT NOT NULL DEFAULT '',
    part_interface TEXT NOT NULL DEFAULT '',
    part_capacity_bytes INTEGER,
    part_key TEXT NOT NULL,
    reason TEXT NOT NULL,
    evidence TEXT NOT NULL,
    risk TEXT NOT NULL,
    urgency TEXT NOT NULL CHECK (urgency IN ('replace_now', 'within_days', 'watch')),
    due_at_ms INTEGER,
    status TEXT NOT NULL CHECK (status IN ('open', 'accepted', 'reserved', 'done', 'dismissed')),
    dismissed_reason TEXT,
    item_id INTEGER,
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL
);
-- Never two active recommendations for the same part.
CREATE UNIQUE INDEX recommendations_one_active ON recommendations(part_key)
    WHERE status IN ('open', 'accepted', 'reserved');
CREATE INDEX recommendations_status ON recommendations(status, id);
"#;

/// Appended to the migrations: the part types of the BMC and RAID
/// controllers (a controller's cache backup unit, the controller itself).
/// SQLite cannot change a CHECK constraint in place, so the table is
/// rebuilt with the rows and indexes it had.
pub const MIGRATION_HARDWARE_PARTS: &str = r#"
CREATE TABLE recommendations_new (
    id INTEGER PRIMARY KEY,
    agent_id TEXT NOT NULL,
    host TEXT NOT NULL,
    customer TEXT NOT NULL,
    part_type TEXT NOT NULL CHECK (part_type IN ('disk', 'dimm', 'fan', 'psu', 'bbu', 'controller')),
    part_model TEXT NOT NULL DEFAULT '',
    part_serial TEXT NOT NULL DEFAULT '',
    part_slot TEXT NOT NULL DEFAULT '',
    part_interface TEXT NOT NULL DEFAULT '',
    part_capacity_bytes INTEGER,
    part_key TEXT NOT NULL,
    reason TEXT NOT NULL,
    evidence TEXT NOT NULL,
    risk TEXT NOT NULL,
    urgency TEXT NOT NULL CHECK (urgency IN ('replace_now', 'within_days', 'watch')),
    due_at_ms INTEGER,
    status TEXT NOT NULL CHECK (status IN ('open', 'accepted', 'reserved', 'done', 'dismissed')),
    dismissed_reason TEXT,
    item_id INTEGER,
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL
);
INSERT INTO recommendations_new SELECT id, agent_id, host, customer, part_type, part_model, part_serial, part_slot,
    part_interface, part_capacity_bytes, part_key, reason, evidence, risk, urgency, due_at_ms, status,
    dismissed_reason, item_id, created_at_ms, updated_at_ms FROM recommendations;
DROP TABLE recommendations;
ALTER TABLE recommendations_new RENAME TO recommendations;
CREATE UNIQUE INDEX recommendations_one_active ON recommendations(part_key)
    WHERE status IN ('open', 'accepted', 'reserved');
CREATE INDEX recommendations_status ON recommendations(status, id);
"#;

/// The stored urgencies, in the order /metrics lists them.
pub const URGENCIES: &[&str] = &["replace_now", "within_days", "watch"];

const ACTIVE: &str = "('open', 'accepted', 'reserved')";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PartType {
    Disk,
    Dimm,
    Fan,
    Psu,
    /// A RAID controller's cache backup unit (battery, CacheVault, capacitor).
    Bbu,
    /// A RAID controller.
    Controller,
}

impl PartType {
    pub const ALL: [PartType; 6] = [
        PartType::Disk,
        PartType::Dimm,
        PartType::Fan,
        PartType::Psu,
        PartType::Bbu,
        PartType::Controller,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PartType::Disk => "disk",
            PartType::Dimm => "dimm",
            PartType::Fan => "fan",
            PartType::Psu => "psu",
            PartType::Bbu => "bbu",
            PartType::Controller => "controller",
        }
    }

    pub fn parse(s: &str) -> Option<PartType> {
        Some(match s {
            "disk" => PartType::Disk,
            "dimm" => PartType::Dimm,
            "fan" => PartType::Fan,
            "psu" => PartType::Psu,
            "bbu" => PartType::Bbu,
            "controller" => PartType::Controller,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecStatus {
    Open,
    Accepted,
    Reserved,
    Done,
    Dismissed,
}

impl RecStatus {
    pub const ALL: [RecStatus; 5] = [
        RecStatus::Open,
        RecStatus::Accepted,
        RecStatus::Reserved,
        RecStatus::Done,
        RecStatus::Dismissed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RecStatus::Open => "open",
            RecStatus::Accepted => "accepted",
            RecStatus::Reserved => "reserved",
            RecStatus::Done => "done",
            RecStatus::Dismissed => "dismissed",
        }
    }

    pub fn parse(s: &str) -> Option<RecStatus> {
        RecStatus::ALL.into_iter().find(|x| x.as_str() == s)
    }

    pub fn is_active(self) -> bool {
        matches!(self, RecStatus::Open | RecStatus::Accepted | RecStatus::Reserved)
    }
}

/// What an engineer (or the spare-parts module) does to a recommendation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecAction {
    Accept,
    /// A compatible spare was set aside (the spare-parts module).
    Reserve,
    Done,
    Dismiss {
        reason: String,
    },
}

impl RecAction {
    pub fn name(&self) -> &'static str {
        match self {
            RecAction::Accept => "accept",
            RecAction::Reserve => "reserve",
            RecAction::Done => "done",
            RecAction::Dismiss { .. } => "dismiss",
        }
    }

    /// As in "a recommendation that is open cannot be …".
    pub fn done_verb(&self) -> &'static str {
        match self {
            RecAction::Accept => "accepted",
            RecAction::Reserve => "reserved",
            RecAction::Done => "marked done",
            RecAction::Dismiss { .. } => "dismissed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("a recommendation that is {from} cannot be {action}")]
    Invalid { action: &'static str, from: &'static str },
    #[error("dismissing needs a reason")]
    ReasonRequired,
}

/// The lifecycle as a pure function: the status `action` moves `from` to.
/// `open → accepted → reserved → done`; `done` is also allowed from
/// `accepted` (a part taken from elsewhere); any active status may be
/// dismissed with a reason. `done` and `dismissed` are final.
pub fn transition(from: RecStatus, action: &RecAction) -> Result<RecStatus, TransitionError> {
    use RecStatus::*;
    let to = match (from, action) {
        (Open, RecAction::Accept) => Accepted,
        (Accepted, RecAction::Reserve) => Reserved,
        (Accepted | Reserved, RecAction::Done) => Done,
        (Open | Accepted | Reserved, RecAction::Dismiss { reason }) => {
            if reason.trim().is_empty() {
                return Err(TransitionError::ReasonRequired);
            }
            Dismissed
        }
        _ => {
            return Err(TransitionError::Invalid {
                action: action.done_verb(),
                from: from.as_str(),
            });
        }
    };
    Ok(to)
}

/// The part a recommendation is about; kept on the record so the spare-parts
/// module can match a compatible spare (type, model, interface, capacity).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Part {
    pub model: String,
    pub serial: String,
    /// The disk's device (or its controller and enclosure:slot, `c0 252:3`),
    /// the DIMM's or fan's label, the power supply's name, the controller
    /// (`c0`) of a controller or of its cache backup unit.
    pub slot: String,
    /// `ata`, `nvme`, `scsi` for disks; empty otherwise.
    pub interface: String,
    pub capacity_bytes: Option<u64>,
}

/// One recommendation as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recommendation {
    pub id: i64,
    pub agent_id: String,
    pub host: String,
    pub customer: String,
    pub part_type: String,
    pub part: Part,
    /// Stable identity of the part: `host/type/serial`, or the slot without a serial.
    pub part_key: String,
    pub reason: String,
    pub evidence: Value,
    pub risk: String,
    pub urgency: String,
    pub due_at_ms: Option<i64>,
    pub status: String,
    pub dismissed_reason: Option<String>,
    /// The finding or case behind it, when there is one.
    pub item_id: Option<i64>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// What an assessment asks to raise.
#[derive(Debug, Clone, PartialEq)]
pub struct Raise {
    pub agent_id: String,
    pub host: String,
    pub customer: String,
    pub part_type: PartType,
    pub part: Part,
    pub reason: String,
    pub evidence: Value,
    pub risk: String,
    pub urgency: Urgency,
    pub item_id: Option<i64>,
    pub at_ms: i64,
}

impl Raise {
    pub fn part_key(&self) -> String {
        let id = if self.part.serial.trim().is_empty() {
            &self.part.slot
        } else {
            &self.part.serial
        };
        format!("{}/{}/{}", self.host, self.part_type.as_str(), id)
    }

    fn due_at_ms(&self) -> Option<i64> {
        match self.urgency {
            Urgency::ReplaceNow => Some(self.at_ms),
            Urgency::WithinDays(d) => Some(self.at_ms + i64::from(d) * 86_400_000),
            Urgency::Watch | Urgency::None => None,
        }
    }
}

/// What [`raise`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Raised {
    Created(i64),
    /// Evidence refreshed; `escalated` when the urgency became sooner.
    Updated {
        id: i64,
        escalated: bool,
    },
    /// Nothing to raise (a watch or no urgency).
    Nothing,
}

fn urgency_rank(name: &str, due: Option<i64>) -> (u8, i64) {
    let r = match name {
        "replace_now" => 3,
        "within_days" => 2,
        "watch" => 1,
        _ => 0,
    };
    (r, due.map_or(i64::MIN, |d| -d))
}

/// Raises (or refreshes) the recommendation for a part: an idempotent upsert
/// on the active record of its `part_key`. The urgency only moves sooner.
pub fn raise(conn: &Connection, r: &Raise) -> Result<Raised, StoreError> {
    if !r.urgency.recommends() {
        return Ok(Raised::Nothing);
    }
    let key = r.part_key();
    let evidence = serde_json::to_string(&r.evidence).unwrap_or_else(|_| "{}".into());
    let due = r.due_at_ms();
    let existing: Option<(i64, String, Option<i64>)> = conn
        .prepare_cached(&format!(
            "SELECT id, urgency, due_at_ms FROM recommendations WHERE part_key = ?1 AND status IN {ACTIVE}"
        ))?
        .query_row(params![key], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .optional()?;
    match existing {
        None if silenced(conn, &key, r)? => Ok(Raised::Nothing),
        None => {
            conn.prepare_cached(
                "INSERT INTO recommendations(agent_id, host, customer, part_type, part_model, part_serial, part_slot,
                    part_interface, part_capacity_bytes, part_key, reason, evidence, risk, urgency, due_at_ms, status,
                    item_id, created_at_ms, updated_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, 'open', ?16, ?17, ?17)",
            )?
            .execute(params![
                r.agent_id,
                r.host,
                r.customer,
                r.part_type.as_str(),
                r.part.model,
                r.part.serial,
                r.part.slot,
                r.part.interface,
                r.part.capacity_bytes.and_then(|c| i64::try_from(c).ok()),
                key,
                r.reason,
                evidence,
                r.risk,
                r.urgency.name(),
                due,
                r.item_id,
                r.at_ms
            ])?;
            let id = conn.last_insert_rowid();
            tracing::info!(id, part = %key, urgency = r.urgency.name(), "replacement recommended");
            Ok(Raised::Created(id))
        }
        Some((id, urgency, old_due)) => {
            let escalated = urgency_rank(r.urgency.name(), due) > urgency_rank(&urgency, old_due);
            if escalated {
                conn.prepare_cached(
                    "UPDATE recommendations SET urgency = ?2, due_at_ms = ?3, risk = ?4, reason = ?5, evidence = ?6,
                        item_id = COALESCE(item_id, ?7), updated_at_ms = ?8 WHERE id = ?1",
                )?
                .execute(params![
                    id,
                    r.urgency.name(),
                    due,
                    r.risk,
                    r.reason,
                    evidence,
                    r.item_id,
                    r.at_ms
                ])?;
                tracing::info!(id, part = %key, urgency = r.urgency.name(), "replacement more urgent");
            } else {
                conn.prepare_cached(
                    "UPDATE recommendations SET evidence = ?2, item_id = COALESCE(item_id, ?3), updated_at_ms = ?4
                     WHERE id = ?1",
                )?
                .execute(params![id, evidence, r.item_id, r.at_ms])?;
            }
            Ok(Raised::Updated { id, escalated })
        }
    }
}

/// Whether an engineer dismissed this part's last recommendation and the
/// evidence has not worsened since: the urgency is no sooner in kind and no
/// new reason appeared. A dismissal silences the same evidence; it does not
/// blind the collector to a drive that gets worse (DISK-HEALTH rule 7).
fn silenced(conn: &Connection, key: &str, r: &Raise) -> Result<bool, StoreError> {
    let last: Option<(String, String, String)> = conn
        .prepare_cached(
            "SELECT status, urgency, reason FROM recommendations WHERE part_key = ?1 ORDER BY id DESC LIMIT 1",
        )?
        .query_row(params![key], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .optional()?;
    let Some((status, urgency, reason)) = last else {
        return Ok(false);
    };
    if status != RecStatus::Dismissed.as_str() {
        return Ok(false);
    }
    let sooner = urgency_rank(r.urgency.name(), None).0 > urgency_rank(&urgency, None).0;
    let dismissed: Vec<&str> = reason.split("; ").collect();
    let new_reason = r.reason.split("; ").any(|x| !dismissed.contains(&x));
    Ok(!sooner && !new_reason)
}

const COLUMNS: &str = "id, agent_id, host, customer, part_type, part_model, part_serial, part_slot, part_interface,
    part_capacity_bytes, part_key, reason, evidence, risk, urgency, due_at_ms, status, dismissed_reason, item_id,
    created_at_ms, updated_at_ms";

fn from_row(r: &Row<'_>) -> rusqlite::Result<Recommendation> {
    let evidence: String = r.get(12)?;
    Ok(Recommendation {
        id: r.get(0)?,
        agent_id: r.get(1)?,
        host: r.get(2)?,
        customer: r.get(3)?,
        part_type: r.get(4)?,
        part: Part {
            model: r.get(5)?,
            serial: r.get(6)?,
            slot: r.get(7)?,
            interface: r.get(8)?,
            capacity_bytes: r.get::<_, Option<i64>>(9)?.and_then(|c| u64::try_from(c).ok()),
        },
        part_key: r.get(10)?,
        reason: r.get(11)?,
        evidence: serde_json::from_str(&evidence).unwrap_or(Value::Null),
        risk: r.get(13)?,
        urgency: r.get(14)?,
        due_at_ms: r.get(15)?,
        status: r.get(16)?,
        dismissed_reason: r.get(17)?,
        item_id: r.get(18)?,
        created_at_ms: r.get(19)?,
        updated_at_ms: r.get(20)?,
    })
}

pub fn get(conn: &Connection, id: i64) -> Result<Option<Recommendation>, StoreError> {
    Ok(conn
        .prepare_cached(&format!("SELECT {COLUMNS} FROM recommendations WHERE id = ?1"))?
        .query_row(params![id], from_row)
        .optional()?)
}

/// Which recommendations [`list`] returns; `Default` lists all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub status: Option<RecStatus>,
    pub host: Option<String>,
    pub customer: Option<String>,
    /// `replace_now`, `within_days` or `watch`.
    pub urgency: Option<String>,
}

/// Recommendations, soonest due first, then newest.
pub fn list(conn: &Connection, f: &Filter) -> Result<Vec<Recommendation>, StoreError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS} FROM recommendations
         WHERE (?1 IS NULL OR status = ?1) AND (?2 IS NULL OR host = ?2) AND (?3 IS NULL OR customer = ?3)
           AND (?4 IS NULL OR urgency = ?4)
         ORDER BY CASE urgency WHEN 'replace_now' THEN 0 WHEN 'within_days' THEN 1 ELSE 2 END,
                  COALESCE(due_at_ms, 9223372036854775807), id DESC"
    ))?;
    let rows = stmt.query_map(
        params![f.status.map(RecStatus::as_str), f.host, f.customer, f.urgency],
        from_row,
    )?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Applies `action` to recommendation `id` at `at_ms`; answers the record as
/// it now is.
pub fn act(conn: &Connection, id: i64, action: &RecAction, at_ms: i64) -> Result<Recommendation, StoreError> {
    let rec = get(conn, id)?.ok_or(StoreError::NoSuchRecommendation(id))?;
    let from = RecStatus::parse(&rec.status).ok_or_else(|| StoreError::CorruptItem {
        id,
        reason: format!("unknown recommendation status {:?}", rec.status),
    })?;
    let to = transition(from, action)?;
    let reason = match action {
        RecAction::Dismiss { reason } => Some(reason.trim().to_string()),
        _ => None,
    };
    conn.execute(
        "UPDATE recommendations SET status = ?2, dismissed_reason = COALESCE(?3, dismissed_reason),
            updated_at_ms = ?4 WHERE id = ?1",
        params![id, to.as_str(), reason, at_ms],
    )?;
    tracing::info!(id, from = from.as_str(), to = to.as_str(), "recommendation changed");
    get(conn, id)?.ok_or(StoreError::NoSuchRecommendation(id))
}

/// Marks done every active recommendation for the part with `serial` on
/// `host`: the part was replaced (a service report said so, or its serial
/// left the inventory), whatever state the recommendation had reached.
/// Answers the ids it finished.
pub fn finish_replaced(conn: &Connection, host: &str, serial: &str, at_ms: i64) -> Result<Vec<i64>, StoreError> {
    let ids: Vec<i64> = conn
        .prepare_cached(&format!(
            "SELECT id FROM recommendations WHERE host = ?1 AND part_serial = ?2 AND status IN {ACTIVE} ORDER BY id"
        ))?
        .query_map(params![host, serial], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    for id in &ids {
        conn.prepare_cached("UPDATE recommendations SET status = 'done', updated_at_ms = ?2 WHERE id = ?1")?
            .execute(params![id, at_ms])?;
        tracing::info!(id, host, serial, "recommendation done: the part was replaced");
    }
    Ok(ids)
}

/// Active recommendations by urgency (for /metrics).
pub fn open_counts(conn: &Connection) -> Result<Vec<(String, u64)>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT urgency, COUNT(*) FROM recommendations WHERE status IN {ACTIVE} GROUP BY urgency"
    ))?;
    let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
    let mut out = Vec::new();
    for row in rows {
        let (u, n) = row?;
        out.push((u, u64::try_from(n).unwrap_or(0)));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn the_lifecycle_moves_forward_or_is_dismissed_with_a_reason() {
        use RecStatus::*;
        assert_eq!(transition(Open, &RecAction::Accept), Ok(Accepted));
        assert_eq!(transition(Accepted, &RecAction::Reserve), Ok(Reserved));
        assert_eq!(transition(Reserved, &RecAction::Done), Ok(Done));
        assert_eq!(transition(Accepted, &RecAction::Done), Ok(Done));
        let dismiss = RecAction::Dismiss {
            reason: "drive is under warranty swap".into(),
        };
        for s in [Open, Accepted, Reserved] {
            assert_eq!(transition(s, &dismiss), Ok(Dismissed));
        }
        assert_eq!(
            transition(Open, &RecAction::Dismiss { reason: "  ".into() }),
            Err(TransitionError::ReasonRequired)
        );
        let err = transition(Open, &RecAction::Done).unwrap_err();
        assert_eq!(err.to_string(), "a recommendation that is open cannot be marked done");
        assert!(transition(Done, &RecAction::Accept).is_err());
        assert!(transition(Dismissed, &dismiss).is_err());
        assert!(transition(Accepted, &RecAction::Accept).is_err());
    }
}
