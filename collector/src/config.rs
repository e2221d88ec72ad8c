//! The collector's TOML configuration (`serve --config FILE`). Strict parsing,
//! every problem reported at once with its key.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::cases::Policy;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address to serve HTTPS on (API, agent ingest and /metrics).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Data directory made by `caretaker-collector init`: store, CA, certificates, tokens.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    #[serde(default)]
    pub ingest: IngestConfig,
    #[serde(default)]
    pub hosts: HostsConfig,
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default)]
    pub detect: DetectConfig,
    #[serde(default)]
    pub reports: ReportsConfig,
    #[serde(default)]
    pub queue: QueueConfig,
    #[serde(default)]
    pub sinks: crate::sinks::SinksConfig,
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
    #[serde(default)]
    pub login: LoginConfig,
    #[serde(default)]
    pub enroll: EnrollConfig,
    #[serde(default)]
    pub replicas: ReplicasConfig,
    #[serde(default)]
    pub web: WebConfig,
}

/// Several collectors sharing one PostgreSQL store: how each names itself
/// and how long the work it holds (a host's detection, a fleet-wide job)
/// stays its own without a renewal. A single collector needs none of it.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicasConfig {
    /// This replica's name: the `replica` label on `/metrics` and the lease
    /// holder in the store. Unique per replica; by default the machine's
    /// host name and the listening port.
    #[serde(default)]
    pub name: Option<String>,
    /// How long a lease lasts unrenewed: a dead replica's hosts and jobs
    /// are taken over within about this long. Renewed every third of it.
    #[serde(default = "default_lease_secs")]
    pub lease_secs: u64,
}

fn default_lease_secs() -> u64 {
    15
}

impl Default for ReplicasConfig {
    fn default() -> Self {
        Self {
            name: None,
            lease_secs: default_lease_secs(),
        }
    }
}

impl ReplicasConfig {
    /// The configured name, or `HOST:PORT` of this machine and `listen`.
    pub fn name_for(&self, listen: SocketAddr) -> String {
        match &self.name {
            Some(n) => n.clone(),
            None => {
                let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                    .map(|h| h.trim().to_string())
                    .ok()
                    .filter(|h| !h.is_empty())
                    .unwrap_or_else(|| "collector".into());
                format!("{host}:{}", listen.port())
            }
        }
    }
}

/// Limits at the HTTPS edge for everything but agent ingest (which has its
/// own budget and body timeout in [`IngestConfig`]): connections, slow
/// clients, concurrent requests.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Connections open at once, TLS handshakes included; more are closed
    /// at once. Keep it below the process's file descriptor limit.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Connections one source address (an IPv6 /64) may hold at once; more
    /// are closed at once. A site behind one NAT address counts as one source.
    #[serde(default = "default_max_connections_per_source")]
    pub max_connections_per_source: usize,
    /// Requests other than agent ingest handled at once; more are answered
    /// 503 with `Retry-After`.
    #[serde(default = "default_http_max_concurrent_requests")]
    pub max_concurrent_requests: usize,
    /// Time allowed to receive a whole request body (other than ingest).
    #[serde(default = "default_http_body_timeout_secs")]
    pub body_timeout_secs: u64,
    /// Time allowed to receive a request's headers, and the longest a kept-alive
    /// connection may sit idle.
    #[serde(default = "default_header_timeout_secs")]
    pub header_timeout_secs: u64,
    /// Time allowed for the TLS handshake.
    #[serde(default = "default_tls_handshake_timeout_secs")]
    pub tls_handshake_timeout_secs: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            max_connections: default_max_connections(),
            max_connections_per_source: default_max_connections_per_source(),
            max_concurrent_requests: default_http_max_concurrent_requests(),
            body_timeout_secs: default_http_body_timeout_secs(),
            header_timeout_secs: default_header_timeout_secs(),
            tls_handshake_timeout_secs: default_tls_handshake_timeout_secs(),
        }
    }
}

/// Enrollment: how fast agents may enroll (`POST /api/v1/enroll`). Beyond
/// either limit the answer is 429 with `Retry-After`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnrollConfig {
    /// Enrollments one source address may make per minute, after its burst.
    #[serde(default = "default_enroll_per_source_per_minute")]
    pub per_source_per_minute: u32,
    /// Enrollments one source address may make at once.
    #[serde(default = "default_enroll_per_source_burst")]
    pub per_source_burst: u32,
    /// Enrollments from all sources together per minute, after the burst.
    #[serde(default = "default_enroll_per_minute")]
    pub per_minute: u32,
    /// Enrollments from all sources together at once.
    #[serde(default = "default_enroll_burst")]
    pub burst: u32,
}

impl Default for EnrollConfig {
    fn default() -> Self {
        Self {
            per_source_per_minute: default_enroll_per_source_per_minute(),
            per_source_burst: default_enroll_per_source_burst(),
            per_minute: default_enroll_per_minute(),
            burst: default_enroll_burst(),
        }
    }
}

/// Who may scrape `/metrics`: it names every customer, host, serial and
/// kernel, so by default only a Prometheus holding the data directory's
/// `metrics-token`.
/// The web pages.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebConfig {
    /// Grafana's address (`https://grafana.example`): an asset's page links
    /// to its Host detail dashboard there (`dashboards/host-detail.json`,
    /// uid `caretaker-host`). Unset: no link.
    #[serde(default)]
    pub grafana_url: Option<String>,
    /// The IANA zone the pages show staff their times in (a user's own
    /// `time_zone` in the contracts file comes first; a customer's user
    /// sees their contract's zone). Unset: UTC.
    #[serde(default)]
    pub time_zone: Option<String>,
}

impl WebConfig {
    /// The Host detail dashboard of `host` (of `customer`), when Grafana's
    /// address is set.
    pub fn grafana_host_link(&self, customer: &str, host: &str) -> Option<String> {
        let base = self.grafana_url.as_deref()?.trim_end_matches('/');
        Some(format!(
            "{base}/d/caretaker-host/?var-customer={}&var-host={}",
            crate::auth::percent_encode(customer),
            crate::auth::percent_encode(host)
        ))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// `bearer`: `Authorization: Bearer <metrics-token>` required (the file
    /// `metrics-token` in the data directory, made by `init`, read at every
    /// scrape so a new token applies at once); `none`: open to anyone who
    /// reaches the port.
    #[serde(default = "default_metrics_auth")]
    pub auth: MetricsAuth,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MetricsAuth {
    Bearer,
    None,
}

fn default_metrics_auth() -> MetricsAuth {
    MetricsAuth::Bearer
}

impl Default for MetricsConfig {
    fn default() -> Self {
        Self {
            auth: default_metrics_auth(),
        }
    }
}

fn default_max_connections() -> usize {
    4096
}
fn default_max_connections_per_source() -> usize {
    512
}
fn default_http_max_concurrent_requests() -> usize {
    256
}
fn default_http_body_timeout_secs() -> u64 {
    10
}
fn default_header_timeout_secs() -> u64 {
    10
}
fn default_tls_handshake_timeout_secs() -> u64 {
    10
}

/// Longest accepted edge timeout: past a few minutes a timeout no longer
/// protects anything.
const MAX_HTTP_TIMEOUT_SECS: u64 = 600;

impl HttpConfig {
    fn problems(&self, p: &mut Vec<String>) {
        if self.max_connections == 0 {
            p.push("http.max_connections: must be at least 1".into());
        }
        if self.max_connections_per_source == 0 || self.max_connections_per_source > self.max_connections {
            p.push("http.max_connections_per_source: must be from 1 to http.max_connections".into());
        }
        if self.max_concurrent_requests == 0 {
            p.push("http.max_concurrent_requests: must be at least 1".into());
        }
        for (name, v) in [
            ("body_timeout_secs", self.body_timeout_secs),
            ("header_timeout_secs", self.header_timeout_secs),
            ("tls_handshake_timeout_secs", self.tls_handshake_timeout_secs),
        ] {
            if v == 0 || v > MAX_HTTP_TIMEOUT_SECS {
                p.push(format!("http.{name}: must be from 1 to {MAX_HTTP_TIMEOUT_SECS}"));
            }
        }
    }
}

/// Logging in to the web pages: how password guessing is slowed and how
/// many password checks (argon2id, about 19 MB each) run at once.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginConfig {
    /// Failed logins for one user name before it is locked.
    #[serde(default = "default_user_failures_before_lock")]
    pub user_failures_before_lock: u32,
    /// Failed logins from one source address before it is locked (higher:
    /// several people may share an address).
    #[serde(default = "default_source_failures_before_lock")]
    pub source_failures_before_lock: u32,
    /// The first lock's length; each further failure doubles it, up to
    /// `max_lock_secs`.
    #[serde(default = "default_lock_secs")]
    pub lock_secs: u64,
    /// The longest lock; failures older than this are forgotten.
    #[serde(default = "default_max_lock_secs")]
    pub max_lock_secs: u64,
    /// Password checks running at once; more wait.
    #[serde(default = "default_max_concurrent_password_checks")]
    pub max_concurrent_password_checks: usize,
    /// How long a login waits for a password check slot before it is
    /// answered 429 with `Retry-After`; 0: not at all.
    #[serde(default = "default_password_check_wait_secs")]
    pub password_check_wait_secs: u64,
}

fn default_user_failures_before_lock() -> u32 {
    5
}
fn default_source_failures_before_lock() -> u32 {
    20
}
fn default_lock_secs() -> u64 {
    60
}
fn default_max_lock_secs() -> u64 {
    3600
}
fn default_max_concurrent_password_checks() -> usize {
    2
}
fn default_password_check_wait_secs() -> u64 {
    10
}

impl Default for LoginConfig {
    fn default() -> Self {
        Self {
            user_failures_before_lock: default_user_failures_before_lock(),
            source_failures_before_lock: default_source_failures_before_lock(),
            lock_secs: default_lock_secs(),
            max_lock_secs: default_max_lock_secs(),
            max_concurrent_password_checks: default_max_concurrent_password_checks(),
            password_check_wait_secs: default_password_check_wait_secs(),
        }
    }
}

impl LoginConfig {
    fn problems(&self, p: &mut Vec<String>) {
        if self.user_failures_before_lock == 0 {
            p.push("login.user_failures_before_lock: must be at least 1".into());
        }
        if self.source_failures_before_lock == 0 {
            p.push("login.source_failures_before_lock: must be at least 1".into());
        }
        if self.lock_secs == 0 || self.lock_secs > MAX_DURATION_SECS {
            p.push(format!("login.lock_secs: must be between 1 and {MAX_DURATION_SECS}"));
        }
        if self.max_lock_secs < self.lock_secs || self.max_lock_secs > MAX_DURATION_SECS {
            p.push(format!(
                "login.max_lock_secs: must be between login.lock_secs and {MAX_DURATION_SECS}"
            ));
        }
        if self.max_concurrent_password_checks == 0 || self.max_concurrent_password_checks > 64 {
            p.push("login.max_concurrent_password_checks: must be between 1 and 64".into());
        }
        if self.password_check_wait_secs > 300 {
            p.push("login.password_check_wait_secs: must be at most 300".into());
        }
    }
}

fn default_enroll_per_source_per_minute() -> u32 {
    30
}
fn default_enroll_per_source_burst() -> u32 {
    20
}
fn default_enroll_per_minute() -> u32 {
    300
}
fn default_enroll_burst() -> u32 {
    100
}

/// The engineers' queue: contracts and people, closing paperwork.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    /// The contracts file (customers, contracts, engineers, rotations,
    /// users); watched and reloaded on change. Unset: every case is
    /// advisory (no contract, no SLA) and only the API token can log in.
    #[serde(default)]
    pub contracts_file: Option<PathBuf>,
    /// A resolved case with no satisfaction record after this many days is
    /// closed with "no answer".
    #[serde(default = "default_satisfaction_wait_days")]
    pub satisfaction_wait_days: u32,
    /// The collector's address as engineers reach it
    /// (`https://caretaker.example:8443`): sinks link to the case pages.
    #[serde(default)]
    pub public_url: Option<String>,
}

fn default_satisfaction_wait_days() -> u32 {
    7
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            contracts_file: None,
            satisfaction_wait_days: default_satisfaction_wait_days(),
            public_url: None,
        }
    }
}

/// Scheduled inspection reports.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportsConfig {
    /// `monthly`: on the 1st of each month (UTC) the previous month's report
    /// of each customer is generated and stored, once; `off`: only on demand.
    #[serde(default = "default_report_schedule")]
    pub schedule: ReportSchedule,
    /// The customers to report on; unset: every customer named in an
    /// agent's `customer` label.
    #[serde(default)]
    pub customers: Option<Vec<String>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ReportSchedule {
    Monthly,
    Off,
}

fn default_report_schedule() -> ReportSchedule {
    ReportSchedule::Monthly
}

impl Default for ReportsConfig {
    fn default() -> Self {
        Self {
            schedule: default_report_schedule(),
            customers: None,
        }
    }
}

impl ReportsConfig {
    fn problems(&self, p: &mut Vec<String>) {
        if let Some(list) = &self.customers {
            let mut seen = std::collections::BTreeSet::new();
            for (i, c) in list.iter().enumerate() {
                if c.trim().is_empty() {
                    p.push(format!("reports.customers[{i}]: must not be empty"));
                } else if !seen.insert(c.as_str()) {
                    p.push(format!("reports.customers[{i}]: {c:?} is listed twice"));
                }
            }
        }
    }
}

/// Live detection: where operator rules live, how often time-driven rules
/// and the lifecycle are ticked, and the lifecycle's timing knobs.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DetectConfig {
    /// Operator rules (`*.toml`) beside the built-in pack; watched for changes.
    #[serde(default)]
    pub rules_dir: Option<PathBuf>,
    /// How often absence rules and the lifecycle timers are evaluated.
    #[serde(default = "default_tick_secs")]
    pub tick_secs: u64,
    #[serde(default = "default_min_hold_secs")]
    pub min_hold_secs: u64,
    #[serde(default = "default_quiet_period_secs")]
    pub quiet_period_secs: u64,
    #[serde(default = "default_reopen_window_secs")]
    pub reopen_window_secs: u64,
    #[serde(default = "default_flap_changes")]
    pub flap_changes: u32,
    #[serde(default = "default_flap_window_secs")]
    pub flap_window_secs: u64,
    /// More than this many new cases for one customer within
    /// `storm_window_secs` open one storm case instead; 0 turns it off.
    #[serde(default = "default_storm_cases")]
    pub storm_cases: u32,
    #[serde(default = "default_storm_window_secs")]
    pub storm_window_secs: u64,
    /// Most series (one per rule and label set) detection keeps per host:
    /// past it the host's new series are not evaluated, and are counted
    /// (`caretaker_detect_series_dropped_total{host}`), until old ones are
    /// gone. Bounds the cost of an agent whose label values change with
    /// every report.
    #[serde(default = "default_max_series_per_host")]
    pub max_series_per_host: usize,
    /// How often the hosts whose detection state changed are checkpointed
    /// into the store (and once at shutdown), so a restart does not start
    /// every forecast window over. 0: at shutdown only.
    #[serde(default = "default_checkpoint_secs")]
    pub checkpoint_secs: u64,
}

impl Default for DetectConfig {
    fn default() -> Self {
        Self {
            rules_dir: None,
            tick_secs: default_tick_secs(),
            min_hold_secs: default_min_hold_secs(),
            quiet_period_secs: default_quiet_period_secs(),
            reopen_window_secs: default_reopen_window_secs(),
            flap_changes: default_flap_changes(),
            flap_window_secs: default_flap_window_secs(),
            storm_cases: default_storm_cases(),
            storm_window_secs: default_storm_window_secs(),
            max_series_per_host: default_max_series_per_host(),
            checkpoint_secs: default_checkpoint_secs(),
        }
    }
}

/// Longest accepted lifecycle duration: a year is already far past any use,
/// and it keeps the millisecond arithmetic far from overflow.
const MAX_DURATION_SECS: u64 = 366 * 24 * 3600;

impl DetectConfig {
    /// The lifecycle policy these knobs describe.
    pub fn policy(&self) -> Policy {
        let ms = |s: u64| i64::try_from(s.min(MAX_DURATION_SECS) * 1000).unwrap_or(i64::MAX);
        Policy {
            min_hold_ms: ms(self.min_hold_secs),
            quiet_period_ms: ms(self.quiet_period_secs),
            reopen_window_ms: ms(self.reopen_window_secs),
            flap_changes: self.flap_changes,
            flap_window_ms: ms(self.flap_window_secs),
            storm_cases: self.storm_cases,
            storm_window_ms: ms(self.storm_window_secs),
        }
    }

    fn problems(&self, p: &mut Vec<String>) {
        if self.tick_secs == 0 || self.tick_secs > 3600 {
            p.push("detect.tick_secs: must be between 1 and 3600".into());
        }
        for (name, v) in [
            ("min_hold_secs", self.min_hold_secs),
            ("quiet_period_secs", self.quiet_period_secs),
            ("reopen_window_secs", self.reopen_window_secs),
            ("storm_window_secs", self.storm_window_secs),
        ] {
            if v > MAX_DURATION_SECS {
                p.push(format!("detect.{name}: must be at most {MAX_DURATION_SECS}"));
            }
        }
        if self.flap_changes == 0 {
            p.push("detect.flap_changes: must be at least 1".into());
        }
        if self.flap_window_secs == 0 || self.flap_window_secs > MAX_DURATION_SECS {
            p.push(format!(
                "detect.flap_window_secs: must be between 1 and {MAX_DURATION_SECS}"
            ));
        }
        if let Some(d) = &self.rules_dir {
            if !d.is_dir() {
                p.push(format!("detect.rules_dir: {} is not a directory", d.display()));
            }
        }
        if self.checkpoint_secs > 86_400 {
            p.push("detect.checkpoint_secs: must be at most 86400".into());
        }
        if self.max_series_per_host == 0 || self.max_series_per_host > MAX_SERIES_PER_HOST {
            p.push(format!(
                "detect.max_series_per_host: must be between 1 and {MAX_SERIES_PER_HOST}"
            ));
        }
    }
}

/// Highest accepted `max_series_per_host`: far past any real host, still a bound.
const MAX_SERIES_PER_HOST: usize = 10_000_000;

fn default_max_series_per_host() -> usize {
    crate::detect::MAX_SERIES_PER_HOST
}

fn default_checkpoint_secs() -> u64 {
    300
}

fn default_tick_secs() -> u64 {
    15
}
fn default_min_hold_secs() -> u64 {
    (Policy::default().min_hold_ms / 1000) as u64
}
fn default_quiet_period_secs() -> u64 {
    (Policy::default().quiet_period_ms / 1000) as u64
}
fn default_reopen_window_secs() -> u64 {
    (Policy::default().reopen_window_ms / 1000) as u64
}
fn default_flap_changes() -> u32 {
    Policy::default().flap_changes
}
fn default_flap_window_secs() -> u64 {
    (Policy::default().flap_window_ms / 1000) as u64
}
fn default_storm_cases() -> u32 {
    Policy::default().storm_cases
}
fn default_storm_window_secs() -> u64 {
    (Policy::default().storm_window_ms / 1000) as u64
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    /// Largest request body accepted, as sent (compressed).
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Largest report accepted once decompressed (guards against gzip bombs).
    #[serde(default = "default_max_decompressed_bytes")]
    pub max_decompressed_bytes: usize,
    /// Reports handled at once: ingest's own budget, apart from every other
    /// route's (`http.max_concurrent_requests`), so agents keep flowing while
    /// other routes are flooded. More are answered 503 with `Retry-After`.
    #[serde(default = "default_max_concurrent_requests")]
    pub max_concurrent_requests: usize,
    /// Time allowed to receive one report's whole body.
    #[serde(default = "default_body_timeout_secs")]
    pub body_timeout_secs: u64,
    /// An agent clock off by more than this is not believed: its report is
    /// dated at receipt and the host gets an `agent_clock_skew` finding.
    #[serde(default = "default_max_clock_skew_secs")]
    pub max_clock_skew_secs: u64,
}

impl IngestConfig {
    /// [`IngestConfig::max_clock_skew_secs`] in ms.
    pub fn max_clock_skew_ms(&self) -> i64 {
        i64::try_from(self.max_clock_skew_secs.min(MAX_DURATION_SECS) * 1000).unwrap_or(i64::MAX)
    }
}

impl Default for IngestConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: default_max_body_bytes(),
            max_decompressed_bytes: default_max_decompressed_bytes(),
            max_concurrent_requests: default_max_concurrent_requests(),
            body_timeout_secs: default_body_timeout_secs(),
            max_clock_skew_secs: default_max_clock_skew_secs(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostsConfig {
    /// A host counts as down (`caretaker_host_up` 0) after this many missed intervals.
    #[serde(default = "default_down_after_intervals")]
    pub down_after_intervals: u32,
}

impl Default for HostsConfig {
    fn default() -> Self {
        Self {
            down_after_intervals: default_down_after_intervals(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Synchronous {
    /// fsync at every commit: survives power loss.
    Full,
    /// fsync at checkpoints: survives a crash of the collector, not of the machine.
    Normal,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// SQLite `synchronous` setting.
    #[serde(default = "default_synchronous")]
    pub synchronous: Synchronous,
    /// How long the per-report log (agent, sequence, times) is kept.
    #[serde(default = "default_report_log_retention_hours")]
    pub report_log_retention_hours: u32,
    /// How long raw report bodies are kept for `export-reports`; 0 keeps none.
    #[serde(default = "default_raw_report_retention_hours")]
    pub raw_report_retention_hours: u32,
    /// How often the running collector runs `PRAGMA quick_check` on the store
    /// (it also does at start); the result is `caretaker_store_check_ok`.
    #[serde(default = "default_check_interval_secs")]
    pub check_interval_secs: u64,
    /// Read connections the API and the background gauges share: this many
    /// reads run side by side (a long report beside the queue page), more
    /// wait for a free one. WAL mode lets them all read beside the writer.
    #[serde(default = "default_readers")]
    pub readers: usize,
    /// Where the store lives: `sqlite` (the default, a file in the data
    /// directory) or `postgresql` (a server named by `url`).
    #[serde(default)]
    pub backend: Option<Backend>,
    /// The PostgreSQL server and database, as a libpq URL or key=value
    /// string: `postgres://caretaker@db.example:5432/caretaker`. Setting it
    /// implies `backend = "postgresql"`. The password goes in
    /// `password_file`, never here.
    #[serde(default)]
    pub url: Option<String>,
    /// A file holding the PostgreSQL password (its first line), readable by
    /// the collector's user only.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
}

/// The database the store runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Sqlite,
    Postgresql,
}

impl StoreConfig {
    fn problems(&self, p: &mut Vec<String>) {
        match (self.backend(), &self.url) {
            (Backend::Sqlite, Some(_)) => {
                p.push("store.url: names a PostgreSQL server, but store.backend is \"sqlite\"".into())
            }
            (Backend::Sqlite, None) if self.password_file.is_some() => {
                p.push("store.password_file: only used with backend = \"postgresql\"".into())
            }
            (Backend::Postgresql, None) => {
                p.push("store.url: required with backend = \"postgresql\" (postgres://user@host:port/database)".into())
            }
            (Backend::Postgresql, Some(url)) => {
                if let Some(problem) = crate::store::postgres::url_problem(url) {
                    p.push(format!("store.url: {problem}"));
                }
            }
            (Backend::Sqlite, None) => {}
        }
    }

    /// The backend in effect: the one named, else PostgreSQL when a URL is
    /// given, else SQLite.
    pub fn backend(&self) -> Backend {
        match (self.backend, &self.url) {
            (Some(b), _) => b,
            (None, Some(_)) => Backend::Postgresql,
            (None, None) => Backend::Sqlite,
        }
    }
}

fn default_readers() -> usize {
    4
}

/// More read connections than this would only add memory: two cores' worth of
/// reads plus waiting ones is far below it.
pub const MAX_READERS: usize = 64;

fn default_check_interval_secs() -> u64 {
    6 * 3600
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            synchronous: default_synchronous(),
            report_log_retention_hours: default_report_log_retention_hours(),
            raw_report_retention_hours: default_raw_report_retention_hours(),
            check_interval_secs: default_check_interval_secs(),
            readers: default_readers(),
            backend: None,
            url: None,
            password_file: None,
        }
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8443))
}
fn default_data_dir() -> PathBuf {
    PathBuf::from("/var/lib/caretaker-collector")
}
fn default_max_body_bytes() -> usize {
    1024 * 1024
}
fn default_max_decompressed_bytes() -> usize {
    16 * 1024 * 1024
}
fn default_max_concurrent_requests() -> usize {
    1024
}
fn default_body_timeout_secs() -> u64 {
    30
}
/// Five minutes: NTP keeps clocks within milliseconds; minutes off means no
/// time sync at all.
fn default_max_clock_skew_secs() -> u64 {
    300
}
fn default_down_after_intervals() -> u32 {
    3
}
fn default_synchronous() -> Synchronous {
    Synchronous::Full
}
fn default_report_log_retention_hours() -> u32 {
    24
}
/// A week: enough to try a new rule on the last few days' traffic.
fn default_raw_report_retention_hours() -> u32 {
    168
}
/// A year of raw reports is already many gigabytes for a modest fleet; longer
/// is more likely a typo (minutes or days given as hours) than a wish.
pub const MAX_RAW_REPORT_RETENTION_HOURS: u32 = 24 * 366;

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            data_dir: default_data_dir(),
            ingest: IngestConfig::default(),
            hosts: HostsConfig::default(),
            store: StoreConfig::default(),
            detect: DetectConfig::default(),
            reports: ReportsConfig::default(),
            queue: QueueConfig::default(),
            sinks: crate::sinks::SinksConfig::default(),
            http: HttpConfig::default(),
            metrics: MetricsConfig::default(),
            login: LoginConfig::default(),
            enroll: EnrollConfig::default(),
            replicas: ReplicasConfig::default(),
            web: WebConfig::default(),
        }
    }
}

use caretaker_shared::config::Checked;
pub use caretaker_shared::config::ConfigError;

impl Config {
    pub fn load(file: &Path) -> Result<Self, ConfigError> {
        caretaker_shared::config::load(file)
    }

    pub fn parse(text: &str, file: &Path) -> Result<Self, ConfigError> {
        caretaker_shared::config::parse(text, file)
    }
}

impl Checked for Config {
    fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if self.ingest.max_body_bytes < 1024 {
            p.push("ingest.max_body_bytes: must be at least 1024".into());
        }
        if self.ingest.max_decompressed_bytes < self.ingest.max_body_bytes {
            p.push("ingest.max_decompressed_bytes: must be at least ingest.max_body_bytes".into());
        }
        if self.ingest.max_concurrent_requests == 0 {
            p.push("ingest.max_concurrent_requests: must be at least 1".into());
        }
        if self.ingest.body_timeout_secs == 0 {
            p.push("ingest.body_timeout_secs: must be at least 1".into());
        }
        if self.ingest.max_clock_skew_secs == 0 || self.ingest.max_clock_skew_secs > MAX_DURATION_SECS {
            p.push(format!(
                "ingest.max_clock_skew_secs: must be between 1 and {MAX_DURATION_SECS}"
            ));
        }
        if self.hosts.down_after_intervals == 0 {
            p.push("hosts.down_after_intervals: must be at least 1".into());
        }
        if self.store.report_log_retention_hours == 0 {
            p.push("store.report_log_retention_hours: must be at least 1".into());
        }
        if self.store.raw_report_retention_hours > MAX_RAW_REPORT_RETENTION_HOURS {
            p.push(format!(
                "store.raw_report_retention_hours: must be from 0 (keep none) to {MAX_RAW_REPORT_RETENTION_HOURS}"
            ));
        }
        if !(60..=7 * 86_400).contains(&self.store.check_interval_secs) {
            p.push("store.check_interval_secs: must be from 60 to 604800 (a week)".into());
        }
        if !(1..=MAX_READERS).contains(&self.store.readers) {
            p.push(format!("store.readers: must be from 1 to {MAX_READERS}"));
        }
        self.store.problems(&mut p);
        self.detect.problems(&mut p);
        self.reports.problems(&mut p);
        if self.queue.satisfaction_wait_days == 0 {
            p.push("queue.satisfaction_wait_days: must be at least 1".into());
        }
        if let Some(u) = &self.queue.public_url
            && !(u.starts_with("https://") || u.starts_with("http://"))
        {
            p.push(format!("queue.public_url: {u:?} is not an http(s) URL"));
        }
        if let Some(u) = &self.web.grafana_url
            && !(u.starts_with("https://") || u.starts_with("http://"))
        {
            p.push(format!("web.grafana_url: {u:?} is not an http(s) URL"));
        }
        if let Some(tz) = &self.web.time_zone
            && let Err(e) = jiff::tz::TimeZone::get(tz)
        {
            p.push(format!(
                "web.time_zone: {tz:?} is not a known time zone ({e}); use an IANA name like Europe/Berlin"
            ));
        }
        self.sinks.problems(&mut p);
        self.http.problems(&mut p);
        self.login.problems(&mut p);
        if !(3..=MAX_DURATION_SECS).contains(&self.replicas.lease_secs) {
            p.push(format!(
                "replicas.lease_secs: must be between 3 and {MAX_DURATION_SECS}"
            ));
        }
        if self
            .replicas
            .name
            .as_ref()
            .is_some_and(|n| n.trim().is_empty() || n.contains('/'))
        {
            p.push("replicas.name: must not be empty or contain '/'".into());
        }
        for (key, v) in [
            ("enroll.per_source_per_minute", self.enroll.per_source_per_minute),
            ("enroll.per_source_burst", self.enroll.per_source_burst),
            ("enroll.per_minute", self.enroll.per_minute),
            ("enroll.burst", self.enroll.burst),
        ] {
            if v == 0 {
                p.push(format!("{key}: must be at least 1"));
            }
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_errors() {
        let c = Config::parse("", Path::new("c.toml"));
        assert!(c.is_ok_and(|c| c.hosts.down_after_intervals == 3
            && c.store.synchronous == Synchronous::Full
            && c.store.raw_report_retention_hours == 168
            && c.store.check_interval_secs == 21_600
            && c.store.readers == 4));
        let e = Config::parse(
            "[hosts]\ndown_after_intervals = 0\n[ingest]\nmax_body_bytes = 10\n",
            Path::new("c.toml"),
        )
        .err()
        .map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some(
                "c.toml: 2 problem(s):\n  ingest.max_body_bytes: must be at least 1024\n  hosts.down_after_intervals: must be at least 1"
            )
        );
        let e = Config::parse(
            "[detect]\ntick_secs = 0\nflap_changes = 0\nrules_dir = \"/nonexistent/rules\"\n",
            Path::new("c.toml"),
        )
        .err()
        .map(|e| e.to_string());
        assert!(
            e.as_deref().is_some_and(|e| e.contains("3 problem(s)")
                && e.contains("detect.tick_secs")
                && e.contains("detect.flap_changes")
                && e.contains("detect.rules_dir")),
            "{e:?}"
        );
        let c = Config::parse("[detect]\nmin_hold_secs = 10\n", Path::new("c.toml"));
        assert!(c.is_ok_and(|c| c.detect.policy().min_hold_ms == 10_000
            && c.detect.policy().quiet_period_ms == Policy::default().quiet_period_ms));
        let e = Config::parse(
            "[queue]\nsatisfaction_wait_days = 0\npublic_url = \"caretaker.example\"\n",
            Path::new("c.toml"),
        )
        .err()
        .map(|e| e.to_string());
        assert!(
            e.as_deref()
                .is_some_and(|e| e.contains("queue.satisfaction_wait_days: must be at least 1")
                    && e.contains("queue.public_url: \"caretaker.example\" is not an http(s) URL")),
            "{e:?}"
        );
        let e = Config::parse("[web]\ngrafana_url = \"grafana:3000\"\n", Path::new("c.toml"))
            .err()
            .map(|e| e.to_string());
        assert!(
            e.as_deref()
                .is_some_and(|e| e.contains("web.grafana_url: \"grafana:3000\" is not an http(s) URL")),
            "{e:?}"
        );
        let e = Config::parse("[web]\ntime_zone = \"Mars/Olympus\"\n", Path::new("c.toml"))
            .err()
            .map(|e| e.to_string());
        assert!(
            e.as_deref()
                .is_some_and(|e| e.contains("web.time_zone: \"Mars/Olympus\" is not a known time zone")),
            "{e:?}"
        );
        let c = Config::parse("[web]\ngrafana_url = \"https://g.example/\"\n", Path::new("c.toml"));
        assert_eq!(
            c.ok()
                .and_then(|c| c.web.grafana_host_link("acme corp", "db01"))
                .as_deref(),
            Some("https://g.example/d/caretaker-host/?var-customer=acme%20corp&var-host=db01")
        );
        let e = Config::parse("[store]\nsynchronous = \"sometimes\"\n", Path::new("c.toml"))
            .err()
            .map(|e| e.to_string());
        assert!(
            e.as_deref()
                .is_some_and(|e| e.contains("line 2") && e.contains("unknown variant `sometimes`")),
            "{e:?}"
        );
    }

    #[test]
    fn check_config_lists_every_unknown_key_not_only_the_first() {
        let e = Config::parse(
            "lissen = \"127.0.0.1:1\"\n[ingest]\nmax_body_byte = 1\nmax_clock_skew_secs = 0\n[store]\nsynchronous = \"sometimes\"\n[hosts]\ndown_after_interval = 3\n",
            Path::new("c.toml"),
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        for want in [
            "c.toml: 5 problem(s):\n",
            "lissen: unknown field `lissen`",
            "(line 1)",
            "ingest.max_body_byte: unknown field `max_body_byte`",
            "(line 3)",
            "store.synchronous: unknown variant `sometimes`",
            "(line 6)",
            "hosts.down_after_interval: unknown field `down_after_interval`",
            "(line 8)",
            "ingest.max_clock_skew_secs: must be between 1 and",
        ] {
            assert!(e.contains(want), "{want}: {e}");
        }
        let c = Config::parse("[ingest]\nmax_clock_skew_secs = 60\n", Path::new("c.toml"));
        assert!(c.is_ok_and(|c| c.ingest.max_clock_skew_ms() == 60_000));
        assert_eq!(Config::default().ingest.max_clock_skew_secs, 300);
    }

    #[test]
    fn reports_schedule_and_customers() {
        let c = Config::parse("", Path::new("c.toml"));
        assert!(c.is_ok_and(|c| c.reports.schedule == ReportSchedule::Monthly && c.reports.customers.is_none()));
        let c = Config::parse(
            "[reports]\nschedule = \"off\"\ncustomers = [\"acme\"]\n",
            Path::new("c.toml"),
        );
        assert!(c.is_ok_and(|c| c.reports.schedule == ReportSchedule::Off
            && c.reports.customers.as_deref() == Some(&["acme".to_string()][..])));
        let e = Config::parse(
            "[reports]\ncustomers = [\"acme\", \"\", \"acme\"]\n",
            Path::new("c.toml"),
        )
        .err()
        .map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some(
                "c.toml: 2 problem(s):\n  reports.customers[1]: must not be empty\n  reports.customers[2]: \"acme\" is listed twice"
            )
        );
        let e = Config::parse("[reports]\nschedule = \"weekly\"\n", Path::new("c.toml"))
            .err()
            .map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.contains("line 2") && e.contains("unknown variant `weekly`")));
        let e = Config::parse("[reports]\nshedule = \"off\"\n", Path::new("c.toml"))
            .err()
            .map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.contains("unknown field `shedule`")));
    }

    #[test]
    fn the_store_backend_comes_from_backend_or_url_and_a_wrong_pair_is_named() {
        let sqlite = Config::parse("", Path::new("c.toml")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(sqlite.store.backend(), Backend::Sqlite);
        let pg = Config::parse(
            "[store]\nurl = \"postgres://caretaker@db:5432/caretaker\"\npassword_file = \"/etc/pw\"\n",
            Path::new("c.toml"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(pg.store.backend(), Backend::Postgresql);
        let problem = |text: &str| {
            Config::parse(text, Path::new("c.toml"))
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(problem("[store]\nbackend = \"postgresql\"\n").contains("store.url: required"));
        assert!(
            problem("[store]\nbackend = \"sqlite\"\nurl = \"postgres://u@h/d\"\n")
                .contains("store.url: names a PostgreSQL server, but store.backend is \"sqlite\"")
        );
        assert!(problem("[store]\nurl = \"postgres://u:secret@h/d\"\n").contains("put it in store.password_file"));
        assert!(problem("[store]\nurl = \"postgres://u@h\"\n").contains("names no database"));
        assert!(
            problem("[store]\nurl = \"postgres://u@h:notaport/d\"\n").contains("not a PostgreSQL connection string")
        );
        assert!(problem("[store]\nbackend = \"mysql\"\n").contains("line 2"));
    }

    #[test]
    fn raw_report_retention_range() {
        let c = Config::parse("[store]\nraw_report_retention_hours = 0\n", Path::new("c.toml"));
        assert!(c.is_ok_and(|c| c.store.raw_report_retention_hours == 0), "0 keeps none");
        let e = Config::parse(
            "[store]\nraw_report_retention_hours = 9000\nreport_log_retention_hours = 0\n",
            Path::new("c.toml"),
        )
        .err()
        .map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some(
                "c.toml: 2 problem(s):\n  store.report_log_retention_hours: must be at least 1\n  store.raw_report_retention_hours: must be from 0 (keep none) to 8784"
            )
        );
        let e = Config::parse("[store]\nraw_report_retention_hours = -1\n", Path::new("c.toml"))
            .err()
            .map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.contains("raw_report_retention_hours") || e.contains("line 2")));
    }

    #[test]
    fn store_readers_come_from_the_config_and_zero_is_refused() {
        let c = Config::parse("[store]\nreaders = 2\n", Path::new("c.toml"));
        assert!(c.is_ok_and(|c| c.store.readers == 2));
        let e = Config::parse("[store]\nreaders = 0\n", Path::new("c.toml"))
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some("c.toml: 1 problem(s):\n  store.readers: must be from 1 to 64")
        );
        let e = Config::parse("[store]\nreaders = 65\n", Path::new("c.toml"))
            .err()
            .map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.contains("store.readers: must be from 1 to 64")));
        let e = Config::parse("[store]\nreaders = -1\n", Path::new("c.toml"))
            .err()
            .map(|e| e.to_string());
        assert!(
            e.is_some_and(|e| e.contains("readers")),
            "a negative count names the field"
        );
    }

    #[test]
    fn http_limits_and_their_errors() {
        let c = Config::parse("", Path::new("c.toml"));
        assert!(c.is_ok_and(|c| c.http.max_connections == 4096
            && c.http.max_connections_per_source == 512
            && c.http.body_timeout_secs == 10));
        let e = Config::parse(
            "[http]\nmax_connections = 10\nmax_connections_per_source = 11\nmax_concurrent_requests = 0\nbody_timeout_secs = 0\ntls_handshake_timeout_secs = 601\n",
            Path::new("c.toml"),
        )
        .err()
        .map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some(
                "c.toml: 4 problem(s):\n  http.max_connections_per_source: must be from 1 to http.max_connections\n  http.max_concurrent_requests: must be at least 1\n  http.body_timeout_secs: must be from 1 to 600\n  http.tls_handshake_timeout_secs: must be from 1 to 600"
            )
        );
    }

    #[test]
    fn metrics_auth_is_on_unless_turned_off_and_login_limits_are_checked() {
        let c = Config::parse("", Path::new("c.toml"));
        assert!(c.is_ok_and(|c| c.metrics.auth == MetricsAuth::Bearer && c.login.max_concurrent_password_checks == 2));
        let c = Config::parse("[metrics]\nauth = \"none\"\n", Path::new("c.toml"));
        assert!(c.is_ok_and(|c| c.metrics.auth == MetricsAuth::None));
        let e = Config::parse("[metrics]\nauth = \"open\"\n", Path::new("c.toml"))
            .err()
            .map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.contains("unknown variant `open`")));
        let e = Config::parse(
            "[login]\nuser_failures_before_lock = 0\nlock_secs = 120\nmax_lock_secs = 60\nmax_concurrent_password_checks = 0\n",
            Path::new("c.toml"),
        )
        .err()
        .map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some(
                "c.toml: 3 problem(s):\n  login.user_failures_before_lock: must be at least 1\n  login.max_lock_secs: must be between login.lock_secs and 31622400\n  login.max_concurrent_password_checks: must be between 1 and 64"
            )
        );
    }
}
