//! `POST /api/v1/reports`: agent ingest. Order of checks: credential (401),
//! encoding (415), size as sent (413), decompression and size once
//! decompressed (400/413), JSON decoding with the field path (400),
//! validation with every problem's path (400), the credential matches the
//! report's agent id (401), the report claims the agent's own identity fixed
//! at enrollment: host, customer, bound site (403 naming the field), then
//! exactly-once application by the store writer (200, or 409 for a sequence
//! number already applied). The writer checks the credential (revoked: 401)
//! and the identity again in the transaction that applies the report: the
//! store decides, the checks here only spare it work. A rejected report
//! changes nothing.
//!
//! An agent whose credential was rotated gets the new one in the answer to
//! its next accepted report (`credential`); the old one works until the new
//! one is first used.

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use caretaker_shared::wire;
use http_body_util::BodyExt;
use serde_json::json;

use super::error::ApiError;
use super::{AppState, bearer};
use crate::fleet::catalogue_samples;
use crate::pki;
use crate::store::{self, Applied, DecompressError, Encoding, Incoming, StoreError};

/// A report claiming another identity: logged as the warning it is (a
/// misconfigured or compromised agent), answered 403 naming the field.
fn refused_identity(agent_id: &str, e: StoreError) -> ApiError {
    tracing::warn!(%agent_id, reason = %e, "report refused: identity");
    e.into()
}

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/reports", post(ingest))
}

async fn ingest(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let result = handle(&state, &headers, body).await;
    state.metrics.latency.observe(started.elapsed().as_secs_f64());
    match result {
        Ok((seq, credential)) => {
            state.metrics.accepted.inc();
            match credential {
                Some(c) => Json(json!({"status": "applied", "seq": seq, "credential": c})).into_response(),
                None => Json(json!({"status": "applied", "seq": seq})).into_response(),
            }
        }
        Err(e) => {
            match (&e, e.reject_reason()) {
                (ApiError::Duplicate { .. }, _) => {
                    state.metrics.duplicate.inc();
                }
                (_, Some(reason)) => {
                    state.metrics.reject(reason);
                    tracing::debug!(?e, "report rejected");
                }
                _ => {}
            }
            e.into_response()
        }
    }
}

async fn read_body(body: Body, limit: usize, timeout: Duration) -> Result<axum::body::Bytes, ApiError> {
    let limited = http_body_util::Limited::new(body, limit);
    match tokio::time::timeout(timeout, limited.collect()).await {
        Err(_) => Err(ApiError::BadRequest(format!(
            "body not received within {} s",
            timeout.as_secs()
        ))),
        Ok(Err(e)) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            Err(ApiError::TooLarge(format!("body larger than {limit} bytes")))
        }
        Ok(Err(e)) => Err(ApiError::BadRequest(format!("cannot read the body: {e}"))),
        Ok(Ok(c)) => Ok(c.to_bytes()),
    }
}

/// The agent a credential belongs to: from the fleet's cache, else from
/// the store (a credential rotated or enrolled by another process). A
/// revoked agent is told so.
async fn authenticate(state: &AppState, credential_hash: &str) -> Result<String, ApiError> {
    let agent_id = match state.fleet.agent_for_credential(credential_hash) {
        Some(id) => id,
        None => {
            let hash = credential_hash.to_string();
            let found = super::read(state, move |c| crate::identity::agent_by_credential(c, &hash)).await?;
            let Some((id, identity)) = found else {
                return Err(ApiError::Unauthorized("unknown credential".into()));
            };
            if !identity.revoked {
                state.fleet.add_credential(credential_hash.to_string(), id.clone());
            }
            state.fleet.set_identity(&id, identity);
            id
        }
    };
    if state.fleet.identity(&agent_id).is_some_and(|i| i.revoked) {
        return Err(StoreError::Revoked(agent_id).into());
    }
    Ok(agent_id)
}

async fn handle(state: &AppState, headers: &HeaderMap, body: Body) -> Result<(u64, Option<String>), ApiError> {
    let secret = bearer(headers).ok_or_else(|| ApiError::Unauthorized("missing bearer credential".into()))?;
    let credential_hash = pki::hash_secret(secret);
    let agent_id = authenticate(state, &credential_hash).await.inspect_err(|e| {
        if let ApiError::Revoked(reason) = e {
            tracing::warn!(%reason, "report refused");
        }
    })?;

    let encoding = match headers.get(header::CONTENT_ENCODING).map(|v| v.to_str().unwrap_or("?")) {
        None | Some("identity") => Encoding::Identity,
        Some("gzip") => Encoding::Gzip,
        Some(other) => {
            return Err(ApiError::UnsupportedEncoding(format!(
                "content-encoding {other:?}; use gzip or identity"
            )));
        }
    };
    let cfg = &state.config.ingest;
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
    {
        if len > cfg.max_body_bytes {
            return Err(ApiError::TooLarge(format!(
                "body of {len} bytes is larger than {} bytes",
                cfg.max_body_bytes
            )));
        }
    }
    let body = read_body(body, cfg.max_body_bytes, Duration::from_secs(cfg.body_timeout_secs)).await?;

    // Decompressing and parsing are CPU work: keep them off the async workers.
    let limit = cfg.max_decompressed_bytes;
    type Parsed = (wire::Report, Vec<wire::Sample>, usize, axum::body::Bytes);
    let parsed = tokio::task::spawn_blocking(move || -> Result<Parsed, ApiError> {
        let json = store::decompress(&body, encoding, limit).map_err(|e| match e {
            DecompressError::TooLarge(_) => ApiError::TooLarge(e.to_string()),
            DecompressError::Corrupt(_) => ApiError::Malformed {
                path: ".".into(),
                reason: e.to_string(),
            },
        })?;
        let mut report = wire::decode(&json).map_err(|e| ApiError::Malformed {
            path: e.path,
            reason: e.reason,
        })?;
        report.validate().map_err(ApiError::Invalid)?;
        // Samples of metrics this build does not know (from a newer agent) are
        // counted and left out; the rest are sorted for /metrics.
        let count = report.samples.len();
        let samples = catalogue_samples(std::mem::take(&mut report.samples));
        Ok((report, samples, count, body))
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))??;
    let (report, samples, sample_count, body) = parsed;

    if report.agent_id != agent_id {
        return Err(ApiError::Unauthorized(format!(
            "the credential does not belong to agent {:?}",
            report.agent_id
        )));
    }
    if let Some(identity) = state.fleet.identity(&agent_id)
        && let Err(m) = identity.check(&report.host, &report.labels)
    {
        return Err(refused_identity(&agent_id, StoreError::Identity(m)));
    }
    let unknown = sample_count - samples.len();
    if unknown > 0 {
        state
            .metrics
            .ignored
            .get_or_create(&vec![("reason".to_string(), "unknown_metric".to_string())])
            .inc_by(unknown as u64);
    }
    let seq = report.seq;
    // The engine reads the samples from the report itself; the copy is made
    // only when detection runs, and handed over only once committed.
    let for_detect = state.detect.as_ref().map(|_| {
        let mut r = report.clone();
        r.samples = samples.clone();
        r
    });
    let received_at_ms = caretaker_shared::now_ms();
    let outcome = state
        .writer
        .apply(Incoming {
            agent_id: agent_id.clone(),
            credential_hash: Some(credential_hash.clone()),
            report,
            samples,
            sample_count,
            body: body.to_vec(),
            encoding,
            received_at_ms,
        })
        .await
        .map_err(|e| match e {
            StoreError::Identity(_) => refused_identity(&agent_id, e),
            StoreError::Revoked(_) | StoreError::StaleCredential(_) | StoreError::UnknownAgent(_) => {
                // The store says no: drop what the cache believed.
                state.fleet.forget_credential(&credential_hash);
                tracing::warn!(%agent_id, reason = %e, "report refused");
                e.into()
            }
            e => e.into(),
        })?;
    match outcome {
        Applied::Applied { seq, credential } => {
            if let (Some(d), Some(r)) = (&state.detect, for_detect) {
                d.submit(r, received_at_ms);
            }
            Ok((seq, credential))
        }
        Applied::Duplicate { last_seq, .. } => Err(ApiError::Duplicate { seq, last_seq }),
    }
}
