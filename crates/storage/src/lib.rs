//! Strom's storage engine: a durable, segmented log of Kafka RecordBatch v2
//! batches per partition, with sparse offset/time indexes, crash recovery driven
//! by CRC-32C checks, retention and Raft-style suffix truncation.
//!
//! Partition directory layout:
//!
//! ```text
//! 00000000000000000000.log        batches, see `batch` and `segment`
//! 00000000000000000000.index      sparse offset index, see `index`
//! 00000000000000000000.timeindex  sparse time index, see `index`
//! recovery-checkpoint             see `checkpoint`
//! ```
//!
//! Other files (the broker's `producer-state.snapshot`) are left alone.

pub mod batch;
pub mod clean;
pub mod codec;
pub mod error;
pub mod index;
pub mod log;
pub mod markers;
pub mod records;
pub mod sealed;
pub mod segment;

mod checkpoint;
mod fsutil;
mod lookup;
mod reader;
mod recovery;
mod retention;
mod scan;

#[cfg(test)]
mod tests;

pub use error::{BatchError, StorageError};
pub use log::{AppendInfo, FirstBatch, Log, LogConfig, ReadResult, SyncPoint};
