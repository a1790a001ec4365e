//! The controller as a journal state machine: committed [`Command`]s applied to the
//! [`ClusterState`] every node holds. The state is shared with the node (Metadata, the
//! reconciler read it); applying a command also tells the reconciler and wakes waiters.

use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};

use super::state::{Applied, ClusterState, Command};
use crate::journal::StateMachine;

pub(super) struct ControllerMachine {
    pub state: Arc<RwLock<ClusterState>>,
    pub applied_tx: mpsc::UnboundedSender<Applied>,
    /// Bumped after every applied command; waiters (topic creation) watch it.
    pub version: watch::Sender<u64>,
    pub index: u64,
}

#[derive(Serialize, Deserialize)]
pub(super) struct Frozen {
    index: u64,
    state: ClusterState,
}

impl StateMachine for ControllerMachine {
    type Output = ();
    type Frozen = Frozen;

    fn apply(&mut self, index: u64, command: &[u8]) {
        self.index = index;
        let cmd = match Command::decode(command) {
            Ok(cmd) => cmd,
            Err(e) => {
                tracing::error!(index, "undecodable controller command: {e}");
                return;
            }
        };
        let result = self
            .state
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .apply(&cmd);
        match result {
            Ok(Applied::Nothing) => {}
            Ok(applied) => {
                let _ = self.applied_tx.send(applied);
            }
            Err(err) => tracing::debug!(index, "controller command refused: {err}"),
        }
        self.version.send_modify(|v| *v += 1);
    }

    fn applied(&self) -> u64 {
        self.index
    }

    fn freeze(&self) -> Frozen {
        Frozen {
            index: self.index,
            state: self.state.read().unwrap_or_else(|p| p.into_inner()).clone(),
        }
    }

    fn encode(frozen: Frozen, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        serde_json::to_writer(out, &frozen).map_err(std::io::Error::other)
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), String> {
        let Frozen { index, mut state } =
            serde_json::from_slice(snapshot).map_err(|e| e.to_string())?;
        state.rebuild_index();
        *self.state.write().unwrap_or_else(|p| p.into_inner()) = state;
        self.index = index;
        self.version.send_modify(|v| *v += 1);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::state::NodeInfo;

    fn machine() -> ControllerMachine {
        let (applied_tx, _) = mpsc::unbounded_channel();
        ControllerMachine {
            state: Arc::new(RwLock::new(ClusterState::new("c".into()))),
            applied_tx,
            version: watch::channel(0).0,
            index: 0,
        }
    }

    #[test]
    fn a_snapshot_restores_the_state_and_the_index() {
        let mut m = machine();
        let node = NodeInfo {
            id: 1,
            kafka_host: "127.0.0.1".into(),
            kafka_port: 9092,
            raft_addr: "127.0.0.1:9101".into(),
            registered_ms: 1,
            endpoints: Default::default(),
        };
        m.apply(7, &Command::RegisterNode(node).encode());
        m.apply(8, b"not json");
        assert_eq!(
            m.applied(),
            8,
            "an undecodable entry still counts as applied"
        );
        let mut bytes = Vec::new();
        ControllerMachine::encode(m.freeze(), &mut bytes).unwrap();
        let mut copy = machine();
        copy.restore(&bytes).unwrap();
        assert_eq!(copy.applied(), 8);
        assert_eq!(*copy.state.read().unwrap(), *m.state.read().unwrap());
        assert!(copy.restore(b"garbage").is_err());
    }
}
