//! Databases for tests: an SQLite store in memory, or a PostgreSQL database
//! of its own on the server `CARETAKER_TEST_POSTGRES` names (`host:port`,
//! trust authentication), created empty and dropped afterwards.
//!
//! When the variable is set the server must answer: a test never skips
//! because PostgreSQL is down.

use std::sync::atomic::{AtomicU32, Ordering};

use super::sql::{Db, SqlError};

/// The PostgreSQL server tests use, when one is configured.
pub fn postgres_addr() -> Option<String> {
    std::env::var("CARETAKER_TEST_POSTGRES").ok().filter(|s| !s.is_empty())
}

/// A PostgreSQL database that lives as long as this value.
pub struct PgDatabase {
    addr: String,
    pub name: String,
}

impl PgDatabase {
    /// Creates an empty database with a name no other test uses.
    pub fn create(addr: &str) -> Result<Self, SqlError> {
        static N: AtomicU32 = AtomicU32::new(0);
        let mut salt = [0u8; 4];
        let _ = getrandom::getrandom(&mut salt);
        let name = format!(
            "caretaker_t{}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            hex::encode(salt)
        );
        let mut admin = connect(addr, "postgres")?;
        admin.batch_execute(&format!("CREATE DATABASE {name}"))?;
        Ok(PgDatabase {
            addr: addr.to_owned(),
            name,
        })
    }

    /// The connection URL of this database.
    pub fn url(&self) -> String {
        let (host, port) = self.addr.rsplit_once(':').unwrap_or((&self.addr, "5432"));
        format!("postgres://postgres@{host}:{port}/{}", self.name)
    }

    pub fn connect(&self) -> Result<Db, SqlError> {
        Ok(Db::postgres(connect(&self.addr, &self.name)?))
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        match connect(&self.addr, "postgres") {
            Ok(mut admin) => {
                if let Err(e) = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name)) {
                    eprintln!("cannot drop test database {}: {e}", self.name);
                }
            }
            Err(e) => eprintln!("cannot drop test database {}: {e}", self.name),
        }
    }
}

fn connect(addr: &str, db: &str) -> Result<postgres::Client, SqlError> {
    let (host, port) = addr.rsplit_once(':').unwrap_or((addr, "5432"));
    let mut cfg = postgres::Config::new();
    cfg.host(host)
        .port(port.parse().unwrap_or(5432))
        .user("postgres")
        .dbname(db);
    Ok(cfg.connect(postgres::NoTls)?)
}
