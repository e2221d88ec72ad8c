//! End-to-end tests: the real `caretaker-collector` and `caretaker-agent`
//! binaries, over TLS on loopback, with real SQLite files.

mod bench;
mod browser;
mod cli;
mod crash;
mod dashboards;
mod databases;
mod detect_flood;
mod detection;
mod disk_health;
mod end_to_end;
mod ingest;
mod inspection_report;
mod packaging;
mod prometheus;
mod spool;
mod story;
mod ticketing;
mod util;
