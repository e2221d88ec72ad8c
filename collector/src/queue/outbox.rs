//! The store side of the outbox: every case change lands in `outbox` by a
//! trigger on the case log, in the transaction that made the change. Each
//! sink keeps a cursor (`sink_state.delivered_through`); a change is
//! delivered, then the cursor and the case's external id move in one
//! transaction, so a sink that is down only delays its changes, and a change
//! is never passed over. A change a sink refuses for good goes to
//! `sink_dead`, listed for an engineer, so it does not stop the rest.

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::cases::store::{self as items, LogEntry};
use crate::cases::{Item, Status};
use crate::store::StoreError;

use super::CaseMeta;

/// A sink's place in the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SinkState {
    pub sink: String,
    pub delivered_through: i64,
    pub attempts: i64,
    pub next_attempt_ms: i64,
    pub last_error: Option<String>,
    pub last_ok_ms: Option<i64>,
    /// Changes not delivered yet.
    pub pending: i64,
    /// Changes set aside after a permanent refusal.
    pub dead: i64,
}

/// Makes sure `sink` has a cursor. A sink seen for the first time starts at
/// the end of the outbox: it hears of changes from now on, not of history.
pub fn ensure_sink(conn: &Connection, sink: &str) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO sink_state (sink, delivered_through) \
         VALUES (?1, (SELECT coalesce(max(id), 0) FROM outbox)) ON CONFLICT (sink) DO NOTHING",
    )?
    .execute(params![sink])?;
    Ok(())
}

/// The sink's state, with its backlog.
pub fn sink_state(conn: &Connection, sink: &str) -> Result<Option<SinkState>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT sink, delivered_through, attempts, next_attempt_ms, last_error, last_ok_ms, \
             (SELECT count(*) FROM outbox o WHERE o.id > s.delivered_through), \
             (SELECT count(*) FROM sink_dead d WHERE d.sink = s.sink) \
             FROM sink_state s WHERE sink = ?1",
        )?
        .query_row(params![sink], |r| {
            Ok(SinkState {
                sink: r.get(0)?,
                delivered_through: r.get(1)?,
                attempts: r.get(2)?,
                next_attempt_ms: r.get(3)?,
                last_error: r.get(4)?,
                last_ok_ms: r.get(5)?,
                pending: r.get(6)?,
                dead: r.get(7)?,
            })
        })
        .optional()?)
}

/// One change waiting for a sink: the case as it is now and the log entry.
#[derive(Debug, Clone)]
pub struct Pending {
    pub outbox_id: i64,
    pub item: Item,
    pub meta: Option<CaseMeta>,
    pub change: LogEntry,
    /// The case's ticket in this sink, from an earlier delivery.
    pub external_id: Option<String>,
}

/// The next change for `sink` after its cursor, if any.
pub fn next_pending(conn: &Connection, sink: &str) -> Result<Option<Pending>, StoreError> {
    let row: Option<(i64, i64, i64)> = conn
        .prepare_cached(
            "SELECT o.id, o.item_id, o.log_id FROM outbox o, sink_state s \
             WHERE s.sink = ?1 AND o.id > s.delivered_through ORDER BY o.id LIMIT 1",
        )?
        .query_row(params![sink], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()?;
    let Some((outbox_id, item_id, log_id)) = row else {
        return Ok(None);
    };
    let (item, log) = items::get(conn, item_id)?.ok_or(StoreError::NoSuchItem(item_id))?;
    let change = log
        .into_iter()
        .find(|e| e.id == log_id)
        .ok_or_else(|| StoreError::Queue(format!("outbox {outbox_id}: log entry {log_id} is gone")))?;
    Ok(Some(Pending {
        outbox_id,
        meta: super::meta(conn, item_id)?,
        external_id: external_id(conn, item_id, sink)?,
        item,
        change,
    }))
}

/// Whether a change is one a flapping case must not send: while the mark is
/// on, the rule's own status changes stay in the store (counted, logged)
/// but nobody is notified of each; the mark itself and people's changes go.
pub fn muted(p: &Pending) -> bool {
    p.item.flapping
        && p.change.actor.starts_with("rule:")
        && p.change.from_status.is_some()
        && p.change.comment.as_deref() != Some("flapping")
        && !matches!(p.change.to_status, Status::Closed)
}

pub fn external_id(conn: &Connection, item_id: i64, sink: &str) -> Result<Option<String>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT external_id FROM case_external WHERE item_id = ?1 AND sink = ?2")?
        .query_row(params![item_id, sink], |r| r.get(0))
        .optional()?)
}

/// Every sink's ticket id of a case.
pub fn external_ids(conn: &Connection, item_id: i64) -> Result<Vec<(String, String)>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT sink, external_id FROM case_external WHERE item_id = ?1 ORDER BY sink")?
        .query_map(params![item_id], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?)
}

/// The change was delivered (or skipped on purpose): move the cursor past
/// it and keep the ticket id the sink gave, in one transaction.
pub fn delivered(
    conn: &Connection,
    sink: &str,
    outbox_id: i64,
    item_id: i64,
    external: Option<&str>,
    now_ms: i64,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE sink_state SET delivered_through = max(delivered_through, ?2), attempts = 0, \
         next_attempt_ms = 0, last_error = NULL, last_ok_ms = ?3 WHERE sink = ?1",
    )?
    .execute(params![sink, outbox_id, now_ms])?;
    if let Some(x) = external {
        conn.prepare_cached(
            "INSERT INTO case_external (item_id, sink, external_id) VALUES (?1, ?2, ?3) \
             ON CONFLICT (item_id, sink) DO UPDATE SET external_id = excluded.external_id",
        )?
        .execute(params![item_id, sink, x])?;
    }
    Ok(())
}

/// A delivery failed; the next try is not before `next_attempt_ms`.
/// Returns how many tries have failed in a row.
pub fn failed(conn: &Connection, sink: &str, error: &str, next_attempt_ms: i64) -> Result<i64, StoreError> {
    conn.prepare_cached(
        "UPDATE sink_state SET attempts = attempts + 1, next_attempt_ms = ?2, last_error = ?3 WHERE sink = ?1",
    )?
    .execute(params![sink, next_attempt_ms, error])?;
    Ok(conn
        .prepare_cached("SELECT attempts FROM sink_state WHERE sink = ?1")?
        .query_row(params![sink], |r| r.get(0))?)
}

/// Sets a change aside after the sink refused it for good, and moves on.
pub fn set_aside(conn: &Connection, sink: &str, outbox_id: i64, error: &str, now_ms: i64) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO sink_dead (sink, outbox_id, at_ms, error) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (sink, outbox_id) DO NOTHING",
    )?
    .execute(params![sink, outbox_id, now_ms, error])?;
    conn.prepare_cached(
        "UPDATE sink_state SET delivered_through = max(delivered_through, ?2), attempts = 0, \
         next_attempt_ms = 0 WHERE sink = ?1",
    )?
    .execute(params![sink, outbox_id])?;
    Ok(())
}

/// A change a sink refused for good.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SetAside {
    pub outbox_id: i64,
    pub at_ms: i64,
    pub error: String,
}

pub fn set_aside_list(conn: &Connection, sink: &str) -> Result<Vec<SetAside>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT outbox_id, at_ms, error FROM sink_dead WHERE sink = ?1 ORDER BY outbox_id DESC LIMIT 100",
        )?
        .query_map(params![sink], |r| {
            Ok(SetAside {
                outbox_id: r.get(0)?,
                at_ms: r.get(1)?,
                error: r.get(2)?,
            })
        })?
        .collect::<Result<_, _>>()?)
}

/// How long a delivered change stays in the outbox (for `GET
/// /api/v1/outbox` and a look after an incident).
pub const KEEP_DELIVERED_MS: i64 = 7 * 86_400_000;

/// Deletes outbox rows older than `before_ms` that every sink's cursor has
/// passed (all of them when no sink was ever configured); a sink that is down
/// keeps its backlog whatever its age. Returns how many went.
pub fn prune(conn: &Connection, before_ms: i64) -> Result<usize, StoreError> {
    Ok(conn
        .prepare_cached(
            "DELETE FROM outbox WHERE at_ms < ?1 \
             AND id <= coalesce((SELECT min(delivered_through) FROM sink_state), (SELECT max(id) FROM outbox))",
        )?
        .execute(params![before_ms])?)
}
