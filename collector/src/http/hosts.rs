//! `GET /api/v1/hosts`, `/api/v1/hosts/{agent_id}` and
//! `/api/v1/hosts/{agent_id}/reports`: what the collector knows about each
//! host. Needs an API token (`Authorization: Bearer ...`) or a session; a
//! customer's user sees only the hosts labelled with their customer, and
//! another customer's host is "not found".

use std::sync::Arc;

use axum::extract::{Path, State};

use super::Query;
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::ApiError;
use super::{AppState, bearer};
use crate::auth::{self, Principal};
use crate::fleet::Host;
use crate::pki;
use crate::store::Reports;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/hosts", get(list))
        .route("/api/v1/hosts/{agent_id}", get(one))
        .route("/api/v1/hosts/{agent_id}/reports", get(reports))
}

/// Who is asking: the machine API token, a user's API token (both as
/// `Authorization: Bearer ...`), or a logged-in user's session cookie.
/// Every API endpoint starts with it; 401 when none of them is valid.
pub(crate) async fn authorize(state: &AppState, headers: &HeaderMap) -> Result<Principal, ApiError> {
    if let Some(t) = bearer(headers) {
        if let Some(name) = state.fleet.api_token_name(&pki::hash_secret(t)) {
            return Ok(Principal::machine(&name));
        }
        return match state.contracts.get().user_by_token(&auth::token_hash(t)) {
            Some(u) => Ok(Principal::of(u)),
            None => Err(ApiError::Unauthorized("unknown API token".into())),
        };
    }
    match auth::cookie(headers, auth::SESSION_COOKIE) {
        Some(id) => crate::sessions::resolve(state, id, caretaker_shared::now_ms())
            .await?
            .map(|(p, _)| p)
            .ok_or_else(|| ApiError::Unauthorized("the session has ended; log in again".into())),
        None => Err(ApiError::Unauthorized(
            "missing bearer API token or session cookie".into(),
        )),
    }
}

/// The customer a host belongs to: its agent's `customer` label (empty when
/// unlabelled, which no customer's user may see).
pub(crate) fn customer_of(h: &Host) -> &str {
    h.label("customer")
}

/// Whether the principal may see the host and everything filed under it:
/// staff see every host, a customer's user only the hosts of their customer.
pub(crate) fn may_see_host(p: &Principal, h: &Host) -> bool {
    p.may_see(customer_of(h))
}

/// The host with this agent id, if the principal may see it. Another
/// customer's host gets the same 404 as a missing one, so its existence does
/// not leak.
pub(crate) fn visible_host(state: &AppState, p: &Principal, agent_id: &str) -> Result<Arc<Host>, ApiError> {
    state
        .fleet
        .get(agent_id)
        .filter(|h| may_see_host(p, h))
        .ok_or_else(|| ApiError::NotFound(format!("no host with agent id {agent_id:?}")))
}

/// Whether the principal may see data filed under a host *name* (service
/// reports): staff always; a customer's user only when every known host of
/// that name is theirs, so a name two customers share shows neither of them
/// the other's records.
pub(crate) fn may_see_host_name(state: &AppState, p: &Principal, name: &str) -> bool {
    if p.scope().is_none() {
        return true;
    }
    let named: Vec<Arc<Host>> = state.fleet.snapshot().into_iter().filter(|h| h.host == name).collect();
    !named.is_empty() && named.iter().all(|h| may_see_host(p, h))
}

/// Whether the host's agent is revoked: its host stays listed (down) until
/// it is decommissioned.
pub(crate) fn revoked(state: &AppState, h: &Host) -> bool {
    state.fleet.identity(&h.agent_id).is_some_and(|i| i.revoked)
}

fn summary(h: &Host, state: &AppState, now: i64) -> Value {
    let mut v = serde_json::to_value(h).unwrap_or_else(|_| json!({}));
    v["up"] = json!(h.is_up(now, state.config.hosts.down_after_intervals));
    v["samples"] = json!(h.samples.len());
    v["revoked"] = json!(revoked(state, h));
    v
}

async fn list(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    let principal = authorize(&state, &headers).await?;
    let now = caretaker_shared::now_ms();
    let hosts: Vec<Value> = state
        .fleet
        .snapshot()
        .iter()
        .filter(|h| may_see_host(&principal, h))
        .map(|h| summary(h, &state, now))
        .collect();
    Ok(Json(json!({ "hosts": hosts })))
}

async fn one(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(agent_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let principal = authorize(&state, &headers).await?;
    let h = visible_host(&state, &principal, &agent_id)?;
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
    let principal = authorize(&state, &headers).await?;
    visible_host(&state, &principal, &agent_id)?;
    let limit = super::page_limit(q.limit, 100, 10_000)?;
    let entries = super::read(&state, move |conn| Ok(conn.report_log(&agent_id, limit)?)).await?;
    Ok(Json(json!({ "reports": entries })))
}
