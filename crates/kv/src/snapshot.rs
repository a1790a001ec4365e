//! The whole state as one blob: `"SKV1"`, postcard of the state, CRC-32C of what precedes it.
//! A snapshot lets the journal drop the entries it covers; restoring it and applying the
//! entries after it gives the state a full replay would.

use std::io::Write;

use crate::store::{State, Store};

/// Passes bytes on and keeps their CRC-32C.
struct CrcWriter<'a> {
    inner: &'a mut dyn Write,
    crc: u32,
}

impl Write for CrcWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc = crc32c::crc32c_append(self.crc, &buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
use crate::KvError;

const MAGIC: &[u8; 4] = b"SKV1";

impl Store {
    pub fn snapshot(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Writing to a Vec cannot fail.
        let _ = self.write_snapshot(&mut out);
        out
    }

    /// The snapshot streamed to `out` (no copy of the whole state in memory).
    pub fn write_snapshot(&self, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        let mut w = CrcWriter { inner: out, crc: 0 };
        w.write_all(MAGIC)?;
        postcard::to_io(&self.state, &mut w).map_err(std::io::Error::other)?;
        let crc = w.crc;
        w.inner.write_all(&crc.to_be_bytes())
    }

    /// Replaces the state with a snapshot's; the limits stay.
    pub fn restore(&mut self, bytes: &[u8]) -> Result<(), KvError> {
        let bad = |why: &str| KvError::Corrupt(format!("snapshot: {why}"));
        if bytes.len() < MAGIC.len() + 4 || &bytes[..4] != MAGIC {
            return Err(bad("not a key-value snapshot"));
        }
        let (body, crc) = bytes.split_at(bytes.len() - 4);
        if crc32c::crc32c(body).to_be_bytes() != crc {
            return Err(bad("checksum mismatch"));
        }
        let state: State = postcard::from_bytes(&body[4..]).map_err(|e| bad(&e.to_string()))?;
        self.state = state;
        Ok(())
    }
}
