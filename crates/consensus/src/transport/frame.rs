//! Frames after the handshake: `length u32 | kind u8 | payload`, the length counting kind and
//! payload. Decoding checks every length against the bytes actually there: a frame comes from an
//! authenticated peer, but a bug or a torn write there must cost one connection, not the node.

use bytes::{Buf, Bytes, BytesMut};
use protobuf::Message as _;
use raft::eraftpb::Message;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::GroupId;

/// The largest frame length accepted or written (kind byte plus payload).
pub const MAX_FRAME: u32 = 256 << 20;

pub(super) const RAFT_BATCH: u8 = 1;
pub(super) const RPC_REQUEST: u8 = 2;
pub(super) const RPC_RESPONSE: u8 = 3;

/// kind + message count.
const BATCH_HEADER: usize = 1 + 4;
/// group + length, before each message.
const MESSAGE_HEADER: usize = 8 + 4;
/// kind + request id.
const RPC_HEADER: usize = 1 + 8;

/// While reading a frame, grow the buffer by at most this much at a time, so a length field
/// alone cannot make us allocate 256 MiB.
const READ_CHUNK: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("empty frame (length 0)")]
    Empty,
    #[error("frame of {0} bytes exceeds the limit of {MAX_FRAME} bytes")]
    TooLarge(u32),
    #[error("unknown frame kind {0}")]
    UnknownKind(u8),
    #[error("frame ends inside the {0}")]
    Truncated(&'static str),
    #[error("Raft batch claims {count} messages but holds only {bytes} bytes")]
    BadCount { count: u32, bytes: usize },
    #[error("{0} unexpected bytes after the last message of a Raft batch")]
    Trailing(usize),
    #[error("Raft message for group {group} does not decode: {reason}")]
    BadMessage { group: GroupId, reason: String },
    #[error("{0}")]
    NotAllowed(&'static str),
}

#[derive(Debug)]
pub(super) enum Frame {
    RaftBatch(Vec<(GroupId, Message)>),
    RpcRequest { id: u64, body: Bytes },
    RpcResponse { id: u64, body: Bytes },
}

/// Whether an encoded Raft message of `len` bytes could never be sent, even alone in a frame.
pub(super) fn raft_message_too_large(len: usize) -> bool {
    BATCH_HEADER + MESSAGE_HEADER + len > MAX_FRAME as usize
}

pub(super) fn rpc_too_large(len: usize) -> bool {
    RPC_HEADER + len > MAX_FRAME as usize
}

/// Reads one frame: `Ok(None)` if the peer closed the connection between frames.
pub(super) async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
) -> Result<Option<(u8, Bytes)>, super::TransportError> {
    let mut len_bytes = [0u8; 4];
    let mut got = 0;
    while got < len_bytes.len() {
        let n = r.read(&mut len_bytes[got..]).await?;
        if n == 0 {
            if got == 0 {
                return Ok(None);
            }
            return Err(FrameError::Truncated("length field").into());
        }
        got += n;
    }
    let len = u32::from_be_bytes(len_bytes);
    if len == 0 {
        return Err(FrameError::Empty.into());
    }
    if len > MAX_FRAME {
        return Err(FrameError::TooLarge(len).into());
    }
    let kind = r.read_u8().await?;
    let want = (len - 1) as usize;
    let mut payload = BytesMut::with_capacity(want.min(READ_CHUNK));
    while payload.len() < want {
        let missing = want - payload.len();
        payload.reserve(missing.min(READ_CHUNK));
        let n = (&mut *r)
            .take(missing as u64)
            .read_buf(&mut payload)
            .await?;
        if n == 0 {
            return Err(FrameError::Truncated("payload").into());
        }
    }
    Ok(Some((kind, payload.freeze())))
}

pub(super) fn decode(kind: u8, mut payload: Bytes) -> Result<Frame, FrameError> {
    match kind {
        RAFT_BATCH => decode_raft_batch(payload).map(Frame::RaftBatch),
        RPC_REQUEST => {
            let id = get_u64(&mut payload, "request id")?;
            Ok(Frame::RpcRequest { id, body: payload })
        }
        RPC_RESPONSE => {
            let id = get_u64(&mut payload, "request id")?;
            Ok(Frame::RpcResponse { id, body: payload })
        }
        other => Err(FrameError::UnknownKind(other)),
    }
}

fn decode_raft_batch(mut p: Bytes) -> Result<Vec<(GroupId, Message)>, FrameError> {
    let count = get_u32(&mut p, "message count")?;
    // Checked before allocating: every message needs at least its header.
    if count as usize > p.remaining() / MESSAGE_HEADER {
        return Err(FrameError::BadCount {
            count,
            bytes: p.remaining(),
        });
    }
    let mut out = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let group = get_u64(&mut p, "message header")?;
        let len = get_u32(&mut p, "message header")? as usize;
        if p.remaining() < len {
            return Err(FrameError::Truncated("message body"));
        }
        // Copied out rather than sharing the frame's buffer (`parse_from_carllerche_bytes`): one
        // entry kept in a Raft log cache would otherwise pin a whole batch of up to 256 MiB.
        let body = p.split_to(len);
        let msg = Message::parse_from_bytes(&body).map_err(|e| FrameError::BadMessage {
            group,
            reason: e.to_string(),
        })?;
        out.push((group, msg));
    }
    if p.has_remaining() {
        return Err(FrameError::Trailing(p.remaining()));
    }
    Ok(out)
}

fn get_u32(p: &mut Bytes, what: &'static str) -> Result<u32, FrameError> {
    if p.remaining() < 4 {
        return Err(FrameError::Truncated(what));
    }
    Ok(p.get_u32())
}

fn get_u64(p: &mut Bytes, what: &'static str) -> Result<u64, FrameError> {
    if p.remaining() < 8 {
        return Err(FrameError::Truncated(what));
    }
    Ok(p.get_u64())
}

/// Writes `messages` (already encoded) as Raft batches, starting a new frame only where one would
/// pass `MAX_FRAME`; each message is known to fit alone (`raft_message_too_large`).
pub(super) async fn write_raft_batches<W: AsyncWrite + Unpin>(
    w: &mut W,
    messages: &[(GroupId, Bytes)],
) -> std::io::Result<()> {
    let mut start = 0;
    let mut size = BATCH_HEADER;
    for (i, (_, m)) in messages.iter().enumerate() {
        let add = MESSAGE_HEADER + m.len();
        if i > start && size + add > MAX_FRAME as usize {
            write_raft_batch(w, &messages[start..i], size).await?;
            start = i;
            size = BATCH_HEADER;
        }
        size += add;
    }
    if start < messages.len() {
        write_raft_batch(w, &messages[start..], size).await?;
    }
    Ok(())
}

async fn write_raft_batch<W: AsyncWrite + Unpin>(
    w: &mut W,
    messages: &[(GroupId, Bytes)],
    frame_len: usize,
) -> std::io::Result<()> {
    w.write_u32(to_u32(frame_len)?).await?;
    w.write_u8(RAFT_BATCH).await?;
    w.write_u32(to_u32(messages.len())?).await?;
    for (group, m) in messages {
        w.write_u64(*group).await?;
        w.write_u32(to_u32(m.len())?).await?;
        w.write_all(m).await?;
    }
    Ok(())
}

/// Writes an RPC request or response; the caller checked `rpc_too_large`.
pub(super) async fn write_rpc<W: AsyncWrite + Unpin>(
    w: &mut W,
    kind: u8,
    id: u64,
    body: &[u8],
) -> std::io::Result<()> {
    w.write_u32(to_u32(RPC_HEADER + body.len())?).await?;
    w.write_u8(kind).await?;
    w.write_u64(id).await?;
    w.write_all(body).await
}

fn to_u32(n: usize) -> std::io::Result<u32> {
    u32::try_from(n).map_err(|_| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "length does not fit in a frame",
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::eraftpb::{Entry, MessageType};

    fn msg(index: u64) -> Message {
        let mut m = Message::default();
        m.set_msg_type(MessageType::MsgAppend);
        m.from = 1;
        m.to = 2;
        m.index = index;
        let e = Entry {
            index: index + 1,
            data: vec![index as u8; (index % 7) as usize].into(),
            ..Default::default()
        };
        m.entries = vec![e].into();
        m
    }

    fn encoded(messages: &[(GroupId, Message)]) -> Vec<(GroupId, Bytes)> {
        messages
            .iter()
            .map(|(g, m)| (*g, Bytes::from(m.write_to_bytes().unwrap())))
            .collect()
    }

    async fn raft_frame(messages: &[(GroupId, Message)]) -> Vec<u8> {
        let mut out = Vec::new();
        write_raft_batches(&mut out, &encoded(messages))
            .await
            .unwrap();
        out
    }

    async fn read_all(mut bytes: &[u8]) -> Result<Vec<Frame>, super::super::TransportError> {
        let mut frames = Vec::new();
        while let Some((kind, payload)) = read_frame(&mut bytes).await? {
            frames.push(decode(kind, payload)?);
        }
        Ok(frames)
    }

    #[tokio::test]
    async fn raft_batch_and_rpc_round_trip() {
        let messages: Vec<_> = (0..100).map(|i| (i % 13, msg(i))).collect();
        let mut wire = raft_frame(&messages).await;
        write_rpc(&mut wire, RPC_REQUEST, 7, b"ask").await.unwrap();
        write_rpc(&mut wire, RPC_RESPONSE, 7, b"").await.unwrap();
        let frames = read_all(&wire).await.unwrap();
        assert_eq!(frames.len(), 3);
        match &frames[0] {
            Frame::RaftBatch(got) => assert_eq!(got, &messages),
            other => panic!("expected a Raft batch, got {other:?}"),
        }
        match &frames[1] {
            Frame::RpcRequest { id: 7, body } => assert_eq!(&body[..], b"ask"),
            other => panic!("expected a request, got {other:?}"),
        }
        match &frames[2] {
            Frame::RpcResponse { id: 7, body } => assert!(body.is_empty()),
            other => panic!("expected a response, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn every_truncation_is_an_error_not_a_panic() {
        let messages: Vec<_> = (0..5).map(|i| (i, msg(i))).collect();
        let wire = raft_frame(&messages).await;
        for cut in 1..wire.len() {
            assert!(read_all(&wire[..cut]).await.is_err(), "cut at {cut}");
        }
        // Inside the frame: a length that still matches the frame but not the messages.
        let payload = Bytes::copy_from_slice(&wire[5..]);
        for cut in 0..payload.len() {
            assert!(
                decode(RAFT_BATCH, payload.slice(..cut)).is_err(),
                "cut at {cut}"
            );
        }
    }

    #[tokio::test]
    async fn random_bytes_never_panic() {
        // xorshift: deterministic, no dependency.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..2000 {
            let len = (next() % 64) as usize;
            let payload: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            for kind in [RAFT_BATCH, RPC_REQUEST, RPC_RESPONSE, 0, 200] {
                let _ = decode(kind, Bytes::from(payload.clone()));
            }
            let _ = read_all(&payload).await;
        }
    }

    #[tokio::test]
    async fn rejects_bad_lengths_counts_and_trailing_bytes() {
        let too_big = (MAX_FRAME + 1).to_be_bytes();
        assert!(matches!(
            read_all(&too_big).await,
            Err(super::super::TransportError::Protocol(
                FrameError::TooLarge(_)
            ))
        ));
        assert!(matches!(
            read_all(&[0, 0, 0, 0]).await,
            Err(super::super::TransportError::Protocol(FrameError::Empty))
        ));
        let huge_count = Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0, 0]);
        assert!(matches!(
            decode(RAFT_BATCH, huge_count),
            Err(FrameError::BadCount { .. })
        ));
        let mut one = Vec::new();
        write_raft_batches(&mut one, &encoded(&[(1, msg(1))]))
            .await
            .unwrap();
        let mut payload = one[5..].to_vec();
        payload.push(0);
        assert!(matches!(
            decode(RAFT_BATCH, Bytes::from(payload)),
            Err(FrameError::Trailing(1))
        ));
        // A well-framed message whose bytes are not protobuf.
        let garbage =
            Bytes::from_static(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9, 0, 0, 0, 2, 0xff, 0xff]);
        assert!(matches!(
            decode(RAFT_BATCH, garbage),
            Err(FrameError::BadMessage { group: 9, .. })
        ));
        assert!(matches!(
            decode(9, Bytes::new()),
            Err(FrameError::UnknownKind(9))
        ));
    }

    #[test]
    fn size_limits() {
        assert!(!raft_message_too_large(MAX_FRAME as usize - 17));
        assert!(raft_message_too_large(MAX_FRAME as usize - 16));
        assert!(!rpc_too_large(MAX_FRAME as usize - 9));
        assert!(rpc_too_large(MAX_FRAME as usize - 8));
    }
}
