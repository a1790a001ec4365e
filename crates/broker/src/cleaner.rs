//! Log compaction for topics whose `cleanup.policy` holds `compact`: a background thread
//! (Kafka's log cleaner) runs [`strom_storage::clean`] passes over their partitions, on a
//! single node and on every replica of a cluster alike. Each replica cleans its own log, only
//! below its last stable offset (itself below the high watermark, which is Raft's commit in a
//! cluster), so what it removes is committed and every replica converges on the same
//! latest-per-key view; a batch keeps its offsets and term, so Raft's entry index is untouched.
//! Runs of emptied batches become one batch that counts the Raft entries it stands for.

use std::sync::{Arc, Weak};
use std::time::Duration;

use std::collections::{HashMap, HashSet};

use strom_storage::clean::{self, CleanParams, CleanStats, PassContext, Throttle};

use crate::partition::fail_on_fatal;
use crate::{Broker, BrokerError, Partition, TopicConfig};

/// The cleaner's broker-wide settings (Kafka's `log.cleaner.*`).
#[derive(Debug, Clone)]
pub struct CleanerConfig {
    /// `log.cleaner.enable`.
    pub enabled: bool,
    /// `log.cleaner.backoff.ms`: the pause when no partition needs cleaning.
    pub backoff_ms: u64,
    /// `log.cleaner.io.max.bytes.per.second`; `None` is unlimited.
    pub io_bytes_per_sec: Option<u64>,
    /// `log.cleaner.dedupe.buffer.size`: the key map's memory budget.
    pub key_map_bytes: usize,
}

impl Default for CleanerConfig {
    fn default() -> Self {
        CleanerConfig {
            enabled: true,
            backoff_ms: 15_000,
            io_bytes_per_sec: None,
            key_map_bytes: 128 << 20,
        }
    }
}

impl Partition {
    /// One cleaning pass, if the partition needs one. Returns what it did.
    pub fn clean(
        &self,
        config: &TopicConfig,
        key_map_bytes: usize,
        throttle: &Throttle,
    ) -> Result<Option<CleanStats>, BrokerError> {
        if !config.compact {
            return Ok(None);
        }
        let params = CleanParams {
            now_ms: crate::now_ms(),
            end_limit: self.last_stable_offset(),
            min_dirty_ratio: config.min_cleanable_dirty_ratio,
            min_compaction_lag_ms: config.min_compaction_lag_ms,
            max_compaction_lag_ms: config.max_compaction_lag_ms,
            delete_retention_ms: config.delete_retention_ms,
            key_map_bytes,
        };
        let point = clean::read_clean_point(self.dir());
        let Some(plan) = self.log_ref().clean_plan(&params, point) else {
            return Ok(None);
        };
        // Aborted transactions by producer, in offset order (the list is by marker offset):
        // a transactional batch looks up its own producer's, not every one.
        let mut aborted: HashMap<i64, Vec<(u64, u64)>> = HashMap::new();
        for t in self.aborted_transactions(0, params.end_limit) {
            aborted
                .entry(t.producer_id)
                .or_default()
                .push((t.first_offset, t.last_offset));
        }
        let is_aborted = |producer_id: i64, offset: u64| {
            aborted.get(&producer_id).is_some_and(|ranges| {
                let after = ranges.partition_point(|(first, _)| *first <= offset);
                after > 0 && offset < ranges[after - 1].1
            })
        };
        let producer_batches: HashSet<u64> = self
            .producers()
            .iter()
            .flat_map(|(_, entry)| entry.batches.iter().map(|b| b.base_offset))
            .collect();
        let context = PassContext {
            is_aborted: &is_aborted,
            producer_batches: &producer_batches,
        };
        let ratio = plan.dirty_ratio;
        let started = std::time::Instant::now();
        let output = plan
            .execute(&context, throttle)
            .inspect_err(fail_on_fatal)?;
        for segment in &output.segments {
            let swapped = self.log_mut().install_cleaned(segment);
            if swapped.inspect_err(fail_on_fatal)? {
                segment.finish().inspect_err(fail_on_fatal)?;
            }
        }
        clean::write_clean_point(self.dir(), output.clean_point).inspect_err(fail_on_fatal)?;
        let elapsed = started.elapsed();
        let m = strom_metrics::global();
        m.cleaner_passes.inc();
        m.cleaner_bytes_read.inc_by(output.stats.bytes_read);
        m.cleaner_bytes_removed.inc_by(
            output
                .stats
                .bytes_before
                .saturating_sub(output.stats.bytes_after),
        );
        m.cleaner_records_removed
            .inc_by(output.stats.records_removed);
        tracing::info!(
            partition = ?self,
            elapsed_ms = elapsed.as_millis() as u64,
            mb_per_sec = format!("{:.1}", output.stats.bytes_read as f64 / 1e6 / elapsed.as_secs_f64().max(1e-6)),
            dirty_ratio = format!("{ratio:.2}"),
            clean_point = output.clean_point.offset,
            segments = output.segments.len(),
            bytes_read = output.stats.bytes_read,
            bytes_before = output.stats.bytes_before,
            bytes_after = output.stats.bytes_after,
            records_removed = output.stats.records_removed,
            "cleaned"
        );
        Ok(Some(output.stats))
    }
}

/// One pass over every partition of a compacted topic; returns whether any was cleaned.
pub fn run_once(broker: &Broker, config: &CleanerConfig, throttle: &Throttle) -> bool {
    let mut cleaned = false;
    for topic in broker.topics() {
        let settings = topic.settings();
        if !settings.config.compact {
            continue;
        }
        for p in topic.partitions() {
            if broker.is_stopping() {
                return cleaned;
            }
            match p.clean(&settings.config, config.key_map_bytes, throttle) {
                Ok(Some(_)) => cleaned = true,
                Ok(None) => {}
                Err(e) if broker.topic(&topic.name).is_none_or(|t| t.id != topic.id) => {
                    tracing::debug!(partition = ?p, "cleaning stopped, the topic was deleted: {e}")
                }
                Err(e) => tracing::warn!(partition = ?p, "cleaning failed: {e}"),
            }
        }
    }
    cleaned
}

/// Cleans until the broker is dropped: passes back to back while there is work, then a
/// pause of `backoff_ms`. Nothing when the cleaner is disabled.
pub fn spawn(broker: &Arc<Broker>, config: CleanerConfig) -> std::io::Result<()> {
    if !config.enabled {
        tracing::warn!("the log cleaner is disabled: compacted topics grow without bound");
        return Ok(());
    }
    let weak: Weak<Broker> = Arc::downgrade(broker);
    std::thread::Builder::new()
        .name("strom-cleaner".into())
        .spawn(move || {
            let throttle = Throttle::new(config.io_bytes_per_sec);
            loop {
                let worked = match weak.upgrade() {
                    Some(broker) if !broker.is_stopping() => run_once(&broker, &config, &throttle),
                    _ => return,
                };
                if !worked {
                    std::thread::sleep(Duration::from_millis(config.backoff_ms));
                }
            }
        })?;
    Ok(())
}
