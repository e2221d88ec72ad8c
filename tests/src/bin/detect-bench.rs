//! `caretaker-detect-bench`: the cost of the detection engine with the
//! built-in rule pack and a whole fleet's state loaded (BENCHMARKS.md,
//! "Detection engine").
//!
//! Every host sends a report shaped like a real agent's (~200 samples: CPU,
//! memory, filesystems, SATA and NVMe disks with SMART series, EDAC, md,
//! hwmon, databases…), with healthy, noisy values that vary per host, so the
//! rules evaluate on every series they read and seldom fire.
//!
//! Warm-up fills every host's history to steady state before anything is
//! measured. The engine keeps at most one point per `window / MAX_POINTS` of
//! a series (closer reports overwrite the newest point), so the warm-up sends
//! each host reports at the coarsest step that still gives the density real
//! 15-second reports leave behind at that age: every `interval` in the last
//! hour, sparser further back, across the longest rule window. Hosts are
//! warmed one after the other: the engine's state per host is independent.
//!
//! Then single-threaded, virtual time advancing by one interval per round,
//! every host in a shuffled order: the time of each `observe` call alone
//! (reports are built outside the timed part and dropped after use).
//! Memory per host is the engine's net heap growth across the warm-up (bytes
//! allocated minus freed, counted by an instrumented allocator; the reports
//! are freed as the warm-up goes) divided by the host count; the growth of the
//! process's resident set (VmRSS), which also holds freed pages the allocator
//! keeps, and the engine's own counts of series and points are printed beside
//! it.

use std::collections::BTreeMap;
use std::time::Instant;

use caretaker_collector::detect::{Engine, MAX_POINTS};
use caretaker_collector::rules::{self, Condition};
use caretaker_shared::wire::{PROTOCOL_VERSION, Report, Sample};
use clap::Parser;

// Times are taken with the collector's allocator. Built with
// `--features heap-count`, an allocator that counts every byte allocated and
// freed gives the engine's heap per host instead (its bookkeeping slows the
// times down: take those from the default build).
#[cfg(not(feature = "heap-count"))]
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;
#[cfg(feature = "heap-count")]
#[global_allocator]
static ALLOC: &stats_alloc::StatsAlloc<std::alloc::System> = &stats_alloc::INSTRUMENTED_SYSTEM;

/// Net heap growth since the region began, when counted.
#[cfg(feature = "heap-count")]
struct Heap(stats_alloc::Region<'static, std::alloc::System>);
#[cfg(feature = "heap-count")]
impl Heap {
    fn start() -> Heap {
        Heap(stats_alloc::Region::new(ALLOC))
    }
    fn grown(&self) -> Option<f64> {
        let c = self.0.change();
        Some(c.bytes_allocated as f64 - c.bytes_deallocated as f64)
    }
}
#[cfg(not(feature = "heap-count"))]
struct Heap;
#[cfg(not(feature = "heap-count"))]
impl Heap {
    fn start() -> Heap {
        Heap
    }
    fn grown(&self) -> Option<f64> {
        None
    }
}

#[derive(Parser)]
#[command(about = "Benchmark of the Caretaker detection engine (built-in rules, many hosts).")]
struct Args {
    /// Hosts whose state the engine holds.
    #[arg(long, default_value_t = 10_000)]
    hosts: usize,
    /// Reports timed after the warm-up (spread over all hosts).
    #[arg(long, default_value_t = 100_000)]
    reports: usize,
    /// Virtual history sent per host before measuring, in hours; by default
    /// the longest window of the rules (then every series is at steady state).
    #[arg(long)]
    history_hours: Option<u64>,
    /// Also print a digest of every signal the engine returns (slow), to
    /// check that a change to the engine leaves its output identical.
    #[arg(long)]
    digest: bool,
    /// The agents' report interval.
    #[arg(long, default_value_t = 15)]
    interval_secs: u32,
}

/// Virtual time at which the history starts.
const T0_MS: i64 = 1_700_000_000_000;

/// How a sample's value moves over time.
#[derive(Debug, Clone, Copy)]
enum Model {
    Const(f64),
    /// `base` ± `amp`, changing at every report.
    Noisy {
        base: f64,
        amp: f64,
    },
    /// A counter growing by `rate` per second.
    Counter {
        base: f64,
        rate: f64,
    },
    /// Available bytes of a filesystem of `size`: `frac` of it, slowly
    /// filling by `fill_per_day` of the size, with a little noise.
    FsAvail {
        size: f64,
        frac: f64,
        fill_per_day: f64,
    },
}

struct HostReport {
    report: Report,
    models: Vec<Model>,
    /// Per-host noise seed.
    seed: u64,
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// A deterministic value in [-1, 1).
fn noise(seed: u64, i: usize, t_ms: i64) -> f64 {
    let h = splitmix(seed ^ (i as u64).wrapping_mul(0x1000_0001) ^ (t_ms as u64).rotate_left(17));
    (h >> 11) as f64 / (1u64 << 52) as f64 - 1.0
}

impl HostReport {
    fn value(&self, i: usize, t_ms: i64) -> f64 {
        let secs = (t_ms - T0_MS) as f64 / 1000.0;
        match self.models[i] {
            Model::Const(v) => v,
            Model::Noisy { base, amp } => base + amp * noise(self.seed, i, t_ms),
            Model::Counter { base, rate } => (base + rate * secs).floor(),
            Model::FsAvail {
                size,
                frac,
                fill_per_day,
            } => {
                let f = frac - fill_per_day * secs / 86_400.0 + 0.002 * noise(self.seed, i, t_ms);
                (size * f.clamp(0.01, 1.0)).floor()
            }
        }
    }

    /// The report this host sends at `t_ms`.
    fn at(&mut self, seq: u64, t_ms: i64) -> &Report {
        for i in 0..self.models.len() {
            let v = self.value(i, t_ms);
            self.report.samples[i].value = v;
        }
        self.report.seq = seq;
        self.report.collected_at_ms = t_ms;
        &self.report
    }
}

/// Builds a host's report: what `caretaker-agent once --print` sends for a
/// server of that size, with every series the built-in rules read.
fn host_report(h: usize, interval_secs: u32) -> HostReport {
    let seed = splitmix(h as u64 + 1);
    let pick = |salt: u64, n: u64| (splitmix(seed ^ salt) % n) as usize;
    // About one host in a hundred has something going wrong.
    let faulty = h % 101 == 7;
    let mut samples = Vec::new();
    let mut models = Vec::new();
    let mut push = |metric: &str, labels: &[(&str, &str)], m: Model| {
        samples.push(Sample {
            metric: metric.to_string(),
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            value: 0.0,
        });
        models.push(m);
    };
    let noisy = |base: f64, amp: f64| Model::Noisy { base, amp };
    let counter = |base: f64, rate: f64| Model::Counter { base, rate };
    let c = Model::Const;

    // CPU and memory.
    let cores = [4, 8, 16][h % 3];
    push("caretaker_cpu_usage_ratio", &[], noisy(0.3, 0.2));
    push("caretaker_cpu_cores", &[], c(cores as f64));
    for l in ["caretaker_load1", "caretaker_load5", "caretaker_load15"] {
        push(l, &[], noisy(cores as f64 * 0.3, 0.5));
    }
    for i in 0..cores {
        push(
            "caretaker_cpu_core_usage_ratio",
            &[("cpu", &i.to_string())],
            noisy(0.3, 0.25),
        );
    }
    let mem = (16u64 << 30) as f64 * (1 + h % 4) as f64;
    push("caretaker_memory_total_bytes", &[], c(mem));
    push("caretaker_memory_available_bytes", &[], noisy(mem * 0.5, mem * 0.1));
    push("caretaker_memory_used_bytes", &[], noisy(mem * 0.5, mem * 0.1));
    push("caretaker_swap_total_bytes", &[], c(4.0 * (1u64 << 30) as f64));
    push("caretaker_swap_used_bytes", &[], noisy(1e8, 5e7));

    // Filesystems: 2 to 5.
    let mounts = ["/", "/boot", "/var", "/home", "/srv/data"];
    for (i, mp) in mounts.iter().take(2 + h % 4).enumerate() {
        let dev = format!("/dev/sda{}", i + 1);
        let fstype = if i % 2 == 0 { "ext4" } else { "xfs" };
        let l = [("mountpoint", *mp), ("device", dev.as_str()), ("fstype", fstype)];
        let size = (20u64 << 30) as f64 * (1 + pick(i as u64, 50)) as f64;
        let frac = 0.2 + 0.6 * pick(10 + i as u64, 100) as f64 / 100.0;
        push("caretaker_filesystem_size_bytes", &l, c(size));
        push("caretaker_filesystem_free_bytes", &l, noisy(size * frac + 1e9, 1e6));
        push(
            "caretaker_filesystem_avail_bytes",
            &l,
            Model::FsAvail {
                size,
                frac,
                // A few hosts fill their root filesystem in days.
                fill_per_day: if faulty && i == 0 {
                    0.05
                } else {
                    0.001 * pick(20 + i as u64, 5) as f64
                },
            },
        );
        push("caretaker_filesystem_files", &l, c(1_310_720.0));
        push("caretaker_filesystem_files_free", &l, noisy(1_000_000.0, 1000.0));
        push("caretaker_filesystem_readonly", &l, c(0.0));
        push("caretaker_filesystem_remounted_readonly", &l, c(0.0));
    }

    // Disks: 2 to 4, NVMe on even hosts, SATA otherwise; diskio per device.
    for d in 0..2 + (h / 3) % 3 {
        let nvme = h % 2 == 0 && d < 2;
        let name = if nvme {
            format!("nvme{d}n1")
        } else {
            format!("sd{}", char::from(b'a' + d as u8))
        };
        let dev = [("device", name.as_str())];
        push("caretaker_disk_read_bytes", &dev, counter(1e12, 5e6));
        push("caretaker_disk_written_bytes", &dev, counter(2e12, 8e6));
        push("caretaker_disk_reads_completed", &dev, counter(1e8, 300.0));
        push("caretaker_disk_writes_completed", &dev, counter(2e8, 500.0));
        push("caretaker_disk_io_time_seconds", &dev, counter(1e5, 0.05));
        let disk = [("disk", name.as_str())];
        let serial = format!("S{h:06}{d}");
        push(
            "caretaker_disk_info",
            &[
                ("disk", &name),
                ("device", &format!("/dev/{name}")),
                ("model", if nvme { "SAMSUNG MZQL2960HCJR" } else { "ST4000NM000A" }),
                ("serial", &serial),
                ("firmware", "GDC5602Q"),
                ("protocol", if nvme { "nvme" } else { "ata" }),
                ("state", "ok"),
            ],
            c(1.0),
        );
        for (verdict, v) in [("healthy", 1.0), ("warning", 0.0), ("failing", 0.0), ("unknown", 0.0)] {
            push(
                "caretaker_disk_health_verdict",
                &[("disk", &name), ("verdict", verdict)],
                c(v),
            );
        }
        push("caretaker_disk_verdict_reasons", &disk, c(0.0));
        push("caretaker_disk_smart_passed", &disk, c(1.0));
        push("caretaker_disk_temperature_celsius", &disk, noisy(38.0, 4.0));
        push("caretaker_disk_temperature_trip_celsius", &disk, c(70.0));
        push("caretaker_disk_power_on_seconds", &disk, counter(3e7, 1.0));
        if nvme {
            push("caretaker_disk_nvme_percentage_used_ratio", &disk, noisy(0.03, 0.0));
            push("caretaker_disk_nvme_available_spare_ratio", &disk, c(1.0));
            push("caretaker_disk_nvme_available_spare_threshold_ratio", &disk, c(0.1));
            for bit in ["spare", "temperature", "reliability", "read_only", "backup"] {
                push(
                    "caretaker_disk_nvme_critical_warning",
                    &[("disk", &name), ("bit", bit)],
                    c(0.0),
                );
            }
            push("caretaker_disk_nvme_media_errors", &disk, c(0.0));
            push("caretaker_disk_nvme_error_log_entries", &disk, c(12.0));
            push("caretaker_disk_nvme_unsafe_shutdowns", &disk, c(7.0));
            push("caretaker_disk_nvme_written_bytes", &disk, counter(5e13, 8e6));
        } else {
            for (attr, m) in [
                (
                    "reallocated_sectors",
                    if faulty { counter(0.0, 1.0 / 3600.0) } else { c(0.0) },
                ),
                ("pending_sectors", c(0.0)),
                ("offline_uncorrectable", c(0.0)),
                ("udma_crc_errors", c(pick(30 + d as u64, 3) as f64)),
                ("power_cycle_count", c(40.0)),
                ("start_stop_count", c(41.0)),
                ("load_cycle_count", counter(1e4, 0.001)),
                ("seek_error_rate", counter(1e9, 10.0)),
            ] {
                push(
                    "caretaker_disk_ata_attribute_raw",
                    &[("disk", &name), ("attribute", attr)],
                    m,
                );
            }
            push("caretaker_disk_ata_error_log_entries", &disk, c(0.0));
            push("caretaker_disk_self_test_failed", &disk, c(0.0));
        }
    }
    push("caretaker_disk_scan_timestamp_seconds", &[], c(1.7e9));
    push("caretaker_disk_scan_success", &[], c(1.0));

    // Network: two interfaces.
    for iface in ["eth0", "eth1"] {
        let l = [("interface", iface)];
        for (m, rate) in [
            ("caretaker_network_receive_bytes", 1e6),
            ("caretaker_network_transmit_bytes", 8e5),
            ("caretaker_network_receive_packets", 1e3),
            ("caretaker_network_transmit_packets", 9e2),
        ] {
            push(m, &l, counter(1e10, rate));
        }
        for m in [
            "caretaker_network_receive_errors",
            "caretaker_network_transmit_errors",
            "caretaker_network_receive_drops",
            "caretaker_network_transmit_drops",
        ] {
            push(m, &l, c(0.0));
        }
    }
    push("caretaker_uptime_seconds", &[], counter(1e6, 1.0));
    push("caretaker_processes", &[], noisy(300.0, 20.0));
    let hostname = format!("host-{h:05}");
    push(
        "caretaker_host_info",
        &[
            ("hostname", &hostname),
            ("kernel", "6.1.0-28-amd64"),
            ("os", "Debian GNU/Linux 12"),
        ],
        c(1.0),
    );

    // Memory controllers (EDAC): one or two, two DIMMs each.
    for mc in 0..1 + h % 2 {
        let ctrl = format!("mc{mc}");
        push(
            "caretaker_edac_correctable_errors",
            &[("controller", &ctrl)],
            c(pick(40, 3) as f64),
        );
        push("caretaker_edac_uncorrectable_errors", &[("controller", &ctrl)], c(0.0));
        for dimm in 0..2 {
            let (dimm, label) = (format!("dimm{dimm}"), format!("CPU_SrcID#0_MC#{mc}_Chan#{dimm}_DIMM#0"));
            let l = [("controller", ctrl.as_str()), ("dimm", &dimm), ("label", &label)];
            push("caretaker_edac_dimm_correctable_errors", &l, c(0.0));
            push("caretaker_edac_dimm_uncorrectable_errors", &l, c(0.0));
        }
    }

    // Software RAID on a third of the hosts.
    if h % 3 == 0 {
        let md = [("device", "md0")];
        push("caretaker_md_active", &[("device", "md0"), ("level", "raid1")], c(1.0));
        push("caretaker_md_disks_required", &md, c(2.0));
        push("caretaker_md_disks", &[("device", "md0"), ("state", "active")], c(2.0));
        push("caretaker_md_degraded", &md, c(0.0));
        push(
            "caretaker_md_sync_action",
            &[("device", "md0"), ("action", "idle")],
            c(1.0),
        );
        push("caretaker_md_sync_progress_ratio", &md, c(1.0));
    }

    // Sensors.
    for s in ["Package id 0", "Core 0", "Core 1", "Core 2", "Core 3"] {
        let l = [("chip", "coretemp-isa-0000"), ("sensor", s)];
        push("caretaker_hwmon_temperature_celsius", &l, noisy(50.0, 8.0));
        push("caretaker_hwmon_temperature_max_celsius", &l, c(80.0));
        push("caretaker_hwmon_temperature_crit_celsius", &l, c(100.0));
    }
    for f in ["fan1", "fan2"] {
        let l = [("chip", "nct6775-isa-0290"), ("sensor", f)];
        push("caretaker_hwmon_fan_rpm", &l, noisy(1800.0, 100.0));
        push("caretaker_hwmon_fan_min_rpm", &l, c(300.0));
    }
    push("caretaker_cpu_package_throttles", &[("package", "0")], c(0.0));
    for core in ["0", "1", "2", "3"] {
        push(
            "caretaker_cpu_core_throttles",
            &[("package", "0"), ("core", core)],
            c(0.0),
        );
    }

    // System state.
    push("caretaker_oom_kills", &[], c(pick(50, 2) as f64));
    push("caretaker_systemd_units_failed", &[], c(0.0));
    push("caretaker_time_synchronized", &[], c(1.0));
    push("caretaker_time_ntp_enabled", &[], c(1.0));
    push("caretaker_reboot_required", &[], c(0.0));
    push("caretaker_reboot_required_packages", &[], c(0.0));
    push("caretaker_kernel_newer_installed", &[], c(0.0));

    // Databases: PostgreSQL on a quarter of the hosts, Redis on a fifth.
    if h % 4 == 0 {
        let l = [("db", "main"), ("kind", "postgres")];
        push("caretaker_db_up", &l, c(1.0));
        push("caretaker_db_poll_duration_seconds", &l, noisy(0.01, 0.005));
        push("caretaker_db_last_poll_timestamp_seconds", &l, counter(1.7e9, 1.0));
        push(
            "caretaker_db_info",
            &[("db", "main"), ("kind", "postgres"), ("version", "15.8")],
            c(1.0),
        );
        push("caretaker_db_uptime_seconds", &l, counter(1e6, 1.0));
        push("caretaker_db_connections", &l, noisy(40.0, 10.0));
        push("caretaker_db_max_connections", &l, c(200.0));
        push("caretaker_pg_frozen_xid_age", &l, counter(1e7, 1.0));
        push("caretaker_pg_oldest_transaction_seconds", &l, noisy(5.0, 5.0));
        push("caretaker_pg_oldest_idle_in_transaction_seconds", &l, noisy(2.0, 2.0));
        push("caretaker_pg_replicas", &l, c(0.0));
        push("caretaker_pg_wal_archive_failures", &l, c(0.0));
        for database in ["app", "postgres"] {
            let l = [("db", "main"), ("kind", "postgres"), ("database", database)];
            push("caretaker_pg_database_size_bytes", &l, counter(1e10, 10.0));
            push("caretaker_pg_commits", &l, counter(1e8, 50.0));
            push("caretaker_pg_rollbacks", &l, c(10.0));
            push("caretaker_pg_deadlocks", &l, c(0.0));
            push("caretaker_pg_cache_hit_ratio", &l, noisy(0.99, 0.005));
        }
    }
    if h % 5 == 0 {
        let l = [("db", "cache"), ("kind", "redis")];
        push("caretaker_db_up", &l, c(1.0));
        push("caretaker_db_uptime_seconds", &l, counter(1e6, 1.0));
        push("caretaker_db_connections", &l, noisy(20.0, 5.0));
        push("caretaker_redis_memory_used_bytes", &l, noisy(1e9, 1e7));
        push("caretaker_redis_memory_max_bytes", &l, c(4e9));
        push("caretaker_redis_evicted_keys", &l, c(0.0));
        push("caretaker_redis_rejected_connections", &l, c(0.0));
        push("caretaker_redis_blocked_clients", &l, c(0.0));
        push("caretaker_redis_rdb_last_save_ok", &l, c(1.0));
        push("caretaker_redis_keyspace_hits", &l, counter(1e8, 100.0));
        push("caretaker_redis_keyspace_misses", &l, counter(1e6, 5.0));
    }

    // The agent about itself.
    push("caretaker_agent_info", &[("version", "0.1.0")], c(1.0));
    for col in [
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
        "databases",
    ] {
        push("caretaker_agent_collector_success", &[("collector", col)], c(1.0));
        push(
            "caretaker_agent_collector_duration_seconds",
            &[("collector", col)],
            noisy(0.002, 0.001),
        );
    }
    push("caretaker_agent_spool_depth", &[], c(0.0));
    push("caretaker_agent_spool_dropped", &[], c(0.0));
    push("caretaker_agent_reports_rejected", &[], c(0.0));

    HostReport {
        report: Report {
            version: PROTOCOL_VERSION,
            agent_id: format!("agent-{h:05}"),
            seq: 0,
            collected_at_ms: T0_MS,
            interval_secs,
            host: hostname,
            labels: BTreeMap::from([
                ("customer".into(), format!("customer-{}", h % 50)),
                ("site".into(), format!("site-{}", h % 7)),
            ]),
            samples,
            events: Vec::new(),
            inventory: None,
            disks: None,
        },
        models,
        seed,
    }
}

/// Ages (ms before the end of the warm-up) at which a host reports: every
/// interval within the shortest window, and further back only as densely as
/// the engine keeps points for the windows that still reach that far.
fn warmup_ages(history_ms: i64, windows_ms: &[i64], interval_ms: i64) -> Vec<i64> {
    let longest = windows_ms.iter().copied().max().unwrap_or(0);
    let step_for = |age: i64| {
        let spacing = windows_ms
            .iter()
            .filter(|w| **w >= age)
            .min()
            .copied()
            .unwrap_or(longest)
            / MAX_POINTS as i64;
        // The density 15-second reports leave: the first multiple of the
        // interval at or past the spacing.
        (spacing.max(1) + interval_ms - 1) / interval_ms * interval_ms
    };
    let mut ages = Vec::new();
    let mut age = history_ms;
    while age > 0 {
        ages.push(age);
        age -= step_for(age);
    }
    ages.push(0);
    ages
}

/// FNV-1a over the signals' debug form.
fn fold(digest: &mut u64, signals: &[caretaker_collector::cases::Signal]) {
    for s in signals {
        for b in format!("{s:?}").bytes() {
            *digest = (*digest ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i] as f64 / 1000.0
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    anyhow::ensure!(
        a.hosts > 0 && a.interval_secs > 0,
        "--hosts and --interval-secs must be positive"
    );
    // The rules exactly as `caretaker-collector serve` loads them without a rules_dir.
    let rules = rules::load(None).map_err(|e| anyhow::anyhow!("built-in rules: {} errors", e.len()))?;
    let rule_count = rules.rules.len();
    let windows_ms: Vec<i64> = rules
        .rules
        .iter()
        .filter_map(|r| match &r.condition {
            Condition::Increase { window, .. } | Condition::Forecast { window, .. } => {
                i64::try_from(window.as_millis()).ok()
            }
            _ => None,
        })
        .collect();
    let longest_ms = windows_ms.iter().copied().max().unwrap_or(0);
    let history_ms = match a.history_hours {
        Some(h) => i64::try_from(h)?.saturating_mul(3_600_000),
        None => longest_ms,
    };
    let interval_ms = i64::from(a.interval_secs) * 1000;
    let ages = warmup_ages(history_ms, &windows_ms, interval_ms);

    // Every sample must be one the collector would pass to the engine.
    for h in 0..a.hosts.min(60) {
        let mut probe = host_report(h, a.interval_secs);
        let report = probe.at(1, T0_MS);
        if let Err(errors) = report.validate() {
            let first: Vec<String> = errors.iter().take(3).map(|e| format!("{e:?}")).collect();
            anyhow::bail!("host {h}: the synthetic report is invalid: {}", first.join("; "));
        }
        if let Some(s) = report
            .samples
            .iter()
            .find(|s| caretaker_shared::catalogue::lookup(&s.metric).is_none())
        {
            anyhow::bail!("host {h}: {} is not in the catalogue", s.metric);
        }
    }
    let sample_counts: Vec<usize> = (0..a.hosts.min(1000))
        .map(|h| host_report(h, a.interval_secs).report.samples.len())
        .collect();
    let mean_samples = sample_counts.iter().sum::<usize>() as f64 / sample_counts.len() as f64;

    let mut engine = Engine::new(rules.clone());
    let rss_before = rss_bytes();
    let heap = Heap::start();
    let end_ms = T0_MS + history_ms;
    let warm_start = Instant::now();
    let mut warm_reports = 0u64;
    let mut digest = 0xcbf2_9ce4_8422_2325u64;
    for h in 0..a.hosts {
        let mut hr = host_report(h, a.interval_secs);
        // Hosts do not report in lockstep.
        let offset = (splitmix(h as u64) % interval_ms as u64) as i64;
        for (seq, age) in ages.iter().enumerate() {
            let t = end_ms - age - offset;
            let out = engine.observe(hr.at(seq as u64 + 1, t), t);
            if a.digest {
                fold(&mut digest, &out);
            }
            warm_reports += 1;
        }
    }
    let warm_secs = warm_start.elapsed().as_secs_f64();
    let rss_warm = rss_bytes();
    let heap_per_host = heap.grown().map(|b| b / a.hosts.max(1) as f64);
    let fp = engine.footprint();
    eprintln!(
        "warm-up: {warm_reports} reports ({} per host over {:.1} h) in {warm_secs:.0} s",
        ages.len(),
        history_ms as f64 / 3.6e6
    );

    // Measurement: rounds over all hosts, in an order that changes each round.
    let stride = (7919..).find(|p| gcd(*p, a.hosts) == 1).unwrap_or(1);
    let mut lat_ns: Vec<u64> = Vec::with_capacity(a.reports);
    let (mut signals, mut firing) = (0usize, 0usize);
    let mut seq0 = ages.len() as u64;
    let mut round = 0usize;
    'rounds: loop {
        round += 1;
        seq0 += 1;
        for k in 0..a.hosts {
            if lat_ns.len() >= a.reports {
                break 'rounds;
            }
            let h = (k * stride + round) % a.hosts;
            let mut hr = host_report(h, a.interval_secs);
            let offset = (splitmix(h as u64) % interval_ms as u64) as i64;
            let t = end_ms + round as i64 * interval_ms - offset;
            let report = hr.at(seq0, t);
            let started = Instant::now();
            let out = engine.observe(report, t);
            lat_ns.push(u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX));
            if a.digest {
                fold(&mut digest, &out);
            }
            signals += out.len();
            firing += out.iter().filter(|s| s.firing).count();
        }
        if a.reports == 0 {
            break;
        }
    }
    let now = end_ms + (round as i64 + 1) * interval_ms;
    let mut tick_ms = Vec::new();
    for i in 0..3 {
        let started = Instant::now();
        let out = engine.tick(now + i);
        tick_ms.push(started.elapsed().as_secs_f64() * 1000.0);
        if a.digest {
            fold(&mut digest, &out);
        }
        std::hint::black_box(out);
    }
    let rss_end = rss_bytes();
    // Checkpoint of every host (all changed), and its restore into a fresh
    // engine: what a restart costs at most.
    let started = Instant::now();
    let saved = engine.checkpoint_changed();
    let checkpoint_ms = started.elapsed().as_secs_f64() * 1000.0;
    let checkpoint_bytes: usize = saved.iter().map(|(_, b)| b.len()).sum();
    let mut fresh = Engine::new(rules);
    let started = Instant::now();
    for (host, blob) in &saved {
        fresh
            .restore_host(host, blob, now)
            .map_err(|e| anyhow::anyhow!("restoring {host}: {e}"))?;
    }
    let restore_ms = started.elapsed().as_secs_f64() * 1000.0;
    drop(fresh);

    let n = lat_ns.len().max(1) as f64;
    let mean_us = lat_ns.iter().sum::<u64>() as f64 / n / 1000.0;
    lat_ns.sort_unstable();
    let per_host = rss_warm.saturating_sub(rss_before) as f64 / a.hosts as f64;
    let tick_best = tick_ms.iter().copied().fold(f64::INFINITY, f64::min);
    let hosts_f = fp.hosts.max(1) as f64;

    println!(
        "detection engine: {rule_count} rules, {} hosts, {mean_samples:.0} samples per report (mean)",
        a.hosts
    );
    println!("| measure | value |");
    println!("|---|---|");
    println!("| observe, mean | {mean_us:.1} µs per report |");
    println!(
        "| observe, p50 / p99 / max | {:.1} / {:.1} / {:.1} µs |",
        pct(&lat_ns, 0.5),
        pct(&lat_ns, 0.99),
        pct(&lat_ns, 1.0)
    );
    println!(
        "| signals per report | {:.1} ({:.2} firing) |",
        signals as f64 / n,
        firing as f64 / n
    );
    match heap_per_host {
        Some(b) => println!("| engine heap per host | {:.1} KiB |", b / 1024.0),
        None => println!("| engine heap per host | not counted (build with --features heap-count) |"),
    }
    println!(
        "| RSS growth over warm-up | {:.1} KiB per host ({:.0} MiB total) |",
        per_host / 1024.0,
        rss_warm.saturating_sub(rss_before) as f64 / 1048576.0
    );
    println!(
        "| series / points per host | {:.1} / {:.0} (capacity {:.0}, {:.1} KiB of points) |",
        fp.series as f64 / hosts_f,
        fp.points as f64 / hosts_f,
        fp.point_capacity as f64 / hosts_f,
        fp.point_capacity as f64 * 16.0 / hosts_f / 1024.0
    );
    println!("| rule states per host | {:.1} |", fp.eval_states as f64 / hosts_f);
    println!("| tick over all hosts | {tick_best:.1} ms (best of 3) |");
    println!("| RSS at end | {:.0} MiB |", rss_end as f64 / 1048576.0);
    println!(
        "| checkpoint, all hosts | {checkpoint_ms:.0} ms, {:.0} µs and {:.1} KiB per host; restore {restore_ms:.0} ms, {:.0} µs per host |",
        checkpoint_ms * 1000.0 / hosts_f,
        checkpoint_bytes as f64 / hosts_f / 1024.0,
        restore_ms * 1000.0 / hosts_f
    );
    if a.digest {
        println!("signals digest: {digest:016x}");
    }
    println!(
        "{{\"hosts\":{},\"rules\":{rule_count},\"samples_per_report\":{mean_samples:.1},\"reports\":{},\"mean_us\":{mean_us:.2},\"p50_us\":{:.2},\"p99_us\":{:.2},\"max_us\":{:.2},\"signals_per_report\":{:.2},\"heap_bytes_per_host\":{},\"rss_bytes_per_host\":{per_host:.0},\"series_per_host\":{:.2},\"points_per_host\":{:.1},\"tick_ms\":{tick_best:.3},\"warmup_reports_per_host\":{}}}",
        a.hosts,
        lat_ns.len(),
        pct(&lat_ns, 0.5),
        pct(&lat_ns, 0.99),
        pct(&lat_ns, 1.0),
        signals as f64 / n,
        heap_per_host.map_or("null".to_string(), |b| format!("{b:.0}")),
        fp.series as f64 / hosts_f,
        fp.points as f64 / hosts_f,
        ages.len(),
    );
    Ok(())
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}
