//! The simulated network: every message waits in one queue with a delivery step; the simulator
//! drops, duplicates, delays (and so reorders) them and cuts links during partitions.

use std::sync::Mutex;

use strom_consensus::driver::Outbox;
use strom_consensus::raft::eraftpb::Message;
use strom_consensus::{GroupId, NodeId};

/// A node's outbox only collects: the driver calls `send` while borrowed, and the fault
/// decisions draw from the simulator's RNG, which must be used in a fixed order.
#[derive(Default)]
pub struct SimOutbox {
    sent: Mutex<Vec<(NodeId, GroupId, Message)>>,
}

impl SimOutbox {
    pub fn take(&self) -> Vec<(NodeId, GroupId, Message)> {
        std::mem::take(&mut *self.sent.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Outbox for SimOutbox {
    fn send(&self, to: NodeId, group: GroupId, msg: Message) {
        self.sent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((to, group, msg));
    }
}

pub struct Envelope {
    pub deliver_at: u64,
    /// Send order, to break ties deterministically.
    pub seq: u64,
    pub from: NodeId,
    pub to: NodeId,
    pub group: GroupId,
    /// Encoded as the transport would, so what arrives is what survives the wire format.
    pub bytes: Vec<u8>,
}

#[derive(Default)]
pub struct Network {
    pub queue: Vec<Envelope>,
    seq: u64,
}

impl Network {
    pub fn push(
        &mut self,
        deliver_at: u64,
        from: NodeId,
        to: NodeId,
        group: GroupId,
        bytes: Vec<u8>,
    ) {
        self.seq += 1;
        self.queue.push(Envelope {
            deliver_at,
            seq: self.seq,
            from,
            to,
            group,
            bytes,
        });
    }

    pub fn take(&mut self, i: usize) -> Envelope {
        self.queue.swap_remove(i)
    }
}
