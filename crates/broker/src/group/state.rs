//! The classic group state machine, pure logic: no I/O, no runtime, time passed in as `now`
//! (milliseconds on the coordinator's monotonic clock). Answers to waiting members go through
//! oneshot channels, which work without a runtime, so unit tests drive it directly.
//!
//! ```text
//!            join                      all joined / timeout          leader's SyncGroup
//!  Empty ───────────▶ PreparingRebalance ─────────────▶ CompletingRebalance ─────────▶ Stable
//!    ▲                  ▲    │ nobody left                  │ member joins/leaves/     │
//!    └──────────────────┼────┘                              │ expires                  │
//!                       └───────────────────────────────────┴──────────────────────────┘
//!  any state ──(DeleteGroups on Empty, offsets expired)──▶ Dead
//! ```
//!
//! Join handling lives in `join.rs`; SyncGroup, Heartbeat, LeaveGroup and commit checks in
//! `membership.rs`.

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;

use super::member::Member;
use super::metadata_record::StoredGroup;
use super::types::{GroupError, GroupState, SyncResponse};

/// Limits and timings of one group, from the broker configuration.
#[derive(Debug, Clone, Copy)]
pub struct GroupConfig {
    /// `group.initial.rebalance.delay.ms`: how long the first join into an Empty group waits for more members.
    pub initial_rebalance_delay_ms: u64,
    /// `group.min.session.timeout.ms` / `group.max.session.timeout.ms`.
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    /// `group.max.size`: members plus members that were given an id and have yet to rejoin.
    pub max_members: usize,
    /// Largest protocol metadata (all protocols together) or assignment of one member.
    pub member_bytes_max: usize,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            initial_rebalance_delay_ms: 3000,
            min_session_timeout_ms: 6000,
            max_session_timeout_ms: 1_800_000,
            max_members: 1000,
            member_bytes_max: 1 << 20,
        }
    }
}

/// The first rebalance of an Empty group keeps waiting while members keep arriving
/// (Kafka's InitialDelayedJoin), up to the rebalance timeout.
#[derive(Debug, Clone, Copy)]
pub(super) struct InitialDelay {
    pub remaining_ms: u64,
    pub new_member_added: bool,
}

/// A record the coordinator must write for the group (see `metadata_record`).
#[derive(Debug)]
pub(crate) enum StoreRequest {
    /// The leader's assignment: the members are answered once it is durable, through
    /// [`Group::assignment_stored`].
    Assignment(StoredGroup),
    /// A static member took over its instance's place in a Stable group: its JoinGroup is
    /// answered once this is durable, through [`Group::replacement_stored`]. Unstored, a new
    /// coordinator would fence the live incarnation for good (FENCED_INSTANCE_ID is fatal).
    Replacement(StoredGroup),
    /// The group turned Empty; nobody waits for it.
    Empty(StoredGroup),
}

pub struct Group {
    pub(super) id: String,
    pub(super) config: GroupConfig,
    pub(super) state: GroupState,
    pub(super) generation: i32,
    pub(super) protocol_type: Option<String>,
    pub(super) protocol: Option<String>,
    pub(super) leader: Option<String>,
    pub(super) members: BTreeMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, with the deadline to rejoin by.
    pub(super) pending: BTreeMap<String, u64>,
    /// group.instance.id → current member id.
    pub(super) static_members: HashMap<String, String>,
    /// When PreparingRebalance completes even if not everyone rejoined.
    pub(super) join_deadline: Option<u64>,
    pub(super) initial: Option<InitialDelay>,
    pub(super) next_seq: u64,
    /// The leader's assignment for this generation while it is being stored.
    pub(super) proposed: Option<Vec<(String, Bytes)>>,
    /// What the coordinator is to write next.
    pub(super) to_store: Option<StoreRequest>,
    /// A static member's replacement while it is being stored.
    pub(super) replacement: Option<Replacement>,
}

/// A static member given a new member id in a Stable group, not yet stored.
pub(super) struct Replacement {
    pub generation: i32,
    pub instance: String,
    pub old_id: String,
    pub new_id: String,
}

impl Group {
    pub fn new(id: &str, config: GroupConfig) -> Group {
        Group {
            id: id.to_string(),
            config,
            state: GroupState::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            pending: BTreeMap::new(),
            static_members: HashMap::new(),
            join_deadline: None,
            initial: None,
            next_seq: 0,
            proposed: None,
            to_store: None,
            replacement: None,
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn state(&self) -> GroupState {
        self.state
    }

    pub fn generation(&self) -> i32 {
        self.generation
    }

    pub fn protocol_type(&self) -> Option<&str> {
        self.protocol_type.as_deref()
    }

    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    pub fn leader(&self) -> Option<&str> {
        self.leader.as_deref()
    }

    /// The record the coordinator is to write now, if the last operation asked for one.
    pub(crate) fn take_store(&mut self) -> Option<StoreRequest> {
        self.to_store.take()
    }

    pub fn member_count(&self) -> usize {
        self.members.len()
    }

    pub fn has_member(&self, id: &str) -> bool {
        self.members.contains_key(id)
    }

    /// No members and no member about to join: the group may be removed once its offsets are gone.
    pub fn is_idle(&self) -> bool {
        self.state == GroupState::Empty && self.members.is_empty() && self.pending.is_empty()
    }

    /// The earliest time at which [`Group::tick`] has something to do.
    pub fn next_deadline(&self) -> Option<u64> {
        let sessions = self.members.values().filter_map(Member::session_deadline);
        let pending = self.pending.values().copied();
        let join = self
            .join_deadline
            .filter(|_| self.state == GroupState::PreparingRebalance);
        sessions.chain(pending).chain(join).min()
    }

    /// Applies every timeout due at `now`: forgotten pending member ids, expired sessions (which
    /// start a rebalance) and the end of the join phase. Every operation ends with it, and the
    /// coordinator's timer calls it at [`Group::next_deadline`].
    pub fn tick(&mut self, now: u64) {
        if self.state == GroupState::Dead {
            return;
        }
        self.pending.retain(|_, deadline| *deadline > now);
        let expired: Vec<String> = self
            .members
            .values()
            .filter(|m| m.session_deadline().is_some_and(|d| d <= now))
            .map(|m| m.id.clone())
            .collect();
        for id in expired {
            tracing::info!(group = %self.id, member = %id, "member session expired");
            self.remove_member(&id, now);
        }
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        match (self.join_deadline, self.initial) {
            (Some(deadline), Some(init)) if deadline <= now => {
                if init.new_member_added && init.remaining_ms > 0 {
                    let delay = self
                        .config
                        .initial_rebalance_delay_ms
                        .min(init.remaining_ms);
                    self.initial = Some(InitialDelay {
                        remaining_ms: init.remaining_ms - delay,
                        new_member_added: false,
                    });
                    self.join_deadline = Some(now + delay);
                } else {
                    self.complete_join(now);
                }
            }
            // The initial delay waits its full time: more members are probably on their way.
            (_, Some(_)) => {}
            (Some(deadline), None) if deadline <= now => self.complete_join(now),
            (_, None) if self.all_joined() => self.complete_join(now),
            _ => {}
        }
    }

    /// Removes the group's members, failing their waits, so clients look the group up again.
    pub fn mark_dead(&mut self) {
        let err = GroupError::dead();
        for m in self.members.values_mut() {
            m.fail_waiters(&err);
        }
        self.members.clear();
        self.pending.clear();
        self.static_members.clear();
        self.leader = None;
        self.join_deadline = None;
        self.proposed = None;
        self.state = GroupState::Dead;
    }

    pub(super) fn is_full(&self) -> bool {
        self.members.len() + self.pending.len() >= self.config.max_members
    }

    /// A member with this instance id exists under another member id.
    pub(super) fn is_fenced(&self, instance_id: Option<&str>, member_id: &str) -> bool {
        instance_id
            .and_then(|i| self.static_members.get(i))
            .is_some_and(|current| current != member_id)
    }

    /// The largest rebalance timeout among members bounds the join phase.
    pub(super) fn rebalance_timeout(&self) -> u64 {
        self.members
            .values()
            .map(|m| m.rebalance_timeout_ms)
            .max()
            .unwrap_or(0)
    }

    fn all_joined(&self) -> bool {
        self.pending.is_empty() && self.members.values().all(Member::awaiting_join)
    }

    /// Starts (or restarts) the join phase. From CompletingRebalance, the members waiting for
    /// their assignment are told to rejoin.
    pub(super) fn prepare_rebalance(&mut self, now: u64) {
        // An assignment or replacement being stored belongs to the generation this rebalance
        // ends: its answer is dropped, and a record not yet written is not written (the next
        // generation's record names the members).
        self.proposed = None;
        self.replacement = None;
        if matches!(
            self.to_store,
            Some(StoreRequest::Assignment(_) | StoreRequest::Replacement(_))
        ) {
            self.to_store = None;
        }
        if self.state == GroupState::CompletingRebalance {
            for m in self.members.values_mut() {
                m.assignment = Bytes::new();
                if m.sync_waiter.is_some() {
                    // It was waiting on us until now: its session runs from the answer.
                    m.last_seen = now;
                    m.answer_sync(SyncResponse::failed(GroupError::RebalanceInProgress));
                }
            }
        }
        let timeout = self.rebalance_timeout();
        if self.state == GroupState::Empty {
            let delay = self.config.initial_rebalance_delay_ms.min(timeout);
            self.initial = Some(InitialDelay {
                remaining_ms: timeout - delay,
                new_member_added: false,
            });
            self.join_deadline = Some(now + delay);
        } else {
            self.initial = None;
            self.join_deadline = Some(now + timeout);
        }
        tracing::debug!(group = %self.id, from = self.state.name(), "preparing rebalance");
        self.state = GroupState::PreparingRebalance;
    }

    /// Removes a member: it left, expired or was not rejoined. Its waits fail with
    /// UNKNOWN_MEMBER_ID, and a formed generation is broken up by a rebalance.
    pub(super) fn remove_member(&mut self, id: &str, now: u64) {
        let Some(mut m) = self.members.remove(id) else {
            return;
        };
        if let Some(instance) = &m.instance_id {
            if self.static_members.get(instance).map(String::as_str) == Some(id) {
                self.static_members.remove(instance);
            }
        }
        m.fail_waiters(&GroupError::UnknownMemberId);
        if self.leader.as_deref() == Some(id) {
            self.leader = None;
        }
        if matches!(
            self.state,
            GroupState::Stable | GroupState::CompletingRebalance
        ) {
            self.prepare_rebalance(now);
        }
    }

    /// Ends the join phase: drops dynamic members that did not rejoin, forms the next
    /// generation and answers every waiting join (the leader gets all members' metadata).
    pub(super) fn complete_join(&mut self, now: u64) {
        let gone: Vec<String> = self
            .members
            .values()
            // A static member that did not rejoin keeps its place: it may come back (a restart)
            // without a rebalance. Its session timeout removes it if it does not.
            .filter(|m| !m.awaiting_join() && m.instance_id.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in &gone {
            tracing::info!(group = %self.id, member = %id, "member did not rejoin in time");
            if let Some(mut m) = self.members.remove(id) {
                m.fail_waiters(&GroupError::UnknownMemberId);
            }
            if self.leader.as_deref() == Some(id.as_str()) {
                self.leader = None;
            }
        }
        self.initial = None;
        self.join_deadline = None;
        if self.members.is_empty() {
            self.generation += 1;
            self.protocol = None;
            self.leader = None;
            self.state = GroupState::Empty;
            // A new coordinator must not bring back the members of the last generation.
            self.to_store = Some(StoreRequest::Empty(self.to_stored(None)));
            return;
        }
        let mut joined: Vec<&Member> = self
            .members
            .values()
            .filter(|m| m.awaiting_join())
            .collect();
        joined.sort_by_key(|m| m.seq);
        let Some(first) = joined.first() else {
            // Only static members that have not rejoined: wait another round for them to come
            // back or for their sessions to expire.
            self.join_deadline = Some(now + self.rebalance_timeout());
            return;
        };
        let leader_joined = self
            .leader
            .as_ref()
            .and_then(|l| self.members.get(l))
            .is_some_and(Member::awaiting_join);
        if !leader_joined {
            self.leader = Some(first.id.clone());
        }
        self.generation += 1;
        strom_metrics::global()
            .group_rebalances
            .get_or_create(&strom_metrics::GroupLabel {
                group: self.id.clone(),
            })
            .inc();
        self.protocol = self.select_protocol();
        self.state = GroupState::CompletingRebalance;
        tracing::info!(group = %self.id, generation = self.generation, members = self.members.len(), protocol = ?self.protocol, "rebalance: join phase complete");
        let member_list = self.member_list();
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let resp = self.join_response(&id, &member_list, false);
            // Static members that did not rejoin keep their old session deadline.
            if let Some(m) = self.members.get_mut(&id).filter(|m| m.awaiting_join()) {
                m.last_seen = now;
                m.answer_join(resp);
            }
        }
    }
}
