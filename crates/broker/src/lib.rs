//! The broker core: topics, partitions and the durability pipeline on top of `strom-storage`.
//!
//! Front ends (Kafka today, etcd later) talk to this crate only; it knows nothing of wire formats
//! and owns every rule about *when* data counts as written:
//! - appends go to the partition's log under its write lock (one writer per partition);
//! - the [`flusher`] makes them durable with group commit (one fdatasync per dirty partition per round);
//! - the high watermark moves only to durable offsets, so consumers never see data that a crash could take back;
//! - an fsync error stops the process ([`fatal::fail_stop`]).

pub mod cleaner;
pub mod cluster;
pub mod config;
pub mod error;
pub mod fatal;
pub mod flusher;
pub mod group;
pub mod internal;
pub mod journal;
pub mod metadata;
pub mod metrics;
pub mod partition;
pub mod producer_ids;
pub mod producer_state;
pub mod replica;
pub mod retention;
pub mod security;
pub mod tiering;
pub mod topic;
pub mod topic_config;
pub mod txn_index;

mod batch_rules;
mod broker;
mod producer_snapshot;
mod txn_markers;

pub use broker::{Broker, PARTITIONS_MAX};
pub use config::{BrokerConfig, FlushPolicy};
pub use error::BrokerError;
pub use partition::{AppendResult, FetchData, Partition, RaftAck};
pub use topic::{Topic, TopicSettings};
pub use topic_config::TopicConfig;

/// Milliseconds since the UNIX epoch, the unit of every Kafka timestamp.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
