//! Cluster mode: what a node that does not lead the key-value journal asks of the node that
//! does, over the cluster transport (service id [`SERVICE`], postcard-encoded). Writes are
//! proposed by the leader; linearizable reads take the leader's read index; lease liveness
//! lives in the leader's `Lessor`. The asking node then waits until it applied the index the
//! leader named, so its own reads and watchers already show the write it answers for.

use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use strom_broker::cluster::NodeService;
use strom_broker::BrokerError;
use strom_kv::Applied;

use crate::service::Etcd;

pub const SERVICE: u8 = 1;
/// A forwarded proposal's budget: the leader proposes within a commit or is in trouble.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Read barriers and lease calls are quick on a healthy leader; a lease's TTL may be as short
/// as 2 s, so a keep-alive must not wait long on a leader that is gone.
pub const QUICK_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Serialize, Deserialize, Debug)]
pub enum Call {
    /// An encoded `strom_kv::Command` to propose.
    Propose(Vec<u8>),
    ReadIndex,
    /// A lease's KeepAlive: the granted TTL, or 0 for a lease that is gone.
    KeepAlive(i64),
    /// A lease's remaining seconds on the leader's clock (`None`: no deadline known).
    Remaining(i64),
}

#[derive(Serialize, Deserialize, Debug)]
pub enum Reply {
    Applied {
        index: u64,
        applied: Applied,
    },
    Index(u64),
    Ttl(i64),
    Remaining(Option<i64>),
    /// The leader could not: not leading (any more), no quorum, a timeout.
    Unavailable(String),
}

pub fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    postcard::to_allocvec(v).unwrap_or_default()
}

/// Serves the calls of the other nodes (registered on every node; only the leader succeeds).
pub struct Service(pub Weak<Etcd>);

impl NodeService for Service {
    fn call(
        &self,
        _from: u64,
        payload: Bytes,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Bytes> + Send>> {
        let etcd = self.0.upgrade();
        Box::pin(async move {
            let Some(etcd) = etcd else {
                return Bytes::new();
            };
            let reply = match postcard::from_bytes::<Call>(&payload) {
                Err(e) => Reply::Unavailable(format!("bad call: {e}")),
                Ok(call) => serve(&etcd, call).await,
            };
            Bytes::from(encode(&reply))
        })
    }
}

async fn serve(etcd: &Arc<Etcd>, call: Call) -> Reply {
    let journal = etcd.journal();
    if !journal.is_leader() {
        return Reply::Unavailable("etcdserver: not leader".into());
    }
    match call {
        Call::Propose(command) => match journal.propose(&command).await {
            Ok((index, applied)) => Reply::Applied { index, applied },
            Err(e) => Reply::Unavailable(e.to_string()),
        },
        Call::ReadIndex => match etcd.read_index().await {
            Ok(index) => Reply::Index(index),
            Err(e) => Reply::Unavailable(e.message().to_string()),
        },
        // A new leader may not have applied every committed grant yet: it answers for a
        // lease only once it has (else a live lease would be reported gone, TTL 0).
        Call::KeepAlive(id) => match etcd.read_barrier().await {
            Ok(()) => Reply::Ttl(etcd.keep_alive_local(id)),
            Err(e) => Reply::Unavailable(e.message().to_string()),
        },
        Call::Remaining(id) => match etcd.read_barrier().await {
            Ok(()) => Reply::Remaining(etcd.remaining_local(id)),
            Err(e) => Reply::Unavailable(e.message().to_string()),
        },
    }
}

/// Sends `call` to the journal's leader.
pub async fn ask(etcd: &Etcd, call: &Call) -> Result<Reply, BrokerError> {
    let cluster = etcd
        .cluster()
        .ok_or_else(|| BrokerError::LeaderNotAvailable("not in a cluster".into()))?;
    let leader = etcd
        .journal()
        .role()
        .and_then(|r| r.leader)
        .ok_or_else(|| BrokerError::LeaderNotAvailable("etcdserver: no leader".into()))?;
    let timeout = match call {
        Call::Propose(_) => CALL_TIMEOUT,
        _ => QUICK_TIMEOUT,
    };
    let answer = cluster
        .call_service(leader, SERVICE, &encode(call), timeout)
        .await?;
    postcard::from_bytes(&answer)
        .map_err(|e| BrokerError::LeaderNotAvailable(format!("bad reply from node {leader}: {e}")))
}
