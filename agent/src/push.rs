//! Talking to the collector over HTTPS: enrollment and report delivery. The
//! client trusts only the collector's CA (pinned from the config), never the
//! system's root store.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::replicas::Failure;

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("cannot read the CA file {path}: {source}")]
    Ca { path: String, source: std::io::Error },
    #[error("the CA file {path} holds no usable PEM certificate{}", .source.as_ref().map(|e| format!(": {e}")).unwrap_or_default())]
    BadCa {
        path: String,
        source: Option<reqwest::Error>,
    },
    #[error("cannot build the HTTPS client: {0}")]
    Client(reqwest::Error),
    #[error("collector unreachable: {0}")]
    Unreachable(reqwest::Error),
    #[error("collector refused enrollment ({status}): {reason}")]
    Refused { status: u16, reason: String },
    /// Worth trying again later: 429 (rate limit) or a server error.
    #[error("collector cannot enroll now ({status}): {reason}")]
    Busy {
        status: u16,
        reason: String,
        /// The collector's `Retry-After`, when it gave one.
        retry_after: Option<Duration>,
    },
}

impl PushError {
    /// What an enrollment failure says about the replica asked (for
    /// failing over), or `None` when it is final or not about the collector.
    pub fn failure(&self) -> Option<Failure> {
        match self {
            PushError::Unreachable(_) => Some(Failure::Unreachable),
            PushError::Busy { status, .. } => Some(Failure::of_status(*status)),
            PushError::Refused { status, .. } => Some(Failure::of_status(*status)),
            PushError::Ca { .. } | PushError::BadCa { .. } | PushError::Client(_) => None,
        }
    }
}

/// Builds the HTTPS client, trusting only the given CA.
pub fn client(ca_file: &Path, timeout: Duration) -> Result<reqwest::Client, PushError> {
    let pem = std::fs::read(ca_file).map_err(|source| PushError::Ca {
        path: ca_file.display().to_string(),
        source,
    })?;
    let bad = |source| PushError::BadCa {
        path: ca_file.display().to_string(),
        source,
    };
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| bad(Some(e)))?;
    if certs.is_empty() {
        return Err(bad(None));
    }
    let mut builder = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false);
    for ca in certs {
        builder = builder.add_root_certificate(ca);
    }
    builder
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .user_agent(concat!("caretaker-agent/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(PushError::Client)
}

/// What the collector's error bodies look like (see docs/protocol.md).
#[derive(Debug, Deserialize)]
struct ErrorBody {
    #[serde(default)]
    error: String,
    #[serde(default)]
    reason: String,
}

async fn reason(resp: reqwest::Response) -> String {
    let status = resp.status();
    match resp.bytes().await {
        Ok(b) => match serde_json::from_slice::<ErrorBody>(&b) {
            Ok(e) => format!("{}: {}", e.error, e.reason),
            Err(_) => String::from_utf8_lossy(&b[..b.len().min(200)]).into_owned(),
        },
        Err(_) => status.to_string(),
    }
}

#[derive(Debug, Serialize)]
pub struct EnrollRequest<'a> {
    pub token: &'a str,
    pub host: &'a str,
    /// The labels this agent reports: the collector checks the customer
    /// (and site) against what the token is bound to. `None`: not known
    /// (`caretaker-agent enroll` without `--label`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<&'a BTreeMap<String, String>>,
}

#[derive(Debug, Deserialize)]
pub struct EnrollResponse {
    pub agent_id: String,
    pub credential: String,
}

pub async fn enroll(
    client: &reqwest::Client,
    collector_url: &str,
    token: &str,
    host: &str,
    labels: Option<&BTreeMap<String, String>>,
) -> Result<EnrollResponse, PushError> {
    let url = format!("{}/api/v1/enroll", collector_url.trim_end_matches('/'));
    let resp = client
        .post(url)
        .json(&EnrollRequest { token, host, labels })
        .send()
        .await
        .map_err(PushError::Unreachable)?;
    let status = resp.status();
    if status.is_success() {
        resp.json().await.map_err(PushError::Unreachable)
    } else if status.as_u16() == 429 || status.is_server_error() {
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        Err(PushError::Busy {
            status: status.as_u16(),
            reason: reason(resp).await,
            retry_after,
        })
    } else {
        Err(PushError::Refused {
            status: status.as_u16(),
            reason: reason(resp).await,
        })
    }
}

/// The result of offering one report.
#[derive(Debug, PartialEq)]
pub enum Delivery {
    /// Applied now. `credential`: a rotated credential the collector hands
    /// over, to save and use from now on.
    Delivered { credential: Option<String> },
    /// The collector had applied this sequence number already (409), and
    /// says the highest it has applied for this agent.
    Duplicate { last_seq: Option<u64> },
    /// The collector will never accept this report (400, 403, 413): drop it,
    /// count it.
    Rejected { status: u16, reason: String },
    /// 401: the collector does not take this agent's credential (`revoked`:
    /// the operator revoked it). The report stays spooled.
    Unauthorized { revoked: bool, reason: String },
    /// Try again later (network, 408, 429, 5xx); `after`: the wait the
    /// collector asked for (`Retry-After`), if any; `failure`: whether
    /// another replica might take it now (see [`crate::replicas`]).
    Retry {
        reason: String,
        after: Option<Duration>,
        failure: Failure,
    },
}

/// `Retry-After` in seconds (the collector sends no dates).
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let secs = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs))
}

/// The answer to an applied report (see docs/protocol.md).
#[derive(Debug, Deserialize)]
struct AppliedBody {
    #[serde(default)]
    credential: Option<String>,
}

pub async fn send_report(client: &reqwest::Client, collector_url: &str, secret: &str, gzip_body: Vec<u8>) -> Delivery {
    let url = format!("{}/api/v1/reports", collector_url.trim_end_matches('/'));
    let resp = client
        .post(url)
        .bearer_auth(secret)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(reqwest::header::CONTENT_ENCODING, "gzip")
        // When it is sent, by this host's clock: a report that waited in the
        // spool is old, a clock that is off is off now (the collector opens
        // an `agent_clock_skew` finding and dates the report itself).
        .header(
            reqwest::header::DATE,
            httpdate::fmt_http_date(std::time::SystemTime::now()),
        )
        .body(gzip_body)
        .send()
        .await;
    let resp = match resp {
        Ok(r) => r,
        Err(e) => {
            return Delivery::Retry {
                reason: format!("collector unreachable: {e}"),
                after: None,
                failure: Failure::Unreachable,
            };
        }
    };
    match resp.status().as_u16() {
        200..=299 => {
            // An answer that cannot be read still means "applied".
            let credential = match resp.bytes().await {
                Ok(b) => serde_json::from_slice::<AppliedBody>(&b)
                    .ok()
                    .and_then(|a| a.credential)
                    .filter(|c| !c.is_empty()),
                Err(_) => None,
            };
            Delivery::Delivered { credential }
        }
        409 => {
            #[derive(Deserialize)]
            struct Duplicate {
                last_seq: Option<u64>,
            }
            let last_seq = match resp.bytes().await {
                Ok(b) => serde_json::from_slice::<Duplicate>(&b).ok().and_then(|d| d.last_seq),
                Err(_) => None,
            };
            Delivery::Duplicate { last_seq }
        }
        401 => {
            let body = resp.bytes().await.unwrap_or_default();
            let e = serde_json::from_slice::<ErrorBody>(&body).ok();
            Delivery::Unauthorized {
                revoked: e.as_ref().is_some_and(|e| e.error == "revoked"),
                reason: e.map_or_else(
                    || String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
                    |e| format!("{}: {}", e.error, e.reason),
                ),
            }
        }
        s @ (400 | 403 | 413 | 415) => Delivery::Rejected {
            status: s,
            reason: reason(resp).await,
        },
        s => {
            let after = retry_after(resp.headers());
            Delivery::Retry {
                reason: format!("collector answered {s}: {}", reason(resp).await),
                after,
                failure: Failure::of_status(s),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};

    #[test]
    fn retry_after_in_seconds() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(RETRY_AFTER, HeaderValue::from_static("30"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(30)));
        h.insert(RETRY_AFTER, HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"));
        assert_eq!(retry_after(&h), None, "a date is not used");
    }
}
