//! Redmine sink: REST API with the `X-Redmine-API-Key` header.
//!
//! A case is one issue whose subject starts with `[caretaker #<case_id>]`.
//! The first delivery looks for an issue with that marker before it creates
//! one, so a crash between creating the issue and storing its id does not
//! file the case twice. Later changes are journal notes (`PUT
//! /issues/N.json`, answered 204) that also move the issue's status and
//! priority with the case; a note is private unless the change was made
//! public on the case.
//!
//! Redmine answers a wrong API key with 200 and empty lists on list
//! endpoints: the key is checked once with `GET /users/current.json` first.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Deserialize;
use serde_json::{Value, json};

use super::{CaseEvent, Change, Delivered, RedmineConfig, SinkError, send, status_error, text, transport_error};

/// Redmine's limit on an issue subject, in characters.
pub(crate) const SUBJECT_MAX: usize = 255;
/// Issues per page when looking for the marker (Redmine's maximum).
const PAGE: usize = 100;

pub(crate) struct Redmine {
    base: String,
    key: String,
    key_file: PathBuf,
    project: String,
    tracker_id: u32,
    new_status_id: u32,
    in_progress_status_id: u32,
    resolved_status_id: u32,
    closed_status_id: u32,
    key_checked: AtomicBool,
}

/// Severity → priority id of Redmine's default data (2 Normal, 3 High,
/// 4 Urgent, 5 Immediate); an unknown severity is Normal.
pub(crate) fn priority_id(severity: &str) -> u32 {
    match severity {
        "critical" => 5,
        "major" => 4,
        "warning" => 3,
        _ => 2,
    }
}

#[derive(Deserialize)]
struct IssueList {
    issues: Vec<IssueRef>,
    #[serde(default)]
    total_count: usize,
}

#[derive(Deserialize)]
struct IssueRef {
    id: u64,
    #[serde(default)]
    subject: String,
}

#[derive(Deserialize)]
struct Created {
    issue: IssueRef,
}

impl Redmine {
    pub(crate) fn new(c: &RedmineConfig, key: String) -> Self {
        Self {
            base: c.url.trim_end_matches('/').to_string(),
            key,
            key_file: c.api_key_file.clone(),
            project: c.project.clone(),
            tracker_id: c.tracker_id,
            new_status_id: c.new_status_id,
            in_progress_status_id: c.in_progress_status_id,
            resolved_status_id: c.resolved_status_id,
            closed_status_id: c.closed_status_id,
            key_checked: AtomicBool::new(false),
        }
    }

    /// The status the issue moves to with this change; None when the change
    /// does not move the case or its new status has no Redmine counterpart.
    pub(crate) fn status_id(&self, change: &Change) -> Option<u32> {
        if !change.moved() {
            return None;
        }
        match change.to_status.as_str() {
            // Reopened: the issue opens again.
            "new" | "recovered" if change.from_ended() => Some(self.new_status_id),
            "assigned" | "in_progress" => Some(self.in_progress_status_id),
            "resolved" => Some(self.resolved_status_id),
            s if s == "closed" || s.starts_with("cancelled") => Some(self.closed_status_id),
            _ => None,
        }
    }

    /// `POST /issues.json`: the case as it is, this change's note in the
    /// description. A new issue takes the tracker's default status whatever
    /// the request says (unless the workflow allows more): a status is set
    /// afterwards, see [`Self::status_body`].
    pub(crate) fn create_body(&self, ev: &CaseEvent) -> Value {
        json!({ "issue": {
            "project_id": self.project,
            "tracker_id": self.tracker_id,
            "priority_id": priority_id(&ev.severity),
            "subject": text::subject(ev, SUBJECT_MAX),
            "description": text::description(ev, true),
        }})
    }

    /// `PUT /issues/N.json` right after the create, for a case first
    /// delivered at a change that moved it: the status alone (the change's
    /// note is in the description).
    pub(crate) fn status_body(&self, ev: &CaseEvent) -> Option<Value> {
        self.status_id(&ev.change)
            .map(|s| json!({ "issue": { "status_id": s } }))
    }

    /// `PUT /issues/N.json`: the change as a note, private unless it is
    /// public on the case (a customer who reads the project in Redmine
    /// reads there what the portal shows them, no more); priority and
    /// status follow the case.
    pub(crate) fn update_body(&self, ev: &CaseEvent) -> Value {
        let mut issue = json!({
            "notes": text::note(&ev.change),
            "private_notes": !ev.change.public(),
            "priority_id": priority_id(&ev.severity),
        });
        if let Some(s) = self.status_id(&ev.change) {
            issue["status_id"] = json!(s);
        }
        json!({ "issue": issue })
    }

    fn request(&self, req: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        req.header("X-Redmine-API-Key", &self.key)
    }

    pub(crate) async fn deliver(
        &self,
        client: &reqwest::Client,
        ev: &CaseEvent,
        external_id: Option<&str>,
    ) -> Result<Delivered, SinkError> {
        self.check_key(client).await?;
        let id = match external_id {
            Some(id) => id
                .parse::<u64>()
                .map_err(|_| SinkError::Permanent(format!("{id:?} is not a Redmine issue id")))?,
            None => match self.find(client, ev.case_id).await? {
                Some(id) => {
                    tracing::info!(
                        case_id = ev.case_id,
                        issue = id,
                        "Redmine issue of the case found by its marker"
                    );
                    id
                }
                None => {
                    let id = self.create(client, ev).await?;
                    if let Some(body) = self.status_body(ev) {
                        self.put(client, id, &body).await?;
                    }
                    return Ok(Delivered {
                        external_id: Some(id.to_string()),
                    });
                }
            },
        };
        // The opening change made the issue: nothing to add.
        if !ev.change.opened() {
            self.update(client, id, ev).await?;
        }
        Ok(Delivered {
            external_id: Some(id.to_string()),
        })
    }

    /// Once per sink: a wrong key would otherwise read as "no issue".
    async fn check_key(&self, client: &reqwest::Client) -> Result<(), SinkError> {
        if self.key_checked.load(Ordering::Relaxed) {
            return Ok(());
        }
        let what = "GET Redmine /users/current.json";
        let resp = self
            .request(client.get(format!("{}/users/current.json", self.base)))
            .send()
            .await
            .map_err(|e| transport_error(what, &e))?;
        let status = resp.status();
        if status == reqwest::StatusCode::UNAUTHORIZED {
            return Err(SinkError::Permanent(format!(
                "Redmine rejects the API key in {} (401)",
                self.key_file.display()
            )));
        }
        if status == reqwest::StatusCode::FORBIDDEN {
            return Err(SinkError::Permanent(
                "Redmine answers 403 to /users/current.json: is the REST API enabled?".into(),
            ));
        }
        if !status.is_success() {
            return Err(status_error(status, format!("{what}: HTTP {status}")));
        }
        self.key_checked.store(true, Ordering::Relaxed);
        Ok(())
    }

    /// The lowest-numbered issue of the project (any status) whose subject
    /// starts with the case's marker. Asks Redmine to filter on the subject
    /// and checks the prefix here, paging through what comes back.
    async fn find(&self, client: &reqwest::Client, case_id: i64) -> Result<Option<u64>, SinkError> {
        let marker = text::marker(case_id);
        let what = "GET Redmine /issues.json";
        let mut found: Option<u64> = None;
        let mut offset = 0usize;
        loop {
            let req = client.get(format!("{}/issues.json", self.base)).query(&[
                ("project_id", self.project.as_str()),
                ("status_id", "*"),
                ("subject", &format!("~{marker}")),
                ("sort", "id"),
                ("limit", &PAGE.to_string()),
                ("offset", &offset.to_string()),
            ]);
            let resp = send(what, self.request(req)).await?;
            let page: IssueList = resp
                .json()
                .await
                .map_err(|e| SinkError::Retry(format!("{what}: unreadable answer: {e}")))?;
            let n = page.issues.len();
            for issue in page.issues {
                if issue.subject.starts_with(&marker) {
                    found = Some(found.map_or(issue.id, |f| f.min(issue.id)));
                }
            }
            offset += n;
            if n == 0 || offset >= page.total_count {
                return Ok(found);
            }
        }
    }

    async fn create(&self, client: &reqwest::Client, ev: &CaseEvent) -> Result<u64, SinkError> {
        let what = "POST Redmine /issues.json";
        let req = client
            .post(format!("{}/issues.json", self.base))
            .json(&self.create_body(ev));
        let resp = send(what, self.request(req)).await?;
        // A retry finds the issue by its marker: safe to retry.
        let created: Created = resp
            .json()
            .await
            .map_err(|e| SinkError::Retry(format!("{what}: unreadable answer: {e}")))?;
        Ok(created.issue.id)
    }

    async fn update(&self, client: &reqwest::Client, id: u64, ev: &CaseEvent) -> Result<(), SinkError> {
        self.put(client, id, &self.update_body(ev)).await
    }

    async fn put(&self, client: &reqwest::Client, id: u64, body: &Value) -> Result<(), SinkError> {
        let what = format!("PUT Redmine /issues/{id}.json");
        let req = client.put(format!("{}/issues/{id}.json", self.base)).json(body);
        send(&what, self.request(req)).await?;
        Ok(())
    }
}
