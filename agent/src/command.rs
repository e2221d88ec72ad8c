//! Runs an external program (smartctl, systemctl, ...) under a timeout.
//!
//! A hung tool must not hang a collector: the child is killed when its time is
//! up. Its output is read while it runs (smartctl `-x` prints more than a pipe
//! holds) and capped, so a runaway tool cannot fill the agent's memory. Call
//! this from blocking code only (collectors run off the async runtime).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Most bytes kept of a tool's stdout; smartctl `-x` of a big disk is ~150 KB.
pub const MAX_STDOUT_BYTES: u64 = 4 * 1024 * 1024;
/// Most bytes kept of a tool's stderr (only used in messages).
const MAX_STDERR_BYTES: u64 = 8 * 1024;

/// The program's path if it is installed: a path (with a `/`) as given when
/// it is a file, a bare name found in `PATH` or else in one of `also_in`
/// (where vendor packages put tools outside `PATH`).
pub fn locate(program: &Path, also_in: &[&str]) -> Option<PathBuf> {
    if program.components().count() > 1 || program.is_absolute() {
        return program.is_file().then(|| program.to_path_buf());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(also_in.iter().map(PathBuf::from))
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("{program} not found")]
    NotFound { program: PathBuf },
    #[error("cannot run {program}: {source}")]
    Spawn { program: PathBuf, source: std::io::Error },
    #[error("{program} did not finish within {secs} s and was killed")]
    TimedOut { program: PathBuf, secs: u64 },
    #[error("waiting for {program}: {source}")]
    Wait { program: PathBuf, source: std::io::Error },
}

#[derive(Debug)]
pub struct Output {
    /// Exit code; `None` when the child was ended by a signal.
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Output {
    /// The first line of stderr, for messages.
    pub fn stderr_line(&self) -> String {
        String::from_utf8_lossy(&self.stderr)
            .lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim()
            .to_string()
    }
}

/// Reads a pipe to its end on its own thread, so a child that writes more
/// than the pipe holds is not blocked while we wait for it to exit.
fn drain(r: impl Read + Send + 'static, cap: u64) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    let spawned = std::thread::Builder::new()
        .name("command-output".into())
        .spawn(move || {
            let mut buf = Vec::new();
            let mut r = r.take(cap);
            // A read error leaves what was read so far; the exit status tells the rest.
            let _ = r.read_to_end(&mut buf);
            let _ = tx.send(buf);
            // Keep reading (and discarding) so the child never blocks on a full pipe.
            let mut rest = r.into_inner();
            let _ = std::io::copy(&mut rest, &mut std::io::sink());
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "cannot start a thread to read command output");
    }
    rx
}

/// Runs `program args...` and waits at most `timeout` for it.
pub fn run(program: &Path, args: &[&str], timeout: Duration) -> Result<Output, CommandError> {
    run_as(program, None, args, timeout)
}

/// [`run`], with `argv[0]` set to `arg0` (multi-call binaries such as Debian's
/// `redis-server`, a link to `redis-check-rdb`, answer by that name).
pub fn run_as(program: &Path, arg0: Option<&str>, args: &[&str], timeout: Duration) -> Result<Output, CommandError> {
    let mut cmd = Command::new(program);
    if let Some(a) = arg0 {
        std::os::unix::process::CommandExt::arg0(&mut cmd, a);
    }
    let mut child = cmd
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Plain, untranslated output without a pager, whatever the agent's environment.
        .env("LC_ALL", "C")
        .env("SYSTEMD_PAGER", "")
        .env("SYSTEMD_COLORS", "0")
        .spawn()
        .map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                CommandError::NotFound {
                    program: program.to_path_buf(),
                }
            } else {
                CommandError::Spawn {
                    program: program.to_path_buf(),
                    source,
                }
            }
        })?;
    let out = child.stdout.take().map(|s| drain(s, MAX_STDOUT_BYTES));
    let err = child.stderr.take().map(|s| drain(s, MAX_STDERR_BYTES));
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() >= timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(CommandError::TimedOut {
                    program: program.to_path_buf(),
                    secs: timeout.as_secs(),
                });
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(source) => {
                let _ = child.kill();
                return Err(CommandError::Wait {
                    program: program.to_path_buf(),
                    source,
                });
            }
        }
    };
    // The pipes close when the child exits, unless it left a background
    // process holding them; do not wait for that one.
    let grace = Duration::from_secs(1);
    let collect =
        |rx: Option<mpsc::Receiver<Vec<u8>>>| rx.and_then(|rx| rx.recv_timeout(grace).ok()).unwrap_or_default();
    Ok(Output {
        code: status.code(),
        stdout: collect(out),
        stderr: collect(err),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_and_exit_code_are_returned() {
        let o = run(
            Path::new("sh"),
            &["-c", "echo hi; echo oops >&2; exit 3"],
            Duration::from_secs(5),
        );
        let o = o.unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(o.code, Some(3));
        assert_eq!(o.stdout, b"hi\n");
        assert_eq!(o.stderr_line(), "oops");
    }

    #[test]
    fn a_hung_program_is_killed() {
        let started = Instant::now();
        let e = run(Path::new("sleep"), &["30"], Duration::from_millis(200));
        assert!(matches!(e, Err(CommandError::TimedOut { .. })), "{e:?}");
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn big_output_does_not_block_the_child() {
        let o = run(
            Path::new("sh"),
            &["-c", "head -c 1000000 /dev/zero"],
            Duration::from_secs(10),
        );
        assert_eq!(o.map(|o| o.stdout.len()).unwrap_or(0), 1_000_000);
    }

    #[test]
    fn a_missing_program_is_named() {
        let e = run(Path::new("/nonexistent/smartctl"), &[], Duration::from_secs(1));
        assert_eq!(
            e.map(|_| ()).map_err(|e| e.to_string()),
            Err("/nonexistent/smartctl not found".to_string())
        );
    }
}
