//! A bounded on-disk cache of remote segment chunks: fixed, aligned ranges of an object, so a
//! sequential reader's ranged GETs line up and its next chunk can be fetched ahead of it. The
//! least recently used chunks go when the cache is over its byte budget. The cache is emptied
//! at start: it is a copy of the store, never the only one, and holds nothing worth trusting
//! across a crash.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;
use object_store::path::Path;

use crate::{RemoteStore, TierError};

/// The unit of a ranged GET and of caching.
pub const CHUNK_BYTES: u64 = 4 << 20;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ChunkId {
    key: String,
    chunk: u64,
}

#[derive(Debug, Default)]
struct State {
    /// Size and last use of every cached chunk.
    entries: HashMap<ChunkId, (u64, u64)>,
    total: u64,
    clock: u64,
}

#[derive(Debug)]
pub struct ChunkCache {
    dir: PathBuf,
    max_bytes: u64,
    state: Mutex<State>,
    /// One fetch per chunk at a time: a reader that needs a chunk being fetched waits for it.
    fetching: Mutex<HashMap<ChunkId, Weak<tokio::sync::Mutex<()>>>>,
}

impl ChunkCache {
    /// A cache of at most `max_bytes` in `dir` (emptied first). 0 caches nothing.
    pub fn open(dir: PathBuf, max_bytes: u64) -> Result<ChunkCache, TierError> {
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(TierError::io(dir.display(), e)),
        }
        std::fs::create_dir_all(&dir).map_err(|e| TierError::io(dir.display(), e))?;
        Ok(ChunkCache {
            dir,
            max_bytes,
            state: Mutex::new(State::default()),
            fetching: Mutex::new(HashMap::new()),
        })
    }

    pub fn cached_bytes(&self) -> u64 {
        self.lock().total
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // Every update is a few map operations; a panic midway leaves sizes slightly off at worst.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn path_of(&self, id: &ChunkId) -> PathBuf {
        self.dir
            .join(format!("{}.{}", id.key.replace('/', "_"), id.chunk))
    }

    /// Chunk `chunk` of the object `key` (of `object_len` bytes), from the cache or the store.
    pub async fn chunk(
        &self,
        store: &RemoteStore,
        key: &Path,
        object_len: u64,
        chunk: u64,
    ) -> Result<Bytes, TierError> {
        let id = ChunkId {
            key: key.to_string(),
            chunk,
        };
        if let Some(bytes) = self.cached(&id).await {
            return Ok(bytes);
        }
        let gate = self.gate(&id);
        let _turn = gate.lock().await;
        if let Some(bytes) = self.cached(&id).await {
            return Ok(bytes);
        }
        let start = chunk * CHUNK_BYTES;
        let end = (start + CHUNK_BYTES).min(object_len);
        if start >= end {
            return Err(TierError::corrupt(
                key,
                format!("no chunk {chunk} in {object_len} bytes"),
            ));
        }
        let bytes = store.get_range(key, start..end).await?;
        if bytes.len() as u64 != end - start {
            return Err(TierError::corrupt(
                key,
                format!("asked for {} bytes, got {}", end - start, bytes.len()),
            ));
        }
        self.insert(id, &bytes).await;
        Ok(bytes)
    }

    fn gate(&self, id: &ChunkId) -> Arc<tokio::sync::Mutex<()>> {
        let mut fetching = self.fetching.lock().unwrap_or_else(|p| p.into_inner());
        fetching.retain(|_, w| w.strong_count() > 0);
        if let Some(gate) = fetching.get(id).and_then(Weak::upgrade) {
            return gate;
        }
        let gate = Arc::new(tokio::sync::Mutex::new(()));
        fetching.insert(id.clone(), Arc::downgrade(&gate));
        gate
    }

    async fn cached(&self, id: &ChunkId) -> Option<Bytes> {
        {
            let mut state = self.lock();
            state.clock += 1;
            let now = state.clock;
            let entry = state.entries.get_mut(id)?;
            entry.1 = now;
        }
        // Evicted meanwhile (or unreadable): fetched again.
        tokio::fs::read(self.path_of(id))
            .await
            .ok()
            .map(Bytes::from)
    }

    async fn insert(&self, id: ChunkId, bytes: &Bytes) {
        let size = bytes.len() as u64;
        if size > self.max_bytes {
            return;
        }
        let path = self.path_of(&id);
        let temp = path.with_extension("tmp");
        let written = async {
            tokio::fs::write(&temp, bytes).await?;
            tokio::fs::rename(&temp, &path).await
        }
        .await;
        if let Err(e) = written {
            tracing::warn!(path = %path.display(), "cannot cache a remote chunk: {e}");
            let _ = tokio::fs::remove_file(&temp).await;
            return;
        }
        let evicted = {
            let mut state = self.lock();
            state.clock += 1;
            let now = state.clock;
            if let Some((old, _)) = state.entries.insert(id, (size, now)) {
                state.total -= old;
            }
            state.total += size;
            let mut evicted = Vec::new();
            while state.total > self.max_bytes {
                let Some(oldest) = state
                    .entries
                    .iter()
                    .min_by_key(|(_, (_, used))| *used)
                    .map(|(id, _)| id.clone())
                else {
                    break;
                };
                if let Some((size, _)) = state.entries.remove(&oldest) {
                    state.total -= size;
                }
                evicted.push(self.path_of(&oldest));
            }
            evicted
        };
        for path in evicted {
            let _ = tokio::fs::remove_file(path).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn serves_from_the_store_once_and_stays_within_its_budget() {
        let root = tempfile::tempdir().unwrap();
        let store = RemoteStore::open(&format!("file://{}/store", root.path().display())).unwrap();
        let key = Path::from("t/0/obj.log");
        let data: Vec<u8> = (0..(CHUNK_BYTES * 3 + 100))
            .map(|i| (i % 251) as u8)
            .collect();
        store.put(&key, Bytes::from(data.clone())).await.unwrap();
        let cache = ChunkCache::open(root.path().join("cache"), 2 * CHUNK_BYTES).unwrap();
        let len = data.len() as u64;
        for chunk in 0..4 {
            let got = cache.chunk(&store, &key, len, chunk).await.unwrap();
            let start = (chunk * CHUNK_BYTES) as usize;
            assert_eq!(
                &got[..],
                &data[start..(start + CHUNK_BYTES as usize).min(data.len())]
            );
            assert!(cache.cached_bytes() <= 2 * CHUNK_BYTES);
        }
        assert!(cache.chunk(&store, &key, len, 4).await.is_err());
        // The most recent chunks are served without the store.
        store.delete(&key).await.unwrap();
        assert_eq!(cache.chunk(&store, &key, len, 3).await.unwrap().len(), 100);
        assert!(cache.chunk(&store, &key, len, 0).await.is_err());
    }
}
