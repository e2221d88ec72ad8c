//! The SQLite store: the collector's record of agents, their newest reports,
//! the report log, events, inventory versions and the dated changes between
//! them (the asset archive). One file in the data
//! directory, WAL mode, migrations in code.
//!
//! All writes go through one writer thread ([`Writer`]) that takes jobs from a
//! channel and commits them in batches: many reports share one transaction
//! (and one fsync), each inside its own savepoint so one bad job fails alone.
//! A job is answered only after its commit, so an acknowledged report is on
//! disk, and a report is applied entirely or not at all.
//! What a job does to a report, a batch of signals or the tick is the
//! pipeline's ([`crate::pipeline`]); the writer batches, commits, answers and
//! updates the fleet once committed.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use caretaker_shared::wire::{self, Inventory, Report};
use rusqlite::{Connection, OpenFlags};
use rusqlite_migration::{M, Migrations};
use tokio::sync::{mpsc, oneshot};

use crate::config::Synchronous;
use crate::fleet::{Fleet, Host};
use crate::ingest::Encoding;
use sql::{Db, SqlError};

pub mod agents;
pub mod assets;
pub mod backup;
pub mod disks;
pub mod holds;
pub mod inspection;
pub mod inspection_reports;
pub mod items;
pub mod migrate;
pub mod outbox;
pub mod place;
pub mod postgres;
pub mod queue;
mod readers;
pub mod recommendations;
pub mod reports;
pub mod retired;
pub mod sessions;
pub mod spares;
pub mod sql;
#[cfg(test)]
pub mod testing;
pub use assets::{AssetChange, Assets};
pub use readers::{Lease, Readers, read_on};
pub use reports::{LogEntry, RawReport, Reports};

pub mod checkpoints;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("database: {0}")]
    Db(#[from] sql::SqlError),
    #[error("database migration: {0}")]
    Migration(#[from] rusqlite_migration::Error),
    #[error("stored report of agent {agent_id} cannot be read: {reason}")]
    Corrupt { agent_id: String, reason: String },
    #[error("the store writer has stopped")]
    WriterGone,
    #[error("agent {0} is not enrolled")]
    UnknownAgent(String),
    #[error("transaction failed: {0}")]
    Transaction(String),
    #[error("stored item {id} cannot be read: {reason}")]
    CorruptItem { id: i64, reason: String },
    #[error("no item {0}")]
    NoSuchItem(i64),
    #[error("{key} already has an active item ({id})")]
    ActiveItemExists { key: String, id: i64 },
    #[error(transparent)]
    Lifecycle(#[from] crate::cases::LifecycleError),
    #[error("held signal {0} is not on the unmapped list")]
    NotUnmapped(i64),
    #[error("no known asset named {0:?}")]
    UnknownAsset(String),
    #[error("to: {0:?} is not an engineer in the contracts file")]
    UnknownEngineer(String),
    #[error("maintenance window: {0}")]
    BadWindow(String),
    #[error("no maintenance window {0}")]
    NoSuchWindow(i64),
    #[error("maintenance window {0} has already ended")]
    WindowEnded(i64),
    #[error("spare parts: {0}")]
    Spares(String),
    #[error("spare parts: no spare model {0:?}; add it first")]
    NoSuchSpareModel(String),
    #[error("no recommendation {0}")]
    NoSuchRecommendation(i64),
    #[error(transparent)]
    Recommendation(#[from] crate::predict::TransitionError),
    /// A queue request the case's state does not allow (resolving without a
    /// service report, closing without a satisfaction record...).
    #[error("{0}")]
    Queue(String),
    /// A queue request with bad input, naming the field.
    #[error("{0}")]
    QueueInput(String),
    #[error("the store has no {0} table: run `caretaker-collector serve` of this version once to upgrade it")]
    Outdated(&'static str),
    /// The store cannot write now (disk full, I/O error, read-only, locked
    /// by another process): nothing of the batch was applied; a retry later
    /// may succeed.
    #[error("the store cannot write: {0}")]
    Unwritable(String),
    #[error("no enrollment token {0:?}")]
    NoSuchToken(String),
    #[error("no agent {0:?}")]
    NoSuchAgent(String),
    /// Enrollment with a token that is unknown, revoked, expired or used up.
    #[error("{0}")]
    TokenRefused(String),
    /// A report or an enrollment claiming another identity than the agent's.
    #[error(transparent)]
    Identity(#[from] crate::identity::Mismatch),
    #[error("host name {host:?} is held by agent {agent_id}; revoke or decommission it first")]
    HostTaken { host: String, agent_id: String },
    #[error("agent {0}'s credential was revoked by the operator; enroll the host again")]
    Revoked(String),
    /// A credential the agent no longer has: replaced by a rotated one.
    #[error("the credential of agent {0} was replaced by a rotated one")]
    StaleCredential(String),
}

/// Whose fault a failed store operation is: the one classification that both
/// the writer's log line and the API's answer follow, so a caller's mistake
/// is never logged as our failure nor answered as one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// The request names something that is not there.
    NotFound,
    /// The request's input is wrong (the message names the field).
    BadInput,
    /// A valid request the current state does not allow.
    Conflict,
    /// The caller is not (or no longer) who it says: an unknown, revoked or
    /// replaced credential or enrollment token.
    Unauthorized,
    /// Known, but claiming what is not its own (another host or customer).
    Forbidden,
    /// Ours: the database, a corrupt row, the writer gone.
    Internal,
    /// Ours and passing: the store cannot write now (disk full, I/O error,
    /// the writer stopping); the caller should retry later.
    Unavailable,
}

impl ErrorClass {
    /// The caller's mistake, not ours.
    pub fn is_client(self) -> bool {
        !matches!(self, ErrorClass::Internal | ErrorClass::Unavailable)
    }
}

impl StoreError {
    /// Whose fault this is. Exhaustive on purpose: a new variant must be
    /// classified.
    pub fn class(&self) -> ErrorClass {
        use crate::predict::TransitionError;
        match self {
            StoreError::NoSuchItem(_)
            | StoreError::NoSuchWindow(_)
            | StoreError::NoSuchRecommendation(_)
            | StoreError::UnknownAsset(_)
            | StoreError::UnknownEngineer(_)
            | StoreError::NotUnmapped(_)
            | StoreError::NoSuchSpareModel(_)
            | StoreError::NoSuchToken(_)
            | StoreError::NoSuchAgent(_) => ErrorClass::NotFound,
            StoreError::UnknownAgent(_)
            | StoreError::TokenRefused(_)
            | StoreError::Revoked(_)
            | StoreError::StaleCredential(_) => ErrorClass::Unauthorized,
            StoreError::Identity(_) => ErrorClass::Forbidden,
            StoreError::HostTaken { .. } => ErrorClass::Conflict,
            StoreError::BadWindow(_)
            | StoreError::Spares(_)
            | StoreError::QueueInput(_)
            | StoreError::Recommendation(TransitionError::ReasonRequired) => ErrorClass::BadInput,
            StoreError::Lifecycle(_)
            | StoreError::WindowEnded(_)
            | StoreError::ActiveItemExists { .. }
            | StoreError::Queue(_)
            | StoreError::Recommendation(TransitionError::Invalid { .. }) => ErrorClass::Conflict,
            StoreError::Sql(e) if sql::sqlite_cannot_write(e) => ErrorClass::Unavailable,
            StoreError::Db(e) if e.unavailable() => ErrorClass::Unavailable,
            StoreError::WriterGone | StoreError::Unwritable(_) => ErrorClass::Unavailable,
            StoreError::Sql(_)
            | StoreError::Db(_)
            | StoreError::Migration(_)
            | StoreError::Corrupt { .. }
            | StoreError::Transaction(_)
            | StoreError::CorruptItem { .. }
            | StoreError::Outdated(_) => ErrorClass::Internal,
        }
    }
}

pub(crate) fn migrations() -> Migrations<'static> {
    Migrations::new(vec![
        M::up(
            r#"
CREATE TABLE enrollment_tokens (
    token_hash TEXT PRIMARY KEY,
    created_at_ms INTEGER NOT NULL
);
CREATE TABLE api_tokens (
    token_hash TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL
);
CREATE TABLE agents (
    agent_id TEXT PRIMARY KEY,
    credential_hash TEXT NOT NULL UNIQUE,
    host TEXT NOT NULL,
    enrolled_at_ms INTEGER NOT NULL,
    labels TEXT NOT NULL DEFAULT '{}',
    interval_secs INTEGER NOT NULL DEFAULT 0,
    last_seq INTEGER NOT NULL DEFAULT 0,
    reports_applied INTEGER NOT NULL DEFAULT 0,
    seq_gaps INTEGER NOT NULL DEFAULT 0,
    last_seen_ms INTEGER,
    last_collected_at_ms INTEGER
);
-- The newest report of each agent, as received (possibly gzip), so a restart
-- rebuilds the latest samples exactly.
CREATE TABLE host_latest (
    agent_id TEXT PRIMARY KEY REFERENCES agents(agent_id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    encoding TEXT NOT NULL CHECK (encoding IN ('identity', 'gzip')),
    body BLOB NOT NULL
);
CREATE TABLE report_log (
    agent_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    collected_at_ms INTEGER NOT NULL,
    received_at_ms INTEGER NOT NULL,
    samples INTEGER NOT NULL,
    PRIMARY KEY (agent_id, seq)
) WITHOUT ROWID;
CREATE INDEX report_log_received ON report_log(received_at_ms);
CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    agent_id TEXT NOT NULL REFERENCES agents(agent_id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    at_ms INTEGER NOT NULL,
    kind TEXT NOT NULL,
    severity TEXT NOT NULL,
    message TEXT NOT NULL,
    labels TEXT NOT NULL
);
CREATE INDEX events_agent_time ON events(agent_id, at_ms);
CREATE TABLE inventory (
    agent_id TEXT NOT NULL REFERENCES agents(agent_id) ON DELETE CASCADE,
    seq INTEGER NOT NULL,
    collected_at_ms INTEGER NOT NULL,
    doc TEXT NOT NULL,
    PRIMARY KEY (agent_id, seq)
);
"#,
        ),
        M::up(disks::MIGRATION),
        // The asset archive: what changed between two inventory versions.
        M::up(assets::CHANGES_MIGRATION),
        // Findings and cases with their append-only log.
        M::up(items::MIGRATION),
        // Raw reports as received, kept for `export-reports`.
        M::up(reports::RAW_REPORTS_MIGRATION),
        // Held signals: unmapped, in a maintenance window, attached to a storm.
        M::up(holds::MIGRATION),
        // Spare parts, reservations, replenishment and service reports.
        M::up(spares::MIGRATION),
        // Part replacement recommendations.
        M::up(recommendations::MIGRATION),
        // Inspection reports as generated.
        M::up(inspection_reports::MIGRATION),
        M::up(queue::MIGRATION),
        // Parts a service report replaced or the inventory lost.
        M::up(retired::MIGRATION),
        // One row `/healthz` rewrites to learn whether the store can write again.
        M::up(PROBE_MIGRATION),
        // Web sessions (by the hash of their id), so a restart logs nobody out.
        M::up(sessions::MIGRATION),
        // Agent identity fixed at enrollment; tokens per customer; revocation and rotation.
        M::up(agents::MIGRATION),
        // BMC and RAID parts: recommendation part types for cache backup
        // units and controllers; spare models that fit by controller model.
        M::up(recommendations::MIGRATION_HARDWARE_PARTS),
        M::up(spares::MIGRATION_CONTROLLER_FITS),
        // Each host's detection state, so a restart keeps its windows.
        M::up(checkpoints::MIGRATION),
        // The outbox row of a case's change is written with its log row in
        // code (`items::Items::append_log`), on every backend: the trigger
        // that wrote it on SQLite goes.
        M::up(items::MIGRATION_OUTBOX_IN_CODE),
    ])
}

/// Opens (creating and migrating) the store.
pub fn open(path: &Path, synchronous: Synchronous) -> Result<Connection, StoreError> {
    let mut conn = Connection::open(path)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(
        None,
        "synchronous",
        match synchronous {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        },
    )?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    migrations().to_latest(&mut conn)?;
    Ok(conn)
}

/// A migrated store in memory, for replays and tests: nothing outlives the
/// connection, so the same input always starts from the same empty state.
pub fn open_in_memory() -> Result<Connection, StoreError> {
    let mut conn = Connection::open_in_memory()?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    migrations().to_latest(&mut conn)?;
    Ok(conn)
}

/// Opens an existing store read-only, without migrating it: for tools that
/// run beside `serve`. WAL mode lets this reader see every committed report
/// while the writer carries on.
pub fn open_read_only(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    Ok(conn)
}

/// A report that passed authentication and validation.
#[derive(Debug)]
pub struct Incoming {
    pub agent_id: String,
    /// Hash of the credential the report came with; `None` where the caller
    /// authenticated otherwise (tests). See [`crate::identity::admit`].
    pub credential_hash: Option<String>,
    /// The report, with its samples moved to `samples`.
    pub report: Report,
    /// The report's catalogue samples, sorted by metric (see [`crate::fleet::catalogue_samples`]).
    pub samples: Vec<wire::Sample>,
    /// Samples in the report as sent, known or not.
    pub sample_count: usize,
    pub body: Vec<u8>,
    pub encoding: Encoding,
    pub received_at_ms: i64,
    /// The agent's clock as ingest judged it; the report's times are already
    /// normalized by it ([`crate::clock::normalize`]). `None`: not judged (a
    /// replay runs in the reports' own time).
    pub clock: Option<crate::clock::Clock>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    Applied {
        seq: u64,
        /// A rotated credential for the agent to take (see `identity`).
        credential: Option<String>,
    },
    /// Already applied: the agent may forget it.
    Duplicate { seq: u64, last_seq: u64 },
}

pub use crate::identity::{Enrolled, Enrollment};

enum Job {
    Apply(Box<Incoming>, oneshot::Sender<Result<Applied, StoreError>>),
    /// Answers with the enrolled agent, or why not.
    Enroll(Enrollment, oneshot::Sender<Result<Enrolled, StoreError>>),
    Prune(Prune),
    /// Signals of the live rule engine for the findings and cases store,
    /// answered with what each did (in order).
    Signals(
        Vec<crate::cases::Signal>,
        crate::cases::Policy,
        oneshot::Sender<Result<DetectWrite, StoreError>>,
    ),
    /// Any other write (an operator's change through the API), run in the
    /// writer's transaction; answered with what it returns.
    Run(Option<RunFn>, oneshot::Sender<Result<Answer, StoreError>>),
    /// Runs the lifecycle timers (`cases::store::tick_all`).
    TickCases(
        i64,
        crate::cases::Policy,
        oneshot::Sender<Result<DetectWrite, StoreError>>,
    ),
}

/// A write for [`Writer::run`].
pub type RunFn = Box<dyn FnOnce(&Db) -> Result<Answer, StoreError> + Send>;

/// What a [`Writer::run`] job answers, typed again by `run` before its
/// caller sees it.
pub type Answer = Box<dyn std::any::Any + Send>;

/// A writer job answering a `T`.
pub fn job<T: Send + 'static>(f: impl FnOnce(&Db) -> Result<T, StoreError> + Send + 'static) -> RunFn {
    Box::new(move |c| f(c).map(|v| Box::new(v) as Answer))
}

/// What a detection job changed in the cases store, for /metrics: the
/// transitions it made and the active items once committed. Counting here,
/// in the one writer, keeps the gauges exact without a query per scrape.
#[derive(Debug, Clone, Default)]
pub struct DetectWrite {
    pub transitions: Vec<&'static str>,
    pub open: Vec<crate::cases::store::OpenCount>,
    /// Held signals by reason.
    pub held: Vec<(crate::cases::hold::Held, u64)>,
    /// Breached and unassigned cases per customer; counted by the tick
    /// only (breaches are found there), `None` from a signal job.
    pub queue: Option<Vec<crate::queue::QueueCounts>>,
}

/// What the prune job deletes: rows received before these times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prune {
    pub report_log_before_ms: i64,
    pub raw_reports_before_ms: i64,
    /// Outbox rows older than this that every sink has delivered.
    pub outbox_before_ms: i64,
}

/// Handle to the writer thread; cheap to clone.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::Sender<Job>,
    health: Arc<Health>,
}

const PROBE_MIGRATION: &str =
    "CREATE TABLE store_probe (id INTEGER PRIMARY KEY CHECK (id = 1), at_ms INTEGER NOT NULL);";

/// Whether the store can write, as the writer last found: set by a batch
/// that failed because the store could not write, cleared by a batch that
/// wrote. Read by `/healthz`; a failing store is probed with a real write
/// ([`Writer::probe`]) so it recovers without traffic.
#[derive(Debug, Default)]
pub struct Health {
    failing: std::sync::Mutex<Option<String>>,
}

impl Health {
    /// Why the store could not write at its last attempt; `None`: it could.
    pub fn failing(&self) -> Option<String> {
        self.failing.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, failing: Option<String>) {
        let mut f = self.failing.lock().unwrap_or_else(|p| p.into_inner());
        match (&*f, &failing) {
            (Some(_), None) => tracing::info!("the store can write again"),
            (None, Some(reason)) => {
                tracing::error!(%reason, "the store cannot write; agents are answered 503 and retry")
            }
            _ => {}
        }
        *f = failing;
    }
}

/// How the writer treats raw report bodies, and what the queue needs in the
/// transactions that change cases.
#[derive(Debug, Clone)]
pub struct WriterOptions {
    /// Store each applied report's body in `raw_reports`. Off when the
    /// retention is 0: rows that would be pruned at once are not written.
    pub keep_raw_reports: bool,
    /// The contracts in force: a new case gets its contract, deadlines and
    /// assignee in the transaction that opened it.
    pub contracts: crate::contracts::Shared,
    /// A resolved case with no satisfaction record closes after this long.
    pub satisfaction_wait_ms: i64,
    /// Whether the store could write at its last attempt (see [`Health`]).
    pub health: Arc<Health>,
}

impl Default for WriterOptions {
    fn default() -> Self {
        Self {
            keep_raw_reports: true,
            contracts: crate::contracts::Shared::default(),
            satisfaction_wait_ms: 7 * 86_400_000,
            health: Arc::default(),
        }
    }
}

/// Most jobs committed in one transaction.
const MAX_BATCH: usize = 512;

impl Writer {
    /// Starts the writer thread on `conn`; it ends when every handle is dropped.
    pub fn start(db: Db, fleet: Arc<Fleet>) -> std::io::Result<(Self, std::thread::JoinHandle<()>)> {
        Self::start_with(db, fleet, WriterOptions::default())
    }

    /// [`Writer::start`] with explicit options.
    pub fn start_with(
        db: Db,
        fleet: Arc<Fleet>,
        options: WriterOptions,
    ) -> std::io::Result<(Self, std::thread::JoinHandle<()>)> {
        let (tx, rx) = mpsc::channel(8 * MAX_BATCH);
        let health = options.health.clone();
        let handle = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || writer_loop(db, rx, fleet, options))?;
        Ok((Self { tx, health }, handle))
    }

    /// Why the store cannot write, if it could not at its last attempt (or
    /// the writer has stopped).
    pub fn failing(&self) -> Option<String> {
        if self.tx.is_closed() {
            return Some(StoreError::WriterGone.to_string());
        }
        self.health.failing()
    }

    /// Writes one small row: whether the store can write now. Updates
    /// [`Writer::failing`] like any other write.
    pub async fn probe(&self) -> Result<(), StoreError> {
        self.run(|c| {
            sql::Sql::execute(
                c,
                "INSERT INTO store_probe(id, at_ms) VALUES (1, ?1) ON CONFLICT(id) DO UPDATE SET at_ms = excluded.at_ms",
                sql::args![caretaker_shared::now_ms()],
            )?;
            Ok(())
        })
        .await
    }

    pub async fn apply(&self, incoming: Incoming) -> Result<Applied, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Job::Apply(Box::new(incoming), reply))
            .await
            .map_err(|_| StoreError::WriterGone)?;
        rx.await.map_err(|_| StoreError::WriterGone)?
    }

    pub async fn enroll(&self, e: Enrollment) -> Result<Enrolled, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Job::Enroll(e, reply))
            .await
            .map_err(|_| StoreError::WriterGone)?;
        rx.await.map_err(|_| StoreError::WriterGone)?
    }

    /// Writes the live engine's signals to the cases store.
    pub async fn signals(
        &self,
        signals: Vec<crate::cases::Signal>,
        policy: crate::cases::Policy,
    ) -> Result<DetectWrite, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Job::Signals(signals, policy, reply))
            .await
            .map_err(|_| StoreError::WriterGone)?;
        rx.await.map_err(|_| StoreError::WriterGone)?
    }

    /// Runs the lifecycle timers at `now_ms`.
    pub async fn tick_cases(&self, now_ms: i64, policy: crate::cases::Policy) -> Result<DetectWrite, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Job::TickCases(now_ms, policy, reply))
            .await
            .map_err(|_| StoreError::WriterGone)?;
        rx.await.map_err(|_| StoreError::WriterGone)?
    }

    /// Runs `f` in the writer's transaction (all of it or nothing) and
    /// returns its answer once committed.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Db) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Job::Run(Some(job(f)), reply))
            .await
            .map_err(|_| StoreError::WriterGone)?;
        let answer = rx.await.map_err(|_| StoreError::WriterGone)??;
        answer
            .downcast::<T>()
            .map(|v| *v)
            .map_err(|_| StoreError::Transaction("the writer answered a job with another type".into()))
    }

    pub async fn prune(&self, prune: Prune) {
        let _ = self.tx.send(Job::Prune(prune)).await;
    }
}

/// What a job changes in the fleet once committed.
enum Effect {
    /// A report let in: the host once applied (`None`: a duplicate).
    Report(Option<Box<Host>>, crate::identity::Admission),
    Enrolled(Enrolled, String),
    Detect(DetectWrite),
    Value(Answer),
}

fn writer_loop(db: Db, mut rx: mpsc::Receiver<Job>, fleet: Arc<Fleet>, options: WriterOptions) {
    while let Some(first) = rx.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        let started = Instant::now();
        let n = batch.len();
        run_batch(&db, batch, &fleet, &options);
        tracing::trace!(
            jobs = n,
            micros = started.elapsed().as_micros() as u64,
            "batch committed"
        );
    }
    tracing::debug!("store writer stopped");
}

/// The error every job of a failed batch is answered with: one the store
/// could not write is [`StoreError::Unwritable`] (answered 503, retried),
/// logged once when the store starts failing rather than for every batch.
fn batch_error(e: &SqlError, health: &Health, what: &str) -> StoreError {
    if e.unavailable() {
        health.set(Some(e.to_string()));
        StoreError::Unwritable(e.to_string())
    } else {
        tracing::error!(error = %e, "{what}");
        StoreError::Transaction(e.to_string())
    }
}

fn run_batch(db: &Db, batch: Vec<Job>, fleet: &Fleet, options: &WriterOptions) {
    let health = &*options.health;
    let changes_before = db.total_changes();
    let tx = match db.transaction() {
        Ok(t) => t,
        Err(e) => {
            let err = batch_error(&e, health, "cannot begin a transaction");
            batch.into_iter().for_each(|job| reply_err(job, clone_error(&err)));
            return;
        }
    };
    // Jobs that may raise or move recommendations: their gauge is recounted
    // after the commit.
    let recount = batch
        .iter()
        .any(|j| matches!(j, Job::Apply(..) | Job::Signals(..) | Job::Run(..) | Job::TickCases(..)));
    // Each job runs in its own savepoint; results wait for the commit.
    let mut done: Vec<(Job, Result<Option<Effect>, StoreError>)> = Vec::with_capacity(batch.len());
    // Inventories set by earlier jobs of this batch (the fleet sees them only after the commit).
    let mut inventories: HashMap<String, AssetState> = HashMap::new();
    let mut batch = batch.into_iter();
    while let Some(mut job) = batch.next() {
        let r = (|| -> Result<Option<Effect>, StoreError> {
            let sp = tx.savepoint("job")?;
            let effect = match &mut job {
                Job::Apply(inc, _) => {
                    let previous = match inventories.get(&inc.agent_id) {
                        Some(state) => state.clone(),
                        None => fleet.get(&inc.agent_id).map(|h| AssetState::of(&h)).unwrap_or_default(),
                    };
                    let samples = std::mem::take(&mut inc.samples);
                    let done = crate::pipeline::report(&sp, inc, samples, previous, options.keep_raw_reports)?;
                    if let Some(h) = &done.host {
                        inventories.insert(h.agent_id.clone(), AssetState::of(h));
                    }
                    Some(Effect::Report(done.host.map(Box::new), done.admission))
                }
                Job::Enroll(e, _) => Some(Effect::Enrolled(
                    crate::identity::enroll(&sp, e, caretaker_shared::now_ms())?,
                    e.credential_hash.clone(),
                )),
                Job::Prune(p) => {
                    crate::pipeline::prune(&sp, p)?;
                    None
                }
                Job::Signals(signals, policy, _) => Some(Effect::Detect(crate::pipeline::signals(
                    &sp,
                    signals,
                    policy,
                    &options.contracts.get(),
                )?)),
                Job::Run(f, _) => match f.take() {
                    Some(f) => Some(Effect::Value(f(&sp)?)),
                    None => None,
                },
                Job::TickCases(now_ms, policy, _) => {
                    let rematch = options.contracts.rematch_due();
                    Some(Effect::Detect(crate::pipeline::tick(
                        &sp,
                        policy,
                        &options.contracts.get(),
                        rematch,
                        options.satisfaction_wait_ms,
                        *now_ms,
                    )?))
                }
            };
            sp.commit()?;
            Ok(effect)
        })();
        // SQLite may have rolled the whole transaction back on a full disk
        // or an I/O error: nothing of this batch can be trusted to commit.
        if let Err(e) = &r
            && e.class() == ErrorClass::Unavailable
        {
            let reason = e.to_string();
            health.set(Some(reason.clone()));
            drop(tx);
            let err = StoreError::Unwritable(reason);
            done.into_iter()
                .map(|(j, _)| j)
                .chain(std::iter::once(job))
                .chain(batch)
                .for_each(|j| reply_err(j, clone_error(&err)));
            return;
        }
        done.push((job, r));
    }
    if let Err(e) = tx.commit() {
        let err = batch_error(&e, health, "commit failed; the batch is not applied");
        done.into_iter().for_each(|(job, _)| reply_err(job, clone_error(&err)));
        return;
    }
    // A batch that wrote shows the store can write; one that only read
    // shows nothing.
    if db.total_changes() != changes_before {
        health.set(None);
    }
    // An enrollment may follow a change the CLI or another replica made
    // (a host decommissioned to free its name): show every agent's identity
    // as the store has it now.
    if done.iter().any(|(j, r)| matches!(j, Job::Enroll(..)) && r.is_ok()) {
        match crate::identity::identities(db) {
            Ok(rows) => fleet.set_identities(rows),
            Err(e) => tracing::warn!(error = %e, "cannot refresh the agent identities"),
        }
    }
    if recount {
        match recommendations::Recommendations::active_recommendation_counts(db) {
            Ok(c) => fleet.set_recommendations_open(c),
            Err(e) => tracing::warn!(error = %e, "cannot count open recommendations"),
        }
    }
    for (job, r) in done {
        match (job, r) {
            (Job::Apply(inc, reply), Ok(effect)) => {
                let (host, admitted) = match effect {
                    Some(Effect::Report(host, admitted)) => (host, Some(admitted)),
                    _ => (None, None),
                };
                let mut offer = None;
                if let Some(a) = admitted {
                    if let Some((old, new)) = a.promoted {
                        fleet.forget_credential(&old);
                        fleet.add_credential(new, inc.agent_id.clone());
                        tracing::info!(agent_id = %inc.agent_id, "agent took its rotated credential; the old one is void");
                    }
                    fleet.set_identity(&inc.agent_id, a.identity);
                    offer = a.offer;
                }
                let answer = match host {
                    Some(h) => {
                        let seq = h.last_seq;
                        fleet.put(*h);
                        Applied::Applied { seq, credential: offer }
                    }
                    None => {
                        let last_seq = fleet.get(&inc.agent_id).map_or(0, |h| h.last_seq);
                        Applied::Duplicate {
                            seq: inc.report.seq,
                            last_seq,
                        }
                    }
                };
                let _ = reply.send(Ok(answer));
            }
            (Job::Enroll(_, reply), Ok(effect)) => {
                let answer = match effect {
                    Some(Effect::Enrolled(e, hash)) => {
                        fleet.add_credential(hash, e.agent_id.clone());
                        fleet.set_identity(&e.agent_id, e.identity.clone());
                        Ok(e)
                    }
                    _ => Err(StoreError::Transaction("enrollment made no agent".into())),
                };
                let _ = reply.send(answer);
            }
            (Job::Prune(_), _) => {}
            (Job::Run(_, reply), Ok(effect)) => {
                let answer = match effect {
                    Some(Effect::Value(v)) => Ok(v),
                    _ => Err(StoreError::Transaction("the job did not run".into())),
                };
                let _ = reply.send(answer);
            }
            (Job::Signals(_, _, reply), Ok(effect)) | (Job::TickCases(_, _, reply), Ok(effect)) => {
                let w = match effect {
                    Some(Effect::Detect(w)) => w,
                    _ => DetectWrite::default(),
                };
                let _ = reply.send(Ok(w));
            }
            (job, Err(e)) => {
                // The caller hears of a refusal; only our own failures are errors.
                if e.class().is_client() {
                    tracing::debug!(error = %e, "store job refused");
                } else {
                    tracing::error!(error = %e, "store job failed");
                }
                reply_err(job, e);
            }
        }
    }
}

/// What a detection job changed since log row `mark` (see [`DetectWrite`]).
pub fn detect_write(conn: &dyn sql::Sql, mark: i64, tick: bool) -> Result<DetectWrite, StoreError> {
    Ok(DetectWrite {
        transitions: crate::cases::store::transitions_since(conn, mark)?,
        open: crate::cases::store::open_counts(conn)?,
        held: crate::cases::hold::held_counts(conn)?,
        queue: if tick {
            Some(crate::queue::queue_counts(conn)?)
        } else {
            None
        },
    })
}

/// The one failure of a batch, for each of its jobs.
fn clone_error(e: &StoreError) -> StoreError {
    match e {
        StoreError::Unwritable(m) => StoreError::Unwritable(m.clone()),
        other => StoreError::Transaction(other.to_string()),
    }
}

fn reply_err(job: Job, e: StoreError) {
    match job {
        Job::Apply(_, reply) => {
            let _ = reply.send(Err(e));
        }
        Job::Enroll(_, reply) => {
            let _ = reply.send(Err(e));
        }
        Job::Prune(_) => {}
        Job::Run(_, reply) => {
            let _ = reply.send(Err(e));
        }
        Job::Signals(_, _, reply) | Job::TickCases(_, _, reply) => {
            let _ = reply.send(Err(e));
        }
    }
}

/// A host's newest inventory, when that version was collected, and how many
/// asset changes are stored for it.
#[derive(Debug, Clone, Default)]
pub struct AssetState {
    pub inventory: Option<Inventory>,
    pub at_ms: Option<i64>,
    pub changes: u64,
}

impl AssetState {
    pub fn of(h: &Host) -> Self {
        Self {
            inventory: h.inventory.clone(),
            at_ms: h.inventory_at_ms,
            changes: h.asset_changes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_valid() {
        assert!(migrations().validate().is_ok());
    }

    #[test]
    fn the_hardware_parts_migration_keeps_recommendations_and_spare_models() {
        let mut conn = Connection::open_in_memory().unwrap_or_else(|e| panic!("{e}"));
        let all = migrations();
        // Every migration but the two hardware ones, then a row in each table.
        let before = 14;
        all.to_version(&mut conn, before).unwrap_or_else(|e| panic!("{e}"));
        conn.execute_batch(
            "INSERT INTO recommendations (agent_id, host, customer, part_type, part_key, reason, evidence, risk, \
             urgency, status, created_at_ms, updated_at_ms) VALUES ('a', 'h', 'c', 'psu', 'h/psu/PS1', 'r', '{}', \
             'high', 'within_days', 'open', 1, 1);
             INSERT INTO spare_models (model, part_type) VALUES ('0PJMDN', 'psu');",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let refused = conn.execute(
            "INSERT INTO recommendations (agent_id, host, customer, part_type, part_key, reason, evidence, risk, \
             urgency, status, created_at_ms, updated_at_ms) VALUES ('a', 'h', 'c', 'bbu', 'h/bbu/c0', 'r', '{}', \
             'high', 'within_days', 'open', 1, 1)",
            [],
        );
        assert!(refused.is_err(), "the old schema knows no bbu");
        all.to_latest(&mut conn).unwrap_or_else(|e| panic!("{e}"));
        let n: i64 = conn
            .query_row(
                "SELECT COUNT(*) FROM recommendations WHERE part_key = 'h/psu/PS1'",
                [],
                |r| r.get(0),
            )
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(n, 1);
        conn.execute(
            "INSERT INTO recommendations (agent_id, host, customer, part_type, part_key, reason, evidence, risk, \
             urgency, status, created_at_ms, updated_at_ms) VALUES ('a', 'h', 'c', 'bbu', 'h/bbu/c0', 'r', '{}', \
             'high', 'within_days', 'open', 1, 1)",
            [],
        )
        .unwrap_or_else(|e| panic!("{e}"));
        // Still one active recommendation per part.
        assert!(
            conn.execute(
                "INSERT INTO recommendations (agent_id, host, customer, part_type, part_key, reason, evidence, risk, \
                 urgency, status, created_at_ms, updated_at_ms) VALUES ('a', 'h', 'c', 'bbu', 'h/bbu/c0', 'r', '{}', \
                 'high', 'within_days', 'open', 1, 1)",
                [],
            )
            .is_err()
        );
        let models = crate::spares::models(&conn).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(models[0].fits_controller_models, Vec::<String>::new());
    }
}

#[cfg(test)]
mod raw_tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::store::sql::{SqlExt, args};

    fn report_json(seq: u64, at_ms: i64) -> Vec<u8> {
        format!(
            r#"{{"version":1,"agent_id":"a1","seq":{seq},"collected_at_ms":{at_ms},"interval_secs":60,"host":"db1","labels":{{}},"samples":[]}}"#
        )
        .into_bytes()
    }

    fn gzip(b: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(b).unwrap();
        enc.finish().unwrap()
    }

    fn enrolled() -> (Db, Fleet) {
        let conn = Db::sqlite(open_in_memory().unwrap());
        let fleet = Fleet::default();
        agents::Agents::add_enrollment_token(&conn, "t", 0).unwrap();
        let (reply, _rx) = oneshot::channel();
        let e = Enrollment {
            token_hash: "t".into(),
            agent_id: "a1".into(),
            credential_hash: "c".into(),
            host: "db1".into(),
            labels: None,
        };
        run_batch(&conn, vec![Job::Enroll(e, reply)], &fleet, &WriterOptions::default());
        (conn, fleet)
    }

    fn apply_one(conn: &Db, fleet: &Fleet, seq: u64, at_ms: i64, gz: bool, options: &WriterOptions) {
        let json = report_json(seq, at_ms);
        let (body, encoding) = if gz {
            (gzip(&json), Encoding::Gzip)
        } else {
            (json.clone(), Encoding::Identity)
        };
        let report = wire::decode(&json).unwrap();
        let (reply, mut rx) = oneshot::channel();
        let inc = Incoming {
            agent_id: "a1".into(),
            credential_hash: None,
            report,
            samples: vec![],
            sample_count: 0,
            body,
            encoding,
            received_at_ms: at_ms,
            clock: None,
        };
        run_batch(conn, vec![Job::Apply(Box::new(inc), reply)], fleet, options);
        assert!(matches!(rx.try_recv(), Ok(Ok(Applied::Applied { .. }))));
    }

    fn raw(conn: &Db) -> Vec<RawReport> {
        let mut all = Vec::new();
        conn.for_each_raw_report(None, None, |r| -> Result<(), StoreError> {
            all.push(r);
            Ok(())
        })
        .unwrap();
        all
    }

    #[test]
    fn raw_reports_are_kept_as_received_and_pruned() {
        let (conn, fleet) = enrolled();
        let keep = WriterOptions::default();
        apply_one(&conn, &fleet, 1, 1_000, true, &keep);
        apply_one(&conn, &fleet, 2, 2_000, false, &keep);
        apply_one(&conn, &fleet, 3, 3_000, true, &keep);
        let all = raw(&conn);
        assert_eq!(all.iter().map(|r| r.seq).collect::<Vec<_>>(), [1, 2, 3]);
        assert_eq!(all[0].encoding, Encoding::Gzip, "gzip stays gzip");
        assert_eq!(all[0].body, gzip(&report_json(1, 1_000)));
        assert_eq!(all[1].encoding, Encoding::Identity);
        assert_eq!(all[1].body, report_json(2, 2_000));

        let mut window = Vec::new();
        conn.for_each_raw_report(Some(2_000), Some(3_000), |r| -> Result<(), StoreError> {
            window.push(r.seq);
            Ok(())
        })
        .unwrap();
        assert_eq!(window, [2], "since is inclusive, until exclusive");

        let prune = Prune {
            report_log_before_ms: 0,
            raw_reports_before_ms: 2_500,
            outbox_before_ms: 0,
        };
        run_batch(&conn, vec![Job::Prune(prune)], &fleet, &keep);
        assert_eq!(raw(&conn).iter().map(|r| r.seq).collect::<Vec<_>>(), [3]);
        let log: i64 = conn.value("SELECT COUNT(*) FROM report_log", args![]).unwrap().unwrap();
        assert_eq!(log, 3, "the report log has its own retention");
    }

    #[test]
    fn zero_retention_keeps_none() {
        let (conn, fleet) = enrolled();
        let none = WriterOptions {
            keep_raw_reports: false,
            ..WriterOptions::default()
        };
        apply_one(&conn, &fleet, 1, 1_000, true, &none);
        apply_one(&conn, &fleet, 2, 2_000, false, &none);
        assert!(raw(&conn).is_empty());
        let latest: i64 = conn.value("SELECT seq FROM host_latest", args![]).unwrap().unwrap();
        assert_eq!(latest, 2, "the rest of the report is still applied");
    }
}

#[cfg(test)]
mod log_tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::Mutex;

    use super::*;
    use crate::store::sql::{Sql, SqlExt, args};

    /// Everything the writer logs, as text.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Runs `f` as a writer job on a fresh store knowing asset db01, and
    /// returns its answer and what the writer logged meanwhile.
    fn run_logged(f: RunFn) -> (Result<Answer, StoreError>, String) {
        let conn = Db::sqlite(open_in_memory().unwrap());
        crate::cases::hold::mark_known(&conn, "db01", None, &[], 0).unwrap();
        let captured = Captured::default();
        let sink = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || sink.clone())
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .finish();
        let (reply, mut rx) = oneshot::channel();
        tracing::subscriber::with_default(subscriber, || {
            run_batch(
                &conn,
                vec![Job::Run(Some(f), reply)],
                &Fleet::default(),
                &WriterOptions::default(),
            );
        });
        let log = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        (rx.try_recv().unwrap(), log)
    }

    #[test]
    fn a_fault_on_an_unknown_asset_is_not_logged_as_an_error() {
        let report = crate::queue::FaultReport {
            asset: "db1".into(),
            title: "Mail down".into(),
            description: String::new(),
            severity: crate::cases::Severity::Major,
            component: String::new(),
        };
        let (answer, log) = run_logged(job(move |c| {
            let contracts = crate::contracts::Contracts::default();
            let (id, _) = crate::queue::report_fault(c, &contracts, &report, "ana", 0)?;
            Ok(serde_json::json!(id))
        }));
        let e = answer.unwrap_err();
        assert_eq!(e.class(), ErrorClass::NotFound, "{e}");
        assert!(!log.contains("ERROR"), "{log}");
        assert!(
            log.contains("DEBUG") && log.contains("no known asset named \"db1\""),
            "{log}"
        );
    }

    #[test]
    fn an_internal_failure_is_still_logged_as_an_error() {
        let (answer, log) = run_logged(job(|c| {
            c.execute("INSERT INTO no_such_table VALUES (1)", args![])?;
            Ok(serde_json::Value::Null)
        }));
        assert_eq!(answer.unwrap_err().class(), ErrorClass::Internal);
        assert!(
            log.lines()
                .any(|l| l.contains("ERROR") && l.contains("store job failed") && l.contains("no_such_table")),
            "{log}"
        );
    }

    /// Runs each of `jobs` as one batch on `conn`; their answers.
    fn run_batch_of(conn: &Db, options: &WriterOptions, jobs: Vec<RunFn>) -> Vec<Result<Answer, StoreError>> {
        let (jobs, answers): (Vec<_>, Vec<_>) = jobs
            .into_iter()
            .map(|f| {
                let (reply, rx) = oneshot::channel();
                (Job::Run(Some(f), reply), rx)
            })
            .unzip();
        run_batch(conn, jobs, &Fleet::default(), options);
        answers.into_iter().map(|mut rx| rx.try_recv().unwrap()).collect()
    }

    fn probe_rows(conn: &Db) -> i64 {
        conn.value("SELECT count(*) FROM store_probe", args![])
            .unwrap()
            .unwrap()
    }

    /// A full disk answered 500 and left the batch half applied: SQLite may
    /// roll the whole transaction back on SQLITE_FULL, after which the jobs
    /// before the failure were answered as applied though nothing was.
    #[test]
    fn a_full_store_fails_the_whole_batch_as_unwritable_and_recovers() {
        let conn = Db::sqlite(open_in_memory().unwrap());
        let sqlite = conn.as_sqlite().unwrap();
        let pages: i64 = sqlite.query_row("PRAGMA page_count", [], |r| r.get(0)).unwrap();
        // No page past the ones there are: SQLite answers SQLITE_FULL, as on a full disk.
        sqlite.pragma_update(None, "max_page_count", pages).unwrap();
        let options = WriterOptions::default();
        let health = &options.health;
        let fits = job(|c| {
            c.execute("INSERT INTO store_probe(id, at_ms) VALUES (1, 1)", args![])?;
            Ok(serde_json::Value::Null)
        });
        let too_big = job(|c| {
            c.batch("CREATE TABLE filler(x); INSERT INTO filler VALUES (zeroblob(1000000));")?;
            Ok(serde_json::Value::Null)
        });
        let answers = run_batch_of(&conn, &options, vec![fits, too_big]);
        for a in &answers {
            let e = a.as_ref().unwrap_err();
            assert!(matches!(e, StoreError::Unwritable(_)), "{e}");
            assert_eq!(e.class(), ErrorClass::Unavailable);
        }
        assert_eq!(probe_rows(&conn), 0, "nothing of the batch was applied");
        assert!(
            health.failing().is_some_and(|r| r.contains("full")),
            "{:?}",
            health.failing()
        );

        // A batch that only reads says nothing about writing.
        let read = job(|c| Ok(serde_json::json!(probe_rows(c))));
        assert!(run_batch_of(&conn, &options, vec![read])[0].is_ok());
        assert!(health.failing().is_some());

        sqlite.pragma_update(None, "max_page_count", pages + 1000).unwrap();
        let fits = job(|c| {
            c.execute("INSERT INTO store_probe(id, at_ms) VALUES (1, 2)", args![])?;
            Ok(serde_json::Value::Null)
        });
        assert!(run_batch_of(&conn, &options, vec![fits])[0].is_ok());
        assert_eq!(probe_rows(&conn), 1);
        assert_eq!(health.failing(), None, "a write that committed clears it");
    }
}
