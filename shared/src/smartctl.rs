//! Reads smartctl's JSON output (`smartctl --json`, smartmontools ≥ 7, and the
//! 0.1 format of 6.7) into a [`Disk`].
//!
//! smartctl's JSON is mirrored here by private `Raw*` types that know only the
//! fields Caretaker uses; everything else is ignored, so newer smartctl
//! versions keep parsing. A document that is not JSON, or is JSON but not
//! smartctl's, is an error naming where it went wrong — never a panic and
//! never a "healthy" disk.

use serde::Deserialize;

use crate::disk_health::{
    AtaAttribute, AtaHealth, Disk, ExitBit, NvmeHealth, NvmeWarning, Protocol, ReadState, ScsiHealth, SelfTest,
    decode_raw, disk_key, verdict,
};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SmartctlError {
    #[error("not JSON (line {line}, column {column}): {reason}")]
    NotJson { line: usize, column: usize, reason: String },
    #[error("not smartctl JSON output: {0}")]
    NotSmartctl(String),
    #[error("{path}: {reason}")]
    Field { path: String, reason: String },
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawDoc {
    smartctl: Option<RawSmartctl>,
    device: RawDevice,
    model_name: Option<String>,
    scsi_model_name: Option<String>,
    vendor: Option<String>,
    product: Option<String>,
    scsi_vendor: Option<String>,
    scsi_product: Option<String>,
    serial_number: Option<String>,
    wwn: Option<RawWwn>,
    logical_unit_id: Option<String>,
    nvme_namespaces: Vec<RawNamespace>,
    firmware_version: Option<String>,
    scsi_revision: Option<String>,
    revision: Option<String>,
    user_capacity: Option<RawCapacity>,
    nvme_total_capacity: Option<u64>,
    rotation_rate: Option<u32>,
    smart_status: Option<RawStatus>,
    power_on_time: Option<RawPowerOn>,
    temperature: Option<RawTemperature>,
    power_mode: Option<serde_json::Value>,
    ata_smart_attributes: Option<RawAttributes>,
    ata_smart_error_log: Option<RawErrorLog>,
    ata_smart_self_test_log: Option<RawSelfTestLog>,
    sata_phy_event_counters: Option<RawPhy>,
    nvme_smart_health_information_log: Option<RawNvme>,
    scsi_grown_defect_list: Option<u64>,
    scsi_error_counter_log: Option<RawScsiErrors>,
    scsi_start_stop_cycle_counter: Option<RawStartStop>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawSmartctl {
    version: Vec<u32>,
    messages: Vec<RawMessage>,
    exit_status: u8,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawMessage {
    string: String,
    severity: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawDevice {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    protocol: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawWwn {
    naa: u64,
    oui: u64,
    id: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawNamespace {
    eui64: Option<RawEui>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawEui {
    oui: u64,
    ext_id: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawCapacity {
    bytes: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawStatus {
    passed: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawPowerOn {
    hours: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawTemperature {
    current: Option<i64>,
    drive_trip: Option<i64>,
    op_limit_max: Option<i64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawAttributes {
    table: Vec<RawAttribute>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawAttribute {
    id: u8,
    name: String,
    value: u16,
    worst: u16,
    thresh: u16,
    when_failed: String,
    flags: RawFlags,
    raw: RawValue,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawFlags {
    prefailure: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawValue {
    value: u64,
    string: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawErrorLog {
    summary: Option<RawCount>,
    extended: Option<RawCount>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawCount {
    count: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawSelfTestLog {
    standard: Option<RawSelfTestTable>,
    extended: Option<RawSelfTestTable>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawSelfTestTable {
    table: Vec<RawSelfTest>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawSelfTest {
    #[serde(rename = "type")]
    kind: RawNamed,
    status: RawTestStatus,
    lifetime_hours: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawNamed {
    string: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawTestStatus {
    string: String,
    passed: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawPhy {
    table: Vec<RawPhyCounter>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawPhyCounter {
    id: u32,
    value: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawNvme {
    critical_warning: u8,
    temperature: Option<i64>,
    available_spare: Option<u8>,
    available_spare_threshold: Option<u8>,
    percentage_used: Option<u8>,
    media_errors: Option<u64>,
    num_err_log_entries: Option<u64>,
    unsafe_shutdowns: Option<u64>,
    power_on_hours: Option<u64>,
    data_units_written: Option<u64>,
    data_units_read: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawScsiErrors {
    read: Option<RawScsiCounter>,
    write: Option<RawScsiCounter>,
    verify: Option<RawScsiCounter>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawScsiCounter {
    total_uncorrected_errors: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawStartStop {
    accumulated_start_stop_cycles: Option<u64>,
    specified_cycle_count_over_device_lifetime: Option<u64>,
    accumulated_load_unload_cycles: Option<u64>,
    specified_load_unload_count_over_device_lifetime: Option<u64>,
}

/// Parses one `smartctl --json` document and judges it.
pub fn parse(text: &str) -> Result<Disk, SmartctlError> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| SmartctlError::NotJson {
        line: e.line(),
        column: e.column(),
        reason: e.to_string(),
    })?;
    let is_smartctl = value
        .as_object()
        .is_some_and(|o| o.get("smartctl").is_some_and(serde_json::Value::is_object));
    if !is_smartctl {
        return Err(SmartctlError::NotSmartctl(
            "the document has no \"smartctl\" object (was --json given?)".into(),
        ));
    }
    let raw: RawDoc = serde_path_to_error::deserialize(value).map_err(|e| SmartctlError::Field {
        path: e.path().to_string(),
        reason: e.inner().to_string(),
    })?;
    let mut disk = convert(raw);
    disk.verdict = verdict(&disk);
    Ok(disk)
}

fn nonempty(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

fn convert(raw: RawDoc) -> Disk {
    let sc = raw.smartctl.unwrap_or_default();
    let exit_bits = ExitBit::decode(sc.exit_status);
    let message = sc
        .messages
        .iter()
        .map(|m| m.string.trim())
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    let protocol = match raw.device.protocol.to_ascii_lowercase().as_str() {
        "ata" => Protocol::Ata,
        "nvme" => Protocol::Nvme,
        "scsi" => Protocol::Scsi,
        _ => Protocol::Unknown,
    };
    let model = nonempty(&raw.model_name)
        .or(nonempty(&raw.scsi_model_name))
        .map(String::from)
        .or_else(|| {
            let v = nonempty(&raw.vendor).or(nonempty(&raw.scsi_vendor))?;
            let p = nonempty(&raw.product).or(nonempty(&raw.scsi_product))?;
            Some(format!("{v} {p}"))
        })
        .unwrap_or_default();
    let serial = nonempty(&raw.serial_number).unwrap_or_default().to_string();
    let wwn = if let Some(w) = &raw.wwn {
        format!(
            "0x{:x}{:06x}{:09x}",
            w.naa & 0xF,
            w.oui & 0xFF_FFFF,
            w.id & 0xF_FFFF_FFFF
        )
    } else if let Some(lu) = nonempty(&raw.logical_unit_id) {
        lu.to_ascii_lowercase()
    } else if let Some(e) = raw.nvme_namespaces.iter().find_map(|n| n.eui64.as_ref()) {
        format!("eui.{:06x}{:010x}", e.oui & 0xFF_FFFF, e.ext_id & 0xFF_FFFF_FFFF)
    } else {
        String::new()
    };
    let firmware = nonempty(&raw.firmware_version)
        .or(nonempty(&raw.scsi_revision))
        .or(nonempty(&raw.revision))
        .unwrap_or_default()
        .to_string();

    // The logs may come without the attribute table (`smartctl -l error`).
    let ata_present = raw.ata_smart_attributes.is_some()
        || raw.ata_smart_error_log.is_some()
        || raw.ata_smart_self_test_log.is_some()
        || raw.sata_phy_event_counters.is_some();
    let ata = ata_present.then(|| AtaHealth {
        attributes: raw
            .ata_smart_attributes
            .iter()
            .flat_map(|t| t.table.iter())
            .map(|a| AtaAttribute {
                id: a.id,
                name: a.name.clone(),
                value: a.value,
                worst: a.worst,
                threshold: a.thresh,
                raw: a.raw.value,
                raw_string: a.raw.string.clone(),
                decoded: decode_raw(a.id, &model, a.raw.value, &a.raw.string),
                prefailure: a.flags.prefailure,
                when_failed: a.when_failed.clone(),
            })
            .collect(),
        error_log_count: raw
            .ata_smart_error_log
            .as_ref()
            .and_then(|l| l.extended.as_ref().or(l.summary.as_ref()))
            .and_then(|c| c.count),
        self_tests: raw
            .ata_smart_self_test_log
            .as_ref()
            .and_then(|l| {
                // `-x` gives an (often empty) extended log beside the standard one.
                [l.extended.as_ref(), l.standard.as_ref()]
                    .into_iter()
                    .flatten()
                    .find(|t| !t.table.is_empty())
            })
            .map(|t| {
                t.table
                    .iter()
                    .map(|s| SelfTest {
                        kind: s.kind.string.clone(),
                        status: s.status.string.clone(),
                        passed: s.status.passed,
                        lifetime_hours: s.lifetime_hours,
                    })
                    .collect()
            })
            .unwrap_or_default(),
        sata_phy_crc_errors: raw
            .sata_phy_event_counters
            .as_ref()
            .and_then(|p| p.table.iter().find(|c| c.id == 1))
            .map(|c| c.value),
    });

    let nvme = raw.nvme_smart_health_information_log.as_ref().map(|n| NvmeHealth {
        critical_warning: n.critical_warning,
        critical_warnings: NvmeWarning::decode(n.critical_warning),
        temperature_c: n.temperature,
        available_spare: n.available_spare,
        available_spare_threshold: n.available_spare_threshold,
        percentage_used: n.percentage_used,
        media_errors: n.media_errors,
        num_err_log_entries: n.num_err_log_entries,
        unsafe_shutdowns: n.unsafe_shutdowns,
        power_on_hours: n.power_on_hours,
        data_units_written: n.data_units_written,
        data_units_read: n.data_units_read,
    });

    let scsi = (raw.scsi_grown_defect_list.is_some() || raw.scsi_error_counter_log.is_some()).then(|| {
        let errs = raw.scsi_error_counter_log.as_ref();
        let unc = |c: Option<&RawScsiCounter>| c.and_then(|c| c.total_uncorrected_errors);
        let ss = raw.scsi_start_stop_cycle_counter.as_ref();
        ScsiHealth {
            grown_defects: raw.scsi_grown_defect_list,
            read_uncorrected: unc(errs.and_then(|e| e.read.as_ref())),
            write_uncorrected: unc(errs.and_then(|e| e.write.as_ref())),
            verify_uncorrected: unc(errs.and_then(|e| e.verify.as_ref())),
            start_stop_cycles: ss.and_then(|s| s.accumulated_start_stop_cycles),
            start_stop_cycles_rated: ss.and_then(|s| s.specified_cycle_count_over_device_lifetime),
            load_unload_cycles: ss.and_then(|s| s.accumulated_load_unload_cycles),
            load_unload_cycles_rated: ss.and_then(|s| s.specified_load_unload_count_over_device_lifetime),
        }
    });

    let smart_passed = raw.smart_status.as_ref().and_then(|s| s.passed);
    let has_health = smart_passed.is_some() || ata.is_some() || nvme.is_some() || scsi.is_some();
    let standby = raw
        .power_mode
        .as_ref()
        .and_then(|p| p.get("name"))
        .and_then(serde_json::Value::as_str)
        .is_some_and(|n| n.eq_ignore_ascii_case("standby") || n.eq_ignore_ascii_case("sleep"))
        || sc
            .messages
            .iter()
            .any(|m| m.string.contains("STANDBY mode") || m.string.contains("SLEEP mode"));
    let state = if exit_bits.contains(&ExitBit::DeviceOpenFailed) && standby {
        ReadState::Standby
    } else if exit_bits.contains(&ExitBit::CommandLineError) || exit_bits.contains(&ExitBit::DeviceOpenFailed) {
        ReadState::Unreadable
    } else if !has_health {
        ReadState::Unsupported
    } else {
        ReadState::Ok
    };
    let message = if message.is_empty() && state == ReadState::Unsupported {
        "smartctl returned no SMART or health data for this device".to_string()
    } else {
        message
    };

    let temp = raw.temperature.as_ref();
    let device = raw.device.name.clone();
    Disk {
        key: disk_key(&wwn, &model, &serial, &device),
        device,
        device_type: raw.device.kind.clone(),
        protocol,
        capacity_bytes: raw
            .user_capacity
            .as_ref()
            .and_then(|c| c.bytes)
            .or(raw.nvme_total_capacity),
        rotation_rpm: raw.rotation_rate,
        state,
        message,
        exit_status: sc.exit_status,
        exit_bits,
        smart_passed,
        power_on_hours: raw
            .power_on_time
            .as_ref()
            .and_then(|p| p.hours)
            .or(nvme.as_ref().and_then(|n| n.power_on_hours)),
        // A drive without a sensor reports 0 °C; that is "unknown", not freezing.
        temperature_c: temp
            .and_then(|t| t.current)
            .or(nvme.as_ref().and_then(|n| n.temperature_c))
            .filter(|t| *t != 0),
        temperature_trip_c: temp.and_then(|t| t.drive_trip.or(t.op_limit_max)).filter(|t| *t > 0),
        ata,
        nvme,
        scsi,
        smartctl_version: sc.version.iter().map(u32::to_string).collect::<Vec<_>>().join("."),
        model,
        serial,
        wwn,
        firmware,
        verdict: Default::default(),
    }
}

/// One device found by `smartctl --scan-open --json`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct ScannedDevice {
    pub name: String,
    /// smartctl's `-d` type for it (`sat`, `nvme`, `megaraid,0`).
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default)]
    pub protocol: String,
    /// Set when `--scan-open` could not open the device.
    #[serde(default)]
    pub open_error: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RawScan {
    smartctl: Option<RawSmartctl>,
    devices: Vec<ScannedDevice>,
}

/// Parses `smartctl --scan-open --json`.
pub fn parse_scan(text: &str) -> Result<Vec<ScannedDevice>, SmartctlError> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| SmartctlError::NotJson {
        line: e.line(),
        column: e.column(),
        reason: e.to_string(),
    })?;
    let raw: RawScan = serde_path_to_error::deserialize(value).map_err(|e| SmartctlError::Field {
        path: e.path().to_string(),
        reason: e.inner().to_string(),
    })?;
    if raw.smartctl.is_none() {
        return Err(SmartctlError::NotSmartctl(
            "the scan output has no \"smartctl\" object".into(),
        ));
    }
    Ok(raw.devices)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_output_is_not_json() {
        let e = parse("smartctl 7.3 2022-02-28 r5338 [x86_64-linux] (local build)\n").err();
        assert!(matches!(e, Some(SmartctlError::NotJson { line: 1, .. })), "{e:?}");
    }

    #[test]
    fn other_json_is_not_smartctl() {
        assert!(matches!(parse("{\"a\":1}"), Err(SmartctlError::NotSmartctl(_))));
        assert!(matches!(parse("[1,2]"), Err(SmartctlError::NotSmartctl(_))));
    }

    #[test]
    fn a_wrong_type_names_its_path() {
        let e = parse(r#"{"smartctl":{"exit_status":0},"ata_smart_attributes":{"table":[{"id":"five"}]}}"#);
        match e {
            Err(SmartctlError::Field { path, .. }) => assert_eq!(path, "ata_smart_attributes.table[0].id"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn scan_output() {
        let text = r#"{"json_format_version":[1,0],"smartctl":{"version":[7,3],"exit_status":0},
            "devices":[{"name":"/dev/sda","info_name":"/dev/sda [SAT]","type":"sat","protocol":"ATA"},
                       {"name":"/dev/bus/0","info_name":"/dev/bus/0 [megaraid_disk_00]","type":"megaraid,0","protocol":"SCSI"},
                       {"name":"/dev/sdb","type":"scsi","protocol":"SCSI","open_error":"Permission denied"}]}"#;
        let d = parse_scan(text).unwrap_or_default();
        assert_eq!(d.len(), 3);
        assert_eq!(d[1].kind, "megaraid,0");
        assert_eq!(d[2].open_error.as_deref(), Some("Permission denied"));
        assert_eq!(parse_scan(r#"{"smartctl":{}}"#), Ok(vec![]));
        assert!(parse_scan("{}").is_err());
    }
}
