//! `caretaker-collector export-reports`: the raw reports kept in the store
//! (see `store.raw_report_retention_hours`), written as JSON lines in the
//! input format of [`crate::detect::replay`], so a new rule can be tried on
//! last week's traffic before it is deployed.
//!
//! Each line is `{"at_ms": <received_at_ms>, "report": <report>}`: the
//! receive time, not the agent's `collected_at_ms`, because that is the time
//! the live engine saw the report at.

use std::io::Write;

use crate::store::sql::Sql;
use crate::store::{Reports, StoreError};

/// Which reports to export.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExportFilter {
    /// Received at or after this time (ms since the epoch).
    pub since_ms: Option<i64>,
    /// Received before this time (ms since the epoch).
    pub until_ms: Option<i64>,
    /// Only reports whose `host` field is this name.
    pub host: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("stored report {seq} of agent {agent_id} cannot be read: {reason}")]
    Corrupt { agent_id: String, seq: u64, reason: String },
    #[error("writing the output: {0}")]
    Io(#[from] std::io::Error),
}

/// Writes the matching raw reports to `out`, one line each, ordered by
/// (received_at_ms, agent_id, seq). Returns how many were written.
pub fn export(db: &dyn Sql, filter: &ExportFilter, out: &mut impl Write) -> Result<u64, ExportError> {
    let mut n = 0;
    db.for_each_raw_report(filter.since_ms, filter.until_ms, |raw| -> Result<(), ExportError> {
        let corrupt = |reason: String| ExportError::Corrupt {
            agent_id: raw.agent_id.clone(),
            seq: raw.seq,
            reason,
        };
        let json = crate::ingest::decompress(&raw.body, raw.encoding, crate::ingest::MAX_STORED_BYTES)
            .map_err(|e| corrupt(e.to_string()))?;
        // A generic value keeps every field the agent sent, including ones
        // this collector does not know, and re-encodes the report on one line.
        let report: serde_json::Value = serde_json::from_slice(&json).map_err(|e| corrupt(e.to_string()))?;
        if let Some(host) = &filter.host {
            if report.get("host").and_then(serde_json::Value::as_str) != Some(host.as_str()) {
                return Ok(());
            }
        }
        let line = serde_json::json!({ "at_ms": raw.received_at_ms, "report": report });
        serde_json::to_writer(&mut *out, &line).map_err(std::io::Error::from)?;
        out.write_all(b"\n")?;
        n += 1;
        Ok(())
    })?;
    Ok(n)
}

/// Parses a time given on the command line: milliseconds since the epoch, or
/// an RFC 3339 timestamp such as `2026-11-20T00:00:00Z` or
/// `2026-11-20T08:00:00+01:00`.
pub fn parse_time(s: &str) -> Result<i64, String> {
    let s = s.trim();
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return s
            .parse::<i64>()
            .map_err(|_| format!("{s}: milliseconds since the epoch out of range"));
    }
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("{s}: not milliseconds since the epoch nor an RFC 3339 time ({e})"))?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).map_err(|_| format!("{s}: out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times() {
        assert_eq!(parse_time("1800000000000"), Ok(1_800_000_000_000));
        assert_eq!(parse_time("0"), Ok(0));
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_time("2027-01-15T08:00:00Z"), Ok(1_800_000_000_000));
        assert_eq!(parse_time("2027-01-15T09:00:00.250+01:00"), Ok(1_800_000_000_250));
        assert_eq!(parse_time("2027-01-15t08:00:00z"), Ok(1_800_000_000_000));
        for bad in [
            "",
            "yesterday",
            "2027-01-15",
            "2027-01-15T08:00:00",
            "-5",
            "99999999999999999999",
            "2027-13-01T00:00:00Z",
        ] {
            assert!(parse_time(bad).is_err(), "{bad:?} accepted");
        }
    }
}
