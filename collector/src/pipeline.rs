//! The pipeline: every stage an agent's report, and the signals the rule
//! engine draws from it, go through, in order. This file is the one place
//! that lists them; each stage is a function below, called in this order by
//! [`report`], [`signals`] and [`tick`]. `serve` runs these functions through
//! the store writer (jobs committed in batches, one savepoint each:
//! [`crate::writer::Writer`], which only batches, commits and answers) and the
//! detection task ([`crate::detect::live`]); `replay` runs the very same
//! functions on an in-memory store in virtual time
//! ([`crate::detect::replay`]).
//!
//! Before the pipeline, ingest ([`crate::ingest`], the same for `serve` and
//! `replay`): authenticated, decompressed, decoded and validated, the clock
//! judged and the report dated by it.
//!
//! A report, in the writer's transaction — [`report`]:
//! 1. **admit**: the store lets the report in or refuses it
//!    ([`crate::identity::admit`]: the agent enrolled and not revoked, the
//!    credential its own or its rotated one, the identity its own);
//! 2. **store the report**: the agent's row and sequence check, the newest
//!    report, the report log, the raw body, events ([`store_rows`], through
//!    [`crate::store::Reports`]);
//!    the host's `agent_clock_skew` finding opened or cleared (ingest judged
//!    the clock and dated the report: [`crate::clock`]);
//! 3. **assets**: a changed inventory is stored with what changed
//!    ([`crate::assets::diff`]); disks, DIMMs, power supplies and RAID
//!    controllers whose serial left it are taken out of service
//!    ([`crate::predict::on_parts_replaced`]); the host and its identifiers
//!    are known to the holds ([`crate::cases::hold::mark_known`]);
//! 4. **disks**: the scan's readings and history ([`crate::disks::record_scan`]),
//!    then every disk assessed ([`crate::predict::assess_host`]):
//!    recommendations and the cable/backplane finding.
//!
//! Once committed, outside any transaction:
//! 5. **detect**: the rule engine evaluates the report
//!    ([`crate::detect::Engine::observe`]) into signals.
//!
//! Signals, in the writer's transaction — [`signals`]:
//! 6. **items**: each signal opens, updates, clears, reopens or is held
//!    ([`crate::cases::store::apply_signal`]: maintenance windows, storms,
//!    unmapped assets, retired parts, then the lifecycle);
//! 7. **predict**: a new item about a replaceable part raises its
//!    recommendation ([`crate::predict::on_signal`]);
//! 8. **queue**: new and reopened cases get their contract, deadlines and
//!    assignee ([`crate::queue::settle`]); every case change is written to the
//!    outbox in the same transaction as its log row
//!    ([`crate::store::items::Items::append_log`]).
//!
//! The tick (every `detect.tick_secs`; in a replay, every report interval of
//! virtual time):
//! 9. **detect**: absence rules ([`crate::detect::Engine::tick`]), their
//!    signals through 6–8;
//! 10. **lifecycle**, in the writer's transaction — [`tick`]: when the
//!    contracts changed, cases opened while none covered them get one
//!    ([`crate::queue::rematch`]); quiet periods, flapping marks, storms, held
//!    signals released ([`crate::cases::store::tick_all`]), then 8 for what
//!    that opened, then SLA breaches, escalations and satisfaction timeouts
//!    ([`crate::queue::sweep`]), then recommendations for cases the tick
//!    opened ([`crate::predict::on_opened_since`]).
//!
//! Retention (every minute under `serve`) — [`prune`]: the report log, raw
//! reports and delivered outbox rows past their retention are deleted.

use std::collections::BTreeSet;

use caretaker_shared::wire::{Inventory, Sample};

use crate::cases::{Policy, Signal};
use crate::contracts::Contracts;
use crate::fleet::Host;
use crate::identity::Admission;
use crate::store::reports::{AgentUpdate, EventRow, LogRow, Received, ReportRetention};
use crate::store::sql::Sql;
use crate::store::{Assets, Reports, StoreError};
use crate::writer::{AssetState, DetectWrite, Incoming, Prune};

/// What stages 1–4 did with one report, for the writer to make known once
/// committed.
#[derive(Debug)]
pub struct Reported {
    /// Who the store let in, and any credential change that came with it.
    pub admission: Admission,
    /// The host as this report left it; `None`: already applied (a
    /// duplicate sequence number), nothing changed.
    pub host: Option<Host>,
}

/// Stages 1–4 for one report, in the caller's transaction. `previous` is the
/// host's asset state before this report; `samples` its catalogue samples
/// (moved out of `inc` by the writer, which hands them to the fleet).
pub fn report(
    conn: &dyn Sql,
    inc: &Incoming,
    samples: Vec<Sample>,
    previous: AssetState,
    keep_raw_reports: bool,
) -> Result<Reported, StoreError> {
    let admission = admit(conn, inc)?;
    // The inventory before this report, when this report brings one.
    let before = inc.report.inventory.as_ref().and(previous.inventory.clone());
    let Some(host) = store_report(conn, inc, samples, previous, keep_raw_reports)? else {
        return Ok(Reported { admission, host: None });
    };
    assets(conn, inc, before.as_ref())?;
    disks(conn, inc)?;
    Ok(Reported {
        admission,
        host: Some(host),
    })
}

/// 1: who may send this report is decided here, in the transaction that
/// applies it: the store is the authority (the CLI or another replica may
/// have revoked the agent since ingest looked).
fn admit(conn: &dyn Sql, inc: &Incoming) -> Result<Admission, StoreError> {
    crate::identity::admit(
        conn,
        &inc.agent_id,
        inc.credential_hash.as_deref(),
        &inc.report.host,
        &inc.report.labels,
        inc.received_at_ms,
    )
}

/// 2: the report stored (and the stored half of 3: the inventory version
/// with what changed), then the agent's clock finding, open while its clock
/// is off. `None`: a duplicate.
fn store_report(
    conn: &dyn Sql,
    inc: &Incoming,
    samples: Vec<Sample>,
    previous: AssetState,
    keep_raw_reports: bool,
) -> Result<Option<Host>, StoreError> {
    let Some(host) = store_rows(conn, inc, samples, previous, keep_raw_reports)? else {
        return Ok(None);
    };
    if let Some(clock) = &inc.clock {
        let r = &inc.report;
        let signal = crate::clock::signal(clock, &r.host, customer(inc), inc.received_at_ms);
        crate::cases::store::apply_signal(conn, &signal, &crate::cases::Policy::default())?;
    }
    Ok(Some(host))
}

/// A host's asset state as the store holds it after report `last_seq`.
fn stored_assets(db: &(impl Sql + ?Sized), agent_id: &str, last_seq: u64) -> Result<AssetState, StoreError> {
    use crate::store::agents::Agents;
    let (doc, at_ms, changes) = db.asset_row(agent_id)?;
    let inventory = match doc {
        Some(d) => Some(serde_json::from_str(&d).map_err(|e| StoreError::Corrupt {
            agent_id: agent_id.to_string(),
            reason: format!("its stored inventory: {e}"),
        })?),
        None => None,
    };
    Ok(AssetState {
        inventory,
        at_ms,
        changes: u64::try_from(changes).unwrap_or(0),
        last_seq,
    })
}

/// Stores one report and its inventory (with what changed): stage 2 and
/// the stored half of stage 3. `None`: already applied (a duplicate).
fn store_rows(
    db: &(impl Sql + ?Sized),
    inc: &Incoming,
    samples: Vec<Sample>,
    previous: AssetState,
    keep_raw_reports: bool,
) -> Result<Option<Host>, StoreError> {
    let r = &inc.report;
    let Some(counters) = db.report_counters(&inc.agent_id)? else {
        return Err(StoreError::UnknownAgent(inc.agent_id.clone()));
    };
    if r.seq <= counters.last_seq {
        return Ok(None);
    }
    // This replica's copy of the host is behind the store (another replica
    // applied reports since): the stored inventory is what changes are
    // measured against.
    let previous = if previous.last_seq == counters.last_seq {
        previous
    } else {
        stored_assets(db, &inc.agent_id, counters.last_seq)?
    };
    let gaps = counters.seq_gaps + (r.seq - counters.last_seq - 1);
    let applied = counters.reports_applied + 1;
    let labels = serde_json::to_string(&r.labels).unwrap_or_else(|_| "{}".into());
    db.update_agent_for_report(
        &inc.agent_id,
        &AgentUpdate {
            host: &r.host,
            labels: &labels,
            interval_secs: r.interval_secs,
            last_seq: r.seq,
            reports_applied: applied,
            seq_gaps: gaps,
            last_seen_ms: inc.received_at_ms,
            last_collected_at_ms: r.collected_at_ms,
        },
    )?;
    let received = Received {
        agent_id: &inc.agent_id,
        seq: r.seq,
        received_at_ms: inc.received_at_ms,
        encoding: inc.encoding,
        body: &inc.body,
    };
    db.put_latest_report(&received)?;
    db.log_report(&LogRow {
        agent_id: &inc.agent_id,
        seq: r.seq,
        // The log keeps what the agent claimed, beside when it arrived; the
        // archive below is dated by the (normalized) report.
        collected_at_ms: inc.clock.map_or(r.collected_at_ms, |c| c.claimed_collected_at_ms),
        received_at_ms: inc.received_at_ms,
        // The report's samples were moved out at ingest (`inc.samples` keeps
        // the known ones): the count is of the report as sent.
        samples: inc.sample_count as u64,
    })?;
    if keep_raw_reports {
        // The body as received: gzip stays gzip, so keeping it costs what the
        // agent sent and no time re-encoding.
        db.put_raw_report(&received)?;
    }
    for e in &r.events {
        let severity = serde_json::to_value(e.severity)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        let labels = serde_json::to_string(&e.labels).unwrap_or_else(|_| "{}".into());
        db.add_event(
            &inc.agent_id,
            r.seq,
            &EventRow {
                at_ms: e.at_ms,
                kind: &e.kind,
                severity: &severity,
                message: &e.message,
                labels: &labels,
            },
        )?;
    }
    // The fleet holds the newest inventory; only a changed one is stored again,
    // with what changed since the version before it.
    let mut assets = previous;
    if let Some(sent) = &r.inventory {
        // The archive holds the collector's own hash of the configuration,
        // not the agent's word for it (empty stays empty: an older agent).
        let mut own = sent.clone();
        if !own.content_hash.is_empty() {
            own.content_hash = own.configuration_hash();
        }
        let inv = &own;
        if !assets
            .inventory
            .as_ref()
            .is_some_and(|old| crate::assets::same_configuration(old, inv))
        {
            let doc = serde_json::to_string(inv).unwrap_or_default();
            db.add_inventory_version(&inc.agent_id, r.seq, r.collected_at_ms, &doc)?;
            if let Some(old) = &assets.inventory {
                let changes = crate::assets::diff(old, inv);
                db.add_asset_changes(&inc.agent_id, r.collected_at_ms, r.seq, &changes)?;
                assets.changes += changes.len() as u64;
            }
            assets.at_ms = Some(r.collected_at_ms);
        }
        assets.inventory = Some(own);
    }
    Ok(Some(Host {
        agent_id: inc.agent_id.clone(),
        host: r.host.clone(),
        labels: r.labels.clone(),
        enrolled_at_ms: counters.enrolled_at_ms,
        interval_secs: r.interval_secs,
        last_seq: r.seq,
        reports_applied: applied,
        seq_gaps: gaps,
        last_seen_ms: Some(inc.received_at_ms),
        last_collected_at_ms: Some(r.collected_at_ms),
        samples,
        inventory: assets.inventory,
        inventory_at_ms: assets.at_ms,
        asset_changes: assets.changes,
    }))
}

/// 3: parts whose serial left the inventory (`before`: the previous one)
/// are out of service; the host is known to the holds.
fn assets(conn: &dyn Sql, inc: &Incoming, before: Option<&Inventory>) -> Result<(), StoreError> {
    let r = &inc.report;
    let Some(inv) = &r.inventory else {
        return Ok(());
    };
    if let Some(old) = before {
        let gone = serials_gone(old, inv);
        if !gone.is_empty() {
            crate::predict::on_parts_replaced(conn, &r.host, &gone, r.collected_at_ms, "left the inventory")?;
        }
    }
    // Signals about this host may open items from now on; held ones
    // naming it by host name, MAC or machine id are released next tick.
    let mut ids: Vec<String> = inv
        .nics
        .iter()
        .filter(|n| n.mac.chars().any(|c| c.is_ascii_hexdigit() && c != '0'))
        .map(|n| n.mac.clone())
        .collect();
    ids.push(inv.machine_id.clone());
    crate::cases::hold::mark_known(conn, &r.host, Some(&inc.agent_id), &ids, r.collected_at_ms)?;
    Ok(())
}

/// 4: the disk scan's readings, then every disk assessed.
fn disks(conn: &dyn Sql, inc: &Incoming) -> Result<(), StoreError> {
    if let Some(scan) = &inc.report.disks {
        crate::disks::record_scan(conn, &inc.agent_id, scan)?;
        crate::predict::assess_host(conn, &inc.agent_id, &inc.report.host, customer(inc), scan.scanned_at_ms)?;
    }
    Ok(())
}

/// The customer a report names (`""`: none).
fn customer(inc: &Incoming) -> &str {
    inc.report.labels.get("customer").map(String::as_str).unwrap_or("")
}

/// Serials of disks, DIMMs, power supplies and RAID controllers in `old`
/// that `new` no longer has.
fn serials_gone<'a>(old: &'a Inventory, new: &Inventory) -> Vec<&'a str> {
    fn all(inv: &Inventory) -> impl Iterator<Item = &str> {
        inv.disks
            .iter()
            .map(|d| d.serial.trim())
            .chain(inv.memory_modules.iter().map(|m| m.serial.trim()))
            .chain(inv.power_supplies.iter().map(|p| p.serial.trim()))
            .chain(inv.raid_controllers.iter().map(|c| c.serial.trim()))
            .filter(|s| !s.is_empty())
    }
    let now: BTreeSet<&str> = all(new).collect();
    let mut gone: Vec<&str> = all(old).filter(|s| !now.contains(s)).collect();
    gone.dedup();
    gone
}

/// Stages 6–8 for a batch of signals, in the caller's transaction.
pub fn signals(
    conn: &dyn Sql,
    signals: &[Signal],
    policy: &Policy,
    contracts: &Contracts,
) -> Result<DetectWrite, StoreError> {
    let mark = crate::cases::store::log_high_water(conn)?;
    // What the batch reads once per host: the keys that can change, the
    // parts taken out of service and the known asset a name stands for.
    let mut live = crate::cases::store::LiveKeys::default();
    let mut lookups = crate::cases::store::Lookups::default();
    for s in signals {
        // 6 (a clear of a key with nothing active or held changes nothing)
        if live.passes_over(conn, s)? {
            continue;
        }
        let outcome = crate::cases::store::apply_signal_in(conn, s, policy, &mut lookups)?;
        live.applied(s);
        // 7
        crate::predict::on_signal(conn, s, outcome)?;
    }
    // 8
    let now = signals.iter().map(|s| s.at_ms).max().unwrap_or(0);
    crate::queue::settle(conn, contracts, mark, now)?;
    crate::writer::detect_write(conn, mark, false)
}

/// Stage 10 at `now_ms`, in the caller's transaction (the engine's absence
/// signals, stage 9, go through [`signals`] first). `rematch`: the contracts
/// changed since the last tick.
pub fn tick(
    conn: &dyn Sql,
    policy: &Policy,
    contracts: &Contracts,
    rematch: bool,
    satisfaction_wait_ms: i64,
    now_ms: i64,
) -> Result<DetectWrite, StoreError> {
    if rematch {
        // Cases opened while no contract covered them get one the file now
        // has (say, after a broken edit).
        let n = crate::queue::rematch(conn, contracts, now_ms)?;
        if n > 0 {
            tracing::info!(cases = n, "cases came into scope of the changed contracts");
        }
    }
    let mark = crate::cases::store::log_high_water(conn)?;
    crate::cases::store::tick_all(conn, policy, now_ms)?;
    crate::queue::settle(conn, contracts, mark, now_ms)?;
    crate::queue::sweep(conn, contracts, satisfaction_wait_ms, now_ms)?;
    crate::predict::on_opened_since(conn, mark)?;
    crate::writer::detect_write(conn, mark, true)
}

/// Retention: rows received before `p`'s times, in the caller's transaction.
pub fn prune(conn: &dyn Sql, p: &Prune) -> Result<(), StoreError> {
    let (log, raw) = conn.prune_reports(&ReportRetention {
        report_log_before_ms: p.report_log_before_ms,
        raw_reports_before_ms: p.raw_reports_before_ms,
    })?;
    let outbox = crate::queue::outbox::prune(conn, p.outbox_before_ms)?;
    tracing::debug!(report_log = log, raw_reports = raw, outbox, "pruned");
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use caretaker_shared::wire::{DiskInfo, PsuInfo, RaidControllerInfo};

    fn incoming(seq: u64, at_ms: i64, kernel: Option<&str>) -> Incoming {
        let mut report = serde_json::json!({
            "version": 1, "agent_id": "a1", "seq": seq, "collected_at_ms": at_ms, "interval_secs": 60,
            "host": "db1", "labels": { "customer": "acme" },
            "events": [{ "at_ms": at_ms, "kind": "oom_kill", "severity": "warning", "message": "m" }],
        });
        if let Some(k) = kernel {
            let inv = Inventory {
                kernel: k.into(),
                content_hash: "agent's".into(),
                ..Inventory::default()
            };
            report["inventory"] = serde_json::to_value(inv).unwrap();
        }
        let body = serde_json::to_vec(&report).unwrap();
        Incoming {
            agent_id: "a1".into(),
            credential_hash: None,
            report: serde_json::from_value(report).unwrap(),
            samples: vec![],
            sample_count: 3,
            body,
            encoding: crate::ingest::Encoding::Identity,
            received_at_ms: at_ms + 5,
            clock: None,
        }
    }

    /// Stage 2 and the stored half of 3 on both backends: the agent's
    /// counters, the log, the raw body, a new inventory version with what
    /// changed, and a duplicate left alone.
    #[test]
    fn a_report_is_stored_with_its_inventory_and_what_changed() {
        crate::store::testing::on_both(|db| {
            crate::store::testing::add_agent(db, "a1", "db1");
            let first = store_rows(
                db,
                &incoming(1, 1_000, Some("6.1")),
                vec![],
                AssetState::default(),
                true,
            )
            .unwrap()
            .unwrap();
            assert_eq!(
                (first.last_seq, first.reports_applied, first.inventory_at_ms),
                (1, 1, Some(1_000))
            );
            let own = first.inventory.clone().unwrap();
            assert_ne!(own.content_hash, "agent's", "the collector's own hash is kept");
            let previous = AssetState::of(&first);
            // A gap of one report, then a changed kernel.
            let third = store_rows(db, &incoming(3, 3_000, Some("6.2")), vec![], previous, false)
                .unwrap()
                .unwrap();
            assert_eq!((third.seq_gaps, third.reports_applied, third.asset_changes), (1, 2, 1));
            assert_eq!(third.labels.get("customer").map(String::as_str), Some("acme"));
            let changes = db.asset_changes("a1", 10).unwrap();
            assert_eq!(
                (changes.len(), changes[0].seq, changes[0].kind.as_str()),
                (1, 3, "kernel_changed")
            );
            assert_eq!(db.inventory_versions("a1").unwrap(), vec![(3, 3_000), (1, 1_000)]);
            // The same inventory again stores no version.
            let fourth = store_rows(
                db,
                &incoming(4, 4_000, Some("6.2")),
                vec![],
                AssetState::of(&third),
                true,
            )
            .unwrap()
            .unwrap();
            assert_eq!(fourth.inventory_at_ms, Some(3_000));
            assert_eq!(db.inventory_versions("a1").unwrap().len(), 2);
            assert!(
                store_rows(db, &incoming(4, 5_000, None), vec![], AssetState::of(&fourth), true)
                    .unwrap()
                    .is_none(),
                "a duplicate"
            );
            let log: Vec<(u64, u64)> = db
                .report_log("a1", 10)
                .unwrap()
                .iter()
                .map(|l| (l.seq, l.samples))
                .collect();
            assert_eq!(log, [(4, 3), (3, 3), (1, 3)]);
            let mut raw = Vec::new();
            db.for_each_raw_report(None, None, |r| -> Result<(), StoreError> {
                raw.push(r.seq);
                Ok(())
            })
            .unwrap();
            assert_eq!(raw, [1, 4], "report 3 was not kept raw");
            let unknown = Incoming {
                agent_id: "a9".into(),
                ..incoming(1, 1_000, None)
            };
            assert!(matches!(
                store_rows(db, &unknown, vec![], AssetState::default(), true),
                Err(StoreError::UnknownAgent(a)) if a == "a9"
            ));
        });
    }

    #[test]
    fn serials_of_psus_and_controllers_that_left_are_gone_like_disks() {
        let psu = |name: &str, serial: &str| PsuInfo {
            name: name.into(),
            serial: serial.into(),
            ..PsuInfo::default()
        };
        let ctl = |serial: &str| RaidControllerInfo {
            id: "c0".into(),
            serial: serial.into(),
            ..RaidControllerInfo::default()
        };
        let disk = |serial: &str| DiskInfo {
            name: "c0/e252/s3".into(),
            serial: serial.into(),
            location: "c0 252:3".into(),
            ..DiskInfo::default()
        };
        let old = Inventory {
            power_supplies: vec![psu("PS1", "CN1797"), psu("PS2", "CN1798"), psu("PS3", " ")],
            raid_controllers: vec![ctl("SK01")],
            disks: vec![disk("Z1Z3ABCD")],
            ..Inventory::default()
        };
        let new = Inventory {
            power_supplies: vec![psu("PS1", "CN1797"), psu("PS2", "CN2001"), psu("PS3", "")],
            raid_controllers: vec![ctl("SK02")],
            disks: vec![disk("Z1Z3WXYZ")],
            ..Inventory::default()
        };
        assert_eq!(serials_gone(&old, &new), ["Z1Z3ABCD", "CN1798", "SK01"]);
        assert!(serials_gone(&old, &old).is_empty());
    }
    /// Stage 6 passes over a clear only when its key has nothing to clear:
    /// a clear after a firing of the same batch, of an item opened by an
    /// earlier batch, or of a held signal each still lands.
    #[test]
    fn a_clear_is_passed_over_only_when_its_key_has_nothing_active_or_held() {
        use crate::cases::{IdentityKey, ItemKind, Severity, Status};
        const MIN: i64 = 60_000;
        let sig = |asset: &str, check: &str, firing: bool, at_ms: i64| Signal {
            event: None,
            key: IdentityKey {
                customer: "acme".into(),
                asset: asset.into(),
                check: check.into(),
                component: "/var".into(),
            },
            kind: ItemKind::Case,
            severity: Severity::Warning,
            rule: check.into(),
            firing,
            at_ms,
            evidence: serde_json::json!({}),
        };
        crate::store::testing::on_both(|db| {
            crate::cases::hold::mark_known(db, "srv1", None, &[], 0).unwrap();
            let (p, c) = (Policy::default(), Contracts::default());
            let case = |check: &str| {
                let filter = crate::cases::store::Filter {
                    asset: Some("srv1".into()),
                    ..Default::default()
                };
                let all = crate::cases::store::list(db, &filter).unwrap();
                all.into_iter().filter(|i| i.key.check == check).collect::<Vec<_>>()
            };
            // A clear of a key that never fired, beside a firing and its
            // clear in one batch.
            // The first clear reads which keys of the host are live, before
            // the firing opens its item.
            let batch = [
                sig("srv1", "load", false, MIN),
                sig("srv1", "fs_full", true, MIN),
                sig("srv1", "fs_full", false, 60 * MIN),
            ];
            signals(db, &batch, &p, &c).unwrap();
            let fs = case("fs_full");
            assert_eq!(fs.len(), 1);
            assert_eq!(fs[0].status, Status::Recovered);
            assert!(case("load").is_empty());
            // An item opened by one batch is cleared by the next.
            signals(db, &[sig("srv1", "load", true, 61 * MIN)], &p, &c).unwrap();
            signals(db, &[sig("srv1", "load", false, 120 * MIN)], &p, &c).unwrap();
            assert_eq!(case("load")[0].status, Status::Recovered);
            // A signal about an unknown asset is held; its clear is noted.
            signals(db, &[sig("ghost", "fs_full", true, MIN)], &p, &c).unwrap();
            let held = |db: &dyn Sql| crate::cases::hold::list_held(db, None, None).unwrap();
            assert!(held(db)[0].firing);
            signals(db, &[sig("ghost", "fs_full", false, 2 * MIN)], &p, &c).unwrap();
            let h = held(db);
            assert_eq!(h.len(), 1);
            assert!(!h[0].firing, "the clear is noted on the held row");
            assert_eq!(h[0].last_at_ms, 2 * MIN);
        });
    }
}
