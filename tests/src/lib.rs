//! Helpers shared by the end-to-end tests and the load generator: synthetic
//! reports of realistic size and a client that talks to a collector the way
//! an agent does.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use caretaker_shared::catalogue::{CATALOGUE, Source};
use caretaker_shared::wire::{PROTOCOL_VERSION, Report, Sample};

/// A report with `n` samples drawn from the catalogue's agent metrics, each
/// with plausible labels: what a host with a few disks and NICs sends.
pub fn synthetic_report(agent_id: &str, host: &str, seq: u64, n: usize) -> Report {
    let defs: Vec<_> = CATALOGUE.iter().filter(|d| d.source == Source::Agent).collect();
    let mut samples = Vec::with_capacity(n);
    let mut i = 0usize;
    while samples.len() < n {
        let d = defs[i % defs.len()];
        let round = i / defs.len();
        let labels: BTreeMap<String, String> = d
            .labels
            .iter()
            .map(|l| (l.to_string(), format!("{l}{round}")))
            .collect();
        // Label-less metrics exist once per report.
        if round == 0 || !d.labels.is_empty() {
            samples.push(Sample {
                metric: d.name.to_string(),
                labels,
                value: (seq as f64) * 1.5 + i as f64,
            });
        }
        i += 1;
        if i > n * 10 {
            break;
        }
    }
    Report {
        version: PROTOCOL_VERSION,
        agent_id: agent_id.to_string(),
        seq,
        collected_at_ms: caretaker_shared::now_ms(),
        interval_secs: 15,
        host: host.to_string(),
        labels: BTreeMap::from([("customer".into(), "loadtest".into()), ("site".into(), "lab".into())]),
        samples,
        events: Vec::new(),
        inventory: None,
        disks: None,
    }
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let _ = enc.write_all(bytes);
    enc.finish().unwrap_or_default()
}

/// A client trusting only the collector's CA, as agents do.
pub fn client(ca_file: &Path) -> anyhow::Result<reqwest::Client> {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(ca_file)?)?;
    Ok(reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .timeout(std::time::Duration::from_secs(30))
        .build()?)
}

#[derive(Debug, Clone, serde::Deserialize)]
pub struct Enrolled {
    pub agent_id: String,
    pub credential: String,
}

/// Enrolls as an older agent would (no labels), waiting out the
/// collector's enrollment rate limit (429 with `Retry-After`) a bounded
/// number of times, so load generators can enroll many agents.
pub async fn enroll(client: &reqwest::Client, url: &str, token: &str, host: &str) -> anyhow::Result<Enrolled> {
    for _ in 0..100 {
        let resp = client
            .post(format!("{url}/api/v1/enroll"))
            .json(&serde_json::json!({"token": token, "host": host}))
            .send()
            .await?;
        if resp.status() == reqwest::StatusCode::TOO_MANY_REQUESTS {
            let wait = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                .unwrap_or(1);
            tokio::time::sleep(std::time::Duration::from_secs(wait.min(60))).await;
            continue;
        }
        anyhow::ensure!(resp.status().is_success(), "enroll answered {}", resp.status());
        return Ok(resp.json().await?);
    }
    anyhow::bail!("enrollment still rate-limited after 100 tries")
}

/// Sends a gzip body as an agent would; returns the status and JSON body.
pub async fn post_report(
    client: &reqwest::Client,
    url: &str,
    credential: &str,
    gzip_body: Vec<u8>,
) -> anyhow::Result<(u16, serde_json::Value)> {
    let resp = client
        .post(format!("{url}/api/v1/reports"))
        .bearer_auth(credential)
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(gzip_body)
        .send()
        .await?;
    let status = resp.status().as_u16();
    let body = resp.json().await.unwrap_or(serde_json::Value::Null);
    Ok((status, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn synthetic_reports_are_valid_and_sized() {
        let r = synthetic_report("a", "h", 1, 200);
        assert_eq!(r.samples.len(), 200);
        assert_eq!(r.validate(), Ok(()));
        assert_eq!(r.known_samples().count(), 200);
    }
}
