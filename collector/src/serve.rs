//! `caretaker-collector init` and `serve`: wiring the pieces together.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum_server::tls_rustls::RustlsConfig;

use crate::config::Config;
use crate::fleet::Fleet;
use crate::http::{AppState, app};
use crate::metrics::Metrics;
use crate::pki::{self, Paths};
use crate::replicas::{self, Replica};
use crate::store;
use crate::store::agents::Agents;
use crate::writer::Writer;

/// How often the agents' identities are re-read from the store.
const IDENTITY_REFRESH: Duration = Duration::from_secs(5);

/// rustls needs one crypto provider per process; ring builds with a C compiler only.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Creates a data directory: CA, server certificate, tokens, and the store
/// holding the tokens' hashes. Returns the tokens. With `customer`, the
/// enrollment token is bound to that customer.
pub fn init(
    data_dir: &Path,
    names: &[String],
    customer: Option<&str>,
    place: &store::place::Place,
) -> anyhow::Result<pki::Initialized> {
    let paths = Paths::new(data_dir);
    if paths.ca_key.exists() {
        anyhow::bail!(
            "{} is already initialized ({} exists); nothing changed",
            data_dir.display(),
            paths.ca_key.display()
        );
    }
    let made = pki::init(data_dir, names)?;
    let conn = place
        .open()
        .with_context(|| format!("opening the store at {}", place.describe()))?;
    let spec = crate::identity::TokenSpec {
        customer: customer.map(String::from),
        ..Default::default()
    };
    crate::identity::create_token(
        &conn,
        &pki::hash_secret(&made.enrollment_token),
        &spec,
        caretaker_shared::now_ms(),
    )?;
    conn.add_api_token(&pki::hash_secret(&made.api_token), "init", caretaker_shared::now_ms())
        .map_err(store::StoreError::from)?;
    Ok(made)
}

pub async fn serve(cfg: Config) -> anyhow::Result<()> {
    install_crypto_provider();
    let paths = Paths::new(&cfg.data_dir);
    // A damaged, empty or missing store refuses the start: serving on it
    // would accept reports into a broken file, or into a new empty store
    // that no agent's credential is in.
    let place = store::place::Place::of(&cfg.store, &cfg.data_dir)?;
    if place.is_sqlite() {
        crate::backup::check_before_serve(&cfg.data_dir)
            .inspect_err(|e| tracing::error!(error = %e, "store check failed"))?;
    }
    let files = [&paths.server_cert, &paths.server_key, &paths.database];
    for f in &files[..if place.is_sqlite() { 3 } else { 2 }] {
        if !f.exists() {
            anyhow::bail!(
                "{} is missing: run `caretaker-collector init --data-dir {}` first",
                f.display(),
                cfg.data_dir.display()
            );
        }
    }
    if cfg.metrics.auth == crate::config::MetricsAuth::Bearer
        && crate::http::metrics_auth::ensure_token(&paths).context("writing the metrics token")?
    {
        tracing::warn!(
            file = %paths.metrics_token.display(),
            "made a metrics token: /metrics now needs it (Prometheus: authorization.credentials_file)"
        );
    }
    // Broken rules refuse the start, like a broken config: running with a
    // silently partial rule set would hide exactly the faults the operator
    // wrote rules for. Every problem is printed as FILE:LINE.
    let rules = crate::rules::load(cfg.detect.rules_dir.as_deref()).map_err(|errors| {
        for e in &errors {
            eprintln!("{e}");
            tracing::error!(problem = %e, "rule file rejected");
        }
        crate::rules::RulesInvalid(errors.len())
    })?;
    let fleet = Arc::new(Fleet::default());
    // The store's connections block (SQLite files, the synchronous
    // PostgreSQL client): opened and first read off the async workers.
    let conn = blocking(|| place.open()).with_context(|| format!("opening the store at {}", place.describe()))?;
    tracing::info!(store = %place.describe(), "store open");
    let hosts = blocking(|| crate::fleet::load_fleet(&conn, &fleet)).context("loading hosts from the store")?;
    // A broken contracts file refuses the start too (every problem printed
    // as FILE:LINE). Loaded before the writer starts, so no case is settled
    // against an empty set; later edits are reloaded (see below).
    let contracts = crate::contracts::Shared::default();
    if let Some(file) = &cfg.queue.contracts_file {
        let loaded = crate::contracts::load(file).map_err(|errors| {
            for e in &errors {
                eprintln!("{e}");
                tracing::error!(problem = %e, "contracts file rejected");
            }
            crate::contracts::ContractsInvalid(errors.len())
        })?;
        tracing::info!(
            file = %file.display(),
            contracts = loaded.contracts.len(),
            users = loaded.users.len(),
            "contracts loaded"
        );
        contracts.set(loaded);
    }
    let options = crate::writer::WriterOptions {
        keep_raw_reports: cfg.store.raw_report_retention_hours > 0,
        contracts: contracts.clone(),
        satisfaction_wait_ms: i64::from(cfg.queue.satisfaction_wait_days) * 86_400_000,
        health: Default::default(),
    };
    let (writer, writer_thread) =
        Writer::start_with(conn, fleet.clone(), options).context("starting the store writer")?;
    let metrics =
        Arc::new(Metrics::new(fleet.clone(), cfg.hosts.down_after_intervals).map_err(|e| anyhow::anyhow!(e))?);
    metrics.set_config_fingerprint("rules", &crate::detect::rule_set_fingerprint(&rules));
    if let Some(file) = &cfg.queue.contracts_file {
        metrics.set_config_fingerprint("contracts", &crate::replicas::file_fingerprint(file));
    }
    // This collector among the replicas sharing its store: the fleet-wide
    // jobs it runs and the hosts it evaluates are leases in the store.
    let replica = Replica::new(
        &cfg.replicas.name_for(cfg.listen),
        Duration::from_secs(cfg.replicas.lease_secs),
    );
    let sinks = crate::sinks::build(&cfg.sinks)
        .map_err(|e| anyhow::anyhow!(e))
        .context("configuring the ticket sinks")?;
    let mut jobs = vec![replicas::LIFECYCLE.to_string(), replicas::RETENTION.to_string()];
    if cfg.reports.schedule == crate::config::ReportSchedule::Monthly {
        jobs.push(replicas::REPORTS.to_string());
    }
    jobs.extend(sinks.iter().map(|s| replicas::deliver_job(&s.name)));
    // The first round before any job starts: a lone collector holds every
    // job from the first moment.
    if let Err(e) = replicas::round(&replica, &writer, &metrics, &jobs).await {
        tracing::warn!(error = %e, "cannot register this replica in the store yet; retried every {:?}", replica.round());
    }
    tracing::info!(replica = %replica.name, id = %replica.id, "replica registered");
    let coordinator = replicas::start(replica.clone(), writer.clone(), metrics.clone(), jobs);
    // Opened after the writer has migrated the store; they only read.
    let reader = blocking(|| place.readers(cfg.store.readers))
        .context("opening the store's read connections")?
        .observed(metrics.store_reads_in_use.clone(), metrics.store_reads_waiting.clone());
    // Passed at start (above); checked again on a schedule.
    metrics.store_check_ok.set(1);
    metrics.store_checked_at.set(caretaker_shared::now_ms() / 1000);
    // `quick_check` is SQLite's; a PostgreSQL server checks its own pages.
    let store_checker = tokio::spawn(check_store(
        place.is_sqlite().then(|| paths.database.clone()),
        Duration::from_secs(cfg.store.check_interval_secs),
        metrics.clone(),
    ));
    let tls = RustlsConfig::from_pem_file(&paths.server_cert, &paths.server_key)
        .await
        .with_context(|| {
            format!(
                "loading {} and {}",
                paths.server_cert.display(),
                paths.server_key.display()
            )
        })?;
    let (detect, detector) = crate::detect::live::start(
        rules.clone(),
        writer.clone(),
        metrics.clone(),
        cfg.detect.policy(),
        Duration::from_secs(cfg.detect.tick_secs),
        cfg.detect.max_series_per_host,
        crate::detect::live::Checkpointing {
            every: Duration::from_secs(cfg.detect.checkpoint_secs),
            replica: replica.clone(),
        },
    );
    // Kept alive for as long as we serve: dropping it stops the watching.
    let _watcher = match &cfg.detect.rules_dir {
        Some(dir) => Some(
            crate::detect::watch::watch(dir.clone(), rules, detect.clone()).context("watching the rules directory")?,
        ),
        None => None,
    };
    // A broken edit of the contracts file keeps the contracts in force.
    let _contracts_watcher = match &cfg.queue.contracts_file {
        Some(file) => Some(
            crate::contracts::watch::watch(file.clone(), contracts.clone(), metrics.clone())
                .with_context(|| format!("watching {}", file.display()))?,
        ),
        None => None,
    };
    // Ticket sinks deliver the outbox, each from its own cursor, each in
    // the one replica holding its job.
    let deliverers = crate::queue::deliver::start(
        replica.clone(),
        sinks,
        // Its own connection: delivery keeps going while every API reader is busy.
        blocking(|| place.readers(1)).context("opening the store for the outbox")?,
        writer.clone(),
        metrics.clone(),
        cfg.queue.public_url.clone(),
        crate::queue::deliver::Backoff::default(),
    );
    let cfg = Arc::new(cfg);
    let state = AppState {
        detect: Some(detect),
        contracts,
        login: Arc::new(crate::login_guard::LoginGuard::new(&cfg.login)),
        fleet,
        writer: writer.clone(),
        metrics,
        config: cfg.clone(),
        reader,
    };

    let handle = axum_server::Handle::new();
    let h = handle.clone();
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutting down");
        h.graceful_shutdown(Some(HTTP_DRAIN));
    });
    let pruner = {
        let writer = writer.clone();
        let replica = replica.clone();
        let keep_log_ms = i64::from(cfg.store.report_log_retention_hours) * 3_600_000;
        let keep_raw_ms = i64::from(cfg.store.raw_report_retention_hours) * 3_600_000;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                if !replica.holds(replicas::RETENTION) {
                    continue;
                }
                let now = caretaker_shared::now_ms();
                // With a retention of 0 this also clears raw reports kept
                // under an earlier, longer setting.
                writer
                    .prune(crate::writer::Prune {
                        report_log_before_ms: now - keep_log_ms,
                        raw_reports_before_ms: now - keep_raw_ms,
                        outbox_before_ms: now - crate::queue::outbox::KEEP_DELIVERED_MS,
                    })
                    .await;
                let swept = writer
                    .run(move |c| Ok(serde_json::json!(crate::sessions::prune(c, now)?)))
                    .await;
                if let Err(e) = swept {
                    tracing::warn!(error = %e, "cannot sweep the expired web sessions");
                }
            }
        })
    };
    let reporter = (cfg.reports.schedule == crate::config::ReportSchedule::Monthly).then(|| {
        let writer = writer.clone();
        let customers = cfg.reports.customers.clone();
        let options = crate::report::Options {
            down_after_intervals: cfg.hosts.down_after_intervals,
            ..crate::report::Options::default()
        };
        tokio::spawn(scheduled_reports(writer, customers, options, replica.clone()))
    });
    // Kept to give this replica's leases up when it stops.
    let leaving = writer.clone();
    drop(writer);
    // Spare coverage and stock gauges: a few queries a minute on the readers.
    let gauges = {
        let reader = state.reader.clone();
        let metrics = state.metrics.clone();
        let replica = replica.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                // Fleet-wide: shown by the replica running the lifecycle.
                if !replica.holds(replicas::LIFECYCLE) {
                    continue;
                }
                match store::read_on(&reader, |c| crate::spares::gauges(c)).await {
                    Ok(v) => *metrics.spares.lock().unwrap_or_else(|p| p.into_inner()) = v,
                    Err(e) => tracing::warn!(error = %e, "cannot compute the spare gauges"),
                }
            }
        })
    };

    // Agent identities and credentials as the store has them: revocations,
    // rotations and decommissions made by the CLI (or another replica) show
    // in the lists within seconds; so do the hosts other replicas serve. The store writer refuses a revoked agent
    // at once either way.
    let identities = {
        let reader = state.reader.clone();
        let fleet = state.fleet.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(IDENTITY_REFRESH);
            loop {
                tick.tick().await;
                match store::read_on(&reader, |c| crate::identity::identities(c)).await {
                    Ok(rows) => fleet.set_identities(rows),
                    Err(e) => tracing::warn!(error = %e, "cannot refresh the agent identities"),
                }
                // Hosts whose reports another replica applied.
                let f = fleet.clone();
                if let Err(e) = store::read_on(&reader, move |c| crate::fleet::refresh_from_store(c, &f)).await {
                    tracing::warn!(error = %e, "cannot refresh the hosts from the store");
                }
            }
        })
    };

    tracing::info!(listen = %cfg.listen, data_dir = %cfg.data_dir.display(), hosts, "collector serving");
    let mut server = axum_server::bind(cfg.listen)
        .acceptor(edge(tls, &cfg.http, state.metrics.clone()))
        .handle(handle);
    {
        let builder = server.http_builder();
        // HTTP/1.1 only: hyper's header timeout (which also ends idle
        // kept-alive connections) exists for HTTP/1.1 alone, and one HTTP/2
        // connection could carry many slow requests.
        *builder = builder.clone().http1_only();
        builder
            .http1()
            .timer(hyper_util::rt::TokioTimer::new())
            .header_read_timeout(Duration::from_secs(cfg.http.header_timeout_secs));
    }
    // With the peer's address: login throttling counts failures per source.
    server
        .serve(app(state).into_make_service_with_connect_info::<std::net::SocketAddr>())
        .await
        .context("serving")?;
    identities.abort();
    let _ = identities.await;
    pruner.abort();
    let _ = pruner.await;
    gauges.abort();
    let _ = gauges.await;
    store_checker.abort();
    let _ = store_checker.await;
    if let Some(r) = reporter {
        r.abort();
        let _ = r.await;
    }
    // The delivery tasks hold writer handles too.
    for d in deliverers {
        d.abort();
        let _ = d.await;
    }
    // The detection task holds a writer handle: stop it so the writer can
    // end. It stops between two reports, whatever its backlog.
    detector.stop(DETECT_STOP).await;
    // Its checkpoints are saved: the peers may take its hosts over now.
    coordinator.abort();
    let _ = coordinator.await;
    replicas::leave(&replica, &leaving).await;
    drop(leaving);
    // The router (and with it the last writer handle) is gone: the writer
    // drains what it has and stops. Waited for on a plain thread, not a
    // blocking task: the runtime would wait for that one past our bound.
    let (joined, writer_done) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let _ = writer_thread.join();
        let _ = joined.send(());
    });
    if tokio::time::timeout(WRITER_STOP, writer_done).await.is_err() {
        // What it still holds is detection's signals and housekeeping:
        // every acknowledged report is committed already.
        tracing::warn!(
            waited_secs = WRITER_STOP.as_secs(),
            "the store writer did not finish in time; stopping without it"
        );
    }
    tracing::info!("stopped");
    Ok(())
}

/// The acceptor at the edge: the connection limits (before any TLS work),
/// then the TLS handshake within its timeout, offering HTTP/1.1 only.
fn edge(
    tls: RustlsConfig,
    cfg: &crate::config::HttpConfig,
    metrics: Arc<Metrics>,
) -> axum_server::tls_rustls::RustlsAcceptor<crate::http::conns::LimitAcceptor> {
    let mut server_config = (*tls.get_inner()).clone();
    server_config.alpn_protocols = vec![b"http/1.1".to_vec()];
    tls.reload_from_config(Arc::new(server_config));
    let limits = Arc::new(crate::http::conns::ConnLimits::new(cfg));
    axum_server::tls_rustls::RustlsAcceptor::new(tls)
        .handshake_timeout(Duration::from_secs(cfg.tls_handshake_timeout_secs))
        .acceptor(crate::http::conns::LimitAcceptor::new(limits, metrics))
}

/// Runs `f`, which blocks (store connections), without holding up the async
/// workers: `serve` runs on the multi-threaded runtime.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    tokio::task::block_in_place(f)
}

/// Runs `PRAGMA quick_check` on the store every `every`, on a connection of
/// its own (the check reads the whole file; the API's reader stays free),
/// and publishes the outcome. Damage found while serving is logged as an
/// error: the collector goes on serving what it can, and the next start
/// refuses until the store is restored. `None` (a PostgreSQL store): no
/// check, the server keeps its own pages.
async fn check_store(database: Option<std::path::PathBuf>, every: Duration, metrics: Arc<Metrics>) {
    let Some(database) = database else { return };
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let path = database.clone();
        let checked = tokio::task::spawn_blocking(move || {
            let conn = store::open_read_only(&path)?;
            Ok::<_, store::StoreError>(crate::backup::quick_check(&conn)?)
        })
        .await;
        let ok = match checked {
            Ok(Ok(Ok(()))) => true,
            Ok(Ok(Err(problems))) => {
                tracing::error!(store = %database.display(), %problems, hint = crate::backup::RESTORE_HINT, "the store is damaged");
                false
            }
            Ok(Err(e)) => {
                tracing::error!(store = %database.display(), error = %e, "cannot check the store");
                false
            }
            Err(e) => {
                tracing::error!(error = %e, "the store check did not finish");
                false
            }
        };
        metrics.store_check_ok.set(i64::from(ok));
        metrics.store_checked_at.set(caretaker_shared::now_ms() / 1000);
    }
}

/// How long open connections may finish after SIGTERM. With the two bounds
/// below, stopping takes at most 25 s under any backlog: within the unit's
/// `TimeoutStopSec=30s`.
const HTTP_DRAIN: Duration = Duration::from_secs(10);
/// How long detection may take to stop (it stops between two reports).
const DETECT_STOP: Duration = Duration::from_secs(5);
/// How long the store writer may take to finish its queued jobs.
const WRITER_STOP: Duration = Duration::from_secs(10);

/// Makes the scheduled inspection reports that are due, at start and then
/// hourly: a collector that was down on the 1st catches up, and a report
/// already made is never made twice (see [`crate::report::schedule`]).
async fn scheduled_reports(
    writer: Writer,
    customers: Option<Vec<String>>,
    options: crate::report::Options,
    replica: Arc<Replica>,
) {
    // Looked at every round: the replica holding the job makes what is due
    // when it takes the job on and then hourly.
    let mut tick = tokio::time::interval(replica.round());
    let mut last: Option<tokio::time::Instant> = None;
    loop {
        tick.tick().await;
        if !replica.holds(replicas::REPORTS) {
            last = None;
            continue;
        }
        if last.is_some_and(|l| l.elapsed() < Duration::from_secs(3600)) {
            continue;
        }
        last = Some(tokio::time::Instant::now());
        let (customers, options) = (customers.clone(), options.clone());
        let now = caretaker_shared::now_ms();
        let made = writer
            .run(move |c| {
                let made = crate::report::schedule::run_due(c, now, customers.as_deref(), &options)?;
                Ok(serde_json::json!(made))
            })
            .await;
        match made {
            Ok(v) => {
                for m in v.as_array().into_iter().flatten() {
                    tracing::info!(customer = %m[0], id = %m[1], "scheduled inspection report generated");
                }
            }
            Err(e) => tracing::error!(error = %e, "scheduled inspection reports failed"),
        }
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(mut t), Ok(mut i)) => {
            tokio::select! {
                _ = t.recv() => {}
                _ = i.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
