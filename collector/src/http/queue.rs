//! The engineers' queue over the API:
//! - `GET /api/v1/queue`: active cases, nearest SLA breach first; filters
//!   `status`, `severity` (minimum), `customer`, `assignee` (`-` for
//!   unassigned), `q` (search: title, asset, component, disk serial, case
//!   number `#123`); order `sort` (`breach`, `severity`, `age`, `case`,
//!   `asset`, `status`, `customer`, `assignee`) and `dir` (`asc`, `desc`);
//!   pages `page` (from 1) of `per_page` (1 to 200, default 50). The answer
//!   holds the page's `cases`, the `total` matching and `page`, `per_page`.
//! - `POST /api/v1/cases`: report a fault (`asset`, `title`, `description`,
//!   `severity`, `component`).
//! - `POST /api/v1/cases/{id}/actions`: acknowledge, assign, escalate,
//!   comment (`visibility` internal, the staff's default, or public), hold,
//!   resume, cancel, resolve (with the service report), close (with the
//!   satisfaction record), survey (the customer's own answer).
//! - `GET /api/v1/assets/{host}/history`: the asset's cases, findings and
//!   service reports with parts.
//! - `GET /api/v1/outbox`: each sink's backlog and what it refused.
//!
//! Engineers and managers do everything. A customer's user sees its own
//! customer's cases without the contract's internals (no contract, level,
//! assignee or SLA: see [`crate::queue::customer_view`]), reports faults on
//! its own assets (another customer's asset is refused like an unknown
//! one), comments publicly on its cases and answers their survey; every
//! other action is a 403.

use axum::body::Bytes;
use axum::extract::{Path, State};

use super::Query;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::cases::{StatusFilter, item_json};
use super::error::ApiError;
use super::hosts::authorize;
use super::{AppState, json_body, path_id, read};
use crate::auth::Principal;
use crate::cases::Severity;
use crate::queue::{self, CaseAction, FaultReport, PER_PAGE_DEFAULT, PER_PAGE_MAX, Paging, QueueFilter, SortBy};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/queue", get(list))
        .route("/api/v1/cases/{id}/actions", post(action))
        .route("/api/v1/cases", post(report_fault))
        .route("/api/v1/assets/{host}/history", get(history))
        .route("/api/v1/outbox", get(outbox))
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct QueueQuery {
    pub status: Option<String>,
    pub severity: Option<String>,
    pub customer: Option<String>,
    pub assignee: Option<String>,
    /// Search text.
    pub q: Option<String>,
    pub sort: Option<String>,
    pub dir: Option<String>,
    pub page: Option<String>,
    pub per_page: Option<String>,
    /// The web page only: `on` reloads it every minute.
    pub refresh: Option<String>,
}

/// The longest search text taken.
const MAX_SEARCH_CHARS: usize = 200;

/// A query value as given, `None` when missing or blank (an untouched form
/// field).
fn given(v: &Option<String>) -> Option<String> {
    v.as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

impl QueueQuery {
    /// The store filter, or what is wrong with the query; empty values
    /// (an untouched form field) mean no filter.
    pub(crate) fn filter(&self, scope: Option<&str>) -> Result<QueueFilter, ApiError> {
        let status = match given(&self.status) {
            None => None,
            Some(s) => match super::cases::parse_status(crate::cases::ItemKind::Case, Some(&s))? {
                StatusFilter::Named(n) => Some(n.to_string()),
                StatusFilter::Active => None,
                StatusFilter::All => {
                    return Err(ApiError::BadRequest(
                        "status: the queue holds active cases; name a status to see ended ones".into(),
                    ));
                }
            },
        };
        let severity_min = match given(&self.severity) {
            None => None,
            Some(s) => Some(
                Severity::parse(&s)
                    .ok_or_else(|| ApiError::BadRequest(format!("severity: {s:?} is not a severity")))?,
            ),
        };
        // A customer sees its own cases whatever it asks for.
        let customer = match scope {
            Some(own) => Some(own.to_string()),
            None => given(&self.customer),
        };
        let assignee = given(&self.assignee).map(|a| if a == "-" { String::new() } else { a });
        // Counted as sent, blanks too: the document's maxLength.
        if self.q.as_ref().is_some_and(|q| q.chars().count() > MAX_SEARCH_CHARS) {
            return Err(ApiError::BadRequest(format!(
                "q: at most {MAX_SEARCH_CHARS} characters"
            )));
        }
        Ok(QueueFilter {
            status,
            severity_min,
            customer,
            assignee,
            search: given(&self.q),
        })
    }

    /// The order and the page asked for, or what is wrong with them.
    pub(crate) fn paging(&self) -> Result<Paging, ApiError> {
        let sort = match given(&self.sort) {
            None => SortBy::default(),
            Some(s) => SortBy::parse(&s).ok_or_else(|| {
                let names: Vec<&str> = SortBy::ALL.iter().map(|b| b.as_str()).collect();
                ApiError::BadRequest(format!("sort: {s:?} is not one of {}", names.join(", ")))
            })?,
        };
        let descending = match given(&self.dir).as_deref() {
            None => sort.first_descending(),
            Some("asc") => false,
            Some("desc") => true,
            Some(d) => return Err(ApiError::BadRequest(format!("dir: {d:?} is not asc or desc"))),
        };
        let number =
            |name: &str, v: &Option<String>, default: u64, max: u64| match given(v) {
                None => Ok(default),
                Some(t) => t.parse::<u64>().ok().filter(|n| (1..=max).contains(n)).ok_or_else(|| {
                    ApiError::BadRequest(format!("{name}: {t:?} is not a whole number from 1 to {max}"))
                }),
            };
        Ok(Paging {
            sort,
            descending,
            page: number("page", &self.page, 1, 1_000_000_000)?,
            per_page: number("per_page", &self.per_page, PER_PAGE_DEFAULT, PER_PAGE_MAX)?,
        })
    }

    /// Whether the web page reloads itself.
    pub(crate) fn refreshing(&self) -> bool {
        matches!(given(&self.refresh).as_deref(), Some("on" | "1" | "true"))
    }
}

fn entry_json(e: &queue::QueueEntry, who: &Principal) -> Value {
    let mut v = item_json(&e.item);
    if who.can_act() {
        v["queue"] = json!(e.meta);
        v["sla"] = json!(e.sla);
        v["next_breach_ms"] = json!(e.sla.next_breach_ms());
        v["next_clock"] = json!(e.sla.next_clock().map(|(name, _)| name));
    } else {
        v["queue"] = customer_meta_json(&e.meta);
    }
    v
}

/// What a customer's user sees of a case's queue data: how it is
/// described, none of the contract's internals.
fn customer_meta_json(m: &queue::CaseMeta) -> Value {
    json!({
        "title": m.title,
        "description": m.description,
        "reported_by": m.reported_by,
        "source": m.source,
    })
}

async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<QueueQuery>,
) -> Result<Json<Value>, ApiError> {
    let who = authorize(&state, &headers).await?;
    let filter = q.filter(who.scope())?;
    let paging = q.paging()?;
    let contracts = state.contracts.get();
    let now = caretaker_shared::now_ms();
    let page = read(&state, move |c| queue::queue_page(c, &contracts, &filter, &paging, now)).await?;
    let cases: Vec<Value> = page.entries.iter().map(|e| entry_json(e, &who)).collect();
    Ok(Json(json!({
        "cases": cases,
        "total": page.total,
        "page": page.page,
        "per_page": page.per_page,
    })))
}

/// The queue part of `GET /api/v1/cases/{id}`.
pub(crate) fn detail_json(d: &queue::CaseDetail) -> Value {
    json!({
        "meta": d.meta,
        "sla": d.sla,
        "escalations": d.escalations,
        "satisfaction": d.satisfaction,
        "service_reports": d.service_reports,
        "external": d.external.iter().map(|(s, x)| json!({"sink": s, "id": x})).collect::<Vec<_>>(),
        "earlier_cases": d.earlier.iter().map(item_json).collect::<Vec<_>>(),
    })
}

/// The queue part of `GET /api/v1/cases/{id}` for a customer's user: no
/// contract, level, assignee, SLA, escalations or external tickets.
pub(crate) fn customer_detail_json(d: &queue::CaseDetail) -> Value {
    json!({
        "meta": d.meta.as_ref().map(customer_meta_json),
        "satisfaction": d.satisfaction,
        "service_reports": d.service_reports,
        "earlier_cases": d.earlier.iter().map(item_json).collect::<Vec<_>>(),
    })
}

async fn action(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let who = authorize(&state, &headers).await?;
    let id = path_id("case", &id)?;
    if !who.can_act() {
        // A staff action from a customer's user: 403 whatever its fields
        // (the queue refuses it too, once the body reads).
        let tag = serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|v| v.get("action")?.as_str().map(str::to_string));
        if let Some(tag) = tag
            && !CaseAction::OPEN_TO_CUSTOMERS.contains(&tag.as_str())
        {
            return Err(ApiError::Forbidden(CaseAction::not_for_customers(&tag)));
        }
    }
    let action: CaseAction = json_body(&body)?;
    let v = run_action(&state, id, action, &who).await?;
    Ok(Json(v))
}

/// Applies `who`'s action through the store writer; the answer is the case
/// afterwards. Shared by the API and the case page's forms. The queue
/// decides what a customer's user may do, in the same transaction.
pub(crate) async fn run_action(
    state: &AppState,
    id: i64,
    action: CaseAction,
    who: &Principal,
) -> Result<Value, ApiError> {
    let contracts = state.contracts.get();
    let who = who.clone();
    Ok(state
        .writer
        .run(move |conn| {
            let item = queue::act_as(conn, &contracts, id, &action, who.actor(), caretaker_shared::now_ms())?;
            Ok(item_json(&item))
        })
        .await?)
}

async fn report_fault(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let who = authorize(&state, &headers).await?;
    let report: FaultReport = json_body(&body)?;
    let v = file_fault(&state, report, &who).await?;
    let code = if v["created"] == json!(true) {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((code, Json(v)))
}

/// Files a reported fault through the writer: `{"id", "created"}`. A
/// customer's user reports on its own customer's assets only.
pub(crate) async fn file_fault(state: &AppState, report: FaultReport, who: &Principal) -> Result<Value, ApiError> {
    let contracts = state.contracts.get();
    let who = who.clone();
    Ok(state
        .writer
        .run(move |conn| {
            let (id, created) =
                queue::report_fault_as(conn, &contracts, &report, who.actor(), caretaker_shared::now_ms())?;
            Ok(json!({"id": id, "created": created}))
        })
        .await?)
}

async fn history(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(host): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let who = authorize(&state, &headers).await?;
    let h = read(&state, move |c| queue::asset_history(c, &host)).await?;
    match h {
        // As for hosts: an unlabelled asset belongs to no customer.
        Some(h) if who.may_see(h.customer.as_deref().unwrap_or_default()) => {
            let mut v = json!(h);
            v["cases"] = json!(h.cases.iter().map(item_json).collect::<Vec<_>>());
            v["findings"] = json!(h.findings.iter().map(item_json).collect::<Vec<_>>());
            Ok(Json(v))
        }
        _ => Err(ApiError::NotFound("no such asset".into())),
    }
}

async fn outbox(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    let who = authorize(&state, &headers).await?;
    who.require_staff()?;
    let v = read(&state, |c| {
        let mut out = Vec::new();
        for s in queue::outbox::sinks(c)? {
            let state = queue::outbox::sink_state(c, &s)?;
            let dead = queue::outbox::set_aside_list(c, &s)?;
            out.push(json!({"state": state, "set_aside": dead}));
        }
        Ok(json!({ "sinks": out }))
    })
    .await?;
    Ok(Json(v))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use axum::http::StatusCode;
    use serde_json::{Value, json};

    use crate::http::AppState;
    use crate::http::testing::{queue_state, send};

    /// A hash nobody logs in with: these tests use the API tokens.
    const NO_LOGIN: &str =
        "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$3M9P3xy4m9nE6tW3J0Wz0b1W6ts6xh3I8kzqE9c9cUo";

    async fn state(dir: &tempfile::TempDir) -> crate::http::testing::TestState {
        queue_state(dir, NO_LOGIN).await
    }

    async fn as_user(s: &AppState, who: &str, method: &str, uri: &str, body: Option<Value>) -> (StatusCode, Value) {
        let auth = format!("Bearer {who}-token");
        let text = body.map(|b| b.to_string()).unwrap_or_default();
        let r = send(
            s,
            method,
            uri,
            &[("authorization", &auth), ("content-type", "application/json")],
            &text,
        )
        .await;
        (r.status, serde_json::from_str(&r.body).unwrap_or(Value::Null))
    }

    fn fault(asset: &str, title: &str) -> Value {
        json!({"asset": asset, "title": title, "description": "cannot log in", "severity": "major"})
    }

    /// Found by schemathesis with the store on PostgreSQL: a NUL in a title
    /// was a 500 there (PostgreSQL text cannot hold one) and stored on
    /// SQLite. Now it is the client's mistake on both, named by its field.
    #[tokio::test]
    async fn a_nul_character_in_a_reported_fault_is_refused_by_its_field_on_every_store() {
        let dir = tempfile::tempdir().unwrap();
        let s = state(&dir).await;
        let (code, v) = as_user(&s, "ana", "POST", "/api/v1/cases", Some(fault("db01", "Mail\u{0}down"))).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{v}");
        assert_eq!(v["path"], "title", "{v}");
        assert!(v["reason"].as_str().unwrap_or("").contains("NUL"), "{v}");
        let (_, q) = as_user(&s, "ana", "GET", "/api/v1/queue", None).await;
        assert_eq!(q["cases"].as_array().map(Vec::len), Some(0), "nothing stored: {q}");
    }

    #[tokio::test]
    async fn an_engineer_works_a_reported_fault_to_closed() {
        let dir = tempfile::tempdir().unwrap();
        let s = state(&dir).await;
        let (code, v) = as_user(&s, "ana", "POST", "/api/v1/cases", Some(fault("db01", "Mail down"))).await;
        assert_eq!(code, StatusCode::CREATED, "{v}");
        let id = v["id"].as_i64().unwrap();
        // Reported again: the same case.
        let (code, again) = as_user(&s, "ana", "POST", "/api/v1/cases", Some(fault("db01", "mail down"))).await;
        assert_eq!((code, again["id"].as_i64()), (StatusCode::OK, Some(id)));
        let (_, q) = as_user(&s, "ana", "GET", "/api/v1/queue", None).await;
        let first = &q["cases"][0];
        assert_eq!(first["id"].as_i64(), Some(id));
        assert_eq!(first["queue"]["contract"], "acme-24");
        assert_eq!(first["queue"]["assignee"], "ana");
        assert_eq!(first["status"], "assigned");
        assert_eq!(first["sla"]["response"]["target_ms"], 4 * 3_600_000);
        let act = |body: Value| {
            let s = s.clone();
            async move { as_user(&s, "ana", "POST", &format!("/api/v1/cases/{id}/actions"), Some(body)).await }
        };
        let (code, v) = act(json!({"action": "acknowledge"})).await;
        assert_eq!(
            (code, v["status"].as_str()),
            (StatusCode::OK, Some("in_progress")),
            "{v}"
        );
        // Resolving without the report names the missing field.
        let (code, v) = act(json!({"action": "resolve"})).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{v}");
        assert!(v["reason"].as_str().unwrap().contains("report"), "{v}");
        // A report with problems: each named, nothing changed.
        let bad = json!({"action": "resolve", "report": {"host": "", "mode": "telepathy", "symptom": "x",
            "work_done": "", "engineer": "", "minutes": 5}});
        let (code, v) = act(bad).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{v}");
        let reason = v["reason"].as_str().unwrap();
        assert!(
            reason.contains("report.mode") && reason.contains("report.work_done"),
            "{v}"
        );
        // Unknown actions and fields are named too.
        let (code, v) = act(json!({"action": "teleport"})).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{v}");
        let (code, v) = act(json!({"action": "comment", "comment": "x", "colour": "red"})).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{v}");
        assert!(v["reason"].as_str().unwrap().contains("colour"), "{v}");
        let (_, v) = as_user(&s, "ana", "GET", &format!("/api/v1/cases/{id}"), None).await;
        assert_eq!(v["status"], "in_progress");
        assert_eq!(v["queue"]["service_reports"], json!([]));
        // Closing an unresolved case is a conflict.
        let (code, _) = act(json!({"action": "close", "satisfaction": {"score": 4}})).await;
        assert_eq!(code, StatusCode::CONFLICT);
        let good = json!({"action": "resolve", "report": {"host": "", "mode": "remote", "symptom": "mail queue stuck",
            "work_done": "restarted postfix", "engineer": "", "minutes": 20}});
        let (code, v) = act(good).await;
        assert_eq!((code, v["status"].as_str()), (StatusCode::OK, Some("resolved")), "{v}");
        let (code, v) = act(json!({"action": "close", "satisfaction": {"score": 4, "comment": "fine"}})).await;
        assert_eq!((code, v["status"].as_str()), (StatusCode::OK, Some("closed")), "{v}");
        let (_, v) = as_user(&s, "ana", "GET", &format!("/api/v1/cases/{id}"), None).await;
        assert_eq!(v["queue"]["satisfaction"]["score"], 4);
        assert_eq!(v["queue"]["service_reports"][0]["work_done"], "restarted postfix");
        assert_eq!(v["queue"]["service_reports"][0]["engineer"], "ana");
        let actors: Vec<&str> = v["log"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["actor"].as_str().unwrap())
            .collect();
        assert!(actors.iter().filter(|a| **a == "person:ana").count() >= 4, "{actors:?}");
        // The asset's history shows the case and the report.
        let (code, h) = as_user(&s, "ana", "GET", "/api/v1/assets/db01/history", None).await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(h["cases"][0]["id"].as_i64(), Some(id));
        assert_eq!(h["service_reports"][0]["symptom"], "mail queue stuck");
    }

    #[tokio::test]
    async fn a_customer_reads_only_its_own_cases_and_does_no_staff_work() {
        let dir = tempfile::tempdir().unwrap();
        let s = state(&dir).await;
        let (_, acme) = as_user(&s, "ana", "POST", "/api/v1/cases", Some(fault("db01", "Mail down"))).await;
        let (_, globex) = as_user(&s, "ana", "POST", "/api/v1/cases", Some(fault("web01", "Shop slow"))).await;
        let (acme, globex) = (acme["id"].as_i64().unwrap(), globex["id"].as_i64().unwrap());
        // The queue and the case list hold carol's own case only, whatever she asks.
        for uri in [
            "/api/v1/queue",
            "/api/v1/queue?customer=globex",
            "/api/v1/cases?customer=globex",
        ] {
            let (code, v) = as_user(&s, "carol", "GET", uri, None).await;
            assert_eq!(code, StatusCode::OK, "{uri}");
            let ids: Vec<i64> = v["cases"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|c| c["id"].as_i64())
                .collect();
            assert!(ids.iter().all(|i| *i == acme), "{uri}: {ids:?}");
        }
        // The queue hides the internal level, contract and assignee from
        // her, not from staff.
        let (_, v) = as_user(&s, "carol", "GET", "/api/v1/queue", None).await;
        let q = &v["cases"][0]["queue"];
        assert!(q.get("level").is_none() && q.get("contract").is_none(), "{v}");
        assert!(q.get("assignee").is_none() && v["cases"][0].get("sla").is_none(), "{v}");
        let (_, v) = as_user(&s, "ana", "GET", "/api/v1/queue?customer=acme", None).await;
        assert_eq!(v["cases"][0]["queue"]["contract"], "acme-24", "{v}");
        let (code, _) = as_user(&s, "carol", "GET", &format!("/api/v1/cases/{acme}"), None).await;
        assert_eq!(code, StatusCode::OK);
        // Another customer's case and asset are not found, as if missing.
        let (code, _) = as_user(&s, "carol", "GET", &format!("/api/v1/cases/{globex}"), None).await;
        assert_eq!(code, StatusCode::NOT_FOUND);
        let (code, _) = as_user(&s, "carol", "GET", "/api/v1/assets/web01/history", None).await;
        assert_eq!(code, StatusCode::NOT_FOUND);
        let (code, _) = as_user(&s, "gus", "GET", &format!("/api/v1/cases/{acme}"), None).await;
        assert_eq!(code, StatusCode::NOT_FOUND);
        let (code, _) = as_user(&s, "carol", "GET", "/api/v1/outbox", None).await;
        assert_eq!(code, StatusCode::FORBIDDEN);
        // No staff action on her own case: 403 naming the action, nothing changed.
        let before = as_user(&s, "ana", "GET", &format!("/api/v1/cases/{acme}"), None)
            .await
            .1;
        let uri = format!("/api/v1/cases/{acme}/actions");
        for body in [
            json!({"action": "acknowledge"}),
            json!({"action": "assign", "to": "ana"}),
            json!({"action": "escalate", "comment": "faster"}),
            json!({"action": "hold", "reason": "awaiting_vendor"}),
            json!({"action": "cancel", "reason": "duplicate"}),
            json!({"action": "resolve", "report": {"host": "", "mode": "remote", "symptom": "x",
                "work_done": "x", "engineer": "", "minutes": 1}}),
            json!({"action": "close", "satisfaction": {"no_answer": true}}),
        ] {
            let (code, v) = as_user(&s, "carol", "POST", &uri, Some(body.clone())).await;
            assert_eq!(code, StatusCode::FORBIDDEN, "{body}: {v}");
            assert!(v["reason"].as_str().unwrap().starts_with("action: "), "{v}");
        }
        // Whatever their fields.
        for body in [
            json!({"action": "resolve"}),
            json!({"action": "hold", "reason": "lunch"}),
        ] {
            let (code, v) = as_user(&s, "carol", "POST", &uri, Some(body.clone())).await;
            assert_eq!(code, StatusCode::FORBIDDEN, "{body}: {v}");
        }
        // She cannot make a comment internal.
        let (code, v) = as_user(
            &s,
            "carol",
            "POST",
            &uri,
            Some(json!({"action": "comment", "comment": "psst", "visibility": "internal"})),
        )
        .await;
        assert_eq!(code, StatusCode::FORBIDDEN, "{v}");
        assert!(v["reason"].as_str().unwrap().starts_with("visibility: "), "{v}");
        // Nor act on another customer's case: it is not found.
        let (code, _) = as_user(
            &s,
            "gus",
            "POST",
            &uri,
            Some(json!({"action": "comment", "comment": "hello"})),
        )
        .await;
        assert_eq!(code, StatusCode::NOT_FOUND);
        let (_, after) = as_user(&s, "ana", "GET", &format!("/api/v1/cases/{acme}"), None).await;
        assert_eq!(after["log"], before["log"]);
        assert_eq!(after["status"], before["status"]);
        // No token at all.
        let r = send(&s, "GET", "/api/v1/queue", &[], "").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    }

    /// Every API answer a customer gets, as text, for what must not be in it.
    async fn customer_answers(s: &AppState, who: &str, id: i64) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for uri in [
            format!("/api/v1/cases/{id}"),
            "/api/v1/queue".to_string(),
            "/api/v1/cases?status=all".to_string(),
            "/api/v1/assets/db01/history".to_string(),
        ] {
            let (code, v) = as_user(s, who, "GET", &uri, None).await;
            assert_eq!(code, StatusCode::OK, "{uri}: {v}");
            out.push((uri, v.to_string()));
        }
        out
    }

    #[tokio::test]
    async fn comments_are_internal_unless_made_public_and_a_customer_sees_only_public_ones() {
        let dir = tempfile::tempdir().unwrap();
        let s = state(&dir).await;
        let (_, v) = as_user(&s, "ana", "POST", "/api/v1/cases", Some(fault("db01", "Mail down"))).await;
        let id = v["id"].as_i64().unwrap();
        let uri = format!("/api/v1/cases/{id}/actions");
        for body in [
            json!({"action": "acknowledge", "comment": "taking it, ACK-NOTE"}),
            json!({"action": "comment", "comment": "vendor is slow INTERNAL-DEFAULT"}),
            json!({"action": "comment", "comment": "margin is thin INTERNAL-CHOSEN", "visibility": "internal"}),
            json!({"action": "comment", "comment": "a new disk arrives tomorrow", "visibility": "public"}),
            json!({"action": "escalate", "to": "L2", "comment": "needs ESCALATION-NOTE"}),
            json!({"action": "hold", "reason": "awaiting_parts", "comment": "HOLD-NOTE"}),
        ] {
            let (code, v) = as_user(&s, "ana", "POST", &uri, Some(body.clone())).await;
            assert_eq!(code, StatusCode::OK, "{body}: {v}");
        }
        let (code, v) = as_user(
            &s,
            "ana",
            "POST",
            &uri,
            Some(json!({"action": "comment", "comment": "x", "visibility": "everyone"})),
        )
        .await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{v}");
        assert!(v["reason"].as_str().unwrap().contains("visibility"), "{v}");
        // The customer comments: public, and no response of the engineers.
        let (code, v) = as_user(
            &s,
            "carol",
            "POST",
            &uri,
            Some(json!({"action": "comment", "comment": "thanks, the mail waits"})),
        )
        .await;
        assert_eq!(code, StatusCode::OK, "{v}");

        // Staff see every row with its visibility.
        let (_, staff) = as_user(&s, "ana", "GET", &format!("/api/v1/cases/{id}"), None).await;
        let rows: Vec<(String, String, String)> = staff["log"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["from_status"] == e["to_status"] && e["actor"] != "rule:contract")
            .map(|e| {
                (
                    e["actor"].as_str().unwrap().to_string(),
                    e["comment"].as_str().unwrap_or("").to_string(),
                    e["visibility"].as_str().unwrap().to_string(),
                )
            })
            .collect();
        let vis = |text: &str| {
            rows.iter()
                .find(|r| r.1.contains(text))
                .map(|r| r.2.as_str())
                .unwrap_or_else(|| panic!("{text}: {rows:?}"))
        };
        assert_eq!(vis("INTERNAL-DEFAULT"), "internal");
        assert_eq!(vis("INTERNAL-CHOSEN"), "internal");
        assert_eq!(vis("a new disk arrives tomorrow"), "public");
        assert_eq!(vis("ESCALATION-NOTE"), "internal");
        assert_eq!(vis("thanks, the mail waits"), "public");
        assert!(rows.iter().any(|r| r.0 == "customer:carol"), "{rows:?}");
        assert!(
            staff["log"]
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e["visibility"].is_string())
        );

        // The customer: never an internal comment, a rule, an assignment or
        // an escalation, nor the contract's internals, in any answer.
        for (uri, text) in customer_answers(&s, "carol", id).await {
            for secret in [
                "INTERNAL-DEFAULT",
                "INTERNAL-CHOSEN",
                "ACK-NOTE",
                "ESCALATION-NOTE",
                "HOLD-NOTE",
                "rule:",
                "acme-24",
                "\"level\"",
                "\"assignee\"",
                "escalat",
                "\"sla\"",
                "assigned to",
            ] {
                assert!(!text.contains(secret), "{uri} shows {secret}: {text}");
            }
        }
        let (_, mine) = as_user(&s, "carol", "GET", &format!("/api/v1/cases/{id}"), None).await;
        let timeline: Vec<(String, String, String)> = mine["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["who"].as_str().unwrap().to_string(),
                    e["what"].as_str().unwrap().to_string(),
                    e["comment"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        let want = [
            ("ana", "opened", ""),
            ("ana", "acknowledged", ""),
            ("ana", "comment", "a new disk arrives tomorrow"),
            ("ana", "on hold, awaiting parts", ""),
            ("carol", "comment", "thanks, the mail waits"),
        ]
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()));
        assert_eq!(timeline, want);
        assert_eq!(mine["status_words"], "on hold, awaiting parts");
        assert_eq!(mine["queue"]["meta"]["title"], "Mail down");
        assert!(mine.get("log").is_none(), "{mine}");
        // A customer's comment is no response of the engineers'... but
        // ana's acknowledgement was, and stays the first.
        let met = staff["queue"]["sla"]["response"]["met_at_ms"].as_i64();
        let ack_at = staff["log"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["to_status"] == "in_progress")
            .and_then(|e| e["at_ms"].as_i64());
        assert_eq!(met, ack_at);
    }

    #[tokio::test]
    async fn a_customers_comment_is_not_the_engineers_response() {
        let dir = tempfile::tempdir().unwrap();
        let s = state(&dir).await;
        let (_, v) = as_user(&s, "carol", "POST", "/api/v1/cases", Some(fault("db01", "Mail down"))).await;
        let id = v["id"].as_i64().unwrap();
        let uri = format!("/api/v1/cases/{id}/actions");
        let (code, v) = as_user(
            &s,
            "carol",
            "POST",
            &uri,
            Some(json!({"action": "comment", "comment": "urgent"})),
        )
        .await;
        assert_eq!(code, StatusCode::OK, "{v}");
        let (_, staff) = as_user(&s, "ana", "GET", &format!("/api/v1/cases/{id}"), None).await;
        assert_eq!(staff["queue"]["sla"]["response"]["met_at_ms"], Value::Null, "{staff}");
        assert_eq!(staff["queue"]["meta"]["reported_by"], "carol");
        assert_eq!(staff["log"][0]["actor"], "customer:carol");
    }

    #[tokio::test]
    async fn a_customer_reports_faults_on_its_own_assets_only() {
        let dir = tempfile::tempdir().unwrap();
        let s = state(&dir).await;
        let (code, v) = as_user(&s, "carol", "POST", "/api/v1/cases", Some(fault("db01", "Mail down"))).await;
        assert_eq!(code, StatusCode::CREATED, "{v}");
        let id = v["id"].as_i64().unwrap();
        let (code, v) = as_user(&s, "carol", "GET", &format!("/api/v1/cases/{id}"), None).await;
        assert_eq!((code, v["customer"].as_str()), (StatusCode::OK, Some("acme")), "{v}");
        // Another customer's asset is refused exactly like an unknown one.
        let (other, other_v) = as_user(&s, "carol", "POST", "/api/v1/cases", Some(fault("web01", "x"))).await;
        let (unknown, unknown_v) = as_user(&s, "carol", "POST", "/api/v1/cases", Some(fault("nowhere01", "x"))).await;
        assert_eq!((other, unknown), (StatusCode::NOT_FOUND, StatusCode::NOT_FOUND));
        assert_eq!(
            other_v["reason"].as_str().unwrap().replace("web01", "H"),
            unknown_v["reason"].as_str().unwrap().replace("nowhere01", "H"),
        );
        assert_eq!(other_v["error"], unknown_v["error"]);
        let (_, q) = as_user(&s, "ana", "GET", "/api/v1/queue", None).await;
        assert_eq!(q["cases"].as_array().map(Vec::len), Some(1), "{q}");
    }

    #[tokio::test]
    async fn the_customer_answers_the_survey_of_a_resolved_case_once_and_it_closes() {
        let dir = tempfile::tempdir().unwrap();
        let s = state(&dir).await;
        let (_, v) = as_user(&s, "carol", "POST", "/api/v1/cases", Some(fault("db01", "Mail down"))).await;
        let id = v["id"].as_i64().unwrap();
        let uri = format!("/api/v1/cases/{id}/actions");
        let survey = |score: u8| json!({"action": "survey", "score": score, "comment": "fixed fast"});
        // Not before it is resolved.
        let (code, v) = as_user(&s, "carol", "POST", &uri, Some(survey(5))).await;
        assert_eq!(code, StatusCode::CONFLICT, "{v}");
        assert!(v["reason"].as_str().unwrap().contains("once it is resolved"), "{v}");
        let resolve = json!({"action": "resolve", "report": {"host": "", "mode": "remote", "symptom": "mail stuck",
            "work_done": "restarted postfix", "engineer": "", "minutes": 20}});
        let (code, v) = as_user(&s, "ana", "POST", &uri, Some(json!({"action": "acknowledge"}))).await;
        assert_eq!(code, StatusCode::OK, "{v}");
        let (code, v) = as_user(&s, "ana", "POST", &uri, Some(resolve)).await;
        assert_eq!(code, StatusCode::OK, "{v}");
        // A score out of range is named.
        let (code, v) = as_user(&s, "carol", "POST", &uri, Some(survey(9))).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{v}");
        assert!(v["reason"].as_str().unwrap().starts_with("score"), "{v}");
        // Answering confirms the repair: the case closes.
        let (code, v) = as_user(&s, "carol", "POST", &uri, Some(survey(4))).await;
        assert_eq!((code, v["status"].as_str()), (StatusCode::OK, Some("closed")), "{v}");
        let (_, v) = as_user(&s, "carol", "GET", &format!("/api/v1/cases/{id}"), None).await;
        let sat = &v["queue"]["satisfaction"];
        assert_eq!(
            (sat["score"].as_i64(), sat["comment"].as_str()),
            (Some(4), Some("fixed fast"))
        );
        assert_eq!(sat["recorded_by"], "customer:carol");
        // Once only, by anyone.
        let (code, v) = as_user(&s, "carol", "POST", &uri, Some(survey(1))).await;
        assert_eq!(code, StatusCode::CONFLICT, "{v}");
        assert!(v["reason"].as_str().unwrap().contains("already answered"), "{v}");
        let (code, v) = as_user(
            &s,
            "ana",
            "POST",
            &uri,
            Some(json!({"action": "close", "satisfaction": {"score": 2}})),
        )
        .await;
        assert_eq!(code, StatusCode::CONFLICT, "{v}");
        assert!(v["reason"].as_str().unwrap().contains("already answered"), "{v}");
    }

    #[tokio::test]
    async fn a_paused_sla_clock_answers_null_not_i64_max() {
        let dir = tempfile::tempdir().unwrap();
        let s = state(&dir).await;
        let (_, v) = as_user(&s, "ana", "POST", "/api/v1/cases", Some(fault("db01", "Mail down"))).await;
        let paused = v["id"].as_i64().unwrap();
        let (_, v) = as_user(&s, "ana", "POST", "/api/v1/cases", Some(fault("web01", "Shop slow"))).await;
        let running = v["id"].as_i64().unwrap();
        // acme's contract pauses the clock while awaiting the customer.
        let hold = json!({"action": "hold", "reason": "awaiting_customer"});
        let uri = format!("/api/v1/cases/{paused}/actions");
        let (code, v) = as_user(&s, "ana", "POST", &uri, Some(hold)).await;
        assert_eq!(code, StatusCode::OK, "{v}");
        let (code, q) = as_user(&s, "ana", "GET", "/api/v1/queue", None).await;
        assert_eq!(code, StatusCode::OK);
        let cases = q["cases"].as_array().unwrap();
        let ids: Vec<i64> = cases.iter().filter_map(|c| c["id"].as_i64()).collect();
        // The paused clock goes last, after the running one.
        assert_eq!(ids, [running, paused]);
        assert!(cases[0]["next_breach_ms"].is_i64(), "{}", cases[0]);
        assert_eq!(cases[1]["next_breach_ms"], Value::Null, "{}", cases[1]);
        assert_eq!(cases[1]["sla"]["resolution"]["paused"], true, "{}", cases[1]);
        assert_eq!(cases[1]["sla"]["resolution"]["breach_at_ms"], Value::Null);
    }

    #[tokio::test]
    async fn bad_queue_filters_and_fault_reports_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let s = state(&dir).await;
        let (code, v) = as_user(&s, "ana", "GET", "/api/v1/queue?severity=urgent", None).await;
        assert_eq!(code, StatusCode::BAD_REQUEST);
        assert!(v["reason"].as_str().unwrap().starts_with("severity"), "{v}");
        let (code, v) = as_user(&s, "ana", "GET", "/api/v1/queue?status=sleeping", None).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{v}");
        let (code, v) = as_user(&s, "ana", "POST", "/api/v1/cases", Some(fault("nowhere01", "x"))).await;
        assert_eq!(code, StatusCode::NOT_FOUND);
        assert!(v["reason"].as_str().unwrap().contains("no known asset"), "{v}");
        let (code, v) = as_user(&s, "ana", "POST", "/api/v1/cases", Some(json!({"asset": "db01"}))).await;
        assert_eq!(code, StatusCode::BAD_REQUEST);
        assert!(v["reason"].as_str().unwrap().contains("title"), "{v}");
        let (_, q) = as_user(&s, "ana", "GET", "/api/v1/queue", None).await;
        assert_eq!(q["cases"], json!([]));
    }

    /// `n` reported faults, two in three on db01 (acme), the rest on web01
    /// (globex), severities in turn (critical, major, warning, info); their
    /// ids in order.
    async fn many_faults(s: &AppState, n: usize) -> Vec<i64> {
        let severities = ["critical", "major", "warning", "info"];
        let mut ids = Vec::with_capacity(n);
        for i in 0..n {
            let asset = if i % 3 == 2 { "web01" } else { "db01" };
            let body = json!({"asset": asset, "title": format!("Fault {i:03}"), "severity": severities[i % 4]});
            let (code, v) = as_user(s, "ana", "POST", "/api/v1/cases", Some(body)).await;
            assert_eq!(code, StatusCode::CREATED, "{v}");
            ids.push(v["id"].as_i64().unwrap());
        }
        ids
    }

    fn ids_of(v: &Value) -> Vec<i64> {
        v["cases"]
            .as_array()
            .unwrap_or_else(|| panic!("no cases: {v}"))
            .iter()
            .map(|c| c["id"].as_i64().unwrap())
            .collect()
    }

    /// Regression: the queue silently stopped at 5,000 cases. Now it pages
    /// through every one, and says how many there are.
    #[tokio::test]
    async fn the_queue_pages_through_every_case_with_its_total() {
        let dir = tempfile::tempdir().unwrap();
        let s = state(&dir).await;
        let all = many_faults(&s, 120).await;
        let mut seen = Vec::new();
        for (page, len) in [(1, 50), (2, 50), (3, 20)] {
            let (code, v) = as_user(
                &s,
                "ana",
                "GET",
                &format!("/api/v1/queue?per_page=50&page={page}"),
                None,
            )
            .await;
            assert_eq!(code, StatusCode::OK, "{v}");
            assert_eq!(
                (v["total"].as_u64(), v["page"].as_u64(), v["per_page"].as_u64()),
                (Some(120), Some(page), Some(50))
            );
            let ids = ids_of(&v);
            assert_eq!(ids.len(), len, "page {page}");
            seen.extend(ids);
        }
        seen.sort_unstable();
        assert_eq!(seen, all, "every case once");
        let (_, v) = as_user(&s, "ana", "GET", "/api/v1/queue?page=4&per_page=50", None).await;
        assert_eq!((ids_of(&v).len(), v["total"].as_u64()), (0, Some(120)));
        // Fifty a page unless asked; the old fields are all there.
        let (_, v) = as_user(&s, "ana", "GET", "/api/v1/queue", None).await;
        assert_eq!(
            (ids_of(&v).len(), v["per_page"].as_u64(), v["page"].as_u64()),
            (50, Some(50), Some(1))
        );
        let first = &v["cases"][0];
        for field in ["queue", "sla", "next_breach_ms", "next_clock", "status", "severity"] {
            assert!(first.get(field).is_some(), "{field}: {first}");
        }
        assert_eq!(first["next_clock"], "response", "{first}");
        // Filters count too: the critical ones on db01 (acme).
        let (_, v) = as_user(
            &s,
            "ana",
            "GET",
            "/api/v1/queue?severity=critical&customer=acme&per_page=7",
            None,
        )
        .await;
        let want = (0..120).filter(|i| i % 4 == 0 && i % 3 != 2).count() as u64;
        assert_eq!(v["total"].as_u64(), Some(want));
        assert_eq!(ids_of(&v).len(), 7);
    }

    #[tokio::test]
    async fn the_queue_sorts_by_each_column_searches_and_names_bad_parameters() {
        let dir = tempfile::tempdir().unwrap();
        let s = state(&dir).await;
        let all = many_faults(&s, 9).await;
        let get = |query: &str| {
            let s = s.clone();
            let uri = format!("/api/v1/queue?{query}");
            async move {
                let (code, v) = as_user(&s, "ana", "GET", &uri, None).await;
                assert_eq!(code, StatusCode::OK, "{uri}: {v}");
                v
            }
        };
        // Two cases taken (in progress), one given to bo.
        for id in [all[1], all[4]] {
            let uri = format!("/api/v1/cases/{id}/actions");
            let (code, v) = as_user(&s, "ana", "POST", &uri, Some(json!({"action": "acknowledge"}))).await;
            assert_eq!(code, StatusCode::OK, "{v}");
        }
        let uri = format!("/api/v1/cases/{}/actions", all[6]);
        let (code, v) = as_user(&s, "ana", "POST", &uri, Some(json!({"action": "assign", "to": "bo"}))).await;
        assert_eq!(code, StatusCode::OK, "{v}");
        let reversed: Vec<i64> = all.iter().rev().copied().collect();
        assert_eq!(ids_of(&get("sort=case").await), all);
        assert_eq!(ids_of(&get("sort=case&dir=desc").await), reversed);
        // Oldest first unless asked the other way (ties by number).
        assert_eq!(ids_of(&get("sort=age").await), all);
        assert_eq!(ids_of(&get("sort=age&dir=asc").await), reversed);
        let field = |v: &Value, f: &str| -> Vec<String> {
            v["cases"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c[f].as_str().unwrap_or_default().to_string())
                .collect()
        };
        let assets = field(&get("sort=asset").await, "host");
        assert!(assets.windows(2).all(|w| w[0] <= w[1]), "{assets:?}");
        let assets = field(&get("sort=asset&dir=desc").await, "host");
        assert_eq!(assets.first().map(String::as_str), Some("web01"), "{assets:?}");
        let customers = field(&get("sort=customer&dir=desc").await, "customer");
        assert_eq!(customers.first().map(String::as_str), Some("globex"), "{customers:?}");
        let severities = field(&get("sort=severity").await, "severity");
        assert_eq!(
            severities[..3],
            ["critical", "critical", "critical"],
            "most severe first"
        );
        let severities = field(&get("sort=severity&dir=asc").await, "severity");
        assert_eq!(severities[..2], ["info", "info"]);
        let statuses = field(&get("sort=status&dir=desc").await, "status");
        assert_eq!(statuses[..2], ["in_progress", "in_progress"], "{statuses:?}");
        let v = get("sort=assignee").await;
        assert_eq!(ids_of(&v).last(), Some(&all[6]), "ana before bo");
        let v = get("sort=assignee&dir=desc").await;
        assert_eq!(ids_of(&v).first(), Some(&all[6]));
        // Nearest breach first by default.
        let v = get("").await;
        let breaches: Vec<i64> = v["cases"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|c| c["next_breach_ms"].as_i64())
            .collect();
        assert!(breaches.windows(2).all(|w| w[0] <= w[1]), "{breaches:?}");

        // Search: title, host, number, case-insensitively.
        assert_eq!(ids_of(&get("q=fault%20003").await), [all[3]]);
        assert_eq!(get("q=WEB01").await["total"].as_u64(), Some(3));
        assert_eq!(ids_of(&get("q=WEB01&sort=case").await), [all[2], all[5], all[8]]);
        assert_eq!(ids_of(&get(&format!("q=%23{}", all[7])).await), [all[7]]);
        // A bare number finds the case, and the titles holding it.
        let v = get(&format!("q={}&sort=case", all[7])).await;
        assert_eq!(ids_of(&v).first(), Some(&all[7]), "{v}");
        // Mine and unassigned.
        assert_eq!(ids_of(&get("assignee=bo").await), [all[6]]);
        assert_eq!(get("assignee=ana").await["total"].as_u64(), Some(8));
        assert_eq!(get("assignee=-").await["total"].as_u64(), Some(0));
        // A customer's search stays within its own cases.
        let (_, v) = as_user(&s, "carol", "GET", "/api/v1/queue?q=web01", None).await;
        assert_eq!(v["total"].as_u64(), Some(0), "{v}");

        let long = format!("q={}", "x".repeat(201));
        let blanks = format!("q={}", "%20".repeat(201));
        for (query, named) in [
            ("sort=urgency", "sort"),
            ("dir=up", "dir"),
            ("page=0", "page"),
            ("page=two", "page"),
            ("per_page=201", "per_page"),
            ("per_page=-5", "per_page"),
            (long.as_str(), "q"),
            (blanks.as_str(), "q"),
        ] {
            let (code, v) = as_user(&s, "ana", "GET", &format!("/api/v1/queue?{query}"), None).await;
            assert_eq!(code, StatusCode::BAD_REQUEST, "{query}: {v}");
            let reason = v["reason"].as_str().unwrap_or_default();
            assert!(reason.starts_with(&format!("{named}:")), "{query}: {v}");
        }
    }
}
