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
use crate::writer::Writer;

pub mod agents;
pub mod assets;
pub mod cases;
pub mod conns;
pub mod csrf;
pub mod disks;
pub mod enroll;
pub mod error;
pub mod health;
pub mod hosts;
pub mod inspection;
pub mod limits;
pub mod login;
pub mod maintenance;
pub mod metrics_auth;
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
    /// The store's read connections (`[store] readers`), for API queries
    /// and pages: reads run side by side, none waits behind another's lock.
    pub reader: crate::store::Readers,
    /// The live detection task, fed with every committed report; `None`
    /// where detection does not run (handler tests).
    pub detect: Option<crate::detect::live::DetectHandle>,
    /// Contracts, engineers and users in force (reloaded on change).
    pub contracts: crate::contracts::Shared,
    /// Login throttling and the password check limiter (sessions live in
    /// the store: [`crate::sessions`]).
    pub login: Arc<crate::login_guard::LoginGuard>,
}

pub fn app(state: AppState) -> Router {
    let limits = Arc::new(limits::RequestLimits::new(&state.config, state.metrics.clone()));
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
        .merge(health::router())
        .route("/metrics", get(metrics))
        .layer(axum::middleware::from_fn_with_state(state.clone(), csrf::api_writes))
        .layer(axum::middleware::from_fn(no_nul_in_uri))
        .layer(axum::middleware::from_fn_with_state(limits, limits::limit))
        .with_state(state)
}

async fn metrics(
    axum::extract::State(state): axum::extract::State<AppState>,
    headers: HeaderMap,
) -> Result<impl axum::response::IntoResponse, ApiError> {
    metrics_auth::check(&state, &headers).await?;
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

/// The query string decoded into `T`; a query the API refuses answers with
/// the JSON error naming what was wrong, like every other refusal (axum's own
/// `Query` answers plain text).
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<T, S> axum::extract::FromRequestParts<S> for Query<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, _: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::try_from_uri(&parts.uri)
            .map(|axum::extract::Query(q)| Query(q))
            .map_err(|e| ApiError::BadRequest(format!("query string: {}", e.body_text())))
    }
}

/// Refuses a request whose path or query holds a NUL character, naming
/// where: PostgreSQL cannot keep one in text, and no name, id or filter of
/// ours has one (as for bodies, see [`json_body`]). A URI carries a NUL only
/// percent-encoded, as `%00`.
async fn no_nul_in_uri(req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    use axum::response::IntoResponse;
    const NUL: &str = "%00";
    let uri = req.uri();
    let place = if uri.path().contains(NUL) {
        Some("path".to_string())
    } else {
        uri.query().and_then(|q| {
            q.split('&').find(|pair| pair.contains(NUL)).map(|pair| {
                match pair.split_once('=').map(|(name, _)| name).filter(|n| !n.contains(NUL)) {
                    Some(name) => format!("query parameter {name}"),
                    None => "query parameter name".to_string(),
                }
            })
        })
    };
    match place {
        Some(place) => ApiError::BadRequest(format!("{place}: {}", caretaker_shared::wire::NUL_REASON)).into_response(),
        None => next.run(req).await,
    }
}

/// A page size from the query: `default` when absent; refused when it is 0 or
/// above `max` (the document states both).
pub(crate) fn page_limit(limit: Option<u32>, default: u32, max: u32) -> Result<u32, ApiError> {
    match limit {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::BadRequest(format!("limit: {n} is not between 1 and {max}"))),
    }
}

/// Parses a JSON body, naming the field that is wrong.
pub(crate) fn json_body<T: serde::de::DeserializeOwned>(body: &axum::body::Bytes) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(de).map_err(|e| ApiError::Malformed {
        path: e.path().to_string(),
        reason: e.inner().to_string(),
    })?;
    // Refused on every store alike: PostgreSQL cannot keep a NUL in text.
    if let Some(path) = caretaker_shared::wire::nul_in_text(body) {
        return Err(ApiError::Malformed {
            path,
            reason: caretaker_shared::wire::NUL_REASON.into(),
        });
    }
    Ok(value)
}

/// A numeric id from the path.
pub(crate) fn path_id(what: &str, id: &str) -> Result<i64, ApiError> {
    id.parse().map_err(|e| id_error(what, id, &e, ""))
}

/// Why a path id did not parse: a number too large for any id names nothing
/// (404, like any id not in the store); anything else is not an id at all.
pub(crate) fn id_error(what: &str, id: &str, e: &std::num::ParseIntError, hint: &str) -> ApiError {
    use std::num::IntErrorKind;
    match e.kind() {
        IntErrorKind::PosOverflow | IntErrorKind::NegOverflow => ApiError::NotFound(format!("no {what} {id}")),
        _ => ApiError::BadRequest(format!("{what} id: {id:?} is not a number{hint}")),
    }
}

/// Runs a store read on one of the read connections, off the async workers
/// (SQLite reads block).
pub(crate) async fn read<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&crate::store::sql::Db) -> Result<T, crate::store::StoreError> + Send + 'static,
) -> Result<T, ApiError> {
    Ok(crate::store::read_on(&state.reader, f).await?)
}

#[cfg(test)]
mod tests {
    use super::testing::{get, state};
    use axum::http::StatusCode;

    /// A NUL character in a path or a query parameter is the client's
    /// mistake on every store: refused with 400 naming where it was, never
    /// sent to a database that cannot keep one in text.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_nul_character_in_a_path_or_query_parameter_is_refused_by_where_it_is() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let s = state(&dir).await;
        for (uri, named) in [
            ("/api/v1/assets/db%0001", "path"),
            ("/api/v1/assets/db%0001/history", "path"),
            ("/api/v1/cases?host=db%0001", "query parameter host"),
            ("/api/v1/queue?status=open&customer=%00", "query parameter customer"),
            ("/api/v1/findings?%00=x", "query parameter"),
        ] {
            let (status, body) = get(&s, uri).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {body}");
            let text = body.to_string();
            assert!(text.contains(named) && text.contains("NUL"), "{uri}: {text}");
        }
        // The same requests without it are answered as usual.
        assert_eq!(get(&s, "/api/v1/cases?host=db01").await.0, StatusCode::OK);
        assert_eq!(get(&s, "/api/v1/assets/db01/history").await.0, StatusCode::OK);
    }
}
