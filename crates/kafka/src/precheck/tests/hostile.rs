//! Hand-made hostile request bodies: huge and negative counts, overlong varints, strings
//! longer than the body, misplaced nulls, tagged-field windows.

use super::*;

#[test]
fn precheck_rejects_huge_metadata_topic_count() {
    // Metadata v0: topics array claiming 0x033c0c00 (54 million) elements.
    let body = [0x03, 0x3c, 0x0c, 0x00, 0x00, 0x01, b'a', 0x00, 0x00, 0x00];
    assert_eq!(
        check_request_body(3, 0, &body),
        Err(PrecheckError::LengthTooLarge {
            at: 0,
            declared: 0x033c_0c00,
            remaining: 3, // six bytes left, two per (string) element
        })
    );
}

fn be32(x: i32) -> [u8; 4] {
    x.to_be_bytes()
}

#[test]
fn precheck_rejects_i32_max_counts() {
    // Produce v3: transactional_id null, acks, timeout, topic count.
    let mut produce = vec![0xff, 0xff, 0x00, 0x01, 0x00, 0x00, 0x75, 0x30];
    produce.extend(be32(i32::MAX));
    assert!(matches!(
        check_request_body(0, 3, &produce),
        Err(PrecheckError::LengthTooLarge { at: 8, declared, .. }) if declared == i64::from(i32::MAX)
    ));

    // Produce v3 with one topic whose partition count is i32::MAX.
    let mut produce = vec![0xff, 0xff, 0x00, 0x01, 0x00, 0x00, 0x75, 0x30];
    produce.extend(be32(1));
    produce.extend([0x00, 0x01, b't']);
    produce.extend(be32(i32::MAX));
    produce.extend([0; 16]);
    assert!(matches!(
        check_request_body(0, 3, &produce),
        Err(PrecheckError::LengthTooLarge { at: 15, declared, remaining: 2 }) if declared == i64::from(i32::MAX)
    ));

    // Produce v3 with records length i32::MAX.
    let mut produce = vec![0xff, 0xff, 0x00, 0x01, 0x00, 0x00, 0x75, 0x30];
    produce.extend(be32(1));
    produce.extend([0x00, 0x01, b't']);
    produce.extend(be32(1));
    produce.extend(be32(0)); // partition index
    produce.extend(be32(i32::MAX));
    produce.extend([0; 10]);
    assert_eq!(
        check_request_body(0, 3, &produce),
        Err(PrecheckError::LengthTooLarge {
            at: 23,
            declared: i64::from(i32::MAX),
            remaining: 10
        })
    );

    // Fetch v4: replica, max_wait, min_bytes, max_bytes, isolation, topics.
    let mut fetch = Vec::new();
    for x in [-1, 500, 1, 1 << 20] {
        fetch.extend(be32(x));
    }
    fetch.push(0);
    fetch.extend(be32(i32::MAX));
    fetch.extend([0; 32]);
    assert!(matches!(
        check_request_body(1, 4, &fetch),
        Err(PrecheckError::LengthTooLarge { at: 17, declared, .. }) if declared == i64::from(i32::MAX)
    ));

    // CreateTopics v2: topics count i32::MAX.
    let mut create = be32(i32::MAX).to_vec();
    create.extend([0; 5]);
    assert!(matches!(
        check_request_body(19, 2, &create),
        Err(PrecheckError::LengthTooLarge { at: 0, declared, .. }) if declared == i64::from(i32::MAX)
    ));

    // CreateTopics v2: one topic, its broker_ids count i32::MAX.
    let mut create = be32(1).to_vec();
    create.extend([0x00, 0x01, b't']); // name
    create.extend(be32(1)); // num_partitions
    create.extend([0x00, 0x01]); // replication_factor
    create.extend(be32(1)); // assignments: one
    create.extend(be32(0)); // partition_index
    create.extend(be32(i32::MAX)); // broker_ids
    create.extend([0; 12]);
    assert_eq!(
        check_request_body(19, 2, &create),
        Err(PrecheckError::LengthTooLarge {
            at: 21,
            declared: i64::from(i32::MAX),
            remaining: 3, // 12 bytes of 4-byte broker ids
        })
    );
}

#[test]
fn precheck_rejects_huge_compact_counts() {
    // Metadata v9 (flexible): topics count uvarint 0xFFFFFFFF.
    let body = [0xff, 0xff, 0xff, 0xff, 0x0f, 0x00, 0x00, 0x00, 0x00];
    assert_eq!(
        check_request_body(3, 9, &body),
        Err(PrecheckError::LengthTooLarge {
            at: 0,
            declared: i64::from(u32::MAX) - 1,
            remaining: 2, // 4 bytes left, 2 per element at least
        })
    );
    // Produce v9: transactional_id null, acks, timeout, topic count huge.
    let mut produce = vec![0x00, 0x00, 0x01, 0x00, 0x00, 0x75, 0x30];
    produce.extend([0xfe, 0xff, 0xff, 0xff, 0x07]);
    produce.extend([0; 8]);
    assert!(matches!(
        check_request_body(0, 9, &produce),
        Err(PrecheckError::LengthTooLarge { at: 7, .. })
    ));
    // Tagged-field section claiming 2^32-1 fields (ApiVersions v3).
    let body = [0x01, 0x01, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x00, 0x00];
    assert_eq!(
        check_request_body(18, 3, &body),
        Err(PrecheckError::LengthTooLarge {
            at: 2,
            declared: i64::from(u32::MAX),
            remaining: 1,
        })
    );
    // A tagged field whose size runs past the body.
    let body = [0x01, 0x01, 0x01, 0x05, 0xff, 0x7f, 0x00];
    assert_eq!(
        check_request_body(18, 3, &body),
        Err(PrecheckError::LengthTooLarge {
            at: 4,
            declared: 0x3fff,
            remaining: 1,
        })
    );
}

#[test]
fn precheck_bounds_i64_arrays_by_eight_bytes_per_element() {
    // ListTransactions v1: state_filters [], producer_id_filters, duration_filter, no tags.
    let with_count = |count: u8| {
        let mut body = vec![0x01, count];
        for id in [7i64, 8, 9] {
            body.extend(id.to_be_bytes());
        }
        body.extend(60_000i64.to_be_bytes());
        body.push(0x00);
        body
    };
    let ok = with_count(0x04); // three ids
    assert_eq!(check_request_body(66, 1, &ok), Ok(0));
    assert_eq!(lib_decode(66, 1, &ok), Ok(0));
    // Four ids fit in the 33 bytes after the count, so the count passes and the walk runs out.
    assert_eq!(
        check_request_body(66, 1, &with_count(0x05)),
        Err(PrecheckError::Truncated { at: 34 })
    );
    // Five do not.
    assert_eq!(
        check_request_body(66, 1, &with_count(0x06)),
        Err(PrecheckError::LengthTooLarge {
            at: 1,
            declared: 5,
            remaining: 4,
        })
    );
}

#[test]
fn precheck_rejects_overlong_varints() {
    // Six-byte varint.
    let body = [0x81, 0x80, 0x80, 0x80, 0x80, 0x00, 0x00, 0x00];
    assert_eq!(
        check_request_body(18, 3, &body),
        Err(PrecheckError::VarintTooLong { at: 0 })
    );
    // Five bytes but more than 32 bits.
    let body = [0x81, 0x80, 0x80, 0x80, 0x10, 0x00, 0x00];
    assert_eq!(
        check_request_body(18, 3, &body),
        Err(PrecheckError::VarintTooLong { at: 0 })
    );
    // Largest valid five-byte varint is fine as a varint (then too long).
    let body = [0xff, 0xff, 0xff, 0xff, 0x0f, 0x00, 0x00];
    assert!(matches!(
        check_request_body(18, 3, &body),
        Err(PrecheckError::LengthTooLarge { at: 0, .. })
    ));
    // A varint cut short.
    assert_eq!(
        check_request_body(18, 3, &[0x80, 0x80]),
        Err(PrecheckError::Truncated { at: 2 })
    );
}

#[test]
fn precheck_rejects_strings_longer_than_the_body() {
    // Heartbeat v0: group_id length 100 with 3 bytes of data.
    let body = [0x00, 0x64, b'a', b'b', b'c'];
    assert_eq!(
        check_request_body(12, 0, &body),
        Err(PrecheckError::LengthTooLarge {
            at: 0,
            declared: 100,
            remaining: 3
        })
    );
    // i16::MAX string length.
    let body = [0x7f, 0xff, 0, 0, 0];
    assert!(matches!(
        check_request_body(12, 0, &body),
        Err(PrecheckError::LengthTooLarge {
            at: 0,
            declared: 32767,
            remaining: 3
        })
    ));
    // Heartbeat v4 (compact): group_id length 1_000_000.
    let body = [0xc1, 0x84, 0x3d, b'a'];
    assert_eq!(
        check_request_body(12, 4, &body),
        Err(PrecheckError::LengthTooLarge {
            at: 0,
            declared: 1_000_000,
            remaining: 1
        })
    );
    // JoinGroup v0: protocol metadata (bytes) length i32::MAX.
    let mut body = vec![0x00, 0x01, b'g']; // group_id
    body.extend(be32(10_000)); // session timeout
    body.extend([0x00, 0x00]); // member_id ""
    body.extend([0x00, 0x01, b'c']); // protocol_type
    body.extend(be32(1)); // one protocol
    body.extend([0x00, 0x01, b'r']); // name
    body.extend(be32(i32::MAX)); // metadata length
    body.extend([1, 2, 3]);
    assert_eq!(
        check_request_body(11, 0, &body),
        Err(PrecheckError::LengthTooLarge {
            at: 19,
            declared: i64::from(i32::MAX),
            remaining: 3
        })
    );
}

#[test]
fn precheck_rejects_negative_and_misplaced_null_lengths() {
    // Heartbeat v0: group_id length -2.
    assert_eq!(
        check_request_body(12, 0, &[0xff, 0xfe, 0, 0, 0, 0, 0, 0]),
        Err(PrecheckError::NegativeLength {
            at: 0,
            declared: -2
        })
    );
    // Heartbeat v0: group_id null (not nullable).
    assert_eq!(
        check_request_body(12, 0, &[0xff, 0xff, 0, 0, 0, 0, 0, 0]),
        Err(PrecheckError::NegativeLength {
            at: 0,
            declared: -1
        })
    );
    // Heartbeat v4: compact null group_id.
    assert_eq!(
        check_request_body(12, 4, &[0x00, 0, 0, 0, 0, 0x01, 0x00, 0x00]),
        Err(PrecheckError::NegativeLength {
            at: 0,
            declared: -1
        })
    );
    // Metadata v1: topics null is fine (all topics)...
    assert_eq!(check_request_body(3, 1, &be32(-1)), Ok(0));
    // ...but a count of -2 is not.
    assert_eq!(
        check_request_body(3, 1, &be32(-2)),
        Err(PrecheckError::NegativeLength {
            at: 0,
            declared: -2
        })
    );
    // CreateTopics v2: topics null is not allowed.
    let mut create = be32(-1).to_vec();
    create.extend([0, 0, 0, 0, 0]);
    assert_eq!(
        check_request_body(19, 2, &create),
        Err(PrecheckError::NegativeLength {
            at: 0,
            declared: -1
        })
    );
    // Produce v3: records null is fine, -5 is not.
    let mut produce = vec![0xff, 0xff, 0x00, 0x01, 0x00, 0x00, 0x75, 0x30];
    produce.extend(be32(1));
    produce.extend([0x00, 0x01, b't']);
    produce.extend(be32(1));
    produce.extend(be32(0));
    let mut null_records = produce.clone();
    null_records.extend(be32(-1));
    assert_eq!(check_request_body(0, 3, &null_records), Ok(0));
    produce.extend(be32(-5));
    assert_eq!(
        check_request_body(0, 3, &produce),
        Err(PrecheckError::NegativeLength {
            at: 23,
            declared: -5
        })
    );
}

#[test]
fn precheck_checks_typed_tagged_field_windows() {
    // Fetch v12 with empty topics/forgotten/rack and one tagged field.
    let mut prefix = Vec::new();
    for x in [-1, 500, 1, 1 << 20] {
        prefix.extend(be32(x));
    }
    prefix.push(0); // isolation level
    prefix.extend(be32(0)); // session id
    prefix.extend(be32(-1)); // session epoch
    prefix.extend([0x01, 0x01, 0x01]); // topics [], forgotten [], rack ""
    let with_tags = |tags: &[u8]| {
        let mut b = prefix.clone();
        b.extend_from_slice(tags);
        b
    };
    // Tag 0 (cluster_id) of size 4 holding the compact string "abc".
    let ok = with_tags(&[0x01, 0x00, 0x04, 0x04, b'a', b'b', b'c']);
    assert_eq!(check_request_body(1, 12, &ok), Ok(0));
    assert_eq!(lib_decode(1, 12, &ok), Ok(0));
    // Size 2 but the string inside claims 3 bytes: the library would read
    // past the declared size, so the walker refuses.
    let short = with_tags(&[0x01, 0x00, 0x02, 0x04, b'a', b'b', b'c']);
    assert!(matches!(
        check_request_body(1, 12, &short),
        Err(PrecheckError::LengthTooLarge {
            declared: 3,
            remaining: 1,
            ..
        })
    ));
    // Size 6 but the string fills only 4.
    let long = with_tags(&[0x01, 0x00, 0x06, 0x04, b'a', b'b', b'c', 0, 0]);
    assert_eq!(
        check_request_body(1, 12, &long),
        Err(PrecheckError::TrailingBytes { count: 2 })
    );
    // Unknown tags are skipped by size.
    let unknown = with_tags(&[0x02, 0x07, 0x02, 0xaa, 0xbb, 0x80, 0x01, 0x00]);
    assert_eq!(check_request_body(1, 12, &unknown), Ok(0));
    assert_eq!(lib_decode(1, 12, &unknown), Ok(0));
}

#[test]
fn precheck_large_valid_bodies_pass_and_miscounts_fail() {
    // A large, valid CreateTopics v7 body with many small nested elements is
    // accepted; the same body with its count bumped by one is not.
    let req = CreateTopicsRequest::default().with_topics(
        (0..50)
            .map(|_| {
                CreatableTopic::default().with_assignments(
                    (0..20)
                        .map(|p| {
                            CreatableReplicaAssignment::default()
                                .with_partition_index(p)
                                .with_broker_ids(vec![BrokerId(1); 10])
                        })
                        .collect(),
                )
            })
            .collect(),
    );
    let body = enc(&req, 7);
    assert_eq!(check_request_body(19, 7, &body), Ok(0));
    let mut bumped = body.clone();
    bumped[0] += 1; // 51 topics declared, 50 present
    assert!(check_request_body(19, 7, &bumped).is_err());
}

#[test]
fn precheck_error_messages_are_descriptive() {
    let err = check_request_body(3, 0, &[0x03, 0x3c, 0x0c, 0x00]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "length 54266880 at byte 0 exceeds the 0 bytes remaining"
    );
    assert_eq!(
        PrecheckError::UnsupportedVersion {
            api_key: 18,
            version: 9
        }
        .to_string(),
        "no request schema for api key 18 version 9"
    );
}
