//! CPU busy share, total and per logical CPU, from a long-lived `sysinfo::System`
//! (usage is a difference between two reads, so the `System` must live across cycles).

use sysinfo::{CpuRefreshKind, RefreshKind};

use super::{CollectError, Collector, Samples};

pub struct Cpu {
    sys: sysinfo::System,
}

impl Cpu {
    pub fn new() -> Self {
        // The first refresh sets the baseline; the first report's usage covers
        // the time since the agent started.
        let sys = sysinfo::System::new_with_specifics(
            RefreshKind::nothing().with_cpu(CpuRefreshKind::nothing().with_cpu_usage()),
        );
        Self { sys }
    }
}

impl Default for Cpu {
    fn default() -> Self {
        Self::new()
    }
}

impl Collector for Cpu {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn collect(&mut self, out: &mut Samples) -> Result<(), CollectError> {
        self.sys.refresh_cpu_usage();
        let cpus = self.sys.cpus();
        out.push("caretaker_cpu_cores", &[], cpus.len() as f64);
        out.push(
            "caretaker_cpu_usage_ratio",
            &[],
            f64::from(self.sys.global_cpu_usage()) / 100.0,
        );
        for (i, cpu) in cpus.iter().enumerate() {
            out.push(
                "caretaker_cpu_core_usage_ratio",
                &[("cpu", &i.to_string())],
                f64::from(cpu.cpu_usage()) / 100.0,
            );
        }
        Ok(())
    }
}
