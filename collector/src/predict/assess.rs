//! The disk risk assessment: a pure function of a disk's latest reading and
//! its stored SMART history (`disks::history`, oldest first), following the
//! rules of `shared/DISK-HEALTH.md`.
//!
//! # Why these rules
//! - **Manufacturer failure first.** When the drive itself says it is failing
//!   (SMART status failed, a pre-fail attribute at threshold, the most recent
//!   self-test failed, NVMe spare under threshold or a critical warning other
//!   than temperature) the shared verdict is `failing` and the disk is
//!   replaced now: the drive has given up on itself.
//! - **Rises above the disk's own baseline, not absolute counts.** Many drives
//!   live for years with a small stable reallocated count; what predicts a
//!   failure is growth. Pinheiro, Weber and Barroso ("Failure Trends in a Large
//!   Disk Drive Population", FAST 2007) found a drive 39 times more likely to
//!   fail within 60 days after its first scan error and 14 times after its
//!   first reallocation. The baseline is the first stored reading. One rise is
//!   a reason to watch (the rule engine's `disk_*_grew` findings cover it); a
//!   second rise within [`SHORT_WINDOW_MS`], or pending sectors the drive does
//!   not manage to reallocate for [`PENDING_STUCK_MS`], means the surface is
//!   degrading: replace within days.
//! - **Weighted by failure-rate buckets.** Backblaze's drive stats, bucketed by
//!   raw value (as Scrutiny publishes them), give the annual failure rate of
//!   drives at each count of 5, 187, 188, 197 and 198 ([`afr_percent`]). At
//!   [`AFR_URGENT_PERCENT`] or more the replacement is due within
//!   [`URGENT_DAYS`] rather than [`SOON_DAYS`].
//! - **CRC errors are the link's.** Attribute 199 counts transfers the
//!   interface had to retry; rising alone it points at the cable, connector or
//!   backplane, not the disk: `cable_suspect` (with the rises in the
//!   evidence), never a disk replacement nor one of the disk's reasons.
//! - **NVMe wear is a date.** `percentage_used` grows steadily with writes; a
//!   least-squares line through its history gives the day it reaches 100 %
//!   (the rated endurance). Within [`FORECAST_HORIZON_DAYS`] the drive is due
//!   for replacement by that date.
//! - **Age.** Backblaze's failure rates by age rise after about five years for
//!   hard drives: beyond [`HDD_RATED_HOURS`] power-on hours a drive is watched,
//!   not replaced on age alone.
//! - **Sustained heat.** A drive at or above its own trip point in more than
//!   one reading of the last week is watched: the fix is airflow first.
//!
//! Like the verdict, the assessment follows the data: it is recomputed from
//! the history on every scan and nothing in it is sticky.

use std::collections::BTreeMap;

use caretaker_shared::disk_health::{Disk, Level, ReadState, verdict};
use serde::Serialize;
use serde_json::{Value, json};

use crate::disks::{HistoryPoint, key_values};

const DAY_MS: i64 = 86_400_000;

/// Two rises of the disk's counters this close together: replace within days.
pub const SHORT_WINDOW_MS: i64 = 30 * DAY_MS;
/// Pending sectors still pending after this long were not reallocated.
pub const PENDING_STUCK_MS: i64 = 7 * DAY_MS;
/// CRC errors that rose within this time make the link suspect.
pub const CABLE_WINDOW_MS: i64 = 7 * DAY_MS;
/// Replacement due within this many days when the failure-rate bucket is high.
pub const URGENT_DAYS: u32 = 7;
/// Otherwise within this many days.
pub const SOON_DAYS: u32 = 14;
/// The annual failure rate (percent) from which a replacement is urgent.
pub const AFR_URGENT_PERCENT: f64 = 50.0;
/// A single rise in a bucket at or above this AFR is high risk (still watched).
pub const AFR_HIGH_PERCENT: f64 = 20.0;
/// A wear forecast within this many days makes the drive due by that date.
pub const FORECAST_HORIZON_DAYS: i64 = 90;
/// The wear trend is read from this much recent history.
pub const FORECAST_LOOKBACK_MS: i64 = 180 * DAY_MS;
/// Five years of power-on hours, where hard drive failure rates rise.
pub const HDD_RATED_HOURS: i64 = 43_800;
/// Sustained heat is looked for in this much recent history.
pub const HEAT_WINDOW_MS: i64 = 7 * DAY_MS;

/// Counters whose rise means the medium is degrading (DISK-HEALTH rule 3).
pub const MEDIA_COUNTERS: &[&str] = &[
    "reallocated_sectors",
    "reallocation_events",
    "pending_sectors",
    "offline_uncorrectable",
    "reported_uncorrectable",
    "nvme_media_errors",
    "scsi_grown_defects",
    "scsi_uncorrected_errors",
];

/// Counters that are worth watching when they rise, but do not alone say the
/// medium is failing (timeouts are often a cable; error logs are noisy).
pub const WATCH_COUNTERS: &[&str] = &["command_timeouts", "ata_error_log_entries", "self_test_failures"];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Risk {
    Low,
    Elevated,
    High,
    Critical,
}

impl Risk {
    pub fn as_str(self) -> &'static str {
        match self {
            Risk::Low => "low",
            Risk::Elevated => "elevated",
            Risk::High => "high",
            Risk::Critical => "critical",
        }
    }
}

/// How soon the part should be replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Urgency {
    ReplaceNow,
    WithinDays(u32),
    Watch,
    None,
}

impl Urgency {
    /// The stored and metric label name (`within_days` whatever the days).
    pub fn name(self) -> &'static str {
        match self {
            Urgency::ReplaceNow => "replace_now",
            Urgency::WithinDays(_) => "within_days",
            Urgency::Watch => "watch",
            Urgency::None => "none",
        }
    }

    /// Orders urgencies: higher is sooner.
    fn rank(self) -> (u8, i64) {
        match self {
            Urgency::ReplaceNow => (3, 0),
            Urgency::WithinDays(d) => (2, -i64::from(d)),
            Urgency::Watch => (1, 0),
            Urgency::None => (0, 0),
        }
    }

    /// The more urgent of two.
    pub fn max(self, other: Urgency) -> Urgency {
        if other.rank() > self.rank() { other } else { self }
    }

    /// Whether this urgency earns a replacement recommendation: a watch stays
    /// a finding; only a replacement to plan orders a part.
    pub fn recommends(self) -> bool {
        matches!(self, Urgency::ReplaceNow | Urgency::WithinDays(_))
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Assessment {
    pub risk: Risk,
    pub urgency: Urgency,
    /// CRC errors rose alone: check the cable/backplane, not the disk. Not
    /// among `reasons`, which are the disk's own.
    pub cable_suspect: bool,
    /// When `percentage_used` reaches 100 at its current rate.
    pub forecast_100pct_at_ms: Option<i64>,
    /// Machine-readable reasons about the disk itself (a recommendation
    /// cites them), e.g. `second_rise_within_30d`.
    pub reasons: Vec<String>,
    pub evidence: Value,
}

/// Annual failure rate (percent) of drives at this raw count of an ATA
/// attribute, from Backblaze's data as bucketed by Scrutiny (see
/// `shared/DISK-HEALTH.md`). The published buckets leave gaps (a 197 of 1
/// matched none); here each bucket runs up to the next one's lower bound.
pub fn afr_percent(counter: &str, value: i64) -> Option<f64> {
    let table: &[(i64, f64)] = match counter {
        "reallocated_sectors" => &[
            (0, 2.5),
            (1, 2.7),
            (4, 7.5),
            (16, 23.6),
            (70, 36.0),
            (260, 57.0),
            (1100, 150.0),
        ],
        "reported_uncorrectable" => &[(0, 2.8), (1, 33.9), (3, 50.0), (20, 84.0)],
        "command_timeouts" => &[(0, 2.5), (101, 10.0)],
        "pending_sectors" => &[(0, 2.6), (1, 34.0), (3, 68.0), (40, 165.0), (100, 251.0)],
        "offline_uncorrectable" => &[(0, 2.9), (1, 81.0), (3, 112.0)],
        _ => return None,
    };
    table.iter().rev().find(|(from, _)| value >= *from).map(|(_, afr)| *afr)
}

/// One reading's counters at a time.
struct Point {
    at_ms: i64,
    values: BTreeMap<String, i64>,
}

/// A counter rose between two consecutive readings.
#[derive(Debug, Clone, Serialize)]
struct Rise {
    counter: String,
    at_ms: i64,
    from: i64,
    to: i64,
}

/// Assesses one disk. `history` is the disk's stored history, oldest first
/// (it may or may not already hold the latest reading); `now_ms` is when the
/// latest reading was taken.
pub fn assess(latest: &Disk, history: &[HistoryPoint], now_ms: i64) -> Assessment {
    let mut a = Assessment {
        risk: Risk::Low,
        urgency: Urgency::None,
        cable_suspect: false,
        forecast_100pct_at_ms: None,
        reasons: Vec::new(),
        evidence: json!({}),
    };
    if latest.state != ReadState::Ok {
        return a;
    }
    let mut ev = serde_json::Map::new();
    let raise = |a: &mut Assessment, risk: Risk, urgency: Urgency, reason: String| {
        a.risk = a.risk.max(risk);
        a.urgency = a.urgency.max(urgency);
        a.reasons.push(reason);
    };

    // Rule 2/5/6: the drive's own verdict.
    let v = verdict(latest);
    if v.level == Level::Failing {
        let failing: Vec<String> = v
            .reasons
            .iter()
            .filter(|r| r.level == Level::Failing)
            .map(|r| r.to_string())
            .collect();
        ev.insert("manufacturer_failure".into(), json!(failing));
        raise(
            &mut a,
            Risk::Critical,
            Urgency::ReplaceNow,
            "manufacturer_failure".into(),
        );
    }

    let mut points: Vec<Point> = history
        .iter()
        .filter(|p| p.at_ms <= now_ms)
        .map(|p| Point {
            at_ms: p.at_ms,
            values: p.values.clone(),
        })
        .collect();
    let current: BTreeMap<String, i64> = key_values(latest)
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
    match points.last_mut() {
        Some(p) if p.at_ms == now_ms => p.values = current.clone(),
        _ => points.push(Point {
            at_ms: now_ms,
            values: current.clone(),
        }),
    }

    let rises = rises(&points);
    let baseline = |c: &str| points.iter().find_map(|p| p.values.get(c).copied());

    // Rule 3: media counters above the baseline, and how often they rose.
    let media: Vec<&Rise> = rises
        .iter()
        .filter(|r| MEDIA_COUNTERS.contains(&r.counter.as_str()))
        .collect();
    let above: Vec<(&str, i64, i64)> = MEDIA_COUNTERS
        .iter()
        .filter_map(|c| {
            let now = *current.get(*c)?;
            let base = baseline(c)?;
            (now > base).then_some((*c, base, now))
        })
        .collect();
    let worst_afr = current
        .iter()
        .filter_map(|(c, v)| afr_percent(c, *v))
        .fold(0.0_f64, f64::max);
    if !above.is_empty() {
        ev.insert(
            "above_baseline".into(),
            json!(
                above
                    .iter()
                    .map(|(c, b, n)| json!({"counter": c, "baseline": b, "now": n, "afr_percent": afr_percent(c, *n)}))
                    .collect::<Vec<_>>()
            ),
        );
    }
    if !media.is_empty() {
        ev.insert("rises".into(), json!(media));
    }
    let days = if worst_afr >= AFR_URGENT_PERCENT {
        URGENT_DAYS
    } else {
        SOON_DAYS
    };
    // Distinct readings at which a media counter rose (several counters rising
    // in one reading are one event). Pending sectors turning into reallocated
    // ones (197 falls as 5 rises) is the drive repairing what it already
    // counted, not a new rise.
    let pending_fell = falls(&points, "pending_sectors");
    let mut rise_times: Vec<i64> = media
        .iter()
        .filter(|r| {
            let conversion = |x: &&Rise| {
                x.at_ms == r.at_ms && matches!(x.counter.as_str(), "reallocated_sectors" | "reallocation_events")
            };
            let all_conversion = media.iter().filter(|x| x.at_ms == r.at_ms).all(conversion);
            !(all_conversion && pending_fell.contains(&r.at_ms))
        })
        .map(|r| r.at_ms)
        .collect();
    rise_times.dedup();
    let second_rise = rise_times
        .windows(2)
        .any(|w| w[1] - w[0] <= SHORT_WINDOW_MS && now_ms - w[1] <= SHORT_WINDOW_MS);
    if second_rise {
        raise(
            &mut a,
            Risk::High,
            Urgency::WithinDays(days),
            format!("second_rise_within_{}d", SHORT_WINDOW_MS / DAY_MS),
        );
    } else if !above.is_empty() {
        let risk = if worst_afr >= AFR_HIGH_PERCENT {
            Risk::High
        } else {
            Risk::Elevated
        };
        raise(&mut a, risk, Urgency::Watch, "rise_above_baseline".into());
    }
    if let Some(since) = pending_since(&points)
        && now_ms - since >= PENDING_STUCK_MS
    {
        ev.insert("pending_since_ms".into(), json!(since));
        raise(
            &mut a,
            Risk::High,
            Urgency::WithinDays(days),
            "pending_sectors_not_reallocated".into(),
        );
    }
    if worst_afr > 0.0 {
        ev.insert("afr_percent".into(), json!(worst_afr));
    }

    // Timeouts, error log and self-test failures growing: watch.
    let watch: Vec<&Rise> = rises
        .iter()
        .filter(|r| WATCH_COUNTERS.contains(&r.counter.as_str()) && now_ms - r.at_ms <= SHORT_WINDOW_MS)
        .collect();
    if !watch.is_empty() {
        ev.insert("watch_rises".into(), json!(watch));
        for r in &watch {
            raise(&mut a, Risk::Elevated, Urgency::Watch, format!("{}_grew", r.counter));
        }
    }

    // Rule 4: CRC errors rising alone point at the link.
    let crc: Vec<&Rise> = rises
        .iter()
        .filter(|r| r.counter == "udma_crc_errors" && now_ms - r.at_ms <= CABLE_WINDOW_MS)
        .collect();
    let recent_media = media.iter().any(|r| now_ms - r.at_ms <= CABLE_WINDOW_MS);
    if !crc.is_empty() && !recent_media {
        // The link's, not the disk's: no reason, no risk, no urgency.
        a.cable_suspect = true;
        ev.insert("crc_rises".into(), json!(crc));
    }

    // Rule 5: the NVMe wear forecast.
    if latest.nvme.is_some()
        && let Some((at, slope_per_day)) = wear_forecast(&points, now_ms)
    {
        a.forecast_100pct_at_ms = Some(at);
        ev.insert(
            "wear_forecast".into(),
            json!({"reaches_100pct_at_ms": at, "percent_per_day": slope_per_day}),
        );
        let left_days = (at - now_ms).div_euclid(DAY_MS);
        if left_days <= FORECAST_HORIZON_DAYS {
            let days = u32::try_from(left_days.max(1)).unwrap_or(1);
            raise(
                &mut a,
                Risk::High,
                Urgency::WithinDays(days),
                format!("wear_reaches_100pct_within_{}d", FORECAST_HORIZON_DAYS),
            );
        }
    }

    // Age beyond a hard drive's rated life.
    if latest.rotation_rpm.is_some_and(|r| r > 0)
        && let Some(h) = current.get("power_on_hours").filter(|h| **h >= HDD_RATED_HOURS)
    {
        ev.insert("power_on_hours".into(), json!(h));
        raise(&mut a, Risk::Elevated, Urgency::Watch, "beyond_rated_life".into());
    }

    // Rule 6: heat above the drive's own trip point, more than once lately.
    if let Some(trip) = latest.temperature_trip_c.filter(|t| *t > 0) {
        let hot = points
            .iter()
            .filter(|p| now_ms - p.at_ms <= HEAT_WINDOW_MS)
            .filter(|p| p.values.get("temperature_c").is_some_and(|t| *t >= trip))
            .count();
        if hot >= 2 {
            ev.insert("over_trip_readings".into(), json!(hot));
            raise(
                &mut a,
                Risk::Elevated,
                Urgency::Watch,
                "sustained_over_temperature".into(),
            );
        }
    }

    a.evidence = Value::Object(ev);
    a
}

/// Every rise of a counter between consecutive readings, in time order.
fn rises(points: &[Point]) -> Vec<Rise> {
    let mut out = Vec::new();
    for w in points.windows(2) {
        for (c, to) in &w[1].values {
            if let Some(from) = w[0].values.get(c)
                && to > from
            {
                out.push(Rise {
                    counter: c.clone(),
                    at_ms: w[1].at_ms,
                    from: *from,
                    to: *to,
                });
            }
        }
    }
    out
}

/// The readings at which `counter` fell.
fn falls(points: &[Point], counter: &str) -> Vec<i64> {
    points
        .windows(2)
        .filter(|w| matches!((w[0].values.get(counter), w[1].values.get(counter)), (Some(a), Some(b)) if b < a))
        .map(|w| w[1].at_ms)
        .collect()
}

/// Since when pending sectors have stayed above zero without a break, if they
/// are above zero now.
fn pending_since(points: &[Point]) -> Option<i64> {
    let mut since = None;
    for p in points {
        match p.values.get("pending_sectors") {
            Some(v) if *v > 0 => {
                since.get_or_insert(p.at_ms);
            }
            _ => since = None,
        }
    }
    since
}

/// The date `nvme_percentage_used` reaches 100 on a least-squares line through
/// the recent readings, and the slope in percent per day. `None` without a
/// rising trend over at least a day.
fn wear_forecast(points: &[Point], now_ms: i64) -> Option<(i64, f64)> {
    let xy: Vec<(f64, f64)> = points
        .iter()
        .filter(|p| now_ms - p.at_ms <= FORECAST_LOOKBACK_MS)
        .filter_map(|p| {
            let v = *p.values.get("nvme_percentage_used")?;
            Some(((p.at_ms - now_ms) as f64 / DAY_MS as f64, v as f64))
        })
        .collect();
    let current = xy.last()?.1;
    if current >= 100.0 {
        return Some((now_ms, 0.0));
    }
    let span = xy.last()?.0 - xy.first()?.0;
    if xy.len() < 2 || span < 1.0 {
        return None;
    }
    let n = xy.len() as f64;
    let mx = xy.iter().map(|p| p.0).sum::<f64>() / n;
    let my = xy.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = xy.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = xy.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    if sxx <= 0.0 {
        return None;
    }
    let slope = sxy / sxx;
    if slope <= 0.0 {
        return None;
    }
    // x is in days relative to now; the line is y = my + slope * (x - mx).
    let x100 = mx + (100.0 - my) / slope;
    let at = now_ms + (x100 * DAY_MS as f64).round() as i64;
    Some((at.max(now_ms), slope))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn afr_buckets_have_no_gaps() {
        assert_eq!(afr_percent("pending_sectors", 0), Some(2.6));
        assert_eq!(afr_percent("pending_sectors", 1), Some(34.0));
        assert_eq!(afr_percent("pending_sectors", 2), Some(34.0));
        assert_eq!(afr_percent("reallocated_sectors", 24), Some(23.6));
        assert_eq!(afr_percent("offline_uncorrectable", 5), Some(112.0));
        assert_eq!(afr_percent("udma_crc_errors", 5), None);
    }

    #[test]
    fn urgency_only_escalates_through_max() {
        assert_eq!(Urgency::Watch.max(Urgency::WithinDays(14)), Urgency::WithinDays(14));
        assert_eq!(
            Urgency::WithinDays(14).max(Urgency::WithinDays(7)),
            Urgency::WithinDays(7)
        );
        assert_eq!(
            Urgency::WithinDays(7).max(Urgency::WithinDays(14)),
            Urgency::WithinDays(7)
        );
        assert_eq!(Urgency::ReplaceNow.max(Urgency::WithinDays(1)), Urgency::ReplaceNow);
    }

    fn point(at_ms: i64, used: i64) -> HistoryPoint {
        HistoryPoint {
            at_ms,
            verdict: "healthy".into(),
            reasons: vec![],
            values: [("nvme_percentage_used".to_string(), used)].into_iter().collect(),
        }
    }

    #[test]
    fn a_steady_wear_line_reaches_100_on_its_date() {
        let d = Disk {
            nvme: Some(Default::default()),
            ..Disk::default()
        };
        let mut d = d;
        d.nvme.as_mut().unwrap().percentage_used = Some(80);
        // 1 % every 2 days: 60 → 80 over 40 days; 100 in 40 more days.
        let h: Vec<HistoryPoint> = (0..=20).map(|i| point(i * 2 * DAY_MS, 60 + i)).collect();
        let now = 40 * DAY_MS;
        let a = assess(&d, &h, now);
        let at = a.forecast_100pct_at_ms.unwrap();
        assert!((at - 80 * DAY_MS).abs() < DAY_MS, "{}", at / DAY_MS);
        assert_eq!(a.urgency, Urgency::WithinDays(40));
    }
}
