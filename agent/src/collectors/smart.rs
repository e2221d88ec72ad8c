//! Disk health samples from the latest smartctl scan ([`crate::smart`]).
//!
//! smartctl runs on its own, slower interval; this collector re-emits the
//! latest scan's values every report so the collector's `/metrics` always
//! shows them. It fails (and says why) when the scan could not run smartctl
//! at all, so a host without smartmontools shows up as unwatched disks rather
//! than as healthy ones.

use std::sync::Arc;

use caretaker_shared::disk_health::{Disk, KEY_ATA_ATTRIBUTES, Level, NvmeWarning};

use super::{CollectError, Collector, Samples};
use crate::smart::SmartState;

pub struct Smart {
    state: Arc<SmartState>,
}

impl Smart {
    pub fn new(state: Arc<SmartState>) -> Self {
        Self { state }
    }
}

const NVME_BITS: [NvmeWarning; 6] = [
    NvmeWarning::SpareBelowThreshold,
    NvmeWarning::Temperature,
    NvmeWarning::ReliabilityDegraded,
    NvmeWarning::MediaReadOnly,
    NvmeWarning::VolatileBackupFailed,
    NvmeWarning::PersistentMemoryReadOnly,
];

/// Appends one disk's samples.
pub fn disk_samples(d: &Disk, out: &mut Samples) {
    let k = d.key.as_str();
    let disk = [("disk", k)];
    let state = match d.state {
        caretaker_shared::disk_health::ReadState::Ok => "ok",
        caretaker_shared::disk_health::ReadState::Standby => "standby",
        caretaker_shared::disk_health::ReadState::Unreadable => "unreadable",
        caretaker_shared::disk_health::ReadState::Unsupported => "unsupported",
    };
    let protocol = match d.protocol {
        caretaker_shared::disk_health::Protocol::Ata => "ata",
        caretaker_shared::disk_health::Protocol::Nvme => "nvme",
        caretaker_shared::disk_health::Protocol::Scsi => "scsi",
        caretaker_shared::disk_health::Protocol::Unknown => "unknown",
    };
    let device = if d.device_type.contains(',') {
        format!("{} -d {}", d.device, d.device_type)
    } else {
        d.device.clone()
    };
    out.push(
        "caretaker_disk_info",
        &[
            ("disk", k),
            ("device", &device),
            ("model", &d.model),
            ("serial", &d.serial),
            ("firmware", &d.firmware),
            ("protocol", protocol),
            ("state", state),
        ],
        1.0,
    );
    for l in Level::ALL {
        out.push(
            "caretaker_disk_health_verdict",
            &[("disk", k), ("verdict", l.as_str())],
            if d.verdict.level == l { 1.0 } else { 0.0 },
        );
    }
    out.push("caretaker_disk_verdict_reasons", &disk, d.verdict.reasons.len() as f64);
    if let Some(p) = d.smart_passed {
        out.push("caretaker_disk_smart_passed", &disk, if p { 1.0 } else { 0.0 });
    }
    if let Some(t) = d.temperature_c {
        out.push("caretaker_disk_temperature_celsius", &disk, t as f64);
    }
    if let Some(t) = d.temperature_trip_c {
        out.push("caretaker_disk_temperature_trip_celsius", &disk, t as f64);
    }
    if let Some(h) = d.power_on_hours {
        out.push("caretaker_disk_power_on_seconds", &disk, h as f64 * 3600.0);
    }
    if let Some(a) = &d.ata {
        for (id, name) in KEY_ATA_ATTRIBUTES {
            if let Some(v) = a.attribute(*id).and_then(|a| a.decoded) {
                out.push(
                    "caretaker_disk_ata_attribute_raw",
                    &[("disk", k), ("attribute", name)],
                    v as f64,
                );
            }
        }
        if let Some(n) = a.error_log_count {
            out.push("caretaker_disk_ata_error_log_entries", &disk, n as f64);
        }
        if let Some(t) = a.self_tests.first().and_then(|t| t.passed) {
            out.push("caretaker_disk_self_test_failed", &disk, if t { 0.0 } else { 1.0 });
        }
    }
    if let Some(n) = &d.nvme {
        let pct = |v: Option<u8>| v.map(|v| f64::from(v) / 100.0);
        let gauges = [
            ("caretaker_disk_nvme_percentage_used_ratio", pct(n.percentage_used)),
            ("caretaker_disk_nvme_available_spare_ratio", pct(n.available_spare)),
            (
                "caretaker_disk_nvme_available_spare_threshold_ratio",
                pct(n.available_spare_threshold),
            ),
            ("caretaker_disk_nvme_media_errors", n.media_errors.map(|v| v as f64)),
            (
                "caretaker_disk_nvme_error_log_entries",
                n.num_err_log_entries.map(|v| v as f64),
            ),
            (
                "caretaker_disk_nvme_unsafe_shutdowns",
                n.unsafe_shutdowns.map(|v| v as f64),
            ),
            (
                "caretaker_disk_nvme_written_bytes",
                n.data_units_written.map(|v| v as f64 * 512_000.0),
            ),
        ];
        for (metric, v) in gauges {
            if let Some(v) = v {
                out.push(metric, &disk, v);
            }
        }
        for bit in NVME_BITS {
            let set = n.critical_warnings.contains(&bit);
            out.push(
                "caretaker_disk_nvme_critical_warning",
                &[("disk", k), ("bit", bit.as_str())],
                if set { 1.0 } else { 0.0 },
            );
        }
    }
    if let Some(s) = &d.scsi {
        if let Some(g) = s.grown_defects {
            out.push("caretaker_disk_scsi_grown_defects", &disk, g as f64);
        }
        if let Some(u) = s.uncorrected_total() {
            out.push("caretaker_disk_scsi_uncorrected_errors", &disk, u as f64);
        }
    }
}

impl Collector for Smart {
    fn name(&self) -> &'static str {
        "smart"
    }

    fn collect(&mut self, out: &mut Samples) -> Result<(), CollectError> {
        let Some(scan) = self.state.latest() else {
            // The first scan is still running.
            return Ok(());
        };
        out.push(
            "caretaker_disk_scan_timestamp_seconds",
            &[],
            scan.scanned_at_ms as f64 / 1000.0,
        );
        out.push(
            "caretaker_disk_scan_success",
            &[],
            if scan.error.is_none() { 1.0 } else { 0.0 },
        );
        for d in &scan.disks {
            disk_samples(d, out);
        }
        match &scan.error {
            Some(e) => Err(CollectError::Tool {
                tool: "smartctl".into(),
                reason: e.clone(),
            }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use caretaker_shared::wire::DiskScan;

    fn fixture(name: &str) -> Disk {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/smartctl")
            .join(name);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        caretaker_shared::smartctl::parse(&text).unwrap_or_else(|e| panic!("{e}"))
    }

    fn value(s: &Samples, metric: &str, label: (&str, &str)) -> Option<f64> {
        s.0.iter()
            .find(|x| x.metric == metric && x.labels.get(label.0).map(String::as_str) == Some(label.1))
            .map(|x| x.value)
    }

    #[test]
    fn ata_disk_samples() {
        let d = fixture("ata/seagate-st3500418as-reallocated-304.json");
        let mut s = Samples::default();
        disk_samples(&d, &mut s);
        assert_eq!(
            value(
                &s,
                "caretaker_disk_ata_attribute_raw",
                ("attribute", "reallocated_sectors")
            ),
            Some(304.0)
        );
        assert_eq!(
            value(&s, "caretaker_disk_health_verdict", ("verdict", "warning")),
            Some(1.0)
        );
        assert_eq!(
            value(&s, "caretaker_disk_health_verdict", ("verdict", "healthy")),
            Some(0.0)
        );
        crate::collectors::assert_on_the_wire(s.0);
    }

    #[test]
    fn crc_errors_alone_report_a_healthy_disk() {
        let d = fixture("ata/wdc-wd2003fyys-crc-3118119.json");
        let mut s = Samples::default();
        disk_samples(&d, &mut s);
        // Not a warning (that would open a disk-wear finding) and no reason...
        assert_eq!(
            value(&s, "caretaker_disk_health_verdict", ("verdict", "healthy")),
            Some(1.0)
        );
        assert_eq!(
            value(&s, "caretaker_disk_health_verdict", ("verdict", "warning")),
            Some(0.0)
        );
        assert_eq!(value(&s, "caretaker_disk_verdict_reasons", ("disk", &d.key)), Some(0.0));
        // ...but the counter itself still goes out, for the cable rules.
        assert_eq!(
            value(&s, "caretaker_disk_ata_attribute_raw", ("attribute", "udma_crc_errors")),
            Some(3_118_119.0)
        );
    }

    #[test]
    fn nvme_bits_and_wear() {
        let d = fixture("nvme/samsung-mzwll3t2hajq-critical-warning-failing.json");
        let mut s = Samples::default();
        disk_samples(&d, &mut s);
        assert_eq!(
            value(
                &s,
                "caretaker_disk_nvme_critical_warning",
                ("bit", "volatile_backup_failed")
            ),
            Some(1.0)
        );
        assert_eq!(
            value(&s, "caretaker_disk_nvme_critical_warning", ("bit", "temperature")),
            Some(0.0)
        );
        assert_eq!(
            value(&s, "caretaker_disk_health_verdict", ("verdict", "failing")),
            Some(1.0)
        );
    }

    #[test]
    fn a_failed_scan_fails_the_collector_but_keeps_its_samples() {
        let state = Arc::new(SmartState::default());
        let mut c = Smart::new(state.clone());
        let mut s = Samples::default();
        assert!(c.collect(&mut s).is_ok(), "no scan yet is not a failure");
        state.publish(DiskScan {
            scanned_at_ms: 1_000,
            disks: vec![],
            error: Some("smartctl not found".into()),
        });
        let e = c.collect(&mut s).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("smartctl not found"), "{e}");
        assert_eq!(value(&s, "caretaker_disk_scan_success", ("", "")), None);
        assert!(
            s.0.iter()
                .any(|x| x.metric == "caretaker_disk_scan_success" && x.value == 0.0)
        );
    }
}
