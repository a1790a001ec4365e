//! Retention runs on its own thread so deleting old segments never stalls a produce or fetch
//! for longer than the partition's write lock is held per segment removed.

use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::Broker;

/// Applies retention to every partition once; returns the number of segments removed.
pub fn run_once(broker: &Broker) -> usize {
    let now = crate::now_ms();
    let mut removed = 0;
    for topic in broker.topics() {
        for p in topic.partitions() {
            match p.apply_retention(now) {
                Ok(n) => {
                    strom_metrics::global()
                        .retention_segments_removed
                        .inc_by(n as u64);
                    removed += n
                }
                // Deleted while retention ran: its files went with it.
                Err(e) if broker.topic(&topic.name).is_none_or(|t| t.id != topic.id) => {
                    tracing::debug!(partition = ?p, "retention stopped, the topic was deleted: {e}")
                }
                Err(e) => tracing::warn!(partition = ?p, "retention failed: {e}"),
            }
        }
    }
    removed
}

/// Runs [`run_once`] every `interval` until the broker is dropped.
pub fn spawn(broker: &Arc<Broker>, interval: Duration) -> std::io::Result<()> {
    let weak: Weak<Broker> = Arc::downgrade(broker);
    std::thread::Builder::new()
        .name("strom-retention".into())
        .spawn(move || loop {
            std::thread::sleep(interval);
            let Some(broker) = weak.upgrade() else { return };
            if broker.is_stopping() {
                return;
            }
            let n = run_once(&broker);
            if n > 0 {
                tracing::info!(segments = n, "retention removed segments");
            }
        })?;
    Ok(())
}
