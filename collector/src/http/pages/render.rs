//! The pages' markup. maud escapes every value it is given.

use maud::{Markup, html};

use super::{Fields, Viewer, layout};
use crate::auth::percent_encode;
use crate::cases::store::Visibility;
use crate::cases::{Item, Status};
use crate::contracts::Contracts;
use crate::queue::{AssetHistory, CaseDetail, ClockView, format_ms, format_ms_in};
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

fn clock(name: &str, c: &Option<ClockView>, now: i64) -> Markup {
    html! {
        tr {
            th { (name) }
            @match c {
                None => { td colspan="3" { "no target" } }
                Some(c) => {
                    td { "due " (format_ms(c.due_ms)) }
                    td { "used " (duration(c.used_ms)) " of " (duration(c.target_ms)) }
                    td {
                        @if c.breached {
                            span.breached { "breached" }
                        } @else if c.met_at_ms.is_some() {
                            "met " (c.met_at_ms.map(format_ms).unwrap_or_default())
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

pub fn case(viewer: &Viewer<'_>, contracts: &Contracts, v: &CaseView, refused: Option<&Refused<'_>>) -> Markup {
    let d = &v.detail;
    let item = &d.item;
    let id = item.id.unwrap_or_default();
    let title = d.meta.as_ref().map_or_else(|| describe(item), |m| m.title.clone());
    let evidence = serde_json::to_string_pretty(&item.evidence).unwrap_or_default();
    let parts: Vec<&PartReplaced> = v.asset_reports.iter().flat_map(|r| r.parts.iter()).collect();
    let content = html! {
        h1 { "Case #" (id) ": " (title) }
        (error_box(refused.map(|r| r.message)))
        dl {
            dt { "Status" } dd #status { (item.status.to_string()) }
            dt { "Severity" } dd { (item.severity.as_str()) }
            dt { "Asset" } dd { a href=(asset_href(&item.key.asset)) { (item.key.asset) } }
            dt { "Customer" } dd { (item.key.customer) }
            dt { "Check" } dd { (describe(item)) }
            dt { "Opened" } dd { (format_ms(item.opened_at_ms)) }
            @if let Some(m) = &d.meta {
                dt { "Contract" } dd { (m.contract.as_deref().unwrap_or("advisory")) }
                dt { "Assignee" } dd #assignee { (m.assignee.as_deref().unwrap_or("unassigned")) }
                dt { "Level" } dd { (m.level) }
                @if let Some(by) = &m.reported_by { dt { "Reported by" } dd { (by) } }
                @if !m.description.is_empty() { dt { "Description" } dd { (m.description) } }
            }
        }
        h2 { "SLA" }
        table { tbody {
            (clock("Response", &d.sla.response, v.now))
            (clock("Resolution", &d.sla.resolution, v.now))
        } }
        @if viewer.who.can_act() {
            h2 { "Actions" }
            (actions(viewer, contracts, item.status, id, refused.map(|r| r.posted)))
        }
        h2 { "Timeline" }
        div.table-wrap role="region" aria-label="Timeline" tabindex="0" {
            table #timeline {
                thead { tr { th { "Time" } th { "Who" } th { "Change" } th { "Comment" } th { "Seen by" } } }
                tbody {
                    @for e in &d.log {
                        tr {
                            td { (format_ms(e.at_ms)) }
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
                li { (format_ms(e.at_ms)) ": " (e.action) " to " (e.target) " by " (e.actor) @if !e.comment.is_empty() { " — " (e.comment) } }
            } }
        }
        h2 { "Service reports" }
        (reports_list(&d.service_reports, &viewer.zone))
        h2 { "Satisfaction" }
        @match &d.satisfaction {
            None => p { "Not recorded." },
            Some(s) => p {
                @if let Some(score) = s.score { (score) "/5" } @else { "no answer" }
                @if !s.comment.is_empty() { ": " (s.comment) }
                " (" (s.recorded_by) ", " (format_ms(s.at_ms)) ")"
            },
        }
        @if !d.external.is_empty() {
            h2 { "External tickets" }
            ul { @for (sink, x) in &d.external { li { (sink) ": " (x) } } }
        }
        h2 { "Earlier cases on " (item.key.asset) }
        (items_table(&d.earlier, &viewer.zone, describe))
        h2 { "Parts replaced on " (item.key.asset) }
        @if parts.is_empty() { p { "None." } } @else {
            ul { @for p in parts { li { (part_text(p)) } } }
        }
        h2 { "Evidence" }
        pre tabindex="0" aria-label="the rule's evidence" { (evidence) }
    };
    layout(&format!("case {id}"), Some(viewer), content)
}

/// One action's form. `fields` draws its inputs from the values they show:
/// what was posted to this very form when it was refused, else nothing, so
/// a refused form comes back filled and the others stay blank.
fn action_form(
    viewer: &Viewer<'_>,
    id: i64,
    action: &str,
    label: &str,
    posted: Option<&Fields>,
    fields: impl FnOnce(&Fields) -> Markup,
) -> Markup {
    let blank = Fields::default();
    let values = posted.filter(|p| p.get("action") == action).unwrap_or(&blank);
    html! {
        form method="post" action=(format!("/cases/{id}")) id=(format!("{action}-form")) {
            input type="hidden" name="csrf" value=(viewer.csrf);
            input type="hidden" name="action" value=(action);
            strong { (label) }
            (fields(values))
            button type="submit" { (label) }
        }
    }
}

fn actions(viewer: &Viewer<'_>, contracts: &Contracts, status: Status, id: i64, posted: Option<&Fields>) -> Markup {
    let engineers: Vec<(&str, &str)> = contracts
        .engineers
        .iter()
        .map(|e| (e.name.as_str(), e.name.as_str()))
        .collect();
    let holds: Vec<(&str, &str)> = HOLD_REASONS.iter().map(|r| (*r, *r)).collect();
    let cancels: Vec<(&str, &str)> = CANCEL_REASONS.iter().map(|r| (*r, *r)).collect();
    let active = status.is_active() && status != Status::Resolved;
    html! {
        div.actions {
            @if matches!(status, Status::New | Status::Assigned | Status::Recovered) {
                (action_form(viewer, id, "acknowledge", "Acknowledge", posted, |_| html! {}))
            }
            @if active {
                (action_form(viewer, id, "assign", "Assign", posted, |f| html! {
                    label for="assign-to" { "To" } (select("to", "assign-to", &engineers, f.get("to")))
                }))
                (action_form(viewer, id, "escalate", "Escalate", posted, |f| html! {
                    label for="escalate-to" { "Level" }
                    (select("to", "escalate-to", &[("", "next level"), ("L2", "L2"), ("vendor", "vendor")], f.get("to")))
                    label for="escalate-comment" { "Comment" }
                    textarea name="comment" id="escalate-comment" required { (f.get("comment")) }
                }))
                @if matches!(status, Status::OnHold(_)) {
                    (action_form(viewer, id, "resume", "Resume", posted, |_| html! {}))
                } @else {
                    (action_form(viewer, id, "hold", "Hold", posted, |f| html! {
                        label for="hold-reason" { "Reason" } (select("reason", "hold-reason", &holds, f.get("reason")))
                    }))
                }
                (action_form(viewer, id, "cancel", "Cancel", posted, |f| html! {
                    label for="cancel-reason" { "Reason" } (select("reason", "cancel-reason", &cancels, f.get("reason")))
                }))
                (action_form(viewer, id, "resolve", "Resolve", posted, |f| html! {
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
                }))
            }
            @if status == Status::Resolved {
                (action_form(viewer, id, "close", "Close", posted, |f| html! {
                    label for="score" { "Satisfaction" }
                    (select("score", "score", &[("", "—"), ("1", "1"), ("2", "2"), ("3", "3"), ("4", "4"), ("5", "5")], f.get("score")))
                    label { input type="checkbox" name="no_answer" value="on" checked[f.checked("no_answer")]; " no answer" }
                    label for="close-comment" { "Comment" } textarea name="comment" id="close-comment" { (f.get("comment")) }
                }))
            }
            (action_form(viewer, id, "comment", "Comment", posted, |f| html! {
                label for="comment-text" { "Comment" } textarea name="comment" id="comment-text" required { (f.get("comment")) }
                // Internal unless the public choice is made: the safe default.
                fieldset {
                    legend { "Who sees it" }
                    label { input type="radio" name="visibility" value="internal" checked[f.get("visibility") != "public"]; " Internal: staff only" }
                    label { input type="radio" name="visibility" value="public" checked[f.get("visibility") == "public"]; " Public: the customer sees it too" }
                }
            }))
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
