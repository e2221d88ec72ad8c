//! The store on PostgreSQL: connecting, and the versioned schema.
//!
//! Migrations are numbered SQL files applied in order, each in a
//! transaction of its own that also records it in `caretaker_migrations`.
//! Several collectors may start at once against one database: an advisory
//! lock makes the second wait for the first and then find nothing to do.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::sql::{Db, Sql, SqlError, SqlExt, args};

/// Every migration, oldest first: (version, name, SQL).
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (1, "schema", include_str!("postgres/0001_schema.sql")),
    (
        2,
        "detect checkpoints",
        include_str!("postgres/0002_detect_checkpoints.sql"),
    ),
    (3, "replicas", include_str!("postgres/0003_replicas.sql")),
    (4, "log visibility", include_str!("postgres/0004_log_visibility.sql")),
    (
        5,
        "queue facts from the logs",
        include_str!("postgres/0005_queue_from_logs.sql"),
    ),
];

/// The advisory lock key migrations hold (any constant the collector alone uses).
const MIGRATION_LOCK: i64 = 0x6361_7265_7461_6b72;

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error(transparent)]
    Sql(#[from] SqlError),
    #[error(
        "the store's schema is at version {found}, newer than this collector knows ({known}): run the newer collector, or restore a backup"
    )]
    Newer { found: i64, known: i64 },
}

/// The schema version this build writes.
pub fn latest_version() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.0)
}

/// Why the store's PostgreSQL database could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("store.url: not a PostgreSQL connection string: {0}")]
    Url(postgres::Error),
    #[error("store.password_file {}: {source}", path.display())]
    PasswordFile { path: PathBuf, source: std::io::Error },
    #[error("store.password_file {}: the first line is empty", path.display())]
    EmptyPassword { path: PathBuf },
    #[error("connecting to PostgreSQL at {target}: {source}")]
    Connect { target: String, source: SqlError },
}

/// What is wrong with `url` as the store's database, if anything.
pub fn url_problem(url: &str) -> Option<String> {
    match url.parse::<postgres::Config>() {
        Err(e) => Some(format!("not a PostgreSQL connection string: {e}")),
        Ok(c) if c.get_password().is_some() => Some("holds a password; put it in store.password_file instead".into()),
        Ok(c) if c.get_dbname().is_none() => Some("names no database (postgres://user@host:port/database)".into()),
        Ok(_) => None,
    }
}

/// The connection settings of `url`, with the password read from
/// `password_file` (its first line).
pub fn settings(url: &str, password_file: Option<&Path>) -> Result<postgres::Config, ConnectError> {
    let mut cfg: postgres::Config = url.parse().map_err(ConnectError::Url)?;
    if let Some(path) = password_file {
        let text = std::fs::read_to_string(path).map_err(|source| ConnectError::PasswordFile {
            path: path.to_owned(),
            source,
        })?;
        let password = text.lines().next().unwrap_or("").trim_end_matches('\r');
        if password.is_empty() {
            return Err(ConnectError::EmptyPassword { path: path.to_owned() });
        }
        cfg.password(password);
    }
    if cfg.get_connect_timeout().is_none() {
        cfg.connect_timeout(Duration::from_secs(10));
    }
    if cfg.get_application_name().is_none() {
        cfg.application_name("caretaker-collector");
    }
    Ok(cfg)
}

/// Where `cfg` points, for messages (never the password).
pub fn describe(cfg: &postgres::Config) -> String {
    let host = cfg
        .get_hosts()
        .first()
        .map(|h| match h {
            postgres::config::Host::Tcp(h) => h.clone(),
            #[cfg(unix)]
            postgres::config::Host::Unix(p) => p.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".into());
    let port = cfg.get_ports().first().copied().unwrap_or(5432);
    format!(
        "{}@{host}:{port}/{}",
        cfg.get_user().unwrap_or("?"),
        cfg.get_dbname().unwrap_or("?")
    )
}

/// One connection to the database `cfg` names.
pub fn connect(cfg: &postgres::Config) -> Result<Db, ConnectError> {
    cfg.connect(postgres::NoTls)
        .map(Db::postgres)
        .map_err(|e| ConnectError::Connect {
            target: describe(cfg),
            source: e.into(),
        })
}

/// Brings the database's schema to [`latest_version`].
pub fn migrate(db: &Db) -> Result<(), MigrateError> {
    for &(version, name, sql) in MIGRATIONS {
        let tx = db.transaction()?;
        // Taken before anything else, the table's creation included: two
        // collectors creating it at once would collide.
        tx.query_one("SELECT pg_advisory_xact_lock(?1)", args![MIGRATION_LOCK], |_| Ok(()))?;
        tx.batch(
            "CREATE TABLE IF NOT EXISTS caretaker_migrations (
                version BIGINT PRIMARY KEY,
                name TEXT NOT NULL,
                applied_at_ms BIGINT NOT NULL
            )",
        )?;
        let current: i64 = tx
            .value::<Option<i64>>("SELECT MAX(version) FROM caretaker_migrations", args![])?
            .flatten()
            .unwrap_or(0);
        if current > latest_version() {
            return Err(MigrateError::Newer {
                found: current,
                known: latest_version(),
            });
        }
        if current >= version {
            continue;
        }
        tx.batch(sql)?;
        tx.execute(
            "INSERT INTO caretaker_migrations (version, name, applied_at_ms) VALUES (?1, ?2, ?3)",
            args![version, name, caretaker_shared::now_ms()],
        )?;
        tx.commit()?;
        tracing::info!(version, name, "store schema migrated");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;
    use crate::store::testing::{PgDatabase, postgres_addr};

    type Schema = BTreeMap<String, BTreeSet<String>>;

    fn sqlite_schema() -> Schema {
        let conn = crate::store::open_in_memory().unwrap();
        let db = Db::sqlite(conn);
        let tables = db
            .query(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
                args![],
                |r| r.get::<String>(0),
            )
            .unwrap();
        tables
            .into_iter()
            .map(|t| {
                let cols = db
                    .query("SELECT name FROM pragma_table_info(?1)", args![&t], |r| {
                        r.get::<String>(0)
                    })
                    .unwrap();
                (t, cols.into_iter().collect())
            })
            .collect()
    }

    fn postgres_schema(db: &Db) -> Schema {
        let mut out = Schema::new();
        db.query_each(
            "SELECT table_name, column_name FROM information_schema.columns \
             WHERE table_schema = 'public' AND table_name <> 'caretaker_migrations'",
            args![],
            |r| {
                out.entry(r.get(0)?).or_default().insert(r.get(1)?);
                Ok(())
            },
        )
        .unwrap();
        out
    }

    fn database() -> Option<PgDatabase> {
        let addr = postgres_addr()?;
        Some(PgDatabase::create(&addr).unwrap_or_else(|e| panic!("PostgreSQL at {addr}: {e}")))
    }

    #[test]
    fn the_postgresql_schema_has_every_table_and_column_of_the_sqlite_one() {
        let Some(pg) = database() else { return };
        let db = pg.connect().unwrap();
        migrate(&db).unwrap();
        assert_eq!(postgres_schema(&db), sqlite_schema());
    }

    #[test]
    fn migrating_twice_or_from_two_collectors_at_once_applies_each_version_once() {
        let Some(pg) = database() else { return };
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let db = pg.connect().unwrap();
                std::thread::spawn(move || migrate(&db).map_err(|e| e.to_string()))
            })
            .collect();
        for t in threads {
            assert_eq!(t.join().unwrap(), Ok(()));
        }
        let db = pg.connect().unwrap();
        migrate(&db).unwrap();
        let n: Option<i64> = db.value("SELECT COUNT(*) FROM caretaker_migrations", args![]).unwrap();
        assert_eq!(n, Some(MIGRATIONS.len() as i64));
    }

    #[test]
    fn a_store_newer_than_the_collector_is_refused_by_name() {
        let Some(pg) = database() else { return };
        let db = pg.connect().unwrap();
        migrate(&db).unwrap();
        db.execute(
            "INSERT INTO caretaker_migrations (version, name, applied_at_ms) VALUES (?1, 'future', 0)",
            args![latest_version() + 1],
        )
        .unwrap();
        let err = migrate(&db).unwrap_err();
        assert!(matches!(err, MigrateError::Newer { .. }), "{err}");
        assert!(err.to_string().contains("newer than this collector"), "{err}");
    }
}
