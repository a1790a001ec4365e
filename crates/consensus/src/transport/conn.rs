//! One authenticated connection, either direction: a reader that dispatches frames and a writer
//! that batches whatever is waiting. Whichever of the two stops first ends the connection.

use std::sync::Arc;

use bytes::Bytes;
use strom_tls::Conn;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::sync::mpsc;

use super::frame::{self, Frame, FrameError};
use super::peer::Peer;
use super::shared::Shared;
use super::TransportError;
use crate::NodeId;

const IO_BUFFER: usize = 64 * 1024;

pub(super) enum Side<'a> {
    /// Our connection to `peer`: it carries the peer's queue and the answers to our calls.
    Outbound { peer: &'a Peer, conn_id: u64 },
    /// A node's connection to us.
    Inbound,
    /// An admin client's connection to us (node 0): RPC requests only.
    Client,
}

type Response = (u64, Bytes);

/// Runs the connection until it breaks (`Err`) or the peer closes it between frames (`Ok`).
pub(super) async fn run(
    shared: &Arc<Shared>,
    stream: Conn,
    from: NodeId,
    side: Side<'_>,
) -> Result<(), TransportError> {
    // Plain TCP splits without a lock; a TLS stream's halves share one.
    match stream {
        Conn::Plain(tcp) => {
            let (rd, wr) = tcp.into_split();
            run_halves(shared, rd, wr, from, side).await
        }
        tls => {
            let (rd, wr) = tokio::io::split(tls);
            run_halves(shared, rd, wr, from, side).await
        }
    }
}

async fn run_halves<R, W>(
    shared: &Arc<Shared>,
    rd: R,
    wr: W,
    from: NodeId,
    side: Side<'_>,
) -> Result<(), TransportError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (responses_tx, responses_rx) = mpsc::unbounded_channel();
    let outbound = match side {
        Side::Outbound { peer, conn_id } => Some((peer, conn_id)),
        _ => None,
    };
    tokio::select! {
        r = read_loop(shared, rd, from, &side, responses_tx) => r,
        r = write_loop(wr, outbound, responses_rx) => r,
    }
}

async fn read_loop<R: AsyncRead + Unpin>(
    shared: &Arc<Shared>,
    rd: R,
    from: NodeId,
    side: &Side<'_>,
    responses: mpsc::UnboundedSender<Response>,
) -> Result<(), TransportError> {
    let mut rd = BufReader::with_capacity(IO_BUFFER, rd);
    loop {
        let Some((kind, payload)) = frame::read_frame(&mut rd).await? else {
            return Ok(());
        };
        match frame::decode(kind, payload)? {
            Frame::RaftBatch(messages) => {
                if matches!(side, Side::Client) {
                    return Err(FrameError::NotAllowed(
                        "an admin client (node 0) may only send RPC requests",
                    )
                    .into());
                }
                if !messages.is_empty() {
                    shared.inbound.on_raft(from, messages);
                }
            }
            Frame::RpcRequest { id, body } => {
                // Served concurrently: a slow request must not hold up the Raft traffic behind it.
                let answer = shared.inbound.on_rpc(from, body);
                let responses = responses.clone();
                shared.runtime.spawn(async move {
                    // Fails only if the connection is gone, and then nobody can be answered.
                    let _ = responses.send((id, answer.await));
                });
            }
            Frame::RpcResponse { id, body } => match side {
                Side::Outbound { peer, .. } => peer.complete(id, Ok(body)),
                _ => {
                    return Err(FrameError::NotAllowed(
                        "an RPC response on a connection this node sent no requests on",
                    )
                    .into())
                }
            },
        }
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(
    wr: W,
    outbound: Option<(&Peer, u64)>,
    mut responses: mpsc::UnboundedReceiver<Response>,
) -> Result<(), TransportError> {
    let mut w = BufWriter::with_capacity(IO_BUFFER, wr);
    let mut received: Option<Response> = None;
    loop {
        let mut wrote = false;
        let mut next = received.take().or_else(|| responses.try_recv().ok());
        while let Some((id, body)) = next {
            if frame::rpc_too_large(body.len()) {
                tracing::error!(
                    id,
                    len = body.len(),
                    "RPC response does not fit in one frame; the caller will time out"
                );
            } else {
                frame::write_rpc(&mut w, frame::RPC_RESPONSE, id, &body).await?;
                wrote = true;
            }
            next = responses.try_recv().ok();
        }
        if let Some((peer, conn_id)) = outbound {
            let work = peer.take_work(conn_id);
            for (id, body) in &work.requests {
                frame::write_rpc(&mut w, frame::RPC_REQUEST, *id, body).await?;
                wrote = true;
            }
            if !work.raft.is_empty() {
                frame::write_raft_batches(&mut w, &work.raft).await?;
                wrote = true;
            }
        }
        if wrote {
            w.flush().await?;
            // Look again before sleeping: what was queued during the write goes out next.
            continue;
        }
        tokio::select! {
            _ = queued(outbound) => {}
            r = responses.recv() => match r {
                Some(response) => received = Some(response),
                // The reader is gone, so is the connection.
                None => return Ok(()),
            },
        }
    }
}

async fn queued(outbound: Option<(&Peer, u64)>) {
    match outbound {
        Some((peer, _)) => peer.wake.notified().await,
        None => std::future::pending().await,
    }
}
