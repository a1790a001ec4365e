//! Requests with every field populated (or sparse, or null), built with kafka-protocol's own
//! types for every api the schemas cover; the tests in the parent module encode them.

use super::*;

thread_local! {
    /// (type, field) -> whether the setter was accepted by the encoder in at
    /// least one version.
    pub(super) static SETTERS: RefCell<BTreeMap<(&'static str, &'static str), bool>> =
        const { RefCell::new(BTreeMap::new()) };
}

pub(super) fn note(ty: &'static str, field: &'static str, ok: bool) {
    SETTERS.with(|m| *m.borrow_mut().entry((ty, field)).or_insert(false) |= ok);
}

pub(super) fn encodes<T: Encodable>(value: &T, version: i16) -> bool {
    value.encode(&mut BytesMut::new(), version).is_ok()
}

/// Starts from `Default` and sets each listed field, keeping a setting only
/// if the value still encodes at `version` (kafka-protocol refuses non-default
/// values in fields a version cannot carry).
macro_rules! fill {
    ($ty:ident, $v:expr; $($field:ident = $val:expr),* $(,)?) => {{
        let version: i16 = $v;
        let mut value = $ty::default();
        $(
            let mut candidate = value.clone();
            candidate.$field = $val;
            let ok = encodes(&candidate, version);
            note(stringify!($ty), stringify!($field), ok);
            if ok {
                value = candidate;
            }
        )*
        value
    }};
}

pub(super) const ID: Uuid = Uuid::from_u128(0x0123_4567_89ab_cdef_fedc_ba98_7654_3210);

pub(super) fn s(x: &'static str) -> StrBytes {
    StrBytes::from_static_str(x)
}

/// A non-nullable string: non-empty when `full`.
pub(super) fn st(full: bool, x: &'static str) -> StrBytes {
    s(if full { x } else { "" })
}

/// A nullable string: `Some` when `full`.
pub(super) fn opt(full: bool, x: &'static str) -> Option<StrBytes> {
    full.then(|| s(x))
}

/// Three elements when `full`, one otherwise.
pub(super) fn many<T>(full: bool, mk: impl FnMut(i32) -> T) -> Vec<T> {
    (0..if full { 3 } else { 1 }).map(mk).collect()
}

pub(super) fn blob(full: bool) -> Bytes {
    if full {
        Bytes::from_static(b"\x00\x01opaque\xff")
    } else {
        Bytes::new()
    }
}

/// Unknown tagged fields (ignored by the encoder in non-flexible versions).
pub(super) fn tags(full: bool) -> BTreeMap<i32, Bytes> {
    if full {
        BTreeMap::from([
            (1000, Bytes::from_static(b"tagged")),
            (70_000, Bytes::new()),
        ])
    } else {
        BTreeMap::new()
    }
}

pub(super) fn produce(v: i16, m: Mode) -> ProduceRequest {
    let f = m == Mode::Full;
    fill!(ProduceRequest, v;
        transactional_id = f.then(|| TransactionalId(s("txn-1"))),
        acks = -1,
        timeout_ms = 30_000,
        topic_data = many(f, |t| fill!(TopicProduceData, v;
            name = TopicName(st(f, "orders")),
            partition_data = many(f, |p| fill!(PartitionProduceData, v;
                index = t * 10 + p,
                records = f.then(|| blob(true)),
                unknown_tagged_fields = tags(f),
            )),
            unknown_tagged_fields = tags(f),
        )),
        unknown_tagged_fields = tags(f),
    )
}

pub(super) fn fetch(v: i16, m: Mode) -> FetchRequest {
    let f = m == Mode::Full;
    fill!(FetchRequest, v;
        cluster_id = opt(f, "cluster-x"),
        replica_id = BrokerId(-1),
        max_wait_ms = 500,
        min_bytes = 1,
        max_bytes = 52_428_800,
        isolation_level = 1,
        session_id = 17,
        session_epoch = 3,
        topics = many(f, |t| fill!(FetchTopic, v;
            topic = TopicName(st(f, "orders")),
            partitions = many(f, |p| fill!(FetchPartition, v;
                partition = t * 10 + p,
                current_leader_epoch = 4,
                fetch_offset = 1_000_000_007,
                last_fetched_epoch = 3,
                log_start_offset = 12,
                partition_max_bytes = 1_048_576,
                unknown_tagged_fields = tags(f),
            )),
            unknown_tagged_fields = tags(f),
        )),
        forgotten_topics_data = many(f, |_| fill!(ForgottenTopic, v;
            topic = TopicName(st(f, "gone")),
            partitions = many(f, |p| p),
            unknown_tagged_fields = tags(f),
        )),
        rack_id = st(f, "rack-1"),
        unknown_tagged_fields = tags(f),
    )
}

pub(super) fn list_offsets(v: i16, m: Mode) -> ListOffsetsRequest {
    let f = m == Mode::Full;
    fill!(ListOffsetsRequest, v;
        replica_id = BrokerId(-1),
        isolation_level = 1,
        topics = many(f, |_| fill!(ListOffsetsTopic, v;
            name = TopicName(st(f, "orders")),
            partitions = many(f, |p| fill!(ListOffsetsPartition, v;
                partition_index = p,
                current_leader_epoch = 2,
                timestamp = -2,
                unknown_tagged_fields = tags(f),
            )),
            unknown_tagged_fields = tags(f),
        )),
        unknown_tagged_fields = tags(f),
    )
}

pub(super) fn metadata(v: i16, m: Mode) -> MetadataRequest {
    let f = m == Mode::Full;
    fill!(MetadataRequest, v;
        topics = (m != Mode::Nulls).then(|| many(f, |_| fill!(MetadataRequestTopic, v;
            topic_id = ID,
            name = f.then(|| TopicName(s("orders"))),
            unknown_tagged_fields = tags(f),
        ))),
        allow_auto_topic_creation = false,
        include_cluster_authorized_operations = true,
        include_topic_authorized_operations = true,
        unknown_tagged_fields = tags(f),
    )
}

pub(super) fn offset_commit(v: i16, m: Mode) -> OffsetCommitRequest {
    let f = m == Mode::Full;
    fill!(OffsetCommitRequest, v;
        group_id = GroupId(st(f, "group-a")),
        generation_id_or_member_epoch = 5,
        member_id = st(f, "member-1"),
        group_instance_id = opt(f, "instance-1"),
        retention_time_ms = 86_400_000,
        topics = many(f, |_| fill!(OffsetCommitRequestTopic, v;
            name = TopicName(st(f, "orders")),
            partitions = many(f, |p| fill!(OffsetCommitRequestPartition, v;
                partition_index = p,
                committed_offset = 4242,
                committed_leader_epoch = 7,
                committed_metadata = opt(f, "meta"),
                unknown_tagged_fields = tags(f),
            )),
            unknown_tagged_fields = tags(f),
        )),
        unknown_tagged_fields = tags(f),
    )
}

pub(super) fn offset_fetch(v: i16, m: Mode) -> OffsetFetchRequest {
    let f = m == Mode::Full;
    fill!(OffsetFetchRequest, v;
        group_id = GroupId(st(f, "group-a")),
        topics = (m != Mode::Nulls).then(|| many(f, |_| fill!(OffsetFetchRequestTopic, v;
            name = TopicName(s("orders")),
            partition_indexes = many(f, |p| p),
            unknown_tagged_fields = tags(f),
        ))),
        groups = many(f, |_| fill!(OffsetFetchRequestGroup, v;
            group_id = GroupId(st(f, "group-b")),
            member_id = opt(f, "member-2"),
            member_epoch = 9,
            topics = (m != Mode::Nulls).then(|| many(f, |_| fill!(OffsetFetchRequestTopics, v;
                name = TopicName(s("orders")),
                partition_indexes = many(f, |p| p),
                unknown_tagged_fields = tags(f),
            ))),
            unknown_tagged_fields = tags(f),
        )),
        require_stable = true,
        unknown_tagged_fields = tags(f),
    )
}

pub(super) fn find_coordinator(v: i16, m: Mode) -> FindCoordinatorRequest {
    let f = m == Mode::Full;
    fill!(FindCoordinatorRequest, v;
        key = st(f, "group-a"),
        key_type = 1,
        coordinator_keys = many(f, |_| s("group-b")),
        unknown_tagged_fields = tags(f),
    )
}

pub(super) fn join_group(v: i16, m: Mode) -> JoinGroupRequest {
    let f = m == Mode::Full;
    fill!(JoinGroupRequest, v;
        group_id = GroupId(st(f, "group-a")),
        session_timeout_ms = 45_000,
        rebalance_timeout_ms = 300_000,
        member_id = st(f, "member-1"),
        group_instance_id = opt(f, "instance-1"),
        protocol_type = st(f, "consumer"),
        protocols = many(f, |_| fill!(JoinGroupRequestProtocol, v;
            name = st(f, "range"),
            metadata = blob(f),
            unknown_tagged_fields = tags(f),
        )),
        reason = opt(f, "rejoin"),
        unknown_tagged_fields = tags(f),
    )
}

pub(super) fn heartbeat(v: i16, m: Mode) -> HeartbeatRequest {
    let f = m == Mode::Full;
    fill!(HeartbeatRequest, v;
        group_id = GroupId(st(f, "group-a")),
        generation_id = 3,
        member_id = st(f, "member-1"),
        group_instance_id = opt(f, "instance-1"),
        unknown_tagged_fields = tags(f),
    )
}

pub(super) fn leave_group(v: i16, m: Mode) -> LeaveGroupRequest {
    let f = m == Mode::Full;
    fill!(LeaveGroupRequest, v;
        group_id = GroupId(st(f, "group-a")),
        member_id = st(f, "member-1"),
        members = many(f, |_| fill!(MemberIdentity, v;
            member_id = st(f, "member-2"),
            group_instance_id = opt(f, "instance-2"),
            reason = opt(f, "bye"),
            unknown_tagged_fields = tags(f),
        )),
        unknown_tagged_fields = tags(f),
    )
}

pub(super) fn sync_group(v: i16, m: Mode) -> SyncGroupRequest {
    let f = m == Mode::Full;
    fill!(SyncGroupRequest, v;
        group_id = GroupId(st(f, "group-a")),
        generation_id = 3,
        member_id = st(f, "member-1"),
        group_instance_id = opt(f, "instance-1"),
        protocol_type = opt(f, "consumer"),
        protocol_name = opt(f, "range"),
        assignments = many(f, |_| fill!(SyncGroupRequestAssignment, v;
            member_id = st(f, "member-2"),
            assignment = blob(f),
            unknown_tagged_fields = tags(f),
        )),
        unknown_tagged_fields = tags(f),
    )
}

pub(super) fn describe_groups(v: i16, m: Mode) -> DescribeGroupsRequest {
    let f = m == Mode::Full;
    fill!(DescribeGroupsRequest, v;
        groups = many(f, |_| GroupId(st(f, "group-a"))),
        include_authorized_operations = true,
        unknown_tagged_fields = tags(f),
    )
}

pub(super) fn list_groups(v: i16, m: Mode) -> ListGroupsRequest {
    let f = m == Mode::Full;
    fill!(ListGroupsRequest, v;
        states_filter = many(f, |_| st(f, "Stable")),
        types_filter = many(f, |_| st(f, "classic")),
        unknown_tagged_fields = tags(f),
    )
}

pub(super) fn api_versions(v: i16, m: Mode) -> ApiVersionsRequest {
    let f = m == Mode::Full;
    fill!(ApiVersionsRequest, v;
        client_software_name = st(f, "strom-test"),
        client_software_version = st(f, "0.1.0"),
        unknown_tagged_fields = tags(f),
    )
}

pub(super) fn create_topics(v: i16, m: Mode) -> CreateTopicsRequest {
    let f = m == Mode::Full;
    fill!(CreateTopicsRequest, v;
        topics = many(f, |_| fill!(CreatableTopic, v;
            name = TopicName(st(f, "orders")),
            num_partitions = 3,
            replication_factor = 1,
            assignments = many(f, |p| fill!(CreatableReplicaAssignment, v;
                partition_index = p,
                broker_ids = many(f, BrokerId),
                unknown_tagged_fields = tags(f),
            )),
            configs = many(f, |_| fill!(CreatableTopicConfig, v;
                name = st(f, "retention.ms"),
                value = opt(f, "1000"),
                unknown_tagged_fields = tags(f),
            )),
            unknown_tagged_fields = tags(f),
        )),
        timeout_ms = 60_000,
        validate_only = true,
        unknown_tagged_fields = tags(f),
    )
}

pub(super) fn delete_topics(v: i16, m: Mode) -> DeleteTopicsRequest {
    let f = m == Mode::Full;
    fill!(DeleteTopicsRequest, v;
        topics = many(f, |_| fill!(DeleteTopicState, v;
            name = f.then(|| TopicName(s("orders"))),
            topic_id = ID,
            unknown_tagged_fields = tags(f),
        )),
        topic_names = many(f, |_| TopicName(st(f, "orders"))),
        timeout_ms = 60_000,
        unknown_tagged_fields = tags(f),
    )
}

pub(super) fn init_producer_id(v: i16, m: Mode) -> InitProducerIdRequest {
    let f = m == Mode::Full;
    fill!(InitProducerIdRequest, v;
        transactional_id = f.then(|| TransactionalId(s("txn-1"))),
        transaction_timeout_ms = 60_000,
        producer_id = ProducerId(77),
        producer_epoch = 3,
        unknown_tagged_fields = tags(f),
    )
}

pub(super) fn offset_for_leader_epoch(v: i16, m: Mode) -> OffsetForLeaderEpochRequest {
    let f = m == Mode::Full;
    fill!(OffsetForLeaderEpochRequest, v;
        replica_id = BrokerId(2),
        topics = many(f, |_| fill!(OffsetForLeaderTopic, v;
            topic = TopicName(st(f, "orders")),
            partitions = many(f, |p| fill!(OffsetForLeaderPartition, v;
                partition = p,
                current_leader_epoch = 6,
                leader_epoch = 5,
                unknown_tagged_fields = tags(f),
            )),
            unknown_tagged_fields = tags(f),
        )),
        unknown_tagged_fields = tags(f),
    )
}

pub(super) fn describe_configs(v: i16, m: Mode) -> DescribeConfigsRequest {
    let f = m == Mode::Full;
    fill!(DescribeConfigsRequest, v;
        resources = many(f, |_| fill!(DescribeConfigsResource, v;
            resource_type = 2,
            resource_name = st(f, "orders"),
            configuration_keys = (m != Mode::Nulls).then(|| many(f, |_| s("retention.ms"))),
            unknown_tagged_fields = tags(f),
        )),
        include_synonyms = true,
        include_documentation = true,
        unknown_tagged_fields = tags(f),
    )
}

pub(super) fn delete_records(v: i16, m: Mode) -> DeleteRecordsRequest {
    let f = m == Mode::Full;
    fill!(DeleteRecordsRequest, v;
        topics = many(f, |_| fill!(DeleteRecordsTopic, v;
            name = TopicName(st(f, "orders")),
            partitions = many(f, |p| fill!(DeleteRecordsPartition, v;
                partition_index = p,
                offset = 42,
                unknown_tagged_fields = tags(f),
            )),
            unknown_tagged_fields = tags(f),
        )),
        timeout_ms = 30_000,
        unknown_tagged_fields = tags(f),
    )
}

pub(super) fn alter_configs(v: i16, m: Mode) -> AlterConfigsRequest {
    let f = m == Mode::Full;
    fill!(AlterConfigsRequest, v;
        resources = many(f, |_| fill!(AlterConfigsResource, v;
            resource_type = 2,
            resource_name = st(f, "orders"),
            configs = many(f, |_| fill!(AlterableConfig, v;
                name = st(f, "retention.ms"),
                value = (m != Mode::Nulls).then(|| st(f, "1000")),
                unknown_tagged_fields = tags(f),
            )),
            unknown_tagged_fields = tags(f),
        )),
        validate_only = true,
        unknown_tagged_fields = tags(f),
    )
}

pub(super) fn incremental_alter_configs(v: i16, m: Mode) -> IncrementalAlterConfigsRequest {
    use kafka_protocol::messages::incremental_alter_configs_request::{
        AlterConfigsResource as IncResource, AlterableConfig as IncConfig,
    };
    let f = m == Mode::Full;
    fill!(IncrementalAlterConfigsRequest, v;
        resources = many(f, |_| fill!(IncResource, v;
            resource_type = 2,
            resource_name = st(f, "orders"),
            configs = many(f, |_| fill!(IncConfig, v;
                name = st(f, "retention.ms"),
                config_operation = 2,
                value = (m != Mode::Nulls).then(|| st(f, "1000")),
                unknown_tagged_fields = tags(f),
            )),
            unknown_tagged_fields = tags(f),
        )),
        validate_only = true,
        unknown_tagged_fields = tags(f),
    )
}

pub(super) fn create_partitions(v: i16, m: Mode) -> CreatePartitionsRequest {
    let f = m == Mode::Full;
    fill!(CreatePartitionsRequest, v;
        topics = many(f, |_| fill!(CreatePartitionsTopic, v;
            name = TopicName(st(f, "orders")),
            count = 6,
            assignments = (m != Mode::Nulls).then(|| many(f, |_| fill!(CreatePartitionsAssignment, v;
                broker_ids = many(f, BrokerId),
                unknown_tagged_fields = tags(f),
            ))),
            unknown_tagged_fields = tags(f),
        )),
        timeout_ms = 60_000,
        validate_only = true,
        unknown_tagged_fields = tags(f),
    )
}

pub(super) fn delete_groups(v: i16, m: Mode) -> DeleteGroupsRequest {
    let f = m == Mode::Full;
    fill!(DeleteGroupsRequest, v;
        groups_names = many(f, |_| GroupId(st(f, "group-a"))),
        unknown_tagged_fields = tags(f),
    )
}

pub(super) fn offset_delete(v: i16, m: Mode) -> OffsetDeleteRequest {
    let f = m == Mode::Full;
    fill!(OffsetDeleteRequest, v;
        group_id = GroupId(st(f, "group-a")),
        topics = many(f, |_| fill!(OffsetDeleteRequestTopic, v;
            name = TopicName(st(f, "orders")),
            partitions = many(f, |p| fill!(OffsetDeleteRequestPartition, v;
                partition_index = p,
            )),
        )),
    )
}

pub(super) fn describe_cluster(v: i16, m: Mode) -> DescribeClusterRequest {
    let f = m == Mode::Full;
    fill!(DescribeClusterRequest, v;
        include_cluster_authorized_operations = true,
        endpoint_type = 2,
        unknown_tagged_fields = tags(f),
    )
}

pub(super) fn describe_producers(v: i16, m: Mode) -> DescribeProducersRequest {
    let f = m == Mode::Full;
    fill!(DescribeProducersRequest, v;
        topics = many(f, |_| fill!(TopicRequest, v;
            name = TopicName(st(f, "orders")),
            partition_indexes = many(f, |p| p),
            unknown_tagged_fields = tags(f),
        )),
        unknown_tagged_fields = tags(f),
    )
}

pub(super) fn add_partitions_to_txn(v: i16, m: Mode) -> AddPartitionsToTxnRequest {
    let f = m == Mode::Full;
    let topics = || {
        many(f, |_| {
            fill!(AddPartitionsToTxnTopic, v;
                name = TopicName(st(f, "orders")),
                partitions = many(f, |p| p),
                unknown_tagged_fields = tags(f),
            )
        })
    };
    fill!(AddPartitionsToTxnRequest, v;
        transactions = many(f, |_| fill!(AddPartitionsToTxnTransaction, v;
            transactional_id = TransactionalId(st(f, "txn-1")),
            producer_id = ProducerId(77),
            producer_epoch = 3,
            verify_only = true,
            topics = topics(),
            unknown_tagged_fields = tags(f),
        )),
        v3_and_below_transactional_id = TransactionalId(st(f, "txn-1")),
        v3_and_below_producer_id = ProducerId(77),
        v3_and_below_producer_epoch = 3,
        v3_and_below_topics = topics(),
        unknown_tagged_fields = tags(f),
    )
}

pub(super) fn add_offsets_to_txn(v: i16, m: Mode) -> AddOffsetsToTxnRequest {
    let f = m == Mode::Full;
    fill!(AddOffsetsToTxnRequest, v;
        transactional_id = TransactionalId(st(f, "txn-1")),
        producer_id = ProducerId(77),
        producer_epoch = 3,
        group_id = GroupId(st(f, "group-a")),
        unknown_tagged_fields = tags(f),
    )
}

pub(super) fn end_txn(v: i16, m: Mode) -> EndTxnRequest {
    let f = m == Mode::Full;
    fill!(EndTxnRequest, v;
        transactional_id = TransactionalId(st(f, "txn-1")),
        producer_id = ProducerId(77),
        producer_epoch = 3,
        committed = true,
        unknown_tagged_fields = tags(f),
    )
}

pub(super) fn txn_offset_commit(v: i16, m: Mode) -> TxnOffsetCommitRequest {
    let f = m == Mode::Full;
    fill!(TxnOffsetCommitRequest, v;
        transactional_id = TransactionalId(st(f, "txn-1")),
        group_id = GroupId(st(f, "group-a")),
        producer_id = ProducerId(77),
        producer_epoch = 3,
        generation_id = 5,
        member_id = st(f, "member-1"),
        group_instance_id = opt(f, "instance-1"),
        topics = many(f, |_| fill!(TxnOffsetCommitRequestTopic, v;
            name = TopicName(st(f, "orders")),
            partitions = many(f, |p| fill!(TxnOffsetCommitRequestPartition, v;
                partition_index = p,
                committed_offset = 4242,
                committed_leader_epoch = 7,
                committed_metadata = opt(f, "meta"),
                unknown_tagged_fields = tags(f),
            )),
            unknown_tagged_fields = tags(f),
        )),
        unknown_tagged_fields = tags(f),
    )
}

pub(super) fn describe_transactions(v: i16, m: Mode) -> DescribeTransactionsRequest {
    let f = m == Mode::Full;
    fill!(DescribeTransactionsRequest, v;
        transactional_ids = many(f, |_| TransactionalId(st(f, "txn-1"))),
        unknown_tagged_fields = tags(f),
    )
}

/// `transactional_id_pattern` (v2 only) is left out: Strom checks v0..=v1, so that setter would
/// never be accepted.
pub(super) fn list_transactions(v: i16, m: Mode) -> ListTransactionsRequest {
    let f = m == Mode::Full;
    fill!(ListTransactionsRequest, v;
        state_filters = many(f, |_| st(f, "Ongoing")),
        producer_id_filters = many(f, |i| ProducerId(77 + i64::from(i))),
        duration_filter = 60_000,
        unknown_tagged_fields = tags(f),
    )
}

pub(super) fn sasl_handshake(v: i16, m: Mode) -> SaslHandshakeRequest {
    let f = m == Mode::Full;
    fill!(SaslHandshakeRequest, v;
        mechanism = st(f, "SCRAM-SHA-256"),
    )
}

pub(super) fn describe_acls(v: i16, m: Mode) -> DescribeAclsRequest {
    let f = m == Mode::Full;
    fill!(DescribeAclsRequest, v;
        resource_type_filter = 2,
        resource_name_filter = opt(f, "orders"),
        pattern_type_filter = 4,
        principal_filter = opt(f, "User:alice"),
        host_filter = opt(f, "*"),
        operation = 3,
        permission_type = 3,
        unknown_tagged_fields = tags(f),
    )
}

pub(super) fn create_acls(v: i16, m: Mode) -> CreateAclsRequest {
    let f = m == Mode::Full;
    fill!(CreateAclsRequest, v;
        creations = many(f, |_| fill!(AclCreation, v;
            resource_type = 2,
            resource_name = st(f, "orders"),
            resource_pattern_type = 4,
            principal = st(f, "User:alice"),
            host = st(f, "*"),
            operation = 3,
            permission_type = 3,
            unknown_tagged_fields = tags(f),
        )),
        unknown_tagged_fields = tags(f),
    )
}

pub(super) fn delete_acls(v: i16, m: Mode) -> DeleteAclsRequest {
    let f = m == Mode::Full;
    fill!(DeleteAclsRequest, v;
        filters = many(f, |_| fill!(DeleteAclsFilter, v;
            resource_type_filter = 2,
            resource_name_filter = opt(f, "orders"),
            pattern_type_filter = 4,
            principal_filter = opt(f, "User:alice"),
            host_filter = opt(f, "*"),
            operation = 3,
            permission_type = 2,
            unknown_tagged_fields = tags(f),
        )),
        unknown_tagged_fields = tags(f),
    )
}

pub(super) fn sasl_authenticate(v: i16, m: Mode) -> SaslAuthenticateRequest {
    let f = m == Mode::Full;
    fill!(SaslAuthenticateRequest, v;
        auth_bytes = blob(f),
        unknown_tagged_fields = tags(f),
    )
}

pub(super) fn describe_client_quotas(v: i16, m: Mode) -> DescribeClientQuotasRequest {
    let f = m == Mode::Full;
    fill!(DescribeClientQuotasRequest, v;
        components = many(f, |_| fill!(ComponentData, v;
            entity_type = st(f, "user"),
            match_type = 2,
            _match = opt(f, "alice"),
            unknown_tagged_fields = tags(f),
        )),
        strict = true,
        unknown_tagged_fields = tags(f),
    )
}

pub(super) fn alter_client_quotas(v: i16, m: Mode) -> AlterClientQuotasRequest {
    let f = m == Mode::Full;
    fill!(AlterClientQuotasRequest, v;
        entries = many(f, |_| fill!(EntryData, v;
            entity = many(f, |_| fill!(EntityData, v;
                entity_type = st(f, "user"),
                entity_name = opt(f, "alice"),
                unknown_tagged_fields = tags(f),
            )),
            ops = many(f, |_| fill!(OpData, v;
                key = st(f, "producer_byte_rate"),
                value = 1_048_576.5,
                remove = true,
                unknown_tagged_fields = tags(f),
            )),
            unknown_tagged_fields = tags(f),
        )),
        validate_only = true,
        unknown_tagged_fields = tags(f),
    )
}

pub(super) fn describe_user_scram_credentials(
    v: i16,
    m: Mode,
) -> DescribeUserScramCredentialsRequest {
    let f = m == Mode::Full;
    fill!(DescribeUserScramCredentialsRequest, v;
        users = (m != Mode::Nulls).then(|| many(f, |_| fill!(UserName, v;
            name = st(f, "alice"),
            unknown_tagged_fields = tags(f),
        ))),
        unknown_tagged_fields = tags(f),
    )
}

pub(super) fn alter_user_scram_credentials(v: i16, m: Mode) -> AlterUserScramCredentialsRequest {
    let f = m == Mode::Full;
    fill!(AlterUserScramCredentialsRequest, v;
        deletions = many(f, |_| fill!(ScramCredentialDeletion, v;
            name = st(f, "bob"),
            mechanism = 2,
            unknown_tagged_fields = tags(f),
        )),
        upsertions = many(f, |_| fill!(ScramCredentialUpsertion, v;
            name = st(f, "alice"),
            mechanism = 1,
            iterations = 8192,
            salt = blob(f),
            salted_password = blob(f),
            unknown_tagged_fields = tags(f),
        )),
        unknown_tagged_fields = tags(f),
    )
}

/// How a builder fills a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// One element per array, empty strings and bytes, null strings/bytes,
    /// but nullable arrays present (so nulls inside them are exercised).
    Sparse,
    /// Like `Sparse`, with nullable arrays null as well.
    Nulls,
    /// Three elements per array, non-empty strings and bytes, `Some` for
    /// nullable fields, unknown tagged fields in flexible versions.
    Full,
}
