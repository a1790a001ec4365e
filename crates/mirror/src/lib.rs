//! Cross-cluster mirroring: the `mirror` source connector (MirrorMaker 2's
//! `MirrorSourceConnector` properties) for the connector runtime of `strom-connect`. It reads
//! another Kafka-compatible cluster and writes here, through the runtime's transactions, so
//! records and the source offsets they reach commit together: exactly once across restarts and
//! moves, order per partition kept.
//!
//! - `config`: the properties.
//! - `policy`: remote topic names (default `ALIAS.TOPIC`, or identity) and loop prevention
//!   (MirrorMaker 2's cycle check on names, and a path header naming every cluster a record
//!   has left, so active-active pairs do not loop with the identity policy either).
//! - `task`: the source consumer, the topic sync (topics, partitions, configs), the batches.
//! - `checkpoint`, `groups`: consumer group failover (offset syncs, MirrorMaker 2's
//!   checkpoints, committing translated offsets for idle groups here).

pub mod checkpoint;
pub mod config;
pub mod groups;
pub mod policy;
pub mod task;

use futures::future::BoxFuture;
use strom_connect::{Config, ConfigDef, ConfigIssue, Plugin, SourceTask, TaskContext, TaskError};

pub struct MirrorPlugin;

impl Plugin for MirrorPlugin {
    fn class(&self) -> &'static str {
        "mirror"
    }

    fn aliases(&self) -> &'static [&'static str] {
        &[
            "org.apache.kafka.connect.mirror.MirrorSourceConnector",
            "MirrorSourceConnector",
        ]
    }

    fn version(&self) -> &'static str {
        env!("CARGO_PKG_VERSION")
    }

    fn config_defs(&self) -> Vec<ConfigDef> {
        config::defs()
    }

    fn validate(&self, config: &Config) -> Vec<ConfigIssue> {
        config::parse(config).err().unwrap_or_default()
    }

    fn start(
        &self,
        ctx: TaskContext,
    ) -> BoxFuture<'static, Result<Box<dyn SourceTask>, TaskError>> {
        Box::pin(async move {
            let cfg =
                config::parse(&ctx.config).map_err(|issues| TaskError::invalid_config(&issues))?;
            task::start(ctx, cfg)
                .await
                .map(|t| Box::new(t) as Box<dyn SourceTask>)
        })
    }
}
