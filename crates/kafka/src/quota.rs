//! Client quotas as Kafka enforces them: produce and fetch byte rates and a request-time share,
//! per user and/or client id ([`strom_auth::SecurityState::quota`] finds the entity). Rates are
//! measured over eleven one-second windows (Kafka's `quota.window.num` and
//! `quota.window.size.seconds`); a client over its quota gets its response at once with
//! `throttle_time_ms` set, and its connection is muted that long (KIP-219), so a well-behaved
//! client backs off and a misbehaving one is held back anyway.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use strom_auth::state::{CONSUMER_BYTE_RATE, PRODUCER_BYTE_RATE, REQUEST_PERCENTAGE};

const WINDOWS: usize = 11;
/// A throttle never exceeds the measured span.
const MAX_THROTTLE_MS: f64 = (WINDOWS as f64) * 1000.0;
/// Entities tracked at most; idle ones are dropped beyond it.
const SENSORS_MAX: usize = 10_000;
const IDLE: Duration = Duration::from_secs(60);

/// What a quota limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// Produce request bytes per second.
    Produce,
    /// Fetch response bytes per second.
    Fetch,
    /// Microseconds spent handling requests per second, as a percentage of one thread.
    RequestTime,
}

impl Kind {
    fn key(self) -> &'static str {
        match self {
            Kind::Produce => PRODUCER_BYTE_RATE,
            Kind::Fetch => CONSUMER_BYTE_RATE,
            Kind::RequestTime => REQUEST_PERCENTAGE,
        }
    }

    /// The quota in the unit `record` counts (bytes/s, or µs/s for a percentage).
    fn limit(self, value: f64) -> f64 {
        match self {
            Kind::RequestTime => value * 10_000.0,
            _ => value,
        }
    }
}

struct Sensor {
    /// Amount per one-second window; `epoch` is the window of `windows[0]`.
    windows: [f64; WINDOWS],
    epoch: u64,
    created: Instant,
    last: Instant,
}

impl Sensor {
    fn new(now: Instant) -> Sensor {
        Sensor {
            windows: [0.0; WINDOWS],
            epoch: 0,
            created: now,
            last: now,
        }
    }

    /// Adds `amount` now and returns the rate per second over the windows kept and the span in
    /// seconds it was measured over.
    fn record(&mut self, now: Instant, amount: f64) -> (f64, f64) {
        let second = now.duration_since(self.created).as_secs();
        // Slide: windows older than the last WINDOWS seconds are zeroed.
        while self.epoch + (WINDOWS as u64) <= second {
            self.windows.rotate_left(1);
            self.windows[WINDOWS - 1] = 0.0;
            self.epoch += 1;
        }
        let slot = (second - self.epoch) as usize;
        self.windows[slot] += amount;
        self.last = now;
        // Kafka's span: the windows behind plus the current one so far, but never less than
        // all windows but one, so a new client is not judged on its first burst alone.
        let span = (now.duration_since(self.created).as_secs_f64() - self.epoch as f64)
            .clamp((WINDOWS - 1) as f64, WINDOWS as f64);
        (self.windows.iter().sum::<f64>() / span, span)
    }
}

#[derive(Default)]
pub struct Quotas {
    sensors: Mutex<HashMap<(String, String, Kind), Sensor>>,
}

impl Quotas {
    /// Records `amount` for the connection's principal and client id and returns how long to
    /// throttle it (zero when no quota applies or it is within it).
    pub fn record(
        &self,
        security: &strom_broker::security::Security,
        principal: &str,
        client_id: &str,
        kind: Kind,
        amount: f64,
    ) -> Duration {
        let user = principal.strip_prefix("User:").unwrap_or(principal);
        let Some(quota) = security.read(|s| {
            if s.quotas.is_empty() {
                None
            } else {
                s.quota(Some(user), client_id, kind.key())
            }
        }) else {
            return Duration::ZERO;
        };
        let limit = kind.limit(quota);
        let now = Instant::now();
        let mut sensors = self.sensors.lock().unwrap_or_else(|p| p.into_inner());
        if sensors.len() >= SENSORS_MAX {
            sensors.retain(|_, s| now.duration_since(s.last) < IDLE);
        }
        let (rate, span) = sensors
            .entry((user.to_string(), client_id.to_string(), kind))
            .or_insert_with(|| Sensor::new(now))
            .record(now, amount);
        if rate <= limit || limit <= 0.0 {
            return Duration::ZERO;
        }
        // Kafka's rule: the time the client must wait for its rate to fall back to the quota.
        let ms = ((rate - limit) / limit * span * 1000.0).min(MAX_THROTTLE_MS);
        Duration::from_millis(ms as u64)
    }
}

/// When a throttled connection may be read again.
#[derive(Default)]
pub struct Mute(Mutex<Option<Instant>>);

impl Mute {
    /// Mutes the connection for `throttle` from now (extending a mute already running).
    pub fn extend(&self, throttle: Duration) {
        if throttle.is_zero() {
            return;
        }
        let until = Instant::now() + throttle;
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if m.is_none_or(|u| u < until) {
            *m = Some(until);
        }
    }

    /// Waits out the mute, if any.
    pub async fn wait(&self) {
        let until = self.0.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(until) = until {
            tokio::time::sleep_until(until.into()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensor_rate_slides() {
        let start = Instant::now();
        let mut s = Sensor::new(start);
        assert_eq!(
            s.record(start, 1000.0),
            (100.0, 10.0),
            "ten seconds at least"
        );
        let later = start + Duration::from_millis(10_500);
        let (r, span) = s.record(later, 1000.0);
        assert!(
            (r - 2000.0 / 10.5).abs() < 1.0 && span == 10.5,
            "{r} over {span}"
        );
        // Thirty seconds on, the old windows are gone.
        let much_later = start + Duration::from_secs(30);
        let (r, _) = s.record(much_later, 11.0);
        assert!(r < 2.0, "{r}");
    }
}
