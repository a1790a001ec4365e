//! The cleaner's key map: for each key of the dirty part of a log, the offset of its latest
//! record. Keys are stored as 128-bit hashes (a collision would need about 2^64 keys), so an
//! entry takes a fixed size whatever the key, and the map holds at most as many entries as its
//! byte budget allows; a dirty part with more keys is cleaned in several passes.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

/// What one entry costs in a `HashMap<u128, u64>`: 24 bytes of entry, a control byte, and
/// room for the load factor and the growth of the table.
const BYTES_PER_ENTRY: usize = 48;

pub struct KeyMap {
    latest: HashMap<u128, u64>,
    max_entries: usize,
}

impl KeyMap {
    /// A map that never grows past `budget_bytes` (at least one entry).
    pub fn with_budget(budget_bytes: usize) -> KeyMap {
        KeyMap {
            latest: HashMap::new(),
            max_entries: (budget_bytes / BYTES_PER_ENTRY).max(1),
        }
    }

    fn hash(key: &[u8]) -> u128 {
        let half = |seed: u8| {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            seed.hash(&mut h);
            key.hash(&mut h);
            h.finish()
        };
        (u128::from(half(0)) << 64) | u128::from(half(1))
    }

    /// Room for `n` more keys, counting each as new.
    pub fn has_room_for(&self, n: usize) -> bool {
        self.latest.len().saturating_add(n) <= self.max_entries
    }

    /// Records `offset` as the latest of `key` (offsets arrive in increasing order).
    pub fn insert(&mut self, key: &[u8], offset: u64) {
        self.latest.insert(Self::hash(key), offset);
    }

    /// The offset of the latest record of `key` seen, if any.
    pub fn latest(&self, key: &[u8]) -> Option<u64> {
        self.latest.get(&Self::hash(key)).copied()
    }

    pub fn len(&self) -> usize {
        self.latest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.latest.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latest_offset_wins_and_budget_bounds_entries() {
        let mut map = KeyMap::with_budget(10 * BYTES_PER_ENTRY);
        map.insert(b"a", 1);
        map.insert(b"b", 2);
        map.insert(b"a", 3);
        assert_eq!(map.latest(b"a"), Some(3));
        assert_eq!(map.latest(b"b"), Some(2));
        assert_eq!(map.latest(b"c"), None);
        assert!(map.has_room_for(8));
        assert!(!map.has_room_for(9));
    }
}
