//! Hot reload of the contracts file: `notify` watches the file's directory
//! (editors replace a file by renaming, which a watch on the file itself
//! would lose) and wakes on changes to the file's name; after a burst
//! settles, the file is loaded again. A broken file is logged with FILE:LINE
//! and counted once per bad edit ([`crate::reload`]), and the previous
//! contracts stay in force; a good one is swapped in whole. A file that
//! parses but has lost every contract or every user the file in force has
//! (what an editor leaves between truncating and writing, or a copy cut
//! short) counts as broken too ([`check_reload`]): applying it would lock
//! every user out and leave new cases out of scope.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use super::Shared;
use crate::metrics::Metrics;
use crate::reload::{Rejections, version_of};

/// Editors write a file in several steps (truncate, write, rename): wait for
/// the changes to settle so a half-written file is not reported as broken.
const SETTLE: Duration = Duration::from_millis(300);

/// Starts watching `file`; the watching stops when the returned watcher is
/// dropped. `shared` should already hold the file's contracts.
pub fn watch(file: PathBuf, shared: Shared, metrics: Arc<Metrics>) -> notify::Result<notify::RecommendedWatcher> {
    let dir = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = file.file_name().map(ToOwned::to_owned);
    let (tx, rx) = mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        let wake = match &ev {
            Ok(ev) => ev.paths.iter().any(|p| p.file_name() == name.as_deref()),
            Err(_) => true,
        };
        if wake {
            let _ = tx.send(ev.map(|_| ()));
        }
    })?;
    watcher.watch(&dir, RecursiveMode::NonRecursive)?;
    tokio::spawn(reloader(file, shared, metrics, rx));
    Ok(watcher)
}

async fn reloader(
    file: PathBuf,
    shared: Shared,
    metrics: Arc<Metrics>,
    mut rx: mpsc::UnboundedReceiver<notify::Result<()>>,
) {
    let mut rejections = Rejections::default();
    while let Some(first) = rx.recv().await {
        if let Err(e) = first {
            tracing::warn!(error = %e, file = %file.display(), "watching the contracts file");
        }
        // Swallow the rest of the burst.
        while let Ok(Some(_)) = tokio::time::timeout(SETTLE, rx.recv()).await {}
        let f = file.clone();
        let Ok(loaded) = tokio::task::spawn_blocking(move || {
            let loaded = super::load(&f);
            // The version rejected, as it was read.
            loaded.map_err(|e| (e, version_of([f.as_path()])))
        })
        .await
        else {
            continue;
        };
        let loaded = loaded
            .and_then(|next| check_reload(&file, &shared.get(), next).map_err(|e| (e, version_of([file.as_path()]))));
        apply(&file, loaded, &shared, &metrics, &mut rejections);
    }
}

/// Refuses a reload that would leave no contracts, or no users, where the
/// file in force has some: an empty or half-written file, rejected like a
/// syntax error. Removing every contract or user on purpose takes a restart.
pub fn check_reload(
    file: &Path,
    previous: &super::Contracts,
    next: super::Contracts,
) -> Result<super::Contracts, Vec<super::ContractError>> {
    let mut problems = Vec::new();
    for (what, before, after) in [
        ("[[contract]]", previous.contracts.len(), next.contracts.len()),
        ("[[user]]", previous.users.len(), next.users.len()),
    ] {
        if before > 0 && after == 0 {
            problems.push(super::ContractError {
                file: file.to_path_buf(),
                line: 0,
                subject: None,
                reason: format!(
                    "no {what} left (the contracts in force have {before}): an empty or half-written file is not \
                     applied; restart the collector to run without them"
                ),
            });
        }
    }
    if problems.is_empty() { Ok(next) } else { Err(problems) }
}

/// A bad version of the file: its problems, and its version ([`version_of`]).
type Rejected = (Vec<super::ContractError>, u64);

/// Swaps in good contracts; logs the problems of a bad version and counts it
/// once, however many problems it has and however often it is reloaded
/// unchanged.
fn apply(
    file: &Path,
    loaded: Result<super::Contracts, Rejected>,
    shared: &Shared,
    metrics: &Metrics,
    rejections: &mut Rejections,
) {
    match loaded {
        Ok(c) => {
            rejections.accepted();
            tracing::info!(
                file = %file.display(),
                contracts = c.contracts.len(),
                engineers = c.engineers.len(),
                users = c.users.len(),
                "contracts file reloaded"
            );
            metrics.set_config_fingerprint("contracts", &crate::replicas::file_fingerprint(file));
            shared.set(c);
        }
        Err((errors, version)) => {
            if !rejections.rejected(version) {
                tracing::debug!(file = %file.display(), "contracts file unchanged since it was rejected");
                return;
            }
            metrics.contract_file_errors.inc();
            for e in &errors {
                tracing::error!(problem = %e, "contracts file rejected; the previous contracts stay in force");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::fleet::Fleet;

    const FILE: &str = r#"[[customer]]
name = "acme"

[[user]]
name = "mia"
role = "manager"
password = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$3UqAsL6QkOKx9HKJiXiGb9JFjnHd6vuXv0fA3zsN2jY"
"#;

    /// Polls `f` for up to ten seconds.
    async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !f() {
            assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    #[test]
    fn an_empty_or_contractless_file_is_refused_when_contracts_are_in_force() {
        let file = Path::new("contracts.toml");
        let with = super::super::parse_file(&(FILE.to_string() + CONTRACT), file).unwrap();
        let empty = super::super::parse_file("", file).unwrap();
        let errors = check_reload(file, &with, empty.clone()).unwrap_err();
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "contracts.toml: no [[contract]] left (the contracts in force have 1): an empty or half-written file is not applied; restart the collector to run without them",
                "contracts.toml: no [[user]] left (the contracts in force have 1): an empty or half-written file is not applied; restart the collector to run without them"
            ]
        );
        // Users kept, the contract gone: refused as well.
        let users_only = super::super::parse_file(FILE, file).unwrap();
        assert_eq!(check_reload(file, &with, users_only.clone()).unwrap_err().len(), 1);
        // Nothing in force to lose: an empty file is what it says.
        assert!(check_reload(file, &empty, empty.clone()).is_ok());
        assert!(check_reload(file, &users_only, with.clone()).is_ok());
        assert!(check_reload(file, &with, with.clone()).is_ok());
    }

    const CONTRACT: &str = r#"
[[contract]]
name = "acme-gold"
customer = "acme"
covers = { labels = { customer = "acme" } }
hours = "7x24"
time_zone = "UTC"
response = { critical = "1h" }
resolution = { critical = "8h" }
"#;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_file_truncated_mid_save_keeps_the_contracts_and_users() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("contracts.toml");
        std::fs::write(&path, FILE.to_string() + CONTRACT).unwrap();
        let shared = Shared::new(super::super::load(&path).unwrap());
        let metrics = Arc::new(Metrics::new(Arc::new(Fleet::default()), 3).unwrap());
        let _watcher = watch(path.clone(), shared.clone(), metrics.clone()).unwrap();
        // What an editor does before it writes the new content.
        std::fs::write(&path, "").unwrap();
        eventually("the refusal counted", || metrics.contract_file_errors.get() >= 1).await;
        let c = shared.get();
        assert_eq!(c.contracts.len(), 1);
        assert!(c.user("mia").is_some());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_change_is_applied_and_a_broken_file_keeps_the_previous() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("contracts.toml");
        std::fs::write(&path, FILE).unwrap();
        let shared = Shared::new(super::super::load(&path).unwrap());
        let metrics = Arc::new(Metrics::new(Arc::new(Fleet::default()), 3).unwrap());
        let _watcher = watch(path.clone(), shared.clone(), metrics.clone()).unwrap();
        assert_eq!(shared.get().users.len(), 1);

        // Another file in the directory does not matter.
        std::fs::write(dir.path().join("notes.txt"), "broken = [").unwrap();

        let more = FILE.to_string()
            + "\n[[user]]\nname = \"carol\"\nrole = \"customer\"\ncustomer = \"acme\"\npassword = \"$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$3UqAsL6QkOKx9HKJiXiGb9JFjnHd6vuXv0fA3zsN2jY\"\n";
        std::fs::write(&path, &more).unwrap();
        eventually("the new user", || shared.get().user("carol").is_some()).await;
        assert_eq!(metrics.contract_file_errors.get(), 0);

        std::fs::write(&path, more.replace("role = \"customer\"", "role = \"boss\"")).unwrap();
        eventually("the error count", || metrics.contract_file_errors.get() == 1).await;
        let c = shared.get();
        assert_eq!(c.user("carol").map(|u| u.role), Some(crate::auth::Role::Customer));
        assert!(
            metrics
                .render()
                .unwrap()
                .contains("caretaker_contract_file_errors_total 1")
        );
    }

    #[test]
    fn one_bad_contracts_edit_is_counted_once_not_per_problem_or_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("contracts.toml");
        std::fs::write(&path, FILE).unwrap();
        let shared = Shared::new(super::super::load(&path).unwrap());
        let metrics = Metrics::new(Arc::new(Fleet::default()), 3).unwrap();
        let mut rejections = Rejections::default();
        let reload = |rejections: &mut Rejections| {
            let loaded = super::super::load(&path).map_err(|e| (e, version_of([path.as_path()])));
            apply(&path, loaded, &shared, &metrics, rejections);
        };
        // Three problems in one edit, reloaded ten times.
        let bad = FILE.replace("role = \"manager\"", "role = \"boss\"\nshoe = 1\nhat = 2");
        std::fs::write(&path, &bad).unwrap();
        for _ in 0..10 {
            reload(&mut rejections);
        }
        assert_eq!(metrics.contract_file_errors.get(), 1);
        // Another bad edit counts; the good file, then the first bad one again, too.
        std::fs::write(&path, bad.replace("hat = 2", "")).unwrap();
        reload(&mut rejections);
        assert_eq!(metrics.contract_file_errors.get(), 2);
        std::fs::write(&path, FILE).unwrap();
        reload(&mut rejections);
        std::fs::write(&path, &bad).unwrap();
        reload(&mut rejections);
        reload(&mut rejections);
        assert_eq!(metrics.contract_file_errors.get(), 3);
        assert_eq!(shared.get().users.len(), 1, "the good version stays in force");
    }
}
