//! The store's read connections: a small pool, so that one long read (an
//! inspection report over a month of a large customer) does not make every
//! other page wait behind it. SQLite in WAL mode lets any number of readers
//! see the last commit while the writer carries on, so the only limit is how
//! many reads we let run at once: `[store] readers`.
//!
//! A read waits for a free connection on an async semaphore (no thread is
//! parked while it waits), then runs on the blocking pool holding that one
//! connection, and hands it back when done, also if it panics. Callers see
//! [`read_on`] and a `&Connection`, never a lock.
//!
//! Written here rather than taken from r2d2: r2d2's `get` blocks a thread
//! while it waits (here the wait is an `await`), it runs a reaper thread and
//! health checks a local file does not need, and the whole pool is the few
//! lines below. On PostgreSQL the same pool holds server connections, each
//! read-only, each connecting again by itself after a server restart.

use std::path::Path;
use std::sync::{Arc, Mutex};

use prometheus_client::metrics::gauge::Gauge;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::StoreError;
use super::sql::Db;

/// How much of the store file each read connection maps into memory (the
/// rest is read as usual): address space, not memory in use.
const READ_MAP_BYTES: i64 = 1 << 30;

/// A pool of read-only connections to one store file; cheap to clone.
#[derive(Clone)]
pub struct Readers {
    inner: Arc<Inner>,
}

struct Inner {
    /// One permit per connection: holding a permit means one connection in
    /// `idle` is yours to take.
    permits: Arc<Semaphore>,
    idle: Mutex<Vec<Db>>,
    size: usize,
    /// Reads running now, and reads waiting for a connection.
    in_use: Gauge,
    waiting: Gauge,
}

impl Readers {
    /// Opens `size` read connections (at least one) to the store at `path`,
    /// which must exist and be migrated (the writer opens it first).
    ///
    /// Each is opened read-only and with `query_only` set, so no read can
    /// change the store, even by mistake; each waits up to five seconds on a
    /// lock (a checkpoint, a restore) instead of failing at once.
    pub fn open(path: &Path, size: usize) -> Result<Self, StoreError> {
        let size = size.max(1);
        let conns = (0..size)
            .map(|_| {
                let conn = super::open_read_only(path)?;
                conn.pragma_update(None, "query_only", true)?;
                // Pages are read from the file mapped into memory, not
                // copied in by a system call each: a read that scans a
                // table (the queue's SLA order) costs what the scan costs.
                conn.pragma_update(None, "mmap_size", READ_MAP_BYTES)?;
                Ok(Db::sqlite(conn))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Self::of(conns))
    }

    /// `size` read-only connections (at least one) to the PostgreSQL store
    /// `settings` names.
    pub fn postgres(settings: &postgres::Config, size: usize) -> Result<Self, StoreError> {
        use super::sql::Sql;
        let conns = (0..size.max(1))
            .map(|_| {
                let db = Db::postgres_reconnecting(settings.clone())?;
                db.batch("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")?;
                Ok(db)
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(Self::of(conns))
    }

    fn of(conns: Vec<Db>) -> Self {
        let size = conns.len();
        Self {
            inner: Arc::new(Inner {
                permits: Arc::new(Semaphore::new(size)),
                idle: Mutex::new(conns),
                size,
                in_use: Gauge::default(),
                waiting: Gauge::default(),
            }),
        }
    }

    /// The same pool, counting into these gauges (the collector's
    /// `caretaker_store_reads_in_use` and `caretaker_store_reads_waiting`).
    /// Call before the pool is shared.
    pub fn observed(mut self, in_use: Gauge, waiting: Gauge) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.in_use = in_use;
            inner.waiting = waiting;
        }
        self
    }

    /// How many connections the pool has.
    pub fn size(&self) -> usize {
        self.inner.size
    }

    /// A connection now, if one is free: for tests and tools that know
    /// nothing else reads. Everything else uses [`read_on`].
    pub fn try_lease(&self) -> Option<Lease> {
        let permit = self.inner.permits.clone().try_acquire_owned().ok()?;
        Some(self.take(permit))
    }

    /// Waits for a free connection.
    async fn lease(&self) -> Result<Lease, StoreError> {
        self.inner.waiting.inc();
        let permit = self.inner.permits.clone().acquire_owned().await;
        self.inner.waiting.dec();
        // The semaphore is never closed; should it be, say so.
        let permit = permit.map_err(|_| StoreError::Transaction("the read connections are closed".into()))?;
        Ok(self.take(permit))
    }

    fn take(&self, permit: OwnedSemaphorePermit) -> Lease {
        let conn = self.inner.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        self.inner.in_use.inc();
        Lease {
            conn,
            inner: self.inner.clone(),
            _permit: permit,
        }
    }
}

/// One connection of the pool, handed back when dropped.
pub struct Lease {
    /// Always `Some` until dropped: a permit guarantees an idle connection.
    conn: Option<Db>,
    inner: Arc<Inner>,
    // Released after `drop` has put the connection back (fields drop after
    // `Drop::drop`), so the next holder of a permit finds it there.
    _permit: OwnedSemaphorePermit,
}

impl Lease {
    fn conn(&self) -> Result<&Db, StoreError> {
        let db = self
            .conn
            .as_ref()
            .ok_or_else(|| StoreError::Transaction("no idle read connection behind a permit".into()))?;
        // A server restart closed it: connect again (and stay read-only).
        if db.revive_read_only()? {
            tracing::debug!("read connection to PostgreSQL made again");
        }
        Ok(db)
    }
}

impl std::ops::Deref for Lease {
    type Target = Db;

    #[allow(clippy::expect_used)]
    fn deref(&self) -> &Db {
        // Invariant of the pool (one idle connection per free permit), not
        // anything from outside the process.
        self.conn.as_ref().expect("a lease holds a connection")
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.inner.idle.lock().unwrap_or_else(|p| p.into_inner()).push(conn);
        }
        self.inner.in_use.dec();
    }
}

/// Runs a read on one connection of the pool, off the async workers (SQLite
/// reads block). Waits for a free connection first; other reads run beside
/// it on the others.
pub async fn read_on<T: Send + 'static>(
    readers: &Readers,
    f: impl FnOnce(&Db) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let lease = readers.lease().await?;
    tokio::task::spawn_blocking(move || f(lease.conn()?))
        .await
        .map_err(|e| StoreError::Transaction(e.to_string()))?
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;
    use crate::config::Synchronous;
    use crate::store::sql::{Sql, SqlExt, args};

    fn store(dir: &tempfile::TempDir) -> (rusqlite::Connection, std::path::PathBuf) {
        let db = dir.path().join("store.db");
        let conn = super::super::open(&db, Synchronous::Normal).unwrap();
        conn.execute_batch("CREATE TABLE t (v INTEGER); INSERT INTO t VALUES (1);")
            .unwrap();
        (conn, db)
    }

    /// The first read holds its connection until the second has finished:
    /// with one shared connection (the old design) the second could never
    /// start and the bounded wait below fails the test.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_read_runs_while_another_holds_its_connection() {
        let dir = tempfile::tempdir().unwrap();
        let (_writer, db) = store(&dir);
        let readers = Readers::open(&db, 2).unwrap();
        let (held_tx, held_rx) = mpsc::channel();
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let long = tokio::spawn({
            let readers = readers.clone();
            async move {
                read_on(&readers, move |c| {
                    let v: i64 = c.value::<i64>("SELECT v FROM t", args![])?.unwrap_or(0);
                    held_tx.send(()).unwrap();
                    // Bounded, so a broken pool fails the test instead of hanging it.
                    release_rx
                        .recv_timeout(Duration::from_secs(30))
                        .map_err(|e| StoreError::Transaction(e.to_string()))?;
                    Ok(v)
                })
                .await
            }
        });
        tokio::task::spawn_blocking(move || held_rx.recv_timeout(Duration::from_secs(30)))
            .await
            .unwrap()
            .expect("the first read started");
        let second = tokio::time::timeout(
            Duration::from_secs(30),
            read_on(&readers, |c| {
                Ok(c.value::<i64>("SELECT v + 1 FROM t", args![])?.unwrap_or(0))
            }),
        )
        .await
        .expect("the second read ran while the first held its connection");
        assert_eq!(second.unwrap(), 2);
        release_tx.send(()).unwrap();
        assert_eq!(long.await.unwrap().unwrap(), 1);
        // Both connections are back.
        let (a, b) = (readers.try_lease(), readers.try_lease());
        assert!(a.is_some() && b.is_some() && readers.try_lease().is_none());
    }

    #[tokio::test]
    async fn a_read_connection_cannot_write() {
        let dir = tempfile::tempdir().unwrap();
        let (_writer, db) = store(&dir);
        let readers = Readers::open(&db, 1).unwrap();
        let e = read_on(&readers, |c| Ok(c.execute("INSERT INTO t VALUES (2)", args![])?))
            .await
            .unwrap_err();
        assert!(
            e.to_string().contains("readonly") || e.to_string().contains("read-only"),
            "{e}"
        );
        let e = read_on(&readers, |c| Ok(c.batch("CREATE TEMP TABLE scratch (v)")?))
            .await
            .unwrap_err();
        assert!(
            e.to_string().contains("readonly") || e.to_string().contains("query_only"),
            "{e}"
        );
        let n = read_on(&readers, |c| {
            Ok(c.value::<i64>("SELECT count(*) FROM t", args![])?.unwrap_or(0))
        })
        .await
        .unwrap();
        assert_eq!(n, 1);
    }

    /// A read that panics hands its connection back: the pool of one still reads.
    #[tokio::test]
    async fn a_panicking_read_gives_its_connection_back() {
        let dir = tempfile::tempdir().unwrap();
        let (_writer, db) = store(&dir);
        let readers = Readers::open(&db, 1).unwrap();
        let e = read_on(&readers, |_| -> Result<(), StoreError> { panic!("boom") })
            .await
            .unwrap_err();
        assert!(e.to_string().contains("panic"), "{e}");
        let v = read_on(&readers, |c| {
            Ok(c.value::<i64>("SELECT v FROM t", args![])?.unwrap_or(0))
        })
        .await
        .unwrap();
        assert_eq!(v, 1);
    }

    #[tokio::test]
    async fn reads_see_what_the_writer_committed_after_they_opened() {
        let dir = tempfile::tempdir().unwrap();
        let (writer, db) = store(&dir);
        let readers = Readers::open(&db, 2).unwrap();
        writer.execute("INSERT INTO t VALUES (5)", []).unwrap();
        let sum = read_on(&readers, |c| {
            Ok(c.value::<i64>("SELECT sum(v) FROM t", args![])?.unwrap_or(0))
        })
        .await
        .unwrap();
        assert_eq!(sum, 6);
    }

    #[tokio::test]
    async fn postgres_reads_cannot_write_and_connect_again_after_the_server_closed_them() {
        let Some(addr) = crate::store::testing::postgres_addr() else {
            return;
        };
        // The synchronous client connects off the async workers, as `serve` does.
        let (pg, w, readers) = tokio::task::spawn_blocking(move || {
            let pg = crate::store::testing::PgDatabase::create(&addr).unwrap();
            let w = pg.connect().unwrap();
            w.batch("CREATE TABLE t (v BIGINT); INSERT INTO t VALUES (1)").unwrap();
            let settings = crate::store::postgres::settings(&pg.url(), None).unwrap();
            let readers = Readers::postgres(&settings, 1).unwrap();
            (pg, w, readers)
        })
        .await
        .unwrap();
        let e = read_on(&readers, |c| Ok(c.execute("INSERT INTO t VALUES (2)", args![])?))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("read-only"), "{e}");
        let pid = read_on(&readers, |c| Ok(c.value::<i64>("SELECT pg_backend_pid()", args![])?))
            .await
            .unwrap()
            .unwrap();
        let (pg, w) = tokio::task::spawn_blocking(move || {
            w.query_one("SELECT pg_terminate_backend(?1)", args![pid], |_| Ok(()))
                .unwrap();
            (pg, w)
        })
        .await
        .unwrap();
        // The read that meets the closed connection fails as unavailable (a
        // 503 to its caller); the next one runs on a new connection.
        let mut answers = Vec::new();
        for _ in 0..3 {
            answers.push(
                read_on(&readers, |c| Ok(c.value::<i64>("SELECT v FROM t", args![])?))
                    .await
                    .map_err(|e| e.class()),
            );
        }
        assert!(answers.iter().any(|a| a == &Ok(Some(1))), "{answers:?}");
        assert!(
            answers
                .iter()
                .all(|a| matches!(a, Ok(Some(1)) | Err(crate::store::ErrorClass::Unavailable))),
            "{answers:?}"
        );
        let e = read_on(&readers, |c| Ok(c.execute("INSERT INTO t VALUES (2)", args![])?))
            .await
            .unwrap_err();
        assert!(
            e.to_string().contains("read-only"),
            "the new connection is read-only too: {e}"
        );
        drop(readers);
        tokio::task::spawn_blocking(move || drop((w, pg))).await.unwrap();
    }
}
