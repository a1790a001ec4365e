//! Group commit. One thread owns every fsync: appends queue their partition, the thread drains the
//! queue and fsyncs each queued partition once, covering every batch appended since its last
//! fsync. Under load, one fsync acknowledges many produce requests; when idle, a lone produce
//! waits for exactly one fsync.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use crate::partition::Partition;
use crate::FlushPolicy;

pub struct Flusher {
    queue: Mutex<Queue>,
    wake: Condvar,
}

#[derive(Default)]
struct Queue {
    partitions: Vec<Arc<Partition>>,
    stopping: bool,
}

impl Flusher {
    /// Starts the flusher thread.
    pub fn start(
        policy: FlushPolicy,
    ) -> std::io::Result<(Arc<Flusher>, std::thread::JoinHandle<()>)> {
        let flusher = Arc::new(Flusher {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
        });
        let worker = Arc::clone(&flusher);
        let handle = std::thread::Builder::new()
            .name("strom-flusher".into())
            .spawn(move || worker.run(policy))?;
        Ok((flusher, handle))
    }

    pub(crate) fn enqueue(&self, partition: Arc<Partition>) {
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        q.partitions.push(partition);
        drop(q);
        self.wake.notify_one();
    }

    /// Makes the thread flush what is queued and exit.
    pub fn stop(&self) {
        self.queue
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .stopping = true;
        self.wake.notify_one();
    }

    fn run(&self, policy: FlushPolicy) {
        loop {
            let (batch, stopping) = {
                let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
                while q.partitions.is_empty() && !q.stopping {
                    q = self.wake.wait(q).unwrap_or_else(|p| p.into_inner());
                }
                (std::mem::take(&mut q.partitions), q.stopping)
            };
            for partition in batch {
                // Cleared before the sync point is taken: an append racing with this flush either
                // lands before the sync point (covered) or re-queues the partition.
                partition
                    .flush_queued
                    .store(false, std::sync::atomic::Ordering::SeqCst);
                partition.flush();
            }
            if stopping {
                return;
            }
            if let FlushPolicy::IntervalMs(ms) = policy {
                std::thread::sleep(Duration::from_millis(ms));
            }
        }
    }
}
