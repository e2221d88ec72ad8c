//! The store writer: all writes go through one writer thread ([`Writer`])
//! that takes jobs from a channel and commits them in batches: many reports
//! share one transaction (and one fsync), each inside its own savepoint so
//! one bad job fails alone. A job is answered only after its commit, so an
//! acknowledged report is on disk, and a report is applied entirely or not
//! at all.
//! What a job does to a report, a batch of signals or the tick is the
//! pipeline's ([`crate::pipeline`]); the writer batches, commits, answers and
//! updates the fleet once committed. The store ([`crate::store`]) keeps the
//! rows; this module is the domain's way into it.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use caretaker_shared::wire::{self, Inventory, Report};
use tokio::sync::{mpsc, oneshot};

use crate::fleet::{Fleet, Host};
use crate::ingest::Encoding;
use crate::store::recommendations;
use crate::store::sql::{self, Db, SqlError};
use crate::store::{ErrorClass, StoreError};

#[cfg(test)]
mod tests;

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
            crate::store::write_probe(c, caretaker_shared::now_ms())?;
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
    /// The sequence number of the report this copy is as of: when the
    /// store's is another, another replica applied reports since and the
    /// stored state is read instead.
    pub last_seq: u64,
}

impl AssetState {
    pub fn of(h: &Host) -> Self {
        Self {
            inventory: h.inventory.clone(),
            at_ms: h.inventory_at_ms,
            changes: h.asset_changes,
            last_seq: h.last_seq,
        }
    }
}
