//! `/metrics`: the collector's own counters plus every host's latest samples,
//! rendered as OpenMetrics text with `prometheus-client`. Names, units, help
//! and labels all come from the shared catalogue. Per-host series are encoded
//! at scrape time from a snapshot of the fleet (a `Collector` impl), so there
//! is no second copy of the samples to keep in sync.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use caretaker_shared::catalogue::{self, CATALOGUE, Kind, MetricDef, Source, Unit};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{self, Registry};

use crate::cases::ItemKind;
use crate::cases::hold::Held;

/// Spare coverage ratio per customer, and stock lines under their minimum.
pub type SpareGauges = (Vec<(String, f64)>, u64);
use crate::cases::store::OpenCount;
use crate::fleet::Fleet;

type Labels = Vec<(String, String)>;

pub struct Metrics {
    registry: Registry,
    pub accepted: Counter,
    pub duplicate: Counter,
    pub rejected: Family<Labels, Counter>,
    pub ignored: Family<Labels, Counter>,
    pub latency: Histogram,
    /// Detection: transitions by event, evaluation time, rule file problems,
    /// reports dropped from a full queue.
    pub transitions: Family<Labels, Counter>,
    pub evaluation: Histogram,
    pub rule_file_errors: Counter,
    /// Bad edits of the contracts file rejected on reload (each counted once).
    pub contract_file_errors: Counter,
    /// The store's last integrity check: passed (1) or not, and when (s).
    pub store_check_ok: Gauge,
    pub store_checked_at: Gauge,
    /// Store reads running now, and reads waiting for a free read connection
    /// (`[store] readers`): a queue that stays above 0 wants more of them.
    pub store_reads_in_use: Gauge,
    pub store_reads_waiting: Gauge,
    /// Ticket sinks: deliveries by result, and each sink's backlog.
    pub sink_deliveries: Family<Labels, Counter>,
    pub outbox_pending: Family<Labels, Gauge>,
    pub dropped: Counter,
    /// Logins: failed password checks, and logins refused before one.
    pub login_failures: Counter,
    pub login_refused: Family<Labels, Counter>,
    /// Reports superseded by a newer report of their host while detection
    /// was behind on it.
    pub coalesced: Counter,
    /// Detection series kept per host, and new ones refused at the bound.
    pub series: Family<Labels, Gauge>,
    pub series_dropped: Family<Labels, Counter>,
    /// The last checkpoint of detection state: its duration (s), size
    /// (bytes) and time (s).
    pub checkpoint_seconds: Gauge<f64, AtomicU64>,
    pub checkpoint_bytes: Gauge,
    pub checkpoint_at: Gauge,
    /// Active findings and cases, as the store writer counted them after the
    /// last detection job (so a scrape costs no query; it lags by at most
    /// one tick).
    pub open: Arc<Mutex<Vec<OpenCount>>>,
    /// Held signals by reason, likewise.
    pub held: Arc<Mutex<Vec<(Held, u64)>>>,
    /// Breached and unassigned cases per customer, likewise.
    pub queue: Arc<Mutex<Vec<crate::queue::QueueCounts>>>,
    /// Spare coverage per customer and stock lines under their minimum,
    /// refreshed every minute from the store.
    pub spares: Arc<Mutex<SpareGauges>>,
    /// Edge limits that cut a connection or request short (and their log).
    pub http_limited: crate::http::limits::Recorder,
    /// This replica among its peers, as its last round found it.
    replica: Arc<Mutex<ReplicaView>>,
}

/// What `/metrics` shows of this replica and what it may show for the fleet.
#[derive(Debug, Clone)]
struct ReplicaView {
    name: String,
    id: String,
    live: usize,
    hosts: usize,
    jobs: Vec<(String, bool)>,
    /// The rule set's and the contracts file's fingerprints, by file.
    files: BTreeMap<&'static str, String>,
    mismatch: BTreeMap<&'static str, bool>,
    /// Whether the fleet-wide gauges (open items, queue, spares,
    /// recommendations) are this replica's to show: it holds the lifecycle
    /// job, so a Prometheus scraping every replica counts them once.
    fleet_wide: bool,
    /// Hosts another replica holds: their series are that one's to show.
    elsewhere: Arc<HashSet<String>>,
}

impl Default for ReplicaView {
    fn default() -> Self {
        Self {
            name: String::new(),
            id: String::new(),
            live: 1,
            hosts: 0,
            jobs: Vec::new(),
            files: [("rules", "none".to_string()), ("contracts", "none".to_string())].into(),
            mismatch: [("rules", false), ("contracts", false)].into(),
            fleet_wide: true,
            elsewhere: Arc::default(),
        }
    }
}

fn unit(u: Unit) -> Option<registry::Unit> {
    match u {
        Unit::None => None,
        Unit::Bytes => Some(registry::Unit::Bytes),
        Unit::Seconds => Some(registry::Unit::Seconds),
        Unit::Ratio => Some(registry::Unit::Other("ratio".into())),
        Unit::Celsius => Some(registry::Unit::Celsius),
    }
}

fn def(name: &str) -> Result<&'static MetricDef, String> {
    catalogue::lookup(name).ok_or_else(|| format!("{name} is missing from the catalogue"))
}

fn register(registry: &mut Registry, name: &str, metric: impl registry::Metric) -> Result<(), String> {
    let d = def(name)?;
    match unit(d.unit) {
        // prometheus-client adds the final full stop itself.
        Some(u) => registry.register_with_unit(d.base_name(), d.help.trim_end_matches('.'), u, metric),
        None => registry.register(d.base_name(), d.help.trim_end_matches('.'), metric),
    }
    Ok(())
}

impl Metrics {
    /// Counts one hand-over of a case change to a sink.
    pub fn count_delivery(&self, sink: &str, result: &str) {
        self.sink_deliveries
            .get_or_create(&vec![
                ("sink".to_string(), sink.to_string()),
                ("result".to_string(), result.to_string()),
            ])
            .inc();
    }

    pub fn set_outbox_pending(&self, sink: &str, pending: i64) {
        self.outbox_pending
            .get_or_create(&vec![("sink".to_string(), sink.to_string())])
            .set(pending);
    }

    fn view(&self) -> std::sync::MutexGuard<'_, ReplicaView> {
        self.replica.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records the fingerprint of the rule set (`rules`) or the contracts
    /// file (`contracts`) in force, at start and after each reload.
    pub fn set_config_fingerprint(&self, file: &str, fingerprint: &str) {
        let key = if file == "rules" { "rules" } else { "contracts" };
        self.view().files.insert(key, fingerprint.to_string());
    }

    /// The rule set's and the contracts file's fingerprints in force.
    pub fn config_fingerprints(&self) -> (String, String) {
        let v = self.view();
        (
            v.files.get("rules").cloned().unwrap_or_default(),
            v.files.get("contracts").cloned().unwrap_or_default(),
        )
    }

    /// Whether this replica shows the fleet-wide gauges.
    pub fn fleet_wide(&self) -> bool {
        self.view().fleet_wide
    }

    /// What a round of [`crate::replicas`] found: the jobs held, the host
    /// leases held, the live peers (a peer on other files is a mismatch,
    /// logged when it appears) and the hosts held elsewhere.
    pub fn set_replica_view(
        &self,
        me: &crate::replicas::Replica,
        jobs: &[(String, bool)],
        hosts: usize,
        live: &[crate::store::leases::Replica],
        elsewhere: Arc<HashSet<String>>,
    ) {
        let mut v = self.view();
        v.name = me.name.clone();
        v.id = me.id.clone();
        v.live = live.len().max(1);
        v.hosts = hosts;
        v.jobs = jobs.to_vec();
        v.fleet_wide = jobs.iter().any(|(j, ok)| *ok && j == crate::replicas::LIFECYCLE);
        v.elsewhere = elsewhere;
        for file in ["rules", "contracts"] {
            let mine = v.files.get(file).cloned().unwrap_or_default();
            let other = live.iter().filter(|r| r.id != me.id).find(|r| {
                let theirs = if file == "rules" {
                    &r.rules_fingerprint
                } else {
                    &r.contracts_fingerprint
                };
                *theirs != mine
            });
            let was = v.mismatch.get(file).copied().unwrap_or(false);
            if let (Some(r), false) = (other, was) {
                tracing::warn!(
                    file,
                    replica = %me.name,
                    peer = %r.name,
                    "a replica sharing this store runs another {file} file; replicas must run the same files"
                );
            }
            v.mismatch.insert(file, other.is_some());
        }
    }

    pub fn new(fleet: Arc<Fleet>, down_after_intervals: u32) -> Result<Self, String> {
        let mut registry = Registry::default();
        let m = Self {
            accepted: Counter::default(),
            duplicate: Counter::default(),
            rejected: Family::default(),
            ignored: Family::default(),
            // 0.25 ms .. ~4 s
            latency: Histogram::new(exponential_buckets(0.00025, 2.0, 15)),
            transitions: Family::default(),
            // 10 µs .. ~0.3 s
            evaluation: Histogram::new(exponential_buckets(0.00001, 2.0, 15)),
            rule_file_errors: Counter::default(),
            contract_file_errors: Counter::default(),
            store_check_ok: Gauge::default(),
            store_checked_at: Gauge::default(),
            store_reads_in_use: Gauge::default(),
            store_reads_waiting: Gauge::default(),
            sink_deliveries: Family::default(),
            outbox_pending: Family::default(),
            dropped: Counter::default(),
            login_failures: Counter::default(),
            login_refused: Family::default(),
            coalesced: Counter::default(),
            series: Family::default(),
            series_dropped: Family::default(),
            checkpoint_seconds: Gauge::default(),
            checkpoint_bytes: Gauge::default(),
            checkpoint_at: Gauge::default(),
            open: Arc::new(Mutex::new(Vec::new())),
            held: Arc::new(Mutex::new(Vec::new())),
            queue: Arc::new(Mutex::new(Vec::new())),
            spares: Arc::new(Mutex::new((Vec::new(), 0))),
            http_limited: Default::default(),
            replica: Arc::default(),
            registry: Registry::default(),
        };
        register(&mut registry, "caretaker_http_limited", m.http_limited.family())?;
        register(&mut registry, "caretaker_item_transitions", m.transitions.clone())?;
        register(&mut registry, "caretaker_rule_evaluation_seconds", m.evaluation.clone())?;
        register(&mut registry, "caretaker_rule_file_errors", m.rule_file_errors.clone())?;
        register(
            &mut registry,
            "caretaker_contract_file_errors",
            m.contract_file_errors.clone(),
        )?;
        register(&mut registry, "caretaker_store_check_ok", m.store_check_ok.clone())?;
        register(
            &mut registry,
            "caretaker_store_check_timestamp_seconds",
            m.store_checked_at.clone(),
        )?;
        register(
            &mut registry,
            "caretaker_store_reads_in_use",
            m.store_reads_in_use.clone(),
        )?;
        register(
            &mut registry,
            "caretaker_store_reads_waiting",
            m.store_reads_waiting.clone(),
        )?;
        register(&mut registry, "caretaker_detect_evaluations_dropped", m.dropped.clone())?;
        register(&mut registry, "caretaker_detect_reports_coalesced", m.coalesced.clone())?;
        register(&mut registry, "caretaker_detect_series", m.series.clone())?;
        register(
            &mut registry,
            "caretaker_detect_series_dropped",
            m.series_dropped.clone(),
        )?;
        register(
            &mut registry,
            "caretaker_detect_checkpoint_seconds",
            m.checkpoint_seconds.clone(),
        )?;
        register(
            &mut registry,
            "caretaker_detect_checkpoint_bytes",
            m.checkpoint_bytes.clone(),
        )?;
        register(
            &mut registry,
            "caretaker_detect_checkpoint_timestamp_seconds",
            m.checkpoint_at.clone(),
        )?;
        register(&mut registry, "caretaker_sink_deliveries", m.sink_deliveries.clone())?;
        register(&mut registry, "caretaker_outbox_pending", m.outbox_pending.clone())?;
        register(&mut registry, "caretaker_login_failures", m.login_failures.clone())?;
        register(&mut registry, "caretaker_login_refused", m.login_refused.clone())?;
        for r in catalogue::LOGIN_REFUSED_REASONS {
            let _ = m
                .login_refused
                .get_or_create(&vec![("reason".to_string(), r.to_string())]);
        }
        for e in catalogue::TRANSITION_EVENTS {
            let _ = m.transitions.get_or_create(&vec![("event".to_string(), e.to_string())]);
        }
        registry.register_collector(Box::new(OpenItems {
            open: m.open.clone(),
            held: m.held.clone(),
            queue: m.queue.clone(),
            spares: m.spares.clone(),
            replica: m.replica.clone(),
        }));
        registry.register_collector(Box::new(ReplicaSeries {
            replica: m.replica.clone(),
        }));
        register(&mut registry, "caretaker_ingest_reports_accepted", m.accepted.clone())?;
        register(&mut registry, "caretaker_ingest_reports_duplicate", m.duplicate.clone())?;
        register(&mut registry, "caretaker_ingest_reports_rejected", m.rejected.clone())?;
        register(&mut registry, "caretaker_ingest_samples_ignored", m.ignored.clone())?;
        register(&mut registry, "caretaker_ingest_latency_seconds", m.latency.clone())?;
        // Every reason exists from the start, at 0, so rates and dashboards work.
        for r in catalogue::REJECT_REASONS {
            let _ = m.rejected.get_or_create(&vec![("reason".to_string(), r.to_string())]);
        }
        let _ = m
            .ignored
            .get_or_create(&vec![("reason".to_string(), "unknown_metric".to_string())]);
        registry.register_collector(Box::new(HostSeries {
            fleet,
            down_after_intervals,
            replica: m.replica.clone(),
        }));
        Ok(Self { registry, ..m })
    }

    pub fn reject(&self, reason: &'static str) {
        debug_assert!(catalogue::REJECT_REASONS.contains(&reason));
        self.rejected
            .get_or_create(&vec![("reason".to_string(), reason.to_string())])
            .inc();
    }

    /// Counts a login refused before its password check.
    pub fn login_refused(&self, reason: &'static str) {
        debug_assert!(catalogue::LOGIN_REFUSED_REASONS.contains(&reason));
        self.login_refused
            .get_or_create(&vec![("reason".to_string(), reason.to_string())])
            .inc();
    }

    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::with_capacity(64 * 1024);
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// Encodes the active findings and cases gauges from the writer's last count.
#[derive(Debug)]
struct OpenItems {
    open: Arc<Mutex<Vec<OpenCount>>>,
    held: Arc<Mutex<Vec<(Held, u64)>>>,
    queue: Arc<Mutex<Vec<crate::queue::QueueCounts>>>,
    spares: Arc<Mutex<SpareGauges>>,
    replica: Arc<Mutex<ReplicaView>>,
}

impl Collector for OpenItems {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        // Another replica shows the fleet's counts: the families stay, empty.
        let mine = self.replica.lock().unwrap_or_else(|p| p.into_inner()).fleet_wide;
        let open: Vec<OpenCount> = if_mine(mine, &self.open);
        for (name, kind) in [
            ("caretaker_findings_open", ItemKind::Finding),
            ("caretaker_cases_open", ItemKind::Case),
        ] {
            let d = catalogue::lookup(name).ok_or(std::fmt::Error)?;
            let mut family = encoder.encode_descriptor(d.base_name(), d.help, None, MetricType::Gauge)?;
            for c in open.iter().filter(|c| c.kind == kind) {
                let labels = [("severity", c.severity.as_str()), ("customer", c.customer.as_str())];
                family
                    .encode_family(&labels)?
                    .encode_gauge(&i64::try_from(c.count).unwrap_or(i64::MAX))?;
            }
        }
        let held: Vec<(Held, u64)> = if_mine(mine, &self.held);
        let d = catalogue::lookup("caretaker_signals_held").ok_or(std::fmt::Error)?;
        let mut family = encoder.encode_descriptor(d.base_name(), d.help, None, MetricType::Gauge)?;
        for reason in [Held::Unmapped, Held::Maintenance, Held::Storm]
            .into_iter()
            .filter(|_| mine)
        {
            let n = held.iter().find(|(r, _)| *r == reason).map_or(0, |(_, n)| *n);
            family
                .encode_family(&[("reason", reason.as_str())])?
                .encode_gauge(&i64::try_from(n).unwrap_or(i64::MAX))?;
        }
        let queue: Vec<crate::queue::QueueCounts> = if_mine(mine, &self.queue);
        for name in ["caretaker_cases_sla_breached", "caretaker_cases_unassigned"] {
            let d = catalogue::lookup(name).ok_or(std::fmt::Error)?;
            let mut family = encoder.encode_descriptor(d.base_name(), d.help, None, MetricType::Gauge)?;
            for q in &queue {
                let n = if name == "caretaker_cases_sla_breached" {
                    q.breached
                } else {
                    q.unassigned
                };
                family
                    .encode_family(&[("customer", q.customer.as_str())])?
                    .encode_gauge(&i64::try_from(n).unwrap_or(i64::MAX))?;
            }
        }
        let (coverage, below) = if mine {
            self.spares.lock().unwrap_or_else(|p| p.into_inner()).clone()
        } else {
            (Vec::new(), 0)
        };
        let d = catalogue::lookup("caretaker_spare_coverage_ratio").ok_or(std::fmt::Error)?;
        let u = unit(d.unit);
        let mut family = encoder.encode_descriptor(d.base_name(), d.help, u.as_ref(), MetricType::Gauge)?;
        for (customer, ratio) in &coverage {
            family
                .encode_family(&[("customer", customer.as_str())])?
                .encode_gauge(ratio)?;
        }
        let d = catalogue::lookup("caretaker_spare_stock_below_minimum").ok_or(std::fmt::Error)?;
        let mut family = encoder.encode_descriptor(d.base_name(), d.help, None, MetricType::Gauge)?;
        if mine {
            family.encode_gauge(&i64::try_from(below).unwrap_or(i64::MAX))?;
        }
        Ok(())
    }
}

/// A copy of `v` when this replica shows the fleet-wide gauges, else none.
fn if_mine<T: Clone>(mine: bool, v: &Mutex<Vec<T>>) -> Vec<T> {
    if mine {
        v.lock().unwrap_or_else(|p| p.into_inner()).clone()
    } else {
        Vec::new()
    }
}

/// Encodes this replica's place among its peers.
#[derive(Debug)]
struct ReplicaSeries {
    replica: Arc<Mutex<ReplicaView>>,
}

impl Collector for ReplicaSeries {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let v = self.replica.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let gauge = |name: &str| catalogue::lookup(name).ok_or(std::fmt::Error);
        let d = gauge("caretaker_replica_info")?;
        let mut family = encoder.encode_descriptor(d.base_name(), d.help, None, MetricType::Gauge)?;
        if !v.id.is_empty() {
            family
                .encode_family(&[("replica", v.name.as_str()), ("id", v.id.as_str())])?
                .encode_gauge(&1i64)?;
        }
        let d = gauge("caretaker_replicas_live")?;
        encoder
            .encode_descriptor(d.base_name(), d.help, None, MetricType::Gauge)?
            .encode_gauge(&i64::try_from(v.live).unwrap_or(i64::MAX))?;
        let d = gauge("caretaker_replica_hosts")?;
        let mut family = encoder.encode_descriptor(d.base_name(), d.help, None, MetricType::Gauge)?;
        if !v.id.is_empty() {
            family
                .encode_family(&[("replica", v.name.as_str())])?
                .encode_gauge(&i64::try_from(v.hosts).unwrap_or(i64::MAX))?;
        }
        let d = gauge("caretaker_replica_job_held")?;
        let mut family = encoder.encode_descriptor(d.base_name(), d.help, None, MetricType::Gauge)?;
        for (job, held) in &v.jobs {
            family
                .encode_family(&[("replica", v.name.as_str()), ("task", job.as_str())])?
                .encode_gauge(&i64::from(*held))?;
        }
        let d = gauge("caretaker_config_file_info")?;
        let mut family = encoder.encode_descriptor(d.base_name(), d.help, None, MetricType::Gauge)?;
        for (file, fp) in &v.files {
            family
                .encode_family(&[("file", *file), ("fingerprint", fp.as_str())])?
                .encode_gauge(&1i64)?;
        }
        let d = gauge("caretaker_config_mismatch")?;
        let mut family = encoder.encode_descriptor(d.base_name(), d.help, None, MetricType::Gauge)?;
        for (file, bad) in &v.mismatch {
            family
                .encode_family(&[("file", *file)])?
                .encode_gauge(&i64::from(*bad))?;
        }
        Ok(())
    }
}

/// Encodes per-host series and fleet gauges at scrape time.
#[derive(Debug)]
struct HostSeries {
    fleet: Arc<Fleet>,
    down_after_intervals: u32,
    replica: Arc<Mutex<ReplicaView>>,
}

fn metric_type(k: Kind) -> MetricType {
    match k {
        Kind::Gauge => MetricType::Gauge,
        Kind::Counter => MetricType::Counter,
        Kind::Histogram => MetricType::Histogram,
    }
}

impl Collector for HostSeries {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let (elsewhere, fleet_wide) = {
            let v = self.replica.lock().unwrap_or_else(|p| p.into_inner());
            (v.elsewhere.clone(), v.fleet_wide)
        };
        // The hosts another replica holds are that replica's to show.
        let mut hosts = self.fleet.snapshot();
        hosts.retain(|h| !elsewhere.contains(&h.host));
        let now = caretaker_shared::now_ms();
        for d in CATALOGUE.iter().filter(|d| d.source == Source::Agent) {
            let u = unit(d.unit);
            let mut family = encoder.encode_descriptor(d.base_name(), d.help, u.as_ref(), metric_type(d.kind))?;
            for h in &hosts {
                for s in h.samples_of(d.name) {
                    let mut labels: Vec<(&str, &str)> = Vec::with_capacity(3 + s.labels.len());
                    labels.push(("host", &h.host));
                    labels.push(("customer", h.label("customer")));
                    labels.push(("site", h.label("site")));
                    labels.extend(s.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())));
                    let mut enc = family.encode_family(&labels)?;
                    match d.kind {
                        Kind::Counter => enc.encode_counter::<(), _, f64>(&s.value, None)?,
                        _ => enc.encode_gauge(&s.value)?,
                    }
                }
            }
        }
        let mut up_count = 0i64;
        {
            let d = catalogue::lookup("caretaker_host_up").ok_or(std::fmt::Error)?;
            let mut family = encoder.encode_descriptor(d.base_name(), d.help, None, MetricType::Gauge)?;
            for h in &hosts {
                let up = h.is_up(now, self.down_after_intervals);
                up_count += i64::from(up);
                let labels = [
                    ("host", h.host.as_str()),
                    ("customer", h.label("customer")),
                    ("site", h.label("site")),
                ];
                family.encode_family(&labels)?.encode_gauge(&i64::from(up))?;
            }
        }
        {
            let d = catalogue::lookup("caretaker_host_last_seen_timestamp_seconds").ok_or(std::fmt::Error)?;
            let u = unit(d.unit);
            let mut family = encoder.encode_descriptor(d.base_name(), d.help, u.as_ref(), MetricType::Gauge)?;
            for h in &hosts {
                if let Some(t) = h.last_seen_ms {
                    let labels = [
                        ("host", h.host.as_str()),
                        ("customer", h.label("customer")),
                        ("site", h.label("site")),
                    ];
                    family.encode_family(&labels)?.encode_gauge(&(t as f64 / 1000.0))?;
                }
            }
        }
        {
            let d = catalogue::lookup("caretaker_inventory_info").ok_or(std::fmt::Error)?;
            let mut family = encoder.encode_descriptor(d.base_name(), d.help, None, MetricType::Gauge)?;
            for h in &hosts {
                let Some(inv) = &h.inventory else { continue };
                let labels = [
                    ("host", h.host.as_str()),
                    ("customer", h.label("customer")),
                    ("site", h.label("site")),
                    ("vendor", inv.dmi.sys_vendor.as_str()),
                    ("product", inv.dmi.product_name.as_str()),
                    ("serial", inv.dmi.product_serial.as_str()),
                    ("os", inv.os_name.as_str()),
                    ("kernel", inv.kernel.as_str()),
                ];
                family.encode_family(&labels)?.encode_gauge(&1i64)?;
            }
        }
        {
            let d = catalogue::lookup("caretaker_asset_changes").ok_or(std::fmt::Error)?;
            let mut family = encoder.encode_descriptor(d.base_name(), d.help, None, MetricType::Counter)?;
            for h in hosts.iter().filter(|h| h.inventory.is_some()) {
                let labels = [
                    ("host", h.host.as_str()),
                    ("customer", h.label("customer")),
                    ("site", h.label("site")),
                ];
                family
                    .encode_family(&labels)?
                    .encode_counter::<(), _, u64>(&h.asset_changes, None)?;
            }
        }
        for (name, v) in [
            ("caretaker_hosts_known", hosts.len() as i64),
            ("caretaker_hosts_up", up_count),
        ] {
            let d = catalogue::lookup(name).ok_or(std::fmt::Error)?;
            let g = prometheus_client::metrics::gauge::ConstGauge::new(v);
            let family = encoder.encode_descriptor(d.base_name(), d.help, None, MetricType::Gauge)?;
            g.encode(family)?;
        }
        let recs = if fleet_wide {
            self.fleet.recommendations_open()
        } else {
            Vec::new()
        };
        let d = catalogue::lookup("caretaker_recommendations_open").ok_or(std::fmt::Error)?;
        let mut family = encoder.encode_descriptor(d.base_name(), d.help, None, MetricType::Gauge)?;
        for urgency in crate::predict::records::URGENCIES.iter().filter(|_| fleet_wide) {
            let n = recs.iter().find(|(u, _)| u == urgency).map_or(0, |(_, n)| *n);
            family
                .encode_family(&[("urgency", *urgency)])?
                .encode_gauge(&i64::try_from(n).unwrap_or(i64::MAX))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_collector_metric_is_rendered_from_the_catalogue() {
        let m = Metrics::new(Arc::new(Fleet::default()), 3);
        let Ok(m) = m else { panic!("metrics: {:?}", m.err()) };
        m.accepted.inc();
        m.reject("malformed");
        let text = m.render().unwrap_or_default();
        for d in CATALOGUE.iter().filter(|d| d.source == Source::Collector) {
            assert!(
                text.contains(&format!("# TYPE {} ", d.name)),
                "{} missing:\n{text}",
                d.name
            );
        }
        assert!(text.contains("caretaker_ingest_reports_accepted_total 1"), "{text}");
        assert!(
            text.contains("caretaker_ingest_reports_rejected_total{reason=\"malformed\"} 1"),
            "{text}"
        );
        assert!(text.contains("caretaker_hosts_known 0"), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }
}
