//! Spare parts rows: the catalogue of spare models, stock per location,
//! reservations, replenishment requests, and service reports with the
//! parts they replaced. What fits which part, which spare to reserve and
//! when stock needs replenishing are the domain's (`spares`); this
//! module keeps the rows.

use serde::{Deserialize, Serialize};

use super::sql::{Row, Sql, SqlError, SqlExt, args};

/// Schema on SQLite, applied as one migration by [`crate::store`].
pub const MIGRATION: &str = r#"
CREATE TABLE spare_models (
    model TEXT PRIMARY KEY,
    part_type TEXT NOT NULL,
    interface TEXT NOT NULL DEFAULT '',
    capacity_bytes INTEGER,
    fits_asset_models TEXT NOT NULL DEFAULT '[]',
    description TEXT NOT NULL DEFAULT ''
);
CREATE TABLE spare_stock (
    model TEXT NOT NULL REFERENCES spare_models(model),
    location TEXT NOT NULL,
    quantity INTEGER NOT NULL CHECK (quantity >= 0),
    min_stock INTEGER NOT NULL DEFAULT 0 CHECK (min_stock >= 0),
    PRIMARY KEY (model, location)
);
CREATE TABLE spare_reservations (
    id INTEGER PRIMARY KEY,
    model TEXT NOT NULL,
    location TEXT NOT NULL,
    recommendation_id INTEGER,
    host TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('reserved', 'consumed', 'released')),
    created_at_ms INTEGER NOT NULL,
    updated_at_ms INTEGER NOT NULL
);
CREATE UNIQUE INDEX spare_reservations_one_per_recommendation ON spare_reservations(recommendation_id)
    WHERE status = 'reserved' AND recommendation_id IS NOT NULL;
CREATE TABLE replenishment_requests (
    id INTEGER PRIMARY KEY,
    model TEXT NOT NULL,
    location TEXT NOT NULL,
    quantity INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('open', 'received', 'cancelled')),
    created_at_ms INTEGER NOT NULL,
    closed_at_ms INTEGER
);
-- One open request per model and location: a second shortfall updates it.
CREATE UNIQUE INDEX replenishment_one_open ON replenishment_requests(model, location) WHERE status = 'open';
CREATE TABLE service_reports (
    id INTEGER PRIMARY KEY,
    case_id INTEGER,
    host TEXT NOT NULL,
    mode TEXT NOT NULL CHECK (mode IN ('on_site', 'remote')),
    symptom TEXT NOT NULL,
    work_done TEXT NOT NULL,
    engineer TEXT NOT NULL,
    minutes INTEGER NOT NULL CHECK (minutes >= 0),
    at_ms INTEGER NOT NULL
);
CREATE INDEX service_reports_host ON service_reports(host, at_ms);
CREATE TABLE service_report_parts (
    report_id INTEGER NOT NULL REFERENCES service_reports(id),
    idx INTEGER NOT NULL,
    part_type TEXT NOT NULL,
    slot TEXT NOT NULL,
    old_model TEXT NOT NULL,
    old_serial TEXT NOT NULL,
    new_model TEXT NOT NULL,
    new_serial TEXT NOT NULL,
    location TEXT,
    reservation_id INTEGER,
    PRIMARY KEY (report_id, idx)
);
"#;

/// Appended to the migrations: spare models that fit by RAID controller
/// model (a cache backup unit).
pub const MIGRATION_CONTROLLER_FITS: &str = r#"
ALTER TABLE spare_models ADD COLUMN fits_controller_models TEXT NOT NULL DEFAULT '[]';
"#;

/// A spare model as stored: its lists of system and controller models are
/// JSON arrays, read and written whole by the domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSpareModel {
    pub model: String,
    pub part_type: String,
    pub interface: String,
    pub capacity_bytes: Option<i64>,
    /// JSON array of system models.
    pub fits_asset_models: String,
    /// JSON array of RAID controller models.
    pub fits_controller_models: String,
    pub description: String,
}

/// Stock of one model at one location.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stock {
    pub model: String,
    pub location: String,
    pub quantity: i64,
    pub min_stock: i64,
    /// Held for accepted recommendations.
    pub reserved: i64,
    pub available: i64,
    pub below_minimum: bool,
}

/// A replenishment request: order `quantity` of `model` for `location`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Replenishment {
    pub id: i64,
    pub model: String,
    pub location: String,
    pub quantity: i64,
    pub status: String,
    pub created_at_ms: i64,
    pub closed_at_ms: Option<i64>,
}

/// A spare held for a recommendation (or a planned replacement).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reservation {
    pub id: i64,
    pub model: String,
    pub location: String,
    pub recommendation_id: Option<i64>,
    pub host: String,
    pub status: String,
}

/// A reservation a service report can consume: its id, location and the
/// recommendation it was made for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldSpare {
    pub id: i64,
    pub location: String,
    pub recommendation_id: Option<i64>,
}

/// A part replaced during a service: old model and serial → new.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartReplaced {
    pub part_type: String,
    /// The disk's device, the DIMM's locator, ...
    pub slot: String,
    #[serde(default)]
    pub old_model: String,
    #[serde(default)]
    pub old_serial: String,
    pub new_model: String,
    #[serde(default)]
    pub new_serial: String,
    /// Where the spare came from; filled from the reservation or the stock
    /// it was taken from when not given.
    #[serde(default)]
    pub location: Option<String>,
}

/// What an engineer did: on site or remote, the symptom, the work, the parts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceReport {
    #[serde(default)]
    pub id: Option<i64>,
    #[serde(default)]
    pub case_id: Option<i64>,
    /// Required when the report is filed alone; resolving a case fills it in.
    #[serde(default)]
    pub host: String,
    /// `on_site` or `remote`.
    pub mode: String,
    pub symptom: String,
    pub work_done: String,
    /// Required when the report is filed alone; resolving a case fills it in.
    #[serde(default)]
    pub engineer: String,
    pub minutes: u32,
    #[serde(default)]
    pub parts: Vec<PartReplaced>,
    #[serde(default)]
    pub at_ms: Option<i64>,
}

/// A host as coverage sees it: its labels (a JSON object) and its newest
/// inventory document, if it sent one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpareAsset {
    pub agent_id: String,
    pub host: String,
    pub labels: String,
    pub inventory: Option<String>,
}

const MODEL_COLUMNS: &str = "SELECT model, part_type, interface, capacity_bytes, fits_asset_models, description, \
     fits_controller_models FROM spare_models";

const ASSETS: &str = "SELECT a.agent_id, a.host, a.labels, \
     (SELECT doc FROM inventory i WHERE i.agent_id = a.agent_id ORDER BY seq DESC LIMIT 1) FROM agents a";

const RESERVATION_COLUMNS: &str = "SELECT id, model, location, recommendation_id, host, status FROM spare_reservations";

fn asset(r: &Row<'_>) -> Result<SpareAsset, SqlError> {
    Ok(SpareAsset {
        agent_id: r.get(0)?,
        host: r.get(1)?,
        labels: r.get(2)?,
        inventory: r.get(3)?,
    })
}

fn reservation(r: &Row<'_>) -> Result<Reservation, SqlError> {
    Ok(Reservation {
        id: r.get(0)?,
        model: r.get(1)?,
        location: r.get(2)?,
        recommendation_id: r.get(3)?,
        host: r.get(4)?,
        status: r.get(5)?,
    })
}

/// Spare models and stock, on any connection or transaction.
pub trait SpareStock: Sql {
    /// Every spare model, by name.
    fn spare_models(&self) -> Result<Vec<StoredSpareModel>, SqlError> {
        self.query(&format!("{MODEL_COLUMNS} ORDER BY model"), args![], |r| {
            Ok(StoredSpareModel {
                model: r.get(0)?,
                part_type: r.get(1)?,
                interface: r.get(2)?,
                capacity_bytes: r.get(3)?,
                fits_asset_models: r.get(4)?,
                description: r.get(5)?,
                fits_controller_models: r.get(6)?,
            })
        })
    }

    /// Adds a spare model or replaces the one of that name.
    fn put_spare_model(&self, m: &StoredSpareModel) -> Result<(), SqlError> {
        self.execute(
            "INSERT INTO spare_models (model, part_type, interface, capacity_bytes, fits_asset_models, description, \
             fits_controller_models) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (model) DO UPDATE SET \
             part_type = excluded.part_type, interface = excluded.interface, capacity_bytes = excluded.capacity_bytes, \
             fits_asset_models = excluded.fits_asset_models, description = excluded.description, \
             fits_controller_models = excluded.fits_controller_models",
            args![
                &m.model,
                &m.part_type,
                &m.interface,
                m.capacity_bytes,
                &m.fits_asset_models,
                &m.description,
                &m.fits_controller_models
            ],
        )?;
        Ok(())
    }

    /// Whether a spare model of that name is in the catalogue.
    fn spare_model_known(&self, model: &str) -> Result<bool, SqlError> {
        Ok(self
            .value::<String>("SELECT model FROM spare_models WHERE model = ?1", args![model])?
            .is_some())
    }

    /// Every stock line, by model and location, with what is reserved of it.
    fn spare_stock(&self) -> Result<Vec<Stock>, SqlError> {
        self.query(
            "SELECT s.model, s.location, s.quantity, s.min_stock, \
               (SELECT COUNT(*) FROM spare_reservations r WHERE r.model = s.model AND r.location = s.location \
                  AND r.status = 'reserved') \
             FROM spare_stock s ORDER BY s.model, s.location",
            args![],
            |r| {
                let quantity: i64 = r.get(2)?;
                let min_stock: i64 = r.get(3)?;
                let reserved: i64 = r.get(4)?;
                Ok(Stock {
                    model: r.get(0)?,
                    location: r.get(1)?,
                    quantity,
                    min_stock,
                    reserved,
                    available: (quantity - reserved).max(0),
                    below_minimum: quantity < min_stock,
                })
            },
        )
    }

    /// Sets the quantity and minimum of a model at a location.
    fn put_spare_stock(&self, model: &str, location: &str, quantity: i64, min_stock: i64) -> Result<(), SqlError> {
        self.execute(
            "INSERT INTO spare_stock (model, location, quantity, min_stock) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (model, location) DO UPDATE SET quantity = excluded.quantity, min_stock = excluded.min_stock",
            args![model, location, quantity, min_stock],
        )?;
        Ok(())
    }

    /// Quantity and minimum of a model at a location, if it is stocked there.
    fn stock_level(&self, model: &str, location: &str) -> Result<Option<(i64, i64)>, SqlError> {
        self.query_opt(
            "SELECT quantity, min_stock FROM spare_stock WHERE model = ?1 AND location = ?2",
            args![model, location],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
    }

    /// One part fewer of a model at a location (never below zero).
    fn take_one_spare(&self, model: &str, location: &str) -> Result<(), SqlError> {
        self.execute(
            "UPDATE spare_stock SET quantity = CASE WHEN quantity > 0 THEN quantity - 1 ELSE 0 END \
             WHERE model = ?1 AND location = ?2",
            args![model, location],
        )?;
        Ok(())
    }

    /// Opens the replenishment request of a model and location for
    /// `quantity`, or sets the quantity of the one already open.
    fn open_replenishment(&self, model: &str, location: &str, quantity: i64, now_ms: i64) -> Result<(), SqlError> {
        self.execute(
            "INSERT INTO replenishment_requests (model, location, quantity, status, created_at_ms) \
             VALUES (?1, ?2, ?3, 'open', ?4) \
             ON CONFLICT (model, location) WHERE status = 'open' DO UPDATE SET quantity = excluded.quantity",
            args![model, location, quantity, now_ms],
        )?;
        Ok(())
    }

    /// Closes the open replenishment request of a model and location as
    /// received; whether there was one.
    fn close_replenishment(&self, model: &str, location: &str, now_ms: i64) -> Result<bool, SqlError> {
        let n = self.execute(
            "UPDATE replenishment_requests SET status = 'received', closed_at_ms = ?3 \
             WHERE model = ?1 AND location = ?2 AND status = 'open'",
            args![model, location, now_ms],
        )?;
        Ok(n > 0)
    }

    /// Replenishment requests in the order they were opened: the open ones
    /// only unless `all`.
    fn replenishments(&self, all: bool) -> Result<Vec<Replenishment>, SqlError> {
        let sql = if all {
            "SELECT id, model, location, quantity, status, created_at_ms, closed_at_ms FROM replenishment_requests \
             ORDER BY id"
        } else {
            "SELECT id, model, location, quantity, status, created_at_ms, closed_at_ms FROM replenishment_requests \
             WHERE status = 'open' ORDER BY id"
        };
        self.query(sql, args![], |r| {
            Ok(Replenishment {
                id: r.get(0)?,
                model: r.get(1)?,
                location: r.get(2)?,
                quantity: r.get(3)?,
                status: r.get(4)?,
                created_at_ms: r.get(5)?,
                closed_at_ms: r.get(6)?,
            })
        })
    }

    /// Reserves one of `model` at `location` for `host` (and the
    /// recommendation, if any); the reservation's id.
    fn add_reservation(
        &self,
        model: &str,
        location: &str,
        recommendation_id: Option<i64>,
        host: &str,
        now_ms: i64,
    ) -> Result<i64, SqlError> {
        self.query_one(
            "INSERT INTO spare_reservations (model, location, recommendation_id, host, status, created_at_ms, \
             updated_at_ms) VALUES (?1, ?2, ?3, ?4, 'reserved', ?5, ?5) RETURNING id",
            args![model, location, recommendation_id, host, now_ms],
            |r| r.get(0),
        )
    }

    /// The reservation held for a recommendation, if any.
    fn reservation_for_recommendation(&self, recommendation_id: i64) -> Result<Option<Reservation>, SqlError> {
        self.query_opt(
            &format!("{RESERVATION_COLUMNS} WHERE recommendation_id = ?1 AND status = 'reserved'"),
            args![recommendation_id],
            reservation,
        )
    }

    /// Releases the reservation held for a recommendation; whether there was
    /// one.
    fn release_reservation(&self, recommendation_id: i64, now_ms: i64) -> Result<bool, SqlError> {
        let n = self.execute(
            "UPDATE spare_reservations SET status = 'released', updated_at_ms = ?2 \
             WHERE recommendation_id = ?1 AND status = 'reserved'",
            args![recommendation_id, now_ms],
        )?;
        Ok(n > 0)
    }

    /// The oldest reservation of `model` held for `host` (at `location`,
    /// when given).
    fn held_spare(&self, host: &str, model: &str, location: Option<&str>) -> Result<Option<HeldSpare>, SqlError> {
        self.query_opt(
            "SELECT id, location, recommendation_id FROM spare_reservations \
             WHERE host = ?1 AND model = ?2 AND status = 'reserved' \
               AND (CAST(?3 AS TEXT) IS NULL OR location = ?3) ORDER BY id LIMIT 1",
            args![host, model, location],
            |r| {
                Ok(HeldSpare {
                    id: r.get(0)?,
                    location: r.get(1)?,
                    recommendation_id: r.get(2)?,
                })
            },
        )
    }

    /// Marks a reservation consumed (its spare went into a machine).
    fn consume_reservation(&self, id: i64, now_ms: i64) -> Result<(), SqlError> {
        self.execute(
            "UPDATE spare_reservations SET status = 'consumed', updated_at_ms = ?2 WHERE id = ?1",
            args![id, now_ms],
        )?;
        Ok(())
    }

    /// Every host with its labels and newest inventory, by host name: what
    /// spare coverage is computed over.
    fn spare_assets(&self) -> Result<Vec<SpareAsset>, SqlError> {
        self.query(&format!("{ASSETS} ORDER BY a.host"), args![], asset)
    }

    /// One host with its labels and newest inventory, by agent id: where a
    /// reservation for it looks first and what system model it is.
    fn spare_asset(&self, agent_id: &str) -> Result<Option<SpareAsset>, SqlError> {
        self.query_opt(&format!("{ASSETS} WHERE a.agent_id = ?1"), args![agent_id], asset)
    }
}

impl<S: Sql + ?Sized> SpareStock for S {}

/// Service reports and the parts they replaced, on any connection or
/// transaction.
pub trait ServiceReports: Sql {
    /// Stores a report's own row (its parts apart), done at `at_ms`; its id.
    fn add_service_report(&self, report: &ServiceReport, at_ms: i64) -> Result<i64, SqlError> {
        self.query_one(
            "INSERT INTO service_reports (case_id, host, mode, symptom, work_done, engineer, minutes, at_ms) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) RETURNING id",
            args![
                report.case_id,
                &report.host,
                &report.mode,
                &report.symptom,
                &report.work_done,
                &report.engineer,
                report.minutes,
                at_ms
            ],
            |r| r.get(0),
        )
    }

    /// Stores part `idx` of report `report_id`, with the stock location it
    /// came from and the reservation it consumed, if any.
    fn add_service_report_part(
        &self,
        report_id: i64,
        idx: i64,
        part: &PartReplaced,
        location: Option<&str>,
        reservation_id: Option<i64>,
    ) -> Result<(), SqlError> {
        self.execute(
            "INSERT INTO service_report_parts (report_id, idx, part_type, slot, old_model, old_serial, new_model, \
             new_serial, location, reservation_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            args![
                report_id,
                idx,
                &part.part_type,
                &part.slot,
                &part.old_model,
                &part.old_serial,
                &part.new_model,
                &part.new_serial,
                location,
                reservation_id
            ],
        )?;
        Ok(())
    }

    /// Service reports of a host (all when `None`) with their parts, newest
    /// first.
    fn service_reports(&self, host: Option<&str>) -> Result<Vec<ServiceReport>, SqlError> {
        let mut reports = self.query(
            "SELECT id, case_id, host, mode, symptom, work_done, engineer, minutes, at_ms FROM service_reports \
             WHERE CAST(?1 AS TEXT) IS NULL OR host = ?1 ORDER BY at_ms DESC, id DESC",
            args![host],
            |r| {
                Ok(ServiceReport {
                    id: r.get(0)?,
                    case_id: r.get(1)?,
                    host: r.get(2)?,
                    mode: r.get(3)?,
                    symptom: r.get(4)?,
                    work_done: r.get(5)?,
                    engineer: r.get(6)?,
                    minutes: r.get(7)?,
                    parts: Vec::new(),
                    at_ms: r.get(8)?,
                })
            },
        )?;
        for rep in &mut reports {
            rep.parts = self.query(
                "SELECT part_type, slot, old_model, old_serial, new_model, new_serial, location \
                 FROM service_report_parts WHERE report_id = ?1 ORDER BY idx",
                args![rep.id],
                |r| {
                    Ok(PartReplaced {
                        part_type: r.get(0)?,
                        slot: r.get(1)?,
                        old_model: r.get(2)?,
                        old_serial: r.get(3)?,
                        new_model: r.get(4)?,
                        new_serial: r.get(5)?,
                        location: r.get(6)?,
                    })
                },
            )?;
        }
        Ok(reports)
    }
}

impl<S: Sql + ?Sized> ServiceReports for S {}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::store::testing::on_both;

    fn model(name: &str) -> StoredSpareModel {
        StoredSpareModel {
            model: name.into(),
            part_type: "disk".into(),
            interface: "sata".into(),
            capacity_bytes: Some(8_000_000_000_000),
            fits_asset_models: "[]".into(),
            fits_controller_models: "[\"PERC H730P Mini\"]".into(),
            description: String::new(),
        }
    }

    #[test]
    fn a_spare_model_is_replaced_by_name() {
        on_both(|db| {
            assert!(!db.spare_model_known("ST8000NM").unwrap());
            db.put_spare_model(&model("ST8000NM")).unwrap();
            let mut changed = model("ST8000NM");
            changed.capacity_bytes = None;
            changed.description = "8 TB SATA".into();
            db.put_spare_model(&changed).unwrap();
            db.put_spare_model(&model("A1")).unwrap();
            assert_eq!(db.spare_models().unwrap(), [model("A1"), changed]);
            assert!(db.spare_model_known("ST8000NM").unwrap());
        });
    }

    #[test]
    fn stock_counts_what_is_reserved_and_never_goes_below_zero() {
        on_both(|db| {
            db.put_spare_model(&model("M")).unwrap();
            db.put_spare_stock("M", "hq", 2, 3).unwrap();
            db.put_spare_stock("M", "hq", 1, 1).unwrap();
            assert_eq!(db.stock_level("M", "hq").unwrap(), Some((1, 1)));
            assert_eq!(db.stock_level("M", "branch").unwrap(), None);
            let id = db.add_reservation("M", "hq", Some(7), "db01", 10).unwrap();
            assert!(
                db.add_reservation("M", "hq", Some(7), "db01", 11)
                    .unwrap_err()
                    .is_unique_violation()
            );
            let s = db.spare_stock().unwrap();
            assert_eq!(
                (s[0].quantity, s[0].reserved, s[0].available, s[0].below_minimum),
                (1, 1, 0, false)
            );
            assert_eq!(
                db.reservation_for_recommendation(7).unwrap(),
                Some(Reservation {
                    id,
                    model: "M".into(),
                    location: "hq".into(),
                    recommendation_id: Some(7),
                    host: "db01".into(),
                    status: "reserved".into(),
                })
            );
            db.take_one_spare("M", "hq").unwrap();
            db.take_one_spare("M", "hq").unwrap();
            assert_eq!(db.stock_level("M", "hq").unwrap(), Some((0, 1)));
        });
    }

    #[test]
    fn a_held_spare_is_found_by_host_and_model_and_then_consumed_or_released() {
        on_both(|db| {
            let a = db.add_reservation("M", "hq", Some(1), "db01", 0).unwrap();
            let b = db.add_reservation("M", "branch", None, "db01", 0).unwrap();
            let held = db.held_spare("db01", "M", None).unwrap().unwrap();
            assert_eq!(
                (held.id, held.location.as_str(), held.recommendation_id),
                (a, "hq", Some(1))
            );
            let held = db.held_spare("db01", "M", Some("branch")).unwrap().unwrap();
            assert_eq!((held.id, held.recommendation_id), (b, None));
            assert_eq!(db.held_spare("db02", "M", None).unwrap(), None);
            db.consume_reservation(a, 5).unwrap();
            assert_eq!(db.held_spare("db01", "M", None).unwrap().map(|h| h.id), Some(b));
            assert!(!db.release_reservation(1, 6).unwrap(), "consumed, not held");
            let c = db.add_reservation("M", "hq", Some(2), "db01", 0).unwrap();
            assert!(db.release_reservation(2, 6).unwrap());
            assert_eq!(db.reservation_for_recommendation(2).unwrap(), None);
            assert_ne!(c, b);
        });
    }

    #[test]
    fn one_replenishment_request_stays_open_per_model_and_location() {
        on_both(|db| {
            db.open_replenishment("M", "hq", 1, 10).unwrap();
            db.open_replenishment("M", "hq", 2, 20).unwrap();
            db.open_replenishment("M", "branch", 1, 20).unwrap();
            let open = db.replenishments(false).unwrap();
            assert_eq!(open.len(), 2);
            assert_eq!(
                (open[0].quantity, open[0].created_at_ms, open[0].closed_at_ms),
                (2, 10, None)
            );
            assert!(db.close_replenishment("M", "hq", 30).unwrap());
            assert!(!db.close_replenishment("M", "hq", 31).unwrap());
            db.open_replenishment("M", "hq", 1, 40).unwrap();
            let all = db.replenishments(true).unwrap();
            let got: Vec<(&str, &str, Option<i64>)> = all
                .iter()
                .map(|r| (r.location.as_str(), r.status.as_str(), r.closed_at_ms))
                .collect();
            assert_eq!(
                got,
                [
                    ("hq", "received", Some(30)),
                    ("branch", "open", None),
                    ("hq", "open", None)
                ]
            );
            assert_eq!(db.replenishments(false).unwrap().len(), 2);
        });
    }

    #[test]
    fn service_reports_come_back_newest_first_with_their_parts_in_order() {
        on_both(|db| {
            let report = |host: &str| ServiceReport {
                id: None,
                case_id: None,
                host: host.into(),
                mode: "remote".into(),
                symptom: "s".into(),
                work_done: "w".into(),
                engineer: "kim".into(),
                minutes: 5,
                parts: Vec::new(),
                at_ms: None,
            };
            let part = |slot: &str| PartReplaced {
                part_type: "disk".into(),
                slot: slot.into(),
                old_model: "O".into(),
                old_serial: "S1".into(),
                new_model: "N".into(),
                new_serial: "S2".into(),
                location: None,
            };
            let first = db.add_service_report(&report("db01"), 100).unwrap();
            let second = db.add_service_report(&report("db01"), 200).unwrap();
            db.add_service_report(&report("db02"), 300).unwrap();
            db.add_service_report_part(first, 1, &part("sdb"), Some("hq"), Some(4))
                .unwrap();
            db.add_service_report_part(first, 0, &part("sda"), None, None).unwrap();
            assert!(
                db.add_service_report_part(first, 0, &part("sdc"), None, None)
                    .unwrap_err()
                    .is_unique_violation()
            );
            let got = db.service_reports(Some("db01")).unwrap();
            assert_eq!(
                got.iter().map(|r| r.id).collect::<Vec<_>>(),
                [Some(second), Some(first)]
            );
            assert_eq!(got[1].at_ms, Some(100));
            let slots: Vec<(&str, Option<&str>)> = got[1]
                .parts
                .iter()
                .map(|p| (p.slot.as_str(), p.location.as_deref()))
                .collect();
            assert_eq!(slots, [("sda", None), ("sdb", Some("hq"))]);
            assert!(got[0].parts.is_empty());
            assert_eq!(db.service_reports(None).unwrap().len(), 3);
        });
    }

    #[test]
    fn assets_come_with_their_labels_and_newest_inventory() {
        on_both(|db| {
            crate::store::testing::add_asset(db, "db01", r#"{"site":"hq"}"#, r#"{"v":1}"#);
            db.execute(
                "INSERT INTO inventory (agent_id, seq, collected_at_ms, doc) VALUES ('agent-db01', 2, 5, '{\"v\":2}')",
                args![],
            )
            .unwrap();
            crate::store::testing::add_agent(db, "agent-a0", "a0");
            let all = db.spare_assets().unwrap();
            let got: Vec<(&str, Option<&str>)> =
                all.iter().map(|a| (a.host.as_str(), a.inventory.as_deref())).collect();
            assert_eq!(got, [("a0", None), ("db01", Some(r#"{"v":2}"#))]);
            let one = db.spare_asset("agent-db01").unwrap().unwrap();
            assert_eq!((one.host.as_str(), one.labels.as_str()), ("db01", r#"{"site":"hq"}"#));
            assert_eq!(db.spare_asset("agent-none").unwrap(), None);
        });
    }
}
