//! Where a collector's store lives: the SQLite file in its data directory
//! (the default) or a PostgreSQL database named in `[store]`. `serve`, `init`
//! and the commands that read or change the store all open it through here,
//! so each finds the same store.

use std::path::{Path, PathBuf};

use super::postgres::{self, ConnectError, MigrateError};
use super::sql::Db;
use super::{Readers, StoreError};
use crate::config::{Backend, StoreConfig, Synchronous};

#[derive(Debug, thiserror::Error)]
pub enum PlaceError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("PostgreSQL at {target}: {source}")]
    Migrate { target: String, source: MigrateError },
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("{} does not exist: is {} a collector data directory?", file.display(), data_dir.display())]
    Missing { file: PathBuf, data_dir: PathBuf },
}

/// The store a collector uses.
#[derive(Debug, Clone)]
pub enum Place {
    /// `caretaker.db` in the data directory.
    Sqlite { file: PathBuf, synchronous: Synchronous },
    /// A PostgreSQL database: the driver's connection settings, password included.
    Postgres(Box<::postgres::Config>),
}

impl Place {
    /// The store `[store]` names, for the data directory `data_dir`.
    pub fn of(cfg: &StoreConfig, data_dir: &Path) -> Result<Self, PlaceError> {
        Ok(match (cfg.backend(), &cfg.url) {
            (Backend::Postgresql, Some(url)) => {
                Place::Postgres(Box::new(postgres::settings(url, cfg.password_file.as_deref())?))
            }
            // A config without a URL is refused at load; the file is the default.
            _ => Place::Sqlite {
                file: crate::pki::Paths::new(data_dir).database,
                synchronous: cfg.synchronous,
            },
        })
    }

    pub fn is_sqlite(&self) -> bool {
        matches!(self, Place::Sqlite { .. })
    }

    /// Where it is, for messages (never a password).
    pub fn describe(&self) -> String {
        match self {
            Place::Sqlite { file, .. } => file.display().to_string(),
            Place::Postgres(s) => format!("postgresql://{}", postgres::describe(s)),
        }
    }

    /// The writer's connection, the schema brought up to date first.
    pub fn open(&self) -> Result<Db, PlaceError> {
        match self {
            Place::Sqlite { file, synchronous } => Ok(Db::sqlite(super::open(file, *synchronous)?)),
            Place::Postgres(s) => {
                let db = Db::postgres_reconnecting((**s).clone()).map_err(|e| {
                    PlaceError::Connect(ConnectError::Connect {
                        target: postgres::describe(s),
                        source: e,
                    })
                })?;
                postgres::migrate(&db).map_err(|source| PlaceError::Migrate {
                    target: postgres::describe(s),
                    source,
                })?;
                Ok(db)
            }
        }
    }

    /// The store of an existing collector, for a command beside `serve`:
    /// an SQLite file must be there already (a command never starts an
    /// empty store by mistake); `read_only` opens it without migrating.
    pub fn open_existing(&self, read_only: bool) -> Result<Db, PlaceError> {
        match self {
            Place::Sqlite { file, .. } => {
                if !file.exists() {
                    return Err(PlaceError::Missing {
                        file: file.clone(),
                        data_dir: file.parent().map(Path::to_path_buf).unwrap_or_default(),
                    });
                }
                let conn = if read_only {
                    super::open_read_only(file)?
                } else {
                    // Writes wait for `serve`'s: SQLite serialises them.
                    super::open(file, Synchronous::Full)?
                };
                Ok(Db::sqlite(conn))
            }
            Place::Postgres(_) => self.open(),
        }
    }

    /// `size` read connections (the store must exist: open it first).
    pub fn readers(&self, size: usize) -> Result<Readers, PlaceError> {
        Ok(match self {
            Place::Sqlite { file, .. } => Readers::open(file, size)?,
            Place::Postgres(s) => Readers::postgres(s, size)?,
        })
    }
}
