//! What a customer's user sees of a case, the one place that decides it for
//! the case page and every API answer alike.
//!
//! The customer follows its case in plain words: that it was opened, that
//! an engineer acknowledged it, put it on hold awaiting something, resumed,
//! resolved or closed it, and the comments someone made public, each with
//! who wrote it. It never sees internal comments, the rules' rows (contract
//! matching, assignment, SLA breaches, escalation, flapping), assignment and
//! escalation rows, the comments written on status changes, nor the
//! contract's internals (its name, the level, the assignee, escalations).

use serde::Serialize;

use crate::cases::store::{LogEntry, Visibility};
use crate::cases::{HoldReason, Status};

/// One line of a customer's timeline.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PublicEntry {
    pub at_ms: i64,
    /// Who: a person's name, or "Caretaker monitoring" for a case a rule
    /// opened.
    pub who: String,
    /// What happened, in plain words ("opened", "acknowledged", "comment",
    /// "on hold, awaiting parts", "resolved"...).
    pub what: String,
    /// A public comment's text; never the text of a status change.
    pub comment: Option<String>,
}

/// The name the customer is shown for a log row's actor.
fn who(actor: &str) -> String {
    match actor.split_once(':') {
        Some(("person" | "customer", name)) => name.to_string(),
        _ => "Caretaker monitoring".to_string(),
    }
}

fn awaiting(r: HoldReason) -> &'static str {
    match r {
        HoldReason::AwaitingCustomer => "on hold, awaiting you",
        HoldReason::AwaitingParts => "on hold, awaiting parts",
        HoldReason::AwaitingVendor => "on hold, awaiting the vendor",
        HoldReason::AwaitingWindow => "on hold, awaiting a maintenance window",
    }
}

/// A status in the customer's words: where its case stands.
pub fn status_words(s: Status) -> String {
    match s {
        Status::New | Status::Assigned => "open".into(),
        // Recovered: the signal cleared, an engineer has yet to confirm.
        Status::InProgress | Status::Recovered => "in progress".into(),
        Status::OnHold(r) => awaiting(r).into(),
        Status::Resolved => "resolved".into(),
        Status::Closed => "closed".into(),
        Status::Cancelled(r) => format!("cancelled ({})", r.as_str().replace('_', " ")),
        Status::Open => "open".into(),
        Status::Planned => "planned".into(),
        Status::AcceptedRisk => "risk accepted".into(),
        Status::Fixed => "fixed".into(),
        Status::Verified => "verified".into(),
    }
}

/// What a status change is to the customer; `None`: not shown (a case
/// received, assigned or recovered is the engineers' business).
fn change_words(from: Status, to: Status) -> Option<String> {
    Some(match to {
        Status::New | Status::Assigned | Status::Recovered => return None,
        Status::InProgress if matches!(from, Status::OnHold(_)) => "work resumed".into(),
        Status::InProgress => "acknowledged".into(),
        other => status_words(other),
    })
}

/// The customer's timeline of an item from its whole log, oldest first.
pub fn timeline(log: &[LogEntry]) -> Vec<PublicEntry> {
    log.iter()
        .filter_map(|e| {
            let (what, comment) = match e.from_status {
                None => ("opened".to_string(), None),
                // A rule's row is never shown, but for the opening.
                Some(_) if e.actor.starts_with("rule:") => return None,
                Some(from) if from == e.to_status => {
                    // A note: only a comment made public is shown.
                    if e.visibility != Visibility::Public {
                        return None;
                    }
                    ("comment".to_string(), e.comment.clone())
                }
                Some(from) => (change_words(from, e.to_status)?, None),
            };
            Some(PublicEntry {
                at_ms: e.at_ms,
                who: who(&e.actor),
                what,
                comment,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cases::CancelReason;

    fn row(actor: &str, from: Option<Status>, to: Status, comment: &str, visibility: Visibility) -> LogEntry {
        LogEntry {
            id: 0,
            item_id: 1,
            at_ms: 0,
            actor: actor.into(),
            from_status: from,
            to_status: to,
            comment: Some(comment.into()),
            visibility,
        }
    }

    #[test]
    fn a_customer_sees_plain_changes_and_public_comments_only() {
        use Status::*;
        use Visibility::*;
        let hold = OnHold(HoldReason::AwaitingParts);
        let log = [
            row("rule:disk_failing", None, New, "opened by rule", Internal),
            row(
                "rule:contract",
                Some(New),
                New,
                "contract acme-24; response due",
                Internal,
            ),
            row(
                "rule:assignment",
                Some(New),
                Assigned,
                "assigned to ana (on call)",
                Internal,
            ),
            row("person:ana", Some(Assigned), InProgress, "took it, hard one", Internal),
            row(
                "person:ana",
                Some(InProgress),
                InProgress,
                "escalated to L2 (tough)",
                Internal,
            ),
            row(
                "person:ana",
                Some(InProgress),
                InProgress,
                "vendor is slow, internal",
                Internal,
            ),
            row(
                "person:ana",
                Some(InProgress),
                InProgress,
                "a disk is on its way",
                Public,
            ),
            row("customer:carol", Some(InProgress), InProgress, "thanks", Public),
            row(
                "person:ana",
                Some(InProgress),
                hold,
                "parts ordered from X at cost Y",
                Internal,
            ),
            row("rule:sla", Some(hold), hold, "resolution SLA breached", Internal),
            row("person:ana", Some(hold), InProgress, "", Internal),
            row("rule:disk_failing", Some(InProgress), Recovered, "", Internal),
            row(
                "person:ana",
                Some(Recovered),
                Resolved,
                "service report 3: swapped",
                Internal,
            ),
            row("customer:carol", Some(Resolved), Closed, "satisfaction 5/5", Internal),
        ];
        let seen: Vec<(String, String, Option<String>)> =
            timeline(&log).into_iter().map(|e| (e.who, e.what, e.comment)).collect();
        let want = [
            ("Caretaker monitoring", "opened", None),
            ("ana", "acknowledged", None),
            ("ana", "comment", Some("a disk is on its way")),
            ("carol", "comment", Some("thanks")),
            ("ana", "on hold, awaiting parts", None),
            ("ana", "work resumed", None),
            ("ana", "resolved", None),
            ("carol", "closed", None),
        ]
        .map(|(w, what, c)| (w.to_string(), what.to_string(), c.map(str::to_string)));
        assert_eq!(seen, want);
        assert_eq!(
            status_words(Cancelled(CancelReason::FalsePositive)),
            "cancelled (false positive)"
        );
    }
}
