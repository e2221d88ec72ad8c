//! The durable spool: every report is written here (compressed, as it will be
//! sent) before any attempt to send it, and removed only once the collector
//! has acknowledged it. While the collector is unreachable reports accumulate
//! and are replayed oldest first. The spool is bounded by count and bytes;
//! beyond either bound the oldest reports are dropped and the drop is counted,
//! never silent.
//!
//! Layout: one file per report, `<seq as 20 digits>.report`, so a directory
//! listing sorted by name is the replay order.
//!
//! When a report cannot be written (the state dir is full or read-only) it is
//! held in memory instead, under the same bounds, and delivered from there:
//! the agent keeps reporting through a full disk and loses only what it held
//! in memory if it restarts meanwhile.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use crate::state::{StateError, write_atomic};

const EXT: &str = "report";

#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    max_reports: usize,
    max_bytes: u64,
    /// Oldest first.
    entries: VecDeque<Entry>,
    bytes: u64,
}

#[derive(Debug)]
struct Entry {
    seq: u64,
    size: u64,
    /// The body, when it could not be written to disk.
    held: Option<Vec<u8>>,
}

/// What [`Spool::push`] did.
#[derive(Debug)]
pub struct Pushed {
    /// Old reports dropped to make room.
    pub dropped: u64,
    /// Why the report is held in memory rather than on disk.
    pub not_written: Option<StateError>,
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
                    Ok(seq) => entries.push(Entry {
                        seq,
                        size: e.metadata().map_err(io(&path))?.len(),
                        held: None,
                    }),
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
        entries.sort_unstable_by_key(|e| e.seq);
        let bytes = entries.iter().map(|e| e.size).sum();
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

    /// Adds a report, to disk or, when it cannot be written there, to memory;
    /// says how many old reports were dropped to make room.
    pub fn push(&mut self, seq: u64, body: &[u8]) -> Pushed {
        let mut dropped = 0;
        while let Some(old) = self.entries.front().map(|e| e.seq) {
            if self.entries.len() < self.max_reports && self.bytes + body.len() as u64 <= self.max_bytes {
                break;
            }
            if let Err(e) = self.remove(old) {
                tracing::warn!(error = %e, seq = old, "cannot delete a dropped report from the spool");
                self.forget(old);
            }
            dropped += 1;
        }
        let not_written = write_atomic(&self.path(seq), body, 0o600).err();
        self.entries.push_back(Entry {
            seq,
            size: body.len() as u64,
            held: not_written.as_ref().map(|_| body.to_vec()),
        });
        self.bytes += body.len() as u64;
        Pushed { dropped, not_written }
    }

    /// The oldest report, if any.
    pub fn peek(&self) -> Result<Option<(u64, Vec<u8>)>, StateError> {
        match self.entries.front() {
            None => Ok(None),
            Some(Entry { seq, held: Some(b), .. }) => Ok(Some((*seq, b.clone()))),
            Some(&Entry { seq, .. }) => {
                let p = self.path(seq);
                std::fs::read(&p).map(|b| Some((seq, b))).map_err(io(&p))
            }
        }
    }

    /// Removes a report (acknowledged, or dropped).
    pub fn remove(&mut self, seq: u64) -> Result<(), StateError> {
        let on_disk = self
            .entries
            .iter()
            .find(|e| e.seq == seq)
            .is_none_or(|e| e.held.is_none());
        if on_disk {
            let p = self.path(seq);
            match std::fs::remove_file(&p) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io(&p)(e)),
            }
        }
        self.forget(seq);
        Ok(())
    }

    /// Drops a report from the index only.
    fn forget(&mut self, seq: u64) {
        if let Some(i) = self.entries.iter().position(|e| e.seq == seq) {
            if let Some(e) = self.entries.remove(i) {
                self.bytes -= e.size;
            }
        }
    }

    /// Adds `shift` to the sequence number of every report held, rewriting
    /// each body with `renumber(body, new_seq)`. Used when the collector has
    /// already applied the numbers these reports carry (see `run`). A report
    /// that cannot be rewritten on disk is held in memory; one that cannot be
    /// read or renumbered is dropped, and counted in the answer.
    pub fn renumber(&mut self, shift: u64, renumber: impl Fn(&[u8], u64) -> std::io::Result<Vec<u8>>) -> u64 {
        let mut lost = 0;
        // Newest first: with a positive shift a new name never meets an old
        // report not yet moved.
        let mut moved = VecDeque::with_capacity(self.entries.len());
        while let Some(e) = self.entries.pop_back() {
            self.bytes -= e.size;
            let new_seq = e.seq.saturating_add(shift);
            let old_path = self.path(e.seq);
            let body = match e.held {
                Some(b) => Ok(b),
                None => std::fs::read(&old_path),
            };
            let body = body.and_then(|b| renumber(&b, new_seq));
            let _ = std::fs::remove_file(&old_path);
            match body {
                Ok(b) => {
                    let held = write_atomic(&self.path(new_seq), &b, 0o600).err().map(|_| b.clone());
                    self.bytes += b.len() as u64;
                    moved.push_front(Entry {
                        seq: new_seq,
                        size: b.len() as u64,
                        held,
                    });
                }
                Err(err) => {
                    tracing::error!(error = %err, seq = e.seq, "cannot renumber a spooled report; dropping it");
                    lost += 1;
                }
            }
        }
        self.entries = moved;
        lost
    }

    /// How many reports are held in memory because they could not be written.
    pub fn held_in_memory(&self) -> usize {
        self.entries.iter().filter(|e| e.held.is_some()).count()
    }

    pub fn depth(&self) -> usize {
        self.entries.len()
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Lowest sequence number held: the next to deliver.
    pub fn first_seq(&self) -> Option<u64> {
        self.entries.front().map(|e| e.seq)
    }

    /// Highest sequence number held, so a restart never reuses one.
    pub fn last_seq(&self) -> Option<u64> {
        self.entries.back().map(|e| e.seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seqs(s: &Spool) -> Vec<u64> {
        s.entries.iter().map(|e| e.seq).collect()
    }

    fn push(s: &mut Spool, seq: u64, body: &[u8]) -> Result<u64, StateError> {
        let p = s.push(seq, body);
        match p.not_written {
            Some(e) => Err(e),
            None => Ok(p.dropped),
        }
    }

    #[test]
    fn replays_in_order_across_reopen() -> Result<(), StateError> {
        let dir = tempfile::tempdir().map_err(io(Path::new("tmp")))?;
        let mut s = Spool::open(dir.path(), 100, 1 << 20)?;
        for seq in [1, 2, 3, 10, 11] {
            push(&mut s, seq, format!("r{seq}").as_bytes())?;
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
            dropped += push(&mut s, seq, b"xxxx")?;
        }
        assert_eq!(dropped, 2);
        assert_eq!(seqs(&s), [3, 4, 5]);
        // Byte bound: 10 bytes hold two 4-byte reports.
        let dir2 = tempfile::tempdir().map_err(io(Path::new("tmp")))?;
        let mut s = Spool::open(dir2.path(), 100, 10)?;
        assert_eq!(
            push(&mut s, 1, b"aaaa")? + push(&mut s, 2, b"bbbb")? + push(&mut s, 3, b"cccc")?,
            1
        );
        assert_eq!(seqs(&s), [2, 3]);
        assert_eq!(s.bytes(), 8);
        Ok(())
    }

    #[test]
    fn a_report_that_cannot_be_written_is_held_in_memory_and_delivered_from_there() -> Result<(), StateError> {
        let dir = tempfile::tempdir().map_err(io(Path::new("tmp")))?;
        let spool_dir = dir.path().join("spool");
        let mut s = Spool::open(&spool_dir, 100, 1 << 20)?;
        push(&mut s, 1, b"on disk")?;
        // The directory goes away (as a full or read-only disk refuses the
        // write): the report is kept in memory, not lost.
        std::fs::remove_dir_all(&spool_dir).map_err(io(&spool_dir))?;
        let p = s.push(2, b"in memory");
        assert!(p.not_written.is_some());
        assert_eq!(s.held_in_memory(), 1);
        assert_eq!(seqs(&s), [1, 2]);
        s.remove(1)?;
        assert_eq!(s.peek()?, Some((2, b"in memory".to_vec())));
        // Writable again: the next report goes to disk.
        std::fs::create_dir_all(&spool_dir).map_err(io(&spool_dir))?;
        push(&mut s, 3, b"disk again")?;
        s.remove(2)?;
        assert_eq!(s.held_in_memory(), 0);
        assert_eq!(s.peek()?, Some((3, b"disk again".to_vec())));
        assert_eq!(s.bytes(), 10);
        Ok(())
    }

    #[test]
    fn renumbering_moves_every_report_by_the_same_shift_in_order() -> Result<(), StateError> {
        let dir = tempfile::tempdir().map_err(io(Path::new("tmp")))?;
        let mut s = Spool::open(dir.path(), 100, 1 << 20)?;
        for seq in [3, 4, 6] {
            push(&mut s, seq, format!("r{seq}").as_bytes())?;
        }
        let lost = s.renumber(2, |b, seq| {
            Ok(format!("{}->{seq}", String::from_utf8_lossy(b)).into_bytes())
        });
        assert_eq!(lost, 0);
        assert_eq!(seqs(&s), [5, 6, 8]);
        assert_eq!(s.peek()?, Some((5, b"r3->5".to_vec())));
        // The files moved with them: a restart sees the new numbers.
        let s = Spool::open(dir.path(), 100, 1 << 20)?;
        assert_eq!(seqs(&s), [5, 6, 8]);
        assert_eq!(s.last_seq(), Some(8));
        Ok(())
    }
}
