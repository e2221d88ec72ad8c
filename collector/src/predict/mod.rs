//! Part replacement recommendations: which disk, DIMM, fan, power supply,
//! RAID controller or cache backup unit should be replaced, why, and how
//! soon.
//!
//! - [`assess`] judges a disk from its latest reading and SMART history (a
//!   pure function; the reasoning and references are beside it).
//! - [`records`] keeps the recommendations (one active per part) and their
//!   lifecycle `open → accepted → reserved → done | dismissed`.
//! - [`assess_host`] runs after each disk scan is recorded, in the writer's
//!   transaction; [`on_signal`] runs when the rule engine opens a finding or
//!   case that names a replaceable part (a DIMM correcting more and more
//!   errors, a fan or PSU sensor in alarm, a BMC sensor or event log entry
//!   about a fan, PSU or DIMM, a disk behind a RAID controller that failed
//!   or predicts its failure, a failed controller or cache backup unit), or
//!   when an agent event names the failed disk of an array whose case is
//!   already open.
//! - [`on_accept`] is where an accepted recommendation reserves a spare.

pub mod assess;
pub mod records;

use caretaker_shared::disk_health::{Disk, Protocol};
use caretaker_shared::wire::{Inventory, PsuInfo};
use serde_json::{Value, json};

pub use assess::{Assessment, Risk, Urgency, assess};
pub use records::{Filter, Part, PartType, Raise, Raised, RecAction, RecStatus, Recommendation, TransitionError};

use crate::cases::store::Outcome;
use crate::cases::{IdentityKey, ItemKind, Policy, Severity, Signal};
use crate::store::agents::Agents;
use crate::store::disks::DiskStore;
use crate::store::recommendations::Recommendations;
use crate::store::sql::Sql;
use crate::store::{Assets, StoreError};

/// The check (and rule) name of the cable/backplane finding of a disk whose
/// CRC errors rise alone.
pub const CABLE_CHECK: &str = "disk_cable_suspect";

/// Rules whose new finding or case names a DIMM (component: its label) that
/// should be replaced. Rising correctable errors on one DIMM are the classic
/// early sign of a failing module; the controller-wide rule
/// (`edac_correctable_errors_grew`) cannot name the module and is left out.
pub const DIMM_RULES: &[&str] = &["edac_dimm_correctable_errors_grew"];
/// Rules whose new finding or case names a hardware monitoring sensor in
/// alarm (component: its label); a fan or PSU is named when the label says so.
pub const SENSOR_RULES: &[&str] = &["hwmon_alarm"];
/// Checks (of live BMC sensors, shared by the BMC event log's rules) whose
/// item names a power supply or a fan by its sensor (component).
pub const BMC_PART_CHECKS: &[(&str, PartType)] = &[
    ("ipmi_psu_critical", PartType::Psu),
    ("ipmi_fan_critical", PartType::Fan),
];
/// Rules of the BMC event log whose item names a DIMM by its sensor.
pub const BMC_DIMM_RULES: &[&str] = &["ipmi_sel_correctable_ecc_limit"];
/// The event rule naming the failed disk of a degraded array (labels:
/// controller, vd, slot, serial, model, interface, size_bytes).
pub const ARRAY_DISK_RULES: &[&str] = &["raid_disk_failed_in_array"];
/// Rules whose item names a disk behind a RAID controller by its serial
/// (component), and whether it must be replaced now (failed) or soon.
pub const RAID_DISK_RULES: &[(&str, bool)] = &[
    ("raid_disk_failed", true),
    ("raid_disk_media_errors_grew", false),
    ("raid_disk_predictive_failures_grew", false),
    ("raid_disk_smart_alert", false),
];
/// Rules whose item names a RAID controller (component) to replace, or its
/// cache backup unit.
pub const CONTROLLER_RULES: &[(&str, PartType)] = &[
    ("raid_controller_failed", PartType::Controller),
    ("raid_bbu_failed", PartType::Bbu),
];

/// Days within which a DIMM with growing corrected errors should be swapped:
/// corrected errors are not data loss yet, but they tend to turn uncorrectable.
pub const DIMM_DAYS: u32 = 14;
/// Days within which a fan or PSU in alarm should be swapped: the redundancy
/// (or the cooling margin) is already gone.
pub const FAN_PSU_DAYS: u32 = 7;
/// Days within which a disk behind a RAID controller that predicts its
/// failure (media errors, predictive failures, SMART alert) should be
/// swapped: the array is still whole, the swap can be planned.
pub const RAID_DISK_DAYS: u32 = 14;
/// Days within which a failed cache backup unit should be swapped: the
/// controller runs write-through (slow) or risks its cache meanwhile.
pub const BBU_DAYS: u32 = 14;

/// History rows read per disk: the assessment looks back at most 180 days,
/// and a quiet disk has one row a day.
const HISTORY_ROWS: u32 = 500;

/// What [`assess_host`] did, for logs and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostSummary {
    pub disks: usize,
    pub raised: Vec<Raised>,
    pub cable_findings: Vec<Outcome>,
}

fn interface(p: Protocol) -> &'static str {
    match p {
        Protocol::Ata => "ata",
        Protocol::Nvme => "nvme",
        Protocol::Scsi => "scsi",
        Protocol::Unknown => "",
    }
}

/// Assesses every current disk of one agent after a scan was recorded (in
/// the caller's transaction), raising recommendations and opening the
/// cable/backplane finding of a disk whose CRC errors rise alone.
pub fn assess_host(
    conn: &dyn Sql,
    agent_id: &str,
    host: &str,
    customer: &str,
    now_ms: i64,
) -> Result<HostSummary, StoreError> {
    let docs = conn.disk_docs_by_key(agent_id)?;
    let mut out = HostSummary::default();
    for (key, doc) in docs {
        let disk: Disk = match serde_json::from_str(&doc) {
            Ok(d) => d,
            Err(e) => {
                tracing::warn!(agent_id, disk = %key, error = %e, "stored disk unreadable; not assessed");
                continue;
            }
        };
        if crate::cases::retired::is_retired(conn, host, &key, i64::MAX)? {
            // Taken out of service: the agent's cached reading of the old
            // disk (its scan time is that of the last SMART pass, before the
            // swap) must not raise its replacement again.
            continue;
        }
        out.disks += 1;
        let history = crate::disks::history(conn, agent_id, &key, HISTORY_ROWS)?;
        let a = assess(&disk, &history, now_ms);
        if a.cable_suspect {
            let signal = Signal {
                event: None,
                key: IdentityKey {
                    customer: customer.to_string(),
                    asset: host.to_string(),
                    check: CABLE_CHECK.to_string(),
                    component: key.clone(),
                },
                kind: ItemKind::Finding,
                severity: Severity::Warning,
                rule: CABLE_CHECK.to_string(),
                firing: true,
                at_ms: now_ms,
                evidence: json!({
                    "rule": CABLE_CHECK,
                    "summary": format!("CRC errors of disk {} on {host} rise while its media counters do not: check the cable and backplane", disk.device),
                    "device": disk.device,
                    "model": disk.model,
                    "serial": disk.serial,
                    "assessment": a.evidence,
                }),
            };
            out.cable_findings
                .push(crate::cases::store::apply_signal(conn, &signal, &Policy::default())?);
        }
        if !a.urgency.recommends() {
            continue;
        }
        let item_id = conn.active_item_about(customer, host, &key)?;
        let raised = records::raise(
            conn,
            &Raise {
                agent_id: agent_id.to_string(),
                host: host.to_string(),
                customer: customer.to_string(),
                part_type: PartType::Disk,
                part: Part {
                    model: disk.model.clone(),
                    serial: disk.serial.clone(),
                    slot: disk.device.clone(),
                    interface: interface(disk.protocol).to_string(),
                    capacity_bytes: disk.capacity_bytes,
                },
                reason: a.reasons.join("; "),
                evidence: json!({
                    "disk": key,
                    "risk": a.risk,
                    "urgency": a.urgency,
                    "cable_suspect": a.cable_suspect,
                    "forecast_100pct_at_ms": a.forecast_100pct_at_ms,
                    "reasons": a.reasons,
                    "details": a.evidence,
                }),
                risk: a.risk.as_str().to_string(),
                urgency: a.urgency,
                item_id,
                at_ms: now_ms,
            },
        )?;
        out.raised.push(raised);
    }
    Ok(out)
}

/// The fan or PSU a sensor label names, if it names one (`"PSU1 Fan"` is the
/// power supply's own fan: the PSU is the replaceable part).
pub fn sensor_part(label: &str) -> Option<PartType> {
    let l = label.to_ascii_lowercase();
    let ps_n = l
        .strip_prefix("ps")
        .is_some_and(|r| r.starts_with(|c: char| c.is_ascii_digit()));
    if l.contains("psu") || l.contains("power supply") || ps_n {
        Some(PartType::Psu)
    } else if l.contains("fan") {
        Some(PartType::Fan)
    } else {
        None
    }
}

/// Raises the recommendation a newly opened finding or case asks for: the
/// DIMM of [`DIMM_RULES`] and [`BMC_DIMM_RULES`], the fan or PSU of
/// [`SENSOR_RULES`] and [`BMC_PART_CHECKS`], the disk of [`RAID_DISK_RULES`],
/// the controller or cache backup unit of [`CONTROLLER_RULES`]; and, for an
/// event of [`ARRAY_DISK_RULES`], the failed disk it names, whether the event
/// opened the array's case or joined it. Called by the store writer for each
/// signal it applied; anything else is ignored.
pub fn on_signal(conn: &dyn Sql, signal: &Signal, outcome: Outcome) -> Result<Raised, StoreError> {
    let item_id = match outcome {
        Outcome::Created(id) | Outcome::Reopened(id) | Outcome::Recurrence { id, .. } => id,
        // An event that joined an active item names a part of its own (the
        // failed disk of the degraded array).
        Outcome::Updated(id) if signal.event_message().is_some() => id,
        _ => return Ok(Raised::Nothing),
    };
    if !signal.firing {
        return Ok(Raised::Nothing);
    }
    let agent_id = conn.newest_agent_on_host(&signal.key.asset)?.unwrap_or_default();
    let Some(Wanted {
        part_type,
        part,
        reason,
        urgency,
    }) = wanted(conn, &agent_id, signal)?
    else {
        return Ok(Raised::Nothing);
    };
    if part.slot.is_empty() && part.serial.is_empty() {
        return Ok(Raised::Nothing);
    }
    records::raise(
        conn,
        &Raise {
            agent_id,
            host: signal.key.asset.clone(),
            customer: signal.key.customer.clone(),
            part_type,
            part,
            reason,
            evidence: signal.evidence.clone(),
            risk: Risk::High.as_str().to_string(),
            urgency,
            item_id: Some(item_id),
            at_ms: signal.at_ms,
        },
    )
}

/// The part a signal asks to replace.
struct Wanted {
    part_type: PartType,
    part: Part,
    reason: String,
    urgency: Urgency,
}

/// The number in a name (`PS2 Status` → 2, `Power Supply 1` → 1).
fn number_in(name: &str) -> Option<u32> {
    let digits: String = name
        .chars()
        .skip_while(|c| !c.is_ascii_digit())
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// The power supply of the inventory a BMC sensor names: the same name, a
/// sensor named after it (`PS2` → `PS2 Status`), or the only one with the
/// same number (`Power Supply 2` ↔ `PS2 Status`).
pub fn psu_for_sensor<'a>(inv: &'a Inventory, sensor: &str) -> Option<&'a PsuInfo> {
    let s = sensor.trim().to_ascii_lowercase();
    let by_name = inv.power_supplies.iter().find(|p| {
        let n = p.name.trim().to_ascii_lowercase();
        !n.is_empty() && (n == s || s.strip_prefix(&n).is_some_and(|r| r.starts_with([' ', '_', '-'])))
    });
    if by_name.is_some() {
        return by_name;
    }
    let n = number_in(sensor)?;
    let mut same = inv.power_supplies.iter().filter(|p| number_in(&p.name) == Some(n));
    match (same.next(), same.next()) {
        (Some(p), None) => Some(p),
        _ => None,
    }
}

/// What [`on_signal`] raises for `signal`, if anything.
fn wanted(conn: &dyn Sql, agent_id: &str, signal: &Signal) -> Result<Option<Wanted>, StoreError> {
    let labels = signal.evidence.get("labels").cloned().unwrap_or(Value::Null);
    let label = |k: &str| labels.get(k).and_then(Value::as_str).unwrap_or("").trim().to_string();
    let rule = signal.rule.as_str();
    let component = signal.key.component.clone();
    let within = Urgency::WithinDays;
    if DIMM_RULES.contains(&rule) {
        let slot = if component.is_empty() {
            format!("{}/{}", label("controller"), label("dimm"))
        } else {
            component
        };
        let reason = format!("corrected memory errors keep rising on DIMM {slot}");
        return Ok(Some(Wanted {
            part_type: PartType::Dimm,
            part: Part {
                slot,
                ..Part::default()
            },
            reason,
            urgency: within(DIMM_DAYS),
        }));
    }
    if SENSOR_RULES.contains(&rule) {
        let Some(t) = sensor_part(&component) else {
            return Ok(None);
        };
        let reason = format!("sensor {component} ({}) is in alarm", label("chip"));
        return Ok(Some(Wanted {
            part_type: t,
            part: Part {
                slot: component,
                ..Part::default()
            },
            reason,
            urgency: within(FAN_PSU_DAYS),
        }));
    }
    if BMC_DIMM_RULES.contains(&rule) {
        let inv = conn.latest_inventory(agent_id)?;
        let module = inv.as_ref().and_then(|inv| {
            inv.memory_modules.iter().find(|m| {
                let l = m.locator.trim();
                !l.is_empty() && (l.eq_ignore_ascii_case(&component) || component.contains(l))
            })
        });
        let part = Part {
            model: module.map(|m| m.part_number.clone()).unwrap_or_default(),
            serial: module.map(|m| m.serial.trim().to_string()).unwrap_or_default(),
            slot: module.map_or(component.clone(), |m| m.locator.clone()),
            interface: module.map(|m| m.kind.clone()).unwrap_or_default(),
            capacity_bytes: module.map(|m| m.size_bytes).filter(|s| *s > 0),
        };
        let reason = format!("the BMC reached its logging limit of corrected memory errors on {component}");
        return Ok(Some(Wanted {
            part_type: PartType::Dimm,
            part,
            reason,
            urgency: within(DIMM_DAYS),
        }));
    }
    if let Some((_, part_type)) = BMC_PART_CHECKS.iter().find(|(c, _)| *c == signal.key.check) {
        // A redundancy sensor names no unit (the unit's own sensor does);
        // lost input power is the feed, not the power supply.
        let text = format!("{component} {}", signal.event_message().unwrap_or("")).to_ascii_lowercase();
        if component.is_empty() || ["redundan", "ac lost", "input lost"].iter().any(|w| text.contains(w)) {
            return Ok(None);
        }
        let mut part = Part {
            slot: component.clone(),
            ..Part::default()
        };
        if *part_type == PartType::Psu
            && let Some(inv) = conn.latest_inventory(agent_id)?
            && let Some(p) = psu_for_sensor(&inv, &component)
        {
            part.model = p.model.trim().to_string();
            part.serial = p.serial.trim().to_string();
            if !p.name.trim().is_empty() {
                part.slot = p.name.trim().to_string();
            }
        }
        let what = if *part_type == PartType::Psu {
            "power supply"
        } else {
            "fan"
        };
        let reason = match signal.event_message() {
            Some(m) => format!("the BMC logged a {what} failure: {m}"),
            None => format!("BMC sensor {component} of the {what} is critical"),
        };
        return Ok(Some(Wanted {
            part_type: *part_type,
            part,
            reason,
            urgency: within(FAN_PSU_DAYS),
        }));
    }
    if ARRAY_DISK_RULES.contains(&rule) {
        let location = format!("{} {}", label("controller"), label("slot")).trim().to_string();
        let serial = label("serial");
        let part = Part {
            model: label("model"),
            serial: if serial == location { String::new() } else { serial },
            slot: location,
            interface: label("interface"),
            capacity_bytes: label("size_bytes").parse().ok().filter(|s: &u64| *s > 0),
        };
        let reason = format!(
            "disk {} ({}, serial {}) of array {} is {}",
            part.slot,
            part.model,
            part.serial,
            label("vd"),
            label("state").to_ascii_lowercase()
        );
        return Ok(Some(Wanted {
            part_type: PartType::Disk,
            part,
            reason,
            urgency: Urgency::ReplaceNow,
        }));
    }
    if let Some((_, failed)) = RAID_DISK_RULES.iter().find(|(r, _)| *r == rule) {
        let location = format!("{} {}", label("controller"), label("slot")).trim().to_string();
        // The agent names a disk it cannot read the serial of (missing) by
        // its controller and slot: then there is no serial to go by.
        let serial = if component == location {
            String::new()
        } else {
            component.clone()
        };
        let inv = conn.latest_inventory(agent_id)?;
        let disk = inv.as_ref().and_then(|inv| {
            inv.disks
                .iter()
                .find(|d| !serial.is_empty() && d.serial.trim() == serial)
        });
        let part = Part {
            model: disk.map(|d| d.model.clone()).unwrap_or_default(),
            serial,
            slot: disk
                .map(|d| d.location.clone())
                .filter(|l| !l.is_empty())
                .unwrap_or(location),
            interface: disk.map(|d| d.interface.clone()).unwrap_or_default(),
            capacity_bytes: disk.map(|d| d.capacity_bytes).filter(|c| *c > 0),
        };
        let why = match rule {
            "raid_disk_failed" => "failed, is unconfigured-bad or missing",
            "raid_disk_media_errors_grew" => "counts more and more media errors",
            "raid_disk_predictive_failures_grew" => "predicts its failure",
            _ => "raised its SMART alert",
        };
        let reason = format!(
            "disk {} (serial {}) behind the RAID controller {why}",
            part.slot, part.serial
        );
        return Ok(Some(Wanted {
            part_type: PartType::Disk,
            part,
            reason,
            urgency: if *failed {
                Urgency::ReplaceNow
            } else {
                within(RAID_DISK_DAYS)
            },
        }));
    }
    if let Some((_, part_type)) = CONTROLLER_RULES.iter().find(|(r, _)| *r == rule) {
        let inv = conn.latest_inventory(agent_id)?;
        let controller = inv
            .as_ref()
            .and_then(|inv| inv.raid_controllers.iter().find(|c| c.id == component));
        let (part, reason, urgency) = if *part_type == PartType::Bbu {
            let kind = controller
                .map(|c| c.cache_backup.clone())
                .filter(|k| !k.is_empty())
                .unwrap_or_else(|| "cache backup unit".into());
            (
                Part {
                    model: controller.map(|c| c.cache_backup_model.clone()).unwrap_or_default(),
                    slot: component.clone(),
                    ..Part::default()
                },
                format!("the {kind} of RAID controller {component} failed or asks for replacement"),
                within(BBU_DAYS),
            )
        } else {
            (
                Part {
                    model: controller.map(|c| c.model.clone()).unwrap_or_default(),
                    serial: controller.map(|c| c.serial.trim().to_string()).unwrap_or_default(),
                    slot: component.clone(),
                    ..Part::default()
                },
                format!("RAID controller {component} failed"),
                Urgency::ReplaceNow,
            )
        };
        return Ok(Some(Wanted {
            part_type: *part_type,
            part,
            reason,
            urgency,
        }));
    }
    Ok(None)
}

/// Raises what [`on_signal`] would for every item of [`DIMM_RULES`] or
/// [`SENSOR_RULES`] opened after log row `after`: items the lifecycle timers
/// open (a signal released from a maintenance window or the unmapped list)
/// never pass through the writer's signal job. Raising is idempotent, so an
/// item already seen there only refreshes its recommendation.
pub fn on_opened_since(conn: &dyn Sql, after: i64) -> Result<Vec<Raised>, StoreError> {
    let rules: Vec<&str> = DIMM_RULES
        .iter()
        .chain(SENSOR_RULES)
        .chain(BMC_DIMM_RULES)
        .chain(ARRAY_DISK_RULES)
        .copied()
        .chain(RAID_DISK_RULES.iter().map(|(r, _)| *r))
        .chain(CONTROLLER_RULES.iter().map(|(r, _)| *r))
        .collect();
    let checks: Vec<&str> = BMC_PART_CHECKS.iter().map(|(c, _)| *c).collect();
    let mut out = Vec::new();
    for item in conn.items_opened_after(after)? {
        if !rules.contains(&item.rule.as_str()) && !checks.contains(&item.check.as_str()) {
            continue;
        }
        let (id, kind, rule, evidence, at_ms) = (item.id, item.kind, item.rule, item.evidence, item.at_ms);
        let key = IdentityKey {
            customer: item.customer,
            asset: item.asset,
            check: item.check,
            component: item.component,
        };
        let evidence: Value = serde_json::from_str(&evidence).unwrap_or(Value::Null);
        let signal = Signal {
            event: crate::cases::EventOrigin::of_evidence(&evidence),
            key,
            kind: ItemKind::parse(&kind).unwrap_or(ItemKind::Finding),
            severity: Severity::Warning,
            rule,
            firing: true,
            at_ms,
            evidence,
        };
        out.push(on_signal(conn, &signal, Outcome::Created(id))?);
    }
    Ok(out)
}

/// Parts taken out of service on `host` (a service report replaced them, or
/// their serials left the inventory), by serial: each is retired on the
/// asset, as the serial and as the key of every disk that carried it
/// ([`crate::cases::retired`]), so the agent's cached reading of an old disk
/// cannot reopen anything; the findings about it are fixed, and its active
/// recommendations are done (a spare still reserved for one goes back on
/// the shelf). Answers how many components were newly retired.
pub fn on_parts_replaced(
    conn: &dyn Sql,
    host: &str,
    serials: &[&str],
    at_ms: i64,
    why: &str,
) -> Result<usize, StoreError> {
    let mut retired = 0;
    for serial in serials.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
        let mut components = vec![serial.to_string()];
        components.extend(conn.disk_keys_with_serial(host, serial)?);
        for component in &components {
            if crate::cases::retired::record(conn, host, component, serial, at_ms, why)? {
                retired += 1;
            }
            for id in conn.open_findings_about(host, component)? {
                crate::cases::store::act_by(
                    conn,
                    id,
                    crate::cases::Action::Fix,
                    "rule:part_replaced",
                    Some(why),
                    at_ms,
                )?;
            }
        }
        for id in records::finish_replaced(conn, host, serial, at_ms)? {
            crate::spares::release_for(conn, id, at_ms)?;
        }
    }
    Ok(retired)
}

/// Called when a recommendation is accepted, in the same transaction: a
/// compatible spare is reserved ([`crate::spares`]) and the recommendation
/// moves to `reserved`. Answers the reservation, or `None` when no
/// compatible spare is available (the recommendation stays accepted).
pub fn on_accept(conn: &dyn Sql, rec: &Recommendation) -> Result<Option<Value>, StoreError> {
    let Some(r) = crate::spares::reserve_for_recommendation(conn, rec, rec.updated_at_ms)? else {
        return Ok(None);
    };
    records::act(conn, rec.id, &RecAction::Reserve, rec.updated_at_ms)?;
    Ok(Some(serde_json::to_value(&r).unwrap_or(Value::Null)))
}

/// Called when a recommendation is dismissed: its reserved spare goes back
/// on the shelf.
pub fn on_dismiss(conn: &dyn Sql, rec: &Recommendation) -> Result<(), StoreError> {
    crate::spares::release_for(conn, rec.id, rec.updated_at_ms)?;
    Ok(())
}

#[cfg(test)]
mod tests;
