//! When scheduled inspection reports are due: each month's report (UTC
//! calendar months) once that month has ended, one per customer. Pure, so
//! the calendar arithmetic is tested apart from the serving loop; whether a
//! report already exists is the caller's question ([`super::stored::exists`]).
//!
//! A collector that was not running on the 1st catches up when it starts:
//! the previous month's report is due for the whole of the next month until
//! it exists.

use std::collections::BTreeSet;

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

use super::Period;

/// The last full calendar month (UTC) before `now_ms`.
pub fn previous_month(now_ms: i64) -> Period {
    let today = OffsetDateTime::from_unix_timestamp_nanos(i128::from(now_ms) * 1_000_000)
        .map(OffsetDateTime::date)
        .unwrap_or(Date::MIN);
    let (year, month) = (today.year(), today.month());
    let this_month = first_of(year, month);
    let (py, pm) = if month == Month::January {
        (year - 1, Month::December)
    } else {
        (year, month.previous())
    };
    Period {
        from_ms: first_of(py, pm),
        to_ms: this_month,
    }
}

fn first_of(year: i32, month: Month) -> i64 {
    Date::from_calendar_date(year, month, 1)
        .map(|d| PrimitiveDateTime::new(d, Time::MIDNIGHT).assume_utc())
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
        .unwrap_or(0)
}

/// The reports due at `now_ms`: the previous month's for each customer in
/// `customers` that is not in `done` (customers that already have that
/// month's scheduled report).
pub fn due(now_ms: i64, customers: &[String], done: &BTreeSet<String>) -> Vec<(String, Period)> {
    let period = previous_month(now_ms);
    let mut out: Vec<(String, Period)> = customers
        .iter()
        .filter(|c| !c.is_empty() && !done.contains(*c))
        .map(|c| (c.clone(), period))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out.dedup_by(|a, b| a.0 == b.0);
    out
}

/// Generates the scheduled reports due at `now_ms` (see [`due`]) for
/// `customers`, or for every customer named in an agent's labels when
/// `None`; returns (customer, report id) of each one made. Meant for the
/// writer's transaction; running it again makes nothing new.
pub fn run_due(
    db: &dyn crate::store::sql::Sql,
    now_ms: i64,
    customers: Option<&[String]>,
    options: &super::Options,
) -> Result<Vec<(String, i64)>, crate::store::StoreError> {
    let customers = match customers {
        Some(c) => c.to_vec(),
        None => super::customers(db)?,
    };
    let period = previous_month(now_ms);
    let mut done = BTreeSet::new();
    for c in &customers {
        if super::stored::exists(db, c, period, super::stored::Trigger::Schedule)? {
            done.insert(c.clone());
        }
    }
    let mut made = Vec::new();
    for (customer, period) in due(now_ms, &customers, &done) {
        let id = super::stored::generate(db, &customer, period, now_ms, super::stored::Trigger::Schedule, options)?;
        made.push((customer, id));
    }
    Ok(made)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::export::parse_time;

    fn t(s: &str) -> i64 {
        parse_time(s).unwrap_or(i64::MIN)
    }

    #[test]
    fn previous_month_is_the_last_full_calendar_month() {
        let p = previous_month(t("2026-12-01T00:00:00Z"));
        assert_eq!(
            (p.from_ms, p.to_ms),
            (t("2026-11-01T00:00:00Z"), t("2026-12-01T00:00:00Z"))
        );
        let p = previous_month(t("2026-11-30T23:59:59.999Z"));
        assert_eq!(
            (p.from_ms, p.to_ms),
            (t("2026-10-01T00:00:00Z"), t("2026-11-01T00:00:00Z"))
        );
        // January looks back into the previous year; leap February has 29 days.
        let p = previous_month(t("2027-01-15T08:00:00Z"));
        assert_eq!(
            (p.from_ms, p.to_ms),
            (t("2026-12-01T00:00:00Z"), t("2027-01-01T00:00:00Z"))
        );
        let p = previous_month(t("2028-03-01T00:00:00Z"));
        assert_eq!(p.to_ms - p.from_ms, 29 * 24 * 3_600_000);
        // An offset in the input does not move the UTC month.
        let p = previous_month(t("2026-12-01T00:30:00+01:00"));
        assert_eq!(
            p.to_ms,
            t("2026-11-01T00:00:00Z"),
            "23:30 UTC on 30 Nov is still November"
        );
    }

    #[test]
    fn due_once_per_customer_and_month() {
        let customers = vec!["acme".to_string(), "globex".into(), "acme".into(), "".into()];
        let now = t("2026-12-01T00:05:00Z");
        let nov = previous_month(now);
        assert_eq!(
            due(now, &customers, &BTreeSet::new()),
            vec![("acme".to_string(), nov), ("globex".to_string(), nov)]
        );
        let done = BTreeSet::from(["acme".to_string()]);
        assert_eq!(due(now, &customers, &done), vec![("globex".to_string(), nov)]);
        let all = BTreeSet::from(["acme".to_string(), "globex".to_string()]);
        assert!(due(now, &customers, &all).is_empty());
        // Later in the month the same report is still the one due (catch-up).
        assert_eq!(due(t("2026-12-17T12:00:00Z"), &customers, &all), vec![]);
        assert_eq!(due(t("2026-12-17T12:00:00Z"), &customers, &done)[0].1, nov);
    }

    #[test]
    fn run_due_makes_each_report_once() {
        let conn = crate::store::testing::TestDb::new();
        crate::report::tests::fleet(&conn);
        let now = t("2026-12-01T00:05:00Z");
        let options = crate::report::Options::default();
        let made = run_due(&conn, now, None, &options).unwrap_or_default();
        let names: Vec<&str> = made.iter().map(|(c, _)| c.as_str()).collect();
        assert_eq!(names, ["acme", "globex"], "every customer in the agents' labels");
        assert!(run_due(&conn, now + 3_600_000, None, &options).is_ok_and(|m| m.is_empty()));
        let only = ["initech".to_string()];
        let made = run_due(&conn, now, Some(&only), &options).unwrap_or_default();
        assert_eq!(made.len(), 1, "configured customers, hosts or not");
        let list = crate::report::stored::list(&conn, None).unwrap_or_default();
        assert_eq!(list.len(), 3);
        assert!(
            list.iter()
                .all(|s| s.trigger == "schedule" && s.from_ms == t("2026-11-01T00:00:00Z"))
        );
    }
}
