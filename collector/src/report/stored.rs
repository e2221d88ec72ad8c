//! Stored inspection reports: each generated report is kept as generated
//! (JSON, HTML and Markdown), so a report handed to a customer can be
//! downloaded again unchanged after the data behind it has moved on.

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::{InspectionReport, Options, Period};
use crate::store::StoreError;

/// Schema, applied as one migration by [`crate::store`].
pub const MIGRATION: &str = r#"
CREATE TABLE inspection_reports (
    id INTEGER PRIMARY KEY,
    customer TEXT NOT NULL,
    from_ms INTEGER NOT NULL,
    to_ms INTEGER NOT NULL,
    generated_at_ms INTEGER NOT NULL,
    trigger TEXT NOT NULL CHECK (trigger IN ('schedule', 'on_demand')),
    json TEXT NOT NULL,
    html TEXT NOT NULL,
    markdown TEXT NOT NULL
);
CREATE INDEX inspection_reports_customer ON inspection_reports(customer, from_ms);
-- One scheduled report per customer and period, however often the schedule runs.
CREATE UNIQUE INDEX inspection_reports_scheduled ON inspection_reports(customer, from_ms, to_ms)
    WHERE trigger = 'schedule';
"#;

/// Why a report was generated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    Schedule,
    OnDemand,
}

impl Trigger {
    pub fn as_str(self) -> &'static str {
        match self {
            Trigger::Schedule => "schedule",
            Trigger::OnDemand => "on_demand",
        }
    }
}

/// A stored report without its documents (for lists).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub id: i64,
    pub customer: String,
    pub from_ms: i64,
    pub to_ms: i64,
    pub generated_at_ms: i64,
    pub trigger: String,
}

/// A stored report with its three renderings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub summary: Summary,
    pub json: String,
    pub html: String,
    pub markdown: String,
}

/// Builds, renders and stores the report of `customer` for `period`;
/// returns its id. Meant for the writer's transaction.
pub fn generate(
    conn: &Connection,
    customer: &str,
    period: Period,
    now_ms: i64,
    trigger: Trigger,
    options: &Options,
) -> Result<i64, StoreError> {
    let report = super::build_with(conn, customer, period, now_ms, options)?;
    save(conn, &report, trigger)
}

/// Stores a built report with its renderings; returns its id.
pub fn save(conn: &Connection, report: &InspectionReport, trigger: Trigger) -> Result<i64, StoreError> {
    let json = serde_json::to_string_pretty(report).map_err(|e| StoreError::Transaction(e.to_string()))?;
    let html = super::html::render(report);
    let markdown = super::markdown::render(report);
    conn.execute(
        "INSERT INTO inspection_reports(customer, from_ms, to_ms, generated_at_ms, trigger, json, html, markdown)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            report.customer,
            report.period.from_ms,
            report.period.to_ms,
            report.generated_at_ms,
            trigger.as_str(),
            json,
            html,
            markdown
        ],
    )?;
    Ok(conn.last_insert_rowid())
}

/// Whether a report of `trigger` exists for this customer and period.
pub fn exists(conn: &Connection, customer: &str, period: Period, trigger: Trigger) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT 1 FROM inspection_reports WHERE customer = ?1 AND from_ms = ?2 AND to_ms = ?3 AND trigger = ?4",
        )?
        .query_row(
            params![customer, period.from_ms, period.to_ms, trigger.as_str()],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

/// Stored reports, newest first, optionally of one customer.
pub fn list(conn: &Connection, customer: Option<&str>) -> Result<Vec<Summary>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT id, customer, from_ms, to_ms, generated_at_ms, trigger FROM inspection_reports
         WHERE ?1 IS NULL OR customer = ?1 ORDER BY id DESC",
    )?;
    let rows = stmt.query_map(params![customer], summary_of)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

fn summary_of(r: &rusqlite::Row<'_>) -> rusqlite::Result<Summary> {
    Ok(Summary {
        id: r.get(0)?,
        customer: r.get(1)?,
        from_ms: r.get(2)?,
        to_ms: r.get(3)?,
        generated_at_ms: r.get(4)?,
        trigger: r.get(5)?,
    })
}

/// One stored report.
pub fn get(conn: &Connection, id: i64) -> Result<Option<Stored>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT id, customer, from_ms, to_ms, generated_at_ms, trigger, json, html, markdown
             FROM inspection_reports WHERE id = ?1",
            params![id],
            |r| {
                Ok(Stored {
                    summary: summary_of(r)?,
                    json: r.get(6)?,
                    html: r.get(7)?,
                    markdown: r.get(8)?,
                })
            },
        )
        .optional()?)
}
