//! Types both sides of Caretaker agree on: the wire format an agent sends
//! ([`wire`]) and the one catalogue of metric names ([`catalogue`]) that the
//! agent fills and the collector exposes, so names cannot drift apart.

pub mod catalogue;
pub mod config;
pub mod disk_health;
pub mod hardware;
pub mod smartctl;
pub mod wire;

/// Milliseconds since the Unix epoch, the one time unit on the wire.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
