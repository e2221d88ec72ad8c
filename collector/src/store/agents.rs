//! Agents and credentials rows: enrolled agents with the identity fixed at
//! enrollment and their credential hashes (current and rotated), enrollment
//! tokens, API tokens. Which token may enroll whom, what a report may claim
//! and when a rotated credential replaces the old are the domain's
//! ([`crate::identity`]); this module keeps the rows, and rebuilds the
//! fleet from them at start ([`Agents::load_fleet`]).

use std::collections::BTreeMap;

use caretaker_shared::wire::Inventory;
use serde::Serialize;

use super::StoreError;
use super::recommendations::Recommendations;
use super::sql::{Row, Sql, SqlError, SqlExt, args};
use crate::fleet::{Fleet, Host};
use crate::ingest::Encoding;

/// Columns added to `enrollment_tokens` and `agents` (SQLite; the first
/// schema in [`crate::store`] has the tables). Agents enrolled before have
/// their customer (and site, when they reported one) fixed from the labels
/// they last reported; one that never reported is fixed by its first
/// report.
pub const MIGRATION: &str = r#"
ALTER TABLE enrollment_tokens ADD COLUMN id TEXT;
ALTER TABLE enrollment_tokens ADD COLUMN customer TEXT;
ALTER TABLE enrollment_tokens ADD COLUMN site TEXT;
ALTER TABLE enrollment_tokens ADD COLUMN expires_at_ms INTEGER;
ALTER TABLE enrollment_tokens ADD COLUMN max_uses INTEGER;
ALTER TABLE enrollment_tokens ADD COLUMN uses INTEGER NOT NULL DEFAULT 0;
ALTER TABLE enrollment_tokens ADD COLUMN revoked_at_ms INTEGER;
UPDATE enrollment_tokens SET id = substr(token_hash, 1, 12);
CREATE UNIQUE INDEX enrollment_tokens_id ON enrollment_tokens(id);
ALTER TABLE agents ADD COLUMN customer TEXT;
ALTER TABLE agents ADD COLUMN site TEXT;
ALTER TABLE agents ADD COLUMN token_id TEXT;
ALTER TABLE agents ADD COLUMN revoked_at_ms INTEGER;
ALTER TABLE agents ADD COLUMN archived_at_ms INTEGER;
ALTER TABLE agents ADD COLUMN pending_credential TEXT;
ALTER TABLE agents ADD COLUMN pending_credential_hash TEXT;
ALTER TABLE agents ADD COLUMN rotated_at_ms INTEGER;
UPDATE agents SET customer = COALESCE(json_extract(labels, '$.customer'), '')
    WHERE reports_applied > 0 AND json_valid(labels);
UPDATE agents SET site = json_extract(labels, '$.site')
    WHERE reports_applied > 0 AND json_valid(labels);
CREATE INDEX agents_host ON agents(host);
CREATE UNIQUE INDEX agents_pending_credential ON agents(pending_credential_hash)
    WHERE pending_credential_hash IS NOT NULL;
"#;

/// What an agent is, as fixed at enrollment.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Identity {
    pub host: String,
    /// `None` until fixed: an older agent enrolled with a token bound to no
    /// customer, before its first report.
    pub customer: Option<String>,
    /// Bound only when the enrollment token was bound to a site.
    pub site: Option<String>,
    pub revoked: bool,
    /// Decommissioned: its asset is archived and left out of the lists.
    pub archived: bool,
}

/// What a new enrollment token is bound to and how long it lasts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenSpec {
    /// `None`: any customer (the agent's claim at enrollment decides).
    pub customer: Option<String>,
    pub site: Option<String>,
    pub expires_at_ms: Option<i64>,
    pub max_uses: Option<u32>,
}

/// An enrollment token as listed: never its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenInfo {
    pub id: String,
    pub customer: Option<String>,
    pub site: Option<String>,
    pub created_at_ms: i64,
    pub expires_at_ms: Option<i64>,
    pub max_uses: Option<u32>,
    pub uses: u32,
    pub revoked_at_ms: Option<i64>,
}

/// A token's public id: the start of its hash (tokens made by an older
/// `init` got theirs the same way in the migration).
pub fn token_id(token_hash: &str) -> String {
    token_hash.chars().take(12).collect()
}

/// One agent as listed (no secrets).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct AgentInfo {
    pub agent_id: String,
    pub host: String,
    pub customer: Option<String>,
    pub site: Option<String>,
    /// The enrollment token that let it in (`None`: enrolled before tokens had ids).
    pub token_id: Option<String>,
    pub enrolled_at_ms: i64,
    pub last_seen_ms: Option<i64>,
    pub last_seq: u64,
    pub revoked_at_ms: Option<i64>,
    pub archived_at_ms: Option<i64>,
    /// A rotated credential waits for the agent's next report.
    pub rotation_pending: bool,
    pub rotated_at_ms: Option<i64>,
}

/// A new agent's row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAgent<'a> {
    pub agent_id: &'a str,
    pub credential_hash: &'a str,
    pub host: &'a str,
    pub enrolled_at_ms: i64,
    pub customer: Option<&'a str>,
    pub site: Option<&'a str>,
    /// The enrollment token that let it in; `None` for agents made
    /// otherwise (a replay, a test).
    pub token_id: Option<&'a str>,
    /// The labels it last reported, as a JSON object.
    pub labels: &'a str,
}

/// An agent's identity and credentials, as a report is judged by them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentCredentials {
    pub identity: Identity,
    pub credential_hash: String,
    /// The hash of a rotated credential the agent has not used yet.
    pub pending_hash: Option<String>,
    /// That credential in clear, until the agent has taken it.
    pub pending: Option<String>,
}

const TOKEN_COLUMNS: &str = "id, customer, site, created_at_ms, expires_at_ms, max_uses, uses, revoked_at_ms";

fn token_row(r: &Row<'_>) -> Result<TokenInfo, SqlError> {
    Ok(TokenInfo {
        id: r.get(0)?,
        customer: r.get(1)?,
        site: r.get(2)?,
        created_at_ms: r.get(3)?,
        expires_at_ms: r.get(4)?,
        max_uses: r.get(5)?,
        uses: r.get(6)?,
        revoked_at_ms: r.get(7)?,
    })
}

const AGENT_COLUMNS: &str = "agent_id, host, customer, site, token_id, enrolled_at_ms, last_seen_ms, last_seq,
    revoked_at_ms, archived_at_ms, pending_credential_hash IS NOT NULL, rotated_at_ms";

fn agent_info_row(r: &Row<'_>) -> Result<AgentInfo, SqlError> {
    Ok(AgentInfo {
        agent_id: r.get(0)?,
        host: r.get(1)?,
        customer: r.get(2)?,
        site: r.get(3)?,
        token_id: r.get(4)?,
        enrolled_at_ms: r.get(5)?,
        last_seen_ms: r.get(6)?,
        last_seq: r.get::<i64>(7)? as u64,
        revoked_at_ms: r.get(8)?,
        archived_at_ms: r.get(9)?,
        rotation_pending: r.get(10)?,
        rotated_at_ms: r.get(11)?,
    })
}

/// Agents, enrollment tokens and API tokens.
pub trait Agents: Sql {
    // -- Enrollment tokens

    /// Stores an enrollment token bound to nothing (as `init` of an older
    /// version made them); a token already stored is left as it is.
    fn add_enrollment_token(&self, token_hash: &str, created_at_ms: i64) -> Result<(), SqlError> {
        self.execute(
            "INSERT INTO enrollment_tokens(token_hash, id, created_at_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT DO NOTHING",
            args![token_hash, token_id(token_hash), created_at_ms],
        )?;
        Ok(())
    }

    /// Stores a new enrollment token by its hash; its id.
    fn insert_token(&self, token_hash: &str, spec: &TokenSpec, created_at_ms: i64) -> Result<String, SqlError> {
        let id = token_id(token_hash);
        self.execute(
            "INSERT INTO enrollment_tokens(token_hash, id, customer, site, created_at_ms, expires_at_ms, max_uses)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            args![
                token_hash,
                &id,
                &spec.customer,
                &spec.site,
                created_at_ms,
                spec.expires_at_ms,
                spec.max_uses
            ],
        )?;
        Ok(id)
    }

    fn token_by_id(&self, id: &str) -> Result<Option<TokenInfo>, SqlError> {
        self.query_opt(
            &format!("SELECT {TOKEN_COLUMNS} FROM enrollment_tokens WHERE id = ?1"),
            args![id],
            token_row,
        )
    }

    fn token_by_hash(&self, token_hash: &str) -> Result<Option<TokenInfo>, SqlError> {
        self.query_opt(
            &format!("SELECT {TOKEN_COLUMNS} FROM enrollment_tokens WHERE token_hash = ?1"),
            args![token_hash],
            token_row,
        )
    }

    /// Every enrollment token, oldest first.
    fn tokens(&self) -> Result<Vec<TokenInfo>, SqlError> {
        self.query(
            &format!("SELECT {TOKEN_COLUMNS} FROM enrollment_tokens ORDER BY created_at_ms, id"),
            args![],
            token_row,
        )
    }

    /// Marks a token revoked at `now_ms` (a token revoked before keeps its
    /// time).
    fn set_token_revoked(&self, id: &str, now_ms: i64) -> Result<(), SqlError> {
        self.execute(
            "UPDATE enrollment_tokens SET revoked_at_ms = COALESCE(revoked_at_ms, ?2) WHERE id = ?1",
            args![id, now_ms],
        )?;
        Ok(())
    }

    /// Counts one enrollment with token `id`.
    fn count_token_use(&self, id: &str) -> Result<(), SqlError> {
        self.execute("UPDATE enrollment_tokens SET uses = uses + 1 WHERE id = ?1", args![id])?;
        Ok(())
    }

    // -- API tokens

    /// Stores an API token by its hash; a token already stored is left as
    /// it is.
    fn add_api_token(&self, token_hash: &str, name: &str, created_at_ms: i64) -> Result<(), SqlError> {
        self.execute(
            "INSERT INTO api_tokens(token_hash, name, created_at_ms) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
            args![token_hash, name, created_at_ms],
        )?;
        Ok(())
    }

    /// Every API token: (hash, name).
    fn api_tokens(&self) -> Result<Vec<(String, String)>, SqlError> {
        self.query("SELECT token_hash, name FROM api_tokens", args![], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
    }

    // -- Agents

    fn insert_agent(&self, a: &NewAgent<'_>) -> Result<(), SqlError> {
        self.execute(
            "INSERT INTO agents(agent_id, credential_hash, host, enrolled_at_ms, customer, site, token_id, labels)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            args![
                a.agent_id,
                a.credential_hash,
                a.host,
                a.enrolled_at_ms,
                a.customer,
                a.site,
                a.token_id,
                a.labels
            ],
        )?;
        Ok(())
    }

    /// The agent not revoked holding a host name, if any.
    fn active_agent_on_host(&self, host: &str) -> Result<Option<String>, SqlError> {
        self.value(
            "SELECT agent_id FROM agents WHERE host = ?1 AND revoked_at_ms IS NULL LIMIT 1",
            args![host],
        )
    }

    /// The agents not archived with a host name.
    fn unarchived_agents_on_host(&self, host: &str) -> Result<Vec<String>, SqlError> {
        self.query(
            "SELECT agent_id FROM agents WHERE host = ?1 AND archived_at_ms IS NULL",
            args![host],
            |r| r.get(0),
        )
    }

    /// The agent last enrolled on `host`.
    fn newest_agent_on_host(&self, host: &str) -> Result<Option<String>, SqlError> {
        self.value(
            "SELECT agent_id FROM agents WHERE host = ?1 ORDER BY enrolled_at_ms DESC LIMIT 1",
            args![host],
        )
    }

    fn agent_credentials(&self, agent_id: &str) -> Result<Option<AgentCredentials>, SqlError> {
        self.query_opt(
            "SELECT host, customer, site, revoked_at_ms IS NOT NULL, archived_at_ms IS NOT NULL,
                    credential_hash, pending_credential_hash, pending_credential
             FROM agents WHERE agent_id = ?1",
            args![agent_id],
            |r| {
                Ok(AgentCredentials {
                    identity: Identity {
                        host: r.get(0)?,
                        customer: r.get(1)?,
                        site: r.get(2)?,
                        revoked: r.get(3)?,
                        archived: r.get(4)?,
                    },
                    credential_hash: r.get(5)?,
                    pending_hash: r.get(6)?,
                    pending: r.get(7)?,
                })
            },
        )
    }

    /// The agent whose credential, current or rotated, has this hash.
    fn agent_with_credential(&self, credential_hash: &str) -> Result<Option<String>, SqlError> {
        self.value(
            "SELECT agent_id FROM agents WHERE credential_hash = ?1
             UNION ALL SELECT agent_id FROM agents WHERE pending_credential_hash = ?1 LIMIT 1",
            args![credential_hash],
        )
    }

    /// The rotated credential becomes the agent's only one.
    fn promote_pending_credential(&self, agent_id: &str, now_ms: i64) -> Result<(), SqlError> {
        self.execute(
            "UPDATE agents SET credential_hash = pending_credential_hash, pending_credential = NULL,
                    pending_credential_hash = NULL, rotated_at_ms = ?2 WHERE agent_id = ?1",
            args![agent_id, now_ms],
        )?;
        Ok(())
    }

    /// A rotated credential for the agent, pending until it is first used;
    /// replaces one pending before.
    fn set_pending_credential(&self, agent_id: &str, secret: &str, secret_hash: &str) -> Result<(), SqlError> {
        self.execute(
            "UPDATE agents SET pending_credential = ?2, pending_credential_hash = ?3 WHERE agent_id = ?1",
            args![agent_id, secret, secret_hash],
        )?;
        Ok(())
    }

    fn set_agent_customer(&self, agent_id: &str, customer: &str) -> Result<(), SqlError> {
        self.execute(
            "UPDATE agents SET customer = ?2 WHERE agent_id = ?1",
            args![agent_id, customer],
        )?;
        Ok(())
    }

    /// Marks the agent revoked at `now_ms` (one revoked before keeps its
    /// time) and drops any rotated credential.
    fn set_agent_revoked(&self, agent_id: &str, now_ms: i64) -> Result<(), SqlError> {
        self.execute(
            "UPDATE agents SET revoked_at_ms = COALESCE(revoked_at_ms, ?2), pending_credential = NULL,
                    pending_credential_hash = NULL WHERE agent_id = ?1",
            args![agent_id, now_ms],
        )?;
        Ok(())
    }

    /// Marks the agent archived at `now_ms` (one archived before keeps its
    /// time).
    fn set_agent_archived(&self, agent_id: &str, now_ms: i64) -> Result<(), SqlError> {
        self.execute(
            "UPDATE agents SET archived_at_ms = COALESCE(archived_at_ms, ?2) WHERE agent_id = ?1",
            args![agent_id, now_ms],
        )?;
        Ok(())
    }

    /// Every agent's id, current credential hash and identity.
    fn identities(&self) -> Result<Vec<(String, String, Identity)>, SqlError> {
        self.query(
            "SELECT agent_id, credential_hash, host, customer, site, revoked_at_ms IS NOT NULL,
                    archived_at_ms IS NOT NULL
             FROM agents",
            args![],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    Identity {
                        host: r.get(2)?,
                        customer: r.get(3)?,
                        site: r.get(4)?,
                        revoked: r.get(5)?,
                        archived: r.get(6)?,
                    },
                ))
            },
        )
    }

    /// Every agent, by host name then enrollment time.
    fn agents(&self) -> Result<Vec<AgentInfo>, SqlError> {
        self.query(
            &format!("SELECT {AGENT_COLUMNS} FROM agents ORDER BY host, enrolled_at_ms, agent_id"),
            args![],
            agent_info_row,
        )
    }

    fn agent_info(&self, agent_id: &str) -> Result<Option<AgentInfo>, SqlError> {
        self.query_opt(
            &format!("SELECT {AGENT_COLUMNS} FROM agents WHERE agent_id = ?1"),
            args![agent_id],
            agent_info_row,
        )
    }

    // -- The fleet at start

    /// Rebuilds the fleet from the store at start-up: API tokens, open
    /// recommendations, identities, and every agent with its newest report,
    /// inventory and count of asset changes. How many agents.
    fn load_fleet(&self, fleet: &Fleet) -> Result<usize, StoreError> {
        for (hash, name) in self.api_tokens()? {
            fleet.add_api_token(hash, name);
        }
        fleet.set_recommendations_open(self.active_recommendation_counts()?);
        fleet.set_identities(self.identities()?);
        // A row whose labels, report or inventory cannot be read fails the
        // load: the first such error is kept and the rows after it skipped.
        let mut failed: Option<StoreError> = None;
        let mut n = 0;
        self.query_each(
            "SELECT a.agent_id, a.credential_hash, a.host, a.enrolled_at_ms, a.labels, a.interval_secs, a.last_seq,
                    a.reports_applied, a.seq_gaps, a.last_seen_ms, a.last_collected_at_ms, l.encoding, l.body,
                    (SELECT doc FROM inventory i WHERE i.agent_id = a.agent_id ORDER BY seq DESC LIMIT 1),
                    (SELECT collected_at_ms FROM inventory i WHERE i.agent_id = a.agent_id ORDER BY seq DESC LIMIT 1),
                    (SELECT COUNT(*) FROM asset_changes c WHERE c.agent_id = a.agent_id)
             FROM agents a LEFT JOIN host_latest l ON l.agent_id = a.agent_id",
            args![],
            |r| {
                if failed.is_some() {
                    return Ok(());
                }
                match fleet_host(r)? {
                    Ok(host) => {
                        fleet.put(host);
                        n += 1;
                    }
                    Err(e) => failed = Some(e),
                }
                Ok(())
            },
        )?;
        match failed {
            Some(e) => Err(e),
            None => Ok(n),
        }
    }
}

impl<S: Sql + ?Sized> Agents for S {}

/// One row of [`Agents::load_fleet`]'s statement as a host; the inner error
/// when the row's labels, newest report or inventory cannot be read.
fn fleet_host(r: &Row<'_>) -> Result<Result<Host, StoreError>, SqlError> {
    let agent_id: String = r.get(0)?;
    let corrupt = |reason: String| StoreError::Corrupt {
        agent_id: agent_id.clone(),
        reason,
    };
    let labels: BTreeMap<String, String> = match serde_json::from_str(&r.get::<String>(4)?) {
        Ok(l) => l,
        Err(e) => return Ok(Err(corrupt(e.to_string()))),
    };
    let mut samples = Vec::new();
    if let Some(body) = r.get::<Option<Vec<u8>>>(12)? {
        let enc = Encoding::from_stored(&r.get::<String>(11)?);
        match crate::ingest::decode_stored(&body, enc) {
            Ok(report) => samples = crate::fleet::catalogue_samples(report.samples),
            Err(e) => return Ok(Err(corrupt(e.to_string()))),
        }
    }
    let inventory: Option<Inventory> = match r.get::<Option<String>>(13)? {
        Some(doc) => match serde_json::from_str(&doc) {
            Ok(i) => Some(i),
            Err(e) => return Ok(Err(corrupt(e.to_string()))),
        },
        None => None,
    };
    Ok(Ok(Host {
        agent_id: agent_id.clone(),
        host: r.get(2)?,
        labels,
        enrolled_at_ms: r.get(3)?,
        interval_secs: r.get(5)?,
        last_seq: r.get::<i64>(6)? as u64,
        reports_applied: r.get::<i64>(7)? as u64,
        seq_gaps: r.get::<i64>(8)? as u64,
        last_seen_ms: r.get(9)?,
        last_collected_at_ms: r.get(10)?,
        samples,
        inventory,
        inventory_at_ms: r.get(14)?,
        asset_changes: r.get::<i64>(15)? as u64,
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::identity::{self, Enrollment};
    use crate::store::testing::on_both;

    fn enrollment(token_hash: &str, agent_id: &str, host: &str) -> Enrollment {
        Enrollment {
            token_hash: token_hash.into(),
            agent_id: agent_id.into(),
            credential_hash: format!("cred-{agent_id}"),
            host: host.into(),
            labels: Some([("customer".to_string(), "acme".to_string())].into()),
        }
    }

    #[test]
    fn tokens_are_created_listed_and_revoked() {
        on_both(|db| {
            let spec = TokenSpec {
                customer: Some("acme".into()),
                site: Some("hq".into()),
                expires_at_ms: Some(9_000),
                max_uses: Some(2),
            };
            let t = identity::create_token(db, "bbbbbbbbbbbbbbbb", &spec, 1_000).unwrap();
            assert_eq!(
                t,
                TokenInfo {
                    id: "bbbbbbbbbbbb".into(),
                    customer: Some("acme".into()),
                    site: Some("hq".into()),
                    created_at_ms: 1_000,
                    expires_at_ms: Some(9_000),
                    max_uses: Some(2),
                    uses: 0,
                    revoked_at_ms: None,
                }
            );
            // An older `init`'s token: bound to nothing, stored once.
            db.add_enrollment_token("aaaaaaaaaaaaaaaa", 2_000).unwrap();
            db.add_enrollment_token("aaaaaaaaaaaaaaaa", 3_000).unwrap();
            let listed = identity::list_tokens(db).unwrap();
            assert_eq!(
                listed
                    .iter()
                    .map(|t| (t.id.as_str(), t.created_at_ms))
                    .collect::<Vec<_>>(),
                [("bbbbbbbbbbbb", 1_000), ("aaaaaaaaaaaa", 2_000)]
            );
            assert_eq!(listed[1].customer, None);
            assert_eq!(
                db.token_by_hash("aaaaaaaaaaaaaaaa").unwrap().unwrap().id,
                "aaaaaaaaaaaa"
            );
            assert_eq!(db.token_by_hash("nope").unwrap(), None);

            let r = identity::revoke_token(db, "bbbbbbbbbbbb", 4_000).unwrap();
            assert_eq!(r.revoked_at_ms, Some(4_000));
            let again = identity::revoke_token(db, "bbbbbbbbbbbb", 5_000).unwrap();
            assert_eq!(again.revoked_at_ms, Some(4_000), "revoked once");
            assert!(matches!(
                identity::revoke_token(db, "no-such", 1),
                Err(StoreError::NoSuchToken(_))
            ));

            db.add_api_token("api-hash", "ops", 1).unwrap();
            db.add_api_token("api-hash", "other", 2).unwrap();
            assert_eq!(db.api_tokens().unwrap(), [("api-hash".to_string(), "ops".to_string())]);
        });
    }

    #[test]
    fn agents_enroll_report_rotate_revoke_and_decommission() {
        on_both(|db| {
            let spec = TokenSpec {
                customer: Some("acme".into()),
                ..TokenSpec::default()
            };
            identity::create_token(db, "token-hash-1", &spec, 1).unwrap();
            let e = identity::enroll(db, &enrollment("token-hash-1", "a1", "db01"), 10).unwrap();
            assert_eq!(e.token_id, "token-hash-1");
            assert_eq!(e.identity.customer.as_deref(), Some("acme"));
            assert_eq!(identity::token(db, "token-hash-1").unwrap().uses, 1);
            assert!(matches!(
                identity::enroll(db, &enrollment("token-hash-1", "a2", "db01"), 11),
                Err(StoreError::HostTaken { .. })
            ));
            identity::enroll(db, &enrollment("token-hash-1", "a2", "web01"), 12).unwrap();

            let info = identity::agent(db, "a1").unwrap();
            assert_eq!(
                (info.host.as_str(), info.token_id.as_deref(), info.enrolled_at_ms),
                ("db01", Some("token-hash-1"), 10)
            );
            assert_eq!(
                (info.last_seq, info.last_seen_ms, info.rotation_pending),
                (0, None, false)
            );
            let labels = [("customer".to_string(), "acme".to_string())].into();
            let a = identity::admit(db, "a1", Some("cred-a1"), "db01", &labels, 20).unwrap();
            assert_eq!((a.promoted, a.offer), (None, None));

            // Rotation: offered until first used, then the only credential.
            let r = identity::rotate_agent(db, "a1", "fresh").unwrap();
            assert!(r.rotation_pending);
            let fresh = crate::pki::hash_secret("fresh");
            let a = identity::admit(db, "a1", Some("cred-a1"), "db01", &labels, 21).unwrap();
            assert_eq!(a.offer.as_deref(), Some("fresh"));
            assert_eq!(db.agent_with_credential(&fresh).unwrap().as_deref(), Some("a1"));
            let a = identity::admit(db, "a1", Some(&fresh), "db01", &labels, 22).unwrap();
            assert_eq!(a.promoted, Some(("cred-a1".to_string(), fresh.clone())));
            let creds = db.agent_credentials("a1").unwrap().unwrap();
            assert_eq!(
                (creds.credential_hash.as_str(), creds.pending_hash, creds.pending),
                (fresh.as_str(), None, None)
            );
            assert_eq!(identity::agent(db, "a1").unwrap().rotated_at_ms, Some(22));
            assert!(identity::agent_by_credential(db, "cred-a1").unwrap().is_none());

            // Revocation: refused from then on, its row kept.
            let r = identity::revoke_agent(db, "a2", 30).unwrap();
            assert_eq!(r.revoked_at_ms, Some(30));
            assert!(matches!(
                identity::admit(db, "a2", Some("cred-a2"), "web01", &labels, 31),
                Err(StoreError::Revoked(_))
            ));
            assert!(identity::rotate_agent(db, "a2", "x").is_err());

            // Decommission by host name: revoked, archived, the name free.
            let d = identity::decommission(db, "db01", 40).unwrap();
            assert_eq!(
                (d.agent_id.as_str(), d.revoked_at_ms, d.archived_at_ms),
                ("a1", Some(40), Some(40))
            );
            assert_eq!(db.unarchived_agents_on_host("db01").unwrap(), Vec::<String>::new());
            assert_eq!(db.active_agent_on_host("db01").unwrap(), None);
            identity::enroll(db, &enrollment("token-hash-1", "a3", "db01"), 50).unwrap();
            assert_eq!(db.newest_agent_on_host("db01").unwrap().as_deref(), Some("a3"));

            let listed: Vec<_> = identity::list_agents(db)
                .unwrap()
                .into_iter()
                .map(|a| (a.agent_id, a.revoked_at_ms.is_some(), a.archived_at_ms.is_some()))
                .collect();
            assert_eq!(
                listed,
                [
                    ("a1".to_string(), true, true),
                    ("a3".to_string(), false, false),
                    ("a2".to_string(), true, false)
                ]
            );
            let ids = identity::identities(db).unwrap();
            let a1 = ids.iter().find(|(id, _, _)| id == "a1").unwrap();
            assert_eq!(
                (a1.1.as_str(), a1.2.revoked, a1.2.archived),
                (fresh.as_str(), true, true)
            );
            assert!(matches!(identity::agent(db, "zz"), Err(StoreError::NoSuchAgent(_))));
        });
    }

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
            assert_eq!(db.load_fleet(&fleet).unwrap(), 2);
            let h = fleet.get("agent-db01").unwrap();
            assert_eq!(h.labels.get("customer").map(String::as_str), Some("acme"));
            assert_eq!(h.inventory.as_ref(), Some(&inventory));
            assert_eq!(h.inventory_at_ms, Some(0));
            assert_eq!(fleet.get("a2").unwrap().enrolled_at_ms, 7);

            db.execute("UPDATE agents SET labels = 'not json' WHERE agent_id = 'a2'", args![])
                .unwrap();
            assert!(matches!(
                db.load_fleet(&Fleet::default()),
                Err(StoreError::Corrupt { agent_id, .. }) if agent_id == "a2"
            ));
        });
    }

    #[test]
    fn the_migration_fixes_existing_agents_from_their_stored_labels() {
        use rusqlite::Connection;
        // The schema just before this migration: the first version with an
        // `agents.customer` column is this one.
        let has_customer = |conn: &Connection| -> bool {
            conn.prepare("SELECT 1 FROM pragma_table_info('agents') WHERE name = 'customer'")
                .and_then(|mut s| s.exists([]))
                .unwrap()
        };
        let mine = (1..100)
            .find(|&v| {
                let mut c = Connection::open_in_memory().unwrap();
                crate::store::migrations().to_version(&mut c, v).unwrap();
                has_customer(&c)
            })
            .unwrap();
        let mut conn = Connection::open_in_memory().unwrap();
        crate::store::migrations().to_version(&mut conn, mine - 1).unwrap();
        conn.execute_batch(
            "INSERT INTO enrollment_tokens(token_hash, created_at_ms) VALUES ('abcdef0123456789abcdef', 1);
             INSERT INTO agents(agent_id, credential_hash, host, enrolled_at_ms, labels, reports_applied)
                 VALUES ('a1', 'c1', 'db1', 1, '{\"customer\":\"acme\",\"site\":\"hq\"}', 3),
                        ('a2', 'c2', 'db2', 1, '{\"role\":\"web\"}', 1),
                        ('a3', 'c3', 'db3', 1, '{}', 0);",
        )
        .unwrap();
        crate::store::migrations().to_latest(&mut conn).unwrap();
        let ids: Vec<(String, Option<String>, Option<String>)> = conn
            .agents()
            .unwrap()
            .into_iter()
            .map(|a| (a.agent_id, a.customer, a.site))
            .collect();
        assert_eq!(
            ids,
            [
                ("a1".to_string(), Some("acme".to_string()), Some("hq".to_string())),
                ("a2".to_string(), Some(String::new()), None),
                ("a3".to_string(), None, None),
            ]
        );
        let t = conn.tokens().unwrap();
        assert_eq!(t[0].id, "abcdef012345", "an old token gets an id from its hash");
        assert_eq!(t[0].customer, None);
    }
}
