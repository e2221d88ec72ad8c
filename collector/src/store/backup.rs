//! The store's integrity and its copies: `PRAGMA quick_check` before `serve`
//! opens the store (and on a schedule while it runs), the refusal to start
//! on a damaged, empty or missing store where one is expected, and
//! `backup`, a consistent copy made with SQLite's online backup API while
//! the collector goes on writing.
//!
//! A store is expected once the data dir was initialized (`ca.key` exists):
//! an empty database file there is a lost store, not a new one, and opening
//! it would migrate it into an empty store whose tokens no agent has.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::pki::Paths;

/// What to tell the operator when the store cannot be used.
pub const RESTORE_HINT: &str = "restore the last backup: stop the collector, copy the file made by \
     `caretaker-collector backup` to DATA_DIR/caretaker.db, delete caretaker.db-wal and caretaker.db-shm \
     beside it, and start again (README: \"Backup and restore\")";

#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("{path} is missing, but {data_dir} was initialized ({ca_key} exists): the store is lost; {hint}")]
    Missing {
        path: PathBuf,
        data_dir: PathBuf,
        ca_key: PathBuf,
        hint: &'static str,
    },
    #[error("{path} is empty, but {data_dir} was initialized ({ca_key} exists): the store is lost; {hint}")]
    Empty {
        path: PathBuf,
        data_dir: PathBuf,
        ca_key: PathBuf,
        hint: &'static str,
    },
    #[error("{path} is damaged (quick_check: {problems}); {hint}")]
    Damaged {
        path: PathBuf,
        problems: String,
        hint: &'static str,
    },
    #[error("{path}: {source}")]
    Sql { path: PathBuf, source: rusqlite::Error },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// Runs `PRAGMA quick_check` on `conn`: `Ok(())` or the problems it lists
/// (the first few, joined).
pub fn quick_check(conn: &Connection) -> Result<Result<(), String>, rusqlite::Error> {
    let mut stmt = conn.prepare("PRAGMA quick_check(20)")?;
    let rows: Vec<String> = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<Result<_, _>>()?;
    if rows.len() == 1 && rows[0] == "ok" {
        Ok(Ok(()))
    } else {
        Ok(Err(rows.join("; ")))
    }
}

/// Checks the store of an initialized data dir before `serve` opens it: it
/// must exist, not be empty, and pass `quick_check`. A data dir not
/// initialized yet is left to the caller (which asks for `init`).
pub fn check_before_serve(data_dir: &Path) -> Result<(), CheckError> {
    let paths = Paths::new(data_dir);
    let path = paths.database.clone();
    if !paths.ca_key.exists() {
        return Ok(());
    }
    let len = match std::fs::metadata(&path) {
        Ok(m) => m.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(CheckError::Missing {
                path,
                data_dir: data_dir.to_path_buf(),
                ca_key: paths.ca_key,
                hint: RESTORE_HINT,
            });
        }
        Err(source) => return Err(CheckError::Io { path, source }),
    };
    if len == 0 {
        return Err(CheckError::Empty {
            path,
            data_dir: data_dir.to_path_buf(),
            ca_key: paths.ca_key,
            hint: RESTORE_HINT,
        });
    }
    check_file(&path)
}

/// `quick_check` on a database file, read-write so a WAL left by a crash is
/// recovered first, as `serve` would; a file SQLite cannot even read as a
/// database is damaged too.
pub fn check_file(path: &Path) -> Result<(), CheckError> {
    let damaged = |problems: String| CheckError::Damaged {
        path: path.to_path_buf(),
        problems,
        hint: RESTORE_HINT,
    };
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|source| CheckError::Sql {
        path: path.to_path_buf(),
        source,
    })?;
    let _ = conn.busy_timeout(Duration::from_secs(5));
    match quick_check(&conn) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(problems)) => Err(damaged(problems)),
        // "file is not a database", "database disk image is malformed".
        Err(rusqlite::Error::SqliteFailure(e, msg))
            if matches!(
                e.code,
                rusqlite::ErrorCode::DatabaseCorrupt | rusqlite::ErrorCode::NotADatabase
            ) =>
        {
            Err(damaged(msg.unwrap_or_else(|| e.to_string())))
        }
        Err(source) => Err(CheckError::Sql {
            path: path.to_path_buf(),
            source,
        }),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0} does not exist: is it a collector data directory?")]
    NoStore(PathBuf),
    #[error("{path}: {source}")]
    Sql { path: PathBuf, source: rusqlite::Error },
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{0} stayed locked for a minute; try again")]
    Busy(PathBuf),
    #[error("the copy fails its integrity check ({0}): the store itself is damaged; keep the previous backup")]
    Damaged(String),
}

/// Copies the store of `data_dir` to `to` while the collector may be
/// running: SQLite's online backup API reads one consistent snapshot (in
/// WAL mode the writer carries on meanwhile), into a temporary file beside
/// `to` that is checked and then renamed, so `to` is always a whole,
/// checked copy. Returns the copy's size in bytes.
pub fn backup(data_dir: &Path, to: &Path) -> Result<u64, BackupError> {
    let source_path = Paths::new(data_dir).database;
    if !source_path.exists() {
        return Err(BackupError::NoStore(source_path));
    }
    let sql = |path: &Path| {
        let path = path.to_path_buf();
        move |source| BackupError::Sql { path, source }
    };
    let src = Connection::open_with_flags(
        &source_path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(sql(&source_path))?;
    src.busy_timeout(Duration::from_secs(30)).map_err(sql(&source_path))?;
    let mut tmp = to.as_os_str().to_owned();
    tmp.push(".partial");
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    let copied = (|| {
        let mut dst = Connection::open(&tmp).map_err(sql(&tmp))?;
        {
            use rusqlite::backup::{Backup, StepResult};
            let b = Backup::new(&src, &mut dst).map_err(sql(&tmp))?;
            // All pages in one step: one read snapshot, so a busy writer
            // cannot make the copy start over again and again. Busy (a
            // checkpoint holds a lock) is retried for up to a minute.
            let mut busy = 0;
            loop {
                match b.step(-1).map_err(sql(&source_path))? {
                    StepResult::Done => break,
                    StepResult::More => {}
                    _ if busy < 600 => {
                        busy += 1;
                        std::thread::sleep(Duration::from_millis(100));
                    }
                    _ => {
                        return Err(BackupError::Busy(source_path.clone()));
                    }
                }
            }
        }
        if let Err(problems) = quick_check(&dst).map_err(sql(&tmp))? {
            return Err(BackupError::Damaged(problems));
        }
        // A standalone file: no WAL to carry around with it.
        dst.pragma_update(None, "journal_mode", "DELETE").map_err(sql(&tmp))?;
        dst.close().map_err(|(_, e)| sql(&tmp)(e))?;
        let f = std::fs::File::open(&tmp).map_err(|source| BackupError::Io {
            path: tmp.clone(),
            source,
        })?;
        f.sync_all().map_err(|source| BackupError::Io {
            path: tmp.clone(),
            source,
        })?;
        std::fs::rename(&tmp, to).map_err(|source| BackupError::Io {
            path: to.to_path_buf(),
            source,
        })?;
        std::fs::metadata(to)
            .map(|m| m.len())
            .map_err(|source| BackupError::Io {
                path: to.to_path_buf(),
                source,
            })
    })();
    if copied.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    copied
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn initialized(dir: &Path) {
        std::fs::write(dir.join("ca.key"), "key").unwrap();
    }

    #[test]
    fn an_empty_or_missing_store_of_an_initialized_dir_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        // Not initialized: for `init` to say.
        assert!(check_before_serve(dir.path()).is_ok());
        initialized(dir.path());
        let e = check_before_serve(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("caretaker.db is missing") && e.contains("restore the last backup"),
            "{e}"
        );
        std::fs::write(dir.path().join("caretaker.db"), "").unwrap();
        let e = check_before_serve(dir.path()).unwrap_err().to_string();
        assert!(
            e.contains("caretaker.db is empty") && e.contains("ca.key exists"),
            "{e}"
        );
    }

    #[test]
    fn a_good_store_passes_and_its_backup_too() {
        let dir = tempfile::tempdir().unwrap();
        initialized(dir.path());
        let conn = crate::store::open(&Paths::new(dir.path()).database, crate::config::Synchronous::Full).unwrap();
        crate::store::agents::Agents::add_api_token(&conn, "hash", "t", 0).unwrap();
        assert!(check_before_serve(dir.path()).is_ok());
        let to = dir.path().join("backup.db");
        let size = backup(dir.path(), &to).unwrap();
        assert!(size > 0);
        assert!(check_file(&to).is_ok());
        let copy = Connection::open(&to).unwrap();
        let n: i64 = copy
            .query_row("SELECT count(*) FROM api_tokens", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 1);
        assert!(!dir.path().join("backup.db.partial").exists());
    }

    #[test]
    fn a_file_that_is_not_a_database_is_damaged() {
        let dir = tempfile::tempdir().unwrap();
        initialized(dir.path());
        std::fs::write(dir.path().join("caretaker.db"), vec![0x5a; 8192]).unwrap();
        let e = check_before_serve(dir.path()).unwrap_err();
        assert!(matches!(e, CheckError::Damaged { .. }), "{e}");
        assert!(e.to_string().contains("restore the last backup"), "{e}");
    }
}
