//! Group commit. Flusher threads own every fsync: an append queues its partition (once, however
//! many appends follow before the flush), a thread takes it and fsyncs it once, covering every
//! batch appended before the sync point was taken. Under load, one fsync acknowledges many
//! produce requests; when idle, a lone produce waits for exactly one fsync.
//!
//! Several threads (`FLUSH_THREADS`) flush different partitions at the same time: an fsync mostly
//! waits for the device, and the filesystem merges concurrent fsyncs into one journal commit,
//! so a produce never queues behind other partitions' fsyncs. With a relaxed flush interval a
//! single thread flushes everything queued once per interval.

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::partition::Partition;
use crate::FlushPolicy;

/// fsyncs that may run at once. Beyond a handful the device queue, not the thread count, limits.
pub const FLUSH_THREADS: usize = 4;

pub struct Flusher {
    queue: Mutex<Queue>,
    wake: Condvar,
}

#[derive(Default)]
struct Queue {
    partitions: std::collections::VecDeque<Arc<Partition>>,
    stopping: bool,
}

impl Flusher {
    /// Starts the flusher threads.
    pub fn start(policy: FlushPolicy) -> std::io::Result<(Arc<Flusher>, Vec<JoinHandle<()>>)> {
        let flusher = Arc::new(Flusher {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
        });
        let threads = match policy {
            FlushPolicy::Always => FLUSH_THREADS,
            FlushPolicy::IntervalMs(_) => 1,
        };
        let mut handles = Vec::with_capacity(threads);
        for i in 0..threads {
            let worker = Arc::clone(&flusher);
            let handle = std::thread::Builder::new()
                .name(format!("strom-flush-{i}"))
                .spawn(move || worker.run(policy))?;
            handles.push(handle);
        }
        Ok((flusher, handles))
    }

    pub(crate) fn enqueue(&self, partition: Arc<Partition>) {
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        q.partitions.push_back(partition);
        drop(q);
        self.wake.notify_one();
    }

    /// Makes the threads flush what is queued and exit.
    pub fn stop(&self) {
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .stopping = true;
        self.wake.notify_all();
    }

    fn run(&self, policy: FlushPolicy) {
        loop {
            let (batch, stopping) = {
                let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
                while q.partitions.is_empty() && !q.stopping {
                    q = self.wake.wait(q).unwrap_or_else(|p| p.into_inner());
                }
                let batch: Vec<Arc<Partition>> = match policy {
                    // One partition per wake-up, so idle threads pick up the others in parallel.
                    FlushPolicy::Always => q.partitions.pop_front().into_iter().collect(),
                    FlushPolicy::IntervalMs(_) => q.partitions.drain(..).collect(),
                };
                (batch, q.stopping && q.partitions.is_empty())
            };
            let flushed_any = !batch.is_empty();
            for partition in batch {
                // Cleared before the sync point is taken: an append racing with this flush either
                // lands before the sync point (covered) or re-queues the partition.
                partition
                    .flush_queued
                    .store(false, std::sync::atomic::Ordering::SeqCst);
                partition.flush();
            }
            if stopping && !flushed_any {
                return;
            }
            if let FlushPolicy::IntervalMs(ms) = policy {
                std::thread::sleep(Duration::from_millis(ms));
            }
        }
    }
}
