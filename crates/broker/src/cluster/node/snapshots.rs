//! Journal snapshot files, served to peers behind a journal's log start and fetched from
//! them (see `journal::catch_up`), in chunks over the node transport.
//!
//! Peers ask for a chunk at an offset; the answer names the file (inode, modification time
//! and length, hashed) so a fetch that sees the file replaced by a newer snapshot halfway
//! starts over rather than mixing two. Request: offset (u64), journal name. Answer: `0`,
//! index (a lower bound), file identity, total length (u64 each), data; or `1` and a message.
//! Big-endian.

use std::collections::HashMap;
use std::future::Future;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::pin::Pin;
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};

use super::{Cluster, NodeService};
use crate::cluster::state::NodeId;
use crate::journal::{SharedSnapshot, SnapshotSource};
use crate::BrokerError;

/// The service id of snapshot transfers (the etcd front end's forwarding is 1).
pub const SERVICE: u8 = 2;
const CHUNK_BYTES: u64 = 4 << 20;
/// More than any machine's state should be (the etcd quota tops out far below).
const MAX_SNAPSHOT_BYTES: u64 = 64 << 30;
/// A file replaced this often during one fetch is being rewritten faster than it can be read.
const MAX_RESTARTS: u32 = 8;
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
const HEADER: usize = 1 + 8 * 3;

/// The journals whose snapshots this node serves, by name.
#[derive(Default)]
pub(super) struct SnapshotShare {
    journals: RwLock<HashMap<String, Weak<dyn SharedSnapshot>>>,
}

impl SnapshotShare {
    /// The offset asked for, and the file's index and path.
    fn resolve(&self, request: &[u8]) -> Result<(u64, u64, std::path::PathBuf), String> {
        let (offset, name) = request
            .split_first_chunk::<8>()
            .map(|(o, n)| (u64::from_be_bytes(*o), String::from_utf8_lossy(n)))
            .ok_or("short request")?;
        // Only registered names: a name is never used as a path.
        let journal = self
            .journals
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name.as_ref())
            .and_then(Weak::upgrade)
            .ok_or_else(|| format!("no journal {name:?} here"))?;
        let (index, path) = journal.snapshot_file();
        Ok((offset, index, path))
    }
}

fn read_chunk(offset: u64, index: u64, path: &std::path::Path) -> Result<Bytes, String> {
    let io = |e: std::io::Error| format!("{}: {e}", path.display());
    let mut file = std::fs::File::open(path).map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    let len = CHUNK_BYTES.min(meta.len().saturating_sub(offset));
    let mut out = BytesMut::with_capacity(HEADER + len as usize);
    out.put_u8(0);
    out.put_u64(index);
    out.put_u64(identity(&meta));
    out.put_u64(meta.len());
    file.seek(SeekFrom::Start(offset)).map_err(io)?;
    out.resize(HEADER + len as usize, 0);
    file.read_exact(&mut out[HEADER..]).map_err(io)?;
    Ok(out.freeze())
}

/// Which file this is: an inode number alone may be reused once the old file is gone.
fn identity(meta: &std::fs::Metadata) -> u64 {
    [
        meta.ino(),
        meta.mtime() as u64,
        meta.mtime_nsec() as u64,
        meta.len(),
    ]
    .iter()
    .flat_map(|v| v.to_be_bytes())
    .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

impl NodeService for SnapshotShare {
    fn call(&self, _from: NodeId, payload: Bytes) -> Pin<Box<dyn Future<Output = Bytes> + Send>> {
        let target = self.resolve(&payload);
        Box::pin(async move {
            let answer = match target {
                Ok((offset, index, path)) => {
                    tokio::task::spawn_blocking(move || read_chunk(offset, index, &path))
                        .await
                        .unwrap_or_else(|e| Err(e.to_string()))
                }
                Err(e) => Err(e),
            };
            answer.unwrap_or_else(|e| {
                let mut out = BytesMut::with_capacity(1 + e.len());
                out.put_u8(1);
                out.put_slice(e.as_bytes());
                out.freeze()
            })
        })
    }
}

/// One chunk of a peer's snapshot file.
struct Chunk {
    index: u64,
    identity: u64,
    total: u64,
    data: Bytes,
}

fn decode(answer: Bytes) -> Result<Chunk, String> {
    match answer.first() {
        Some(0) if answer.len() >= HEADER => {
            let u64_at = |at: usize| {
                let mut raw = [0u8; 8];
                raw.copy_from_slice(&answer[at..at + 8]);
                u64::from_be_bytes(raw)
            };
            Ok(Chunk {
                index: u64_at(1),
                identity: u64_at(9),
                total: u64_at(17),
                data: answer.slice(HEADER..),
            })
        }
        Some(1) => Err(String::from_utf8_lossy(&answer[1..]).into_owned()),
        _ => Err("malformed answer".into()),
    }
}

/// Fetches snapshot files from this node's peers.
struct Fetcher(Weak<Cluster>);

impl Fetcher {
    async fn fetch_from(
        cluster: &Cluster,
        node: NodeId,
        name: &str,
        min_index: u64,
    ) -> Result<Vec<u8>, String> {
        let mut file: Vec<u8> = Vec::new();
        let mut identity = None;
        let mut restarts = 0;
        loop {
            let offset = file.len() as u64;
            let mut request = Vec::with_capacity(8 + name.len());
            request.extend_from_slice(&offset.to_be_bytes());
            request.extend_from_slice(name.as_bytes());
            let answer = cluster
                .call_service(node, SERVICE, &request, CALL_TIMEOUT)
                .await
                .map_err(|e| e.to_string())?;
            let chunk = decode(answer)?;
            if chunk.index < min_index {
                return Err(format!(
                    "its snapshot is at {}, {min_index} needed",
                    chunk.index
                ));
            }
            if chunk.total > MAX_SNAPSHOT_BYTES {
                return Err(format!("a snapshot of {} bytes", chunk.total));
            }
            if identity.is_some_and(|i| i != chunk.identity) {
                // Replaced by a newer snapshot while we read: start over from its beginning.
                restarts += 1;
                if restarts > MAX_RESTARTS {
                    return Err("the snapshot keeps being replaced".into());
                }
                file = Vec::new();
                identity = None;
                continue;
            }
            identity = Some(chunk.identity);
            let expected = CHUNK_BYTES.min(chunk.total.saturating_sub(offset));
            if chunk.data.len() as u64 != expected {
                return Err(format!(
                    "a chunk of {} bytes at {offset} of {}",
                    chunk.data.len(),
                    chunk.total
                ));
            }
            if file.is_empty() {
                file.reserve_exact(usize::try_from(chunk.total).map_err(|e| e.to_string())?);
            }
            file.extend_from_slice(&chunk.data);
            if file.len() as u64 == chunk.total {
                return Ok(file);
            }
        }
    }
}

impl SnapshotSource for Fetcher {
    fn fetch<'a>(
        &'a self,
        name: &'a str,
        min_index: u64,
        nodes: Vec<NodeId>,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<u8>, BrokerError>> + Send + 'a>> {
        Box::pin(async move {
            let cluster = self
                .0
                .upgrade()
                .ok_or_else(|| BrokerError::LeaderNotAvailable("node is stopping".into()))?;
            let mut errors = Vec::new();
            for node in nodes {
                match Self::fetch_from(&cluster, node, name, min_index).await {
                    Ok(file) => return Ok(file),
                    Err(e) => errors.push(format!("node {node}: {e}")),
                }
            }
            Err(BrokerError::LeaderNotAvailable(format!(
                "no peer has a snapshot of {name} at {min_index} or later ({})",
                errors.join("; ")
            )))
        })
    }
}

impl Cluster {
    /// Peers behind the log start of journal `name` may fetch its snapshot file from here.
    pub fn share_snapshots(&self, name: &str, journal: Weak<dyn SharedSnapshot>) {
        self.router
            .snapshots
            .journals
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_string(), journal);
    }

    /// Where this node's journals fetch a peer's snapshot.
    pub fn snapshot_source(self: &Arc<Self>) -> Arc<dyn SnapshotSource> {
        Arc::new(Fetcher(Arc::downgrade(self)))
    }
}
