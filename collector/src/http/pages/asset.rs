//! `GET /assets/{host}`: the device archive of one asset. What it is (the
//! configuration list: system, CPU, memory and its modules, disks with
//! model, serial and firmware, network interfaces, OS, kernel, database
//! servers and their versions), each disk's health over time as a chart,
//! its configuration changes, its cases, findings and service reports with
//! the parts replaced, and a link to its Grafana dashboard when
//! `[web] grafana_url` is set. A customer's user sees its own assets only
//! (another's is "not found", like a missing one).

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use caretaker_shared::wire::Inventory;
use maud::{Markup, PreEscaped, html};

use super::render::{asset_items, duration};
use super::{PageError, Viewer, html_page, layout, not_found};
use crate::auth::{self, percent_encode};
use crate::disks::{self, DiskRow, HistoryPoint};
use crate::fleet::Host;
use crate::http::AppState;
use crate::queue::{self, AssetHistory};
use crate::store::assets::{AssetChange, Assets};

/// How many configuration changes and history points the page reads.
const CHANGES: u32 = 200;
const HISTORY: u32 = 1000;

/// One disk with its history, oldest point first.
struct DiskView {
    row: DiskRow,
    history: Vec<HistoryPoint>,
}

/// Everything the page shows.
struct Archive {
    history: AssetHistory,
    host: Option<std::sync::Arc<Host>>,
    changes: Vec<AssetChange>,
    disks: Vec<DiskView>,
}

pub(super) async fn asset_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    uri: Uri,
    Path(name): Path<String>,
) -> Result<Response, PageError> {
    let (who, session) = auth::page_principal(&state, &headers, &uri).await?;
    // The agent reporting under this name (the newest, if it was enrolled again).
    let host = state
        .fleet
        .snapshot()
        .into_iter()
        .filter(|h| h.host == name)
        .max_by_key(|h| h.last_seen_ms.unwrap_or(h.enrolled_at_ms));
    let agent = host.as_ref().map(|h| h.agent_id.clone());
    let n = name.clone();
    let found = crate::http::read(&state, move |c| {
        let Some(history) = queue::asset_history(c, &n)? else {
            return Ok(None);
        };
        let (changes, disks) = match &agent {
            Some(a) => {
                let mut views = Vec::new();
                for row in disks::list(c, Some(a))? {
                    let history = disks::history(c, a, &row.key, HISTORY)?;
                    views.push(DiskView { row, history });
                }
                (c.asset_changes(a, CHANGES)?, views)
            }
            None => (Vec::new(), Vec::new()),
        };
        Ok(Some((history, changes, disks)))
    })
    .await?;
    match found {
        // As for hosts: an unlabelled asset belongs to no customer.
        Some((history, changes, disks)) if who.may_see(history.customer.as_deref().unwrap_or_default()) => {
            let viewer = Viewer::new(&state, &who, &session.csrf);
            let archive = Archive {
                history,
                host,
                changes,
                disks,
            };
            let grafana = state.config.web.grafana_host_link(
                archive.history.customer.as_deref().unwrap_or_default(),
                &archive.history.host,
            );
            let down_after = state.config.hosts.down_after_intervals;
            Ok(html_page(
                StatusCode::OK,
                render(&viewer, &archive, grafana.as_deref(), down_after),
            ))
        }
        _ => Err(not_found("asset")),
    }
}

fn gib(bytes: u64) -> String {
    const GIB: f64 = 1024.0 * 1024.0 * 1024.0;
    let g = bytes as f64 / GIB;
    if g >= 1000.0 {
        format!("{:.1} TiB", g / 1024.0)
    } else if g >= 10.0 {
        format!("{g:.0} GiB")
    } else {
        format!("{g:.1} GiB")
    }
}

/// `text`, or "not reported" when the agent could not read it (a virtual
/// machine has no DMI serial).
fn known(text: &str) -> String {
    let t = text.trim();
    if t.is_empty() {
        "not reported".into()
    } else {
        t.to_string()
    }
}

/// The configuration list: the inventory in tables a person reads.
fn configuration(inv: &Inventory, disks: &[DiskView]) -> Markup {
    let dmi = &inv.dmi;
    html! {
        dl #system {
            dt { "System" } dd { (known(&format!("{} {}", dmi.sys_vendor, dmi.product_name))) }
            dt { "Serial" } dd { (known(&dmi.product_serial)) }
            dt { "BIOS" } dd {
                (known(&format!("{} {}", dmi.bios_vendor, dmi.bios_version)))
                @if !dmi.bios_date.is_empty() { " (" (dmi.bios_date) ")" }
            }
            dt { "CPU" } dd {
                (inv.cpu_model)
                @if inv.cpu_sockets > 0 { ", " (inv.cpu_sockets) " socket(s)" }
                @if inv.cpu_physical_cores > 0 { ", " (inv.cpu_physical_cores) " cores" }
                ", " (inv.cpu_threads.max(inv.cpu_cores)) " threads"
            }
            dt { "Memory" } dd { (gib(inv.memory_bytes)) }
            dt { "OS" } dd { (inv.os_name) " " (inv.os_version) }
            dt { "Kernel" } dd { (inv.kernel) " (" (inv.arch) ")" }
        }
        @if !inv.memory_modules.is_empty() {
            div.table-wrap role="region" aria-label="Memory modules" tabindex="0" {
                table #dimms {
                    caption { "Memory modules" }
                    thead { tr { th scope="col" { "Slot" } th scope="col" { "Size" } th scope="col" { "Type" } th scope="col" { "Maker" } th scope="col" { "Part" } th scope="col" { "Serial" } } }
                    tbody {
                        @for m in &inv.memory_modules {
                            tr { td { (m.locator) } td { (gib(m.size_bytes)) } td { (m.kind) } td { (m.manufacturer) } td { (m.part_number) } td { (m.serial) } }
                        }
                    }
                }
            }
        }
        @if !inv.disks.is_empty() {
            div.table-wrap role="region" aria-label="Disks" tabindex="0" {
                table #disks {
                    caption { "Disks" }
                    thead { tr {
                        th scope="col" { "Device" } th scope="col" { "Model" } th scope="col" { "Serial" } th scope="col" { "Firmware" }
                        th scope="col" { "Size" } th scope="col" { "Interface" } th scope="col" { "Health" }
                    } }
                    tbody {
                        @for d in &inv.disks {
                            @let health = disks.iter().find(|v| !d.serial.is_empty() && v.row.serial == d.serial);
                            tr {
                                td { (d.name) } td { (d.model) } td { (d.serial) } td { (d.firmware) }
                                td { (gib(d.capacity_bytes)) } td { (d.interface) }
                                td { @match health { Some(v) => { (v.row.verdict) }, None => { "not read" } } }
                            }
                        }
                    }
                }
            }
        }
        @if !inv.nics.is_empty() {
            div.table-wrap role="region" aria-label="Network interfaces" tabindex="0" {
                table #nics {
                    caption { "Network interfaces" }
                    thead { tr { th scope="col" { "Name" } th scope="col" { "MAC" } th scope="col" { "Speed" } th scope="col" { "Driver" } th scope="col" { "State" } } }
                    tbody {
                        @for n in &inv.nics {
                            tr {
                                td { (n.name) } td { (n.mac) }
                                td { @if let Some(s) = n.speed_mbps { (s) " Mb/s" } }
                                td { (n.driver) } td { (n.operstate) }
                            }
                        }
                    }
                }
            }
        }
        @if !inv.databases.is_empty() {
            div.table-wrap role="region" aria-label="Database servers" tabindex="0" {
                table #databases {
                    caption { "Database servers" }
                    thead { tr { th scope="col" { "Kind" } th scope="col" { "Version" } th scope="col" { "Port" } } }
                    tbody {
                        @for d in &inv.databases {
                            tr { td { (d.kind) } td { (d.version) } td { @if let Some(p) = d.port { (p) } } }
                        }
                    }
                }
            }
        }
    }
}

/// The counters a disk's chart draws: every error counter that was ever
/// above zero (wear and temperature have a chart of their own).
const NOT_ERRORS: &[&str] = &[
    "smart_passed",
    "power_on_hours",
    "temperature_c",
    "nvme_available_spare",
    "nvme_percentage_used",
];

/// The series of `history` for the counters `pick` keeps, each as
/// (name, points), in name order.
fn series(history: &[HistoryPoint], pick: impl Fn(&str) -> bool) -> Vec<(String, Vec<(i64, i64)>)> {
    let mut names: Vec<&String> = history
        .iter()
        .flat_map(|p| p.values.keys())
        .filter(|k| pick(k))
        .collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .map(|name| {
            let points = history
                .iter()
                .filter_map(|p| p.values.get(name).map(|v| (p.at_ms, *v)))
                .collect();
            (name.clone(), points)
        })
        .collect()
}

/// A line chart of `lines` over time as inline SVG (no scripts), or `None`
/// when there is nothing to draw.
fn chart(title: &str, lines: &[(String, Vec<(i64, i64)>)]) -> Option<String> {
    use plotters::prelude::*;
    let points = lines.iter().flat_map(|(_, p)| p.iter());
    let (x0, x1) = points
        .clone()
        .fold((i64::MAX, i64::MIN), |(a, b), (x, _)| (a.min(*x), b.max(*x)));
    let y1 = points.map(|(_, y)| *y).max()?;
    // One reading still gets a visible span.
    let (x0, x1) = if x0 >= x1 {
        (x0 - 3_600_000, x0 + 3_600_000)
    } else {
        (x0, x1)
    };
    let y1 = (y1 + y1 / 10).max(1);
    let colors = [
        RGBColor(0xb0, 0x2a, 0x2a),
        RGBColor(0x1f, 0x5f, 0xa8),
        RGBColor(0x2e, 0x7d, 0x32),
        RGBColor(0x8a, 0x4b, 0x08),
        RGBColor(0x6a, 0x1b, 0x9a),
        RGBColor(0x37, 0x47, 0x4f),
    ];
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (640, 220)).into_drawing_area();
        root.fill(&WHITE).ok()?;
        let mut c = ChartBuilder::on(&root)
            .margin(10)
            .x_label_area_size(28)
            .y_label_area_size(48)
            .build_cartesian_2d(x0..x1, 0..y1)
            .ok()?;
        c.configure_mesh()
            .disable_x_mesh()
            .y_labels(5)
            .x_labels(4)
            .x_label_formatter(&|ms| {
                jiff::Timestamp::from_millisecond(*ms)
                    .map(|t| t.strftime("%Y-%m-%d").to_string())
                    .unwrap_or_default()
            })
            .draw()
            .ok()?;
        for (i, (name, pts)) in lines.iter().enumerate() {
            let color = colors[i % colors.len()];
            c.draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)).point_size(3))
                .ok()?
                .label(name.replace('_', " "))
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2)));
        }
        c.configure_series_labels()
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK.mix(0.3))
            .draw()
            .ok()?;
        root.present().ok()?;
    }
    // Scales with the page; named for screen readers.
    let label = maud::html! { (title) }.into_string();
    Some(svg.replacen(
        "<svg ",
        &format!("<svg role=\"img\" aria-label=\"{label}\" style=\"max-width:100%;height:auto\" "),
        1,
    ))
}

fn disk_health(viewer: &Viewer<'_>, d: &DiskView) -> Markup {
    let name = format!("{} {} (serial {})", d.row.device, d.row.model, d.row.serial);
    let errors = series(&d.history, |k| !NOT_ERRORS.contains(&k));
    let errors: Vec<_> = errors
        .into_iter()
        .filter(|(_, p)| p.iter().any(|(_, v)| *v > 0))
        .collect();
    let wear = series(&d.history, |k| k == "temperature_c" || k == "nvme_percentage_used");
    html! {
        section.disk aria-label=(format!("disk {name}")) {
            h3 { (name) ": " (d.row.verdict) }
            @if !d.row.reasons.is_empty() {
                p { (d.row.reasons.join("; ")) }
            }
            p {
                "In this host since " (viewer.time(d.row.first_seen_ms))
                @if let Some(h) = d.row.power_on_hours { "; " (h) " hours powered on" }
                @if let Some(t) = d.row.temperature_c { "; " (t) " °C now" }
                "."
            }
            @if errors.is_empty() {
                p { "No error counter has ever been above zero." }
            } @else if let Some(svg) = chart(&format!("error counters of {name} over time"), &errors) {
                figure { (PreEscaped(svg)) figcaption { "Error counters over time" } }
            }
            @if let Some(svg) = chart(&format!("temperature and wear of {name} over time"), &wear) {
                figure { (PreEscaped(svg)) figcaption { "Temperature (°C) and wear (% used) over time" } }
            }
        }
    }
}

fn render(viewer: &Viewer<'_>, a: &Archive, grafana: Option<&str>, down_after: u32) -> Markup {
    let h = &a.history;
    let now = caretaker_shared::now_ms();
    let content = html! {
        h1 { "Asset " (h.host) }
        p {
            a href=(format!("/faults/new?asset={}", percent_encode(&h.host))) { "Report a fault on " (h.host) }
            @if let Some(g) = grafana { " · " a href=(g) { "Grafana dashboard" } }
        }
        dl #state {
            @if let Some(c) = &h.customer { dt { "Customer" } dd { (c) } }
            @for (k, v) in h.labels.iter().filter(|(k, _)| k.as_str() != "customer") { dt { (k) } dd { (v) } }
            @if let Some(host) = &a.host {
                dt { "State" } dd { @if host.is_up(now, down_after) { "up" } @else { "down" } }
                dt { "Last report" } dd {
                    @match host.last_seen_ms {
                        Some(t) => { (duration(now - t)) " ago (" (viewer.time(t)) ")" }
                        None => { "never" }
                    }
                }
                @if let Some(t) = host.inventory_at_ms { dt { "Configuration as of" } dd { (viewer.time(t)) } }
            }
        }
        h2 { "Configuration" }
        @match a.host.as_ref().and_then(|h| h.inventory.as_ref()) {
            Some(inv) => { (configuration(inv, &a.disks)) }
            None => { p { "No inventory reported yet." } }
        }
        h2 { "Disk health" }
        @if a.disks.is_empty() {
            p { "No disk health read on this host (smartctl missing or not allowed)." }
        } @else {
            @for d in &a.disks { (disk_health(viewer, d)) }
        }
        h2 { "Configuration changes" }
        @if a.changes.is_empty() {
            p { "None recorded." }
        } @else {
            div.table-wrap role="region" aria-label="Configuration changes" tabindex="0" {
                table #changes {
                    thead { tr { th scope="col" { "When" } th scope="col" { "What" } th scope="col" { "Before" } th scope="col" { "After" } } }
                    tbody {
                        @for c in &a.changes {
                            tr { td { (viewer.time(c.at_ms)) } td { (c.summary) } td { (c.old) } td { (c.new) } }
                        }
                    }
                }
            }
        }
        (asset_items(h, &viewer.zone))
    };
    layout(&format!("asset {}", h.host), Some(viewer), content)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::BTreeMap;

    use super::*;

    fn point(at_ms: i64, values: &[(&str, i64)]) -> HistoryPoint {
        HistoryPoint {
            at_ms,
            verdict: "ok".into(),
            reasons: vec![],
            values: values
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect::<BTreeMap<_, _>>(),
        }
    }

    #[test]
    fn a_disk_chart_draws_each_counter_that_was_ever_above_zero() {
        let history = vec![
            point(
                1_000_000,
                &[
                    ("reallocated_sectors", 0),
                    ("pending_sectors", 0),
                    ("temperature_c", 35),
                ],
            ),
            point(
                90_000_000,
                &[
                    ("reallocated_sectors", 8),
                    ("pending_sectors", 0),
                    ("temperature_c", 41),
                ],
            ),
            point(
                180_000_000,
                &[
                    ("reallocated_sectors", 24),
                    ("pending_sectors", 0),
                    ("temperature_c", 38),
                ],
            ),
        ];
        let errors: Vec<_> = series(&history, |k| !NOT_ERRORS.contains(&k))
            .into_iter()
            .filter(|(_, p)| p.iter().any(|(_, v)| *v > 0))
            .collect();
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].0, "reallocated_sectors");
        assert_eq!(errors[0].1, vec![(1_000_000, 0), (90_000_000, 8), (180_000_000, 24)]);
        let svg = chart("error counters of sda", &errors).unwrap();
        assert!(
            svg.starts_with("<svg role=\"img\" aria-label=\"error counters of sda\""),
            "{svg}"
        );
        assert!(
            svg.contains("reallocated sectors") && svg.contains("<polyline"),
            "{svg}"
        );
        assert!(!svg.contains("<script"));
        // Nothing to draw: no chart.
        assert!(chart("empty", &[]).is_none());
        // One reading still draws.
        let one = series(&history[..1], |k| k == "temperature_c");
        assert!(chart("t", &one).is_some());
    }
}
