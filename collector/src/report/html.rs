//! The printable HTML rendering: one self-contained page (inline CSS with
//! print rules, no scripts, no external resources), so it prints, saves and
//! mails as it is. maud escapes every interpolated value, so host names,
//! evidence and comments never become markup.

use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::{
    InspectionReport, NO_PARTS, RECOMMENDATIONS_NOTE, format_date, format_duration, format_time, last_report,
    stock_note,
};

const CSS: &str = r#"
body { font-family: "DejaVu Sans", Helvetica, Arial, sans-serif; font-size: 11pt; color: #111; margin: 2em auto; max-width: 60em; padding: 0 1em; }
h1 { font-size: 18pt; margin-bottom: 0.2em; }
h2 { font-size: 14pt; border-bottom: 1px solid #999; margin-top: 1.6em; }
h3 { font-size: 12pt; margin-bottom: 0.3em; }
table { border-collapse: collapse; width: 100%; margin: 0.4em 0 0.8em; }
th, td { border: 1px solid #bbb; padding: 0.2em 0.4em; text-align: left; vertical-align: top; }
th { background: #eee; }
.meta { color: #444; }
.note { color: #555; font-style: italic; }
.state-up { color: #060; } .state-down, .state-never_reported { color: #a00; }
.verdict-failing { color: #a00; font-weight: bold; } .verdict-warning { color: #a60; }
section.device { page-break-inside: avoid; break-inside: avoid; }
@media print {
  body { margin: 0; max-width: none; font-size: 10pt; }
  h2 { page-break-after: avoid; break-after: avoid; }
  section.device, table { page-break-inside: avoid; break-inside: avoid; }
  a { color: inherit; text-decoration: none; }
}
"#;

/// Renders the report as a complete HTML page.
pub fn render(r: &InspectionReport) -> String {
    page(r).into_string()
}

fn opt_time(ms: Option<i64>) -> String {
    ms.map(format_time).unwrap_or_else(|| "—".into())
}

fn opt_duration(ms: Option<i64>) -> String {
    ms.map(format_duration).unwrap_or_else(|| "n/a".into())
}

fn not_tracked(what: &str) -> Markup {
    html! { p.note { "Not tracked yet: " (what) " will appear here once Caretaker records them." } }
}

fn page(r: &InspectionReport) -> Markup {
    let title = format!(
        "Inspection report — {} — {} to {}",
        r.customer,
        format_date(r.period.from_ms),
        format_date(r.period.to_ms - 1)
    );
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) }
                style { (PreEscaped(CSS)) }
            }
            body {
                header {
                    h1 { "Inspection report" }
                    p.meta {
                        "Customer: " strong { (r.customer) } br;
                        "Period: " (format_time(r.period.from_ms)) " to " (format_time(r.period.to_ms)) br;
                        "Generated: " (format_time(r.generated_at_ms)) br;
                        "As of: " (format_time(r.as_of_ms())) br;
                        "Systems covered: " (r.systems.len())
                    }
                }
                (systems(r))
                (risks(r))
                (cases(r))
                (recommendations(r))
                (spares(r))
                (satisfaction(r))
                (advice(r))
            }
        }
    }
}

fn systems(r: &InspectionReport) -> Markup {
    html! {
        section #systems {
            h2 { "Systems and inspection records" }
            @if r.systems.is_empty() {
                p.note { "No systems covered: no host of this customer was enrolled in the period." }
            } @else {
                table {
                    thead { tr { th { "Host" } th { "State" } th { "Model" } th { "Serial" } th { "OS" } th { "Kernel" } } }
                    tbody {
                        @for d in &r.systems {
                            tr {
                                td { a href={ "#host-" (d.agent_id) } { (d.host) } }
                                td class={ "state-" (d.state) } { (d.state) }
                                td { (d.model) } td { (d.serial) } td { (d.os) } td { (d.kernel) }
                            }
                        }
                    }
                }
            }
            @for d in &r.systems {
                section.device id={ "host-" (d.agent_id) } {
                    h3 { (d.host) }
                    p.meta {
                        "State: " span class={ "state-" (d.state) } { (d.state) }
                        " · last report " (last_report(d))
                        " · inventory of " (opt_time(d.inventory_at_ms))
                    }
                    h4 { "Disks" }
                    @if d.disks.is_empty() {
                        p.note { "No disk readings in the period." }
                    } @else {
                        table {
                            thead { tr { th { "Device" } th { "Model" } th { "Serial" } th { "Verdict" } th { "Power-on hours" } th { "Reasons" } } }
                            tbody {
                                @for k in &d.disks {
                                    tr {
                                        td { (k.device) } td { (k.model) } td { (k.serial) }
                                        td class={ "verdict-" (k.verdict) } { (k.verdict) }
                                        td { @if let Some(h) = k.power_on_hours { (h) } @else { "—" } }
                                        td { (k.reasons.join("; ")) }
                                    }
                                }
                            }
                        }
                    }
                    h4 { "Problems found" }
                    @if d.problems.is_empty() {
                        p.note { "None in the period." }
                    } @else {
                        table {
                            thead { tr { th { "#" } th { "Kind" } th { "Check" } th { "Component" } th { "Severity" } th { "Opened" } th { "Outcome" } } }
                            tbody {
                                @for p in &d.problems {
                                    tr {
                                        td { (p.id) } td { (p.kind.as_str()) } td { (p.check) } td { (p.component) }
                                        td { (p.severity.as_str()) } td { (format_time(p.opened_at_ms)) }
                                        td {
                                            (p.outcome)
                                            @if !p.log.is_empty() {
                                                ul.log {
                                                    @for l in &p.log {
                                                        li {
                                                            (format_time(l.at_ms)) " " (l.actor) ": "
                                                            @if let Some(f) = &l.from { (f) " → " }
                                                            (l.to)
                                                            @if let Some(c) = &l.comment { " — " (c) }
                                                        }
                                                    }
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                    h4 { "Configuration changes" }
                    @if d.changes.is_empty() {
                        p.note { "None in the period." }
                    } @else {
                        ul.changes {
                            @for c in &d.changes {
                                li { (format_time(c.at_ms)) ": " (c.summary) }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn risks(r: &InspectionReport) -> Markup {
    html! {
        section #risks {
            h2 { "Open risks and proposed remedies" }
            @if r.open_risks.is_empty() {
                p.note { "No open risks." }
            } @else {
                table {
                    thead { tr { th { "#" } th { "Host" } th { "Risk" } th { "Component" } th { "Severity" } th { "Open since" } th { "Proposed remedy" } } }
                    tbody {
                        @for k in &r.open_risks {
                            tr {
                                td { (k.id) } td { (k.host) } td { (k.check) } td { (k.component) }
                                td { (k.severity.as_str()) } td { (format_time(k.opened_at_ms)) } td { (k.remedy) }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn cases(r: &InspectionReport) -> Markup {
    let c = &r.cases;
    html! {
        section #cases {
            h2 { "Cases of the period" }
            table.figures {
                tbody {
                    tr { th { "Cases opened" } td { (c.count) } }
                    tr { th { "By severity" } td {
                        @if c.by_severity.is_empty() { "—" }
                        @for (i, (s, n)) in c.by_severity.iter().enumerate() {
                            @if i > 0 { ", " } (s) ": " (n)
                        }
                    } }
                    tr { th { "Resolved by the end of the period" } td { (c.resolved) } }
                    tr { th { "Mean time to respond" } td { (opt_duration(c.mean_time_to_respond_ms)) } }
                    tr { th { "Mean time to resolve" } td { (opt_duration(c.mean_time_to_resolve_ms)) } }
                    tr { th { "SLA met" } td {
                        @if let Some(p) = c.sla_met_pct { (format!("{p:.1} %")) } @else { "n/a: no case under contract ended in the period" }
                    } }
                }
            }
            @if !c.cases.is_empty() {
                table {
                    thead { tr { th { "#" } th { "Host" } th { "Check" } th { "Component" } th { "Severity" } th { "Status" } th { "Opened" } th { "Response" } th { "Resolution" } } }
                    tbody {
                        @for k in &c.cases {
                            tr {
                                td { (k.id) } td { (k.host) } td { (k.check) } td { (k.component) }
                                td { (k.severity.as_str()) } td { (k.status) } td { (format_time(k.opened_at_ms)) }
                                td { (opt_duration(k.time_to_respond_ms)) } td { (opt_duration(k.time_to_resolve_ms)) }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn recommendations(r: &InspectionReport) -> Markup {
    html! {
        section #recommendations {
            h2 { "Replacement recommendations" }
            @match &r.recommendations {
                None => (not_tracked("part replacement recommendations")),
                Some(v) if v.is_empty() => p.note { "No replacements recommended." },
                Some(v) => {
                    table {
                        thead { tr { th { "Host" } th { "Part" } th { "Reason" } th { "Urgency" } } }
                        tbody { @for l in v { tr { td { (l.host) } td { (l.part) } td { (l.reason) } td { (l.urgency) } } } }
                    }
                    p.note { (RECOMMENDATIONS_NOTE) }
                },
            }
        }
    }
}

fn spares(r: &InspectionReport) -> Markup {
    html! {
        section #spares {
            h2 { "Spare coverage" }
            @match &r.spare_coverage {
                None => (not_tracked("spare parts and their coverage")),
                Some(c) if c.parts == 0 => p.note { (NO_PARTS) },
                Some(c) => {
                    p { "Covered: " (format!("{:.1} %", c.covered_pct)) " of " (c.parts) " parts" }
                    @if !c.gaps.is_empty() { ul { @for g in &c.gaps { li { (g) } } } }
                    p.note { (stock_note(c.stock_at_ms)) }
                },
            }
        }
    }
}

fn satisfaction(r: &InspectionReport) -> Markup {
    html! {
        section #satisfaction {
            h2 { "Satisfaction" }
            @match &r.satisfaction {
                None => (not_tracked("satisfaction results")),
                Some(s) => {
                    p {
                        "Answers: " (s.answers) " · no answer: " (s.no_answer) " · mean score: "
                        @if let Some(m) = s.mean_score { (format!("{m:.1}")) } @else { "n/a" }
                    }
                    @if !s.comments.is_empty() { ul { @for c in &s.comments { li { (c) } } } }
                },
            }
        }
    }
}

fn advice(r: &InspectionReport) -> Markup {
    html! {
        section #advice {
            h2 { "Maintenance advice" }
            @if r.advice.is_empty() {
                p.note { "Nothing to advise: every system looks healthy." }
            } @else {
                ul { @for a in &r.advice { li { (a) } } }
            }
        }
    }
}
