//! The Caretaker collector: enrollment and ingest over TLS, the SQLite store,
//! the hosts and assets API and `/metrics`. `main.rs` is only the CLI.

pub mod assets;
pub mod auth;
pub mod backup;
pub mod cases;
pub mod clock;
pub mod config;
pub mod contracts;
pub mod detect;
pub mod disks;
pub mod export;
pub mod fleet;
pub mod http;
pub mod identity;
pub mod ingest;
pub mod login_guard;
pub mod metrics;
pub mod pipeline;
pub mod pki;
pub mod predict;
pub mod queue;
pub mod reload;
pub mod replicas;
pub mod report;
pub mod rules;
pub mod serve;
pub mod sessions;
pub mod sinks;
pub mod spares;
pub mod store;
pub mod words;
pub mod writer;
