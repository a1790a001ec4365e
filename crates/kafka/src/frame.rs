//! Kafka framing: every request is `length: i32 BE` followed by `length` bytes
//! (`api_key i16, api_version i16, correlation_id i32, client_id, [tagged fields], body`).

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

/// api_key + api_version + correlation_id: the least a request can be.
pub const MIN_FRAME_BYTES: usize = 8;
/// The buffer grows by at most this much per read, so a client that claims a huge frame and
/// sends little costs memory for what it sent, not for what it claimed.
const GROW_STEP_BYTES: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame length {0} is negative")]
    Negative(i32),
    #[error("frame of {len} bytes exceeds the {max}-byte limit (max request size)")]
    TooLarge { len: usize, max: usize },
    #[error("frame of {0} bytes is shorter than a request header")]
    TooSmall(usize),
    #[error("connection closed in the middle of a frame")]
    Truncated,
    #[error("read error: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads one frame body; `Ok(None)` on a clean close between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    max_bytes: usize,
) -> Result<Option<Bytes>, FrameError> {
    let mut len_buf = [0u8; 4];
    match r.read_exact(&mut len_buf).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let declared = i32::from_be_bytes(len_buf);
    let len = usize::try_from(declared).map_err(|_| FrameError::Negative(declared))?;
    if len > max_bytes {
        return Err(FrameError::TooLarge {
            len,
            max: max_bytes,
        });
    }
    if len < MIN_FRAME_BYTES {
        return Err(FrameError::TooSmall(len));
    }
    let mut buf = BytesMut::with_capacity(len.min(GROW_STEP_BYTES));
    while buf.len() < len {
        let want = (len - buf.len()).min(GROW_STEP_BYTES);
        buf.reserve(want);
        let mut chunk = (&mut *r).take(want as u64);
        if chunk.read_buf(&mut buf).await? == 0 {
            return Err(FrameError::Truncated);
        }
    }
    Ok(Some(buf.freeze()))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read(bytes: &[u8], max: usize) -> Result<Option<Bytes>, FrameError> {
        let mut r = bytes;
        read_frame(&mut r, max).await
    }

    #[tokio::test]
    async fn frames() {
        let mut ok = 8i32.to_be_bytes().to_vec();
        ok.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(read(&ok, 100).await.unwrap().unwrap().as_ref(), &ok[4..]);
        assert!(read(&[], 100).await.unwrap().is_none());
        assert!(matches!(
            read(&(-1i32).to_be_bytes(), 100).await,
            Err(FrameError::Negative(-1))
        ));
        assert!(matches!(
            read(&i32::MAX.to_be_bytes(), 100).await,
            Err(FrameError::TooLarge { .. })
        ));
        assert!(matches!(
            read(&3i32.to_be_bytes(), 100).await,
            Err(FrameError::TooSmall(3))
        ));
        assert!(matches!(
            read(&ok[..9], 100).await,
            Err(FrameError::Truncated)
        ));
    }
}
