//! Keeps a reconnect loop (ours or a misconfigured peer's) from flooding the log: the first
//! failure of a kind is logged, then at most one line per period, with the count of the lines
//! left out.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::shared::lock;
use crate::NodeId;

/// What a log line is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(super) enum LogKey {
    /// Outbound connection attempts to a peer.
    Outbound(NodeId),
    /// Inbound connections from one address (its port changes with every attempt) and the node
    /// id it announced, if it got that far.
    Inbound(IpAddr, Option<NodeId>),
    /// A peer's full send queue.
    QueueFull(NodeId),
    /// Errors of the listener itself.
    Accept,
}

struct Entry {
    last: Instant,
    suppressed: u64,
}

pub(super) struct LogLimiter {
    period: Duration,
    entries: Mutex<HashMap<LogKey, Entry>>,
}

/// Inbound keys come from arbitrary addresses; past this many, forget the old ones.
const MAX_ENTRIES: usize = 4096;

impl LogLimiter {
    pub fn new(period: Duration) -> LogLimiter {
        LogLimiter {
            period,
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// `Some(number of lines left out since the last one)` if a line about `key` may be logged now.
    pub fn allow(&self, key: LogKey) -> Option<u64> {
        self.allow_at(key, Instant::now())
    }

    pub fn allow_at(&self, key: LogKey, now: Instant) -> Option<u64> {
        let mut entries = lock(&self.entries);
        if let Some(entry) = entries.get_mut(&key) {
            if now.saturating_duration_since(entry.last) < self.period {
                entry.suppressed += 1;
                return None;
            }
            let suppressed = entry.suppressed;
            *entry = Entry {
                last: now,
                suppressed: 0,
            };
            return Some(suppressed);
        }
        if entries.len() >= MAX_ENTRIES {
            let period = self.period;
            entries.retain(|_, e| now.saturating_duration_since(e.last) < period);
            if entries.len() >= MAX_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(
            key,
            Entry {
                last: now,
                suppressed: 0,
            },
        );
        Some(0)
    }

    /// After a success, the next failure is news again and is logged at once.
    pub fn reset(&self, key: LogKey) {
        lock(&self.entries).remove(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_first_then_once_per_period_with_suppressed_count() {
        let limiter = LogLimiter::new(Duration::from_secs(30));
        let t0 = Instant::now();
        let key = LogKey::Outbound(2);
        assert_eq!(limiter.allow_at(key, t0), Some(0));
        assert_eq!(limiter.allow_at(key, t0 + Duration::from_secs(1)), None);
        assert_eq!(limiter.allow_at(key, t0 + Duration::from_secs(29)), None);
        // Another peer is not held back by the first.
        assert_eq!(limiter.allow_at(LogKey::Outbound(3), t0), Some(0));
        assert_eq!(limiter.allow_at(key, t0 + Duration::from_secs(30)), Some(2));
        assert_eq!(limiter.allow_at(key, t0 + Duration::from_secs(31)), None);
        limiter.reset(key);
        assert_eq!(limiter.allow_at(key, t0 + Duration::from_secs(32)), Some(0));
    }
}
