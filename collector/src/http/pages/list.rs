//! The queue page's markup: the filters and the search, the one-click views
//! (all, mine, unassigned), the table with its sortable headers, and the
//! pages. The columns a glance needs come first (case, severity, the next
//! breach, age), so a phone shows them before its table scrolls. Every link keeps every filter: they are all in the URL, built by
//! [`Link`].

use maud::{Markup, html};

use super::render::{SEVERITIES, STATUSES, asset_href, case_href, duration, error_box, select};
use super::{Viewer, page_layout};
use crate::auth::percent_encode;
use crate::cases::Severity;
use crate::contracts::Contracts;
use crate::http::queue::QueueQuery;
use crate::queue::{ClockView, QueueEntry, QueuePage, SlaView, SortBy, format_ms_in};

/// How often the page reloads itself once asked to (`refresh=on`).
pub const REFRESH_SECS: u32 = 60;

/// The queue's URL with the query as given, some parameters changed.
/// Blank parameters are left out; the order is fixed, so links compare.
#[derive(Debug, Clone)]
pub struct Link<'a> {
    q: &'a QueueQuery,
    changes: Vec<(&'static str, Option<String>)>,
}

impl<'a> Link<'a> {
    pub fn new(q: &'a QueueQuery) -> Link<'a> {
        Link { q, changes: Vec::new() }
    }

    /// `name` set to `value` (`None`: left out).
    pub fn with(mut self, name: &'static str, value: Option<&str>) -> Link<'a> {
        self.changes.push((name, value.map(str::to_string)));
        self
    }

    pub fn href(&self) -> String {
        let q = self.q;
        let given = [
            ("status", &q.status),
            ("severity", &q.severity),
            ("customer", &q.customer),
            ("assignee", &q.assignee),
            ("q", &q.q),
            ("sort", &q.sort),
            ("dir", &q.dir),
            ("per_page", &q.per_page),
            ("page", &q.page),
            ("refresh", &q.refresh),
        ];
        let mut parts = Vec::new();
        for (name, value) in given {
            let value = match self.changes.iter().rev().find(|(n, _)| *n == name) {
                Some((_, changed)) => changed.clone(),
                None => value.clone(),
            };
            if let Some(v) = value.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
                parts.push(format!("{name}={}", percent_encode(v)));
            }
        }
        if parts.is_empty() {
            "/queue".into()
        } else {
            format!("/queue?{}", parts.join("&"))
        }
    }
}

/// "1,234".
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A severity as a badge: its colour, a shape of its own and its name, so
/// colour is never the only sign.
fn severity_badge(s: Severity) -> Markup {
    let icon = match s {
        Severity::Critical => "■",
        Severity::Major => "▲",
        Severity::Warning => "◆",
        Severity::Info => "●",
    };
    html! {
        span class=(format!("sev sev-{}", s.as_str())) {
            span.icon aria-hidden="true" { (icon) } " " (s.as_str())
        }
    }
}

/// The clock a case's place in the queue comes from: which one, breached or
/// how long until it is, and when it runs out on the contract's wall clock
/// with the zone named. A contract not kept round the clock counts service
/// hours: its durations say so.
fn next_breach(e: &QueueEntry, contracts: &Contracts, viewer_zone: &str, now: i64) -> Markup {
    next_clock(&e.sla, e.meta.contract.as_deref(), contracts, viewer_zone, now)
}

/// The next clock of a case's SLA (see [`next_breach`]) under contract
/// `contract` (by name; `None`: advisory, its times in `viewer_zone`), as
/// of `now`. The queue's column and the case page's summary.
pub(super) fn next_clock(
    sla: &SlaView,
    contract: Option<&str>,
    contracts: &Contracts,
    viewer_zone: &str,
    now: i64,
) -> Markup {
    let zone = zone_named(contract, contracts, viewer_zone);
    let round_the_clock = contract
        .and_then(|n| contracts.named(n))
        .is_none_or(|c| c.calendar.is_round_the_clock());
    let left = |c: &ClockView, t: i64| {
        if round_the_clock {
            duration(t - now)
        } else {
            format!("{} service hours", duration(c.target_ms - c.used_ms))
        }
    };
    match sla.next_clock() {
        None => html! { "—" },
        Some((name, c)) => match c.breach_at_ms {
            _ if c.breached => html! {
                span.breached { "BREACHED" } " " (name) br; small { "due " (format_ms_in(c.due_ms, zone)) }
            },
            Some(t) if t <= now => html! {
                span.breached { "BREACHED" } " " (name) br; small { "due " (format_ms_in(t, zone)) }
            },
            Some(t) => html! {
                (name) " in " (left(c, t)) br; small { "due " (format_ms_in(t, zone)) }
            },
            None => html! { "paused" small { " (" (name) ")" } },
        },
    }
}

/// The time zone a case's times are shown in: its contract's, else the
/// viewer's.
fn zone_of<'a>(e: &QueueEntry, contracts: &'a Contracts, viewer_zone: &'a str) -> &'a str {
    zone_named(e.meta.contract.as_deref(), contracts, viewer_zone)
}

/// The time zone of contract `contract` (by name), else `fallback`: where
/// a case's times are read, on the queue and on the case's page.
pub(super) fn zone_named<'a>(contract: Option<&str>, contracts: &'a Contracts, fallback: &'a str) -> &'a str {
    contract
        .and_then(|n| contracts.named(n))
        .map_or(fallback, |c| c.calendar.time_zone())
}

/// A sortable column's header: a link to sort by it (the other way when it
/// is the order already), keeping the filters, back on the first page.
fn sort_header(q: &QueueQuery, by: SortBy, label: &str, current: SortBy, descending: bool) -> Markup {
    let active = by == current;
    let next_descending = if active { !descending } else { by.first_descending() };
    let href = Link::new(q)
        .with("sort", Some(by.as_str()))
        .with("dir", Some(if next_descending { "desc" } else { "asc" }))
        .with("page", None)
        .href();
    let sort = active.then_some(if descending { "descending" } else { "ascending" });
    html! {
        th scope="col" aria-sort=[sort] {
            a href=(href) {
                (label)
                @if active { span aria-hidden="true" { @if descending { " ▼" } @else { " ▲" } } }
            }
        }
    }
}

pub fn queue(
    viewer: &Viewer<'_>,
    contracts: &Contracts,
    q: &QueueQuery,
    page: Option<&QueuePage>,
    error: Option<&str>,
    now: i64,
) -> Markup {
    let chosen = |v: &Option<String>| v.clone().unwrap_or_default();
    let staff = viewer.who.scope().is_none();
    let paging = q.paging().unwrap_or_default();
    let refreshing = q.refreshing();
    let mut statuses = vec![("", "active")];
    statuses.extend(STATUSES.iter().map(|s| (*s, *s)));
    let mut severities = vec![("", "any")];
    severities.extend(SEVERITIES.iter().map(|s| (*s, *s)));
    let mut customers = vec![("", "any")];
    customers.extend(contracts.customers.iter().map(|c| (c.name.as_str(), c.name.as_str())));
    let mut assignees = vec![("", "anyone"), ("-", "unassigned")];
    assignees.extend(contracts.engineers.iter().map(|e| (e.name.as_str(), e.name.as_str())));
    let assignee = q.assignee.as_deref().map(str::trim).unwrap_or_default();
    let view = |label: &str, value: Option<&str>| {
        let href = Link::new(q).with("assignee", value).with("page", None).href();
        let current = assignee == value.unwrap_or_default();
        html! { a href=(href) aria-current=[current.then_some("page")] { (label) } }
    };
    let content = html! {
        h1 { "Queue" }
        (error_box(error))
        @if refreshing {
            // A page that reloads itself would throw away what someone is
            // typing into the search box: while it refreshes there is no
            // form, only the way to stop it (and then to search).
            p.refresh {
                "This page reloads every " (REFRESH_SECS) " seconds. "
                a href=(Link::new(q).with("refresh", None).href()) { "Stop auto-refresh" }
            }
        } @else {
            div.filters {
                form method="get" action="/queue" role="search" aria-label="Filter the queue" {
                    div { label for="q" { "Search" } input type="search" name="q" id="q" value=(chosen(&q.q)) placeholder="title, host, serial, #123"; }
                    div { label for="status" { "Status" } (select("status", "status", &statuses, &chosen(&q.status))) }
                    div { label for="severity" { "Severity at least" } (select("severity", "severity", &severities, &chosen(&q.severity))) }
                    @if staff {
                        div { label for="customer" { "Customer" } (select("customer", "customer", &customers, &chosen(&q.customer))) }
                    }
                    div { label for="assignee" { "Assignee" } (select("assignee", "assignee", &assignees, &chosen(&q.assignee))) }
                    // The order and the page size stay as they were.
                    @for (name, value) in [("sort", &q.sort), ("dir", &q.dir), ("per_page", &q.per_page)] {
                        @if let Some(v) = value.as_deref().filter(|v| !v.trim().is_empty()) {
                            input type="hidden" name=(name) value=(v);
                        }
                    }
                    div { button type="submit" { "Filter" } }
                }
            }
            p.refresh { a href=(Link::new(q).with("refresh", Some("on")).href()) { "Auto-refresh every " (REFRESH_SECS) " s" } }
        }
        @if staff && viewer.who.can_act() {
            nav.views aria-label="Views" {
                (view("All", None))
                (view("Mine", Some(viewer.who.name.as_str())))
                (view("Unassigned", Some("-")))
            }
        }
        @match page {
            None => {}
            Some(p) if p.entries.is_empty() => {
                p { @if p.total == 0 { "No cases." } @else { "No cases on this page (" (thousands(p.total)) " in all)." } }
                (pager(q, p, "Pages"))
            }
            Some(p) => {
                (pager(q, p, "Pages, above the cases"))
                div.table-wrap role="region" aria-label="Cases" tabindex="0" {
                    table #queue {
                        caption.visually-hidden { "Cases, " (paging_caption(paging.sort, paging.descending)) }
                        thead { tr {
                            (sort_header(q, SortBy::Case, "Case", paging.sort, paging.descending))
                            (sort_header(q, SortBy::Severity, "Severity", paging.sort, paging.descending))
                            (sort_header(q, SortBy::Breach, "Next breach", paging.sort, paging.descending))
                            (sort_header(q, SortBy::Age, "Age", paging.sort, paging.descending))
                            th scope="col" { "Title" }
                            (sort_header(q, SortBy::Asset, "Asset", paging.sort, paging.descending))
                            (sort_header(q, SortBy::Status, "Status", paging.sort, paging.descending))
                            (sort_header(q, SortBy::Assignee, "Assignee", paging.sort, paging.descending))
                            (sort_header(q, SortBy::Customer, "Customer", paging.sort, paging.descending))
                            @if staff {
                                th scope="col" { "Level" }
                                th scope="col" { "Contract" }
                            }
                        } }
                        tbody {
                            @for e in &p.entries {
                                tr {
                                    td { a href=(case_href(e.item.id)) { "#" (e.item.id.unwrap_or_default()) } }
                                    td { (severity_badge(e.item.severity)) }
                                    td { (next_breach(e, contracts, &viewer.zone, now)) }
                                    td title=(format!("opened {}", format_ms_in(e.item.opened_at_ms, zone_of(e, contracts, &viewer.zone)))) {
                                        (duration(now - e.item.opened_at_ms))
                                    }
                                    td { a href=(case_href(e.item.id)) { (e.meta.title) } }
                                    td { a href=(asset_href(&e.item.key.asset)) { (e.item.key.asset) } }
                                    td { (e.item.status.to_string()) }
                                    td { (e.meta.assignee.as_deref().unwrap_or("unassigned")) }
                                    td { (e.item.key.customer) }
                                    @if staff {
                                        td { (e.meta.level) }
                                        td { (e.meta.contract.as_deref().unwrap_or("advisory")) }
                                    }
                                }
                            }
                        }
                    }
                }
                (pager(q, p, "Pages, below the cases"))
            }
        }
    };
    let refresh = refreshing.then_some(REFRESH_SECS);
    page_layout("queue", Some(viewer), refresh, content)
}

fn paging_caption(by: SortBy, descending: bool) -> String {
    format!(
        "sorted by {}, {}",
        by.as_str(),
        if descending { "descending" } else { "ascending" }
    )
}

/// "1–50 of 1,234" and the links to the pages before and after, keeping
/// every filter.
fn pager(q: &QueueQuery, p: &QueuePage, label: &str) -> Markup {
    let first = p.page.saturating_sub(1).saturating_mul(p.per_page);
    let last = first.saturating_add(p.entries.len() as u64);
    let link = |n: u64| Link::new(q).with("page", Some(&n.to_string())).href();
    let count = (!p.entries.is_empty())
        .then(|| format!("{}–{} of {}", thousands(first + 1), thousands(last), thousands(p.total)));
    super::paging::pager(
        label,
        count,
        (p.page > 1).then(|| link(p.page - 1)),
        (last < p.total).then(|| link(p.page + 1)),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn numbers_get_thousands_separators() {
        for (n, want) in [(0, "0"), (999, "999"), (1_000, "1,000"), (1_234_567, "1,234,567")] {
            assert_eq!(thousands(n), want);
        }
    }

    #[test]
    fn links_keep_every_filter_and_change_only_what_they_say() {
        let q = QueueQuery {
            status: Some("on_hold".into()),
            q: Some("disk fail&more".into()),
            assignee: Some("".into()),
            page: Some("3".into()),
            ..QueueQuery::default()
        };
        assert_eq!(
            Link::new(&q).href(),
            "/queue?status=on_hold&q=disk%20fail%26more&page=3"
        );
        assert_eq!(
            Link::new(&q).with("page", None).with("sort", Some("age")).href(),
            "/queue?status=on_hold&q=disk%20fail%26more&sort=age"
        );
        assert_eq!(Link::new(&QueueQuery::default()).href(), "/queue");
    }
}
