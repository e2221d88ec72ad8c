//! PagerDuty sink: Events API v2 (`POST /v2/enqueue`, answered 202).
//!
//! One alert per case identity (`dedup_key` = the identity key): the opening
//! change and later changes trigger it (PagerDuty folds triggers with the
//! same key into the open alert, with the new summary and severity), a
//! person taking the case (assigned, in progress) acknowledges it, the
//! change that ends the case resolves it.

use serde_json::{Value, json};

use super::{CaseEvent, Delivered, SinkError, send, text};

/// PagerDuty's limits on `payload.summary` and `dedup_key`, in characters.
pub(crate) const SUMMARY_MAX: usize = 1024;
pub(crate) const DEDUP_KEY_MAX: usize = 255;

pub(crate) struct PagerDuty {
    pub(crate) url: String,
    pub(crate) routing_key: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Trigger,
    Acknowledge,
    Resolve,
}

impl Action {
    pub(crate) fn of(ev: &CaseEvent) -> Self {
        let c = &ev.change;
        if c.ends() {
            Self::Resolve
        } else if !c.opened() && c.by_person() && matches!(c.to_status.as_str(), "assigned" | "in_progress") {
            Self::Acknowledge
        } else {
            Self::Trigger
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Trigger => "trigger",
            Self::Acknowledge => "acknowledge",
            Self::Resolve => "resolve",
        }
    }
}

/// Caretaker severity → PagerDuty severity; an unknown one pages as `error`.
pub(crate) fn severity(s: &str) -> &'static str {
    match s {
        "critical" => "critical",
        "major" => "error",
        "warning" => "warning",
        "info" => "info",
        _ => "error",
    }
}

/// The dedup key: the one stored from an earlier delivery, else the
/// identity key (cut to PagerDuty's 255 characters).
pub(crate) fn dedup_key(ev: &CaseEvent, external_id: Option<&str>) -> String {
    match external_id {
        Some(k) => k.to_string(),
        None => ev.identity_key.chars().take(DEDUP_KEY_MAX).collect(),
    }
}

pub(crate) fn summary(ev: &CaseEvent) -> String {
    let s = if ev.title.trim().is_empty() {
        text::subject(ev, usize::MAX)
    } else {
        format!("{} ({}/{})", ev.title, ev.customer, ev.asset)
    };
    text::clip(&s, SUMMARY_MAX)
}

/// The event to enqueue. `payload` and `links` go with triggers only.
pub(crate) fn event(routing_key: &str, ev: &CaseEvent, external_id: Option<&str>) -> Value {
    let action = Action::of(ev);
    let mut body = json!({
        "routing_key": routing_key,
        "event_action": action.as_str(),
        "dedup_key": dedup_key(ev, external_id),
    });
    if action == Action::Trigger {
        body["payload"] = json!({
            "summary": summary(ev),
            "source": ev.asset,
            "severity": severity(&ev.severity),
            "timestamp": text::time(ev.change.at_ms),
            "component": ev.component,
            "group": ev.customer,
            "class": ev.check,
            "custom_details": {
                "case_id": ev.case_id,
                "identity_key": ev.identity_key,
                "status": ev.status,
                "level": ev.level,
                "assignee": ev.assignee,
                "out_of_scope": ev.out_of_scope,
                "response_due": ev.response_due_ms.map(text::time),
                "resolution_due": ev.resolution_due_ms.map(text::time),
                "change": text::note(&ev.change),
            },
        });
        if let Some(url) = &ev.url {
            body["links"] = json!([{ "href": url, "text": "Caretaker case" }]);
        }
    }
    body
}

impl PagerDuty {
    pub(crate) async fn deliver(
        &self,
        client: &reqwest::Client,
        ev: &CaseEvent,
        external_id: Option<&str>,
    ) -> Result<Delivered, SinkError> {
        let body = event(&self.routing_key, ev, external_id);
        send("POST PagerDuty event", client.post(&self.url).json(&body)).await?;
        Ok(Delivered {
            external_id: Some(dedup_key(ev, external_id)),
        })
    }
}
