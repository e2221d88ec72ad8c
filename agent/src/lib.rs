//! The Caretaker agent: collects host metrics, spools reports on disk and
//! delivers them to the collector over TLS. `main.rs` is only the CLI.

pub mod collectors;
pub mod command;
pub mod config;
pub mod databases;
pub mod inventory;
pub mod ipmi;
pub mod periodic;
pub mod push;
pub mod raid;
pub mod replicas;
pub mod report;
pub mod run;
pub mod smart;
pub mod spool;
pub mod state;
