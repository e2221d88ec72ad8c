//! Parts taken out of service: a disk (or DIMM) that a service report says
//! was replaced, or whose serial left the host's inventory. Such a part can
//! no longer fire: the agent may keep sending the old disk's last reading
//! until its next SMART pass, and that must not reopen the case its swap
//! resolved. A signal that fires on a retired component counts as a clear.
//!
//! A component is retired by asset and component (a disk key such as
//! `wwn-…` or `serial-…`, or the serial itself), from the time of the
//! retirement on: an earlier, late-delivered firing still counts as it was.

use rusqlite::{Connection, OptionalExtension, params};

use crate::store::StoreError;

/// Schema, applied as one migration by [`crate::store`].
pub const MIGRATION: &str = r#"
CREATE TABLE retired_parts (
    asset TEXT NOT NULL,
    component TEXT NOT NULL,
    serial TEXT NOT NULL,
    retired_at_ms INTEGER NOT NULL,
    why TEXT NOT NULL,
    PRIMARY KEY (asset, component)
) WITHOUT ROWID;
"#;

/// Records `component` of `asset` as retired at `at_ms` (the first
/// retirement stands); returns whether it was new.
pub fn record(
    conn: &Connection,
    asset: &str,
    component: &str,
    serial: &str,
    at_ms: i64,
    why: &str,
) -> Result<bool, StoreError> {
    let n = conn
        .prepare_cached(
            "INSERT INTO retired_parts (asset, component, serial, retired_at_ms, why) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (asset, component) DO NOTHING",
        )?
        .execute(params![asset, component, serial, at_ms, why])?;
    Ok(n > 0)
}

/// Whether `component` of `asset` was retired at or before `at_ms`.
pub fn is_retired(conn: &Connection, asset: &str, component: &str, at_ms: i64) -> Result<bool, StoreError> {
    if component.is_empty() {
        return Ok(false);
    }
    Ok(conn
        .prepare_cached("SELECT retired_at_ms FROM retired_parts WHERE asset = ?1 AND component = ?2")?
        .query_row(params![asset, component], |r| r.get::<_, i64>(0))
        .optional()?
        .is_some_and(|t| t <= at_ms))
}
