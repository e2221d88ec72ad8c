//! A hostile or compromised agent against the real collector (issue 21,
//! items 1–3): an agent's identity is fixed at enrollment and checked on
//! every report; enrollment tokens are per customer, expire, run out, are
//! revoked and rate-limited; agent credentials are revoked and rotated while
//! the collector and the agent keep running.

use std::time::Duration;

use caretaker_shared::wire::{Inventory, PROTOCOL_VERSION, Report, Sample};
use serde_json::{Value, json};

use crate::util::{Agent, Collector, Who, eventually, wait_for_host};

/// One report of `host` for `customer`: md0 degraded (1) or in sync (0),
/// with an inventory so the host is a known asset.
fn md_report(agent_id: &str, seq: u64, host: &str, customer: &str, degraded: f64) -> Vec<u8> {
    let report = Report {
        version: PROTOCOL_VERSION,
        agent_id: agent_id.to_string(),
        seq,
        collected_at_ms: caretaker_shared::now_ms(),
        interval_secs: 60,
        host: host.into(),
        labels: [("customer".to_string(), customer.to_string())].into(),
        samples: vec![Sample {
            metric: "caretaker_md_degraded".into(),
            labels: [("device".to_string(), "md0".to_string())].into(),
            value: degraded,
        }],
        events: Vec::new(),
        inventory: Some(Inventory {
            hostname: host.into(),
            machine_id: format!("{host:0>32}"),
            ..Inventory::default()
        }),
        disks: None,
    };
    caretaker_tests::gzip(&serde_json::to_vec(&report).unwrap_or_default())
}

async fn post(c: &Collector, secret: &str, body: Vec<u8>) -> (u16, Value) {
    caretaker_tests::post_report(&c.client, &c.url(), secret, body)
        .await
        .unwrap_or_else(|e| panic!("post: {e}"))
}

/// `POST /api/v1/enroll` as sent: the status and the JSON answer.
async fn enroll_raw(c: &Collector, body: Value) -> (u16, Value, reqwest::header::HeaderMap) {
    let resp = c
        .client
        .post(format!("{}/api/v1/enroll", c.url()))
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("enroll: {e}"));
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, resp.json().await.unwrap_or(Value::Null), headers)
}

/// Enrolls `host` of `customer` with `token`: agent id and credential.
async fn enroll(c: &Collector, token: &str, host: &str, customer: &str) -> (String, String) {
    let (s, v, _) = enroll_raw(
        c,
        json!({"token": token, "host": host, "labels": {"customer": customer}}),
    )
    .await;
    assert_eq!(s, 200, "enroll {host}: {v}");
    (
        v["agent_id"].as_str().unwrap_or("").to_string(),
        v["credential"].as_str().unwrap_or("").to_string(),
    )
}

fn cases_of(v: &Value) -> Vec<(String, String)> {
    v["cases"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            (
                c["key"]["asset"].as_str().unwrap_or("").to_string(),
                c["status"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

async fn rejected_for_identity(c: &Collector) -> Option<f64> {
    c.metric_value("caretaker_ingest_reports_rejected_total{reason=\"identity\"}")
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_cannot_report_as_another_customers_host() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let c = Collector::start_with_config(dir.path(), "[detect]\ntick_secs = 1\nmin_hold_secs = 0\n").await;
    let alpha = c.create_token("alpha", &[]);
    let beta = c.create_token("beta", &[]);

    // Beta's real host, with a degraded array: a critical case in beta's queue.
    let (beta_id, beta_secret) = enroll(&c, &beta, "beta-b1", "beta").await;
    let (s, v) = post(&c, &beta_secret, md_report(&beta_id, 1, "beta-b1", "beta", 1.0)).await;
    assert_eq!(s, 200, "{v}");
    let opened = eventually("beta's case", Duration::from_secs(30), || async {
        let v = c.api("/api/v1/cases?customer=beta").await;
        let cases = cases_of(&v);
        (!cases.is_empty()).then_some(cases)
    })
    .await;
    assert_eq!(opened.len(), 1, "{opened:?}");
    assert_eq!(opened[0].0, "beta-b1");
    let status = opened[0].1.clone();
    assert!(!["recovered", "resolved"].contains(&status.as_str()), "{status}");

    // Alpha's real agent, whose credential the attacker has taken.
    let a_dir = dir.path().join("alpha");
    std::fs::create_dir_all(&a_dir).unwrap_or_else(|e| panic!("{e}"));
    let who = Who {
        token: &alpha,
        host: "alpha-a1",
        customer: "alpha",
        site: "hq",
    };
    let agent = Agent::start_as(&a_dir, &c, 1, &who, "");
    let alpha_id = wait_for_host(&c, &agent).await;
    let stolen = agent.secret().unwrap_or_default();

    // A host of beta's that does not exist, a critical fault on it.
    let (s, v) = post(&c, &stolen, md_report(&alpha_id, 1_000_001, "beta-b3", "beta", 1.0)).await;
    assert_eq!(
        (s, v["error"].as_str(), v["path"].as_str()),
        (403, Some("forbidden"), Some("host")),
        "{v}"
    );
    assert_eq!(
        v["reason"], "report claims host \"beta-b3\"; this agent is enrolled as \"alpha-a1\"",
        "{v}"
    );
    // Its own host name, claimed for beta.
    let (s, v) = post(&c, &stolen, md_report(&alpha_id, 1_000_002, "alpha-a1", "beta", 1.0)).await;
    assert_eq!((s, v["path"].as_str()), (403, Some("labels.customer")), "{v}");
    // Beta's real host, healthy, four times: the case must not move.
    for seq in 1_000_003..1_000_007 {
        let (s, v) = post(&c, &stolen, md_report(&alpha_id, seq, "beta-b1", "beta", 0.0)).await;
        assert_eq!((s, v["path"].as_str()), (403, Some("host")), "{v}");
    }
    assert_eq!(rejected_for_identity(&c).await, Some(6.0));

    // Beta's queue holds its one case, unmoved; beta's host is beta's alone.
    let v = c.api("/api/v1/cases?customer=beta").await;
    assert_eq!(cases_of(&v), [("beta-b1".to_string(), status)], "{v}");
    let named: Vec<Value> = c.api("/api/v1/hosts").await["hosts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|h| h["host"] == "beta-b1")
        .cloned()
        .collect();
    assert_eq!(named.len(), 1, "{named:?}");
    assert_eq!(named[0]["agent_id"], beta_id.as_str());
    let asset = c.api("/api/v1/assets/beta-b1").await;
    assert_eq!(asset["agent_id"], beta_id.as_str(), "{asset}");
    assert_eq!(c.host(&alpha_id).await["labels"]["customer"], "alpha");
    let collector_log = std::fs::read_to_string(dir.path().join("collector.log")).unwrap_or_default();
    assert!(
        collector_log
            .lines()
            .any(|l| l.contains("WARN") && l.contains("report refused: identity") && l.contains("beta-b3")),
        "{collector_log}"
    );
    assert!(!collector_log.contains("internal error"), "{collector_log}");

    // Beta's own report that the array is back does move it: the case was
    // movable, only not by alpha.
    let (s, v) = post(&c, &beta_secret, md_report(&beta_id, 2, "beta-b1", "beta", 0.0)).await;
    assert_eq!(s, 200, "{v}");
    eventually("beta's case recovered by beta", Duration::from_secs(30), || async {
        let v = c.api("/api/v1/cases?customer=beta").await;
        cases_of(&v).iter().any(|(_, s)| s == "recovered").then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_agent_cannot_take_an_enrolled_host_name() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let c = Collector::start(dir.path()).await;
    let acme = c.create_token("acme", &[]);
    let (first, secret) = enroll(&c, &acme, "db1", "acme").await;
    let (s, v) = post(&c, &secret, md_report(&first, 1, "db1", "acme", 0.0)).await;
    assert_eq!(s, 200, "{v}");

    let (s, v, _) = enroll_raw(
        &c,
        json!({"token": acme, "host": "db1", "labels": {"customer": "acme"}}),
    )
    .await;
    assert_eq!((s, v["error"].as_str()), (409, Some("conflict")), "{v}");
    assert!(v["reason"].as_str().unwrap_or("").contains(&first), "{v}");
    // Not with the init token either, nor another customer's.
    let (s, _, _) = enroll_raw(&c, json!({"token": c.enrollment_token, "host": "db1"})).await;
    assert_eq!(s, 409);

    // The operator decommissions the old machine: the name is free, and the
    // asset page names the new agent.
    let (ok, out, err) = c.cli(&["agents", "decommission", "db1"]);
    assert!(ok, "{err}");
    assert!(out.contains("decommissioned"), "{out}");
    let (second, secret2) = enroll(&c, &acme, "db1", "acme").await;
    let (s, v) = post(&c, &secret2, md_report(&second, 1, "db1", "acme", 0.0)).await;
    assert_eq!(s, 200, "{v}");
    let asset = c.api("/api/v1/assets/db1").await;
    assert_eq!(asset["agent_id"], second.as_str(), "{asset}");
    let hosts = c.api("/api/v1/hosts").await;
    let ids: Vec<&str> = hosts["hosts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|h| h["agent_id"].as_str())
        .collect();
    assert_eq!(ids, [second.as_str()], "the decommissioned host is archived: {hosts}");
    // The old one's history is still there by id.
    assert_eq!(c.host(&first).await["last_seq"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customers_token_cannot_enroll_another_customers_agent() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let c = Collector::start(dir.path()).await;
    let alpha = c.create_token("alpha", &["--site", "hq"]);
    let (s, v, _) = enroll_raw(
        &c,
        json!({"token": alpha, "host": "b1", "labels": {"customer": "beta", "site": "hq"}}),
    )
    .await;
    assert_eq!((s, v["path"].as_str()), (403, Some("labels.customer")), "{v}");
    assert_eq!(
        v["reason"],
        "agent claims customer \"beta\"; its enrollment token is bound to customer \"alpha\""
    );
    let (s, v, _) = enroll_raw(
        &c,
        json!({"token": alpha, "host": "a2", "labels": {"customer": "alpha", "site": "branch"}}),
    )
    .await;
    assert_eq!((s, v["path"].as_str()), (403, Some("labels.site")), "{v}");

    // An older agent sends no labels: the token's customer and site are its
    // own all the same, and a report claiming beta is refused.
    let (s, v, _) = enroll_raw(&c, json!({"token": alpha, "host": "old-1"})).await;
    assert_eq!(s, 200, "{v}");
    let (id, secret) = (
        v["agent_id"].as_str().unwrap_or("").to_string(),
        v["credential"].as_str().unwrap_or("").to_string(),
    );
    let (s, v) = post(&c, &secret, md_report(&id, 1, "old-1", "beta", 0.0)).await;
    assert_eq!((s, v["path"].as_str()), (403, Some("labels.customer")), "{v}");
    // The listing shows what the token fixed.
    let (ok, out, err) = c.cli(&["agents", "list"]);
    assert!(ok, "{err}");
    let line = out.lines().find(|l| l.contains("old-1")).unwrap_or_default();
    assert!(line.contains("alpha") && line.contains("hq"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_used_up_and_revoked_tokens_are_refused() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let c = Collector::start(dir.path()).await;
    let (once, once_id) = c.create_token_with_id("acme", &["--uses", "1"]);
    let expired = c.create_token("acme", &["--expires", "0s"]);
    let (revoked, revoked_id) = c.create_token_with_id("acme", &["--expires", "7d"]);
    let body = |token: &str, host: &str| json!({"token": token, "host": host, "labels": {"customer": "acme"}});

    let (s, v, _) = enroll_raw(&c, body(&once, "h1")).await;
    assert_eq!(s, 200, "{v}");
    let (s, v, _) = enroll_raw(&c, body(&once, "h2")).await;
    assert_eq!(s, 401, "{v}");
    assert!(
        v["reason"].as_str().unwrap_or("").contains("used up (1 of 1 uses)"),
        "{v}"
    );
    let (s, v, _) = enroll_raw(&c, body(&expired, "h3")).await;
    assert_eq!(s, 401, "{v}");
    assert!(v["reason"].as_str().unwrap_or("").contains("expired"), "{v}");

    let (ok, _, err) = c.cli(&["tokens", "revoke", &revoked_id]);
    assert!(ok, "{err}");
    let (s, v, _) = enroll_raw(&c, body(&revoked, "h4")).await;
    assert_eq!(s, 401, "{v}");
    assert!(v["reason"].as_str().unwrap_or("").contains("revoked"), "{v}");
    let (ok, _, err) = c.cli(&["tokens", "revoke", "nosuchid"]);
    assert!(!ok && err.contains("no enrollment token"), "{err}");

    // The list: ids, customers, uses and states, never a secret.
    let (ok, out, _) = c.cli(&["tokens", "list"]);
    assert!(ok);
    for secret in [&once, &expired, &revoked, &c.enrollment_token] {
        assert!(!out.contains(secret.as_str()), "{out}");
    }
    let line = |id: &str| out.lines().find(|l| l.starts_with(id)).unwrap_or_default().to_string();
    assert!(
        line(&once_id).contains("1/1") && line(&once_id).contains("unusable"),
        "{out}"
    );
    assert!(line(&revoked_id).contains("revoked"), "{out}");

    // Each enrollment is logged with the id of the token that made it,
    // never the secret.
    let log = std::fs::read_to_string(dir.path().join("collector.log")).unwrap_or_default();
    assert!(
        log.lines()
            .any(|l| l.contains("agent enrolled") && l.contains(&once_id)),
        "{log}"
    );
    assert!(!log.contains(once.as_str()), "a token in the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enrollment_flood_is_rate_limited() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let c = Collector::start(dir.path()).await;
    // 40 attempts from one address (bounded): the default per-source burst
    // is 20, refilled at 30 a minute.
    let mut answered = Vec::new();
    let mut retry_after = None;
    for i in 0..40 {
        let (s, _, h) = enroll_raw(&c, json!({"token": "guess", "host": format!("flood-{i}")})).await;
        if s == 429 && retry_after.is_none() {
            retry_after = h.get("retry-after").and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        }
        answered.push(s);
    }
    let limited = answered.iter().filter(|&&s| s == 429).count();
    let refused = answered.iter().filter(|&&s| s == 401).count();
    assert_eq!(limited + refused, 40, "{answered:?}");
    assert!(limited >= 10, "{answered:?}");
    assert!(retry_after.is_some_and(|s| s >= 1), "Retry-After: {retry_after:?}");
    // Logged once for the flood, not once per request.
    let log = std::fs::read_to_string(dir.path().join("collector.log")).unwrap_or_default();
    let lines = log.matches("enrollments refused by the rate limit").count();
    assert!(
        (1..limited).contains(&lines),
        "{lines} lines for {limited} refusals: {log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_agent_is_refused_at_once_and_says_so() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let c = Collector::start(dir.path()).await;
    let agent = Agent::start(dir.path(), &c, 1, "");
    let id = wait_for_host(&c, &agent).await;
    let secret = agent.secret().unwrap_or_default();

    let (ok, out, err) = c.cli(&["agents", "revoke", &id]);
    assert!(ok, "{err}");
    assert!(out.contains("revoked"), "{out}");
    // At once: the collector had the credential cached, the store decides.
    let (s, v) = post(&c, &secret, md_report(&id, 1_000_000, "e2e-host", "acme", 0.0)).await;
    assert_eq!((s, v["error"].as_str()), (401, Some("revoked")), "{v}");
    assert!(v["reason"].as_str().unwrap_or("").contains("revoked"), "{v}");

    // The running agent says so once, keeps its reports and retries.
    eventually("the agent logs its revocation", Duration::from_secs(30), || async {
        agent
            .log_text()
            .contains("credential was revoked by the collector's operator")
            .then_some(())
    })
    .await;
    eventually("reports kept in the spool", Duration::from_secs(30), || async {
        (agent.spool_depth() >= 2).then_some(())
    })
    .await;
    let log = agent.log_text();
    assert_eq!(
        log.matches("credential was revoked by the collector's operator")
            .count(),
        1,
        "logged once per state change: {log}"
    );
    let collector_log = std::fs::read_to_string(dir.path().join("collector.log")).unwrap_or_default();
    assert!(!collector_log.contains("internal error"), "{collector_log}");
    let (ok, out, _) = c.cli(&["agents", "list"]);
    assert!(ok && out.contains("revoked"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_credential_is_taken_with_no_report_lost() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let c = Collector::start(dir.path()).await;
    let agent = Agent::start(dir.path(), &c, 1, "");
    let id = wait_for_host(&c, &agent).await;
    let old = agent.secret().unwrap_or_default();

    let (ok, _, err) = c.cli(&["agents", "rotate", &id]);
    assert!(ok, "{err}");
    let new = eventually(
        "the agent saves its new credential",
        Duration::from_secs(30),
        || async { agent.secret().filter(|s| *s != old) },
    )
    .await;
    // The collector takes the new one at its first use; the old one is void then.
    eventually("the rotation completes", Duration::from_secs(30), || async {
        let v = c.api("/api/v1/agents").await;
        let a = v["agents"]
            .as_array()?
            .iter()
            .find(|a| a["agent_id"] == id.as_str())?
            .clone();
        (a["rotation_pending"] == false && a["rotated_at_ms"].is_i64()).then_some(())
    })
    .await;
    let before = c.host(&id).await["last_seq"].as_u64().unwrap_or(0);
    eventually("reports keep flowing", Duration::from_secs(30), || async {
        (c.host(&id).await["last_seq"].as_u64().unwrap_or(0) > before + 1).then_some(())
    })
    .await;
    let h = c.host(&id).await;
    assert_eq!(h["seq_gaps"], 0, "{h}");
    assert_eq!(h["reports_applied"], h["last_seq"], "no report lost: {h}");
    assert_eq!(
        c.metric_value("caretaker_ingest_reports_rejected_total{reason=\"unauthorized\"}")
            .await,
        Some(0.0),
        "none refused"
    );
    let (s, v) = post(&c, &old, md_report(&id, 1_000_000, "e2e-host", "acme", 0.0)).await;
    assert_eq!(s, 401, "the old credential is void: {v}");
    assert_ne!(new, old);
    assert!(agent.log_text().contains("rotated this agent's credential"));

    // The same through the API, for staff only.
    let (s, v) = c.api_post(&format!("/api/v1/agents/{id}/rotate"), &json!({})).await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["rotation_pending"], true, "{v}");
}
