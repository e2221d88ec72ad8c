//! Redis health: one connection per poll, `INFO` and `CONFIG GET maxclients` /
//! `maxmemory`, turned into the common `caretaker_db_*` samples and the
//! `caretaker_redis_*` ones (memory against its limit, evictions, refused
//! clients, persistence and replication state).
//!
//! Redis answers everything an operator needs to know about its health in
//! `INFO`, so that is the one command that must work; `CONFIG` is often
//! renamed or disabled on hardened servers, so its absence only costs the
//! values `INFO` cannot give, never the poll. Errors are sorted into the
//! framework's classes from the client's error kind and the server's error
//! text, and any message that could echo the password has it masked.

use std::collections::BTreeMap;
use std::path::PathBuf;

use redis::aio::MultiplexedConnection;
use redis::{
    AsyncConnectionConfig, Client, ConnectionAddr, ConnectionInfo, ErrorKind, RedisConnectionInfo, RedisError,
};

use super::{DbError, DbTarget, Secret, within};
use crate::collectors::Samples;

/// The `kind` label of every sample.
const KIND: &str = "redis";

/// Server error texts that mean the credentials were refused. Redis 6+ says
/// `WRONGPASS invalid username-password pair`, a server needing a password
/// says `NOAUTH`, and `AUTH` sent to a server without one is answered
/// `ERR AUTH <password> called without any password configured`.
const AUTH_ERROR_TEXTS: &[&str] = &[
    "wrongpass",
    "noauth",
    "invalid username-password pair",
    "without any password configured",
];

/// Polls one Redis server: connects and logs in under the connect timeout,
/// runs all queries under the query timeout, and appends the samples.
pub async fn poll(t: &DbTarget, password: Option<&Secret>, out: &mut Samples) -> Result<(), DbError> {
    let mut con = within(t.connect_timeout(), "connecting to redis", connect(t, password)).await?;
    let answers = within(
        t.query_timeout(),
        "redis INFO and CONFIG GET",
        query(&t.name, &mut con, password),
    )
    .await?;
    let info = parse_info(&answers.info);
    let limits = Limits {
        maxclients: number(&answers.maxclients, "CONFIG GET maxclients")?,
        maxmemory: number(&answers.maxmemory, "CONFIG GET maxmemory")?,
    };
    samples_from_info(&t.name, &info, limits, unix_now(), out)
}

/// Opens a connection and logs in (`AUTH [user] password` when a password is
/// set). redis-rs's own connection timeout is set too, but the caller's
/// [`within`] is what guarantees the limit: the login exchange of a server
/// that accepts and never answers is otherwise waited for forever.
async fn connect(t: &DbTarget, password: Option<&Secret>) -> Result<MultiplexedConnection, DbError> {
    let addr = match t.host_port() {
        Some((host, port)) => ConnectionAddr::Tcp(host, port),
        None if t.address.starts_with('/') => ConnectionAddr::Unix(PathBuf::from(&t.address)),
        None => {
            return Err(DbError::Config(format!(
                "address {:?} is neither HOST:PORT nor a socket path",
                t.address
            )));
        }
    };
    let info = ConnectionInfo {
        addr,
        redis: RedisConnectionInfo {
            // redis-rs sends the user only together with a password, as
            // `AUTH user password`; a user alone has nothing to log in with.
            username: t.user.clone(),
            password: password.map(|p| p.expose().to_string()),
            ..RedisConnectionInfo::default()
        },
    };
    let client = Client::open(info).map_err(|e| classify(&e, "redis client", password))?;
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(t.connect_timeout())
        .set_response_timeout(t.query_timeout());
    client
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .map_err(|e| classify(&e, "connecting to redis", password))
}

/// What the server said, before parsing.
struct Answers {
    info: String,
    maxclients: Option<String>,
    maxmemory: Option<String>,
}

async fn query(db: &str, con: &mut MultiplexedConnection, password: Option<&Secret>) -> Result<Answers, DbError> {
    // Plain INFO (the "default" sections) holds server, clients, memory,
    // persistence, stats and replication, without `INFO all`'s per-command
    // statistics, which can run to hundreds of lines.
    let info: String = redis::cmd("INFO")
        .query_async(con)
        .await
        .map_err(|e| classify(&e, "INFO", password))?;
    let maxclients = config_get(db, con, "maxclients", password).await?;
    let maxmemory = config_get(db, con, "maxmemory", password).await?;
    Ok(Answers {
        info,
        maxclients,
        maxmemory,
    })
}

/// One `CONFIG GET` value; `None` when the server will not say (CONFIG
/// renamed or disabled, or an ACL user without `+config`). Only a broken
/// connection is an error: a refusal leaves the connection usable and the
/// value is then taken from INFO, or left out.
async fn config_get(
    db: &str,
    con: &mut MultiplexedConnection,
    name: &str,
    password: Option<&Secret>,
) -> Result<Option<String>, DbError> {
    match redis::cmd("CONFIG")
        .arg("GET")
        .arg(name)
        .query_async::<Vec<String>>(con)
        .await
    {
        // The reply is `[name, value]`; an unknown parameter gives `[]`.
        Ok(pair) => Ok(pair.into_iter().nth(1)),
        Err(e) if e.is_io_error() => Err(classify(&e, "CONFIG GET", password)),
        Err(e) => {
            tracing::debug!(
                db,
                parameter = name,
                error = %mask(&e.to_string(), password),
                "CONFIG GET refused; falling back to INFO"
            );
            Ok(None)
        }
    }
}

/// Parses `INFO` output: `key:value` lines, grouped under `# Section`
/// headers, CRLF-terminated. Headers and blank lines are skipped; a line
/// without a colon is ignored rather than failing the poll, since modules
/// may add sections of their own. Keys are unique across sections.
pub fn parse_info(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Limits read with `CONFIG GET`; `None` when CONFIG is unavailable.
#[derive(Debug, Clone, Copy, Default)]
pub struct Limits {
    pub maxclients: Option<f64>,
    pub maxmemory: Option<f64>,
}

/// Turns a parsed `INFO` and the `CONFIG GET` limits into samples for the
/// database named `db`. `now` (Unix seconds) is used for the age of the last
/// save only when INFO lacks `server_time_usec` (Redis < 5): the server's own
/// clock is preferred so that skew between hosts does not show as age.
pub fn samples_from_info(
    db: &str,
    info: &BTreeMap<String, String>,
    limits: Limits,
    now: f64,
    out: &mut Samples,
) -> Result<(), DbError> {
    let l = [("db", db), ("kind", KIND)];
    let field = |key: &str| info.get(key).map(String::as_str);
    // Fields every Redis since 2.x reports: their absence means the answer
    // was not INFO at all.
    let required = |key: &str| -> Result<f64, DbError> {
        let v = field(key).ok_or_else(|| DbError::Protocol(format!("INFO has no {key}")))?;
        parse_number(v, key)
    };
    let optional = |key: &str| -> Result<Option<f64>, DbError> { field(key).map(|v| parse_number(v, key)).transpose() };
    let ok_flag = |key: &str| field(key).map(|v| if v == "ok" { 1.0 } else { 0.0 });

    let version = field("redis_version").ok_or_else(|| DbError::Protocol("INFO has no redis_version".into()))?;
    out.push(
        "caretaker_db_info",
        &[
            ("db", db),
            ("kind", KIND),
            ("version", &crate::collectors::host_label(version)),
        ],
        1.0,
    );
    out.push("caretaker_db_uptime_seconds", &l, required("uptime_in_seconds")?);
    out.push("caretaker_db_connections", &l, required("connected_clients")?);
    // INFO reports maxclients itself since Redis 7.0.
    if let Some(v) = limits.maxclients.or(optional("maxclients")?) {
        out.push("caretaker_db_max_connections", &l, v);
    }

    out.push("caretaker_redis_memory_used_bytes", &l, required("used_memory")?);
    if let Some(v) = limits.maxmemory.or(optional("maxmemory")?) {
        out.push("caretaker_redis_memory_max_bytes", &l, v);
    }
    for (key, metric) in [
        ("evicted_keys", "caretaker_redis_evicted_keys"),
        ("rejected_connections", "caretaker_redis_rejected_connections"),
        ("blocked_clients", "caretaker_redis_blocked_clients"),
        (
            "rdb_changes_since_last_save",
            "caretaker_redis_rdb_changes_since_last_save",
        ),
        ("aof_enabled", "caretaker_redis_aof_enabled"),
        ("connected_slaves", "caretaker_redis_connected_replicas"),
        ("keyspace_hits", "caretaker_redis_keyspace_hits"),
        ("keyspace_misses", "caretaker_redis_keyspace_misses"),
    ] {
        if let Some(v) = optional(key)? {
            out.push(metric, &l, v);
        }
    }
    for (key, metric) in [
        ("rdb_last_bgsave_status", "caretaker_redis_rdb_last_save_ok"),
        ("aof_last_write_status", "caretaker_redis_aof_last_write_ok"),
        ("aof_last_bgrewrite_status", "caretaker_redis_aof_last_rewrite_ok"),
    ] {
        if let Some(v) = ok_flag(key) {
            out.push(metric, &l, v);
        }
    }
    if let Some(saved) = optional("rdb_last_save_time")? {
        let now = optional("server_time_usec")?.map_or(now, |us| us / 1e6);
        // Clocks can step back; an age is never negative.
        out.push("caretaker_redis_rdb_last_save_age_seconds", &l, (now - saved).max(0.0));
    }

    let role = match field("role") {
        Some("master") => Some("primary"),
        Some("slave") => Some("replica"),
        other => {
            tracing::debug!(db, role = ?other, "unknown replication role; not reported");
            None
        }
    };
    if let Some(role) = role {
        for r in ["primary", "replica"] {
            out.push(
                "caretaker_redis_replication_role",
                &[("db", db), ("kind", KIND), ("role", r)],
                if r == role { 1.0 } else { 0.0 },
            );
        }
    }
    if role == Some("replica") {
        if let Some(status) = field("master_link_status") {
            out.push(
                "caretaker_redis_primary_link_up",
                &l,
                if status == "up" { 1.0 } else { 0.0 },
            );
        }
        // -1 while the link has never been up: there is no age to report.
        if let Some(v) = optional("master_last_io_seconds_ago")?.filter(|v| *v >= 0.0) {
            out.push("caretaker_redis_primary_last_io_age_seconds", &l, v);
        }
    }
    Ok(())
}

fn parse_number(v: &str, what: &str) -> Result<f64, DbError> {
    v.trim()
        .parse::<f64>()
        .ok()
        .filter(|n| n.is_finite())
        .ok_or_else(|| DbError::Protocol(format!("{what}: {v:?} is not a number")))
}

fn number(v: &Option<String>, what: &str) -> Result<Option<f64>, DbError> {
    v.as_deref().map(|v| parse_number(v, what)).transpose()
}

fn unix_now() -> f64 {
    caretaker_shared::now_ms() as f64 / 1000.0
}

/// Sorts a redis-rs error into the framework's classes, `what` naming the
/// step. The message has the password masked: redis-rs and the server do not
/// echo it today, but the message ends up in logs, events and the report.
pub fn classify(e: &RedisError, what: &str, password: Option<&Secret>) -> DbError {
    if let Some(io) = std::error::Error::source(e).and_then(|s| s.downcast_ref::<std::io::Error>()) {
        return with_message(DbError::from_io(io), |m| mask(&format!("{what}: {m}"), password));
    }
    let text = mask(&format!("{what}: {e}"), password);
    let lower = text.to_lowercase();
    if e.kind() == ErrorKind::AuthenticationFailed || AUTH_ERROR_TEXTS.iter().any(|t| lower.contains(t)) {
        return DbError::AuthFailed(text);
    }
    match e.kind() {
        ErrorKind::ParseError
        | ErrorKind::TypeError
        | ErrorKind::RESP3NotSupported
        | ErrorKind::ClientError
        | ErrorKind::IoError => DbError::Protocol(text),
        ErrorKind::InvalidClientConfig => DbError::Config(text),
        // Everything else is the server refusing a command.
        _ => DbError::Query(text),
    }
}

/// Rewrites the message of an error, keeping its class.
fn with_message(e: DbError, f: impl FnOnce(&str) -> String) -> DbError {
    match e {
        DbError::Refused(m) => DbError::Refused(f(&m)),
        DbError::AuthFailed(m) => DbError::AuthFailed(f(&m)),
        DbError::Timeout(m) => DbError::Timeout(f(&m)),
        DbError::Unreachable(m) => DbError::Unreachable(f(&m)),
        DbError::Query(m) => DbError::Query(f(&m)),
        DbError::Protocol(m) => DbError::Protocol(f(&m)),
        DbError::Config(m) => DbError::Config(f(&m)),
    }
}

/// `text` with every occurrence of the password replaced by `***`.
fn mask(text: &str, password: Option<&Secret>) -> String {
    match password.map(Secret::expose) {
        Some(p) if !p.is_empty() => text.replace(p, "***"),
        _ => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRIMARY: &str = include_str!("../../tests/fixtures/redis/info-7.0.txt");
    const REPLICA: &str = include_str!("../../tests/fixtures/redis/info-7.0-replica.txt");

    fn samples(text: &str, limits: Limits) -> Vec<caretaker_shared::wire::Sample> {
        let mut out = Samples::default();
        let r = samples_from_info("cache", &parse_info(text), limits, 0.0, &mut out);
        assert!(r.is_ok(), "{r:?}");
        out.0
    }

    fn value(s: &[caretaker_shared::wire::Sample], metric: &str) -> Option<f64> {
        s.iter().find(|s| s.metric == metric).map(|s| s.value)
    }

    fn role(s: &[caretaker_shared::wire::Sample], role: &str) -> Option<f64> {
        s.iter()
            .find(|s| {
                s.metric == "caretaker_redis_replication_role" && s.labels.get("role").map(String::as_str) == Some(role)
            })
            .map(|s| s.value)
    }

    #[test]
    fn info_parses_into_fields_without_headers_or_carriage_returns() {
        let info = parse_info(PRIMARY);
        assert_eq!(info.get("redis_version").map(String::as_str), Some("7.0.15"));
        assert_eq!(info.get("maxclients").map(String::as_str), Some("10000"));
        assert_eq!(info.get("role").map(String::as_str), Some("master"));
        // A value with spaces stays whole.
        assert_eq!(info.get("os").map(String::as_str), Some("Linux 6.18.44-fc-v657 x86_64"));
        assert!(info.keys().all(|k| !k.starts_with('#') && !k.is_empty()));
        assert!(info.values().all(|v| !v.ends_with('\r')));
        assert!(info.len() > 150, "{}", info.len());
    }

    #[test]
    fn a_primary_without_config_falls_back_to_info() {
        let s = samples(PRIMARY, Limits::default());
        let info = s.iter().find(|s| s.metric == "caretaker_db_info");
        assert_eq!(
            info.and_then(|s| s.labels.get("version")).map(String::as_str),
            Some("7.0.15")
        );
        assert_eq!(value(&s, "caretaker_db_uptime_seconds"), Some(2624.0));
        assert_eq!(value(&s, "caretaker_db_connections"), Some(1.0));
        assert_eq!(value(&s, "caretaker_db_max_connections"), Some(10000.0));
        assert_eq!(value(&s, "caretaker_redis_memory_used_bytes"), Some(941232.0));
        assert_eq!(value(&s, "caretaker_redis_memory_max_bytes"), Some(0.0));
        assert_eq!(value(&s, "caretaker_redis_rdb_last_save_ok"), Some(1.0));
        assert_eq!(value(&s, "caretaker_redis_aof_enabled"), Some(0.0));
        assert_eq!(value(&s, "caretaker_redis_aof_last_write_ok"), Some(1.0));
        assert_eq!(value(&s, "caretaker_redis_aof_last_rewrite_ok"), Some(1.0));
        // server_time_usec 1795773518.26 - rdb_last_save_time 1795770894.
        let age = value(&s, "caretaker_redis_rdb_last_save_age_seconds").unwrap_or(-1.0);
        assert!((age - 2624.26).abs() < 0.01, "{age}");
        assert_eq!(role(&s, "primary"), Some(1.0));
        assert_eq!(role(&s, "replica"), Some(0.0));
        assert_eq!(value(&s, "caretaker_redis_connected_replicas"), Some(0.0));
        assert_eq!(value(&s, "caretaker_redis_primary_link_up"), None);
        for s in &s {
            assert_eq!(s.labels.get("db").map(String::as_str), Some("cache"));
            assert_eq!(s.labels.get("kind").map(String::as_str), Some("redis"));
            let def = caretaker_shared::catalogue::lookup(&s.metric);
            let labels: Vec<&str> = s.labels.keys().map(String::as_str).collect();
            let mut expected = def.map(|d| d.labels.to_vec()).unwrap_or_default();
            expected.sort_unstable();
            assert_eq!(labels, expected, "{}", s.metric);
        }
    }

    #[test]
    fn config_values_win_over_info() {
        let s = samples(
            PRIMARY,
            Limits {
                maxclients: Some(128.0),
                maxmemory: Some(2_097_152.0),
            },
        );
        assert_eq!(value(&s, "caretaker_db_max_connections"), Some(128.0));
        assert_eq!(value(&s, "caretaker_redis_memory_max_bytes"), Some(2_097_152.0));
    }

    #[test]
    fn a_replica_reports_its_link() {
        let s = samples(REPLICA, Limits::default());
        assert_eq!(role(&s, "primary"), Some(0.0));
        assert_eq!(role(&s, "replica"), Some(1.0));
        assert_eq!(value(&s, "caretaker_redis_primary_link_up"), Some(1.0));
        assert_eq!(value(&s, "caretaker_redis_primary_last_io_age_seconds"), Some(3.0));
    }

    #[test]
    fn a_replica_whose_link_never_came_up_has_no_io_age() {
        let text = REPLICA
            .replace("master_link_status:up", "master_link_status:down")
            .replace("master_last_io_seconds_ago:3", "master_last_io_seconds_ago:-1");
        let s = samples(&text, Limits::default());
        assert_eq!(value(&s, "caretaker_redis_primary_link_up"), Some(0.0));
        assert_eq!(value(&s, "caretaker_redis_primary_last_io_age_seconds"), None);
    }

    #[test]
    fn something_that_is_not_info_is_a_protocol_error() {
        let mut out = Samples::default();
        let r = samples_from_info("x", &parse_info("+OK\r\n"), Limits::default(), 0.0, &mut out);
        assert_eq!(r.err().map(|e| e.class()), Some("protocol"));
        let text = PRIMARY.replace("connected_clients:1", "connected_clients:many");
        let r = samples_from_info("x", &parse_info(&text), Limits::default(), 0.0, &mut out);
        assert_eq!(r.err().map(|e| e.class()), Some("protocol"));
    }

    /// A server error exactly as it comes off the wire.
    fn server_error(line: &str) -> RedisError {
        match redis::parse_redis_value(format!("{line}\r\n").as_bytes()).and_then(|v| v.extract_error()) {
            Err(e) => e,
            Ok(v) => panic!("{line:?} parsed as {v:?}"),
        }
    }

    #[test]
    fn errors_are_classified() {
        let pw = Secret::new("hunter2");
        let class = |e: &RedisError| classify(e, "INFO", Some(&pw)).class();
        assert_eq!(
            class(&server_error(
                "-WRONGPASS invalid username-password pair or user is disabled."
            )),
            "auth_failed"
        );
        assert_eq!(class(&server_error("-NOAUTH Authentication required.")), "auth_failed");
        assert_eq!(
            class(&server_error(
                "-ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"
            )),
            "auth_failed"
        );
        assert_eq!(
            class(&RedisError::from((
                ErrorKind::AuthenticationFailed,
                "Password authentication failed"
            ))),
            "auth_failed"
        );
        assert_eq!(class(&server_error("-ERR unknown command 'CONFIG'")), "query");
        assert_eq!(class(&server_error("-NOPERM this user has no permissions")), "query");
        assert_eq!(
            class(&RedisError::from((ErrorKind::ParseError, "bad reply"))),
            "protocol"
        );
        let io = |k| RedisError::from(std::io::Error::from(k));
        assert_eq!(class(&io(std::io::ErrorKind::ConnectionRefused)), "refused");
        assert_eq!(class(&io(std::io::ErrorKind::TimedOut)), "timeout");
        assert_eq!(class(&io(std::io::ErrorKind::ConnectionReset)), "protocol");
    }

    #[test]
    fn messages_never_carry_the_password() {
        let pw = Secret::new("hunter2");
        let e = server_error("-ERR hunter2 is not a command");
        let m = classify(&e, "INFO", Some(&pw)).to_string();
        assert!(!m.contains("hunter2") && m.contains("***"), "{m}");
        let e = RedisError::from(std::io::Error::other("peer said hunter2"));
        let m = classify(&e, "connecting", Some(&pw)).to_string();
        assert!(!m.contains("hunter2"), "{m}");
    }
}
