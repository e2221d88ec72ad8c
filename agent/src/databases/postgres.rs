//! PostgreSQL health: one short session per poll that reads the server's own
//! statistics views (`pg_stat_activity`, `pg_stat_database`,
//! `pg_stat_replication`, `pg_stat_archiver`, `pg_stat_bgwriter` or
//! `pg_stat_checkpointer`) and turns them into samples.
//!
//! What is measured is what pages someone at night: a server out of
//! connections, a transaction held open for hours (it blocks vacuum and holds
//! locks), transaction ID wraparound creeping up, a replica falling behind,
//! WAL archiving failing, deadlocks. The queries only read catalogue views and
//! work on PostgreSQL 12 to 17; a monitoring role with `pg_monitor` sees
//! everything, a plain role sees its own sessions only.
//!
//! The session is opened fresh each poll rather than kept: a poll every 30 s
//! costs one login, and a fresh session cannot be left in a broken state by
//! a server restart or a failover.

use std::path::{Path, PathBuf};

use tokio_postgres::types::FromSql;
use tokio_postgres::{Client, NoTls, Row};

use super::{DbError, DbTarget, Secret, within};
use crate::collectors::{Samples, host_label};

/// The `kind` label of every sample.
const KIND: &str = "postgresql";

/// Default user and database: the ones every cluster has.
const DEFAULT_USER: &str = "postgres";
const DEFAULT_DATABASE: &str = "postgres";
const DEFAULT_PORT: u16 = 5432;

/// The states `pg_stat_replication.state` can take; the replica state set
/// carries all of them so a state change shows as 1 → 0, not as a vanished series.
const REPLICA_STATES: &[&str] = &["startup", "catchup", "streaming", "backup", "stopping"];

/// First version with `pg_stat_checkpointer` (the checkpoint counters left
/// `pg_stat_bgwriter` then).
const PG17: i32 = 170_000;

/// Polls one PostgreSQL server: logs in, reads its statistics, logs out.
pub async fn poll(t: &DbTarget, password: Option<&Secret>, out: &mut Samples) -> Result<(), DbError> {
    let config = config(t, password)?;
    let (client, connection) = within(t.connect_timeout(), "connecting and logging in", async {
        config
            .connect(NoTls)
            .await
            .map_err(|e| classify(&e, password.is_some()))
    })
    .await?;
    // The connection future does the socket I/O; it ends when `client` is dropped
    // at the end of this poll (or on a timeout), so the task never outlives it.
    let db = t.name.clone();
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(db = %db, error = %e, "postgres connection ended with an error");
        }
    });
    within(t.query_timeout(), "queries", read_all(&client, t, out)).await
}

/// The connection settings of `t`. The password goes into the config only,
/// never into a string that could end up in a message.
fn config(t: &DbTarget, password: Option<&Secret>) -> Result<tokio_postgres::Config, DbError> {
    let mut c = tokio_postgres::Config::new();
    match t.host_port() {
        Some((host, port)) => {
            c.host(&host).port(port);
        }
        None if t.address.starts_with('/') => {
            let (dir, port) = socket_dir_and_port(Path::new(&t.address));
            c.host_path(dir).port(port);
        }
        None => {
            return Err(DbError::Config(format!(
                "address {:?} is neither HOST:PORT nor a socket path",
                t.address
            )));
        }
    }
    c.user(t.user.as_deref().unwrap_or(DEFAULT_USER))
        .dbname(t.database.as_deref().unwrap_or(DEFAULT_DATABASE))
        // Lets the DBA see who holds the session in pg_stat_activity.
        .application_name("caretaker-agent");
    if let Some(p) = password {
        c.password(p.expose());
    }
    Ok(c)
}

/// PostgreSQL's clients take the socket's directory and derive the file name
/// from the port (`/run/postgresql/.s.PGSQL.5432`). The config may name
/// either the socket file itself or its directory.
fn socket_dir_and_port(path: &Path) -> (PathBuf, u16) {
    let port = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix(".s.PGSQL."))
        .and_then(|p| p.parse().ok());
    match (port, path.parent()) {
        (Some(port), Some(dir)) => (dir.to_path_buf(), port),
        _ => (path.to_path_buf(), DEFAULT_PORT),
    }
}

/// Sorts a client error into the error classes. Messages come from the server
/// or the socket layer; neither ever repeats the password.
fn classify(e: &tokio_postgres::Error, have_password: bool) -> DbError {
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        let text = format!("{} (SQLSTATE {code})", db.message());
        // Class 28: invalid_authorization_specification (unknown role, no
        // pg_hba.conf entry) and invalid_password.
        return if code.starts_with("28") {
            DbError::AuthFailed(text)
        } else {
            DbError::Query(text)
        };
    }
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return DbError::from_io(io);
        }
        source = s.source();
    }
    let text = e.to_string();
    // tokio-postgres keeps its error kinds private; these two texts are how it
    // says the server wanted a password we do not have, or the SASL exchange failed.
    if text.starts_with("authentication error") || (!have_password && text.contains("password missing")) {
        return DbError::AuthFailed(text);
    }
    if e.is_closed() {
        return DbError::Protocol(format!("server closed the connection: {text}"));
    }
    DbError::Protocol(text)
}

/// Column `i` of `row`, without the panic `Row::get` has on a type mismatch.
fn col<'a, T: FromSql<'a>>(row: &'a Row, i: usize) -> Result<T, DbError> {
    row.try_get(i)
        .map_err(|e| DbError::Protocol(format!("column {i}: {e}")))
}

async fn query(client: &Client, sql: &str) -> Result<Vec<Row>, DbError> {
    client.query(sql, &[]).await.map_err(|e| classify(&e, true))
}

async fn query_one(client: &Client, sql: &str) -> Result<Row, DbError> {
    client.query_one(sql, &[]).await.map_err(|e| classify(&e, true))
}

/// Every query of one poll. Numbers are cast to `float8` in SQL so each column
/// has one Rust type whatever the server's (`bigint`, `numeric`, `xid` ages).
async fn read_all(client: &Client, t: &DbTarget, out: &mut Samples) -> Result<(), DbError> {
    let db = t.name.as_str();
    let l = [("db", db), ("kind", KIND)];

    // Should the agent give up on a query, the server stops it too instead of
    // running it to the end for nobody.
    client
        .batch_execute(&format!("SET statement_timeout = {}", t.query_timeout_ms))
        .await
        .map_err(|e| classify(&e, true))?;

    let row = query_one(
        client,
        "SELECT current_setting('server_version'),
                current_setting('server_version_num')::int4,
                extract(epoch FROM now() - pg_postmaster_start_time())::float8,
                current_setting('max_connections')::float8,
                (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::float8,
                pg_is_in_recovery()",
    )
    .await?;
    let version: String = col(&row, 0)?;
    let version_num: i32 = col(&row, 1)?;
    let in_recovery: bool = col(&row, 5)?;
    out.push(
        "caretaker_db_info",
        &[("db", db), ("kind", KIND), ("version", &host_label(&version))],
        1.0,
    );
    out.push("caretaker_db_uptime_seconds", &l, col(&row, 2)?);
    out.push("caretaker_db_max_connections", &l, col(&row, 3)?);
    out.push("caretaker_db_connections", &l, col(&row, 4)?);

    databases(client, db, out).await?;

    // Only client sessions: autovacuum workers also have a transaction open,
    // and a long anti-wraparound vacuum is not the stuck application
    // transaction this is meant to catch.
    let row = query_one(
        client,
        "SELECT coalesce(max(extract(epoch FROM now() - xact_start)), 0)::float8,
                coalesce(max(extract(epoch FROM now() - state_change))
                         FILTER (WHERE state = 'idle in transaction'), 0)::float8
           FROM pg_stat_activity
          WHERE backend_type = 'client backend'
            AND xact_start IS NOT NULL
            AND pid <> pg_backend_pid()",
    )
    .await?;
    out.push("caretaker_pg_oldest_transaction_seconds", &l, col(&row, 0)?);
    out.push("caretaker_pg_oldest_idle_in_transaction_seconds", &l, col(&row, 1)?);

    replication(client, db, in_recovery, out).await?;

    let row = query_one(
        client,
        if version_num >= PG17 {
            "SELECT (SELECT failed_count FROM pg_stat_archiver)::float8,
                    num_requested::float8, num_timed::float8
               FROM pg_stat_checkpointer"
        } else {
            "SELECT (SELECT failed_count FROM pg_stat_archiver)::float8,
                    checkpoints_req::float8, checkpoints_timed::float8
               FROM pg_stat_bgwriter"
        },
    )
    .await?;
    out.push("caretaker_pg_wal_archive_failures", &l, col(&row, 0)?);
    for (i, reason) in [(1, "requested"), (2, "timed")] {
        out.push(
            "caretaker_pg_checkpoints",
            &[("db", db), ("kind", KIND), ("reason", reason)],
            col(&row, i)?,
        );
    }
    Ok(())
}

/// Per-database size, transaction counters, deadlocks, cache hit ratio and
/// transaction ID age, plus the oldest age over all databases.
async fn databases(client: &Client, db: &str, out: &mut Samples) -> Result<(), DbError> {
    // pg_database_size needs CONNECT on the database (or pg_read_all_stats);
    // without it the size is skipped rather than failing the whole poll.
    // Templates are left out of the per-database series (nobody writes to
    // them) but still count for the wraparound maximum: template0 ages too.
    // datconnlimit -2 marks a database half-dropped by an interrupted DROP DATABASE.
    let rows = query(
        client,
        "SELECT d.datname::text,
                CASE WHEN has_database_privilege(d.oid, 'CONNECT')
                       OR pg_has_role('pg_read_all_stats', 'MEMBER')
                     THEN pg_database_size(d.oid)::float8 END,
                s.xact_commit::float8, s.xact_rollback::float8, s.deadlocks::float8,
                s.blks_hit::float8, s.blks_read::float8,
                age(d.datfrozenxid)::float8,
                d.datistemplate
           FROM pg_database d
           LEFT JOIN pg_stat_database s ON s.datid = d.oid
          WHERE d.datconnlimit <> -2
          ORDER BY d.datname",
    )
    .await?;
    let mut max_age: f64 = 0.0;
    for row in &rows {
        let age: f64 = col(row, 7)?;
        max_age = max_age.max(age);
        let template: bool = col(row, 8)?;
        if template {
            continue;
        }
        let name = host_label(&col::<String>(row, 0)?);
        let l = [("db", db), ("kind", KIND), ("database", name.as_str())];
        if let Some(size) = col::<Option<f64>>(row, 1)? {
            out.push("caretaker_pg_database_size_bytes", &l, size);
        }
        for (i, metric) in [
            (2, "caretaker_pg_commits"),
            (3, "caretaker_pg_rollbacks"),
            (4, "caretaker_pg_deadlocks"),
        ] {
            if let Some(v) = col::<Option<f64>>(row, i)? {
                out.push(metric, &l, v);
            }
        }
        let hit: Option<f64> = col(row, 5)?;
        let read: Option<f64> = col(row, 6)?;
        // No block touched yet (fresh statistics): no ratio rather than 0/0.
        if let (Some(hit), Some(read)) = (hit, read)
            && hit + read > 0.0
        {
            out.push("caretaker_pg_cache_hit_ratio", &l, hit / (hit + read));
        }
        out.push("caretaker_pg_database_frozen_xid_age", &l, age);
    }
    out.push("caretaker_pg_frozen_xid_age", &[("db", db), ("kind", KIND)], max_age);
    Ok(())
}

/// The server's role, and the replicas a primary streams to or the replay
/// lag of a standby.
async fn replication(client: &Client, db: &str, in_recovery: bool, out: &mut Samples) -> Result<(), DbError> {
    let l = [("db", db), ("kind", KIND)];
    for (role, current) in [("primary", !in_recovery), ("standby", in_recovery)] {
        out.push(
            "caretaker_pg_replication_role",
            &[("db", db), ("kind", KIND), ("role", role)],
            if current { 1.0 } else { 0.0 },
        );
    }
    if in_recovery {
        // Time since the last replayed commit. On a standby of an idle primary
        // this grows although nothing is missing; alert on it together with
        // the primary's write activity.
        let row = query_one(
            client,
            "SELECT extract(epoch FROM now() - pg_last_xact_replay_timestamp())::float8",
        )
        .await?;
        if let Some(lag) = col::<Option<f64>>(&row, 0)? {
            out.push("caretaker_pg_standby_replay_lag_seconds", &l, lag.max(0.0));
        }
        return Ok(());
    }
    // One row per WAL sender. The replica is named by its application_name and
    // address: standbys often all keep the default name `walreceiver`.
    // replay_lag turns NULL once a standby has caught up and the primary is
    // idle, so a streaming replica with no lag figure is 0 s behind.
    let rows = query(
        client,
        "SELECT concat_ws('@', nullif(application_name, ''), host(client_addr)),
                state,
                CASE WHEN replay_lag IS NOT NULL THEN extract(epoch FROM replay_lag)::float8
                     WHEN state = 'streaming' THEN 0::float8 END,
                pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::float8
           FROM pg_stat_replication
          ORDER BY 1",
    )
    .await?;
    out.push("caretaker_pg_replicas", &l, rows.len() as f64);
    for row in &rows {
        let replica: Option<String> = col(row, 0)?;
        let replica = match replica.as_deref().map(host_label) {
            Some(r) if !r.is_empty() => r,
            // A local standby over the Unix socket, with no name set.
            _ => "local".to_string(),
        };
        let state: Option<String> = col(row, 1)?;
        for s in REPLICA_STATES {
            out.push(
                "caretaker_pg_replica_state",
                &[("db", db), ("kind", KIND), ("replica", &replica), ("state", s)],
                if state.as_deref() == Some(*s) { 1.0 } else { 0.0 },
            );
        }
        let rl = [("db", db), ("kind", KIND), ("replica", replica.as_str())];
        if let Some(secs) = col::<Option<f64>>(row, 2)? {
            out.push("caretaker_pg_replica_replay_lag_seconds", &rl, secs);
        }
        if let Some(bytes) = col::<Option<f64>>(row, 3)? {
            out.push("caretaker_pg_replica_lag_bytes", &rl, bytes.max(0.0));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::databases::DbKind;

    #[test]
    fn socket_paths_name_the_file_or_the_directory() {
        assert_eq!(
            socket_dir_and_port(Path::new("/run/postgresql/.s.PGSQL.5433")),
            (PathBuf::from("/run/postgresql"), 5433)
        );
        assert_eq!(
            socket_dir_and_port(Path::new("/run/postgresql")),
            (PathBuf::from("/run/postgresql"), 5432)
        );
    }

    #[test]
    fn config_carries_user_database_and_password_defaults() {
        let t = DbTarget::new("pg", DbKind::Postgresql, "127.0.0.1:5433");
        let c = config(&t, Some(&Secret::new("hunter2"))).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.get_user(), Some("postgres"));
        assert_eq!(c.get_dbname(), Some("postgres"));
        assert_eq!(c.get_ports(), &[5433]);
        assert_eq!(c.get_password(), Some(&b"hunter2"[..]));
        let bad = DbTarget::new("pg", DbKind::Postgresql, "localhost");
        assert_eq!(config(&bad, None).err().map(|e| e.class()), Some("config"));
    }
}
