//! The queue as engineers page through it: the active cases (or those of
//! one status) matching the filters and the search, counted, ordered and
//! cut into pages.
//!
//! The store filters, counts and orders by a column over every matching
//! case and answers one page. The default order, nearest SLA breach first,
//! needs each case's clocks, and those come from its log; rather than read
//! the log of every matching case, the store's own facts (deadlines fixed
//! when the contract was matched, breaches recorded, and, kept on the
//! case's queue row as its log is written, whether a person has responded
//! and which stretches of the log may have paused a clock) give each case a
//! bound no later than where it really stands: a hold only ever pushes a
//! breach later, and a case whose log never paused a clock of its contract
//! stands exactly at its bound. Cases are taken in the order of their
//! bounds, only until no case left can come before the end of the page; of
//! those, the ones whose log paused a clock are read whole to be placed, a
//! batch at a time, and then the cases on the page.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};

use serde::Serialize;

use super::{CaseMeta, SlaStanding, SlaView, sla_view};
use crate::cases::store as items;
use crate::cases::{Item, Severity, Status};
use crate::contracts::Contracts;
use crate::store::StoreError;
use crate::store::queue::{CaseQueue, PAUSE_HOLDS, PAUSED_OTHERWISE, QueueColumn, QueueSelect, QueueSlaRow};
use crate::store::sql::Sql;

/// The fewest cases looked at for those to read whole at once (more when
/// the page needs more).
const READ_AT_ONCE_MIN: usize = 100;

/// The page size when none is asked for.
pub const PER_PAGE_DEFAULT: u64 = 50;
/// The largest page one may ask for.
pub const PER_PAGE_MAX: u64 = 200;

/// Which cases [`queue_page`] lists.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueueFilter {
    /// Status name (`on_hold` for every reason); `None`: every active case.
    pub status: Option<String>,
    pub severity_min: Option<Severity>,
    pub customer: Option<String>,
    /// An engineer's name; `Some("")`: unassigned only.
    pub assignee: Option<String>,
    /// Text looked for in the title, the asset, the component and a disk
    /// serial the case names, case-insensitively; `#123` or `123` also
    /// finds case 123.
    pub search: Option<String>,
}

impl QueueFilter {
    fn select(&self) -> QueueSelect<'_> {
        let search = self.search.as_deref().map(str::trim).filter(|s| !s.is_empty());
        QueueSelect {
            status: self.status.as_deref(),
            customer: self.customer.as_deref(),
            assignee: self.assignee.as_deref(),
            severity_min: self.severity_min.map(Severity::as_str),
            search,
            case_id: search.and_then(|s| s.strip_prefix('#').unwrap_or(s).parse().ok()),
        }
    }
}

/// What the queue can be ordered by.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum SortBy {
    /// Where the case stands against its SLA: breached first, then the
    /// running clock that runs out soonest, cases without a running clock
    /// last; ties by severity (most severe first), then age.
    #[default]
    Breach,
    /// Least to most severe (descending: most severe first).
    Severity,
    /// Youngest to oldest (descending: oldest first).
    Age,
    /// Case number.
    Case,
    Asset,
    /// In lifecycle order.
    Status,
    Customer,
    /// By name; unassigned cases last.
    Assignee,
}

impl SortBy {
    pub const ALL: [SortBy; 8] = [
        SortBy::Breach,
        SortBy::Severity,
        SortBy::Age,
        SortBy::Case,
        SortBy::Asset,
        SortBy::Status,
        SortBy::Customer,
        SortBy::Assignee,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SortBy::Breach => "breach",
            SortBy::Severity => "severity",
            SortBy::Age => "age",
            SortBy::Case => "case",
            SortBy::Asset => "asset",
            SortBy::Status => "status",
            SortBy::Customer => "customer",
            SortBy::Assignee => "assignee",
        }
    }

    pub fn parse(s: &str) -> Option<SortBy> {
        SortBy::ALL.into_iter().find(|b| b.as_str() == s)
    }

    /// The direction a first click on the column asks for: the most severe
    /// and the oldest cases first, everything else ascending.
    pub fn first_descending(self) -> bool {
        matches!(self, SortBy::Severity | SortBy::Age)
    }
}

/// Which page of the queue, in which order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    pub sort: SortBy,
    pub descending: bool,
    /// From 1.
    pub page: u64,
    /// From 1 to [`PER_PAGE_MAX`].
    pub per_page: u64,
}

impl Default for Paging {
    fn default() -> Self {
        Paging {
            sort: SortBy::Breach,
            descending: false,
            page: 1,
            per_page: PER_PAGE_DEFAULT,
        }
    }
}

impl Paging {
    fn offset(&self) -> u64 {
        self.page.saturating_sub(1).saturating_mul(self.per_page)
    }
}

/// One line of the queue.
#[derive(Debug, Clone, Serialize)]
pub struct QueueEntry {
    pub item: Item,
    pub meta: CaseMeta,
    pub sla: SlaView,
}

/// One page of the queue and how many cases match in all.
#[derive(Debug, Clone)]
pub struct QueuePage {
    pub entries: Vec<QueueEntry>,
    pub total: u64,
    pub page: u64,
    pub per_page: u64,
}

/// A case's place in the SLA order; the case number last makes it total.
type Key = (SlaStanding, Reverse<Severity>, i64, i64);

fn key(e: &QueueEntry) -> Key {
    (
        e.sla.standing(),
        Reverse(e.item.severity),
        e.item.opened_at_ms,
        e.item.id.unwrap_or_default(),
    )
}

/// A key no later than the case's real [`key`], from what the store knows
/// without its log: deadlines are fixed when the contract is matched and a
/// hold only pushes a breach later, so a clock not met runs out at its
/// deadline or after, and has breached once it was recorded breached or
/// its deadline has passed (or after: the sweep records it).
fn bound(r: &QueueSlaRow, contracts: &Contracts, now_ms: i64) -> Key {
    let tail = |standing| {
        let severity = Severity::parse(&r.severity).unwrap_or(Severity::Info);
        (standing, Reverse(severity), r.opened_at_ms, r.id)
    };
    let Some(contract) = r.contract.as_deref().and_then(|n| contracts.named(n)) else {
        return tail(SlaStanding::NotRunning);
    };
    let status = Status::from_parts(&r.status, r.hold_reason.as_deref());
    let active = status.is_some_and(Status::is_active);
    let response = r
        .response_due_ms
        .filter(|_| !r.responded)
        .map(|due| (due, r.response_breached_at_ms));
    let resolution = r
        .resolution_due_ms
        .filter(|_| active || r.resolved_at_ms.is_none())
        .map(|due| (due, r.resolution_breached_at_ms));
    let open = [response, resolution].into_iter().flatten();
    if open.clone().any(|(due, breached)| breached.is_some() || due <= now_ms) {
        return tail(SlaStanding::Breached);
    }
    let paused = match status {
        Some(Status::OnHold(reason)) => contract.pausing.contains(&reason),
        Some(s) => !s.is_active(),
        None => false,
    };
    match open.map(|(due, _)| due).min() {
        Some(t) if !paused => tail(SlaStanding::RunsOutAt(t)),
        _ => tail(SlaStanding::NotRunning),
    }
}

/// Whether no stretch of the case's log (its `pauses`) paused a clock of
/// its contract: its clocks then ran from the opening on, so its [`bound`]
/// is where it stands. A case without a (known) contract has no clock.
fn never_paused(r: &QueueSlaRow, contracts: &Contracts) -> bool {
    let Some(contract) = r.contract.as_deref().and_then(|n| contracts.named(n)) else {
        return true;
    };
    if r.pauses & PAUSED_OTHERWISE != 0 {
        return false;
    }
    contract.pausing.iter().all(|reason| {
        match PAUSE_HOLDS.iter().position(|h| *h == reason.as_str()) {
            Some(bit) => r.pauses & (1 << bit) == 0,
            // Not told apart: such a hold counts in `PAUSED_OTHERWISE`.
            None => true,
        }
    })
}

/// The cases `ids` as the queue shows them, with their SLA as of `now_ms`,
/// in the order of `ids` (one gone, or without its queue data yet, is left
/// out): a few statements for any number of cases.
fn entries(conn: &dyn Sql, contracts: &Contracts, ids: &[i64], now_ms: i64) -> Result<Vec<QueueEntry>, StoreError> {
    let mut metas: HashMap<i64, CaseMeta> = conn
        .case_metas(ids)?
        .into_iter()
        .map(|m| (m.item_id, CaseMeta::from(m)))
        .collect();
    let mut out = Vec::with_capacity(ids.len());
    for (item, log) in items::get_many(conn, ids)? {
        let Some(meta) = item.id.and_then(|id| metas.remove(&id)) else {
            continue;
        };
        let contract = meta.contract.as_deref().and_then(|n| contracts.named(n));
        let sla = sla_view(contract, &item, &meta, &log, now_ms);
        out.push(QueueEntry { item, meta, sla });
    }
    Ok(out)
}

/// The store's column and direction for an order; `None` for the SLA
/// order, which is the domain's.
fn column(sort: SortBy, descending: bool) -> Option<(QueueColumn, bool)> {
    Some(match sort {
        SortBy::Breach => return None,
        SortBy::Severity => (QueueColumn::Severity, descending),
        // Youngest first is the latest opened first.
        SortBy::Age => (QueueColumn::Opened, !descending),
        SortBy::Case => (QueueColumn::Id, descending),
        SortBy::Asset => (QueueColumn::Asset, descending),
        SortBy::Status => (QueueColumn::Status, descending),
        SortBy::Customer => (QueueColumn::Customer, descending),
        SortBy::Assignee => (QueueColumn::Assignee, descending),
    })
}

/// One page of the queue. Counting, filtering and ordering are over every
/// matching case; only the cases on the page (and, in the SLA order, those
/// whose bound does not rule them out) are read whole.
pub fn queue_page(
    conn: &dyn Sql,
    contracts: &Contracts,
    filter: &QueueFilter,
    paging: &Paging,
    now_ms: i64,
) -> Result<QueuePage, StoreError> {
    let select = filter.select();
    let per_page = paging.per_page.clamp(1, PER_PAGE_MAX);
    let paging = Paging { per_page, ..*paging };
    let (entries, total) = match column(paging.sort, paging.descending) {
        None => by_breach(conn, contracts, &select, &paging, now_ms)?,
        Some((by, descending)) => {
            let total = u64::try_from(conn.queue_count(&select)?).unwrap_or_default();
            let limit = i64::try_from(per_page).unwrap_or(i64::MAX);
            let offset = i64::try_from(paging.offset()).unwrap_or(i64::MAX);
            let ids = conn.queue_page_ids(&select, by, descending, limit, offset)?;
            (entries(conn, contracts, &ids, now_ms)?, total)
        }
    };
    Ok(QueuePage {
        entries,
        total,
        page: paging.page,
        per_page,
    })
}

/// The page in the SLA order. Ascending, cases are read in the order of
/// their bounds until the page's last place is held by a case no unread one
/// can come before. Descending (the cases least pressed first) there is no
/// such bound from above, so the page is chosen by the bounds and ordered
/// by the real clocks within it.
fn by_breach(
    conn: &dyn Sql,
    contracts: &Contracts,
    select: &QueueSelect<'_>,
    paging: &Paging,
    now_ms: i64,
) -> Result<(Vec<QueueEntry>, u64), StoreError> {
    let rows = conn.queue_sla_rows(select)?;
    let total = rows.len() as u64;
    let mut bounds: Vec<Key> = rows.iter().map(|r| bound(r, contracts, now_ms)).collect();
    bounds.sort_unstable();
    let offset = usize::try_from(paging.offset()).unwrap_or(usize::MAX);
    let per_page = usize::try_from(paging.per_page).unwrap_or(usize::MAX);
    if offset >= bounds.len() {
        return Ok((Vec::new(), total));
    }
    if paging.descending {
        let ids: Vec<i64> = bounds.iter().rev().skip(offset).take(per_page).map(|b| b.3).collect();
        let mut page = entries(conn, contracts, &ids, now_ms)?;
        page.sort_by_key(|e| Reverse(key(e)));
        return Ok((page, total));
    }
    let need = offset.saturating_add(per_page);
    let by_id: HashMap<i64, &QueueSlaRow> = rows.iter().map(|r| (r.id, r)).collect();
    // The `need` smallest keys placed so far; its top is the last place.
    let mut smallest: BinaryHeap<Key> = BinaryHeap::with_capacity(need.min(bounds.len()) + 1);
    // Each case placed, with the entry when it was read to place it.
    let mut placed: Vec<(Key, Option<QueueEntry>)> = Vec::new();
    // The cases whose log paused a clock, read whole ahead of their turn
    // (or found gone since the rows were read: those have no place).
    let mut read: HashMap<i64, QueueEntry> = HashMap::new();
    let mut gone: HashSet<i64> = HashSet::new();
    let paused = |id: &i64| by_id.get(id).is_some_and(|r| !never_paused(r, contracts));
    for (i, b) in bounds.iter().enumerate() {
        if smallest.len() >= need && smallest.peek().is_some_and(|last| last <= b) {
            break;
        }
        let (k, e) = if !paused(&b.3) {
            (*b, None)
        } else {
            if !read.contains_key(&b.3) && !gone.contains(&b.3) {
                // This one and those of the next the page could still need
                // (the last place aside), at once.
                let more = need.saturating_sub(smallest.len()).max(READ_AT_ONCE_MIN);
                let ids: Vec<i64> = bounds[i..i.saturating_add(more).min(bounds.len())]
                    .iter()
                    .map(|k| k.3)
                    .filter(|id| paused(id) && !read.contains_key(id) && !gone.contains(id))
                    .collect();
                read.extend(
                    entries(conn, contracts, &ids, now_ms)?
                        .into_iter()
                        .map(|e| (e.meta.item_id, e)),
                );
                gone.extend(ids.into_iter().filter(|id| !read.contains_key(id)));
            }
            match read.remove(&b.3) {
                Some(e) => (key(&e), Some(e)),
                None => continue,
            }
        };
        smallest.push(k);
        if smallest.len() > need {
            smallest.pop();
        }
        placed.push((k, e));
    }
    placed.sort_unstable_by_key(|(k, _)| *k);
    let chosen: Vec<(Key, Option<QueueEntry>)> = placed.into_iter().skip(offset).take(per_page).collect();
    let unread: Vec<i64> = chosen.iter().filter(|(_, e)| e.is_none()).map(|(k, _)| k.3).collect();
    let mut fetched: HashMap<i64, QueueEntry> = entries(conn, contracts, &unread, now_ms)?
        .into_iter()
        .map(|e| (e.meta.item_id, e))
        .collect();
    Ok((
        chosen
            .into_iter()
            .filter_map(|(k, e)| e.or_else(|| fetched.remove(&k.3)))
            .collect(),
        total,
    ))
}

/// Every matching case, the one closest to an SLA breach first (the
/// breached ones before them), then cases without a running clock by
/// severity and age. For tests and small stores; the pages use
/// [`queue_page`].
pub fn queue(
    conn: &dyn Sql,
    contracts: &Contracts,
    filter: &QueueFilter,
    now_ms: i64,
) -> Result<Vec<QueueEntry>, StoreError> {
    let paging = Paging {
        per_page: u64::MAX,
        ..Paging::default()
    };
    let select = filter.select();
    Ok(by_breach(conn, contracts, &select, &paging, now_ms)?.0)
}
