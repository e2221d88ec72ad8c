//! Any bytes given to the report decoder and validator: never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(report) = caretaker_shared::wire::decode(data) {
        let _ = report.validate();
    }
});
