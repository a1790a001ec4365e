//! A group's membership as a record in `__consumer_offsets`, next to its offsets, so that a
//! coordinator taking over (after a failover, or a restart) continues the group where the old
//! one left it, as Kafka does: members keep heartbeating and committing in their generation
//! instead of all rejoining for a rebalance.
//!
//! Written when the leader's assignment for a generation arrives, and members are told their
//! assignment only once it is durable (in a cluster: committed), so any generation a member
//! knows survives a failover; also when a static member takes its instance's place in a Stable
//! group (answered once durable too, or a new coordinator would fence the live incarnation);
//! when the group turns Empty, so an abandoned group does not come back with members; and a
//! tombstone when the group is deleted. The last record of a group wins on replay.
//!
//! Key (big-endian), version 1: `u8 key version = 1`, `u8 kind = 2`, `u16` group id length and
//! the group id. Value, version 1 (str: `u16` length then UTF-8; opt: `u8` 0 for none, or 1
//! and a str; bytes: `u32` length then the bytes):
//!
//! ```text
//! u8   value version = 1
//! i32  generation
//! opt  protocol type, protocol, leader member id
//! u32  member count, then per member in join order:
//!      str id, opt group instance id, str client id, str client host,
//!      u32 session timeout ms, u32 rebalance timeout ms,
//!      u32 protocol count, then per protocol: str name, bytes metadata
//!      bytes assignment
//! ```
//!
//! Every protocol a member joined with is kept, so a member rejoining unchanged after a
//! takeover is recognised as unchanged (no rebalance).

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::member::Member;
use super::offsets::{put_str16, take_str16, KEY_VERSION};
use super::state::{Group, GroupConfig};
use super::types::{GroupState, Protocol};

pub(crate) const KIND_GROUP: u8 = 2;
const VALUE_VERSION: u8 = 1;

/// A group as stored: what a new coordinator needs to go on serving its generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredGroup {
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub members: Vec<StoredMember>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredMember {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: u32,
    pub rebalance_timeout_ms: u32,
    pub protocols: Vec<Protocol>,
    pub assignment: Bytes,
}

pub(crate) fn encode_key(group: &str) -> Bytes {
    let mut b = BytesMut::with_capacity(4 + group.len());
    b.put_u8(KEY_VERSION);
    b.put_u8(KIND_GROUP);
    put_str16(&mut b, group);
    b.freeze()
}

/// The group id of a membership key; `None` for any other key.
pub(crate) fn decode_key(mut b: &[u8]) -> Option<String> {
    if b.len() < 2 || b.get_u8() != KEY_VERSION || b.get_u8() != KIND_GROUP {
        return None;
    }
    take_str16(&mut b)
}

pub(crate) fn encode_value(g: &StoredGroup) -> Bytes {
    let mut b = BytesMut::new();
    b.put_u8(VALUE_VERSION);
    b.put_i32(g.generation);
    for s in [&g.protocol_type, &g.protocol, &g.leader] {
        put_opt_str16(&mut b, s.as_deref());
    }
    b.put_u32(g.members.len() as u32);
    for m in &g.members {
        put_str16(&mut b, &m.id);
        put_opt_str16(&mut b, m.instance_id.as_deref());
        put_str16(&mut b, &m.client_id);
        put_str16(&mut b, &m.client_host);
        b.put_u32(m.session_timeout_ms);
        b.put_u32(m.rebalance_timeout_ms);
        b.put_u32(m.protocols.len() as u32);
        for p in &m.protocols {
            put_str16(&mut b, &p.name);
            put_bytes32(&mut b, &p.metadata);
        }
        put_bytes32(&mut b, &m.assignment);
    }
    b.freeze()
}

/// The stored group, or `None` for a version this build does not know or a damaged value.
pub(crate) fn decode_value(mut b: &[u8]) -> Option<StoredGroup> {
    if b.len() < 5 || b.get_u8() != VALUE_VERSION {
        return None;
    }
    let generation = b.get_i32();
    let protocol_type = take_opt_str16(&mut b)?;
    let protocol = take_opt_str16(&mut b)?;
    let leader = take_opt_str16(&mut b)?;
    let count = take_u32(&mut b)?;
    let mut members = Vec::new();
    for _ in 0..count {
        members.push(StoredMember {
            id: take_str16(&mut b)?,
            instance_id: take_opt_str16(&mut b)?,
            client_id: take_str16(&mut b)?,
            client_host: take_str16(&mut b)?,
            session_timeout_ms: take_u32(&mut b)?,
            rebalance_timeout_ms: take_u32(&mut b)?,
            protocols: take_protocols(&mut b)?,
            assignment: take_bytes32(&mut b)?,
        });
    }
    Some(StoredGroup {
        generation,
        protocol_type,
        protocol,
        leader,
        members,
    })
}

fn put_bytes32(b: &mut BytesMut, bytes: &[u8]) {
    b.put_u32(bytes.len() as u32);
    b.put_slice(bytes);
}

fn take_u32(b: &mut &[u8]) -> Option<u32> {
    (b.len() >= 4).then(|| b.get_u32())
}

fn put_opt_str16(b: &mut BytesMut, s: Option<&str>) {
    match s {
        None => b.put_u8(0),
        Some(s) => {
            b.put_u8(1);
            put_str16(b, s);
        }
    }
}

fn take_opt_str16(b: &mut &[u8]) -> Option<Option<String>> {
    if b.is_empty() {
        return None;
    }
    match b.get_u8() {
        0 => Some(None),
        1 => take_str16(b).map(Some),
        _ => None,
    }
}

fn take_protocols(b: &mut &[u8]) -> Option<Vec<Protocol>> {
    let count = take_u32(b)?;
    let mut protocols = Vec::new();
    for _ in 0..count {
        protocols.push(Protocol {
            name: take_str16(b)?,
            metadata: take_bytes32(b)?,
        });
    }
    Some(protocols)
}

fn take_bytes32(b: &mut &[u8]) -> Option<Bytes> {
    let len = take_u32(b)? as usize;
    let bytes = Bytes::copy_from_slice(b.get(..len)?);
    b.advance(len);
    Some(bytes)
}

impl Group {
    /// The group as it is to be stored, with `assignments` (member id, assignment) in place of
    /// the members' current ones when given.
    pub(crate) fn to_stored(&self, assignments: Option<&[(String, Bytes)]>) -> StoredGroup {
        let mut members: Vec<&Member> = self.members.values().collect();
        members.sort_by_key(|m| m.seq);
        let members = members
            .into_iter()
            .map(|m| StoredMember {
                id: m.id.clone(),
                instance_id: m.instance_id.clone(),
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                session_timeout_ms: u32::try_from(m.session_timeout_ms).unwrap_or(u32::MAX),
                rebalance_timeout_ms: u32::try_from(m.rebalance_timeout_ms).unwrap_or(u32::MAX),
                protocols: m.protocols.clone(),
                assignment: match assignments {
                    Some(a) => a
                        .iter()
                        .find(|(id, _)| *id == m.id)
                        .map(|(_, a)| a.clone())
                        .unwrap_or_default(),
                    None => m.assignment.clone(),
                },
            })
            .collect();
        StoredGroup {
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            members,
        }
    }

    /// The group a coordinator loads: Stable in the stored generation with the stored members,
    /// whose sessions start now, or Empty when it had none.
    pub(crate) fn restore(id: &str, config: GroupConfig, stored: StoredGroup, now: u64) -> Group {
        let mut g = Group::new(id, config);
        g.generation = stored.generation;
        g.protocol_type = stored.protocol_type;
        let Some(protocol) = stored.protocol.filter(|_| !stored.members.is_empty()) else {
            return g;
        };
        for (seq, m) in stored.members.into_iter().enumerate() {
            if let Some(instance) = &m.instance_id {
                g.static_members.insert(instance.clone(), m.id.clone());
            }
            let member = Member {
                id: m.id.clone(),
                instance_id: m.instance_id,
                client_id: m.client_id,
                client_host: m.client_host,
                session_timeout_ms: u64::from(m.session_timeout_ms),
                rebalance_timeout_ms: u64::from(m.rebalance_timeout_ms),
                protocols: m.protocols,
                assignment: m.assignment,
                last_seen: now,
                seq: seq as u64,
                join_waiter: None,
                sync_waiter: None,
            };
            g.members.insert(m.id, member);
        }
        g.next_seq = g.members.len() as u64;
        g.leader = stored.leader.filter(|l| g.members.contains_key(l));
        g.protocol = Some(protocol);
        g.state = GroupState::Stable;
        g
    }
}
