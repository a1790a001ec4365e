//! The topics a consumer's JoinGroup metadata subscribes to, for OffsetDelete's
//! GROUP_SUBSCRIBED_TO_TOPIC check. ConsumerProtocolSubscription (every version starts alike):
//!
//! ```text
//! i16       version
//! i32       topic count, then per topic: i16 length + UTF-8 name
//! ...       user data, owned partitions, generation, rack (ignored)
//! ```
//!
//! Parsed by hand with bounds checks: kafka-protocol's decoder would allocate from the count.

/// The subscribed topics, or `None` if the bytes are not a consumer subscription.
pub fn subscribed_topics(metadata: &bytes::Bytes) -> Option<Vec<String>> {
    let b: &[u8] = metadata;
    let mut pos = 2; // version
    let count = i32::from_be_bytes(b.get(pos..pos + 4)?.try_into().ok()?);
    pos += 4;
    let count = usize::try_from(count).ok()?;
    // Each name takes at least its two length bytes.
    if count > b.len().saturating_sub(pos) / 2 {
        return None;
    }
    let mut topics = Vec::with_capacity(count);
    for _ in 0..count {
        let len = i16::from_be_bytes(b.get(pos..pos + 2)?.try_into().ok()?);
        pos += 2;
        let len = usize::try_from(len).ok()?;
        let name = std::str::from_utf8(b.get(pos..pos + len)?).ok()?;
        pos += len;
        topics.push(name.to_string());
    }
    Some(topics)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_subscriptions_and_refuses_garbage() {
        let mut b = vec![
            0, 1, 0, 0, 0, 2, 0, 1, b'a', 0, 3, b'b', b'c', b'd', 0xff, 0xff, 0xff, 0xff,
        ];
        let topics = subscribed_topics(&bytes::Bytes::from(b.clone()));
        assert_eq!(topics, Some(vec!["a".to_string(), "bcd".to_string()]));
        b[5] = 200; // claims more topics than the bytes hold
        assert_eq!(subscribed_topics(&bytes::Bytes::from(b)), None);
        assert_eq!(
            subscribed_topics(&bytes::Bytes::from_static(&[0, 1, 0])),
            None
        );
        assert_eq!(
            subscribed_topics(&bytes::Bytes::from_static(&[0, 0, 0x7f, 0xff, 0xff, 0xff])),
            None
        );
    }
}
