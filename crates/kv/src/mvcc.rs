//! Versions of every key and the revision log. A key holds its versions oldest first; a
//! delete adds a tombstone version. The revision log maps every retained revision to its key,
//! so watchers replay history in revision order without scanning every key.
//!
//! Both are persistent B-trees (`imbl::OrdMap`): a copy shares every node until one side
//! changes it, so freezing the state for a snapshot costs nothing however large it is, and
//! applying goes on while the copy is encoded.

use std::ops::Bound;

use imbl::OrdMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::types::{Event, EventKind, KeyValue, Revision};

/// Bytes a version costs beyond its key and value (index entries, revisions): the space
/// quota counts them, as etcd's counts bbolt's overhead.
const VERSION_OVERHEAD: u64 = 64;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Version {
    pub rev: Revision,
    pub create: i64,
    pub version: i64,
    pub value: Bytes,
    pub lease: i64,
    pub tombstone: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Mvcc {
    pub keys: OrdMap<Bytes, Vec<Version>>,
    pub log: OrdMap<Revision, Bytes>,
    pub current: i64,
    pub compacted: i64,
    /// Bytes held: keys, values and per-version overhead of every retained version.
    pub size: u64,
}

pub(crate) fn version_cost(key: &[u8], value: &[u8]) -> u64 {
    key.len() as u64 + value.len() as u64 + VERSION_OVERHEAD
}

/// The keys a `(key, range_end)` pair names, as etcd reads them.
pub(crate) fn bounds(key: &Bytes, range_end: &Bytes) -> (Bound<Bytes>, Bound<Bytes>) {
    if range_end.is_empty() {
        (Bound::Included(key.clone()), Bound::Included(key.clone()))
    } else if range_end.as_ref() == b"\0" {
        (Bound::Included(key.clone()), Bound::Unbounded)
    } else if key.as_ref() > range_end.as_ref() {
        // An empty interval; a range with start > end panics.
        (Bound::Excluded(key.clone()), Bound::Excluded(key.clone()))
    } else {
        (
            Bound::Included(key.clone()),
            Bound::Excluded(range_end.clone()),
        )
    }
}

pub(crate) fn in_range(k: &[u8], key: &[u8], range_end: &[u8]) -> bool {
    if range_end.is_empty() {
        k == key
    } else if range_end == b"\0" {
        k >= key
    } else {
        k >= key && k < range_end
    }
}

impl Version {
    fn to_kv(&self, key: &Bytes) -> KeyValue {
        KeyValue {
            key: key.clone(),
            create_revision: self.create,
            mod_revision: self.rev.main,
            version: self.version,
            value: self.value.clone(),
            lease: self.lease,
        }
    }
}

impl Mvcc {
    /// The live value of `key` at revision `rev`.
    pub fn get_at(&self, key: &Bytes, rev: i64) -> Option<KeyValue> {
        let versions = self.keys.get(key)?;
        live_at(versions, rev).map(|v| v.to_kv(key))
    }

    /// Live keys of a range at `rev`, in key order, calling `f` until it returns false.
    pub fn scan_at(
        &self,
        key: &Bytes,
        range_end: &Bytes,
        rev: i64,
        mut f: impl FnMut(KeyValue) -> bool,
    ) {
        for (k, versions) in self.keys.range(bounds(key, range_end)) {
            if let Some(v) = live_at(versions, rev) {
                if !f(v.to_kv(k)) {
                    return;
                }
            }
        }
    }

    /// Writes a new version of `key` at `rev`; returns the previous live value.
    pub fn put(
        &mut self,
        key: &Bytes,
        value: Bytes,
        lease: i64,
        rev: Revision,
    ) -> Option<KeyValue> {
        let versions = self.keys.entry(key.clone()).or_default();
        let prev = versions.last().filter(|v| !v.tombstone).cloned();
        let (create, version) = match &prev {
            Some(p) => (p.create, p.version + 1),
            None => (rev.main, 1),
        };
        self.size += version_cost(key, &value);
        versions.push(Version {
            rev,
            create,
            version,
            value,
            lease,
            tombstone: false,
        });
        self.log.insert(rev, key.clone());
        prev.map(|p| p.to_kv(key))
    }

    /// Deletes `key` at `rev` if it is live; returns its value.
    pub fn delete(&mut self, key: &Bytes, rev: Revision) -> Option<KeyValue> {
        let versions = self.keys.get_mut(key)?;
        let prev = versions.last().filter(|v| !v.tombstone)?.to_kv(key);
        self.size += version_cost(key, b"");
        versions.push(Version {
            rev,
            create: 0,
            version: 0,
            value: Bytes::new(),
            lease: 0,
            tombstone: true,
        });
        self.log.insert(rev, key.clone());
        Some(prev)
    }

    /// Forgets history below `rev`: a key keeps its newest version at or below it (unless that
    /// is a tombstone) and everything after.
    pub fn compact(&mut self, rev: i64) {
        let keys: Vec<Bytes> = self.keys.keys().cloned().collect();
        let mut freed = 0u64;
        for key in keys {
            let Some(versions) = self.keys.get(&key) else {
                continue;
            };
            // Index of the newest version at or below `rev`.
            let upto = versions.partition_point(|v| v.rev.main <= rev);
            if upto == 0 {
                continue;
            }
            let drop = if versions[upto - 1].tombstone {
                upto
            } else {
                upto - 1
            };
            if drop == 0 {
                continue;
            }
            let Some(versions) = self.keys.get_mut(&key) else {
                continue;
            };
            for v in versions.drain(..drop) {
                freed += version_cost(&key, &v.value);
                self.log.remove(&v.rev);
            }
            if versions.is_empty() {
                self.keys.remove(&key);
            }
        }
        self.size = self.size.saturating_sub(freed);
        self.compacted = rev;
    }

    /// Events from revision `from` on (through `to`) for keys in the range, in revision order,
    /// stopping after the revision at which `max_bytes` of values was passed (a revision's
    /// events are never split). Returns the events and the next revision to read from.
    pub fn events(
        &self,
        from: i64,
        to: i64,
        key: &[u8],
        range_end: &[u8],
        max_bytes: usize,
    ) -> (Vec<Event>, i64) {
        let mut out = Vec::new();
        let mut bytes = 0usize;
        let start = Revision { main: from, sub: 0 };
        let mut last_main = from - 1;
        for (rev, k) in self.log.range(start..) {
            if rev.main > to {
                break;
            }
            if rev.main != last_main && bytes >= max_bytes {
                return (out, rev.main);
            }
            last_main = rev.main;
            if !in_range(k, key, range_end) {
                continue;
            }
            let Some(versions) = self.keys.get(k) else {
                continue;
            };
            let Ok(at) = versions.binary_search_by(|v| v.rev.cmp(rev)) else {
                continue;
            };
            let v = &versions[at];
            let prev = at
                .checked_sub(1)
                .map(|p| &versions[p])
                .filter(|p| !p.tombstone)
                .map(|p| p.to_kv(k));
            let (kind, kv) = if v.tombstone {
                (
                    EventKind::Delete,
                    KeyValue {
                        key: k.clone(),
                        mod_revision: rev.main,
                        ..KeyValue::default()
                    },
                )
            } else {
                (EventKind::Put, v.to_kv(k))
            };
            bytes += k.len() + kv.value.len();
            out.push(Event {
                kind,
                kv,
                prev_kv: prev,
            });
        }
        (out, to.max(from - 1) + 1)
    }
}

fn live_at(versions: &[Version], rev: i64) -> Option<&Version> {
    let upto = versions.partition_point(|v| v.rev.main <= rev);
    let v = versions.get(upto.checked_sub(1)?)?;
    (!v.tombstone).then_some(v)
}
