//! Copying a sealed segment (or its part from a given batch) to the store: its batch headers
//! are walked first, checking the framing and building the index, then the bytes are streamed
//! up, in parts when large, and the index after them. Nothing is recorded here: the caller adds
//! the returned segment to the manifest only once both objects are in the store.

use std::os::unix::fs::FileExt;

use bytes::Bytes;
use object_store::path::Path;
use object_store::{ObjectStoreExt, WriteMultipart};
use strom_storage::batch::{BatchHeader, HEADER_LEN};
use strom_storage::sealed::SealedSegment;

use crate::index::{IndexBuilder, RemoteIndex};
use crate::manifest::RemoteSegment;
use crate::store::{bounded, WRITE_TIMEOUT};
use crate::{RemoteStore, TierError};

/// Objects up to this size go up in one PUT; larger ones in parts of this size.
const PART_BYTES: u64 = 8 << 20;

/// The object key of a remote segment's data or index.
pub fn object_key(dir: &Path, object: &str, kind: &str) -> Path {
    dir.clone().join(format!("{object}.{kind}"))
}

/// Uploads `view` under the partition directory `dir`. Returns the segment to record.
pub async fn upload_segment(
    store: &RemoteStore,
    dir: &Path,
    view: &SealedSegment,
) -> Result<RemoteSegment, TierError> {
    let walked = {
        let view = view.clone();
        tokio::task::spawn_blocking(move || walk(&view))
            .await
            .map_err(|e| TierError::io("header walk", std::io::Error::other(e)))??
    };
    let (builder, len) = walked;
    let end_offset = builder.end_offset().unwrap_or(view.base_offset);
    if end_offset != view.end_offset {
        return Err(TierError::corrupt(
            view.path.display(),
            format!(
                "batches end at offset {end_offset}, the segment at {}",
                view.end_offset
            ),
        ));
    }
    let max_timestamp = builder.max_timestamp();
    let index = builder.finish();
    let object = format!("{:020}-{}", view.base_offset, uuid::Uuid::new_v4().simple());
    let log_key = object_key(dir, &object, "log");
    if let Err(e) = put_file(store, &log_key, view, len).await {
        // A part-written object is garbage; the next attempt uses a new name.
        let _ = store.delete(&log_key).await;
        return Err(e);
    }
    store
        .put(
            &object_key(dir, &object, "index"),
            RemoteIndex::encode(&index),
        )
        .await?;
    Ok(RemoteSegment {
        base_offset: view.base_offset,
        end_offset,
        size_bytes: len,
        max_timestamp,
        object,
        aborted: Vec::new(),
    })
}

/// Reads every batch header of the view: the index, and the bytes the batches take.
fn walk(view: &SealedSegment) -> Result<(IndexBuilder, u64), TierError> {
    let corrupt = |at: u64, reason: String| {
        TierError::corrupt(view.path.display(), format!("at byte {at}: {reason}"))
    };
    let mut builder = IndexBuilder::default();
    let mut position = view.start_position;
    let mut expected = view.base_offset;
    let mut raw = [0u8; HEADER_LEN];
    while position + HEADER_LEN as u64 <= view.size_bytes {
        view.file
            .read_exact_at(&mut raw, position)
            .map_err(|e| TierError::io(view.path.display(), e))?;
        let header = BatchHeader::parse(&raw).map_err(|e| corrupt(position, e.to_string()))?;
        let total = header.total_len() as u64;
        if total < HEADER_LEN as u64 || position + total > view.size_bytes {
            return Err(corrupt(
                position,
                format!("batch of {total} bytes runs past the end"),
            ));
        }
        if (header.base_offset as u64) < expected || header.last_offset_delta < 0 {
            return Err(corrupt(position, "batch offsets go backwards".into()));
        }
        builder.add(&header, position - view.start_position);
        expected = header.last_offset() as u64 + 1;
        position += total;
    }
    Ok((builder, position - view.start_position))
}

/// Streams `len` bytes of the view into `key`.
async fn put_file(
    store: &RemoteStore,
    key: &Path,
    view: &SealedSegment,
    len: u64,
) -> Result<(), TierError> {
    if len <= PART_BYTES {
        let bytes = read_part(view, view.start_position, len).await?;
        return store.put(key, bytes).await;
    }
    let upload = bounded(WRITE_TIMEOUT, store.inner().put_multipart(key)).await?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_BYTES as usize);
    let mut done = 0;
    while done < len {
        let n = PART_BYTES.min(len - done);
        let part = match read_part(view, view.start_position + done, n).await {
            Ok(p) => p,
            Err(e) => {
                let _ = writer.abort().await;
                return Err(e);
            }
        };
        // At most two parts in flight: memory stays bounded whatever the segment size.
        if let Err(e) = bounded(WRITE_TIMEOUT, writer.wait_for_capacity(2)).await {
            let _ = writer.abort().await;
            return Err(e);
        }
        writer.put(part);
        done += n;
    }
    bounded(WRITE_TIMEOUT, writer.finish()).await?;
    Ok(())
}

async fn read_part(view: &SealedSegment, position: u64, len: u64) -> Result<Bytes, TierError> {
    let file = std::sync::Arc::clone(&view.file);
    let path = view.path.display().to_string();
    tokio::task::spawn_blocking(move || {
        let mut buf = vec![0u8; len as usize];
        file.read_exact_at(&mut buf, position)
            .map(|()| Bytes::from(buf))
            .map_err(|e| TierError::io(&path, e))
    })
    .await
    .map_err(|e| TierError::io("segment read", std::io::Error::other(e)))?
}
