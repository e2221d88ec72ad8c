//! Whether the host waits for a reboot. Debian and Ubuntu package scripts
//! leave `<run_root>/reboot-required` (and list themselves in
//! `reboot-required.pkgs`) after a kernel, libc or firmware update; until the
//! reboot the host runs the old, possibly vulnerable code. Independently of
//! the distribution, a kernel under `<boot_root>` newer than the running one
//! (`<proc_root>/sys/kernel/osrelease`) means the same. Other distributions
//! never write the flag file, so there it always reads 0; when `/boot` holds
//! no versioned `vmlinuz-*` (containers, unusual layouts) the kernel
//! comparison is left out.

use std::cmp::Ordering;
use std::path::PathBuf;

use super::{CollectError, Collector, Roots, Samples, entries, read_optional, read_to_string};

pub struct Reboot {
    flag: PathBuf,
    packages: PathBuf,
    osrelease: PathBuf,
    boot: PathBuf,
}

impl Reboot {
    pub fn new(roots: &Roots) -> Self {
        Self {
            flag: roots.run_root.join("reboot-required"),
            packages: roots.run_root.join("reboot-required.pkgs"),
            osrelease: roots.proc_root.join("sys/kernel/osrelease"),
            boot: roots.boot_root.clone(),
        }
    }
}

/// Packages listed in `reboot-required.pkgs`, one a line; a package that
/// asked twice counts once.
pub fn count_packages(text: &str) -> usize {
    let mut names: Vec<&str> = text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    names.sort_unstable();
    names.dedup();
    names.len()
}

/// Compares kernel releases piece by piece, runs of digits as numbers:
/// `6.1.0-18-amd64` is newer than `6.1.0-9-amd64`.
pub fn compare_releases(a: &str, b: &str) -> Ordering {
    fn pieces(s: &str) -> Vec<(bool, &str)> {
        let mut out = Vec::new();
        let mut rest = s;
        while let Some(c) = rest.chars().next() {
            let digit = c.is_ascii_digit();
            let end = rest.find(|x: char| x.is_ascii_digit() != digit).unwrap_or(rest.len());
            out.push((digit, &rest[..end]));
            rest = &rest[end..];
        }
        out
    }
    for (x, y) in pieces(a).into_iter().zip(pieces(b)) {
        let o = match (x, y) {
            ((true, x), (true, y)) => {
                let (x, y) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
                x.len().cmp(&y.len()).then_with(|| x.cmp(y))
            }
            ((_, x), (_, y)) => x.cmp(y),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    a.len().cmp(&b.len())
}

/// Installed kernel releases from `/boot` file names: `vmlinuz-<release>`,
/// keeping only releases that start with a digit (not `vmlinuz-linux`, nor
/// RHEL's `vmlinuz-0-rescue-<machine id>`).
pub fn installed_releases<'a>(files: impl IntoIterator<Item = &'a str>) -> Vec<&'a str> {
    files
        .into_iter()
        .filter_map(|f| f.strip_prefix("vmlinuz-"))
        .filter(|r| r.starts_with(|c: char| c.is_ascii_digit()) && !r.contains("rescue"))
        .collect()
}

/// True when one of `installed` is newer than `running`.
pub fn newer_installed(running: &str, installed: &[&str]) -> bool {
    installed
        .iter()
        .any(|r| compare_releases(r, running) == Ordering::Greater)
}

impl Collector for Reboot {
    fn name(&self) -> &'static str {
        "reboot"
    }

    fn collect(&mut self, out: &mut Samples) -> Result<(), CollectError> {
        let mut first = None;
        let flag = self.flag.exists();
        out.push("caretaker_reboot_required", &[], if flag { 1.0 } else { 0.0 });
        match read_optional(&self.packages) {
            Ok(text) => {
                let n = text.as_deref().map_or(0, count_packages);
                out.push("caretaker_reboot_required_packages", &[], n as f64);
            }
            Err(e) => {
                first.get_or_insert(e);
            }
        }
        // The kernel comparison is a second, independent reading.
        let kernel = (|| -> Result<Option<bool>, CollectError> {
            let Some(files) = entries(&self.boot, "vmlinuz-")? else {
                return Ok(None);
            };
            let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
            let installed = installed_releases(names);
            if installed.is_empty() {
                return Ok(None);
            }
            let running = read_to_string(&self.osrelease)?;
            Ok(Some(newer_installed(running.trim(), &installed)))
        })();
        match kernel {
            Ok(Some(newer)) => out.push("caretaker_kernel_newer_installed", &[], if newer { 1.0 } else { 0.0 }),
            Ok(None) => {}
            Err(e) => {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn counts_distinct_packages() {
        // As left by Ubuntu 22.04 after a kernel and libc update.
        let pkgs = "linux-image-5.15.0-107-generic\nlinux-base\nlibc6\nlinux-base\n\n";
        assert_eq!(count_packages(pkgs), 3);
        assert_eq!(count_packages(""), 0);
    }

    #[test]
    fn kernel_releases_compare_by_number() {
        use Ordering::*;
        assert_eq!(compare_releases("6.1.0-18-amd64", "6.1.0-9-amd64"), Greater);
        assert_eq!(compare_releases("5.15.0-97-generic", "5.15.0-107-generic"), Less);
        assert_eq!(
            compare_releases("5.14.0-427.13.1.el9_4.x86_64", "5.14.0-362.8.1.el9_3.x86_64"),
            Greater
        );
        assert_eq!(compare_releases("6.1.0-18-amd64", "6.1.0-18-amd64"), Equal);
        assert_eq!(compare_releases("6.10.0", "6.9.12"), Greater);
    }

    #[test]
    fn only_versioned_kernels_count() {
        let files = [
            "vmlinuz-6.1.0-18-amd64",
            "vmlinuz-0-rescue-4f1c2e",
            "vmlinuz-linux",
            "config-6.1.0-18-amd64",
        ];
        assert_eq!(installed_releases(files), ["6.1.0-18-amd64"]);
        assert!(newer_installed("6.1.0-17-amd64", &["6.1.0-17-amd64", "6.1.0-18-amd64"]));
        assert!(!newer_installed(
            "6.1.0-18-amd64",
            &["6.1.0-17-amd64", "6.1.0-18-amd64"]
        ));
    }

    fn collect(roots: &Roots) -> (Result<(), CollectError>, Vec<(String, f64)>) {
        let mut c = Reboot::new(roots);
        let mut out = Samples::default();
        let r = c.collect(&mut out);
        (r, out.0.into_iter().map(|s| (s.metric, s.value)).collect())
    }

    fn write(root: &Path, files: &[(&str, &str)]) {
        for (f, text) in files {
            let p = root.join(f);
            let _ = std::fs::create_dir_all(p.parent().unwrap_or(root));
            let _ = std::fs::write(&p, text);
        }
    }

    #[test]
    fn a_host_waiting_for_its_new_kernel() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let d = dir.path();
        write(
            d,
            &[
                ("run/reboot-required", "*** System restart required ***\n"),
                ("run/reboot-required.pkgs", "linux-image-6.1.0-18-amd64\nlinux-base\n"),
                ("proc/sys/kernel/osrelease", "6.1.0-17-amd64\n"),
                ("boot/vmlinuz-6.1.0-17-amd64", ""),
                ("boot/vmlinuz-6.1.0-18-amd64", ""),
                ("boot/initrd.img-6.1.0-18-amd64", ""),
            ],
        );
        let roots = Roots {
            proc_root: d.join("proc"),
            run_root: d.join("run"),
            boot_root: d.join("boot"),
            ..Roots::default()
        };
        let (r, rows) = collect(&roots);
        assert!(r.is_ok(), "{r:?}");
        assert_eq!(
            rows,
            [
                ("caretaker_reboot_required".to_string(), 1.0),
                ("caretaker_reboot_required_packages".to_string(), 2.0),
                ("caretaker_kernel_newer_installed".to_string(), 1.0),
            ]
        );
    }

    #[test]
    fn nothing_pending_and_no_boot_dir() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let roots = Roots {
            proc_root: dir.path().join("proc"),
            run_root: dir.path().join("run"),
            boot_root: dir.path().join("boot"),
            ..Roots::default()
        };
        let (r, rows) = collect(&roots);
        assert!(r.is_ok(), "{r:?}");
        assert_eq!(
            rows,
            [
                ("caretaker_reboot_required".to_string(), 0.0),
                ("caretaker_reboot_required_packages".to_string(), 0.0),
            ]
        );
    }

    #[test]
    fn this_host_does_not_fail() {
        let (r, _) = collect(&Roots::default());
        assert!(r.is_ok(), "{r:?}");
    }
}
