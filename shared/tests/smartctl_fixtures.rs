//! Every smartctl fixture parses, matches its golden summary, and gets the
//! verdict its MANIFEST.tsv label says (or the difference is argued below).
//!
//! The project carries the MIT and Apache-2.0 fixtures in
//! `tests/fixtures/smartctl/`. When `CARETAKER_SMARTCTL_FIXTURES` names a
//! fuller fixture folder (CI points it at the shared one, which also holds
//! GPL-licensed outputs the project may not carry), every file there is
//! checked too; if the variable is set, the folder must exist.
//!
//! Golden files: `UPDATE_GOLDEN=1 cargo test -p caretaker-shared --test smartctl_fixtures`
//! rewrites `tests/fixtures/smartctl/golden/*.json`; review the diff.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use caretaker_shared::disk_health::{Disk, Level, ReadState};
use caretaker_shared::smartctl::{SmartctlError, parse};
use proptest::prelude::*;
use serde_json::json;

fn project_fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/smartctl")
}

struct Row {
    file: String,
    label: String,
}

fn manifest(dir: &Path) -> Vec<Row> {
    let text = std::fs::read_to_string(dir.join("MANIFEST.tsv")).expect("MANIFEST.tsv");
    text.lines()
        .skip(1)
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let cols: Vec<&str> = l.split('\t').collect();
            assert!(cols.len() >= 7, "short manifest line: {l}");
            Row {
                file: cols[0].to_string(),
                label: cols[6].to_string(),
            }
        })
        .collect()
}

/// Fixtures whose verdict differs from their MANIFEST.tsv label on purpose,
/// and why. The labels come with the fixtures (the shared folder's too), so
/// they stay as given.
const ARGUED: &[(&str, Level, &str)] = &[
    (
        "ata/samsung-ssd-840-xall-crc-errors.json",
        Level::Healthy,
        "CRC errors only (199, SATA phy ICRC): the link's, not the disk's (DISK-HEALTH rule 4)",
    ),
    (
        "ata/seagate-st10000nm001g-crc-1.json",
        Level::Healthy,
        "CRC errors only (199): the link's, not the disk's (DISK-HEALTH rule 4)",
    ),
    (
        "ata/wdc-wd2003fyys-crc-3118119.json",
        Level::Healthy,
        "CRC errors only (199): the link's, not the disk's (DISK-HEALTH rule 4)",
    ),
];

/// The level a fixture's verdict must have: its label's, unless argued.
fn expected(row: &Row) -> Level {
    ARGUED
        .iter()
        .find(|(file, _, _)| *file == row.file)
        .map_or_else(|| expected_level(&row.label), |(_, level, _)| *level)
}

fn expected_level(label: &str) -> Level {
    match label {
        "healthy" => Level::Healthy,
        "warning" => Level::Warning,
        "failing" => Level::Failing,
        "error-output" => Level::Unknown,
        other => panic!("unknown manifest label {other}"),
    }
}

/// The key fields a golden file pins down (`link` only when there are link
/// notes).
fn summary(d: &Disk) -> serde_json::Value {
    let attr = |id: u8| {
        d.ata
            .as_ref()
            .and_then(|a| a.attribute(id))
            .map(|a| json!(a.decoded))
            .unwrap_or(serde_json::Value::Null)
    };
    let mut s = json!({
        "key": d.key,
        "device": d.device,
        "device_type": d.device_type,
        "protocol": d.protocol,
        "model": d.model,
        "firmware": d.firmware,
        "capacity_bytes": d.capacity_bytes,
        "rotation_rpm": d.rotation_rpm,
        "state": d.state,
        "message": d.message,
        "exit_bits": d.exit_bits,
        "smart_passed": d.smart_passed,
        "power_on_hours": d.power_on_hours,
        "temperature_c": d.temperature_c,
        "temperature_trip_c": d.temperature_trip_c,
        "ata": d.ata.as_ref().map(|a| json!({
            "attributes": a.attributes.len(),
            "5": attr(5), "187": attr(187), "188": attr(188), "196": attr(196),
            "197": attr(197), "198": attr(198), "199": attr(199),
            "error_log_count": a.error_log_count,
            "self_tests": a.self_tests.len(),
            "last_self_test_passed": a.self_tests.first().and_then(|t| t.passed),
            "sata_phy_crc_errors": a.sata_phy_crc_errors,
        })),
        "nvme": d.nvme,
        "scsi": d.scsi,
        "verdict": d.verdict.level,
        "reasons": d.verdict.reasons.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
    });
    if !d.verdict.link.is_empty() {
        s["link"] = json!(d.verdict.link.iter().map(|r| r.to_string()).collect::<Vec<_>>());
    }
    s
}

fn check_folder(dir: &Path, golden: Option<&Path>) -> usize {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut checked = 0;
    let mut failures = Vec::new();
    for row in manifest(dir) {
        let text = String::from_utf8_lossy(&std::fs::read(dir.join(&row.file)).expect(&row.file)).into_owned();
        if row.file.ends_with(".txt") {
            // Plain-text output is not what the agent asks for: a clear error.
            match parse(&text) {
                Err(SmartctlError::NotJson { line: 1, .. }) => {}
                other => failures.push(format!("{}: text should be NotJson, got {other:?}", row.file)),
            }
            checked += 1;
            continue;
        }
        let disk = match parse(&text) {
            Ok(d) => d,
            Err(e) => {
                failures.push(format!("{}: {e}", row.file));
                continue;
            }
        };
        // Every label in MANIFEST.tsv is matched, but for the differences
        // argued in ARGUED.
        let want = expected(&row);
        if disk.verdict.level != want {
            failures.push(format!(
                "{}: manifest says {}, verdict {:?} {:?}",
                row.file,
                row.label,
                disk.verdict.level,
                disk.verdict.reasons.iter().map(|r| r.to_string()).collect::<Vec<_>>()
            ));
        }
        if want == Level::Unknown {
            assert_ne!(disk.state, ReadState::Ok, "{}", row.file);
            assert!(!disk.message.is_empty(), "{}: unread disks carry a message", row.file);
        }
        if let Some(g) = golden {
            let path = g.join(row.file.replace('/', "__"));
            let got = serde_json::to_string_pretty(&summary(&disk)).unwrap() + "\n";
            if update {
                std::fs::create_dir_all(g).unwrap();
                std::fs::write(&path, &got).unwrap();
            } else {
                match std::fs::read_to_string(&path) {
                    Ok(want) if want == got => {}
                    Ok(_) => failures.push(format!("{}: differs from {}", row.file, path.display())),
                    Err(e) => failures.push(format!("{}: golden {}: {e}", row.file, path.display())),
                }
            }
        }
        checked += 1;
    }
    assert!(
        failures.is_empty(),
        "{} problems:\n{}",
        failures.len(),
        failures.join("\n")
    );
    checked
}

#[test]
fn project_fixtures_parse_match_golden_and_labels() {
    let dir = project_fixtures();
    let n = check_folder(&dir, Some(&dir.join("golden")));
    assert_eq!(n, manifest(&dir).len());
    assert!(n >= 50, "only {n} fixtures");
}

#[test]
fn every_shared_fixture_parses_when_configured() {
    let Some(dir) = std::env::var_os("CARETAKER_SMARTCTL_FIXTURES") else {
        eprintln!("CARETAKER_SMARTCTL_FIXTURES not set: only the project's fixtures are checked");
        return;
    };
    let dir = PathBuf::from(dir);
    assert!(
        dir.join("MANIFEST.tsv").is_file(),
        "CARETAKER_SMARTCTL_FIXTURES={} has no MANIFEST.tsv",
        dir.display()
    );
    let n = check_folder(&dir, None);
    assert_eq!(n, manifest(&dir).len());
}

#[test]
fn argued_differences_name_real_fixtures_and_differ() {
    let dir = project_fixtures();
    let rows = manifest(&dir);
    for (file, level, why) in ARGUED {
        let row = rows
            .iter()
            .find(|r| r.file == *file)
            .unwrap_or_else(|| panic!("{file} not in MANIFEST.tsv"));
        assert_ne!(
            expected_level(&row.label),
            *level,
            "{file}: no difference to argue ({why})"
        );
    }
}

#[test]
fn crc_only_disks_are_healthy_with_a_link_note() {
    let d = parse(&std::fs::read_to_string(project_fixtures().join("ata/wdc-wd2003fyys-crc-3118119.json")).unwrap())
        .unwrap();
    assert_eq!(d.verdict.level, Level::Healthy);
    assert!(d.verdict.reasons.is_empty(), "{:?}", d.verdict.reasons);
    assert_eq!(d.verdict.link[0].to_string(), "udma_crc_errors=3118119");
}

#[test]
fn key_fields_of_known_drives() {
    let read = |f: &str| parse(&std::fs::read_to_string(project_fixtures().join(f)).unwrap()).unwrap();
    let d = read("ata/hitachi-hds721050dle630-usbjmicron-reallocated-failing.json");
    assert_eq!(d.verdict.level, Level::Failing);
    let codes: Vec<String> = d.verdict.reasons.iter().map(|r| r.to_string()).collect();
    assert!(codes.contains(&"smart_status_failed".to_string()), "{codes:?}");
    assert!(codes.contains(&"reallocated_sectors=1975".to_string()), "{codes:?}");
    assert!(codes.contains(&"attribute_5_failing_now".to_string()), "{codes:?}");

    let d = read("ata/seagate-st16000nm001g-exos-x16-packed-timeout.json");
    assert!(d.verdict.reasons.iter().any(|r| r.to_string() == "command_timeouts=12"));
    let rre = d.ata.as_ref().and_then(|a| a.attribute(1)).unwrap();
    assert_eq!(rre.decoded, None, "Seagate raw read error rate is packed");

    let d = read("nvme/samsung-mzwll3t2hajq-critical-warning-failing.json");
    assert_eq!(d.nvme.as_ref().unwrap().critical_warning, 16);
    assert!(
        d.verdict
            .reasons
            .iter()
            .any(|r| r.code == "nvme_critical_warning_volatile_backup_failed")
    );

    let d = read("nvme/intel-ssdpe2kx020t7-wear-75pct.json");
    assert_eq!(d.verdict.reasons[0].to_string(), "nvme_percentage_used=75");

    let d = read("scsi/seagate-st373453lc-grown-defects-260-uncorrected.json");
    assert_eq!(d.temperature_trip_c, Some(68));
    let s = d.scsi.as_ref().unwrap();
    assert_eq!(
        (s.grown_defects, s.read_uncorrected, s.write_uncorrected),
        (Some(260), Some(1), Some(535))
    );

    let d = read("errors/sat-standby-skipped-exit2.json");
    assert_eq!(d.state, ReadState::Standby);
    assert_eq!(d.verdict.reasons[0].code, "standby_skipped");

    let d = read("errors/nonexistent-device-exit1.json");
    assert_eq!(d.state, ReadState::Unreadable);
    assert!(d.message.contains("Unable to detect device type"), "{}", d.message);

    let d = read("scsi/intel-raid1-volume-windows-exit4-no-smart.json");
    assert_eq!(d.state, ReadState::Unsupported);
}

fn all_project_json() -> Vec<String> {
    let dir = project_fixtures();
    manifest(&dir)
        .into_iter()
        .filter(|r| r.file.ends_with(".json"))
        .map(|r| std::fs::read_to_string(dir.join(&r.file)).unwrap())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any prefix of a real output is an error or a disk, never a panic.
    #[test]
    fn truncated_outputs_never_panic(which in 0usize..64, cut in 0.0f64..1.0) {
        let docs = all_project_json();
        let doc = &docs[which % docs.len()];
        let mut at = (doc.len() as f64 * cut) as usize;
        while !doc.is_char_boundary(at) { at -= 1; }
        let r = parse(&doc[..at]);
        if at < doc.trim_end().len() {
            prop_assert!(r.is_err());
        }
    }

    /// Flipped bytes anywhere: an error or a disk, never a panic.
    #[test]
    fn corrupted_outputs_never_panic(which in 0usize..64, flips in prop::collection::vec((0.0f64..1.0, any::<u8>()), 1..8)) {
        let docs = all_project_json();
        let mut bytes = docs[which % docs.len()].clone().into_bytes();
        for (pos, b) in flips {
            let i = ((bytes.len() - 1) as f64 * pos) as usize;
            bytes[i] = b;
        }
        let text = String::from_utf8_lossy(&bytes);
        let _ = parse(&text);
    }

    /// Arbitrary JSON values where smartctl's go: never a panic.
    #[test]
    fn hostile_json_never_panics(s in "\\PC{0,200}") {
        let _ = parse(&s);
        let _ = parse(&format!("{{\"smartctl\":{{}},\"ata_smart_attributes\":{{\"table\":[{s}]}}}}"));
    }
}

#[test]
fn deeply_nested_json_is_an_error_not_a_stack_overflow() {
    let deep = format!(
        "{{\"smartctl\":{{}},\"x\":{}{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    assert!(parse(&deep).is_err());
}
