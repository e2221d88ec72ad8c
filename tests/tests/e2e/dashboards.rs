//! The Grafana dashboards in `dashboards/`. Always: every file has the shape
//! Grafana needs (uid, title, schemaVersion, panels with a datasource, gridPos
//! and targets) and every PromQL expression names only metrics of the
//! catalogue, with the suffix their kind is exposed with. With a real
//! Prometheus (`CARETAKER_TEST_PROMETHEUS`): a collector fed by a real agent
//! (a stand-in smartctl with an ATA, an NVMe and a SAS disk; this machine's
//! databases when `CARETAKER_TEST_POSTGRES`/`MARIADB`/`REDIS` are set) is
//! scraped, and every expression of every dashboard must parse and return
//! data, except those listed with their reason in `dashboards/may-be-empty.txt`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use caretaker_shared::catalogue::{CATALOGUE, HOST_LABELS, Kind, Source};
use serde_json::Value;

use crate::util::{Agent, Collector, eventually, start_prometheus, wait_for_host};

fn dashboards_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../dashboards")
}

/// Every dashboard file, parsed.
fn dashboards() -> Vec<(String, Value)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dashboards_dir())
        .unwrap_or_else(|e| panic!("dashboards/: {e}"))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(files.len() >= 5, "expected the five dashboards, found {files:?}");
    files
        .into_iter()
        .map(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{name}: {e}"));
            let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: not JSON: {e}"));
            (name, v)
        })
        .collect()
}

/// One PromQL expression of a dashboard and where it sits.
#[derive(Debug, Clone)]
struct Query {
    at: String,
    expr: String,
}

/// The panels' target expressions and the selectors inside the variables'
/// `label_values(SELECTOR, label)` queries.
fn queries(file: &str, d: &Value) -> Vec<Query> {
    let mut out = Vec::new();
    for p in panels(d) {
        let title = p["title"].as_str().unwrap_or("?");
        for t in p["targets"].as_array().into_iter().flatten() {
            out.push(Query {
                at: format!("{file}: panel {title:?} {}", t["refId"].as_str().unwrap_or("?")),
                expr: t["expr"].as_str().unwrap_or_default().to_string(),
            });
        }
    }
    for v in d["templating"]["list"].as_array().into_iter().flatten() {
        if v["type"] != "query" {
            continue;
        }
        let q = v["query"]["query"].as_str().or(v["query"].as_str()).unwrap_or_default();
        let inner = q
            .strip_prefix("label_values(")
            .and_then(|r| r.strip_suffix(')'))
            .and_then(|r| r.rsplit_once(','))
            .map(|(sel, _label)| sel.trim().to_string());
        let Some(expr) = inner else {
            panic!(
                "{file}: variable {}: only label_values(SELECTOR, label) is used: {q}",
                v["name"]
            );
        };
        out.push(Query {
            at: format!("{file}: variable {}", v["name"]),
            expr,
        });
    }
    out
}

/// Every panel, rows' nested panels included, rows themselves excluded.
fn panels(d: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in d["panels"].as_array().into_iter().flatten() {
        if p["type"] == "row" {
            out.extend(p["panels"].as_array().into_iter().flatten());
        } else {
            out.push(p);
        }
    }
    out
}

const GROUPING: &[&str] = &["by", "without", "on", "ignoring", "group_left", "group_right"];
/// Keywords, and the aggregation operators (`sum by (x) (..)` has no `(` after `sum`).
const WORDS: &[&str] = &[
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "atan2",
    "inf",
    "nan",
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];

/// The metric names an expression selects: identifiers outside strings,
/// label matchers, ranges and grouping clauses that are not functions or
/// keywords.
fn metric_names(expr: &str) -> Vec<String> {
    selectors(expr).into_iter().map(|(name, _)| name).collect()
}

/// The label names of a matcher list `a="x", b=~"y"` (without the braces).
fn matcher_labels(m: &[char]) -> Vec<String> {
    let mut labels = Vec::new();
    let mut i = 0;
    while i < m.len() {
        while i < m.len() && (m[i].is_whitespace() || m[i] == ',') {
            i += 1;
        }
        let start = i;
        while i < m.len() && (m[i].is_ascii_alphanumeric() || m[i] == '_') {
            i += 1;
        }
        if i > start {
            labels.push(m[start..i].iter().collect());
        }
        // On to the next top-level comma, over the quoted value.
        while i < m.len() && m[i] != ',' {
            if m[i] == '"' {
                i += 1;
                while i < m.len() && m[i] != '"' {
                    i += if m[i] == '\\' { 2 } else { 1 };
                }
            }
            i += 1;
        }
    }
    labels
}

/// Each metric selector of an expression: the metric name and the label
/// names its matchers use.
fn selectors(expr: &str) -> Vec<(String, Vec<String>)> {
    let b: Vec<char> = expr.chars().collect();
    let mut names = Vec::new();
    let mut i = 0;
    let skip_to = |i: usize, close: char| -> usize {
        let mut j = i + 1;
        while j < b.len() && b[j] != close {
            if matches!(b[j], '"' | '\'' | '`') {
                let q = b[j];
                j += 1;
                while j < b.len() && b[j] != q {
                    j += if b[j] == '\\' { 2 } else { 1 };
                }
            }
            j += 1;
        }
        j + 1
    };
    while i < b.len() {
        let c = b[i];
        if matches!(c, '"' | '\'' | '`') {
            i = skip_to(i, c);
        } else if c == '{' {
            i = skip_to(i, '}');
        } else if c == '[' {
            i = skip_to(i, ']');
        } else if c.is_ascii_digit() || (c == '.' && b.get(i + 1).is_some_and(char::is_ascii_digit)) {
            // Numbers, durations (5m) and exponents (1e-9).
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == '.') {
                i += 1;
            }
            if i < b.len() && b[i] == '-' && b[i - 1] == 'e' {
                i += 1;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == '_' || b[i] == ':') {
                i += 1;
            }
            let word: String = b[start..i].iter().collect();
            let mut j = i;
            while j < b.len() && b[j].is_whitespace() {
                j += 1;
            }
            let next = b.get(j).copied();
            if GROUPING.contains(&word.as_str()) {
                if next == Some('(') {
                    i = skip_to(j, ')');
                }
            } else if WORDS.contains(&word.as_str()) || next == Some('(') {
                // A keyword or a function call.
            } else if next == Some('{') {
                let end = skip_to(j, '}');
                let close = end.saturating_sub(1).min(b.len());
                let inner = &b[(j + 1).min(close)..close];
                names.push((word, matcher_labels(inner)));
                i = end;
            } else {
                names.push((word, Vec::new()));
            }
        } else {
            i += 1;
        }
    }
    names
}

/// The labels a series of `name` carries (the host labels for agent metrics).
fn labels_of(name: &str) -> Option<Vec<&'static str>> {
    let d = CATALOGUE.iter().find(|d| {
        name == d.name || name.strip_suffix("_total") == Some(d.name) || name.strip_suffix("_bucket") == Some(d.name)
    })?;
    let mut l: Vec<&'static str> = d.labels.to_vec();
    if d.source == Source::Agent {
        l.extend(HOST_LABELS);
    }
    if d.kind == Kind::Histogram {
        l.push("le");
    }
    Some(l)
}

/// Whether Prometheus stores `name` for some catalogue metric: gauges by
/// their name, counters with `_total`, histograms with `_bucket`/`_sum`/`_count`.
fn in_catalogue(name: &str) -> bool {
    CATALOGUE.iter().any(|d| match d.kind {
        Kind::Gauge => name == d.name,
        Kind::Counter => name.strip_suffix("_total") == Some(d.name),
        Kind::Histogram => ["_bucket", "_sum", "_count"]
            .iter()
            .any(|s| name.strip_suffix(s) == Some(d.name)),
    })
}

/// `dashboards/may-be-empty.txt`: `EXPR  # reason` lines (blank lines and
/// lines starting with `#` aside).
fn may_be_empty() -> BTreeMap<String, String> {
    let path = dashboards_dir().join("may-be-empty.txt");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((expr, reason)) = line.rsplit_once(" # ") else {
            panic!("may-be-empty.txt:{}: no \" # reason\": {line}", n + 1);
        };
        assert!(!reason.trim().is_empty(), "may-be-empty.txt:{}: empty reason", n + 1);
        out.insert(expr.trim().to_string(), reason.trim().to_string());
    }
    out
}

#[test]
fn dashboards_have_grafana_shape_and_only_catalogue_metrics() {
    let mut problems = Vec::new();
    let mut uids = BTreeSet::new();
    let mut all_exprs = BTreeSet::new();
    for (file, d) in dashboards() {
        let mut bad = |m: String| problems.push(format!("{file}: {m}"));
        match d["uid"].as_str() {
            Some(u) if !u.is_empty() && u.len() <= 40 => {
                if !uids.insert(u.to_string()) {
                    bad(format!("uid {u} used twice"));
                }
            }
            _ => bad("uid missing, empty or longer than 40".into()),
        }
        if d["title"].as_str().is_none_or(str::is_empty) {
            bad("title missing".into());
        }
        if d["schemaVersion"].as_u64().is_none_or(|v| v < 36) {
            bad(format!("schemaVersion {} (want >= 36)", d["schemaVersion"]));
        }
        let vars: Vec<&str> = d["templating"]["list"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v["name"].as_str())
            .collect();
        if !vars.contains(&"datasource") {
            bad("no datasource variable".into());
        }
        let mut ids = BTreeSet::new();
        let ps = panels(&d);
        if ps.is_empty() {
            bad("no panels".into());
        }
        for p in d["panels"].as_array().into_iter().flatten() {
            if !ids.insert(p["id"].as_u64().unwrap_or(0)) {
                bad(format!("panel id {} missing or used twice", p["id"]));
            }
        }
        for p in ps {
            let title = p["title"].as_str().unwrap_or("?");
            let mut bad = |m: String| problems.push(format!("{file}: panel {title:?}: {m}"));
            let ds = &p["datasource"];
            if ds["type"] != "prometheus" || ds["uid"] != "${datasource}" {
                bad(format!(
                    "datasource {ds} is not the prometheus ${{datasource}} variable"
                ));
            }
            let g = &p["gridPos"];
            match (g["h"].as_u64(), g["w"].as_u64(), g["x"].as_u64(), g["y"].as_u64()) {
                (Some(h), Some(w), Some(x), Some(_)) if h > 0 && w > 0 && x + w <= 24 => {}
                _ => bad(format!("gridPos {g} needs h, w, x, y with x + w <= 24")),
            }
            let targets = p["targets"].as_array().cloned().unwrap_or_default();
            if targets.is_empty() {
                bad("no targets".into());
            }
            for t in &targets {
                if t["expr"].as_str().is_none_or(|e| e.trim().is_empty()) || t["refId"].as_str().is_none() {
                    bad(format!("target without expr or refId: {t}"));
                }
                if t["datasource"] != *ds {
                    bad("target datasource differs from the panel's".into());
                }
            }
        }
        for q in queries(&file, &d) {
            all_exprs.insert(q.expr.clone());
            let names = metric_names(&q.expr);
            if names.is_empty() {
                problems.push(format!("{}: no metric in {}", q.at, q.expr));
            }
            for n in names {
                if !in_catalogue(&n) {
                    problems.push(format!(
                        "{}: {n} is not a catalogue metric as exposed: {}",
                        q.at, q.expr
                    ));
                }
            }
            for (n, labels) in selectors(&q.expr) {
                let known = labels_of(&n).unwrap_or_default();
                for l in labels.iter().filter(|l| !known.contains(&l.as_str())) {
                    problems.push(format!("{}: {n} has no label {l}: {}", q.at, q.expr));
                }
            }
            let rest = substitute(&q.expr);
            if rest.contains('$') {
                problems.push(format!("{}: unknown variable in {}", q.at, q.expr));
            }
        }
    }
    // Every may-be-empty entry names an expression some dashboard uses.
    for expr in may_be_empty().keys() {
        if !all_exprs.contains(expr) {
            problems.push(format!("may-be-empty.txt: no dashboard uses {expr}"));
        }
    }
    assert!(
        problems.is_empty(),
        "{} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

#[test]
fn metric_names_are_found_outside_matchers_ranges_and_groupings() {
    let e = r#"histogram_quantile(0.99, sum by (le) (rate(caretaker_ingest_latency_seconds_bucket{host=~"$host"}[$__rate_interval]))) / on (host) group_left caretaker_hosts_up or vector(1e-9) > bool 0.5"#;
    assert_eq!(
        metric_names(e),
        ["caretaker_ingest_latency_seconds_bucket", "caretaker_hosts_up"]
    );
    assert_eq!(metric_names("time() - x_y offset 5m"), ["x_y"]);
    assert_eq!(
        selectors(r#"a{host=~"x,y", db="z"} / b{} + c"#),
        [
            ("a".to_string(), vec!["host".to_string(), "db".to_string()]),
            ("b".to_string(), vec![]),
            ("c".to_string(), vec![])
        ]
    );
    assert!(in_catalogue("caretaker_ingest_latency_seconds_count"));
    assert!(in_catalogue("caretaker_ingest_reports_accepted_total"));
    assert!(!in_catalogue("caretaker_ingest_reports_accepted"));
    assert!(!in_catalogue("caretaker_hosts_up_total"));
    let cases = labels_of("caretaker_cases_open").unwrap_or_default();
    assert!(cases.contains(&"severity") && !cases.contains(&"host"), "{cases:?}");
    let disk = labels_of("caretaker_disk_read_bytes_total").unwrap_or_default();
    assert!(disk.contains(&"device") && disk.contains(&"host"), "{disk:?}");
    let latency = labels_of("caretaker_ingest_latency_seconds_bucket").unwrap_or_default();
    assert_eq!(latency, ["le"]);
}

/// Grafana's variables as Prometheus sees them with "All" selected.
fn substitute(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("$customer", ".*")
        .replace("$host", ".*")
        .replace("$db", ".*")
}

// --- against a real Prometheus ----------------------------------------------------

/// A `smartctl` answering `--scan-open` with an ATA, an NVMe and a SAS disk,
/// and each read with a recorded fixture of that kind.
fn smartctl_stand_in(dir: &Path) -> PathBuf {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/smartctl");
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{e}"));
    for (name, fixture) in [
        ("ata.json", "ata/wdc-wd140edfz-sat-healthy.json"),
        ("nvme.json", "nvme/intel-ssdpe2kx020t7-wear-75pct.json"),
        (
            "scsi.json",
            "scsi/seagate-st373453lc-grown-defects-260-uncorrected.json",
        ),
    ] {
        std::fs::copy(fixtures.join(fixture), dir.join(name)).unwrap_or_else(|e| panic!("{fixture}: {e}"));
    }
    std::fs::write(
        dir.join("scan.json"),
        r#"{"json_format_version":[1,0],"smartctl":{"version":[7,3],"exit_status":0},
           "devices":[{"name":"/dev/sda","info_name":"/dev/sda [SAT]","type":"sat","protocol":"ATA"},
                      {"name":"/dev/nvme0","info_name":"/dev/nvme0","type":"nvme","protocol":"NVMe"},
                      {"name":"/dev/sdb","info_name":"/dev/sdb","type":"scsi","protocol":"SCSI"}]}"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let script = dir.join("smartctl");
    std::fs::write(
        &script,
        "#!/bin/sh\nD=\"$(dirname \"$0\")\"\ncase \"$*\" in\n  *--scan-open*) cat \"$D/scan.json\";;\n  */dev/nvme0*) cat \"$D/nvme.json\";;\n  */dev/sdb*) cat \"$D/scsi.json\";;\n  *) cat \"$D/ata.json\";;\nesac\nexit 0\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap_or_else(|e| panic!("{e}"));
    script
}

/// This machine's database servers (as the database tests use them) plus one
/// that refuses connections, so the error panels have a failed poll to show.
fn database_targets() -> (String, bool) {
    let get = |v: &str| std::env::var(v).ok().filter(|s| !s.is_empty());
    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        l.local_addr().map(|a| a.port()).unwrap_or_else(|e| panic!("{e}"))
    };
    let mut t = format!(
        "[[databases]]\nname = \"gone\"\nkind = \"redis\"\naddress = \"127.0.0.1:{refused}\"\ninterval_secs = 1\nconnect_timeout_ms = 500\n"
    );
    let servers = (
        get("CARETAKER_TEST_POSTGRES"),
        get("CARETAKER_TEST_MARIADB"),
        get("CARETAKER_TEST_REDIS"),
    );
    let (Some(pg), Some(maria), Some(redis)) = servers else {
        eprintln!("CARETAKER_TEST_POSTGRES/MARIADB/REDIS not all set: database panels may be empty");
        return (t, false);
    };
    t.push_str(&format!(
        "[[databases]]\nname = \"pg\"\nkind = \"postgresql\"\naddress = \"{pg}\"\ninterval_secs = 1\n\
         [[databases]]\nname = \"maria\"\nkind = \"mariadb\"\naddress = \"{maria}\"\nuser = \"root\"\ninterval_secs = 1\n\
         [[databases]]\nname = \"cache\"\nkind = \"redis\"\naddress = \"{redis}\"\ninterval_secs = 1\n"
    ));
    (t, true)
}

enum Answer {
    Data,
    Empty,
    NaN(String),
    Error(String),
}

async fn instant(client: &reqwest::Client, base: &str, q: &str) -> Answer {
    let resp = match client
        .get(format!("{base}/api/v1/query"))
        .query(&[("query", q)])
        .send()
        .await
    {
        Ok(r) => r,
        Err(e) => return Answer::Error(e.to_string()),
    };
    let v: Value = match resp.json().await {
        Ok(v) => v,
        Err(e) => return Answer::Error(e.to_string()),
    };
    if v["status"] != "success" {
        return Answer::Error(format!("{}: {}", v["errorType"], v["error"]));
    }
    let result = v["data"]["result"].as_array().cloned().unwrap_or_default();
    if let Some(nan) = result.iter().find(|r| r["value"][1] == "NaN") {
        return Answer::NaN(nan["metric"].to_string());
    }
    if result.is_empty() { Answer::Empty } else { Answer::Data }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_dashboard_query_returns_data_from_a_real_prometheus() {
    let prometheus = match std::env::var("CARETAKER_TEST_PROMETHEUS") {
        Ok(p) if !p.is_empty() => p,
        _ => {
            eprintln!("CARETAKER_TEST_PROMETHEUS is not set: skipping the dashboard queries against Prometheus");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let collector = Collector::start(dir.path()).await;
    let script = smartctl_stand_in(&dir.path().join("smartctl"));
    let (dbs, with_databases) = database_targets();
    // A BMC and a RAID controller (stand-ins printing captures), so the
    // server-management panels have data too.
    let hw = dir.path().join("hardware");
    let ipmi = crate::hardware::fake_freeipmi(&hw.join("ipmi"));
    crate::hardware::answer(
        &hw.join("ipmi"),
        "sensors.csv",
        &crate::hardware::read_fixture(crate::hardware::SENSORS_HEALTHY),
    );
    crate::hardware::answer(
        &hw.join("ipmi"),
        "sel.csv",
        &crate::hardware::read_fixture(crate::hardware::SEL_OLD),
    );
    let storcli = crate::hardware::fake_storcli(&hw.join("raid"));
    crate::hardware::storcli_shows(&hw.join("raid"), crate::hardware::PRAID, crate::hardware::PRAID_DRIVES);
    let raid = crate::hardware::raid_config(&storcli, &hw);
    let extra = format!(
        "[smart]\nsmartctl_path = \"{}\"\ninterval_secs = 1\ntimeout_secs = 5\n{ipmi}{raid}{dbs}",
        script.display()
    );
    let agent = Agent::start(dir.path(), &collector, 1, &extra);
    wait_for_host(&collector, &agent).await;

    let (_prom, base) = start_prometheus(dir.path(), &collector, &prometheus);
    let client = reqwest::Client::new();
    // Scraped, with the disks read: then a few more scrapes so rates have two points.
    eventually("disks in Prometheus", Duration::from_secs(60), || {
        let client = client.clone();
        let base = base.clone();
        async move {
            match instant(&client, &base, "count(caretaker_disk_info) >= 3").await {
                Answer::Data => Some(()),
                _ => None,
            }
        }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(5)).await;

    let allowed = may_be_empty();
    let db_metric = |e: &str| {
        ["caretaker_pg_", "caretaker_mysql_", "caretaker_redis_"]
            .iter()
            .any(|p| e.contains(p))
    };
    let mut failures = Vec::new();
    let mut pending: Vec<(Query, String)> = Vec::new();
    let mut checked = 0;
    let mut empty_allowed = 0;
    for (file, d) in dashboards() {
        for q in queries(&file, &d) {
            checked += 1;
            let expr = substitute(&q.expr);
            if allowed.contains_key(&q.expr) || (!with_databases && db_metric(&q.expr)) {
                // Must parse; may be empty.
                match instant(&client, &base, &expr).await {
                    Answer::Error(e) => failures.push(format!("{}: {e}: {expr}", q.at)),
                    Answer::Data => {}
                    Answer::Empty | Answer::NaN(_) => empty_allowed += 1,
                }
            } else {
                pending.push((q, expr));
            }
        }
    }
    // Data can lag a scrape or two (rates, the disk pass): passes until every
    // expression has answered with data, or the deadline.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut still = Vec::new();
        let mut last = Vec::new();
        for (q, expr) in pending {
            match instant(&client, &base, &expr).await {
                Answer::Data => {}
                Answer::Error(e) => failures.push(format!("{}: {e}: {expr}", q.at)),
                Answer::Empty => {
                    last.push(format!("{}: no data: {expr}", q.at));
                    still.push((q, expr));
                }
                Answer::NaN(m) => {
                    last.push(format!("{}: NaN for {m}: {expr}", q.at));
                    still.push((q, expr));
                }
            }
        }
        pending = still;
        if pending.is_empty() {
            break;
        }
        if Instant::now() >= deadline {
            failures.extend(last);
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    eprintln!("{checked} dashboard queries checked, {empty_allowed} empty as allowed");
    assert!(
        failures.is_empty(),
        "{} of {checked} dashboard queries failed (agent log {}):\n{}",
        failures.len(),
        agent.log.display(),
        failures.join("\n")
    );
}
