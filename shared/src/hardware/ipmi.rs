//! BMC sensors, system event log, chassis status and identity, as FreeIPMI
//! (`ipmi-sensors`, `ipmi-sel`, `ipmi-chassis`, `bmc-info`, `ipmi-fru`) and
//! ipmitool (`sdr elist`, `sdr`, `sensor`, `sel elist`, `sel info`,
//! `chassis status`, `mc info`, `fru`, `lan print`) print them.
//!
//! Both tool families end in one model: a [`Sensor`] with a normalized type,
//! a state (nominal, warning, critical), its reading and thresholds; a
//! [`SelEntry`] with its time, sensor, event text and [`SelClass`]. Sensors
//! that give no reading or belong to an absent part (an empty PSU bay, a
//! second CPU not fitted) are not sensors here: they are listed in
//! [`SensorRead::dropped`] with the reason, so a report never carries a false
//! alarm from a part that is not there.

use std::fmt;

/// Why an output could not be read. Every variant names the line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpmiError {
    #[error("line {line}: expected {expected} fields, found {found}")]
    Fields {
        line: usize,
        expected: &'static str,
        found: usize,
    },
    #[error("line {line}: {field} {value:?} is not a number")]
    Number {
        line: usize,
        field: &'static str,
        value: String,
    },
    #[error("line {line}: record id {value:?} is not a number")]
    RecordId { line: usize, value: String },
    #[error("no {what} in the output")]
    Empty { what: &'static str },
}

/// Health of a sensor: the `caretaker_ipmi_sensor_state` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum SensorState {
    #[default]
    Nominal,
    Warning,
    Critical,
}

impl SensorState {
    pub fn value(self) -> f64 {
        match self {
            Self::Nominal => 0.0,
            Self::Warning => 1.0,
            Self::Critical => 2.0,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Nominal => "nominal",
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }
}

/// The normalized sensor type (the `type` label).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum SensorKind {
    Temperature,
    Fan,
    Voltage,
    Current,
    /// A reading in watts.
    Power,
    /// IPMI types "Power Supply" and "Power Unit", redundancy sensors included.
    PowerSupply,
    PhysicalSecurity,
    DriveSlot,
    Memory,
    Processor,
    #[default]
    Other,
}

impl SensorKind {
    pub const ALL: [SensorKind; 11] = [
        Self::Temperature,
        Self::Fan,
        Self::Voltage,
        Self::Current,
        Self::Power,
        Self::PowerSupply,
        Self::PhysicalSecurity,
        Self::DriveSlot,
        Self::Memory,
        Self::Processor,
        Self::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Temperature => "temperature",
            Self::Fan => "fan",
            Self::Voltage => "voltage",
            Self::Current => "current",
            Self::Power => "power",
            Self::PowerSupply => "power_supply",
            Self::PhysicalSecurity => "physical_security",
            Self::DriveSlot => "drive_slot",
            Self::Memory => "memory",
            Self::Processor => "processor",
            Self::Other => "other",
        }
    }

    /// The type from the IPMI sensor type name a tool prints
    /// ("Temperature", "Power Supply", "Drive Slot / Bay", ...).
    pub fn from_ipmi_type(t: &str) -> Self {
        let t = t.trim().to_ascii_lowercase();
        match t.as_str() {
            "temperature" => Self::Temperature,
            "fan" | "cooling device" => Self::Fan,
            "voltage" => Self::Voltage,
            "current" => Self::Current,
            "power supply" | "power unit" => Self::PowerSupply,
            "physical security" | "physical security (chassis intrusion)" => Self::PhysicalSecurity,
            "memory" => Self::Memory,
            "processor" => Self::Processor,
            _ if t.starts_with("drive slot") => Self::DriveSlot,
            _ => Self::Other,
        }
    }
}

impl fmt::Display for SensorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The six IPMI thresholds of an analog sensor, in the sensor's unit.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Thresholds {
    pub lower_non_recoverable: Option<f64>,
    pub lower_critical: Option<f64>,
    pub lower_non_critical: Option<f64>,
    pub upper_non_critical: Option<f64>,
    pub upper_critical: Option<f64>,
    pub upper_non_recoverable: Option<f64>,
}

impl Thresholds {
    /// `(threshold label, value)` for the thresholds the sensor has.
    pub fn present(&self) -> Vec<(&'static str, f64)> {
        [
            ("lower_non_recoverable", self.lower_non_recoverable),
            ("lower_critical", self.lower_critical),
            ("lower_non_critical", self.lower_non_critical),
            ("upper_non_critical", self.upper_non_critical),
            ("upper_critical", self.upper_critical),
            ("upper_non_recoverable", self.upper_non_recoverable),
        ]
        .into_iter()
        .filter_map(|(n, v)| v.map(|v| (n, v)))
        .collect()
    }

    fn from_fields(f: &[&str; 6], line: usize) -> Result<Self, IpmiError> {
        let mut v = [None; 6];
        for (i, s) in f.iter().enumerate() {
            v[i] = optional_number(s, line, "threshold")?;
        }
        Ok(Self {
            lower_non_recoverable: v[0],
            lower_critical: v[1],
            lower_non_critical: v[2],
            upper_non_critical: v[3],
            upper_critical: v[4],
            upper_non_recoverable: v[5],
        })
    }
}

/// One live BMC sensor that has a reading or a state.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Sensor {
    /// The name as the tool prints it, trimmed (the `sensor` label).
    pub name: String,
    pub kind: SensorKind,
    pub state: SensorState,
    /// The analog reading; `None` for a discrete sensor (state only).
    pub reading: Option<f64>,
    /// Normalized unit: `celsius`, `rpm`, `volts`, `amps`, `watts`, `percent`, ...; empty when none.
    pub unit: String,
    pub thresholds: Thresholds,
    /// The tool's event or state text (`Presence detected`, `'OK'`), trimmed of quotes.
    pub event: String,
}

/// A row the parser left out, and why (`no reading`, `entity absent`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    pub name: String,
    pub reason: &'static str,
}

/// The sensors of one read.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SensorRead {
    pub sensors: Vec<Sensor>,
    pub dropped: Vec<Dropped>,
}

impl SensorRead {
    /// How many sensors are in `state`.
    pub fn count(&self, state: SensorState) -> usize {
        self.sensors.iter().filter(|s| s.state == state).count()
    }

    /// Names of the sensors in `state`, in output order.
    pub fn names_in(&self, state: SensorState) -> Vec<&str> {
        self.sensors
            .iter()
            .filter(|s| s.state == state)
            .map(|s| s.name.as_str())
            .collect()
    }
}

fn is_missing(s: &str) -> bool {
    let t = s.trim();
    t.is_empty() || t.eq_ignore_ascii_case("n/a") || t.eq_ignore_ascii_case("na")
}

fn optional_number(s: &str, line: usize, field: &'static str) -> Result<Option<f64>, IpmiError> {
    if is_missing(s) {
        return Ok(None);
    }
    let t = s.trim();
    match t.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(Some(v)),
        _ => Err(IpmiError::Number {
            line,
            field,
            value: t.chars().take(64).collect(),
        }),
    }
}

/// The unit as the catalogue names it.
pub fn normalize_unit(u: &str) -> String {
    let t = u.trim();
    if is_missing(t) {
        return String::new();
    }
    match t.to_ascii_lowercase().as_str() {
        "c" | "degrees c" => "celsius".into(),
        "f" | "degrees f" => "fahrenheit".into(),
        "rpm" => "rpm".into(),
        "v" | "volts" => "volts".into(),
        "a" | "amps" => "amps".into(),
        "w" | "watts" => "watts".into(),
        "%" | "percent" => "percent".into(),
        "discrete" => String::new(),
        other => other
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect(),
    }
}

/// What an event or state text of a discrete sensor says. Absent parts and
/// sensors without a reading are `None` (dropped).
enum Discrete {
    Absent,
    NoReading,
    State(SensorState),
}

fn discrete_text(text: &str) -> Discrete {
    let t = text.to_ascii_lowercase();
    if t.contains("entity absent") || t.contains("device absent") || t.contains("presence not detected") {
        return Discrete::Absent;
    }
    if t.contains("no reading") || t.contains("not readable") || t.contains("disabled") && t.contains("scanning") {
        return Discrete::NoReading;
    }
    let critical = [
        "failure detected",
        "power supply ac lost",
        "ac lost or out-of-range",
        "ac out-of-range",
        "redundancy lost",
        "drive fault",
        "uncorrectable ecc",
        "non-recoverable",
        "config error",
    ];
    if critical.iter().any(|c| t.contains(c)) || t.contains("critical") && !t.contains("non-critical") {
        return Discrete::State(SensorState::Critical);
    }
    let warning = [
        "predictive failure",
        "general chassis intrusion",
        "intrusion",
        "non-critical",
        "redundancy degraded",
        "in critical array",
        "in failed array",
        "rebuild",
    ];
    if warning.iter().any(|w| t.contains(w)) {
        return Discrete::State(SensorState::Warning);
    }
    Discrete::State(SensorState::Nominal)
}

/// ipmitool's status column (`ok`, `nc`, `cr`, `nr`, `lnc`, `ucr`, ...).
/// `None` for `ns`/`na` (no reading).
fn ipmitool_status(s: &str) -> Option<SensorState> {
    match s.trim().to_ascii_lowercase().as_str() {
        "ok" => Some(SensorState::Nominal),
        "nc" | "lnc" | "unc" => Some(SensorState::Warning),
        "cr" | "lcr" | "ucr" | "nr" | "lnr" | "unr" => Some(SensorState::Critical),
        _ => None,
    }
}

fn looks_like_psu(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    if n.contains("power supply") || n.contains("power supplies") || n.contains("psu") || n.contains("pws") {
        return true;
    }
    // `PS1 Status`, `PS 2`, `PS2`.
    let b = n.as_bytes();
    b.len() >= 3
        && b[0] == b'p'
        && b[1] == b's'
        && (b[2].is_ascii_digit() || (b[2] == b' ' && b.get(3).is_some_and(u8::is_ascii_digit)))
}

/// The type of a sensor from its name and unit, for ipmitool outputs that
/// do not print the type.
fn infer_kind(name: &str, unit: &str, discrete: bool) -> SensorKind {
    let n = name.to_ascii_lowercase();
    if looks_like_psu(name) && (discrete || unit.is_empty()) {
        return SensorKind::PowerSupply;
    }
    match unit {
        "celsius" | "fahrenheit" => return SensorKind::Temperature,
        "rpm" => return SensorKind::Fan,
        "volts" => return SensorKind::Voltage,
        "amps" => return SensorKind::Current,
        "watts" => return SensorKind::Power,
        _ => {}
    }
    if n.contains("intru") {
        SensorKind::PhysicalSecurity
    } else if looks_like_psu(name) {
        SensorKind::PowerSupply
    } else if n.contains("fan") {
        SensorKind::Fan
    } else if n.contains("temp") {
        SensorKind::Temperature
    } else if n.contains("drive") || n.contains("disk") || n.contains("hdd") || n.starts_with("dr_stat") {
        SensorKind::DriveSlot
    } else if n.contains("dimm") || n.contains("mem") {
        SensorKind::Memory
    } else if n.contains("cpu") || n.contains("proc") {
        SensorKind::Processor
    } else {
        SensorKind::Other
    }
}

fn lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim_end_matches('\r')))
        .filter(|(_, l)| !l.trim().is_empty())
}

fn unquote(s: &str) -> &str {
    s.trim().trim_matches('\'').trim()
}

/// FreeIPMI `ipmi-sensors --output-sensor-state --output-sensor-thresholds
/// --comma-separated-output --no-header-output [--entity-sensor-names]`:
/// `ID,Name,Type,State,Reading,Units,Lower NR,Lower C,Lower NC,Upper NC,Upper C,Upper NR,Event`.
/// Without `--output-sensor-thresholds` (7 fields) the thresholds are empty.
/// A name with a comma makes extra fields; they are joined back into the name.
pub fn parse_freeipmi_sensors(text: &str) -> Result<SensorRead, IpmiError> {
    let mut read = SensorRead::default();
    for (line, l) in lines(text) {
        let f: Vec<&str> = l.split(',').collect();
        let (width, thresholds) = if f.len() >= 13 {
            (13, true)
        } else if f.len() >= 7 {
            (7, false)
        } else {
            return Err(IpmiError::Fields {
                line,
                expected: "13 (or 7)",
                found: f.len(),
            });
        };
        // Extra commas belong to the name (field 1).
        let extra = f.len() - width;
        let name = f[1..=1 + extra].join(",").trim().to_string();
        let rest = &f[2 + extra..];
        let (ty, state, reading, unit) = (rest[0], rest[1], rest[2], rest[3]);
        let event = unquote(rest[rest.len() - 1]).to_string();
        if f[0].trim().parse::<u64>().is_err() {
            return Err(IpmiError::RecordId {
                line,
                value: f[0].trim().chars().take(32).collect(),
            });
        }
        let unit = normalize_unit(unit);
        let reading = optional_number(reading, line, "reading")?;
        let th = if thresholds {
            Thresholds::from_fields(&[rest[4], rest[5], rest[6], rest[7], rest[8], rest[9]], line)?
        } else {
            Thresholds::default()
        };
        match discrete_text(&event) {
            Discrete::Absent => {
                read.dropped.push(Dropped {
                    name,
                    reason: "entity absent",
                });
                continue;
            }
            Discrete::NoReading => {
                read.dropped.push(Dropped {
                    name,
                    reason: "no reading",
                });
                continue;
            }
            Discrete::State(_) => {}
        }
        let state = match state.trim().to_ascii_lowercase().as_str() {
            "nominal" => SensorState::Nominal,
            "warning" => SensorState::Warning,
            "critical" => SensorState::Critical,
            _ => {
                read.dropped.push(Dropped {
                    name,
                    reason: "no reading",
                });
                continue;
            }
        };
        let mut kind = SensorKind::from_ipmi_type(ty);
        if unit == "watts" && matches!(kind, SensorKind::Current | SensorKind::Other) {
            kind = SensorKind::Power;
        }
        if kind == SensorKind::Other && is_missing(ty) {
            kind = infer_kind(&name, &unit, reading.is_none());
        }
        read.sensors.push(Sensor {
            name,
            kind,
            state,
            reading,
            unit,
            thresholds: th,
            event,
        });
    }
    Ok(read)
}

fn pipe_fields(l: &str) -> Vec<&str> {
    l.split('|').map(str::trim).collect()
}

/// Splits `25 degrees C` / `5040 RPM` / `110 Watts, Presence detected` /
/// `Connected` into the number, the unit and the discrete text.
fn split_reading(r: &str) -> (Option<f64>, String, String) {
    let r = r.trim();
    let (value_part, text) = match r.split_once(',') {
        Some((a, b)) => (a.trim(), b.trim().to_string()),
        None => (r, String::new()),
    };
    let mut words = value_part.splitn(2, ' ');
    let first = words.next().unwrap_or("");
    match first.parse::<f64>() {
        Ok(v) if v.is_finite() && !first.starts_with("0x") => {
            (Some(v), normalize_unit(words.next().unwrap_or("")), text)
        }
        _ => (None, String::new(), r.to_string()),
    }
}

/// ipmitool `sdr elist` (5 fields: name | id | status | entity | reading)
/// and `sdr` / `sdr list` (3 fields: name | reading | status), line by line.
pub fn parse_ipmitool_sdr(text: &str) -> Result<SensorRead, IpmiError> {
    let mut read = SensorRead::default();
    for (line, l) in lines(text) {
        let f = pipe_fields(l);
        let (name, status, reading) = match f.len() {
            5 => (f[0], f[2], f[4]),
            3 => (f[0], f[2], f[1]),
            n => {
                return Err(IpmiError::Fields {
                    line,
                    expected: "5 (sdr elist) or 3 (sdr)",
                    found: n,
                });
            }
        };
        let name = name.to_string();
        let (value, unit, text) = split_reading(reading);
        if let Discrete::Absent = discrete_text(&text) {
            read.dropped.push(Dropped {
                name,
                reason: "entity absent",
            });
            continue;
        }
        let Some(status_state) = ipmitool_status(status) else {
            read.dropped.push(Dropped {
                name,
                reason: "no reading",
            });
            continue;
        };
        if let Discrete::NoReading = discrete_text(&text) {
            read.dropped.push(Dropped {
                name,
                reason: "no reading",
            });
            continue;
        }
        // `0x00 | ok` (sdr): a discrete sensor whose state word is not decoded.
        let hex_text = text.starts_with("0x");
        let text_state = match discrete_text(&text) {
            Discrete::State(s) if !hex_text => s,
            _ => SensorState::Nominal,
        };
        let kind = infer_kind(&name, &unit, value.is_none() || !text.is_empty());
        read.sensors.push(Sensor {
            name,
            kind,
            state: status_state.max(text_state),
            reading: value,
            unit,
            thresholds: Thresholds::default(),
            event: text,
        });
    }
    Ok(read)
}

/// ipmitool `sensor` (10 fields: name | reading | unit | status | lnr | lcr |
/// lnc | unc | ucr | unr). Discrete rows (`0x0100` state words) are dropped:
/// the word is not decodable without the sensor type, and `sdr elist`
/// gives their state as text.
pub fn parse_ipmitool_sensor(text: &str) -> Result<SensorRead, IpmiError> {
    let mut read = SensorRead::default();
    for (line, l) in lines(text) {
        let f = pipe_fields(l);
        if f.len() != 10 {
            return Err(IpmiError::Fields {
                line,
                expected: "10",
                found: f.len(),
            });
        }
        let name = f[0].to_string();
        if f[2].eq_ignore_ascii_case("discrete") {
            let reason = if is_missing(f[1]) {
                "no reading"
            } else {
                "discrete state word"
            };
            read.dropped.push(Dropped { name, reason });
            continue;
        }
        let Some(state) = ipmitool_status(f[3]) else {
            read.dropped.push(Dropped {
                name,
                reason: "no reading",
            });
            continue;
        };
        let Some(reading) = optional_number(f[1], line, "reading")? else {
            read.dropped.push(Dropped {
                name,
                reason: "no reading",
            });
            continue;
        };
        let unit = normalize_unit(f[2]);
        let thresholds = Thresholds::from_fields(&[f[4], f[5], f[6], f[7], f[8], f[9]], line)?;
        let kind = infer_kind(&name, &unit, false);
        read.sensors.push(Sensor {
            name,
            kind,
            state,
            reading: Some(reading),
            unit,
            thresholds,
            event: String::new(),
        });
    }
    Ok(read)
}

/// Fills the thresholds (and missing readings) of `sdr elist` sensors from
/// ipmitool `sensor`, matching by name.
pub fn merge_thresholds(sdr: &mut SensorRead, sensor: &SensorRead) {
    for s in &mut sdr.sensors {
        if let Some(t) = sensor.sensors.iter().find(|t| t.name == s.name) {
            s.thresholds = t.thresholds;
            if s.reading.is_none() {
                s.reading = t.reading;
                s.unit = t.unit.clone();
            }
        }
    }
}

/// What an event-log entry is about, for the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SelClass {
    UncorrectableEcc,
    CorrectableEccLimit,
    CorrectableEcc,
    PsuFailure,
    FanFailure,
    TemperatureCritical,
    Intrusion,
    #[default]
    Other,
}

impl SelClass {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UncorrectableEcc => "uncorrectable_ecc",
            Self::CorrectableEccLimit => "correctable_ecc_limit",
            Self::CorrectableEcc => "correctable_ecc",
            Self::PsuFailure => "psu_failure",
            Self::FanFailure => "fan_failure",
            Self::TemperatureCritical => "temperature_critical",
            Self::Intrusion => "intrusion",
            Self::Other => "other",
        }
    }

    /// The least severity an entry of this class has.
    fn floor(self) -> SensorState {
        match self {
            Self::UncorrectableEcc | Self::PsuFailure | Self::FanFailure | Self::TemperatureCritical => {
                SensorState::Critical
            }
            Self::CorrectableEccLimit | Self::Intrusion => SensorState::Warning,
            Self::CorrectableEcc | Self::Other => SensorState::Nominal,
        }
    }
}

/// One system event log entry.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SelEntry {
    /// Record id (FreeIPMI prints it in decimal, ipmitool in hex).
    pub id: u64,
    /// The entry's own time (the BMC clock, read as UTC), when it parses.
    pub at_ms: Option<i64>,
    /// The date and time as printed, for messages.
    pub when: String,
    pub sensor: String,
    /// The IPMI sensor type as printed (`Power Supply`).
    pub sensor_type: String,
    pub kind: SensorKind,
    /// Severity: FreeIPMI's state column, or read from the event text (ipmitool),
    /// never below what the class implies.
    pub state: SensorState,
    pub event: String,
    /// A deassertion (the condition went away).
    pub deasserted: bool,
    pub class: SelClass,
    /// Why the entry is not sent, when it is not: `log cleared`, `power state`,
    /// `deassertion`, `oem record`.
    pub ignored: Option<&'static str>,
}

impl SelEntry {
    /// The entry as one readable line.
    pub fn message(&self) -> String {
        let sensor = if self.sensor.is_empty() {
            self.sensor_type.clone()
        } else if self.sensor_type.is_empty() {
            self.sensor.clone()
        } else {
            format!("{} ({})", self.sensor, self.sensor_type)
        };
        format!(
            "BMC event log #{} at {}: {}: {}",
            self.id, self.when, sensor, self.event
        )
    }

    /// A fingerprint of the entry, to see whether a record id still names the same entry.
    pub fn fingerprint(&self) -> String {
        format!("{}|{}|{}", self.when, self.sensor, self.event)
    }
}

/// Classifies an entry and says whether it is left out.
fn classify(e: &mut SelEntry) {
    let ev = e.event.to_ascii_lowercase();
    let ty = e.sensor_type.to_ascii_lowercase();
    e.class = if ev.contains("uncorrectable ecc") {
        SelClass::UncorrectableEcc
    } else if ev.contains("correctable ecc") && ev.contains("limit") {
        SelClass::CorrectableEccLimit
    } else if ev.contains("correctable ecc") {
        SelClass::CorrectableEcc
    } else if e.kind == SensorKind::PowerSupply
        && (ev.contains("failure")
            || ev.contains("ac lost")
            || ev.contains("redundancy lost")
            || ev.contains("out-of-range"))
    {
        SelClass::PsuFailure
    } else if e.kind == SensorKind::Fan
        && (ev.contains("failure")
            || ev.contains("redundancy lost")
            || ev.contains("lower critical")
            || ev.contains("lower non-recoverable")
            || e.state == SensorState::Critical)
    {
        SelClass::FanFailure
    } else if e.kind == SensorKind::Temperature
        && (e.state == SensorState::Critical || ev.contains("upper critical") || ev.contains("non-recoverable"))
    {
        SelClass::TemperatureCritical
    } else if e.kind == SensorKind::PhysicalSecurity || ev.contains("intrusion") {
        SelClass::Intrusion
    } else {
        SelClass::Other
    };
    e.state = e.state.max(e.class.floor());
    let power_state = ty.contains("acpi power state")
        || ty == "os boot"
        || ty == "system boot initiated"
        || ty == "system boot / restart initiated"
        || ev.contains("os graceful shutdown")
        || ev.contains("os graceful stop")
        || (e.kind == SensorKind::PowerSupply
            && (ev.contains("power off") || ev.contains("power down") || ev.contains("power cycle")));
    e.ignored = if ev.contains("log area reset") || ev.contains("log area cleared") {
        Some("log cleared")
    } else if power_state {
        Some("power state")
    } else if e.deasserted {
        Some("deassertion")
    } else if ty.starts_with("oem record") || ty.starts_with("oem reserved") && e.sensor.is_empty() {
        Some("oem record")
    } else {
        None
    };
}

/// Days since 1970-01-01 of a civil date (proleptic Gregorian).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn month_number(m: &str) -> Option<i64> {
    const MONTHS: [&str; 12] = [
        "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
    ];
    let m = m.to_ascii_lowercase();
    MONTHS.iter().position(|x| *x == m).map(|i| i as i64 + 1)
}

/// Unix ms of a SEL date and time: `MM/DD/YYYY` (ipmitool) or `Mon-DD-YYYY`
/// (FreeIPMI) and `HH:MM:SS`. `None` for `Pre-Init`, `PostInit`, `N/A` and
/// anything else that is not a real time.
pub fn parse_sel_time(date: &str, time: &str) -> Option<i64> {
    let date = date.trim();
    let (y, m, d) = if let Some((m, rest)) = date.split_once('/') {
        let (d, y) = rest.split_once('/')?;
        (y.parse::<i64>().ok()?, m.parse::<i64>().ok()?, d.parse::<i64>().ok()?)
    } else {
        let mut p = date.split('-');
        let m = month_number(p.next()?)?;
        let d = p.next()?.parse::<i64>().ok()?;
        let y = p.next()?.parse::<i64>().ok()?;
        (y, m, d)
    };
    if !(1990..=9999).contains(&y) || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let mut t = time.trim().split(':');
    let hh = t.next()?.parse::<i64>().ok()?;
    let mm = t.next()?.parse::<i64>().ok()?;
    let ss = t.next()?.parse::<i64>().ok()?;
    if t.next().is_some() || !(0..24).contains(&hh) || !(0..60).contains(&mm) || !(0..61).contains(&ss) {
        return None;
    }
    Some((days_from_civil(y, m, d) * 86_400 + hh * 3600 + mm * 60 + ss) * 1000)
}

/// FreeIPMI `ipmi-sel --output-event-state --interpret-oem-data
/// --entity-sensor-names --comma-separated-output --no-header-output`:
/// `ID,Date,Time,Name,Type,State,Event`. Commas past the seventh field
/// belong to the event text.
pub fn parse_freeipmi_sel(text: &str) -> Result<Vec<SelEntry>, IpmiError> {
    let mut out = Vec::new();
    for (line, l) in lines(text) {
        let f: Vec<&str> = l.splitn(7, ',').collect();
        if f.len() < 7 {
            return Err(IpmiError::Fields {
                line,
                expected: "7",
                found: f.len(),
            });
        }
        let id = f[0].trim().parse::<u64>().map_err(|_| IpmiError::RecordId {
            line,
            value: f[0].trim().chars().take(32).collect(),
        })?;
        let state = match f[5].trim().to_ascii_lowercase().as_str() {
            "critical" => SensorState::Critical,
            "warning" => SensorState::Warning,
            _ => SensorState::Nominal,
        };
        let event = unquote(f[6]).to_string();
        let lower = event.to_ascii_lowercase();
        let mut e = SelEntry {
            id,
            at_ms: parse_sel_time(f[1], f[2]),
            when: format!("{} {}", f[1].trim(), f[2].trim()),
            sensor: f[3].trim().to_string(),
            sensor_type: f[4].trim().to_string(),
            kind: SensorKind::from_ipmi_type(f[4]),
            state,
            deasserted: lower.contains("deassert"),
            event,
            ..SelEntry::default()
        };
        classify(&mut e);
        out.push(e);
    }
    Ok(out)
}

/// IPMI sensor type names as ipmitool prints them before the sensor name in
/// `sel elist` ("Power Supply PS2 Status"), longest first so
/// "Power Supply" wins over "Power".
const IPMITOOL_SEL_TYPES: &[&str] = &[
    "System ACPI Power State",
    "Management Subsys Health",
    "Physical Security",
    "Platform Security",
    "Cable / Interconnect",
    "Event Logging Disabled",
    "System Boot Initiated",
    "Drive Slot / Bay",
    "POST Memory Resize",
    "Critical Interrupt",
    "OS Critical Stop",
    "Slot / Connector",
    "System Firmwares",
    "System Firmware Progress",
    "Cooling Device",
    "Version Change",
    "Entity Presence",
    "Microcontroller",
    "Module / Board",
    "Platform Alert",
    "Power Supply",
    "Session Audit",
    "System Event",
    "Add-in Card",
    "Monitor ASIC",
    "Temperature",
    "Power Unit",
    "Boot Error",
    "Terminator",
    "Other FRU",
    "FRU State",
    "Processor",
    "Watchdog2",
    "Watchdog1",
    "Watchdog",
    "Chip Set",
    "Voltage",
    "Current",
    "Chassis",
    "Battery",
    "OS Boot",
    "Memory",
    "Button",
    "Other",
    "Fan",
    "LAN",
];

fn split_type_and_name(s: &str) -> (String, String) {
    let s = s.trim();
    if s.starts_with("OEM record") {
        return (s.to_string(), String::new());
    }
    let lower = s.to_ascii_lowercase();
    for t in IPMITOOL_SEL_TYPES {
        let tl = t.to_ascii_lowercase();
        if lower == tl {
            return (t.to_string(), String::new());
        }
        if lower.starts_with(&tl) && s.as_bytes().get(t.len()) == Some(&b' ') {
            return (t.to_string(), s[t.len()..].trim().to_string());
        }
    }
    (String::new(), s.to_string())
}

/// ipmitool `sel elist` (and `sel list`): `id | date | time | type and
/// sensor | event | Asserted/Deasserted [| reading]`, record ids in hex.
pub fn parse_ipmitool_sel(text: &str) -> Result<Vec<SelEntry>, IpmiError> {
    let mut out = Vec::new();
    for (line, l) in lines(text) {
        let f = pipe_fields(l);
        if f.len() < 5 {
            return Err(IpmiError::Fields {
                line,
                expected: "at least 5",
                found: f.len(),
            });
        }
        let id = u64::from_str_radix(f[0], 16).map_err(|_| IpmiError::RecordId {
            line,
            value: f[0].chars().take(32).collect(),
        })?;
        let (sensor_type, sensor) = split_type_and_name(f[3]);
        let direction = f.get(5).copied().unwrap_or("");
        let deasserted = direction.eq_ignore_ascii_case("deasserted");
        let mut event = f[4].to_string();
        if let Some(extra) = f.get(6).filter(|x| !x.is_empty()) {
            event = format!("{event} ({extra})");
        }
        let kind = if sensor_type.is_empty() {
            infer_kind(&sensor, "", true)
        } else {
            SensorKind::from_ipmi_type(&sensor_type)
        };
        let text_state = match discrete_text(&event) {
            Discrete::State(s) => s,
            _ => SensorState::Nominal,
        };
        let lower = event.to_ascii_lowercase();
        let threshold_state = if lower.contains("non-critical") {
            SensorState::Warning
        } else if lower.contains("critical going") || lower.contains("non-recoverable going") {
            SensorState::Critical
        } else {
            SensorState::Nominal
        };
        let mut e = SelEntry {
            id,
            at_ms: parse_sel_time(f[1], f[2]),
            when: format!("{} {}", f[1], f[2]),
            sensor,
            sensor_type,
            kind,
            state: text_state.max(threshold_state),
            event,
            deasserted,
            ..SelEntry::default()
        };
        classify(&mut e);
        out.push(e);
    }
    Ok(out)
}

/// How full the event log is.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SelInfo {
    pub entries: Option<u64>,
    /// 0-1.
    pub used_ratio: Option<f64>,
}

/// `key : value` lines (FreeIPMI and ipmitool info outputs), keys lowercased.
fn key_values(text: &str) -> Vec<(String, String)> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect()
}

fn leading_number(v: &str) -> Option<f64> {
    let n: String = v
        .trim()
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    n.parse::<f64>().ok().filter(|x| x.is_finite())
}

/// Size of one SEL record: 16 bytes (IPMI 2.0 §31).
const SEL_RECORD_BYTES: f64 = 16.0;

/// FreeIPMI `ipmi-sel --info` (`Number of log entries`, `Free space
/// remaining : N bytes`) and ipmitool `sel info` (`Entries`, `Percent Used`).
pub fn parse_sel_info(text: &str) -> Result<SelInfo, IpmiError> {
    let kv = key_values(text);
    let get = |keys: &[&str]| {
        kv.iter()
            .find(|(k, _)| keys.contains(&k.as_str()))
            .map(|(_, v)| v.as_str())
    };
    let entries = get(&["number of log entries", "entries"])
        .and_then(leading_number)
        .map(|v| v as u64);
    let percent = get(&["percent used"])
        .and_then(leading_number)
        .map(|p| (p / 100.0).clamp(0.0, 1.0));
    let free = get(&["free space remaining", "free space"]).and_then(leading_number);
    let used_ratio = percent.or_else(|| {
        let used = entries? as f64 * SEL_RECORD_BYTES;
        let free = free?;
        (used + free > 0.0).then(|| (used / (used + free)).clamp(0.0, 1.0))
    });
    if entries.is_none() && used_ratio.is_none() {
        return Err(IpmiError::Empty {
            what: "SEL entry count",
        });
    }
    Ok(SelInfo { entries, used_ratio })
}

/// The chassis faults of `ipmi-chassis --get-chassis-status` / `ipmitool chassis status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChassisStatus {
    pub intrusion: Option<bool>,
    pub power_fault: Option<bool>,
    pub power_overload: Option<bool>,
    pub power_interlock: Option<bool>,
    pub cooling_fault: Option<bool>,
    pub drive_fault: Option<bool>,
}

impl ChassisStatus {
    /// `(fault label, set)` for the faults the BMC reported.
    pub fn faults(&self) -> Vec<(&'static str, bool)> {
        [
            ("intrusion", self.intrusion),
            ("power_fault", self.power_fault),
            ("power_overload", self.power_overload),
            ("power_interlock", self.power_interlock),
            ("cooling_fault", self.cooling_fault),
            ("drive_fault", self.drive_fault),
        ]
        .into_iter()
        .filter_map(|(n, v)| v.map(|v| (n, v)))
        .collect()
    }
}

fn flag(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "active" | "yes" | "on" => Some(true),
        "false" | "inactive" | "no" | "off" => Some(false),
        _ => None,
    }
}

pub fn parse_chassis_status(text: &str) -> Result<ChassisStatus, IpmiError> {
    let mut c = ChassisStatus::default();
    for (k, v) in key_values(text) {
        let slot = match k.as_str() {
            "chassis intrusion" => &mut c.intrusion,
            "power fault" | "main power fault" => &mut c.power_fault,
            "power overload" => &mut c.power_overload,
            "interlock" | "power interlock" => &mut c.power_interlock,
            "cooling/fan fault" => &mut c.cooling_fault,
            "drive fault" => &mut c.drive_fault,
            _ => continue,
        };
        *slot = flag(&v);
    }
    if c.faults().is_empty() {
        return Err(IpmiError::Empty {
            what: "chassis fault line",
        });
    }
    Ok(c)
}

/// Who made the BMC and what it runs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BmcIdentity {
    pub vendor: String,
    pub firmware: String,
    pub ipmi_version: String,
}

/// FreeIPMI `bmc-info` / ipmitool `mc info`.
pub fn parse_bmc_info(text: &str) -> Result<BmcIdentity, IpmiError> {
    let kv = key_values(text);
    let get = |key: &str| kv.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    let vendor = get("manufacturer name")
        .or_else(|| get("manufacturer id"))
        .map(|v| {
            // FreeIPMI: `Super Micro Computer Inc. (10876)`.
            match v.rfind(" (") {
                Some(i) if v.ends_with(')') && i > 0 => v[..i].trim().to_string(),
                _ => v,
            }
        })
        .unwrap_or_default();
    let id = BmcIdentity {
        vendor,
        firmware: get("firmware revision").unwrap_or_default(),
        ipmi_version: get("ipmi version").unwrap_or_default(),
    };
    if id.firmware.is_empty() && id.ipmi_version.is_empty() {
        return Err(IpmiError::Empty {
            what: "firmware revision or IPMI version",
        });
    }
    Ok(id)
}

/// The IPv4 address of the BMC's LAN channel from ipmitool `lan print`;
/// `None` when unset (`0.0.0.0`) or absent.
pub fn parse_lan_ip(text: &str) -> Option<String> {
    let kv = key_values(text);
    let ip = kv.iter().find(|(k, _)| k == "ip address").map(|(_, v)| v.trim())?;
    let ok = ip.split('.').count() == 4 && ip.split('.').all(|p| p.parse::<u8>().is_ok());
    (ok && ip != "0.0.0.0").then(|| ip.to_string())
}

/// A power supply as the FRU data lists it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PsuFru {
    pub name: String,
    pub manufacturer: String,
    pub model: String,
    pub serial: String,
}

/// The power supplies of `ipmitool fru` / FreeIPMI `ipmi-fru`: FRU devices
/// whose name says PSU / Power Supply / PS<n>, with their Product (else Board)
/// manufacturer, name and serial.
pub fn parse_fru_psus(text: &str) -> Vec<PsuFru> {
    let mut out: Vec<PsuFru> = Vec::new();
    let mut current: Option<PsuFru> = None;
    let mut from_board = [false; 3];
    for l in text.lines() {
        let Some((k, v)) = l.split_once(':') else { continue };
        let k = k.trim().to_ascii_lowercase();
        let k = k.strip_prefix("fru ").unwrap_or(&k).to_string();
        let v = v.trim();
        if k == "device description" || k == "inventory device" {
            out.extend(current.take().filter(|p| !p.model.is_empty() || !p.serial.is_empty()));
            let name = v.split(" (ID").next().unwrap_or(v).trim().to_string();
            if looks_like_psu(&name) {
                current = Some(PsuFru {
                    name,
                    ..PsuFru::default()
                });
                from_board = [false; 3];
            }
            continue;
        }
        let Some(p) = current.as_mut() else { continue };
        // Product fields win over board fields.
        let (slot, idx, board) = match k.as_str() {
            "product manufacturer" => (&mut p.manufacturer, 0, false),
            "board mfg" | "board manufacturer" => (&mut p.manufacturer, 0, true),
            "product name" | "product part number" | "product part/model number" => (&mut p.model, 1, false),
            "board product" | "board product name" | "board part number" => (&mut p.model, 1, true),
            "product serial" | "product serial number" => (&mut p.serial, 2, false),
            "board serial" | "board serial number" => (&mut p.serial, 2, true),
            _ => continue,
        };
        if v.is_empty() {
            continue;
        }
        if slot.is_empty() || (from_board[idx] && !board) {
            *slot = v.to_string();
            from_board[idx] = board;
        }
    }
    out.extend(current.filter(|p| !p.model.is_empty() || !p.serial.is_empty()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sel_times_parse_in_both_formats() {
        assert_eq!(
            parse_sel_time("01/01/1970", "00:00:00"),
            None,
            "before 1990 is a BMC clock not set"
        );
        assert_eq!(parse_sel_time("10/19/2020", "14:45:09"), Some(1_603_118_709_000));
        assert_eq!(parse_sel_time("Aug-05-2024", "14:31:52"), Some(1_722_868_312_000));
        assert_eq!(parse_sel_time("Pre-Init", "0000000085"), None);
        assert_eq!(parse_sel_time("PostInit", "N/A"), None);
        assert_eq!(parse_sel_time("13/40/2020", "10:00:00"), None);
    }

    #[test]
    fn ipmitool_sel_names_split_type_and_sensor() {
        assert_eq!(
            split_type_and_name("Power Supply Power Supply 2"),
            ("Power Supply".to_string(), "Power Supply 2".to_string())
        );
        assert_eq!(
            split_type_and_name("Physical Security #0x73"),
            ("Physical Security".to_string(), "#0x73".to_string())
        );
        assert_eq!(split_type_and_name("OEM record dc").1, "");
    }

    #[test]
    fn discrete_event_texts_map_to_states() {
        let s = |t: &str| match discrete_text(t) {
            Discrete::State(s) => Some(s),
            _ => None,
        };
        assert_eq!(s("Failure detected"), Some(SensorState::Critical));
        assert_eq!(
            s("Presence detected, Power Supply AC lost"),
            Some(SensorState::Critical)
        );
        assert_eq!(s("Predictive failure"), Some(SensorState::Warning));
        assert_eq!(s("Redundancy Lost"), Some(SensorState::Critical));
        assert_eq!(s("General Chassis intrusion"), Some(SensorState::Warning));
        assert_eq!(s("Drive Fault"), Some(SensorState::Critical));
        assert_eq!(s("Presence detected"), Some(SensorState::Nominal));
        assert_eq!(s("Fully Redundant"), Some(SensorState::Nominal));
        assert_eq!(s("Device Absent"), None);
        assert_eq!(s("'Entity Absent'"), None);
    }
}
