//! Hot reload of the operator rules: `notify` watches `rules_dir`; after a
//! burst of changes settles, the directory is reloaded with
//! [`rules::reload`]. A broken file is logged with FILE:LINE and counted once
//! per bad edit ([`crate::reload`]), and the previous rules stay active; a
//! good change swaps the engine's rules.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use super::live::DetectHandle;
use crate::reload::{Rejections, version_of};
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
    current: RuleSet,
    detect: DetectHandle,
    mut rx: mpsc::UnboundedReceiver<notify::Result<()>>,
) {
    let mut reloader = Reloader {
        dir,
        current,
        detect,
        rejections: Rejections::default(),
    };
    while let Some(first) = rx.recv().await {
        if let Err(e) = first {
            tracing::warn!(error = %e, dir = %reloader.dir.display(), "watching the rules directory");
        }
        // Swallow the rest of the burst.
        while let Ok(Some(_)) = tokio::time::timeout(SETTLE, rx.recv()).await {}
        reloader.reload().await;
    }
}

/// The rules in force and the last rejected version of the directory.
struct Reloader {
    dir: PathBuf,
    current: RuleSet,
    detect: DetectHandle,
    rejections: Rejections,
}

impl Reloader {
    /// Loads the directory again: good rules are swapped in; a broken
    /// version is logged problem by problem and counted once, however many
    /// problems it has and however often it is reloaded unchanged.
    async fn reload(&mut self) {
        let (d, c) = (self.dir.clone(), self.current.clone());
        let Ok((set, errors, version)) = tokio::task::spawn_blocking(move || {
            let (set, errors) = rules::reload(&c, &d);
            // The broken files (or the directory), as they were read.
            let mut files: Vec<&Path> = errors.iter().map(|e| e.file.as_path()).collect();
            files.dedup();
            let version = version_of(files);
            (set, errors, version)
        })
        .await
        else {
            return;
        };
        if errors.is_empty() {
            self.rejections.accepted();
            self.current = set.clone();
            self.detect
                .metrics
                .set_config_fingerprint("rules", &super::rule_set_fingerprint(&set));
            self.detect.set_rules(set).await;
            return;
        }
        if !self.rejections.rejected(version) {
            tracing::debug!(dir = %self.dir.display(), "rule files unchanged since they were rejected");
            return;
        }
        self.detect.metrics.rule_file_errors.inc();
        for e in &errors {
            tracing::error!(problem = %e, "rule file rejected; the previous rules stay active");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Arc;

    use super::*;
    use crate::fleet::Fleet;
    use crate::metrics::Metrics;
    use crate::writer::Writer;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_bad_rules_edit_is_counted_once_not_per_problem_or_reload() {
        let dir = tempfile::tempdir().unwrap();
        let rules_dir = dir.path().join("rules");
        std::fs::create_dir(&rules_dir).unwrap();
        let store = crate::store::testing::TestStore::new(dir.path());
        let fleet = Arc::new(Fleet::default());
        let (writer, _t) = Writer::start(store.open(), fleet.clone()).unwrap();
        let metrics = Arc::new(Metrics::new(fleet, 3).unwrap());
        let current = rules::load(Some(&rules_dir)).unwrap();
        let (detect, _task) = super::super::live::start(
            current.clone(),
            writer,
            metrics.clone(),
            crate::cases::Policy::default(),
            Duration::from_secs(3600),
            crate::config::DetectConfig::default().max_series_per_host,
            Default::default(),
        );
        let mut r = Reloader {
            dir: rules_dir.clone(),
            current,
            detect,
            rejections: Rejections::default(),
        };
        // Two broken files, several problems each.
        std::fs::write(
            rules_dir.join("a.toml"),
            "[[rule]]\nname = \"a\"\nbogus = 1\nalso = 2\n",
        )
        .unwrap();
        std::fs::write(rules_dir.join("b.toml"), "[[rule]\n").unwrap();
        for _ in 0..10 {
            r.reload().await;
        }
        assert_eq!(metrics.rule_file_errors.get(), 1, "one bad edit, ten reloads");
        // A file beside them changes: the same bad version, not counted.
        std::fs::write(rules_dir.join("notes.txt"), "x").unwrap();
        r.reload().await;
        assert_eq!(metrics.rule_file_errors.get(), 1);
        // Another bad edit counts.
        std::fs::write(rules_dir.join("b.toml"), "[[rule]]\n").unwrap();
        r.reload().await;
        r.reload().await;
        assert_eq!(metrics.rule_file_errors.get(), 2);
        // Fixed, then broken the same way again: a new bad edit.
        std::fs::remove_file(rules_dir.join("a.toml")).unwrap();
        std::fs::remove_file(rules_dir.join("b.toml")).unwrap();
        r.reload().await;
        assert_eq!(metrics.rule_file_errors.get(), 2);
        std::fs::write(rules_dir.join("b.toml"), "[[rule]]\n").unwrap();
        r.reload().await;
        assert_eq!(metrics.rule_file_errors.get(), 3);
    }
}
