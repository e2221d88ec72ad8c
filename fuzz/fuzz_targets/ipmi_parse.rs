//! Every IPMI parser on arbitrary text: none may panic.
#![no_main]

use caretaker_shared::hardware::ipmi;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = ipmi::parse_freeipmi_sensors(&text);
    let _ = ipmi::parse_ipmitool_sdr(&text);
    let _ = ipmi::parse_ipmitool_sensor(&text);
    let _ = ipmi::parse_freeipmi_sel(&text);
    let _ = ipmi::parse_ipmitool_sel(&text);
    let _ = ipmi::parse_sel_info(&text);
    let _ = ipmi::parse_chassis_status(&text);
    let _ = ipmi::parse_bmc_info(&text);
    let _ = ipmi::parse_lan_ip(&text);
    let _ = ipmi::parse_fru_psus(&text);
    if let Some((d, t)) = text.split_once(' ') {
        let _ = ipmi::parse_sel_time(d, t);
    }
});
