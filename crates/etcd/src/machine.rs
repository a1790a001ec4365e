//! The key-value store as a journal state machine.

use strom_broker::journal::StateMachine;
use strom_kv::{Applied, Command, KvError, Limits, Store};

pub struct KvMachine {
    pub store: Store,
}

impl KvMachine {
    pub fn new(limits: Limits) -> KvMachine {
        KvMachine {
            store: Store::new(limits),
        }
    }
}

impl StateMachine for KvMachine {
    type Output = Applied;
    type Frozen = Store;

    fn apply(&mut self, index: u64, command: &[u8]) -> Applied {
        match Command::decode(command) {
            Ok(cmd) => self.store.apply(index, &cmd),
            Err(e) => {
                // Still counts as applied: every replica skips the same entry.
                tracing::error!(index, "undecodable key-value command: {e}");
                self.store.skip(index);
                Applied {
                    revision: self.store.revision(),
                    result: Err(KvError::Corrupt(e.to_string())),
                    changed: false,
                }
            }
        }
    }

    fn applied(&self) -> u64 {
        self.store.applied()
    }

    fn freeze(&self) -> Store {
        self.store.clone()
    }

    fn encode(frozen: Store, out: &mut dyn std::io::Write) -> std::io::Result<()> {
        frozen.write_snapshot(out)
    }

    fn restore(&mut self, snapshot: &[u8]) -> Result<(), String> {
        self.store.restore(snapshot).map_err(|e| e.to_string())
    }
}
