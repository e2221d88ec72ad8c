//! Spawning the real binaries: a collector in a temporary data directory on a
//! free loopback port, and agents enrolled to it.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Numbers the test databases of this process.
static NEXT_DB: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// Whether the collectors of these tests keep their store on PostgreSQL
/// (`CARETAKER_TEST_STORE=postgresql`, on the server `CARETAKER_TEST_POSTGRES`
/// names), each in a database of its own.
pub fn store_on_postgres() -> bool {
    std::env::var("CARETAKER_TEST_STORE").is_ok_and(|s| s == "postgresql")
}

/// `toml` with `[store] url = "url"` added (in its `[store]` table if it has one).
pub fn with_store_url(toml: &str, url: &str) -> String {
    let line = format!("url = \"{url}\"");
    if toml.lines().any(|l| l.trim() == "[store]") {
        toml.lines()
            .map(|l| {
                if l.trim() == "[store]" {
                    format!("{l}\n{line}")
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
            + "\n"
    } else {
        format!("{toml}\n[store]\n{line}\n")
    }
}

/// `target/<profile>/<name>`, next to the test binary's `deps/` folder.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} not built: run `cargo build --workspace --bins` first (scripts/test.sh does)",
        p.display()
    );
    p
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// Polls `f` until it returns Some or the deadline passes.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub struct Collector {
    pub dir: PathBuf,
    pub port: u16,
    pub child: Option<Child>,
    pub enrollment_token: String,
    pub api_token: String,
    /// The bearer token `/metrics` needs (the data directory's `metrics-token`).
    pub metrics_token: String,
    pub client: reqwest::Client,
    /// A config file passed to `serve --config`, when set before [`Collector::spawn`].
    pub config: Option<PathBuf>,
    log: PathBuf,
    /// The test's own PostgreSQL database, when the store is there (dropped
    /// after the collector is killed).
    pub pg: Option<PgDb>,
}

impl Collector {
    /// `init` + `serve` in `dir`.
    pub async fn start(dir: &Path) -> Collector {
        if store_on_postgres() {
            return Collector::start_on(dir, "").await;
        }
        Collector::start_sqlite(dir).await
    }

    /// `init` + `serve` in `dir`, the store in the data directory's SQLite
    /// file whatever `CARETAKER_TEST_STORE` says.
    pub async fn start_sqlite(dir: &Path) -> Collector {
        let data = dir.join("data");
        let out = Command::new(bin("caretaker-collector"))
            .args(["init", "--data-dir"])
            .arg(&data)
            .output()
            .unwrap_or_else(|e| panic!("init: {e}"));
        assert!(
            out.status.success(),
            "init failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Collector::open(dir).await
    }

    /// `serve` on the data directory `dir/data` made earlier (no `init`):
    /// its tokens are read from the files `init` left there.
    pub async fn open(dir: &Path) -> Collector {
        Collector::open_with(dir, None).await
    }

    /// `init` and `serve` both with the config `toml` (whose `[store]` may
    /// name a PostgreSQL database: `init` puts the tokens there).
    pub async fn start_on(dir: &Path, toml: &str) -> Collector {
        let file = dir.join("collector.toml");
        // The store on PostgreSQL for every collector of the run, unless the
        // test names its own database.
        let pg = (store_on_postgres() && !toml.contains("url =")).then(|| {
            PgDb::create("t").unwrap_or_else(|| panic!("CARETAKER_TEST_STORE=postgresql needs CARETAKER_TEST_POSTGRES"))
        });
        let toml = match &pg {
            Some(db) => with_store_url(toml, &db.url()),
            None => toml.to_string(),
        };
        std::fs::write(&file, toml).unwrap_or_else(|e| panic!("config: {e}"));
        let out = Command::new(bin("caretaker-collector"))
            .args(["init", "--data-dir"])
            .arg(dir.join("data"))
            .arg("--config")
            .arg(&file)
            .output()
            .unwrap_or_else(|e| panic!("init: {e}"));
        assert!(
            out.status.success(),
            "init failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut c = Collector::open_with(dir, Some(file)).await;
        c.pg = pg;
        c
    }

    /// [`Collector::open`] serving with the config file `config`.
    pub async fn open_with(dir: &Path, config: Option<PathBuf>) -> Collector {
        let data = dir.join("data");
        let read = |f: &str| {
            std::fs::read_to_string(data.join(f))
                .unwrap_or_default()
                .trim()
                .to_string()
        };
        let client = caretaker_tests::client(&data.join("ca.pem")).unwrap_or_else(|e| panic!("client: {e}"));
        let mut c = Collector {
            dir: dir.to_path_buf(),
            port: free_port(),
            child: None,
            enrollment_token: read("enrollment-token"),
            api_token: read("api-token"),
            metrics_token: read("metrics-token"),
            client,
            config,
            log: dir.join("collector.log"),
            pg: None,
        };
        c.spawn().await;
        c
    }

    /// Like [`Collector::start`], serving with the config `toml`.
    pub async fn start_with_config(dir: &Path, toml: &str) -> Collector {
        if store_on_postgres() {
            return Collector::start_on(dir, toml).await;
        }
        let file = dir.join("collector.toml");
        std::fs::write(&file, toml).unwrap_or_else(|e| panic!("config: {e}"));
        // Start once without it to init, then restart with it: init needs no config.
        let mut c = Collector::start(dir).await;
        c.stop();
        c.config = Some(file);
        c.spawn().await;
        c
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// Starts `serve` (again) and waits until it answers.
    pub async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap_or_else(|e| panic!("log: {e}"));
        let mut cmd = Command::new(bin("caretaker-collector"));
        cmd.arg("serve");
        if let Some(c) = &self.config {
            cmd.arg("--config").arg(c);
        }
        let child = cmd
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(["--listen", &format!("127.0.0.1:{}", self.port)])
            .env("CARETAKER_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("serve: {e}"));
        self.child = Some(child);
        let url = format!("{}/healthz", self.url());
        let client = self.client.clone();
        let log = self.log.clone();
        eventually(
            &format!("collector on {url} (log {})", log.display()),
            Duration::from_secs(20),
            || {
                let client = client.clone();
                let url = url.clone();
                async move {
                    client
                        .get(&url)
                        .send()
                        .await
                        .ok()
                        .filter(|r| r.status().is_success())
                        .map(|_| ())
                }
            },
        )
        .await;
    }

    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM and wait for a clean exit.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
            let status = c.wait();
            assert!(
                status.as_ref().is_ok_and(|s| s.success()),
                "collector did not stop cleanly: {status:?}; log {}",
                self.log.display()
            );
        }
    }

    pub async fn api(&self, path: &str) -> Value {
        let resp = self
            .client
            .get(format!("{}{path}", self.url()))
            .bearer_auth(&self.api_token)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        assert!(resp.status().is_success(), "GET {path}: {}", resp.status());
        resp.json().await.unwrap_or(Value::Null)
    }

    /// POSTs JSON with the API token: the status and the JSON answer.
    pub async fn api_post(&self, path: &str, body: &Value) -> (reqwest::StatusCode, Value) {
        let resp = self
            .client
            .post(format!("{}{path}", self.url()))
            .bearer_auth(&self.api_token)
            .json(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    pub async fn metrics(&self) -> String {
        let resp = self
            .client
            .get(format!("{}/metrics", self.url()))
            .bearer_auth(&self.metrics_token)
            .send()
            .await;
        match resp {
            Ok(r) => {
                assert!(r.status().is_success(), "GET /metrics: {}", r.status());
                r.text().await.unwrap_or_default()
            }
            Err(e) => panic!("GET /metrics: {e}"),
        }
    }

    /// The value of one exposed sample line (exact name and label text).
    pub async fn metric_value(&self, series: &str) -> Option<f64> {
        let text = self.metrics().await;
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    /// Runs `caretaker-collector ARGS --data-dir DATA` (beside `serve`):
    /// whether it succeeded, its stdout and stderr.
    pub fn cli(&self, args: &[&str]) -> (bool, String, String) {
        let mut cmd = Command::new(bin("caretaker-collector"));
        cmd.args(args).arg("--data-dir").arg(self.data_dir());
        // The commands that work on the store find it through the config
        // `serve` runs with (PostgreSQL, when it names one).
        if let Some(config) = &self.config
            && matches!(args.first(), Some(&("tokens" | "agents" | "report" | "export-reports")))
        {
            cmd.arg("--config").arg(config);
        }
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("caretaker-collector {args:?}: {e}"));
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `tokens create --customer CUSTOMER EXTRA...`: the new token.
    pub fn create_token(&self, customer: &str, extra: &[&str]) -> String {
        self.create_token_with_id(customer, extra).0
    }

    /// Like [`Collector::create_token`]: the token and its id.
    pub fn create_token_with_id(&self, customer: &str, extra: &[&str]) -> (String, String) {
        let mut args = vec!["tokens", "create", "--customer", customer];
        args.extend_from_slice(extra);
        let (ok, out, err) = self.cli(&args);
        assert!(ok, "tokens create: {err}");
        let id = err
            .split("enrollment token ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no token id in {err:?}"));
        (out.trim().to_string(), id.to_string())
    }

    pub async fn host(&self, agent_id: &str) -> Value {
        self.api(&format!("/api/v1/hosts/{agent_id}")).await
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What an agent enrolls as (see [`Agent::start_as`]).
pub struct Who<'a> {
    pub token: &'a str,
    pub host: &'a str,
    pub customer: &'a str,
    pub site: &'a str,
}

pub struct Agent {
    pub state_dir: PathBuf,
    pub config: PathBuf,
    child: Option<Child>,
    pub log: PathBuf,
}

impl Agent {
    /// Writes a config enrolling with the collector's token and starts `run`.
    pub fn start(dir: &Path, collector: &Collector, interval_secs: u32, extra: &str) -> Agent {
        let who = Who {
            token: &collector.enrollment_token,
            host: "e2e-host",
            customer: "acme",
            site: "hq",
        };
        Agent::start_as(dir, collector, interval_secs, &who, extra)
    }

    /// Like [`Agent::start`], enrolling with `who.token` as host `who.host`
    /// of `who.customer` at `who.site`.
    pub fn start_as(dir: &Path, collector: &Collector, interval_secs: u32, who: &Who<'_>, extra: &str) -> Agent {
        let url = format!("collector_url = \"{}\"", collector.url());
        Agent::start_with(dir, collector, &url, interval_secs, who, extra)
    }

    /// Like [`Agent::start`], given the collector's replicas as `urls`
    /// (`collector_urls`), in this order.
    pub fn start_with_replicas(dir: &Path, collector: &Collector, urls: &[String], interval_secs: u32) -> Agent {
        let who = Who {
            token: &collector.enrollment_token,
            host: "e2e-host",
            customer: "acme",
            site: "hq",
        };
        let urls = format!("collector_urls = {urls:?}");
        Agent::start_with(dir, collector, &urls, interval_secs, &who, "")
    }

    /// Writes the config, whose first line (`collector_url` or
    /// `collector_urls`) is `urls`, and starts `run`.
    fn start_with(
        dir: &Path,
        collector: &Collector,
        urls: &str,
        interval_secs: u32,
        who: &Who<'_>,
        extra: &str,
    ) -> Agent {
        let text = format!(
            "{urls}\nca_file = \"{}\"\nenrollment_token = \"{}\"\ninterval_secs = {interval_secs}\nhost_name = \"{}\"\n{extra}\n[labels]\ncustomer = \"{}\"\nsite = \"{}\"\nrole = \"db\"\n[push]\nmin_backoff_ms = 100\nmax_backoff_secs = 1\n",
            collector.data_dir().join("ca.pem").display(),
            who.token,
            who.host,
            who.customer,
            who.site,
        );
        Agent::start_with_config(dir, &text)
    }

    /// Starts `run` with the agent config `text` (its state directory
    /// `dir/agent-state`, whatever `text` says of it).
    pub fn start_with_config(dir: &Path, text: &str) -> Agent {
        let state_dir = dir.join("agent-state");
        let config = dir.join("agent.toml");
        let text = format!("state_dir = \"{}\"\n{text}", state_dir.display());
        std::fs::write(&config, text).unwrap_or_else(|e| panic!("config: {e}"));
        let mut a = Agent {
            state_dir,
            config,
            child: None,
            log: dir.join("agent.log"),
        };
        a.spawn();
        a
    }

    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap_or_else(|e| panic!("log: {e}"));
        let child = Command::new(bin("caretaker-agent"))
            .args(["run", "--config"])
            .arg(&self.config)
            .env("CARETAKER_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("agent: {e}"));
        self.child = Some(child);
    }

    /// The agent's current credential secret, as saved in its state dir.
    pub fn secret(&self) -> Option<String> {
        let text = std::fs::read_to_string(self.state_dir.join("credential.json")).ok()?;
        let v: Value = serde_json::from_str(&text).ok()?;
        v["secret"].as_str().map(String::from)
    }

    /// What the agent has logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn agent_id(&self) -> Option<String> {
        let text = std::fs::read_to_string(self.state_dir.join("credential.json")).ok()?;
        let v: Value = serde_json::from_str(&text).ok()?;
        v["agent_id"].as_str().map(String::from)
    }

    pub fn spool_depth(&self) -> usize {
        std::fs::read_dir(self.state_dir.join("spool"))
            .map(|d| {
                d.filter_map(|e| e.ok())
                    .filter(|e| e.path().extension().is_some_and(|x| x == "report"))
                    .count()
            })
            .unwrap_or(0)
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
            let _ = c.wait();
        }
    }

    /// Whether the agent process is still running (not exited, not stopped).
    pub fn running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Waits for the agent to enroll and for its first report to be applied.
pub async fn wait_for_host(collector: &Collector, agent: &Agent) -> String {
    let id = eventually("agent enrollment", Duration::from_secs(20), || async {
        agent.agent_id()
    })
    .await;
    let url = format!("/api/v1/hosts/{id}");
    eventually("first report", Duration::from_secs(20), || {
        let url = url.clone();
        async move {
            let resp = collector
                .client
                .get(format!("{}{url}", collector.url()))
                .bearer_auth(&collector.api_token)
                .send()
                .await
                .ok()?;
            resp.status().is_success().then_some(())
        }
    })
    .await;
    id
}

/// Runs `caretaker-agent once --print` with a config made of `body` (after the
/// needed collector URL, CA and a state dir under `dir`) and returns the report.
pub fn once_print(dir: &Path, body: &str) -> Value {
    let cfg = dir.join("once.toml");
    std::fs::write(
        &cfg,
        format!(
            "collector_url = \"https://localhost\"\nca_file = \"/dev/null\"\nstate_dir = \"{}\"\n{body}",
            dir.join("state").display()
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let out = Command::new(bin("caretaker-agent"))
        .args(["once", "--print", "--config"])
        .arg(&cfg)
        .output()
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}"))
}

/// A Prometheus process, killed when dropped.
pub struct Prometheus(Child);

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `binary` on loopback scraping `collector` every second with the
/// collector's metrics token, as dashboards/README.md tells (its storage and
/// log in `dir`); returns it and its base URL.
pub fn start_prometheus(dir: &Path, collector: &Collector, binary: &str) -> (Prometheus, String) {
    let token = collector.data_dir().join("metrics-token");
    start_prometheus_with(
        dir,
        collector,
        binary,
        &format!("authorization: {{credentials_file: '{}'}}", token.display()),
    )
}

/// [`start_prometheus`] with `auth` as the scrape job's authorization line
/// (empty: none).
pub fn start_prometheus_with(dir: &Path, collector: &Collector, binary: &str, auth: &str) -> (Prometheus, String) {
    start_prometheus_on(
        dir,
        &collector.data_dir().join("ca.pem"),
        auth,
        &[collector.port],
        binary,
    )
}

/// A Prometheus scraping every second, in one job, the collectors (replicas)
/// listening on `ports` whose certificates `ca` signed; its base URL.
pub fn start_prometheus_on(dir: &Path, ca: &Path, auth: &str, ports: &[u16], binary: &str) -> (Prometheus, String) {
    let port = free_port();
    let config = dir.join("prometheus.yml");
    let targets = ports
        .iter()
        .map(|p| format!("'127.0.0.1:{p}'"))
        .collect::<Vec<_>>()
        .join(", ");
    std::fs::write(
        &config,
        format!(
            "global: {{scrape_interval: 1s, evaluation_interval: 1s}}\nscrape_configs:\n  - job_name: caretaker\n    scheme: https\n    tls_config: {{ca_file: '{}'}}\n    {auth}\n    static_configs: [{{targets: [{targets}]}}]\n",
            ca.display()
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let log = std::fs::File::create(dir.join("prometheus.log")).unwrap_or_else(|e| panic!("{e}"));
    let child = Command::new(binary)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", dir.join("tsdb").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("{binary}: {e}"));
    (Prometheus(child), format!("http://127.0.0.1:{port}"))
}

/// Unmounts a tmpfs when the test ends, however it ends.
pub struct Mounted(PathBuf);

impl Drop for Mounted {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Mounts a tmpfs of `size` (as `mount -o size=`, e.g. `8m`) on `dir`;
/// `None` (test skipped) when that is not possible here, unless
/// CARETAKER_TEST_MOUNT=1 demands it.
pub fn mount_tmpfs(dir: &Path, size: &str) -> Option<Mounted> {
    std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{e}"));
    let out = Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(dir)
        .output();
    match out {
        Ok(o) if o.status.success() => Some(Mounted(dir.to_path_buf())),
        other => {
            let why = match other {
                Ok(o) => String::from_utf8_lossy(&o.stderr).into_owned(),
                Err(e) => e.to_string(),
            };
            if std::env::var("CARETAKER_TEST_MOUNT").as_deref() == Ok("1") {
                panic!("CARETAKER_TEST_MOUNT=1 but mounting a tmpfs failed (run as root): {why}");
            }
            eprintln!("note: skipping a test that needs a tmpfs, cannot mount one: {why}");
            None
        }
    }
}

/// One gzipped report of `host` (customer acme) with its databases' `up`
/// values (`caretaker_db_up`, kind postgresql), optionally carrying an
/// inventory so the host is known.
pub fn db_up_report(
    agent_id: &str,
    seq: u64,
    host: &str,
    interval_secs: u32,
    dbs: &[(&str, f64)],
    inventory: bool,
) -> Vec<u8> {
    use caretaker_shared::wire::{Inventory, PROTOCOL_VERSION, Report, Sample};
    let report = Report {
        version: PROTOCOL_VERSION,
        agent_id: agent_id.to_string(),
        seq,
        collected_at_ms: caretaker_shared::now_ms(),
        interval_secs,
        host: host.into(),
        labels: [("customer".to_string(), "acme".to_string())].into(),
        samples: dbs
            .iter()
            .map(|(db, up)| Sample {
                metric: "caretaker_db_up".into(),
                labels: [
                    ("db".to_string(), db.to_string()),
                    ("kind".to_string(), "postgresql".to_string()),
                ]
                .into(),
                value: *up,
            })
            .collect(),
        events: Vec::new(),
        inventory: inventory.then(|| Inventory {
            hostname: host.into(),
            machine_id: "0123456789abcdef0123456789abcdef".into(),
            ..Inventory::default()
        }),
        disks: None,
    };
    caretaker_tests::gzip(&serde_json::to_vec(&report).unwrap_or_default())
}

/// A database of its own for one test, dropped when this goes.
pub struct PgDb {
    host: String,
    port: String,
    pub name: String,
}

impl PgDb {
    pub fn create(tag: &str) -> Option<PgDb> {
        let addr = std::env::var("CARETAKER_TEST_POSTGRES")
            .ok()
            .filter(|a| !a.is_empty())?;
        let (host, port) = addr.rsplit_once(':').unwrap_or((&addr, "5432"));
        let db = PgDb {
            host: host.to_owned(),
            port: port.to_owned(),
            name: format!(
                "caretaker_e2e_{tag}_{}_{}",
                std::process::id(),
                NEXT_DB.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            ),
        };
        db.admin(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", db.name));
        db.admin(&format!("CREATE DATABASE {}", db.name));
        Some(db)
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@{}:{}/{}", self.host, self.port, self.name)
    }

    /// Runs `sql` on the server's `postgres` database; its output.
    pub fn admin(&self, sql: &str) -> String {
        self.psql("postgres", sql)
    }

    /// Runs `sql` in this database; its output (unaligned, no headers).
    pub fn query(&self, sql: &str) -> String {
        self.psql(&self.name, sql)
    }

    fn psql(&self, db: &str, sql: &str) -> String {
        let out = Command::new("psql")
            .args(["-h", &self.host, "-p", &self.port, "-U", "postgres", "-d", db])
            .args(["-v", "ON_ERROR_STOP=1", "-At", "-c", sql])
            .output()
            .unwrap_or_else(|e| panic!("psql: {e}"));
        assert!(
            out.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    /// The database refuses new connections and drops the ones it has, as a
    /// server that went down does to the collector.
    pub fn go_down(&self) {
        self.admin(&format!("ALTER DATABASE {} ALLOW_CONNECTIONS false", self.name));
        self.admin(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{}'",
            self.name
        ));
    }

    pub fn come_back(&self) {
        self.admin(&format!("ALTER DATABASE {} ALLOW_CONNECTIONS true", self.name));
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([
                "-h", &self.host, "-p", &self.port, "-U", "postgres", "-d", "postgres", "-c",
            ])
            .arg(format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name))
            .output();
    }
}

/// The built-in "will fill" forecast on filesystems, over `window`: it can
/// speak once its points span a quarter of the window.
pub fn fill_forecast_rule(window: &str) -> String {
    format!(
        r#"
[[rule]]
name = "filesystem_fills_within_7d"
kind = "forecast"
metric = "caretaker_filesystem_avail_bytes"
divide_by = "caretaker_filesystem_size_bytes"
window = "{window}"
reaches = 0
within = "7d"
component = "mountpoint"
outcome = "finding"
severity = "warning"
summary = "Filesystem {{component}} on {{host}} will fill within 7 days at the current rate"
"#
    )
}

/// The built-in "almost full" threshold on filesystems, with a 2 s `for` so
/// a test takes seconds: a case once under 30 % is free.
pub const FILL_CASE_RULE: &str = r#"
[[rule]]
name = "filesystem_almost_full"
kind = "threshold"
metric = "caretaker_filesystem_avail_bytes"
divide_by = "caretaker_filesystem_size_bytes"
op = "<"
value = 0.3
clear = 0.4
for = "2s"
component = "mountpoint"
outcome = "case"
severity = "major"
summary = "Filesystem {component} on {host} is almost full ({value} available)"
"#;

/// The `data` of a real Prometheus's answer to `GET /api/v1/{path}` with
/// `params`; `None` when it cannot be asked or refuses.
pub async fn prom_api(base: &str, path: &str, params: &[(&str, &str)]) -> Option<Value> {
    let v: Value = reqwest::Client::new()
        .get(format!("{base}/api/v1/{path}"))
        .query(params)
        .send()
        .await
        .ok()?
        .json()
        .await
        .ok()?;
    (v["status"] == "success").then(|| v["data"].clone())
}

/// A real Prometheus's answer to the instant query `q` (its result vector).
pub async fn prom_query(base: &str, q: &str) -> Option<Vec<Value>> {
    let data = prom_api(base, "query", &[("query", q)]).await?;
    Some(data["result"].as_array().cloned().unwrap_or_default())
}

/// A client trusting the collector's CA that does not follow redirects (to
/// see the login's 303 and its cookie).
pub fn browserless(c: &Collector) -> reqwest::Client {
    let pem = std::fs::read(c.data_dir().join("ca.pem")).unwrap_or_else(|e| panic!("{e}"));
    let ca = reqwest::Certificate::from_pem(&pem).unwrap_or_else(|e| panic!("{e}"));
    reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// `POST /login`: the status, `Retry-After` and the session cookie (`name=value`).
pub async fn login(
    client: &reqwest::Client,
    c: &Collector,
    user: &str,
    password: &str,
) -> (reqwest::StatusCode, Option<u64>, Option<String>) {
    let resp = client
        .post(format!("{}/login", c.url()))
        .form(&[("user", user), ("password", password)])
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST /login: {e}"));
    let retry = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok()?.parse().ok());
    let cookie = resp
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .filter(|v| v.starts_with("caretaker_session=") && v.len() > "caretaker_session=".len())
        .map(String::from);
    (resp.status(), retry, cookie)
}

/// Where a test leaves a file for a reviewer to look at (a page's
/// screenshot): `$CARETAKER_TEST_ARTEFACTS/<test>/<name>`, by default under
/// `target/test-artefacts/`. The folder is made; a file there is replaced.
pub fn artefact(test: &str, name: &str) -> PathBuf {
    let root = std::env::var_os("CARETAKER_TEST_ARTEFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let exe = std::env::current_exe().unwrap_or_default();
            // target/<profile>/deps/<test binary>
            let target = exe.ancestors().nth(3).map(Path::to_path_buf).unwrap_or_default();
            target.join("test-artefacts")
        });
    let dir = root.join(test);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    dir.join(name)
}
