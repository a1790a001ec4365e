//! What a group shows: to joining members (the member list, the chosen protocol) and to
//! admins (DescribeGroups, OffsetDelete's subscription check).

use std::collections::HashMap;

use bytes::Bytes;

use super::member::Member;
use super::state::Group;
use super::types::{GroupDescription, GroupState, JoinResponse, JoinedMember, MemberDescription};

impl Group {
    /// Each member's metadata for the chosen protocol (or its first one before any is chosen).
    pub fn member_metadata(&self) -> Vec<Bytes> {
        self.members
            .values()
            .filter_map(|m| match &self.protocol {
                Some(p) => m.metadata_for(p).cloned(),
                None => m.protocols.first().map(|p| p.metadata.clone()),
            })
            .collect()
    }

    pub fn describe(&self) -> GroupDescription {
        let stable = self.state == GroupState::Stable;
        let protocol = self.protocol.clone().filter(|_| stable).unwrap_or_default();
        let mut members: Vec<&Member> = self.members.values().collect();
        members.sort_by_key(|m| m.seq);
        GroupDescription {
            group_id: self.id.clone(),
            state: self.state,
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            members: members
                .into_iter()
                .map(|m| MemberDescription {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: if stable {
                        m.metadata_for(&protocol).cloned().unwrap_or_default()
                    } else {
                        Bytes::new()
                    },
                    assignment: if stable {
                        m.assignment.clone()
                    } else {
                        Bytes::new()
                    },
                })
                .collect(),
            protocol,
        }
    }

    /// Every member with its metadata for the chosen protocol, in join order.
    pub(super) fn member_list(&self) -> Vec<JoinedMember> {
        let protocol = self.protocol.clone().unwrap_or_default();
        let mut members: Vec<&Member> = self.members.values().collect();
        members.sort_by_key(|m| m.seq);
        members
            .into_iter()
            .map(|m| JoinedMember {
                member_id: m.id.clone(),
                instance_id: m.instance_id.clone(),
                metadata: m.metadata_for(&protocol).cloned().unwrap_or_default(),
            })
            .collect()
    }

    /// The current generation as member `id` sees it.
    pub(super) fn join_response(
        &self,
        id: &str,
        member_list: &[JoinedMember],
        skip_assignment: bool,
    ) -> JoinResponse {
        let leader = self.leader.clone().unwrap_or_default();
        JoinResponse {
            error: None,
            generation: self.generation,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            members: if leader == id {
                member_list.to_vec()
            } else {
                Vec::new()
            },
            leader,
            member_id: id.to_string(),
            skip_assignment,
        }
    }

    /// Kafka's choice: among the protocols every member supports, each member votes for the
    /// first in its own preference order; most votes wins, ties go to the leader's preference.
    pub(super) fn select_protocol(&self) -> Option<String> {
        let leader = self
            .leader
            .as_ref()
            .and_then(|l| self.members.get(l))
            .or_else(|| self.members.values().next())?;
        let candidates: Vec<&str> = leader
            .protocols
            .iter()
            .map(|p| p.name.as_str())
            .filter(|name| self.members.values().all(|m| m.supports(name)))
            .collect();
        let mut votes: HashMap<&str, usize> = HashMap::new();
        for m in self.members.values() {
            if let Some(choice) = m
                .protocols
                .iter()
                .map(|p| p.name.as_str())
                .find(|n| candidates.contains(n))
            {
                *votes.entry(choice).or_default() += 1;
            }
        }
        let best = candidates
            .iter()
            .map(|c| votes.get(c).copied().unwrap_or(0))
            .max()?;
        candidates
            .into_iter()
            .find(|c| votes.get(c).copied().unwrap_or(0) == best)
            .map(str::to_string)
    }
}

/// The partitions in a member's assignment: Kafka's ConsumerProtocolAssignment, big-endian:
/// `version i16, [topic string(i16 len), [partition i32] (i32 count)] (i32 count), user_data`.
/// Malformed bytes yield what was parsed so far; for display only
/// (the CLI, the admin API).
pub fn consumer_assignment(bytes: &[u8]) -> Vec<(String, i32)> {
    let mut out = Vec::new();
    let mut r = bytes;
    let mut take = |n: usize| -> Option<&[u8]> {
        let (a, b) = (r.get(..n)?, r.get(n..)?);
        r = b;
        Some(a)
    };
    let _ = (|| -> Option<()> {
        take(2)?;
        let topics = i32::from_be_bytes(take(4)?.try_into().ok()?);
        for _ in 0..topics.max(0) {
            let len = i16::from_be_bytes(take(2)?.try_into().ok()?);
            let name = String::from_utf8_lossy(take(usize::try_from(len).ok()?)?).into_owned();
            let count = i32::from_be_bytes(take(4)?.try_into().ok()?);
            for _ in 0..count.max(0) {
                out.push((name.clone(), i32::from_be_bytes(take(4)?.try_into().ok()?)));
            }
        }
        Some(())
    })();
    out
}

#[cfg(test)]
mod assignment_tests {
    use super::*;

    #[test]
    fn assignment_bytes() {
        let mut b = vec![
            0, 1, 0, 0, 0, 1, 0, 2, b'o', b'k', 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 5,
        ];
        assert_eq!(
            consumer_assignment(&b),
            vec![("ok".to_string(), 3), ("ok".to_string(), 5)]
        );
        b.truncate(15);
        assert_eq!(consumer_assignment(&b), Vec::<(String, i32)>::new());
        assert!(consumer_assignment(&[0, 0, 0x7f, 0xff, 0xff, 0xff]).is_empty());
    }
}
