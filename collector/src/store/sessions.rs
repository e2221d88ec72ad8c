//! Web sessions (`web_sessions`): one row per logged-in browser, keyed by
//! the SHA-256 of its cookie's value, with the user it names, the
//! fingerprint of that user's password hash at login, its CSRF token and
//! its expiry. What a session lets through is the web layer's
//! (`sessions`); this module keeps the rows.
//!
//! The column `user` is a reserved word on PostgreSQL, so statements write
//! it `"user"` (which SQLite reads as the same column).

use super::sql::{Sql, SqlError, SqlExt, args};

/// Schema on SQLite, applied as one migration by [`crate::store`].
pub const MIGRATION: &str = r#"
CREATE TABLE web_sessions (
    -- SHA-256 (hex) of the cookie's value.
    id_hash TEXT PRIMARY KEY,
    user TEXT NOT NULL,
    -- SHA-256 of the user's password hash at login: a changed password ends the session.
    password_fp TEXT NOT NULL,
    csrf TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    expires_at_ms INTEGER NOT NULL
);
CREATE INDEX web_sessions_expiry ON web_sessions(expires_at_ms);
"#;

/// A stored session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSession {
    pub user: String,
    pub password_fp: String,
    pub csrf: String,
    pub expires_at_ms: i64,
}

/// Web sessions, on any connection or transaction.
pub trait WebSessions: Sql {
    /// Stores session `id_hash`, created at `created_at_ms`; a second
    /// session with the same hash is refused (a unique violation).
    fn insert_session(&self, id_hash: &str, s: &StoredSession, created_at_ms: i64) -> Result<(), SqlError> {
        self.execute(
            r#"INSERT INTO web_sessions (id_hash, "user", password_fp, csrf, created_at_ms, expires_at_ms)
               VALUES (?1, ?2, ?3, ?4, ?5, ?6)"#,
            args![
                id_hash,
                &s.user,
                &s.password_fp,
                &s.csrf,
                created_at_ms,
                s.expires_at_ms
            ],
        )?;
        Ok(())
    }

    /// Session `id_hash`, expired or not.
    fn session(&self, id_hash: &str) -> Result<Option<StoredSession>, SqlError> {
        self.query_opt(
            r#"SELECT "user", password_fp, csrf, expires_at_ms FROM web_sessions WHERE id_hash = ?1"#,
            args![id_hash],
            |r| {
                Ok(StoredSession {
                    user: r.get(0)?,
                    password_fp: r.get(1)?,
                    csrf: r.get(2)?,
                    expires_at_ms: r.get(3)?,
                })
            },
        )
    }

    /// Deletes session `id_hash`; how many rows went (0 or 1).
    fn delete_session(&self, id_hash: &str) -> Result<u64, SqlError> {
        self.execute("DELETE FROM web_sessions WHERE id_hash = ?1", args![id_hash])
    }

    /// Deletes the sessions expired at `now_ms` (expiry at or before it);
    /// how many.
    fn prune_sessions(&self, now_ms: i64) -> Result<u64, SqlError> {
        self.execute("DELETE FROM web_sessions WHERE expires_at_ms <= ?1", args![now_ms])
    }

    /// How many sessions are stored, live or expired.
    fn session_count(&self) -> Result<i64, SqlError> {
        self.query_one("SELECT COUNT(*) FROM web_sessions", args![], |r| r.get(0))
    }

    /// The id hashes of every stored session, in order: what a copy of the
    /// store would show of the cookies.
    fn session_id_hashes(&self) -> Result<Vec<String>, SqlError> {
        self.query("SELECT id_hash FROM web_sessions ORDER BY id_hash", args![], |r| {
            r.get(0)
        })
    }
}

impl<S: Sql + ?Sized> WebSessions for S {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::on_both;

    fn session(user: &str, expires_at_ms: i64) -> StoredSession {
        StoredSession {
            user: user.into(),
            password_fp: format!("fp of {user}"),
            csrf: format!("csrf of {user}"),
            expires_at_ms,
        }
    }

    #[test]
    fn a_session_is_stored_read_back_and_deleted_by_its_hash() {
        on_both(|db| {
            assert_eq!(db.session("h1").ok(), Some(None));
            let ana = session("ana", 1_000);
            assert!(db.insert_session("h1", &ana, 10).is_ok());
            assert!(db.insert_session("h2", &session("bo", 2_000), 10).is_ok());
            assert_eq!(db.session("h1").ok(), Some(Some(ana)));
            assert_eq!(db.session_count().ok(), Some(2));
            assert_eq!(
                db.session_id_hashes().ok(),
                Some(vec!["h1".to_string(), "h2".to_string()])
            );
            assert_eq!(db.delete_session("h1").ok(), Some(1));
            assert_eq!(db.delete_session("h1").ok(), Some(0));
            assert_eq!(db.session("h1").ok(), Some(None));
            assert_eq!(db.session("h2").ok().flatten().map(|s| s.user), Some("bo".into()));
        });
    }

    #[test]
    fn a_second_session_with_the_same_hash_is_refused() {
        on_both(|db| {
            assert!(db.insert_session("h1", &session("ana", 1_000), 10).is_ok());
            let again = db.insert_session("h1", &session("bo", 2_000), 20);
            assert!(again.as_ref().is_err_and(SqlError::is_unique_violation), "{again:?}");
            assert_eq!(db.session("h1").ok().flatten().map(|s| s.user), Some("ana".into()));
        });
    }

    #[test]
    fn pruning_deletes_the_sessions_expired_at_or_before_now() {
        on_both(|db| {
            for (h, exp) in [("a", 100), ("b", 200), ("c", 300)] {
                assert!(db.insert_session(h, &session(h, exp), 0).is_ok());
            }
            assert_eq!(db.prune_sessions(99).ok(), Some(0));
            assert_eq!(db.prune_sessions(200).ok(), Some(2));
            assert_eq!(db.session_id_hashes().ok(), Some(vec!["c".to_string()]));
            assert_eq!(db.session_count().ok(), Some(1));
        });
    }
}
