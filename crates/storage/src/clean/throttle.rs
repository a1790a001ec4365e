//! The cleaner's I/O budget (Kafka's `log.cleaner.io.max.bytes.per.second`): every byte it
//! reads or writes is paid for, and it sleeps when it runs ahead of the rate, so a cleaning
//! pass never takes the disk away from produce and fetch.

use std::sync::Mutex;
use std::time::{Duration, Instant};

pub struct Throttle {
    bytes_per_sec: Option<u64>,
    /// When the bytes paid so far would have been done at the allowed rate.
    caught_up_at: Mutex<Option<Instant>>,
}

/// The most the throttle lets the cleaner run ahead of its rate.
const BURST: Duration = Duration::from_millis(100);

impl Throttle {
    /// `None`: unlimited.
    pub fn new(bytes_per_sec: Option<u64>) -> Throttle {
        Throttle {
            bytes_per_sec: bytes_per_sec.filter(|r| *r > 0),
            caught_up_at: Mutex::new(None),
        }
    }

    /// Pays for `bytes` of I/O, sleeping as long as the rate asks.
    pub fn pay(&self, bytes: u64) {
        let Some(rate) = self.bytes_per_sec else {
            return;
        };
        let cost = Duration::from_secs_f64(bytes as f64 / rate as f64);
        let now = Instant::now();
        let wait = {
            let mut at = self.caught_up_at.lock().unwrap_or_else(|p| p.into_inner());
            let start = at.filter(|t| *t > now).unwrap_or(now);
            let done = start + cost;
            *at = Some(done);
            done.saturating_duration_since(now)
        };
        if wait > BURST {
            std::thread::sleep(wait - BURST);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_slows_the_payer_down() {
        let throttle = Throttle::new(Some(1_000_000));
        let start = Instant::now();
        for _ in 0..5 {
            throttle.pay(100_000);
        }
        // 500 kB at 1 MB/s is 500 ms, of which the burst allowance is not slept.
        assert!(
            start.elapsed() >= Duration::from_millis(390),
            "{:?}",
            start.elapsed()
        );
        // Unlimited never sleeps (this would take centuries at any rate).
        Throttle::new(None).pay(u64::MAX);
    }
}
