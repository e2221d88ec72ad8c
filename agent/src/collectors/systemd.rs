//! Failed systemd units, from `systemctl list-units --state=failed`: a unit
//! that failed (a crashed service, a mount that did not come up, a timer's job
//! that errored) is often the first visible trace of a problem, and nothing
//! else reports it. The JSON output (systemd 240 and later) is asked for; an
//! older systemctl that rejects it is asked again for plain text. Hosts not
//! running systemd (no `<run_root>/systemd/system`, the test `sd_booted(3)`
//! uses) or without `systemctl` give no samples and no failure. The command
//! runs at most once a minute; the last answer is re-sent in between.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::command::{self, Throttle};
use super::{CollectError, Collector, Roots, Samples, host_label};

/// Most units reported one by one; the count is always exact. A template
/// failing for hundreds of instances must not flood the report.
const MAX_UNITS: usize = 100;

/// How often `systemctl` is run.
const EVERY: Duration = Duration::from_secs(60);

const JSON_ARGS: &[&str] = &[
    "list-units",
    "--state=failed",
    "--no-legend",
    "--plain",
    "--no-pager",
    "--output=json",
];
const PLAIN_ARGS: &[&str] = &["list-units", "--state=failed", "--no-legend", "--plain", "--no-pager"];

pub struct Systemd {
    query: Query,
    throttle: Throttle,
}

/// What is asked of the host, apart from the throttle so both can be borrowed at once.
struct Query {
    systemctl: PathBuf,
    booted_marker: PathBuf,
    timeout: Duration,
}

impl Systemd {
    pub fn new(roots: &Roots) -> Self {
        Self {
            query: Query {
                systemctl: roots.systemctl.clone(),
                booted_marker: roots.run_root.join("systemd/system"),
                timeout: roots.command_timeout,
            },
            throttle: Throttle::new(EVERY),
        }
    }
}

#[derive(serde::Deserialize)]
struct JsonUnit {
    unit: String,
}

/// Unit names from `systemctl list-units --output=json`: `[{"unit": …}, …]`.
pub fn parse_json(text: &str) -> Result<Vec<String>, String> {
    let units: Vec<JsonUnit> = serde_json::from_str(text.trim()).map_err(|e| format!("JSON: {e}"))?;
    Ok(units.into_iter().map(|u| u.unit).collect())
}

/// Unit names from the plain listing: `UNIT LOAD ACTIVE SUB DESCRIPTION` per
/// line. Some versions put a `●` before a failed unit even with `--plain`.
pub fn parse_plain(text: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let mut words = line.split_whitespace().skip_while(|w| *w == "●" || *w == "*");
        let Some(unit) = words.next() else { continue };
        if words.next().is_none() {
            return Err(format!(
                "line {}: expected UNIT LOAD ACTIVE SUB DESCRIPTION, found {line:?}",
                i + 1
            ));
        }
        out.push(unit.to_string());
    }
    Ok(out)
}

/// True when the host runs systemd as init; `systemctl` cannot answer otherwise.
pub fn booted(marker: &Path) -> bool {
    marker.is_dir()
}

impl Query {
    fn read(&self, out: &mut Samples) -> Result<(), CollectError> {
        if !booted(&self.booted_marker) {
            return Ok(());
        }
        let parse_error = |reason: String| CollectError::Command {
            program: self.systemctl.clone(),
            reason: format!("unexpected output: {reason}"),
        };
        let units = match command::run(&self.systemctl, JSON_ARGS, self.timeout) {
            Ok(None) => return Ok(()),
            Ok(Some(text)) => parse_json(&text).map_err(parse_error)?,
            Err(json_error) => {
                // systemd before 240 has no --output=json; ask for the plain listing.
                tracing::debug!(error = %json_error, "systemctl JSON listing failed; trying plain text");
                match command::run(&self.systemctl, PLAIN_ARGS, self.timeout)? {
                    None => return Ok(()),
                    Some(text) => parse_plain(&text).map_err(parse_error)?,
                }
            }
        };
        out.push("caretaker_systemd_units_failed", &[], units.len() as f64);
        if units.len() > MAX_UNITS {
            tracing::debug!(
                failed = units.len(),
                reported = MAX_UNITS,
                "too many failed units to list"
            );
        }
        for unit in units.iter().take(MAX_UNITS) {
            out.push("caretaker_systemd_unit_failed", &[("unit", &host_label(unit))], 1.0);
        }
        Ok(())
    }
}

impl Collector for Systemd {
    fn name(&self) -> &'static str {
        "systemd"
    }

    fn collect(&mut self, out: &mut Samples) -> Result<(), CollectError> {
        self.throttle.collect(out, |o| self.query.read(o))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::command::fake_program;

    // The shapes systemd 252 (Debian 12) prints, for two failed units.
    const JSON: &str = r#"[{"unit":"logrotate.service","load":"loaded","active":"failed","sub":"failed","description":"Rotate log files"},{"unit":"srv-backup.mount","load":"loaded","active":"failed","sub":"failed","description":"/srv/backup"}]
"#;
    const PLAIN: &str = "logrotate.service loaded failed failed Rotate log files
srv-backup.mount  loaded failed failed /srv/backup
";
    const PLAIN_BULLETS: &str = "● logrotate.service loaded failed failed Rotate log files
";

    #[test]
    fn parses_json_and_plain_listings() {
        let want = ["logrotate.service", "srv-backup.mount"];
        assert_eq!(parse_json(JSON), Ok(want.map(String::from).to_vec()));
        assert_eq!(parse_plain(PLAIN), Ok(want.map(String::from).to_vec()));
        assert_eq!(parse_plain(PLAIN_BULLETS), Ok(vec!["logrotate.service".to_string()]));
        assert_eq!(parse_json("[]\n"), Ok(vec![]));
        assert_eq!(parse_plain(""), Ok(vec![]));
    }

    #[test]
    fn bad_listings_say_where() {
        assert!(parse_json("{\"unit\":1}").is_err_and(|e| e.starts_with("JSON: ")));
        assert_eq!(
            parse_plain("a.service loaded failed failed x\nbroken\n"),
            Err("line 2: expected UNIT LOAD ACTIVE SUB DESCRIPTION, found \"broken\"".into())
        );
    }

    struct Host {
        _dir: tempfile::TempDir,
        roots: Roots,
    }

    /// A host running systemd (or not), with `script` as its systemctl.
    fn host(booted: bool, script: Option<&str>) -> Host {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        if booted {
            let _ = std::fs::create_dir_all(dir.path().join("run/systemd/system"));
        }
        let systemctl = match script {
            Some(s) => fake_program(dir.path(), "systemctl", s),
            None => dir.path().join("no-systemctl"),
        };
        let roots = Roots {
            run_root: dir.path().join("run"),
            systemctl,
            ..Roots::default()
        };
        Host { _dir: dir, roots }
    }

    /// (metric, unit label, value)
    type Row = (String, String, f64);

    fn collect(h: &Host) -> (Result<(), CollectError>, Vec<Row>) {
        let mut c = Systemd::new(&h.roots);
        let mut out = Samples::default();
        let r = c.collect(&mut out);
        let rows = out
            .0
            .into_iter()
            .map(|s| (s.metric, s.labels.get("unit").cloned().unwrap_or_default(), s.value))
            .collect();
        (r, rows)
    }

    #[test]
    fn counts_and_lists_failed_units() {
        let h = host(true, Some(&format!("cat <<'EOF'\n{JSON}EOF")));
        let (r, rows) = collect(&h);
        assert!(r.is_ok(), "{r:?}");
        assert_eq!(
            rows,
            [
                ("caretaker_systemd_units_failed".into(), String::new(), 2.0),
                ("caretaker_systemd_unit_failed".into(), "logrotate.service".into(), 1.0),
                ("caretaker_systemd_unit_failed".into(), "srv-backup.mount".into(), 1.0),
            ]
        );
    }

    #[test]
    fn old_systemctl_falls_back_to_plain_text() {
        let script = format!(
            "case \"$*\" in *--output=json*) echo 'systemctl: unrecognized option --output=json' >&2; exit 1;; esac\ncat <<'EOF'\n{PLAIN}EOF"
        );
        let (r, rows) = collect(&host(true, Some(&script)));
        assert!(r.is_ok(), "{r:?}");
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].2, 2.0);
    }

    #[test]
    fn no_systemd_or_no_systemctl_is_no_samples() {
        let (r, rows) = collect(&host(false, Some("echo should not run; exit 1")));
        assert!(r.is_ok() && rows.is_empty(), "{r:?} {rows:?}");
        let (r, rows) = collect(&host(true, None));
        assert!(r.is_ok() && rows.is_empty(), "{r:?} {rows:?}");
    }

    #[test]
    fn a_failing_systemctl_is_an_error() {
        let (r, rows) = collect(&host(
            true,
            Some("echo 'Failed to connect to bus: Host is down' >&2; exit 1"),
        ));
        let e = r.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("Failed to connect to bus"), "{e}");
        assert!(rows.is_empty());
    }

    #[test]
    fn this_host_does_not_fail() {
        let mut c = Systemd::new(&Roots::default());
        let r = c.collect(&mut Samples::default());
        assert!(r.is_ok(), "{r:?}");
    }
}
