//! Jira sink: REST API v2 with basic auth (user and API token).
//!
//! The first delivery of a case creates an issue (`POST /rest/api/2/issue`,
//! 201 `{"id","key","self"}`; the key is the external id); later changes
//! become comments (`POST …/issue/{key}/comment`, 201), and the change that
//! ends the case also takes the issue through the configured resolve
//! transition (`POST …/issue/{key}/transitions`, 204).

use serde::Deserialize;
use serde_json::{Value, json};

use super::{CaseEvent, Delivered, JiraConfig, SinkError, send, text};

/// Jira's limit on an issue summary, in characters.
pub(crate) const SUMMARY_MAX: usize = 255;

pub(crate) struct Jira {
    base: String,
    user: String,
    token: String,
    project_key: String,
    issue_type: String,
    resolve_transition_id: String,
}

/// A Jira label holds no whitespace: runs of it become `_`.
pub(crate) fn label(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join("_")
}

/// `POST /rest/api/2/issue`: the case as it is, with the change that
/// brought it to this state.
pub(crate) fn create_body(project_key: &str, issue_type: &str, ev: &CaseEvent) -> Value {
    let mut labels = vec!["caretaker".to_string()];
    let customer = label(&ev.customer);
    if !customer.is_empty() {
        labels.push(customer);
    }
    json!({
        "fields": {
            "project": { "key": project_key },
            "summary": text::subject(ev, SUMMARY_MAX),
            "description": text::description(ev, true),
            "issuetype": { "name": issue_type },
            "labels": labels,
        }
    })
}

/// `OPS-12`: what may go into a request path as an issue key.
pub(crate) fn valid_key(key: &str) -> bool {
    !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

pub(crate) fn comment_body(ev: &CaseEvent) -> Value {
    json!({ "body": text::note(&ev.change) })
}

pub(crate) fn transition_body(transition_id: &str) -> Value {
    json!({ "transition": { "id": transition_id } })
}

#[derive(Deserialize)]
struct Created {
    key: String,
}

impl Jira {
    pub(crate) fn new(c: &JiraConfig, token: String) -> Self {
        Self {
            base: c.url.trim_end_matches('/').to_string(),
            user: c.user.clone(),
            token,
            project_key: c.project_key.clone(),
            issue_type: c.issue_type.clone(),
            resolve_transition_id: c.resolve_transition_id.clone(),
        }
    }

    fn post(&self, client: &reqwest::Client, path: &str, body: &Value) -> reqwest::RequestBuilder {
        client
            .post(format!("{}{path}", self.base))
            .basic_auth(&self.user, Some(&self.token))
            .json(body)
    }

    pub(crate) async fn deliver(
        &self,
        client: &reqwest::Client,
        ev: &CaseEvent,
        external_id: Option<&str>,
    ) -> Result<Delivered, SinkError> {
        let key = match external_id {
            // The opening change was delivered already: nothing to add.
            Some(key) if ev.change.opened() => {
                return Ok(Delivered {
                    external_id: Some(key.to_string()),
                });
            }
            Some(key) if valid_key(key) => key.to_string(),
            Some(key) => {
                return Err(SinkError::Permanent(format!("{key:?} is not a Jira issue key")));
            }
            None => {
                // The new issue carries the case as it is now and this
                // change's note: nothing more to post, unless it ended.
                let key = self.create(client, ev).await?;
                if ev.change.ends() && !ev.change.from_ended() {
                    self.transition(client, &key).await?;
                }
                return Ok(Delivered { external_id: Some(key) });
            }
        };
        let what = format!("POST Jira comment on {key}");
        send(
            &what,
            self.post(client, &format!("/rest/api/2/issue/{key}/comment"), &comment_body(ev)),
        )
        .await?;
        // resolved → closed: the issue went through the transition already.
        if ev.change.ends() && !ev.change.from_ended() {
            self.transition(client, &key).await?;
        }
        Ok(Delivered { external_id: Some(key) })
    }

    async fn create(&self, client: &reqwest::Client, ev: &CaseEvent) -> Result<String, SinkError> {
        let body = create_body(&self.project_key, &self.issue_type, ev);
        let resp = send("POST Jira issue", self.post(client, "/rest/api/2/issue", &body)).await?;
        // The issue exists now; an answer without its key cannot be retried
        // without filing it twice.
        let created: Created = resp
            .json()
            .await
            .map_err(|e| SinkError::Permanent(format!("POST Jira issue: unreadable answer: {e}")))?;
        Ok(created.key)
    }

    async fn transition(&self, client: &reqwest::Client, key: &str) -> Result<(), SinkError> {
        let what = format!("POST Jira transition {} on {key}", self.resolve_transition_id);
        let body = transition_body(&self.resolve_transition_id);
        send(
            &what,
            self.post(client, &format!("/rest/api/2/issue/{key}/transitions"), &body),
        )
        .await?;
        Ok(())
    }
}
