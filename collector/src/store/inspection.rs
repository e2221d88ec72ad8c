//! What an inspection report (`report`) reads beyond the report
//! and asset tables: the customers the agents' labels name, a customer's
//! agents, findings and cases with their logs, and the queue's SLA and
//! satisfaction records. Rows as stored; what they mean is the report's.

use super::items::{COLUMNS as ITEM_COLUMNS, ItemRow, item_from};
use super::sql::{Dialect, Sql, SqlError, SqlExt, args};

/// An agent labelled with a customer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerAgent {
    pub agent_id: String,
    pub host: String,
    pub interval_secs: u32,
    pub last_seen_ms: Option<i64>,
}

/// A satisfaction record of a case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SatisfactionRow {
    pub score: Option<i64>,
    pub comment: String,
    pub no_answer: bool,
}

/// The `customer` label of an agent's labels (a JSON object), if it has one.
fn customer_label(labels: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(labels).ok()?;
    v.get("customer")?.as_str().map(str::to_string)
}

/// Whether the store has table `name`.
pub(super) fn has_table(db: &(impl Sql + ?Sized), name: &str) -> Result<bool, SqlError> {
    let sql = match db.dialect() {
        Dialect::Sqlite => "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?1",
        Dialect::Postgres => {
            "SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = ?1"
        }
    };
    Ok(db.value::<i64>(sql, args![name])?.is_some())
}

/// The inspection report's reads, on any connection or transaction.
pub trait Inspection: Sql {
    /// Every customer named in an agent's `customer` label, sorted.
    fn labelled_customers(&self) -> Result<Vec<String>, SqlError> {
        let mut out: Vec<String> = self
            .query("SELECT labels FROM agents", args![], |r| r.get::<String>(0))?
            .iter()
            .filter_map(|l| customer_label(l))
            .filter(|c| !c.is_empty())
            .collect();
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Whether an agent's `customer` label or a finding or case names `customer`.
    fn customer_named(&self, customer: &str) -> Result<bool, SqlError> {
        let labels = self.query("SELECT labels FROM agents", args![], |r| r.get::<String>(0))?;
        if labels.iter().any(|l| customer_label(l).as_deref() == Some(customer)) {
            return Ok(true);
        }
        Ok(self
            .value::<i64>("SELECT 1 FROM items WHERE customer = ?1 LIMIT 1", args![customer])?
            .is_some())
    }

    /// The agents labelled `customer=<customer>` enrolled before
    /// `before_ms`, by host name (then agent id), in byte order on both
    /// backends.
    fn customer_agents(&self, customer: &str, before_ms: i64) -> Result<Vec<CustomerAgent>, SqlError> {
        let mut out = Vec::new();
        self.query_each(
            "SELECT agent_id, host, interval_secs, last_seen_ms, labels FROM agents WHERE enrolled_at_ms < ?1",
            args![before_ms],
            |r| {
                if customer_label(&r.get::<String>(4)?).as_deref() == Some(customer) {
                    out.push(CustomerAgent {
                        agent_id: r.get(0)?,
                        host: r.get(1)?,
                        interval_secs: r.get(2)?,
                        last_seen_ms: r.get(3)?,
                    });
                }
                Ok(())
            },
        )?;
        out.sort_by(|a, b| (&a.host, &a.agent_id).cmp(&(&b.host, &b.agent_id)));
        Ok(out)
    }

    /// The findings and cases of `customer`, newest first.
    fn customer_items(&self, customer: &str) -> Result<Vec<ItemRow>, SqlError> {
        self.query(
            &format!("SELECT {ITEM_COLUMNS} FROM items WHERE customer = ?1 ORDER BY id DESC"),
            args![customer],
            item_from,
        )
    }

    /// Of the customer's cases under contract that ended in
    /// `[from_ms, to_ms)` (not cancelled): how many, and how many with
    /// neither SLA clock breached. `None`: the store predates the queue.
    fn sla_counts(&self, customer: &str, from_ms: i64, to_ms: i64) -> Result<Option<(i64, i64)>, SqlError> {
        if !has_table(self, "case_meta")? {
            return Ok(None);
        }
        self.query_one(
            "SELECT count(*), CAST(coalesce(sum(CASE WHEN m.response_breached_at_ms IS NULL
                        AND m.resolution_breached_at_ms IS NULL THEN 1 ELSE 0 END), 0) AS BIGINT)
             FROM items i JOIN case_meta m ON m.item_id = i.id
             WHERE i.kind = 'case' AND i.customer = ?1 AND m.contract IS NOT NULL
               AND i.resolved_at_ms >= ?2 AND i.resolved_at_ms < ?3 AND i.status NOT LIKE 'cancelled%'",
            args![customer, from_ms, to_ms],
            |r| Ok(Some((r.get(0)?, r.get(1)?))),
        )
    }

    /// The satisfaction records of the customer's cases made in
    /// `[from_ms, to_ms)`, oldest first. `None`: the store predates them.
    fn satisfaction_rows(
        &self,
        customer: &str,
        from_ms: i64,
        to_ms: i64,
    ) -> Result<Option<Vec<SatisfactionRow>>, SqlError> {
        if !has_table(self, "case_satisfaction")? {
            return Ok(None);
        }
        Ok(Some(self.query(
            "SELECT s.score, s.comment, s.no_answer FROM case_satisfaction s JOIN items i ON i.id = s.item_id
             WHERE i.customer = ?1 AND s.at_ms >= ?2 AND s.at_ms < ?3 ORDER BY s.at_ms",
            args![customer, from_ms, to_ms],
            |r| {
                Ok(SatisfactionRow {
                    score: r.get(0)?,
                    comment: r.get(1)?,
                    no_answer: r.get(2)?,
                })
            },
        )?))
    }
}

impl<S: Sql + ?Sized> Inspection for S {}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::store::testing::{add_agent, on_both};

    fn label(db: &dyn Sql, agent_id: &str, labels: &str, enrolled_at_ms: i64) {
        db.execute(
            "UPDATE agents SET labels = ?2, enrolled_at_ms = ?3, interval_secs = 60 WHERE agent_id = ?1",
            args![agent_id, labels, enrolled_at_ms],
        )
        .unwrap();
    }

    #[test]
    fn customers_their_agents_items_and_logs() {
        on_both(|db| {
            add_agent(db, "a1", "db2");
            add_agent(db, "a2", "db1");
            add_agent(db, "a3", "web1");
            add_agent(db, "a4", "odd");
            label(db, "a1", r#"{"customer":"acme"}"#, 10);
            label(db, "a2", r#"{"customer":"acme","site":"hq"}"#, 20);
            label(db, "a3", r#"{"customer":"globex"}"#, 30);
            label(db, "a4", "not json", 0);
            assert_eq!(db.labelled_customers().unwrap(), ["acme", "globex"]);
            assert!(db.customer_named("acme").unwrap());
            assert!(!db.customer_named("initech").unwrap());
            let agents = db.customer_agents("acme", 20).unwrap();
            assert_eq!(agents.iter().map(|a| a.host.as_str()).collect::<Vec<_>>(), ["db2"]);
            let agents = db.customer_agents("acme", 21).unwrap();
            assert_eq!(
                agents.iter().map(|a| a.host.as_str()).collect::<Vec<_>>(),
                ["db1", "db2"],
                "by host"
            );
            assert_eq!(agents[0].interval_secs, 60);

            let id: i64 = db
                .query_one(
                    "INSERT INTO items (kind, customer, asset, check_name, component, status, severity, rule,
                        opened_at_ms, updated_at_ms, last_firing_at_ms, occurrences, evidence, recent_changes)
                     VALUES ('case', 'initech', 'srv', 'fs_full', '/var', 'resolved', 'major', 'r', 1, 5, 1, 1, '{}', '[]')
                     RETURNING id",
                    args![],
                    |r| r.get(0),
                )
                .unwrap();
            assert!(db.customer_named("initech").unwrap(), "named by a case");
            for (at, from, to) in [(1, None, "open"), (5, Some("open"), "resolved")] {
                db.execute(
                    "INSERT INTO item_log (item_id, at_ms, actor, from_status, to_status) VALUES (?1, ?2, 'rule:r', ?3, ?4)",
                    args![id, at, from, to],
                )
                .unwrap();
            }
            let items = db.customer_items("initech").unwrap();
            assert_eq!(items.len(), 1);
            assert_eq!(
                (items[0].status.as_str(), items[0].flapping, items[0].resolved_at_ms),
                ("resolved", false, None)
            );
            let log = super::super::items::Items::item_log(db, id).unwrap();
            assert_eq!(
                log.iter().map(|l| (l.at_ms, l.to_status.as_str())).collect::<Vec<_>>(),
                [(1, "open"), (5, "resolved")]
            );
            assert_eq!(db.sla_counts("initech", 0, 10).unwrap(), Some((0, 0)));
            assert_eq!(db.satisfaction_rows("initech", 0, 10).unwrap(), Some(vec![]));
        });
    }
}
