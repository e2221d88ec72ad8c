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
//! The checks are [`crate::ingest`]'s; this handler only carries HTTP in
//! (headers, the body read within its limits) and out (each
//! [`crate::ingest::Refused`] as the status and body agents have always had,
//! the `caretaker_ingest_*` metrics).
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
use http_body_util::BodyExt;
use serde_json::json;

use super::error::ApiError;
use super::{AppState, bearer};
use crate::ingest::{self, Received};
use crate::store::StoreError;
use crate::writer::Applied;

pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/reports", post(receive))
}

async fn receive(State(state): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let mut body = Some(body);
    let result = handle(&state, &headers, &mut body).await;
    if result.is_err()
        && let Some(unread) = body.take()
    {
        drain(unread, DRAIN_FACTOR * state.config.ingest.max_body_bytes).await;
    }
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

/// How much of a refused report's unread body is read and discarded, as a
/// multiple of `ingest.max_body_bytes`.
const DRAIN_FACTOR: usize = 4;

/// Reads and discards what the client still sends of a report refused before
/// its body was read (401, 413 by `Content-Length`, 415): over HTTP/1.1,
/// closing with unread data in the socket resets the connection, and the
/// client (an agent) sees a broken connection instead of the refusal, so it
/// retries a report it should drop. Bounded in bytes and in time.
async fn drain(mut body: Body, limit: usize) {
    let mut seen = 0usize;
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while seen <= limit {
            match body.frame().await {
                Some(Ok(frame)) => seen += frame.data_ref().map_or(0, |d| d.len()),
                _ => break,
            }
        }
    })
    .await;
}

/// Reads the body up to `limit` bytes; its deadline (`ingest.body_timeout_secs`)
/// is the edge's, see [`super::limits`].
async fn read_body(body: Body, limit: usize) -> Result<axum::body::Bytes, ApiError> {
    let limited = http_body_util::Limited::new(body, limit);
    match limited.collect().await {
        Err(e) if e.downcast_ref::<http_body_util::LengthLimitError>().is_some() => {
            Err(ApiError::TooLarge(format!("body larger than {limit} bytes")))
        }
        Err(e) if super::limits::is_body_timeout(&*e) => Err(ApiError::Timeout("body not received in time".into())),
        Err(e) => Err(ApiError::BadRequest(format!("cannot read the body: {e}"))),
        Ok(c) => Ok(c.to_bytes()),
    }
}

async fn handle(
    state: &AppState,
    headers: &HeaderMap,
    body: &mut Option<Body>,
) -> Result<(u64, Option<String>), ApiError> {
    let reader = state.reader.clone();
    let lookup = |hash: String| async move {
        crate::store::read_on(&reader, move |c| crate::identity::agent_by_credential(c, &hash)).await
    };
    let agent = ingest::authenticate(&state.fleet, bearer(headers), lookup).await?;
    let encoding = ingest::encoding(headers.get(header::CONTENT_ENCODING).map(|v| v.to_str().unwrap_or("?")))?;
    let cfg = &state.config.ingest;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    ingest::check_declared_size(declared, cfg)?;
    let body = body
        .take()
        .ok_or_else(|| ApiError::Internal("the report's body was taken twice".into()))?;
    let body = read_body(body, cfg.max_body_bytes).await?;

    // Decompressing and parsing are CPU work: keep them off the async workers.
    let limit = cfg.max_decompressed_bytes;
    let (decoded, body) =
        tokio::task::spawn_blocking(move || ingest::decode_body(&body, encoding, limit).map(|d| (d, body)))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))??;
    let received = Received {
        agent,
        body: body.to_vec(),
        encoding,
        sent_at_ms: headers
            .get(header::DATE)
            .and_then(|v| v.to_str().ok())
            .and_then(crate::clock::parse_http_date),
        received_at_ms: caretaker_shared::now_ms(),
    };
    let incoming = ingest::accept(&state.fleet, decoded, received, cfg)?;
    // The engine reads the samples from the report itself; the copy is made
    // only when detection runs, and handed over only once committed.
    let for_detect = state.detect.as_ref().map(|_| {
        let mut r = incoming.report.clone();
        r.samples = incoming.samples.clone();
        r
    });
    let unknown = incoming.sample_count - incoming.samples.len();
    if unknown > 0 {
        state
            .metrics
            .ignored
            .get_or_create(&vec![("reason".to_string(), "unknown_metric".to_string())])
            .inc_by(unknown as u64);
    }
    let (agent_id, seq, received_at_ms) = (incoming.agent_id.clone(), incoming.report.seq, incoming.received_at_ms);
    let credential_hash = incoming.credential_hash.clone().unwrap_or_default();
    let outcome = state.writer.apply(incoming).await.map_err(|e| match e {
        StoreError::Identity(_) => ingest::refused_identity(&agent_id, e).into(),
        StoreError::Revoked(_) | StoreError::StaleCredential(_) | StoreError::UnknownAgent(_) => {
            // The store says no: drop what the cache believed.
            state.fleet.forget_credential(&credential_hash);
            tracing::warn!(%agent_id, reason = %e, "report refused");
            ApiError::from(e)
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::collections::BTreeMap;

    use axum::http::{Request, StatusCode};
    use caretaker_shared::wire::{Inventory, PROTOCOL_VERSION, Report, Sample};
    use serde_json::{Value, json};
    use tower::ServiceExt;

    use super::*;
    use crate::http::testing::{self, call, get};
    use crate::pki;
    use crate::store::agents::Agents;

    const Y2100: i64 = 4_102_444_800_000;

    /// A collector with one enrolled agent for host `db01` of customer acme:
    /// its id and credential.
    async fn enrolled(dir: &tempfile::TempDir) -> (crate::http::testing::TestState, String, String) {
        let state = testing::state_with(dir, |c| {
            c.add_enrollment_token(&pki::hash_secret("enroll-token"), 0).unwrap();
        })
        .await;
        let (status, v) = call(
            &state,
            "POST",
            "/api/v1/enroll",
            Some(json!({"token": "enroll-token", "host": "db01"})),
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{v}");
        let id = v["agent_id"].as_str().unwrap().to_string();
        let credential = v["credential"].as_str().unwrap().to_string();
        (state, id, credential)
    }

    fn report(agent_id: &str, seq: u64, at_ms: i64, kernel: Option<&str>) -> Report {
        Report {
            version: PROTOCOL_VERSION,
            agent_id: agent_id.into(),
            seq,
            collected_at_ms: at_ms,
            interval_secs: 60,
            host: "db01".into(),
            labels: BTreeMap::from([("customer".into(), "acme".into())]),
            samples: vec![
                Sample {
                    metric: "caretaker_memory_total_bytes".into(),
                    labels: BTreeMap::new(),
                    value: 1.0,
                },
                // Unknown to this build: left out of /metrics, still counted as sent.
                Sample {
                    metric: "caretaker_from_a_newer_agent".into(),
                    labels: BTreeMap::new(),
                    value: 2.0,
                },
            ],
            events: vec![],
            inventory: kernel.map(|k| Inventory {
                hostname: "db01".into(),
                kernel: k.into(),
                // The agent claims the same configuration every time.
                content_hash: "unchanged".into(),
                ..Inventory::default()
            }),
            disks: None,
        }
    }

    async fn post(state: &AppState, credential: &str, r: &Report, date: Option<&str>) -> (StatusCode, String) {
        let mut req = Request::builder()
            .method("POST")
            .uri("/api/v1/reports")
            .header("authorization", format!("Bearer {credential}"))
            .header("content-type", "application/json");
        if let Some(d) = date {
            req = req.header("date", d);
        }
        let req = req.body(Body::from(serde_json::to_vec(r).unwrap())).unwrap();
        let resp = crate::http::app(state.clone()).oneshot(req).await.unwrap();
        let status = resp.status();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    async fn clock_findings(state: &AppState) -> Vec<Value> {
        let (_, v) = get(state, "/api/v1/findings?host=db01&status=all").await;
        v["findings"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|f| f["key"]["check"] == crate::clock::CHECK)
            .cloned()
            .collect()
    }

    #[tokio::test]
    async fn report_log_samples_are_not_always_zero() {
        let dir = tempfile::tempdir().unwrap();
        let (state, id, cred) = enrolled(&dir).await;
        let (status, body) = post(&state, &cred, &report(&id, 1, caretaker_shared::now_ms(), None), None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (_, v) = get(&state, &format!("/api/v1/hosts/{id}/reports")).await;
        assert_eq!(v["reports"][0]["samples"], 2, "{v}");
    }

    #[tokio::test]
    async fn inventory_changes_under_an_unchanged_agent_hash_are_archived() {
        let dir = tempfile::tempdir().unwrap();
        let (state, id, cred) = enrolled(&dir).await;
        let kernels = ["6.1.0-18-amd64", "6.1.0-19-amd64", "6.1.0-20-amd64", "6.1.0-21-amd64"];
        for (i, k) in kernels.iter().enumerate() {
            let r = report(&id, i as u64 + 1, caretaker_shared::now_ms(), Some(k));
            let (status, body) = post(&state, &cred, &r, None).await;
            assert_eq!(status, StatusCode::OK, "{body}");
        }
        // The same kernel again under the same hash: no change.
        let r = report(&id, 5, caretaker_shared::now_ms(), Some(kernels[3]));
        assert_eq!(post(&state, &cred, &r, None).await.0, StatusCode::OK);
        let (_, v) = get(&state, &format!("/api/v1/assets/{id}")).await;
        let changes: Vec<(&str, &str)> = v["changes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["kind"].as_str().unwrap(), c["new"].as_str().unwrap()))
            .collect();
        assert_eq!(
            changes,
            [
                ("kernel_changed", "6.1.0-21-amd64"),
                ("kernel_changed", "6.1.0-20-amd64"),
                ("kernel_changed", "6.1.0-19-amd64"),
            ],
            "{v}"
        );
        assert_eq!(v["versions"].as_array().map(Vec::len), Some(4), "{v}");
        // The archive holds the collector's hash, not the agent's word.
        let hash = v["inventory"]["content_hash"].as_str().unwrap();
        assert_eq!(hash.len(), 64, "{v}");
    }

    #[tokio::test]
    async fn a_clock_in_2100_or_at_i64_max_dates_the_change_at_receipt_and_opens_a_clock_skew_finding() {
        let dir = tempfile::tempdir().unwrap();
        let (state, id, cred) = enrolled(&dir).await;
        let now = caretaker_shared::now_ms();
        assert_eq!(
            post(&state, &cred, &report(&id, 1, now, Some("6.1.0-18")), None)
                .await
                .0,
            StatusCode::OK
        );
        assert!(clock_findings(&state).await.is_empty(), "a good clock opens nothing");

        // The clock says 2100, then i64::MAX; each brings a kernel change.
        for (seq, at, kernel) in [(2, Y2100, "6.1.0-19"), (3, i64::MAX, "6.1.0-20")] {
            let before = caretaker_shared::now_ms();
            let (status, body) = post(&state, &cred, &report(&id, seq, at, Some(kernel)), None).await;
            let after = caretaker_shared::now_ms();
            assert_eq!(status, StatusCode::OK, "accepted: {body}");
            let (_, v) = get(&state, &format!("/api/v1/assets/{id}")).await;
            let c = &v["changes"][0];
            assert_eq!(c["new"], kernel, "{v}");
            let at_ms = c["at_ms"].as_i64().unwrap();
            assert!((before..=after).contains(&at_ms), "dated at receipt, not {at_ms}");
            let f = clock_findings(&state).await;
            assert_eq!(f.len(), 1, "{f:?}");
            assert_eq!(
                (f[0]["status"].as_str(), f[0]["cleared_at_ms"].as_i64()),
                (Some("open"), None)
            );
            let (_, h) = get(&state, &format!("/api/v1/hosts/{id}")).await;
            assert!(h["last_collected_at_ms"].as_i64().is_some_and(|t| t <= after), "{h}");
        }

        // Both changes are in this month's inspection report.
        let from = crate::report::schedule::previous_month(now).to_ms;
        let (status, v) = call(
            &state,
            "POST",
            "/api/v1/reports/inspection",
            Some(json!({"customer": "acme", "from": from, "to": caretaker_shared::now_ms()})),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        let (_, r) = get(&state, &format!("/api/v1/reports/inspection/{}", v["id"])).await;
        let system = r["systems"]
            .as_array()
            .and_then(|s| s.iter().find(|s| s["agent_id"] == id.as_str()))
            .cloned()
            .unwrap_or(Value::Null);
        let summaries: Vec<&str> = system["changes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["summary"].as_str())
            .collect();
        assert!(
            summaries.iter().any(|s| s.contains("6.1.0-19")) && summaries.iter().any(|s| s.contains("6.1.0-20")),
            "{r}"
        );

        // A good clock again clears the finding.
        let (status, _) = post(&state, &cred, &report(&id, 4, caretaker_shared::now_ms(), None), None).await;
        assert_eq!(status, StatusCode::OK);
        let f = clock_findings(&state).await;
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(f[0]["cleared_at_ms"].as_i64().is_some(), "cleared: {f:?}");
    }

    #[tokio::test]
    async fn a_clock_two_hours_behind_is_told_by_its_date_header() {
        let dir = tempfile::tempdir().unwrap();
        let (state, id, cred) = enrolled(&dir).await;
        let behind = caretaker_shared::now_ms() - 7_200_000;
        let date = jiff::fmt::rfc2822::DateTimePrinter::new()
            .timestamp_to_rfc9110_string(&jiff::Timestamp::from_millisecond(behind).unwrap())
            .unwrap();
        let (status, _) = post(&state, &cred, &report(&id, 1, behind, Some("6.1.0-18")), Some(&date)).await;
        assert_eq!(status, StatusCode::OK);
        let f = clock_findings(&state).await;
        assert_eq!(f.len(), 1, "{f:?}");
        let offset = f[0]["evidence"]["offset_secs"].as_i64().unwrap();
        assert!((-7_210..=-7_190).contains(&offset), "{f:?}");
        let (_, v) = get(&state, &format!("/api/v1/hosts/{id}/reports")).await;
        assert_eq!(
            v["reports"][0]["collected_at_ms"], behind,
            "the log keeps the claim: {v}"
        );
        // The clock is set right.
        let good = jiff::fmt::rfc2822::DateTimePrinter::new()
            .timestamp_to_rfc9110_string(&jiff::Timestamp::now())
            .unwrap();
        let (status, _) = post(
            &state,
            &cred,
            &report(&id, 2, caretaker_shared::now_ms(), None),
            Some(&good),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        let f = clock_findings(&state).await;
        assert!(f[0]["cleared_at_ms"].as_i64().is_some(), "{f:?}");
    }
}
