//! Stored inspection reports: each generated report is kept as generated
//! (JSON, HTML and Markdown), so a report handed to a customer can be
//! downloaded again unchanged after the data behind it has moved on.

use super::{InspectionReport, Options, Period};
use crate::store::StoreError;
use crate::store::inspection_reports::{InspectionReports, NewReport};
use crate::store::sql::Sql;

pub use crate::store::inspection_reports::{MIGRATION, StoredReport as Stored, Summary, Trigger};

/// Builds, renders and stores the report of `customer` for `period`;
/// returns its id. Meant for the writer's transaction.
pub fn generate(
    db: &dyn Sql,
    customer: &str,
    period: Period,
    now_ms: i64,
    trigger: Trigger,
    options: &Options,
) -> Result<i64, StoreError> {
    let report = super::build_with(db, customer, period, now_ms, options)?;
    save(db, &report, trigger)
}

/// Stores a built report with its renderings; returns its id.
pub fn save(db: &dyn Sql, report: &InspectionReport, trigger: Trigger) -> Result<i64, StoreError> {
    let json = serde_json::to_string_pretty(report).map_err(|e| StoreError::Transaction(e.to_string()))?;
    let html = super::html::render(report);
    let markdown = super::markdown::render(report);
    Ok(db.insert_inspection_report(&NewReport {
        customer: &report.customer,
        from_ms: report.period.from_ms,
        to_ms: report.period.to_ms,
        generated_at_ms: report.generated_at_ms,
        trigger,
        json: &json,
        html: &html,
        markdown: &markdown,
    })?)
}

/// Whether a report of `trigger` exists for this customer and period.
pub fn exists(db: &dyn Sql, customer: &str, period: Period, trigger: Trigger) -> Result<bool, StoreError> {
    Ok(db.inspection_report_exists(customer, period.from_ms, period.to_ms, trigger)?)
}

/// Stored reports, newest first, optionally of one customer.
pub fn list(db: &dyn Sql, customer: Option<&str>) -> Result<Vec<Summary>, StoreError> {
    Ok(db.inspection_reports(customer)?)
}

/// One stored report.
pub fn get(db: &dyn Sql, id: i64) -> Result<Option<Stored>, StoreError> {
    Ok(db.inspection_report(id)?)
}
