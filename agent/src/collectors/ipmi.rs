//! BMC sensor samples and event-log events from the latest read of the
//! [`crate::ipmi`] worker.
//!
//! The worker reads the BMC on its own interval; this collector re-emits the
//! last good read every report while it is fresh (see
//! [`crate::ipmi::IpmiConfig::stale_after_ms`]) and hands each new event-log
//! entry to exactly one report. A host without a BMC or without the tools is
//! [`CollectError::Unavailable`]; a failed read is a collector failure.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::{CollectError, Collector, Samples, host_label};
use crate::ipmi::{IpmiReading, IpmiState};

pub struct Ipmi {
    state: Arc<IpmiState>,
}

impl Ipmi {
    pub fn new(state: Arc<IpmiState>) -> Self {
        Self { state }
    }
}

/// Appends the samples of one read. Two sensors with the same name and type
/// (ipmitool prints Dell's several `Temp` sensors alike) get ` #2`, ` #3`
/// so their series stay apart.
pub fn reading_samples(r: &IpmiReading, out: &mut Samples) {
    let mut seen: BTreeMap<(String, &str), usize> = BTreeMap::new();
    for s in &r.sensors {
        let kind = s.kind.as_str();
        let base = host_label(&s.name);
        let n = seen.entry((base.clone(), kind)).or_insert(0);
        *n += 1;
        let name = if *n == 1 { base } else { format!("{base} #{n}") };
        out.push(
            "caretaker_ipmi_sensor_state",
            &[("sensor", &name), ("type", kind)],
            s.state.value(),
        );
        if let Some(v) = s.reading {
            let unit = if s.unit.is_empty() { "none" } else { s.unit.as_str() };
            out.push(
                "caretaker_ipmi_sensor_value",
                &[("sensor", &name), ("type", kind), ("unit", unit)],
                v,
            );
        }
        for (threshold, v) in s.thresholds.present() {
            out.push(
                "caretaker_ipmi_sensor_threshold",
                &[("sensor", &name), ("type", kind), ("threshold", threshold)],
                v,
            );
        }
    }
    if let Some(c) = &r.chassis {
        for (fault, set) in c.faults() {
            out.push(
                "caretaker_ipmi_chassis_fault",
                &[("fault", fault)],
                if set { 1.0 } else { 0.0 },
            );
        }
    }
    if let Some(i) = &r.sel_info {
        if let Some(n) = i.entries {
            out.push("caretaker_ipmi_sel_entries", &[], n as f64);
        }
        if let Some(u) = i.used_ratio {
            out.push("caretaker_ipmi_sel_used_ratio", &[], u);
        }
    }
}

impl Collector for Ipmi {
    fn name(&self) -> &'static str {
        "ipmi"
    }

    fn collect(&mut self, out: &mut Samples) -> Result<(), CollectError> {
        // Events first: they were taken from the log and must go out whatever else fails.
        out.1.extend(self.state.take_events());
        let snap = self.state.snapshot();
        if let Some(reason) = snap.unavailable {
            return Err(CollectError::Unavailable { reason });
        }
        let now = caretaker_shared::now_ms();
        if let Some(r) = &snap.reading {
            if now - r.read_at_ms <= snap.stale_after_ms {
                reading_samples(r, out);
            } else if snap.error.is_none() {
                return Err(CollectError::Tool {
                    tool: "ipmi".into(),
                    reason: format!("the last BMC read is {} s old", (now - r.read_at_ms) / 1000),
                });
            }
        }
        match snap.error {
            Some(reason) => Err(CollectError::Tool {
                tool: "ipmi".into(),
                reason,
            }),
            // No read yet: the first one is still running.
            None => Ok(()),
        }
    }
}
