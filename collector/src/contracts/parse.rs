//! Reading a contracts file: strict TOML (unknown keys are errors, reported
//! as `FILE:LINE: what`), then every semantic problem at once as
//! `FILE: contract "X": field: reason`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use jiff::Timestamp;
use jiff::civil::Date;
use serde::Deserialize;

use super::{
    Action, Calendar, Clock, Contract, ContractError, Contracts, Customer, Engineer, Level, Rotation, Step, Targets,
    User,
};
use crate::auth::Role;
use crate::cases::HoldReason;
use crate::rules::parse::line_at;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    customer: Vec<RawCustomer>,
    #[serde(default)]
    contract: Vec<RawContract>,
    #[serde(default)]
    engineer: Vec<RawEngineer>,
    #[serde(default)]
    rotation: Vec<RawRotation>,
    #[serde(default)]
    user: Vec<RawUser>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCustomer {
    name: String,
    #[serde(default)]
    sites: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawContract {
    name: String,
    customer: String,
    #[serde(default)]
    covers: RawCovers,
    /// `"7x24"`, `"5x8"` or a `{ days, from, to }` table.
    hours: toml::Value,
    time_zone: String,
    #[serde(default)]
    holidays: Vec<String>,
    #[serde(default)]
    response: RawTargets,
    #[serde(default)]
    resolution: RawTargets,
    #[serde(default)]
    pausing_holds: Vec<String>,
    #[serde(default)]
    escalation: Vec<RawStep>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCovers {
    #[serde(default)]
    hosts: Vec<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHours {
    days: Vec<String>,
    from: String,
    to: String,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTargets {
    critical: Option<String>,
    major: Option<String>,
    warning: Option<String>,
    info: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    at: String,
    of: String,
    action: String,
    to: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEngineer {
    name: String,
    #[serde(default)]
    skills: Vec<String>,
    #[serde(default)]
    sites: Vec<String>,
    level: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRotation {
    site: String,
    skill: Option<String>,
    members: Vec<String>,
    shift: String,
    start: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUser {
    /// Spanned: user problems name the line of the entry.
    name: toml::Spanned<String>,
    role: String,
    customer: Option<String>,
    password: String,
    #[serde(default)]
    tokens: Vec<String>,
    /// IANA name; the pages show this user's times in it.
    time_zone: Option<String>,
}

/// Problems for one file, each about one subject.
struct Problems<'a> {
    file: &'a Path,
    list: Vec<ContractError>,
}

impl Problems<'_> {
    fn push(&mut self, subject: &str, field: &str, reason: impl AsRef<str>) {
        self.list.push(ContractError {
            file: self.file.to_path_buf(),
            line: 0,
            subject: Some(subject.to_string()),
            reason: format!("{field}: {}", reason.as_ref()),
        });
    }

    fn push_at(&mut self, line: usize, subject: &str, field: &str, reason: impl AsRef<str>) {
        self.push(subject, field, reason);
        if let Some(last) = self.list.last_mut() {
            last.line = line;
        }
    }
}

/// Reads and checks a contracts file.
pub fn load(path: &Path) -> Result<Contracts, Vec<ContractError>> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        vec![ContractError {
            file: path.to_path_buf(),
            line: 0,
            subject: None,
            reason: format!("cannot read: {e}"),
        }]
    })?;
    parse_file(&text, path)
}

/// Parses a contracts file; `file` is only used in messages.
pub fn parse_file(text: &str, file: &Path) -> Result<Contracts, Vec<ContractError>> {
    let raw: RawFile = toml::from_str(text).map_err(|e| {
        let line = e.span().map_or(0, |s| line_at(text, s.start));
        vec![ContractError {
            file: file.to_path_buf(),
            line,
            subject: None,
            reason: e.message().replace('\n', " ").trim().to_string(),
        }]
    })?;
    let mut p = Problems { file, list: Vec::new() };
    let customers = customers(raw.customer, &mut p);
    let engineers = engineers(raw.engineer, &mut p);
    let known_customers: BTreeSet<&str> = customers.iter().map(|c| c.name.as_str()).collect();
    let contracts = contracts(raw.contract, &known_customers, &mut p);
    let known_engineers: BTreeSet<&str> = engineers.iter().map(|e| e.name.as_str()).collect();
    let rotations = rotations(raw.rotation, &known_engineers, &mut p);
    let users = users(raw.user, text, &known_customers, &known_engineers, &mut p);
    if p.list.is_empty() {
        Ok(Contracts {
            customers,
            contracts,
            engineers,
            rotations,
            users,
        })
    } else {
        Err(p.list)
    }
}

/// Checks a name is present and not taken by an earlier entry of its kind.
fn name_ok<'n>(kind: &str, name: &'n str, seen: &mut BTreeSet<&'n str>, p: &mut Problems<'_>) {
    let subject = format!("{kind} {name:?}");
    if name.trim().is_empty() {
        p.push(&subject, "name", "must not be empty");
    } else if !seen.insert(name) {
        p.push(&subject, "name", format!("another {kind} is already called {name:?}"));
    }
}

fn list_ok(subject: &str, field: &str, items: &[String], p: &mut Problems<'_>) {
    let mut seen = BTreeSet::new();
    for (i, item) in items.iter().enumerate() {
        if item.trim().is_empty() {
            p.push(subject, &format!("{field}[{i}]"), "must not be empty");
        } else if !seen.insert(item) {
            p.push(subject, &format!("{field}[{i}]"), format!("{item:?} is listed twice"));
        }
    }
}

fn customers(raw: Vec<RawCustomer>, p: &mut Problems<'_>) -> Vec<Customer> {
    let mut seen = BTreeSet::new();
    for c in &raw {
        name_ok("customer", &c.name, &mut seen, p);
        list_ok(&format!("customer {:?}", c.name), "sites", &c.sites, p);
    }
    raw.into_iter()
        .map(|c| Customer {
            name: c.name,
            sites: c.sites,
        })
        .collect()
}

fn engineers(raw: Vec<RawEngineer>, p: &mut Problems<'_>) -> Vec<Engineer> {
    let mut seen = BTreeSet::new();
    for e in &raw {
        name_ok("engineer", &e.name, &mut seen, p);
    }
    let mut out = Vec::new();
    for e in raw {
        let subject = format!("engineer {:?}", e.name);
        list_ok(&subject, "skills", &e.skills, p);
        list_ok(&subject, "sites", &e.sites, p);
        match Level::parse(&e.level) {
            Some(level) => out.push(Engineer {
                name: e.name,
                skills: e.skills,
                sites: e.sites,
                level,
            }),
            None => p.push(&subject, "level", format!("{:?} is not one of L1, L2, vendor", e.level)),
        }
    }
    out
}

fn contracts(raw: Vec<RawContract>, customers: &BTreeSet<&str>, p: &mut Problems<'_>) -> Vec<Contract> {
    let mut seen = BTreeSet::new();
    for c in &raw {
        name_ok("contract", &c.name, &mut seen, p);
    }
    raw.into_iter().filter_map(|c| contract(c, customers, p)).collect()
}

fn contract(c: RawContract, customers: &BTreeSet<&str>, p: &mut Problems<'_>) -> Option<Contract> {
    let s = format!("contract {:?}", c.name);
    let before = p.list.len();
    if !customers.contains(c.customer.as_str()) {
        p.push(
            &s,
            "customer",
            format!("{:?} is not a [[customer]] in this file", c.customer),
        );
    }
    if c.covers.hosts.is_empty() && c.covers.labels.is_empty() {
        p.push(&s, "covers", "names no hosts and no labels, so it covers nothing");
    }
    list_ok(&s, "covers.hosts", &c.covers.hosts, p);
    let hours = hours(&c.hours, &s, p);
    let mut holidays = BTreeSet::new();
    for (i, h) in c.holidays.iter().enumerate() {
        match h.parse::<Date>() {
            Ok(d) if h.len() == 10 => {
                if !holidays.insert(d) {
                    p.push(&s, &format!("holidays[{i}]"), format!("{h} is listed twice"));
                }
            }
            _ => p.push(
                &s,
                &format!("holidays[{i}]"),
                format!("{h:?} is not a date like 2026-12-25"),
            ),
        }
    }
    let calendar = match Calendar::new(&c.time_zone, [true; 7], 0, 1440, BTreeSet::new()) {
        Ok(_) => hours.and_then(|(days, from, to)| Calendar::new(&c.time_zone, days, from, to, holidays).ok()),
        Err(e) => {
            p.push(&s, "time_zone", format!("{e} (use an IANA name like Europe/Berlin)"));
            None
        }
    };
    let response = targets(&c.response, "response", &s, p);
    let resolution = targets(&c.resolution, "resolution", &s, p);
    let mut pausing = Vec::new();
    for (i, h) in c.pausing_holds.iter().enumerate() {
        match HoldReason::parse(h) {
            Some(r) if pausing.contains(&r) => {
                p.push(&s, &format!("pausing_holds[{i}]"), format!("{h} is listed twice"))
            }
            Some(r) => pausing.push(r),
            None => p.push(
                &s,
                &format!("pausing_holds[{i}]"),
                format!("{h:?} is not one of awaiting_customer, awaiting_parts, awaiting_vendor, awaiting_window"),
            ),
        }
    }
    let mut escalation = Vec::new();
    for (i, raw) in c.escalation.iter().enumerate() {
        let field = format!("escalation[{i}]");
        let step = step(raw, &field, &s, p);
        let targets = match raw.of.as_str() {
            "response" => Some(response),
            "resolution" => Some(resolution),
            _ => None,
        };
        if targets == Some(Targets::default()) {
            p.push(
                &s,
                &format!("{field}.of"),
                format!("the contract sets no {} times", raw.of),
            );
        }
        escalation.extend(step);
    }
    if p.list.len() > before {
        return None;
    }
    Some(Contract {
        name: c.name,
        customer: c.customer,
        hosts: c.covers.hosts,
        labels: c.covers.labels,
        calendar: calendar?,
        response,
        resolution,
        pausing,
        escalation,
    })
}

/// Days (Monday first) and the daily window in minutes.
fn hours(value: &toml::Value, s: &str, p: &mut Problems<'_>) -> Option<([bool; 7], u32, u32)> {
    const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    let raw: RawHours = match value {
        toml::Value::String(preset) => {
            return match preset.as_str() {
                "7x24" => Some(([true; 7], 0, 1440)),
                "5x8" => Some(([true, true, true, true, true, false, false], 8 * 60, 17 * 60)),
                other => {
                    p.push(
                        s,
                        "hours",
                        format!("{other:?} is not \"7x24\", \"5x8\" or a {{ days, from, to }} table"),
                    );
                    None
                }
            };
        }
        other => match other.clone().try_into() {
            Ok(raw) => raw,
            Err(e) => {
                p.push(s, "hours", e.message().replace('\n', " ").trim());
                return None;
            }
        },
    };
    let before = p.list.len();
    let mut days = [false; 7];
    for (i, d) in raw.days.iter().enumerate() {
        match DAYS.iter().position(|n| n == d) {
            Some(n) if days[n] => p.push(s, &format!("hours.days[{i}]"), format!("{d} is listed twice")),
            Some(n) => days[n] = true,
            None => p.push(
                s,
                &format!("hours.days[{i}]"),
                format!("{d:?} is not one of {}", DAYS.join(", ")),
            ),
        }
    }
    if raw.days.is_empty() {
        p.push(s, "hours.days", "must name at least one day");
    }
    let from = clock_time(&raw.from, false);
    let to = clock_time(&raw.to, true);
    if from.is_none() {
        p.push(s, "hours.from", format!("{:?} is not a time like 08:00", raw.from));
    }
    if to.is_none() {
        p.push(
            s,
            "hours.to",
            format!("{:?} is not a time like 17:00 (or 24:00)", raw.to),
        );
    }
    if let (Some(f), Some(t)) = (from, to) {
        if f >= t {
            p.push(
                s,
                "hours.to",
                format!("{} is not after hours.from {}", raw.to, raw.from),
            );
        }
    }
    (p.list.len() == before).then_some((days, from?, to?))
}

/// "HH:MM" as minutes after midnight; "24:00" only where `end` allows.
fn clock_time(text: &str, end: bool) -> Option<u32> {
    let (h, m) = text.split_once(':')?;
    if h.len() != 2 || m.len() != 2 || !h.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    let minutes = h * 60 + m;
    (m < 60 && (h < 24 || (end && minutes == 1440))).then_some(minutes)
}

/// A service-time duration in ms: "30m", "4h", "2d", "1w", "1h30m".
fn duration_ms(text: &str) -> Option<i64> {
    if text.is_empty() {
        return None;
    }
    let (weeks, rest) = match text.split_once('w') {
        Some((w, rest)) if !w.is_empty() && w.bytes().all(|b| b.is_ascii_digit()) => (w.parse::<i64>().ok()?, rest),
        Some(_) => return None,
        None => (0, text),
    };
    let rest_ms = if rest.is_empty() {
        0
    } else {
        i64::try_from(crate::rules::parse_duration(rest)?.as_millis()).ok()?
    };
    weeks.checked_mul(7 * 86_400_000)?.checked_add(rest_ms)
}

/// Durations up to ten years; longer ones are typos, and the bound keeps
/// deadline arithmetic far from overflow.
const MAX_DURATION_MS: i64 = 3660 * 86_400_000;

fn positive_duration(text: &str, field: &str, s: &str, p: &mut Problems<'_>) -> Option<i64> {
    match duration_ms(text) {
        Some(ms) if ms > 0 && ms <= MAX_DURATION_MS => Some(ms),
        Some(_) => {
            p.push(s, field, format!("{text:?} must be more than 0s and at most 3660d"));
            None
        }
        None => {
            p.push(s, field, format!("{text:?} is not a duration like 30m, 4h, 2d or 1w"));
            None
        }
    }
}

fn targets(raw: &RawTargets, name: &str, s: &str, p: &mut Problems<'_>) -> Targets {
    let mut one = |v: &Option<String>, sev: &str| {
        v.as_deref()
            .and_then(|t| positive_duration(t, &format!("{name}.{sev}"), s, p))
    };
    Targets {
        critical: one(&raw.critical, "critical"),
        major: one(&raw.major, "major"),
        warning: one(&raw.warning, "warning"),
        info: one(&raw.info, "info"),
    }
}

fn step(raw: &RawStep, field: &str, s: &str, p: &mut Problems<'_>) -> Option<Step> {
    let percent = raw
        .at
        .strip_suffix('%')
        .and_then(|n| n.parse::<u32>().ok())
        .filter(|n| (1..=1000).contains(n));
    if percent.is_none() {
        p.push(
            s,
            &format!("{field}.at"),
            format!("{:?} is not a share like 50% (1% to 1000%)", raw.at),
        );
    }
    let of = match raw.of.as_str() {
        "response" => Some(Clock::Response),
        "resolution" => Some(Clock::Resolution),
        other => {
            p.push(
                s,
                &format!("{field}.of"),
                format!("{other:?} is not response or resolution"),
            );
            None
        }
    };
    let action = match raw.action.as_str() {
        "notify" => Some(Action::Notify),
        "escalate" => Some(Action::Escalate),
        other => {
            p.push(
                s,
                &format!("{field}.action"),
                format!("{other:?} is not notify or escalate"),
            );
            None
        }
    };
    if action == Some(Action::Escalate) && Level::parse(&raw.to).is_none() {
        p.push(
            s,
            &format!("{field}.to"),
            format!("{:?} is not a level (L1, L2, vendor)", raw.to),
        );
        return None;
    }
    if raw.to.trim().is_empty() {
        p.push(s, &format!("{field}.to"), "must not be empty");
        return None;
    }
    Some(Step {
        percent: percent?,
        of: of?,
        action: action?,
        to: raw.to.clone(),
    })
}

fn rotations(raw: Vec<RawRotation>, engineers: &BTreeSet<&str>, p: &mut Problems<'_>) -> Vec<Rotation> {
    let mut out = Vec::new();
    for (i, r) in raw.into_iter().enumerate() {
        let s = format!("rotation {} (site {:?})", i + 1, r.site);
        let before = p.list.len();
        if r.site.trim().is_empty() {
            p.push(&s, "site", "must not be empty");
        }
        if r.skill.as_deref().is_some_and(|k| k.trim().is_empty()) {
            p.push(&s, "skill", "must not be empty (leave it out for any skill)");
        }
        if r.members.is_empty() {
            p.push(&s, "members", "must name at least one engineer");
        }
        list_ok(&s, "members", &r.members, p);
        for (j, m) in r.members.iter().enumerate() {
            if !m.trim().is_empty() && !engineers.contains(m.as_str()) {
                p.push(
                    &s,
                    &format!("members[{j}]"),
                    format!("{m:?} is not an [[engineer]] in this file"),
                );
            }
        }
        let shift = positive_duration(&r.shift, "shift", &s, p);
        let start = r.start.parse::<Timestamp>().ok().map(|t| t.as_millisecond());
        if start.is_none() {
            p.push(
                &s,
                "start",
                format!("{:?} is not an RFC 3339 time like 2026-01-05T08:00:00+01:00", r.start),
            );
        }
        if p.list.len() > before {
            continue;
        }
        if let (Some(shift_ms), Some(start_ms)) = (shift, start) {
            out.push(Rotation {
                site: r.site,
                skill: r.skill,
                members: r.members,
                shift_ms,
                start_ms,
            });
        }
    }
    out
}

/// The users who may log in: each with a known role, an argon2id password
/// hash, and API tokens by their SHA-256. Problems name the entry's line.
fn users(
    raw: Vec<RawUser>,
    text: &str,
    customers: &BTreeSet<&str>,
    engineers: &BTreeSet<&str>,
    p: &mut Problems<'_>,
) -> Vec<User> {
    let mut names = BTreeSet::new();
    let mut tokens_seen: BTreeMap<String, String> = BTreeMap::new();
    let mut out = Vec::new();
    for u in raw {
        let line = line_at(text, u.name.span().start);
        let name = u.name.into_inner();
        let s = format!("user {name:?}");
        let before = p.list.len();
        if name.trim().is_empty() {
            p.push_at(line, &s, "name", "must not be empty");
        } else if !names.insert(name.clone()) {
            p.push_at(line, &s, "name", format!("another user is already called {name:?}"));
        }
        let role = Role::parse(&u.role);
        match (role, &u.customer) {
            (None, _) => p.push_at(
                line,
                &s,
                "role",
                format!("{:?} is not one of engineer, manager, customer", u.role),
            ),
            (Some(Role::Customer), None) => p.push_at(
                line,
                &s,
                "customer",
                "is required for role customer (the customer whose assets the user sees)",
            ),
            (Some(Role::Customer), Some(c)) if !customers.contains(c.as_str()) => p.push_at(
                line,
                &s,
                "customer",
                format!("{c:?} is not a [[customer]] in this file"),
            ),
            (Some(r @ (Role::Engineer | Role::Manager)), Some(_)) => p.push_at(
                line,
                &s,
                "customer",
                format!("only users with role customer have one, not role {}", r.as_str()),
            ),
            _ => {}
        }
        if role == Some(Role::Engineer) && !engineers.contains(name.as_str()) {
            p.push_at(
                line,
                &s,
                "name",
                format!("{name:?} has role engineer but is not an [[engineer]] in this file"),
            );
        }
        match argon2::PasswordHash::new(&u.password) {
            Ok(h) if h.algorithm.as_str() == "argon2id" => {}
            Ok(h) => p.push_at(
                line,
                &s,
                "password",
                format!(
                    "is an {} hash, not argon2id (make one with `caretaker-collector hash-password`)",
                    h.algorithm
                ),
            ),
            Err(e) => p.push_at(
                line,
                &s,
                "password",
                format!("is not an argon2id PHC string ({e}); make one with `caretaker-collector hash-password`"),
            ),
        }
        if let Some(tz) = &u.time_zone
            && let Err(e) = jiff::tz::TimeZone::get(tz)
        {
            p.push_at(
                line,
                &s,
                "time_zone",
                format!("{tz:?} is not a known time zone ({e}); use an IANA name like Europe/Berlin"),
            );
        }
        let mut tokens = Vec::new();
        for (i, t) in u.tokens.iter().enumerate() {
            let field = format!("tokens[{i}]");
            let hex = t
                .strip_prefix("sha256:")
                .filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()))
                .map(str::to_ascii_lowercase);
            let Some(hex) = hex else {
                p.push_at(
                    line,
                    &s,
                    &field,
                    "is not \"sha256:\" and 64 hex digits (make one with `caretaker-collector hash-token`)",
                );
                continue;
            };
            match tokens_seen.get(&hex) {
                Some(owner) if *owner == name => p.push_at(line, &s, &field, "is listed twice"),
                Some(owner) => p.push_at(line, &s, &field, format!("is already a token of user {owner:?}")),
                None => {
                    tokens_seen.insert(hex.clone(), name.clone());
                    tokens.push(hex);
                }
            }
        }
        if p.list.len() > before {
            continue;
        }
        if let Some(role) = role {
            out.push(User {
                name,
                role,
                customer: u.customer,
                password: u.password,
                tokens,
                time_zone: u.time_zone,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    const GOOD: &str = r#"[[customer]]
name = "acme"
sites = ["hq"]

[[contract]]
name = "acme-office"
customer = "acme"
covers = { hosts = ["db1"], labels = { site = "hq" } }
time_zone = "Europe/Berlin"
holidays = ["2026-12-25"]
response = { critical = "1h", major = "4h", warning = "8h", info = "3d" }
resolution = { critical = "8h" }
pausing_holds = ["awaiting_customer", "awaiting_window"]
escalation = [{ at = "50%", of = "resolution", action = "notify", to = "team-lead" }]

[contract.hours]
days = ["mon", "tue", "wed", "thu", "fri"]
from = "08:00"
to = "17:00"

[[engineer]]
name = "ana"
level = "L1"

[[rotation]]
site = "hq"
members = ["ana"]
shift = "1w"
start = "2026-01-05T08:00:00+01:00"
"#;

    fn errors(text: &str) -> Vec<String> {
        parse_file(text, Path::new("c.toml"))
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn a_good_file_parses() {
        let c = parse_file(GOOD, Path::new("c.toml")).unwrap();
        assert_eq!(c.contracts.len(), 1);
        let k = &c.contracts[0];
        assert_eq!(k.response.info, Some(3 * 86_400_000));
        assert_eq!(
            k.pausing,
            vec![HoldReason::AwaitingCustomer, HoldReason::AwaitingWindow]
        );
        assert_eq!(
            k.summary(),
            "contract \"acme-office\" (customer \"acme\"): covers 1 host(s) or site=hq; mon-fri 08:00-17:00 Europe/Berlin; 1 holiday(s); response critical 1h, major 4h, warning 8h, info 3d; resolution critical 8h; pausing [awaiting_customer, awaiting_window]; 1 escalation step(s)"
        );
        assert_eq!(c.rotations[0].shift_ms, 7 * 86_400_000);
    }

    #[test]
    fn syntax_and_unknown_keys_name_the_line() {
        assert_eq!(
            errors(&GOOD.replace("pausing_holds", "pausing")),
            vec![
                "c.toml:13: unknown field `pausing`, expected one of `name`, `customer`, `covers`, `hours`, `time_zone`, `holidays`, `response`, `resolution`, `pausing_holds`, `escalation`"
            ]
        );
        assert_eq!(
            errors(&GOOD.replace("response = { critical", "response = { urgent")),
            vec!["c.toml:11: unknown field `urgent`, expected one of `critical`, `major`, `warning`, `info`"]
        );
        let e = errors(&GOOD.replace("name = \"ana\"", "name = ana"));
        assert_eq!(e.len(), 1);
        assert!(e[0].starts_with("c.toml:22: "), "{e:?}");
    }

    #[test]
    fn every_semantic_problem_is_reported_at_once() {
        let bad = GOOD
            .replace("customer = \"acme\"", "customer = \"acme-corp\"")
            .replace("Europe/Berlin", "Europe/Berlín")
            .replace("2026-12-25", "2026-12-32")
            .replace("major = \"4h\"", "major = \"4 hours\"")
            .replace("warning = \"8h\"", "warning = \"0m\"")
            .replace("\"awaiting_window\"", "\"awaiting_godot\"")
            .replace("at = \"50%\"", "at = \"half\"")
            .replace("\"fri\"]", "\"fri\", \"fri\"]")
            .replace("to = \"17:00\"", "to = \"07:00\"")
            .replace("level = \"L1\"", "level = \"L3\"")
            .replace("members = [\"ana\"]", "members = [\"bob\"]")
            .replace("shift = \"1w\"", "shift = \"weekly\"")
            .replace("+01:00\"", "\"");
        assert_eq!(
            errors(&bad),
            vec![
                "c.toml: engineer \"ana\": level: \"L3\" is not one of L1, L2, vendor",
                "c.toml: contract \"acme-office\": customer: \"acme-corp\" is not a [[customer]] in this file",
                "c.toml: contract \"acme-office\": hours.days[5]: fri is listed twice",
                "c.toml: contract \"acme-office\": hours.to: 07:00 is not after hours.from 08:00",
                "c.toml: contract \"acme-office\": holidays[0]: \"2026-12-32\" is not a date like 2026-12-25",
                "c.toml: contract \"acme-office\": time_zone: unknown time zone \"Europe/Berlín\" (use an IANA name like Europe/Berlin)",
                "c.toml: contract \"acme-office\": response.major: \"4 hours\" is not a duration like 30m, 4h, 2d or 1w",
                "c.toml: contract \"acme-office\": response.warning: \"0m\" must be more than 0s and at most 3660d",
                "c.toml: contract \"acme-office\": pausing_holds[1]: \"awaiting_godot\" is not one of awaiting_customer, awaiting_parts, awaiting_vendor, awaiting_window",
                "c.toml: contract \"acme-office\": escalation[0].at: \"half\" is not a share like 50% (1% to 1000%)",
                "c.toml: rotation 1 (site \"hq\"): members[0]: \"bob\" is not an [[engineer]] in this file",
                "c.toml: rotation 1 (site \"hq\"): shift: \"weekly\" is not a duration like 30m, 4h, 2d or 1w",
                "c.toml: rotation 1 (site \"hq\"): start: \"2026-01-05T08:00:00\" is not an RFC 3339 time like 2026-01-05T08:00:00+01:00",
            ]
        );
    }

    #[test]
    fn duplicates_empty_lists_and_bad_references() {
        let extra = r#"
[[customer]]
name = "acme"

[[contract]]
name = "acme-office"
customer = "acme"
hours = "9to5"
time_zone = "UTC"
escalation = [
  { at = "100%", of = "resolution", action = "escalate", to = "boss" },
  { at = "100%", of = "response", action = "page", to = "L2" },
]

[[engineer]]
name = "ana"
level = "L2"

[[rotation]]
site = "hq"
members = []
shift = "1d"
start = "2026-01-05T08:00:00Z"
"#;
        assert_eq!(
            errors(&(GOOD.to_string() + extra)),
            vec![
                "c.toml: customer \"acme\": name: another customer is already called \"acme\"",
                "c.toml: engineer \"ana\": name: another engineer is already called \"ana\"",
                "c.toml: contract \"acme-office\": name: another contract is already called \"acme-office\"",
                "c.toml: contract \"acme-office\": covers: names no hosts and no labels, so it covers nothing",
                "c.toml: contract \"acme-office\": hours: \"9to5\" is not \"7x24\", \"5x8\" or a { days, from, to } table",
                "c.toml: contract \"acme-office\": escalation[0].to: \"boss\" is not a level (L1, L2, vendor)",
                "c.toml: contract \"acme-office\": escalation[0].of: the contract sets no resolution times",
                "c.toml: contract \"acme-office\": escalation[1].action: \"page\" is not notify or escalate",
                "c.toml: contract \"acme-office\": escalation[1].of: the contract sets no response times",
                "c.toml: rotation 2 (site \"hq\"): members: must name at least one engineer",
            ]
        );
    }

    const PHC: &str =
        "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$3UqAsL6QkOKx9HKJiXiGb9JFjnHd6vuXv0fA3zsN2jY";
    const TOKEN: &str = "sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    fn with_users(users: &str) -> String {
        format!("{GOOD}{}", users.replace("PHC", PHC).replace("TOKEN", TOKEN))
    }

    #[test]
    fn users_with_roles_passwords_and_tokens() {
        let text = with_users(
            r#"
[[user]]
name = "ana"
role = "engineer"
password = "PHC"
tokens = ["TOKEN"]

[[user]]
name = "mia"
role = "manager"
password = "PHC"

[[user]]
name = "carol"
role = "customer"
customer = "acme"
password = "PHC"
"#,
        );
        let c = parse_file(&text, Path::new("c.toml")).unwrap();
        assert_eq!(c.users.len(), 3);
        let ana = c.user("ana").unwrap();
        assert_eq!((ana.role, ana.customer.as_deref()), (Role::Engineer, None));
        assert_eq!(ana.tokens, vec![TOKEN.trim_start_matches("sha256:").to_string()]);
        // sha256("test")
        assert_eq!(
            c.user_by_token(&crate::auth::token_hash("test"))
                .map(|u| u.name.as_str()),
            Some("ana")
        );
        assert!(c.user_by_token(&crate::auth::token_hash("other")).is_none());
        let carol = c.user("carol").unwrap();
        assert_eq!((carol.role, carol.customer.as_deref()), (Role::Customer, Some("acme")));
        assert_eq!(c.user("mia").unwrap().password, PHC);
    }

    #[test]
    fn a_users_pages_are_in_its_own_zone_else_its_contracts_else_the_default() {
        let text = with_users(
            r#"
[[user]]
name = "mia"
role = "manager"
password = "PHC"
time_zone = "America/New_York"

[[user]]
name = "ana"
role = "engineer"
password = "PHC"

[[user]]
name = "carol"
role = "customer"
customer = "acme"
password = "PHC"
"#,
        );
        let c = parse_file(&text, Path::new("c.toml")).unwrap();
        assert_eq!(c.time_zone_of("mia", None, "UTC"), "America/New_York");
        assert_eq!(c.time_zone_of("ana", None, "Asia/Tokyo"), "Asia/Tokyo");
        assert_eq!(c.time_zone_of("carol", Some("acme"), "UTC"), "Europe/Berlin");
        assert_eq!(c.time_zone_of("nobody", Some("globex"), "UTC"), "UTC");
        let e = errors(&with_users(
            "\n[[user]]\nname = \"x\"\nrole = \"manager\"\npassword = \"PHC\"\ntime_zone = \"Europe/Berlín\"\n",
        ));
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].starts_with("c.toml:32: user \"x\": time_zone: \"Europe/Berlín\" is not a known time zone"),
            "{e:?}"
        );
    }

    #[test]
    fn user_problems_name_the_line() {
        let text = with_users(
            r#"
[[user]]
name = "bob"
role = "engineer"
password = "PHC"

[[user]]
name = "carol"
role = "customer"
password = "hunter2"

[[user]]
name = "carol"
role = "customer"
customer = "globex"
password = "$argon2i$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$3UqAsL6QkOKx9HKJiXiGb9JFjnHd6vuXv0fA3zsN2jY"
tokens = ["TOKEN", "sha256:abc"]

[[user]]
name = "mia"
role = "manager"
customer = "acme"
password = "PHC"
tokens = ["TOKEN"]

[[user]]
name = "zed"
role = "admin"
password = "PHC"
"#,
        );
        assert_eq!(
            errors(&text),
            vec![
                "c.toml:32: user \"bob\": name: \"bob\" has role engineer but is not an [[engineer]] in this file",
                "c.toml:37: user \"carol\": customer: is required for role customer (the customer whose assets the user sees)",
                "c.toml:37: user \"carol\": password: is not an argon2id PHC string (password hash string missing field); make one with `caretaker-collector hash-password`",
                "c.toml:42: user \"carol\": name: another user is already called \"carol\"",
                "c.toml:42: user \"carol\": customer: \"globex\" is not a [[customer]] in this file",
                "c.toml:42: user \"carol\": password: is an argon2i hash, not argon2id (make one with `caretaker-collector hash-password`)",
                "c.toml:42: user \"carol\": tokens[1]: is not \"sha256:\" and 64 hex digits (make one with `caretaker-collector hash-token`)",
                "c.toml:49: user \"mia\": customer: only users with role customer have one, not role manager",
                "c.toml:49: user \"mia\": tokens[0]: is already a token of user \"carol\"",
                "c.toml:56: user \"zed\": role: \"admin\" is not one of engineer, manager, customer",
            ]
        );
        let e = errors(&with_users(
            "\n[[user]]\nname = \"x\"\nrole = \"manager\"\npassword = \"PHC\"\ngroup = \"ops\"\n",
        ));
        assert_eq!(e.len(), 1);
        assert!(e[0].starts_with("c.toml:35: unknown field `group`"), "{e:?}");
    }

    #[test]
    fn hours_tables_are_strict() {
        let e = errors(&GOOD.replace("from = \"08:00\"", "from = \"8:00\"\nuntil = \"x\""));
        assert_eq!(e.len(), 1);
        assert!(
            e[0].starts_with("c.toml: contract \"acme-office\": hours: unknown field `until`"),
            "{e:?}"
        );
        assert_eq!(
            errors(&GOOD.replace("from = \"08:00\"", "from = \"8:00\"")),
            vec!["c.toml: contract \"acme-office\": hours.from: \"8:00\" is not a time like 08:00"]
        );
        let c = parse_file(&GOOD.replace("to = \"17:00\"", "to = \"24:00\""), Path::new("c.toml")).unwrap();
        assert!(c.contracts[0].calendar.describe().contains("08:00-24:00"));
    }

    #[test]
    fn durations_and_clock_times() {
        assert_eq!(duration_ms("30m"), Some(30 * 60_000));
        assert_eq!(duration_ms("2d"), Some(2 * 86_400_000));
        assert_eq!(duration_ms("1w2d"), Some(9 * 86_400_000));
        for bad in ["", "w", "1.5h", "1d1w", "-1h", "4 h"] {
            assert_eq!(duration_ms(bad), None, "{bad:?}");
        }
        assert_eq!(clock_time("08:30", false), Some(510));
        assert_eq!(clock_time("24:00", true), Some(1440));
        for bad in ["24:00", "8:00", "08:60", "0800", "ab:cd"] {
            assert_eq!(clock_time(bad, false), None, "{bad:?}");
        }
    }
}
