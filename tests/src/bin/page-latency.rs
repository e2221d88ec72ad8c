//! `caretaker-page-latency`: how long the web pages take with a large fleet
//! in the store (BENCHMARKS.md, "Web pages with a large fleet").
//!
//! `seed` fills a store made by `caretaker-collector init` (the SQLite file,
//! or a PostgreSQL database) with hosts of several customers, cases with
//! their contract, deadlines and log, and writes a contracts file with those
//! customers, their contracts, engineers and one engineer login. `measure`
//! logs in to a serving collector through `POST /login` and then requests
//! each page in turn, one request at a time, printing p50, p99 and max.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use caretaker_collector::store::sql::{Db, Sql};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(about = "Web page latency with a large fleet in the store.")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fills a fresh store (not while it is served) and writes the contracts file.
    Seed {
        /// The SQLite store file (DATA_DIR/caretaker.db).
        #[arg(long, conflicts_with = "store_url", required_unless_present = "store_url")]
        db: Option<PathBuf>,
        /// A PostgreSQL store instead (`postgres://user@host:port/database`, empty).
        #[arg(long)]
        store_url: Option<String>,
        #[arg(long, default_value_t = 10_000)]
        hosts: i64,
        #[arg(long, default_value_t = 50_000)]
        cases: i64,
        /// Case log rows in all (the same number for each case, at least 7).
        #[arg(long, default_value_t = 500_000)]
        log_rows: i64,
        /// Customers the hosts are divided among.
        #[arg(long, default_value_t = 20)]
        customers: i64,
        /// The contracts file to write.
        #[arg(long)]
        contracts: PathBuf,
        /// The engineer login written to the contracts file (an engineer too).
        #[arg(long, default_value = "eng-0")]
        user: String,
        #[arg(long)]
        password: String,
    },
    /// Logs in and measures the pages.
    Measure {
        #[arg(long)]
        url: String,
        #[arg(long)]
        ca: PathBuf,
        #[arg(long, default_value = "eng-0")]
        user: String,
        #[arg(long)]
        password: String,
        /// As seeded.
        #[arg(long, default_value_t = 10_000)]
        hosts: i64,
        #[arg(long, default_value_t = 50_000)]
        cases: i64,
        /// Requests per page (after a few not counted).
        #[arg(long, default_value_t = 200)]
        requests: usize,
        /// Fewer requests for a page that takes longer than this in all.
        #[arg(long, default_value_t = 90)]
        max_secs_per_page: u64,
        /// Only the pages whose name contains this ("queue", "page 100"...).
        #[arg(long)]
        only: Option<String>,
    },
}

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;
const ENGINEERS: i64 = 10;
const SITES: i64 = 3;
const HOLDS: [&str; 4] = [
    "awaiting_customer",
    "awaiting_parts",
    "awaiting_vendor",
    "awaiting_window",
];

/// The seed, in SQL both SQLite and PostgreSQL run. Hosts `host-1`... are
/// divided among customers `cust-0`... round robin, three sites each. Case
/// `j` is on host `((j - 1) % hosts) + 1`; by `j % 10`: 0–5 closed, 6 new,
/// 7 assigned, 8 in progress, 9 on hold (the four reasons in turn). Every
/// third case in progress or closed was on hold for parts once. Severities
/// 1:2:3:1 critical, major, warning, info. Opened over the last 60 days;
/// deadlines as the contracts file says, breaches recorded when passed.
/// Each case has `per_case` log rows: opened, assigned, started (as far as
/// its status goes), the hold, comments (every other one public), resolved
/// and closed.
fn seed_sql(hosts: i64, cases: i64, per_case: i64, customers: i64, now: i64) -> String {
    let holds = HOLDS
        .iter()
        .enumerate()
        .map(|(n, h)| format!("WHEN {n} THEN '{h}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let last = per_case;
    // Products past 32 bits are made here: PostgreSQL multiplies literals as `integer`.
    let enrolled = now - 90 * DAY;
    format!(
        r#"BEGIN;
WITH RECURSIVE n(i) AS (SELECT CAST(1 AS BIGINT) UNION ALL SELECT i + 1 FROM n WHERE i < {hosts})
INSERT INTO agents (agent_id, credential_hash, host, enrolled_at_ms, labels, interval_secs, last_seq, reports_applied,
                    last_seen_ms, last_collected_at_ms, customer, site)
SELECT 'agent-' || i, 'bench-hash-' || i, 'host-' || i, {enrolled},
       '{{"customer":"cust-' || (i % {customers}) || '","site":"cust-' || (i % {customers}) || '-dc' || (i % {SITES}) || '"}}',
       900, 0, 0, {now} - (i % 60) * 1000, {now} - (i % 60) * 1000,
       'cust-' || (i % {customers}), 'cust-' || (i % {customers}) || '-dc' || (i % {SITES})
FROM n;
INSERT INTO known_assets (name, agent_id, identifiers, since_ms)
SELECT host, agent_id, '[]', enrolled_at_ms FROM agents;
WITH RECURSIVE n(i) AS (SELECT CAST(1 AS BIGINT) UNION ALL SELECT i + 1 FROM n WHERE i < {hosts})
INSERT INTO asset_changes (agent_id, at_ms, seq, idx, kind, subject, old, new, summary)
SELECT 'agent-' || i, {now} - (i % 30) * {DAY}, 1, 0, 'package', 'openssl', '3.0.13', '3.0.15', 'openssl 3.0.13 -> 3.0.15'
FROM n;
WITH RECURSIVE n(j) AS (SELECT CAST(1 AS BIGINT) UNION ALL SELECT j + 1 FROM n WHERE j < {cases}),
c AS (
  SELECT j, ((j - 1) % {hosts}) + 1 AS h, (j - 1) / {hosts} AS slot,
         CASE j % 10 WHEN 6 THEN 'new' WHEN 7 THEN 'assigned' WHEN 8 THEN 'in_progress' WHEN 9 THEN 'on_hold'
                     ELSE 'closed' END AS status,
         CASE j % 7 WHEN 0 THEN 'critical' WHEN 1 THEN 'major' WHEN 2 THEN 'major' WHEN 6 THEN 'info'
                    ELSE 'warning' END AS severity,
         {now} - ((j * 7919) % (60 * 24 * 60)) * {MINUTE} AS opened
  FROM n
)
INSERT INTO items (id, kind, customer, asset, check_name, component, status, hold_reason, severity, rule, opened_at_ms,
                   updated_at_ms, last_firing_at_ms, cleared_at_ms, resolved_at_ms, occurrences, reopen_count, flapping,
                   touched_by_person, evidence, recent_changes)
SELECT j, 'case', 'cust-' || (h % {customers}), 'host-' || h,
       CASE j % 4 WHEN 0 THEN 'disk_smart' WHEN 1 THEN 'fs_full' WHEN 2 THEN 'psu_failed' ELSE 'raid_degraded' END,
       'slot' || slot, status,
       CASE WHEN status = 'on_hold' THEN CASE (j / 10) % 4 {holds} END END,
       severity, 'bench-rule', opened, opened + {last} * 10 * {MINUTE}, opened,
       CASE WHEN status = 'closed' THEN opened + ({last} - 1) * 10 * {MINUTE} END,
       CASE WHEN status = 'closed' THEN opened + ({last} - 1) * 10 * {MINUTE} END,
       1 + j % 3, 0, 0, CASE WHEN status = 'new' THEN 0 ELSE 1 END,
       '{{"labels":{{"device":"/dev/sd' || slot || '","serial":"SN' || j || '"}},"value":' || (j % 100) || '}}', '[]'
FROM c;
INSERT INTO case_meta (item_id, source, title, description, reported_by, contract, site, skill, assignee, level,
                       response_due_ms, resolution_due_ms, response_breached_at_ms, resolution_breached_at_ms)
SELECT d.id, 'detection', d.title, '', NULL, 'cust-' || d.cust || '-7x24', 'cust-' || d.cust || '-dc' || (d.h % {SITES}),
       'server', d.assignee, 'L1', d.response_due, d.resolution_due,
       CASE WHEN d.response_due <= {now} AND d.status = 'new' THEN d.response_due END,
       CASE WHEN d.resolution_due <= {now} AND d.status <> 'closed' THEN d.resolution_due END
FROM (
  SELECT i.id, i.status, CAST(substr(i.asset, 6) AS BIGINT) AS h, CAST(substr(i.customer, 6) AS BIGINT) AS cust,
         i.check_name || ' ' || i.component || ' on ' || i.asset AS title,
         CASE WHEN i.status IN ('assigned', 'in_progress', 'on_hold') THEN 'eng-' || (i.id % {ENGINEERS}) END AS assignee,
         i.opened_at_ms + CASE i.severity WHEN 'critical' THEN {HOUR} WHEN 'major' THEN 4 * {HOUR}
                                          WHEN 'warning' THEN 8 * {HOUR} ELSE 3 * {DAY} END AS response_due,
         CASE i.severity WHEN 'critical' THEN i.opened_at_ms + 8 * {HOUR} WHEN 'major' THEN i.opened_at_ms + 2 * {DAY}
                         WHEN 'warning' THEN i.opened_at_ms + 5 * {DAY} END AS resolution_due
  FROM items i WHERE i.kind = 'case'
) d;
WITH RECURSIVE n(k) AS (SELECT CAST(1 AS BIGINT) UNION ALL SELECT k + 1 FROM n WHERE k < {per_case}),
l AS (
  SELECT i.id AS item, n.k, i.status AS s, i.opened_at_ms AS opened, 'person:eng-' || (i.id % {ENGINEERS}) AS person,
         CASE WHEN i.status = 'on_hold' THEN 'on_hold:' || i.hold_reason
              WHEN i.status IN ('new', 'assigned') THEN i.status ELSE 'in_progress' END AS cur,
         (i.status IN ('in_progress', 'closed') AND i.id % 3 = 0) AS was_held
  FROM items i, n WHERE i.kind = 'case'
),
r AS (
  SELECT item, k, opened, person, s,
    CASE WHEN k = 1 THEN NULL
         WHEN k = 2 THEN 'new'
         WHEN k = 3 THEN CASE WHEN s IN ('new', 'assigned') THEN s ELSE 'assigned' END
         WHEN k = 4 THEN CASE WHEN s IN ('new', 'assigned') THEN s ELSE 'in_progress' END
         WHEN k = 5 AND was_held THEN 'on_hold:awaiting_parts'
         WHEN k = {last} - 1 AND s = 'closed' THEN 'in_progress'
         WHEN k = {last} AND s = 'closed' THEN 'resolved'
         ELSE cur END AS from_status,
    CASE WHEN k = 1 THEN 'new'
         WHEN k = 2 THEN CASE WHEN s = 'new' THEN 'new' ELSE 'assigned' END
         WHEN k = 3 THEN CASE WHEN s IN ('new', 'assigned') THEN s ELSE 'in_progress' END
         WHEN k = 4 AND s = 'on_hold' THEN cur
         WHEN k = 4 AND was_held THEN 'on_hold:awaiting_parts'
         WHEN k = 4 THEN cur
         WHEN k = 5 AND was_held THEN 'in_progress'
         WHEN k = {last} - 1 AND s = 'closed' THEN 'resolved'
         WHEN k = {last} AND s = 'closed' THEN 'closed'
         ELSE cur END AS to_status
  FROM l
)
INSERT INTO item_log (id, item_id, at_ms, actor, from_status, to_status, comment, visibility)
SELECT (item - 1) * {per_case} + k, item, opened + (k - 1) * 10 * {MINUTE},
       CASE WHEN k = 1 OR s = 'new' OR (k = {last} AND s = 'closed') THEN 'system' ELSE person END,
       from_status, to_status,
       CASE WHEN k = 1 THEN NULL
            WHEN from_status = to_status THEN 'note ' || k || ' on case ' || item
            WHEN to_status LIKE 'on_hold:%' THEN 'waiting'
            ELSE NULL END,
       CASE WHEN k > 1 AND from_status = to_status AND k % 2 = 0 THEN 'public' ELSE 'internal' END
FROM r;
COMMIT;"#
    )
}

/// The contracts file: each customer with its sites and a 7x24 contract on
/// its hosts, the engineers on every site, and the one login.
fn contracts_file(customers: i64, user: &str, hash: &str) -> String {
    let mut out = String::new();
    let mut all_sites = Vec::new();
    for c in 0..customers {
        let sites: Vec<String> = (0..SITES).map(|s| format!("\"cust-{c}-dc{s}\"")).collect();
        all_sites.extend(sites.iter().cloned());
        out.push_str(&format!(
            r#"[[customer]]
name = "cust-{c}"
sites = [{sites}]

[[contract]]
name = "cust-{c}-7x24"
customer = "cust-{c}"
covers = {{ labels = {{ customer = "cust-{c}" }} }}
hours = "7x24"
time_zone = "UTC"
response = {{ critical = "1h", major = "4h", warning = "8h", info = "3d" }}
resolution = {{ critical = "8h", major = "2d", warning = "5d" }}
pausing_holds = ["awaiting_customer", "awaiting_window"]

"#,
            sites = sites.join(", ")
        ));
    }
    let mut engineers: Vec<String> = (0..ENGINEERS).map(|e| format!("eng-{e}")).collect();
    if !engineers.iter().any(|e| e == user) {
        engineers.push(user.to_string());
    }
    for e in engineers {
        out.push_str(&format!(
            "[[engineer]]\nname = \"{e}\"\nsites = [{}]\nlevel = \"L1\"\n\n",
            all_sites.join(", ")
        ));
    }
    out.push_str(&format!(
        "[[user]]\nname = \"{user}\"\nrole = \"engineer\"\npassword = \"{hash}\"\n"
    ));
    out
}

#[allow(clippy::too_many_arguments)]
fn seed(
    db_file: Option<&Path>,
    store_url: Option<&str>,
    hosts: i64,
    cases: i64,
    log_rows: i64,
    customers: i64,
    contracts: &Path,
    user: &str,
    password: &str,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        hosts > 0 && cases > 0 && customers > 0,
        "hosts, cases and customers must be positive"
    );
    let per_case = log_rows / cases;
    anyhow::ensure!(
        per_case >= 7,
        "at least 7 log rows per case ({log_rows} / {cases} = {per_case})"
    );
    let db: Db = match (db_file, store_url) {
        (Some(file), _) => Db::sqlite(
            caretaker_collector::store::open(file, caretaker_collector::config::Synchronous::Normal)
                .with_context(|| format!("opening {}", file.display()))?,
        ),
        (None, Some(url)) => {
            let settings = caretaker_collector::store::postgres::settings(url, None)?;
            caretaker_collector::store::place::Place::Postgres(Box::new(settings)).open()?
        }
        (None, None) => anyhow::bail!("--db or --store-url"),
    };
    let t = Instant::now();
    let now = caretaker_shared::now_ms();
    db.batch(&seed_sql(hosts, cases, per_case, customers, now))
        .context("seeding")?;
    // The queue rows' facts from the logs, as the collector keeps them.
    caretaker_collector::store::queue::refill_from_logs(&db).context("seeding the queue rows")?;
    if store_url.is_some() {
        // Explicit ids leave the identity sequences behind: move them past.
        db.batch(
            "SELECT setval(pg_get_serial_sequence('items', 'id'), (SELECT max(id) FROM items));
             SELECT setval(pg_get_serial_sequence('item_log', 'id'), (SELECT max(id) FROM item_log));",
        )?;
    }
    // Statistics for the planner; on PostgreSQL the tables vacuumed too, so
    // autovacuum does not take them up while the pages are being timed.
    db.batch(if store_url.is_some() {
        "VACUUM ANALYZE"
    } else {
        "ANALYZE"
    })?;
    let hash = caretaker_collector::auth::hash_password(password)?;
    std::fs::write(contracts, contracts_file(customers, user, &hash))
        .with_context(|| format!("writing {}", contracts.display()))?;
    println!(
        "seeded {hosts} hosts of {customers} customers, {cases} cases, {} log rows in {:.1} s",
        cases * per_case,
        t.elapsed().as_secs_f64()
    );
    Ok(())
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1]
}

/// A fixed pseudo-random sequence (xorshift), so runs ask for the same pages.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: i64) -> i64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n.max(1).unsigned_abs()) as i64
    }
}

async fn login(http: &reqwest::Client, url: &str, user: &str, password: &str) -> anyhow::Result<String> {
    let r = http
        .post(format!("{url}/login"))
        .form(&[("user", user), ("password", password)])
        .send()
        .await?;
    anyhow::ensure!(r.status().is_redirection(), "login: {}", r.status());
    r.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok()?.split(';').next())
        .find(|v| v.starts_with("caretaker_session=") && v.len() > "caretaker_session=".len())
        .map(str::to_string)
        .context("login: no session cookie")
}

async fn get(http: &reqwest::Client, url: &str, cookie: &str, path: &str) -> anyhow::Result<f64> {
    let t = Instant::now();
    let r = http.get(format!("{url}{path}")).header("cookie", cookie).send().await?;
    let status = r.status();
    let body = r.bytes().await?;
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    anyhow::ensure!(status.is_success(), "GET {path}: {status}");
    anyhow::ensure!(!body.is_empty(), "GET {path}: empty page");
    Ok(ms)
}

#[allow(clippy::too_many_arguments)]
async fn measure(
    url: String,
    ca: PathBuf,
    user: String,
    password: String,
    hosts: i64,
    cases: i64,
    requests: usize,
    max_per_page: std::time::Duration,
    only: Option<String>,
) -> anyhow::Result<()> {
    let ca = reqwest::Certificate::from_pem(&std::fs::read(&ca).with_context(|| format!("{}", ca.display()))?)?;
    let http = reqwest::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(ca)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(120))
        .build()?;
    let cookie = login(&http, &url, &user, &password).await?;
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    type PathOf = Box<dyn Fn(&mut Rng) -> String>;
    let pages: Vec<(&str, PathOf)> = vec![
        ("queue, first page", Box::new(|_| "/queue".into())),
        (
            "queue, page 100 (nearest breach)",
            Box::new(|_| "/queue?page=100".into()),
        ),
        (
            "queue, page 100, least pressed first",
            Box::new(|_| "/queue?sort=breach&dir=desc&page=100".into()),
        ),
        (
            "queue, page 100 by age",
            Box::new(|_| "/queue?sort=age&dir=desc&page=100".into()),
        ),
        ("queue, unassigned", Box::new(|_| "/queue?assignee=-".into())),
        (
            "queue, search a host",
            Box::new(move |r| format!("/queue?q=host-{}", 1 + r.below(hosts))),
        ),
        ("case page", Box::new(move |r| format!("/cases/{}", 1 + r.below(cases)))),
        ("hosts, first page", Box::new(|_| "/hosts".into())),
        ("hosts, page 100", Box::new(|_| "/hosts?page=100".into())),
        (
            "host (asset) page",
            Box::new(move |r| format!("/assets/host-{}", 1 + r.below(hosts))),
        ),
    ];
    println!("| page | requests | p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|");
    for (name, path) in &pages {
        if only.as_deref().is_some_and(|o| !name.contains(o)) {
            continue;
        }
        for _ in 0..3 {
            get(&http, &url, &cookie, &path(&mut rng)).await?;
        }
        let mut ms = Vec::with_capacity(requests);
        let started = Instant::now();
        while ms.len() < requests && started.elapsed() < max_per_page {
            ms.push(get(&http, &url, &cookie, &path(&mut rng)).await?);
        }
        ms.sort_by(f64::total_cmp);
        println!(
            "| {name} | {} | {:.1} | {:.1} | {:.1} |",
            ms.len(),
            pct(&ms, 0.50),
            pct(&ms, 0.99),
            ms.last().copied().unwrap_or(f64::NAN)
        );
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    // Not in a runtime: the store's PostgreSQL client blocks on one of its own.
    match Args::parse().command {
        Command::Seed {
            db,
            store_url,
            hosts,
            cases,
            log_rows,
            customers,
            contracts,
            user,
            password,
        } => seed(
            db.as_deref(),
            store_url.as_deref(),
            hosts,
            cases,
            log_rows,
            customers,
            &contracts,
            &user,
            &password,
        ),
        Command::Measure {
            url,
            ca,
            user,
            password,
            hosts,
            cases,
            requests,
            max_secs_per_page,
            only,
        } => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(measure(
                url,
                ca,
                user,
                password,
                hosts,
                cases,
                requests,
                std::time::Duration::from_secs(max_secs_per_page),
                only,
            )),
    }
}
