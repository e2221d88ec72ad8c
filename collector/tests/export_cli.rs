//! `caretaker-collector export-reports`: reports applied through the store
//! come out as JSON lines that `replay` reads back to the same result as the
//! reports themselves; filters, output file and errors.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::path::Path;
mod common;
use std::sync::Arc;

use caretaker_collector::cases::Policy;
use caretaker_collector::detect;
use caretaker_collector::fleet::Fleet;
use caretaker_collector::ingest::Encoding;
use caretaker_collector::pki::{self, Paths};
use caretaker_collector::store;
use caretaker_collector::writer::{Applied, Enrollment, Incoming, Writer};
use caretaker_shared::wire::{self, Report};

const T0: i64 = 1_800_000_000_000;
const MINUTE: i64 = 60_000;
/// Reports per host, one a minute.
const N: i64 = 60;
/// How long after collection each report is received.
const LATE: i64 = 500;

fn report_json(agent: &str, host: &str, seq: i64, at: i64, up: f64) -> String {
    format!(
        r#"{{"version":1,"agent_id":"{agent}","seq":{seq},"collected_at_ms":{at},"interval_secs":60,"host":"{host}","labels":{{"customer":"acme"}},"samples":[{{"metric":"caretaker_db_up","labels":{{"db":"main","kind":"postgresql"}},"value":{up}}}]}}"#
    )
}

fn gzip(b: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(b).unwrap();
    enc.finish().unwrap()
}

/// Initializes a data directory and applies a database outage on db1 and a
/// healthy web1, half the bodies gzip. Returns the reports with their receive
/// times, in the order export writes them, and the still running writer.
async fn populate_open(dir: &Path) -> (Vec<(i64, Report)>, Writer, std::thread::JoinHandle<()>) {
    let place = caretaker_collector::store::place::Place::of(&Default::default(), dir).unwrap();
    let made = caretaker_collector::serve::init(dir, &["localhost".into()], None, &place).unwrap();
    let conn = store::open(
        &Paths::new(dir).database,
        caretaker_collector::config::Synchronous::Normal,
    )
    .unwrap();
    let (writer, thread) = Writer::start(
        caretaker_collector::store::sql::Db::sqlite(conn),
        Arc::new(Fleet::default()),
    )
    .unwrap();
    for (agent, host) in [("a1", "db1"), ("a2", "web1")] {
        let ok = writer
            .enroll(Enrollment {
                token_hash: pki::hash_secret(&made.enrollment_token),
                agent_id: agent.into(),
                credential_hash: format!("cred-{agent}"),
                host: host.into(),
                labels: None,
            })
            .await
            .unwrap();
        assert_eq!(ok.agent_id, agent);
    }
    let mut sent = Vec::new();
    for i in 0..N {
        let at = T0 + i * MINUTE;
        for (agent, host) in [("a1", "db1"), ("a2", "web1")] {
            let down = host == "db1" && (10..30).contains(&i);
            let json = report_json(agent, host, i + 1, at, if down { 0.0 } else { 1.0 });
            let (body, encoding) = if i % 2 == 1 {
                (gzip(json.as_bytes()), Encoding::Gzip)
            } else {
                (json.clone().into_bytes(), Encoding::Identity)
            };
            let report = wire::decode(json.as_bytes()).unwrap();
            // Received a little after collection: export gives the receive time.
            let received = at + LATE;
            sent.push((received, report.clone()));
            let applied = writer
                .apply(Incoming {
                    credential_hash: None,
                    agent_id: agent.into(),
                    report,
                    samples: vec![],
                    sample_count: 1,
                    body,
                    encoding,
                    received_at_ms: received,
                    clock: None,
                })
                .await
                .unwrap();
            assert!(matches!(applied, Applied::Applied { .. }));
        }
    }
    (sent, writer, thread)
}

/// [`populate_open`], with the writer stopped.
async fn populate(dir: &Path) -> Vec<(i64, Report)> {
    let (sent, writer, thread) = populate_open(dir).await;
    drop(writer);
    tokio::task::spawn_blocking(move || thread.join())
        .await
        .unwrap()
        .unwrap();
    sent
}

fn export(args: &[&str]) -> (i32, String, String) {
    common::collector(std::iter::once("export-reports").chain(args.iter().copied()))
}

fn replay_text(text: &str) -> Vec<detect::ReplayEvent> {
    let rules = caretaker_collector::rules::load(None).unwrap();
    detect::replay_lines(text.as_bytes(), rules, &Policy::default()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_what_replay_reads_back() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let sent = populate(&dir).await;
    let d = dir.to_str().unwrap();

    let (code, all, stderr) = export(&["--data-dir", d]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(all.lines().count(), 2 * N as usize);
    let first: serde_json::Value = serde_json::from_str(all.lines().next().unwrap()).unwrap();
    assert_eq!(first["at_ms"], T0 + LATE);
    assert_eq!(first["report"]["collected_at_ms"], T0);
    assert_eq!(first["report"]["host"], "db1", "ordered by time, then agent");
    let second: serde_json::Value = serde_json::from_str(all.lines().nth(1).unwrap()).unwrap();
    assert_eq!(second["report"]["host"], "web1");

    // The round trip: the export replays exactly like the reports themselves.
    let expected = detect::replay(
        &sent,
        caretaker_collector::rules::load(None).unwrap(),
        &Policy::default(),
    )
    .unwrap();
    assert!(
        expected
            .iter()
            .any(|e| e.event == "opened" && e.key == "acme/db1/database_down/main"),
        "{expected:?}"
    );
    assert_eq!(replay_text(&all), expected);

    let (code, db1, stderr) = export(&["--data-dir", d, "--host", "db1"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(db1.lines().count(), N as usize);
    assert!(db1.lines().all(|l| l.contains(r#""host":"db1""#)));
    let (_, none, _) = export(&["--data-dir", d, "--host", "nosuchhost"]);
    assert!(none.is_empty());

    // 2027-01-15T08:10:00Z is T0 + 10 minutes: since inclusive, until exclusive.
    let until = (T0 + 20 * MINUTE).to_string();
    let (code, window, stderr) = export(&["--data-dir", d, "--since", "2027-01-15T08:10:00Z", "--until", &until]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(window.lines().count(), 2 * 10);
    let ats: Vec<i64> = window
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["at_ms"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(ats.first(), Some(&(T0 + 10 * MINUTE + LATE)));
    assert_eq!(ats.last(), Some(&(T0 + 19 * MINUTE + LATE)));

    let file = tmp.path().join("out.jsonl");
    let (code, stdout, stderr) = export(&["--data-dir", d, "--output", file.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.is_empty());
    assert_eq!(std::fs::read_to_string(&file).unwrap(), all);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_times_and_missing_stores() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    populate(&dir).await;
    let d = dir.to_str().unwrap();

    let (code, stdout, stderr) = export(&["--data-dir", d, "--since", "last tuesday"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stdout.is_empty());
    assert!(stderr.contains("--since"), "{stderr}");
    let (code, _, stderr) = export(&["--data-dir", d, "--until", "2027-01-15"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--until"), "{stderr}");

    let missing = tmp.path().join("nowhere");
    let (code, stdout, stderr) = export(&["--data-dir", missing.to_str().unwrap()]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stdout.is_empty());
    assert!(stderr.contains(missing.to_str().unwrap()), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_beside_a_running_writer() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    // The writer's connection stays open, as under `serve`: the WAL is live.
    let (_sent, writer, thread) = populate_open(&dir).await;
    assert!(Paths::new(&dir).database.with_extension("db-wal").exists());
    let (code, all, stderr) = export(&["--data-dir", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(all.lines().count(), 2 * N as usize);
    drop(writer);
    tokio::task::spawn_blocking(move || thread.join())
        .await
        .unwrap()
        .unwrap();
}
