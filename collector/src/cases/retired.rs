//! Parts taken out of service: a disk (or DIMM) that a service report says
//! was replaced, or whose serial left the host's inventory. Such a part can
//! no longer fire: the agent may keep sending the old disk's last reading
//! until its next SMART pass, and that must not reopen the case its swap
//! resolved. A signal that fires on a retired component counts as a clear.
//!
//! A component is retired by asset and component (a disk key such as
//! `wwn-…` or `serial-…`, or the serial itself), from the time of the
//! retirement on: an earlier, late-delivered firing still counts as it was.

use std::collections::HashMap;

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
    Ok(db
        .part_retired_at(asset, component)?
        .is_some_and(|t| out_of_service(t, at_ms)))
}

/// Whether a part retired at `retired_at_ms` was out of service at `at_ms`:
/// from its retirement on.
fn out_of_service(retired_at_ms: i64, at_ms: i64) -> bool {
    retired_at_ms <= at_ms
}

/// [`is_retired`] for a batch of signals: each asset's retired parts are
/// read once, at its first firing signal, rather than once per signal. Only
/// for work that retires no part meanwhile (a signals job, a tick): a part
/// is retired by a report's inventory or a service report, in jobs of their
/// own.
#[derive(Debug, Default)]
pub struct Retired {
    by_asset: HashMap<String, Vec<(String, i64)>>,
}

impl Retired {
    /// Whether `component` of `asset` was retired at or before `at_ms`.
    pub fn is_retired(&mut self, db: &dyn Sql, asset: &str, component: &str, at_ms: i64) -> Result<bool, StoreError> {
        if component.is_empty() {
            return Ok(false);
        }
        let parts = match self.by_asset.get(asset) {
            Some(parts) => parts,
            None => self
                .by_asset
                .entry(asset.to_string())
                .or_insert(db.parts_retired_on(asset)?),
        };
        Ok(parts.iter().any(|(c, t)| c == component && out_of_service(*t, at_ms)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::on_both;

    /// The batch's view answers as the store does: from the retirement on,
    /// on its own asset and component only.
    #[test]
    fn a_batch_sees_the_parts_retired_as_the_store_holds_them() {
        on_both(|db| {
            assert_eq!(
                record(db, "db01", "wwn-1", "S1", 100, "service report 3").ok(),
                Some(true)
            );
            let mut batch = Retired::default();
            for (asset, component, at_ms) in [
                ("db01", "wwn-1", 99),
                ("db01", "wwn-1", 100),
                ("db01", "wwn-1", 500),
                ("db01", "wwn-2", 500),
                ("db02", "wwn-1", 500),
                ("db01", "", 500),
            ] {
                let stored = is_retired(db, asset, component, at_ms).ok();
                assert_eq!(
                    batch.is_retired(db, asset, component, at_ms).ok(),
                    stored,
                    "{asset} {component} at {at_ms}"
                );
            }
            assert_eq!(batch.is_retired(db, "db01", "wwn-1", 100).ok(), Some(true));
            assert_eq!(batch.is_retired(db, "db01", "wwn-1", 99).ok(), Some(false));
        });
    }
}
