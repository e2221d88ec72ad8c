#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::*;
use caretaker_shared::catalogue;

/// A valid state rule named `name`, as one `[[rule]]` table (8 lines).
fn good(name: &str) -> String {
    format!(
        "[[rule]]\nname = \"{name}\"\nkind = \"state\"\nmetric = \"caretaker_db_up\"\nequals = 0\ncomponent = \"db\"\noutcome = \"case\"\nseverity = \"critical\"\nsummary = \"{{component}} on {{host}} is down\"\n"
    )
}

fn errors(text: &str) -> Vec<String> {
    parse_file(text, Path::new("r.toml"))
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect()
}

fn write(dir: &Path, file: &str, text: &str) {
    std::fs::write(dir.join(file), text).unwrap();
}

#[test]
fn builtin_pack_parses_and_names_only_catalogue_metrics_and_labels() {
    let rules = parse_file(BUILTIN_TOML, Path::new(BUILTIN_FILE)).unwrap();
    assert_eq!(builtin(), rules);
    assert!(rules.len() >= 20, "{}", rules.len());
    for r in &rules {
        let labels: &[&str] = match &r.target {
            Target::Host => &[],
            Target::Metric(m) => catalogue::lookup(m).unwrap().labels,
            // Events carry their own labels; the pack's event rules are
            // checked against the events the agent sends elsewhere.
            Target::Event(_) => continue,
        };
        for l in r.matches.keys().chain(r.component.iter()) {
            assert!(labels.contains(&l.as_str()), "{}: {l}", r.name);
        }
        if let Condition::Threshold { divide_by: Some(d), .. } | Condition::Forecast { divide_by: Some(d), .. } =
            &r.condition
        {
            assert!(catalogue::lookup(d).is_some(), "{}: {d}", r.name);
        }
        assert!(r.is_builtin());
    }
    let set = load(None).unwrap();
    assert_eq!(set.rules, rules);
    assert_eq!(set.builtin_count(), rules.len());
}

#[test]
fn typed_fields() {
    let rules = builtin();
    let full = rules.iter().find(|r| r.name == "filesystem_almost_full").unwrap();
    assert_eq!(full.outcome, ItemKind::Case);
    assert_eq!(full.severity, Severity::Major);
    assert_eq!(full.component.as_deref(), Some("mountpoint"));
    assert_eq!(
        full.condition,
        Condition::Threshold {
            op: Op::Lt,
            value: 0.05,
            clear: Some(0.08),
            for_: Duration::from_secs(300),
            divide_by: Some("caretaker_filesystem_size_bytes".into()),
        }
    );
    let failing = rules.iter().find(|r| r.name == "disk_failing").unwrap();
    assert_eq!(failing.matches.get("verdict").map(String::as_str), Some("failing"));
    assert_eq!(failing.summary.render("h1", "sda", "1"), "Disk sda on h1 is failing");
    let host = rules.iter().find(|r| r.name == "host_unreachable").unwrap();
    assert_eq!(host.target, Target::Host);
    assert_eq!(host.condition, Condition::Absence { after_intervals: 3 });
}

#[test]
fn good_file_parses_with_origin() {
    let text = format!("# comment\n{}\n{}", good("a"), good("b"));
    let rules = parse_file(&text, Path::new("r.toml")).unwrap();
    assert_eq!(rules.len(), 2);
    assert_eq!((rules[0].line, rules[1].line), (2, 12));
    assert_eq!(rules[0].condition, Condition::State { equals: 0.0 });
}

#[test]
fn toml_syntax_error() {
    let text = format!("{}name = = 3\n", good("a"));
    let e = errors(&text);
    assert_eq!(e, ["r.toml:10: invalid string: expected `\"`, `'`"]);
}

#[test]
fn unknown_field() {
    let text = format!("{}\n{}colour = \"red\"\n", good("a"), good("b"));
    assert_eq!(
        errors(&text),
        [
            "r.toml:20: rule b: unknown field `colour`, expected one of `name`, `kind`, `metric`, `match`, `outcome`, `severity`, `component`, `summary`, `description`, `op`, `value`, `clear`, `for`, `divide_by`, `window`, `min_increase`, `reaches`, `within`, `after_intervals`, `equals`, `event`, `check`"
        ]
    );
}

#[test]
fn unknown_metric() {
    let text = good("a").replace("caretaker_db_up", "caretaker_db_upp");
    // The labels of an unknown metric are unknown: no follow-up label errors.
    assert_eq!(errors(&text), ["r.toml:4: rule a: unknown metric caretaker_db_upp"]);
    let counter = good("a")
        .replace("kind = \"state\"", "kind = \"increase\"")
        .replace("equals = 0", "window = \"1h\"\nmin_increase = 1")
        .replace("caretaker_db_up", "caretaker_oom_kills_total")
        .replace("component = \"db\"\n", "")
        .replace("{component} on ", "");
    assert_eq!(
        errors(&counter),
        [
            "r.toml:4: rule a: unknown metric caretaker_oom_kills_total (counters are named without _total: caretaker_oom_kills)"
        ]
    );
}

#[test]
fn label_not_of_the_metric() {
    let text = good("a").replace("equals = 0\n", "equals = 0\nmatch = { disk = \"sda\" }\n");
    assert_eq!(
        errors(&text),
        ["r.toml:6: rule a: label \"disk\" is not a label of caretaker_db_up (its labels: db, kind)"]
    );
    let text = good("a").replace("component = \"db\"", "component = \"unit\"");
    assert_eq!(
        errors(&text),
        ["r.toml:6: rule a: component \"unit\" is not a label of caretaker_db_up (its labels: db, kind)"]
    );
}

fn threshold(extra: &str) -> String {
    format!(
        "[[rule]]\nname = \"t\"\nkind = \"threshold\"\nmetric = \"caretaker_pg_oldest_transaction_seconds\"\nop = \">\"\nvalue = 3600\n{extra}outcome = \"finding\"\nseverity = \"warning\"\nsummary = \"{{host}}: {{value}}\"\n"
    )
}

#[test]
fn bad_duration() {
    assert_eq!(
        errors(&threshold("for = \"5 minutes\"\n")),
        ["r.toml:7: rule t: for: \"5 minutes\" is not a duration (like \"30s\", \"5m\", \"2h\", \"7d\", \"1h30m\")"]
    );
    let ok = parse_file(&threshold("for = \"1h30m\"\n"), Path::new("r.toml")).unwrap();
    assert!(matches!(ok[0].condition, Condition::Threshold { for_, .. } if for_ == Duration::from_secs(5400)));
}

#[test]
fn clear_on_the_wrong_side() {
    assert_eq!(
        errors(&threshold("clear = 4000\n")),
        ["r.toml:7: rule t: clear 4000 must be below value 3600 for op >"]
    );
    assert!(parse_file(&threshold("clear = 3000\n"), Path::new("r.toml")).is_ok());
    let lt = threshold("clear = 3000\n").replace("op = \">\"", "op = \"<=\"");
    assert_eq!(
        errors(&lt),
        ["r.toml:7: rule t: clear 3000 must be above value 3600 for op <="]
    );
}

#[test]
fn unknown_placeholder_in_summary() {
    let text = good("a").replace("{host} is down", "{hostname} is down");
    assert_eq!(
        errors(&text),
        ["r.toml:9: rule a: summary: unknown placeholder {hostname} (known: {host}, {component}, {value})"]
    );
    let text = good("a").replace("component = \"db\"\n", "");
    assert_eq!(
        errors(&text),
        ["r.toml:8: rule a: summary uses {component} but the rule has no component"]
    );
}

#[test]
fn field_of_another_kind() {
    let text = good("a").replace("equals = 0\n", "equals = 0\nwindow = \"1h\"\n");
    assert_eq!(
        errors(&text),
        ["r.toml:6: rule a: field `window` does not belong to a state rule"]
    );
    // The misplaced field's value is not judged on top.
    let text = good("a").replace("equals = 0\n", "equals = 0\nfor = \"5 minutes\"\nmin_increase = 0\n");
    assert_eq!(
        errors(&text),
        [
            "r.toml:6: rule a: field `for` does not belong to a state rule",
            "r.toml:7: rule a: field `min_increase` does not belong to a state rule",
        ]
    );
}

#[test]
fn missing_fields_and_several_problems_at_once() {
    let text = format!(
        "{}\n{}",
        good("a").replace("severity = \"critical\"\n", ""),
        good("B").replace("outcome = \"case\"", "outcome = \"incident\"")
    );
    assert_eq!(
        errors(&text),
        [
            "r.toml:1: rule a: missing field `severity`",
            "r.toml:11: rule B: name must match [a-z0-9_]+",
            "r.toml:16: rule B: outcome must be finding or case, not \"incident\"",
        ]
    );
}

#[test]
fn duplicate_names() {
    assert_eq!(
        errors(&format!("{}{}", good("a"), good("a"))),
        ["r.toml:10: rule a: duplicate rule name, first defined on line 1"]
    );
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "10-a.toml", &good("same"));
    write(dir.path(), "20-b.toml", &format!("{}\n{}", good("other"), good("same")));
    let e: Vec<String> = load(Some(dir.path()))
        .unwrap_err()
        .iter()
        .map(ToString::to_string)
        .collect();
    let first = dir.path().join("10-a.toml");
    let second = dir.path().join("20-b.toml");
    assert_eq!(
        e,
        [format!(
            "{}:11: rule same: duplicate rule name, also defined at {}:1",
            second.display(),
            first.display()
        )]
    );
}

#[test]
fn operator_rule_replaces_a_builtin_one() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "site.toml",
        &good("database_down").replace("critical", "major"),
    );
    write(dir.path(), "extra.toml", &good("extra"));
    write(dir.path(), "notes.txt", "not a rule file");
    let set = load(Some(dir.path())).unwrap();
    let n = builtin().len();
    assert_eq!(set.rules.len(), n + 1);
    assert_eq!(set.builtin_count(), n - 1);
    let db = set.rules.iter().find(|r| r.name == "database_down").unwrap();
    assert_eq!(db.severity, Severity::Major);
    assert_eq!(db.file, dir.path().join("site.toml"));
}

#[test]
fn reload_keeps_the_previous_set_while_a_file_is_broken() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.toml", &good("first"));
    let current = load(Some(dir.path())).unwrap();

    write(dir.path(), "b.toml", &good("second").replace("state", "sate"));
    let (set, errors) = reload(&current, dir.path());
    assert_eq!(set, current);
    assert_eq!(errors.len(), 1);
    assert_eq!(
        errors[0].to_string(),
        format!(
            "{}:3: rule second: kind must be threshold, increase, forecast, absence, state or event, not \"sate\"",
            dir.path().join("b.toml").display()
        )
    );

    write(dir.path(), "b.toml", &good("second"));
    let (set, errors) = reload(&current, dir.path());
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(set.rules.len(), current.rules.len() + 1);
    assert!(set.rules.iter().any(|r| r.name == "second"));
}

#[test]
fn missing_directory() {
    let e = load(Some(Path::new("/nonexistent/rules"))).unwrap_err();
    assert_eq!(e.len(), 1);
    assert!(
        e[0].to_string()
            .starts_with("/nonexistent/rules: cannot read the rule directory: "),
        "{}",
        e[0]
    );
}

#[test]
fn inline_array_form_is_accepted() {
    let text = "rule = [{ name = \"r\", kind = \"absence\", metric = \"host\", after_intervals = 2, outcome = \"case\", severity = \"critical\", summary = \"{host} is gone\" }]\n";
    let rules = parse_file(text, Path::new("r.toml")).unwrap();
    assert_eq!(rules[0].condition, Condition::Absence { after_intervals: 2 });
}

#[test]
fn kind_specific_checks() {
    let host_threshold = threshold("").replace("caretaker_pg_oldest_transaction_seconds", "host");
    assert_eq!(
        errors(&host_threshold),
        ["r.toml:4: rule t: metric \"host\" is only valid for absence rules"]
    );
    let divide = threshold("divide_by = \"caretaker_db_up\"\n").replace(
        "caretaker_pg_oldest_transaction_seconds",
        "caretaker_filesystem_avail_bytes",
    );
    assert_eq!(
        errors(&divide),
        [
            "r.toml:7: rule t: divide_by caretaker_db_up must have the same labels as caretaker_filesystem_avail_bytes (db, kind vs mountpoint, device, fstype)"
        ]
    );
    let absence = "[[rule]]\nname = \"h\"\nkind = \"absence\"\nmetric = \"host\"\nafter_intervals = 0\noutcome = \"case\"\nseverity = \"critical\"\nsummary = \"{host}\"\n";
    assert_eq!(
        errors(absence),
        ["r.toml:5: rule h: after_intervals must be a whole number from 1, not 0"]
    );
}

#[test]
fn type_errors_and_unknown_top_level_keys() {
    assert_eq!(
        errors("[[rules]]\nname = \"x\"\n"),
        ["r.toml:1: unknown field `rules`, expected `rule`"]
    );
    let text = format!(
        "{}\n{}",
        good("a").replace("equals = 0", "equals = \"zero\""),
        good("b")
    );
    assert_eq!(
        errors(&text),
        ["r.toml:5: rule a: invalid type: string \"zero\", expected f64"]
    );
}

#[test]
fn problems_come_in_line_order_including_subtables() {
    let text = threshold("")
        .replace("op = \">\"", "op = \"==\"")
        .replace("{host}: {value}", "{host")
        + "[rule.match]\ncpu = \"0\"\n";
    assert_eq!(
        errors(&text),
        [
            "r.toml:5: rule t: op must be >, >=, < or <=, not \"==\"",
            "r.toml:9: rule t: summary: unclosed { in \"{host\"",
            "r.toml:11: rule t: label \"cpu\" is not a label of caretaker_pg_oldest_transaction_seconds (its labels: db, kind)",
        ]
    );
}

/// A valid event rule (9 lines).
fn event_rule(extra: &str) -> String {
    format!(
        "[[rule]]\nname = \"sel_psu\"\nkind = \"event\"\nevent = \"ipmi_sel\"\nmatch = {{ class = \"psu_failure\" }}\ncomponent = \"sensor\"\n{extra}outcome = \"case\"\nseverity = \"critical\"\nsummary = \"{{component}} on {{host}}: {{value}}\"\n"
    )
}

#[test]
fn event_rule_parses_with_its_check() {
    let rules = parse_file(&event_rule("check = \"ipmi_psu_critical\"\n"), Path::new("r.toml")).unwrap();
    let r = &rules[0];
    assert_eq!(r.target, Target::Event("ipmi_sel".into()));
    assert_eq!(r.condition, Condition::Event);
    assert_eq!(r.condition.kind(), "event");
    assert_eq!(r.matches.get("class").map(String::as_str), Some("psu_failure"));
    // Any label may be matched or be the component: events carry their own.
    assert_eq!(r.component.as_deref(), Some("sensor"));
    assert_eq!(r.check.as_deref(), Some("ipmi_psu_critical"));
    assert_eq!(r.check_name(), "ipmi_psu_critical");
    assert_eq!(
        r.summary
            .render("h1", "PS2 Status", "Power Supply PS2 Status: Failure detected"),
        "PS2 Status on h1: Power Supply PS2 Status: Failure detected"
    );
    let own = parse_file(&event_rule(""), Path::new("r.toml")).unwrap();
    assert_eq!((own[0].check.as_deref(), own[0].check_name()), (None, "sel_psu"));
}

#[test]
fn event_rule_problems_name_their_line() {
    // An event rule reads events: a metric is a mistake, the event is required.
    let with_metric = event_rule("metric = \"caretaker_db_up\"\n");
    assert_eq!(
        errors(&with_metric),
        ["r.toml:7: rule sel_psu: field `metric` does not belong to an event rule"]
    );
    let no_event = event_rule("").replace("event = \"ipmi_sel\"\n", "");
    assert_eq!(errors(&no_event), ["r.toml:1: rule sel_psu: missing field `event`"]);
    let bad_event = event_rule("").replace("\"ipmi_sel\"", "\"IPMI SEL\"");
    assert_eq!(
        errors(&bad_event),
        ["r.toml:4: rule sel_psu: event must be an event kind like \"ipmi_sel\" ([a-z0-9_]+), not \"IPMI SEL\""]
    );
    let bad_check = event_rule("check = \"PSU critical\"\n");
    assert_eq!(
        errors(&bad_check),
        ["r.toml:7: rule sel_psu: check must be a rule-like name ([a-z0-9_]+), not \"PSU critical\""]
    );
    let window = event_rule("window = \"1h\"\n");
    assert_eq!(
        errors(&window),
        ["r.toml:7: rule sel_psu: field `window` does not belong to an event rule"]
    );
    // `check` and `event` belong to event rules only.
    let state = good("a").replace("equals = 0\n", "equals = 0\ncheck = \"other\"\nevent = \"ipmi_sel\"\n");
    assert_eq!(
        errors(&state),
        [
            "r.toml:6: rule a: field `check` does not belong to a state rule",
            "r.toml:7: rule a: field `event` does not belong to a state rule",
        ]
    );
}
