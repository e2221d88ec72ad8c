//! Hardware RAID samples and disk-failure events from the latest controller
//! read ([`crate::raid`]).
//!
//! Every report re-emits the latest read, zeros included (a healthy array
//! sends `vd_degraded 0`), so the collector's rules clear. Error counters go
//! out as the controller's cumulative values; the collector looks at rises.
//!
//! A disk of an array seen Failed, Offline, Unconfigured Bad or Missing is
//! announced once as a `raid_disk_failed` event per (serial, state). What was
//! announced is kept in the state dir, so a restart does not repeat it; a disk
//! that leaves that state is forgotten, so a second failure is announced again.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;

use caretaker_shared::hardware::raid::{Controller, PdState, PhysicalDisk, VdState};
use caretaker_shared::wire::Severity;

use super::{CollectError, Collector, Samples, host_label};
use crate::raid::RaidState;

/// File in the state dir listing the announced (serial, state) pairs.
const ANNOUNCED_FILE: &str = "raid-announced.json";

pub struct Raid {
    state: Arc<RaidState>,
    /// Announced (serial, state) pairs; loaded from the state dir on first use.
    announced: Option<BTreeSet<(String, String)>>,
}

impl Raid {
    pub fn new(state: Arc<RaidState>) -> Self {
        Self { state, announced: None }
    }

    fn announced_path(&self) -> Option<PathBuf> {
        self.state.state_dir().map(|d| d.join(ANNOUNCED_FILE))
    }

    fn load_announced(&self) -> BTreeSet<(String, String)> {
        let Some(path) = self.announced_path() else {
            return BTreeSet::new();
        };
        crate::state::read_json(&path)
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "forgetting unreadable RAID announcement state");
                None
            })
            .unwrap_or_default()
    }

    fn save_announced(&self, set: &BTreeSet<(String, String)>) {
        let Some(path) = self.announced_path() else { return };
        let bytes = match serde_json::to_vec(set) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, "cannot encode RAID announcement state");
                return;
            }
        };
        if let Err(e) = crate::state::write_atomic(&path, &bytes, 0o600) {
            tracing::warn!(error = %e, "cannot save RAID announcement state");
        }
    }
}

/// The `serial` label: the disk's serial, or where it was when it has none.
pub fn serial_label(c: &Controller, p: &PhysicalDisk) -> String {
    let s = host_label(&p.serial);
    if s.is_empty() {
        host_label(&format!("{} {}", c.id, p.slot))
    } else {
        s
    }
}

fn flag(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

/// Appends one controller's samples.
pub fn controller_samples(c: &Controller, stalled: &BTreeSet<String>, out: &mut Samples) {
    let ctrl = [("controller", c.id.as_str())];
    out.push("caretaker_raid_controller_failed", &ctrl, flag(c.failed));
    if let Some(t) = c.temperature_c {
        out.push("caretaker_raid_controller_temperature_celsius", &ctrl, t);
    }
    let b = c.backup.as_ref();
    out.push("caretaker_raid_bbu_present", &ctrl, flag(b.is_some()));
    out.push("caretaker_raid_bbu_failed", &ctrl, flag(b.is_some_and(|b| b.failed)));
    out.push(
        "caretaker_raid_bbu_learning",
        &ctrl,
        flag(b.is_some_and(|b| b.learning)),
    );
    for v in &c.vds {
        let members: Vec<&PhysicalDisk> = c
            .pds
            .iter()
            .filter(|p| p.vd.as_deref() == Some(v.id.as_str()))
            .collect();
        let labels = [("controller", c.id.as_str()), ("vd", v.id.as_str())];
        let degraded = v.state.as_ref().is_some_and(VdState::is_degraded)
            || members.iter().any(|p| p.state.as_ref().is_some_and(PdState::is_failed));
        let rebuilding =
            v.state == Some(VdState::Rebuilding) || members.iter().any(|p| p.state == Some(PdState::Rebuild));
        out.push("caretaker_raid_cache_write_through", &labels, flag(v.write_through));
        out.push("caretaker_raid_vd_degraded", &labels, flag(degraded));
        if let Some(state) = &v.state {
            for name in VdState::LABELS {
                out.push(
                    "caretaker_raid_vd_state",
                    &[("controller", c.id.as_str()), ("vd", v.id.as_str()), ("state", name)],
                    flag(state.label() == name),
                );
            }
        }
        out.push("caretaker_raid_vd_rebuilding", &labels, flag(rebuilding));
        out.push(
            "caretaker_raid_vd_rebuild_stalled",
            &labels,
            flag(stalled.contains(&v.id)),
        );
        let level = host_label(&v.level);
        out.push(
            "caretaker_raid_vd_size_bytes",
            &[
                ("controller", c.id.as_str()),
                ("vd", v.id.as_str()),
                ("level", level.as_str()),
            ],
            v.size_bytes as f64,
        );
    }
    for p in &c.pds {
        let serial = serial_label(c, p);
        let slot = host_label(&p.slot);
        let disk = [
            ("controller", c.id.as_str()),
            ("slot", slot.as_str()),
            ("serial", serial.as_str()),
        ];
        let failed = p.state.as_ref().is_some_and(PdState::is_failed);
        out.push(
            "caretaker_raid_pd_failed",
            &[
                ("controller", c.id.as_str()),
                ("slot", slot.as_str()),
                ("serial", serial.as_str()),
                ("in_array", if p.vd.is_some() { "yes" } else { "no" }),
            ],
            flag(failed),
        );
        if let Some(state) = &p.state {
            for name in PdState::LABELS {
                out.push(
                    "caretaker_raid_pd_state",
                    &[
                        ("controller", c.id.as_str()),
                        ("slot", slot.as_str()),
                        ("serial", serial.as_str()),
                        ("state", name),
                    ],
                    flag(state.label() == name),
                );
            }
        }
        if let Some(r) = p.rebuild_progress.filter(|_| p.state == Some(PdState::Rebuild)) {
            out.push("caretaker_raid_pd_rebuild_progress_ratio", &disk, r);
        }
        for (metric, v) in [
            ("caretaker_raid_pd_media_errors", p.media_errors),
            ("caretaker_raid_pd_other_errors", p.other_errors),
            ("caretaker_raid_pd_predictive_failures", p.predictive_failures),
        ] {
            if let Some(v) = v {
                out.push(metric, &disk, v as f64);
            }
        }
        out.push(
            "caretaker_raid_pd_smart_alert",
            &disk,
            flag(p.smart_alert == Some(true)),
        );
    }
}

/// The disks of arrays that are out of service now: (controller, disk).
fn failed_members(cs: &[Controller]) -> Vec<(&Controller, &PhysicalDisk)> {
    cs.iter()
        .flat_map(|c| c.pds.iter().map(move |p| (c, p)))
        .filter(|(_, p)| p.vd.is_some() && p.state.as_ref().is_some_and(PdState::is_failed))
        .collect()
}

impl Collector for Raid {
    fn name(&self) -> &'static str {
        "raid"
    }

    fn collect(&mut self, out: &mut Samples) -> Result<(), CollectError> {
        let Some(scan) = self.state.latest() else {
            // The first read is still running.
            return Ok(());
        };
        if let Some(reason) = &scan.unavailable {
            return Err(CollectError::Unavailable { reason: reason.clone() });
        }
        for c in &scan.controllers {
            controller_samples(c, &scan.stalled, out);
        }
        if self.announced.is_none() {
            self.announced = Some(self.load_announced());
        }
        let mut announced = self.announced.take().unwrap_or_default();
        let before = announced.clone();
        let now: Vec<(&Controller, &PhysicalDisk, String, String)> = failed_members(&scan.controllers)
            .into_iter()
            .map(|(c, p)| {
                let state = p.state.as_ref().map(PdState::as_str).unwrap_or("").to_string();
                (c, p, serial_label(c, p), state)
            })
            .collect();
        for (c, p, serial, state) in &now {
            if !announced.insert((serial.clone(), state.clone())) {
                continue;
            }
            let vd = p.vd.clone().unwrap_or_default();
            let model = host_label(&p.model);
            let slot = host_label(&p.slot);
            let size = p.size_bytes.to_string();
            let shown_serial = if p.serial.trim().is_empty() {
                "unknown"
            } else {
                serial.as_str()
            };
            out.event(
                "raid_disk_failed",
                Severity::Critical,
                format!("Disk {slot} ({model}, serial {shown_serial}) of array {vd} is {state}"),
                &[
                    ("controller", c.id.as_str()),
                    ("vd", vd.as_str()),
                    ("slot", slot.as_str()),
                    ("serial", serial.as_str()),
                    ("model", model.as_str()),
                    ("interface", p.interface.as_str()),
                    ("size_bytes", size.as_str()),
                    ("state", state.as_str()),
                ],
            );
        }
        // Forget a disk that left the state it was announced in; keep pairs of
        // disks this read does not show (a controller that failed to answer).
        let seen: BTreeSet<String> = scan
            .controllers
            .iter()
            .flat_map(|c| c.pds.iter().map(move |p| serial_label(c, p)))
            .collect();
        announced.retain(|(serial, state)| {
            !seen.contains(serial) || now.iter().any(|(_, _, s, st)| s == serial && st == state)
        });
        if announced != before {
            self.save_announced(&announced);
        }
        self.announced = Some(announced);
        if scan.errors.is_empty() {
            Ok(())
        } else {
            Err(CollectError::Tool {
                tool: "raid".into(),
                reason: scan.errors.join("; "),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use super::*;
    use crate::collectors::{run_all, sample_value};
    use crate::raid::tests::{fake_storcli, fixture};
    use crate::raid::{RaidConfig, StallTracker, scan};

    fn config(tool: std::path::PathBuf, dir: &Path) -> RaidConfig {
        RaidConfig {
            storcli_path: tool,
            perccli_path: dir.join("none"),
            storcli2_path: dir.join("none"),
            perccli2_path: dir.join("none"),
            ssacli_path: dir.join("none"),
            ..RaidConfig::default()
        }
    }

    /// Reads the controllers through a fake storcli64 printing these captures.
    fn read(state: &RaidState, tools: &Path, show: &str, drives: &str, rebuild: Option<&str>) {
        let tool = fake_storcli(tools, show, drives, rebuild);
        let mut s = scan(&config(tool, tools));
        s.stalled = StallTracker::default().observe(&s.controllers, s.scanned_at_ms);
        state.publish(s);
    }

    fn collect(c: &mut Raid) -> Samples {
        let mut out = Samples::default();
        c.collect(&mut out).unwrap_or_else(|e| panic!("{e}"));
        out
    }

    const VD: [(&str, &str); 2] = [("controller", "c0"), ("vd", "c0/v0")];

    #[test]
    fn degraded_rebuilding_optimal_sequence_announces_the_failed_disk_once() {
        let tools = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let state_dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let state = Arc::new(RaidState::with_state_dir(state_dir.path().to_path_buf()));
        let mut c = Raid::new(state.clone());

        // Degraded: 252:1 failed.
        read(
            &state,
            tools.path(),
            "storcli/derived-praid-ep420i-dgrd-252-1-failed-show-all.json",
            "storcli/derived-praid-ep420i-dgrd-252-1-failed-drives.json",
            None,
        );
        let s = collect(&mut c);
        assert_eq!(sample_value(&s.0, "caretaker_raid_vd_degraded", &VD), Some(1.0));
        let current = |metric: &str, labels: &[(&str, &str)]| -> Vec<String> {
            s.0.iter()
                .filter(|x| {
                    x.metric == metric
                        && x.value == 1.0
                        && labels
                            .iter()
                            .all(|(k, v)| x.labels.get(*k).map(String::as_str) == Some(*v))
                })
                .filter_map(|x| x.labels.get("state").cloned())
                .collect()
        };
        assert_eq!(
            current("caretaker_raid_vd_state", &VD),
            ["degraded"],
            "one state at a time"
        );
        assert_eq!(
            current("caretaker_raid_pd_state", &[("slot", "252:1")]),
            ["failed"],
            "the failed disk by name"
        );
        assert_eq!(current("caretaker_raid_pd_state", &[("slot", "252:0")]), ["online"]);
        assert_eq!(sample_value(&s.0, "caretaker_raid_vd_rebuilding", &VD), Some(0.0));
        assert_eq!(
            sample_value(
                &s.0,
                "caretaker_raid_pd_failed",
                &[("slot", "252:1"), ("serial", "20032656D63C"), ("in_array", "yes")]
            ),
            Some(1.0)
        );
        assert_eq!(
            sample_value(&s.0, "caretaker_raid_pd_failed", &[("slot", "252:0")]),
            Some(0.0)
        );
        assert_eq!(s.1.len(), 1, "{:?}", s.1);
        let e = &s.1[0];
        assert_eq!(e.kind, "raid_disk_failed");
        assert_eq!(e.severity, Severity::Critical);
        assert_eq!(
            e.message,
            "Disk 252:1 (Micron_5200_MTFDDAK960TDC, serial 20032656D63C) of array c0/v0 is Failed"
        );
        let labels: Vec<(&str, &str)> = e.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            labels,
            [
                ("controller", "c0"),
                ("interface", "sata"),
                ("model", "Micron_5200_MTFDDAK960TDC"),
                ("serial", "20032656D63C"),
                ("size_bytes", "959656755200"),
                ("slot", "252:1"),
                ("state", "Failed"),
                ("vd", "c0/v0"),
            ]
        );
        // The next report, same state: no second event.
        assert!(collect(&mut c).1.is_empty());
        // The agent restarts with the same state dir: still none.
        let mut c = Raid::new(state.clone());
        assert!(
            collect(&mut c).1.is_empty(),
            "a restart does not repeat the announcement"
        );

        // Rebuilding onto a new disk.
        read(
            &state,
            tools.path(),
            "storcli/derived-praid-ep420i-rbld-252-1-new-disk-show-all.json",
            "storcli/derived-praid-ep420i-rbld-252-1-new-disk-drives.json",
            Some("storcli/constructed-praid-ep420i-show-rebuild-252-1-37pct.json"),
        );
        let s = collect(&mut c);
        assert!(s.1.is_empty());
        assert_eq!(sample_value(&s.0, "caretaker_raid_vd_degraded", &VD), Some(1.0));
        assert_eq!(sample_value(&s.0, "caretaker_raid_vd_rebuilding", &VD), Some(1.0));
        assert_eq!(sample_value(&s.0, "caretaker_raid_vd_rebuild_stalled", &VD), Some(0.0));
        assert_eq!(
            sample_value(
                &s.0,
                "caretaker_raid_pd_rebuild_progress_ratio",
                &[("slot", "252:1"), ("serial", "2116301A9F2E")]
            ),
            Some(0.37)
        );
        assert_eq!(
            sample_value(&s.0, "caretaker_raid_pd_failed", &[("serial", "2116301A9F2E")]),
            Some(0.0)
        );

        // Optimal again.
        read(
            &state,
            tools.path(),
            "storcli/derived-praid-ep420i-optl-252-1-new-disk-show-all.json",
            "storcli/derived-praid-ep420i-optl-252-1-new-disk-drives.json",
            None,
        );
        let s = collect(&mut c);
        assert!(s.1.is_empty());
        assert_eq!(sample_value(&s.0, "caretaker_raid_vd_degraded", &VD), Some(0.0));
        assert_eq!(sample_value(&s.0, "caretaker_raid_vd_rebuilding", &VD), Some(0.0));
        assert_eq!(
            sample_value(&s.0, "caretaker_raid_pd_rebuild_progress_ratio", &[]),
            None,
            "no progress when no rebuild runs"
        );
        assert_eq!(sample_value(&s.0, "caretaker_raid_bbu_present", &[]), Some(1.0));
        assert_eq!(sample_value(&s.0, "caretaker_raid_bbu_failed", &[]), Some(0.0));
        assert_eq!(sample_value(&s.0, "caretaker_raid_cache_write_through", &VD), Some(0.0));
        assert_eq!(
            sample_value(&s.0, "caretaker_raid_vd_size_bytes", &[("level", "RAID6")]),
            Some(1_918_647_790_469.0)
        );
        crate::collectors::assert_on_the_wire(s.0);
    }

    #[test]
    fn a_failed_cachevault_and_a_learn_cycle_read_apart() {
        let state = Arc::new(RaidState::default());
        let mut c = Raid::new(state.clone());
        let tools = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        read(
            &state,
            tools.path(),
            "storcli/derived-praid-ep420i-cachevault-failed-show-all.json",
            "storcli/praid-ep420i-call-eall-sall-show-all.json",
            None,
        );
        let s = collect(&mut c);
        let ctrl = [("controller", "c0")];
        assert_eq!(sample_value(&s.0, "caretaker_raid_bbu_failed", &ctrl), Some(1.0));
        assert_eq!(sample_value(&s.0, "caretaker_raid_bbu_learning", &ctrl), Some(0.0));
        assert_eq!(sample_value(&s.0, "caretaker_raid_cache_write_through", &VD), Some(1.0));
        read(
            &state,
            tools.path(),
            "storcli/derived-praid-ep420i-bbu-learning-show-all.json",
            "storcli/praid-ep420i-call-eall-sall-show-all.json",
            None,
        );
        let s = collect(&mut c);
        assert_eq!(
            sample_value(&s.0, "caretaker_raid_bbu_failed", &ctrl),
            Some(0.0),
            "learning is not failed"
        );
        assert_eq!(sample_value(&s.0, "caretaker_raid_bbu_learning", &ctrl), Some(1.0));
    }

    #[test]
    fn a_missing_tool_is_unavailable_once() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let state = Arc::new(RaidState::default());
        state.publish(scan(&config(dir.path().join("none"), dir.path())));
        let mut list: Vec<Box<dyn Collector>> = vec![Box::new(Raid::new(state))];
        let mut unavailable = BTreeMap::new();
        let (s1, e1) = run_all(&mut list, &mut unavailable, 1);
        let (_, e2) = run_all(&mut list, &mut unavailable, 2);
        assert_eq!(e1.len(), 1);
        assert_eq!(e1[0].kind, "collector_unavailable");
        assert_eq!(
            e1[0].message,
            "no RAID controller tool found (storcli64, perccli64, ssacli)"
        );
        assert!(e2.is_empty());
        assert_eq!(
            sample_value(&s1, "caretaker_agent_collector_success", &[("collector", "raid")]),
            Some(0.0)
        );
    }

    #[test]
    fn raid_disks_merge_into_the_inventory_by_serial_and_virtual_disks_are_marked() {
        let show = std::fs::read_to_string(fixture("storcli/praid-ep420i-call-show-all.json")).unwrap_or_default();
        let drives =
            std::fs::read_to_string(fixture("storcli/praid-ep420i-call-eall-sall-show-all.json")).unwrap_or_default();
        let cs = caretaker_shared::hardware::raid::parse_storcli(
            &show,
            Some(&drives),
            caretaker_shared::hardware::raid::ControllerKind::MegaRaid,
        )
        .unwrap_or_else(|e| panic!("{e}"))
        .controllers;
        let disk = |name: &str, model: &str, serial: &str| caretaker_shared::wire::DiskInfo {
            name: name.into(),
            model: model.into(),
            serial: serial.into(),
            ..Default::default()
        };
        let mut inv = caretaker_shared::wire::Inventory {
            disks: vec![
                disk("sda", "PRAID EP420i", "0074c5d5"),
                disk("bus/0 megaraid,3", "Micron_5200_MTFDDAK960TDC", "20032656D63C"),
            ],
            ..Default::default()
        };
        crate::inventory::merge_raid(&mut inv, &cs);
        assert_eq!(inv.raid_controllers.len(), 1);
        assert_eq!(inv.raid_controllers[0].cache_backup, "cachevault");
        assert_eq!(inv.virtual_disks[0].members, ["252:0", "252:1", "252:4", "252:5"]);
        let rows: Vec<(String, String, String, String)> = inv
            .disks
            .iter()
            .map(|d| {
                (
                    d.name.clone(),
                    d.serial.clone(),
                    d.location.clone(),
                    d.interface.clone(),
                )
            })
            .collect();
        let r = |a: &str, b: &str, c: &str, d: &str| (a.to_string(), b.to_string(), c.to_string(), d.to_string());
        assert_eq!(
            rows,
            [
                r("bus/0 megaraid,3", "20032656D63C", "c0 252:1", "sata"),
                r("c0/e252/s0", "20032656D641", "c0 252:0", "sata"),
                r("c0/e252/s4", "20032656D649", "c0 252:4", "sata"),
                r("c0/e252/s5", "20032656D5D1", "c0 252:5", "sata"),
                r("sda", "0074c5d5", "", "raid"),
            ],
            "one disk is one part"
        );
    }
}
