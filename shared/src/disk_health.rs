//! One disk's health as Caretaker sees it, and the verdict both sides agree on.
//!
//! The agent turns smartctl's JSON ([`crate::smartctl`]) into a [`Disk`] and
//! sends it; the collector stores it, and both call [`verdict`] so the queue,
//! the agent's `disk-health` command and the dashboards never disagree.
//!
//! # Why these rules
//! - **Manufacturer verdict first.** `smart_status.passed == false`, a
//!   pre-fail attribute with `when_failed == "now"`, smartctl exit bit 3 (disk
//!   failing) or bit 4 (pre-fail attribute at or below threshold), and NVMe
//!   `critical_warning` bits other than temperature are the drive saying it is
//!   failing: verdict `failing`. So is a drive whose most recent self-test
//!   failed: it could not read its own surface.
//! - **Backblaze's five.** Backblaze investigates a drive when the raw value of
//!   5 (reallocated sectors), 187 (reported uncorrectable), 188 (command
//!   timeout), 197 (current pending) or 198 (offline uncorrectable) is above
//!   zero (Backblaze Drive Stats, "What SMART stats indicate hard drive
//!   failures?"). Each non-zero one is a `warning` reason here, as are 196
//!   (reallocation events) and 10 (spin retries). Counts alone do not make a
//!   disk `failing`: Pinheiro et al. (Google, FAST 2007) found over half the
//!   failed drives showed none of these signals, and many drives live for
//!   years with a stable small count. Whether a count *rises* is the
//!   collector's question (it holds the history); the verdict describes one
//!   reading.
//! - **CRC errors are the link's** (`shared/DISK-HEALTH.md` rule 4). 199 (UDMA
//!   CRC errors) and the SATA phy ICRC counter count transfers the interface
//!   had to retry: a cable, connector or backplane fault, not wear of the
//!   medium. They are kept visible as [`Verdict::link`] notes ([`Reason::CABLE`])
//!   and are never a reason and never raise the level: a customer told the
//!   disk is worn swaps a good drive and keeps the bad cable.
//! - **Vendor-packed raw values.** Seagate packs several counters into the
//!   48-bit raw value of 1, 7, 188 and 195. 1, 7 and 195 are marked not
//!   comparable and never judged; 188 is split into its three 16-bit counters
//!   and the largest is used. Attributes whose raw string smartctl already
//!   decoded (`"25 (Min/Max 17/41)"`, `"2111 (12437 0)"`) use the first number.
//! - **NVMe** (NVM Express base specification, SMART/Health log 02h): spare
//!   below threshold and critical warnings are `failing`; `media_errors > 0`
//!   (unrecovered data integrity errors) and `percentage_used >= 70` (most of
//!   the rated endurance used) are `warning`. `num_err_log_entries` is noisy
//!   on healthy drives and only recorded.
//! - **SCSI/SAS**: a grown defect list or uncorrected errors in the error
//!   counter log are `warning`.
//! - **Unknown** when there is no health data: smartctl could not open the
//!   device, the disk was asleep and skipped, or the device (a RAID volume, a
//!   virtio disk, a USB bridge without pass-through) has no SMART. Never
//!   `healthy` by default.
//!
//! The verdict is a pure function of one reading: it is never sticky.

use serde::{Deserialize, Serialize};

/// How a disk is attached, as smartctl names the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Ata,
    Nvme,
    Scsi,
    #[default]
    Unknown,
}

/// Whether smartctl could read the device at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ReadState {
    /// Health data was read.
    #[default]
    Ok,
    /// The disk was in standby and was not woken (`--nocheck=standby`).
    Standby,
    /// smartctl could not open or talk to the device (permission, missing
    /// device, unknown type, bridge without pass-through).
    Unreadable,
    /// The device answered but carries no SMART/health data (RAID volume,
    /// virtual disk, "device lacks SMART capability").
    Unsupported,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    #[default]
    Healthy,
    Warning,
    Failing,
    Unknown,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Healthy => "healthy",
            Level::Warning => "warning",
            Level::Failing => "failing",
            Level::Unknown => "unknown",
        }
    }

    pub const ALL: [Level; 4] = [Level::Healthy, Level::Warning, Level::Failing, Level::Unknown];
}

/// One machine-readable reason behind a verdict, e.g. `reallocated_sectors=24`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reason {
    pub code: String,
    /// The value that triggered it, when it is a count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<i64>,
    pub level: Level,
}

impl Reason {
    /// Reason codes that point at a cable or backplane rather than the disk.
    pub const CABLE: &'static [&'static str] = &["udma_crc_errors", "sata_phy_crc_errors"];

    fn new(code: &str, value: Option<i64>, level: Level) -> Self {
        Self {
            code: code.to_string(),
            value,
            level,
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.value {
            Some(v) => write!(f, "{}={v}", self.code),
            None => f.write_str(&self.code),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Verdict {
    pub level: Level,
    /// What the level rests on: signs about the disk itself.
    pub reasons: Vec<Reason>,
    /// Signs about the link to the disk (cable, connector, backplane) rather
    /// than the disk: interface CRC errors ([`Reason::CABLE`]), each at level
    /// `warning` for the link. Shown beside the verdict; never counted in its
    /// level.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub link: Vec<Reason>,
}

/// One ATA SMART attribute.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AtaAttribute {
    pub id: u8,
    pub name: String,
    /// Normalized value (vendor scale, usually 100 or 200 when new).
    pub value: u16,
    pub worst: u16,
    pub threshold: u16,
    /// The raw 48-bit value as smartctl gives it.
    pub raw: u64,
    /// smartctl's own rendering of the raw value (`"25 (Min/Max 17/41)"`).
    pub raw_string: String,
    /// The count Caretaker compares, or `None` when the raw value is
    /// vendor-packed and not comparable (Seagate 1, 7, 195).
    pub decoded: Option<u64>,
    pub prefailure: bool,
    /// `""`, `"past"` or `"now"`.
    pub when_failed: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SelfTest {
    /// "Short offline", "Extended offline", ...
    pub kind: String,
    pub status: String,
    pub passed: Option<bool>,
    pub lifetime_hours: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct AtaHealth {
    pub attributes: Vec<AtaAttribute>,
    /// Errors in the ATA error log (summary or extended comprehensive log).
    pub error_log_count: Option<u64>,
    /// Self-test log, most recent first.
    pub self_tests: Vec<SelfTest>,
    /// SATA phy event counter 1 ("Command failed due to ICRC error").
    pub sata_phy_crc_errors: Option<u64>,
}

impl AtaHealth {
    pub fn attribute(&self, id: u8) -> Option<&AtaAttribute> {
        self.attributes.iter().find(|a| a.id == id)
    }
}

/// NVMe `critical_warning` bits (SMART/Health log 02h, byte 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NvmeWarning {
    SpareBelowThreshold,
    Temperature,
    ReliabilityDegraded,
    MediaReadOnly,
    VolatileBackupFailed,
    PersistentMemoryReadOnly,
    /// Bits 6-7, reserved in the specification.
    Reserved,
}

impl NvmeWarning {
    /// Decodes the byte bit by bit.
    pub fn decode(byte: u8) -> Vec<NvmeWarning> {
        use NvmeWarning::*;
        let bits = [
            SpareBelowThreshold,
            Temperature,
            ReliabilityDegraded,
            MediaReadOnly,
            VolatileBackupFailed,
            PersistentMemoryReadOnly,
        ];
        let mut out = set_bits(byte, &bits);
        if byte & 0xC0 != 0 {
            out.push(Reserved);
        }
        out
    }

    pub fn as_str(self) -> &'static str {
        match self {
            NvmeWarning::SpareBelowThreshold => "spare_below_threshold",
            NvmeWarning::Temperature => "temperature",
            NvmeWarning::ReliabilityDegraded => "reliability_degraded",
            NvmeWarning::MediaReadOnly => "media_read_only",
            NvmeWarning::VolatileBackupFailed => "volatile_backup_failed",
            NvmeWarning::PersistentMemoryReadOnly => "persistent_memory_read_only",
            NvmeWarning::Reserved => "reserved",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct NvmeHealth {
    pub critical_warning: u8,
    pub critical_warnings: Vec<NvmeWarning>,
    pub temperature_c: Option<i64>,
    /// Percent of spare capacity left.
    pub available_spare: Option<u8>,
    pub available_spare_threshold: Option<u8>,
    /// Percent of rated endurance used; may exceed 100 (capped at 255).
    pub percentage_used: Option<u8>,
    pub media_errors: Option<u64>,
    pub num_err_log_entries: Option<u64>,
    pub unsafe_shutdowns: Option<u64>,
    pub power_on_hours: Option<u64>,
    /// In units of 512,000 bytes, as the log counts them.
    pub data_units_written: Option<u64>,
    pub data_units_read: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ScsiHealth {
    pub grown_defects: Option<u64>,
    pub read_uncorrected: Option<u64>,
    pub write_uncorrected: Option<u64>,
    pub verify_uncorrected: Option<u64>,
    pub start_stop_cycles: Option<u64>,
    pub start_stop_cycles_rated: Option<u64>,
    pub load_unload_cycles: Option<u64>,
    pub load_unload_cycles_rated: Option<u64>,
}

impl ScsiHealth {
    pub fn uncorrected_total(&self) -> Option<u64> {
        let parts = [self.read_uncorrected, self.write_uncorrected, self.verify_uncorrected];
        parts.iter().any(Option::is_some).then(|| parts.iter().flatten().sum())
    }
}

/// The bits of smartctl's exit status (smartctl(8), "RETURN VALUES").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExitBit {
    /// Bit 0: command line did not parse.
    CommandLineError,
    /// Bit 1: device open failed, or the device is in a low-power mode and was skipped.
    DeviceOpenFailed,
    /// Bit 2: some SMART or other ATA command to the disk failed, or a checksum error.
    SmartCommandFailed,
    /// Bit 3: SMART status check returned "DISK FAILING".
    DiskFailing,
    /// Bit 4: pre-fail attributes at or below threshold.
    PrefailAtThreshold,
    /// Bit 5: attributes at or below threshold some time in the past.
    ThresholdInPast,
    /// Bit 6: the device error log contains errors.
    ErrorLogHasErrors,
    /// Bit 7: the self-test log contains errors.
    SelfTestErrors,
}

impl ExitBit {
    pub fn decode(status: u8) -> Vec<ExitBit> {
        use ExitBit::*;
        set_bits(
            status,
            &[
                CommandLineError,
                DeviceOpenFailed,
                SmartCommandFailed,
                DiskFailing,
                PrefailAtThreshold,
                ThresholdInPast,
                ErrorLogHasErrors,
                SelfTestErrors,
            ],
        )
    }
}

/// The flags of `table` whose bit (by position, bit 0 first) is set in `byte`.
fn set_bits<T: Copy>(byte: u8, table: &[T]) -> Vec<T> {
    table
        .iter()
        .enumerate()
        .filter(|(i, _)| byte & (1 << i) != 0)
        .map(|(_, t)| *t)
        .collect()
}

/// One disk as read by smartctl, in Caretaker's own terms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Disk {
    /// Stable identity: `wwn-0x…`, else `serial-<model>-<serial>`, else
    /// `dev-<name>` (the last only when the drive gave neither).
    pub key: String,
    /// The device name smartctl was given (`/dev/sda`, `/dev/bus/0`).
    pub device: String,
    /// smartctl's device type (`sat`, `nvme`, `megaraid,1`, ...).
    pub device_type: String,
    pub protocol: Protocol,
    pub model: String,
    pub serial: String,
    pub wwn: String,
    pub firmware: String,
    pub capacity_bytes: Option<u64>,
    /// 0 for solid state; `None` when unknown.
    pub rotation_rpm: Option<u32>,
    pub state: ReadState,
    /// smartctl's own messages (errors and warnings), joined.
    pub message: String,
    pub exit_status: u8,
    pub exit_bits: Vec<ExitBit>,
    pub smart_passed: Option<bool>,
    pub power_on_hours: Option<u64>,
    pub temperature_c: Option<i64>,
    /// The drive's own trip point (SCSI `drive_trip`, ATA `op_limit_max`).
    pub temperature_trip_c: Option<i64>,
    pub ata: Option<AtaHealth>,
    pub nvme: Option<NvmeHealth>,
    pub scsi: Option<ScsiHealth>,
    /// smartctl's version, e.g. `7.3`.
    pub smartctl_version: String,
    pub verdict: Verdict,
}

/// Builds the stable key of a disk from what it told us.
pub fn disk_key(wwn: &str, model: &str, serial: &str, device: &str) -> String {
    let clean = |s: &str| -> String {
        s.trim()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '.' { c } else { '_' })
            .collect()
    };
    if !wwn.is_empty() {
        format!("wwn-{}", clean(wwn))
    } else if !serial.trim().is_empty() {
        format!("serial-{}-{}", clean(model), clean(serial))
    } else {
        format!("dev-{}", clean(device.trim_start_matches("/dev/")))
    }
}

/// The ATA attributes judged on their raw count, with the name each goes by
/// in reasons, metrics (`attribute` label) and the collector's history.
pub const KEY_ATA_ATTRIBUTES: &[(u8, &str)] = &[
    (5, "reallocated_sectors"),
    (10, "spin_retries"),
    (187, "reported_uncorrectable"),
    (188, "command_timeouts"),
    (196, "reallocation_events"),
    (197, "pending_sectors"),
    (198, "offline_uncorrectable"),
    (199, "udma_crc_errors"),
];

/// Decodes an attribute's comparable count from its raw value.
pub fn decode_raw(id: u8, model: &str, raw: u64, raw_string: &str) -> Option<u64> {
    let seagate = is_seagate(model);
    if seagate && matches!(id, 1 | 7 | 195) {
        return None;
    }
    if seagate && id == 188 && raw > 0xFFFF {
        // Three 16-bit counters of timeouts over successively longer limits;
        // the largest is the number of commands that timed out at all.
        let parts = [raw & 0xFFFF, (raw >> 16) & 0xFFFF, (raw >> 32) & 0xFFFF];
        return parts.into_iter().max();
    }
    // smartctl renders decoded raw values as "<count> (<extra>)" or
    // "<a> <b> <c>"; the first number is the count.
    let first = raw_string.split_whitespace().next().unwrap_or("");
    match first.parse::<u64>() {
        Ok(v) if first.len() != raw_string.trim().len() => Some(v),
        _ => Some(raw),
    }
}

fn is_seagate(model: &str) -> bool {
    let m = model.trim();
    m.starts_with("ST") || m.to_ascii_lowercase().starts_with("seagate")
}

/// NVMe `percentage_used` from which the drive is called worn.
pub const NVME_WEAR_WARNING_PERCENT: u8 = 70;

/// Judges one reading. Pure: the same data always gives the same verdict.
pub fn verdict(d: &Disk) -> Verdict {
    if d.state != ReadState::Ok {
        let code = match d.state {
            ReadState::Standby => "standby_skipped",
            ReadState::Unreadable => "unreadable",
            ReadState::Unsupported => "no_smart_data",
            ReadState::Ok => "ok",
        };
        return Verdict {
            level: Level::Unknown,
            reasons: vec![Reason::new(code, None, Level::Unknown)],
            link: Vec::new(),
        };
    }
    let mut r: Vec<Reason> = Vec::new();
    // The link's signs: kept apart from the disk's reasons.
    let mut link: Vec<Reason> = Vec::new();
    let fail = |r: &mut Vec<Reason>, code: &str, v: Option<i64>| r.push(Reason::new(code, v, Level::Failing));
    let warn = |r: &mut Vec<Reason>, code: &str, v: Option<i64>| r.push(Reason::new(code, v, Level::Warning));

    if d.smart_passed == Some(false) {
        fail(&mut r, "smart_status_failed", None);
    }
    if d.exit_bits.contains(&ExitBit::DiskFailing) && d.smart_passed != Some(false) {
        fail(&mut r, "smartctl_disk_failing", None);
    }
    if d.exit_bits.contains(&ExitBit::PrefailAtThreshold) {
        fail(&mut r, "prefail_attribute_at_threshold", None);
    }
    if d.exit_bits.contains(&ExitBit::ThresholdInPast) {
        warn(&mut r, "attribute_at_threshold_in_past", None);
    }
    if d.exit_bits.contains(&ExitBit::ErrorLogHasErrors) && d.ata.as_ref().and_then(|a| a.error_log_count).is_none() {
        warn(&mut r, "error_log_has_errors", None);
    }
    if d.exit_bits.contains(&ExitBit::SelfTestErrors) && d.ata.as_ref().is_none_or(|a| a.self_tests.is_empty()) {
        warn(&mut r, "self_test_log_has_errors", None);
    }

    if let Some(ata) = &d.ata {
        for a in &ata.attributes {
            match a.when_failed.as_str() {
                "now" if a.prefailure => fail(&mut r, &format!("attribute_{}_failing_now", a.id), None),
                "now" | "past" => warn(&mut r, &format!("attribute_{}_failed_{}", a.id, a.when_failed), None),
                _ => {}
            }
        }
        for (id, code) in KEY_ATA_ATTRIBUTES {
            if let Some(v) = ata.attribute(*id).and_then(|a| a.decoded).filter(|v| *v > 0) {
                let to = if Reason::CABLE.contains(code) {
                    &mut link
                } else {
                    &mut r
                };
                warn(to, code, Some(v as i64));
            }
        }
        if let Some(n) = ata.error_log_count.filter(|n| *n > 0) {
            warn(&mut r, "ata_error_log_entries", Some(n as i64));
        }
        if let Some(n) = ata.sata_phy_crc_errors.filter(|n| *n > 0) {
            warn(&mut link, "sata_phy_crc_errors", Some(n as i64));
        }
        let failed_tests = ata.self_tests.iter().filter(|t| t.passed == Some(false)).count();
        if ata.self_tests.first().is_some_and(|t| t.passed == Some(false)) {
            fail(&mut r, "last_self_test_failed", None);
        } else if failed_tests > 0 {
            warn(&mut r, "self_test_failures_in_log", Some(failed_tests as i64));
        }
    }

    if let Some(n) = &d.nvme {
        for w in &n.critical_warnings {
            let code = format!("nvme_critical_warning_{}", w.as_str());
            if *w == NvmeWarning::Temperature {
                // A temperature excursion is about airflow, not the drive's media.
                warn(&mut r, &code, None);
            } else {
                fail(&mut r, &code, None);
            }
        }
        if let (Some(spare), Some(th)) = (n.available_spare, n.available_spare_threshold)
            && spare < th
            && !n.critical_warnings.contains(&NvmeWarning::SpareBelowThreshold)
        {
            fail(&mut r, "nvme_available_spare_below_threshold", Some(i64::from(spare)));
        }
        if let Some(m) = n.media_errors.filter(|m| *m > 0) {
            warn(&mut r, "nvme_media_errors", Some(m as i64));
        }
        if let Some(p) = n.percentage_used.filter(|p| *p >= NVME_WEAR_WARNING_PERCENT) {
            warn(&mut r, "nvme_percentage_used", Some(i64::from(p)));
        }
    }

    if let Some(s) = &d.scsi {
        if let Some(g) = s.grown_defects.filter(|g| *g > 0) {
            warn(&mut r, "scsi_grown_defects", Some(g as i64));
        }
        if let Some(u) = s.uncorrected_total().filter(|u| *u > 0) {
            warn(&mut r, "scsi_uncorrected_errors", Some(u as i64));
        }
    }

    if let (Some(t), Some(trip)) = (d.temperature_c, d.temperature_trip_c)
        && trip > 0
        && t >= trip
    {
        warn(&mut r, "temperature_at_trip_point", Some(t));
    }

    // The level is the disk's: the link's notes never raise it.
    let level = r.iter().map(|x| x.level).max().unwrap_or(Level::Healthy);
    Verdict {
        level,
        reasons: r,
        link,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn nvme_critical_warning_is_decoded_bit_by_bit() {
        assert_eq!(NvmeWarning::decode(0), vec![]);
        assert_eq!(NvmeWarning::decode(16), vec![NvmeWarning::VolatileBackupFailed]);
        assert_eq!(
            NvmeWarning::decode(0b0000_0101),
            vec![NvmeWarning::SpareBelowThreshold, NvmeWarning::ReliabilityDegraded]
        );
        assert_eq!(NvmeWarning::decode(0x80), vec![NvmeWarning::Reserved]);
        assert_eq!(NvmeWarning::decode(0x3F).len(), 6);
    }

    #[test]
    fn exit_status_is_decoded_bit_by_bit() {
        assert_eq!(ExitBit::decode(0), vec![]);
        assert_eq!(
            ExitBit::decode(216),
            vec![
                ExitBit::DiskFailing,
                ExitBit::PrefailAtThreshold,
                ExitBit::ErrorLogHasErrors,
                ExitBit::SelfTestErrors
            ]
        );
        assert_eq!(ExitBit::decode(2), vec![ExitBit::DeviceOpenFailed]);
    }

    #[test]
    fn seagate_packed_raw_values() {
        // 0x000C_000C_000C: three counters of 12.
        assert_eq!(
            decode_raw(188, "ST16000NM001G-2KK103", 51_540_393_996, "51540393996"),
            Some(12)
        );
        assert_eq!(decode_raw(188, "ST3000NM0033", 17_180_131_332, "17180131332"), Some(4));
        assert_eq!(decode_raw(188, "Micron_5300", 29, "29"), Some(29));
        assert_eq!(decode_raw(1, "ST3500418AS", 234_151_754, "234151754"), None);
        assert_eq!(decode_raw(7, "ST3500418AS", 12_834_215_976_973, "x"), None);
        assert_eq!(decode_raw(1, "WDC WD20EFRX", 0, "0"), Some(0));
        assert_eq!(decode_raw(196, "", 53_416_508_262_463, "2111 (12437 0)"), Some(2111));
        assert_eq!(decode_raw(194, "HGST", 176_094_773_273, "25 (Min/Max 17/41)"), Some(25));
        assert_eq!(decode_raw(188, "ST6000NM0115", 0, "0 0 0"), Some(0));
    }

    #[test]
    fn keys_prefer_wwn_then_serial() {
        assert_eq!(
            disk_key("5 000c50 0a1b2c3d4", "M", "S", "/dev/sda"),
            "wwn-5_000c50_0a1b2c3d4"
        );
        assert_eq!(disk_key("", "WDC WD20", "WX1", "/dev/sda"), "serial-WDC_WD20-WX1");
        assert_eq!(disk_key("", "", " ", "/dev/sda"), "dev-sda");
    }

    fn ok_disk() -> Disk {
        Disk {
            state: ReadState::Ok,
            smart_passed: Some(true),
            ..Disk::default()
        }
    }

    #[test]
    fn nvme_temperature_only_is_a_warning_other_bits_fail() {
        let mut d = ok_disk();
        d.nvme = Some(NvmeHealth {
            critical_warning: 2,
            critical_warnings: NvmeWarning::decode(2),
            ..NvmeHealth::default()
        });
        assert_eq!(verdict(&d).level, Level::Warning);
        d.nvme = Some(NvmeHealth {
            critical_warning: 1,
            critical_warnings: NvmeWarning::decode(1),
            available_spare: Some(5),
            available_spare_threshold: Some(10),
            ..NvmeHealth::default()
        });
        let v = verdict(&d);
        assert_eq!(v.level, Level::Failing);
        assert_eq!(v.reasons.len(), 1, "{:?}", v.reasons);
    }

    #[test]
    fn spare_below_threshold_without_the_bit_still_fails() {
        let mut d = ok_disk();
        d.nvme = Some(NvmeHealth {
            available_spare: Some(3),
            available_spare_threshold: Some(10),
            ..NvmeHealth::default()
        });
        let v = verdict(&d);
        assert_eq!(v.level, Level::Failing);
        assert_eq!(v.reasons[0].to_string(), "nvme_available_spare_below_threshold=3");
    }

    fn with_attributes(values: &[(u8, u64)]) -> Disk {
        let attribute = |(id, v): &(u8, u64)| AtaAttribute {
            id: *id,
            name: String::new(),
            value: 100,
            worst: 100,
            threshold: 0,
            raw: *v,
            raw_string: v.to_string(),
            decoded: Some(*v),
            prefailure: false,
            when_failed: String::new(),
        };
        Disk {
            protocol: Protocol::Ata,
            ata: Some(AtaHealth {
                attributes: values.iter().map(attribute).collect(),
                ..AtaHealth::default()
            }),
            ..ok_disk()
        }
    }

    #[test]
    fn crc_errors_alone_are_a_link_note_not_disk_wear() {
        let mut d = with_attributes(&[(5, 0), (197, 0), (199, 40)]);
        d.ata.as_mut().unwrap().sata_phy_crc_errors = Some(7);
        let v = verdict(&d);
        assert_eq!(v.level, Level::Healthy, "{v:?}");
        assert!(v.reasons.is_empty(), "{v:?}");
        let link: Vec<String> = v.link.iter().map(|r| r.to_string()).collect();
        assert_eq!(link, ["udma_crc_errors=40", "sata_phy_crc_errors=7"]);
        // The note travels with the verdict's JSON.
        let json = serde_json::to_value(&v).unwrap();
        assert_eq!(json["link"][0]["code"], "udma_crc_errors");
        assert_eq!(serde_json::from_value::<Verdict>(json).unwrap(), v);
    }

    #[test]
    fn crc_errors_beside_wear_leave_the_wear_reasons_alone() {
        let v = verdict(&with_attributes(&[(5, 24), (199, 40)]));
        assert_eq!(v.level, Level::Warning);
        let reasons: Vec<String> = v.reasons.iter().map(|r| r.to_string()).collect();
        assert_eq!(reasons, ["reallocated_sectors=24"]);
        assert_eq!(v.link.len(), 1);
        // Without CRC errors there is no link note, and none in the JSON: a
        // verdict from before the field reads the same.
        let v = verdict(&with_attributes(&[(5, 24)]));
        assert!(v.link.is_empty());
        let json = serde_json::to_value(&v).unwrap();
        assert!(json.get("link").is_none(), "{json}");
        assert_eq!(
            serde_json::from_str::<Verdict>(r#"{"level":"warning","reasons":[]}"#)
                .unwrap()
                .link,
            vec![]
        );
    }

    #[test]
    fn unread_disks_are_unknown_never_healthy() {
        for s in [ReadState::Standby, ReadState::Unreadable, ReadState::Unsupported] {
            let d = Disk {
                state: s,
                ..Disk::default()
            };
            assert_eq!(verdict(&d).level, Level::Unknown);
        }
    }
}
