//! Part replacement recommendations on a page:
//! - `GET /recommendations`: the ones the viewer may see, most urgent and
//!   soonest due first, each with the part by slot, model and serial and
//!   why in words. Filters: `status` (`active`, the default: open, accepted
//!   or reserved; `all`; or a status), `urgency`, `customer` (staff only),
//!   `q` (words of the host, part or reason); 50 to a page (`page`).
//! - `POST /recommendations/{id}` (staff, with the session's CSRF token):
//!   `action` `accept` (a compatible spare is reserved when there is one),
//!   `dismiss` (with a `reason`) or `done`; the same mechanism as the API's
//!   `POST /api/v1/recommendations/{id}/...`. Then 303 back to the list
//!   (`back`, a `/recommendations` address); a move the status does not
//!   allow answers 409 with the list.

use axum::Form;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::paging::{self, Paged, given, page_number};
use super::{PageError, Viewer, html_page, layout, not_found, problem};
use crate::auth::{self, percent_encode};
use crate::predict::records::{self, Filter, RecAction, RecStatus, Recommendation, URGENCIES};
use crate::words::plain;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RecommendationsQuery {
    status: Option<String>,
    urgency: Option<String>,
    customer: Option<String>,
    q: Option<String>,
    page: Option<String>,
}

/// Which statuses the list shows.
enum Shown {
    Active,
    All,
    One(RecStatus),
}

impl RecommendationsQuery {
    fn href(&self, page: usize) -> String {
        paging::href(
            "/recommendations",
            &[
                ("status", &self.status),
                ("urgency", &self.urgency),
                ("customer", &self.customer),
                ("q", &self.q),
            ],
            page,
        )
    }

    /// The store filter, which statuses, the search words and the page;
    /// `Err` names the field that is wrong.
    fn wanted(&self, scope: Option<&str>) -> Result<(Filter, Shown, Vec<String>, usize), String> {
        let shown = match given(&self.status).as_deref() {
            None | Some("active") => Shown::Active,
            Some("all") => Shown::All,
            Some(s) => Shown::One(RecStatus::parse(s).ok_or_else(|| {
                format!("status: {s:?} is not active, all, open, accepted, reserved, done or dismissed")
            })?),
        };
        let urgency = given(&self.urgency);
        if let Some(u) = urgency.as_deref().filter(|u| !URGENCIES.contains(u)) {
            return Err(format!("urgency: {u:?} is not one of {}", URGENCIES.join(", ")));
        }
        let filter = Filter {
            status: match shown {
                Shown::One(s) => Some(s),
                _ => None,
            },
            host: None,
            // A customer's user sees its own whatever it asks for.
            customer: scope.map(str::to_string).or_else(|| given(&self.customer)),
            urgency,
        };
        let words = paging::search_words(&self.q);
        Ok((filter, shown, words, page_number(&self.page)?))
    }
}

/// Why, in words: each of the `; `-separated reasons.
fn why(r: &Recommendation) -> String {
    r.reason.split("; ").map(plain).collect::<Vec<_>>().join("; ")
}

/// "disk /dev/sdb WDC WD20EFRX (serial WD-WMC4…)".
fn part(r: &Recommendation) -> String {
    let mut text = format!("{} {}", r.part_type, r.part.slot);
    if !r.part.model.is_empty() {
        text = format!("{text} {}", r.part.model);
    }
    if !r.part.serial.is_empty() {
        text = format!("{text} (serial {})", r.part.serial);
    }
    text
}

async fn listed(
    state: &crate::http::AppState,
    q: &RecommendationsQuery,
    scope: Option<&str>,
) -> Result<Paged<Recommendation>, PageError> {
    let (filter, shown, words, page) = q
        .wanted(scope)
        .map_err(|m| PageError::Status(StatusCode::BAD_REQUEST, m))?;
    let mut found = crate::http::read(state, move |c| records::list(c, &filter)).await?;
    found.retain(|r| {
        let active = RecStatus::parse(&r.status).is_some_and(RecStatus::is_active);
        let text = format!("{} {} {}", r.host, part(r), why(r)).to_lowercase();
        !matches!(shown, Shown::Active if !active) && paging::has_words(&words, &text)
    });
    Ok(Paged::of(found, page))
}

pub(super) async fn recommendations_page(
    State(state): State<crate::http::AppState>,
    headers: HeaderMap,
    uri: Uri,
    query: Result<Query<RecommendationsQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let (who, session) = auth::page_principal(&state, &headers, &uri).await?;
    let viewer = Viewer::new(&state, &who, &session.csrf);
    let customers = super::customer_choices(&state);
    let q = match query {
        Ok(Query(q)) => q,
        Err(e) => {
            let none = Paged::none();
            let page = render(
                &viewer,
                &customers,
                &RecommendationsQuery::default(),
                &none,
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

pub(super) async fn recommendation_post(
    State(state): State<crate::http::AppState>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Result<Response, PageError> {
    let (who, session, fields) = super::staff_form(&state, &headers, &uri, form).await?;
    let id: i64 = id.parse().map_err(|_| not_found("recommendation"))?;
    let back = super::back_to(&fields, "/recommendations");
    let action = match fields.get("action").trim() {
        "accept" => Ok(RecAction::Accept),
        "done" => Ok(RecAction::Done),
        "dismiss" => match fields.opt("reason") {
            Some(reason) => Ok(RecAction::Dismiss { reason }),
            None => Err("reason: say why the recommendation is dismissed".to_string()),
        },
        other => Err(format!("action: {other:?} is not accept, dismiss or done")),
    };
    let (code, message) = match action {
        Err(message) => (StatusCode::BAD_REQUEST, message),
        Ok(action) => {
            let name = action.name();
            match crate::http::recommendations::act(&state, id, action).await {
                Ok(_) => {
                    tracing::info!(recommendation = id, action = name, user = %who.name, "recommendation action from the web");
                    return Ok(Redirect::to(&back).into_response());
                }
                Err(e) => problem(e),
            }
        }
    };
    if code.is_server_error() || code == StatusCode::NOT_FOUND {
        return Err(PageError::Status(code, message));
    }
    tracing::debug!(recommendation = id, user = %who.name, %message, "recommendation action from the web refused");
    let viewer = Viewer::new(&state, &who, &session.csrf);
    let customers = super::customer_choices(&state);
    let q = RecommendationsQuery::default();
    let shown = listed(&state, &q, who.scope()).await?;
    Ok(html_page(code, render(&viewer, &customers, &q, &shown, Some(&message))))
}

fn render(
    viewer: &Viewer<'_>,
    customers: &[String],
    q: &RecommendationsQuery,
    shown: &Paged<Recommendation>,
    error: Option<&str>,
) -> Markup {
    let chosen = |v: &Option<String>| given(v).unwrap_or_default();
    let staff = viewer.who.scope().is_none();
    let statuses = [
        ("", "active"),
        ("all", "all"),
        ("open", "open"),
        ("accepted", "accepted"),
        ("reserved", "reserved (spare set aside)"),
        ("done", "done"),
        ("dismissed", "dismissed"),
    ];
    let back = q.href(shown.page);
    let content = html! {
        h1 { "Replacement recommendations" }
        p { "Parts to replace before they fail: accept one to reserve a spare, mark it done when the part is swapped." }
        @if let Some(e) = error {
            p.error role="alert" { (e) }
        }
        div.filters {
            form method="get" action="/recommendations" {
                (super::search_box(&chosen(&q.q), "host, part, serial, reason"))
                (super::choice("status", "Status", &statuses, &chosen(&q.status)))
                div {
                    label for="urgency" { "Urgency" }
                    select #urgency name="urgency" {
                        option value="" { "any" }
                        @for u in URGENCIES { option value=(u) selected[chosen(&q.urgency) == *u] { (plain(u)) } }
                    }
                }
                @if staff {
                    (super::customer_choice("Customer", "any", customers, &chosen(&q.customer)))
                }
                div { button type="submit" { "Filter" } }
            }
        }
        @if shown.rows.is_empty() {
            (shown.empty("recommendations", &q.href(1)))
        } @else {
            p #recommendations-count { (shown.counted("recommendation", "recommendations")) }
            div.table-wrap role="region" aria-label="Recommendations" tabindex="0" {
                table #recommendations {
                    thead { tr {
                        th scope="col" { "Urgency" } th scope="col" { "Part" } th scope="col" { "Host" }
                        @if staff { th scope="col" { "Customer" } }
                        th scope="col" { "Why" } th scope="col" { "Risk" } th scope="col" { "Status" }
                        @if viewer.who.can_act() { th scope="col" { "Decide" } }
                    } }
                    tbody {
                        @for r in &shown.rows {
                            tr id=(format!("recommendation-{}", r.id)) {
                                td class=(format!("urgency-{}", r.urgency)) {
                                    (plain(&r.urgency))
                                    @if let Some(due) = r.due_at_ms { br; small { "by " (viewer.time(due)) } }
                                }
                                td { (part(r)) }
                                td { a href=(format!("/assets/{}", percent_encode(&r.host))) { (r.host) } }
                                @if staff { td { (r.customer) } }
                                td { (why(r)) }
                                td { (plain(&r.risk)) }
                                td {
                                    (plain(&r.status))
                                    @if let Some(d) = &r.dismissed_reason { br; small { (d) } }
                                }
                                @if viewer.who.can_act() {
                                    td { (decide(r, viewer.csrf, &back)) }
                                }
                            }
                        }
                    }
                }
            }
            (shown.nav(|n| q.href(n)))
        }
    };
    layout("recommendations", Some(viewer), content)
}

/// The forms for what may come next: accept (open), done (accepted or
/// reserved), dismiss with a reason (any active one).
fn decide(r: &Recommendation, csrf: &str, back: &str) -> Markup {
    let status = RecStatus::parse(&r.status);
    let action = format!("/recommendations/{}", r.id);
    html! {
        @if status == Some(RecStatus::Open) || matches!(status, Some(RecStatus::Accepted | RecStatus::Reserved)) {
            form.decide method="post" action=(action) {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="back" value=(back);
                @if status == Some(RecStatus::Open) {
                    button type="submit" name="action" value="accept" { "Accept" }
                } @else {
                    button type="submit" name="action" value="done" { "Replaced" }
                }
            }
            form.decide method="post" action=(action) {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="back" value=(back);
                input type="hidden" name="action" value="dismiss";
                label for=(format!("reason-{}", r.id)) { "Dismiss because" }
                input id=(format!("reason-{}", r.id)) type="text" name="reason" required;
                button type="submit" { "Dismiss" }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use axum::http::StatusCode;
    use serde_json::json;

    use crate::http::pages::tests::login;
    use crate::http::testing::{queue_contracts, state_with};
    use crate::predict::{Part, PartType, Raise, Urgency};

    async fn state(dir: &tempfile::TempDir) -> crate::http::testing::TestState {
        let s = state_with(dir, |conn| {
            for (serial, urgency, customer, reason) in [
                ("S1", Urgency::WithinDays(7), "acme", "second_rise_within_30d"),
                (
                    "S2",
                    Urgency::ReplaceNow,
                    "acme",
                    "manufacturer_failure; pending_sectors_not_reallocated",
                ),
                ("S3", Urgency::WithinDays(14), "globex", "beyond_rated_life"),
            ] {
                crate::predict::records::raise(
                    conn,
                    &Raise {
                        agent_id: "a1".into(),
                        host: if customer == "acme" { "db01" } else { "web01" }.into(),
                        customer: customer.into(),
                        part_type: PartType::Disk,
                        part: Part {
                            model: "WDC WD20EFRX".into(),
                            serial: serial.into(),
                            slot: "/dev/sda".into(),
                            interface: "ata".into(),
                            capacity_bytes: Some(2_000_398_934_016),
                        },
                        reason: reason.into(),
                        evidence: json!({}),
                        risk: "high".into(),
                        urgency,
                        item_id: None,
                        at_ms: 1_000,
                    },
                )
                .unwrap();
            }
        })
        .await;
        let phc = crate::auth::hash_password("pw").unwrap();
        s.contracts
            .set(crate::contracts::parse_file(&queue_contracts(&phc), std::path::Path::new("c.toml")).unwrap());
        s
    }

    /// The recommendation ids on the page, in order.
    fn rows(body: &str) -> Vec<i64> {
        body.split("<tr id=\"recommendation-")
            .skip(1)
            .filter_map(|r| r.split('"').next()?.parse().ok())
            .collect()
    }

    #[tokio::test]
    async fn recommendations_read_in_words_most_urgent_first_and_an_engineer_decides_on_them() {
        let dir = tempfile::tempdir().unwrap();
        let s = state(&dir).await;
        let ana = login(&s, "ana").await;
        let r = ana.get(&s, "/recommendations").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        let ids = rows(&r.body);
        assert_eq!(ids.len(), 3, "{}", r.body);
        // Codes in words: no `replace_now` nor `manufacturer_failure` on the page.
        assert!(r.body.contains(">replace now<"), "{}", r.body);
        assert!(
            r.body
                .contains("the drive&#39;s own health check reports it failing; unreadable sectors")
                || r.body
                    .contains("the drive's own health check reports it failing; unreadable sectors"),
            "{}",
            r.body
        );
        assert!(
            r.body.contains("error counters rose twice within 30 days"),
            "{}",
            r.body
        );
        assert!(r.body.contains("disk /dev/sda WDC WD20EFRX (serial S2)"), "{}", r.body);
        assert!(!r.body.contains(">replace_now<") && !r.body.contains(">manufacturer_failure"));
        let now = ids[0];
        assert!(r.body.find("(serial S2)").unwrap() < r.body.find("(serial S1)").unwrap());

        let r = ana.get(&s, "/recommendations?urgency=replace_now").await;
        assert_eq!(rows(&r.body), vec![now]);
        let r = ana.get(&s, "/recommendations?q=rated+life").await;
        assert_eq!(rows(&r.body).len(), 1, "{}", r.body);
        let r = ana.get(&s, "/recommendations?urgency=soonish").await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert!(
            r.body.contains("urgency: &quot;soonish&quot; is not one of"),
            "{}",
            r.body
        );

        // Accept, then replaced; the list's filters come back.
        let back = "/recommendations?urgency=replace_now";
        let r = ana
            .post(
                &s,
                &format!("/recommendations/{now}"),
                &[("action", "accept"), ("back", back)],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        assert_eq!(r.headers["location"], back);
        let r = ana.get(&s, back).await;
        assert!(
            r.body.contains(">accepted<") && r.body.contains("value=\"done\""),
            "{}",
            r.body
        );
        // Accepting twice is a conflict, shown with the list.
        let r = ana
            .post(&s, &format!("/recommendations/{now}"), &[("action", "accept")])
            .await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
        assert!(r.body.contains("role=\"alert\""));
        let r = ana
            .post(&s, &format!("/recommendations/{now}"), &[("action", "done")])
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        let r = ana.get(&s, "/recommendations").await;
        assert!(!rows(&r.body).contains(&now), "done leaves the active list: {}", r.body);
        let r = ana.get(&s, "/recommendations?status=done").await;
        assert_eq!(rows(&r.body), vec![now]);

        // Dismissing needs a reason.
        let other = ids[1];
        let r = ana
            .post(
                &s,
                &format!("/recommendations/{other}"),
                &[("action", "dismiss"), ("reason", " ")],
            )
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert!(r.body.contains("reason: say why"), "{}", r.body);
        let r = ana
            .post(
                &s,
                &format!("/recommendations/{other}"),
                &[("action", "dismiss"), ("reason", "disk is being retired with the host")],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        let r = ana.get(&s, "/recommendations?status=dismissed").await;
        assert!(r.body.contains("disk is being retired with the host"), "{}", r.body);
        let r = ana.post(&s, "/recommendations/9999", &[("action", "accept")]).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);

        // A customer's user: its own, read only.
        let gus = login(&s, "gus").await;
        let r = gus.get(&s, "/recommendations?customer=acme").await;
        assert_eq!(rows(&r.body).len(), 1, "{}", r.body);
        assert!(
            r.body.contains("(serial S3)") && !r.body.contains("action=\"/recommendations/"),
            "{}",
            r.body
        );
        let r = gus
            .post(&s, &format!("/recommendations/{}", ids[2]), &[("action", "accept")])
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
    }
}
