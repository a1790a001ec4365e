//! etcd's gRPC errors: the code and the message its clients match on.

use strom_broker::BrokerError;
use strom_kv::KvError;
use tonic::{Code, Status};

pub fn kv(e: KvError) -> Status {
    let code = match e {
        KvError::Compacted | KvError::FutureRevision | KvError::LeaseTtlTooLarge => {
            Code::OutOfRange
        }
        KvError::LeaseNotFound => Code::NotFound,
        KvError::LeaseExists => Code::FailedPrecondition,
        KvError::NoSpace => Code::ResourceExhausted,
        KvError::Corrupt(_) => Code::DataLoss,
        KvError::KeyNotFound
        | KvError::EmptyKey
        | KvError::ValueProvided
        | KvError::LeaseProvided
        | KvError::DuplicateKey
        | KvError::TooManyOps
        | KvError::RequestTooLarge => Code::InvalidArgument,
    };
    Status::new(code, e.to_string())
}

pub fn journal(e: BrokerError) -> Status {
    match e {
        BrokerError::NotLeader => Status::unavailable("etcdserver: not leader"),
        BrokerError::LeaderNotAvailable(_) => Status::unavailable("etcdserver: no leader"),
        BrokerError::NotCommitted => Status::unavailable("etcdserver: leader changed"),
        BrokerError::Timeout => Status::unavailable("etcdserver: request timed out"),
        other => {
            tracing::error!("etcd request failed in the journal: {other}");
            Status::internal(format!("etcdserver: {other}"))
        }
    }
}

pub fn unsupported(what: &str, instead: &str) -> Status {
    Status::unimplemented(format!("strom: {what} is not supported; {instead}"))
}
