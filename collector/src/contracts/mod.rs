//! Service contracts, engineers and on-call rotations, read from one TOML
//! file, and the pure SLA arithmetic over them: which contract covers an
//! asset, when a case's response and resolution are due in service time,
//! how much SLA time a case has used (from its status log, holds the
//! contract names pausing the clock), which escalation steps are due, and
//! who is on call. The queue uses these for assignment and SLA.

mod calendar;
mod parse;
mod sla;
pub mod watch;

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

pub use calendar::Calendar;
pub use parse::{load, parse_file};
pub use sla::{Deadlines, deadlines, elapsed, escalations_due, on_call};

use crate::cases::{HoldReason, Severity};

/// The contracts in force, shared by the API, the queue and the reloader:
/// readers take a snapshot, a reload swaps it whole. Each swap is counted so
/// the queue can re-match the cases no contract covered ([`Shared::rematch_due`]).
#[derive(Debug, Clone, Default)]
pub struct Shared(std::sync::Arc<SharedInner>);

#[derive(Debug, Default)]
struct SharedInner {
    current: std::sync::RwLock<std::sync::Arc<Contracts>>,
    /// Swaps so far.
    changes: std::sync::atomic::AtomicU64,
    /// The swap the queue last re-matched against.
    rematched: std::sync::atomic::AtomicU64,
}

impl Shared {
    pub fn new(c: Contracts) -> Shared {
        let s = Shared::default();
        s.set(c);
        s
    }

    /// The contracts in force now.
    pub fn get(&self) -> std::sync::Arc<Contracts> {
        self.0.current.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn set(&self, c: Contracts) {
        *self.0.current.write().unwrap_or_else(|p| p.into_inner()) = std::sync::Arc::new(c);
        self.0.changes.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether the contracts changed since the last call that answered
    /// true: the queue then re-matches its out-of-scope cases.
    pub fn rematch_due(&self) -> bool {
        use std::sync::atomic::Ordering::SeqCst;
        let changes = self.0.changes.load(SeqCst);
        self.0.rematched.swap(changes, SeqCst) != changes
    }
}

/// One problem in a contracts file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ContractError {
    pub file: PathBuf,
    /// 1-based line; 0 when the problem is not tied to a line.
    pub line: usize,
    /// `contract "X"`, `engineer "Y"`, `rotation 2`, when known.
    pub subject: Option<String>,
    /// What is wrong, led by the field concerned.
    pub reason: String,
}

impl fmt::Display for ContractError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
        }
        if let Some(s) = &self.subject {
            write!(f, ": {s}")?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// A contracts file was rejected; its problems were reported one by one.
#[derive(Debug, thiserror::Error)]
#[error("{0} problem(s) in the contracts file")]
pub struct ContractsInvalid(pub usize);

/// Everything in one contracts file, checked.
#[derive(Debug, Clone, Default)]
pub struct Contracts {
    pub customers: Vec<Customer>,
    /// In file order: the first contract covering an asset wins.
    pub contracts: Vec<Contract>,
    pub engineers: Vec<Engineer>,
    pub rotations: Vec<Rotation>,
    /// Who may log in to the web pages and the API.
    pub users: Vec<User>,
}

impl Contracts {
    /// The user with this login name.
    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.iter().find(|u| u.name == name)
    }

    /// The user owning an API token, by the token's SHA-256 in hex. Every
    /// token is compared in constant time.
    pub fn user_by_token(&self, sha256_hex: &str) -> Option<&User> {
        let mut found = None;
        for u in &self.users {
            for t in &u.tokens {
                if crate::auth::ct_eq(t.as_bytes(), sha256_hex.as_bytes()) && found.is_none() {
                    found = Some(u);
                }
            }
        }
        found
    }

    /// The contract covering an asset. Contracts may overlap; the first one
    /// in the file that matches wins, so put the specific ones first.
    pub fn contract_for(&self, host: &str, labels: &BTreeMap<String, String>) -> Option<&Contract> {
        self.contracts.iter().find(|c| c.matches(host, labels))
    }

    /// Every customer the file names: its customers and those of its contracts.
    pub fn customer_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .customers
            .iter()
            .map(|c| c.name.clone())
            .chain(self.contracts.iter().map(|c| c.customer.clone()))
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// The zone `user`'s pages show times in: the user's own `time_zone`,
    /// else (a customer's user) the zone of the customer's first contract,
    /// else `fallback`.
    pub fn time_zone_of<'a>(&'a self, user: &str, customer: Option<&str>, fallback: &'a str) -> &'a str {
        let own = self.user(user).and_then(|u| u.time_zone.as_deref());
        let contract = || {
            let customer = customer?;
            let c = self.contracts.iter().find(|c| c.customer == customer)?;
            Some(c.calendar.time_zone())
        };
        own.or_else(contract).unwrap_or(fallback)
    }

    /// The contract called `name` (the one a case was matched to).
    pub fn named(&self, name: &str) -> Option<&Contract> {
        self.contracts.iter().find(|c| c.name == name)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Customer {
    pub name: String,
    pub sites: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Contract {
    pub name: String,
    pub customer: String,
    /// Hosts covered by name.
    pub hosts: Vec<String>,
    /// Assets whose labels include all of these are covered.
    pub labels: BTreeMap<String, String>,
    pub calendar: Calendar,
    /// Service time to the first response, per severity.
    pub response: Targets,
    /// Service time to resolution, per severity.
    pub resolution: Targets,
    /// Hold reasons that stop the SLA clock.
    pub pausing: Vec<HoldReason>,
    pub escalation: Vec<Step>,
}

impl Contract {
    /// Whether this contract covers the asset: its host is listed, or it has
    /// every label the contract names (with the same value).
    pub fn matches(&self, host: &str, labels: &BTreeMap<String, String>) -> bool {
        self.hosts.iter().any(|h| h == host)
            || (!self.labels.is_empty() && self.labels.iter().all(|(k, v)| labels.get(k) == Some(v)))
    }

    /// One line for `contracts check`.
    pub fn summary(&self) -> String {
        let mut covers = Vec::new();
        if !self.hosts.is_empty() {
            covers.push(format!("{} host(s)", self.hosts.len()));
        }
        if !self.labels.is_empty() {
            let l: Vec<String> = self.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            covers.push(l.join(","));
        }
        let pausing: Vec<&str> = self.pausing.iter().map(|h| h.as_str()).collect();
        format!(
            "contract {:?} (customer {:?}): covers {}; {}; {} holiday(s); response {}; resolution {}; pausing [{}]; {} escalation step(s)",
            self.name,
            self.customer,
            covers.join(" or "),
            self.calendar.describe(),
            self.calendar.holidays().len(),
            self.response,
            self.resolution,
            pausing.join(", "),
            self.escalation.len()
        )
    }
}

/// Service-time targets in ms per severity; `None`: no target.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Targets {
    pub critical: Option<i64>,
    pub major: Option<i64>,
    pub warning: Option<i64>,
    pub info: Option<i64>,
}

impl Targets {
    pub fn get(&self, severity: Severity) -> Option<i64> {
        match severity {
            Severity::Critical => self.critical,
            Severity::Major => self.major,
            Severity::Warning => self.warning,
            Severity::Info => self.info,
        }
    }
}

impl fmt::Display for Targets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = [
            ("critical", self.critical),
            ("major", self.major),
            ("warning", self.warning),
            ("info", self.info),
        ]
        .into_iter()
        .filter_map(|(n, v)| v.map(|ms| format!("{n} {}", format_duration(ms))))
        .collect();
        if parts.is_empty() {
            f.write_str("none")
        } else {
            f.write_str(&parts.join(", "))
        }
    }
}

/// "1d4h", "30m": the inverse of `parse_duration` for whole minutes.
fn format_duration(ms: i64) -> String {
    let mut s = ms / 1000;
    let mut out = String::new();
    for (unit, secs) in [('d', 86_400), ('h', 3_600), ('m', 60), ('s', 1)] {
        if s >= secs {
            out.push_str(&format!("{}{unit}", s / secs));
            s %= secs;
        }
    }
    if out.is_empty() { "0s".into() } else { out }
}

/// Which deadline an escalation step is measured against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    Response,
    Resolution,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Tell someone (a role or person); the case stays where it is.
    Notify,
    /// Move the case to a level (L1, L2, vendor).
    Escalate,
}

/// A timed escalation step: at `percent` of the `of` target's service time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub percent: u32,
    pub of: Clock,
    pub action: Action,
    pub to: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    L1,
    L2,
    Vendor,
}

impl Level {
    pub fn parse(s: &str) -> Option<Level> {
        match s {
            "L1" => Some(Level::L1),
            "L2" => Some(Level::L2),
            "vendor" => Some(Level::Vendor),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Engineer {
    pub name: String,
    pub skills: Vec<String>,
    pub sites: Vec<String>,
    pub level: Level,
}

/// A person who may log in: staff (engineer, manager) or a customer's user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub role: crate::auth::Role,
    /// The customer of a user with role customer; `None` for staff.
    pub customer: Option<String>,
    /// argon2id PHC string.
    pub password: String,
    /// SHA-256 (lowercase hex) of the user's API tokens.
    pub tokens: Vec<String>,
    /// The IANA zone the pages show this user's times in, when set.
    pub time_zone: Option<String>,
}

/// An on-call rotation: members take turns of `shift_ms` from `start_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    pub site: String,
    /// Only for cases needing this skill; `None`: any case at the site.
    pub skill: Option<String>,
    pub members: Vec<String>,
    pub shift_ms: i64,
    pub start_ms: i64,
}
