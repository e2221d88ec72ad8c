//! Findings and cases as rows: `items` (one row per item, at most one active
//! per kind and identity key, enforced by a unique partial index) and the
//! append-only `item_log` (who moved what from where to where, and when).
//! Every log row of a case also goes to the `outbox`, in the same statement
//! sequence, so the sinks deliver each change of a case exactly once the
//! transaction that made it commits.
//!
//! The lifecycle (what a signal or an action does to an item) is
//! `cases`'s; this module keeps the rows, with statuses, kinds,
//! severities and JSON documents as text for the domain to decode.

use super::sql::{Dialect, Row, Sql, SqlError, SqlExt, Value, args};

/// The PostgreSQL advisory lock a transaction holds from its first outbox
/// row to its end (any constant the collector alone uses).
const OUTBOX_ORDER_LOCK: i64 = 0x6361_7265_6f75_7462;

/// The statuses of an item that has ended (no longer active: the unique
/// index lets a key have many of these), as an SQL list for `status NOT IN`
/// and `status IN`.
pub const INACTIVE_STATUSES: &str = "('resolved', 'closed', 'cancelled', 'fixed', 'verified')";

/// Schema on SQLite, applied as one migration by [`crate::store`].
pub const MIGRATION: &str = r#"
CREATE TABLE items (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('finding', 'case')),
    customer TEXT NOT NULL,
    asset TEXT NOT NULL,
    check_name TEXT NOT NULL,
    component TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL,
    hold_reason TEXT,
    severity TEXT NOT NULL,
    rule TEXT NOT NULL,
    opened_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    last_firing_at_ms INTEGER NOT NULL,
    cleared_at_ms INTEGER,
    resolved_at_ms INTEGER,
    occurrences INTEGER NOT NULL,
    reopen_count INTEGER NOT NULL DEFAULT 0,
    recurrence_of INTEGER REFERENCES items(id),
    promoted_from INTEGER REFERENCES items(id),
    flapping INTEGER NOT NULL DEFAULT 0,
    touched_by_person INTEGER NOT NULL DEFAULT 0,
    status_before_recovery TEXT,
    evidence TEXT NOT NULL,
    recent_changes TEXT NOT NULL DEFAULT '[]'
);
-- At most one active item per kind and key: a retried or racing create fails
-- here instead of opening a duplicate ticket.
CREATE UNIQUE INDEX items_one_active ON items(kind, customer, asset, check_name, component)
    WHERE status NOT IN ('resolved', 'closed', 'cancelled', 'fixed', 'verified');
CREATE INDEX items_key ON items(kind, customer, asset, check_name, component, id);
CREATE TABLE item_log (
    id INTEGER PRIMARY KEY,
    item_id INTEGER NOT NULL REFERENCES items(id),
    at_ms INTEGER NOT NULL,
    actor TEXT NOT NULL,
    from_status TEXT,
    to_status TEXT NOT NULL,
    comment TEXT
);
CREATE INDEX item_log_item ON item_log(item_id, id);
"#;

/// Who may read a log row: `internal` (staff only; every row written before
/// comments had a visibility) or `public` (the case's customer too). Only a
/// comment is ever public.
pub const MIGRATION_LOG_VISIBILITY: &str = "ALTER TABLE item_log ADD COLUMN visibility TEXT NOT NULL \
    DEFAULT 'internal' CHECK (visibility IN ('internal', 'public'));";

/// Drops the SQLite trigger that filled the outbox from `item_log`: the
/// outbox row is now written by [`Items::append_log`] on every backend.
pub const MIGRATION_OUTBOX_IN_CODE: &str = "DROP TRIGGER IF EXISTS item_log_to_outbox;";

/// The identity of an item: its kind (`finding` or `case`) and key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ItemKey<'a> {
    pub kind: &'a str,
    pub customer: &'a str,
    pub asset: &'a str,
    pub check: &'a str,
    pub component: &'a str,
}

/// An `items` row as stored. `id` is ignored when inserting; `kind`,
/// `customer`, `asset`, `check`, `component`, `opened_at_ms`,
/// `recurrence_of` and `promoted_from` when updating (they never change).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemRow {
    pub id: i64,
    /// `finding` or `case`.
    pub kind: String,
    pub customer: String,
    pub asset: String,
    pub check: String,
    pub component: String,
    /// The status's name (`on_hold`, `cancelled`, ...).
    pub status: String,
    /// Why it is on hold or was cancelled.
    pub hold_reason: Option<String>,
    pub severity: String,
    pub rule: String,
    pub opened_at_ms: i64,
    pub updated_at_ms: i64,
    pub last_firing_at_ms: i64,
    pub cleared_at_ms: Option<i64>,
    pub resolved_at_ms: Option<i64>,
    pub occurrences: i64,
    pub reopen_count: i64,
    pub recurrence_of: Option<i64>,
    pub promoted_from: Option<i64>,
    pub flapping: bool,
    pub touched_by_person: bool,
    pub status_before_recovery: Option<String>,
    /// JSON.
    pub evidence: String,
    /// JSON.
    pub recent_changes: String,
}

/// What an item is now, cheaply: enough to see that it changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemGlance {
    pub id: i64,
    pub status: String,
    pub hold_reason: Option<String>,
    pub flapping: bool,
    pub reopen_count: i64,
    pub cleared_at_ms: Option<i64>,
}

/// An `item_log` row as stored; statuses as text (`on_hold:awaiting_vendor`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRow {
    pub id: i64,
    pub item_id: i64,
    pub at_ms: i64,
    /// `rule:<name>` or `person:<name>`.
    pub actor: String,
    /// `None` for the row that opened the item.
    pub from_status: Option<String>,
    pub to_status: String,
    pub comment: Option<String>,
    /// `internal` or `public`.
    pub visibility: String,
}

const LOG_COLUMNS: &str = "id, item_id, at_ms, actor, from_status, to_status, comment, visibility";

fn log_from(r: &Row<'_>) -> Result<LogRow, SqlError> {
    Ok(LogRow {
        id: r.get(0)?,
        item_id: r.get(1)?,
        at_ms: r.get(2)?,
        actor: r.get(3)?,
        from_status: r.get(4)?,
        to_status: r.get(5)?,
        comment: r.get(6)?,
        visibility: r.get(7)?,
    })
}

/// A log row to append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NewLog<'a> {
    pub item_id: i64,
    pub at_ms: i64,
    pub actor: &'a str,
    pub from_status: Option<&'a str>,
    pub to_status: &'a str,
    pub comment: Option<&'a str>,
    /// `internal` or `public`.
    pub visibility: &'a str,
}

/// Which items [`Items::list_items`] returns; every field narrows,
/// `Default` lists all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ItemFilter<'a> {
    pub kind: Option<&'a str>,
    /// Only items not in [`INACTIVE_STATUSES`].
    pub active_only: bool,
    /// Only items of one of these severities.
    pub severities: Option<Vec<&'a str>>,
    pub customer: Option<&'a str>,
    pub asset: Option<&'a str>,
    /// Only items in this status (its name).
    pub status: Option<&'a str>,
    /// Only items with an id below this.
    pub before_id: Option<i64>,
    /// At most this many items; `None`: all.
    pub limit: Option<u32>,
}

/// Active items of one kind on one asset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssetOpenCount {
    pub customer: String,
    pub asset: String,
    pub kind: String,
    pub count: i64,
}

/// Active items of one kind, severity and customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenItemCount {
    pub kind: String,
    pub severity: String,
    pub customer: String,
    pub count: i64,
}

pub(super) const COLUMNS: &str = "id, kind, customer, asset, check_name, component, status, hold_reason, \
    severity, rule, opened_at_ms, updated_at_ms, last_firing_at_ms, cleared_at_ms, resolved_at_ms, \
    occurrences, reopen_count, recurrence_of, promoted_from, flapping, touched_by_person, \
    status_before_recovery, evidence, recent_changes";

pub(super) fn item_from(r: &Row<'_>) -> Result<ItemRow, SqlError> {
    Ok(ItemRow {
        id: r.get(0)?,
        kind: r.get(1)?,
        customer: r.get(2)?,
        asset: r.get(3)?,
        check: r.get(4)?,
        component: r.get(5)?,
        status: r.get(6)?,
        hold_reason: r.get(7)?,
        severity: r.get(8)?,
        rule: r.get(9)?,
        opened_at_ms: r.get(10)?,
        updated_at_ms: r.get(11)?,
        last_firing_at_ms: r.get(12)?,
        cleared_at_ms: r.get(13)?,
        resolved_at_ms: r.get(14)?,
        occurrences: r.get(15)?,
        reopen_count: r.get(16)?,
        recurrence_of: r.get(17)?,
        promoted_from: r.get(18)?,
        flapping: r.get(19)?,
        touched_by_person: r.get(20)?,
        status_before_recovery: r.get(21)?,
        evidence: r.get(22)?,
        recent_changes: r.get(23)?,
    })
}

/// Findings, cases and their log, on any connection or transaction.
pub trait Items: Sql {
    /// Stores a new item; its id.
    fn insert_item(&self, item: &ItemRow) -> Result<i64, SqlError> {
        self.query_one(
            "INSERT INTO items (kind, customer, asset, check_name, component, status, hold_reason, \
             severity, rule, opened_at_ms, updated_at_ms, last_firing_at_ms, cleared_at_ms, \
             resolved_at_ms, occurrences, reopen_count, recurrence_of, promoted_from, flapping, \
             touched_by_person, status_before_recovery, evidence, recent_changes) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, \
             ?19, ?20, ?21, ?22, ?23) RETURNING id",
            args![
                &item.kind,
                &item.customer,
                &item.asset,
                &item.check,
                &item.component,
                &item.status,
                &item.hold_reason,
                &item.severity,
                &item.rule,
                item.opened_at_ms,
                item.updated_at_ms,
                item.last_firing_at_ms,
                item.cleared_at_ms,
                item.resolved_at_ms,
                item.occurrences,
                item.reopen_count,
                item.recurrence_of,
                item.promoted_from,
                item.flapping,
                item.touched_by_person,
                &item.status_before_recovery,
                &item.evidence,
                &item.recent_changes
            ],
            |r| r.get(0),
        )
    }

    /// Writes the changing fields of item `id` (see [`ItemRow`]).
    fn update_item(&self, id: i64, item: &ItemRow) -> Result<(), SqlError> {
        self.execute(
            "UPDATE items SET status = ?2, hold_reason = ?3, severity = ?4, rule = ?5, \
             updated_at_ms = ?6, last_firing_at_ms = ?7, cleared_at_ms = ?8, resolved_at_ms = ?9, \
             occurrences = ?10, reopen_count = ?11, flapping = ?12, touched_by_person = ?13, \
             status_before_recovery = ?14, evidence = ?15, recent_changes = ?16 WHERE id = ?1",
            args![
                id,
                &item.status,
                &item.hold_reason,
                &item.severity,
                &item.rule,
                item.updated_at_ms,
                item.last_firing_at_ms,
                item.cleared_at_ms,
                item.resolved_at_ms,
                item.occurrences,
                item.reopen_count,
                item.flapping,
                item.touched_by_person,
                &item.status_before_recovery,
                &item.evidence,
                &item.recent_changes
            ],
        )?;
        Ok(())
    }

    /// Appends a row to an item's log; its id. When the item is a case the
    /// change also goes to the outbox, in the same statement sequence (the
    /// caller's transaction), so no change of a case misses the sinks.
    fn append_log(&self, entry: &NewLog<'_>) -> Result<i64, SqlError> {
        let log_id: i64 = self.query_one(
            "INSERT INTO item_log (item_id, at_ms, actor, from_status, to_status, comment, visibility) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id",
            args![
                entry.item_id,
                entry.at_ms,
                entry.actor,
                entry.from_status,
                entry.to_status,
                entry.comment,
                entry.visibility
            ],
            |r| r.get(0),
        )?;
        // The sinks read the outbox by id past a cursor, so its ids must be
        // taken in commit order. SQLite has one writer; on PostgreSQL
        // several writers (replicas) run at once, and a lower id committed
        // after a higher one would be passed over: the id is taken under a
        // lock held to the end of the transaction. Only a case's rows go to
        // the outbox, so only they take it: a finding's do not hold up the
        // other writers.
        if self.dialect() == Dialect::Postgres {
            self.query(
                "SELECT pg_advisory_xact_lock(?1) FROM items WHERE id = ?2 AND kind = 'case'",
                args![OUTBOX_ORDER_LOCK, entry.item_id],
                |_| Ok(()),
            )?;
        }
        self.execute(
            "INSERT INTO outbox (item_id, log_id, at_ms) \
             SELECT id, CAST(?2 AS BIGINT), CAST(?3 AS BIGINT) FROM items WHERE id = ?1 AND kind = 'case'",
            args![entry.item_id, log_id, entry.at_ms],
        )?;
        // A case's first response is kept on its queue row (the domain's
        // `queue::first_response_ms`: a person changed the status), so the
        // queue's SLA order need not read the logs. A case without a queue
        // row yet gets it from its log when the row is made.
        if entry.actor.starts_with("person:") && entry.from_status.is_some() {
            self.execute(
                "UPDATE case_meta SET responded_at_ms = ?2 WHERE item_id = ?1 AND responded_at_ms IS NULL",
                args![entry.item_id, entry.at_ms],
            )?;
        }
        // So are the stretches that may have paused an SLA clock.
        let paused = super::queue::pause_bits(entry.to_status);
        if paused != 0 {
            self.execute(
                "UPDATE case_meta SET paused = paused | ?2 WHERE item_id = ?1",
                args![entry.item_id, paused],
            )?;
        }
        Ok(log_id)
    }

    /// Item `id`, if there is one.
    fn load_item(&self, id: i64) -> Result<Option<ItemRow>, SqlError> {
        self.query_opt(
            &format!("SELECT {COLUMNS} FROM items WHERE id = ?1"),
            args![id],
            item_from,
        )
    }

    /// The active item of `key`, if any.
    fn active_item(&self, key: &ItemKey<'_>) -> Result<Option<ItemRow>, SqlError> {
        self.query_opt(
            &format!(
                "SELECT {COLUMNS} FROM items WHERE kind = ?1 AND customer = ?2 AND asset = ?3 \
                 AND check_name = ?4 AND component = ?5 AND status NOT IN {INACTIVE_STATUSES}"
            ),
            args![key.kind, key.customer, key.asset, key.check, key.component],
            item_from,
        )
    }

    /// The keys with an active item on `asset` of `customer`, as (kind,
    /// check, component): one statement for every key a report's signals
    /// name (the index's leading kind is given).
    fn active_keys_on(&self, customer: &str, asset: &str) -> Result<Vec<(String, String, String)>, SqlError> {
        self.query(
            &format!(
                "SELECT kind, check_name, component FROM items WHERE kind IN ('finding', 'case') \
                 AND customer = ?1 AND asset = ?2 AND status NOT IN {INACTIVE_STATUSES}"
            ),
            args![customer, asset],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
    }

    /// The newest ended item of `key` that was not cancelled (resolved,
    /// closed, fixed or verified), by when it ended.
    fn last_ended_item(&self, key: &ItemKey<'_>) -> Result<Option<ItemRow>, SqlError> {
        self.query_opt(
            &format!(
                "SELECT {COLUMNS} FROM items WHERE kind = ?1 AND customer = ?2 AND asset = ?3 \
                 AND check_name = ?4 AND component = ?5 \
                 AND status IN {INACTIVE_STATUSES} AND status <> 'cancelled' \
                 ORDER BY COALESCE(resolved_at_ms, updated_at_ms) DESC, id DESC LIMIT 1"
            ),
            args![key.kind, key.customer, key.asset, key.check, key.component],
            item_from,
        )
    }

    /// Every item's status, hold reason, flapping mark, reopen count and
    /// clear time, by id.
    fn item_glances(&self) -> Result<Vec<ItemGlance>, SqlError> {
        self.query(
            "SELECT id, status, hold_reason, flapping, reopen_count, cleared_at_ms FROM items ORDER BY id",
            args![],
            |r| {
                Ok(ItemGlance {
                    id: r.get(0)?,
                    status: r.get(1)?,
                    hold_reason: r.get(2)?,
                    flapping: r.get(3)?,
                    reopen_count: r.get(4)?,
                    cleared_at_ms: r.get(5)?,
                })
            },
        )
    }

    /// The active items that are recovered or flapping (the ones time may
    /// change), oldest first.
    fn recovered_or_flapping_items(&self) -> Result<Vec<ItemRow>, SqlError> {
        self.query(
            &format!(
                "SELECT {COLUMNS} FROM items WHERE status NOT IN {INACTIVE_STATUSES} \
                 AND (status = 'recovered' OR flapping <> 0) ORDER BY id"
            ),
            args![],
            item_from,
        )
    }

    /// Items matching `filter`, newest first.
    fn list_items(&self, filter: &ItemFilter<'_>) -> Result<Vec<ItemRow>, SqlError> {
        let mut sql = format!(
            "SELECT {COLUMNS} FROM items WHERE (CAST(?1 AS TEXT) IS NULL OR kind = ?1) \
             AND (CAST(?2 AS TEXT) IS NULL OR customer = ?2) AND (CAST(?3 AS TEXT) IS NULL OR asset = ?3) \
             AND (CAST(?4 AS TEXT) IS NULL OR status = ?4) AND (CAST(?5 AS BIGINT) IS NULL OR id < ?5)"
        );
        let mut params: Vec<Value<'_>> = vec![
            filter.kind.into(),
            filter.customer.into(),
            filter.asset.into(),
            filter.status.into(),
            filter.before_id.into(),
        ];
        if filter.active_only {
            sql.push_str(&format!(" AND status NOT IN {INACTIVE_STATUSES}"));
        }
        if let Some(severities) = &filter.severities {
            if severities.is_empty() {
                return Ok(Vec::new());
            }
            let marks: Vec<String> = (0..severities.len())
                .map(|i| format!("?{}", params.len() + i + 1))
                .collect();
            sql.push_str(&format!(" AND severity IN ({})", marks.join(", ")));
            params.extend(severities.iter().map(|s| Value::from(*s)));
        }
        sql.push_str(" ORDER BY id DESC");
        if let Some(limit) = filter.limit {
            sql.push_str(&format!(" LIMIT ?{}", params.len() + 1));
            params.push(limit.into());
        }
        self.query(&sql, &params, item_from)
    }

    /// Item `id`'s log, oldest row first.
    fn item_log(&self, id: i64) -> Result<Vec<LogRow>, SqlError> {
        self.query(
            &format!("SELECT {LOG_COLUMNS} FROM item_log WHERE item_id = ?1 ORDER BY id"),
            args![id],
            log_from,
        )
    }

    /// Those of the items `ids` there are, in no order.
    fn load_items(&self, ids: &[i64]) -> Result<Vec<ItemRow>, SqlError> {
        self.query_ids(
            &format!("SELECT {COLUMNS} FROM items WHERE id IN ({{ids}})"),
            ids,
            item_from,
        )
    }

    /// The logs of the items `ids`, each item's oldest row first.
    fn item_logs(&self, ids: &[i64]) -> Result<Vec<LogRow>, SqlError> {
        self.query_ids(
            &format!("SELECT {LOG_COLUMNS} FROM item_log WHERE item_id IN ({{ids}}) ORDER BY item_id, id"),
            ids,
            log_from,
        )
    }

    /// The active items counted by kind, severity and customer.
    fn open_item_counts(&self) -> Result<Vec<OpenItemCount>, SqlError> {
        self.query(
            &format!(
                "SELECT kind, severity, customer, COUNT(*) FROM items WHERE status NOT IN {INACTIVE_STATUSES} \
                 GROUP BY kind, severity, customer"
            ),
            args![],
            |r| {
                Ok(OpenItemCount {
                    kind: r.get(0)?,
                    severity: r.get(1)?,
                    customer: r.get(2)?,
                    count: r.get(3)?,
                })
            },
        )
    }

    /// The active items counted by customer, asset and kind (the hosts
    /// page's "open cases" and "open findings").
    fn open_items_by_asset(&self) -> Result<Vec<AssetOpenCount>, SqlError> {
        self.query(
            &format!(
                "SELECT customer, asset, kind, COUNT(*) FROM items WHERE status NOT IN {INACTIVE_STATUSES} \
                 GROUP BY customer, asset, kind"
            ),
            args![],
            |r| {
                Ok(AssetOpenCount {
                    customer: r.get(0)?,
                    asset: r.get(1)?,
                    kind: r.get(2)?,
                    count: r.get(3)?,
                })
            },
        )
    }

    /// The newest log row's id (0 for an empty log).
    fn log_high_water(&self) -> Result<i64, SqlError> {
        self.query_one("SELECT COALESCE(MAX(id), 0) FROM item_log", args![], |r| r.get(0))
    }

    /// The (from, to) statuses of the log rows after row `after`, in order.
    fn log_moves_since(&self, after: i64) -> Result<Vec<(Option<String>, String)>, SqlError> {
        self.query(
            "SELECT from_status, to_status FROM item_log WHERE id > ?1 ORDER BY id",
            args![after],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
    }
}

impl<S: Sql + ?Sized> Items for S {}

/// Runs `f` inside a savepoint on `db`: all it writes is kept or none.
/// Works inside the caller's transaction (a savepoint within it) as well as
/// on a connection of its own: SQLite starts a transaction for a savepoint
/// outside one; PostgreSQL refuses a savepoint outside a transaction, and
/// then `f` runs in a transaction of its own.
pub fn atomically<S, T, E>(db: &S, f: impl FnOnce() -> Result<T, E>) -> Result<T, E>
where
    S: Sql + ?Sized,
    E: From<SqlError>,
{
    let (begin, commit, undo) = match db.batch("SAVEPOINT atomically") {
        Ok(()) => (
            None,
            "RELEASE SAVEPOINT atomically",
            "ROLLBACK TO SAVEPOINT atomically; RELEASE SAVEPOINT atomically",
        ),
        Err(e) if outside_transaction(&e) => (Some("BEGIN"), "COMMIT", "ROLLBACK"),
        Err(e) => return Err(e.into()),
    };
    if let Some(begin) = begin {
        db.batch(begin)?;
    }
    match f() {
        Ok(v) => {
            db.batch(commit)?;
            Ok(v)
        }
        Err(e) => {
            // The original error matters more than a failed rollback.
            if let Err(undo_err) = db.batch(undo) {
                tracing::warn!(error = %undo_err, "cannot roll back");
            }
            Err(e)
        }
    }
}

/// PostgreSQL refused a savepoint because no transaction is open.
fn outside_transaction(e: &SqlError) -> bool {
    matches!(e, SqlError::Postgres(p) if p.code() == Some(&postgres::error::SqlState::NO_ACTIVE_SQL_TRANSACTION))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::store::sql::Db;
    use crate::store::testing::{on_both, outbox_rows};

    fn row(kind: &str, check: &str, status: &str, severity: &str, at_ms: i64) -> ItemRow {
        ItemRow {
            id: 0,
            kind: kind.into(),
            customer: "acme".into(),
            asset: "db01".into(),
            check: check.into(),
            component: "/var".into(),
            status: status.into(),
            hold_reason: None,
            severity: severity.into(),
            rule: check.into(),
            opened_at_ms: at_ms,
            updated_at_ms: at_ms,
            last_firing_at_ms: at_ms,
            cleared_at_ms: None,
            resolved_at_ms: None,
            occurrences: 1,
            reopen_count: 0,
            recurrence_of: None,
            promoted_from: None,
            flapping: false,
            touched_by_person: false,
            status_before_recovery: None,
            evidence: r#"{"used_pct":97}"#.into(),
            recent_changes: "[]".into(),
        }
    }

    fn key<'a>(kind: &'a str, check: &'a str) -> ItemKey<'a> {
        ItemKey {
            kind,
            customer: "acme",
            asset: "db01",
            check,
            component: "/var",
        }
    }

    fn open(db: &Db, r: &ItemRow) -> i64 {
        let id = db.insert_item(r).unwrap();
        db.append_log(&NewLog {
            item_id: id,
            at_ms: r.opened_at_ms,
            actor: "rule:fs_full",
            from_status: None,
            to_status: &r.status,
            comment: None,
            visibility: "internal",
        })
        .unwrap();
        id
    }

    #[test]
    fn log_rows_are_internal_unless_written_public() {
        on_both(|db| {
            let case = open(db, &row("case", "fs_full", "new", "warning", 10));
            // A row written as before the column existed counts as internal.
            db.execute(
                "INSERT INTO item_log (item_id, at_ms, actor, from_status, to_status, comment) \
                 VALUES (?1, 20, 'person:bob', 'new', 'new', 'old note')",
                args![case],
            )
            .unwrap();
            let public = NewLog {
                item_id: case,
                at_ms: 30,
                actor: "person:bob",
                from_status: Some("new"),
                to_status: "new",
                comment: Some("we are on it"),
                visibility: "public",
            };
            db.append_log(&public).unwrap();
            let seen: Vec<String> = db.item_log(case).unwrap().into_iter().map(|r| r.visibility).collect();
            assert_eq!(seen, ["internal", "internal", "public"]);
            // Nothing but the two values is kept.
            let bad = NewLog {
                visibility: "secret",
                ..public
            };
            assert!(db.append_log(&bad).is_err());
        });
    }

    #[test]
    fn item_glances_show_every_items_state_by_id() {
        on_both(|db| {
            assert_eq!(db.item_glances().unwrap(), []);
            let first = open(db, &row("finding", "fs_full", "open", "warning", 10));
            let mut held = row("case", "disk_failing", "on_hold", "critical", 20);
            held.hold_reason = Some("awaiting_vendor".into());
            held.flapping = true;
            held.reopen_count = 2;
            held.cleared_at_ms = Some(25);
            let second = open(db, &held);
            assert_eq!(
                db.item_glances().unwrap(),
                [
                    ItemGlance {
                        id: first,
                        status: "open".into(),
                        hold_reason: None,
                        flapping: false,
                        reopen_count: 0,
                        cleared_at_ms: None,
                    },
                    ItemGlance {
                        id: second,
                        status: "on_hold".into(),
                        hold_reason: Some("awaiting_vendor".into()),
                        flapping: true,
                        reopen_count: 2,
                        cleared_at_ms: Some(25),
                    },
                ]
            );
        });
    }

    #[test]
    fn items_open_change_log_and_list_the_same_on_both_backends() {
        on_both(|db| {
            let case = open(db, &row("case", "fs_full", "new", "warning", 10));
            let finding = open(db, &row("finding", "fs_full", "open", "info", 20));
            assert_ne!(case, finding);

            // Loaded as stored, by id and as the active item of its key.
            let mut stored = db.load_item(case).unwrap().unwrap();
            assert_eq!(
                stored,
                ItemRow {
                    id: case,
                    ..row("case", "fs_full", "new", "warning", 10)
                }
            );
            assert_eq!(db.active_item(&key("case", "fs_full")).unwrap(), Some(stored.clone()));
            assert_eq!(db.active_item(&key("case", "raid")).unwrap(), None);
            assert_eq!(db.load_item(999).unwrap(), None);

            // A second active item of the key is refused.
            let err = db
                .insert_item(&row("case", "fs_full", "assigned", "warning", 30))
                .unwrap_err();
            assert!(err.is_unique_violation(), "{err}");

            // An update changes what may change, and flapping makes it due.
            stored.status = "on_hold".into();
            stored.hold_reason = Some("awaiting_vendor".into());
            stored.updated_at_ms = 40;
            stored.occurrences = 3;
            stored.flapping = true;
            stored.touched_by_person = true;
            stored.evidence = r#"{"used_pct":99}"#.into();
            db.update_item(case, &stored).unwrap();
            assert_eq!(db.load_item(case).unwrap(), Some(stored.clone()));
            let due: Vec<i64> = db.recovered_or_flapping_items().unwrap().iter().map(|i| i.id).collect();
            assert_eq!(due, vec![case]);
            let log_id = db
                .append_log(&NewLog {
                    item_id: case,
                    at_ms: 40,
                    actor: "person:bob",
                    from_status: Some("new"),
                    to_status: "on_hold:awaiting_vendor",
                    comment: Some("waiting"),
                    visibility: "public",
                })
                .unwrap();
            let log = db.item_log(case).unwrap();
            assert_eq!(log.len(), 2);
            assert_eq!(
                log[1],
                LogRow {
                    id: log_id,
                    item_id: case,
                    at_ms: 40,
                    actor: "person:bob".into(),
                    from_status: Some("new".into()),
                    to_status: "on_hold:awaiting_vendor".into(),
                    comment: Some("waiting".into()),
                    visibility: "public".into(),
                }
            );
            assert_eq!(log[0].from_status, None);
            assert_eq!(db.log_high_water().unwrap(), log_id);
            assert_eq!(
                db.log_moves_since(db.item_log(finding).unwrap()[0].id).unwrap(),
                vec![(Some("new".into()), "on_hold:awaiting_vendor".into())]
            );

            // Ended: no longer active, and the newest reopenable one.
            stored.status = "resolved".into();
            stored.hold_reason = None;
            stored.resolved_at_ms = Some(50);
            db.update_item(case, &stored).unwrap();
            assert_eq!(db.active_item(&key("case", "fs_full")).unwrap(), None);
            assert_eq!(
                db.last_ended_item(&key("case", "fs_full")).unwrap().map(|i| i.id),
                Some(case)
            );
            let again = open(db, &row("case", "fs_full", "new", "critical", 60));

            // Lists: newest first, narrowed by each field.
            let ids = |f: ItemFilter<'_>| db.list_items(&f).unwrap().iter().map(|i| i.id).collect::<Vec<_>>();
            assert_eq!(ids(ItemFilter::default()), vec![again, finding, case]);
            assert_eq!(
                ids(ItemFilter {
                    active_only: true,
                    ..Default::default()
                }),
                vec![again, finding]
            );
            assert_eq!(
                ids(ItemFilter {
                    kind: Some("case"),
                    ..Default::default()
                }),
                vec![again, case]
            );
            assert_eq!(
                ids(ItemFilter {
                    severities: Some(vec!["warning", "critical"]),
                    ..Default::default()
                }),
                vec![again, case]
            );
            assert_eq!(
                ids(ItemFilter {
                    severities: Some(vec![]),
                    ..Default::default()
                }),
                Vec::<i64>::new()
            );
            assert_eq!(
                ids(ItemFilter {
                    status: Some("open"),
                    customer: Some("acme"),
                    asset: Some("db01"),
                    ..Default::default()
                }),
                vec![finding]
            );
            assert_eq!(
                ids(ItemFilter {
                    asset: Some("db02"),
                    ..Default::default()
                }),
                Vec::<i64>::new()
            );
            assert_eq!(
                ids(ItemFilter {
                    before_id: Some(again),
                    limit: Some(1),
                    ..Default::default()
                }),
                vec![finding]
            );

            let mut counts = db.open_item_counts().unwrap();
            counts.sort_by(|a, b| a.kind.cmp(&b.kind));
            assert_eq!(
                counts,
                vec![
                    OpenItemCount {
                        kind: "case".into(),
                        severity: "critical".into(),
                        customer: "acme".into(),
                        count: 1
                    },
                    OpenItemCount {
                        kind: "finding".into(),
                        severity: "info".into(),
                        customer: "acme".into(),
                        count: 1
                    },
                ]
            );
            let mut by_asset = db.open_items_by_asset().unwrap();
            by_asset.sort_by(|a, b| a.kind.cmp(&b.kind));
            let by_asset: Vec<(String, String, String, i64)> = by_asset
                .into_iter()
                .map(|c| (c.customer, c.asset, c.kind, c.count))
                .collect();
            assert_eq!(
                by_asset,
                vec![
                    ("acme".into(), "db01".into(), "case".into(), 1),
                    ("acme".into(), "db01".into(), "finding".into(), 1),
                ]
            );

            // Every log row of a case reached the outbox; the finding's did not.
            let outbox: Vec<i64> = outbox_rows(db).iter().map(|o| o.0).collect();
            assert_eq!(outbox, vec![case, case, again]);
        });
    }

    #[test]
    fn atomically_keeps_all_or_nothing_inside_and_outside_a_transaction() {
        on_both(|db| {
            let fail = |db: &dyn Sql| {
                atomically(db, || -> Result<(), SqlError> {
                    open_dyn(db, "first");
                    Err(SqlError::NoRow)
                })
            };
            // On its own connection.
            assert!(fail(db).is_err());
            assert!(db.list_items(&ItemFilter::default()).unwrap().is_empty());
            atomically(db, || -> Result<(), SqlError> {
                open_dyn(db, "kept");
                Ok(())
            })
            .unwrap();
            // Inside the caller's transaction: undone alone, then all of it
            // with the transaction.
            {
                let tx = db.transaction().unwrap();
                assert!(fail(&tx).is_err());
                atomically(&tx, || -> Result<(), SqlError> {
                    open_dyn(&tx, "inside");
                    Ok(())
                })
                .unwrap();
                assert_eq!(tx.list_items(&ItemFilter::default()).unwrap().len(), 2);
            }
            let checks: Vec<String> = db
                .list_items(&ItemFilter::default())
                .unwrap()
                .into_iter()
                .map(|i| i.check)
                .collect();
            assert_eq!(checks, vec!["kept"]);
        });
    }

    fn open_dyn(db: &dyn Sql, check: &str) {
        let id = db.insert_item(&row("case", check, "new", "warning", 1)).unwrap();
        db.append_log(&NewLog {
            item_id: id,
            at_ms: 1,
            actor: "rule:t",
            from_status: None,
            to_status: "new",
            comment: None,
            visibility: "internal",
        })
        .unwrap();
    }
}
