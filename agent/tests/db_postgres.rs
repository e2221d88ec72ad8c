//! The PostgreSQL poller against a real server, named by
//! `CARETAKER_TEST_POSTGRES` (`127.0.0.1:5432`; a superuser `postgres` that can
//! log in without a password). Without the variable the tests that need the
//! server print a note and pass; with it, an unreachable server fails them.
//! The error-class tests that need no server (closed port, silent server) always run.
//!
//! Values are checked against the server's own view, read over a separate
//! session, and the conditions an admin is paged for (a long transaction, a
//! deadlock) are provoked for real.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use caretaker_agent::collectors::databases::Databases;
use caretaker_agent::collectors::{Collector, Samples};
use caretaker_agent::databases::{self, DbKind, DbState, DbTarget, Secret};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

const NAME: &str = "pg-test";

/// The server's address, or `None` (with a note) when the tests are not set up for one.
fn server(test: &str) -> Option<String> {
    match std::env::var("CARETAKER_TEST_POSTGRES") {
        Ok(a) if !a.is_empty() => Some(a),
        _ => {
            eprintln!("{test}: CARETAKER_TEST_POSTGRES is not set; skipped");
            None
        }
    }
}

fn target(address: &str) -> DbTarget {
    DbTarget::new(NAME, DbKind::Postgresql, address)
}

/// A session of the test's own, to read the server's view and to provoke
/// conditions. Panics (fails the test) when the server is not reachable.
async fn session(address: &str) -> Client {
    let (host, port) = address.rsplit_once(':').expect("HOST:PORT");
    let mut c = tokio_postgres::Config::new();
    c.host(host.trim_start_matches('[').trim_end_matches(']'))
        .port(port.parse().expect("port"))
        .user("postgres")
        .dbname("postgres")
        .connect_timeout(Duration::from_secs(5));
    let (client, conn) = c
        .connect(NoTls)
        .await
        .unwrap_or_else(|e| panic!("CARETAKER_TEST_POSTGRES={address} is set but unreachable: {e}"));
    tokio::spawn(conn);
    client
}

/// What `SHOW setting` prints.
async fn show(me: &Client, sql: &str) -> String {
    me.simple_query(sql)
        .await
        .unwrap()
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        })
        .unwrap()
}

async fn poll(t: &DbTarget) -> Samples {
    databases::poll(t)
        .await
        .unwrap_or_else(|e| panic!("poll of {} failed ({}): {e}", t.address, e.class()))
}

/// The value of the one sample of `metric` carrying `labels` (beyond db and kind).
fn value(s: &Samples, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let found: Vec<f64> =
        s.0.iter()
            .filter(|x| {
                x.metric == metric
                    && x.labels.get("db").map(String::as_str) == Some(NAME)
                    && x.labels.get("kind").map(String::as_str) == Some("postgresql")
                    && labels
                        .iter()
                        .all(|(k, v)| x.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .map(|x| x.value)
            .collect();
    assert!(found.len() <= 1, "{metric} {labels:?} is not one series: {found:?}");
    found.first().copied()
}

#[tokio::test]
async fn values_match_the_servers_own_view() {
    let Some(addr) = server("values_match_the_servers_own_view") else {
        return;
    };
    let me = session(&addr).await;
    let t = target(&addr);
    let s = poll(&t).await;

    // Every sample is in the catalogue with exactly its labels.
    for x in &s.0 {
        let def =
            caretaker_shared::catalogue::lookup(&x.metric).unwrap_or_else(|| panic!("{} not catalogued", x.metric));
        let mut want: Vec<&str> = def.labels.to_vec();
        want.sort_unstable();
        let got: Vec<&str> = x.labels.keys().map(String::as_str).collect();
        assert_eq!(got, want, "{}", x.metric);
        assert!(x.value.is_finite(), "{} {:?} = {}", x.metric, x.labels, x.value);
    }

    let max_conn: f64 = show(&me, "SHOW max_connections").await.parse().unwrap();
    assert_eq!(value(&s, "caretaker_db_max_connections", &[]), Some(max_conn));
    let version = show(&me, "SHOW server_version").await;
    assert_eq!(value(&s, "caretaker_db_info", &[("version", &version)]), Some(1.0));

    let size: i64 = me
        .query_one("SELECT pg_database_size('postgres')", &[])
        .await
        .unwrap()
        .get(0);
    let polled = value(&s, "caretaker_pg_database_size_bytes", &[("database", "postgres")]).unwrap();
    // Other sessions may write meanwhile; a few MiB either way is the same database.
    assert!(
        (polled - size as f64).abs() <= (size as f64 * 0.1).max(4.0 * 1024.0 * 1024.0),
        "polled {polled}, server says {size}"
    );

    // This test's session and the poller's own are both client backends.
    assert!(value(&s, "caretaker_db_connections", &[]).unwrap() >= 2.0);
    assert!(value(&s, "caretaker_db_uptime_seconds", &[]).unwrap() > 0.0);
    let in_recovery: bool = me.query_one("SELECT pg_is_in_recovery()", &[]).await.unwrap().get(0);
    let role = if in_recovery { "standby" } else { "primary" };
    assert_eq!(value(&s, "caretaker_pg_replication_role", &[("role", role)]), Some(1.0));
    let ratio = value(&s, "caretaker_pg_cache_hit_ratio", &[("database", "postgres")]).unwrap();
    assert!((0.0..=1.0).contains(&ratio), "{ratio}");
    let age: i32 = me
        .query_one("SELECT max(age(datfrozenxid)) FROM pg_database", &[])
        .await
        .unwrap()
        .get(0);
    let polled_age = value(&s, "caretaker_pg_frozen_xid_age", &[]).unwrap();
    assert!((polled_age - f64::from(age)).abs() < 1_000.0, "{polled_age} vs {age}");
    for reason in ["requested", "timed"] {
        assert!(value(&s, "caretaker_pg_checkpoints", &[("reason", reason)]).is_some());
    }
    assert!(value(&s, "caretaker_pg_wal_archive_failures", &[]).is_some());

    // A good poll reads as up through the collector.
    let state = Arc::new(DbState::default());
    databases::poll_and_publish(&t, &state).await;
    let mut out = Samples::default();
    Databases::new(state).collect(&mut out).unwrap();
    assert_eq!(value(&out, "caretaker_db_up", &[]), Some(1.0));
    assert!(!out.0.iter().any(|x| x.metric == "caretaker_db_error"));
}

#[tokio::test]
async fn an_open_transaction_shows_its_age() {
    let Some(addr) = server("an_open_transaction_shows_its_age") else {
        return;
    };
    let holder = session(&addr).await;
    holder.batch_execute("BEGIN").await.unwrap();
    // Takes a transaction ID, as an application's first write would.
    holder.simple_query("SELECT txid_current()").await.unwrap();
    tokio::time::sleep(Duration::from_millis(2_200)).await;
    let s = poll(&target(&addr)).await;
    holder.batch_execute("ROLLBACK").await.unwrap();

    let oldest = value(&s, "caretaker_pg_oldest_transaction_seconds", &[]).unwrap();
    assert!((2.0..600.0).contains(&oldest), "oldest transaction {oldest} s");
    let idle = value(&s, "caretaker_pg_oldest_idle_in_transaction_seconds", &[]).unwrap();
    assert!((2.0..600.0).contains(&idle), "idle in transaction {idle} s");
}

#[tokio::test]
async fn a_deadlock_is_counted_in_its_database() {
    let Some(addr) = server("a_deadlock_is_counted_in_its_database") else {
        return;
    };
    let a = session(&addr).await;
    let b = session(&addr).await;
    // A real table: both sessions must see it. The name is this test's own.
    let table = format!("caretaker_test_deadlock_{}", std::process::id());
    a.batch_execute(&format!(
        "DROP TABLE IF EXISTS {table};
         CREATE TABLE {table} (id int PRIMARY KEY, v int);
         INSERT INTO {table} VALUES (1, 0), (2, 0);"
    ))
    .await
    .unwrap();

    let t = target(&addr);
    let deadlocks = |s: &Samples| value(s, "caretaker_pg_deadlocks", &[("database", "postgres")]).unwrap();
    let before = deadlocks(&poll(&t).await);

    a.batch_execute(&format!("BEGIN; UPDATE {table} SET v = 1 WHERE id = 1"))
        .await
        .unwrap();
    b.batch_execute(&format!("BEGIN; UPDATE {table} SET v = 2 WHERE id = 2"))
        .await
        .unwrap();
    let a_sql = format!("UPDATE {table} SET v = 1 WHERE id = 2");
    let b_sql = format!("UPDATE {table} SET v = 2 WHERE id = 1");
    let (ra, rb) = tokio::join!(a.batch_execute(&a_sql), async {
        // A waits on B's row first, so the cycle closes when B asks for A's.
        tokio::time::sleep(Duration::from_millis(300)).await;
        b.batch_execute(&b_sql).await
    });
    let victims = [&ra, &rb]
        .iter()
        .filter(|r| r.as_ref().err().and_then(|e| e.code()) == Some(&SqlState::T_R_DEADLOCK_DETECTED))
        .count();
    a.batch_execute("ROLLBACK").await.unwrap();
    b.batch_execute("ROLLBACK").await.unwrap();
    a.batch_execute(&format!("DROP TABLE {table}")).await.unwrap();
    assert_eq!(victims, 1, "A: {ra:?}, B: {rb:?}");

    // The victim's backend reports the deadlock to the statistics a little
    // later (PostgreSQL batches statistics updates), so poll until it shows.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let after = deadlocks(&poll(&t).await);
        if after >= before + 1.0 {
            break;
        }
        assert!(Instant::now() < deadline, "deadlocks stayed at {after} (was {before})");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test]
async fn an_unknown_role_is_auth_failed() {
    let Some(addr) = server("an_unknown_role_is_auth_failed") else {
        return;
    };
    // Reachability first, so a down server is not mistaken for the class under test.
    drop(session(&addr).await);
    let mut t = target(&addr);
    // This server trusts every login, so only a role that does not exist is refused (SQLSTATE 28000).
    t.user = Some(format!("caretaker_no_such_role_{}", std::process::id()));
    t.password = Some(Secret::new("hunter2"));
    let started = Instant::now();
    let e = databases::poll(&t).await.expect_err("login as an unknown role fails");
    assert_eq!(e.class(), "auth_failed", "{e}");
    assert!(started.elapsed() < t.connect_timeout(), "{:?}", started.elapsed());
    assert!(!e.to_string().contains("hunter2") && !format!("{e:?}").contains("hunter2"));
}

/// A port nothing listens on: bound by the OS, then released.
fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    port
}

/// A server that accepts connections and never says a word, kept for as long
/// as the returned listener task lives.
async fn silent_server() -> (String, tokio::task::JoinHandle<()>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = l.accept().await {
            held.push(sock);
        }
    });
    (addr, task)
}

#[tokio::test]
async fn a_closed_port_is_refused() {
    let t = target(&format!("127.0.0.1:{}", closed_port()));
    let started = Instant::now();
    let e = databases::poll(&t).await.expect_err("nothing listens");
    assert_eq!(e.class(), "refused", "{e}");
    assert!(started.elapsed() < t.connect_timeout());
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let (addr, task) = silent_server().await;
    let mut t = target(&addr);
    t.connect_timeout_ms = 500;
    let started = Instant::now();
    let e = databases::poll(&t).await.expect_err("no answer");
    let took = started.elapsed();
    task.abort();
    assert_eq!(e.class(), "timeout", "{e}");
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_millis(1_500),
        "{took:?}"
    );
}

#[tokio::test]
async fn errors_name_their_class_but_never_the_password() {
    let (silent, task) = silent_server().await;
    let mut cases = vec![
        (format!("127.0.0.1:{}", closed_port()), "refused", "connection refused"),
        (silent, "timeout", "timed out"),
        (
            "/nonexistent/caretaker-test/.s.PGSQL.5432".to_string(),
            "unreachable",
            "unreachable",
        ),
    ];
    if let Some(addr) = server("errors_name_their_class_but_never_the_password (unknown role case)") {
        drop(session(&addr).await);
        cases.push((addr, "auth_failed", "authentication failed"));
    }
    for (address, class, text) in cases {
        let mut t = target(&address);
        t.user = Some(format!("caretaker_no_such_role_{}", std::process::id()));
        t.password = Some(Secret::new("hunter2"));
        t.connect_timeout_ms = 500;
        let e = databases::poll(&t)
            .await
            .err()
            .unwrap_or_else(|| panic!("{address}: poll succeeded"));
        let shown = e.to_string();
        assert_eq!(e.class(), class, "{address}: {shown}");
        assert!(shown.starts_with(text), "{address}: {shown}");
        assert!(
            !shown.contains("hunter2") && !format!("{e:?}").contains("hunter2"),
            "{address}: {shown}"
        );
    }
    task.abort();
}

#[tokio::test]
async fn a_unix_socket_is_polled_like_tcp() {
    // The socket needs a server-side rule letting `postgres` in over it, so
    // it has its own variable: the directory or socket file path.
    let Ok(path) = std::env::var("CARETAKER_TEST_POSTGRES_SOCKET") else {
        eprintln!("a_unix_socket_is_polled_like_tcp: CARETAKER_TEST_POSTGRES_SOCKET is not set; skipped");
        return;
    };
    let s = poll(&target(&path)).await;
    assert!(value(&s, "caretaker_db_max_connections", &[]).is_some());
}
