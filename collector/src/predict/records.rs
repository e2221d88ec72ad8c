//! Recommendation records: which part of which asset should be replaced, why,
//! and how soon; and their lifecycle `open → accepted → reserved → done`, or
//! `dismissed` with a reason.
//!
//! At most one active (open, accepted or reserved) recommendation exists per
//! part (`part_key`, a unique partial index), so raising is an idempotent
//! upsert: a later assessment refreshes the evidence and may make the
//! urgency sooner, never later. Moving it back is an engineer's call
//! (dismiss, with a reason).

use serde::Serialize;
use serde_json::Value;

use super::assess::Urgency;
use crate::store::StoreError;
use crate::store::recommendations::{Escalation, NewRecommendation, RecommendationFilter, Recommendations};
use crate::store::sql::Sql;

pub use crate::store::recommendations::TransitionError;

pub use crate::store::recommendations::{MIGRATION, MIGRATION_HARDWARE_PARTS, Part, Recommendation};

/// The stored urgencies, in the order /metrics lists them.
pub const URGENCIES: &[&str] = &["replace_now", "within_days", "watch"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PartType {
    Disk,
    Dimm,
    Fan,
    Psu,
    /// A RAID controller's cache backup unit (battery, CacheVault, capacitor).
    Bbu,
    /// A RAID controller.
    Controller,
}

impl PartType {
    pub const ALL: [PartType; 6] = [
        PartType::Disk,
        PartType::Dimm,
        PartType::Fan,
        PartType::Psu,
        PartType::Bbu,
        PartType::Controller,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            PartType::Disk => "disk",
            PartType::Dimm => "dimm",
            PartType::Fan => "fan",
            PartType::Psu => "psu",
            PartType::Bbu => "bbu",
            PartType::Controller => "controller",
        }
    }

    pub fn parse(s: &str) -> Option<PartType> {
        Some(match s {
            "disk" => PartType::Disk,
            "dimm" => PartType::Dimm,
            "fan" => PartType::Fan,
            "psu" => PartType::Psu,
            "bbu" => PartType::Bbu,
            "controller" => PartType::Controller,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecStatus {
    Open,
    Accepted,
    Reserved,
    Done,
    Dismissed,
}

impl RecStatus {
    pub const ALL: [RecStatus; 5] = [
        RecStatus::Open,
        RecStatus::Accepted,
        RecStatus::Reserved,
        RecStatus::Done,
        RecStatus::Dismissed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RecStatus::Open => "open",
            RecStatus::Accepted => "accepted",
            RecStatus::Reserved => "reserved",
            RecStatus::Done => "done",
            RecStatus::Dismissed => "dismissed",
        }
    }

    pub fn parse(s: &str) -> Option<RecStatus> {
        RecStatus::ALL.into_iter().find(|x| x.as_str() == s)
    }

    pub fn is_active(self) -> bool {
        matches!(self, RecStatus::Open | RecStatus::Accepted | RecStatus::Reserved)
    }
}

/// What an engineer (or the spare-parts module) does to a recommendation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecAction {
    Accept,
    /// A compatible spare was set aside (the spare-parts module).
    Reserve,
    Done,
    Dismiss {
        reason: String,
    },
}

impl RecAction {
    pub fn name(&self) -> &'static str {
        match self {
            RecAction::Accept => "accept",
            RecAction::Reserve => "reserve",
            RecAction::Done => "done",
            RecAction::Dismiss { .. } => "dismiss",
        }
    }

    /// As in "a recommendation that is open cannot be …".
    pub fn done_verb(&self) -> &'static str {
        match self {
            RecAction::Accept => "accepted",
            RecAction::Reserve => "reserved",
            RecAction::Done => "marked done",
            RecAction::Dismiss { .. } => "dismissed",
        }
    }
}

/// The lifecycle as a pure function: the status `action` moves `from` to.
/// `open → accepted → reserved → done`; `done` is also allowed from
/// `accepted` (a part taken from elsewhere); any active status may be
/// dismissed with a reason. `done` and `dismissed` are final.
pub fn transition(from: RecStatus, action: &RecAction) -> Result<RecStatus, TransitionError> {
    use RecStatus::*;
    let to = match (from, action) {
        (Open, RecAction::Accept) => Accepted,
        (Accepted, RecAction::Reserve) => Reserved,
        (Accepted | Reserved, RecAction::Done) => Done,
        (Open | Accepted | Reserved, RecAction::Dismiss { reason }) => {
            if reason.trim().is_empty() {
                return Err(TransitionError::ReasonRequired);
            }
            Dismissed
        }
        _ => {
            return Err(TransitionError::Invalid {
                action: action.done_verb(),
                from: from.as_str(),
            });
        }
    };
    Ok(to)
}

/// What an assessment asks to raise.
#[derive(Debug, Clone, PartialEq)]
pub struct Raise {
    pub agent_id: String,
    pub host: String,
    pub customer: String,
    pub part_type: PartType,
    pub part: Part,
    pub reason: String,
    pub evidence: Value,
    pub risk: String,
    pub urgency: Urgency,
    pub item_id: Option<i64>,
    pub at_ms: i64,
}

impl Raise {
    pub fn part_key(&self) -> String {
        let id = if self.part.serial.trim().is_empty() {
            &self.part.slot
        } else {
            &self.part.serial
        };
        format!("{}/{}/{}", self.host, self.part_type.as_str(), id)
    }

    fn due_at_ms(&self) -> Option<i64> {
        match self.urgency {
            Urgency::ReplaceNow => Some(self.at_ms),
            Urgency::WithinDays(d) => Some(self.at_ms + i64::from(d) * 86_400_000),
            Urgency::Watch | Urgency::None => None,
        }
    }
}

/// What [`raise`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Raised {
    Created(i64),
    /// Evidence refreshed; `escalated` when the urgency became sooner.
    Updated {
        id: i64,
        escalated: bool,
    },
    /// Nothing to raise (a watch or no urgency).
    Nothing,
}

fn urgency_rank(name: &str, due: Option<i64>) -> (u8, i64) {
    let r = match name {
        "replace_now" => 3,
        "within_days" => 2,
        "watch" => 1,
        _ => 0,
    };
    (r, due.map_or(i64::MIN, |d| -d))
}

/// Raises (or refreshes) the recommendation for a part: an idempotent upsert
/// on the active record of its `part_key`. The urgency only moves sooner.
pub fn raise(db: &dyn Sql, r: &Raise) -> Result<Raised, StoreError> {
    if !r.urgency.recommends() {
        return Ok(Raised::Nothing);
    }
    let key = r.part_key();
    let evidence = serde_json::to_string(&r.evidence).unwrap_or_else(|_| "{}".into());
    let due = r.due_at_ms();
    match db.active_recommendation(&key)? {
        None if silenced(db, &key, r)? => Ok(Raised::Nothing),
        None => {
            let id = db.insert_recommendation(&NewRecommendation {
                agent_id: &r.agent_id,
                host: &r.host,
                customer: &r.customer,
                part_type: r.part_type.as_str(),
                part: &r.part,
                part_key: &key,
                reason: &r.reason,
                evidence: &evidence,
                risk: &r.risk,
                urgency: r.urgency.name(),
                due_at_ms: due,
                item_id: r.item_id,
                at_ms: r.at_ms,
            })?;
            tracing::info!(id, part = %key, urgency = r.urgency.name(), "replacement recommended");
            Ok(Raised::Created(id))
        }
        Some(standing) => {
            let id = standing.id;
            let escalated = urgency_rank(r.urgency.name(), due) > urgency_rank(&standing.urgency, standing.due_at_ms);
            if escalated {
                db.escalate_recommendation(
                    id,
                    &Escalation {
                        urgency: r.urgency.name(),
                        due_at_ms: due,
                        risk: &r.risk,
                        reason: &r.reason,
                        evidence: &evidence,
                        item_id: r.item_id,
                        at_ms: r.at_ms,
                    },
                )?;
                tracing::info!(id, part = %key, urgency = r.urgency.name(), "replacement more urgent");
            } else {
                db.refresh_recommendation(id, &evidence, r.item_id, r.at_ms)?;
            }
            Ok(Raised::Updated { id, escalated })
        }
    }
}

/// Whether an engineer dismissed this part's last recommendation and the
/// evidence has not worsened since: the urgency is no sooner in kind and no
/// new reason appeared. A dismissal silences the same evidence; it does not
/// blind the collector to a drive that gets worse (DISK-HEALTH rule 7).
fn silenced(db: &dyn Sql, key: &str, r: &Raise) -> Result<bool, StoreError> {
    let Some(last) = db.last_recommendation(key)? else {
        return Ok(false);
    };
    let (status, urgency, reason) = (last.status, last.urgency, last.reason);
    if status != RecStatus::Dismissed.as_str() {
        return Ok(false);
    }
    let sooner = urgency_rank(r.urgency.name(), None).0 > urgency_rank(&urgency, None).0;
    let dismissed: Vec<&str> = reason.split("; ").collect();
    let new_reason = r.reason.split("; ").any(|x| !dismissed.contains(&x));
    Ok(!sooner && !new_reason)
}

/// Recommendation `id`, if it exists.
pub fn get(db: &dyn Sql, id: i64) -> Result<Option<Recommendation>, StoreError> {
    Ok(db.recommendation(id)?)
}

/// Which recommendations [`list`] returns; `Default` lists all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub status: Option<RecStatus>,
    pub host: Option<String>,
    pub customer: Option<String>,
    /// `replace_now`, `within_days` or `watch`.
    pub urgency: Option<String>,
}

/// Recommendations, soonest due first, then newest.
pub fn list(db: &dyn Sql, f: &Filter) -> Result<Vec<Recommendation>, StoreError> {
    Ok(db.list_recommendations(&RecommendationFilter {
        status: f.status.map(RecStatus::as_str),
        host: f.host.as_deref(),
        customer: f.customer.as_deref(),
        urgency: f.urgency.as_deref(),
    })?)
}

/// Applies `action` to recommendation `id` at `at_ms`; answers the record as
/// it now is.
pub fn act(db: &dyn Sql, id: i64, action: &RecAction, at_ms: i64) -> Result<Recommendation, StoreError> {
    let rec = get(db, id)?.ok_or(StoreError::NoSuchRecommendation(id))?;
    let from = RecStatus::parse(&rec.status).ok_or_else(|| StoreError::CorruptItem {
        id,
        reason: format!("unknown recommendation status {:?}", rec.status),
    })?;
    let to = transition(from, action)?;
    let reason = match action {
        RecAction::Dismiss { reason } => Some(reason.trim().to_string()),
        _ => None,
    };
    db.set_recommendation_status(id, to.as_str(), reason.as_deref(), at_ms)?;
    tracing::info!(id, from = from.as_str(), to = to.as_str(), "recommendation changed");
    get(db, id)?.ok_or(StoreError::NoSuchRecommendation(id))
}

/// Marks done every active recommendation for the part with `serial` on
/// `host`: the part was replaced (a service report said so, or its serial
/// left the inventory), whatever state the recommendation had reached.
/// Answers the ids it finished.
pub fn finish_replaced(db: &dyn Sql, host: &str, serial: &str, at_ms: i64) -> Result<Vec<i64>, StoreError> {
    let ids = db.active_recommendations_for_serial(host, serial)?;
    for id in &ids {
        db.set_recommendation_status(*id, RecStatus::Done.as_str(), None, at_ms)?;
        tracing::info!(id, host, serial, "recommendation done: the part was replaced");
    }
    Ok(ids)
}

/// Active recommendations by urgency (for /metrics).
pub fn open_counts(db: &dyn Sql) -> Result<Vec<(String, u64)>, StoreError> {
    Ok(db.active_recommendation_counts()?)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn the_lifecycle_moves_forward_or_is_dismissed_with_a_reason() {
        use RecStatus::*;
        assert_eq!(transition(Open, &RecAction::Accept), Ok(Accepted));
        assert_eq!(transition(Accepted, &RecAction::Reserve), Ok(Reserved));
        assert_eq!(transition(Reserved, &RecAction::Done), Ok(Done));
        assert_eq!(transition(Accepted, &RecAction::Done), Ok(Done));
        let dismiss = RecAction::Dismiss {
            reason: "drive is under warranty swap".into(),
        };
        for s in [Open, Accepted, Reserved] {
            assert_eq!(transition(s, &dismiss), Ok(Dismissed));
        }
        assert_eq!(
            transition(Open, &RecAction::Dismiss { reason: "  ".into() }),
            Err(TransitionError::ReasonRequired)
        );
        let err = transition(Open, &RecAction::Done).unwrap_err();
        assert_eq!(err.to_string(), "a recommendation that is open cannot be marked done");
        assert!(transition(Done, &RecAction::Accept).is_err());
        assert!(transition(Dismissed, &dismiss).is_err());
        assert!(transition(Accepted, &RecAction::Accept).is_err());
    }

    fn raise_at(serial: &str, urgency: Urgency, reason: &str, at_ms: i64) -> Raise {
        Raise {
            agent_id: "a1".into(),
            host: "db01".into(),
            customer: "acme".into(),
            part_type: PartType::Disk,
            part: Part {
                serial: serial.into(),
                slot: "/dev/sda".into(),
                ..Part::default()
            },
            reason: reason.into(),
            evidence: serde_json::json!({ "at": at_ms }),
            risk: "high".into(),
            urgency,
            item_id: None,
            at_ms,
        }
    }

    #[test]
    fn raising_refreshes_escalates_and_a_dismissal_silences_only_the_same_evidence() {
        let db = crate::store::testing::TestDb::new();
        let db: &dyn Sql = &*db;
        let watch = raise_at("S1", Urgency::Watch, "slow", 100);
        assert_eq!(raise(db, &watch).unwrap(), Raised::Nothing);
        let Raised::Created(id) = raise(db, &raise_at("S1", Urgency::WithinDays(30), "reallocated", 100)).unwrap()
        else {
            panic!("not created");
        };
        assert_eq!(
            raise(db, &raise_at("S1", Urgency::WithinDays(60), "reallocated", 200)).unwrap(),
            Raised::Updated { id, escalated: false }
        );
        let rec = get(db, id).unwrap().unwrap();
        assert_eq!((rec.due_at_ms, rec.updated_at_ms), (Some(100 + 30 * 86_400_000), 200));
        assert_eq!(
            raise(db, &raise_at("S1", Urgency::ReplaceNow, "reallocated", 300)).unwrap(),
            Raised::Updated { id, escalated: true }
        );
        assert_eq!(get(db, id).unwrap().unwrap().urgency, "replace_now");

        let dismiss = RecAction::Dismiss {
            reason: " warranty swap ".into(),
        };
        let rec = act(db, id, &dismiss, 400).unwrap();
        assert_eq!(
            (rec.status.as_str(), rec.dismissed_reason.as_deref()),
            ("dismissed", Some("warranty swap"))
        );
        assert!(matches!(
            act(db, id, &RecAction::Accept, 500),
            Err(StoreError::Recommendation(TransitionError::Invalid { .. }))
        ));
        assert_eq!(
            raise(db, &raise_at("S1", Urgency::ReplaceNow, "reallocated", 600)).unwrap(),
            Raised::Nothing
        );
        let Raised::Created(again) =
            raise(db, &raise_at("S1", Urgency::ReplaceNow, "reallocated; pending", 700)).unwrap()
        else {
            panic!("a new reason raises again");
        };
        assert!(again > id);
        assert!(matches!(
            act(db, again + 1, &RecAction::Accept, 800),
            Err(StoreError::NoSuchRecommendation(_))
        ));

        act(db, again, &RecAction::Accept, 800).unwrap();
        assert_eq!(finish_replaced(db, "db01", "S1", 900).unwrap(), vec![again]);
        assert_eq!(get(db, again).unwrap().unwrap().status, "done");
        assert_eq!(finish_replaced(db, "db01", "S1", 900).unwrap(), Vec::<i64>::new());
        assert_eq!(open_counts(db).unwrap(), Vec::<(String, u64)>::new());
        let listed = list(
            db,
            &Filter {
                status: Some(RecStatus::Dismissed),
                ..Filter::default()
            },
        )
        .unwrap();
        assert_eq!(listed.iter().map(|r| r.id).collect::<Vec<_>>(), vec![id]);
    }
}
