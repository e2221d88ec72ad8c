//! Database health samples from the latest poll of each configured database
//! ([`crate::databases`]): `caretaker_db_up`, the error class of a down one,
//! and whatever the kind's poller measured. A database going down or coming
//! back is also an event in the report.

use std::collections::BTreeMap;
use std::sync::Arc;

use caretaker_shared::wire::Severity;

use super::{CollectError, Collector, Samples};
use crate::databases::{DbState, ERROR_CLASSES};

pub struct Databases {
    state: Arc<DbState>,
    /// Whether each database was up at the previous collection.
    was_up: BTreeMap<String, bool>,
}

impl Databases {
    pub fn new(state: Arc<DbState>) -> Self {
        Self {
            state,
            was_up: BTreeMap::new(),
        }
    }
}

impl Collector for Databases {
    fn name(&self) -> &'static str {
        "databases"
    }

    fn collect(&mut self, out: &mut Samples) -> Result<(), CollectError> {
        for (name, r) in self.state.snapshot() {
            let kind = r.kind.as_str();
            let l = [("db", name.as_str()), ("kind", kind)];
            out.push("caretaker_db_poll_duration_seconds", &l, r.duration.as_secs_f64());
            out.push("caretaker_db_last_poll_timestamp_seconds", &l, r.at_ms as f64 / 1000.0);
            let up = r.result.is_ok();
            out.push("caretaker_db_up", &l, if up { 1.0 } else { 0.0 });
            match &r.result {
                Ok(samples) => out.0.extend(samples.iter().cloned()),
                Err((class, _)) => {
                    for c in ERROR_CLASSES {
                        out.push(
                            "caretaker_db_error",
                            &[("db", name.as_str()), ("kind", kind), ("class", c)],
                            if c == class { 1.0 } else { 0.0 },
                        );
                    }
                }
            }
            let before = self.was_up.insert(name.clone(), up);
            match (before, &r.result) {
                // Down at start, or went down: say so once.
                (None | Some(true), Err((class, message))) => out.event(
                    "database_down",
                    Severity::Critical,
                    format!("{kind} {name} is down ({class}): {message}"),
                    &[("db", name.as_str()), ("kind", kind), ("class", class)],
                ),
                (Some(false), Ok(_)) => out.event(
                    "database_up",
                    Severity::Info,
                    format!("{kind} {name} is up again"),
                    &[("db", name.as_str()), ("kind", kind)],
                ),
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::databases::{DbKind, Reading};

    fn reading(result: Result<Vec<caretaker_shared::wire::Sample>, (&'static str, String)>) -> Reading {
        Reading {
            kind: DbKind::Redis,
            at_ms: 1_000,
            duration: Duration::from_millis(5),
            result,
        }
    }

    #[test]
    fn down_up_transitions_are_events_once() {
        let state = Arc::new(DbState::default());
        let mut c = Databases::new(state.clone());
        state.publish("cache", reading(Err(("refused", "connection refused".into()))));
        let mut out = Samples::default();
        assert!(c.collect(&mut out).is_ok());
        assert_eq!(out.1.len(), 1);
        assert_eq!(out.1[0].kind, "database_down");
        assert!(out.0.iter().any(|s| s.metric == "caretaker_db_up" && s.value == 0.0));
        assert!(out.0.iter().any(|s| s.metric == "caretaker_db_error"
            && s.labels.get("class").map(String::as_str) == Some("refused")
            && s.value == 1.0));
        let mut out = Samples::default();
        assert!(c.collect(&mut out).is_ok());
        assert!(out.1.is_empty(), "still down: no second event");
        state.publish("cache", reading(Ok(vec![])));
        let mut out = Samples::default();
        assert!(c.collect(&mut out).is_ok());
        assert_eq!(
            out.1.iter().map(|e| e.kind.as_str()).collect::<Vec<_>>(),
            vec!["database_up"]
        );
        assert!(out.0.iter().any(|s| s.metric == "caretaker_db_up" && s.value == 1.0));
        assert!(!out.0.iter().any(|s| s.metric == "caretaker_db_error"));
    }
}
