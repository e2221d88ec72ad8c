//! The outbox as the sinks use it: every case change lands in `outbox` by a
//! trigger on the case log, in the transaction that made the change (the
//! rows are [`crate::store::outbox`]'s). Each
//! sink keeps a cursor (`sink_state.delivered_through`); a change is
//! delivered, then the cursor and the case's external id move in one
//! transaction, so a sink that is down only delays its changes, and a change
//! is never passed over. A change a sink refuses for good goes to
//! `sink_dead`, listed for an engineer, so it does not stop the rest.

use crate::cases::store::{self as items, LogEntry};
use crate::cases::{Item, Status};
use crate::store::StoreError;
use crate::store::outbox::Outbox;
use crate::store::sql::Sql;

pub use crate::store::outbox::{SetAside, SinkState};

use super::CaseMeta;

/// Makes sure `sink` has a cursor. A sink seen for the first time starts at
/// the end of the outbox: it hears of changes from now on, not of history.
pub fn ensure_sink(db: &dyn Sql, sink: &str) -> Result<(), StoreError> {
    Ok(db.ensure_sink_cursor(sink)?)
}

/// Every sink with a cursor, by name.
pub fn sinks(db: &dyn Sql) -> Result<Vec<String>, StoreError> {
    Ok(db.sink_names()?)
}

/// The sink's state, with its backlog.
pub fn sink_state(db: &dyn Sql, sink: &str) -> Result<Option<SinkState>, StoreError> {
    Ok(db.sink_state(sink)?)
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
pub fn next_pending(conn: &dyn Sql, sink: &str) -> Result<Option<Pending>, StoreError> {
    let Some(row) = conn.next_for_sink(sink)? else {
        return Ok(None);
    };
    let (outbox_id, item_id, log_id) = (row.id, row.item_id, row.log_id);
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

pub fn external_id(db: &dyn Sql, item_id: i64, sink: &str) -> Result<Option<String>, StoreError> {
    Ok(db.case_external_id(item_id, sink)?)
}

/// Every sink's ticket id of a case.
pub fn external_ids(db: &dyn Sql, item_id: i64) -> Result<Vec<(String, String)>, StoreError> {
    Ok(db.case_external_ids(item_id)?)
}

/// The change was delivered (or skipped on purpose): move the cursor past
/// it and keep the ticket id the sink gave, in one transaction.
pub fn delivered(
    db: &dyn Sql,
    sink: &str,
    outbox_id: i64,
    item_id: i64,
    external: Option<&str>,
    now_ms: i64,
) -> Result<(), StoreError> {
    db.sink_delivered(sink, outbox_id, now_ms)?;
    if let Some(x) = external {
        db.set_case_external_id(item_id, sink, x)?;
    }
    Ok(())
}

/// A delivery failed; the next try is not before `next_attempt_ms`.
/// Returns how many tries have failed in a row.
pub fn failed(db: &dyn Sql, sink: &str, error: &str, next_attempt_ms: i64) -> Result<i64, StoreError> {
    Ok(db.sink_failed(sink, error, next_attempt_ms)?)
}

/// Sets a change aside after the sink refused it for good, and moves on.
pub fn set_aside(db: &dyn Sql, sink: &str, outbox_id: i64, error: &str, now_ms: i64) -> Result<(), StoreError> {
    Ok(db.sink_set_aside(sink, outbox_id, error, now_ms)?)
}

pub fn set_aside_list(db: &dyn Sql, sink: &str) -> Result<Vec<SetAside>, StoreError> {
    Ok(db.sink_set_aside_list(sink)?)
}

/// How long a delivered change stays in the outbox (for `GET
/// /api/v1/outbox` and a look after an incident).
pub const KEEP_DELIVERED_MS: i64 = 7 * 86_400_000;

/// Deletes outbox rows older than `before_ms` that every sink's cursor has
/// passed (all of them when no sink was ever configured); a sink that is down
/// keeps its backlog whatever its age. Returns how many went.
pub fn prune(db: &dyn Sql, before_ms: i64) -> Result<usize, StoreError> {
    Ok(usize::try_from(db.prune_outbox(before_ms)?).unwrap_or(usize::MAX))
}
