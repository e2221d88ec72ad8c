//! Part replacement recommendations (`recommendations`): one row per
//! recommendation, at most one active (open, accepted or reserved) per part
//! key. The lifecycle and the urgency rules are the domain's
//! (`predict`); this module keeps the rows, and the few reads of
//! other tables (items, disks, agents) predict needs to raise them.

use serde::Serialize;
use serde_json::Value;

use super::sql::{Row, Sql, SqlError, SqlExt, args};

/// A recommendation move its lifecycle does not allow (the rules are
/// the domain's; the error is plain data).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("a recommendation that is {from} cannot be {action}")]
    Invalid { action: &'static str, from: &'static str },
    #[error("dismissing needs a reason")]
    ReasonRequired,
}

/// Schema on SQLite, applied as one migration by [`crate::store`].
pub const MIGRATION: &str = r#"
CREATE TABLE recommendations (
    id INTEGER PRIMARY KEY,
    agent_id TEXT NOT NULL,
    host TEXT NOT NULL,
    customer TEXT NOT NULL,
    part_type TEXT NOT NULL CHECK (part_type IN ('disk', 'dimm', 'fan', 'psu')),
    part_model TEXT NOT NULL DEFAULT '',
    part_serial TEXT NOT NULL DEFAULT '',
    part_slot TEXT NOT NULL DEFAULT '',
    part_interface TEXT NOT NULL DEFAULT '',
    part_capacity_bytes INTEGER,
    part_key TEXT NOT NULL,
    reason TEXT NOT NULL,
    evidence TEXT NOT NULL,
    risk TEXT NOT NULL,
    urgency TEXT NOT NULL CHECK (urgency IN ('replace_now', 'within_days', 'watch')),
    due_at_ms INTEGER,
    status TEXT NOT NULL CHECK (status IN ('open', 'accepted', 'reserved', 'done', 'dismissed')),
    dismissed_reason TEXT,
    item_id INTEGER,
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL
);
-- Never two active recommendations for the same part.
CREATE UNIQUE INDEX recommendations_one_active ON recommendations(part_key)
    WHERE status IN ('open', 'accepted', 'reserved');
CREATE INDEX recommendations_status ON recommendations(status, id);
"#;

/// Appended to the migrations: the part types of the BMC and RAID
/// controllers (a controller's cache backup unit, the controller itself).
/// SQLite cannot change a CHECK constraint in place, so the table is
/// rebuilt with the rows and indexes it had.
pub const MIGRATION_HARDWARE_PARTS: &str = r#"
CREATE TABLE recommendations_new (
    id INTEGER PRIMARY KEY,
    agent_id TEXT NOT NULL,
    host TEXT NOT NULL,
    customer TEXT NOT NULL,
    part_type TEXT NOT NULL CHECK (part_type IN ('disk', 'dimm', 'fan', 'psu', 'bbu', 'controller')),
    part_model TEXT NOT NULL DEFAULT '',
    part_serial TEXT NOT NULL DEFAULT '',
    part_slot TEXT NOT NULL DEFAULT '',
    part_interface TEXT NOT NULL DEFAULT '',
    part_capacity_bytes INTEGER,
    part_key TEXT NOT NULL,
    reason TEXT NOT NULL,
    evidence TEXT NOT NULL,
    risk TEXT NOT NULL,
    urgency TEXT NOT NULL CHECK (urgency IN ('replace_now', 'within_days', 'watch')),
    due_at_ms INTEGER,
    status TEXT NOT NULL CHECK (status IN ('open', 'accepted', 'reserved', 'done', 'dismissed')),
    dismissed_reason TEXT,
    item_id INTEGER,
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL
);
INSERT INTO recommendations_new SELECT id, agent_id, host, customer, part_type, part_model, part_serial, part_slot,
    part_interface, part_capacity_bytes, part_key, reason, evidence, risk, urgency, due_at_ms, status,
    dismissed_reason, item_id, created_at_ms, updated_at_ms FROM recommendations;
DROP TABLE recommendations;
ALTER TABLE recommendations_new RENAME TO recommendations;
CREATE UNIQUE INDEX recommendations_one_active ON recommendations(part_key)
    WHERE status IN ('open', 'accepted', 'reserved');
CREATE INDEX recommendations_status ON recommendations(status, id);
"#;

/// The part a recommendation is about; kept on the record so the spare-parts
/// module can match a compatible spare (type, model, interface, capacity).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Part {
    pub model: String,
    pub serial: String,
    /// The disk's device (or its controller and enclosure:slot, `c0 252:3`),
    /// the DIMM's or fan's label, the power supply's name, the controller
    /// (`c0`) of a controller or of its cache backup unit.
    pub slot: String,
    /// `ata`, `nvme`, `scsi` for disks; empty otherwise.
    pub interface: String,
    pub capacity_bytes: Option<u64>,
}

/// One recommendation as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Recommendation {
    pub id: i64,
    pub agent_id: String,
    pub host: String,
    pub customer: String,
    pub part_type: String,
    pub part: Part,
    /// Stable identity of the part: `host/type/serial`, or the slot without a serial.
    pub part_key: String,
    pub reason: String,
    pub evidence: Value,
    pub risk: String,
    pub urgency: String,
    pub due_at_ms: Option<i64>,
    pub status: String,
    pub dismissed_reason: Option<String>,
    /// The finding or case behind it, when there is one.
    pub item_id: Option<i64>,
    pub created_at_ms: i64,
    pub updated_at_ms: i64,
}

/// A recommendation to insert, `open`, created and updated at `at_ms`.
#[derive(Debug, Clone, Copy)]
pub struct NewRecommendation<'a> {
    pub agent_id: &'a str,
    pub host: &'a str,
    pub customer: &'a str,
    pub part_type: &'a str,
    pub part: &'a Part,
    pub part_key: &'a str,
    pub reason: &'a str,
    /// The evidence as JSON text.
    pub evidence: &'a str,
    pub risk: &'a str,
    pub urgency: &'a str,
    pub due_at_ms: Option<i64>,
    pub item_id: Option<i64>,
    pub at_ms: i64,
}

/// A sooner urgency for an active recommendation, with the assessment that
/// made it sooner.
#[derive(Debug, Clone, Copy)]
pub struct Escalation<'a> {
    pub urgency: &'a str,
    pub due_at_ms: Option<i64>,
    pub risk: &'a str,
    pub reason: &'a str,
    /// The evidence as JSON text.
    pub evidence: &'a str,
    /// Linked when the recommendation has no item yet.
    pub item_id: Option<i64>,
    pub at_ms: i64,
}

/// What a recommendation is now, cheaply: enough to see that it changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecommendationGlance {
    pub id: i64,
    pub status: String,
    pub urgency: String,
    pub due_at_ms: Option<i64>,
}

/// The urgency an active recommendation stands at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Standing {
    pub id: i64,
    pub urgency: String,
    pub due_at_ms: Option<i64>,
}

/// How a part's newest recommendation ended or stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastWord {
    pub status: String,
    pub urgency: String,
    pub reason: String,
}

/// Which recommendations [`Recommendations::list_recommendations`] returns;
/// `None` matches any.
#[derive(Debug, Clone, Copy, Default)]
pub struct RecommendationFilter<'a> {
    pub status: Option<&'a str>,
    pub host: Option<&'a str>,
    pub customer: Option<&'a str>,
    pub urgency: Option<&'a str>,
}

/// An item opened after a log row: what the lifecycle timers opened, for
/// predict to raise what it asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedItem {
    pub id: i64,
    pub kind: String,
    pub customer: String,
    pub asset: String,
    pub check: String,
    pub component: String,
    pub rule: String,
    /// The evidence as JSON text.
    pub evidence: String,
    pub at_ms: i64,
}

const ACTIVE: &str = "('open', 'accepted', 'reserved')";

const COLUMNS: &str = "id, agent_id, host, customer, part_type, part_model, part_serial, part_slot, part_interface,
    part_capacity_bytes, part_key, reason, evidence, risk, urgency, due_at_ms, status, dismissed_reason, item_id,
    created_at_ms, updated_at_ms";

fn from_row(r: &Row<'_>) -> Result<Recommendation, SqlError> {
    let evidence: String = r.get(12)?;
    Ok(Recommendation {
        id: r.get(0)?,
        agent_id: r.get(1)?,
        host: r.get(2)?,
        customer: r.get(3)?,
        part_type: r.get(4)?,
        part: Part {
            model: r.get(5)?,
            serial: r.get(6)?,
            slot: r.get(7)?,
            interface: r.get(8)?,
            capacity_bytes: r.get::<Option<i64>>(9)?.and_then(|c| u64::try_from(c).ok()),
        },
        part_key: r.get(10)?,
        reason: r.get(11)?,
        evidence: serde_json::from_str(&evidence).unwrap_or(Value::Null),
        risk: r.get(13)?,
        urgency: r.get(14)?,
        due_at_ms: r.get(15)?,
        status: r.get(16)?,
        dismissed_reason: r.get(17)?,
        item_id: r.get(18)?,
        created_at_ms: r.get(19)?,
        updated_at_ms: r.get(20)?,
    })
}

/// Recommendation rows, on any connection or transaction.
pub trait Recommendations: Sql {
    /// The active recommendation of part `key`, if there is one.
    fn active_recommendation(&self, key: &str) -> Result<Option<Standing>, SqlError> {
        self.query_opt(
            &format!("SELECT id, urgency, due_at_ms FROM recommendations WHERE part_key = ?1 AND status IN {ACTIVE}"),
            args![key],
            |r| {
                Ok(Standing {
                    id: r.get(0)?,
                    urgency: r.get(1)?,
                    due_at_ms: r.get(2)?,
                })
            },
        )
    }

    /// The status, urgency and reason of part `key`'s newest recommendation.
    fn last_recommendation(&self, key: &str) -> Result<Option<LastWord>, SqlError> {
        self.query_opt(
            "SELECT status, urgency, reason FROM recommendations WHERE part_key = ?1 ORDER BY id DESC LIMIT 1",
            args![key],
            |r| {
                Ok(LastWord {
                    status: r.get(0)?,
                    urgency: r.get(1)?,
                    reason: r.get(2)?,
                })
            },
        )
    }

    /// Inserts an open recommendation; its id. A second active one for the
    /// same part key is refused (a unique violation).
    fn insert_recommendation(&self, n: &NewRecommendation<'_>) -> Result<i64, SqlError> {
        self.query_one(
            "INSERT INTO recommendations(agent_id, host, customer, part_type, part_model, part_serial, part_slot,
                part_interface, part_capacity_bytes, part_key, reason, evidence, risk, urgency, due_at_ms, status,
                item_id, created_at_ms, updated_at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, 'open', ?16, ?17, ?17)
             RETURNING id",
            args![
                n.agent_id,
                n.host,
                n.customer,
                n.part_type,
                &n.part.model,
                &n.part.serial,
                &n.part.slot,
                &n.part.interface,
                n.part.capacity_bytes.and_then(|c| i64::try_from(c).ok()),
                n.part_key,
                n.reason,
                n.evidence,
                n.risk,
                n.urgency,
                n.due_at_ms,
                n.item_id,
                n.at_ms
            ],
            |r| r.get(0),
        )
    }

    /// Makes recommendation `id` more urgent, with the assessment that says so.
    fn escalate_recommendation(&self, id: i64, e: &Escalation<'_>) -> Result<(), SqlError> {
        self.execute(
            "UPDATE recommendations SET urgency = ?2, due_at_ms = ?3, risk = ?4, reason = ?5, evidence = ?6,
                item_id = COALESCE(item_id, ?7), updated_at_ms = ?8 WHERE id = ?1",
            args![
                id,
                e.urgency,
                e.due_at_ms,
                e.risk,
                e.reason,
                e.evidence,
                e.item_id,
                e.at_ms
            ],
        )?;
        Ok(())
    }

    /// Refreshes recommendation `id`'s evidence (JSON text), linking `item_id`
    /// when it has no item yet.
    fn refresh_recommendation(
        &self,
        id: i64,
        evidence: &str,
        item_id: Option<i64>,
        at_ms: i64,
    ) -> Result<(), SqlError> {
        self.execute(
            "UPDATE recommendations SET evidence = ?2, item_id = COALESCE(item_id, ?3), updated_at_ms = ?4
             WHERE id = ?1",
            args![id, evidence, item_id, at_ms],
        )?;
        Ok(())
    }

    /// Recommendation `id`, if it exists.
    fn recommendation(&self, id: i64) -> Result<Option<Recommendation>, SqlError> {
        self.query_opt(
            &format!("SELECT {COLUMNS} FROM recommendations WHERE id = ?1"),
            args![id],
            from_row,
        )
    }

    /// Every recommendation's status, urgency and due date, by id.
    fn recommendation_glances(&self) -> Result<Vec<RecommendationGlance>, SqlError> {
        self.query(
            "SELECT id, status, urgency, due_at_ms FROM recommendations ORDER BY id",
            args![],
            |r| {
                Ok(RecommendationGlance {
                    id: r.get(0)?,
                    status: r.get(1)?,
                    urgency: r.get(2)?,
                    due_at_ms: r.get(3)?,
                })
            },
        )
    }

    /// Recommendations matching `f`, most urgent and soonest due first, then newest.
    fn list_recommendations(&self, f: &RecommendationFilter<'_>) -> Result<Vec<Recommendation>, SqlError> {
        self.query(
            &format!(
                "SELECT {COLUMNS} FROM recommendations
                 WHERE (CAST(?1 AS TEXT) IS NULL OR status = ?1) AND (CAST(?2 AS TEXT) IS NULL OR host = ?2)
                   AND (CAST(?3 AS TEXT) IS NULL OR customer = ?3) AND (CAST(?4 AS TEXT) IS NULL OR urgency = ?4)
                 ORDER BY CASE urgency WHEN 'replace_now' THEN 0 WHEN 'within_days' THEN 1 ELSE 2 END,
                          COALESCE(due_at_ms, 9223372036854775807), id DESC"
            ),
            args![f.status, f.host, f.customer, f.urgency],
            from_row,
        )
    }

    /// Moves recommendation `id` to `status` at `at_ms`, keeping the
    /// dismissal reason it had unless `dismissed_reason` gives one.
    fn set_recommendation_status(
        &self,
        id: i64,
        status: &str,
        dismissed_reason: Option<&str>,
        at_ms: i64,
    ) -> Result<(), SqlError> {
        self.execute(
            "UPDATE recommendations SET status = ?2, dismissed_reason = COALESCE(?3, dismissed_reason),
                updated_at_ms = ?4 WHERE id = ?1",
            args![id, status, dismissed_reason, at_ms],
        )?;
        Ok(())
    }

    /// The active recommendations for the part with `serial` on `host`, oldest first.
    fn active_recommendations_for_serial(&self, host: &str, serial: &str) -> Result<Vec<i64>, SqlError> {
        self.query(
            &format!(
                "SELECT id FROM recommendations WHERE host = ?1 AND part_serial = ?2 AND status IN {ACTIVE} ORDER BY id"
            ),
            args![host, serial],
            |r| r.get(0),
        )
    }

    /// Active recommendations by urgency (for /metrics).
    fn active_recommendation_counts(&self) -> Result<Vec<(String, u64)>, SqlError> {
        self.query(
            &format!("SELECT urgency, COUNT(*) FROM recommendations WHERE status IN {ACTIVE} GROUP BY urgency"),
            args![],
            |r| Ok((r.get(0)?, r.get::<i64>(1).map(|n| u64::try_from(n).unwrap_or(0))?)),
        )
    }

    // Reads of other groups' tables that raising recommendations needs.

    /// The newest active finding or case (cases first) about `component` on
    /// `asset` of `customer`: the item a recommendation links to (`items`).
    fn active_item_about(&self, customer: &str, asset: &str, component: &str) -> Result<Option<i64>, SqlError> {
        self.value(
            "SELECT id FROM items WHERE customer = ?1 AND asset = ?2 AND component = ?3
               AND status NOT IN ('resolved', 'closed', 'cancelled', 'fixed', 'verified')
             ORDER BY CASE kind WHEN 'case' THEN 0 ELSE 1 END, id DESC LIMIT 1",
            args![customer, asset, component],
        )
    }

    /// The open, planned or risk-accepted findings about `component` on
    /// `asset`, oldest first (`items`): fixed when the part is replaced.
    fn open_findings_about(&self, asset: &str, component: &str) -> Result<Vec<i64>, SqlError> {
        self.query(
            "SELECT id FROM items WHERE asset = ?1 AND component = ?2 AND kind = 'finding'
               AND status IN ('open', 'planned', 'accepted_risk') ORDER BY id",
            args![asset, component],
            |r| r.get(0),
        )
    }

    /// Items opened after log row `after`, in log order (`item_log`, `items`).
    fn items_opened_after(&self, after: i64) -> Result<Vec<OpenedItem>, SqlError> {
        self.query(
            "SELECT i.id, i.kind, i.customer, i.asset, i.check_name, i.component, i.rule, i.evidence, l.at_ms
             FROM item_log l JOIN items i ON i.id = l.item_id
             WHERE l.id > ?1 AND l.from_status IS NULL ORDER BY l.id",
            args![after],
            |r| {
                Ok(OpenedItem {
                    id: r.get(0)?,
                    kind: r.get(1)?,
                    customer: r.get(2)?,
                    asset: r.get(3)?,
                    check: r.get(4)?,
                    component: r.get(5)?,
                    rule: r.get(6)?,
                    evidence: r.get(7)?,
                    at_ms: r.get(8)?,
                })
            },
        )
    }
}

impl<S: Sql + ?Sized> Recommendations for S {}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::store::agents::Agents;
    use crate::store::disks::{DiskReading, DiskStore};
    use crate::store::testing::{add_agent, on_both};

    fn part(serial: &str, capacity: Option<u64>) -> Part {
        Part {
            model: "ST4000".into(),
            serial: serial.into(),
            slot: "/dev/sda".into(),
            interface: "ata".into(),
            capacity_bytes: capacity,
        }
    }

    fn new<'a>(p: &'a Part, key: &'a str, urgency: &'a str, due: Option<i64>, at_ms: i64) -> NewRecommendation<'a> {
        NewRecommendation {
            agent_id: "a1",
            host: "db01",
            customer: "acme",
            part_type: "disk",
            part: p,
            part_key: key,
            reason: "reallocated sectors rising",
            evidence: r#"{"disk":"wwn-1"}"#,
            risk: "high",
            urgency,
            due_at_ms: due,
            item_id: None,
            at_ms,
        }
    }

    #[test]
    fn recommendation_glances_show_each_status_urgency_and_due_date_by_id() {
        on_both(|db| {
            assert_eq!(db.recommendation_glances().unwrap(), []);
            let (p1, p2) = (part("S1", None), part("S2", None));
            let first = db
                .insert_recommendation(&new(&p1, "db01/disk/S1", "within_days", Some(500), 100))
                .unwrap();
            let second = db
                .insert_recommendation(&new(&p2, "db01/disk/S2", "replace_now", None, 200))
                .unwrap();
            let glance = |id, urgency: &str, due_at_ms| RecommendationGlance {
                id,
                status: "open".into(),
                urgency: urgency.into(),
                due_at_ms,
            };
            assert_eq!(
                db.recommendation_glances().unwrap(),
                [
                    glance(first, "within_days", Some(500)),
                    glance(second, "replace_now", None)
                ]
            );
        });
    }

    #[test]
    fn one_active_recommendation_per_part_and_its_fields_read_back() {
        on_both(|db| {
            let p = part("S1", Some(4_000_787_030_016));
            assert_eq!(db.active_recommendation("db01/disk/S1").unwrap(), None);
            assert_eq!(db.last_recommendation("db01/disk/S1").unwrap(), None);
            let id = db
                .insert_recommendation(&new(&p, "db01/disk/S1", "within_days", Some(500), 100))
                .unwrap();
            let rec = db.recommendation(id).unwrap().unwrap();
            assert_eq!(rec.part, p);
            assert_eq!(rec.part_key, "db01/disk/S1");
            assert_eq!(rec.evidence, serde_json::json!({"disk": "wwn-1"}));
            assert_eq!((rec.status.as_str(), rec.urgency.as_str()), ("open", "within_days"));
            assert_eq!(
                (rec.due_at_ms, rec.item_id, rec.dismissed_reason),
                (Some(500), None, None)
            );
            assert_eq!((rec.created_at_ms, rec.updated_at_ms), (100, 100));
            assert_eq!(db.recommendation(id + 1000).unwrap(), None);

            let second = db.insert_recommendation(&new(&p, "db01/disk/S1", "replace_now", Some(200), 200));
            assert!(second.is_err_and(|e| e.is_unique_violation()));

            assert_eq!(
                db.active_recommendation("db01/disk/S1").unwrap(),
                Some(Standing {
                    id,
                    urgency: "within_days".into(),
                    due_at_ms: Some(500),
                })
            );
            db.set_recommendation_status(id, "dismissed", Some("under warranty swap"), 300)
                .unwrap();
            assert_eq!(db.active_recommendation("db01/disk/S1").unwrap(), None);
            assert_eq!(
                db.last_recommendation("db01/disk/S1").unwrap(),
                Some(LastWord {
                    status: "dismissed".into(),
                    urgency: "within_days".into(),
                    reason: "reallocated sectors rising".into(),
                })
            );
            // Dismissed, the part may have a new active recommendation.
            let again = db
                .insert_recommendation(&new(&p, "db01/disk/S1", "replace_now", Some(400), 400))
                .unwrap();
            assert!(again > id);
            assert_eq!(db.last_recommendation("db01/disk/S1").unwrap().unwrap().status, "open");
            // A later status change keeps the dismissal reason it had.
            db.set_recommendation_status(id, "dismissed", None, 500).unwrap();
            let old = db.recommendation(id).unwrap().unwrap();
            assert_eq!(old.dismissed_reason.as_deref(), Some("under warranty swap"));
            assert_eq!(old.updated_at_ms, 500);
        });
    }

    #[test]
    fn escalating_and_refreshing_link_an_item_only_when_there_was_none() {
        on_both(|db| {
            let p = part("", None);
            let id = db
                .insert_recommendation(&new(&p, "db01/disk//dev/sda", "watch", None, 100))
                .unwrap();
            db.refresh_recommendation(id, r#"{"n":2}"#, Some(7), 200).unwrap();
            let rec = db.recommendation(id).unwrap().unwrap();
            assert_eq!((rec.item_id, rec.updated_at_ms), (Some(7), 200));
            assert_eq!(rec.evidence, serde_json::json!({"n": 2}));
            assert_eq!(rec.part.capacity_bytes, None);
            db.escalate_recommendation(
                id,
                &Escalation {
                    urgency: "replace_now",
                    due_at_ms: Some(300),
                    risk: "critical",
                    reason: "pending sectors",
                    evidence: r#"{"n":3}"#,
                    item_id: Some(8),
                    at_ms: 300,
                },
            )
            .unwrap();
            let rec = db.recommendation(id).unwrap().unwrap();
            assert_eq!(rec.item_id, Some(7));
            assert_eq!(
                (rec.urgency.as_str(), rec.due_at_ms, rec.risk.as_str()),
                ("replace_now", Some(300), "critical")
            );
            assert_eq!((rec.reason.as_str(), rec.updated_at_ms), ("pending sectors", 300));
            assert_eq!(rec.evidence, serde_json::json!({"n": 3}));
        });
    }

    #[test]
    fn lists_filter_and_order_most_urgent_first_and_counts_the_active_ones() {
        on_both(|db| {
            let (p1, p2, p3) = (part("S1", None), part("S2", None), part("S3", None));
            let watch = db.insert_recommendation(&new(&p1, "k1", "watch", None, 1)).unwrap();
            let later = db
                .insert_recommendation(&new(&p2, "k2", "within_days", Some(900), 2))
                .unwrap();
            let now = db
                .insert_recommendation(&new(&p3, "k3", "within_days", Some(100), 3))
                .unwrap();
            let all = |f: RecommendationFilter<'_>| -> Vec<i64> {
                db.list_recommendations(&f).unwrap().into_iter().map(|r| r.id).collect()
            };
            assert_eq!(all(RecommendationFilter::default()), vec![now, later, watch]);
            assert_eq!(
                all(RecommendationFilter {
                    urgency: Some("watch"),
                    ..Default::default()
                }),
                vec![watch]
            );
            assert_eq!(
                all(RecommendationFilter {
                    host: Some("db02"),
                    ..Default::default()
                }),
                Vec::<i64>::new()
            );
            db.set_recommendation_status(later, "done", None, 10).unwrap();
            assert_eq!(
                all(RecommendationFilter {
                    status: Some("open"),
                    host: Some("db01"),
                    customer: Some("acme"),
                    urgency: None,
                }),
                vec![now, watch]
            );
            let mut counts = db.active_recommendation_counts().unwrap();
            counts.sort();
            assert_eq!(counts, vec![("watch".into(), 1), ("within_days".into(), 1)]);
            assert_eq!(db.active_recommendations_for_serial("db01", "S3").unwrap(), vec![now]);
            assert_eq!(
                db.active_recommendations_for_serial("db01", "S2").unwrap(),
                Vec::<i64>::new()
            );
            assert_eq!(
                db.active_recommendations_for_serial("db02", "S3").unwrap(),
                Vec::<i64>::new()
            );
        });
    }

    fn item(db: &dyn Sql, kind: &str, check: &str, component: &str, status: &str) -> i64 {
        use crate::store::items::{ItemRow, Items, NewLog};
        let id = db
            .insert_item(&ItemRow {
                id: 0,
                kind: kind.into(),
                customer: "acme".into(),
                asset: "db01".into(),
                check: check.into(),
                component: component.into(),
                status: status.into(),
                hold_reason: None,
                severity: "warning".into(),
                rule: check.into(),
                opened_at_ms: 0,
                updated_at_ms: 0,
                last_firing_at_ms: 0,
                cleared_at_ms: None,
                resolved_at_ms: None,
                occurrences: 1,
                reopen_count: 0,
                recurrence_of: None,
                promoted_from: None,
                flapping: false,
                touched_by_person: false,
                status_before_recovery: None,
                evidence: "{}".into(),
                recent_changes: "[]".into(),
            })
            .unwrap();
        db.append_log(&NewLog {
            item_id: id,
            at_ms: id * 10,
            actor: "rule",
            from_status: None,
            to_status: status,
            comment: None,
            visibility: "internal",
        })
        .unwrap();
        id
    }

    #[test]
    fn the_reads_predict_needs_find_items_disks_and_agents() {
        on_both(|db| {
            let finding = item(db, "finding", "smart", "wwn-1", "open");
            let case = item(db, "case", "raid", "wwn-1", "open");
            let fixed = item(db, "finding", "crc", "wwn-1", "fixed");
            assert_eq!(db.active_item_about("acme", "db01", "wwn-1").unwrap(), Some(case));
            assert_eq!(db.active_item_about("acme", "db01", "wwn-2").unwrap(), None);
            assert_eq!(db.active_item_about("globex", "db01", "wwn-1").unwrap(), None);
            assert_eq!(db.open_findings_about("db01", "wwn-1").unwrap(), vec![finding]);
            let last_log: i64 = db.value("SELECT MIN(id) FROM item_log", args![]).unwrap().unwrap();
            let opened = db.items_opened_after(last_log).unwrap();
            assert_eq!(opened.iter().map(|o| o.id).collect::<Vec<_>>(), vec![case, fixed]);
            assert_eq!(
                (
                    opened[0].kind.as_str(),
                    opened[0].check.as_str(),
                    opened[0].rule.as_str()
                ),
                ("case", "raid", "raid")
            );
            assert_eq!(
                (opened[0].component.as_str(), opened[0].evidence.as_str()),
                ("wwn-1", "{}")
            );

            assert_eq!(db.newest_agent_on_host("db01").unwrap(), None);
            add_agent(db, "a1", "db01");
            db.execute("UPDATE agents SET enrolled_at_ms = 5 WHERE agent_id = 'a1'", args![])
                .unwrap();
            add_agent(db, "a0", "db01");
            assert_eq!(db.newest_agent_on_host("db01").unwrap().as_deref(), Some("a1"));
            for (key, serial) in [("wwn-2", "S2"), ("wwn-1", "S1"), ("nvme-1", "S1")] {
                let reading = DiskReading {
                    key,
                    device: "/dev/sda",
                    model: "ST4000",
                    serial,
                    level: "ok",
                    scanned_at_ms: 1,
                    doc: "{}",
                };
                db.put_latest_disk("a1", &reading).unwrap();
            }
            let docs = db.disk_docs_by_key("a1").unwrap();
            assert_eq!(
                docs.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
                vec!["nvme-1", "wwn-1", "wwn-2"]
            );
            assert_eq!(db.disk_keys_with_serial("db01", "S1").unwrap(), vec!["nvme-1", "wwn-1"]);
            assert_eq!(db.disk_keys_with_serial("db02", "S1").unwrap(), Vec::<String>::new());
        });
    }
}
