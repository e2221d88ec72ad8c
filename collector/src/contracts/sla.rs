//! SLA time from a case's status log, deadlines, due escalation steps and the
//! on-call member of a rotation. Pure functions over ms since the epoch: the
//! log is the record, nothing here keeps a running counter.

use crate::cases::{HoldReason, Severity, Status};

use super::{Calendar, Clock, Contract, Rotation, Step};

/// Service time used by a case: the service time of every stretch of its
/// status log up to `now_ms`, except stretches on hold for a reason in
/// `pausing` and stretches after the case was resolved, closed or cancelled
/// (a reopen starts the clock again). `log` is `(at_ms, status)` in time
/// order, its first entry the opening.
pub fn elapsed(calendar: &Calendar, log: &[(i64, Status)], pausing: &[HoldReason], now_ms: i64) -> i64 {
    let mut total = 0;
    for (i, (at, status)) in log.iter().enumerate() {
        let end = log.get(i + 1).map_or(now_ms, |(next, _)| *next).min(now_ms);
        let paused = match status {
            Status::OnHold(r) => pausing.contains(r),
            s => !s.is_active(),
        };
        if !paused {
            total += calendar.service_time_between(*at, end);
        }
    }
    total
}

/// When a case must be answered and resolved, fixed when the contract is
/// matched; `None` where the contract sets no target for the severity (or
/// its calendar never reaches the target).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    pub response_due_ms: Option<i64>,
    pub resolution_due_ms: Option<i64>,
}

pub fn deadlines(contract: &Contract, severity: Severity, opened_at_ms: i64) -> Deadlines {
    let due = |target: Option<i64>| target.and_then(|d| contract.calendar.add_service_time(opened_at_ms, d));
    Deadlines {
        response_due_ms: due(contract.response.get(severity)),
        resolution_due_ms: due(contract.resolution.get(severity)),
    }
}

/// The escalation steps whose time has come and that have not fired yet, with
/// their index in `contract.escalation`. A step is due once the SLA time used
/// (`elapsed_ms`, from [`elapsed`], so holds that pause the clock also delay
/// escalation) reaches its share of the target; steps against a target the
/// severity lacks never fire.
pub fn escalations_due<'a>(
    contract: &'a Contract,
    severity: Severity,
    elapsed_ms: i64,
    already_fired: &[usize],
) -> Vec<(usize, &'a Step)> {
    contract
        .escalation
        .iter()
        .enumerate()
        .filter(|(i, _)| !already_fired.contains(i))
        .filter(|(_, step)| {
            let target = match step.of {
                Clock::Response => contract.response.get(severity),
                Clock::Resolution => contract.resolution.get(severity),
            };
            target.is_some_and(|t| {
                let threshold = i128::from(t) * i128::from(step.percent) / 100;
                i128::from(elapsed_ms) >= threshold
            })
        })
        .collect()
}

/// Who is on call at `site` at `t_ms`. A rotation for the case's `skill` is
/// preferred over the site's general one; the first matching rotation in the
/// file wins. Member `floor((t - start) / shift) mod len` is on call; the
/// schedule also runs backwards before `start`.
pub fn on_call<'a>(rotations: &'a [Rotation], site: &str, skill: Option<&str>, t_ms: i64) -> Option<&'a str> {
    let at_site = || rotations.iter().filter(|r| r.site == site);
    let rotation = skill
        .and_then(|k| at_site().find(|r| r.skill.as_deref() == Some(k)))
        .or_else(|| at_site().find(|r| r.skill.is_none()))?;
    if rotation.members.is_empty() || rotation.shift_ms <= 0 {
        return None;
    }
    let shift = i128::from(t_ms - rotation.start_ms).div_euclid(i128::from(rotation.shift_ms));
    let index = shift.rem_euclid(rotation.members.len() as i128);
    rotation.members.get(usize::try_from(index).ok()?).map(String::as_str)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::collections::BTreeMap;
    use std::path::Path;

    use super::*;
    use crate::contracts::{Action, parse_file};

    const H: i64 = 3_600_000;
    const M: i64 = 60_000;

    const FILE: &str = r#"
[[customer]]
name = "acme"
sites = ["hq"]

[[contract]]
name = "acme-office"
customer = "acme"
covers = { labels = { site = "hq" } }
hours = "5x8"
time_zone = "Europe/Berlin"
response = { critical = "1h", major = "4h" }
resolution = { critical = "8h", major = "2d" }
pausing_holds = ["awaiting_customer"]
escalation = [
  { at = "50%", of = "resolution", action = "notify", to = "team-lead" },
  { at = "100%", of = "resolution", action = "escalate", to = "L2" },
  { at = "100%", of = "response", action = "notify", to = "duty-manager" },
]

[[engineer]]
name = "ana"
skills = ["storage"]
sites = ["hq"]
level = "L1"

[[engineer]]
name = "ben"
sites = ["hq"]
level = "L1"

[[engineer]]
name = "cy"
skills = ["storage"]
sites = ["hq"]
level = "L2"

[[rotation]]
site = "hq"
members = ["ana", "ben"]
shift = "1w"
start = "2026-01-05T08:00:00+01:00"

[[rotation]]
site = "hq"
skill = "storage"
members = ["ana", "cy"]
shift = "1d"
start = "2026-01-05T08:00:00+01:00"
"#;

    fn contracts() -> crate::contracts::Contracts {
        parse_file(FILE, Path::new("c.toml")).unwrap()
    }

    fn berlin(s: &str) -> i64 {
        let dt: jiff::civil::DateTime = s.parse().unwrap();
        dt.to_zoned(jiff::tz::TimeZone::get("Europe/Berlin").unwrap())
            .unwrap()
            .timestamp()
            .as_millisecond()
    }

    #[test]
    fn deadlines_are_in_service_time() {
        let c = contracts();
        let contract = &c.contracts[0];
        let d = deadlines(contract, Severity::Major, berlin("2026-11-27T18:00"));
        assert_eq!(d.response_due_ms, Some(berlin("2026-11-30T12:00")));
        // 2d of service time is 48 service hours: five and a third 9h days.
        assert_eq!(d.resolution_due_ms, Some(berlin("2026-12-07T11:00")));
        let none = deadlines(contract, Severity::Info, berlin("2026-11-27T18:00"));
        assert_eq!(
            none,
            Deadlines {
                response_due_ms: None,
                resolution_due_ms: None
            }
        );
    }

    #[test]
    fn a_pausing_hold_stops_the_clock_and_another_does_not() {
        let c = contracts();
        let contract = &c.contracts[0];
        let t0 = berlin("2026-11-30T09:00");
        let log = |reason| {
            vec![
                (t0, Status::New),
                (t0 + H, Status::InProgress),
                (t0 + 2 * H, Status::OnHold(reason)),
                (t0 + 5 * H, Status::InProgress),
            ]
        };
        let now = t0 + 6 * H;
        let paused = elapsed(
            &contract.calendar,
            &log(HoldReason::AwaitingCustomer),
            &contract.pausing,
            now,
        );
        assert_eq!(paused, 3 * H);
        let running = elapsed(
            &contract.calendar,
            &log(HoldReason::AwaitingParts),
            &contract.pausing,
            now,
        );
        assert_eq!(running, 6 * H);
    }

    #[test]
    fn elapsed_counts_service_time_only_and_stops_when_resolved() {
        let c = contracts();
        let cal = &c.contracts[0].calendar;
        let t0 = berlin("2026-11-27T16:00");
        let log = [(t0, Status::New)];
        // Friday 16:00 to Monday 10:00: 1h + 2h.
        assert_eq!(elapsed(cal, &log, &[], berlin("2026-11-30T10:00")), 3 * H);
        let log = [(t0, Status::New), (t0 + 30 * M, Status::Resolved)];
        assert_eq!(elapsed(cal, &log, &[], berlin("2026-11-30T10:00")), 30 * M);
        // Nothing counts before the log starts or after now.
        assert_eq!(elapsed(cal, &log, &[], t0 - H), 0);
    }

    #[test]
    fn escalation_at_half_and_full_resolution_time() {
        let c = contracts();
        let contract = &c.contracts[0];
        let due = |elapsed, fired: &[usize]| -> Vec<usize> {
            escalations_due(contract, Severity::Critical, elapsed, fired)
                .into_iter()
                .map(|(i, _)| i)
                .collect()
        };
        // Critical: response 1h, resolution 8h.
        assert_eq!(due(30 * M, &[]), Vec::<usize>::new());
        assert_eq!(due(H, &[]), vec![2]);
        assert_eq!(due(4 * H - 1, &[2]), Vec::<usize>::new());
        assert_eq!(due(4 * H, &[2]), vec![0]);
        assert_eq!(due(8 * H, &[0, 2]), vec![1]);
        assert_eq!(due(9 * H, &[]), vec![0, 1, 2]);
        let (_, step) = escalations_due(contract, Severity::Critical, 8 * H, &[0, 2])[0];
        assert_eq!((step.action, step.to.as_str()), (Action::Escalate, "L2"));
        // Info has no targets: nothing ever fires.
        assert!(escalations_due(contract, Severity::Info, 100 * H, &[]).is_empty());
    }

    #[test]
    fn rotation_hands_over_at_the_shift_boundary() {
        let c = contracts();
        let r = &c.rotations;
        assert_eq!(on_call(r, "hq", None, berlin("2026-01-05T08:00")), Some("ana"));
        assert_eq!(on_call(r, "hq", None, berlin("2026-01-12T07:59")), Some("ana"));
        assert_eq!(on_call(r, "hq", None, berlin("2026-01-12T08:00")), Some("ben"));
        assert_eq!(on_call(r, "hq", None, berlin("2026-01-19T08:00")), Some("ana"));
        // Before the start the schedule runs backwards.
        assert_eq!(on_call(r, "hq", None, berlin("2026-01-05T07:59")), Some("ben"));
        // A skill rotation wins over the site's general one; an unknown skill
        // falls back to it.
        assert_eq!(
            on_call(r, "hq", Some("storage"), berlin("2026-01-06T09:00")),
            Some("cy")
        );
        assert_eq!(
            on_call(r, "hq", Some("network"), berlin("2026-01-06T09:00")),
            Some("ana")
        );
        assert_eq!(on_call(r, "branch", None, berlin("2026-01-06T09:00")), None);
    }

    #[test]
    fn contracts_match_by_host_or_by_labels_first_wins() {
        let text = FILE.to_string()
            + r#"
[[contract]]
name = "acme-servers"
customer = "acme"
covers = { hosts = ["db1", "db2"] }
hours = "7x24"
time_zone = "UTC"
"#;
        let c = parse_file(&text, Path::new("c.toml")).unwrap();
        let hq: BTreeMap<String, String> = [("site".to_string(), "hq".to_string())].into();
        let other: BTreeMap<String, String> = [("site".to_string(), "branch".to_string())].into();
        assert!(c.contracts[1].matches("db1", &other));
        assert!(!c.contracts[1].matches("web1", &hq));
        assert!(c.contracts[0].matches("web1", &hq));
        assert!(!c.contracts[0].matches("web1", &BTreeMap::new()));
        // db1 at hq is covered by both: the first in the file wins.
        assert_eq!(c.contract_for("db1", &hq).unwrap().name, "acme-office");
        assert_eq!(c.contract_for("db1", &other).unwrap().name, "acme-servers");
        assert!(c.contract_for("web1", &other).is_none());
    }
}
