//! Persistence of findings and cases: the `items` table (one row per item,
//! at most one active per kind and identity key, enforced by a unique partial
//! index) and the append-only `item_log` (who moved what from where to where,
//! and when). Each function loads what [`lifecycle`] needs, asks it, and
//! writes its decision in the caller's transaction (the store's writer
//! batch); a person's action runs inside a savepoint, so it is atomic on its
//! own, and a signal's inserts each run in one (see [`apply_signal`]).
//! The rows are the store's ([`crate::store::items`]); this module turns
//! them into [`Item`]s and back.

use std::collections::{HashMap, HashSet};

use super::hold::{self, Gate, Held};
use super::lifecycle::{self, Action, Decision, IdentityKey, Item, ItemKind, Policy, Severity, Signal, Status};
use super::retired::Retired;
use crate::store::StoreError;
use crate::store::holds::HeldSignals;
use crate::store::items::{ItemFilter, ItemKey, ItemRow, Items, LogRow, NewLog, atomically};
use crate::store::sql::Sql;

pub use crate::store::items::INACTIVE_STATUSES;

/// What [`apply_signal`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Created(i64),
    Updated(i64),
    Reopened(i64),
    /// A new item `id`, a recurrence of the ended item `of`.
    Recurrence {
        id: i64,
        of: i64,
    },
    /// Nothing changed; the active item, if there is one.
    Nothing(Option<i64>),
    /// The signal would open or reopen an item but is held (see
    /// [`hold`]): `id` is the held row, `holder` the maintenance window or
    /// storm case, `new` whether it was not held for this reason before.
    Held {
        id: i64,
        reason: Held,
        holder: Option<i64>,
        new: bool,
    },
}

impl Outcome {
    /// The item the signal landed on, if any.
    pub fn item_id(self) -> Option<i64> {
        match self {
            Outcome::Created(id) | Outcome::Updated(id) | Outcome::Reopened(id) | Outcome::Recurrence { id, .. } => {
                Some(id)
            }
            Outcome::Nothing(id) => id,
            Outcome::Held { .. } => None,
        }
    }
}

/// Who may read a log row. Staff read every row; a customer's user reads
/// only the public comments (and the plain status changes, see
/// [`crate::queue::customer_view`]). Everything but a comment a person made
/// public is internal, and so is every row written before rows had a
/// visibility.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    /// Staff only: the safe default.
    #[default]
    Internal,
    /// The case's customer sees it too.
    Public,
}

impl Visibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Visibility::Internal => "internal",
            Visibility::Public => "public",
        }
    }

    pub fn parse(s: &str) -> Option<Visibility> {
        match s {
            "internal" => Some(Visibility::Internal),
            "public" => Some(Visibility::Public),
            _ => None,
        }
    }
}

/// One row of an item's log.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LogEntry {
    pub id: i64,
    pub item_id: i64,
    pub at_ms: i64,
    /// `rule:<name>`, `person:<name>` (staff) or `customer:<name>` (a
    /// customer's user).
    pub actor: String,
    /// `None` for the row that opened the item.
    pub from_status: Option<Status>,
    pub to_status: Status,
    pub comment: Option<String>,
    pub visibility: Visibility,
}

/// Active items of one kind, severity and customer (for /metrics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenCount {
    pub kind: ItemKind,
    pub severity: String,
    pub customer: String,
    pub count: u64,
}

/// Counts the active items by kind, severity and customer.
pub fn open_counts(db: &dyn Sql) -> Result<Vec<OpenCount>, StoreError> {
    let mut out = Vec::new();
    for row in db.open_item_counts()? {
        if let Some(kind) = ItemKind::parse(&row.kind) {
            out.push(OpenCount {
                kind,
                severity: row.severity,
                customer: row.customer,
                count: u64::try_from(row.count).unwrap_or(0),
            });
        }
    }
    Ok(out)
}

/// The newest log row's id, so [`transitions_since`] can name what a job did.
pub fn log_high_water(db: &dyn Sql) -> Result<i64, StoreError> {
    Ok(db.log_high_water()?)
}

/// The transitions logged after row `after`, named by event: `opened`,
/// `reopened`, `recovered`, `resolved`, or `changed` for any other status
/// change. Log rows that keep the status (occurrences) are no transition.
pub fn transitions_since(db: &dyn Sql, after: i64) -> Result<Vec<&'static str>, StoreError> {
    let mut out = Vec::new();
    for (from, to) in db.log_moves_since(after)? {
        let base = |s: &str| s.split(':').next().unwrap_or("").to_string();
        let to_base = base(&to);
        let event = match from.as_deref().map(base) {
            None => "opened",
            Some(f) if f == to_base => continue,
            Some(f)
                if matches!(f.as_str(), "recovered" | "resolved" | "closed" | "fixed" | "verified")
                    && !matches!(
                        to_base.as_str(),
                        "recovered" | "resolved" | "closed" | "fixed" | "verified" | "cancelled"
                    ) =>
            {
                "reopened"
            }
            Some(_) => match to_base.as_str() {
                "recovered" => "recovered",
                "resolved" => "resolved",
                _ => "changed",
            },
        };
        out.push(event);
    }
    Ok(out)
}

/// Which items [`list`] returns; every field narrows, `Default` lists all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub kind: Option<ItemKind>,
    pub status_active_only: bool,
    pub severity_min: Option<Severity>,
    pub customer: Option<String>,
    pub asset: Option<String>,
    /// Only items in this status (its name, e.g. `on_hold` for every reason).
    pub status_name: Option<&'static str>,
    /// Only items with an id below this (the next page of a newest-first list).
    pub before_id: Option<i64>,
    /// At most this many items; `None`: all.
    pub limit: Option<u32>,
}

fn corrupt(id: i64, reason: impl Into<String>) -> StoreError {
    StoreError::CorruptItem {
        id,
        reason: reason.into(),
    }
}

/// The stored row as an [`Item`]; a value that does not decode is a typed
/// error naming the item.
pub(crate) fn item_from_row(row: ItemRow) -> Result<Item, StoreError> {
    let id = row.id;
    let key = IdentityKey {
        customer: row.customer,
        asset: row.asset,
        check: row.check,
        component: row.component,
    };
    let kind = ItemKind::parse(&row.kind).ok_or_else(|| corrupt(id, "unknown kind"))?;
    let status = Status::from_parts(&row.status, row.hold_reason.as_deref())
        .ok_or_else(|| corrupt(id, format!("unknown status {}", row.status)))?;
    let status_before_recovery = match row.status_before_recovery.as_deref() {
        None => None,
        Some(s) => Some(Status::parse(s).ok_or_else(|| corrupt(id, format!("unknown status {s}")))?),
    };
    Ok(Item {
        id: Some(id),
        key,
        kind,
        status,
        severity: Severity::parse(&row.severity).ok_or_else(|| corrupt(id, "unknown severity"))?,
        rule: row.rule,
        opened_at_ms: row.opened_at_ms,
        updated_at_ms: row.updated_at_ms,
        last_firing_at_ms: row.last_firing_at_ms,
        cleared_at_ms: row.cleared_at_ms,
        resolved_at_ms: row.resolved_at_ms,
        occurrences: u64::try_from(row.occurrences).map_err(|_| corrupt(id, "negative occurrences"))?,
        reopen_count: u32::try_from(row.reopen_count).map_err(|_| corrupt(id, "bad reopen_count"))?,
        recurrence_of: row.recurrence_of,
        promoted_from: row.promoted_from,
        flapping: row.flapping,
        touched_by_person: row.touched_by_person,
        status_before_recovery,
        evidence: serde_json::from_str(&row.evidence).map_err(|e| corrupt(id, format!("evidence: {e}")))?,
        recent_changes: serde_json::from_str(&row.recent_changes)
            .map_err(|e| corrupt(id, format!("recent_changes: {e}")))?,
    })
}

fn item_key<'a>(kind: ItemKind, key: &'a IdentityKey) -> ItemKey<'a> {
    ItemKey {
        kind: kind.as_str(),
        customer: &key.customer,
        asset: &key.asset,
        check: &key.check,
        component: &key.component,
    }
}

fn load_active(db: &dyn Sql, kind: ItemKind, key: &IdentityKey) -> Result<Option<Item>, StoreError> {
    db.active_item(&item_key(kind, key))?.map(item_from_row).transpose()
}

/// The newest ended item for the key that may be reopened. Cancelled items
/// are not: a false positive, a duplicate or a merged case was never a fault
/// of its own to come back.
fn load_last_ended(db: &dyn Sql, kind: ItemKind, key: &IdentityKey) -> Result<Option<Item>, StoreError> {
    db.last_ended_item(&item_key(kind, key))?.map(item_from_row).transpose()
}

fn load_by_id(db: &dyn Sql, id: i64) -> Result<Option<Item>, StoreError> {
    db.load_item(id)?.map(item_from_row).transpose()
}

fn json_text<T: serde::Serialize>(id: i64, v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| corrupt(id, e.to_string()))
}

/// `item` as the row to store.
fn item_row(id: i64, item: &Item) -> Result<ItemRow, StoreError> {
    Ok(ItemRow {
        id,
        kind: item.kind.as_str().to_owned(),
        customer: item.key.customer.clone(),
        asset: item.key.asset.clone(),
        check: item.key.check.clone(),
        component: item.key.component.clone(),
        status: item.status.name().to_owned(),
        hold_reason: item.status.reason().map(str::to_owned),
        severity: item.severity.as_str().to_owned(),
        rule: item.rule.clone(),
        opened_at_ms: item.opened_at_ms,
        updated_at_ms: item.updated_at_ms,
        last_firing_at_ms: item.last_firing_at_ms,
        cleared_at_ms: item.cleared_at_ms,
        resolved_at_ms: item.resolved_at_ms,
        occurrences: i64::try_from(item.occurrences).unwrap_or(i64::MAX),
        reopen_count: i64::from(item.reopen_count),
        recurrence_of: item.recurrence_of,
        promoted_from: item.promoted_from,
        flapping: item.flapping,
        touched_by_person: item.touched_by_person,
        status_before_recovery: item.status_before_recovery.map(|s| s.to_string()),
        evidence: json_text(id, &item.evidence)?,
        recent_changes: json_text(id, &item.recent_changes)?,
    })
}

/// Inserts `item`, in a savepoint of its own: a unique violation (another
/// writer's active item for the key) is undone alone, for the caller to try
/// again.
fn insert_item(db: &dyn Sql, item: &Item) -> Result<i64, StoreError> {
    let row = item_row(0, item)?;
    Ok(atomically(db, || db.insert_item(&row))?)
}

fn update_item(db: &dyn Sql, id: i64, item: &Item) -> Result<(), StoreError> {
    Ok(db.update_item(id, &item_row(id, item)?)?)
}

/// Appends to item `item_id`'s log (and, for a case, to the outbox).
fn log(
    db: &dyn Sql,
    item_id: i64,
    at_ms: i64,
    actor: &str,
    from: Option<Status>,
    to: Status,
    comment: Option<&str>,
) -> Result<(), StoreError> {
    log_as(db, item_id, at_ms, actor, from, to, comment, Visibility::Internal)
}

/// [`log`] with a visibility other than internal.
#[allow(clippy::too_many_arguments)]
fn log_as(
    db: &dyn Sql,
    item_id: i64,
    at_ms: i64,
    actor: &str,
    from: Option<Status>,
    to: Status,
    comment: Option<&str>,
    visibility: Visibility,
) -> Result<(), StoreError> {
    let from = from.map(|s| s.to_string());
    let to = to.to_string();
    db.append_log(&NewLog {
        item_id,
        at_ms,
        actor,
        from_status: from.as_deref(),
        to_status: &to,
        comment,
        visibility: visibility.as_str(),
    })?;
    Ok(())
}

fn is_unique_violation(e: &StoreError) -> bool {
    match e {
        StoreError::Db(e) => e.is_unique_violation(),
        _ => false,
    }
}

/// Logs a change of the flapping mark, which is not a status change but is
/// what stops and restarts notifications.
fn log_flapping(
    conn: &dyn Sql,
    id: i64,
    before: &Item,
    after: &Item,
    at_ms: i64,
    actor: &str,
) -> Result<(), StoreError> {
    if before.flapping != after.flapping {
        let comment = if after.flapping { "flapping" } else { "stable again" };
        log(conn, id, at_ms, actor, Some(after.status), after.status, Some(comment))?;
    }
    Ok(())
}

/// What a batch of signals can change, read once per host: the keys with an
/// active item or a held row. A clear of any other key changes nothing (no
/// item to clear, nothing held to note a clear on), so [`LiveKeys::passes_over`]
/// lets the caller skip it without a statement: most of a report's signals
/// are such clears, one per rule that is not firing.
#[derive(Debug, Default)]
pub struct LiveKeys {
    /// Assets, by customer, whose keys are loaded.
    loaded: HashMap<String, HashSet<String>>,
    /// The loaded keys that have an active item or a held row, by kind.
    live: HashMap<ItemKind, HashSet<IdentityKey>>,
    /// Keys a signal of this batch went through the lifecycle for, under any
    /// asset name (a held identifier may have been renamed to its asset), as
    /// (kind, customer, check, component): what they did is not in `live`,
    /// so they are never passed over. A report's few such keys are searched
    /// in order.
    touched: Vec<(ItemKind, String, String, String)>,
}

impl LiveKeys {
    /// Whether `signal` changes nothing and may be skipped: a clear of a key
    /// that has no active item and nothing held.
    pub fn passes_over(&mut self, db: &dyn Sql, signal: &Signal) -> Result<bool, StoreError> {
        let key = &signal.key;
        if signal.firing || self.touched(signal.kind, key) {
            return Ok(false);
        }
        if !self.loaded.get(&key.customer).is_some_and(|a| a.contains(&key.asset)) {
            let rows = db.active_keys_on(&key.customer, &key.asset)?.into_iter();
            for (kind, check, component) in rows.chain(db.held_keys_on(&key.customer, &key.asset)?) {
                if let Some(kind) = ItemKind::parse(&kind) {
                    let key = IdentityKey {
                        customer: key.customer.clone(),
                        asset: key.asset.clone(),
                        check,
                        component,
                    };
                    self.live.entry(kind).or_default().insert(key);
                }
            }
            self.loaded
                .entry(key.customer.clone())
                .or_default()
                .insert(key.asset.clone());
        }
        Ok(!self.live.get(&signal.kind).is_some_and(|keys| keys.contains(key)))
    }

    /// `signal` went through [`apply_signal`] (and may have opened an item or
    /// held itself, under its own asset or the one its identifier names, or
    /// a storm case of its customer).
    pub fn applied(&mut self, signal: &Signal) {
        let storm = hold::storm_key(&signal.key.customer);
        for (kind, key) in [(signal.kind, &signal.key), (ItemKind::Case, &storm)] {
            if !self.touched(kind, key) {
                let loose = (kind, key.customer.clone(), key.check.clone(), key.component.clone());
                self.touched.push(loose);
            }
        }
    }

    fn touched(&self, kind: ItemKind, key: &IdentityKey) -> bool {
        self.touched.iter().any(|(k, customer, check, component)| {
            *k == kind && *customer == key.customer && *check == key.check && *component == key.component
        })
    }
}

/// What a batch of signals (a signals job, a tick) reads once per asset
/// rather than once per signal: the parts taken out of service and the
/// known asset a name stands for. Neither changes inside such a batch: parts
/// are retired and assets become known by reports and people, in jobs of
/// their own.
#[derive(Debug, Default)]
pub struct Lookups {
    retired: Retired,
    names: hold::KnownNames,
}

/// Applies one signal: the idempotent upsert of the item for its key.
pub fn apply_signal(conn: &dyn Sql, signal: &Signal, policy: &Policy) -> Result<Outcome, StoreError> {
    apply_signal_in(conn, signal, policy, &mut Lookups::default())
}

/// [`apply_signal`] as one of a batch that shares `lookups`.
pub fn apply_signal_in(
    conn: &dyn Sql,
    signal: &Signal,
    policy: &Policy,
    lookups: &mut Lookups,
) -> Result<Outcome, StoreError> {
    // Two tries: if another writer inserted the active item (or held row)
    // between our read and our insert, the unique index refuses ours and the
    // second try updates theirs. Only an insert can be refused so, and each
    // runs in a savepoint of its own ([`insert_item`], [`hold::hold`]): a
    // signal that updates its item (most do) costs no savepoint, and on
    // PostgreSQL the refusal does not abort the caller's transaction.
    match apply_signal_once(conn, signal, policy, lookups) {
        Err(e) if is_unique_violation(&e) => apply_signal_once(conn, signal, policy, lookups),
        other => other,
    }
}

fn apply_signal_once(
    conn: &dyn Sql,
    signal: &Signal,
    policy: &Policy,
    lookups: &mut Lookups,
) -> Result<Outcome, StoreError> {
    // A part taken out of service cannot fire any more: what still arrives
    // about it (an agent's cached reading of the old disk) is a clear.
    let as_clear;
    let signal = if signal.firing
        && lookups
            .retired
            .is_retired(conn, &signal.key.asset, &signal.key.component, signal.at_ms)?
    {
        as_clear = Signal {
            firing: false,
            ..signal.clone()
        };
        &as_clear
    } else {
        signal
    };
    let actor = format!("rule:{}", signal.rule);
    let active = load_active(conn, signal.kind, &signal.key)?;
    // A clear with no active item changes no item: the ended one is not needed.
    let last = match active {
        None if signal.firing => load_last_ended(conn, signal.kind, &signal.key)?,
        _ => None,
    };
    let active_id = active.as_ref().and_then(|i| i.id);
    let decision = lifecycle::apply(active.as_ref(), last.as_ref(), signal, policy);
    match &decision {
        // Opening or reopening an item passes the gate first.
        Decision::Create(_) | Decision::CreateRecurrence(_) | Decision::Reopen { .. } => {
            match hold::gate(conn, signal, policy, &mut lookups.names)? {
                Gate::Pass => {}
                Gate::Rename(name) => {
                    let mut renamed = signal.clone();
                    renamed.key.asset = name;
                    // Whatever becomes of it under the asset's name (an item,
                    // or held there for another reason), the row held under
                    // the other identifier is done.
                    let out = apply_signal_once(conn, &renamed, policy, lookups)?;
                    hold::released_into(conn, signal.kind, &signal.key, out.item_id(), signal.at_ms)?;
                    return Ok(out);
                }
                Gate::Hold(why, holder) => return held(conn, signal, why, holder, policy, lookups),
            }
        }
        Decision::Nothing if !signal.firing && active.is_none() => hold::note_clear(conn, signal)?,
        _ => {}
    }
    // An event's message goes into the item's history, so the case says
    // what happened (which disk of the array failed, with its serial).
    let note = |id: i64, item: &Item| match signal.event_message() {
        Some(m) => log(
            conn,
            id,
            item.updated_at_ms,
            &actor,
            Some(item.status),
            item.status,
            Some(m),
        ),
        None => Ok(()),
    };
    match decision {
        Decision::Nothing => Ok(Outcome::Nothing(active_id)),
        Decision::Create(item) => {
            let id = insert_item(conn, &item)?;
            log(conn, id, signal.at_ms, &actor, None, item.status, None)?;
            note(id, &item)?;
            hold::released_into(conn, signal.kind, &signal.key, Some(id), signal.at_ms)?;
            Ok(Outcome::Created(id))
        }
        Decision::CreateRecurrence(item) => {
            let id = insert_item(conn, &item)?;
            let of = item
                .recurrence_of
                .ok_or_else(|| corrupt(id, "recurrence without origin"))?;
            log(
                conn,
                id,
                signal.at_ms,
                &actor,
                None,
                item.status,
                Some(&format!("recurrence of {of}")),
            )?;
            note(id, &item)?;
            hold::released_into(conn, signal.kind, &signal.key, Some(id), signal.at_ms)?;
            Ok(Outcome::Recurrence { id, of })
        }
        Decision::Reopen { item } => {
            let old = last.ok_or_else(|| corrupt(0, "reopen without an ended item"))?;
            let id = old.id.ok_or_else(|| corrupt(0, "reopen of an unsaved item"))?;
            update_item(conn, id, &item)?;
            log(
                conn,
                id,
                signal.at_ms,
                &actor,
                Some(old.status),
                item.status,
                Some("reopened"),
            )?;
            note(id, &item)?;
            hold::released_into(conn, signal.kind, &signal.key, Some(id), signal.at_ms)?;
            Ok(Outcome::Reopened(id))
        }
        Decision::Update { item, transition } => {
            let before = active.ok_or_else(|| corrupt(0, "update without an active item"))?;
            let id = before.id.ok_or_else(|| corrupt(0, "update of an unsaved item"))?;
            update_item(conn, id, &item)?;
            if let Some((from, to)) = transition {
                log(conn, id, signal.at_ms, &actor, Some(from), to, None)?;
            }
            log_flapping(conn, id, &before, &item, signal.at_ms, &actor)?;
            note(id, &item)?;
            Ok(Outcome::Updated(id))
        }
    }
}

/// Holds a signal the gate stopped. A storm hold attaches it to the
/// customer's one storm case, opening that case first when there is none.
fn held(
    conn: &dyn Sql,
    signal: &Signal,
    why: Held,
    holder: Option<i64>,
    policy: &Policy,
    lookups: &mut Lookups,
) -> Result<Outcome, StoreError> {
    if why == Held::Storm && signal.firing {
        // Attach to the customer's storm case, opening it first when there
        // is none; then feed it, so its evidence counts what is attached.
        let customer = &signal.key.customer;
        let storm_id = match load_active(conn, ItemKind::Case, &hold::storm_key(customer))?.and_then(|i| i.id) {
            Some(id) => id,
            None => {
                let open = hold::storm_signal(customer, true, signal.at_ms, 1, policy);
                apply_signal_once(conn, &open, policy, lookups)?
                    .item_id()
                    .ok_or_else(|| corrupt(0, "a storm case that did not open"))?
            }
        };
        let (id, new) = hold::hold(conn, signal, why, Some(storm_id))?;
        let attached = hold::attached_count(conn, storm_id)?;
        apply_signal_once(
            conn,
            &hold::storm_signal(customer, true, signal.at_ms, attached, policy),
            policy,
            lookups,
        )?;
        return Ok(Outcome::Held {
            id,
            reason: why,
            holder: Some(storm_id),
            new,
        });
    }
    let (id, new) = hold::hold(conn, signal, why, holder)?;
    Ok(Outcome::Held {
        id,
        reason: why,
        holder,
        new,
    })
}

/// Applies the time-driven changes ([`lifecycle::tick`]) to every item that
/// may have one; returns how many changed.
pub fn tick_all(conn: &dyn Sql, policy: &Policy, now_ms: i64) -> Result<usize, StoreError> {
    atomically(conn, || {
        let candidates = conn
            .recovered_or_flapping_items()?
            .into_iter()
            .map(item_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let mut changed = 0;
        let mut lookups = Lookups::default();
        for before in candidates {
            let Some(Decision::Update { item, transition }) = lifecycle::tick(&before, policy, now_ms) else {
                continue;
            };
            let id = before.id.ok_or_else(|| corrupt(0, "tick of an unsaved item"))?;
            let actor = format!("rule:{}", before.rule);
            update_item(conn, id, &item)?;
            if let Some((from, to)) = transition {
                log(conn, id, now_ms, &actor, Some(from), to, Some("quiet period passed"))?;
            }
            log_flapping(conn, id, &before, &item, now_ms, &actor)?;
            changed += 1;
        }
        // A storm case clears once nothing attached to it has fired for a
        // whole storm window; it then recovers and resolves like any case.
        for (id, customer, last_firing_ms, firing_attached) in hold::active_storms(conn)? {
            if firing_attached == 0 && now_ms.saturating_sub(last_firing_ms) >= policy.storm_window_ms {
                let attached = hold::attached_count(conn, id)?;
                let clear = hold::storm_signal(&customer, false, now_ms, attached, policy);
                if !matches!(
                    apply_signal_once(conn, &clear, policy, &mut lookups)?,
                    Outcome::Nothing(_)
                ) {
                    changed += 1;
                }
            }
        }
        // Held signals whose reason has gone take the normal path again.
        for (held_id, signal) in hold::release_due(conn, now_ms)? {
            match apply_signal_once(conn, &signal, policy, &mut lookups)? {
                Outcome::Held { .. } => {}
                out => {
                    if out.item_id().is_none() {
                        hold::release_empty(conn, held_id, now_ms)?;
                    }
                    changed += 1;
                }
            }
        }
        Ok(changed)
    })
}

/// A person's action on item `id`; `actor` is the person's name. Returns the
/// changed item.
pub fn person_action(
    conn: &dyn Sql,
    id: i64,
    action: Action,
    actor: &str,
    comment: Option<&str>,
    now_ms: i64,
) -> Result<Item, StoreError> {
    act_by(conn, id, action, &format!("person:{actor}"), comment, now_ms)
}

/// An action on item `id` by `actor`: `person:<name>`, or `rule:<what>` for
/// one the collector takes itself (assigning a new case by rotation, closing
/// one whose satisfaction survey went unanswered). Only a person's action
/// marks the item touched, so an untouched case still resolves by itself
/// when its signal clears.
pub fn act_by(
    conn: &dyn Sql,
    id: i64,
    action: Action,
    actor: &str,
    comment: Option<&str>,
    now_ms: i64,
) -> Result<Item, StoreError> {
    atomically(conn, || {
        let item = load_by_id(conn, id)?.ok_or(StoreError::NoSuchItem(id))?;
        let (mut next, (from, to)) = lifecycle::act(&item, action, now_ms)?;
        next.touched_by_person = actor.starts_with("person:") || item.touched_by_person;
        update_item(conn, id, &next)?;
        log(conn, id, now_ms, actor, Some(from), to, comment)?;
        Ok(next)
    })
}

/// A log entry that changes no status: a comment, an assignment or an
/// escalation. `actor` is `person:<name>` or `rule:<what>`; a person's note
/// marks the item touched.
pub fn note(conn: &dyn Sql, id: i64, actor: &str, comment: &str, now_ms: i64) -> Result<Item, StoreError> {
    comment_as(conn, id, actor, comment, Visibility::Internal, now_ms)
}

/// A note with a visibility: a comment a person made public (or kept
/// internal). Only staff (`person:<name>`) mark the item touched; a
/// customer's comment (`customer:<name>`) does not, so it never stands for
/// the engineers' response.
pub fn comment_as(
    conn: &dyn Sql,
    id: i64,
    actor: &str,
    comment: &str,
    visibility: Visibility,
    now_ms: i64,
) -> Result<Item, StoreError> {
    atomically(conn, || {
        let mut item = load_by_id(conn, id)?.ok_or(StoreError::NoSuchItem(id))?;
        if actor.starts_with("person:") {
            item.touched_by_person = true;
        }
        item.updated_at_ms = now_ms;
        update_item(conn, id, &item)?;
        log_as(
            conn,
            id,
            now_ms,
            actor,
            Some(item.status),
            item.status,
            Some(comment),
            visibility,
        )?;
        Ok(item)
    })
}

/// Opens a case that a person reported (not a rule): no gate, since the
/// person has seen the fault. Idempotent like [`apply_signal`]: when the key
/// already has an active case, that case is returned with `false`.
pub fn open_reported(conn: &dyn Sql, signal: &Signal, actor: &str, now_ms: i64) -> Result<(i64, bool), StoreError> {
    atomically(conn, || {
        if let Some(existing) = load_active(conn, signal.kind, &signal.key)? {
            return Ok((existing.id.ok_or_else(|| corrupt(0, "active item without id"))?, false));
        }
        let mut item = Item::opened_by(signal);
        item.touched_by_person = true;
        let id = insert_item(conn, &item)?;
        log(conn, id, now_ms, actor, None, item.status, Some("reported"))?;
        Ok((id, true))
    })
}

/// One item, without its log.
pub fn item(conn: &dyn Sql, id: i64) -> Result<Option<Item>, StoreError> {
    load_by_id(conn, id)
}

/// Promotes finding `finding_id` to a new case (logged on both); returns the
/// case's id. Fails if the key already has an active case.
pub fn promote_to_case(
    conn: &dyn Sql,
    finding_id: i64,
    actor: &str,
    comment: Option<&str>,
    now_ms: i64,
) -> Result<i64, StoreError> {
    atomically(conn, || {
        let finding = load_by_id(conn, finding_id)?.ok_or(StoreError::NoSuchItem(finding_id))?;
        let case = lifecycle::promote_to_case(&finding, now_ms)?;
        if let Some(existing) = load_active(conn, ItemKind::Case, &case.key)? {
            return Err(StoreError::ActiveItemExists {
                key: case.key.to_string(),
                id: existing.id.unwrap_or(0),
            });
        }
        let actor = format!("person:{actor}");
        let case_id = insert_item(conn, &case)?;
        log(conn, case_id, now_ms, &actor, None, case.status, comment)?;
        let mut touched = finding.clone();
        touched.touched_by_person = true;
        touched.updated_at_ms = now_ms;
        update_item(conn, finding_id, &touched)?;
        log(
            conn,
            finding_id,
            now_ms,
            &actor,
            Some(finding.status),
            finding.status,
            Some(&format!("promoted to case {case_id}")),
        )?;
        Ok(case_id)
    })
}

/// A log row as a [`LogEntry`]; a status this version cannot read makes
/// its item corrupt.
pub(crate) fn log_entry_from_row(row: LogRow) -> Result<LogEntry, StoreError> {
    let id = row.item_id;
    let from_status = match row.from_status {
        None => None,
        Some(s) => Some(Status::parse(&s).ok_or_else(|| corrupt(id, format!("log status {s}")))?),
    };
    let to_status =
        Status::parse(&row.to_status).ok_or_else(|| corrupt(id, format!("log status {}", row.to_status)))?;
    let visibility =
        Visibility::parse(&row.visibility).ok_or_else(|| corrupt(id, format!("log visibility {}", row.visibility)))?;
    Ok(LogEntry {
        id: row.id,
        item_id: row.item_id,
        at_ms: row.at_ms,
        actor: row.actor,
        from_status,
        to_status,
        comment: row.comment,
        visibility,
    })
}

/// An item and its whole log, oldest entry first.
pub fn get(conn: &dyn Sql, id: i64) -> Result<Option<(Item, Vec<LogEntry>)>, StoreError> {
    let Some(item) = load_by_id(conn, id)? else {
        return Ok(None);
    };
    let log = conn
        .item_log(id)?
        .into_iter()
        .map(log_entry_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Some((item, log)))
}

/// Those of the items `ids` there are, each with its log, in the order of
/// `ids`: a few statements for any number of items.
pub fn get_many(conn: &dyn Sql, ids: &[i64]) -> Result<Vec<(Item, Vec<LogEntry>)>, StoreError> {
    // Each asked for once, so each log is read once and stays in order.
    let mut once = ids.to_vec();
    once.sort_unstable();
    once.dedup();
    let mut logs: HashMap<i64, Vec<LogEntry>> = HashMap::new();
    for row in conn.item_logs(&once)? {
        logs.entry(row.item_id).or_default().push(log_entry_from_row(row)?);
    }
    let mut items: HashMap<i64, Item> = HashMap::new();
    for row in conn.load_items(&once)? {
        items.insert(row.id, item_from_row(row)?);
    }
    Ok(ids
        .iter()
        .filter_map(|id| Some((items.remove(id)?, logs.remove(id).unwrap_or_default())))
        .collect())
}

/// Items matching `filter`, newest first.
pub fn list(db: &dyn Sql, filter: &Filter) -> Result<Vec<Item>, StoreError> {
    // Severity is stored as its name; the order lives in the enum.
    let severities = filter.severity_min.map(|min| {
        [Severity::Info, Severity::Warning, Severity::Major, Severity::Critical]
            .into_iter()
            .filter(|s| *s >= min)
            .map(Severity::as_str)
            .collect()
    });
    db.list_items(&ItemFilter {
        kind: filter.kind.map(ItemKind::as_str),
        active_only: filter.status_active_only,
        severities,
        customer: filter.customer.as_deref(),
        asset: filter.asset.as_deref(),
        status: filter.status_name,
        before_id: filter.before_id,
        limit: filter.limit,
    })?
    .into_iter()
    .map(item_from_row)
    .collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::cases::{CancelReason, HoldReason};
    use crate::store::items::ItemRow;
    use crate::store::testing::{TestDb, on_both, outbox_rows};

    const MIN: i64 = 60_000;

    fn open() -> TestDb {
        let c = TestDb::new();
        hold::mark_known(&c, "srv1", None, &[], 0).unwrap();
        c
    }

    fn sig(kind: ItemKind, firing: bool, at_ms: i64) -> Signal {
        Signal {
            event: None,
            key: IdentityKey {
                customer: "acme".into(),
                asset: "srv1".into(),
                check: "fs_full".into(),
                component: "/var".into(),
            },
            kind,
            severity: Severity::Warning,
            rule: "fs_full".into(),
            firing,
            at_ms,
            evidence: serde_json::json!({ "used_pct": 97, "at": at_ms }),
        }
    }
    fn fire(at: i64) -> Signal {
        sig(ItemKind::Case, true, at)
    }
    fn clear(at: i64) -> Signal {
        sig(ItemKind::Case, false, at)
    }

    fn item(c: &dyn Sql, id: i64) -> Item {
        get(c, id).unwrap().unwrap().0
    }
    fn log_of(c: &dyn Sql, id: i64) -> Vec<LogEntry> {
        get(c, id).unwrap().unwrap().1
    }

    #[test]
    fn create_then_repeat_firing_is_one_item() {
        let c = open();
        let p = Policy::default();
        let Outcome::Created(id) = apply_signal(&c, &fire(0), &p).unwrap() else {
            panic!()
        };
        for i in 1..5 {
            assert_eq!(apply_signal(&c, &fire(i * MIN), &p).unwrap(), Outcome::Updated(id));
        }
        let it = item(&c, id);
        assert_eq!(it.occurrences, 5);
        assert_eq!(it.status, Status::New);
        assert_eq!(it.evidence["at"], 4 * MIN);
        assert_eq!(list(&c, &Filter::default()).unwrap().len(), 1);
        let log = log_of(&c, id);
        assert_eq!(log.len(), 1);
        assert_eq!(log[0].actor, "rule:fs_full");
        assert_eq!(log[0].from_status, None);
        assert_eq!(log[0].to_status, Status::New);
    }

    #[test]
    fn duplicate_delivery_is_a_no_op() {
        let c = open();
        let p = Policy::default();
        let Outcome::Created(id) = apply_signal(&c, &fire(0), &p).unwrap() else {
            panic!()
        };
        assert_eq!(apply_signal(&c, &fire(0), &p).unwrap(), Outcome::Nothing(Some(id)));
        apply_signal(&c, &fire(MIN), &p).unwrap();
        let before = item(&c, id);
        assert_eq!(apply_signal(&c, &fire(MIN), &p).unwrap(), Outcome::Nothing(Some(id)));
        assert_eq!(item(&c, id), before);
        assert_eq!(before.occurrences, 2);
    }

    #[test]
    fn recover_refire_and_auto_resolve_with_log() {
        let c = open();
        let p = Policy::default();
        let Outcome::Created(id) = apply_signal(&c, &fire(0), &p).unwrap() else {
            panic!()
        };
        // Before the minimum hold a clear changes nothing.
        assert_eq!(apply_signal(&c, &clear(MIN), &p).unwrap(), Outcome::Nothing(Some(id)));
        assert_eq!(item(&c, id).status, Status::New);
        apply_signal(&c, &clear(p.min_hold_ms), &p).unwrap();
        assert_eq!(item(&c, id).status, Status::Recovered);
        apply_signal(&c, &fire(6 * MIN), &p).unwrap();
        assert_eq!(item(&c, id).status, Status::New);
        apply_signal(&c, &clear(12 * MIN), &p).unwrap();
        assert_eq!(tick_all(&c, &p, 12 * MIN + p.quiet_period_ms - 1).unwrap(), 0);
        assert_eq!(tick_all(&c, &p, 12 * MIN + p.quiet_period_ms).unwrap(), 1);
        let (it, log) = get(&c, id).unwrap().unwrap();
        assert_eq!(it.status, Status::Resolved);
        let moves: Vec<_> = log.iter().map(|l| (l.from_status, l.to_status)).collect();
        assert_eq!(
            moves,
            vec![
                (None, Status::New),
                (Some(Status::New), Status::Recovered),
                (Some(Status::Recovered), Status::New),
                (Some(Status::New), Status::Recovered),
                (Some(Status::Recovered), Status::Resolved),
            ]
        );
        assert!(log.iter().all(|l| l.actor == "rule:fs_full"));
        // Resolved: no active item, a clear does nothing.
        assert_eq!(
            apply_signal(&c, &clear(13 * MIN + p.quiet_period_ms), &p).unwrap(),
            Outcome::Nothing(None)
        );
    }

    #[test]
    fn touched_case_waits_for_the_engineer() {
        let c = open();
        let p = Policy::default();
        let Outcome::Created(id) = apply_signal(&c, &fire(0), &p).unwrap() else {
            panic!()
        };
        person_action(&c, id, Action::Assign, "alice", Some("mine"), MIN).unwrap();
        apply_signal(&c, &clear(p.min_hold_ms), &p).unwrap();
        assert_eq!(item(&c, id).status, Status::Recovered);
        assert_eq!(tick_all(&c, &p, 10 * p.quiet_period_ms).unwrap(), 0);
        assert_eq!(item(&c, id).status, Status::Recovered);
        // Re-firing goes back to the status before recovery.
        apply_signal(&c, &fire(10 * p.quiet_period_ms), &p).unwrap();
        assert_eq!(item(&c, id).status, Status::Assigned);
        let log = log_of(&c, id);
        assert_eq!(log[1].actor, "person:alice");
        assert_eq!(log[1].comment.as_deref(), Some("mine"));
        assert_eq!(log[1].to_status, Status::Assigned);
    }

    fn resolved_case(c: &dyn Sql, at: i64) -> i64 {
        let p = Policy::default();
        let Outcome::Created(id) = apply_signal(c, &fire(0), &p).unwrap() else {
            panic!()
        };
        person_action(c, id, Action::Start, "bob", None, MIN).unwrap();
        person_action(c, id, Action::Resolve, "bob", Some("disk cleaned"), at).unwrap();
        id
    }

    #[test]
    fn recurrence_within_window_reopens() {
        let c = open();
        let p = Policy::default();
        let id = resolved_case(&c, HOUR_MS);
        assert_eq!(apply_signal(&c, &fire(2 * HOUR_MS), &p).unwrap(), Outcome::Reopened(id));
        let (it, log) = get(&c, id).unwrap().unwrap();
        assert_eq!(it.status, Status::New);
        assert_eq!(it.reopen_count, 1);
        assert_eq!(it.occurrences, 2);
        let last = log.last().unwrap();
        assert_eq!(
            (last.from_status, last.to_status),
            (Some(Status::Resolved), Status::New)
        );
        assert_eq!(last.comment.as_deref(), Some("reopened"));
        // Retried delivery of the reopening firing: nothing more.
        assert_eq!(
            apply_signal(&c, &fire(2 * HOUR_MS), &p).unwrap(),
            Outcome::Nothing(Some(id))
        );
        assert_eq!(item(&c, id).reopen_count, 1);
    }

    const HOUR_MS: i64 = 60 * MIN;

    #[test]
    fn recurrence_after_window_is_linked_new_item() {
        let c = open();
        let p = Policy::default();
        let old = resolved_case(&c, HOUR_MS);
        // Closing does not move the window's start.
        person_action(&c, old, Action::Close, "bob", None, 2 * HOUR_MS).unwrap();
        let at = HOUR_MS + p.reopen_window_ms + 1;
        let Outcome::Recurrence { id, of } = apply_signal(&c, &fire(at), &p).unwrap() else {
            panic!()
        };
        assert_eq!(of, old);
        assert_ne!(id, old);
        let it = item(&c, id);
        assert_eq!(it.recurrence_of, Some(old));
        assert_eq!(it.status, Status::New);
        assert_eq!(item(&c, old).status, Status::Closed);
        assert_eq!(
            log_of(&c, id)[0].comment.as_deref(),
            Some(&*format!("recurrence of {old}"))
        );
    }

    #[test]
    fn reopen_window_zero_always_new() {
        let c = open();
        let p = Policy {
            reopen_window_ms: 0,
            ..Policy::default()
        };
        let old = resolved_case(&c, HOUR_MS);
        let out = apply_signal(&c, &fire(HOUR_MS + 1), &p).unwrap();
        assert!(matches!(out, Outcome::Recurrence { of, .. } if of == old));
    }

    #[test]
    fn cancelled_case_is_not_reopened() {
        let c = open();
        let p = Policy::default();
        let Outcome::Created(id) = apply_signal(&c, &fire(0), &p).unwrap() else {
            panic!()
        };
        person_action(&c, id, Action::Cancel(CancelReason::FalsePositive), "eve", None, MIN).unwrap();
        assert!(matches!(
            apply_signal(&c, &fire(2 * MIN), &p).unwrap(),
            Outcome::Created(n) if n != id
        ));
    }

    #[test]
    fn flapping_six_hours_is_one_item_then_stable() {
        let c = open();
        let p = Policy::default();
        let mut firings = 0;
        let mut last = 0;
        for i in 0..(6 * 12) {
            last = i * 5 * MIN;
            let firing = i % 2 == 0;
            firings += u64::from(firing);
            let s = Signal { firing, ..fire(last) };
            apply_signal(&c, &s, &p).unwrap();
            // Redelivery of every evaluation, as a retrying sender would.
            apply_signal(&c, &s, &p).unwrap();
            tick_all(&c, &p, last + MIN).unwrap();
        }
        let items = list(&c, &Filter::default()).unwrap();
        assert_eq!(items.len(), 1);
        let it = &items[0];
        assert!(it.flapping);
        assert_eq!(it.occurrences, firings);
        let id = it.id.unwrap();
        let marks = log_of(&c, id)
            .iter()
            .filter(|l| l.comment.as_deref() == Some("flapping"))
            .count();
        assert_eq!(marks, 1);
        assert_eq!(tick_all(&c, &p, last + p.flap_window_ms).unwrap(), 1);
        let it = item(&c, id);
        assert!(!it.flapping);
        assert_eq!(it.status, Status::Resolved);
        assert!(
            log_of(&c, id)
                .iter()
                .any(|l| l.comment.as_deref() == Some("stable again"))
        );
    }

    #[test]
    fn severity_change_updates_in_place() {
        let c = open();
        let p = Policy::default();
        let Outcome::Created(id) = apply_signal(&c, &fire(0), &p).unwrap() else {
            panic!()
        };
        let s = Signal {
            severity: Severity::Critical,
            ..fire(MIN)
        };
        assert_eq!(apply_signal(&c, &s, &p).unwrap(), Outcome::Updated(id));
        let it = item(&c, id);
        assert_eq!((it.severity, it.status), (Severity::Critical, Status::New));
        assert_eq!(log_of(&c, id).len(), 1);
        let crit = Filter {
            severity_min: Some(Severity::Major),
            ..Filter::default()
        };
        assert_eq!(list(&c, &crit).unwrap().len(), 1);
    }

    #[test]
    fn person_actions_through_the_store() {
        let c = open();
        let p = Policy::default();
        let Outcome::Created(id) = apply_signal(&c, &fire(0), &p).unwrap() else {
            panic!()
        };
        let err = person_action(&c, id, Action::Close, "bob", None, MIN).unwrap_err();
        assert_eq!(err.to_string(), "cannot move a case from new to closed");
        let err = person_action(&c, id, Action::Resume, "bob", None, MIN).unwrap_err();
        assert!(matches!(err, StoreError::Lifecycle(_)));
        assert!(matches!(
            person_action(&c, 999, Action::Assign, "bob", None, MIN),
            Err(StoreError::NoSuchItem(999))
        ));
        for action in [
            Action::Assign,
            Action::Start,
            Action::Hold(HoldReason::AwaitingVendor),
            Action::Resume,
            Action::Resolve,
            Action::Close,
        ] {
            person_action(&c, id, action, "bob", None, 2 * MIN).unwrap();
        }
        let (it, log) = get(&c, id).unwrap().unwrap();
        assert_eq!(it.status, Status::Closed);
        assert!(it.touched_by_person);
        let tos: Vec<_> = log.iter().map(|l| l.to_status.to_string()).collect();
        assert_eq!(
            tos,
            [
                "new",
                "assigned",
                "in_progress",
                "on_hold:awaiting_vendor",
                "in_progress",
                "resolved",
                "closed"
            ]
        );
        assert!(log[1..].iter().all(|l| l.actor == "person:bob"));
        // Failed actions left no trace.
        assert_eq!(log.len(), 7);
    }

    #[test]
    fn finding_clear_and_promotion_to_case() {
        let c = open();
        let p = Policy::default();
        let Outcome::Created(fid) = apply_signal(&c, &sig(ItemKind::Finding, true, 0), &p).unwrap() else {
            panic!()
        };
        apply_signal(&c, &sig(ItemKind::Finding, false, MIN), &p).unwrap();
        let f = item(&c, fid);
        assert_eq!((f.status, f.cleared_at_ms), (Status::Open, Some(MIN)));
        person_action(&c, fid, Action::Plan, "carol", None, 2 * MIN).unwrap();
        let cid = promote_to_case(&c, fid, "carol", Some("now a fault"), 3 * MIN).unwrap();
        let case = item(&c, cid);
        assert_eq!(case.kind, ItemKind::Case);
        assert_eq!(case.promoted_from, Some(fid));
        assert_eq!(case.key, f.key);
        assert_eq!(case.evidence, f.evidence);
        assert_eq!(item(&c, fid).status, Status::Planned);
        assert!(
            log_of(&c, fid)
                .last()
                .unwrap()
                .comment
                .as_deref()
                .is_some_and(|s| s == format!("promoted to case {cid}"))
        );
        // The case signal for the same key lands on the promoted case.
        assert_eq!(apply_signal(&c, &fire(4 * MIN), &p).unwrap(), Outcome::Updated(cid));
        assert!(matches!(
            promote_to_case(&c, fid, "carol", None, 5 * MIN),
            Err(StoreError::ActiveItemExists { id, .. }) if id == cid
        ));
        let findings = Filter {
            kind: Some(ItemKind::Finding),
            status_active_only: true,
            customer: Some("acme".into()),
            asset: Some("srv1".into()),
            ..Filter::default()
        };
        assert_eq!(list(&c, &findings).unwrap().len(), 1);
        let other = Filter {
            asset: Some("srv2".into()),
            ..Filter::default()
        };
        assert!(list(&c, &other).unwrap().is_empty());
    }

    /// Two writers on one PostgreSQL store (replicas) see the same firing
    /// at once: the second one's insert waits on the first's uncommitted
    /// item, is refused when that commits, and its second try updates that
    /// item. One case, and the second writer's transaction still commits.
    #[test]
    fn a_signal_that_loses_the_race_to_open_updates_the_winners_item() {
        use crate::store::testing::{PgDatabase, postgres_addr};
        let Some(addr) = postgres_addr() else { return };
        let pg = PgDatabase::create(&addr).unwrap();
        let first = pg.connect().unwrap();
        // Outside any transaction: the server's view of its sessions is
        // taken once per transaction.
        let watch = pg.connect().unwrap();
        crate::store::postgres::migrate(&first).unwrap();
        hold::mark_known(&first, "srv1", None, &[], 0).unwrap();
        let p = Policy::default();
        let tx = first.transaction().unwrap();
        let Outcome::Created(id) = apply_signal(&tx, &fire(0), &p).unwrap() else {
            panic!("the first writer opens the item")
        };
        let second = std::thread::spawn(move || {
            let db = pg.connect().unwrap();
            let tx = db.transaction().unwrap();
            let out = apply_signal(&tx, &fire(MIN), &p).unwrap();
            tx.commit().unwrap();
            (out, pg)
        });
        // Once the second writer's insert waits on the first's item, the
        // first commits.
        let waiting = || crate::store::testing::sessions_waiting_on_a_lock(&watch) == 1;
        let since = std::time::Instant::now();
        while !waiting() {
            assert!(since.elapsed().as_secs() < 30, "the second writer never waited");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        tx.commit().unwrap();
        let (out, _pg) = second.join().unwrap();
        assert_eq!(out, Outcome::Updated(id));
        let items = list(&first, &Filter::default()).unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].occurrences, 2);
    }

    #[test]
    fn unique_index_rejects_second_active_item_for_a_key() {
        let c = open();
        let p = Policy::default();
        apply_signal(&c, &fire(0), &p).unwrap();
        let row = |status: &str| ItemRow {
            status: status.into(),
            severity: "info".into(),
            rule: "r".into(),
            occurrences: 1,
            evidence: "{}".into(),
            ..item_row(0, &Item::opened_by(&fire(0))).unwrap()
        };
        let err = c.insert_item(&row("in_progress")).unwrap_err();
        assert!(err.is_unique_violation(), "{err}");
        // Ended items may be many; a finding with the same key is separate.
        c.insert_item(&row("resolved")).unwrap();
        c.insert_item(&row("closed")).unwrap();
        c.insert_item(&ItemRow {
            kind: "finding".into(),
            ..row("open")
        })
        .unwrap();
        assert!(is_unique_violation(&StoreError::Db(err)));
    }

    #[test]
    fn works_inside_the_callers_transaction() {
        let c = open();
        let p = Policy::default();
        let tx = c.transaction().unwrap();
        apply_signal(&tx, &fire(0), &p).unwrap();
        drop(tx); // rolled back
        assert!(list(&c, &Filter::default()).unwrap().is_empty());
    }

    /// Every log row of a case reaches the outbox in the same transaction,
    /// on SQLite and PostgreSQL alike; a finding's rows never do.
    /// Regression: an id asked for twice, far enough apart to fall in two
    /// statements, had its log read twice (each row pushed twice); each
    /// item now comes once, in the order first asked, its log once and in
    /// order.
    #[test]
    fn items_read_at_once_come_once_in_the_order_asked() {
        on_both(|db| {
            let p = Policy::default();
            hold::mark_known(db, "srv1", None, &[], 0).unwrap();
            let opened: Vec<i64> = ["/var", "/srv", "/home"]
                .into_iter()
                .map(|fs| {
                    let mut s = fire(0);
                    s.key.component = fs.into();
                    let Outcome::Created(id) = apply_signal(db, &s, &p).unwrap() else {
                        panic!("{fs} opened no case")
                    };
                    note(db, id, "person:alice", "looking", MIN).unwrap();
                    id
                })
                .collect();
            // The second asking a statement's worth of ids after the first.
            let mut asked = vec![opened[2], opened[0]];
            asked.extend(1_000_000..1_000_000 + crate::store::sql::IDS_AT_ONCE as i64);
            asked.push(opened[2]);
            let got = get_many(db, &asked).unwrap();
            let ids: Vec<Option<i64>> = got.iter().map(|(i, _)| i.id).collect();
            assert_eq!(ids, [Some(opened[2]), Some(opened[0])]);
            for (item, log) in &got {
                assert_eq!(log, &log_of(db, item.id.unwrap()));
                assert_eq!(log.len(), 2, "{log:?}");
            }
        });
    }

    #[test]
    fn a_case_change_reaches_the_outbox_on_both_backends() {
        on_both(|db| {
            let p = Policy::default();
            hold::mark_known(db, "srv1", None, &[], 0).unwrap();
            let Outcome::Created(case) = apply_signal(db, &fire(0), &p).unwrap() else {
                panic!()
            };
            person_action(db, case, Action::Assign, "alice", Some("mine"), MIN).unwrap();
            note(db, case, "person:alice", "looking", 2 * MIN).unwrap();
            let smart = |at| {
                let mut s = sig(ItemKind::Finding, true, at);
                s.key.check = "smart".into();
                s.rule = "smart".into();
                s
            };
            let Outcome::Created(finding) = apply_signal(db, &smart(3 * MIN), &p).unwrap() else {
                panic!()
            };
            person_action(db, finding, Action::Plan, "carol", None, 4 * MIN).unwrap();
            let promoted = promote_to_case(db, finding, "carol", None, 5 * MIN).unwrap();
            assert_eq!(log_of(db, finding).len(), 3);
            let expected: Vec<(i64, i64, i64)> = [case, promoted]
                .into_iter()
                .flat_map(|id| log_of(db, id))
                .map(|l| (l.item_id, l.id, l.at_ms))
                .collect();
            assert_eq!(
                expected.iter().map(|e| (e.0, e.2)).collect::<Vec<_>>(),
                vec![(case, 0), (case, MIN), (case, 2 * MIN), (promoted, 5 * MIN)]
            );
            assert_eq!(outbox_rows(db), expected);
        });
    }
}
