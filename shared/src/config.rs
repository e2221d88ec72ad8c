//! Loading a TOML config file the same way on both sides: strict parsing
//! (syntax errors and unknown keys name their line), then a semantic check
//! that reports every problem at once, each naming its key.

use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

/// A config type that can say everything wrong with its values.
pub trait Checked: DeserializeOwned {
    /// Every problem, each starting with its key (`interval_secs: ...`).
    fn problems(&self) -> Vec<String>;
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {file}: {source}")]
    Read { file: PathBuf, source: std::io::Error },
    #[error("{file}: {message}")]
    Parse { file: PathBuf, message: String },
    #[error("{file}: {} problem(s):\n  {}", .problems.len(), .problems.join("\n  "))]
    Invalid { file: PathBuf, problems: Vec<String> },
}

pub fn load<T: Checked>(file: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(file).map_err(|source| ConfigError::Read {
        file: file.into(),
        source,
    })?;
    parse(&text, file)
}

/// Parses `text` as if read from `file` (the name goes into messages).
pub fn parse<T: Checked>(text: &str, file: &Path) -> Result<T, ConfigError> {
    let cfg: T = toml::from_str(text).map_err(|e| ConfigError::Parse {
        file: file.into(),
        message: e.to_string().trim_end().to_string(),
    })?;
    let problems = cfg.problems();
    if problems.is_empty() {
        Ok(cfg)
    } else {
        Err(ConfigError::Invalid {
            file: file.into(),
            problems,
        })
    }
}
