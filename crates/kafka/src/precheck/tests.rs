//! Tests proving the schemas match kafka-protocol 0.18 and the walker rejects
//! hostile bodies.
//!
//! The core check: for every api and version, requests with every field
//! populated (built with kafka-protocol's own types and encoder) must be
//! accepted and consumed exactly, and the library must decode the same bytes.

use super::*;
use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::add_offsets_to_txn_request::AddOffsetsToTxnRequest;
use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::alter_client_quotas_request::{
    AlterClientQuotasRequest, EntityData, EntryData, OpData,
};
use kafka_protocol::messages::alter_configs_request::{
    AlterConfigsRequest, AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    AlterUserScramCredentialsRequest, ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::api_versions_request::ApiVersionsRequest;
use kafka_protocol::messages::create_acls_request::{AclCreation, CreateAclsRequest};
use kafka_protocol::messages::create_partitions_request::{
    CreatePartitionsAssignment, CreatePartitionsRequest, CreatePartitionsTopic,
};
use kafka_protocol::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig, CreateTopicsRequest,
};
use kafka_protocol::messages::delete_acls_request::{DeleteAclsFilter, DeleteAclsRequest};
use kafka_protocol::messages::delete_groups_request::DeleteGroupsRequest;
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsRequest, DeleteRecordsTopic,
};
use kafka_protocol::messages::delete_topics_request::{DeleteTopicState, DeleteTopicsRequest};
use kafka_protocol::messages::describe_acls_request::DescribeAclsRequest;
use kafka_protocol::messages::describe_client_quotas_request::{
    ComponentData, DescribeClientQuotasRequest,
};
use kafka_protocol::messages::describe_cluster_request::DescribeClusterRequest;
use kafka_protocol::messages::describe_configs_request::{
    DescribeConfigsRequest, DescribeConfigsResource,
};
use kafka_protocol::messages::describe_groups_request::DescribeGroupsRequest;
use kafka_protocol::messages::describe_producers_request::{
    DescribeProducersRequest, TopicRequest,
};
use kafka_protocol::messages::describe_transactions_request::DescribeTransactionsRequest;
use kafka_protocol::messages::describe_user_scram_credentials_request::{
    DescribeUserScramCredentialsRequest, UserName,
};
use kafka_protocol::messages::end_txn_request::EndTxnRequest;
use kafka_protocol::messages::fetch_request::{
    FetchPartition, FetchRequest, FetchTopic, ForgottenTopic,
};
use kafka_protocol::messages::find_coordinator_request::FindCoordinatorRequest;
use kafka_protocol::messages::heartbeat_request::HeartbeatRequest;
use kafka_protocol::messages::incremental_alter_configs_request::IncrementalAlterConfigsRequest;
use kafka_protocol::messages::init_producer_id_request::InitProducerIdRequest;
use kafka_protocol::messages::join_group_request::{JoinGroupRequest, JoinGroupRequestProtocol};
use kafka_protocol::messages::leave_group_request::{LeaveGroupRequest, MemberIdentity};
use kafka_protocol::messages::list_groups_request::ListGroupsRequest;
use kafka_protocol::messages::list_offsets_request::{
    ListOffsetsPartition, ListOffsetsRequest, ListOffsetsTopic,
};
use kafka_protocol::messages::list_transactions_request::ListTransactionsRequest;
use kafka_protocol::messages::metadata_request::{MetadataRequest, MetadataRequestTopic};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequest, OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequest, OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequest, OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderEpochRequest, OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::produce_request::{
    PartitionProduceData, ProduceRequest, TopicProduceData,
};
use kafka_protocol::messages::sasl_authenticate_request::SaslAuthenticateRequest;
use kafka_protocol::messages::sasl_handshake_request::SaslHandshakeRequest;
use kafka_protocol::messages::sync_group_request::{SyncGroupRequest, SyncGroupRequestAssignment};
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequest, TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::{BrokerId, GroupId, ProducerId, TopicName, TransactionalId};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use proptest::prelude::*;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::OnceLock;
use uuid::Uuid;

/// The ranges Strom advertises (api key, min, max).
const EXPECTED: &[(i16, i16, i16)] = &[
    (0, 3, 12),
    (1, 4, 12),
    (2, 1, 8),
    (3, 0, 12),
    (8, 2, 9),
    (9, 1, 9),
    (10, 0, 4),
    (11, 0, 9),
    (12, 0, 4),
    (13, 0, 5),
    (14, 0, 5),
    (15, 0, 5),
    (16, 0, 5),
    (17, 0, 1),
    (18, 0, 3),
    (19, 2, 7),
    (20, 1, 6),
    (21, 0, 2),
    (22, 0, 5),
    (23, 2, 4),
    (24, 0, 5),
    (25, 0, 4),
    (26, 0, 5),
    (28, 0, 5),
    (29, 1, 3),
    (30, 1, 3),
    (31, 1, 3),
    (32, 1, 4),
    (33, 0, 2),
    (36, 0, 2),
    (37, 0, 3),
    (42, 0, 2),
    (44, 0, 1),
    (47, 0, 0),
    (48, 0, 1),
    (49, 0, 1),
    (50, 0, 0),
    (51, 0, 0),
    (60, 0, 1),
    (61, 0, 0),
    (65, 0, 0),
    (66, 0, 1),
];

// ---------------------------------------------------------------------------
// Building populated requests with kafka-protocol.
// ---------------------------------------------------------------------------

mod requests;
use requests::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    /// `Default::default()`: empty arrays, nulls where the default is null.
    Default,
    Built(Mode),
}

const VARIANTS: [Variant; 4] = [
    Variant::Default,
    Variant::Built(Mode::Sparse),
    Variant::Built(Mode::Nulls),
    Variant::Built(Mode::Full),
];

fn enc<T: Encodable>(req: &T, v: i16) -> Vec<u8> {
    let mut buf = BytesMut::new();
    if let Err(e) = req.encode(&mut buf, v) {
        panic!("encode v{v} failed: {e:#}");
    }
    buf.to_vec()
}

/// Encodes a request body of `api_key` at `v` with kafka-protocol.
fn body(api_key: i16, v: i16, variant: Variant) -> Vec<u8> {
    macro_rules! pick {
        ($t:ident, $build:ident) => {
            match variant {
                Variant::Default => enc(&$t::default(), v),
                Variant::Built(mode) => enc(&$build(v, mode), v),
            }
        };
    }
    match api_key {
        0 => pick!(ProduceRequest, produce),
        1 => pick!(FetchRequest, fetch),
        2 => pick!(ListOffsetsRequest, list_offsets),
        3 => pick!(MetadataRequest, metadata),
        8 => pick!(OffsetCommitRequest, offset_commit),
        9 => pick!(OffsetFetchRequest, offset_fetch),
        10 => pick!(FindCoordinatorRequest, find_coordinator),
        11 => pick!(JoinGroupRequest, join_group),
        12 => pick!(HeartbeatRequest, heartbeat),
        13 => pick!(LeaveGroupRequest, leave_group),
        14 => pick!(SyncGroupRequest, sync_group),
        15 => pick!(DescribeGroupsRequest, describe_groups),
        16 => pick!(ListGroupsRequest, list_groups),
        17 => pick!(SaslHandshakeRequest, sasl_handshake),
        18 => pick!(ApiVersionsRequest, api_versions),
        19 => pick!(CreateTopicsRequest, create_topics),
        20 => pick!(DeleteTopicsRequest, delete_topics),
        21 => pick!(DeleteRecordsRequest, delete_records),
        22 => pick!(InitProducerIdRequest, init_producer_id),
        23 => pick!(OffsetForLeaderEpochRequest, offset_for_leader_epoch),
        24 => pick!(AddPartitionsToTxnRequest, add_partitions_to_txn),
        25 => pick!(AddOffsetsToTxnRequest, add_offsets_to_txn),
        26 => pick!(EndTxnRequest, end_txn),
        28 => pick!(TxnOffsetCommitRequest, txn_offset_commit),
        29 => pick!(DescribeAclsRequest, describe_acls),
        30 => pick!(CreateAclsRequest, create_acls),
        31 => pick!(DeleteAclsRequest, delete_acls),
        32 => pick!(DescribeConfigsRequest, describe_configs),
        33 => pick!(AlterConfigsRequest, alter_configs),
        36 => pick!(SaslAuthenticateRequest, sasl_authenticate),
        37 => pick!(CreatePartitionsRequest, create_partitions),
        42 => pick!(DeleteGroupsRequest, delete_groups),
        44 => pick!(IncrementalAlterConfigsRequest, incremental_alter_configs),
        47 => pick!(OffsetDeleteRequest, offset_delete),
        48 => pick!(DescribeClientQuotasRequest, describe_client_quotas),
        49 => pick!(AlterClientQuotasRequest, alter_client_quotas),
        50 => pick!(
            DescribeUserScramCredentialsRequest,
            describe_user_scram_credentials
        ),
        51 => pick!(
            AlterUserScramCredentialsRequest,
            alter_user_scram_credentials
        ),
        60 => pick!(DescribeClusterRequest, describe_cluster),
        61 => pick!(DescribeProducersRequest, describe_producers),
        65 => pick!(DescribeTransactionsRequest, describe_transactions),
        66 => pick!(ListTransactionsRequest, list_transactions),
        _ => panic!("no builder for api key {api_key}"),
    }
}

/// Decodes with kafka-protocol; `Ok(bytes left over)` or the error text.
///
/// Only call this on bodies the walker vouches for (see the proptests):
/// on hostile bodies the library may abort the process.
fn lib_decode(api_key: i16, v: i16, body: &[u8]) -> Result<usize, String> {
    let mut buf = Bytes::copy_from_slice(body);
    macro_rules! dec {
        ($t:ty) => {
            <$t as Decodable>::decode(&mut buf, v)
                .map(drop)
                .map_err(|e| format!("{e:#}"))
        };
    }
    let result = match api_key {
        0 => dec!(ProduceRequest),
        1 => dec!(FetchRequest),
        2 => dec!(ListOffsetsRequest),
        3 => dec!(MetadataRequest),
        8 => dec!(OffsetCommitRequest),
        9 => dec!(OffsetFetchRequest),
        10 => dec!(FindCoordinatorRequest),
        11 => dec!(JoinGroupRequest),
        12 => dec!(HeartbeatRequest),
        13 => dec!(LeaveGroupRequest),
        14 => dec!(SyncGroupRequest),
        15 => dec!(DescribeGroupsRequest),
        16 => dec!(ListGroupsRequest),
        17 => dec!(SaslHandshakeRequest),
        18 => dec!(ApiVersionsRequest),
        19 => dec!(CreateTopicsRequest),
        20 => dec!(DeleteTopicsRequest),
        21 => dec!(DeleteRecordsRequest),
        22 => dec!(InitProducerIdRequest),
        23 => dec!(OffsetForLeaderEpochRequest),
        24 => dec!(AddPartitionsToTxnRequest),
        25 => dec!(AddOffsetsToTxnRequest),
        26 => dec!(EndTxnRequest),
        28 => dec!(TxnOffsetCommitRequest),
        29 => dec!(DescribeAclsRequest),
        30 => dec!(CreateAclsRequest),
        31 => dec!(DeleteAclsRequest),
        32 => dec!(DescribeConfigsRequest),
        33 => dec!(AlterConfigsRequest),
        36 => dec!(SaslAuthenticateRequest),
        37 => dec!(CreatePartitionsRequest),
        42 => dec!(DeleteGroupsRequest),
        44 => dec!(IncrementalAlterConfigsRequest),
        47 => dec!(OffsetDeleteRequest),
        48 => dec!(DescribeClientQuotasRequest),
        49 => dec!(AlterClientQuotasRequest),
        50 => dec!(DescribeUserScramCredentialsRequest),
        51 => dec!(AlterUserScramCredentialsRequest),
        60 => dec!(DescribeClusterRequest),
        61 => dec!(DescribeProducersRequest),
        65 => dec!(DescribeTransactionsRequest),
        66 => dec!(ListTransactionsRequest),
        _ => panic!("no decoder for api key {api_key}"),
    };
    result.map(|()| buf.remaining())
}

/// Every (api key, version) pair in `EXPECTED`.
fn all_pairs() -> Vec<(i16, i16)> {
    EXPECTED
        .iter()
        .flat_map(|&(key, min, max)| (min..=max).map(move |v| (key, v)))
        .collect()
}

/// A valid body: (api key, version, variant, bytes).
type Sample = (i16, i16, Variant, Vec<u8>);

/// A sample for every pair and variant, built once.
fn corpus() -> &'static [Sample] {
    static CORPUS: OnceLock<Vec<Sample>> = OnceLock::new();
    CORPUS.get_or_init(|| {
        all_pairs()
            .into_iter()
            .flat_map(|(key, v)| VARIANTS.map(|variant| (key, v, variant, body(key, v, variant))))
            .collect()
    })
}

// ---------------------------------------------------------------------------
// Schema table sanity.
// ---------------------------------------------------------------------------

#[test]
fn precheck_version_ranges_are_the_advertised_ones() {
    let keys: Vec<i16> = SCHEMAS.iter().map(|s| s.api_key).collect();
    let expected_keys: Vec<i16> = EXPECTED.iter().map(|e| e.0).collect();
    assert_eq!(keys, expected_keys, "one schema per api key, sorted");
    for &(key, min, max) in EXPECTED {
        assert_eq!(supported_versions(key), Some((min, max)), "api {key}");
        assert_eq!(
            check_request_body(key, min - 1, &[]),
            Err(PrecheckError::UnsupportedVersion {
                api_key: key,
                version: min - 1
            })
        );
        assert_eq!(
            check_request_body(key, max + 1, &[0; 64]),
            Err(PrecheckError::UnsupportedVersion {
                api_key: key,
                version: max + 1
            })
        );
    }
    assert_eq!(
        supported_apis().collect::<Vec<_>>(),
        EXPECTED
            .iter()
            .map(|&(k, min, max)| (k, (min, max)))
            .collect::<Vec<_>>()
    );
    for unknown in [-1, 4, 5, 6, 7, 27, 34, 1000, i16::MAX, i16::MIN] {
        assert_eq!(supported_versions(unknown), None);
        assert!(matches!(
            check_request_body(unknown, 0, &[]),
            Err(PrecheckError::UnsupportedVersion { .. })
        ));
    }
    // ApiVersions v4 exists in the library but Strom does not advertise it;
    // the caller answers newer ApiVersions requests itself.
    assert!(matches!(
        check_request_body(18, 4, &[0, 0]),
        Err(PrecheckError::UnsupportedVersion {
            api_key: 18,
            version: 4
        })
    ));
}

fn depth(def: &StructDef) -> usize {
    1 + def
        .fields
        .iter()
        .map(|f| match f.ty {
            Ty::Array {
                elem: Elem::Struct(inner),
                ..
            } => depth(inner),
            _ => 0,
        })
        .max()
        .unwrap_or(0)
}

/// Visits every struct reachable from `def` present at `version`.
fn for_each_struct(
    def: &'static StructDef,
    version: i16,
    visit: &mut impl FnMut(&'static StructDef),
) {
    visit(def);
    for f in def.fields.iter().filter(|f| f.present(version)) {
        if let Ty::Array {
            elem: Elem::Struct(inner),
            ..
        } = f.ty
        {
            for_each_struct(inner, version, visit);
        }
    }
}

#[test]
fn precheck_schemas_are_well_formed() {
    for schema in SCHEMAS {
        assert!(schema.min_version <= schema.max_version, "{}", schema.name);
        assert!(
            depth(schema.body) <= 4,
            "{} nests deeper than documented",
            schema.name
        );
        for v in schema.min_version..=schema.max_version {
            let walker = Walker {
                body: &[],
                pos: 0,
                end: 0,
                version: v,
                flexible: v >= schema.flexible_from,
                budget: 0,
            };
            for_each_struct(schema.body, v, &mut |def| {
                for f in def.fields {
                    assert!(f.min <= f.max, "{}.{}", def.name, f.name);
                    // Every array element occupies at least one byte, so the
                    // count check and the element budget never reject a
                    // well-formed body.
                    if let Ty::Array { elem, .. } = f.ty {
                        if f.present(v) {
                            assert!(
                                walker.min_elem_size(elem) >= 1,
                                "{}.{} v{v}: zero-size elements",
                                def.name,
                                f.name
                            );
                        }
                    }
                }
                for t in def.tagged {
                    assert!(
                        t.min >= schema.flexible_from && t.min <= t.max,
                        "{}.{}",
                        def.name,
                        t.name
                    );
                }
            });
        }
    }
}

// ---------------------------------------------------------------------------
// Everything kafka-protocol encodes is accepted.
// ---------------------------------------------------------------------------

#[test]
fn precheck_accepts_every_encoded_request() {
    let mut checked = 0;
    for &(key, v, variant, ref bytes) in corpus() {
        let ctx = format!("api {key} v{v} {variant:?} ({} bytes)", bytes.len());
        assert_eq!(
            lib_decode(key, v, bytes),
            Ok(0),
            "{ctx}: library round trip"
        );
        assert_eq!(check_request_body(key, v, bytes), Ok(0), "{ctx}");
        checked += 1;
    }
    assert_eq!(checked, all_pairs().len() * VARIANTS.len());

    // Every setter was accepted by the encoder in at least one version (a
    // setter that never sticks would leave its field untested).
    let rejected: Vec<_> = SETTERS.with(|m| {
        m.borrow()
            .iter()
            .filter(|(_, ok)| !**ok)
            .map(|(k, _)| *k)
            .collect()
    });
    assert!(
        rejected.is_empty(),
        "setters never accepted in any version: {rejected:?}"
    );
}

#[test]
fn precheck_variants_really_differ() {
    // The built variants of each version differ from each other, so the test
    // corpus covers empty, single-element and multi-element arrays, nulls and
    // values.
    for (key, v) in all_pairs() {
        let [default, sparse, _nulls, full] = VARIANTS.map(|variant| body(key, v, variant));
        if full.is_empty() {
            // No fields at all in this version (ApiVersions, ListGroups v0-2).
            assert!(default.is_empty() && sparse.is_empty(), "api {key} v{v}");
            continue;
        }
        assert_ne!(full, default, "api {key} v{v}");
        assert_ne!(full, sparse, "api {key} v{v}");
    }
}

#[test]
fn precheck_rejects_every_proper_prefix_and_trailing_bytes() {
    for &(key, v, variant, ref bytes) in corpus() {
        for cut in 0..bytes.len() {
            let err = check_request_body(key, v, &bytes[..cut])
                .expect_err("a proper prefix of a valid body must be rejected");
            assert!(
                matches!(
                    err,
                    PrecheckError::Truncated { .. } | PrecheckError::LengthTooLarge { .. }
                ),
                "api {key} v{v} {variant:?} cut at {cut}: {err:?}"
            );
        }
        for extra in [&[0u8][..], &[0xff; 3][..], &[1, 2, 3, 4, 5, 6, 7, 8][..]] {
            let mut longer = bytes.clone();
            longer.extend_from_slice(extra);
            // Trailing bytes are ignored, as Kafka ignores them.
            assert_eq!(
                check_request_body(key, v, &longer),
                Ok(extra.len()),
                "api {key} v{v} {variant:?}"
            );
        }
    }
}

// Hand-made hostile bodies: `tests/hostile.rs`.
mod hostile;

// ---------------------------------------------------------------------------
// Property tests.
// ---------------------------------------------------------------------------

/// Checks the walker's verdict on `bytes` against kafka-protocol.
///
/// * Accepted: the library must decode the body and consume all of it
///   (allowing only content errors the walker does not look at: invalid
///   UTF-8, and known tags the library refuses at this version).
/// * Rejected as truncated, bad null/negative length or trailing bytes: the
///   library must not decode it completely either. This is safe to ask only
///   because every length the library reads before the failure point was
///   checked by the walker; LengthTooLarge bodies are never handed over.
fn agree_with_library(key: i16, v: i16, bytes: &[u8]) -> Result<(), TestCaseError> {
    match check_request_body(key, v, bytes) {
        Ok(trailing) => match lib_decode(key, v, bytes) {
            Ok(left) => prop_assert_eq!(left, trailing, "library and walker disagree on the end"),
            Err(e) => prop_assert!(
                e.contains("utf-8") || e.contains("Tag "),
                "walker accepted but library failed: {}",
                e
            ),
        },
        // Fetch v12's typed tagged field is read by the library regardless
        // of its declared size, so after a size mismatch the library's walk
        // is no longer the walker's: do not hand it such bodies.
        Err(_) if key == 1 => {}
        Err(
            PrecheckError::Truncated { .. }
            | PrecheckError::NegativeLength { .. }
            | PrecheckError::TrailingBytes { .. },
        ) => {
            prop_assert_ne!(lib_decode(key, v, bytes), Ok(0), "library accepted it");
        }
        Err(PrecheckError::UnsupportedVersion { .. }) => {
            prop_assert!(false, "pair comes from the supported list")
        }
        Err(PrecheckError::LengthTooLarge { .. } | PrecheckError::VarintTooLong { .. }) => {}
    }
    Ok(())
}

#[test]
fn precheck_single_byte_mutations_agree_with_library() {
    // Every byte of every full body replaced by a few interesting values.
    let mut accepted = 0usize;
    let mut total = 0usize;
    for &(key, v, variant, ref bytes) in corpus() {
        if variant != Variant::Built(Mode::Full) {
            continue;
        }
        for i in 0..bytes.len() {
            let b = bytes[i];
            for new in [
                0x00,
                0x01,
                0x7f,
                0x80,
                0xff,
                b.wrapping_add(1),
                b.wrapping_sub(1),
            ] {
                if new == b {
                    continue;
                }
                let mut mutated = bytes.clone();
                mutated[i] = new;
                total += 1;
                if check_request_body(key, v, &mutated).is_ok() {
                    accepted += 1;
                }
                if let Err(e) = agree_with_library(key, v, &mutated) {
                    panic!("api {key} v{v} byte {i} {b:#04x} -> {new:#04x}: {e}");
                }
            }
        }
    }
    // Plenty of mutants stay well-formed (changed values, shorter strings
    // with trailing bytes elsewhere, ...), so both directions are exercised.
    eprintln!("single-byte mutants: {accepted} of {total} accepted");
    assert!(accepted * 10 > total, "{accepted} of {total} accepted");
}

fn apply_mutations(mut bytes: Vec<u8>, ops: &[(u8, usize, u8)]) -> Vec<u8> {
    for &(op, at, val) in ops {
        let len = bytes.len();
        match op {
            0 if len > 0 => bytes[at % len] = val,
            1 => bytes.insert(at % (len + 1), val),
            2 if len > 0 => {
                bytes.remove(at % len);
            }
            3 if len > 0 => bytes[at % len] ^= 1 << (val % 8),
            4 if len > 0 => bytes[at % len] = bytes[at % len].wrapping_add(val % 5).wrapping_sub(2),
            _ => bytes.truncate(at % (len + 1)),
        }
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn precheck_random_bytes_never_panic(
        pair in 0..all_pairs().len(),
        bytes in prop::collection::vec(prop_oneof![any::<u8>(), 0u8..3, Just(0xffu8)], 0..96),
    ) {
        let (key, v) = all_pairs()[pair];
        agree_with_library(key, v, &bytes)?;
    }

    #[test]
    fn precheck_mutated_requests_agree_with_library(
        index in 0..corpus().len(),
        ops in prop::collection::vec((0u8..6, any::<usize>(), any::<u8>()), 1..4),
    ) {
        let (key, v, _, ref bytes) = corpus()[index];
        let mutated = apply_mutations(bytes.clone(), &ops);
        agree_with_library(key, v, &mutated)?;
    }
}
