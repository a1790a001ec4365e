//! The coordination service's state: an MVCC key-value store as etcd v3 defines it (one
//! revision counter, per-key create/mod revision and version, reads at old revisions until
//! compaction), leases that own keys, and the space alarm.
//!
//! It is a deterministic state machine: [`Store::apply`] takes committed [`Command`]s from the
//! journal and nothing else changes it: no clock, no randomness, ordered maps. Every replica
//! that applies the same commands holds the same state (and [`Store::hash`] proves it).
//! Reads ([`Store::range`], [`Store::events`]) never change it.

mod error;
mod mvcc;
mod snapshot;
mod store;
pub mod txn;
mod types;

pub use error::KvError;
pub use store::{LeaseInfo, Limits, Store};
pub use types::*;

/// etcd's largest lease TTL, in seconds.
pub const MAX_LEASE_TTL: i64 = 9_000_000_000;

#[cfg(test)]
mod tests;
