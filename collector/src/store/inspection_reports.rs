//! Stored inspection reports (`inspection_reports`): each generated report
//! as it was handed out (JSON, HTML and Markdown), with its customer,
//! period, when and why it was generated. Building and rendering a report
//! is `report`'s; this module keeps the rows.
//!
//! One scheduled report per customer and period (a partial unique index),
//! however often the schedule runs; on-demand reports are not limited.

use serde::Serialize;

use super::sql::{Row, Sql, SqlError, SqlExt, args};

/// Schema on SQLite, applied as one migration by [`crate::store`].
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
    /// The stored value (the table's check allows these two).
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
pub struct StoredReport {
    pub summary: Summary,
    pub json: String,
    pub html: String,
    pub markdown: String,
}

/// A report to store: what it covers and its renderings.
#[derive(Debug, Clone, Copy)]
pub struct NewReport<'a> {
    pub customer: &'a str,
    pub from_ms: i64,
    pub to_ms: i64,
    pub generated_at_ms: i64,
    pub trigger: Trigger,
    pub json: &'a str,
    pub html: &'a str,
    pub markdown: &'a str,
}

fn summary(r: &Row<'_>) -> Result<Summary, SqlError> {
    Ok(Summary {
        id: r.get(0)?,
        customer: r.get(1)?,
        from_ms: r.get(2)?,
        to_ms: r.get(3)?,
        generated_at_ms: r.get(4)?,
        trigger: r.get(5)?,
    })
}

/// Stored inspection reports, on any connection or transaction.
pub trait InspectionReports: Sql {
    /// Stores a report; its id. A second scheduled report of the same
    /// customer and period is refused (a unique violation).
    fn insert_inspection_report(&self, r: &NewReport<'_>) -> Result<i64, SqlError> {
        self.query_one(
            "INSERT INTO inspection_reports (customer, from_ms, to_ms, generated_at_ms, trigger, json, html, markdown)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) RETURNING id",
            args![
                r.customer,
                r.from_ms,
                r.to_ms,
                r.generated_at_ms,
                r.trigger.as_str(),
                r.json,
                r.html,
                r.markdown
            ],
            |row| row.get(0),
        )
    }

    /// Whether a report of `trigger` is stored for this customer and period.
    fn inspection_report_exists(
        &self,
        customer: &str,
        from_ms: i64,
        to_ms: i64,
        trigger: Trigger,
    ) -> Result<bool, SqlError> {
        Ok(self
            .value::<i64>(
                "SELECT 1 FROM inspection_reports
                 WHERE customer = ?1 AND from_ms = ?2 AND to_ms = ?3 AND trigger = ?4 LIMIT 1",
                args![customer, from_ms, to_ms, trigger.as_str()],
            )?
            .is_some())
    }

    /// Stored reports without their documents, newest first, of one
    /// customer or (`None`) of all.
    fn inspection_reports(&self, customer: Option<&str>) -> Result<Vec<Summary>, SqlError> {
        self.query(
            "SELECT id, customer, from_ms, to_ms, generated_at_ms, trigger FROM inspection_reports
             WHERE CAST(?1 AS TEXT) IS NULL OR customer = ?1 ORDER BY id DESC",
            args![customer],
            summary,
        )
    }

    /// One stored report with its documents.
    fn inspection_report(&self, id: i64) -> Result<Option<StoredReport>, SqlError> {
        self.query_opt(
            "SELECT id, customer, from_ms, to_ms, generated_at_ms, trigger, json, html, markdown
             FROM inspection_reports WHERE id = ?1",
            args![id],
            |r| {
                Ok(StoredReport {
                    summary: summary(r)?,
                    json: r.get(6)?,
                    html: r.get(7)?,
                    markdown: r.get(8)?,
                })
            },
        )
    }
}

impl<S: Sql + ?Sized> InspectionReports for S {}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::store::testing::on_both;

    fn report<'a>(customer: &'a str, from_ms: i64, trigger: Trigger) -> NewReport<'a> {
        NewReport {
            customer,
            from_ms,
            to_ms: from_ms + 100,
            generated_at_ms: from_ms + 150,
            trigger,
            json: "{\"customer\": \"x\"}",
            html: "<p>report</p>",
            markdown: "# report",
        }
    }

    #[test]
    fn a_stored_report_reads_back_whole_and_in_lists_newest_first() {
        on_both(|db| {
            assert_eq!(db.inspection_report(1).ok(), Some(None));
            assert_eq!(db.inspection_reports(None).ok(), Some(vec![]));
            let a = db
                .insert_inspection_report(&report("acme", 1_000, Trigger::OnDemand))
                .unwrap();
            let g = db
                .insert_inspection_report(&report("globex", 1_000, Trigger::Schedule))
                .unwrap();
            let a2 = db
                .insert_inspection_report(&report("acme", 2_000, Trigger::Schedule))
                .unwrap();
            assert!(a < g && g < a2, "ids grow: {a} {g} {a2}");

            let s = db.inspection_report(a2).unwrap().unwrap();
            assert_eq!(
                s.summary,
                Summary {
                    id: a2,
                    customer: "acme".into(),
                    from_ms: 2_000,
                    to_ms: 2_100,
                    generated_at_ms: 2_150,
                    trigger: "schedule".into(),
                }
            );
            assert_eq!(
                (s.json.as_str(), s.html.as_str(), s.markdown.as_str()),
                ("{\"customer\": \"x\"}", "<p>report</p>", "# report")
            );

            let ids = |c: Option<&str>| {
                db.inspection_reports(c)
                    .unwrap()
                    .into_iter()
                    .map(|s| s.id)
                    .collect::<Vec<_>>()
            };
            assert_eq!(ids(None), [a2, g, a]);
            assert_eq!(ids(Some("acme")), [a2, a]);
            assert_eq!(ids(Some("initech")), Vec::<i64>::new());
        });
    }

    #[test]
    fn one_scheduled_report_per_customer_and_period_and_any_number_on_demand() {
        on_both(|db| {
            let r = report("acme", 1_000, Trigger::Schedule);
            assert_eq!(
                db.inspection_report_exists("acme", 1_000, 1_100, Trigger::Schedule)
                    .ok(),
                Some(false)
            );
            assert!(db.insert_inspection_report(&r).is_ok());
            assert_eq!(
                db.inspection_report_exists("acme", 1_000, 1_100, Trigger::Schedule)
                    .ok(),
                Some(true)
            );
            assert_eq!(
                db.inspection_report_exists("acme", 1_000, 1_100, Trigger::OnDemand)
                    .ok(),
                Some(false)
            );
            assert_eq!(
                db.inspection_report_exists("acme", 1_000, 1_200, Trigger::Schedule)
                    .ok(),
                Some(false)
            );

            let again = db.insert_inspection_report(&r);
            assert!(again.as_ref().is_err_and(SqlError::is_unique_violation), "{again:?}");
            let on_demand = report("acme", 1_000, Trigger::OnDemand);
            assert!(db.insert_inspection_report(&on_demand).is_ok());
            assert!(db.insert_inspection_report(&on_demand).is_ok());
            assert!(
                db.insert_inspection_report(&report("globex", 1_000, Trigger::Schedule))
                    .is_ok()
            );
            assert_eq!(db.inspection_reports(Some("acme")).map(|l| l.len()).ok(), Some(3));
        });
    }
}
