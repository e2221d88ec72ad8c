//! Ingest: what turns an agent's request into a report the pipeline
//! ([`crate::pipeline`]) may take, and the one way raw report bytes become a
//! validated [`Report`] (`serve`, `replay` and the store's own reads use the
//! same functions). Nothing here writes: a refused report changes nothing.
//!
//! In order, each step refusing with its own [`Refused`]:
//! 1. **authenticate** ([`authenticate`]): the bearer credential names an
//!    agent (the fleet's cache, else the store); a revoked agent is told so;
//! 2. **encoding** ([`encoding`]) and **size as sent** ([`check_declared_size`]);
//!    the body itself is read by the transport, bounded by the same limit;
//! 3. **decompress, decode, validate** ([`decode_body`]): the size once
//!    decompressed, JSON errors naming the field and position, then every
//!    problem [`Report::validate`] finds, with its path;
//! 4. **accept** ([`accept`]): the report is the authenticated agent's own,
//!    claims the identity fixed at enrollment (host, customer, site), and its
//!    clock is judged and its times dated by it ([`crate::clock`]).
//!
//! The result is an [`Incoming`] for the store writer, which admits it again
//! in the transaction that applies it ([`crate::identity::admit`]): the store
//! decides, these checks spare it work.

mod body;
#[cfg(test)]
mod tests;

use std::future::Future;

use caretaker_shared::wire::{self, Report, Sample, WireError};

pub use self::body::{DecompressError, Encoding, decompress};
use crate::config::IngestConfig;
use crate::fleet::{Fleet, catalogue_samples};
use crate::identity::Identity;
use crate::store::StoreError;
use crate::writer::Incoming;

/// Why a report was refused, by the step that refused it. Each maps to one
/// HTTP answer (see `http/reports.rs`).
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// No credential, an unknown one, or one that is not the report's agent's.
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    UnsupportedEncoding(String),
    /// Larger than allowed, as sent or once decompressed.
    #[error("{0}")]
    TooLarge(String),
    /// Not gzip, or not JSON of a report: `path` names where (`.` for the
    /// whole body).
    #[error("{path}: {reason}")]
    Malformed { path: String, reason: String },
    /// A report that breaks the wire rules: every problem, with its path.
    #[error("invalid report: {}", .0.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; "))]
    Invalid(Vec<WireError>),
    /// The store's word: a revoked agent, a report claiming another
    /// identity ([`StoreError::Identity`]), or the lookup failing.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An agent that presented a valid credential.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authenticated {
    pub agent_id: String,
    /// Hash of the credential presented; the writer checks it again.
    pub credential_hash: String,
}

/// The agent a bearer credential belongs to: from the fleet's cache, else
/// from the store through `lookup` (a credential rotated or enrolled by
/// another process). A revoked agent is told so.
pub async fn authenticate<F, Fut>(fleet: &Fleet, secret: Option<&str>, lookup: F) -> Result<Authenticated, Refused>
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = Result<Option<(String, Identity)>, StoreError>>,
{
    let secret = secret.ok_or_else(|| Refused::Unauthorized("missing bearer credential".into()))?;
    let credential_hash = crate::pki::hash_secret(secret);
    let agent_id = match fleet.agent_for_credential(&credential_hash) {
        Some(id) => id,
        None => {
            let Some((id, identity)) = lookup(credential_hash.clone()).await? else {
                return Err(Refused::Unauthorized("unknown credential".into()));
            };
            if !identity.revoked {
                fleet.add_credential(credential_hash.clone(), id.clone());
            }
            fleet.set_identity(&id, identity);
            id
        }
    };
    if fleet.identity(&agent_id).is_some_and(|i| i.revoked) {
        let e = StoreError::Revoked(agent_id);
        tracing::warn!(reason = %e, "report refused");
        return Err(e.into());
    }
    Ok(Authenticated {
        agent_id,
        credential_hash,
    })
}

/// The body's encoding from its `Content-Encoding` (`None`: not given).
pub fn encoding(content_encoding: Option<&str>) -> Result<Encoding, Refused> {
    match content_encoding {
        None | Some("identity") => Ok(Encoding::Identity),
        Some("gzip") => Ok(Encoding::Gzip),
        Some(other) => Err(Refused::UnsupportedEncoding(format!(
            "content-encoding {other:?}; use gzip or identity"
        ))),
    }
}

/// Refuses a body whose declared length (`Content-Length`) is over
/// `ingest.max_body_bytes` before any of it is read.
pub fn check_declared_size(content_length: Option<usize>, cfg: &IngestConfig) -> Result<(), Refused> {
    match content_length {
        Some(len) if len > cfg.max_body_bytes => Err(Refused::TooLarge(format!(
            "body of {len} bytes is larger than {} bytes",
            cfg.max_body_bytes
        ))),
        _ => Ok(()),
    }
}

/// A decoded, valid report with its samples split out.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    /// The report, its samples moved to `samples`.
    pub report: Report,
    /// The catalogue's samples, sorted by metric ([`catalogue_samples`]).
    pub samples: Vec<Sample>,
    /// Samples in the report as sent, known or not.
    pub sample_count: usize,
}

impl Decoded {
    /// Splits a report's samples: the catalogue's are kept, sorted; those
    /// of metrics this build does not know (a newer agent's) are counted
    /// and left out.
    pub fn of(mut report: Report) -> Self {
        let sample_count = report.samples.len();
        let samples = catalogue_samples(std::mem::take(&mut report.samples));
        Decoded {
            report,
            samples,
            sample_count,
        }
    }
}

/// JSON to a report, unvalidated: a failure names the field path (`.` for
/// the document) and serde's line and column. For bodies validated when
/// they were received ([`decode_stored`]); new input goes through [`decode`].
pub fn parse(json: &[u8]) -> Result<Report, Refused> {
    wire::decode(json).map_err(|e| Refused::Malformed {
        path: e.path,
        reason: e.reason,
    })
}

/// JSON to a valid report: [`parse`], then every problem
/// [`Report::validate`] finds.
pub fn decode(json: &[u8]) -> Result<Report, Refused> {
    let report = parse(json)?;
    if let Some(path) = wire::nul_in_text(json) {
        return Err(Refused::Invalid(vec![wire::WireError {
            path,
            reason: wire::NUL_REASON.into(),
        }]));
    }
    report.validate().map_err(Refused::Invalid)?;
    Ok(report)
}

/// A received body to a valid report: decompressed (at most `limit` bytes,
/// `ingest.max_decompressed_bytes`), then [`decode`]d. CPU work: run it off
/// the async workers.
pub fn decode_body(body: &[u8], encoding: Encoding, limit: usize) -> Result<Decoded, Refused> {
    let json = decompress(body, encoding, limit).map_err(|e| match e {
        DecompressError::TooLarge(_) => Refused::TooLarge(e.to_string()),
        DecompressError::Corrupt(_) => Refused::Malformed {
            path: ".".into(),
            reason: e.to_string(),
        },
    })?;
    Ok(Decoded::of(decode(&json)?))
}

/// Stored bodies were accepted under `ingest.max_decompressed_bytes`; this
/// bound only keeps a damaged row from exhausting memory.
pub const MAX_STORED_BYTES: usize = 1 << 30;

/// A body the store kept (`host_latest`, `raw_reports`) back to its report.
/// Not validated again: it was when received, and a later build's stricter
/// rules must not make a store unreadable.
pub fn decode_stored(body: &[u8], encoding: Encoding) -> Result<Report, Refused> {
    let json = decompress(body, encoding, MAX_STORED_BYTES).map_err(|e| Refused::Malformed {
        path: ".".into(),
        reason: e.to_string(),
    })?;
    parse(&json)
}

/// How one request arrived, besides its body.
#[derive(Debug, Clone)]
pub struct Received {
    pub agent: Authenticated,
    /// The body as received (kept as is: `raw_reports`, `host_latest`).
    pub body: Vec<u8>,
    pub encoding: Encoding,
    /// When the agent sent it by its clock (the HTTP `Date` header).
    pub sent_at_ms: Option<i64>,
    pub received_at_ms: i64,
}

/// Step 4: the decoded report is the authenticated agent's own and claims
/// its enrolled identity; its clock is judged before anything is dated by
/// it. The result is what the store writer applies.
pub fn accept(fleet: &Fleet, decoded: Decoded, received: Received, cfg: &IngestConfig) -> Result<Incoming, Refused> {
    let Received {
        agent,
        body,
        encoding,
        sent_at_ms,
        received_at_ms,
    } = received;
    let Decoded {
        mut report,
        samples,
        sample_count,
    } = decoded;
    let agent_id = agent.agent_id;
    if report.agent_id != agent_id {
        return Err(Refused::Unauthorized(format!(
            "the credential does not belong to agent {:?}",
            report.agent_id
        )));
    }
    if let Some(identity) = fleet.identity(&agent_id)
        && let Err(m) = identity.check(&report.host, &report.labels)
    {
        return Err(refused_identity(&agent_id, StoreError::Identity(m)));
    }
    let enrolled_at_ms = fleet.get(&agent_id).map(|h| h.enrolled_at_ms);
    let clock = crate::clock::judge(
        report.collected_at_ms,
        sent_at_ms,
        received_at_ms,
        enrolled_at_ms,
        cfg.max_clock_skew_ms(),
    );
    crate::clock::normalize(&mut report, &clock, received_at_ms);
    if clock.skewed {
        tracing::debug!(agent_id, offset_ms = ?clock.offset_ms, claimed = clock.claimed_collected_at_ms, "agent clock off: report dated at receipt");
    }
    Ok(Incoming {
        agent_id,
        credential_hash: Some(agent.credential_hash),
        report,
        samples,
        sample_count,
        body,
        encoding,
        received_at_ms,
        clock: Some(clock),
    })
}

/// A report claiming another identity: logged as the warning it is (a
/// misconfigured or compromised agent), refused naming the field.
pub fn refused_identity(agent_id: &str, e: StoreError) -> Refused {
    tracing::warn!(%agent_id, reason = %e, "report refused: identity");
    e.into()
}
