//! The agent's TOML configuration. Parsing is strict (unknown keys are errors),
//! and validation reports every problem at once, each with its key, so
//! `caretaker-agent check-config` can be used as `ExecStartPre`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::collectors;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Base URL of the collector, e.g. `https://collector.example:8443`. Must be https.
    /// Give this or `collector_urls`, not both; read them through [`Config::collector_urls`].
    #[serde(default)]
    pub collector_url: Option<String>,
    /// Base URLs of the collector's replicas, in the order the agent tries
    /// them: it stays with one and moves to the next when it cannot be
    /// reached or answers 5xx (see [`crate::replicas`]).
    #[serde(default)]
    pub collector_urls: Option<Vec<String>>,
    /// The collector's CA certificate (PEM). Only servers signed by it are trusted.
    pub ca_file: PathBuf,
    /// Where the agent keeps its credential, sequence state and spool.
    #[serde(default = "default_state_dir")]
    pub state_dir: PathBuf,
    /// Enrollment token; `run` enrolls with it when no credential is stored yet.
    #[serde(default)]
    pub enrollment_token: Option<String>,
    /// Seconds between two reports.
    #[serde(default = "default_interval_secs")]
    pub interval_secs: u32,
    /// Name shown as the `host` label; the OS host name when unset.
    #[serde(default)]
    pub host_name: Option<String>,
    /// Operator labels sent with every report: `customer`, `site`, `role`, ...
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Collectors to run; all of them when unset.
    #[serde(default = "default_collectors")]
    pub collectors: Vec<String>,
    #[serde(default)]
    pub spool: SpoolConfig,
    #[serde(default)]
    pub push: PushConfig,
    /// Disk health through smartctl (the `smart` collector).
    #[serde(default)]
    pub smart: crate::smart::SmartConfig,
    /// The BMC's sensors and event log over IPMI (the `ipmi` collector).
    #[serde(default)]
    pub ipmi: crate::ipmi::IpmiConfig,
    /// Hardware RAID controllers through storcli/perccli/ssacli (the `raid` collector).
    #[serde(default)]
    pub raid: crate::raid::RaidConfig,
    /// Database servers to watch (the `databases` collector), each `[[databases]]`.
    #[serde(default)]
    pub databases: Vec<crate::databases::DbTarget>,
    /// Root of the proc filesystem (tests point it at captured trees).
    #[serde(default = "default_proc_root")]
    pub proc_root: PathBuf,
    /// Root of the sysfs filesystem (tests point it at captured trees).
    #[serde(default = "default_sys_root")]
    pub sys_root: PathBuf,
    /// Root of the runtime state directory, where flag files such as `reboot-required` live.
    #[serde(default = "default_run_root")]
    pub run_root: PathBuf,
    /// Directory holding the installed kernels (`vmlinuz-<release>`).
    #[serde(default = "default_boot_root")]
    pub boot_root: PathBuf,
    /// The `systemctl` program used to list failed units; a bare name is looked up in `PATH`.
    #[serde(default = "default_systemctl_path")]
    pub systemctl_path: PathBuf,
    /// The `timedatectl` program used to read the clock's synchronisation; a bare name is looked up in `PATH`.
    #[serde(default = "default_timedatectl_path")]
    pub timedatectl_path: PathBuf,
    /// Seconds an external command (`systemctl`, `timedatectl`, the inventory's
    /// `--version` and `dmidecode` probes) may run before it is killed.
    #[serde(default = "default_command_timeout_secs")]
    pub command_timeout_secs: u64,
    /// Root of `/etc`, read for the inventory (`os-release`, `machine-id`).
    #[serde(default = "default_etc_root")]
    pub etc_root: PathBuf,
    /// How the inventory is gathered.
    #[serde(default)]
    pub inventory: InventoryConfig,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryConfig {
    /// Run found database servers with `--version` to learn their versions.
    #[serde(default = "default_true")]
    pub probe_versions: bool,
    /// Run `dmidecode -t 17` (when installed) for the memory modules.
    #[serde(default = "default_true")]
    pub dmidecode: bool,
}

impl Default for InventoryConfig {
    fn default() -> Self {
        Self {
            probe_versions: default_true(),
            dmidecode: default_true(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpoolConfig {
    /// Most reports kept while the collector is unreachable; the oldest are dropped (and counted) beyond it.
    #[serde(default = "default_spool_max_reports")]
    pub max_reports: usize,
    /// Most bytes kept on disk for unsent reports.
    #[serde(default = "default_spool_max_bytes")]
    pub max_bytes: u64,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        Self {
            max_reports: default_spool_max_reports(),
            max_bytes: default_spool_max_bytes(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushConfig {
    /// Time allowed for one request to the collector.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// First wait after a failed send; doubles (with jitter) up to `max_backoff_secs`.
    #[serde(default = "default_min_backoff_ms")]
    pub min_backoff_ms: u64,
    /// Longest wait between two attempts.
    #[serde(default = "default_max_backoff_secs")]
    pub max_backoff_secs: u64,
}

impl Default for PushConfig {
    fn default() -> Self {
        Self {
            timeout_secs: default_timeout_secs(),
            min_backoff_ms: default_min_backoff_ms(),
            max_backoff_secs: default_max_backoff_secs(),
        }
    }
}

fn default_state_dir() -> PathBuf {
    PathBuf::from("/var/lib/caretaker")
}
fn default_interval_secs() -> u32 {
    15
}
fn default_collectors() -> Vec<String> {
    collectors::ALL.iter().map(|s| s.to_string()).collect()
}
fn default_spool_max_reports() -> usize {
    10_000
}
fn default_spool_max_bytes() -> u64 {
    64 * 1024 * 1024
}
fn default_timeout_secs() -> u64 {
    10
}
fn default_min_backoff_ms() -> u64 {
    500
}
fn default_max_backoff_secs() -> u64 {
    60
}
fn default_proc_root() -> PathBuf {
    PathBuf::from("/proc")
}
fn default_sys_root() -> PathBuf {
    PathBuf::from("/sys")
}
fn default_run_root() -> PathBuf {
    PathBuf::from("/run")
}
fn default_boot_root() -> PathBuf {
    PathBuf::from("/boot")
}
fn default_systemctl_path() -> PathBuf {
    PathBuf::from("systemctl")
}
fn default_timedatectl_path() -> PathBuf {
    PathBuf::from("timedatectl")
}
fn default_command_timeout_secs() -> u64 {
    5
}
fn default_etc_root() -> PathBuf {
    PathBuf::from("/etc")
}
fn default_true() -> bool {
    true
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

    /// The collector's URLs, in order: `collector_urls`, or `collector_url`
    /// as a list of one. Empty only for a config that failed its check.
    pub fn collector_urls(&self) -> &[String] {
        match (&self.collector_urls, &self.collector_url) {
            (Some(list), _) => list,
            (None, Some(one)) => std::slice::from_ref(one),
            (None, None) => &[],
        }
    }

    /// The `host` label value.
    pub fn host(&self) -> String {
        self.host_name
            .clone()
            .or_else(sysinfo::System::host_name)
            .unwrap_or_else(|| "unknown".into())
    }
}

impl Checked for Config {
    fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        match (&self.collector_url, &self.collector_urls) {
            (Some(_), Some(_)) => p.push(
                "collector_urls: give either collector_url (one collector) or collector_urls (its replicas), not both"
                    .into(),
            ),
            (None, None) => p.push(
                "collector_url: missing; give collector_url (one collector) or collector_urls (its replicas)".into(),
            ),
            (Some(url), None) => p.extend(url_problem("collector_url", url)),
            (None, Some(urls)) if urls.is_empty() => {
                p.push("collector_urls: must list at least one URL".into());
            }
            (None, Some(urls)) => {
                for (i, url) in urls.iter().enumerate() {
                    let key = format!("collector_urls[{i}]");
                    if let Some(problem) = url_problem(&key, url) {
                        p.push(problem);
                    } else if urls[..i].iter().any(|o| same_url(o, url)) {
                        // The same replica twice would be tried twice in a round.
                        p.push(format!("{key}: {url:?} is listed twice"));
                    }
                }
            }
        }
        if !(1..=86_400).contains(&self.interval_secs) {
            p.push(format!("interval_secs: {} is outside 1..=86400", self.interval_secs));
        }
        if self.host_name.as_deref().is_some_and(|h| h.is_empty() || h.len() > 256) {
            p.push("host_name: must be 1 to 256 bytes".into());
        }
        for (k, v) in &self.labels {
            if !caretaker_shared::wire::is_label_name(k) {
                p.push(format!("labels.{k}: not a valid label name ([a-zA-Z_][a-zA-Z0-9_]*)"));
            } else if k == "host" {
                p.push("labels.host: reserved; set host_name instead".into());
            }
            if v.len() > 256 {
                p.push(format!("labels.{k}: value longer than 256 bytes"));
            }
        }
        for c in &self.collectors {
            if !collectors::ALL.contains(&c.as_str()) {
                p.push(format!(
                    "collectors: unknown collector {c:?} (known: {})",
                    collectors::ALL.join(", ")
                ));
            }
        }
        if !(1..=60).contains(&self.command_timeout_secs) {
            p.push(format!(
                "command_timeout_secs: {} is outside 1..=60",
                self.command_timeout_secs
            ));
        }
        if self.spool.max_reports == 0 {
            p.push("spool.max_reports: must be at least 1".into());
        }
        if self.spool.max_bytes < 64 * 1024 {
            p.push("spool.max_bytes: must be at least 65536".into());
        }
        if self.push.timeout_secs == 0 {
            p.push("push.timeout_secs: must be at least 1".into());
        }
        if self.push.min_backoff_ms == 0 || self.push.min_backoff_ms > self.push.max_backoff_secs.saturating_mul(1000) {
            p.push("push.min_backoff_ms: must be at least 1 and at most push.max_backoff_secs".into());
        }
        p.extend(self.smart.problems());
        p.extend(self.ipmi.problems());
        p.extend(self.raid.problems());
        for (i, d) in self.databases.iter().enumerate() {
            p.extend(d.problems(&format!("databases[{i}]")));
            if self.databases[..i].iter().any(|o| o.name == d.name) {
                p.push(format!("databases[{i}].name: {:?} is used twice", d.name));
            }
        }
        p
    }
}

/// What is wrong with a collector URL under `key`, if anything.
fn url_problem(key: &str, url: &str) -> Option<String> {
    match reqwest::Url::parse(url) {
        Ok(u) if u.scheme() == "https" && u.host().is_some() => None,
        Ok(_) => Some(format!("{key}: {url:?} must be an https:// URL with a host")),
        Err(e) => Some(format!("{key}: {url:?} is not a URL: {e}")),
    }
}

/// Whether two collector URLs name the same place: `https://a:443/` is `https://a`.
fn same_url(a: &str, b: &str) -> bool {
    match (reqwest::Url::parse(a), reqwest::Url::parse(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<Config, String> {
        Config::parse(s, Path::new("agent.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let c = parse("collector_url = \"https://127.0.0.1:8443\"\nca_file = \"/etc/caretaker/ca.pem\"\n");
        let c = c.map_err(|e| panic!("{e}")).unwrap_or_else(|_| unreachable!());
        assert_eq!(c.interval_secs, 15);
        assert_eq!(c.collectors.len(), collectors::ALL.len());
        assert_eq!(c.spool.max_reports, 10_000);
        assert_eq!(c.sys_root, PathBuf::from("/sys"));
        assert_eq!(c.etc_root, PathBuf::from("/etc"));
        assert!(c.inventory.probe_versions && c.inventory.dmidecode);
        assert_eq!(c.command_timeout_secs, 5);
    }

    #[test]
    fn inventory_settings_are_read_and_checked() {
        let c = parse(
            "collector_url = \"https://x\"\nca_file = \"/c\"\nsys_root = \"/t/sys\"\n[inventory]\nprobe_versions = false\n",
        );
        let c = c.map_err(|e| panic!("{e}")).unwrap_or_else(|_| unreachable!());
        assert_eq!(c.sys_root, PathBuf::from("/t/sys"));
        assert!(!c.inventory.probe_versions);
        let e = parse("collector_url = \"https://x\"\nca_file = \"/c\"\ncommand_timeout_secs = 0\n")
            .err()
            .unwrap_or_default();
        assert!(e.contains("command_timeout_secs: 0 is outside"), "{e}");
        let e = parse("collector_url = \"https://x\"\nca_file = \"/c\"\n[inventory]\nversions = false\n")
            .err()
            .unwrap_or_default();
        assert!(e.contains("unknown field `versions`"), "{e}");
    }

    #[test]
    fn unknown_key_is_rejected_with_its_line() {
        let e = parse("collector_url = \"https://x\"\nca_file = \"/c\"\nintervall_secs = 5\n")
            .err()
            .unwrap_or_default();
        assert!(
            e.starts_with("agent.toml: 1 problem(s):\n  intervall_secs: unknown field `intervall_secs`"),
            "{e}"
        );
        assert!(e.ends_with("(line 3)"), "{e}");
    }

    #[test]
    fn check_config_lists_every_unknown_key_not_only_the_first() {
        let e = parse(
            "collector_url = \"http://x\"\nca_file = \"/c\"\nintervall_secs = 5\n[spool]\nmax_report = 3\n[inventory]\nversions = false\n",
        )
        .err()
        .unwrap_or_default();
        assert!(e.starts_with("agent.toml: 4 problem(s):\n"), "{e}");
        for want in [
            "intervall_secs: unknown field `intervall_secs`",
            "(line 3)",
            "spool.max_report: unknown field `max_report`",
            "(line 5)",
            "inventory.versions: unknown field `versions`",
            "(line 7)",
            // And what is wrong with the keys that are known.
            "collector_url:",
        ] {
            assert!(e.contains(want), "{want}: {e}");
        }
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let e = parse(
            "collector_url = \"http://x\"\nca_file = \"/c\"\ninterval_secs = 0\ncollectors = [\"cpu\", \"gpu\"]\n[labels]\nhost = \"x\"\n",
        )
        .err()
        .unwrap_or_default();
        assert_eq!(
            e,
            format!(
                "agent.toml: 4 problem(s):\n  collector_url: \"http://x\" must be an https:// URL with a host\n  interval_secs: 0 is outside 1..=86400\n  labels.host: reserved; set host_name instead\n  collectors: unknown collector \"gpu\" (known: {})",
                collectors::ALL.join(", ")
            )
        );
    }

    #[test]
    fn database_targets_are_checked_and_their_secrets_hidden() {
        let base = "collector_url = \"https://x\"\nca_file = \"/c\"\n";
        let e = parse(&format!(
            "{base}[[databases]]\nname = \"pg\"\nkind = \"postgresql\"\naddress = \"db1\"\npassword = \"hunter2\"\npassword_file = \"/p\"\n[[databases]]\nname = \"pg\"\nkind = \"redis\"\naddress = \"127.0.0.1:6379\"\nconnect_timeout_ms = 0\n"
        ))
        .err()
        .unwrap_or_default();
        assert_eq!(
            e,
            "agent.toml: 4 problem(s):\n  databases[0].address: \"db1\" is neither HOST:PORT nor a socket path\n  databases[0]: set password or password_file, not both\n  databases[1].connect_timeout_ms: 0 is outside 1..=600000\n  databases[1].name: \"pg\" is used twice"
        );
        assert!(!e.contains("hunter2"));
        let e = parse(&format!(
            "{base}[[databases]]\nname = \"x\"\nkind = \"oracle\"\naddress = \"127.0.0.1:1521\"\n"
        ))
        .err()
        .unwrap_or_default();
        assert!(e.contains("line 5") && e.contains("unknown variant `oracle`"), "{e}");
        let c = parse(&format!(
            "{base}[[databases]]\nname = \"pg\"\nkind = \"postgresql\"\naddress = \"127.0.0.1:5432\"\npassword = \"hunter2\"\n"
        ));
        let shown = format!("{:?}", c.map(|c| c.databases));
        assert!(shown.contains("***") && !shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn collector_urls_lists_the_replicas_in_order() {
        let c = parse("collector_urls = [\"https://a:8443\", \"https://b:8443\"]\nca_file = \"/c\"\n");
        let c = c.map_err(|e| panic!("{e}")).unwrap_or_else(|_| unreachable!());
        assert_eq!(c.collector_urls(), ["https://a:8443", "https://b:8443"]);
    }

    #[test]
    fn a_single_collector_url_is_a_list_of_one() {
        let c = parse("collector_url = \"https://a:8443\"\nca_file = \"/c\"\n");
        let c = c.map_err(|e| panic!("{e}")).unwrap_or_else(|_| unreachable!());
        assert_eq!(c.collector_urls(), ["https://a:8443"]);
    }

    #[test]
    fn collector_url_and_collector_urls_together_are_refused() {
        let e = parse("collector_url = \"https://a\"\ncollector_urls = [\"https://b\"]\nca_file = \"/c\"\n")
            .err()
            .unwrap_or_default();
        assert_eq!(
            e,
            "agent.toml: 1 problem(s):\n  collector_urls: give either collector_url (one collector) or collector_urls (its replicas), not both"
        );
    }

    #[test]
    fn a_config_without_a_collector_is_refused_naming_the_key() {
        let e = parse("ca_file = \"/c\"\ninterval_secs = 0\n").err().unwrap_or_default();
        assert_eq!(
            e,
            "agent.toml: 2 problem(s):\n  collector_url: missing; give collector_url (one collector) or collector_urls (its replicas)\n  interval_secs: 0 is outside 1..=86400"
        );
    }

    #[test]
    fn a_bad_url_in_collector_urls_names_its_index() {
        let e = parse("collector_urls = [\"https://a\", \"http://b\", \"not a url\"]\nca_file = \"/c\"\n")
            .err()
            .unwrap_or_default();
        assert!(e.starts_with("agent.toml: 2 problem(s):\n"), "{e}");
        assert!(
            e.contains("\n  collector_urls[1]: \"http://b\" must be an https:// URL with a host"),
            "{e}"
        );
        assert!(e.contains("\n  collector_urls[2]: \"not a url\" is not a URL: "), "{e}");
    }

    #[test]
    fn an_empty_or_repeated_collector_urls_is_refused() {
        let e = parse("collector_urls = []\nca_file = \"/c\"\n")
            .err()
            .unwrap_or_default();
        assert_eq!(
            e,
            "agent.toml: 1 problem(s):\n  collector_urls: must list at least one URL"
        );
        // The same place written twice, once with its default port.
        let e = parse("collector_urls = [\"https://a\", \"https://b\", \"https://a:443/\"]\nca_file = \"/c\"\n")
            .err()
            .unwrap_or_default();
        assert_eq!(
            e,
            "agent.toml: 1 problem(s):\n  collector_urls[2]: \"https://a:443/\" is listed twice"
        );
    }
}
