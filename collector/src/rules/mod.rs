//! Detection rules as data: what to look for in the metrics agents send, and
//! what to open (a finding or a case) when it is seen.
//!
//! Rules live in TOML files rather than in code so that operators can add,
//! tune or replace them without a new release. This module defines the file
//! format, parses and validates it against the metric catalogue (reporting
//! every problem at once as `FILE:LINE: rule NAME: reason`), and ships the
//! built-in pack (`builtin.toml`, embedded in the binary). Evaluating rules is
//! not done here.
//!
//! # Format
//!
//! One or more `[[rule]]` tables per file. Common fields: `name` (unique,
//! `[a-z0-9_]+`), `kind` (`threshold`, `increase`, `forecast`, `absence`,
//! `state`), `metric` (a catalogue family name, counters without `_total`),
//! optional `match = { label = "value" }`, `outcome` (`finding` | `case`),
//! `severity` (`info` | `warning` | `major` | `critical`), optional `component`
//! (the metric label naming the component), `summary` (a template with
//! `{host}`, `{component}`, `{value}`) and optional `description`.
//!
//! Kind-specific fields (any other kind's field is an error):
//! - `threshold`: `op` (`>`, `>=`, `<`, `<=`), `value`, optional `clear`
//!   (hysteresis; must lie on the safe side of `value`), `for` (default
//!   `"0s"`), optional `divide_by` (a metric with the same labels; the rule
//!   then looks at `metric / divide_by`).
//! - `increase`: `window`, `min_increase` (> 0).
//! - `forecast`: `window` (history to fit), `reaches`, `within`, optional
//!   `divide_by`.
//! - `absence`: `after_intervals` (≥ 1); `metric = "host"` means the host
//!   stopped reporting altogether.
//! - `state`: `equals`.
//! - `event`: `event` (the kind of the agent event it reads, e.g. `ipmi_sel`
//!   or `raid_disk_failed`) instead of `metric`; `match` and `component` name
//!   the event's labels (any label: events carry what their source knows);
//!   `{value}` is the event's message. Optional `check`: the identity check
//!   of another rule, so the event adds to that rule's item instead of
//!   opening its own (a SEL power supply failure lands on the live sensor's
//!   case, which the sensor then clears). An event rule only ever fires: an
//!   event is something that happened, not a state that can end, so its item
//!   is cleared by the rule it shares a check with, or by a person.
//!
//! Durations are `"30s"`, `"5m"`, `"2h"`, `"7d"` or combinations such as
//! `"1h30m"`.
//!
//! # Loading
//!
//! [`load`] takes the built-in pack plus every `*.toml` file of the operator's
//! rule directory, in file-name order. An operator rule with the same name as
//! a built-in one replaces it (that is how a built-in rule is tuned or
//! switched off in favour of a local variant); two operator files defining the
//! same name is an error, since neither can be said to win. [`reload`] keeps
//! the previous rules active when any file is broken.

pub(crate) mod parse;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::cases::{ItemKind, Severity};

pub use parse::{PLACEHOLDERS, parse_duration, parse_file};

/// The built-in rule pack, shipped inside the binary.
pub const BUILTIN_TOML: &str = include_str!("builtin.toml");

/// The name the built-in pack goes by in errors and [`Rule::file`].
pub const BUILTIN_FILE: &str = "<built-in>/builtin.toml";

/// One problem in a rule file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct RuleError {
    /// The file the problem is in (or the directory, when it cannot be read).
    pub file: PathBuf,
    /// 1-based line; 0 when the problem concerns the whole file.
    pub line: usize,
    /// The rule concerned, when its name is known.
    pub rule: Option<String>,
    /// What is wrong, for the operator.
    pub reason: String,
}

impl fmt::Display for RuleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
        }
        if let Some(r) = &self.rule {
            write!(f, ": rule {r}")?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// The rule files were rejected; the individual problems were reported
/// separately. Lets the CLI tell bad input (exit 2) from failure.
#[derive(Debug, thiserror::Error)]
#[error("{0} problem(s) in the rules")]
pub struct RulesInvalid(pub usize);

/// What a rule watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The host as a whole (absence rules only): it stopped reporting.
    Host,
    /// A catalogue metric family.
    Metric(&'static str),
    /// Agent events of this kind (`event` rules).
    Event(String),
}

impl Target {
    /// The name as written in the rule file.
    pub fn name(&self) -> &str {
        match self {
            Target::Host => "host",
            Target::Metric(m) => m,
            Target::Event(e) => e,
        }
    }
}

/// Threshold comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Gt,
    Ge,
    Lt,
    Le,
}

impl Op {
    pub fn parse(s: &str) -> Option<Op> {
        match s {
            ">" => Some(Op::Gt),
            ">=" => Some(Op::Ge),
            "<" => Some(Op::Lt),
            "<=" => Some(Op::Le),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Lt => "<",
            Op::Le => "<=",
        }
    }
}

/// The kind-specific part of a rule.
#[derive(Debug, Clone, PartialEq)]
pub enum Condition {
    /// The value (or `metric / divide_by`) compared against `value` for at
    /// least `for_`; it ends once the value is back past `clear` (or `value`).
    Threshold {
        op: Op,
        value: f64,
        clear: Option<f64>,
        for_: Duration,
        divide_by: Option<String>,
    },
    /// The value rose by at least `min_increase` within `window`.
    Increase { window: Duration, min_increase: f64 },
    /// A trend fitted over `window` reaches `reaches` within `within`.
    Forecast {
        window: Duration,
        reaches: f64,
        within: Duration,
        divide_by: Option<String>,
    },
    /// No samples for `after_intervals` report intervals.
    Absence { after_intervals: u32 },
    /// The value equals `equals` (state gauges: 0/1 per state label).
    State { equals: f64 },
    /// An agent event of the target kind was reported (fires only).
    Event,
}

impl Condition {
    /// The `kind` as written in the rule file.
    pub fn kind(&self) -> &'static str {
        match self {
            Condition::Threshold { .. } => "threshold",
            Condition::Increase { .. } => "increase",
            Condition::Forecast { .. } => "forecast",
            Condition::Absence { .. } => "absence",
            Condition::State { .. } => "state",
            Condition::Event => "event",
        }
    }
}

/// A piece of a summary template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    /// One of [`PLACEHOLDERS`].
    Placeholder(&'static str),
}

/// A validated summary template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pub source: String,
    pub pieces: Vec<Piece>,
}

impl Template {
    /// Splits `text` into text and `{placeholder}` pieces; an unknown
    /// placeholder or an unclosed `{` is an error.
    pub fn parse(text: &str) -> Result<Template, String> {
        let mut pieces = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            if open > 0 {
                pieces.push(Piece::Text(rest[..open].to_string()));
            }
            let after = &rest[open + 1..];
            let close = after.find('}').ok_or_else(|| format!("unclosed {{ in {text:?}"))?;
            let name = &after[..close];
            let known = PLACEHOLDERS
                .iter()
                .find(|p| **p == name)
                .ok_or_else(|| format!("unknown placeholder {{{name}}} (known: {{host}}, {{component}}, {{value}})"))?;
            pieces.push(Piece::Placeholder(known));
            rest = &after[close + 1..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Text(rest.to_string()));
        }
        Ok(Template {
            source: text.to_string(),
            pieces,
        })
    }

    /// Whether the template uses a placeholder.
    pub fn uses(&self, name: &str) -> bool {
        self.pieces
            .iter()
            .any(|p| matches!(p, Piece::Placeholder(n) if *n == name))
    }

    /// Fills the placeholders in.
    pub fn render(&self, host: &str, component: &str, value: &str) -> String {
        let mut out = String::new();
        for p in &self.pieces {
            match p {
                Piece::Text(t) => out.push_str(t),
                Piece::Placeholder("host") => out.push_str(host),
                Piece::Placeholder("component") => out.push_str(component),
                Piece::Placeholder(_) => out.push_str(value),
            }
        }
        out
    }
}

/// A validated rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    pub name: String,
    pub target: Target,
    /// Label values a series must carry (`match` in the file).
    pub matches: BTreeMap<String, String>,
    pub outcome: ItemKind,
    pub severity: Severity,
    /// The metric (or event) label naming the component; `None` for
    /// whole-host checks.
    pub component: Option<String>,
    /// The identity check of the items it opens or adds to, when it is not
    /// the rule's name (`event` rules sharing another rule's item).
    pub check: Option<String>,
    pub summary: Template,
    pub description: Option<String>,
    pub condition: Condition,
    /// Where the rule was defined.
    pub file: PathBuf,
    pub line: usize,
}

impl Rule {
    /// Whether the rule comes from the embedded pack.
    pub fn is_builtin(&self) -> bool {
        self.file == Path::new(BUILTIN_FILE)
    }

    /// The identity check of its signals: `check` when given, else its name.
    pub fn check_name(&self) -> &str {
        self.check.as_deref().unwrap_or(&self.name)
    }
}

/// The rules in force.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
}

impl RuleSet {
    /// How many rules come from the built-in pack (not replaced by an operator).
    pub fn builtin_count(&self) -> usize {
        self.rules.iter().filter(|r| r.is_builtin()).count()
    }
}

/// The built-in pack. It is validated by the tests, so a parse failure here
/// can only mean a broken build; it then yields no rules rather than panicking,
/// and `load` reports the problems.
pub fn builtin() -> Vec<Rule> {
    parse_file(BUILTIN_TOML, Path::new(BUILTIN_FILE)).unwrap_or_default()
}

/// The built-in pack plus every `*.toml` file in `dir` (sorted by file name).
pub fn load(dir: Option<&Path>) -> Result<RuleSet, Vec<RuleError>> {
    let mut rules = parse_file(BUILTIN_TOML, Path::new(BUILTIN_FILE))?;
    let Some(dir) = dir else {
        return Ok(RuleSet { rules });
    };
    let files = rule_files(dir).map_err(|e| {
        vec![RuleError {
            file: dir.to_path_buf(),
            line: 0,
            rule: None,
            reason: format!("cannot read the rule directory: {e}"),
        }]
    })?;
    let mut errors = Vec::new();
    let mut operator: Vec<Rule> = Vec::new();
    for file in files {
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) => {
                errors.push(RuleError {
                    file,
                    line: 0,
                    rule: None,
                    reason: format!("cannot read: {e}"),
                });
                continue;
            }
        };
        match parse_file(&text, &file) {
            Ok(parsed) => {
                for r in parsed {
                    if let Some(first) = operator.iter().find(|o| o.name == r.name) {
                        errors.push(RuleError {
                            file: r.file.clone(),
                            line: r.line,
                            rule: Some(r.name.clone()),
                            reason: format!(
                                "duplicate rule name, also defined at {}:{}",
                                first.file.display(),
                                first.line
                            ),
                        });
                    } else {
                        operator.push(r);
                    }
                }
            }
            Err(mut e) => errors.append(&mut e),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    for r in operator {
        // Replace a built-in of the same name in place, keeping the order stable.
        match rules.iter_mut().find(|b| b.name == r.name) {
            Some(slot) => *slot = r,
            None => rules.push(r),
        }
    }
    Ok(RuleSet { rules })
}

/// Reloads `dir`. When any file is broken the errors are returned together
/// with `current`, unchanged: the previous rules stay active.
pub fn reload(current: &RuleSet, dir: &Path) -> (RuleSet, Vec<RuleError>) {
    match load(Some(dir)) {
        Ok(set) => (set, Vec::new()),
        Err(errors) => (current.clone(), errors),
    }
}

fn rule_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "toml") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests;
