//! What holds signals back from the queue, on pages:
//! - `GET /maintenance`: the maintenance windows in progress or to come
//!   (`all=true`: ended ones too; `customer`, staff only), with their
//!   state; a customer's user sees its own. Staff add one with the form
//!   (`POST /maintenance`: `customer`, `host` (empty: every host of the
//!   customer), `starts_at`, `ends_at` as `YYYY-MM-DDTHH:MM` on the viewer's
//!   wall clock (the zone the page names), the browser's date-time field, and `reason`) the way
//!   `POST /api/v1/maintenance` does, and end one now
//!   (`POST /maintenance/{id}/end`).
//! - `GET /unmapped` (staff): signals that named no known asset, each with
//!   a form mapping it to a host (`POST /unmapped/{id}`, field `host`),
//!   which also maps every later signal of that name.
//!
//! Every POST carries the session's CSRF token and answers 303 back; bad
//! input answers 400 with the page, the field and the form as posted.

use axum::Form;
use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::forms::Fields;
use super::paging::{self, Paged, given};
use super::{PageError, Viewer, forbidden, html_page, layout, not_found, problem};
use crate::auth::{self, percent_encode};
use crate::cases::hold::{self, Held, HeldSignal, TimeArg, WindowSpec};
use crate::http::AppState;
use crate::http::error::ApiError;
use crate::store::holds::Window;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct WindowsQuery {
    customer: Option<String>,
    all: Option<String>,
    page: Option<String>,
}

/// `/maintenance` with the query's filters and page `page`.
fn windows_href(q: &WindowsQuery, page: usize) -> String {
    paging::href("/maintenance", &[("customer", &q.customer), ("all", &q.all)], page)
}

/// "in progress", "to come", "ended".
fn window_state(w: &Window, now: i64) -> &'static str {
    if w.ends_at_ms <= now {
        "ended"
    } else if w.starts_at_ms <= now {
        "in progress"
    } else {
        "to come"
    }
}

async fn windows(state: &AppState, q: &WindowsQuery, scope: Option<&str>) -> Result<Vec<Window>, PageError> {
    let all = given(&q.all).is_some_and(|a| a == "true" || a == "on");
    let after = (!all).then(caretaker_shared::now_ms);
    let customer = scope.map(str::to_string).or_else(|| given(&q.customer));
    Ok(crate::http::read(state, move |c| hold::windows(c, after, customer.as_deref())).await?)
}

pub(super) async fn maintenance_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    query: Result<Query<WindowsQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let (who, session) = auth::page_principal(&state, &headers, &uri).await?;
    let viewer = Viewer::new(&state, &who, &session.csrf);
    let checked = paging::checked(query, |q| &q.page);
    let (q, list, code, error) = match checked {
        Ok((q, page)) => {
            let list = Paged::of(windows(&state, &q, who.scope()).await?, page);
            (q, list, StatusCode::OK, None)
        }
        Err(e) => (WindowsQuery::default(), Paged::none(), StatusCode::BAD_REQUEST, Some(e)),
    };
    let customers = super::customer_choices(&state);
    let blank = Fields::new(vec![]);
    Ok(html_page(
        code,
        render_windows(&viewer, &customers, &q, &list, &blank, error.as_deref()),
    ))
}

async fn refused_windows(
    state: &AppState,
    viewer: &Viewer<'_>,
    code: StatusCode,
    posted: &Fields,
    message: &str,
) -> Result<Response, PageError> {
    if code.is_server_error() {
        return Err(PageError::Status(code, message.to_string()));
    }
    let q = WindowsQuery::default();
    let list = Paged::of(windows(state, &q, viewer.who.scope()).await?, 1);
    let customers = super::customer_choices(state);
    Ok(html_page(
        code,
        render_windows(viewer, &customers, &q, &list, posted, Some(message)),
    ))
}

pub(super) async fn maintenance_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Result<Response, PageError> {
    let (who, session, fields) = super::staff_form(&state, &headers, &uri, form).await?;
    let viewer = Viewer::new(&state, &who, &session.csrf);
    let spec = viewer.time_field(&fields, "starts_at").and_then(|s| {
        viewer.time_field(&fields, "ends_at").map(|e| WindowSpec {
            customer: fields.get("customer").trim().to_string(),
            host: fields.opt("host"),
            starts_at: TimeArg::Ms(s),
            ends_at: TimeArg::Ms(e),
            reason: fields.get("reason").trim().to_string(),
        })
    });
    let spec = match spec {
        Ok(spec) => spec,
        Err(message) => return refused_windows(&state, &viewer, StatusCode::BAD_REQUEST, &fields, &message).await,
    };
    match crate::http::maintenance::add_window(&state, &spec, &who.name).await {
        Ok(w) => {
            let id = w.map(|w| w.id).unwrap_or_default();
            tracing::info!(window = id, user = %who.name, "maintenance window added from the web");
            Ok(Redirect::to(&format!("/maintenance#window-{id}")).into_response())
        }
        Err(e) => {
            let (code, message) = problem(e);
            refused_windows(&state, &viewer, code, &fields, &message).await
        }
    }
}

pub(super) async fn maintenance_end(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Result<Response, PageError> {
    let (who, session, _fields) = super::staff_form(&state, &headers, &uri, form).await?;
    let id: i64 = id.parse().map_err(|_| not_found("maintenance window"))?;
    let now = caretaker_shared::now_ms();
    match state.writer.run(move |c| hold::end_window(c, id, now)).await {
        Ok(_) => {
            tracing::info!(window = id, user = %who.name, "maintenance window ended from the web");
            Ok(Redirect::to("/maintenance").into_response())
        }
        Err(e) => {
            let (code, message) = problem(ApiError::from(e));
            if code == StatusCode::NOT_FOUND {
                return Err(PageError::Status(code, message));
            }
            let viewer = Viewer::new(&state, &who, &session.csrf);
            refused_windows(&state, &viewer, code, &Fields::new(vec![]), &message).await
        }
    }
}

fn render_windows(
    viewer: &Viewer<'_>,
    customers: &[String],
    q: &WindowsQuery,
    list: &Paged<Window>,
    posted: &Fields,
    error: Option<&str>,
) -> Markup {
    let now = caretaker_shared::now_ms();
    let staff = viewer.who.scope().is_none();
    let chosen = given(&q.customer).unwrap_or_default();
    let all = given(&q.all).is_some_and(|a| a == "true" || a == "on");
    let value = |name: &str, default: String| {
        let v = posted.get(name);
        if v.is_empty() { default } else { v.to_string() }
    };
    let content = html! {
        h1 { "Maintenance windows" }
        p { "While a window is in progress, what its hosts signal is held back from the queue; what still fires when it ends opens then." }
        @if let Some(e) = error {
            p.error role="alert" { (e) }
        }
        div.filters {
            form method="get" action="/maintenance" {
                @if staff {
                    (super::customer_choice("Customer", "any", customers, &chosen))
                }
                div {
                    label for="all" { "Ended ones too" }
                    input #all type="checkbox" name="all" value="true" checked[all];
                }
                div { button type="submit" { "Show" } }
            }
        }
        @if list.rows.is_empty() {
            (list.empty("maintenance windows", &windows_href(q, 1)))
        } @else {
            p #windows-count { (list.counted("maintenance window", "maintenance windows")) }
            div.table-wrap role="region" aria-label="Maintenance windows" tabindex="0" {
                table #windows {
                    thead { tr {
                        th scope="col" { "State" } th scope="col" { "Customer" } th scope="col" { "Hosts" }
                        th scope="col" { "From" } th scope="col" { "To" } th scope="col" { "Why" }
                        th scope="col" { "By" }
                        @if viewer.who.can_act() { th scope="col" { "End" } }
                    } }
                    tbody {
                        @for w in &list.rows {
                            tr id=(format!("window-{}", w.id)) {
                                td { (window_state(w, now)) }
                                td { (w.customer) }
                                td {
                                    @match &w.asset {
                                        Some(h) => { a href=(format!("/assets/{}", percent_encode(h))) { (h) } }
                                        None => { "every host" }
                                    }
                                }
                                td { (viewer.time(w.starts_at_ms)) }
                                td { (viewer.time(w.ends_at_ms)) }
                                td { (w.reason) }
                                td { (w.created_by) }
                                @if viewer.who.can_act() {
                                    td {
                                        @if w.ends_at_ms > now {
                                            form method="post" action=(format!("/maintenance/{}/end", w.id)) {
                                                input type="hidden" name="csrf" value=(viewer.csrf);
                                                button type="submit" { @if w.starts_at_ms <= now { "End now" } @else { "Remove" } }
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
        (list.nav(|n| windows_href(q, n)))
        @if viewer.who.can_act() {
            section aria-labelledby="add-heading" {
                h2 #add-heading { "Add a window" }
                form #add-window method="post" action="/maintenance" {
                    input type="hidden" name="csrf" value=(viewer.csrf);
                    div.filters {
                        div {
                            label for="w-customer" { "Customer" }
                            select #w-customer name="customer" required {
                                option value="" { "choose" }
                                @for c in customers { option value=(c) selected[posted.get("customer") == c.as_str()] { (c) } }
                            }
                        }
                        div { label for="w-host" { "Host (empty: every host)" } input #w-host name="host" value=(posted.get("host")); }
                        div { label for="w-starts" { "From (" (viewer.zone) ")" } input #w-starts type="datetime-local" name="starts_at" required value=(value("starts_at", viewer.field_time(now))); }
                        div { label for="w-ends" { "To (" (viewer.zone) ")" } input #w-ends type="datetime-local" name="ends_at" required value=(value("ends_at", viewer.field_time(now + 2 * 3_600_000))); }
                        div { label for="w-reason" { "Why" } input #w-reason name="reason" required value=(posted.get("reason")); }
                        div { button type="submit" { "Add" } }
                    }
                }
            }
        }
    };
    layout("maintenance", Some(viewer), content)
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UnmappedQuery {
    customer: Option<String>,
    q: Option<String>,
    page: Option<String>,
}

/// `/unmapped` with the query's filters and page `page`.
fn unmapped_href(q: &UnmappedQuery, page: usize) -> String {
    paging::href("/unmapped", &[("customer", &q.customer), ("q", &q.q)], page)
}

pub(super) async fn unmapped_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    query: Result<Query<UnmappedQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let (who, session) = auth::page_principal(&state, &headers, &uri).await?;
    // Unmapped signals name no known asset, so no customer of their own.
    if !who.can_act() {
        return Err(forbidden(&who));
    }
    let viewer = Viewer::new(&state, &who, &session.csrf);
    let checked = paging::checked(query, |q| &q.page);
    let (q, held, code, error) = match checked {
        Ok((q, page)) => {
            let held = unmapped(&state, &q, page).await?;
            (q, held, StatusCode::OK, None)
        }
        Err(e) => (
            UnmappedQuery::default(),
            Paged::none(),
            StatusCode::BAD_REQUEST,
            Some(e),
        ),
    };
    Ok(html_page(
        code,
        render_unmapped(&viewer, &state, &q, &held, error.as_deref()),
    ))
}

/// Page `page` of the unmapped signals `q` asks for (newest first), each
/// with the host its name stands for by now (mapped: it opens there at the
/// next detection tick).
async fn unmapped(
    state: &AppState,
    q: &UnmappedQuery,
    page: usize,
) -> Result<Paged<(HeldSignal, Option<String>)>, PageError> {
    let customer = given(&q.customer);
    let words = paging::search_words(&q.q);
    let held = crate::http::read(state, move |c| {
        let mut held = hold::list_held(c, Some(Held::Unmapped), None)?;
        held.retain(|h| {
            if customer.as_deref().is_some_and(|c| h.key.customer != c) {
                return false;
            }
            let text = format!("{} {} {} {}", h.key.asset, h.key.customer, h.rule, h.key.component).to_lowercase();
            paging::has_words(&words, &text)
        });
        let shown = Paged::of(held, page);
        let rows = shown
            .rows
            .into_iter()
            .map(|h| {
                let mapped = hold::resolve_asset(c, &h.key.asset)?;
                Ok((h, mapped))
            })
            .collect::<Result<Vec<_>, crate::store::StoreError>>()?;
        Ok(Paged {
            rows,
            page: shown.page,
            total: shown.total,
        })
    })
    .await?;
    Ok(held)
}

/// Every known host name, sorted, once each.
fn hosts(state: &AppState) -> Vec<String> {
    let names: std::collections::BTreeSet<String> = state.fleet.snapshot().iter().map(|h| h.host.clone()).collect();
    names.into_iter().collect()
}

pub(super) async fn unmapped_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Result<Response, PageError> {
    let (who, session, fields) = super::staff_form(&state, &headers, &uri, form).await?;
    let id: i64 = id.parse().map_err(|_| not_found("unmapped signal"))?;
    let host = fields.get("host").trim().to_string();
    let outcome = if host.is_empty() {
        Err((
            StatusCode::BAD_REQUEST,
            "host: choose the host the signal is about".to_string(),
        ))
    } else {
        let h = host.clone();
        state
            .writer
            .run(move |c| hold::map_unmapped(c, id, &h))
            .await
            .map_err(|e| problem(ApiError::from(e)))
    };
    let (code, message) = match outcome {
        Ok(_) => {
            tracing::info!(signal = id, host = %host, user = %who.name, "unmapped signal mapped from the web");
            return Ok(Redirect::to("/unmapped").into_response());
        }
        Err(refused) => refused,
    };
    if code.is_server_error() {
        return Err(PageError::Status(code, message));
    }
    let viewer = Viewer::new(&state, &who, &session.csrf);
    let q = UnmappedQuery::default();
    let held = unmapped(&state, &q, 1).await?;
    Ok(html_page(
        code,
        render_unmapped(&viewer, &state, &q, &held, Some(&message)),
    ))
}

fn render_unmapped(
    viewer: &Viewer<'_>,
    state: &AppState,
    q: &UnmappedQuery,
    held: &Paged<(HeldSignal, Option<String>)>,
    error: Option<&str>,
) -> Markup {
    let customers = super::customer_choices(state);
    let chosen = given(&q.customer).unwrap_or_default();
    let content = html! {
        h1 { "Unmapped signals" }
        p { "Signals that named no host the collector knows (a renamed server, a BMC reporting under its own name). Map each to its host: later signals of that name follow." }
        @if let Some(e) = error {
            p.error role="alert" { (e) }
        }
        div.filters {
            form method="get" action="/unmapped" {
                (super::customer_choice("Customer", "any", &customers, &chosen))
                (super::search_box(&given(&q.q).unwrap_or_default(), "name, check"))
                div { button type="submit" { "Show" } }
            }
        }
        @if held.rows.is_empty() {
            (held.empty("unmapped signals", &unmapped_href(q, 1)))
        } @else {
            p #unmapped-count { (held.counted("unmapped signal", "unmapped signals")) }
            // One list of the known hosts for every row's field.
            datalist #known-hosts { @for n in hosts(state) { option value=(n) {} } }
            div.table-wrap role="region" aria-label="Unmapped signals" tabindex="0" {
                table #unmapped {
                    thead { tr {
                        th scope="col" { "Named" } th scope="col" { "Customer" } th scope="col" { "Check" }
                        th scope="col" { "Severity" } th scope="col" { "First" } th scope="col" { "Last" }
                        th scope="col" { "Times" } th scope="col" { "Map to" }
                    } }
                    tbody {
                        @for (h, mapped) in &held.rows {
                            tr id=(format!("unmapped-{}", h.id)) {
                                td { (h.key.asset) }
                                td { (h.key.customer) }
                                td { (h.rule) @if !h.key.component.is_empty() { " (" (h.key.component) ")" } }
                                td { (h.severity) }
                                td { (viewer.time(h.first_at_ms)) }
                                td { (viewer.time(h.last_at_ms)) }
                                td { (h.occurrences) }
                                td {
                                    @if let Some(to) = mapped {
                                        "mapped to " (to) "; opens at the next check"
                                    } @else {
                                    form method="post" action=(format!("/unmapped/{}", h.id)) {
                                        input type="hidden" name="csrf" value=(viewer.csrf);
                                        label for=(format!("host-{}", h.id)) { "Host" }
                                        input id=(format!("host-{}", h.id)) name="host" list="known-hosts" required autocomplete="off";
                                        button type="submit" { "Map" }
                                    }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        (held.nav(|n| unmapped_href(q, n)))
    };
    layout("unmapped", Some(viewer), content)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use axum::http::StatusCode;
    use serde_json::json;

    use crate::cases::{IdentityKey, ItemKind, Policy, Severity, Signal};
    use crate::http::pages::tests::{login, state};

    /// `ms` as a date-time field's value in UTC (the zone of the test's users).
    fn field_time(ms: i64) -> String {
        jiff::Timestamp::from_millisecond(ms)
            .unwrap()
            .strftime("%Y-%m-%dT%H:%M")
            .to_string()
    }

    #[tokio::test]
    async fn a_window_is_typed_and_shown_on_the_viewers_wall_clock_with_the_zone_named() {
        let dir = tempfile::tempdir().unwrap();
        let s = state(&dir).await;
        let text = crate::http::testing::queue_contracts(&crate::auth::hash_password("pw").unwrap()).replacen(
            "name = \"ana\"\nrole = \"engineer\"\n",
            "name = \"ana\"\nrole = \"engineer\"\ntime_zone = \"Asia/Tokyo\"\n",
            1,
        );
        s.contracts
            .set(crate::contracts::parse_file(&text, std::path::Path::new("c.toml")).unwrap());
        let ana = login(&s, "ana").await;
        let r = ana.get(&s, "/maintenance").await;
        assert!(
            r.body.contains("From (Asia/Tokyo)") && r.body.contains("Times in Asia/Tokyo"),
            "{}",
            r.body
        );
        let r = ana
            .post(
                &s,
                "/maintenance",
                &[
                    ("customer", "acme"),
                    ("host", "db01"),
                    ("starts_at", "2031-01-01T09:00"),
                    ("ends_at", "2031-01-01T11:30"),
                    ("reason", "firmware"),
                ],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        // 09:00 in Tokyo is midnight UTC.
        let api = crate::http::testing::send(
            &s,
            "GET",
            "/api/v1/maintenance?customer=acme",
            &[("authorization", "Bearer ana-token")],
            "",
        )
        .await;
        let v: serde_json::Value = serde_json::from_str(&api.body).unwrap();
        let starts = jiff::Timestamp::from_millisecond(v["windows"][0]["starts_at_ms"].as_i64().unwrap()).unwrap();
        assert_eq!(starts.to_string(), "2031-01-01T00:00:00Z", "{v}");
        let r = ana.get(&s, "/maintenance").await;
        assert!(
            r.body.contains("2031-01-01 09:00 Asia/Tokyo") && r.body.contains("2031-01-01 11:30 Asia/Tokyo"),
            "{}",
            r.body
        );
        // The customer's admin reads it on its contract's clock (UTC).
        let carol = login(&s, "carol").await;
        let r = carol.get(&s, "/maintenance").await;
        assert!(
            r.body.contains("2031-01-01 00:00 UTC") && r.body.contains("Times in UTC"),
            "{}",
            r.body
        );
    }

    #[tokio::test]
    async fn staff_add_and_end_maintenance_windows_and_a_customer_reads_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let s = state(&dir).await;
        let ana = login(&s, "ana").await;
        let r = ana.get(&s, "/maintenance").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert!(
            r.body.contains("No maintenance windows.") && r.body.contains("id=\"add-window\""),
            "{}",
            r.body
        );

        let now = caretaker_shared::now_ms();
        let (from, to) = (field_time(now - 60_000), field_time(now + 3_600_000));
        let window = |from: &str, to: &str, reason: &str| {
            vec![
                ("customer", "acme".to_string()),
                ("host", "db01".to_string()),
                ("starts_at", from.to_string()),
                ("ends_at", to.to_string()),
                ("reason", reason.to_string()),
            ]
        };
        let post = |fields: Vec<(&'static str, String)>| {
            let ana = &ana;
            let s = &s;
            async move {
                let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
                ana.post(s, "/maintenance", &pairs).await
            }
        };
        let r = post(window(&from, &to, "RAID firmware")).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        let r = ana.get(&s, "/maintenance").await;
        assert!(r.body.contains("<td>in progress</td><td>acme</td>"), "{}", r.body);
        assert!(
            r.body.contains("RAID firmware") && r.body.contains("<td>ana</td>"),
            "{}",
            r.body
        );
        assert!(r.body.contains(">End now<"), "{}", r.body);
        let id: i64 = r
            .body
            .split("<tr id=\"window-")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .parse()
            .unwrap();

        // Bad input: 400 naming the field, the form as posted.
        for (fields, why) in [
            (window(&to, &from, "backwards"), "ends_at: must be after starts_at"),
            (
                window("tomorrow", &to, "vague"),
                "starts_at: &quot;tomorrow&quot; is not a date and time",
            ),
            (window(&from, &to, " "), "reason: must not be empty"),
        ] {
            let reason = fields[4].1.clone();
            let r = post(fields).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{why}: {}", r.body);
            assert!(r.body.contains(why), "{why}: {}", r.body);
            assert!(r.body.contains(&format!("value=\"{}\"", reason.trim())), "{}", r.body);
        }

        // A customer's user reads its own windows, changes nothing.
        let carol = login(&s, "carol").await;
        let r = carol.get(&s, "/maintenance?customer=globex").await;
        assert!(
            r.body.contains("RAID firmware") && !r.body.contains("id=\"add-window\""),
            "{}",
            r.body
        );
        assert!(!r.body.contains(">End now<"), "{}", r.body);
        let gus = login(&s, "gus").await;
        let r = gus.get(&s, "/maintenance").await;
        assert!(r.body.contains("No maintenance windows."), "{}", r.body);
        let r = carol.post(&s, &format!("/maintenance/{id}/end"), &[]).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);

        // Ended now: gone from the list, there with the ended ones.
        let r = ana.post(&s, &format!("/maintenance/{id}/end"), &[]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        let r = ana.get(&s, "/maintenance").await;
        assert!(r.body.contains("No maintenance windows."), "{}", r.body);
        let r = ana.get(&s, "/maintenance?all=true").await;
        assert!(r.body.contains("<td>ended</td>"), "{}", r.body);
        let r = ana.post(&s, &format!("/maintenance/{id}/end"), &[]).await;
        assert_eq!(r.status, StatusCode::CONFLICT, "{}", r.body);
        let r = ana.post(&s, "/maintenance/999/end", &[]).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn an_engineer_maps_an_unmapped_signal_to_its_host() {
        let dir = tempfile::tempdir().unwrap();
        let s = state(&dir).await;
        let signal = Signal {
            event: None,
            key: IdentityKey {
                customer: "acme".into(),
                asset: "old-db".into(),
                check: "raid_degraded".into(),
                component: "md0".into(),
            },
            kind: ItemKind::Case,
            severity: Severity::Critical,
            rule: "raid_degraded".into(),
            firing: true,
            at_ms: caretaker_shared::now_ms(),
            evidence: json!({}),
        };
        s.writer.signals(vec![signal], Policy::default()).await.unwrap();
        let ana = login(&s, "ana").await;
        let r = ana.get(&s, "/unmapped").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert!(r.body.contains("<td>old-db</td>"), "{}", r.body);
        assert!(
            r.body.contains("<option value=\"db01\"></option>") && r.body.contains("<option value=\"web01\"></option>"),
            "{}",
            r.body
        );
        let id: i64 = r
            .body
            .split("<tr id=\"unmapped-")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap()
            .parse()
            .unwrap();

        let r = ana.post(&s, &format!("/unmapped/{id}"), &[("host", "")]).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert!(r.body.contains("host: choose the host"), "{}", r.body);
        let r = ana.post(&s, &format!("/unmapped/{id}"), &[("host", "nope")]).await;
        assert!(
            r.status.is_client_error() && r.body.contains("role=\"alert\""),
            "{}",
            r.body
        );
        let r = ana.post(&s, &format!("/unmapped/{id}"), &[("host", "db01")]).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        // Held until the next detection tick releases it, no longer to map.
        let r = ana.get(&s, "/unmapped").await;
        assert!(r.body.contains("mapped to db01; opens at the next check"), "{}", r.body);
        assert!(!r.body.contains(&format!("action=\"/unmapped/{id}\"")), "{}", r.body);

        // Staff only.
        let carol = login(&s, "carol").await;
        assert_eq!(carol.get(&s, "/unmapped").await.status, StatusCode::FORBIDDEN);
        assert!(!carol.get(&s, "/queue").await.body.contains("href=\"/unmapped\""));
    }

    #[tokio::test]
    async fn unmapped_signals_and_windows_are_paged_and_filtered() {
        let dir = tempfile::tempdir().unwrap();
        let s = state(&dir).await;
        let now = caretaker_shared::now_ms();
        let signals: Vec<Signal> = (0..60)
            .map(|i| Signal {
                event: None,
                key: IdentityKey {
                    customer: if i < 55 { "acme" } else { "globex" }.into(),
                    asset: format!("ghost{i:02}"),
                    check: "raid_degraded".into(),
                    component: "md0".into(),
                },
                kind: ItemKind::Case,
                severity: Severity::Critical,
                rule: "raid_degraded".into(),
                firing: true,
                at_ms: now + i,
                evidence: json!({}),
            })
            .collect();
        s.writer.signals(signals, Policy::default()).await.unwrap();
        let ana = login(&s, "ana").await;
        let rows = |body: &str| body.matches("<tr id=\"unmapped-").count();
        let r = ana.get(&s, "/unmapped").await;
        assert_eq!(rows(&r.body), 50, "{}", r.body);
        assert!(r.body.contains("1–50 of 60 unmapped signals"), "{}", r.body);
        // The known hosts are listed once for every row's field.
        assert_eq!(r.body.matches("<option value=\"db01\">").count(), 1, "{}", r.body);
        assert!(r.body.contains("href=\"/unmapped?page=2\""), "{}", r.body);
        let r = ana.get(&s, "/unmapped?page=2").await;
        assert_eq!(rows(&r.body), 10, "{}", r.body);
        let r = ana.get(&s, "/unmapped?customer=globex").await;
        assert_eq!(rows(&r.body), 5, "{}", r.body);
        let r = ana.get(&s, "/unmapped?q=GHOST0").await;
        assert_eq!(rows(&r.body), 10, "{}", r.body);
        let r = ana.get(&s, "/unmapped?page=0").await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST);
        assert!(
            r.body.contains("page: &quot;0&quot; is not a page number"),
            "{}",
            r.body
        );

        for i in 0..55 {
            let from = field_time(now + (i + 1) * 3_600_000);
            let to = field_time(now + (i + 2) * 3_600_000);
            let r = ana
                .post(
                    &s,
                    "/maintenance",
                    &[
                        ("customer", "acme"),
                        ("host", ""),
                        ("starts_at", &from),
                        ("ends_at", &to),
                        ("reason", &format!("patch {i}")),
                    ],
                )
                .await;
            assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        }
        let windows = |body: &str| body.matches("<tr id=\"window-").count();
        let r = ana.get(&s, "/maintenance").await;
        assert_eq!(windows(&r.body), 50, "{}", r.body);
        assert!(r.body.contains("1–50 of 55 maintenance windows"), "{}", r.body);
        let r = ana.get(&s, "/maintenance?customer=acme&page=2").await;
        assert_eq!(windows(&r.body), 5, "{}", r.body);
        assert!(r.body.contains("href=\"/maintenance?customer=acme\""), "{}", r.body);
        assert_eq!(windows(&ana.get(&s, "/maintenance?customer=globex").await.body), 0);
    }
}
