//! Processes killed by the kernel's out-of-memory killer, from the `oom_kill`
//! counter in `<proc_root>/vmstat` (Linux 4.13 and later). An OOM kill often
//! takes down a service without any other trace in the metrics, so the count
//! is worth alerting on. Older kernels lack the counter: no sample, no failure.

use std::path::PathBuf;

use super::{CollectError, Collector, Roots, Samples, read_to_string};

pub struct Oom {
    path: PathBuf,
}

impl Oom {
    pub fn new(roots: &Roots) -> Self {
        Self {
            path: roots.proc_root.join("vmstat"),
        }
    }
}

/// The `oom_kill` value of `/proc/vmstat` (`name value` lines), `None` when absent.
pub fn parse_oom_kill(text: &str) -> Result<Option<u64>, String> {
    for (i, line) in text.lines().enumerate() {
        let mut f = line.split_whitespace();
        if f.next() != Some("oom_kill") {
            continue;
        }
        let value = f
            .next()
            .ok_or_else(|| format!("line {}: oom_kill has no value", i + 1))?;
        return value
            .parse()
            .map(Some)
            .map_err(|e| format!("line {}: oom_kill value {value:?}: {e}", i + 1));
    }
    Ok(None)
}

impl Collector for Oom {
    fn name(&self) -> &'static str {
        "oom"
    }

    fn collect(&mut self, out: &mut Samples) -> Result<(), CollectError> {
        let text = read_to_string(&self.path)?;
        let kills = parse_oom_kill(&text).map_err(|reason| CollectError::Parse {
            path: self.path.clone(),
            reason,
        })?;
        if let Some(n) = kills {
            out.push("caretaker_oom_kills", &[], n as f64);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(proc_root: &std::path::Path) -> (Result<(), CollectError>, Vec<(String, f64)>) {
        let mut c = Oom::new(&Roots {
            proc_root: proc_root.to_path_buf(),
            ..Roots::default()
        });
        let mut out = Samples::default();
        let r = c.collect(&mut out);
        (r, out.0.into_iter().map(|s| (s.metric, s.value)).collect())
    }

    #[test]
    fn reads_the_counter_from_a_captured_vmstat() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/oom/proc");
        let (r, samples) = collect(&root);
        assert!(r.is_ok(), "{r:?}");
        assert_eq!(samples, [("caretaker_oom_kills".to_string(), 3.0)]);
    }

    #[test]
    fn old_kernel_without_the_counter_gives_nothing() {
        assert_eq!(parse_oom_kill("nr_free_pages 1\npgfault 7\n"), Ok(None));
    }

    #[test]
    fn bad_value_names_its_line() {
        assert_eq!(
            parse_oom_kill("nr_free_pages 1\noom_kill x\n"),
            Err("line 2: oom_kill value \"x\": invalid digit found in string".into())
        );
    }

    #[test]
    fn missing_file_is_an_error_naming_it() {
        let (r, _) = collect(std::path::Path::new("/nonexistent/proc"));
        let e = r.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(e.contains("/nonexistent/proc/vmstat"), "{e}");
    }

    #[test]
    fn this_host_does_not_fail() {
        let (r, _) = collect(std::path::Path::new("/proc"));
        assert!(r.is_ok(), "{r:?}");
    }
}
