//! SyncGroup, Heartbeat, LeaveGroup and the membership check of OffsetCommit, with Kafka's
//! error precedence: Dead, fenced instance, unknown member, generation, then state.

use std::collections::HashMap;

use tokio::sync::oneshot;

use super::state::{Group, StoreRequest};
use super::types::{GroupError, GroupState, MemberIdentity, Pending, SyncRequest, SyncResponse};

impl Group {
    /// The group still exists and `member_id` is not a fenced static member's stale id.
    fn check_open(&self, member_id: &str, instance_id: Option<&str>) -> Result<(), GroupError> {
        if self.state == GroupState::Dead {
            return Err(GroupError::dead());
        }
        if self.is_fenced(instance_id, member_id) {
            return Err(GroupError::FencedInstanceId);
        }
        Ok(())
    }

    /// Checks that `member_id` of `generation` speaks for the group right now.
    fn check_member(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), GroupError> {
        self.check_open(member_id, instance_id)?;
        if !self.members.contains_key(member_id) {
            return Err(GroupError::UnknownMemberId);
        }
        if generation != self.generation {
            return Err(GroupError::IllegalGeneration);
        }
        Ok(())
    }

    /// Handles one SyncGroup. Followers wait for the leader's assignment; the leader's
    /// SyncGroup makes the group Stable and answers everyone.
    pub fn sync(&mut self, req: SyncRequest, now: u64) -> Pending<SyncResponse> {
        let result = self.sync_inner(req, now);
        self.tick(now);
        result
    }

    fn sync_inner(&mut self, req: SyncRequest, now: u64) -> Pending<SyncResponse> {
        let fail = |e| Pending::Ready(SyncResponse::failed(e));
        if let Err(e) =
            self.check_member(&req.member_id, req.instance_id.as_deref(), req.generation)
        {
            return fail(e);
        }
        let type_differs = req
            .protocol_type
            .as_deref()
            .is_some_and(|t| Some(t) != self.protocol_type.as_deref());
        let name_differs = req
            .protocol_name
            .as_deref()
            .is_some_and(|n| Some(n) != self.protocol.as_deref());
        if type_differs || name_differs {
            return fail(GroupError::InconsistentGroupProtocol);
        }
        if let Some((id, a)) = req
            .assignments
            .iter()
            .find(|(_, a)| a.len() > self.config.member_bytes_max)
        {
            return fail(GroupError::InvalidRequest(format!(
                "assignment of {} bytes for {id} exceeds {} bytes",
                a.len(),
                self.config.member_bytes_max
            )));
        }
        match self.state {
            GroupState::PreparingRebalance => fail(GroupError::RebalanceInProgress),
            GroupState::Empty | GroupState::Dead => fail(GroupError::UnknownMemberId),
            GroupState::Stable => {
                let resp = self.sync_response(&req.member_id);
                if let Some(m) = self.members.get_mut(&req.member_id) {
                    m.last_seen = now;
                }
                Pending::Ready(resp)
            }
            GroupState::CompletingRebalance => {
                let (tx, rx) = oneshot::channel();
                if let Some(m) = self.members.get_mut(&req.member_id) {
                    m.last_seen = now;
                    m.answer_sync(SyncResponse::failed(GroupError::RebalanceInProgress));
                    m.sync_waiter = Some(tx);
                }
                let is_leader = self.leader.as_deref() == Some(req.member_id.as_str());
                if is_leader && self.proposed.is_none() {
                    // Stored before anyone hears of it: see `metadata_record`.
                    self.to_store = Some(StoreRequest::Assignment(
                        self.to_stored(Some(&req.assignments[..])),
                    ));
                    self.proposed = Some(req.assignments);
                }
                Pending::Wait(rx)
            }
        }
    }

    /// The coordinator has written (or failed to write) the assignment of `generation`. Written,
    /// the group turns Stable; failed, the members are told `result`'s error and rejoin, as in
    /// Kafka. An answer for a generation the group has moved past changes nothing.
    pub(crate) fn assignment_stored(
        &mut self,
        generation: i32,
        result: Result<(), GroupError>,
        now: u64,
    ) {
        if self.state != GroupState::CompletingRebalance || self.generation != generation {
            return;
        }
        let Some(assignments) = self.proposed.take() else {
            return;
        };
        match result {
            Ok(()) => self.assign(assignments, now),
            Err(err) => {
                tracing::warn!(group = %self.id, generation, "could not store the assignment: {err}");
                for m in self.members.values_mut() {
                    if m.sync_waiter.is_some() {
                        m.last_seen = now;
                        m.answer_sync(SyncResponse::failed(err.clone()));
                    }
                }
                self.prepare_rebalance(now);
            }
        }
        self.tick(now);
    }

    /// The leader's assignment: stored per member (unknown member ids ignored, members the
    /// leader left out get an empty one), the group turns Stable, waiting members are answered.
    fn assign(&mut self, assignments: Vec<(String, bytes::Bytes)>, now: u64) {
        let mut by_member: HashMap<String, bytes::Bytes> = assignments.into_iter().collect();
        for m in self.members.values_mut() {
            m.assignment = by_member.remove(&m.id).unwrap_or_default();
        }
        self.state = GroupState::Stable;
        tracing::info!(group = %self.id, generation = self.generation, "group is stable");
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let resp = self.sync_response(&id);
            // Members that waited on us have their session run from the answer.
            if let Some(m) = self
                .members
                .get_mut(&id)
                .filter(|m| m.sync_waiter.is_some())
            {
                m.last_seen = now;
                m.answer_sync(resp);
            }
        }
    }

    fn sync_response(&self, id: &str) -> SyncResponse {
        SyncResponse {
            error: None,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol.clone(),
            assignment: self
                .members
                .get(id)
                .map(|m| m.assignment.clone())
                .unwrap_or_default(),
        }
    }

    /// Heartbeat: keeps the member's session alive; REBALANCE_IN_PROGRESS tells it to rejoin.
    pub fn heartbeat(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: u64,
    ) -> Result<(), GroupError> {
        self.check_member(member_id, instance_id, generation)?;
        if let Some(m) = self.members.get_mut(member_id) {
            m.last_seen = now;
        }
        let result = match self.state {
            GroupState::Stable | GroupState::CompletingRebalance => Ok(()),
            GroupState::PreparingRebalance => Err(GroupError::RebalanceInProgress),
            GroupState::Empty | GroupState::Dead => Err(GroupError::UnknownMemberId),
        };
        self.tick(now);
        result
    }

    /// LeaveGroup for each member named; the outer error is for the whole group.
    pub fn leave(
        &mut self,
        members: &[MemberIdentity],
        now: u64,
    ) -> Result<Vec<Result<(), GroupError>>, GroupError> {
        if self.state == GroupState::Dead {
            return Err(GroupError::dead());
        }
        let results = members.iter().map(|m| self.leave_one(m, now)).collect();
        self.tick(now);
        Ok(results)
    }

    fn leave_one(&mut self, who: &MemberIdentity, now: u64) -> Result<(), GroupError> {
        let instance = who.instance_id.as_deref();
        let id = if who.member_id.is_empty() {
            // A static member may leave by instance id alone (KIP-345 admin removal).
            instance
                .and_then(|i| self.static_members.get(i).cloned())
                .ok_or(GroupError::UnknownMemberId)?
        } else {
            if self.is_fenced(instance, &who.member_id) {
                return Err(GroupError::FencedInstanceId);
            }
            who.member_id.clone()
        };
        if self.pending.remove(&id).is_some() {
            return Ok(());
        }
        if !self.members.contains_key(&id) {
            return Err(GroupError::UnknownMemberId);
        }
        tracing::info!(group = %self.id, member = %id, "member left");
        self.remove_member(&id, now);
        Ok(())
    }

    /// May this member commit offsets now? Counts as a heartbeat. Generation -1 with the group
    /// Empty is a consumer that assigns partitions itself (`assign()`), which Kafka allows.
    pub fn check_commit(
        &mut self,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
        now: u64,
    ) -> Result<(), GroupError> {
        self.check_open(member_id, instance_id)?;
        if generation < 0 && self.state == GroupState::Empty {
            return Ok(());
        }
        self.check_member(member_id, instance_id, generation)?;
        match self.state {
            // A commit during PreparingRebalance is fine: the member still owns its partitions
            // until it rejoins (and must commit before it does, for eager assignors).
            GroupState::Stable | GroupState::PreparingRebalance => {
                if let Some(m) = self.members.get_mut(member_id) {
                    m.last_seen = now;
                }
                Ok(())
            }
            GroupState::CompletingRebalance => Err(GroupError::RebalanceInProgress),
            GroupState::Empty | GroupState::Dead => Err(GroupError::UnknownMemberId),
        }
    }
}
