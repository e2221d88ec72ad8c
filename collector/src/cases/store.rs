//! Persistence of findings and cases: the `items` table (one row per item,
//! at most one active per kind and identity key, enforced by a unique partial
//! index) and the append-only `item_log` (who moved what from where to where,
//! and when). Each function loads what [`lifecycle`] needs, asks it, and
//! writes its decision inside a savepoint, so it is atomic on its own and
//! also composes with the caller's transaction (the store's writer batch).

use rusqlite::{Connection, ErrorCode, Row, params};

use super::hold::{self, Gate, Held};
use super::lifecycle::{self, Action, Decision, IdentityKey, Item, ItemKind, Policy, Severity, Signal, Status};
use super::retired;
use crate::store::StoreError;

pub const MIGRATION: &str = r#"
CREATE TABLE items (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('finding', 'case')),
    customer TEXT NOT NULL,
    asset TEXT NOT NULL,
    check_name TEXT NOT NULL,
    component TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL,
    hold_reason TEXT,
    severity TEXT NOT NULL,
    rule TEXT NOT NULL,
    opened_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL,
    last_firing_at_ms INTEGER NOT NULL,
    cleared_at_ms INTEGER,
    resolved_at_ms INTEGER,
    occurrences INTEGER NOT NULL,
    reopen_count INTEGER NOT NULL DEFAULT 0,
    recurrence_of INTEGER REFERENCES items(id),
    promoted_from INTEGER REFERENCES items(id),
    flapping INTEGER NOT NULL DEFAULT 0,
    touched_by_person INTEGER NOT NULL DEFAULT 0,
    status_before_recovery TEXT,
    evidence TEXT NOT NULL,
    recent_changes TEXT NOT NULL DEFAULT '[]'
);
-- At most one active item per kind and key: a retried or racing create fails
-- here instead of opening a duplicate ticket.
CREATE UNIQUE INDEX items_one_active ON items(kind, customer, asset, check_name, component)
    WHERE status NOT IN ('resolved', 'closed', 'cancelled', 'fixed', 'verified');
CREATE INDEX items_key ON items(kind, customer, asset, check_name, component, id);
CREATE TABLE item_log (
    id INTEGER PRIMARY KEY,
    item_id INTEGER NOT NULL REFERENCES items(id),
    at_ms INTEGER NOT NULL,
    actor TEXT NOT NULL,
    from_status TEXT,
    to_status TEXT NOT NULL,
    comment TEXT
);
CREATE INDEX item_log_item ON item_log(item_id, id);
"#;

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

/// One row of an item's log.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LogEntry {
    pub id: i64,
    pub item_id: i64,
    pub at_ms: i64,
    /// `rule:<name>` or `person:<name>`.
    pub actor: String,
    /// `None` for the row that opened the item.
    pub from_status: Option<Status>,
    pub to_status: Status,
    pub comment: Option<String>,
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
pub fn open_counts(conn: &Connection) -> Result<Vec<OpenCount>, StoreError> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT kind, severity, customer, COUNT(*) FROM items WHERE status NOT IN {INACTIVE} \
         GROUP BY kind, severity, customer"
    ))?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, i64>(3)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (kind, severity, customer, count) = row?;
        if let Some(kind) = ItemKind::parse(&kind) {
            out.push(OpenCount {
                kind,
                severity,
                customer,
                count: u64::try_from(count).unwrap_or(0),
            });
        }
    }
    Ok(out)
}

/// The newest log row's id, so [`transitions_since`] can name what a job did.
pub fn log_high_water(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn.query_row("SELECT COALESCE(MAX(id), 0) FROM item_log", [], |r| r.get(0))?)
}

/// The transitions logged after row `after`, named by event: `opened`,
/// `reopened`, `recovered`, `resolved`, or `changed` for any other status
/// change. Log rows that keep the status (occurrences) are no transition.
pub fn transitions_since(conn: &Connection, after: i64) -> Result<Vec<&'static str>, StoreError> {
    let mut stmt = conn.prepare_cached("SELECT from_status, to_status FROM item_log WHERE id > ?1 ORDER BY id")?;
    let rows = stmt.query_map(params![after], |r| {
        Ok((r.get::<_, Option<String>>(0)?, r.get::<_, String>(1)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (from, to) = row?;
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

const COLUMNS: &str = "id, kind, customer, asset, check_name, component, status, hold_reason, \
    severity, rule, opened_at_ms, updated_at_ms, last_firing_at_ms, cleared_at_ms, resolved_at_ms, \
    occurrences, reopen_count, recurrence_of, promoted_from, flapping, touched_by_person, \
    status_before_recovery, evidence, recent_changes";

const INACTIVE: &str = "('resolved', 'closed', 'cancelled', 'fixed', 'verified')";

/// Runs `f` inside a savepoint: all of it is written or none. Works inside
/// the caller's transaction as well as on its own.
fn atomically<T>(conn: &Connection, f: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
    conn.execute_batch("SAVEPOINT cases")?;
    match f() {
        Ok(v) => {
            conn.execute_batch("RELEASE cases")?;
            Ok(v)
        }
        Err(e) => {
            // The original error matters more than a failed rollback.
            let _ = conn.execute_batch("ROLLBACK TO cases; RELEASE cases");
            Err(e)
        }
    }
}

fn corrupt(id: i64, reason: impl Into<String>) -> StoreError {
    StoreError::CorruptItem {
        id,
        reason: reason.into(),
    }
}

/// The raw row, converted to an [`Item`] outside rusqlite's closure so a bad
/// value becomes a typed error naming the item.
struct RawItem {
    id: i64,
    kind: String,
    key: IdentityKey,
    status: String,
    hold_reason: Option<String>,
    severity: String,
    rule: String,
    opened_at_ms: i64,
    updated_at_ms: i64,
    last_firing_at_ms: i64,
    cleared_at_ms: Option<i64>,
    resolved_at_ms: Option<i64>,
    occurrences: i64,
    reopen_count: i64,
    recurrence_of: Option<i64>,
    promoted_from: Option<i64>,
    flapping: bool,
    touched_by_person: bool,
    status_before_recovery: Option<String>,
    evidence: String,
    recent_changes: String,
}

fn raw_item(r: &Row<'_>) -> rusqlite::Result<RawItem> {
    Ok(RawItem {
        id: r.get(0)?,
        kind: r.get(1)?,
        key: IdentityKey {
            customer: r.get(2)?,
            asset: r.get(3)?,
            check: r.get(4)?,
            component: r.get(5)?,
        },
        status: r.get(6)?,
        hold_reason: r.get(7)?,
        severity: r.get(8)?,
        rule: r.get(9)?,
        opened_at_ms: r.get(10)?,
        updated_at_ms: r.get(11)?,
        last_firing_at_ms: r.get(12)?,
        cleared_at_ms: r.get(13)?,
        resolved_at_ms: r.get(14)?,
        occurrences: r.get(15)?,
        reopen_count: r.get(16)?,
        recurrence_of: r.get(17)?,
        promoted_from: r.get(18)?,
        flapping: r.get(19)?,
        touched_by_person: r.get(20)?,
        status_before_recovery: r.get(21)?,
        evidence: r.get(22)?,
        recent_changes: r.get(23)?,
    })
}

impl RawItem {
    fn into_item(self) -> Result<Item, StoreError> {
        let id = self.id;
        let kind = ItemKind::parse(&self.kind).ok_or_else(|| corrupt(id, "unknown kind"))?;
        let status = Status::from_parts(&self.status, self.hold_reason.as_deref())
            .ok_or_else(|| corrupt(id, format!("unknown status {}", self.status)))?;
        let status_before_recovery = match self.status_before_recovery.as_deref() {
            None => None,
            Some(s) => Some(Status::parse(s).ok_or_else(|| corrupt(id, format!("unknown status {s}")))?),
        };
        Ok(Item {
            id: Some(id),
            key: self.key,
            kind,
            status,
            severity: Severity::parse(&self.severity).ok_or_else(|| corrupt(id, "unknown severity"))?,
            rule: self.rule,
            opened_at_ms: self.opened_at_ms,
            updated_at_ms: self.updated_at_ms,
            last_firing_at_ms: self.last_firing_at_ms,
            cleared_at_ms: self.cleared_at_ms,
            resolved_at_ms: self.resolved_at_ms,
            occurrences: u64::try_from(self.occurrences).map_err(|_| corrupt(id, "negative occurrences"))?,
            reopen_count: u32::try_from(self.reopen_count).map_err(|_| corrupt(id, "bad reopen_count"))?,
            recurrence_of: self.recurrence_of,
            promoted_from: self.promoted_from,
            flapping: self.flapping,
            touched_by_person: self.touched_by_person,
            status_before_recovery,
            evidence: serde_json::from_str(&self.evidence).map_err(|e| corrupt(id, format!("evidence: {e}")))?,
            recent_changes: serde_json::from_str(&self.recent_changes)
                .map_err(|e| corrupt(id, format!("recent_changes: {e}")))?,
        })
    }
}

fn query_items(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> Result<Vec<Item>, StoreError> {
    let mut stmt = conn.prepare_cached(sql)?;
    let raws = stmt.query_map(params, raw_item)?.collect::<Result<Vec<_>, _>>()?;
    raws.into_iter().map(RawItem::into_item).collect()
}

fn load_one(conn: &Connection, sql: &str, params: impl rusqlite::Params) -> Result<Option<Item>, StoreError> {
    Ok(query_items(conn, sql, params)?.into_iter().next())
}

fn load_active(conn: &Connection, kind: ItemKind, key: &IdentityKey) -> Result<Option<Item>, StoreError> {
    load_one(
        conn,
        &format!(
            "SELECT {COLUMNS} FROM items WHERE kind = ?1 AND customer = ?2 AND asset = ?3 \
             AND check_name = ?4 AND component = ?5 AND status NOT IN {INACTIVE}"
        ),
        params![kind.as_str(), key.customer, key.asset, key.check, key.component],
    )
}

/// The newest ended item for the key that may be reopened. Cancelled items
/// are not: a false positive, a duplicate or a merged case was never a fault
/// of its own to come back.
fn load_last_ended(conn: &Connection, kind: ItemKind, key: &IdentityKey) -> Result<Option<Item>, StoreError> {
    load_one(
        conn,
        &format!(
            "SELECT {COLUMNS} FROM items WHERE kind = ?1 AND customer = ?2 AND asset = ?3 \
             AND check_name = ?4 AND component = ?5 \
             AND status IN ('resolved', 'closed', 'fixed', 'verified') \
             ORDER BY COALESCE(resolved_at_ms, updated_at_ms) DESC, id DESC LIMIT 1"
        ),
        params![kind.as_str(), key.customer, key.asset, key.check, key.component],
    )
}

fn load_by_id(conn: &Connection, id: i64) -> Result<Option<Item>, StoreError> {
    load_one(conn, &format!("SELECT {COLUMNS} FROM items WHERE id = ?1"), params![id])
}

fn json_text<T: serde::Serialize>(id: i64, v: &T) -> Result<String, StoreError> {
    serde_json::to_string(v).map_err(|e| corrupt(id, e.to_string()))
}

fn insert_item(conn: &Connection, item: &Item) -> Result<i64, StoreError> {
    let evidence = json_text(0, &item.evidence)?;
    let changes = json_text(0, &item.recent_changes)?;
    conn.prepare_cached(
        "INSERT INTO items (kind, customer, asset, check_name, component, status, hold_reason, \
         severity, rule, opened_at_ms, updated_at_ms, last_firing_at_ms, cleared_at_ms, \
         resolved_at_ms, occurrences, reopen_count, recurrence_of, promoted_from, flapping, \
         touched_by_person, status_before_recovery, evidence, recent_changes) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, \
         ?19, ?20, ?21, ?22, ?23)",
    )?
    .execute(params![
        item.kind.as_str(),
        item.key.customer,
        item.key.asset,
        item.key.check,
        item.key.component,
        item.status.name(),
        item.status.reason(),
        item.severity.as_str(),
        item.rule,
        item.opened_at_ms,
        item.updated_at_ms,
        item.last_firing_at_ms,
        item.cleared_at_ms,
        item.resolved_at_ms,
        i64::try_from(item.occurrences).unwrap_or(i64::MAX),
        item.reopen_count,
        item.recurrence_of,
        item.promoted_from,
        item.flapping,
        item.touched_by_person,
        item.status_before_recovery.map(|s| s.to_string()),
        evidence,
        changes,
    ])?;
    Ok(conn.last_insert_rowid())
}

fn update_item(conn: &Connection, id: i64, item: &Item) -> Result<(), StoreError> {
    let evidence = json_text(id, &item.evidence)?;
    let changes = json_text(id, &item.recent_changes)?;
    conn.prepare_cached(
        "UPDATE items SET status = ?2, hold_reason = ?3, severity = ?4, rule = ?5, \
         updated_at_ms = ?6, last_firing_at_ms = ?7, cleared_at_ms = ?8, resolved_at_ms = ?9, \
         occurrences = ?10, reopen_count = ?11, flapping = ?12, touched_by_person = ?13, \
         status_before_recovery = ?14, evidence = ?15, recent_changes = ?16 WHERE id = ?1",
    )?
    .execute(params![
        id,
        item.status.name(),
        item.status.reason(),
        item.severity.as_str(),
        item.rule,
        item.updated_at_ms,
        item.last_firing_at_ms,
        item.cleared_at_ms,
        item.resolved_at_ms,
        i64::try_from(item.occurrences).unwrap_or(i64::MAX),
        item.reopen_count,
        item.flapping,
        item.touched_by_person,
        item.status_before_recovery.map(|s| s.to_string()),
        evidence,
        changes,
    ])?;
    Ok(())
}

fn log(
    conn: &Connection,
    item_id: i64,
    at_ms: i64,
    actor: &str,
    from: Option<Status>,
    to: Status,
    comment: Option<&str>,
) -> Result<(), StoreError> {
    conn.prepare_cached(
        "INSERT INTO item_log (item_id, at_ms, actor, from_status, to_status, comment) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        item_id,
        at_ms,
        actor,
        from.map(|s| s.to_string()),
        to.to_string(),
        comment
    ])?;
    Ok(())
}

fn is_unique_violation(e: &StoreError) -> bool {
    matches!(
        e,
        StoreError::Sql(rusqlite::Error::SqliteFailure(f, _))
            if f.code == ErrorCode::ConstraintViolation
    )
}

/// Logs a change of the flapping mark, which is not a status change but is
/// what stops and restarts notifications.
fn log_flapping(
    conn: &Connection,
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

/// Applies one signal: the idempotent upsert of the item for its key.
pub fn apply_signal(conn: &Connection, signal: &Signal, policy: &Policy) -> Result<Outcome, StoreError> {
    // Two tries: if another writer inserted the active item between our read
    // and our insert, the unique index refuses ours and the second try
    // updates theirs.
    match atomically(conn, || apply_signal_once(conn, signal, policy)) {
        Err(e) if is_unique_violation(&e) => atomically(conn, || apply_signal_once(conn, signal, policy)),
        other => other,
    }
}

fn apply_signal_once(conn: &Connection, signal: &Signal, policy: &Policy) -> Result<Outcome, StoreError> {
    // A part taken out of service cannot fire any more: what still arrives
    // about it (an agent's cached reading of the old disk) is a clear.
    let as_clear;
    let signal = if signal.firing && retired::is_retired(conn, &signal.key.asset, &signal.key.component, signal.at_ms)?
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
            match hold::gate(conn, signal, policy)? {
                Gate::Pass => {}
                Gate::Rename(name) => {
                    let mut renamed = signal.clone();
                    renamed.key.asset = name;
                    // Whatever becomes of it under the asset's name (an item,
                    // or held there for another reason), the row held under
                    // the other identifier is done.
                    let out = apply_signal_once(conn, &renamed, policy)?;
                    hold::released_into(conn, signal.kind, &signal.key, out.item_id(), signal.at_ms)?;
                    return Ok(out);
                }
                Gate::Hold(why, holder) => return held(conn, signal, why, holder, policy),
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
    conn: &Connection,
    signal: &Signal,
    why: Held,
    holder: Option<i64>,
    policy: &Policy,
) -> Result<Outcome, StoreError> {
    if why == Held::Storm && signal.firing {
        // Attach to the customer's storm case, opening it first when there
        // is none; then feed it, so its evidence counts what is attached.
        let customer = &signal.key.customer;
        let storm_id = match load_active(conn, ItemKind::Case, &hold::storm_key(customer))?.and_then(|i| i.id) {
            Some(id) => id,
            None => {
                let open = hold::storm_signal(customer, true, signal.at_ms, 1, policy);
                apply_signal_once(conn, &open, policy)?
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
pub fn tick_all(conn: &Connection, policy: &Policy, now_ms: i64) -> Result<usize, StoreError> {
    atomically(conn, || {
        let candidates = query_items(
            conn,
            &format!(
                "SELECT {COLUMNS} FROM items WHERE status NOT IN {INACTIVE} \
                 AND (status = 'recovered' OR flapping = 1) ORDER BY id"
            ),
            [],
        )?;
        let mut changed = 0;
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
                if !matches!(apply_signal_once(conn, &clear, policy)?, Outcome::Nothing(_)) {
                    changed += 1;
                }
            }
        }
        // Held signals whose reason has gone take the normal path again.
        for (held_id, signal) in hold::release_due(conn, now_ms)? {
            match apply_signal_once(conn, &signal, policy)? {
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
    conn: &Connection,
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
    conn: &Connection,
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
pub fn note(conn: &Connection, id: i64, actor: &str, comment: &str, now_ms: i64) -> Result<Item, StoreError> {
    atomically(conn, || {
        let mut item = load_by_id(conn, id)?.ok_or(StoreError::NoSuchItem(id))?;
        if actor.starts_with("person:") {
            item.touched_by_person = true;
        }
        item.updated_at_ms = now_ms;
        update_item(conn, id, &item)?;
        log(conn, id, now_ms, actor, Some(item.status), item.status, Some(comment))?;
        Ok(item)
    })
}

/// Opens a case that a person reported (not a rule): no gate, since the
/// person has seen the fault. Idempotent like [`apply_signal`]: when the key
/// already has an active case, that case is returned with `false`.
pub fn open_reported(conn: &Connection, signal: &Signal, actor: &str, now_ms: i64) -> Result<(i64, bool), StoreError> {
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
pub fn item(conn: &Connection, id: i64) -> Result<Option<Item>, StoreError> {
    load_by_id(conn, id)
}

/// The SQL list of inactive statuses, for queries joining `items`.
pub const INACTIVE_STATUSES: &str = INACTIVE;

/// Promotes finding `finding_id` to a new case (logged on both); returns the
/// case's id. Fails if the key already has an active case.
pub fn promote_to_case(
    conn: &Connection,
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

/// An item and its whole log, oldest entry first.
pub fn get(conn: &Connection, id: i64) -> Result<Option<(Item, Vec<LogEntry>)>, StoreError> {
    let Some(item) = load_by_id(conn, id)? else {
        return Ok(None);
    };
    let mut stmt = conn.prepare_cached(
        "SELECT id, item_id, at_ms, actor, from_status, to_status, comment FROM item_log \
         WHERE item_id = ?1 ORDER BY id",
    )?;
    let rows = stmt
        .query_map(params![id], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, String>(5)?,
                r.get::<_, Option<String>>(6)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let mut log = Vec::with_capacity(rows.len());
    for (log_id, item_id, at_ms, actor, from, to, comment) in rows {
        let from_status = match from {
            None => None,
            Some(s) => Some(Status::parse(&s).ok_or_else(|| corrupt(id, format!("log status {s}")))?),
        };
        let to_status = Status::parse(&to).ok_or_else(|| corrupt(id, format!("log status {to}")))?;
        log.push(LogEntry {
            id: log_id,
            item_id,
            at_ms,
            actor,
            from_status,
            to_status,
            comment,
        });
    }
    Ok(Some((item, log)))
}

/// Items matching `filter`, newest first.
pub fn list(conn: &Connection, filter: &Filter) -> Result<Vec<Item>, StoreError> {
    let mut sql = format!(
        "SELECT {COLUMNS} FROM items WHERE (?1 IS NULL OR kind = ?1) \
         AND (?2 IS NULL OR customer = ?2) AND (?3 IS NULL OR asset = ?3) \
         AND (?4 IS NULL OR status = ?4) AND (?5 IS NULL OR id < ?5)"
    );
    if filter.status_active_only {
        sql.push_str(&format!(" AND status NOT IN {INACTIVE}"));
    }
    if let Some(min) = filter.severity_min {
        // Severity is stored as its name; the order lives in the enum.
        let names: Vec<String> = [Severity::Info, Severity::Warning, Severity::Major, Severity::Critical]
            .into_iter()
            .filter(|s| *s >= min)
            .map(|s| format!("'{}'", s.as_str()))
            .collect();
        sql.push_str(&format!(" AND severity IN ({})", names.join(", ")));
    }
    sql.push_str(" ORDER BY id DESC LIMIT ?6");
    query_items(
        conn,
        &sql,
        params![
            filter.kind.map(ItemKind::as_str),
            filter.customer,
            filter.asset,
            filter.status_name,
            filter.before_id,
            filter.limit.map_or(-1, i64::from)
        ],
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::cases::{CancelReason, HoldReason};

    const MIN: i64 = 60_000;

    fn open() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().unwrap();
        let c = crate::store::open(&dir.path().join("s.db"), crate::config::Synchronous::Normal).unwrap();
        hold::mark_known(&c, "srv1", None, &[], 0).unwrap();
        (dir, c)
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

    fn item(c: &Connection, id: i64) -> Item {
        get(c, id).unwrap().unwrap().0
    }
    fn log_of(c: &Connection, id: i64) -> Vec<LogEntry> {
        get(c, id).unwrap().unwrap().1
    }

    #[test]
    fn create_then_repeat_firing_is_one_item() {
        let (_d, c) = open();
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
        let (_d, c) = open();
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
        let (_d, c) = open();
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
        let (_d, c) = open();
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

    fn resolved_case(c: &Connection, at: i64) -> i64 {
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
        let (_d, c) = open();
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
        let (_d, c) = open();
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
        let (_d, c) = open();
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
        let (_d, c) = open();
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
        let (_d, c) = open();
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
        let (_d, c) = open();
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
        let (_d, c) = open();
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
        let (_d, c) = open();
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

    #[test]
    fn unique_index_rejects_second_active_item_for_a_key() {
        let (_d, c) = open();
        let p = Policy::default();
        apply_signal(&c, &fire(0), &p).unwrap();
        let insert = "INSERT INTO items (kind, customer, asset, check_name, component, status, \
             severity, rule, opened_at_ms, updated_at_ms, last_firing_at_ms, occurrences, evidence) \
             VALUES ('case', 'acme', 'srv1', 'fs_full', '/var', ?1, 'info', 'r', 0, 0, 0, 1, '{}')";
        let err = c.execute(insert, params!["in_progress"]).unwrap_err();
        assert_eq!(err.sqlite_error_code(), Some(ErrorCode::ConstraintViolation));
        // Ended items may be many; a finding with the same key is separate.
        c.execute(insert, params!["resolved"]).unwrap();
        c.execute(insert, params!["closed"]).unwrap();
        assert!(is_unique_violation(&StoreError::Sql(err)));
    }

    #[test]
    fn works_inside_the_callers_transaction() {
        let (_d, mut c) = open();
        let p = Policy::default();
        let tx = c.transaction().unwrap();
        apply_signal(&tx, &fire(0), &p).unwrap();
        drop(tx); // rolled back
        assert!(list(&c, &Filter::default()).unwrap().is_empty());
    }
}
