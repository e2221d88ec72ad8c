//! Leases and the replica register: how collector replicas sharing one
//! store divide the work, with the store as the only coordination point.
//!
//! A lease (`leases`) names a piece of work — a host's detection (`kind`
//! `host`, `name` the host) or a fleet-wide job (`kind` `job`: the lifecycle
//! sweep, one sink's delivery, retention, the monthly reports) — and the
//! replica that holds it. Every change is one conditional statement, so two
//! replicas racing for a lease cannot both win it: the row's primary key and
//! the `WHERE` of the upsert decide.
//!
//! - A job's lease runs until its `expires_at_ms`: the holder renews it well
//!   before; a replica that dies stops renewing, and another claims the job
//!   once it has expired.
//! - A host's lease lasts as long as its holder's heartbeat in the register
//!   is fresh (its `expires_at_ms` is not read): a replica holding thousands
//!   of hosts renews them all by writing one row, and a replica that dies
//!   leaves them all to be adopted once its heartbeat is older than a lease.
//!
//! The register (`replicas`) is each replica's heartbeat with the
//! fingerprints of the rule and contracts files it runs on, so a replica
//! started on other files than its peers is seen (and shown on `/metrics`).

use super::StoreError;
use super::sql::{Sql, SqlExt, args};

pub(crate) const MIGRATION: &str = r#"
CREATE TABLE leases (
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    owner TEXT NOT NULL,
    expires_at_ms INTEGER NOT NULL,
    PRIMARY KEY (kind, name)
);
CREATE INDEX leases_owner ON leases(owner, kind);
CREATE TABLE replicas (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    started_at_ms INTEGER NOT NULL,
    seen_at_ms INTEGER NOT NULL,
    rules_fingerprint TEXT NOT NULL,
    contracts_fingerprint TEXT NOT NULL
);
"#;

/// What a lease is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// One host's detection (rule engine state, absence rules).
    Host,
    /// A fleet-wide job that must run in one replica at a time.
    Job,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Host => "host",
            Kind::Job => "job",
        }
    }
}

/// Takes or renews the job lease `name` for `owner` until `until_ms` when
/// it is free, expired at `now_ms`, or already `owner`'s. Whether `owner`
/// holds it now.
pub fn claim(db: &dyn Sql, name: &str, owner: &str, now_ms: i64, until_ms: i64) -> Result<bool, StoreError> {
    let changed = db.execute(
        "INSERT INTO leases (kind, name, owner, expires_at_ms) VALUES (?1, ?2, ?3, ?5)
         ON CONFLICT (kind, name) DO UPDATE SET owner = excluded.owner, expires_at_ms = excluded.expires_at_ms
         WHERE leases.owner = excluded.owner OR leases.expires_at_ms <= ?4",
        args![Kind::Job.as_str(), name, owner, now_ms, until_ms],
    )?;
    Ok(changed > 0)
}

/// Takes the lease of host `host` for `owner` whoever holds it: ownership of
/// a host follows its reports. Answers the previous holder (`None`: there
/// was no lease).
pub fn take(db: &dyn Sql, host: &str, owner: &str) -> Result<Option<String>, StoreError> {
    let before: Option<String> = db.value(
        "SELECT owner FROM leases WHERE kind = ?1 AND name = ?2",
        args![Kind::Host.as_str(), host],
    )?;
    db.execute(
        "INSERT INTO leases (kind, name, owner, expires_at_ms) VALUES (?1, ?2, ?3, 0)
         ON CONFLICT (kind, name) DO UPDATE SET owner = excluded.owner",
        args![Kind::Host.as_str(), host, owner],
    )?;
    Ok(before)
}

/// The hosts whose lease `owner` holds (a host missing from the answer was
/// taken over).
pub fn hosts_held(db: &dyn Sql, owner: &str) -> Result<Vec<String>, StoreError> {
    Ok(db.query(
        "SELECT name FROM leases WHERE kind = ?1 AND owner = ?2 ORDER BY name",
        args![Kind::Host.as_str(), owner],
        |r| r.get(0),
    )?)
}

/// SQL: whether the holder of a `leases` row has a heartbeat at or after
/// the statement's parameter `since` (its number): whether a host's lease
/// still stands.
fn owner_live(since: usize) -> String {
    format!("EXISTS (SELECT 1 FROM replicas r WHERE r.id = leases.owner AND r.seen_at_ms >= ?{since})")
}

/// Refreshes `id`'s heartbeat to `now_ms` (the detection task's round: the
/// hosts it evaluates stand on it, whatever the coordinator is doing).
/// Whether `id` is in the register (a replica that left is not put back).
pub fn touch(db: &dyn Sql, id: &str, now_ms: i64) -> Result<bool, StoreError> {
    Ok(db.execute(
        "UPDATE replicas SET seen_at_ms = ?2 WHERE id = ?1 AND seen_at_ms < ?2",
        args![id, now_ms],
    )? > 0)
}

/// Takes host `host` for `owner` if nobody holds it, `owner` already does,
/// or its holder has no heartbeat since `live_since_ms`. One conditional
/// statement: of two replicas adopting the same host, one wins. Whether
/// `owner` holds it now.
pub fn claim_host(db: &dyn Sql, host: &str, owner: &str, live_since_ms: i64) -> Result<bool, StoreError> {
    let changed = db.execute(
        &format!(
            "INSERT INTO leases (kind, name, owner, expires_at_ms) VALUES ('host', ?1, ?2, 0)
             ON CONFLICT (kind, name) DO UPDATE SET owner = excluded.owner
             WHERE leases.owner = excluded.owner OR NOT {}",
            owner_live(3)
        ),
        args![host, owner, live_since_ms],
    )?;
    Ok(changed > 0)
}

/// Takes for `owner` the host leases whose holder has no heartbeat later
/// than `live_since_ms` (it died or stopped), those an earlier start of
/// the same replica held (ids beginning with `earlier_self`), and leases for
/// every host with a detection checkpoint and no lease at all (saved before
/// leases existed), at most `limit`. Answers the hosts taken.
pub fn adopt_orphans(
    db: &dyn Sql,
    owner: &str,
    earlier_self: &str,
    live_since_ms: i64,
    limit: usize,
) -> Result<Vec<String>, StoreError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let orphans: Vec<(String, Option<String>)> = db.query(
        &format!(
            "SELECT c.host, leases.owner FROM detect_checkpoints c
             LEFT JOIN leases ON leases.kind = 'host' AND leases.name = c.host
             WHERE leases.name IS NULL
                OR (leases.owner <> ?4 AND (NOT {} OR substr(leases.owner, 1, length(?3)) = ?3))
             ORDER BY c.host LIMIT ?2",
            owner_live(1)
        ),
        args![live_since_ms, limit, earlier_self, owner],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let mut taken = Vec::with_capacity(orphans.len());
    for (host, holder) in orphans {
        let mine_before = holder.is_some_and(|h| h.starts_with(earlier_self));
        if mine_before {
            take(db, &host, owner)?;
            taken.push(host);
            continue;
        }
        // Conditional again: another replica may adopt the same host now.
        if claim_host(db, &host, owner, live_since_ms)? {
            taken.push(host);
        }
    }
    Ok(taken)
}

/// The hosts another live replica than `owner` holds (a heartbeat since
/// `live_since_ms`). An earlier start of the same replica (ids beginning
/// with `earlier_self`) is no other replica: its hosts are this one's to
/// adopt, and to show meanwhile.
pub fn hosts_held_elsewhere(
    db: &dyn Sql,
    owner: &str,
    earlier_self: &str,
    live_since_ms: i64,
) -> Result<Vec<String>, StoreError> {
    Ok(db.query(
        &format!(
            "SELECT name FROM leases WHERE kind = 'host' AND owner <> ?1
               AND substr(owner, 1, length(?3)) <> ?3 AND {} ORDER BY name",
            owner_live(2)
        ),
        args![owner, live_since_ms, earlier_self],
        |r| r.get(0),
    )?)
}

/// How many leases of `kind` `owner` holds.
pub fn count_held(db: &dyn Sql, kind: Kind, owner: &str) -> Result<usize, StoreError> {
    let n: Option<i64> = db.value(
        "SELECT COUNT(*) FROM leases WHERE kind = ?1 AND owner = ?2",
        args![kind.as_str(), owner],
    )?;
    Ok(usize::try_from(n.unwrap_or(0)).unwrap_or(0))
}

/// Whether `owner` may write for `kind`/`name`: it holds the lease, or
/// nobody does.
pub fn may_write(db: &dyn Sql, kind: Kind, name: &str, owner: &str) -> Result<bool, StoreError> {
    let holder: Option<String> = db.value(
        "SELECT owner FROM leases WHERE kind = ?1 AND name = ?2",
        args![kind.as_str(), name],
    )?;
    Ok(holder.is_none_or(|h| h == owner))
}

/// Gives up every lease `owner` holds (a replica stopping): its peers take
/// them at their next round instead of after the expiry.
pub fn release_all(db: &dyn Sql, owner: &str) -> Result<u64, StoreError> {
    Ok(db.execute("DELETE FROM leases WHERE owner = ?1", args![owner])?)
}

/// One replica's entry in the register.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replica {
    pub id: String,
    pub name: String,
    pub started_at_ms: i64,
    pub seen_at_ms: i64,
    pub rules_fingerprint: String,
    pub contracts_fingerprint: String,
}

/// Writes `r`'s heartbeat (and the files it runs on).
pub fn heartbeat(db: &dyn Sql, r: &Replica) -> Result<(), StoreError> {
    db.execute(
        "INSERT INTO replicas (id, name, started_at_ms, seen_at_ms, rules_fingerprint, contracts_fingerprint)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)
         ON CONFLICT (id) DO UPDATE SET seen_at_ms = excluded.seen_at_ms,
             rules_fingerprint = excluded.rules_fingerprint, contracts_fingerprint = excluded.contracts_fingerprint",
        args![
            &r.id,
            &r.name,
            r.started_at_ms,
            r.seen_at_ms,
            &r.rules_fingerprint,
            &r.contracts_fingerprint
        ],
    )?;
    Ok(())
}

/// The replicas seen since `since_ms`, by name; older entries (replicas
/// long stopped) are deleted first.
pub fn live_replicas(db: &dyn Sql, since_ms: i64, forget_before_ms: i64) -> Result<Vec<Replica>, StoreError> {
    db.execute("DELETE FROM replicas WHERE seen_at_ms < ?1", args![forget_before_ms])?;
    Ok(db.query(
        "SELECT id, name, started_at_ms, seen_at_ms, rules_fingerprint, contracts_fingerprint
         FROM replicas WHERE seen_at_ms >= ?1 ORDER BY name, id",
        args![since_ms],
        |r| {
            Ok(Replica {
                id: r.get(0)?,
                name: r.get(1)?,
                started_at_ms: r.get(2)?,
                seen_at_ms: r.get(3)?,
                rules_fingerprint: r.get(4)?,
                contracts_fingerprint: r.get(5)?,
            })
        },
    )?)
}

/// Removes `id` from the register (a replica stopping).
pub fn leave(db: &dyn Sql, id: &str) -> Result<(), StoreError> {
    db.execute("DELETE FROM replicas WHERE id = ?1", args![id])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::store::testing::{add_agent, on_both};

    #[test]
    fn a_lease_goes_to_one_claimant_until_it_expires_and_then_to_the_next() {
        on_both(|db| {
            assert!(claim(db, "lifecycle", "r1", 1_000, 2_000).unwrap());
            assert!(!claim(db, "lifecycle", "r2", 1_500, 2_500).unwrap());
            // The holder renews.
            assert!(claim(db, "lifecycle", "r1", 1_900, 3_000).unwrap());
            assert!(!claim(db, "lifecycle", "r2", 2_999, 4_000).unwrap());
            // Expired: the next claimant has it, and the old holder no longer.
            assert!(claim(db, "lifecycle", "r2", 3_000, 4_000).unwrap());
            assert!(!claim(db, "lifecycle", "r1", 3_100, 4_100).unwrap());
            // Jobs are no hosts.
            assert!(hosts_held_elsewhere(db, "r1", "r1/", 0).unwrap().is_empty());
        });
    }

    /// A replica in the register, seen at `seen`.
    fn seen(db: &dyn Sql, id: &str, seen: i64) {
        heartbeat(
            db,
            &Replica {
                id: id.into(),
                name: id.split('/').next().unwrap_or(id).into(),
                started_at_ms: 1,
                seen_at_ms: seen,
                rules_fingerprint: String::new(),
                contracts_fingerprint: String::new(),
            },
        )
        .unwrap();
    }

    #[test]
    fn a_host_taken_by_another_replica_is_missing_from_the_old_owners_list() {
        on_both(|db| {
            seen(db, "r1", 10_000);
            seen(db, "r2", 10_000);
            assert_eq!(take(db, "web1", "r1").unwrap(), None);
            assert_eq!(take(db, "db1", "r1").unwrap(), None);
            assert_eq!(hosts_held(db, "r1").unwrap(), ["db1", "web1"]);
            // The host's reports now arrive at r2: it takes the host at once.
            assert_eq!(take(db, "web1", "r2").unwrap().as_deref(), Some("r1"));
            assert_eq!(hosts_held(db, "r1").unwrap(), ["db1"]);
            assert_eq!(hosts_held_elsewhere(db, "r1", "x/", 5_000).unwrap(), ["web1"]);
            assert_eq!(hosts_held_elsewhere(db, "r2", "x/", 5_000).unwrap(), ["db1"]);
            assert!(!may_write(db, Kind::Host, "web1", "r1").unwrap());
            assert!(may_write(db, Kind::Host, "web1", "r2").unwrap());
            assert!(may_write(db, Kind::Host, "new", "r1").unwrap());
            // A live holder keeps its host against an adopter; the holder
            // keeps it whatever its own heartbeat.
            assert!(!claim_host(db, "db1", "r2", 10_000).unwrap());
            assert!(claim_host(db, "db1", "r1", 99_000).unwrap());
            // r1's heartbeat is older than a lease: its hosts are no one's,
            // and an adopter gets them.
            assert!(hosts_held_elsewhere(db, "r2", "x/", 10_001).unwrap().is_empty());
            assert!(claim_host(db, "db1", "r2", 10_001).unwrap());
            assert_eq!(hosts_held(db, "r2").unwrap(), ["db1", "web1"]);
            // A heartbeat moves forward only, and only for a registered replica.
            assert!(touch(db, "r1", 20_000).unwrap());
            assert!(!touch(db, "r1", 15_000).unwrap());
            assert!(!touch(db, "gone", 20_000).unwrap());
            assert_eq!(release_all(db, "r2").unwrap(), 2);
            assert_eq!(hosts_held(db, "r2").unwrap(), Vec::<String>::new());
        });
    }

    #[test]
    fn hosts_whose_owner_died_or_that_never_had_one_are_adopted_once() {
        on_both(|db| {
            for (id, host) in [("a1", "web1"), ("a2", "db1"), ("a3", "mail1")] {
                add_agent(db, id, host);
            }
            let states: Vec<(String, Vec<u8>)> = ["web1", "db1", "mail1"]
                .iter()
                .map(|h| (h.to_string(), vec![1]))
                .collect();
            crate::store::checkpoints::save(db, "r", 1, &states, None).unwrap();
            // db1 is on r1, alive; web1's owner r0 stopped beating; mail1 never had one.
            seen(db, "r1/1", 50_000);
            seen(db, "r0/1", 5_000);
            seen(db, "r2/2", 10_000);
            seen(db, "r3/1", 10_000);
            take(db, "db1", "r1/1").unwrap();
            take(db, "web1", "r0/1").unwrap();
            let live_since = 10_000 - 3_000;
            assert_eq!(
                adopt_orphans(db, "r2/2", "r2/", live_since, 100).unwrap(),
                ["mail1", "web1"]
            );
            assert_eq!(
                adopt_orphans(db, "r3/1", "r3/", live_since, 100).unwrap(),
                Vec::<String>::new()
            );
            assert_eq!(hosts_held(db, "r2/2").unwrap(), ["mail1", "web1"]);
            // A replica whose own heartbeat is late does not adopt its own
            // hosts again (that would drop their state).
            assert_eq!(
                adopt_orphans(db, "r2/2", "r2/", 20_000, 100).unwrap(),
                Vec::<String>::new()
            );
            // r2 restarted: its new start takes what the old one held at once.
            seen(db, "r2/3", 11_000);
            assert_eq!(
                adopt_orphans(db, "r2/3", "r2/", live_since, 100).unwrap(),
                ["mail1", "web1"]
            );
            assert_eq!(hosts_held(db, "r2/2").unwrap(), Vec::<String>::new());
        });
    }

    #[test]
    fn the_register_lists_replicas_seen_lately_and_forgets_the_long_gone() {
        on_both(|db| {
            let r = |id: &str, seen: i64, rules: &str| Replica {
                id: id.into(),
                name: format!("n-{id}"),
                started_at_ms: 1,
                seen_at_ms: seen,
                rules_fingerprint: rules.into(),
                contracts_fingerprint: "c".into(),
            };
            heartbeat(db, &r("a", 100, "x")).unwrap();
            heartbeat(db, &r("b", 100, "y")).unwrap();
            heartbeat(db, &r("old", 1, "x")).unwrap();
            heartbeat(db, &r("a", 200, "z")).unwrap();
            let live = live_replicas(db, 50, 10).unwrap();
            assert_eq!(
                live.iter()
                    .map(|r| (r.id.as_str(), r.seen_at_ms, r.rules_fingerprint.as_str()))
                    .collect::<Vec<_>>(),
                [("a", 200, "z"), ("b", 100, "y")]
            );
            leave(db, "a").unwrap();
            assert_eq!(live_replicas(db, 0, 0).unwrap().len(), 1);
        });
    }
}
