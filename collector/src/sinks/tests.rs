#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::*;

// --- fixtures ------------------------------------------------------------------

fn change(actor: &str, from: Option<&str>, to: &str, comment: Option<&str>) -> Change {
    Change {
        at_ms: 1_780_000_000_000,
        actor: actor.into(),
        from_status: from.map(Into::into),
        to_status: to.into(),
        comment: comment.map(Into::into),
        visibility: "internal".into(),
    }
}

fn opened() -> CaseEvent {
    CaseEvent {
        outbox_id: 7,
        case_id: 42,
        identity_key: "acme/db01/disk_reallocated_sectors//dev/sda".into(),
        customer: "acme".into(),
        asset: "db01".into(),
        check: "disk_reallocated_sectors".into(),
        component: "/dev/sda".into(),
        severity: "major".into(),
        status: "new".into(),
        title: "Reallocated sectors growing on /dev/sda".into(),
        assignee: None,
        level: "L1".into(),
        out_of_scope: false,
        response_due_ms: Some(1_780_003_600_000),
        resolution_due_ms: None,
        change: change("rule:smart", None, "new", Some("12 → 40 sectors")),
        url: Some("https://caretaker.example/cases/42".into()),
    }
}

fn with_change(c: Change) -> CaseEvent {
    let mut ev = opened();
    ev.outbox_id = 8;
    ev.status = c.to_status.clone();
    ev.change = c;
    ev
}

fn redmine_config() -> RedmineConfig {
    toml::from_str(
        r#"url = "http://127.0.0.1:1"
api_key_file = "/nonexistent"
project = "caretaker-cases""#,
    )
    .unwrap()
}

// --- receiver: an axum server on 127.0.0.1:0 that records every request ---------

#[derive(Debug)]
struct Seen {
    method: String,
    uri: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Seen {
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

struct Reply {
    status: u16,
    body: &'static str,
    delay: Duration,
    headers: Vec<(&'static str, &'static str)>,
}

fn reply(status: u16, body: &'static str) -> Reply {
    Reply {
        status,
        body,
        delay: Duration::ZERO,
        headers: Vec::new(),
    }
}

#[derive(Default)]
struct Shared {
    seen: Mutex<Vec<Seen>>,
    replies: Mutex<VecDeque<Reply>>,
}

struct Receiver {
    addr: SocketAddr,
    shared: Arc<Shared>,
}

impl Receiver {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
    fn seen(&self) -> Vec<Seen> {
        std::mem::take(&mut *self.shared.seen.lock().unwrap())
    }
}

async fn record(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 1 << 20).await.unwrap().to_vec();
    shared.seen.lock().unwrap().push(Seen {
        method: parts.method.to_string(),
        uri: parts.uri.to_string(),
        headers: parts.headers,
        body,
    });
    let next = shared.replies.lock().unwrap().pop_front();
    // More requests than the test expects: an answer no sink accepts.
    let r = next.unwrap_or_else(|| reply(418, "unexpected request"));
    tokio::time::sleep(r.delay).await;
    let mut resp = (StatusCode::from_u16(r.status).unwrap(), r.body).into_response();
    for (k, v) in r.headers {
        resp.headers_mut().insert(k, v.parse().unwrap());
    }
    resp
}

async fn receiver(replies: Vec<Reply>) -> Receiver {
    let shared = Arc::new(Shared::default());
    shared.replies.lock().unwrap().extend(replies);
    let app = axum::Router::new().fallback(record).with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Receiver { addr, shared }
}

/// A port nothing listens on.
async fn refused_url(path: &str) -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    drop(l);
    format!("http://{addr}{path}")
}

fn secret_file(dir: &tempfile::TempDir, name: &str, content: &str) -> std::path::PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, content).unwrap();
    p
}

fn one(config: SinksConfig) -> Sink {
    let mut sinks = build_with_timeout(&config, Duration::from_secs(5)).unwrap();
    assert_eq!(sinks.len(), 1);
    sinks.remove(0)
}

// --- changes and texts ------------------------------------------------------------

#[test]
fn change_classes() {
    let o = change("rule:r", None, "new", None);
    assert!(o.opened() && !o.ends() && !o.is_note() && !o.moved());
    assert_eq!(EventKind::of(&o).as_str(), "case.opened");
    let n = change("person:ann", Some("in_progress"), "in_progress", Some("called"));
    assert!(n.is_note() && !n.moved() && n.by_person());
    assert_eq!(EventKind::of(&n).as_str(), "case.changed");
    for to in ["resolved", "closed", "cancelled:duplicate", "cancelled"] {
        let e = change("rule:r", Some("in_progress"), to, None);
        assert!(e.ends() && e.moved(), "{to}");
        assert_eq!(EventKind::of(&e).as_str(), "case.ended");
    }
    for to in ["recovered", "on_hold:awaiting_parts", "assigned"] {
        assert!(!change("rule:r", Some("new"), to, None).ends(), "{to}");
    }
    assert!(change("rule:r", Some("resolved"), "closed", None).from_ended());
    assert!(!change("rule:r", Some("recovered"), "resolved", None).from_ended());
}

#[test]
fn note_and_description() {
    assert_eq!(
        text::note(&change("person:ann", Some("new"), "in_progress", Some("on it"))),
        "person:ann: new → in_progress: on it"
    );
    assert_eq!(
        text::note(&change("rule:smart", None, "new", None)),
        "rule:smart: opened → new"
    );
    assert_eq!(
        text::note(&change("rule:r", Some("new"), "assigned", Some("  "))),
        "rule:r: new → assigned"
    );
    let d = text::description(&opened(), true);
    assert!(
        d.starts_with("Reallocated sectors growing on /dev/sda\n\nCustomer: acme\n"),
        "{d}"
    );
    for line in [
        "Asset: db01\n",
        "Component: /dev/sda\n",
        "Severity: major\n",
        "Assignee: none\n",
        "Response due: 2026-05-28T21:26:40Z\n",
        "Case: https://caretaker.example/cases/42\n",
        "Identity: acme/db01/disk_reallocated_sectors//dev/sda\n",
    ] {
        assert!(d.contains(line), "{line:?} not in {d}");
    }
    assert!(!d.contains("Resolution due") && !d.contains("Out of scope"));
    assert!(d.ends_with("\nrule:smart: opened → new: 12 → 40 sectors\n"), "{d}");
    assert!(!text::description(&opened(), false).contains("opened →"));
    assert_eq!(text::clip("abcdef", 6), "abcdef");
    assert_eq!(text::clip("abcdefg", 6), "abcde…");
    assert_eq!(text::clip("äöüäöüä", 3), "äö…");
}

#[test]
fn subject_keeps_the_marker() {
    let ev = opened();
    assert_eq!(
        text::subject(&ev, 255),
        "[caretaker #42] db01: Reallocated sectors growing on /dev/sda"
    );
    let mut long = ev.clone();
    long.title = "x".repeat(400);
    let s = text::subject(&long, 255);
    assert_eq!(s.chars().count(), 255);
    assert!(s.starts_with("[caretaker #42] db01: ") && s.ends_with('…'));
    let mut bare = ev;
    bare.title = String::new();
    assert_eq!(
        text::subject(&bare, 255),
        "[caretaker #42] db01 disk_reallocated_sectors /dev/sda"
    );
    bare.component = String::new();
    assert_eq!(
        text::subject(&bare, 255),
        "[caretaker #42] db01 disk_reallocated_sectors"
    );
}

// --- webhook ----------------------------------------------------------------------

#[test]
fn hmac_matches_rfc4231_vector() {
    // RFC 4231, test case 2.
    let sig = sign(b"Jefe", b"what do ya want for nothing?");
    assert_eq!(
        sig,
        "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
    assert!(verify_signature(b"Jefe", b"what do ya want for nothing?", &sig));
    assert!(!verify_signature(b"Jefe", b"what do ya want for nothing!", &sig));
    assert!(!verify_signature(b"jefe", b"what do ya want for nothing?", &sig));
    assert!(!verify_signature(
        b"Jefe",
        b"what do ya want for nothing?",
        &sig["sha256=".len()..]
    ));
    assert!(!verify_signature(b"Jefe", b"what do ya want for nothing?", "sha256=zz"));
    assert!(!verify_signature(
        b"Jefe",
        b"what do ya want for nothing?",
        &sig[..sig.len() - 2]
    ));
    assert!(!verify_signature(b"Jefe", b"what do ya want for nothing?", ""));
}

#[test]
fn webhook_body_is_the_event() {
    let (body, headers) = webhook::request(b"s3cret", &opened()).unwrap();
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        v,
        json!({
            "outbox_id": 7,
            "case_id": 42,
            "identity_key": "acme/db01/disk_reallocated_sectors//dev/sda",
            "customer": "acme",
            "asset": "db01",
            "check": "disk_reallocated_sectors",
            "component": "/dev/sda",
            "severity": "major",
            "status": "new",
            "title": "Reallocated sectors growing on /dev/sda",
            "assignee": null,
            "level": "L1",
            "out_of_scope": false,
            "response_due_ms": 1_780_003_600_000_i64,
            "resolution_due_ms": null,
            "change": {
                "at_ms": 1_780_000_000_000_i64,
                "actor": "rule:smart",
                "from_status": null,
                "to_status": "new",
                "comment": "12 → 40 sectors",
                "visibility": "internal",
            },
            "url": "https://caretaker.example/cases/42",
        })
    );
    let h: std::collections::BTreeMap<_, _> = headers.into_iter().collect();
    assert_eq!(h["Content-Type"], "application/json");
    assert_eq!(h["X-Caretaker-Event"], "case.opened");
    assert_eq!(h["X-Caretaker-Delivery"], "7");
    assert_eq!(h["X-Caretaker-Signature"], sign(b"s3cret", &body));
    let (_, ended) = webhook::request(
        b"k",
        &with_change(change("rule:r", Some("new"), "cancelled:duplicate", None)),
    )
    .unwrap();
    assert!(ended.contains(&("X-Caretaker-Event", "case.ended".to_string())));
}

fn webhook_config(dir: &tempfile::TempDir, url: String) -> SinksConfig {
    SinksConfig {
        webhook: vec![WebhookConfig {
            name: "ops".into(),
            url,
            secret_file: secret_file(dir, "webhook.secret", "s3cret\n"),
        }],
        ..Default::default()
    }
}

#[tokio::test]
async fn webhook_delivery() {
    let dir = tempfile::tempdir().unwrap();
    let r = receiver(vec![reply(204, ""), reply(500, "boom"), reply(400, "bad"), {
        let mut x = reply(302, "");
        x.headers.push(("location", "/elsewhere"));
        x
    }])
    .await;
    let sink = one(webhook_config(&dir, r.url("/hooks/caretaker")));
    assert_eq!(sink.name, "ops");
    assert_eq!(sink.kind(), SinkKind::Webhook);
    let ev = with_change(change("person:ann", Some("new"), "in_progress", None));

    assert_eq!(sink.deliver(&ev, None).await, Ok(Delivered { external_id: None }));
    let seen = r.seen();
    assert_eq!(seen.len(), 1);
    let s = &seen[0];
    assert_eq!((s.method.as_str(), s.uri.as_str()), ("POST", "/hooks/caretaker"));
    assert_eq!(s.header("content-type"), "application/json");
    assert_eq!(s.header("x-caretaker-event"), "case.changed");
    assert_eq!(s.header("x-caretaker-delivery"), "8");
    // The secret file's trailing newline is not part of the key.
    assert!(verify_signature(b"s3cret", &s.body, s.header("x-caretaker-signature")));
    assert!(!verify_signature(
        b"s3cret\n",
        &s.body,
        s.header("x-caretaker-signature")
    ));
    assert_eq!(s.json()["change"]["to_status"], "in_progress");
    assert_eq!(s.json()["outbox_id"], 8);

    let e = sink.deliver(&ev, None).await.unwrap_err();
    assert!(
        matches!(&e, SinkError::Retry(m) if m.contains("500") && m.contains("boom")),
        "{e}"
    );
    let e = sink.deliver(&ev, None).await.unwrap_err();
    assert!(matches!(&e, SinkError::Permanent(m) if m.contains("400")), "{e}");
    // Redirects are not followed (a POST would turn into a GET).
    let e = sink.deliver(&ev, None).await.unwrap_err();
    assert!(matches!(&e, SinkError::Permanent(m) if m.contains("302")), "{e}");
    assert_eq!(r.seen().len(), 3);
}

#[tokio::test]
async fn webhook_unreachable_and_slow_are_retried() {
    let dir = tempfile::tempdir().unwrap();
    let sink = one(webhook_config(&dir, refused_url("/h").await));
    let e = sink.deliver(&opened(), None).await.unwrap_err();
    assert!(matches!(&e, SinkError::Retry(m) if m.contains("cannot connect")), "{e}");

    let mut slow = reply(200, "");
    slow.delay = Duration::from_secs(3);
    let r = receiver(vec![slow]).await;
    let sinks = build_with_timeout(&webhook_config(&dir, r.url("/h")), Duration::from_millis(300)).unwrap();
    let e = sinks[0].deliver(&opened(), None).await.unwrap_err();
    assert!(matches!(&e, SinkError::Retry(m) if m.contains("timed out")), "{e}");
}

// --- PagerDuty --------------------------------------------------------------------

#[test]
fn pagerduty_trigger_shape() {
    let v = pagerduty::event("R0UT1NG", &opened(), None);
    assert_eq!(
        v,
        json!({
            "routing_key": "R0UT1NG",
            "event_action": "trigger",
            "dedup_key": "acme/db01/disk_reallocated_sectors//dev/sda",
            "payload": {
                "summary": "Reallocated sectors growing on /dev/sda (acme/db01)",
                "source": "db01",
                "severity": "error",
                "timestamp": "2026-05-28T20:26:40Z",
                "component": "/dev/sda",
                "group": "acme",
                "class": "disk_reallocated_sectors",
                "custom_details": {
                    "case_id": 42,
                    "identity_key": "acme/db01/disk_reallocated_sectors//dev/sda",
                    "status": "new",
                    "level": "L1",
                    "assignee": null,
                    "out_of_scope": false,
                    "response_due": "2026-05-28T21:26:40Z",
                    "resolution_due": null,
                    "change": "rule:smart: opened → new: 12 → 40 sectors",
                },
            },
            "links": [{ "href": "https://caretaker.example/cases/42", "text": "Caretaker case" }],
        })
    );
    let mut no_url = opened();
    no_url.url = None;
    assert!(pagerduty::event("R", &no_url, None).get("links").is_none());
}

#[test]
fn pagerduty_actions_and_severities() {
    let cases = [
        (change("person:ann", Some("new"), "in_progress", None), "acknowledge"),
        (change("person:ann", Some("new"), "assigned", None), "acknowledge"),
        (change("rule:rota", Some("new"), "assigned", None), "trigger"),
        (change("rule:smart", Some("in_progress"), "recovered", None), "trigger"),
        (
            change("person:ann", Some("in_progress"), "on_hold:awaiting_parts", None),
            "trigger",
        ),
        (change("rule:smart", Some("recovered"), "resolved", None), "resolve"),
        (change("person:ann", Some("in_progress"), "closed", None), "resolve"),
        (
            change("person:ann", Some("new"), "cancelled:duplicate", None),
            "resolve",
        ),
    ];
    for (c, action) in cases {
        let what = text::note(&c);
        let v = pagerduty::event("R", &with_change(c), Some("stored-key"));
        assert_eq!(v["event_action"], action, "{what}");
        assert_eq!(v["dedup_key"], "stored-key", "{what}");
        // payload and links go with triggers only
        assert_eq!(v.get("payload").is_some(), action == "trigger", "{what}");
        if action != "trigger" {
            assert_eq!(v.as_object().unwrap().len(), 3, "{what}");
        }
    }
    for (ours, theirs) in [
        ("critical", "critical"),
        ("major", "error"),
        ("warning", "warning"),
        ("info", "info"),
        ("bogus", "error"),
    ] {
        let mut ev = opened();
        ev.severity = ours.into();
        assert_eq!(pagerduty::event("R", &ev, None)["payload"]["severity"], theirs);
    }
}

#[test]
fn pagerduty_summary_is_cut_at_1024_characters() {
    let mut ev = opened();
    ev.title = "é".repeat(2000);
    let v = pagerduty::event("R", &ev, None);
    let s = v["payload"]["summary"].as_str().unwrap();
    assert_eq!(s.chars().count(), 1024);
    assert!(s.starts_with("éé") && s.ends_with('…'));
    ev.title = "x".repeat(1024 - " (acme/db01)".len());
    let v = pagerduty::event("R", &ev, None);
    let s = v["payload"]["summary"].as_str().unwrap();
    assert_eq!(s.chars().count(), 1024);
    assert!(s.ends_with("(acme/db01)"));
    ev.title = String::new();
    let v = pagerduty::event("R", &ev, None);
    assert_eq!(
        v["payload"]["summary"],
        "[caretaker #42] db01 disk_reallocated_sectors /dev/sda"
    );
    ev.identity_key = "k".repeat(300);
    assert_eq!(pagerduty::dedup_key(&ev, None).len(), 255);
}

#[tokio::test]
async fn pagerduty_delivery() {
    let dir = tempfile::tempdir().unwrap();
    let ok = r#"{"status":"success","message":"Event processed","dedup_key":"x"}"#;
    let r = receiver(vec![
        reply(202, ok),
        reply(202, ok),
        reply(429, "slow down"),
        reply(400, r#"{"status":"invalid event"}"#),
    ])
    .await;
    let sink = one(SinksConfig {
        pagerduty: Some(PagerDutyConfig {
            url: r.url("/v2/enqueue"),
            routing_key_file: secret_file(&dir, "pd.key", "R0UT1NG\n"),
        }),
        ..Default::default()
    });
    assert_eq!((sink.name.as_str(), sink.kind()), ("pagerduty", SinkKind::PagerDuty));
    let key = "acme/db01/disk_reallocated_sectors//dev/sda";
    let d = sink.deliver(&opened(), None).await.unwrap();
    assert_eq!(d.external_id.as_deref(), Some(key));
    let ended = with_change(change("person:ann", Some("in_progress"), "resolved", None));
    let d = sink.deliver(&ended, Some(key)).await.unwrap();
    assert_eq!(d.external_id.as_deref(), Some(key));
    let seen = r.seen();
    assert_eq!(seen.len(), 2);
    for s in &seen {
        assert_eq!((s.method.as_str(), s.uri.as_str()), ("POST", "/v2/enqueue"));
        assert_eq!(s.header("content-type"), "application/json");
        assert_eq!(s.json()["routing_key"], "R0UT1NG");
        assert_eq!(s.json()["dedup_key"], key);
    }
    assert_eq!(seen[0].json()["event_action"], "trigger");
    assert_eq!(seen[0].json()["payload"]["source"], "db01");
    assert_eq!(
        seen[1].json(),
        json!({"routing_key": "R0UT1NG", "event_action": "resolve", "dedup_key": key})
    );
    let e = sink.deliver(&opened(), None).await.unwrap_err();
    assert!(matches!(&e, SinkError::Retry(m) if m.contains("429")), "{e}");
    let e = sink.deliver(&opened(), None).await.unwrap_err();
    assert!(
        matches!(&e, SinkError::Permanent(m) if m.contains("invalid event")),
        "{e}"
    );
}

// --- Jira ------------------------------------------------------------------------

#[test]
fn jira_bodies() {
    let mut ev = opened();
    ev.customer = "Acme  Corp".into();
    assert_eq!(
        jira::create_body("OPS", "Bug", &ev),
        json!({
            "fields": {
                "project": { "key": "OPS" },
                "summary": "[caretaker #42] db01: Reallocated sectors growing on /dev/sda",
                "description": text::description(&ev, true),
                "issuetype": { "name": "Bug" },
                "labels": ["caretaker", "Acme_Corp"],
            }
        })
    );
    let c = with_change(change("person:ann", Some("new"), "in_progress", Some("on site at 10")));
    assert_eq!(
        jira::comment_body(&c),
        json!({ "body": "person:ann: new → in_progress: on site at 10" })
    );
    assert_eq!(jira::transition_body("31"), json!({ "transition": { "id": "31" } }));
    assert!(jira::valid_key("OPS-12") && !jira::valid_key("OPS-1/../x") && !jira::valid_key(""));
}

fn jira_config(dir: &tempfile::TempDir, url: String) -> SinksConfig {
    SinksConfig {
        jira: Some(
            toml::from_str(&format!(
                r#"url = "{url}"
user = "caretaker@example"
token_file = "{}"
project_key = "OPS"
resolve_transition_id = "31""#,
                secret_file(dir, "jira.token", "tok3n\n").display()
            ))
            .unwrap(),
        ),
        ..Default::default()
    }
}

#[tokio::test]
async fn jira_delivery() {
    let dir = tempfile::tempdir().unwrap();
    let created = r#"{"id":"10001","key":"OPS-7","self":"http://jira/rest/api/2/issue/10001"}"#;
    let r = receiver(vec![
        reply(201, created),
        reply(201, r#"{"id":"1"}"#),
        reply(201, r#"{"id":"2"}"#),
        reply(204, ""),
        reply(201, r#"{"id":"3"}"#),
        reply(
            400,
            r#"{"errorMessages":[],"errors":{"project":"project is required"}}"#,
        ),
        reply(503, "maintenance"),
    ])
    .await;
    let sink = one(jira_config(&dir, r.url("/jira/")));
    assert_eq!((sink.name.as_str(), sink.kind()), ("jira", SinkKind::Jira));

    let d = sink.deliver(&opened(), None).await.unwrap();
    assert_eq!(d.external_id.as_deref(), Some("OPS-7"));
    // The opening change again, id known: nothing is sent.
    let d = sink.deliver(&opened(), Some("OPS-7")).await.unwrap();
    assert_eq!(d.external_id.as_deref(), Some("OPS-7"));
    let note = with_change(change("person:ann", Some("new"), "in_progress", Some("on it")));
    sink.deliver(&note, Some("OPS-7")).await.unwrap();
    let ended = with_change(change("person:ann", Some("in_progress"), "resolved", Some("swapped")));
    sink.deliver(&ended, Some("OPS-7")).await.unwrap();
    // resolved → closed: a comment, no second transition.
    let closed = with_change(change("rule:close", Some("resolved"), "closed", None));
    sink.deliver(&closed, Some("OPS-7")).await.unwrap();

    let seen = r.seen();
    let calls: Vec<_> = seen.iter().map(|s| format!("{} {}", s.method, s.uri)).collect();
    assert_eq!(
        calls,
        [
            "POST /jira/rest/api/2/issue",
            "POST /jira/rest/api/2/issue/OPS-7/comment",
            "POST /jira/rest/api/2/issue/OPS-7/comment",
            "POST /jira/rest/api/2/issue/OPS-7/transitions",
            "POST /jira/rest/api/2/issue/OPS-7/comment",
        ]
    );
    for s in &seen {
        assert_eq!(s.header("authorization"), "Basic Y2FyZXRha2VyQGV4YW1wbGU6dG9rM24=");
        assert_eq!(s.header("content-type"), "application/json");
    }
    assert_eq!(seen[0].json(), jira::create_body("OPS", "Bug", &opened()));
    assert_eq!(seen[1].json(), json!({"body": "person:ann: new → in_progress: on it"}));
    assert_eq!(
        seen[2].json(),
        json!({"body": "person:ann: in_progress → resolved: swapped"})
    );
    assert_eq!(seen[3].json(), json!({"transition": {"id": "31"}}));
    assert_eq!(seen[4].json(), json!({"body": "rule:close: resolved → closed"}));

    let e = sink.deliver(&opened(), None).await.unwrap_err();
    assert!(
        matches!(&e, SinkError::Permanent(m) if m.contains("project is required")),
        "{e}"
    );
    let e = sink.deliver(&note, Some("OPS-7")).await.unwrap_err();
    assert!(matches!(&e, SinkError::Retry(m) if m.contains("503")), "{e}");
    let e = sink.deliver(&note, Some("../../x")).await.unwrap_err();
    assert!(matches!(e, SinkError::Permanent(_)));
    assert_eq!(r.seen().len(), 2);
}

#[tokio::test]
async fn jira_first_delivery_at_a_later_change() {
    // A case that ended before it ever reached Jira: the issue is filed with
    // the change in its description and goes straight through the transition.
    let dir = tempfile::tempdir().unwrap();
    let r = receiver(vec![
        reply(201, r#"{"id":"10002","key":"OPS-8","self":"x"}"#),
        reply(204, ""),
    ])
    .await;
    let sink = one(jira_config(&dir, r.url("")));
    let ended = with_change(change("rule:smart", Some("recovered"), "resolved", None));
    let d = sink.deliver(&ended, None).await.unwrap();
    assert_eq!(d.external_id.as_deref(), Some("OPS-8"));
    let seen = r.seen();
    let calls: Vec<_> = seen.iter().map(|s| format!("{} {}", s.method, s.uri)).collect();
    assert_eq!(
        calls,
        ["POST /rest/api/2/issue", "POST /rest/api/2/issue/OPS-8/transitions"]
    );
    let description = seen[0].json()["fields"]["description"].as_str().unwrap().to_string();
    assert!(
        description.ends_with("rule:smart: recovered → resolved\n"),
        "{description}"
    );
}

#[tokio::test]
async fn jira_unreachable_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let sink = one(jira_config(&dir, refused_url("").await));
    let e = sink.deliver(&opened(), None).await.unwrap_err();
    assert!(matches!(e, SinkError::Retry(_)), "{e}");
}

// --- Redmine (payloads; the real server is in tests/redmine_sink.rs) ------------------

#[test]
fn redmine_bodies() {
    let r = redmine::Redmine::new(&redmine_config(), "k".into());
    assert_eq!(
        r.create_body(&opened()),
        json!({"issue": {
            "project_id": "caretaker-cases",
            "tracker_id": 1,
            "priority_id": 4,
            "subject": "[caretaker #42] db01: Reallocated sectors growing on /dev/sda",
            "description": text::description(&opened(), true),
        }})
    );
    let ev = with_change(change("person:ann", Some("new"), "in_progress", Some("on it")));
    assert_eq!(
        r.update_body(&ev),
        json!({"issue": {
            "notes": "person:ann: new → in_progress: on it",
            "private_notes": true,
            "priority_id": 4,
            "status_id": 2,
        }})
    );
    // A comment made public on the case is a public note.
    let public = with_change(Change {
        visibility: "public".into(),
        ..change(
            "person:ann",
            Some("in_progress"),
            "in_progress",
            Some("a new disk arrives tomorrow"),
        )
    });
    assert_eq!(r.update_body(&public)["issue"]["private_notes"], json!(false));
    let mut note = with_change(change(
        "rule:esc",
        Some("in_progress"),
        "in_progress",
        Some("escalated"),
    ));
    note.severity = "critical".into();
    assert_eq!(
        r.update_body(&note),
        json!({"issue": {"notes": "rule:esc: in_progress → in_progress: escalated", "private_notes": true, "priority_id": 5}})
    );
    for (sev, id) in [("critical", 5), ("major", 4), ("warning", 3), ("info", 2)] {
        assert_eq!(redmine::priority_id(sev), id);
    }
    for (to, status) in [
        ("assigned", Some(2)),
        ("in_progress", Some(2)),
        // Resolution closes the issue (Redmine's default "Closed").
        ("resolved", Some(5)),
        ("closed", Some(5)),
        ("cancelled:duplicate", Some(5)),
        ("on_hold:awaiting_parts", None),
        ("recovered", None),
    ] {
        assert_eq!(r.status_id(&change("rule:r", Some("new"), to, None)), status, "{to}");
    }
    // A reopened case opens its issue again.
    assert_eq!(r.status_id(&change("rule:r", Some("resolved"), "new", None)), Some(1));
    assert_eq!(r.status_id(&change("rule:r", Some("closed"), "new", None)), Some(1));
    // A case first delivered at a later change: created, then moved to its
    // status (Redmine ignores a status in the create).
    let late = with_change(change("rule:smart", Some("in_progress"), "resolved", None));
    assert!(r.create_body(&late)["issue"].get("status_id").is_none());
    assert_eq!(r.status_body(&late), Some(json!({"issue": {"status_id": 5}})));
    assert_eq!(r.status_body(&opened()), None);
    assert_eq!(r.status_body(&note), None);

    let custom: RedmineConfig = toml::from_str(
        r#"url = "http://r"
api_key_file = "/k"
project = "p"
tracker_id = 3
in_progress_status_id = 12
resolved_status_id = 13
closed_status_id = 15"#,
    )
    .unwrap();
    let r = redmine::Redmine::new(&custom, "k".into());
    assert_eq!(r.create_body(&opened())["issue"]["tracker_id"], 3);
    assert_eq!(r.status_id(&change("r", Some("new"), "assigned", None)), Some(12));
    assert_eq!(r.status_id(&change("r", Some("new"), "resolved", None)), Some(13));
    assert_eq!(r.status_id(&change("r", Some("resolved"), "closed", None)), Some(15));
}

#[tokio::test]
async fn redmine_rejected_key_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let r = receiver(vec![reply(401, "")]).await;
    let key_file = secret_file(&dir, "redmine.key", "wrong\n");
    let mut c = redmine_config();
    c.url = r.url("");
    c.api_key_file = key_file.clone();
    let sink = one(SinksConfig {
        redmine: Some(c),
        ..Default::default()
    });
    let e = sink.deliver(&opened(), None).await.unwrap_err();
    assert!(
        matches!(&e, SinkError::Permanent(m) if m.contains(&key_file.display().to_string())),
        "{e}"
    );
    let seen = r.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        (seen[0].method.as_str(), seen[0].uri.as_str()),
        ("GET", "/users/current.json")
    );
    assert_eq!(seen[0].header("x-redmine-api-key"), "wrong");
}

// --- configuration -------------------------------------------------------------------

const EXAMPLE: &str = r#"
[[webhook]]
name = "ops"
url = "https://hooks.example/caretaker"
secret_file = "/etc/caretaker/webhook.secret"

[redmine]
url = "http://127.0.0.1:3999"
api_key_file = "/etc/caretaker/redmine.key"
project = "caretaker-cases"
resolved_status_id = 3
closed_status_id = 5
in_progress_status_id = 2

[pagerduty]
routing_key_file = "/etc/caretaker/pd.key"

[jira]
url = "https://jira.example"
user = "caretaker@example"
token_file = "/etc/caretaker/jira.token"
project_key = "OPS"
resolve_transition_id = "31"
"#;

#[test]
fn config_parses_with_defaults() {
    let c: SinksConfig = toml::from_str(EXAMPLE).unwrap();
    assert_eq!(c.webhook.len(), 1);
    assert_eq!(c.webhook[0].name, "ops");
    let r = c.redmine.as_ref().unwrap();
    assert_eq!((r.tracker_id, r.project.as_str()), (1, "caretaker-cases"));
    let d = c.pagerduty.as_ref().unwrap();
    assert_eq!(d.url, "https://events.pagerduty.com/v2/enqueue");
    let j = c.jira.as_ref().unwrap();
    assert_eq!(j.issue_type, "Bug");
    let mut p = Vec::new();
    c.problems(&mut p);
    assert!(p.is_empty(), "{p:?}");

    let none: SinksConfig = toml::from_str("").unwrap();
    assert!(none.webhook.is_empty() && none.redmine.is_none() && none.jira.is_none());
    assert!(build(&none).unwrap().is_empty());

    for bad in [
        "[redmine]\nurl = \"http://r\"\napi_key_file = \"/k\"\nproject = \"p\"\npriority = 1\n",
        "[pagerduty]\nrouting_key_file = \"/k\"\nrouting_key = \"inline\"\n",
        "[[webhook]]\nname = \"a\"\nurl = \"http://a\"\nsecret_file = \"/s\"\nsecret = \"x\"\n",
        "[slack]\nurl = \"http://s\"\n",
    ] {
        assert!(toml::from_str::<SinksConfig>(bad).is_err(), "{bad}");
    }
}

#[test]
fn config_problems() {
    let c: SinksConfig = toml::from_str(
        r#"
[[webhook]]
name = "ops"
url = "ftp://hooks.example/x"
secret_file = "/s"
[[webhook]]
name = "ops"
url = "not a url"
secret_file = "/s"
[[webhook]]
name = "jira"
url = "http://h"
secret_file = "/s"
[jira]
url = "https://jira.example"
user = ""
token_file = "/t"
project_key = "OPS"
resolve_transition_id = "31"
"#,
    )
    .unwrap();
    let mut p = Vec::new();
    c.problems(&mut p);
    let all = p.join("\n");
    for expected in [
        "sinks.webhook[0].url: \"ftp://hooks.example/x\" is not an http(s) URL",
        "sinks.webhook[1].name: \"ops\" is used twice",
        "sinks.webhook[1].url: \"not a url\"",
        "sinks.webhook[2].name: \"jira\" is the name of a built-in sink",
        "sinks.jira.user: must not be empty",
    ] {
        assert!(all.contains(expected), "{expected:?} not in\n{all}");
    }
    assert_eq!(p.len(), 5, "{all}");
    assert!(build(&c).is_err());
}

#[test]
fn config_in_the_collector_config() {
    let c = crate::config::Config::parse(
        "[[sinks.webhook]]\nname = \"ops\"\nurl = \"http://h\"\nsecret_file = \"/s\"\n",
        std::path::Path::new("c.toml"),
    )
    .unwrap();
    assert_eq!(c.sinks.webhook.len(), 1);
    let e = crate::config::Config::parse(
        "[[sinks.webhook]]\nname = \"\"\nurl = \"http://h\"\nsecret_file = \"/s\"\n",
        std::path::Path::new("c.toml"),
    );
    assert!(e.err().is_some_and(|e| e.to_string().contains("sinks.webhook[0].name")));
}

#[test]
fn build_reads_the_secret_files() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.key");
    let mut c = SinksConfig {
        pagerduty: Some(PagerDutyConfig {
            url: default_pagerduty_url(),
            routing_key_file: missing.clone(),
        }),
        ..Default::default()
    };
    let e = build(&c).unwrap_err();
    assert!(e.contains(&missing.display().to_string()), "{e}");
    let empty = secret_file(&dir, "empty.key", " \n");
    c.pagerduty.as_mut().unwrap().routing_key_file = empty.clone();
    assert_eq!(build(&c).unwrap_err(), format!("{}: empty", empty.display()));
    c.pagerduty.as_mut().unwrap().routing_key_file = secret_file(&dir, "ok.key", "abc\n");
    let sinks = build(&c).unwrap();
    assert_eq!(sinks.len(), 1);
    // Debug output names the sink, never the secret.
    let dbg = format!("{:?}", sinks[0]);
    assert!(dbg.contains("pagerduty") && !dbg.contains("abc"), "{dbg}");
}
