//! Disk health on the collector: the latest reading and verdict of every disk,
//! and a compact history of each disk's key counters, enough to see an
//! attribute grow (reallocated sectors 0 → 8 → 24) and when.
//!
//! The verdict is recomputed here with the shared rules
//! ([`caretaker_shared::disk_health::verdict`]), so an older agent's opinion
//! never outlives a rule change. A history row is written when a key counter
//! or the verdict changed, and at least daily, so a year of a quiet disk is a
//! few hundred rows rather than seventeen thousand.

use std::collections::BTreeMap;

use caretaker_shared::disk_health::{Disk, KEY_ATA_ATTRIBUTES, verdict};
use caretaker_shared::wire::DiskScan;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::store::StoreError;

/// Schema, applied as one migration by [`crate::store`].
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

/// A history row is written at least this often for a disk that is read.
const HISTORY_HEARTBEAT_MS: i64 = 24 * 3_600_000;

/// Values that drift every reading and alone do not earn a history row.
const DRIFTING: &[&str] = &["power_on_hours", "temperature_c"];

/// The counters worth a history: what detection compares against a baseline.
pub fn key_values(d: &Disk) -> BTreeMap<&'static str, i64> {
    let mut v = BTreeMap::new();
    let mut put = |k: &'static str, x: Option<i64>| {
        if let Some(x) = x {
            v.insert(k, x);
        }
    };
    put("smart_passed", d.smart_passed.map(i64::from));
    put("power_on_hours", d.power_on_hours.map(|h| h as i64));
    put("temperature_c", d.temperature_c);
    if let Some(a) = &d.ata {
        for (id, name) in KEY_ATA_ATTRIBUTES {
            put(name, a.attribute(*id).and_then(|a| a.decoded).map(|x| x as i64));
        }
        put("ata_error_log_entries", a.error_log_count.map(|x| x as i64));
        put(
            "self_test_failures",
            Some(a.self_tests.iter().filter(|t| t.passed == Some(false)).count() as i64),
        );
    }
    if let Some(n) = &d.nvme {
        put("nvme_critical_warning", Some(i64::from(n.critical_warning)));
        put("nvme_available_spare", n.available_spare.map(i64::from));
        put("nvme_percentage_used", n.percentage_used.map(i64::from));
        put("nvme_media_errors", n.media_errors.map(|x| x as i64));
    }
    if let Some(s) = &d.scsi {
        put("scsi_grown_defects", s.grown_defects.map(|x| x as i64));
        put("scsi_uncorrected_errors", s.uncorrected_total().map(|x| x as i64));
    }
    v
}

fn steady(v: &BTreeMap<&str, i64>) -> BTreeMap<String, i64> {
    v.iter()
        .filter(|(k, _)| !DRIFTING.contains(k))
        .map(|(k, x)| (k.to_string(), *x))
        .collect()
}

/// Records one scan of one agent inside the caller's transaction.
pub fn record_scan(conn: &Connection, agent_id: &str, scan: &DiskScan) -> Result<(), StoreError> {
    let at = scan.scanned_at_ms;
    let mut keys = Vec::with_capacity(scan.disks.len());
    for d in &scan.disks {
        let mut d = d.clone();
        d.verdict = verdict(&d);
        let level = d.verdict.level.as_str();
        let doc = serde_json::to_string(&d).unwrap_or_default();
        conn.prepare_cached(
            "INSERT INTO disk_latest(agent_id, disk_key, device, model, serial, level, scanned_at_ms, first_seen_ms, doc)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7, ?8)
             ON CONFLICT(agent_id, disk_key) DO UPDATE SET device = excluded.device, model = excluded.model,
                serial = excluded.serial, level = excluded.level, scanned_at_ms = excluded.scanned_at_ms,
                doc = excluded.doc",
        )?
        .execute(params![agent_id, d.key, d.device, d.model, d.serial, level, at, doc])?;
        keys.push(d.key.clone());

        let vals = key_values(&d);
        let reasons: Vec<String> = d.verdict.reasons.iter().map(|r| r.to_string()).collect();
        let last: Option<(i64, String, String)> = conn
            .prepare_cached(
                "SELECT at_ms, level, vals FROM smart_history WHERE agent_id = ?1 AND disk_key = ?2
                 ORDER BY at_ms DESC LIMIT 1",
            )?
            .query_row(params![agent_id, d.key], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .optional()?;
        let write = match &last {
            None => true,
            Some((last_at, last_level, last_vals)) => {
                let before: BTreeMap<String, i64> = serde_json::from_str(last_vals).unwrap_or_default();
                let before: BTreeMap<String, i64> = before
                    .into_iter()
                    .filter(|(k, _)| !DRIFTING.contains(&k.as_str()))
                    .collect();
                at < *last_at || last_level != level || before != steady(&vals) || at - last_at >= HISTORY_HEARTBEAT_MS
            }
        };
        if write && last.as_ref().is_none_or(|(last_at, ..)| at > *last_at) {
            conn.prepare_cached(
                "INSERT OR REPLACE INTO smart_history(agent_id, disk_key, at_ms, level, reasons, vals)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                agent_id,
                d.key,
                at,
                level,
                serde_json::to_string(&reasons).unwrap_or_default(),
                serde_json::to_string(&vals).unwrap_or_default()
            ])?;
        }
    }
    // A disk the scan no longer lists is gone from the host (its history stays).
    if scan.error.is_none() {
        let mut stmt = conn.prepare_cached("SELECT disk_key FROM disk_latest WHERE agent_id = ?1")?;
        let known: Vec<String> = stmt
            .query_map(params![agent_id], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        for k in known.iter().filter(|k| !keys.contains(k)) {
            conn.prepare_cached("DELETE FROM disk_latest WHERE agent_id = ?1 AND disk_key = ?2")?
                .execute(params![agent_id, k])?;
        }
    }
    Ok(())
}

/// The latest reading of one disk, as the API shows it in lists.
#[derive(Debug, Clone, Serialize)]
pub struct DiskRow {
    pub agent_id: String,
    pub host: String,
    pub key: String,
    pub device: String,
    pub model: String,
    pub serial: String,
    pub verdict: String,
    pub reasons: Vec<String>,
    /// Notes on the link (cable, backplane) rather than the disk, e.g.
    /// `"udma_crc_errors=12"`; never part of the verdict.
    pub link: Vec<String>,
    pub state: String,
    pub scanned_at_ms: i64,
    pub first_seen_ms: i64,
    pub temperature_c: Option<i64>,
    pub power_on_hours: Option<u64>,
}

fn row_of(agent_id: String, host: String, first_seen_ms: i64, doc: &str) -> Result<(DiskRow, Disk), StoreError> {
    let d: Disk = serde_json::from_str(doc).map_err(|e| StoreError::Corrupt {
        agent_id: agent_id.clone(),
        reason: format!("stored disk: {e}"),
    })?;
    let state = serde_json::to_value(d.state)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default();
    let row = DiskRow {
        agent_id,
        host,
        key: d.key.clone(),
        device: d.device.clone(),
        model: d.model.clone(),
        serial: d.serial.clone(),
        verdict: d.verdict.level.as_str().to_string(),
        reasons: d.verdict.reasons.iter().map(|r| r.to_string()).collect(),
        link: d.verdict.link.iter().map(|r| r.to_string()).collect(),
        state,
        scanned_at_ms: 0,
        first_seen_ms,
        temperature_c: d.temperature_c,
        power_on_hours: d.power_on_hours,
    };
    Ok((row, d))
}

/// Every current disk, optionally of one agent, worst verdict first.
pub fn list(conn: &Connection, agent_id: Option<&str>) -> Result<Vec<DiskRow>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT d.agent_id, a.host, d.first_seen_ms, d.scanned_at_ms, d.doc FROM disk_latest d
         JOIN agents a ON a.agent_id = d.agent_id
         WHERE ?1 IS NULL OR d.agent_id = ?1
         ORDER BY CASE d.level WHEN 'failing' THEN 0 WHEN 'warning' THEN 1 WHEN 'unknown' THEN 2 ELSE 3 END,
                  a.host, d.device, d.disk_key",
    )?;
    let mut rows = stmt.query(params![agent_id])?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        let (mut row, _) = row_of(r.get(0)?, r.get(1)?, r.get(2)?, &r.get::<_, String>(4)?)?;
        row.scanned_at_ms = r.get(3)?;
        out.push(row);
    }
    Ok(out)
}

/// The disks of one agent as read in `[from_ms, to_ms)`, worst verdict
/// first: each disk's last history row before `to_ms`, if the disk was read
/// in the period (a disk read then has a row at most a heartbeat older than
/// the reading). Device, model and serial come from the disk's latest
/// reading; they are empty for a disk gone from the host since (the history
/// keeps no names), and `state` is empty (the history keeps no read state).
/// A disk taken out of service before `to_ms` (replaced, see
/// [`crate::cases::retired`]) is not listed: the period's changes name it.
pub fn read_in(conn: &Connection, agent_id: &str, from_ms: i64, to_ms: i64) -> Result<Vec<DiskRow>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT h.disk_key, h.at_ms, h.level, h.reasons, h.vals, a.host, d.device, d.model, d.serial, d.first_seen_ms
         FROM smart_history h JOIN agents a ON a.agent_id = h.agent_id
         LEFT JOIN disk_latest d ON d.agent_id = h.agent_id AND d.disk_key = h.disk_key
         WHERE h.agent_id = ?1 AND h.at_ms >= ?2 AND h.at_ms = (
             SELECT max(x.at_ms) FROM smart_history x
             WHERE x.agent_id = h.agent_id AND x.disk_key = h.disk_key AND x.at_ms < ?3)
           AND NOT EXISTS (SELECT 1 FROM retired_parts r
             WHERE r.asset = a.host AND r.component = h.disk_key AND r.retired_at_ms < ?3)
         ORDER BY CASE h.level WHEN 'failing' THEN 0 WHEN 'warning' THEN 1 WHEN 'unknown' THEN 2 ELSE 3 END,
                  coalesce(d.device, ''), h.disk_key",
    )?;
    let rows = stmt.query_map(
        params![agent_id, from_ms.saturating_sub(HISTORY_HEARTBEAT_MS), to_ms],
        |r| {
            Ok((
                (r.get::<_, String>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?),
                (r.get::<_, String>(3)?, r.get::<_, String>(4)?, r.get::<_, String>(5)?),
                (
                    r.get::<_, Option<String>>(6)?,
                    r.get::<_, Option<String>>(7)?,
                    r.get::<_, Option<String>>(8)?,
                    r.get::<_, Option<i64>>(9)?,
                ),
            ))
        },
    )?;
    let mut out = Vec::new();
    for row in rows {
        let ((key, at_ms, verdict), (reasons, vals, host), (device, model, serial, first_seen_ms)) = row?;
        let vals: BTreeMap<String, i64> = serde_json::from_str(&vals).unwrap_or_default();
        out.push(DiskRow {
            agent_id: agent_id.to_string(),
            host,
            key,
            device: device.unwrap_or_default(),
            model: model.unwrap_or_default(),
            serial: serial.unwrap_or_default(),
            verdict,
            reasons: serde_json::from_str(&reasons).unwrap_or_default(),
            // The history keeps reasons, not link notes.
            link: Vec::new(),
            state: String::new(),
            scanned_at_ms: at_ms,
            first_seen_ms: first_seen_ms.unwrap_or(at_ms),
            temperature_c: vals.get("temperature_c").copied(),
            power_on_hours: vals.get("power_on_hours").and_then(|h| u64::try_from(*h).ok()),
        });
    }
    Ok(out)
}

#[derive(Debug, Clone, Serialize)]
pub struct HistoryPoint {
    pub at_ms: i64,
    pub verdict: String,
    pub reasons: Vec<String>,
    pub values: BTreeMap<String, i64>,
}

/// A disk's latest reading (while it is present) and its history.
pub type DiskDetail = (Option<(DiskRow, Disk)>, Vec<HistoryPoint>);

/// One disk: its latest full reading while the host still has it, and its
/// history, oldest first. `None` when the disk was never seen.
pub fn one(conn: &Connection, agent_id: &str, key: &str, limit: u32) -> Result<Option<DiskDetail>, StoreError> {
    let latest = conn
        .query_row(
            "SELECT d.agent_id, a.host, d.first_seen_ms, d.scanned_at_ms, d.doc FROM disk_latest d
             JOIN agents a ON a.agent_id = d.agent_id WHERE d.agent_id = ?1 AND d.disk_key = ?2",
            params![agent_id, key],
            |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, String>(4)?,
                ))
            },
        )
        .optional()?;
    let history = history(conn, agent_id, key, limit)?;
    let current = match latest {
        Some((a, host, first, scanned, doc)) => {
            let (mut row, disk) = row_of(a, host, first, &doc)?;
            row.scanned_at_ms = scanned;
            Some((row, disk))
        }
        None if history.is_empty() => return Ok(None),
        None => None,
    };
    Ok(Some((current, history)))
}

/// The history of one disk (also of disks no longer present), oldest first.
pub fn history(conn: &Connection, agent_id: &str, key: &str, limit: u32) -> Result<Vec<HistoryPoint>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT at_ms, level, reasons, vals FROM (
             SELECT at_ms, level, reasons, vals FROM smart_history WHERE agent_id = ?1 AND disk_key = ?2
             ORDER BY at_ms DESC LIMIT ?3) ORDER BY at_ms",
    )?;
    let rows = stmt.query_map(params![agent_id, key, limit], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, String>(3)?,
        ))
    })?;
    let mut out = Vec::new();
    for r in rows {
        let (at_ms, verdict, reasons, vals) = r?;
        out.push(HistoryPoint {
            at_ms,
            verdict,
            reasons: serde_json::from_str(&reasons).unwrap_or_default(),
            values: serde_json::from_str(&vals).unwrap_or_default(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use caretaker_shared::disk_health::{AtaAttribute, AtaHealth, ReadState};

    fn disk(realloc: u64, temp: i64) -> Disk {
        Disk {
            key: "wwn-0x5000".into(),
            device: "/dev/sda".into(),
            state: ReadState::Ok,
            smart_passed: Some(true),
            temperature_c: Some(temp),
            ata: Some(AtaHealth {
                attributes: vec![AtaAttribute {
                    id: 5,
                    name: "Reallocated_Sector_Ct".into(),
                    value: 100,
                    worst: 100,
                    threshold: 10,
                    raw: realloc,
                    raw_string: realloc.to_string(),
                    decoded: Some(realloc),
                    prefailure: true,
                    when_failed: String::new(),
                }],
                ..AtaHealth::default()
            }),
            ..Disk::default()
        }
    }

    fn conn() -> Connection {
        let dir = tempfile::tempdir().unwrap();
        let c = crate::store::open(&dir.path().join("s.db"), crate::config::Synchronous::Normal).unwrap();
        std::mem::forget(dir);
        c.execute(
            "INSERT INTO agents(agent_id, credential_hash, host, enrolled_at_ms) VALUES ('a1', 'h', 'db1', 0)",
            [],
        )
        .unwrap();
        c
    }

    fn scan(at: i64, disks: Vec<Disk>) -> DiskScan {
        DiskScan {
            scanned_at_ms: at,
            disks,
            error: None,
        }
    }

    #[test]
    fn history_grows_only_when_a_counter_or_the_verdict_changes() {
        let c = conn();
        record_scan(&c, "a1", &scan(1_000, vec![disk(0, 30)])).unwrap();
        record_scan(&c, "a1", &scan(2_000, vec![disk(0, 35)])).unwrap();
        record_scan(&c, "a1", &scan(3_000, vec![disk(8, 35)])).unwrap();
        record_scan(&c, "a1", &scan(4_000, vec![disk(24, 35)])).unwrap();
        let h = history(&c, "a1", "wwn-0x5000", 100).unwrap();
        let seen: Vec<(i64, Option<i64>, String)> = h
            .iter()
            .map(|p| (p.at_ms, p.values.get("reallocated_sectors").copied(), p.verdict.clone()))
            .collect();
        assert_eq!(
            seen,
            vec![
                (1_000, Some(0), "healthy".to_string()),
                (3_000, Some(8), "warning".to_string()),
                (4_000, Some(24), "warning".to_string()),
            ]
        );
        let l = list(&c, Some("a1")).unwrap();
        assert_eq!(l.len(), 1);
        assert_eq!(l[0].verdict, "warning");
        assert_eq!(l[0].reasons, vec!["reallocated_sectors=24".to_string()]);
        assert_eq!(l[0].first_seen_ms, 1_000);
        assert_eq!(l[0].scanned_at_ms, 4_000);
    }

    #[test]
    fn crc_errors_are_listed_as_a_link_note_not_a_reason() {
        let c = conn();
        let mut d = disk(0, 30);
        let mut crc = d.ata.as_ref().unwrap().attributes[0].clone();
        (crc.id, crc.raw, crc.raw_string, crc.decoded) = (199, 12, "12".into(), Some(12));
        d.ata.as_mut().unwrap().attributes.push(crc);
        record_scan(&c, "a1", &scan(1_000, vec![d])).unwrap();
        let l = list(&c, None).unwrap();
        assert_eq!(l[0].verdict, "healthy");
        assert!(l[0].reasons.is_empty(), "{:?}", l[0].reasons);
        assert_eq!(l[0].link, vec!["udma_crc_errors=12".to_string()]);
    }

    #[test]
    fn a_quiet_disk_still_gets_a_daily_row() {
        let c = conn();
        record_scan(&c, "a1", &scan(1_000, vec![disk(0, 30)])).unwrap();
        record_scan(&c, "a1", &scan(1_000 + HISTORY_HEARTBEAT_MS, vec![disk(0, 30)])).unwrap();
        assert_eq!(history(&c, "a1", "wwn-0x5000", 100).unwrap().len(), 2);
    }

    #[test]
    fn disks_read_in_a_past_period_are_as_read_then() {
        let c = conn();
        let day = HISTORY_HEARTBEAT_MS;
        record_scan(&c, "a1", &scan(day, vec![disk(0, 30)])).unwrap();
        record_scan(&c, "a1", &scan(5 * day, vec![disk(8, 30)])).unwrap();
        let verdicts = |from, to| -> Vec<(String, String, i64)> {
            read_in(&c, "a1", from, to)
                .unwrap()
                .into_iter()
                .map(|d| (d.device, d.verdict, d.scanned_at_ms))
                .collect()
        };
        let sda = |v: &str, at| ("/dev/sda".to_string(), v.to_string(), at);
        assert_eq!(verdicts(0, 2 * day), [sda("healthy", day)], "as read then, not now");
        // Read a day before the period: still there in it (the heartbeat).
        assert_eq!(verdicts(2 * day, 3 * day), [sda("healthy", day)]);
        assert!(verdicts(3 * day, 4 * day).is_empty(), "not read for days");
        assert!(verdicts(0, day).is_empty(), "not read yet");
        assert_eq!(verdicts(0, 6 * day), [sda("warning", 5 * day)]);
        // A disk gone from the host keeps its history, without names.
        let mut other = disk(0, 30);
        other.key = "wwn-0x6000".into();
        record_scan(&c, "a1", &scan(6 * day, vec![other])).unwrap();
        let gone = read_in(&c, "a1", 4 * day, 6 * day).unwrap();
        assert_eq!((gone[0].key.as_str(), gone[0].device.as_str()), ("wwn-0x5000", ""));
    }

    #[test]
    fn the_collector_recomputes_the_verdict() {
        let c = conn();
        let mut d = disk(8, 30);
        d.verdict = Default::default(); // an agent claiming "healthy"
        record_scan(&c, "a1", &scan(1_000, vec![d])).unwrap();
        assert_eq!(list(&c, None).unwrap()[0].verdict, "warning");
    }

    #[test]
    fn a_disk_gone_from_the_scan_leaves_the_list_but_keeps_its_history() {
        let c = conn();
        record_scan(&c, "a1", &scan(1_000, vec![disk(0, 30)])).unwrap();
        let mut other = disk(0, 30);
        other.key = "wwn-0x6000".into();
        record_scan(&c, "a1", &scan(2_000, vec![other])).unwrap();
        let l = list(&c, Some("a1")).unwrap();
        assert_eq!(l.iter().map(|r| r.key.as_str()).collect::<Vec<_>>(), vec!["wwn-0x6000"]);
        assert_eq!(history(&c, "a1", "wwn-0x5000", 10).unwrap().len(), 1);
        // A failed scan says nothing about which disks are there.
        record_scan(
            &c,
            "a1",
            &DiskScan {
                scanned_at_ms: 3_000,
                disks: vec![],
                error: Some("smartctl not found".into()),
            },
        )
        .unwrap();
        assert_eq!(list(&c, Some("a1")).unwrap().len(), 1);
    }
}
