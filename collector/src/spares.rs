//! Spare parts: a catalogue of part models and what they fit, stock per
//! location with a minimum, reservations for accepted replacement
//! recommendations, consumption by service reports, replenishment requests
//! when stock falls under its minimum, and the coverage report (for every
//! covered asset and every replaceable part it has: is a compatible spare on
//! a shelf?).
//!
//! What fits: a spare model fits a part of the same type when its interface
//! matches (an empty interface on the spare fits any), its capacity is at
//! least the part's (a disk) or equal (a DIMM: mixing sizes in a bank is not a
//! like-for-like replacement), and, when the spare lists system models, the
//! asset's model is one of them (DIMMs, fans, power supplies and RAID
//! controllers are often vendor-specific), and, when it lists controller
//! models, the part's controller is one of them (a controller's cache backup
//! unit — battery, CacheVault — fits only its controller family).
//!
//! Replaceable parts of an asset ([`parts_of`]): its disks (those behind a
//! RAID controller too, by their enclosure:slot; not the block device of a
//! virtual disk, which is no part), DIMMs, power supplies, RAID controllers
//! and their cache backup units.

use serde::{Deserialize, Serialize};

use caretaker_shared::wire::Inventory;

use crate::store::StoreError;
use crate::store::spares::{ServiceReports, SpareStock, StoredSpareModel};
use crate::store::sql::Sql;

pub use crate::store::spares::{PartReplaced, Replenishment, Reservation, ServiceReport, Stock};

/// A part model kept as a spare.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpareModel {
    /// The path names it (`PUT /api/v1/spares/models/{model}`): never read
    /// from a body.
    #[serde(default, skip_deserializing)]
    pub model: String,
    /// `disk`, `dimm`, `fan`, `psu`, `bbu` (a RAID controller's cache backup
    /// unit), `controller`, ...
    pub part_type: String,
    /// `sata`, `sas`, `nvme` for disks; `DDR4`, `DDR5` for DIMMs; empty: any.
    #[serde(default)]
    pub interface: String,
    #[serde(default)]
    pub capacity_bytes: Option<u64>,
    /// System models (DMI product names) it fits; empty: any.
    #[serde(default)]
    pub fits_asset_models: Vec<String>,
    /// RAID controller models it fits (a cache backup unit); empty: any.
    #[serde(default)]
    pub fits_controller_models: Vec<String>,
    #[serde(default)]
    pub description: String,
}

/// A part of an asset that may need a spare.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PartSpec {
    pub part_type: String,
    /// Where it sits: the disk's device (or controller and enclosure:slot),
    /// the DIMM's locator, the fan's label, the power supply's name, the
    /// controller (`c0`) of a controller or of its cache backup unit.
    pub slot: String,
    pub model: String,
    pub serial: String,
    pub interface: String,
    pub capacity_bytes: Option<u64>,
    /// The asset's system model (DMI product name).
    pub asset_model: String,
    /// The model of the RAID controller the part belongs to (a cache backup
    /// unit); empty otherwise.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub controller_model: String,
}

/// Whether `spare` can replace `part`.
pub fn fits(spare: &SpareModel, part: &PartSpec) -> bool {
    if !spare.part_type.eq_ignore_ascii_case(&part.part_type) {
        return false;
    }
    if !spare.interface.is_empty() && interface_family(&spare.interface) != interface_family(&part.interface) {
        return false;
    }
    if let (Some(need), Some(have)) = (part.capacity_bytes, spare.capacity_bytes) {
        let enough = if part.part_type.eq_ignore_ascii_case("dimm") {
            have == need
        } else {
            have >= need
        };
        if !enough {
            return false;
        }
    }
    let listed =
        |models: &[String], have: &str| models.is_empty() || models.iter().any(|m| m.eq_ignore_ascii_case(have));
    listed(&spare.fits_asset_models, &part.asset_model) && listed(&spare.fits_controller_models, &part.controller_model)
}

/// One name per disk bus: smartctl says `ata` and `scsi` where sysfs says
/// `sata` and `sas`.
fn interface_family(s: &str) -> String {
    let s = s.trim().to_ascii_lowercase();
    match s.as_str() {
        "ata" | "sata" => "sata".into(),
        "scsi" | "sas" => "sas".into(),
        _ => s,
    }
}

/// The interface the agent gives the block device of a RAID virtual disk:
/// no replaceable part (its member disks are).
pub const RAID_VOLUME_INTERFACE: &str = "raid";

/// The replaceable parts an inventory lists: disks (those behind a RAID
/// controller by their location; not a virtual disk's block device), DIMMs,
/// power supplies, RAID controllers and their cache backup units.
pub fn parts_of(inv: &Inventory) -> Vec<PartSpec> {
    let asset_model = inv.dmi.product_name.clone();
    let disks = inv
        .disks
        .iter()
        .filter(|d| !d.interface.eq_ignore_ascii_case(RAID_VOLUME_INTERFACE))
        .map(|d| PartSpec {
            part_type: "disk".into(),
            slot: if d.location.is_empty() {
                d.name.clone()
            } else {
                d.location.clone()
            },
            model: d.model.clone(),
            serial: d.serial.clone(),
            interface: d.interface.clone(),
            capacity_bytes: (d.capacity_bytes > 0).then_some(d.capacity_bytes),
            asset_model: asset_model.clone(),
            controller_model: String::new(),
        });
    let dimms = inv
        .memory_modules
        .iter()
        .filter(|m| m.size_bytes > 0)
        .map(|m| PartSpec {
            part_type: "dimm".into(),
            slot: m.locator.clone(),
            model: m.part_number.clone(),
            serial: m.serial.clone(),
            interface: m.kind.clone(),
            capacity_bytes: Some(m.size_bytes),
            asset_model: asset_model.clone(),
            controller_model: String::new(),
        });
    let psus = inv.power_supplies.iter().map(|p| PartSpec {
        part_type: "psu".into(),
        slot: p.name.clone(),
        model: p.model.clone(),
        serial: p.serial.clone(),
        interface: String::new(),
        capacity_bytes: None,
        asset_model: asset_model.clone(),
        controller_model: String::new(),
    });
    let controllers = inv.raid_controllers.iter().map(|c| PartSpec {
        part_type: "controller".into(),
        slot: c.id.clone(),
        model: c.model.clone(),
        serial: c.serial.clone(),
        interface: String::new(),
        capacity_bytes: None,
        asset_model: asset_model.clone(),
        controller_model: String::new(),
    });
    let backups = inv
        .raid_controllers
        .iter()
        .filter(|c| !c.cache_backup.trim().is_empty())
        .map(|c| PartSpec {
            part_type: "bbu".into(),
            slot: c.id.clone(),
            model: c.cache_backup_model.clone(),
            serial: String::new(),
            interface: String::new(),
            capacity_bytes: None,
            asset_model: asset_model.clone(),
            controller_model: c.model.clone(),
        });
    disks
        .chain(dimms)
        .chain(psus)
        .chain(controllers)
        .chain(backups)
        .collect()
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Spares(format!("stored {what} cannot be read: {e}"))
}

/// A stored spare model with its lists decoded.
fn model_from(m: StoredSpareModel) -> Result<SpareModel, StoreError> {
    Ok(SpareModel {
        model: m.model,
        part_type: m.part_type,
        interface: m.interface,
        capacity_bytes: m.capacity_bytes.and_then(|c| u64::try_from(c).ok()),
        fits_asset_models: serde_json::from_str(&m.fits_asset_models).map_err(|e| corrupt("spare model", e))?,
        fits_controller_models: serde_json::from_str(&m.fits_controller_models)
            .map_err(|e| corrupt("spare model", e))?,
        description: m.description,
    })
}

/// Every spare model.
pub fn models(db: &dyn Sql) -> Result<Vec<SpareModel>, StoreError> {
    db.spare_models()?.into_iter().map(model_from).collect()
}

/// Adds or replaces a spare model.
pub fn put_model(db: &dyn Sql, m: &SpareModel) -> Result<(), StoreError> {
    if m.model.trim().is_empty() || m.part_type.trim().is_empty() {
        return Err(StoreError::Spares("model and part_type must not be empty".into()));
    }
    let capacity = m
        .capacity_bytes
        .map(i64::try_from)
        .transpose()
        .map_err(|_| StoreError::Spares(format!("capacity_bytes: larger than {}", i64::MAX)))?;
    let fits = serde_json::to_string(&m.fits_asset_models).map_err(|e| corrupt("spare model", e))?;
    let controllers = serde_json::to_string(&m.fits_controller_models).map_err(|e| corrupt("spare model", e))?;
    db.put_spare_model(&StoredSpareModel {
        model: m.model.clone(),
        part_type: m.part_type.clone(),
        interface: m.interface.clone(),
        capacity_bytes: capacity,
        fits_asset_models: fits,
        fits_controller_models: controllers,
        description: m.description.clone(),
    })?;
    Ok(())
}

/// Every stock line, with what is reserved.
pub fn stock(db: &dyn Sql) -> Result<Vec<Stock>, StoreError> {
    Ok(db.spare_stock()?)
}

/// Sets the stock of a model at a location (a count, or parts received).
/// Stock back at its minimum closes the open replenishment request.
pub fn set_stock(
    db: &dyn Sql,
    model: &str,
    location: &str,
    quantity: i64,
    min_stock: i64,
    now_ms: i64,
) -> Result<(), StoreError> {
    if quantity < 0 || min_stock < 0 {
        return Err(StoreError::Spares("quantity and min_stock must not be negative".into()));
    }
    if location.trim().is_empty() {
        return Err(StoreError::Spares("location must not be empty".into()));
    }
    if !db.spare_model_known(model)? {
        return Err(StoreError::NoSuchSpareModel(model.to_string()));
    }
    db.put_spare_stock(model, location, quantity, min_stock)?;
    check_minimum(db, model, location, now_ms)
}

/// Opens (or updates) the one replenishment request of a model and location
/// under its minimum, or closes it once stock is back.
fn check_minimum(db: &dyn Sql, model: &str, location: &str, now_ms: i64) -> Result<(), StoreError> {
    let Some((quantity, min_stock)) = db.stock_level(model, location)? else {
        return Ok(());
    };
    if quantity < min_stock {
        db.open_replenishment(model, location, min_stock - quantity, now_ms)?;
    } else {
        db.close_replenishment(model, location, now_ms)?;
    }
    Ok(())
}

/// Replenishment requests, open ones only unless `all`.
pub fn replenishments(db: &dyn Sql, all: bool) -> Result<Vec<Replenishment>, StoreError> {
    Ok(db.replenishments(all)?)
}

/// Reserves a compatible spare with stock available for `part` of `host`,
/// preferring the host's own `site` as location, then the smallest model
/// that fits. `None`: no compatible spare is available. Reserving twice for
/// the same recommendation returns the existing reservation.
pub fn reserve(
    db: &dyn Sql,
    part: &PartSpec,
    host: &str,
    site: &str,
    recommendation_id: Option<i64>,
    now_ms: i64,
) -> Result<Option<Reservation>, StoreError> {
    if let Some(id) = recommendation_id {
        if let Some(r) = reservation_for(db, id)? {
            return Ok(Some(r));
        }
    }
    let fitting: Vec<SpareModel> = models(db)?.into_iter().filter(|m| fits(m, part)).collect();
    let mut candidates: Vec<(bool, u64, Stock)> = stock(db)?
        .into_iter()
        .filter(|s| s.available > 0)
        .filter_map(|s| {
            let m = fitting.iter().find(|m| m.model == s.model)?;
            Some((s.location != site, m.capacity_bytes.unwrap_or(0), s))
        })
        .collect();
    candidates.sort_by(|a, b| (a.0, a.1, &a.2.model, &a.2.location).cmp(&(b.0, b.1, &b.2.model, &b.2.location)));
    let Some((_, _, s)) = candidates.into_iter().next() else {
        return Ok(None);
    };
    let id = db.add_reservation(&s.model, &s.location, recommendation_id, host, now_ms)?;
    Ok(Some(Reservation {
        id,
        model: s.model,
        location: s.location,
        recommendation_id,
        host: host.to_string(),
        status: "reserved".into(),
    }))
}

/// Reserves a spare for an accepted recommendation: the part on the record,
/// on the asset's system model, from the asset's site first.
pub fn reserve_for_recommendation(
    db: &dyn Sql,
    rec: &crate::predict::Recommendation,
    now_ms: i64,
) -> Result<Option<Reservation>, StoreError> {
    let asset = db.spare_asset(&rec.agent_id)?;
    let labels: std::collections::BTreeMap<String, String> = asset
        .as_ref()
        .and_then(|a| serde_json::from_str(&a.labels).ok())
        .unwrap_or_default();
    // An inventory that cannot be read is as good as none: the part is
    // matched without the system model.
    let inv: Option<Inventory> = asset
        .and_then(|a| a.inventory)
        .and_then(|doc| serde_json::from_str(&doc).ok());
    // A cache backup unit fits by its controller's model: the record names
    // the controller (its slot), the inventory says what model it is.
    let controller_model = match (&inv, rec.part_type.as_str()) {
        (Some(inv), "bbu") => inv
            .raid_controllers
            .iter()
            .find(|c| c.id == rec.part.slot)
            .map(|c| c.model.clone())
            .unwrap_or_default(),
        _ => String::new(),
    };
    let part = PartSpec {
        part_type: rec.part_type.clone(),
        slot: rec.part.slot.clone(),
        model: rec.part.model.clone(),
        serial: rec.part.serial.clone(),
        interface: rec.part.interface.clone(),
        capacity_bytes: rec.part.capacity_bytes,
        asset_model: inv.map(|i| i.dmi.product_name).unwrap_or_default(),
        controller_model,
    };
    let site = labels.get("site").map_or("", String::as_str);
    reserve(db, &part, &rec.host, site, Some(rec.id), now_ms)
}

/// The reservation held for a recommendation, if any.
pub fn reservation_for(db: &dyn Sql, recommendation_id: i64) -> Result<Option<Reservation>, StoreError> {
    Ok(db.reservation_for_recommendation(recommendation_id)?)
}

/// Gives a recommendation's reserved spare back (the recommendation was
/// dismissed).
pub fn release_for(db: &dyn Sql, recommendation_id: i64, now_ms: i64) -> Result<bool, StoreError> {
    Ok(db.release_reservation(recommendation_id, now_ms)?)
}

// --- service reports -----------------------------------------------------------

impl ServiceReport {
    /// Every problem with the report, each naming its field.
    pub fn problems(&self) -> Vec<String> {
        let mut p = Vec::new();
        for (name, v) in [
            ("host", &self.host),
            ("symptom", &self.symptom),
            ("work_done", &self.work_done),
            ("engineer", &self.engineer),
        ] {
            if v.trim().is_empty() {
                p.push(format!("{name}: must not be empty"));
            }
        }
        if self.mode != "on_site" && self.mode != "remote" {
            p.push(format!("mode: {:?} is not on_site or remote", self.mode));
        }
        for (i, part) in self.parts.iter().enumerate() {
            for (name, v) in [
                ("part_type", &part.part_type),
                ("slot", &part.slot),
                ("new_model", &part.new_model),
            ] {
                if v.trim().is_empty() {
                    p.push(format!("parts[{i}].{name}: must not be empty"));
                }
            }
        }
        p
    }
}

/// Records a service report. Each part replaced consumes a spare: the one
/// reserved for the host's recommendation of that model when there is one,
/// else one from stock (the given location, the host's site first, then
/// any). A stock falling under its minimum opens one replenishment request.
/// Returns the report's id.
///
/// Still on a SQLite connection: closing the recommendation and retiring
/// the old parts ([`crate::predict::records::act`],
/// [`crate::predict::on_parts_replaced`]) take one.
pub fn record_service_report(
    conn: &dyn Sql,
    report: &ServiceReport,
    site: &str,
    now_ms: i64,
) -> Result<i64, StoreError> {
    let problems = report.problems();
    if !problems.is_empty() {
        return Err(StoreError::Spares(problems.join("; ")));
    }
    let at = report.at_ms.unwrap_or(now_ms);
    let id = conn.add_service_report(report, at)?;
    for (i, part) in report.parts.iter().enumerate() {
        let (reservation_id, location) =
            match conn.held_spare(&report.host, &part.new_model, part.location.as_deref())? {
                Some(held) => {
                    conn.consume_reservation(held.id, now_ms)?;
                    // The replacement the spare was reserved for is done.
                    if let Some(rec) = held.recommendation_id {
                        match crate::predict::records::act(conn, rec, &crate::predict::RecAction::Done, now_ms) {
                            Ok(_) | Err(StoreError::NoSuchRecommendation(_)) | Err(StoreError::Recommendation(_)) => {}
                            Err(e) => return Err(e),
                        }
                    }
                    (Some(held.id), Some(held.location))
                }
                None => (
                    None,
                    take_from_stock(conn, &part.new_model, part.location.as_deref(), site)?,
                ),
            };
        if let Some(loc) = &location {
            conn.take_one_spare(&part.new_model, loc)?;
            check_minimum(conn, &part.new_model, loc, now_ms)?;
        }
        conn.add_service_report_part(
            id,
            i64::try_from(i).unwrap_or(i64::MAX),
            part,
            location.as_deref(),
            reservation_id,
        )?;
    }
    // The parts taken out are out of service from now on: their readings
    // cannot reopen the case, their findings and recommendations are done.
    let old: Vec<&str> = report.parts.iter().map(|p| p.old_serial.as_str()).collect();
    crate::predict::on_parts_replaced(conn, &report.host, &old, at, &format!("replaced (service report {id})"))?;
    Ok(id)
}

/// The location an unreserved spare is taken from: the given one, else the
/// site's, else any with unreserved stock. `None`: the part did not come
/// from our stock (nothing to decrement).
fn take_from_stock(
    db: &dyn Sql,
    model: &str,
    location: Option<&str>,
    site: &str,
) -> Result<Option<String>, StoreError> {
    let lines: Vec<Stock> = stock(db)?.into_iter().filter(|s| s.model == model).collect();
    if let Some(loc) = location {
        return Ok(lines.iter().find(|s| s.location == loc).map(|s| s.location.clone()));
    }
    let pick = lines
        .iter()
        .filter(|s| s.available > 0)
        .min_by_key(|s| (s.location != site, s.location.clone()))
        .or_else(|| lines.iter().find(|s| s.quantity > 0));
    Ok(pick.map(|s| s.location.clone()))
}

/// Service reports of a host (all when `None`), newest first.
pub fn service_reports(db: &dyn Sql, host: Option<&str>) -> Result<Vec<ServiceReport>, StoreError> {
    Ok(db.service_reports(host)?)
}

// --- coverage --------------------------------------------------------------------

/// A part with no compatible spare in stock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Gap {
    pub host: String,
    pub part: PartSpec,
}

/// Spare coverage of a customer's assets (all customers when `None`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Coverage {
    pub customer: Option<String>,
    pub assets: usize,
    pub parts: usize,
    pub covered: usize,
    /// `covered / parts`; 1 when there are no parts.
    pub ratio: f64,
    pub gaps: Vec<Gap>,
}

/// The current inventory of every host (of one customer), with its labels.
pub fn covered_assets(db: &dyn Sql, customer: Option<&str>) -> Result<Vec<(String, String, Inventory)>, StoreError> {
    let mut out = Vec::new();
    for a in db.spare_assets()? {
        let labels: std::collections::BTreeMap<String, String> = serde_json::from_str(&a.labels).unwrap_or_default();
        let cust = labels.get("customer").cloned().unwrap_or_default();
        if customer.is_some_and(|c| c != cust) {
            continue;
        }
        let Some(doc) = a.inventory else { continue };
        let inv: Inventory = serde_json::from_str(&doc).map_err(|e| corrupt("inventory", e))?;
        out.push((a.host, cust, inv));
    }
    Ok(out)
}

/// The spare models with stock available (not reserved).
fn models_in_stock(db: &dyn Sql) -> Result<Vec<SpareModel>, StoreError> {
    let stock = stock(db)?;
    Ok(models(db)?
        .into_iter()
        .filter(|m| stock.iter().any(|s| s.model == m.model && s.available > 0))
        .collect())
}

/// The coverage of `assets` (host, customer, inventory) by `in_stock`.
fn coverage_of(in_stock: &[SpareModel], assets: &[&(String, String, Inventory)], customer: Option<&str>) -> Coverage {
    let mut parts = 0;
    let mut gaps = Vec::new();
    for (host, _, inv) in assets {
        for part in parts_of(inv) {
            parts += 1;
            if !in_stock.iter().any(|m| fits(m, &part)) {
                gaps.push(Gap {
                    host: host.clone(),
                    part,
                });
            }
        }
    }
    let covered = parts - gaps.len();
    Coverage {
        customer: customer.map(String::from),
        assets: assets.len(),
        parts,
        covered,
        ratio: if parts == 0 { 1.0 } else { covered as f64 / parts as f64 },
        gaps,
    }
}

/// For every covered asset and every replaceable part it has: is a
/// compatible spare available (in stock, not reserved)?
pub fn coverage(db: &dyn Sql, customer: Option<&str>) -> Result<Coverage, StoreError> {
    let assets = covered_assets(db, customer)?;
    coverage_of_inventories(db, customer, &assets)
}

/// [`coverage`] of the inventories the caller chose (host, customer,
/// inventory), e.g. those in force at the end of a report's period, by the
/// spares available now (the stock keeps no history).
pub fn coverage_of_inventories(
    db: &dyn Sql,
    customer: Option<&str>,
    assets: &[(String, String, Inventory)],
) -> Result<Coverage, StoreError> {
    let assets: Vec<&(String, String, Inventory)> = assets.iter().collect();
    Ok(coverage_of(&models_in_stock(db)?, &assets, customer))
}

/// Coverage ratio per customer and how many stock lines are under their
/// minimum, for /metrics: one pass over the inventories and the stock.
pub fn gauges(db: &dyn Sql) -> Result<(Vec<(String, f64)>, u64), StoreError> {
    let in_stock = models_in_stock(db)?;
    let assets = covered_assets(db, None)?;
    let mut by_customer: std::collections::BTreeMap<&str, Vec<&(String, String, Inventory)>> =
        std::collections::BTreeMap::new();
    for a in &assets {
        by_customer.entry(a.1.as_str()).or_default().push(a);
    }
    let ratios = by_customer
        .into_iter()
        .map(|(c, list)| (c.to_string(), coverage_of(&in_stock, &list, Some(c)).ratio))
        .collect();
    let below = stock(db)?.iter().filter(|s| s.below_minimum).count() as u64;
    Ok((ratios, below))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use caretaker_shared::wire::{DiskInfo, DmiInfo, MemoryModule};

    const TB: u64 = 1_000_000_000_000;
    const GIB: u64 = 1 << 30;

    fn model(name: &str, part_type: &str, interface: &str, capacity: u64, fits: &[&str]) -> SpareModel {
        SpareModel {
            model: name.into(),
            part_type: part_type.into(),
            interface: interface.into(),
            capacity_bytes: Some(capacity),
            fits_asset_models: fits.iter().map(|s| s.to_string()).collect(),
            fits_controller_models: Vec::new(),
            description: String::new(),
        }
    }

    fn disk(slot: &str, interface: &str, capacity: u64) -> PartSpec {
        PartSpec {
            part_type: "disk".into(),
            slot: slot.into(),
            model: "OLD".into(),
            serial: format!("S-{slot}"),
            interface: interface.into(),
            capacity_bytes: Some(capacity),
            asset_model: "PowerEdge R740".into(),
            controller_model: String::new(),
        }
    }

    fn add_host(db: &dyn Sql, host: &str, customer: &str, inv: &Inventory) {
        let labels = serde_json::json!({"customer": customer, "site": "hq"}).to_string();
        crate::store::testing::add_asset(db, host, &labels, &serde_json::to_string(inv).unwrap());
    }

    #[test]
    fn what_fits() {
        let sata8 = model("ST8000NM", "disk", "sata", 8 * TB, &[]);
        assert!(
            fits(&sata8, &disk("sda", "SATA", 4 * TB)),
            "bigger is fine, case ignored"
        );
        assert!(!fits(&sata8, &disk("sda", "sata", 10 * TB)), "smaller is not");
        assert!(!fits(&sata8, &disk("nvme0n1", "nvme", TB)), "another interface");
        let any_iface = model("X", "disk", "", 8 * TB, &[]);
        assert!(fits(&any_iface, &disk("nvme0n1", "nvme", TB)));
        let dimm = |size| PartSpec {
            part_type: "dimm".into(),
            slot: "DIMM_A1".into(),
            model: "M393A4K40".into(),
            serial: "1".into(),
            interface: "DDR4".into(),
            capacity_bytes: Some(size),
            asset_model: "PowerEdge R740".into(),
            controller_model: String::new(),
        };
        let ddr4_32 = model("M393A4K40DB3", "dimm", "DDR4", 32 * GIB, &["PowerEdge R740"]);
        assert!(fits(&ddr4_32, &dimm(32 * GIB)));
        assert!(!fits(&ddr4_32, &dimm(16 * GIB)), "a DIMM is like for like");
        let mut other_box = dimm(32 * GIB);
        other_box.asset_model = "ProLiant DL380".into();
        assert!(!fits(&ddr4_32, &other_box), "not listed for that system");
    }

    #[test]
    fn spare_flow_reserve_consume_replenish_once() {
        let c = crate::store::testing::TestDb::new();
        put_model(&c, &model("ST8000NM", "disk", "sata", 8 * TB, &[])).unwrap();
        set_stock(&c, "ST8000NM", "hq", 2, 2, 0).unwrap();
        set_stock(&c, "ST8000NM", "branch", 1, 0, 0).unwrap();
        assert!(replenishments(&c, false).unwrap().is_empty());

        // Accepting recommendation 7 reserves a spare at the host's site.
        let part = disk("sdb", "sata", 4 * TB);
        let r = reserve(&c, &part, "db01", "hq", Some(7), 10).unwrap().unwrap();
        assert_eq!((r.model.as_str(), r.location.as_str()), ("ST8000NM", "hq"));
        assert_eq!(
            reserve(&c, &part, "db01", "hq", Some(7), 11).unwrap(),
            Some(r.clone()),
            "idempotent"
        );
        let hq = |c: &dyn Sql| stock(c).unwrap().into_iter().find(|s| s.location == "hq").unwrap();
        assert_eq!((hq(&c).quantity, hq(&c).reserved, hq(&c).available), (2, 1, 1));

        // The service report that replaces the disk consumes that spare:
        // hq falls under its minimum, which opens one request.
        let report = ServiceReport {
            id: None,
            case_id: Some(3),
            host: "db01".into(),
            mode: "on_site".into(),
            symptom: "pending sectors growing on sdb".into(),
            work_done: "replaced sdb, rebuilt the mirror".into(),
            engineer: "kim".into(),
            minutes: 45,
            parts: vec![PartReplaced {
                part_type: "disk".into(),
                slot: "sdb".into(),
                old_model: "ST4000NM".into(),
                old_serial: "ZC1B0002".into(),
                new_model: "ST8000NM".into(),
                new_serial: "ZC9X0003".into(),
                location: None,
            }],
            at_ms: None,
        };
        record_service_report(&c, &report, "hq", 20).unwrap();
        assert_eq!((hq(&c).quantity, hq(&c).reserved), (1, 0));
        assert!(reservation_for(&c, 7).unwrap().is_none());
        let open = replenishments(&c, false).unwrap();
        assert_eq!(open.len(), 1);
        assert_eq!(
            (open[0].model.as_str(), open[0].location.as_str(), open[0].quantity),
            ("ST8000NM", "hq", 1)
        );

        // A second replacement from hq stock: still one request, for two.
        record_service_report(&c, &report, "hq", 30).unwrap();
        assert_eq!(hq(&c).quantity, 0);
        let open = replenishments(&c, false).unwrap();
        assert_eq!(open.len(), 1);
        assert_eq!(open[0].quantity, 2);
        // Parts received: the request closes.
        set_stock(&c, "ST8000NM", "hq", 3, 2, 40).unwrap();
        assert!(replenishments(&c, false).unwrap().is_empty());
        assert_eq!(replenishments(&c, true).unwrap()[0].status, "received");

        let reports = service_reports(&c, Some("db01")).unwrap();
        assert_eq!(reports.len(), 2);
        assert_eq!(reports[0].parts[0].new_serial, "ZC9X0003");
        assert_eq!(reports[0].parts[0].location.as_deref(), Some("hq"));
    }

    #[test]
    fn no_compatible_spare_is_said_plainly() {
        let c = crate::store::testing::TestDb::new();
        put_model(&c, &model("ST8000NM", "disk", "sata", 8 * TB, &[])).unwrap();
        set_stock(&c, "ST8000NM", "hq", 1, 0, 0).unwrap();
        assert_eq!(
            reserve(&c, &disk("nvme0n1", "nvme", TB), "db01", "hq", Some(1), 0).unwrap(),
            None
        );
        // The only one is reserved: none left for a second part.
        assert!(
            reserve(&c, &disk("sda", "sata", TB), "db01", "hq", Some(2), 0)
                .unwrap()
                .is_some()
        );
        assert_eq!(
            reserve(&c, &disk("sdb", "sata", TB), "db01", "hq", Some(3), 0).unwrap(),
            None
        );
        // Released again by a dismissal.
        assert!(release_for(&c, 2, 1).unwrap());
        assert!(
            reserve(&c, &disk("sdb", "sata", TB), "db01", "hq", Some(3), 2)
                .unwrap()
                .is_some()
        );
        assert!(matches!(
            set_stock(&c, "NOPE", "hq", 1, 0, 0),
            Err(StoreError::NoSuchSpareModel(_))
        ));
        assert!(matches!(
            set_stock(&c, "ST8000NM", "hq", -1, 0, 0),
            Err(StoreError::Spares(_))
        ));
    }

    #[test]
    fn coverage_kpi_and_gaps_on_a_fleet() {
        let c = crate::store::testing::TestDb::new();
        let r740 = DmiInfo {
            product_name: "PowerEdge R740".into(),
            ..DmiInfo::default()
        };
        let mut a = Inventory {
            hostname: "db01".into(),
            dmi: r740.clone(),
            ..Inventory::default()
        };
        a.disks = vec![
            DiskInfo {
                name: "sda".into(),
                model: "ST4000NM".into(),
                serial: "A1".into(),
                capacity_bytes: 4 * TB,
                interface: "sata".into(),
                ..DiskInfo::default()
            },
            DiskInfo {
                name: "nvme0n1".into(),
                model: "PM983".into(),
                serial: "N1".into(),
                capacity_bytes: TB,
                interface: "nvme".into(),
                ..DiskInfo::default()
            },
        ];
        a.memory_modules = vec![MemoryModule {
            locator: "DIMM_A1".into(),
            size_bytes: 32 * GIB,
            kind: "DDR4".into(),
            part_number: "M393A4K40".into(),
            serial: "D1".into(),
            ..MemoryModule::default()
        }];
        add_host(&c, "db01", "acme", &a);
        let mut other = a.clone();
        other.hostname = "x1".into();
        add_host(&c, "x1", "globex", &other);
        put_model(&c, &model("ST8000NM", "disk", "sata", 8 * TB, &[])).unwrap();
        put_model(
            &c,
            &model("M393A4K40DB3", "dimm", "DDR4", 32 * GIB, &["PowerEdge R740"]),
        )
        .unwrap();
        put_model(&c, &model("PM9A3", "disk", "nvme", 2 * TB, &[])).unwrap();
        set_stock(&c, "ST8000NM", "hq", 1, 1, 0).unwrap();
        set_stock(&c, "M393A4K40DB3", "hq", 2, 1, 0).unwrap();
        // The NVMe spare model exists but none is on the shelf.
        set_stock(&c, "PM9A3", "hq", 0, 1, 0).unwrap();

        let cov = coverage(&c, Some("acme")).unwrap();
        assert_eq!((cov.assets, cov.parts, cov.covered), (1, 3, 2));
        assert!((cov.ratio - 2.0 / 3.0).abs() < 1e-9);
        assert_eq!(cov.gaps.len(), 1);
        assert_eq!(
            (cov.gaps[0].host.as_str(), cov.gaps[0].part.slot.as_str()),
            ("db01", "nvme0n1")
        );
        let all = coverage(&c, None).unwrap();
        assert_eq!((all.assets, all.parts), (2, 6));
        let (ratios, below) = gauges(&c).unwrap();
        assert_eq!(ratios.len(), 2);
        assert_eq!(below, 1, "PM9A3 at hq is under its minimum");

        // Stocked: full coverage.
        set_stock(&c, "PM9A3", "hq", 1, 1, 0).unwrap();
        assert_eq!(coverage(&c, Some("acme")).unwrap().ratio, 1.0);
    }

    /// A PowerEdge with a PERC and its battery, a virtual disk's block
    /// device, a SAS disk behind the controller and two power supplies.
    fn raid_server() -> Inventory {
        Inventory {
            hostname: "srv1".into(),
            dmi: DmiInfo {
                product_name: "PowerEdge R730".into(),
                ..DmiInfo::default()
            },
            disks: vec![
                DiskInfo {
                    name: "sda".into(),
                    model: "PERC H730P Mini".into(),
                    capacity_bytes: 12 * TB,
                    interface: "raid".into(),
                    ..DiskInfo::default()
                },
                DiskInfo {
                    name: "c0/e252/s3".into(),
                    location: "c0 252:3".into(),
                    model: "ST4000NM0023".into(),
                    serial: "Z1Z3ABCD".into(),
                    capacity_bytes: 4 * TB,
                    interface: "sas".into(),
                    ..DiskInfo::default()
                },
            ],
            power_supplies: ["CN01", "CN02"]
                .iter()
                .enumerate()
                .map(|(i, serial)| caretaker_shared::wire::PsuInfo {
                    name: format!("PS{}", i + 1),
                    model: "0PJMDN".into(),
                    serial: serial.to_string(),
                    ..Default::default()
                })
                .collect(),
            raid_controllers: vec![caretaker_shared::wire::RaidControllerInfo {
                id: "c0".into(),
                model: "PERC H730P Mini".into(),
                serial: "5CF03RP".into(),
                cache_backup: "bbu".into(),
                cache_backup_model: "70K80".into(),
                ..Default::default()
            }],
            ..Inventory::default()
        }
    }

    #[test]
    fn raid_servers_list_psus_controllers_and_cache_backups_and_not_their_volumes() {
        let parts = parts_of(&raid_server());
        let got: Vec<(&str, &str, &str, &str)> = parts
            .iter()
            .map(|p| {
                (
                    p.part_type.as_str(),
                    p.slot.as_str(),
                    p.model.as_str(),
                    p.controller_model.as_str(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("disk", "c0 252:3", "ST4000NM0023", ""),
                ("psu", "PS1", "0PJMDN", ""),
                ("psu", "PS2", "0PJMDN", ""),
                ("controller", "c0", "PERC H730P Mini", ""),
                ("bbu", "c0", "70K80", "PERC H730P Mini"),
            ]
        );
        assert!(parts.iter().all(|p| p.asset_model == "PowerEdge R730"));
        // A controller without a cache backup has no such part.
        let mut bare = raid_server();
        bare.raid_controllers[0].cache_backup.clear();
        assert!(!parts_of(&bare).iter().any(|p| p.part_type == "bbu"));
    }

    #[test]
    fn cache_backups_fit_by_controller_model_and_psus_by_system_model() {
        let parts = parts_of(&raid_server());
        let part = |t: &str| parts.iter().find(|p| p.part_type == t).unwrap();
        let mut bbu = model("70K80", "bbu", "", 0, &[]);
        bbu.capacity_bytes = None;
        assert!(fits(&bbu, part("bbu")), "no list: fits any controller");
        bbu.fits_controller_models = vec!["perc h730p mini".into(), "PERC H730 Mini".into()];
        assert!(fits(&bbu, part("bbu")), "listed, case ignored");
        bbu.fits_controller_models = vec!["PERC H740P Mini".into()];
        assert!(!fits(&bbu, part("bbu")), "another controller family");
        assert!(!fits(&bbu, part("controller")), "another part type");
        let mut psu = model("0PJMDN", "psu", "", 0, &["PowerEdge R730", "PowerEdge R630"]);
        psu.capacity_bytes = None;
        assert!(fits(&psu, part("psu")));
        psu.fits_asset_models = vec!["ProLiant DL380 Gen9".into()];
        assert!(!fits(&psu, part("psu")));
        // The stored model keeps its controller list.
        let c = crate::store::testing::TestDb::new();
        bbu.fits_controller_models = vec!["PERC H730P Mini".into()];
        put_model(&c, &bbu).unwrap();
        assert_eq!(models(&c).unwrap(), [bbu]);
    }

    #[test]
    fn coverage_counts_psus_controllers_and_cache_backups() {
        let c = crate::store::testing::TestDb::new();
        add_host(&c, "srv1", "acme", &raid_server());
        let cov = coverage(&c, Some("acme")).unwrap();
        assert_eq!((cov.parts, cov.covered), (5, 0));
        let mut bbu = model("70K80", "bbu", "", 0, &[]);
        bbu.capacity_bytes = None;
        bbu.fits_controller_models = vec!["PERC H730P Mini".into()];
        put_model(&c, &bbu).unwrap();
        let mut psu = model("0PJMDN", "psu", "", 0, &["PowerEdge R730"]);
        psu.capacity_bytes = None;
        put_model(&c, &psu).unwrap();
        set_stock(&c, "70K80", "hq", 1, 0, 0).unwrap();
        set_stock(&c, "0PJMDN", "hq", 1, 0, 0).unwrap();
        let cov = coverage(&c, Some("acme")).unwrap();
        assert_eq!((cov.parts, cov.covered), (5, 3), "{:?}", cov.gaps);
        let gaps: Vec<&str> = cov.gaps.iter().map(|g| g.part.part_type.as_str()).collect();
        assert_eq!(gaps, ["disk", "controller"]);
    }

    #[test]
    fn a_service_report_names_what_is_missing() {
        let r = ServiceReport {
            id: None,
            case_id: None,
            host: " ".into(),
            mode: "phone".into(),
            symptom: "x".into(),
            work_done: String::new(),
            engineer: "kim".into(),
            minutes: 5,
            parts: vec![PartReplaced {
                part_type: "disk".into(),
                slot: String::new(),
                old_model: String::new(),
                old_serial: String::new(),
                new_model: "M".into(),
                new_serial: String::new(),
                location: None,
            }],
            at_ms: None,
        };
        let p = r.problems().join("; ");
        for field in ["host", "work_done", "mode", "parts[0].slot"] {
            assert!(p.contains(field), "{field}: {p}");
        }
        let c = crate::store::testing::TestDb::new();
        assert!(matches!(
            record_service_report(&c, &r, "", 0),
            Err(StoreError::Spares(_))
        ));
        assert!(service_reports(&c, None).unwrap().is_empty(), "nothing recorded");
    }
}
