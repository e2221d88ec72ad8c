//! Parts taken out of service: a disk (or DIMM) that a service report says
//! was replaced, or whose serial left the host's inventory. Such a part can
//! no longer fire: the agent may keep sending the old disk's last reading
//! until its next SMART pass, and that must not reopen the case its swap
//! resolved. A signal that fires on a retired component counts as a clear.
//!
//! A component is retired by asset and component (a disk key such as
//! `wwn-…` or `serial-…`, or the serial itself), from the time of the
//! retirement on: an earlier, late-delivered firing still counts as it was.

use crate::store::StoreError;
use crate::store::retired::RetiredParts;
use crate::store::sql::Sql;

/// Records `component` of `asset` as retired at `at_ms` (the first
/// retirement stands); returns whether it was new.
pub fn record(
    db: &dyn Sql,
    asset: &str,
    component: &str,
    serial: &str,
    at_ms: i64,
    why: &str,
) -> Result<bool, StoreError> {
    Ok(db.retire_part(asset, component, serial, at_ms, why)?)
}

/// Whether `component` of `asset` was retired at or before `at_ms`.
pub fn is_retired(db: &dyn Sql, asset: &str, component: &str, at_ms: i64) -> Result<bool, StoreError> {
    if component.is_empty() {
        return Ok(false);
    }
    Ok(db.part_retired_at(asset, component)?.is_some_and(|t| t <= at_ms))
}
