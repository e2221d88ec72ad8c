//! The queue's Redmine sink against a real Redmine (`scripts/redmine.sh`,
//! which `.ci/run` runs): a case opens an issue, a comment becomes a note,
//! resolution closes it and closing adds the satisfaction; with Redmine
//! stopped, the change waits in the outbox and arrives once Redmine is
//! back, exactly once.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::util::{Agent, Collector, eventually, wait_for_host};

struct Redmine {
    url: String,
    key: String,
    pidfile: String,
    http: reqwest::Client,
    /// A project of this run's own: case ids restart at 1 with every new
    /// collector, so runs must not share one.
    project: String,
}

impl Redmine {
    /// From the environment `scripts/redmine.sh` prints; `None` when unset.
    fn from_env() -> Option<Redmine> {
        let url = std::env::var("CARETAKER_TEST_REDMINE").ok()?;
        let key = std::env::var("CARETAKER_TEST_REDMINE_KEY").unwrap_or_else(|_| panic!("CARETAKER_TEST_REDMINE_KEY"));
        let pidfile = std::env::var("CARETAKER_TEST_REDMINE_PIDFILE")
            .unwrap_or_else(|_| panic!("CARETAKER_TEST_REDMINE_PIDFILE"));
        Some(Redmine {
            url,
            key,
            pidfile,
            http: reqwest::Client::new(),
            project: format!("caretaker-e2e-{}", caretaker_shared::now_ms()),
        })
    }

    async fn create_project(&self) {
        let r = self
            .http
            .post(format!("{}/projects.json", self.url))
            .header("X-Redmine-API-Key", &self.key)
            .json(&json!({"project": {"name": self.project, "identifier": self.project, "is_public": false}}))
            .send()
            .await
            .unwrap_or_else(|e| panic!("create project: {e}"));
        assert_eq!(
            r.status(),
            reqwest::StatusCode::CREATED,
            "create project {}",
            self.project
        );
    }

    async fn get(&self, path: &str) -> Option<Value> {
        let r = self
            .http
            .get(format!("{}{path}", self.url))
            .header("X-Redmine-API-Key", &self.key)
            .send()
            .await
            .ok()?;
        if !r.status().is_success() {
            return None;
        }
        r.json().await.ok()
    }

    async fn up(&self) -> bool {
        self.get("/users/current.json").await.is_some()
    }

    /// Every issue (any status) whose subject carries the case's marker.
    async fn issues_of_case(&self, case_id: i64) -> Vec<Value> {
        let marker = format!("[caretaker #{case_id}]");
        let list = self
            .get(&format!(
                "/issues.json?project_id={}&status_id=*&limit=100&sort=id:desc",
                self.project
            ))
            .await
            .unwrap_or_else(|| panic!("Redmine issue list"));
        list["issues"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|i| i["subject"].as_str().is_some_and(|s| s.starts_with(&marker)))
            .collect()
    }

    async fn issue(&self, id: i64) -> Value {
        self.get(&format!("/issues/{id}.json?include=journals"))
            .await
            .unwrap_or_else(|| panic!("Redmine issue {id}"))
    }

    fn stop(&self) {
        let pid = std::fs::read_to_string(&self.pidfile).unwrap_or_else(|e| panic!("{}: {e}", self.pidfile));
        let out = Command::new("kill")
            .arg(pid.trim())
            .output()
            .unwrap_or_else(|e| panic!("kill: {e}"));
        assert!(
            out.status.success(),
            "kill {pid}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn start(&self) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/redmine.sh");
        let out = Command::new("bash")
            .arg(script)
            .output()
            .unwrap_or_else(|e| panic!("redmine.sh: {e}"));
        assert!(
            out.status.success(),
            "redmine.sh: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The journal notes of an issue that contain `text`.
fn notes_with(issue: &Value, text: &str) -> usize {
    issue["issue"]["journals"]
        .as_array()
        .map(|j| {
            j.iter()
                .filter(|n| n["notes"].as_str().is_some_and(|s| s.contains(text)))
                .count()
        })
        .unwrap_or(0)
}

/// Whether Redmine keeps private the journal note that contains `text`.
fn private_notes_with(issue: &Value, text: &str) -> Option<bool> {
    issue["issue"]["journals"]
        .as_array()?
        .iter()
        .find(|n| n["notes"].as_str().is_some_and(|s| s.contains(text)))?["private_notes"]
        .as_bool()
}

#[tokio::test]
async fn cases_reach_a_real_redmine_once_even_when_it_was_down() {
    let Some(redmine) = Redmine::from_env() else {
        eprintln!("CARETAKER_TEST_REDMINE unset: skipping the real Redmine test");
        return;
    };
    assert!(
        redmine.up().await,
        "Redmine at {} does not answer (key {})",
        redmine.url,
        redmine.key
    );
    redmine.create_project().await;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let contracts = dir.path().join("contracts.toml");
    std::fs::write(
        &contracts,
        r#"
[[customer]]
name = "acme"
sites = ["hq"]

[[contract]]
name = "acme-24"
customer = "acme"
covers = { labels = { customer = "acme" } }
hours = "7x24"
time_zone = "UTC"
response = { major = "4h" }
resolution = { major = "1d" }

[[engineer]]
name = "ana"
skills = ["os", "hardware"]
sites = ["hq"]
level = "L1"
"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let key_file = dir.path().join("redmine.key");
    std::fs::write(&key_file, &redmine.key).unwrap_or_else(|e| panic!("{e}"));
    let config = format!(
        "[queue]\ncontracts_file = \"{}\"\npublic_url = \"https://caretaker.example\"\n\n[sinks.redmine]\nurl = \"{}\"\napi_key_file = \"{}\"\nproject = \"{}\"\n",
        contracts.display(),
        redmine.url,
        key_file.display(),
        redmine.project
    );
    let collector = Collector::start_with_config(dir.path(), &config).await;
    let agent = Agent::start(dir.path(), &collector, 1, "");
    let host = wait_for_host(&collector, &agent).await;
    let _ = host;
    // The asset is known once its inventory is stored.
    eventually("the asset", Duration::from_secs(30), || async {
        let a = collector.api("/api/v1/assets").await;
        a["assets"]
            .as_array()
            .is_some_and(|l| l.iter().any(|x| x["host"] == "e2e-host"))
            .then_some(())
    })
    .await;
    // A reported fault opens a case, which opens a Redmine issue.
    let title = format!("Backups fail ({})", caretaker_shared::now_ms());
    let (code, v) = collector
        .api_post(
            "/api/v1/cases",
            &json!({"asset": "e2e-host", "title": title, "severity": "major"}),
        )
        .await;
    assert_eq!(code, reqwest::StatusCode::CREATED, "{v}");
    let case = v["id"].as_i64().unwrap_or_else(|| panic!("{v}"));
    let issue_id = eventually("the Redmine issue", Duration::from_secs(30), || async {
        let found = redmine.issues_of_case(case).await;
        found.first().and_then(|i| i["id"].as_i64())
    })
    .await;
    let issue = redmine.issue(issue_id).await;
    assert!(
        issue["issue"]["subject"].as_str().is_some_and(|s| s.contains(&title)),
        "{issue}"
    );
    // The case keeps the Redmine issue id.
    eventually("the issue id on the case", Duration::from_secs(10), || async {
        let c = collector.api(&format!("/api/v1/cases/{case}")).await;
        (c["queue"]["external"] == json!([{"sink": "redmine", "id": issue_id.to_string()}])).then_some(())
    })
    .await;
    let act = |body: Value| {
        let collector = &collector;
        async move {
            let (code, v) = collector
                .api_post(&format!("/api/v1/cases/{case}/actions"), &body)
                .await;
            assert_eq!(code, reqwest::StatusCode::OK, "{body} → {v}");
        }
    };
    // A comment becomes a note: private when internal (the staff's
    // default), public when made public on the case.
    act(json!({"action": "comment", "comment": "checked the backup server"})).await;
    act(json!({"action": "comment", "comment": "a new disk arrives tomorrow", "visibility": "public"})).await;
    eventually("the notes", Duration::from_secs(30), || async {
        let i = redmine.issue(issue_id).await;
        (notes_with(&i, "checked the backup server") == 1 && notes_with(&i, "a new disk arrives tomorrow") == 1)
            .then_some(())
    })
    .await;
    let issue = redmine.issue(issue_id).await;
    assert_eq!(
        private_notes_with(&issue, "checked the backup server"),
        Some(true),
        "{issue}"
    );
    assert_eq!(
        private_notes_with(&issue, "a new disk arrives tomorrow"),
        Some(false),
        "{issue}"
    );
    // Redmine goes down; the next change waits in the outbox.
    redmine.stop();
    eventually("Redmine down", Duration::from_secs(30), || async {
        (!redmine.up().await).then_some(())
    })
    .await;
    act(json!({"action": "comment", "comment": "sent while Redmine was down"})).await;
    eventually("a failed delivery", Duration::from_secs(30), || async {
        let o = collector.api("/api/v1/outbox").await;
        let s = &o["sinks"][0]["state"];
        (s["pending"].as_i64() >= Some(1) && s["attempts"].as_i64() >= Some(1)).then_some(())
    })
    .await;
    redmine.start();
    // Back: delivered, and only once (backoff is at most 5 minutes; the
    // outage above is short, so the retry comes within seconds).
    eventually("the note after the outage", Duration::from_secs(120), || async {
        (notes_with(&redmine.issue(issue_id).await, "sent while Redmine was down") >= 1).then_some(())
    })
    .await;
    // Resolution resolves the issue, closing closes it.
    act(json!({"action": "acknowledge"})).await;
    act(
        json!({"action": "resolve", "report": {"host": "", "mode": "remote", "symptom": "backup job failed",
        "work_done": "fixed the credentials", "engineer": "", "minutes": 15}}),
    )
    .await;
    eventually("the issue closed on resolution", Duration::from_secs(30), || async {
        let i = redmine.issue(issue_id).await;
        (i["issue"]["status"]["id"] == json!(5) && notes_with(&i, "fixed the credentials") == 1).then_some(())
    })
    .await;
    act(json!({"action": "close", "satisfaction": {"score": 5}})).await;
    eventually("the satisfaction note", Duration::from_secs(30), || async {
        (notes_with(&redmine.issue(issue_id).await, "satisfaction 5/5") == 1).then_some(())
    })
    .await;
    let issue = redmine.issue(issue_id).await;
    assert_eq!(notes_with(&issue, "sent while Redmine was down"), 1, "{issue}");
    assert_eq!(notes_with(&issue, "checked the backup server"), 1, "{issue}");
    assert_eq!(redmine.issues_of_case(case).await.len(), 1, "one issue per case");
    let o = collector.api("/api/v1/outbox").await;
    assert_eq!(o["sinks"][0]["state"]["pending"], 0, "{o}");
    assert_eq!(o["sinks"][0]["state"]["dead"], 0, "{o}");
    drop(agent);
}
