//! Agents' clocks. Every time in a report (`collected_at_ms`, a disk scan's
//! `scanned_at_ms`, each event's `at_ms`) comes from the agent's clock, and
//! the archive is dated with them: an inventory version, what changed, a
//! disk's history. A host whose clock says 2100 would date its changes in
//! 2100, out of every period's inspection report; one at `i64::MAX` breaks
//! the arithmetic on them.
//!
//! So ingest judges the agent's clock against the collector's before
//! anything is stored ([`judge`]): a clock off by more than
//! `[ingest] max_clock_skew_secs` is not believed, the report is still
//! accepted, and every time in it becomes the receive time ([`normalize`]).
//! The host gets an `agent_clock_skew` finding while its clock is off, cleared
//! by the first report whose clock is within the skew again ([`signal`]).
//!
//! How far off a clock is: the agent's HTTP `Date` header (when it sent the
//! report, by its clock) against the receive time. Without it, a report dated
//! in the future, or before its agent was enrolled, says so too. A report
//! dated in the past with a good `Date` is no clock problem: it waited in the
//! agent's spool while the collector was away.

use caretaker_shared::wire::Report;
use serde_json::json;

use crate::cases::{IdentityKey, ItemKind, Severity, Signal};

/// The check (and rule) name of the finding.
pub const CHECK: &str = "agent_clock_skew";

/// What ingest concluded about the clock of one report's agent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Clock {
    /// The agent's clock minus the collector's (ms), when it could be told.
    pub offset_ms: Option<i64>,
    /// Off by more than the allowed skew: the report's times were replaced
    /// by the receive time.
    pub skewed: bool,
    /// `collected_at_ms` as the agent sent it.
    pub claimed_collected_at_ms: i64,
    /// The allowed skew it was judged against (ms).
    pub max_skew_ms: i64,
}

/// Judges a report's clock. `sent_at_ms`: the agent's `Date` header;
/// `enrolled_at_ms`: when the agent was enrolled (collector time).
/// Saturating arithmetic throughout: any `i64` is a possible input.
pub fn judge(
    collected_at_ms: i64,
    sent_at_ms: Option<i64>,
    received_at_ms: i64,
    enrolled_at_ms: Option<i64>,
    max_skew_ms: i64,
) -> Clock {
    let ahead = collected_at_ms.saturating_sub(received_at_ms);
    let sent = sent_at_ms.map(|s| s.saturating_sub(received_at_ms));
    let before_enrollment = enrolled_at_ms.is_some_and(|e| e.saturating_sub(collected_at_ms) > max_skew_ms);
    // The `Date` header's offset, when it too is beyond the skew.
    let sent_off = sent.filter(|o| o.saturating_abs() > max_skew_ms);
    // Collected in the future, or before the agent existed: whatever the
    // `Date` says, the report's own time cannot be believed.
    let (offset_ms, skewed) = if ahead > max_skew_ms {
        (Some(sent_off.unwrap_or(ahead)), true)
    } else if before_enrollment {
        (sent_off, true)
    } else if let Some(off) = sent {
        (Some(off), off.saturating_abs() > max_skew_ms)
    } else {
        (None, false)
    };
    Clock {
        offset_ms,
        skewed,
        claimed_collected_at_ms: collected_at_ms,
        max_skew_ms,
    }
}

/// Dates the report at `received_at_ms` when its clock was judged off.
/// Otherwise only single times that cannot be right (ahead of the receive
/// time by more than the skew, or not positive) are: the rest of the
/// report is believed.
pub fn normalize(report: &mut Report, clock: &Clock, received_at_ms: i64) {
    let fix = |t: &mut i64| {
        if clock.skewed || *t <= 0 || t.saturating_sub(received_at_ms) > clock.max_skew_ms {
            *t = received_at_ms;
        }
    };
    fix(&mut report.collected_at_ms);
    if let Some(scan) = &mut report.disks {
        fix(&mut scan.scanned_at_ms);
    }
    for e in &mut report.events {
        fix(&mut e.at_ms);
    }
}

/// The finding's signal for a report's host: firing while its clock is off,
/// a clear otherwise.
pub fn signal(clock: &Clock, host: &str, customer: &str, received_at_ms: i64) -> Signal {
    let offset_s = clock.offset_ms.map(|o| o / 1000);
    let summary = match offset_s {
        Some(s) if clock.skewed && s >= 0 => format!("the clock of {host} is {s} s ahead of the collector's"),
        Some(s) if clock.skewed => format!("the clock of {host} is {} s behind the collector's", s.saturating_neg()),
        _ if clock.skewed => format!("the clock of {host} dates its reports before the agent was enrolled"),
        _ => format!("the clock of {host} is within the allowed skew"),
    };
    Signal {
        event: None,
        key: IdentityKey {
            customer: customer.to_string(),
            asset: host.to_string(),
            check: CHECK.to_string(),
            component: String::new(),
        },
        kind: ItemKind::Finding,
        severity: Severity::Warning,
        rule: CHECK.to_string(),
        firing: clock.skewed,
        at_ms: received_at_ms,
        evidence: json!({
            "rule": CHECK,
            "summary": summary,
            "offset_secs": offset_s,
            "max_skew_secs": clock.max_skew_ms / 1000,
            "claimed_collected_at_ms": clock.claimed_collected_at_ms,
            "received_at_ms": received_at_ms,
        }),
    }
}

/// The agent's `Date` header (RFC 9110, e.g. `Sun, 06 Nov 1994 08:49:37
/// GMT`) in ms; `None` when absent or unreadable (then it is not used).
pub fn parse_http_date(value: &str) -> Option<i64> {
    let ts = jiff::fmt::rfc2822::DateTimeParser::new().parse_timestamp(value).ok()?;
    Some(ts.as_millisecond())
}

#[cfg(test)]
mod tests {
    use super::*;
    use caretaker_shared::wire::{DiskScan, Event, PROTOCOL_VERSION};

    const NOW: i64 = 1_780_000_000_000;
    const SKEW: i64 = 300_000;
    /// 2100-01-01T00:00:00Z.
    const Y2100: i64 = 4_102_444_800_000;

    fn report(at: i64) -> Report {
        Report {
            version: PROTOCOL_VERSION,
            agent_id: "a1".into(),
            seq: 1,
            collected_at_ms: at,
            interval_secs: 60,
            host: "db1".into(),
            labels: Default::default(),
            samples: vec![],
            events: vec![Event {
                at_ms: at,
                kind: "k".into(),
                severity: caretaker_shared::wire::Severity::Info,
                message: "m".into(),
                labels: Default::default(),
            }],
            inventory: None,
            disks: Some(DiskScan {
                scanned_at_ms: at,
                ..DiskScan::default()
            }),
        }
    }

    #[test]
    fn a_clock_in_2100_or_at_i64_max_is_skewed_and_the_report_dated_at_receipt() {
        for at in [Y2100, i64::MAX, NOW + SKEW + 1] {
            let c = judge(at, None, NOW, Some(NOW - 1000), SKEW);
            assert!(c.skewed, "{at}");
            assert_eq!(c.claimed_collected_at_ms, at);
            let mut r = report(at);
            normalize(&mut r, &c, NOW);
            assert_eq!(r.collected_at_ms, NOW);
            assert_eq!(r.disks.map(|d| d.scanned_at_ms), Some(NOW));
            assert_eq!(r.events[0].at_ms, NOW);
            let s = signal(&c, "db1", "acme", NOW);
            assert!(s.firing && s.key.check == CHECK && s.at_ms == NOW);
            assert!(
                s.evidence["summary"].as_str().is_some_and(|t| t.contains("ahead")),
                "{s:?}"
            );
        }
        // The Date header says the same for a clock at i64::MAX: no overflow.
        let c = judge(i64::MAX, Some(i64::MAX), NOW, None, SKEW);
        assert!(c.skewed && c.offset_ms == Some(i64::MAX - NOW));
        let c = judge(i64::MIN, Some(i64::MIN), i64::MAX, Some(i64::MAX), SKEW);
        assert!(c.skewed);
        let _ = signal(&c, "db1", "acme", i64::MAX);
    }

    #[test]
    fn a_spooled_report_with_a_good_clock_keeps_its_time() {
        // Collected an hour ago, sent now by a clock that agrees.
        let c = judge(NOW - 3_600_000, Some(NOW - 2_000), NOW, Some(NOW - 86_400_000), SKEW);
        assert!(!c.skewed && c.offset_ms == Some(-2_000));
        let mut r = report(NOW - 3_600_000);
        normalize(&mut r, &c, NOW);
        assert_eq!(r.collected_at_ms, NOW - 3_600_000);
        assert!(!signal(&c, "db1", "acme", NOW).firing);
        // An older agent without a Date header: not judged on the past.
        assert!(!judge(NOW - 3_600_000, None, NOW, None, SKEW).skewed);
        // Within the skew either way.
        assert!(!judge(NOW + SKEW, Some(NOW - SKEW), NOW, None, SKEW).skewed);
    }

    #[test]
    fn a_clock_behind_is_told_by_the_date_header_or_the_enrollment() {
        let c = judge(NOW - 7_200_000, Some(NOW - 7_200_000), NOW, None, SKEW);
        assert!(c.skewed && c.offset_ms == Some(-7_200_000));
        assert!(
            signal(&c, "db1", "acme", NOW).evidence["summary"]
                .as_str()
                .is_some_and(|t| t.contains("7200 s behind"))
        );
        // A clock at 1970 after a reboot, sent later by a corrected clock.
        let c = judge(1_000, Some(NOW), NOW, Some(NOW - 86_400_000), SKEW);
        assert!(c.skewed);
    }

    #[test]
    fn single_impossible_times_are_dated_at_receipt() {
        let c = judge(NOW, None, NOW, None, SKEW);
        let mut r = report(NOW);
        r.events[0].at_ms = i64::MAX;
        if let Some(d) = &mut r.disks {
            d.scanned_at_ms = -5;
        }
        normalize(&mut r, &c, NOW);
        assert_eq!(r.events[0].at_ms, NOW);
        assert_eq!(r.disks.map(|d| d.scanned_at_ms), Some(NOW));
    }

    #[test]
    fn http_dates() {
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), Some(784_111_777_000));
        assert_eq!(parse_http_date("yesterday"), None);
    }
}
