//! The Markdown rendering, for tickets, wikis and mail. Every value from the
//! data is escaped: Markdown punctuation is backslash-escaped and `<`, `>`,
//! `&` become entities (Markdown renderers pass raw HTML through), and line
//! breaks become spaces so a value cannot break out of its table cell.

use std::fmt::Write;

use super::{
    InspectionReport, NO_PARTS, RECOMMENDATIONS_NOTE, format_date, format_duration, format_time, last_report,
    stock_note,
};

/// Escapes a value for Markdown text and table cells: the characters that
/// make emphasis, code, links, tables and strikethrough anywhere, and those
/// that start a heading, list or quote at the start of the value.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    // A leading "1. " or "1) " would start an ordered list ("6.1.0" would not).
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let marker = digits > 0 && s.as_bytes().get(digits + 1).is_none_or(u8::is_ascii_whitespace);
    for (i, c) in s.chars().enumerate() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '\n' | '\r' | '\t' => out.push(' '),
            '\\' | '`' | '*' | '_' | '[' | ']' | '|' | '~' => {
                out.push('\\');
                out.push(c);
            }
            '#' | '+' | '-' | '=' if i == 0 => {
                out.push('\\');
                out.push(c);
            }
            '.' | ')' if marker && i == digits => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

fn opt_time(ms: Option<i64>) -> String {
    ms.map(format_time).unwrap_or_else(|| "—".into())
}

fn opt_duration(ms: Option<i64>) -> String {
    ms.map(format_duration).unwrap_or_else(|| "n/a".into())
}

fn row(out: &mut String, cells: &[String]) {
    let _ = writeln!(out, "| {} |", cells.join(" | "));
}

fn header(out: &mut String, names: &[&str]) {
    let _ = writeln!(out, "| {} |", names.join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(names.len()));
}

fn not_tracked(out: &mut String, what: &str) {
    let _ = writeln!(
        out,
        "_Not tracked yet: {what} will appear here once Caretaker records them._\n"
    );
}

/// Renders the report as Markdown.
pub fn render(r: &InspectionReport) -> String {
    let e = |s: &str| escape(s);
    let mut o = String::new();
    let _ = writeln!(o, "# Inspection report — {}\n", e(&r.customer));
    let _ = writeln!(o, "- Customer: **{}**", e(&r.customer));
    let _ = writeln!(
        o,
        "- Period: {} to {} ({} to {})",
        format_time(r.period.from_ms),
        format_time(r.period.to_ms),
        format_date(r.period.from_ms),
        format_date(r.period.to_ms - 1)
    );
    let _ = writeln!(o, "- Generated: {}", format_time(r.generated_at_ms));
    let _ = writeln!(o, "- As of: {}", format_time(r.as_of_ms()));
    let _ = writeln!(o, "- Systems covered: {}\n", r.systems.len());

    let _ = writeln!(o, "## Systems and inspection records\n");
    if r.systems.is_empty() {
        let _ = writeln!(
            o,
            "_No systems covered: no host of this customer was enrolled in the period._\n"
        );
    } else {
        header(&mut o, &["Host", "State", "Model", "Serial", "OS", "Kernel"]);
        for d in &r.systems {
            row(
                &mut o,
                &[
                    e(&d.host),
                    e(&d.state),
                    e(&d.model),
                    e(&d.serial),
                    e(&d.os),
                    e(&d.kernel),
                ],
            );
        }
        o.push('\n');
    }
    for d in &r.systems {
        let _ = writeln!(o, "### {}\n", e(&d.host));
        let _ = writeln!(
            o,
            "State: {} · last report {} · inventory of {}\n",
            e(&d.state),
            e(&last_report(d)),
            opt_time(d.inventory_at_ms)
        );
        let _ = writeln!(o, "#### Disks\n");
        if d.disks.is_empty() {
            let _ = writeln!(o, "_No disk readings in the period._\n");
        } else {
            header(
                &mut o,
                &["Device", "Model", "Serial", "Verdict", "Power-on hours", "Reasons"],
            );
            for k in &d.disks {
                row(
                    &mut o,
                    &[
                        e(&k.device),
                        e(&k.model),
                        e(&k.serial),
                        e(&k.verdict),
                        k.power_on_hours.map_or_else(|| "—".into(), |h| h.to_string()),
                        e(&k.reasons.join("; ")),
                    ],
                );
            }
            o.push('\n');
        }
        let _ = writeln!(o, "#### Problems found\n");
        if d.problems.is_empty() {
            let _ = writeln!(o, "_None in the period._\n");
        } else {
            for p in &d.problems {
                let _ = writeln!(
                    o,
                    "- {} {} {} {} ({}), opened {}: {}",
                    p.kind.as_str(),
                    p.id,
                    e(&p.check),
                    e(&p.component),
                    p.severity.as_str(),
                    format_time(p.opened_at_ms),
                    e(&p.outcome)
                );
                for l in &p.log {
                    let from = l.from.as_deref().map(|f| format!("{} → ", e(f))).unwrap_or_default();
                    let comment = l.comment.as_deref().map(|c| format!(" — {}", e(c))).unwrap_or_default();
                    let _ = writeln!(
                        o,
                        "  - {} {}: {from}{}{comment}",
                        format_time(l.at_ms),
                        e(&l.actor),
                        e(&l.to)
                    );
                }
            }
            o.push('\n');
        }
        let _ = writeln!(o, "#### Configuration changes\n");
        if d.changes.is_empty() {
            let _ = writeln!(o, "_None in the period._\n");
        } else {
            for c in &d.changes {
                let _ = writeln!(o, "- {}: {}", format_time(c.at_ms), e(&c.summary));
            }
            o.push('\n');
        }
    }

    let _ = writeln!(o, "## Open risks and proposed remedies\n");
    if r.open_risks.is_empty() {
        let _ = writeln!(o, "_No open risks._\n");
    } else {
        header(
            &mut o,
            &[
                "#",
                "Host",
                "Risk",
                "Component",
                "Severity",
                "Open since",
                "Proposed remedy",
            ],
        );
        for k in &r.open_risks {
            row(
                &mut o,
                &[
                    k.id.to_string(),
                    e(&k.host),
                    e(&k.check),
                    e(&k.component),
                    k.severity.as_str().into(),
                    format_time(k.opened_at_ms),
                    e(&k.remedy),
                ],
            );
        }
        o.push('\n');
    }

    let c = &r.cases;
    let _ = writeln!(o, "## Cases of the period\n");
    let by: Vec<String> = c.by_severity.iter().map(|(s, n)| format!("{s}: {n}")).collect();
    let _ = writeln!(o, "- Cases opened: {}", c.count);
    let _ = writeln!(
        o,
        "- By severity: {}",
        if by.is_empty() { "—".into() } else { by.join(", ") }
    );
    let _ = writeln!(o, "- Resolved by the end of the period: {}", c.resolved);
    let _ = writeln!(o, "- Mean time to respond: {}", opt_duration(c.mean_time_to_respond_ms));
    let _ = writeln!(o, "- Mean time to resolve: {}", opt_duration(c.mean_time_to_resolve_ms));
    let _ = writeln!(
        o,
        "- SLA met: {}\n",
        c.sla_met_pct.map_or_else(
            || "n/a: no case under contract ended in the period".into(),
            |p| format!("{p:.1} %")
        )
    );
    if !c.cases.is_empty() {
        header(
            &mut o,
            &[
                "#",
                "Host",
                "Check",
                "Component",
                "Severity",
                "Status",
                "Opened",
                "Response",
                "Resolution",
            ],
        );
        for k in &c.cases {
            row(
                &mut o,
                &[
                    k.id.to_string(),
                    e(&k.host),
                    e(&k.check),
                    e(&k.component),
                    k.severity.as_str().into(),
                    e(&k.status),
                    format_time(k.opened_at_ms),
                    opt_duration(k.time_to_respond_ms),
                    opt_duration(k.time_to_resolve_ms),
                ],
            );
        }
        o.push('\n');
    }

    let _ = writeln!(o, "## Replacement recommendations\n");
    match &r.recommendations {
        None => not_tracked(&mut o, "part replacement recommendations"),
        Some(v) if v.is_empty() => {
            let _ = writeln!(o, "_No replacements recommended._\n");
        }
        Some(v) => {
            header(&mut o, &["Host", "Part", "Reason", "Urgency"]);
            for l in v {
                row(&mut o, &[e(&l.host), e(&l.part), e(&l.reason), e(&l.urgency)]);
            }
            let _ = writeln!(o, "\n_{RECOMMENDATIONS_NOTE}_\n");
        }
    }
    let _ = writeln!(o, "## Spare coverage\n");
    match &r.spare_coverage {
        None => not_tracked(&mut o, "spare parts and their coverage"),
        Some(s) if s.parts == 0 => {
            let _ = writeln!(o, "_{NO_PARTS}_\n");
        }
        Some(s) => {
            let _ = writeln!(o, "Covered: {:.1} % of {} parts\n", s.covered_pct, s.parts);
            for g in &s.gaps {
                let _ = writeln!(o, "- {}", e(g));
            }
            if !s.gaps.is_empty() {
                o.push('\n');
            }
            let _ = writeln!(o, "_{}_\n", stock_note(s.stock_at_ms));
        }
    }
    let _ = writeln!(o, "## Satisfaction\n");
    match &r.satisfaction {
        None => not_tracked(&mut o, "satisfaction results"),
        Some(s) => {
            let mean = s.mean_score.map_or_else(|| "n/a".into(), |m| format!("{m:.1}"));
            let _ = writeln!(
                o,
                "Answers: {} · no answer: {} · mean score: {mean}\n",
                s.answers, s.no_answer
            );
            for c in &s.comments {
                let _ = writeln!(o, "- {}", e(c));
            }
            o.push('\n');
        }
    }
    let _ = writeln!(o, "## Maintenance advice\n");
    if r.advice.is_empty() {
        let _ = writeln!(o, "_Nothing to advise: every system looks healthy._");
    } else {
        for a in &r.advice {
            let _ = writeln!(o, "- {}", e(a));
        }
    }
    o
}
