//! The state machine: MVCC keys, leases and alarms, changed only by [`Store::apply`].

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::mvcc::{version_cost, Mvcc};
use crate::types::*;
use crate::{KvError, MAX_LEASE_TTL};

/// Limits the store enforces at apply time. Every replica must use the same values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of keys, values and versions past which the NOSPACE alarm goes off (etcd's
    /// `--quota-backend-bytes`, 2 GiB by default).
    pub quota_bytes: u64,
    /// Shortest lease TTL in seconds; shorter grants are raised to it, as etcd does (its
    /// minimum follows from the election timeout: a lease must outlive a failover).
    pub min_lease_ttl: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            quota_bytes: 2 << 30,
            min_lease_ttl: 2,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Lease {
    pub ttl: i64,
    pub keys: BTreeSet<Bytes>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseInfo {
    pub id: i64,
    /// Granted TTL in seconds.
    pub ttl: i64,
    pub keys: Vec<Bytes>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct State {
    pub mvcc: Mvcc,
    pub leases: BTreeMap<i64, Lease>,
    pub alarms: BTreeSet<(u64, AlarmType)>,
    /// The last journal index applied (restored from a snapshot with the rest).
    pub applied: u64,
}

#[derive(Debug, Clone)]
pub struct Store {
    pub(crate) state: State,
    pub(crate) limits: Limits,
}

/// A deterministic 64-bit mix (splitmix64): lease ids from journal indexes.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

impl Store {
    pub fn new(limits: Limits) -> Store {
        let mut state = State::default();
        // etcd starts at revision 1: the first write creates revision 2.
        state.mvcc.current = 1;
        Store { state, limits }
    }

    pub fn revision(&self) -> i64 {
        self.state.mvcc.current
    }

    pub fn compacted(&self) -> i64 {
        self.state.mvcc.compacted
    }

    /// The journal index of the last applied command.
    pub fn applied(&self) -> u64 {
        self.state.applied
    }

    /// Records an entry that carried no command this store can apply (every replica skips
    /// the same one).
    pub fn skip(&mut self, index: u64) {
        self.state.applied = self.state.applied.max(index);
    }

    /// Bytes the space quota counts.
    pub fn size(&self) -> u64 {
        self.state.mvcc.size
    }

    pub fn alarms(&self) -> Vec<(u64, AlarmType)> {
        self.state.alarms.iter().copied().collect()
    }

    /// Applies one command of a committed journal entry (an entry may carry several, all
    /// with its index). Deterministic: the result depends on the state and the command only.
    /// An entry below the applied index is refused: the journal never replays one twice.
    pub fn apply(&mut self, index: u64, command: &Command) -> Applied {
        if index != 0 && index < self.state.applied {
            return Applied {
                revision: self.revision(),
                result: Err(KvError::Corrupt(format!("entry {index} applied twice"))),
                changed: false,
            };
        }
        self.state.applied = index;
        let before = self.revision();
        let result = self.apply_command(index, command);
        Applied {
            revision: self.revision(),
            changed: self.revision() != before,
            result,
        }
    }

    fn apply_command(&mut self, index: u64, command: &Command) -> Result<Output, KvError> {
        match command {
            Command::Put(req) => {
                self.check_space(version_cost(&req.key, &req.value))?;
                match self.write_ops(&[Op::Put(req.clone())])?.pop() {
                    Some(OpResponse::Put(p)) => Ok(Output::Put(p)),
                    other => Err(KvError::Corrupt(format!("put answered {other:?}"))),
                }
            }
            Command::DeleteRange(req) => match self.write_ops(&[Op::Delete(req.clone())])?.pop() {
                Some(OpResponse::Delete(d)) => Ok(Output::DeleteRange(d)),
                other => Err(KvError::Corrupt(format!("delete answered {other:?}"))),
            },
            Command::Txn(req) => {
                crate::txn::check_intervals_of(req)?;
                self.check_space(crate::txn::put_cost(req))?;
                self.txn(req).map(Output::Txn)
            }
            Command::Compact { revision } => {
                if *revision > self.revision() {
                    return Err(KvError::FutureRevision);
                }
                if *revision <= self.compacted() {
                    return Err(KvError::Compacted);
                }
                self.state.mvcc.compact(*revision);
                Ok(Output::Compact)
            }
            Command::LeaseGrant { id, ttl } => {
                if *ttl > MAX_LEASE_TTL {
                    return Err(KvError::LeaseTtlTooLarge);
                }
                self.check_space(64)?;
                let id = if *id != 0 {
                    if self.state.leases.contains_key(id) {
                        return Err(KvError::LeaseExists);
                    }
                    *id
                } else {
                    let mut candidate = (mix(index) >> 1) as i64;
                    while candidate == 0 || self.state.leases.contains_key(&candidate) {
                        candidate = candidate.wrapping_add(1) & i64::MAX;
                    }
                    candidate
                };
                let ttl = (*ttl).max(self.limits.min_lease_ttl);
                self.state.leases.insert(
                    id,
                    Lease {
                        ttl,
                        keys: BTreeSet::new(),
                    },
                );
                Ok(Output::LeaseGrant { id, ttl })
            }
            Command::LeaseRevoke { id } => {
                let lease = self.state.leases.get(id).ok_or(KvError::LeaseNotFound)?;
                let ops: Vec<Op> = lease
                    .keys
                    .iter()
                    .map(|k| {
                        Op::Delete(DeleteRangeRequest {
                            key: k.clone(),
                            range_end: Bytes::new(),
                            prev_kv: false,
                        })
                    })
                    .collect();
                // All of the lease's keys go in one revision.
                self.write_ops(&ops)?;
                self.state.leases.remove(id);
                Ok(Output::LeaseRevoke)
            }
            Command::Alarm {
                action,
                member,
                alarm,
            } => {
                match action {
                    AlarmAction::Activate => {
                        self.state.alarms.insert((*member, *alarm));
                    }
                    AlarmAction::Deactivate => {
                        self.state.alarms.retain(|(_, a)| a != alarm);
                    }
                }
                Ok(Output::Alarm(self.alarms()))
            }
        }
    }

    /// Refuses a write that adds `cost` bytes while the space alarm is on, and raises the
    /// alarm when the write would pass the quota (deletes and compaction stay allowed).
    fn check_space(&mut self, cost: u64) -> Result<(), KvError> {
        if cost == 0 {
            return Ok(());
        }
        if self
            .state
            .alarms
            .iter()
            .any(|(_, a)| *a == AlarmType::NoSpace)
        {
            return Err(KvError::NoSpace);
        }
        if self.size() + cost > self.limits.quota_bytes {
            self.state.alarms.insert((0, AlarmType::NoSpace));
            return Err(KvError::NoSpace);
        }
        Ok(())
    }

    fn txn(&mut self, req: &TxnRequest) -> Result<TxnResponse, KvError> {
        // Every compare, nested ones included, sees the state before the transaction, as in
        // etcd: the path through the branches is fixed first, then checked, then executed.
        let path = crate::txn::choose_path(self, req);
        crate::txn::check_path(self, req, &path)?;
        let mut sub = 0i64;
        let main = self.revision() + 1;
        let mut path_iter = path.iter();
        let resp = self.exec_txn(req, &mut path_iter, main, &mut sub);
        if sub > 0 {
            self.state.mvcc.current = main;
        }
        Ok(resp)
    }

    pub(crate) fn exec_txn<'a>(
        &mut self,
        req: &TxnRequest,
        path: &mut impl Iterator<Item = &'a bool>,
        main: i64,
        sub: &mut i64,
    ) -> TxnResponse {
        let succeeded = path.next().copied().unwrap_or(false);
        let ops = if succeeded {
            &req.success
        } else {
            &req.failure
        };
        let mut responses = Vec::with_capacity(ops.len());
        for op in ops {
            responses.push(self.exec_op(op, path, main, sub));
        }
        TxnResponse {
            succeeded,
            responses,
        }
    }

    fn exec_op<'a>(
        &mut self,
        op: &Op,
        path: &mut impl Iterator<Item = &'a bool>,
        main: i64,
        sub: &mut i64,
    ) -> OpResponse {
        match op {
            Op::Range(r) => {
                // A read inside a transaction sees the transaction's own writes.
                let at = if *sub > 0 { main } else { main - 1 };
                OpResponse::Range(self.range_at(r, at).unwrap_or_default())
            }
            Op::Put(p) => {
                let prev = self.state.mvcc.get_at(&p.key, i64::MAX);
                let value = if p.ignore_value {
                    prev.as_ref().map(|v| v.value.clone()).unwrap_or_default()
                } else {
                    p.value.clone()
                };
                let lease = if p.ignore_lease {
                    prev.as_ref().map(|v| v.lease).unwrap_or_default()
                } else {
                    p.lease
                };
                let rev = Revision { main, sub: *sub };
                *sub += 1;
                let prev = self.state.mvcc.put(&p.key, value, lease, rev);
                let old_lease = prev.as_ref().map(|v| v.lease).unwrap_or(0);
                if old_lease != lease {
                    if let Some(l) = self.state.leases.get_mut(&old_lease) {
                        l.keys.remove(&p.key);
                    }
                }
                if let Some(l) = self.state.leases.get_mut(&lease) {
                    l.keys.insert(p.key.clone());
                }
                OpResponse::Put(PutResponse {
                    prev_kv: if p.prev_kv { prev } else { None },
                })
            }
            Op::Delete(d) => {
                let mut keys = Vec::new();
                self.state
                    .mvcc
                    .scan_at(&d.key, &d.range_end, i64::MAX, |kv| {
                        keys.push(kv.key);
                        true
                    });
                let mut prev_kvs = Vec::new();
                for k in &keys {
                    let rev = Revision { main, sub: *sub };
                    *sub += 1;
                    if let Some(prev) = self.state.mvcc.delete(k, rev) {
                        if let Some(l) = self.state.leases.get_mut(&prev.lease) {
                            l.keys.remove(k);
                        }
                        if d.prev_kv {
                            prev_kvs.push(prev);
                        }
                    }
                }
                OpResponse::Delete(DeleteRangeResponse {
                    deleted: keys.len() as i64,
                    prev_kvs,
                })
            }
            Op::Txn(t) => OpResponse::Txn(self.exec_txn(t, path, main, sub)),
        }
    }

    /// Plain puts and deletes: one revision for all of them if anything changed.
    fn write_ops(&mut self, ops: &[Op]) -> Result<Vec<OpResponse>, KvError> {
        let req = TxnRequest {
            compare: Vec::new(),
            success: ops.to_vec(),
            failure: Vec::new(),
        };
        Ok(self.txn(&req)?.responses)
    }

    /// A read at the current revision (or the one the request names).
    pub fn range(&self, req: &RangeRequest) -> Result<RangeResponse, KvError> {
        self.range_at(req, self.revision())
    }

    fn range_at(&self, req: &RangeRequest, current: i64) -> Result<RangeResponse, KvError> {
        let rev = if req.revision > 0 {
            if req.revision > self.revision() {
                return Err(KvError::FutureRevision);
            }
            if req.revision < self.compacted() {
                return Err(KvError::Compacted);
            }
            req.revision
        } else {
            current
        };
        let filtered = req.sort_order != SortOrder::None
            || req.sort_target != SortTarget::Key
            || req.min_mod_revision != 0
            || req.max_mod_revision != 0
            || req.min_create_revision != 0
            || req.max_create_revision != 0;
        // Without sorting or filters only the first `limit + 1` values are kept ("more").
        let keep = if req.count_only {
            0
        } else if filtered || req.limit <= 0 {
            usize::MAX
        } else {
            req.limit as usize + 1
        };
        let mut count = 0i64;
        let mut kvs = Vec::new();
        self.state
            .mvcc
            .scan_at(&req.key, &req.range_end, rev, |kv| {
                count += 1;
                if kvs.len() < keep {
                    kvs.push(kv);
                }
                true
            });
        kvs.retain(|kv| {
            (req.max_mod_revision == 0 || kv.mod_revision <= req.max_mod_revision)
                && (req.min_mod_revision == 0 || kv.mod_revision >= req.min_mod_revision)
                && (req.max_create_revision == 0 || kv.create_revision <= req.max_create_revision)
                && (req.min_create_revision == 0 || kv.create_revision >= req.min_create_revision)
        });
        let order = match (req.sort_order, req.sort_target) {
            (SortOrder::None, SortTarget::Key) => SortOrder::None,
            // etcd sorts ascending by default when the target is not the key.
            (SortOrder::None, _) => SortOrder::Ascend,
            (o, _) => o,
        };
        if order != SortOrder::None {
            let target = req.sort_target;
            kvs.sort_by(|a, b| {
                let ord = match target {
                    SortTarget::Key => a.key.cmp(&b.key),
                    SortTarget::Version => a.version.cmp(&b.version),
                    SortTarget::Create => a.create_revision.cmp(&b.create_revision),
                    SortTarget::Mod => a.mod_revision.cmp(&b.mod_revision),
                    SortTarget::Value => a.value.cmp(&b.value),
                };
                if order == SortOrder::Descend {
                    ord.reverse()
                } else {
                    ord
                }
            });
        }
        let mut more = false;
        if req.limit > 0 && kvs.len() > req.limit as usize {
            kvs.truncate(req.limit as usize);
            more = true;
        }
        if req.keys_only {
            for kv in &mut kvs {
                kv.value = Bytes::new();
            }
        }
        Ok(RangeResponse { kvs, more, count })
    }

    /// Events from revision `from` (≥ the compacted revision) through the current one; see
    /// `Mvcc::events`. Returns the events and the revision to continue from.
    pub fn events(
        &self,
        from: i64,
        key: &[u8],
        range_end: &[u8],
        max_bytes: usize,
    ) -> (Vec<Event>, i64) {
        self.state
            .mvcc
            .events(from, self.revision(), key, range_end, max_bytes)
    }

    pub fn lease(&self, id: i64) -> Option<LeaseInfo> {
        self.state.leases.get(&id).map(|l| LeaseInfo {
            id,
            ttl: l.ttl,
            keys: l.keys.iter().cloned().collect(),
        })
    }

    /// Every lease: (id, granted TTL).
    pub fn leases(&self) -> Vec<(i64, i64)> {
        self.state
            .leases
            .iter()
            .map(|(id, l)| (*id, l.ttl))
            .collect()
    }

    /// etcd's HashKV: a hash of every retained version up to `rev` (0: the current revision),
    /// the same on every replica that applied the same commands. Returns (hash, revision).
    pub fn hash(&self, rev: i64) -> Result<(u32, i64), KvError> {
        let rev = if rev <= 0 { self.revision() } else { rev };
        if rev > self.revision() {
            return Err(KvError::FutureRevision);
        }
        if rev < self.compacted() {
            return Err(KvError::Compacted);
        }
        let mut h = crc32c::crc32c(&self.compacted().to_be_bytes());
        for (key, versions) in &self.state.mvcc.keys {
            for v in versions.iter().take_while(|v| v.rev.main <= rev) {
                h = crc32c::crc32c_append(h, key);
                h = crc32c::crc32c_append(h, &v.rev.main.to_be_bytes());
                h = crc32c::crc32c_append(h, &v.rev.sub.to_be_bytes());
                h = crc32c::crc32c_append(h, &[v.tombstone as u8]);
                h = crc32c::crc32c_append(h, &v.value);
            }
        }
        Ok((h, rev))
    }
}
