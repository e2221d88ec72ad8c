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
use serde::Serialize;

use crate::store::StoreError;
use crate::store::disks::{DiskReading, DiskStore, HistoryRow};
use crate::store::sql::Sql;

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
pub fn record_scan(db: &dyn Sql, agent_id: &str, scan: &DiskScan) -> Result<(), StoreError> {
    let at = scan.scanned_at_ms;
    let mut keys = Vec::with_capacity(scan.disks.len());
    for d in &scan.disks {
        let mut d = d.clone();
        d.verdict = verdict(&d);
        let level = d.verdict.level.as_str();
        let doc = serde_json::to_string(&d).unwrap_or_default();
        db.put_latest_disk(
            agent_id,
            &DiskReading {
                key: &d.key,
                device: &d.device,
                model: &d.model,
                serial: &d.serial,
                level,
                scanned_at_ms: at,
                doc: &doc,
            },
        )?;
        keys.push(d.key.clone());

        let vals = key_values(&d);
        let reasons: Vec<String> = d.verdict.reasons.iter().map(|r| r.to_string()).collect();
        let last = db.last_history_row(agent_id, &d.key)?;
        let write = match &last {
            None => true,
            Some(last) => {
                let before: BTreeMap<String, i64> = serde_json::from_str(&last.vals).unwrap_or_default();
                let before: BTreeMap<String, i64> = before
                    .into_iter()
                    .filter(|(k, _)| !DRIFTING.contains(&k.as_str()))
                    .collect();
                at < last.at_ms
                    || last.level != level
                    || before != steady(&vals)
                    || at - last.at_ms >= HISTORY_HEARTBEAT_MS
            }
        };
        if write && last.as_ref().is_none_or(|last| at > last.at_ms) {
            db.put_history_row(
                agent_id,
                &d.key,
                &HistoryRow {
                    at_ms: at,
                    level: level.to_string(),
                    reasons: serde_json::to_string(&reasons).unwrap_or_default(),
                    vals: serde_json::to_string(&vals).unwrap_or_default(),
                },
            )?;
        }
    }
    // A disk the scan no longer lists is gone from the host (its history stays).
    if scan.error.is_none() {
        for k in db.latest_disk_keys(agent_id)?.iter().filter(|k| !keys.contains(k)) {
            db.remove_latest_disk(agent_id, k)?;
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
pub fn list(db: &dyn Sql, agent_id: Option<&str>) -> Result<Vec<DiskRow>, StoreError> {
    db.latest_disks(agent_id)?
        .into_iter()
        .map(|d| {
            let (mut row, _) = row_of(d.agent_id, d.host, d.first_seen_ms, &d.doc)?;
            row.scanned_at_ms = d.scanned_at_ms;
            Ok(row)
        })
        .collect()
}

/// The disks of one agent as read in `[from_ms, to_ms)`, worst verdict
/// first: each disk's last history row before `to_ms`, if the disk was read
/// in the period (a disk read then has a row at most a heartbeat older than
/// the reading). Device, model and serial come from the disk's latest
/// reading; they are empty for a disk gone from the host since (the history
/// keeps no names), and `state` is empty (the history keeps no read state).
/// A disk taken out of service before `to_ms` (replaced, see
/// [`crate::cases::retired`]) is not listed: the period's changes name it.
pub fn read_in(db: &dyn Sql, agent_id: &str, from_ms: i64, to_ms: i64) -> Result<Vec<DiskRow>, StoreError> {
    let disks = db.disks_in_period(agent_id, from_ms.saturating_sub(HISTORY_HEARTBEAT_MS), to_ms)?;
    Ok(disks
        .into_iter()
        .map(|p| {
            let vals: BTreeMap<String, i64> = serde_json::from_str(&p.row.vals).unwrap_or_default();
            DiskRow {
                agent_id: agent_id.to_string(),
                host: p.host,
                key: p.key,
                device: p.device.unwrap_or_default(),
                model: p.model.unwrap_or_default(),
                serial: p.serial.unwrap_or_default(),
                verdict: p.row.level,
                reasons: serde_json::from_str(&p.row.reasons).unwrap_or_default(),
                // The history keeps reasons, not link notes.
                link: Vec::new(),
                state: String::new(),
                scanned_at_ms: p.row.at_ms,
                first_seen_ms: p.first_seen_ms.unwrap_or(p.row.at_ms),
                temperature_c: vals.get("temperature_c").copied(),
                power_on_hours: vals.get("power_on_hours").and_then(|h| u64::try_from(*h).ok()),
            }
        })
        .collect())
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
pub fn one(db: &dyn Sql, agent_id: &str, key: &str, limit: u32) -> Result<Option<DiskDetail>, StoreError> {
    let latest = db.latest_disk(agent_id, key)?;
    let history = history(db, agent_id, key, limit)?;
    let current = match latest {
        Some(d) => {
            let (mut row, disk) = row_of(d.agent_id, d.host, d.first_seen_ms, &d.doc)?;
            row.scanned_at_ms = d.scanned_at_ms;
            Some((row, disk))
        }
        None if history.is_empty() => return Ok(None),
        None => None,
    };
    Ok(Some((current, history)))
}

/// The history of one disk (also of disks no longer present), oldest first.
pub fn history(db: &dyn Sql, agent_id: &str, key: &str, limit: u32) -> Result<Vec<HistoryPoint>, StoreError> {
    Ok(db
        .disk_history(agent_id, key, limit)?
        .into_iter()
        .map(|r| HistoryPoint {
            at_ms: r.at_ms,
            verdict: r.level,
            reasons: serde_json::from_str(&r.reasons).unwrap_or_default(),
            values: serde_json::from_str(&r.vals).unwrap_or_default(),
        })
        .collect())
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

    fn conn() -> crate::store::testing::TestDb {
        let db = crate::store::testing::TestDb::new();
        crate::store::testing::add_agent(&*db, "a1", "db1");
        db
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
