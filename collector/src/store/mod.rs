//! The SQLite store: the collector's record of agents, their newest reports,
//! the report log, events, inventory versions and the dated changes between
//! them (the asset archive). One file in the data
//! directory, WAL mode, migrations in code.
//!
//! This module owns the tables and knows no domain module: its operations
//! take and return its own row types. All writes go through the writer
//! (the `writer` module), which runs the domain's jobs in its transactions.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use rusqlite_migration::{M, Migrations};

use crate::config::Synchronous;

pub mod agents;
pub mod assets;
pub mod backup;
pub mod disks;
pub mod holds;
pub mod inspection;
pub mod inspection_reports;
pub mod items;
pub mod leases;
pub mod migrate;
pub mod outbox;
pub mod place;
pub mod postgres;
pub mod queue;
mod readers;
pub mod recommendations;
pub mod reports;
pub mod retired;
pub mod sessions;
pub mod spares;
pub mod sql;
#[cfg(test)]
pub mod testing;
pub use assets::{AssetChange, Assets};
pub use readers::{Lease, Readers, read_on};
pub use reports::{LogEntry, RawReport, Reports};

pub mod checkpoints;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("database: {0}")]
    Db(#[from] sql::SqlError),
    #[error("database migration: {0}")]
    Migration(#[from] rusqlite_migration::Error),
    #[error("stored report of agent {agent_id} cannot be read: {reason}")]
    Corrupt { agent_id: String, reason: String },
    #[error("the store writer has stopped")]
    WriterGone,
    #[error("agent {0} is not enrolled")]
    UnknownAgent(String),
    #[error("transaction failed: {0}")]
    Transaction(String),
    #[error("stored item {id} cannot be read: {reason}")]
    CorruptItem { id: i64, reason: String },
    #[error("no item {0}")]
    NoSuchItem(i64),
    #[error("{key} already has an active item ({id})")]
    ActiveItemExists { key: String, id: i64 },
    /// A move the item's lifecycle does not allow, in the lifecycle's words.
    #[error("{0}")]
    Lifecycle(String),
    #[error("held signal {0} is not on the unmapped list")]
    NotUnmapped(i64),
    #[error("no known asset named {0:?}")]
    UnknownAsset(String),
    #[error("to: {0:?} is not an engineer in the contracts file")]
    UnknownEngineer(String),
    #[error("maintenance window: {0}")]
    BadWindow(String),
    #[error("no maintenance window {0}")]
    NoSuchWindow(i64),
    #[error("maintenance window {0} has already ended")]
    WindowEnded(i64),
    #[error("spare parts: {0}")]
    Spares(String),
    #[error("spare parts: no spare model {0:?}; add it first")]
    NoSuchSpareModel(String),
    #[error("no recommendation {0}")]
    NoSuchRecommendation(i64),
    #[error(transparent)]
    Recommendation(#[from] recommendations::TransitionError),
    /// A queue request the case's state does not allow (resolving without a
    /// service report, closing without a satisfaction record...).
    #[error("{0}")]
    Queue(String),
    /// A queue request with bad input, naming the field.
    #[error("{0}")]
    QueueInput(String),
    /// A queue request the requester may not make (a customer's user
    /// asking for a staff action), naming the field.
    #[error("{0}")]
    QueueForbidden(String),
    #[error("the store has no {0} table: run `caretaker-collector serve` of this version once to upgrade it")]
    Outdated(&'static str),
    /// The store cannot write now (disk full, I/O error, read-only, locked
    /// by another process): nothing of the batch was applied; a retry later
    /// may succeed.
    #[error("the store cannot write: {0}")]
    Unwritable(String),
    #[error("no enrollment token {0:?}")]
    NoSuchToken(String),
    #[error("no agent {0:?}")]
    NoSuchAgent(String),
    /// Enrollment with a token that is unknown, revoked, expired or used up.
    #[error("{0}")]
    TokenRefused(String),
    /// A report or an enrollment claiming another identity than the agent's.
    #[error(transparent)]
    Identity(#[from] agents::Mismatch),
    #[error("host name {host:?} is held by agent {agent_id}; revoke or decommission it first")]
    HostTaken { host: String, agent_id: String },
    #[error("agent {0}'s credential was revoked by the operator; enroll the host again")]
    Revoked(String),
    /// A credential the agent no longer has: replaced by a rotated one.
    #[error("the credential of agent {0} was replaced by a rotated one")]
    StaleCredential(String),
}

/// Whose fault a failed store operation is: the one classification that both
/// the writer's log line and the API's answer follow, so a caller's mistake
/// is never logged as our failure nor answered as one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The request names something that is not there.
    NotFound,
    /// The request's input is wrong (the message names the field).
    BadInput,
    /// A valid request the current state does not allow.
    Conflict,
    /// The caller is not (or no longer) who it says: an unknown, revoked or
    /// replaced credential or enrollment token.
    Unauthorized,
    /// Known, but claiming what is not its own (another host or customer).
    Forbidden,
    /// Ours: the database, a corrupt row, the writer gone.
    Internal,
    /// Ours and passing: the store cannot write now (disk full, I/O error,
    /// the writer stopping); the caller should retry later.
    Unavailable,
}

impl ErrorClass {
    /// The caller's mistake, not ours.
    pub fn is_client(self) -> bool {
        !matches!(self, ErrorClass::Internal | ErrorClass::Unavailable)
    }
}

impl StoreError {
    /// Whose fault this is. Exhaustive on purpose: a new variant must be
    /// classified.
    pub fn class(&self) -> ErrorClass {
        use recommendations::TransitionError;
        match self {
            StoreError::NoSuchItem(_)
            | StoreError::NoSuchWindow(_)
            | StoreError::NoSuchRecommendation(_)
            | StoreError::UnknownAsset(_)
            | StoreError::UnknownEngineer(_)
            | StoreError::NotUnmapped(_)
            | StoreError::NoSuchSpareModel(_)
            | StoreError::NoSuchToken(_)
            | StoreError::NoSuchAgent(_) => ErrorClass::NotFound,
            StoreError::UnknownAgent(_)
            | StoreError::TokenRefused(_)
            | StoreError::Revoked(_)
            | StoreError::StaleCredential(_) => ErrorClass::Unauthorized,
            StoreError::Identity(_) | StoreError::QueueForbidden(_) => ErrorClass::Forbidden,
            StoreError::HostTaken { .. } => ErrorClass::Conflict,
            StoreError::BadWindow(_)
            | StoreError::Spares(_)
            | StoreError::QueueInput(_)
            | StoreError::Recommendation(TransitionError::ReasonRequired) => ErrorClass::BadInput,
            StoreError::Lifecycle(_)
            | StoreError::WindowEnded(_)
            | StoreError::ActiveItemExists { .. }
            | StoreError::Queue(_)
            | StoreError::Recommendation(TransitionError::Invalid { .. }) => ErrorClass::Conflict,
            StoreError::Sql(e) if sql::sqlite_cannot_write(e) => ErrorClass::Unavailable,
            StoreError::Db(e) if e.unavailable() => ErrorClass::Unavailable,
            StoreError::WriterGone | StoreError::Unwritable(_) => ErrorClass::Unavailable,
            StoreError::Sql(_)
            | StoreError::Db(_)
            | StoreError::Migration(_)
            | StoreError::Corrupt { .. }
            | StoreError::Transaction(_)
            | StoreError::CorruptItem { .. }
            | StoreError::Outdated(_) => ErrorClass::Internal,
        }
    }
}

pub(crate) fn migrations() -> Migrations<'static> {
    Migrations::new(vec![
        M::up(
            r#"
CREATE TABLE enrollment_tokens (
    token_hash TEXT PRIMARY KEY,
    created_at_ms INTEGER NOT NULL
);
CREATE TABLE api_tokens (
    token_hash TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL
);
CREATE TABLE agents (
    agent_id TEXT PRIMARY KEY,
    credential_hash TEXT NOT NULL UNIQUE,
    host TEXT NOT NULL,
    enrolled_at_ms INTEGER NOT NULL,
    labels TEXT NOT NULL DEFAULT '{}',
    interval_secs INTEGER NOT NULL DEFAULT 0,
    last_seq INTEGER NOT NULL DEFAULT 0,
    reports_applied INTEGER NOT NULL DEFAULT 0,
    seq_gaps INTEGER NOT NULL DEFAULT 0,
    last_seen_ms INTEGER,
    last_collected_at_ms INTEGER
);
-- The newest report of each agent, as received (possibly gzip), so a restart
-- rebuilds the latest samples exactly.
CREATE TABLE host_latest (
    agent_id TEXT PRIMARY KEY REFERENCES agents(agent_id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    encoding TEXT NOT NULL CHECK (encoding IN ('identity', 'gzip')),
    body BLOB NOT NULL
);
CREATE TABLE report_log (
    agent_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    collected_at_ms INTEGER NOT NULL,
    received_at_ms INTEGER NOT NULL,
    samples INTEGER NOT NULL,
    PRIMARY KEY (agent_id, seq)
) WITHOUT ROWID;
CREATE INDEX report_log_received ON report_log(received_at_ms);
CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    agent_id TEXT NOT NULL REFERENCES agents(agent_id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    at_ms INTEGER NOT NULL,
    kind TEXT NOT NULL,
    severity TEXT NOT NULL,
    message TEXT NOT NULL,
    labels TEXT NOT NULL
);
CREATE INDEX events_agent_time ON events(agent_id, at_ms);
CREATE TABLE inventory (
    agent_id TEXT NOT NULL REFERENCES agents(agent_id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    collected_at_ms INTEGER NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (agent_id, seq)
);
"#,
        ),
        M::up(disks::MIGRATION),
        // The asset archive: what changed between two inventory versions.
        M::up(assets::CHANGES_MIGRATION),
        // Findings and cases with their append-only log.
        M::up(items::MIGRATION),
        // Raw reports as received, kept for `export-reports`.
        M::up(reports::RAW_REPORTS_MIGRATION),
        // Held signals: unmapped, in a maintenance window, attached to a storm.
        M::up(holds::MIGRATION),
        // Spare parts, reservations, replenishment and service reports.
        M::up(spares::MIGRATION),
        // Part replacement recommendations.
        M::up(recommendations::MIGRATION),
        // Inspection reports as generated.
        M::up(inspection_reports::MIGRATION),
        M::up(queue::MIGRATION),
        // Parts a service report replaced or the inventory lost.
        M::up(retired::MIGRATION),
        // One row `/healthz` rewrites to learn whether the store can write again.
        M::up(PROBE_MIGRATION),
        // Web sessions (by the hash of their id), so a restart logs nobody out.
        M::up(sessions::MIGRATION),
        // Agent identity fixed at enrollment; tokens per customer; revocation and rotation.
        M::up(agents::MIGRATION),
        // BMC and RAID parts: recommendation part types for cache backup
        // units and controllers; spare models that fit by controller model.
        M::up(recommendations::MIGRATION_HARDWARE_PARTS),
        M::up(spares::MIGRATION_CONTROLLER_FITS),
        // Each host's detection state, so a restart keeps its windows.
        M::up(checkpoints::MIGRATION),
        // The outbox row of a case's change is written with its log row in
        // code (`items::Items::append_log`), on every backend: the trigger
        // that wrote it on SQLite goes.
        M::up(items::MIGRATION_OUTBOX_IN_CODE),
        // Leases and the replica register: replicas sharing a store divide the work.
        M::up(leases::MIGRATION),
        // Comments are internal (staff only) or public (the customer's too).
        M::up(items::MIGRATION_LOG_VISIBILITY),
        // A case's first response and pauses on its queue row.
        M::up(queue::MIGRATION_FROM_LOGS),
    ])
}

/// Opens (creating and migrating) the store.
pub fn open(path: &Path, synchronous: Synchronous) -> Result<Connection, StoreError> {
    let mut conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(
        None,
        "synchronous",
        match synchronous {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        },
    )?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    unicode_lower(&conn)?;
    migrations().to_latest(&mut conn)?;
    Ok(conn)
}

/// Makes SQL `lower()` lower every letter, as PostgreSQL's does, not only
/// A to Z (SQLite's own): a search for "überhitzung" finds "Überhitzung".
/// ASCII text takes the short way. No index is built on `lower()`, so
/// replacing it changes no stored order.
pub(crate) fn unicode_lower(conn: &Connection) -> Result<(), rusqlite::Error> {
    use rusqlite::functions::FunctionFlags;
    use rusqlite::types::ValueRef;
    conn.create_scalar_function(
        "lower",
        1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let text = match ctx.get_raw(0) {
                ValueRef::Null => return Ok(None),
                ValueRef::Text(t) | ValueRef::Blob(t) => String::from_utf8_lossy(t).into_owned(),
                ValueRef::Integer(n) => n.to_string(),
                ValueRef::Real(x) => x.to_string(),
            };
            Ok(Some(if text.is_ascii() {
                text.to_ascii_lowercase()
            } else {
                text.to_lowercase()
            }))
        },
    )
}

/// A migrated store in memory, for replays and tests: nothing outlives the
/// connection, so the same input always starts from the same empty state.
pub fn open_in_memory() -> Result<Connection, StoreError> {
    let mut conn = Connection::open_in_memory()?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    unicode_lower(&conn)?;
    migrations().to_latest(&mut conn)?;
    Ok(conn)
}

/// Opens an existing store read-only, without migrating it: for tools that
/// run beside `serve`. WAL mode lets this reader see every committed report
/// while the writer carries on.
pub fn open_read_only(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    unicode_lower(&conn)?;
    Ok(conn)
}

/// The row the writer's probe writes.
const PROBE_MIGRATION: &str =
    "CREATE TABLE store_probe (id INTEGER PRIMARY KEY CHECK (id = 1), at_ms INTEGER NOT NULL);";

/// Writes the one probe row: whether the store can write now.
pub fn write_probe(db: &(impl sql::Sql + ?Sized), at_ms: i64) -> Result<(), sql::SqlError> {
    db.execute(
        "INSERT INTO store_probe(id, at_ms) VALUES (1, ?1) ON CONFLICT(id) DO UPDATE SET at_ms = excluded.at_ms",
        sql::args![at_ms],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_valid() {
        assert!(migrations().validate().is_ok());
    }

    #[test]
    fn the_hardware_parts_migration_keeps_recommendations_and_spare_models() {
        let mut conn = Connection::open_in_memory().unwrap_or_else(|e| panic!("{e}"));
        let all = migrations();
        // Every migration but the two hardware ones, then a row in each table.
        let before = 14;
        all.to_version(&mut conn, before).unwrap_or_else(|e| panic!("{e}"));
        conn.execute_batch(
            "INSERT INTO recommendations (agent_id, host, customer, part_type, part_key, reason, evidence, risk, \
             urgency, status, created_at_ms, updated_at_ms) VALUES ('a', 'h', 'c', 'psu', 'h/psu/PS1', 'r', '{}', \
             'high', 'within_days', 'open', 1, 1);
             INSERT INTO spare_models (model, part_type) VALUES ('0PJMDN', 'psu');",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let refused = conn.execute(
            "INSERT INTO recommendations (agent_id, host, customer, part_type, part_key, reason, evidence, risk, \
             urgency, status, created_at_ms, updated_at_ms) VALUES ('a', 'h', 'c', 'bbu', 'h/bbu/c0', 'r', '{}', \
             'high', 'within_days', 'open', 1, 1)",
            [],
        );
        assert!(refused.is_err(), "the old schema knows no bbu");
        all.to_latest(&mut conn).unwrap_or_else(|e| panic!("{e}"));
        let n: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM recommendations WHERE part_key = 'h/psu/PS1'",
                [],
                |r| r.get(0),
            )
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(n, 1);
        conn.execute(
            "INSERT INTO recommendations (agent_id, host, customer, part_type, part_key, reason, evidence, risk, \
             urgency, status, created_at_ms, updated_at_ms) VALUES ('a', 'h', 'c', 'bbu', 'h/bbu/c0', 'r', '{}', \
             'high', 'within_days', 'open', 1, 1)",
            [],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        // Still one active recommendation per part.
        assert!(
            conn.execute(
                "INSERT INTO recommendations (agent_id, host, customer, part_type, part_key, reason, evidence, risk, \
                 urgency, status, created_at_ms, updated_at_ms) VALUES ('a', 'h', 'c', 'bbu', 'h/bbu/c0', 'r', '{}', \
                 'high', 'within_days', 'open', 1, 1)",
                [],
            )
            .is_err()
        );
        let models = spares::SpareStock::spare_models(&conn).unwrap_or_else(|e| panic!("{e}"));
        let fits: Vec<String> =
            serde_json::from_str(&models[0].fits_controller_models).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(fits, Vec::<String>::new());
    }
}
