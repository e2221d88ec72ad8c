//! Builds one report from the collectors: samples, events and, when it changed
//! (or hourly), the inventory.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::io::Write;

use caretaker_shared::wire::{Event, Inventory, PROTOCOL_VERSION, Report, Sample};
use sysinfo::{CpuRefreshKind, MemoryRefreshKind, RefreshKind};

use crate::collectors::{self, Collector, Roots, network, system};
use crate::config::Config;

/// Resend the inventory at least this often even when unchanged, so a
/// collector that lost it (or a new one) gets it back.
const INVENTORY_EVERY_MS: i64 = 3_600_000;

pub struct Reporter {
    collectors: Vec<Box<dyn Collector>>,
    roots: Roots,
    host: String,
    labels: BTreeMap<String, String>,
    interval_secs: u32,
    inventory_sys: sysinfo::System,
    last_inventory: Option<(u64, i64)>,
}

/// Agent-side numbers that go into every report.
#[derive(Debug, Clone, Copy, Default)]
pub struct AgentStatus {
    pub spool_depth: usize,
    pub spool_dropped_total: u64,
    pub rejected_total: u64,
}

impl Reporter {
    pub fn new(cfg: &Config) -> Self {
        let roots = Roots {
            proc_root: cfg.proc_root.clone(),
        };
        Self {
            collectors: collectors::build(&cfg.collectors, &roots),
            roots,
            host: cfg.host(),
            labels: cfg.labels.clone(),
            interval_secs: cfg.interval_secs,
            inventory_sys: sysinfo::System::new_with_specifics(
                RefreshKind::nothing().with_cpu(CpuRefreshKind::nothing()),
            ),
            last_inventory: None,
        }
    }

    fn inventory(&mut self) -> Inventory {
        self.inventory_sys
            .refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram());
        let facts = system::host_facts();
        let cpus = self.inventory_sys.cpus();
        Inventory {
            hostname: facts.hostname,
            os_name: facts.os_name,
            os_version: facts.os_version,
            kernel: facts.kernel,
            arch: facts.arch,
            cpu_model: cpus.first().map(|c| c.brand().trim().to_string()).unwrap_or_default(),
            cpu_cores: cpus.len() as u32,
            memory_bytes: self.inventory_sys.total_memory(),
            filesystems: collectors::filesystem::inventory(&self.roots.proc_root),
            network_interfaces: network::interface_names(&self.roots.proc_root),
        }
    }

    /// Runs every collector and assembles the report.
    pub fn build(&mut self, agent_id: &str, seq: u64, status: AgentStatus, mut events: Vec<Event>) -> Report {
        let now = caretaker_shared::now_ms();
        let (mut samples, collector_events) = collectors::run_all(&mut self.collectors, now);
        events.extend(collector_events);
        let agent = |metric: &str, value: f64| Sample {
            metric: metric.into(),
            labels: BTreeMap::new(),
            value,
        };
        samples.push(agent("caretaker_agent_spool_depth", status.spool_depth as f64));
        samples.push(agent(
            "caretaker_agent_spool_dropped",
            status.spool_dropped_total as f64,
        ));
        samples.push(agent("caretaker_agent_reports_rejected", status.rejected_total as f64));

        let inv = self.inventory();
        let mut h = DefaultHasher::new();
        format!("{inv:?}").hash(&mut h);
        let hash = h.finish();
        let send_inventory = match self.last_inventory {
            Some((last, at)) => last != hash || now - at >= INVENTORY_EVERY_MS,
            None => true,
        };
        if send_inventory {
            self.last_inventory = Some((hash, now));
        }
        Report {
            version: PROTOCOL_VERSION,
            agent_id: agent_id.to_string(),
            seq,
            collected_at_ms: now,
            interval_secs: self.interval_secs,
            host: self.host.clone(),
            labels: self.labels.clone(),
            samples,
            events,
            inventory: send_inventory.then_some(inv),
        }
    }
}

/// The wire body: the report as gzip-compressed JSON.
pub fn encode_gzip(report: &Report) -> std::io::Result<Vec<u8>> {
    let json = serde_json::to_vec(report).map_err(std::io::Error::other)?;
    let mut enc = flate2::write::GzEncoder::new(Vec::with_capacity(json.len() / 4), flate2::Compression::default());
    enc.write_all(&json)?;
    enc.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn report_is_valid_and_carries_every_collector() {
        let cfg = Config::parse(
            "collector_url = \"https://127.0.0.1:1\"\nca_file = \"/x\"\nhost_name = \"h1\"\n[labels]\ncustomer = \"acme\"\n",
            Path::new("t.toml"),
        );
        let Ok(cfg) = cfg else { panic!("config") };
        let mut r = Reporter::new(&cfg);
        let report = r.build(
            "a1",
            7,
            AgentStatus {
                spool_depth: 2,
                spool_dropped_total: 1,
                rejected_total: 0,
            },
            vec![],
        );
        assert_eq!(report.validate(), Ok(()));
        assert_eq!(report.seq, 7);
        assert_eq!(report.host, "h1");
        assert_eq!(report.label("customer"), "acme");
        assert!(report.inventory.is_some(), "first report has the inventory");
        for c in collectors::ALL {
            let ok = report.samples.iter().any(|s| {
                s.metric == "caretaker_agent_collector_success"
                    && s.labels.get("collector").map(String::as_str) == Some(*c)
            });
            assert!(ok, "collector {c} missing");
        }
        assert!(
            report.known_samples().count() == report.samples.len(),
            "only catalogue metrics"
        );
        let second = r.build("a1", 8, AgentStatus::default(), vec![]);
        assert!(second.inventory.is_none(), "unchanged inventory is not resent");
        let body = encode_gzip(&second).unwrap_or_default();
        assert_eq!(&body[..2], &[0x1f, 0x8b]);
    }
}
