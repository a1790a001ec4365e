//! The whole state as one blob: `"SKV1"`, postcard of the state, CRC-32C of what precedes it.
//! A snapshot lets the journal drop the entries it covers; restoring it and applying the
//! entries after it gives the state a full replay would.

use crate::store::{State, Store};
use crate::KvError;

const MAGIC: &[u8; 4] = b"SKV1";

impl Store {
    pub fn snapshot(&self) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        // Serializing plain data to a Vec cannot fail.
        out.extend(postcard::to_allocvec(&self.state).unwrap_or_default());
        let crc = crc32c::crc32c(&out);
        out.extend_from_slice(&crc.to_be_bytes());
        out
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
