//! Disk health rows: each disk's latest reading (`disk_latest`, the whole
//! reading as a JSON document) and its compact history of key counters
//! (`smart_history`). What a reading means and when a history row is worth
//! writing is `disks`'s to decide; this module keeps the rows.

use super::sql::{Row, Sql, SqlError, SqlExt, args};

/// Schema on SQLite, applied as one migration by [`crate::store`].
pub const MIGRATION: &str = r#"
CREATE TABLE disk_latest (
    agent_id TEXT NOT NULL REFERENCES agents(agent_id) ON DELETE CASCADE,
    disk_key TEXT NOT NULL,
    device TEXT NOT NULL,
    model TEXT NOT NULL,
    serial TEXT NOT NULL,
    level TEXT NOT NULL,
    scanned_at_ms INTEGER NOT NULL,
    first_seen_ms INTEGER NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (agent_id, disk_key)
);
CREATE TABLE smart_history (
    agent_id TEXT NOT NULL REFERENCES agents(agent_id) ON DELETE CASCADE,
    disk_key TEXT NOT NULL,
    at_ms INTEGER NOT NULL,
    level TEXT NOT NULL,
    reasons TEXT NOT NULL,
    vals TEXT NOT NULL,
    PRIMARY KEY (agent_id, disk_key, at_ms)
);
"#;

/// A disk's latest reading as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct LatestDisk {
    pub agent_id: String,
    pub host: String,
    pub first_seen_ms: i64,
    pub scanned_at_ms: i64,
    /// The reading (`caretaker_shared::disk_health::Disk`) as JSON.
    pub doc: String,
}

/// What a latest-reading row is written from.
#[derive(Debug, Clone, Copy)]
pub struct DiskReading<'a> {
    pub key: &'a str,
    pub device: &'a str,
    pub model: &'a str,
    pub serial: &'a str,
    pub level: &'a str,
    pub scanned_at_ms: i64,
    pub doc: &'a str,
}

/// One history row: the verdict, its reasons and the key counters (JSON).
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryRow {
    pub at_ms: i64,
    pub level: String,
    /// JSON array of the verdict's reasons.
    pub reasons: String,
    /// JSON object of the key counters.
    pub vals: String,
}

/// A disk's last history row in a period, with its names from the latest
/// reading when the disk is still present.
#[derive(Debug, Clone, PartialEq)]
pub struct PeriodDisk {
    pub key: String,
    pub host: String,
    pub row: HistoryRow,
    pub device: Option<String>,
    pub model: Option<String>,
    pub serial: Option<String>,
    pub first_seen_ms: Option<i64>,
}

const LATEST: &str = "SELECT d.agent_id, a.host, d.first_seen_ms, d.scanned_at_ms, d.doc FROM disk_latest d
     JOIN agents a ON a.agent_id = d.agent_id";

fn latest(r: &Row<'_>) -> Result<LatestDisk, SqlError> {
    Ok(LatestDisk {
        agent_id: r.get(0)?,
        host: r.get(1)?,
        first_seen_ms: r.get(2)?,
        scanned_at_ms: r.get(3)?,
        doc: r.get(4)?,
    })
}

fn history_row(r: &Row<'_>, from: usize) -> Result<HistoryRow, SqlError> {
    Ok(HistoryRow {
        at_ms: r.get(from)?,
        level: r.get(from + 1)?,
        reasons: r.get(from + 2)?,
        vals: r.get(from + 3)?,
    })
}

/// Disk health rows, on any connection or transaction.
pub trait DiskStore: Sql {
    /// Writes a disk's latest reading; the time it was first seen stays.
    fn put_latest_disk(&self, agent_id: &str, d: &DiskReading<'_>) -> Result<(), SqlError> {
        self.execute(
            "INSERT INTO disk_latest(agent_id, disk_key, device, model, serial, level, scanned_at_ms, first_seen_ms, doc)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8)
             ON CONFLICT(agent_id, disk_key) DO UPDATE SET device = excluded.device, model = excluded.model,
                serial = excluded.serial, level = excluded.level, scanned_at_ms = excluded.scanned_at_ms,
                doc = excluded.doc",
            args![agent_id, d.key, d.device, d.model, d.serial, d.level, d.scanned_at_ms, d.doc],
        )?;
        Ok(())
    }

    /// The keys of the disks an agent has now.
    fn latest_disk_keys(&self, agent_id: &str) -> Result<Vec<String>, SqlError> {
        self.query(
            "SELECT disk_key FROM disk_latest WHERE agent_id = ?1",
            args![agent_id],
            |r| r.get(0),
        )
    }

    /// Takes a disk off the host's current list (its history stays).
    fn remove_latest_disk(&self, agent_id: &str, key: &str) -> Result<(), SqlError> {
        self.execute(
            "DELETE FROM disk_latest WHERE agent_id = ?1 AND disk_key = ?2",
            args![agent_id, key],
        )?;
        Ok(())
    }

    /// Every current disk, optionally of one agent, worst verdict first.
    fn latest_disks(&self, agent_id: Option<&str>) -> Result<Vec<LatestDisk>, SqlError> {
        self.query(
            &format!(
                "{LATEST} WHERE CAST(?1 AS TEXT) IS NULL OR d.agent_id = ?1
                 ORDER BY CASE d.level WHEN 'failing' THEN 0 WHEN 'warning' THEN 1 WHEN 'unknown' THEN 2 ELSE 3 END,
                          a.host, d.device, d.disk_key"
            ),
            args![agent_id],
            latest,
        )
    }

    /// One disk's latest reading while the host has it.
    fn latest_disk(&self, agent_id: &str, key: &str) -> Result<Option<LatestDisk>, SqlError> {
        self.query_opt(
            &format!("{LATEST} WHERE d.agent_id = ?1 AND d.disk_key = ?2"),
            args![agent_id, key],
            latest,
        )
    }

    /// The key and document (JSON text) of each current disk of an agent,
    /// by key: what an assessment reads.
    fn disk_docs_by_key(&self, agent_id: &str) -> Result<Vec<(String, String)>, SqlError> {
        self.query(
            "SELECT disk_key, doc FROM disk_latest WHERE agent_id = ?1 ORDER BY disk_key",
            args![agent_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
    }

    /// The keys of the current disks with `serial` on `host`.
    fn disk_keys_with_serial(&self, host: &str, serial: &str) -> Result<Vec<String>, SqlError> {
        self.query(
            "SELECT DISTINCT d.disk_key FROM disk_latest d JOIN agents a ON a.agent_id = d.agent_id
             WHERE a.host = ?1 AND d.serial = ?2 ORDER BY d.disk_key",
            args![host, serial],
            |r| r.get(0),
        )
    }

    /// A disk's newest history row.
    fn last_history_row(&self, agent_id: &str, key: &str) -> Result<Option<HistoryRow>, SqlError> {
        self.query_opt(
            "SELECT at_ms, level, reasons, vals FROM smart_history WHERE agent_id = ?1 AND disk_key = ?2
             ORDER BY at_ms DESC LIMIT 1",
            args![agent_id, key],
            |r| history_row(r, 0),
        )
    }

    /// Writes a history row (one at a time per disk: a second at the same
    /// time replaces the first).
    fn put_history_row(&self, agent_id: &str, key: &str, row: &HistoryRow) -> Result<(), SqlError> {
        self.execute(
            "INSERT INTO smart_history(agent_id, disk_key, at_ms, level, reasons, vals) VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (agent_id, disk_key, at_ms) DO UPDATE SET level = excluded.level,
                reasons = excluded.reasons, vals = excluded.vals",
            args![agent_id, key, row.at_ms, &row.level, &row.reasons, &row.vals],
        )?;
        Ok(())
    }

    /// The newest `limit` history rows of one disk (also of a disk no
    /// longer present), oldest first.
    fn disk_history(&self, agent_id: &str, key: &str, limit: u32) -> Result<Vec<HistoryRow>, SqlError> {
        self.query(
            "SELECT at_ms, level, reasons, vals FROM (
                 SELECT at_ms, level, reasons, vals FROM smart_history WHERE agent_id = ?1 AND disk_key = ?2
                 ORDER BY at_ms DESC LIMIT ?3) AS newest ORDER BY at_ms",
            args![agent_id, key, limit],
            |r| history_row(r, 0),
        )
    }

    /// Each disk of one agent by its last history row before `to_ms`, when
    /// that row is from `since_ms` on, worst verdict first; disks retired
    /// before `to_ms` left out.
    fn disks_in_period(&self, agent_id: &str, since_ms: i64, to_ms: i64) -> Result<Vec<PeriodDisk>, SqlError> {
        self.query(
            "SELECT h.disk_key, a.host, h.at_ms, h.level, h.reasons, h.vals, d.device, d.model, d.serial, d.first_seen_ms
             FROM smart_history h JOIN agents a ON a.agent_id = h.agent_id
             LEFT JOIN disk_latest d ON d.agent_id = h.agent_id AND d.disk_key = h.disk_key
             WHERE h.agent_id = ?1 AND h.at_ms >= ?2 AND h.at_ms = (
                 SELECT max(x.at_ms) FROM smart_history x
                 WHERE x.agent_id = h.agent_id AND x.disk_key = h.disk_key AND x.at_ms < ?3)
               AND NOT EXISTS (SELECT 1 FROM retired_parts r
                 WHERE r.asset = a.host AND r.component = h.disk_key AND r.retired_at_ms < ?3)
             ORDER BY CASE h.level WHEN 'failing' THEN 0 WHEN 'warning' THEN 1 WHEN 'unknown' THEN 2 ELSE 3 END,
                      coalesce(d.device, ''), h.disk_key",
            args![agent_id, since_ms, to_ms],
            |r| {
                Ok(PeriodDisk {
                    key: r.get(0)?,
                    host: r.get(1)?,
                    row: history_row(r, 2)?,
                    device: r.get(6)?,
                    model: r.get(7)?,
                    serial: r.get(8)?,
                    first_seen_ms: r.get(9)?,
                })
            },
        )
    }
}

impl<S: Sql + ?Sized> DiskStore for S {}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::store::retired::RetiredParts;
    use crate::store::testing::{add_agent, on_both};

    fn reading<'a>(key: &'a str, level: &'a str, at: i64, doc: &'a str) -> DiskReading<'a> {
        DiskReading {
            key,
            device: "/dev/sda",
            model: "M",
            serial: key,
            level,
            scanned_at_ms: at,
            doc,
        }
    }

    fn row(at_ms: i64, level: &str) -> HistoryRow {
        HistoryRow {
            at_ms,
            level: level.into(),
            reasons: "[]".into(),
            vals: format!("{{\"realloc\":{at_ms}}}"),
        }
    }

    #[test]
    fn a_disk_keeps_its_first_sighting_and_leaves_the_list_but_not_its_history() {
        on_both(|db| {
            add_agent(db, "a1", "db1");
            db.put_latest_disk("a1", &reading("k1", "ok", 100, "{}")).unwrap();
            db.put_latest_disk("a1", &reading("k2", "failing", 100, "{}")).unwrap();
            db.put_latest_disk("a1", &reading("k1", "warning", 200, "{\"x\":1}"))
                .unwrap();
            let all = db.latest_disks(None).unwrap();
            assert_eq!(all.len(), 2);
            assert_eq!(all[0].doc, "{}", "failing first");
            assert_eq!(
                (all[1].first_seen_ms, all[1].scanned_at_ms, all[1].host.as_str()),
                (100, 200, "db1")
            );
            assert_eq!(db.latest_disks(Some("a2")).unwrap(), vec![]);
            let mut keys = db.latest_disk_keys("a1").unwrap();
            keys.sort();
            assert_eq!(keys, vec!["k1", "k2"]);

            for at in [100, 200, 300] {
                db.put_history_row("a1", "k2", &row(at, "failing")).unwrap();
            }
            db.put_history_row("a1", "k2", &row(300, "warning")).unwrap();
            assert_eq!(db.last_history_row("a1", "k2").unwrap(), Some(row(300, "warning")));
            db.remove_latest_disk("a1", "k2").unwrap();
            assert_eq!(db.latest_disk("a1", "k2").unwrap(), None);
            assert!(db.latest_disk("a1", "k1").unwrap().is_some());
            let h = db.disk_history("a1", "k2", 2).unwrap();
            assert_eq!(
                h,
                vec![row(200, "failing"), row(300, "warning")],
                "newest two, oldest first"
            );
        });
    }

    #[test]
    fn a_period_shows_each_disk_as_last_read_in_it_and_not_the_retired_ones() {
        on_both(|db| {
            add_agent(db, "a1", "db1");
            db.put_latest_disk("a1", &reading("k1", "ok", 500, "{}")).unwrap();
            for (key, at, level) in [
                ("k1", 100, "ok"),
                ("k1", 300, "warning"),
                ("k1", 600, "failing"),
                ("k3", 200, "ok"),
            ] {
                db.put_history_row("a1", key, &row(at, level)).unwrap();
            }
            let p = db.disks_in_period("a1", 0, 500).unwrap();
            assert_eq!(p.len(), 2);
            assert_eq!((p[0].key.as_str(), p[0].row.level.as_str()), ("k1", "warning"));
            assert_eq!(p[0].device.as_deref(), Some("/dev/sda"));
            assert_eq!(
                (p[1].key.as_str(), p[1].device.as_deref(), p[1].first_seen_ms),
                ("k3", None, None)
            );
            assert_eq!(
                db.disks_in_period("a1", 250, 500).unwrap().len(),
                1,
                "k3 was last read before"
            );
            db.retire_part("db1", "k3", "S3", 400, "replaced").unwrap();
            assert_eq!(db.disks_in_period("a1", 0, 500).unwrap().len(), 1);
            assert_eq!(
                db.disks_in_period("a1", 0, 350).unwrap().len(),
                2,
                "not yet retired then"
            );
        });
    }
}
