//! A case's evidence in the words a person reads: what the rule found and
//! what the collector knows about the part (a disk's model, serial and
//! SMART reasons; a filesystem's size), e.g. "/srv 2.1 % free — 430 KiB of
//! 20 MiB, falling 1.2 MiB/h; full in ~6 h". The raw evidence stays on the
//! page, folded away, for whoever needs it.

use serde_json::Value;

use crate::cases::Item;
use crate::disks::DiskRow;
use crate::queue::format_ms_in;
use crate::words::plain;

/// A filesystem's bytes as its host last reported them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FsBytes {
    pub avail: f64,
    pub size: f64,
}

/// What the collector holds about the part a case is about.
#[derive(Debug, Clone, Default)]
pub struct Part {
    /// The disk of the host the case's component names, when it does.
    pub disk: Option<DiskRow>,
    /// The filesystem the case's component names, when it does.
    pub filesystem: Option<FsBytes>,
}

/// The disk of `disks` that `component` names: by the key the disk rules
/// use (`wwn-…`, `serial-…`, `dev-…`), else by serial, else by device.
pub fn disk_named<'a>(disks: &'a [DiskRow], component: &str) -> Option<&'a DiskRow> {
    let c = component.trim();
    if c.is_empty() {
        return None;
    }
    disks
        .iter()
        .find(|d| d.key == c)
        .or_else(|| disks.iter().find(|d| !d.serial.is_empty() && d.serial == c))
        .or_else(|| disks.iter().find(|d| !d.device.is_empty() && d.device == c))
}

/// `n` with thousands separated: "1,975".
pub fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// Bytes in binary units: "430 KiB", "2.1 MiB", "20 MiB".
pub fn bytes(n: f64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = n.abs();
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    let sign = if n < 0.0 { "-" } else { "" };
    if v < 10.0 && unit > 0 {
        format!("{sign}{v:.1} {}", UNITS[unit])
    } else {
        format!("{sign}{v:.0} {}", UNITS[unit])
    }
}

/// A rough span of time: "~45 min", "~6 h", "~3 days".
pub fn about(secs: f64) -> String {
    let secs = secs.max(0.0);
    if secs < 3_600.0 {
        format!("~{:.0} min", (secs / 60.0).max(1.0))
    } else if secs < 48.0 * 3_600.0 {
        format!("~{:.0} h", secs / 3_600.0)
    } else {
        format!("~{:.0} days", secs / 86_400.0)
    }
}

/// A number as read: whole numbers with thousands separated, others with
/// at most two decimals.
#[allow(clippy::cast_possible_truncation)]
fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        thousands(v as i64)
    } else {
        let s = format!("{v:.2}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    }
}

/// One SMART reason ("reallocated_sectors=1975") in words ("1,975
/// reallocated sectors").
fn reason_words(reason: &str) -> String {
    match reason.split_once('=') {
        Some((code, n)) => match n.parse::<i64>() {
            Ok(n) => format!("{} {}", thousands(n), plain(code)),
            Err(_) => format!("{} {n}", plain(code)),
        },
        None => plain(reason),
    }
}

/// A disk as a person finds it: "disk /dev/sdb WDC WD2003FYYS serial
/// WD-X: 1,975 reallocated sectors, 8 pending sectors, verdict failing".
pub fn disk_line(d: &DiskRow) -> String {
    let mut s = String::from("disk");
    for part in [d.device.as_str(), d.model.as_str()] {
        if !part.is_empty() {
            s.push(' ');
            s.push_str(part);
        }
    }
    if !d.serial.is_empty() {
        s.push_str(" serial ");
        s.push_str(&d.serial);
    }
    let mut found: Vec<String> = d.reasons.iter().map(|r| reason_words(r)).collect();
    found.extend(
        d.link
            .iter()
            .map(|r| format!("{} (cable or backplane)", reason_words(r))),
    );
    found.push(format!("verdict {}", d.verdict));
    s.push_str(": ");
    s.push_str(&found.join(", "));
    s
}

/// A filesystem as a person finds it: how much is free, of what, and how
/// fast it is going when the rule measured that.
fn filesystem_line(mount: &str, ev: &Value, fs: Option<FsBytes>) -> Option<String> {
    let ratio = match fs {
        Some(f) if f.size > 0.0 => Some(f.avail / f.size),
        _ => ev.get("value").and_then(Value::as_f64),
    }?;
    let mut s = format!("{mount} {:.1} % free", ratio * 100.0);
    if let Some(f) = fs.filter(|f| f.size > 0.0) {
        s.push_str(&format!(" — {} of {}", bytes(f.avail), bytes(f.size)));
    }
    let slope = ev.get("slope_per_sec").and_then(Value::as_f64);
    if let Some(slope) = slope.filter(|s| *s < 0.0) {
        let per_hour = -slope * 3_600.0;
        match fs.filter(|f| f.size > 0.0) {
            Some(f) => s.push_str(&format!(", falling {}/h", bytes(per_hour * f.size))),
            None => s.push_str(&format!(", falling {:.2} %/h", per_hour * 100.0)),
        }
    }
    if let Some(eta) = ev.get("eta_secs").and_then(Value::as_f64) {
        s.push_str(&format!("; full in {}", about(eta)));
    }
    Some(s)
}

/// The evidence of `item` in sentences, most telling first; `title` (the
/// case's) is not said again. Never empty when the evidence says anything.
pub fn lines(item: &Item, title: &str, part: &Part, zone: &str) -> Vec<String> {
    let ev = &item.evidence;
    let text = |k: &str| {
        ev.get(k)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    let mut out = Vec::new();
    if let Some(summary) = text("summary").filter(|s| *s != title.trim()) {
        out.push(summary.to_string());
    }
    let metric = text("metric").unwrap_or("");
    if metric.starts_with("caretaker_filesystem_")
        && let Some(line) = filesystem_line(&item.key.component, ev, part.filesystem)
    {
        out.push(line);
    }
    if let Some(d) = &part.disk {
        out.push(disk_line(d));
    }
    if let Some(increase) = ev.get("increase").and_then(Value::as_f64) {
        let what = ev
            .get("labels")
            .and_then(|l| l.get("attribute"))
            .and_then(Value::as_str)
            .map_or_else(|| plain(metric.trim_start_matches("caretaker_")), plain);
        let window = ev.get("window_secs").and_then(Value::as_f64).unwrap_or(0.0);
        let mut s = format!("{what} rose by {}", number(increase));
        if window > 0.0 {
            s.push_str(&format!(" in {}", about(window).trim_start_matches('~')));
        }
        if let (Some(from), Some(to)) = (
            ev.get("from").and_then(Value::as_f64),
            ev.get("value").and_then(Value::as_f64),
        ) {
            s.push_str(&format!(" ({} → {})", number(from), number(to)));
        }
        out.push(s);
    } else if let (Some(op), Some(bound)) = (text("op"), ev.get("threshold").and_then(Value::as_f64))
        && !metric.starts_with("caretaker_filesystem_")
        && let Some(value) = ev.get("value").and_then(Value::as_f64)
    {
        out.push(format!(
            "{} is {} (limit {op} {})",
            plain(metric.trim_start_matches("caretaker_")),
            number(value),
            number(bound)
        ));
    }
    if let Some(kind) = text("event") {
        let mut s = format!("{} event", plain(kind));
        if let Some(at) = ev.get("event_at_ms").and_then(Value::as_i64) {
            s.push_str(&format!(" at {}", format_ms_in(at, zone)));
        }
        if let Some(m) = text("message") {
            s.push_str(&format!(": {m}"));
        }
        out.push(s);
    }
    if let Some(d) = text("description") {
        out.push(d.to_string());
    }
    if out.is_empty()
        && let Some(summary) = text("summary")
    {
        out.push(summary.to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use serde_json::json;

    use super::*;

    #[test]
    fn numbers_sizes_and_spans_read_as_words() {
        assert_eq!(thousands(1975), "1,975");
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(thousands(-42), "-42");
        assert_eq!(bytes(440_320.0), "430 KiB");
        assert_eq!(bytes(20.0 * 1024.0 * 1024.0), "20 MiB");
        assert_eq!(bytes(1.2 * 1024.0 * 1024.0), "1.2 MiB");
        assert_eq!(bytes(512.0), "512 B");
        assert_eq!(about(6.0 * 3_600.0), "~6 h");
        assert_eq!(about(600.0), "~10 min");
        assert_eq!(about(5.0 * 86_400.0), "~5 days");
        assert_eq!(reason_words("reallocated_sectors=1975"), "1,975 reallocated sectors");
        assert_eq!(reason_words("pending_sectors=8"), "8 pending sectors");
    }

    #[test]
    fn a_filesystem_reads_free_space_rate_and_time_to_full() {
        let size = 20.0 * 1024.0 * 1024.0;
        let fs = FsBytes { avail: 440_320.0, size };
        // Falling 1.2 MiB an hour, as a share of the size per second.
        let slope = -(1.2 * 1024.0 * 1024.0 / size) / 3_600.0;
        let ev = json!({"value": 0.021, "slope_per_sec": slope, "eta_secs": 21_600.0});
        assert_eq!(
            filesystem_line("/srv", &ev, Some(fs)).unwrap(),
            "/srv 2.1 % free — 430 KiB of 20 MiB, falling 1.2 MiB/h; full in ~6 h"
        );
        // Without the sizes, the rule's ratio alone.
        assert_eq!(
            filesystem_line("/srv", &json!({"value": 0.021}), None).unwrap(),
            "/srv 2.1 % free"
        );
        assert!(filesystem_line("/srv", &json!({}), None).is_none());
    }

    #[test]
    fn a_disk_reads_device_model_serial_reasons_and_verdict() {
        let d = DiskRow {
            agent_id: "a".into(),
            host: "db01".into(),
            key: "wwn-0x50014ee".into(),
            device: "/dev/sdb".into(),
            model: "WDC WD2003FYYS".into(),
            serial: "WD-WMAY0001".into(),
            verdict: "failing".into(),
            reasons: vec!["reallocated_sectors=1975".into(), "pending_sectors=8".into()],
            link: vec![],
            state: "ok".into(),
            scanned_at_ms: 0,
            first_seen_ms: 0,
            temperature_c: None,
            power_on_hours: None,
        };
        assert_eq!(
            disk_line(&d),
            "disk /dev/sdb WDC WD2003FYYS serial WD-WMAY0001: 1,975 reallocated sectors, 8 pending sectors, verdict failing"
        );
        // Named by the disk rules' key, by serial or by device.
        let disks = [d];
        for name in ["wwn-0x50014ee", "WD-WMAY0001", "/dev/sdb"] {
            assert!(disk_named(&disks, name).is_some(), "{name}");
        }
        assert!(disk_named(&disks, "/dev/sda").is_none());
        assert!(disk_named(&disks, "").is_none());
    }
}
