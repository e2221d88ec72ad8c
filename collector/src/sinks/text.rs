//! The human-readable texts the ticket sinks share: subject line, case
//! description and the note of one change.

use std::fmt::Write as _;

use super::{CaseEvent, Change};

/// At most `max` characters of `s`; when cut, the last one is `…`.
pub(crate) fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// The marker every ticket subject starts with: how a ticket is found again
/// when its id was never stored.
pub(crate) fn marker(case_id: i64) -> String {
    format!("[caretaker #{case_id}]")
}

/// `[caretaker #42] db01: Reallocated sectors growing on /dev/sda` (the
/// case's title), or `[caretaker #42] db01 disk_reallocated_sectors /dev/sda`
/// for a case without one; at most `max` characters (the marker always
/// survives).
pub(crate) fn subject(ev: &CaseEvent, max: usize) -> String {
    let mut s = marker(ev.case_id);
    s.push(' ');
    s.push_str(&ev.asset);
    if ev.title.trim().is_empty() {
        for part in [&ev.check, &ev.component] {
            if !part.is_empty() {
                s.push(' ');
                s.push_str(part);
            }
        }
    } else {
        s.push_str(": ");
        s.push_str(ev.title.trim());
    }
    clip(&s, max)
}

/// `<actor>: <from> → <to>: <comment>`; the opening change reads
/// `<actor>: opened → <to>`.
pub(crate) fn note(change: &Change) -> String {
    let from = change.from_status.as_deref().unwrap_or("opened");
    let mut s = format!("{}: {from} → {}", change.actor, change.to_status);
    if let Some(c) = change.comment.as_deref().filter(|c| !c.trim().is_empty()) {
        s.push_str(": ");
        s.push_str(c);
    }
    s
}

/// Milliseconds since the epoch as RFC 3339 UTC; the number itself when out
/// of range.
pub(crate) fn time(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| ms.to_string())
}

/// The case as it is now, then (`with_change`) the change's note.
pub(crate) fn description(ev: &CaseEvent, with_change: bool) -> String {
    let mut s = String::new();
    if !ev.title.is_empty() {
        let _ = writeln!(s, "{}\n", ev.title);
    }
    let _ = writeln!(s, "Customer: {}", ev.customer);
    let _ = writeln!(s, "Asset: {}", ev.asset);
    let _ = writeln!(s, "Check: {}", ev.check);
    if !ev.component.is_empty() {
        let _ = writeln!(s, "Component: {}", ev.component);
    }
    let _ = writeln!(s, "Severity: {}", ev.severity);
    let _ = writeln!(s, "Status: {}", ev.status);
    let _ = writeln!(s, "Level: {}", ev.level);
    let _ = writeln!(s, "Assignee: {}", ev.assignee.as_deref().unwrap_or("none"));
    if ev.out_of_scope {
        let _ = writeln!(s, "Out of scope: yes");
    }
    if let Some(ms) = ev.response_due_ms {
        let _ = writeln!(s, "Response due: {}", time(ms));
    }
    if let Some(ms) = ev.resolution_due_ms {
        let _ = writeln!(s, "Resolution due: {}", time(ms));
    }
    if let Some(url) = &ev.url {
        let _ = writeln!(s, "Case: {url}");
    }
    let _ = writeln!(s, "Identity: {}", ev.identity_key);
    if with_change {
        let _ = write!(s, "\n{}\n", note(&ev.change));
    }
    s
}
