//! Tiered storage: a partition's sealed segments copied to an object store (a local directory or
//! an S3-compatible service, through `object_store`) so the local disk holds only the recent part
//! of the log, and reads below the local log start served back from the store.
//!
//! This crate knows the store, the objects' layout, the manifest and how to read batches back;
//! it does not know when to upload or what a partition is (the broker's `tiering` decides both).
//!
//! - `store` — the `--tier-url` store, every call under a timeout.
//! - `manifest` — the remote segments of a partition; deterministic changes, replicated by
//!   whoever owns the partition (a file on a single node, the controller's log in a cluster).
//! - `upload` — a sealed segment (or its tail from a batch) up to the store, with its index.
//! - `index` — the sparse offset/time index uploaded beside each segment.
//! - `cache`, `read` — ranged GETs in aligned chunks through a bounded on-disk cache, with the
//!   next chunks fetched ahead for sequential readers; Fetch and ListOffsets by time.

pub mod cache;
pub mod error;
pub mod index;
pub mod manifest;
pub mod read;
pub mod store;
pub mod upload;

pub use error::TierError;
pub use manifest::{Manifest, ManifestChange, RemoteSegment};
pub use read::Tier;
pub use store::RemoteStore;
pub use upload::upload_segment;

#[cfg(test)]
mod tests;
