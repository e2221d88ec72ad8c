//! `caretaker-collector`: parse the command line, load the config, run.
//! Exit codes: 0 ok, 1 failure, 2 bad usage or bad input.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use std::io::Write;

use caretaker_collector::auth;
use caretaker_collector::cases::{Policy, hold};
use caretaker_collector::config::{Config, ConfigError};
use caretaker_collector::contracts::{self, ContractsInvalid};
use caretaker_collector::detect::{self, ReplayError};
use caretaker_collector::export;
use caretaker_collector::identity;
use caretaker_collector::pki::Paths;
use caretaker_collector::report;
use caretaker_collector::rules::{self, RulesInvalid};
use caretaker_collector::serve;
use caretaker_collector::store::place::Place;
use caretaker_collector::store::sql::Db;
use clap::{Parser, Subcommand};

// Ingest allocates many small strings per report on several threads; mimalloc
// halves the time glibc malloc spends there (BENCHMARKS.md).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "caretaker-collector",
    version,
    about = "Caretaker collector: receives agent reports, keeps the record, serves the API and /metrics."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a data directory: CA, server certificate, enrollment, API and metrics tokens, store.
    Init {
        #[arg(long)]
        data_dir: PathBuf,
        #[command(flatten)]
        store: StoreArg,
        /// DNS names and IP addresses the server certificate is valid for
        /// (repeatable). Default: localhost, 127.0.0.1, ::1 and this host's name.
        #[arg(long = "san")]
        sans: Vec<String>,
        /// Bind the enrollment token made here to this customer: agents
        /// enrolled with it can only ever be this customer's. Without it the
        /// token enrolls agents of any customer (each fixed by its claim).
        #[arg(long)]
        customer: Option<String>,
    },
    /// Enrollment tokens: one per customer (and site), with an expiry and a
    /// number of uses. Works on the data directory, also while `serve` runs.
    Tokens {
        #[command(subcommand)]
        command: TokensCommand,
    },
    /// Enrolled agents: list, revoke or rotate credentials, decommission a
    /// host. Works on the data directory and takes effect at once, also while
    /// `serve` runs.
    Agents {
        #[command(subcommand)]
        command: AgentsCommand,
    },
    /// Serve agents, the API and /metrics over HTTPS until SIGTERM/SIGINT.
    Serve {
        /// Config file (TOML); the flags below override it.
        #[arg(long)]
        config: Option<PathBuf>,
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Validate a config file and exit (0 valid, 2 invalid).
    CheckConfig {
        #[arg(long)]
        config: PathBuf,
    },
    /// Replay a JSON-lines file of reports through the rules and the cases
    /// lifecycle in virtual time; print every item change as a JSON line.
    Replay {
        #[arg(long)]
        input: PathBuf,
        /// Operator rule directory, on top of the built-in pack.
        #[arg(long)]
        rules: Option<PathBuf>,
        /// Maintenance windows in force during the replay: a TOML file of
        /// `[[window]]` tables (customer, host, starts_at, ends_at, reason).
        #[arg(long, value_name = "FILE")]
        maintenance: Option<PathBuf>,
        /// A contracts file (as `[queue] contracts_file`): cases get their
        /// contract, deadlines, assignee and escalations as in `serve`.
        #[arg(long, value_name = "FILE")]
        contracts: Option<PathBuf>,
        #[command(flatten)]
        policy: ReplayPolicy,
    },
    /// Copy the store to FILE with SQLite's online backup, checked with
    /// `quick_check`; safe to run while `serve` is running. README: "Backup
    /// and restore".
    Backup {
        #[arg(long)]
        data_dir: PathBuf,
        /// Where the copy goes (replaced whole only once it is complete and checked).
        #[arg(long, value_name = "FILE")]
        to: PathBuf,
    },
    /// Copy the SQLite store of DIR into an empty PostgreSQL database (the
    /// store's schema is created there first), in one transaction, checking
    /// every table's row count. Stop `serve` first. README: "Moving the
    /// store to PostgreSQL".
    MigrateStore {
        /// The collector data directory whose store is copied.
        #[arg(long, value_name = "DIR")]
        from: PathBuf,
        /// The PostgreSQL database: postgres://user@host:port/database.
        #[arg(long, value_name = "URL")]
        to: String,
        /// A file holding the PostgreSQL password (its first line).
        #[arg(long, value_name = "FILE")]
        password_file: Option<PathBuf>,
    },
    /// Write the raw reports kept in the store as JSON lines for `replay`,
    /// ordered by receive time. Safe to run while `serve` is running.
    ExportReports {
        #[arg(long)]
        data_dir: PathBuf,
        #[command(flatten)]
        store: StoreArg,
        /// Reports received at or after TIME: RFC 3339 or ms since the epoch.
        #[arg(long, value_name = "TIME", value_parser = export::parse_time)]
        since: Option<i64>,
        /// Reports received before TIME: RFC 3339 or ms since the epoch.
        #[arg(long, value_name = "TIME", value_parser = export::parse_time)]
        until: Option<i64>,
        /// Only reports from this host name.
        #[arg(long, value_name = "NAME")]
        host: Option<String>,
        /// Output file; `-` (the default) is standard output.
        #[arg(long, value_name = "FILE", default_value = "-")]
        output: PathBuf,
    },
    /// Print the inspection report of one customer for a period (default:
    /// the last full calendar month, UTC), as of the period's end. Reads the
    /// store without changing it; safe to run while `serve` is running.
    Report {
        #[arg(long)]
        data_dir: PathBuf,
        #[command(flatten)]
        store: StoreArg,
        /// The customer, as in the agents' `customer` label; a name no agent
        /// label, finding, case or `--contracts` file knows is refused.
        #[arg(long)]
        customer: String,
        /// Start of the period (inclusive): RFC 3339 or ms since the epoch.
        #[arg(long, value_name = "TIME", value_parser = export::parse_time)]
        from: Option<i64>,
        /// End of the period (exclusive, not in the future): RFC 3339 or ms
        /// since the epoch.
        #[arg(long, value_name = "TIME", value_parser = export::parse_time)]
        to: Option<i64>,
        /// The contracts file, whose customers have a report even before any
        /// of their hosts is enrolled.
        #[arg(long, value_name = "FILE")]
        contracts: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "html")]
        format: ReportFormat,
        /// Output file; `-` (the default) is standard output.
        #[arg(long, value_name = "FILE", default_value = "-")]
        output: PathBuf,
    },
    /// Detection rules: the built-in pack plus an operator's rule directory.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Service contracts, engineers and on-call rotations (TOML).
    Contracts {
        #[command(subcommand)]
        command: ContractsCommand,
    },
    /// Read a password from standard input (one line) and print its argon2id
    /// hash, for a user's `password` in the contracts file.
    HashPassword,
    /// Make a new random API token for a user: prints the token (give it to
    /// the user) and the `sha256:` line for the user's `tokens`.
    HashToken,
}

/// Which store a command works on.
#[derive(clap::Args, Clone, Default)]
struct StoreArg {
    /// The collector's config: the store its `[store]` section names (a
    /// PostgreSQL database). Without it, the SQLite store in the data
    /// directory.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum TokensCommand {
    /// Make a token and print it (shown only this once; only its hash is kept).
    Create {
        #[arg(long)]
        data_dir: PathBuf,
        #[command(flatten)]
        store: StoreArg,
        /// The customer every agent enrolled with this token belongs to.
        #[arg(long)]
        customer: String,
        /// The site every agent enrolled with it is at (bound like the customer).
        #[arg(long)]
        site: Option<String>,
        /// Expires after this long (`30m`, `12h`, `7d`); default: never.
        #[arg(long, value_name = "DURATION", value_parser = duration_ms)]
        expires: Option<i64>,
        /// Enrolls at most this many agents; default: any number.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
        uses: Option<u32>,
    },
    /// Every token: id, customer, site, created, expires, uses, revoked (no secrets).
    List {
        #[arg(long)]
        data_dir: PathBuf,
        #[command(flatten)]
        store: StoreArg,
    },
    /// Revoke a token by its id: no more enrollments with it.
    Revoke {
        #[arg(long)]
        data_dir: PathBuf,
        #[command(flatten)]
        store: StoreArg,
        id: String,
    },
}

#[derive(Subcommand)]
enum AgentsCommand {
    /// Every agent: id, host, customer, site, token, last seen, state.
    List {
        #[arg(long)]
        data_dir: PathBuf,
        #[command(flatten)]
        store: StoreArg,
    },
    /// Revoke an agent's credential: its reports get 401 from now on.
    Revoke {
        #[arg(long)]
        data_dir: PathBuf,
        #[command(flatten)]
        store: StoreArg,
        agent_id: String,
    },
    /// Give an agent a new credential: handed over with its next report; the
    /// old one works until the new one is first used.
    Rotate {
        #[arg(long)]
        data_dir: PathBuf,
        #[command(flatten)]
        store: StoreArg,
        agent_id: String,
    },
    /// Revoke the agent of a host and archive its asset (history kept; the
    /// host name is free for a new agent).
    Decommission {
        #[arg(long)]
        data_dir: PathBuf,
        #[command(flatten)]
        store: StoreArg,
        /// Host name (or agent id).
        host: String,
    },
}

#[derive(Subcommand)]
enum ContractsCommand {
    /// Validate a contracts file and exit (0 valid, with one line per
    /// contract; 2 invalid, with every problem as FILE:LINE: what or
    /// FILE: contract "X": field: reason).
    Check { file: PathBuf },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum ReportFormat {
    Html,
    Md,
    Json,
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Validate the built-in rules plus every *.toml in DIR and exit (0 valid,
    /// 2 invalid, with every problem as FILE:LINE: rule NAME: reason).
    Check { dir: PathBuf },
    /// Print the rules in force: name, kind, outcome, severity, metric.
    List { dir: Option<PathBuf> },
}

/// A bad file or argument given on the command line (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct BadInput(String);

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("CARETAKER_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    match dispatch(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("caretaker-collector: {e:#}");
            let bad_input = e.chain().any(|c| {
                c.is::<ConfigError>()
                    || c.is::<RulesInvalid>()
                    || c.is::<ContractsInvalid>()
                    || c.is::<BadInput>()
                    || c.downcast_ref::<ReplayError>().is_some_and(ReplayError::is_bad_input)
            });
            if bad_input {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

fn dispatch(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::Tokens { command } => tokens(command),
        Command::Agents { command } => agents(command),
        Command::Init {
            data_dir,
            store,
            mut sans,
            customer,
        } => {
            if sans.is_empty() {
                sans = vec!["localhost".into(), "127.0.0.1".into(), "::1".into()];
                if let Some(h) = hostname() {
                    sans.push(h);
                }
            }
            if customer.as_deref().is_some_and(str::is_empty) {
                return Err(BadInput("--customer: must not be empty".into()).into());
            }
            let place = store_place(&data_dir, &store)?;
            let made = serve::init(&data_dir, &sans, customer.as_deref(), &place)?;
            let p = Paths::new(&data_dir);
            println!("initialized {}", data_dir.display());
            println!("  CA certificate (give to agents): {}", p.ca_cert.display());
            println!("  server certificate for: {}", sans.join(", "));
            println!(
                "  enrollment token: {} (also in {}){}",
                made.enrollment_token,
                p.enrollment_token.display(),
                customer.map(|c| format!(", for customer {c}")).unwrap_or_default()
            );
            println!("  API token: {} (also in {})", made.api_token, p.api_token.display());
            println!(
                "  metrics token (Prometheus's authorization.credentials_file): {}",
                p.metrics_token.display()
            );
            Ok(())
        }
        Command::Serve {
            config,
            data_dir,
            listen,
        } => {
            let mut cfg = match config {
                Some(path) => Config::load(&path)?,
                None => Config::default(),
            };
            if let Some(d) = data_dir {
                cfg.data_dir = d;
            }
            if let Some(l) = listen {
                cfg.listen = l;
            }
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
                .context("starting the runtime")?;
            let served = runtime.block_on(serve::serve(cfg));
            // `serve` bounds its own stop; what is left (a blocking read in
            // flight) must not hold the exit past the unit's stop timeout.
            runtime.shutdown_timeout(std::time::Duration::from_secs(2));
            served
        }
        Command::Replay {
            input,
            rules,
            maintenance,
            contracts,
            policy,
        } => {
            let set = load_rules(rules.as_deref())?;
            let mut options = detect::ReplayOptions {
                policy: policy.apply(Policy::default()),
                ..detect::ReplayOptions::default()
            };
            if let Some(days) = policy.satisfaction_wait_days {
                options.satisfaction_wait_ms = i64::from(days).saturating_mul(86_400_000);
            }
            if let Some(path) = &maintenance {
                options.windows = hold::parse_windows_file(path).map_err(BadInput)?;
            }
            if let Some(path) = &contracts {
                options.contracts = caretaker_collector::contracts::load(path).map_err(|errors| {
                    for e in &errors {
                        eprintln!("{e}");
                    }
                    BadInput(format!("{}: {} problem(s)", path.display(), errors.len()))
                })?;
            }
            let file = std::fs::File::open(&input).with_context(|| format!("opening {}", input.display()))?;
            let reports = detect::read_lines(std::io::BufReader::new(file))?;
            let events = detect::replay_full(&reports, set, &options)?;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            for e in events {
                serde_json::to_writer(&mut out, &e)?;
                writeln!(out)?;
            }
            out.flush()?;
            Ok(())
        }
        Command::Backup { data_dir, to } => {
            let bytes = caretaker_collector::backup::backup(&data_dir, &to)?;
            println!(
                "backed up {} to {} ({bytes} bytes, quick_check ok)",
                data_dir.display(),
                to.display()
            );
            Ok(())
        }
        Command::MigrateStore {
            from,
            to,
            password_file,
        } => {
            use caretaker_collector::store::{self, migrate};
            let src = Place::of(&Default::default(), &from)?.open_existing(false)?;
            let settings = store::postgres::settings(&to, password_file.as_deref())?;
            let target = store::postgres::describe(&settings);
            let dst = store::postgres::connect(&settings)?;
            let copied = migrate::copy_sqlite_to_postgres(&src, &dst, |table, rows| {
                eprintln!("{table}: {rows} rows");
            })
            .with_context(|| format!("copying {} into {target}", from.display()))?;
            println!(
                "copied {} rows in {} tables from {} into {target}; every count checked",
                copied.rows(),
                copied.tables.len(),
                from.display(),
            );
            Ok(())
        }
        Command::ExportReports {
            data_dir,
            store,
            since,
            until,
            host,
            output,
        } => {
            let conn = open_db_read_only(&data_dir, &store)?;
            let filter = export::ExportFilter {
                since_ms: since,
                until_ms: until,
                host,
            };
            let n = if output.as_os_str() == "-" {
                let mut out = std::io::BufWriter::new(std::io::stdout().lock());
                let n = export::export(&conn, &filter, &mut out)?;
                out.flush()?;
                n
            } else {
                let file = std::fs::File::create(&output).with_context(|| format!("creating {}", output.display()))?;
                let mut out = std::io::BufWriter::new(file);
                let n = export::export(&conn, &filter, &mut out).with_context(|| format!("{}", output.display()))?;
                out.into_inner()
                    .map_err(|e| e.into_error())
                    .and_then(|f| f.sync_all())
                    .with_context(|| format!("writing {}", output.display()))?;
                n
            };
            tracing::info!(reports = n, "exported");
            Ok(())
        }
        Command::Report {
            data_dir,
            store,
            customer,
            from,
            to,
            contracts,
            format,
            output,
        } => {
            let now = caretaker_shared::now_ms();
            let bad = |e: report::ReportError| -> anyhow::Error {
                match e {
                    report::ReportError::BadRequest { .. } => BadInput(e.for_flags()).into(),
                    report::ReportError::Store(e) => anyhow::Error::new(e).context("checking the customer"),
                }
            };
            let period = report::requested_period(from, to, now).map_err(bad)?;
            let known = match &contracts {
                Some(file) => load_contracts(file)?.customer_names(),
                None => Vec::new(),
            };
            let conn = open_db_read_only(&data_dir, &store)?;
            let customer = report::requested_customer(&conn, &customer, &known).map_err(bad)?;
            let r = report::build_with(&conn, &customer, period, now, &report::Options::default())
                .context("building the report")?;
            let text = match format {
                ReportFormat::Html => report::html::render(&r),
                ReportFormat::Md => report::markdown::render(&r),
                ReportFormat::Json => serde_json::to_string_pretty(&r)? + "\n",
            };
            if output.as_os_str() == "-" {
                let mut out = std::io::stdout().lock();
                out.write_all(text.as_bytes())?;
                out.flush()?;
            } else {
                std::fs::write(&output, text).with_context(|| format!("writing {}", output.display()))?;
            }
            tracing::info!(customer = %customer, systems = r.systems.len(), "inspection report written");
            Ok(())
        }
        Command::CheckConfig { config } => {
            Config::load(&config)?;
            println!("{}: ok", config.display());
            Ok(())
        }
        Command::Rules {
            command: RulesCommand::Check { dir },
        } => {
            let set = load_rules(Some(&dir))?;
            let builtin = set.builtin_count();
            println!(
                "{} rules ok ({builtin} built-in, {} from {})",
                set.rules.len(),
                set.rules.len() - builtin,
                dir.display()
            );
            Ok(())
        }
        Command::Contracts {
            command: ContractsCommand::Check { file },
        } => check_contracts(&file),
        Command::HashPassword => {
            let mut line = String::new();
            std::io::stdin()
                .read_line(&mut line)
                .context("reading the password from standard input")?;
            let password = line.strip_suffix('\n').unwrap_or(&line);
            let password = password.strip_suffix('\r').unwrap_or(password);
            if password.is_empty() {
                return Err(BadInput("no password on standard input".into()).into());
            }
            println!("{}", auth::hash_password(password)?);
            Ok(())
        }
        Command::HashToken => {
            let (token, line) = auth::new_token()?;
            println!("{token}");
            println!("{line}");
            Ok(())
        }
        Command::Rules {
            command: RulesCommand::List { dir },
        } => {
            for r in load_rules(dir.as_deref())?.rules {
                println!(
                    "{} {} {} {} {}",
                    r.name,
                    r.condition.kind(),
                    r.outcome.as_str(),
                    r.severity.as_str(),
                    r.target.name()
                );
            }
            Ok(())
        }
    }
}

/// The store a command works on: `[store]` of `--config`, else the data
/// directory's SQLite file.
fn store_place(data_dir: &std::path::Path, store: &StoreArg) -> anyhow::Result<Place> {
    let cfg = match &store.config {
        Some(file) => Config::load(file)?.store,
        None => Default::default(),
    };
    Ok(Place::of(&cfg, data_dir)?)
}

/// The store of `data_dir` (or `--config`'s) to change.
fn open_db(data_dir: &std::path::Path, store: &StoreArg) -> anyhow::Result<Db> {
    Ok(store_place(data_dir, store)?.open_existing(false)?)
}

/// The store of `data_dir` (or `--config`'s) to read, beside a running `serve`.
fn open_db_read_only(data_dir: &std::path::Path, store: &StoreArg) -> anyhow::Result<Db> {
    Ok(store_place(data_dir, store)?.open_existing(true)?)
}

/// A store refusal the operator caused (no such id): exit 2.
fn operator_error(e: caretaker_collector::store::StoreError) -> anyhow::Error {
    if e.class().is_client() {
        BadInput(e.to_string()).into()
    } else {
        e.into()
    }
}

fn when(ms: Option<i64>, none: &str) -> String {
    ms.map_or_else(|| none.to_string(), report::format_time)
}

fn tokens(cmd: TokensCommand) -> anyhow::Result<()> {
    let now = caretaker_shared::now_ms();
    match cmd {
        TokensCommand::Create {
            data_dir,
            store,
            customer,
            site,
            expires,
            uses,
        } => {
            if customer.is_empty() || site.as_deref().is_some_and(str::is_empty) {
                return Err(BadInput("--customer and --site must not be empty".into()).into());
            }
            let conn = open_db(&data_dir, &store)?;
            let secret = caretaker_collector::pki::new_secret()?;
            let spec = identity::TokenSpec {
                customer: Some(customer),
                site,
                expires_at_ms: expires.map(|d| now.saturating_add(d)),
                max_uses: uses,
            };
            let t = identity::create_token(&conn, &caretaker_collector::pki::hash_secret(&secret), &spec, now)?;
            println!("{secret}");
            eprintln!(
                "enrollment token {} for customer {}{}, expires {}, {} use(s); shown only this once",
                t.id,
                t.customer.as_deref().unwrap_or(""),
                t.site.as_deref().map(|s| format!(" at site {s}")).unwrap_or_default(),
                when(t.expires_at_ms, "never"),
                t.max_uses.map_or("any number of".to_string(), |m| m.to_string()),
            );
            Ok(())
        }
        TokensCommand::List { data_dir, store } => {
            let conn = open_db(&data_dir, &store)?;
            println!("ID            CUSTOMER      SITE      CREATED               EXPIRES               USES    STATE");
            for t in identity::list_tokens(&conn)? {
                let state = if t.revoked_at_ms.is_some() {
                    format!("revoked {}", when(t.revoked_at_ms, ""))
                } else {
                    t.refusal(now).map_or("active".to_string(), |_| "unusable".to_string())
                };
                println!(
                    "{:<13} {:<13} {:<9} {:<21} {:<21} {:<7} {}",
                    t.id,
                    t.customer.as_deref().unwrap_or("(any)"),
                    t.site.as_deref().unwrap_or("-"),
                    when(Some(t.created_at_ms), ""),
                    when(t.expires_at_ms, "never"),
                    match t.max_uses {
                        Some(m) => format!("{}/{m}", t.uses),
                        None => t.uses.to_string(),
                    },
                    state
                );
            }
            Ok(())
        }
        TokensCommand::Revoke { data_dir, store, id } => {
            let conn = open_db(&data_dir, &store)?;
            let t = identity::revoke_token(&conn, &id, now).map_err(operator_error)?;
            println!("enrollment token {} revoked", t.id);
            Ok(())
        }
    }
}

fn agents(cmd: AgentsCommand) -> anyhow::Result<()> {
    let now = caretaker_shared::now_ms();
    match cmd {
        AgentsCommand::List { data_dir, store } => {
            let conn = open_db(&data_dir, &store)?;
            println!(
                "AGENT             HOST                  CUSTOMER      SITE      TOKEN         LAST SEEN             STATE"
            );
            for a in identity::list_agents(&conn)? {
                let state = if a.archived_at_ms.is_some() {
                    "decommissioned"
                } else if a.revoked_at_ms.is_some() {
                    "revoked"
                } else if a.rotation_pending {
                    "active, rotation pending"
                } else {
                    "active"
                };
                println!(
                    "{:<17} {:<21} {:<13} {:<9} {:<13} {:<21} {}",
                    a.agent_id,
                    a.host,
                    a.customer.as_deref().unwrap_or("(first report)"),
                    a.site.as_deref().unwrap_or("-"),
                    a.token_id.as_deref().unwrap_or("-"),
                    when(a.last_seen_ms, "never"),
                    state
                );
            }
            Ok(())
        }
        AgentsCommand::Revoke {
            data_dir,
            store,
            agent_id,
        } => {
            let conn = open_db(&data_dir, &store)?;
            let a = identity::revoke_agent(&conn, &agent_id, now).map_err(operator_error)?;
            println!(
                "agent {} ({}) revoked: its reports are refused from now on",
                a.agent_id, a.host
            );
            Ok(())
        }
        AgentsCommand::Rotate {
            data_dir,
            store,
            agent_id,
        } => {
            let conn = open_db(&data_dir, &store)?;
            let secret = caretaker_collector::pki::new_secret()?;
            let a = identity::rotate_agent(&conn, &agent_id, &secret).map_err(operator_error)?;
            println!(
                "agent {} ({}): new credential pending; the agent takes it with its next report",
                a.agent_id, a.host
            );
            Ok(())
        }
        AgentsCommand::Decommission { data_dir, store, host } => {
            let conn = open_db(&data_dir, &store)?;
            let a = identity::decommission(&conn, &host, now).map_err(operator_error)?;
            println!(
                "host {} decommissioned: agent {} revoked, asset archived",
                a.host, a.agent_id
            );
            Ok(())
        }
    }
}

/// Loads a contracts file, printing every problem on its own line.
fn load_contracts(file: &std::path::Path) -> anyhow::Result<contracts::Contracts> {
    Ok(contracts::load(file).map_err(|errors| {
        for e in &errors {
            eprintln!("{e}");
        }
        ContractsInvalid(errors.len())
    })?)
}

fn check_contracts(file: &std::path::Path) -> anyhow::Result<()> {
    let checked = load_contracts(file)?;
    for c in &checked.contracts {
        println!("{}", c.summary());
    }
    println!(
        "{}: ok ({} customer(s), {} contract(s), {} engineer(s), {} rotation(s), {} user(s))",
        file.display(),
        checked.customers.len(),
        checked.contracts.len(),
        checked.engineers.len(),
        checked.rotations.len(),
        checked.users.len()
    );
    Ok(())
}

/// Loads the rules, printing every problem on its own line: an operator fixes
/// them all in one go, and editors can jump to `FILE:LINE`.
fn load_rules(dir: Option<&std::path::Path>) -> anyhow::Result<rules::RuleSet> {
    rules::load(dir).map_err(|errors| {
        for e in &errors {
            eprintln!("{e}");
        }
        RulesInvalid(errors.len()).into()
    })
}

fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// The lifecycle settings of a replay, as flags; unset, each is the
/// collector's default (`[detect]` in the config).
#[derive(clap::Args, Debug)]
struct ReplayPolicy {
    /// A recurrence within this reopens the case (`1d`, `30m`; `0s`: always new).
    #[arg(long, value_name = "DURATION", value_parser = duration_ms)]
    reopen_window: Option<i64>,
    /// Recovered and untouched → resolved after this, signal clear.
    #[arg(long, value_name = "DURATION", value_parser = duration_ms)]
    quiet_period: Option<i64>,
    /// A case stays open at least this long before "recovered".
    #[arg(long, value_name = "DURATION", value_parser = duration_ms)]
    min_hold: Option<i64>,
    /// More changes than this within --flap-window: flapping.
    #[arg(long, value_name = "N")]
    flap_changes: Option<u32>,
    #[arg(long, value_name = "DURATION", value_parser = duration_ms)]
    flap_window: Option<i64>,
    /// More new cases than this for one customer within --storm-window: one storm case (0: off).
    #[arg(long, value_name = "N")]
    storm_cases: Option<u32>,
    #[arg(long, value_name = "DURATION", value_parser = duration_ms)]
    storm_window: Option<i64>,
    /// A resolved case with no satisfaction record closes after this many days.
    #[arg(long, value_name = "DAYS")]
    satisfaction_wait_days: Option<u32>,
}

impl ReplayPolicy {
    fn apply(&self, mut p: Policy) -> Policy {
        let set = |v: Option<i64>, slot: &mut i64| {
            if let Some(v) = v {
                *slot = v;
            }
        };
        set(self.reopen_window, &mut p.reopen_window_ms);
        set(self.quiet_period, &mut p.quiet_period_ms);
        set(self.min_hold, &mut p.min_hold_ms);
        set(self.flap_window, &mut p.flap_window_ms);
        set(self.storm_window, &mut p.storm_window_ms);
        if let Some(n) = self.flap_changes {
            p.flap_changes = n;
        }
        if let Some(n) = self.storm_cases {
            p.storm_cases = n;
        }
        p
    }
}

/// A duration flag (`30s`, `15m`, `2h`, `1d`) in milliseconds.
fn duration_ms(text: &str) -> Result<i64, String> {
    rules::parse_duration(text)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .ok_or_else(|| format!("{text:?} is not a duration like 30s, 15m, 2h or 1d"))
}
