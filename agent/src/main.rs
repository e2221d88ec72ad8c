//! `caretaker-agent`: parse the command line, load the config, run.
//! Exit codes: 0 ok, 1 failure, 2 bad usage or bad input.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use caretaker_agent::config::{Config, ConfigError};
use caretaker_agent::replicas::{Next, Replicas};
use caretaker_agent::report::{AgentStatus, Reporter};
use caretaker_agent::state::Credential;
use caretaker_agent::{push, run};
use clap::{Parser, Subcommand};

const DEFAULT_CONFIG: &str = "/etc/caretaker/agent.toml";

#[derive(Parser)]
#[command(
    name = "caretaker-agent",
    version,
    about = "Caretaker agent: watches this host and reports to the collector."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Collect and report every interval until stopped (SIGTERM/SIGINT).
    Run {
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Enroll with a collector once, storing this agent's credential in the state dir.
    Enroll {
        /// Collector base URL (https://HOST:PORT). Repeat it for a collector's
        /// replicas: the next is asked when one cannot be reached or answers 5xx.
        #[arg(long, required = true)]
        collector: Vec<String>,
        /// Enrollment token printed by `caretaker-collector init`.
        #[arg(long)]
        token: String,
        /// The collector's CA certificate (PEM).
        #[arg(long)]
        ca: PathBuf,
        /// Where to store the credential (the `state_dir` of the agent's config).
        #[arg(long, default_value = "/var/lib/caretaker")]
        state_dir: PathBuf,
        /// Name to enroll under; the OS host name when unset.
        #[arg(long)]
        host_name: Option<String>,
        /// Replace an existing credential.
        #[arg(long)]
        force: bool,
        /// A label this agent reports, as KEY=VALUE (repeatable), like the
        /// config's `[labels]`: the collector checks `customer` and `site`
        /// against what the token is bound to.
        #[arg(long = "label", value_name = "KEY=VALUE", value_parser = label)]
        labels: Vec<(String, String)>,
    },
    /// Collect once and print the report as JSON; needs no collector.
    Once {
        /// Print the report on stdout (the only output this command has).
        #[arg(long)]
        print: bool,
        /// Optional config for labels, host name and collectors.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Read one smartctl JSON output and print the parsed disk and its verdict
    /// as JSON (exit 0), or say why the file is not smartctl JSON (exit 2).
    DiskHealth {
        /// Output of `smartctl --json -x DEVICE` saved to a file (`-` for stdin).
        #[arg(long)]
        smartctl_json: PathBuf,
    },
    /// Validate the config and exit (0 valid, 2 invalid); usable as ExecStartPre.
    CheckConfig {
        #[arg(long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
}

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
            eprintln!("caretaker-agent: {e:#}");
            if e.chain().any(|c| c.is::<ConfigError>() || c.is::<BadInput>()) {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Input the user gave that cannot be used (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct BadInput(String);

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    // One thread: the agent is small and mostly waits.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .max_blocking_threads(2)
        .build()
        .context("starting the runtime")
}

fn dispatch(cmd: Command) -> anyhow::Result<()> {
    match cmd {
        Command::CheckConfig { config } => {
            Config::load(&config)?;
            println!("{}: ok", config.display());
            Ok(())
        }
        Command::Once { print, config } => {
            let cfg = match config {
                Some(path) => Config::load(&path)?,
                None => Config::parse(
                    "collector_url = \"https://localhost\"\nca_file = \"/dev/null\"\n",
                    "(defaults)".as_ref(),
                )?,
            };
            // The BMC's and the controllers' readers keep their place (the
            // event log's position, the failed disks already announced) in the
            // state dir, for the running service: `once` reads with a scratch
            // dir of its own and takes nothing from it.
            let scratch = std::env::temp_dir().join(format!("caretaker-once-{}", std::process::id()));
            std::fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;
            let mut own = cfg.clone();
            own.state_dir = scratch.clone();
            let mut reporter = Reporter::new(&own);
            if reporter.smart_enabled() {
                // One disk pass, now: `once` does not wait for the worker's interval.
                reporter.smart_state().publish(caretaker_agent::smart::scan(&cfg.smart));
            }
            if reporter.ipmi_enabled() {
                // One read of the BMC; its first read of the event log sends the last day.
                caretaker_agent::ipmi::Worker::new(cfg.ipmi.clone(), reporter.ipmi_state(), &scratch).run_once();
            }
            if reporter.raid_enabled() {
                reporter.raid_state().publish(caretaker_agent::raid::scan(&cfg.raid));
            }
            if cfg.collectors.iter().any(|c| c == "databases") && !cfg.databases.is_empty() {
                // One poll of every database, side by side, before the report.
                let state = reporter.db_state();
                runtime()?.block_on(async {
                    let mut polls = tokio::task::JoinSet::new();
                    for t in cfg.databases.clone() {
                        let state = state.clone();
                        polls.spawn(async move { caretaker_agent::databases::poll_and_publish(&t, &state).await });
                    }
                    polls.join_all().await;
                });
            }
            // A short baseline so CPU usage means something.
            std::thread::sleep(Duration::from_millis(250));
            let agent_id = Credential::load(&cfg.state_dir)
                .ok()
                .flatten()
                .map(|c| c.agent_id)
                .unwrap_or_else(|| "unenrolled".into());
            // seq 0 marks a report that is printed, never sent.
            let report = reporter.build(&agent_id, 0, AgentStatus::default(), Vec::new());
            if let Err(e) = std::fs::remove_dir_all(&scratch) {
                tracing::warn!(dir = %scratch.display(), error = %e, "cannot remove the scratch dir");
            }
            if print {
                println!("{}", serde_json::to_string_pretty(&report)?);
            }
            Ok(())
        }
        Command::DiskHealth { smartctl_json } => {
            let bytes = if smartctl_json.as_os_str() == "-" {
                let mut b = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin(), &mut b).context("reading stdin")?;
                b
            } else {
                std::fs::read(&smartctl_json).map_err(|e| BadInput(format!("{}: {e}", smartctl_json.display())))?
            };
            let disk = caretaker_shared::smartctl::parse(&String::from_utf8_lossy(&bytes))
                .map_err(|e| BadInput(format!("{}: {e}", smartctl_json.display())))?;
            println!("{}", serde_json::to_string_pretty(&disk)?);
            Ok(())
        }
        Command::Enroll {
            collector,
            token,
            ca,
            state_dir,
            host_name,
            force,
            labels,
        } => {
            let labels: std::collections::BTreeMap<String, String> = labels.into_iter().collect();
            if !force && Credential::load(&state_dir)?.is_some() {
                anyhow::bail!(
                    "already enrolled (credential in {}); pass --force to replace it",
                    Credential::path(&state_dir).display()
                );
            }
            let host = host_name
                .or_else(sysinfo::System::host_name)
                .unwrap_or_else(|| "unknown".into());
            runtime()?.block_on(async {
                let client = push::client(&ca, Duration::from_secs(10))?;
                let mut replicas = Replicas::new(&collector);
                // One pass over the replicas, no backoff: this is run by hand.
                let (r, collector) = loop {
                    let url = replicas.current().to_owned();
                    match push::enroll(
                        &client,
                        &url,
                        &token,
                        &host,
                        (!labels.is_empty()).then_some(&labels),
                    )
                    .await
                    {
                        Ok(r) => break (r, url),
                        Err(e) => {
                            if e.failure().map(|f| replicas.on_failure(f)) != Some(Next::TryNow) {
                                return Err(e.into());
                            }
                            tracing::warn!(from = %url, to = replicas.current(), error = %e, "collector replica failed; trying the next one");
                        }
                    }
                };
                let cred = Credential {
                    agent_id: r.agent_id,
                    secret: r.credential,
                    collector_url: collector.clone(),
                };
                cred.save(&state_dir)?;
                println!(
                    "enrolled as {} with {collector}; credential in {}",
                    cred.agent_id,
                    Credential::path(&state_dir).display()
                );
                Ok(())
            })
        }
        Command::Run { config } => {
            let cfg = Config::load(&config)?;
            runtime()?.block_on(async {
                let (tx, rx) = tokio::sync::watch::channel(false);
                tokio::spawn(async move {
                    wait_for_signal().await;
                    tracing::info!("stopping");
                    let _ = tx.send(true);
                });
                run::run(cfg, rx).await
            })
        }
    }
}

/// A `KEY=VALUE` label flag.
fn label(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{text:?} is not KEY=VALUE")),
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
