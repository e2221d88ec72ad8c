//! The server's BMC over the local IPMI interface, on its own interval.
//!
//! A worker thread runs FreeIPMI (`ipmi-sensors`, `ipmi-sel`, `ipmi-chassis`,
//! `bmc-info`, `ipmi-fru`) when it is installed, else ipmitool (`sdr elist`,
//! `sensor`, `sel elist`, `sel info`, `chassis status`, `mc info`, `fru`,
//! `lan print`), one tool at a time, each under a hard timeout, so runs never
//! overlap and never sit on the report path. The `ipmi` collector turns the
//! latest published [`IpmiState`] into samples and events.
//!
//! Stale readings are the peers' classic false alarm: FreeIPMI is told to
//! rebuild its SDR cache on every run (`--sdr-cache-recreate`, in a cache
//! directory the agent owns), and the collector stops sending sensor samples
//! once the last good read is older than two intervals, so a hung BMC shows
//! as a failing collector, not as the last reading frozen in place.
//!
//! The event log is read incrementally: the last record sent (its id and a
//! fingerprint of its content) is kept in `ipmi-sel.json` in the state dir.
//! Only entries after it become events; on the very first read only entries
//! of the last `sel_first_read_window_secs` are sent; a log that was cleared
//! or rolled over (the remembered record gone or changed) is read from its
//! start. At most [`MAX_SEL_EVENTS_PER_READ`] events are taken per read; the
//! cursor stops at the last one taken, so the rest follow in the next read.
//! Events wait in the state until a report takes them; a report is spooled
//! before it is sent, so a failed delivery does not lose them.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use caretaker_shared::hardware::ipmi::{
    self, BmcIdentity, ChassisStatus, PsuFru, SelEntry, SelInfo, Sensor, SensorRead, SensorState,
};
use caretaker_shared::wire::{BmcInfo, Event, PsuInfo, Severity};
use serde::{Deserialize, Serialize};

use crate::command::{self, CommandError};

/// Most event-log entries turned into events by one read.
pub const MAX_SEL_EVENTS_PER_READ: usize = 200;
/// Most events kept waiting for a report (a collector down for days).
const MAX_PENDING_EVENTS: usize = 1_000;
/// The BMC's identity and FRU data change with a firmware update or a PSU
/// swap: read them every this many runs (an hour at the default interval).
const IDENTITY_EVERY_RUNS: u64 = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ToolChoice {
    /// FreeIPMI when `ipmi-sensors` is installed, else ipmitool.
    #[default]
    Auto,
    Freeipmi,
    Ipmitool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IpmiConfig {
    /// Which tools to use: `auto`, `freeipmi` or `ipmitool`.
    #[serde(default)]
    pub tool: ToolChoice,
    #[serde(default = "default_ipmi_sensors")]
    pub ipmi_sensors_path: PathBuf,
    #[serde(default = "default_ipmi_sel")]
    pub ipmi_sel_path: PathBuf,
    #[serde(default = "default_ipmi_chassis")]
    pub ipmi_chassis_path: PathBuf,
    #[serde(default = "default_bmc_info")]
    pub bmc_info_path: PathBuf,
    #[serde(default = "default_ipmi_fru")]
    pub ipmi_fru_path: PathBuf,
    #[serde(default = "default_ipmitool")]
    pub ipmitool_path: PathBuf,
    /// Seconds between two reads of the BMC.
    #[serde(default = "default_interval_secs")]
    pub interval_secs: u64,
    /// Time one tool run may take before it is killed.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// FreeIPMI's SDR cache; `ipmi-sdr-cache` in the state dir when unset.
    #[serde(default)]
    pub sdr_cache_dir: Option<PathBuf>,
    /// On the very first read of the event log (no remembered position),
    /// entries older than this are not sent.
    #[serde(default = "default_first_window")]
    pub sel_first_read_window_secs: u64,
    /// Device files of the local BMC interface; none present means no BMC.
    #[serde(default = "default_devices")]
    pub devices: Vec<PathBuf>,
    /// Read the FRU data for the power supplies' models and serials.
    #[serde(default = "default_true")]
    pub fru: bool,
}

fn default_ipmi_sensors() -> PathBuf {
    "ipmi-sensors".into()
}
fn default_ipmi_sel() -> PathBuf {
    "ipmi-sel".into()
}
fn default_ipmi_chassis() -> PathBuf {
    "ipmi-chassis".into()
}
fn default_bmc_info() -> PathBuf {
    "bmc-info".into()
}
fn default_ipmi_fru() -> PathBuf {
    "ipmi-fru".into()
}
fn default_ipmitool() -> PathBuf {
    "ipmitool".into()
}
fn default_interval_secs() -> u64 {
    300
}
fn default_timeout_secs() -> u64 {
    30
}
fn default_first_window() -> u64 {
    86_400
}
fn default_devices() -> Vec<PathBuf> {
    ["/dev/ipmi0", "/dev/ipmi/0", "/dev/ipmidev/0"]
        .iter()
        .map(PathBuf::from)
        .collect()
}
fn default_true() -> bool {
    true
}

impl Default for IpmiConfig {
    fn default() -> Self {
        Self {
            tool: ToolChoice::Auto,
            ipmi_sensors_path: default_ipmi_sensors(),
            ipmi_sel_path: default_ipmi_sel(),
            ipmi_chassis_path: default_ipmi_chassis(),
            bmc_info_path: default_bmc_info(),
            ipmi_fru_path: default_ipmi_fru(),
            ipmitool_path: default_ipmitool(),
            interval_secs: default_interval_secs(),
            timeout_secs: default_timeout_secs(),
            sdr_cache_dir: None,
            sel_first_read_window_secs: default_first_window(),
            devices: default_devices(),
            fru: true,
        }
    }
}

impl IpmiConfig {
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if !(1..=86_400).contains(&self.interval_secs) {
            p.push(format!(
                "ipmi.interval_secs: {} is outside 1..=86400",
                self.interval_secs
            ));
        }
        if !(1..=600).contains(&self.timeout_secs) {
            p.push(format!("ipmi.timeout_secs: {} is outside 1..=600", self.timeout_secs));
        }
        if self.sdr_cache_dir.as_ref().is_some_and(|d| !d.is_absolute()) {
            p.push("ipmi.sdr_cache_dir: must be an absolute path".into());
        }
        if self.sel_first_read_window_secs > 365 * 86_400 {
            p.push(format!(
                "ipmi.sel_first_read_window_secs: {} is more than a year",
                self.sel_first_read_window_secs
            ));
        }
        if self.devices.is_empty() {
            p.push("ipmi.devices: list at least one device file (e.g. /dev/ipmi0)".into());
        }
        p
    }

    /// How old the last good read may be before its sensors are no longer sent.
    pub fn stale_after_ms(&self) -> i64 {
        (2 * self.interval_secs + self.timeout_secs) as i64 * 1000
    }
}

/// Which tool family a run uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    FreeIpmi,
    Ipmitool,
}

/// Whether `program` can be run: a path must exist, a bare name must be in `PATH`.
pub fn installed(program: &Path) -> bool {
    crate::command::locate(program, &[]).is_some()
}

/// Chooses the tools, or says why there is nothing to read on this host.
pub fn detect(cfg: &IpmiConfig) -> Result<Tool, String> {
    if !cfg.devices.iter().any(|d| d.exists()) {
        let names: Vec<String> = cfg.devices.iter().map(|d| d.display().to_string()).collect();
        return Err(format!(
            "no BMC: none of {} exists (no BMC on this host, or the ipmi_si and ipmi_devintf kernel modules are not loaded)",
            names.join(", ")
        ));
    }
    let freeipmi = || installed(&cfg.ipmi_sensors_path);
    let ipmitool = || installed(&cfg.ipmitool_path);
    match cfg.tool {
        ToolChoice::Freeipmi if freeipmi() => Ok(Tool::FreeIpmi),
        ToolChoice::Freeipmi => Err(format!(
            "{} not found: install FreeIPMI (freeipmi-tools) or set ipmi.ipmi_sensors_path",
            cfg.ipmi_sensors_path.display()
        )),
        ToolChoice::Ipmitool if ipmitool() => Ok(Tool::Ipmitool),
        ToolChoice::Ipmitool => Err(format!(
            "{} not found: install ipmitool or set ipmi.ipmitool_path",
            cfg.ipmitool_path.display()
        )),
        ToolChoice::Auto if freeipmi() => Ok(Tool::FreeIpmi),
        ToolChoice::Auto if ipmitool() => Ok(Tool::Ipmitool),
        ToolChoice::Auto => Err(format!(
            "neither FreeIPMI ({}) nor ipmitool ({}) is installed",
            cfg.ipmi_sensors_path.display(),
            cfg.ipmitool_path.display()
        )),
    }
}

/// Why a tool run gave nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunError {
    /// No BMC to talk to (the tool could not open the interface) or no tool.
    Unavailable(String),
    Failed(String),
}

/// What a tool prints when there is no BMC behind the device file.
fn says_no_bmc(stderr: &str) -> bool {
    let s = stderr.to_ascii_lowercase();
    [
        "could not find inband device",
        "could not open device",
        "no such file or directory",
        "driver timeout",
        "ipmi_open",
        "unable to get device id",
        "no bmc",
    ]
    .iter()
    .any(|m| s.contains(m))
}

/// Runs one tool and returns its stdout as text.
fn run_tool(cfg: &IpmiConfig, program: &Path, args: &[&str]) -> Result<String, RunError> {
    let out = match command::run(program, args, Duration::from_secs(cfg.timeout_secs)) {
        Ok(o) => o,
        Err(e @ CommandError::NotFound { .. }) => return Err(RunError::Unavailable(e.to_string())),
        Err(e) => return Err(RunError::Failed(e.to_string())),
    };
    if out.code != Some(0) {
        let stderr = out.stderr_line();
        let status = out.code.map_or("a signal".to_string(), |c| c.to_string());
        let msg = format!("{} exited with {status}: {stderr}", program.display())
            .trim_end_matches([':', ' '])
            .to_string();
        return Err(if says_no_bmc(&stderr) {
            RunError::Unavailable(msg)
        } else {
            RunError::Failed(msg)
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn parse_err(program: &Path, e: impl std::fmt::Display) -> RunError {
    RunError::Failed(format!("{} output unreadable: {e}", program.display()))
}

/// The live sensors.
pub fn read_sensors(cfg: &IpmiConfig, tool: Tool, cache_dir: &Path) -> Result<SensorRead, RunError> {
    match tool {
        Tool::FreeIpmi => {
            let cache = format!("--sdr-cache-directory={}", cache_dir.display());
            let text = run_tool(
                cfg,
                &cfg.ipmi_sensors_path,
                &[
                    "--output-sensor-state",
                    "--output-sensor-thresholds",
                    "--comma-separated-output",
                    "--no-header-output",
                    "--quiet-cache",
                    "--sdr-cache-recreate",
                    "--entity-sensor-names",
                    &cache,
                ],
            )?;
            ipmi::parse_freeipmi_sensors(&text).map_err(|e| parse_err(&cfg.ipmi_sensors_path, e))
        }
        Tool::Ipmitool => {
            let text = run_tool(cfg, &cfg.ipmitool_path, &["sdr", "elist"])?;
            let mut read = ipmi::parse_ipmitool_sdr(&text).map_err(|e| parse_err(&cfg.ipmitool_path, e))?;
            // Thresholds only: without them the states still stand.
            match run_tool(cfg, &cfg.ipmitool_path, &["sensor"])
                .and_then(|t| ipmi::parse_ipmitool_sensor(&t).map_err(|e| parse_err(&cfg.ipmitool_path, e)))
            {
                Ok(s) => ipmi::merge_thresholds(&mut read, &s),
                Err(e) => tracing::debug!(error = ?e, "ipmitool sensor: no thresholds"),
            }
            Ok(read)
        }
    }
}

/// The whole event log and its fill level.
pub fn read_sel(cfg: &IpmiConfig, tool: Tool, cache_dir: &Path) -> Result<(Vec<SelEntry>, Option<SelInfo>), RunError> {
    match tool {
        Tool::FreeIpmi => {
            let cache = format!("--sdr-cache-directory={}", cache_dir.display());
            let text = run_tool(
                cfg,
                &cfg.ipmi_sel_path,
                &[
                    "--output-event-state",
                    "--interpret-oem-data",
                    "--entity-sensor-names",
                    "--comma-separated-output",
                    "--no-header-output",
                    "--quiet-cache",
                    &cache,
                ],
            )?;
            let entries = ipmi::parse_freeipmi_sel(&text).map_err(|e| parse_err(&cfg.ipmi_sel_path, e))?;
            let info = run_tool(cfg, &cfg.ipmi_sel_path, &["--info"])
                .ok()
                .and_then(|t| ipmi::parse_sel_info(&t).ok());
            Ok((entries, info))
        }
        Tool::Ipmitool => {
            let text = run_tool(cfg, &cfg.ipmitool_path, &["sel", "elist"])?;
            let entries = ipmi::parse_ipmitool_sel(&text).map_err(|e| parse_err(&cfg.ipmitool_path, e))?;
            let info = run_tool(cfg, &cfg.ipmitool_path, &["sel", "info"])
                .ok()
                .and_then(|t| ipmi::parse_sel_info(&t).ok());
            Ok((entries, info))
        }
    }
}

fn read_chassis(cfg: &IpmiConfig, tool: Tool) -> Option<ChassisStatus> {
    let text = match tool {
        Tool::FreeIpmi => run_tool(cfg, &cfg.ipmi_chassis_path, &["--get-chassis-status"]),
        Tool::Ipmitool => run_tool(cfg, &cfg.ipmitool_path, &["chassis", "status"]),
    };
    text.ok().and_then(|t| ipmi::parse_chassis_status(&t).ok())
}

/// The BMC's identity and the power supplies' FRU data.
pub fn read_identity(cfg: &IpmiConfig, tool: Tool) -> (Option<BmcInfo>, Vec<PsuInfo>) {
    let bmc = match tool {
        Tool::FreeIpmi => run_tool(cfg, &cfg.bmc_info_path, &[]),
        Tool::Ipmitool => run_tool(cfg, &cfg.ipmitool_path, &["mc", "info"]),
    }
    .ok()
    .and_then(|t| ipmi::parse_bmc_info(&t).ok());
    let ip = if installed(&cfg.ipmitool_path) {
        run_tool(cfg, &cfg.ipmitool_path, &["lan", "print"])
            .ok()
            .and_then(|t| ipmi::parse_lan_ip(&t))
    } else {
        None
    };
    let bmc = bmc.map(|b: BmcIdentity| BmcInfo {
        vendor: b.vendor,
        firmware: b.firmware,
        ipmi_version: b.ipmi_version,
        ip: ip.unwrap_or_default(),
    });
    let psus = if cfg.fru {
        match tool {
            Tool::FreeIpmi => run_tool(cfg, &cfg.ipmi_fru_path, &[]),
            Tool::Ipmitool => run_tool(cfg, &cfg.ipmitool_path, &["fru"]),
        }
        .map(|t| ipmi::parse_fru_psus(&t))
        .unwrap_or_default()
    } else {
        Vec::new()
    };
    let psus = psus
        .into_iter()
        .map(|p: PsuFru| PsuInfo {
            name: p.name,
            manufacturer: p.manufacturer,
            model: p.model,
            serial: p.serial,
            capacity_watts: None,
        })
        .collect();
    (bmc, psus)
}

/// Where the event log was last read up to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SelCursor {
    /// Record id of the last entry taken; with an empty fingerprint, "read from the start".
    pub last_id: u64,
    pub fingerprint: String,
}

impl SelCursor {
    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join("ipmi-sel.json")
    }

    /// The remembered cursor; `None` when there is none (first read) or it is unreadable.
    pub fn load(state_dir: &Path) -> Option<Self> {
        crate::state::read_json(&Self::path(state_dir)).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "event log position unreadable; reading the log as new");
            None
        })
    }

    pub fn save(&self, state_dir: &Path) -> Result<(), crate::state::StateError> {
        let bytes = serde_json::to_vec(self).unwrap_or_default();
        crate::state::write_atomic(&Self::path(state_dir), &bytes, 0o600)
    }

    fn start() -> Self {
        Self::default()
    }

    fn at(e: &SelEntry) -> Self {
        Self {
            last_id: e.id,
            fingerprint: e.fingerprint(),
        }
    }
}

/// What one read of the event log yields.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SelSelection<'a> {
    pub send: Vec<&'a SelEntry>,
    pub cursor: SelCursor,
    /// The remembered entry was gone: the log was cleared or rolled over.
    pub restarted: bool,
}

/// Picks the entries to send after `cursor` (see the module's comment).
pub fn select_new<'a>(
    entries: &'a [SelEntry],
    cursor: Option<&SelCursor>,
    now_ms: i64,
    first_window_ms: i64,
    max: usize,
) -> SelSelection<'a> {
    let (start, first, restarted) = match cursor {
        None => (0, true, false),
        Some(c) if c.fingerprint.is_empty() => (0, false, false),
        Some(c) => match entries
            .iter()
            .position(|e| e.id == c.last_id && e.fingerprint() == c.fingerprint)
        {
            Some(i) => (i + 1, false, false),
            None => (0, false, true),
        },
    };
    let mut sel = SelSelection {
        send: Vec::new(),
        cursor: entries.last().map(SelCursor::at).unwrap_or_else(SelCursor::start),
        restarted,
    };
    if entries.is_empty() {
        return sel;
    }
    if cursor.is_some() && start == entries.len() && !restarted {
        // Nothing new: keep the cursor as it was.
        sel.cursor = cursor.cloned().unwrap_or_else(SelCursor::start);
        return sel;
    }
    for e in &entries[start..] {
        if e.ignored.is_some() {
            continue;
        }
        if first && !e.at_ms.is_some_and(|t| t <= now_ms && now_ms - t <= first_window_ms) {
            continue;
        }
        sel.send.push(e);
        if sel.send.len() >= max {
            sel.cursor = SelCursor::at(e);
            break;
        }
    }
    sel
}

/// The `ipmi_sel` event of an entry.
pub fn sel_event(e: &SelEntry, now_ms: i64) -> Event {
    let at_ms = e.at_ms.filter(|t| *t > 0 && *t <= now_ms).unwrap_or(now_ms);
    let severity = match e.state {
        SensorState::Critical => Severity::Critical,
        SensorState::Warning => Severity::Warning,
        SensorState::Nominal => Severity::Info,
    };
    let label = crate::collectors::host_label;
    let mut message = e.message();
    if message.len() > 1000 {
        message = label(&message);
    }
    Event {
        at_ms,
        kind: "ipmi_sel".into(),
        severity,
        message,
        labels: [
            ("sensor", label(&e.sensor)),
            ("type", e.kind.as_str().to_string()),
            ("class", e.class.as_str().to_string()),
            ("record", e.id.to_string()),
            ("event", label(&e.event)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect(),
    }
}

/// The sensors and chassis status of the last good read.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IpmiReading {
    pub read_at_ms: i64,
    pub sensors: Vec<Sensor>,
    pub chassis: Option<ChassisStatus>,
    pub sel_info: Option<SelInfo>,
}

/// What the worker publishes and the collector and reporter read.
#[derive(Debug, Default)]
pub struct IpmiState {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    reading: Option<Arc<IpmiReading>>,
    /// Why the last run failed; `None` after a good run.
    error: Option<String>,
    /// Why there is nothing to read on this host.
    unavailable: Option<String>,
    pending: Vec<Event>,
    bmc: Option<BmcInfo>,
    psus: Vec<PsuInfo>,
    inventory_changed: bool,
    stale_after_ms: i64,
}

/// A snapshot for the collector.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub reading: Option<Arc<IpmiReading>>,
    pub error: Option<String>,
    pub unavailable: Option<String>,
    pub stale_after_ms: i64,
}

impl IpmiState {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set_stale_after_ms(&self, ms: i64) {
        self.lock().stale_after_ms = ms;
    }

    pub fn publish_reading(&self, r: IpmiReading) {
        let mut g = self.lock();
        g.reading = Some(Arc::new(r));
        g.error = None;
        g.unavailable = None;
    }

    pub fn publish_error(&self, e: String) {
        let mut g = self.lock();
        g.error = Some(e);
        g.unavailable = None;
    }

    pub fn publish_unavailable(&self, reason: String) {
        let mut g = self.lock();
        g.unavailable = Some(reason);
        g.reading = None;
        g.error = None;
    }

    /// Queues event-log events for the next report.
    pub fn push_events(&self, events: Vec<Event>) {
        let mut g = self.lock();
        g.pending.extend(events);
        let over = g.pending.len().saturating_sub(MAX_PENDING_EVENTS);
        if over > 0 {
            tracing::warn!(
                dropped = over,
                "too many BMC events waiting for a report; dropping the oldest"
            );
            g.pending.drain(..over);
        }
    }

    /// The events no report carried yet; they are handed over once.
    pub fn take_events(&self) -> Vec<Event> {
        std::mem::take(&mut self.lock().pending)
    }

    pub fn snapshot(&self) -> Snapshot {
        let g = self.lock();
        Snapshot {
            reading: g.reading.clone(),
            error: g.error.clone(),
            unavailable: g.unavailable.clone(),
            stale_after_ms: g.stale_after_ms,
        }
    }

    /// Sets the BMC and PSU inventory parts; remembers whether they changed.
    pub fn publish_inventory(&self, bmc: Option<BmcInfo>, psus: Vec<PsuInfo>) {
        let mut g = self.lock();
        if g.bmc != bmc || g.psus != psus {
            g.bmc = bmc;
            g.psus = psus;
            g.inventory_changed = true;
        }
    }

    /// The BMC and PSU inventory parts.
    pub fn inventory(&self) -> (Option<BmcInfo>, Vec<PsuInfo>) {
        let g = self.lock();
        (g.bmc.clone(), g.psus.clone())
    }

    /// Whether the inventory parts changed since last asked.
    pub fn take_inventory_changed(&self) -> bool {
        std::mem::take(&mut self.lock().inventory_changed)
    }
}

/// One worker: the SEL position and the run count survive between runs.
pub struct Worker {
    cfg: IpmiConfig,
    state: Arc<IpmiState>,
    state_dir: PathBuf,
    cache_dir: PathBuf,
    cursor: Option<SelCursor>,
    runs: u64,
}

impl Worker {
    pub fn new(cfg: IpmiConfig, state: Arc<IpmiState>, state_dir: &Path) -> Self {
        let cache_dir = cfg
            .sdr_cache_dir
            .clone()
            .unwrap_or_else(|| state_dir.join("ipmi-sdr-cache"));
        state.set_stale_after_ms(cfg.stale_after_ms());
        Self {
            cursor: SelCursor::load(state_dir),
            cfg,
            state,
            state_dir: state_dir.to_path_buf(),
            cache_dir,
            runs: 0,
        }
    }

    /// One read of the BMC, published into the state.
    pub fn run_once(&mut self) {
        let now = caretaker_shared::now_ms();
        let tool = match detect(&self.cfg) {
            Ok(t) => t,
            Err(reason) => {
                self.state.publish_unavailable(reason);
                return;
            }
        };
        if tool == Tool::FreeIpmi
            && let Err(e) = std::fs::create_dir_all(&self.cache_dir)
        {
            tracing::warn!(dir = %self.cache_dir.display(), error = %e, "cannot create the SDR cache directory");
        }
        let sensors = match read_sensors(&self.cfg, tool, &self.cache_dir) {
            Ok(s) => s,
            Err(RunError::Unavailable(r)) => {
                self.state.publish_unavailable(r);
                return;
            }
            Err(RunError::Failed(e)) => {
                tracing::warn!(error = %e, "BMC sensor read failed");
                self.state.publish_error(e);
                return;
            }
        };
        let chassis = read_chassis(&self.cfg, tool);
        let mut sel_error = None;
        let sel_info = match read_sel(&self.cfg, tool, &self.cache_dir) {
            Ok((entries, info)) => {
                self.take_sel(&entries, now);
                info
            }
            Err(RunError::Unavailable(e) | RunError::Failed(e)) => {
                tracing::warn!(error = %e, "BMC event log read failed");
                sel_error = Some(e);
                None
            }
        };
        if self.runs % IDENTITY_EVERY_RUNS == 0 {
            let (bmc, psus) = read_identity(&self.cfg, tool);
            self.state.publish_inventory(bmc, psus);
        }
        self.runs += 1;
        self.state.publish_reading(IpmiReading {
            read_at_ms: now,
            sensors: sensors.sensors,
            chassis,
            sel_info,
        });
        if let Some(e) = sel_error {
            self.state.publish_error(e);
        }
    }

    fn take_sel(&mut self, entries: &[SelEntry], now: i64) {
        let window = self.cfg.sel_first_read_window_secs as i64 * 1000;
        let sel = select_new(entries, self.cursor.as_ref(), now, window, MAX_SEL_EVENTS_PER_READ);
        if sel.restarted {
            tracing::info!("the BMC event log was cleared or rolled over; reading it from its start");
        }
        let events: Vec<Event> = sel.send.iter().map(|e| sel_event(e, now)).collect();
        if self.cursor.as_ref() != Some(&sel.cursor) {
            if let Err(e) = sel.cursor.save(&self.state_dir) {
                tracing::warn!(error = %e, "cannot remember the BMC event log position");
            }
            self.cursor = Some(sel.cursor);
        }
        self.state.push_events(events);
    }
}

/// Starts the worker thread: read now, then every `interval_secs`, until
/// `stop` is dropped or sent to. One thread, so runs never overlap.
pub fn spawn_worker(
    cfg: IpmiConfig,
    state: Arc<IpmiState>,
    state_dir: &Path,
) -> std::io::Result<(std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>)> {
    let interval = Duration::from_secs(cfg.interval_secs);
    let mut worker = Worker::new(cfg, state, state_dir);
    crate::periodic::spawn("ipmi", interval, move || worker.run_once())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::{Collector, Samples, run_all, sample_value};
    use caretaker_shared::hardware::ipmi::{SelClass, SensorKind};
    use std::os::unix::fs::PermissionsExt;

    fn fixture(rel: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/hardware/ipmi")
            .join(rel)
    }

    fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap_or_else(|e| panic!("{e}"));
        p
    }

    /// A host with a BMC and FreeIPMI: fake tools printing `sensors` and the
    /// SEL file `sel` (rewritable by the test).
    struct Host {
        dir: tempfile::TempDir,
        cfg: IpmiConfig,
    }

    const SEL_INFO: &str = "Number of log entries : 3\nFree space remaining : 16336 bytes\n";
    const CHASSIS: &str = "Power overload : false\nInterlock : inactive\nPower fault : false\nChassis intrusion : inactive\nDrive Fault : false\nCooling/fan fault : false\n";
    const BMC: &str =
        "Firmware Revision : 3.88\nIPMI Version : 2.0\nManufacturer ID : Super Micro Computer Inc. (10876)\n";

    fn host(sensors: &str) -> Host {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let d = dir.path();
        let dev = d.join("ipmi0");
        std::fs::write(&dev, "").unwrap_or_else(|e| panic!("{e}"));
        std::fs::copy(fixture(sensors), d.join("sensors.out")).unwrap_or_else(|e| panic!("{e}"));
        std::fs::copy(fixture("freeipmi/sel-old-psu-failure-derived.csv"), d.join("sel.out"))
            .unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(d.join("args.log"), "").unwrap_or_else(|e| panic!("{e}"));
        let dp = d.display();
        let cfg = IpmiConfig {
            ipmi_sensors_path: script(
                d,
                "ipmi-sensors",
                &format!("echo \"$@\" >> {dp}/args.log\ncat {dp}/sensors.out"),
            ),
            ipmi_sel_path: script(
                d,
                "ipmi-sel",
                &format!("if [ \"$1\" = --info ]; then printf '{SEL_INFO}'; else cat {dp}/sel.out; fi"),
            ),
            ipmi_chassis_path: script(d, "ipmi-chassis", &format!("printf '{CHASSIS}'")),
            bmc_info_path: script(d, "bmc-info", &format!("printf '{BMC}'")),
            ipmi_fru_path: script(
                d,
                "ipmi-fru",
                "printf 'FRU Inventory Device: PS1 (ID 01h)\\n  FRU Product Name: PWS-1K21P-1R\\n  FRU Product Serial Number: P1K2ABC\\n'",
            ),
            ipmitool_path: d.join("no-ipmitool"),
            devices: vec![dev],
            timeout_secs: 5,
            ..IpmiConfig::default()
        };
        Host { dir, cfg }
    }

    fn collect(state: &Arc<IpmiState>) -> (Samples, Result<(), CollectError>) {
        let mut s = Samples::default();
        let r = crate::collectors::ipmi::Ipmi::new(state.clone()).collect(&mut s);
        (s, r)
    }
    use crate::collectors::CollectError;

    #[test]
    fn a_psu_failure_is_a_critical_power_supply_sensor_and_old_sel_entries_are_not_sent() {
        let h = host("freeipmi/supermicro-sensors-psu-failed-derived.csv");
        let state = Arc::new(IpmiState::default());
        let mut w = Worker::new(h.cfg.clone(), state.clone(), h.dir.path());
        w.run_once();
        let (s, r) = collect(&state);
        assert!(r.is_ok(), "{r:?}");
        assert_eq!(
            sample_value(
                &s.0,
                "caretaker_ipmi_sensor_state",
                &[("sensor", "PS1 Status"), ("type", "power_supply")]
            ),
            Some(2.0)
        );
        assert_eq!(
            sample_value(
                &s.0,
                "caretaker_ipmi_sensor_value",
                &[("sensor", "CPU Temp"), ("unit", "celsius")]
            ),
            Some(77.0)
        );
        assert_eq!(
            sample_value(
                &s.0,
                "caretaker_ipmi_sensor_threshold",
                &[("sensor", "FAN1"), ("threshold", "lower_critical")]
            ),
            Some(500.0)
        );
        assert_eq!(
            sample_value(&s.0, "caretaker_ipmi_chassis_fault", &[("fault", "intrusion")]),
            Some(0.0)
        );
        assert_eq!(sample_value(&s.0, "caretaker_ipmi_sel_entries", &[]), Some(3.0));
        assert!(
            s.0.iter()
                .all(|x| x.labels.get("sensor").is_none_or(|n| n != "FAN5" && n != "FANA"))
        );
        assert!(
            s.1.is_empty(),
            "first read: nothing older than a day is sent: {:?}",
            s.1
        );
        assert_eq!(
            SelCursor::load(h.dir.path()).map(|c| c.last_id),
            Some(3),
            "baseline remembered"
        );
        let args = std::fs::read_to_string(h.dir.path().join("args.log")).unwrap_or_default();
        assert!(
            args.contains("--sdr-cache-recreate") && args.contains("--entity-sensor-names"),
            "{args}"
        );
        assert!(args.contains(&format!(
            "--sdr-cache-directory={}",
            h.dir.path().join("ipmi-sdr-cache").display()
        )));
        let (bmc, psus) = state.inventory();
        assert_eq!(
            bmc.map(|b| (b.vendor, b.firmware)),
            Some(("Super Micro Computer Inc.".into(), "3.88".into()))
        );
        assert_eq!(psus.iter().map(|p| p.serial.as_str()).collect::<Vec<_>>(), ["P1K2ABC"]);
        assert!(state.take_inventory_changed() && !state.take_inventory_changed());
    }

    fn append_sel(h: &Host, line: &str) {
        let p = h.dir.path().join("sel.out");
        let mut text = std::fs::read_to_string(&p).unwrap_or_default();
        text.push_str(line);
        text.push('\n');
        std::fs::write(&p, text).unwrap_or_else(|e| panic!("{e}"));
    }

    fn today() -> (String, String) {
        // A time a minute ago in the SEL's form, whatever today is.
        let ms = caretaker_shared::now_ms() - 60_000;
        let days = ms.div_euclid(86_400_000);
        let secs = ms.rem_euclid(86_400_000) / 1000;
        // Civil date from days (inverse of days_from_civil).
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        let y = yoe + era * 400 + i64::from(m <= 2);
        const M: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        (
            format!("{}-{d:02}-{y}", M[(m - 1) as usize]),
            format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60),
        )
    }

    #[test]
    fn the_sel_is_read_incrementally_across_runs_and_restarts() {
        let h = host("freeipmi/supermicro-sensors-healthy-derived.csv");
        let state = Arc::new(IpmiState::default());
        let mut w = Worker::new(h.cfg.clone(), state.clone(), h.dir.path());
        w.run_once();
        assert!(state.take_events().is_empty());
        let (d, t) = today();
        append_sel(&h, &format!("4,{d},{t},FAN2,Fan,Critical,Lower Critical going low"));
        w.run_once();
        let ev = state.take_events();
        assert_eq!(ev.len(), 1, "{ev:?}");
        assert_eq!(ev[0].kind, "ipmi_sel");
        assert_eq!(ev[0].severity, Severity::Critical);
        assert_eq!(ev[0].labels.get("class").map(String::as_str), Some("fan_failure"));
        assert_eq!(ev[0].labels.get("record").map(String::as_str), Some("4"));
        assert_eq!(ev[0].labels.get("sensor").map(String::as_str), Some("FAN2"));
        assert!(
            ev[0].at_ms <= caretaker_shared::now_ms() - 59_000,
            "the entry's own time"
        );
        w.run_once();
        assert!(state.take_events().is_empty(), "each entry once");
        // A restart: a new worker reads the position from the state dir.
        let state2 = Arc::new(IpmiState::default());
        let mut w2 = Worker::new(h.cfg.clone(), state2.clone(), h.dir.path());
        w2.run_once();
        assert!(state2.take_events().is_empty(), "nothing repeated after a restart");
        append_sel(&h, &format!("5,{d},{t},DIMM A1,Memory,Critical,Uncorrectable ECC"));
        w2.run_once();
        let ev = state2.take_events();
        assert_eq!(
            ev.iter().map(|e| e.labels["record"].as_str()).collect::<Vec<_>>(),
            ["5"]
        );
        // Each event reaches the collector once.
        state2.push_events(ev);
        let (s1, _) = collect(&state2);
        let (s2, _) = collect(&state2);
        assert_eq!((s1.1.len(), s2.1.len()), (1, 0));
    }

    #[test]
    fn a_cleared_log_is_read_from_its_start() {
        let h = host("freeipmi/supermicro-sensors-healthy-derived.csv");
        let state = Arc::new(IpmiState::default());
        let mut w = Worker::new(h.cfg.clone(), state.clone(), h.dir.path());
        w.run_once();
        let (d, t) = today();
        std::fs::write(
            h.dir.path().join("sel.out"),
            format!("1,{d},{t},SEL,Event Logging Disabled,Nominal,Log Area Reset/Cleared\n2,{d},{t},PS1 Status,Power Supply,Critical,Failure detected\n"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        w.run_once();
        let ev = state.take_events();
        assert_eq!(ev.len(), 1, "{ev:?}");
        assert_eq!(ev[0].labels.get("class").map(String::as_str), Some("psu_failure"));
    }

    fn entry(id: u64, at_ms: Option<i64>) -> SelEntry {
        SelEntry {
            id,
            at_ms,
            when: format!("t{id}"),
            sensor: "PS1".into(),
            kind: SensorKind::PowerSupply,
            event: "Failure detected".into(),
            class: SelClass::PsuFailure,
            ..SelEntry::default()
        }
    }

    #[test]
    fn at_most_200_events_per_read_and_the_rest_next_time() {
        let now = 1_000_000_000_000;
        let entries: Vec<SelEntry> = (1..=450).map(|i| entry(i, Some(now - 1000))).collect();
        let start = SelCursor::start();
        let a = select_new(&entries, Some(&start), now, 86_400_000, 200);
        assert_eq!((a.send.len(), a.cursor.last_id), (200, 200));
        let b = select_new(&entries, Some(&a.cursor), now, 86_400_000, 200);
        assert_eq!((b.send.first().map(|e| e.id), b.cursor.last_id), (Some(201), 400));
        let c = select_new(&entries, Some(&b.cursor), now, 86_400_000, 200);
        assert_eq!((c.send.len(), c.cursor.last_id), (50, 450));
        let d = select_new(&entries, Some(&c.cursor), now, 86_400_000, 200);
        assert!(d.send.is_empty() && d.cursor == c.cursor);
    }

    #[test]
    fn the_first_read_sends_only_the_last_day_and_a_rolled_over_log_restarts() {
        let now = 10 * 86_400_000;
        let entries = vec![
            entry(1, Some(now - 3 * 86_400_000)),
            entry(2, None),
            entry(3, Some(now - 3_600_000)),
        ];
        let first = select_new(&entries, None, now, 86_400_000, 200);
        assert_eq!(first.send.iter().map(|e| e.id).collect::<Vec<_>>(), [3]);
        assert_eq!(first.cursor.last_id, 3);
        // The remembered record is gone (ids restarted after a wrap).
        let gone = SelCursor {
            last_id: 9,
            fingerprint: "x".into(),
        };
        let r = select_new(&entries, Some(&gone), now, 86_400_000, 200);
        assert!(r.restarted);
        assert_eq!(r.send.len(), 3);
        // An emptied log: read from the start next time.
        let e = select_new(&[], Some(&first.cursor), now, 86_400_000, 200);
        assert_eq!(e.cursor, SelCursor::start());
    }

    #[test]
    fn a_future_entry_time_is_replaced_by_the_read_time() {
        let e = entry(1, Some(5_000));
        assert_eq!(sel_event(&e, 4_000).at_ms, 4_000);
        assert_eq!(sel_event(&e, 6_000).at_ms, 5_000);
    }

    #[test]
    fn a_hung_tool_is_killed_and_stale_readings_stop() {
        let mut h = host("freeipmi/supermicro-sensors-healthy-derived.csv");
        let state = Arc::new(IpmiState::default());
        Worker::new(h.cfg.clone(), state.clone(), h.dir.path()).run_once();
        h.cfg.ipmi_sensors_path = script(h.dir.path(), "ipmi-sensors-hung", "exec sleep 30");
        h.cfg.timeout_secs = 1;
        let started = std::time::Instant::now();
        Worker::new(h.cfg.clone(), state.clone(), h.dir.path()).run_once();
        assert!(started.elapsed() < Duration::from_secs(10));
        let (s, r) = collect(&state);
        let e = r.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("did not finish within 1 s"), "{e}");
        assert!(
            s.0.iter().any(|x| x.metric == "caretaker_ipmi_sensor_state"),
            "a reading one interval old still goes out"
        );
        // Two intervals later it does not.
        state.set_stale_after_ms(0);
        std::thread::sleep(Duration::from_millis(5));
        let (s, r) = collect(&state);
        assert!(r.is_err());
        assert!(s.0.is_empty(), "no stale sensor samples: {:?}", s.0);
    }

    #[test]
    fn no_tools_or_no_bmc_is_unavailable_once() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let dev = dir.path().join("ipmi0");
        let cfg = IpmiConfig {
            ipmi_sensors_path: dir.path().join("ipmi-sensors"),
            ipmitool_path: dir.path().join("ipmitool"),
            devices: vec![dev.clone()],
            ..IpmiConfig::default()
        };
        let no_bmc = detect(&cfg).err().unwrap_or_default();
        assert!(no_bmc.starts_with("no BMC: none of"), "{no_bmc}");
        std::fs::write(&dev, "").unwrap_or_else(|e| panic!("{e}"));
        let no_tool = detect(&cfg).err().unwrap_or_default();
        assert!(no_tool.starts_with("neither FreeIPMI"), "{no_tool}");
        let state = Arc::new(IpmiState::default());
        Worker::new(cfg, state.clone(), dir.path()).run_once();
        let mut list: Vec<Box<dyn Collector>> = vec![Box::new(crate::collectors::ipmi::Ipmi::new(state))];
        let mut unavailable = std::collections::BTreeMap::new();
        let (s1, e1) = run_all(&mut list, &mut unavailable, 1);
        let (_, e2) = run_all(&mut list, &mut unavailable, 2);
        assert_eq!((e1.len(), e2.len()), (1, 0));
        assert_eq!(e1[0].kind, "collector_unavailable");
        assert_eq!(
            sample_value(&s1, "caretaker_agent_collector_success", &[("collector", "ipmi")]),
            Some(0.0)
        );
    }

    #[test]
    fn a_tool_exiting_non_zero_is_a_failure_or_no_bmc() {
        let mut h = host("freeipmi/supermicro-sensors-healthy-derived.csv");
        h.cfg.ipmi_sensors_path = script(
            h.dir.path(),
            "s1",
            "echo 'ipmi_cmd_get_sdr: bad completion code' >&2; exit 1",
        );
        let state = Arc::new(IpmiState::default());
        Worker::new(h.cfg.clone(), state.clone(), h.dir.path()).run_once();
        let (_, r) = collect(&state);
        assert!(
            matches!(&r, Err(CollectError::Tool { reason, .. }) if reason.contains("exited with 1: ipmi_cmd_get_sdr: bad completion code")),
            "{r:?}"
        );
        h.cfg.ipmi_sensors_path = script(
            h.dir.path(),
            "s2",
            "echo 'ipmi_ctx_open_inband: could not find inband device' >&2; exit 1",
        );
        Worker::new(h.cfg.clone(), state.clone(), h.dir.path()).run_once();
        let (_, r) = collect(&state);
        assert!(matches!(r, Err(CollectError::Unavailable { .. })), "{r:?}");
    }

    #[test]
    fn empty_slot_sensors_of_the_hpe_capture_produce_no_samples() {
        let text = std::fs::read_to_string(fixture("ipmitool/hpe-gen10-sensor-many-na.txt")).unwrap_or_default();
        let read = ipmi::parse_ipmitool_sensor(&text).unwrap_or_else(|e| panic!("{e}"));
        let r = IpmiReading {
            read_at_ms: 1,
            sensors: read.sensors,
            ..IpmiReading::default()
        };
        let mut s = Samples::default();
        crate::collectors::ipmi::reading_samples(&r, &mut s);
        let names: std::collections::BTreeSet<&str> =
            s.0.iter()
                .filter_map(|x| x.labels.get("sensor").map(String::as_str))
                .collect();
        assert_eq!(names.len(), 38);
        for absent in [
            "03-CPU 2",
            "08-P2 DIMM 1-6",
            "Fan 1",
            "Fan 2",
            "Intrusion",
            "80-PCI 1 M2",
        ] {
            assert!(!names.contains(absent), "{absent}");
        }
        assert!(
            s.0.iter()
                .all(|x| x.metric != "caretaker_ipmi_sensor_state" || x.value == 0.0)
        );
    }

    #[test]
    fn bad_ipmi_settings_are_all_reported() {
        let cfg = IpmiConfig {
            interval_secs: 0,
            timeout_secs: 0,
            sdr_cache_dir: Some("cache".into()),
            devices: vec![],
            ..IpmiConfig::default()
        };
        assert_eq!(
            cfg.problems(),
            [
                "ipmi.interval_secs: 0 is outside 1..=86400",
                "ipmi.timeout_secs: 0 is outside 1..=600",
                "ipmi.sdr_cache_dir: must be an absolute path",
                "ipmi.devices: list at least one device file (e.g. /dev/ipmi0)",
            ]
        );
    }
}
