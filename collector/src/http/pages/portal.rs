//! The customer portal: what a customer's user sees, as the self-service
//! portals of GLPI and Jira Service Management show it.
//!
//! - `GET /portal`: its home, where it lands after login: its open cases
//!   with their status in plain words, its assets (each linking to the
//!   asset's page), its open risks (the findings on its assets) and its
//!   inspection reports to download (the API's download links, which check
//!   the customer too).
//! - The case page as a customer sees it: the case in plain words, its
//!   timeline ([`crate::queue::customer_view`]), a comment form (always
//!   public) and, once the case is resolved, the satisfaction survey.
//!
//! Staff have no portal: `GET /portal` sends them to the queue.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};

use super::render::{CaseView, Refused, asset_href, case_href, describe, error_box, reports_list};
use super::{Fields, PageError, Viewer, html_page, layout};
use crate::auth::{self, Principal};
use crate::cases::store::{self as cases_store, Filter};
use crate::cases::{Item, ItemKind, Status};
use crate::http::AppState;
use crate::http::hosts::may_see_host;
use crate::queue::customer_view::{status_words, timeline};
use crate::queue::{self, QueueEntry, QueueFilter, format_ms};
use crate::report::stored::{self, Summary};

/// The assets a customer's user may report a fault on (its customer's
/// hosts, by name); `None` for staff, who type any host.
pub(super) fn own_assets(state: &AppState, who: &Principal) -> Option<Vec<String>> {
    who.scope()?;
    let mut hosts: Vec<String> = state
        .fleet
        .snapshot()
        .iter()
        .filter(|h| may_see_host(who, h))
        .map(|h| h.host.clone())
        .collect();
    hosts.sort();
    hosts.dedup();
    Some(hosts)
}

/// A case's title as its rule or reporter gave it, else its check.
fn summary(i: &Item) -> String {
    i.evidence
        .get("summary")
        .and_then(|s| s.as_str())
        .filter(|s| !s.trim().is_empty())
        .map_or_else(|| describe(i), str::to_string)
}

/// What the portal's home shows.
struct Home {
    cases: Vec<QueueEntry>,
    /// Resolved cases whose survey waits for the customer's answer.
    to_rate: Vec<Item>,
    risks: Vec<Item>,
    reports: Vec<Summary>,
}

pub(super) async fn portal_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, PageError> {
    let (who, session) = auth::page_principal(&state, &headers, &uri).await?;
    let Some(customer) = who.scope().map(str::to_string) else {
        return Ok(Redirect::to("/queue").into_response());
    };
    let assets = own_assets(&state, &who).unwrap_or_default();
    let contracts = state.contracts.get();
    let now = caretaker_shared::now_ms();
    let home = crate::http::read(&state, move |c| {
        let filter = QueueFilter {
            customer: Some(customer.clone()),
            ..QueueFilter::default()
        };
        let cases = queue::queue(c, &contracts, &filter, now)?;
        let risks = cases_store::list(
            c,
            &Filter {
                kind: Some(ItemKind::Finding),
                status_active_only: true,
                customer: Some(customer.clone()),
                limit: Some(200),
                ..Filter::default()
            },
        )?;
        let mut to_rate = Vec::new();
        let resolved = cases_store::list(
            c,
            &Filter {
                kind: Some(ItemKind::Case),
                customer: Some(customer.clone()),
                status_name: Some("resolved"),
                limit: Some(200),
                ..Filter::default()
            },
        )?;
        for i in resolved {
            if let Some(id) = i.id
                && queue::satisfaction(c, id)?.is_none()
            {
                to_rate.push(i);
            }
        }
        let reports = stored::list(c, Some(&customer))?;
        Ok(Home {
            cases,
            to_rate,
            risks,
            reports,
        })
    })
    .await?;
    let viewer = Viewer {
        who: &who,
        csrf: &session.csrf,
    };
    Ok(html_page(StatusCode::OK, home_markup(&viewer, &home, &assets)))
}

fn home_markup(viewer: &Viewer<'_>, h: &Home, assets: &[String]) -> Markup {
    let customer = viewer.who.customer.as_deref().unwrap_or_default();
    let content = html! {
        h1 { "Your cases and assets" " (" (customer) ")" }
        p { a href="/faults/new" { "Report a fault" } }
        h2 #open-cases { "Open cases" }
        @if h.cases.is_empty() {
            p { "No open cases." }
        } @else {
            div.table-wrap role="region" aria-label="Open cases" tabindex="0" {
                table aria-labelledby="open-cases" #cases {
                    thead { tr { th { "Case" } th { "Title" } th { "Asset" } th { "Status" } th { "Opened" } } }
                    tbody {
                        @for e in &h.cases {
                            tr {
                                td { a href=(case_href(e.item.id)) { "#" (e.item.id.unwrap_or_default()) } }
                                td { a href=(case_href(e.item.id)) { (e.meta.title) } }
                                td { a href=(asset_href(&e.item.key.asset)) { (e.item.key.asset) } }
                                td { (status_words(e.item.status)) }
                                td { (format_ms(e.item.opened_at_ms)) }
                            }
                        }
                    }
                }
            }
        }
        @if !h.to_rate.is_empty() {
            h2 { "Resolved: how did we do?" }
            ul #to-rate {
                @for i in &h.to_rate {
                    li {
                        a href=(case_href(i.id)) { "Case #" (i.id.unwrap_or_default()) ": " (summary(i)) }
                        " on " (i.key.asset) ", resolved — answer its short survey"
                    }
                }
            }
        }
        h2 { "Your assets" }
        @if assets.is_empty() {
            p { "None." }
        } @else {
            ul #assets { @for a in assets { li { a href=(asset_href(a)) { (a) } } } }
        }
        h2 #open-risks { "Open risks" }
        @if h.risks.is_empty() {
            p { "No open risks." }
        } @else {
            div.table-wrap role="region" aria-label="Open risks" tabindex="0" {
                table aria-labelledby="open-risks" #risks {
                    thead { tr { th { "Asset" } th { "Risk" } th { "Severity" } th { "Status" } th { "Found" } } }
                    tbody {
                        @for f in &h.risks {
                            tr {
                                td { a href=(asset_href(&f.key.asset)) { (f.key.asset) } }
                                td { (describe(f)) }
                                td { (f.severity.as_str()) }
                                td { (status_words(f.status)) }
                                td { (format_ms(f.opened_at_ms)) }
                            }
                        }
                    }
                }
            }
        }
        h2 #inspection-reports { "Inspection reports" }
        @if h.reports.is_empty() {
            p { "None yet." }
        } @else {
            div.table-wrap role="region" aria-label="Inspection reports" tabindex="0" {
                table aria-labelledby="inspection-reports" #reports {
                    thead { tr { th { "Period" } th { "Made" } th { "Download" } } }
                    tbody {
                        @for r in &h.reports {
                            @let base = format!("/api/v1/reports/inspection/{}", r.id);
                            tr {
                                td { (format_ms(r.from_ms)) " – " (format_ms(r.to_ms)) }
                                td { (format_ms(r.generated_at_ms)) }
                                td {
                                    a href=(format!("{base}.html")) { "web page" } " · "
                                    a href=(format!("{base}.md")) { "Markdown" } " · "
                                    a href=(format!("{base}.json")) { "JSON" }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    layout("your cases", Some(viewer), content)
}

/// The case page of a customer's user: no contract, level, assignee, SLA,
/// escalations, evidence nor internal rows; a public comment form, and the
/// survey once the case is resolved.
pub(super) fn case(viewer: &Viewer<'_>, v: &CaseView, refused: Option<&Refused<'_>>) -> Markup {
    let d = &v.detail;
    let item = &d.item;
    let id = item.id.unwrap_or_default();
    let title = d.meta.as_ref().map_or_else(|| describe(item), |m| m.title.clone());
    let blank = Fields::default();
    let posted = |action: &str| {
        refused
            .map(|r| r.posted)
            .filter(|p| p.get("action") == action)
            .unwrap_or(&blank)
    };
    let open = !matches!(item.status, Status::Closed | Status::Cancelled(_));
    let survey_open = item.status == Status::Resolved && d.satisfaction.is_none();
    let content = html! {
        p { a href="/portal" { "← Your cases" } }
        h1 { "Case #" (id) ": " (title) }
        (error_box(refused.map(|r| r.message)))
        dl {
            dt { "Status" } dd #status { (status_words(item.status)) }
            dt { "Severity" } dd { (item.severity.as_str()) }
            dt { "Asset" } dd { a href=(asset_href(&item.key.asset)) { (item.key.asset) } }
            dt { "Opened" } dd { (format_ms(item.opened_at_ms)) }
            @if let Some(m) = &d.meta {
                @if let Some(by) = &m.reported_by { dt { "Reported by" } dd { (by) } }
                @if !m.description.is_empty() { dt { "Description" } dd { (m.description) } }
            }
        }
        @if survey_open {
            (survey_form(viewer, id, posted("survey")))
        }
        h2 #timeline-title { "Timeline" }
        div.table-wrap role="region" aria-label="Timeline" tabindex="0" {
            table #timeline aria-labelledby="timeline-title" {
                thead { tr { th { "Time" } th { "Who" } th { "What" } th { "Comment" } } }
                tbody {
                    @for e in timeline(&d.log) {
                        tr {
                            td { (format_ms(e.at_ms)) }
                            td { (e.who) }
                            td { (e.what) }
                            td { (e.comment.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
        }
        @if open {
            h2 { "Add a comment" }
            form method="post" action=(format!("/cases/{id}")) #comment-form {
                input type="hidden" name="csrf" value=(viewer.csrf);
                input type="hidden" name="action" value="comment";
                label for="comment-text" { "Your comment (the engineers on your case see it)" }
                textarea name="comment" id="comment-text" required { (posted("comment").get("comment")) }
                div { button type="submit" { "Send comment" } }
            }
        }
        h2 { "Service reports" }
        (reports_list(&d.service_reports, "UTC"))
        @if let Some(s) = &d.satisfaction {
            h2 { "Satisfaction" }
            p #satisfaction {
                @if let Some(score) = s.score { (score) "/5" } @else { "no answer" }
                @if !s.comment.is_empty() { ": " (s.comment) }
                " (" (format_ms(s.at_ms)) ")"
            }
        }
    };
    layout(&format!("case {id}"), Some(viewer), content)
}

/// The satisfaction survey of a resolved case: a score from 1 to 5 (one
/// radio each, grouped under their question) and an optional comment.
fn survey_form(viewer: &Viewer<'_>, id: i64, f: &Fields) -> Markup {
    const SCORES: [(&str, &str); 5] = [
        ("1", "1 — very unsatisfied"),
        ("2", "2 — unsatisfied"),
        ("3", "3 — neither"),
        ("4", "4 — satisfied"),
        ("5", "5 — very satisfied"),
    ];
    html! {
        section aria-labelledby="survey-title" {
            h2 #survey-title { "How did we do?" }
            p { "Your case is resolved. Your answer confirms the repair and closes the case." }
            form method="post" action=(format!("/cases/{id}")) #survey-form {
                input type="hidden" name="csrf" value=(viewer.csrf);
                input type="hidden" name="action" value="survey";
                fieldset {
                    legend { "How satisfied are you with how this fault was handled?" }
                    @for (value, label) in SCORES {
                        @let input_id = format!("score-{value}");
                        div {
                            input type="radio" name="score" id=(input_id) value=(value) required checked[f.get("score") == value];
                            label for=(input_id) style="display:inline" { " " (label) }
                        }
                    }
                }
                label for="survey-comment" { "Comment (optional)" }
                textarea name="comment" id="survey-comment" { (f.get("comment")) }
                div { button type="submit" { "Send my answer" } }
            }
        }
    }
}
