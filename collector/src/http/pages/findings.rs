//! The inspection findings (risks: a disk's warning, a reboot required, a
//! filesystem forecast to fill) and what engineers decide about them.
//! - `GET /findings`: the findings the viewer may see, most severe first,
//!   then newest. Filters: `status` (`active`, the default, `all`, or a
//!   finding status), `severity` (the minimum), `customer` (staff only),
//!   `q` (words of the title or host, any case); 50 to a page (`page`).
//! - `POST /findings/{id}` (staff, with the session's CSRF token): `action`
//!   `plan` (the remedy is scheduled), `accept_risk` (the customer keeps
//!   the risk; `comment` says why), `fix` or `verify`, with an optional
//!   `comment`; then 303 back to the list (`back`, a `/findings` address).
//!   A move the finding's status does not allow answers 409 with the list.

use axum::Form;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::paging::{self, Paged, given, page_number};
use super::render::duration;
use super::{PageError, Viewer, html_page, layout, not_found, problem};
use crate::auth::{self, percent_encode};
use crate::cases::store::{self as items, Filter};
use crate::cases::{Action, Item, ItemKind, Severity};
use crate::http::AppState;
use crate::http::cases::{StatusFilter, parse_status};
use crate::http::error::ApiError;
use crate::queue::title_of;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FindingsQuery {
    status: Option<String>,
    severity: Option<String>,
    customer: Option<String>,
    q: Option<String>,
    page: Option<String>,
}

impl FindingsQuery {
    /// The store filter, the search words and the page; `Err` names the
    /// field that is wrong.
    fn wanted(&self, scope: Option<&str>) -> Result<(Filter, Vec<String>, usize), String> {
        let status = given(&self.status);
        let (active_only, status_name) = match parse_status(ItemKind::Finding, status.as_deref()) {
            Ok(StatusFilter::Active) => (true, None),
            Ok(StatusFilter::All) => (false, None),
            Ok(StatusFilter::Named(n)) => (false, Some(n)),
            Err(e) => return Err(problem(e).1),
        };
        let severity_min = match given(&self.severity) {
            None => None,
            Some(s) => Some(Severity::parse(&s).ok_or_else(|| format!("severity: {s:?} is not a severity"))?),
        };
        let filter = Filter {
            kind: Some(ItemKind::Finding),
            status_active_only: active_only,
            severity_min,
            // A customer's user sees its own findings whatever it asks for.
            customer: scope.map(str::to_string).or_else(|| given(&self.customer)),
            status_name,
            ..Filter::default()
        };
        let words = paging::search_words(&self.q);
        Ok((filter, words, page_number(&self.page)?))
    }

    fn href(&self, page: usize) -> String {
        paging::href(
            "/findings",
            &[
                ("status", &self.status),
                ("severity", &self.severity),
                ("customer", &self.customer),
                ("q", &self.q),
            ],
            page,
        )
    }
}

/// The actions a finding in this status may take, as (action, button).
fn next_actions(item: &Item) -> Vec<(&'static str, &'static str)> {
    use crate::cases::Status as S;
    match item.status {
        S::Open => vec![("plan", "Plan"), ("accept_risk", "Accept risk"), ("fix", "Fixed")],
        S::Planned => vec![("accept_risk", "Accept risk"), ("fix", "Fixed")],
        S::AcceptedRisk => vec![("fix", "Fixed")],
        S::Fixed => vec![("verify", "Verified")],
        _ => vec![],
    }
}

fn action_of(name: &str) -> Result<Action, String> {
    match name {
        "plan" => Ok(Action::Plan),
        "accept_risk" => Ok(Action::AcceptRisk),
        "fix" => Ok(Action::Fix),
        "verify" => Ok(Action::Verify),
        other => Err(format!("action: {other:?} is not plan, accept_risk, fix or verify")),
    }
}

async fn listed(state: &AppState, q: &FindingsQuery, scope: Option<&str>) -> Result<Paged<Item>, PageError> {
    let (filter, words, page) = q
        .wanted(scope)
        .map_err(|m| PageError::Status(StatusCode::BAD_REQUEST, m))?;
    let mut found = crate::http::read(state, move |c| items::list(c, &filter)).await?;
    found.retain(|i| {
        let text = format!("{} {}", title_of(i), i.key.asset).to_lowercase();
        paging::has_words(&words, &text)
    });
    // Most severe first, then newest (the store lists newest first).
    found.sort_by_key(|f| std::cmp::Reverse(f.severity));
    Ok(Paged::of(found, page))
}

pub(super) async fn findings_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    query: Result<Query<FindingsQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let (who, session) = auth::page_principal(&state, &headers, &uri).await?;
    let viewer = Viewer::new(&state, &who, &session.csrf);
    let customers = super::customer_choices(&state);
    let q = match query {
        Ok(Query(q)) => q,
        Err(e) => {
            let page = render(
                &viewer,
                &customers,
                &FindingsQuery::default(),
                &Paged::none(),
                Some(&e.body_text()),
            );
            return Ok(html_page(StatusCode::BAD_REQUEST, page));
        }
    };
    match listed(&state, &q, who.scope()).await {
        Ok(shown) => Ok(html_page(StatusCode::OK, render(&viewer, &customers, &q, &shown, None))),
        Err(PageError::Status(code, message)) if code == StatusCode::BAD_REQUEST => Ok(html_page(
            code,
            render(&viewer, &customers, &q, &Paged::none(), Some(&message)),
        )),
        Err(e) => Err(e),
    }
}

pub(super) async fn finding_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Result<Response, PageError> {
    let (who, session, fields) = super::staff_form(&state, &headers, &uri, form).await?;
    let id: i64 = id.parse().map_err(|_| not_found("finding"))?;
    // Back to the list as it was filtered; never to another site.
    let back = super::back_to(&fields, "/findings");
    let outcome = match action_of(fields.get("action").trim()) {
        Err(message) => Err((StatusCode::BAD_REQUEST, message)),
        Ok(action) => {
            let comment = fields.opt("comment");
            let person = who.name.clone();
            let done = state
                .writer
                .run(move |conn| {
                    match items::get(conn, id)? {
                        Some((item, _)) if item.kind == ItemKind::Finding => {}
                        _ => return Err(crate::store::StoreError::NoSuchItem(id)),
                    }
                    let now = caretaker_shared::now_ms();
                    items::person_action(conn, id, action, &person, comment.as_deref(), now)
                })
                .await;
            match done {
                Ok(_) => {
                    tracing::info!(finding = id, action = action.name(), user = %who.name, "finding action from the web");
                    Ok(())
                }
                Err(e) => Err(problem(ApiError::from(e))),
            }
        }
    };
    let (code, message) = match outcome {
        Ok(()) => return Ok(Redirect::to(&back).into_response()),
        Err(refused) => refused,
    };
    if code.is_server_error() || code == StatusCode::NOT_FOUND {
        return Err(PageError::Status(code, message));
    }
    tracing::debug!(finding = id, user = %who.name, %message, "finding action from the web refused");
    let viewer = Viewer::new(&state, &who, &session.csrf);
    let customers = super::customer_choices(&state);
    let q = FindingsQuery::default();
    let shown = listed(&state, &q, who.scope()).await?;
    Ok(html_page(code, render(&viewer, &customers, &q, &shown, Some(&message))))
}

fn render(
    viewer: &Viewer<'_>,
    customers: &[String],
    q: &FindingsQuery,
    shown: &Paged<Item>,
    error: Option<&str>,
) -> Markup {
    let chosen = |v: &Option<String>| given(v).unwrap_or_default();
    let now = caretaker_shared::now_ms();
    let statuses = [
        ("", "active"),
        ("all", "all"),
        ("open", "open"),
        ("planned", "planned"),
        ("accepted_risk", "accepted risk"),
        ("fixed", "fixed"),
        ("verified", "verified"),
    ];
    let severities = [
        ("", "any"),
        ("info", "info"),
        ("warning", "warning"),
        ("major", "major"),
        ("critical", "critical"),
    ];
    let back = q.href(shown.page);
    let content = html! {
        h1 { "Findings" }
        p { "Risks the inspection found: each needs a decision (plan the remedy, accept the risk) before it becomes a fault." }
        @if let Some(e) = error {
            p.error role="alert" { (e) }
        }
        div.filters {
            form method="get" action="/findings" {
                (super::search_box(&chosen(&q.q), "title or host"))
                (super::choice("status", "Status", &statuses, &chosen(&q.status)))
                (super::choice("severity", "Severity at least", &severities, &chosen(&q.severity)))
                @if viewer.who.scope().is_none() {
                    (super::customer_choice("Customer", "any", customers, &chosen(&q.customer)))
                }
                div { button type="submit" { "Filter" } }
            }
        }
        @if shown.rows.is_empty() {
            (shown.empty("findings", &q.href(1)))
        } @else {
            p #findings-count { (shown.counted("finding", "findings")) }
            div.table-wrap role="region" aria-label="Findings" tabindex="0" {
                table #findings {
                    thead { tr {
                        th scope="col" { "Severity" } th scope="col" { "Finding" } th scope="col" { "Host" }
                        @if viewer.who.scope().is_none() { th scope="col" { "Customer" } }
                        th scope="col" { "Status" } th scope="col" { "Found" } th scope="col" { "Last seen" }
                        @if viewer.who.can_act() { th scope="col" { "Decide" } }
                    } }
                    tbody {
                        @for f in &shown.rows {
                            @let id = f.id.unwrap_or_default();
                            tr id=(format!("finding-{id}")) {
                                td class=(format!("sev sev-{}", f.severity.as_str())) { (f.severity.as_str()) }
                                td { (title_of(f)) }
                                td { a href=(format!("/assets/{}", percent_encode(&f.key.asset))) { (f.key.asset) } }
                                @if viewer.who.scope().is_none() { td { (f.key.customer) } }
                                td { (f.status.to_string().replace('_', " ")) }
                                td { (duration(now - f.opened_at_ms)) " ago" br; small { (viewer.time(f.opened_at_ms)) } }
                                td { (viewer.time(f.last_firing_at_ms)) }
                                @if viewer.who.can_act() {
                                    td {
                                        @let next = next_actions(f);
                                        @if !next.is_empty() {
                                            form.decide method="post" action=(format!("/findings/{id}")) {
                                                input type="hidden" name="csrf" value=(viewer.csrf);
                                                input type="hidden" name="back" value=(back);
                                                label for=(format!("comment-{id}")) { "Note" }
                                                input id=(format!("comment-{id}")) type="text" name="comment" placeholder="why, when";
                                                @for (action, button) in next {
                                                    button type="submit" name="action" value=(action) { (button) }
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            (shown.nav(|n| q.href(n)))
        }
    };
    layout("findings", Some(viewer), content)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use axum::http::StatusCode;
    use serde_json::json;

    use crate::cases::{IdentityKey, ItemKind, Policy, Severity, Signal};
    use crate::http::AppState;
    use crate::http::pages::tests::{login, state};

    fn finding(customer: &str, asset: &str, check: &str, severity: Severity, summary: &str) -> Signal {
        Signal {
            event: None,
            key: IdentityKey {
                customer: customer.into(),
                asset: asset.into(),
                check: check.into(),
                component: "/srv".into(),
            },
            kind: ItemKind::Finding,
            severity,
            rule: check.into(),
            firing: true,
            at_ms: caretaker_shared::now_ms(),
            evidence: json!({"summary": summary}),
        }
    }

    async fn raise(s: &AppState) {
        s.writer
            .signals(
                vec![
                    finding(
                        "acme",
                        "db01",
                        "fs_fills",
                        Severity::Warning,
                        "/srv on db01 fills within 7 days",
                    ),
                    finding("acme", "db01", "reboot", Severity::Info, "db01 needs a reboot"),
                    finding(
                        "globex",
                        "web01",
                        "disk_warn",
                        Severity::Major,
                        "disk sdb on web01 reallocates sectors",
                    ),
                ],
                Policy::default(),
            )
            .await
            .unwrap();
    }

    /// The finding ids on the page, in order.
    fn rows(body: &str) -> Vec<i64> {
        body.split("<tr id=\"finding-")
            .skip(1)
            .filter_map(|r| r.split('"').next()?.parse().ok())
            .collect()
    }

    #[tokio::test]
    async fn findings_are_listed_by_severity_with_their_summary_and_filtered() {
        let dir = tempfile::tempdir().unwrap();
        let s = state(&dir).await;
        raise(&s).await;
        let ana = login(&s, "ana").await;
        let r = ana.get(&s, "/findings").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let all = rows(&r.body);
        assert_eq!(all.len(), 3, "{}", r.body);
        // Most severe first: major, warning, info.
        let major = r.body.find("reallocates sectors").unwrap();
        let warning = r.body.find("fills within 7 days").unwrap();
        let info = r.body.find("needs a reboot").unwrap();
        assert!(major < warning && warning < info, "{}", r.body);
        assert!(r.body.contains(">3 findings<"), "{}", r.body);

        let r = ana.get(&s, "/findings?severity=warning&customer=acme").await;
        assert_eq!(rows(&r.body).len(), 1, "{}", r.body);
        let r = ana.get(&s, "/findings?q=REBOOT").await;
        assert_eq!(rows(&r.body).len(), 1, "{}", r.body);
        let r = ana.get(&s, "/findings?status=fixed").await;
        assert!(r.body.contains("No findings."), "{}", r.body);
        let r = ana.get(&s, "/findings?status=resolved").await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert!(
            r.body
                .contains("status: &quot;resolved&quot; is not active, all, or a finding status"),
            "{}",
            r.body
        );

        // A customer's user: its own findings, no customer column, no decisions.
        let carol = login(&s, "carol").await;
        let r = carol.get(&s, "/findings?customer=globex").await;
        assert_eq!(rows(&r.body).len(), 2, "{}", r.body);
        assert!(
            !r.body.contains("reallocates") && !r.body.contains("action=\"/findings/"),
            "{}",
            r.body
        );
        let id = all[0];
        let r = carol.post(&s, &format!("/findings/{id}"), &[("action", "fix")]).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
    }

    #[tokio::test]
    async fn an_engineer_plans_accepts_and_fixes_findings_from_the_list() {
        let dir = tempfile::tempdir().unwrap();
        let s = state(&dir).await;
        raise(&s).await;
        let ana = login(&s, "ana").await;
        let r = ana.get(&s, "/findings?customer=acme").await;
        let ids = rows(&r.body);
        let (warning, info) = (ids[0], ids[1]);

        let back = "/findings?customer=acme";
        let r = ana
            .post(
                &s,
                &format!("/findings/{warning}"),
                &[("action", "plan"), ("comment", "grow /srv on Friday"), ("back", back)],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        assert_eq!(r.headers["location"], back);
        let r = ana
            .post(
                &s,
                &format!("/findings/{info}"),
                &[("action", "accept_risk"), ("back", "https://evil.example/")],
            )
            .await;
        assert_eq!(r.headers["location"], "/findings");

        let r = ana.get(&s, "/findings?status=all&customer=acme").await;
        assert!(
            r.body.contains("<td>planned</td>") && r.body.contains("<td>accepted risk</td>"),
            "{}",
            r.body
        );
        let (_, v) = crate::http::testing::get(&s, &format!("/api/v1/findings/{warning}")).await;
        let last = v["log"].as_array().unwrap().last().unwrap().clone();
        assert_eq!(last["actor"], "person:ana", "{v}");
        assert_eq!(last["comment"], "grow /srv on Friday", "{v}");

        // A move the status does not allow: 409 with the list and why.
        let r = ana
            .post(&s, &format!("/findings/{warning}"), &[("action", "verify")])
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
        assert!(r.body.contains("role=\"alert\""), "{}", r.body);
        let r = ana
            .post(&s, &format!("/findings/{warning}"), &[("action", "explode")])
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert!(r.body.contains("action: &quot;explode&quot; is not plan"), "{}", r.body);
        // A case's id is not a finding's.
        let case = crate::http::pages::tests::report(&s, &ana, "db01", "noise").await;
        let r = ana.post(&s, &format!("/findings/{case}"), &[("action", "fix")]).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
        // Without the session's token: refused, nothing changes.
        let r = crate::http::testing::send(
            &s,
            "POST",
            &format!("/findings/{warning}"),
            &[
                ("content-type", "application/x-www-form-urlencoded"),
                ("cookie", &ana.cookie),
            ],
            "action=fix",
        )
        .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        let r = ana
            .post(&s, &format!("/findings/{warning}"), &[("action", "fix")])
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        let r = ana.get(&s, "/findings?status=fixed").await;
        assert_eq!(rows(&r.body), vec![warning]);
        assert!(r.body.contains("value=\"verify\""), "{}", r.body);
    }
}
