//! Copying an SQLite store into an empty PostgreSQL database
//! (`caretaker-collector migrate-store`).
//!
//! The copy reads one snapshot of the SQLite file (a read transaction, so a
//! collector still writing to it cannot tear it) and writes everything in
//! one PostgreSQL transaction: either every table arrives, with its row
//! count checked against the snapshot, or nothing does. Identity sequences
//! are moved past the highest copied id, so the next case gets the next
//! number rather than a collision.

use std::collections::{BTreeMap, BTreeSet};

use super::postgres::{MigrateError, migrate};
use super::sql::{Cell, Db, Dialect, Row, Sql, SqlError, SqlExt, Value, args};

/// Rows sent per INSERT: fewer round trips, well under PostgreSQL's 65,535
/// parameters for the widest table.
const ROWS_PER_INSERT: usize = 200;

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error(transparent)]
    Sql(#[from] SqlError),
    #[error("preparing the PostgreSQL schema: {0}")]
    Migrate(#[from] MigrateError),
    #[error("the source must be an SQLite store and the target a PostgreSQL one")]
    Backends,
    #[error("the target is not empty: table {table} holds {rows} rows; migrate-store only fills a new, empty database")]
    NotEmpty { table: String, rows: i64 },
    #[error("table {table} is in {present} but not in {missing}: the two schemas differ")]
    MissingTable {
        table: String,
        present: &'static str,
        missing: &'static str,
    },
    #[error("table {table}: columns differ (SQLite: {sqlite}; PostgreSQL: {postgres})")]
    Columns {
        table: String,
        sqlite: String,
        postgres: String,
    },
    #[error(
        "table {table}: {sqlite} rows in the SQLite store but {postgres} in PostgreSQL after copying; nothing was kept"
    )]
    Count { table: String, sqlite: i64, postgres: i64 },
    #[error("table {table}, row {row}: {source}")]
    Row { table: String, row: i64, source: SqlError },
}

/// What was copied: every table with its row count, in copy order.
#[derive(Debug, Default)]
pub struct Copied {
    pub tables: Vec<(String, i64)>,
}

impl Copied {
    pub fn rows(&self) -> i64 {
        self.tables.iter().map(|t| t.1).sum()
    }
}

/// Copies every table of the SQLite store `src` into the PostgreSQL
/// database `dst`, which gets the store's schema first and must hold no
/// rows. `progress` hears each table as it is done.
pub fn copy_sqlite_to_postgres(src: &Db, dst: &Db, mut progress: impl FnMut(&str, i64)) -> Result<Copied, CopyError> {
    if src.dialect() != Dialect::Sqlite || dst.dialect() != Dialect::Postgres {
        return Err(CopyError::Backends);
    }
    migrate(dst)?;
    let pg_tables = postgres_columns(dst)?;
    for table in pg_tables.keys() {
        let rows: i64 = dst
            .value(&format!("SELECT COUNT(*) FROM {}", quote(table)), args![])?
            .unwrap_or(0);
        if rows > 0 {
            return Err(CopyError::NotEmpty {
                table: table.clone(),
                rows,
            });
        }
    }

    // One snapshot of the source for the copy and the counts alike.
    src.batch("BEGIN")?;
    let result = copy_tables(src, dst, &pg_tables, &mut progress);
    // A read transaction: ending it changes nothing.
    if let Err(e) = src.batch("ROLLBACK") {
        tracing::warn!(error = %e, "ending the read of the SQLite store");
    }
    result
}

fn copy_tables(
    src: &Db,
    dst: &Db,
    pg_tables: &BTreeMap<String, Vec<String>>,
    progress: &mut impl FnMut(&str, i64),
) -> Result<Copied, CopyError> {
    let sqlite_tables = sqlite_tables(src)?;
    for t in pg_tables.keys() {
        if !sqlite_tables.iter().any(|(name, _)| name == t) {
            return Err(CopyError::MissingTable {
                table: t.clone(),
                present: "PostgreSQL",
                missing: "the SQLite store",
            });
        }
    }
    let order = copy_order(dst, sqlite_tables.iter().map(|(t, _)| t.clone()).collect())?;

    let tx = dst.transaction()?;
    let mut copied = Copied::default();
    for table in &order {
        let Some(columns) = pg_tables.get(table) else {
            return Err(CopyError::MissingTable {
                table: table.clone(),
                present: "the SQLite store",
                missing: "PostgreSQL",
            });
        };
        let sqlite_cols = src.query("SELECT name FROM pragma_table_info(?1)", args![table], |r| {
            r.get::<String>(0)
        })?;
        if sqlite_cols.iter().collect::<BTreeSet<_>>() != columns.iter().collect::<BTreeSet<_>>() {
            return Err(CopyError::Columns {
                table: table.clone(),
                sqlite: sqlite_cols.join(", "),
                postgres: columns.join(", "),
            });
        }
        let with_rowid = sqlite_tables.iter().any(|(t, rowid)| t == table && *rowid);
        let n = copy_table(src, &*tx, table, columns, with_rowid)?;
        let sqlite_rows: i64 = src
            .value(&format!("SELECT COUNT(*) FROM {}", quote(table)), args![])?
            .unwrap_or(0);
        let pg_rows: i64 = tx
            .value(&format!("SELECT COUNT(*) FROM {}", quote(table)), args![])?
            .unwrap_or(0);
        if sqlite_rows != pg_rows || n != sqlite_rows {
            return Err(CopyError::Count {
                table: table.clone(),
                sqlite: sqlite_rows,
                postgres: pg_rows,
            });
        }
        progress(table, pg_rows);
        copied.tables.push((table.clone(), pg_rows));
    }
    advance_identities(&tx)?;
    tx.commit()?;
    Ok(copied)
}

/// Copies one table's rows in the source's order (by rowid, so ids and
/// rows that refer to earlier ones of the same table arrive in order).
fn copy_table(src: &Db, dst: &dyn Sql, table: &str, columns: &[String], with_rowid: bool) -> Result<i64, CopyError> {
    let cols = columns.iter().map(|c| quote(c)).collect::<Vec<_>>().join(", ");
    let select = format!(
        "SELECT {cols} FROM {}{}",
        quote(table),
        if with_rowid { " ORDER BY rowid" } else { "" }
    );
    let mut batch: Vec<Value<'static>> = Vec::with_capacity(ROWS_PER_INSERT * columns.len());
    let mut rows = 0i64;
    let mut failure: Option<CopyError> = None;
    let flush = |batch: &mut Vec<Value<'static>>, first_row: i64| -> Result<(), CopyError> {
        if batch.is_empty() {
            return Ok(());
        }
        let n = batch.len() / columns.len();
        let mut sql = format!("INSERT INTO {} ({cols}) VALUES ", quote(table));
        let mut p = 1;
        for r in 0..n {
            sql.push_str(if r == 0 { "(" } else { ", (" });
            for c in 0..columns.len() {
                if c > 0 {
                    sql.push_str(", ");
                }
                sql.push('?');
                sql.push_str(&p.to_string());
                p += 1;
            }
            sql.push(')');
        }
        dst.execute(&sql, batch).map_err(|source| CopyError::Row {
            table: table.to_owned(),
            row: first_row,
            source,
        })?;
        batch.clear();
        Ok(())
    };
    src.query_each(&select, args![], |r: &Row<'_>| {
        for i in 0..columns.len() {
            batch.push(owned(r.cell(i)?));
        }
        rows += 1;
        if batch.len() >= ROWS_PER_INSERT * columns.len() {
            if let Err(e) = flush(&mut batch, rows - (ROWS_PER_INSERT as i64) + 1) {
                failure = Some(e);
                return Err(SqlError::NoRow);
            }
        }
        Ok(())
    })
    .map_err(|e| failure.take().unwrap_or(CopyError::Sql(e)))?;
    let pending = (batch.len() / columns.len().max(1)) as i64;
    flush(&mut batch, rows - pending + 1)?;
    Ok(rows)
}

fn owned(c: Cell<'_>) -> Value<'static> {
    match c {
        Cell::Null => Value::Null,
        Cell::Int(i) => Value::Int(i),
        Cell::Real(f) => Value::Real(f),
        Cell::Text(t) => Value::from(t.to_owned()),
        Cell::Blob(b) => Value::from(b.to_vec()),
    }
}

/// The store's tables in PostgreSQL with their columns in order.
fn postgres_columns(db: &Db) -> Result<BTreeMap<String, Vec<String>>, SqlError> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    db.query_each(
        "SELECT c.table_name, c.column_name FROM information_schema.columns c \
         JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name \
         WHERE c.table_schema = current_schema() AND t.table_type = 'BASE TABLE' \
         AND c.table_name <> 'caretaker_migrations' \
         ORDER BY c.table_name, c.ordinal_position",
        args![],
        |r| {
            out.entry(r.get(0)?).or_default().push(r.get(1)?);
            Ok(())
        },
    )?;
    Ok(out)
}

/// The SQLite store's tables in creation order, each with whether it has
/// a rowid.
fn sqlite_tables(db: &Db) -> Result<Vec<(String, bool)>, SqlError> {
    db.query(
        "SELECT name, sql FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY rowid",
        args![],
        |r| {
            let sql: String = r.get(1)?;
            Ok((r.get(0)?, !sql.to_uppercase().contains("WITHOUT ROWID")))
        },
    )
}

/// `tables` ordered so a table comes after every table its foreign keys
/// point at (PostgreSQL checks them row by row).
fn copy_order(dst: &Db, tables: Vec<String>) -> Result<Vec<String>, SqlError> {
    let mut needs: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    dst.query_each(
        "SELECT tc.relname, rc.relname FROM pg_constraint k \
         JOIN pg_class tc ON tc.oid = k.conrelid JOIN pg_class rc ON rc.oid = k.confrelid \
         JOIN pg_namespace n ON n.oid = tc.relnamespace \
         WHERE k.contype = 'f' AND n.nspname = current_schema()",
        args![],
        |r| {
            let (from, to): (String, String) = (r.get(0)?, r.get(1)?);
            if from != to {
                needs.entry(from).or_default().insert(to);
            }
            Ok(())
        },
    )?;
    let mut done: BTreeSet<String> = BTreeSet::new();
    let mut order = Vec::with_capacity(tables.len());
    let mut left = tables;
    while !left.is_empty() {
        let before = left.len();
        left.retain(|t| {
            let ready = needs.get(t).is_none_or(|n| n.iter().all(|d| done.contains(d)));
            if ready {
                done.insert(t.clone());
                order.push(t.clone());
            }
            !ready
        });
        if left.len() == before {
            // A cycle cannot happen in this schema; copy the rest as listed
            // and let PostgreSQL name the row it refuses.
            order.append(&mut left);
        }
    }
    Ok(order)
}

/// Moves every identity column's sequence past the highest copied id.
fn advance_identities(db: &dyn Sql) -> Result<(), SqlError> {
    let columns = db.query(
        "SELECT table_name, column_name FROM information_schema.columns \
         WHERE table_schema = current_schema() AND is_identity = 'YES'",
        args![],
        |r| Ok((r.get::<String>(0)?, r.get::<String>(1)?)),
    )?;
    for (table, column) in columns {
        db.query_one(
            &format!(
                "SELECT setval(pg_get_serial_sequence(?1, ?2), COALESCE(MAX({col}), 0) + 1, false) FROM {tab}",
                col = quote(&column),
                tab = quote(&table)
            ),
            args![quote(&table), column.as_str()],
            |_| Ok(()),
        )?;
    }
    Ok(())
}

/// An identifier quoted for both dialects.
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use crate::store::testing::{PgDatabase, add_agent, postgres_addr};

    fn target() -> Option<PgDatabase> {
        let addr = postgres_addr()?;
        Some(PgDatabase::create(&addr).unwrap_or_else(|e| panic!("PostgreSQL at {addr}: {e}")))
    }

    fn source() -> Db {
        let db = Db::sqlite(crate::store::open_in_memory().unwrap());
        for i in 0..450 {
            add_agent(&db, &format!("agent-{i:03}"), &format!("host-{i:03}"));
        }
        for i in 0..3 {
            add_case(&db, &format!("host-{i:03}"));
        }
        db
    }

    fn add_case(db: &dyn Sql, asset: &str) -> i64 {
        db.query_one(
            "INSERT INTO items (kind, customer, asset, check_name, component, status, severity, rule, \
             opened_at_ms, updated_at_ms, last_firing_at_ms, occurrences, evidence) \
             VALUES ('case', 'acme', ?1, 'disk_failing', 'sda', 'open', 'critical', 'r', 1000, 1000, 1000, 1, '{}') \
             RETURNING id",
            args![asset],
            |r| r.get(0),
        )
        .unwrap()
    }

    #[test]
    fn a_store_copies_whole_with_counts_checked_and_ids_continuing() {
        let Some(pg) = target() else { return };
        let src = source();
        let dst = pg.connect().unwrap();
        let mut heard = Vec::new();
        let copied = copy_sqlite_to_postgres(&src, &dst, |t, n| heard.push((t.to_owned(), n))).unwrap();
        assert_eq!(copied.tables, heard);
        let agents = copied.tables.iter().find(|t| t.0 == "agents").unwrap();
        assert_eq!(agents.1, 450);
        let items = copied.tables.iter().find(|t| t.0 == "items").unwrap();
        assert_eq!(items.1, 3);
        // The agents a table refers to arrive before it.
        let pos = |name: &str| copied.tables.iter().position(|t| t.0 == name).unwrap();
        assert!(pos("agents") < pos("report_log"));
        assert!(pos("items") < pos("item_log"));
        // The next case continues after the copied ones.
        assert_eq!(add_case(&dst, "h"), 4);
    }

    #[test]
    fn a_target_that_holds_rows_is_refused_and_left_as_it_was() {
        let Some(pg) = target() else { return };
        let dst = pg.connect().unwrap();
        migrate(&dst).unwrap();
        add_agent(&dst, "already-here", "h");
        let err = copy_sqlite_to_postgres(&source(), &dst, |_, _| {}).unwrap_err();
        assert!(
            matches!(&err, CopyError::NotEmpty { table, rows: 1 } if table == "agents"),
            "{err}"
        );
        assert!(err.to_string().contains("not empty"), "{err}");
        let n: i64 = dst.value("SELECT COUNT(*) FROM agents", args![]).unwrap().unwrap();
        assert_eq!(n, 1);
    }

    #[test]
    fn a_failed_copy_keeps_nothing_in_the_target() {
        let Some(pg) = target() else { return };
        let src = source();
        // A row PostgreSQL refuses after many good ones: a log row of an
        // item that does not exist, as an old store written without foreign
        // key checks may hold.
        src.batch("PRAGMA foreign_keys = OFF").unwrap();
        src.execute(
            "INSERT INTO item_log (item_id, at_ms, actor, from_status, to_status) VALUES (999, 1, 'x', NULL, 'open')",
            args![],
        )
        .unwrap();
        let dst = pg.connect().unwrap();
        let err = copy_sqlite_to_postgres(&src, &dst, |_, _| {}).unwrap_err();
        assert!(err.to_string().contains("item_log"), "{err}");
        let n: i64 = dst.value("SELECT COUNT(*) FROM agents", args![]).unwrap().unwrap();
        assert_eq!(n, 0, "the copy is one transaction");
    }
}
