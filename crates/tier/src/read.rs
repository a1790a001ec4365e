//! Reads of remote segments: whole batches from an offset within a byte limit (Fetch), and the
//! first record at or after a timestamp (ListOffsets), through the chunk cache. Every batch
//! served is CRC-checked, as local reads are.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use object_store::path::Path;
use strom_storage::batch::{self, BatchHeader, HEADER_LEN};
use strom_storage::FirstBatch;

use crate::cache::{ChunkCache, CHUNK_BYTES};
use crate::index::RemoteIndex;
use crate::manifest::RemoteSegment;
use crate::upload::object_key;
use crate::{RemoteStore, TierError};

/// Decoded indexes kept in memory, most recently used first out last.
const INDEXES_CACHED: usize = 1024;

/// The object store and everything that reads from it: what a broker holds when tiering is on.
#[derive(Debug)]
pub struct Tier {
    pub store: RemoteStore,
    cache: Arc<ChunkCache>,
    indexes: Mutex<HashMap<String, (Arc<RemoteIndex>, u64)>>,
    clock: std::sync::atomic::AtomicU64,
}

impl Tier {
    /// The store at `url`, with a read cache of `cache_bytes` in `cache_dir`.
    pub fn open(url: &str, cache_dir: PathBuf, cache_bytes: u64) -> Result<Arc<Tier>, TierError> {
        Ok(Arc::new(Tier {
            store: RemoteStore::open(url)?,
            cache: Arc::new(ChunkCache::open(cache_dir, cache_bytes)?),
            indexes: Mutex::new(HashMap::new()),
            clock: Default::default(),
        }))
    }

    pub fn cached_bytes(&self) -> u64 {
        self.cache.cached_bytes()
    }

    async fn index(
        &self,
        dir: &Path,
        segment: &RemoteSegment,
    ) -> Result<Arc<RemoteIndex>, TierError> {
        let key = object_key(dir, &segment.object, "index");
        let name = key.to_string();
        let now = self
            .clock
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Some((index, used)) = self.lock_indexes().get_mut(&name) {
            *used = now;
            return Ok(Arc::clone(index));
        }
        let bytes = self.store.get(&key).await?;
        let index = Arc::new(RemoteIndex::decode(&name, &bytes)?);
        let mut indexes = self.lock_indexes();
        if indexes.len() >= INDEXES_CACHED {
            if let Some(oldest) = indexes
                .iter()
                .min_by_key(|(_, (_, u))| *u)
                .map(|(k, _)| k.clone())
            {
                indexes.remove(&oldest);
            }
        }
        indexes.insert(name, (Arc::clone(&index), now));
        Ok(index)
    }

    fn lock_indexes(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Arc<RemoteIndex>, u64)>> {
        self.indexes.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whole batches of `segment` from the one holding `offset`, as [`strom_storage::Log::read_with`]
    /// reads a local segment: within `max_bytes` (the first batch whole when `first` allows),
    /// none at or above `upper_bound`. The chunk after the last one read is fetched ahead.
    pub async fn read(
        &self,
        dir: &Path,
        segment: &RemoteSegment,
        offset: u64,
        max_bytes: usize,
        upper_bound: u64,
        first: FirstBatch,
    ) -> Result<Bytes, TierError> {
        let index = self.index(dir, segment).await?;
        let mut cursor = Cursor::new(
            self,
            object_key(dir, &segment.object, "log"),
            segment.size_bytes,
        );
        let mut position = index.position_for(offset);
        let mut out = BytesMut::new();
        while let Some(header) = cursor.header(position).await? {
            let total = header.total_len();
            let base = header.base_offset as u64;
            if (header.last_offset() as u64) < offset {
                position += total as u64;
                continue;
            }
            if base >= upper_bound
                || (!out.is_empty() && out.len() + total > max_bytes)
                || (out.is_empty() && total > max_bytes && first == FirstBatch::WithinLimit)
            {
                break;
            }
            let bytes = cursor.bytes(position, total).await?;
            if let Err(e) = batch::check_frame_and_crc(&bytes) {
                let e = TierError::corrupt(&cursor.key, format!("batch at byte {position}: {e}"));
                if out.is_empty() {
                    return Err(e);
                }
                tracing::warn!("remote read stops before a corrupt batch: {e}");
                break;
            }
            out.extend_from_slice(&bytes);
            position += total as u64;
            if out.len() >= max_bytes {
                break;
            }
        }
        cursor.prefetch_after(position);
        Ok(out.freeze())
    }

    /// The first record of `segment` at or after offset `from` whose timestamp is >=
    /// `timestamp_ms`, as (offset, timestamp); control batches are not records.
    pub async fn find_timestamp(
        &self,
        dir: &Path,
        segment: &RemoteSegment,
        timestamp_ms: i64,
        from: u64,
    ) -> Result<Option<(u64, i64)>, TierError> {
        if segment.max_timestamp < timestamp_ms || segment.end_offset <= from {
            return Ok(None);
        }
        let index = self.index(dir, segment).await?;
        let mut cursor = Cursor::new(
            self,
            object_key(dir, &segment.object, "log"),
            segment.size_bytes,
        );
        let mut position = index
            .position_for_time(timestamp_ms)
            .max(index.position_for(from));
        while let Some(header) = cursor.header(position).await? {
            let total = header.total_len();
            let wanted = (header.last_offset() as u64) >= from
                && !header.is_control()
                && header.max_timestamp >= timestamp_ms;
            if wanted {
                let bytes = cursor.bytes(position, total).await?;
                batch::check_frame_and_crc(&bytes)
                    .map_err(|e| TierError::corrupt(&cursor.key, e.to_string()))?;
                let found = match strom_storage::records::record_times(&bytes) {
                    Ok(times) => times
                        .into_iter()
                        .map(|(o, t)| (o as u64, t))
                        .find(|(o, t)| *o >= from && *t >= timestamp_ms),
                    // As locally: a batch whose records cannot be decoded answers for itself.
                    Err(_) => Some(((header.base_offset as u64).max(from), header.max_timestamp)),
                };
                if found.is_some() {
                    return Ok(found);
                }
            }
            position += total as u64;
        }
        Ok(None)
    }
}

/// Reads byte ranges of one object through the cache, keeping the chunk last used at hand.
struct Cursor<'a> {
    tier: &'a Tier,
    key: Path,
    len: u64,
    current: Option<(u64, Bytes)>,
}

impl<'a> Cursor<'a> {
    fn new(tier: &'a Tier, key: Path, len: u64) -> Cursor<'a> {
        Cursor {
            tier,
            key,
            len,
            current: None,
        }
    }

    async fn chunk(&mut self, chunk: u64) -> Result<Bytes, TierError> {
        if let Some((n, bytes)) = &self.current {
            if *n == chunk {
                return Ok(bytes.clone());
            }
        }
        let bytes = self
            .tier
            .cache
            .chunk(&self.tier.store, &self.key, self.len, chunk)
            .await?;
        self.current = Some((chunk, bytes.clone()));
        Ok(bytes)
    }

    /// `len` bytes at `position`, which must lie within the object.
    async fn bytes(&mut self, position: u64, len: usize) -> Result<Bytes, TierError> {
        let end = position + len as u64;
        if end > self.len {
            return Err(TierError::corrupt(
                &self.key,
                format!("bytes {position}..{end} past its end {}", self.len),
            ));
        }
        let first = position / CHUNK_BYTES;
        let chunk = self.chunk(first).await?;
        let at = (position - first * CHUNK_BYTES) as usize;
        if at + len <= chunk.len() {
            return Ok(chunk.slice(at..at + len));
        }
        let mut out = BytesMut::with_capacity(len);
        out.extend_from_slice(&chunk[at..]);
        let mut next = first + 1;
        while out.len() < len {
            let chunk = self.chunk(next).await?;
            let take = (len - out.len()).min(chunk.len());
            out.extend_from_slice(&chunk[..take]);
            next += 1;
        }
        Ok(out.freeze())
    }

    /// The batch header at `position`, or `None` at the end of the object.
    async fn header(&mut self, position: u64) -> Result<Option<BatchHeader>, TierError> {
        if position + HEADER_LEN as u64 > self.len {
            return Ok(None);
        }
        let raw = self.bytes(position, HEADER_LEN).await?;
        let header = BatchHeader::parse(&raw)
            .map_err(|e| TierError::corrupt(&self.key, format!("at byte {position}: {e}")))?;
        let total = header.total_len() as u64;
        if total < HEADER_LEN as u64 || position + total > self.len {
            return Err(TierError::corrupt(
                &self.key,
                format!("batch at byte {position} of {total} bytes runs past the end"),
            ));
        }
        Ok(Some(header))
    }

    /// Starts fetching the chunk holding `position` (where the next sequential read begins) if
    /// the object has one.
    fn prefetch_after(&self, position: u64) {
        if position >= self.len {
            return;
        }
        let chunk = position / CHUNK_BYTES;
        let cache = Arc::clone(&self.tier.cache);
        let store = self.tier.store.clone();
        let key = self.key.clone();
        let len = self.len;
        tokio::spawn(async move {
            if let Err(e) = cache.chunk(&store, &key, len, chunk).await {
                tracing::debug!(%key, chunk, "prefetch failed: {e}");
            }
        });
        // The chunk after it too: a consumer reading faster than one GET finishes stays ahead.
        if (chunk + 1) * CHUNK_BYTES < len {
            let cache = Arc::clone(&self.tier.cache);
            let store = self.tier.store.clone();
            let key = self.key.clone();
            tokio::spawn(async move {
                let _ = cache.chunk(&store, &key, len, chunk + 1).await;
            });
        }
    }
}
