//! The outbox's rows and the sinks' places in it: every case change lands
//! in `outbox` in the transaction that made it; each sink keeps a cursor
//! (`sink_state.delivered_through`), the changes it refused for good
//! (`sink_dead`) and the ticket id it gave each case (`case_external`). When
//! to retry and what to set aside are the domain's
//! (`queue::outbox`, `queue::deliver`); this module keeps
//! the rows. Their schema is in [`super::queue::MIGRATION`].

use serde::Serialize;

use super::sql::{Sql, SqlError, SqlExt, args};

/// A sink's place in the outbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SinkState {
    pub sink: String,
    pub delivered_through: i64,
    pub attempts: i64,
    pub next_attempt_ms: i64,
    pub last_error: Option<String>,
    pub last_ok_ms: Option<i64>,
    /// Changes not delivered yet.
    pub pending: i64,
    /// Changes set aside after a permanent refusal.
    pub dead: i64,
}

/// One row of the outbox: log entry `log_id` of case `item_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxRow {
    pub id: i64,
    pub item_id: i64,
    pub log_id: i64,
}

/// A change a sink refused for good.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SetAside {
    pub outbox_id: i64,
    pub at_ms: i64,
    pub error: String,
}

/// The outbox and the sinks' cursors.
pub trait Outbox: Sql {
    /// Gives `sink` a cursor at the end of the outbox, unless it has one.
    fn ensure_sink_cursor(&self, sink: &str) -> Result<(), SqlError> {
        self.execute(
            "INSERT INTO sink_state (sink, delivered_through) \
             VALUES (?1, (SELECT coalesce(max(id), 0) FROM outbox)) ON CONFLICT (sink) DO NOTHING",
            args![sink],
        )?;
        Ok(())
    }

    /// Every sink with a cursor, by name.
    fn sink_names(&self) -> Result<Vec<String>, SqlError> {
        self.query("SELECT sink FROM sink_state ORDER BY sink", args![], |r| r.get(0))
    }

    /// The sink's state, with its backlog.
    fn sink_state(&self, sink: &str) -> Result<Option<SinkState>, SqlError> {
        self.query_opt(
            "SELECT s.sink, s.delivered_through, s.attempts, s.next_attempt_ms, s.last_error, s.last_ok_ms, \
             (SELECT count(*) FROM outbox o WHERE o.id > s.delivered_through), \
             (SELECT count(*) FROM sink_dead d WHERE d.sink = s.sink) \
             FROM sink_state s WHERE s.sink = ?1",
            args![sink],
            |r| {
                Ok(SinkState {
                    sink: r.get(0)?,
                    delivered_through: r.get(1)?,
                    attempts: r.get(2)?,
                    next_attempt_ms: r.get(3)?,
                    last_error: r.get(4)?,
                    last_ok_ms: r.get(5)?,
                    pending: r.get(6)?,
                    dead: r.get(7)?,
                })
            },
        )
    }

    /// The first outbox row after the sink's cursor, if any.
    fn next_for_sink(&self, sink: &str) -> Result<Option<OutboxRow>, SqlError> {
        self.query_opt(
            "SELECT o.id, o.item_id, o.log_id FROM outbox o, sink_state s \
             WHERE s.sink = ?1 AND o.id > s.delivered_through ORDER BY o.id LIMIT 1",
            args![sink],
            |r| {
                Ok(OutboxRow {
                    id: r.get(0)?,
                    item_id: r.get(1)?,
                    log_id: r.get(2)?,
                })
            },
        )
    }

    /// The sink delivered (or skipped) outbox row `outbox_id`: the cursor
    /// moves past it (never back) and the failures are forgotten.
    fn sink_delivered(&self, sink: &str, outbox_id: i64, now_ms: i64) -> Result<(), SqlError> {
        self.execute(
            "UPDATE sink_state SET delivered_through = CASE WHEN delivered_through > ?2 \
             THEN delivered_through ELSE ?2 END, attempts = 0, \
             next_attempt_ms = 0, last_error = NULL, last_ok_ms = ?3 WHERE sink = ?1",
            args![sink, outbox_id, now_ms],
        )?;
        Ok(())
    }

    /// A delivery to the sink failed; the next try is not before
    /// `next_attempt_ms`. Returns how many tries have failed in a row.
    fn sink_failed(&self, sink: &str, error: &str, next_attempt_ms: i64) -> Result<i64, SqlError> {
        self.query_one(
            "UPDATE sink_state SET attempts = attempts + 1, next_attempt_ms = ?2, last_error = ?3 \
             WHERE sink = ?1 RETURNING attempts",
            args![sink, next_attempt_ms, error],
            |r| r.get(0),
        )
    }

    /// Sets outbox row `outbox_id` aside for the sink (refused for good) and
    /// moves the cursor past it.
    fn sink_set_aside(&self, sink: &str, outbox_id: i64, error: &str, now_ms: i64) -> Result<(), SqlError> {
        self.execute(
            "INSERT INTO sink_dead (sink, outbox_id, at_ms, error) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (sink, outbox_id) DO NOTHING",
            args![sink, outbox_id, now_ms, error],
        )?;
        self.execute(
            "UPDATE sink_state SET delivered_through = CASE WHEN delivered_through > ?2 \
             THEN delivered_through ELSE ?2 END, attempts = 0, next_attempt_ms = 0 WHERE sink = ?1",
            args![sink, outbox_id],
        )?;
        Ok(())
    }

    /// What the sink refused for good, newest first (at most 100).
    fn sink_set_aside_list(&self, sink: &str) -> Result<Vec<SetAside>, SqlError> {
        self.query(
            "SELECT outbox_id, at_ms, error FROM sink_dead WHERE sink = ?1 ORDER BY outbox_id DESC LIMIT 100",
            args![sink],
            |r| {
                Ok(SetAside {
                    outbox_id: r.get(0)?,
                    at_ms: r.get(1)?,
                    error: r.get(2)?,
                })
            },
        )
    }

    /// The case's ticket in the sink, from an earlier delivery.
    fn case_external_id(&self, item_id: i64, sink: &str) -> Result<Option<String>, SqlError> {
        self.value(
            "SELECT external_id FROM case_external WHERE item_id = ?1 AND sink = ?2",
            args![item_id, sink],
        )
    }

    /// Every sink's ticket id of a case, `(sink, id)` by sink.
    fn case_external_ids(&self, item_id: i64) -> Result<Vec<(String, String)>, SqlError> {
        self.query(
            "SELECT sink, external_id FROM case_external WHERE item_id = ?1 ORDER BY sink",
            args![item_id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
    }

    /// Keeps the ticket id the sink gave the case (replacing an earlier one).
    fn set_case_external_id(&self, item_id: i64, sink: &str, external_id: &str) -> Result<(), SqlError> {
        self.execute(
            "INSERT INTO case_external (item_id, sink, external_id) VALUES (?1, ?2, ?3) \
             ON CONFLICT (item_id, sink) DO UPDATE SET external_id = excluded.external_id",
            args![item_id, sink, external_id],
        )?;
        Ok(())
    }

    /// Deletes outbox rows older than `before_ms` that every sink's cursor
    /// has passed (all of them when there is no sink); how many went.
    fn prune_outbox(&self, before_ms: i64) -> Result<u64, SqlError> {
        self.execute(
            "DELETE FROM outbox WHERE at_ms < ?1 \
             AND id <= coalesce((SELECT min(delivered_through) FROM sink_state), (SELECT max(id) FROM outbox))",
            args![before_ms],
        )
    }
}

impl<S: Sql + ?Sized> Outbox for S {}

/// Reading the outbox for tests.
#[cfg(test)]
pub mod testing {
    use super::super::sql::{Sql, SqlExt, args};

    /// Every outbox row's id, in order.
    pub fn outbox_ids(db: &dyn Sql) -> Vec<i64> {
        db.query("SELECT id FROM outbox ORDER BY id", args![], |r| r.get(0))
            .unwrap_or_else(|e| panic!("reading the outbox: {e}"))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::store::testing::on_both;

    /// An outbox row for log entry `log_id` of case `item_id`; its id.
    fn change(db: &dyn Sql, item_id: i64, log_id: i64, at_ms: i64) -> i64 {
        db.query_one(
            "INSERT INTO outbox (item_id, log_id, at_ms) VALUES (?1, ?2, ?3) RETURNING id",
            args![item_id, log_id, at_ms],
            |r| r.get(0),
        )
        .unwrap()
    }

    fn state(db: &dyn Sql, sink: &str) -> SinkState {
        db.sink_state(sink).unwrap().unwrap()
    }

    #[test]
    fn a_sinks_cursor_starts_at_the_end_and_advances_past_deliveries() {
        on_both(|db| {
            db.ensure_sink_cursor("hook").unwrap();
            assert_eq!(db.sink_state("other").unwrap(), None);
            let ids: Vec<i64> = (1..=3).map(|n| change(db, 7, n, 100 * n)).collect();
            // Seen again: the cursor stays where it is.
            db.ensure_sink_cursor("hook").unwrap();
            let s = state(db, "hook");
            assert_eq!((s.delivered_through, s.pending, s.dead, s.attempts), (0, 3, 0, 0));
            // A sink configured later hears of changes from now on only.
            db.ensure_sink_cursor("late").unwrap();
            assert_eq!(db.next_for_sink("late").unwrap(), None);
            assert_eq!(state(db, "late").delivered_through, ids[2]);
            assert_eq!(db.sink_names().unwrap(), ["hook", "late"]);

            let next = db.next_for_sink("hook").unwrap().unwrap();
            assert_eq!(
                next,
                OutboxRow {
                    id: ids[0],
                    item_id: 7,
                    log_id: 1
                }
            );
            db.sink_delivered("hook", ids[0], 1_000).unwrap();
            assert_eq!(db.next_for_sink("hook").unwrap().unwrap().id, ids[1]);
            db.sink_delivered("hook", ids[2], 2_000).unwrap();
            // Never back.
            db.sink_delivered("hook", ids[1], 3_000).unwrap();
            let s = state(db, "hook");
            assert_eq!((s.delivered_through, s.pending, s.last_ok_ms), (ids[2], 0, Some(3_000)));
            assert_eq!(db.next_for_sink("hook").unwrap(), None);
            assert_eq!(db.next_for_sink("unknown").unwrap(), None);
        });
    }

    #[test]
    fn failures_count_until_a_delivery_and_a_refused_change_is_set_aside() {
        on_both(|db| {
            db.ensure_sink_cursor("hook").unwrap();
            let a = change(db, 7, 1, 100);
            let b = change(db, 7, 2, 200);
            assert_eq!(db.sink_failed("hook", "503", 5_000).unwrap(), 1);
            assert_eq!(db.sink_failed("hook", "502", 6_000).unwrap(), 2);
            let s = state(db, "hook");
            assert_eq!(
                (s.attempts, s.next_attempt_ms, s.last_error.as_deref(), s.pending),
                (2, 6_000, Some("502"), 2)
            );
            assert!(db.sink_failed("nobody", "x", 0).is_err());

            db.sink_set_aside("hook", a, "422 refused", 7_000).unwrap();
            db.sink_set_aside("hook", a, "422 again", 7_500).unwrap();
            let s = state(db, "hook");
            assert_eq!(
                (s.delivered_through, s.attempts, s.next_attempt_ms, s.dead),
                (a, 0, 0, 1)
            );
            // Still the last error until a delivery clears it.
            assert_eq!(s.last_error.as_deref(), Some("502"));
            db.sink_failed("hook", "422", 8_000).unwrap();
            db.sink_set_aside("hook", b, "422 too", 9_000).unwrap();
            assert_eq!(
                db.sink_set_aside_list("hook").unwrap(),
                [
                    SetAside {
                        outbox_id: b,
                        at_ms: 9_000,
                        error: "422 too".into()
                    },
                    SetAside {
                        outbox_id: a,
                        at_ms: 7_000,
                        error: "422 refused".into()
                    },
                ]
            );
            assert!(db.sink_set_aside_list("other").unwrap().is_empty());
            let c = change(db, 7, 3, 300);
            db.sink_failed("hook", "503", 10_000).unwrap();
            db.sink_delivered("hook", c, 11_000).unwrap();
            let s = state(db, "hook");
            assert_eq!(
                (s.attempts, s.next_attempt_ms, s.last_error, s.pending, s.dead),
                (0, 0, None, 0, 2)
            );
        });
    }

    #[test]
    fn a_cases_ticket_id_is_kept_per_sink_and_replaced() {
        on_both(|db| {
            assert_eq!(db.case_external_id(7, "redmine").unwrap(), None);
            db.set_case_external_id(7, "redmine", "1201").unwrap();
            db.set_case_external_id(7, "jira", "OPS-4").unwrap();
            db.set_case_external_id(8, "jira", "OPS-5").unwrap();
            db.set_case_external_id(7, "redmine", "1202").unwrap();
            assert_eq!(db.case_external_id(7, "redmine").unwrap().as_deref(), Some("1202"));
            assert_eq!(
                db.case_external_ids(7).unwrap(),
                [
                    ("jira".to_string(), "OPS-4".to_string()),
                    ("redmine".to_string(), "1202".to_string())
                ]
            );
            assert!(db.case_external_ids(9).unwrap().is_empty());
        });
    }

    #[test]
    fn pruning_takes_old_rows_every_sink_has_passed() {
        on_both(|db| {
            let ids: Vec<i64> = (1..=4).map(|n| change(db, 7, n, 100 * n)).collect();
            // No sink: every old row goes.
            assert_eq!(db.prune_outbox(150).unwrap(), 1);
            assert_eq!(testing::outbox_ids(db), ids[1..]);
            db.ensure_sink_cursor("fast").unwrap();
            db.ensure_sink_cursor("slow").unwrap();
            let late = change(db, 7, 5, 500);
            db.sink_delivered("fast", late, 0).unwrap();
            // The slow sink has not passed the late change: it stays.
            assert_eq!(db.prune_outbox(1_000).unwrap(), 3);
            assert_eq!(testing::outbox_ids(db), [late]);
            assert_eq!(db.prune_outbox(1_000).unwrap(), 0);
        });
    }
}
