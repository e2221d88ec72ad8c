//! `GET /hosts`: every host the viewer may see, the way to a host that has
//! no case. Each row: the host (to its asset page), customer and site, up
//! or down (or revoked), its last report, OS and model from its inventory,
//! and its open cases and findings. Hosts that are down come first, then
//! by name. Filters: `customer` (staff only), `state` (`up`, `down`,
//! `revoked`), `q` (a word of the host's name, model, serial or OS, any
//! case); 50 hosts to a page (`page`, from 1).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;

use super::paging::{self, Paged, given, page_number};
use super::render::duration;
use super::{PageError, Viewer, html_page, layout};
use crate::auth::{self, percent_encode};
use crate::fleet::Host;
use crate::http::AppState;
use crate::http::hosts::{customer_of, may_see_host, revoked};
use crate::store::items::Items;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HostsQuery {
    customer: Option<String>,
    state: Option<String>,
    q: Option<String>,
    page: Option<String>,
}

/// Up, down, or revoked (down for good until decommissioned).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum HostState {
    Revoked,
    Down,
    Up,
}

impl HostState {
    fn as_str(self) -> &'static str {
        match self {
            HostState::Up => "up",
            HostState::Down => "down",
            HostState::Revoked => "revoked",
        }
    }

    fn parse(s: &str) -> Option<HostState> {
        [HostState::Up, HostState::Down, HostState::Revoked]
            .into_iter()
            .find(|h| h.as_str() == s)
    }
}

/// One line of the page.
struct Line {
    host: Arc<Host>,
    state: HostState,
    cases: i64,
    findings: i64,
}

/// What the query asks for, checked: `Err` names the field that is wrong.
struct Wanted {
    customer: Option<String>,
    state: Option<HostState>,
    words: Vec<String>,
    page: usize,
}

impl HostsQuery {
    fn wanted(&self) -> Result<Wanted, String> {
        let state = match given(&self.state) {
            None => None,
            Some(s) => Some(HostState::parse(&s).ok_or_else(|| format!("state: {s:?} is not up, down or revoked"))?),
        };
        let page = page_number(&self.page)?;
        let words = paging::search_words(&self.q);
        Ok(Wanted {
            customer: given(&self.customer),
            state,
            words,
            page,
        })
    }
}

/// The text a search word is looked for in: name, customer, site, model,
/// serials, OS and kernel.
fn haystack(h: &Host) -> String {
    let mut text = format!("{} {} {}", h.host, customer_of(h), h.label("site"));
    if let Some(inv) = &h.inventory {
        for part in [
            &inv.dmi.sys_vendor,
            &inv.dmi.product_name,
            &inv.dmi.product_serial,
            &inv.os_name,
            &inv.os_version,
            &inv.kernel,
        ] {
            text.push(' ');
            text.push_str(part);
        }
        for d in &inv.disks {
            text.push(' ');
            text.push_str(&d.model);
            text.push(' ');
            text.push_str(&d.serial);
        }
    }
    text.to_lowercase()
}

pub(super) async fn hosts_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    query: Result<Query<HostsQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let (who, session) = auth::page_principal(&state, &headers, &uri).await?;
    let viewer = Viewer::new(&state, &who, &session.csrf);
    let customers = super::customer_choices(&state);
    let (q, wanted) = match query {
        Ok(Query(q)) => match q.wanted() {
            Ok(w) => (q, w),
            Err(message) => {
                let page = render(&viewer, &customers, &q, &Paged::none(), Some(&message));
                return Ok(html_page(StatusCode::BAD_REQUEST, page));
            }
        },
        Err(e) => {
            let none = Paged::none();
            let page = render(&viewer, &customers, &HostsQuery::default(), &none, Some(&e.body_text()));
            return Ok(html_page(StatusCode::BAD_REQUEST, page));
        }
    };
    let counts = crate::http::read(&state, |c| Ok(c.open_items_by_asset()?)).await?;
    let mut open: HashMap<(String, String), (i64, i64)> = HashMap::new();
    for c in counts {
        let e = open.entry((c.customer, c.asset)).or_default();
        match c.kind.as_str() {
            "case" => e.0 += c.count,
            _ => e.1 += c.count,
        }
    }
    let now = caretaker_shared::now_ms();
    let down_after = state.config.hosts.down_after_intervals;
    // A customer's user sees its own hosts whatever it asks for.
    let customer = who.scope().map(str::to_string).or(wanted.customer);
    let mut lines: Vec<Line> = state
        .fleet
        .snapshot()
        .into_iter()
        .filter(|h| may_see_host(&who, h))
        .filter(|h| customer.as_deref().is_none_or(|c| customer_of(h) == c))
        .filter(|h| {
            // The haystack is built only when there is something to look for.
            wanted.words.is_empty() || {
                let text = haystack(h);
                paging::has_words(&wanted.words, &text)
            }
        })
        .map(|h| {
            let state = if revoked(&state, &h) {
                HostState::Revoked
            } else if h.is_up(now, down_after) {
                HostState::Up
            } else {
                HostState::Down
            };
            let (cases, findings) = open
                .get(&(customer_of(&h).to_string(), h.host.clone()))
                .copied()
                .unwrap_or_default();
            Line {
                host: h,
                state,
                cases,
                findings,
            }
        })
        .filter(|l| wanted.state.is_none_or(|s| l.state == s))
        .collect();
    lines.sort_by(|a, b| {
        let down = |l: &Line| l.state == HostState::Down;
        down(b)
            .cmp(&down(a))
            .then_with(|| a.host.host.cmp(&b.host.host))
            .then_with(|| a.host.agent_id.cmp(&b.host.agent_id))
    });
    let shown = Paged::of(lines, wanted.page);
    Ok(html_page(StatusCode::OK, render(&viewer, &customers, &q, &shown, None)))
}

/// `/hosts` with the query's filters and page `page`.
fn href(q: &HostsQuery, page: usize) -> String {
    paging::href(
        "/hosts",
        &[("customer", &q.customer), ("state", &q.state), ("q", &q.q)],
        page,
    )
}

fn model(h: &Host) -> String {
    h.inventory
        .as_ref()
        .map(|i| {
            format!("{} {}", i.dmi.sys_vendor, i.dmi.product_name)
                .trim()
                .to_string()
        })
        .unwrap_or_default()
}

/// "Debian GNU/Linux 12 (bookworm), kernel 6.1.0-18": the version only
/// when the name does not already say it.
fn os(h: &Host) -> String {
    let Some(i) = &h.inventory else {
        return String::new();
    };
    let mut text = i.os_name.clone();
    if !i.os_version.is_empty() && !i.os_name.contains(&i.os_version) {
        text = format!("{text} {}", i.os_version);
    }
    if !i.kernel.is_empty() {
        text = format!("{text}, kernel {}", i.kernel);
    }
    text.trim_start_matches(", ").trim().to_string()
}

fn render(
    viewer: &Viewer<'_>,
    customers: &[String],
    q: &HostsQuery,
    shown: &Paged<Line>,
    error: Option<&str>,
) -> Markup {
    let chosen = |v: &Option<String>| given(v).unwrap_or_default();
    let now = caretaker_shared::now_ms();
    let content = html! {
        h1 { "Hosts" }
        @if let Some(e) = error {
            p.error role="alert" { (e) }
        }
        div.filters {
            form method="get" action="/hosts" {
                (super::search_box(&chosen(&q.q), "name, model, serial, OS"))
                (super::choice("state", "State", &[("", "any"), ("up", "up"), ("down", "down"), ("revoked", "revoked")], &chosen(&q.state)))
                @if viewer.who.scope().is_none() {
                    (super::customer_choice("Customer", "any", customers, &chosen(&q.customer)))
                }
                div { button type="submit" { "Filter" } }
            }
        }
        @if shown.rows.is_empty() {
            (shown.empty("hosts", &href(q, 1)))
        } @else {
            p #hosts-count { (shown.counted("host", "hosts")) }
            div.table-wrap role="region" aria-label="Hosts" tabindex="0" {
                table #hosts {
                    thead { tr {
                        th scope="col" { "Host" } th scope="col" { "State" } th scope="col" { "Customer" }
                        th scope="col" { "Site" } th scope="col" { "Last report" } th scope="col" { "Model" }
                        th scope="col" { "OS" } th scope="col" { "Open cases" } th scope="col" { "Open findings" }
                    } }
                    tbody {
                        @for l in &shown.rows {
                            tr {
                                td { a href=(format!("/assets/{}", percent_encode(&l.host.host))) { (l.host.host) } }
                                td class=(format!("state-{}", l.state.as_str())) { (l.state.as_str()) }
                                td { (customer_of(&l.host)) }
                                td { (l.host.label("site")) }
                                td {
                                    @match l.host.last_seen_ms {
                                        Some(t) => { (duration(now - t)) " ago" br; small { (viewer.time(t)) } }
                                        None => { "never" }
                                    }
                                }
                                td { (model(&l.host)) }
                                td { (os(&l.host)) }
                                td { (l.cases) }
                                td { (l.findings) }
                            }
                        }
                    }
                }
            }
            (shown.nav(|n| href(q, n)))
        }
    };
    layout("hosts", Some(viewer), content)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use axum::http::StatusCode;

    use crate::http::pages::tests::{login, report, state};
    use crate::http::testing::state_with;
    use crate::store::agents::{Agents, NewAgent};

    /// The host names in the page's table, in order.
    fn rows(body: &str) -> Vec<String> {
        let Some(table) = body.split("<tbody>").nth(1) else {
            return Vec::new();
        };
        table
            .split("<a href=\"/assets/")
            .skip(1)
            .filter_map(|r| r.split('"').next())
            .map(str::to_string)
            .collect()
    }

    #[tokio::test]
    async fn the_hosts_page_lists_what_the_viewer_may_see_with_open_items_and_filters() {
        let dir = tempfile::tempdir().unwrap();
        let s = state(&dir).await;
        let ana = login(&s, "ana").await;
        let r = ana.get(&s, "/hosts").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert_eq!(rows(&r.body), ["db01", "web01"], "{}", r.body);
        // Never reported: down, and said so.
        assert!(
            r.body.contains("class=\"state-down\">down</td>") && r.body.contains("never"),
            "{}",
            r.body
        );
        assert!(r.body.contains(">2 hosts<"), "{}", r.body);

        // A fault on db01 counts as its open case.
        report(&s, &ana, "db01", "fan noise").await;
        let r = ana.get(&s, "/hosts?q=DB").await;
        assert_eq!(rows(&r.body), ["db01"], "{}", r.body);
        assert!(r.body.contains("<td>1</td><td>0</td>"), "{}", r.body);
        let r = ana.get(&s, "/hosts?customer=globex").await;
        assert_eq!(rows(&r.body), ["web01"]);
        let r = ana.get(&s, "/hosts?state=up").await;
        assert!(rows(&r.body).is_empty() && r.body.contains("No hosts."), "{}", r.body);

        // A customer's user sees its own hosts, whatever it asks for.
        let carol = login(&s, "carol").await;
        let r = carol.get(&s, "/hosts?customer=globex").await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(rows(&r.body), ["db01"], "{}", r.body);
        assert!(!r.body.contains("id=\"customer\""), "{}", r.body);

        // Bad input: 400 naming the field.
        for (uri, field) in [
            (
                "/hosts?state=sideways",
                "state: &quot;sideways&quot; is not up, down or revoked",
            ),
            ("/hosts?page=0", "page: &quot;0&quot;"),
            ("/hosts?sort=name", "unknown field `sort`"),
        ] {
            let r = ana.get(&s, uri).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{uri}: {}", r.body);
            assert!(r.body.contains(field), "{uri}: {}", r.body);
        }

        // Not logged in: to the login page.
        let r = crate::http::testing::send(&s, "GET", "/hosts", &[], "").await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
    }

    #[tokio::test]
    async fn the_hosts_page_pages_by_fifty_keeping_the_filters() {
        let dir = tempfile::tempdir().unwrap();
        let s = state_with(&dir, |conn| {
            for i in 0..120 {
                let (host, customer) = (format!("h{i:03}"), if i % 2 == 0 { "acme" } else { "globex" });
                conn.insert_agent(&NewAgent {
                    agent_id: &host,
                    credential_hash: &format!("h-{host}"),
                    host: &host,
                    enrolled_at_ms: 0,
                    customer: None,
                    site: None,
                    token_id: None,
                    labels: &serde_json::json!({"customer": customer, "site": "hq"}).to_string(),
                })
                .unwrap();
            }
        })
        .await;
        let phc = crate::auth::hash_password("pw").unwrap();
        let contracts = crate::http::testing::queue_contracts(&phc);
        s.contracts
            .set(crate::contracts::parse_file(&contracts, std::path::Path::new("c.toml")).unwrap());
        let ana = login(&s, "ana").await;
        let r = ana.get(&s, "/hosts?customer=acme").await;
        let first = rows(&r.body);
        assert_eq!(first.len(), 50);
        assert_eq!(first[0], "h000");
        assert!(r.body.contains("1–50 of 60 hosts"), "{}", r.body);
        assert!(
            r.body.contains("href=\"/hosts?customer=acme&amp;page=2\""),
            "{}",
            r.body
        );
        assert!(!r.body.contains("rel=\"prev\""));
        let r = ana.get(&s, "/hosts?customer=acme&page=2").await;
        let second = rows(&r.body);
        assert_eq!(second.len(), 10);
        assert_eq!(second[0], "h100");
        assert!(r.body.contains("51–60 of 60 hosts"), "{}", r.body);
        assert!(r.body.contains("href=\"/hosts?customer=acme\""), "{}", r.body);
        assert!(!r.body.contains("rel=\"next\""));
        let r = ana.get(&s, "/hosts?customer=acme&page=9").await;
        assert!(r.body.contains("Nothing on page 9; 60 hosts match."), "{}", r.body);
    }
}
