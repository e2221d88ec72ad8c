//! Detection checkpoints: each host's rule-engine state as one blob
//! ([`crate::detect::Engine::checkpoint_host`]), so a restart, or another
//! collector, carries its windows on. Only this file knows the table; the
//! engine knows only the blobs.
//!
//! One row per host, replaced at each checkpoint: the blob, when it was
//! saved, and the fingerprint of the rules it was saved under (whether the
//! rules changed since can be told without reading the blob). The schema
//! is plain TEXT, INTEGER and BLOB so it carries over to PostgreSQL
//! (`BYTEA`) as it is.
//!
//! A checkpoint is kept only for a host with an agent in service: a
//! decommissioned host's row is deleted with it ([`delete_host`], from
//! [`crate::identity::decommission`]), and a later checkpoint of the state
//! the running engine still holds for it is not written ([`save`]), so it
//! does not come back at the next start.

use rusqlite::{Connection, params};

use super::StoreError;

pub(crate) const MIGRATION: &str = r#"
CREATE TABLE detect_checkpoints (
    host TEXT PRIMARY KEY,
    saved_at_ms INTEGER NOT NULL,
    rules_fingerprint TEXT NOT NULL,
    body BLOB NOT NULL
);
"#;

/// One host's stored checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub host: String,
    pub saved_at_ms: i64,
    pub rules_fingerprint: String,
    pub body: Vec<u8>,
}

/// Stores the checkpoints of `states` (`(host, blob)`), replacing each
/// host's previous one; a host without an agent in service is skipped.
/// Returns how many were stored.
pub fn save(
    conn: &Connection,
    rules_fingerprint: &str,
    saved_at_ms: i64,
    states: &[(String, Vec<u8>)],
) -> Result<usize, StoreError> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO detect_checkpoints (host, saved_at_ms, rules_fingerprint, body)
         SELECT ?1, ?2, ?3, ?4
         WHERE EXISTS (SELECT 1 FROM agents WHERE host = ?1 AND archived_at_ms IS NULL)
         ON CONFLICT (host) DO UPDATE SET saved_at_ms = excluded.saved_at_ms,
             rules_fingerprint = excluded.rules_fingerprint, body = excluded.body",
    )?;
    let mut n = 0;
    for (host, body) in states {
        n += stmt.execute(params![host, saved_at_ms, rules_fingerprint, body])?;
    }
    Ok(n)
}

/// Every host's checkpoint, by host name.
pub fn load_all(conn: &Connection) -> Result<Vec<Checkpoint>, StoreError> {
    let mut stmt =
        conn.prepare_cached("SELECT host, saved_at_ms, rules_fingerprint, body FROM detect_checkpoints ORDER BY host")?;
    let rows = stmt.query_map([], row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// One host's checkpoint.
pub fn load(conn: &Connection, host: &str) -> Result<Option<Checkpoint>, StoreError> {
    let mut stmt = conn
        .prepare_cached("SELECT host, saved_at_ms, rules_fingerprint, body FROM detect_checkpoints WHERE host = ?1")?;
    let mut rows = stmt.query_map(params![host], row)?;
    Ok(rows.next().transpose()?)
}

/// Deletes a host's checkpoint; whether there was one.
pub fn delete_host(conn: &Connection, host: &str) -> Result<bool, StoreError> {
    Ok(conn.execute("DELETE FROM detect_checkpoints WHERE host = ?1", params![host])? > 0)
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Checkpoint> {
    Ok(Checkpoint {
        host: r.get(0)?,
        saved_at_ms: r.get(1)?,
        rules_fingerprint: r.get(2)?,
        body: r.get(3)?,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn enroll(conn: &Connection, agent: &str, host: &str) {
        conn.execute(
            "INSERT INTO agents (agent_id, credential_hash, host, enrolled_at_ms) VALUES (?1, ?2, ?3, 0)",
            params![agent, format!("hash-{agent}"), host],
        )
        .unwrap();
    }

    #[test]
    fn a_checkpoint_is_replaced_loaded_and_deleted_by_host() {
        let conn = super::super::open_in_memory().unwrap();
        enroll(&conn, "a1", "web1");
        enroll(&conn, "a2", "db1");
        let states = vec![("web1".to_string(), vec![1, 2, 3]), ("db1".to_string(), vec![4])];
        assert_eq!(save(&conn, "r1", 10, &states).unwrap(), 2);
        assert_eq!(save(&conn, "r2", 20, &[("web1".to_string(), vec![9])]).unwrap(), 1);
        let all = load_all(&conn).unwrap();
        assert_eq!(all.iter().map(|c| c.host.as_str()).collect::<Vec<_>>(), ["db1", "web1"]);
        let web1 = load(&conn, "web1").unwrap().unwrap();
        assert_eq!(
            (web1.saved_at_ms, web1.rules_fingerprint.as_str(), web1.body),
            (20, "r2", vec![9])
        );
        assert!(delete_host(&conn, "web1").unwrap());
        assert_eq!(load(&conn, "web1").unwrap(), None);
        assert!(!delete_host(&conn, "web1").unwrap());
    }

    // A decommissioned host's checkpoint went with it, but the running
    // engine still held its state: the next checkpoint must not bring the
    // row back (it would be restored at every start).
    #[test]
    fn a_decommissioned_host_gets_no_checkpoint_back() {
        let conn = super::super::open_in_memory().unwrap();
        enroll(&conn, "a1", "web1");
        save(&conn, "r", 10, &[("web1".to_string(), vec![1])]).unwrap();
        crate::identity::decommission(&conn, "web1", 20).unwrap();
        assert_eq!(load(&conn, "web1").unwrap(), None);
        assert_eq!(save(&conn, "r", 30, &[("web1".to_string(), vec![2])]).unwrap(), 0);
        assert!(load_all(&conn).unwrap().is_empty());
    }
}
