//! Temperatures, fan speeds and alarm flags from the kernel's hardware
//! monitoring drivers, `<sys_root>/class/hwmon/hwmon*/`. An overheating CPU
//! or a stopped fan shows here long before it shows as a crash. Voltage
//! (`in*`) and chassis intrusion sensors give only their alarm flags: a
//! supply rail out of range or an opened case is worth a look, while the
//! raw voltages mean little without the board's own scaling. Each chip is
//! labelled by its `name` file; when two chips share a name (two NVMe drives)
//! the device it belongs to is added, so series do not collide. Sensors are
//! labelled by their `*_label` file, else by their file prefix (`temp3`).
//! Virtual machines usually have no hwmon at all: no samples, no failure.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{CollectError, Collector, Roots, Samples, entries, host_label, parse_integer};

pub struct Hwmon {
    dir: PathBuf,
}

impl Hwmon {
    pub fn new(roots: &Roots) -> Self {
        Self {
            dir: roots.sys_root.join("class/hwmon"),
        }
    }
}

/// Alarm attributes (`temp1_crit_alarm`, `fan2_alarm`, `temp3_fault`) → `kind` label value.
const ALARMS: &[(&str, &str)] = &[
    ("alarm", "alarm"),
    ("min_alarm", "min"),
    ("max_alarm", "max"),
    ("lcrit_alarm", "lcrit"),
    ("crit_alarm", "crit"),
    ("emergency_alarm", "emergency"),
    ("fault", "fault"),
];

/// The attributes read; other files (pwm, voltages, power) are not opened.
const ATTRIBUTES: &[&str] = &[
    "input",
    "label",
    "min",
    "max",
    "crit",
    "alarm",
    "min_alarm",
    "max_alarm",
    "lcrit_alarm",
    "crit_alarm",
    "emergency_alarm",
    "fault",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum Kind {
    #[default]
    Temp,
    Fan,
    /// Voltage input: alarms only.
    In,
    /// Chassis intrusion switch: alarms only.
    Intrusion,
}

impl Kind {
    fn prefix(self) -> &'static str {
        match self {
            Kind::Temp => "temp",
            Kind::Fan => "fan",
            Kind::In => "in",
            Kind::Intrusion => "intrusion",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Sensor {
    pub kind: Kind,
    /// `temp3`, `fan2`: the file prefix.
    pub id: String,
    /// The `*_label` text, when the driver gives one.
    pub label: Option<String>,
    /// Celsius for temperatures, RPM for fans.
    pub input: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub crit: Option<f64>,
    /// (`kind` label value, raised).
    pub alarms: Vec<(&'static str, bool)>,
}

/// `temp12_crit_alarm` → (Temp, 12, "crit_alarm").
fn split_attribute(file: &str) -> Option<(Kind, u32, &str)> {
    // `intrusion` before `in`, which is its prefix.
    let (kind, rest) = [Kind::Temp, Kind::Fan, Kind::Intrusion, Kind::In]
        .into_iter()
        .find_map(|k| file.strip_prefix(k.prefix()).map(|r| (k, r)))?;
    let (n, attr) = rest.split_once('_')?;
    let n = n.parse().ok()?;
    let wanted = match kind {
        Kind::Temp | Kind::Fan => ATTRIBUTES.contains(&attr),
        // Their readings are not reported, so only the flags (and the
        // name for the flags' label) are opened.
        Kind::In | Kind::Intrusion => attr == "label" || ALARMS.iter().any(|(a, _)| *a == attr),
    };
    wanted.then_some((kind, n, attr))
}

/// True for the files [`parse_sensors`] uses, so the collector opens no others.
pub fn is_wanted(file: &str) -> bool {
    split_attribute(file).is_some()
}

/// Builds the sensors of one chip from its attribute files (name, content).
/// Returns the sensors that could be read and, separately, each file whose
/// content is not what the hwmon ABI says, with the reason.
pub fn parse_sensors(files: &[(String, String)]) -> (Vec<Sensor>, Vec<(String, String)>) {
    let mut by_id: BTreeMap<(Kind, u32), Sensor> = BTreeMap::new();
    let mut bad = Vec::new();
    for (file, text) in files {
        let Some((kind, n, attr)) = split_attribute(file) else {
            continue;
        };
        let s = by_id.entry((kind, n)).or_insert_with(|| Sensor {
            kind,
            id: format!("{}{n}", kind.prefix()),
            ..Sensor::default()
        });
        if attr == "label" {
            let l = host_label(text);
            s.label = (!l.is_empty()).then_some(l);
            continue;
        }
        let value = match parse_integer::<i64>(text) {
            Ok(v) => v,
            Err(reason) => {
                bad.push((file.clone(), reason));
                continue;
            }
        };
        if let Some((_, k)) = ALARMS.iter().find(|(a, _)| *a == attr) {
            s.alarms.push((k, value != 0));
            continue;
        }
        // Temperatures are in millidegrees Celsius, fan speeds in RPM.
        let v = if kind == Kind::Temp {
            value as f64 / 1000.0
        } else {
            value as f64
        };
        match attr {
            "input" => s.input = Some(v),
            "min" => s.min = Some(v),
            "max" => s.max = Some(v),
            "crit" => s.crit = Some(v),
            _ => {}
        }
    }
    let mut sensors: Vec<Sensor> = by_id.into_values().collect();
    for s in &mut sensors {
        s.alarms.sort_by_key(|(k, _)| ALARMS.iter().position(|(_, a)| a == k));
    }
    (sensors, bad)
}

/// The `sensor` label of each sensor: its label, or its id when it has none or
/// when another sensor of the chip has the same label.
pub fn sensor_names(sensors: &[Sensor]) -> Vec<String> {
    sensors
        .iter()
        .map(|s| match &s.label {
            Some(l) if sensors.iter().filter(|o| o.label.as_ref() == Some(l)).count() == 1 => l.clone(),
            Some(l) => format!("{l} ({})", s.id),
            None => s.id.clone(),
        })
        .collect()
}

/// True for read errors a sensor gives when it has nothing to say right now
/// (disconnected input, drive asleep): the sensor is skipped, not a failure.
fn is_transient(e: &std::io::Error) -> bool {
    use rustix::io::Errno;
    e.kind() == std::io::ErrorKind::NotFound
        || Errno::from_io_error(e).is_some_and(|n| [Errno::NODATA, Errno::IO, Errno::AGAIN, Errno::NXIO].contains(&n))
}

struct Chip {
    name: String,
    /// The device the chip belongs to (`nvme0`, `coretemp.0`), else the hwmon directory name.
    device: String,
    sensors: Vec<Sensor>,
}

impl Hwmon {
    fn read_chip(entry: &str, dir: &Path, first: &mut Option<CollectError>) -> Option<Chip> {
        // Old drivers keep their attributes in the device directory.
        let attrs = if dir.join("name").exists() {
            dir.to_path_buf()
        } else {
            dir.join("device")
        };
        let name = match std::fs::read_to_string(attrs.join("name")) {
            Ok(n) => host_label(&n),
            Err(source) => {
                first.get_or_insert(CollectError::Read {
                    path: attrs.join("name"),
                    source,
                });
                return None;
            }
        };
        let device = std::fs::read_link(dir.join("device"))
            .ok()
            .and_then(|t| t.file_name().map(|f| host_label(&f.to_string_lossy())))
            .unwrap_or_else(|| entry.to_string());
        let mut files = Vec::new();
        let listing = match entries(&attrs, "") {
            Ok(l) => l.unwrap_or_default(),
            Err(e) => {
                first.get_or_insert(e);
                return None;
            }
        };
        for (file, path) in listing {
            if !is_wanted(&file) {
                continue;
            }
            match std::fs::read_to_string(&path) {
                Ok(text) => files.push((file, text)),
                Err(e) if is_transient(&e) => {
                    tracing::debug!(path = %path.display(), error = %e, "sensor has no reading");
                }
                Err(source) => {
                    first.get_or_insert(CollectError::Read { path, source });
                }
            }
        }
        let (sensors, bad) = parse_sensors(&files);
        if let Some((file, reason)) = bad.into_iter().next() {
            first.get_or_insert(CollectError::Parse {
                path: attrs.join(file),
                reason,
            });
        }
        Some(Chip { name, device, sensors })
    }
}

impl Collector for Hwmon {
    fn name(&self) -> &'static str {
        "hwmon"
    }

    fn collect(&mut self, out: &mut Samples) -> Result<(), CollectError> {
        let Some(dirs) = entries(&self.dir, "hwmon")? else {
            return Ok(());
        };
        let mut first = None;
        let chips: Vec<Chip> = dirs
            .iter()
            .filter_map(|(entry, dir)| Self::read_chip(entry, dir, &mut first))
            .collect();
        for chip in &chips {
            let shared = chips.iter().filter(|c| c.name == chip.name).count() > 1;
            let label = if shared {
                host_label(&format!("{}:{}", chip.name, chip.device))
            } else {
                chip.name.clone()
            };
            for (s, sensor) in chip.sensors.iter().zip(sensor_names(&chip.sensors)) {
                let l = [("chip", label.as_str()), ("sensor", sensor.as_str())];
                if s.kind == Kind::Temp {
                    let metrics = [
                        ("caretaker_hwmon_temperature_celsius", s.input),
                        ("caretaker_hwmon_temperature_max_celsius", s.max),
                        ("caretaker_hwmon_temperature_crit_celsius", s.crit),
                    ];
                    for (metric, v) in metrics {
                        if let Some(v) = v {
                            out.push(metric, &l, v);
                        }
                    }
                } else if s.kind == Kind::Fan {
                    let metrics = [
                        ("caretaker_hwmon_fan_rpm", s.input),
                        ("caretaker_hwmon_fan_min_rpm", s.min),
                    ];
                    for (metric, v) in metrics {
                        if let Some(v) = v {
                            out.push(metric, &l, v);
                        }
                    }
                }
                for (kind, raised) in &s.alarms {
                    out.push(
                        "caretaker_hwmon_alarm",
                        &[("chip", label.as_str()), ("sensor", sensor.as_str()), ("kind", kind)],
                        if *raised { 1.0 } else { 0.0 },
                    );
                }
            }
        }
        first.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use caretaker_shared::wire::Sample;

    fn collect(sys_root: &Path) -> (Result<(), CollectError>, Vec<Sample>) {
        let mut c = Hwmon::new(&Roots {
            sys_root: sys_root.to_path_buf(),
            ..Roots::default()
        });
        let mut out = Samples::default();
        let r = c.collect(&mut out);
        (r, out.0)
    }

    use crate::collectors::sample_rows as rows;

    fn files(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter().map(|(f, t)| (f.to_string(), t.to_string())).collect()
    }

    #[test]
    fn parses_temperatures_fans_and_alarms() {
        let (sensors, bad) = parse_sensors(&files(&[
            ("fan2_input", "0\n"),
            ("fan2_alarm", "1\n"),
            ("fan2_min", "300\n"),
            ("temp1_label", "Package id 0\n"),
            ("temp1_input", "98000\n"),
            ("temp1_crit_alarm", "0\n"),
            ("temp1_alarm", "1\n"),
            ("temp2_input", "-5500\n"),
            ("pwm1", "153\n"),
        ]));
        assert!(bad.is_empty(), "{bad:?}");
        assert_eq!(
            sensors,
            [
                Sensor {
                    id: "temp1".into(),
                    label: Some("Package id 0".into()),
                    input: Some(98.0),
                    alarms: vec![("alarm", true), ("crit", false)],
                    ..Sensor::default()
                },
                Sensor {
                    id: "temp2".into(),
                    input: Some(-5.5),
                    ..Sensor::default()
                },
                Sensor {
                    kind: Kind::Fan,
                    id: "fan2".into(),
                    input: Some(0.0),
                    min: Some(300.0),
                    alarms: vec![("alarm", true)],
                    ..Sensor::default()
                },
            ]
        );
    }

    #[test]
    fn bad_values_are_named_and_the_rest_kept() {
        let (sensors, bad) = parse_sensors(&files(&[("temp1_input", "hot\n"), ("temp2_input", "40000\n")]));
        assert_eq!(
            bad,
            [(
                "temp1_input".to_string(),
                "\"hot\" is not an integer: invalid digit found in string".to_string()
            )]
        );
        assert_eq!(sensors.iter().map(|s| s.input).collect::<Vec<_>>(), [None, Some(40.0)]);
    }

    // node_exporter's captured nct6779 raises `in1_alarm` and both
    // `intrusion*_alarm` flags; only temperature and fan files were read.
    #[test]
    fn voltage_and_intrusion_alarms_are_reported() {
        let (sensors, bad) = parse_sensors(&files(&[
            ("in1_alarm", "1\n"),
            ("in1_input", "1024\n"),
            ("in1_beep", "0\n"),
            ("intrusion0_alarm", "1\n"),
            ("intrusion0_beep", "0\n"),
        ]));
        assert!(bad.is_empty(), "{bad:?}");
        assert_eq!(
            sensors,
            [
                Sensor {
                    kind: Kind::In,
                    id: "in1".into(),
                    alarms: vec![("alarm", true)],
                    ..Sensor::default()
                },
                Sensor {
                    kind: Kind::Intrusion,
                    id: "intrusion0".into(),
                    alarms: vec![("alarm", true)],
                    ..Sensor::default()
                },
            ]
        );
        assert!(!is_wanted("in1_input"), "voltages are not opened");
    }

    #[test]
    fn duplicate_sensor_labels_get_their_id() {
        let (sensors, _) = parse_sensors(&files(&[
            ("temp1_label", "Core 0"),
            ("temp2_label", "Core 0"),
            ("temp3_input", "1"),
        ]));
        assert_eq!(sensor_names(&sensors), ["Core 0 (temp1)", "Core 0 (temp2)", "temp3"]);
    }

    // The fixture is hand-written, after a desktop board: coretemp with one
    // core over its critical point, an nct6775 super-I/O with a stopped fan,
    // two NVMe drives and an ACPI thermal zone. No capture shows a raised
    // temperature alarm or two same-named NVMe chips; `tests/real_trees.rs`
    // runs the captured node_exporter tree.
    #[test]
    fn collects_a_captured_tree() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hwmon/sys");
        let (r, s) = collect(&root);
        assert!(r.is_ok(), "{r:?}");
        let rows = rows(&s);
        for want in [
            "caretaker_hwmon_temperature_celsius{chip=coretemp,sensor=Package id 0} 98",
            "caretaker_hwmon_temperature_max_celsius{chip=coretemp,sensor=Core 1} 84",
            "caretaker_hwmon_temperature_crit_celsius{chip=coretemp,sensor=Core 1} 100",
            "caretaker_hwmon_alarm{chip=coretemp,kind=crit,sensor=Core 1} 1",
            "caretaker_hwmon_alarm{chip=coretemp,kind=crit,sensor=Core 0} 0",
            "caretaker_hwmon_fan_rpm{chip=nct6775,sensor=fan1} 1231",
            "caretaker_hwmon_fan_rpm{chip=nct6775,sensor=fan2} 0",
            "caretaker_hwmon_fan_min_rpm{chip=nct6775,sensor=fan2} 300",
            "caretaker_hwmon_alarm{chip=nct6775,kind=alarm,sensor=fan2} 1",
            "caretaker_hwmon_temperature_celsius{chip=nct6775,sensor=CPUTIN} -62",
            "caretaker_hwmon_temperature_celsius{chip=nvme:nvme0,sensor=Composite} 42.85",
            "caretaker_hwmon_temperature_celsius{chip=nvme:nvme1,sensor=Composite} 43.85",
            "caretaker_hwmon_temperature_celsius{chip=nvme:nvme1,sensor=Sensor 1} 39.85",
            "caretaker_hwmon_temperature_celsius{chip=acpitz,sensor=temp1} 27.8",
            "caretaker_hwmon_temperature_crit_celsius{chip=acpitz,sensor=temp1} 119",
        ] {
            assert!(rows.iter().any(|r| r == want), "missing {want} in {rows:#?}");
        }
        assert!(!rows.iter().any(|r| r.contains("pwm") || r.contains("in0")));
        assert_eq!(rows.len(), 35);
    }

    #[test]
    fn no_hwmon_is_no_samples() {
        let (r, s) = collect(Path::new("/nonexistent/sys"));
        assert!(r.is_ok() && s.is_empty(), "{r:?}");
    }

    #[test]
    fn this_host_does_not_fail() {
        let (r, _) = collect(Path::new("/sys"));
        assert!(r.is_ok(), "{r:?}");
    }
}
