//! What the pages' forms post, read into the queue's actions. Problems name
//! the form field; the queue checks the rest (and names its fields too).

use crate::cases::store::Visibility;
use crate::cases::{CancelReason, HoldReason, Severity};
use crate::queue::{CaseAction, FaultReport, Satisfaction};
use crate::spares::{PartReplaced, ServiceReport};

/// A posted form: its fields in order (the first of a repeated name wins).
#[derive(Debug, Clone, Default)]
pub struct Fields(Vec<(String, String)>);

impl Fields {
    pub fn new(pairs: Vec<(String, String)>) -> Fields {
        Fields(pairs)
    }

    /// The field's value as posted; empty when missing.
    pub fn get(&self, name: &str) -> &str {
        self.0.iter().find(|(k, _)| k == name).map_or("", |(_, v)| v.as_str())
    }

    /// The trimmed value, `None` when missing or blank.
    pub fn opt(&self, name: &str) -> Option<String> {
        let v = self.get(name).trim();
        (!v.is_empty()).then(|| v.to_string())
    }

    fn text(&self, name: &str) -> String {
        self.get(name).trim().to_string()
    }

    /// A checkbox: checked when present with any value but "" / "off".
    pub fn checked(&self, name: &str) -> bool {
        self.0
            .iter()
            .any(|(k, v)| k == name && !v.is_empty() && v != "off" && v != "false")
    }
}

/// Why a cancel without its confirmation is refused.
pub const CONFIRM_CANCEL: &str = "confirm: tick \"Yes, cancel this case\" to cancel it; nothing was changed";

/// The case action a form posts (field `action` and its own fields).
pub fn case_action(f: &Fields) -> Result<CaseAction, String> {
    let action = f.text("action");
    Ok(match action.as_str() {
        "acknowledge" => CaseAction::Acknowledge {
            comment: f.opt("comment"),
        },
        "assign" => CaseAction::Assign {
            to: f.text("to"),
            comment: f.opt("comment"),
        },
        "escalate" => CaseAction::Escalate {
            to: f.opt("to"),
            comment: f.text("comment"),
        },
        "comment" => CaseAction::Comment {
            comment: f.text("comment"),
            visibility: match f.opt("visibility") {
                None => None,
                Some(v) => {
                    Some(Visibility::parse(&v).ok_or_else(|| format!("visibility: {v:?} is not internal or public"))?)
                }
            },
        },
        "hold" => {
            let r = f.text("reason");
            CaseAction::Hold {
                reason: HoldReason::parse(&r).ok_or_else(|| format!("reason: {r:?} is not a hold reason"))?,
                comment: f.opt("comment"),
            }
        }
        "resume" => CaseAction::Resume {
            comment: f.opt("comment"),
        },
        "cancel" => {
            // The page asks to confirm (a required checkbox): cancelling
            // takes the case off the queue, so a slipped click must not.
            if !f.checked("confirm") {
                return Err(CONFIRM_CANCEL.into());
            }
            let r = f.text("reason");
            CaseAction::Cancel {
                reason: CancelReason::parse(&r).ok_or_else(|| format!("reason: {r:?} is not a cancel reason"))?,
                comment: f.opt("comment"),
            }
        }
        "resolve" => CaseAction::Resolve {
            report: service_report(f)?,
        },
        "close" => CaseAction::Close {
            satisfaction: satisfaction(f)?,
        },
        "survey" => {
            let score = match f.opt("score") {
                None => return Err("score: required, from 1 (unsatisfied) to 5 (very satisfied)".into()),
                Some(s) => s
                    .parse::<u8>()
                    .map_err(|_| format!("score: {s:?} is not a number from 1 to 5"))?,
            };
            CaseAction::Survey {
                score,
                comment: f.text("comment"),
            }
        }
        "" => return Err("action: missing".into()),
        other => return Err(format!("action: {other:?} is not a case action")),
    })
}

/// The resolve form's service report; host and engineer are left for the
/// queue to fill (the case's asset, the person).
fn service_report(f: &Fields) -> Result<ServiceReport, String> {
    let minutes = match f.opt("minutes") {
        None => return Err("minutes: required (a whole number of minutes)".into()),
        Some(m) => m
            .parse::<u32>()
            .map_err(|_| format!("minutes: {m:?} is not a whole number of minutes"))?,
    };
    let part_fields = [
        "part_type",
        "slot",
        "old_model",
        "old_serial",
        "new_model",
        "new_serial",
    ];
    let parts = if part_fields.iter().any(|n| f.opt(n).is_some()) {
        vec![PartReplaced {
            part_type: f.text("part_type"),
            slot: f.text("slot"),
            old_model: f.text("old_model"),
            old_serial: f.text("old_serial"),
            new_model: f.text("new_model"),
            new_serial: f.text("new_serial"),
            location: None,
        }]
    } else {
        Vec::new()
    };
    Ok(ServiceReport {
        id: None,
        case_id: None,
        host: String::new(),
        mode: f.text("mode"),
        symptom: f.text("symptom"),
        work_done: f.text("work_done"),
        engineer: String::new(),
        minutes,
        parts,
        at_ms: None,
    })
}

fn satisfaction(f: &Fields) -> Result<Satisfaction, String> {
    let score = match f.opt("score") {
        None => None,
        Some(s) => Some(
            s.parse::<u8>()
                .map_err(|_| format!("score: {s:?} is not a number from 1 to 5"))?,
        ),
    };
    Ok(Satisfaction {
        score,
        comment: f.text("comment"),
        no_answer: f.checked("no_answer"),
    })
}

/// The fault form's report.
pub fn fault_report(f: &Fields) -> Result<FaultReport, String> {
    let severity = match f.opt("severity") {
        None => Severity::Major,
        Some(s) => Severity::parse(&s).ok_or_else(|| format!("severity: {s:?} is not a severity"))?,
    };
    Ok(FaultReport {
        asset: f.text("asset"),
        title: f.text("title"),
        description: f.get("description").trim().to_string(),
        severity,
        component: f.text("component"),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> Fields {
        Fields::new(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect())
    }

    #[test]
    fn numbers_and_choices_that_do_not_parse_are_named() {
        let bad = [
            (vec![("action", "resolve"), ("minutes", "ten")], "minutes"),
            (vec![("action", "resolve")], "minutes"),
            (vec![("action", "close"), ("score", "five")], "score"),
            (vec![("action", "hold"), ("reason", "lunch")], "reason"),
            (vec![("action", "cancel"), ("confirm", "yes"), ("reason", "")], "reason"),
            (vec![("action", "cancel"), ("reason", "duplicate")], "confirm"),
            (vec![("action", "comment"), ("visibility", "secret")], "visibility"),
            (vec![("action", "survey")], "score"),
            (vec![("action", "survey"), ("score", "great")], "score"),
            (vec![("action", "teleport")], "action"),
            (vec![], "action"),
        ];
        for (pairs, field) in bad {
            let e = case_action(&fields(&pairs)).unwrap_err();
            assert!(e.starts_with(&format!("{field}:")), "{pairs:?}: {e}");
        }
        let e = fault_report(&fields(&[("severity", "apocalyptic")])).unwrap_err();
        assert!(e.starts_with("severity:"), "{e}");
    }

    #[test]
    fn the_customers_forms_are_the_actions_the_queue_opens_to_customers() {
        for (name, extra) in [("comment", ("comment", "hi")), ("survey", ("score", "5"))] {
            assert!(CaseAction::OPEN_TO_CUSTOMERS.contains(&name));
            let a = case_action(&fields(&[("action", name), extra])).unwrap();
            assert!(a.open_to_customers(), "{name}");
        }
        let ack = case_action(&fields(&[("action", "acknowledge")])).unwrap();
        assert!(!ack.open_to_customers());
    }

    #[test]
    fn the_resolve_form_carries_one_optional_part() {
        let base = [
            ("action", "resolve"),
            ("mode", "on_site"),
            ("symptom", "disk failing"),
            ("work_done", "swapped"),
            ("minutes", " 45 "),
        ];
        let CaseAction::Resolve { report } = case_action(&fields(&base)).unwrap() else {
            panic!("not a resolve")
        };
        assert_eq!((report.minutes, report.parts.len()), (45, 0));
        let mut with_part = base.to_vec();
        with_part.extend([("part_type", "disk"), ("slot", "/dev/sda"), ("new_serial", "NEW1")]);
        let CaseAction::Resolve { report } = case_action(&fields(&with_part)).unwrap() else {
            panic!("not a resolve")
        };
        assert_eq!(report.parts.len(), 1);
        assert_eq!(
            (report.parts[0].slot.as_str(), report.parts[0].new_serial.as_str()),
            ("/dev/sda", "NEW1")
        );
    }

    #[test]
    fn close_takes_a_score_or_no_answer() {
        let a = case_action(&fields(&[("action", "close"), ("score", "4"), ("comment", "ok")])).unwrap();
        assert_eq!(
            a,
            CaseAction::Close {
                satisfaction: Satisfaction {
                    score: Some(4),
                    comment: "ok".into(),
                    no_answer: false
                }
            }
        );
        let a = case_action(&fields(&[("action", "close"), ("score", ""), ("no_answer", "on")])).unwrap();
        assert_eq!(
            a,
            CaseAction::Close {
                satisfaction: Satisfaction {
                    score: None,
                    comment: String::new(),
                    no_answer: true
                }
            }
        );
    }
}
