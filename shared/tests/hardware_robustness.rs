//! Every BMC and RAID parser on damaged captures: each real output of
//! `tests/fixtures/hardware` cut short or with bytes flipped, given to every
//! parser. An error or a reading, never a panic (the same inputs the fuzz
//! targets start from, run on every test run).

#![allow(clippy::unwrap_used)]

use caretaker_shared::hardware::{ipmi, raid};
use proptest::prelude::*;

/// Every file the hardware manifest lists.
fn captures() -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/hardware");
    let manifest = std::fs::read_to_string(dir.join("MANIFEST.tsv")).unwrap();
    manifest
        .lines()
        .skip(1)
        .filter_map(|l| l.split('\t').next())
        .map(|f| String::from_utf8_lossy(&std::fs::read(dir.join(f)).unwrap()).into_owned())
        .collect()
}

/// Every parser, on one text.
fn parse_all(text: &str) {
    let _ = ipmi::parse_freeipmi_sensors(text);
    let _ = ipmi::parse_ipmitool_sdr(text);
    let _ = ipmi::parse_ipmitool_sensor(text);
    let _ = ipmi::parse_freeipmi_sel(text);
    let _ = ipmi::parse_ipmitool_sel(text);
    let _ = ipmi::parse_sel_info(text);
    let _ = ipmi::parse_chassis_status(text);
    let _ = ipmi::parse_bmc_info(text);
    let _ = ipmi::parse_lan_ip(text);
    let _ = ipmi::parse_fru_psus(text);
    let _ = raid::parse_storcli(text, None, raid::ControllerKind::MegaRaid);
    let _ = raid::parse_storcli(text, Some(text), raid::ControllerKind::Perc);
    let _ = raid::parse_storcli_rebuild(text);
    let _ = raid::parse_storcli_text_states(text);
    let _ = raid::parse_ssacli(text);
}

#[test]
fn the_manifest_lists_captures_of_every_tool() {
    let all = captures();
    assert!(all.len() >= 30, "{} files", all.len());
    for text in &all {
        parse_all(text);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any prefix of a real output: an error or a reading, never a panic.
    #[test]
    fn truncated_outputs_never_panic(which in 0usize..64, cut in 0.0f64..1.0) {
        let all = captures();
        let text = &all[which % all.len()];
        let mut at = (text.len() as f64 * cut) as usize;
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        parse_all(&text[..at]);
    }

    /// Bytes flipped anywhere: an error or a reading, never a panic.
    #[test]
    fn corrupted_outputs_never_panic(which in 0usize..64, flips in prop::collection::vec((0.0f64..1.0, any::<u8>()), 1..8)) {
        let all = captures();
        let mut bytes = all[which % all.len()].clone().into_bytes();
        for (at, b) in flips {
            if bytes.is_empty() {
                break;
            }
            let i = ((bytes.len() - 1) as f64 * at) as usize;
            bytes[i] = b;
        }
        parse_all(&String::from_utf8_lossy(&bytes));
    }
}
