//! The Redmine sink against a real Redmine (`scripts/redmine.sh` starts one):
//! one issue per case, found again by its marker after a lost id, journal
//! notes, status and priority following the case, refused key and project.
//!
//! Runs when CARETAKER_TEST_REDMINE (base URL) and CARETAKER_TEST_REDMINE_KEY
//! (an admin API key) are set; then a Redmine that does not answer fails the
//! test.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use caretaker_collector::sinks::{self, CaseEvent, Change, Delivered, RedmineConfig, Sink, SinkError, SinksConfig};
use serde_json::Value;

const PROJECT: &str = "caretaker-cases";

struct Server {
    url: String,
    key: String,
    http: reqwest::Client,
}

impl Server {
    async fn get(&self, path_and_query: &str) -> Value {
        let resp = self
            .http
            .get(format!("{}{path_and_query}", self.url))
            .header("X-Redmine-API-Key", &self.key)
            .send()
            .await
            .unwrap_or_else(|e| panic!("Redmine at {} does not answer: {e}", self.url));
        assert_eq!(resp.status(), 200, "GET {path_and_query}");
        resp.json().await.unwrap()
    }

    async fn issue(&self, id: &str) -> Value {
        self.get(&format!("/issues/{id}.json?include=journals")).await["issue"].clone()
    }

    /// Issues of the project, any status, whose subject starts with the
    /// marker: every page of the unfiltered list, matched here.
    async fn count_marked(&self, marker: &str) -> usize {
        let (mut n, mut offset) = (0, 0);
        loop {
            let page = self
                .get(&format!(
                    "/issues.json?project_id={PROJECT}&status_id=*&limit=100&offset={offset}"
                ))
                .await;
            let issues = page["issues"].as_array().unwrap();
            n += issues
                .iter()
                .filter(|i| i["subject"].as_str().unwrap().starts_with(marker))
                .count();
            offset += issues.len();
            if issues.is_empty() || offset as u64 >= page["total_count"].as_u64().unwrap() {
                return n;
            }
        }
    }
}

fn key_file(dir: &tempfile::TempDir, name: &str, key: &str) -> PathBuf {
    let p = dir.path().join(name);
    std::fs::write(&p, format!("{key}\n")).unwrap();
    p
}

fn sink(url: &str, key_file: PathBuf, project: &str) -> Sink {
    let config: RedmineConfig = toml::from_str(&format!(
        "url = \"{url}\"\napi_key_file = \"{}\"\nproject = \"{project}\"\n",
        key_file.display()
    ))
    .unwrap();
    let mut all = sinks::build(&SinksConfig {
        redmine: Some(config),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(all.len(), 1);
    all.remove(0)
}

fn event(case_id: i64, outbox_id: i64, severity: &str, change: Change) -> CaseEvent {
    CaseEvent {
        outbox_id,
        case_id,
        identity_key: "acme/db01/disk_reallocated_sectors//dev/sda".into(),
        customer: "acme".into(),
        asset: "db01".into(),
        check: "disk_reallocated_sectors".into(),
        component: "/dev/sda".into(),
        severity: severity.into(),
        status: change.to_status.clone(),
        title: "Reallocated sectors growing on /dev/sda".into(),
        assignee: Some("ann".into()),
        level: "L1".into(),
        out_of_scope: false,
        response_due_ms: Some(case_id + 3_600_000),
        resolution_due_ms: None,
        change,
        url: Some(format!("https://caretaker.example/cases/{case_id}")),
    }
}

fn change(at_ms: i64, actor: &str, from: Option<&str>, to: &str, comment: Option<&str>) -> Change {
    Change {
        at_ms,
        actor: actor.into(),
        from_status: from.map(Into::into),
        to_status: to.into(),
        comment: comment.map(Into::into),
        visibility: "internal".into(),
    }
}

/// Each journal note with whether Redmine keeps it private.
fn journal_privacy(issue: &Value) -> Vec<(String, bool)> {
    issue["journals"]
        .as_array()
        .map(|j| {
            j.iter()
                .filter_map(|j| Some((j["notes"].as_str()?.to_string(), j["private_notes"].as_bool()?)))
                .filter(|(n, _)| !n.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

fn journal_notes(issue: &Value) -> Vec<String> {
    issue["journals"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|j| j["notes"].as_str())
        .filter(|n| !n.is_empty())
        .map(|n| n.replace("\r\n", "\n"))
        .collect()
}

#[tokio::test]
async fn sinks_redmine_one_issue_per_case_with_notes_and_status() {
    let Ok(url) = std::env::var("CARETAKER_TEST_REDMINE") else {
        eprintln!("CARETAKER_TEST_REDMINE not set: Redmine sink test skipped (scripts/redmine.sh)");
        return;
    };
    let key = std::env::var("CARETAKER_TEST_REDMINE_KEY")
        .expect("CARETAKER_TEST_REDMINE is set, CARETAKER_TEST_REDMINE_KEY must be too");
    let server = Server {
        url: url.trim_end_matches('/').to_string(),
        key: key.clone(),
        http: reqwest::Client::new(),
    };
    // Fails here, with the reason, when the server does not answer.
    let me = server.get("/users/current.json").await;
    assert!(me["user"]["id"].as_u64().is_some(), "{me}");

    let dir = tempfile::tempdir().unwrap();
    let redmine = sink(&server.url, key_file(&dir, "redmine.key", &key), PROJECT);
    // Unique per run: reruns against the same server do not collide.
    let case_id = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
    let marker = format!("[caretaker #{case_id}]");
    let t = case_id;

    // Opened: a new issue carrying the marker, the case and the opening note.
    let opened = event(
        case_id,
        1,
        "major",
        change(t, "rule:smart", None, "new", Some("12 → 40 sectors")),
    );
    let Delivered { external_id } = redmine.deliver(&opened, None).await.unwrap();
    let id = external_id.expect("the issue id");
    let issue = server.issue(&id).await;
    assert_eq!(
        issue["subject"],
        format!("{marker} db01: Reallocated sectors growing on /dev/sda")
    );
    let description = issue["description"].as_str().unwrap().replace("\r\n", "\n");
    assert!(description.contains("Customer: acme\n"), "{description}");
    assert!(
        description.contains("rule:smart: opened → new: 12 → 40 sectors"),
        "{description}"
    );
    assert_eq!(issue["project"]["name"], "Caretaker Cases");
    assert_eq!(issue["tracker"]["id"], 1);
    assert_eq!(issue["priority"]["id"], 4);
    assert_eq!(issue["status"]["name"], "New");
    assert_eq!(server.count_marked(&marker).await, 1);

    // The id was never stored (crash after the create): the same issue.
    let again = redmine.deliver(&opened, None).await.unwrap();
    assert_eq!(again.external_id.as_deref(), Some(id.as_str()));
    // The opening change with its id known: nothing added.
    redmine.deliver(&opened, Some(&id)).await.unwrap();
    assert_eq!(server.count_marked(&marker).await, 1);
    assert!(journal_notes(&server.issue(&id).await).is_empty());

    // A person takes it: a journal note, status In Progress.
    let taken = event(
        case_id,
        2,
        "major",
        change(t + 1, "person:ann", Some("new"), "in_progress", Some("on site at 10")),
    );
    let d = redmine.deliver(&taken, Some(&id)).await.unwrap();
    assert_eq!(d.external_id.as_deref(), Some(id.as_str()));
    let issue = server.issue(&id).await;
    assert_eq!(journal_notes(&issue), ["person:ann: new → in_progress: on site at 10"]);
    assert_eq!(issue["status"]["name"], "In Progress");

    // Escalation note: the status stays, the priority follows the severity.
    let escalated = event(
        case_id,
        3,
        "critical",
        change(
            t + 2,
            "rule:escalate",
            Some("in_progress"),
            "in_progress",
            Some("now critical"),
        ),
    );
    redmine.deliver(&escalated, Some(&id)).await.unwrap();
    let issue = server.issue(&id).await;
    assert_eq!(issue["priority"]["id"], 5);
    assert_eq!(issue["status"]["name"], "In Progress");
    assert_eq!(journal_notes(&issue).len(), 2);

    // A comment made public on the case is a public note; the rest private.
    let public = event(
        case_id,
        30,
        "critical",
        Change {
            visibility: "public".into(),
            ..change(
                t + 2,
                "person:ann",
                Some("in_progress"),
                "in_progress",
                Some("a new disk arrives tomorrow"),
            )
        },
    );
    redmine.deliver(&public, Some(&id)).await.unwrap();
    let issue = server.issue(&id).await;
    assert_eq!(
        journal_privacy(&issue),
        [
            ("person:ann: new → in_progress: on site at 10".to_string(), true),
            (
                "rule:escalate: in_progress → in_progress: now critical".to_string(),
                true
            ),
            (
                "person:ann: in_progress → in_progress: a new disk arrives tomorrow".to_string(),
                false
            ),
        ],
        "{issue}"
    );

    // Resolution closes the issue; closing the case adds its note.
    let resolved = event(
        case_id,
        4,
        "critical",
        change(
            t + 3,
            "person:ann",
            Some("in_progress"),
            "resolved",
            Some("disk swapped"),
        ),
    );
    redmine.deliver(&resolved, Some(&id)).await.unwrap();
    let issue = server.issue(&id).await;
    assert_eq!(issue["status"]["name"], "Closed");
    assert_eq!(
        journal_notes(&issue).last().map(String::as_str),
        Some("person:ann: in_progress → resolved: disk swapped")
    );
    let closed = event(
        case_id,
        5,
        "critical",
        change(t + 4, "rule:close", Some("resolved"), "closed", None),
    );
    redmine.deliver(&closed, Some(&id)).await.unwrap();
    assert_eq!(server.issue(&id).await["status"]["name"], "Closed");

    // Lost id once more, now that the issue is closed (absent from the
    // default open-only lists): still the same issue, still one.
    let again = redmine.deliver(&opened, None).await.unwrap();
    assert_eq!(again.external_id.as_deref(), Some(id.as_str()));
    assert_eq!(server.count_marked(&marker).await, 1);

    // A case first delivered at a later change (the sink was added while it
    // was open): filed in its current status, the change in the description.
    let late_id = case_id + 1;
    let late = event(
        late_id,
        6,
        "warning",
        change(t + 5, "person:bob", Some("new"), "in_progress", Some("already on it")),
    );
    let late_issue = redmine.deliver(&late, None).await.unwrap().external_id.unwrap();
    assert_ne!(late_issue, id);
    let issue = server.issue(&late_issue).await;
    assert!(
        issue["subject"]
            .as_str()
            .unwrap()
            .starts_with(&format!("[caretaker #{late_id}] "))
    );
    assert_eq!(issue["status"]["name"], "In Progress");
    assert_eq!(issue["priority"]["id"], 3);
    let description = issue["description"].as_str().unwrap().replace("\r\n", "\n");
    assert!(
        description.contains("person:bob: new → in_progress: already on it"),
        "{description}"
    );
    assert!(journal_notes(&issue).is_empty());

    // A refused key: permanent, and the message names the key file.
    let bad_file = key_file(&dir, "wrong.key", "0000000000000000000000000000000000000000");
    let wrong = sink(&server.url, bad_file.clone(), PROJECT);
    let e = wrong.deliver(&opened, None).await.unwrap_err();
    assert!(
        matches!(&e, SinkError::Permanent(m) if m.contains(&bad_file.display().to_string())),
        "{e}"
    );

    // An unknown project: permanent, nothing filed.
    let lost = sink(&server.url, key_file(&dir, "k2", &key), "no-such-project-caretaker");
    let e = lost.deliver(&opened, None).await.unwrap_err();
    assert!(matches!(e, SinkError::Permanent(_)), "{e}");
    assert_eq!(server.count_marked(&marker).await, 1);
}
