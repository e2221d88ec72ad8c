//! Who may scrape `/metrics`. The page names every customer, host, site,
//! serial number, OS and kernel, so with `[metrics] auth = "bearer"` (the
//! default) a scrape must carry `Authorization: Bearer <token>` with the
//! token in the data directory's `metrics-token` (what Prometheus sends with
//! `authorization: {credentials_file: ...}`). The file is read at every
//! scrape, so writing a new token there applies at once; it is compared in
//! constant time.

use axum::http::HeaderMap;

use super::error::ApiError;
use super::{AppState, bearer};
use crate::config::MetricsAuth;
use crate::pki::{self, Paths};

/// Ok when the request may read `/metrics`; 401 (with why) when not.
pub async fn check(state: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    if state.config.metrics.auth == MetricsAuth::None {
        return Ok(());
    }
    let Some(given) = bearer(headers).map(str::to_string) else {
        return Err(ApiError::Unauthorized(
            "/metrics needs `Authorization: Bearer <token>` with the token in the data directory's metrics-token"
                .into(),
        ));
    };
    let path = Paths::new(&state.config.data_dir).metrics_token;
    let expected = tokio::task::spawn_blocking(move || pki::read_token(&path))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| ApiError::Internal(format!("the metrics token cannot be read: {e}")))?;
    // An empty file would let an empty token in: refuse every scrape instead.
    if !expected.is_empty() && crate::auth::ct_eq(given.as_bytes(), expected.as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized("wrong metrics token".into()))
    }
}

/// Makes `metrics-token` for a data directory made before it existed, so an
/// upgraded collector still refuses anonymous scrapes. Answers whether it
/// made one.
pub fn ensure_token(paths: &Paths) -> Result<bool, pki::PkiError> {
    if paths.metrics_token.exists() {
        return Ok(false);
    }
    pki::write_metrics_token(&paths.metrics_token)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::Arc;

    use axum::http::StatusCode;

    use super::*;
    use crate::config::Config;
    use crate::http::testing::{self, send};

    /// A state whose data directory holds `metrics-token` = `token`.
    async fn state(dir: &tempfile::TempDir, auth: MetricsAuth, token: &str) -> crate::http::testing::TestState {
        let mut s = testing::state(dir).await;
        s.config = Arc::new(Config {
            data_dir: dir.path().to_path_buf(),
            metrics: crate::config::MetricsConfig { auth },
            ..Config::default()
        });
        std::fs::write(dir.path().join("metrics-token"), format!("{token}\n")).unwrap();
        s
    }

    #[tokio::test]
    async fn an_unauthenticated_scrape_is_refused_with_a_json_reason() {
        let dir = tempfile::tempdir().unwrap();
        let s = state(&dir, MetricsAuth::Bearer, "scrape-secret").await;
        for headers in [
            vec![],
            vec![("authorization", "Bearer wrong-secret")],
            vec![("authorization", "Bearer scrape-secre")],
            vec![("authorization", "Basic c2NyYXBlLXNlY3JldA==")],
            // The API token is not a metrics token.
            vec![("authorization", "Bearer api-token-for-tests")],
        ] {
            let r = send(&s, "GET", "/metrics", &headers, "").await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{headers:?}");
            let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
            assert_eq!(v["error"], "unauthorized", "{}", r.body);
            assert!(v["reason"].as_str().is_some_and(|r| r.contains("token")), "{}", r.body);
            assert!(!r.body.contains("caretaker_"), "{}", r.body);
        }
        let r = send(&s, "GET", "/metrics", &[("authorization", "Bearer scrape-secret")], "").await;
        assert_eq!(r.status, StatusCode::OK, "{}", r.body);
        assert!(r.body.contains("caretaker_hosts_known"), "{}", r.body);

        // A new token in the file applies at the next scrape.
        std::fs::write(dir.path().join("metrics-token"), "rotated\n").unwrap();
        let r = send(&s, "GET", "/metrics", &[("authorization", "Bearer scrape-secret")], "").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED);
        let r = send(&s, "GET", "/metrics", &[("authorization", "Bearer rotated")], "").await;
        assert_eq!(r.status, StatusCode::OK);
    }

    #[tokio::test]
    async fn an_empty_or_missing_token_file_refuses_every_scrape() {
        let dir = tempfile::tempdir().unwrap();
        let s = state(&dir, MetricsAuth::Bearer, "").await;
        for auth in ["Bearer ", "Bearer x"] {
            let r = send(&s, "GET", "/metrics", &[("authorization", auth)], "").await;
            assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{auth}");
        }
        std::fs::remove_file(dir.path().join("metrics-token")).unwrap();
        let r = send(&s, "GET", "/metrics", &[("authorization", "Bearer x")], "").await;
        assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(ensure_token(&Paths::new(dir.path())).unwrap());
        assert!(!ensure_token(&Paths::new(dir.path())).unwrap());
        let token = pki::read_token(&dir.path().join("metrics-token")).unwrap();
        let auth = format!("Bearer {token}");
        let r = send(&s, "GET", "/metrics", &[("authorization", &auth)], "").await;
        assert_eq!(r.status, StatusCode::OK);
    }

    #[tokio::test]
    async fn auth_none_leaves_metrics_open() {
        let dir = tempfile::tempdir().unwrap();
        let s = state(&dir, MetricsAuth::None, "scrape-secret").await;
        let r = send(&s, "GET", "/metrics", &[], "").await;
        assert_eq!(r.status, StatusCode::OK);
    }
}
