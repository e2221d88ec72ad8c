//! End-to-end tests: the real `caretaker-collector` and `caretaker-agent`
//! binaries, over TLS on loopback, with real SQLite files.

mod agent_claims;
mod agent_state;
mod api_contract;
mod bench;
mod browser;
mod cli;
mod contracts_reload;
mod crash;
mod dashboards;
mod databases;
mod detect_flood;
mod detection;
mod disk_health;
mod edge;
mod end_to_end;
mod failover;
mod hardware;
mod hostile;
mod ingest;
mod inspection_report;
mod packaging;
mod pages;
mod postgres;
mod prometheus;
mod quickstart;
mod replicas;
mod spool;
mod store_full;
mod store_integrity;
mod story;
mod ticketing;
mod util;
mod webauth;
