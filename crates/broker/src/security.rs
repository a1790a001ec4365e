//! Where the security state ([`strom_auth::SecurityState`]) lives: in the controller's state
//! in a cluster (every node applies it with the rest of the metadata), in a journal of one on
//! a single node. Front ends read and change it only through [`Security`].

use std::sync::{Arc, Weak};
use std::time::Duration;

use strom_auth::{Command, SecurityState};

use crate::cluster::Cluster;
use crate::journal::{Journal, JournalSpec, NoPeers, StateMachine};
use crate::{Broker, BrokerError};

/// The single-node journal's Raft group id (beside the key-value store's `u64::MAX - 1`).
pub const SECURITY_GROUP: u64 = u64::MAX - 2;
/// A forwarded change is visible on this node within this long, or the call fails.
const VISIBLE_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Security {
    inner: Inner,
}

enum Inner {
    Single(Arc<Journal<SecurityMachine>>),
    Cluster(Weak<Cluster>),
}

impl Security {
    /// A single node's security journal; returns once it has applied its log.
    pub async fn open_single(broker: &Arc<Broker>) -> Result<Arc<Security>, BrokerError> {
        let journal = Journal::open(
            broker,
            JournalSpec {
                name: "security".into(),
                group: SECURITY_GROUP,
                node: 1,
                voters: vec![1],
                driver: Default::default(),
                outbox: Arc::new(NoPeers),
                snapshot_every: 10_000,
                compact: true,
                source: None,
                tick: Some(Duration::from_millis(100)),
                propose_timeout: Duration::from_secs(7),
            },
            SecurityMachine::default(),
        )?;
        journal.wait_ready(Duration::from_secs(30)).await?;
        Ok(Arc::new(Security {
            inner: Inner::Single(journal),
        }))
    }

    pub fn cluster(cluster: &Arc<Cluster>) -> Arc<Security> {
        Arc::new(Security {
            inner: Inner::Cluster(Arc::downgrade(cluster)),
        })
    }

    /// Runs `f` on the applied state. Brief: appliers wait for the lock.
    pub fn read<R>(&self, f: impl FnOnce(&SecurityState) -> R) -> R {
        match &self.inner {
            Inner::Single(j) => f(&j.read().state),
            Inner::Cluster(c) => match c.upgrade() {
                Some(c) => c.with_state(|s| f(&s.security)),
                None => f(&SecurityState::default()),
            },
        }
    }

    /// Commits `cmd` and returns once this node has applied it (read-your-writes).
    pub async fn propose(&self, cmd: Command) -> Result<(), BrokerError> {
        match &self.inner {
            Inner::Single(j) => {
                let bytes = serde_json::to_vec(&cmd)
                    .map_err(|e| BrokerError::InvalidConfig(e.to_string()))?;
                j.propose(&bytes).await.map(|_| ())
            }
            Inner::Cluster(c) => {
                let c = c.upgrade().ok_or(BrokerError::NotLeader)?;
                c.propose(crate::cluster::Command::Security(cmd.clone()))
                    .await?;
                if c.wait_for_state(VISIBLE_TIMEOUT, |s| s.security.reflects(&cmd))
                    .await
                {
                    Ok(())
                } else {
                    Err(BrokerError::LeaderNotAvailable(
                        "the change committed but this node has not applied it yet".into(),
                    ))
                }
            }
        }
    }
}

#[derive(Default)]
struct SecurityMachine {
    state: SecurityState,
    index: u64,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Snapshot {
    index: u64,
    state: SecurityState,
}

impl StateMachine for SecurityMachine {
    type Output = ();
    type Frozen = Snapshot;

    fn apply(&mut self, index: u64, command: &[u8]) {
        self.index = index;
        match serde_json::from_slice::<Command>(command) {
            Ok(cmd) => self.state.apply(&cmd),
            Err(e) => tracing::error!(index, "undecodable security command: {e}"),
        }
    }

    fn applied(&self) -> u64 {
        self.index
    }

    fn freeze(&self) -> Snapshot {
        Snapshot {
            index: self.index,
            state: self.state.clone(),
        }
    }

    fn encode(frozen: Snapshot, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        serde_json::to_writer(out, &frozen).map_err(std::io::Error::other)
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), String> {
        let s: Snapshot = serde_json::from_slice(snapshot).map_err(|e| e.to_string())?;
        self.index = s.index;
        self.state = s.state;
        Ok(())
    }
}
