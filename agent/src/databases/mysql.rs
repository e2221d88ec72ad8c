//! MariaDB and MySQL health, polled over one short session: version, uptime,
//! connections against their limit, aborted connects, slow queries, running
//! threads, the InnoDB buffer pool hit ratio, deadlocks, the age of the oldest
//! open transaction, and the state of replication.
//!
//! The session is opened per poll rather than kept: a poll every 30 s costs
//! one connection, and a server restart or a changed password shows up at the
//! next poll instead of hiding behind a stale session. Only the text protocol
//! is used (no prepared statements), so the poll leaves nothing behind on the
//! server.
//!
//! What needs more than `USAGE` (`PROCESS` for the InnoDB tables, `REPLICATION
//! CLIENT`/`SLAVE MONITOR` for replication) is optional: a monitoring user
//! without it still gets the rest, and the missing metrics are simply absent.

use std::collections::HashMap;

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder, Row, Value};

use super::{DbError, DbTarget, Secret, within};
use crate::collectors::Samples;

/// The user when the config names none (what the `mysql` client assumes too,
/// minus the login name, which means nothing to the agent's service user).
const DEFAULT_USER: &str = "root";

/// Server error codes that mean the login was refused: access denied for the
/// user (1045), for the database (1044), and a `unix_socket`/`auth_socket`
/// account reached as someone else (1698).
const AUTH_ERRORS: [u16; 3] = [1045, 1044, 1698];

/// Server error codes after which an optional query is skipped: a missing
/// privilege (1227 `PROCESS`/`SLAVE MONITOR`, 1142 table access) or a table
/// this server does not have (1109, 1146).
const SKIPPABLE_ERRORS: [u16; 4] = [1227, 1142, 1109, 1146];

/// `ER_PARSE_ERROR`: the statement is unknown to this server version.
const PARSE_ERROR: u16 = 1064;

/// The `version` label is cut to this many bytes: a report with an over-long
/// label value is rejected as a whole.
const MAX_VERSION_BYTES: usize = 128;

/// Global status variables read in one statement (lower-cased when stored,
/// since servers differ in their spelling's case).
const STATUS: &[&str] = &[
    "Uptime",
    "Threads_connected",
    "Threads_running",
    "Aborted_connects",
    "Slow_queries",
    "Innodb_buffer_pool_reads",
    "Innodb_buffer_pool_read_requests",
    "Innodb_deadlocks",
];

/// Polls one MariaDB/MySQL server, appending its samples to `out`.
pub async fn poll(t: &DbTarget, password: Option<&Secret>, out: &mut Samples) -> Result<(), DbError> {
    let opts = options(t, password);
    let mut conn = within(t.connect_timeout(), "connecting", async {
        Conn::new(opts).await.map_err(|e| classify(e, password))
    })
    .await?;
    let measured = within(t.query_timeout(), "queries", measure(&mut conn, t, password, out)).await;
    if measured.is_ok() {
        // Quit politely, so the server does not count the poll among its
        // aborted clients. Bounded: a server that stops answering now must
        // not hold the poller.
        let closed = within(t.query_timeout(), "disconnecting", async {
            conn.disconnect().await.map_err(|e| classify(e, password))
        })
        .await;
        if let Err(e) = closed {
            tracing::debug!(db = %t.name, class = e.class(), error = %e, "closing the session failed");
        }
    }
    // After a failure the session may be mid-result; dropping it lets the
    // driver close it in the background instead of waiting for it here.
    measured
}

/// Connection options for the target: TCP for `HOST:PORT`, else the socket.
fn options(t: &DbTarget, password: Option<&Secret>) -> OptsBuilder {
    let base = match t.host_port() {
        Some((host, port)) => OptsBuilder::default()
            .ip_or_hostname(host)
            .tcp_port(port)
            // The driver would otherwise switch to the server's socket when it
            // is local; the configured address is what is being watched.
            .prefer_socket(false),
        None => OptsBuilder::default().socket(Some(t.address.clone())),
    };
    base.user(Some(t.user.as_deref().unwrap_or(DEFAULT_USER)))
        .pass(password.map(|p| p.expose().to_string()))
        .db_name(t.database.clone())
}

/// Runs every query of a poll and pushes the samples.
async fn measure(conn: &mut Conn, t: &DbTarget, password: Option<&Secret>, out: &mut Samples) -> Result<(), DbError> {
    let name = t.name.as_str();
    let kind = t.kind.as_str();
    let l = [("db", name), ("kind", kind)];
    let q = |e| classify(e, password);

    let row: Option<Row> = conn
        .query_first("SELECT VERSION(), @@max_connections")
        .await
        .map_err(q)?;
    let row = row.ok_or_else(|| DbError::Protocol("SELECT VERSION() returned no row".into()))?;
    let version = row.as_ref(0).map(text).unwrap_or_default();
    out.push(
        "caretaker_db_info",
        &[
            ("db", name),
            ("kind", kind),
            ("version", cut(&version, MAX_VERSION_BYTES)),
        ],
        1.0,
    );
    if let Some(v) = row.as_ref(1).and_then(number) {
        out.push("caretaker_db_max_connections", &l, v);
    }

    let sql = format!(
        "SHOW GLOBAL STATUS WHERE Variable_name IN ({})",
        STATUS.iter().map(|s| format!("'{s}'")).collect::<Vec<_>>().join(",")
    );
    let rows: Vec<Row> = conn.query(sql).await.map_err(q)?;
    let status: HashMap<String, f64> = rows
        .iter()
        .filter_map(|r| {
            let key = text(r.as_ref(0)?).to_ascii_lowercase();
            Some((key, number(r.as_ref(1)?)?))
        })
        .collect();
    let stat = |k: &str| status.get(&k.to_ascii_lowercase()).copied();
    for (var, metric) in [
        ("Uptime", "caretaker_db_uptime_seconds"),
        ("Threads_connected", "caretaker_db_connections"),
        ("Threads_running", "caretaker_mysql_threads_running"),
        ("Aborted_connects", "caretaker_mysql_aborted_connects"),
        ("Slow_queries", "caretaker_mysql_slow_queries"),
    ] {
        if let Some(v) = stat(var) {
            out.push(metric, &l, v);
        }
    }
    // Reads that missed the pool and went to disk, of all logical reads.
    if let (Some(disk), Some(all)) = (
        stat("Innodb_buffer_pool_reads"),
        stat("Innodb_buffer_pool_read_requests"),
    ) && all > 0.0
    {
        out.push(
            "caretaker_mysql_innodb_buffer_pool_hit_ratio",
            &l,
            (1.0 - disk / all).clamp(0.0, 1.0),
        );
    }

    // MariaDB counts deadlocks in its status; MySQL only in INNODB_METRICS.
    let deadlocks = match stat("Innodb_deadlocks") {
        Some(v) => Some(v),
        None => optional(
            t,
            "deadlocks",
            conn.query_first::<Row, _>(
                "SELECT `COUNT` FROM information_schema.INNODB_METRICS WHERE NAME = 'lock_deadlocks'",
            )
            .await,
            password,
        )?
        .flatten()
        .and_then(|r| r.as_ref(0).and_then(number)),
    };
    if let Some(v) = deadlocks {
        out.push("caretaker_mysql_innodb_deadlocks", &l, v);
    }

    // A transaction left open holds back purge and keeps its locks; 0 when
    // none is open, so an alert on the age needs no special case.
    let oldest = optional(
        t,
        "oldest transaction",
        conn.query_first::<Row, _>(
            "SELECT COALESCE(MAX(TIMESTAMPDIFF(SECOND, trx_started, NOW())), 0) \
             FROM information_schema.INNODB_TRX",
        )
        .await,
        password,
    )?;
    if let Some(v) = oldest.flatten().and_then(|r| r.as_ref(0).and_then(number)) {
        out.push("caretaker_mysql_innodb_oldest_transaction_age_seconds", &l, v.max(0.0));
    }

    replication(conn, t, password, out).await
}

/// Replication state from `SHOW REPLICA STATUS` (MySQL 8.0.22+, MariaDB
/// 10.5+), or `SHOW SLAVE STATUS` on servers older than that (MySQL 8.4 no
/// longer knows the latter). One row per replication channel.
async fn replication(
    conn: &mut Conn,
    t: &DbTarget,
    password: Option<&Secret>,
    out: &mut Samples,
) -> Result<(), DbError> {
    let rows: Result<Vec<Row>, _> = match conn.query("SHOW REPLICA STATUS").await {
        Err(mysql_async::Error::Server(e)) if e.code == PARSE_ERROR => conn.query("SHOW SLAVE STATUS").await,
        other => other,
    };
    let Some(rows) = optional(t, "replication", rows, password)? else {
        return Ok(());
    };
    let name = t.name.as_str();
    let kind = t.kind.as_str();
    out.push(
        "caretaker_mysql_replica",
        &[("db", name), ("kind", kind)],
        if rows.is_empty() { 0.0 } else { 1.0 },
    );
    for row in &rows {
        // Column names differ between servers and versions: take whichever
        // spelling this one uses.
        let col = |names: &[&str]| {
            row.columns_ref()
                .iter()
                .position(|c| names.iter().any(|n| c.name_str().eq_ignore_ascii_case(n)))
                .and_then(|i| row.as_ref(i))
        };
        let channel = col(&["Channel_Name", "Connection_name"]).map(text).unwrap_or_default();
        let l = [("db", name), ("kind", kind), ("channel", channel.as_str())];
        // `Connecting` is not running: the replica is not receiving anything.
        let running = |v: Option<&Value>| {
            if v.map(text).is_some_and(|s| s.eq_ignore_ascii_case("Yes")) {
                1.0
            } else {
                0.0
            }
        };
        out.push(
            "caretaker_mysql_replica_io_running",
            &l,
            running(col(&["Slave_IO_Running", "Replica_IO_Running"])),
        );
        out.push(
            "caretaker_mysql_replica_sql_running",
            &l,
            running(col(&["Slave_SQL_Running", "Replica_SQL_Running"])),
        );
        // NULL while a thread is stopped: no value rather than a false 0.
        if let Some(v) = col(&["Seconds_Behind_Master", "Seconds_Behind_Source"]).and_then(number) {
            out.push("caretaker_mysql_replica_lag_seconds", &l, v);
        }
        // Only the number: the message text varies without bound.
        for (names, metric) in [
            (["Last_IO_Errno"], "caretaker_mysql_replica_last_io_error_number"),
            (["Last_SQL_Errno"], "caretaker_mysql_replica_last_sql_error_number"),
        ] {
            if let Some(v) = col(&names).and_then(number) {
                out.push(metric, &l, v);
            }
        }
    }
    Ok(())
}

/// The result of an optional query: `None` when the server refuses it for a
/// missing privilege or table, the error for anything else.
fn optional<T>(
    t: &DbTarget,
    what: &str,
    r: Result<T, mysql_async::Error>,
    password: Option<&Secret>,
) -> Result<Option<T>, DbError> {
    match r {
        Ok(v) => Ok(Some(v)),
        Err(mysql_async::Error::Server(e)) if SKIPPABLE_ERRORS.contains(&e.code) => {
            tracing::debug!(db = %t.name, code = e.code, "{what} skipped: {}", scrub(&e.message, password));
            Ok(None)
        }
        Err(e) => Err(classify(e, password)),
    }
}

/// Sorts a driver error into the error classes.
fn classify(e: mysql_async::Error, password: Option<&Secret>) -> DbError {
    use mysql_async::Error;
    match &e {
        Error::Server(s) if AUTH_ERRORS.contains(&s.code) => {
            DbError::AuthFailed(scrub(&format!("{} ({})", s.message, s.code), password))
        }
        Error::Server(s) => DbError::Query(scrub(&format!("{} ({})", s.message, s.code), password)),
        Error::Io(io) => match std::error::Error::source(io).and_then(|s| s.downcast_ref::<std::io::Error>()) {
            Some(io) => match DbError::from_io(io) {
                DbError::Refused(m) => DbError::Refused(scrub(&m, password)),
                DbError::Timeout(m) => DbError::Timeout(scrub(&m, password)),
                DbError::Unreachable(m) => DbError::Unreachable(scrub(&m, password)),
                other => DbError::Protocol(scrub(&other.to_string(), password)),
            },
            None => DbError::Protocol(scrub(&io.to_string(), password)),
        },
        Error::Driver(_) | Error::Other(_) | Error::Url(_) => DbError::Protocol(scrub(&e.to_string(), password)),
    }
}

/// `message` with every occurrence of the password masked. The server's
/// messages do not echo it, but a message is sent to the collector and
/// logged, so this does not rely on that.
fn scrub(message: &str, password: Option<&Secret>) -> String {
    match password.map(Secret::expose) {
        Some(p) if !p.is_empty() => message.replace(p, "***"),
        _ => message.to_string(),
    }
}

/// A value as text (the text protocol sends every value as bytes).
fn text(v: &Value) -> String {
    match v {
        Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        Value::NULL => String::new(),
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Double(d) => d.to_string(),
        other => other.as_sql(true),
    }
}

/// A value as a number; `None` for NULL and for text that is not a number.
fn number(v: &Value) -> Option<f64> {
    match v {
        Value::NULL => None,
        Value::Int(i) => Some(*i as f64),
        Value::UInt(u) => Some(*u as f64),
        Value::Float(f) => Some(f64::from(*f)),
        Value::Double(d) => Some(*d),
        other => text(other).trim().parse().ok(),
    }
}

/// At most `max` bytes of `s`, cut on a character boundary.
fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_become_numbers_and_text() {
        assert_eq!(number(&Value::Bytes(b"151".to_vec())), Some(151.0));
        assert_eq!(number(&Value::Bytes(b"Yes".to_vec())), None);
        assert_eq!(number(&Value::NULL), None);
        assert_eq!(number(&Value::UInt(7)), Some(7.0));
        assert_eq!(text(&Value::Bytes(b"10.11.6-MariaDB".to_vec())), "10.11.6-MariaDB");
    }

    #[test]
    fn long_versions_are_cut_on_a_character_boundary() {
        assert_eq!(cut("10.11", 128), "10.11");
        assert_eq!(cut("aé", 2), "a");
    }

    #[test]
    fn server_errors_are_classified_and_scrubbed() {
        let pw = Secret::new("hunter2");
        let server = |code: u16, message: &str| {
            mysql_async::Error::Server(mysql_async::ServerError {
                code,
                message: message.into(),
                state: "28000".into(),
            })
        };
        let e = classify(server(1045, "Access denied for 'hunter2'"), Some(&pw));
        assert_eq!(e.class(), "auth_failed");
        assert!(!e.to_string().contains("hunter2"), "{e}");
        assert_eq!(classify(server(1698, "denied"), None).class(), "auth_failed");
        assert_eq!(classify(server(1146, "no table"), None).class(), "query");
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let e = mysql_async::Error::Io(mysql_async::IoError::Io(refused));
        assert_eq!(classify(e, None).class(), "refused");
    }
}
