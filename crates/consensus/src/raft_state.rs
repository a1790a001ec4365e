//! The per-group state file `raft-state`: hard state (term, vote, commit), the configuration as
//! of the last applied configuration change, and where the log starts in Raft terms.
//!
//! Written whole to a temporary file, fsynced, renamed over the old one and the directory
//! fsynced, so a crash leaves either the old or the new state. Layout (big-endian):
//! `"SRS1"`, term, vote, commit, applied, conf_index, first_index, prev_term, start_offset (u64
//! each), auto_leave (u8), four id lists (u32 count + u64 ids: voters, learners, outgoing voters,
//! next learners), CRC-32C of everything before it.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use raft::eraftpb::{ConfState, HardState};

use crate::ConsensusError;

pub const FILE_NAME: &str = "raft-state";
const MAGIC: &[u8; 4] = b"SRS1";

/// Where the log starts: the Raft index of the batch at the log start offset and the term of
/// the entry before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogStart {
    pub first_index: u64,
    pub prev_term: u64,
    pub start_offset: u64,
}

impl Default for LogStart {
    fn default() -> Self {
        LogStart {
            first_index: 1,
            prev_term: 0,
            start_offset: 0,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct PersistedState {
    pub hard: HardState,
    pub conf: ConfState,
    /// Highest index known applied when the file was written.
    pub applied: u64,
    /// Index of the configuration change `conf` reflects (0 = the bootstrap configuration).
    /// Configuration entries at or below it are not applied again after a restart.
    pub conf_index: u64,
    pub start: LogStart,
}

impl PersistedState {
    /// A new group member: empty log, the given voters (empty for a replica that joins an
    /// existing group and learns the configuration from the leader).
    pub fn bootstrap(voters: &[u64]) -> PersistedState {
        PersistedState {
            conf: ConfState {
                voters: voters.to_vec(),
                ..ConfState::default()
            },
            ..PersistedState::default()
        }
    }
}

/// etcd's bootstrap: a new group's first entries add its voters one by one (term 1, committed
/// by construction), with the state that says so. Every founding member writes the same
/// entries, so their logs match; a replica added later replays them from the leader and so
/// learns the founding configuration, which the state file alone would not give it.
pub fn bootstrap_entries(voters: &[u64]) -> (Vec<raft::eraftpb::Entry>, PersistedState) {
    use protobuf::Message as _;
    let entries: Vec<raft::eraftpb::Entry> = voters
        .iter()
        .enumerate()
        .map(|(i, &node)| {
            let cc = raft::eraftpb::ConfChange {
                change_type: raft::eraftpb::ConfChangeType::AddNode,
                node_id: node,
                ..Default::default()
            };
            let mut e = raft::eraftpb::Entry {
                term: 1,
                index: i as u64 + 1,
                // Cannot fail: a message of plain fields.
                data: cc.write_to_bytes().unwrap_or_default().into(),
                ..Default::default()
            };
            e.set_entry_type(raft::eraftpb::EntryType::EntryConfChange);
            e
        })
        .collect();
    let last = entries.len() as u64;
    let state = PersistedState {
        hard: HardState {
            term: u64::from(last > 0),
            vote: 0,
            commit: last,
            ..Default::default()
        },
        applied: last,
        conf_index: last,
        ..PersistedState::bootstrap(voters)
    };
    (entries, state)
}

pub fn path(dir: &Path) -> PathBuf {
    dir.join(FILE_NAME)
}

pub fn load(dir: &Path) -> Result<Option<PersistedState>, ConsensusError> {
    let p = path(dir);
    let bytes = match fs::read(&p) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(bad(&p, e.to_string())),
    };
    decode(&bytes).map(Some).map_err(|reason| bad(&p, reason))
}

pub fn store(dir: &Path, state: &PersistedState) -> Result<(), ConsensusError> {
    let p = path(dir);
    let tmp = dir.join(format!("{FILE_NAME}.tmp"));
    let io = |e: std::io::Error| -> ConsensusError {
        ConsensusError::Storage(strom_storage::StorageError::Io {
            path: p.clone(),
            source: e,
        })
    };
    let bytes = encode(state);
    let mut f = File::create(&tmp).map_err(io)?;
    f.write_all(&bytes).map_err(io)?;
    f.sync_all().map_err(|e| fsync_failed(&tmp, e))?;
    fs::rename(&tmp, &p).map_err(io)?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| fsync_failed(dir, e))
}

fn fsync_failed(path: &Path, e: std::io::Error) -> ConsensusError {
    ConsensusError::Storage(strom_storage::StorageError::fsync(path, e))
}

fn bad(p: &Path, reason: String) -> ConsensusError {
    ConsensusError::BadStateFile {
        path: p.display().to_string(),
        reason,
    }
}

pub fn encode(s: &PersistedState) -> Vec<u8> {
    let mut b = Vec::with_capacity(128);
    b.extend_from_slice(MAGIC);
    for v in [
        s.hard.term,
        s.hard.vote,
        s.hard.commit,
        s.applied,
        s.conf_index,
        s.start.first_index,
        s.start.prev_term,
        s.start.start_offset,
    ] {
        b.extend_from_slice(&v.to_be_bytes());
    }
    b.push(u8::from(s.conf.auto_leave));
    for list in [
        &s.conf.voters,
        &s.conf.learners,
        &s.conf.voters_outgoing,
        &s.conf.learners_next,
    ] {
        b.extend_from_slice(&(list.len() as u32).to_be_bytes());
        for id in list {
            b.extend_from_slice(&id.to_be_bytes());
        }
    }
    let crc = crc32c::crc32c(&b);
    b.extend_from_slice(&crc.to_be_bytes());
    b
}

pub fn decode(bytes: &[u8]) -> Result<PersistedState, String> {
    if bytes.len() < 8 || &bytes[..4] != MAGIC {
        return Err("not a raft state file".into());
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    let stored = u32::from_be_bytes([crc[0], crc[1], crc[2], crc[3]]);
    if crc32c::crc32c(body) != stored {
        return Err("checksum mismatch".into());
    }
    let mut r = Reader { b: body, at: 4 };
    let mut s = PersistedState::default();
    s.hard.term = r.u64()?;
    s.hard.vote = r.u64()?;
    s.hard.commit = r.u64()?;
    s.applied = r.u64()?;
    s.conf_index = r.u64()?;
    s.start.first_index = r.u64()?;
    s.start.prev_term = r.u64()?;
    s.start.start_offset = r.u64()?;
    s.conf.auto_leave = r.u8()? != 0;
    s.conf.voters = r.ids()?;
    s.conf.learners = r.ids()?;
    s.conf.voters_outgoing = r.ids()?;
    s.conf.learners_next = r.ids()?;
    if r.at != body.len() {
        return Err("trailing bytes".into());
    }
    if s.start.first_index == 0 {
        return Err("first index 0".into());
    }
    Ok(s)
}

struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        let end = self.at.checked_add(n).filter(|e| *e <= self.b.len());
        let end = end.ok_or_else(|| "truncated".to_string())?;
        let out = &self.b[self.at..end];
        self.at = end;
        Ok(out)
    }
    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> Result<u32, String> {
        let t = self.take(4)?;
        Ok(u32::from_be_bytes([t[0], t[1], t[2], t[3]]))
    }
    fn u64(&mut self) -> Result<u64, String> {
        let t = self.take(8)?;
        let mut raw = [0u8; 8];
        raw.copy_from_slice(t);
        Ok(u64::from_be_bytes(raw))
    }
    fn ids(&mut self) -> Result<Vec<u64>, String> {
        let n = self.u32()? as usize;
        if n > (self.b.len() - self.at) / 8 {
            return Err("id list longer than the file".into());
        }
        (0..n).map(|_| self.u64()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> PersistedState {
        let mut s = PersistedState::bootstrap(&[1, 2, 3]);
        s.hard.term = 7;
        s.hard.vote = 2;
        s.hard.commit = 99;
        s.applied = 98;
        s.conf_index = 40;
        s.conf.learners = vec![4];
        s.start = LogStart {
            first_index: 10,
            prev_term: 3,
            start_offset: 1234,
        };
        s
    }

    #[test]
    fn round_trips_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(load(dir.path()).unwrap(), None);
        store(dir.path(), &sample()).unwrap();
        assert_eq!(load(dir.path()).unwrap(), Some(sample()));
    }

    #[test]
    fn any_damage_is_an_error_not_a_panic() {
        let good = encode(&sample());
        for cut in 0..good.len() {
            assert!(decode(&good[..cut]).is_err(), "cut {cut}");
        }
        for i in 0..good.len() {
            let mut b = good.clone();
            b[i] ^= 0x40;
            assert!(decode(&b).is_err(), "flip {i}");
        }
    }
}
