//! Hot reload of the operator rules: `notify` watches `rules_dir`; after a
//! burst of changes settles, the directory is reloaded with
//! [`rules::reload`]. A broken file is logged with FILE:LINE and counted, and
//! the previous rules stay active; a good change swaps the engine's rules.

use std::path::PathBuf;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use super::live::DetectHandle;
use crate::rules::{self, RuleSet};

/// Editors write a file in several steps (truncate, write, rename): wait for
/// the changes to settle so a half-written file is not reported as broken.
const SETTLE: Duration = Duration::from_millis(300);

/// Starts watching `dir`; the watching stops when the returned watcher is dropped.
pub fn watch(dir: PathBuf, current: RuleSet, detect: DetectHandle) -> notify::Result<notify::RecommendedWatcher> {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        // Only a wake-up: the reload reads the whole directory anyway.
        let _ = tx.send(ev.map(|_| ()));
    })?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    tokio::spawn(reloader(dir, current, detect, rx));
    Ok(watcher)
}

async fn reloader(
    dir: PathBuf,
    mut current: RuleSet,
    detect: DetectHandle,
    mut rx: mpsc::UnboundedReceiver<notify::Result<()>>,
) {
    while let Some(first) = rx.recv().await {
        if let Err(e) = first {
            tracing::warn!(error = %e, dir = %dir.display(), "watching the rules directory");
        }
        // Swallow the rest of the burst.
        while let Ok(Some(_)) = tokio::time::timeout(SETTLE, rx.recv()).await {}
        let (d, c) = (dir.clone(), current.clone());
        let Ok((set, errors)) = tokio::task::spawn_blocking(move || rules::reload(&c, &d)).await else {
            continue;
        };
        if errors.is_empty() {
            current = set.clone();
            detect.set_rules(set).await;
            continue;
        }
        detect.metrics.rule_file_errors.inc_by(errors.len() as u64);
        for e in &errors {
            tracing::error!(problem = %e, "rule file rejected; the previous rules stay active");
        }
    }
}
