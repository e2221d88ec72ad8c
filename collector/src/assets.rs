//! The asset archive's diff: what changed between two inventory versions of
//! one host, as a short list of dated entries a person reads ("disk sdb serial
//! X replaced by Y", "kernel 6.1.0-18 → 6.1.0-21"). Pure: the store calls it
//! when a new version arrives and keeps the result in `asset_changes`.
//!
//! Things are matched by identity, not position, so a reordered list is no
//! change. Disks are matched by serial, else WWN, else device name (names are
//! not stable across reboots; serials are). A disk whose serial changed under
//! the same name is one `disk_replaced`, not a removal plus an addition.
//! The BMC, power supplies (by name), RAID controllers (by their `c0`/`slot2`
//! id) and virtual disks (by their `c0/v0` id) are compared the same way: a
//! power supply or controller with another serial in the same place was
//! replaced.

use std::collections::BTreeMap;

use caretaker_shared::wire::{
    BmcInfo, DatabaseServer, DiskInfo, Inventory, MemoryModule, NicInfo, PsuInfo, RaidControllerInfo, VirtualDiskInfo,
};

/// Whether two inventories describe the same configuration: their
/// canonical forms (state such as a NIC's link left out, lists in one order)
/// are compared. The agent's `content_hash` is not trusted for this: it is
/// only what the agent says, and an agent that sends the same hash for a
/// changed configuration must not keep the change out of the archive.
pub fn same_configuration(old: &Inventory, new: &Inventory) -> bool {
    old.canonical() == new.canonical()
}

pub use crate::store::assets::Change;

impl Change {
    fn new(kind: &str, subject: &str, old: impl Into<String>, new: impl Into<String>, summary: String) -> Self {
        Self {
            kind: kind.into(),
            subject: subject.into(),
            old: old.into(),
            new: new.into(),
            summary,
        }
    }
}

/// Everything that changed from `old` to `new`, in a fixed order (host, then
/// CPU and memory, disks, NICs, databases, BMC, power supplies, RAID
/// controllers, virtual disks). Identical inventories give none.
///
/// An `old` inventory without a content hash came from an agent that did not
/// yet report disks, NICs, DIMMs, DMI and databases: those sections are not
/// compared (they would all read as "added"), only what both versions know.
pub fn diff(old: &Inventory, new: &Inventory) -> Vec<Change> {
    let mut out = Vec::new();
    let full = !old.content_hash.is_empty();
    let mut scalar = |kind: &str, subject: &str, label: &str, o: &str, n: &str| {
        if o != n {
            out.push(Change::new(
                kind,
                subject,
                o,
                n,
                format!("{label} {} → {}", show(o), show(n)),
            ));
        }
    };
    if full {
        scalar(
            "machine_id_changed",
            "machine_id",
            "machine id",
            &old.machine_id,
            &new.machine_id,
        );
        scalar("os_changed", "os", "OS", &old.os_name, &new.os_name);
    }
    scalar(
        "os_version_changed",
        "os_version",
        "OS version",
        &old.os_version,
        &new.os_version,
    );
    scalar("kernel_changed", "kernel", "kernel", &old.kernel, &new.kernel);
    if full {
        let (o, n) = (&old.dmi, &new.dmi);
        let system = |d: &caretaker_shared::wire::DmiInfo| {
            [
                d.sys_vendor.as_str(),
                d.product_name.as_str(),
                d.product_serial.as_str(),
            ]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join(" ")
        };
        scalar("system_changed", "system", "system", &system(o), &system(n));
        scalar("board_changed", "board", "board", &o.board_name, &n.board_name);
        let bios = |d: &caretaker_shared::wire::DmiInfo| {
            if d.bios_date.is_empty() {
                d.bios_version.clone()
            } else {
                format!("{} ({})", d.bios_version, d.bios_date)
            }
        };
        if o.bios_version != n.bios_version || o.bios_date != n.bios_date {
            scalar("bios_changed", "bios", "BIOS", &bios(o), &bios(n));
        }
    }
    scalar("cpu_changed", "cpu", "CPU", &old.cpu_model, &new.cpu_model);
    if full {
        let cpus = |i: &Inventory| {
            format!(
                "{} socket(s), {} core(s), {} thread(s)",
                i.cpu_sockets, i.cpu_physical_cores, i.cpu_threads
            )
        };
        scalar("cpu_count_changed", "cpu_count", "CPUs", &cpus(old), &cpus(new));
    } else {
        let (o, n) = (old.cpu_cores.to_string(), new.cpu_cores.to_string());
        scalar("cpu_count_changed", "cpu_count", "logical CPUs", &o, &n);
    }
    if old.memory_bytes != new.memory_bytes {
        out.push(Change::new(
            "memory_changed",
            "memory",
            old.memory_bytes.to_string(),
            new.memory_bytes.to_string(),
            format!("memory {} → {}", bytes(old.memory_bytes), bytes(new.memory_bytes)),
        ));
    }
    if full {
        dimms(&old.memory_modules, &new.memory_modules, &mut out);
        disks(&old.disks, &new.disks, &mut out);
        nics(&old.nics, &new.nics, &mut out);
        databases(&old.databases, &new.databases, &mut out);
        bmc(old.bmc.as_ref(), new.bmc.as_ref(), &mut out);
        psus(&old.power_supplies, &new.power_supplies, &mut out);
        controllers(&old.raid_controllers, &new.raid_controllers, &mut out);
        virtual_disks(&old.virtual_disks, &new.virtual_disks, &mut out);
    }
    out
}

fn bmc_desc(b: &BmcInfo) -> String {
    let mut parts: Vec<String> = [b.vendor.as_str()]
        .iter()
        .filter(|s| !s.is_empty())
        .map(|s| s.to_string())
        .collect();
    if !b.firmware.is_empty() {
        parts.push(format!("firmware {}", b.firmware));
    }
    if !b.ip.is_empty() {
        parts.push(format!("IP {}", b.ip));
    }
    parts.join(", ")
}

fn bmc(old: Option<&BmcInfo>, new: Option<&BmcInfo>, out: &mut Vec<Change>) {
    match (old, new) {
        (None, None) => {}
        (Some(o), None) => out.push(Change::new(
            "bmc_removed",
            "bmc",
            bmc_desc(o),
            "",
            format!("BMC removed ({})", bmc_desc(o)),
        )),
        (None, Some(n)) => out.push(Change::new(
            "bmc_added",
            "bmc",
            "",
            bmc_desc(n),
            format!("BMC added ({})", bmc_desc(n)),
        )),
        (Some(o), Some(n)) => {
            for (kind, label, ov, nv) in [
                ("bmc_vendor_changed", "BMC vendor", &o.vendor, &n.vendor),
                ("bmc_firmware_changed", "BMC firmware", &o.firmware, &n.firmware),
                ("bmc_ip_changed", "BMC IP", &o.ip, &n.ip),
            ] {
                if ov != nv {
                    out.push(Change::new(
                        kind,
                        "bmc",
                        ov.clone(),
                        nv.clone(),
                        format!("{label} {} → {}", show(ov), show(nv)),
                    ));
                }
            }
        }
    }
}

fn serial_of(serial: &str) -> &str {
    if serial.trim().is_empty() {
        "(no serial)"
    } else {
        serial.trim()
    }
}

fn psu_desc(p: &PsuInfo) -> String {
    let mut s = format!("serial {}", serial_of(&p.serial));
    if !p.model.is_empty() {
        s = format!("{} {s}", p.model);
    }
    if let Some(w) = p.capacity_watts {
        s.push_str(&format!(", {w} W"));
    }
    s
}

fn psus(old: &[PsuInfo], new: &[PsuInfo], out: &mut Vec<Change>) {
    let o: BTreeMap<&str, &PsuInfo> = old.iter().map(|p| (p.name.as_str(), p)).collect();
    let n: BTreeMap<&str, &PsuInfo> = new.iter().map(|p| (p.name.as_str(), p)).collect();
    for (name, op) in &o {
        match n.get(name) {
            None => out.push(Change::new(
                "psu_removed",
                name,
                serial_of(&op.serial),
                "",
                format!("PSU {name} removed ({})", psu_desc(op)),
            )),
            Some(np) if np.serial.trim() != op.serial.trim() || np.model != op.model => out.push(Change::new(
                "psu_replaced",
                name,
                serial_of(&op.serial),
                serial_of(&np.serial),
                if np.model == op.model {
                    format!(
                        "PSU {name} serial {} replaced by {}",
                        serial_of(&op.serial),
                        serial_of(&np.serial)
                    )
                } else {
                    format!("PSU {name} {} replaced by {}", psu_desc(op), psu_desc(np))
                },
            )),
            Some(_) => {}
        }
    }
    for (name, np) in &n {
        if !o.contains_key(name) {
            out.push(Change::new(
                "psu_added",
                name,
                "",
                serial_of(&np.serial),
                format!("PSU {name} added ({})", psu_desc(np)),
            ));
        }
    }
}

fn controller_desc(c: &RaidControllerInfo) -> String {
    let mut s = format!("serial {}", serial_of(&c.serial));
    if !c.model.is_empty() {
        s = format!("{} {s}", c.model);
    }
    if !c.firmware.is_empty() {
        s.push_str(&format!(", firmware {}", c.firmware));
    }
    s
}

fn controllers(old: &[RaidControllerInfo], new: &[RaidControllerInfo], out: &mut Vec<Change>) {
    let o: BTreeMap<&str, &RaidControllerInfo> = old.iter().map(|c| (c.id.as_str(), c)).collect();
    let n: BTreeMap<&str, &RaidControllerInfo> = new.iter().map(|c| (c.id.as_str(), c)).collect();
    for (id, oc) in &o {
        let Some(nc) = n.get(id) else {
            out.push(Change::new(
                "controller_removed",
                id,
                serial_of(&oc.serial),
                "",
                format!("controller {id} removed ({})", controller_desc(oc)),
            ));
            continue;
        };
        if nc.serial.trim() != oc.serial.trim() || nc.model != oc.model {
            out.push(Change::new(
                "controller_replaced",
                id,
                serial_of(&oc.serial),
                serial_of(&nc.serial),
                format!(
                    "controller {id} {} replaced by {}",
                    controller_desc(oc),
                    controller_desc(nc)
                ),
            ));
            // The new controller's firmware is in its description.
            continue;
        }
        if nc.firmware != oc.firmware {
            out.push(Change::new(
                "controller_firmware_changed",
                id,
                oc.firmware.clone(),
                nc.firmware.clone(),
                format!(
                    "controller {id} firmware {} → {}",
                    show(&oc.firmware),
                    show(&nc.firmware)
                ),
            ));
        }
        let backup = |c: &RaidControllerInfo| {
            format!("{} {}", c.cache_backup, c.cache_backup_model)
                .trim()
                .to_string()
        };
        if backup(oc) != backup(nc) {
            out.push(Change::new(
                "controller_cache_backup_changed",
                id,
                backup(oc),
                backup(nc),
                format!(
                    "controller {id} cache backup {} → {}",
                    show(&backup(oc)),
                    show(&backup(nc))
                ),
            ));
        }
    }
    for (id, nc) in &n {
        if !o.contains_key(id) {
            out.push(Change::new(
                "controller_added",
                id,
                "",
                serial_of(&nc.serial),
                format!("controller {id} added ({})", controller_desc(nc)),
            ));
        }
    }
}

fn vd_desc(v: &VirtualDiskInfo) -> String {
    let mut s = format!("{}, {}", show(&v.level), bytes(v.size_bytes));
    if !v.name.is_empty() {
        s = format!("{} {s}", v.name);
    }
    s
}

fn virtual_disks(old: &[VirtualDiskInfo], new: &[VirtualDiskInfo], out: &mut Vec<Change>) {
    let o: BTreeMap<&str, &VirtualDiskInfo> = old.iter().map(|v| (v.id.as_str(), v)).collect();
    let n: BTreeMap<&str, &VirtualDiskInfo> = new.iter().map(|v| (v.id.as_str(), v)).collect();
    for (id, ov) in &o {
        let Some(nv) = n.get(id) else {
            out.push(Change::new(
                "vd_removed",
                id,
                vd_desc(ov),
                "",
                format!("virtual disk {id} removed ({})", vd_desc(ov)),
            ));
            continue;
        };
        if nv.level != ov.level {
            out.push(Change::new(
                "vd_level_changed",
                id,
                ov.level.clone(),
                nv.level.clone(),
                format!("virtual disk {id} level {} → {}", show(&ov.level), show(&nv.level)),
            ));
        }
        if nv.size_bytes != ov.size_bytes {
            out.push(Change::new(
                "vd_size_changed",
                id,
                ov.size_bytes.to_string(),
                nv.size_bytes.to_string(),
                format!(
                    "virtual disk {id} size {} → {}",
                    bytes(ov.size_bytes),
                    bytes(nv.size_bytes)
                ),
            ));
        }
    }
    for (id, nv) in &n {
        if !o.contains_key(id) {
            out.push(Change::new(
                "vd_added",
                id,
                "",
                vd_desc(nv),
                format!("virtual disk {id} added ({})", vd_desc(nv)),
            ));
        }
    }
}

fn show(v: &str) -> &str {
    if v.is_empty() { "(none)" } else { v }
}

/// Binary units, as memory and disks are sold and shown by the OS.
fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 || v.fract() == 0.0 {
        format!("{v:.0} {}", UNITS[u])
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn dimm_id(m: &MemoryModule) -> String {
    let mut s = format!("{} {}", bytes(m.size_bytes), m.kind).trim().to_string();
    if !m.part_number.is_empty() {
        s.push_str(&format!(" {}", m.part_number));
    }
    if !m.serial.is_empty() {
        s.push_str(&format!(" serial {}", m.serial));
    }
    s
}

fn dimms(old: &[MemoryModule], new: &[MemoryModule], out: &mut Vec<Change>) {
    let o: BTreeMap<&str, &MemoryModule> = old.iter().map(|m| (m.locator.as_str(), m)).collect();
    let n: BTreeMap<&str, &MemoryModule> = new.iter().map(|m| (m.locator.as_str(), m)).collect();
    for (slot, m) in &o {
        match n.get(slot) {
            None => out.push(Change::new(
                "dimm_removed",
                slot,
                dimm_id(m),
                "",
                format!("DIMM {slot} removed ({})", dimm_id(m)),
            )),
            Some(nm) if nm != m => out.push(Change::new(
                "dimm_replaced",
                slot,
                dimm_id(m),
                dimm_id(nm),
                format!("DIMM {slot} {} replaced by {}", dimm_id(m), dimm_id(nm)),
            )),
            Some(_) => {}
        }
    }
    for (slot, m) in &n {
        if !o.contains_key(slot) {
            out.push(Change::new(
                "dimm_added",
                slot,
                "",
                dimm_id(m),
                format!("DIMM {slot} added ({})", dimm_id(m)),
            ));
        }
    }
}

/// How a disk is named in a summary: its serial, else its WWN, else "(no serial)".
fn disk_id(d: &DiskInfo) -> String {
    if !d.serial.is_empty() {
        d.serial.clone()
    } else if !d.wwn.is_empty() {
        d.wwn.clone()
    } else {
        "(no serial)".into()
    }
}

fn disk_desc(d: &DiskInfo) -> String {
    let mut s = format!("serial {}", disk_id(d));
    if !d.model.is_empty() {
        s = format!("{} {s}", d.model);
    }
    if d.capacity_bytes > 0 {
        s.push_str(&format!(", {}", bytes(d.capacity_bytes)));
    }
    s
}

fn same_id(a: &str, b: &str) -> bool {
    !a.is_empty() && a.eq_ignore_ascii_case(b)
}

fn disks(old: &[DiskInfo], new: &[DiskInfo], out: &mut Vec<Change>) {
    let mut old_left: Vec<Option<&DiskInfo>> = old.iter().map(Some).collect();
    let mut new_left: Vec<Option<&DiskInfo>> = new.iter().map(Some).collect();
    let mut pairs: Vec<(&DiskInfo, &DiskInfo)> = Vec::new();
    // Pass 1: the same serial; pass 2: the same WWN (disks with no readable serial).
    let keys: [fn(&DiskInfo) -> &str; 2] = [|d| d.serial.as_str(), |d| d.wwn.as_str()];
    for key in keys {
        for o in old_left.iter_mut() {
            let Some(od) = *o else { continue };
            let found = new_left
                .iter_mut()
                .find(|n| n.is_some_and(|nd| same_id(key(od), key(nd))));
            if let Some(n) = found {
                if let Some(nd) = n.take() {
                    pairs.push((od, nd));
                    *o = None;
                }
            }
        }
    }
    // Pass 3: the same device name. Both sides without identity: the same disk
    // as far as anyone can tell; otherwise a different disk in that slot.
    for o in old_left.iter_mut() {
        let Some(od) = *o else { continue };
        let found = new_left.iter_mut().find(|n| n.is_some_and(|nd| nd.name == od.name));
        let Some(n) = found else { continue };
        let Some(nd) = n.take() else { continue };
        *o = None;
        let anonymous = |d: &DiskInfo| d.serial.is_empty() && d.wwn.is_empty();
        if anonymous(od) && anonymous(nd) {
            pairs.push((od, nd));
        } else {
            out.push(Change::new(
                "disk_replaced",
                &nd.name,
                disk_id(od),
                disk_id(nd),
                format!("disk {} serial {} replaced by {}", nd.name, disk_id(od), disk_id(nd)),
            ));
        }
    }
    for (od, nd) in pairs {
        if od.location != nd.location {
            out.push(Change::new(
                "disk_location_changed",
                &nd.name,
                od.location.clone(),
                nd.location.clone(),
                format!(
                    "disk {} ({}) location {} → {}",
                    nd.name,
                    disk_id(nd),
                    show(&od.location),
                    show(&nd.location)
                ),
            ));
        }
        if od.firmware != nd.firmware && !od.firmware.is_empty() && !nd.firmware.is_empty() {
            out.push(Change::new(
                "disk_firmware_changed",
                &nd.name,
                od.firmware.clone(),
                nd.firmware.clone(),
                format!(
                    "disk {} ({}) firmware {} → {}",
                    nd.name,
                    disk_id(nd),
                    od.firmware,
                    nd.firmware
                ),
            ));
        }
    }
    for od in old_left.into_iter().flatten() {
        out.push(Change::new(
            "disk_removed",
            &od.name,
            disk_id(od),
            "",
            format!("disk {} removed ({})", od.name, disk_desc(od)),
        ));
    }
    for nd in new_left.into_iter().flatten() {
        out.push(Change::new(
            "disk_added",
            &nd.name,
            "",
            disk_id(nd),
            format!("disk {} added ({})", nd.name, disk_desc(nd)),
        ));
    }
}

fn nics(old: &[NicInfo], new: &[NicInfo], out: &mut Vec<Change>) {
    let o: BTreeMap<&str, &NicInfo> = old.iter().map(|n| (n.name.as_str(), n)).collect();
    let n: BTreeMap<&str, &NicInfo> = new.iter().map(|n| (n.name.as_str(), n)).collect();
    for (name, on) in &o {
        match n.get(name) {
            None => out.push(Change::new(
                "nic_removed",
                name,
                on.mac.clone(),
                "",
                format!("NIC {name} removed (MAC {})", show(&on.mac)),
            )),
            Some(nn) if !nn.mac.eq_ignore_ascii_case(&on.mac) => out.push(Change::new(
                "nic_mac_changed",
                name,
                on.mac.clone(),
                nn.mac.clone(),
                format!("NIC {name} MAC {} → {}", show(&on.mac), show(&nn.mac)),
            )),
            Some(_) => {}
        }
    }
    for (name, nn) in &n {
        if !o.contains_key(name) {
            out.push(Change::new(
                "nic_added",
                name,
                "",
                nn.mac.clone(),
                format!("NIC {name} added (MAC {}, driver {})", show(&nn.mac), show(&nn.driver)),
            ));
        }
    }
}

fn db_subject(d: &DatabaseServer) -> String {
    match d.port {
        Some(p) => format!("{}:{p}", d.kind),
        None => d.kind.clone(),
    }
}

fn databases(old: &[DatabaseServer], new: &[DatabaseServer], out: &mut Vec<Change>) {
    let o: BTreeMap<String, &DatabaseServer> = old.iter().map(|d| (db_subject(d), d)).collect();
    let n: BTreeMap<String, &DatabaseServer> = new.iter().map(|d| (db_subject(d), d)).collect();
    for (subject, od) in &o {
        match n.get(subject) {
            None => out.push(Change::new(
                "database_removed",
                subject,
                od.version.clone(),
                "",
                format!("database server {subject} {} removed", od.version).replace("  ", " "),
            )),
            Some(nd) if nd.version != od.version => out.push(Change::new(
                "database_version_changed",
                subject,
                od.version.clone(),
                nd.version.clone(),
                format!("{subject} {} → {}", show(&od.version), show(&nd.version)),
            )),
            Some(_) => {}
        }
    }
    for (subject, nd) in &n {
        if !o.contains_key(subject) {
            out.push(Change::new(
                "database_added",
                subject,
                "",
                nd.version.clone(),
                format!("database server {subject} {} added", nd.version).replace("  ", " "),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use caretaker_shared::wire::DmiInfo;

    fn disk(name: &str, serial: &str, wwn: &str) -> DiskInfo {
        DiskInfo {
            location: String::new(),
            name: name.into(),
            model: "ST4000NM0035-1V4".into(),
            serial: serial.into(),
            wwn: wwn.into(),
            firmware: "TN05".into(),
            capacity_bytes: 4_000_787_030_016,
            rotational: Some(true),
            interface: "sata".into(),
        }
    }

    fn server() -> Inventory {
        Inventory {
            hostname: "db01".into(),
            os_name: "Debian GNU/Linux 12 (bookworm)".into(),
            os_version: "12".into(),
            kernel: "6.1.0-18-amd64".into(),
            arch: "x86_64".into(),
            cpu_model: "Intel(R) Xeon(R) Silver 4210R CPU @ 2.40GHz".into(),
            cpu_cores: 40,
            memory_bytes: 64 << 30,
            machine_id: "5f2a9c0e".into(),
            dmi: DmiInfo {
                sys_vendor: "Dell Inc.".into(),
                product_name: "PowerEdge R640".into(),
                product_serial: "7XK2H93".into(),
                board_name: "0W23H8".into(),
                bios_version: "2.19.1".into(),
                bios_date: "06/28/2023".into(),
                ..DmiInfo::default()
            },
            cpu_sockets: 2,
            cpu_physical_cores: 20,
            cpu_threads: 40,
            memory_modules: vec![
                MemoryModule {
                    locator: "A1".into(),
                    size_bytes: 32 << 30,
                    kind: "DDR4".into(),
                    serial: "738C2D9A".into(),
                    ..MemoryModule::default()
                },
                MemoryModule {
                    locator: "B1".into(),
                    size_bytes: 32 << 30,
                    kind: "DDR4".into(),
                    serial: "41137A10".into(),
                    ..MemoryModule::default()
                },
            ],
            disks: vec![
                disk("sda", "S45PNA0M123456", "naa.5002538e40a1b2c3"),
                disk("sdb", "ZC1B2C3D", "naa.5000c500b1c2d3e4"),
                disk("nvme0n1", "S439NA0N600237", "eui.3634"),
            ],
            nics: vec![
                NicInfo {
                    name: "eno1".into(),
                    mac: "b0:26:28:aa:bb:c0".into(),
                    speed_mbps: Some(1000),
                    driver: "tg3".into(),
                    operstate: "up".into(),
                },
                NicInfo {
                    name: "eno2".into(),
                    mac: "b0:26:28:aa:bb:c1".into(),
                    speed_mbps: None,
                    driver: "tg3".into(),
                    operstate: "down".into(),
                },
            ],
            databases: vec![
                DatabaseServer {
                    kind: "postgresql".into(),
                    version: "15.5".into(),
                    port: Some(5432),
                },
                DatabaseServer {
                    kind: "redis".into(),
                    version: "7.0.15".into(),
                    port: Some(6379),
                },
            ],
            content_hash: "h1".into(),
            ..Inventory::default()
        }
    }

    fn kinds(c: &[Change]) -> Vec<&str> {
        c.iter().map(|c| c.kind.as_str()).collect()
    }

    #[test]
    fn identical_inventories_give_no_change() {
        assert_eq!(diff(&server(), &server()), vec![]);
    }

    #[test]
    fn reordered_lists_give_no_change() {
        let mut new = server();
        new.disks.reverse();
        new.nics.reverse();
        new.memory_modules.reverse();
        new.databases.reverse();
        new.content_hash = "h2".into();
        assert_eq!(diff(&server(), &new), vec![]);
    }

    #[test]
    fn a_swapped_disk_is_one_change_with_both_serials() {
        let mut new = server();
        new.disks[1] = disk("sdb", "ZC9X8Y7W", "naa.5000c500ffeeddcc");
        let c = diff(&server(), &new);
        assert_eq!(
            c,
            vec![Change {
                kind: "disk_replaced".into(),
                subject: "sdb".into(),
                old: "ZC1B2C3D".into(),
                new: "ZC9X8Y7W".into(),
                summary: "disk sdb serial ZC1B2C3D replaced by ZC9X8Y7W".into(),
            }]
        );
    }

    #[test]
    fn disks_are_matched_by_serial_not_by_name() {
        // After a reboot the kernel named the disks the other way round.
        let mut new = server();
        new.disks[0].name = "sdb".into();
        new.disks[1].name = "sda".into();
        assert_eq!(diff(&server(), &new), vec![]);
        // Without serials the WWN identifies them.
        let mut old = server();
        let mut new = server();
        for d in old.disks.iter_mut().chain(new.disks.iter_mut()) {
            d.serial.clear();
        }
        new.disks.swap(0, 1);
        new.disks[0].name = "sda".into();
        new.disks[1].name = "sdb".into();
        assert_eq!(diff(&old, &new), vec![]);
    }

    #[test]
    fn disks_added_removed_and_reflashed() {
        let mut new = server();
        new.disks.remove(2);
        new.disks.push(disk("sdc", "WD-WCC4N1", ""));
        new.disks[0].firmware = "HXT7404Q".into();
        let c = diff(&server(), &new);
        assert_eq!(kinds(&c), ["disk_firmware_changed", "disk_removed", "disk_added"]);
        assert_eq!(c[0].summary, "disk sda (S45PNA0M123456) firmware TN05 → HXT7404Q");
        assert_eq!(
            c[1].summary,
            "disk nvme0n1 removed (ST4000NM0035-1V4 serial S439NA0N600237, 3.6 TiB)"
        );
        assert_eq!((c[1].old.as_str(), c[1].new.as_str()), ("S439NA0N600237", ""));
        assert_eq!(c[2].subject, "sdc");
        assert_eq!(c[2].new, "WD-WCC4N1");
    }

    #[test]
    fn host_level_changes() {
        let mut new = server();
        new.kernel = "6.1.0-21-amd64".into();
        new.os_version = "12".into();
        new.dmi.bios_version = "2.21.2".into();
        new.dmi.bios_date = "02/01/2024".into();
        new.machine_id = "aa11".into();
        new.memory_bytes = 96 << 30;
        new.cpu_model = "Intel(R) Xeon(R) Gold 6230R CPU @ 2.10GHz".into();
        let c = diff(&server(), &new);
        assert_eq!(
            kinds(&c),
            [
                "machine_id_changed",
                "kernel_changed",
                "bios_changed",
                "cpu_changed",
                "memory_changed"
            ]
        );
        assert_eq!(c[1].summary, "kernel 6.1.0-18-amd64 → 6.1.0-21-amd64");
        assert_eq!(c[2].summary, "BIOS 2.19.1 (06/28/2023) → 2.21.2 (02/01/2024)");
        assert_eq!(c[4].summary, "memory 64 GiB → 96 GiB");
        assert_eq!((c[4].old.as_str(), c[4].new.as_str()), ("68719476736", "103079215104"));
    }

    #[test]
    fn os_system_and_cpu_count() {
        let mut new = server();
        new.os_name = "Debian GNU/Linux 13 (trixie)".into();
        new.os_version = "13".into();
        new.dmi.product_serial = "9ZZ0001".into();
        new.cpu_sockets = 1;
        new.cpu_physical_cores = 10;
        new.cpu_threads = 20;
        let c = diff(&server(), &new);
        assert_eq!(
            kinds(&c),
            [
                "os_changed",
                "os_version_changed",
                "system_changed",
                "cpu_count_changed"
            ]
        );
        assert_eq!(c[1].summary, "OS version 12 → 13");
        assert_eq!(
            c[2].summary,
            "system Dell Inc. PowerEdge R640 7XK2H93 → Dell Inc. PowerEdge R640 9ZZ0001"
        );
        assert_eq!(
            c[3].summary,
            "CPUs 2 socket(s), 20 core(s), 40 thread(s) → 1 socket(s), 10 core(s), 20 thread(s)"
        );
    }

    #[test]
    fn dimms_added_removed_replaced() {
        let mut new = server();
        new.memory_modules[0].serial = "11112222".into();
        new.memory_modules.remove(1);
        new.memory_modules.push(MemoryModule {
            locator: "C1".into(),
            size_bytes: 16 << 30,
            kind: "DDR4".into(),
            ..MemoryModule::default()
        });
        let c = diff(&server(), &new);
        assert_eq!(kinds(&c), ["dimm_replaced", "dimm_removed", "dimm_added"]);
        assert_eq!(
            c[0].summary,
            "DIMM A1 32 GiB DDR4 serial 738C2D9A replaced by 32 GiB DDR4 serial 11112222"
        );
        assert_eq!(c[1].summary, "DIMM B1 removed (32 GiB DDR4 serial 41137A10)");
        assert_eq!(c[2].summary, "DIMM C1 added (16 GiB DDR4)");
    }

    #[test]
    fn nics_added_removed_mac_changed() {
        let mut new = server();
        new.nics[0].mac = "b0:26:28:aa:bb:ff".into();
        new.nics[0].speed_mbps = Some(10_000);
        new.nics.remove(1);
        new.nics.push(NicInfo {
            name: "ens1f0".into(),
            mac: "3c:fd:fe:00:00:01".into(),
            driver: "i40e".into(),
            ..NicInfo::default()
        });
        let c = diff(&server(), &new);
        assert_eq!(kinds(&c), ["nic_mac_changed", "nic_removed", "nic_added"]);
        assert_eq!(c[0].summary, "NIC eno1 MAC b0:26:28:aa:bb:c0 → b0:26:28:aa:bb:ff");
        assert_eq!(c[2].summary, "NIC ens1f0 added (MAC 3c:fd:fe:00:00:01, driver i40e)");
    }

    #[test]
    fn database_servers() {
        let mut new = server();
        new.databases[0].version = "15.6".into();
        new.databases.remove(1);
        new.databases.push(DatabaseServer {
            kind: "mariadb".into(),
            version: "10.11.6".into(),
            port: Some(3306),
        });
        let c = diff(&server(), &new);
        assert_eq!(
            kinds(&c),
            ["database_version_changed", "database_removed", "database_added"]
        );
        assert_eq!(c[0].summary, "postgresql:5432 15.5 → 15.6");
        assert_eq!(c[1].summary, "database server redis:6379 7.0.15 removed");
        assert_eq!(c[2].summary, "database server mariadb:3306 10.11.6 added");
    }

    #[test]
    fn an_inventory_from_an_older_agent_compares_only_what_it_knew() {
        // Before the upgrade the agent sent neither a hash nor disks, NICs, ...
        let old = Inventory {
            hostname: "db01".into(),
            os_name: "Debian GNU/Linux".into(),
            os_version: "12".into(),
            kernel: "6.1.0-18-amd64".into(),
            cpu_model: server().cpu_model,
            cpu_cores: 40,
            memory_bytes: 64 << 30,
            ..Inventory::default()
        };
        assert_eq!(diff(&old, &server()), vec![]);
        let mut new = server();
        new.kernel = "6.1.0-21-amd64".into();
        assert_eq!(kinds(&diff(&old, &new)), ["kernel_changed"]);
    }

    #[test]
    fn byte_sizes_read_well() {
        assert_eq!(bytes(0), "0 B");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(64 << 30), "64 GiB");
        assert_eq!(bytes(480_103_981_056), "447.1 GiB");
    }

    #[test]
    fn same_configuration_compares_the_configurations_not_the_hashes() {
        let mut a = server();
        a.content_hash = "h1".into();
        let mut b = a.clone();
        b.nics[0].operstate = "down".into();
        b.nics[0].speed_mbps = None;
        b.content_hash = "h2".into();
        assert!(same_configuration(&a, &b), "state only, whatever the hashes say");
        b.disks.reverse();
        assert!(same_configuration(&a, &b), "a reordered list");
        let mut old = server();
        old.content_hash.clear();
        assert!(same_configuration(&old, &a), "no hash: the same configuration");
    }

    #[test]
    fn a_kernel_change_under_an_unchanged_agent_hash_is_a_change() {
        let mut old = server();
        old.content_hash = "same".into();
        for kernel in ["6.1.0-19-amd64", "6.1.0-20-amd64", "6.1.0-21-amd64"] {
            let mut new = old.clone();
            new.kernel = kernel.into();
            assert!(!same_configuration(&old, &new), "{kernel}");
            assert_eq!(kinds(&diff(&old, &new)), ["kernel_changed"]);
            old = new;
        }
    }

    fn raid_server() -> Inventory {
        let mut inv = server();
        inv.bmc = Some(BmcInfo {
            vendor: "Dell Inc.".into(),
            firmware: "7.00".into(),
            ipmi_version: "2.0".into(),
            ip: "10.0.0.21".into(),
        });
        inv.power_supplies = vec![
            PsuInfo {
                name: "PS1".into(),
                manufacturer: "DELL".into(),
                model: "0PJMDN".into(),
                serial: "CN1797226L0A31".into(),
                capacity_watts: Some(750),
            },
            PsuInfo {
                name: "PS2".into(),
                manufacturer: "DELL".into(),
                model: "0PJMDN".into(),
                serial: "CN1797226L0A32".into(),
                capacity_watts: Some(750),
            },
        ];
        inv.raid_controllers = vec![RaidControllerInfo {
            id: "c0".into(),
            kind: "perc".into(),
            model: "PERC H730P Mini".into(),
            serial: "5CF03RP".into(),
            firmware: "4.680".into(),
            cache_backup: "bbu".into(),
            cache_backup_model: "BBU".into(),
            cache_bytes: Some(2 << 30),
        }];
        inv.virtual_disks = vec![VirtualDiskInfo {
            id: "c0/v0".into(),
            level: "RAID5".into(),
            size_bytes: 3 * 4_000_787_030_016,
            name: "data".into(),
            members: vec!["32:0".into(), "32:1".into(), "32:2".into(), "32:3".into()],
        }];
        let mut behind = disk("c0/e32/s3", "Z1Z3ABCD", "");
        behind.location = "c0 32:3".into();
        inv.disks.push(behind);
        inv
    }

    #[test]
    fn bmc_psu_controller_and_virtual_disk_changes() {
        let old = raid_server();
        assert!(diff(&old, &old).is_empty());
        let mut new = raid_server();
        if let Some(b) = new.bmc.as_mut() {
            b.firmware = "7.10".into();
        }
        new.power_supplies[1].serial = "CN1797226L0B99".into();
        new.raid_controllers[0].firmware = "4.740".into();
        new.virtual_disks[0].level = "RAID6".into();
        new.virtual_disks.push(VirtualDiskInfo {
            id: "c0/v1".into(),
            level: "RAID1".into(),
            size_bytes: 2 << 40,
            ..VirtualDiskInfo::default()
        });
        if let Some(d) = new.disks.last_mut() {
            d.location = "c0 32:5".into();
        }
        let c = diff(&old, &new);
        let summaries: Vec<&str> = c.iter().map(|c| c.summary.as_str()).collect();
        assert_eq!(
            summaries,
            [
                "disk c0/e32/s3 (Z1Z3ABCD) location c0 32:3 → c0 32:5",
                "BMC firmware 7.00 → 7.10",
                "PSU PS2 serial CN1797226L0A32 replaced by CN1797226L0B99",
                "controller c0 firmware 4.680 → 4.740",
                "virtual disk c0/v0 level RAID5 → RAID6",
                "virtual disk c0/v1 added (RAID1, 2 TiB)",
            ]
        );
        assert_eq!(
            kinds(&c),
            [
                "disk_location_changed",
                "bmc_firmware_changed",
                "psu_replaced",
                "controller_firmware_changed",
                "vd_level_changed",
                "vd_added",
            ]
        );
        assert_eq!(
            (c[2].old.as_str(), c[2].new.as_str()),
            ("CN1797226L0A32", "CN1797226L0B99")
        );
    }

    #[test]
    fn a_swapped_controller_psus_and_arrays_removed_and_the_bmc_first_seen() {
        let old = raid_server();
        let mut new = raid_server();
        new.raid_controllers[0].serial = "9XK2J01".into();
        new.raid_controllers[0].firmware = "4.740".into();
        new.power_supplies.truncate(1);
        new.virtual_disks.clear();
        new.virtual_disks.push(VirtualDiskInfo {
            id: "c0/v0".into(),
            level: "RAID5".into(),
            size_bytes: 4 * 4_000_787_030_016,
            name: "data".into(),
            ..VirtualDiskInfo::default()
        });
        let c = diff(&old, &new);
        let summaries: Vec<&str> = c.iter().map(|c| c.summary.as_str()).collect();
        assert_eq!(
            summaries,
            [
                "PSU PS2 removed (0PJMDN serial CN1797226L0A32, 750 W)",
                "controller c0 PERC H730P Mini serial 5CF03RP, firmware 4.680 replaced by PERC H730P Mini serial 9XK2J01, firmware 4.740",
                "virtual disk c0/v0 size 10.9 TiB → 14.6 TiB",
            ]
        );
        // An agent that starts reading its BMC, and the BMC's IP changing.
        let mut no_bmc = raid_server();
        no_bmc.bmc = None;
        let c = diff(&no_bmc, &old);
        assert_eq!(c[0].summary, "BMC added (Dell Inc., firmware 7.00, IP 10.0.0.21)");
        let mut moved = raid_server();
        if let Some(b) = moved.bmc.as_mut() {
            b.ip = "10.0.0.22".into();
        }
        assert_eq!(diff(&old, &moved)[0].summary, "BMC IP 10.0.0.21 → 10.0.0.22");
    }
}
