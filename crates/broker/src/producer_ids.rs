//! Producer ids for InitProducerId, never handed out twice, across restarts included.
//!
//! Ids are reserved in blocks of [`BLOCK_SIZE`]: `<data>/meta/producer-ids.toml` holds the first
//! id not yet reserved, and is advanced (atomically, see `metadata::write_atomic`) before any id
//! of a new block is handed out. A crash loses at most the rest of the current block, never
//! reuses an id. Reusing one would be data loss: a partition that still tracks the old producer
//! could take the new producer's first batches for duplicates of the old one's.
//!
//! ```toml
//! next_block_start = 3000
//! ```

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use strom_storage::StorageError;

use crate::BrokerError;

pub const BLOCK_SIZE: i64 = 1000;
const FILE_NAME: &str = "producer-ids.toml";

#[derive(Debug, Serialize, Deserialize)]
struct Record {
    next_block_start: i64,
}

#[derive(Debug)]
struct Block {
    /// The next id to hand out.
    next: i64,
    /// Ids below this are reserved on disk.
    end: i64,
}

#[derive(Debug)]
pub struct ProducerIds {
    path: PathBuf,
    block: Mutex<Block>,
}

fn corrupt(path: &Path, reason: String) -> BrokerError {
    BrokerError::Storage(StorageError::Corrupt {
        path: path.to_path_buf(),
        position: 0,
        reason,
    })
}

impl ProducerIds {
    /// Reads the allocator in `meta_dir`. A missing file starts at id 0; an unreadable one is an
    /// error rather than a guess, since guessing low would reuse ids.
    pub fn open(meta_dir: &Path) -> Result<ProducerIds, BrokerError> {
        let path = meta_dir.join(FILE_NAME);
        let start = match std::fs::read_to_string(&path) {
            Ok(text) => {
                let rec: Record =
                    toml::from_str(&text).map_err(|e| corrupt(&path, e.to_string()))?;
                if !(0..=i64::MAX - BLOCK_SIZE).contains(&rec.next_block_start) {
                    return Err(corrupt(
                        &path,
                        format!("next_block_start {} out of range", rec.next_block_start),
                    ));
                }
                rec.next_block_start
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => {
                return Err(BrokerError::Storage(StorageError::Io { path, source: e }));
            }
        };
        Ok(ProducerIds {
            path,
            block: Mutex::new(Block {
                next: start,
                end: start,
            }),
        })
    }

    /// A fresh producer id.
    pub fn allocate(&self) -> Result<i64, BrokerError> {
        let mut block = self.block.lock().unwrap_or_else(|p| p.into_inner());
        if block.next >= block.end {
            let end = block
                .end
                .checked_add(BLOCK_SIZE)
                .ok_or_else(|| corrupt(&self.path, "producer ids exhausted".into()))?;
            let text = toml::to_string(&Record {
                next_block_start: end,
            })
            .map_err(|e| BrokerError::InvalidConfig(e.to_string()))?;
            crate::metadata::write_atomic(&self.path, &text)?;
            block.end = end;
            tracing::debug!(next = block.next, end, "reserved a block of producer ids");
        }
        let id = block.next;
        block.next += 1;
        Ok(id)
    }

    /// Whether `id` was handed out by this node, now or before a restart (or lies in a block
    /// reserved for that).
    pub fn issued(&self, id: i64) -> bool {
        let block = self.block.lock().unwrap_or_else(|p| p.into_inner());
        (0..block.next).contains(&id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_across_restarts() {
        let dir = tempfile::tempdir().unwrap();
        let ids = ProducerIds::open(dir.path()).unwrap();
        let first: Vec<i64> = (0..1500).map(|_| ids.allocate().unwrap()).collect();
        assert_eq!(first, (0..1500).collect::<Vec<_>>());
        assert!(ids.issued(1499) && !ids.issued(1500) && !ids.issued(-1));
        drop(ids);
        // A restart (clean or not) continues after the last reserved block.
        let ids = ProducerIds::open(dir.path()).unwrap();
        assert!(ids.issued(1999), "ids of earlier runs count as issued");
        assert_eq!(ids.allocate().unwrap(), 2000);
        let text = std::fs::read_to_string(dir.path().join(FILE_NAME)).unwrap();
        assert_eq!(text.trim(), "next_block_start = 3000");
    }

    #[test]
    fn unreadable_file_refuses_to_guess() {
        let dir = tempfile::tempdir().unwrap();
        for junk in [
            "garbage",
            "next_block_start = -5",
            "next_block_start = \"x\"",
        ] {
            std::fs::write(dir.path().join(FILE_NAME), junk).unwrap();
            assert!(ProducerIds::open(dir.path()).is_err(), "{junk}");
        }
    }
}
