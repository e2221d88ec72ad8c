//! Held-signal rows: the assets signals may open items on (`known_assets`),
//! maintenance windows (`maintenance_windows`) and the signals held back
//! (`held_signals`). When a signal is held, what a storm is and when a held
//! signal is let through are `cases::hold`'s to decide; this module
//! keeps the rows.

use serde::Serialize;

use super::items::INACTIVE_STATUSES;
use super::sql::{Row, Sql, SqlError, SqlExt, args};

/// Schema on SQLite, applied as one migration by [`crate::store`].
pub const MIGRATION: &str = r#"
-- Assets signals may open items on: a host is known once its inventory is
-- stored. `identifiers` (a JSON array) holds the MACs, the machine id and
-- any name an engineer mapped to it, so a signal naming one of them lands
-- on this asset.
CREATE TABLE known_assets (
    name TEXT PRIMARY KEY,
    agent_id TEXT,
    identifiers TEXT NOT NULL DEFAULT '[]',
    since_ms INTEGER NOT NULL
);
INSERT OR IGNORE INTO known_assets (name, agent_id, since_ms)
    SELECT a.host, a.agent_id, MIN(i.collected_at_ms)
    FROM agents a JOIN inventory i ON i.agent_id = a.agent_id GROUP BY a.agent_id;
CREATE TABLE maintenance_windows (
    id INTEGER PRIMARY KEY,
    customer TEXT NOT NULL,
    -- NULL: every asset of the customer.
    asset TEXT,
    starts_at_ms INTEGER NOT NULL,
    ends_at_ms INTEGER NOT NULL CHECK (ends_at_ms > starts_at_ms),
    reason TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL
);
CREATE INDEX maintenance_windows_scope ON maintenance_windows(customer, ends_at_ms);
CREATE TABLE held_signals (
    id INTEGER PRIMARY KEY,
    reason TEXT NOT NULL CHECK (reason IN ('unmapped', 'maintenance', 'storm')),
    -- The maintenance window or the storm case holding it.
    holder INTEGER,
    kind TEXT NOT NULL CHECK (kind IN ('finding', 'case')),
    customer TEXT NOT NULL,
    asset TEXT NOT NULL,
    check_name TEXT NOT NULL,
    component TEXT NOT NULL,
    rule TEXT NOT NULL,
    severity TEXT NOT NULL,
    first_at_ms INTEGER NOT NULL,
    last_at_ms INTEGER NOT NULL,
    last_firing_at_ms INTEGER NOT NULL,
    occurrences INTEGER NOT NULL,
    firing INTEGER NOT NULL,
    evidence TEXT NOT NULL,
    released_at_ms INTEGER,
    -- The item it opened or joined when released, if any.
    released_to INTEGER REFERENCES items(id)
);
CREATE UNIQUE INDEX held_signals_one ON held_signals(kind, customer, asset, check_name, component)
    WHERE released_at_ms IS NULL;
CREATE INDEX held_signals_holder ON held_signals(reason, holder) WHERE released_at_ms IS NULL;
"#;

// --- known assets ---------------------------------------------------------------

/// `s` escaped for a `LIKE` pattern, with `!` as the escape character.
pub(super) fn like_escaped(s: &str) -> String {
    let mut p = String::with_capacity(s.len() + 2);
    for c in s.chars() {
        if matches!(c, '!' | '%' | '_') {
            p.push('!');
        }
        p.push(c);
    }
    p
}

/// The known assets whose identifiers' text contains `?1` (escaped by
/// [`like_escaped`]). The pattern is an expression, not the bare parameter:
/// SQLite prepares a statement again at each new value bound as a `LIKE`
/// pattern (the value may change its plan), and this runs for every held
/// signal.
const KNOWN_BY_IDENTIFIER: &str = "SELECT name, identifiers FROM known_assets \
     WHERE identifiers LIKE ('%' || ?1 || '%') ESCAPE '!' ORDER BY name";

pub trait KnownAssets: Sql {
    /// Whether an asset is known by exactly this name.
    fn is_known_asset(&self, name: &str) -> Result<bool, SqlError> {
        Ok(self
            .query_opt("SELECT name FROM known_assets WHERE name = ?1", args![name], |_| Ok(()))?
            .is_some())
    }

    /// The known asset `name` stands for: the asset of that name, else the
    /// first (by name) with `name` among its identifiers.
    fn find_known_asset(&self, name: &str) -> Result<Option<String>, SqlError> {
        if self.is_known_asset(name)? {
            return Ok(Some(name.to_owned()));
        }
        // The identifiers are a JSON array of strings: the pattern finds the
        // rows whose text holds the name as one JSON string (SQLite's LIKE is
        // wider, ignoring ASCII case), and the decoded array decides.
        let quoted = serde_json::to_string(name).unwrap_or_default();
        let rows = self.query(KNOWN_BY_IDENTIFIER, args![like_escaped(&quoted)], |r| {
            Ok((r.get::<String>(0)?, r.get::<String>(1)?))
        })?;
        Ok(rows.into_iter().find_map(|(asset, ids)| {
            let ids: Vec<String> = serde_json::from_str(&ids).unwrap_or_default();
            ids.iter().any(|i| i == name).then_some(asset)
        }))
    }

    /// The identifiers of known asset `name` as stored (a JSON array), if it
    /// is known.
    fn known_asset_identifiers(&self, name: &str) -> Result<Option<String>, SqlError> {
        self.value("SELECT identifiers FROM known_assets WHERE name = ?1", args![name])
    }

    /// Records asset `name` as known since `since_ms` with these identifiers
    /// (a JSON array, replacing those it had); an agent id given replaces
    /// the one it had, and the first `since_ms` stands.
    fn upsert_known_asset(
        &self,
        name: &str,
        agent_id: Option<&str>,
        identifiers: &str,
        since_ms: i64,
    ) -> Result<(), SqlError> {
        self.execute(
            "INSERT INTO known_assets (name, agent_id, identifiers, since_ms) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (name) DO UPDATE SET agent_id = COALESCE(excluded.agent_id, known_assets.agent_id), \
             identifiers = excluded.identifiers",
            args![name, agent_id, identifiers, since_ms],
        )?;
        Ok(())
    }
}

impl<S: Sql + ?Sized> KnownAssets for S {}

// --- maintenance windows --------------------------------------------------------

/// A maintenance window: while it lasts no finding or case opens for its
/// asset (or every asset of its customer when `asset` is `None`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Window {
    pub id: i64,
    pub customer: String,
    pub asset: Option<String>,
    pub starts_at_ms: i64,
    pub ends_at_ms: i64,
    pub reason: String,
    pub created_by: String,
    pub created_at_ms: i64,
}

const WINDOW_COLUMNS: &str = "id, customer, asset, starts_at_ms, ends_at_ms, reason, created_by, created_at_ms";

fn window_from(r: &Row<'_>) -> Result<Window, SqlError> {
    Ok(Window {
        id: r.get(0)?,
        customer: r.get(1)?,
        asset: r.get(2)?,
        starts_at_ms: r.get(3)?,
        ends_at_ms: r.get(4)?,
        reason: r.get(5)?,
        created_by: r.get(6)?,
        created_at_ms: r.get(7)?,
    })
}

/// Maintenance windows, on any connection or transaction.
pub trait MaintenanceWindows: Sql {
    /// The window covering `asset` of `customer` at `at_ms` (the one ending
    /// last), if any.
    fn window_covering(&self, customer: &str, asset: &str, at_ms: i64) -> Result<Option<i64>, SqlError> {
        self.value(
            "SELECT id FROM maintenance_windows WHERE customer = ?1 AND (asset IS NULL OR asset = ?2) \
             AND starts_at_ms <= ?3 AND ends_at_ms > ?3 ORDER BY ends_at_ms DESC, id LIMIT 1",
            args![customer, asset, at_ms],
        )
    }

    /// Stores window `w` (its id ignored) as created at `created_at_ms`; its id.
    fn insert_window(&self, w: &Window, created_at_ms: i64) -> Result<i64, SqlError> {
        self.query_one(
            "INSERT INTO maintenance_windows (customer, asset, starts_at_ms, ends_at_ms, reason, created_by, \
             created_at_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id",
            args![
                &w.customer,
                &w.asset,
                w.starts_at_ms,
                w.ends_at_ms,
                &w.reason,
                &w.created_by,
                created_at_ms
            ],
            |r| r.get(0),
        )
    }

    /// Window `id`, if it exists.
    fn window_by_id(&self, id: i64) -> Result<Option<Window>, SqlError> {
        self.query_opt(
            &format!("SELECT {WINDOW_COLUMNS} FROM maintenance_windows WHERE id = ?1"),
            args![id],
            window_from,
        )
    }

    /// Windows ending after `after_ms` (all when `None`), of one customer
    /// (all when `None`), soonest start first.
    fn windows_ending_after(&self, after_ms: Option<i64>, customer: Option<&str>) -> Result<Vec<Window>, SqlError> {
        self.query(
            &format!(
                "SELECT {WINDOW_COLUMNS} FROM maintenance_windows WHERE (CAST(?1 AS BIGINT) IS NULL OR ends_at_ms > ?1) \
                 AND (CAST(?2 AS TEXT) IS NULL OR customer = ?2) ORDER BY starts_at_ms, id"
            ),
            args![after_ms, customer],
            window_from,
        )
    }

    /// Removes window `id`; whether it existed.
    fn delete_window(&self, id: i64) -> Result<bool, SqlError> {
        Ok(self.execute("DELETE FROM maintenance_windows WHERE id = ?1", args![id])? > 0)
    }

    /// Moves the end of window `id` to `ends_at_ms`; whether it existed.
    fn set_window_end(&self, id: i64, ends_at_ms: i64) -> Result<bool, SqlError> {
        Ok(self.execute(
            "UPDATE maintenance_windows SET ends_at_ms = ?2 WHERE id = ?1",
            args![id, ends_at_ms],
        )? > 0)
    }
}

impl<S: Sql + ?Sized> MaintenanceWindows for S {}

// --- held signals ---------------------------------------------------------------

/// The identity a signal is held under: one held row per key while held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldKey<'a> {
    /// `finding` or `case`.
    pub kind: &'a str,
    pub customer: &'a str,
    pub asset: &'a str,
    pub check: &'a str,
    pub component: &'a str,
}

/// One evaluation of a held signal, as written to its row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HeldEvaluation<'a> {
    /// `unmapped`, `maintenance` or `storm`.
    pub reason: &'a str,
    /// The maintenance window or storm case holding it.
    pub holder: Option<i64>,
    pub rule: &'a str,
    pub severity: &'a str,
    pub at_ms: i64,
    pub firing: bool,
    /// The evidence (JSON).
    pub evidence: &'a str,
}

/// A held-signal row as stored; the reason and the evidence (JSON) are
/// read as text, for the domain to decode.
#[derive(Debug, Clone, PartialEq)]
pub struct HeldRow {
    pub id: i64,
    pub reason: String,
    pub holder: Option<i64>,
    pub kind: String,
    pub customer: String,
    pub asset: String,
    pub check: String,
    pub component: String,
    pub rule: String,
    pub severity: String,
    pub first_at_ms: i64,
    pub last_at_ms: i64,
    pub last_firing_at_ms: i64,
    pub occurrences: i64,
    pub firing: bool,
    pub evidence: String,
    pub released_at_ms: Option<i64>,
    pub released_to: Option<i64>,
}

/// An active storm case with how many signals attached to it fire now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StormCase {
    pub id: i64,
    pub customer: String,
    pub last_firing_at_ms: i64,
    pub firing_attached: i64,
}

const HELD_COLUMNS: &str = "id, reason, holder, kind, customer, asset, check_name, component, rule, \
    severity, first_at_ms, last_at_ms, last_firing_at_ms, occurrences, firing, evidence, released_at_ms, released_to";

fn held_from(r: &Row<'_>) -> Result<HeldRow, SqlError> {
    Ok(HeldRow {
        id: r.get(0)?,
        reason: r.get(1)?,
        holder: r.get(2)?,
        kind: r.get(3)?,
        customer: r.get(4)?,
        asset: r.get(5)?,
        check: r.get(6)?,
        component: r.get(7)?,
        rule: r.get(8)?,
        severity: r.get(9)?,
        first_at_ms: r.get(10)?,
        last_at_ms: r.get(11)?,
        last_firing_at_ms: r.get(12)?,
        occurrences: r.get(13)?,
        firing: r.get(14)?,
        evidence: r.get(15)?,
        released_at_ms: r.get(16)?,
        released_to: r.get(17)?,
    })
}

/// Held signals and the storm cases holding them, on any connection or
/// transaction.
pub trait HeldSignals: Sql {
    /// The row holding `key` now, if any: its id, reason and holder.
    fn held_for_key(&self, key: &HeldKey<'_>) -> Result<Option<(i64, String, Option<i64>)>, SqlError> {
        self.query_opt(
            "SELECT id, reason, holder FROM held_signals WHERE released_at_ms IS NULL AND kind = ?1 \
             AND customer = ?2 AND asset = ?3 AND check_name = ?4 AND component = ?5",
            args![key.kind, key.customer, key.asset, key.check, key.component],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
    }

    /// The keys held now on `asset` of `customer`, as (kind, check,
    /// component).
    fn held_keys_on(&self, customer: &str, asset: &str) -> Result<Vec<(String, String, String)>, SqlError> {
        self.query(
            "SELECT kind, check_name, component FROM held_signals WHERE released_at_ms IS NULL \
             AND kind IN ('finding', 'case') AND customer = ?1 AND asset = ?2",
            args![customer, asset],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
    }

    /// Holds `key` from this first evaluation; the new row's id. A key held
    /// already is refused (a unique violation).
    fn insert_held(&self, key: &HeldKey<'_>, e: &HeldEvaluation<'_>) -> Result<i64, SqlError> {
        self.query_one(
            "INSERT INTO held_signals (reason, holder, kind, customer, asset, check_name, component, rule, \
             severity, first_at_ms, last_at_ms, last_firing_at_ms, occurrences, firing, evidence) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10, ?10, ?11, ?11, ?12) RETURNING id",
            args![
                e.reason,
                e.holder,
                key.kind,
                key.customer,
                key.asset,
                key.check,
                key.component,
                e.rule,
                e.severity,
                e.at_ms,
                e.firing,
                e.evidence
            ],
            |r| r.get(0),
        )
    }

    /// Another evaluation of held row `id`: the reason, holder, rule,
    /// severity and evidence are replaced, a firing one is counted, and the
    /// times only move forward.
    fn update_held(&self, id: i64, e: &HeldEvaluation<'_>) -> Result<(), SqlError> {
        self.execute(
            "UPDATE held_signals SET reason = ?2, holder = ?3, rule = ?4, severity = ?5, \
             last_at_ms = CASE WHEN last_at_ms > ?6 THEN last_at_ms ELSE ?6 END, \
             last_firing_at_ms = CASE WHEN ?7 <> 0 AND ?6 > last_firing_at_ms THEN ?6 ELSE last_firing_at_ms END, \
             occurrences = occurrences + ?7, firing = ?7, evidence = ?8 WHERE id = ?1",
            args![
                id, e.reason, e.holder, e.rule, e.severity, e.at_ms, e.firing, e.evidence
            ],
        )?;
        Ok(())
    }

    /// A clear evaluation of held row `id` at `at_ms`: it no longer fires,
    /// unless it fired at or after that time.
    fn note_held_clear(&self, id: i64, at_ms: i64) -> Result<(), SqlError> {
        self.execute(
            "UPDATE held_signals SET firing = 0, last_at_ms = CASE WHEN last_at_ms > ?2 THEN last_at_ms ELSE ?2 END \
             WHERE id = ?1 AND last_firing_at_ms < ?2",
            args![id, at_ms],
        )?;
        Ok(())
    }

    /// Releases the row holding `key`, if any, at `at_ms` into item
    /// `item_id` (or into none).
    fn release_held_key(&self, key: &HeldKey<'_>, item_id: Option<i64>, at_ms: i64) -> Result<(), SqlError> {
        self.execute(
            "UPDATE held_signals SET released_at_ms = ?6, released_to = ?7 WHERE released_at_ms IS NULL \
             AND kind = ?1 AND customer = ?2 AND asset = ?3 AND check_name = ?4 AND component = ?5",
            args![
                key.kind,
                key.customer,
                key.asset,
                key.check,
                key.component,
                at_ms,
                item_id
            ],
        )?;
        Ok(())
    }

    /// Releases held row `id` at `at_ms` into no item; whether it was held.
    fn release_held(&self, id: i64, at_ms: i64) -> Result<bool, SqlError> {
        Ok(self.execute(
            "UPDATE held_signals SET released_at_ms = ?2 WHERE id = ?1 AND released_at_ms IS NULL",
            args![id, at_ms],
        )? > 0)
    }

    /// The rows held now for `reason` (all when `None`), of one holder (any
    /// when `None`), newest first.
    fn held_now(&self, reason: Option<&str>, holder: Option<i64>) -> Result<Vec<HeldRow>, SqlError> {
        self.query(
            &format!(
                "SELECT {HELD_COLUMNS} FROM held_signals WHERE released_at_ms IS NULL \
                 AND (CAST(?1 AS TEXT) IS NULL OR reason = ?1) AND (CAST(?2 AS BIGINT) IS NULL OR holder = ?2) \
                 ORDER BY id DESC"
            ),
            args![reason, holder],
            held_from,
        )
    }

    /// Every row `holder` ever held for `reason`, newest first.
    fn held_by_holder(&self, reason: &str, holder: i64) -> Result<Vec<HeldRow>, SqlError> {
        self.query(
            &format!("SELECT {HELD_COLUMNS} FROM held_signals WHERE reason = ?1 AND holder = ?2 ORDER BY id DESC"),
            args![reason, holder],
            held_from,
        )
    }

    /// Held row `id`, released or not.
    fn held_row(&self, id: i64) -> Result<Option<HeldRow>, SqlError> {
        self.query_opt(
            &format!("SELECT {HELD_COLUMNS} FROM held_signals WHERE id = ?1"),
            args![id],
            held_from,
        )
    }

    /// How many rows are held now, per reason.
    fn held_counts_by_reason(&self) -> Result<Vec<(String, i64)>, SqlError> {
        self.query(
            "SELECT reason, COUNT(*) FROM held_signals WHERE released_at_ms IS NULL GROUP BY reason ORDER BY reason",
            args![],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
    }

    /// The rows held now whose holder is gone at `now_ms`, oldest first: an
    /// unmapped signal whose asset is now known (by name or identifier), one
    /// whose maintenance window is over (or removed), one whose storm case
    /// has ended.
    fn held_release_candidates(&self, now_ms: i64) -> Result<Vec<HeldRow>, SqlError> {
        let rows = self.query(
            &format!(
                "SELECT {HELD_COLUMNS} FROM held_signals WHERE released_at_ms IS NULL AND ( \
                   reason = 'unmapped' \
                   OR (reason = 'maintenance' AND NOT EXISTS (SELECT 1 FROM maintenance_windows w \
                      WHERE w.id = held_signals.holder AND w.starts_at_ms <= ?1 AND w.ends_at_ms > ?1)) \
                   OR (reason = 'storm' AND NOT EXISTS (SELECT 1 FROM items i WHERE i.id = held_signals.holder \
                      AND i.status NOT IN {INACTIVE_STATUSES})) \
                 ) ORDER BY id"
            ),
            args![now_ms],
            held_from,
        )?;
        let mut due = Vec::with_capacity(rows.len());
        for h in rows {
            if h.reason != "unmapped" || self.find_known_asset(&h.asset)?.is_some() {
                due.push(h);
            }
        }
        Ok(due)
    }

    /// The active storm case holding `key`, if it is attached to one.
    fn storm_holding(&self, key: &HeldKey<'_>) -> Result<Option<i64>, SqlError> {
        self.value(
            &format!(
                "SELECT h.holder FROM held_signals h JOIN items i ON i.id = h.holder \
                 WHERE h.released_at_ms IS NULL AND h.reason = 'storm' AND h.kind = ?1 AND h.customer = ?2 \
                 AND h.asset = ?3 AND h.check_name = ?4 AND h.component = ?5 \
                 AND i.status NOT IN {INACTIVE_STATUSES}"
            ),
            args![key.kind, key.customer, key.asset, key.check, key.component],
        )
    }

    /// How many cases other than `except_check` cases opened for `customer`
    /// after `after_ms`.
    fn cases_opened_after(&self, customer: &str, except_check: &str, after_ms: i64) -> Result<i64, SqlError> {
        self.query_one(
            "SELECT COUNT(*) FROM items WHERE kind = 'case' AND customer = ?1 \
             AND check_name <> ?2 AND opened_at_ms > ?3",
            args![customer, except_check, after_ms],
            |r| r.get(0),
        )
    }

    /// The active (and not recovered) cases of check `storm_check`, with the
    /// firing signals each holds, oldest first.
    fn active_storm_cases(&self, storm_check: &str) -> Result<Vec<StormCase>, SqlError> {
        self.query(
            &format!(
                "SELECT i.id, i.customer, i.last_firing_at_ms, \
                   (SELECT COUNT(*) FROM held_signals h WHERE h.released_at_ms IS NULL AND h.reason = 'storm' \
                      AND h.holder = i.id AND h.firing <> 0) \
                 FROM items i WHERE i.kind = 'case' AND i.check_name = ?1 \
                   AND i.status NOT IN {INACTIVE_STATUSES} AND i.status <> 'recovered' ORDER BY i.id"
            ),
            args![storm_check],
            |r| {
                Ok(StormCase {
                    id: r.get(0)?,
                    customer: r.get(1)?,
                    last_firing_at_ms: r.get(2)?,
                    firing_attached: r.get(3)?,
                })
            },
        )
    }

    /// How many signals storm case `id` holds now.
    fn storm_attached_count(&self, id: i64) -> Result<i64, SqlError> {
        self.query_one(
            "SELECT COUNT(*) FROM held_signals WHERE released_at_ms IS NULL AND reason = 'storm' AND holder = ?1",
            args![id],
            |r| r.get(0),
        )
    }
}

impl<S: Sql + ?Sized> HeldSignals for S {}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::store::sql::Db;
    use crate::store::testing::on_both;

    fn key<'a>(asset: &'a str, check: &'a str) -> HeldKey<'a> {
        HeldKey {
            kind: "case",
            customer: "acme",
            asset,
            check,
            component: "",
        }
    }

    fn eval<'a>(reason: &'a str, holder: Option<i64>, at_ms: i64, firing: bool) -> HeldEvaluation<'a> {
        HeldEvaluation {
            reason,
            holder,
            rule: "r",
            severity: "critical",
            at_ms,
            firing,
            evidence: r#"{"at":1}"#,
        }
    }

    /// A case item of `check` on `asset` in `status`, opened at `at_ms`.
    fn item(db: &Db, asset: &str, check: &str, status: &str, at_ms: i64) -> i64 {
        db.query_one(
            "INSERT INTO items (kind, customer, asset, check_name, status, severity, rule, opened_at_ms, \
             updated_at_ms, last_firing_at_ms, occurrences, evidence) \
             VALUES ('case', 'acme', ?1, ?2, ?3, 'major', ?2, ?4, ?4, ?4, 1, '{}') RETURNING id",
            args![asset, check, status, at_ms],
            |r| r.get(0),
        )
        .unwrap()
    }

    fn window(asset: Option<&str>, starts_at_ms: i64, ends_at_ms: i64) -> Window {
        Window {
            id: 0,
            customer: "acme".into(),
            asset: asset.map(String::from),
            starts_at_ms,
            ends_at_ms,
            reason: "firmware".into(),
            created_by: "ops".into(),
            created_at_ms: 0,
        }
    }

    /// A held signal looks its asset up by identifier at every report: the
    /// statement is prepared once, not again for each name it is given.
    #[test]
    fn a_lookup_by_identifier_is_not_prepared_again_for_each_name() {
        let db = Db::sqlite(crate::store::open_in_memory().unwrap());
        db.upsert_known_asset("db01", None, r#"["52:54:00:12:34:56"]"#, 0)
            .unwrap();
        for name in ["52:54:00:12:34:56", "nowhere", "ILO1", "52:54:00:12:34:56"] {
            db.find_known_asset(name).unwrap();
        }
        let conn = db.as_sqlite().unwrap();
        let st = conn.prepare_cached(KNOWN_BY_IDENTIFIER).unwrap();
        assert_eq!(st.get_status(rusqlite::StatementStatus::RePrepare), 0);
    }

    #[test]
    fn a_known_asset_is_found_by_name_or_by_one_of_its_identifiers_only() {
        on_both(|db| {
            assert!(!db.is_known_asset("db01").unwrap());
            assert_eq!(db.known_asset_identifiers("db01").unwrap(), None);
            db.upsert_known_asset(
                "db01",
                Some("agent-1"),
                r#"["52:54:00:12:34:56","a_b","x%y","q\"\\z"]"#,
                10,
            )
            .unwrap();
            // A later upsert without an agent keeps the agent and the first time.
            db.upsert_known_asset("db01", None, r#"["52:54:00:12:34:56","a_b","x%y","q\"\\z","ILO1"]"#, 20)
                .unwrap();
            let row = db
                .query_one(
                    "SELECT agent_id, since_ms FROM known_assets WHERE name = 'db01'",
                    args![],
                    |r| Ok((r.get::<Option<String>>(0)?, r.get::<i64>(1)?)),
                )
                .unwrap();
            assert_eq!(row, (Some("agent-1".to_string()), 10));
            assert!(db.is_known_asset("db01").unwrap());
            assert!(db.known_asset_identifiers("db01").unwrap().unwrap().contains("ILO1"));
            db.upsert_known_asset("a_b", None, "[]", 0).unwrap();
            for (name, found) in [
                ("db01", Some("db01")),
                ("52:54:00:12:34:56", Some("db01")),
                ("ILO1", Some("db01")),
                // Case matters, though SQLite's LIKE ignores it.
                ("ilo1", None),
                // The asset named so wins over an identifier of another.
                ("a_b", Some("a_b")),
                // LIKE's wildcards in a name are plain characters.
                ("axb", None),
                ("x%y", Some("db01")),
                ("xzzy", None),
                ("q\"\\z", Some("db01")),
                // Part of an identifier is not one.
                ("52:54:00", None),
                ("nowhere", None),
            ] {
                assert_eq!(
                    db.find_known_asset(name).unwrap().as_deref(),
                    found,
                    "{name} on {:?}",
                    db.dialect()
                );
            }
        });
    }

    #[test]
    fn windows_are_stored_found_moved_and_removed() {
        on_both(|db| {
            let all = db.insert_window(&window(None, 100, 1_000), 50).unwrap();
            let host = db.insert_window(&window(Some("web1"), 200, 2_000), 60).unwrap();
            assert_ne!(all, host);
            let w = db.window_by_id(host).unwrap().unwrap();
            assert_eq!(
                w,
                Window {
                    id: host,
                    created_at_ms: 60,
                    ..window(Some("web1"), 200, 2_000)
                }
            );
            assert_eq!(db.window_by_id(host + 100).unwrap(), None);
            // The window ending last covers web1; web2 only the customer's.
            assert_eq!(db.window_covering("acme", "web1", 300).unwrap(), Some(host));
            assert_eq!(db.window_covering("acme", "web2", 300).unwrap(), Some(all));
            assert_eq!(db.window_covering("acme", "web2", 1_000).unwrap(), None);
            assert_eq!(db.window_covering("acme", "web1", 99).unwrap(), None);
            assert_eq!(db.window_covering("other", "web1", 300).unwrap(), None);
            let ids = |after, customer| -> Vec<i64> {
                db.windows_ending_after(after, customer)
                    .unwrap()
                    .iter()
                    .map(|w| w.id)
                    .collect()
            };
            assert_eq!(ids(None, None), vec![all, host]);
            assert_eq!(ids(Some(1_000), None), vec![host]);
            assert_eq!(ids(None, Some("acme")), vec![all, host]);
            assert!(ids(None, Some("other")).is_empty());
            assert!(db.set_window_end(host, 500).unwrap());
            assert_eq!(db.window_by_id(host).unwrap().unwrap().ends_at_ms, 500);
            // The schema refuses a window ending before it starts.
            assert!(db.set_window_end(host, 200).is_err());
            assert!(db.delete_window(all).unwrap());
            assert!(!db.delete_window(all).unwrap());
            assert_eq!(ids(None, None), vec![host]);
        });
    }

    #[test]
    fn one_held_row_per_key_while_held_counted_and_released() {
        on_both(|db| {
            let k = key("web1", "fs_full");
            assert_eq!(db.held_for_key(&k).unwrap(), None);
            let id = db.insert_held(&k, &eval("unmapped", None, 100, true)).unwrap();
            assert_eq!(db.held_for_key(&k).unwrap(), Some((id, "unmapped".to_string(), None)));
            // A second row for a held key is refused by the schema.
            let dup = db.insert_held(&k, &eval("unmapped", None, 100, true)).unwrap_err();
            assert!(dup.is_unique_violation(), "{dup}");

            // A late evaluation counts but moves no time back.
            db.update_held(id, &eval("maintenance", Some(7), 300, true)).unwrap();
            db.update_held(id, &eval("maintenance", Some(7), 200, true)).unwrap();
            db.update_held(id, &eval("maintenance", Some(7), 250, false)).unwrap();
            let h = db.held_row(id).unwrap().unwrap();
            assert_eq!(
                (
                    h.reason.as_str(),
                    h.holder,
                    h.first_at_ms,
                    h.last_at_ms,
                    h.last_firing_at_ms
                ),
                ("maintenance", Some(7), 100, 300, 300)
            );
            assert_eq!((h.occurrences, h.firing), (3, false));
            assert_eq!(
                (h.kind.as_str(), h.check.as_str(), h.evidence.as_str()),
                ("case", "fs_full", r#"{"at":1}"#)
            );
            // A clear older than the last firing changes nothing; a newer one does.
            db.update_held(id, &eval("maintenance", Some(7), 400, true)).unwrap();
            db.note_held_clear(id, 350).unwrap();
            assert!(db.held_row(id).unwrap().unwrap().firing);
            db.note_held_clear(id, 450).unwrap();
            let h = db.held_row(id).unwrap().unwrap();
            assert_eq!((h.firing, h.last_at_ms, h.occurrences), (false, 450, 4));

            let other = db
                .insert_held(&key("web2", "fs_full"), &eval("unmapped", None, 100, true))
                .unwrap();
            let listed =
                |reason, holder| -> Vec<i64> { db.held_now(reason, holder).unwrap().iter().map(|h| h.id).collect() };
            assert_eq!(listed(None, None), vec![other, id]);
            assert_eq!(listed(Some("maintenance"), None), vec![id]);
            assert_eq!(listed(Some("maintenance"), Some(8)), Vec::<i64>::new());
            assert_eq!(listed(None, Some(7)), vec![id]);
            assert_eq!(
                db.held_counts_by_reason().unwrap(),
                vec![("maintenance".to_string(), 1), ("unmapped".to_string(), 1)]
            );

            // Released, the key may be held again; the holder still lists it.
            db.release_held_key(&k, None, 500).unwrap();
            assert_eq!(db.held_for_key(&k).unwrap(), None);
            let again = db.insert_held(&k, &eval("storm", Some(9), 600, true)).unwrap();
            assert_ne!(again, id);
            let by: Vec<(i64, Option<i64>)> = db
                .held_by_holder("maintenance", 7)
                .unwrap()
                .iter()
                .map(|h| (h.id, h.released_at_ms))
                .collect();
            assert_eq!(by, vec![(id, Some(500))]);
            assert_eq!(db.held_row(id).unwrap().unwrap().released_to, None);
            assert!(db.release_held(other, 700).unwrap());
            assert!(!db.release_held(other, 800).unwrap());
            assert_eq!(db.held_row(other).unwrap().unwrap().released_at_ms, Some(700));
            assert_eq!(db.storm_attached_count(9).unwrap(), 1);
            assert_eq!(db.held_row(again + 100).unwrap(), None);
        });
    }

    #[test]
    fn held_rows_are_due_once_their_asset_window_or_storm_is_gone() {
        on_both(|db| {
            let unknown = db
                .insert_held(&key("52:54:00:aa:bb:cc", "raid"), &eval("unmapped", None, 1, true))
                .unwrap();
            let by_id = db
                .insert_held(&key("db01-ilo", "psu"), &eval("unmapped", None, 1, true))
                .unwrap();
            let w = db.insert_window(&window(None, 0, 1_000), 0).unwrap();
            let windowed = db
                .insert_held(&key("web1", "fs_full"), &eval("maintenance", Some(w), 10, true))
                .unwrap();
            let storm = item(db, "*", "case_storm", "acknowledged", 5);
            let stormed = db
                .insert_held(&key("web2", "down"), &eval("storm", Some(storm), 10, true))
                .unwrap();
            db.insert_held(&key("web3", "down"), &eval("storm", Some(storm), 10, false))
                .unwrap();
            db.upsert_known_asset("db01", None, r#"["db01-ilo"]"#, 0).unwrap();
            let due = |now| -> Vec<i64> { db.held_release_candidates(now).unwrap().iter().map(|h| h.id).collect() };
            assert_eq!(due(500), vec![by_id]);
            assert_eq!(due(1_000), vec![by_id, windowed]);

            // The storm case holds its signals while active.
            assert_eq!(db.storm_holding(&key("web2", "down")).unwrap(), Some(storm));
            assert_eq!(db.storm_holding(&key("web1", "fs_full")).unwrap(), None);
            assert_eq!(db.storm_attached_count(storm).unwrap(), 2);
            let storms = db.active_storm_cases("case_storm").unwrap();
            assert_eq!(
                storms,
                vec![StormCase {
                    id: storm,
                    customer: "acme".into(),
                    last_firing_at_ms: 5,
                    firing_attached: 1,
                }]
            );
            item(db, "web9", "down", "new", 20);
            item(db, "web8", "down", "new", 30);
            assert_eq!(db.cases_opened_after("acme", "case_storm", 0).unwrap(), 2);
            assert_eq!(db.cases_opened_after("acme", "case_storm", 20).unwrap(), 1);
            assert_eq!(db.cases_opened_after("other", "case_storm", 0).unwrap(), 0);
            db.execute("UPDATE items SET status = 'resolved' WHERE id = ?1", args![storm])
                .unwrap();
            assert_eq!(db.storm_holding(&key("web2", "down")).unwrap(), None);
            assert!(db.active_storm_cases("case_storm").unwrap().is_empty());
            assert_eq!(due(500).len(), 3, "the two attached and the mapped one");
            assert!(due(500).contains(&stormed));
            assert!(!due(500).contains(&unknown));

            // Released into an item, a held row points at it.
            let opened = item(db, "db01", "psu", "new", 600);
            db.release_held_key(&key("db01-ilo", "psu"), Some(opened), 600).unwrap();
            assert_eq!(db.held_row(by_id).unwrap().unwrap().released_to, Some(opened));
        });
    }
}
