//! The web pages, rendered on the server (plain forms, no scripts):
//! - `GET /` → `/queue` for staff, `/portal` for a customer's user.
//! - `GET /queue`: the queue, nearest SLA breach first, with its filters,
//!   search (`q`), views (all, mine, unassigned), sortable columns (`sort`,
//!   `dir`), pages (`page`, `per_page`) and an opt-in auto-refresh
//!   (`refresh=on`); the same parameters as `GET /api/v1/queue` (staff; a
//!   customer's user is sent to `/portal`).
//! - `GET /portal`: a customer's home (see [`portal`]): its open cases, its
//!   assets, its open risks and its inspection reports.
//! - `GET /cases/{id}`, `POST /cases/{id}`: a case with its SLA, timeline
//!   and paperwork; staff act on it through small forms (field `action`),
//!   comments internal by default or public by choice.
//! - `GET /assets/{host}`: the device archive: configuration, disk health
//!   over time, configuration changes, cases, findings and parts replaced.
//! - `GET /hosts`: every host, the way to one that has no case.
//! - `GET /findings`, `POST /findings/{id}`: the inspection's risks and
//!   the decisions on them (plan, accept the risk, fixed, verified).
//! - `GET /recommendations`, `POST /recommendations/{id}`: parts to replace
//!   before they fail (accept, dismiss, done).
//! - `GET /reports`, `POST /reports`: the inspection reports, and making one.
//! - `GET /spares`, `POST /spares`: spare coverage, stock and replenishment.
//! - `GET /maintenance`, `GET /unmapped` and their forms: what holds
//!   signals back from the queue.
//! - `GET /faults/new`, `POST /faults`: report a fault.
//!
//! Every page needs a session (else 303 to the login page). A customer's
//! user sees only its own customer's cases and assets (others answer 404),
//! and of a case only what [`crate::queue::customer_view`] lets it: it
//! reports faults on its own assets, comments publicly and answers the
//! survey of a resolved case; the staff's forms are not shown to it and
//! posting them answers 403. Every POST carries the session's CSRF token in
//! field `csrf`. A POST that worked answers 303 back to the case; bad input
//! re-renders the page with 400 and the problem, naming the field, with the
//! refused form filled in as it was posted, and changes nothing.

mod asset;
mod evidence;
mod findings;
mod forms;
mod holds;
mod hosts;
mod list;
mod paging;
mod portal;
mod recommendations;
mod render;
mod reports;
mod spares;
#[cfg(test)]
mod tests;

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use maud::{DOCTYPE, Markup, html};
use serde::Deserialize;

use super::AppState;
use super::error::ApiError;
use super::queue::{QueueQuery, file_fault, run_action};
use crate::auth::{self, Principal, Role};
use crate::queue;

use forms::Fields;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(home))
        .route("/queue", get(queue_or_portal))
        .route("/portal", get(portal::portal_page))
        .route("/cases/{id}", get(case_page).post(case_post))
        .route("/assets/{host}", get(asset::asset_page))
        .route("/hosts", get(hosts::hosts_page))
        .route("/findings", get(findings::findings_page))
        .route("/findings/{id}", post(findings::finding_post))
        .route("/recommendations", get(recommendations::recommendations_page))
        .route("/recommendations/{id}", post(recommendations::recommendation_post))
        .route("/reports", get(reports::reports_page).post(reports::reports_post))
        .route("/spares", get(spares::spares_page).post(spares::spares_post))
        .route(
            "/maintenance",
            get(holds::maintenance_page).post(holds::maintenance_post),
        )
        .route("/maintenance/{id}/end", post(holds::maintenance_end))
        .route("/unmapped", get(holds::unmapped_page))
        .route("/unmapped/{id}", post(holds::unmapped_post))
        .route("/faults/new", get(fault_page))
        .route("/faults", post(fault_post))
}

/// Who is looking at a page, for its header and its forms, and the time
/// zone the page shows their times in.
pub(crate) struct Viewer<'a> {
    pub who: &'a Principal,
    pub csrf: &'a str,
    pub zone: String,
}

impl<'a> Viewer<'a> {
    /// `who`'s zone: their own (contracts file), their contract's (a
    /// customer's user), `[web] time_zone`, else UTC.
    pub fn new(state: &AppState, who: &'a Principal, csrf: &'a str) -> Viewer<'a> {
        let contracts = state.contracts.get();
        let fallback = state.config.web.time_zone.as_deref().unwrap_or("UTC");
        let zone = contracts
            .time_zone_of(&who.name, who.customer.as_deref(), fallback)
            .to_string();
        Viewer { who, csrf, zone }
    }

    /// An instant on the viewer's wall clock, the zone named.
    pub fn time(&self, ms: i64) -> String {
        crate::queue::format_ms_in(ms, &self.zone)
    }

    fn tz(&self) -> jiff::tz::TimeZone {
        jiff::tz::TimeZone::get(&self.zone).unwrap_or(jiff::tz::TimeZone::UTC)
    }

    /// `ms` as a date-time field's value (`YYYY-MM-DDTHH:MM`) on the
    /// viewer's wall clock.
    pub fn field_time(&self, ms: i64) -> String {
        jiff::Timestamp::from_millisecond(ms)
            .map(|t| t.to_zoned(self.tz()).strftime("%Y-%m-%dT%H:%M").to_string())
            .unwrap_or_default()
    }

    /// Field `name`, a date-time field's value (seconds allowed) on the
    /// viewer's wall clock, as ms; or what is wrong with it. A wall time a
    /// DST change skips or repeats takes the instant after the gap or the
    /// earlier of the two.
    pub fn time_field(&self, fields: &Fields, name: &str) -> Result<i64, String> {
        let v = fields.get(name).trim();
        v.parse::<jiff::civil::DateTime>()
            .ok()
            .and_then(|d| self.tz().to_ambiguous_timestamp(d).compatible().ok())
            .map(|t| t.as_millisecond())
            .ok_or_else(|| format!("{name}: {v:?} is not a date and time as YYYY-MM-DDTHH:MM"))
    }
}

/// The one stylesheet. It works from a phone's width (390 px) up: the
/// header wraps, a wide table scrolls inside its own box, never the page.
/// Dark mode follows the system's; colours keep at least WCAG AA contrast
/// in both.
const STYLE: &str = concat!(
    ":root{color-scheme:light dark}",
    "body{font-family:system-ui,sans-serif;margin:0;color:#222;background:#fff}",
    "header{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:center;padding:.5rem 1rem;background:#234;color:#fff}",
    "header a{color:#fff}header nav{display:flex;flex-wrap:wrap;gap:.5rem 1rem}",
    "header .user{margin-left:auto;display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:center}",
    "header form{display:inline;margin:0}header button{margin:0}",
    "main{padding:0 1rem 2rem}footer{padding:0 1rem 1rem}.narrow{max-width:22rem;margin:4rem auto}h1,h2,h3{overflow-wrap:anywhere}",
    "figure{margin:.5rem 0}figure svg{background:#fff;border-radius:.25rem}.notice{border:1px solid #888;padding:.5rem}",
    "table{border-collapse:collapse;margin:.5rem 0}th,td{border-bottom:1px solid #ccc;padding:.25rem .5rem;text-align:left;vertical-align:top}",
    ".table-wrap{overflow-x:auto;max-width:100%}.table-wrap table{margin:0}th{white-space:nowrap}",
    ".visually-hidden{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}",
    "label{display:block;margin:.5rem 0 .1rem}input,select,textarea{padding:.3rem;box-sizing:border-box;max-width:100%}",
    ".narrow input{width:100%}textarea{width:100%;max-width:40rem;min-height:3rem}",
    "button{margin-top:.5rem;padding:.3rem 1rem}.error{color:#a00;border:1px solid #a00;padding:.5rem}",
    ".actions{display:flex;flex-wrap:wrap;gap:1rem;align-items:flex-start}",
    ".actions form,.actions details{border:1px solid #ccc;padding:.5rem 1rem;min-width:14rem}",
    ".actions details form{border:0;padding:0}summary{cursor:pointer;font-weight:bold}#found li{margin:.2rem 0}",
    ".filters form{display:flex;gap:.5rem 1rem;align-items:end;flex-wrap:wrap}.filters label{margin:0}",
    ".views,.pager{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:center;margin:.5rem 0}",
    ".views a[aria-current]{font-weight:bold;text-decoration:none}th a{color:inherit}",
    ".sev{display:inline-block;padding:0 .4rem;border-radius:.25rem;font-weight:600;white-space:nowrap}",
    ".sev-critical{background:#b00020;color:#fff}.sev-major{background:#a63c00;color:#fff}",
    ".sev-warning{background:#ffe08a;color:#3b2a00}.sev-info{background:#dbeafe;color:#12326b}",
    ".breached{color:#a00;font-weight:bold}pre{background:#f4f4f4;padding:.5rem;overflow:auto;max-width:60rem}",
    "dl{display:grid;grid-template-columns:max-content auto;gap:.2rem 1rem}dd{margin:0;overflow-wrap:anywhere}",
    "@media (max-width:40rem){header{padding:.5rem}header .user{margin-left:0}main{padding:0 .5rem 2rem}",
    "dl{grid-template-columns:auto}dt{font-weight:bold}}",
    "@media (prefers-color-scheme:dark){body{color:#e8e8e8;background:#121417}a{color:#9cc3ff}a:visited{color:#c8a8ff}",
    "header{background:#0b1a2a}header a{color:#fff}th,td{border-bottom-color:#444}",
    "input,select,textarea,button{background:#1f2327;color:#e8e8e8;border:1px solid #777}",
    ".actions form,.actions details{border-color:#444}.actions details form{border:0}.error{color:#ff9a8f;border-color:#ff9a8f}.breached{color:#ff9a8f}",
    "pre{background:#1f2327}.sev-critical{background:#ff9a8f;color:#2a0000}.sev-major{background:#ffb36b;color:#2a1200}",
    ".sev-warning{background:#ffe08a;color:#2a1f00}.sev-info{background:#a8c7fa;color:#0b1d3a}}",
);

/// The one layout of every page: a header with who is logged in (when
/// someone is) and the content.
pub(crate) fn layout(title: &str, viewer: Option<&Viewer<'_>>, content: Markup) -> Markup {
    page_layout(title, viewer, None, content)
}

/// [`layout`], reloading itself every `refresh_secs` when given (the same
/// URL, so with every filter it carries).
pub(crate) fn page_layout(
    title: &str,
    viewer: Option<&Viewer<'_>>,
    refresh_secs: Option<u32>,
    content: Markup,
) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                @if let Some(secs) = refresh_secs {
                    meta http-equiv="refresh" content=(secs);
                }
                title { "Caretaker: " (title) }
                style { (STYLE) }
            }
            body {
                @if let Some(v) = viewer {
                    header {
                        strong { "Caretaker" }
                        nav aria-label="Main" {
                            @if v.who.can_act() {
                                a href="/queue" { "Queue" }
                            } @else {
                                a href="/portal" { "Home" }
                            }
                            a href="/hosts" { "Hosts" }
                            a href="/findings" { "Findings" }
                            a href="/recommendations" { "Replacements" }
                            a href="/spares" { "Spares" }
                            a href="/reports" { "Reports" }
                            a href="/maintenance" { "Maintenance" }
                            @if v.who.can_act() {
                                a href="/unmapped" { "Unmapped" }
                            }
                            a href="/faults/new" { "Report a fault" }
                        }
                        div.user {
                            span.who {
                                "Logged in as " strong { (v.who.name) } " (" (v.who.role.as_str()) ")"
                                @if let Some(c) = &v.who.customer { ", " (c) }
                            }
                            form method="post" action="/logout" {
                                input type="hidden" name="csrf" value=(v.csrf);
                                button type="submit" { "Log out" }
                            }
                        }
                    }
                }
                main { (content) }
                @if let Some(v) = viewer {
                    footer { small { "Times in " (v.zone) " unless a case's contract names another zone." } }
                }
            }
        }
    }
}

/// A staff form posted to a page: who posted it, their session and the
/// fields, once the session's CSRF token is checked; a customer's user is
/// refused (403) before any field is read.
async fn staff_form(
    state: &AppState,
    headers: &HeaderMap,
    uri: &Uri,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Result<(Principal, auth::SessionInfo, Fields), PageError> {
    let (who, session) = auth::page_principal(state, headers, uri).await?;
    let fields = form_fields(form)?;
    check_csrf(&session, &fields)?;
    if !who.can_act() {
        return Err(forbidden(&who));
    }
    Ok((who, session, fields))
}

/// Where a form goes back to: its `back` field when it is an address of
/// the list at `path` (with its filters), else the list; never another site.
fn back_to(fields: &Fields, path: &str) -> String {
    let back = fields.get("back");
    let of_list = back == path || back.strip_prefix(path).is_some_and(|rest| rest.starts_with('?'));
    if of_list { back.to_string() } else { path.to_string() }
}

/// A labelled search box of a list's filters (`q`).
fn search_box(value: &str, placeholder: &str) -> Markup {
    html! {
        div {
            label for="q" { "Search" }
            input #q type="search" name="q" value=(value) placeholder=(placeholder);
        }
    }
}

/// A labelled choice of a list's filters: `options` as (value, label).
fn choice(name: &str, label: &str, options: &[(&str, &str)], chosen: &str) -> Markup {
    html! {
        div {
            label for=(name) { (label) }
            select id=(name) name=(name) {
                @for (v, l) in options { option value=(v) selected[chosen == *v] { (l) } }
            }
        }
    }
}

/// The customer filter, for staff: `any` and every customer known.
fn customer_choice(label: &str, any: &str, customers: &[String], chosen: &str) -> Markup {
    let mut options = vec![("", any)];
    options.extend(customers.iter().map(|c| (c.as_str(), c.as_str())));
    choice("customer", label, &options, chosen)
}

/// The customers a filter or form offers: those of the contracts, the
/// report settings and the hosts' `customer` labels, sorted, once each.
fn customer_choices(state: &AppState) -> Vec<String> {
    let mut names: std::collections::BTreeSet<String> = state.contracts.get().customer_names().into_iter().collect();
    names.extend(state.config.reports.customers.iter().flatten().cloned());
    names.extend(
        state
            .fleet
            .snapshot()
            .iter()
            .map(|h| super::hosts::customer_of(h).to_string())
            .filter(|c| !c.is_empty()),
    );
    names.into_iter().collect()
}

/// Why a page is not shown: the login page, or an error page.
pub(crate) enum PageError {
    Login(Redirect),
    Status(StatusCode, String),
}

impl From<Redirect> for PageError {
    fn from(r: Redirect) -> Self {
        PageError::Login(r)
    }
}

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        let (code, message) = problem(e);
        PageError::Status(code, message)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        match self {
            PageError::Login(r) => r.into_response(),
            PageError::Status(code, message) => {
                let title = code.canonical_reason().unwrap_or("error");
                let body = html! {
                    h1 { (title) }
                    p.error role="alert" { (message) }
                    p { a href="/queue" { "Back to the queue" } }
                };
                (code, Html(layout(title, None, body).into_string())).into_response()
            }
        }
    }
}

/// The status and the message a page shows for an API error; internal
/// errors are logged (by the error type) and shown generically.
fn problem(e: ApiError) -> (StatusCode, String) {
    match e {
        ApiError::BadRequest(m) => (StatusCode::BAD_REQUEST, m),
        ApiError::Malformed { path, reason } => (StatusCode::BAD_REQUEST, format!("{path}: {reason}")),
        ApiError::Invalid(p) => (
            StatusCode::BAD_REQUEST,
            p.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; "),
        ),
        ApiError::Conflict(m) => (StatusCode::CONFLICT, m),
        ApiError::NotFound(m) => (StatusCode::NOT_FOUND, m),
        ApiError::Forbidden(m) => (StatusCode::FORBIDDEN, m),
        ApiError::Unauthorized(m) => (StatusCode::UNAUTHORIZED, m),
        other => {
            let resp = other.into_response();
            (resp.status(), "internal error; see the collector's log".to_string())
        }
    }
}

fn not_found(what: &str) -> PageError {
    PageError::Status(StatusCode::NOT_FOUND, format!("no such {what}"))
}

fn forbidden(who: &Principal) -> PageError {
    match who.require_staff() {
        Err(e) => e.into(),
        Ok(()) => PageError::Status(StatusCode::FORBIDDEN, "not allowed".into()),
    }
}

const STALE_FORM: &str = "the form is stale or forged (csrf); reload the page and try again";

/// 403 unless the form carries the session's CSRF token.
fn check_csrf(session: &auth::SessionInfo, fields: &Fields) -> Result<(), PageError> {
    if auth::ct_eq(session.csrf.as_bytes(), fields.get("csrf").as_bytes()) {
        Ok(())
    } else {
        tracing::info!("page form refused: bad or missing csrf token");
        Err(PageError::Status(StatusCode::FORBIDDEN, STALE_FORM.into()))
    }
}

/// The form's fields, or 400 naming what could not be read.
fn form_fields(form: Result<Form<Vec<(String, String)>>, FormRejection>) -> Result<Fields, PageError> {
    match form {
        Ok(Form(pairs)) => {
            // As in API bodies: no store keeps a NUL in text (PostgreSQL cannot).
            if let Some((name, _)) = pairs.iter().find(|(k, v)| k.contains('\0') || v.contains('\0')) {
                return Err(PageError::Status(
                    StatusCode::BAD_REQUEST,
                    format!("{name}: {}", caretaker_shared::wire::NUL_REASON),
                ));
            }
            Ok(Fields::new(pairs))
        }
        Err(e) => Err(PageError::Status(
            StatusCode::BAD_REQUEST,
            format!("the form could not be read: {}", e.body_text()),
        )),
    }
}

fn html_page(code: StatusCode, page: Markup) -> Response {
    (code, Html(page.into_string())).into_response()
}

/// Where a user lands: staff on the queue, a customer's user on its portal.
fn home_of(who: &Principal) -> &'static str {
    match who.role {
        Role::Customer => "/portal",
        Role::Engineer | Role::Manager => "/queue",
    }
}

async fn home(State(state): State<AppState>, headers: HeaderMap, uri: Uri) -> Result<Redirect, PageError> {
    let (who, _) = auth::page_principal(&state, &headers, &uri).await?;
    Ok(Redirect::to(home_of(&who)))
}

/// The queue is the staff's page (the login lands there by default): a
/// customer's user goes to its portal instead, which shows its cases
/// without the contract's internals the queue lists.
async fn queue_or_portal(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    query: Result<Query<QueueQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let (who, _) = auth::page_principal(&state, &headers, &uri).await?;
    if who.role == Role::Customer {
        return Ok(Redirect::to("/portal").into_response());
    }
    queue_page(State(state), headers, uri, query).await
}

async fn queue_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    query: Result<Query<QueueQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let (who, session) = auth::page_principal(&state, &headers, &uri).await?;
    let viewer = Viewer::new(&state, &who, &session.csrf);
    let contracts = state.contracts.get();
    let q = match query {
        Ok(Query(q)) => q,
        Err(e) => {
            let page = list::queue(
                &viewer,
                &contracts,
                &QueueQuery::default(),
                None,
                Some(&e.body_text()),
                0,
            );
            return Ok(html_page(StatusCode::BAD_REQUEST, page));
        }
    };
    let asked = q.filter(who.scope()).and_then(|f| Ok((f, q.paging()?)));
    let (filter, paging) = match asked {
        Ok(asked) => asked,
        Err(e) => {
            let (code, message) = problem(e);
            return Ok(html_page(
                code,
                list::queue(&viewer, &contracts, &q, None, Some(&message), 0),
            ));
        }
    };
    let now = caretaker_shared::now_ms();
    let c = contracts.clone();
    let page = super::read(&state, move |conn| queue::queue_page(conn, &c, &filter, &paging, now)).await?;
    Ok(html_page(
        StatusCode::OK,
        list::queue(&viewer, &contracts, &q, Some(&page), None, now),
    ))
}

/// A case, the asset's service reports and what the collector holds about
/// the part the case is about, if `who` may see it.
async fn load_case(state: &AppState, who: &Principal, id: i64) -> Result<render::CaseView, PageError> {
    let contracts = state.contracts.get();
    let now = caretaker_shared::now_ms();
    let fleet = state.fleet.clone();
    let found = super::read(state, move |conn| {
        let Some(detail) = queue::case_detail(conn, &contracts, id, now)? else {
            return Ok(None);
        };
        let asset_reports = crate::spares::service_reports(conn, Some(&detail.item.key.asset))?;
        let part = part_of(conn, &fleet, &detail.item)?;
        Ok(Some((detail, asset_reports, part)))
    })
    .await?;
    match found {
        // Another customer's case is answered like a missing one.
        Some((detail, asset_reports, part)) if who.may_see(&detail.item.key.customer) => Ok(render::CaseView {
            detail,
            asset_reports,
            part,
            now,
        }),
        _ => Err(not_found("case")),
    }
}

/// The part case `item` is about, as the collector holds it: the disk of
/// its host its component names (by the disk rules' key, serial or device),
/// the filesystem's bytes as last reported.
fn part_of(
    conn: &crate::store::sql::Db,
    fleet: &crate::fleet::Fleet,
    item: &crate::cases::Item,
) -> Result<evidence::Part, crate::store::StoreError> {
    let component = item.key.component.as_str();
    let mut part = evidence::Part::default();
    if component.is_empty() {
        return Ok(part);
    }
    let hosts: Vec<_> = fleet
        .snapshot()
        .into_iter()
        .filter(|h| h.host == item.key.asset)
        .collect();
    for h in &hosts {
        if part.disk.is_none() {
            let disks = crate::disks::list(conn, Some(&h.agent_id))?;
            part.disk = evidence::disk_named(&disks, component).cloned();
        }
        if part.filesystem.is_none() {
            let of = |metric: &str| {
                h.samples_of(metric)
                    .iter()
                    .find(|s| s.labels.get("mountpoint").is_some_and(|m| m == component))
                    .map(|s| s.value)
            };
            if let (Some(avail), Some(size)) = (
                of("caretaker_filesystem_avail_bytes"),
                of("caretaker_filesystem_size_bytes"),
            ) {
                part.filesystem = Some(evidence::FsBytes { avail, size });
            }
        }
    }
    Ok(part)
}

fn case_id(id: &str) -> Result<i64, PageError> {
    id.parse().map_err(|_| not_found("case"))
}

async fn case_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
) -> Result<Response, PageError> {
    let (who, session) = auth::page_principal(&state, &headers, &uri).await?;
    let id = case_id(&id)?;
    let view = load_case(&state, &who, id).await?;
    let contracts = state.contracts.get();
    let viewer = Viewer::new(&state, &who, &session.csrf);
    Ok(html_page(StatusCode::OK, case_markup(&viewer, &contracts, &view, None)))
}

/// The case page as `viewer` may see it: the staff's, or the customer's.
fn case_markup(
    viewer: &Viewer<'_>,
    contracts: &crate::contracts::Contracts,
    view: &render::CaseView,
    refused: Option<&render::Refused<'_>>,
) -> Markup {
    if viewer.who.can_act() {
        render::case(viewer, contracts, view, refused)
    } else {
        portal::case(viewer, view, refused)
    }
}

async fn case_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    Path(id): Path<String>,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Result<Response, PageError> {
    let (who, session) = auth::page_principal(&state, &headers, &uri).await?;
    let fields = form_fields(form)?;
    check_csrf(&session, &fields)?;
    let id = case_id(&id)?;
    // The case must exist (and be visible) before anything is read from the form.
    load_case(&state, &who, id).await?;
    // A customer's user posting a staff form: 403 before its fields are
    // read (the queue refuses it too), so a form it may not use is no 400.
    if !who.can_act() && !queue::CaseAction::OPEN_TO_CUSTOMERS.contains(&fields.get("action").trim()) {
        return Err(forbidden(&who));
    }
    let outcome = match forms::case_action(&fields) {
        Ok(action) => {
            let name = action.name();
            match run_action(&state, id, action, &who).await {
                Ok(_) => {
                    tracing::info!(case = id, action = name, user = %who.name, "case action from the web");
                    return Ok(Redirect::to(&format!("/cases/{id}")).into_response());
                }
                Err(e) => problem(e),
            }
        }
        Err(message) => (StatusCode::BAD_REQUEST, message),
    };
    let (code, message) = outcome;
    if code.is_server_error() || code == StatusCode::NOT_FOUND || code == StatusCode::FORBIDDEN {
        return Err(PageError::Status(code, message));
    }
    tracing::debug!(case = id, user = %who.name, %message, "case action from the web refused");
    let view = load_case(&state, &who, id).await?;
    let contracts = state.contracts.get();
    let viewer = Viewer::new(&state, &who, &session.csrf);
    let refused = render::Refused {
        message: &message,
        posted: &fields,
    };
    Ok(html_page(code, case_markup(&viewer, &contracts, &view, Some(&refused))))
}

#[derive(Debug, Default, Deserialize)]
struct FaultQuery {
    asset: Option<String>,
}

async fn fault_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    query: Result<Query<FaultQuery>, QueryRejection>,
) -> Result<Response, PageError> {
    let (who, session) = auth::page_principal(&state, &headers, &uri).await?;
    let asset = query.ok().and_then(|Query(q)| q.asset).unwrap_or_default();
    let viewer = Viewer::new(&state, &who, &session.csrf);
    let fields = Fields::new(vec![("asset".into(), asset), ("severity".into(), "major".into())]);
    let assets = portal::own_assets(&state, &who);
    Ok(html_page(
        StatusCode::OK,
        render::fault_form(&viewer, &fields, assets.as_deref(), None),
    ))
}

async fn fault_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Result<Response, PageError> {
    let (who, session) = auth::page_principal(&state, &headers, &uri).await?;
    let fields = form_fields(form)?;
    check_csrf(&session, &fields)?;
    let (code, message) = match forms::fault_report(&fields) {
        Ok(report) => match file_fault(&state, report, &who).await {
            Ok(v) => match v["id"].as_i64() {
                Some(id) => {
                    tracing::info!(case = id, user = %who.name, "fault reported from the web");
                    return Ok(Redirect::to(&format!("/cases/{id}")).into_response());
                }
                None => return Err(ApiError::Internal(format!("file_fault answered {v}")).into()),
            },
            Err(e) => problem(e),
        },
        Err(message) => (StatusCode::BAD_REQUEST, message),
    };
    if code.is_server_error() || code == StatusCode::FORBIDDEN {
        return Err(PageError::Status(code, message));
    }
    let viewer = Viewer::new(&state, &who, &session.csrf);
    let assets = portal::own_assets(&state, &who);
    Ok(html_page(
        code,
        render::fault_form(&viewer, &fields, assets.as_deref(), Some(&message)),
    ))
}
