//! Several collector replicas on one PostgreSQL database: agents listing
//! every replica fail over when theirs is killed, and the fleet carries on
//! as if one collector had served it — every report applied once, one case
//! per fault, each case change delivered to the webhook in order, a
//! logged-in engineer still logged in on the next replica, each SLA breach
//! and escalation recorded once. Replicas started
//! on different rule files say so on `/metrics`.
//!
//! These tests need `CARETAKER_TEST_POSTGRES` (they do nothing without it;
//! with it set, an unreachable server fails them).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::StatusCode;

use crate::util::{
    Agent, Collector, FILL_CASE_RULE, PgDb, browserless, eventually, fill_forecast_rule, free_port, login, prom_query,
};

const PASSWORD: &str = "correct horse battery";

/// A contracts file with customer acme, a 7×24 contract on its site with
/// deadlines of seconds (so breaches and escalations fall during the
/// kills), and the engineer `ana`, who logs in.
fn contracts() -> String {
    let phc = caretaker_collector::auth::hash_password(PASSWORD).unwrap_or_else(|e| panic!("{e}"));
    format!(
        "[[customer]]\nname = \"acme\"\nsites = [\"hq\"]\n\n\
         [[contract]]\nname = \"acme-724\"\ncustomer = \"acme\"\ncovers = {{ labels = {{ site = \"hq\" }} }}\n\
         hours = \"7x24\"\ntime_zone = \"UTC\"\nresponse = {{ major = \"3s\" }}\nresolution = {{ major = \"8s\" }}\n\
         escalation = [\n  {{ at = \"50%\", of = \"resolution\", action = \"notify\", to = \"L1\" }},\n  {{ at = \"100%\", of = \"resolution\", action = \"escalate\", to = \"L2\" }},\n]\n\n\
         [[engineer]]\nname = \"ana\"\nskills = [\"hardware\"]\nsites = [\"hq\"]\nlevel = \"L1\"\n\n[[user]]\nname = \"ana\"\nrole = \"engineer\"\npassword = \"{phc}\"\n"
    )
}

/// One change as the webhook receiver saw it: delivery id, case, status.
type Seen = (i64, i64, String);

/// A webhook receiver on loopback recording every delivery in arrival order.
async fn receiver() -> (String, Arc<Mutex<Vec<Seen>>>) {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let port = free_port();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post({
            let seen = seen.clone();
            move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
                let seen = seen.clone();
                async move {
                    let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                    let id = headers
                        .get(caretaker_collector::sinks::DELIVERY_HEADER)
                        .and_then(|h| h.to_str().ok()?.parse().ok())
                        .unwrap_or(-1);
                    let case = v["case_id"].as_i64().unwrap_or(-1);
                    let status = v["change"]["to_status"].as_str().unwrap_or_default().to_string();
                    seen.lock().unwrap_or_else(|p| p.into_inner()).push((id, case, status));
                    axum::http::StatusCode::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap_or_else(|e| panic!("receiver: {e}"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://127.0.0.1:{port}/hook"), seen)
}

/// `n` replicas of one store: the first is `init`ed with `config(name)`,
/// the others serve copies of its data directory (the same CA, server
/// certificate and tokens) with their own config.
async fn replicas(dir: &Path, n: usize, config: impl Fn(&str) -> String) -> Vec<Collector> {
    let first = dir.join("r0");
    std::fs::create_dir_all(&first).unwrap_or_else(|e| panic!("{e}"));
    let mut all = vec![Collector::start_on(&first, &config("r0")).await];
    for i in 1..n {
        let name = format!("r{i}");
        let home = dir.join(&name);
        copy_dir(&first.join("data"), &home.join("data"));
        let file = home.join("collector.toml");
        std::fs::write(&file, config(&name)).unwrap_or_else(|e| panic!("{e}"));
        all.push(Collector::open_with(&home, Some(file)).await);
    }
    all
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap_or_else(|e| panic!("{e}"));
    for e in std::fs::read_dir(from).unwrap_or_else(|e| panic!("{e}")).flatten() {
        if e.path().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

/// An agent of host `host` listing every replica, its own first.
fn agent(dir: &Path, host: &str, urls: &[String], ca: &Path, token: &str) -> Agent {
    let list = urls.iter().map(|u| format!("\"{u}\"")).collect::<Vec<_>>().join(", ");
    Agent::start_with_config(
        dir,
        &format!(
            "collector_urls = [{list}]\nca_file = \"{}\"\nenrollment_token = \"{token}\"\ninterval_secs = 1\nhost_name = \"{host}\"\n[labels]\ncustomer = \"acme\"\nsite = \"hq\"\n[inventory]\nprobe_versions = false\n[push]\nmin_backoff_ms = 100\nmax_backoff_secs = 1\n",
            ca.display()
        ),
    )
}

/// `n` agents (hosts `node00`, `node01`, ...) spread over the replicas
/// `rs`: each lists every replica, starting with its own.
fn spread_agents(dir: &Path, n: usize, rs: &[Collector]) -> Vec<Agent> {
    let urls: Vec<String> = rs.iter().map(Collector::url).collect();
    let ca = rs[0].data_dir().join("ca.pem");
    (0..n)
        .map(|i| {
            let home = dir.join(format!("agent{i:02}"));
            std::fs::create_dir_all(&home).unwrap_or_else(|e| panic!("{e}"));
            let mut mine = urls.clone();
            mine.rotate_left(i % urls.len());
            agent(&home, &format!("node{i:02}"), &mine, &ca, &rs[0].enrollment_token)
        })
        .collect()
}

/// A database `name` on the test PostgreSQL, a directory, an 8 MiB tmpfs at
/// `fill` in it to fill, and `conf/rules` holding `rules` (the config files
/// in a directory of their own: their watchers look at the directory);
/// `None` (test skipped) without PostgreSQL or a tmpfs.
fn fill_rig(name: &str, rules: &str) -> Option<(PgDb, tempfile::TempDir, crate::util::Mounted, PathBuf)> {
    let db = PgDb::create(name)?;
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let mounted = crate::util::mount_tmpfs(&dir.path().join("fill"), "8m")?;
    let conf = dir.path().join("conf/rules");
    std::fs::create_dir_all(&conf).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(conf.join("rules.toml"), rules).unwrap_or_else(|e| panic!("{e}"));
    Some((db, dir, mounted, conf))
}

/// Waits until `sql` answers `want` on the store; past `within`, fails
/// with its answer and those of the `context` queries.
async fn until_rows(db: &PgDb, sql: &str, want: &str, within: Duration, context: &[&str]) {
    let started = std::time::Instant::now();
    while db.query(sql) != want {
        if started.elapsed() > within {
            let context: Vec<String> = context.iter().map(|q| format!("{q}:\n{}", db.query(q))).collect();
            panic!(
                "{sql}: {} after {within:?}, not {want}\n{}",
                db.query(sql),
                context.join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn next_seq(agent: &Agent) -> i64 {
    let text = std::fs::read_to_string(agent.state_dir.join("counters.json")).unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    v["next_seq"].as_i64().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_replicas_lose_two_and_every_report_case_and_change_counts_once() {
    let Some((db, dir, _mounted, rules)) = fill_rig("replicas", FILL_CASE_RULE) else {
        return;
    };
    let mnt = dir.path().join("fill");
    let contracts_file = dir.path().join("conf/contracts.toml");
    std::fs::write(&contracts_file, contracts()).unwrap_or_else(|e| panic!("{e}"));
    let secret = dir.path().join("conf/hook.key");
    std::fs::write(&secret, "hook-secret").unwrap_or_else(|e| panic!("{e}"));
    let (hook, seen) = receiver().await;
    let url = db.url();
    // Storm grouping off: one fault on twenty hosts of one customer at once
    // is a storm (one case, the rest attached); here each host's case counts.
    let mut rs = replicas(dir.path(), 3, |name| {
        format!(
            "[store]\nurl = \"{url}\"\n[replicas]\nname = \"{name}\"\nlease_secs = 3\n[detect]\nrules_dir = \"{}\"\ntick_secs = 1\nstorm_window_secs = 0\n[queue]\ncontracts_file = \"{}\"\n[[sinks.webhook]]\nname = \"hook\"\nurl = \"{hook}\"\nsecret_file = \"{}\"\n",
            rules.display(),
            contracts_file.display(),
            secret.display()
        )
    })
    .await;
    // Twenty agents, spread over the replicas.
    let agents = spread_agents(dir.path(), 20, &rs);
    let started = std::time::Instant::now();
    loop {
        let v = rs[2].api("/api/v1/hosts").await;
        let n = v["hosts"].as_array().map_or(0, Vec::len);
        if n == 20 {
            break;
        }
        if started.elapsed() > Duration::from_secs(90) {
            let log = |p: PathBuf| std::fs::read_to_string(p).unwrap_or_default();
            let tail = |t: String| t.lines().rev().take(15).collect::<Vec<_>>().join("\n");
            panic!(
                "{n} hosts of 20 after 90 s\nagent00:\n{}\nr0:\n{}",
                tail(log(dir.path().join("agent00/agent.log"))),
                tail(log(dir.path().join("r0/collector.log")))
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // Each replica shows the hosts whose reports it receives.
    let served = |text: &str| {
        text.lines()
            .find(|l| l.starts_with("caretaker_replica_hosts{"))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    eventually("every host held by one replica", Duration::from_secs(30), || async {
        let mut total = 0.0;
        for r in &rs {
            total += served(&r.metrics().await);
        }
        (total == 20.0).then_some(())
    })
    .await;
    let (status, _, cookie) = login(&browserless(&rs[0]), &rs[0], "ana", PASSWORD).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    let cookie = cookie.unwrap_or_else(|| panic!("no session cookie"));

    // The first replica dies mid-load; then the fault; then the second.
    let kills = [caretaker_shared::now_ms(), 0];
    rs[0].kill();
    std::fs::write(mnt.join("ballast"), vec![7u8; 7 * 1024 * 1024]).unwrap_or_else(|e| panic!("{e}"));
    tokio::time::sleep(Duration::from_secs(4)).await;
    let kills = [kills[0], caretaker_shared::now_ms()];
    rs[1].kill();
    let last = &rs[2];

    // The engineer logged in on the first replica works on the last one.
    let page = browserless(last)
        .get(format!("{}/queue", last.url()))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(page.status(), StatusCode::OK, "the session is lost on another replica");

    // One case per host for the one fault.
    let mp = mnt.display().to_string();
    let cases_sql = format!(
        "SELECT COUNT(*), COUNT(DISTINCT asset) FROM items WHERE kind = 'case' AND check_name = 'filesystem_almost_full' AND component = '{mp}'"
    );
    until_rows(
        &db,
        &cases_sql,
        "20|20",
        Duration::from_secs(90),
        &[
            "SELECT kind, check_name, component, status, COUNT(*) FROM items GROUP BY 1, 2, 3, 4",
            "SELECT reason, COUNT(*) FROM held_signals GROUP BY 1",
        ],
    )
    .await;

    // Each case's SLA clocks run out while replicas die: both breaches and
    // both escalation steps are recorded, each once.
    let cases_of = format!(
        "SELECT id FROM items WHERE kind = 'case' AND check_name = 'filesystem_almost_full' AND component = '{mp}'"
    );
    let sla_sql = format!(
        "SELECT (SELECT COUNT(*) FROM case_meta WHERE item_id IN ({cases_of}) AND response_breached_at_ms IS NOT NULL AND resolution_breached_at_ms IS NOT NULL), (SELECT COUNT(*) FROM case_escalations WHERE item_id IN ({cases_of}) AND step IS NOT NULL)"
    );
    until_rows(
        &db,
        &sla_sql,
        "20|40",
        Duration::from_secs(60),
        &[
            "SELECT comment, COUNT(*) FROM item_log WHERE actor = 'rule:sla' GROUP BY 1",
            &format!(
                "SELECT i.id, i.asset, i.status, m.contract, m.response_due_ms, m.resolution_due_ms, m.response_breached_at_ms, m.resolution_breached_at_ms FROM items i JOIN case_meta m ON m.item_id = i.id WHERE i.id IN ({cases_of}) AND (m.response_breached_at_ms IS NULL OR m.resolution_breached_at_ms IS NULL)"
            ),
            &format!(
                "SELECT item_id, at_ms, actor, from_status, to_status, comment FROM item_log WHERE item_id IN (SELECT item_id FROM case_meta WHERE item_id IN ({cases_of}) AND (response_breached_at_ms IS NULL OR resolution_breached_at_ms IS NULL)) ORDER BY id"
            ),
        ],
    )
    .await;
    let sla_notes = format!(
        "SELECT COUNT(*), COUNT(DISTINCT (item_id, comment)) FROM item_log WHERE actor = 'rule:sla' AND item_id IN ({cases_of})"
    );
    assert_eq!(
        db.query(&sla_notes),
        "80|80",
        "two breaches and two escalations per case, none twice: {}",
        db.query("SELECT comment, COUNT(*) FROM item_log WHERE actor = 'rule:sla' GROUP BY 1")
    );
    let escalated = format!("SELECT COUNT(*) FROM case_meta WHERE item_id IN ({cases_of}) AND level = 'L2'");
    assert_eq!(db.query(&escalated), "20", "every case escalated to L2");

    // The agents go on a little, then stop; what they spooled drains.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut agents = agents;
    for a in &mut agents {
        a.stop();
    }
    for a in &mut agents {
        a.spawn();
    }
    eventually("every spool drained", Duration::from_secs(90), || async {
        agents.iter().all(|a| a.spool_depth() == 0).then_some(())
    })
    .await;
    for a in &mut agents {
        a.stop();
    }
    // Every report each agent produced is applied exactly once (those it
    // made while stopping wait in its spool for its next start).
    for a in &agents {
        let id = a.agent_id().unwrap_or_else(|| panic!("no agent id"));
        let produced = next_seq(a) - 1;
        let applied = produced - i64::try_from(a.spool_depth()).unwrap_or(0);
        let row = db.query(&format!(
            "SELECT COUNT(*), COUNT(DISTINCT seq), MIN(seq), MAX(seq) FROM report_log WHERE agent_id = '{id}'"
        ));
        assert_eq!(row, format!("{applied}|{applied}|1|{applied}"), "agent {id}");
    }
    let gap = db.query(
        "SELECT MAX(gap) FROM (SELECT received_at_ms - LAG(received_at_ms) OVER (PARTITION BY agent_id ORDER BY seq) AS gap FROM report_log) g",
    );
    eprintln!("longest gap between two reports of one agent across the kills: {gap} ms");
    // Failover: each agent's last report before a kill and its first after
    // it (at one report a second; the worst is an agent of the dead replica).
    for (k, at) in kills.iter().enumerate() {
        let mut worst = (0, 0);
        for a in &agents {
            let id = a.agent_id().unwrap_or_default();
            let row = db.query(&format!(
                "SELECT MAX(received_at_ms) FILTER (WHERE received_at_ms < {at}), MIN(received_at_ms) FILTER (WHERE received_at_ms >= {at}) FROM report_log WHERE agent_id = '{id}'"
            ));
            if let Some((before, after)) = row.split_once('|')
                && let (Ok(before), Ok(after)) = (before.parse::<i64>(), after.parse::<i64>())
            {
                worst = (worst.0.max(after - before), worst.1.max(after - at));
            }
        }
        eprintln!(
            "replica r{k} killed: longest last report before → first after, of any agent: {} ms, first-after at most {} ms after the kill",
            worst.0, worst.1
        );
    }
    assert_eq!(db.query(&cases_sql), "20|20", "still one case per host");
    assert_eq!(db.query(&sla_notes), "80|80", "still each breach and escalation once");

    // Every case change reached the webhook, in order, once per delivery id.
    let outbox = db.query("SELECT id FROM outbox ORDER BY id");
    let outbox: Vec<i64> = outbox.lines().filter_map(|l| l.parse().ok()).collect();
    assert!(outbox.len() >= 20, "{outbox:?}");
    let got = eventually("every change delivered", Duration::from_secs(60), || async {
        let got = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let ids: std::collections::BTreeSet<i64> = got.iter().map(|s| s.0).collect();
        outbox.iter().all(|id| ids.contains(id)).then_some(got)
    })
    .await;
    let mut first_seen: Vec<i64> = Vec::new();
    for (id, _, _) in &got {
        if !first_seen.contains(id) {
            first_seen.push(*id);
        }
    }
    assert!(
        first_seen.windows(2).all(|w| w[0] < w[1]),
        "out of order: {first_seen:?}"
    );
    // A delivery cut by a kill may be sent again with its id; nothing else.
    let repeats = got.len() - first_seen.len();
    assert!(repeats <= 2, "{repeats} repeated deliveries: {got:?}");
    drop(rs);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_started_with_different_rule_files_show_the_mismatch() {
    let Some(db) = PgDb::create("mismatch") else { return };
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let url = db.url();
    let rules_of = |name: &str| -> PathBuf {
        let d = dir.path().join(format!("rules-{name}"));
        std::fs::create_dir_all(&d).unwrap_or_else(|e| panic!("{e}"));
        if name == "r1" {
            std::fs::write(d.join("fill.toml"), FILL_CASE_RULE).unwrap_or_else(|e| panic!("{e}"));
        }
        d
    };
    let rs = replicas(dir.path(), 2, |name| {
        format!(
            "[store]\nurl = \"{url}\"\n[replicas]\nname = \"{name}\"\nlease_secs = 3\n[detect]\nrules_dir = \"{}\"\n",
            rules_of(name).display()
        )
    })
    .await;
    for r in &rs {
        eventually("the mismatch on /metrics", Duration::from_secs(20), || async {
            r.metrics()
                .await
                .contains("caretaker_config_mismatch{file=\"rules\"} 1")
                .then_some(())
        })
        .await;
        assert!(r.metrics().await.contains("caretaker_replicas_live 2"));
    }
    let log = std::fs::read_to_string(dir.path().join("r1/collector.log")).unwrap_or_default();
    assert!(log.contains("runs another rules file"), "{log}");
}

/// The number a replica's `/metrics` gives for the hosts it holds.
fn hosts_held(metrics: &str) -> f64 {
    metrics
        .lines()
        .find(|l| l.starts_with("caretaker_replica_hosts{"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_whose_owner_dies_is_taken_over_and_its_due_forecast_fires_on_time() {
    const LEASE_SECS: u64 = 3;
    /// When the forecast can first speak: its points span 30 s.
    const SPEAKS_AFTER: Duration = Duration::from_secs(30);
    let Some((db, dir, _mounted, rules)) = fill_rig("takeover", &fill_forecast_rule("120s")) else {
        return;
    };
    let mnt = dir.path().join("fill");
    let url = db.url();
    let mut rs = replicas(dir.path(), 2, |name| {
        format!(
            "[store]\nurl = \"{url}\"\n[replicas]\nname = \"{name}\"\nlease_secs = {LEASE_SECS}\n[detect]\nrules_dir = \"{}\"\ntick_secs = 1\ncheckpoint_secs = 1\n",
            rules.display()
        )
    })
    .await;
    // One agent, on the first replica.
    let mut agents = spread_agents(dir.path(), 1, &rs);
    let first_report = std::time::Instant::now();
    eventually(
        "the host held by the first replica",
        Duration::from_secs(60),
        || async { (hosts_held(&rs[0].metrics().await) == 1.0).then_some(()) },
    )
    .await;

    // The volume fills steadily from now on (128 KiB a second of 8 MiB).
    let fill_started = std::time::Instant::now();
    let fill_started_ms = caretaker_shared::now_ms();
    let filler = tokio::spawn({
        let mnt = mnt.clone();
        async move {
            let chunk = vec![0u8; 128 * 1024];
            for i in 0..55 {
                let _ = std::fs::write(mnt.join(format!("f{i}")), &chunk);
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    });
    let flat = fill_started.duration_since(first_report);
    assert!(
        flat < Duration::from_secs(8),
        "{flat:?} of flat history before the fill"
    );
    let forecast_sql = format!(
        "SELECT opened_at_ms FROM items WHERE check_name = 'filesystem_fills_within_7d' AND component = '{}'",
        mnt.display()
    );
    // Twenty seconds in, the forecast is due in about ten more: its owner dies.
    tokio::time::sleep(Duration::from_secs(20)).await;
    assert_eq!(db.query(&forecast_sql), "", "the forecast fired before the owner died");
    rs[0].kill();
    let killed = std::time::Instant::now();

    // The next replica holds the host within a lease period...
    eventually(
        "the host taken over by the second replica",
        Duration::from_secs(LEASE_SECS + 2),
        || async { (hosts_held(&rs[1].metrics().await) == 1.0).then_some(()) },
    )
    .await;
    eprintln!("host taken over {:?} after the kill", killed.elapsed());
    let log = std::fs::read_to_string(dir.path().join("r1/collector.log")).unwrap_or_default();
    assert!(log.contains("host's detection taken over"), "{log}");

    // ...and the forecast fires when it was due, from the history the dead
    // owner checkpointed: a blank history could not speak before the kill
    // plus 30 s.
    let opened: i64 = eventually("the forecast finding", Duration::from_secs(60), || async {
        db.query(&forecast_sql).parse::<i64>().ok()
    })
    .await;
    let after_fill = Duration::from_millis(u64::try_from(opened - fill_started_ms).unwrap_or(0));
    let blank_earliest = killed.duration_since(fill_started) + SPEAKS_AFTER;
    eprintln!("forecast fired {after_fill:?} after the fill began (a blank history: not before {blank_earliest:?})");
    // Slack: the lease, the checkpoint interval and one 5 s point of the window.
    let due = SPEAKS_AFTER + Duration::from_secs(LEASE_SECS + 7);
    assert!(
        after_fill < due,
        "the forecast fired {after_fill:?} after the fill began, later than {due:?}"
    );
    assert!(after_fill < blank_earliest);
    assert_eq!(
        db.query(&format!("SELECT COUNT(*) FROM ({forecast_sql}) f")),
        "1",
        "one finding"
    );
    filler.abort();
    for a in &mut agents {
        a.stop();
    }
    drop(rs);
}

/// One number from a real Prometheus: the value of `q`'s single series
/// (`None` while it has none or several).
async fn prom_value(base: &str, q: &str) -> Option<f64> {
    match prom_query(base, q).await?.as_slice() {
        [one] => one["value"][1].as_str()?.parse().ok(),
        _ => None,
    }
}

/// The expressions of collector health's "Replicas" row, as Grafana sends
/// them with every variable at "All".
fn replica_panel_queries() -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../dashboards/collector-health.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let d: serde_json::Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}"));
    let panels = d["panels"].as_array().cloned().unwrap_or_default();
    let row = panels
        .iter()
        .position(|p| p["type"] == "row" && p["title"] == "Replicas")
        .unwrap_or_else(|| panic!("no Replicas row in {}", path.display()));
    panels[row + 1..]
        .iter()
        .take_while(|p| p["type"] != "row")
        .flat_map(|p| p["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t["expr"].as_str().map(|e| e.replace("$__rate_interval", "1m")))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scraping_two_replicas_counts_each_host_and_case_once() {
    let prometheus = match std::env::var("CARETAKER_TEST_PROMETHEUS") {
        Ok(p) if !p.is_empty() => p,
        _ => {
            eprintln!("CARETAKER_TEST_PROMETHEUS is not set: skipping two replicas under Prometheus");
            return;
        }
    };
    let Some(db) = PgDb::create("scraped") else { return };
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let url = db.url();
    let mut rs = replicas(dir.path(), 2, |name| {
        format!("[store]\nurl = \"{url}\"\n[replicas]\nname = \"{name}\"\nlease_secs = 3\n")
    })
    .await;
    let ca = rs[0].data_dir().join("ca.pem");
    // One agent on each replica.
    let _agents = spread_agents(dir.path(), 2, &rs);
    for r in &rs {
        eventually("one host held by each replica", Duration::from_secs(60), || async {
            (hosts_held(&r.metrics().await) == 1.0).then_some(())
        })
        .await;
    }
    // One case in the queue, whichever replica is asked.
    let (status, body) = rs[1]
        .api_post(
            "/api/v1/cases",
            &serde_json::json!({"asset": "node00", "title": "Fan rattles", "severity": "warning"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let auth = format!(
        "authorization: {{credentials_file: '{}'}}",
        rs[0].data_dir().join("metrics-token").display()
    );
    let ports: Vec<u16> = rs.iter().map(|r| r.port).collect();
    let (_prom, base) = crate::util::start_prometheus_on(dir.path(), &ca, &auth, &ports, &prometheus);

    // Each host once, the fleet-wide counts from one replica only.
    let expect = [
        ("count(up == 1)", 2.0),
        ("max(caretaker_replicas_live)", 2.0),
        ("count(caretaker_host_up)", 2.0),
        ("max(count by (host) (caretaker_host_up))", 1.0),
        ("sum(caretaker_hosts_known)", 2.0),
        ("sum(caretaker_cases_open)", 1.0),
        ("count(count by (instance) (caretaker_cases_open))", 1.0),
        ("count(count by (instance) (caretaker_signals_held))", 1.0),
        ("max(sum by (task) (caretaker_replica_job_held))", 1.0),
        ("min(sum by (task) (caretaker_replica_job_held))", 1.0),
        ("max(caretaker_config_mismatch)", 0.0),
        ("count(sum by (replica) (caretaker_replica_hosts) == 1)", 2.0),
    ];
    for (q, want) in expect {
        let started = std::time::Instant::now();
        while prom_value(&base, q).await != Some(want) {
            if started.elapsed() > Duration::from_secs(30) {
                let detail = prom_query(&base, &q.replace("max(", "(").replace("min(", "(")).await;
                panic!("{q} is not {want}: {detail:?}");
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
    // Every panel of the Replicas row has data.
    let panels = replica_panel_queries();
    assert!(panels.len() >= 5, "{panels:?}");
    for q in &panels {
        eventually(&format!("data for {q}"), Duration::from_secs(30), || async {
            prom_query(&base, q).await.filter(|r| !r.is_empty()).map(|_| ())
        })
        .await;
    }
    // Reports per replica: one series for each.
    let per_replica = "count(sum by (replica) (rate(caretaker_ingest_reports_accepted_total[1m]) * on (instance) group_left (replica) caretaker_replica_info) > 0)";
    eventually("reports shown per replica", Duration::from_secs(30), || async {
        (prom_value(&base, per_replica).await == Some(2.0)).then_some(())
    })
    .await;

    // The replica showing the fleet dies: the other shows it, still once,
    // and both hosts (the dead one's agent moved over).
    let holder = {
        let mut found = None;
        for (i, r) in rs.iter().enumerate() {
            if r.metrics().await.contains("caretaker_cases_open{") {
                found = Some(i);
            }
        }
        found.unwrap_or_else(|| panic!("no replica shows the open cases"))
    };
    rs[holder].kill();
    let survivor = format!("127.0.0.1:{}", rs[1 - holder].port);
    for (q, want) in [
        ("count(up == 1)", 1.0),
        ("sum(caretaker_cases_open)", 1.0),
        ("count(caretaker_host_up)", 2.0),
        ("max(caretaker_replicas_live)", 1.0),
    ] {
        eventually(
            &format!("after the kill: {q} = {want}"),
            Duration::from_secs(30),
            || async { (prom_value(&base, q).await == Some(want)).then_some(()) },
        )
        .await;
    }
    let q = format!("count(caretaker_cases_open{{instance=\"{survivor}\"}})");
    eventually(
        "the open cases shown by the survivor",
        Duration::from_secs(30),
        || async { prom_value(&base, &q).await.filter(|n| *n >= 1.0) },
    )
    .await;
    drop(rs);
}
