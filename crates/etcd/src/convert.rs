//! etcd's protobuf messages to the state machine's types and back, field by field.

use bytes::Bytes;
use etcd_client::proto::{
    PbCompare, PbDeleteRequest, PbDeleteResponse, PbEvent, PbKeyValue, PbPutRequest, PbPutResponse,
    PbRangeRequest, PbRangeResponse, PbResponseOp, PbTargetUnion, PbTxnOpRequest, PbTxnOpResponse,
    PbTxnRequest, PbTxnResponse,
};
use strom_kv::*;

pub fn kv_out(kv: KeyValue) -> PbKeyValue {
    PbKeyValue {
        key: kv.key.to_vec(),
        create_revision: kv.create_revision,
        mod_revision: kv.mod_revision,
        version: kv.version,
        value: kv.value.to_vec(),
        lease: kv.lease,
    }
}

pub fn event_out(e: Event, with_prev: bool) -> PbEvent {
    PbEvent {
        r#type: match e.kind {
            EventKind::Put => 0,
            EventKind::Delete => 1,
        },
        kv: Some(kv_out(e.kv)),
        prev_kv: if with_prev {
            e.prev_kv.map(kv_out)
        } else {
            None
        },
    }
}

pub fn range_in(r: PbRangeRequest) -> RangeRequest {
    RangeRequest {
        key: Bytes::from(r.key),
        range_end: Bytes::from(r.range_end),
        limit: r.limit,
        revision: r.revision,
        sort_order: match r.sort_order {
            1 => SortOrder::Ascend,
            2 => SortOrder::Descend,
            _ => SortOrder::None,
        },
        sort_target: match r.sort_target {
            1 => SortTarget::Version,
            2 => SortTarget::Create,
            3 => SortTarget::Mod,
            4 => SortTarget::Value,
            _ => SortTarget::Key,
        },
        serializable: r.serializable,
        keys_only: r.keys_only,
        count_only: r.count_only,
        min_mod_revision: r.min_mod_revision,
        max_mod_revision: r.max_mod_revision,
        min_create_revision: r.min_create_revision,
        max_create_revision: r.max_create_revision,
    }
}

pub fn range_out(r: RangeResponse) -> PbRangeResponse {
    PbRangeResponse {
        header: None,
        kvs: r.kvs.into_iter().map(kv_out).collect(),
        more: r.more,
        count: r.count,
    }
}

pub fn put_in(p: PbPutRequest) -> PutRequest {
    PutRequest {
        key: Bytes::from(p.key),
        value: Bytes::from(p.value),
        lease: p.lease,
        prev_kv: p.prev_kv,
        ignore_value: p.ignore_value,
        ignore_lease: p.ignore_lease,
    }
}

pub fn put_out(p: PutResponse) -> PbPutResponse {
    PbPutResponse {
        header: None,
        prev_kv: p.prev_kv.map(kv_out),
    }
}

pub fn delete_in(d: PbDeleteRequest) -> DeleteRangeRequest {
    DeleteRangeRequest {
        key: Bytes::from(d.key),
        range_end: Bytes::from(d.range_end),
        prev_kv: d.prev_kv,
    }
}

pub fn delete_out(d: DeleteRangeResponse) -> PbDeleteResponse {
    PbDeleteResponse {
        header: None,
        deleted: d.deleted,
        prev_kvs: d.prev_kvs.into_iter().map(kv_out).collect(),
    }
}

fn compare_in(c: PbCompare) -> Compare {
    let result = match c.result {
        1 => CompareResult::Greater,
        2 => CompareResult::Less,
        3 => CompareResult::NotEqual,
        _ => CompareResult::Equal,
    };
    // The target names the field; the union carries the value (absent: its zero value).
    let target = match (c.target, c.target_union) {
        (1, Some(PbTargetUnion::CreateRevision(v))) => CompareTarget::Create(v),
        (1, _) => CompareTarget::Create(0),
        (2, Some(PbTargetUnion::ModRevision(v))) => CompareTarget::Mod(v),
        (2, _) => CompareTarget::Mod(0),
        (3, Some(PbTargetUnion::Value(v))) => CompareTarget::Value(Bytes::from(v)),
        (3, _) => CompareTarget::Value(Bytes::new()),
        (4, Some(PbTargetUnion::Lease(v))) => CompareTarget::Lease(v),
        (4, _) => CompareTarget::Lease(0),
        (_, Some(PbTargetUnion::Version(v))) => CompareTarget::Version(v),
        (_, _) => CompareTarget::Version(0),
    };
    Compare {
        result,
        target,
        key: Bytes::from(c.key),
        range_end: Bytes::from(c.range_end),
    }
}

fn op_in(op: etcd_client::proto::PbTxnRequestOp) -> Option<Op> {
    Some(match op.request? {
        PbTxnOpRequest::RequestRange(r) => Op::Range(range_in(r)),
        PbTxnOpRequest::RequestPut(p) => Op::Put(put_in(p)),
        PbTxnOpRequest::RequestDeleteRange(d) => Op::Delete(delete_in(d)),
        PbTxnOpRequest::RequestTxn(t) => Op::Txn(txn_in(t)),
    })
}

pub fn txn_in(t: PbTxnRequest) -> TxnRequest {
    TxnRequest {
        compare: t.compare.into_iter().map(compare_in).collect(),
        success: t.success.into_iter().filter_map(op_in).collect(),
        failure: t.failure.into_iter().filter_map(op_in).collect(),
    }
}

pub fn txn_out(t: TxnResponse, header: &etcd_client::proto::PbResponseHeader) -> PbTxnResponse {
    PbTxnResponse {
        header: Some(*header),
        succeeded: t.succeeded,
        responses: t
            .responses
            .into_iter()
            .map(|r| PbResponseOp {
                response: Some(match r {
                    OpResponse::Range(r) => PbTxnOpResponse::ResponseRange(PbRangeResponse {
                        header: Some(*header),
                        ..range_out(r)
                    }),
                    OpResponse::Put(p) => PbTxnOpResponse::ResponsePut(PbPutResponse {
                        header: Some(*header),
                        ..put_out(p)
                    }),
                    OpResponse::Delete(d) => {
                        PbTxnOpResponse::ResponseDeleteRange(PbDeleteResponse {
                            header: Some(*header),
                            ..delete_out(d)
                        })
                    }
                    OpResponse::Txn(t) => PbTxnOpResponse::ResponseTxn(txn_out(t, header)),
                }),
            })
            .collect(),
    }
}
