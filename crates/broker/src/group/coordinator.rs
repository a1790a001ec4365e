//! The coordinator: every group of this node, each behind its own lock, and the timer task
//! that enforces their deadlines. Offsets and their log live in `store.rs`.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use super::offsets::OffsetCache;
use super::state::{Group, GroupConfig, StoreRequest};
use super::types::{
    GroupDescription, GroupError, GroupListing, GroupState, JoinRequest, JoinResponse,
    MemberIdentity, Pending, SyncRequest, SyncResponse,
};
use crate::Broker;

/// The timer wakes at least this often, so a missed wake-up costs at most this much delay.
const TICK_MAX: Duration = Duration::from_secs(1);
/// How often idle groups are removed and old offsets expired (Kafka's
/// `offsets.retention.check.interval.ms`, shorter because a check is cheap here).
const EXPIRY_INTERVAL_MS: i64 = 60_000;

#[derive(Debug, Clone, Copy)]
pub struct CoordinatorConfig {
    pub group: GroupConfig,
    /// `offsets.retention.minutes` in ms: offsets of a group Empty this long are deleted.
    pub offsets_retention_ms: i64,
    /// Groups held in memory at most; a new group beyond it is refused.
    pub max_groups: usize,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        CoordinatorConfig {
            group: GroupConfig::default(),
            offsets_retention_ms: 7 * 24 * 3600 * 1000,
            max_groups: 100_000,
        }
    }
}

/// A group and its offsets, under one lock: a commit's membership check and its append are
/// atomic with respect to joins, leaves and deletion of the same group.
pub(crate) struct GroupEntry {
    pub group: Group,
    pub offsets: OffsetCache,
    /// Transactional commits (TxnOffsetCommit) by producer id, in log order: applied when the
    /// producer's commit marker reaches the offsets partition, dropped at its abort marker.
    pub txn_offsets: BTreeMap<i64, Vec<(super::offsets::TopicPartition, super::CommittedOffset)>>,
    /// Wall-clock ms when the group last became Empty; 0 when unknown (rebuilt from the log).
    pub empty_since_ms: i64,
    was_empty: bool,
}

impl GroupEntry {
    pub fn new(group: Group, now_ms: i64) -> GroupEntry {
        GroupEntry {
            group,
            offsets: OffsetCache::default(),
            txn_offsets: BTreeMap::new(),
            empty_since_ms: now_ms,
            was_empty: true,
        }
    }

    /// Notes when the group turns Empty, for offset expiry.
    fn observe(&mut self, now_ms: i64) {
        let empty = self.group.state() == GroupState::Empty;
        if empty && !self.was_empty {
            self.empty_since_ms = now_ms;
        }
        self.was_empty = empty;
    }
}

pub(crate) type EntryRef = Arc<Mutex<GroupEntry>>;

pub struct Coordinator {
    pub(crate) config: CoordinatorConfig,
    pub(crate) groups: RwLock<HashMap<String, EntryRef>>,
    /// Cluster mode only: the offsets partitions this node leads (see `ownership.rs`).
    pub(crate) owned: RwLock<Option<HashMap<usize, super::ownership::Owned>>>,
    /// The groups' monotonic clock starts here.
    clock: Instant,
    wake: Arc<Notify>,
    driver_started: AtomicBool,
}

impl Coordinator {
    pub fn new(config: CoordinatorConfig) -> Coordinator {
        Coordinator {
            config,
            groups: RwLock::new(HashMap::new()),
            owned: RwLock::new(None),
            clock: Instant::now(),
            wake: Arc::new(Notify::new()),
            driver_started: AtomicBool::new(false),
        }
    }

    /// Milliseconds on the coordinator's monotonic clock (group deadlines use it).
    pub fn now(&self) -> u64 {
        self.clock.elapsed().as_millis() as u64
    }

    pub(crate) fn entry(&self, group_id: &str) -> Option<EntryRef> {
        self.groups
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(group_id)
            .cloned()
    }

    pub(crate) fn entry_or_create(&self, group_id: &str) -> Result<EntryRef, GroupError> {
        if group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        if let Some(e) = self.entry(group_id) {
            return Ok(e);
        }
        let mut groups = self.groups.write().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = groups.get(group_id) {
            return Ok(Arc::clone(e));
        }
        if groups.len() >= self.config.max_groups {
            tracing::warn!(
                group = group_id,
                "refusing a new group: {} groups exist",
                groups.len()
            );
            return Err(GroupError::CoordinatorNotAvailable(format!(
                "this node holds its maximum of {} groups",
                self.config.max_groups
            )));
        }
        let entry = Arc::new(Mutex::new(GroupEntry::new(
            Group::new(group_id, self.config.group),
            crate::now_ms(),
        )));
        groups.insert(group_id.to_string(), Arc::clone(&entry));
        Ok(entry)
    }

    /// Runs `f` on the locked group, then writes what the group asks to be stored, records
    /// state changes and wakes the timer if the operation set an earlier deadline (heartbeats
    /// only push deadlines out, so they do not).
    pub(crate) fn with_entry<R>(
        &self,
        broker: &Broker,
        entry: &EntryRef,
        f: impl FnOnce(&mut GroupEntry) -> R,
    ) -> R {
        let mut e = lock(entry);
        let before = e.group.next_deadline();
        let r = f(&mut e);
        self.store_membership(broker, entry, &mut e);
        e.observe(crate::now_ms());
        let after = e.group.next_deadline();
        drop(e);
        if after.is_some_and(|a| before.is_none_or(|b| a < b)) {
            self.wake.notify_one();
        }
        r
    }

    /// Removes `entry` from the registry if it is still the one registered under its id.
    pub(crate) fn forget(&self, group_id: &str, entry: &EntryRef) {
        let mut groups = self.groups.write().unwrap_or_else(|p| p.into_inner());
        if groups.get(group_id).is_some_and(|e| Arc::ptr_eq(e, entry)) {
            groups.remove(group_id);
        }
    }

    pub fn join(&self, broker: &Broker, group_id: &str, req: JoinRequest) -> Pending<JoinResponse> {
        let entry = if group_id.is_empty() {
            Err(GroupError::InvalidGroupId)
        } else if let Err(e) = self.check_owner(group_id) {
            Err(e)
        } else if req.member_id.is_empty() {
            self.entry_or_create(group_id)
        } else {
            // A member id for a group this node does not know: the member must start over.
            self.entry(group_id).ok_or(GroupError::UnknownMemberId)
        };
        let entry = match entry {
            Ok(e) => e,
            Err(e) => return Pending::Ready(JoinResponse::failed(e, req.member_id)),
        };
        let now = self.now();
        self.with_entry(broker, &entry, |e| e.group.join(req, now))
    }

    pub fn sync(&self, broker: &Broker, group_id: &str, req: SyncRequest) -> Pending<SyncResponse> {
        if let Err(e) = self.check_owner(group_id) {
            return Pending::Ready(SyncResponse::failed(e));
        }
        let Some(entry) = self.entry(group_id) else {
            return Pending::Ready(SyncResponse::failed(missing_group(group_id)));
        };
        let now = self.now();
        self.with_entry(broker, &entry, |e| e.group.sync(req, now))
    }

    pub fn heartbeat(
        &self,
        broker: &Broker,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
        generation: i32,
    ) -> Result<(), GroupError> {
        self.check_owner(group_id)?;
        let entry = self
            .entry(group_id)
            .ok_or_else(|| missing_group(group_id))?;
        let now = self.now();
        self.with_entry(broker, &entry, |e| {
            e.group.heartbeat(member_id, instance_id, generation, now)
        })
    }

    pub fn leave(
        &self,
        broker: &Broker,
        group_id: &str,
        members: &[MemberIdentity],
    ) -> Result<Vec<Result<(), GroupError>>, GroupError> {
        self.check_owner(group_id)?;
        let Some(entry) = self.entry(group_id) else {
            if group_id.is_empty() {
                return Err(GroupError::InvalidGroupId);
            }
            return Ok(members
                .iter()
                .map(|_| Err(GroupError::UnknownMemberId))
                .collect());
        };
        let now = self.now();
        self.with_entry(broker, &entry, |e| e.group.leave(members, now))
    }

    pub fn list(&self) -> Vec<GroupListing> {
        let entries: Vec<EntryRef> = self.all_entries();
        let mut out: Vec<GroupListing> = entries
            .iter()
            .filter_map(|e| {
                let e = lock(e);
                let state = e.group.state();
                (state != GroupState::Dead).then(|| GroupListing {
                    group_id: e.group.id().to_string(),
                    protocol_type: e.group.protocol_type().unwrap_or_default().to_string(),
                    state,
                })
            })
            .collect();
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        out
    }

    /// A group as DescribeGroups shows it; a group that does not exist is "Dead", as in Kafka.
    pub fn describe(&self, group_id: &str) -> GroupDescription {
        match self.entry(group_id) {
            Some(e) => lock(&e).group.describe(),
            None => GroupDescription {
                group_id: group_id.to_string(),
                state: GroupState::Dead,
                protocol_type: String::new(),
                protocol: String::new(),
                members: Vec::new(),
            },
        }
    }

    pub(crate) fn all_entries(&self) -> Vec<EntryRef> {
        self.groups
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Applies due timeouts and durable offsets in every group; returns the next deadline.
    pub fn tick_all(&self, broker: &Broker) -> Option<u64> {
        let now = self.now();
        let mut next: Option<u64> = None;
        for entry in self.all_entries() {
            let deadline = self.with_entry_quiet(broker, &entry, |e| {
                e.offsets.apply_durable();
                e.group.tick(now);
                e.group.next_deadline()
            });
            next = match (next, deadline) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        next
    }

    fn with_entry_quiet<R>(
        &self,
        broker: &Broker,
        entry: &EntryRef,
        f: impl FnOnce(&mut GroupEntry) -> R,
    ) -> R {
        let mut e = lock(entry);
        let r = f(&mut e);
        self.store_membership(broker, entry, &mut e);
        e.observe(crate::now_ms());
        r
    }

    /// Writes the membership record the group asked for. Appended under the group's lock, so
    /// records are in the log in the order of the states they describe. An assignment or a
    /// static member's replacement is answered once the record is durable, by a task that waits
    /// for it and reports to the group (`then`).
    fn store_membership(&self, broker: &Broker, entry: &EntryRef, e: &mut GroupEntry) {
        type Then = fn(&mut Group, i32, Result<(), GroupError>, u64);
        let (stored, then): (_, Option<Then>) = match e.group.take_store() {
            None => return,
            Some(StoreRequest::Assignment(s)) => (s, Some(Group::assignment_stored)),
            Some(StoreRequest::Replacement(s)) => (s, Some(Group::replacement_stored)),
            Some(StoreRequest::Empty(s)) => (s, None),
        };
        let generation = stored.generation;
        let written = super::store::write_membership(broker, e.group.id(), &stored);
        let Some(then) = then else {
            if let Err(err) = written {
                tracing::warn!(
                    group = e.group.id(),
                    "could not store that the group is empty: {err}"
                );
            }
            return;
        };
        let runtime = tokio::runtime::Handle::try_current();
        match (written, runtime) {
            (Ok(durable), Ok(runtime)) => {
                let (entry, wake, clock) = (Arc::clone(entry), Arc::clone(&self.wake), self.clock);
                runtime.spawn(async move {
                    let result = durable.await;
                    let now = clock.elapsed().as_millis() as u64;
                    then(&mut lock(&entry).group, generation, result, now);
                    // Whatever the group asks next (a failed store rebalances) is written by
                    // the timer's next round.
                    wake.notify_one();
                });
            }
            (Err(err), _) => then(&mut e.group, generation, Err(err), self.now()),
            (Ok(_), Err(_)) => then(
                &mut e.group,
                generation,
                Err(GroupError::CoordinatorNotAvailable(
                    "no runtime to wait for the membership record".into(),
                )),
                self.now(),
            ),
        }
    }

    /// Starts the timer task on the current tokio runtime (once; later calls do nothing).
    /// Without it, deadlines are only noticed when a request touches the group.
    pub fn start(broker: &Arc<Broker>) {
        if broker.groups().driver_started.swap(true, Ordering::SeqCst) {
            return;
        }
        let weak = Arc::downgrade(broker);
        let wake = Arc::clone(&broker.groups().wake);
        tokio::spawn(drive(weak, wake));
    }
}

/// The timer: ticks every group at its next deadline (or when an operation may have set an
/// earlier one), and periodically expires offsets and removes idle groups.
async fn drive(weak: Weak<Broker>, wake: Arc<Notify>) {
    let mut next_expiry = crate::now_ms() + EXPIRY_INTERVAL_MS;
    loop {
        let wait = {
            let Some(broker) = weak.upgrade() else { return };
            if broker.is_stopping() {
                return;
            }
            let c = broker.groups();
            let next = c.tick_all(&broker);
            if crate::now_ms() >= next_expiry {
                c.expire(&broker, crate::now_ms());
                next_expiry = crate::now_ms() + EXPIRY_INTERVAL_MS;
            }
            let now = c.now();
            next.map_or(TICK_MAX, |d| Duration::from_millis(d.saturating_sub(now)))
                .min(TICK_MAX)
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = wake.notified() => {}
        }
    }
}

/// Kafka answers requests for a group it does not know with UNKNOWN_MEMBER_ID (the member
/// rejoins), and an empty group id with INVALID_GROUP_ID.
fn missing_group(group_id: &str) -> GroupError {
    if group_id.is_empty() {
        GroupError::InvalidGroupId
    } else {
        GroupError::UnknownMemberId
    }
}

// A poisoned group lock means a panic mid-operation; the group's fields are each left valid, and
// refusing the group forever would wedge its members.
pub(crate) fn lock(entry: &EntryRef) -> MutexGuard<'_, GroupEntry> {
    entry.lock().unwrap_or_else(|p| p.into_inner())
}
