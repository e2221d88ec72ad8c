//! Any bytes given to the smartctl JSON reader: an error or a disk, never a
//! panic, an abort or unbounded memory. Seed with `tests/fixtures/smartctl`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(disk) = caretaker_shared::smartctl::parse(&text) {
        // The verdict of whatever parsed must be computable too.
        let _ = caretaker_shared::disk_health::verdict(&disk);
    }
    let _ = caretaker_shared::smartctl::parse_scan(&text);
});
