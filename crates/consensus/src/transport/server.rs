//! The listener: accepts connections from nodes and admin clients, authenticates them, and serves
//! each on its own task.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use strom_tls::Conn;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;

use super::conn::{self, Side};
use super::handshake::{handshake, HandshakeError, Role};
use super::ratelimit::LogKey;
use super::shared::{lock, Shared};
use crate::NodeId;

pub(super) async fn accept_loop(shared: Arc<Shared>, listener: TcpListener) {
    let shutdown = shared.shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            _ = &mut shutdown => break,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((stream, remote)) => {
                shared.runtime.spawn(serve(shared.clone(), stream, remote));
            }
            Err(err) => {
                if let Some(suppressed) = shared.log_limiter.allow(LogKey::Accept) {
                    tracing::warn!(node = shared.node_id, %err, suppressed, "accepting a connection failed");
                }
                // Typically out of file descriptors: pause rather than spin on the error.
                tokio::select! {
                    _ = &mut shutdown => break,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
        }
    }
    tracing::debug!(node = shared.node_id, "listener closed");
}

async fn serve(shared: Arc<Shared>, tcp: TcpStream, remote: SocketAddr) {
    let shutdown = shared.shutdown_signal();
    tokio::pin!(shutdown);
    if let Err(err) = tcp.set_nodelay(true) {
        tracing::debug!(%remote, %err, "cannot set TCP_NODELAY");
    }
    let mut stream = match &shared.tls {
        None => Conn::Plain(tcp),
        Some(tls) => {
            let accepted = tokio::select! {
                _ = &mut shutdown => return,
                r = tls.server.accept(tcp) => r,
            };
            match accepted {
                Ok(s) => Conn::Tls(Box::new(s)),
                Err(err) => {
                    // A node without a certificate of the cluster's CA ends here.
                    if let Some(suppressed) = shared.log_limiter.allow(LogKey::Accept) {
                        tracing::warn!(node = shared.node_id, %remote, %err, suppressed, "refused a connection: TLS handshake failed");
                    }
                    return;
                }
            }
        }
    };
    let mut announced = None;
    let result = {
        let identity = shared.identity();
        let hs = handshake(&mut stream, Role::Acceptor, &identity, None, &mut announced);
        tokio::select! {
            _ = &mut shutdown => return,
            r = tokio::time::timeout(shared.timing.handshake, hs) => r,
        }
    };
    let hello = match result {
        Ok(Ok(hello)) => hello,
        Ok(Err(err)) => return log_rejected(&shared, remote, announced, &err),
        Err(_) => return log_rejected(&shared, remote, announced, &HandshakeError::Timeout),
    };
    let from = hello.node_id;
    if from == 0 {
        tracing::debug!(%remote, "admin client connected");
        let end = tokio::select! {
            r = conn::run(&shared, stream, 0, Side::Client) => r,
            _ = &mut shutdown => Ok(()),
        };
        if let Err(err) = end {
            tracing::warn!(%remote, %err, "admin client connection closed");
        }
        return;
    }

    let conn_id = shared.next_conn_id();
    let replaced = register(&shared, from, conn_id, remote);
    tracing::info!(
        node = shared.node_id,
        peer = from,
        %remote,
        "node {from} connected from {remote}"
    );
    let end = tokio::select! {
        r = conn::run(&shared, stream, from, Side::Inbound) => Some(r),
        _ = replaced.notified() => None,
        _ = &mut shutdown => return,
    };
    unregister(&shared, from, conn_id);
    match end {
        Some(Ok(())) => tracing::info!(
            node = shared.node_id,
            peer = from,
            %remote,
            "node {from} at {remote} closed its connection"
        ),
        Some(Err(err)) => tracing::warn!(
            node = shared.node_id,
            peer = from,
            %remote,
            "connection from node {from} at {remote} broke: {err}"
        ),
        None => tracing::info!(
            node = shared.node_id,
            peer = from,
            %remote,
            "node {from} reconnected; closed its older connection from {remote}"
        ),
    }
}

/// Records `conn_id` as node `from`'s current connection and closes the one it replaces: a
/// node keeps one outbound connection per peer, so an older one is a half-open leftover that
/// would otherwise linger until TCP gives up on it.
fn register(shared: &Shared, from: NodeId, conn_id: u64, remote: SocketAddr) -> Arc<Notify> {
    let close = Arc::new(Notify::new());
    let older = lock(&shared.inbound_conns).insert(from, (conn_id, close.clone()));
    if let Some((_, older)) = older {
        tracing::debug!(peer = from, %remote, "closing node {from}'s older inbound connection");
        older.notify_one();
    }
    close
}

fn unregister(shared: &Shared, from: NodeId, conn_id: u64) {
    let mut conns = lock(&shared.inbound_conns);
    if conns.get(&from).is_some_and(|(id, _)| *id == conn_id) {
        conns.remove(&from);
    }
}

fn log_rejected(
    shared: &Shared,
    remote: SocketAddr,
    announced: Option<NodeId>,
    err: &HandshakeError,
) {
    // Keyed by the announced id too: nodes on one host share an address.
    let key = LogKey::Inbound(remote.ip(), announced);
    let Some(suppressed) = shared.log_limiter.allow(key) else {
        tracing::debug!(%remote, ?announced, %err, "rejected a connection");
        return;
    };
    let me = shared.node_id;
    let local = shared.local_addr;
    let who = match announced {
        Some(0) => format!("an admin client at {remote}"),
        Some(n) => format!("node {n} at {remote}"),
        None => format!("{remote}"),
    };
    let more = if suppressed > 0 {
        format!(" ({suppressed} similar failures since the last report)")
    } else {
        String::new()
    };
    if err.is_misconfiguration() {
        tracing::error!(
            node = me,
            %remote,
            "node {me} at {local} rejected a connection from {who}: {err}{more}"
        );
    } else {
        tracing::warn!(
            node = me,
            %remote,
            "handshake with {who} (this is node {me} at {local}) failed: {err}{more}"
        );
    }
}
