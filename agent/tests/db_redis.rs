//! The Redis poller against real servers: the shared one named by
//! `CARETAKER_TEST_REDIS` (`HOST:PORT`), and private `redis-server`s started
//! here for what would disturb the shared one (a tiny maxmemory, a password).
//! Without the variable every test says so and passes; with it, a server that
//! cannot be reached fails the test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{TcpListener, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use caretaker_agent::databases::{self, DbError, DbKind, DbTarget, Secret};
use caretaker_shared::wire::Sample;

/// The shared server's address, or `None` (with a note) when not configured.
fn shared_server(test: &str) -> Option<String> {
    match std::env::var("CARETAKER_TEST_REDIS") {
        Ok(a) if !a.is_empty() => {
            // Configured means required: an unreachable server fails the test.
            let addr = a
                .to_socket_addrs()
                .ok()
                .and_then(|mut it| it.next())
                .unwrap_or_else(|| panic!("CARETAKER_TEST_REDIS={a:?} is not HOST:PORT"));
            if let Err(e) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
                panic!("CARETAKER_TEST_REDIS={a}: cannot connect: {e}");
            }
            Some(a)
        }
        _ => {
            eprintln!("{test}: CARETAKER_TEST_REDIS is not set; skipped");
            None
        }
    }
}

fn target(address: &str) -> DbTarget {
    DbTarget::new("cache", DbKind::Redis, address)
}

fn value(samples: &[Sample], metric: &str) -> Option<f64> {
    samples.iter().find(|s| s.metric == metric).map(|s| s.value)
}

/// A raw connection for asking the server its own view.
async fn raw(address: &str, password: Option<&str>) -> redis::aio::MultiplexedConnection {
    let url = match password {
        Some(p) => format!("redis://:{p}@{address}/"),
        None => format!("redis://{address}/"),
    };
    let client = redis::Client::open(url).unwrap();
    tokio::time::timeout(Duration::from_secs(5), client.get_multiplexed_async_connection())
        .await
        .unwrap_or_else(|_| panic!("{address}: no answer in 5 s"))
        .unwrap_or_else(|e| panic!("{address}: {e}"))
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A `redis-server` of this test's own, killed when dropped (also when the
/// test panics), so the shared server's settings are never touched.
struct PrivateRedis {
    child: Child,
    address: String,
    /// Its Unix socket, beside the TCP port.
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl PrivateRedis {
    fn start(extra: &[&str]) -> Self {
        let out = Command::new("which").arg("redis-server").output().unwrap();
        let binary = String::from_utf8(out.stdout).unwrap().trim().to_string();
        assert!(
            !binary.is_empty(),
            "CARETAKER_TEST_REDIS is set but redis-server is not in PATH"
        );
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let port_arg = port.to_string();
        let socket = dir.path().join("redis.sock");
        let mut args = vec![
            "--port",
            &port_arg,
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ];
        args.extend_from_slice(extra);
        let child = Command::new(&binary)
            .args(&args)
            .current_dir(dir.path())
            .arg("--dir")
            .arg(dir.path())
            .arg("--unixsocket")
            .arg(&socket)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let server = Self {
            child,
            address: format!("127.0.0.1:{port}"),
            socket,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(&server.address).is_err() {
            assert!(
                Instant::now() < deadline,
                "private redis-server did not start on {}",
                server.address
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        server
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls and checks the failure came back as `class` within `limit`.
async fn fails_with(t: &DbTarget, class: &str, limit: Duration) -> DbError {
    let started = Instant::now();
    let r = databases::poll(t).await;
    let took = started.elapsed();
    let e = match r {
        Ok(s) => panic!("{}: expected {class}, got {} samples", t.address, s.0.len()),
        Err(e) => e,
    };
    eprintln!("{}: {} after {took:?}: {e}", t.address, e.class());
    assert_eq!(e.class(), class, "{e}");
    assert!(took < limit, "{class} took {took:?}, more than {limit:?}");
    e
}

#[tokio::test]
async fn values_match_the_servers_own_view() {
    let Some(address) = shared_server("values_match_the_servers_own_view") else {
        return;
    };
    let samples = databases::poll(&target(&address))
        .await
        .unwrap_or_else(|e| panic!("{address}: {e}"))
        .0;

    let mut con = raw(&address, None).await;
    let maxclients: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("maxclients")
        .query_async(&mut con)
        .await
        .unwrap();
    let maxclients: f64 = maxclients[1].parse().unwrap();
    assert_eq!(value(&samples, "caretaker_db_max_connections"), Some(maxclients));

    let info: String = redis::cmd("INFO").arg("server").query_async(&mut con).await.unwrap();
    let version = info
        .lines()
        .find_map(|l| l.trim_end().strip_prefix("redis_version:"))
        .unwrap()
        .to_string();
    let label = samples
        .iter()
        .find(|s| s.metric == "caretaker_db_info")
        .and_then(|s| s.labels.get("version"))
        .cloned();
    assert_eq!(label, Some(version));

    // Our own raw connection is open, so there is at least one client.
    assert!(value(&samples, "caretaker_db_connections").unwrap() >= 1.0);
    assert!(value(&samples, "caretaker_db_uptime_seconds").unwrap() >= 0.0);
    for s in &samples {
        let def =
            caretaker_shared::catalogue::lookup(&s.metric).unwrap_or_else(|| panic!("{} not in catalogue", s.metric));
        let mut expected = def.labels.to_vec();
        expected.sort_unstable();
        assert_eq!(
            s.labels.keys().map(String::as_str).collect::<Vec<_>>(),
            expected,
            "{}",
            s.metric
        );
    }
}

#[tokio::test]
async fn evictions_under_a_tiny_maxmemory_are_counted() {
    if shared_server("evictions_under_a_tiny_maxmemory_are_counted").is_none() {
        return;
    }
    let server = PrivateRedis::start(&["--maxmemory", "2mb", "--maxmemory-policy", "allkeys-lru"]);
    let mut con = raw(&server.address, None).await;
    // 10 KiB values: 2 MiB holds about 200 of them, so 1000 must evict.
    let blob = "x".repeat(10 * 1024);
    for batch in 0..10 {
        let mut p = redis::pipe();
        for i in 0..100 {
            p.cmd("SET").arg(format!("k{batch}-{i}")).arg(&blob).ignore();
        }
        let () = p.query_async(&mut con).await.unwrap();
    }

    let samples = databases::poll(&target(&server.address))
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", server.address))
        .0;
    let evicted = value(&samples, "caretaker_redis_evicted_keys").unwrap();
    assert!(evicted > 0.0, "no evictions reported");
    let max = value(&samples, "caretaker_redis_memory_max_bytes").unwrap();
    assert_eq!(max, 2.0 * 1024.0 * 1024.0);
    let used = value(&samples, "caretaker_redis_memory_used_bytes").unwrap();
    // Redis evicts down to the limit before each write; one write's worth of
    // overshoot is allowed.
    assert!(used > 0.0 && used <= max * 1.25, "used {used} against maxmemory {max}");
}

#[tokio::test]
async fn a_wrong_password_is_auth_failed() {
    if shared_server("a_wrong_password_is_auth_failed").is_none() {
        return;
    }
    let server = PrivateRedis::start(&["--requirepass", "right"]);
    let limit = Duration::from_secs(4);

    let mut t = target(&server.address);
    t.password = Some(Secret::new("wrong"));
    fails_with(&t, "auth_failed", limit).await;
    // No password at all: the server answers NOAUTH to INFO.
    t.password = None;
    fails_with(&t, "auth_failed", limit).await;
    t.password = Some(Secret::new("right"));
    assert!(databases::poll(&t).await.is_ok(), "the right password must work");

    // An ACL user, logged in as `AUTH user password`.
    let user = format!(
        "caretaker_t_{}_{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    let mut admin = raw(&server.address, Some("right")).await;
    let () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg(&user)
        .arg("on")
        .arg(">userpass")
        .arg("~*")
        .arg("+@all")
        .query_async(&mut admin)
        .await
        .unwrap();
    t.user = Some(user.clone());
    t.password = Some(Secret::new("not-userpass"));
    fails_with(&t, "auth_failed", limit).await;
    t.password = Some(Secret::new("userpass"));
    assert!(databases::poll(&t).await.is_ok(), "the ACL user's password must work");
    let _: i64 = redis::cmd("ACL")
        .arg("DELUSER")
        .arg(&user)
        .query_async(&mut admin)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_password_sent_to_a_server_without_one_is_auth_failed() {
    let Some(address) = shared_server("a_password_sent_to_a_server_without_one_is_auth_failed") else {
        return;
    };
    let mut t = target(&address);
    t.password = Some(Secret::new("unexpected"));
    fails_with(&t, "auth_failed", Duration::from_secs(4)).await;
}

#[tokio::test]
async fn error_messages_never_contain_the_password() {
    let Some(address) = shared_server("error_messages_never_contain_the_password") else {
        return;
    };
    let server = PrivateRedis::start(&["--requirepass", "right"]);
    let secret = "S3cr3t-never-shown";
    for (address, user) in [
        (&server.address, None),
        (&server.address, Some("nobody")),
        (&address, None),
    ] {
        let mut t = target(address);
        t.user = user.map(String::from);
        t.password = Some(Secret::new(secret));
        let e = fails_with(&t, "auth_failed", Duration::from_secs(4)).await;
        for text in [e.to_string(), format!("{e:?}")] {
            assert!(!text.contains(secret), "{text}");
        }
    }
}

#[tokio::test]
async fn a_closed_port_is_refused() {
    if shared_server("a_closed_port_is_refused").is_none() {
        return;
    }
    let port = free_port();
    let t = target(&format!("127.0.0.1:{port}"));
    fails_with(&t, "refused", Duration::from_secs(2)).await;
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    if shared_server("a_server_that_never_answers_times_out").is_none() {
        return;
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    // Accept and hold every connection without ever writing a byte.
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let mut t = target(&address);
    t.connect_timeout_ms = 500;
    let started = Instant::now();
    let e = fails_with(&t, "timeout", Duration::from_millis(1_200)).await;
    assert!(
        started.elapsed() >= Duration::from_millis(450),
        "{e}: gave up too early"
    );
    silent.abort();
}

#[tokio::test]
async fn a_unix_socket_works_and_a_missing_one_is_unreachable() {
    if shared_server("a_unix_socket_works_and_a_missing_one_is_unreachable").is_none() {
        return;
    }
    let server = PrivateRedis::start(&[]);
    let socket = server.socket.to_string_lossy().into_owned();
    let samples = databases::poll(&target(&socket))
        .await
        .unwrap_or_else(|e| panic!("{socket}: {e}"))
        .0;
    assert!(value(&samples, "caretaker_db_connections").is_some());
    let missing = format!("{socket}.missing");
    fails_with(&target(&missing), "unreachable", Duration::from_secs(2)).await;
}

#[tokio::test]
async fn a_disabled_config_command_falls_back_to_info() {
    if shared_server("a_disabled_config_command_falls_back_to_info").is_none() {
        return;
    }
    let server = PrivateRedis::start(&[
        "--rename-command",
        "CONFIG",
        "",
        "--maxmemory",
        "3mb",
        "--maxclients",
        "77",
    ]);
    let samples = databases::poll(&target(&server.address))
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", server.address))
        .0;
    // The poll still succeeds: Redis 7 reports both limits in INFO too.
    assert_eq!(
        value(&samples, "caretaker_redis_memory_max_bytes"),
        Some(3.0 * 1024.0 * 1024.0)
    );
    assert_eq!(value(&samples, "caretaker_db_max_connections"), Some(77.0));
}
