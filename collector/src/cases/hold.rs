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

use serde::Serialize;

use super::lifecycle::{IdentityKey, ItemKind, Policy, Severity, Signal};
use crate::store::StoreError;
pub use crate::store::holds::Window;
use crate::store::holds::{HeldEvaluation, HeldKey, HeldRow, HeldSignals, KnownAssets, MaintenanceWindows};
use crate::store::sql::Sql;

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

/// The key a signal of `kind` is held under.
fn held_key(kind: ItemKind, key: &IdentityKey) -> HeldKey<'_> {
    HeldKey {
        kind: kind.as_str(),
        customer: &key.customer,
        asset: &key.asset,
        check: &key.check,
        component: &key.component,
    }
}

/// Decides whether a signal that would open or reopen an item may. The
/// storm case itself always passes.
pub fn gate(db: &dyn Sql, signal: &Signal, policy: &Policy, names: &mut KnownNames) -> Result<Gate, StoreError> {
    let key = &signal.key;
    if key.check == STORM_CHECK {
        return Ok(Gate::Pass);
    }
    match names.resolve(db, &key.asset)? {
        None => return Ok(Gate::Hold(Held::Unmapped, None)),
        Some(name) if name != key.asset => return Ok(Gate::Rename(name)),
        Some(_) => {}
    }
    if let Some(w) = window_at(db, &key.customer, &key.asset, signal.at_ms)? {
        return Ok(Gate::Hold(Held::Maintenance, Some(w)));
    }
    // Attached to a storm case stays attached while that case is active,
    // however the rate of new cases has fallen since.
    if let Some(storm) = db.storm_holding(&held_key(signal.kind, key))? {
        return Ok(Gate::Hold(Held::Storm, Some(storm)));
    }
    // A window of 0 turns grouping off: counting the cases opened "within
    // no time" of a signal would count every case opened at or after it,
    // and a signal dated earlier (a report spooled while its collector was
    // down) would see them all.
    if signal.kind == ItemKind::Case && policy.storm_cases > 0 && policy.storm_window_ms > 0 {
        let since = signal.at_ms.saturating_sub(policy.storm_window_ms);
        let recent = db.cases_opened_after(&key.customer, STORM_CHECK, since)?;
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
pub fn resolve_asset(db: &dyn Sql, name: &str) -> Result<Option<String>, StoreError> {
    Ok(db.find_known_asset(name)?)
}

/// [`resolve_asset`] for a batch of signals: each name is looked up once.
/// Only for work that makes no asset known meanwhile (a signals job, a
/// tick): an inventory or an engineer's mapping does, in jobs of their own.
#[derive(Debug, Default)]
pub struct KnownNames {
    resolved: std::collections::HashMap<String, Option<String>>,
}

impl KnownNames {
    /// The known asset `name` stands for.
    pub fn resolve(&mut self, db: &dyn Sql, name: &str) -> Result<Option<String>, StoreError> {
        if let Some(asset) = self.resolved.get(name) {
            return Ok(asset.clone());
        }
        let asset = resolve_asset(db, name)?;
        self.resolved.insert(name.to_string(), asset.clone());
        Ok(asset)
    }
}

/// Records that `name` is a known asset (its inventory arrived), with the
/// other identifiers signals may name it by (added to those it has).
pub fn mark_known(
    db: &dyn Sql,
    name: &str,
    agent_id: Option<&str>,
    identifiers: &[String],
    at_ms: i64,
) -> Result<(), StoreError> {
    let old = db.known_asset_identifiers(name)?;
    let mut ids: Vec<String> = old
        .as_deref()
        .and_then(|o| serde_json::from_str(o).ok())
        .unwrap_or_default();
    ids.extend(identifiers.iter().filter(|i| !i.is_empty() && *i != name).cloned());
    ids.sort();
    ids.dedup();
    let ids = serde_json::to_string(&ids).unwrap_or_else(|_| "[]".into());
    db.upsert_known_asset(name, agent_id, &ids, at_ms)?;
    Ok(())
}

/// Whether `name` is already known; cheap enough for every report in replay.
pub fn is_known(db: &dyn Sql, name: &str) -> Result<bool, StoreError> {
    Ok(db.is_known_asset(name)?)
}

/// The held row for a signal's kind and key, if it is held: its id, reason
/// and holder.
fn held_row(db: &dyn Sql, kind: ItemKind, key: &IdentityKey) -> Result<Option<(i64, Held, Option<i64>)>, StoreError> {
    let row = db.held_for_key(&held_key(kind, key))?;
    Ok(row.and_then(|(id, r, holder)| Held::parse(&r).map(|h| (id, h, holder))))
}

/// Holds a signal (inserting or updating its row); returns the row id and
/// whether it was newly held for this reason and holder.
pub fn hold(db: &dyn Sql, signal: &Signal, why: Held, holder: Option<i64>) -> Result<(i64, bool), StoreError> {
    let evidence = serde_json::to_string(&signal.evidence).unwrap_or_else(|_| "null".into());
    let evaluation = HeldEvaluation {
        reason: why.as_str(),
        holder,
        rule: &signal.rule,
        severity: signal.severity.as_str(),
        at_ms: signal.at_ms,
        firing: signal.firing,
        evidence: &evidence,
    };
    if let Some((id, was, was_holder)) = held_row(db, signal.kind, &signal.key)? {
        db.update_held(id, &evaluation)?;
        return Ok((id, was != why || was_holder != holder));
    }
    // In a savepoint of its own: another writer's row for the key refuses
    // this one, which is undone alone (see `store::apply_signal`).
    let key = held_key(signal.kind, &signal.key);
    let id = crate::store::items::atomically(db, || db.insert_held(&key, &evaluation))?;
    Ok((id, true))
}

/// A clear evaluation of a held signal: it no longer fires, so releasing it
/// opens nothing. A key that is not held is left alone.
pub fn note_clear(db: &dyn Sql, signal: &Signal) -> Result<(), StoreError> {
    if let Some((id, _, _)) = held_row(db, signal.kind, &signal.key)? {
        db.note_held_clear(id, signal.at_ms)?;
    }
    Ok(())
}

/// Marks the held row of a key released: into item `item_id` (which the
/// signal has just opened or joined), or into none (it now lands elsewhere,
/// e.g. under the asset's own name).
pub fn released_into(
    db: &dyn Sql,
    kind: ItemKind,
    key: &IdentityKey,
    item_id: Option<i64>,
    at_ms: i64,
) -> Result<(), StoreError> {
    db.release_held_key(&held_key(kind, key), item_id, at_ms)?;
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

    /// The held signal a stored row says; a reason or evidence that does
    /// not decode is a corrupt row.
    fn from_row(row: HeldRow) -> Result<HeldSignal, StoreError> {
        let id = row.id;
        let reason = Held::parse(&row.reason).ok_or_else(|| StoreError::CorruptItem {
            id,
            reason: format!("held signal reason {}", row.reason),
        })?;
        let evidence = serde_json::from_str(&row.evidence).map_err(|e| StoreError::CorruptItem {
            id,
            reason: format!("held signal evidence: {e}"),
        })?;
        Ok(HeldSignal {
            id,
            reason,
            holder: row.holder,
            kind: row.kind,
            key: IdentityKey {
                customer: row.customer,
                asset: row.asset,
                check: row.check,
                component: row.component,
            },
            rule: row.rule,
            severity: row.severity,
            first_at_ms: row.first_at_ms,
            last_at_ms: row.last_at_ms,
            last_firing_at_ms: row.last_firing_at_ms,
            occurrences: row.occurrences,
            firing: row.firing,
            evidence,
            released_at_ms: row.released_at_ms,
            released_to: row.released_to,
        })
    }
}

fn held_signals(rows: Vec<HeldRow>) -> Result<Vec<HeldSignal>, StoreError> {
    rows.into_iter().map(HeldSignal::from_row).collect()
}

/// The signals held now for `why` (all reasons when `None`), optionally only
/// those of one holder, newest first.
pub fn list_held(db: &dyn Sql, why: Option<Held>, holder: Option<i64>) -> Result<Vec<HeldSignal>, StoreError> {
    held_signals(db.held_now(why.map(Held::as_str), holder)?)
}

/// Every signal a holder (window or storm case) ever held, newest first.
pub fn held_by(db: &dyn Sql, why: Held, holder: i64) -> Result<Vec<HeldSignal>, StoreError> {
    held_signals(db.held_by_holder(why.as_str(), holder)?)
}

/// One held signal by id.
pub fn held_one(db: &dyn Sql, id: i64) -> Result<Option<HeldSignal>, StoreError> {
    db.held_row(id)?.map(HeldSignal::from_row).transpose()
}

/// Held signals per reason, for /metrics.
pub fn held_counts(db: &dyn Sql) -> Result<Vec<(Held, u64)>, StoreError> {
    Ok(db
        .held_counts_by_reason()?
        .into_iter()
        .filter_map(|(r, n)| Some((Held::parse(&r)?, u64::try_from(n).unwrap_or(0))))
        .collect())
}

/// Maps an unmapped signal to a known asset by hand: the name it carries
/// becomes one of the asset's identifiers, so it and every later signal
/// naming it land on that asset (from the next tick on).
pub fn map_unmapped(db: &dyn Sql, id: i64, asset: &str) -> Result<HeldSignal, StoreError> {
    let held = held_one(db, id)?.ok_or(StoreError::NoSuchItem(id))?;
    if held.reason != Held::Unmapped || held.released_at_ms.is_some() {
        return Err(StoreError::NotUnmapped(id));
    }
    if !is_known(db, asset)? {
        return Err(StoreError::UnknownAsset(asset.to_string()));
    }
    mark_known(db, asset, None, std::slice::from_ref(&held.key.asset), held.first_at_ms)?;
    Ok(held)
}

/// Held signals whose reason has gone, evaluated again at `now_ms` by the
/// caller (through the normal path, so they may be held anew). Those no
/// longer firing are released here, opening nothing.
pub fn release_due(db: &dyn Sql, now_ms: i64) -> Result<Vec<(i64, Signal)>, StoreError> {
    let candidates = held_signals(db.held_release_candidates(now_ms)?)?;
    let mut again = Vec::new();
    for h in candidates {
        match h.signal(now_ms) {
            Some(s) if h.firing => again.push((h.id, s)),
            _ => {
                db.release_held(h.id, now_ms)?;
            }
        }
    }
    Ok(again)
}

/// Marks held row `id` released without an item (its signal was let through
/// and opened nothing, e.g. a late firing the old item had already counted).
pub fn release_empty(db: &dyn Sql, id: i64, at_ms: i64) -> Result<(), StoreError> {
    db.release_held(id, at_ms)?;
    Ok(())
}

/// The customer's storm cases that are active: each one's id, customer,
/// last firing time and how many signals attached to it fire.
pub fn active_storms(db: &dyn Sql) -> Result<Vec<(i64, String, i64, i64)>, StoreError> {
    Ok(db
        .active_storm_cases(STORM_CHECK)?
        .into_iter()
        .map(|s| (s.id, s.customer, s.last_firing_at_ms, s.firing_attached))
        .collect())
}

/// How many signals storm case `id` holds now.
pub fn attached_count(db: &dyn Sql, id: i64) -> Result<i64, StoreError> {
    Ok(db.storm_attached_count(id)?)
}

// --- maintenance windows ------------------------------------------------------

/// The window covering an asset at a time (the one ending last).
pub fn window_at(db: &dyn Sql, customer: &str, asset: &str, at_ms: i64) -> Result<Option<i64>, StoreError> {
    Ok(db.window_covering(customer, asset, at_ms)?)
}

/// Adds a window; `now_ms` is when it is asked for. A window that has
/// already ended, or ends before it starts, is refused.
pub fn add_window(db: &dyn Sql, w: &Window, now_ms: i64) -> Result<i64, StoreError> {
    if w.ends_at_ms <= w.starts_at_ms {
        return Err(StoreError::BadWindow("ends_at must be after starts_at".into()));
    }
    if w.ends_at_ms <= now_ms {
        return Err(StoreError::BadWindow("the window has already ended".into()));
    }
    if w.reason.trim().is_empty() {
        return Err(StoreError::BadWindow("reason must not be empty".into()));
    }
    Ok(db.insert_window(w, now_ms)?)
}

/// Ends window `id` now: one in progress ends at `now_ms`, one not yet
/// started is removed. Returns the window as it was.
pub fn end_window(db: &dyn Sql, id: i64, now_ms: i64) -> Result<Window, StoreError> {
    let w = window(db, id)?.ok_or(StoreError::NoSuchWindow(id))?;
    if w.ends_at_ms <= now_ms {
        return Err(StoreError::WindowEnded(id));
    }
    if w.starts_at_ms > now_ms {
        db.delete_window(id)?;
    } else {
        // Ends strictly after it started, as the CHECK wants.
        let end = now_ms.max(w.starts_at_ms.saturating_add(1));
        db.set_window_end(id, end)?;
    }
    Ok(w)
}

pub fn window(db: &dyn Sql, id: i64) -> Result<Option<Window>, StoreError> {
    Ok(db.window_by_id(id)?)
}

/// Windows that end after `after_ms` (all when `None`), soonest start first.
pub fn windows(db: &dyn Sql, after_ms: Option<i64>, customer: Option<&str>) -> Result<Vec<Window>, StoreError> {
    Ok(db.windows_ending_after(after_ms, customer)?)
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
    use crate::cases::Status;
    use crate::cases::store::{self, Filter, Outcome, apply_signal, tick_all};
    use crate::store::testing::TestDb;

    const MIN: i64 = 60_000;

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

    /// The items listed now.
    macro_rules! cases {
        ($c:expr) => {
            store::list($c, &Filter::default()).unwrap()
        };
    }

    fn window(c: &dyn Sql, asset: Option<&str>, from: i64, to: i64) -> i64 {
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
        let c = crate::store::testing::TestDb::new();
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
        assert!(cases!(&c).is_empty(), "never a case without an asset");
        let held = list_held(&c, Some(Held::Unmapped), None).unwrap();
        assert_eq!(held.len(), 1);
        assert_eq!(held[0].occurrences, 2);
        assert_eq!(held_counts(&c).unwrap(), vec![(Held::Unmapped, 1)]);

        // The host's inventory arrives, naming that MAC: next tick the case
        // opens on the host's name, and the held signal points at it.
        mark_known(&c, "db01", Some("agent-1"), &[mac.to_string()], 3 * MIN).unwrap();
        tick_all(&c, &p, 3 * MIN).unwrap();
        let items = cases!(&c);
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].key.asset, "db01");
        let h = held_one(&c, held[0].id).unwrap().unwrap();
        assert_eq!(h.released_to, items[0].id);
        assert!(list_held(&c, Some(Held::Unmapped), None).unwrap().is_empty());
        // Later signals naming the MAC land on the same case.
        let out = apply_signal(&c, &sig(mac, "raid_degraded", true, 4 * MIN), &p).unwrap();
        assert_eq!(out.item_id(), items[0].id);
        assert_eq!(cases!(&c).len(), 1);
    }

    #[test]
    fn a_mapped_signal_inside_a_window_moves_to_the_window() {
        let c = crate::store::testing::TestDb::new();
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
        assert!(cases!(&c).is_empty());
        tick_all(&c, &p, 60 * MIN).unwrap();
        let items = cases!(&c);
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].key.asset, "db01");
        assert!(list_held(&c, None, None).unwrap().is_empty());
    }

    #[test]
    fn an_engineer_maps_an_unmapped_signal_by_hand() {
        let c = crate::store::testing::TestDb::new();
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
        let items = cases!(&c);
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].key.asset, "db01");
        assert!(matches!(map_unmapped(&c, id, "db01"), Err(StoreError::NotUnmapped(_))));
    }

    #[test]
    fn maintenance_suppresses_creation_records_occurrences_and_opens_what_still_fires() {
        let c = crate::store::testing::TestDb::new();
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
        let items = cases!(&c);
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
        let items = cases!(&c);
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
        let c = crate::store::testing::TestDb::new();
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
        assert_eq!(cases!(&c).len(), 2);
    }

    #[test]
    fn a_case_storm_opens_one_major_case_and_attaches_the_rest() {
        let c = crate::store::testing::TestDb::new();
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
        let items = cases!(&c);
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
        assert_eq!(cases!(&c).len(), 4);
    }

    #[test]
    fn a_storm_window_of_zero_never_holds_a_case() {
        let c = crate::store::testing::TestDb::new();
        let p = Policy {
            storm_cases: 3,
            storm_window_ms: 0,
            ..Policy::default()
        };
        let hosts: Vec<String> = (0..8).map(|i| format!("web{i}")).collect();
        for h in &hosts {
            mark_known(&c, h, None, &[], 0).unwrap();
        }
        // Six cases open at one instant; two signals dated a minute before
        // it (reports spooled while their collector was down) come after.
        for h in &hosts[..6] {
            apply_signal(&c, &sig(h, "disk_failing", true, 2 * MIN), &p).unwrap();
        }
        for h in &hosts[6..] {
            apply_signal(&c, &sig(h, "disk_failing", true, MIN), &p).unwrap();
        }
        tick_all(&c, &p, 2 * MIN + 100).unwrap();
        let items = cases!(&c);
        assert_eq!(items.len(), 8, "a case per host, no storm case: {items:#?}");
        assert!(items.iter().all(|i| i.key.check != STORM_CHECK), "{items:#?}");
        assert!(list_held(&c, None, None).unwrap().is_empty());
    }

    /// A batch's names answer as the store does; an asset that becomes
    /// known later (its inventory, in a job of its own) is seen by the
    /// next batch.
    #[test]
    fn a_batch_resolves_names_as_the_store_does_and_the_next_batch_sees_a_new_asset() {
        crate::store::testing::on_both(|db| {
            let mut batch = KnownNames::default();
            assert_eq!(batch.resolve(db, "mac-1").unwrap(), None);
            mark_known(db, "db01", None, &["mac-1".to_string()], 0).unwrap();
            let mut next = KnownNames::default();
            for name in ["mac-1", "db01", "mac-1"] {
                assert_eq!(next.resolve(db, name).unwrap().as_deref(), Some("db01"), "{name}");
            }
            assert_eq!(next.resolve(db, "db01-ilo").unwrap(), None);
        });
    }

    #[test]
    fn held_signals_and_windows_follow_the_same_rules_on_either_store() {
        let db = TestDb::new();
        let db: &dyn Sql = &*db;
        let p = Policy::default();
        let mac = "52:54:00:12:34:56";
        mark_known(db, "db01", Some("agent-1"), &[mac.to_string(), String::new()], 0).unwrap();
        assert_eq!(resolve_asset(db, mac).unwrap().as_deref(), Some("db01"));
        assert_eq!(resolve_asset(db, "db01").unwrap().as_deref(), Some("db01"));
        assert_eq!(resolve_asset(db, "db01-ilo").unwrap(), None);
        assert_eq!(
            gate(db, &sig(mac, "psu", true, MIN), &p, &mut KnownNames::default()).unwrap(),
            Gate::Rename("db01".into())
        );
        assert_eq!(
            gate(db, &sig("db01", "psu", true, MIN), &p, &mut KnownNames::default()).unwrap(),
            Gate::Pass
        );

        let ilo = sig("db01-ilo", "psu", true, MIN);
        assert_eq!(
            gate(db, &ilo, &p, &mut KnownNames::default()).unwrap(),
            Gate::Hold(Held::Unmapped, None)
        );
        let (id, new) = hold(db, &ilo, Held::Unmapped, None).unwrap();
        assert!(new);
        assert_eq!(
            hold(db, &sig("db01-ilo", "psu", true, 2 * MIN), Held::Unmapped, None).unwrap(),
            (id, false)
        );
        assert_eq!(held_counts(db).unwrap(), vec![(Held::Unmapped, 1)]);
        assert!(release_due(db, 3 * MIN).unwrap().is_empty());
        // Mapped by hand, it is due and still fires: it goes through again,
        // with its evidence as held.
        map_unmapped(db, id, "db01").unwrap();
        let due = release_due(db, 3 * MIN).unwrap();
        assert_eq!(due.len(), 1);
        assert_eq!((due[0].0, due[0].1.key.asset.as_str()), (id, "db01-ilo"));
        assert_eq!(due[0].1.evidence, serde_json::json!({ "at": 2 * MIN }));
        released_into(db, ItemKind::Case, &ilo.key, None, 3 * MIN).unwrap();
        assert!(list_held(db, None, None).unwrap().is_empty());
        assert_eq!(held_one(db, id).unwrap().unwrap().occurrences, 2);

        // A window holds db01's signals; a clear one is released opening nothing.
        let w = window(db, Some("db01"), 0, 60 * MIN);
        let fs = sig("db01", "fs_full", true, 4 * MIN);
        assert_eq!(
            gate(db, &fs, &p, &mut KnownNames::default()).unwrap(),
            Gate::Hold(Held::Maintenance, Some(w))
        );
        let (fs_id, _) = hold(db, &fs, Held::Maintenance, Some(w)).unwrap();
        note_clear(db, &sig("db01", "fs_full", false, 5 * MIN)).unwrap();
        assert!(!held_one(db, fs_id).unwrap().unwrap().firing);
        assert_eq!(end_window(db, w, 6 * MIN).unwrap().ends_at_ms, 60 * MIN);
        assert_eq!(windows(db, None, None).unwrap()[0].ends_at_ms, 6 * MIN);
        assert!(release_due(db, 7 * MIN).unwrap().is_empty());
        assert_eq!(
            held_by(db, Held::Maintenance, w).unwrap()[0].released_at_ms,
            Some(7 * MIN)
        );
        // A window not yet started is removed when ended.
        let later = window(db, None, 100 * MIN, 200 * MIN);
        end_window(db, later, 8 * MIN).unwrap();
        assert!(matches!(
            end_window(db, later, 8 * MIN),
            Err(StoreError::NoSuchWindow(_))
        ));
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
