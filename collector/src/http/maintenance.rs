//! Maintenance windows and the unmapped list (see [`crate::cases::hold`]).
//!
//! - `GET /api/v1/maintenance` lists the windows in progress or to come
//!   (`?all=true`: ended ones too; `?customer=`); `GET /api/v1/maintenance/{id}`
//!   gives one with the signals it held.
//! - `POST /api/v1/maintenance` adds one: `{"customer", "host"?, "starts_at",
//!   "ends_at", "reason"}`, times as RFC 3339 or ms since the epoch.
//! - `DELETE /api/v1/maintenance/{id}` ends it now (removes it if it has not
//!   started); what still fires opens at the next detection tick.
//! - `GET /api/v1/unmapped` lists signals that named no known asset;
//!   `POST /api/v1/unmapped/{id}/map` with `{"host": NAME}` maps one to a
//!   known host, and every later signal with the same name with it.
//!
//! All need an API token or a session. A customer's user reads only the
//! windows of their own customer (another customer's window is "not
//! found"); the unmapped list and every change are for staff.

use axum::body::Bytes;
use axum::extract::{Path, State};

use super::Query;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::error::ApiError;
use super::hosts::authorize;
use super::{AppState, json_body, path_id, read};
use crate::cases::hold::{self, Held, WindowSpec};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/maintenance", get(list).post(add))
        .route("/api/v1/maintenance/{id}", get(one).delete(end))
        .route("/api/v1/unmapped", get(unmapped))
        .route("/api/v1/unmapped/{id}/map", post(map))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    customer: Option<String>,
    all: Option<bool>,
}

async fn list(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let principal = authorize(&state, &headers).await?;
    let after = (!q.all.unwrap_or(false)).then(caretaker_shared::now_ms);
    // A customer sees its own windows whatever it asks for.
    let customer = principal.scope().map(str::to_string).or(q.customer);
    let windows = read(&state, move |c| hold::windows(c, after, customer.as_deref())).await?;
    Ok(Json(json!({ "windows": windows })))
}

async fn one(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let principal = authorize(&state, &headers).await?;
    let id = path_id("maintenance window", &id)?;
    let (w, held) = read(&state, move |c| {
        Ok((hold::window(c, id)?, hold::held_by(c, Held::Maintenance, id)?))
    })
    .await?;
    // Another customer's window is answered like a missing one.
    let w = w
        .filter(|w| principal.may_see(&w.customer))
        .ok_or_else(|| ApiError::NotFound(format!("no maintenance window {id}")))?;
    let mut v = json!(w);
    v["held"] = json!(held);
    Ok(Json(v))
}

async fn add(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let who = authorize(&state, &headers).await?;
    who.require_staff()?;
    let spec: WindowSpec = json_body(&body)?;
    let v = add_window(&state, &spec, &who.name).await?;
    Ok((StatusCode::CREATED, Json(json!(v))))
}

/// Adds the window `spec` describes, made by `who` (a user, or the API
/// token's name): the API's and the maintenance page's one way to do it.
pub(crate) async fn add_window(
    state: &AppState,
    spec: &WindowSpec,
    who: &str,
) -> Result<Option<crate::store::holds::Window>, ApiError> {
    let window = spec.window(who).map_err(ApiError::BadRequest)?;
    let now = caretaker_shared::now_ms();
    Ok(state
        .writer
        .run(move |c| {
            let id = hold::add_window(c, &window, now)?;
            hold::window(c, id)
        })
        .await?)
}

async fn end(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers).await?.require_staff()?;
    let id = path_id("maintenance window", &id)?;
    let now = caretaker_shared::now_ms();
    let v = state
        .writer
        .run(move |c| {
            let before = hold::end_window(c, id, now)?;
            let after = hold::window(c, id)?;
            Ok(json!({ "ended": after.is_some(), "removed": after.is_none(), "window": after.unwrap_or(before) }))
        })
        .await?;
    Ok(Json(v))
}

async fn unmapped(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    // Unmapped signals name no known asset, so no customer of their own.
    authorize(&state, &headers).await?.require_staff()?;
    let held = read(&state, |c| hold::list_held(c, Some(Held::Unmapped), None)).await?;
    Ok(Json(json!({ "unmapped": held })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MapBody {
    host: String,
}

async fn map(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers).await?.require_staff()?;
    let id = path_id("unmapped signal", &id)?;
    let MapBody { host } = json_body(&body)?;
    let v = state
        .writer
        .run(move |c| {
            let held = hold::map_unmapped(c, id, &host)?;
            Ok(json!({ "mapped": held, "host": host }))
        })
        .await?;
    Ok(Json(v))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use axum::http::StatusCode;

    use crate::http::testing::{self, send};

    #[tokio::test]
    async fn customers_read_but_do_not_change() {
        let dir = tempfile::tempdir().unwrap();
        let state = testing::state(&dir).await;
        testing::set_users(&state);
        let window = r#"{"customer":"acme","host":"db01","starts_at":"2030-01-01T00:00:00Z","ends_at":"2030-01-01T02:00:00Z","reason":"patching"}"#;
        let json = ("content-type", "application/json");
        let carol = ("authorization", "Bearer carol-token");
        let ana = ("authorization", "Bearer ana-token");

        let r = send(&state, "GET", "/api/v1/maintenance", &[carol], "").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        for (method, uri, body) in [
            ("POST", "/api/v1/maintenance", window),
            ("DELETE", "/api/v1/maintenance/1", ""),
            ("POST", "/api/v1/unmapped/1/map", r#"{"host":"db01"}"#),
            ("PUT", "/api/v1/spares/models/ST4000", "{}"),
            ("PUT", "/api/v1/spares/stock/ST4000/hq", "{}"),
            ("POST", "/api/v1/service-reports", "{}"),
            ("POST", "/api/v1/recommendations/1/accept", "{}"),
            ("POST", "/api/v1/recommendations/1/dismiss", "{}"),
            ("POST", "/api/v1/recommendations/1/done", "{}"),
        ] {
            let r = send(&state, method, uri, &[carol, json], body).await;
            assert_eq!(r.status, StatusCode::FORBIDDEN, "{method} {uri}: {}", r.body);
            assert!(r.body.contains("needs an engineer or a manager"), "{}", r.body);
        }

        // Staff may; a bad token may not.
        let r = send(&state, "POST", "/api/v1/maintenance", &[ana, json], window).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let r = send(&state, "GET", "/api/v1/maintenance", &[carol], "").await;
        assert!(r.body.contains("patching"), "{}", r.body);
        let r = send(
            &state,
            "POST",
            "/api/v1/maintenance",
            &[("authorization", "Bearer nobody"), json],
            window,
        )
        .await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
        let r = send(&state, "POST", "/api/v1/maintenance", &[json], window).await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{}", r.body);
    }

    #[tokio::test]
    async fn a_window_made_by_a_user_records_the_user_not_api() {
        let dir = tempfile::tempdir().unwrap();
        let state = testing::state(&dir).await;
        testing::set_users(&state);
        let window = r#"{"customer":"acme","host":"db01","starts_at":"2030-01-01T00:00:00Z","ends_at":"2030-01-01T02:00:00Z","reason":"patching"}"#;
        let json = ("content-type", "application/json");
        let ana = ("authorization", "Bearer ana-token");
        let r = send(&state, "POST", "/api/v1/maintenance", &[ana, json], window).await;
        assert_eq!(r.status, StatusCode::CREATED, "{}", r.body);
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["created_by"], "ana", "{v}");
        // The machine token is named by its name in the store.
        let token = format!("Bearer {}", testing::API_TOKEN);
        let r = send(
            &state,
            "POST",
            "/api/v1/maintenance",
            &[("authorization", &token), json],
            window,
        )
        .await;
        let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
        assert_eq!(v["created_by"], "api:tests", "{v}");
    }
}
