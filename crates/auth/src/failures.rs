//! Failed logins per address, shared by every listener that authenticates (Kafka SASL, HTTP
//! Basic), so a password guesser is slowed down whichever port it tries.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failed logins per address, so a password guesser is slowed down (the delay before the
/// failure is answered and the connection closed grows with recent failures).
#[derive(Default)]
pub struct LoginFailures {
    recent: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

const FAILURE_WINDOW: Duration = Duration::from_secs(60);
const FAILURE_DELAY_MAX: Duration = Duration::from_secs(1);
/// Addresses remembered at most; beyond it the oldest entries go.
const FAILURE_ADDRESSES_MAX: usize = 10_000;

impl LoginFailures {
    /// Records a failure from `ip` and returns how long to wait before answering it, and how
    /// many failures the address has had within the last minute.
    pub fn record(&self, ip: IpAddr) -> (Duration, u32) {
        let now = Instant::now();
        let mut recent = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if recent.len() >= FAILURE_ADDRESSES_MAX {
            recent.retain(|_, (_, at)| now.duration_since(*at) < FAILURE_WINDOW);
            if recent.len() >= FAILURE_ADDRESSES_MAX {
                recent.clear();
            }
        }
        let entry = recent.entry(ip).or_insert((0, now));
        if now.duration_since(entry.1) > FAILURE_WINDOW {
            *entry = (0, now);
        }
        entry.0 = entry.0.saturating_add(1);
        entry.1 = now;
        // 100 ms (Kafka's connection.failed.authentication.delay.ms), doubling per failure
        // within a minute up to a second: a guesser gets at most one try a second per address.
        let delay = Duration::from_millis(100).saturating_mul(1 << (entry.0 - 1).min(4));
        (delay.min(FAILURE_DELAY_MAX), entry.0)
    }
}
