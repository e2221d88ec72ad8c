//! Running the few external programs some collectors need (`systemctl`,
//! `timedatectl`): with a deadline, so a hung D-Bus call cannot stall the
//! report, and with "program not installed" told apart from "program failed",
//! because a host without systemd is normal and must not count as a failure.
//! Collectors already run on a blocking thread, so waiting here is fine.

use std::path::Path;
use std::time::{Duration, Instant};

use caretaker_shared::wire::Sample;

use super::{CollectError, Samples};
use crate::command::CommandError;

fn error(program: &Path, reason: impl Into<String>) -> CollectError {
    CollectError::Command {
        program: program.to_path_buf(),
        reason: reason.into(),
    }
}

/// Runs `program args` and returns its standard output, or `Ok(None)` when the
/// program is not installed. A non-zero exit, a timeout or output that is not
/// UTF-8 is an error naming the program.
pub fn run(program: &Path, args: &[&str], timeout: Duration) -> Result<Option<String>, CollectError> {
    let out = match crate::command::run(program, args, timeout) {
        Ok(o) => o,
        Err(CommandError::NotFound { .. }) => {
            tracing::debug!(program = %program.display(), "not installed");
            return Ok(None);
        }
        Err(e) => return Err(error(program, e.to_string())),
    };
    if out.code != Some(0) {
        let status = out
            .code
            .map_or_else(|| "killed by a signal".to_string(), |c| format!("exit status: {c}"));
        let first: String = out.stderr_line().chars().take(200).collect();
        return Err(error(program, format!("{status}: {first}")));
    }
    String::from_utf8(out.stdout)
        .map(Some)
        .map_err(|_| error(program, "output is not UTF-8"))
}

/// Lets a command-backed collector run its command at most once per `every`,
/// sending the last readings in between: the answers change slowly and
/// starting a process every interval costs more than the data is worth.
#[derive(Debug)]
pub struct Throttle {
    every: Duration,
    last: Option<(Instant, Vec<Sample>)>,
}

impl Throttle {
    pub fn new(every: Duration) -> Self {
        Self { every, last: None }
    }

    /// Runs `read` when the last good readings are older than `every`, else re-sends them.
    pub fn collect(
        &mut self,
        out: &mut Samples,
        read: impl FnOnce(&mut Samples) -> Result<(), CollectError>,
    ) -> Result<(), CollectError> {
        if let Some((at, samples)) = &self.last {
            if at.elapsed() < self.every {
                out.0.extend(samples.iter().cloned());
                return Ok(());
            }
        }
        let mut fresh = Samples::default();
        let result = read(&mut fresh);
        // Only a clean reading is reused; after a failure the next run tries again.
        self.last = result.is_ok().then(|| (Instant::now(), fresh.0.clone()));
        out.0.extend(fresh.0);
        result
    }
}

/// A stand-in program for tests: a shell script in `dir` named `name`.
#[cfg(test)]
pub fn fake_program(dir: &Path, name: &str, script: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    let written = std::fs::write(&path, format!("#!/bin/sh\n{script}\n"))
        .and_then(|()| std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)));
    assert!(written.is_ok(), "{written:?}");
    path
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn returns_standard_output() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let p = fake_program(dir.path(), "hello", "echo \"args: $*\"");
        let r = run(&p, &["a", "b"], secs(5));
        assert_eq!(r.ok().flatten().as_deref(), Some("args: a b\n"));
    }

    #[test]
    fn missing_program_is_none() {
        let r = run(Path::new("/nonexistent/caretaker-no-such-program"), &[], secs(5));
        assert!(matches!(r, Ok(None)), "{r:?}");
    }

    #[test]
    fn failure_carries_the_status_and_first_stderr_line() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let p = fake_program(dir.path(), "fails", "echo 'Failed to connect to bus' >&2\nexit 1");
        let e = run(&p, &[], secs(5)).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("fails: exit status: 1: Failed to connect to bus"), "{e}");
    }

    #[test]
    fn a_hung_program_is_killed_at_the_deadline() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let p = fake_program(dir.path(), "hangs", "exec sleep 30");
        let started = Instant::now();
        let e = run(&p, &[], Duration::from_millis(200))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("did not finish within"), "{e}");
        assert!(started.elapsed() < secs(5));
    }

    #[test]
    fn throttle_reuses_good_readings_only() {
        let mut t = Throttle::new(secs(3600));
        let mut calls = 0;
        let mut out = Samples::default();
        let r = t.collect(&mut out, |o| {
            calls += 1;
            o.push("caretaker_oom_kills", &[], 1.0);
            Ok(())
        });
        assert!(r.is_ok());
        let r = t.collect(&mut out, |_| {
            calls += 1;
            Ok(())
        });
        assert!(r.is_ok());
        assert_eq!(calls, 1);
        assert_eq!(out.0.len(), 2, "second run re-sent the first readings");

        let mut t = Throttle::new(secs(3600));
        let _ = t.collect(&mut Samples::default(), |_| {
            Err(CollectError::Command {
                program: "x".into(),
                reason: "y".into(),
            })
        });
        let mut ran = false;
        let _ = t.collect(&mut Samples::default(), |_| {
            ran = true;
            Ok(())
        });
        assert!(ran, "a failed run is retried");
    }
}
