//! Several collectors on one store: who does what.
//!
//! Every collector is a replica, alone or with peers; the store (on
//! PostgreSQL, for peers) is the one coordination point, through the rows of
//! [`crate::store::leases`]:
//!
//! - **Fleet-wide jobs run once.** The lifecycle sweep (SLA breaches,
//!   escalations, auto-resolve, satisfaction timeouts) with the fleet-wide
//!   gauges on `/metrics`, each sink's delivery, retention and the monthly
//!   reports are each a lease. Every round (a third of `[replicas]
//!   lease_secs`) the coordinator renews the jobs it holds and claims those
//!   free or expired; a job runs only while [`Replica::holds`] it, which
//!   lapses on its own when rounds stop succeeding (a replica cut off from
//!   the store stops its jobs before its leases expire for the others).
//! - **A host's detection runs where its reports arrive.** Agents stick to
//!   one replica, so the replica that receives a host's report takes the
//!   host's lease and, when it came from another replica, first restores
//!   the host's engine state from its checkpoint (see
//!   [`crate::detect::live`]). The detection windows need the samples in
//!   memory where they arrive: handing each report to another process
//!   would read every report back from the store. A host whose owner died
//!   and that does not report (its absence is what must be detected) is
//!   adopted by another replica once the owner's heartbeat is older than a
//!   lease (a host's lease stands on its owner's heartbeat, so thousands
//!   of hosts are renewed by one row). For a moment two
//!   replicas may both evaluate a host; the unique index on open items
//!   keeps that to one case.
//! - **The register** holds each replica's heartbeat with the fingerprints
//!   of its rule and contracts files: replicas on different files are
//!   logged and shown on `/metrics` (`caretaker_config_mismatch`).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::metrics::Metrics;
use crate::store::StoreError;
use crate::store::leases::{self, Kind};
use crate::writer::Writer;

/// The lifecycle sweep, and with it the fleet-wide gauges.
pub const LIFECYCLE: &str = "lifecycle";
/// Retention: the report log, raw reports, delivered outbox rows, sessions.
pub const RETENTION: &str = "retention";
/// The monthly inspection reports.
pub const REPORTS: &str = "reports";

/// The job delivering the outbox to sink `name`.
pub fn deliver_job(name: &str) -> String {
    format!("deliver:{name}")
}

/// A replica forgets a peer not seen for this long.
const FORGET_PEERS_MS: i64 = 24 * 3_600_000;

/// This collector as one replica among its peers.
#[derive(Debug)]
pub struct Replica {
    /// The lease holder's id: the name and this start, so a restarted
    /// replica is a new holder and knows its earlier self by the name.
    pub id: String,
    pub name: String,
    pub lease: Duration,
    started_at_ms: i64,
    /// The jobs held, each until when (this process's clock).
    jobs: Mutex<HashMap<String, Instant>>,
    /// Alone by construction (tests, a replay): holds every job.
    alone: bool,
}

impl Replica {
    pub fn new(name: &str, lease: Duration) -> Arc<Self> {
        let started_at_ms = caretaker_shared::now_ms();
        let tag = crate::auth::random_hex(4).unwrap_or_else(|_| format!("{:x}", std::process::id()));
        Arc::new(Self {
            id: format!("{name}/{started_at_ms}-{tag}"),
            name: name.to_string(),
            lease,
            started_at_ms,
            jobs: Mutex::default(),
            alone: false,
        })
    }

    /// A replica that holds every job without asking the store.
    pub fn alone() -> Arc<Self> {
        let mut r = Self::new("alone", Duration::from_secs(15));
        if let Some(r) = Arc::get_mut(&mut r) {
            r.alone = true;
        }
        r
    }

    /// Whether this replica runs `job` now.
    pub fn holds(&self, job: &str) -> bool {
        self.alone
            || self
                .jobs
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get(job)
                .is_some_and(|until| *until > Instant::now())
    }

    pub fn lease_ms(&self) -> i64 {
        i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX)
    }

    /// The prefix of the ids this replica's earlier starts held leases by.
    pub fn earlier_self(&self) -> String {
        format!("{}/", self.name)
    }

    /// How often leases are renewed: a third of their length, so two rounds
    /// may fail before one runs out.
    pub fn round(&self) -> Duration {
        self.lease / 3
    }
}

/// What one round found.
#[derive(Debug)]
struct Round {
    held: Vec<(String, bool)>,
    elsewhere: HashSet<String>,
    live: Vec<leases::Replica>,
    hosts: usize,
}

/// One round: the heartbeat, the jobs claimed or renewed, the hosts held
/// elsewhere, the live peers. Applied to `replica` and `metrics`.
pub async fn round(
    replica: &Arc<Replica>,
    writer: &Writer,
    metrics: &Metrics,
    jobs: &[String],
) -> Result<(), StoreError> {
    let began = Instant::now();
    let (rules, contracts) = metrics.config_fingerprints();
    let mut me = leases::Replica {
        id: replica.id.clone(),
        name: replica.name.clone(),
        started_at_ms: replica.started_at_ms,
        seen_at_ms: 0,
        rules_fingerprint: rules,
        contracts_fingerprint: contracts,
    };
    let (id, earlier, lease_ms, wanted) = (
        replica.id.clone(),
        replica.earlier_self(),
        replica.lease_ms(),
        jobs.to_vec(),
    );
    let found = writer
        .run(move |c| {
            // The time of the write, not of the queueing: the heartbeat is
            // what this replica's hosts' leases stand on, and a wait behind
            // a busy writer must not eat into them.
            let now = caretaker_shared::now_ms();
            me.seen_at_ms = now;
            leases::heartbeat(c, &me)?;
            let mut held = Vec::with_capacity(wanted.len());
            for job in wanted {
                let ok = leases::claim(c, &job, &id, now, now + lease_ms)?;
                held.push((job, ok));
            }
            let elsewhere = leases::hosts_held_elsewhere(c, &id, &earlier, now - lease_ms)?
                .into_iter()
                .collect();
            let live = leases::live_replicas(c, now - lease_ms, now - FORGET_PEERS_MS)?;
            let hosts = leases::count_held(c, Kind::Host, &id)?;
            Ok(Round {
                held,
                elsewhere,
                live,
                hosts,
            })
        })
        .await?;
    // Valid for two thirds of the lease from when the round began: the
    // holder stops before any peer can take the job over.
    let until = began + replica.lease * 2 / 3;
    {
        let mut jobs = replica.jobs.lock().unwrap_or_else(|p| p.into_inner());
        for (job, ok) in &found.held {
            let had = jobs.get(job).is_some_and(|u| *u > Instant::now());
            if *ok {
                if !had {
                    tracing::info!(job = %job, replica = %replica.name, "job taken on");
                }
                jobs.insert(job.clone(), until);
            } else {
                if had {
                    tracing::warn!(job = %job, replica = %replica.name, "job held by another replica now");
                }
                jobs.remove(job);
            }
        }
    }
    metrics.set_replica_view(
        replica,
        &found.held,
        found.hosts,
        &found.live,
        Arc::new(found.elsewhere),
    );
    Ok(())
}

/// Runs [`round`] every [`Replica::round`] until aborted; a failed round is
/// logged, and the jobs lapse when rounds keep failing.
pub fn start(
    replica: Arc<Replica>,
    writer: Writer,
    metrics: Arc<Metrics>,
    jobs: Vec<String>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(replica.round());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Err(e) = round(&replica, &writer, &metrics, &jobs).await {
                tracing::warn!(error = %e, "cannot renew this replica's leases; its jobs stop when they run out");
            }
        }
    })
}

/// A replica stopping: gives its leases and its place in the register up,
/// so its peers take its hosts and jobs over at their next round.
pub async fn leave(replica: &Replica, writer: &Writer) {
    replica.jobs.lock().unwrap_or_else(|p| p.into_inner()).clear();
    let id = replica.id.clone();
    let left = writer
        .run(move |c| {
            leases::release_all(c, &id)?;
            leases::leave(c, &id)
        })
        .await;
    if let Err(e) = left {
        tracing::warn!(error = %e, "cannot give this replica's leases up; its peers take them over when they expire");
    }
}

/// The SHA-256 (hex) of a file's bytes; `unreadable` when it cannot be read.
pub fn file_fingerprint(path: &std::path::Path) -> String {
    use sha2::{Digest, Sha256};
    match std::fs::read(path) {
        Ok(bytes) => hex::encode(Sha256::digest(&bytes)),
        Err(_) => "unreadable".into(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::fleet::Fleet;

    async fn replica_on(store: &crate::store::testing::TestStore, name: &str) -> (Arc<Replica>, Writer, Arc<Metrics>) {
        let fleet = Arc::new(Fleet::default());
        let (writer, _t) = Writer::start(store.open(), fleet.clone()).unwrap();
        let metrics = Arc::new(Metrics::new(fleet, 3).unwrap());
        (Replica::new(name, Duration::from_secs(3)), writer, metrics)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_job_runs_in_one_replica_and_moves_when_its_holder_leaves() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::testing::TestStore::new(dir.path());
        let (a, wa, ma) = replica_on(&store, "a").await;
        let (b, wb, mb) = replica_on(&store, "b").await;
        let jobs = vec![LIFECYCLE.to_string(), deliver_job("hook")];
        round(&a, &wa, &ma, &jobs).await.unwrap();
        round(&b, &wb, &mb, &jobs).await.unwrap();
        assert!(a.holds(LIFECYCLE) && a.holds("deliver:hook"));
        assert!(!b.holds(LIFECYCLE) && !b.holds("deliver:hook"));
        // Only the holder shows the fleet-wide gauges.
        assert!(ma.fleet_wide() && !mb.fleet_wide());
        leave(&a, &wa).await;
        assert!(!a.holds(LIFECYCLE));
        round(&b, &wb, &mb, &jobs).await.unwrap();
        assert!(b.holds(LIFECYCLE) && b.holds("deliver:hook") && mb.fleet_wide());
        round(&a, &wa, &ma, &jobs).await.unwrap();
        assert!(!a.holds(LIFECYCLE));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn replicas_on_different_rule_files_see_the_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::testing::TestStore::new(dir.path());
        let (a, wa, ma) = replica_on(&store, "a").await;
        let (b, wb, mb) = replica_on(&store, "b").await;
        ma.set_config_fingerprint("rules", "r1");
        mb.set_config_fingerprint("rules", "r2");
        round(&a, &wa, &ma, &[]).await.unwrap();
        round(&b, &wb, &mb, &[]).await.unwrap();
        let text = mb.render().unwrap();
        assert!(text.contains("caretaker_config_mismatch{file=\"rules\"} 1"), "{text}");
        assert!(
            text.contains("caretaker_config_mismatch{file=\"contracts\"} 0"),
            "{text}"
        );
        assert!(text.contains("caretaker_replicas_live 2"), "{text}");
        mb.set_config_fingerprint("rules", "r1");
        round(&b, &wb, &mb, &[]).await.unwrap();
        assert!(
            mb.render()
                .unwrap()
                .contains("caretaker_config_mismatch{file=\"rules\"} 0")
        );
    }
}
