//! Any bytes given to the RAID readers (storcli/perccli JSON, storcli text
//! tables, ssacli text): an error or controllers, never a panic. Seed with
//! `tests/fixtures/hardware/raid`.
#![no_main]

use caretaker_shared::hardware::raid::{self, ControllerKind};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // A record separator (U+001E) splits the input into a show-all and a drives document.
    let (show, drives) = match text.split_once('\u{1e}') {
        Some((a, b)) => (a, Some(b)),
        None => (&text[..], None),
    };
    let _ = raid::parse_storcli(show, drives, ControllerKind::MegaRaid);
    let _ = raid::parse_storcli_rebuild(&text);
    let _ = raid::parse_storcli_text_states(&text);
    let _ = raid::parse_ssacli(&text);
});
