//! Block device I/O counters from `<proc_root>/diskstats`. Whole disks, md and
//! device-mapper devices are reported; partitions, loop, ram and zram devices
//! are not (their I/O is counted on the disk, or is not disk I/O at all).

use std::path::PathBuf;

use super::{CollectError, Collector, Roots, Samples, read_to_string};

/// `/proc/diskstats` counts in 512-byte sectors whatever the device's sector size.
const SECTOR_BYTES: u64 = 512;

pub struct DiskIo {
    path: PathBuf,
}

impl DiskIo {
    pub fn new(roots: &Roots) -> Self {
        Self {
            path: roots.proc_root.join("diskstats"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct DiskStats {
    pub device: String,
    pub reads_completed: u64,
    pub read_bytes: u64,
    pub writes_completed: u64,
    pub written_bytes: u64,
    pub io_time_ms: u64,
}

/// True for devices whose I/O is not reported: partitions and virtual RAM/loop devices.
pub fn is_ignored(dev: &str) -> bool {
    let trailing_digits = |prefix: &str| {
        dev.strip_prefix(prefix).is_some_and(|rest| {
            let letters = rest.trim_end_matches(|c: char| c.is_ascii_digit());
            !letters.is_empty() && letters.len() < rest.len() && letters.chars().all(|c| c.is_ascii_lowercase())
        })
    };
    let starts_digits = |prefix: &str| {
        dev.strip_prefix(prefix)
            .is_some_and(|rest| !rest.is_empty() && rest.chars().all(|c| c.is_ascii_digit()))
    };
    if starts_digits("loop") || starts_digits("ram") || starts_digits("zram") || starts_digits("fd") {
        return true;
    }
    // sda1, vdb2, hdc3, xvda1
    if ["sd", "vd", "hd", "xvd"].iter().any(|p| trailing_digits(p)) {
        return true;
    }
    // nvme0n1p1, mmcblk0p1
    if let Some(p) = dev.rfind('p') {
        let (head, tail) = dev.split_at(p);
        let tail = &tail[1..];
        if (head.starts_with("nvme") || head.starts_with("mmcblk"))
            && !tail.is_empty()
            && tail.chars().all(|c| c.is_ascii_digit())
            && head.ends_with(|c: char| c.is_ascii_digit())
        {
            return true;
        }
    }
    false
}

/// Parses `/proc/diskstats`: `major minor name` then at least 11 counters.
pub fn parse_diskstats(text: &str) -> Result<Vec<DiskStats>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.is_empty() {
            continue;
        }
        if fields.len() < 14 {
            return Err(format!(
                "line {}: expected at least 14 fields, found {}",
                i + 1,
                fields.len()
            ));
        }
        let n = |k: usize| -> Result<u64, String> {
            fields[k]
                .parse()
                .map_err(|e| format!("line {} field {}: {e}", i + 1, k + 1))
        };
        let device = fields[2].to_string();
        if is_ignored(&device) {
            continue;
        }
        out.push(DiskStats {
            reads_completed: n(3)?,
            read_bytes: n(5)?.saturating_mul(SECTOR_BYTES),
            writes_completed: n(7)?,
            written_bytes: n(9)?.saturating_mul(SECTOR_BYTES),
            io_time_ms: n(12)?,
            device,
        });
    }
    Ok(out)
}

impl Collector for DiskIo {
    fn name(&self) -> &'static str {
        "diskio"
    }

    fn collect(&mut self, out: &mut Samples) -> Result<(), CollectError> {
        let text = read_to_string(&self.path)?;
        let stats = parse_diskstats(&text).map_err(|reason| CollectError::Parse {
            path: self.path.clone(),
            reason,
        })?;
        for s in stats {
            let l = [("device", s.device.as_str())];
            out.push("caretaker_disk_reads_completed", &l, s.reads_completed as f64);
            out.push("caretaker_disk_read_bytes", &l, s.read_bytes as f64);
            out.push("caretaker_disk_writes_completed", &l, s.writes_completed as f64);
            out.push("caretaker_disk_written_bytes", &l, s.written_bytes as f64);
            out.push("caretaker_disk_io_time_seconds", &l, s.io_time_ms as f64 / 1000.0);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured from a Debian 12 virtual machine (kernel 6.1, 20 fields per line).
    const DISKSTATS: &str = "   7       0 loop0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0
 253       0 vda 120931 26101 9810598 53215 2512893 1833019 70315768 4131254 0 1718696 4457560 88171 0 214806976 163512 0 0
 253       1 vda1 120000 26000 9800000 53000 2500000 1830000 70300000 4130000 0 1718000 4456000 0 0 0 0 0 0
 259       0 nvme0n1 1000 0 8000 10 2000 0 16000 20 0 30 30 0 0 0 0 0 0
 259       1 nvme0n1p1 1000 0 8000 10 2000 0 16000 20 0 30 30 0 0 0 0 0 0
 251       0 zram0 4 0 32 0 0 0 0 0 0 0 0 0 0 0 0 0 0
   9       0 md0 10 0 80 0 20 0 160 0 0 0 0 0 0 0 0 0 0
";

    #[test]
    fn keeps_whole_disks_and_converts_sectors() {
        let v = parse_diskstats(DISKSTATS).unwrap_or_default();
        let names: Vec<&str> = v.iter().map(|d| d.device.as_str()).collect();
        assert_eq!(names, ["vda", "nvme0n1", "md0"]);
        assert_eq!(v[0].read_bytes, 9810598 * 512);
        assert_eq!(v[0].written_bytes, 70315768 * 512);
        assert_eq!(v[0].reads_completed, 120931);
        assert_eq!(v[0].writes_completed, 2512893);
        assert_eq!(v[0].io_time_ms, 1718696);
    }

    #[test]
    fn ignores_partitions_and_virtual_devices() {
        for d in [
            "sda1",
            "vdb12",
            "xvda1",
            "nvme0n1p3",
            "mmcblk0p1",
            "loop7",
            "ram0",
            "zram1",
        ] {
            assert!(is_ignored(d), "{d}");
        }
        for d in ["sda", "vdb", "nvme0n1", "mmcblk0", "md127", "dm-0", "sdaa"] {
            assert!(!is_ignored(d), "{d}");
        }
    }

    #[test]
    fn short_line_names_its_line() {
        assert_eq!(
            parse_diskstats("   8 0 sda 1 2 3\n").err().as_deref(),
            Some("line 1: expected at least 14 fields, found 6")
        );
    }
}
