//! Every real filesystem: size, free and available bytes, inodes and the
//! read-only flag. Mounts come from `<proc_root>/mounts`; sizes from
//! `statvfs(2)` (sysinfo gives no inode counts). Pseudo filesystems and the
//! kernel's own trees (`/proc`, `/sys`, `/dev`) are skipped.
//!
//! A filesystem the kernel remounted read-only after an error (ext4
//! `errors=remount-ro`) looks like any read-only mount; it is told apart by
//! `<etc_root>/fstab`, which mounts it read-write: that is
//! `caretaker_filesystem_remounted_readonly 1`.

use std::path::{Path, PathBuf};

use caretaker_shared::wire::FilesystemInfo;

use super::{CollectError, Collector, Roots, Samples, read_optional, read_to_string};

pub struct Filesystems {
    mounts: PathBuf,
    fstab: PathBuf,
}

impl Filesystems {
    pub fn new(roots: &Roots) -> Self {
        Self {
            mounts: roots.proc_root.join("mounts"),
            fstab: roots.etc_root.join("fstab"),
        }
    }
}

/// Mount points `fstab` mounts read-write (no `ro` option), unescaped.
pub fn fstab_read_write(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let (point, options) = (f.get(1)?, f.get(3).copied().unwrap_or("defaults"));
            (*point != "none" && !options.split(',').any(|o| o == "ro")).then(|| unescape(point))
        })
        .collect()
}

const PSEUDO_FS: &[&str] = &[
    "autofs",
    "binfmt_misc",
    "bpf",
    "cgroup",
    "cgroup2",
    "configfs",
    "debugfs",
    "devpts",
    "devtmpfs",
    "efivarfs",
    "fusectl",
    "hugetlbfs",
    "mqueue",
    "nsfs",
    "proc",
    "procfs",
    "pstore",
    "rpc_pipefs",
    "securityfs",
    "selinuxfs",
    "sysfs",
    "tracefs",
    "overlay",
    "squashfs",
    "iso9660",
    "ramfs",
    "fuse.lxcfs",
];

const SKIPPED_TREES: &[&str] = &["/proc", "/sys", "/dev", "/run/credentials", "/run/user"];

#[derive(Debug, Clone, PartialEq)]
pub struct Mount {
    pub device: String,
    pub mountpoint: String,
    pub fstype: String,
    pub readonly: bool,
}

/// Undoes the octal escapes the kernel writes for space, tab, newline and backslash.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            let v = (b[i + 1] - b'0') as u32 * 64 + (b[i + 2] - b'0') as u32 * 8 + (b[i + 3] - b'0') as u32;
            out.push(v as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses `/proc/mounts`, keeping real filesystems, the last mount of each mount point.
pub fn parse_mounts(text: &str) -> Result<Vec<Mount>, String> {
    let mut out: Vec<Mount> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 4 {
            return Err(format!("line {}: expected at least 4 fields, found {}", i + 1, f.len()));
        }
        let fstype = f[2];
        let mountpoint = unescape(f[1]);
        if PSEUDO_FS.contains(&fstype)
            || SKIPPED_TREES
                .iter()
                .any(|t| mountpoint == *t || mountpoint.starts_with(&format!("{t}/")))
        {
            continue;
        }
        let m = Mount {
            device: unescape(f[0]),
            mountpoint,
            fstype: fstype.to_string(),
            readonly: f[3].split(',').any(|o| o == "ro"),
        };
        // A later mount on the same point hides the earlier one.
        out.retain(|o| o.mountpoint != m.mountpoint);
        out.push(m);
    }
    Ok(out)
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    pub size_bytes: u64,
    pub free_bytes: u64,
    pub avail_bytes: u64,
    pub files: u64,
    pub files_free: u64,
    pub readonly: bool,
}

pub fn statvfs(path: &Path) -> std::io::Result<Usage> {
    let s = rustix::fs::statvfs(path).map_err(std::io::Error::from)?;
    let frsize = if s.f_frsize > 0 { s.f_frsize } else { s.f_bsize };
    Ok(Usage {
        size_bytes: s.f_blocks.saturating_mul(frsize),
        free_bytes: s.f_bfree.saturating_mul(frsize),
        avail_bytes: s.f_bavail.saturating_mul(frsize),
        files: s.f_files,
        files_free: s.f_ffree,
        readonly: s.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY),
    })
}

/// Filesystems for the inventory.
pub fn inventory(proc_root: &Path) -> Vec<FilesystemInfo> {
    let Ok(text) = read_to_string(&proc_root.join("mounts")) else {
        return Vec::new();
    };
    parse_mounts(&text)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|m| {
            let u = statvfs(Path::new(&m.mountpoint)).ok()?;
            Some(FilesystemInfo {
                mountpoint: m.mountpoint,
                device: m.device,
                fstype: m.fstype,
                size_bytes: u.size_bytes,
            })
        })
        .collect()
}

impl Collector for Filesystems {
    fn name(&self) -> &'static str {
        "filesystem"
    }

    fn collect(&mut self, out: &mut Samples) -> Result<(), CollectError> {
        let text = read_to_string(&self.mounts)?;
        let mounts = parse_mounts(&text).map_err(|reason| CollectError::Parse {
            path: self.mounts.clone(),
            reason,
        })?;
        let mut first_error = None;
        // No fstab (a container, say) means no opinion on how a mount should be.
        let read_write = match read_optional(&self.fstab) {
            Ok(t) => t.map(|t| fstab_read_write(&t)).unwrap_or_default(),
            Err(e) => {
                first_error = Some(e);
                Vec::new()
            }
        };
        for m in mounts {
            // One unreadable mount (stale NFS, permissions) must not hide the others.
            let u = match statvfs(Path::new(&m.mountpoint)) {
                Ok(u) => u,
                Err(source) => {
                    first_error.get_or_insert(CollectError::Read {
                        path: PathBuf::from(&m.mountpoint),
                        source,
                    });
                    continue;
                }
            };
            let l = [
                ("mountpoint", m.mountpoint.as_str()),
                ("device", m.device.as_str()),
                ("fstype", m.fstype.as_str()),
            ];
            out.push("caretaker_filesystem_size_bytes", &l, u.size_bytes as f64);
            out.push("caretaker_filesystem_free_bytes", &l, u.free_bytes as f64);
            out.push("caretaker_filesystem_avail_bytes", &l, u.avail_bytes as f64);
            out.push("caretaker_filesystem_files", &l, u.files as f64);
            out.push("caretaker_filesystem_files_free", &l, u.files_free as f64);
            let readonly = m.readonly || u.readonly;
            out.push("caretaker_filesystem_readonly", &l, if readonly { 1.0 } else { 0.0 });
            if read_write.contains(&m.mountpoint) {
                let remounted = if readonly { 1.0 } else { 0.0 };
                out.push("caretaker_filesystem_remounted_readonly", &l, remounted);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured from a Debian 12 virtual machine, with one escaped mount point added.
    const MOUNTS: &str = "proc /proc proc rw,relatime 0 0
sysfs /sys sysfs rw,relatime 0 0
devtmpfs /dev devtmpfs rw,relatime,size=12334460k,nr_inodes=3083615,mode=755 0 0
/dev/vda / ext4 rw,relatime,discard 0 0
tmpfs /dev/shm tmpfs rw,relatime,size=24684084k 0 0
cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0
/dev/vdb1 /srv/backup\\040disk xfs ro,relatime 0 0
tmpfs /run tmpfs rw,nosuid,nodev,size=2468408k,mode=755 0 0
/dev/vdc /srv/backup\\040disk ext4 rw,relatime 0 0
";

    #[test]
    fn keeps_real_filesystems_last_mount_wins() {
        let v = parse_mounts(MOUNTS).unwrap_or_default();
        let points: Vec<(&str, &str, bool)> = v
            .iter()
            .map(|m| (m.mountpoint.as_str(), m.device.as_str(), m.readonly))
            .collect();
        assert_eq!(
            points,
            [
                ("/", "/dev/vda", false),
                ("/run", "tmpfs", false),
                ("/srv/backup disk", "/dev/vdc", false)
            ]
        );
    }

    // Debian's installer writes fstab like this (UUIDs shortened).
    const FSTAB: &str = "# /etc/fstab: static file system information.
#
# <file system> <mount point>   <type>  <options>       <dump>  <pass>
UUID=1b2c / ext4 errors=remount-ro 0 1
UUID=3d4e /srv/backup\\040disk ext4 defaults 0 2
UUID=5f60 /media/iso iso9660 ro,user,noauto 0 0
UUID=7a8b none swap sw 0 0
";

    #[test]
    fn fstab_read_write_mounts() {
        assert_eq!(fstab_read_write(FSTAB), vec!["/", "/srv/backup disk"]);
    }

    #[test]
    fn a_filesystem_remounted_read_only_is_flagged() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (proc_root, etc_root) = (dir.path().join("proc"), dir.path().join("etc"));
        std::fs::create_dir_all(&proc_root).unwrap_or_else(|e| panic!("{e}"));
        std::fs::create_dir_all(&etc_root).unwrap_or_else(|e| panic!("{e}"));
        // The kernel remounted / read-only after an ext4 error.
        std::fs::write(proc_root.join("mounts"), "/dev/vda / ext4 ro,relatime,discard 0 0\n")
            .unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(etc_root.join("fstab"), FSTAB).unwrap_or_else(|e| panic!("{e}"));
        let mut c = Filesystems::new(&Roots {
            proc_root,
            etc_root,
            ..Roots::default()
        });
        let mut out = Samples::default();
        assert!(c.collect(&mut out).is_ok());
        let v = out
            .0
            .iter()
            .find(|s| s.metric == "caretaker_filesystem_remounted_readonly")
            .map(|s| s.value);
        assert_eq!(v, Some(1.0));
    }

    #[test]
    fn read_only_flag() {
        let v = parse_mounts("/dev/sr0 /media ext4 ro,relatime 0 0\n").unwrap_or_default();
        assert!(v[0].readonly);
    }

    #[test]
    fn statvfs_of_root_is_plausible() {
        let u = statvfs(Path::new("/"));
        assert!(
            u.as_ref()
                .is_ok_and(|u| u.size_bytes > 0 && u.files > 0 && u.free_bytes >= u.avail_bytes),
            "{u:?}"
        );
    }

    #[test]
    fn broken_line_names_its_line() {
        assert_eq!(
            parse_mounts("a b\n").err().as_deref(),
            Some("line 1: expected at least 4 fields, found 2")
        );
    }
}
