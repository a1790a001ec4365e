//! Transactions: the shape checks etcd makes before a request is proposed, the compares, and
//! the checks of the chosen branch against the state before the transaction.

use bytes::Bytes;

use crate::mvcc::{in_range, version_cost};
use crate::store::Store;
use crate::types::*;
use crate::KvError;

/// Checks that need no state: empty keys, contradictory flags, too many operations, a key
/// written twice. The front end runs them before proposing; apply runs them again.
pub fn validate(command: &Command, max_txn_ops: usize) -> Result<(), KvError> {
    match command {
        Command::Put(p) => validate_put(p),
        Command::DeleteRange(d) if d.key.is_empty() => Err(KvError::EmptyKey),
        Command::Txn(t) => {
            check_ops(t, max_txn_ops)?;
            check_intervals_of(t)
        }
        _ => Ok(()),
    }
}

fn validate_put(p: &PutRequest) -> Result<(), KvError> {
    if p.key.is_empty() {
        return Err(KvError::EmptyKey);
    }
    if p.ignore_value && !p.value.is_empty() {
        return Err(KvError::ValueProvided);
    }
    if p.ignore_lease && p.lease != 0 {
        return Err(KvError::LeaseProvided);
    }
    Ok(())
}

fn check_ops(t: &TxnRequest, max: usize) -> Result<(), KvError> {
    if t.compare.len() > max || t.success.len() > max || t.failure.len() > max {
        return Err(KvError::TooManyOps);
    }
    for branch in [&t.success, &t.failure] {
        for op in branch.iter() {
            match op {
                Op::Put(p) => validate_put(p)?,
                Op::Delete(d) if d.key.is_empty() => return Err(KvError::EmptyKey),
                Op::Range(r) if r.key.is_empty() => return Err(KvError::EmptyKey),
                Op::Txn(inner) => check_ops(inner, max.saturating_sub(branch.len()))?,
                _ => {}
            }
        }
    }
    Ok(())
}

type Interval = (Bytes, Bytes);

/// etcd's rule: within one branch (nested transactions included) no key is put twice and no
/// key is both put and deleted; the two branches of a nested transaction may overlap.
fn check_intervals(ops: &[Op]) -> Result<(Vec<Bytes>, Vec<Interval>), KvError> {
    let mut dels: Vec<Interval> = ops
        .iter()
        .filter_map(|op| match op {
            Op::Delete(d) => Some((d.key.clone(), d.range_end.clone())),
            _ => None,
        })
        .collect();
    let deleted = |dels: &[Interval], k: &[u8]| dels.iter().any(|(a, b)| in_range(k, a, b));
    let mut puts: Vec<Bytes> = Vec::new();
    for op in ops {
        let Op::Txn(t) = op else { continue };
        let (then_puts, then_dels) = check_intervals(&t.success)?;
        let (else_puts, else_dels) = check_intervals(&t.failure)?;
        for k in &then_puts {
            if puts.contains(k) || deleted(&dels, k) {
                return Err(KvError::DuplicateKey);
            }
        }
        let before = puts.len();
        puts.extend(then_puts.iter().cloned());
        for k in else_puts {
            if (puts[..before].contains(&k)) || deleted(&dels, &k) {
                return Err(KvError::DuplicateKey);
            }
            if !then_puts.contains(&k) {
                puts.push(k);
            }
        }
        dels.extend(then_dels);
        dels.extend(else_dels);
    }
    for op in ops {
        let Op::Put(p) = op else { continue };
        if puts.contains(&p.key) || deleted(&dels, &p.key) {
            return Err(KvError::DuplicateKey);
        }
        puts.push(p.key.clone());
    }
    Ok((puts, dels))
}

/// Both branches of `t` pass etcd's duplicate-key rule.
pub(crate) fn check_intervals_of(t: &TxnRequest) -> Result<(), KvError> {
    check_intervals(&t.success)?;
    check_intervals(&t.failure)?;
    Ok(())
}

/// Bytes the larger branch would add (the space quota's cost of a transaction).
pub(crate) fn put_cost(t: &TxnRequest) -> u64 {
    fn branch(ops: &[Op]) -> u64 {
        ops.iter()
            .map(|op| match op {
                Op::Put(p) => version_cost(&p.key, &p.value),
                Op::Txn(t) => put_cost(t),
                _ => 0,
            })
            .sum()
    }
    branch(&t.success).max(branch(&t.failure))
}

fn compare_one(store: &Store, c: &Compare) -> bool {
    let mut kvs = Vec::new();
    store
        .state
        .mvcc
        .scan_at(&c.key, &c.range_end, store.revision(), |kv| {
            kvs.push(kv);
            true
        });
    if kvs.is_empty() {
        // A missing key has version, revisions and lease 0, but no value to compare: etcd
        // fails every value compare on it.
        if matches!(c.target, CompareTarget::Value(_)) {
            return false;
        }
        kvs.push(KeyValue::default());
    }
    kvs.iter().all(|kv| {
        let ord = match &c.target {
            CompareTarget::Version(v) => kv.version.cmp(v),
            CompareTarget::Create(v) => kv.create_revision.cmp(v),
            CompareTarget::Mod(v) => kv.mod_revision.cmp(v),
            CompareTarget::Lease(v) => kv.lease.cmp(v),
            CompareTarget::Value(v) => kv.value.as_ref().cmp(v.as_ref()),
        };
        match c.result {
            CompareResult::Equal => ord.is_eq(),
            CompareResult::NotEqual => ord.is_ne(),
            CompareResult::Greater => ord.is_gt(),
            CompareResult::Less => ord.is_lt(),
        }
    })
}

/// The branch taken at each transaction, nested ones included, in the order execution meets
/// them; every compare sees the state before the transaction.
pub(crate) fn choose_path(store: &Store, t: &TxnRequest) -> Vec<bool> {
    let mut path = Vec::new();
    walk(store, t, &mut path);
    path
}

fn walk(store: &Store, t: &TxnRequest, path: &mut Vec<bool>) {
    let ok = t.compare.iter().all(|c| compare_one(store, c));
    path.push(ok);
    for op in if ok { &t.success } else { &t.failure } {
        if let Op::Txn(inner) = op {
            walk(store, inner, path);
        }
    }
}

/// Checks of the chosen operations against the state before the transaction, so a failing
/// transaction changes nothing.
pub(crate) fn check_path(store: &Store, t: &TxnRequest, path: &[bool]) -> Result<(), KvError> {
    let mut it = path.iter();
    check_branch(store, t, &mut it)
}

fn check_branch<'a>(
    store: &Store,
    t: &TxnRequest,
    path: &mut impl Iterator<Item = &'a bool>,
) -> Result<(), KvError> {
    let ok = path.next().copied().unwrap_or(false);
    for op in if ok { &t.success } else { &t.failure } {
        match op {
            Op::Put(p) => {
                validate_put(p)?;
                if p.ignore_value || p.ignore_lease {
                    let prev = store.state.mvcc.get_at(&p.key, i64::MAX);
                    if prev.is_none() {
                        return Err(KvError::KeyNotFound);
                    }
                }
                if p.lease != 0 && !store.state.leases.contains_key(&p.lease) {
                    return Err(KvError::LeaseNotFound);
                }
            }
            Op::Range(r) => {
                if r.revision > store.revision() {
                    return Err(KvError::FutureRevision);
                }
                if r.revision > 0 && r.revision < store.compacted() {
                    return Err(KvError::Compacted);
                }
            }
            Op::Delete(d) if d.key.is_empty() => return Err(KvError::EmptyKey),
            Op::Delete(_) => {}
            Op::Txn(inner) => check_branch(store, inner, path)?,
        }
    }
    Ok(())
}
