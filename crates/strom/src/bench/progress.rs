//! A benchmark run's progress while it runs (see [`crate::progress`]): elapsed seconds of
//! warm-up plus measurement, and the acknowledgements so far, which every producer's
//! [`super::plan::Stats::ack`] counts in [`ACKED`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::progress::Meter;

/// Acknowledgements received by this process's benchmark producers so far.
pub static ACKED: AtomicU64 = AtomicU64::new(0);

/// Shows progress until dropped.
pub struct Progress {
    task: tokio::task::JoinHandle<()>,
}

impl Progress {
    pub fn start(warmup: Duration, duration: Duration) -> Progress {
        let started = Instant::now();
        let total = warmup + duration;
        let task = tokio::spawn(async move {
            let mut meter = Meter::new("progress", total.as_secs(), "s");
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            let mut last = (Instant::now(), ACKED.load(Ordering::Relaxed));
            loop {
                tick.tick().await;
                let now = Instant::now();
                let acked = ACKED.load(Ordering::Relaxed);
                let rate =
                    (acked - last.1) as f64 / now.duration_since(last.0).as_secs_f64().max(1e-3);
                last = (now, acked);
                let elapsed = now.duration_since(started);
                let phase = if elapsed < warmup {
                    "warm-up"
                } else {
                    "measuring"
                };
                meter.update(elapsed.as_secs().min(total.as_secs()), || {
                    format!(
                        "{:.0} s of {} s, {phase}: {acked} records acknowledged, {rate:.0}/s",
                        elapsed.as_secs_f64(),
                        total.as_secs()
                    )
                });
            }
        });
        Progress { task }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        // The meter, owned by the task, clears its bar as the task is dropped.
        self.task.abort();
    }
}
