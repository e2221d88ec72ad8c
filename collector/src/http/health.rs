//! `GET /healthz`: `ok` while the collector can take reports; 503 with
//! `Retry-After` and the reason while the store cannot write (a full disk,
//! an I/O error, the writer stopped), which is when ingest answers 503 too.
//! A store that failed is probed with a real write on each call, so it
//! reads healthy again as soon as it can write, without waiting for traffic
//! (which a load balancer would hold back while this answers 503).

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::AppState;
use super::error::ApiError;

pub fn router() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz))
}

async fn healthz(State(state): State<AppState>) -> Response {
    if state.writer.failing().is_some() {
        if let Err(e) = state.writer.probe().await {
            return ApiError::Unavailable(e.to_string()).into_response();
        }
    }
    "ok\n".into_response()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use axum::body::Body;
    use axum::http::{Request, StatusCode, header};
    use tower::ServiceExt;

    #[tokio::test]
    async fn healthz_answers_ok_while_the_store_writes() {
        let dir = tempfile::tempdir().unwrap();
        let s = super::super::testing::state(&dir).await;
        let app = super::super::app(s.clone());
        let resp = app
            .oneshot(Request::get("/healthz").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(resp.headers().get(header::RETRY_AFTER).is_none());
    }
}
