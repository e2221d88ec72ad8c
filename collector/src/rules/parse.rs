//! Turning one rule file's text into typed [`Rule`]s, or into every problem it
//! has, each with the line it is on.
//!
//! An operator editing a rule file wants the whole list of mistakes in one go,
//! not one per run, so parsing works in three passes:
//!
//! 1. the whole file is read loosely (syntax errors and unknown top-level keys
//!    stop here: nothing after a syntax error can be trusted);
//! 2. each `[[rule]]` table is cut out of the text and deserialised on its own
//!    with `deny_unknown_fields`, so a type error or a stray key in one rule does
//!    not hide the problems of the others;
//! 3. every rule that deserialised is checked against the catalogue and the
//!    semantics of its kind, collecting all problems.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use caretaker_shared::catalogue::{self, Kind as MetricKind};
use serde::Deserialize;
use toml::Spanned;

use super::{Condition, Op, Rule, RuleError, Target, Template};
use crate::cases::{ItemKind, Severity};

/// The placeholders a summary template may use.
pub const PLACEHOLDERS: [&str; 3] = ["host", "component", "value"];

/// The whole file, read loosely: only the `rule` key is allowed at the top.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    /// The `[[rule]]` tables, not yet interpreted.
    #[serde(default)]
    rule: Vec<toml::Table>,
}

/// One `[[rule]]` table cut out of the file, deserialised strictly.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OneRule {
    /// Exactly one rule: the chunk starts at its `[[rule]]` header.
    rule: Vec<RawRule>,
}

/// A rule as written. Every field is optional and spanned so that a missing
/// field, or one that does not belong to the rule's kind, is reported with a
/// line instead of a bare serde message.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    /// Unique name, `[a-z0-9_]+`.
    name: Option<Spanned<String>>,
    /// "threshold", "increase", "forecast", "absence", "state" or "event".
    kind: Option<Spanned<String>>,
    /// Catalogue metric (counters without `_total`), or "host" for absence.
    metric: Option<Spanned<String>>,
    /// Label values a series must carry to be evaluated.
    #[serde(rename = "match")]
    matches: Option<Spanned<BTreeMap<String, Spanned<String>>>>,
    /// "finding" or "case".
    outcome: Option<Spanned<String>>,
    /// "info", "warning", "major" or "critical".
    severity: Option<Spanned<String>>,
    /// The metric label naming the component; absent for whole-host checks.
    component: Option<Spanned<String>>,
    /// One-line text with `{host}`, `{component}`, `{value}` placeholders.
    summary: Option<Spanned<String>>,
    /// Longer free text for whoever handles the item.
    description: Option<Spanned<String>>,
    /// threshold: comparison operator.
    op: Option<Spanned<String>>,
    /// threshold: the limit.
    value: Option<Spanned<f64>>,
    /// threshold: the value that ends the condition (hysteresis).
    clear: Option<Spanned<f64>>,
    /// threshold: how long the condition must hold.
    #[serde(rename = "for")]
    for_: Option<Spanned<String>>,
    /// threshold, forecast: denominator metric.
    divide_by: Option<Spanned<String>>,
    /// increase, forecast: the look-back window.
    window: Option<Spanned<String>>,
    /// increase: the smallest rise that counts.
    min_increase: Option<Spanned<f64>>,
    /// forecast: the level the trend must reach.
    reaches: Option<Spanned<f64>>,
    /// forecast: the horizon.
    within: Option<Spanned<String>>,
    /// absence: missed report intervals before firing.
    after_intervals: Option<Spanned<i64>>,
    /// state: the value that means "in this state".
    equals: Option<Spanned<f64>>,
    /// event: the kind of agent event the rule reads (instead of `metric`).
    event: Option<Spanned<String>>,
    /// event: the identity check shared with another rule.
    check: Option<Spanned<String>>,
}

/// Maps byte offsets to 1-based line numbers.
struct Lines {
    starts: Vec<usize>,
}

impl Lines {
    fn new(text: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Lines { starts }
    }

    fn line(&self, offset: usize) -> usize {
        // partition_point counts line starts at or before the offset.
        self.starts.partition_point(|&s| s <= offset).max(1)
    }
}

/// The 1-based line of byte `offset` in `text` (for other TOML files'
/// errors).
pub(crate) fn line_at(text: &str, offset: usize) -> usize {
    Lines::new(text).line(offset)
}

/// Collects problems for one file.
struct Errors<'a> {
    file: &'a Path,
    lines: &'a Lines,
    list: Vec<RuleError>,
}

impl Errors<'_> {
    fn push(&mut self, offset: usize, rule: Option<&str>, reason: impl Into<String>) {
        self.list.push(RuleError {
            file: self.file.to_path_buf(),
            line: self.lines.line(offset),
            rule: rule.map(str::to_string),
            reason: reason.into(),
        });
    }
}

/// Parses one rule file. `file` is only used in error messages and as the
/// rules' origin.
pub fn parse_file(text: &str, file: &Path) -> Result<Vec<Rule>, Vec<RuleError>> {
    let lines = Lines::new(text);
    let mut errors = Errors {
        file,
        lines: &lines,
        list: Vec::new(),
    };
    let loose: RawFile = match toml::from_str(text) {
        Ok(f) => f,
        Err(e) => {
            let at = e.span().map_or(0, |s| s.start);
            errors.push(at, None, one_line(e.message()));
            return Err(errors.list);
        }
    };
    let chunks = match rule_chunks(text, loose.rule.len()) {
        Some(c) => c,
        None => {
            // `rule = [{...}]` or similar: no headers to cut at. Deserialise the
            // whole file strictly; only its first problem can be reported.
            return parse_whole(text, &mut errors);
        }
    };
    let mut rules = Vec::new();
    for (table, range) in loose.rule.iter().zip(chunks) {
        let name = table.get("name").and_then(|v| v.as_str());
        match toml::from_str::<OneRule>(&text[range.clone()]) {
            Ok(one) => {
                for raw in one.rule {
                    if let Some(r) = check(raw, range.start, &mut errors) {
                        rules.push(r);
                    }
                }
            }
            Err(e) => {
                let at = range.start + e.span().map_or(0, |s| s.start);
                errors.push(at, name, one_line(e.message()));
            }
        }
    }
    duplicates_within(&rules, &mut errors);
    if errors.list.is_empty() {
        Ok(rules)
    } else {
        // Checks run field group by field group; the operator reads top-down.
        errors.list.sort_by_key(|e| e.line);
        Err(errors.list)
    }
}

fn parse_whole(text: &str, errors: &mut Errors<'_>) -> Result<Vec<Rule>, Vec<RuleError>> {
    let mut rules = Vec::new();
    match toml::from_str::<OneRule>(text) {
        Ok(one) => {
            for raw in one.rule {
                if let Some(r) = check(raw, 0, errors) {
                    rules.push(r);
                }
            }
        }
        Err(e) => {
            let at = e.span().map_or(0, |s| s.start);
            errors.push(at, None, one_line(e.message()));
        }
    }
    duplicates_within(&rules, errors);
    if errors.list.is_empty() {
        Ok(rules)
    } else {
        errors.list.sort_by_key(|e| e.line);
        Err(std::mem::take(&mut errors.list))
    }
}

fn duplicates_within(rules: &[Rule], errors: &mut Errors<'_>) {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for r in rules {
        if let Some(first) = seen.insert(&r.name, r.line) {
            errors.list.push(RuleError {
                file: errors.file.to_path_buf(),
                line: r.line,
                rule: Some(r.name.clone()),
                reason: format!("duplicate rule name, first defined on line {first}"),
            });
        }
    }
}

/// Byte ranges of each `[[rule]]` table: from its header to the next one.
/// `None` when the headers found do not match the parsed rule count (e.g. a
/// header-like line inside a multi-line string, or the inline array form).
fn rule_chunks(text: &str, expected: usize) -> Option<Vec<Range<usize>>> {
    let mut starts = Vec::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let code = line.split('#').next().unwrap_or("");
        let compact: String = code.chars().filter(|c| !c.is_whitespace()).collect();
        if compact == "[[rule]]" {
            starts.push(offset);
        }
        offset += line.len();
    }
    if starts.len() != expected {
        return None;
    }
    let mut ends: Vec<usize> = starts.iter().skip(1).copied().collect();
    ends.push(text.len());
    Some(starts.into_iter().zip(ends).map(|(s, e)| s..e).collect())
}

/// A spanned field's start offset within the file.
fn at<T>(base: usize, s: &Spanned<T>) -> usize {
    base + s.span().start
}

/// Checks one deserialised rule; `base` is the offset of its chunk.
fn check(raw: RawRule, base: usize, errors: &mut Errors<'_>) -> Option<Rule> {
    let before = errors.list.len();
    let header = base;
    let name = match &raw.name {
        Some(n) => {
            let v = n.get_ref();
            if !is_identifier(v) {
                errors.push(at(base, n), Some(v), "name must match [a-z0-9_]+");
            }
            v.clone()
        }
        None => {
            errors.push(header, None, "missing field `name`");
            String::new()
        }
    };
    let rule_name = (!name.is_empty()).then_some(name.as_str());
    let mut e = |offset: usize, reason: String| errors.push(offset, rule_name, reason);

    let kind = match &raw.kind {
        Some(k) => match k.get_ref().as_str() {
            "threshold" | "increase" | "forecast" | "absence" | "state" | "event" => Some(k.get_ref().clone()),
            other => {
                e(
                    at(base, k),
                    format!("kind must be threshold, increase, forecast, absence, state or event, not {other:?}"),
                );
                None
            }
        },
        None => {
            e(header, "missing field `kind`".into());
            None
        }
    };

    let outcome = match &raw.outcome {
        Some(o) => ItemKind::parse(o.get_ref()).or_else(|| {
            e(
                at(base, o),
                format!("outcome must be finding or case, not {:?}", o.get_ref()),
            );
            None
        }),
        None => {
            e(header, "missing field `outcome`".into());
            None
        }
    };
    let severity = match &raw.severity {
        Some(s) => Severity::parse(s.get_ref()).or_else(|| {
            e(
                at(base, s),
                format!(
                    "severity must be info, warning, major or critical, not {:?}",
                    s.get_ref()
                ),
            );
            None
        }),
        None => {
            e(header, "missing field `severity`".into());
            None
        }
    };

    // The metric: the catalogue entry's labels drive the match/component checks.
    // An event rule reads events instead; their labels are whatever the event
    // carries, so `match` and `component` are not checked against a list.
    let mut target = None;
    let mut labels: Option<&'static [&'static str]> = None;
    let is_event = kind.as_deref() == Some("event");
    match &raw.metric {
        Some(m) if is_event => e(at(base, m), "field `metric` does not belong to an event rule".into()),
        None if is_event => {}
        Some(m) if m.get_ref() == "host" => {
            if kind.as_deref().is_some_and(|k| k != "absence") {
                e(at(base, m), "metric \"host\" is only valid for absence rules".into());
            }
            target = Some(Target::Host);
            labels = Some(&[]);
        }
        Some(m) => match catalogue::lookup(m.get_ref()) {
            Some(def) => {
                target = Some(Target::Metric(def.name));
                labels = Some(def.labels);
            }
            None => e(at(base, m), unknown_metric(m.get_ref())),
        },
        None => e(header, "missing field `metric`".into()),
    }
    if is_event {
        match &raw.event {
            Some(ev) if is_identifier(ev.get_ref()) => target = Some(Target::Event(ev.get_ref().clone())),
            Some(ev) => e(
                at(base, ev),
                format!(
                    "event must be an event kind like \"ipmi_sel\" ([a-z0-9_]+), not {:?}",
                    ev.get_ref()
                ),
            ),
            None => e(header, "missing field `event`".into()),
        }
    }
    let metric_name = raw.metric.as_ref().map(|m| m.get_ref().clone()).unwrap_or_default();

    let mut matches = BTreeMap::new();
    if let Some(mt) = &raw.matches {
        for (label, value) in mt.get_ref() {
            if let Some(ls) = labels
                && !ls.contains(&label.as_str())
            {
                e(
                    at(base, value),
                    format!("label {label:?} is not a label of {metric_name} ({})", label_list(ls)),
                );
            }
            matches.insert(label.clone(), value.get_ref().clone());
        }
    }
    let component = raw.component.as_ref().map(|c| {
        if is_event && c.get_ref().trim().is_empty() {
            e(at(base, c), "component must name an event label".into());
        }
        if let Some(ls) = labels
            && !ls.contains(&c.get_ref().as_str())
        {
            e(
                at(base, c),
                format!(
                    "component {:?} is not a label of {metric_name} ({})",
                    c.get_ref(),
                    label_list(ls)
                ),
            );
        }
        c.get_ref().clone()
    });

    let summary = match &raw.summary {
        Some(s) => match Template::parse(s.get_ref()) {
            Ok(t) => {
                if component.is_none() && t.uses("component") {
                    e(
                        at(base, s),
                        "summary uses {component} but the rule has no component".into(),
                    );
                }
                Some(t)
            }
            Err(reason) => {
                e(at(base, s), format!("summary: {reason}"));
                None
            }
        },
        None => {
            e(header, "missing field `summary`".into());
            None
        }
    };
    let description = raw.description.as_ref().map(|d| d.get_ref().clone());

    // Fields that only some kinds take: report the ones present on the wrong kind.
    let kind_fields: [(&str, Option<usize>, &[&str]); 13] = [
        ("op", raw.op.as_ref().map(|s| at(base, s)), &["threshold"]),
        ("value", raw.value.as_ref().map(|s| at(base, s)), &["threshold"]),
        ("clear", raw.clear.as_ref().map(|s| at(base, s)), &["threshold"]),
        ("for", raw.for_.as_ref().map(|s| at(base, s)), &["threshold"]),
        (
            "divide_by",
            raw.divide_by.as_ref().map(|s| at(base, s)),
            &["threshold", "forecast"],
        ),
        (
            "window",
            raw.window.as_ref().map(|s| at(base, s)),
            &["increase", "forecast"],
        ),
        (
            "min_increase",
            raw.min_increase.as_ref().map(|s| at(base, s)),
            &["increase"],
        ),
        ("reaches", raw.reaches.as_ref().map(|s| at(base, s)), &["forecast"]),
        ("within", raw.within.as_ref().map(|s| at(base, s)), &["forecast"]),
        (
            "after_intervals",
            raw.after_intervals.as_ref().map(|s| at(base, s)),
            &["absence"],
        ),
        ("equals", raw.equals.as_ref().map(|s| at(base, s)), &["state"]),
        ("event", raw.event.as_ref().map(|s| at(base, s)), &["event"]),
        ("check", raw.check.as_ref().map(|s| at(base, s)), &["event"]),
    ];
    // A misplaced field's value is not checked further: one error per mistake.
    let mut misplaced: Vec<&str> = Vec::new();
    if let Some(k) = &kind {
        for (field, offset, kinds) in kind_fields {
            if let Some(o) = offset
                && !kinds.contains(&k.as_str())
            {
                let article = if k.starts_with(['a', 'e', 'i', 'o', 'u']) {
                    "an"
                } else {
                    "a"
                };
                e(o, format!("field `{field}` does not belong to {article} {k} rule"));
                misplaced.push(field);
            }
        }
    }

    let mut finite = |f: &Option<Spanned<f64>>, field: &str| -> Option<f64> {
        let s = f.as_ref().filter(|_| !misplaced.contains(&field))?;
        if s.get_ref().is_finite() {
            Some(*s.get_ref())
        } else {
            e(at(base, s), format!("{field} must be a finite number"));
            None
        }
    };
    let value = finite(&raw.value, "value");
    let clear = finite(&raw.clear, "clear");
    let min_increase = finite(&raw.min_increase, "min_increase");
    let reaches = finite(&raw.reaches, "reaches");
    let equals = finite(&raw.equals, "equals");

    let mut duration = |f: &Option<Spanned<String>>, field: &str| -> Option<Duration> {
        let s = f.as_ref().filter(|_| !misplaced.contains(&field))?;
        parse_duration(s.get_ref()).or_else(|| {
            e(
                at(base, s),
                format!(
                    "{field}: {:?} is not a duration (like \"30s\", \"5m\", \"2h\", \"7d\", \"1h30m\")",
                    s.get_ref()
                ),
            );
            None
        })
    };
    let for_ = duration(&raw.for_, "for");
    let window = duration(&raw.window, "window");
    let within = duration(&raw.within, "within");

    let check_name = raw
        .check
        .as_ref()
        .filter(|_| !misplaced.contains(&"check"))
        .and_then(|c| {
            if is_identifier(c.get_ref()) {
                Some(c.get_ref().clone())
            } else {
                e(
                    at(base, c),
                    format!("check must be a rule-like name ([a-z0-9_]+), not {:?}", c.get_ref()),
                );
                None
            }
        });

    let divide_by = raw
        .divide_by
        .as_ref()
        .and_then(|d| match catalogue::lookup(d.get_ref()) {
            Some(def) => {
                if let Some(ls) = labels
                    && sorted(ls) != sorted(def.labels)
                {
                    e(
                        at(base, d),
                        format!(
                            "divide_by {} must have the same labels as {metric_name} ({} vs {})",
                            def.name,
                            def.labels.join(", "),
                            ls.join(", ")
                        ),
                    );
                }
                Some(def.name.to_string())
            }
            None => {
                e(at(base, d), format!("divide_by: {}", unknown_metric(d.get_ref())));
                None
            }
        });

    let mut require = |present: bool, field: &str| {
        if !present {
            e(header, format!("missing field `{field}`"));
        }
    };
    let condition = match kind.as_deref() {
        Some("threshold") => {
            require(raw.op.is_some(), "op");
            require(raw.value.is_some(), "value");
            let op = raw.op.as_ref().and_then(|o| {
                Op::parse(o.get_ref()).or_else(|| {
                    errors.push(
                        at(base, o),
                        rule_name,
                        format!("op must be >, >=, < or <=, not {:?}", o.get_ref()),
                    );
                    None
                })
            });
            if let (Some(op), Some(v), Some(c), Some(cs)) = (op, value, clear, raw.clear.as_ref()) {
                let safe = match op {
                    Op::Gt | Op::Ge => c < v,
                    Op::Lt | Op::Le => c > v,
                };
                if !safe {
                    let side = if matches!(op, Op::Gt | Op::Ge) {
                        "below"
                    } else {
                        "above"
                    };
                    errors.push(
                        at(base, cs),
                        rule_name,
                        format!("clear {c} must be {side} value {v} for op {}", op.as_str()),
                    );
                }
            }
            match (op, value) {
                (Some(op), Some(value)) => Some(Condition::Threshold {
                    op,
                    value,
                    clear,
                    for_: for_.unwrap_or(Duration::ZERO),
                    divide_by,
                }),
                _ => None,
            }
        }
        Some("increase") => {
            require(raw.window.is_some(), "window");
            require(raw.min_increase.is_some(), "min_increase");
            if let (Some(m), Some(s)) = (min_increase, raw.min_increase.as_ref())
                && m <= 0.0
            {
                errors.push(at(base, s), rule_name, "min_increase must be greater than 0");
            }
            match (window, min_increase) {
                (Some(window), Some(min_increase)) => Some(Condition::Increase { window, min_increase }),
                _ => None,
            }
        }
        Some("forecast") => {
            require(raw.window.is_some(), "window");
            require(raw.reaches.is_some(), "reaches");
            require(raw.within.is_some(), "within");
            match (window, reaches, within) {
                (Some(window), Some(reaches), Some(within)) => Some(Condition::Forecast {
                    window,
                    reaches,
                    within,
                    divide_by,
                }),
                _ => None,
            }
        }
        Some("absence") => {
            require(raw.after_intervals.is_some(), "after_intervals");
            raw.after_intervals
                .as_ref()
                .and_then(|a| match u32::try_from(*a.get_ref()) {
                    Ok(n) if n >= 1 => Some(Condition::Absence { after_intervals: n }),
                    _ => {
                        errors.push(
                            at(base, a),
                            rule_name,
                            format!("after_intervals must be a whole number from 1, not {}", a.get_ref()),
                        );
                        None
                    }
                })
        }
        Some("state") => {
            require(raw.equals.is_some(), "equals");
            equals.map(|equals| Condition::State { equals })
        }
        Some("event") => Some(Condition::Event),
        _ => None,
    };

    if errors.list.len() != before {
        return None;
    }
    Some(Rule {
        name,
        target: target?,
        matches,
        outcome: outcome?,
        severity: severity?,
        component,
        check: check_name,
        summary: summary?,
        description,
        condition: condition?,
        file: errors.file.to_path_buf(),
        line: errors.lines.line(header),
    })
}

/// `[a-z0-9_]+`: rule names, event kinds, checks.
fn is_identifier(v: &str) -> bool {
    !v.is_empty()
        && v.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// The toml crate's messages may span lines; each error must stay on one so
/// that `FILE:LINE:` prefixes every line an operator reads.
fn one_line(message: &str) -> String {
    message.trim_end().lines().map(str::trim).collect::<Vec<_>>().join(": ")
}

fn unknown_metric(name: &str) -> String {
    match name.strip_suffix("_total").and_then(catalogue::lookup) {
        Some(def) if def.kind == MetricKind::Counter => {
            format!(
                "unknown metric {name} (counters are named without _total: {})",
                def.name
            )
        }
        _ => format!("unknown metric {name}"),
    }
}

fn label_list(labels: &[&str]) -> String {
    if labels.is_empty() {
        "it has no labels".into()
    } else {
        format!("its labels: {}", labels.join(", "))
    }
}

fn sorted<'a>(labels: &[&'a str]) -> BTreeSet<&'a str> {
    labels.iter().copied().collect()
}

/// Parses "30s", "5m", "2h", "7d" and combinations in descending order
/// ("1h30m"). Units are whole numbers; anything else is `None`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    const UNITS: [(char, u64); 4] = [('d', 86_400), ('h', 3_600), ('m', 60), ('s', 1)];
    if text.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    // Index into UNITS of the last unit used: each part must be smaller.
    let mut next_unit = 0;
    let mut digits = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let pos = UNITS.iter().position(|(u, _)| *u == c)?;
        if digits.is_empty() || pos < next_unit {
            return None;
        }
        let n: u64 = digits.parse().ok()?;
        total = total.checked_add(n.checked_mul(UNITS[pos].1)?)?;
        digits.clear();
        next_unit = pos + 1;
    }
    if !digits.is_empty() {
        return None;
    }
    Some(Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Some(Duration::from_secs(30)));
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("2h"), Some(Duration::from_secs(7200)));
        assert_eq!(parse_duration("7d"), Some(Duration::from_secs(604_800)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("0s"), Some(Duration::ZERO));
        for bad in ["", "5", "5 minutes", "m", "30m1h", "1h1h", "1.5h", "5ms", "-5m", " 5m"] {
            assert_eq!(parse_duration(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn line_numbers() {
        let l = Lines::new("a\nbc\n\nd");
        assert_eq!(l.line(0), 1);
        assert_eq!(l.line(1), 1);
        assert_eq!(l.line(2), 2);
        assert_eq!(l.line(5), 3);
        assert_eq!(l.line(6), 4);
    }
}
