//! Per-interface traffic, errors and drops from `<proc_root>/net/dev`
//! (sysinfo does not expose drops, so the file is parsed here).

use std::path::PathBuf;

use super::{CollectError, Collector, Roots, Samples, read_to_string};

pub struct Network {
    path: PathBuf,
}

impl Network {
    pub fn new(roots: &Roots) -> Self {
        Self {
            path: roots.proc_root.join("net/dev"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct InterfaceStats {
    pub name: String,
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_drops: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_drops: u64,
}

/// Parses `/proc/net/dev`: two header lines, then `name: 8 receive fields, 8 transmit fields`.
pub fn parse_net_dev(text: &str) -> Result<Vec<InterfaceStats>, String> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().skip(2) {
        let Some((name, rest)) = line.split_once(':') else {
            return Err(format!("line {}: no ':' after the interface name", i + 1));
        };
        let f: Vec<u64> = rest
            .split_whitespace()
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map_err(|e| format!("line {}: {e}", i + 1))?;
        if f.len() < 16 {
            return Err(format!("line {}: expected 16 counters, found {}", i + 1, f.len()));
        }
        out.push(InterfaceStats {
            name: name.trim().to_string(),
            rx_bytes: f[0],
            rx_packets: f[1],
            rx_errors: f[2],
            rx_drops: f[3],
            tx_bytes: f[8],
            tx_packets: f[9],
            tx_errors: f[10],
            tx_drops: f[11],
        });
    }
    Ok(out)
}

/// Interface names, for the inventory.
pub fn interface_names(proc_root: &std::path::Path) -> Vec<String> {
    read_to_string(&proc_root.join("net/dev"))
        .ok()
        .and_then(|t| parse_net_dev(&t).ok())
        .map(|v| v.into_iter().map(|i| i.name).collect())
        .unwrap_or_default()
}

impl Collector for Network {
    fn name(&self) -> &'static str {
        "network"
    }

    fn collect(&mut self, out: &mut Samples) -> Result<(), CollectError> {
        let text = read_to_string(&self.path)?;
        let stats = parse_net_dev(&text).map_err(|reason| CollectError::Parse {
            path: self.path.clone(),
            reason,
        })?;
        for s in stats {
            let l = [("interface", s.name.as_str())];
            out.push("caretaker_network_receive_bytes", &l, s.rx_bytes as f64);
            out.push("caretaker_network_transmit_bytes", &l, s.tx_bytes as f64);
            out.push("caretaker_network_receive_packets", &l, s.rx_packets as f64);
            out.push("caretaker_network_transmit_packets", &l, s.tx_packets as f64);
            out.push("caretaker_network_receive_errors", &l, s.rx_errors as f64);
            out.push("caretaker_network_transmit_errors", &l, s.tx_errors as f64);
            out.push("caretaker_network_receive_drops", &l, s.rx_drops as f64);
            out.push("caretaker_network_transmit_drops", &l, s.tx_drops as f64);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured from a Debian 12 host.
    const NET_DEV: &str = "Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo:   46212     579    0    0    0     0          0         0    46212     579    0    0    0     0       0          0
  eth0: 1830419766 1261383    3   17    0     0          0        12 95532381  692177    1    2    0     0       0          0
";

    #[test]
    fn parses_counters_per_interface() {
        let v = parse_net_dev(NET_DEV).unwrap_or_default();
        assert_eq!(v.len(), 2);
        assert_eq!(
            v[1],
            InterfaceStats {
                name: "eth0".into(),
                rx_bytes: 1830419766,
                rx_packets: 1261383,
                rx_errors: 3,
                rx_drops: 17,
                tx_bytes: 95532381,
                tx_packets: 692177,
                tx_errors: 1,
                tx_drops: 2,
            }
        );
    }

    #[test]
    fn rejects_truncated_lines_with_line_number() {
        let bad = format!("{}  eth1: 1 2 3\n", NET_DEV);
        assert_eq!(
            parse_net_dev(&bad).err().as_deref(),
            Some("line 5: expected 16 counters, found 3")
        );
    }
}
