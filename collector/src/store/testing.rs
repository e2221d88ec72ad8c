//! Databases for tests: an SQLite store in memory, or a PostgreSQL database
//! of its own on the server `CARETAKER_TEST_POSTGRES` names (`host:port`,
//! trust authentication), created empty and dropped afterwards.
//!
//! When the variable is set the server must answer: a test never skips
//! because PostgreSQL is down.

use std::sync::atomic::{AtomicU32, Ordering};

use super::sql::{Db, SqlError};

/// Runs `f` on a migrated SQLite store in memory and, when a PostgreSQL
/// server is configured, on a migrated database of its own there: a store
/// operation's test shows the same results on both.
pub fn on_both(f: impl Fn(&Db)) {
    let sqlite = super::open_in_memory().unwrap_or_else(|e| panic!("SQLite: {e}"));
    f(&Db::sqlite(sqlite));
    if let Some(addr) = postgres_addr() {
        let (_pg, db) = migrated_postgres(&addr);
        f(&db);
    }
}

/// A migrated PostgreSQL database of its own, and its connection.
fn migrated_postgres(addr: &str) -> (PgDatabase, Db) {
    let pg = PgDatabase::create(addr).unwrap_or_else(|e| panic!("PostgreSQL at {addr}: {e}"));
    let db = pg.connect().unwrap_or_else(|e| panic!("PostgreSQL at {addr}: {e}"));
    super::postgres::migrate(&db).unwrap_or_else(|e| panic!("migrating PostgreSQL: {e}"));
    (pg, db)
}

/// The server `CARETAKER_TEST_STORE=postgresql` runs the tests on: the one
/// `CARETAKER_TEST_POSTGRES` names, which must then be set.
fn selected_postgres() -> String {
    postgres_addr().unwrap_or_else(|| panic!("CARETAKER_TEST_STORE=postgresql needs CARETAKER_TEST_POSTGRES"))
}

/// [`on_both`] on empty databases, without the store's schema.
pub fn on_both_raw(f: impl Fn(&Db)) {
    let sqlite = Db::sqlite(rusqlite::Connection::open_in_memory().unwrap_or_else(|e| panic!("SQLite: {e}")));
    f(&sqlite);
    if let Some(addr) = postgres_addr() {
        let pg = PgDatabase::create(&addr).unwrap_or_else(|e| panic!("PostgreSQL at {addr}: {e}"));
        f(&pg.connect().unwrap_or_else(|e| panic!("PostgreSQL at {addr}: {e}")));
    }
}

/// The PostgreSQL server tests use, when one is configured.
pub fn postgres_addr() -> Option<String> {
    std::env::var("CARETAKER_TEST_POSTGRES").ok().filter(|s| !s.is_empty())
}

/// A PostgreSQL database that lives as long as this value.
pub struct PgDatabase {
    addr: String,
    pub name: String,
}

impl PgDatabase {
    /// Creates an empty database with a name no other test uses.
    pub fn create(addr: &str) -> Result<Self, SqlError> {
        static N: AtomicU32 = AtomicU32::new(0);
        let mut salt = [0u8; 4];
        let _ = getrandom::getrandom(&mut salt);
        let name = format!(
            "caretaker_t{}_{}_{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            hex::encode(salt)
        );
        let mut admin = connect(addr, "postgres")?;
        admin.batch_execute(&format!("CREATE DATABASE {name}"))?;
        Ok(PgDatabase {
            addr: addr.to_owned(),
            name,
        })
    }

    /// The connection URL of this database.
    pub fn url(&self) -> String {
        let (host, port) = self.addr.rsplit_once(':').unwrap_or((&self.addr, "5432"));
        format!("postgres://postgres@{host}:{port}/{}", self.name)
    }

    pub fn connect(&self) -> Result<Db, SqlError> {
        Ok(Db::postgres(connect(&self.addr, &self.name)?))
    }
}

impl Drop for PgDatabase {
    // Dropped inside an async test too: the synchronous client works apart.
    fn drop(&mut self) {
        let (addr, name) = (&self.addr, &self.name);
        apart(|| match connect(addr, "postgres") {
            Ok(mut admin) => {
                if let Err(e) = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")) {
                    eprintln!("cannot drop test database {name}: {e}");
                }
            }
            Err(e) => eprintln!("cannot drop test database {name}: {e}"),
        });
    }
}

/// Runs `f` and returns its answer: on this thread, or, inside an async
/// runtime (where the synchronous PostgreSQL client cannot be created, used
/// or dropped), on a thread of its own, waiting for it. A panic in `f` goes
/// on here.
pub fn apart<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    if tokio::runtime::Handle::try_current().is_err() {
        return f();
    }
    std::thread::scope(|s| s.spawn(f).join()).unwrap_or_else(|p| std::panic::resume_unwind(p))
}

/// Whether the tests run on PostgreSQL (`CARETAKER_TEST_STORE=postgresql`).
pub fn on_postgres() -> bool {
    std::env::var("CARETAKER_TEST_STORE").is_ok_and(|s| s == "postgresql")
}

/// A store as the collector itself opens one, for tests that start a writer
/// and a read pool on it: an SQLite file in a directory of the test's, or,
/// when `CARETAKER_TEST_STORE=postgresql`, a PostgreSQL database of its own,
/// dropped with this value. Every method may be called inside an async
/// test; the connections it returns are used there through the writer, the
/// read pool or [`apart`].
pub struct TestStore {
    place: super::place::Place,
    _pg: Option<PgDatabase>,
}

impl TestStore {
    /// A store to open, in `dir` when it is an SQLite file.
    pub fn new(dir: &std::path::Path) -> Self {
        if on_postgres() {
            let addr = selected_postgres();
            let pg = apart(|| PgDatabase::create(&addr)).unwrap_or_else(|e| panic!("PostgreSQL at {addr}: {e}"));
            let settings = super::postgres::settings(&pg.url(), None).unwrap_or_else(|e| panic!("{e}"));
            return TestStore {
                place: super::place::Place::Postgres(Box::new(settings)),
                _pg: Some(pg),
            };
        }
        TestStore {
            place: super::place::Place::Sqlite {
                file: dir.join("store.db"),
                synchronous: crate::config::Synchronous::Normal,
            },
            _pg: None,
        }
    }

    /// Where the store is.
    pub fn place(&self) -> &super::place::Place {
        &self.place
    }

    /// A writer's connection, the schema brought up to date first.
    pub fn open(&self) -> Db {
        apart(|| self.place.open()).unwrap_or_else(|e| panic!("opening {}: {e}", self.place.describe()))
    }

    /// A read pool of `size` connections (open the store first).
    pub fn readers(&self, size: usize) -> super::Readers {
        apart(|| self.place.readers(size)).unwrap_or_else(|e| panic!("reading {}: {e}", self.place.describe()))
    }
}

fn connect(addr: &str, db: &str) -> Result<postgres::Client, SqlError> {
    let (host, port) = addr.rsplit_once(':').unwrap_or((addr, "5432"));
    let mut cfg = postgres::Config::new();
    cfg.host(host)
        .port(port.parse().unwrap_or(5432))
        .user("postgres")
        .dbname(db);
    Ok(cfg.connect(postgres::NoTls)?)
}

/// An enrolled agent `agent_id` on host `host`, for tests of tables that
/// refer to agents.
pub fn add_agent(db: &dyn super::sql::Sql, agent_id: &str, host: &str) {
    db.execute(
        "INSERT INTO agents(agent_id, credential_hash, host, enrolled_at_ms) VALUES (?1, ?2, ?3, 0)",
        super::sql::args![agent_id, format!("credential of {agent_id}"), host],
    )
    .unwrap_or_else(|e| panic!("adding agent {agent_id}: {e}"));
}

/// Deletes agent `agent_id`'s row, as a store edited by hand may have lost
/// it.
pub fn remove_agent(db: &dyn super::sql::Sql, agent_id: &str) {
    db.execute("DELETE FROM agents WHERE agent_id = ?1", super::sql::args![agent_id])
        .unwrap_or_else(|e| panic!("removing agent {agent_id}: {e}"));
}

/// A migrated store for a test: SQLite in memory, or, when
/// `CARETAKER_TEST_STORE=postgresql`, a PostgreSQL database of its own on
/// the server `CARETAKER_TEST_POSTGRES` names. CI runs the collector's tests
/// once each way.
pub struct TestDb {
    db: Db,
    // Dropped after `db`: the database goes once its connection is closed.
    _pg: Option<PgDatabase>,
}

impl TestDb {
    pub fn new() -> Self {
        if on_postgres() {
            let (pg, db) = migrated_postgres(&selected_postgres());
            return TestDb { db, _pg: Some(pg) };
        }
        let conn = super::open_in_memory().unwrap_or_else(|e| panic!("SQLite: {e}"));
        TestDb {
            db: Db::sqlite(conn),
            _pg: None,
        }
    }
}

impl TestDb {
    /// The connection, for a store writer to own, and what keeps its
    /// PostgreSQL database: keep that until the writer is done with it.
    pub fn into_parts(self) -> (Db, Option<PgDatabase>) {
        (self.db, self._pg)
    }
}

/// A [`TestDb`] for async tests: made, used and dropped apart from the
/// runtime (see [`apart`]).
pub struct SharedTestDb(std::sync::Mutex<TestDb>);

impl SharedTestDb {
    pub fn new() -> Self {
        SharedTestDb(std::sync::Mutex::new(apart(TestDb::new)))
    }

    /// `f` on the store, apart from the runtime.
    pub fn with<T: Send>(&self, f: impl FnOnce(&Db) -> T + Send) -> T {
        apart(|| f(&self.0.lock().unwrap_or_else(|p| p.into_inner())))
    }
}

impl Default for SharedTestDb {
    fn default() -> Self {
        Self::new()
    }
}

impl Default for TestDb {
    fn default() -> Self {
        Self::new()
    }
}

impl std::ops::Deref for TestDb {
    type Target = Db;
    fn deref(&self) -> &Db {
        &self.db
    }
}

super::sql::delegate_sql!(TestDb, |self| &self.db);

/// Sessions of `db`'s PostgreSQL database waiting on a lock now. Call it on
/// a connection outside any transaction: the server's view of its sessions
/// is taken once per transaction.
pub fn sessions_waiting_on_a_lock(db: &dyn super::sql::Sql) -> i64 {
    use super::sql::{SqlExt, args};
    db.value::<i64>(
        "SELECT COUNT(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()",
        args![],
    )
    .unwrap_or_else(|e| panic!("{e}"))
    .unwrap_or(0)
}

/// How many items (cases and their kin) the store holds, for tests that
/// check whether a request made one.
pub fn item_count(db: &dyn super::sql::Sql) -> i64 {
    use super::sql::SqlExt;
    db.query_one("SELECT COUNT(*) FROM items", super::sql::args![], |r| r.get(0))
        .unwrap_or_else(|e| panic!("counting items: {e}"))
}

/// An enrolled agent `agent-{host}` on `host` with `labels` (a JSON object)
/// and one inventory document, for tests of what reads assets.
pub fn add_asset(db: &dyn super::sql::Sql, host: &str, labels: &str, inventory: &str) {
    let agent = format!("agent-{host}");
    add_agent(db, &agent, host);
    set_labels_and_inventory(db, &agent, labels, inventory);
}

/// Agent `agent_id`'s `labels` (a JSON object) and its first inventory
/// document.
pub fn set_labels_and_inventory(db: &dyn super::sql::Sql, agent_id: &str, labels: &str, inventory: &str) {
    for (sql, what) in [
        ("UPDATE agents SET labels = ?2 WHERE agent_id = ?1", labels),
        (
            "INSERT INTO inventory (agent_id, seq, collected_at_ms, doc) VALUES (?1, 1, 0, ?2)",
            inventory,
        ),
    ] {
        db.execute(sql, super::sql::args![agent_id, what])
            .unwrap_or_else(|e| panic!("setting the labels and inventory of {agent_id}: {e}"));
    }
}

/// Agent `agent_id`'s enrolment time, as a test arranges it.
pub fn set_agent_enrolled_at(db: &dyn super::sql::Sql, agent_id: &str, at_ms: i64) {
    db.execute(
        "UPDATE agents SET enrolled_at_ms = ?2 WHERE agent_id = ?1",
        super::sql::args![agent_id, at_ms],
    )
    .unwrap_or_else(|e| panic!("setting when {agent_id} enrolled: {e}"));
}

/// When agent `agent_id` (every agent: `None`) was last seen.
pub fn set_agent_last_seen(db: &dyn super::sql::Sql, agent_id: Option<&str>, at_ms: i64) {
    db.execute(
        "UPDATE agents SET last_seen_ms = ?2 WHERE CAST(?1 AS TEXT) IS NULL OR agent_id = ?1",
        super::sql::args![agent_id, at_ms],
    )
    .unwrap_or_else(|e| panic!("setting when {agent_id:?} was last seen: {e}"));
}

/// Agent `agent_id`'s report interval.
pub fn set_agent_interval(db: &dyn super::sql::Sql, agent_id: &str, secs: i64) {
    db.execute(
        "UPDATE agents SET interval_secs = ?2 WHERE agent_id = ?1",
        super::sql::args![agent_id, secs],
    )
    .unwrap_or_else(|e| panic!("setting the interval of {agent_id}: {e}"));
}

/// Sets agent `agent_id`'s stored labels as given (a JSON object, or not JSON at all).
pub fn set_agent_labels(db: &dyn super::sql::Sql, agent_id: &str, labels: &str) {
    db.execute(
        "UPDATE agents SET labels = ?2 WHERE agent_id = ?1",
        super::sql::args![agent_id, labels],
    )
    .unwrap_or_else(|e| panic!("setting the labels of {agent_id}: {e}"));
}

/// The level of agent `agent_id`'s latest disk reading.
pub fn disk_level(db: &dyn super::sql::Sql, agent_id: &str) -> String {
    use super::sql::SqlExt;
    db.query_one(
        "SELECT level FROM disk_latest WHERE agent_id = ?1",
        super::sql::args![agent_id],
        |r| r.get(0),
    )
    .unwrap_or_else(|e| panic!("reading the disk level of {agent_id}: {e}"))
}

/// The outbox as it stands: (item id, log id, at), oldest first.
pub fn outbox_rows(db: &dyn super::sql::Sql) -> Vec<(i64, i64, i64)> {
    use super::sql::SqlExt;
    db.query(
        "SELECT item_id, log_id, at_ms FROM outbox ORDER BY id",
        super::sql::args![],
        |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
    )
    .unwrap_or_else(|e| panic!("reading the outbox: {e}"))
}

/// The error SQLite gives on a full disk, as the writer sees it.
pub fn sqlite_disk_full() -> super::StoreError {
    super::StoreError::Sql(rusqlite::Error::SqliteFailure(
        rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_FULL),
        None,
    ))
}

/// How many rows `table` holds.
pub fn row_count(db: &dyn super::sql::Sql, table: &str) -> i64 {
    use super::sql::SqlExt;
    db.query_one(&format!("SELECT COUNT(*) FROM {table}"), super::sql::args![], |r| {
        r.get(0)
    })
    .unwrap_or_else(|e| panic!("counting {table}: {e}"))
}

/// The seq of the newest report stored (of the one agent there is).
pub fn latest_seq(db: &dyn super::sql::Sql) -> i64 {
    use super::sql::SqlExt;
    db.query_one("SELECT seq FROM host_latest", super::sql::args![], |r| r.get(0))
        .unwrap_or_else(|e| panic!("reading host_latest: {e}"))
}

/// A statement that fails inside the database (a table that is not there).
pub fn write_to_a_missing_table(db: &dyn super::sql::Sql) -> Result<(), SqlError> {
    db.execute("INSERT INTO no_such_table VALUES (1)", super::sql::args![])
        .map(|_| ())
}

/// Writes the probe row plainly (at `at_ms`), as a small write would.
pub fn put_probe_row(db: &dyn super::sql::Sql, at_ms: i64) -> Result<(), SqlError> {
    db.execute(
        "INSERT INTO store_probe(id, at_ms) VALUES (1, ?1)",
        super::sql::args![at_ms],
    )
    .map(|_| ())
}

/// Writes a megabyte: more than a store near its size limit can take.
pub fn write_a_megabyte(db: &dyn super::sql::Sql) -> Result<(), SqlError> {
    db.batch("CREATE TABLE filler(x); INSERT INTO filler VALUES (zeroblob(1000000));")
}

/// How many pages an SQLite store has.
pub fn sqlite_page_count(conn: &rusqlite::Connection) -> i64 {
    conn.query_row("PRAGMA page_count", [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("reading page_count: {e}"))
}

/// A big queue for timings: `cases` active cases of customer `acme` on
/// 5,000 hosts, opened a minute apart before `now_ms`, under contract
/// `acme-office` (response due 4h, resolution 2d after opening), every
/// fifth on hold awaiting the customer, every seventh unassigned, each with
/// ten log rows (half of them with a person's response).
pub fn fill_big_queue(db: &dyn super::sql::Sql, cases: i64, now_ms: i64) {
    use super::sql::args;
    db.execute(
        "WITH RECURSIVE n(x) AS (SELECT CAST(1 AS BIGINT) UNION ALL SELECT x + 1 FROM n WHERE x < CAST(?1 AS BIGINT)) \
             INSERT INTO items (kind, customer, asset, check_name, component, status, hold_reason, severity, rule, \
             opened_at_ms, updated_at_ms, last_firing_at_ms, occurrences, evidence) \
             SELECT 'case', 'acme', 'host' || (x % 5000), 'disk_failing', 'c' || x, \
             CASE x % 5 WHEN 0 THEN 'on_hold' WHEN 1 THEN 'in_progress' ELSE 'assigned' END, \
             CASE x % 5 WHEN 0 THEN 'awaiting_customer' ELSE NULL END, \
             CASE x % 4 WHEN 0 THEN 'critical' WHEN 1 THEN 'major' WHEN 2 THEN 'warning' ELSE 'info' END, \
             'disk_failing', CAST(?2 AS BIGINT) - x * 60000, CAST(?2 AS BIGINT), CAST(?2 AS BIGINT), 1, '{}' FROM n",
        args![cases, now_ms],
    )
    .unwrap_or_else(|e| panic!("filling the queue: {e}"));
    db.execute(
        "INSERT INTO case_meta (item_id, source, title, contract, skill, assignee, response_due_ms, resolution_due_ms) \
             SELECT id, 'detection', 'Disk failing on ' || asset, 'acme-office', 'hardware', \
             CASE id % 7 WHEN 0 THEN NULL ELSE 'ana' END, opened_at_ms + 14400000, opened_at_ms + 172800000 FROM items",
        args![],
    )
    .unwrap_or_else(|e| panic!("filling the queue: {e}"));
    db.execute(
            "WITH RECURSIVE k(y) AS (SELECT 1 UNION ALL SELECT y + 1 FROM k WHERE y < 10) \
             INSERT INTO item_log (item_id, at_ms, actor, from_status, to_status, comment) \
             SELECT i.id, i.opened_at_ms + k.y * 1000, CASE WHEN k.y = 3 AND i.id % 2 = 0 THEN 'person:ana' ELSE 'rule:x' END, \
             CASE k.y WHEN 1 THEN NULL ELSE 'assigned' END, 'assigned', 'note' FROM items i, k",
        args![],
    )
    .unwrap_or_else(|e| panic!("filling the queue: {e}"));
    super::queue::refill_from_logs(db).unwrap_or_else(|e| panic!("filling the queue: {e}"));
}
