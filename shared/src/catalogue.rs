//! The metric catalogue: every metric Caretaker reports or exposes, with its
//! unit, help text and labels. The agent may only send samples named here, and
//! the collector's `/metrics` renders exactly these families, so a dashboard
//! query written against this list keeps working.
//!
//! Naming follows Prometheus conventions: `caretaker_<thing>_<unit>`; counters
//! are listed by family name and exposed with a `_total` suffix.

/// Labels the collector adds to every per-host series. Agents must not send them.
pub const HOST_LABELS: [&str; 3] = ["host", "customer", "site"];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gauge,
    Counter,
    Histogram,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    None,
    Bytes,
    Seconds,
    Ratio,
    Celsius,
}

impl Unit {
    /// The suffix a family name carries for this unit (OpenMetrics requires it).
    pub fn suffix(self) -> Option<&'static str> {
        match self {
            Unit::None => None,
            Unit::Bytes => Some("bytes"),
            Unit::Seconds => Some("seconds"),
            Unit::Ratio => Some("ratio"),
            Unit::Celsius => Some("celsius"),
        }
    }
}

/// Who produces the values of a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Sent by agents as samples; exposed per host with [`HOST_LABELS`] prepended.
    Agent,
    /// Computed by the collector itself.
    Collector,
}

#[derive(Debug, Clone, Copy)]
pub struct MetricDef {
    /// Family name, including the unit suffix, without `_total`.
    pub name: &'static str,
    pub kind: Kind,
    pub unit: Unit,
    pub source: Source,
    pub help: &'static str,
    /// Labels of each sample, beyond [`HOST_LABELS`] for agent metrics.
    pub labels: &'static [&'static str],
}

impl MetricDef {
    /// The family name without the unit suffix, as `prometheus-client` wants it
    /// (it appends the unit itself).
    pub fn base_name(&self) -> &'static str {
        match self.unit.suffix() {
            Some(s) => self
                .name
                .strip_suffix(s)
                .and_then(|n| n.strip_suffix('_'))
                .unwrap_or(self.name),
            None => self.name,
        }
    }

    /// The name of the sample line Prometheus stores (`_total` for counters).
    pub fn sample_name(&self) -> String {
        match self.kind {
            Kind::Counter => format!("{}_total", self.name),
            _ => self.name.to_string(),
        }
    }
}

macro_rules! m {
    ($name:literal, $kind:ident, $unit:ident, $src:ident, [$($l:literal),*], $help:literal) => {
        MetricDef {
            name: $name,
            kind: Kind::$kind,
            unit: Unit::$unit,
            source: Source::$src,
            help: $help,
            labels: &[$($l),*],
        }
    };
}

/// Every metric, once.
pub static CATALOGUE: &[MetricDef] = &[
    // --- system, sent by the agent -------------------------------------------------
    m!(
        "caretaker_cpu_usage_ratio",
        Gauge,
        Ratio,
        Agent,
        [],
        "Busy share of all CPUs over the last interval (0-1)."
    ),
    m!(
        "caretaker_cpu_core_usage_ratio",
        Gauge,
        Ratio,
        Agent,
        ["cpu"],
        "Busy share of one logical CPU over the last interval (0-1)."
    ),
    m!("caretaker_cpu_cores", Gauge, None, Agent, [], "Number of logical CPUs."),
    m!("caretaker_load1", Gauge, None, Agent, [], "1-minute load average."),
    m!("caretaker_load5", Gauge, None, Agent, [], "5-minute load average."),
    m!("caretaker_load15", Gauge, None, Agent, [], "15-minute load average."),
    m!(
        "caretaker_memory_total_bytes",
        Gauge,
        Bytes,
        Agent,
        [],
        "Physical memory (MemTotal)."
    ),
    m!(
        "caretaker_memory_available_bytes",
        Gauge,
        Bytes,
        Agent,
        [],
        "Memory available for new work without swapping (MemAvailable)."
    ),
    m!(
        "caretaker_memory_used_bytes",
        Gauge,
        Bytes,
        Agent,
        [],
        "Memory in use (total minus available)."
    ),
    m!("caretaker_swap_total_bytes", Gauge, Bytes, Agent, [], "Swap space."),
    m!(
        "caretaker_swap_used_bytes",
        Gauge,
        Bytes,
        Agent,
        [],
        "Swap space in use."
    ),
    m!(
        "caretaker_filesystem_size_bytes",
        Gauge,
        Bytes,
        Agent,
        ["mountpoint", "device", "fstype"],
        "Filesystem size."
    ),
    m!(
        "caretaker_filesystem_free_bytes",
        Gauge,
        Bytes,
        Agent,
        ["mountpoint", "device", "fstype"],
        "Free space, including blocks reserved for root."
    ),
    m!(
        "caretaker_filesystem_avail_bytes",
        Gauge,
        Bytes,
        Agent,
        ["mountpoint", "device", "fstype"],
        "Space available to unprivileged users."
    ),
    m!(
        "caretaker_filesystem_files",
        Gauge,
        None,
        Agent,
        ["mountpoint", "device", "fstype"],
        "Inodes in the filesystem."
    ),
    m!(
        "caretaker_filesystem_files_free",
        Gauge,
        None,
        Agent,
        ["mountpoint", "device", "fstype"],
        "Free inodes."
    ),
    m!(
        "caretaker_filesystem_readonly",
        Gauge,
        None,
        Agent,
        ["mountpoint", "device", "fstype"],
        "1 when the filesystem is mounted read-only."
    ),
    m!(
        "caretaker_filesystem_remounted_readonly",
        Gauge,
        None,
        Agent,
        ["mountpoint", "device", "fstype"],
        "1 when a filesystem fstab mounts read-write is read-only (remounted after an error); only for mounts fstab lists."
    ),
    m!(
        "caretaker_disk_read_bytes",
        Counter,
        Bytes,
        Agent,
        ["device"],
        "Bytes read from a block device."
    ),
    m!(
        "caretaker_disk_written_bytes",
        Counter,
        Bytes,
        Agent,
        ["device"],
        "Bytes written to a block device."
    ),
    m!(
        "caretaker_disk_reads_completed",
        Counter,
        None,
        Agent,
        ["device"],
        "Reads completed by a block device."
    ),
    m!(
        "caretaker_disk_writes_completed",
        Counter,
        None,
        Agent,
        ["device"],
        "Writes completed by a block device."
    ),
    m!(
        "caretaker_disk_io_time_seconds",
        Counter,
        Seconds,
        Agent,
        ["device"],
        "Time a block device spent doing I/O."
    ),
    // --- disk health (smartctl), sent by the agent ------------------------------
    m!(
        "caretaker_disk_info",
        Gauge,
        None,
        Agent,
        ["disk", "device", "model", "serial", "firmware", "protocol", "state"],
        "One per disk seen by smartctl, keyed by WWN or serial; state is ok, standby, unreadable or unsupported. Always 1."
    ),
    m!(
        "caretaker_disk_health_verdict",
        Gauge,
        None,
        Agent,
        ["disk", "verdict"],
        "1 for the disk's current verdict (healthy, warning, failing, unknown), 0 for the others."
    ),
    m!(
        "caretaker_disk_verdict_reasons",
        Gauge,
        None,
        Agent,
        ["disk"],
        "Number of reasons behind the disk's verdict."
    ),
    m!(
        "caretaker_disk_smart_passed",
        Gauge,
        None,
        Agent,
        ["disk"],
        "1 when the drive's own SMART overall assessment passed, 0 when it failed."
    ),
    m!(
        "caretaker_disk_temperature_celsius",
        Gauge,
        Celsius,
        Agent,
        ["disk"],
        "Drive temperature."
    ),
    m!(
        "caretaker_disk_temperature_trip_celsius",
        Gauge,
        Celsius,
        Agent,
        ["disk"],
        "The drive's own temperature trip point, where it reports one."
    ),
    m!(
        "caretaker_disk_power_on_seconds",
        Gauge,
        Seconds,
        Agent,
        ["disk"],
        "Power-on time the drive reports (counted in hours by the drive)."
    ),
    m!(
        "caretaker_disk_ata_attribute_raw",
        Gauge,
        None,
        Agent,
        ["disk", "attribute"],
        "Decoded raw count of a key ATA SMART attribute (reallocated_sectors, pending_sectors, ...); vendor-packed values are decoded."
    ),
    m!(
        "caretaker_disk_ata_error_log_entries",
        Gauge,
        None,
        Agent,
        ["disk"],
        "Errors in the ATA device error log."
    ),
    m!(
        "caretaker_disk_self_test_failed",
        Gauge,
        None,
        Agent,
        ["disk"],
        "1 when the most recent SMART self-test failed."
    ),
    m!(
        "caretaker_disk_nvme_percentage_used_ratio",
        Gauge,
        Ratio,
        Agent,
        ["disk"],
        "NVMe rated endurance used (1 = 100 %; may exceed 1)."
    ),
    m!(
        "caretaker_disk_nvme_available_spare_ratio",
        Gauge,
        Ratio,
        Agent,
        ["disk"],
        "NVMe spare capacity left."
    ),
    m!(
        "caretaker_disk_nvme_available_spare_threshold_ratio",
        Gauge,
        Ratio,
        Agent,
        ["disk"],
        "NVMe spare capacity below which the drive warns."
    ),
    m!(
        "caretaker_disk_nvme_critical_warning",
        Gauge,
        None,
        Agent,
        ["disk", "bit"],
        "1 for each NVMe critical_warning bit set (spare_below_threshold, temperature, reliability_degraded, media_read_only, volatile_backup_failed, persistent_memory_read_only), 0 otherwise."
    ),
    m!(
        "caretaker_disk_nvme_media_errors",
        Counter,
        None,
        Agent,
        ["disk"],
        "NVMe unrecovered data integrity errors."
    ),
    m!(
        "caretaker_disk_nvme_error_log_entries",
        Counter,
        None,
        Agent,
        ["disk"],
        "NVMe error information log entries (noisy; not a failure signal alone)."
    ),
    m!(
        "caretaker_disk_nvme_unsafe_shutdowns",
        Counter,
        None,
        Agent,
        ["disk"],
        "NVMe unsafe shutdowns."
    ),
    m!(
        "caretaker_disk_nvme_written_bytes",
        Counter,
        Bytes,
        Agent,
        ["disk"],
        "Bytes written to the NVMe drive over its life."
    ),
    m!(
        "caretaker_disk_scsi_grown_defects",
        Gauge,
        None,
        Agent,
        ["disk"],
        "SCSI grown defect list length."
    ),
    m!(
        "caretaker_disk_scsi_uncorrected_errors",
        Counter,
        None,
        Agent,
        ["disk"],
        "SCSI uncorrected read, write and verify errors."
    ),
    m!(
        "caretaker_disk_scan_timestamp_seconds",
        Gauge,
        Seconds,
        Agent,
        [],
        "When the agent's last disk-health scan finished."
    ),
    m!(
        "caretaker_disk_scan_success",
        Gauge,
        None,
        Agent,
        [],
        "1 when the agent's last disk-health scan could run smartctl at all."
    ),
    m!(
        "caretaker_network_receive_bytes",
        Counter,
        Bytes,
        Agent,
        ["interface"],
        "Bytes received on a network interface."
    ),
    m!(
        "caretaker_network_transmit_bytes",
        Counter,
        Bytes,
        Agent,
        ["interface"],
        "Bytes sent on a network interface."
    ),
    m!(
        "caretaker_network_receive_packets",
        Counter,
        None,
        Agent,
        ["interface"],
        "Packets received on a network interface."
    ),
    m!(
        "caretaker_network_transmit_packets",
        Counter,
        None,
        Agent,
        ["interface"],
        "Packets sent on a network interface."
    ),
    m!(
        "caretaker_network_receive_errors",
        Counter,
        None,
        Agent,
        ["interface"],
        "Receive errors on a network interface."
    ),
    m!(
        "caretaker_network_transmit_errors",
        Counter,
        None,
        Agent,
        ["interface"],
        "Transmit errors on a network interface."
    ),
    m!(
        "caretaker_network_receive_drops",
        Counter,
        None,
        Agent,
        ["interface"],
        "Received packets dropped on a network interface."
    ),
    m!(
        "caretaker_network_transmit_drops",
        Counter,
        None,
        Agent,
        ["interface"],
        "Outgoing packets dropped on a network interface."
    ),
    m!(
        "caretaker_uptime_seconds",
        Gauge,
        Seconds,
        Agent,
        [],
        "Time since the host booted."
    ),
    m!("caretaker_processes", Gauge, None, Agent, [], "Number of processes."),
    m!(
        "caretaker_host_info",
        Gauge,
        None,
        Agent,
        ["hostname", "kernel", "os"],
        "Host facts as labels; the value is always 1."
    ),
    // --- hardware and OS signals, sent by the agent ----------------------------------
    m!(
        "caretaker_edac_correctable_errors",
        Counter,
        None,
        Agent,
        ["controller"],
        "Corrected memory errors counted by an EDAC memory controller."
    ),
    m!(
        "caretaker_edac_uncorrectable_errors",
        Counter,
        None,
        Agent,
        ["controller"],
        "Uncorrectable memory errors counted by an EDAC memory controller."
    ),
    m!(
        "caretaker_edac_dimm_correctable_errors",
        Counter,
        None,
        Agent,
        ["controller", "dimm", "label"],
        "Corrected memory errors on one DIMM (or csrow channel, or csrow) of an EDAC memory controller."
    ),
    m!(
        "caretaker_edac_dimm_uncorrectable_errors",
        Counter,
        None,
        Agent,
        ["controller", "dimm", "label"],
        "Uncorrectable memory errors on one DIMM (or csrow without channel counts) of an EDAC memory controller."
    ),
    m!(
        "caretaker_md_active",
        Gauge,
        None,
        Agent,
        ["device", "level"],
        "1 when the software RAID array is active, 0 when inactive."
    ),
    m!(
        "caretaker_md_disks_required",
        Gauge,
        None,
        Agent,
        ["device"],
        "Member disks the software RAID array is built for."
    ),
    m!(
        "caretaker_md_disks",
        Gauge,
        None,
        Agent,
        ["device", "state"],
        "Member disks of a software RAID array by state: active (in sync), missing (required but not in sync), failed, spare."
    ),
    m!(
        "caretaker_md_degraded",
        Gauge,
        None,
        Agent,
        ["device"],
        "1 when the software RAID array has fewer disks in sync than it requires."
    ),
    m!(
        "caretaker_md_sync_action",
        Gauge,
        None,
        Agent,
        ["device", "action"],
        "1 for the array's current sync action (idle, resync, recovery, check, repair, reshape, pending), 0 for the others."
    ),
    m!(
        "caretaker_md_sync_progress_ratio",
        Gauge,
        Ratio,
        Agent,
        ["device"],
        "Progress of the running or pending resync, recovery, check or reshape (0-1)."
    ),
    m!(
        "caretaker_hwmon_temperature_celsius",
        Gauge,
        Celsius,
        Agent,
        ["chip", "sensor"],
        "Temperature reported by a hardware monitoring sensor."
    ),
    m!(
        "caretaker_hwmon_temperature_max_celsius",
        Gauge,
        Celsius,
        Agent,
        ["chip", "sensor"],
        "High-temperature threshold of a hardware monitoring sensor."
    ),
    m!(
        "caretaker_hwmon_temperature_crit_celsius",
        Gauge,
        Celsius,
        Agent,
        ["chip", "sensor"],
        "Critical-temperature threshold of a hardware monitoring sensor."
    ),
    m!(
        "caretaker_hwmon_fan_rpm",
        Gauge,
        None,
        Agent,
        ["chip", "sensor"],
        "Fan speed in revolutions per minute."
    ),
    m!(
        "caretaker_hwmon_fan_min_rpm",
        Gauge,
        None,
        Agent,
        ["chip", "sensor"],
        "Lowest fan speed before the chip raises an alarm, in revolutions per minute."
    ),
    m!(
        "caretaker_hwmon_alarm",
        Gauge,
        None,
        Agent,
        ["chip", "sensor", "kind"],
        "1 while a hardware monitoring alarm or fault flag is raised on a temperature, fan, voltage or chassis intrusion sensor (kind: alarm, min, max, lcrit, crit, emergency, fault)."
    ),
    m!(
        "caretaker_cpu_core_throttles",
        Counter,
        None,
        Agent,
        ["package", "core"],
        "Times a CPU core was throttled for being too hot."
    ),
    m!(
        "caretaker_cpu_package_throttles",
        Counter,
        None,
        Agent,
        ["package"],
        "Times a CPU package was throttled for being too hot."
    ),
    m!(
        "caretaker_oom_kills",
        Counter,
        None,
        Agent,
        [],
        "Processes killed by the kernel's out-of-memory killer since boot."
    ),
    m!(
        "caretaker_systemd_units_failed",
        Gauge,
        None,
        Agent,
        [],
        "systemd units in the failed state."
    ),
    m!(
        "caretaker_systemd_unit_failed",
        Gauge,
        None,
        Agent,
        ["unit"],
        "One sample, always 1, per systemd unit in the failed state."
    ),
    m!(
        "caretaker_time_synchronized",
        Gauge,
        None,
        Agent,
        [],
        "1 when the system clock is synchronised (systemd NTPSynchronized)."
    ),
    m!(
        "caretaker_time_ntp_enabled",
        Gauge,
        None,
        Agent,
        [],
        "1 when a network time service is enabled (systemd NTP)."
    ),
    m!(
        "caretaker_reboot_required",
        Gauge,
        None,
        Agent,
        [],
        "1 when the package manager asks for a reboot (the reboot-required flag file exists)."
    ),
    m!(
        "caretaker_reboot_required_packages",
        Gauge,
        None,
        Agent,
        [],
        "Packages that asked for the pending reboot."
    ),
    m!(
        "caretaker_kernel_newer_installed",
        Gauge,
        None,
        Agent,
        [],
        "1 when a newer kernel than the running one is installed under /boot."
    ),
    // --- BMC (IPMI), sent by the agent's `ipmi` collector --------------------------
    m!(
        "caretaker_ipmi_sensor_value",
        Gauge,
        None,
        Agent,
        ["sensor", "type", "unit"],
        "Reading of a BMC sensor in its own unit (unit label: celsius, rpm, volts, amps, watts, percent, ...). Sensors that are absent or give no reading are not reported."
    ),
    m!(
        "caretaker_ipmi_sensor_state",
        Gauge,
        None,
        Agent,
        ["sensor", "type"],
        "State of a BMC sensor: 0 nominal, 1 warning (non-critical), 2 critical (critical or non-recoverable). type: temperature, fan, voltage, current, power, power_supply, physical_security, drive_slot, memory, processor, other."
    ),
    m!(
        "caretaker_ipmi_sensor_threshold",
        Gauge,
        None,
        Agent,
        ["sensor", "type", "threshold"],
        "A threshold of a BMC sensor, in the sensor's unit (threshold: lower_non_recoverable, lower_critical, lower_non_critical, upper_non_critical, upper_critical, upper_non_recoverable)."
    ),
    m!(
        "caretaker_ipmi_chassis_fault",
        Gauge,
        None,
        Agent,
        ["fault"],
        "1 while the chassis status reports the fault (intrusion, power_fault, power_overload, power_interlock, cooling_fault, drive_fault), 0 otherwise."
    ),
    m!(
        "caretaker_ipmi_sel_entries",
        Gauge,
        None,
        Agent,
        [],
        "Entries in the BMC's system event log."
    ),
    m!(
        "caretaker_ipmi_sel_used_ratio",
        Gauge,
        Ratio,
        Agent,
        [],
        "How full the BMC's system event log is (0-1); a full log stops recording new events."
    ),
    // --- hardware RAID controllers, sent by the agent's `raid` collector -------------
    m!(
        "caretaker_raid_controller_failed",
        Gauge,
        None,
        Agent,
        ["controller"],
        "1 when the RAID controller reports itself failed, 0 when optimal (controller: c0, c1, ... or slot2 for Smart Array)."
    ),
    m!(
        "caretaker_raid_controller_temperature_celsius",
        Gauge,
        Celsius,
        Agent,
        ["controller"],
        "Temperature of the RAID controller's chip, where it reports one."
    ),
    m!(
        "caretaker_raid_bbu_present",
        Gauge,
        None,
        Agent,
        ["controller"],
        "1 when the controller has a battery (BBU) or flash backup (CacheVault, capacitor) for its cache."
    ),
    m!(
        "caretaker_raid_bbu_failed",
        Gauge,
        None,
        Agent,
        ["controller"],
        "1 when the cache backup unit (BBU, CacheVault, capacitor) failed or asks for replacement."
    ),
    m!(
        "caretaker_raid_bbu_learning",
        Gauge,
        None,
        Agent,
        ["controller"],
        "1 while the cache backup unit runs a learn cycle or charges (the cache may run write-through meanwhile)."
    ),
    m!(
        "caretaker_raid_cache_write_through",
        Gauge,
        None,
        Agent,
        ["controller", "vd"],
        "1 when a virtual disk configured for write-back runs write-through (cache backup bad, learning or missing), 0 otherwise."
    ),
    m!(
        "caretaker_raid_vd_degraded",
        Gauge,
        None,
        Agent,
        ["controller", "vd"],
        "1 when the virtual disk (array) is not optimal: degraded, partially degraded, interim recovery, offline or failed, or a member disk failed, went offline or is missing."
    ),
    m!(
        "caretaker_raid_vd_rebuilding",
        Gauge,
        None,
        Agent,
        ["controller", "vd"],
        "1 while a disk of the virtual disk is being rebuilt (or the array recovers onto a spare)."
    ),
    m!(
        "caretaker_raid_vd_rebuild_stalled",
        Gauge,
        None,
        Agent,
        ["controller", "vd"],
        "1 when a rebuild of the virtual disk made no progress for an hour."
    ),
    m!(
        "caretaker_raid_vd_state",
        Gauge,
        None,
        Agent,
        ["controller", "vd", "state"],
        "1 for the virtual disk's current state as the controller names it (optimal, degraded, partially_degraded, interim_recovery, offline, failed, rebuilding, other), 0 for the others."
    ),
    m!(
        "caretaker_raid_pd_state",
        Gauge,
        None,
        Agent,
        ["controller", "slot", "serial", "state"],
        "1 for the physical disk's current state (online, offline, failed, rebuild, unconfigured_bad, unconfigured_good, jbod, hot_spare, missing, other), 0 for the others."
    ),
    m!(
        "caretaker_raid_vd_size_bytes",
        Gauge,
        Bytes,
        Agent,
        ["controller", "vd", "level"],
        "Size of the virtual disk (level: RAID1, RAID5, RAID10, ...)."
    ),
    m!(
        "caretaker_raid_pd_failed",
        Gauge,
        None,
        Agent,
        ["controller", "slot", "serial", "in_array"],
        "1 when a physical disk behind the controller is failed, unconfigured-bad, missing or offline (in_array: yes when it belongs to a virtual disk, whose degraded state then carries the fault)."
    ),
    m!(
        "caretaker_raid_pd_rebuild_progress_ratio",
        Gauge,
        Ratio,
        Agent,
        ["controller", "slot", "serial"],
        "Progress of the rebuild onto a physical disk (0-1), while it runs."
    ),
    m!(
        "caretaker_raid_pd_media_errors",
        Counter,
        None,
        Agent,
        ["controller", "slot", "serial"],
        "Media errors the controller counted on a physical disk (cumulative)."
    ),
    m!(
        "caretaker_raid_pd_other_errors",
        Counter,
        None,
        Agent,
        ["controller", "slot", "serial"],
        "Other (link, timeout) errors the controller counted on a physical disk (cumulative)."
    ),
    m!(
        "caretaker_raid_pd_predictive_failures",
        Counter,
        None,
        Agent,
        ["controller", "slot", "serial"],
        "Predictive failure events the controller counted on a physical disk (cumulative)."
    ),
    m!(
        "caretaker_raid_pd_smart_alert",
        Gauge,
        None,
        Agent,
        ["controller", "slot", "serial"],
        "1 when the physical disk raised its SMART alert flag to the controller."
    ),
    // --- databases, sent by the agent (every kind) ------------------------------
    m!(
        "caretaker_db_up",
        Gauge,
        None,
        Agent,
        ["db", "kind"],
        "1 when the agent's last poll of the database succeeded, 0 when it failed (see caretaker_db_error)."
    ),
    m!(
        "caretaker_db_error",
        Gauge,
        None,
        Agent,
        ["db", "kind", "class"],
        "While the database is down: 1 for the class of the last error (refused, auth_failed, timeout, unreachable, query, protocol, config), 0 for the others."
    ),
    m!(
        "caretaker_db_poll_duration_seconds",
        Gauge,
        Seconds,
        Agent,
        ["db", "kind"],
        "Time the agent's last poll of the database took."
    ),
    m!(
        "caretaker_db_last_poll_timestamp_seconds",
        Gauge,
        Seconds,
        Agent,
        ["db", "kind"],
        "When the agent last polled the database."
    ),
    m!(
        "caretaker_db_info",
        Gauge,
        None,
        Agent,
        ["db", "kind", "version"],
        "The server's version as a label; the value is always 1."
    ),
    m!(
        "caretaker_db_uptime_seconds",
        Gauge,
        Seconds,
        Agent,
        ["db", "kind"],
        "Time since the database server started."
    ),
    m!(
        "caretaker_db_connections",
        Gauge,
        None,
        Agent,
        ["db", "kind"],
        "Client connections open now (PostgreSQL backends, MariaDB threads connected, Redis clients)."
    ),
    m!(
        "caretaker_db_max_connections",
        Gauge,
        None,
        Agent,
        ["db", "kind"],
        "The server's connection limit (max_connections, maxclients)."
    ),
    // --- PostgreSQL, sent by the agent ----------------------------------------------
    m!(
        "caretaker_pg_database_size_bytes",
        Gauge,
        Bytes,
        Agent,
        ["db", "kind", "database"],
        "Disk space a database takes (pg_database_size)."
    ),
    m!(
        "caretaker_pg_commits",
        Counter,
        None,
        Agent,
        ["db", "kind", "database"],
        "Transactions committed in a database (pg_stat_database.xact_commit)."
    ),
    m!(
        "caretaker_pg_rollbacks",
        Counter,
        None,
        Agent,
        ["db", "kind", "database"],
        "Transactions rolled back in a database (pg_stat_database.xact_rollback)."
    ),
    m!(
        "caretaker_pg_deadlocks",
        Counter,
        None,
        Agent,
        ["db", "kind", "database"],
        "Deadlocks detected in a database (pg_stat_database.deadlocks)."
    ),
    m!(
        "caretaker_pg_cache_hit_ratio",
        Gauge,
        Ratio,
        Agent,
        ["db", "kind", "database"],
        "Share of block reads of a database served from shared buffers since its statistics were reset: blks_hit / (blks_hit + blks_read)."
    ),
    m!(
        "caretaker_pg_database_frozen_xid_age",
        Gauge,
        None,
        Agent,
        ["db", "kind", "database"],
        "Transactions since a database was last frozen (age(datfrozenxid)); at about 2 billion the server stops accepting writes to avoid wraparound."
    ),
    m!(
        "caretaker_pg_frozen_xid_age",
        Gauge,
        None,
        Agent,
        ["db", "kind"],
        "The highest age(datfrozenxid) over all databases, templates included: the distance to transaction ID wraparound."
    ),
    m!(
        "caretaker_pg_oldest_transaction_seconds",
        Gauge,
        Seconds,
        Agent,
        ["db", "kind"],
        "Age of the oldest open transaction of a client session (0 when none); long ones block vacuum and hold locks."
    ),
    m!(
        "caretaker_pg_oldest_idle_in_transaction_seconds",
        Gauge,
        Seconds,
        Agent,
        ["db", "kind"],
        "How long the longest 'idle in transaction' session has been idle (0 when none): an application that forgot to commit."
    ),
    m!(
        "caretaker_pg_replication_role",
        Gauge,
        None,
        Agent,
        ["db", "kind", "role"],
        "1 for the server's current role (primary, standby), 0 for the other."
    ),
    m!(
        "caretaker_pg_replicas",
        Gauge,
        None,
        Agent,
        ["db", "kind"],
        "On a primary: WAL senders connected (pg_stat_replication rows), standbys and base backups."
    ),
    m!(
        "caretaker_pg_replica_state",
        Gauge,
        None,
        Agent,
        ["db", "kind", "replica", "state"],
        "On a primary, per connected replica: 1 for its WAL sender state (startup, catchup, streaming, backup, stopping), 0 for the others."
    ),
    m!(
        "caretaker_pg_replica_replay_lag_seconds",
        Gauge,
        Seconds,
        Agent,
        ["db", "kind", "replica"],
        "On a primary, per connected replica: time between a commit and its replay on the replica (replay_lag; 0 when streaming and caught up)."
    ),
    m!(
        "caretaker_pg_replica_lag_bytes",
        Gauge,
        Bytes,
        Agent,
        ["db", "kind", "replica"],
        "On a primary, per connected replica: WAL written but not yet replayed there."
    ),
    m!(
        "caretaker_pg_standby_replay_lag_seconds",
        Gauge,
        Seconds,
        Agent,
        ["db", "kind"],
        "On a standby: time since the last replayed transaction was committed on the primary (grows while the primary is idle)."
    ),
    m!(
        "caretaker_pg_wal_archive_failures",
        Counter,
        None,
        Agent,
        ["db", "kind"],
        "Failed attempts to archive a WAL file (pg_stat_archiver.failed_count)."
    ),
    m!(
        "caretaker_pg_checkpoints",
        Counter,
        None,
        Agent,
        ["db", "kind", "reason"],
        "Checkpoints by reason: timed (checkpoint_timeout) or requested (WAL volume, manual); many requested ones mean max_wal_size is too small."
    ),
    // --- MariaDB/MySQL, sent by the agent ------------------------------------------
    m!(
        "caretaker_mysql_threads_running",
        Gauge,
        None,
        Agent,
        ["db", "kind"],
        "Threads executing a statement now (Threads_running)."
    ),
    m!(
        "caretaker_mysql_aborted_connects",
        Counter,
        None,
        Agent,
        ["db", "kind"],
        "Failed attempts to connect to the server: bad password, no privilege, broken handshake (Aborted_connects)."
    ),
    m!(
        "caretaker_mysql_slow_queries",
        Counter,
        None,
        Agent,
        ["db", "kind"],
        "Queries that took longer than long_query_time (Slow_queries)."
    ),
    m!(
        "caretaker_mysql_innodb_buffer_pool_hit_ratio",
        Gauge,
        Ratio,
        Agent,
        ["db", "kind"],
        "Share of InnoDB logical reads served from the buffer pool since the server started: 1 - Innodb_buffer_pool_reads / Innodb_buffer_pool_read_requests."
    ),
    m!(
        "caretaker_mysql_innodb_deadlocks",
        Counter,
        None,
        Agent,
        ["db", "kind"],
        "InnoDB deadlocks (MariaDB Innodb_deadlocks; MySQL INNODB_METRICS lock_deadlocks)."
    ),
    m!(
        "caretaker_mysql_innodb_oldest_transaction_age_seconds",
        Gauge,
        Seconds,
        Agent,
        ["db", "kind"],
        "Age of the oldest open InnoDB transaction (information_schema.INNODB_TRX); 0 when none is open. Needs the PROCESS privilege."
    ),
    m!(
        "caretaker_mysql_replica",
        Gauge,
        None,
        Agent,
        ["db", "kind"],
        "1 when the server is configured as a replica (SHOW REPLICA STATUS returns a row), 0 when not. Needs REPLICATION CLIENT (MariaDB: SLAVE MONITOR)."
    ),
    m!(
        "caretaker_mysql_replica_io_running",
        Gauge,
        None,
        Agent,
        ["db", "kind", "channel"],
        "1 when the replica's I/O thread (receiving from the source) is running, 0 when stopped or still connecting. channel: the replication channel, empty for the default one."
    ),
    m!(
        "caretaker_mysql_replica_sql_running",
        Gauge,
        None,
        Agent,
        ["db", "kind", "channel"],
        "1 when the replica's SQL thread (applying events) is running."
    ),
    m!(
        "caretaker_mysql_replica_lag_seconds",
        Gauge,
        Seconds,
        Agent,
        ["db", "kind", "channel"],
        "How far the replica is behind its source (Seconds_Behind_Master/Source); absent while a replication thread is stopped."
    ),
    m!(
        "caretaker_mysql_replica_last_io_error_number",
        Gauge,
        None,
        Agent,
        ["db", "kind", "channel"],
        "Error number of the I/O thread's last error (Last_IO_Errno), 0 for none."
    ),
    m!(
        "caretaker_mysql_replica_last_sql_error_number",
        Gauge,
        None,
        Agent,
        ["db", "kind", "channel"],
        "Error number of the SQL thread's last error (Last_SQL_Errno), 0 for none."
    ),
    // --- Redis, sent by the agent --------------------------------------------------
    m!(
        "caretaker_redis_memory_used_bytes",
        Gauge,
        Bytes,
        Agent,
        ["db", "kind"],
        "Memory Redis has allocated for data and overhead (used_memory)."
    ),
    m!(
        "caretaker_redis_memory_max_bytes",
        Gauge,
        Bytes,
        Agent,
        ["db", "kind"],
        "The maxmemory limit; 0 means no limit is set (Redis then grows until the host runs out)."
    ),
    m!(
        "caretaker_redis_evicted_keys",
        Counter,
        None,
        Agent,
        ["db", "kind"],
        "Keys removed to stay under maxmemory (evicted_keys)."
    ),
    m!(
        "caretaker_redis_rejected_connections",
        Counter,
        None,
        Agent,
        ["db", "kind"],
        "Connections refused because maxclients was reached (rejected_connections)."
    ),
    m!(
        "caretaker_redis_blocked_clients",
        Gauge,
        None,
        Agent,
        ["db", "kind"],
        "Clients waiting in a blocking call (BLPOP, XREAD BLOCK, WAIT...)."
    ),
    m!(
        "caretaker_redis_rdb_last_save_ok",
        Gauge,
        None,
        Agent,
        ["db", "kind"],
        "1 when the last RDB snapshot (BGSAVE) succeeded, 0 when it failed (rdb_last_bgsave_status)."
    ),
    m!(
        "caretaker_redis_rdb_last_save_age_seconds",
        Gauge,
        Seconds,
        Agent,
        ["db", "kind"],
        "Time since the last successful RDB snapshot, or since the server started when it never saved (rdb_last_save_time)."
    ),
    m!(
        "caretaker_redis_rdb_changes_since_last_save",
        Gauge,
        None,
        Agent,
        ["db", "kind"],
        "Writes not yet in an RDB snapshot (rdb_changes_since_last_save)."
    ),
    m!(
        "caretaker_redis_aof_enabled",
        Gauge,
        None,
        Agent,
        ["db", "kind"],
        "1 when the append-only file is on."
    ),
    m!(
        "caretaker_redis_aof_last_write_ok",
        Gauge,
        None,
        Agent,
        ["db", "kind"],
        "1 when the last write to the append-only file succeeded (aof_last_write_status)."
    ),
    m!(
        "caretaker_redis_aof_last_rewrite_ok",
        Gauge,
        None,
        Agent,
        ["db", "kind"],
        "1 when the last append-only file rewrite succeeded (aof_last_bgrewrite_status)."
    ),
    m!(
        "caretaker_redis_replication_role",
        Gauge,
        None,
        Agent,
        ["db", "kind", "role"],
        "1 for the server's replication role (primary or replica; Redis says master or slave), 0 for the other."
    ),
    m!(
        "caretaker_redis_connected_replicas",
        Gauge,
        None,
        Agent,
        ["db", "kind"],
        "Replicas connected to this server (connected_slaves)."
    ),
    m!(
        "caretaker_redis_primary_link_up",
        Gauge,
        None,
        Agent,
        ["db", "kind"],
        "On a replica: 1 when its link to the primary is up (master_link_status), else 0. Absent on a primary."
    ),
    m!(
        "caretaker_redis_primary_last_io_age_seconds",
        Gauge,
        Seconds,
        Agent,
        ["db", "kind"],
        "On a replica with its link up: time since it last heard from the primary (master_last_io_seconds_ago)."
    ),
    m!(
        "caretaker_redis_keyspace_hits",
        Counter,
        None,
        Agent,
        ["db", "kind"],
        "Key lookups that found the key (keyspace_hits)."
    ),
    m!(
        "caretaker_redis_keyspace_misses",
        Counter,
        None,
        Agent,
        ["db", "kind"],
        "Key lookups that did not find the key (keyspace_misses)."
    ),
    // --- the agent about itself ----------------------------------------------------
    m!(
        "caretaker_agent_info",
        Gauge,
        None,
        Agent,
        ["version"],
        "Agent version as a label; the value is always 1."
    ),
    m!(
        "caretaker_agent_collector_success",
        Gauge,
        None,
        Agent,
        ["collector"],
        "1 when the collector's last run succeeded."
    ),
    m!(
        "caretaker_agent_collector_duration_seconds",
        Gauge,
        Seconds,
        Agent,
        ["collector"],
        "Time the collector's last run took."
    ),
    m!(
        "caretaker_agent_spool_depth",
        Gauge,
        None,
        Agent,
        [],
        "Reports waiting in the agent's on-disk spool when this report was made."
    ),
    m!(
        "caretaker_agent_spool_dropped",
        Counter,
        None,
        Agent,
        [],
        "Reports the agent dropped because its spool was full."
    ),
    m!(
        "caretaker_agent_reports_rejected",
        Counter,
        None,
        Agent,
        [],
        "Reports the collector refused as malformed or too large, which the agent then discarded."
    ),
    m!(
        "caretaker_agent_state_writable",
        Gauge,
        None,
        Agent,
        [],
        "1 when the agent's last write to its state dir (sequence counter, spool) succeeded; 0 while it cannot write there and keeps its reports in memory."
    ),
    // --- inventory ---
    m!(
        "caretaker_inventory_info",
        Gauge,
        None,
        Collector,
        [
            "host", "customer", "site", "vendor", "product", "serial", "os", "kernel"
        ],
        "The host's asset identity from its newest inventory; always 1."
    ),
    m!(
        "caretaker_asset_changes",
        Counter,
        None,
        Collector,
        ["host", "customer", "site"],
        "Changes between the host's inventory versions kept in the asset archive."
    ),
    // --- computed by the collector -------------------------------------------------
    m!(
        "caretaker_host_up",
        Gauge,
        None,
        Collector,
        ["host", "customer", "site"],
        "1 while the host reports; 0 once it missed 3 intervals."
    ),
    m!(
        "caretaker_host_last_seen_timestamp_seconds",
        Gauge,
        Seconds,
        Collector,
        ["host", "customer", "site"],
        "When the collector last received a report from the host."
    ),
    m!(
        "caretaker_hosts_known",
        Gauge,
        None,
        Collector,
        [],
        "Hosts (enrolled agents) known to the collector."
    ),
    m!(
        "caretaker_hosts_up",
        Gauge,
        None,
        Collector,
        [],
        "Hosts currently reporting."
    ),
    m!(
        "caretaker_ingest_reports_accepted",
        Counter,
        None,
        Collector,
        [],
        "Reports applied to the store."
    ),
    m!(
        "caretaker_ingest_reports_duplicate",
        Counter,
        None,
        Collector,
        [],
        "Reports whose sequence number was already applied (replays)."
    ),
    m!(
        "caretaker_ingest_reports_rejected",
        Counter,
        None,
        Collector,
        ["reason"],
        "Reports refused, by reason."
    ),
    m!(
        "caretaker_ingest_samples_ignored",
        Counter,
        None,
        Collector,
        ["reason"],
        "Samples accepted on the wire but not exposed, by reason."
    ),
    m!(
        "caretaker_ingest_latency_seconds",
        Histogram,
        Seconds,
        Collector,
        [],
        "Time from receiving a report to answering it."
    ),
    m!(
        "caretaker_findings_open",
        Gauge,
        None,
        Collector,
        ["severity", "customer"],
        "Active findings (latent risks), by severity and customer."
    ),
    m!(
        "caretaker_cases_open",
        Gauge,
        None,
        Collector,
        ["severity", "customer"],
        "Active cases (faults), by severity and customer."
    ),
    m!(
        "caretaker_signals_held",
        Gauge,
        None,
        Collector,
        ["reason"],
        "Signals held back from opening a finding or case: unmapped (no known asset), maintenance (inside a window) or storm (attached to a customer's storm case)."
    ),
    m!(
        "caretaker_spare_coverage_ratio",
        Gauge,
        Ratio,
        Collector,
        ["customer"],
        "Share of the customer's replaceable parts (disks, DIMMs) with a compatible spare available in stock (target 1)."
    ),
    m!(
        "caretaker_spare_stock_below_minimum",
        Gauge,
        None,
        Collector,
        [],
        "Spare stock lines (model and location) holding fewer parts than their minimum."
    ),
    m!(
        "caretaker_recommendations_open",
        Gauge,
        None,
        Collector,
        ["urgency"],
        "Active part replacement recommendations (open, accepted or reserved), by urgency: replace_now, within_days or watch."
    ),
    m!(
        "caretaker_item_transitions",
        Counter,
        None,
        Collector,
        ["event"],
        "Finding and case transitions made by detection, by event (opened, reopened, recovered, resolved, changed)."
    ),
    m!(
        "caretaker_rule_evaluation_seconds",
        Histogram,
        Seconds,
        Collector,
        [],
        "Time to evaluate the rules on one report or one tick."
    ),
    m!(
        "caretaker_rule_file_errors",
        Counter,
        None,
        Collector,
        [],
        "Bad edits of the rule files rejected on reload, each counted once; the previous rules stayed active."
    ),
    m!(
        "caretaker_http_limited",
        Counter,
        None,
        Collector,
        ["limit"],
        "Connections or requests an edge limit cut short: a body not received in time, the connection limit, one source's share of it, a full request budget, a second report at once from one agent."
    ),
    m!(
        "caretaker_contract_file_errors",
        Counter,
        None,
        Collector,
        [],
        "Bad edits of the contracts file rejected on reload, each counted once; the previous contracts stayed active."
    ),
    m!(
        "caretaker_store_check_ok",
        Gauge,
        None,
        Collector,
        [],
        "1 when the last PRAGMA quick_check of the store passed (at start and then every store.check_interval_secs); 0 when it found damage."
    ),
    m!(
        "caretaker_store_check_timestamp_seconds",
        Gauge,
        Seconds,
        Collector,
        [],
        "When the store's integrity was last checked: at start, then every store.check_interval_secs."
    ),
    m!(
        "caretaker_store_reads_in_use",
        Gauge,
        None,
        Collector,
        [],
        "Store reads running now, each on one of the store.readers read connections."
    ),
    m!(
        "caretaker_store_reads_waiting",
        Gauge,
        None,
        Collector,
        [],
        "Store reads waiting for a free read connection; staying above 0 means store.readers is too small for the load."
    ),
    m!(
        "caretaker_replica_info",
        Gauge,
        None,
        Collector,
        ["replica", "id"],
        "1 for this collector replica: its name ([replicas] name) and the id it holds leases by in the store."
    ),
    m!(
        "caretaker_replicas_live",
        Gauge,
        None,
        Collector,
        [],
        "Collector replicas sharing this store whose heartbeat is younger than one lease, this one included."
    ),
    m!(
        "caretaker_replica_hosts",
        Gauge,
        None,
        Collector,
        ["replica"],
        "Hosts whose detection this replica holds the lease of (where their reports arrive, or adopted from a replica that died)."
    ),
    m!(
        "caretaker_replica_job_held",
        Gauge,
        None,
        Collector,
        ["replica", "task"],
        "1 while this replica holds a fleet-wide job (label task) (lifecycle, retention, reports, deliver:SINK); exactly one live replica holds each."
    ),
    m!(
        "caretaker_config_file_info",
        Gauge,
        None,
        Collector,
        ["file", "fingerprint"],
        "1 for the rule set and the contracts file this replica runs on, with their fingerprint; replicas sharing a store must show the same."
    ),
    m!(
        "caretaker_config_mismatch",
        Gauge,
        None,
        Collector,
        ["file"],
        "1 when a live replica sharing this store runs another rule set or contracts file than this one."
    ),
    m!(
        "caretaker_cases_sla_breached",
        Gauge,
        None,
        Collector,
        ["customer"],
        "Active cases under contract whose response or resolution SLA has been breached."
    ),
    m!(
        "caretaker_cases_unassigned",
        Gauge,
        None,
        Collector,
        ["customer"],
        "Active cases under contract that nobody is assigned to (no rotation or engineer fits)."
    ),
    m!(
        "caretaker_sink_deliveries",
        Counter,
        None,
        Collector,
        ["sink", "result"],
        "Case changes handed to a ticket sink: delivered, failed (retried with backoff), refused (a 4xx; set aside after five) or muted (a flapping case's rule changes)."
    ),
    m!(
        "caretaker_outbox_pending",
        Gauge,
        None,
        Collector,
        ["sink"],
        "Case changes waiting in the outbox for a sink (grows while the sink is down)."
    ),
    m!(
        "caretaker_detect_evaluations_dropped",
        Counter,
        None,
        Collector,
        [],
        "Reports not evaluated by detection because its queue was full."
    ),
    m!(
        "caretaker_login_failures",
        Counter,
        None,
        Collector,
        [],
        "Failed logins to the web pages: unknown user or wrong password."
    ),
    m!(
        "caretaker_login_refused",
        Counter,
        None,
        Collector,
        ["reason"],
        "Logins refused before the password check: locked (too many failures for the user or the source address) or busy (no password check slot came free in time)."
    ),
    m!(
        "caretaker_detect_reports_coalesced",
        Counter,
        None,
        Collector,
        [],
        "Reports superseded by a newer report of the same host while detection was behind on that host."
    ),
    m!(
        "caretaker_detect_series",
        Gauge,
        None,
        Collector,
        ["host"],
        "Series (one per rule and label set) detection keeps for the host; at most [detect] max_series_per_host."
    ),
    m!(
        "caretaker_detect_series_dropped",
        Counter,
        None,
        Collector,
        ["host"],
        "New series of the host not evaluated because it was at its bound of detection series."
    ),
    m!(
        "caretaker_detect_checkpoint_seconds",
        Gauge,
        Seconds,
        Collector,
        [],
        "How long the last checkpoint of detection state took (encoding and storing the hosts whose state changed), every [detect] checkpoint_secs."
    ),
    m!(
        "caretaker_detect_checkpoint_bytes",
        Gauge,
        Bytes,
        Collector,
        [],
        "Size of the host states the last checkpoint of detection state stored (compressed)."
    ),
    m!(
        "caretaker_detect_checkpoint_timestamp_seconds",
        Gauge,
        Seconds,
        Collector,
        [],
        "When detection state was last checkpointed successfully; a restart restores it, so forecasts keep their windows."
    ),
];

/// Reasons for `caretaker_login_refused`; a closed set keeps label values bounded.
pub const LOGIN_REFUSED_REASONS: &[&str] = &["locked", "busy"];

/// Reasons for `caretaker_ingest_reports_rejected`; a closed set keeps label values bounded.
pub const REJECT_REASONS: &[&str] = &[
    "unauthorized",
    "malformed",
    "invalid",
    "too_large",
    "unsupported_encoding",
    "internal",
    // A report claiming another host, customer or site than the agent's.
    "identity",
];

/// Limits of `caretaker_http_limited`; a closed set keeps label values bounded.
pub const HTTP_LIMITS: &[&str] = &["body_timeout", "connections", "per_source", "concurrency", "per_agent"];

/// Events of `caretaker_item_transitions`; a closed set keeps label values bounded.
pub const TRANSITION_EVENTS: &[&str] = &["opened", "reopened", "recovered", "resolved", "changed"];

/// Looks a metric up by family name (hashed: ingest calls this per sample).
pub fn lookup(name: &str) -> Option<&'static MetricDef> {
    static INDEX: std::sync::OnceLock<std::collections::HashMap<&'static str, &'static MetricDef>> =
        std::sync::OnceLock::new();
    INDEX
        .get_or_init(|| CATALOGUE.iter().map(|m| (m.name, m)).collect())
        .get(name)
        .copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_are_unique_prefixed_and_carry_their_unit() {
        let mut seen = HashSet::new();
        for m in CATALOGUE {
            assert!(seen.insert(m.name), "{} listed twice", m.name);
            assert!(m.name.starts_with("caretaker_"), "{}", m.name);
            assert!(
                !m.name.ends_with("_total"),
                "{}: counters are listed without _total",
                m.name
            );
            if let Some(s) = m.unit.suffix() {
                assert!(m.name.ends_with(&format!("_{s}")), "{} must end with _{s}", m.name);
                assert_ne!(m.base_name(), m.name);
            }
            assert!(!m.help.is_empty());
            if m.source == Source::Agent {
                for l in m.labels {
                    assert!(!HOST_LABELS.contains(l), "{} uses reserved label {l}", m.name);
                }
            }
        }
    }

    /// Prometheus gives every scraped series the labels `job` and `instance`
    /// of its target and renames a series' own to `exported_job` /
    /// `exported_instance`: a query grouping by them would group by target.
    #[test]
    fn no_metric_uses_a_label_prometheus_sets_on_the_target() {
        for m in CATALOGUE {
            for l in m.labels {
                assert!(
                    !["job", "instance"].contains(l),
                    "{} uses label {l}, which Prometheus sets itself",
                    m.name
                );
            }
        }
    }

    #[test]
    fn counters_expose_total() {
        let m = lookup("caretaker_network_receive_bytes").map(|m| m.sample_name());
        assert_eq!(m.as_deref(), Some("caretaker_network_receive_bytes_total"));
        assert_eq!(
            lookup("caretaker_memory_total_bytes").map(|m| m.base_name()),
            Some("caretaker_memory_total")
        );
        assert_eq!(
            lookup("caretaker_hwmon_temperature_celsius").map(|m| m.base_name()),
            Some("caretaker_hwmon_temperature")
        );
    }
}
