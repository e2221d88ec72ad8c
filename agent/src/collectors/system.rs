//! Load, uptime, process count and the host's identity facts. Uptime, load and
//! OS facts come from `sysinfo`; the process count is the number of numeric
//! entries under `<proc_root>`, which avoids building a process table.

use std::path::PathBuf;

use super::{CollectError, Collector, Roots, Samples};

pub struct System {
    proc_root: PathBuf,
}

impl System {
    pub fn new(roots: &Roots) -> Self {
        Self {
            proc_root: roots.proc_root.clone(),
        }
    }
}

/// Host facts shown as labels of `caretaker_host_info` and in the inventory.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HostFacts {
    pub hostname: String,
    pub kernel: String,
    pub os: String,
    pub os_name: String,
    pub os_version: String,
    pub arch: String,
}

pub fn host_facts() -> HostFacts {
    HostFacts {
        hostname: sysinfo::System::host_name().unwrap_or_default(),
        kernel: sysinfo::System::kernel_version().unwrap_or_default(),
        os: sysinfo::System::long_os_version().unwrap_or_default(),
        os_name: sysinfo::System::name().unwrap_or_default(),
        os_version: sysinfo::System::os_version().unwrap_or_default(),
        arch: sysinfo::System::cpu_arch(),
    }
}

/// Counts the process directories (all-digit names) in a listing of `/proc`.
pub fn count_processes<I: IntoIterator<Item = String>>(names: I) -> usize {
    names
        .into_iter()
        .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        .count()
}

impl Collector for System {
    fn name(&self) -> &'static str {
        "system"
    }

    fn collect(&mut self, out: &mut Samples) -> Result<(), CollectError> {
        let load = sysinfo::System::load_average();
        out.push("caretaker_load1", &[], load.one);
        out.push("caretaker_load5", &[], load.five);
        out.push("caretaker_load15", &[], load.fifteen);
        out.push("caretaker_uptime_seconds", &[], sysinfo::System::uptime() as f64);
        let facts = host_facts();
        out.push(
            "caretaker_host_info",
            &[
                ("hostname", &facts.hostname),
                ("kernel", &facts.kernel),
                ("os", &facts.os),
            ],
            1.0,
        );
        out.push("caretaker_agent_info", &[("version", env!("CARGO_PKG_VERSION"))], 1.0);
        let dir = std::fs::read_dir(&self.proc_root).map_err(|source| CollectError::Read {
            path: self.proc_root.clone(),
            source,
        })?;
        let n = count_processes(
            dir.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned()),
        );
        out.push("caretaker_processes", &[], n as f64);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_only_pid_directories() {
        let names = ["1", "42", "self", "net", "1x", "", "31337"].map(String::from);
        assert_eq!(count_processes(names), 3);
    }

    #[test]
    fn unreadable_proc_root_is_an_error_naming_it() {
        let mut s = System::new(&Roots {
            proc_root: "/nonexistent/proc".into(),
            ..Roots::host()
        });
        let mut out = Samples::default();
        let err = s.collect(&mut out).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("/nonexistent/proc"), "{err}");
        assert!(
            out.0.iter().any(|s| s.metric == "caretaker_load1"),
            "what was read is kept"
        );
    }
}
