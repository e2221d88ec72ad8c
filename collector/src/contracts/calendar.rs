//! Service-time arithmetic: which instants a contract's hours cover, in the
//! contract's own time zone, and how much service time lies between two
//! instants. Windows are built per local day, so a DST change moves the
//! window with the wall clock instead of shifting it by an hour.

use std::collections::BTreeSet;

use jiff::Timestamp;
use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;

/// Longest search for service time: past this a deadline is "never"
/// (`None`). Validation guarantees at least one service day a week, so only
/// absurd durations or holiday lists get near it.
const MAX_DAYS: usize = 366 * 100;

/// A contract's service hours: weekdays, a daily window and holidays, in one
/// IANA time zone.
#[derive(Debug, Clone)]
pub struct Calendar {
    tz: TimeZone,
    tz_name: String,
    /// Monday first.
    days: [bool; 7],
    /// Minutes after local midnight; `to_min` may be 1440 (end of day).
    from_min: u32,
    to_min: u32,
    holidays: BTreeSet<Date>,
}

impl Calendar {
    /// `days` Monday first; `from_min < to_min <= 1440`. Fails on an unknown
    /// time zone.
    pub fn new(
        tz_name: &str,
        days: [bool; 7],
        from_min: u32,
        to_min: u32,
        holidays: BTreeSet<Date>,
    ) -> Result<Calendar, String> {
        let tz = TimeZone::get(tz_name).map_err(|_| format!("unknown time zone {tz_name:?}"))?;
        Ok(Calendar {
            tz,
            tz_name: tz_name.to_string(),
            days,
            from_min,
            to_min,
            holidays,
        })
    }

    /// Every day, all day, in `tz_name`, without holidays.
    pub fn always(tz_name: &str) -> Result<Calendar, String> {
        Calendar::new(tz_name, [true; 7], 0, 1440, BTreeSet::new())
    }

    pub fn time_zone(&self) -> &str {
        &self.tz_name
    }

    /// Every day, all day, no holidays: service time is wall-clock time.
    /// Otherwise (`5x8`...) a duration of service time must say so.
    pub fn is_round_the_clock(&self) -> bool {
        self.days == [true; 7] && self.from_min == 0 && self.to_min >= 1440 && self.holidays.is_empty()
    }

    pub fn holidays(&self) -> &BTreeSet<Date> {
        &self.holidays
    }

    /// "mon-fri 08:00-17:00" style, for summaries.
    pub fn describe(&self) -> String {
        const NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
        let days: Vec<&str> = NAMES
            .iter()
            .zip(self.days)
            .filter(|(_, on)| *on)
            .map(|(n, _)| *n)
            .collect();
        let days = if self.days == [true; 7] {
            "every day".to_string()
        } else if self.days == [true, true, true, true, true, false, false] {
            "mon-fri".to_string()
        } else {
            days.join(",")
        };
        let hm = |m: u32| format!("{:02}:{:02}", m / 60, m % 60);
        format!("{days} {}-{} {}", hm(self.from_min), hm(self.to_min), self.tz_name)
    }

    fn local_date(&self, ms: i64) -> Option<Date> {
        Some(Timestamp::from_millisecond(ms).ok()?.to_zoned(self.tz.clone()).date())
    }

    fn at(&self, date: Date, minute: u32) -> Option<i64> {
        let (date, minute) = if minute >= 1440 {
            (date.tomorrow().ok()?, 0)
        } else {
            (date, minute)
        };
        let time = Time::new((minute / 60) as i8, (minute % 60) as i8, 0, 0).ok()?;
        // A wall time in a spring-forward gap maps to the instant after it,
        // one in a fall-back fold to the earlier one ("compatible").
        let ts = self
            .tz
            .to_ambiguous_timestamp(date.to_datetime(time))
            .compatible()
            .ok()?;
        Some(ts.as_millisecond())
    }

    /// The service window `[start, end)` of one local day, if it has one.
    fn window(&self, date: Date) -> Option<(i64, i64)> {
        let weekday = date.weekday().to_monday_zero_offset() as usize;
        if !self.days[weekday] || self.holidays.contains(&date) {
            return None;
        }
        let start = self.at(date, self.from_min)?;
        let end = self.at(date, self.to_min)?;
        (start < end).then_some((start, end))
    }

    /// Local days from the one holding `from_ms` on, with their windows.
    fn windows_from(&self, from_ms: i64) -> impl Iterator<Item = (i64, i64)> + '_ {
        // The day before too: its window cannot reach into today, but a
        // conversion at a day's edge must never skip a window.
        let first = self.local_date(from_ms).and_then(|d| d.yesterday().ok());
        std::iter::successors(first, |d| d.tomorrow().ok())
            .take(MAX_DAYS)
            .filter_map(|d| self.window(d))
    }

    /// Whether instant `t_ms` lies within service hours.
    pub fn is_service_time(&self, t_ms: i64) -> bool {
        self.local_date(t_ms)
            .and_then(|d| self.window(d))
            .is_some_and(|(s, e)| s <= t_ms && t_ms < e)
    }

    /// The instant at which `duration_ms` of service time has passed since
    /// `start_ms`. A duration that exactly fills a window ends at the window's
    /// end (Friday 17:00, not Monday 08:00). `None`: never, the calendar has
    /// too little service time within [`MAX_DAYS`].
    pub fn add_service_time(&self, start_ms: i64, duration_ms: i64) -> Option<i64> {
        if duration_ms <= 0 {
            return Some(start_ms);
        }
        let mut remaining = duration_ms;
        for (ws, we) in self.windows_from(start_ms) {
            let s = ws.max(start_ms);
            if s >= we {
                continue;
            }
            let available = we - s;
            if remaining <= available {
                return Some(s + remaining);
            }
            remaining -= available;
        }
        None
    }

    /// Service time within `[a_ms, b_ms)`; 0 when `b_ms <= a_ms`.
    pub fn service_time_between(&self, a_ms: i64, b_ms: i64) -> i64 {
        if b_ms <= a_ms {
            return 0;
        }
        let mut total = 0;
        for (ws, we) in self.windows_from(a_ms) {
            if ws >= b_ms {
                break;
            }
            let s = ws.max(a_ms);
            let e = we.min(b_ms);
            if s < e {
                total += e - s;
            }
        }
        total
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const H: i64 = 3_600_000;

    fn berlin_5x8(holidays: &[&str]) -> Calendar {
        let hol = holidays.iter().map(|d| d.parse().unwrap()).collect();
        Calendar::new(
            "Europe/Berlin",
            [true, true, true, true, true, false, false],
            8 * 60,
            17 * 60,
            hol,
        )
        .unwrap()
    }

    /// Milliseconds of a local wall time in `tz`.
    fn local(tz: &str, s: &str) -> i64 {
        let dt: jiff::civil::DateTime = s.parse().unwrap();
        dt.to_zoned(TimeZone::get(tz).unwrap())
            .unwrap()
            .timestamp()
            .as_millisecond()
    }

    fn berlin(s: &str) -> i64 {
        local("Europe/Berlin", s)
    }

    #[test]
    fn friday_evening_fault_is_due_monday_noon() {
        let c = berlin_5x8(&[]);
        // 2026-11-27 is a Friday.
        let due = c.add_service_time(berlin("2026-11-27T18:00"), 4 * H);
        assert_eq!(due, Some(berlin("2026-11-30T12:00")));
        assert!(!c.is_service_time(berlin("2026-11-28T10:00")));
        assert!(c.is_service_time(berlin("2026-11-30T08:00")));
        assert!(!c.is_service_time(berlin("2026-11-30T17:00")));
    }

    #[test]
    fn a_duration_filling_the_day_ends_at_closing_time() {
        let c = berlin_5x8(&[]);
        assert_eq!(
            c.add_service_time(berlin("2026-11-27T13:00"), 4 * H),
            Some(berlin("2026-11-27T17:00"))
        );
        assert_eq!(
            c.add_service_time(berlin("2026-11-27T13:00"), 5 * H),
            Some(berlin("2026-11-30T09:00"))
        );
    }

    #[test]
    fn seven_by_twenty_four_is_wall_clock_time() {
        let c = Calendar::always("UTC").unwrap();
        let t = berlin("2026-11-28T03:17");
        assert_eq!(c.add_service_time(t, 30 * H), Some(t + 30 * H));
        assert_eq!(c.service_time_between(t, t + 50 * H), 50 * H);
        assert!(c.is_service_time(t));
    }

    #[test]
    fn holidays_are_skipped() {
        // Thursday 2026-12-24 15:00 + 4h: 2h that day, Friday 25th is a
        // holiday, the weekend is off: due Monday 28th 10:00.
        let c = berlin_5x8(&["2026-12-25"]);
        assert_eq!(
            c.add_service_time(berlin("2026-12-24T15:00"), 4 * H),
            Some(berlin("2026-12-28T10:00"))
        );
        // In 2027 the 24th is a Friday and the 25th a Saturday.
        let c = berlin_5x8(&["2027-12-24"]);
        assert_eq!(
            c.add_service_time(berlin("2027-12-23T16:00"), 2 * H),
            Some(berlin("2027-12-27T09:00"))
        );
        assert_eq!(
            c.service_time_between(berlin("2027-12-23T00:00"), berlin("2027-12-28T00:00")),
            18 * H
        );
    }

    #[test]
    fn dst_spring_forward_keeps_local_hours() {
        // Berlin moves to CEST on Sunday 2026-03-29.
        let c = berlin_5x8(&[]);
        let fri = berlin("2026-03-27T16:00");
        assert_eq!(c.add_service_time(fri, 2 * H), Some(berlin("2026-03-30T09:00")));
        // Monday's window is 08:00-17:00 CEST, i.e. 06:00-15:00 UTC.
        assert_eq!(berlin("2026-03-30T08:00"), local("UTC", "2026-03-30T06:00"));
        // A whole week of service time is 45h, DST or not.
        assert_eq!(
            c.service_time_between(berlin("2026-03-23T00:00"), berlin("2026-03-30T00:00")),
            45 * H
        );
        // 7x24 in Berlin: the night of the change has 23 hours.
        let all = Calendar::always("Europe/Berlin").unwrap();
        assert_eq!(
            all.service_time_between(berlin("2026-03-29T00:00"), berlin("2026-03-30T00:00")),
            23 * H
        );
    }

    #[test]
    fn dst_fall_back_keeps_local_hours() {
        // Berlin returns to CET on Sunday 2026-10-25.
        let c = berlin_5x8(&[]);
        assert_eq!(
            c.add_service_time(berlin("2026-10-23T16:00"), 2 * H),
            Some(berlin("2026-10-26T09:00"))
        );
        assert_eq!(berlin("2026-10-26T08:00"), local("UTC", "2026-10-26T07:00"));
        let all = Calendar::always("Europe/Berlin").unwrap();
        assert_eq!(
            all.service_time_between(berlin("2026-10-25T00:00"), berlin("2026-10-26T00:00")),
            25 * H
        );
        // A weekend-spanning window across the change: Sat-Sun 00:00-24:00.
        let weekend = Calendar::new(
            "Europe/Berlin",
            [false, false, false, false, false, true, true],
            0,
            1440,
            BTreeSet::new(),
        )
        .unwrap();
        assert_eq!(
            weekend.add_service_time(berlin("2026-10-24T00:00"), 48 * H),
            Some(berlin("2026-10-25T23:00"))
        );
    }

    #[test]
    fn other_time_zones_use_their_own_wall_clock() {
        let ny = Calendar::new(
            "America/New_York",
            [true, true, true, true, true, false, false],
            9 * 60,
            17 * 60,
            BTreeSet::new(),
        )
        .unwrap();
        // Friday 16:00 New York + 2h: 1h Friday, 1h Monday from 09:00.
        let due = ny
            .add_service_time(local("America/New_York", "2026-11-27T16:00"), 2 * H)
            .unwrap();
        assert_eq!(due, local("America/New_York", "2026-11-30T10:00"));
        assert_eq!(due, local("UTC", "2026-11-30T15:00"));
        // 10:00 in Berlin on a Monday is 04:00 in New York: outside hours.
        assert!(!ny.is_service_time(berlin("2026-11-30T10:00")));
    }

    #[test]
    fn between_is_zero_for_empty_or_reversed_spans() {
        let c = berlin_5x8(&[]);
        let t = berlin("2026-11-30T10:00");
        assert_eq!(c.service_time_between(t, t), 0);
        assert_eq!(c.service_time_between(t, t - H), 0);
        assert_eq!(
            c.service_time_between(berlin("2026-11-27T18:00"), berlin("2026-11-30T12:00")),
            4 * H
        );
    }

    #[test]
    fn a_calendar_without_service_time_never_reaches_a_deadline() {
        let never = Calendar::new("UTC", [false; 7], 0, 1440, BTreeSet::new()).unwrap();
        let t = berlin("2026-11-30T10:00");
        assert_eq!(never.add_service_time(t, H), None);
        // No time to add is reached at once, service hours or not.
        assert_eq!(never.add_service_time(t, 0), Some(t));
    }

    #[test]
    fn unknown_time_zone_is_refused() {
        assert_eq!(
            Calendar::always("Mars/Olympus").unwrap_err(),
            "unknown time zone \"Mars/Olympus\""
        );
    }
}
