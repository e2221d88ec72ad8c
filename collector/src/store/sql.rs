//! The one place SQL meets a database driver. Everything in `store/` speaks
//! to a [`Db`]: an embedded SQLite file (rusqlite) or a PostgreSQL server
//! (the synchronous `postgres` client: the store writer is a thread of its
//! own and every read runs on a blocking thread, so the domain code stays
//! synchronous on both backends).
//!
//! SQL is written once, in the common subset of both dialects, with
//! numbered parameters `?1`, `?2`, … (rewritten to `$1`, `$2`, … for
//! PostgreSQL). The rules that keep a statement portable:
//! - integers are `BIGINT`-wide on both sides: bind `i64` (or anything
//!   [`Value`] converts from), never compare a column to a bare boolean —
//!   flags are `0`/`1` and compared as `x <> 0`;
//! - upserts are `INSERT … ON CONFLICT (…) DO UPDATE/NOTHING`, new ids come
//!   back with `RETURNING id`;
//! - `COALESCE`, not `IFNULL`; `MAX(a, b)` is spelled with `CASE`; sums are
//!   `CAST(SUM(x) AS BIGINT)` (PostgreSQL sums integers as `NUMERIC`);
//! - JSON documents are read and written whole, in Rust;
//! - a parameter PostgreSQL cannot type from its context (`?1 IS NULL`) is
//!   cast: `CAST(?1 AS TEXT) IS NULL OR x = ?1`; a subquery in `FROM` has
//!   an alias.
//!
//! Where a statement cannot be written once, [`Db::dialect`] tells the
//! store module which one to send.

use std::borrow::Cow;
use std::cell::RefCell;

/// Which database a [`Db`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// What went wrong talking to the database.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    #[error("{0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("{}", pg_message(.0))]
    Postgres(#[from] postgres::Error),
    #[error("column {column}: expected {expected}, found {found}")]
    Type {
        column: usize,
        expected: &'static str,
        found: &'static str,
    },
    #[error("a query expected one row and found none")]
    NoRow,
    #[error("the connection to the database is closed")]
    Closed,
    /// Connecting (again) failed: the server is down, refuses us, or is
    /// not reachable.
    #[error("cannot connect to PostgreSQL: {}", pg_message(.0))]
    Connect(postgres::Error),
}

/// The server's own words for an error it sent (the driver's `Display`
/// says only "db error"), else the driver's.
fn pg_message(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(detail) => format!("{} ({}): {detail}", db.message(), db.code().code()),
            None => format!("{} ({})", db.message(), db.code().code()),
        },
        None => e.to_string(),
    }
}

impl SqlError {
    /// The database cannot take writes now, through no fault of the
    /// statement: a full or failing disk, a read-only or locked file, a
    /// lost or refused server connection. The caller answers 503 and the
    /// sender retries.
    pub fn unavailable(&self) -> bool {
        match self {
            SqlError::Sqlite(e) => {
                use rusqlite::ffi::ErrorCode as C;
                matches!(
                    e.sqlite_error_code(),
                    Some(
                        C::DiskFull
                            | C::SystemIoFailure
                            | C::ReadOnly
                            | C::CannotOpen
                            | C::DatabaseBusy
                            | C::DatabaseLocked
                    )
                )
            }
            SqlError::Postgres(e) => {
                if ends_connection(e) {
                    return true;
                }
                match e.code() {
                    // No code: the connection itself failed.
                    None => true,
                    Some(c) => {
                        let class = &c.code()[..2];
                        // 08: connection exception; 53: insufficient resources
                        // (disk full, out of memory, too many connections);
                        // 57: operator intervention (shutdown, admin cancel);
                        // 58: system error (I/O); 40: serialization failure
                        // or deadlock (retry).
                        matches!(class, "08" | "53" | "57" | "58" | "40")
                            || c == &postgres::error::SqlState::READ_ONLY_SQL_TRANSACTION
                    }
                }
            }
            SqlError::Closed | SqlError::Connect(_) => true,
            _ => false,
        }
    }

    /// A uniqueness constraint refused the row.
    pub fn is_unique_violation(&self) -> bool {
        match self {
            SqlError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => {
                e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    || e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            }
            SqlError::Postgres(e) => e.code() == Some(&postgres::error::SqlState::UNIQUE_VIOLATION),
            _ => false,
        }
    }
}

/// SQLite failures that say the store cannot write now rather than that a
/// statement is wrong: a full disk, an I/O error, a read-only file, another
/// process holding the lock.
pub fn sqlite_cannot_write(e: &rusqlite::Error) -> bool {
    use rusqlite::ffi::ErrorCode as C;
    matches!(
        e.sqlite_error_code(),
        Some(C::DiskFull | C::SystemIoFailure | C::ReadOnly | C::CannotOpen | C::DatabaseBusy | C::DatabaseLocked)
    )
}

/// A parameter bound to a statement.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Null,
    Int(i64),
    Real(f64),
    Text(Cow<'a, str>),
    Blob(Cow<'a, [u8]>),
}

macro_rules! int_value {
    ($($t:ty),*) => {$(
        impl From<$t> for Value<'_> {
            fn from(v: $t) -> Self {
                Value::Int(i64::from(v))
            }
        }
    )*};
}
int_value!(i64, i32, u32, u16, u8, bool);

macro_rules! int_ref_value {
    ($($t:ty),*) => {$(
        impl From<&$t> for Value<'_> {
            fn from(v: &$t) -> Self {
                Value::from(*v)
            }
        }
    )*};
}
int_ref_value!(i64, i32, u32, u16, u8, bool, u64, usize, f64);

impl From<u64> for Value<'_> {
    /// Counters beyond `i64::MAX` do not occur; they would be stored as the
    /// largest value rather than wrap to a negative one.
    fn from(v: u64) -> Self {
        Value::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}

impl From<usize> for Value<'_> {
    fn from(v: usize) -> Self {
        Value::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}

impl From<f64> for Value<'_> {
    fn from(v: f64) -> Self {
        Value::Real(v)
    }
}

impl<'a> From<&'a str> for Value<'a> {
    fn from(v: &'a str) -> Self {
        Value::Text(Cow::Borrowed(v))
    }
}

impl<'a> From<&'a String> for Value<'a> {
    fn from(v: &'a String) -> Self {
        Value::Text(Cow::Borrowed(v.as_str()))
    }
}

impl From<String> for Value<'_> {
    fn from(v: String) -> Self {
        Value::Text(Cow::Owned(v))
    }
}

impl<'a> From<&'a [u8]> for Value<'a> {
    fn from(v: &'a [u8]) -> Self {
        Value::Blob(Cow::Borrowed(v))
    }
}

impl<'a> From<&'a Vec<u8>> for Value<'a> {
    fn from(v: &'a Vec<u8>) -> Self {
        Value::Blob(Cow::Borrowed(v.as_slice()))
    }
}

impl From<Vec<u8>> for Value<'_> {
    fn from(v: Vec<u8>) -> Self {
        Value::Blob(Cow::Owned(v))
    }
}

impl<'a, T: Into<Value<'a>>> From<Option<T>> for Value<'a> {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

impl<'a, T: Clone + Into<Value<'a>>> From<&Option<T>> for Value<'a> {
    fn from(v: &Option<T>) -> Self {
        v.clone().map_or(Value::Null, Into::into)
    }
}

/// Binds a statement's parameters: `args![a, b, c]`.
#[macro_export]
macro_rules! args {
    () => { &[] as &[$crate::store::sql::Value<'_>] };
    ($($v:expr),+ $(,)?) => { &[$($crate::store::sql::Value::from($v)),+][..] };
}
pub use args;

impl rusqlite::ToSql for Value<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null => ValueRef::Null,
            Value::Int(i) => ValueRef::Integer(*i),
            Value::Real(f) => ValueRef::Real(*f),
            Value::Text(s) => ValueRef::Text(s.as_bytes()),
            Value::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

impl postgres::types::ToSql for Value<'_> {
    /// Writes the value as the type the server inferred for the parameter:
    /// an integer bound to an `INTEGER` or a `DOUBLE PRECISION` column, a
    /// flag to a `BOOLEAN`, a null to anything.
    fn to_sql(
        &self,
        ty: &postgres::types::Type,
        out: &mut bytes::BytesMut,
    ) -> Result<postgres::types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
        use postgres::types::{IsNull, Type};
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(i) => match *ty {
                Type::INT8 => i.to_sql(ty, out),
                Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
                Type::FLOAT8 => (*i as f64).to_sql(ty, out),
                Type::BOOL => (*i != 0).to_sql(ty, out),
                _ => i.to_string().to_sql(ty, out),
            },
            Value::Real(f) => match *ty {
                Type::FLOAT4 => (*f as f32).to_sql(ty, out),
                _ => f.to_sql(ty, out),
            },
            Value::Text(s) => s.as_ref().to_sql(ty, out),
            Value::Blob(b) => b.as_ref().to_sql(ty, out),
        }
    }

    fn accepts(_: &postgres::types::Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

/// One column's value as read.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Cell<'r> {
    Null,
    Int(i64),
    Real(f64),
    Text(&'r str),
    Blob(&'r [u8]),
}

impl Cell<'_> {
    fn kind(&self) -> &'static str {
        match self {
            Cell::Null => "null",
            Cell::Int(_) => "an integer",
            Cell::Real(_) => "a real",
            Cell::Text(_) => "text",
            Cell::Blob(_) => "a blob",
        }
    }
}

/// A type a column can be read as.
pub trait FromCell: Sized {
    const EXPECTED: &'static str;
    fn from_cell(c: Cell<'_>) -> Option<Self>;
}

impl FromCell for i64 {
    const EXPECTED: &'static str = "an integer";
    fn from_cell(c: Cell<'_>) -> Option<Self> {
        match c {
            Cell::Int(i) => Some(i),
            _ => None,
        }
    }
}

macro_rules! narrow_int {
    ($($t:ty),*) => {$(
        impl FromCell for $t {
            const EXPECTED: &'static str = concat!("an integer in range of ", stringify!($t));
            fn from_cell(c: Cell<'_>) -> Option<Self> {
                match c {
                    Cell::Int(i) => <$t>::try_from(i).ok(),
                    _ => None,
                }
            }
        }
    )*};
}
narrow_int!(i32, u32, u64, u16, u8, usize);

impl FromCell for bool {
    const EXPECTED: &'static str = "a flag";
    fn from_cell(c: Cell<'_>) -> Option<Self> {
        match c {
            Cell::Int(i) => Some(i != 0),
            _ => None,
        }
    }
}

impl FromCell for f64 {
    const EXPECTED: &'static str = "a number";
    fn from_cell(c: Cell<'_>) -> Option<Self> {
        match c {
            Cell::Real(f) => Some(f),
            // SQLite keeps a whole REAL as an integer when it can.
            Cell::Int(i) => Some(i as f64),
            _ => None,
        }
    }
}

impl FromCell for String {
    const EXPECTED: &'static str = "text";
    fn from_cell(c: Cell<'_>) -> Option<Self> {
        match c {
            Cell::Text(s) => Some(s.to_owned()),
            _ => None,
        }
    }
}

impl FromCell for Vec<u8> {
    const EXPECTED: &'static str = "a blob";
    fn from_cell(c: Cell<'_>) -> Option<Self> {
        match c {
            Cell::Blob(b) => Some(b.to_vec()),
            _ => None,
        }
    }
}

impl<T: FromCell> FromCell for Option<T> {
    const EXPECTED: &'static str = T::EXPECTED;
    fn from_cell(c: Cell<'_>) -> Option<Self> {
        match c {
            Cell::Null => Some(None),
            c => T::from_cell(c).map(Some),
        }
    }
}

/// One result row.
pub enum Row<'r> {
    Sqlite(&'r rusqlite::Row<'r>),
    Postgres(&'r postgres::Row),
}

impl Row<'_> {
    /// Column `idx` (from 0) as `T`.
    pub fn get<T: FromCell>(&self, idx: usize) -> Result<T, SqlError> {
        let cell = self.cell(idx)?;
        T::from_cell(cell).ok_or(SqlError::Type {
            column: idx,
            expected: T::EXPECTED,
            found: cell.kind(),
        })
    }

    /// Column `idx` as it is, for the caller to match on.
    pub fn cell(&self, idx: usize) -> Result<Cell<'_>, SqlError> {
        match self {
            Row::Sqlite(r) => {
                use rusqlite::types::ValueRef;
                Ok(match r.get_ref(idx)? {
                    ValueRef::Null => Cell::Null,
                    ValueRef::Integer(i) => Cell::Int(i),
                    ValueRef::Real(f) => Cell::Real(f),
                    ValueRef::Text(t) => Cell::Text(std::str::from_utf8(t).map_err(|_| SqlError::Type {
                        column: idx,
                        expected: "UTF-8 text",
                        found: "bytes",
                    })?),
                    ValueRef::Blob(b) => Cell::Blob(b),
                })
            }
            Row::Postgres(r) => pg_cell(r, idx),
        }
    }
}

fn pg_cell(r: &postgres::Row, idx: usize) -> Result<Cell<'_>, SqlError> {
    use postgres::types::Type;
    let Some(col) = r.columns().get(idx) else {
        return Err(SqlError::Type {
            column: idx,
            expected: "a column",
            found: "no such column",
        });
    };
    let ty = col.type_().clone();
    Ok(match ty {
        Type::INT8 => r.try_get::<_, Option<i64>>(idx)?.map_or(Cell::Null, Cell::Int),
        Type::INT4 => r
            .try_get::<_, Option<i32>>(idx)?
            .map_or(Cell::Null, |i| Cell::Int(i.into())),
        Type::INT2 => r
            .try_get::<_, Option<i16>>(idx)?
            .map_or(Cell::Null, |i| Cell::Int(i.into())),
        Type::BOOL => r
            .try_get::<_, Option<bool>>(idx)?
            .map_or(Cell::Null, |b| Cell::Int(b.into())),
        Type::FLOAT8 => r.try_get::<_, Option<f64>>(idx)?.map_or(Cell::Null, Cell::Real),
        Type::FLOAT4 => r
            .try_get::<_, Option<f32>>(idx)?
            .map_or(Cell::Null, |f| Cell::Real(f.into())),
        Type::BYTEA => r.try_get::<_, Option<&[u8]>>(idx)?.map_or(Cell::Null, Cell::Blob),
        _ => r.try_get::<_, Option<&str>>(idx)?.map_or(Cell::Null, Cell::Text),
    })
}

/// Rewrites `?N` parameters to PostgreSQL's `$N`, leaving quoted text alone.
pub fn to_postgres(sql: &str) -> Cow<'_, str> {
    if !sql.contains('?') {
        return Cow::Borrowed(sql);
    }
    let mut out = String::with_capacity(sql.len() + 8);
    let mut quoted = false;
    for c in sql.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                out.push(c);
            }
            '?' if !quoted => out.push('$'),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

enum Inner {
    Sqlite(rusqlite::Connection),
    /// Behind a cell: the postgres client wants `&mut` for every statement,
    /// while the store passes `&Db` around, as rusqlite allows. Rows are
    /// read whole before a caller sees them, so a caller may run another
    /// statement while it walks them.
    Postgres(Box<Pg>),
}

struct Pg {
    /// Always `Some` until dropped (see `Drop for Pg`).
    client: RefCell<Option<postgres::Client>>,
    /// Statements prepared on this connection, by their SQL text as
    /// written: each is parsed and planned once, not at every call.
    prepared: RefCell<std::collections::HashMap<String, postgres::Statement>>,
    /// Where to connect again once the server has closed the connection (a
    /// restart, a failover); `None`: this connection is the only one.
    settings: Option<postgres::Config>,
    /// A statement failed in a way that means the server is gone from this
    /// connection (it terminated the session, the socket broke), even if
    /// the driver has not marked the client closed yet: the next
    /// transaction connects again rather than meet the dead socket.
    lost: std::cell::Cell<bool>,
}

/// Whether a PostgreSQL error leaves the connection unusable: the client is
/// closed, the socket failed, the server reported a connection exception
/// (class 08) or ended the session (admin or crash shutdown, not accepting
/// connections now). The server sends its FATAL message before it closes
/// the socket, so a caller can see it while `is_closed` is still false.
fn ends_connection(e: &postgres::Error) -> bool {
    use postgres::error::SqlState;
    if e.is_closed() {
        return true;
    }
    if std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>()) {
        return true;
    }
    e.code().is_some_and(|c| {
        c.code().starts_with("08")
            || *c == SqlState::ADMIN_SHUTDOWN
            || *c == SqlState::CRASH_SHUTDOWN
            || *c == SqlState::CANNOT_CONNECT_NOW
    })
}

/// The postgres client runs a small runtime of its own, which must not be
/// dropped on an async worker thread (tokio refuses): a client let go there
/// is closed on a thread of its own.
impl Drop for Pg {
    fn drop(&mut self) {
        let Some(client) = self.client.get_mut().take() else {
            return;
        };
        if tokio::runtime::Handle::try_current().is_err() {
            return drop(client);
        }
        if let Err(e) = std::thread::Builder::new()
            .name("pg-close".into())
            .spawn(move || drop(client))
        {
            tracing::warn!(error = %e, "cannot close a PostgreSQL connection apart");
        }
    }
}

/// Prepared statements kept per connection (on either backend); a store has
/// a few hundred, so this bound is only a guard against SQL built at run
/// time.
const MAX_PREPARED: usize = 1024;

impl Pg {
    fn with<T>(&self, f: impl FnOnce(&mut postgres::Client) -> Result<T, postgres::Error>) -> Result<T, SqlError> {
        let mut client = self.client.borrow_mut();
        let c = client.as_mut().ok_or(SqlError::Closed)?;
        f(c).map_err(|e| {
            if ends_connection(&e) {
                self.lost.set(true);
            }
            SqlError::Postgres(e)
        })
    }

    fn statement(&self, sql: &str) -> Result<postgres::Statement, SqlError> {
        if let Some(st) = self.prepared.borrow().get(sql) {
            return Ok(st.clone());
        }
        let st = self.with(|c| c.prepare(to_postgres(sql).as_ref()))?;
        let mut cache = self.prepared.borrow_mut();
        if cache.len() >= MAX_PREPARED {
            cache.clear();
        }
        cache.insert(sql.to_owned(), st.clone());
        Ok(st)
    }
}

/// A connection to the store's database.
pub struct Db {
    inner: Inner,
    /// Rows changed through this connection (PostgreSQL; SQLite counts its own).
    changed: std::cell::Cell<u64>,
}

impl Db {
    pub fn sqlite(conn: rusqlite::Connection) -> Self {
        // Every statement is prepared through the connection's cache, which
        // keeps 16 by default: fewer than one report's path runs in turn, so
        // each was parsed again at every use.
        conn.set_prepared_statement_cache_capacity(MAX_PREPARED);
        Db {
            inner: Inner::Sqlite(conn),
            changed: Default::default(),
        }
    }

    pub fn postgres(client: postgres::Client) -> Self {
        Db {
            inner: Inner::Postgres(Box::new(Pg {
                client: RefCell::new(Some(client)),
                prepared: RefCell::default(),
                settings: None,
                lost: Default::default(),
            })),
            changed: Default::default(),
        }
    }

    /// A PostgreSQL connection that connects again by itself, at the next
    /// transaction or read, after the server closed it.
    pub fn postgres_reconnecting(settings: postgres::Config) -> Result<Self, SqlError> {
        let client = settings.connect(postgres::NoTls).map_err(SqlError::Connect)?;
        let mut db = Db::postgres(client);
        if let Inner::Postgres(pg) = &mut db.inner {
            pg.settings = Some(settings);
        }
        Ok(db)
    }

    /// Connects again if the server closed this connection and it knows
    /// where to. Call it between transactions only: a transaction does not
    /// survive its connection.
    pub fn revive(&self) -> Result<bool, SqlError> {
        let Inner::Postgres(pg) = &self.inner else {
            return Ok(false);
        };
        let Some(settings) = &pg.settings else {
            return Ok(false);
        };
        if !pg.lost.get() && !pg.client.borrow().as_ref().is_none_or(|c| c.is_closed()) {
            return Ok(false);
        }
        let client = settings.connect(postgres::NoTls).map_err(SqlError::Connect)?;
        *pg.client.borrow_mut() = Some(client);
        pg.prepared.borrow_mut().clear();
        pg.lost.set(false);
        tracing::info!("connected to PostgreSQL again");
        Ok(true)
    }

    /// [`Db::revive`] for a read connection: a new one is read-only too.
    pub fn revive_read_only(&self) -> Result<bool, SqlError> {
        let again = self.revive()?;
        if again {
            self.batch("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")?;
        }
        Ok(again)
    }

    /// Rows inserted, updated or deleted through this connection so far:
    /// whether a transaction wrote anything.
    pub fn total_changes(&self) -> u64 {
        match &self.inner {
            Inner::Sqlite(c) => c.total_changes(),
            Inner::Postgres(_) => self.changed.get(),
        }
    }

    /// The SQLite connection underneath, for what only SQLite has (the
    /// online backup, `quick_check`, WAL checkpoints).
    pub fn as_sqlite(&self) -> Option<&rusqlite::Connection> {
        match &self.inner {
            Inner::Sqlite(c) => Some(c),
            Inner::Postgres(_) => None,
        }
    }
}

/// A connection, transaction or savepoint statements run on. Store
/// operations take `&dyn Sql`, so they run on a [`Db`] of either backend and
/// on an SQLite connection or transaction the caller holds.
pub trait Sql {
    fn dialect(&self) -> Dialect;

    /// Runs one statement; the number of rows it changed.
    fn execute(&self, sql: &str, args: &[Value<'_>]) -> Result<u64, SqlError>;

    /// Runs statements without parameters (schema changes, transaction
    /// control).
    fn batch(&self, sql: &str) -> Result<(), SqlError>;

    /// Calls `each` with every row, in order.
    fn for_each_row(
        &self,
        sql: &str,
        args: &[Value<'_>],
        each: &mut dyn FnMut(&Row<'_>) -> Result<(), SqlError>,
    ) -> Result<(), SqlError>;
}

/// Reading rows into values, for every [`Sql`].
pub trait SqlExt: Sql {
    /// Calls `each` with every row, in order.
    fn query_each(
        &self,
        sql: &str,
        args: &[Value<'_>],
        mut each: impl FnMut(&Row<'_>) -> Result<(), SqlError>,
    ) -> Result<(), SqlError> {
        self.for_each_row(sql, args, &mut each)
    }

    /// Every row, each turned into a `T` by `f`.
    fn query<T>(
        &self,
        sql: &str,
        args: &[Value<'_>],
        mut f: impl FnMut(&Row<'_>) -> Result<T, SqlError>,
    ) -> Result<Vec<T>, SqlError> {
        let mut out = Vec::new();
        self.for_each_row(sql, args, &mut |r| {
            out.push(f(r)?);
            Ok(())
        })?;
        Ok(out)
    }

    /// The first row, if any, turned into a `T` by `f`.
    fn query_opt<T>(
        &self,
        sql: &str,
        args: &[Value<'_>],
        f: impl FnOnce(&Row<'_>) -> Result<T, SqlError>,
    ) -> Result<Option<T>, SqlError> {
        let mut f = Some(f);
        let mut out = None;
        self.for_each_row(sql, args, &mut |r| {
            if let Some(f) = f.take() {
                out = Some(f(r)?);
            }
            Ok(())
        })?;
        Ok(out)
    }

    /// The first row, which must exist (an aggregate, a `RETURNING`).
    fn query_one<T>(
        &self,
        sql: &str,
        args: &[Value<'_>],
        f: impl FnOnce(&Row<'_>) -> Result<T, SqlError>,
    ) -> Result<T, SqlError> {
        self.query_opt(sql, args, f)?.ok_or(SqlError::NoRow)
    }

    /// The single value of the first row, if any.
    fn value<T: FromCell>(&self, sql: &str, args: &[Value<'_>]) -> Result<Option<T>, SqlError> {
        self.query_opt(sql, args, |r| r.get(0))
    }

    /// Every row of `sql` for the ids `ids`, each turned into a `T` by `f`:
    /// `sql` names them as `{ids}` (in `… IN ({ids})`), and is run over
    /// [`IDS_AT_ONCE`] of them at a time, the last batch filled up with an
    /// id no row has, so the statement is prepared once whatever the count.
    /// Rows come batch after batch, each batch in `sql`'s order.
    fn query_ids<T>(
        &self,
        sql: &str,
        ids: &[i64],
        mut f: impl FnMut(&Row<'_>) -> Result<T, SqlError>,
    ) -> Result<Vec<T>, SqlError> {
        let params: Vec<String> = (1..=IDS_AT_ONCE).map(|n| format!("?{n}")).collect();
        let sql = sql.replace("{ids}", &params.join(", "));
        let mut out = Vec::new();
        for batch in ids.chunks(IDS_AT_ONCE) {
            let mut a: Vec<Value<'_>> = batch.iter().map(|id| Value::from(*id)).collect();
            a.resize_with(IDS_AT_ONCE, || Value::from(NO_ID));
            self.for_each_row(&sql, &a, &mut |r| {
                out.push(f(r)?);
                Ok(())
            })?;
        }
        Ok(out)
    }
}

/// How many ids [`SqlExt::query_ids`] asks for in one statement.
pub const IDS_AT_ONCE: usize = 100;

/// An id no row has (every table's ids count up from 1).
const NO_ID: i64 = -1;

impl<S: Sql + ?Sized> SqlExt for S {}

impl Sql for rusqlite::Connection {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn execute(&self, sql: &str, args: &[Value<'_>]) -> Result<u64, SqlError> {
        let mut st = self.prepare_cached(sql)?;
        let n = st.execute(rusqlite::params_from_iter(args.iter()))?;
        Ok(n as u64)
    }

    fn batch(&self, sql: &str) -> Result<(), SqlError> {
        // Transaction control runs for every job of a batch: one statement
        // is prepared once (`execute_batch` parses its text at every call).
        if is_one_transaction_statement(sql) {
            self.prepare_cached(sql)?.execute([])?;
            return Ok(());
        }
        Ok(self.execute_batch(sql)?)
    }

    fn for_each_row(
        &self,
        sql: &str,
        args: &[Value<'_>],
        each: &mut dyn FnMut(&Row<'_>) -> Result<(), SqlError>,
    ) -> Result<(), SqlError> {
        let mut st = self.prepare_cached(sql)?;
        let mut rows = st.query(rusqlite::params_from_iter(args.iter()))?;
        while let Some(r) = rows.next()? {
            each(&Row::Sqlite(r))?;
        }
        Ok(())
    }
}

/// Whether `sql` is one transaction-control statement (`BEGIN`, `COMMIT`,
/// `SAVEPOINT x`, `RELEASE SAVEPOINT x`, `ROLLBACK`), not a script.
fn is_one_transaction_statement(sql: &str) -> bool {
    const CONTROL: [&str; 5] = ["BEGIN", "COMMIT", "SAVEPOINT ", "RELEASE ", "ROLLBACK"];
    !sql.contains(';') && CONTROL.iter().any(|c| sql.starts_with(c))
}

/// `Sql` for a type that runs its statements on another `Sql` it holds:
/// `delegate_sql!(Type, |this| &this.inner)`.
macro_rules! delegate_sql {
    ($t:ty, |$this:ident| $inner:expr) => {
        impl $crate::store::sql::Sql for $t {
            fn dialect(&$this) -> $crate::store::sql::Dialect {
                $crate::store::sql::Sql::dialect($inner)
            }
            fn execute(
                &$this,
                sql: &str,
                args: &[$crate::store::sql::Value<'_>],
            ) -> Result<u64, $crate::store::sql::SqlError> {
                $crate::store::sql::Sql::execute($inner, sql, args)
            }
            fn batch(&$this, sql: &str) -> Result<(), $crate::store::sql::SqlError> {
                $crate::store::sql::Sql::batch($inner, sql)
            }
            fn for_each_row(
                &$this,
                sql: &str,
                args: &[$crate::store::sql::Value<'_>],
                each: &mut dyn FnMut(&$crate::store::sql::Row<'_>) -> Result<(), $crate::store::sql::SqlError>,
            ) -> Result<(), $crate::store::sql::SqlError> {
                $crate::store::sql::Sql::for_each_row($inner, sql, args, each)
            }
        }
    };
}
#[cfg_attr(not(test), allow(unused_imports))]
pub(crate) use delegate_sql;

// SQLite transactions and savepoints are connections to run on.
delegate_sql!(rusqlite::Transaction<'_>, |self| &**self as &rusqlite::Connection);
delegate_sql!(rusqlite::Savepoint<'_>, |self| &**self as &rusqlite::Connection);

impl Sql for Db {
    fn dialect(&self) -> Dialect {
        match self.inner {
            Inner::Sqlite(_) => Dialect::Sqlite,
            Inner::Postgres(_) => Dialect::Postgres,
        }
    }

    fn execute(&self, sql: &str, args: &[Value<'_>]) -> Result<u64, SqlError> {
        match &self.inner {
            Inner::Sqlite(c) => Sql::execute(c, sql, args),
            Inner::Postgres(pg) => {
                let refs: Vec<&(dyn postgres::types::ToSql + Sync)> = args.iter().map(|v| v as _).collect();
                let st = pg.statement(sql)?;
                let n = pg.with(|c| c.execute(&st, &refs))?;
                self.changed.set(self.changed.get().saturating_add(n));
                Ok(n)
            }
        }
    }

    fn batch(&self, sql: &str) -> Result<(), SqlError> {
        match &self.inner {
            Inner::Sqlite(c) => Sql::batch(c, sql),
            Inner::Postgres(pg) => pg.with(|c| c.batch_execute(sql)),
        }
    }

    fn for_each_row(
        &self,
        sql: &str,
        args: &[Value<'_>],
        each: &mut dyn FnMut(&Row<'_>) -> Result<(), SqlError>,
    ) -> Result<(), SqlError> {
        match &self.inner {
            Inner::Sqlite(c) => c.for_each_row(sql, args, each),
            Inner::Postgres(pg) => {
                let refs: Vec<&(dyn postgres::types::ToSql + Sync)> = args.iter().map(|v| v as _).collect();
                // Read whole before any row is handed out: the caller may run
                // another statement while it walks them.
                let st = pg.statement(sql)?;
                let rows = pg.with(|c| c.query(&st, &refs))?;
                for r in &rows {
                    each(&Row::Postgres(r))?;
                }
                Ok(())
            }
        }
    }
}

impl Db {
    /// Starts a transaction; it rolls back unless committed.
    pub fn transaction(&self) -> Result<Tx<'_>, SqlError> {
        self.revive()?;
        self.batch("BEGIN")?;
        Ok(Tx {
            db: self,
            savepoint: None,
            done: false,
        })
    }
}

impl Db {
    /// A read transaction whose every statement sees the same committed
    /// state (PostgreSQL's `REPEATABLE READ`; an SQLite transaction always
    /// does): for a report built from many queries.
    pub fn snapshot(&self) -> Result<Tx<'_>, SqlError> {
        self.revive()?;
        self.batch(match self.dialect() {
            Dialect::Sqlite => "BEGIN",
            Dialect::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        })?;
        Ok(Tx {
            db: self,
            savepoint: None,
            done: false,
        })
    }
}

/// A transaction or a savepoint inside one; rolls back when dropped
/// uncommitted.
pub struct Tx<'a> {
    db: &'a Db,
    savepoint: Option<String>,
    done: bool,
}

impl<'a> Tx<'a> {
    /// A savepoint inside this transaction: a job that fails rolls back to
    /// it alone.
    pub fn savepoint(&self, name: &str) -> Result<Tx<'a>, SqlError> {
        self.db.batch(&format!("SAVEPOINT {name}"))?;
        Ok(Tx {
            db: self.db,
            savepoint: Some(name.to_owned()),
            done: false,
        })
    }

    pub fn commit(mut self) -> Result<(), SqlError> {
        self.done = true;
        match &self.savepoint {
            None => self.db.batch("COMMIT"),
            Some(n) => self.db.batch(&format!("RELEASE SAVEPOINT {n}")),
        }
    }

    pub fn rollback(mut self) -> Result<(), SqlError> {
        self.done = true;
        self.undo()
    }

    fn undo(&self) -> Result<(), SqlError> {
        match &self.savepoint {
            None => self.db.batch("ROLLBACK"),
            Some(n) => self
                .db
                .batch(&format!("ROLLBACK TO SAVEPOINT {n}; RELEASE SAVEPOINT {n}")),
        }
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if !self.done
            && let Err(e) = self.undo()
        {
            tracing::warn!(error = %e, "cannot roll back");
        }
    }
}

delegate_sql!(Tx<'_>, |self| self.db);

impl std::ops::Deref for Tx<'_> {
    type Target = Db;
    fn deref(&self) -> &Db {
        self.db
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::store::testing::on_both_raw as on_both;

    const TABLE: &str = "CREATE TABLE t (id BIGINT PRIMARY KEY, name TEXT NOT NULL UNIQUE, \
        score DOUBLE PRECISION, body BYTEA, flag BIGINT NOT NULL DEFAULT 0)";

    fn table(db: &Db) {
        match db.dialect() {
            Dialect::Sqlite => db.batch(&TABLE.replace("BYTEA", "BLOB")).unwrap(),
            Dialect::Postgres => db.batch(TABLE).unwrap(),
        }
    }

    #[test]
    fn one_statement_reads_and_writes_the_same_on_both_databases() {
        on_both(|db| {
            table(db);
            let body = vec![0u8, 159, 146, 150];
            let n = db
                .execute(
                    "INSERT INTO t (id, name, score, body, flag) VALUES (?1, ?2, ?3, ?4, ?5)",
                    args![1i64, "a'?b", 0.1 + 0.2, &body, true],
                )
                .unwrap();
            assert_eq!(n, 1);
            db.execute(
                "INSERT INTO t (id, name, score, body) VALUES (?1, ?2, ?3, ?4)",
                args![2i64, "b", None::<f64>, None::<Vec<u8>>],
            )
            .unwrap();
            let rows = db
                .query(
                    "SELECT id, name, score, body, flag FROM t WHERE id >= ?1 ORDER BY id",
                    args![1u32],
                    |r| {
                        Ok((
                            r.get::<i64>(0)?,
                            r.get::<String>(1)?,
                            r.get::<Option<f64>>(2)?,
                            r.get::<Option<Vec<u8>>>(3)?,
                            r.get::<bool>(4)?,
                        ))
                    },
                )
                .unwrap();
            assert_eq!(
                rows,
                vec![
                    (1, "a'?b".to_string(), Some(0.1 + 0.2), Some(body.clone()), true),
                    (2, "b".to_string(), None, None, false),
                ]
            );
            // A placeholder inside quotes is text, not a parameter.
            let lit: Option<String> = db.value("SELECT name FROM t WHERE name = 'a''?b'", args![]).unwrap();
            assert_eq!(lit.as_deref(), Some("a'?b"));
            let sum: Option<i64> = db.value("SELECT CAST(SUM(id) AS BIGINT) FROM t", args![]).unwrap();
            assert_eq!(sum, Some(3));
            let upsert = "INSERT INTO t (id, name) VALUES (?1, ?2) \
                ON CONFLICT (id) DO UPDATE SET name = excluded.name RETURNING id";
            let id: i64 = db.query_one(upsert, args![2i64, "b2"], |r| r.get(0)).unwrap();
            assert_eq!(id, 2);
            let err = db
                .execute("INSERT INTO t (id, name) VALUES (?1, ?2)", args![3i64, "b2"])
                .unwrap_err();
            assert!(err.is_unique_violation(), "{err}");
            assert!(!err.unavailable(), "{err}");
            let wrong = db.query_one("SELECT name FROM t WHERE id = 1", args![], |r| r.get::<i64>(0));
            assert!(matches!(wrong, Err(SqlError::Type { column: 0, .. })), "{wrong:?}");
        });
    }

    #[test]
    fn a_failed_savepoint_rolls_back_alone_and_a_dropped_transaction_entirely() {
        on_both(|db| {
            table(db);
            let tx = db.transaction().unwrap();
            tx.execute("INSERT INTO t (id, name) VALUES (1, 'kept')", args![])
                .unwrap();
            let sp = tx.savepoint("job").unwrap();
            sp.execute("INSERT INTO t (id, name) VALUES (2, 'undone')", args![])
                .unwrap();
            // A refused statement: on PostgreSQL this aborts the transaction
            // until the savepoint is rolled back.
            assert!(
                sp.execute("INSERT INTO t (id, name) VALUES (3, 'kept')", args![])
                    .is_err()
            );
            drop(sp);
            let sp = tx.savepoint("job").unwrap();
            sp.execute("INSERT INTO t (id, name) VALUES (4, 'four')", args![])
                .unwrap();
            sp.commit().unwrap();
            tx.commit().unwrap();
            let names = db
                .query("SELECT name FROM t ORDER BY id", args![], |r| r.get::<String>(0))
                .unwrap();
            assert_eq!(names, vec!["kept", "four"]);
            {
                let tx = db.transaction().unwrap();
                tx.execute("DELETE FROM t", args![]).unwrap();
            }
            let n: Option<i64> = db.value("SELECT COUNT(*) FROM t", args![]).unwrap();
            assert_eq!(n, Some(2));
        });
    }

    #[test]
    fn parameters_become_dollar_numbers_outside_quotes_only() {
        assert_eq!(
            to_postgres("SELECT ?1, '?2' WHERE a = ?2"),
            "SELECT $1, '?2' WHERE a = $2"
        );
        assert!(matches!(to_postgres("SELECT 1"), Cow::Borrowed(_)));
    }

    #[test]
    fn a_connection_the_server_ended_connects_again_even_before_the_driver_sees_it_closed() {
        let Some(addr) = crate::store::testing::postgres_addr() else {
            return;
        };
        let pg = crate::store::testing::PgDatabase::create(&addr).unwrap();
        let settings = crate::store::postgres::settings(&pg.url(), None).unwrap();
        let db = Db::postgres_reconnecting(settings).unwrap();
        db.batch("CREATE TABLE t (id BIGINT PRIMARY KEY)").unwrap();
        let before = db.total_changes();
        db.execute("INSERT INTO t VALUES (1)", args![]).unwrap();
        assert_eq!(db.total_changes(), before + 1);
        let pid: i32 = db
            .value("SELECT pg_backend_pid()", args![])
            .unwrap()
            .map(|p: i64| p as i32)
            .unwrap();
        let admin = pg.connect().unwrap();
        admin
            .query_one("SELECT pg_terminate_backend(?1)", args![pid], |_| Ok(()))
            .unwrap();
        // The statement that meets the closed connection fails as unavailable…
        let mut failed = None;
        for _ in 0..50 {
            match db.value::<i64>("SELECT COUNT(*) FROM t", args![]) {
                Ok(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        let e = failed.expect("the terminated connection fails");
        assert!(e.unavailable(), "{e}");
        // …and the connection is replaced at once, whether the failure was
        // the server's last word (57P01, socket not yet seen closed) or the
        // broken socket itself…
        assert!(db.revive().unwrap(), "the ended connection is replaced after {e}");
        // …so the next transaction runs on the new one.
        let tx = db.transaction().unwrap();
        tx.execute("INSERT INTO t VALUES (2)", args![]).unwrap();
        tx.commit().unwrap();
        let n: Option<i64> = db.value("SELECT COUNT(*) FROM t", args![]).unwrap();
        assert_eq!(n, Some(2));
    }
}
