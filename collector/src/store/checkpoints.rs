//! Detection checkpoints: each host's rule-engine state as one blob
//! (`detect::Engine::checkpoint_host`), so a restart, or another
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
//! `identity::decommission`), and a later checkpoint of the state
//! the running engine still holds for it is not written ([`save`]), so it
//! does not come back at the next start.

use super::StoreError;
use super::sql::{Row, Sql, SqlError, SqlExt, args};

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
/// host's previous one; a host without an agent in service is skipped, and
/// with `owner`, so is a host whose lease another replica holds (its state
/// there is newer than this one's). Returns how many were stored.
pub fn save(
    db: &dyn Sql,
    rules_fingerprint: &str,
    saved_at_ms: i64,
    states: &[(String, Vec<u8>)],
    owner: Option<&str>,
) -> Result<usize, StoreError> {
    let mut n = 0;
    for (host, body) in states {
        if let Some(owner) = owner
            && !super::leases::may_write(db, super::leases::Kind::Host, host, owner)?
        {
            continue;
        }
        let in_service = db
            .value::<i64>(
                "SELECT 1 FROM agents WHERE host = ?1 AND archived_at_ms IS NULL LIMIT 1",
                args![host],
            )?
            .is_some();
        if !in_service {
            continue;
        }
        db.execute(
            "INSERT INTO detect_checkpoints (host, saved_at_ms, rules_fingerprint, body) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (host) DO UPDATE SET saved_at_ms = excluded.saved_at_ms,
                 rules_fingerprint = excluded.rules_fingerprint, body = excluded.body",
            args![host, saved_at_ms, rules_fingerprint, body],
        )?;
        n += 1;
    }
    Ok(n)
}

/// Every host's checkpoint, by host name.
pub fn load_all(db: &dyn Sql) -> Result<Vec<Checkpoint>, StoreError> {
    Ok(db.query(
        "SELECT host, saved_at_ms, rules_fingerprint, body FROM detect_checkpoints ORDER BY host",
        args![],
        row,
    )?)
}

/// One host's checkpoint.
pub fn load(db: &dyn Sql, host: &str) -> Result<Option<Checkpoint>, StoreError> {
    Ok(db.query_opt(
        "SELECT host, saved_at_ms, rules_fingerprint, body FROM detect_checkpoints WHERE host = ?1",
        args![host],
        row,
    )?)
}

/// Deletes a host's checkpoint; whether there was one.
pub fn delete_host(db: &dyn Sql, host: &str) -> Result<bool, StoreError> {
    Ok(db.execute("DELETE FROM detect_checkpoints WHERE host = ?1", args![host])? > 0)
}

fn row(r: &Row<'_>) -> Result<Checkpoint, SqlError> {
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
    use crate::store::testing::{add_agent, on_both};

    #[test]
    fn a_checkpoint_is_replaced_loaded_and_deleted_by_host() {
        on_both(|db| {
            add_agent(db, "a1", "web1");
            add_agent(db, "a2", "db1");
            let states = vec![("web1".to_string(), vec![1, 2, 3]), ("db1".to_string(), vec![4])];
            assert_eq!(save(db, "r1", 10, &states, None).unwrap(), 2);
            assert_eq!(save(db, "r2", 20, &[("web1".to_string(), vec![9])], None).unwrap(), 1);
            let all = load_all(db).unwrap();
            assert_eq!(all.iter().map(|c| c.host.as_str()).collect::<Vec<_>>(), ["db1", "web1"]);
            let web1 = load(db, "web1").unwrap().unwrap();
            assert_eq!(
                (web1.saved_at_ms, web1.rules_fingerprint.as_str(), web1.body),
                (20, "r2", vec![9])
            );
            assert!(delete_host(db, "web1").unwrap());
            assert_eq!(load(db, "web1").unwrap(), None);
            assert!(!delete_host(db, "web1").unwrap());
        });
    }

    // A decommissioned host's checkpoint went with it, but the running
    // engine still held its state: the next checkpoint must not bring the
    // row back (it would be restored at every start).
    #[test]
    fn a_decommissioned_host_gets_no_checkpoint_back() {
        on_both(|db| {
            add_agent(db, "a1", "web1");
            save(db, "r", 10, &[("web1".to_string(), vec![1])], None).unwrap();
            // What decommissioning does to the agent and its checkpoint.
            db.execute("UPDATE agents SET archived_at_ms = 20 WHERE agent_id = 'a1'", args![])
                .unwrap();
            delete_host(db, "web1").unwrap();
            assert_eq!(save(db, "r", 30, &[("web1".to_string(), vec![2])], None).unwrap(), 0);
            assert!(load_all(db).unwrap().is_empty());
        });
    }
}
