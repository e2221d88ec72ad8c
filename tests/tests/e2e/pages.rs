//! Every web page as its users meet it, in the real Chromium: a real
//! agent's failing disk gives the queue a case, the findings, replacements
//! and hosts pages their rows; an engineer and a customer's admin then
//! visit every page they may see. On each page, at 1280 px and at 390 px
//! wide (a phone), and in dark mode:
//! - axe-core (the accessibility engine of browsers' own audit tools) finds
//!   no violation: labels, contrast, landmarks, names, ARIA;
//! - the page itself never scrolls sideways (a wide table scrolls inside
//!   its own box).
//!
//! A screenshot of each page and width is left in the test artefacts
//! (`target/test-artefacts/pages/`).
//!
//! Needs `CARETAKER_TEST_CHROMEDRIVER`, `CARETAKER_TEST_CHROMIUM` and
//! `CARETAKER_TEST_AXE` (axe-core's `axe.min.js`, from npm; `.ci/run`
//! installs it): unset, the test is skipped with a note; set, a browser or
//! a file that does not work fails it.

use std::path::Path;
use std::time::Duration;

use fantoccini::Client;
use serde_json::{Value, json};

use crate::browser::{
    Driver, PASSWORD, browser_tools, browser_with, click, collector_with_contracts, log_in, page_with, screenshot,
};
use crate::disk_health::{show, smart_config, stand_in};
use crate::util::{Agent, eventually, wait_for_host};

fn contracts(phc: &str) -> String {
    format!(
        r#"
[[customer]]
name = "acme"
sites = ["hq"]

[[contract]]
name = "acme-office"
customer = "acme"
covers = {{ labels = {{ customer = "acme" }} }}
hours = "5x8"
time_zone = "Europe/Berlin"
response = {{ critical = "1h", major = "4h", warning = "8h" }}
resolution = {{ critical = "8h", major = "2d" }}

[[engineer]]
name = "ana"
skills = ["hardware", "os", "database", "network"]
sites = ["hq"]
level = "L1"

[[user]]
name = "ana"
role = "engineer"
password = "{phc}"

[[user]]
name = "carol"
role = "customer"
customer = "acme"
password = "{phc}"
"#
    )
}

/// The page's axe-core violations, one line each (rule, impact, help, the
/// elements).
async fn violations(c: &Client, axe: &str) -> Vec<String> {
    c.execute(axe, vec![])
        .await
        .unwrap_or_else(|e| panic!("loading axe-core: {e}"));
    let script = r#"
        const done = arguments[arguments.length - 1];
        axe.run(document, { resultTypes: ['violations'] })
            .then(r => done(r.violations.map(v =>
                `${v.id} (${v.impact}): ${v.help}: ` + v.nodes.map(n => n.target.join(' ')).join(', '))))
            .catch(e => done(['axe failed: ' + e]));
    "#;
    let v = c
        .execute_async(script, vec![])
        .await
        .unwrap_or_else(|e| panic!("running axe-core: {e}"));
    serde_json::from_value(v).unwrap_or_else(|e| panic!("axe-core's answer: {e}"))
}

/// How far the page scrolls sideways beyond the window (0: it does not),
/// and the outermost elements that reach past it.
async fn overflow(c: &Client) -> (i64, String) {
    let v: Value = c
        .execute(
            r#"const width = document.documentElement.clientWidth;
const wide = [...document.querySelectorAll('main *, header *')]
  .filter(e => e.getBoundingClientRect().right > width + 1)
  .filter(e => !e.parentElement || e.parentElement.getBoundingClientRect().right <= width + 1)
  .slice(0, 5)
  .map(e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + (e.className ? '.' + e.className : ''));
return [document.documentElement.scrollWidth - width, wide.join(', ')];"#,
            vec![],
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    (
        v[0].as_i64().unwrap_or(i64::MAX),
        v[1].as_str().unwrap_or_default().to_string(),
    )
}

/// Visits each of `paths` at each width, checks it and leaves its
/// screenshot; answers every problem found, one per line.
async fn tour(c: &Client, base: &str, axe: &str, who: &str, paths: &[&str], widths: &[u32], mode: &str) -> Vec<String> {
    let mut problems = Vec::new();
    for &width in widths {
        c.set_window_size(width, 900).await.unwrap_or_else(|e| panic!("{e}"));
        for path in paths {
            c.goto(&format!("{base}{path}"))
                .await
                .unwrap_or_else(|e| panic!("{path}: {e}"));
            let source = c.source().await.unwrap_or_default();
            assert!(
                source.contains("Logged in as"),
                "{who} {path}: not a page of the app: {source}"
            );
            for v in violations(c, axe).await {
                problems.push(format!("{who} {path} {width}px {mode}: {v}"));
            }
            if mode == "dark" {
                let bg = c
                    .execute("return getComputedStyle(document.body).backgroundColor;", vec![])
                    .await
                    .unwrap_or_else(|e| panic!("{e}"));
                if bg == json!("rgb(255, 255, 255)") {
                    problems.push(format!("{who} {path} {width}px dark: the page stays white"));
                }
            }
            let (over, wide) = overflow(c).await;
            if over > 0 {
                problems.push(format!(
                    "{who} {path} {width}px {mode}: the page scrolls {over} px sideways ({wide})"
                ));
            }
            let name: String = path
                .trim_start_matches('/')
                .chars()
                .map(|ch| if ch.is_ascii_alphanumeric() { ch } else { '-' })
                .collect();
            screenshot(c, "pages", &format!("{who}-{name}-{width}-{mode}")).await;
        }
    }
    problems
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_is_accessible_fits_a_phone_and_has_a_dark_mode() {
    let Some((chromedriver, chromium)) = browser_tools("the page tour") else {
        return;
    };
    let Some(axe) = std::env::var("CARETAKER_TEST_AXE").ok().filter(|v| !v.is_empty()) else {
        eprintln!("CARETAKER_TEST_AXE is not set: skipping the page tour");
        return;
    };
    let axe = std::fs::read_to_string(&axe).unwrap_or_else(|e| panic!("CARETAKER_TEST_AXE={axe}: {e}"));
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let grafana = "[web]\ngrafana_url = \"https://grafana.example\"\n";
    let collector = collector_with_contracts(dir.path(), contracts, grafana).await;

    // A real agent whose smartctl shows a failing disk: a case, and a
    // replacement recommendation.
    let smart = dir.path().join("smart");
    let script = stand_in(&smart);
    let failing = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/smartctl/ata/hitachi-hds721050dle630-usbjmicron-reallocated-failing.json"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let failing: Value = serde_json::from_str(&failing).unwrap_or_else(|e| panic!("{e}"));
    show(&smart, &failing);
    let _agent = Agent::start(dir.path(), &collector, 1, &smart_config(&script));
    wait_for_host(&collector, &_agent).await;
    let case = eventually("a disk_failing case", Duration::from_secs(60), || async {
        let v = collector.api("/api/v1/cases?host=e2e-host").await;
        v["cases"]
            .as_array()?
            .iter()
            .find(|c| c["rule"] == "disk_failing")
            .cloned()
    })
    .await;
    let id = case["id"].as_i64().unwrap_or_else(|| panic!("case without id: {case}"));

    let base = collector.url();
    let case_page = format!("/cases/{id}");
    let staff_pages = [
        "/queue",
        case_page.as_str(),
        "/assets/e2e-host",
        "/hosts",
        "/findings",
        "/recommendations",
        "/spares",
        "/reports",
        "/maintenance",
        "/unmapped",
        "/faults/new",
    ];
    let customer_pages = [
        "/portal",
        case_page.as_str(),
        "/assets/e2e-host",
        "/hosts",
        "/findings",
        "/recommendations",
        "/spares",
        "/reports",
        "/maintenance",
        "/faults/new",
    ];
    let driver = Driver::start(&chromedriver, dir.path());
    let mut problems = Vec::new();
    for dark in [false, true] {
        let mode = if dark { "dark" } else { "light" };
        // Chromium takes the dark colour scheme with these flags.
        let flags: &[&str] = if dark {
            &["--force-dark-mode", "--blink-settings=preferredColorScheme=0"]
        } else {
            &[]
        };
        let c = browser_with(&driver, &chromium, &dir.path().join(format!("profile-{mode}")), flags).await;
        if dark {
            c.goto(&format!("{base}/login")).await.unwrap_or_else(|e| panic!("{e}"));
            let v = c
                .execute("return matchMedia('(prefers-color-scheme: dark)').matches;", vec![])
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(v, json!(true), "Chromium did not take the dark colour scheme");
        }
        let widths: &[u32] = if dark { &[390] } else { &[1280, 390] };
        log_in(&c, &base, "ana", PASSWORD).await;
        if !dark {
            // The device archive: the configuration list, the failing disk's
            // chart, the way to Grafana.
            c.goto(&format!("{base}/assets/e2e-host"))
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let asset = c.source().await.unwrap_or_default();
            for want in [
                "<h2>Configuration</h2>",
                "<h2>Disk health</h2>",
                "<svg role=\"img\" aria-label=\"error counters of",
                "href=\"https://grafana.example/d/caretaker-host/?var-customer=acme&amp;var-host=e2e-host\"",
            ] {
                assert!(asset.contains(want), "the asset page lacks {want}: {asset}");
            }
        }
        problems.extend(tour(&c, &base, &axe, "engineer", &staff_pages, widths, mode).await);
        click(&c, "form[action='/logout'] button[type=submit]").await;
        page_with(&c, "name=\"password\"").await;
        log_in(&c, &base, "carol", PASSWORD).await;
        problems.extend(tour(&c, &base, &axe, "customer", &customer_pages, widths, mode).await);
        let _ = c.close().await;
    }
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
