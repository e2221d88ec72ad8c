//! `GET /api/v1/disks` (every current disk, worst verdict first; `?agent_id=`
//! narrows it to one host) and `GET /api/v1/hosts/{agent_id}/disks/{key}` (one
//! disk's latest full reading and its history, also after the disk left the
//! host). Needs an API token or a session; a customer's user sees only the
//! disks of their customer's hosts, another customer's host is "not found".

use axum::extract::{Path, State};

use super::Query;
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::ApiError;
use super::hosts::{authorize, may_see_host, visible_host};
use super::{AppState, read};
use crate::disks;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/disks", get(list))
        .route("/api/v1/hosts/{agent_id}/disks/{key}", get(one))
}

#[derive(Deserialize)]
struct ListQuery {
    agent_id: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let principal = authorize(&state, &headers).await?;
    if let Some(a) = &q.agent_id {
        visible_host(&state, &principal, a)?;
    }
    let mut rows = read(&state, move |c| disks::list(c, q.agent_id.as_deref())).await?;
    if principal.scope().is_some() {
        rows.retain(|r| {
            state
                .fleet
                .get(&r.agent_id)
                .is_some_and(|h| may_see_host(&principal, &h))
        });
    }
    Ok(Json(json!({ "disks": rows })))
}

#[derive(Deserialize)]
struct OneQuery {
    limit: Option<u32>,
}

async fn one(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((agent_id, key)): Path<(String, String)>,
    Query(q): Query<OneQuery>,
) -> Result<Json<Value>, ApiError> {
    let principal = authorize(&state, &headers).await?;
    visible_host(&state, &principal, &agent_id)?;
    let limit = super::page_limit(q.limit, 1_000, 100_000)?;
    let (a, k) = (agent_id.clone(), key.clone());
    let found = read(&state, move |c| disks::one(c, &a, &k, limit)).await?;
    let Some((current, history)) = found else {
        return Err(ApiError::NotFound(format!(
            "no disk {key:?} was ever seen on the host with agent id {agent_id:?}"
        )));
    };
    let (summary, disk) = current.unzip();
    // A disk that left the host keeps its history; `present` says which it is.
    Ok(Json(json!({
        "present": summary.is_some(),
        "summary": summary,
        "disk": disk,
        "history": history,
    })))
}
