//! The agent's collectors: one file each, one list ([`build`]). A collector
//! appends samples to the report; a failing collector never sinks the report —
//! it is recorded as `caretaker_agent_collector_success{collector} 0` with an
//! event, and the others still run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use caretaker_shared::wire::{Event, Sample, Severity};

pub mod command;
pub mod cpu;
pub mod databases;
pub mod diskio;
pub mod edac;
pub mod filesystem;
pub mod hwmon;
pub mod ipmi;
pub mod mdraid;
pub mod memory;
pub mod network;
pub mod oom;
pub mod raid;
pub mod reboot;
pub mod smart;
pub mod system;
pub mod systemd;
pub mod thermal;
pub mod timesync;

/// Where collectors read the host from; tests point these at captured trees
/// (and at stand-in programs for the commands).
#[derive(Debug, Clone)]
pub struct Roots {
    pub proc_root: PathBuf,
    /// The latest disk-health scan, filled by the smartctl worker.
    pub smart: std::sync::Arc<crate::smart::SmartState>,
    /// The latest BMC read, filled by the IPMI worker.
    pub ipmi: std::sync::Arc<crate::ipmi::IpmiState>,
    /// The latest RAID controller read, filled by the RAID worker.
    pub raid: std::sync::Arc<crate::raid::RaidState>,
    /// The latest poll of each database, filled by the database pollers.
    pub databases: std::sync::Arc<crate::databases::DbState>,
    pub sys_root: PathBuf,
    /// `/run`, for the flag files daemons and package managers leave there.
    pub run_root: PathBuf,
    /// `/boot`, to see which kernels are installed.
    pub boot_root: PathBuf,
    /// The `systemctl` program (a bare name is looked up in `PATH`).
    pub systemctl: PathBuf,
    /// The `timedatectl` program (a bare name is looked up in `PATH`).
    pub timedatectl: PathBuf,
    /// Longest time an external command may run before it is killed.
    pub command_timeout: Duration,
    /// `/etc`, read by the inventory (`os-release`, `machine-id`).
    pub etc_root: PathBuf,
}

impl Default for Roots {
    /// The real host.
    fn default() -> Self {
        Self {
            proc_root: "/proc".into(),
            sys_root: "/sys".into(),
            run_root: "/run".into(),
            boot_root: "/boot".into(),
            systemctl: "systemctl".into(),
            timedatectl: "timedatectl".into(),
            command_timeout: Duration::from_secs(5),
            smart: Default::default(),
            ipmi: Default::default(),
            raid: Default::default(),
            databases: Default::default(),
            etc_root: "/etc".into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot parse {path}: {reason}")]
    Parse { path: PathBuf, reason: String },
    #[error("{tool}: {reason}")]
    Tool { tool: String, reason: String },
    #[error("command {program}: {reason}")]
    Command { program: PathBuf, reason: String },
    /// What the collector reads is not there on this host (no BMC, no RAID
    /// controller tool): not a fault. The collector reports success 0 with
    /// the reason, which is logged and sent as an event once, not every cycle.
    #[error("{reason}")]
    Unavailable { reason: String },
}

/// Reads a file that may legitimately be absent: `Ok(None)` when it does not exist.
pub fn read_optional(path: &Path) -> Result<Option<String>, CollectError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CollectError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// The entries of a directory whose names start with `prefix`, in natural
/// order (`cpu2` before `cpu10`); `Ok(None)` when the directory does not exist.
pub fn entries(dir: &Path, prefix: &str) -> Result<Option<Vec<(String, PathBuf)>>, CollectError> {
    let read = match std::fs::read_dir(dir) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(CollectError::Read {
                path: dir.to_path_buf(),
                source,
            });
        }
    };
    let mut out = Vec::new();
    for entry in read {
        let entry = entry.map_err(|source| CollectError::Read {
            path: dir.to_path_buf(),
            source,
        })?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with(prefix) {
            out.push((name, entry.path()));
        }
    }
    out.sort_by_cached_key(|(name, _)| natural_key(name));
    Ok(Some(out))
}

/// `temp12_input` → ("temp", 12, "_input"): the first run of digits compares as a number.
fn natural_key(name: &str) -> (String, u64, String) {
    let start = name.find(|c: char| c.is_ascii_digit()).unwrap_or(name.len());
    let len = name[start..]
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(name.len() - start);
    let number = name[start..start + len].parse().unwrap_or(0);
    (name[..start].to_string(), number, name[start + len..].to_string())
}

/// Parses a sysfs file holding one integer (`"42\n"`).
pub fn parse_integer<T: std::str::FromStr>(text: &str) -> Result<T, String>
where
    T::Err: std::fmt::Display,
{
    let t = text.trim();
    t.parse().map_err(|e| format!("{t:?} is not an integer: {e}"))
}

/// Reads a sysfs file holding one integer, naming the file in the error.
pub fn read_integer<T: std::str::FromStr>(path: &Path) -> Result<T, CollectError>
where
    T::Err: std::fmt::Display,
{
    parse_integer(&read_to_string(path)?).map_err(|reason| CollectError::Parse {
        path: path.to_path_buf(),
        reason,
    })
}

/// Longest label value taken from host text (DIMM labels, sensor labels, unit
/// names); the wire allows 256 bytes and a series name should stay readable.
const MAX_HOST_LABEL_BYTES: usize = 128;

/// A label value from text the host controls: trimmed, control characters
/// replaced, cut to [`MAX_HOST_LABEL_BYTES`] on a character boundary.
pub fn host_label(s: &str) -> String {
    let mut out = String::new();
    for c in s.trim().chars() {
        let c = if c.is_control() { ' ' } else { c };
        if out.len() + c.len_utf8() > MAX_HOST_LABEL_BYTES {
            break;
        }
        out.push(c);
    }
    out
}

/// Reads a file under a root, naming it in the error.
pub fn read_to_string(path: &Path) -> Result<String, CollectError> {
    std::fs::read_to_string(path).map_err(|source| CollectError::Read {
        path: path.to_path_buf(),
        source,
    })
}

pub trait Collector: Send {
    /// Stable name, used in config and in the `collector` label.
    fn name(&self) -> &'static str;
    fn collect(&mut self, out: &mut Samples) -> Result<(), CollectError>;
}

/// Names of every collector, in the order they run.
pub const ALL: &[&str] = &[
    "cpu",
    "memory",
    "system",
    "filesystem",
    "diskio",
    "network",
    "edac",
    "mdraid",
    "hwmon",
    "thermal",
    "oom",
    "systemd",
    "timesync",
    "reboot",
    "smart",
    "ipmi",
    "raid",
    "databases",
];

/// The one list of collectors. Unknown names are rejected by config validation.
pub fn build(names: &[String], roots: &Roots) -> Vec<Box<dyn Collector>> {
    names
        .iter()
        .filter_map(|n| -> Option<Box<dyn Collector>> {
            Some(match n.as_str() {
                "cpu" => Box::new(cpu::Cpu::new()),
                "memory" => Box::new(memory::Memory::new()),
                "system" => Box::new(system::System::new(roots)),
                "filesystem" => Box::new(filesystem::Filesystems::new(roots)),
                "diskio" => Box::new(diskio::DiskIo::new(roots)),
                "network" => Box::new(network::Network::new(roots)),
                "edac" => Box::new(edac::Edac::new(roots)),
                "mdraid" => Box::new(mdraid::MdRaid::new(roots)),
                "hwmon" => Box::new(hwmon::Hwmon::new(roots)),
                "thermal" => Box::new(thermal::Thermal::new(roots)),
                "oom" => Box::new(oom::Oom::new(roots)),
                "systemd" => Box::new(systemd::Systemd::new(roots)),
                "timesync" => Box::new(timesync::TimeSync::new(roots)),
                "reboot" => Box::new(reboot::Reboot::new(roots)),
                "smart" => Box::new(smart::Smart::new(roots.smart.clone())),
                "ipmi" => Box::new(ipmi::Ipmi::new(roots.ipmi.clone())),
                "raid" => Box::new(raid::Raid::new(roots.raid.clone())),
                "databases" => Box::new(databases::Databases::new(roots.databases.clone())),
                _ => return None,
            })
        })
        .collect()
}

/// A small builder so collectors write `out.push("name", &[("k", v)], value)`.
#[derive(Debug, Default)]
pub struct Samples(pub Vec<Sample>, pub Vec<Event>);

impl Samples {
    /// Something that happened (a database went down), for the report's events.
    pub fn event(&mut self, kind: &str, severity: Severity, message: String, labels: &[(&str, &str)]) {
        self.1.push(Event {
            at_ms: caretaker_shared::now_ms(),
            kind: kind.to_string(),
            severity,
            message,
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        });
    }

    pub fn push(&mut self, metric: &str, labels: &[(&str, &str)], value: f64) {
        debug_assert!(caretaker_shared::catalogue::lookup(metric).is_some(), "{metric}");
        self.0.push(Sample {
            metric: metric.to_string(),
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            value,
        });
    }
}

/// Samples as `metric{label=value,...} value` lines: a readable form for
/// tests and debugging that compares as plain text.
pub fn sample_rows(samples: &[Sample]) -> Vec<String> {
    samples
        .iter()
        .map(|s| {
            let labels: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("{}{{{}}} {}", s.metric, labels.join(","), s.value)
        })
        .collect()
}

/// The value of the first sample of `metric` carrying all of `labels`.
pub fn sample_value(samples: &[Sample], metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.metric == metric
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
}

/// Asserts that `samples` make a valid report: every sample names a
/// catalogue metric with exactly its labels (tests).
#[cfg(test)]
pub(crate) fn assert_on_the_wire(samples: Vec<Sample>) {
    let report = caretaker_shared::wire::Report {
        version: 1,
        agent_id: "a".into(),
        seq: 1,
        collected_at_ms: 1,
        interval_secs: 1,
        host: "h".into(),
        labels: Default::default(),
        samples,
        events: vec![],
        inventory: None,
        disks: None,
    };
    assert_eq!(report.validate(), Ok(()));
}

/// Runs every collector, isolating failures, and returns samples and events.
/// `unavailable` remembers, per collector, the reason it last said it had
/// nothing to read ([`CollectError::Unavailable`]), so that reason is logged
/// and sent once, not every cycle.
pub fn run_all(
    collectors: &mut [Box<dyn Collector>],
    unavailable: &mut BTreeMap<&'static str, String>,
    now_ms: i64,
) -> (Vec<Sample>, Vec<Event>) {
    let mut out = Samples::default();
    let mut events = Vec::new();
    for c in collectors.iter_mut() {
        let started = Instant::now();
        let before = out.0.len();
        let result = c.collect(&mut out);
        let secs = started.elapsed().as_secs_f64();
        let ok = match result {
            Ok(()) => {
                unavailable.remove(c.name());
                true
            }
            Err(CollectError::Unavailable { reason }) => {
                if unavailable.get(c.name()) != Some(&reason) {
                    tracing::info!(collector = c.name(), %reason, "collector has nothing to read on this host");
                    events.push(Event {
                        at_ms: now_ms,
                        kind: "collector_unavailable".into(),
                        severity: Severity::Info,
                        message: reason.clone(),
                        labels: BTreeMap::from([("collector".to_string(), c.name().to_string())]),
                    });
                    unavailable.insert(c.name(), reason);
                }
                false
            }
            Err(e) => {
                // Keep what the collector managed to add; partial data beats none.
                tracing::warn!(collector = c.name(), error = %e, "collector failed");
                events.push(Event {
                    at_ms: now_ms,
                    kind: "collector_failed".into(),
                    severity: Severity::Warning,
                    message: e.to_string(),
                    labels: BTreeMap::from([("collector".to_string(), c.name().to_string())]),
                });
                tracing::debug!(
                    collector = c.name(),
                    kept = out.0.len() - before,
                    "partial samples kept"
                );
                false
            }
        };
        out.push(
            "caretaker_agent_collector_success",
            &[("collector", c.name())],
            if ok { 1.0 } else { 0.0 },
        );
        out.push(
            "caretaker_agent_collector_duration_seconds",
            &[("collector", c.name())],
            secs,
        );
    }
    events.append(&mut out.1);
    (out.0, events)
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Failing;
    impl Collector for Failing {
        fn name(&self) -> &'static str {
            "failing"
        }
        fn collect(&mut self, out: &mut Samples) -> Result<(), CollectError> {
            out.push("caretaker_load1", &[], 1.0);
            Err(CollectError::Parse {
                path: "/x".into(),
                reason: "bad".into(),
            })
        }
    }

    #[test]
    fn a_failing_collector_does_not_sink_the_others() {
        let roots = Roots::default();
        let mut list = build(&["memory".to_string()], &roots);
        list.insert(0, Box::new(Failing));
        let (samples, events) = run_all(&mut list, &mut BTreeMap::new(), 1);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].labels.get("collector").map(String::as_str), Some("failing"));
        let success = |name: &str| {
            samples
                .iter()
                .find(|s| {
                    s.metric == "caretaker_agent_collector_success"
                        && s.labels.get("collector").map(String::as_str) == Some(name)
                })
                .map(|s| s.value)
        };
        assert_eq!(success("failing"), Some(0.0));
        assert_eq!(success("memory"), Some(1.0));
        assert!(samples.iter().any(|s| s.metric == "caretaker_memory_total_bytes"));
        assert!(
            samples.iter().any(|s| s.metric == "caretaker_load1"),
            "partial data kept"
        );
    }

    struct Absent;
    impl Collector for Absent {
        fn name(&self) -> &'static str {
            "absent"
        }
        fn collect(&mut self, _: &mut Samples) -> Result<(), CollectError> {
            Err(CollectError::Unavailable {
                reason: "no BMC on this host".into(),
            })
        }
    }

    #[test]
    fn an_unavailable_collector_says_why_once_and_reports_success_0_every_cycle() {
        let mut list: Vec<Box<dyn Collector>> = vec![Box::new(Absent)];
        let mut unavailable = BTreeMap::new();
        let (s1, e1) = run_all(&mut list, &mut unavailable, 1);
        let (s2, e2) = run_all(&mut list, &mut unavailable, 2);
        assert_eq!(e1.len(), 1);
        assert_eq!(e1[0].kind, "collector_unavailable");
        assert_eq!(e1[0].message, "no BMC on this host");
        assert!(e2.is_empty(), "the reason is sent once: {e2:?}");
        for s in [&s1, &s2] {
            assert_eq!(
                sample_value(s, "caretaker_agent_collector_success", &[("collector", "absent")]),
                Some(0.0)
            );
        }
    }

    #[test]
    fn numbered_names_sort_as_numbers() {
        let mut v = ["cpu10", "cpu2", "cpufreq", "cpu1", "temp10_input", "temp9_input"];
        v.sort_by_cached_key(|n| natural_key(n));
        assert_eq!(v, ["cpu1", "cpu2", "cpu10", "cpufreq", "temp9_input", "temp10_input"]);
    }

    #[test]
    fn host_labels_are_bounded_and_printable() {
        assert_eq!(host_label("  DIMM\tA1\n"), "DIMM A1");
        let long = "é".repeat(100);
        let l = host_label(&long);
        assert!(l.len() <= MAX_HOST_LABEL_BYTES && l.chars().all(|c| c == 'é'));
    }

    #[test]
    fn integers_name_the_bad_text() {
        assert_eq!(parse_integer::<u64>(" 42\n"), Ok(42));
        assert!(parse_integer::<u64>("x").is_err_and(|e| e.starts_with("\"x\" is not an integer")));
    }
}
