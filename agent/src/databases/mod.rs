//! Database health: each configured database server is polled on its own
//! interval by its own task, with a connect and a query timeout, so one slow
//! or dead database never delays the others or the report. The latest reading
//! of each is kept in [`DbState`]; the `databases` collector turns it into
//! samples and events every report.
//!
//! Secrets (passwords, password files' contents) are never logged, never put
//! into an error message and never sent: [`Secret`] prints as `***`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::collectors::Samples;

pub mod mysql;
pub mod postgres;
pub mod redis;

/// The kinds of database servers the agent can watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DbKind {
    Postgresql,
    Mariadb,
    Mysql,
    Redis,
}

impl DbKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DbKind::Postgresql => "postgresql",
            DbKind::Mariadb => "mariadb",
            DbKind::Mysql => "mysql",
            DbKind::Redis => "redis",
        }
    }
}

/// A password: never printed, logged or serialized.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("***")
    }
}

/// One database server to watch (`[[databases]]` in the agent's config).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DbTarget {
    /// Name shown as the `db` label, unique among the targets: `main-pg`, `cache`.
    pub name: String,
    /// `postgresql`, `mariadb`, `mysql` or `redis`.
    pub kind: DbKind,
    /// `HOST:PORT` (`127.0.0.1:5432`, `[::1]:6379`), or the path of a Unix socket.
    pub address: String,
    /// User to log in as (PostgreSQL, MariaDB/MySQL; Redis ACL user).
    #[serde(default)]
    pub user: Option<String>,
    /// Password, written in the config. Prefer `password_file`.
    #[serde(default)]
    pub password: Option<Secret>,
    /// File holding the password (its first line), readable by the agent only.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Database to connect to (PostgreSQL: default `postgres`; MariaDB/MySQL: none).
    #[serde(default)]
    pub database: Option<String>,
    /// Seconds between two polls.
    #[serde(default = "default_interval_secs")]
    pub interval_secs: u64,
    /// Time allowed to connect and log in.
    #[serde(default = "default_connect_timeout_ms")]
    pub connect_timeout_ms: u64,
    /// Time allowed for all queries of one poll, after logging in.
    #[serde(default = "default_query_timeout_ms")]
    pub query_timeout_ms: u64,
}

fn default_interval_secs() -> u64 {
    30
}
fn default_connect_timeout_ms() -> u64 {
    3_000
}
fn default_query_timeout_ms() -> u64 {
    5_000
}

impl DbTarget {
    /// A target with defaults, for tests and examples.
    pub fn new(name: &str, kind: DbKind, address: &str) -> Self {
        Self {
            name: name.into(),
            kind,
            address: address.into(),
            user: None,
            password: None,
            password_file: None,
            database: None,
            interval_secs: default_interval_secs(),
            connect_timeout_ms: default_connect_timeout_ms(),
            query_timeout_ms: default_query_timeout_ms(),
        }
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    pub fn query_timeout(&self) -> Duration {
        Duration::from_millis(self.query_timeout_ms)
    }

    /// `(host, port)` of a TCP address, `None` for a socket path.
    pub fn host_port(&self) -> Option<(String, u16)> {
        if self.address.starts_with('/') {
            return None;
        }
        let (host, port) = self.address.rsplit_once(':')?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        Some((host.to_string(), port.parse().ok()?))
    }

    /// The password, from the config or its file (read at each poll, so a
    /// rotated password is picked up).
    pub fn password(&self) -> Result<Option<Secret>, DbError> {
        if let Some(p) = &self.password {
            return Ok(Some(p.clone()));
        }
        let Some(file) = &self.password_file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(file)
            .map_err(|e| DbError::Config(format!("password_file {}: {e}", file.display())))?;
        Ok(Some(Secret::new(text.lines().next().unwrap_or("").to_string())))
    }

    /// Config problems, each with its key.
    pub fn problems(&self, at: &str) -> Vec<String> {
        let mut p = Vec::new();
        if self.name.is_empty() || self.name.len() > 64 {
            p.push(format!("{at}.name: must be 1 to 64 bytes"));
        }
        if !self.address.starts_with('/') && self.host_port().is_none() {
            p.push(format!(
                "{at}.address: {:?} is neither HOST:PORT nor a socket path",
                self.address
            ));
        }
        if self.password.is_some() && self.password_file.is_some() {
            p.push(format!("{at}: set password or password_file, not both"));
        }
        if !(1..=86_400).contains(&self.interval_secs) {
            p.push(format!(
                "{at}.interval_secs: {} is outside 1..=86400",
                self.interval_secs
            ));
        }
        for (key, v) in [
            ("connect_timeout_ms", self.connect_timeout_ms),
            ("query_timeout_ms", self.query_timeout_ms),
        ] {
            if !(1..=600_000).contains(&v) {
                p.push(format!("{at}.{key}: {v} is outside 1..=600000"));
            }
        }
        p
    }
}

/// Why a poll failed. [`DbError::class`] is the bounded label value.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("connection refused: {0}")]
    Refused(String),
    #[error("authentication failed: {0}")]
    AuthFailed(String),
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("unreachable: {0}")]
    Unreachable(String),
    #[error("query failed: {0}")]
    Query(String),
    #[error("protocol error: {0}")]
    Protocol(String),
    #[error("configuration: {0}")]
    Config(String),
}

impl DbError {
    /// The error class: `refused`, `auth_failed`, `timeout`, `unreachable`, `query`, `protocol`, `config`.
    pub fn class(&self) -> &'static str {
        match self {
            DbError::Refused(_) => "refused",
            DbError::AuthFailed(_) => "auth_failed",
            DbError::Timeout(_) => "timeout",
            DbError::Unreachable(_) => "unreachable",
            DbError::Query(_) => "query",
            DbError::Protocol(_) => "protocol",
            DbError::Config(_) => "config",
        }
    }

    /// Classifies an I/O error met while connecting.
    pub fn from_io(e: &std::io::Error) -> DbError {
        use std::io::ErrorKind::*;
        match e.kind() {
            ConnectionRefused => DbError::Refused(e.to_string()),
            TimedOut => DbError::Timeout(e.to_string()),
            NotFound | HostUnreachable | NetworkUnreachable | AddrNotAvailable => DbError::Unreachable(e.to_string()),
            _ => DbError::Protocol(e.to_string()),
        }
    }
}

/// Every error class, for tests and docs.
pub const ERROR_CLASSES: &[&str] = &[
    "refused",
    "auth_failed",
    "timeout",
    "unreachable",
    "query",
    "protocol",
    "config",
];

/// Runs `f` under `limit`, turning the deadline into [`DbError::Timeout`].
pub async fn within<T>(
    limit: Duration,
    what: &str,
    f: impl std::future::Future<Output = Result<T, DbError>>,
) -> Result<T, DbError> {
    match tokio::time::timeout(limit, f).await {
        Ok(r) => r,
        Err(_) => Err(DbError::Timeout(format!(
            "{what} took longer than {} ms",
            limit.as_millis()
        ))),
    }
}

/// Polls one target once: its samples, or why it is down.
pub async fn poll(t: &DbTarget) -> Result<Samples, DbError> {
    let password = t.password()?;
    let mut out = Samples::default();
    match t.kind {
        DbKind::Postgresql => postgres::poll(t, password.as_ref(), &mut out).await?,
        DbKind::Mariadb | DbKind::Mysql => mysql::poll(t, password.as_ref(), &mut out).await?,
        DbKind::Redis => redis::poll(t, password.as_ref(), &mut out).await?,
    }
    Ok(out)
}

/// The latest poll of one target.
#[derive(Debug, Clone)]
pub struct Reading {
    pub kind: DbKind,
    pub at_ms: i64,
    pub duration: Duration,
    /// The samples of a good poll, or the error class and message of a failed one.
    pub result: Result<Vec<caretaker_shared::wire::Sample>, (&'static str, String)>,
}

/// Latest readings by target name, shared by the pollers and the collector.
#[derive(Debug, Default)]
pub struct DbState {
    readings: Mutex<BTreeMap<String, Reading>>,
}

impl DbState {
    pub fn publish(&self, name: &str, r: Reading) {
        self.readings
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), r);
    }

    pub fn snapshot(&self) -> BTreeMap<String, Reading> {
        self.readings.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// What the configured databases told about themselves, for the inventory:
/// kind, the version the server reports, and the port it was reached on.
pub fn inventory_entries(targets: &[DbTarget], state: &DbState) -> Vec<caretaker_shared::wire::DatabaseServer> {
    let readings = state.snapshot();
    targets
        .iter()
        .filter_map(|t| {
            let samples = readings.get(&t.name)?.result.as_ref().ok()?;
            let version = samples
                .iter()
                .find(|s| s.metric == "caretaker_db_info")
                .and_then(|s| s.labels.get("version"))?;
            Some(caretaker_shared::wire::DatabaseServer {
                kind: t.kind.as_str().to_string(),
                version: version.clone(),
                port: t.host_port().map(|(_, p)| p),
            })
        })
        .collect()
}

/// Adds servers the agent polls to the inventory's list, and their version
/// where the process probe found none. A server found both ways (same kind and
/// port) is listed once.
pub fn merge_inventory(
    found: &mut Vec<caretaker_shared::wire::DatabaseServer>,
    polled: Vec<caretaker_shared::wire::DatabaseServer>,
) {
    for p in polled {
        match found
            .iter_mut()
            .find(|f| f.kind == p.kind && (f.port == p.port || f.port.is_none()))
        {
            Some(f) => {
                if f.version.is_empty() {
                    f.version = p.version;
                }
                if f.port.is_none() {
                    f.port = p.port;
                }
            }
            None => found.push(p),
        }
    }
    found.sort_by(|a, b| a.kind.cmp(&b.kind).then(a.port.cmp(&b.port)));
}

/// Polls `t` once and records the result.
pub async fn poll_and_publish(t: &DbTarget, state: &DbState) {
    let started = Instant::now();
    let result = match poll(t).await {
        Ok(s) => Ok(s.0),
        Err(e) => {
            tracing::warn!(db = %t.name, class = e.class(), error = %e, "database poll failed");
            Err((e.class(), e.to_string()))
        }
    };
    state.publish(
        &t.name,
        Reading {
            kind: t.kind,
            at_ms: caretaker_shared::now_ms(),
            duration: started.elapsed(),
            result,
        },
    );
}

/// Starts one polling task per target on the current runtime. The tasks end
/// with the runtime.
pub fn spawn_pollers(targets: &[DbTarget], state: Arc<DbState>) {
    for t in targets.iter().cloned() {
        let state = state.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(t.interval_secs));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                poll_and_publish(&t, &state).await;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polled_servers_join_the_inventory_once() {
        use caretaker_shared::wire::{DatabaseServer, Sample};
        let state = DbState::default();
        let info = Sample {
            metric: "caretaker_db_info".into(),
            labels: [("db", "pg"), ("kind", "postgresql"), ("version", "15.19")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            value: 1.0,
        };
        for (name, kind) in [("pg", DbKind::Postgresql), ("cache", DbKind::Redis)] {
            state.publish(
                name,
                Reading {
                    kind,
                    at_ms: 1,
                    duration: Duration::ZERO,
                    result: if name == "pg" {
                        Ok(vec![info.clone()])
                    } else {
                        Err(("refused", "x".into()))
                    },
                },
            );
        }
        let targets = [
            DbTarget::new("pg", DbKind::Postgresql, "127.0.0.1:5432"),
            DbTarget::new("cache", DbKind::Redis, "127.0.0.1:6379"),
        ];
        let polled = inventory_entries(&targets, &state);
        let mut found = vec![DatabaseServer {
            kind: "postgresql".into(),
            version: String::new(),
            port: Some(5432),
        }];
        merge_inventory(&mut found, polled);
        assert_eq!(
            found,
            vec![DatabaseServer {
                kind: "postgresql".into(),
                version: "15.19".into(),
                port: Some(5432),
            }],
            "a down server adds nothing; a found one gets its version"
        );
    }

    #[test]
    fn secrets_do_not_print() {
        let mut t = DbTarget::new("pg", DbKind::Postgresql, "127.0.0.1:5432");
        t.password = Some(Secret::new("hunter2"));
        assert!(!format!("{t:?}").contains("hunter2"));
    }

    #[test]
    fn addresses() {
        let t = DbTarget::new("x", DbKind::Redis, "[::1]:6379");
        assert_eq!(t.host_port(), Some(("::1".to_string(), 6379)));
        let t = DbTarget::new("x", DbKind::Redis, "/run/redis/redis.sock");
        assert_eq!(t.host_port(), None);
        assert!(t.problems("databases[0]").is_empty());
        let t = DbTarget::new("x", DbKind::Redis, "localhost");
        assert_eq!(
            t.problems("databases[0]"),
            vec!["databases[0].address: \"localhost\" is neither HOST:PORT nor a socket path".to_string()]
        );
    }

    #[test]
    fn password_file_first_line_and_a_missing_file_is_a_config_error() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let f = dir.path().join("pw");
        std::fs::write(&f, "s3cret\n").unwrap_or_else(|e| panic!("{e}"));
        let mut t = DbTarget::new("x", DbKind::Redis, "127.0.0.1:1");
        t.password_file = Some(f);
        assert_eq!(
            t.password().ok().flatten().map(|s| s.expose().to_string()),
            Some("s3cret".into())
        );
        t.password_file = Some(dir.path().join("missing"));
        assert_eq!(t.password().err().map(|e| e.class()), Some("config"));
    }
}
