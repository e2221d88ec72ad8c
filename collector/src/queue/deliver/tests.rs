#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;

use super::*;
use crate::contracts::Contracts;
use crate::fleet::Fleet;
use crate::queue::{CaseAction, FaultReport};
use crate::sinks::{SinksConfig, WebhookConfig, verify_signature};
use crate::store::sql::Db;
use crate::store::testing::{TestStore, apart};

const SECRET: &str = "webhook-secret";

/// A webhook receiver answering with `status`, keeping what it accepted.
#[derive(Clone, Default)]
struct Receiver {
    status: Arc<AtomicU16>,
    got: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
    refused: Arc<Mutex<u32>>,
}

impl Receiver {
    fn accepted(&self) -> Vec<(HeaderMap, Bytes)> {
        self.got.lock().unwrap().clone()
    }
}

async fn receiver() -> (Receiver, String) {
    let r = Receiver::default();
    r.status.store(200, Ordering::SeqCst);
    let state = r.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: Bytes| {
            let state = state.clone();
            async move {
                let code = state.status.load(Ordering::SeqCst);
                if code == 200 {
                    state.got.lock().unwrap().push((headers, body));
                } else {
                    *state.refused.lock().unwrap() += 1;
                }
                StatusCode::from_u16(code).unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (r, url)
}

async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..300 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

struct Setup {
    writer: Writer,
    reader: Arc<Mutex<Db>>,
    metrics: Arc<Metrics>,
    _store: TestStore,
    _dir: tempfile::TempDir,
}

/// `f` on the test's own read connection, apart from the runtime.
fn on<T: Send>(reader: &Mutex<Db>, f: impl FnOnce(&Db) -> T + Send) -> T {
    apart(|| f(&reader.lock().unwrap()))
}

async fn setup(url: &str) -> (Setup, Vec<tokio::task::JoinHandle<()>>) {
    let dir = tempfile::tempdir().unwrap();
    let store = TestStore::new(dir.path());
    let conn = apart(|| {
        let conn = store.open();
        let labels = serde_json::json!({"customer": "acme"}).to_string();
        crate::store::testing::add_asset(&conn, "db01", &labels, "{}");
        crate::cases::hold::mark_known(&conn, "db01", None, &[], 0).unwrap();
        conn
    });
    let reader = Arc::new(Mutex::new(store.open()));
    let fleet = Arc::new(Fleet::default());
    let (writer, _t) = Writer::start(conn, fleet.clone()).unwrap();
    let metrics = Arc::new(Metrics::new(fleet, 3).unwrap());
    let secret = dir.path().join("secret");
    std::fs::write(&secret, SECRET).unwrap();
    let sinks = crate::sinks::build(&SinksConfig {
        webhook: vec![WebhookConfig {
            name: "ops".into(),
            url: url.into(),
            secret_file: secret,
        }],
        ..SinksConfig::default()
    })
    .unwrap();
    let fast = Backoff {
        first_ms: 50,
        max_ms: 200,
    };
    let tasks = start(
        crate::replicas::Replica::alone(),
        sinks,
        store.readers(1),
        writer.clone(),
        metrics.clone(),
        Some("https://caretaker.example".into()),
        fast,
    );
    let s = Setup {
        writer,
        reader,
        metrics,
        _store: store,
        _dir: dir,
    };
    // The sink's cursor exists before the first change.
    let r = s.reader.clone();
    eventually("the sink's cursor", || {
        on(&r, |c| outbox::sink_state(c, "ops")).unwrap().is_some()
    })
    .await;
    (s, tasks)
}

async fn report(s: &Setup) -> i64 {
    let v = s
        .writer
        .run(|c| {
            let f = FaultReport {
                asset: "db01".into(),
                title: "Mail down".into(),
                description: String::new(),
                severity: crate::cases::Severity::Major,
                component: String::new(),
            };
            let (id, _) = crate::queue::report_fault(c, &Contracts::default(), &f, "ana", 1_000)?;
            Ok(serde_json::json!(id))
        })
        .await
        .unwrap();
    v.as_i64().unwrap()
}

async fn comment(s: &Setup, id: i64, text: &str) {
    let text = text.to_string();
    s.writer
        .run(move |c| {
            crate::queue::act(
                c,
                &Contracts::default(),
                id,
                &CaseAction::Comment {
                    comment: text,
                    visibility: None,
                },
                "ana",
                2_000,
            )?;
            Ok(Value::Null)
        })
        .await
        .unwrap();
}

fn outbox_ids(s: &Setup) -> Vec<i64> {
    on(&s.reader, |c| crate::store::outbox::testing::outbox_ids(c))
}

fn delivery_ids(got: &[(HeaderMap, Bytes)]) -> Vec<i64> {
    got.iter()
        .map(|(h, _)| h["x-caretaker-delivery"].to_str().unwrap().parse().unwrap())
        .collect()
}

#[tokio::test]
async fn every_change_reaches_the_webhook_once_in_order_even_across_an_outage() {
    let (rx, url) = receiver().await;
    let (s, tasks) = setup(&url).await;
    let id = report(&s).await;
    // Opened and the out-of-scope note (no contracts here).
    eventually("the opening changes", || rx.accepted().len() == 2).await;
    // The receiver goes down: the change waits, retried with backoff.
    rx.status.store(503, Ordering::SeqCst);
    comment(&s, id, "sent while the receiver is down").await;
    let r = s.reader.clone();
    eventually("failed tries", || {
        let st = on(&r, |c| outbox::sink_state(c, "ops")).unwrap().unwrap();
        st.attempts >= 3 && st.pending == 1 && st.last_error.as_deref().is_some_and(|e| e.contains("503"))
    })
    .await;
    assert_eq!(rx.accepted().len(), 2);
    // Back up: delivered, once.
    rx.status.store(200, Ordering::SeqCst);
    comment(&s, id, "after the outage").await;
    eventually("the backlog", || rx.accepted().len() == 4).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = rx.accepted();
    assert_eq!(delivery_ids(&got), outbox_ids(&s), "each change once, in outbox order");
    for (h, body) in &got {
        let sig = h["x-caretaker-signature"].to_str().unwrap();
        assert!(verify_signature(SECRET.as_bytes(), body, sig));
    }
    let last: Value = serde_json::from_slice(&got[3].1).unwrap();
    assert_eq!(last["case_id"].as_i64(), Some(id));
    assert_eq!(last["change"]["comment"], "after the outage");
    assert_eq!(last["url"], format!("https://caretaker.example/cases/{id}"));
    let third: Value = serde_json::from_slice(&got[2].1).unwrap();
    assert_eq!(third["change"]["comment"], "sent while the receiver is down");
    let st = on(&s.reader, |c| outbox::sink_state(c, "ops")).unwrap().unwrap();
    assert_eq!((st.pending, st.attempts, st.dead), (0, 0, 0));
    assert!(*rx.refused.lock().unwrap() >= 3);
    let text = s.metrics.render().unwrap();
    assert!(
        text.contains("caretaker_sink_deliveries_total{sink=\"ops\",result=\"delivered\"} 4"),
        "{text}"
    );
    assert!(text.contains("caretaker_outbox_pending{sink=\"ops\"} 0"), "{text}");
    tasks.iter().for_each(|t| t.abort());
}

#[tokio::test]
async fn a_change_refused_for_good_is_set_aside_and_the_rest_flows() {
    let (rx, url) = receiver().await;
    let (s, tasks) = setup(&url).await;
    rx.status.store(422, Ordering::SeqCst);
    let id = report(&s).await;
    let r = s.reader.clone();
    // Both opening changes are refused five times each, then set aside.
    eventually("set aside", || {
        on(&r, |c| outbox::sink_state(c, "ops")).unwrap().unwrap().dead == 2
    })
    .await;
    rx.status.store(200, Ordering::SeqCst);
    comment(&s, id, "later").await;
    eventually("the next change", || rx.accepted().len() == 1).await;
    let aside = on(&s.reader, |c| outbox::set_aside_list(c, "ops")).unwrap();
    assert!(aside.iter().all(|a| a.error.contains("422")), "{aside:?}");
    assert_eq!(*rx.refused.lock().unwrap(), 10);
    tasks.iter().for_each(|t| t.abort());
}
