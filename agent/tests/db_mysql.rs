//! The MariaDB/MySQL poller against a real server, whose `HOST:PORT` is in
//! `CARETAKER_TEST_MARIADB` (root, empty password, a `test` database). Without
//! the variable each test says so and passes; with it, a server that does not
//! answer fails the test: a silently skipped check would look like coverage.
//!
//! The values are compared with what the server itself reports, and the
//! interesting states (an open transaction, a deadlock, each kind of failed
//! login) are provoked by the tests' own sessions. Everything a test creates
//! carries a random suffix and is dropped at its end.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hash::BuildHasher;
use std::time::{Duration, Instant};

use caretaker_agent::collectors::Samples;
use caretaker_agent::databases::{self, DbError, DbKind, DbTarget, Secret, mysql};
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder};

/// The server's address, or `None` (with a note) when the tests should not run.
fn server() -> Option<String> {
    match std::env::var("CARETAKER_TEST_MARIADB") {
        Ok(a) if !a.is_empty() => Some(a),
        _ => {
            eprintln!("note: CARETAKER_TEST_MARIADB is not set; MariaDB/MySQL test skipped");
            None
        }
    }
}

fn target(addr: &str) -> DbTarget {
    DbTarget::new("test-mariadb", DbKind::Mariadb, addr)
}

/// A suffix for the names a test creates, so parallel and repeated runs do not
/// meet each other's leftovers.
fn suffix() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let h = std::collections::hash_map::RandomState::new().hash_one((nanos, std::process::id()));
    format!("{:08x}", h as u32)
}

/// A session of the test's own, as root, in `db`.
async fn session(addr: &str, db: Option<&str>) -> Conn {
    let (host, port) = target(addr)
        .host_port()
        .unwrap_or_else(|| panic!("CARETAKER_TEST_MARIADB={addr:?} is not HOST:PORT"));
    let opts = OptsBuilder::default()
        .ip_or_hostname(host)
        .tcp_port(port)
        .prefer_socket(false)
        .user(Some("root"))
        .db_name(db);
    Conn::new(opts)
        .await
        .unwrap_or_else(|e| panic!("the MariaDB at {addr} does not answer: {e}"))
}

async fn poll(t: &DbTarget) -> Samples {
    let mut out = Samples::default();
    if let Err(e) = mysql::poll(t, t.password.as_ref(), &mut out).await {
        panic!("poll of {} failed ({}): {e}", t.address, e.class());
    }
    out
}

async fn poll_err(t: &DbTarget) -> (DbError, Duration) {
    let started = Instant::now();
    let mut out = Samples::default();
    match mysql::poll(t, t.password.as_ref(), &mut out).await {
        Ok(()) => panic!("poll of {} succeeded, expected a failure", t.address),
        Err(e) => (e, started.elapsed()),
    }
}

/// The value of the only sample of `metric`, checking its labels start with db and kind.
fn value(out: &Samples, metric: &str) -> Option<f64> {
    let found: Vec<_> = out.0.iter().filter(|s| s.metric == metric).collect();
    assert!(found.len() <= 1, "{metric} sent {} times", found.len());
    let s = found.first()?;
    assert_eq!(s.labels.get("db").map(String::as_str), Some("test-mariadb"), "{metric}");
    assert_eq!(s.labels.get("kind").map(String::as_str), Some("mariadb"), "{metric}");
    Some(s.value)
}

#[tokio::test]
async fn values_match_the_servers_own_view() {
    let Some(addr) = server() else { return };
    let mut own = session(&addr, None).await;
    let (version, max): (String, u64) = own
        .query_first("SELECT VERSION(), @@max_connections")
        .await
        .unwrap()
        .unwrap();
    let out = poll(&target(&addr)).await;
    own.disconnect().await.unwrap();

    for s in &out.0 {
        let def =
            caretaker_shared::catalogue::lookup(&s.metric).unwrap_or_else(|| panic!("{} not catalogued", s.metric));
        let mut keys: Vec<&str> = s.labels.keys().map(String::as_str).collect();
        let mut want = def.labels.to_vec();
        keys.sort_unstable();
        want.sort_unstable();
        assert_eq!(keys, want, "{}", s.metric);
    }
    assert_eq!(value(&out, "caretaker_db_max_connections"), Some(max as f64));
    let info = out.0.iter().find(|s| s.metric == "caretaker_db_info").unwrap();
    assert_eq!(info.labels.get("version"), Some(&version));
    assert_eq!(info.value, 1.0);
    // The test's own session and the poller's are both open while it counts.
    assert!(value(&out, "caretaker_db_connections").unwrap() >= 1.0);
    assert!(value(&out, "caretaker_db_uptime_seconds").unwrap() > 0.0);
    assert!(value(&out, "caretaker_mysql_threads_running").unwrap() >= 1.0);
    let ratio = value(&out, "caretaker_mysql_innodb_buffer_pool_hit_ratio").unwrap();
    assert!((0.0..=1.0).contains(&ratio), "{ratio}");
    for m in [
        "caretaker_mysql_aborted_connects",
        "caretaker_mysql_slow_queries",
        "caretaker_mysql_innodb_deadlocks",
        "caretaker_mysql_innodb_oldest_transaction_age_seconds",
    ] {
        assert!(value(&out, m).is_some_and(|v| v >= 0.0), "{m}");
    }
    // The test server is no replica: said so, and no per-channel series.
    assert_eq!(value(&out, "caretaker_mysql_replica"), Some(0.0));
    assert!(!out.0.iter().any(|s| s.metric == "caretaker_mysql_replica_io_running"));
}

/// Creates an InnoDB table with rows 1 and 2 in `test`, returning its name.
async fn table(own: &mut Conn, what: &str) -> String {
    let name = format!("caretaker_t_{what}_{}", suffix());
    own.query_drop(format!(
        "CREATE TABLE {name} (id INT PRIMARY KEY, v INT NOT NULL) ENGINE=InnoDB"
    ))
    .await
    .unwrap();
    own.query_drop(format!("INSERT INTO {name} VALUES (1, 0), (2, 0)"))
        .await
        .unwrap();
    name
}

#[tokio::test]
async fn an_open_transaction_shows_its_age() {
    let Some(addr) = server() else { return };
    let mut own = session(&addr, Some("test")).await;
    let name = table(&mut own, "trx").await;
    let mut holder = session(&addr, Some("test")).await;

    let age = async {
        holder.query_drop("START TRANSACTION").await?;
        // A write gives the transaction its id and its INNODB_TRX row.
        holder
            .query_drop(format!("UPDATE {name} SET v = v + 1 WHERE id = 1"))
            .await?;
        tokio::time::sleep(Duration::from_millis(2_200)).await;
        let out = poll(&target(&addr)).await;
        holder.query_drop("ROLLBACK").await?;
        Ok::<_, mysql_async::Error>(value(&out, "caretaker_mysql_innodb_oldest_transaction_age_seconds"))
    }
    .await;

    own.query_drop(format!("DROP TABLE IF EXISTS {name}")).await.unwrap();
    holder.disconnect().await.unwrap();
    own.disconnect().await.unwrap();
    let age = age.unwrap();
    assert!(age.is_some_and(|a| a >= 2.0), "oldest transaction age {age:?}");
}

#[tokio::test]
async fn a_deadlock_is_counted() {
    let Some(addr) = server() else { return };
    let mut own = session(&addr, Some("test")).await;
    let name = table(&mut own, "deadlock").await;
    let mut a = session(&addr, Some("test")).await;
    let mut b = session(&addr, Some("test")).await;
    let t = target(&addr);

    let counted = async {
        let before = value(&poll(&t).await, "caretaker_mysql_innodb_deadlocks");
        a.query_drop("START TRANSACTION").await?;
        b.query_drop("START TRANSACTION").await?;
        a.query_drop(format!("UPDATE {name} SET v = v + 1 WHERE id = 1"))
            .await?;
        b.query_drop(format!("UPDATE {name} SET v = v + 1 WHERE id = 2"))
            .await?;
        // A waits for B's row; then B asks for A's: a cycle InnoDB must break
        // by rolling one of them back with error 1213.
        let crossed = tokio::time::timeout(Duration::from_secs(20), async {
            tokio::join!(
                a.query_drop(format!("UPDATE {name} SET v = v + 1 WHERE id = 2")),
                async {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    b.query_drop(format!("UPDATE {name} SET v = v + 1 WHERE id = 1")).await
                }
            )
        })
        .await
        .expect("the crossed updates neither deadlocked nor finished (innodb_deadlock_detect off?)");
        let codes: Vec<Option<u16>> = [crossed.0, crossed.1]
            .into_iter()
            .map(|r| match r {
                Ok(()) => None,
                Err(mysql_async::Error::Server(e)) => Some(e.code),
                Err(e) => panic!("unexpected error: {e}"),
            })
            .collect();
        a.query_drop("ROLLBACK").await?;
        b.query_drop("ROLLBACK").await?;
        let after = value(&poll(&t).await, "caretaker_mysql_innodb_deadlocks");
        Ok::<_, mysql_async::Error>((codes, before, after))
    }
    .await;

    own.query_drop(format!("DROP TABLE IF EXISTS {name}")).await.unwrap();
    for c in [a, b, own] {
        c.disconnect().await.unwrap();
    }
    let (codes, before, after) = counted.unwrap();
    assert_eq!(codes.iter().filter(|c| **c == Some(1213)).count(), 1, "{codes:?}");
    assert_eq!(codes.iter().filter(|c| c.is_none()).count(), 1, "{codes:?}");
    let (before, after) = (before.unwrap(), after.unwrap());
    assert!(after > before, "deadlocks {before} -> {after}");
}

/// A user `caretaker_t_<random>` reachable over TCP and the socket, with `password`.
struct TestUser {
    name: String,
}

impl TestUser {
    const HOSTS: [&str; 3] = ["127.0.0.1", "%", "localhost"];

    async fn create(own: &mut Conn, password: &str) -> Self {
        let name = format!("caretaker_t_{}", suffix());
        for host in Self::HOSTS {
            // The test's passwords are [a-z0-9-] only: safe inside the quotes.
            own.query_drop(format!("CREATE USER '{name}'@'{host}' IDENTIFIED BY '{password}'"))
                .await
                .unwrap();
        }
        Self { name }
    }

    async fn remove(self, own: &mut Conn) {
        for host in Self::HOSTS {
            own.query_drop(format!("DROP USER IF EXISTS '{}'@'{host}'", self.name))
                .await
                .unwrap();
        }
    }
}

#[tokio::test]
async fn a_wrong_password_is_auth_failed_and_never_in_the_message() {
    let Some(addr) = server() else { return };
    let mut own = session(&addr, None).await;
    let right = format!("right-pw-{}", suffix());
    let wrong = format!("wrong-pw-{}", suffix());
    let user = TestUser::create(&mut own, &right).await;

    let mut t = target(&addr);
    t.user = Some(user.name.clone());
    t.password = Some(Secret::new(wrong.clone()));
    let failed = poll_err_via_framework(&t).await;
    // The right password works, and a user without PROCESS or SLAVE MONITOR
    // still gets the metrics that need no privilege.
    t.password = Some(Secret::new(right.clone()));
    let mut out = Samples::default();
    let good = mysql::poll(&t, t.password.as_ref(), &mut out).await;

    user.remove(&mut own).await;
    own.disconnect().await.unwrap();

    let (e, took) = failed;
    assert_eq!(e.class(), "auth_failed", "{e}");
    assert!(took < t.connect_timeout(), "{took:?}");
    for text in [e.to_string(), format!("{e:?}")] {
        assert!(!text.contains(&wrong), "{text}");
        assert!(!text.contains(&right), "{text}");
    }
    if let Err(e) = good {
        panic!("poll with the right password failed ({}): {e}", e.class());
    }
    assert!(value(&out, "caretaker_db_max_connections").is_some());
    assert!(value(&out, "caretaker_mysql_innodb_oldest_transaction_age_seconds").is_none());
}

/// Polls through [`databases::poll`], which reads the password from the
/// target, the way the pollers do.
async fn poll_err_via_framework(t: &DbTarget) -> (DbError, Duration) {
    let started = Instant::now();
    match databases::poll(t).await {
        Ok(_) => panic!("poll of {} succeeded, expected a failure", t.address),
        Err(e) => (e, started.elapsed()),
    }
}

#[tokio::test]
async fn a_closed_port_is_refused() {
    let Some(addr) = server() else { return };
    // Not needed here, but a set variable promises a live server: hold to it.
    session(&addr, None).await.disconnect().await.unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut t = target(&format!("127.0.0.1:{port}"));
    t.password = Some(Secret::new("refused-secret"));
    let (e, took) = poll_err(&t).await;
    assert_eq!(e.class(), "refused", "{e}");
    assert!(took < t.connect_timeout(), "{took:?}");
    assert!(!e.to_string().contains("refused-secret"), "{e}");
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let Some(addr) = server() else { return };
    // Not needed here, but a set variable promises a live server: hold to it.
    session(&addr, None).await.disconnect().await.unwrap();
    // Connections complete in the kernel's backlog, but no greeting ever comes.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut t = target(&silent.local_addr().unwrap().to_string());
    t.connect_timeout_ms = 500;
    let (e, took) = poll_err(&t).await;
    drop(silent);
    assert_eq!(e.class(), "timeout", "{e}");
    assert!(
        took >= Duration::from_millis(500) && took < Duration::from_secs(1),
        "{took:?}"
    );
}
