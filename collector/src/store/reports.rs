//! The report tables: each agent's counters as its reports leave them
//! (`agents`), its newest report as received (`host_latest`), the report
//! log, the raw reports kept for `export-reports`, the events reports carry,
//! and their retention. What a report means is the pipeline's
//! (the `pipeline` module's); this module keeps the rows.

use super::StoreError;
use super::sql::{Sql, SqlError, SqlExt, args};

/// How a stored (and received) report body is encoded: identity or gzip.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Identity,
    Gzip,
}

impl Encoding {
    /// The name in `Content-Encoding` and in the store's `encoding` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Identity => "identity",
            Encoding::Gzip => "gzip",
        }
    }

    /// The encoding of a stored body; the schema allows only the two names.
    pub fn from_stored(s: &str) -> Self {
        if s == "gzip" {
            Encoding::Gzip
        } else {
            Encoding::Identity
        }
    }
}

/// Schema of the raw reports on SQLite, applied as one migration by
/// [`crate::store`]. Raw reports as received (possibly gzip), kept for
/// `store.raw_report_retention_hours` so `export-reports` can feed past
/// traffic to `replay` when trying a new rule.
pub const RAW_REPORTS_MIGRATION: &str = r#"
CREATE TABLE raw_reports (
    agent_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    received_at_ms INTEGER NOT NULL,
    encoding TEXT NOT NULL CHECK (encoding IN ('identity', 'gzip')),
    body BLOB NOT NULL,
    PRIMARY KEY (agent_id, seq)
);
CREATE INDEX raw_reports_received ON raw_reports(received_at_ms);
"#;

/// An agent's report counters before a report is applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportCounters {
    pub last_seq: u64,
    pub reports_applied: u64,
    pub seq_gaps: u64,
    pub enrolled_at_ms: i64,
}

/// What an applied report sets on its agent's row.
#[derive(Debug, Clone, Copy)]
pub struct AgentUpdate<'a> {
    pub host: &'a str,
    /// The report's labels as a JSON object.
    pub labels: &'a str,
    pub interval_secs: u32,
    pub last_seq: u64,
    pub reports_applied: u64,
    pub seq_gaps: u64,
    pub last_seen_ms: i64,
    pub last_collected_at_ms: i64,
}

/// A report as received: its body in the encoding it came in.
#[derive(Debug, Clone, Copy)]
pub struct Received<'a> {
    pub agent_id: &'a str,
    pub seq: u64,
    pub received_at_ms: i64,
    pub encoding: Encoding,
    pub body: &'a [u8],
}

/// One row of the report log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogRow<'a> {
    pub agent_id: &'a str,
    pub seq: u64,
    /// When the agent says it collected the report.
    pub collected_at_ms: i64,
    pub received_at_ms: i64,
    /// Samples in the report as sent.
    pub samples: u64,
}

/// One event a report carried, as stored.
#[derive(Debug, Clone, Copy)]
pub struct EventRow<'a> {
    pub at_ms: i64,
    pub kind: &'a str,
    pub severity: &'a str,
    pub message: &'a str,
    /// The event's labels as a JSON object.
    pub labels: &'a str,
}

/// Recent report log entries of one agent, newest first (for the API).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LogEntry {
    pub seq: u64,
    pub collected_at_ms: i64,
    pub received_at_ms: i64,
    pub samples: u64,
}

/// One stored raw report, its body as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawReport {
    pub agent_id: String,
    pub seq: u64,
    pub received_at_ms: i64,
    pub encoding: Encoding,
    pub body: Vec<u8>,
}

/// What the retention deletes: rows received before these times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportRetention {
    pub report_log_before_ms: i64,
    pub raw_reports_before_ms: i64,
}

fn seq(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

/// The report tables, on any connection or transaction.
pub trait Reports: Sql {
    /// The counters of agent `agent_id`; `None`: not enrolled.
    fn report_counters(&self, agent_id: &str) -> Result<Option<ReportCounters>, SqlError> {
        // On PostgreSQL the row is locked until the commit: a report resent
        // to another replica while the first still applies it waits, then
        // reads the new sequence number and is a duplicate (SQLite has one
        // writer at a time anyway).
        let sql = match self.dialect() {
            super::sql::Dialect::Postgres => {
                "SELECT last_seq, reports_applied, seq_gaps, enrolled_at_ms FROM agents WHERE agent_id = ?1 FOR UPDATE"
            }
            super::sql::Dialect::Sqlite => {
                "SELECT last_seq, reports_applied, seq_gaps, enrolled_at_ms FROM agents WHERE agent_id = ?1"
            }
        };
        self.query_opt(sql, args![agent_id], |r| {
            Ok(ReportCounters {
                last_seq: seq(r.get(0)?),
                reports_applied: seq(r.get(1)?),
                seq_gaps: seq(r.get(2)?),
                enrolled_at_ms: r.get(3)?,
            })
        })
    }

    /// Writes what an applied report changes on its agent's row.
    fn update_agent_for_report(&self, agent_id: &str, u: &AgentUpdate<'_>) -> Result<(), SqlError> {
        self.execute(
            "UPDATE agents SET host = ?2, labels = ?3, interval_secs = ?4, last_seq = ?5, reports_applied = ?6,
                    seq_gaps = ?7, last_seen_ms = ?8, last_collected_at_ms = ?9 WHERE agent_id = ?1",
            args![
                agent_id,
                u.host,
                u.labels,
                u.interval_secs,
                u.last_seq,
                u.reports_applied,
                u.seq_gaps,
                u.last_seen_ms,
                u.last_collected_at_ms
            ],
        )?;
        Ok(())
    }

    /// Keeps `r` as its agent's newest report (replacing the one before).
    fn put_latest_report(&self, r: &Received<'_>) -> Result<(), SqlError> {
        self.execute(
            "INSERT INTO host_latest(agent_id, seq, encoding, body) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(agent_id) DO UPDATE SET seq = excluded.seq, encoding = excluded.encoding, body = excluded.body",
            args![r.agent_id, r.seq, r.encoding.as_str(), r.body],
        )?;
        Ok(())
    }

    /// Adds a row to the report log.
    fn log_report(&self, l: &LogRow<'_>) -> Result<(), SqlError> {
        self.execute(
            "INSERT INTO report_log(agent_id, seq, collected_at_ms, received_at_ms, samples) VALUES (?1, ?2, ?3, ?4, ?5)",
            args![l.agent_id, l.seq, l.collected_at_ms, l.received_at_ms, l.samples],
        )?;
        Ok(())
    }

    /// Keeps `r`'s body as received (gzip stays gzip).
    fn put_raw_report(&self, r: &Received<'_>) -> Result<(), SqlError> {
        self.execute(
            "INSERT INTO raw_reports(agent_id, seq, received_at_ms, encoding, body) VALUES (?1, ?2, ?3, ?4, ?5)",
            args![r.agent_id, r.seq, r.received_at_ms, r.encoding.as_str(), r.body],
        )?;
        Ok(())
    }

    /// Stores an event report `seq` of agent `agent_id` carried.
    fn add_event(&self, agent_id: &str, seq: u64, e: &EventRow<'_>) -> Result<(), SqlError> {
        self.execute(
            "INSERT INTO events(agent_id, seq, at_ms, kind, severity, message, labels) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            args![agent_id, seq, e.at_ms, e.kind, e.severity, e.message, e.labels],
        )?;
        Ok(())
    }

    /// The newest `limit` report log entries of one agent, newest first.
    fn report_log(&self, agent_id: &str, limit: u32) -> Result<Vec<LogEntry>, SqlError> {
        self.query(
            "SELECT seq, collected_at_ms, received_at_ms, samples FROM report_log WHERE agent_id = ?1
             ORDER BY seq DESC LIMIT ?2",
            args![agent_id, limit],
            |r| {
                Ok(LogEntry {
                    seq: seq(r.get(0)?),
                    collected_at_ms: r.get(1)?,
                    received_at_ms: r.get(2)?,
                    samples: seq(r.get(3)?),
                })
            },
        )
    }

    /// When agent `agent_id`'s last logged report before `before_ms` arrived.
    fn last_report_before(&self, agent_id: &str, before_ms: i64) -> Result<Option<i64>, SqlError> {
        Ok(self
            .value::<Option<i64>>(
                "SELECT max(received_at_ms) FROM report_log WHERE agent_id = ?1 AND received_at_ms < ?2",
                args![agent_id, before_ms],
            )?
            .flatten())
    }

    /// Whether the store has the raw reports table (a store older than it
    /// has not).
    fn has_raw_reports(&self) -> Result<bool, SqlError> {
        super::inspection::has_table(self, "raw_reports")
    }

    /// Calls `f` for each raw report received in `[since_ms, until_ms)`
    /// (either end open when `None`), ordered by (received_at_ms, agent_id,
    /// seq). On SQLite one row at a time, so a week of reports never sits in
    /// memory at once. A store without the table is
    /// [`StoreError::Outdated`]; `f`'s error stops the walk and is returned.
    fn for_each_raw_report<E: From<StoreError>>(
        &self,
        since_ms: Option<i64>,
        until_ms: Option<i64>,
        mut f: impl FnMut(RawReport) -> Result<(), E>,
    ) -> Result<(), E> {
        if !self.has_raw_reports().map_err(StoreError::from)? {
            return Err(StoreError::Outdated("raw_reports").into());
        }
        let mut failed: Option<E> = None;
        let walked = self.query_each(
            "SELECT agent_id, seq, received_at_ms, encoding, body FROM raw_reports
             WHERE received_at_ms >= ?1 AND received_at_ms < ?2
             ORDER BY received_at_ms, agent_id, seq",
            args![since_ms.unwrap_or(i64::MIN), until_ms.unwrap_or(i64::MAX)],
            |r| {
                let raw = RawReport {
                    agent_id: r.get(0)?,
                    seq: seq(r.get(1)?),
                    received_at_ms: r.get(2)?,
                    encoding: Encoding::from_stored(&r.get::<String>(3)?),
                    body: r.get(4)?,
                };
                match f(raw) {
                    Ok(()) => Ok(()),
                    Err(e) => {
                        failed = Some(e);
                        // Stops the walk; the caller's error is returned below.
                        Err(SqlError::NoRow)
                    }
                }
            },
        );
        if let Some(e) = failed {
            return Err(e);
        }
        walked.map_err(|e| StoreError::from(e).into())
    }

    /// Deletes report log rows and raw reports received before `p`'s
    /// times; how many of each.
    fn prune_reports(&self, p: &ReportRetention) -> Result<(u64, u64), SqlError> {
        let log = self.execute(
            "DELETE FROM report_log WHERE received_at_ms < ?1",
            args![p.report_log_before_ms],
        )?;
        let raw = self.execute(
            "DELETE FROM raw_reports WHERE received_at_ms < ?1",
            args![p.raw_reports_before_ms],
        )?;
        Ok((log, raw))
    }
}

impl<S: Sql + ?Sized> Reports for S {}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::store::testing::{add_agent, on_both};

    fn received(seq: u64, at: i64, encoding: Encoding, body: &[u8]) -> Received<'_> {
        Received {
            agent_id: "a1",
            seq,
            received_at_ms: at,
            encoding,
            body,
        }
    }

    fn raw(db: &dyn Sql, since: Option<i64>, until: Option<i64>) -> Vec<RawReport> {
        let mut all = Vec::new();
        db.for_each_raw_report(since, until, |r| -> Result<(), StoreError> {
            all.push(r);
            Ok(())
        })
        .unwrap();
        all
    }

    #[test]
    fn a_report_is_stored_logged_and_pruned() {
        on_both(|db| {
            add_agent(db, "a1", "db1");
            assert_eq!(
                db.report_counters("a1").unwrap(),
                Some(ReportCounters {
                    last_seq: 0,
                    reports_applied: 0,
                    seq_gaps: 0,
                    enrolled_at_ms: 0
                })
            );
            assert_eq!(db.report_counters("a2").unwrap(), None);
            for (seq, at, enc, body) in [
                (1, 1_000, Encoding::Gzip, &b"\x1f\x8b one"[..]),
                (2, 2_000, Encoding::Identity, &b"{\"two\":2}"[..]),
                (3, 3_000, Encoding::Identity, &b"{}"[..]),
            ] {
                let r = received(seq, at, enc, body);
                db.update_agent_for_report(
                    "a1",
                    &AgentUpdate {
                        host: "db1",
                        labels: "{\"customer\":\"acme\"}",
                        interval_secs: 60,
                        last_seq: seq,
                        reports_applied: seq,
                        seq_gaps: 0,
                        last_seen_ms: at,
                        last_collected_at_ms: at - 10,
                    },
                )
                .unwrap();
                db.put_latest_report(&r).unwrap();
                db.log_report(&LogRow {
                    agent_id: "a1",
                    seq,
                    collected_at_ms: at - 10,
                    received_at_ms: at,
                    samples: 7,
                })
                .unwrap();
                db.put_raw_report(&r).unwrap();
                db.add_event(
                    "a1",
                    seq,
                    &EventRow {
                        at_ms: at,
                        kind: "oom_kill",
                        severity: "warning",
                        message: "m",
                        labels: "{}",
                    },
                )
                .unwrap();
            }
            let c = db.report_counters("a1").unwrap().unwrap();
            assert_eq!((c.last_seq, c.reports_applied), (3, 3));
            let latest: i64 = db
                .query_one("SELECT seq FROM host_latest WHERE agent_id = 'a1'", args![], |r| {
                    r.get(0)
                })
                .unwrap();
            assert_eq!(latest, 3);

            let log = db.report_log("a1", 2).unwrap();
            assert_eq!(
                log,
                vec![
                    LogEntry {
                        seq: 3,
                        collected_at_ms: 2_990,
                        received_at_ms: 3_000,
                        samples: 7
                    },
                    LogEntry {
                        seq: 2,
                        collected_at_ms: 1_990,
                        received_at_ms: 2_000,
                        samples: 7
                    },
                ]
            );
            assert_eq!(db.last_report_before("a1", 2_500).unwrap(), Some(2_000));
            assert_eq!(db.last_report_before("a1", 1_000).unwrap(), None);

            let all = raw(db, None, None);
            assert_eq!(all.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2, 3]);
            assert_eq!(all[0].encoding, Encoding::Gzip);
            assert_eq!(all[0].body, b"\x1f\x8b one");
            assert_eq!(all[1].body, b"{\"two\":2}");
            assert_eq!(
                raw(db, Some(2_000), Some(3_000))
                    .iter()
                    .map(|r| r.seq)
                    .collect::<Vec<_>>(),
                [2],
                "since is inclusive, until exclusive"
            );
            // The caller's error stops the walk.
            let mut seen = 0;
            let r = db.for_each_raw_report(None, None, |_| {
                seen += 1;
                Err(StoreError::Transaction("stop".into()))
            });
            assert!(matches!(r, Err(StoreError::Transaction(m)) if m == "stop"));
            assert_eq!(seen, 1);

            let pruned = db
                .prune_reports(&ReportRetention {
                    report_log_before_ms: 1_500,
                    raw_reports_before_ms: 2_500,
                })
                .unwrap();
            assert_eq!(pruned, (1, 2));
            assert_eq!(raw(db, None, None).iter().map(|r| r.seq).collect::<Vec<_>>(), [3]);
            assert_eq!(db.report_log("a1", 10).unwrap().len(), 2);
        });
    }

    #[test]
    fn an_old_store_is_named_outdated() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let r = conn.for_each_raw_report(None, None, |_| -> Result<(), StoreError> { Ok(()) });
        assert!(matches!(r, Err(StoreError::Outdated("raw_reports"))));
    }
}
