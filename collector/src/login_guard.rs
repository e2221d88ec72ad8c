//! What stands between `POST /login` and the password check: throttling of
//! failed logins per user name and per source address, and a bound on the
//! password checks running at once.
//!
//! - **Throttling.** Each failed login counts against the user name and the
//!   source address. At `user_failures_before_lock` (per name) or
//!   `source_failures_before_lock` (per address) failures that key is
//!   locked for `lock_secs`; every further failure doubles the lock, up to
//!   `max_lock_secs`. While locked, a login is answered 429 with
//!   `Retry-After` without checking the password, so the right password is
//!   refused too. A success clears the user's count (not the address's, or
//!   a guesser holding one account could reset it); failures older than
//!   `max_lock_secs` are forgotten. The tables are bounded: past
//!   [`MAX_TRACKED`] keys the stalest is dropped.
//! - **Password checks.** argon2id takes about 19 MB and a core for a moment;
//!   at most `max_concurrent_password_checks` run at once, the rest wait up
//!   to `password_check_wait_secs` and are then answered 429.
//!
//! The clock is a parameter (`now`, from [`LoginGuard::now`]), so tests step
//! through locks without waiting for them. Counting failures and growing locks is specific enough
//! to write here; a token-bucket crate would not give the lock semantics.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::LoginConfig;

/// The most user names, and the most addresses, whose failures are kept.
pub const MAX_TRACKED: usize = 10_000;

/// What a lock is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    User,
    Source,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::User => "user",
            Scope::Source => "source",
        }
    }
}

/// A lock in force: on what, and for how much longer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Locked {
    pub scope: Scope,
    pub remaining: Duration,
}

#[derive(Debug, Clone, Copy)]
struct Record {
    failures: u32,
    last: Instant,
    locked_until: Option<Instant>,
}

/// Failures per key, bounded.
struct Table<K> {
    map: HashMap<K, Record>,
    threshold: u32,
}

impl<K: std::hash::Hash + Eq + Clone> Table<K> {
    fn new(threshold: u32) -> Self {
        Self {
            map: HashMap::new(),
            threshold,
        }
    }

    /// The record of `key` as of `now`, with forgotten failures dropped.
    fn current(&mut self, key: &K, now: Instant, forget: Duration) -> Option<Record> {
        let r = *self.map.get(key)?;
        let locked = r.locked_until.is_some_and(|u| u > now);
        if !locked && now.saturating_duration_since(r.last) >= forget {
            self.map.remove(key);
            return None;
        }
        Some(r)
    }

    fn remaining(&mut self, key: &K, now: Instant, forget: Duration) -> Option<Duration> {
        self.current(key, now, forget)?
            .locked_until
            .filter(|u| *u > now)
            .map(|u| u - now)
    }

    /// Counts a failure; answers the lock it starts, if any.
    fn fail(&mut self, key: &K, now: Instant, lock: Duration, max_lock: Duration) -> Option<Duration> {
        let mut r = self.current(key, now, max_lock).unwrap_or(Record {
            failures: 0,
            last: now,
            locked_until: None,
        });
        r.failures = r.failures.saturating_add(1);
        r.last = now;
        let started = (r.failures >= self.threshold).then(|| {
            let doublings = (r.failures - self.threshold).min(31);
            lock.saturating_mul(1u32 << doublings).min(max_lock)
        });
        if let Some(d) = started {
            r.locked_until = Some(now + d);
        }
        if !self.map.contains_key(key) && self.map.len() >= MAX_TRACKED {
            self.evict(now, max_lock);
        }
        self.map.insert(key.clone(), r);
        started
    }

    /// Drops forgotten records; if none were, the stalest one.
    fn evict(&mut self, now: Instant, forget: Duration) {
        self.map
            .retain(|_, r| r.locked_until.is_some_and(|u| u > now) || now.saturating_duration_since(r.last) < forget);
        if self.map.len() >= MAX_TRACKED {
            let stalest = self.map.iter().min_by_key(|(_, r)| r.last).map(|(k, _)| k.clone());
            if let Some(k) = stalest {
                self.map.remove(&k);
            }
        }
    }
}

struct Tables {
    users: Table<String>,
    sources: Table<IpAddr>,
}

/// The login throttle and the password check limiter of one collector.
pub struct LoginGuard {
    lock: Duration,
    max_lock: Duration,
    wait: Duration,
    tables: Mutex<Tables>,
    checks: Arc<Semaphore>,
    /// Password checks running now, and the most seen at once.
    running: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
    /// Added to the clock: lets handler tests step past a lock.
    skew: Mutex<Duration>,
}

impl Default for LoginGuard {
    fn default() -> Self {
        Self::new(&LoginConfig::default())
    }
}

impl LoginGuard {
    pub fn new(cfg: &LoginConfig) -> Self {
        Self {
            lock: Duration::from_secs(cfg.lock_secs),
            max_lock: Duration::from_secs(cfg.max_lock_secs),
            wait: Duration::from_secs(cfg.password_check_wait_secs),
            tables: Mutex::new(Tables {
                users: Table::new(cfg.user_failures_before_lock),
                sources: Table::new(cfg.source_failures_before_lock),
            }),
            checks: Arc::new(Semaphore::new(cfg.max_concurrent_password_checks)),
            running: Arc::new(AtomicUsize::new(0)),
            peak: Arc::new(AtomicUsize::new(0)),
            skew: Mutex::new(Duration::ZERO),
        }
    }

    /// The guard's clock.
    pub fn now(&self) -> Instant {
        Instant::now() + *self.skew.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Moves the guard's clock forward (tests).
    #[cfg(test)]
    pub(crate) fn advance(&self, by: Duration) {
        *self.skew.lock().unwrap_or_else(|p| p.into_inner()) += by;
    }

    fn tables(&self) -> std::sync::MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The lock in force on `user` or `source`, if any (the longer one).
    pub fn locked(&self, user: &str, source: IpAddr, now: Instant) -> Option<Locked> {
        let mut t = self.tables();
        let user = t
            .users
            .remaining(&user.to_string(), now, self.max_lock)
            .map(|remaining| Locked {
                scope: Scope::User,
                remaining,
            });
        let source = t
            .sources
            .remaining(&source, now, self.max_lock)
            .map(|remaining| Locked {
                scope: Scope::Source,
                remaining,
            });
        match (user, source) {
            (Some(u), Some(s)) => Some(if s.remaining > u.remaining { s } else { u }),
            (u, s) => u.or(s),
        }
    }

    /// Counts a failed login; answers the locks it starts.
    pub fn failed(&self, user: &str, source: IpAddr, now: Instant) -> Vec<Locked> {
        let mut t = self.tables();
        let mut out = Vec::new();
        if let Some(d) = t.users.fail(&user.to_string(), now, self.lock, self.max_lock) {
            out.push(Locked {
                scope: Scope::User,
                remaining: d,
            });
        }
        if let Some(d) = t.sources.fail(&source, now, self.lock, self.max_lock) {
            out.push(Locked {
                scope: Scope::Source,
                remaining: d,
            });
        }
        out
    }

    /// A successful login clears the user's failures.
    pub fn succeeded(&self, user: &str) {
        self.tables().users.map.remove(user);
    }

    /// A slot for one password check, waiting at most the configured time;
    /// `None` when none came free. Hold the slot until the check is done
    /// (move it into the blocking task: a client that hangs up must not
    /// free a slot whose check still runs).
    pub async fn slot(&self) -> Option<CheckSlot> {
        let sem = self.checks.clone();
        let permit = if self.wait.is_zero() {
            sem.try_acquire_owned().ok()?
        } else {
            tokio::time::timeout(self.wait, sem.acquire_owned()).await.ok()?.ok()?
        };
        let now = self.running.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
        Some(CheckSlot {
            _permit: permit,
            running: self.running.clone(),
        })
    }

    /// How long a refused login is told to wait before trying again.
    pub fn busy_retry_after(&self) -> Duration {
        self.wait.max(Duration::from_secs(1))
    }

    /// The most password checks that ran at once since start.
    pub fn peak_checks(&self) -> usize {
        self.peak.load(Ordering::SeqCst)
    }

    #[cfg(test)]
    pub(crate) fn semaphore(&self) -> Arc<Semaphore> {
        self.checks.clone()
    }
}

/// One running password check; frees its slot when dropped.
pub struct CheckSlot {
    _permit: OwnedSemaphorePermit,
    running: Arc<AtomicUsize>,
}

impl Drop for CheckSlot {
    fn drop(&mut self) {
        self.running.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn cfg() -> LoginConfig {
        LoginConfig {
            user_failures_before_lock: 3,
            source_failures_before_lock: 5,
            lock_secs: 60,
            max_lock_secs: 600,
            max_concurrent_password_checks: 2,
            password_check_wait_secs: 0,
        }
    }

    const A: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const B: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    #[test]
    fn a_user_is_locked_after_repeated_failures_and_the_lock_doubles() {
        let g = LoginGuard::new(&cfg());
        let t0 = Instant::now();
        let s = Duration::from_secs;
        assert!(g.failed("mia", A, t0).is_empty());
        assert!(g.failed("mia", B, t0).is_empty());
        assert_eq!(g.locked("mia", A, t0), None);
        let locks = g.failed("mia", A, t0 + s(1));
        assert_eq!(
            locks,
            [Locked {
                scope: Scope::User,
                remaining: s(60)
            }]
        );
        // Locked from any address, and only that user.
        for src in [A, B] {
            assert_eq!(g.locked("mia", src, t0 + s(2)).map(|l| l.scope), Some(Scope::User));
        }
        assert_eq!(g.locked("ana", B, t0 + s(2)), None);
        assert_eq!(g.locked("mia", B, t0 + s(31)).map(|l| l.remaining), Some(s(30)));
        // Over after 60 s; the next failure locks for twice as long, then 4x...
        assert_eq!(g.locked("mia", B, t0 + s(61)), None);
        assert_eq!(g.failed("mia", B, t0 + s(61))[0].remaining, s(120));
        assert_eq!(g.failed("mia", B, t0 + s(200))[0].remaining, s(240));
        // ... up to the most.
        assert_eq!(g.failed("mia", B, t0 + s(500))[0].remaining, s(480));
        assert_eq!(g.failed("mia", B, t0 + s(1000))[0].remaining, s(600));
        // A success clears the user's count.
        g.succeeded("mia");
        assert_eq!(g.locked("mia", A, t0 + s(1001)), None);
        assert!(g.failed("mia", A, t0 + s(1002)).is_empty());
    }

    #[test]
    fn one_source_is_locked_across_user_names_and_old_failures_are_forgotten() {
        let g = LoginGuard::new(&cfg());
        let t0 = Instant::now();
        let s = Duration::from_secs;
        for (i, name) in ["a", "b", "c", "d"].iter().enumerate() {
            assert!(g.failed(name, A, t0 + s(i as u64)).is_empty(), "{name}");
        }
        let locks = g.failed("e", A, t0 + s(4));
        assert_eq!(locks.iter().map(|l| l.scope).collect::<Vec<_>>(), [Scope::Source]);
        assert_eq!(g.locked("anyone", A, t0 + s(5)).map(|l| l.scope), Some(Scope::Source));
        assert_eq!(g.locked("anyone", B, t0 + s(5)), None);
        // Failures spread wider than max_lock_secs never add up to a lock.
        let g = LoginGuard::new(&cfg());
        for i in 0..10 {
            assert!(g.failed("mia", A, t0 + s(601 * i)).is_empty(), "{i}");
        }
    }

    #[test]
    fn the_tables_stay_bounded() {
        let g = LoginGuard::new(&cfg());
        let t0 = Instant::now();
        for i in 0..(MAX_TRACKED + 50) {
            g.failed(&format!("user{i}"), A, t0);
        }
        assert!(g.tables().users.map.len() <= MAX_TRACKED);
        // The one source behind them all is locked.
        assert_eq!(g.locked("anything", A, t0).map(|l| l.scope), Some(Scope::Source));
    }

    #[tokio::test]
    async fn password_checks_are_bounded() {
        let g = LoginGuard::new(&cfg());
        let a = g.slot().await.unwrap();
        let b = g.slot().await.unwrap();
        assert!(g.slot().await.is_none(), "a third check waits (here: not at all)");
        assert_eq!(g.peak_checks(), 2);
        drop(a);
        let c = g.slot().await.unwrap();
        drop((b, c));
        assert_eq!(g.peak_checks(), 2);

        // With a wait, a check gets the slot freed meanwhile.
        let g = Arc::new(LoginGuard::new(&LoginConfig {
            password_check_wait_secs: 30,
            ..cfg()
        }));
        let held = (g.slot().await.unwrap(), g.slot().await.unwrap());
        let waiting = {
            let g = g.clone();
            tokio::spawn(async move { g.slot().await.is_some() })
        };
        drop(held);
        assert!(waiting.await.unwrap());
        assert_eq!(g.peak_checks(), 2);
    }
}
