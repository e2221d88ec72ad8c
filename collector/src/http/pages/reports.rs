//! The inspection reports on a page:
//! - `GET /reports`: the stored reports the viewer may see, newest first
//!   (`customer` narrows it for staff; 50 to a page, `page`), each with
//!   its period and links to read it (HTML) or download it (Markdown,
//!   JSON); staff also get a form to make one.
//! - `POST /reports` (staff, with the session's CSRF token): `customer` and
//!   `month` (`YYYY-MM`, UTC; the current month runs to now) make a report
//!   the way `POST /api/v1/reports/inspection` does; then 303 to the list
//!   of that customer's reports. Bad input answers 400 with the form as
//!   it was posted and the field that is wrong.

use axum::Form;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::forms::Fields;
use super::paging::{self, Paged, given, page_number};
use super::{PageError, Viewer, html_page, layout, problem};
use crate::auth::{self, percent_encode};
use crate::http::AppState;
use crate::report::format_date;
use crate::report::stored::{self, Summary};

const API: &str = "/api/v1/reports/inspection";

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ReportsQuery {
    customer: Option<String>,
    page: Option<String>,
}

/// `[from, to)` of month `YYYY-MM` in UTC, `to` no later than `now_ms`;
/// `Err` says what is wrong with it.
fn month(text: &str, now_ms: i64) -> Result<(i64, i64), String> {
    let bad = || format!("month: {text:?} is not a month as YYYY-MM");
    let (y, m) = text.trim().split_once('-').ok_or_else(bad)?;
    let (y, m): (i16, i8) = (y.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
    let start = jiff::civil::Date::new(y, m, 1).map_err(|_| bad())?;
    let ms = |d: jiff::civil::Date| -> Result<i64, String> {
        Ok(d.to_zoned(jiff::tz::TimeZone::UTC)
            .map_err(|_| bad())?
            .timestamp()
            .as_millisecond())
    };
    let from = ms(start)?;
    let to = ms(start.last_of_month().tomorrow().map_err(|_| bad())?)?;
    if from >= now_ms {
        return Err(format!("month: {text} has not begun"));
    }
    Ok((from, to.min(now_ms)))
}

/// The month before the one `now_ms` is in, as `YYYY-MM`: the usual report.
fn last_month(now_ms: i64) -> String {
    jiff::Timestamp::from_millisecond(now_ms)
        .ok()
        .map(|t| t.to_zoned(jiff::tz::TimeZone::UTC).date().first_of_month())
        .and_then(|d| d.yesterday().ok())
        .map(|d| format!("{:04}-{:02}", d.year(), d.month()))
        .unwrap_or_default()
}

async fn listed(state: &AppState, customer: Option<String>, page: usize) -> Result<Paged<Summary>, PageError> {
    let found = crate::http::read(state, move |c| stored::list(c, customer.as_deref())).await?;
    Ok(Paged::of(found, page))
}

pub(super) async fn reports_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    query: Result<Query<ReportsQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let (who, session) = auth::page_principal(&state, &headers, &uri).await?;
    let viewer = Viewer::new(&state, &who, &session.csrf);
    let now = caretaker_shared::now_ms();
    let customers = super::customer_choices(&state);
    let blank = Fields::new(vec![("month".into(), last_month(now))]);
    let q = match query {
        Ok(Query(q)) => q,
        Err(e) => {
            let page = render(
                &viewer,
                &customers,
                &ReportsQuery::default(),
                &Paged::none(),
                &blank,
                Some(&e.body_text()),
            );
            return Ok(html_page(StatusCode::BAD_REQUEST, page));
        }
    };
    let page = match page_number(&q.page) {
        Ok(p) => p,
        Err(message) => {
            return Ok(html_page(
                StatusCode::BAD_REQUEST,
                render(&viewer, &customers, &q, &Paged::none(), &blank, Some(&message)),
            ));
        }
    };
    // A customer's user sees its own reports whatever it asks for.
    let customer = who.scope().map(str::to_string).or_else(|| given(&q.customer));
    let shown = listed(&state, customer, page).await?;
    Ok(html_page(
        StatusCode::OK,
        render(&viewer, &customers, &q, &shown, &blank, None),
    ))
}

pub(super) async fn reports_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Result<Response, PageError> {
    let (who, session, fields) = super::staff_form(&state, &headers, &uri, form).await?;
    let now = caretaker_shared::now_ms();
    let customer = fields.get("customer").trim().to_string();
    let outcome = if customer.is_empty() {
        Err((StatusCode::BAD_REQUEST, "customer: choose the customer".to_string()))
    } else {
        match month(fields.get("month"), now) {
            Err(message) => Err((StatusCode::BAD_REQUEST, message)),
            Ok((from, to)) => crate::http::inspection::make_report(&state, customer.clone(), Some(from), Some(to))
                .await
                .map_err(problem),
        }
    };
    let (code, message) = match outcome {
        Ok(made) => {
            tracing::info!(id = made.id, customer = %made.customer, user = %who.name, "inspection report made from the web");
            let to = format!("/reports?customer={}", percent_encode(&made.customer));
            return Ok(Redirect::to(&to).into_response());
        }
        Err(refused) => refused,
    };
    if code.is_server_error() {
        return Err(PageError::Status(code, message));
    }
    let viewer = Viewer::new(&state, &who, &session.csrf);
    let customers = super::customer_choices(&state);
    let q = ReportsQuery::default();
    let shown = listed(&state, None, 1).await?;
    Ok(html_page(
        code,
        render(&viewer, &customers, &q, &shown, &fields, Some(&message)),
    ))
}

fn render(
    viewer: &Viewer<'_>,
    customers: &[String],
    q: &ReportsQuery,
    shown: &Paged<Summary>,
    posted: &Fields,
    error: Option<&str>,
) -> Markup {
    let staff = viewer.who.scope().is_none();
    let chosen = given(&q.customer).unwrap_or_default();
    let href = |n: usize| paging::href("/reports", &[("customer", &q.customer)], n);
    let content = html! {
        h1 { "Inspection reports" }
        @if let Some(e) = error {
            p.error role="alert" { (e) }
        }
        @if viewer.who.can_act() {
            section aria-labelledby="make-heading" {
                h2 #make-heading { "Make a report" }
                form #make-report method="post" action="/reports" {
                    input type="hidden" name="csrf" value=(viewer.csrf);
                    div.filters {
                        div {
                            label for="make-customer" { "Customer" }
                            select #make-customer name="customer" required {
                                option value="" { "choose" }
                                @for c in customers {
                                    option value=(c) selected[posted.get("customer") == c.as_str()] { (c) }
                                }
                            }
                        }
                        div {
                            label for="month" { "Month (UTC)" }
                            input #month type="month" name="month" value=(posted.get("month")) required;
                        }
                        div { button type="submit" { "Make report" } }
                    }
                }
            }
        }
        @if staff {
            div.filters {
                form method="get" action="/reports" {
                    (super::customer_choice("Customer", "any", customers, &chosen))
                    div { button type="submit" { "Filter" } }
                }
            }
        }
        @if shown.rows.is_empty() {
            (shown.empty("reports", &href(1)))
        } @else {
            p #reports-count { (shown.counted("report", "reports")) }
            div.table-wrap role="region" aria-label="Inspection reports" tabindex="0" {
                table #reports {
                    thead { tr {
                        th scope="col" { "Customer" } th scope="col" { "Period" } th scope="col" { "Made" }
                        th scope="col" { "How" } th scope="col" { "Read or download" }
                    } }
                    tbody {
                        @for r in &shown.rows {
                            tr id=(format!("report-{}", r.id)) {
                                td { (r.customer) }
                                // The period's end is exclusive: shown as its last day.
                                td { (format_date(r.from_ms)) " – " (format_date(r.to_ms - 1)) }
                                td { (viewer.time(r.generated_at_ms)) }
                                td { @if r.trigger == "schedule" { "scheduled" } @else { "on demand" } }
                                td {
                                    a href=(format!("{API}/{}.html", r.id)) { "HTML" } " (print-ready) · "
                                    a href=(format!("{API}/{}.md", r.id)) { "Markdown" } " · "
                                    a href=(format!("{API}/{}.json", r.id)) { "JSON" }
                                }
                            }
                        }
                    }
                }
            }
            (shown.nav(href))
        }
    };
    layout("reports", Some(viewer), content)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use axum::http::StatusCode;

    use super::{last_month, month};
    use crate::http::pages::tests::{login, state};

    fn ms(t: &str) -> i64 {
        t.parse::<jiff::Timestamp>().unwrap().as_millisecond()
    }

    #[test]
    fn a_month_is_its_utc_days_and_the_current_one_runs_to_now() {
        let now = ms("2026-12-07T21:00:00Z");
        assert_eq!(
            month("2026-02", now),
            Ok((ms("2026-02-01T00:00:00Z"), ms("2026-03-01T00:00:00Z")))
        );
        assert_eq!(
            month(" 2025-12 ", now),
            Ok((ms("2025-12-01T00:00:00Z"), ms("2026-01-01T00:00:00Z")))
        );
        assert_eq!(month("2026-12", now), Ok((ms("2026-12-01T00:00:00Z"), now)));
        assert_eq!(month("2027-01", now), Err("month: 2027-01 has not begun".into()));
        for bad in ["2026-13", "2026", "x-y", "", "2026-00"] {
            assert!(month(bad, now).unwrap_err().starts_with("month: "), "{bad}");
        }
        assert_eq!(last_month(now), "2026-11");
        assert_eq!(last_month(ms("2026-01-15T00:00:00Z")), "2025-12");
    }

    #[tokio::test]
    async fn staff_make_a_report_from_the_page_and_a_customer_reads_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let s = state(&dir).await;
        let ana = login(&s, "ana").await;
        let r = ana.get(&s, "/reports").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert!(r.body.contains("No reports."), "{}", r.body);
        let previous = last_month(caretaker_shared::now_ms());
        assert!(r.body.contains(&format!("value=\"{previous}\"")), "{}", r.body);

        let r = ana
            .post(&s, "/reports", &[("customer", "acme"), ("month", previous.as_str())])
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        assert_eq!(r.headers["location"], "/reports?customer=acme");
        let r = ana.get(&s, "/reports?customer=acme").await;
        assert!(r.body.contains(">1 report<"), "{}", r.body);
        assert!(r.body.contains(&format!("{previous}-01 – {previous}-")), "{}", r.body);
        let link = r
            .body
            .split("href=\"/api/v1/reports/inspection/")
            .nth(1)
            .and_then(|l| l.split('"').next())
            .unwrap()
            .to_string();
        assert!(link.ends_with(".html"), "{link}");
        let html = ana.get(&s, &format!("/api/v1/reports/inspection/{link}")).await;
        assert_eq!(html.status, StatusCode::OK);
        assert!(html.body.contains("acme"), "{}", html.body);
        let r = ana.get(&s, "/reports?customer=globex").await;
        assert!(r.body.contains("No reports."), "{}", r.body);

        // Bad input: 400 naming the field, the form as posted.
        for (customer, month, why) in [
            (
                "acme",
                "2026-13",
                "month: &quot;2026-13&quot; is not a month as YYYY-MM",
            ),
            ("acme", "2999-01", "month: 2999-01 has not begun"),
            ("", "2026-01", "customer: choose the customer"),
            ("initech", "2026-01", "customer"),
        ] {
            let r = ana
                .post(&s, "/reports", &[("customer", customer), ("month", month)])
                .await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{customer} {month}: {}", r.body);
            assert!(r.body.contains(why), "{why}: {}", r.body);
            assert!(r.body.contains(&format!("value=\"{month}\"")), "{}", r.body);
        }

        // A customer's user: its own reports, no form, cannot make one.
        let carol = login(&s, "carol").await;
        let r = carol.get(&s, "/reports?customer=globex").await;
        assert!(
            r.body.contains(">1 report<") && !r.body.contains("id=\"make-report\""),
            "{}",
            r.body
        );
        let gus = login(&s, "gus").await;
        let r = gus.get(&s, "/reports").await;
        assert!(r.body.contains("No reports."), "{}", r.body);
        let r = gus
            .post(&s, "/reports", &[("customer", "globex"), ("month", "2026-01")])
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
    }
}
