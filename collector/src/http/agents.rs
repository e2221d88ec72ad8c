//! `GET /api/v1/agents` and `POST /api/v1/agents/{agent_id}/revoke`,
//! `/rotate`, `/decommission`: the enrolled agents and their credentials,
//! for staff only (the same as `caretaker-collector agents` on the data
//! directory). Each change is made in the store writer's transaction, so the
//! next report of the agent is judged by it.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use super::hosts::authorize;
use crate::identity::{self, AgentInfo};
use crate::pki;
use crate::store::sql::Sql;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/agents", get(list))
        .route("/api/v1/agents/{agent_id}/revoke", post(revoke))
        .route("/api/v1/agents/{agent_id}/rotate", post(rotate))
        .route("/api/v1/agents/{agent_id}/decommission", post(decommission))
}

async fn list(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers).await?.require_staff()?;
    let agents = super::read(&state, |c| identity::list_agents(c)).await?;
    Ok(Json(json!({ "agents": agents })))
}

/// Runs a change of one agent in the writer, then shows it in the fleet.
async fn change(
    state: &AppState,
    what: &'static str,
    f: impl FnOnce(&dyn Sql) -> Result<AgentInfo, crate::store::StoreError> + Send + 'static,
) -> Result<Json<Value>, ApiError> {
    let v = state.writer.run(move |c| Ok(json!(f(c)?))).await?;
    let a: AgentInfo = serde_json::from_value(v.clone()).map_err(|e| ApiError::Internal(e.to_string()))?;
    state.fleet.set_identity(&a.agent_id, a.identity());
    tracing::info!(agent_id = %a.agent_id, host = %a.host, "agent {what}");
    Ok(Json(v))
}

async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(agent_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers).await?.require_staff()?;
    let now = caretaker_shared::now_ms();
    change(&state, "revoked", move |c| identity::revoke_agent(c, &agent_id, now)).await
}

async fn rotate(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(agent_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers).await?.require_staff()?;
    let secret = pki::new_secret().map_err(|e| ApiError::Internal(e.to_string()))?;
    change(&state, "credential rotated", move |c| {
        identity::rotate_agent(c, &agent_id, &secret)
    })
    .await
}

async fn decommission(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(agent_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers).await?.require_staff()?;
    let now = caretaker_shared::now_ms();
    change(&state, "decommissioned", move |c| {
        // By id only: a host name could be ambiguous here.
        identity::agent(c, &agent_id)?;
        identity::decommission(c, &agent_id, now)
    })
    .await
}
