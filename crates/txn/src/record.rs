//! A transactional id's metadata as a record of `__transaction_state`: key = version (u16, 1)
//! then the id's UTF-8 bytes; value = the metadata as JSON (a tombstone would forget the id).
//! The last record of a key wins, so a replay in log order rebuilds the coordinator's state.

use bytes::Bytes;
use strom_storage::records::KeyValue;

use crate::state::TxnMetadata;

const KEY_VERSION: u16 = 1;

/// `meta` for `txn_id`; `None` is a tombstone (the id expired).
pub(crate) fn encode(txn_id: &str, meta: Option<&TxnMetadata>) -> KeyValue {
    let mut key = Vec::with_capacity(2 + txn_id.len());
    key.extend_from_slice(&KEY_VERSION.to_be_bytes());
    key.extend_from_slice(txn_id.as_bytes());
    // Serializing plain data to JSON cannot fail; an empty value would read back as garbage
    // and be skipped, never as another state.
    let value = meta.map(|m| Bytes::from(serde_json::to_vec(m).unwrap_or_default()));
    KeyValue {
        key: Bytes::from(key),
        value,
    }
}

/// The id and its metadata (`None`: a tombstone); `None` for a record of another kind or
/// version, which replay skips.
pub(crate) fn decode(kv: &KeyValue) -> Option<(String, Option<TxnMetadata>)> {
    let version = kv.key.get(..2)?;
    if version != KEY_VERSION.to_be_bytes() {
        return None;
    }
    let id = std::str::from_utf8(&kv.key[2..]).ok()?.to_string();
    match &kv.value {
        None => Some((id, None)),
        Some(v) => serde_json::from_slice(v).ok().map(|m| (id, Some(m))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_skips_what_it_does_not_know() {
        let mut m = TxnMetadata::new(42, 60_000, 5);
        m.partitions.insert(("orders".into(), 3));
        let kv = encode("app-1", Some(&m));
        assert_eq!(decode(&kv), Some(("app-1".to_string(), Some(m))));
        assert_eq!(
            decode(&encode("app-1", None)),
            Some(("app-1".to_string(), None))
        );
        let junk = KeyValue {
            key: kv.key.clone(),
            value: Some(Bytes::from_static(b"{")),
        };
        assert_eq!(decode(&junk), None);
        let other = KeyValue {
            key: Bytes::from_static(&[0, 9, b'x']),
            value: None,
        };
        assert_eq!(decode(&other), None);
        assert_eq!(
            decode(&KeyValue {
                key: Bytes::new(),
                value: None
            }),
            None
        );
    }
}
