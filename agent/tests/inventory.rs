//! Builds the inventory from a captured server tree (`fixtures/inventory/server`:
//! 2 SATA disks, 1 NVMe, 2 NICs, DMI, EDAC DIMMs, PostgreSQL and Redis) and from
//! this machine.

use std::path::{Path, PathBuf};

use caretaker_agent::collectors::Roots;
use caretaker_agent::config::InventoryConfig;
use caretaker_agent::inventory::{Probes, build, content_hash};
use caretaker_shared::wire::{DatabaseServer, DiskInfo, MemoryModule, NicInfo};

fn server() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/inventory/server")
}

fn offline() -> InventoryConfig {
    // The fixture's processes are not real: run nothing.
    InventoryConfig {
        probe_versions: false,
        dmidecode: false,
    }
}

#[test]
fn inventory_of_a_captured_server() {
    let root = server();
    let roots = Roots {
        proc_root: root.join("proc"),
        sys_root: root.join("sys"),
        etc_root: root.join("etc"),
        ..Roots::default()
    };
    let inv = build(&roots, &mut Probes::new(&offline(), std::time::Duration::from_secs(2)));

    assert_eq!(inv.hostname, "db01");
    assert_eq!(inv.os_name, "Debian GNU/Linux 12 (bookworm)");
    assert_eq!(inv.os_version, "12");
    assert_eq!(inv.kernel, "6.1.0-18-amd64");
    assert_eq!(inv.machine_id, "5f2a9c0e8d1b4e7f9a3c6b2d1e0f4a7c");
    assert_eq!(inv.memory_bytes, 49117432 * 1024);
    assert_eq!(inv.cpu_model, "Intel(R) Xeon(R) Silver 4210R CPU @ 2.40GHz");
    assert_eq!(
        (inv.cpu_sockets, inv.cpu_physical_cores, inv.cpu_threads, inv.cpu_cores),
        (2, 4, 8, 8)
    );

    assert_eq!(inv.dmi.sys_vendor, "Dell Inc.");
    assert_eq!(inv.dmi.product_name, "PowerEdge R640");
    assert_eq!(inv.dmi.product_serial, "7XK2H93");
    assert_eq!(inv.dmi.board_name, "0W23H8");
    assert_eq!(inv.dmi.bios_version, "2.19.1");
    assert_eq!(inv.dmi.bios_date, "06/28/2023");
    assert_eq!(inv.dmi.chassis_type, "23");

    assert_eq!(
        inv.memory_modules,
        vec![
            MemoryModule {
                locator: "CPU_SrcID#0_MC#0_Chan#0_DIMM#0".into(),
                size_bytes: 32 << 30,
                kind: "Registered-DDR4".into(),
                ..MemoryModule::default()
            },
            MemoryModule {
                locator: "CPU_SrcID#1_MC#0_Chan#0_DIMM#0".into(),
                size_bytes: 16 << 30,
                kind: "Registered-DDR4".into(),
                ..MemoryModule::default()
            },
        ]
    );

    assert_eq!(
        inv.disks,
        vec![
            DiskInfo {
                location: String::new(),
                name: "nvme0n1".into(),
                model: "SAMSUNG MZQLB1T9HAJR-00007".into(),
                serial: "S439NA0N600237".into(),
                wwn: "eui.36344830526002370025384100000001".into(),
                firmware: "EDA5202Q".into(),
                capacity_bytes: 3750748848 * 512,
                rotational: Some(false),
                interface: "nvme".into(),
            },
            DiskInfo {
                location: String::new(),
                name: "sda".into(),
                model: "SAMSUNG MZ7LH480".into(),
                serial: "S45PNA0M123456".into(),
                wwn: "naa.5002538e40a1b2c3".into(),
                firmware: "904Q".into(),
                capacity_bytes: 937703088 * 512,
                rotational: Some(false),
                interface: "sata".into(),
            },
            DiskInfo {
                location: String::new(),
                name: "sdb".into(),
                model: "ST4000NM0035-1V4".into(),
                serial: "ZC1B2C3D".into(),
                wwn: "naa.5000c500b1c2d3e4".into(),
                firmware: "TN05".into(),
                capacity_bytes: 7814037168 * 512,
                rotational: Some(true),
                interface: "sata".into(),
            },
        ]
    );

    assert_eq!(
        inv.nics,
        vec![
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
        ]
    );
    assert_eq!(inv.network_interfaces, ["lo", "eno1", "eno2", "br0"]);

    // The postmaster listens on 5432; its backend (no listening socket) is not
    // a second server. Versions were not probed.
    assert_eq!(
        inv.databases,
        vec![
            DatabaseServer {
                kind: "postgresql".into(),
                version: String::new(),
                port: Some(5432),
            },
            DatabaseServer {
                kind: "redis".into(),
                version: String::new(),
                port: Some(6379),
            },
        ]
    );

    assert_eq!(inv.content_hash, content_hash(&inv));
    let again = build(&roots, &mut Probes::new(&offline(), std::time::Duration::from_secs(2)));
    assert_eq!(again.content_hash, inv.content_hash, "same tree, same hash");
}

#[test]
fn a_missing_tree_gives_an_empty_inventory_not_an_error() {
    let roots = Roots {
        proc_root: "/nonexistent/proc".into(),
        sys_root: "/nonexistent/sys".into(),
        etc_root: "/nonexistent/etc".into(),
        ..Roots::default()
    };
    let inv = build(&roots, &mut Probes::new(&offline(), std::time::Duration::from_secs(2)));
    assert!(inv.disks.is_empty() && inv.nics.is_empty() && inv.databases.is_empty());
    assert_eq!(inv.dmi, Default::default());
    assert_eq!(inv.machine_id, "");
}

#[test]
fn inventory_of_this_machine() {
    let inv = build(
        &Roots::default(),
        &mut Probes::new(&InventoryConfig::default(), std::time::Duration::from_secs(5)),
    );
    assert!(!inv.kernel.is_empty());
    assert!(!inv.os_name.is_empty());
    assert!(inv.memory_bytes > 0);
    assert!(inv.cpu_threads >= 1 && inv.cpu_physical_cores >= 1);
    assert_eq!(inv.cpu_cores, inv.cpu_threads);
    assert_eq!(inv.content_hash.len(), 64);
    for d in &inv.disks {
        assert!(!d.name.starts_with("loop") && !d.name.starts_with("zram"), "{d:?}");
    }
    assert!(inv.nics.iter().all(|n| n.name != "lo"));
    // Database servers running here (as on the CI machine) are found with versions.
    for db in &inv.databases {
        assert!(!db.version.is_empty(), "{db:?}");
    }
    eprintln!("{}", serde_json::to_string_pretty(&inv).unwrap_or_default());
}
