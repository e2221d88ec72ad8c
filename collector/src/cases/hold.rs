//! Signals that would open (or reopen) an item but are held back, and why:
//!
//! - **unmapped**: the signal names no known asset. It waits on the unmapped
//!   triage list until an asset with that name, MAC or machine id becomes
//!   known (its inventory arrives, or an engineer maps it), never becoming a
//!   case without an asset.
//! - **maintenance**: a maintenance window covers the asset (or its whole
//!   customer). Occurrences are still counted on the held signal; what still
//!   fires when the window ends opens its item then.
//! - **storm**: more than `Policy::storm_cases` new cases for one customer
//!   within `Policy::storm_window_ms`. One major `case_storm` case opens for
//!   the customer and the rest are attached to it instead of opening cases of
//!   their own; when that case ends, what still fires is let through.
//!
//! A held signal is one row per kind and identity key while it is held
//! (a unique partial index, like the active items), updated by every later
//! evaluation. [`release_due`], run by the lifecycle tick, lets the signals
//! whose reason has gone through the normal path again, so a released
//! signal may open its item, or be held again for another reason.

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::lifecycle::{IdentityKey, ItemKind, Policy, Severity, Signal};
use crate::store::StoreError;

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

/// The check name of the one case a customer's case storm opens.
pub const STORM_CHECK: &str = "case_storm";

/// Why a signal is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Held {
    Unmapped,
    Maintenance,
    Storm,
}

impl Held {
    pub fn as_str(self) -> &'static str {
        match self {
            Held::Unmapped => "unmapped",
            Held::Maintenance => "maintenance",
            Held::Storm => "storm",
        }
    }

    pub fn parse(s: &str) -> Option<Held> {
        match s {
            "unmapped" => Some(Held::Unmapped),
            "maintenance" => Some(Held::Maintenance),
            "storm" => Some(Held::Storm),
            _ => None,
        }
    }
}

/// What the gate says about a signal that would open an item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    Pass,
    /// The signal names a known asset by another identifier: open the item
    /// under this name instead.
    Rename(String),
    Hold(Held, Option<i64>),
}

/// Decides whether a signal that would open or reopen an item may. The
/// storm case itself always passes.
pub fn gate(conn: &Connection, signal: &Signal, policy: &Policy) -> Result<Gate, StoreError> {
    let key = &signal.key;
    if key.check == STORM_CHECK {
        return Ok(Gate::Pass);
    }
    match resolve_asset(conn, &key.asset)? {
        None => return Ok(Gate::Hold(Held::Unmapped, None)),
        Some(name) if name != key.asset => return Ok(Gate::Rename(name)),
        Some(_) => {}
    }
    if let Some(w) = window_at(conn, &key.customer, &key.asset, signal.at_ms)? {
        return Ok(Gate::Hold(Held::Maintenance, Some(w)));
    }
    // Attached to a storm case stays attached while that case is active,
    // however the rate of new cases has fallen since.
    let attached: Option<i64> = conn
        .prepare_cached(
            "SELECT h.holder FROM held_signals h JOIN items i ON i.id = h.holder \
             WHERE h.released_at_ms IS NULL AND h.reason = 'storm' AND h.kind = ?1 AND h.customer = ?2 \
             AND h.asset = ?3 AND h.check_name = ?4 AND h.component = ?5 \
             AND i.status NOT IN ('resolved', 'closed', 'cancelled', 'fixed', 'verified')",
        )?
        .query_row(
            params![signal.kind.as_str(), key.customer, key.asset, key.check, key.component],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(storm) = attached {
        return Ok(Gate::Hold(Held::Storm, Some(storm)));
    }
    if signal.kind == ItemKind::Case && policy.storm_cases > 0 {
        let since = signal.at_ms.saturating_sub(policy.storm_window_ms);
        let recent: i64 = conn
            .prepare_cached(
                "SELECT COUNT(*) FROM items WHERE kind = 'case' AND customer = ?1 \
                 AND check_name != ?2 AND opened_at_ms > ?3",
            )?
            .query_row(params![key.customer, STORM_CHECK, since], |r| r.get(0))?;
        if recent >= i64::from(policy.storm_cases) {
            return Ok(Gate::Hold(Held::Storm, None));
        }
    }
    Ok(Gate::Pass)
}

/// The storm case's identity for a customer.
pub fn storm_key(customer: &str) -> IdentityKey {
    IdentityKey {
        customer: customer.to_string(),
        asset: "*".to_string(),
        check: STORM_CHECK.to_string(),
        component: String::new(),
    }
}

/// The signal that opens, feeds or clears a customer's storm case.
pub fn storm_signal(customer: &str, firing: bool, at_ms: i64, attached: i64, policy: &Policy) -> Signal {
    Signal {
        event: None,
        key: storm_key(customer),
        kind: ItemKind::Case,
        severity: Severity::Major,
        rule: STORM_CHECK.to_string(),
        firing,
        at_ms,
        evidence: serde_json::json!({
            "rule": STORM_CHECK,
            "customer": customer,
            "more_than_cases": policy.storm_cases,
            "window_secs": policy.storm_window_ms / 1000,
            "attached": attached,
        }),
    }
}

/// The known asset a name, MAC or machine id stands for.
pub fn resolve_asset(conn: &Connection, name: &str) -> Result<Option<String>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT name FROM known_assets WHERE name = ?1 \
             OR EXISTS (SELECT 1 FROM json_each(known_assets.identifiers) WHERE value = ?1) \
             ORDER BY name = ?1 DESC LIMIT 1",
        )?
        .query_row(params![name], |r| r.get(0))
        .optional()?)
}

/// Records that `name` is a known asset (its inventory arrived), with the
/// other identifiers signals may name it by (added to those it has).
pub fn mark_known(
    conn: &Connection,
    name: &str,
    agent_id: Option<&str>,
    identifiers: &[String],
    at_ms: i64,
) -> Result<(), StoreError> {
    let old: Option<String> = conn
        .prepare_cached("SELECT identifiers FROM known_assets WHERE name = ?1")?
        .query_row(params![name], |r| r.get(0))
        .optional()?;
    let mut ids: Vec<String> = old
        .as_deref()
        .and_then(|o| serde_json::from_str(o).ok())
        .unwrap_or_default();
    ids.extend(identifiers.iter().filter(|i| !i.is_empty() && *i != name).cloned());
    ids.sort();
    ids.dedup();
    let ids = serde_json::to_string(&ids).unwrap_or_else(|_| "[]".into());
    conn.prepare_cached(
        "INSERT INTO known_assets (name, agent_id, identifiers, since_ms) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT(name) DO UPDATE SET agent_id = COALESCE(excluded.agent_id, agent_id), \
         identifiers = excluded.identifiers",
    )?
    .execute(params![name, agent_id, ids, at_ms])?;
    Ok(())
}

/// Whether `name` is already known; cheap enough for every report in replay.
pub fn is_known(conn: &Connection, name: &str) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached("SELECT 1 FROM known_assets WHERE name = ?1")?
        .query_row(params![name], |_| Ok(()))
        .optional()?
        .is_some())
}

/// The held row for a signal's kind and key, if it is held: its id, reason
/// and holder.
fn held_row(
    conn: &Connection,
    kind: ItemKind,
    key: &IdentityKey,
) -> Result<Option<(i64, Held, Option<i64>)>, StoreError> {
    let row: Option<(i64, String, Option<i64>)> = conn
        .prepare_cached(
            "SELECT id, reason, holder FROM held_signals WHERE released_at_ms IS NULL AND kind = ?1 \
             AND customer = ?2 AND asset = ?3 AND check_name = ?4 AND component = ?5",
        )?
        .query_row(
            params![kind.as_str(), key.customer, key.asset, key.check, key.component],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    Ok(row.and_then(|(id, r, holder)| Held::parse(&r).map(|h| (id, h, holder))))
}

/// Holds a signal (inserting or updating its row); returns the row id and
/// whether it was newly held for this reason and holder.
pub fn hold(conn: &Connection, signal: &Signal, why: Held, holder: Option<i64>) -> Result<(i64, bool), StoreError> {
    let key = &signal.key;
    let evidence = serde_json::to_string(&signal.evidence).unwrap_or_else(|_| "null".into());
    let firing = i64::from(signal.firing);
    if let Some((id, was, was_holder)) = held_row(conn, signal.kind, key)? {
        conn.prepare_cached(
            "UPDATE held_signals SET reason = ?2, holder = ?3, rule = ?4, severity = ?5, \
             last_at_ms = MAX(last_at_ms, ?6), \
             last_firing_at_ms = CASE WHEN ?7 = 1 THEN MAX(last_firing_at_ms, ?6) ELSE last_firing_at_ms END, \
             occurrences = occurrences + ?7, firing = ?7, evidence = ?8 WHERE id = ?1",
        )?
        .execute(params![
            id,
            why.as_str(),
            holder,
            signal.rule,
            signal.severity.as_str(),
            signal.at_ms,
            firing,
            evidence
        ])?;
        return Ok((id, was != why || was_holder != holder));
    }
    conn.prepare_cached(
        "INSERT INTO held_signals (reason, holder, kind, customer, asset, check_name, component, rule, \
         severity, first_at_ms, last_at_ms, last_firing_at_ms, occurrences, firing, evidence) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?10, ?10, ?11, ?11, ?12)",
    )?
    .execute(params![
        why.as_str(),
        holder,
        signal.kind.as_str(),
        key.customer,
        key.asset,
        key.check,
        key.component,
        signal.rule,
        signal.severity.as_str(),
        signal.at_ms,
        firing,
        evidence
    ])?;
    Ok((conn.last_insert_rowid(), true))
}

/// A clear evaluation of a held signal: it no longer fires, so releasing it
/// opens nothing. A key that is not held is left alone.
pub fn note_clear(conn: &Connection, signal: &Signal) -> Result<(), StoreError> {
    if let Some((id, _, _)) = held_row(conn, signal.kind, &signal.key)? {
        conn.prepare_cached(
            "UPDATE held_signals SET firing = 0, last_at_ms = MAX(last_at_ms, ?2) WHERE id = ?1 AND last_firing_at_ms < ?2",
        )?
        .execute(params![id, signal.at_ms])?;
    }
    Ok(())
}

/// Marks the held row of a key released: into item `item_id` (which the
/// signal has just opened or joined), or into none (it now lands elsewhere,
/// e.g. under the asset's own name).
pub fn released_into(
    conn: &Connection,
    kind: ItemKind,
    key: &IdentityKey,
    item_id: Option<i64>,
    at_ms: i64,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "UPDATE held_signals SET released_at_ms = ?6, released_to = ?7 WHERE released_at_ms IS NULL \
         AND kind = ?1 AND customer = ?2 AND asset = ?3 AND check_name = ?4 AND component = ?5",
    )?
    .execute(params![
        kind.as_str(),
        key.customer,
        key.asset,
        key.check,
        key.component,
        at_ms,
        item_id
    ])?;
    Ok(())
}

/// A held signal, as listed by the API.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HeldSignal {
    pub id: i64,
    pub reason: Held,
    pub holder: Option<i64>,
    pub kind: String,
    pub key: IdentityKey,
    pub rule: String,
    pub severity: String,
    pub first_at_ms: i64,
    pub last_at_ms: i64,
    pub last_firing_at_ms: i64,
    pub occurrences: i64,
    pub firing: bool,
    pub evidence: serde_json::Value,
    pub released_at_ms: Option<i64>,
    pub released_to: Option<i64>,
}

impl HeldSignal {
    /// The signal it stands for, evaluated again at `at_ms`.
    fn signal(&self, at_ms: i64) -> Option<Signal> {
        Some(Signal {
            // A held event is still an event when it is released.
            event: super::EventOrigin::of_evidence(&self.evidence),
            key: self.key.clone(),
            kind: ItemKind::parse(&self.kind)?,
            severity: Severity::parse(&self.severity)?,
            rule: self.rule.clone(),
            firing: self.firing,
            at_ms,
            evidence: self.evidence.clone(),
        })
    }
}

const HELD_COLUMNS: &str = "id, reason, holder, kind, customer, asset, check_name, component, rule, \
    severity, first_at_ms, last_at_ms, last_firing_at_ms, occurrences, firing, evidence, released_at_ms, released_to";

fn held_rows(conn: &Connection, where_sql: &str, p: impl rusqlite::Params) -> Result<Vec<HeldSignal>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!("SELECT {HELD_COLUMNS} FROM held_signals WHERE {where_sql}"))?;
    let rows = stmt
        .query_map(p, |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                HeldSignal {
                    id: r.get(0)?,
                    reason: Held::Unmapped,
                    holder: r.get(2)?,
                    kind: r.get(3)?,
                    key: IdentityKey {
                        customer: r.get(4)?,
                        asset: r.get(5)?,
                        check: r.get(6)?,
                        component: r.get(7)?,
                    },
                    rule: r.get(8)?,
                    severity: r.get(9)?,
                    first_at_ms: r.get(10)?,
                    last_at_ms: r.get(11)?,
                    last_firing_at_ms: r.get(12)?,
                    occurrences: r.get(13)?,
                    firing: r.get(14)?,
                    evidence: serde_json::Value::Null,
                    released_at_ms: r.get(16)?,
                    released_to: r.get(17)?,
                },
                r.get::<_, String>(15)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(|(id, reason, mut h, evidence)| {
            h.reason = Held::parse(&reason).ok_or_else(|| StoreError::CorruptItem {
                id,
                reason: format!("held signal reason {reason}"),
            })?;
            h.evidence = serde_json::from_str(&evidence).map_err(|e| StoreError::CorruptItem {
                id,
                reason: format!("held signal evidence: {e}"),
            })?;
            Ok(h)
        })
        .collect()
}

/// The signals held now for `why` (all reasons when `None`), optionally only
/// those of one holder, newest first.
pub fn list_held(conn: &Connection, why: Option<Held>, holder: Option<i64>) -> Result<Vec<HeldSignal>, StoreError> {
    held_rows(
        conn,
        "released_at_ms IS NULL AND (?1 IS NULL OR reason = ?1) AND (?2 IS NULL OR holder = ?2) ORDER BY id DESC",
        params![why.map(Held::as_str), holder],
    )
}

/// Every signal a holder (window or storm case) ever held, newest first.
pub fn held_by(conn: &Connection, why: Held, holder: i64) -> Result<Vec<HeldSignal>, StoreError> {
    held_rows(
        conn,
        "reason = ?1 AND holder = ?2 ORDER BY id DESC",
        params![why.as_str(), holder],
    )
}

/// One held signal by id.
pub fn held_one(conn: &Connection, id: i64) -> Result<Option<HeldSignal>, StoreError> {
    Ok(held_rows(conn, "id = ?1", params![id])?.into_iter().next())
}

/// Held signals per reason, for /metrics.
pub fn held_counts(conn: &Connection) -> Result<Vec<(Held, u64)>, StoreError> {
    let mut stmt =
        conn.prepare_cached("SELECT reason, COUNT(*) FROM held_signals WHERE released_at_ms IS NULL GROUP BY reason")?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows
        .into_iter()
        .filter_map(|(r, n)| Some((Held::parse(&r)?, u64::try_from(n).unwrap_or(0))))
        .collect())
}

/// Maps an unmapped signal to a known asset by hand: the name it carries
/// becomes one of the asset's identifiers, so it and every later signal
/// naming it land on that asset (from the next tick on).
pub fn map_unmapped(conn: &Connection, id: i64, asset: &str) -> Result<HeldSignal, StoreError> {
    let held = held_one(conn, id)?.ok_or(StoreError::NoSuchItem(id))?;
    if held.reason != Held::Unmapped || held.released_at_ms.is_some() {
        return Err(StoreError::NotUnmapped(id));
    }
    if !is_known(conn, asset)? {
        return Err(StoreError::UnknownAsset(asset.to_string()));
    }
    mark_known(
        conn,
        asset,
        None,
        std::slice::from_ref(&held.key.asset),
        held.first_at_ms,
    )?;
    Ok(held)
}

/// Held signals whose reason has gone, evaluated again at `now_ms` by the
/// caller (through the normal path, so they may be held anew). Those no
/// longer firing are released here, opening nothing.
pub fn release_due(conn: &Connection, now_ms: i64) -> Result<Vec<(i64, Signal)>, StoreError> {
    let candidates = held_rows(
        conn,
        "released_at_ms IS NULL AND ( \
           (reason = 'unmapped' AND (SELECT COUNT(*) FROM known_assets k WHERE k.name = held_signals.asset \
              OR EXISTS (SELECT 1 FROM json_each(k.identifiers) WHERE value = held_signals.asset)) > 0) \
           OR (reason = 'maintenance' AND NOT EXISTS (SELECT 1 FROM maintenance_windows w \
              WHERE w.id = held_signals.holder AND w.starts_at_ms <= ?1 AND w.ends_at_ms > ?1)) \
           OR (reason = 'storm' AND NOT EXISTS (SELECT 1 FROM items i WHERE i.id = held_signals.holder \
              AND i.status NOT IN ('resolved', 'closed', 'cancelled', 'fixed', 'verified'))) \
         ) ORDER BY id",
        params![now_ms],
    )?;
    let mut again = Vec::new();
    for h in candidates {
        match h.signal(now_ms) {
            Some(s) if h.firing => again.push((h.id, s)),
            _ => {
                conn.prepare_cached("UPDATE held_signals SET released_at_ms = ?2 WHERE id = ?1")?
                    .execute(params![h.id, now_ms])?;
            }
        }
    }
    Ok(again)
}

/// Marks held row `id` released without an item (its signal was let through
/// and opened nothing, e.g. a late firing the old item had already counted).
pub fn release_empty(conn: &Connection, id: i64, at_ms: i64) -> Result<(), StoreError> {
    conn.prepare_cached("UPDATE held_signals SET released_at_ms = ?2 WHERE id = ?1 AND released_at_ms IS NULL")?
        .execute(params![id, at_ms])?;
    Ok(())
}

/// How many signals are attached to storm case `id` and firing; and the
/// customer's storm cases that are active.
pub fn active_storms(conn: &Connection) -> Result<Vec<(i64, String, i64, i64)>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT i.id, i.customer, i.last_firing_at_ms, \
           (SELECT COUNT(*) FROM held_signals h WHERE h.released_at_ms IS NULL AND h.reason = 'storm' \
              AND h.holder = i.id AND h.firing = 1) \
         FROM items i WHERE i.kind = 'case' AND i.check_name = ?1 \
           AND i.status NOT IN ('resolved', 'closed', 'cancelled', 'fixed', 'verified', 'recovered')",
    )?;
    let rows = stmt
        .query_map(params![STORM_CHECK], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// How many signals storm case `id` holds now.
pub fn attached_count(conn: &Connection, id: i64) -> Result<i64, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT COUNT(*) FROM held_signals WHERE released_at_ms IS NULL AND reason = 'storm' AND holder = ?1",
        )?
        .query_row(params![id], |r| r.get(0))?)
}

// --- maintenance windows ------------------------------------------------------

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

/// The window covering an asset at a time (the one ending last).
pub fn window_at(conn: &Connection, customer: &str, asset: &str, at_ms: i64) -> Result<Option<i64>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT id FROM maintenance_windows WHERE customer = ?1 AND (asset IS NULL OR asset = ?2) \
             AND starts_at_ms <= ?3 AND ends_at_ms > ?3 ORDER BY ends_at_ms DESC, id LIMIT 1",
        )?
        .query_row(params![customer, asset, at_ms], |r| r.get(0))
        .optional()?)
}

/// Adds a window; `now_ms` is when it is asked for. A window that has
/// already ended, or ends before it starts, is refused.
pub fn add_window(conn: &Connection, w: &Window, now_ms: i64) -> Result<i64, StoreError> {
    if w.ends_at_ms <= w.starts_at_ms {
        return Err(StoreError::BadWindow("ends_at must be after starts_at".into()));
    }
    if w.ends_at_ms <= now_ms {
        return Err(StoreError::BadWindow("the window has already ended".into()));
    }
    if w.reason.trim().is_empty() {
        return Err(StoreError::BadWindow("reason must not be empty".into()));
    }
    conn.prepare_cached(
        "INSERT INTO maintenance_windows (customer, asset, starts_at_ms, ends_at_ms, reason, created_by, created_at_ms) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        w.customer,
        w.asset,
        w.starts_at_ms,
        w.ends_at_ms,
        w.reason,
        w.created_by,
        now_ms
    ])?;
    Ok(conn.last_insert_rowid())
}

/// Ends window `id` now: one in progress ends at `now_ms`, one not yet
/// started is removed. Returns the window as it was.
pub fn end_window(conn: &Connection, id: i64, now_ms: i64) -> Result<Window, StoreError> {
    let w = window(conn, id)?.ok_or(StoreError::NoSuchWindow(id))?;
    if w.ends_at_ms <= now_ms {
        return Err(StoreError::WindowEnded(id));
    }
    if w.starts_at_ms > now_ms {
        conn.execute("DELETE FROM maintenance_windows WHERE id = ?1", params![id])?;
    } else {
        // Ends strictly after it started, as the CHECK wants.
        let end = now_ms.max(w.starts_at_ms.saturating_add(1));
        conn.execute(
            "UPDATE maintenance_windows SET ends_at_ms = ?2 WHERE id = ?1",
            params![id, end],
        )?;
    }
    Ok(w)
}

fn window_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<Window> {
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

const WINDOW_COLUMNS: &str = "id, customer, asset, starts_at_ms, ends_at_ms, reason, created_by, created_at_ms";

pub fn window(conn: &Connection, id: i64) -> Result<Option<Window>, StoreError> {
    Ok(conn
        .prepare_cached(&format!(
            "SELECT {WINDOW_COLUMNS} FROM maintenance_windows WHERE id = ?1"
        ))?
        .query_row(params![id], window_from)
        .optional()?)
}

/// Windows that end after `after_ms` (all when `None`), soonest start first.
pub fn windows(conn: &Connection, after_ms: Option<i64>, customer: Option<&str>) -> Result<Vec<Window>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {WINDOW_COLUMNS} FROM maintenance_windows WHERE (?1 IS NULL OR ends_at_ms > ?1) \
         AND (?2 IS NULL OR customer = ?2) ORDER BY starts_at_ms, id"
    ))?;
    let rows = stmt
        .query_map(params![after_ms, customer], window_from)?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(rows)
}

/// A window as an operator writes it: in the API's JSON body and in the
/// `[[window]]` tables of a replay's `--maintenance` file. Times are RFC 3339
/// or milliseconds since the epoch.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowSpec {
    pub customer: String,
    /// One host; without it the window covers every host of the customer.
    #[serde(default)]
    pub host: Option<String>,
    pub starts_at: TimeArg,
    pub ends_at: TimeArg,
    pub reason: String,
}

/// A time given as milliseconds since the epoch or as RFC 3339 text.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(untagged)]
pub enum TimeArg {
    Ms(i64),
    Text(String),
}

impl TimeArg {
    pub fn ms(&self) -> Result<i64, String> {
        match self {
            TimeArg::Ms(ms) => Ok(*ms),
            TimeArg::Text(s) => crate::export::parse_time(s),
        }
    }
}

impl WindowSpec {
    /// The window it describes, created by `created_by`.
    pub fn window(&self, created_by: &str) -> Result<Window, String> {
        if self.customer.trim().is_empty() && self.host.as_deref().is_none_or(|h| h.trim().is_empty()) {
            return Err("customer: give the customer (and a host to narrow it)".into());
        }
        let starts_at_ms = self.starts_at.ms().map_err(|e| format!("starts_at: {e}"))?;
        let ends_at_ms = self.ends_at.ms().map_err(|e| format!("ends_at: {e}"))?;
        if ends_at_ms <= starts_at_ms {
            return Err("ends_at: must be after starts_at".into());
        }
        if self.reason.trim().is_empty() {
            return Err("reason: must not be empty".into());
        }
        Ok(Window {
            id: 0,
            customer: self.customer.clone(),
            asset: self.host.clone().filter(|h| !h.is_empty()),
            starts_at_ms,
            ends_at_ms,
            reason: self.reason.clone(),
            created_by: created_by.to_string(),
            created_at_ms: 0,
        })
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct WindowsFile {
    #[serde(default)]
    window: Vec<WindowSpec>,
}

/// Reads a `--maintenance` file: `[[window]]` tables. Errors name the file
/// and, for syntax, the line.
pub fn parse_windows_file(path: &std::path::Path) -> Result<Vec<Window>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let file: WindowsFile = toml::from_str(&text).map_err(|e| {
        let line = e.span().map(|s| crate::rules::parse::line_at(&text, s.start));
        match line {
            Some(l) => format!("{}:{l}: {}", path.display(), e.message()),
            None => format!("{}: {}", path.display(), e.message()),
        }
    })?;
    file.window
        .iter()
        .enumerate()
        .map(|(i, w)| {
            w.window("replay")
                .map_err(|e| format!("{}: window {}: {e}", path.display(), i + 1))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::cases::store::{self, Filter, Outcome, apply_signal, tick_all};
    use crate::cases::{Item, Status};

    const MIN: i64 = 60_000;

    fn open() -> Connection {
        crate::store::open_in_memory().unwrap()
    }

    fn sig(asset: &str, check: &str, firing: bool, at_ms: i64) -> Signal {
        Signal {
            event: None,
            key: IdentityKey {
                customer: "acme".into(),
                asset: asset.into(),
                check: check.into(),
                component: String::new(),
            },
            kind: ItemKind::Case,
            severity: Severity::Critical,
            rule: check.into(),
            firing,
            at_ms,
            evidence: serde_json::json!({ "at": at_ms }),
        }
    }

    fn cases(c: &Connection) -> Vec<Item> {
        store::list(c, &Filter::default()).unwrap()
    }

    fn window(c: &Connection, asset: Option<&str>, from: i64, to: i64) -> i64 {
        let w = Window {
            id: 0,
            customer: "acme".into(),
            asset: asset.map(String::from),
            starts_at_ms: from,
            ends_at_ms: to,
            reason: "firmware upgrade".into(),
            created_by: "ops".into(),
            created_at_ms: 0,
        };
        add_window(c, &w, 0).unwrap()
    }

    #[test]
    fn unmapped_signal_waits_then_lands_on_the_asset_found_by_mac() {
        let c = open();
        let p = Policy::default();
        let mac = "52:54:00:12:34:56";
        let out = apply_signal(&c, &sig(mac, "raid_degraded", true, MIN), &p).unwrap();
        assert!(
            matches!(
                out,
                Outcome::Held {
                    reason: Held::Unmapped,
                    new: true,
                    ..
                }
            ),
            "{out:?}"
        );
        let out = apply_signal(&c, &sig(mac, "raid_degraded", true, 2 * MIN), &p).unwrap();
        assert!(matches!(out, Outcome::Held { new: false, .. }), "{out:?}");
        assert!(cases(&c).is_empty(), "never a case without an asset");
        let held = list_held(&c, Some(Held::Unmapped), None).unwrap();
        assert_eq!(held.len(), 1);
        assert_eq!(held[0].occurrences, 2);
        assert_eq!(held_counts(&c).unwrap(), vec![(Held::Unmapped, 1)]);

        // The host's inventory arrives, naming that MAC: next tick the case
        // opens on the host's name, and the held signal points at it.
        mark_known(&c, "db01", Some("agent-1"), &[mac.to_string()], 3 * MIN).unwrap();
        tick_all(&c, &p, 3 * MIN).unwrap();
        let items = cases(&c);
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].key.asset, "db01");
        let h = held_one(&c, held[0].id).unwrap().unwrap();
        assert_eq!(h.released_to, items[0].id);
        assert!(list_held(&c, Some(Held::Unmapped), None).unwrap().is_empty());
        // Later signals naming the MAC land on the same case.
        let out = apply_signal(&c, &sig(mac, "raid_degraded", true, 4 * MIN), &p).unwrap();
        assert_eq!(out.item_id(), items[0].id);
        assert_eq!(cases(&c).len(), 1);
    }

    #[test]
    fn a_mapped_signal_inside_a_window_moves_to_the_window() {
        let c = open();
        let p = Policy::default();
        let mac = "52:54:00:aa:bb:cc";
        apply_signal(&c, &sig(mac, "raid_degraded", true, MIN), &p).unwrap();
        mark_known(&c, "db01", None, &[mac.to_string()], 2 * MIN).unwrap();
        let w = window(&c, Some("db01"), 0, 60 * MIN);
        tick_all(&c, &p, 3 * MIN).unwrap();
        // Held once, under the host's name and by the window; the row under
        // the MAC is done.
        let held = list_held(&c, None, None).unwrap();
        assert_eq!(held.len(), 1, "{held:#?}");
        assert_eq!(
            (held[0].key.asset.as_str(), held[0].reason),
            ("db01", Held::Maintenance)
        );
        assert_eq!(held[0].holder, Some(w));
        assert!(cases(&c).is_empty());
        tick_all(&c, &p, 60 * MIN).unwrap();
        let items = cases(&c);
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].key.asset, "db01");
        assert!(list_held(&c, None, None).unwrap().is_empty());
    }

    #[test]
    fn an_engineer_maps_an_unmapped_signal_by_hand() {
        let c = open();
        let p = Policy::default();
        mark_known(&c, "db01", None, &[], 0).unwrap();
        let out = apply_signal(&c, &sig("db01-ilo", "psu_failed", true, MIN), &p).unwrap();
        let Outcome::Held { id, .. } = out else {
            panic!("{out:?}")
        };
        assert!(matches!(map_unmapped(&c, id, "nope"), Err(StoreError::UnknownAsset(_))));
        map_unmapped(&c, id, "db01").unwrap();
        assert!(matches!(
            map_unmapped(&c, id + 100, "db01"),
            Err(StoreError::NoSuchItem(_))
        ));
        tick_all(&c, &p, 2 * MIN).unwrap();
        let items = cases(&c);
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].key.asset, "db01");
        assert!(matches!(map_unmapped(&c, id, "db01"), Err(StoreError::NotUnmapped(_))));
    }

    #[test]
    fn maintenance_suppresses_creation_records_occurrences_and_opens_what_still_fires() {
        let c = open();
        let p = Policy::default();
        for h in ["web1", "web2", "web3"] {
            mark_known(&c, h, None, &[], 0).unwrap();
        }
        // web3 already has a case before the window: it keeps counting.
        apply_signal(&c, &sig("web3", "disk_failing", true, 0), &p).unwrap();
        let w = window(&c, None, 10 * MIN, 70 * MIN);
        for t in (10..70).step_by(5) {
            let at = t * MIN;
            apply_signal(&c, &sig("web1", "fs_full", true, at), &p).unwrap();
            // web2 fires briefly and clears inside the window.
            apply_signal(&c, &sig("web2", "fs_full", t < 30, at), &p).unwrap();
            apply_signal(&c, &sig("web3", "disk_failing", true, at), &p).unwrap();
            tick_all(&c, &p, at).unwrap();
        }
        let items = cases(&c);
        assert_eq!(items.len(), 1, "only web3's earlier case: {items:?}");
        assert_eq!(items[0].occurrences, 13);
        let held = held_by(&c, Held::Maintenance, w).unwrap();
        assert_eq!(held.len(), 2);
        let web1 = held.iter().find(|h| h.key.asset == "web1").unwrap();
        assert_eq!(web1.occurrences, 12);
        assert!(web1.firing);
        assert!(!held.iter().find(|h| h.key.asset == "web2").unwrap().firing);

        // The window ends: web1 still fires and gets its case at once; web2
        // cleared and opens nothing.
        tick_all(&c, &p, 70 * MIN).unwrap();
        let items = cases(&c);
        assert_eq!(items.len(), 2, "{items:?}");
        let web1_case = items.iter().find(|i| i.key.asset == "web1").unwrap();
        assert_eq!(web1_case.opened_at_ms, 70 * MIN);
        assert_eq!(web1_case.status, Status::New);
        assert!(list_held(&c, None, None).unwrap().is_empty());
        assert!(
            held_by(&c, Held::Maintenance, w)
                .unwrap()
                .iter()
                .all(|h| h.released_at_ms == Some(70 * MIN))
        );
    }

    #[test]
    fn a_host_window_leaves_other_hosts_alone_and_an_ended_window_is_refused() {
        let c = open();
        let p = Policy::default();
        mark_known(&c, "web1", None, &[], 0).unwrap();
        mark_known(&c, "web2", None, &[], 0).unwrap();
        window(&c, Some("web1"), 0, 60 * MIN);
        let a = apply_signal(&c, &sig("web1", "fs_full", true, MIN), &p).unwrap();
        let b = apply_signal(&c, &sig("web2", "fs_full", true, MIN), &p).unwrap();
        assert!(matches!(
            a,
            Outcome::Held {
                reason: Held::Maintenance,
                ..
            }
        ));
        assert!(matches!(b, Outcome::Created(_)));
        let past = Window {
            id: 0,
            customer: "acme".into(),
            asset: None,
            starts_at_ms: 0,
            ends_at_ms: MIN,
            reason: "x".into(),
            created_by: "ops".into(),
            created_at_ms: 0,
        };
        assert!(matches!(add_window(&c, &past, 2 * MIN), Err(StoreError::BadWindow(_))));
        let backwards = Window {
            starts_at_ms: 5 * MIN,
            ends_at_ms: 4 * MIN,
            ..past.clone()
        };
        assert!(matches!(add_window(&c, &backwards, 0), Err(StoreError::BadWindow(_))));
        // Ending a window early lets web1's fault open at the next tick.
        let id = windows(&c, Some(2 * MIN), Some("acme")).unwrap()[0].id;
        end_window(&c, id, 2 * MIN).unwrap();
        assert!(matches!(end_window(&c, id, 3 * MIN), Err(StoreError::WindowEnded(_))));
        tick_all(&c, &p, 3 * MIN).unwrap();
        assert_eq!(cases(&c).len(), 2);
    }

    #[test]
    fn a_case_storm_opens_one_major_case_and_attaches_the_rest() {
        let c = open();
        let p = Policy {
            storm_cases: 3,
            storm_window_ms: 10 * MIN,
            ..Policy::default()
        };
        let hosts: Vec<String> = (0..8).map(|i| format!("web{i}")).collect();
        for h in &hosts {
            mark_known(&c, h, None, &[], 0).unwrap();
        }
        // Eight hosts fail within two minutes, and keep failing for an hour.
        for step in 0..60 {
            let at = MIN + step * MIN;
            for (i, h) in hosts.iter().enumerate() {
                if step >= (i as i64) / 4 {
                    apply_signal(&c, &sig(h, "host_unreachable", true, at + i as i64), &p).unwrap();
                }
            }
            tick_all(&c, &p, at + 100).unwrap();
        }
        let items = cases(&c);
        let storms: Vec<_> = items.iter().filter(|i| i.key.check == STORM_CHECK).collect();
        assert_eq!(storms.len(), 1, "{items:#?}");
        assert_eq!(storms[0].severity, Severity::Major);
        assert_eq!(storms[0].key.asset, "*");
        assert_eq!(items.len(), 3 + 1, "three cases, then the storm case: {items:#?}");
        let storm_id = storms[0].id.unwrap();
        assert_eq!(attached_count(&c, storm_id).unwrap(), 5);
        assert_eq!(storms[0].evidence["attached"], 5);

        // Everything recovers: once nothing attached fired for a storm window
        // the storm case recovers, then resolves after the quiet period, and
        // the attached signals are released without opening cases.
        let back = 61 * MIN;
        for (i, h) in hosts.iter().enumerate() {
            apply_signal(&c, &sig(h, "host_unreachable", false, back + i as i64), &p).unwrap();
        }
        let mut t = back;
        while t < back + 2 * p.quiet_period_ms {
            t += MIN;
            tick_all(&c, &p, t).unwrap();
        }
        let storm = store::get(&c, storm_id).unwrap().unwrap().0;
        assert_eq!(storm.status, Status::Resolved);
        assert!(list_held(&c, None, None).unwrap().is_empty());
        assert_eq!(cases(&c).len(), 4);
    }

    #[test]
    fn windows_file_errors_name_the_line_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.toml");
        std::fs::write(
            &path,
            "[[window]]\ncustomer = \"acme\"\nstarts_at = \"2026-11-20T22:00:00Z\"\nends_at = \"2026-11-21T02:00:00Z\"\nreason = \"SAN\"\n",
        )
        .unwrap();
        let w = parse_windows_file(&path).unwrap();
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].ends_at_ms - w[0].starts_at_ms, 4 * 60 * MIN);
        std::fs::write(&path, "[[window]]\ncustomer = \"acme\"\nstarts = 1\n").unwrap();
        let e = parse_windows_file(&path).unwrap_err();
        assert!(e.contains("m.toml:3"), "{e}");
        std::fs::write(
            &path,
            "[[window]]\ncustomer = \"acme\"\nstarts_at = \"yesterday\"\nends_at = 5\nreason = \"x\"\n",
        )
        .unwrap();
        let e = parse_windows_file(&path).unwrap_err();
        assert!(e.contains("window 1: starts_at"), "{e}");
    }
}
