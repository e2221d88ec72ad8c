//! Outbound ticket sinks: each case change is delivered to the configured
//! webhooks, Redmine, PagerDuty and Jira.
//!
//! This module builds the payloads (pure functions, one per sink) and sends
//! them over HTTP. Retrying, ordering and storing what a sink returns belong
//! to the delivery loop: [`Sink::deliver`] makes one attempt and says whether
//! a failure is worth retrying ([`SinkError::Retry`]) or not
//! ([`SinkError::Permanent`]).

mod jira;
mod pagerduty;
mod redmine;
mod text;
mod webhook;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

pub use webhook::{DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, sign, verify_signature};

/// One case change to deliver: the case as it is after the change, and the change itself.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CaseEvent {
    /// Unique per change; the idempotency key.
    pub outbox_id: i64,
    pub case_id: i64,
    /// "customer/asset/check/component"
    pub identity_key: String,
    pub customer: String,
    pub asset: String,
    pub check: String,
    pub component: String,
    /// info|warning|major|critical
    pub severity: String,
    /// new|assigned|in_progress|on_hold:awaiting_parts|recovered|resolved|closed|cancelled:duplicate ...
    pub status: String,
    pub title: String,
    pub assignee: Option<String>,
    /// L1|L2|vendor
    pub level: String,
    pub out_of_scope: bool,
    pub response_due_ms: Option<i64>,
    pub resolution_due_ms: Option<i64>,
    pub change: Change,
    /// Link to the case page.
    pub url: Option<String>,
}

/// One change of a case's status (or a note that leaves it where it is).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Change {
    pub at_ms: i64,
    /// "rule:<name>" | "person:<name>"
    pub actor: String,
    /// None: the change that opened the case.
    pub from_status: Option<String>,
    pub to_status: String,
    pub comment: Option<String>,
    /// `internal` (staff only: every change but a comment made public) or
    /// `public` (the case's customer reads it too). Sinks that can keep a
    /// note from the customer do: Redmine's private notes.
    pub visibility: String,
}

impl Change {
    /// Whether the case's customer may read the change.
    pub fn public(&self) -> bool {
        self.visibility == "public"
    }

    /// The change that opened the case.
    pub fn opened(&self) -> bool {
        self.from_status.is_none()
    }

    /// The change ends the case (resolved, closed or cancelled).
    pub fn ends(&self) -> bool {
        status_ends(&self.to_status)
    }

    /// The case had already ended before this change (e.g. resolved → closed).
    pub fn from_ended(&self) -> bool {
        self.from_status.as_deref().is_some_and(status_ends)
    }

    /// Status unchanged: a comment, escalation or assignment note.
    pub fn is_note(&self) -> bool {
        self.from_status.as_deref() == Some(self.to_status.as_str())
    }

    /// The change's status moved (not a note, not the opening).
    pub fn moved(&self) -> bool {
        !self.opened() && !self.is_note()
    }

    /// Made by a person (not a rule).
    pub fn by_person(&self) -> bool {
        self.actor.starts_with("person:")
    }
}

/// `resolved`, `closed` and every `cancelled…` status end a case.
pub fn status_ends(status: &str) -> bool {
    status == "resolved" || status == "closed" || status.starts_with("cancelled")
}

/// What a change is to a receiver: the `X-Caretaker-Event` header's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Opened,
    Changed,
    Ended,
}

impl EventKind {
    pub fn of(change: &Change) -> Self {
        if change.opened() {
            Self::Opened
        } else if change.ends() {
            Self::Ended
        } else {
            Self::Changed
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Opened => "case.opened",
            Self::Changed => "case.changed",
            Self::Ended => "case.ended",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkKind {
    Webhook,
    Redmine,
    PagerDuty,
    Jira,
}

/// A successful delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivered {
    /// The id to store on the case for this sink and pass back as
    /// `external_id` with the case's next change: the Redmine issue id, the
    /// Jira issue key, the PagerDuty dedup key. None for webhooks.
    pub external_id: Option<String>,
}

/// A failed delivery. Both kinds are logged by [`Sink::deliver`]; the
/// delivery loop decides what to do with them.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum SinkError {
    /// Worth another attempt later: network error, timeout, 5xx, 429.
    #[error("temporary failure: {0}")]
    Retry(String),
    /// Another attempt would fail the same way: other 4xx, refused
    /// credentials, a request the receiver does not accept.
    #[error("permanent failure: {0}")]
    Permanent(String),
}

/// Timeout of every request a sink makes.
pub const TIMEOUT: Duration = Duration::from_secs(10);
const USER_AGENT: &str = concat!("caretaker-collector/", env!("CARGO_PKG_VERSION"));

// --- configuration -----------------------------------------------------------

/// `[sinks]`: where case changes go. Every part is optional; the default is
/// no sink at all.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinksConfig {
    /// `[[sinks.webhook]]`: signed JSON POSTs, one entry per receiver.
    #[serde(default)]
    pub webhook: Vec<WebhookConfig>,
    #[serde(default)]
    pub redmine: Option<RedmineConfig>,
    #[serde(default)]
    pub pagerduty: Option<PagerDutyConfig>,
    #[serde(default)]
    pub jira: Option<JiraConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// The sink's name (the delivery loop keys deliveries on it); unique,
    /// and not `redmine`, `pagerduty` or `jira`.
    pub name: String,
    pub url: String,
    /// File holding the HMAC-SHA256 key that signs each body (surrounding
    /// whitespace is ignored).
    pub secret_file: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedmineConfig {
    /// Base URL, e.g. `https://redmine.example` (the REST API must be on).
    pub url: String,
    /// File holding the API key of the user the issues are filed as.
    pub api_key_file: PathBuf,
    /// Project identifier.
    pub project: String,
    #[serde(default = "default_tracker_id")]
    pub tracker_id: u32,
    /// Status ids; the defaults are those of Redmine's default data. A
    /// resolved case closes its issue (5, Closed); set `resolved_status_id =
    /// 3` to keep it at Resolved until the case is closed. A reopened case
    /// takes its issue back to `new_status_id`.
    #[serde(default = "default_new_status_id")]
    pub new_status_id: u32,
    #[serde(default = "default_in_progress_status_id")]
    pub in_progress_status_id: u32,
    #[serde(default = "default_resolved_status_id")]
    pub resolved_status_id: u32,
    #[serde(default = "default_closed_status_id")]
    pub closed_status_id: u32,
}

fn default_tracker_id() -> u32 {
    1
}
fn default_in_progress_status_id() -> u32 {
    2
}
fn default_new_status_id() -> u32 {
    1
}
fn default_resolved_status_id() -> u32 {
    5
}
fn default_closed_status_id() -> u32 {
    5
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PagerDutyConfig {
    /// Events API v2 endpoint.
    #[serde(default = "default_pagerduty_url")]
    pub url: String,
    /// File holding the integration's routing key.
    pub routing_key_file: PathBuf,
}

fn default_pagerduty_url() -> String {
    "https://events.pagerduty.com/v2/enqueue".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JiraConfig {
    /// Base URL, e.g. `https://jira.example`.
    pub url: String,
    /// Basic-auth user (for Jira Cloud: the account's e-mail).
    pub user: String,
    /// File holding the API token (or password) of `user`.
    pub token_file: PathBuf,
    pub project_key: String,
    #[serde(default = "default_issue_type")]
    pub issue_type: String,
    /// The workflow transition that resolves an issue (see
    /// `GET /rest/api/2/issue/{key}/transitions`).
    pub resolve_transition_id: String,
}

fn default_issue_type() -> String {
    "Bug".into()
}

/// Names the built-in sinks take; webhooks may not use them.
const RESERVED_NAMES: [&str; 3] = ["redmine", "pagerduty", "jira"];

impl SinksConfig {
    /// Checks that need no file or network: URLs, names, required fields.
    pub fn problems(&self, p: &mut Vec<String>) {
        let mut seen = std::collections::BTreeSet::new();
        for (i, w) in self.webhook.iter().enumerate() {
            let at = format!("sinks.webhook[{i}]");
            if w.name.trim().is_empty() {
                p.push(format!("{at}.name: must not be empty"));
            } else if RESERVED_NAMES.contains(&w.name.as_str()) {
                p.push(format!("{at}.name: {:?} is the name of a built-in sink", w.name));
            } else if !seen.insert(w.name.as_str()) {
                p.push(format!("{at}.name: {:?} is used twice", w.name));
            }
            url_problem(&format!("{at}.url"), &w.url, p);
        }
        if let Some(r) = &self.redmine {
            url_problem("sinks.redmine.url", &r.url, p);
            if r.project.trim().is_empty() {
                p.push("sinks.redmine.project: must not be empty".into());
            }
        }
        if let Some(d) = &self.pagerduty {
            url_problem("sinks.pagerduty.url", &d.url, p);
        }
        if let Some(j) = &self.jira {
            url_problem("sinks.jira.url", &j.url, p);
            for (field, value) in [
                ("user", &j.user),
                ("project_key", &j.project_key),
                ("issue_type", &j.issue_type),
                ("resolve_transition_id", &j.resolve_transition_id),
            ] {
                if value.trim().is_empty() {
                    p.push(format!("sinks.jira.{field}: must not be empty"));
                }
            }
        }
    }
}

fn url_problem(field: &str, url: &str, p: &mut Vec<String>) {
    match reqwest::Url::parse(url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
        Ok(_) => p.push(format!("{field}: {url:?} is not an http(s) URL")),
        Err(e) => p.push(format!("{field}: {url:?}: {e}")),
    }
}

// --- sinks -------------------------------------------------------------------

/// One configured destination, ready to deliver.
pub struct Sink {
    /// The webhook's configured name, or `redmine`, `pagerduty`, `jira`.
    pub name: String,
    client: reqwest::Client,
    target: Target,
}

enum Target {
    Webhook(webhook::Webhook),
    Redmine(redmine::Redmine),
    PagerDuty(pagerduty::PagerDuty),
    Jira(jira::Jira),
}

impl std::fmt::Debug for Sink {
    // Hand-written: the targets hold secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sink")
            .field("name", &self.name)
            .field("kind", &self.kind())
            .finish_non_exhaustive()
    }
}

impl Sink {
    pub fn kind(&self) -> SinkKind {
        match self.target {
            Target::Webhook(_) => SinkKind::Webhook,
            Target::Redmine(_) => SinkKind::Redmine,
            Target::PagerDuty(_) => SinkKind::PagerDuty,
            Target::Jira(_) => SinkKind::Jira,
        }
    }

    /// Delivers one change. `external_id` is what an earlier delivery of the
    /// same case to this sink returned (None for the case's first delivery).
    /// Failures are logged here, with the sink, case and delivery.
    pub async fn deliver(&self, ev: &CaseEvent, external_id: Option<&str>) -> Result<Delivered, SinkError> {
        let result = match &self.target {
            Target::Webhook(w) => w.deliver(&self.client, ev).await,
            Target::Redmine(r) => r.deliver(&self.client, ev, external_id).await,
            Target::PagerDuty(d) => d.deliver(&self.client, ev, external_id).await,
            Target::Jira(j) => j.deliver(&self.client, ev, external_id).await,
        };
        match &result {
            Ok(d) => tracing::debug!(
                sink = %self.name, case_id = ev.case_id, outbox_id = ev.outbox_id,
                external_id = ?d.external_id, "case change delivered"
            ),
            Err(e) => tracing::warn!(
                sink = %self.name, case_id = ev.case_id, outbox_id = ev.outbox_id,
                error = %e, "case change not delivered"
            ),
        }
        result
    }
}

/// Builds every configured sink: reads the secret files and makes one HTTP
/// client per sink (10 s timeout, no redirects followed).
pub fn build(config: &SinksConfig) -> Result<Vec<Sink>, String> {
    build_with_timeout(config, TIMEOUT)
}

pub(crate) fn build_with_timeout(config: &SinksConfig, timeout: Duration) -> Result<Vec<Sink>, String> {
    let mut problems = Vec::new();
    config.problems(&mut problems);
    if !problems.is_empty() {
        return Err(problems.join("; "));
    }
    let mut sinks = Vec::new();
    for w in &config.webhook {
        let target = Target::Webhook(webhook::Webhook {
            url: w.url.clone(),
            secret: read_secret(&w.secret_file)?.into_bytes(),
        });
        sinks.push(Sink {
            name: w.name.clone(),
            client: client(&w.name, timeout)?,
            target,
        });
    }
    if let Some(r) = &config.redmine {
        let target = Target::Redmine(redmine::Redmine::new(r, read_secret(&r.api_key_file)?));
        sinks.push(Sink {
            name: "redmine".into(),
            client: client("redmine", timeout)?,
            target,
        });
    }
    if let Some(d) = &config.pagerduty {
        let target = Target::PagerDuty(pagerduty::PagerDuty {
            url: d.url.clone(),
            routing_key: read_secret(&d.routing_key_file)?,
        });
        sinks.push(Sink {
            name: "pagerduty".into(),
            client: client("pagerduty", timeout)?,
            target,
        });
    }
    if let Some(j) = &config.jira {
        let target = Target::Jira(jira::Jira::new(j, read_secret(&j.token_file)?));
        sinks.push(Sink {
            name: "jira".into(),
            client: client("jira", timeout)?,
            target,
        });
    }
    Ok(sinks)
}

fn client(name: &str, timeout: Duration) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .use_rustls_tls()
        .timeout(timeout)
        .connect_timeout(timeout.min(Duration::from_secs(5)))
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(USER_AGENT)
        .build()
        .map_err(|e| format!("sink {name}: HTTP client: {e}"))
}

/// A secret file's content without surrounding whitespace; empty is an error.
fn read_secret(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let secret = text.trim();
    if secret.is_empty() {
        return Err(format!("{}: empty", path.display()));
    }
    Ok(secret.to_string())
}

// --- HTTP outcomes shared by the sinks ----------------------------------------

/// A request that got no (complete) answer: always worth retrying.
fn transport_error(what: &str, e: &reqwest::Error) -> SinkError {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "failed"
    };
    SinkError::Retry(format!("{what}: {kind}: {e}"))
}

/// Ok for 2xx; otherwise the error the status calls for, with the start of
/// the answer's body.
async fn check_status(what: &str, resp: reqwest::Response) -> Result<reqwest::Response, SinkError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let body = resp.text().await.unwrap_or_default();
    let msg = format!("{what}: HTTP {status}: {}", text::clip(body.trim(), 300));
    Err(status_error(status, msg))
}

fn status_error(status: reqwest::StatusCode, msg: String) -> SinkError {
    if status.is_server_error()
        || status == reqwest::StatusCode::TOO_MANY_REQUESTS
        || status == reqwest::StatusCode::REQUEST_TIMEOUT
    {
        SinkError::Retry(msg)
    } else {
        SinkError::Permanent(msg)
    }
}

/// Sends a request and checks its status.
async fn send(what: &str, req: reqwest::RequestBuilder) -> Result<reqwest::Response, SinkError> {
    let resp = req.send().await.map_err(|e| transport_error(what, &e))?;
    check_status(what, resp).await
}

#[cfg(test)]
mod tests;
