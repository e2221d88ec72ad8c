//! Hardware RAID controllers through their vendors' tools, on their own interval.
//!
//! A worker thread finds which tools are installed (storcli64, else
//! perccli64, for Broadcom/LSI MegaRAID and Dell PERC; ssacli for HPE Smart
//! Array), runs them one after the other under a hard timeout and publishes
//! the parsed controllers in [`RaidState`]; the `raid` collector turns the
//! latest state into samples and events every report, so a slow or hung tool
//! never delays a report. One thread runs the tools: two runs never overlap.
//!
//! storcli2/perccli2 print another JSON that is not read here: when only they
//! are installed the collector says so (unsupported), once, like a host
//! without any tool.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use caretaker_shared::hardware::raid::{self, Controller, ControllerKind, PdState, RaidError};
use serde::Deserialize;

use crate::command::{self, CommandError};

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RaidConfig {
    /// Broadcom/LSI storcli (a bare name is looked up in `PATH` and `/opt/MegaRAID/storcli`).
    #[serde(default = "default_storcli")]
    pub storcli_path: PathBuf,
    /// Dell's perccli, used when storcli is not installed.
    #[serde(default = "default_perccli")]
    pub perccli_path: PathBuf,
    /// storcli2 (newer controllers); its JSON is not read, only recognised.
    #[serde(default = "default_storcli2")]
    pub storcli2_path: PathBuf,
    #[serde(default = "default_perccli2")]
    pub perccli2_path: PathBuf,
    /// HPE Smart Array CLI.
    #[serde(default = "default_ssacli")]
    pub ssacli_path: PathBuf,
    /// Seconds between two reads of the controllers.
    #[serde(default = "default_interval_secs")]
    pub interval_secs: u64,
    /// Time allowed for one tool run before it is killed.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
}

impl Default for RaidConfig {
    fn default() -> Self {
        Self {
            storcli_path: default_storcli(),
            perccli_path: default_perccli(),
            storcli2_path: default_storcli2(),
            perccli2_path: default_perccli2(),
            ssacli_path: default_ssacli(),
            interval_secs: default_interval_secs(),
            timeout_secs: default_timeout_secs(),
        }
    }
}

fn default_storcli() -> PathBuf {
    "storcli64".into()
}
fn default_perccli() -> PathBuf {
    "perccli64".into()
}
fn default_storcli2() -> PathBuf {
    "storcli2".into()
}
fn default_perccli2() -> PathBuf {
    "perccli2".into()
}
fn default_ssacli() -> PathBuf {
    "ssacli".into()
}
fn default_interval_secs() -> u64 {
    300
}
fn default_timeout_secs() -> u64 {
    60
}

impl RaidConfig {
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        if !(1..=86_400).contains(&self.interval_secs) {
            p.push(format!(
                "raid.interval_secs: {} is outside 1..=86400",
                self.interval_secs
            ));
        }
        if !(1..=600).contains(&self.timeout_secs) {
            p.push(format!("raid.timeout_secs: {} is outside 1..=600", self.timeout_secs));
        }
        for (name, path) in [
            ("storcli_path", &self.storcli_path),
            ("perccli_path", &self.perccli_path),
            ("storcli2_path", &self.storcli2_path),
            ("perccli2_path", &self.perccli2_path),
            ("ssacli_path", &self.ssacli_path),
        ] {
            if path.as_os_str().is_empty() {
                p.push(format!("raid.{name}: must not be empty"));
            }
        }
        p
    }
}

/// Where the vendors' packages install their tools when not in `PATH`.
const KNOWN_DIRS: &[&str] = &[
    "/opt/MegaRAID/storcli",
    "/opt/MegaRAID/perccli",
    "/opt/MegaRAID/storcli2",
    "/opt/MegaRAID/perccli2",
    "/opt/lsi/storcli",
    "/usr/sbin",
    "/usr/bin",
];

/// The tool's path if it is installed: a path with a `/` as given, a bare
/// name in `PATH` or a vendor directory.
pub fn locate(program: &Path) -> Option<PathBuf> {
    crate::command::locate(program, KNOWN_DIRS)
}

/// One pass over the controllers.
#[derive(Debug, Clone, Default)]
pub struct RaidScan {
    pub scanned_at_ms: i64,
    pub controllers: Vec<Controller>,
    /// What went wrong with a tool or a controller; the others still count.
    pub errors: Vec<String>,
    /// Nothing to read on this host (no tool, no controller, only storcli2), and why.
    pub unavailable: Option<String>,
    /// Virtual disks whose rebuild made no progress for [`STALL_MS`].
    pub stalled: BTreeSet<String>,
}

/// A rebuild that shows the same progress this long is stalled.
pub const STALL_MS: i64 = 3_600_000;

fn explain(e: &CommandError) -> String {
    e.to_string()
}

/// Runs one tool command; stdout as text, or why not.
fn run_tool(path: &Path, args: &[&str], timeout: Duration) -> Result<(String, Option<i32>, String), String> {
    let out = command::run(path, args, timeout).map_err(|e| explain(&e))?;
    Ok((
        String::from_utf8_lossy(&out.stdout).into_owned(),
        out.code,
        out.stderr_line(),
    ))
}

/// What an unreadable tool answer means, with the exit status when non-zero.
fn tool_error(path: &Path, cmd: &str, e: &RaidError, code: Option<i32>, stderr: &str) -> String {
    let mut m = format!("{} {cmd}: {e}", path.display());
    match code {
        Some(0) => {}
        Some(c) => m.push_str(&format!(" (exit status {c})")),
        None => m.push_str(" (killed by a signal)"),
    }
    if !stderr.is_empty() {
        m.push_str(&format!("; {stderr}"));
    }
    m
}

/// Reads the MegaRAID/PERC controllers with storcli or perccli.
fn scan_storcli(path: &Path, kind: ControllerKind, timeout: Duration, scan: &mut RaidScan) -> Result<usize, RaidError> {
    let show = "/call show all J nolog";
    let (text, code, stderr) = match run_tool(path, &["/call", "show", "all", "J", "nolog"], timeout) {
        Ok(x) => x,
        Err(e) => {
            scan.errors.push(format!("{} {show}: {e}", path.display()));
            return Ok(0);
        }
    };
    let drives_cmd = "/call/eall/sall show all J nolog";
    let drives = match run_tool(path, &["/call/eall/sall", "show", "all", "J", "nolog"], timeout) {
        Ok((t, _, _)) if !t.trim().is_empty() => Some(t),
        Ok(_) => None,
        Err(e) => {
            scan.errors.push(format!("{} {drives_cmd}: {e}", path.display()));
            None
        }
    };
    let report = match raid::parse_storcli(&text, drives.as_deref(), kind) {
        Ok(r) => r,
        Err(e @ RaidError::Storcli2 { .. }) => return Err(e),
        Err(e) => {
            // The drives document may be the broken one: keep the controllers.
            if drives.is_some()
                && let Ok(r) = raid::parse_storcli(&text, None, kind)
            {
                scan.errors.push(format!("{} {drives_cmd}: {e}", path.display()));
                r
            } else {
                scan.errors.push(tool_error(path, show, &e, code, &stderr));
                return Ok(0);
            }
        }
    };
    if report.no_controller() {
        return Ok(0);
    }
    scan.errors.extend(report.failures.iter().map(|f| f.message.clone()));
    let mut controllers = report.controllers;
    let rebuilding = controllers
        .iter()
        .flat_map(|c| &c.pds)
        .any(|p| p.state == Some(PdState::Rebuild));
    if rebuilding {
        match run_tool(path, &["/call/eall/sall", "show", "rebuild", "J", "nolog"], timeout)
            .and_then(|(t, _, _)| raid::parse_storcli_rebuild(&t).map_err(|e| e.to_string()))
        {
            Ok(p) => raid::apply_rebuild(&mut controllers, &p),
            Err(e) => scan
                .errors
                .push(format!("{} /call/eall/sall show rebuild J nolog: {e}", path.display())),
        }
    }
    let n = controllers.len() + report.failures.len();
    scan.controllers.extend(controllers);
    Ok(n)
}

fn scan_ssacli(path: &Path, timeout: Duration, scan: &mut RaidScan) -> usize {
    let cmd = "ctrl all show config detail";
    let (text, code, stderr) = match run_tool(path, &["ctrl", "all", "show", "config", "detail"], timeout) {
        Ok(x) => x,
        Err(e) => {
            scan.errors.push(format!("{} {cmd}: {e}", path.display()));
            return 0;
        }
    };
    if text.to_ascii_lowercase().contains("no controllers detected") {
        return 0;
    }
    match raid::parse_ssacli(&text) {
        Ok(cs) => {
            let n = cs.len();
            scan.controllers.extend(cs);
            n
        }
        Err(e) => {
            scan.errors.push(tool_error(path, cmd, &e, code, &stderr));
            1
        }
    }
}

/// One pass: every installed tool, one after the other.
pub fn scan(cfg: &RaidConfig) -> RaidScan {
    let timeout = Duration::from_secs(cfg.timeout_secs);
    let mut s = RaidScan::default();
    let storcli = locate(&cfg.storcli_path)
        .map(|p| (p, ControllerKind::MegaRaid))
        .or_else(|| locate(&cfg.perccli_path).map(|p| (p, ControllerKind::Perc)));
    let ssacli = locate(&cfg.ssacli_path);
    let v2: Vec<PathBuf> = [&cfg.storcli2_path, &cfg.perccli2_path]
        .into_iter()
        .filter_map(|p| locate(p))
        .collect();
    let mut found = 0;
    let mut unsupported = None;
    if let Some((path, kind)) = &storcli {
        match scan_storcli(path, *kind, timeout, &mut s) {
            Ok(n) => found += n,
            Err(e) => unsupported = Some(format!("{e} from {}", path.display())),
        }
    } else if let Some(path) = v2.first() {
        // Recognise what storcli2 prints rather than guess at it.
        let mut probe = RaidScan::default();
        unsupported = Some(
            match scan_storcli(path, ControllerKind::MegaRaid, timeout, &mut probe) {
                Err(e) => format!("{e} from {}; install storcli64 or perccli64", path.display()),
                Ok(_) => format!(
                    "unsupported: storcli2 JSON from {}; install storcli64 or perccli64",
                    path.display()
                ),
            },
        );
    }
    if let Some(path) = &ssacli {
        found += scan_ssacli(path, timeout, &mut s);
    }
    if found == 0 && s.errors.is_empty() {
        s.unavailable = Some(match (&storcli, &ssacli, unsupported) {
            (_, _, Some(u)) => u,
            (None, None, None) => "no RAID controller tool found (storcli64, perccli64, ssacli)".into(),
            _ => "no hardware RAID controller found".into(),
        });
    } else if let Some(u) = unsupported {
        s.errors.push(u);
    }
    s.scanned_at_ms = caretaker_shared::now_ms();
    s
}

/// Watches rebuild progress across scans: a virtual disk whose rebuilding
/// disks show the same progress for [`STALL_MS`] is stalled.
#[derive(Debug, Default)]
pub struct StallTracker {
    /// vd → (progress, since when it has been that).
    seen: BTreeMap<String, (Vec<u64>, i64)>,
}

impl StallTracker {
    pub fn observe(&mut self, controllers: &[Controller], now_ms: i64) -> BTreeSet<String> {
        let mut stalled = BTreeSet::new();
        let mut current = BTreeMap::new();
        for c in controllers {
            for v in &c.vds {
                // Per mille, so float noise does not count as progress.
                let progress: Vec<u64> = c
                    .pds
                    .iter()
                    .filter(|p| p.vd.as_deref() == Some(v.id.as_str()) && p.state == Some(PdState::Rebuild))
                    .filter_map(|p| p.rebuild_progress)
                    .map(|r| (r * 1000.0).round() as u64)
                    .collect();
                if progress.is_empty() {
                    continue;
                }
                let since = match self.seen.get(&v.id) {
                    Some((p, since)) if *p == progress => *since,
                    _ => now_ms,
                };
                if now_ms - since >= STALL_MS {
                    stalled.insert(v.id.clone());
                }
                current.insert(v.id.clone(), (progress, since));
            }
        }
        self.seen = current;
        stalled
    }
}

/// The newest scan, shared by the worker, the `raid` collector and the reporter.
#[derive(Debug, Default)]
pub struct RaidState {
    inner: Mutex<Inner>,
    /// Where the collector remembers which disk failures it announced.
    state_dir: Option<PathBuf>,
}

#[derive(Debug, Default)]
struct Inner {
    latest: Option<Arc<RaidScan>>,
    /// The inventory parts changed since the reporter last looked.
    inventory_changed: bool,
}

/// What the inventory takes from a scan: when this changes, it is resent.
fn inventory_key(s: &RaidScan) -> Vec<String> {
    let mut k = Vec::new();
    for c in &s.controllers {
        k.push(format!("{} {} {} {}", c.id, c.model, c.serial, c.firmware));
        for v in &c.vds {
            k.push(format!("{} {} {} {}", v.id, v.level, v.size_bytes, v.members.join(",")));
        }
        for p in &c.pds {
            k.push(format!("{} {} {} {}", p.slot, p.serial, p.model, p.firmware));
        }
    }
    k
}

impl RaidState {
    pub fn with_state_dir(dir: PathBuf) -> Self {
        Self {
            inner: Mutex::default(),
            state_dir: Some(dir),
        }
    }

    pub fn state_dir(&self) -> Option<&Path> {
        self.state_dir.as_deref()
    }

    pub fn publish(&self, scan: RaidScan) {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let changed = match &g.latest {
            Some(old) => inventory_key(old) != inventory_key(&scan),
            None => !scan.controllers.is_empty(),
        };
        g.inventory_changed |= changed;
        g.latest = Some(Arc::new(scan));
    }

    pub fn latest(&self) -> Option<Arc<RaidScan>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).latest.clone()
    }

    /// Whether the controllers, arrays or disks changed since the last call.
    pub fn take_inventory_changed(&self) -> bool {
        let mut g = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        std::mem::take(&mut g.inventory_changed)
    }
}

/// Starts the worker thread: read now, then every `interval_secs`, until
/// `stop` is dropped or sent to.
pub fn spawn_worker(
    cfg: RaidConfig,
    state: Arc<RaidState>,
) -> std::io::Result<(std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>)> {
    let interval = Duration::from_secs(cfg.interval_secs);
    let mut stalls = StallTracker::default();
    crate::periodic::spawn("raid", interval, move || {
        let mut s = scan(&cfg);
        s.stalled = stalls.observe(&s.controllers, s.scanned_at_ms);
        for e in &s.errors {
            tracing::warn!(error = %e, "RAID controller read failed");
        }
        tracing::debug!(controllers = s.controllers.len(), "RAID controllers read");
        state.publish(s);
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A stand-in tool: a shell script answering each command with a file.
    pub fn fake_tool(dir: &Path, name: &str, body: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap_or_else(|e| panic!("{e}"));
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap_or_else(|e| panic!("{e}"));
        path
    }

    pub fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/hardware/raid")
            .join(name)
    }

    /// A storcli64 printing a show-all and a drives capture.
    pub fn fake_storcli(dir: &Path, show: &str, drives: &str, rebuild: Option<&str>) -> PathBuf {
        let rebuild = rebuild
            .map(|r| format!("cat '{}'", fixture(r).display()))
            .unwrap_or_else(|| "exit 1".into());
        fake_tool(
            dir,
            "storcli64",
            &format!(
                "case \"$1 $3\" in\n\"/call all\") cat '{}' ;;\n\"/call/eall/sall all\") cat '{}' ;;\n\"/call/eall/sall rebuild\") {rebuild} ;;\n*) exit 2 ;;\nesac",
                fixture(show).display(),
                fixture(drives).display()
            ),
        )
    }

    fn absent(dir: &Path) -> RaidConfig {
        RaidConfig {
            storcli_path: dir.join("none-storcli64"),
            perccli_path: dir.join("none-perccli64"),
            storcli2_path: dir.join("none-storcli2"),
            perccli2_path: dir.join("none-perccli2"),
            ssacli_path: dir.join("none-ssacli"),
            ..RaidConfig::default()
        }
    }

    #[test]
    fn no_tool_is_unavailable_with_the_reason() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let s = scan(&absent(dir.path()));
        assert_eq!(
            s.unavailable.as_deref(),
            Some("no RAID controller tool found (storcli64, perccli64, ssacli)")
        );
        assert!(s.errors.is_empty());
    }

    #[test]
    fn only_storcli2_is_unsupported() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let tool = fake_tool(
            dir.path(),
            "storcli2",
            &format!(
                "cat '{}'",
                fixture("storcli/constructed-storcli2-call-show-all.json").display()
            ),
        );
        let s = scan(&RaidConfig {
            storcli2_path: tool.clone(),
            ..absent(dir.path())
        });
        assert_eq!(
            s.unavailable,
            Some(format!(
                "unsupported: storcli2 JSON (CLI version 008.0009.0000.0010 Mar 20, 2024) from {}; install storcli64 or perccli64",
                tool.display()
            ))
        );
    }

    #[test]
    fn storcli_reports_no_controller_as_unavailable() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let tool = fake_tool(
            dir.path(),
            "storcli64",
            r#"echo '{"Controllers":[{"Command Status":{"CLI Version":"007.1616.0000.0000 Dec 24, 2020","Controller":"All","Status":"Failure","Description":"No Controller found"}}]}'; exit 1"#,
        );
        let s = scan(&RaidConfig {
            storcli_path: tool,
            ..absent(dir.path())
        });
        assert_eq!(s.unavailable.as_deref(), Some("no hardware RAID controller found"));
    }

    #[test]
    fn a_hung_tool_is_killed_and_reported() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let tool = fake_tool(dir.path(), "storcli64", "exec sleep 30");
        let started = std::time::Instant::now();
        let s = scan(&RaidConfig {
            storcli_path: tool,
            timeout_secs: 1,
            ..absent(dir.path())
        });
        assert!(started.elapsed() < Duration::from_secs(10));
        assert!(s.unavailable.is_none());
        assert!(
            s.errors
                .iter()
                .any(|e| e.contains("did not finish within 1 s and was killed")),
            "{:?}",
            s.errors
        );
    }

    #[test]
    fn a_tool_exiting_non_zero_with_garbage_names_its_status() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let tool = fake_tool(
            dir.path(),
            "ssacli",
            "echo 'Smart Array P822 in Slot'; echo 'lost it' >&2; exit 3",
        );
        let s = scan(&RaidConfig {
            ssacli_path: tool,
            ..absent(dir.path())
        });
        let e = s.errors.join("\n");
        assert!(
            e.contains("found \"Smart Array P822 in Slot\" (exit status 3); lost it"),
            "{e}"
        );
    }

    #[test]
    fn storcli_captures_are_read_with_rebuild_progress() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let tool = fake_storcli(
            dir.path(),
            "storcli/derived-praid-ep420i-rbld-252-1-new-disk-show-all.json",
            "storcli/derived-praid-ep420i-rbld-252-1-new-disk-drives.json",
            Some("storcli/constructed-praid-ep420i-show-rebuild-252-1-37pct.json"),
        );
        let s = scan(&RaidConfig {
            storcli_path: tool,
            ..absent(dir.path())
        });
        assert!(s.errors.is_empty(), "{:?}", s.errors);
        let pd = s.controllers[0].pds.iter().find(|p| p.slot == "252:1");
        assert_eq!(
            pd.map(|p| (p.serial.as_str(), p.rebuild_progress)),
            Some(("2116301A9F2E", Some(0.37)))
        );
    }

    #[test]
    fn a_rebuild_without_progress_for_an_hour_is_stalled() {
        let text = std::fs::read_to_string(fixture(
            "storcli/derived-praid-ep420i-rbld-252-1-new-disk-show-all.json",
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        let mut cs = raid::parse_storcli(&text, None, ControllerKind::MegaRaid)
            .unwrap_or_else(|e| panic!("{e}"))
            .controllers;
        let set = |cs: &mut Vec<Controller>, v: f64| {
            for p in &mut cs[0].pds {
                if p.slot == "252:1" {
                    p.rebuild_progress = Some(v);
                }
            }
        };
        let mut t = StallTracker::default();
        set(&mut cs, 0.37);
        assert!(t.observe(&cs, 0).is_empty());
        assert!(t.observe(&cs, STALL_MS - 1).is_empty());
        assert_eq!(t.observe(&cs, STALL_MS).into_iter().collect::<Vec<_>>(), ["c0/v0"]);
        set(&mut cs, 0.38);
        assert!(t.observe(&cs, STALL_MS + 1).is_empty(), "progress clears it");
        assert!(t.observe(&cs, 2 * STALL_MS).is_empty());
        assert!(!t.observe(&cs, 2 * STALL_MS + 1).is_empty());
    }

    #[test]
    fn bad_raid_settings_are_reported() {
        let cfg = RaidConfig {
            interval_secs: 0,
            timeout_secs: 0,
            ssacli_path: PathBuf::new(),
            ..RaidConfig::default()
        };
        assert_eq!(
            cfg.problems(),
            [
                "raid.interval_secs: 0 is outside 1..=86400",
                "raid.timeout_secs: 0 is outside 1..=600",
                "raid.ssacli_path: must not be empty"
            ]
        );
    }

    #[test]
    fn the_inventory_is_flagged_when_parts_first_arrive_or_change() {
        let st = RaidState::default();
        st.publish(RaidScan::default());
        assert!(!st.take_inventory_changed(), "nothing found yet");
        let c = Controller {
            id: "c0".into(),
            firmware: "1".into(),
            ..Controller::default()
        };
        st.publish(RaidScan {
            controllers: vec![c.clone()],
            ..RaidScan::default()
        });
        assert!(st.take_inventory_changed());
        assert!(!st.take_inventory_changed());
        st.publish(RaidScan {
            controllers: vec![c.clone()],
            ..RaidScan::default()
        });
        assert!(!st.take_inventory_changed(), "same parts");
        st.publish(RaidScan {
            controllers: vec![Controller {
                firmware: "2".into(),
                ..c
            }],
            ..RaidScan::default()
        });
        assert!(st.take_inventory_changed(), "firmware changed");
    }
}
