//! Disk health through smartctl, on its own slower interval.
//!
//! A worker thread discovers devices (`smartctl --scan-open --json`, plus the
//! per-device overrides from config for disks behind RAID controllers and USB
//! bridges), then reads each one on its own with `smartctl --json -x
//! --nocheck=standby`, under a timeout. A sleeping disk is reported as
//! skipped and never woken. The latest scan is kept in [`SmartState`]: the
//! `smart` collector turns it into samples every report, and the reporter
//! sends the full scan once, in the first report after it finished.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use caretaker_shared::disk_health::{Disk, ReadState, disk_key, verdict};
use caretaker_shared::smartctl::{self, ScannedDevice};
use caretaker_shared::wire::DiskScan;
use serde::Deserialize;

use crate::command::{self, CommandError};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmartConfig {
    /// The smartctl binary (smartmontools ≥ 7, for `--json`).
    #[serde(default = "default_smartctl_path")]
    pub smartctl_path: PathBuf,
    /// Seconds between two passes over the disks.
    #[serde(default = "default_interval_secs")]
    pub interval_secs: u64,
    /// Time allowed for smartctl on one device before it is killed.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// Discover devices with `smartctl --scan-open`. When false, only `devices` are read.
    #[serde(default = "default_true")]
    pub scan: bool,
    /// Devices to read with an explicit type, e.g. disks behind a controller:
    /// `{ name = "/dev/sda", type = "megaraid,0" }`. They replace what the scan
    /// found under the same name.
    #[serde(default)]
    pub devices: Vec<DeviceOverride>,
    /// Device names never to read.
    #[serde(default)]
    pub exclude: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DeviceOverride {
    /// Device path smartctl opens (`/dev/sda`, `/dev/bus/0`, `/dev/sg1`).
    pub name: String,
    /// smartctl's `-d` type: `sat`, `nvme`, `scsi`, `megaraid,N`, `cciss,N`, `3ware,N`, ...
    #[serde(rename = "type", default)]
    pub kind: Option<String>,
}

impl Default for SmartConfig {
    fn default() -> Self {
        Self {
            smartctl_path: default_smartctl_path(),
            interval_secs: default_interval_secs(),
            timeout_secs: default_timeout_secs(),
            scan: true,
            devices: Vec::new(),
            exclude: Vec::new(),
        }
    }
}

fn default_smartctl_path() -> PathBuf {
    PathBuf::from("smartctl")
}
fn default_interval_secs() -> u64 {
    1800
}
fn default_timeout_secs() -> u64 {
    60
}
fn default_true() -> bool {
    true
}

impl SmartConfig {
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if !(1..=7 * 86_400).contains(&self.interval_secs) {
            p.push(format!(
                "smart.interval_secs: {} is outside 1..=604800",
                self.interval_secs
            ));
        }
        if !(1..=600).contains(&self.timeout_secs) {
            p.push(format!("smart.timeout_secs: {} is outside 1..=600", self.timeout_secs));
        }
        for (i, d) in self.devices.iter().enumerate() {
            if !d.name.starts_with('/') {
                p.push(format!(
                    "smart.devices[{i}].name: {:?} must be an absolute device path",
                    d.name
                ));
            }
            if let Some(t) = &d.kind
                && (t.is_empty() || t.contains(char::is_whitespace))
            {
                p.push(format!("smart.devices[{i}].type: {t:?} is not a smartctl device type"));
            }
        }
        p
    }
}

/// The devices to read: the scan's, with overrides and exclusions applied.
pub fn plan(scanned: Vec<ScannedDevice>, cfg: &SmartConfig) -> Vec<ScannedDevice> {
    let overridden = |name: &str| cfg.devices.iter().any(|d| d.name == name);
    let mut out: Vec<ScannedDevice> = scanned.into_iter().filter(|d| !overridden(&d.name)).collect();
    out.extend(cfg.devices.iter().map(|d| ScannedDevice {
        name: d.name.clone(),
        kind: d.kind.clone().unwrap_or_default(),
        protocol: String::new(),
        open_error: None,
    }));
    out.retain(|d| !cfg.exclude.contains(&d.name));
    out
}

/// Lists the devices to read (runs `smartctl --scan-open` when enabled).
pub fn discover(cfg: &SmartConfig) -> Result<Vec<ScannedDevice>, String> {
    let scanned = if cfg.scan {
        let out = command::run(
            &cfg.smartctl_path,
            &["--scan-open", "--json"],
            Duration::from_secs(cfg.timeout_secs),
        )
        .map_err(|e| explain(&e))?;
        smartctl::parse_scan(&String::from_utf8_lossy(&out.stdout)).map_err(|e| {
            format!("smartctl --scan-open: {e} {}", out.stderr_line())
                .trim()
                .to_string()
        })?
    } else {
        Vec::new()
    };
    Ok(plan(scanned, cfg))
}

fn explain(e: &CommandError) -> String {
    match e {
        CommandError::NotFound { program } => format!(
            "{} not found: install smartmontools (>= 7) or set smart.smartctl_path",
            program.display()
        ),
        other => other.to_string(),
    }
}

/// A disk that could not be read, with the reason.
fn unreadable(dev: &ScannedDevice, exit_status: u8, message: String) -> Disk {
    let mut d = Disk {
        device: dev.name.clone(),
        device_type: dev.kind.clone(),
        state: ReadState::Unreadable,
        message,
        exit_status,
        exit_bits: caretaker_shared::disk_health::ExitBit::decode(exit_status),
        ..Disk::default()
    };
    d.key = fallback_key(&d);
    d.verdict = verdict(&d);
    d
}

/// The key of a disk that told us neither WWN nor serial: its device and type,
/// so two unreadable disks behind one controller stay apart.
fn fallback_key(d: &Disk) -> String {
    if d.device_type.contains(',') {
        disk_key("", "", "", &format!("{} {}", d.device, d.device_type))
    } else {
        disk_key("", "", "", &d.device)
    }
}

/// Reads one device. Never fails: what went wrong is in the disk's state.
pub fn read_device(cfg: &SmartConfig, dev: &ScannedDevice) -> Disk {
    let mut args = vec!["--json", "-x", "--nocheck=standby"];
    if !dev.kind.is_empty() {
        args.extend(["-d", dev.kind.as_str()]);
    }
    args.push(dev.name.as_str());
    let out = match command::run(&cfg.smartctl_path, &args, Duration::from_secs(cfg.timeout_secs)) {
        Ok(o) => o,
        Err(e) => return unreadable(dev, 0, explain(&e)),
    };
    let code = out.code.and_then(|c| u8::try_from(c).ok()).unwrap_or(0);
    match smartctl::parse(&String::from_utf8_lossy(&out.stdout)) {
        Ok(mut d) => {
            // The device we asked for is the one that answered.
            d.device = dev.name.clone();
            if d.device_type.is_empty() || dev.kind.contains(',') {
                d.device_type = dev.kind.clone();
            }
            if d.key.starts_with("dev-") {
                d.key = fallback_key(&d);
            }
            d.verdict = verdict(&d);
            d
        }
        Err(e) => {
            let stderr = out.stderr_line();
            let msg = if stderr.is_empty() {
                format!("smartctl output unreadable: {e}")
            } else {
                format!("smartctl output unreadable: {e}; {stderr}")
            };
            unreadable(dev, code, msg)
        }
    }
}

/// What a read disk tells the inventory about itself: model, serial, WWN,
/// firmware, capacity. `None` for a disk that told nothing (unread).
pub fn identity(d: &Disk) -> Option<caretaker_shared::wire::DiskInfo> {
    if d.serial.is_empty() && d.wwn.is_empty() && d.model.is_empty() {
        return None;
    }
    let base = d.device.trim_start_matches("/dev/");
    // Disks behind a controller share a device name; the type tells them apart.
    let name = if d.device_type.contains(',') {
        format!("{base} {}", d.device_type)
    } else {
        base.to_string()
    };
    Some(caretaker_shared::wire::DiskInfo {
        location: String::new(),
        name,
        model: d.model.clone(),
        serial: d.serial.clone(),
        wwn: d.wwn.clone(),
        firmware: d.firmware.clone(),
        capacity_bytes: d.capacity_bytes.unwrap_or(0),
        rotational: d.rotation_rpm.map(|r| r > 0),
        interface: String::new(),
    })
}

/// One full pass: discover, then read every device, one at a time.
pub fn scan(cfg: &SmartConfig) -> DiskScan {
    let (disks, error) = match discover(cfg) {
        Ok(devs) => (devs.iter().map(|d| read_device(cfg, d)).collect(), None),
        Err(e) => (Vec::new(), Some(e)),
    };
    DiskScan {
        scanned_at_ms: caretaker_shared::now_ms(),
        disks,
        error,
    }
}

/// The newest scan, shared by the worker, the `smart` collector and the reporter.
#[derive(Debug, Default)]
pub struct SmartState {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    latest: Option<Arc<DiskScan>>,
    /// Whether the latest scan went out in a report yet.
    sent: bool,
}

impl SmartState {
    pub fn publish(&self, scan: DiskScan) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        g.latest = Some(Arc::new(scan));
        g.sent = false;
    }

    pub fn latest(&self) -> Option<Arc<DiskScan>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).latest.clone()
    }

    /// The latest scan if no report carried it yet; marks it as carried.
    pub fn take_unsent(&self) -> Option<Arc<DiskScan>> {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if g.sent {
            return None;
        }
        g.sent = true;
        g.latest.clone()
    }
}

/// Starts the worker thread: scan now, then every `interval_secs`, until
/// `stop` is dropped or sent to.
pub fn spawn_worker(
    cfg: SmartConfig,
    state: Arc<SmartState>,
) -> std::io::Result<(std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>)> {
    let interval = Duration::from_secs(cfg.interval_secs);
    crate::periodic::spawn("smart", interval, move || {
        let s = scan(&cfg);
        match &s.error {
            Some(e) => tracing::warn!(error = %e, "disk health scan failed"),
            None => tracing::debug!(disks = s.disks.len(), "disk health scan done"),
        }
        state.publish(s);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(name: &str, kind: &str) -> ScannedDevice {
        ScannedDevice {
            name: name.into(),
            kind: kind.into(),
            protocol: String::new(),
            open_error: None,
        }
    }

    #[test]
    fn overrides_replace_scanned_devices_and_exclusions_apply() {
        let cfg = SmartConfig {
            devices: vec![
                DeviceOverride {
                    name: "/dev/sda".into(),
                    kind: Some("megaraid,0".into()),
                },
                DeviceOverride {
                    name: "/dev/sda".into(),
                    kind: Some("megaraid,1".into()),
                },
            ],
            exclude: vec!["/dev/sdc".into()],
            ..SmartConfig::default()
        };
        let p = plan(
            vec![dev("/dev/sda", "scsi"), dev("/dev/sdb", "sat"), dev("/dev/sdc", "sat")],
            &cfg,
        );
        let got: Vec<(String, String)> = p.into_iter().map(|d| (d.name, d.kind)).collect();
        assert_eq!(
            got,
            vec![
                ("/dev/sdb".to_string(), "sat".to_string()),
                ("/dev/sda".to_string(), "megaraid,0".to_string()),
                ("/dev/sda".to_string(), "megaraid,1".to_string()),
            ]
        );
    }

    #[test]
    fn a_missing_smartctl_is_a_scan_error_that_says_what_to_do() {
        let cfg = SmartConfig {
            smartctl_path: "/nonexistent/smartctl".into(),
            ..SmartConfig::default()
        };
        let s = scan(&cfg);
        assert!(s.disks.is_empty());
        let e = s.error.unwrap_or_default();
        assert!(e.contains("install smartmontools"), "{e}");
    }

    #[test]
    fn garbage_output_makes_an_unreadable_disk_not_a_crash() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let script = dir.path().join("smartctl");
        std::fs::write(
            &script,
            "#!/bin/sh\necho 'not json'\necho 'bridge said no' >&2\nexit 2\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap_or_else(|e| panic!("{e}"));
        let cfg = SmartConfig {
            smartctl_path: script,
            ..SmartConfig::default()
        };
        let d = read_device(&cfg, &dev("/dev/bus/0", "megaraid,3"));
        assert_eq!(d.state, ReadState::Unreadable);
        assert_eq!(d.key, "dev-bus_0_megaraid_3");
        assert_eq!(d.verdict.level, caretaker_shared::disk_health::Level::Unknown);
        assert!(d.message.contains("bridge said no"), "{}", d.message);
        assert_eq!(d.exit_status, 2);
    }

    #[test]
    fn identity_names_disks_behind_a_controller_apart() {
        let d = Disk {
            device: "/dev/bus/0".into(),
            device_type: "megaraid,3".into(),
            serial: "S1".into(),
            rotation_rpm: Some(7200),
            ..Disk::default()
        };
        let i = identity(&d).unwrap_or_default();
        assert_eq!(
            (i.name.as_str(), i.serial.as_str(), i.rotational),
            ("bus/0 megaraid,3", "S1", Some(true))
        );
        assert!(identity(&Disk::default()).is_none(), "an unread disk tells nothing");
    }

    #[test]
    fn bad_smart_settings_are_all_reported() {
        let cfg = SmartConfig {
            interval_secs: 0,
            timeout_secs: 0,
            devices: vec![DeviceOverride {
                name: "sda".into(),
                kind: Some("megaraid, 0".into()),
            }],
            ..SmartConfig::default()
        };
        assert_eq!(
            cfg.problems(),
            vec![
                "smart.interval_secs: 0 is outside 1..=604800".to_string(),
                "smart.timeout_secs: 0 is outside 1..=600".to_string(),
                "smart.devices[0].name: \"sda\" must be an absolute device path".to_string(),
                "smart.devices[0].type: \"megaraid, 0\" is not a smartctl device type".to_string(),
            ]
        );
    }

    #[test]
    fn a_hung_smartctl_is_killed_and_the_disk_is_unreadable() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let script = dir.path().join("smartctl");
        std::fs::write(&script, "#!/bin/sh\nexec sleep 30\n").unwrap_or_else(|e| panic!("{e}"));
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap_or_else(|e| panic!("{e}"));
        let cfg = SmartConfig {
            smartctl_path: script,
            timeout_secs: 1,
            ..SmartConfig::default()
        };
        let started = std::time::Instant::now();
        let d = read_device(&cfg, &dev("/dev/sdz", "sat"));
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_eq!(d.state, ReadState::Unreadable);
        assert!(d.message.contains("did not finish within 1 s"), "{}", d.message);
        assert_eq!(d.verdict.level, caretaker_shared::disk_health::Level::Unknown);
    }

    #[test]
    fn a_scan_is_sent_once() {
        let s = SmartState::default();
        assert!(s.take_unsent().is_none());
        s.publish(DiskScan::default());
        assert!(s.take_unsent().is_some());
        assert!(s.take_unsent().is_none());
        assert!(s.latest().is_some());
    }
}
