//! The IPMI parsers on every capture in tests/fixtures/hardware/ipmi, as
//! golden summaries, and on truncated, garbled and empty output.

use caretaker_shared::hardware::ipmi::*;

fn fixture(rel: &str) -> String {
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/hardware/ipmi")
        .join(rel);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn counts(r: &SensorRead) -> (usize, usize, usize, usize) {
    (
        r.count(SensorState::Nominal),
        r.count(SensorState::Warning),
        r.count(SensorState::Critical),
        r.dropped.len(),
    )
}

fn dropped_for(r: &SensorRead, reason: &str) -> Vec<String> {
    r.dropped
        .iter()
        .filter(|d| d.reason == reason)
        .map(|d| d.name.clone())
        .collect()
}

fn sensor<'a>(r: &'a SensorRead, name: &str) -> &'a Sensor {
    r.sensors
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no sensor {name}"))
}

#[test]
fn supermicro_sensor_is_all_nominal_and_drops_the_unfitted_fans() {
    let r = parse_ipmitool_sensor(&fixture("ipmitool/supermicro-sensor-healthy.txt")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(counts(&r), (31, 0, 0, 4));
    assert_eq!(dropped_for(&r, "no reading"), ["FAN5", "FANA"]);
    assert_eq!(dropped_for(&r, "discrete state word"), ["Chassis Intru", "PS1 Status"]);
    let cpu = sensor(&r, "CPU Temp");
    assert_eq!(
        (cpu.kind, cpu.reading, cpu.unit.as_str()),
        (SensorKind::Temperature, Some(77.0), "celsius")
    );
    assert_eq!(cpu.thresholds.upper_critical, Some(101.0));
    assert_eq!(cpu.thresholds.present().len(), 6);
    let fan = sensor(&r, "FAN1");
    assert_eq!(
        (fan.kind, fan.reading, fan.unit.as_str()),
        (SensorKind::Fan, Some(13200.0), "rpm")
    );
    assert_eq!(sensor(&r, "VBAT").kind, SensorKind::Voltage);
}

#[test]
fn hpe_empty_slots_and_absent_cpu_produce_no_sensors() {
    let r = parse_ipmitool_sensor(&fixture("ipmitool/hpe-gen10-sensor-many-na.txt")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(counts(&r), (38, 0, 0, 103));
    let no_reading = dropped_for(&r, "no reading");
    assert_eq!(no_reading.len(), 43, "every 'na' row");
    for name in ["03-CPU 2", "08-P2 DIMM 1-6", "Fan 1", "Intrusion", "LOM_Link_P3"] {
        assert!(no_reading.iter().any(|n| n == name), "{name}");
        assert!(r.sensors.iter().all(|s| s.name != name), "{name} must not be a sensor");
    }
    assert_eq!(dropped_for(&r, "discrete state word").len(), 60);
    let ps = sensor(&r, "PS 1 Output");
    assert_eq!((ps.kind, ps.reading), (SensorKind::Power, Some(80.0)));
    assert_eq!(sensor(&r, "Fan 3 DutyCycle").unit, "percent");
    assert_eq!(sensor(&r, "02-CPU 1").thresholds.upper_critical, Some(70.0));
    assert_eq!(sensor(&r, "02-CPU 1").thresholds.present().len(), 1);
}

#[test]
fn nc_and_nr_rows_are_warning_and_critical() {
    let r = parse_ipmitool_sensor(&fixture("ipmitool/sensor-nc-nr-na.txt")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(counts(&r), (31, 1, 6, 4));
    assert_eq!(r.names_in(SensorState::Warning), ["FAN 1"]);
    assert_eq!(
        r.names_in(SensorState::Critical),
        ["FAN1", "FAN2", "FAN3", "FAN3", "FAN4", "FANA"]
    );
    assert_eq!(dropped_for(&r, "no reading"), ["FAN4"]);
    let amb = sensor(&r, "Ambient Temp");
    assert_eq!(amb.thresholds.lower_critical, None);
    assert_eq!(amb.thresholds.upper_non_recoverable, Some(45.0));
}

#[test]
fn ibm_sdr_drops_not_readable_backplanes() {
    let r = parse_ipmitool_sdr(&fixture("ipmitool/ibm-sdr-v1-ns-not-readable.txt")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(counts(&r), (131, 0, 0, 2));
    assert_eq!(dropped_for(&r, "no reading"), ["DASD Backplane 3", "DASD Backplane 4"]);
    let p = sensor(&r, "Avg Power");
    assert_eq!(
        (p.kind, p.reading, p.unit.as_str()),
        (SensorKind::Power, Some(210.0), "watts")
    );
    assert_eq!(sensor(&r, "Power Supply 1").kind, SensorKind::PowerSupply);
    assert_eq!(sensor(&r, "Power Supply 1").reading, None);
    assert_eq!(sensor(&r, "Drive 3").kind, SensorKind::DriveSlot);
}

#[test]
fn dell_sdr_elist_reads_discrete_text_and_drops_the_sel_sensor() {
    let r = parse_ipmitool_sdr(&fixture("ipmitool/dell-sdr-elist-curated.txt")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(counts(&r), (6, 0, 0, 1));
    assert_eq!(dropped_for(&r, "no reading"), ["SEL"]);
    let ps = sensor(&r, "Power Supply 1");
    assert_eq!(
        (ps.kind, ps.reading, ps.event.as_str()),
        (SensorKind::PowerSupply, Some(110.0), "Presence detected")
    );
    assert_eq!(sensor(&r, "Intrusion").kind, SensorKind::PhysicalSecurity);
    assert_eq!(sensor(&r, "Current 1").unit, "amps");
}

#[test]
fn elist_failure_text_is_critical_even_when_the_status_says_ok() {
    let text = "PS2 Status       | C9h | ok  | 10.2 | Presence detected, Failure detected\nPS3 Status       | CAh | ok  | 10.3 | Device Absent\nCPU2 Status | 41h | ok | 3.2 | Entity Absent\n";
    let r = parse_ipmitool_sdr(text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(r.names_in(SensorState::Critical), ["PS2 Status"]);
    assert_eq!(sensor(&r, "PS2 Status").kind, SensorKind::PowerSupply);
    assert_eq!(dropped_for(&r, "entity absent"), ["PS3 Status", "CPU2 Status"]);
}

#[test]
fn freeipmi_derived_sensor_sets_with_and_without_a_failed_psu() {
    let ok = parse_freeipmi_sensors(&fixture("freeipmi/supermicro-sensors-healthy-derived.csv"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(counts(&ok), (33, 0, 0, 2));
    assert_eq!(dropped_for(&ok, "no reading"), ["FAN5", "FANA"]);
    let ps = sensor(&ok, "PS1 Status");
    assert_eq!(
        (ps.kind, ps.state, ps.reading),
        (SensorKind::PowerSupply, SensorState::Nominal, None)
    );
    assert_eq!(sensor(&ok, "Chassis Intru").kind, SensorKind::PhysicalSecurity);
    let t = sensor(&ok, "CPU Temp");
    assert_eq!(
        (t.reading, t.unit.as_str(), t.thresholds.upper_critical),
        (Some(77.0), "celsius", Some(101.0))
    );
    let bad = parse_freeipmi_sensors(&fixture("freeipmi/supermicro-sensors-psu-failed-derived.csv"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(counts(&bad), (32, 0, 1, 2));
    assert_eq!(bad.names_in(SensorState::Critical), ["PS1 Status"]);
}

#[test]
fn freeipmi_absent_entities_and_names_with_commas() {
    let text = "1,CPU2 Temp,Temperature,N/A,N/A,C,N/A,N/A,N/A,N/A,N/A,N/A,N/A\n\
                2,CPU2 Status,Processor,Nominal,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,'Entity Absent'\n\
                3,PS2 Presence,Power Supply,Nominal,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,'Device Absent'\n\
                4,Inlet, front,Temperature,Warning,41.00,C,N/A,N/A,N/A,40.00,45.00,N/A,'At or Above (>=) Upper Non-Critical Threshold'\n\
                5,Pwr Consumption,Current,Nominal,182.00,W,N/A,N/A,N/A,N/A,N/A,N/A,'OK'\n\
                6,FAN1,Fan,Nominal,3500.00,RPM,'OK'\n";
    let r = parse_freeipmi_sensors(text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(dropped_for(&r, "no reading"), ["CPU2 Temp"]);
    assert_eq!(dropped_for(&r, "entity absent"), ["CPU2 Status", "PS2 Presence"]);
    assert_eq!(r.names_in(SensorState::Warning), ["Inlet, front"]);
    assert_eq!(sensor(&r, "Pwr Consumption").kind, SensorKind::Power);
    assert_eq!(
        sensor(&r, "FAN1").thresholds,
        Thresholds::default(),
        "no thresholds asked"
    );
}

#[test]
fn freeipmi_sel_skips_the_cleared_entry_and_classifies_intrusion() {
    let sel =
        parse_freeipmi_sel(&fixture("freeipmi/sel-chassis-intrusion-critical.csv")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sel.len(), 2);
    assert_eq!((sel[0].id, sel[0].ignored), (1, Some("log cleared")));
    let e = &sel[1];
    assert_eq!((e.id, e.ignored, e.class), (2, None, SelClass::Intrusion));
    assert_eq!((e.kind, e.state), (SensorKind::PhysicalSecurity, SensorState::Critical));
    assert_eq!(e.sensor, "System Board Intrusion");
    assert_eq!(e.at_ms, Some(1_722_868_312_000));
    assert_eq!(
        e.message(),
        "BMC event log #2 at Aug-05-2024 14:31:52: System Board Intrusion (Physical Security): General Chassis Intrusion ; Intrusion while system Off"
    );
}

#[test]
fn freeipmi_sel_with_an_old_psu_failure() {
    let sel =
        parse_freeipmi_sel(&fixture("freeipmi/sel-old-psu-failure-derived.csv")).unwrap_or_else(|e| panic!("{e}"));
    let e = &sel[2];
    assert_eq!(
        (e.id, e.sensor.as_str(), e.class, e.state),
        (3, "PS1 Status", SelClass::PsuFailure, SensorState::Critical)
    );
    assert_eq!(e.at_ms, Some(1_603_118_709_000));
}

#[test]
fn ipmitool_sel_keeps_psu_failures_and_drops_power_states_oem_and_deassertions() {
    let sel = parse_ipmitool_sel(&fixture("ipmitool/supermicro-sel-elist-preinit-noncritical.txt"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sel.len(), 256);
    let count = |why: Option<&str>| sel.iter().filter(|e| e.ignored == why).count();
    assert_eq!(
        (
            count(None),
            count(Some("power state")),
            count(Some("oem record")),
            count(Some("deassertion"))
        ),
        (15, 223, 16, 2)
    );
    let kept: Vec<(u64, &str, &str)> = sel
        .iter()
        .filter(|e| e.ignored.is_none() && e.class == SelClass::PsuFailure)
        .map(|e| (e.id, e.sensor.as_str(), e.event.as_str()))
        .collect();
    assert_eq!(
        kept,
        [
            (0x131, "Power Supply 2", "Failure detected"),
            (0x132, "Power Supply 2", "Power Supply AC lost"),
            (0x133, "Power Supplies", "Redundancy Lost"),
            (0x136, "Power Supply 1", "Failure detected"),
            (0x137, "Power Supply 1", "Power Supply AC lost"),
            (0x138, "Power Supplies", "Redundancy Lost"),
        ]
    );
    assert!(
        sel.iter()
            .filter(|e| e.ignored.is_none() && e.class == SelClass::PsuFailure)
            .all(|e| e.state == SensorState::Critical && e.kind == SensorKind::PowerSupply)
    );
    let health: Vec<&SelEntry> = sel
        .iter()
        .filter(|e| e.ignored.is_none() && e.class == SelClass::Other)
        .collect();
    assert_eq!(health.len(), 9);
    assert!(
        health
            .iter()
            .all(|e| e.sensor == "SysHealth_Stat" && e.state == SensorState::Warning)
    );
    let preinit = sel.iter().filter(|e| e.at_ms.is_none()).count();
    assert_eq!(preinit, 18, "Pre-Init timestamps have no time");
}

#[test]
fn sel_classes_for_memory_fans_and_temperatures() {
    let text = "1,Jan-02-2024,10:00:00,DIMM A1,Memory,Critical,Uncorrectable memory error ; Uncorrectable ECC\n\
                2,Jan-02-2024,10:00:01,DIMM A1,Memory,Warning,Correctable ECC memory error logging limit reached\n\
                3,Jan-02-2024,10:00:02,DIMM A2,Memory,Nominal,Correctable ECC\n\
                4,Jan-02-2024,10:00:03,FAN2,Fan,Critical,Lower Critical going low\n\
                5,Jan-02-2024,10:00:04,CPU Temp,Temperature,Critical,Upper Critical going high\n\
                6,Jan-02-2024,10:00:05,ACPI State,System ACPI Power State,Nominal,S0/G0: working\n\
                7,Jan-02-2024,10:00:06,OS Boot,OS Boot,Nominal,C: boot completed\n";
    let sel = parse_freeipmi_sel(text).unwrap_or_else(|e| panic!("{e}"));
    let classes: Vec<&str> = sel.iter().map(|e| e.class.as_str()).collect();
    assert_eq!(
        classes,
        [
            "uncorrectable_ecc",
            "correctable_ecc_limit",
            "correctable_ecc",
            "fan_failure",
            "temperature_critical",
            "other",
            "other"
        ]
    );
    assert_eq!(sel[5].ignored, Some("power state"));
    assert_eq!(sel[6].ignored, Some("power state"));
    assert_eq!(sel[1].state, SensorState::Warning);
}

#[test]
fn sel_info_chassis_bmc_lan_and_fru() {
    let fi = "SEL version                                       : 1.5\nNumber of log entries                             : 256\nFree space remaining                              : 4096 bytes\n";
    let i = parse_sel_info(fi).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(i.entries, Some(256));
    assert_eq!(i.used_ratio, Some(0.5));
    let it = "SEL Information\nVersion          : 1.5 (v1.5, v2 compliant)\nEntries          : 1023\nFree Space       : 16 bytes\nPercent Used     : 99%\n";
    let i = parse_sel_info(it).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((i.entries, i.used_ratio), (Some(1023), Some(0.99)));

    let cs = "System Power                        : on\nPower overload                      : false\nInterlock                           : inactive\nPower fault                         : false\nPower control fault                 : false\nChassis intrusion                   : active\nDrive Fault                         : false\nCooling/fan fault                   : true\n";
    let c = parse_chassis_status(cs).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        c.faults(),
        [
            ("intrusion", true),
            ("power_fault", false),
            ("power_overload", false),
            ("power_interlock", false),
            ("cooling_fault", true),
            ("drive_fault", false),
        ]
    );

    let bmc = "Device ID             : 32\nFirmware Revision     : 1.66\nIPMI Version          : 2.0\nManufacturer ID       : Super Micro Computer Inc. (10876)\n";
    assert_eq!(
        parse_bmc_info(bmc),
        Ok(BmcIdentity {
            vendor: "Super Micro Computer Inc.".into(),
            firmware: "1.66".into(),
            ipmi_version: "2.0".into(),
        })
    );
    let lan = "Set in Progress         : Set Complete\nIP Address Source       : Static Address\nIP Address              : 10.1.2.3\nSubnet Mask             : 255.255.255.0\n";
    assert_eq!(parse_lan_ip(lan).as_deref(), Some("10.1.2.3"));
    assert_eq!(parse_lan_ip("IP Address : 0.0.0.0\n"), None);

    let fru = "FRU Device Description : Builtin FRU Device (ID 0)\n Board Mfg             : Supermicro\n Board Product         : X11SPi\n\nFRU Device Description : PS1 (ID 1)\n Board Mfg             : LITE-ON\n Board Product         : PWS-1K21P-1R\n Board Serial          : P1K2ABC123\n Product Manufacturer  : SUPERMICRO\n Product Name          : PWS-1K21P-1R\n Product Serial        : P1K2ABC123X\n\nFRU Device Description : PS2 (ID 2)\n Device not present (Requested sensor, data, or record not found)\n";
    assert_eq!(
        parse_fru_psus(fru),
        [PsuFru {
            name: "PS1".into(),
            manufacturer: "SUPERMICRO".into(),
            model: "PWS-1K21P-1R".into(),
            serial: "P1K2ABC123X".into(),
        }]
    );
}

#[test]
fn empty_output_is_no_sensors_and_no_entries() {
    for parse in [parse_freeipmi_sensors, parse_ipmitool_sdr, parse_ipmitool_sensor] {
        assert_eq!(parse(""), Ok(SensorRead::default()));
        assert_eq!(parse("\n\n"), Ok(SensorRead::default()));
    }
    assert_eq!(parse_freeipmi_sel(""), Ok(vec![]));
    assert_eq!(parse_ipmitool_sel(""), Ok(vec![]));
    assert!(parse_sel_info("").is_err());
    assert!(parse_chassis_status("").is_err());
    assert!(parse_bmc_info("").is_err());
    assert!(parse_fru_psus("").is_empty());
}

#[test]
fn truncated_output_names_the_line() {
    let text = fixture("ipmitool/supermicro-sensor-healthy.txt");
    let cut = &text[..text.find("FAN2").unwrap_or(0) + 30];
    assert_eq!(
        parse_ipmitool_sensor(cut).map(|_| ()),
        Err(IpmiError::Fields {
            line: 17,
            expected: "10",
            found: 2
        })
    );
    let csv = fixture("freeipmi/supermicro-sensors-healthy-derived.csv");
    let cut = &csv[..csv.find("\n3,").unwrap_or(0) + 15];
    assert!(matches!(
        parse_freeipmi_sensors(cut),
        Err(IpmiError::Fields { line: 3, .. })
    ));
    let sel = fixture("ipmitool/supermicro-sel-elist-preinit-noncritical.txt");
    let cut = &sel[..sel.find("\n  56").unwrap_or(0) + 8];
    assert!(matches!(
        parse_ipmitool_sel(cut),
        Err(IpmiError::Fields { line: 3, .. })
    ));
}

#[test]
fn garbled_output_is_an_error_not_a_panic() {
    assert!(matches!(
        parse_ipmitool_sensor("CPU Temp | hot | degrees C | ok | na | na | na | na | na | na\n"),
        Err(IpmiError::Number {
            line: 1,
            field: "reading",
            ..
        })
    ));
    assert!(matches!(
        parse_freeipmi_sel("x,Jan-01-2024,10:00:00,A,B,Nominal,C\n"),
        Err(IpmiError::RecordId { line: 1, .. })
    ));
    assert!(matches!(
        parse_ipmitool_sel("zz | a | b | c | d | e\n"),
        Err(IpmiError::RecordId { .. })
    ));
    assert!(parse_freeipmi_sensors("\u{0}\u{1}garbage").is_err());
    assert!(parse_ipmitool_sdr("ipmi_open: could not open device\n").is_err());
}
