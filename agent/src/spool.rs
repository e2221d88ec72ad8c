//! The durable spool: every report is written here (compressed, as it will be
//! sent) before any attempt to send it, and removed only once the collector
//! has acknowledged it. While the collector is unreachable reports accumulate
//! and are replayed oldest first. The spool is bounded by count and bytes;
//! beyond either bound the oldest reports are dropped and the drop is counted,
//! never silent.
//!
//! Layout: one file per report, `<seq as 20 digits>.report`, so a directory
//! listing sorted by name is the replay order.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use crate::state::{StateError, write_atomic};

const EXT: &str = "report";

#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    max_reports: usize,
    max_bytes: u64,
    /// (seq, size) oldest first.
    entries: VecDeque<(u64, u64)>,
    bytes: u64,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Spool {
    /// Opens (creating) the spool directory and indexes what it holds.
    /// Leftover temporary files from a crash are removed.
    pub fn open(dir: &Path, max_reports: usize, max_bytes: u64) -> Result<Self, StateError> {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let mut entries = Vec::new();
        for e in std::fs::read_dir(dir).map_err(io(dir))? {
            let e = e.map_err(io(dir))?;
            let path = e.path();
            match (
                path.extension().and_then(|x| x.to_str()),
                path.file_stem().and_then(|s| s.to_str()),
            ) {
                (Some(EXT), Some(stem)) => match stem.parse::<u64>() {
                    Ok(seq) => entries.push((seq, e.metadata().map_err(io(&path))?.len())),
                    Err(_) => {
                        tracing::warn!(path = %path.display(), "ignoring a file in the spool that is not a report")
                    }
                },
                (Some("tmp"), _) => {
                    let _ = std::fs::remove_file(&path);
                }
                _ => tracing::warn!(path = %path.display(), "ignoring a file in the spool that is not a report"),
            }
        }
        entries.sort_unstable();
        let bytes = entries.iter().map(|(_, n)| n).sum();
        Ok(Self {
            dir: dir.to_path_buf(),
            max_reports,
            max_bytes,
            entries: entries.into(),
            bytes,
        })
    }

    fn path(&self, seq: u64) -> PathBuf {
        self.dir.join(format!("{seq:020}.{EXT}"))
    }

    /// Adds a report; returns how many old reports were dropped to make room.
    pub fn push(&mut self, seq: u64, body: &[u8]) -> Result<u64, StateError> {
        let mut dropped = 0;
        while !self.entries.is_empty()
            && (self.entries.len() + 1 > self.max_reports || self.bytes + body.len() as u64 > self.max_bytes)
        {
            if let Some((old, _)) = self.entries.front().copied() {
                self.remove(old)?;
                dropped += 1;
            }
        }
        write_atomic(&self.path(seq), body, 0o600)?;
        self.entries.push_back((seq, body.len() as u64));
        self.bytes += body.len() as u64;
        Ok(dropped)
    }

    /// The oldest report, if any.
    pub fn peek(&self) -> Result<Option<(u64, Vec<u8>)>, StateError> {
        match self.entries.front() {
            None => Ok(None),
            Some(&(seq, _)) => {
                let p = self.path(seq);
                std::fs::read(&p).map(|b| Some((seq, b))).map_err(io(&p))
            }
        }
    }

    /// Removes a report (acknowledged, or dropped).
    pub fn remove(&mut self, seq: u64) -> Result<(), StateError> {
        let p = self.path(seq);
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(&p)(e)),
        }
        if let Some(i) = self.entries.iter().position(|(s, _)| *s == seq) {
            if let Some((_, n)) = self.entries.remove(i) {
                self.bytes -= n;
            }
        }
        Ok(())
    }

    pub fn depth(&self) -> usize {
        self.entries.len()
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Lowest sequence number held: the next to deliver.
    pub fn first_seq(&self) -> Option<u64> {
        self.entries.front().map(|(s, _)| *s)
    }

    /// Highest sequence number held, so a restart never reuses one.
    pub fn last_seq(&self) -> Option<u64> {
        self.entries.back().map(|(s, _)| *s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seqs(s: &Spool) -> Vec<u64> {
        s.entries.iter().map(|(s, _)| *s).collect()
    }

    #[test]
    fn replays_in_order_across_reopen() -> Result<(), StateError> {
        let dir = tempfile::tempdir().map_err(io(Path::new("tmp")))?;
        let mut s = Spool::open(dir.path(), 100, 1 << 20)?;
        for seq in [1, 2, 3, 10, 11] {
            s.push(seq, format!("r{seq}").as_bytes())?;
        }
        s.remove(1)?;
        // A crash left a temporary file behind.
        std::fs::write(dir.path().join("00000000000000000012.tmp"), b"half").map_err(io(dir.path()))?;
        let mut s = Spool::open(dir.path(), 100, 1 << 20)?;
        assert_eq!(seqs(&s), [2, 3, 10, 11]);
        assert_eq!(s.peek()?, Some((2, b"r2".to_vec())));
        assert_eq!(s.last_seq(), Some(11));
        assert!(!dir.path().join("00000000000000000012.tmp").exists());
        s.remove(2)?;
        assert_eq!(s.peek()?.map(|(q, _)| q), Some(3));
        Ok(())
    }

    #[test]
    fn bound_drops_the_oldest_and_says_how_many() -> Result<(), StateError> {
        let dir = tempfile::tempdir().map_err(io(Path::new("tmp")))?;
        let mut s = Spool::open(dir.path(), 3, 1 << 20)?;
        let mut dropped = 0;
        for seq in 1..=5 {
            dropped += s.push(seq, b"xxxx")?;
        }
        assert_eq!(dropped, 2);
        assert_eq!(seqs(&s), [3, 4, 5]);
        // Byte bound: 10 bytes hold two 4-byte reports.
        let dir2 = tempfile::tempdir().map_err(io(Path::new("tmp")))?;
        let mut s = Spool::open(dir2.path(), 100, 10)?;
        assert_eq!(s.push(1, b"aaaa")? + s.push(2, b"bbbb")? + s.push(3, b"cccc")?, 1);
        assert_eq!(seqs(&s), [2, 3]);
        assert_eq!(s.bytes(), 8);
        Ok(())
    }
}
