//! A one-shot RPC for admin tools: they are not nodes, so they announce node 0.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncWriteExt, BufStream};
use tokio::net::TcpStream;

use super::frame::{self, Frame, FrameError};
use super::handshake::{handshake, Identity, Role, MAX_CLUSTER_ID};
use super::TransportError;

/// The request id of the single request: the connection carries nothing else.
const REQUEST_ID: u64 = 1;

/// For a CLI admin client (not a node): connect to `addr`, authenticate with `secret` as node 0, send one request, return the response.
pub async fn client_call(
    addr: SocketAddr,
    secret: &[u8],
    cluster_id: Option<&str>,
    request: Bytes,
    timeout: Duration,
    tls: Option<std::sync::Arc<strom_tls::rustls::ClientConfig>>,
) -> Result<Bytes, TransportError> {
    if secret.is_empty() {
        return Err(TransportError::Config("the cluster secret is empty".into()));
    }
    let cluster_id = cluster_id.unwrap_or("");
    if cluster_id.len() > MAX_CLUSTER_ID {
        return Err(TransportError::Config(format!(
            "the cluster id is longer than {MAX_CLUSTER_ID} bytes"
        )));
    }
    if frame::rpc_too_large(request.len()) {
        return Err(TransportError::TooLarge(request.len()));
    }
    let me = Identity {
        node_id: 0,
        cluster_id,
        secret,
    };
    tokio::time::timeout(timeout, call(addr, &me, request, tls))
        .await
        .map_err(|_| TransportError::Timeout)?
}

async fn call(
    addr: SocketAddr,
    me: &Identity<'_>,
    request: Bytes,
    tls: Option<std::sync::Arc<strom_tls::rustls::ClientConfig>>,
) -> Result<Bytes, TransportError> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|source| TransportError::Connect { addr, source })?;
    tcp.set_nodelay(true)?;
    let mut stream = match tls {
        None => strom_tls::Conn::Plain(tcp),
        Some(config) => strom_tls::Conn::Client(Box::new(
            strom_tls::connect(config, addr, tcp)
                .await
                .map_err(|source| TransportError::Connect { addr, source })?,
        )),
    };
    handshake(&mut stream, Role::Dialer, me, None, &mut None)
        .await
        .map_err(|source| TransportError::Handshake { addr, source })?;
    let mut stream = BufStream::new(stream);
    frame::write_rpc(&mut stream, frame::RPC_REQUEST, REQUEST_ID, &request).await?;
    stream.flush().await?;
    let Some((kind, payload)) = frame::read_frame(&mut stream).await? else {
        return Err(TransportError::Closed);
    };
    match frame::decode(kind, payload)? {
        Frame::RpcResponse {
            id: REQUEST_ID,
            body,
        } => Ok(body),
        _ => Err(FrameError::NotAllowed(
            "the node answered with something other than our response",
        )
        .into()),
    }
}
