//! The pages' markup. maud escapes every value it is given.

use maud::{Markup, html};

use super::evidence::{self, Part};
use super::list::{next_clock, zone_named};
use super::{Fields, Viewer, layout};
use crate::auth::percent_encode;
use crate::cases::store::Visibility;
use crate::cases::{Item, Status};
use crate::contracts::Contracts;
use crate::queue::{AssetHistory, CaseDetail, ClockView, format_ms_in};
use crate::spares::{PartReplaced, ServiceReport};

/// A form the case page shows again after it was refused: the problem, and
/// the fields as posted so the form comes back as it was typed.
pub struct Refused<'a> {
    pub message: &'a str,
    pub posted: &'a Fields,
}

/// A case page's data.
pub struct CaseView {
    pub detail: CaseDetail,
    /// Every service report on the case's asset (the parts replaced there).
    pub asset_reports: Vec<ServiceReport>,
    /// What the collector holds about the part the case is about.
    pub part: Part,
    pub now: i64,
}

pub(super) const STATUSES: [&str; 8] = [
    "new",
    "assigned",
    "in_progress",
    "on_hold",
    "recovered",
    "resolved",
    "closed",
    "cancelled",
];
pub(super) const SEVERITIES: [&str; 4] = ["info", "warning", "major", "critical"];
const HOLD_REASONS: [&str; 4] = [
    "awaiting_customer",
    "awaiting_parts",
    "awaiting_vendor",
    "awaiting_window",
];
const CANCEL_REASONS: [&str; 3] = ["duplicate", "false_positive", "merged"];

pub(super) fn asset_href(host: &str) -> String {
    format!("/assets/{}", percent_encode(host))
}

pub(super) fn case_href(id: Option<i64>) -> String {
    format!("/cases/{}", id.unwrap_or_default())
}

/// "3h 20m", "2d 4h", "45m", "under a minute".
pub fn duration(ms: i64) -> String {
    let minutes = ms.max(0) / 60_000;
    let (d, h, m) = (minutes / 1440, (minutes / 60) % 24, minutes % 60);
    match (d, h, m) {
        (0, 0, 0) => "under a minute".into(),
        (0, 0, m) => format!("{m}m"),
        (0, h, m) => format!("{h}h {m}m"),
        (d, h, _) => format!("{d}d {h}h"),
    }
}

fn part_text(p: &PartReplaced) -> String {
    let old = [p.old_model.as_str(), p.old_serial.as_str()]
        .iter()
        .filter(|s| !s.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
    let new = [p.new_model.as_str(), p.new_serial.as_str()]
        .iter()
        .filter(|s| !s.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join(" ");
    let old = if old.is_empty() { "?".to_string() } else { old };
    format!("{} {} {} → {}", p.part_type, p.slot, old, new)
}

pub(super) fn error_box(error: Option<&str>) -> Markup {
    html! {
        @if let Some(e) = error {
            p.error role="alert" { (e) }
        }
    }
}

pub(super) fn select(name: &str, id: &str, options: &[(&str, &str)], chosen: &str) -> Markup {
    html! {
        select name=(name) id=(id) {
            @for (value, label) in options {
                option value=(value) selected[*value == chosen] { (label) }
            }
        }
    }
}

fn clock(name: &str, c: &Option<ClockView>, now: i64, zone: &str) -> Markup {
    html! {
        tr {
            th { (name) }
            @match c {
                None => { td colspan="3" { "no target" } }
                Some(c) => {
                    td { "due " (format_ms_in(c.due_ms, zone)) }
                    td { "used " (duration(c.used_ms)) " of " (duration(c.target_ms)) }
                    td {
                        @if c.breached {
                            span.breached { "breached" }
                        } @else if let Some(t) = c.met_at_ms {
                            "met " (format_ms_in(t, zone))
                        } @else if c.paused {
                            "paused"
                        } @else if let Some(t) = c.breach_at_ms {
                            "running; breach in " (duration(t - now))
                        } @else {
                            "running"
                        }
                    }
                }
            }
        }
    }
}

/// The service reports, their times in time zone `zone`.
pub(super) fn reports_list(reports: &[ServiceReport], zone: &str) -> Markup {
    html! {
        @if reports.is_empty() {
            p { "None." }
        } @else {
            ul.reports {
                @for r in reports {
                    li {
                        (r.at_ms.map(|t| format_ms_in(t, zone)).unwrap_or_default()) ", " (r.engineer) " (" (r.mode) ", " (r.minutes) " min)"
                        @if let Some(c) = r.case_id { ", case " a href=(case_href(Some(c))) { "#" (c) } }
                        ": " (r.symptom) " — " (r.work_done)
                        @if !r.parts.is_empty() {
                            ul.parts { @for p in &r.parts { li { (part_text(p)) } } }
                        }
                    }
                }
            }
        }
    }
}

fn items_table(items: &[Item], zone: &str, title_of: impl Fn(&Item) -> String) -> Markup {
    html! {
        @if items.is_empty() {
            p { "None." }
        } @else {
            div.table-wrap role="region" aria-label="Cases and findings" tabindex="0" {
                table {
                    thead { tr { th { "Id" } th { "Opened" } th { "Severity" } th { "Status" } th { "What" } } }
                    tbody {
                        @for i in items {
                            tr {
                                td { a href=(case_href(i.id)) { "#" (i.id.unwrap_or_default()) } }
                                td { (format_ms_in(i.opened_at_ms, zone)) }
                                td { (i.severity.as_str()) }
                                td { (i.status.to_string()) }
                                td { (title_of(i)) }
                            }
                        }
                    }
                }
            }
        }
    }
}

pub(super) fn describe(i: &Item) -> String {
    if i.key.component.is_empty() {
        i.key.check.clone()
    } else {
        format!("{} {}", i.key.check, i.key.component)
    }
}

/// The severity as colour, icon and word, as the queue shows it.
fn severity_badge(s: crate::cases::Severity) -> Markup {
    html! { span class=(format!("sev sev-{}", s.as_str())) { (s.as_str()) } }
}

/// The case's page for staff: the summary (what, how bad, where, whose,
/// the next clock), the evidence in words, the actions that come next,
/// then the record. Times are the contract's, its zone named.
pub fn case(viewer: &Viewer<'_>, contracts: &Contracts, v: &CaseView, refused: Option<&Refused<'_>>) -> Markup {
    let d = &v.detail;
    let item = &d.item;
    let id = item.id.unwrap_or_default();
    let title = d.meta.as_ref().map_or_else(|| describe(item), |m| m.title.clone());
    let contract = d.meta.as_ref().and_then(|m| m.contract.as_deref());
    let zone = zone_named(contract, contracts, &viewer.zone);
    let found = evidence::lines(item, &title, &v.part, zone);
    let raw = serde_json::to_string_pretty(&item.evidence).unwrap_or_default();
    let parts: Vec<&PartReplaced> = v.asset_reports.iter().flat_map(|r| r.parts.iter()).collect();
    let prefill = resolve_prefill(&v.part);
    let content = html! {
        h1 { "Case #" (id) ": " (title) }
        (error_box(refused.map(|r| r.message)))
        dl #summary {
            dt { "Status" } dd #status { (item.status.to_string()) }
            dt { "Severity" } dd { (severity_badge(item.severity)) }
            dt { "Asset" } dd { a href=(asset_href(&item.key.asset)) { (item.key.asset) } }
            dt { "Customer" } dd { (item.key.customer) }
            @if let Some(m) = &d.meta {
                dt { "Assignee" } dd #assignee { (m.assignee.as_deref().unwrap_or("unassigned")) }
            }
            dt { "Next clock" } dd #next-clock { (next_clock(&d.sla, contract, contracts, &viewer.zone, v.now)) }
        }
        h2 { "What was found" }
        @if found.is_empty() {
            p { "The rule recorded no details." }
        } @else {
            ul #found { @for line in &found { li { (line) } } }
        }
        details #evidence {
            summary { "Details" }
            pre tabindex="0" aria-label="the rule's evidence" { (raw) }
        }
        @if viewer.who.can_act() {
            h2 { "Actions" }
            (actions(viewer, contracts, item.status, id, refused.map(|r| r.posted), &prefill))
        }
        h2 { "About the case" }
        dl {
            dt { "Check" } dd { (describe(item)) }
            dt { "Opened" } dd { (format_ms_in(item.opened_at_ms, zone)) }
            @if let Some(m) = &d.meta {
                dt { "Contract" } dd { (m.contract.as_deref().unwrap_or("advisory")) }
                dt { "Level" } dd { (m.level) }
                @if let Some(by) = &m.reported_by { dt { "Reported by" } dd { (by) } }
            }
            dt { "Times" } dd { (zone) }
        }
        h2 { "SLA" }
        div.table-wrap role="region" aria-label="SLA clocks" tabindex="0" {
            table #sla { tbody {
                (clock("Response", &d.sla.response, v.now, zone))
                (clock("Resolution", &d.sla.resolution, v.now, zone))
            } }
        }
        h2 { "Timeline" }
        div.table-wrap role="region" aria-label="Timeline" tabindex="0" {
            table #timeline {
                thead { tr { th { "Time" } th { "Who" } th { "Change" } th { "Comment" } th { "Seen by" } } }
                tbody {
                    @for e in &d.log {
                        tr {
                            td { (format_ms_in(e.at_ms, zone)) }
                            td { (e.actor) }
                            td {
                                @if let Some(from) = e.from_status { (from.to_string()) " → " }
                                (e.to_status.to_string())
                            }
                            td { (e.comment.as_deref().unwrap_or("")) }
                            td {
                                @match e.visibility {
                                    Visibility::Public => strong { "customer too (public)" },
                                    Visibility::Internal => "staff (internal)",
                                }
                            }
                        }
                    }
                }
            }
        }
        h2 { "Escalations" }
        @if d.escalations.is_empty() { p { "None." } } @else {
            ul { @for e in &d.escalations {
                li { (format_ms_in(e.at_ms, zone)) ": " (e.action) " to " (e.target) " by " (e.actor) @if !e.comment.is_empty() { " — " (e.comment) } }
            } }
        }
        h2 { "Service reports" }
        (reports_list(&d.service_reports, zone))
        h2 { "Satisfaction" }
        @match &d.satisfaction {
            None => p { "Not recorded." },
            Some(s) => p {
                @if let Some(score) = s.score { (score) "/5" } @else { "no answer" }
                @if !s.comment.is_empty() { ": " (s.comment) }
                " (" (s.recorded_by) ", " (format_ms_in(s.at_ms, zone)) ")"
            },
        }
        @if !d.external.is_empty() {
            h2 { "External tickets" }
            ul { @for (sink, x) in &d.external { li { (sink) ": " (x) } } }
        }
        h2 { "Earlier cases on " (item.key.asset) }
        (items_table(&d.earlier, zone, describe))
        h2 { "Parts replaced on " (item.key.asset) }
        @if parts.is_empty() { p { "None." } } @else {
            ul { @for p in parts { li { (part_text(p)) } } }
        }
    };
    layout(&format!("case {id}"), Some(viewer), content)
}

/// The resolve form's part fields, filled in with the part the case is
/// about: its disk (type, slot, model, serial; the new part is left to be
/// typed), or nothing.
pub fn resolve_prefill(part: &Part) -> Fields {
    match &part.disk {
        Some(d) => Fields::new(vec![
            ("part_type".into(), "disk".into()),
            ("slot".into(), d.device.clone()),
            ("old_model".into(), d.model.clone()),
            ("old_serial".into(), d.serial.clone()),
        ]),
        None => Fields::default(),
    }
}

/// The actions a case in `status` offers, what comes next first: taking it
/// (acknowledge, or resume from a hold), resolving, a comment, holding,
/// giving it to someone, escalating, and cancelling last.
pub fn action_order(status: Status) -> Vec<&'static str> {
    match status {
        Status::New | Status::Assigned | Status::Recovered => {
            vec![
                "acknowledge",
                "resolve",
                "comment",
                "hold",
                "assign",
                "escalate",
                "cancel",
            ]
        }
        Status::OnHold(_) => vec!["resume", "resolve", "comment", "assign", "escalate", "cancel"],
        Status::Resolved => vec!["close", "comment"],
        s if s.is_active() => vec!["resolve", "comment", "hold", "assign", "escalate", "cancel"],
        _ => vec!["comment"],
    }
}

/// Actions folded away behind their name until opened (the less usual
/// ones), unless their form was just refused.
const FOLDED: [&str; 4] = ["hold", "assign", "escalate", "cancel"];

/// One action's form. `fields` draws its inputs from the values they show:
/// what was posted to this very form when it was refused, else `defaults`,
/// so a refused form comes back filled and the others as they were.
#[allow(clippy::too_many_arguments)]
fn action_form(
    viewer: &Viewer<'_>,
    id: i64,
    action: &str,
    label: &str,
    posted: Option<&Fields>,
    defaults: &Fields,
    fields: impl FnOnce(&Fields) -> Markup,
) -> Markup {
    let refused = posted.filter(|p| p.get("action") == action);
    let values = refused.unwrap_or(defaults);
    let form = html! {
        form method="post" action=(format!("/cases/{id}")) id=(format!("{action}-form")) {
            input type="hidden" name="csrf" value=(viewer.csrf);
            input type="hidden" name="action" value=(action);
            @if !FOLDED.contains(&action) { strong { (label) } }
            (fields(values))
            button type="submit" { (label) }
        }
    };
    if FOLDED.contains(&action) {
        html! {
            details.action open[refused.is_some()] {
                summary { (label) }
                (form)
            }
        }
    } else {
        form
    }
}

fn actions(
    viewer: &Viewer<'_>,
    contracts: &Contracts,
    status: Status,
    id: i64,
    posted: Option<&Fields>,
    prefill: &Fields,
) -> Markup {
    let engineers: Vec<(&str, &str)> = contracts
        .engineers
        .iter()
        .map(|e| (e.name.as_str(), e.name.as_str()))
        .collect();
    let holds: Vec<(&str, &str)> = HOLD_REASONS.iter().map(|r| (*r, *r)).collect();
    let cancels: Vec<(&str, &str)> = CANCEL_REASONS.iter().map(|r| (*r, *r)).collect();
    let blank = Fields::default();
    let form = |action: &str| -> Markup {
        match action {
            "acknowledge" => action_form(viewer, id, "acknowledge", "Acknowledge", posted, &blank, |_| {
                html! {
                    small { " (you take the case)" }
                }
            }),
            "resume" => action_form(viewer, id, "resume", "Resume", posted, &blank, |_| html! {}),
            "assign" => action_form(viewer, id, "assign", "Assign", posted, &blank, |f| {
                html! {
                    label for="assign-to" { "To" } (select("to", "assign-to", &engineers, f.get("to")))
                }
            }),
            "escalate" => action_form(viewer, id, "escalate", "Escalate", posted, &blank, |f| {
                html! {
                    label for="escalate-to" { "Level" }
                    (select("to", "escalate-to", &[("", "next level"), ("L2", "L2"), ("vendor", "vendor")], f.get("to")))
                    label for="escalate-comment" { "Comment" }
                    textarea name="comment" id="escalate-comment" required { (f.get("comment")) }
                }
            }),
            "hold" => action_form(viewer, id, "hold", "Hold", posted, &blank, |f| {
                html! {
                    label for="hold-reason" { "Reason" } (select("reason", "hold-reason", &holds, f.get("reason")))
                }
            }),
            "cancel" => action_form(viewer, id, "cancel", "Cancel", posted, &blank, |f| {
                html! {
                    label for="cancel-reason" { "Reason" } (select("reason", "cancel-reason", &cancels, f.get("reason")))
                    label for="cancel-confirm" {
                        input type="checkbox" name="confirm" value="yes" id="cancel-confirm" required checked[f.checked("confirm")];
                        " Yes, cancel this case"
                    }
                }
            }),
            "resolve" => action_form(viewer, id, "resolve", "Resolve", posted, prefill, |f| {
                html! {
                    label for="mode" { "Mode" } (select("mode", "mode", &[("on_site", "on site"), ("remote", "remote")], f.get("mode")))
                    label for="symptom" { "Symptom" } input type="text" name="symptom" id="symptom" value=(f.get("symptom"));
                    label for="work_done" { "Work done" } textarea name="work_done" id="work_done" { (f.get("work_done")) }
                    label for="minutes" { "Minutes" } input type="text" inputmode="numeric" name="minutes" id="minutes" value=(f.get("minutes"));
                    fieldset {
                        legend { "Part replaced (optional)" }
                        @for (name, label) in [("part_type", "Part type (disk, dimm…)"), ("slot", "Slot"), ("old_model", "Old model"),
                            ("old_serial", "Old serial"), ("new_model", "New model"), ("new_serial", "New serial")] {
                            label for=(name) { (label) } input type="text" name=(name) id=(name) value=(f.get(name));
                        }
                    }
                }
            }),
            "close" => action_form(viewer, id, "close", "Close", posted, &blank, |f| {
                html! {
                    label for="score" { "Satisfaction" }
                    (select("score", "score", &[("", "—"), ("1", "1"), ("2", "2"), ("3", "3"), ("4", "4"), ("5", "5")], f.get("score")))
                    label { input type="checkbox" name="no_answer" value="on" checked[f.checked("no_answer")]; " no answer" }
                    label for="close-comment" { "Comment" } textarea name="comment" id="close-comment" { (f.get("comment")) }
                }
            }),
            _ => action_form(viewer, id, "comment", "Comment", posted, &blank, |f| {
                html! {
                    label for="comment-text" { "Comment" } textarea name="comment" id="comment-text" required { (f.get("comment")) }
                    // Internal unless the public choice is made: the safe default.
                    fieldset {
                        legend { "Who sees it" }
                        label { input type="radio" name="visibility" value="internal" checked[f.get("visibility") != "public"]; " Internal: staff only" }
                        label { input type="radio" name="visibility" value="public" checked[f.get("visibility") == "public"]; " Public: the customer sees it too" }
                    }
                }
            }),
        }
    };
    html! {
        div.actions #actions {
            @for action in action_order(status) { (form(action)) }
        }
    }
}

/// An asset's cases, findings and service reports (its archive's record).
pub fn asset_items(h: &AssetHistory, zone: &str) -> Markup {
    html! {
        h2 { "Cases" }
        (items_table(&h.cases, zone, describe))
        h2 { "Findings" }
        @if h.findings.is_empty() { p { "None." } } @else {
            ul { @for f in &h.findings {
                li { (format_ms_in(f.opened_at_ms, zone)) " " (f.severity.as_str()) " " (f.status.to_string()) ": " (describe(f)) }
            } }
        }
        h2 { "Service reports" }
        (reports_list(&h.service_reports, zone))
    }
}

/// The fault form; `assets`: the customer's own assets to choose from (a
/// customer's user), or `None` for a host typed in (staff).
pub fn fault_form(viewer: &Viewer<'_>, f: &Fields, assets: Option<&[String]>, error: Option<&str>) -> Markup {
    let severities: Vec<(&str, &str)> = SEVERITIES.iter().map(|s| (*s, *s)).collect();
    let content = html! {
        h1 { "Report a fault" }
        (error_box(error))
        form method="post" action="/faults" {
            input type="hidden" name="csrf" value=(viewer.csrf);
            label for="asset" { "Asset (host)" }
            @match assets {
                Some(own) => {
                    @let options: Vec<(&str, &str)> = own.iter().map(|a| (a.as_str(), a.as_str())).collect();
                    (select("asset", "asset", &options, f.get("asset")))
                }
                None => { input type="text" name="asset" id="asset" required value=(f.get("asset")); }
            }
            label for="title" { "Title" } input type="text" name="title" id="title" required value=(f.get("title"));
            label for="component" { "Component (optional)" } input type="text" name="component" id="component" value=(f.get("component"));
            label for="description" { "Description" } textarea name="description" id="description" { (f.get("description")) }
            label for="severity" { "Severity" } (select("severity", "severity", &severities, f.get("severity")))
            div { button type="submit" { "Report" } }
        }
    };
    layout("report a fault", Some(viewer), content)
}
