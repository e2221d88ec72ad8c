//! Findings (latent risks) and cases (faults): their lifecycle as a pure state
//! machine ([`lifecycle`]) and its persistence ([`store`]), the model
//! of `shared/CASES.md`. The rule language, the HTTP API and the wiring into
//! ingest build on these two and live elsewhere.

pub mod hold;
pub mod lifecycle;
pub mod retired;
pub mod store;

pub use lifecycle::{
    Action, CancelReason, Decision, EventOrigin, HoldReason, IdentityKey, Item, ItemKind, LifecycleError, Policy,
    Severity, Signal, Status,
};
