//! The agent's collectors: one file each, one list ([`build`]). A collector
//! appends samples to the report; a failing collector never sinks the report —
//! it is recorded as `caretaker_agent_collector_success{collector} 0` with an
//! event, and the others still run.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use caretaker_shared::wire::{Event, Sample, Severity};

pub mod cpu;
pub mod diskio;
pub mod filesystem;
pub mod memory;
pub mod network;
pub mod system;

/// Where collectors read the host from; tests point these at captured trees.
#[derive(Debug, Clone)]
pub struct Roots {
    pub proc_root: PathBuf,
    /// Read by the inventory only.
    pub sys_root: PathBuf,
    /// Read by the inventory only.
    pub etc_root: PathBuf,
}

impl Roots {
    /// The host's own `/proc`, `/sys` and `/etc`.
    pub fn host() -> Self {
        Self {
            proc_root: "/proc".into(),
            sys_root: "/sys".into(),
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
pub const ALL: &[&str] = &["cpu", "memory", "system", "filesystem", "diskio", "network"];

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
                _ => return None,
            })
        })
        .collect()
}

/// A small builder so collectors write `out.push("name", &[("k", v)], value)`.
#[derive(Debug, Default)]
pub struct Samples(pub Vec<Sample>);

impl Samples {
    pub fn push(&mut self, metric: &str, labels: &[(&str, &str)], value: f64) {
        debug_assert!(caretaker_shared::catalogue::lookup(metric).is_some(), "{metric}");
        self.0.push(Sample {
            metric: metric.to_string(),
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            value,
        });
    }
}

/// Runs every collector, isolating failures, and returns samples and events.
pub fn run_all(collectors: &mut [Box<dyn Collector>], now_ms: i64) -> (Vec<Sample>, Vec<Event>) {
    let mut out = Samples::default();
    let mut events = Vec::new();
    for c in collectors.iter_mut() {
        let started = Instant::now();
        let before = out.0.len();
        let result = c.collect(&mut out);
        let secs = started.elapsed().as_secs_f64();
        let ok = match result {
            Ok(()) => true,
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
        let roots = Roots::host();
        let mut list = build(&["memory".to_string()], &roots);
        list.insert(0, Box::new(Failing));
        let (samples, events) = run_all(&mut list, 1);
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
}
