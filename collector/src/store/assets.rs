//! The asset archive: each agent's inventory versions (`inventory`, the
//! document as JSON) and the dated changes between two versions
//! (`asset_changes`). What changed is the `assets` module's to decide; this
//! module keeps the rows.

use caretaker_shared::wire::Inventory;

use super::sql::{Row, Sql, SqlError, SqlExt, args};

/// One change between two inventory versions, as stored (what changed is
/// the domain's to find).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Change {
    /// Machine-readable kind: `disk_replaced`, `kernel_changed`, ...
    pub kind: String,
    /// What changed: a disk or NIC name, a DIMM slot, `kernel`, ...
    pub subject: String,
    /// The value before, "" for an addition.
    pub old: String,
    /// The value after, "" for a removal.
    pub new: String,
    /// One line for a person.
    pub summary: String,
}

/// Schema of the asset changes on SQLite, applied as one migration by
/// [`crate::store`]: what changed between two inventory versions, one row
/// per change, dated by the report that brought the new version.
pub const CHANGES_MIGRATION: &str = r#"
CREATE TABLE asset_changes (
    agent_id TEXT NOT NULL REFERENCES agents(agent_id) ON DELETE CASCADE,
    at_ms INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    idx INTEGER NOT NULL,
    kind TEXT NOT NULL,
    subject TEXT NOT NULL,
    old TEXT NOT NULL,
    new TEXT NOT NULL,
    summary TEXT NOT NULL,
    PRIMARY KEY (agent_id, seq, idx)
) WITHOUT ROWID;
CREATE INDEX asset_changes_agent_time ON asset_changes(agent_id, at_ms);
"#;

/// One stored asset change (for the API).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AssetChange {
    pub at_ms: i64,
    /// Sequence number of the report that brought the new inventory.
    pub seq: u64,
    pub kind: String,
    pub subject: String,
    pub old: String,
    pub new: String,
    pub summary: String,
}

/// An inventory version as stored: when it was collected and the document
/// (JSON text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InventoryVersion {
    pub seq: u64,
    pub collected_at_ms: i64,
    pub doc: String,
}

fn seq(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn change(r: &Row<'_>) -> Result<AssetChange, SqlError> {
    Ok(AssetChange {
        at_ms: r.get(0)?,
        seq: seq(r.get(1)?),
        kind: r.get(2)?,
        subject: r.get(3)?,
        old: r.get(4)?,
        new: r.get(5)?,
        summary: r.get(6)?,
    })
}

const CHANGE_COLUMNS: &str = "at_ms, seq, kind, subject, old, new, summary";

/// The asset archive, on any connection or transaction.
pub trait Assets: Sql {
    /// Stores a new inventory version of agent `agent_id`, brought by report `seq`.
    fn add_inventory_version(&self, agent_id: &str, seq: u64, collected_at_ms: i64, doc: &str) -> Result<(), SqlError> {
        self.execute(
            "INSERT INTO inventory(agent_id, seq, collected_at_ms, doc) VALUES (?1, ?2, ?3, ?4)",
            args![agent_id, seq, collected_at_ms, doc],
        )?;
        Ok(())
    }

    /// Stores what changed with the inventory version report `seq` brought,
    /// in diff order, dated `at_ms`.
    fn add_asset_changes(&self, agent_id: &str, at_ms: i64, seq: u64, changes: &[Change]) -> Result<(), SqlError> {
        for (i, c) in changes.iter().enumerate() {
            self.execute(
                "INSERT INTO asset_changes(agent_id, at_ms, seq, idx, kind, subject, old, new, summary)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                args![agent_id, at_ms, seq, i, &c.kind, &c.subject, &c.old, &c.new, &c.summary],
            )?;
        }
        Ok(())
    }

    /// The newest inventory agent `agent_id` sent, when it can be read.
    fn latest_inventory(&self, agent_id: &str) -> Result<Option<Inventory>, SqlError> {
        let doc: Option<String> = self.value(
            "SELECT doc FROM inventory WHERE agent_id = ?1 ORDER BY seq DESC LIMIT 1",
            args![agent_id],
        )?;
        Ok(doc.and_then(|d| serde_json::from_str(&d).ok()))
    }

    /// The inventory version in force at `before_ms`: the newest collected
    /// before it; `None` when the agent had sent none by then.
    fn inventory_before(&self, agent_id: &str, before_ms: i64) -> Result<Option<InventoryVersion>, SqlError> {
        self.query_opt(
            "SELECT seq, collected_at_ms, doc FROM inventory WHERE agent_id = ?1 AND collected_at_ms < ?2
             ORDER BY seq DESC LIMIT 1",
            args![agent_id, before_ms],
            |r| {
                Ok(InventoryVersion {
                    seq: seq(r.get(0)?),
                    collected_at_ms: r.get(1)?,
                    doc: r.get(2)?,
                })
            },
        )
    }

    /// Stored inventory versions of one agent: (seq, collected_at_ms), newest first.
    fn inventory_versions(&self, agent_id: &str) -> Result<Vec<(u64, i64)>, SqlError> {
        self.query(
            "SELECT seq, collected_at_ms FROM inventory WHERE agent_id = ?1 ORDER BY seq DESC",
            args![agent_id],
            |r| Ok((seq(r.get(0)?), r.get(1)?)),
        )
    }

    /// The newest `limit` asset changes of one agent, newest first (in a
    /// report, in diff order).
    fn asset_changes(&self, agent_id: &str, limit: u32) -> Result<Vec<AssetChange>, SqlError> {
        self.query(
            &format!(
                "SELECT {CHANGE_COLUMNS} FROM asset_changes WHERE agent_id = ?1
                 ORDER BY seq DESC, idx ASC LIMIT ?2"
            ),
            args![agent_id, limit],
            change,
        )
    }

    /// The asset changes of one agent dated in `[from_ms, to_ms)`, oldest
    /// first (in a report, in diff order).
    fn asset_changes_in(&self, agent_id: &str, from_ms: i64, to_ms: i64) -> Result<Vec<AssetChange>, SqlError> {
        self.query(
            &format!(
                "SELECT {CHANGE_COLUMNS} FROM asset_changes WHERE agent_id = ?1 AND at_ms >= ?2 AND at_ms < ?3
                 ORDER BY seq, idx"
            ),
            args![agent_id, from_ms, to_ms],
            change,
        )
    }
}

impl<S: Sql + ?Sized> Assets for S {}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::store::testing::{add_agent, on_both};

    fn inv(kernel: &str) -> Inventory {
        Inventory {
            kernel: kernel.into(),
            ..Inventory::default()
        }
    }

    #[test]
    fn versions_changes_and_the_inventory_at_a_time() {
        on_both(|db| {
            add_agent(db, "a1", "db1");
            assert_eq!(db.latest_inventory("a1").unwrap(), None);
            assert_eq!(db.inventory_before("a1", i64::MAX).unwrap(), None);
            for (seq, at, kernel) in [(1, 1_000, "6.1"), (5, 5_000, "6.2"), (9, 9_000, "6.3")] {
                let doc = serde_json::to_string(&inv(kernel)).unwrap();
                db.add_inventory_version("a1", seq, at, &doc).unwrap();
            }
            let k = |c: &str| Change {
                kind: "kernel_changed".into(),
                subject: "kernel".into(),
                old: "a".into(),
                new: "b".into(),
                summary: c.into(),
            };
            db.add_asset_changes("a1", 5_000, 5, &[k("first of 5"), k("second of 5")])
                .unwrap();
            db.add_asset_changes("a1", 9_000, 9, &[k("only of 9")]).unwrap();

            assert_eq!(db.latest_inventory("a1").unwrap().unwrap().kernel, "6.3");
            assert_eq!(
                db.inventory_versions("a1").unwrap(),
                vec![(9, 9_000), (5, 5_000), (1, 1_000)]
            );
            let at = db.inventory_before("a1", 9_000).unwrap().unwrap();
            assert_eq!((at.seq, at.collected_at_ms), (5, 5_000));
            let doc: Inventory = serde_json::from_str(&at.doc).unwrap();
            assert_eq!(doc.kernel, "6.2");
            assert_eq!(
                db.inventory_before("a1", 1_000).unwrap(),
                None,
                "collected at the end is after it"
            );

            let newest: Vec<String> = db
                .asset_changes("a1", 2)
                .unwrap()
                .into_iter()
                .map(|c| c.summary)
                .collect();
            assert_eq!(newest, ["only of 9", "first of 5"]);
            let all = db.asset_changes("a1", 10).unwrap();
            assert_eq!(
                all[1],
                AssetChange {
                    at_ms: 5_000,
                    seq: 5,
                    kind: "kernel_changed".into(),
                    subject: "kernel".into(),
                    old: "a".into(),
                    new: "b".into(),
                    summary: "first of 5".into(),
                }
            );
            let period: Vec<String> = db
                .asset_changes_in("a1", 0, 9_000)
                .unwrap()
                .into_iter()
                .map(|c| c.summary)
                .collect();
            assert_eq!(period, ["first of 5", "second of 5"], "oldest first, the end excluded");
            assert!(db.asset_changes("a2", 10).unwrap().is_empty());
        });
    }
}
