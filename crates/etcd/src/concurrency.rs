//! What the Lock and Election services share, as etcd's server builds both from its client's
//! `concurrency` package: a waiter's key is `<name>/<lease id in hex>`, created with the lease
//! (or found, if the same lease asks again); its create revision is its place in line, and
//! it holds the lock (leads) once every key of the name created before it is gone.
//!
//! Waiting reads this node's applied state whenever its applied index moves, like a watch:
//! the deletes it waits for are committed once applied here.

use std::sync::Arc;

use bytes::Bytes;
use strom_kv::{
    Command, Compare, CompareResult, CompareTarget, DeleteRangeRequest, KeyValue, Op, OpResponse,
    Output, PutRequest, RangeRequest, SortOrder, SortTarget, TxnRequest,
};
use tonic::Status;

use crate::service::Etcd;

/// etcd's `concurrency.ErrSessionExpired`: the waiter's key went (its lease expired).
const SESSION_EXPIRED: &str = "mutex: session is expired";

/// The key a lease waits with under `name`.
pub fn waiter_key(name: &[u8], lease: i64) -> Bytes {
    let mut key = name.to_vec();
    key.push(b'/');
    key.extend_from_slice(format!("{lease:x}").as_bytes());
    key.into()
}

/// The end of the range of keys that start with `prefix` (etcd's `GetPrefixRangeEnd`).
pub fn prefix_end(prefix: &[u8]) -> Bytes {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end.into();
        }
    }
    // Every byte 0xff: all keys from the prefix on.
    Bytes::from_static(b"\0")
}

fn name_prefix(name: &[u8]) -> Bytes {
    let mut p = name.to_vec();
    p.push(b'/');
    p.into()
}

fn create_is(key: &Bytes, revision: i64) -> Compare {
    Compare {
        result: CompareResult::Equal,
        target: CompareTarget::Create(revision),
        key: key.clone(),
        range_end: Bytes::new(),
    }
}

/// Runs a transaction; whether its compares held, its responses and the revision after it.
pub async fn txn(etcd: &Etcd, txn: TxnRequest) -> Result<(bool, Vec<OpResponse>, i64), Status> {
    match etcd.propose(Command::Txn(txn)).await? {
        (Output::Txn(t), revision) => Ok((t.succeeded, t.responses, revision)),
        (other, _) => Err(Status::internal(format!(
            "etcdserver: unexpected result {other:?}"
        ))),
    }
}

/// Creates `key` with `value` and `lease` unless it exists; its create revision, and its
/// value when it existed already.
pub async fn create_or_get(
    etcd: &Etcd,
    key: &Bytes,
    value: Bytes,
    lease: i64,
) -> Result<(i64, Option<Bytes>), Status> {
    let (created, mut responses, revision) = txn(
        etcd,
        TxnRequest {
            compare: vec![create_is(key, 0)],
            success: vec![Op::Put(PutRequest {
                key: key.clone(),
                value,
                lease,
                ..PutRequest::default()
            })],
            failure: vec![Op::Range(RangeRequest {
                key: key.clone(),
                ..RangeRequest::default()
            })],
        },
    )
    .await?;
    if created {
        return Ok((revision, None));
    }
    match responses.pop() {
        Some(OpResponse::Range(r)) => match r.kvs.into_iter().next() {
            Some(kv) => Ok((kv.create_revision, Some(kv.value))),
            // Deleted between the compare and now cannot happen inside one transaction.
            None => Err(Status::internal("etcdserver: waiter key vanished")),
        },
        _ => Err(Status::internal("etcdserver: unexpected txn response")),
    }
}

/// Replaces the value of `key` if it is still the one created at `revision`: whether it
/// was, and the revision after.
pub async fn put_if_created_at(
    etcd: &Etcd,
    key: &Bytes,
    revision: i64,
    value: Bytes,
    lease: i64,
) -> Result<(bool, i64), Status> {
    let put = Op::Put(PutRequest {
        key: key.clone(),
        value,
        lease,
        ..PutRequest::default()
    });
    txn(etcd, guarded(key, revision, put))
        .await
        .map(|t| (t.0, t.2))
}

/// Deletes `key` if it is still the one created at `revision`; the revision after.
pub async fn delete_if_created_at(etcd: &Etcd, key: &Bytes, revision: i64) -> Result<i64, Status> {
    let delete = Op::Delete(DeleteRangeRequest {
        key: key.clone(),
        ..DeleteRangeRequest::default()
    });
    txn(etcd, guarded(key, revision, delete)).await.map(|t| t.2)
}

fn guarded(key: &Bytes, revision: i64, op: Op) -> TxnRequest {
    TxnRequest {
        compare: vec![create_is(key, revision)],
        success: vec![op],
        failure: vec![],
    }
}

/// The first key created under `name` (the lock's holder, the election's leader), in this
/// node's applied state, with the revision it was read at.
pub fn first_waiter(etcd: &Etcd, name: &[u8]) -> Result<(Option<KeyValue>, i64), Status> {
    waiter(etcd, name, None, SortOrder::Ascend, false)
}

/// The first (`Ascend`) or last (`Descend`) key created under `name`, before `revision` if
/// given (a key's create revision is at least 2, and 0 means no bound).
fn waiter(
    etcd: &Etcd,
    name: &[u8],
    before: Option<i64>,
    order: SortOrder,
    keys_only: bool,
) -> Result<(Option<KeyValue>, i64), Status> {
    let prefix = name_prefix(name);
    let machine = etcd.machine();
    let r = machine
        .store
        .range(&RangeRequest {
            range_end: prefix_end(&prefix),
            key: prefix,
            limit: 1,
            sort_order: order,
            sort_target: SortTarget::Create,
            max_create_revision: before.map_or(0, |r| (r - 1).max(1)),
            keys_only,
            ..RangeRequest::default()
        })
        .map_err(crate::status::kv)?;
    Ok((r.kvs.into_iter().next(), machine.store.revision()))
}

/// The revisions `key` was created and last modified at, if it exists.
pub fn revisions_of(etcd: &Etcd, key: &Bytes) -> Result<Option<(i64, i64)>, Status> {
    let machine = etcd.machine();
    let r = machine
        .store
        .range(&RangeRequest {
            key: key.clone(),
            keys_only: true,
            ..RangeRequest::default()
        })
        .map_err(crate::status::kv)?;
    Ok(r.kvs
        .first()
        .map(|kv| (kv.create_revision, kv.mod_revision)))
}

/// Waits until no key under `name` was created before `revision`, the waiter's own key
/// (`key`, created at `revision`) still standing; the revision it was seen at. Like etcd's
/// `waitDeletes`, it waits for the key just ahead in line to go, then looks again: each
/// applied change costs a waiter two point lookups, not a range.
pub async fn wait_turn(
    etcd: &Etcd,
    name: &[u8],
    key: &Bytes,
    revision: i64,
) -> Result<i64, Status> {
    let mut applied = etcd.journal().subscribe();
    let mine = |etcd: &Etcd| -> Result<(), Status> {
        match revisions_of(etcd, key)? {
            Some((created, _)) if created == revision => Ok(()),
            _ => Err(Status::unknown(SESSION_EXPIRED)),
        }
    };
    loop {
        let (ahead, now) = waiter(etcd, name, Some(revision), SortOrder::Descend, true)?;
        mine(etcd)?;
        let Some(ahead) = ahead else {
            return Ok(now);
        };
        loop {
            if applied.changed().await.is_err() {
                return Err(Status::unavailable("etcdserver: server stopped"));
            }
            let still = revisions_of(etcd, &ahead.key)?.map(|(created, _)| created);
            if still != Some(ahead.create_revision) {
                break;
            }
            mine(etcd)?;
        }
    }
}

/// Deletes a waiter's key if its wait ends without the lock (the client went away), as
/// etcd's server does; disarmed once the lock is held.
pub struct Withdraw {
    etcd: Option<Arc<Etcd>>,
    key: Bytes,
    revision: i64,
}

impl Withdraw {
    pub fn new(etcd: Arc<Etcd>, key: Bytes, revision: i64) -> Withdraw {
        Withdraw {
            etcd: Some(etcd),
            key,
            revision,
        }
    }

    pub fn disarm(mut self) {
        self.etcd = None;
    }
}

impl Drop for Withdraw {
    fn drop(&mut self) {
        if let Some(etcd) = self.etcd.take() {
            let (key, revision) = (self.key.clone(), self.revision);
            tokio::spawn(async move {
                if let Err(e) = delete_if_created_at(&etcd, &key, revision).await {
                    tracing::warn!("withdrawing an abandoned lock or campaign key: {e}");
                }
            });
        }
    }
}
