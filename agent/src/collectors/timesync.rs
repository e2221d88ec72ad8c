//! Whether the system clock is synchronised, from `timedatectl show`
//! (`NTPSynchronized=yes|no`, `NTP=yes|no`). A drifting clock breaks TLS,
//! Kerberos, log correlation and anything with expiry times, and nothing else
//! shows it. `NTPSynchronized` is the kernel's own view (the adjtimex status
//! any NTP daemon — timesyncd, chrony, ntpd — keeps up to date), read through
//! timedated. Hosts not running systemd, or without `timedatectl`, give no
//! samples and no failure. Runs at most once a minute.

use std::path::PathBuf;
use std::time::Duration;

use super::command::{self, Throttle};
use super::systemd::booted;
use super::{CollectError, Collector, Roots, Samples};

const EVERY: Duration = Duration::from_secs(60);

pub struct TimeSync {
    query: Query,
    throttle: Throttle,
}

/// What is asked of the host, apart from the throttle so both can be borrowed at once.
struct Query {
    timedatectl: PathBuf,
    booted_marker: PathBuf,
    timeout: Duration,
}

impl TimeSync {
    pub fn new(roots: &Roots) -> Self {
        Self {
            query: Query {
                timedatectl: roots.timedatectl.clone(),
                booted_marker: roots.run_root.join("systemd/system"),
                timeout: roots.command_timeout,
            },
            throttle: Throttle::new(EVERY),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Status {
    pub synchronized: Option<bool>,
    pub ntp_enabled: Option<bool>,
}

/// Parses `timedatectl show` (`Key=value` lines), keeping `NTPSynchronized` and `NTP`.
pub fn parse_show(text: &str) -> Result<Status, String> {
    let mut s = Status::default();
    for (i, line) in text.lines().enumerate() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let slot = match key {
            "NTPSynchronized" => &mut s.synchronized,
            "NTP" => &mut s.ntp_enabled,
            _ => continue,
        };
        *slot = Some(match value.trim() {
            "yes" => true,
            "no" => false,
            other => return Err(format!("line {}: {key}={other:?} is neither yes nor no", i + 1)),
        });
    }
    Ok(s)
}

impl Query {
    fn read(&self, out: &mut Samples) -> Result<(), CollectError> {
        if !booted(&self.booted_marker) {
            return Ok(());
        }
        let Some(text) = command::run(&self.timedatectl, &["show"], self.timeout)? else {
            return Ok(());
        };
        let s = parse_show(&text).map_err(|reason| CollectError::Command {
            program: self.timedatectl.clone(),
            reason: format!("unexpected output: {reason}"),
        })?;
        let flag = |b: bool| if b { 1.0 } else { 0.0 };
        if let Some(b) = s.synchronized {
            out.push("caretaker_time_synchronized", &[], flag(b));
        }
        if let Some(b) = s.ntp_enabled {
            out.push("caretaker_time_ntp_enabled", &[], flag(b));
        }
        Ok(())
    }
}

impl Collector for TimeSync {
    fn name(&self) -> &'static str {
        "timesync"
    }

    fn collect(&mut self, out: &mut Samples) -> Result<(), CollectError> {
        self.throttle.collect(out, |o| self.query.read(o))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::command::fake_program;

    // The shape systemd 252 (Debian 12) prints, on a host whose clock is not synchronised.
    const SHOW: &str = "Timezone=Europe/Berlin
LocalRTC=no
CanNTP=yes
NTP=yes
NTPSynchronized=no
TimeUSec=Tue 2024-05-21 10:31:04 CEST
RTCTimeUSec=Tue 2024-05-21 10:31:05 CEST
";

    #[test]
    fn parses_show() {
        assert_eq!(
            parse_show(SHOW),
            Ok(Status {
                synchronized: Some(false),
                ntp_enabled: Some(true),
            })
        );
        assert_eq!(parse_show("Timezone=UTC\n"), Ok(Status::default()));
        assert_eq!(
            parse_show("NTP=yes\nNTPSynchronized=maybe\n"),
            Err("line 2: NTPSynchronized=\"maybe\" is neither yes nor no".into())
        );
    }

    fn collect(booted: bool, script: Option<&str>) -> (Result<(), CollectError>, Vec<(String, f64)>) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        if booted {
            let _ = std::fs::create_dir_all(dir.path().join("run/systemd/system"));
        }
        let timedatectl = match script {
            Some(s) => fake_program(dir.path(), "timedatectl", s),
            None => dir.path().join("no-timedatectl"),
        };
        let mut c = TimeSync::new(&Roots {
            run_root: dir.path().join("run"),
            timedatectl,
            ..Roots::default()
        });
        let mut out = Samples::default();
        let r = c.collect(&mut out);
        (r, out.0.into_iter().map(|s| (s.metric, s.value)).collect())
    }

    #[test]
    fn reports_an_unsynchronised_clock() {
        let (r, rows) = collect(
            true,
            Some(&format!("[ \"$1\" = show ] || exit 2\ncat <<'EOF'\n{SHOW}EOF")),
        );
        assert!(r.is_ok(), "{r:?}");
        assert_eq!(
            rows,
            [
                ("caretaker_time_synchronized".to_string(), 0.0),
                ("caretaker_time_ntp_enabled".to_string(), 1.0),
            ]
        );
    }

    #[test]
    fn no_systemd_or_no_timedatectl_is_no_samples() {
        let (r, rows) = collect(false, Some("exit 1"));
        assert!(r.is_ok() && rows.is_empty(), "{r:?}");
        let (r, rows) = collect(true, None);
        assert!(r.is_ok() && rows.is_empty(), "{r:?}");
    }

    #[test]
    fn this_host_does_not_fail() {
        let mut c = TimeSync::new(&Roots::default());
        let r = c.collect(&mut Samples::default());
        assert!(r.is_ok(), "{r:?}");
    }
}
