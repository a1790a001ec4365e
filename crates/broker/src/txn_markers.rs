//! The partition side of a transaction (Kafka's WriteTxnMarkers, as an internal call): the
//! coordinator lets a partition's leader take a producer's transactional batches, and ends
//! the transaction there with a marker. Both run on the node leading the partition; the
//! transaction coordinator reaches other nodes through its node service.

use std::time::Duration;

use strom_storage::markers::Marker;

use crate::{Broker, BrokerError, Partition};

/// How long a marker may take to commit before the coordinator tries again.
const MARKER_TIMEOUT: Duration = Duration::from_secs(10);

impl Broker {
    fn led_partition(
        &self,
        topic: &str,
        partition: i32,
    ) -> Result<std::sync::Arc<Partition>, BrokerError> {
        let p = self
            .topic(topic)
            .and_then(|t| t.partition(partition))
            .ok_or(BrokerError::UnknownTopicOrPartition)?;
        p.ensure_leader()?;
        Ok(p)
    }

    /// The coordinator added `topic`/`partition` to the producer's transaction in `epoch`.
    pub fn allow_transaction(
        &self,
        topic: &str,
        partition: i32,
        producer_id: i64,
        epoch: i16,
    ) -> Result<(), BrokerError> {
        self.led_partition(topic, partition)?
            .allow_transaction(producer_id, epoch)
    }

    /// Writes `marker` to `topic`/`partition` and returns once it is committed (fsynced on a
    /// majority). In `__consumer_offsets` the producer's transactional offsets then become
    /// committed offsets (or are dropped).
    pub async fn write_txn_marker(
        &self,
        topic: &str,
        partition: i32,
        marker: Marker,
    ) -> Result<(), BrokerError> {
        let p = self.led_partition(topic, partition)?;
        let r = p.write_marker(&marker)?;
        tokio::time::timeout(MARKER_TIMEOUT, p.wait_ack(&r, -1))
            .await
            .map_err(|_| BrokerError::Timeout)??;
        if topic == crate::internal::OFFSETS_TOPIC {
            self.groups()
                .on_txn_marker(partition as usize, marker.producer_id, marker.commit);
        }
        Ok(())
    }
}
