//! Spare parts and service reports (see [`crate::spares`]).
//!
//! - `GET /api/v1/spares`: models and stock lines (quantity, minimum,
//!   reserved, available); `PUT /api/v1/spares/models/{model}` adds or
//!   replaces a model; `PUT /api/v1/spares/stock/{model}/{location}` with
//!   `{"quantity", "min_stock"}` sets a stock line (a count, or parts received).
//! - `GET /api/v1/spares/replenishment?all=true`: replenishment requests.
//! - `GET /api/v1/spares/coverage?customer=`: the coverage report.
//! - `POST /api/v1/service-reports`, `GET /api/v1/service-reports?host=`.
//!
//! All need an API token or a session. The stock and the replenishment
//! requests are the provider's: staff only. A customer's user gets the
//! coverage of their own customer's assets (whatever `?customer=` says) and
//! the service reports on their own hosts; every change is for staff.

use axum::body::Bytes;
use axum::extract::{Path, State};

use super::Query;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

use super::AppState;
use super::error::ApiError;
use super::hosts::{authorize, may_see_host_name};
use super::{json_body, read};
use crate::spares::{self, ServiceReport, SpareModel};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/spares", get(list))
        .route("/api/v1/spares/models/{model}", put(put_model))
        .route("/api/v1/spares/stock/{model}/{location}", put(put_stock))
        .route("/api/v1/spares/replenishment", get(replenishment))
        .route("/api/v1/spares/coverage", get(coverage))
        .route("/api/v1/service-reports", get(list_reports).post(add_report))
}

async fn list(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers).await?.require_staff()?;
    let (models, stock) = read(&state, |c| Ok((spares::models(c)?, spares::stock(c)?))).await?;
    Ok(Json(json!({ "models": models, "stock": stock })))
}

async fn put_model(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(model): Path<String>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers).await?.require_staff()?;
    let mut m: SpareModel = json_body(&body)?;
    m.model = model;
    let v = state
        .writer
        .run(move |c| {
            spares::put_model(c, &m)?;
            Ok(json!(m))
        })
        .await?;
    Ok(Json(v))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StockBody {
    quantity: i64,
    #[serde(default)]
    min_stock: i64,
}

async fn put_stock(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path((model, location)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers).await?.require_staff()?;
    let b: StockBody = json_body(&body)?;
    let now = caretaker_shared::now_ms();
    let v = state
        .writer
        .run(move |c| {
            spares::set_stock(c, &model, &location, b.quantity, b.min_stock, now)?;
            let line = spares::stock(c)?
                .into_iter()
                .find(|s| s.model == model && s.location == location);
            Ok(json!(line))
        })
        .await?;
    Ok(Json(v))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AllQuery {
    all: Option<bool>,
}

async fn replenishment(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<AllQuery>,
) -> Result<Json<Value>, ApiError> {
    authorize(&state, &headers).await?.require_staff()?;
    let all = q.all.unwrap_or(false);
    let r = read(&state, move |c| spares::replenishments(c, all)).await?;
    Ok(Json(json!({ "requests": r })))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CustomerQuery {
    customer: Option<String>,
}

async fn coverage(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<CustomerQuery>,
) -> Result<Json<Value>, ApiError> {
    let principal = authorize(&state, &headers).await?;
    let customer = principal.scope().map(str::to_string).or(q.customer);
    let cov = read(&state, move |c| spares::coverage(c, customer.as_deref())).await?;
    Ok(Json(json!(cov)))
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HostQuery {
    host: Option<String>,
}

async fn list_reports(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<HostQuery>,
) -> Result<Json<Value>, ApiError> {
    let principal = authorize(&state, &headers).await?;
    let mut r = read(&state, move |c| spares::service_reports(c, q.host.as_deref())).await?;
    r.retain(|s| may_see_host_name(&state, &principal, &s.host));
    Ok(Json(json!({ "service_reports": r })))
}

async fn add_report(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    authorize(&state, &headers).await?.require_staff()?;
    let report: ServiceReport = json_body(&body)?;
    let problems = report.problems();
    if !problems.is_empty() {
        return Err(ApiError::BadRequest(problems.join("; ")));
    }
    // Spares are taken from the host's site first.
    let site = state
        .fleet
        .snapshot()
        .iter()
        .find(|h| h.host == report.host)
        .map(|h| h.label("site").to_string())
        .unwrap_or_default();
    let now = caretaker_shared::now_ms();
    let v = state
        .writer
        .run(move |c| {
            let id = spares::record_service_report(c, &report, &site, now)?;
            Ok(json!({ "id": id }))
        })
        .await?;
    Ok((StatusCode::CREATED, Json(v)))
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;
    use serde_json::json;

    use crate::http::testing::{call, get, state};

    #[tokio::test]
    async fn spares_and_service_reports_through_the_api() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let state = state(&dir).await;
        let (s, v) = call(
            &state,
            "PUT",
            "/api/v1/spares/models/ST8000NM",
            Some(json!({"part_type": "disk", "interface": "sata", "capacity_bytes": 8_000_000_000_000_u64})),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        // Bad input names what is wrong and changes nothing.
        for (method, uri, body, needle) in [
            (
                "PUT",
                "/api/v1/spares/models/X",
                json!({"part_type": "disk", "size": 1}),
                "size",
            ),
            (
                "PUT",
                "/api/v1/spares/models/X",
                json!({"model": "Y", "part_type": "disk"}),
                "model",
            ),
            (
                "PUT",
                "/api/v1/spares/stock/ST8000NM/hq",
                json!({"quantity": -1}),
                "negative",
            ),
            (
                "PUT",
                "/api/v1/spares/models/X",
                json!({"part_type": "disk", "capacity_bytes": 9_223_372_036_854_775_808_u64}),
                "capacity_bytes",
            ),
            (
                "PUT",
                "/api/v1/spares/stock/ST8000NM/hq",
                json!({"quantity": "two"}),
                "quantity",
            ),
            (
                "POST",
                "/api/v1/service-reports",
                json!({"host": "db01", "mode": "by phone", "symptom": "s", "work_done": "w", "engineer": "kim", "minutes": 5}),
                "mode",
            ),
            ("POST", "/api/v1/service-reports", json!({"host": "db01"}), "mode"),
        ] {
            let (s, v) = call(&state, method, uri, Some(body)).await;
            assert_eq!(s, StatusCode::BAD_REQUEST, "{uri}: {v}");
            assert!(v.to_string().contains(needle), "{needle}: {v}");
        }
        // Stock of a model never added: nothing of that name (found by schemathesis).
        let (s, v) = call(
            &state,
            "PUT",
            "/api/v1/spares/stock/NOPE/hq",
            Some(json!({"quantity": 1})),
        )
        .await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{v}");
        assert!(v.to_string().contains("NOPE"), "{v}");
        let (_, v) = get(&state, "/api/v1/spares").await;
        assert_eq!(v["models"].as_array().map(Vec::len), Some(1), "{v}");
        assert_eq!(v["stock"].as_array().map(Vec::len), Some(0), "{v}");
        assert!(
            get(&state, "/api/v1/service-reports").await.1["service_reports"]
                .as_array()
                .is_some_and(Vec::is_empty)
        );

        let (s, v) = call(
            &state,
            "PUT",
            "/api/v1/spares/stock/ST8000NM/hq",
            Some(json!({"quantity": 1, "min_stock": 1})),
        )
        .await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["available"], 1, "{v}");
        let (s, v) = call(
            &state,
            "POST",
            "/api/v1/service-reports",
            Some(
                json!({"host": "db01", "mode": "on_site", "symptom": "sdb failing", "work_done": "replaced sdb",
                        "engineer": "kim", "minutes": 40,
                        "parts": [{"part_type": "disk", "slot": "sdb", "old_serial": "ZC1", "new_model": "ST8000NM",
                                   "new_serial": "ZC9"}]}),
            ),
        )
        .await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
        let (_, v) = get(&state, "/api/v1/spares/replenishment").await;
        assert_eq!(v["requests"][0]["model"], "ST8000NM", "{v}");
        assert_eq!(v["requests"].as_array().map(Vec::len), Some(1), "{v}");
        let (_, v) = get(&state, "/api/v1/service-reports?host=db01").await;
        assert_eq!(v["service_reports"][0]["parts"][0]["new_serial"], "ZC9", "{v}");
        let (s, v) = get(&state, "/api/v1/spares/coverage?customer=acme").await;
        assert_eq!(s, StatusCode::OK, "{v}");
        assert_eq!(v["ratio"], 1.0, "no assets with inventory: nothing uncovered: {v}");
    }
}
