//! `GET /api/v1/hosts`, `/api/v1/hosts/{agent_id}` and
//! `/api/v1/hosts/{agent_id}/reports`: what the collector knows about each
//! host. Needs the API token (`Authorization: Bearer ...`).

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::ApiError;
use super::{AppState, bearer};
use crate::fleet::Host;
use crate::{pki, store};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/hosts", get(list))
        .route("/api/v1/hosts/{agent_id}", get(one))
        .route("/api/v1/hosts/{agent_id}/reports", get(reports))
}

/// Checks the API token; every read endpoint (hosts, assets, disks) needs it.
pub(crate) fn authorize(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    match bearer(headers) {
        Some(t) if state.fleet.is_api_token(&pki::hash_secret(t)) => Ok(()),
        Some(_) => Err(ApiError::Unauthorized("unknown API token".into())),
        None => Err(ApiError::Unauthorized("missing bearer API token".into())),
    }
}

fn summary(h: &Host, state: &AppState, now: i64) -> Value {
    let mut v = serde_json::to_value(h).unwrap_or_else(|_| json!({}));
    v["up"] = json!(h.is_up(now, state.config.hosts.down_after_intervals));
    v["samples"] = json!(h.samples.len());
    v
}

async fn list(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers)?;
    let now = caretaker_shared::now_ms();
    let hosts: Vec<Value> = state.fleet.snapshot().iter().map(|h| summary(h, &state, now)).collect();
    Ok(Json(json!({ "hosts": hosts })))
}

async fn one(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(agent_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers)?;
    let h = state
        .fleet
        .get(&agent_id)
        .ok_or_else(|| ApiError::NotFound(format!("no host with agent id {agent_id:?}")))?;
    let mut v = summary(&h, &state, caretaker_shared::now_ms());
    v["samples"] = serde_json::to_value(&h.samples).unwrap_or_default();
    Ok(Json(v))
}

#[derive(Deserialize)]
struct LogQuery {
    limit: Option<u32>,
}

async fn reports(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(agent_id): Path<String>,
    Query(q): Query<LogQuery>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers)?;
    if state.fleet.get(&agent_id).is_none() {
        return Err(ApiError::NotFound(format!("no host with agent id {agent_id:?}")));
    }
    let limit = q.limit.unwrap_or(100).min(10_000);
    let entries = super::read(&state, move |conn| store::report_log(conn, &agent_id, limit)).await?;
    Ok(Json(json!({ "reports": entries })))
}
