//! Inspection reports: per customer and period, what the continuous
//! inspection saw — each device's inspection record (state, problems found
//! and how they ended, configuration changes), the open risks with a
//! proposed remedy, the case figures of the period, and advice drawn from
//! the data. Rendered as printable HTML ([`html`]), Markdown ([`markdown`])
//! and JSON (the model itself), and kept in the store ([`stored`]).
//!
//! Sections whose source the collector does not keep yet (part
//! recommendations, spare coverage, satisfaction, SLA figures) come in
//! through [`Extras`]; left `None`, they render as "not tracked yet" rather
//! than as an empty list that would read as "nothing to report".

pub mod html;
pub mod markdown;
pub mod schedule;
pub mod stored;

use std::collections::BTreeMap;

use caretaker_shared::wire::Inventory;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::cases::store::{self as items, Filter};
use crate::cases::{Item, ItemKind, Severity, Status};
use crate::store::StoreError;

const DAY_MS: i64 = 24 * 3_600_000;

/// A finding open longer than this earns a line of advice.
const STALE_FINDING_MS: i64 = 30 * DAY_MS;

/// A disk powered on longer than this (about five years) is old, even when healthy.
const OLD_DISK_HOURS: u64 = 5 * 8_766;

/// One inspection report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InspectionReport {
    pub customer: String,
    pub period: Period,
    pub generated_at_ms: i64,
    /// The customer's hosts (agents labelled `customer=<customer>`), by name.
    pub systems: Vec<DeviceRecord>,
    /// Active findings at generation time, each with a proposed remedy.
    pub open_risks: Vec<Risk>,
    pub cases: CaseFigures,
    /// Part replacement recommendations; `None`: not tracked yet.
    pub recommendations: Option<Vec<RecommendationLine>>,
    /// Spare-part coverage of the customer's assets; `None`: not tracked yet.
    pub spare_coverage: Option<Coverage>,
    /// Satisfaction results of the period; `None`: not tracked yet.
    pub satisfaction: Option<Satisfaction>,
    /// Maintenance advice drawn from the data above.
    pub advice: Vec<String>,
}

/// `[from_ms, to_ms)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Period {
    pub from_ms: i64,
    pub to_ms: i64,
}

/// The inspection record of one device.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceRecord {
    pub agent_id: String,
    pub host: String,
    /// `up`, `down` or `never_reported`, at generation time.
    pub state: String,
    pub last_seen_ms: Option<i64>,
    /// Vendor and product name from the DMI tables; empty when unknown.
    pub model: String,
    pub serial: String,
    pub os: String,
    pub kernel: String,
    /// When the inventory shown was collected; `None`: no inventory yet.
    pub inventory_at_ms: Option<i64>,
    /// Disks as last read, with their verdict.
    pub disks: Vec<DiskLine>,
    /// Findings and cases opened or active in the period.
    pub problems: Vec<Problem>,
    /// Configuration changes in the period, oldest first.
    pub changes: Vec<ChangeLine>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DiskLine {
    pub device: String,
    pub model: String,
    pub serial: String,
    /// `healthy`, `warning`, `failing` or `unknown`.
    pub verdict: String,
    pub reasons: Vec<String>,
    pub power_on_hours: Option<u64>,
    pub scanned_at_ms: i64,
}

/// A finding or case of a device, and how it ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    pub id: i64,
    pub kind: ItemKind,
    pub check: String,
    pub component: String,
    pub severity: Severity,
    /// The status now (`resolved`, `fixed`, `in_progress`, ...).
    pub status: String,
    pub opened_at_ms: i64,
    pub resolved_at_ms: Option<i64>,
    /// One line: how it ended, or that it is still open.
    pub outcome: String,
    pub log: Vec<LogLine>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LogLine {
    pub at_ms: i64,
    pub actor: String,
    pub from: Option<String>,
    pub to: String,
    pub comment: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChangeLine {
    pub at_ms: i64,
    pub kind: String,
    pub summary: String,
}

/// An open risk and what to do about it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Risk {
    pub id: i64,
    pub host: String,
    pub check: String,
    pub component: String,
    pub severity: Severity,
    pub status: String,
    pub opened_at_ms: i64,
    pub remedy: String,
}

/// The cases of the period (opened in it).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaseFigures {
    pub count: u64,
    /// Count per severity name.
    pub by_severity: BTreeMap<String, u64>,
    /// Cases resolved (or closed) by the end of the period.
    pub resolved: u64,
    /// Mean time from opening to the response (a person's first action on
    /// the case, [`crate::queue::first_response_ms`]) over the cases
    /// responded to by the end of the period; `None`: none.
    pub mean_time_to_respond_ms: Option<i64>,
    /// Mean time from opening to resolution, over the resolved cases.
    pub mean_time_to_resolve_ms: Option<i64>,
    /// Share of cases that met their contract's deadlines; `None` until
    /// contracts exist.
    pub sla_met_pct: Option<f64>,
    pub cases: Vec<CaseLine>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaseLine {
    pub id: i64,
    pub host: String,
    pub check: String,
    pub component: String,
    pub severity: Severity,
    pub status: String,
    pub opened_at_ms: i64,
    pub time_to_respond_ms: Option<i64>,
    pub time_to_resolve_ms: Option<i64>,
}

/// One part replacement recommendation (filled by the recommendations feature).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecommendationLine {
    pub host: String,
    pub part: String,
    pub reason: String,
    pub urgency: String,
}

/// Spare-part coverage of the customer's assets (filled by the spares feature).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Coverage {
    pub covered_pct: f64,
    /// Parts with no compatible spare in stock.
    pub gaps: Vec<String>,
}

/// Satisfaction results of the period (from the cases' satisfaction records).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Satisfaction {
    pub answers: u64,
    pub mean_score: Option<f64>,
    pub no_answer: u64,
    pub comments: Vec<String>,
}

/// Sections whose source lives outside this module: `None` renders as "not
/// tracked yet".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Extras {
    pub recommendations: Option<Vec<RecommendationLine>>,
    pub spare_coverage: Option<Coverage>,
    pub satisfaction: Option<Satisfaction>,
    pub sla_met_pct: Option<f64>,
}

/// How to build a report beyond customer and period.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// A host counts as down after this many missed report intervals.
    pub down_after_intervals: u32,
    pub extras: Extras,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            down_after_intervals: 3,
            extras: Extras::default(),
        }
    }
}

/// The customer's active replacement recommendations, most urgent first.
fn recommendation_lines(conn: &Connection, customer: &str) -> Result<Vec<RecommendationLine>, StoreError> {
    let recs = crate::predict::records::list(
        conn,
        &crate::predict::records::Filter {
            customer: Some(customer.to_string()),
            ..Default::default()
        },
    )?;
    Ok(recs
        .into_iter()
        .filter(|r| matches!(r.status.as_str(), "open" | "accepted" | "reserved"))
        .map(|r| {
            let serial = if r.part.serial.is_empty() {
                String::new()
            } else {
                format!(" ({})", r.part.serial)
            };
            RecommendationLine {
                host: r.host,
                part: format!("{} {}{serial}", r.part_type, r.part.slot),
                reason: r.reason,
                urgency: match r.due_at_ms {
                    Some(due) if r.urgency != "replace_now" => {
                        format!("{} (by {}, {})", r.urgency, format_date(due), r.status)
                    }
                    _ => format!("{} ({})", r.urgency, r.status),
                },
            }
        })
        .collect())
}

/// Spare coverage of the customer's disks and DIMMs, with its gaps.
fn spare_coverage(conn: &Connection, customer: &str) -> Result<Coverage, StoreError> {
    let cov = crate::spares::coverage(conn, Some(customer))?;
    Ok(Coverage {
        covered_pct: cov.ratio * 100.0,
        gaps: cov
            .gaps
            .iter()
            .map(|g| {
                let p = &g.part;
                let size = p
                    .capacity_bytes
                    .map(|b| format!(", {:.0} GB", b as f64 / 1e9))
                    .unwrap_or_default();
                format!(
                    "{}: {} {} ({} {}{size})",
                    g.host, p.part_type, p.slot, p.model, p.interface
                )
            })
            .collect(),
    })
}

/// Builds the report of `customer` for `[from_ms, to_ms)` with the default options.
pub fn build(
    conn: &Connection,
    customer: &str,
    from_ms: i64,
    to_ms: i64,
    now_ms: i64,
) -> Result<InspectionReport, StoreError> {
    build_with(conn, customer, Period { from_ms, to_ms }, now_ms, &Options::default())
}

struct AgentRow {
    agent_id: String,
    host: String,
    interval_secs: u32,
    last_seen_ms: Option<i64>,
}

/// Builds the report of `customer` for `period`.
pub fn build_with(
    conn: &Connection,
    customer: &str,
    period: Period,
    now_ms: i64,
    options: &Options,
) -> Result<InspectionReport, StoreError> {
    let agents = customer_agents(conn, customer, period.to_ms)?;
    let all_items = items::list(
        conn,
        &Filter {
            customer: Some(customer.to_string()),
            ..Filter::default()
        },
    )?;
    let mut systems = Vec::with_capacity(agents.len());
    for a in &agents {
        systems.push(device_record(conn, a, &all_items, period, now_ms, options)?);
    }
    let hosts: Vec<&str> = agents.iter().map(|a| a.host.as_str()).collect();
    let mut open_risks: Vec<Risk> = all_items
        .iter()
        .filter(|i| i.kind == ItemKind::Finding && i.status.is_active() && i.opened_at_ms < period.to_ms.max(now_ms))
        .filter_map(|i| {
            Some(Risk {
                id: i.id?,
                host: i.key.asset.clone(),
                check: i.key.check.clone(),
                component: i.key.component.clone(),
                severity: i.severity,
                status: i.status.to_string(),
                opened_at_ms: i.opened_at_ms,
                remedy: remedy(i),
            })
        })
        .collect();
    open_risks.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.opened_at_ms.cmp(&b.opened_at_ms)));
    let mut cases = case_figures(conn, &all_items, period)?;
    cases.sla_met_pct = match options.extras.sla_met_pct {
        Some(p) => Some(p),
        None => crate::queue::sla_met_pct(conn, customer, period.from_ms, period.to_ms)?,
    };
    let mut report = InspectionReport {
        customer: customer.to_string(),
        period,
        generated_at_ms: now_ms,
        systems,
        open_risks,
        cases,
        recommendations: match &options.extras.recommendations {
            Some(r) => Some(r.clone()),
            None => Some(recommendation_lines(conn, customer)?),
        },
        spare_coverage: match &options.extras.spare_coverage {
            Some(c) => Some(c.clone()),
            None => Some(spare_coverage(conn, customer)?),
        },
        satisfaction: match &options.extras.satisfaction {
            Some(s) => Some(s.clone()),
            None => crate::queue::satisfaction_summary(conn, customer, period.from_ms, period.to_ms)?,
        },
        advice: Vec::new(),
    };
    report.advice = advice(&report, &hosts, now_ms);
    Ok(report)
}

/// Every customer named in an agent's `customer` label, sorted.
pub fn customers(conn: &Connection) -> Result<Vec<String>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT DISTINCT json_extract(labels, '$.customer') AS c FROM agents
         WHERE json_valid(labels) AND c IS NOT NULL AND c != '' ORDER BY c",
    )?;
    let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn customer_agents(conn: &Connection, customer: &str, before_ms: i64) -> Result<Vec<AgentRow>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT agent_id, host, interval_secs, last_seen_ms FROM agents
         WHERE json_valid(labels) AND json_extract(labels, '$.customer') = ?1 AND enrolled_at_ms < ?2
         ORDER BY host, agent_id",
    )?;
    let rows = stmt.query_map(params![customer, before_ms], |r| {
        Ok(AgentRow {
            agent_id: r.get(0)?,
            host: r.get(1)?,
            interval_secs: r.get(2)?,
            last_seen_ms: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The inventory in force at the end of the period (the newest version
/// collected before it), else the oldest one there is.
fn inventory_at(conn: &Connection, agent_id: &str, to_ms: i64) -> Result<Option<(i64, Inventory)>, StoreError> {
    let row: Option<(i64, String)> = conn
        .query_row(
            "SELECT collected_at_ms, doc FROM inventory WHERE agent_id = ?1
             ORDER BY (collected_at_ms < ?2) DESC,
                      CASE WHEN collected_at_ms < ?2 THEN -seq ELSE seq END LIMIT 1",
            params![agent_id, to_ms],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    match row {
        None => Ok(None),
        Some((at, doc)) => {
            let inv = serde_json::from_str(&doc).map_err(|e| StoreError::Corrupt {
                agent_id: agent_id.to_string(),
                reason: format!("stored inventory: {e}"),
            })?;
            Ok(Some((at, inv)))
        }
    }
}

fn device_record(
    conn: &Connection,
    a: &AgentRow,
    all_items: &[Item],
    period: Period,
    now_ms: i64,
    options: &Options,
) -> Result<DeviceRecord, StoreError> {
    let inventory = inventory_at(conn, &a.agent_id, period.to_ms)?;
    let window = i64::from(a.interval_secs.max(1)) * 1000 * i64::from(options.down_after_intervals);
    let state = match a.last_seen_ms {
        None => "never_reported",
        Some(t) if now_ms - t <= window => "up",
        Some(_) => "down",
    };
    let (model, serial, os, kernel, inventory_at_ms) = match &inventory {
        Some((at, inv)) => (
            join_nonempty(&[&inv.dmi.sys_vendor, &inv.dmi.product_name]),
            inv.dmi.product_serial.clone(),
            join_nonempty(&[&inv.os_name, &inv.os_version]),
            inv.kernel.clone(),
            Some(*at),
        ),
        None => Default::default(),
    };
    let disks = crate::disks::list(conn, Some(&a.agent_id))?
        .into_iter()
        .map(|d| DiskLine {
            device: d.device,
            model: d.model,
            serial: d.serial,
            verdict: d.verdict,
            reasons: d.reasons,
            power_on_hours: d.power_on_hours,
            scanned_at_ms: d.scanned_at_ms,
        })
        .collect();
    let mut problems = Vec::new();
    for i in all_items
        .iter()
        .filter(|i| i.key.asset == a.host && in_period(i, period))
    {
        let Some(id) = i.id else { continue };
        let log = items::get(conn, id)?.map(|(_, l)| l).unwrap_or_default();
        problems.push(Problem {
            id,
            kind: i.kind,
            check: i.key.check.clone(),
            component: i.key.component.clone(),
            severity: i.severity,
            status: i.status.to_string(),
            opened_at_ms: i.opened_at_ms,
            resolved_at_ms: i.resolved_at_ms,
            outcome: outcome(i),
            log: log
                .into_iter()
                .map(|l| LogLine {
                    at_ms: l.at_ms,
                    actor: l.actor,
                    from: l.from_status.map(|s| s.to_string()),
                    to: l.to_status.to_string(),
                    comment: l.comment,
                })
                .collect(),
        });
    }
    problems.sort_by_key(|p| (p.opened_at_ms, p.id));
    let mut stmt = conn.prepare_cached(
        "SELECT at_ms, kind, summary FROM asset_changes WHERE agent_id = ?1 AND at_ms >= ?2 AND at_ms < ?3
         ORDER BY seq, idx",
    )?;
    let changes = stmt
        .query_map(params![a.agent_id, period.from_ms, period.to_ms], |r| {
            Ok(ChangeLine {
                at_ms: r.get(0)?,
                kind: r.get(1)?,
                summary: r.get(2)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(DeviceRecord {
        agent_id: a.agent_id.clone(),
        host: a.host.clone(),
        state: state.to_string(),
        last_seen_ms: a.last_seen_ms,
        model,
        serial,
        os,
        kernel,
        inventory_at_ms,
        disks,
        problems,
        changes,
    })
}

fn join_nonempty(parts: &[&str]) -> String {
    parts
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Opened before the period ended and not ended before it began.
fn in_period(i: &Item, p: Period) -> bool {
    i.opened_at_ms < p.to_ms && i.resolved_at_ms.is_none_or(|r| r >= p.from_ms)
}

fn outcome(i: &Item) -> String {
    let when = i.resolved_at_ms.map(format_time).unwrap_or_default();
    match i.status {
        Status::Resolved => format!("resolved {when}"),
        Status::Closed => format!("closed {when}"),
        Status::Cancelled(r) => format!("cancelled ({}) {when}", r.as_str()),
        Status::Fixed => format!("fixed {when}"),
        Status::Verified => format!("fixed and verified {when}"),
        Status::Recovered => "signal cleared, awaiting confirmation".into(),
        Status::Planned => "remedy planned".into(),
        Status::AcceptedRisk => "risk accepted by the customer".into(),
        Status::Open => "still open".into(),
        s => format!("still open ({s})"),
    }
    .trim()
    .to_string()
}

/// The proposed remedy for an open finding, by its check.
pub fn remedy(i: &Item) -> String {
    let check = i.key.check.as_str();
    let what = if i.key.component.is_empty() {
        String::new()
    } else {
        format!(" {}", i.key.component)
    };
    match check {
        "filesystem_fills_within_7d" => {
            let at = i.evidence.get("at_ms").and_then(serde_json::Value::as_i64);
            let eta = i.evidence.get("eta_secs").and_then(serde_json::Value::as_f64);
            match (at, eta) {
                (Some(at), Some(eta)) if eta.is_finite() && eta >= 0.0 => format!(
                    "extend the filesystem{what} or clean up before {}",
                    format_date(at.saturating_add((eta * 1000.0) as i64))
                ),
                _ => format!("extend the filesystem{what} or clean up within the week"),
            }
        }
        "filesystem_almost_full" => format!("extend the filesystem{what} or clean up"),
        "filesystem_remounted_readonly" => {
            format!("check the device under{what} for errors and remount it read-write")
        }
        "nvme_wear_out_within_90d" => format!("plan the replacement of{what} within 90 days"),
        c if c.starts_with("disk_") || c.starts_with("nvme_") => {
            format!("plan the replacement of the disk{what} and keep a spare ready")
        }
        "md_array_degraded" => format!("replace the failed member of{what} and rebuild the array"),
        c if c.starts_with("edac_") => format!("plan the replacement of the memory module{what}"),
        "systemd_unit_failed" => format!("investigate and restart the unit{what}"),
        "clock_not_synchronised" => "repair the time synchronisation (NTP/chrony)".into(),
        "reboot_required" => "schedule a reboot in the next maintenance window".into(),
        "oom_kills_grew" => "review memory use and limits, or add memory".into(),
        "host_unreachable" => "restore the host or its agent's connection".into(),
        "database_down" => format!("restore the database{what}"),
        "pg_long_transaction" => "find and end the long-running transaction".into(),
        "redis_evictions_grew" => "raise Redis maxmemory or reduce the data set".into(),
        _ => "review the finding with the responsible engineer".into(),
    }
}

fn case_figures(conn: &Connection, all_items: &[Item], period: Period) -> Result<CaseFigures, StoreError> {
    let mut figures = CaseFigures {
        count: 0,
        by_severity: BTreeMap::new(),
        resolved: 0,
        mean_time_to_respond_ms: None,
        mean_time_to_resolve_ms: None,
        sla_met_pct: None,
        cases: Vec::new(),
    };
    let (mut respond, mut resolve) = (Vec::new(), Vec::new());
    for i in all_items
        .iter()
        .filter(|i| i.kind == ItemKind::Case && i.opened_at_ms >= period.from_ms && i.opened_at_ms < period.to_ms)
    {
        let Some(id) = i.id else { continue };
        figures.count += 1;
        *figures.by_severity.entry(i.severity.as_str().to_string()).or_insert(0) += 1;
        // Response: the queue's definition (a person's first action), as the
        // case page shows it, if it came by the end of the period.
        // Resolution: opened → resolved.
        let log = items::get(conn, id)?.map(|(_, l)| l).unwrap_or_default();
        let first_move = crate::queue::first_response_ms(&log)
            .filter(|&at| at < period.to_ms)
            .map(|at| at - i.opened_at_ms);
        let resolved_at = log
            .iter()
            .find(|l| matches!(l.to_status, Status::Resolved | Status::Closed) && l.at_ms < period.to_ms)
            .map(|l| l.at_ms);
        let to_resolve = resolved_at.map(|r| r - i.opened_at_ms);
        if let Some(t) = first_move {
            respond.push(t);
        }
        if let Some(t) = to_resolve {
            resolve.push(t);
            figures.resolved += 1;
        }
        figures.cases.push(CaseLine {
            id,
            host: i.key.asset.clone(),
            check: i.key.check.clone(),
            component: i.key.component.clone(),
            severity: i.severity,
            status: i.status.to_string(),
            opened_at_ms: i.opened_at_ms,
            time_to_respond_ms: first_move,
            time_to_resolve_ms: to_resolve,
        });
    }
    figures.cases.sort_by_key(|c| (c.opened_at_ms, c.id));
    let mean = |v: &[i64]| (!v.is_empty()).then(|| v.iter().sum::<i64>() / v.len() as i64);
    figures.mean_time_to_respond_ms = mean(&respond);
    figures.mean_time_to_resolve_ms = mean(&resolve);
    Ok(figures)
}

fn advice(r: &InspectionReport, hosts: &[&str], now_ms: i64) -> Vec<String> {
    let mut out = Vec::new();
    for d in &r.systems {
        match d.state.as_str() {
            "down" => out.push(format!(
                "{}: has not reported since {}; check the host and its agent",
                d.host,
                d.last_seen_ms.map(format_time).unwrap_or_default()
            )),
            "never_reported" => out.push(format!("{}: enrolled but never reported; check its agent", d.host)),
            _ => {}
        }
        if d.inventory_at_ms.is_none() {
            out.push(format!("{}: no inventory yet; the asset record is incomplete", d.host));
        }
        for k in &d.disks {
            match k.verdict.as_str() {
                "failing" => out.push(format!(
                    "{}: disk {} ({}) is failing; replace it now",
                    d.host, k.device, k.serial
                )),
                "warning" => out.push(format!(
                    "{}: disk {} ({}) shows wear or errors; plan its replacement",
                    d.host, k.device, k.serial
                )),
                "healthy" if k.power_on_hours.is_some_and(|h| h >= OLD_DISK_HOURS) => out.push(format!(
                    "{}: disk {} ({}) is healthy but has run {} hours (over five years); plan its replacement",
                    d.host,
                    k.device,
                    k.serial,
                    k.power_on_hours.unwrap_or_default()
                )),
                _ => {}
            }
        }
    }
    for risk in &r.open_risks {
        if risk.check == "reboot_required" {
            out.push(format!("{}: a reboot is required; schedule it", risk.host));
        }
        let age = now_ms - risk.opened_at_ms;
        if age > STALE_FINDING_MS {
            out.push(format!(
                "{}: finding {} ({}) has been open for {} days; decide on it (plan, fix or accept the risk)",
                risk.host,
                risk.id,
                risk.check,
                age / DAY_MS
            ));
        }
    }
    let unresolved = r.cases.count.saturating_sub(r.cases.resolved);
    if unresolved > 0 {
        out.push(format!(
            "{unresolved} case(s) opened in the period were not resolved by its end"
        ));
    }
    if hosts.is_empty() {
        out.push(format!(
            "no systems of customer {} are covered: enroll agents with the label customer={}",
            r.customer, r.customer
        ));
    }
    out
}

/// `2026-11-05 14:03 UTC`.
pub fn format_time(ms: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000) {
        Ok(t) => format!(
            "{:04}-{:02}-{:02} {:02}:{:02} UTC",
            t.year(),
            u8::from(t.month()),
            t.day(),
            t.hour(),
            t.minute()
        ),
        Err(_) => format!("{ms} ms"),
    }
}

/// `2026-11-05`.
pub fn format_date(ms: i64) -> String {
    match time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000) {
        Ok(t) => format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day()),
        Err(_) => format!("{ms} ms"),
    }
}

/// `3 d 4 h`, `2 h 5 min`, `40 s`: a duration for people.
pub fn format_duration(ms: i64) -> String {
    let s = ms.max(0) / 1000;
    let (d, h, m) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60);
    if d > 0 {
        format!("{d} d {h} h")
    } else if h > 0 {
        format!("{h} h {m} min")
    } else if m > 0 {
        format!("{m} min")
    } else {
        format!("{s} s")
    }
}

#[cfg(test)]
pub(crate) mod tests;
