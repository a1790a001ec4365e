//! Fail-stop. After a failed fsync the kernel may already have dropped the dirty pages and cleared
//! the error (fsyncgate), so no later fsync can prove the data reached the disk. Retrying would
//! let us acknowledge writes that are gone; the only safe move is to stop and let recovery, which
//! trusts nothing it has not re-read and verified, decide what survived.

use std::fmt::Display;

/// Logs why and aborts the process without running any more I/O.
pub fn fail_stop(what: impl Display) -> ! {
    tracing::error!("fatal storage error, stopping the node: {what}");
    eprintln!("strom: fatal storage error, stopping the node: {what}");
    std::process::abort()
}
