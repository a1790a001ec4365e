//! JoinGroup: new members (dynamic with MEMBER_ID_REQUIRED, or static by group.instance.id),
//! known members rejoining, and the protocol checks that come first.

use tokio::sync::oneshot;

use super::member::{protocols_bytes, Member};
use super::state::{Group, InitialDelay, Replacement, StoreRequest};
use super::types::{GroupError, GroupState, JoinRequest, JoinResponse, Pending, Protocol};

impl Group {
    /// Handles one JoinGroup. The answer is usually a wait: it comes when the join phase ends.
    pub fn join(&mut self, req: JoinRequest, now: u64) -> Pending<JoinResponse> {
        let result = self.join_inner(req, now);
        self.tick(now);
        result
    }

    fn join_inner(&mut self, req: JoinRequest, now: u64) -> Pending<JoinResponse> {
        let fail = |e: GroupError| Pending::Ready(JoinResponse::failed(e, req.member_id.clone()));
        if self.state == GroupState::Dead {
            return fail(GroupError::dead());
        }
        let timeouts = self.config.min_session_timeout_ms..=self.config.max_session_timeout_ms;
        if !timeouts.contains(&req.session_timeout_ms) {
            return fail(GroupError::InvalidSessionTimeout(req.session_timeout_ms));
        }
        let bytes = protocols_bytes(&req.protocols);
        if bytes > self.config.member_bytes_max {
            return fail(GroupError::InvalidRequest(format!(
                "member metadata of {bytes} bytes exceeds {} bytes",
                self.config.member_bytes_max
            )));
        }
        if !self.supports(&req.protocol_type, &req.protocols) {
            return fail(GroupError::InconsistentGroupProtocol);
        }
        if req.member_id.is_empty() {
            self.join_new(req, now)
        } else {
            self.join_known(req, now)
        }
    }

    /// Kafka's rule: an Empty group takes any non-empty protocol list; otherwise the protocol
    /// type must match and at least one offered protocol must be supported by every member.
    fn supports(&self, protocol_type: &str, protocols: &[Protocol]) -> bool {
        if protocol_type.is_empty() || protocols.is_empty() {
            return false;
        }
        if self.members.is_empty() {
            return true;
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && protocols
                .iter()
                .any(|p| self.members.values().all(|m| m.supports(&p.name)))
    }

    fn join_new(&mut self, req: JoinRequest, now: u64) -> Pending<JoinResponse> {
        if let Some(instance) = req.instance_id.clone() {
            if let Some(old_id) = self.static_members.get(&instance).cloned() {
                return self.rejoin_static(&old_id, &instance, req, now);
            }
            if self.is_full() {
                return Pending::Ready(JoinResponse::failed(
                    GroupError::GroupMaxSizeReached,
                    String::new(),
                ));
            }
            // A static member needs no MEMBER_ID_REQUIRED round trip: its instance id already
            // identifies it across restarts.
            let id = new_member_id(&instance);
            return self.add_and_rebalance(id, req, now);
        }
        if self.is_full() {
            return Pending::Ready(JoinResponse::failed(
                GroupError::GroupMaxSizeReached,
                String::new(),
            ));
        }
        let id = new_member_id(&req.client_id);
        if req.require_known_member_id {
            // KIP-394: the member must come back with this id, so a client that retries a join
            // whose answer it lost does not leave an orphan member behind.
            let session = u64::try_from(req.session_timeout_ms).unwrap_or(0);
            self.pending.insert(id.clone(), now + session);
            return Pending::Ready(JoinResponse::failed(GroupError::MemberIdRequired, id));
        }
        self.add_and_rebalance(id, req, now)
    }

    fn join_known(&mut self, req: JoinRequest, now: u64) -> Pending<JoinResponse> {
        let id = req.member_id.clone();
        if self.is_fenced(req.instance_id.as_deref(), &id) {
            return Pending::Ready(JoinResponse::failed(GroupError::FencedInstanceId, id));
        }
        if self.pending.remove(&id).is_some() {
            return self.add_and_rebalance(id, req, now);
        }
        let Some(member) = self.members.get(&id) else {
            return Pending::Ready(JoinResponse::failed(GroupError::UnknownMemberId, id));
        };
        let unchanged = member.protocols == req.protocols;
        match self.state {
            GroupState::PreparingRebalance => self.update_and_rebalance(&id, &req, now),
            // A member that lost its join answer asks again: same generation, no new rebalance.
            GroupState::CompletingRebalance if unchanged => {
                self.current_generation(&id, now, false)
            }
            GroupState::Stable if unchanged && self.leader.as_deref() != Some(id.as_str()) => {
                self.current_generation(&id, now, false)
            }
            // New metadata, or the leader rejoining (it saw metadata change): a new generation.
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.update_and_rebalance(&id, &req, now)
            }
            GroupState::Empty | GroupState::Dead => {
                Pending::Ready(JoinResponse::failed(GroupError::UnknownMemberId, id))
            }
        }
    }

    /// A static member restarted (empty member id, known instance id): the new incarnation gets
    /// a new member id and takes over the old one's place; the old one is fenced. Unchanged
    /// metadata in a Stable group means no rebalance at all.
    fn rejoin_static(
        &mut self,
        old_id: &str,
        instance: &str,
        req: JoinRequest,
        now: u64,
    ) -> Pending<JoinResponse> {
        let Some(mut member) = self.members.remove(old_id) else {
            self.static_members.remove(instance);
            return Pending::Ready(JoinResponse::failed(
                GroupError::UnknownMemberId,
                String::new(),
            ));
        };
        member.fail_waiters(&GroupError::FencedInstanceId);
        let new_id = new_member_id(instance);
        let unchanged = member.protocols == req.protocols;
        member.id = new_id.clone();
        if self.leader.as_deref() == Some(old_id) {
            self.leader = Some(new_id.clone());
        }
        self.static_members
            .insert(instance.to_string(), new_id.clone());
        self.members.insert(new_id.clone(), member);
        tracing::info!(group = %self.id, instance, old = old_id, new = %new_id, "static member replaced");
        if self.state == GroupState::Stable && unchanged {
            // Answered once the new id is stored (`replacement_stored`).
            let (tx, rx) = oneshot::channel();
            if let Some(m) = self.members.get_mut(&new_id) {
                m.update(&req, now);
                m.join_waiter = Some(tx);
            }
            self.replacement = Some(Replacement {
                generation: self.generation,
                instance: instance.to_string(),
                old_id: old_id.to_string(),
                new_id,
            });
            self.to_store = Some(StoreRequest::Replacement(self.to_stored(None)));
            return Pending::Wait(rx);
        }
        self.update_and_rebalance(&new_id, &req, now)
    }

    /// The coordinator has written (or failed to write) a static member's replacement. Written,
    /// the new incarnation gets the current generation (the leader with its member list but
    /// told not to reassign, KIP-814); failed, the old member id is restored and the join gets
    /// the error, as in Kafka. After a rebalance began, the rebalance answers the join.
    pub(crate) fn replacement_stored(
        &mut self,
        generation: i32,
        result: Result<(), GroupError>,
        now: u64,
    ) {
        let Some(r) = self.replacement.take() else {
            return;
        };
        if r.generation != generation || self.state != GroupState::Stable {
            return;
        }
        match result {
            Ok(()) => {
                let leader = self.leader.as_deref() == Some(r.new_id.as_str());
                let members = self.member_list();
                let resp = self.join_response(&r.new_id, &members, leader);
                if let Some(m) = self.members.get_mut(&r.new_id) {
                    m.last_seen = now;
                    m.answer_join(resp);
                }
            }
            Err(err) => {
                tracing::warn!(group = %self.id, instance = %r.instance, "could not store a static member's new id: {err}");
                if let Some(mut m) = self.members.remove(&r.new_id) {
                    m.answer_join(JoinResponse::failed(err, r.new_id.clone()));
                    m.id = r.old_id.clone();
                    self.members.insert(r.old_id.clone(), m);
                }
                if self.leader.as_deref() == Some(r.new_id.as_str()) {
                    self.leader = Some(r.old_id.clone());
                }
                self.static_members.insert(r.instance, r.old_id);
            }
        }
        self.tick(now);
    }

    /// The current generation, answered at once (member rejoined without changes).
    fn current_generation(&mut self, id: &str, now: u64, skip: bool) -> Pending<JoinResponse> {
        if let Some(m) = self.members.get_mut(id) {
            m.last_seen = now;
        }
        let members = self.member_list();
        Pending::Ready(self.join_response(id, &members, skip))
    }

    /// A known member (re)joins with possibly new metadata and waits for the join phase to end.
    fn update_and_rebalance(
        &mut self,
        id: &str,
        req: &JoinRequest,
        now: u64,
    ) -> Pending<JoinResponse> {
        let (tx, rx) = oneshot::channel();
        let Some(m) = self.members.get_mut(id) else {
            return Pending::Ready(JoinResponse::failed(
                GroupError::UnknownMemberId,
                id.to_string(),
            ));
        };
        m.update(req, now);
        // A second join before the first was answered: the first gets told to retry.
        m.answer_join(JoinResponse::failed(
            GroupError::RebalanceInProgress,
            id.to_string(),
        ));
        m.join_waiter = Some(tx);
        if self.state != GroupState::PreparingRebalance {
            self.prepare_rebalance(now);
        }
        Pending::Wait(rx)
    }

    /// A new member joins and waits for the join phase to end; joining starts one if needed.
    fn add_and_rebalance(
        &mut self,
        id: String,
        req: JoinRequest,
        now: u64,
    ) -> Pending<JoinResponse> {
        let (tx, rx) = oneshot::channel();
        let mut member = Member::new(id.clone(), &req, now, self.next_seq);
        self.next_seq += 1;
        member.join_waiter = Some(tx);
        if self.members.is_empty() {
            self.protocol_type = Some(req.protocol_type.clone());
        }
        if self.leader.is_none() {
            self.leader = Some(id.clone());
        }
        if let Some(instance) = &req.instance_id {
            self.static_members.insert(instance.clone(), id.clone());
        }
        self.members.insert(id, member);
        match self.state {
            GroupState::PreparingRebalance => {
                if let Some(init) = self.initial {
                    self.initial = Some(InitialDelay {
                        new_member_added: true,
                        ..init
                    });
                }
            }
            GroupState::Empty | GroupState::CompletingRebalance | GroupState::Stable => {
                self.prepare_rebalance(now)
            }
            GroupState::Dead => {}
        }
        Pending::Wait(rx)
    }
}

/// Kafka's member id shape: the client id (or instance id) and a UUID.
fn new_member_id(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4())
}
