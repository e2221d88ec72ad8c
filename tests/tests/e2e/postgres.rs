//! The collector with its store on PostgreSQL: serving a real agent, through
//! an outage of the database, and after `migrate-store` moved an SQLite
//! store there. Each test has a database of its own on the server
//! `CARETAKER_TEST_POSTGRES` names, dropped afterwards; without the variable
//! these tests do nothing (and with it set, an unreachable server fails them).

use std::process::Command;
use std::time::Duration;

use serde_json::json;

use crate::util::{Agent, Collector, PgDb, bin, eventually, wait_for_host};

fn store_config(db: &PgDb) -> String {
    format!("[store]\nurl = \"{}\"\n", db.url())
}

/// Every report of `agent_id` in the report log, as (count, distinct
/// sequence numbers, lowest, highest).
fn report_log(db: &PgDb, agent_id: &str) -> (i64, i64, i64, i64) {
    let row = db.query(&format!(
        "SELECT COUNT(*), COUNT(DISTINCT seq), MIN(seq), MAX(seq) FROM report_log WHERE agent_id = '{agent_id}'"
    ));
    let n: Vec<i64> = row.split('|').map(|v| v.parse().unwrap_or(-1)).collect();
    (n[0], n[1], n[2], n[3])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_of_postgresql_answers_503_and_every_spooled_report_arrives_once() {
    let Some(db) = PgDb::create("outage") else { return };
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let collector = Collector::start_on(dir.path(), &store_config(&db)).await;
    let agent = Agent::start(dir.path(), &collector, 1, "");
    let agent_id = wait_for_host(&collector, &agent).await;
    // The store is the database: the data directory holds no SQLite file.
    assert!(!collector.data_dir().join("caretaker.db").exists());
    assert_eq!(db.query("SELECT COUNT(*) FROM agents"), "1");

    db.go_down();
    // Ingest is answered 503 meanwhile: the agent keeps what it collects.
    eventually("reports spooled during the outage", Duration::from_secs(30), || async {
        (agent.spool_depth() >= 3).then_some(())
    })
    .await;
    let (status, _) = ingest_status(&collector).await;
    assert_eq!(status, 503, "ingest while the database is down");

    db.come_back();
    eventually(
        "the spool drained after the outage",
        Duration::from_secs(60),
        || async { (agent.spool_depth() == 0).then_some(()) },
    )
    .await;
    let last = eventually("the host caught up", Duration::from_secs(30), || async {
        let h = collector.host(&agent_id).await;
        h["last_seq"].as_i64().filter(|s| *s > 4)
    })
    .await;
    let (count, distinct, low, high) = report_log(&db, &agent_id);
    assert_eq!(count, distinct, "no report stored twice");
    assert_eq!(low, 1);
    assert!(high >= last);
    assert_eq!(
        count,
        high - low + 1,
        "no report lost: every sequence number from 1 to {high} is there"
    );
    let h = collector.host(&agent_id).await;
    assert_eq!(h["seq_gaps"].as_i64(), Some(0), "{h}");
    assert!(collector.metrics().await.contains("caretaker_store_reads_in_use"));
}

/// A report post with a credential nobody has: 401 while the store is up,
/// 503 while it cannot be read.
async fn ingest_status(c: &Collector) -> (u16, String) {
    let resp = c
        .client
        .post(format!("{}/api/v1/reports", c.url()))
        .bearer_auth("not-a-credential")
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap_or_else(|e| panic!("ingest: {e}"));
    let status = resp.status().as_u16();
    (status, resp.text().await.unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_store_moves_a_running_fleet_to_postgresql_with_the_same_answers() {
    let Some(db) = PgDb::create("migrate") else { return };
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));

    let mut collector = Collector::start_sqlite(dir.path()).await;
    let mut agent = Agent::start(dir.path(), &collector, 1, "");
    let agent_id = wait_for_host(&collector, &agent).await;
    // A case an engineer opened and worked, with its log.
    let (status, case) = collector
        .api_post(
            "/api/v1/cases",
            &json!({"asset": "e2e-host", "title": "Backup job fails", "severity": "major"}),
        )
        .await;
    assert!(status.is_success(), "{status} {case}");
    let id = case["id"].as_i64().unwrap_or_else(|| panic!("{case}"));
    let (status, v) = collector
        .api_post(
            &format!("/api/v1/cases/{id}/actions"),
            &json!({"action": "comment", "comment": "looking at the job log"}),
        )
        .await;
    assert!(status.is_success(), "{status} {v}");
    eventually("a few reports", Duration::from_secs(30), || async {
        let h = collector.host(&agent_id).await;
        h["last_seq"].as_i64().filter(|s| *s >= 3)
    })
    .await;
    agent.stop();
    let paths = [
        "/api/v1/hosts".to_string(),
        format!("/api/v1/hosts/{agent_id}"),
        format!("/api/v1/cases/{id}"),
        "/api/v1/cases".to_string(),
        "/api/v1/queue".to_string(),
        "/api/v1/assets/e2e-host/history".to_string(),
    ];
    let mut before = Vec::new();
    for p in &paths {
        before.push(collector.api(p).await);
    }
    collector.stop();
    let old_url = collector.url();

    let out = Command::new(bin("caretaker-collector"))
        .args(["migrate-store", "--from"])
        .arg(collector.data_dir())
        .args(["--to", &db.url()])
        .output()
        .unwrap_or_else(|e| panic!("migrate-store: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "migrate-store: {stderr}");
    assert!(stdout.contains("every count checked"), "{stdout}");
    assert!(stderr.contains("item_log: "), "{stderr}");
    // A second run is refused: the target now holds rows.
    let again = Command::new(bin("caretaker-collector"))
        .args(["migrate-store", "--from"])
        .arg(collector.data_dir())
        .args(["--to", &db.url()])
        .output()
        .unwrap_or_else(|e| panic!("migrate-store: {e}"));
    assert!(!again.status.success());
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("not empty"),
        "{}",
        String::from_utf8_lossy(&again.stderr)
    );

    // The same data directory (certificates, tokens), the store on PostgreSQL.
    std::fs::write(dir.path().join("collector.toml"), store_config(&db)).unwrap_or_else(|e| panic!("{e}"));
    std::fs::rename(
        collector.data_dir().join("caretaker.db"),
        dir.path().join("caretaker.db.migrated"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    drop(collector);
    let collector = Collector::open_with(dir.path(), Some(dir.path().join("collector.toml"))).await;
    for (p, was) in paths.iter().zip(&before) {
        let now = collector.api(p).await;
        assert_eq!(&now, was, "GET {p}");
    }
    // The agent carries on with the credential it had, into PostgreSQL.
    let last_before = before[1]["last_seq"].as_i64().unwrap_or(0);
    let text = std::fs::read_to_string(&agent.config).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&agent.config, text.replace(&old_url, &collector.url())).unwrap_or_else(|e| panic!("{e}"));
    agent.spawn();
    eventually("reports after the move", Duration::from_secs(30), || async {
        let h = collector.host(&agent_id).await;
        h["last_seq"].as_i64().filter(|s| *s > last_before)
    })
    .await;
    // A new case continues the numbering.
    let (status, next) = collector
        .api_post(
            "/api/v1/cases",
            &json!({"asset": "e2e-host", "title": "Fan noise", "severity": "warning"}),
        )
        .await;
    assert!(status.is_success(), "{status} {next}");
    assert!(next["id"].as_i64().unwrap_or(0) > id, "{next}");
}

/// The collector is killed (SIGKILL) while an agent sends and an engineer
/// comments on a case: after the restart every acknowledged report and
/// comment is there once, and the case is still one case.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_killed_mid_ingest_and_mid_case_actions_loses_nothing_acknowledged() {
    let Some(db) = PgDb::create("sigkill") else { return };
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut collector = Collector::start_on(dir.path(), &store_config(&db)).await;
    let agent = Agent::start(dir.path(), &collector, 1, "");
    let agent_id = wait_for_host(&collector, &agent).await;
    let (status, case) = collector
        .api_post(
            "/api/v1/cases",
            &json!({"asset": "e2e-host", "title": "Backup job fails", "severity": "major"}),
        )
        .await;
    assert!(status.is_success(), "{status} {case}");
    let id = case["id"].as_i64().unwrap_or_else(|| panic!("{case}"));

    // Comments as fast as they are answered, until the collector dies.
    let mut acknowledged = Vec::new();
    let started = std::time::Instant::now();
    let mut n = 0;
    while started.elapsed() < Duration::from_secs(2) {
        n += 1;
        let (status, _) = collector
            .api_post(
                &format!("/api/v1/cases/{id}/actions"),
                &json!({"action": "comment", "comment": format!("note {n}")}),
            )
            .await;
        if status.is_success() {
            acknowledged.push(format!("note {n}"));
        }
    }
    // One more in flight as the process dies.
    let client = collector.client.clone();
    let url = format!("{}/api/v1/cases/{id}/actions", collector.url());
    let token = collector.api_token.clone();
    let last = format!("note {}", n + 1);
    let in_flight = tokio::spawn({
        let last = last.clone();
        async move {
            client
                .post(url)
                .bearer_auth(token)
                .json(&json!({"action": "comment", "comment": last}))
                .send()
                .await
                .map(|r| r.status().is_success())
                .unwrap_or(false)
        }
    });
    collector.kill();
    if in_flight.await.unwrap_or(false) {
        acknowledged.push(last);
    }
    assert!(acknowledged.len() > 5, "{acknowledged:?}");

    collector.spawn().await;
    eventually(
        "the spool drained after the restart",
        Duration::from_secs(60),
        || async { (agent.spool_depth() == 0).then_some(()) },
    )
    .await;
    let comments = db.query(&format!(
        "SELECT comment FROM item_log WHERE item_id = {id} AND comment LIKE 'note %' ORDER BY id"
    ));
    let comments: Vec<&str> = comments.lines().collect();
    for a in &acknowledged {
        assert_eq!(
            comments.iter().filter(|c| *c == a).count(),
            1,
            "{a} acknowledged, so stored once: {comments:?}"
        );
    }
    assert_eq!(
        db.query("SELECT COUNT(*) FROM items WHERE kind = 'case' AND asset = 'e2e-host'"),
        "1",
        "still one case"
    );
    let (count, distinct, low, high) = report_log(&db, &agent_id);
    assert_eq!((count, low), (distinct, 1), "no report stored twice");
    assert_eq!(count, high - low + 1, "no report lost");
    // Every change of the case reached the outbox with it.
    assert_eq!(
        db.query(&format!("SELECT COUNT(*) FROM item_log WHERE item_id = {id}")),
        db.query(&format!("SELECT COUNT(*) FROM outbox WHERE item_id = {id}")),
    );
}
