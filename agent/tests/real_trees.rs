//! The hardware and OS readers run against file trees captured on real hosts
//! and published as test data by prometheus/procfs and
//! prometheus/node_exporter (Apache-2.0; see `fixtures/real/PROVENANCE.tsv`
//! for the source path and commit of every file). The expected values are
//! read off the captures by hand, so a parser that drifts from what kernels
//! really print fails here even when the hand-written fixtures still pass.

use std::path::{Path, PathBuf};

use caretaker_agent::collectors::edac::Edac;
use caretaker_agent::collectors::hwmon::Hwmon;
use caretaker_agent::collectors::mdraid::{MdRaid, parse_mdstat};
use caretaker_agent::collectors::oom::Oom;
use caretaker_agent::collectors::thermal::Thermal;
use caretaker_agent::collectors::{CollectError, Collector, Roots, Samples};
use caretaker_shared::wire::Sample;

fn real(tree: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/real")
        .join(tree)
}

fn run(mut c: impl Collector) -> (Result<(), CollectError>, Vec<Sample>) {
    let mut out = Samples::default();
    let r = c.collect(&mut out);
    (r, out.0)
}

fn proc_roots(tree: &str) -> Roots {
    Roots {
        proc_root: real(tree).join("proc"),
        ..Roots::default()
    }
}

fn sys_roots(tree: &str) -> Roots {
    Roots {
        sys_root: real(tree).join("sys"),
        ..Roots::default()
    }
}

use caretaker_agent::collectors::sample_rows as rows;

use caretaker_agent::collectors::sample_value as value;

/// (device, active, level, required, in sync, failed, spare, action,
/// progress in per mille).
type Row<'a> = (&'a str, bool, &'a str, u32, u32, u32, u32, &'a str, Option<i64>);

fn line((d, act, l, r, i, f, s, a, p): Row) -> String {
    format!("{d} active={act} level={l} required={r} in_sync={i} failed={f} spare={s} action={a} progress={p:?}")
}

fn mdstat_rows(tree: &str) -> Vec<String> {
    let text = std::fs::read_to_string(real(tree).join("proc/mdstat")).unwrap_or_default();
    let arrays = parse_mdstat(&text).unwrap_or_else(|e| panic!("{tree}: {e}"));
    arrays
        .iter()
        .map(|a| {
            let permille = a.progress.map(|p| (p * 1000.0).round() as i64);
            line((
                &a.device, a.active, &a.level, a.required, a.in_sync, a.failed, a.spare, a.action, permille,
            ))
        })
        .collect()
}

fn owned(want: &[Row]) -> Vec<String> {
    want.iter().map(|&row| line(row)).collect()
}

// procfs' mdstat: raid6 with two spares, raid1 recovering with a failed and a
// spare member, resync and check running, raid6 missing a failed member, a
// raid1 with two failed members waiting (resync=DELAYED), an auto-read-only
// array with resync=PENDING, IMSM/external metadata, an inactive raid1 that
// names its level and an inactive container of spares.
#[test]
fn procfs_mdstat_every_array() {
    let want: &[Row] = &[
        ("md3", true, "raid6", 8, 8, 0, 2, "idle", None),
        ("md127", true, "raid1", 2, 2, 0, 0, "idle", None),
        ("md0", true, "raid1", 2, 2, 0, 0, "idle", None),
        ("md4", false, "raid1", 2, 0, 1, 1, "idle", None),
        ("md6", true, "raid1", 2, 1, 1, 1, "recovery", Some(85)),
        ("md8", true, "raid1", 2, 2, 0, 2, "resync", Some(85)),
        ("md201", true, "raid1", 2, 2, 0, 0, "check", Some(57)),
        ("md7", true, "raid6", 4, 3, 1, 0, "idle", None),
        ("md9", true, "raid1", 4, 4, 2, 1, "pending", None),
        ("md10", true, "raid0", 2, 2, 0, 0, "idle", None),
        ("md11", true, "raid1", 2, 2, 1, 2, "pending", None),
        ("md12", true, "raid0", 2, 2, 0, 0, "idle", None),
        ("md126", true, "raid0", 2, 2, 0, 0, "idle", None),
        ("md219", false, "unknown", 0, 0, 0, 3, "idle", None),
        ("md00", true, "raid0", 1, 1, 0, 0, "idle", None),
        ("md120", true, "linear", 2, 2, 0, 0, "idle", None),
        ("md101", true, "raid0", 3, 3, 0, 0, "idle", None),
    ];
    assert_eq!(mdstat_rows("procfs-mdstat"), owned(want));
}

// An older node_exporter capture: tab-indented status lines under md8 and
// md9, no (F)/(S) markers, and the inactive md4 still naming raid1.
#[test]
fn node_exporter_mdstat_with_tab_indented_lines() {
    let want: &[Row] = &[
        ("md3", true, "raid6", 8, 8, 0, 0, "idle", None),
        ("md127", true, "raid1", 2, 2, 0, 0, "idle", None),
        ("md0", true, "raid1", 2, 2, 0, 0, "idle", None),
        ("md4", false, "raid1", 2, 0, 0, 0, "idle", None),
        ("md6", true, "raid1", 2, 1, 0, 0, "recovery", Some(85)),
        ("md8", true, "raid1", 2, 2, 0, 0, "resync", Some(85)),
        ("md7", true, "raid6", 4, 3, 0, 0, "idle", None),
        ("md9", true, "raid1", 4, 4, 0, 0, "pending", None),
        ("md10", true, "raid0", 2, 2, 0, 0, "idle", None),
        ("md11", true, "raid1", 2, 2, 0, 0, "pending", None),
        ("md12", true, "raid0", 2, 2, 0, 0, "idle", None),
        ("md219", false, "unknown", 0, 0, 0, 3, "idle", None),
    ];
    assert_eq!(mdstat_rows("node_exporter-mdstat-00c9a88"), owned(want));
}

#[test]
fn procfs_mdstat_collected() {
    let (r, s) = run(MdRaid::new(&proc_roots("procfs-mdstat")));
    assert!(r.is_ok(), "{r:?}");
    let degraded = |d| value(&s, "caretaker_md_degraded", &[("device", d)]);
    let disks = |d, state| value(&s, "caretaker_md_disks", &[("device", d), ("state", state)]);
    let action = |d, a| value(&s, "caretaker_md_sync_action", &[("device", d), ("action", a)]);
    let progress = |d| value(&s, "caretaker_md_sync_progress_ratio", &[("device", d)]);

    // Degraded: the recovering mirror and the raid6 that lost sdc1.
    for d in ["md6", "md7"] {
        assert_eq!(degraded(d), Some(1.0), "{d}");
        assert_eq!(disks(d, "missing"), Some(1.0), "{d}");
        assert_eq!(disks(d, "failed"), Some(1.0), "{d}");
    }
    for d in [
        "md3", "md127", "md0", "md8", "md201", "md9", "md10", "md11", "md12", "md126", "md00", "md120", "md101",
    ] {
        assert_eq!(degraded(d), Some(0.0), "{d}");
    }
    assert_eq!(disks("md7", "active"), Some(3.0));
    assert_eq!(
        value(&s, "caretaker_md_disks_required", &[("device", "md7")]),
        Some(4.0)
    );
    // Failed and spare members outside a degraded array still count.
    assert_eq!((disks("md9", "failed"), disks("md9", "spare")), (Some(2.0), Some(1.0)));
    assert_eq!((disks("md3", "failed"), disks("md3", "spare")), (Some(0.0), Some(2.0)));

    assert_eq!(action("md6", "recovery"), Some(1.0));
    assert_eq!(action("md6", "idle"), Some(0.0));
    assert_eq!(action("md8", "resync"), Some(1.0));
    assert_eq!(action("md201", "check"), Some(1.0));
    assert_eq!(action("md9", "pending"), Some(1.0));
    assert_eq!(action("md11", "pending"), Some(1.0));
    let near = |got: Option<f64>, want: f64| got.is_some_and(|g| (g - want).abs() < 1e-9);
    assert!(near(progress("md6"), 0.085), "{:?}", progress("md6"));
    assert!(near(progress("md8"), 0.085), "{:?}", progress("md8"));
    assert!(near(progress("md201"), 0.057), "{:?}", progress("md201"));
    assert_eq!(progress("md9"), None, "a delayed resync has no progress yet");

    // Inactive arrays: their state, failed and spare members, nothing else.
    assert_eq!(
        value(&s, "caretaker_md_active", &[("device", "md4"), ("level", "raid1")]),
        Some(0.0)
    );
    assert_eq!((disks("md4", "failed"), disks("md4", "spare")), (Some(1.0), Some(1.0)));
    assert_eq!(degraded("md4"), None);
    assert_eq!(
        value(&s, "caretaker_md_active", &[("device", "md219"), ("level", "unknown")]),
        Some(0.0)
    );
    assert_eq!(disks("md219", "spare"), Some(3.0));
    assert_eq!(
        value(&s, "caretaker_md_active", &[("device", "md120"), ("level", "linear")]),
        Some(1.0)
    );
}

// node_exporter's sysfs: one EDAC controller whose csrow0 has only row-level
// counts (no ch*_ce_count), with uncorrectable errors on it.
#[test]
fn edac_controller_and_csrow_counts() {
    let (r, s) = run(Edac::new(&sys_roots("node_exporter-sys")));
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(
        rows(&s),
        [
            "caretaker_edac_correctable_errors{controller=mc0} 1",
            "caretaker_edac_uncorrectable_errors{controller=mc0} 5",
            "caretaker_edac_dimm_correctable_errors{controller=mc0,dimm=csrow0,label=} 3",
            "caretaker_edac_dimm_uncorrectable_errors{controller=mc0,dimm=csrow0,label=} 4",
        ]
    );
}

// Two packages of two cores each; package 0 throttled 30 times, core 0 of
// package 0 five times and core 1 of package 1 nine times.
#[test]
fn thermal_throttle_two_packages() {
    let (r, s) = run(Thermal::new(&sys_roots("node_exporter-sys")));
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(
        rows(&s),
        [
            "caretaker_cpu_core_throttles{core=0,package=0} 5",
            "caretaker_cpu_core_throttles{core=1,package=0} 0",
            "caretaker_cpu_core_throttles{core=0,package=1} 0",
            "caretaker_cpu_core_throttles{core=1,package=1} 9",
            "caretaker_cpu_package_throttles{package=0} 30",
            "caretaker_cpu_package_throttles{package=1} 6",
        ]
    );
}

// Two coretemp chips (one per package, told apart by their device), an
// applesmc whose attributes sit in the device directory with one fan stopped
// and the other under its minimum, and an nct6779 super-I/O with a voltage
// alarm and both chassis intrusion alarms raised.
#[test]
fn hwmon_chips_sensors_and_alarms() {
    let (r, s) = run(Hwmon::new(&sys_roots("node_exporter-sys")));
    assert!(r.is_ok(), "{r:?}");
    let rows = rows(&s);
    for chip in ["coretemp:coretemp.0", "coretemp:coretemp.1"] {
        for (sensor, celsius) in [
            ("Physical id 0", "55"),
            ("Core 0", "54"),
            ("Core 1", "52"),
            ("Core 2", "53"),
            ("Core 3", "50"),
        ] {
            let l = format!("chip={chip},sensor={sensor}");
            for want in [
                format!("caretaker_hwmon_temperature_celsius{{{l}}} {celsius}"),
                format!("caretaker_hwmon_temperature_max_celsius{{{l}}} 84"),
                format!("caretaker_hwmon_temperature_crit_celsius{{{l}}} 100"),
                format!("caretaker_hwmon_alarm{{chip={chip},kind=crit,sensor={sensor}}} 0"),
            ] {
                assert!(rows.contains(&want), "missing {want} in {rows:#?}");
            }
        }
    }
    for want in [
        "caretaker_hwmon_fan_rpm{chip=applesmc,sensor=Left side} 0",
        "caretaker_hwmon_fan_min_rpm{chip=applesmc,sensor=Left side} 2160",
        "caretaker_hwmon_fan_rpm{chip=applesmc,sensor=Right side} 1998",
        "caretaker_hwmon_fan_min_rpm{chip=applesmc,sensor=Right side} 2000",
        "caretaker_hwmon_fan_rpm{chip=nct6779,sensor=fan2} 1098",
        "caretaker_hwmon_fan_min_rpm{chip=nct6779,sensor=fan2} 0",
        "caretaker_hwmon_alarm{chip=nct6779,kind=alarm,sensor=fan2} 0",
        "caretaker_hwmon_alarm{chip=nct6779,kind=alarm,sensor=in0} 0",
        "caretaker_hwmon_alarm{chip=nct6779,kind=alarm,sensor=in1} 1",
        "caretaker_hwmon_alarm{chip=nct6779,kind=alarm,sensor=intrusion0} 1",
        "caretaker_hwmon_alarm{chip=nct6779,kind=alarm,sensor=intrusion1} 1",
    ] {
        assert!(rows.iter().any(|r| r == want), "missing {want} in {rows:#?}");
    }
    // Voltages, pwm curves and beep masks are not reported.
    assert!(
        !rows
            .iter()
            .any(|r| r.contains("pwm") || r.contains("beep") || r.ends_with(" 792"))
    );
    assert_eq!(rows.len(), 2 * 5 * 4 + 4 + 7, "{rows:#?}");
}

// A vmstat that has the counter at zero gives a zero sample, not none.
#[test]
fn oom_kills_zero_is_reported() {
    let (r, s) = run(Oom::new(&proc_roots("node_exporter-vmstat")));
    assert!(r.is_ok(), "{r:?}");
    assert_eq!(rows(&s), ["caretaker_oom_kills{} 0"]);
}
