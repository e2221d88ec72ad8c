//! The report an agent sends to the collector: the one contract between them.
//!
//! A report is JSON (optionally gzip-compressed on the wire, see
//! `docs/protocol.md`). It is versioned by [`PROTOCOL_VERSION`] and changes only
//! additively: a reader ignores fields it does not know, so a newer agent can
//! talk to an older collector. Each report carries the agent's id and a
//! per-agent sequence number that grows by one per report; the collector
//! applies each (agent, sequence) exactly once.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::catalogue::{self, HOST_LABELS, Source};

/// The wire version this build writes and the newest it reads.
pub const PROTOCOL_VERSION: u32 = 1;

/// Bounds that keep one report from exhausting the collector. They are part of
/// the contract: an agent never produces more.
pub mod limits {
    pub const MAX_SAMPLES: usize = 20_000;
    pub const MAX_EVENTS: usize = 1_000;
    pub const MAX_LABELS: usize = 16;
    pub const MAX_LABEL_VALUE_BYTES: usize = 256;
    pub const MAX_TEXT_BYTES: usize = 4_096;
    pub const MAX_ID_BYTES: usize = 128;
    pub const MAX_DISKS: usize = 1_024;
    pub const MAX_ATTRIBUTES: usize = 256;
    pub const MAX_SELF_TESTS: usize = 64;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Wire version, [`PROTOCOL_VERSION`] when written by this build.
    pub version: u32,
    /// Id the collector gave the agent at enrollment.
    pub agent_id: String,
    /// Per-agent sequence number, starting at 1, one more for every report.
    pub seq: u64,
    /// When collection for this report started (ms since the Unix epoch).
    pub collected_at_ms: i64,
    /// The agent's collection interval, so the collector knows when a host is late.
    pub interval_secs: u32,
    /// Host name as the agent presents it (the `host` label).
    pub host: String,
    /// Operator labels from the agent's config: `customer`, `site`, `role`, ...
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub samples: Vec<Sample>,
    #[serde(default)]
    pub events: Vec<Event>,
    /// Present when the agent's inventory changed or on its first report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inventory: Option<Inventory>,
    /// Present when the agent finished a disk-health scan since its last
    /// report (smartctl runs on its own, slower interval).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disks: Option<DiskScan>,
}

/// The result of one pass of smartctl over the host's disks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct DiskScan {
    /// When the scan finished (ms since the Unix epoch).
    pub scanned_at_ms: i64,
    /// Every device found or configured, read or not (an unreadable one says why).
    #[serde(default)]
    pub disks: Vec<crate::disk_health::Disk>,
    /// Why the scan as a whole failed (smartctl missing, discovery failed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One value of a catalogue metric.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Family name from the catalogue.
    pub metric: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

/// Something that happened on the host (a collector failed, a database went down, ...).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub at_ms: i64,
    /// Machine-readable kind, e.g. `collector_failed`.
    pub kind: String,
    pub severity: Severity,
    pub message: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// What the host is made of. Grows additively as collectors learn more.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Inventory {
    pub hostname: String,
    pub os_name: String,
    pub os_version: String,
    pub kernel: String,
    pub arch: String,
    pub cpu_model: String,
    pub cpu_cores: u32,
    pub memory_bytes: u64,
    #[serde(default)]
    pub filesystems: Vec<FilesystemInfo>,
    #[serde(default)]
    pub network_interfaces: Vec<String>,
    /// `/etc/machine-id`: stays with the OS installation, not the hardware.
    #[serde(default)]
    pub machine_id: String,
    /// Vendor, model, serial and firmware from the DMI (SMBIOS) tables.
    #[serde(default)]
    pub dmi: DmiInfo,
    /// CPU packages (sockets); 0 when unknown.
    #[serde(default)]
    pub cpu_sockets: u32,
    /// Physical cores over all sockets; 0 when unknown. (`cpu_cores` counts logical CPUs.)
    #[serde(default)]
    pub cpu_physical_cores: u32,
    /// Logical CPUs (hardware threads); 0 when unknown.
    #[serde(default)]
    pub cpu_threads: u32,
    /// Memory modules where the host lets them be read (EDAC or dmidecode).
    #[serde(default)]
    pub memory_modules: Vec<MemoryModule>,
    #[serde(default)]
    pub disks: Vec<DiskInfo>,
    /// Physical network interfaces (virtual ones are only in `network_interfaces`).
    #[serde(default)]
    pub nics: Vec<NicInfo>,
    /// Database servers found running on the host.
    #[serde(default)]
    pub databases: Vec<DatabaseServer>,
    /// The baseboard management controller, when the `ipmi` collector read one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bmc: Option<BmcInfo>,
    /// Power supplies as the BMC's FRU data lists them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub power_supplies: Vec<PsuInfo>,
    /// Hardware RAID controllers (MegaRAID/PERC, Smart Array).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub raid_controllers: Vec<RaidControllerInfo>,
    /// Virtual disks (arrays) of the hardware RAID controllers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub virtual_disks: Vec<VirtualDiskInfo>,
    /// [`Inventory::configuration_hash`]: the agent resends the inventory
    /// when it changes. Empty from older agents. A hint only: the collector
    /// compares the configurations themselves ([`Inventory::canonical`]).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub content_hash: String,
}

impl Inventory {
    /// The configuration this inventory describes, in one form: no
    /// `content_hash`, no state (a NIC's link and negotiated speed: a
    /// flapping link is no new configuration), every list in a fixed order
    /// (a reordered list is the same configuration). Two inventories
    /// describe the same configuration exactly when their canonical forms
    /// are equal.
    pub fn canonical(&self) -> Inventory {
        let mut c = self.clone();
        c.content_hash.clear();
        for n in &mut c.nics {
            n.operstate.clear();
            n.speed_mbps = None;
        }
        c.filesystems.sort_by(|a, b| {
            (&a.mountpoint, &a.device, &a.fstype, a.size_bytes).cmp(&(
                &b.mountpoint,
                &b.device,
                &b.fstype,
                b.size_bytes,
            ))
        });
        c.network_interfaces.sort();
        c.memory_modules.sort_by(|a, b| {
            (&a.locator, &a.serial, &a.part_number, a.size_bytes).cmp(&(
                &b.locator,
                &b.serial,
                &b.part_number,
                b.size_bytes,
            ))
        });
        c.disks
            .sort_by(|a, b| (&a.name, &a.serial, &a.wwn).cmp(&(&b.name, &b.serial, &b.wwn)));
        c.nics.sort_by(|a, b| (&a.name, &a.mac).cmp(&(&b.name, &b.mac)));
        c.databases
            .sort_by(|a, b| (&a.kind, a.port, &a.version).cmp(&(&b.kind, b.port, &b.version)));
        c.power_supplies
            .sort_by(|a, b| (&a.name, &a.serial).cmp(&(&b.name, &b.serial)));
        c.raid_controllers
            .sort_by(|a, b| (&a.id, &a.serial).cmp(&(&b.id, &b.serial)));
        c.virtual_disks.sort_by(|a, b| a.id.cmp(&b.id));
        for v in &mut c.virtual_disks {
            v.members.sort();
        }
        c
    }

    /// SHA-256 (hex) of the [canonical](Inventory::canonical) form's JSON
    /// (serde writes fields in declaration order): what `content_hash` holds.
    pub fn configuration_hash(&self) -> String {
        use sha2::{Digest, Sha256};
        let json = serde_json::to_vec(&self.canonical()).unwrap_or_default();
        Sha256::digest(&json).iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// The machine's DMI identity (`/sys/class/dmi/id`). Strings are empty when unknown
/// or unreadable (the serial is readable by root only).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DmiInfo {
    pub sys_vendor: String,
    pub product_name: String,
    pub product_serial: String,
    pub board_vendor: String,
    pub board_name: String,
    pub bios_vendor: String,
    pub bios_version: String,
    pub bios_date: String,
    /// SMBIOS chassis type number as the kernel shows it (`1` other, `17` main server chassis, ...).
    pub chassis_type: String,
}

/// One installed memory module.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MemoryModule {
    /// Slot name, e.g. `DIMM_A1` or `CPU_SrcID#0_MC#0_Chan#0_DIMM#0`.
    pub locator: String,
    pub size_bytes: u64,
    /// Memory type, e.g. `DDR4` or `Registered-DDR4`.
    pub kind: String,
    pub manufacturer: String,
    pub part_number: String,
    pub serial: String,
}

/// One disk. Strings are empty when unknown.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DiskInfo {
    /// Kernel name: `sda`, `nvme0n1`, ...
    pub name: String,
    pub model: String,
    pub serial: String,
    /// World-wide name or other stable id (`naa.…`, `eui.…`).
    pub wwn: String,
    pub firmware: String,
    pub capacity_bytes: u64,
    /// Spinning disk; `None` when unknown.
    pub rotational: Option<bool>,
    /// `nvme`, `sata`, `sas`, `scsi`, `virtio`, `usb`, ... or empty.
    pub interface: String,
    /// Where a disk behind a hardware RAID controller sits: the controller
    /// and its enclosure:slot (`c0 252:3`; Smart Array: `slot2 1I:1:3`).
    /// Empty for a disk the OS sees directly.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub location: String,
}

/// The baseboard management controller (BMC). Strings are empty when unknown.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BmcInfo {
    /// Manufacturer, e.g. `Dell Inc.`, `Super Micro Computer`, or the IPMI manufacturer id.
    pub vendor: String,
    /// Firmware revision, e.g. `7.00.00.171`.
    pub firmware: String,
    /// IPMI version the BMC speaks, e.g. `2.0`.
    pub ipmi_version: String,
    /// IPv4 address of its LAN channel, when readable.
    pub ip: String,
}

/// One power supply, from the BMC's FRU data.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PsuInfo {
    /// The FRU or sensor name, e.g. `PS1`, `Power Supply 2`.
    pub name: String,
    pub manufacturer: String,
    pub model: String,
    pub serial: String,
    /// Rated output, when the FRU says.
    pub capacity_watts: Option<u32>,
}

/// One hardware RAID controller.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RaidControllerInfo {
    /// `c0`, `c1`, ... (storcli/perccli) or `slot2` (ssacli): the `controller` label.
    pub id: String,
    /// `megaraid` (storcli), `perc` (perccli) or `smartarray` (ssacli).
    pub kind: String,
    pub model: String,
    pub serial: String,
    pub firmware: String,
    /// Cache backup: `bbu`, `cachevault`, `capacitor` or empty for none.
    pub cache_backup: String,
    /// Model of the battery or CacheVault module, when known.
    pub cache_backup_model: String,
    /// Cache memory size in bytes, when known.
    pub cache_bytes: Option<u64>,
}

/// One virtual disk (logical drive, array) of a hardware RAID controller.
/// Its state is a metric, not configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct VirtualDiskInfo {
    /// `c0/v0` (storcli) or `slot2/ld1` (ssacli): the `vd` label.
    pub id: String,
    /// `RAID1`, `RAID5`, `RAID10`, `RAID60`, ...
    pub level: String,
    pub size_bytes: u64,
    /// The name the operator gave it, if any.
    pub name: String,
    /// Member disks' locations (`252:3`).
    pub members: Vec<String>,
}

/// One physical network interface.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NicInfo {
    pub name: String,
    pub mac: String,
    /// Link speed in Mb/s; `None` when down or unknown.
    pub speed_mbps: Option<u32>,
    /// Kernel driver, e.g. `ixgbe`.
    pub driver: String,
    /// `up`, `down`, `unknown`, ...
    pub operstate: String,
}

/// A database server process found on the host.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DatabaseServer {
    /// `postgresql`, `mariadb`, `mysql` or `redis`.
    pub kind: String,
    /// e.g. `15.20`; empty when not probed or not recognised.
    pub version: String,
    /// Lowest TCP port it listens on, when known.
    pub port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FilesystemInfo {
    pub mountpoint: String,
    pub device: String,
    pub fstype: String,
    pub size_bytes: u64,
}

/// Why a report could not be read or accepted, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct WireError {
    /// JSON path of the offending field (`.` for the document itself).
    pub path: String,
    pub reason: String,
}

impl WireError {
    fn new(path: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

/// Parses a report from JSON bytes, naming the field path on error.
pub fn decode(bytes: &[u8]) -> Result<Report, WireError> {
    // Fast path: plain serde_json. Only a body that fails is parsed again with
    // path tracking, which costs about a third more.
    if let Ok(r) = serde_json::from_slice(bytes) {
        return Ok(r);
    }
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        // serde_json's message ends with "at line L column C"; keep it, it helps.
        WireError::new(if path.is_empty() { ".".into() } else { path }, inner.to_string())
    })
}

fn check_labels(path: &str, labels: &BTreeMap<String, String>, errors: &mut Vec<WireError>) {
    if labels.len() > limits::MAX_LABELS {
        errors.push(WireError::new(path, format!("more than {} labels", limits::MAX_LABELS)));
    }
    for (k, v) in labels {
        if !is_label_name(k) {
            errors.push(WireError::new(format!("{path}.{k}"), "not a valid label name"));
        }
        if v.len() > limits::MAX_LABEL_VALUE_BYTES {
            errors.push(WireError::new(
                format!("{path}.{k}"),
                format!("value longer than {} bytes", limits::MAX_LABEL_VALUE_BYTES),
            ));
        }
    }
}

/// Prometheus label name: `[a-zA-Z_][a-zA-Z0-9_]*`, not starting with `__`.
pub fn is_label_name(s: &str) -> bool {
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return false,
    }
    !s.starts_with("__") && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Why text with a NUL character is refused: PostgreSQL cannot keep it in a
/// text column, and no name, label or message needs one.
pub const NUL_REASON: &str = "holds a NUL character (\\u0000): text may not contain one";

/// The path of the first string (or object key) in the JSON document
/// `json` that holds a NUL character, as `a.b[2].c` (`.` for the document).
/// JSON can carry one only as the escape `\u0000`, so a document without
/// that sequence is passed over without parsing it again.
pub fn nul_in_text(json: &[u8]) -> Option<String> {
    const ESCAPE: &[u8] = b"\\u0000";
    // Every report goes through here: the common answer is found by one
    // vectorised scan of the body.
    memchr::memmem::find(json, ESCAPE)?;
    let doc: serde_json::Value = serde_json::from_slice(json).ok()?;
    fn walk(v: &serde_json::Value, path: &str) -> Option<String> {
        match v {
            serde_json::Value::String(s) if s.contains('\0') => {
                Some(if path.is_empty() { ".".into() } else { path.into() })
            }
            serde_json::Value::Array(a) => a.iter().enumerate().find_map(|(i, v)| walk(v, &format!("{path}[{i}]"))),
            serde_json::Value::Object(m) => m.iter().find_map(|(k, v)| {
                let here = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                if k.contains('\0') { Some(here) } else { walk(v, &here) }
            }),
            _ => None,
        }
    }
    walk(&doc, "")
}

impl Report {
    /// Checks everything serde cannot: version, bounds, label names, values.
    /// Returns every problem at once, each with its path. Samples of metrics the
    /// catalogue does not know are not an error (a newer agent may send them);
    /// see [`Report::known_samples`].
    pub fn validate(&self) -> Result<(), Vec<WireError>> {
        let mut errors = Vec::new();
        if self.version == 0 || self.version > PROTOCOL_VERSION {
            errors.push(WireError::new(
                "version",
                format!(
                    "unsupported version {} (this build reads 1..={PROTOCOL_VERSION})",
                    self.version
                ),
            ));
        }
        if self.agent_id.is_empty() || self.agent_id.len() > limits::MAX_ID_BYTES {
            errors.push(WireError::new("agent_id", "must be 1 to 128 bytes"));
        }
        if self.seq == 0 {
            errors.push(WireError::new("seq", "must be at least 1"));
        }
        if self.collected_at_ms <= 0 {
            errors.push(WireError::new("collected_at_ms", "must be a positive Unix time in ms"));
        }
        if self.interval_secs == 0 {
            errors.push(WireError::new("interval_secs", "must be at least 1"));
        }
        if self.host.is_empty() || self.host.len() > limits::MAX_LABEL_VALUE_BYTES {
            errors.push(WireError::new("host", "must be 1 to 256 bytes"));
        }
        check_labels("labels", &self.labels, &mut errors);
        if self.samples.len() > limits::MAX_SAMPLES {
            errors.push(WireError::new(
                "samples",
                format!("more than {} samples", limits::MAX_SAMPLES),
            ));
        }
        for (i, s) in self.samples.iter().enumerate() {
            let path = format!("samples[{i}]");
            if !s.value.is_finite() {
                errors.push(WireError::new(format!("{path}.value"), "must be a finite number"));
            }
            check_labels(&format!("{path}.labels"), &s.labels, &mut errors);
            for reserved in HOST_LABELS {
                if s.labels.contains_key(reserved) {
                    errors.push(WireError::new(
                        format!("{path}.labels.{reserved}"),
                        "reserved: the collector sets this label",
                    ));
                }
            }
            if let Some(def) = catalogue::lookup(&s.metric) {
                if def.source != Source::Agent {
                    errors.push(WireError::new(
                        format!("{path}.metric"),
                        "is computed by the collector, not sent",
                    ));
                } else if s.labels.len() != def.labels.len() || def.labels.iter().any(|l| !s.labels.contains_key(*l)) {
                    errors.push(WireError::new(
                        format!("{path}.labels"),
                        format!("{} takes exactly the labels {:?}", def.name, def.labels),
                    ));
                }
            }
        }
        if self.events.len() > limits::MAX_EVENTS {
            errors.push(WireError::new(
                "events",
                format!("more than {} events", limits::MAX_EVENTS),
            ));
        }
        for (i, e) in self.events.iter().enumerate() {
            let path = format!("events[{i}]");
            if e.kind.is_empty() || e.kind.len() > limits::MAX_ID_BYTES {
                errors.push(WireError::new(format!("{path}.kind"), "must be 1 to 128 bytes"));
            }
            if e.message.len() > limits::MAX_TEXT_BYTES {
                errors.push(WireError::new(format!("{path}.message"), "longer than 4096 bytes"));
            }
            check_labels(&format!("{path}.labels"), &e.labels, &mut errors);
        }
        if let Some(scan) = &self.disks {
            check_disks(scan, &mut errors);
        }
        if errors.is_empty() { Ok(()) } else { Err(errors) }
    }

    /// Samples whose metric the catalogue knows; the rest are counted and ignored.
    pub fn known_samples(&self) -> impl Iterator<Item = &Sample> {
        self.samples.iter().filter(|s| catalogue::lookup(&s.metric).is_some())
    }

    /// The value of label `name`, or "" when the agent did not set it.
    pub fn label(&self, name: &str) -> &str {
        self.labels.get(name).map(String::as_str).unwrap_or("")
    }
}

fn check_disks(scan: &DiskScan, errors: &mut Vec<WireError>) {
    if scan.disks.len() > limits::MAX_DISKS {
        errors.push(WireError::new(
            "disks.disks",
            format!("more than {} disks", limits::MAX_DISKS),
        ));
    }
    if scan.scanned_at_ms <= 0 {
        errors.push(WireError::new(
            "disks.scanned_at_ms",
            "must be a positive Unix time in ms",
        ));
    }
    if scan.error.as_ref().is_some_and(|e| e.len() > limits::MAX_TEXT_BYTES) {
        errors.push(WireError::new("disks.error", "longer than 4096 bytes"));
    }
    let mut keys = std::collections::HashSet::new();
    for (i, d) in scan.disks.iter().enumerate() {
        let path = format!("disks.disks[{i}]");
        if d.key.is_empty() || d.key.len() > limits::MAX_LABEL_VALUE_BYTES {
            errors.push(WireError::new(format!("{path}.key"), "must be 1 to 256 bytes"));
        } else if !keys.insert((d.key.as_str(), d.device.as_str(), d.device_type.as_str())) {
            errors.push(WireError::new(format!("{path}.key"), "the same disk is listed twice"));
        }
        for (field, v) in [
            ("device", &d.device),
            ("device_type", &d.device_type),
            ("model", &d.model),
            ("serial", &d.serial),
            ("wwn", &d.wwn),
            ("firmware", &d.firmware),
        ] {
            if v.len() > limits::MAX_LABEL_VALUE_BYTES {
                errors.push(WireError::new(format!("{path}.{field}"), "longer than 256 bytes"));
            }
        }
        if d.message.len() > limits::MAX_TEXT_BYTES {
            errors.push(WireError::new(format!("{path}.message"), "longer than 4096 bytes"));
        }
        if let Some(a) = &d.ata {
            if a.attributes.len() > limits::MAX_ATTRIBUTES {
                errors.push(WireError::new(
                    format!("{path}.ata.attributes"),
                    "more than 256 attributes",
                ));
            }
            if a.self_tests.len() > limits::MAX_SELF_TESTS {
                errors.push(WireError::new(
                    format!("{path}.ata.self_tests"),
                    "more than 64 self-tests",
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(crate) fn sample_report() -> Report {
        Report {
            version: PROTOCOL_VERSION,
            agent_id: "a1".into(),
            seq: 1,
            collected_at_ms: 1_700_000_000_000,
            interval_secs: 15,
            host: "db01".into(),
            labels: [("customer".to_string(), "acme".to_string())].into(),
            samples: vec![
                Sample {
                    metric: "caretaker_load1".into(),
                    labels: BTreeMap::new(),
                    value: 0.5,
                },
                Sample {
                    metric: "caretaker_network_receive_bytes".into(),
                    labels: [("interface".to_string(), "eth0".to_string())].into(),
                    value: 12345.0,
                },
            ],
            events: vec![Event {
                at_ms: 1_700_000_000_000,
                kind: "collector_failed".into(),
                severity: Severity::Warning,
                message: "boom".into(),
                labels: BTreeMap::new(),
            }],
            inventory: Some(Inventory::default()),
            disks: None,
        }
    }

    #[test]
    fn a_disk_scan_is_checked_disk_by_disk() {
        use crate::disk_health::Disk;
        let mut r = sample_report();
        let disk = |key: &str| Disk {
            key: key.into(),
            device: "/dev/sda".into(),
            ..Disk::default()
        };
        r.disks = Some(DiskScan {
            scanned_at_ms: 0,
            disks: vec![disk("wwn-0x1"), disk("wwn-0x1"), disk("")],
            error: None,
        });
        let errors: Vec<String> = r
            .validate()
            .err()
            .unwrap_or_default()
            .iter()
            .map(|e| e.to_string())
            .collect();
        assert_eq!(
            errors,
            vec![
                "disks.scanned_at_ms: must be a positive Unix time in ms",
                "disks.disks[1].key: the same disk is listed twice",
                "disks.disks[2].key: must be 1 to 256 bytes",
            ]
        );
        // A scan from an agent the collector decodes back field for field.
        r.disks = Some(DiskScan {
            scanned_at_ms: 5,
            disks: vec![disk("wwn-0x1")],
            error: None,
        });
        let json = serde_json::to_vec(&r).unwrap_or_default();
        assert_eq!(decode(&json).ok(), Some(r));
    }

    #[test]
    fn round_trips() {
        let r = sample_report();
        let bytes = serde_json::to_vec(&r).unwrap_or_default();
        assert_eq!(decode(&bytes), Ok(r.clone()));
        assert_eq!(r.validate(), Ok(()));
    }

    #[test]
    fn decode_names_the_field() {
        let err = decode(br#"{"version":1,"agent_id":"a","seq":"x"}"#).err();
        assert_eq!(err.map(|e| e.path), Some("seq".to_string()));
        let err = decode(br#"{"version":1,"agent_id":"a","seq":1,"collected_at_ms":1,"interval_secs":1,"host":"h","samples":[{"metric":"m","value":"v"}]}"#).err();
        assert_eq!(err.map(|e| e.path), Some("samples[0].value".to_string()));
        assert_eq!(decode(b"").err().map(|e| e.path), Some(".".to_string()));
    }

    #[test]
    fn unknown_fields_are_tolerated() {
        let mut v = serde_json::to_value(sample_report()).unwrap_or_default();
        v["from_the_future"] = serde_json::json!({"x": 1});
        let bytes = serde_json::to_vec(&v).unwrap_or_default();
        assert!(decode(&bytes).is_ok());
    }

    #[test]
    fn a_nul_character_in_any_text_is_found_by_its_path() {
        assert_eq!(nul_in_text(br#"{"a":"x"}"#), None);
        assert_eq!(
            nul_in_text(br#"{"a":"a\\u0000b"}"#),
            None,
            "an escaped backslash is text"
        );
        assert_eq!(
            nul_in_text(br#"{"a":{"b":[1,"ok","x\u0000"]}}"#).as_deref(),
            Some("a.b[2]")
        );
        assert_eq!(nul_in_text(br#"{"k\u0000":1}"#).as_deref(), Some("k\u{0}"));
        assert_eq!(nul_in_text(br#""\u0000""#).as_deref(), Some("."));
    }

    #[test]
    fn validate_reports_every_problem_with_its_path() {
        let mut r = sample_report();
        r.version = 99;
        r.seq = 0;
        r.samples[1].labels.clear();
        r.samples[0].labels.insert("host".into(), "x".into());
        r.samples.push(Sample {
            metric: "caretaker_host_up".into(),
            labels: BTreeMap::new(),
            value: 1.0,
        });
        let paths: Vec<String> = r
            .validate()
            .err()
            .unwrap_or_default()
            .into_iter()
            .map(|e| e.path)
            .collect();
        assert_eq!(
            paths,
            vec![
                "version",
                "seq",
                "samples[0].labels.host",
                "samples[0].labels",
                "samples[1].labels",
                "samples[2].metric"
            ]
        );
    }

    #[test]
    fn unknown_metrics_are_skipped_not_rejected() {
        let mut r = sample_report();
        r.samples.push(Sample {
            metric: "caretaker_from_the_future".into(),
            labels: BTreeMap::new(),
            value: 1.0,
        });
        assert_eq!(r.validate(), Ok(()));
        assert_eq!(r.known_samples().count(), 2);
    }

    #[test]
    fn an_inventory_from_an_older_agent_still_decodes() {
        let old = br#"{"hostname":"h","os_name":"Debian","os_version":"12","kernel":"6.1.0-18-amd64","arch":"x86_64","cpu_model":"Xeon","cpu_cores":8,"memory_bytes":1024,"filesystems":[],"network_interfaces":["eth0"]}"#;
        let inv: Result<Inventory, _> = serde_json::from_slice(old);
        let Ok(inv) = inv else { panic!("{inv:?}") };
        assert_eq!(inv.kernel, "6.1.0-18-amd64");
        assert!(inv.disks.is_empty() && inv.content_hash.is_empty());
        let partial: Result<DiskInfo, _> = serde_json::from_str(r#"{"name":"sda","future":1}"#);
        assert_eq!(partial.map(|d| d.rotational).ok(), Some(None));
    }

    #[test]
    fn label_names() {
        assert!(is_label_name("mountpoint"));
        assert!(is_label_name("_x1"));
        assert!(!is_label_name("__reserved"));
        assert!(!is_label_name("1a"));
        assert!(!is_label_name("a-b"));
        assert!(!is_label_name(""));
    }

    // Fuzzing the decoder: arbitrary bytes and mutated valid reports must give
    // Ok or a WireError, never a panic, and validation must never panic either.
    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]
        #[test]
        fn decode_never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(r) = decode(&bytes) {
                let _ = r.validate();
            }
        }

        #[test]
        fn decode_never_panics_on_mutated_reports(
            cut in 0usize..400,
            flips in proptest::collection::vec((0usize..400, any::<u8>()), 0..8),
        ) {
            let mut bytes = serde_json::to_vec(&sample_report()).unwrap_or_default();
            for (at, b) in flips {
                if at < bytes.len() { bytes[at] = b; }
            }
            bytes.truncate(cut.max(1));
            if let Ok(r) = decode(&bytes) {
                let _ = r.validate();
            }
        }

        #[test]
        fn decode_never_panics_on_hostile_json(s in "[\\[\\]{}\",:0-9a-z.eE+-]{0,300}") {
            if let Ok(r) = decode(s.as_bytes()) {
                let _ = r.validate();
            }
        }
    }
}
