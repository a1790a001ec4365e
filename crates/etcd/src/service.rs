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
use crate::{status, EtcdConfig};

/// How long a read waits for a new leader's first commit before it gives up.
const READ_BARRIER_WAIT: Duration = Duration::from_secs(3);

pub struct Etcd {
    journal: Arc<Journal<KvMachine>>,
    config: EtcdConfig,
    member_id: u64,
    cluster_id: u64,
    pub(crate) name: String,
    pub(crate) lessor: Lessor,
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
    pub fn new(
        journal: Arc<Journal<KvMachine>>,
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
            config,
            member_id,
            cluster_id,
            name,
            lessor: Lessor::default(),
        })
    }

    pub fn config(&self) -> &EtcdConfig {
        &self.config
    }

    pub(crate) fn journal(&self) -> &Journal<KvMachine> {
        &self.journal
    }

    pub(crate) fn member_id(&self) -> u64 {
        self.member_id
    }

    pub(crate) fn machine(&self) -> RwLockReadGuard<'_, KvMachine> {
        self.journal.read()
    }

    pub(crate) fn header(&self, revision: i64) -> PbResponseHeader {
        let raft_term = self.journal.raft_status().map(|s| s.role.term).unwrap_or(0);
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
        let (
            _,
            Applied {
                revision, result, ..
            },
        ) = self
            .journal
            .propose(&bytes)
            .await
            .map_err(status::journal)?;
        result.map(|out| (out, revision)).map_err(status::kv)
    }

    /// A linearizable read sees every write acknowledged before it started: it waits until
    /// this node applied the leader's commit index as of now.
    pub(crate) async fn read_barrier(&self) -> Result<(), Status> {
        let deadline = tokio::time::Instant::now() + READ_BARRIER_WAIT;
        let index = loop {
            match self.journal.read_index() {
                Ok(index) => break index,
                Err(strom_broker::BrokerError::LeaderNotAvailable(_))
                    if tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Err(e) => return Err(status::journal(e)),
            }
        };
        tokio::time::timeout(READ_BARRIER_WAIT, self.journal.wait_applied(index))
            .await
            .map_err(|_| status::journal(strom_broker::BrokerError::Timeout))
    }
}
