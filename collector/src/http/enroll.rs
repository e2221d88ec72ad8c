//! `POST /api/v1/enroll`: an agent trades an enrollment token for its own
//! credential, once. The token decides the agent's customer (and site, when
//! bound to one); the host name must not be held by another active agent.
//! Only hashes are stored. Enrollment is rate-limited per source address and
//! in all (`[enroll]` in the config): 429 with `Retry-After` beyond.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use axum::extract::{ConnectInfo, Request, State};
use axum::routing::post;
use axum::{Extension, Json, Router};
use governor::clock::Clock;
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota};
use serde::{Deserialize, Serialize};

use super::AppState;
use super::error::ApiError;
use crate::config::EnrollConfig;
use crate::pki;
use crate::store::StoreError;
use crate::writer::Enrollment;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollRequest {
    pub token: String,
    pub host: String,
    /// The labels the agent will report (`customer`, `site`, ...). Older
    /// agents send none: their first report fixes the customer then, when
    /// the token is bound to none.
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
}

#[derive(Debug, Serialize)]
pub struct EnrollResponse {
    pub agent_id: String,
    pub credential: String,
}

/// Largest enrollment request body.
const MAX_BODY_BYTES: usize = 64 * 1024;

/// Keys of the per-source limiter kept before the idle ones are dropped.
const MAX_TRACKED_SOURCES: usize = 10_000;

/// The enrollment rate limits, made from the config on first use, and when
/// a refusal was last logged.
#[derive(Default)]
struct Limiter {
    limits: OnceLock<Limits>,
    /// Refusals since the last log line, and when that was (ms).
    refused: AtomicU64,
    logged_at_ms: AtomicI64,
}

/// A flood is logged once per this long, with its count, not per request.
const LOG_EVERY_MS: i64 = 10_000;

impl Limiter {
    fn note_refusal(&self, source: IpAddr) {
        let n = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        let now = caretaker_shared::now_ms();
        let last = self.logged_at_ms.load(Ordering::Relaxed);
        if now - last >= LOG_EVERY_MS
            && self
                .logged_at_ms
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.refused.fetch_sub(n, Ordering::Relaxed);
            tracing::warn!(%source, refused = n, "enrollments refused by the rate limit");
        }
    }
}

struct Limits {
    per_source: DefaultKeyedRateLimiter<IpAddr>,
    all: DefaultDirectRateLimiter,
}

fn quota(per_minute: u32, burst: u32) -> Quota {
    let one = NonZeroU32::MIN;
    Quota::per_minute(NonZeroU32::new(per_minute).unwrap_or(one)).allow_burst(NonZeroU32::new(burst).unwrap_or(one))
}

impl Limits {
    fn new(cfg: &EnrollConfig) -> Self {
        Self {
            per_source: DefaultKeyedRateLimiter::keyed(quota(cfg.per_source_per_minute, cfg.per_source_burst)),
            all: DefaultDirectRateLimiter::direct(quota(cfg.per_minute, cfg.burst)),
        }
    }

    /// Takes one enrollment from `source`'s share and the overall one, or
    /// says how long to wait.
    fn check(&self, source: IpAddr) -> Result<(), ApiError> {
        if self.per_source.len() > MAX_TRACKED_SOURCES {
            self.per_source.retain_recent();
        }
        let limited = |what: &str, wait: std::time::Duration| ApiError::RateLimited {
            reason: format!("too many enrollments {what}; retry later"),
            retry_after_secs: wait.as_secs().max(1),
        };
        if let Err(n) = self.per_source.check_key(&source) {
            return Err(limited(
                "from this address",
                n.wait_time_from(self.per_source.clock().now()),
            ));
        }
        if let Err(n) = self.all.check() {
            return Err(limited("in all", n.wait_time_from(self.all.clock().now())));
        }
        Ok(())
    }
}

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/enroll", post(enroll))
        .layer(Extension(Arc::new(Limiter::default())))
}

fn check_labels(labels: &BTreeMap<String, String>) -> Result<(), ApiError> {
    let bad = |path: String, reason: &str| ApiError::Malformed {
        path,
        reason: reason.into(),
    };
    if labels.len() > caretaker_shared::wire::limits::MAX_LABELS {
        return Err(bad("labels".into(), "too many labels"));
    }
    for (k, v) in labels {
        if k.is_empty() || k.len() > 64 {
            return Err(bad(format!("labels.{k}"), "label names are 1 to 64 bytes"));
        }
        if v.len() > caretaker_shared::wire::limits::MAX_LABEL_VALUE_BYTES {
            return Err(bad(format!("labels.{k}"), "value too long"));
        }
    }
    Ok(())
}

async fn enroll(
    State(state): State<AppState>,
    Extension(limiter): Extension<Arc<Limiter>>,
    req: Request,
) -> Result<Json<EnrollResponse>, ApiError> {
    let source = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
    let limits = limiter.limits.get_or_init(|| Limits::new(&state.config.enroll));
    if let Err(e) = limits.check(source) {
        limiter.note_refusal(source);
        return Err(e);
    }
    let body = axum::body::to_bytes(req.into_body(), MAX_BODY_BYTES)
        .await
        .map_err(|e| ApiError::BadRequest(format!("cannot read the body: {e}")))?;
    let req: EnrollRequest = super::json_body(&body)?;
    if req.host.is_empty() || req.host.len() > 256 {
        return Err(ApiError::Malformed {
            path: "host".into(),
            reason: "must be 1 to 256 bytes".into(),
        });
    }
    if let Some(l) = &req.labels {
        check_labels(l)?;
    }
    let credential = pki::new_secret().map_err(|e| ApiError::Internal(e.to_string()))?;
    let agent_id = pki::new_secret().map_err(|e| ApiError::Internal(e.to_string()))?[..16].to_string();
    let token_hash = pki::hash_secret(&req.token);
    let token_id = crate::identity::token_id(&token_hash);
    let enrolled = state
        .writer
        .enroll(Enrollment {
            token_hash,
            agent_id: agent_id.clone(),
            credential_hash: pki::hash_secret(&credential),
            host: req.host.clone(),
            labels: req.labels.clone(),
        })
        .await;
    match enrolled {
        Ok(e) => {
            tracing::info!(
                %agent_id,
                host = %req.host,
                customer = e.identity.customer.as_deref().unwrap_or("(first report)"),
                site = e.identity.site.as_deref().unwrap_or(""),
                token = %e.token_id,
                %source,
                "agent enrolled"
            );
            Ok(Json(EnrollResponse { agent_id, credential }))
        }
        Err(e @ StoreError::TokenRefused(_)) => {
            // An unknown token's id is the start of the hash of what was
            // sent: it names no token, and reveals nothing of one.
            tracing::warn!(host = %req.host, %source, reason = %e, "enrollment refused");
            Err(ApiError::Unauthorized(e.to_string()))
        }
        Err(e) if e.class().is_client() => {
            tracing::warn!(host = %req.host, token = %token_id, %source, reason = %e, "enrollment refused");
            Err(e.into())
        }
        Err(e) => Err(e.into()),
    }
}
