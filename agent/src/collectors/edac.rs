//! Memory errors counted by the kernel's EDAC drivers, from
//! `<sys_root>/devices/system/edac/mc/mc*/`: corrected (CE) and uncorrectable
//! (UE) errors per memory controller and per DIMM. A rising CE count is the
//! usual early warning that a DIMM is failing; a UE usually means a crash or
//! corrupted data. Per DIMM, newer kernels have `dimm*/` (or `rank*/`)
//! directories; older ones only `csrow*/ch*_ce_count`, which carries no
//! per-channel UE count, so only corrected errors are reported for those.
//! A csrow without channel files is reported as a whole from its own
//! `ce_count` and `ue_count`.
//! Most virtual machines and many hosts have no EDAC driver: no directory,
//! no samples, no failure.

use std::path::{Path, PathBuf};

use super::{CollectError, Collector, Roots, Samples, entries, host_label, read_integer, read_optional};

pub struct Edac {
    dir: PathBuf,
}

impl Edac {
    pub fn new(roots: &Roots) -> Self {
        Self {
            dir: roots.sys_root.join("devices/system/edac/mc"),
        }
    }
}

/// One DIMM (or csrow channel) of a controller.
#[derive(Debug, Clone, PartialEq)]
pub struct Dimm {
    /// `dimm0`, `rank3`, `csrow0_ch1`, or `csrow0` for a row without channel files.
    pub name: String,
    /// The board's name for the slot (`dimm_label`), empty when unset.
    pub label: String,
    pub correctable: u64,
    /// `None` for csrow channels, which count only corrected errors.
    pub uncorrectable: Option<u64>,
}

/// A label file: its trimmed, bounded text; empty when absent.
fn read_label(path: &Path) -> Result<String, CollectError> {
    Ok(read_optional(path)?.map(|t| host_label(&t)).unwrap_or_default())
}

/// Keeps the first error and lets reading go on: one unreadable file must not
/// hide the other controllers' counts.
fn keep<T>(first: &mut Option<CollectError>, r: Result<T, CollectError>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) => {
            first.get_or_insert(e);
            None
        }
    }
}

/// The DIMMs of one controller, from `dimm*`/`rank*` or, failing those, `csrow*`.
fn dimms(mc: &Path, first: &mut Option<CollectError>) -> Vec<Dimm> {
    let mut out = Vec::new();
    let modern: Vec<(String, PathBuf)> = ["dimm", "rank"]
        .iter()
        .filter_map(|p| keep(first, entries(mc, p)).flatten())
        .flatten()
        .collect();
    for (name, dir) in &modern {
        let ce = keep(first, read_integer(&dir.join("dimm_ce_count")));
        let ue = keep(first, read_integer(&dir.join("dimm_ue_count")));
        let label = keep(first, read_label(&dir.join("dimm_label"))).unwrap_or_default();
        if let (Some(correctable), Some(ue)) = (ce, ue) {
            out.push(Dimm {
                name: name.clone(),
                label,
                correctable,
                uncorrectable: Some(ue),
            });
        }
    }
    if !modern.is_empty() {
        return out;
    }
    for (row, dir) in keep(first, entries(mc, "csrow")).flatten().unwrap_or_default() {
        let channels = keep(first, entries(&dir, "ch")).flatten().unwrap_or_default();
        if !channels.iter().any(|(file, _)| file.ends_with("_ce_count")) {
            // Some drivers give the row's counts only; dropping them would
            // hide its uncorrectable errors, which the controller total
            // alone does not place.
            let ce = keep(first, read_integer(&dir.join("ce_count")));
            let ue = keep(first, read_integer(&dir.join("ue_count")));
            if let (Some(correctable), Some(ue)) = (ce, ue) {
                out.push(Dimm {
                    name: row.clone(),
                    label: String::new(),
                    correctable,
                    uncorrectable: Some(ue),
                });
            }
            continue;
        }
        for (file, path) in channels {
            let Some(ch) = file.strip_suffix("_ce_count") else {
                continue;
            };
            let label = keep(first, read_label(&dir.join(format!("{ch}_dimm_label")))).unwrap_or_default();
            if let Some(correctable) = keep(first, read_integer(&path)) {
                out.push(Dimm {
                    name: format!("{row}_{ch}"),
                    label,
                    correctable,
                    uncorrectable: None,
                });
            }
        }
    }
    out
}

impl Collector for Edac {
    fn name(&self) -> &'static str {
        "edac"
    }

    fn collect(&mut self, out: &mut Samples) -> Result<(), CollectError> {
        let Some(controllers) = entries(&self.dir, "mc")? else {
            return Ok(());
        };
        let mut first = None;
        for (mc, dir) in controllers {
            let c = [("controller", mc.as_str())];
            if let Some(n) = keep(&mut first, read_integer::<u64>(&dir.join("ce_count"))) {
                out.push("caretaker_edac_correctable_errors", &c, n as f64);
            }
            if let Some(n) = keep(&mut first, read_integer::<u64>(&dir.join("ue_count"))) {
                out.push("caretaker_edac_uncorrectable_errors", &c, n as f64);
            }
            for d in dimms(&dir, &mut first) {
                let l = [
                    ("controller", mc.as_str()),
                    ("dimm", d.name.as_str()),
                    ("label", d.label.as_str()),
                ];
                out.push("caretaker_edac_dimm_correctable_errors", &l, d.correctable as f64);
                if let Some(ue) = d.uncorrectable {
                    out.push("caretaker_edac_dimm_uncorrectable_errors", &l, ue as f64);
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
        let mut c = Edac::new(&Roots {
            sys_root: sys_root.to_path_buf(),
            ..Roots::default()
        });
        let mut out = Samples::default();
        let r = c.collect(&mut out);
        (r, out.0)
    }

    use crate::collectors::sample_rows as rows;

    fn fixture() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/edac/sys")
    }

    // The fixture is hand-written, after a Skylake server (skx_edac, `dimm*`
    // directories) with errors on one DIMM, and an older i5000 controller with
    // only `csrow*`; no capture with `dimm*` directories was found under a
    // licence we can carry. `tests/real_trees.rs` covers a captured tree.
    #[test]
    fn counts_per_controller_and_dimm() {
        let (r, s) = collect(&fixture());
        assert!(r.is_ok(), "{r:?}");
        assert_eq!(
            rows(&s),
            [
                "caretaker_edac_correctable_errors{controller=mc0} 3",
                "caretaker_edac_uncorrectable_errors{controller=mc0} 1",
                "caretaker_edac_dimm_correctable_errors{controller=mc0,dimm=dimm0,label=CPU_SrcID#0_MC#0_Chan#0_DIMM#0} 3",
                "caretaker_edac_dimm_uncorrectable_errors{controller=mc0,dimm=dimm0,label=CPU_SrcID#0_MC#0_Chan#0_DIMM#0} 1",
                "caretaker_edac_dimm_correctable_errors{controller=mc0,dimm=dimm1,label=CPU_SrcID#0_MC#0_Chan#1_DIMM#0} 0",
                "caretaker_edac_dimm_uncorrectable_errors{controller=mc0,dimm=dimm1,label=CPU_SrcID#0_MC#0_Chan#1_DIMM#0} 0",
                "caretaker_edac_correctable_errors{controller=mc1} 2",
                "caretaker_edac_uncorrectable_errors{controller=mc1} 0",
                "caretaker_edac_dimm_correctable_errors{controller=mc1,dimm=csrow0_ch0,label=mc#1csrow#0channel#0} 2",
                "caretaker_edac_dimm_correctable_errors{controller=mc1,dimm=csrow0_ch1,label=mc#1csrow#0channel#1} 0",
                "caretaker_edac_dimm_correctable_errors{controller=mc1,dimm=csrow1_ch0,label=} 0",
            ]
        );
    }

    // node_exporter's captured mc0 has `csrow0/ce_count` and `ue_count` but
    // no `ch*_ce_count`: the row's 4 uncorrectable errors were dropped.
    #[test]
    fn csrow_without_channel_counts_is_reported_as_a_row() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/real/node_exporter-sys/sys");
        let (r, s) = collect(&root);
        assert!(r.is_ok(), "{r:?}");
        let rows = rows(&s);
        assert!(
            rows.contains(&"caretaker_edac_dimm_uncorrectable_errors{controller=mc0,dimm=csrow0,label=} 4".to_string()),
            "{rows:#?}"
        );
    }

    #[test]
    fn a_bad_file_is_named_and_the_rest_still_read() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mc = dir.path().join("devices/system/edac/mc");
        for (file, text) in [
            ("mc0/ce_count", "garbage\n"),
            ("mc0/ue_count", "0\n"),
            ("mc1/ce_count", "5\n"),
            ("mc1/ue_count", "0\n"),
        ] {
            let p = mc.join(file);
            let _ = std::fs::create_dir_all(p.parent().unwrap_or(&mc));
            let _ = std::fs::write(&p, text);
        }
        let (r, s) = collect(dir.path());
        let e = r.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            e.contains("mc0/ce_count") && e.contains("\"garbage\" is not an integer"),
            "{e}"
        );
        assert_eq!(
            rows(&s),
            [
                "caretaker_edac_uncorrectable_errors{controller=mc0} 0",
                "caretaker_edac_correctable_errors{controller=mc1} 5",
                "caretaker_edac_uncorrectable_errors{controller=mc1} 0",
            ]
        );
    }

    #[test]
    fn no_edac_is_no_samples() {
        let (r, s) = collect(Path::new("/nonexistent/sys"));
        assert!(r.is_ok() && s.is_empty(), "{r:?}");
    }

    #[test]
    fn this_host_does_not_fail() {
        let (r, _) = collect(Path::new("/sys"));
        assert!(r.is_ok(), "{r:?}");
    }
}
