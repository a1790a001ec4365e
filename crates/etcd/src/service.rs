//! What every service shares: the journal, the response header, proposing a command and the
//! read barrier.

use std::sync::{Arc, RwLockReadGuard};
use std::time::Duration;

use etcd_client::proto::PbResponseHeader;
use strom_broker::journal::Journal;
use strom_kv::{txn, Applied, Command, KvError, Output};
use tonic::Status;

use crate::lease::Lessor;
use crate::machine::KvMachine;
use crate::{peer, status, EtcdConfig};

/// How long a read waits for a new leader's first commit before it gives up.
const READ_BARRIER_WAIT: Duration = Duration::from_secs(3);

pub struct Etcd {
    journal: Arc<Journal<KvMachine>>,
    /// Cluster mode: the node, to reach the journal's leader.
    cluster: Option<Arc<strom_broker::cluster::Cluster>>,
    config: EtcdConfig,
    member_id: u64,
    cluster_id: u64,
    pub(crate) name: String,
    pub(crate) lessor: Lessor,
    /// Set when clients authenticate with certificates and the authorizer is on.
    authorization: std::sync::OnceLock<crate::authz::Authorization>,
}

/// The services' handle (tonic wants one value per service).
#[derive(Clone)]
pub(crate) struct Svc(pub Arc<Etcd>);

impl std::ops::Deref for Svc {
    type Target = Etcd;
    fn deref(&self) -> &Etcd {
        &self.0
    }
}

impl Etcd {
    /// Enforces ACLs on every request from now on (see [`crate::authz`]).
    pub fn authorize(&self, authorization: crate::authz::Authorization) {
        let _ = self.authorization.set(authorization);
    }

    pub(crate) fn authz(&self) -> Option<&crate::authz::Authorization> {
        self.authorization.get()
    }

    pub fn new(
        journal: Arc<Journal<KvMachine>>,
        cluster: Option<Arc<strom_broker::cluster::Cluster>>,
        config: EtcdConfig,
        member_id: u64,
        name: String,
    ) -> Arc<Etcd> {
        // A stable cluster id from the name (FNV-1a): clients only compare it.
        let cluster_id = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        Arc::new(Etcd {
            journal,
            cluster,
            config,
            member_id,
            cluster_id,
            name,
            lessor: Lessor::default(),
            authorization: std::sync::OnceLock::new(),
        })
    }

    pub fn config(&self) -> &EtcdConfig {
        &self.config
    }

    pub(crate) fn journal(&self) -> &Arc<Journal<KvMachine>> {
        &self.journal
    }

    pub(crate) fn cluster(&self) -> Option<&Arc<strom_broker::cluster::Cluster>> {
        self.cluster.as_ref()
    }

    pub(crate) fn member_id(&self) -> u64 {
        self.member_id
    }

    pub(crate) fn machine(&self) -> RwLockReadGuard<'_, KvMachine> {
        self.journal.read()
    }

    pub(crate) fn header(&self, revision: i64) -> PbResponseHeader {
        let raft_term = self.journal.role().map_or(0, |r| r.term);
        PbResponseHeader {
            cluster_id: self.cluster_id,
            member_id: self.member_id,
            revision,
            raft_term,
        }
    }

    /// Validates, proposes and waits for the command to be applied; a command the state
    /// machine refused comes back as its gRPC error.
    pub(crate) async fn propose(&self, cmd: Command) -> Result<(Output, i64), Status> {
        txn::validate(&cmd, self.config.max_txn_ops).map_err(status::kv)?;
        let bytes = cmd.encode();
        if bytes.len() > self.config.max_request_bytes {
            return Err(status::kv(KvError::RequestTooLarge));
        }
        let Applied {
            revision, result, ..
        } = if self.journal.is_leader() || self.cluster.is_none() {
            self.journal
                .propose(&bytes)
                .await
                .map_err(status::journal)?
                .1
        } else {
            // Forwarded to the leader; answered once this node applied it too, so a read
            // here right after sees it.
            match peer::ask(self, &peer::Call::Propose(bytes)).await {
                Ok(peer::Reply::Applied { index, applied }) => {
                    self.wait_applied(index).await?;
                    applied
                }
                Ok(peer::Reply::Unavailable(why)) => return Err(Status::unavailable(why)),
                Ok(other) => return Err(Status::internal(format!("unexpected reply {other:?}"))),
                Err(e) => return Err(status::journal(e)),
            }
        };
        result.map(|out| (out, revision)).map_err(status::kv)
    }

    async fn wait_applied(&self, index: u64) -> Result<(), Status> {
        tokio::time::timeout(READ_BARRIER_WAIT, self.journal.wait_applied(index))
            .await
            .map_err(|_| status::journal(strom_broker::BrokerError::Timeout))
    }

    /// The leader's side of a KeepAlive: the granted TTL (its deadline moved), or 0.
    pub(crate) fn keep_alive_local(&self, id: i64) -> i64 {
        let granted = self.machine().store.lease(id).map(|l| l.ttl);
        match granted {
            Some(ttl) => {
                self.lessor.renew(id, ttl);
                ttl
            }
            None => 0,
        }
    }

    /// Seconds left on the leader's clock for a lease.
    pub(crate) fn remaining_local(&self, id: i64) -> Option<i64> {
        self.lessor.remaining(id).map(|d| d.as_secs() as i64)
    }

    /// A linearizable read sees every write acknowledged before it started: it waits until
    /// this node applied the leader's commit index as of now.
    pub(crate) async fn read_barrier(&self) -> Result<(), Status> {
        if self.cluster.is_some() && !self.journal.is_leader() {
            return match peer::ask(self, &peer::Call::ReadIndex).await {
                Ok(peer::Reply::Index(index)) => self.wait_applied(index).await,
                Ok(peer::Reply::Unavailable(why)) => Err(Status::unavailable(why)),
                Ok(other) => Err(Status::internal(format!("unexpected reply {other:?}"))),
                Err(e) => Err(status::journal(e)),
            };
        }
        let index = self.read_index().await?;
        self.wait_applied(index).await
    }

    /// This leader's confirmed read index (a quorum acknowledged it after the call), waiting
    /// for a fresh leader's first commit in its term if need be.
    pub(crate) async fn read_index(&self) -> Result<u64, Status> {
        let deadline = tokio::time::Instant::now() + READ_BARRIER_WAIT;
        loop {
            match self.journal.confirmed_read_index().await {
                Ok(index) => return Ok(index),
                Err(strom_broker::BrokerError::LeaderNotAvailable(_))
                    if tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(e) => return Err(status::journal(e)),
            }
        }
    }
}
