//! The web pages in a real browser: a real agent's failing disk opens a case
//! on the collector; an engineer logs in with headless Chromium (driven over
//! WebDriver by `chromedriver`), finds the case in the queue, reads the disk
//! in words on the case's page, acknowledges it (taking it from the engineer
//! who had it), resolves it with the replaced disk filled in by the page,
//! and finds the new disk on the asset's page; the agent, still reporting
//! the old disk failing, opens nothing again. Screenshots of the case page
//! go to `target/test-artefacts/case-page/`. On the way, the queue at a phone's
//! width (390 px) must not scroll sideways and must keep "Log out" in
//! sight; screenshots go to `target/test-artefacts/`.
//!
//! A customer's user reports a fault on its asset through the portal and
//! comments; the engineer comments internally and publicly and resolves it;
//! the customer sees the public comment, never the internal one, and answers
//! the satisfaction survey. Each page the customer sees is saved as a
//! screenshot under `target/test-artefacts/customer-portal/`.
//!
//! Needs `CARETAKER_TEST_CHROMEDRIVER` and `CARETAKER_TEST_CHROMIUM` (`.ci/run`
//! and `scripts/test.sh` set them): unset, the test is skipped with a note;
//! set, a browser that cannot start fails it.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::disk_health::{show, smart_config, stand_in};
use crate::util::{Agent, Collector, artefact, eventually, free_port, wait_for_host};

pub(crate) const PASSWORD: &str = "correct horse battery";

/// `chromedriver`, killed when dropped.
pub(crate) struct Driver {
    child: Child,
    pub(crate) port: u16,
}

impl Driver {
    pub(crate) fn start(binary: &str, dir: &Path) -> Driver {
        let port = free_port();
        let log = std::fs::File::create(dir.join("chromedriver.log")).unwrap_or_else(|e| panic!("log: {e}"));
        let child = Command::new(binary)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("{binary} does not start: {e}"));
        Driver { child, port }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn contracts(phc: &str) -> String {
    format!(
        r#"
[[customer]]
name = "acme"
sites = ["hq"]

[[contract]]
name = "acme-gold"
customer = "acme"
covers = {{ labels = {{ customer = "acme" }} }}
hours = "7x24"
time_zone = "UTC"
response = {{ critical = "1h" }}
resolution = {{ critical = "8h" }}

[[engineer]]
name = "ana"
skills = ["hardware", "os", "database", "network"]
sites = ["hq"]
level = "L1"

[[user]]
name = "ana"
role = "engineer"
password = "{phc}"
"#
    )
}

/// chromedriver's and Chromium's paths from `CARETAKER_TEST_CHROMEDRIVER`
/// and `CARETAKER_TEST_CHROMIUM`; `None` (and a note that `what` is
/// skipped) when either is unset.
pub(crate) fn browser_tools(what: &str) -> Option<(String, String)> {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    match (env("CARETAKER_TEST_CHROMEDRIVER"), env("CARETAKER_TEST_CHROMIUM")) {
        (Some(driver), Some(chromium)) => Some((driver, chromium)),
        _ => {
            eprintln!("CARETAKER_TEST_CHROMEDRIVER or CARETAKER_TEST_CHROMIUM is not set: skipping {what}");
            None
        }
    }
}

/// A collector serving the contracts `contracts(phc)` (users' password
/// [`PASSWORD`]) as `[queue] contracts_file`, with `more` config after it.
pub(crate) async fn collector_with_contracts(dir: &Path, contracts: fn(&str) -> String, more: &str) -> Collector {
    let phc = caretaker_collector::auth::hash_password(PASSWORD).unwrap_or_else(|e| panic!("{e}"));
    let file = dir.join("contracts.toml");
    std::fs::write(&file, contracts(&phc)).unwrap_or_else(|e| panic!("{e}"));
    let config = format!("[queue]\ncontracts_file = \"{}\"\n{more}", file.display());
    Collector::start_with_config(dir, &config).await
}

/// The browser session through chromedriver, with Chromium's binary and
/// flags (headless; the collector's own CA is not known to it).
pub(crate) async fn browser(driver: &Driver, chromium: &str, profile: &Path) -> Client {
    browser_with(driver, chromium, profile, &[]).await
}

/// [`browser`] with more Chromium flags (`--force-dark-mode`...).
pub(crate) async fn browser_with(driver: &Driver, chromium: &str, profile: &Path, extra: &[&str]) -> Client {
    let mut args: Vec<String> = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--ignore-certificate-errors",
        "--window-size=1280,1400",
    ]
    .iter()
    .chain(extra)
    .map(|a| a.to_string())
    .collect();
    args.push(format!("--user-data-dir={}", profile.display()));
    let mut caps = serde_json::Map::new();
    caps.insert("goog:chromeOptions".into(), json!({ "binary": chromium, "args": args }));
    // chromedriver speaks plain HTTP on loopback: no TLS stack needed.
    let url = format!("http://127.0.0.1:{}", driver.port);
    eventually(&format!("chromedriver on {url}"), Duration::from_secs(20), || async {
        tokio::net::TcpStream::connect(("127.0.0.1", driver.port))
            .await
            .ok()
            .map(|_| ())
    })
    .await;
    let mut builder = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
    builder
        .capabilities(caps)
        .connect(&url)
        .await
        .unwrap_or_else(|e| panic!("no browser session through chromedriver on {url}: {e}"))
}

/// Waits until the page's source contains `want`, and answers it.
pub(crate) async fn page_with(c: &Client, want: &str) -> String {
    let mut source = String::new();
    for _ in 0..100 {
        source = c.source().await.unwrap_or_else(|e| panic!("page source: {e}"));
        if source.contains(want) {
            return source;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the page never showed {want:?}: {source}");
}

pub(crate) async fn fill(c: &Client, css: &str, text: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .send_keys(text)
        .await
        .unwrap_or_else(|e| panic!("typing into {css}: {e}"));
}

pub(crate) async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("clicking {css}: {e}"));
}

/// The queue on a phone (390 px wide): the page itself does not scroll
/// sideways (a wide table scrolls in its own box) and "Log out" is in
/// sight. Screenshots of it, narrow and wide, go to the test artefacts.
async fn on_a_phone(c: &Client) {
    let shot = |name: &'static str| screenshot(c, "queue", name);
    c.set_window_size(1280, 900)
        .await
        .unwrap_or_else(|e| panic!("window size: {e}"));
    shot("queue-1280").await;
    c.set_window_size(390, 844)
        .await
        .unwrap_or_else(|e| panic!("window size: {e}"));
    c.refresh().await.unwrap_or_else(|e| panic!("reload: {e}"));
    page_with(c, "Logged in as").await;
    let v = c
        .execute(
            r#"const out = document.querySelector("header form[action='/logout'] button").getBoundingClientRect();
return {viewport: window.innerWidth, page: document.documentElement.scrollWidth,
  logout: {left: out.left, right: out.right, top: out.top, width: out.width, height: out.height},
  table: document.querySelector('#queue') ? document.querySelector('#queue').scrollWidth : 0};"#,
            vec![],
        )
        .await
        .unwrap_or_else(|e| panic!("measuring the page: {e}"));
    shot("queue-390").await;
    let viewport = v["viewport"].as_f64().unwrap_or_default();
    assert!(
        viewport <= 390.0 && viewport > 300.0,
        "the window is not phone-sized: {v}"
    );
    let page = v["page"].as_f64().unwrap_or(f64::MAX);
    assert!(page <= 390.0, "the page scrolls sideways at 390 px: {v}");
    let logout = &v["logout"];
    let right = logout["right"].as_f64().unwrap_or(f64::MAX);
    assert!(
        logout["width"].as_f64().unwrap_or_default() > 0.0
            && logout["left"].as_f64().unwrap_or(-1.0) >= 0.0
            && right <= viewport,
        "\"Log out\" is not in sight: {v}"
    );
    let button = c
        .find(Locator::Css("header form[action='/logout'] button"))
        .await
        .unwrap_or_else(|e| panic!("Log out: {e}"));
    assert!(button.is_displayed().await.unwrap_or(false), "\"Log out\" is hidden");
    assert_eq!(button.text().await.unwrap_or_default(), "Log out");
    c.set_window_size(1280, 900)
        .await
        .unwrap_or_else(|e| panic!("window size: {e}"));
}

/// The contracts of [`contracts`] with a second engineer, `bo`.
fn contracts_with_bo(phc: &str) -> String {
    format!(
        r#"{}
[[engineer]]
name = "bo"
skills = ["hardware"]
sites = ["hq"]
level = "L1"
"#,
        contracts(phc)
    )
}

/// The value a form field was given by the page (its `value` attribute).
async fn field_value(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .attr("value")
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_engineer_resolves_a_failing_disk_in_the_browser() {
    let Some((chromedriver, chromium)) = browser_tools("the browser test") else {
        return;
    };
    let started = std::time::Instant::now();
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let collector = collector_with_contracts(dir.path(), contracts_with_bo, "").await;

    // The agent's smartctl shows a failing disk: the built-in `disk_failing`
    // rule opens a case. The agent keeps reporting it throughout.
    let smart = dir.path().join("smart");
    let script = stand_in(&smart);
    let failing = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/smartctl/ata/hitachi-hds721050dle630-usbjmicron-reallocated-failing.json"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let failing: Value = serde_json::from_str(&failing).unwrap_or_else(|e| panic!("{e}"));
    let old_serial = failing["serial_number"].as_str().unwrap_or_default().to_string();
    let old_model = failing["model_name"].as_str().unwrap_or_default().to_string();
    show(&smart, &failing);
    let agent = Agent::start(dir.path(), &collector, 1, &smart_config(&script));
    let agent_id = wait_for_host(&collector, &agent).await;
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
    let log = || std::fs::read_to_string(dir.path().join("collector.log")).unwrap_or_default();
    let v = collector.api(&format!("/api/v1/cases/{id}")).await;
    assert_eq!(
        v["queue"]["meta"]["contract"],
        "acme-gold",
        "{v}\ncollector log:\n{}",
        log()
    );
    // The rule's summary is the case's title, not its check and key.
    let title = v["queue"]["meta"]["title"].as_str().unwrap_or_default().to_string();
    assert!(
        title.starts_with("Disk ") && title.ends_with(" on e2e-host is failing"),
        "{v}"
    );
    // The case is bo's until ana takes it.
    let (status, answer) = collector
        .api_post(
            &format!("/api/v1/cases/{id}/actions"),
            &json!({"action": "assign", "to": "bo"}),
        )
        .await;
    assert!(status.is_success(), "{status}: {answer}");

    let driver = Driver::start(&chromedriver, dir.path());
    let c = browser(&driver, &chromium, &dir.path().join("chromium-profile")).await;
    let base = collector.url();

    // Not logged in: the queue sends to the login page, which comes back.
    c.goto(&format!("{base}/queue")).await.unwrap_or_else(|e| panic!("{e}"));
    page_with(&c, "name=\"password\"").await;
    fill(&c, "#user", "ana").await;
    fill(&c, "#password", PASSWORD).await;
    click(&c, "form[action='/login'] button[type=submit]").await;
    let queue = page_with(&c, "Logged in as").await;
    let link = format!("href=\"/cases/{id}\"");
    assert!(queue.contains(&link), "the case is not on the queue: {queue}");
    assert!(queue.contains("acme-gold"), "{queue}");
    assert!(queue.contains(&title), "the queue shows the rule's summary: {queue}");
    on_a_phone(&c).await;

    // The case: the summary first, the disk in words, the raw evidence folded.
    click(&c, &format!("#queue a[href='/cases/{id}']")).await;
    let page = page_with(&c, &format!("Case #{id}: {title}")).await;
    assert!(page.contains("<dd id=\"assignee\">bo</dd>"), "{page}");
    let words = format!("{old_model} serial {old_serial}: ");
    assert!(page.contains(&words), "the disk in words ({words}): {page}");
    assert!(page.contains("verdict failing"), "{page}");
    assert!(page.contains("<summary>Details</summary>"), "{page}");
    screenshot(&c, "case-page", "01-disk-case").await;
    c.set_window_size(390, 844)
        .await
        .unwrap_or_else(|e| panic!("window size: {e}"));
    screenshot(&c, "case-page", "02-disk-case-390").await;
    c.set_window_size(1280, 1400)
        .await
        .unwrap_or_else(|e| panic!("window size: {e}"));

    // Acknowledging takes the case: ana is its assignee.
    click(&c, "#acknowledge-form button[type=submit]").await;
    let page = page_with(&c, "<dd id=\"status\">in_progress</dd>").await;
    assert!(page.contains("<dd id=\"assignee\">ana</dd>"), "{page}");
    assert!(!page.contains("id=\"acknowledge-form\""), "{page}");

    // Resolve names the disk: type, slot, model and serial are filled in,
    // the new disk is left to type.
    for (field, want) in [
        ("part_type", "disk"),
        ("slot", "/dev/sda"),
        ("old_model", old_model.as_str()),
        ("old_serial", old_serial.as_str()),
        ("new_model", ""),
        ("new_serial", ""),
    ] {
        let got = field_value(&c, &format!("#resolve-form [name={field}]")).await;
        assert_eq!(got, want, "{field} is not filled in with the case's disk");
    }
    c.find(Locator::Css("#resolve-form select[name=mode]"))
        .await
        .unwrap_or_else(|e| panic!("mode: {e}"))
        .select_by_value("on_site")
        .await
        .unwrap_or_else(|e| panic!("mode: {e}"));
    for (field, text) in [
        ("symptom", "disk /dev/sda failing SMART"),
        ("work_done", "replaced the disk, rebuilt the array"),
        ("minutes", "55"),
        ("new_model", "WDC WD40EFRX"),
        ("new_serial", "WD-NEW-4711"),
    ] {
        fill(&c, &format!("#resolve-form [name={field}]"), text).await;
    }
    screenshot(&c, "case-page", "03-resolve-filled-in").await;
    click(&c, "#resolve-form button[type=submit]").await;
    page_with(&c, "<dd id=\"status\">resolved</dd>").await;
    screenshot(&c, "case-page", "04-resolved").await;

    c.goto(&format!("{base}/assets/e2e-host"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let asset = page_with(&c, "WD-NEW-4711").await;
    assert!(
        asset.contains(&format!(
            "disk /dev/sda {old_model} {old_serial} → WDC WD40EFRX WD-NEW-4711"
        )),
        "{asset}"
    );
    screenshot(&c, "case-page", "05-asset-part-replaced").await;
    let _ = c.close().await;

    let v = collector.api(&format!("/api/v1/cases/{id}")).await;
    assert_eq!(v["status"], "resolved", "{v}");
    assert_eq!(v["queue"]["meta"]["assignee"], "ana", "{v}");
    let report = &v["queue"]["service_reports"][0];
    assert_eq!(report["engineer"], "ana", "{v}");
    assert_eq!(report["minutes"], 55, "{v}");
    assert_eq!(report["parts"][0]["old_serial"], old_serial.as_str(), "{v}");
    assert_eq!(report["parts"][0]["old_model"], old_model.as_str(), "{v}");
    assert_eq!(report["parts"][0]["new_serial"], "WD-NEW-4711", "{v}");
    // The agent still reports the old disk failing (its smartctl has not
    // changed): the replaced disk opens nothing again.
    let seq = collector.host(&agent_id).await["last_seq"].as_u64().unwrap_or_default();
    eventually("three more reports", Duration::from_secs(30), || async {
        let now = collector.host(&agent_id).await["last_seq"].as_u64().unwrap_or_default();
        (now >= seq + 3).then_some(())
    })
    .await;
    let v = collector.api(&format!("/api/v1/cases/{id}")).await;
    assert_eq!(v["status"], "resolved", "{v}");
    let v = collector.api("/api/v1/cases?host=e2e-host").await;
    let active = v["cases"]
        .as_array()
        .map(|cs| {
            cs.iter()
                .filter(|c| c["rule"] == "disk_failing" && c["active"] == true)
                .count()
        })
        .unwrap_or_default();
    assert_eq!(active, 0, "{v}");
    drop(agent);
    eprintln!("browser test took {:?}", started.elapsed());
}

/// The contracts of [`contracts`] with `carol`, a user of customer acme.
fn contracts_with_customer(phc: &str) -> String {
    format!(
        r#"{}
[[user]]
name = "carol"
role = "customer"
customer = "acme"
password = "{phc}"
"#,
        contracts(phc)
    )
}

/// Saves what the browser shows as `<name>.png` in the test artefacts of
/// `test` ([`artefact`]).
pub(crate) async fn screenshot(c: &Client, test: &str, name: &str) {
    let png = c
        .screenshot()
        .await
        .unwrap_or_else(|e| panic!("screenshot {name}: {e}"));
    let path = artefact(test, &format!("{name}.png"));
    std::fs::write(&path, png).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

/// Logs `user` in through the login form; answers the page it lands on.
pub(crate) async fn log_in(c: &Client, base: &str, user: &str, password: &str) -> String {
    c.goto(&format!("{base}/login")).await.unwrap_or_else(|e| panic!("{e}"));
    page_with(c, "name=\"password\"").await;
    fill(c, "#user", user).await;
    fill(c, "#password", password).await;
    click(c, "form[action='/login'] button[type=submit]").await;
    page_with(c, &format!("Logged in as <strong>{user}</strong>")).await
}

/// Logs out through the header's form, back at the login page.
pub(crate) async fn log_out(c: &Client) {
    click(c, "form[action='/logout'] button[type=submit]").await;
    page_with(c, "name=\"password\"").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_reports_follows_and_rates_a_case_in_the_portal() {
    let Some((chromedriver, chromium)) = browser_tools("the browser test") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let collector = collector_with_contracts(dir.path(), contracts_with_customer, "").await;
    // A real agent, reporting throughout, makes `e2e-host` an asset of acme.
    let agent = Agent::start(dir.path(), &collector, 1, "");
    wait_for_host(&collector, &agent).await;
    let base = collector.url();
    let driver = Driver::start(&chromedriver, dir.path());
    let c = browser(&driver, &chromium, &dir.path().join("chromium-profile")).await;

    // The customer lands on its portal and reports a fault on its asset.
    log_in(&c, &base, "carol", PASSWORD).await;
    page_with(&c, "Your cases and assets").await;
    page_with(&c, "href=\"/assets/e2e-host\"").await;
    page_with(&c, "Inspection reports").await;
    screenshot(&c, "customer-portal", "01-portal").await;
    click(&c, "header a[href='/faults/new']").await;
    page_with(&c, "<option value=\"e2e-host\"").await;
    fill(&c, "#title", "Mail server does not answer").await;
    fill(&c, "#description", "Nobody receives mail since 9:00.").await;
    screenshot(&c, "customer-portal", "02-report-a-fault").await;
    click(&c, "form[action='/faults'] button[type=submit]").await;
    let case = page_with(&c, "Case #").await;
    let id: i64 = case
        .split("Case #")
        .nth(1)
        .and_then(|rest| rest.split(':').next())
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no case id: {case}"));
    fill(&c, "#comment-text", "It is our only mail server.").await;
    click(&c, "#comment-form button[type=submit]").await;
    page_with(&c, "It is our only mail server.").await;
    screenshot(&c, "customer-portal", "03-case-with-my-comment").await;
    log_out(&c).await;

    // The engineer: an internal comment (the default), a public one, resolved.
    log_in(&c, &base, "ana", PASSWORD).await;
    c.goto(&format!("{base}/cases/{id}"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    page_with(&c, &format!("Case #{id}:")).await;
    click(&c, "#acknowledge-form button[type=submit]").await;
    page_with(&c, "<dd id=\"status\">in_progress</dd>").await;
    fill(
        &c,
        "#comment-form textarea[name=comment]",
        "INTERNAL: the RAID controller is flaky again",
    )
    .await;
    click(&c, "#comment-form button[type=submit]").await;
    page_with(&c, "INTERNAL: the RAID controller is flaky again").await;
    fill(
        &c,
        "#comment-form textarea[name=comment]",
        "We restarted the mail service; watching it.",
    )
    .await;
    click(&c, "#comment-form input[name=visibility][value=public]").await;
    click(&c, "#comment-form button[type=submit]").await;
    page_with(&c, "We restarted the mail service; watching it.").await;
    for (field, text) in [
        ("symptom", "mail service hung"),
        ("work_done", "restarted postfix, cleared the queue"),
        ("minutes", "25"),
    ] {
        fill(&c, &format!("#resolve-form [name={field}]"), text).await;
    }
    c.find(Locator::Css("#resolve-form select[name=mode]"))
        .await
        .unwrap_or_else(|e| panic!("mode: {e}"))
        .select_by_value("remote")
        .await
        .unwrap_or_else(|e| panic!("mode: {e}"));
    click(&c, "#resolve-form button[type=submit]").await;
    page_with(&c, "<dd id=\"status\">resolved</dd>").await;
    log_out(&c).await;

    // The customer: the public comment and never the internal one; the survey.
    // (Each wait names what the page must show: a page still loading after
    // the login's redirects may show its header before the rest.)
    log_in(&c, &base, "carol", PASSWORD).await;
    page_with(&c, "No open cases.").await;
    page_with(&c, "Mail server does not answer</a>").await;
    screenshot(&c, "customer-portal", "04-portal-case-resolved").await;
    click(&c, &format!("#to-rate a[href='/cases/{id}']")).await;
    page_with(&c, "How satisfied are you").await;
    page_with(&c, "We restarted the mail service; watching it.").await;
    // The page's last part: everything before it is there.
    let page = page_with(&c, "restarted postfix, cleared the queue").await;
    assert!(page.contains("<dd id=\"status\">resolved</dd>"), "{page}");
    for secret in ["RAID controller", "acme-gold", "rule:", "Assignee", "Level"] {
        assert!(!page.contains(secret), "the customer sees {secret:?}: {page}");
    }
    screenshot(&c, "customer-portal", "05-resolved-case-with-survey").await;
    click(&c, "#score-5").await;
    fill(&c, "#survey-comment", "Quick and clear, thank you.").await;
    click(&c, "#survey-form button[type=submit]").await;
    page_with(&c, "<dd id=\"status\">closed</dd>").await;
    let page = page_with(&c, "5/5: Quick and clear, thank you.").await;
    assert!(!page.contains("survey-form"), "{page}");
    assert!(!page.contains("RAID controller"), "{page}");
    screenshot(&c, "customer-portal", "06-survey-answered").await;
    c.goto(&format!("{base}/portal"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    page_with(&c, "Inspection reports").await;
    screenshot(&c, "customer-portal", "07-portal-afterwards").await;
    let _ = c.close().await;

    let v = collector.api(&format!("/api/v1/cases/{id}")).await;
    assert_eq!(v["status"], "closed", "{v}");
    assert_eq!(v["queue"]["satisfaction"]["score"], 5, "{v}");
    assert_eq!(v["queue"]["satisfaction"]["recorded_by"], "customer:carol", "{v}");
    let log = v["log"].as_array().cloned().unwrap_or_default();
    let visibility = |text: &str| {
        log.iter()
            .find(|e| e["comment"].as_str().is_some_and(|c| c.contains(text)))
            .map(|e| e["visibility"].clone())
    };
    assert_eq!(visibility("RAID controller"), Some(json!("internal")), "{v}");
    assert_eq!(visibility("We restarted"), Some(json!("public")), "{v}");
    assert_eq!(visibility("only mail server"), Some(json!("public")), "{v}");
}

/// The forger's page: on load a `fetch` posts a critical fault to the
/// collector's API with the user's cookie (`no-cors`, `text/plain`: no
/// preflight), then its title says so; its form posts another one as
/// `text/plain` (the body is a JSON text: the field's name and value).
fn forger_page(collector: &str) -> String {
    let api = format!("{collector}/api/v1/cases");
    format!(
        r#"<!DOCTYPE html><html><head><title>forger</title></head><body>
<form id="forged" method="post" action="{api}" enctype="text/plain">
<input type="hidden" name='{{"asset":"e2e-host","title":"forged by a form","severity":"critical","description":"' value='"}}'>
<button type="submit">win a prize</button>
</form>
<script>
fetch("{api}", {{method: "POST", mode: "no-cors", credentials: "include",
  headers: {{"Content-Type": "text/plain"}},
  body: JSON.stringify({{asset: "e2e-host", title: "forged by fetch", severity: "critical"}})}})
  .then(() => {{ document.title = "sent"; }}, () => {{ document.title = "sent"; }});
</script></body></html>"#
    )
}

/// Serves `page` at `/` over HTTPS on another loopback port (the
/// collector's own certificate: Chromium ignores certificate errors here),
/// so it is another origin but the same site as the collector, and the
/// browser sends the collector's `SameSite=Strict` cookie along.
async fn serve_forger(collector: &Collector, page: String) -> (String, axum_server::Handle) {
    caretaker_collector::serve::install_crypto_provider();
    let data = collector.data_dir();
    let tls = axum_server::tls_rustls::RustlsConfig::from_pem_file(data.join("server.pem"), data.join("server.key"))
        .await
        .unwrap_or_else(|e| panic!("forger TLS: {e}"));
    let app = axum::Router::new().route(
        "/",
        axum::routing::get(move || {
            let page = page.clone();
            async move { axum::response::Html(page) }
        }),
    );
    let port = free_port();
    let handle = axum_server::Handle::new();
    let server =
        axum_server::bind_rustls(std::net::SocketAddr::from(([127, 0, 0, 1], port)), tls).handle(handle.clone());
    tokio::spawn(async move {
        let _ = server.serve(app.into_make_service()).await;
    });
    (format!("https://127.0.0.1:{port}"), handle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_on_another_origin_cannot_post_to_the_api_with_the_login_cookie() {
    let Some((chromedriver, chromium)) = browser_tools("the browser test") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let collector = collector_with_contracts(dir.path(), contracts, "").await;
    // A real agent makes `e2e-host` a known asset faults can be filed on.
    let mut agent = Agent::start(dir.path(), &collector, 1, "");
    wait_for_host(&collector, &agent).await;
    agent.stop();
    let base = collector.url();
    let (forger, forger_server) = serve_forger(&collector, forger_page(&base)).await;

    let driver = Driver::start(&chromedriver, dir.path());
    let c = browser(&driver, &chromium, &dir.path().join("chromium-profile")).await;
    c.goto(&format!("{base}/login")).await.unwrap_or_else(|e| panic!("{e}"));
    page_with(&c, "name=\"password\"").await;
    fill(&c, "#user", "ana").await;
    fill(&c, "#password", PASSWORD).await;
    click(&c, "form[action='/login'] button[type=submit]").await;
    page_with(&c, "Logged in as").await;

    // The forger's page, logged in: its fetch, then its form.
    c.goto(&format!("{forger}/")).await.unwrap_or_else(|e| panic!("{e}"));
    page_with(&c, "<title>sent</title>").await;
    click(&c, "#forged button[type=submit]").await;
    // The browser shows the collector's answer to the form.
    let answer = page_with(&c, "forbidden").await;
    assert!(answer.contains("X-CSRF-Token"), "{answer}");

    let cases = collector.api("/api/v1/cases?host=e2e-host").await;
    let text = cases.to_string();
    assert!(!text.contains("forged"), "a forged request filed a case: {text}");

    // The collector's own pages still work: the fault form...
    c.goto(&format!("{base}/faults/new?asset=e2e-host"))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    page_with(&c, "name=\"title\"").await;
    fill(&c, "#title", "reported on the fault page").await;
    click(&c, "form[action='/faults'] button[type=submit]").await;
    page_with(&c, "Case #").await;
    // ... and a JSON fetch from the collector's own origin.
    let status = c
        .execute_async(
            r#"const done = arguments[arguments.length - 1];
fetch("/api/v1/cases", {method: "POST", headers: {"Content-Type": "application/json"},
  body: JSON.stringify({asset: "e2e-host", title: "reported by the own page", severity: "major"})})
  .then(r => done(r.status), e => done(String(e)));"#,
            vec![],
        )
        .await
        .unwrap_or_else(|e| panic!("fetch from the own page: {e}"));
    assert_eq!(status, json!(201));
    let _ = c.close().await;
    forger_server.shutdown();

    let text = collector.api("/api/v1/cases?host=e2e-host").await.to_string();
    for title in ["reported on the fault page", "reported by the own page"] {
        assert!(text.contains(title), "{title} missing: {text}");
    }
    assert!(!text.contains("forged"), "{text}");
}
