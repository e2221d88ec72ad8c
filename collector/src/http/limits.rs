//! Limits at the HTTPS edge, so that slow or greedy clients cannot starve the
//! agents: every request body must arrive whole within a deadline (a body
//! dripped a byte at a time is cut off, answered 408 and its connection
//! closed), and requests run within one of two budgets — agent ingest's and
//! every other route's — so a flood on the login page or enrollment cannot
//! take the slots reports need. Over a budget a request is answered 503 with
//! `Retry-After` at once rather than queued (a queued request still holds its
//! connection). An agent sends one report at a time, so one credential holds
//! at most one ingest slot: a compromised host cannot fill ingest's budget
//! (a second request is answered 429). Connection limits are in
//! [`super::conns`].
//!
//! Every limit that bites is counted in `caretaker_http_limited_total{limit}`
//! and logged, at most once per [`LOG_EVERY`] with the counts since the last
//! line, so a flood cannot flood the log too.

use std::collections::HashSet;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body::{Body as HttpBody, Frame, SizeHint};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tokio::sync::Semaphore;

use super::error::{ApiError, RETRY_AFTER_SECS};
use crate::config::Config;

/// The route with its own request budget and body timeout.
pub const INGEST_PATH: &str = "/api/v1/reports";

/// Routes outside every budget: a load balancer's probe must get through a
/// flood to see the collector is alive.
const UNBUDGETED: &[&str] = &["/healthz"];

/// Shortest interval between two log lines about limits.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// A limit at the edge that cut a connection or request short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// A request body not received within its deadline.
    BodyTimeout,
    /// The collector's connection limit.
    Connections,
    /// One source address's share of the connections.
    PerSource,
    /// A full request budget (ingest's or the other routes').
    Concurrency,
    /// A second report at once with the same agent credential.
    PerAgent,
}

impl Limit {
    pub const ALL: [Limit; 5] = [
        Limit::BodyTimeout,
        Limit::Connections,
        Limit::PerSource,
        Limit::Concurrency,
        Limit::PerAgent,
    ];

    /// The `limit` label value (one of `catalogue::HTTP_LIMITS`).
    pub fn label(self) -> &'static str {
        match self {
            Limit::BodyTimeout => "body_timeout",
            Limit::Connections => "connections",
            Limit::PerSource => "per_source",
            Limit::Concurrency => "concurrency",
            Limit::PerAgent => "per_agent",
        }
    }
}

/// Counts limits that bit, and logs them without flooding the log: the
/// first of a burst at once, then at most every [`LOG_EVERY`] with the
/// counts since the last line.
#[derive(Debug)]
pub struct Recorder {
    family: Family<Vec<(String, String)>, Counter>,
    log: Mutex<LogState>,
}

#[derive(Debug, Default)]
struct LogState {
    last: Option<Instant>,
    since: [u64; 5],
}

impl Default for Recorder {
    fn default() -> Self {
        let family = Family::default();
        // Every limit exists from the start, at 0, so rates and alerts work.
        for l in Limit::ALL {
            let _ = family.get_or_create(&label(l));
        }
        Self {
            family,
            log: Mutex::default(),
        }
    }
}

fn label(l: Limit) -> Vec<(String, String)> {
    vec![("limit".to_string(), l.label().to_string())]
}

impl Recorder {
    /// The counter family, to register.
    pub fn family(&self) -> Family<Vec<(String, String)>, Counter> {
        self.family.clone()
    }

    /// One limit bit; `source` is the client's address where known.
    pub fn record(&self, limit: Limit, source: Option<IpAddr>) {
        self.family.get_or_create(&label(limit)).inc();
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        log.since[limit as usize] += 1;
        let now = Instant::now();
        if log.last.is_some_and(|t| now.duration_since(t) < LOG_EVERY) {
            return;
        }
        let [body_timeout, connections, per_source, concurrency, per_agent] = log.since;
        tracing::warn!(
            body_timeout,
            connections,
            per_source,
            concurrency,
            per_agent,
            last = limit.label(),
            source = source.map(|s| s.to_string()).unwrap_or_default(),
            "http limits cut connections or requests short (counts since the last such line)"
        );
        log.since = [0; 5];
        log.last = Some(now);
    }
}

/// The request budgets and body deadlines, shared by every route.
pub struct RequestLimits {
    ingest: Arc<Semaphore>,
    other: Arc<Semaphore>,
    ingest_body: Duration,
    other_body: Duration,
    /// Agent credentials with a report in progress.
    reporting: Arc<Mutex<HashSet<String>>>,
    metrics: Arc<crate::metrics::Metrics>,
}

/// An agent credential's one ingest slot, released when the request ends.
struct Reporting {
    set: Arc<Mutex<HashSet<String>>>,
    credential: String,
}

impl Drop for Reporting {
    fn drop(&mut self) {
        self.set
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.credential);
    }
}

fn retry_later(status: StatusCode, reason: &str) -> Response {
    (
        status,
        [(header::RETRY_AFTER, RETRY_AFTER_SECS.to_string())],
        axum::Json(serde_json::json!({"error": "unavailable", "reason": reason})),
    )
        .into_response()
}

impl RequestLimits {
    pub fn new(cfg: &Config, metrics: Arc<crate::metrics::Metrics>) -> Self {
        Self {
            ingest: Arc::new(Semaphore::new(cfg.ingest.max_concurrent_requests)),
            other: Arc::new(Semaphore::new(cfg.http.max_concurrent_requests)),
            ingest_body: Duration::from_secs(cfg.ingest.body_timeout_secs),
            other_body: Duration::from_secs(cfg.http.body_timeout_secs),
            reporting: Arc::default(),
            metrics,
        }
    }
}

/// The middleware: takes a slot of the route's budget (or answers 503), and
/// gives the body its deadline (answering 408 when it passes).
pub async fn limit(State(limits): State<Arc<RequestLimits>>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let ingest = path == INGEST_PATH;
    let budget = if UNBUDGETED.contains(&path) {
        None
    } else if ingest {
        Some(&limits.ingest)
    } else {
        Some(&limits.other)
    };
    let _slot = match budget.map(|b| b.clone().try_acquire_owned()) {
        Some(Err(_)) => {
            limits.metrics.http_limited.record(Limit::Concurrency, None);
            return retry_later(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many requests at once; retry later",
            );
        }
        Some(Ok(slot)) => Some(slot),
        None => None,
    };
    // Without a credential ingest answers 401 before reading the body.
    let _reporting = match super::bearer(req.headers()).filter(|_| ingest) {
        Some(credential) => {
            let mut set = limits.reporting.lock().unwrap_or_else(|p| p.into_inner());
            if !set.insert(credential.to_string()) {
                drop(set);
                limits.metrics.http_limited.record(Limit::PerAgent, None);
                return retry_later(
                    StatusCode::TOO_MANY_REQUESTS,
                    "a report of this agent is already being received",
                );
            }
            Some(Reporting {
                set: limits.reporting.clone(),
                credential: credential.to_string(),
            })
        }
        None => None,
    };
    let timeout = if ingest { limits.ingest_body } else { limits.other_body };
    let expired = Arc::new(AtomicBool::new(false));
    let (parts, body) = req.into_parts();
    let body = Body::new(DeadlineBody {
        inner: body,
        deadline: Box::pin(tokio::time::sleep(timeout)),
        expired: expired.clone(),
    });
    let response = next.run(Request::from_parts(parts, body)).await;
    if expired.load(Ordering::Relaxed) {
        limits.metrics.http_limited.record(Limit::BodyTimeout, None);
        return ApiError::Timeout(format!("request body not received within {} s", timeout.as_secs())).into_response();
    }
    response
}

/// The error a body yields once its deadline has passed.
#[derive(Debug, thiserror::Error)]
#[error("request body not received in time")]
pub struct BodyTimeout;

/// Whether reading a body failed because its deadline passed.
pub fn is_body_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(e) = cur {
        if e.is::<BodyTimeout>() {
            return true;
        }
        cur = e.source();
    }
    false
}

/// A request body that fails once its deadline has passed. The deadline is
/// for the whole body, not between chunks: a client dripping a byte every few
/// seconds keeps a chunk timeout happy forever.
struct DeadlineBody {
    inner: Body,
    deadline: Pin<Box<tokio::time::Sleep>>,
    expired: Arc<AtomicBool>,
}

impl HttpBody for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        if this.deadline.as_mut().poll(cx).is_ready() {
            this.expired.store(true, Ordering::Relaxed);
            return Poll::Ready(Some(Err(axum::Error::new(BodyTimeout))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn a_burst_is_logged_once_with_its_counts() {
        let r = Recorder::default();
        for _ in 0..5 {
            r.record(Limit::PerSource, None);
        }
        r.record(Limit::BodyTimeout, None);
        let log = r.log.lock().unwrap();
        // The first was logged; the five after it wait for the next line.
        assert_eq!(log.since, [1, 0, 4, 0, 0]);
        assert!(log.last.is_some());
    }

    #[test]
    fn a_timeout_is_found_through_the_error_chain() {
        let e: Box<dyn std::error::Error + Send + Sync> = Box::new(axum::Error::new(BodyTimeout));
        assert!(is_body_timeout(&*e));
        let other: Box<dyn std::error::Error + Send + Sync> = Box::new(axum::Error::new(std::io::Error::other("x")));
        assert!(!is_body_timeout(&*other));
    }

    #[test]
    fn the_labels_are_the_catalogue_s() {
        let labels: Vec<_> = Limit::ALL.iter().map(|l| l.label()).collect();
        assert_eq!(labels, caretaker_shared::catalogue::HTTP_LIMITS);
    }

    /// A body that never ends: a client dripping nothing more.
    struct Never;

    impl HttpBody for Never {
        type Data = Bytes;
        type Error = std::io::Error;

        fn poll_frame(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
            Poll::Pending
        }
    }

    async fn state(cfg: Config) -> (tempfile::TempDir, crate::http::testing::TestState) {
        let dir = tempfile::tempdir().unwrap();
        let mut state = crate::http::testing::state(&dir).await;
        state.config = Arc::new(cfg);
        (dir, state)
    }

    fn stalled(uri: &str) -> axum::http::Request<Body> {
        axum::http::Request::post(uri)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::CONTENT_LENGTH, "1000")
            .body(Body::new(Never))
            .unwrap()
    }

    fn limited(state: &crate::http::AppState, limit: Limit) -> u64 {
        state.metrics.http_limited.family.get_or_create(&label(limit)).get()
    }

    /// Enrollment and login read their bodies with no deadline at all: a
    /// client that stopped sending held its connection forever.
    #[tokio::test]
    async fn a_body_that_stops_arriving_is_cut_off_on_every_route() {
        use tower::ServiceExt;
        let mut cfg = Config::default();
        cfg.http.body_timeout_secs = 1;
        cfg.ingest.body_timeout_secs = 1;
        let (_dir, state) = state(cfg).await;
        for uri in ["/api/v1/enroll", "/login"] {
            let resp = crate::http::app(state.clone()).oneshot(stalled(uri)).await.unwrap();
            assert_eq!(resp.status(), StatusCode::REQUEST_TIMEOUT, "{uri}");
            assert_eq!(resp.headers().get(header::CONNECTION).unwrap(), "close", "{uri}");
        }
        assert_eq!(limited(&state, Limit::BodyTimeout), 2);
    }

    #[tokio::test]
    async fn a_full_budget_answers_503_at_once_and_ingest_keeps_its_own() {
        use tower::ServiceExt;
        let mut cfg = Config::default();
        cfg.http.max_concurrent_requests = 1;
        let (_dir, state) = state(cfg).await;
        let app = crate::http::app(state.clone());
        let held = tokio::spawn(app.clone().oneshot(stalled("/api/v1/enroll")));
        // The test runtime has one thread: the held request runs until it
        // waits for its body, holding its slot.
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        let answered = app
            .clone()
            .oneshot(axum::http::Request::post("/login").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(answered.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(answered.headers().contains_key(header::RETRY_AFTER));
        assert!(limited(&state, Limit::Concurrency) >= 1);
        // Ingest has its own budget: a report is still read (and refused
        // here for having no credential, not for want of a slot).
        let resp = app
            .clone()
            .oneshot(axum::http::Request::post(INGEST_PATH).body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        // The probe of a load balancer is outside every budget.
        let resp = app
            .oneshot(axum::http::Request::get("/healthz").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        held.abort();
    }
}
