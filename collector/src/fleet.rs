//! The collector's in-memory view of its hosts: what the API and `/metrics`
//! read. The store is the record; this is rebuilt from it at start-up and
//! updated by the store writer after each commit, so readers never touch
//! SQLite and never see a change that was not committed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use caretaker_shared::wire::{Inventory, Sample};
use serde::Serialize;

use crate::identity::Identity;
use crate::store::StoreError;
use crate::store::agents::{Agents, FleetRow};
use crate::store::recommendations::Recommendations;
use crate::store::sql::Sql;

/// One host (one enrolled agent) as last reported.
#[derive(Debug, Clone, Serialize)]
pub struct Host {
    pub agent_id: String,
    pub host: String,
    pub labels: BTreeMap<String, String>,
    pub enrolled_at_ms: i64,
    pub interval_secs: u32,
    /// Highest sequence number applied.
    pub last_seq: u64,
    /// Reports applied since enrollment.
    pub reports_applied: u64,
    /// Sequence numbers never received (dropped from a full agent spool).
    pub seq_gaps: u64,
    /// When the collector last received a report (ms).
    pub last_seen_ms: Option<i64>,
    /// When the agent collected its newest applied report (ms).
    pub last_collected_at_ms: Option<i64>,
    /// Samples of the newest report, sorted by metric (catalogue metrics only).
    #[serde(skip)]
    pub samples: Vec<Sample>,
    pub inventory: Option<Inventory>,
    /// When the current inventory version was first collected (ms).
    pub inventory_at_ms: Option<i64>,
    /// Asset changes stored for the host (see `assets`).
    pub asset_changes: u64,
}

impl Host {
    pub fn label(&self, name: &str) -> &str {
        self.labels.get(name).map(String::as_str).unwrap_or("")
    }

    /// Up while a report arrived within `down_after` intervals.
    pub fn is_up(&self, now_ms: i64, down_after_intervals: u32) -> bool {
        let window = i64::from(self.interval_secs.max(1)) * 1000 * i64::from(down_after_intervals);
        self.last_seen_ms.is_some_and(|t| now_ms - t <= window)
    }

    /// The samples of one metric (they are sorted by metric).
    pub fn samples_of(&self, metric: &str) -> &[Sample] {
        let start = self.samples.partition_point(|s| s.metric.as_str() < metric);
        let end = start + self.samples[start..].partition_point(|s| s.metric == metric);
        &self.samples[start..end]
    }
}

/// Keeps the samples whose metric the catalogue knows (a newer agent may send
/// others) and sorts them so [`Host::samples_of`] can find a metric's range.
pub fn catalogue_samples(samples: Vec<Sample>) -> Vec<Sample> {
    let mut kept: Vec<Sample> = samples
        .into_iter()
        .filter(|s| caretaker_shared::catalogue::lookup(&s.metric).is_some())
        .collect();
    kept.sort_by(|a, b| a.metric.cmp(&b.metric));
    kept
}

#[derive(Debug, Default)]
pub struct Fleet {
    hosts: RwLock<HashMap<String, Arc<Host>>>,
    /// Credential hash → agent id: a cache of the store's, which decides
    /// (see [`crate::identity::admit`]).
    credentials: RwLock<HashMap<String, String>>,
    /// Agent id → identity fixed at enrollment, likewise a cache.
    identities: RwLock<HashMap<String, Identity>>,
    /// Hashes of API tokens → their names (`init` for the one `init` made).
    api_tokens: RwLock<HashMap<String, String>>,
    /// Active replacement recommendations by urgency, as the store writer
    /// last counted them.
    recommendations_open: RwLock<Vec<(String, u64)>>,
}

fn read<T>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(|p| p.into_inner())
}
fn write<T>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(|p| p.into_inner())
}

impl Fleet {
    pub fn agent_for_credential(&self, credential_hash: &str) -> Option<String> {
        read(&self.credentials).get(credential_hash).cloned()
    }

    pub fn add_credential(&self, credential_hash: String, agent_id: String) {
        write(&self.credentials).insert(credential_hash, agent_id);
    }

    pub fn forget_credential(&self, credential_hash: &str) {
        write(&self.credentials).remove(credential_hash);
    }

    pub fn identity(&self, agent_id: &str) -> Option<Identity> {
        read(&self.identities).get(agent_id).cloned()
    }

    /// Records an agent's identity; a revoked agent's credentials leave the
    /// cache, so its next report asks the store.
    pub fn set_identity(&self, agent_id: &str, identity: Identity) {
        if identity.revoked {
            write(&self.credentials).retain(|_, a| a != agent_id);
        }
        write(&self.identities).insert(agent_id.to_string(), identity);
    }

    /// Replaces every identity and credential with the store's (at start,
    /// and on every refresh so changes made by the CLI or another replica
    /// show). Credentials of revoked agents are left out.
    pub fn set_identities(&self, rows: Vec<(String, String, Identity)>) {
        let mut credentials = HashMap::with_capacity(rows.len());
        let mut identities = HashMap::with_capacity(rows.len());
        for (agent_id, credential_hash, identity) in rows {
            if !identity.revoked {
                credentials.insert(credential_hash, agent_id.clone());
            }
            identities.insert(agent_id, identity);
        }
        // A rotated credential learnt since is kept only if still the store's:
        // replacing the whole map does exactly that.
        *write(&self.credentials) = credentials;
        *write(&self.identities) = identities;
    }

    pub fn is_api_token(&self, token_hash: &str) -> bool {
        read(&self.api_tokens).contains_key(token_hash)
    }

    /// The name of the API token with this hash, if it is one.
    pub fn api_token_name(&self, token_hash: &str) -> Option<String> {
        read(&self.api_tokens).get(token_hash).cloned()
    }

    pub fn add_api_token(&self, token_hash: String, name: String) {
        write(&self.api_tokens).insert(token_hash, name);
    }

    pub fn set_recommendations_open(&self, counts: Vec<(String, u64)>) {
        *write(&self.recommendations_open) = counts;
    }

    /// Active replacement recommendations by urgency.
    pub fn recommendations_open(&self) -> Vec<(String, u64)> {
        read(&self.recommendations_open).clone()
    }

    pub fn put(&self, host: Host) {
        write(&self.hosts).insert(host.agent_id.clone(), Arc::new(host));
    }

    pub fn get(&self, agent_id: &str) -> Option<Arc<Host>> {
        read(&self.hosts).get(agent_id).cloned()
    }

    /// Every host not decommissioned, sorted by host name then id; the lock
    /// is held only to clone pointers.
    pub fn snapshot(&self) -> Vec<Arc<Host>> {
        let archived: HashSet<String> = read(&self.identities)
            .iter()
            .filter(|(_, i)| i.archived)
            .map(|(a, _)| a.clone())
            .collect();
        let mut v: Vec<Arc<Host>> = read(&self.hosts)
            .values()
            .filter(|h| !archived.contains(&h.agent_id))
            .cloned()
            .collect();
        v.sort_by(|a, b| a.host.cmp(&b.host).then_with(|| a.agent_id.cmp(&b.agent_id)));
        v
    }
}

/// Rebuilds the fleet from the store at start-up: API tokens, open
/// recommendations, identities, and every agent with its newest report,
/// inventory and count of asset changes. How many agents.
pub fn load_fleet<S: Sql + ?Sized>(db: &S, fleet: &Fleet) -> Result<usize, StoreError> {
    for (hash, name) in db.api_tokens()? {
        fleet.add_api_token(hash, name);
    }
    fleet.set_recommendations_open(db.active_recommendation_counts()?);
    fleet.set_identities(db.identities()?);
    // A row whose labels, report or inventory cannot be read fails the
    // load: the first such error is kept and the rows after it skipped.
    let mut failed: Option<StoreError> = None;
    let mut n = 0;
    db.fleet_rows(&mut |row| match host_of(row) {
        Ok(host) => {
            fleet.put(host);
            n += 1;
            true
        }
        Err(e) => {
            failed = Some(e);
            false
        }
    })?;
    match failed {
        Some(e) => Err(e),
        None => Ok(n),
    }
}

/// Brings this replica's copy of the fleet up to the store: the hosts whose
/// newest applied report is not the one held here (applied by another
/// replica, or new) are read again. Answers how many. A host that cannot be
/// read is logged and skipped (it is read again next time).
pub fn refresh_from_store<S: Sql + ?Sized>(db: &S, fleet: &Fleet) -> Result<usize, StoreError> {
    let mut n = 0;
    for (agent_id, last_seq) in db.agent_seqs()? {
        let held = fleet.get(&agent_id).map(|h| h.last_seq);
        if held == Some(u64::try_from(last_seq).unwrap_or(0)) {
            continue;
        }
        let Some(row) = db.fleet_row(&agent_id)? else { continue };
        match host_of(row) {
            // Unless this replica applied a newer one meanwhile.
            Ok(host) if fleet.get(&agent_id).is_none_or(|h| h.last_seq < host.last_seq) => {
                fleet.put(host);
                n += 1;
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(agent_id = %agent_id, error = %e, "cannot read a host another replica updated"),
        }
    }
    Ok(n)
}

/// One stored agent as a host; an error when its labels, newest report or
/// inventory cannot be read.
fn host_of(r: FleetRow) -> Result<Host, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        agent_id: r.agent_id.clone(),
        reason,
    };
    let labels: BTreeMap<String, String> = serde_json::from_str(&r.labels).map_err(|e| corrupt(e.to_string()))?;
    let mut samples = Vec::new();
    if let Some((body, enc)) = &r.latest {
        match crate::ingest::decode_stored(body, *enc) {
            Ok(report) => samples = catalogue_samples(report.samples),
            Err(e) => return Err(corrupt(e.to_string())),
        }
    }
    let inventory: Option<Inventory> = match &r.inventory {
        Some(doc) => Some(serde_json::from_str(doc).map_err(|e| corrupt(e.to_string()))?),
        None => None,
    };
    Ok(Host {
        agent_id: r.agent_id.clone(),
        host: r.host,
        labels,
        enrolled_at_ms: r.enrolled_at_ms,
        interval_secs: r.interval_secs,
        last_seq: r.last_seq as u64,
        reports_applied: r.reports_applied as u64,
        seq_gaps: r.seq_gaps as u64,
        last_seen_ms: r.last_seen_ms,
        last_collected_at_ms: r.last_collected_at_ms,
        samples,
        inventory,
        inventory_at_ms: r.inventory_at_ms,
        asset_changes: r.asset_changes as u64,
    })
}

#[cfg(test)]
mod load_tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::store::agents::NewAgent;
    use crate::store::testing::on_both;

    #[test]
    fn the_fleet_is_loaded_from_agents_and_api_tokens() {
        on_both(|db| {
            db.add_api_token("api-hash", "ops", 1).unwrap();
            let inventory = Inventory {
                hostname: "db01".into(),
                ..Inventory::default()
            };
            let doc = serde_json::to_string(&inventory).unwrap();
            crate::store::testing::add_asset(db, "db01", r#"{"customer":"acme"}"#, &doc);
            db.insert_agent(&NewAgent {
                agent_id: "a2",
                credential_hash: "c2",
                host: "web01",
                enrolled_at_ms: 7,
                customer: Some("acme"),
                site: None,
                token_id: None,
                labels: "{}",
            })
            .unwrap();
            let fleet = Fleet::default();
            assert_eq!(load_fleet(db, &fleet).unwrap(), 2);
            let h = fleet.get("agent-db01").unwrap();
            assert_eq!(h.labels.get("customer").map(String::as_str), Some("acme"));
            assert_eq!(h.inventory.as_ref(), Some(&inventory));
            assert_eq!(h.inventory_at_ms, Some(0));
            assert_eq!(fleet.get("a2").unwrap().enrolled_at_ms, 7);

            crate::store::testing::set_agent_labels(db, "a2", "not json");
            assert!(matches!(
                load_fleet(db, &Fleet::default()),
                Err(StoreError::Corrupt { agent_id, .. }) if agent_id == "a2"
            ));
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(metric: &str, v: f64) -> Sample {
        Sample {
            metric: metric.into(),
            labels: BTreeMap::new(),
            value: v,
        }
    }

    #[test]
    fn samples_of_finds_the_range() {
        let mut samples = vec![s("b", 1.0), s("a", 2.0), s("b", 3.0), s("c", 4.0)];
        samples.sort_by(|a, b| a.metric.cmp(&b.metric));
        let h = Host {
            agent_id: "x".into(),
            host: "h".into(),
            labels: BTreeMap::new(),
            enrolled_at_ms: 0,
            interval_secs: 10,
            last_seq: 1,
            reports_applied: 1,
            seq_gaps: 0,
            last_seen_ms: Some(1_000_000),
            last_collected_at_ms: None,
            samples,
            inventory: None,
            inventory_at_ms: None,
            asset_changes: 0,
        };
        assert_eq!(
            h.samples_of("b").iter().map(|s| s.value).collect::<Vec<_>>(),
            [1.0, 3.0]
        );
        assert!(h.samples_of("zz").is_empty());
        assert!(h.is_up(1_000_000 + 30_000, 3));
        assert!(!h.is_up(1_000_000 + 30_001, 3));
    }
}
