//! The asset inventory: what the host is made of and what runs on it — DMI
//! identity, CPU sockets and cores, memory modules, disks, NICs, OS, kernel and
//! database servers with their versions. The collector keeps every version of
//! it and lists what changed, so this is the source of a server's
//! configuration record.
//!
//! Every reader is rooted at a configurable path ([`Roots`]) so tests build the
//! inventory from a captured tree. Parsing is done by pure functions on text,
//! apart from the I/O, and tested on real captured output. A file that cannot
//! be read only leaves its fields empty: an inventory with a gap beats none.
//! The two things that run commands (`--version` of database servers and
//! `dmidecode`) are optional, time-limited and cached, since their answers
//! change only with the binary or the hardware.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use caretaker_shared::wire::{DatabaseServer, DiskInfo, DmiInfo, Inventory, MemoryModule, NicInfo};

use crate::collectors::{self, Roots, network, system};
use crate::config::InventoryConfig;

/// Why a helper command gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Run(#[from] crate::command::CommandError),
    #[error("{program} exited with {status}")]
    Failed { program: String, status: String },
}

/// What the inventory remembers between builds: command answers that only
/// change with a new binary (versions, keyed by path and mtime) or new
/// hardware (dmidecode, read once per agent start).
#[derive(Debug)]
pub struct Probes {
    cfg: InventoryConfig,
    timeout: Duration,
    versions: HashMap<(PathBuf, Option<SystemTime>), String>,
    dmidecode: Option<Vec<MemoryModule>>,
}

impl Probes {
    /// `timeout` bounds each probe command (the agent's `command_timeout_secs`).
    pub fn new(cfg: &InventoryConfig, timeout: Duration) -> Self {
        Self {
            cfg: cfg.clone(),
            timeout,
            versions: HashMap::new(),
            dmidecode: None,
        }
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }
}

/// Builds the inventory of the host seen through `roots`. Never fails: what
/// cannot be read stays empty (and is logged at debug level).
pub fn build(roots: &Roots, probes: &mut Probes) -> Inventory {
    let facts = system::host_facts();
    let proc_root = &roots.proc_root;
    let os = read_opt(&roots.etc_root.join("os-release"))
        .map(|t| parse_os_release(&t))
        .unwrap_or_default();
    let cpu = read_opt(&proc_root.join("cpuinfo"))
        .map(|t| parse_cpuinfo(&t))
        .unwrap_or_default();
    let sockets = if cpu.sockets > 0 {
        cpu.sockets
    } else {
        sysfs_sockets(&roots.sys_root)
    };
    let memory_bytes = read_opt(&proc_root.join("meminfo"))
        .and_then(|t| parse_meminfo_total(&t))
        .unwrap_or(0);
    let mut inv = Inventory {
        bmc: None,
        power_supplies: Vec::new(),
        raid_controllers: Vec::new(),
        virtual_disks: Vec::new(),
        hostname: read_trimmed(&proc_root.join("sys/kernel/hostname")).unwrap_or(facts.hostname),
        os_name: os.pretty_name,
        os_version: os.version_id,
        kernel: read_trimmed(&proc_root.join("sys/kernel/osrelease")).unwrap_or(facts.kernel),
        arch: facts.arch,
        cpu_model: cpu.model,
        cpu_cores: cpu.threads,
        memory_bytes,
        filesystems: collectors::filesystem::inventory(proc_root),
        network_interfaces: network::interface_names(proc_root),
        machine_id: read_trimmed(&roots.etc_root.join("machine-id")).unwrap_or_default(),
        dmi: read_dmi(&roots.sys_root),
        cpu_sockets: sockets,
        cpu_physical_cores: cpu.cores,
        cpu_threads: cpu.threads,
        memory_modules: memory_modules(&roots.sys_root, probes),
        disks: read_disks(&roots.sys_root),
        nics: read_nics(&roots.sys_root),
        databases: find_databases(proc_root, probes),
        content_hash: String::new(),
    };
    inv.content_hash = content_hash(&inv);
    inv
}

/// The inventory's configuration hash
/// ([`Inventory::configuration_hash`], shared with the collector): equal
/// configurations give equal hashes. A NIC's link state and negotiated speed
/// are left out: they are state, not configuration, and a flapping link must
/// not make a new asset version.
pub fn content_hash(inv: &Inventory) -> String {
    inv.configuration_hash()
}

// --- small I/O helpers ------------------------------------------------------------

/// The file's text, or None (logged) when it cannot be read.
fn read_opt(path: &Path) -> Option<String> {
    match std::fs::read_to_string(path) {
        Ok(t) => Some(t),
        Err(e) => {
            tracing::debug!(path = %path.display(), error = %e, "inventory: cannot read");
            None
        }
    }
}

/// The file's text trimmed, or None when unreadable or empty.
fn read_trimmed(path: &Path) -> Option<String> {
    read_opt(path).map(|t| t.trim().to_string()).filter(|t| !t.is_empty())
}

/// Like [`read_trimmed`], "" for missing.
fn field(path: &Path) -> String {
    read_trimmed(path).unwrap_or_default()
}

/// The directory's entry names, sorted; empty when it cannot be listed.
fn list_dir(path: &Path) -> Vec<String> {
    let mut names: Vec<String> = match std::fs::read_dir(path) {
        Ok(d) => d
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(e) => {
            tracing::debug!(path = %path.display(), error = %e, "inventory: cannot list");
            Vec::new()
        }
    };
    names.sort();
    names
}

/// The last component of a symlink's target (a driver's name, ...).
fn link_basename(path: &Path) -> String {
    std::fs::read_link(path)
        .ok()
        .and_then(|t| t.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default()
}

// --- OS ---------------------------------------------------------------------------

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OsRelease {
    /// PRETTY_NAME, else NAME.
    pub pretty_name: String,
    pub version_id: String,
}

/// Parses `os-release` (shell-style `KEY=value`, values optionally quoted).
pub fn parse_os_release(text: &str) -> OsRelease {
    let mut pretty = String::new();
    let mut name = String::new();
    let mut version_id = String::new();
    for line in text.lines() {
        let Some((k, v)) = line.trim().split_once('=') else {
            continue;
        };
        let v = unquote(v.trim());
        match k.trim() {
            "PRETTY_NAME" => pretty = v,
            "NAME" => name = v,
            "VERSION_ID" => version_id = v,
            _ => {}
        }
    }
    OsRelease {
        pretty_name: if pretty.is_empty() { name } else { pretty },
        version_id,
    }
}

fn unquote(v: &str) -> String {
    let inner = v
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .or_else(|| v.strip_prefix('\'').and_then(|s| s.strip_suffix('\'')))
        .unwrap_or(v);
    inner.replace("\\\"", "\"").replace("\\\\", "\\")
}

// --- CPU and memory ---------------------------------------------------------------

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CpuSummary {
    pub model: String,
    /// Distinct `physical id`s; 0 when the file has none (many ARM and some VMs).
    pub sockets: u32,
    /// Distinct (`physical id`, `core id`) pairs; the thread count when absent.
    pub cores: u32,
    /// `processor` entries.
    pub threads: u32,
}

/// Parses `/proc/cpuinfo`: one blank-line-separated block per logical CPU.
pub fn parse_cpuinfo(text: &str) -> CpuSummary {
    let mut model = String::new();
    let mut threads = 0u32;
    let mut packages = BTreeSet::new();
    let mut cores = BTreeSet::new();
    let mut package: Option<String> = None;
    let mut core: Option<String> = None;
    let mut flush = |package: &mut Option<String>, core: &mut Option<String>| {
        if let Some(p) = package.take() {
            if let Some(c) = core.take() {
                cores.insert((p.clone(), c));
            }
            packages.insert(p);
        }
        *core = None;
    };
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
            if line.trim().is_empty() {
                flush(&mut package, &mut core);
            }
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        match k {
            "processor" => threads += 1,
            // x86 "model name"; ARM "Model"/"Hardware"; POWER "cpu".
            "model name" | "Model" | "Hardware" | "cpu" if model.is_empty() => model = v.to_string(),
            "physical id" => package = Some(v.to_string()),
            "core id" => core = Some(v.to_string()),
            _ => {}
        }
    }
    flush(&mut package, &mut core);
    let cores_n = if cores.is_empty() { threads } else { cores.len() as u32 };
    CpuSummary {
        model,
        sockets: packages.len() as u32,
        cores: cores_n,
        threads,
    }
}

/// Sockets from `<sys>/devices/system/cpu/cpu*/topology/physical_package_id`.
fn sysfs_sockets(sys: &Path) -> u32 {
    let dir = sys.join("devices/system/cpu");
    let ids: BTreeSet<String> = list_dir(&dir)
        .into_iter()
        .filter(|n| {
            n.strip_prefix("cpu")
                .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        })
        .filter_map(|n| read_trimmed(&dir.join(n).join("topology/physical_package_id")))
        .collect();
    ids.len() as u32
}

/// `MemTotal` of `/proc/meminfo`, in bytes.
pub fn parse_meminfo_total(text: &str) -> Option<u64> {
    let v = text.lines().find_map(|l| l.strip_prefix("MemTotal:"))?;
    let kb: u64 = v.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kb * 1024)
}

// --- DMI --------------------------------------------------------------------------

fn read_dmi(sys: &Path) -> DmiInfo {
    let d = sys.join("class/dmi/id");
    // product_serial is mode 0400: as non-root it is simply missing here.
    let f = |name: &str| clean_dmi(&field(&d.join(name)));
    DmiInfo {
        sys_vendor: f("sys_vendor"),
        product_name: f("product_name"),
        product_serial: f("product_serial"),
        board_vendor: f("board_vendor"),
        board_name: f("board_name"),
        bios_vendor: f("bios_vendor"),
        bios_version: f("bios_version"),
        bios_date: f("bios_date"),
        chassis_type: f("chassis_type"),
    }
}

/// Firmware fills unset DMI strings with placeholders; they identify nothing.
pub fn clean_dmi(v: &str) -> String {
    let v = v.trim();
    let placeholder = [
        "to be filled by o.e.m.",
        "not specified",
        "default string",
        "none",
        "unknown",
        "--",
    ]
    .contains(&v.to_ascii_lowercase().as_str())
        || (!v.is_empty() && v.bytes().all(|b| b == b'0' || b == b' '))
        || v.eq_ignore_ascii_case("ffffffff");
    if placeholder { String::new() } else { v.to_string() }
}

// --- memory modules ---------------------------------------------------------------

fn memory_modules(sys: &Path, probes: &mut Probes) -> Vec<MemoryModule> {
    if probes.cfg.dmidecode && probes.dmidecode.is_none() {
        probes.dmidecode = Some(run_dmidecode(probes.timeout()));
    }
    let mut modules = match &probes.dmidecode {
        Some(m) if !m.is_empty() => m.clone(),
        _ => read_edac_dimms(sys),
    };
    modules.sort_by(|a, b| a.locator.cmp(&b.locator));
    modules
}

fn run_dmidecode(timeout: Duration) -> Vec<MemoryModule> {
    let Some(bin) = ["/usr/sbin/dmidecode", "/sbin/dmidecode", "/usr/bin/dmidecode"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.exists())
    else {
        return Vec::new();
    };
    match run_with_timeout(bin, None, &["-t", "17"], timeout) {
        Ok(out) => parse_dmidecode_memory(&out),
        Err(e) => {
            tracing::debug!(error = %e, "inventory: dmidecode gave no memory modules");
            Vec::new()
        }
    }
}

/// `<sys>/devices/system/edac/mc/mc*/dimm*`: label, size (MiB) and type.
fn read_edac_dimms(sys: &Path) -> Vec<MemoryModule> {
    let base = sys.join("devices/system/edac/mc");
    let mut out = Vec::new();
    for mc in list_dir(&base).into_iter().filter(|n| n.starts_with("mc")) {
        for dimm in list_dir(&base.join(&mc)).into_iter().filter(|n| n.starts_with("dimm")) {
            let d = base.join(&mc).join(&dimm);
            let mib: u64 = field(&d.join("size")).parse().unwrap_or(0);
            if mib == 0 {
                continue; // an empty slot
            }
            let label = field(&d.join("dimm_label"));
            out.push(MemoryModule {
                locator: if label.is_empty() {
                    format!("{mc}/{dimm}")
                } else {
                    label
                },
                size_bytes: mib * 1024 * 1024,
                kind: field(&d.join("dimm_mem_type")),
                ..MemoryModule::default()
            });
        }
    }
    out
}

/// Parses `dmidecode -t 17` output: one "Memory Device" block per slot; empty
/// slots ("No Module Installed") are left out.
pub fn parse_dmidecode_memory(text: &str) -> Vec<MemoryModule> {
    let mut out = Vec::new();
    for block in text.split("\nHandle ").skip(1) {
        let mut lines = block.lines();
        let _handle = lines.next();
        if lines.next().map(str::trim) != Some("Memory Device") {
            continue;
        }
        let mut m = MemoryModule::default();
        for line in lines {
            let Some((k, v)) = line.trim().split_once(':') else {
                continue;
            };
            let v = v.trim();
            match k.trim() {
                "Size" => m.size_bytes = parse_dmi_size(v).unwrap_or(0),
                "Locator" => m.locator = v.to_string(),
                "Type" => m.kind = clean_dmi(v),
                "Manufacturer" => m.manufacturer = clean_dmi(v),
                "Part Number" => m.part_number = clean_dmi(v),
                "Serial Number" => m.serial = clean_dmi(v),
                _ => {}
            }
        }
        if m.size_bytes > 0 {
            out.push(m);
        }
    }
    out
}

/// "32 GB", "16384 MB", "512 kB" → bytes; "No Module Installed" → None.
pub fn parse_dmi_size(v: &str) -> Option<u64> {
    let (n, unit) = v.trim().split_once(' ')?;
    let n: u64 = n.parse().ok()?;
    let shift = match unit.trim() {
        "bytes" => 0,
        "kB" | "KB" => 10,
        "MB" => 20,
        "GB" => 30,
        "TB" => 40,
        _ => return None,
    };
    n.checked_mul(1u64 << shift)
}

// --- disks ------------------------------------------------------------------------

/// Block devices that are not disks: loop, RAM disks, device-mapper, software
/// RAID, optical drives, network block devices.
pub fn is_skipped_block(name: &str) -> bool {
    ["loop", "ram", "zram", "dm-", "md", "sr", "nbd", "fd"]
        .iter()
        .any(|p| name.starts_with(p))
}

/// The bus a disk hangs on, from its name and the target of `<sys>/block/<name>`
/// (e.g. `../devices/pci0000:00/0000:00:17.0/ata1/host0/.../block/sda`).
pub fn disk_interface(name: &str, link_target: &str) -> &'static str {
    let segs: Vec<&str> = link_target.split('/').collect();
    let has = |f: &dyn Fn(&str) -> bool| segs.iter().any(|s| f(s));
    if name.starts_with("nvme") || has(&|s| s == "nvme") {
        "nvme"
    } else if has(&|s| s.starts_with("virtio")) {
        "virtio"
    } else if has(&|s| s.starts_with("usb")) {
        "usb"
    } else if has(&|s| s.starts_with("end_device-") || s.starts_with("expander-")) {
        "sas"
    } else if has(&|s| {
        s.strip_prefix("ata")
            .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
    }) {
        "sata"
    } else if name.starts_with("mmcblk") {
        "mmc"
    } else if name.starts_with("xvd") {
        "xen"
    } else if has(&|s| s.starts_with("target")) {
        "scsi"
    } else {
        ""
    }
}

/// The serial in a SCSI VPD page 0x80 (unit serial number): a 4-byte header
/// (type, page code 0x80, big-endian length), then the serial in ASCII.
pub fn parse_vpd_pg80(bytes: &[u8]) -> String {
    if bytes.len() < 4 || bytes[1] != 0x80 {
        return String::new();
    }
    let len = usize::from(u16::from_be_bytes([bytes[2], bytes[3]]));
    let end = (4 + len).min(bytes.len());
    String::from_utf8_lossy(&bytes[4..end])
        .trim_matches(|c: char| c.is_whitespace() || c == '\0')
        .to_string()
}

fn read_disks(sys: &Path) -> Vec<DiskInfo> {
    let block = sys.join("block");
    let mut out = Vec::new();
    for name in list_dir(&block).into_iter().filter(|n| !is_skipped_block(n)) {
        let dir = block.join(&name);
        let dev = dir.join("device");
        if !dev.exists() {
            continue; // virtual
        }
        let target = std::fs::read_link(&dir)
            .map(|t| t.to_string_lossy().into_owned())
            .unwrap_or_default();
        let serial = read_trimmed(&dev.join("serial"))
            .or_else(|| {
                std::fs::read(dev.join("vpd_pg80"))
                    .ok()
                    .map(|b| parse_vpd_pg80(&b))
                    .filter(|s| !s.is_empty())
            })
            .or_else(|| read_trimmed(&dir.join("serial")))
            .unwrap_or_default();
        let vendor = field(&dev.join("vendor"));
        let model = field(&dev.join("model"));
        // libata reports every SATA disk's vendor as "ATA", virtio its PCI id:
        // only a real vendor name is worth prefixing.
        let model = if vendor.is_empty() || vendor == "ATA" || vendor.starts_with("0x") || model.starts_with(&vendor) {
            model
        } else {
            format!("{vendor} {model}")
        };
        let sectors: u64 = field(&dir.join("size")).parse().unwrap_or(0);
        out.push(DiskInfo {
            location: String::new(),
            interface: disk_interface(&name, &target).to_string(),
            model,
            serial,
            wwn: read_trimmed(&dev.join("wwid"))
                .or_else(|| read_trimmed(&dir.join("wwid")))
                .unwrap_or_default(),
            firmware: read_trimmed(&dev.join("firmware_rev"))
                .or_else(|| read_trimmed(&dev.join("rev")))
                .unwrap_or_default(),
            // `size` counts 512-byte sectors whatever the disk's sector size.
            capacity_bytes: sectors.saturating_mul(512),
            rotational: match field(&dir.join("queue/rotational")).as_str() {
                "1" => Some(true),
                "0" => Some(false),
                _ => None,
            },
            name,
        });
    }
    out
}

/// Overlays disk identity learned elsewhere (smartctl) on the disks sysfs
/// showed. A disk is matched by device name, else by WWN, else by serial;
/// non-empty fields of `from_smart` win. Disks sysfs did not show (behind a RAID
/// controller, say) are added. The result is sorted by name.
/// Sets the BMC and the power supplies the IPMI worker read.
pub fn merge_bmc(
    inv: &mut Inventory,
    bmc: Option<caretaker_shared::wire::BmcInfo>,
    psus: Vec<caretaker_shared::wire::PsuInfo>,
) {
    inv.bmc = bmc;
    inv.power_supplies = psus;
}

pub fn merge_disk_identity(disks: &mut Vec<DiskInfo>, from_smart: &[DiskInfo]) {
    let same = |a: &str, b: &str| !a.is_empty() && a.eq_ignore_ascii_case(b);
    for s in from_smart {
        let at = disks
            .iter()
            .position(|d| same(&d.name, &s.name))
            .or_else(|| disks.iter().position(|d| same(&d.wwn, &s.wwn)))
            .or_else(|| disks.iter().position(|d| same(&d.serial, &s.serial)));
        let Some(at) = at else {
            disks.push(s.clone());
            continue;
        };
        let d = &mut disks[at];
        for (mine, theirs) in [
            (&mut d.model, &s.model),
            (&mut d.serial, &s.serial),
            (&mut d.wwn, &s.wwn),
            (&mut d.firmware, &s.firmware),
            (&mut d.interface, &s.interface),
        ] {
            if !theirs.is_empty() {
                mine.clone_from(theirs);
            }
        }
        if d.name.is_empty() {
            d.name.clone_from(&s.name);
        }
        if d.capacity_bytes == 0 {
            d.capacity_bytes = s.capacity_bytes;
        }
        if s.rotational.is_some() {
            d.rotational = s.rotational;
        }
    }
    disks.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.serial.cmp(&b.serial)));
}

/// OS block devices that are a RAID controller's virtual disk, by the model
/// the controller gives them (`PERC H730P Mini`, `MR9361-8i`, `LOGICAL VOLUME`).
fn is_virtual_disk_model(model: &str, controllers: &[caretaker_shared::hardware::raid::Controller]) -> bool {
    let m = model.trim().to_ascii_uppercase();
    if m.is_empty() {
        return false;
    }
    [
        "PERC ",
        "LOGICAL VOLUME",
        "MR9",
        "MEGARAID",
        "VIRTUAL DISK",
        "VIRTUAL DRIVE",
        "RAID CONTROLLER",
    ]
    .iter()
    .any(|k| m.contains(k))
        || controllers.iter().any(|c| {
            let cm = c.model.trim().to_ascii_uppercase();
            !cm.is_empty() && (m == cm || cm.ends_with(&m) || m.ends_with(&cm))
        })
}

/// Adds what the RAID controllers tell: the controllers, their virtual
/// disks, and their physical disks merged into `disks` by serial (a disk
/// smartctl read through `megaraid,N` is the same part), each with its
/// `location`. The OS block devices of virtual disks get interface `raid`:
/// they are no replaceable disk.
pub fn merge_raid(inv: &mut Inventory, controllers: &[caretaker_shared::hardware::raid::Controller]) {
    use caretaker_shared::hardware::raid::Media;
    use caretaker_shared::wire::{RaidControllerInfo, VirtualDiskInfo};
    for c in controllers {
        inv.raid_controllers.push(RaidControllerInfo {
            id: c.id.clone(),
            kind: c.kind.as_str().into(),
            model: c.model.clone(),
            serial: c.serial.clone(),
            firmware: c.firmware.clone(),
            cache_backup: c
                .backup
                .as_ref()
                .map(|b| b.kind.as_str().to_string())
                .unwrap_or_default(),
            cache_backup_model: c.backup.as_ref().map(|b| b.model.clone()).unwrap_or_default(),
            cache_bytes: c.cache_bytes,
        });
        for v in &c.vds {
            inv.virtual_disks.push(VirtualDiskInfo {
                id: v.id.clone(),
                level: v.level.clone(),
                size_bytes: v.size_bytes,
                name: v.name.clone(),
                members: v.members.clone(),
            });
        }
    }
    for d in &mut inv.disks {
        if d.location.is_empty() && is_virtual_disk_model(&d.model, controllers) {
            d.interface = "raid".into();
        }
    }
    let same = |a: &str, b: &str| !a.trim().is_empty() && a.trim().eq_ignore_ascii_case(b.trim());
    for c in controllers {
        for p in c.pds.iter().filter(|p| !p.serial.trim().is_empty()) {
            let location = format!("{} {}", c.id, p.slot);
            let rotational = match p.media {
                Media::Hdd => Some(true),
                Media::Ssd => Some(false),
                Media::Unknown => None,
            };
            match inv.disks.iter_mut().find(|d| same(&d.serial, &p.serial)) {
                Some(d) => {
                    d.location = location;
                    for (mine, theirs) in [
                        (&mut d.model, &p.model),
                        (&mut d.firmware, &p.firmware),
                        (&mut d.wwn, &p.wwn),
                        (&mut d.interface, &p.interface),
                    ] {
                        if mine.is_empty() && !theirs.is_empty() {
                            mine.clone_from(theirs);
                        }
                    }
                    if d.capacity_bytes == 0 {
                        d.capacity_bytes = p.size_bytes;
                    }
                    if d.rotational.is_none() {
                        d.rotational = rotational;
                    }
                }
                None => {
                    let name = match p.slot.split_once(':') {
                        Some((e, s)) if c.id.starts_with('c') && e.is_empty() => format!("{}/s{s}", c.id),
                        Some((e, s)) if c.id.starts_with('c') => format!("{}/e{e}/s{s}", c.id),
                        _ => format!("{}/{}", c.id, p.slot),
                    };
                    inv.disks.push(DiskInfo {
                        name,
                        model: p.model.clone(),
                        serial: p.serial.trim().to_string(),
                        wwn: p.wwn.clone(),
                        firmware: p.firmware.clone(),
                        capacity_bytes: p.size_bytes,
                        rotational,
                        interface: p.interface.clone(),
                        location,
                    });
                }
            }
        }
    }
    inv.disks
        .sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.serial.cmp(&b.serial)));
}

// --- NICs -------------------------------------------------------------------------

/// `speed` in Mb/s; -1 (no link) or garbage is None.
pub fn parse_speed(text: &str) -> Option<u32> {
    text.trim()
        .parse::<i64>()
        .ok()
        .filter(|s| *s > 0)
        .and_then(|s| u32::try_from(s).ok())
}

fn read_nics(sys: &Path) -> Vec<NicInfo> {
    let net = sys.join("class/net");
    list_dir(&net)
        .into_iter()
        .filter(|n| n != "lo")
        .filter_map(|name| {
            let dir = net.join(&name);
            // Bridges, bonds, veths, tunnels have no `device`: not hardware.
            if std::fs::symlink_metadata(dir.join("device")).is_err() {
                return None;
            }
            Some(NicInfo {
                mac: field(&dir.join("address")),
                speed_mbps: read_opt(&dir.join("speed")).and_then(|t| parse_speed(&t)),
                driver: link_basename(&dir.join("device/driver")),
                operstate: field(&dir.join("operstate")),
                name,
            })
        })
        .collect()
}

// --- database servers -------------------------------------------------------------

/// The database kind a process name stands for.
pub fn db_kind_for_comm(comm: &str) -> Option<&'static str> {
    match comm.trim() {
        "postgres" | "postmaster" => Some("postgresql"),
        "mariadbd" => Some("mariadb"),
        "mysqld" => Some("mysql"),
        "redis-server" => Some("redis"),
        _ => None,
    }
}

/// Kind and version from `<server> --version` output. MariaDB also installs a
/// `mysqld`, so the kind comes from the text, not the binary's name.
pub fn parse_server_version(output: &str) -> Option<(&'static str, String)> {
    let word_after = |marker: &str| -> Option<String> {
        let rest = &output[output.find(marker)? + marker.len()..];
        rest.split_whitespace().next().map(str::to_string)
    };
    if let Some(v) = word_after("(PostgreSQL) ") {
        return Some(("postgresql", v));
    }
    if let Some(v) = word_after(" Ver ") {
        return Some(if v.contains("MariaDB") || output.contains("MariaDB") {
            ("mariadb", v.split('-').next().unwrap_or(&v).to_string())
        } else {
            ("mysql", v.split('-').next().unwrap_or(&v).to_string())
        });
    }
    if output.starts_with("Redis server") {
        return word_after("v=").map(|v| ("redis", v));
    }
    None
}

/// Listening TCP sockets of `/proc/net/tcp{,6}`: (socket inode, local port).
pub fn parse_listening_sockets(text: &str) -> Vec<(u64, u16)> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            // sl local rem st tx:rx tr:when retrnsmt uid timeout inode
            if f.len() < 10 || f[3] != "0A" {
                return None;
            }
            let port = u16::from_str_radix(f[1].rsplit(':').next()?, 16).ok()?;
            Some((f[9].parse().ok()?, port))
        })
        .collect()
}

fn find_databases(proc_root: &Path, probes: &mut Probes) -> Vec<DatabaseServer> {
    let mut found: Vec<(u32, &'static str, String)> = Vec::new();
    for pid in list_dir(proc_root) {
        let Ok(n) = pid.parse::<u32>() else { continue };
        let Some(comm) = read_trimmed(&proc_root.join(&pid).join("comm")) else {
            continue;
        };
        if let Some(kind) = db_kind_for_comm(&comm) {
            found.push((n, kind, comm));
        }
    }
    if found.is_empty() {
        return Vec::new();
    }
    let listening: HashMap<u64, u16> = ["net/tcp", "net/tcp6"]
        .iter()
        .filter_map(|f| read_opt(&proc_root.join(f)))
        .flat_map(|t| parse_listening_sockets(&t))
        .collect();
    let mut servers: Vec<(DatabaseServer, PathBuf)> = Vec::new();
    for (pid, kind, comm) in found {
        let exe = std::fs::read_link(proc_root.join(pid.to_string()).join("exe"))
            .map(|p| PathBuf::from(p.to_string_lossy().trim_end_matches(" (deleted)")))
            .unwrap_or_default();
        let port = socket_ports(&proc_root.join(pid.to_string()).join("fd"), &listening)
            .into_iter()
            .min();
        let mut s = DatabaseServer {
            kind: kind.to_string(),
            version: String::new(),
            port,
        };
        if probes.cfg.probe_versions && !exe.as_os_str().is_empty() {
            let v = server_version(&exe, &comm, probes);
            if let Some((k, v)) = parse_server_version(&v) {
                s.kind = k.to_string();
                s.version = v;
            }
        }
        servers.push((s, exe));
    }
    // Server processes fork workers (every PostgreSQL backend is a `postgres`):
    // one entry per listening instance; instances with no known port collapse
    // into one per binary unless a listening one of that binary exists.
    let mut out: Vec<DatabaseServer> = Vec::new();
    let mut seen: BTreeSet<(String, PathBuf, Option<u16>)> = BTreeSet::new();
    for (s, exe) in &servers {
        let has_listener = servers
            .iter()
            .any(|(o, e)| e == exe && o.kind == s.kind && o.port.is_some());
        if s.port.is_none() && has_listener {
            continue;
        }
        // A process whose binary cannot be read (a backend that exited while
        // we looked) belongs to a server already seen, not to a new one:
        // counting it made servers appear and vanish between two inventories.
        if exe.as_os_str().is_empty()
            && servers
                .iter()
                .any(|(o, e)| o.kind == s.kind && !e.as_os_str().is_empty())
        {
            continue;
        }
        if seen.insert((s.kind.clone(), exe.clone(), s.port)) {
            out.push(s.clone());
        }
    }
    out.sort_by(|a, b| (&a.kind, a.port, &a.version).cmp(&(&b.kind, b.port, &b.version)));
    out
}

/// Ports of the listening sockets among a process's open files.
fn socket_ports(fd_dir: &Path, listening: &HashMap<u64, u16>) -> Vec<u16> {
    if listening.is_empty() {
        return Vec::new();
    }
    let Ok(dir) = std::fs::read_dir(fd_dir) else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok())
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter_map(|t| {
            let t = t.to_string_lossy().into_owned();
            t.strip_prefix("socket:[")?.strip_suffix(']')?.parse::<u64>().ok()
        })
        .filter_map(|inode| listening.get(&inode).copied())
        .collect()
}

/// `<exe> --version`, cached per binary path and modification time. The
/// process name is passed as argv[0]: Debian's `redis-server` is a link to
/// `redis-check-rdb`, which picks its personality from argv[0].
fn server_version(exe: &Path, comm: &str, probes: &mut Probes) -> String {
    let mtime = std::fs::metadata(exe).and_then(|m| m.modified()).ok();
    let key = (exe.to_path_buf(), mtime);
    if let Some(v) = probes.versions.get(&key) {
        return v.clone();
    }
    let v = match run_with_timeout(exe, Some(comm), &["--version"], probes.timeout()) {
        Ok(out) => out,
        Err(e) => {
            tracing::debug!(error = %e, "inventory: no server version");
            String::new()
        }
    };
    probes.versions.insert(key, v.clone());
    v
}

/// Runs a command and returns its standard output; a failure to start, a
/// timeout or a non-zero exit is an error naming the program. Blocking: the
/// inventory runs off the async runtime.
pub fn run_with_timeout(
    program: &Path,
    arg0: Option<&str>,
    args: &[&str],
    timeout: Duration,
) -> Result<String, CommandError> {
    let out = crate::command::run_as(program, arg0, args, timeout)?;
    if out.code != Some(0) {
        return Err(CommandError::Failed {
            program: program.display().to_string(),
            status: out
                .code
                .map_or_else(|| "a signal".to_string(), |c| format!("exit status {c}")),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> String {
        let p = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/inventory")
            .join(name);
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    #[test]
    fn os_release_of_debian() {
        let os = parse_os_release(&fixture("server/etc/os-release"));
        assert_eq!(os.pretty_name, "Debian GNU/Linux 12 (bookworm)");
        assert_eq!(os.version_id, "12");
        let os = parse_os_release("NAME='Alpine Linux'\nVERSION_ID=3.19.1\n# comment\n");
        assert_eq!(
            os,
            OsRelease {
                pretty_name: "Alpine Linux".into(),
                version_id: "3.19.1".into()
            }
        );
        assert_eq!(parse_os_release("garbage\n"), OsRelease::default());
    }

    #[test]
    fn cpuinfo_of_a_two_socket_server() {
        let c = parse_cpuinfo(&fixture("server/proc/cpuinfo"));
        assert_eq!(c.model, "Intel(R) Xeon(R) Silver 4210R CPU @ 2.40GHz");
        assert_eq!((c.sockets, c.cores, c.threads), (2, 4, 8));
    }

    #[test]
    fn cpuinfo_of_this_kind_of_vm_and_of_arm() {
        let vm = "processor\t: 0\nmodel name\t: Intel(R) Xeon(R) Processor\nphysical id\t: 0\ncore id\t\t: 0\n\nprocessor\t: 1\nmodel name\t: Intel(R) Xeon(R) Processor\nphysical id\t: 0\ncore id\t\t: 1\n";
        assert_eq!(parse_cpuinfo(vm).sockets, 1);
        assert_eq!(parse_cpuinfo(vm).cores, 2);
        let arm = "processor\t: 0\nBogoMIPS\t: 48.00\n\nprocessor\t: 1\nBogoMIPS\t: 48.00\n\nHardware\t: BCM2835\nModel\t\t: Raspberry Pi 4 Model B Rev 1.4\n";
        let c = parse_cpuinfo(arm);
        assert_eq!((c.sockets, c.cores, c.threads), (0, 2, 2));
        assert_eq!(c.model, "BCM2835");
    }

    #[test]
    fn meminfo_total() {
        assert_eq!(
            parse_meminfo_total("MemTotal:       32686472 kB\nMemFree: 1 kB\n"),
            Some(32686472 * 1024)
        );
        assert_eq!(parse_meminfo_total("MemFree: 1 kB\n"), None);
    }

    #[test]
    fn dmidecode_memory_devices() {
        let m = parse_dmidecode_memory(&fixture("dmidecode-t17.txt"));
        assert_eq!(m.len(), 2, "{m:?}");
        assert_eq!(
            m[0],
            MemoryModule {
                locator: "A1".into(),
                size_bytes: 32 << 30,
                kind: "DDR4".into(),
                manufacturer: "00AD00B300AD".into(),
                part_number: "HMA84GR7CJR4N-XN".into(),
                serial: "738C2D9A".into(),
            }
        );
        assert_eq!(m[1].locator, "B1");
        assert_eq!(m[1].size_bytes, 16384 << 20);
        assert!(parse_dmidecode_memory("# No SMBIOS nor DMI entry point found, sorry.\n").is_empty());
        assert_eq!(parse_dmi_size("No Module Installed"), None);
        assert_eq!(parse_dmi_size("2 TB"), Some(2 << 40));
    }

    #[test]
    fn server_versions_from_real_output() {
        assert_eq!(
            parse_server_version(&fixture("versions/postgres.txt")),
            Some(("postgresql", "15.20".to_string()))
        );
        assert_eq!(
            parse_server_version(&fixture("versions/mariadbd.txt")),
            Some(("mariadb", "10.11.19".to_string()))
        );
        assert_eq!(
            parse_server_version(&fixture("versions/mysqld-is-mariadb.txt")),
            Some(("mariadb", "10.11.19".to_string()))
        );
        assert_eq!(
            parse_server_version(&fixture("versions/redis-server.txt")),
            Some(("redis", "7.0.15".to_string()))
        );
        assert_eq!(
            parse_server_version("/usr/sbin/mysqld  Ver 8.0.36 for Linux on x86_64 (MySQL Community Server - GPL)\n"),
            Some(("mysql", "8.0.36".to_string()))
        );
        assert_eq!(parse_server_version("redis-check-rdb 7.0.15\n"), None);
        assert_eq!(parse_server_version(""), None);
    }

    #[test]
    fn disk_helpers() {
        assert_eq!(
            disk_interface(
                "sda",
                "../devices/pci0000:00/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0/block/sda"
            ),
            "sata"
        );
        assert_eq!(
            disk_interface(
                "nvme0n1",
                "../devices/pci0000:00/0000:00:1d.0/0000:3d:00.0/nvme/nvme0/nvme0n1"
            ),
            "nvme"
        );
        assert_eq!(
            disk_interface("vda", "../devices/pci0000:00/0000:00:02.0/virtio1/block/vda"),
            "virtio"
        );
        assert_eq!(
            disk_interface(
                "sdc",
                "../devices/pci0000:00/0000:00:01.0/0000:01:00.0/host0/port-0:0/end_device-0:0/target0:0:0/0:0:0:0/block/sdc"
            ),
            "sas"
        );
        assert_eq!(
            disk_interface(
                "sdd",
                "../devices/pci0000:00/0000:00:14.0/usb2/2-1/2-1:1.0/host6/target6:0:0/6:0:0:0/block/sdd"
            ),
            "usb"
        );
        assert_eq!(disk_interface("sde", ""), "");
        for skipped in ["loop0", "ram1", "zram0", "dm-0", "md127", "sr0"] {
            assert!(is_skipped_block(skipped), "{skipped}");
        }
        assert!(!is_skipped_block("sda") && !is_skipped_block("nvme0n1"));
        let mut pg80 = vec![0x00, 0x80, 0x00, 0x14];
        pg80.extend_from_slice(b"    S4EVNX0R123456  ");
        assert_eq!(parse_vpd_pg80(&pg80), "S4EVNX0R123456");
        assert_eq!(parse_vpd_pg80(&[0, 0x83, 0, 1, b'x']), "");
        assert_eq!(parse_vpd_pg80(&[0, 0x80, 0, 200, b'A', b'B']), "AB", "short page");
        assert_eq!(parse_speed("1000\n"), Some(1000));
        assert_eq!(parse_speed("-1\n"), None);
        assert_eq!(parse_speed(""), None);
        assert_eq!(clean_dmi("To Be Filled By O.E.M."), "");
        assert_eq!(clean_dmi("0000000000"), "");
        assert_eq!(clean_dmi(" CZJ9420ABC "), "CZJ9420ABC");
    }

    #[test]
    fn listening_sockets_of_proc_net_tcp() {
        let v = parse_listening_sockets(&fixture("server/proc/net/tcp"));
        assert_eq!(v, vec![(23456, 5432), (24567, 6379)]);
    }

    fn disk(name: &str, serial: &str, wwn: &str) -> DiskInfo {
        DiskInfo {
            name: name.into(),
            serial: serial.into(),
            wwn: wwn.into(),
            ..DiskInfo::default()
        }
    }

    #[test]
    fn smart_identity_is_merged_by_name_then_wwn_then_serial() {
        let mut disks = vec![
            DiskInfo {
                model: "Samsung SSD".into(),
                capacity_bytes: 500,
                rotational: Some(false),
                ..disk("sda", "", "")
            },
            disk("sdb", "", "naa.5000c500a1b2c3d4"),
            disk("nvme0n1", "S5GXNX0T1", ""),
        ];
        let smart = vec![
            DiskInfo {
                model: "Samsung SSD 860 EVO 500GB".into(),
                firmware: "RVT04B6Q".into(),
                ..disk("sda", "S3Z1NB0K1", "")
            },
            DiskInfo {
                firmware: "SN05".into(),
                ..disk("", "ZC1A2B3C", "NAA.5000C500A1B2C3D4")
            },
            DiskInfo {
                firmware: "2B2QEXM7".into(),
                ..disk("", "S5GXNX0T1", "")
            },
            // Behind a RAID controller: sysfs only shows the logical volume.
            disk("megaraid,0", "WD-WCC4N1", ""),
        ];
        merge_disk_identity(&mut disks, &smart);
        let names: Vec<&str> = disks.iter().map(|d| d.name.as_str()).collect();
        assert_eq!(names, ["megaraid,0", "nvme0n1", "sda", "sdb"]);
        let sda = &disks[2];
        assert_eq!(
            (sda.serial.as_str(), sda.model.as_str(), sda.firmware.as_str()),
            ("S3Z1NB0K1", "Samsung SSD 860 EVO 500GB", "RVT04B6Q")
        );
        assert_eq!(
            (sda.capacity_bytes, sda.rotational),
            (500, Some(false)),
            "kept from sysfs"
        );
        assert_eq!(
            (disks[3].serial.as_str(), disks[3].firmware.as_str()),
            ("ZC1A2B3C", "SN05")
        );
        assert_eq!(disks[1].firmware, "2B2QEXM7");
        assert_eq!(disks[0].serial, "WD-WCC4N1");
        // Merging the same again changes nothing.
        let before = disks.clone();
        merge_disk_identity(&mut disks, &smart);
        assert_eq!(disks, before);
    }

    #[test]
    fn hash_ignores_the_hash_field_and_sees_content() {
        let mut inv = Inventory::default();
        let h = content_hash(&inv);
        assert_eq!(h.len(), 64);
        inv.content_hash = h.clone();
        assert_eq!(content_hash(&inv), h);
        inv.disks.push(disk("sda", "X", ""));
        assert_ne!(content_hash(&inv), h);
    }

    #[test]
    fn a_command_that_hangs_is_killed() {
        let r = run_with_timeout(Path::new("/bin/sleep"), None, &["5"], Duration::from_millis(100));
        assert!(
            matches!(r, Err(CommandError::Run(crate::command::CommandError::TimedOut { .. }))),
            "{r:?}"
        );
        let r = run_with_timeout(Path::new("/nonexistent/bin"), None, &[], Duration::from_millis(100));
        let msg = r.err().map(|e| e.to_string()).unwrap_or_default();
        assert_eq!(msg, "/nonexistent/bin not found");
        let r = run_with_timeout(
            Path::new("/bin/sh"),
            Some("mysh"),
            &["-c", "echo $0"],
            Duration::from_secs(5),
        );
        assert_eq!(r.ok().as_deref(), Some("mysh\n"));
    }

    #[test]
    fn a_vanishing_backend_is_not_a_second_server() {
        // Regression: a PostgreSQL backend that exited between reading its
        // `comm` and its `exe` was listed as a server of its own, so the
        // asset archive saw a server "removed" in the next inventory.
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let proc_root = dir.path();
        for (pid, exe) in [("100", Some("/usr/lib/postgresql/15/bin/postgres")), ("101", None)] {
            let p = proc_root.join(pid);
            std::fs::create_dir_all(&p).unwrap_or_else(|e| panic!("{e}"));
            std::fs::write(p.join("comm"), "postgres\n").unwrap_or_else(|e| panic!("{e}"));
            if let Some(exe) = exe {
                std::os::unix::fs::symlink(exe, p.join("exe")).unwrap_or_else(|e| panic!("{e}"));
            }
        }
        let mut probes = Probes::new(
            &InventoryConfig {
                probe_versions: false,
                dmidecode: false,
            },
            Duration::from_millis(100),
        );
        let found = find_databases(proc_root, &mut probes);
        assert_eq!(
            found,
            vec![DatabaseServer {
                kind: "postgresql".into(),
                version: String::new(),
                port: None,
            }]
        );
    }

    #[test]
    fn a_link_going_down_is_not_a_new_configuration() {
        let mut inv = Inventory::default();
        inv.nics.push(caretaker_shared::wire::NicInfo {
            name: "eno1".into(),
            mac: "b0:26:28:aa:bb:c0".into(),
            speed_mbps: Some(1000),
            driver: "tg3".into(),
            operstate: "up".into(),
        });
        let h = content_hash(&inv);
        inv.nics[0].operstate = "down".into();
        inv.nics[0].speed_mbps = None;
        assert_eq!(content_hash(&inv), h);
        inv.nics[0].mac = "b0:26:28:aa:bb:ff".into();
        assert_ne!(content_hash(&inv), h, "a new MAC is a new configuration");
    }
}
