//! Accepting connections and running each one: a reader that decodes and starts requests in
//! order, and a writer that sends their responses in the same order as they complete.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

use crate::dispatch::After;
use crate::quota::Mute;
use crate::security::{Session, UNAUTHENTICATED_FRAME_BYTES};
use crate::{dispatch, frame, Context};

/// A response being prepared: the frame as chunks for one vectored write, or `None` when the
/// request gets no response (acks=0).
pub type PendingResponse = Pin<Box<dyn Future<Output = Option<Vec<Bytes>>> + Send>>;

/// Requests a connection may have in flight; the reader stops reading beyond this (backpressure).
const IN_FLIGHT_MAX: usize = 64;
const READ_BUFFER_BYTES: usize = 256 * 1024;

/// Accepts connections until the listener fails.
pub async fn serve(listener: TcpListener, ctx: Arc<Context>) -> std::io::Result<()> {
    // Group deadlines (sessions, rebalance timeouts) run on this runtime.
    strom_broker::group::Coordinator::start(&ctx.broker);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // Running out of file descriptors must not end the server.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let slot = match ctx.connections.admit(
            peer.ip(),
            ctx.config.max_connections,
            ctx.security_config.max_connections_per_ip,
        ) {
            Ok(slot) => slot,
            Err(why) => {
                tracing::warn!(%peer, "closing connection: {why}");
                strom_metrics::global()
                    .connections_rejected
                    .get_or_create(&strom_metrics::FaceLabel { face: "kafka" })
                    .inc();
                continue;
            }
        };
        let ctx = Arc::clone(&ctx);
        tokio::spawn(async move {
            let _slot = slot;
            let _counted = strom_metrics::global().connection("kafka");
            let _ = stream.set_nodelay(true);
            match ctx.tls.clone() {
                None => {
                    let (rd, wr) = stream.into_split();
                    let rd = BufReader::with_capacity(READ_BUFFER_BYTES, rd);
                    run_connection(rd, wr, peer, ctx, None).await;
                }
                Some(tls) => match tls.accept(stream).await {
                    Ok(stream) => {
                        let principal = strom_tls::principal(&stream);
                        // rustls buffers what it decrypts: a second buffer would only copy.
                        let (rd, wr) = tokio::io::split(stream);
                        run_connection(rd, wr, peer, ctx, principal).await;
                    }
                    // Plaintext to a TLS port ends here too.
                    Err(e) => tracing::info!(%peer, "TLS handshake failed: {e}"),
                },
            }
        });
    }
}

async fn run_connection<R, W>(
    mut rd: R,
    mut wr: W,
    peer: SocketAddr,
    ctx: Arc<Context>,
    cert_principal: Option<String>,
) where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (tx, mut rx) = mpsc::channel::<(PendingResponse, Queued)>(IN_FLIGHT_MAX);
    let writer = tokio::spawn(async move {
        while let Some((pending, _queued)) = rx.recv().await {
            if let Some(chunks) = pending.await {
                if let Err(e) = write_chunks(&mut wr, chunks).await {
                    tracing::debug!(%peer, "write failed: {e}");
                    return;
                }
            }
        }
        let _ = wr.shutdown().await;
    });
    let principal = cert_principal.unwrap_or_else(|| strom_auth::ANONYMOUS.to_string());
    let mut session = Session::new(principal, peer.ip(), ctx.listener.protocol.sasl());
    let mute = Arc::new(Mute::default());
    loop {
        // A client over its quota is not read from until its throttle time has passed.
        mute.wait().await;
        let max = if session.needs_login {
            UNAUTHENTICATED_FRAME_BYTES.min(ctx.config.max_request_bytes)
        } else {
            ctx.config.max_request_bytes
        };
        let frame = match frame::read_frame(&mut rd, max).await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(frame::FrameError::Io(e)) => {
                tracing::debug!(%peer, "read failed: {e}");
                break;
            }
            Err(frame::FrameError::TooLarge { len, .. }) if len >> 16 == 0x1603 => {
                tracing::warn!(%peer, "closing connection: TLS handshake on the {} listener, which is not TLS", ctx.listener.name);
                break;
            }
            Err(e) => {
                tracing::warn!(%peer, "closing connection: {e}");
                break;
            }
        };
        let queued = Queued::new(frame.len());
        match dispatch::handle(&ctx, frame, peer, &mut session, &mute) {
            Ok((pending, then)) => {
                if tx.send((pending, queued)).await.is_err() || then == After::Close {
                    break;
                }
            }
            Err(e) => {
                tracing::warn!(%peer, "closing connection: {e}");
                break;
            }
        }
    }
    // Responses already started are still delivered before the connection closes.
    drop(tx);
    let _ = writer.await;
}

/// A request's bytes, counted in `strom_request_queued_bytes` from when it is read until its
/// response is written (or dropped with its connection).
struct Queued(i64);

impl Queued {
    fn new(bytes: usize) -> Queued {
        let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
        strom_metrics::global().request_bytes_queued.inc_by(bytes);
        Queued(bytes)
    }
}

impl Drop for Queued {
    fn drop(&mut self) {
        strom_metrics::global().request_bytes_queued.dec_by(self.0);
    }
}

/// Writes every chunk, as few syscalls as the kernel allows.
async fn write_chunks<W: tokio::io::AsyncWrite + Unpin>(
    wr: &mut W,
    mut chunks: Vec<Bytes>,
) -> std::io::Result<()> {
    use bytes::Buf;
    /// Linux accepts up to 1024 iovecs per call; a response rarely has more than a few dozen.
    const IOVECS_MAX: usize = 64;
    let mut first = 0;
    while first < chunks.len() {
        let slices: Vec<std::io::IoSlice<'_>> = chunks[first..]
            .iter()
            .take(IOVECS_MAX)
            .map(|c| std::io::IoSlice::new(c))
            .collect();
        let mut written = wr.write_vectored(&slices).await?;
        if written == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while written > 0 {
            // The kernel never reports more than it was given, so a chunk is always left here.
            let Some(chunk) = chunks.get_mut(first) else {
                break;
            };
            let n = written.min(chunk.len());
            chunk.advance(n);
            written -= n;
            if chunk.is_empty() {
                first += 1;
            }
        }
        while first < chunks.len() && chunks[first].is_empty() {
            first += 1;
        }
    }
    // A TLS stream may hold ciphertext the socket did not take yet: the flush sends it now
    // rather than with the next response, which may never come.
    wr.flush().await
}
