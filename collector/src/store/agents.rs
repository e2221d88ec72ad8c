//! Agents and credentials rows: enrolled agents with the identity fixed at
//! enrollment and their credential hashes (current and rotated), enrollment
//! tokens, API tokens. Which token may enroll whom, what a report may claim
//! and when a rotated credential replaces the old are the domain's
//! (`identity`); this module keeps the rows, and reads the ones the fleet
//! is rebuilt from at start ([`Agents::fleet_rows`]).

use serde::Serialize;

use super::reports::Encoding;
use super::sql::{Row, Sql, SqlError, SqlExt, args};

/// A report (or an enrolling agent) claiming another identity than the
/// agent's: plain data the identity rules fill in (re-exported there).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// The field: `host`, `labels.customer`, `labels.site`.
    pub path: &'static str,
    pub claimed: String,
    pub enrolled: String,
    /// Refused at enrollment: the token is bound to `enrolled`.
    pub by_token: bool,
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = self.path.trim_start_matches("labels.");
        let (claimed, enrolled) = (&self.claimed, &self.enrolled);
        if self.by_token {
            return write!(
                f,
                "agent claims {what} {claimed:?}; its enrollment token is bound to {what} {enrolled:?}"
            );
        }
        match self.path {
            "host" => write!(
                f,
                "report claims host {claimed:?}; this agent is enrolled as {enrolled:?}"
            ),
            _ => write!(
                f,
                "report claims {what} {claimed:?}; this agent is enrolled for {what} {enrolled:?}"
            ),
        }
    }
}

impl std::error::Error for Mismatch {}

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

    /// An agent's newest inventory document and when it was collected,
    /// with its count of asset changes, as stored: what a replica reads when
    /// its own copy is older than the store's (another replica applied
    /// the reports in between).
    fn asset_row(&self, agent_id: &str) -> Result<(Option<String>, Option<i64>, i64), SqlError> {
        self.query_one(
            "SELECT (SELECT doc FROM inventory i WHERE i.agent_id = ?1 ORDER BY seq DESC LIMIT 1),
                    (SELECT collected_at_ms FROM inventory i WHERE i.agent_id = ?1 ORDER BY seq DESC LIMIT 1),
                    (SELECT COUNT(*) FROM asset_changes c WHERE c.agent_id = ?1)",
            args![agent_id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
    }

    // -- The fleet at start

    /// Every agent as the fleet is rebuilt from at start-up, to `each` in
    /// turn: its row, newest report body and newest inventory as stored.
    /// `each` answering false skips the rows after it unread.
    fn fleet_rows(&self, each: &mut dyn FnMut(FleetRow) -> bool) -> Result<(), SqlError> {
        let mut more = true;
        self.query_each(
            &format!("{FLEET_ROW} FROM agents a LEFT JOIN host_latest l ON l.agent_id = a.agent_id"),
            args![],
            |r| {
                if more {
                    more = each(fleet_row(r)?);
                }
                Ok(())
            },
        )
    }

    /// Every agent's id with the sequence number of its newest applied
    /// report: what a replica compares its own copy of the fleet with.
    fn agent_seqs(&self) -> Result<Vec<(String, i64)>, SqlError> {
        self.query("SELECT agent_id, last_seq FROM agents", args![], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
    }

    /// One agent as [`Agents::fleet_rows`] reads it.
    fn fleet_row(&self, agent_id: &str) -> Result<Option<FleetRow>, SqlError> {
        self.query_opt(
            &format!(
                "{FLEET_ROW} FROM agents a LEFT JOIN host_latest l ON l.agent_id = a.agent_id WHERE a.agent_id = ?1"
            ),
            args![agent_id],
            fleet_row,
        )
    }
}

/// The columns of one agent as the fleet is built from them.
const FLEET_ROW: &str =
    "SELECT a.agent_id, a.credential_hash, a.host, a.enrolled_at_ms, a.labels, a.interval_secs, a.last_seq,
        a.reports_applied, a.seq_gaps, a.last_seen_ms, a.last_collected_at_ms, l.encoding, l.body,
        (SELECT doc FROM inventory i WHERE i.agent_id = a.agent_id ORDER BY seq DESC LIMIT 1),
        (SELECT collected_at_ms FROM inventory i WHERE i.agent_id = a.agent_id ORDER BY seq DESC LIMIT 1),
        (SELECT COUNT(*) FROM asset_changes c WHERE c.agent_id = a.agent_id)";

impl<S: Sql + ?Sized> Agents for S {}

/// One agent as [`Agents::fleet_rows`] reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetRow {
    pub agent_id: String,
    pub host: String,
    /// The labels as stored (a JSON object).
    pub labels: String,
    pub enrolled_at_ms: i64,
    pub interval_secs: u32,
    pub last_seq: i64,
    pub reports_applied: i64,
    pub seq_gaps: i64,
    pub last_seen_ms: Option<i64>,
    pub last_collected_at_ms: Option<i64>,
    /// The newest report's body as received and its encoding, if any.
    pub latest: Option<(Vec<u8>, Encoding)>,
    /// The newest inventory document (JSON), if any.
    pub inventory: Option<String>,
    pub inventory_at_ms: Option<i64>,
    pub asset_changes: i64,
}

fn fleet_row(r: &Row<'_>) -> Result<FleetRow, SqlError> {
    let latest = match r.get::<Option<Vec<u8>>>(12)? {
        Some(body) => Some((body, Encoding::from_stored(&r.get::<String>(11)?))),
        None => None,
    };
    Ok(FleetRow {
        agent_id: r.get(0)?,
        host: r.get(2)?,
        labels: r.get(4)?,
        enrolled_at_ms: r.get(3)?,
        interval_secs: r.get(5)?,
        last_seq: r.get(6)?,
        reports_applied: r.get(7)?,
        seq_gaps: r.get(8)?,
        last_seen_ms: r.get(9)?,
        last_collected_at_ms: r.get(10)?,
        latest,
        inventory: r.get(13)?,
        inventory_at_ms: r.get(14)?,
        asset_changes: r.get(15)?,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

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
