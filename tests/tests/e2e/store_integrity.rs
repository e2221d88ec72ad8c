//! The store file damaged or lost under a stopped collector: `serve` refuses
//! to start and says how to restore; `backup` taken while the collector and
//! an agent run gives a file a new collector serves the same hosts from.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use caretaker_tests::{enroll, gzip, post_report, synthetic_report};
use serde_json::Value;

use crate::util::{Agent, Collector, bin, eventually, free_port, wait_for_host};

/// `serve` on `data` until it exits, at most `limit` (then it is killed and
/// the test fails: a collector that starts on a bad store never exits).
fn serve_until_exit(data: &Path, limit: Duration) -> Output {
    let mut child = Command::new(bin("caretaker-collector"))
        .arg("serve")
        .arg("--data-dir")
        .arg(data)
        .args(["--listen", &format!("127.0.0.1:{}", free_port())])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("serve: {e}"));
    let start = Instant::now();
    while matches!(child.try_wait(), Ok(None)) {
        if start.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap_or_else(|e| panic!("{e}"));
            panic!(
                "serve did not refuse the store within {limit:?}; it started:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap_or_else(|e| panic!("{e}"))
}

/// A collector whose store holds a few hosts' worth of reports, stopped.
async fn stopped_store(dir: &Path) -> std::path::PathBuf {
    let mut c = Collector::start_sqlite(dir).await;
    let url = c.url();
    for i in 0..4 {
        let host = format!("store-{i}");
        let a = enroll(&c.client, &url, &c.enrollment_token, &host)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        for seq in 1..=25 {
            let r = synthetic_report(&a.agent_id, &host, seq, 300);
            let body = gzip(&serde_json::to_vec(&r).unwrap_or_default());
            let sent = post_report(&c.client, &url, &a.credential, body).await;
            assert!(matches!(sent, Ok((200, _))), "{sent:?}");
        }
    }
    c.stop();
    c.data_dir()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_store_refuses_to_start_and_says_how_to_restore() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let data = stopped_store(dir.path()).await;
    let db = data.join("caretaker.db");
    let wal = std::fs::metadata(data.join("caretaker.db-wal")).map_or(0, |m| m.len());
    assert_eq!(wal, 0, "the clean stop checkpointed the WAL into the file");

    // Random bytes over pages 200 to 2,200 (or the middle half of a smaller file).
    let mut f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&db)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut header = [0u8; 100];
    f.read_exact(&mut header).unwrap_or_else(|e| panic!("{e}"));
    let page = u64::from(u16::from_be_bytes([header[16], header[17]])).max(512);
    let pages = f.metadata().map(|m| m.len()).unwrap_or(0) / page;
    let (first, last) = if pages > 2_200 {
        (200, 2_200)
    } else {
        (pages / 4, pages * 3 / 4)
    };
    assert!(last > first + 4, "a store of {pages} pages is too small to damage");
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut noise = vec![0u8; page as usize];
    for p in first..last {
        for b in noise.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
        f.seek(SeekFrom::Start(p * page)).unwrap_or_else(|e| panic!("{e}"));
        f.write_all(&noise).unwrap_or_else(|e| panic!("{e}"));
    }
    f.sync_all().unwrap_or_else(|e| panic!("{e}"));
    drop(f);

    let out = serve_until_exit(&data, Duration::from_secs(30));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("caretaker.db is damaged"), "{err}");
    assert!(err.contains("restore the last backup"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_or_missing_store_in_an_initialized_data_dir_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let data = stopped_store(dir.path()).await;
    let db = data.join("caretaker.db");
    for side in ["caretaker.db-wal", "caretaker.db-shm"] {
        let _ = std::fs::remove_file(data.join(side));
    }
    // Zero length: what a failed copy or a full disk at the wrong time leaves.
    std::fs::write(&db, b"").unwrap_or_else(|e| panic!("{e}"));
    let out = serve_until_exit(&data, Duration::from_secs(30));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("caretaker.db is empty") && err.contains("ca.key exists"),
        "{err}"
    );
    assert!(err.contains("restore the last backup"), "{err}");
    assert_eq!(std::fs::metadata(&db).map(|m| m.len()).ok(), Some(0), "left as it was");

    std::fs::remove_file(&db).unwrap_or_else(|e| panic!("{e}"));
    let out = serve_until_exit(&data, Duration::from_secs(30));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("caretaker.db is missing") && err.contains("restore the last backup"),
        "{err}"
    );
    assert!(!db.exists(), "no empty store made in its place");
}

async fn host_ids(c: &Collector) -> Vec<String> {
    let v = c.api("/api/v1/hosts").await;
    let mut ids: Vec<String> = v["hosts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|h| h["agent_id"].as_str().map(String::from))
        .collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_while_serving_passes_quick_check_and_serves_the_same_hosts() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let c = Collector::start_sqlite(dir.path()).await;
    let agent = Agent::start(dir.path(), &c, 1, "");
    let id = wait_for_host(&c, &agent).await;
    let hosts = host_ids(&c).await;
    assert_eq!(hosts, std::slice::from_ref(&id));
    // A few more reports on the way while the copy is made.
    let seq = c.host(&id).await["last_seq"].as_u64().unwrap_or(0);
    let backup = dir.path().join("backup.db");
    let out = Command::new(bin("caretaker-collector"))
        .args(["backup", "--data-dir"])
        .arg(c.data_dir())
        .arg("--to")
        .arg(&backup)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("quick_check ok"));
    eventually("reports after the backup", Duration::from_secs(20), || async {
        (c.host(&id).await["last_seq"].as_u64()? > seq + 1).then_some(())
    })
    .await;

    let conn = rusqlite::Connection::open(&backup).unwrap_or_else(|e| panic!("{e}"));
    let check: String = conn
        .query_row("PRAGMA quick_check", [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(check, "ok");
    drop(conn);

    // Restored as the README says, into a copy of the data dir.
    let restored = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let data = restored.path().join("data");
    std::fs::create_dir_all(&data).unwrap_or_else(|e| panic!("{e}"));
    for e in std::fs::read_dir(c.data_dir()).unwrap_or_else(|e| panic!("{e}")) {
        let e = e.unwrap_or_else(|e| panic!("{e}"));
        let name = e.file_name();
        if !name.to_string_lossy().starts_with("caretaker.db") {
            std::fs::copy(e.path(), data.join(&name)).unwrap_or_else(|e| panic!("{e}"));
        }
    }
    std::fs::copy(&backup, data.join("caretaker.db")).unwrap_or_else(|e| panic!("{e}"));
    let r = Collector::open(restored.path()).await;
    assert_eq!(host_ids(&r).await, hosts);
    let h: Value = r.host(&id).await;
    assert!(h["last_seq"].as_u64().is_some_and(|s| s >= seq), "{h}");
    assert_eq!(
        r.metric_value("caretaker_store_check_ok").await,
        Some(1.0),
        "the start's check passed"
    );
}
