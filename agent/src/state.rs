//! What the agent must remember across restarts: its credential (from
//! enrollment) and its sequence counter and drop counters. Files are written
//! atomically (temporary file, fsync, rename) so a crash leaves either the old
//! or the new content, never a torn file.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path}: not valid agent state: {source}")]
    Corrupt { path: PathBuf, source: serde_json::Error },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `bytes` to `path` atomically, with the given Unix mode.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), StateError> {
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let written = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)
            .map_err(io(&tmp))?;
        f.write_all(bytes).map_err(io(&tmp))?;
        f.sync_all().map_err(io(&tmp))?;
        std::fs::rename(&tmp, path).map_err(io(path))
    })();
    if written.is_err() {
        // A full disk leaves a half-written temporary file: remove it, or it
        // keeps the space that the next attempt needs.
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    if let Some(dir) = path.parent() {
        // Make the rename itself durable.
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// Reads a JSON state file: `Ok(None)` when it does not exist.
pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Option<T>, StateError> {
    match std::fs::read(path) {
        Ok(b) => serde_json::from_slice(&b)
            .map(Some)
            .map_err(|source| StateError::Corrupt {
                path: path.into(),
                source,
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(path)(e)),
    }
}

/// The agent's own credential, issued by the collector at enrollment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Credential {
    pub agent_id: String,
    pub secret: String,
    /// Collector that issued it, for the operator's information.
    pub collector_url: String,
}

impl Credential {
    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join("credential.json")
    }

    pub fn load(state_dir: &Path) -> Result<Option<Self>, StateError> {
        read_json(&Self::path(state_dir))
    }

    pub fn save(&self, state_dir: &Path) -> Result<(), StateError> {
        std::fs::create_dir_all(state_dir).map_err(io(state_dir))?;
        let bytes = serde_json::to_vec_pretty(self).map_err(|source| StateError::Corrupt {
            path: Self::path(state_dir),
            source,
        })?;
        write_atomic(&Self::path(state_dir), &bytes, 0o600)
    }
}

/// Counters that must survive restarts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Counters {
    /// The sequence number the next report gets.
    pub next_seq: u64,
    /// Reports dropped because the spool was full, since enrollment.
    #[serde(default)]
    pub spool_dropped_total: u64,
    /// Reports the collector refused as malformed/too large, since enrollment.
    #[serde(default)]
    pub rejected_total: u64,
}

impl Default for Counters {
    fn default() -> Self {
        Self {
            next_seq: 1,
            spool_dropped_total: 0,
            rejected_total: 0,
        }
    }
}

impl Counters {
    fn path(state_dir: &Path) -> PathBuf {
        state_dir.join("counters.json")
    }

    pub fn load(state_dir: &Path) -> Result<Self, StateError> {
        Ok(read_json(&Self::path(state_dir))?.unwrap_or_default())
    }

    pub fn save(&self, state_dir: &Path) -> Result<(), StateError> {
        let bytes = serde_json::to_vec(self).map_err(|source| StateError::Corrupt {
            path: Self::path(state_dir),
            source,
        })?;
        write_atomic(&Self::path(state_dir), &bytes, 0o600)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_defaults() -> Result<(), StateError> {
        let dir = tempfile::tempdir().map_err(io(Path::new("tmp")))?;
        assert_eq!(Counters::load(dir.path())?, Counters::default());
        assert_eq!(Credential::load(dir.path())?, None);
        let c = Counters {
            next_seq: 42,
            spool_dropped_total: 3,
            rejected_total: 1,
        };
        c.save(dir.path())?;
        assert_eq!(Counters::load(dir.path())?, c);
        let cred = Credential {
            agent_id: "a".into(),
            secret: "s".into(),
            collector_url: "https://x".into(),
        };
        cred.save(dir.path())?;
        assert_eq!(Credential::load(dir.path())?, Some(cred));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(Credential::path(dir.path()))
            .map_err(io(dir.path()))?
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        Ok(())
    }

    #[test]
    fn corrupt_state_names_the_file() {
        let dir = tempfile::tempdir().ok();
        let Some(dir) = dir else { return };
        let _ = std::fs::write(dir.path().join("counters.json"), b"{not json");
        let e = Counters::load(dir.path())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(e.contains("counters.json: not valid agent state"), "{e}");
    }
}
