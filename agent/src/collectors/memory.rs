//! Memory and swap from `sysinfo` (which reads `/proc/meminfo`).

use sysinfo::{MemoryRefreshKind, RefreshKind};

use super::{CollectError, Collector, Samples};

pub struct Memory {
    sys: sysinfo::System,
}

impl Memory {
    pub fn new() -> Self {
        Self {
            sys: sysinfo::System::new_with_specifics(RefreshKind::nothing()),
        }
    }
}

impl Default for Memory {
    fn default() -> Self {
        Self::new()
    }
}

impl Collector for Memory {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn collect(&mut self, out: &mut Samples) -> Result<(), CollectError> {
        self.sys.refresh_memory_specifics(MemoryRefreshKind::everything());
        let total = self.sys.total_memory();
        let available = self.sys.available_memory();
        out.push("caretaker_memory_total_bytes", &[], total as f64);
        out.push("caretaker_memory_available_bytes", &[], available as f64);
        out.push(
            "caretaker_memory_used_bytes",
            &[],
            total.saturating_sub(available) as f64,
        );
        out.push("caretaker_swap_total_bytes", &[], self.sys.total_swap() as f64);
        out.push("caretaker_swap_used_bytes", &[], self.sys.used_swap() as f64);
        Ok(())
    }
}
