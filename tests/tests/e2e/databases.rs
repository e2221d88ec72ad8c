//! Database health end to end: an agent watching this machine's real
//! PostgreSQL, MariaDB and Redis, plus a database that refuses connections and
//! one that accepts and never answers. The live ones are up in `/metrics`, the
//! dead ones are down with their error class, and reports keep coming on time.
//!
//! The servers' addresses come from `CARETAKER_TEST_POSTGRES`,
//! `CARETAKER_TEST_MARIADB` and `CARETAKER_TEST_REDIS` (`.ci/run` sets them);
//! without them the test says so and does nothing.

use std::time::Duration;

use crate::util::{Agent, Collector, eventually, once_print, wait_for_host};

struct Servers {
    postgres: String,
    mariadb: String,
    redis: String,
}

fn servers() -> Option<Servers> {
    let get = |v: &str| std::env::var(v).ok();
    match (
        get("CARETAKER_TEST_POSTGRES"),
        get("CARETAKER_TEST_MARIADB"),
        get("CARETAKER_TEST_REDIS"),
    ) {
        (Some(postgres), Some(mariadb), Some(redis)) => Some(Servers {
            postgres,
            mariadb,
            redis,
        }),
        _ => {
            eprintln!("CARETAKER_TEST_POSTGRES/MARIADB/REDIS not all set; skipping");
            None
        }
    }
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    l.local_addr().map(|a| a.port()).unwrap_or_else(|e| panic!("{e}"))
}

/// A server that accepts connections and never says a word; held until dropped.
fn silent_server() -> (u16, std::thread::JoinHandle<()>) {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
    let port = l.local_addr().map(|a| a.port()).unwrap_or_else(|e| panic!("{e}"));
    let h = std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in l.incoming().flatten() {
            held.push(s);
            if held.len() > 200 {
                break;
            }
        }
    });
    (port, h)
}

fn targets(s: &Servers, refused_port: u16, silent_port: u16) -> String {
    format!(
        r#"
[[databases]]
name = "pg"
kind = "postgresql"
address = "{}"
interval_secs = 1
[[databases]]
name = "maria"
kind = "mariadb"
address = "{}"
user = "root"
interval_secs = 1
[[databases]]
name = "cache"
kind = "redis"
address = "{}"
interval_secs = 1
[[databases]]
name = "gone"
kind = "redis"
address = "127.0.0.1:{refused_port}"
interval_secs = 1
connect_timeout_ms = 500
[[databases]]
name = "hung"
kind = "postgresql"
address = "127.0.0.1:{silent_port}"
interval_secs = 1
connect_timeout_ms = 500
query_timeout_ms = 500
"#,
        s.postgres, s.mariadb, s.redis
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_and_dead_databases_in_metrics_while_reports_keep_coming() {
    let Some(s) = servers() else { return };
    let (silent, _h) = silent_server();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let collector = Collector::start(dir.path()).await;
    let extra = format!(
        "collectors = [\"cpu\", \"databases\"]\n{}",
        targets(&s, closed_port(), silent)
    );
    let agent = Agent::start(dir.path(), &collector, 1, &extra);
    let id = wait_for_host(&collector, &agent).await;

    let l = "host=\"e2e-host\",customer=\"acme\",site=\"hq\"";
    for (db, kind, up) in [
        ("pg", "postgresql", 1.0),
        ("maria", "mariadb", 1.0),
        ("cache", "redis", 1.0),
        ("gone", "redis", 0.0),
        ("hung", "postgresql", 0.0),
    ] {
        let series = format!("caretaker_db_up{{{l},db=\"{db}\",kind=\"{kind}\"}}");
        eventually(&format!("{db} up={up}"), Duration::from_secs(30), || async {
            (collector.metric_value(&series).await == Some(up)).then_some(())
        })
        .await;
    }
    let class = |db: &str, kind: &str, class: &str| {
        format!("caretaker_db_error{{{l},class=\"{class}\",db=\"{db}\",kind=\"{kind}\"}}")
    };
    assert_eq!(
        collector.metric_value(&class("gone", "redis", "refused")).await,
        Some(1.0)
    );
    assert_eq!(
        collector.metric_value(&class("hung", "postgresql", "timeout")).await,
        Some(1.0)
    );
    assert_eq!(
        collector.metric_value(&class("hung", "postgresql", "refused")).await,
        Some(0.0)
    );

    // The live servers' own figures are there.
    let text = collector.metrics().await;
    for needle in [
        format!("caretaker_db_max_connections{{{l},db=\"pg\",kind=\"postgresql\"}}"),
        format!("caretaker_db_max_connections{{{l},db=\"maria\",kind=\"mariadb\"}}"),
        format!("caretaker_db_max_connections{{{l},db=\"cache\",kind=\"redis\"}}"),
        format!("caretaker_pg_deadlocks_total{{{l},database=\"postgres\",db=\"pg\",kind=\"postgresql\"}}"),
        format!("caretaker_mysql_innodb_buffer_pool_hit_ratio{{{l},db=\"maria\",kind=\"mariadb\"}}"),
        format!("caretaker_redis_memory_used_bytes{{{l},db=\"cache\",kind=\"redis\"}}"),
    ] {
        assert!(text.contains(&needle), "missing {needle}");
    }

    // A dead and a silent database delay nothing: reports arrive every second.
    let first = collector.host(&id).await["last_seq"].as_u64().unwrap_or(0);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let later = collector.host(&id).await["last_seq"].as_u64().unwrap_or(0);
    assert!(later >= first + 3, "reports stalled: seq {first} -> {later} in 4 s");
}

#[test]
fn a_down_database_is_an_event_and_the_rest_of_the_report_arrives() {
    let Some(s) = servers() else { return };
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let (silent, _h) = silent_server();
    let started = std::time::Instant::now();
    let report = once_print(
        dir.path(),
        &format!(
            "collectors = [\"memory\", \"databases\"]\n{}",
            targets(&s, closed_port(), silent)
        ),
    );
    // Polls run side by side: the silent server costs its timeout once, not per database.
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    let events = report["events"].as_array().cloned().unwrap_or_default();
    let down: Vec<(String, String)> = events
        .iter()
        .filter(|e| e["kind"] == "database_down")
        .map(|e| {
            (
                e["labels"]["db"].as_str().unwrap_or_default().to_string(),
                e["labels"]["class"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    assert_eq!(
        down,
        vec![
            ("gone".to_string(), "refused".to_string()),
            ("hung".to_string(), "timeout".to_string())
        ],
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .all(|e| e["kind"] != "database_down" || e["severity"] == "critical")
    );
    let samples = report["samples"].as_array().cloned().unwrap_or_default();
    assert!(
        samples.iter().any(|x| x["metric"] == "caretaker_memory_total_bytes"),
        "the rest arrived"
    );
    let up = |db: &str| {
        samples
            .iter()
            .find(|x| x["metric"] == "caretaker_db_up" && x["labels"]["db"] == db)
            .map(|x| x["value"].clone())
    };
    assert_eq!(up("pg"), Some(1.0.into()));
    assert_eq!(up("maria"), Some(1.0.into()));
    assert_eq!(up("cache"), Some(1.0.into()));
    assert_eq!(up("gone"), Some(0.0.into()));
}
