//! Ingest edge cases over a real TLS socket: credentials, replays, malformed,
//! invalid and oversized bodies. A rejected report changes nothing.

use caretaker_tests::{enroll, gzip, post_report, synthetic_report};
use serde_json::Value;

use crate::util::Collector;

async fn raw(c: &Collector, credential: Option<&str>, encoding: Option<&str>, body: Vec<u8>) -> (u16, Value) {
    let mut req = c
        .client
        .post(format!("{}/api/v1/reports", c.url()))
        .header("content-type", "application/json")
        .body(body);
    if let Some(cred) = credential {
        req = req.bearer_auth(cred);
    }
    if let Some(e) = encoding {
        req = req.header("content-encoding", e);
    }
    let resp = req.send().await.unwrap_or_else(|e| panic!("post: {e}"));
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

fn body(r: &caretaker_shared::wire::Report) -> Vec<u8> {
    gzip(&serde_json::to_vec(r).unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_replays_and_bad_bodies() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let c = Collector::start(dir.path()).await;
    let url = c.url();

    // Enrollment needs the right token.
    let bad = c
        .client
        .post(format!("{url}/api/v1/enroll"))
        .json(&serde_json::json!({"token": "nope", "host": "x"}))
        .send()
        .await;
    assert_eq!(bad.map(|r| r.status().as_u16()).ok(), Some(401));
    let a = enroll(&c.client, &url, &c.enrollment_token, "h-a")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let b = enroll(&c.client, &url, &c.enrollment_token, "h-b")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(a.agent_id, b.agent_id);

    let r1 = synthetic_report(&a.agent_id, "h-a", 1, 50);
    // No credential, a wrong one, and another agent's: 401, nothing applied.
    assert_eq!(raw(&c, None, Some("gzip"), body(&r1)).await.0, 401);
    let (s, v) = raw(&c, Some("0000"), Some("gzip"), body(&r1)).await;
    assert_eq!((s, v["error"].as_str()), (401, Some("unauthorized")));
    let (s, v) = raw(&c, Some(&b.credential), Some("gzip"), body(&r1)).await;
    assert_eq!(s, 401, "{v}");
    assert!(v["reason"].as_str().unwrap_or("").contains("does not belong"), "{v}");

    // Applied once; the replay answers 409 and changes nothing.
    let (s, v) = post_report(&c.client, &url, &a.credential, body(&r1))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((s, v["seq"].as_u64()), (200, Some(1)), "{v}");
    let (s, v) = post_report(&c.client, &url, &a.credential, body(&r1))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (s, v["error"].as_str(), v["last_seq"].as_u64()),
        (409, Some("duplicate"), Some(1)),
        "{v}"
    );
    let h = c.host(&a.agent_id).await;
    assert_eq!(
        (h["reports_applied"].as_u64(), h["last_seq"].as_u64()),
        (Some(1), Some(1))
    );

    let before = c.host(&a.agent_id).await;
    let mut bad = synthetic_report(&a.agent_id, "h-a", 2, 10);
    // Malformed JSON: 400 naming the field.
    let mut v: Value = serde_json::to_value(&bad).unwrap_or_default();
    v["samples"][3]["value"] = Value::String("lots".into());
    let (s, e) = raw(
        &c,
        Some(&a.credential),
        Some("gzip"),
        gzip(&serde_json::to_vec(&v).unwrap_or_default()),
    )
    .await;
    assert_eq!(
        (s, e["error"].as_str(), e["path"].as_str()),
        (400, Some("malformed"), Some("samples[3].value")),
        "{e}"
    );
    // Not JSON at all, uncompressed.
    let (s, e) = raw(&c, Some(&a.credential), None, b"{\"version\":1,".to_vec()).await;
    assert_eq!((s, e["error"].as_str()), (400, Some("malformed")), "{e}");
    // Hostile nesting.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let (s, _) = raw(&c, Some(&a.credential), None, deep.into_bytes()).await;
    assert_eq!(s, 400);
    // Corrupt gzip.
    let (s, e) = raw(&c, Some(&a.credential), Some("gzip"), b"\x1f\x8bnot really".to_vec()).await;
    assert_eq!((s, e["error"].as_str()), (400, Some("malformed")), "{e}");
    // Valid JSON, invalid report: every problem with its path.
    bad.samples[0].value = 1.0;
    bad.samples[1].labels.insert("host".into(), "spoofed".into());
    bad.version = 7;
    let (s, e) = raw(&c, Some(&a.credential), Some("gzip"), body(&bad)).await;
    assert_eq!(
        (s, e["error"].as_str(), e["path"].as_str()),
        (400, Some("invalid"), Some("version")),
        "{e}"
    );
    let paths: Vec<&str> = e["problems"]
        .as_array()
        .map(|a| a.iter().filter_map(|p| p["path"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        paths.contains(&"version") && paths.contains(&"samples[1].labels.host"),
        "{e}"
    );
    // Unsupported encoding.
    let (s, _) = raw(&c, Some(&a.credential), Some("br"), body(&bad)).await;
    assert_eq!(s, 415);
    // Oversized as sent (> 1 MiB) and a gzip bomb (> 16 MiB once inflated).
    let (s, e) = raw(&c, Some(&a.credential), None, vec![b' '; 2 * 1024 * 1024]).await;
    assert_eq!((s, e["error"].as_str()), (413, Some("too_large")), "{e}");
    let bomb = gzip(&vec![b' '; 40 * 1024 * 1024]);
    assert!(bomb.len() < 1024 * 1024);
    let (s, e) = raw(&c, Some(&a.credential), Some("gzip"), bomb).await;
    assert_eq!((s, e["error"].as_str()), (413, Some("too_large")), "{e}");

    // None of it changed the host.
    let after = c.host(&a.agent_id).await;
    for k in ["last_seq", "reports_applied", "seq_gaps", "last_collected_at_ms"] {
        assert_eq!(before[k], after[k], "{k} changed");
    }
    let m = c.metrics().await;
    for (reason, n) in [
        ("unauthorized", 3),
        ("malformed", 4),
        ("invalid", 1),
        ("unsupported_encoding", 1),
        ("too_large", 2),
    ] {
        let line = format!("caretaker_ingest_reports_rejected_total{{reason=\"{reason}\"}} {n}");
        assert!(m.contains(&line), "missing {line}\n{m}");
    }
    assert!(m.contains("caretaker_ingest_reports_accepted_total 1\n"));
    assert!(m.contains("caretaker_ingest_reports_duplicate_total 1\n"));

    // The next good report goes through; a jump in sequence is counted as a gap.
    let r5 = synthetic_report(&a.agent_id, "h-a", 5, 20);
    let (s, _) = post_report(&c.client, &url, &a.credential, body(&r5))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s, 200);
    let h = c.host(&a.agent_id).await;
    assert_eq!(
        (
            h["last_seq"].as_u64(),
            h["reports_applied"].as_u64(),
            h["seq_gaps"].as_u64()
        ),
        (Some(5), Some(2), Some(3))
    );
    // An older sequence after a newer one is a replay.
    let r3 = synthetic_report(&a.agent_id, "h-a", 3, 20);
    assert_eq!(
        post_report(&c.client, &url, &a.credential, body(&r3))
            .await
            .map(|x| x.0)
            .ok(),
        Some(409)
    );

    // The API wants its token.
    let resp = c
        .client
        .get(format!("{url}/api/v1/hosts"))
        .send()
        .await
        .map(|r| r.status().as_u16())
        .ok();
    assert_eq!(resp, Some(401));
    let resp = c
        .client
        .get(format!("{url}/api/v1/hosts"))
        .bearer_auth(&a.credential)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .ok();
    assert_eq!(resp, Some(401), "an agent credential is not an API token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_is_refused_and_tls_needs_the_pinned_ca() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let c = Collector::start(dir.path()).await;
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{}/healthz", c.port))
        .send()
        .await;
    assert!(plain.map(|r| !r.status().is_success()).unwrap_or(true));
    // A client that trusts only another CA refuses the collector.
    let other = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let out = std::process::Command::new(crate::util::bin("caretaker-collector"))
        .args(["init", "--data-dir"])
        .arg(other.path().join("d"))
        .output();
    assert!(out.is_ok_and(|o| o.status.success()));
    let foreign = caretaker_tests::client(&other.path().join("d/ca.pem")).unwrap_or_else(|e| panic!("{e}"));
    assert!(foreign.get(format!("{}/healthz", c.url())).send().await.is_err());
}

/// One report of host `dbhost` (customer acme) with its databases' `up`
/// values; the first carries the inventory, so the host is known. Long
/// enough an interval that no absence rule fires while the test runs.
fn db_report(agent_id: &str, seq: u64, dbs: &[(&str, f64)]) -> Vec<u8> {
    crate::util::db_up_report(agent_id, seq, "dbhost", 300, dbs, seq == 1)
}

/// `kind key` of every finding and case a collector holds.
async fn serve_items(c: &Collector) -> Vec<String> {
    let mut all = Vec::new();
    for kind in ["findings", "cases"] {
        let v = c.api(&format!("/api/v1/{kind}?status=all")).await;
        for i in v[kind].as_array().into_iter().flatten() {
            let k = &i["key"];
            all.push(format!(
                "{} {}/{}/{}/{}",
                i["kind"].as_str().unwrap_or(""),
                k["customer"].as_str().unwrap_or(""),
                k["asset"].as_str().unwrap_or(""),
                k["check"].as_str().unwrap_or(""),
                k["component"].as_str().unwrap_or("")
            ));
        }
    }
    all.sort();
    all
}

/// `serve` and `replay` run one ingest and one pipeline: the raw reports a
/// running collector kept, exported and replayed, open exactly the findings
/// and cases that collector opened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_of_exported_reports_opens_what_serve_opened() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let c = Collector::start_with_config(dir.path(), "[detect]\ntick_secs = 1\n").await;
    let a = enroll(&c.client, &c.url(), &c.enrollment_token, "dbhost")
        .await
        .unwrap_or_else(|e| panic!("enroll: {e}"));
    let reports: [&[(&str, f64)]; 4] = [
        &[("main", 1.0), ("reports", 1.0)],
        &[("main", 0.0), ("reports", 1.0)],
        &[("main", 0.0), ("reports", 0.0)],
        &[("main", 1.0), ("reports", 0.0)],
    ];
    for (i, dbs) in reports.iter().enumerate() {
        let body = db_report(&a.agent_id, i as u64 + 1, dbs);
        let (status, v) = post_report(&c.client, &c.url(), &a.credential, body)
            .await
            .unwrap_or_else(|e| panic!("post: {e}"));
        assert_eq!(status, 200, "{v}");
    }
    let served = crate::util::eventually("both databases' cases", std::time::Duration::from_secs(20), || async {
        let items = serve_items(&c).await;
        (items.iter().filter(|i| i.contains("/database_down/")).count() == 2).then_some(items)
    })
    .await;

    let (ok, exported, stderr) = c.cli(&["export-reports"]);
    assert!(ok, "{stderr}");
    assert_eq!(exported.lines().count(), reports.len(), "{exported}");
    let input = dir.path().join("exported.jsonl");
    std::fs::write(&input, &exported).unwrap_or_else(|e| panic!("{e}"));
    let out = std::process::Command::new(crate::util::bin("caretaker-collector"))
        .arg("replay")
        .arg("--input")
        .arg(&input)
        .output()
        .unwrap_or_else(|e| panic!("replay: {e}"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut replayed: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|e| matches!(e["event"].as_str(), Some("opened" | "recurrence")))
        .map(|e| {
            format!(
                "{} {}",
                e["kind"].as_str().unwrap_or(""),
                e["key"].as_str().unwrap_or("")
            )
        })
        .collect();
    replayed.sort();
    assert_eq!(replayed, served);
}
