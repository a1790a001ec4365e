//! Authorization of every Kafka API, as Kafka's broker does it: each request is checked
//! against the connection's principal before its handler runs. Resources a request may not
//! touch are taken out of it and answered with the authorization error of their type
//! (topic 29, group 30, cluster 31, transactional id 53); resources it may not even see
//! (Metadata's topic list, ListGroups, ListTransactions) are left out of the answer.
//!
//! With the authorizer off (the default on a plaintext single node) every request goes
//! straight to its handler. The checks read the replicated ACLs on every request, so an ACL
//! change applies to open connections as soon as this node has applied it.

use std::sync::Arc;

use kafka_protocol::messages::*;
use strom_auth::Operation::{self, *};
use strom_auth::ResourceType::{self, Cluster, Group, Topic, TransactionalId as TxnId};

use crate::errors::denied;
use crate::handlers::{self, Client, Reply};
use crate::Context;

mod operations;
mod reply;
use reply::*;

/// Kafka's name for the one Cluster resource.
pub const CLUSTER: &str = "kafka-cluster";

pub fn handle(ctx: &Arc<Context>, request: RequestKind, version: i16, client: &Client) -> Reply {
    if !ctx.security_config.authorizer {
        return handlers::handle(ctx, request, version, client);
    }
    if !operations::asked(&request) {
        return checked(ctx, request, version, client);
    }
    let reply = checked(ctx, request, version, client);
    let (ctx, client) = (Arc::clone(ctx), client.clone());
    map(reply, move |mut resp| {
        operations::narrow(&ctx, &client, &mut resp);
        resp
    })
}

/// The request with what the principal may not touch taken out, then its handler's answer
/// with those resources' refusals added.
fn checked(ctx: &Arc<Context>, request: RequestKind, version: i16, client: &Client) -> Reply {
    let can = |op: Operation, rt: ResourceType, name: &str| ctx.allowed(client, op, rt, name);
    let pass = |request: RequestKind| handlers::handle(ctx, request, version, client);
    match request {
        RequestKind::Produce(mut r) => {
            if let Some(id) = &r.transactional_id {
                if !can(Write, TxnId, id) {
                    let resp = produce_denied(&r.topic_data, denied::TRANSACTIONAL_ID);
                    return if r.acks == 0 {
                        Reply::Nothing
                    } else {
                        now(resp)
                    };
                }
            }
            let (ok, no): (Vec<_>, Vec<_>) = r
                .topic_data
                .into_iter()
                .partition(|t| can(Write, Topic, &t.name));
            // A produce creates a missing topic only for a principal that may create it.
            let creates = |name: &str| can(Create, Cluster, CLUSTER) || can(Create, Topic, name);
            let (ok, unknown): (Vec<_>, Vec<_>) = ok
                .into_iter()
                .partition(|t| topic_exists(ctx, &t.name) || creates(&t.name));
            r.topic_data = ok;
            let reply = pass(r.into());
            let refused = (no, unknown);
            let any = !refused.0.is_empty() || !refused.1.is_empty();
            if !any {
                return reply;
            }
            map(reply, move |mut resp| {
                if let ResponseKind::Produce(p) = &mut resp {
                    p.responses
                        .extend(produce_denied(&refused.0, denied::TOPIC).responses);
                    let unknown = kafka_protocol::ResponseError::UnknownTopicOrPartition.code();
                    p.responses
                        .extend(produce_denied(&refused.1, unknown).responses);
                }
                resp
            })
        }
        RequestKind::Fetch(mut r) => {
            let (ok, no): (Vec<_>, Vec<_>) = r
                .topics
                .into_iter()
                .partition(|t| can(Read, Topic, &t.topic));
            r.topics = ok;
            patch(pass(r.into()), no, |resp, no| {
                if let ResponseKind::Fetch(f) = resp {
                    f.responses.extend(no.iter().map(|t| {
                        fetch_response::FetchableTopicResponse::default()
                            .with_topic(t.topic.clone())
                            .with_partitions(
                                t.partitions
                                    .iter()
                                    .map(|p| {
                                        fetch_response::PartitionData::default()
                                            .with_partition_index(p.partition)
                                            .with_error_code(denied::TOPIC)
                                            .with_high_watermark(-1)
                                            .with_last_stable_offset(-1)
                                            .with_log_start_offset(-1)
                                    })
                                    .collect(),
                            )
                    }));
                }
            })
        }
        RequestKind::Metadata(mut r) => {
            let mut no = Vec::new();
            if let Some(topics) = r.topics.take() {
                let (ok, denied): (Vec<_>, Vec<_>) = topics
                    .into_iter()
                    .partition(|t| t.name.as_ref().is_none_or(|n| can(Describe, Topic, n)));
                no = denied;
                // Creating a topic by asking for it needs Create, on the cluster or the topic.
                if r.allow_auto_topic_creation
                    && !can(Create, Cluster, CLUSTER)
                    && !ok
                        .iter()
                        .all(|t| t.name.as_ref().is_none_or(|n| can(Create, Topic, n)))
                {
                    r.allow_auto_topic_creation = false;
                }
                r.topics = Some(ok);
            }
            let reply = pass(r.into());
            let ctx = Arc::clone(ctx);
            let client = client.clone();
            map(reply, move |mut resp| {
                if let ResponseKind::Metadata(m) = &mut resp {
                    // Topics the principal may not describe are not listed at all.
                    m.topics.retain(|t| {
                        t.name
                            .as_ref()
                            .is_none_or(|n| ctx.allowed(&client, Describe, Topic, n))
                    });
                    m.topics.extend(no.into_iter().map(|t| {
                        metadata_response::MetadataResponseTopic::default()
                            .with_name(t.name)
                            .with_error_code(denied::TOPIC)
                    }));
                }
                resp
            })
        }
        RequestKind::ListOffsets(mut r) => {
            let (ok, no): (Vec<_>, Vec<_>) = r
                .topics
                .into_iter()
                .partition(|t| can(Describe, Topic, &t.name));
            r.topics = ok;
            patch(pass(r.into()), no, |resp, no| {
                if let ResponseKind::ListOffsets(l) = resp {
                    l.topics.extend(no.iter().map(|t| {
                        list_offsets_response::ListOffsetsTopicResponse::default()
                            .with_name(t.name.clone())
                            .with_partitions(
                                t.partitions
                                    .iter()
                                    .map(|p| {
                                        list_offsets_response::ListOffsetsPartitionResponse::default()
                                            .with_partition_index(p.partition_index)
                                            .with_error_code(denied::TOPIC)
                                            .with_offset(-1)
                                            .with_timestamp(-1)
                                    })
                                    .collect(),
                            )
                    }));
                }
            })
        }
        RequestKind::OffsetForLeaderEpoch(mut r) => {
            let (ok, no): (Vec<_>, Vec<_>) = r
                .topics
                .into_iter()
                .partition(|t| can(Describe, Topic, &t.topic));
            r.topics = ok;
            patch(pass(r.into()), no, |resp, no| {
                if let ResponseKind::OffsetForLeaderEpoch(o) = resp {
                    o.topics.extend(no.iter().map(|t| {
                        offset_for_leader_epoch_response::OffsetForLeaderTopicResult::default()
                            .with_topic(t.topic.clone())
                            .with_partitions(
                                t.partitions
                                    .iter()
                                    .map(|p| {
                                        offset_for_leader_epoch_response::EpochEndOffset::default()
                                            .with_partition(p.partition)
                                            .with_error_code(denied::TOPIC)
                                            .with_leader_epoch(-1)
                                            .with_end_offset(-1)
                                    })
                                    .collect(),
                            )
                    }));
                }
            })
        }
        RequestKind::DescribeProducers(mut r) => {
            let (ok, no): (Vec<_>, Vec<_>) = r
                .topics
                .into_iter()
                .partition(|t| can(Read, Topic, &t.name));
            r.topics = ok;
            patch(pass(r.into()), no, |resp, no| {
                if let ResponseKind::DescribeProducers(d) = resp {
                    d.topics.extend(no.iter().map(|t| {
                        describe_producers_response::TopicResponse::default()
                            .with_name(t.name.clone())
                            .with_partitions(
                                t.partition_indexes
                                    .iter()
                                    .map(|p| {
                                        describe_producers_response::PartitionResponse::default()
                                            .with_partition_index(*p)
                                            .with_error_code(denied::TOPIC)
                                    })
                                    .collect(),
                            )
                    }));
                }
            })
        }
        RequestKind::DeleteRecords(mut r) => {
            let (ok, no): (Vec<_>, Vec<_>) = r
                .topics
                .into_iter()
                .partition(|t| can(Delete, Topic, &t.name));
            r.topics = ok;
            patch(pass(r.into()), no, |resp, no| {
                if let ResponseKind::DeleteRecords(d) = resp {
                    d.topics.extend(no.iter().map(|t| {
                        delete_records_response::DeleteRecordsTopicResult::default()
                            .with_name(t.name.clone())
                            .with_partitions(
                                t.partitions
                                    .iter()
                                    .map(|p| {
                                        delete_records_response::DeleteRecordsPartitionResult::default()
                                            .with_partition_index(p.partition_index)
                                            .with_error_code(denied::TOPIC)
                                            .with_low_watermark(-1)
                                    })
                                    .collect(),
                            )
                    }));
                }
            })
        }
        RequestKind::CreateTopics(mut r) => {
            let cluster = can(Create, Cluster, CLUSTER);
            let (ok, no): (Vec<_>, Vec<_>) = r
                .topics
                .into_iter()
                .partition(|t| cluster || can(Create, Topic, &t.name));
            r.topics = ok;
            patch(pass(r.into()), no, |resp, no| {
                if let ResponseKind::CreateTopics(c) = resp {
                    c.topics.extend(no.iter().map(|t| {
                        create_topics_response::CreatableTopicResult::default()
                            .with_name(t.name.clone())
                            .with_error_code(denied::TOPIC)
                            .with_error_message(Some(handlers::str_bytes("Authorization failed.")))
                            .with_num_partitions(-1)
                            .with_replication_factor(-1)
                    }));
                }
            })
        }
        RequestKind::DeleteTopics(mut r) => {
            let (ok, no): (Vec<_>, Vec<_>) = r
                .topic_names
                .into_iter()
                .partition(|t| can(Delete, Topic, t));
            r.topic_names = ok;
            let (ok_v6, no_v6): (Vec<_>, Vec<_>) = r
                .topics
                .into_iter()
                .partition(|t| t.name.as_ref().is_some_and(|n| can(Delete, Topic, n)));
            r.topics = ok_v6;
            let no: Vec<TopicName> = no
                .into_iter()
                .chain(no_v6.into_iter().filter_map(|t| t.name))
                .collect();
            patch(pass(r.into()), no, |resp, no| {
                if let ResponseKind::DeleteTopics(d) = resp {
                    d.responses.extend(no.iter().map(|n| {
                        delete_topics_response::DeletableTopicResult::default()
                            .with_name(Some(n.clone()))
                            .with_error_code(denied::TOPIC)
                    }));
                }
            })
        }
        RequestKind::CreatePartitions(mut r) => {
            let (ok, no): (Vec<_>, Vec<_>) = r
                .topics
                .into_iter()
                .partition(|t| can(Alter, Topic, &t.name));
            r.topics = ok;
            patch(pass(r.into()), no, |resp, no| {
                if let ResponseKind::CreatePartitions(c) = resp {
                    c.results.extend(no.iter().map(|t| {
                        create_partitions_response::CreatePartitionsTopicResult::default()
                            .with_name(t.name.clone())
                            .with_error_code(denied::TOPIC)
                    }));
                }
            })
        }
        RequestKind::DescribeConfigs(mut r) => {
            let (ok, no): (Vec<_>, Vec<_>) = r.resources.into_iter().partition(|res| {
                config_allowed(&can, DescribeConfigs, res.resource_type, &res.resource_name)
            });
            r.resources = ok;
            patch(pass(r.into()), no, |resp, no| {
                if let ResponseKind::DescribeConfigs(d) = resp {
                    d.results.extend(no.iter().map(|res| {
                        describe_configs_response::DescribeConfigsResult::default()
                            .with_resource_type(res.resource_type)
                            .with_resource_name(res.resource_name.clone())
                            .with_error_code(config_denied(res.resource_type))
                    }));
                }
            })
        }
        RequestKind::AlterConfigs(mut r) => {
            let (ok, no): (Vec<_>, Vec<_>) = r.resources.into_iter().partition(|res| {
                config_allowed(&can, AlterConfigs, res.resource_type, &res.resource_name)
            });
            r.resources = ok;
            patch(pass(r.into()), no, |resp, no| {
                if let ResponseKind::AlterConfigs(a) = resp {
                    a.responses.extend(no.iter().map(|res| {
                        alter_configs_response::AlterConfigsResourceResponse::default()
                            .with_resource_type(res.resource_type)
                            .with_resource_name(res.resource_name.clone())
                            .with_error_code(config_denied(res.resource_type))
                    }));
                }
            })
        }
        RequestKind::IncrementalAlterConfigs(mut r) => {
            let (ok, no): (Vec<_>, Vec<_>) = r.resources.into_iter().partition(|res| {
                config_allowed(&can, AlterConfigs, res.resource_type, &res.resource_name)
            });
            r.resources = ok;
            patch(pass(r.into()), no, |resp, no| {
                if let ResponseKind::IncrementalAlterConfigs(a) = resp {
                    a.responses.extend(no.iter().map(|res| {
                        incremental_alter_configs_response::AlterConfigsResourceResponse::default()
                            .with_resource_type(res.resource_type)
                            .with_resource_name(res.resource_name.clone())
                            .with_error_code(config_denied(res.resource_type))
                    }));
                }
            })
        }
        // A consumer group needs Group Read for every membership request.
        RequestKind::JoinGroup(r) if !can(Read, Group, &r.group_id) => {
            now(JoinGroupResponse::default()
                .with_error_code(denied::GROUP)
                .with_generation_id(-1)
                .with_member_id(r.member_id))
        }
        RequestKind::SyncGroup(r) if !can(Read, Group, &r.group_id) => {
            now(SyncGroupResponse::default().with_error_code(denied::GROUP))
        }
        RequestKind::Heartbeat(r) if !can(Read, Group, &r.group_id) => {
            now(HeartbeatResponse::default().with_error_code(denied::GROUP))
        }
        RequestKind::LeaveGroup(r) if !can(Read, Group, &r.group_id) => {
            now(LeaveGroupResponse::default().with_error_code(denied::GROUP))
        }
        RequestKind::OffsetCommit(mut r) => {
            let group_ok = can(Read, Group, &r.group_id);
            let (ok, no): (Vec<_>, Vec<_>) = r
                .topics
                .into_iter()
                .partition(|t| group_ok && can(Read, Topic, &t.name));
            r.topics = ok;
            let code = if group_ok {
                denied::TOPIC
            } else {
                denied::GROUP
            };
            let reply = if group_ok {
                pass(r.into())
            } else {
                now(OffsetCommitResponse::default())
            };
            patch(reply, no, move |resp, no| {
                if let ResponseKind::OffsetCommit(o) = resp {
                    o.topics.extend(no.iter().map(|t| {
                        offset_commit_response::OffsetCommitResponseTopic::default()
                            .with_name(t.name.clone())
                            .with_partitions(
                                t.partitions
                                    .iter()
                                    .map(|p| {
                                        offset_commit_response::OffsetCommitResponsePartition::default()
                                            .with_partition_index(p.partition_index)
                                            .with_error_code(code)
                                    })
                                    .collect(),
                            )
                    }));
                }
            })
        }
        RequestKind::OffsetFetch(mut r) => {
            if version < 8 && !can(Describe, Group, &r.group_id) {
                return now(OffsetFetchResponse::default().with_error_code(denied::GROUP));
            }
            let (ok, no): (Vec<_>, Vec<_>) = r
                .groups
                .into_iter()
                .partition(|g| can(Describe, Group, &g.group_id));
            r.groups = ok;
            let reply = pass(r.into());
            let ctx = Arc::clone(ctx);
            let client = client.clone();
            map(reply, move |mut resp| {
                if let ResponseKind::OffsetFetch(o) = &mut resp {
                    let visible = |t: &TopicName| ctx.allowed(&client, Describe, Topic, t);
                    // Kafka leaves topics the principal may not describe out of the answer.
                    o.topics.retain(|t| visible(&t.name));
                    for g in &mut o.groups {
                        g.topics.retain(|t| visible(&t.name));
                    }
                    o.groups.extend(no.into_iter().map(|g| {
                        offset_fetch_response::OffsetFetchResponseGroup::default()
                            .with_group_id(g.group_id)
                            .with_error_code(denied::GROUP)
                    }));
                }
                resp
            })
        }
        RequestKind::OffsetDelete(mut r) => {
            if !can(Delete, Group, &r.group_id) {
                return now(OffsetDeleteResponse::default().with_error_code(denied::GROUP));
            }
            let (ok, no): (Vec<_>, Vec<_>) = r
                .topics
                .into_iter()
                .partition(|t| can(Read, Topic, &t.name));
            r.topics = ok;
            patch(pass(r.into()), no, |resp, no| {
                if let ResponseKind::OffsetDelete(o) = resp {
                    o.topics.extend(no.iter().map(|t| {
                        offset_delete_response::OffsetDeleteResponseTopic::default()
                            .with_name(t.name.clone())
                            .with_partitions(
                                t.partitions
                                    .iter()
                                    .map(|p| {
                                        offset_delete_response::OffsetDeleteResponsePartition::default()
                                            .with_partition_index(p.partition_index)
                                            .with_error_code(denied::TOPIC)
                                    })
                                    .collect(),
                            )
                    }));
                }
            })
        }
        RequestKind::ListGroups(r) => {
            let all = can(Describe, Cluster, CLUSTER);
            let reply = pass(r.into());
            let ctx = Arc::clone(ctx);
            let client = client.clone();
            map(reply, move |mut resp| {
                if let ResponseKind::ListGroups(l) = &mut resp {
                    if !all {
                        l.groups
                            .retain(|g| ctx.allowed(&client, Describe, Group, &g.group_id));
                    }
                }
                resp
            })
        }
        RequestKind::DescribeGroups(mut r) => {
            let (ok, no): (Vec<_>, Vec<_>) =
                r.groups.into_iter().partition(|g| can(Describe, Group, g));
            r.groups = ok;
            patch(pass(r.into()), no, |resp, no| {
                if let ResponseKind::DescribeGroups(d) = resp {
                    d.groups.extend(no.iter().map(|g| {
                        describe_groups_response::DescribedGroup::default()
                            .with_group_id(g.clone())
                            .with_error_code(denied::GROUP)
                    }));
                }
            })
        }
        RequestKind::DeleteGroups(mut r) => {
            let (ok, no): (Vec<_>, Vec<_>) = r
                .groups_names
                .into_iter()
                .partition(|g| can(Delete, Group, g));
            r.groups_names = ok;
            patch(pass(r.into()), no, |resp, no| {
                if let ResponseKind::DeleteGroups(d) = resp {
                    d.results.extend(no.iter().map(|g| {
                        delete_groups_response::DeletableGroupResult::default()
                            .with_group_id(g.clone())
                            .with_error_code(denied::GROUP)
                    }));
                }
            })
        }
        RequestKind::FindCoordinator(r) => {
            // Key type 0 is a group, 1 a transactional id.
            let check = |key: &str| match r.key_type {
                1 => (!can(Describe, TxnId, key)).then_some(denied::TRANSACTIONAL_ID),
                _ => (!can(Describe, Group, key)).then_some(denied::GROUP),
            };
            if version < 4 {
                return match check(&r.key) {
                    Some(code) => now(FindCoordinatorResponse::default()
                        .with_error_code(code)
                        .with_node_id(BrokerId(-1))
                        .with_port(-1)),
                    None => pass(r.into()),
                };
            }
            let refused: Vec<(kafka_protocol::protocol::StrBytes, i16)> = r
                .coordinator_keys
                .iter()
                .filter_map(|k| check(k).map(|c| (k.clone(), c)))
                .collect();
            if refused.is_empty() {
                return pass(r.into());
            }
            map(pass(r.into()), move |mut resp| {
                if let ResponseKind::FindCoordinator(f) = &mut resp {
                    for c in &mut f.coordinators {
                        if let Some((_, code)) = refused.iter().find(|(k, _)| *k == c.key) {
                            c.error_code = *code;
                            c.node_id = BrokerId(-1);
                            c.host = Default::default();
                            c.port = -1;
                        }
                    }
                }
                resp
            })
        }
        RequestKind::InitProducerId(r) => {
            let code = match &r.transactional_id {
                Some(id) => (!can(Write, TxnId, id)).then_some(denied::TRANSACTIONAL_ID),
                // An idempotent producer: IdempotentWrite on the cluster, or Write on any topic.
                None => (!can(IdempotentWrite, Cluster, CLUSTER)
                    && !ctx.allowed_any(client, Write, Topic))
                .then_some(denied::CLUSTER),
            };
            match code {
                Some(code) => now(InitProducerIdResponse::default()
                    .with_error_code(code)
                    .with_producer_id(ProducerId(-1))
                    .with_producer_epoch(-1)),
                None => pass(r.into()),
            }
        }
        RequestKind::AddPartitionsToTxn(r) => {
            // v4+ batches are broker-to-broker verification.
            if version >= 4 {
                return if can(ClusterAction, Cluster, CLUSTER) {
                    pass(r.into())
                } else {
                    now(AddPartitionsToTxnResponse::default().with_error_code(denied::CLUSTER))
                };
            }
            let txn_ok = can(Write, TxnId, &r.v3_and_below_transactional_id);
            let denied_topics: Vec<bool> = r
                .v3_and_below_topics
                .iter()
                .map(|t| !txn_ok || !can(Write, Topic, &t.name))
                .collect();
            if !denied_topics.contains(&true) {
                return pass(r.into());
            }
            // Nothing is added when any partition is refused (Kafka: the rest are not attempted).
            let results = r
                .v3_and_below_topics
                .iter()
                .zip(denied_topics)
                .map(|(t, no)| {
                    let code = match (txn_ok, no) {
                        (false, _) => denied::TRANSACTIONAL_ID,
                        (true, true) => denied::TOPIC,
                        (true, false) => kafka_protocol::ResponseError::OperationNotAttempted.code(),
                    };
                    add_partitions_to_txn_response::AddPartitionsToTxnTopicResult::default()
                        .with_name(t.name.clone())
                        .with_results_by_partition(
                            t.partitions
                                .iter()
                                .map(|p| {
                                    add_partitions_to_txn_response::AddPartitionsToTxnPartitionResult::default()
                                        .with_partition_index(*p)
                                        .with_partition_error_code(code)
                                })
                                .collect(),
                        )
                })
                .collect();
            now(AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results))
        }
        RequestKind::AddOffsetsToTxn(r) => {
            if !can(Write, TxnId, &r.transactional_id) {
                now(AddOffsetsToTxnResponse::default().with_error_code(denied::TRANSACTIONAL_ID))
            } else if !can(Read, Group, &r.group_id) {
                now(AddOffsetsToTxnResponse::default().with_error_code(denied::GROUP))
            } else {
                pass(r.into())
            }
        }
        RequestKind::EndTxn(r) if !can(Write, TxnId, &r.transactional_id) => {
            now(EndTxnResponse::default()
                .with_error_code(denied::TRANSACTIONAL_ID)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1))
        }
        RequestKind::TxnOffsetCommit(mut r) => {
            let whole = if !can(Write, TxnId, &r.transactional_id) {
                Some(denied::TRANSACTIONAL_ID)
            } else if !can(Read, Group, &r.group_id) {
                Some(denied::GROUP)
            } else {
                None
            };
            let (ok, no): (Vec<_>, Vec<_>) = r
                .topics
                .into_iter()
                .partition(|t| whole.is_none() && can(Read, Topic, &t.name));
            r.topics = ok;
            let reply = match whole {
                None => pass(r.into()),
                Some(_) => now(TxnOffsetCommitResponse::default()),
            };
            let code = whole.unwrap_or(denied::TOPIC);
            patch(reply, no, move |resp, no| {
                if let ResponseKind::TxnOffsetCommit(t) = resp {
                    t.topics.extend(no.iter().map(|topic| {
                        txn_offset_commit_response::TxnOffsetCommitResponseTopic::default()
                            .with_name(topic.name.clone())
                            .with_partitions(
                                topic
                                    .partitions
                                    .iter()
                                    .map(|p| {
                                        txn_offset_commit_response::TxnOffsetCommitResponsePartition::default()
                                            .with_partition_index(p.partition_index)
                                            .with_error_code(code)
                                    })
                                    .collect(),
                            )
                    }));
                }
            })
        }
        RequestKind::DescribeTransactions(mut r) => {
            let (ok, no): (Vec<_>, Vec<_>) = r
                .transactional_ids
                .into_iter()
                .partition(|id| can(Describe, TxnId, id));
            r.transactional_ids = ok;
            patch(pass(r.into()), no, |resp, no| {
                if let ResponseKind::DescribeTransactions(d) = resp {
                    d.transaction_states.extend(no.iter().map(|id| {
                        describe_transactions_response::TransactionState::default()
                            .with_transactional_id(id.clone())
                            .with_error_code(denied::TRANSACTIONAL_ID)
                    }));
                }
            })
        }
        RequestKind::ListTransactions(r) => {
            let reply = pass(r.into());
            let ctx = Arc::clone(ctx);
            let client = client.clone();
            map(reply, move |mut resp| {
                if let ResponseKind::ListTransactions(l) = &mut resp {
                    l.transaction_states
                        .retain(|t| ctx.allowed(&client, Describe, TxnId, &t.transactional_id));
                }
                resp
            })
        }
        // Security administration is the cluster's: Describe to read, Alter to change.
        RequestKind::DescribeAcls(_) if !can(Describe, Cluster, CLUSTER) => {
            now(DescribeAclsResponse::default().with_error_code(denied::CLUSTER))
        }
        RequestKind::CreateAcls(r) if !can(Alter, Cluster, CLUSTER) => {
            now(CreateAclsResponse::default().with_results(
                r.creations
                    .iter()
                    .map(|_| {
                        create_acls_response::AclCreationResult::default()
                            .with_error_code(denied::CLUSTER)
                    })
                    .collect(),
            ))
        }
        RequestKind::DeleteAcls(r) if !can(Alter, Cluster, CLUSTER) => {
            now(DeleteAclsResponse::default().with_filter_results(
                r.filters
                    .iter()
                    .map(|_| {
                        delete_acls_response::DeleteAclsFilterResult::default()
                            .with_error_code(denied::CLUSTER)
                    })
                    .collect(),
            ))
        }
        RequestKind::DescribeUserScramCredentials(_) if !can(Describe, Cluster, CLUSTER) => {
            now(DescribeUserScramCredentialsResponse::default().with_error_code(denied::CLUSTER))
        }
        RequestKind::AlterUserScramCredentials(r) if !can(Alter, Cluster, CLUSTER) => {
            let mut users: Vec<_> = r
                .deletions
                .iter()
                .map(|d| d.name.clone())
                .chain(r.upsertions.iter().map(|u| u.name.clone()))
                .collect();
            users.sort();
            users.dedup();
            now(AlterUserScramCredentialsResponse::default().with_results(
                users
                    .into_iter()
                    .map(|u| {
                        alter_user_scram_credentials_response::AlterUserScramCredentialsResult::default()
                            .with_user(u)
                            .with_error_code(denied::CLUSTER)
                    })
                    .collect(),
            ))
        }
        RequestKind::DescribeClientQuotas(_) if !can(DescribeConfigs, Cluster, CLUSTER) => {
            now(DescribeClientQuotasResponse::default().with_error_code(denied::CLUSTER))
        }
        RequestKind::AlterClientQuotas(r) if !can(AlterConfigs, Cluster, CLUSTER) => {
            now(AlterClientQuotasResponse::default().with_entries(
                r.entries
                    .into_iter()
                    .map(|e| {
                        alter_client_quotas_response::EntryData::default()
                            .with_error_code(denied::CLUSTER)
                            .with_entity(
                                e.entity
                                    .into_iter()
                                    .map(|x| {
                                        alter_client_quotas_response::EntityData::default()
                                            .with_entity_type(x.entity_type)
                                            .with_entity_name(x.entity_name)
                                    })
                                    .collect(),
                            )
                    })
                    .collect(),
            ))
        }
        other => pass(other),
    }
}
