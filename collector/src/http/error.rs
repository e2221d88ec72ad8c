//! The API's one error type. Client errors carry what was wrong (and where)
//! and are not logged as errors; internal errors are logged once and answered
//! with a generic body.

use axum::Json;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use caretaker_shared::wire::WireError;
use serde_json::json;

#[derive(Debug)]
pub enum ApiError {
    Unauthorized(String),
    /// Known, but not allowed to do this.
    Forbidden(String),
    Malformed {
        path: String,
        reason: String,
    },
    Invalid(Vec<WireError>),
    TooLarge(String),
    UnsupportedEncoding(String),
    Duplicate {
        seq: u64,
        last_seq: u64,
    },
    NotFound(String),
    BadRequest(String),
    /// The request is valid but the resource's state does not allow it.
    Conflict(String),
    /// The request body did not arrive in time (answered 408, connection closed).
    Timeout(String),
    /// The store cannot write now (disk full, the writer stopping): answered
    /// 503 with `Retry-After`, so agents keep the report and retry.
    Unavailable(String),
    Internal(String),
    /// An agent whose credential the operator revoked: 401 with its own
    /// `error`, so the agent can say so in its log.
    Revoked(String),
    /// A report or enrollment claiming another identity than the agent's:
    /// 403 naming the field.
    Identity {
        path: String,
        reason: String,
    },
    /// Too many requests from this source or in all; retry after the delay.
    RateLimited {
        reason: String,
        retry_after_secs: u64,
    },
}

/// Seconds a client is asked to wait (`Retry-After`) when the collector
/// cannot take its request now.
pub const RETRY_AFTER_SECS: u64 = 30;

impl ApiError {
    /// The `reason` label for `caretaker_ingest_reports_rejected`.
    pub fn reject_reason(&self) -> Option<&'static str> {
        Some(match self {
            ApiError::Unauthorized(_) | ApiError::Revoked(_) => "unauthorized",
            ApiError::Identity { .. } => "identity",
            ApiError::Malformed { .. } | ApiError::BadRequest(_) => "malformed",
            ApiError::Invalid(_) => "invalid",
            ApiError::TooLarge(_) => "too_large",
            ApiError::UnsupportedEncoding(_) => "unsupported_encoding",
            ApiError::Internal(_) => "internal",
            ApiError::Duplicate { .. }
            | ApiError::NotFound(_)
            | ApiError::Conflict(_)
            | ApiError::Forbidden(_)
            | ApiError::Timeout(_)
            | ApiError::Unavailable(_)
            | ApiError::RateLimited { .. } => {
                return None;
            }
        })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            ApiError::Unauthorized(reason) => (
                StatusCode::UNAUTHORIZED,
                json!({"error": "unauthorized", "reason": reason}),
            ),
            ApiError::Forbidden(reason) => (StatusCode::FORBIDDEN, json!({"error": "forbidden", "reason": reason})),
            ApiError::Revoked(reason) => (StatusCode::UNAUTHORIZED, json!({"error": "revoked", "reason": reason})),
            ApiError::Identity { path, reason } => (
                StatusCode::FORBIDDEN,
                json!({"error": "forbidden", "path": path, "reason": reason}),
            ),
            ApiError::RateLimited {
                reason,
                retry_after_secs,
            } => {
                let body = json!({"error": "rate_limited", "reason": reason, "retry_after_secs": retry_after_secs});
                return (
                    StatusCode::TOO_MANY_REQUESTS,
                    [(axum::http::header::RETRY_AFTER, retry_after_secs.to_string())],
                    Json(body),
                )
                    .into_response();
            }
            ApiError::Malformed { path, reason } => (
                StatusCode::BAD_REQUEST,
                json!({"error": "malformed", "path": path, "reason": reason}),
            ),
            ApiError::Invalid(problems) => {
                let first = problems.first().map(|p| p.path.clone()).unwrap_or_default();
                let reason = problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("; ");
                let list: Vec<_> = problems
                    .iter()
                    .map(|p| json!({"path": p.path, "reason": p.reason}))
                    .collect();
                (
                    StatusCode::BAD_REQUEST,
                    json!({"error": "invalid", "path": first, "reason": reason, "problems": list}),
                )
            }
            ApiError::TooLarge(reason) => (
                StatusCode::PAYLOAD_TOO_LARGE,
                json!({"error": "too_large", "reason": reason}),
            ),
            ApiError::UnsupportedEncoding(reason) => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                json!({"error": "unsupported_encoding", "reason": reason}),
            ),
            ApiError::Duplicate { seq, last_seq } => (
                StatusCode::CONFLICT,
                json!({"error": "duplicate", "reason": format!("sequence {seq} was already applied (last applied: {last_seq})"), "seq": seq, "last_seq": last_seq}),
            ),
            ApiError::NotFound(reason) => (StatusCode::NOT_FOUND, json!({"error": "not_found", "reason": reason})),
            ApiError::BadRequest(reason) => (
                StatusCode::BAD_REQUEST,
                json!({"error": "bad_request", "reason": reason}),
            ),
            ApiError::Conflict(reason) => (StatusCode::CONFLICT, json!({"error": "conflict", "reason": reason})),
            ApiError::Timeout(reason) => {
                return (
                    StatusCode::REQUEST_TIMEOUT,
                    [(header::CONNECTION, "close")],
                    Json(json!({"error": "timeout", "reason": reason})),
                )
                    .into_response();
            }
            // Not logged here: the store writer logs once when it starts failing.
            ApiError::Unavailable(reason) => {
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    [(header::RETRY_AFTER, RETRY_AFTER_SECS.to_string())],
                    Json(json!({"error": "unavailable", "reason": reason})),
                )
                    .into_response();
            }
            ApiError::Internal(detail) => {
                tracing::error!(%detail, "internal error");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    json!({"error": "internal", "reason": "internal error; see the collector's log"}),
                )
            }
        };
        (status, Json(body)).into_response()
    }
}

/// By the store error's own class ([`crate::store::StoreError::class`]), the
/// one the store writer logs by too.
impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::{ErrorClass, StoreError};
        match e {
            StoreError::Revoked(_) => return ApiError::Revoked(e.to_string()),
            StoreError::Identity(m) => {
                return ApiError::Identity {
                    path: m.path.to_string(),
                    reason: m.to_string(),
                };
            }
            _ => {}
        }
        match e.class() {
            ErrorClass::NotFound => ApiError::NotFound(e.to_string()),
            ErrorClass::Unauthorized => ApiError::Unauthorized(e.to_string()),
            ErrorClass::Forbidden => ApiError::Forbidden(e.to_string()),
            ErrorClass::BadInput => ApiError::BadRequest(e.to_string()),
            ErrorClass::Conflict => ApiError::Conflict(e.to_string()),
            ErrorClass::Internal => ApiError::Internal(e.to_string()),
            ErrorClass::Unavailable => ApiError::Unavailable(e.to_string()),
        }
    }
}

/// Ingest's refusals, each to the answer agents have always had for it.
impl From<crate::ingest::Refused> for ApiError {
    fn from(e: crate::ingest::Refused) -> Self {
        use crate::ingest::Refused;
        match e {
            Refused::Unauthorized(reason) => ApiError::Unauthorized(reason),
            Refused::UnsupportedEncoding(reason) => ApiError::UnsupportedEncoding(reason),
            Refused::TooLarge(reason) => ApiError::TooLarge(reason),
            Refused::Malformed { path, reason } => ApiError::Malformed { path, reason },
            Refused::Invalid(problems) => ApiError::Invalid(problems),
            Refused::Store(e) => e.into(),
        }
    }
}

impl From<crate::report::ReportError> for ApiError {
    fn from(e: crate::report::ReportError) -> Self {
        match e {
            crate::report::ReportError::BadRequest { .. } => ApiError::BadRequest(e.to_string()),
            crate::report::ReportError::Store(e) => e.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{ErrorClass, StoreError};

    #[test]
    fn a_store_error_is_answered_by_its_class() {
        let cases = [
            (StoreError::NoSuchItem(7), StatusCode::NOT_FOUND, ErrorClass::NotFound),
            (
                StoreError::QueueInput("asset: no known asset named \"db1\"".into()),
                StatusCode::BAD_REQUEST,
                ErrorClass::BadInput,
            ),
            (
                StoreError::UnknownAsset("db1".into()),
                StatusCode::NOT_FOUND,
                ErrorClass::NotFound,
            ),
            (
                StoreError::Queue("only a resolved case can be closed".into()),
                StatusCode::CONFLICT,
                ErrorClass::Conflict,
            ),
            (
                StoreError::Recommendation(crate::predict::TransitionError::ReasonRequired),
                StatusCode::BAD_REQUEST,
                ErrorClass::BadInput,
            ),
            (
                StoreError::Transaction("cannot commit - no transaction is active".into()),
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorClass::Internal,
            ),
            (
                StoreError::Unwritable("database or disk is full".into()),
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorClass::Unavailable,
            ),
            (
                crate::store::testing::sqlite_disk_full(),
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorClass::Unavailable,
            ),
            (
                StoreError::WriterGone,
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorClass::Unavailable,
            ),
        ];
        for (e, status, class) in cases {
            let text = e.to_string();
            assert_eq!(e.class(), class, "{text}");
            assert_eq!(class.is_client(), !status.is_server_error(), "{text}");
            let resp = ApiError::from(e).into_response();
            assert_eq!(resp.status(), status, "{text}");
            // A retryable refusal says when to retry; agents keep the report.
            assert_eq!(
                resp.headers().contains_key(header::RETRY_AFTER),
                status == StatusCode::SERVICE_UNAVAILABLE,
                "{text}"
            );
        }
    }
}
