//! Parts taken out of service (`retired_parts`): by asset and component,
//! with the serial and why, from the time of the retirement on. The rule
//! that a retired part no longer fires is the lifecycle's
//! (`cases::retired`); this module keeps the rows.

use super::sql::{Sql, SqlError, SqlExt, args};

/// Schema on SQLite, applied as one migration by [`crate::store`].
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

/// Retired parts, on any connection or transaction.
pub trait RetiredParts: Sql {
    /// Records `component` of `asset` as retired at `at_ms`; the first
    /// retirement stands. Whether it was new.
    fn retire_part(&self, asset: &str, component: &str, serial: &str, at_ms: i64, why: &str) -> Result<bool, SqlError> {
        let n = self.execute(
            "INSERT INTO retired_parts (asset, component, serial, retired_at_ms, why) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (asset, component) DO NOTHING",
            args![asset, component, serial, at_ms, why],
        )?;
        Ok(n > 0)
    }

    /// When `component` of `asset` was retired, if it was.
    fn part_retired_at(&self, asset: &str, component: &str) -> Result<Option<i64>, SqlError> {
        self.value(
            "SELECT retired_at_ms FROM retired_parts WHERE asset = ?1 AND component = ?2",
            args![asset, component],
        )
    }

    /// Every retired component of `asset`, with when it was retired.
    fn parts_retired_on(&self, asset: &str) -> Result<Vec<(String, i64)>, SqlError> {
        self.query(
            "SELECT component, retired_at_ms FROM retired_parts WHERE asset = ?1",
            args![asset],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
    }
}

impl<S: Sql + ?Sized> RetiredParts for S {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::on_both;

    #[test]
    fn the_first_retirement_of_a_part_stands() {
        on_both(|db| {
            assert_eq!(db.part_retired_at("db01", "wwn-1").ok(), Some(None));
            assert_eq!(
                db.retire_part("db01", "wwn-1", "S1", 100, "service report 3").ok(),
                Some(true)
            );
            assert_eq!(
                db.retire_part("db01", "wwn-1", "S1", 200, "left the inventory").ok(),
                Some(false)
            );
            assert_eq!(db.part_retired_at("db01", "wwn-1").ok(), Some(Some(100)));
            assert_eq!(db.part_retired_at("db02", "wwn-1").ok(), Some(None));
            assert_eq!(
                db.retire_part("db01", "wwn-2", "S2", 300, "left the inventory").ok(),
                Some(true)
            );
            let mut all = db.parts_retired_on("db01").unwrap_or_default();
            all.sort();
            assert_eq!(all, [("wwn-1".to_string(), 100), ("wwn-2".to_string(), 300)]);
            assert_eq!(db.parts_retired_on("db02").ok(), Some(vec![]));
        });
    }
}
