//! Inspection reports: per customer and period, what the continuous
//! inspection saw — each device's inspection record (state, problems found
//! and how they ended, configuration changes), the open risks with a
//! proposed remedy, the case figures of the period, and advice drawn from
//! the data. Rendered as printable HTML ([`html`]), Markdown ([`markdown`])
//! and JSON (the model itself), and kept in the store ([`stored`]).
//!
//! Every section is as of the period it covers, however long after it the
//! report is made: statuses are read from the items' logs at the period's
//! end, the inventory and disk readings are those of the period, a host's
//! state is its state at the end, the open risks are the findings still
//! open then, and recommendations and spare coverage are those in force
//! then. Where the store keeps no history (the spare stock, a
//! recommendation's status and urgency) the report says it shows the
//! present.
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
use serde::Serialize;

use crate::cases::store::LogEntry;
use crate::cases::{Item, ItemKind, Severity, Status};
use crate::store::inspection::{CustomerAgent, Inspection};
use crate::store::items::Items;
use crate::store::sql::Sql;
use crate::store::{Assets, Reports, StoreError};

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
    /// The customer's hosts (agents labelled `customer=<customer>`) enrolled
    /// before the end of the period, by name.
    pub systems: Vec<DeviceRecord>,
    /// Findings still open at the end of the period, each with a proposed remedy.
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

impl InspectionReport {
    /// The moment the report describes: the end of its period (or when it
    /// was made, should the period not have ended).
    pub fn as_of_ms(&self) -> i64 {
        self.period.to_ms.min(self.generated_at_ms)
    }
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
    /// `up`, `down` or `never_reported`, at the end of the period.
    pub state: String,
    /// The last report before the end of the period; `None`: none, or not
    /// known any more (the report log is kept for a day; the state then
    /// comes from the host's `host_unreachable` finding or case).
    pub last_seen_ms: Option<i64>,
    /// Vendor and product name from the DMI tables; empty when unknown.
    pub model: String,
    pub serial: String,
    pub os: String,
    pub kernel: String,
    /// When the inventory shown (the one in force at the end of the period)
    /// was collected; `None`: no inventory by then.
    pub inventory_at_ms: Option<i64>,
    /// Disks as last read in the period, with their verdict then.
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
    /// The status at the end of the period (`resolved`, `fixed`,
    /// `in_progress`, ...).
    pub status: String,
    pub opened_at_ms: i64,
    /// When it ended, if it had by the end of the period.
    pub resolved_at_ms: Option<i64>,
    /// One line: how it ended, or that it was still open.
    pub outcome: String,
    /// Its log up to the end of the period, as the customer may read it:
    /// every status change, and of the notes only the public comments (no
    /// internal comment, assignment, escalation, contract or SLA note).
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
    /// The status at the end of the period.
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
    /// Cases resolved (or closed) at the end of the period.
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
    /// The status at the end of the period.
    pub status: String,
    pub opened_at_ms: i64,
    pub time_to_respond_ms: Option<i64>,
    pub time_to_resolve_ms: Option<i64>,
}

/// One part replacement recommendation active at the end of the period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecommendationLine {
    pub host: String,
    pub part: String,
    pub reason: String,
    pub urgency: String,
}

/// Spare-part coverage of the customer's assets: their parts as of the end
/// of the period, against the stock as of `stock_at_ms`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Coverage {
    pub covered_pct: f64,
    /// Parts considered (disks and DIMMs of the inventories in force at the
    /// end of the period).
    pub parts: usize,
    /// Parts with no compatible spare in stock.
    pub gaps: Vec<String>,
    /// When the stock was read: the store keeps no history of the stock,
    /// so this is the report's generation time.
    pub stock_at_ms: i64,
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

/// A report request that cannot be answered: the fields at fault and why.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("{}: {reason}", fields.join(", "))]
    BadRequest {
        fields: &'static [&'static str],
        reason: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ReportError {
    fn bad(fields: &'static [&'static str], reason: impl Into<String>) -> ReportError {
        ReportError::BadRequest {
            fields,
            reason: reason.into(),
        }
    }

    /// The message with the fields as command-line flags (`--to: ...`).
    pub fn for_flags(&self) -> String {
        match self {
            ReportError::BadRequest { fields, reason } => {
                let flags: Vec<String> = fields.iter().map(|f| format!("--{f}")).collect();
                format!("{}: {reason}", flags.join(", "))
            }
            other => other.to_string(),
        }
    }
}

/// The period a request asks for: both ends, `to` after `from` and not in
/// the future (a report is of what happened), or neither: the last full
/// calendar month (UTC).
pub fn requested_period(from_ms: Option<i64>, to_ms: Option<i64>, now_ms: i64) -> Result<Period, ReportError> {
    match (from_ms, to_ms) {
        (None, None) => Ok(schedule::previous_month(now_ms)),
        (Some(from_ms), Some(to_ms)) => {
            if to_ms <= from_ms {
                return Err(ReportError::bad(&["to"], "must be after the start of the period"));
            }
            if to_ms > now_ms {
                return Err(ReportError::bad(
                    &["to"],
                    format!(
                        "{} is in the future (now {}): a report covers a period up to now at the latest",
                        format_time(to_ms),
                        format_time(now_ms)
                    ),
                ));
            }
            Ok(Period { from_ms, to_ms })
        }
        _ => Err(ReportError::bad(
            &["from", "to"],
            "give both, or neither for the last full calendar month",
        )),
    }
}

/// The customer a request names, trimmed, if the collector knows it: named
/// in an agent's `customer` label (whenever the agent enrolled), on a
/// finding or case in the store, or in `also_known` (the contracts file's
/// customers, the configured report customers). A name known nowhere is a
/// typo far more often than a customer without systems, and an empty report
/// under a wrong name would pass for a clean one.
pub fn requested_customer(db: &dyn Sql, customer: &str, also_known: &[String]) -> Result<String, ReportError> {
    let customer = customer.trim();
    if customer.is_empty() {
        return Err(ReportError::bad(&["customer"], "must not be empty"));
    }
    if also_known.iter().any(|k| k == customer) {
        return Ok(customer.to_string());
    }
    if db.customer_named(customer).map_err(StoreError::from)? {
        Ok(customer.to_string())
    } else {
        Err(ReportError::bad(
            &["customer"],
            format!(
                "{customer:?} is not a known customer: no agent has the label customer={customer}, no finding or \
                 case names it, and the contracts do not list it"
            ),
        ))
    }
}

/// The customer's replacement recommendations in force at `end_ms`, most
/// urgent first: raised before it and not done or dismissed by then. The
/// store keeps a recommendation's creation and last change, not the history
/// of its status and urgency: those are shown as they are now.
fn recommendation_lines(db: &dyn Sql, customer: &str, end_ms: i64) -> Result<Vec<RecommendationLine>, StoreError> {
    use crate::predict::records::RecStatus;
    let active = |s: &str| RecStatus::parse(s).is_some_and(RecStatus::is_active);
    let recs = crate::predict::records::list(
        db,
        &crate::predict::records::Filter {
            customer: Some(customer.to_string()),
            ..Default::default()
        },
    )?;
    Ok(recs
        .into_iter()
        .filter(|r| {
            // Done and dismissed are final: their last change is when they ended.
            r.created_at_ms < end_ms && (active(&r.status) || r.updated_at_ms >= end_ms)
        })
        .map(|r| {
            let serial = if r.part.serial.is_empty() {
                String::new()
            } else {
                format!(" ({})", r.part.serial)
            };
            let status = if active(&r.status) {
                r.status.clone()
            } else {
                format!("{} since {}", r.status, format_date(r.updated_at_ms))
            };
            RecommendationLine {
                host: r.host,
                part: format!("{} {}{serial}", r.part_type, r.part.slot),
                reason: r.reason,
                urgency: match r.due_at_ms {
                    Some(due) if r.urgency != "replace_now" => {
                        format!("{} (by {}, {status})", r.urgency, format_date(due))
                    }
                    _ => format!("{} ({status})", r.urgency),
                },
            }
        })
        .collect())
}

/// Spare coverage of the inventories in force at the end of the period
/// (host, customer, inventory), against the stock as it is now.
fn spare_coverage(
    db: &dyn Sql,
    customer: &str,
    assets: &[(String, String, Inventory)],
    now_ms: i64,
) -> Result<Coverage, StoreError> {
    let cov = crate::spares::coverage_of_inventories(db, Some(customer), assets)?;
    Ok(Coverage {
        covered_pct: cov.ratio * 100.0,
        parts: cov.parts,
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
        stock_at_ms: now_ms,
    })
}

/// Builds the report of `customer` for `[from_ms, to_ms)` with the default options.
pub fn build(
    db: &dyn Sql,
    customer: &str,
    from_ms: i64,
    to_ms: i64,
    now_ms: i64,
) -> Result<InspectionReport, StoreError> {
    build_with(db, customer, Period { from_ms, to_ms }, now_ms, &Options::default())
}

/// A finding or case of the customer with its log: the report reads every
/// status from the log at the moment it reports on, never from the row.
struct Tracked {
    item: Item,
    log: Vec<LogEntry>,
}

/// How an item stood at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Standing {
    status: Status,
    /// When it ended, while it stays ended (resolved → closed keeps it).
    ended_at_ms: Option<i64>,
}

impl Tracked {
    /// How the item stood just before `at_ms`, from the log rows written
    /// before it; `None`: not opened yet.
    fn at(&self, at_ms: i64) -> Option<Standing> {
        if self.item.opened_at_ms >= at_ms {
            return None;
        }
        if self.log.is_empty() {
            // No log to read (not written by this version): the row as it is.
            return Some(Standing {
                status: self.item.status,
                ended_at_ms: self.item.resolved_at_ms,
            });
        }
        let mut standing = Standing {
            status: Status::initial(self.item.kind),
            ended_at_ms: None,
        };
        for l in self.log.iter().filter(|l| l.at_ms < at_ms) {
            let ended_at_ms = if l.to_status.is_active() {
                None
            } else {
                standing.ended_at_ms.or(Some(l.at_ms))
            };
            standing = Standing {
                status: l.to_status,
                ended_at_ms,
            };
        }
        Some(standing)
    }

    /// Whether it was active at some time in `p`: active when the period
    /// began, or (re)opened or moved to an active status in it.
    fn active_during(&self, p: Period) -> bool {
        if self.log.is_empty() {
            return in_period(&self.item, p);
        }
        self.at(p.from_ms).is_some_and(|s| s.status.is_active())
            || self
                .log
                .iter()
                .any(|l| l.at_ms >= p.from_ms && l.at_ms < p.to_ms && l.to_status.is_active())
    }

    /// Whether it was open (active, and not a recovered case) at `at_ms`.
    fn open_at(&self, at_ms: i64) -> bool {
        self.at(at_ms)
            .is_some_and(|s| s.status.is_active() && s.status != Status::Recovered)
    }
}

/// The customer's findings and cases that can matter to `p`, with their
/// logs: those opened before its end, except those that had ended and were
/// left alone since before it began.
fn tracked(db: &dyn Sql, customer: &str, p: Period) -> Result<Vec<Tracked>, StoreError> {
    let mut out = Vec::new();
    for row in db.customer_items(customer)? {
        let item = crate::cases::store::item_from_row(row)?;
        if item.opened_at_ms >= p.to_ms || (!item.status.is_active() && item.updated_at_ms < p.from_ms) {
            continue;
        }
        let Some(id) = item.id else { continue };
        let log = db
            .item_log(id)?
            .into_iter()
            .map(crate::cases::store::log_entry_from_row)
            .collect::<Result<_, _>>()?;
        out.push(Tracked { item, log });
    }
    Ok(out)
}

/// The share of the customer's cases under contract that ended in the
/// period with neither SLA clock breached; `None`: no such case.
fn sla_met_pct(db: &dyn Sql, customer: &str, p: Period) -> Result<Option<f64>, StoreError> {
    let Some((total, met)) = db.sla_counts(customer, p.from_ms, p.to_ms)? else {
        return Ok(None);
    };
    #[allow(clippy::cast_precision_loss)]
    Ok((total > 0).then(|| met as f64 * 100.0 / total as f64))
}

/// The satisfaction records of the customer's cases made in the period;
/// `None` when the store predates them.
fn satisfaction_summary(db: &dyn Sql, customer: &str, p: Period) -> Result<Option<Satisfaction>, StoreError> {
    let Some(rows) = db.satisfaction_rows(customer, p.from_ms, p.to_ms)? else {
        return Ok(None);
    };
    #[allow(clippy::cast_precision_loss)]
    let scores: Vec<f64> = rows.iter().filter_map(|r| r.score.map(|s| s as f64)).collect();
    #[allow(clippy::cast_precision_loss)]
    let mean_score = (!scores.is_empty()).then(|| scores.iter().sum::<f64>() / scores.len() as f64);
    Ok(Some(Satisfaction {
        answers: scores.len() as u64,
        mean_score,
        no_answer: rows.iter().filter(|r| r.no_answer).count() as u64,
        comments: rows
            .into_iter()
            .map(|r| r.comment.trim().to_string())
            .filter(|c| !c.is_empty())
            .collect(),
    }))
}

/// Builds the report of `customer` for `period`, as of the period's end
/// (or of `now_ms`, should the period not have ended).
pub fn build_with(
    db: &dyn Sql,
    customer: &str,
    period: Period,
    now_ms: i64,
    options: &Options,
) -> Result<InspectionReport, StoreError> {
    // The report's `as_of_ms`, before there is a report to ask.
    let end_ms = period.to_ms.min(now_ms);
    let seen = Period {
        from_ms: period.from_ms,
        to_ms: end_ms,
    };
    let agents = db.customer_agents(customer, end_ms)?;
    let all_items = tracked(db, customer, seen)?;
    let mut systems = Vec::with_capacity(agents.len());
    let mut inventories = Vec::new();
    for a in &agents {
        let inventory = inventory_at(db, &a.agent_id, end_ms)?;
        systems.push(device_record(db, a, inventory.as_ref(), &all_items, seen, options)?);
        if let Some((_, inv)) = inventory {
            inventories.push((a.host.clone(), customer.to_string(), inv));
        }
    }
    let hosts: Vec<&str> = agents.iter().map(|a| a.host.as_str()).collect();
    let mut open_risks: Vec<Risk> = all_items
        .iter()
        .filter(|t| t.item.kind == ItemKind::Finding)
        .filter_map(|t| {
            let standing = t.at(end_ms).filter(|s| s.status.is_active())?;
            let i = &t.item;
            Some(Risk {
                id: i.id?,
                host: i.key.asset.clone(),
                check: i.key.check.clone(),
                component: i.key.component.clone(),
                severity: i.severity,
                status: standing.status.to_string(),
                opened_at_ms: i.opened_at_ms,
                remedy: remedy(i),
            })
        })
        .collect();
    open_risks.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.opened_at_ms.cmp(&b.opened_at_ms)));
    let mut cases = case_figures(&all_items, seen);
    cases.sla_met_pct = match options.extras.sla_met_pct {
        Some(p) => Some(p),
        None => sla_met_pct(db, customer, period)?,
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
            None => Some(recommendation_lines(db, customer, end_ms)?),
        },
        spare_coverage: match &options.extras.spare_coverage {
            Some(c) => Some(c.clone()),
            None => Some(spare_coverage(db, customer, &inventories, now_ms)?),
        },
        satisfaction: match &options.extras.satisfaction {
            Some(s) => Some(s.clone()),
            None => satisfaction_summary(db, customer, period)?,
        },
        advice: Vec::new(),
    };
    report.advice = advice(&report, &hosts, report.as_of_ms());
    Ok(report)
}

/// Every customer named in an agent's `customer` label, sorted.
pub fn customers(db: &dyn Sql) -> Result<Vec<String>, StoreError> {
    Ok(db.labelled_customers()?)
}

/// The inventory in force at `end_ms`: the newest version collected before
/// it; `None` when the host had sent none by then.
fn inventory_at(db: &dyn Sql, agent_id: &str, end_ms: i64) -> Result<Option<(i64, Inventory)>, StoreError> {
    match db.inventory_before(agent_id, end_ms)? {
        None => Ok(None),
        Some(v) => {
            let inv = serde_json::from_str(&v.doc).map_err(|e| StoreError::Corrupt {
                agent_id: agent_id.to_string(),
                reason: format!("stored inventory: {e}"),
            })?;
            Ok(Some((v.collected_at_ms, inv)))
        }
    }
}

/// A host's state at `end_ms` and its last report before then. Exact while
/// the host's last report is before `end_ms` or the report log (kept for a
/// day) still covers it; otherwise the host was down then if its
/// `host_unreachable` finding or case was open then, and up if not.
fn state_at(
    db: &dyn Sql,
    a: &CustomerAgent,
    all_items: &[Tracked],
    end_ms: i64,
    window_ms: i64,
) -> Result<(&'static str, Option<i64>), StoreError> {
    let by_window = |t: i64| if end_ms - t <= window_ms { "up" } else { "down" };
    let last_seen = match a.last_seen_ms {
        None => return Ok(("never_reported", None)),
        Some(t) if t < end_ms => Some(t),
        Some(_) => db.last_report_before(&a.agent_id, end_ms)?,
    };
    if let Some(t) = last_seen {
        return Ok((by_window(t), Some(t)));
    }
    let unreachable = all_items
        .iter()
        .any(|t| t.item.key.asset == a.host && t.item.key.check == "host_unreachable" && t.open_at(end_ms));
    Ok((if unreachable { "down" } else { "up" }, None))
}

/// The disks of a host as read in the period, named from their latest
/// reading or, for a disk gone since, from the inventory in force then.
fn disk_lines(
    db: &dyn Sql,
    agent_id: &str,
    inventory: Option<&Inventory>,
    p: Period,
) -> Result<Vec<DiskLine>, StoreError> {
    use caretaker_shared::disk_health::disk_key;
    Ok(crate::disks::read_in(db, agent_id, p.from_ms, p.to_ms)?
        .into_iter()
        .map(|d| {
            let listed = inventory
                .into_iter()
                .flat_map(|inv| inv.disks.iter())
                .find(|k| disk_key(&k.wwn, &k.model, &k.serial, &k.name) == d.key);
            let (device, model, serial) = match (d.device.is_empty(), listed) {
                (false, _) => (d.device, d.model, d.serial),
                (true, Some(k)) => (format!("/dev/{}", k.name), k.model.clone(), k.serial.clone()),
                (true, None) => (d.key, String::new(), String::new()),
            };
            DiskLine {
                device,
                model,
                serial,
                verdict: d.verdict,
                reasons: d.reasons,
                power_on_hours: d.power_on_hours,
                scanned_at_ms: d.scanned_at_ms,
            }
        })
        .collect())
}

fn device_record(
    db: &dyn Sql,
    a: &CustomerAgent,
    inventory: Option<&(i64, Inventory)>,
    all_items: &[Tracked],
    p: Period,
    options: &Options,
) -> Result<DeviceRecord, StoreError> {
    let window = i64::from(a.interval_secs.max(1)) * 1000 * i64::from(options.down_after_intervals);
    let (state, last_seen_ms) = state_at(db, a, all_items, p.to_ms, window)?;
    let (model, serial, os, kernel, inventory_at_ms) = match inventory {
        Some((at, inv)) => (
            join_nonempty(&[&inv.dmi.sys_vendor, &inv.dmi.product_name]),
            inv.dmi.product_serial.clone(),
            join_nonempty(&[&inv.os_name, &inv.os_version]),
            inv.kernel.clone(),
            Some(*at),
        ),
        None => Default::default(),
    };
    let disks = disk_lines(db, &a.agent_id, inventory.map(|(_, inv)| inv), p)?;
    let mut problems = Vec::new();
    for t in all_items
        .iter()
        .filter(|t| t.item.key.asset == a.host && t.active_during(p))
    {
        let (i, Some(id)) = (&t.item, t.item.id) else { continue };
        let Some(standing) = t.at(p.to_ms) else { continue };
        problems.push(Problem {
            id,
            kind: i.kind,
            check: i.key.check.clone(),
            component: i.key.component.clone(),
            severity: i.severity,
            status: standing.status.to_string(),
            opened_at_ms: i.opened_at_ms,
            resolved_at_ms: standing.ended_at_ms,
            outcome: outcome(standing),
            log: t
                .log
                .iter()
                .filter(|l| l.at_ms < p.to_ms)
                // The report goes to the customer: its notes (comments,
                // assignment, escalation, contract rows) only when public.
                .filter(|l| {
                    l.from_status != Some(l.to_status) || l.visibility == crate::cases::store::Visibility::Public
                })
                .map(|l| LogLine {
                    at_ms: l.at_ms,
                    actor: l.actor.clone(),
                    from: l.from_status.map(|s| s.to_string()),
                    to: l.to_status.to_string(),
                    comment: l.comment.clone(),
                })
                .collect(),
        });
    }
    problems.sort_by_key(|p| (p.opened_at_ms, p.id));
    let changes = db
        .asset_changes_in(&a.agent_id, p.from_ms, p.to_ms)?
        .into_iter()
        .map(|c| ChangeLine {
            at_ms: c.at_ms,
            kind: c.kind,
            summary: c.summary,
        })
        .collect();
    Ok(DeviceRecord {
        agent_id: a.agent_id.clone(),
        host: a.host.clone(),
        state: state.to_string(),
        last_seen_ms,
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

/// Opened before the period ended and not ended before it began, by the
/// row (for an item without a log).
fn in_period(i: &Item, p: Period) -> bool {
    i.opened_at_ms < p.to_ms && i.resolved_at_ms.is_none_or(|r| r >= p.from_ms)
}

fn outcome(s: Standing) -> String {
    let when = s.ended_at_ms.map(format_time).unwrap_or_default();
    match s.status {
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

fn case_figures(all_items: &[Tracked], period: Period) -> CaseFigures {
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
    for t in all_items.iter().filter(|t| {
        t.item.kind == ItemKind::Case && t.item.opened_at_ms >= period.from_ms && t.item.opened_at_ms < period.to_ms
    }) {
        let (i, Some(id)) = (&t.item, t.item.id) else { continue };
        let Some(standing) = t.at(period.to_ms) else { continue };
        figures.count += 1;
        *figures.by_severity.entry(i.severity.as_str().to_string()).or_insert(0) += 1;
        // Response: the queue's definition (a person's first action), as the
        // case page shows it, if it came by the end of the period.
        // Resolution: opened → resolved (or closed), if it stood so then.
        let first_move = crate::queue::first_response_ms(&t.log)
            .filter(|&at| at < period.to_ms)
            .map(|at| at - i.opened_at_ms);
        let to_resolve = match standing.status {
            Status::Resolved | Status::Closed => standing.ended_at_ms.map(|r| r - i.opened_at_ms),
            _ => None,
        };
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
            status: standing.status.to_string(),
            opened_at_ms: i.opened_at_ms,
            time_to_respond_ms: first_move,
            time_to_resolve_ms: to_resolve,
        });
    }
    figures.cases.sort_by_key(|c| (c.opened_at_ms, c.id));
    let mean = |v: &[i64]| (!v.is_empty()).then(|| v.iter().sum::<i64>() / v.len() as i64);
    figures.mean_time_to_respond_ms = mean(&respond);
    figures.mean_time_to_resolve_ms = mean(&resolve);
    figures
}

/// Advice from the report's own data, all of it as of `end_ms` (the end of
/// the period): never from readings taken after it.
fn advice(r: &InspectionReport, hosts: &[&str], end_ms: i64) -> Vec<String> {
    let mut out = Vec::new();
    for d in &r.systems {
        match d.state.as_str() {
            "down" => out.push(match d.last_seen_ms {
                Some(t) => format!(
                    "{}: has not reported since {}; check the host and its agent",
                    d.host,
                    format_time(t)
                ),
                None => format!(
                    "{}: was not reporting at the end of the period; check the host and its agent",
                    d.host
                ),
            }),
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
        let age = end_ms - risk.opened_at_ms;
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
            "no systems of customer {} were covered in the period: enroll agents with the label customer={}",
            r.customer, r.customer
        ));
    }
    out
}

// Wording both renderings share.

/// The last report line of a device: the time, or why there is none.
pub(crate) fn last_report(d: &DeviceRecord) -> String {
    match (d.last_seen_ms, d.state.as_str()) {
        (Some(t), _) => format_time(t),
        (None, "never_reported") => "never".into(),
        (None, _) => "not known any more (the report log is kept for a day)".into(),
    }
}

/// The stock note of the spare coverage.
pub(crate) fn stock_note(stock_at_ms: i64) -> String {
    format!(
        "Parts as of the end of the period; spares in stock as of {} (the stock keeps no history).",
        format_time(stock_at_ms)
    )
}

/// Spare coverage without parts to cover.
pub(crate) const NO_PARTS: &str =
    "No parts to cover: no inventory in force at the end of the period lists disks or memory modules.";

/// Under the recommendations: what "as of the end of the period" can mean for them.
pub(crate) const RECOMMENDATIONS_NOTE: &str = "Recommendations in force at the end of the period. Their status and \
     urgency are shown as they are now: the store keeps no history of them.";

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
