//! `POST /api/v1/enroll`: an agent trades the enrollment token for its own
//! credential, once. Only the credential's hash is stored.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::error::ApiError;
use crate::pki;
use crate::store::Enrollment;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    pub token: String,
    pub host: String,
}

#[derive(Debug, Serialize)]
pub struct EnrollResponse {
    pub agent_id: String,
    pub credential: String,
}

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/enroll", post(enroll))
}

async fn enroll(State(state): State<AppState>, body: axum::body::Bytes) -> Result<Json<EnrollResponse>, ApiError> {
    let req: EnrollRequest = serde_json::from_slice(&body).map_err(|e| ApiError::Malformed {
        path: ".".into(),
        reason: e.to_string(),
    })?;
    if req.host.is_empty() || req.host.len() > 256 {
        return Err(ApiError::Malformed {
            path: "host".into(),
            reason: "must be 1 to 256 bytes".into(),
        });
    }
    let credential = pki::new_secret().map_err(|e| ApiError::Internal(e.to_string()))?;
    let agent_id = pki::new_secret().map_err(|e| ApiError::Internal(e.to_string()))?[..16].to_string();
    let ok = state
        .writer
        .enroll(Enrollment {
            token_hash: pki::hash_secret(&req.token),
            agent_id: agent_id.clone(),
            credential_hash: pki::hash_secret(&credential),
            host: req.host.clone(),
        })
        .await?;
    if !ok {
        tracing::warn!(host = %req.host, "enrollment with an unknown token refused");
        return Err(ApiError::Unauthorized("unknown enrollment token".into()));
    }
    tracing::info!(%agent_id, host = %req.host, "agent enrolled");
    Ok(Json(EnrollResponse { agent_id, credential }))
}
