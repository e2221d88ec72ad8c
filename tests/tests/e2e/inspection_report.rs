//! An inspection report of a live fleet: a real agent reports to a real
//! collector, the report is generated and downloaded through the API, and
//! headless Chromium renders the HTML (DOM dump and PDF) without errors.
//! Needs `CARETAKER_TEST_CHROMIUM` (the browser's path; `.ci/run` sets it):
//! unset, the browser part is skipped with a note; set, a browser that
//! cannot run fails the test.

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};

use crate::util::{Agent, Collector, wait_for_host};

/// Runs Chromium headless on `page` with `action` (`--dump-dom` or
/// `--print-to-pdf=FILE`); returns (stdout, stderr).
async fn chromium(browser: &str, profile: &Path, page: &Path, action: &str) -> (String, String) {
    let mut cmd = tokio::process::Command::new(browser);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--enable-logging=stderr",
        "--v=0",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .arg(action)
    .arg(format!("file://{}", page.display()))
    .stdin(Stdio::null())
    .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(90), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{browser} {action} did not finish within 90 s"))
        .unwrap_or_else(|e| panic!("{browser} cannot be run: {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "{browser} {action} failed: {:?}\n{stderr}",
        out.status
    );
    (String::from_utf8_lossy(&out.stdout).into_owned(), stderr)
}

/// Lines where the page itself complained: script errors or console errors.
fn page_errors(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.contains("Uncaught") || (l.contains(":CONSOLE") && l.contains("ERROR")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inspection_report_of_a_live_fleet_renders_in_chromium() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let c = Collector::start(dir.path()).await;
    let agent = Agent::start(dir.path(), &c, 1, "");
    wait_for_host(&c, &agent).await;

    let now = caretaker_shared::now_ms();
    let resp = c
        .client
        .post(format!("{}/api/v1/reports/inspection", c.url()))
        .bearer_auth(&c.api_token)
        .json(&json!({"customer": "acme", "from": now - 3_600_000, "to": now}))
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST inspection report: {e}"));
    assert_eq!(resp.status().as_u16(), 201);
    let made: Value = resp.json().await.unwrap_or(Value::Null);
    let id = made["id"].as_i64().unwrap_or_else(|| panic!("no id in {made}"));

    let report = c.api(&format!("/api/v1/reports/inspection/{id}")).await;
    assert_eq!(report["systems"][0]["host"], "e2e-host", "{report}");
    assert_eq!(report["systems"][0]["state"], "up");
    assert!(
        report["systems"][0]["kernel"].as_str().is_some_and(|k| !k.is_empty()),
        "{report}"
    );
    let list = c.api("/api/v1/reports/inspection?customer=acme").await;
    assert_eq!(list["reports"][0]["id"], id);

    let resp = c
        .client
        .get(format!("{}/api/v1/reports/inspection/{id}.html", c.url()))
        .bearer_auth(&c.api_token)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET html: {e}"));
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(
        resp.headers().get("content-type").and_then(|v| v.to_str().ok()),
        Some("text/html; charset=utf-8")
    );
    let html = resp.text().await.unwrap_or_default();
    assert!(html.contains("e2e-host"));

    let Some(browser) = std::env::var("CARETAKER_TEST_CHROMIUM").ok().filter(|v| !v.is_empty()) else {
        eprintln!("CARETAKER_TEST_CHROMIUM is not set: skipping the headless Chromium rendering");
        return;
    };
    let page = dir.path().join("report.html");
    std::fs::write(&page, &html).unwrap_or_else(|e| panic!("{e}"));
    let profile = dir.path().join("chromium-profile");

    let (dom, stderr) = chromium(&browser, &profile, &page, "--dump-dom").await;
    for want in [
        "<h1>Inspection report</h1>",
        "id=\"systems\"",
        "id=\"risks\"",
        "id=\"cases\"",
        "id=\"recommendations\"",
        "id=\"spares\"",
        "id=\"satisfaction\"",
        "id=\"advice\"",
        "e2e-host",
        "n/a: no case under contract ended in the period",
    ] {
        assert!(dom.contains(want), "rendered DOM lacks {want:?}:\n{dom}");
    }
    assert_eq!(page_errors(&stderr), Vec::<&str>::new(), "page errors:\n{stderr}");

    let pdf = dir.path().join("report.pdf");
    let (_, stderr) = chromium(&browser, &profile, &page, &format!("--print-to-pdf={}", pdf.display())).await;
    assert_eq!(page_errors(&stderr), Vec::<&str>::new(), "page errors:\n{stderr}");
    let bytes = std::fs::read(&pdf).unwrap_or_else(|e| panic!("no PDF at {}: {e}\n{stderr}", pdf.display()));
    assert!(
        bytes.len() > 1000 && bytes.starts_with(b"%PDF"),
        "not a PDF: {} bytes",
        bytes.len()
    );
}

/// `serve` makes the previous month's report of each configured customer
/// once: at start, and not again after a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monthly_report_is_made_once_by_serve() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mut c = Collector::start_with_config(
        dir.path(),
        "[reports]\nschedule = \"monthly\"\ncustomers = [\"acme\", \"globex\"]\n",
    )
    .await;
    let scheduled = |v: &Value| -> Vec<(String, String)> {
        v["reports"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                (
                    r["customer"].as_str().unwrap_or("").to_string(),
                    r["trigger"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect()
    };
    let want = vec![
        ("globex".to_string(), "schedule".to_string()),
        ("acme".to_string(), "schedule".to_string()),
    ];
    crate::util::eventually("the scheduled reports", Duration::from_secs(20), || async {
        (scheduled(&c.api("/api/v1/reports/inspection").await) == want).then_some(())
    })
    .await;
    let v = c.api("/api/v1/reports/inspection?customer=acme").await;
    let from = v["reports"][0]["from_ms"].as_i64().unwrap_or(0);
    let to = v["reports"][0]["to_ms"].as_i64().unwrap_or(0);
    let now = caretaker_shared::now_ms();
    assert!(
        to <= now && now - to < 32 * 86_400_000 && to - from >= 28 * 86_400_000,
        "{v}"
    );
    c.stop();
    c.spawn().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        scheduled(&c.api("/api/v1/reports/inspection").await),
        want,
        "made again after a restart"
    );
}
