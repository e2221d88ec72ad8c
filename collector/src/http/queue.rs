//! The engineers' queue over the API:
//! - `GET /api/v1/queue`: active cases, nearest SLA breach first; filters
//!   `status`, `severity` (minimum), `customer`, `assignee` (`-` for
//!   unassigned).
//! - `POST /api/v1/cases`: report a fault (`asset`, `title`, `description`,
//!   `severity`, `component`).
//! - `POST /api/v1/cases/{id}/actions`: acknowledge, assign, escalate,
//!   comment, hold, resume, cancel, resolve (with the service report), close
//!   (with the satisfaction record).
//! - `GET /api/v1/assets/{host}/history`: the asset's cases, findings and
//!   service reports with parts.
//! - `GET /api/v1/outbox`: each sink's backlog and what it refused.
//!
//! Engineers and managers act; a customer reads its own cases only.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::ApiError;
use super::hosts::authorize;
use super::{AppState, json_body, path_id, read};
use crate::cases::{Item, Severity};
use crate::queue::{self, CaseAction, FaultReport, QueueFilter};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/queue", get(list))
        .route("/api/v1/cases/{id}/actions", post(action))
        .route("/api/v1/faults", post(report_fault))
        .route("/api/v1/assets/{host}/history", get(history))
        .route("/api/v1/outbox", get(outbox))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct QueueQuery {
    pub status: Option<String>,
    pub severity: Option<String>,
    pub customer: Option<String>,
    pub assignee: Option<String>,
}

impl QueueQuery {
    /// The store filter, or what is wrong with the query; empty values
    /// (an untouched form field) mean no filter.
    pub(crate) fn filter(&self, scope: Option<&str>) -> Result<QueueFilter, ApiError> {
        let given = |v: &Option<String>| v.as_deref().map(str::trim).filter(|v| !v.is_empty()).map(str::to_string);
        let status = match given(&self.status) {
            None => None,
            Some(s) => {
                let known = crate::cases::Status::from_parts(&s, None).is_some()
                    || crate::cases::Status::parse(&s).is_some()
                    || s == "on_hold"
                    || s == "cancelled";
                if !known {
                    return Err(ApiError::BadRequest(format!("status: {s:?} is not a case status")));
                }
                Some(s.split(':').next().unwrap_or(&s).to_string())
            }
        };
        let severity_min = match given(&self.severity) {
            None => None,
            Some(s) => Some(
                Severity::parse(&s).ok_or_else(|| ApiError::BadRequest(format!("severity: {s:?} is not a severity")))?,
            ),
        };
        // A customer sees its own cases whatever it asks for.
        let customer = match scope {
            Some(own) => Some(own.to_string()),
            None => given(&self.customer),
        };
        let assignee = given(&self.assignee).map(|a| if a == "-" { String::new() } else { a });
        Ok(QueueFilter {
            status,
            severity_min,
            customer,
            assignee,
        })
    }
}

pub(crate) fn item_json(item: &Item) -> Value {
    super::cases::item_json(item)
}

fn entry_json(e: &queue::QueueEntry) -> Value {
    let mut v = item_json(&e.item);
    v["queue"] = json!(e.meta);
    v["sla"] = json!(e.sla);
    v["next_breach_ms"] = json!(e.sla.next_breach_ms());
    v
}

async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<QueueQuery>,
) -> Result<Json<Value>, ApiError> {
    let who = authorize(&state, &headers)?;
    let filter = q.filter(who.scope())?;
    let contracts = state.contracts.get();
    let now = caretaker_shared::now_ms();
    let entries = read(&state, move |c| queue::queue(c, &contracts, &filter, now)).await?;
    Ok(Json(json!({ "cases": entries.iter().map(entry_json).collect::<Vec<_>>() })))
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

async fn action(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let who = authorize(&state, &headers)?;
    who.require_staff()?;
    let id = path_id("case", &id)?;
    let action: CaseAction = json_body(&body)?;
    let v = run_action(&state, id, action, &who.name).await?;
    Ok(Json(v))
}

/// Applies a person's action through the store writer; the answer is the
/// case afterwards. Shared by the API and the case page's forms.
pub(crate) async fn run_action(state: &AppState, id: i64, action: CaseAction, person: &str) -> Result<Value, ApiError> {
    let contracts = state.contracts.get();
    let person = person.to_string();
    Ok(state
        .writer
        .run(move |conn| {
            let item = queue::act(conn, &contracts, id, &action, &person, caretaker_shared::now_ms())?;
            Ok(item_json(&item))
        })
        .await?)
}

async fn report_fault(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let who = authorize(&state, &headers)?;
    who.require_staff()?;
    let report: FaultReport = json_body(&body)?;
    let v = file_fault(&state, report, &who.name).await?;
    let code = if v["created"] == json!(true) {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((code, Json(v)))
}

/// Files a reported fault through the writer: `{"id", "created"}`.
pub(crate) async fn file_fault(state: &AppState, report: FaultReport, person: &str) -> Result<Value, ApiError> {
    let contracts = state.contracts.get();
    let person = person.to_string();
    Ok(state
        .writer
        .run(move |conn| {
            let (id, created) = queue::report_fault(conn, &contracts, &report, &person, caretaker_shared::now_ms())?;
            Ok(json!({"id": id, "created": created}))
        })
        .await?)
}

async fn history(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(host): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let who = authorize(&state, &headers)?;
    let h = read(&state, move |c| queue::asset_history(c, &host)).await?;
    match h {
        Some(h) if h.customer.as_deref().is_none_or(|c| who.may_see(c)) && (who.scope().is_none() || h.customer.is_some()) => {
            let mut v = json!(h);
            v["cases"] = json!(h.cases.iter().map(item_json).collect::<Vec<_>>());
            v["findings"] = json!(h.findings.iter().map(item_json).collect::<Vec<_>>());
            Ok(Json(v))
        }
        _ => Err(ApiError::NotFound("no such asset".into())),
    }
}

async fn outbox(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    let who = authorize(&state, &headers)?;
    who.require_staff()?;
    let v = read(&state, |c| {
        let sinks: Vec<String> = c
            .prepare("SELECT sink FROM sink_state ORDER BY sink")?
            .query_map([], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let mut out = Vec::new();
        for s in sinks {
            let state = queue::outbox::sink_state(c, &s)?;
            let dead = queue::outbox::set_aside_list(c, &s)?;
            out.push(json!({"state": state, "set_aside": dead}));
        }
        Ok(json!({ "sinks": out }))
    })
    .await?;
    Ok(Json(v))
}
