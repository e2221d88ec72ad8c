//! Who an agent is, and what lets it in: enrollment tokens per customer, the
//! identity fixed at enrollment, revocation and rotation of agent
//! credentials.
//!
//! A provider's collector holds every customer's fleet, so an agent's report
//! cannot be trusted to say whose it is. At enrollment the agent's host name,
//! customer and (with a site-bound token) site are written to its row in
//! `agents`; every report is checked against that row inside the store
//! writer's transaction that applies it ([`admit`]), so a report naming
//! another host or customer changes nothing, and a credential revoked by
//! the CLI while the collector runs is refused at once.
//!
//! Tokens and credentials are kept as SHA-256 hashes. The one secret kept in
//! clear is a rotated credential the agent has not picked up yet: the
//! collector must hand it over in the answer to the agent's next report.

use std::collections::BTreeMap;

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::store::StoreError;

/// Columns added to `enrollment_tokens` and `agents`. Agents enrolled before
/// have their customer (and site, when they reported one) fixed from the
/// labels they last reported; one that never reported is fixed by its first
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

/// A report (or an enrolling agent) claiming another identity than the
/// agent's.
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

fn mismatch(path: &'static str, claimed: &str, enrolled: &str) -> Mismatch {
    Mismatch {
        path,
        claimed: claimed.to_string(),
        enrolled: enrolled.to_string(),
        by_token: false,
    }
}

impl Identity {
    /// Whether a report naming `host` with `labels` may be this agent's.
    pub fn check(&self, host: &str, labels: &BTreeMap<String, String>) -> Result<(), Mismatch> {
        let label = |k: &str| labels.get(k).map(String::as_str).unwrap_or("");
        if host != self.host {
            return Err(mismatch("host", host, &self.host));
        }
        if let Some(c) = &self.customer
            && label("customer") != c
        {
            return Err(mismatch("labels.customer", label("customer"), c));
        }
        if let Some(s) = &self.site
            && label("site") != s
        {
            return Err(mismatch("labels.site", label("site"), s));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Enrollment tokens

/// What a new token is bound to and how long it lasts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenSpec {
    /// `None`: any customer (the agent's claim at enrollment decides).
    pub customer: Option<String>,
    pub site: Option<String>,
    pub expires_at_ms: Option<i64>,
    pub max_uses: Option<u32>,
}

/// A token as listed: never its secret.
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

impl TokenInfo {
    /// Why the token cannot enroll an agent at `now_ms`, if it cannot.
    pub fn refusal(&self, now_ms: i64) -> Option<String> {
        if self.revoked_at_ms.is_some() {
            Some(format!("enrollment token {} was revoked", self.id))
        } else if self.expires_at_ms.is_some_and(|t| t <= now_ms) {
            Some(format!("enrollment token {} has expired", self.id))
        } else if self.max_uses.is_some_and(|m| self.uses >= m) {
            Some(format!(
                "enrollment token {} is used up ({} of {} uses)",
                self.id,
                self.uses,
                self.max_uses.unwrap_or(0)
            ))
        } else {
            None
        }
    }
}

/// A token's public id: the start of its hash (tokens made by an older
/// `init` got theirs the same way in the migration).
pub fn token_id(token_hash: &str) -> String {
    token_hash.chars().take(12).collect()
}

const TOKEN_COLUMNS: &str = "id, customer, site, created_at_ms, expires_at_ms, max_uses, uses, revoked_at_ms";

fn token_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TokenInfo> {
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

/// Stores a new token by its hash.
pub fn create_token(
    conn: &Connection,
    token_hash: &str,
    spec: &TokenSpec,
    now_ms: i64,
) -> Result<TokenInfo, StoreError> {
    let id = token_id(token_hash);
    conn.execute(
        "INSERT INTO enrollment_tokens(token_hash, id, customer, site, created_at_ms, expires_at_ms, max_uses)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            token_hash,
            id,
            spec.customer,
            spec.site,
            now_ms,
            spec.expires_at_ms,
            spec.max_uses
        ],
    )?;
    token(conn, &id)
}

pub fn token(conn: &Connection, id: &str) -> Result<TokenInfo, StoreError> {
    conn.query_row(
        &format!("SELECT {TOKEN_COLUMNS} FROM enrollment_tokens WHERE id = ?1"),
        params![id],
        token_row,
    )
    .optional()?
    .ok_or_else(|| StoreError::NoSuchToken(id.to_string()))
}

/// Every token, oldest first.
pub fn list_tokens(conn: &Connection) -> Result<Vec<TokenInfo>, StoreError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {TOKEN_COLUMNS} FROM enrollment_tokens ORDER BY created_at_ms, id"
    ))?;
    let rows = stmt.query_map([], token_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Revokes a token: no more enrollments with it. Agents it enrolled keep
/// their credentials.
pub fn revoke_token(conn: &Connection, id: &str, now_ms: i64) -> Result<TokenInfo, StoreError> {
    token(conn, id)?;
    conn.execute(
        "UPDATE enrollment_tokens SET revoked_at_ms = COALESCE(revoked_at_ms, ?2) WHERE id = ?1",
        params![id, now_ms],
    )?;
    token(conn, id)
}

// ---------------------------------------------------------------------------
// Enrollment

/// An agent asking to enroll.
#[derive(Debug, Clone)]
pub struct Enrollment {
    pub token_hash: String,
    pub agent_id: String,
    pub credential_hash: String,
    pub host: String,
    /// The labels the agent will report; `None` from an older agent.
    pub labels: Option<BTreeMap<String, String>>,
}

/// An agent enrolled: its identity and the token that let it in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enrolled {
    pub agent_id: String,
    pub token_id: String,
    pub identity: Identity,
}

/// Enrolls an agent, in the writer's transaction: the token must be valid
/// and may bind the customer and site; the host name must not be held by
/// another active agent.
pub fn enroll(conn: &Connection, e: &Enrollment, now_ms: i64) -> Result<Enrolled, StoreError> {
    let t = conn
        .query_row(
            &format!("SELECT {TOKEN_COLUMNS} FROM enrollment_tokens WHERE token_hash = ?1"),
            params![e.token_hash],
            token_row,
        )
        .optional()?
        .ok_or_else(|| StoreError::TokenRefused("unknown enrollment token".into()))?;
    if let Some(why) = t.refusal(now_ms) {
        return Err(StoreError::TokenRefused(why));
    }
    let claim = |k: &str| e.labels.as_ref().map(|l| l.get(k).cloned().unwrap_or_default());
    // A claim the token does not allow is refused now: every report of
    // the agent would be.
    let by_token = |path: &'static str, claimed: String, bound: &str| {
        StoreError::Identity(Mismatch {
            by_token: true,
            ..mismatch(path, &claimed, bound)
        })
    };
    let customer = match (&t.customer, claim("customer")) {
        (Some(bound), Some(claimed)) if claimed != *bound => {
            return Err(by_token("labels.customer", claimed, bound));
        }
        (Some(bound), _) => Some(bound.clone()),
        // An unbound token (an older `init`'s): the agent's claim fixes it,
        // or, from an agent too old to send labels, its first report.
        (None, claimed) => claimed,
    };
    let site = match (&t.site, claim("site")) {
        (Some(bound), Some(claimed)) if claimed != *bound => {
            return Err(by_token("labels.site", claimed, bound));
        }
        (Some(bound), _) => Some(bound.clone()),
        (None, _) => None,
    };
    if let Some(holder) = active_holder(conn, &e.host)? {
        return Err(StoreError::HostTaken {
            host: e.host.clone(),
            agent_id: holder,
        });
    }
    conn.execute(
        "INSERT INTO agents(agent_id, credential_hash, host, enrolled_at_ms, customer, site, token_id)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![e.agent_id, e.credential_hash, e.host, now_ms, customer, site, t.id],
    )?;
    conn.execute(
        "UPDATE enrollment_tokens SET uses = uses + 1 WHERE id = ?1",
        params![t.id],
    )?;
    Ok(Enrolled {
        agent_id: e.agent_id.clone(),
        token_id: t.id,
        identity: Identity {
            host: e.host.clone(),
            customer,
            site,
            revoked: false,
            archived: false,
        },
    })
}

/// The active agent holding a host name, if any.
fn active_holder(conn: &Connection, host: &str) -> Result<Option<String>, StoreError> {
    Ok(conn
        .prepare_cached("SELECT agent_id FROM agents WHERE host = ?1 AND revoked_at_ms IS NULL LIMIT 1")?
        .query_row(params![host], |r| r.get(0))
        .optional()?)
}

// ---------------------------------------------------------------------------
// Reports

/// A report let in by [`admit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admission {
    pub identity: Identity,
    /// The agent used its rotated credential for the first time: (old hash,
    /// new hash). The old one stops working.
    pub promoted: Option<(String, String)>,
    /// A rotated credential the agent has not used yet, handed back in the
    /// answer to this report.
    pub offer: Option<String>,
}

struct AgentRow {
    identity: Identity,
    credential_hash: String,
    pending_hash: Option<String>,
    pending: Option<String>,
}

fn agent_row(conn: &Connection, agent_id: &str) -> Result<Option<AgentRow>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT host, customer, site, revoked_at_ms IS NOT NULL, archived_at_ms IS NOT NULL,
                    credential_hash, pending_credential_hash, pending_credential
             FROM agents WHERE agent_id = ?1",
        )?
        .query_row(params![agent_id], |r| {
            Ok(AgentRow {
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
        })
        .optional()?)
}

/// Lets a report in or refuses it, in the transaction that applies it: the
/// agent must exist and not be revoked, the credential it was sent with must
/// be the agent's (or its rotated one, which then replaces the old), and the
/// report must claim the agent's own identity. An agent whose customer was
/// not fixed at enrollment has it fixed by this report.
///
/// `credential_hash` is `None` for callers that authenticated otherwise
/// (tests, replays).
pub fn admit(
    conn: &Connection,
    agent_id: &str,
    credential_hash: Option<&str>,
    host: &str,
    labels: &BTreeMap<String, String>,
    now_ms: i64,
) -> Result<Admission, StoreError> {
    let Some(row) = agent_row(conn, agent_id)? else {
        return Err(StoreError::UnknownAgent(agent_id.to_string()));
    };
    if row.identity.revoked {
        return Err(StoreError::Revoked(agent_id.to_string()));
    }
    let mut promoted = None;
    if let Some(presented) = credential_hash
        && presented != row.credential_hash
    {
        if row.pending_hash.as_deref() != Some(presented) {
            return Err(StoreError::StaleCredential(agent_id.to_string()));
        }
        conn.prepare_cached(
            "UPDATE agents SET credential_hash = pending_credential_hash, pending_credential = NULL,
                    pending_credential_hash = NULL, rotated_at_ms = ?2 WHERE agent_id = ?1",
        )?
        .execute(params![agent_id, now_ms])?;
        promoted = Some((row.credential_hash.clone(), presented.to_string()));
    }
    let mut identity = row.identity;
    identity.check(host, labels).map_err(StoreError::Identity)?;
    if identity.customer.is_none() {
        let customer = labels.get("customer").cloned().unwrap_or_default();
        conn.prepare_cached("UPDATE agents SET customer = ?2 WHERE agent_id = ?1")?
            .execute(params![agent_id, customer])?;
        identity.customer = Some(customer);
    }
    let offer = if promoted.is_none() { row.pending } else { None };
    Ok(Admission {
        identity,
        promoted,
        offer,
    })
}

/// The agent a credential (current or rotated) belongs to, with its
/// identity: for a collector that has not seen the credential yet (rotated
/// by the CLI, enrolled through another replica).
pub fn agent_by_credential(conn: &Connection, credential_hash: &str) -> Result<Option<(String, Identity)>, StoreError> {
    let id: Option<String> = conn
        .prepare_cached(
            "SELECT agent_id FROM agents WHERE credential_hash = ?1
             UNION ALL SELECT agent_id FROM agents WHERE pending_credential_hash = ?1 LIMIT 1",
        )?
        .query_row(params![credential_hash], |r| r.get(0))
        .optional()?;
    let Some(id) = id else { return Ok(None) };
    Ok(agent_row(conn, &id)?.map(|r| (id, r.identity)))
}

/// Every agent's identity and current credential hash, for the collector's
/// in-memory view (at start and on every refresh).
pub fn identities(conn: &Connection) -> Result<Vec<(String, String, Identity)>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT agent_id, credential_hash, host, customer, site, revoked_at_ms IS NOT NULL, archived_at_ms IS NOT NULL
         FROM agents",
    )?;
    let rows = stmt.query_map([], |r| {
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
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

// ---------------------------------------------------------------------------
// Agents, for the operator

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

impl AgentInfo {
    pub fn identity(&self) -> Identity {
        Identity {
            host: self.host.clone(),
            customer: self.customer.clone(),
            site: self.site.clone(),
            revoked: self.revoked_at_ms.is_some(),
            archived: self.archived_at_ms.is_some(),
        }
    }
}

const AGENT_COLUMNS: &str = "agent_id, host, customer, site, token_id, enrolled_at_ms, last_seen_ms, last_seq,
    revoked_at_ms, archived_at_ms, pending_credential_hash IS NOT NULL, rotated_at_ms";

fn agent_info_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AgentInfo> {
    Ok(AgentInfo {
        agent_id: r.get(0)?,
        host: r.get(1)?,
        customer: r.get(2)?,
        site: r.get(3)?,
        token_id: r.get(4)?,
        enrolled_at_ms: r.get(5)?,
        last_seen_ms: r.get(6)?,
        last_seq: r.get::<_, i64>(7)? as u64,
        revoked_at_ms: r.get(8)?,
        archived_at_ms: r.get(9)?,
        rotation_pending: r.get(10)?,
        rotated_at_ms: r.get(11)?,
    })
}

/// Every agent, by host name then enrollment time.
pub fn list_agents(conn: &Connection) -> Result<Vec<AgentInfo>, StoreError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {AGENT_COLUMNS} FROM agents ORDER BY host, enrolled_at_ms, agent_id"
    ))?;
    let rows = stmt.query_map([], agent_info_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

pub fn agent(conn: &Connection, agent_id: &str) -> Result<AgentInfo, StoreError> {
    conn.query_row(
        &format!("SELECT {AGENT_COLUMNS} FROM agents WHERE agent_id = ?1"),
        params![agent_id],
        agent_info_row,
    )
    .optional()?
    .ok_or_else(|| StoreError::NoSuchAgent(agent_id.to_string()))
}

/// Revokes an agent's credential (and any rotated one): its next report is
/// refused with 401. Its records stay.
pub fn revoke_agent(conn: &Connection, agent_id: &str, now_ms: i64) -> Result<AgentInfo, StoreError> {
    agent(conn, agent_id)?;
    conn.execute(
        "UPDATE agents SET revoked_at_ms = COALESCE(revoked_at_ms, ?2), pending_credential = NULL,
                pending_credential_hash = NULL WHERE agent_id = ?1",
        params![agent_id, now_ms],
    )?;
    agent(conn, agent_id)
}

/// Gives an agent a new credential, pending until the agent first uses it
/// (the old one works until then). `secret` is handed over in the answer to
/// the agent's next accepted report; the store keeps its hash beside it to
/// know the agent's first use. A second rotation replaces a pending one.
pub fn rotate_agent(conn: &Connection, agent_id: &str, secret: &str) -> Result<AgentInfo, StoreError> {
    let a = agent(conn, agent_id)?;
    if a.revoked_at_ms.is_some() {
        return Err(StoreError::Queue(format!(
            "agent {agent_id} is revoked; enroll the host again instead"
        )));
    }
    conn.execute(
        "UPDATE agents SET pending_credential = ?2, pending_credential_hash = ?3 WHERE agent_id = ?1",
        params![agent_id, secret, crate::pki::hash_secret(secret)],
    )?;
    agent(conn, agent_id)
}

/// Decommissions a host: revokes its agent and archives its asset (kept,
/// with its history, but out of the host and asset lists, and its host name
/// free for a new agent). `key` is an agent id or the host name of an
/// agent not yet archived.
pub fn decommission(conn: &Connection, key: &str, now_ms: i64) -> Result<AgentInfo, StoreError> {
    let by_id = agent(conn, key).ok();
    let id = match by_id {
        Some(a) => a.agent_id,
        None => {
            let ids: Vec<String> = conn
                .prepare("SELECT agent_id FROM agents WHERE host = ?1 AND archived_at_ms IS NULL")?
                .query_map(params![key], |r| r.get(0))?
                .collect::<Result<_, _>>()?;
            match ids.as_slice() {
                [] => return Err(StoreError::NoSuchAgent(key.to_string())),
                [one] => one.clone(),
                many => {
                    return Err(StoreError::QueueInput(format!(
                        "{} agents have the host name {key:?} ({}); name one by its agent id",
                        many.len(),
                        many.join(", ")
                    )));
                }
            }
        }
    };
    revoke_agent(conn, &id, now_ms)?;
    conn.execute(
        "UPDATE agents SET archived_at_ms = COALESCE(archived_at_ms, ?2) WHERE agent_id = ?1",
        params![id, now_ms],
    )?;
    let a = agent(conn, &id)?;
    // Its detection state goes with it (another agent may take the name).
    crate::store::checkpoints::delete_host(conn, &a.host)?;
    Ok(a)
}

#[cfg(test)]
mod tests;
