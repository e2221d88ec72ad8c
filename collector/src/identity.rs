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

use crate::store::StoreError;
use crate::store::agents::{Agents, NewAgent};
use crate::store::sql::Sql;

pub use crate::store::agents::{AgentInfo, Identity, Mismatch, TokenInfo, TokenSpec, token_id};

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

/// Stores a new token by its hash.
pub fn create_token(db: &dyn Sql, token_hash: &str, spec: &TokenSpec, now_ms: i64) -> Result<TokenInfo, StoreError> {
    let id = db.insert_token(token_hash, spec, now_ms)?;
    token(db, &id)
}

pub fn token(db: &dyn Sql, id: &str) -> Result<TokenInfo, StoreError> {
    db.token_by_id(id)?
        .ok_or_else(|| StoreError::NoSuchToken(id.to_string()))
}

/// Every token, oldest first.
pub fn list_tokens(db: &dyn Sql) -> Result<Vec<TokenInfo>, StoreError> {
    Ok(db.tokens()?)
}

/// Revokes a token: no more enrollments with it. Agents it enrolled keep
/// their credentials.
pub fn revoke_token(db: &dyn Sql, id: &str, now_ms: i64) -> Result<TokenInfo, StoreError> {
    token(db, id)?;
    db.set_token_revoked(id, now_ms)?;
    token(db, id)
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
pub fn enroll(db: &dyn Sql, e: &Enrollment, now_ms: i64) -> Result<Enrolled, StoreError> {
    let t = db
        .token_by_hash(&e.token_hash)?
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
    if let Some(holder) = db.active_agent_on_host(&e.host)? {
        return Err(StoreError::HostTaken {
            host: e.host.clone(),
            agent_id: holder,
        });
    }
    db.insert_agent(&NewAgent {
        agent_id: &e.agent_id,
        credential_hash: &e.credential_hash,
        host: &e.host,
        enrolled_at_ms: now_ms,
        customer: customer.as_deref(),
        site: site.as_deref(),
        token_id: Some(&t.id),
        labels: "{}",
    })?;
    db.count_token_use(&t.id)?;
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

/// Lets a report in or refuses it, in the transaction that applies it: the
/// agent must exist and not be revoked, the credential it was sent with must
/// be the agent's (or its rotated one, which then replaces the old), and the
/// report must claim the agent's own identity. An agent whose customer was
/// not fixed at enrollment has it fixed by this report.
///
/// `credential_hash` is `None` for callers that authenticated otherwise
/// (tests, replays).
pub fn admit(
    db: &dyn Sql,
    agent_id: &str,
    credential_hash: Option<&str>,
    host: &str,
    labels: &BTreeMap<String, String>,
    now_ms: i64,
) -> Result<Admission, StoreError> {
    let Some(row) = db.agent_credentials(agent_id)? else {
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
        db.promote_pending_credential(agent_id, now_ms)?;
        promoted = Some((row.credential_hash.clone(), presented.to_string()));
    }
    let mut identity = row.identity;
    identity.check(host, labels).map_err(StoreError::Identity)?;
    if identity.customer.is_none() {
        let customer = labels.get("customer").cloned().unwrap_or_default();
        db.set_agent_customer(agent_id, &customer)?;
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
pub fn agent_by_credential(db: &dyn Sql, credential_hash: &str) -> Result<Option<(String, Identity)>, StoreError> {
    let Some(id) = db.agent_with_credential(credential_hash)? else {
        return Ok(None);
    };
    Ok(db.agent_credentials(&id)?.map(|r| (id, r.identity)))
}

/// Every agent's identity and current credential hash, for the collector's
/// in-memory view (at start and on every refresh).
pub fn identities(db: &dyn Sql) -> Result<Vec<(String, String, Identity)>, StoreError> {
    Ok(db.identities()?)
}

// ---------------------------------------------------------------------------
// Agents, for the operator

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

/// Every agent, by host name then enrollment time.
pub fn list_agents(db: &dyn Sql) -> Result<Vec<AgentInfo>, StoreError> {
    Ok(db.agents()?)
}

pub fn agent(db: &dyn Sql, agent_id: &str) -> Result<AgentInfo, StoreError> {
    db.agent_info(agent_id)?
        .ok_or_else(|| StoreError::NoSuchAgent(agent_id.to_string()))
}

/// Revokes an agent's credential (and any rotated one): its next report is
/// refused with 401. Its records stay.
pub fn revoke_agent(db: &dyn Sql, agent_id: &str, now_ms: i64) -> Result<AgentInfo, StoreError> {
    agent(db, agent_id)?;
    db.set_agent_revoked(agent_id, now_ms)?;
    agent(db, agent_id)
}

/// Gives an agent a new credential, pending until the agent first uses it
/// (the old one works until then). `secret` is handed over in the answer to
/// the agent's next accepted report; the store keeps its hash beside it to
/// know the agent's first use. A second rotation replaces a pending one.
pub fn rotate_agent(db: &dyn Sql, agent_id: &str, secret: &str) -> Result<AgentInfo, StoreError> {
    let a = agent(db, agent_id)?;
    if a.revoked_at_ms.is_some() {
        return Err(StoreError::Queue(format!(
            "agent {agent_id} is revoked; enroll the host again instead"
        )));
    }
    db.set_pending_credential(agent_id, secret, &crate::pki::hash_secret(secret))?;
    agent(db, agent_id)
}

/// Decommissions a host: revokes its agent and archives its asset (kept,
/// with its history, but out of the host and asset lists, and its host name
/// free for a new agent). `key` is an agent id or the host name of an
/// agent not yet archived.
pub fn decommission(db: &dyn Sql, key: &str, now_ms: i64) -> Result<AgentInfo, StoreError> {
    let by_id = agent(db, key).ok();
    let id = match by_id {
        Some(a) => a.agent_id,
        None => {
            let ids = db.unarchived_agents_on_host(key)?;
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
    revoke_agent(db, &id, now_ms)?;
    db.set_agent_archived(&id, now_ms)?;
    let a = agent(db, &id)?;
    // Its detection state goes with it (another agent may take the name).
    crate::store::checkpoints::delete_host(db, &a.host)?;
    Ok(a)
}

#[cfg(test)]
mod tests;
