//! The collector's HTTP surface, one module per resource. [`app`] builds the
//! whole router from the state, apart from `main`, so tests drive it without a
//! socket.

use std::sync::Arc;

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::get;

use crate::config::Config;
use crate::fleet::Fleet;
use crate::metrics::Metrics;
use crate::store::Writer;

pub mod agents;
pub mod assets;
pub mod cases;
pub mod disks;
pub mod enroll;
pub mod error;
pub mod hosts;
pub mod inspection;
pub mod login;
pub mod maintenance;
pub mod openapi;
pub mod pages;
pub mod queue;
pub mod recommendations;
pub mod reports;
#[cfg(test)]
mod scoping;
pub mod spares;
#[cfg(test)]
pub(crate) mod testing;

use error::ApiError;

#[derive(Clone)]
pub struct AppState {
    pub fleet: Arc<Fleet>,
    pub writer: Writer,
    pub metrics: Arc<Metrics>,
    pub config: Arc<Config>,
    /// Read-only connection pool of one, for API queries that need the store.
    pub reader: Arc<std::sync::Mutex<rusqlite::Connection>>,
    /// The live detection task, fed with every committed report; `None`
    /// where detection does not run (handler tests).
    pub detect: Option<crate::detect::live::DetectHandle>,
    /// Contracts, engineers and users in force (reloaded on change).
    pub contracts: crate::contracts::Shared,
    /// Logged-in web sessions.
    pub sessions: Arc<crate::auth::Sessions>,
}

pub fn app(state: AppState) -> Router {
    let limit = state.config.ingest.max_concurrent_requests;
    Router::new()
        .merge(reports::router())
        .merge(enroll::router())
        .merge(agents::router())
        .merge(hosts::router())
        .merge(disks::router())
        .merge(assets::router())
        .merge(cases::router())
        .merge(queue::router())
        .merge(maintenance::router())
        .merge(spares::router())
        .merge(recommendations::router())
        .merge(inspection::router())
        .merge(login::router())
        .merge(openapi::router())
        .merge(pages::router())
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .layer(tower::limit::ConcurrencyLimitLayer::new(limit))
        .with_state(state)
}

async fn metrics(
    axum::extract::State(state): axum::extract::State<AppState>,
) -> Result<impl axum::response::IntoResponse, ApiError> {
    let m = state.metrics.clone();
    let text = tokio::task::spawn_blocking(move || m.render())
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok((
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    ))
}

/// The bearer token of a request, if any.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(axum::http::header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

/// Parses a JSON body, naming the field that is wrong.
pub(crate) fn json_body<T: serde::de::DeserializeOwned>(body: &axum::body::Bytes) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| ApiError::Malformed {
        path: e.path().to_string(),
        reason: e.inner().to_string(),
    })
}

/// A numeric id from the path.
pub(crate) fn path_id(what: &str, id: &str) -> Result<i64, ApiError> {
    id.parse()
        .map_err(|_| ApiError::BadRequest(format!("{what} id: {id:?} is not a number")))
}

/// Runs a store read on the reader connection, off the async workers
/// (SQLite reads block).
pub(crate) async fn read<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&rusqlite::Connection) -> Result<T, crate::store::StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    Ok(crate::store::read_on(&state.reader, f).await?)
}
