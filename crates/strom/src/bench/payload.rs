//! Record payloads for the benchmark: random filler, the latency stamp written at the start
//! of end-to-end payloads, and a clock that maps `Instant`s to wall-clock microseconds.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Bytes at the start of an end-to-end payload: intended send time (u64 µs since the UNIX
/// epoch), run id (u32), producer id (u32), sequence number (u64); all big-endian.
pub const STAMP_LEN: usize = 24;

/// The identity and intended send time carried by an end-to-end payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    /// Intended send time, µs since the UNIX epoch.
    pub intended_us: u64,
    /// Random id of the benchmark run; records of other runs are ignored.
    pub run: u32,
    /// Index of the producer that sent the record.
    pub producer: u32,
    /// Per-producer sequence number, starting at 0.
    pub seq: u64,
}

impl Stamp {
    /// Writes the stamp over the first [`STAMP_LEN`] bytes of `buf` (which must be that long).
    pub fn write(&self, buf: &mut [u8]) {
        buf[0..8].copy_from_slice(&self.intended_us.to_be_bytes());
        buf[8..12].copy_from_slice(&self.run.to_be_bytes());
        buf[12..16].copy_from_slice(&self.producer.to_be_bytes());
        buf[16..24].copy_from_slice(&self.seq.to_be_bytes());
    }

    /// Reads a stamp from the start of a payload; `None` if it is too short.
    pub fn read(payload: &[u8]) -> Option<Stamp> {
        let field = |range: std::ops::Range<usize>| payload.get(range);
        Some(Stamp {
            intended_us: u64::from_be_bytes(field(0..8)?.try_into().ok()?),
            run: u32::from_be_bytes(field(8..12)?.try_into().ok()?),
            producer: u32::from_be_bytes(field(12..16)?.try_into().ok()?),
            seq: u64::from_be_bytes(field(16..24)?.try_into().ok()?),
        })
    }
}

/// Maps monotonic instants to µs since the UNIX epoch through one anchor taken at start.
///
/// Producer and consumer live in the same process and share this anchor, so latencies are
/// differences of one monotonic clock and immune to wall-clock steps during the run.
#[derive(Clone, Copy, Debug)]
pub struct Clock {
    origin: Instant,
    origin_us: u64,
}

impl Clock {
    /// Anchors the clock now.
    pub fn start() -> Clock {
        let origin = Instant::now();
        let origin_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| micros(d.as_micros()));
        Clock { origin, origin_us }
    }

    /// The instant the clock was anchored.
    pub fn origin(&self) -> Instant {
        self.origin
    }

    /// `at` in µs since the UNIX epoch.
    pub fn epoch_us(&self, at: Instant) -> u64 {
        self.origin_us + micros(at.saturating_duration_since(self.origin).as_micros())
    }

    /// Now, in µs since the UNIX epoch.
    pub fn now_us(&self) -> u64 {
        self.epoch_us(Instant::now())
    }
}

fn micros(value: u128) -> u64 {
    u64::try_from(value).unwrap_or(u64::MAX)
}

/// A small xorshift64* generator: payload filler and names only need to be unpredictable
/// enough to defeat compression and collisions, not cryptographically random.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// Seeds from the wall clock and the process id.
    pub fn from_entropy() -> Rng {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let seed = nanos ^ (u64::from(std::process::id()) << 32) ^ 0x9E37_79B9_7F4A_7C15;
        Rng(seed.max(1))
    }

    /// Next pseudo-random value.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// `len` pseudo-random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(len);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_round_trip() {
        let stamp = Stamp {
            intended_us: 1_700_000_000_000_000,
            run: 7,
            producer: 3,
            seq: 42,
        };
        let mut buf = vec![0u8; 100];
        stamp.write(&mut buf);
        assert_eq!(Stamp::read(&buf), Some(stamp));
        assert_eq!(Stamp::read(&buf[..STAMP_LEN - 1]), None);
    }

    #[test]
    fn random_bytes_have_requested_length() {
        let mut rng = Rng::from_entropy();
        assert_eq!(rng.bytes(1023).len(), 1023);
        assert_ne!(rng.bytes(16), rng.bytes(16));
    }

    #[test]
    fn clock_is_monotonic() {
        let clock = Clock::start();
        let later = clock.origin() + std::time::Duration::from_millis(5);
        assert_eq!(
            clock.epoch_us(later) - clock.epoch_us(clock.origin()),
            5_000
        );
    }
}
