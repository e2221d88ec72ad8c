//! Builds one report from the collectors: samples, events and, when its
//! content hash changed (or hourly), the inventory ([`crate::inventory`]).

use std::collections::BTreeMap;
use std::io::Write;

use caretaker_shared::wire::{Event, Inventory, PROTOCOL_VERSION, Report, Sample};

use crate::collectors::{self, Collector, Roots};
use crate::config::Config;
use crate::inventory::{self, Probes};

/// Resend the inventory at least this often even when unchanged, so a
/// collector that lost it (or a new one) gets it back.
const INVENTORY_EVERY_MS: i64 = 3_600_000;

/// How often the inventory is rebuilt to look for changes. It statvfs()es
/// every mount and walks sysfs and /proc, so it is not redone every cycle.
const INVENTORY_CHECK_MS: i64 = 300_000;

pub struct Reporter {
    collectors: Vec<Box<dyn Collector>>,
    /// Collectors that last said they have nothing to read here, and why.
    unavailable: BTreeMap<&'static str, String>,
    roots: Roots,
    host: String,
    labels: BTreeMap<String, String>,
    interval_secs: u32,
    probes: Probes,
    /// The configured databases, whose versions the inventory lists.
    db_targets: Vec<crate::databases::DbTarget>,
    /// Content hash of the inventory last sent, and when.
    last_inventory: Option<(String, i64)>,
    inventory_checked_at: Option<i64>,
}

/// Agent-side numbers that go into every report.
#[derive(Debug, Clone, Copy, Default)]
pub struct AgentStatus {
    pub spool_depth: usize,
    pub spool_dropped_total: u64,
    pub rejected_total: u64,
    /// The last write to the state dir (sequence counter, spool) failed.
    pub state_write_failing: bool,
}

impl Reporter {
    pub fn new(cfg: &Config) -> Self {
        let roots = Roots {
            proc_root: cfg.proc_root.clone(),
            sys_root: cfg.sys_root.clone(),
            run_root: cfg.run_root.clone(),
            boot_root: cfg.boot_root.clone(),
            systemctl: cfg.systemctl_path.clone(),
            timedatectl: cfg.timedatectl_path.clone(),
            command_timeout: std::time::Duration::from_secs(cfg.command_timeout_secs),
            smart: Default::default(),
            ipmi: Default::default(),
            raid: std::sync::Arc::new(crate::raid::RaidState::with_state_dir(cfg.state_dir.clone())),
            databases: Default::default(),
            etc_root: cfg.etc_root.clone(),
        };
        Self {
            collectors: collectors::build(&cfg.collectors, &roots),
            unavailable: BTreeMap::new(),
            roots,
            host: cfg.host(),
            labels: cfg.labels.clone(),
            interval_secs: cfg.interval_secs,
            probes: Probes::new(&cfg.inventory, std::time::Duration::from_secs(cfg.command_timeout_secs)),
            db_targets: cfg.databases.clone(),
            last_inventory: None,
            inventory_checked_at: None,
        }
    }

    /// Whether the `smart` collector is configured.
    pub fn smart_enabled(&self) -> bool {
        self.collectors.iter().any(|c| c.name() == "smart")
    }

    /// Whether the `ipmi` collector is configured.
    pub fn ipmi_enabled(&self) -> bool {
        self.collectors.iter().any(|c| c.name() == "ipmi")
    }

    /// Where the IPMI worker publishes its reads.
    pub fn ipmi_state(&self) -> std::sync::Arc<crate::ipmi::IpmiState> {
        self.roots.ipmi.clone()
    }

    /// Whether the `raid` collector is configured.
    pub fn raid_enabled(&self) -> bool {
        self.collectors.iter().any(|c| c.name() == "raid")
    }

    /// Where the RAID worker publishes its reads.
    pub fn raid_state(&self) -> std::sync::Arc<crate::raid::RaidState> {
        self.roots.raid.clone()
    }

    /// Where the database pollers publish their readings.
    pub fn db_state(&self) -> std::sync::Arc<crate::databases::DbState> {
        self.roots.databases.clone()
    }

    /// Where the smartctl worker publishes its scans.
    pub fn smart_state(&self) -> std::sync::Arc<crate::smart::SmartState> {
        self.roots.smart.clone()
    }

    /// The inventory when its content hash changed since it was last sent, or
    /// it is an hour old at the collector; looked at every [`INVENTORY_CHECK_MS`].
    fn inventory_if_due(&mut self, now: i64) -> Option<Inventory> {
        if self.inventory_checked_at.is_some_and(|t| now - t < INVENTORY_CHECK_MS) {
            return None;
        }
        self.inventory_checked_at = Some(now);
        let mut inv = inventory::build(&self.roots, &mut self.probes);
        // The databases the agent polls know their own versions.
        if !self.db_targets.is_empty() {
            let polled = crate::databases::inventory_entries(&self.db_targets, &self.roots.databases);
            crate::databases::merge_inventory(&mut inv.databases, polled);
        }
        // smartctl knows serials sysfs hides (SATA) and disks behind controllers.
        if let Some(scan) = self.roots.smart.latest() {
            let ids: Vec<_> = scan.disks.iter().filter_map(crate::smart::identity).collect();
            inventory::merge_disk_identity(&mut inv.disks, &ids);
        }
        // The BMC knows itself and the power supplies' FRU data.
        let (bmc, psus) = self.roots.ipmi.inventory();
        if bmc.is_some() || !psus.is_empty() {
            inventory::merge_bmc(&mut inv, bmc, psus);
        }
        // The RAID controllers, their arrays and the disks behind them.
        if let Some(scan) = self.roots.raid.latest() {
            inventory::merge_raid(&mut inv, &scan.controllers);
        }
        // The hash of what goes out, everything merged.
        inv.content_hash = inventory::content_hash(&inv);
        let send = match &self.last_inventory {
            Some((hash, sent_at)) => *hash != inv.content_hash || now - sent_at >= INVENTORY_EVERY_MS,
            None => true,
        };
        if !send {
            return None;
        }
        self.last_inventory = Some((inv.content_hash.clone(), now));
        Some(inv)
    }

    /// Runs every collector and assembles the report.
    pub fn build(&mut self, agent_id: &str, seq: u64, status: AgentStatus, mut events: Vec<Event>) -> Report {
        let now = caretaker_shared::now_ms();
        let (mut samples, collector_events) = collectors::run_all(&mut self.collectors, &mut self.unavailable, now);
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
        samples.push(agent(
            "caretaker_agent_state_writable",
            if status.state_write_failing { 0.0 } else { 1.0 },
        ));

        let scan = self.roots.smart.take_unsent();
        // A new disk scan or changed RAID parts may show a replaced disk, the
        // BMC's identity or a PSU's FRU data may have arrived or changed:
        // look at the inventory now. (Both flags are taken every report.)
        let raid_changed = self.roots.raid.take_inventory_changed();
        let bmc_changed = self.roots.ipmi.take_inventory_changed();
        if scan.is_some() || raid_changed || bmc_changed {
            self.inventory_checked_at = None;
        }
        let inventory = self.inventory_if_due(now);
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
            inventory,
            // A finished disk scan goes out once; the samples repeat every report.
            disks: scan.map(|s| (*s).clone()),
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

/// The same wire body with another sequence number; every other field is
/// kept as it was, known to this build or not.
pub fn renumber_gzip(body: &[u8], seq: u64) -> std::io::Result<Vec<u8>> {
    let mut json = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(body), &mut json)?;
    // Every other member is carried through as the exact text it was
    // written as: parsed into numbers, a double could come back rounded.
    let mut v: BTreeMap<String, Box<serde_json::value::RawValue>> =
        serde_json::from_slice(&json).map_err(std::io::Error::other)?;
    match v.get_mut("seq") {
        Some(s) => *s = serde_json::value::to_raw_value(&seq).map_err(std::io::Error::other)?,
        None => return Err(std::io::Error::other("not a report: no seq")),
    }
    let json = serde_json::to_vec(&v).map_err(std::io::Error::other)?;
    let mut enc = flate2::write::GzEncoder::new(Vec::with_capacity(body.len()), flate2::Compression::default());
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
                state_write_failing: true,
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
        let writable = |r: &Report| {
            r.samples
                .iter()
                .find(|s| s.metric == "caretaker_agent_state_writable")
                .map(|s| s.value)
        };
        assert_eq!(writable(&report), Some(0.0));
        let second = r.build("a1", 8, AgentStatus::default(), vec![]);
        assert_eq!(writable(&second), Some(1.0));
        assert!(second.inventory.is_none(), "unchanged inventory is not resent");
        let body = encode_gzip(&second).unwrap_or_default();
        assert_eq!(&body[..2], &[0x1f, 0x8b]);
        // Renumbered, the report is the same but for its sequence number.
        // (Both read back through the same parser: a double read from text
        // may differ from the one in memory in its last bit.)
        let again = renumber_gzip(&body, 12).unwrap_or_default();
        let read = |gz: &[u8]| {
            let mut json = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(gz), &mut json).unwrap_or_default();
            serde_json::from_slice::<Report>(&json).unwrap_or_else(|e| panic!("{e}"))
        };
        assert_eq!(read(&again), Report { seq: 12, ..read(&body) });
    }

    #[test]
    fn renumbering_a_spooled_report_keeps_every_value_bit_exact() {
        // Values read from the machine are arbitrary doubles; renumbering a
        // spooled report must not round any of them on the way through.
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut samples = Vec::new();
        while samples.len() < 5000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = f64::from_bits(x);
            if v.is_finite() {
                samples.push(Sample {
                    metric: "caretaker_load1".into(),
                    labels: Default::default(),
                    value: v,
                });
            }
        }
        let report = Report {
            version: caretaker_shared::wire::PROTOCOL_VERSION,
            agent_id: "a1".into(),
            seq: 3,
            collected_at_ms: 1,
            interval_secs: 60,
            host: "h1".into(),
            labels: Default::default(),
            samples,
            events: vec![],
            inventory: None,
            disks: None,
        };
        let body = encode_gzip(&report).unwrap_or_default();
        let again = renumber_gzip(&body, 4).unwrap_or_default();
        let read = |gz: &[u8]| {
            let mut json = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(gz), &mut json).unwrap_or_default();
            serde_json::from_slice::<Report>(&json).unwrap_or_else(|e| panic!("{e}"))
        };
        let (sent, back) = (read(&body), read(&again));
        assert_eq!(back.seq, 4);
        assert_eq!(sent.samples.len(), back.samples.len());
        for (a, b) in sent.samples.iter().zip(&back.samples) {
            assert_eq!(
                a.value.to_bits(),
                b.value.to_bits(),
                "{} came back as {}",
                a.value,
                b.value
            );
        }
    }

    #[test]
    fn inventory_is_checked_every_few_minutes_and_resent_hourly() {
        // A captured tree: this machine's processes and mounts may change
        // between two builds (other tests start database servers).
        let tree = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/inventory/server");
        let cfg = Config::parse(
            &format!(
                "collector_url = \"https://127.0.0.1:1\"\nca_file = \"/x\"\nproc_root = \"{0}/proc\"\nsys_root = \"{0}/sys\"\netc_root = \"{0}/etc\"\n[inventory]\nprobe_versions = false\ndmidecode = false\n",
                tree.display()
            ),
            Path::new("t.toml"),
        );
        let Ok(cfg) = cfg else { panic!("config") };
        let mut r = Reporter::new(&cfg);
        let t0 = 1_000_000;
        assert!(r.inventory_if_due(t0).is_some(), "first report");
        assert!(
            r.inventory_if_due(t0 + 1_000).is_none(),
            "not rebuilt within the check interval"
        );
        assert!(
            r.inventory_if_due(t0 + INVENTORY_CHECK_MS).is_none(),
            "rebuilt, unchanged"
        );
        assert_eq!(r.inventory_checked_at, Some(t0 + INVENTORY_CHECK_MS));
        assert!(r.inventory_if_due(t0 + INVENTORY_EVERY_MS).is_some(), "resent hourly");
    }

    #[test]
    fn a_changed_inventory_is_sent_at_the_next_check() {
        let cfg = Config::parse(
            "collector_url = \"https://127.0.0.1:1\"\nca_file = \"/x\"\n[inventory]\nprobe_versions = false\n",
            Path::new("t.toml"),
        );
        let Ok(cfg) = cfg else { panic!("config") };
        let mut r = Reporter::new(&cfg);
        let t0 = 1_000_000;
        let first = r.inventory_if_due(t0).map(|i| i.content_hash).unwrap_or_default();
        assert_eq!(first.len(), 64, "carries its content hash");
        // As if the host had changed since: the hash sent last differs.
        r.last_inventory = Some(("an older hash".into(), t0));
        let again = r.inventory_if_due(t0 + INVENTORY_CHECK_MS);
        assert_eq!(again.map(|i| i.content_hash), Some(first));
    }

    #[test]
    fn the_inventory_goes_out_again_when_the_bmc_or_a_psu_changes() {
        let cfg = Config::parse(
            "collector_url = \"https://127.0.0.1:1\"\nca_file = \"/x\"\ncollectors = [\"ipmi\"]\n",
            Path::new("t.toml"),
        );
        let Ok(cfg) = cfg else { panic!("config") };
        let mut r = Reporter::new(&cfg);
        let status = AgentStatus::default();
        assert!(r.build("a1", 1, status, vec![]).inventory.is_some());
        assert!(r.build("a1", 2, status, vec![]).inventory.is_none(), "unchanged");
        let bmc = caretaker_shared::wire::BmcInfo {
            vendor: "Dell Inc.".into(),
            firmware: "7.00.00.171".into(),
            ipmi_version: "2.0".into(),
            ip: String::new(),
        };
        let psu = |serial: &str| caretaker_shared::wire::PsuInfo {
            name: "PS1".into(),
            serial: serial.into(),
            ..Default::default()
        };
        r.ipmi_state().publish_inventory(Some(bmc.clone()), vec![psu("A")]);
        let inv = r.build("a1", 3, status, vec![]).inventory;
        assert_eq!(inv.as_ref().and_then(|i| i.bmc.clone()), Some(bmc.clone()));
        assert_eq!(inv.map(|i| i.power_supplies.len()), Some(1));
        r.ipmi_state().publish_inventory(Some(bmc.clone()), vec![psu("A")]);
        assert!(
            r.build("a1", 4, status, vec![]).inventory.is_none(),
            "the same parts again"
        );
        r.ipmi_state().publish_inventory(Some(bmc), vec![psu("B")]);
        let inv = r.build("a1", 5, status, vec![]).inventory;
        assert_eq!(inv.map(|i| i.power_supplies[0].serial.clone()), Some("B".to_string()));
    }
}
