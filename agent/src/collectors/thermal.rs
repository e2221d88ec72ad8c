//! CPU thermal throttling counters from
//! `<sys_root>/devices/system/cpu/cpu*/thermal_throttle/`: how often a core,
//! and its whole package, was slowed down for being too hot. Throttling makes
//! a host slow without making it look busy, so it explains latency that no
//! other metric does. Hyper-threads of one core share its counter, and every
//! CPU of a package repeats the package counter, so each core and package is
//! reported once (by `topology/physical_package_id` and `core_id`). Only Intel
//! CPUs have these files; elsewhere there are no samples and no failure.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{CollectError, Collector, Roots, Samples, entries, read_integer};

pub struct Thermal {
    dir: PathBuf,
}

impl Thermal {
    pub fn new(roots: &Roots) -> Self {
        Self {
            dir: roots.sys_root.join("devices/system/cpu"),
        }
    }
}

/// What one logical CPU reports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuThrottle {
    pub package: u32,
    pub core: u32,
    pub core_count: Option<u64>,
    pub package_count: Option<u64>,
}

/// True for `cpu0`, `cpu17`; false for `cpufreq`, `cpuidle`.
pub fn is_cpu_dir(name: &str) -> bool {
    name.strip_prefix("cpu")
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// Keeps one core counter per (package, core) and one package counter per
/// package, the first CPU seen winning (siblings hold the same value).
pub fn dedupe(cpus: &[CpuThrottle]) -> (BTreeMap<(u32, u32), u64>, BTreeMap<u32, u64>) {
    let mut cores = BTreeMap::new();
    let mut packages = BTreeMap::new();
    for c in cpus {
        if let Some(n) = c.core_count {
            cores.entry((c.package, c.core)).or_insert(n);
        }
        if let Some(n) = c.package_count {
            packages.entry(c.package).or_insert(n);
        }
    }
    (cores, packages)
}

fn read_cpu(dir: &Path) -> Result<Option<CpuThrottle>, CollectError> {
    let throttle = dir.join("thermal_throttle");
    if !throttle.is_dir() {
        return Ok(None);
    }
    let optional = |file: &str| -> Result<Option<u64>, CollectError> {
        let p = throttle.join(file);
        if p.exists() {
            read_integer(&p).map(Some)
        } else {
            Ok(None)
        }
    };
    Ok(Some(CpuThrottle {
        package: read_integer(&dir.join("topology/physical_package_id"))?,
        core: read_integer(&dir.join("topology/core_id"))?,
        core_count: optional("core_throttle_count")?,
        package_count: optional("package_throttle_count")?,
    }))
}

impl Collector for Thermal {
    fn name(&self) -> &'static str {
        "thermal"
    }

    fn collect(&mut self, out: &mut Samples) -> Result<(), CollectError> {
        let Some(list) = entries(&self.dir, "cpu")? else {
            return Ok(());
        };
        let mut first = None;
        let mut cpus = Vec::new();
        for (name, dir) in list {
            if !is_cpu_dir(&name) {
                continue;
            }
            // One CPU's unreadable topology must not hide the others' counts.
            match read_cpu(&dir) {
                Ok(Some(c)) => cpus.push(c),
                Ok(None) => {}
                Err(e) => {
                    first.get_or_insert(e);
                }
            }
        }
        let (cores, packages) = dedupe(&cpus);
        for ((package, core), n) in cores {
            let (p, c) = (package.to_string(), core.to_string());
            out.push(
                "caretaker_cpu_core_throttles",
                &[("package", p.as_str()), ("core", c.as_str())],
                n as f64,
            );
        }
        for (package, n) in packages {
            out.push(
                "caretaker_cpu_package_throttles",
                &[("package", &package.to_string())],
                n as f64,
            );
        }
        first.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use caretaker_shared::wire::Sample;

    fn collect(sys_root: &Path) -> (Result<(), CollectError>, Vec<Sample>) {
        let mut c = Thermal::new(&Roots {
            sys_root: sys_root.to_path_buf(),
            ..Roots::default()
        });
        let mut out = Samples::default();
        let r = c.collect(&mut out);
        (r, out.0)
    }

    use crate::collectors::sample_rows as rows;

    #[test]
    fn cpu_directories() {
        assert!(is_cpu_dir("cpu0") && is_cpu_dir("cpu127"));
        assert!(!is_cpu_dir("cpufreq") && !is_cpu_dir("cpuidle") && !is_cpu_dir("cpu"));
    }

    // Hand-written: two cores with hyper-threading on one package (cpu0/cpu2
    // and cpu1/cpu3), laid out as on an Intel host with core 0 throttled 12
    // times. The captured tree in `tests/real_trees.rs` has no hyper-threads,
    // so the sibling dedupe is only covered here.
    #[test]
    fn one_counter_per_core_and_package() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/thermal/sys");
        let (r, s) = collect(&root);
        assert!(r.is_ok(), "{r:?}");
        assert_eq!(
            rows(&s),
            [
                "caretaker_cpu_core_throttles{core=0,package=0} 12",
                "caretaker_cpu_core_throttles{core=1,package=0} 0",
                "caretaker_cpu_package_throttles{package=0} 40",
            ]
        );
    }

    #[test]
    fn bad_topology_is_named_and_other_cpus_kept() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let cpu = dir.path().join("devices/system/cpu");
        for (file, text) in [
            ("cpu0/topology/physical_package_id", "0\n"),
            ("cpu0/topology/core_id", "0\n"),
            ("cpu0/thermal_throttle/core_throttle_count", "3\n"),
            ("cpu1/topology/physical_package_id", "zero\n"),
            ("cpu1/topology/core_id", "1\n"),
            ("cpu1/thermal_throttle/core_throttle_count", "4\n"),
        ] {
            let p = cpu.join(file);
            let _ = std::fs::create_dir_all(p.parent().unwrap_or(&cpu));
            let _ = std::fs::write(&p, text);
        }
        let (r, s) = collect(dir.path());
        let e = r.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("cpu1/topology/physical_package_id"), "{e}");
        assert_eq!(rows(&s), ["caretaker_cpu_core_throttles{core=0,package=0} 3"]);
    }

    #[test]
    fn no_cpu_tree_is_no_samples() {
        let (r, s) = collect(Path::new("/nonexistent/sys"));
        assert!(r.is_ok() && s.is_empty(), "{r:?}");
    }

    #[test]
    fn this_host_does_not_fail() {
        let (r, _) = collect(Path::new("/sys"));
        assert!(r.is_ok(), "{r:?}");
    }
}
