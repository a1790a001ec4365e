//! A timer with nanosecond resolution that an async producer can `select!` against its
//! sockets. Tokio's own timers fire on millisecond ticks, which would send fixed-rate records
//! up to 1 ms late; a `timerfd` is an hrtimer in the kernel that wakes the runtime's epoll
//! exactly when it expires (no timer slack applies to it), so the producer both sends on time
//! and sees every response the moment it arrives.

use std::cell::Cell;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// A one-shot `CLOCK_MONOTONIC` timerfd registered with the current runtime.
pub struct PreciseTimer {
    fd: AsyncFd<OwnedFd>,
    /// The instant the timer is armed for and has not been seen to expire: a wait for the same
    /// instant (a producer woken early by a response waits again for the same send time)
    /// need not re-arm it.
    armed: Cell<Option<Instant>>,
}

impl PreciseTimer {
    /// Creates the timer on the current runtime.
    pub fn new() -> io::Result<PreciseTimer> {
        // SAFETY: plain syscall; the result is checked before it is used as a descriptor.
        let raw = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: the `OwnedFd` moves into the `AsyncFd` and stays open, the same descriptor,
        // until the `AsyncFd` is dropped.
        let fd = unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE)? };
        Ok(PreciseTimer {
            fd,
            armed: Cell::new(None),
        })
    }

    /// Waits until `at`. Cancel-safe: a later call for another instant re-arms the timer,
    /// which also discards an expiry that a cancelled wait left behind; one for the same
    /// instant finds that expiry.
    pub async fn sleep_until(&self, at: Instant) -> io::Result<()> {
        loop {
            let now = Instant::now();
            if now >= at {
                return Ok(());
            }
            if self.armed.get() != Some(at) {
                self.arm(at - now)?;
                self.armed.set(Some(at));
            }
            let mut guard = self.fd.readable().await?;
            // Reading the expiry count resets readiness; EAGAIN means the readiness was left
            // over from an expiry that re-arming discarded, so wait again.
            match guard.try_io(|fd| read_expiries(fd.get_ref())) {
                Ok(result) => {
                    result?;
                    self.armed.set(None);
                }
                Err(_would_block) => continue,
            }
        }
    }

    /// Arms the timer to expire once, `after` from now.
    fn arm(&self, after: Duration) -> io::Result<()> {
        // An all-zero value would disarm the timer instead of firing it at once.
        let nanos = after.as_nanos().max(1);
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: libc::time_t::try_from(nanos / 1_000_000_000).unwrap_or(libc::time_t::MAX),
                // Below 10^9, so it fits.
                tv_nsec: (nanos % 1_000_000_000) as libc::c_long,
            },
        };
        // SAFETY: `spec` is a valid itimerspec; the old value is not requested.
        let rc =
            unsafe { libc::timerfd_settime(self.fd.as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}

/// Reads (and so clears) the timer's expiry count.
fn read_expiries(fd: &OwnedFd) -> io::Result<()> {
    let mut count = [0u8; 8];
    // SAFETY: reads at most 8 bytes into an 8-byte buffer.
    let n = unsafe { libc::read(fd.as_raw_fd(), count.as_mut_ptr().cast(), count.len()) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sleeps_precisely() -> anyhow::Result<()> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        runtime.block_on(async {
            let timer = PreciseTimer::new()?;
            for micros in [0u64, 150, 700, 2_300] {
                let at = Instant::now() + Duration::from_micros(micros);
                timer.sleep_until(at).await?;
                let late = Instant::now().saturating_duration_since(at);
                assert!(Instant::now() >= at);
                // Generous: CI machines are noisy. A millisecond tick would be ~1 ms late.
                assert!(late < Duration::from_millis(5), "{late:?} late");
            }
            // A cancelled wait must not end the next one early.
            let short = Instant::now() + Duration::from_micros(100);
            assert!(futures::FutureExt::now_or_never(timer.sleep_until(short)).is_none());
            std::thread::sleep(Duration::from_micros(300));
            let at = Instant::now() + Duration::from_millis(2);
            timer.sleep_until(at).await?;
            assert!(Instant::now() >= at);
            // Nor must one cancelled before its own expiry end the next wait for that instant.
            let at = Instant::now() + Duration::from_millis(1);
            assert!(futures::FutureExt::now_or_never(timer.sleep_until(at)).is_none());
            timer.sleep_until(at).await?;
            assert!(Instant::now() >= at);
            anyhow::Ok(())
        })
    }
}
