//! Part replacement recommendations (see [`crate::predict`]).
//!
//! - `GET /api/v1/recommendations?status=&host=&customer=&urgency=` lists
//!   them, most urgent and soonest due first.
//! - `GET /api/v1/recommendations/{id}` gives one.
//! - `POST /api/v1/recommendations/{id}/accept` accepts it (and asks the
//!   spare-parts hook, [`crate::predict::on_accept`], to reserve a spare);
//!   `/dismiss` with `{"reason": "..."}` dismisses it; `/done` marks the part
//!   replaced. A move the current status does not allow is a 409 naming it.
//!
//! All need an API token or a session. A customer's user reads only the
//! recommendations of their own customer (another customer's is "not
//! found"); acting on one is for staff.

use axum::body::Bytes;
use axum::extract::{Path, State};

use super::Query;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use super::hosts::authorize;
use super::{json_body, path_id, read};
use crate::predict::records::{self, Filter, RecAction, RecStatus, URGENCIES};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/recommendations", get(list))
        .route("/api/v1/recommendations/{id}", get(one))
        .route("/api/v1/recommendations/{id}/accept", post(accept))
        .route("/api/v1/recommendations/{id}/dismiss", post(dismiss))
        .route("/api/v1/recommendations/{id}/done", post(done))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    status: Option<String>,
    host: Option<String>,
    customer: Option<String>,
    urgency: Option<String>,
}

async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let principal = authorize(&state, &headers).await?;
    let status = match q.status.as_deref() {
        None => None,
        Some(s) => Some(RecStatus::parse(s).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "status: {s:?} is not one of open, accepted, reserved, done, dismissed"
            ))
        })?),
    };
    if let Some(u) = q.urgency.as_deref().filter(|u| !URGENCIES.contains(u)) {
        return Err(ApiError::BadRequest(format!(
            "urgency: {u:?} is not one of {}",
            URGENCIES.join(", ")
        )));
    }
    let filter = Filter {
        status,
        host: q.host,
        // A customer sees its own recommendations whatever it asks for.
        customer: principal.scope().map(str::to_string).or(q.customer),
        urgency: q.urgency,
    };
    let list = read(&state, move |c| records::list(c, &filter)).await?;
    Ok(Json(json!({ "recommendations": list })))
}

async fn one(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let principal = authorize(&state, &headers).await?;
    let id = path_id("recommendation", &id)?;
    // Another customer's recommendation is answered like a missing one.
    let rec = read(&state, move |c| records::get(c, id))
        .await?
        .filter(|r| principal.may_see(&r.customer))
        .ok_or_else(|| ApiError::NotFound(format!("no recommendation {id}")))?;
    Ok(Json(json!(rec)))
}

/// Applies an action in the writer; accepting also calls the spare hook.
pub(crate) async fn act(state: &AppState, id: i64, action: RecAction) -> Result<Json<Value>, ApiError> {
    let now = caretaker_shared::now_ms();
    let v = state
        .writer
        .run(move |c| {
            let accept = action == RecAction::Accept;
            let dismiss = matches!(action, RecAction::Dismiss { .. });
            let mut rec = records::act(c, id, &action, now)?;
            if dismiss {
                crate::predict::on_dismiss(c, &rec)?;
            }
            let mut reserved = Value::Null;
            if accept && let Some(spare) = crate::predict::on_accept(c, &rec)? {
                reserved = spare;
                // The hook may have moved the record on (to reserved).
                rec = records::get(c, id)?.ok_or(crate::store::StoreError::NoSuchRecommendation(id))?;
            }
            let mut v = json!(rec);
            if accept {
                v["reserved"] = reserved;
            }
            Ok(v)
        })
        .await?;
    Ok(Json(v))
}

async fn accept(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers).await?.require_staff()?;
    let id = path_id("recommendation", &id)?;
    act(&state, id, RecAction::Accept).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DismissBody {
    reason: String,
}

async fn dismiss(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers).await?.require_staff()?;
    let id = path_id("recommendation", &id)?;
    let b: DismissBody = json_body(&body)?;
    act(&state, id, RecAction::Dismiss { reason: b.reason }).await
}

async fn done(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers).await?.require_staff()?;
    let id = path_id("recommendation", &id)?;
    act(&state, id, RecAction::Done).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use tower::ServiceExt;

    use super::*;
    use crate::http::testing::{call_raw as call, state_with};
    use crate::predict::{Part, PartType, Raise, Urgency};

    async fn state(dir: &tempfile::TempDir) -> crate::http::testing::TestState {
        state_with(dir, |conn| {
            for (serial, urgency, customer) in [
                ("S1", Urgency::WithinDays(7), "acme"),
                ("S2", Urgency::ReplaceNow, "acme"),
                ("S3", Urgency::WithinDays(14), "other"),
            ] {
                crate::predict::records::raise(
                    conn,
                    &Raise {
                        agent_id: "a1".into(),
                        host: "db01".into(),
                        customer: customer.into(),
                        part_type: PartType::Disk,
                        part: Part {
                            model: "WDC WD20EFRX".into(),
                            serial: serial.into(),
                            slot: "/dev/sda".into(),
                            interface: "ata".into(),
                            capacity_bytes: Some(2_000_398_934_016),
                        },
                        reason: "second_rise_within_30d".into(),
                        evidence: json!({"reasons": ["second_rise_within_30d"]}),
                        risk: "high".into(),
                        urgency,
                        item_id: None,
                        at_ms: 1_000,
                    },
                )
                .unwrap();
            }
        })
        .await
    }

    fn ids(v: &Value) -> Vec<i64> {
        v["recommendations"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_i64().unwrap())
            .collect()
    }

    #[tokio::test]
    async fn lists_and_filters() {
        let dir = tempfile::tempdir().unwrap();
        let s = state(&dir).await;
        let (st, v) = call(&s, "GET", "/api/v1/recommendations", None).await;
        assert_eq!(st, StatusCode::OK);
        // Replace-now first, then the soonest due.
        assert_eq!(ids(&v), vec![2, 1, 3]);
        let (_, v) = call(
            &s,
            "GET",
            "/api/v1/recommendations?customer=acme&urgency=within_days",
            None,
        )
        .await;
        assert_eq!(ids(&v), vec![1]);
        let (_, v) = call(&s, "GET", "/api/v1/recommendations?status=open&host=db01", None).await;
        assert_eq!(ids(&v).len(), 3);
        let (st, v) = call(&s, "GET", "/api/v1/recommendations?urgency=soon", None).await;
        assert_eq!(st, StatusCode::BAD_REQUEST);
        assert!(v["reason"].as_str().unwrap().starts_with("urgency:"), "{v}");
        let (st, v) = call(&s, "GET", "/api/v1/recommendations?status=closed", None).await;
        assert_eq!(st, StatusCode::BAD_REQUEST);
        assert!(v["reason"].as_str().unwrap().starts_with("status:"), "{v}");
        let (st, v) = call(&s, "GET", "/api/v1/recommendations/2", None).await;
        assert_eq!(st, StatusCode::OK);
        assert_eq!(v["part"]["serial"], "S2");
        assert_eq!(v["urgency"], "replace_now");
    }

    #[tokio::test]
    async fn accept_done_and_dismiss() {
        let dir = tempfile::tempdir().unwrap();
        let s = state(&dir).await;
        let text = s.metrics.render().unwrap();
        assert!(
            text.contains("caretaker_recommendations_open{urgency=\"within_days\"} 2"),
            "{text}"
        );
        let (st, v) = call(&s, "POST", "/api/v1/recommendations/1/accept", None).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(v["status"], "accepted");
        assert_eq!(v["reserved"], Value::Null);
        let (st, v) = call(&s, "POST", "/api/v1/recommendations/1/done", None).await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(v["status"], "done");
        let (st, v) = call(
            &s,
            "POST",
            "/api/v1/recommendations/2/dismiss",
            Some(r#"{"reason": "vendor swaps it under warranty"}"#),
        )
        .await;
        assert_eq!(st, StatusCode::OK, "{v}");
        assert_eq!(v["status"], "dismissed");
        assert_eq!(v["dismissed_reason"], "vendor swaps it under warranty");
        // The gauge follows the writer's commits.
        let text = s.metrics.render().unwrap();
        assert!(
            text.contains("caretaker_recommendations_open{urgency=\"within_days\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("caretaker_recommendations_open{urgency=\"replace_now\"} 0"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn invalid_moves_bad_bodies_and_unknown_ids_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let s = state(&dir).await;
        // Done before accepted: a conflict naming the state.
        let (st, v) = call(&s, "POST", "/api/v1/recommendations/1/done", None).await;
        assert_eq!(st, StatusCode::CONFLICT, "{v}");
        assert_eq!(v["reason"], "a recommendation that is open cannot be marked done");
        call(&s, "POST", "/api/v1/recommendations/1/accept", None).await;
        let (st, v) = call(&s, "POST", "/api/v1/recommendations/1/accept", None).await;
        assert_eq!(st, StatusCode::CONFLICT);
        assert_eq!(v["reason"], "a recommendation that is accepted cannot be accepted");
        call(
            &s,
            "POST",
            "/api/v1/recommendations/3/dismiss",
            Some(r#"{"reason": "duplicate"}"#),
        )
        .await;
        let (st, v) = call(&s, "POST", "/api/v1/recommendations/3/accept", None).await;
        assert_eq!(st, StatusCode::CONFLICT);
        assert_eq!(v["reason"], "a recommendation that is dismissed cannot be accepted");

        // Bodies: the wrong field is named; an empty reason is refused.
        let (st, v) = call(
            &s,
            "POST",
            "/api/v1/recommendations/2/dismiss",
            Some(r#"{"reason": 5}"#),
        )
        .await;
        assert_eq!(st, StatusCode::BAD_REQUEST);
        assert_eq!(v["path"], "reason", "{v}");
        let (st, v) = call(&s, "POST", "/api/v1/recommendations/2/dismiss", Some("{}")).await;
        assert_eq!(st, StatusCode::BAD_REQUEST);
        assert!(v["reason"].as_str().unwrap().contains("`reason`"), "{v}");
        let (st, v) = call(
            &s,
            "POST",
            "/api/v1/recommendations/2/dismiss",
            Some(r#"{"reason": " "}"#),
        )
        .await;
        assert_eq!(st, StatusCode::BAD_REQUEST);
        assert_eq!(v["reason"], "dismissing needs a reason");
        let (st, _) = call(
            &s,
            "POST",
            "/api/v1/recommendations/2/dismiss",
            Some(r#"{"reason": "x", "by": 1}"#),
        )
        .await;
        assert_eq!(st, StatusCode::BAD_REQUEST);

        // Unknown or malformed ids.
        let (st, v) = call(&s, "GET", "/api/v1/recommendations/99", None).await;
        assert_eq!(st, StatusCode::NOT_FOUND);
        assert_eq!(v["reason"], "no recommendation 99");
        let (st, v) = call(&s, "POST", "/api/v1/recommendations/99/accept", None).await;
        assert_eq!(st, StatusCode::NOT_FOUND);
        assert_eq!(v["reason"], "no recommendation 99");
        let (st, _) = call(&s, "GET", "/api/v1/recommendations/x", None).await;
        assert_eq!(st, StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn spare_flow_accept_reserve_consume_replenish() {
        let dir = tempfile::tempdir().unwrap();
        let s = state(&dir).await;
        let ok = |(st, v): (StatusCode, Value)| {
            assert!(st.is_success(), "{st}: {v}");
            v
        };
        ok(call(
            &s,
            "PUT",
            "/api/v1/spares/models/WD40EFRX",
            Some(r#"{"part_type": "disk", "interface": "sata", "capacity_bytes": 4000000000000}"#),
        )
        .await);
        ok(call(
            &s,
            "PUT",
            "/api/v1/spares/stock/WD40EFRX/hq",
            Some(r#"{"quantity": 1, "min_stock": 1}"#),
        )
        .await);

        // Accepting reserves the one compatible spare (an `ata` disk takes a
        // `sata` spare at least as large).
        let v = ok(call(&s, "POST", "/api/v1/recommendations/2/accept", None).await);
        assert_eq!(v["status"], "reserved", "{v}");
        assert_eq!(v["reserved"]["model"], "WD40EFRX", "{v}");
        // None is left for the next: it stays accepted and says so.
        let v = ok(call(&s, "POST", "/api/v1/recommendations/1/accept", None).await);
        assert_eq!(v["status"], "accepted", "{v}");
        assert_eq!(v["reserved"], Value::Null, "{v}");

        // The service report that replaces the disk consumes the spare and
        // completes the recommendation; stock under its minimum opens one
        // replenishment request.
        let v = ok(call(
            &s,
            "POST",
            "/api/v1/service-reports",
            Some(
                r#"{"host": "db01", "mode": "on_site", "symptom": "reallocated sectors growing",
                    "work_done": "replaced the disk", "engineer": "kim", "minutes": 30,
                    "parts": [{"part_type": "disk", "slot": "/dev/sda", "old_model": "WDC WD20EFRX",
                               "old_serial": "S2", "new_model": "WD40EFRX", "new_serial": "N2"}]}"#,
            ),
        )
        .await);
        assert!(v["id"].as_i64().is_some(), "{v}");
        let v = ok(call(&s, "GET", "/api/v1/recommendations/2", None).await);
        assert_eq!(v["status"], "done", "{v}");
        let v = ok(call(&s, "GET", "/api/v1/spares", None).await);
        assert_eq!(v["stock"][0]["quantity"], 0, "{v}");
        assert_eq!(v["stock"][0]["reserved"], 0, "{v}");
        let v = ok(call(&s, "GET", "/api/v1/spares/replenishment", None).await);
        assert_eq!(v["requests"].as_array().map(Vec::len), Some(1), "{v}");
        assert_eq!(v["requests"][0]["quantity"], 1, "{v}");

        // Parts received: recommendation 1 can now reserve one; dismissing
        // it puts the spare back.
        ok(call(
            &s,
            "PUT",
            "/api/v1/spares/stock/WD40EFRX/hq",
            Some(r#"{"quantity": 2, "min_stock": 1}"#),
        )
        .await);
        let v = ok(call(&s, "GET", "/api/v1/spares/replenishment", None).await);
        assert_eq!(v["requests"].as_array().map(Vec::len), Some(0), "{v}");
        let v = ok(call(&s, "POST", "/api/v1/recommendations/3/accept", None).await);
        assert_eq!(v["status"], "reserved", "{v}");
        let v = ok(call(&s, "GET", "/api/v1/spares", None).await);
        assert_eq!(v["stock"][0]["available"], 1, "{v}");
        ok(call(
            &s,
            "POST",
            "/api/v1/recommendations/3/dismiss",
            Some(r#"{"reason": "customer replaces it"}"#),
        )
        .await);
        let v = ok(call(&s, "GET", "/api/v1/spares", None).await);
        assert_eq!(v["stock"][0]["available"], 2, "{v}");
    }

    #[tokio::test]
    async fn needs_the_api_token() {
        let dir = tempfile::tempdir().unwrap();
        let s = state(&dir).await;
        let req = Request::builder()
            .uri("/api/v1/recommendations")
            .body(Body::empty())
            .unwrap();
        let resp = super::super::app(s.clone()).oneshot(req).await.unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    }
}
