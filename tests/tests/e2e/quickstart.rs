//! The newcomer's path: `scripts/quickstart.sh` as the README gives it
//! (with the debug binaries, its own state folder and port), then the web
//! address and the two logins it prints, used in a real browser: the
//! engineer lands on the queue and finds this host's agent, up, on the
//! hosts page; the customer's admin sees it too. A
//! second start keeps the logins and prints no password again.
//!
//! Needs `CARETAKER_TEST_CHROMEDRIVER` and `CARETAKER_TEST_CHROMIUM`, as the
//! other browser tests, and `curl` (the script waits for the collector with it).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::Client;

use crate::browser::{Driver, browser, browser_tools, click, fill, log_in, log_out, page_with, screenshot};
use crate::util::{bin, free_port};

/// The running quickstart; stopped as Ctrl-C would (SIGINT to the script,
/// whose trap stops the collector and the agent) when dropped.
struct Quickstart {
    child: Child,
    /// What it printed, up to "Ctrl-C stops both."
    out: String,
}

impl Quickstart {
    fn start(home: &Path, listen: &str) -> Quickstart {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let bin_dir = bin("caretaker-collector")
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        bin("caretaker-agent");
        let log = std::fs::File::create(home.with_extension("stderr")).unwrap_or_else(|e| panic!("{e}"));
        let mut child = Command::new("bash")
            .arg(root.join("scripts/quickstart.sh"))
            .env("CARETAKER_BIN", &bin_dir)
            .env("CARETAKER_HOME", home)
            .env("CARETAKER_LISTEN", listen)
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("scripts/quickstart.sh does not start: {e}"));
        let stdout = child.stdout.take().unwrap_or_else(|| panic!("no stdout"));
        // Read on a thread: a script that hangs must fail the test, not stall it.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut out = String::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                out.push_str(&line);
                out.push('\n');
                if line.starts_with("Ctrl-C stops both.") {
                    break;
                }
            }
            let _ = tx.send(out);
        });
        let out = rx
            .recv_timeout(Duration::from_secs(120))
            .unwrap_or_else(|e| panic!("the quickstart printed no summary within 120 s: {e}"));
        assert!(
            out.contains("Ctrl-C stops both."),
            "the quickstart stopped early: {out}"
        );
        Quickstart { child, out }
    }

    /// The value after `prefix` on the line holding it, up to `end` (or the
    /// line's end).
    fn after(&self, prefix: &str, end: &str) -> Option<String> {
        let line = self.out.lines().find(|l| l.contains(prefix))?;
        let rest = line[line.find(prefix)? + prefix.len()..].trim_start();
        Some(rest.split(end).next().unwrap_or(rest).trim().to_string())
    }

    fn stop(&mut self) {
        let _ = Command::new("kill")
            .arg("-INT")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
    }
}

impl Drop for Quickstart {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The hosts page once it lists a host that is up (reloaded until then).
async fn up_on_hosts_page(c: &Client, base: &str) -> String {
    let mut source = String::new();
    for _ in 0..60 {
        c.goto(&format!("{base}/hosts")).await.unwrap_or_else(|e| panic!("{e}"));
        source = c.source().await.unwrap_or_else(|e| panic!("page source: {e}"));
        if source.contains("class=\"state-up\">up</td>") {
            return source;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("the agent's host never showed up on /hosts: {source}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quickstart_prints_a_web_address_and_two_logins_that_work_in_a_browser() {
    let Some((chromedriver, chromium)) = browser_tools("the quickstart test") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let home = dir.path().join("caretaker");
    let listen = format!("127.0.0.1:{}", free_port());
    let mut qs = Quickstart::start(&home, &listen);
    let base = qs
        .after("web pages:", " ")
        .unwrap_or_else(|| panic!("no web address printed: {}", qs.out));
    assert_eq!(base, format!("https://{listen}/"), "{}", qs.out);
    let base = base.trim_end_matches('/').to_string();
    let engineer_pw = qs
        .after("user engineer, password ", " ")
        .unwrap_or_else(|| panic!("no engineer login printed: {}", qs.out));
    let customer_pw = qs
        .after("user demo-admin, password ", " ")
        .unwrap_or_else(|| panic!("no customer login printed: {}", qs.out));
    assert!(qs.out.contains("ca.pem"), "the CA is not explained: {}", qs.out);
    // Printed once, kept hashed.
    let contracts = std::fs::read_to_string(home.join("contracts.toml")).unwrap_or_else(|e| panic!("{e}"));
    assert!(!contracts.contains(&engineer_pw) && !contracts.contains(&customer_pw));
    assert!(contracts.contains("$argon2id$"), "{contracts}");

    let driver = Driver::start(&chromedriver, dir.path());
    let c = browser(&driver, &chromium, &dir.path().join("chromium-profile")).await;
    c.set_window_size(1280, 900).await.unwrap_or_else(|e| panic!("{e}"));
    c.goto(&format!("{base}/")).await.unwrap_or_else(|e| panic!("{e}"));
    let login = page_with(&c, "name=\"password\"").await;
    assert!(!login.contains("no users are configured"), "{login}");
    screenshot(&c, "quickstart", "login").await;

    let queue = log_in(&c, &base, "engineer", &engineer_pw).await;
    assert!(queue.contains("<strong>engineer</strong> (engineer)"), "{queue}");
    assert!(queue.contains("<h1>Queue</h1>"), "{queue}");
    screenshot(&c, "quickstart", "engineer-queue").await;
    // The agent on this host reports at its start: the host is listed, up.
    let hosts = up_on_hosts_page(&c, &base).await;
    assert!(hosts.contains("<td>demo</td><td>local</td>"), "{hosts}");
    screenshot(&c, "quickstart", "engineer-hosts").await;
    log_out(&c).await;

    let own = log_in(&c, &base, "demo-admin", &customer_pw).await;
    assert!(own.contains("<strong>demo-admin</strong> (customer), demo"), "{own}");
    screenshot(&c, "quickstart", "customer-home").await;
    up_on_hosts_page(&c, &base).await;
    log_out(&c).await;

    // A wrong password is refused.
    c.goto(&format!("{base}/login")).await.unwrap_or_else(|e| panic!("{e}"));
    fill(&c, "#user", "engineer").await;
    fill(&c, "#password", "not the password").await;
    click(&c, "form[action='/login'] button[type=submit]").await;
    page_with(&c, "unknown user or wrong password").await;

    // The second start keeps the state and the logins, and shows no password.
    qs.stop();
    let qs2 = Quickstart::start(&home, &listen);
    assert!(
        !qs2.out.contains(&engineer_pw) && !qs2.out.contains(&customer_pw),
        "{}",
        qs2.out
    );
    assert!(
        qs2.out.contains("passwords were shown at the first start"),
        "{}",
        qs2.out
    );
    let again = log_in(&c, &base, "engineer", &engineer_pw).await;
    assert!(again.contains("<strong>engineer</strong> (engineer)"), "{again}");
    let _ = c.close().await;
}
