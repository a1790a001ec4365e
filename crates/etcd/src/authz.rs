//! Who may touch which keys. Strom's etcd API authenticates clients by their TLS certificate
//! (`--etcd-client-cert-auth`: the principal is `User:` and the certificate's CN) and
//! authorizes them with the same Kafka-model ACLs as the Kafka API, on resource type
//! `EtcdKey`: Read for Range, Watch, Txn compares and election observers, Write for Put,
//! DeleteRange, Txn operations, locks and campaigns (on the lock or election name as a
//! prefix), Alter on the cluster for Compact, Defragment, Snapshot, alarms and leader moves.
//! Without client-certificate authentication (or with the authorizer off) every client may do
//! everything, as etcd without auth.

use std::net::SocketAddr;
use std::sync::Arc;

use etcd_client::proto::*;
use strom_auth::acl::{decide_range, prefix_end};
use strom_auth::{Operation, Requester, ResourceType};
use tonic::{Request, Status};

/// What tonic keeps of a connection for its requests.
#[derive(Clone, Debug, Default)]
pub struct Peer {
    pub addr: Option<SocketAddr>,
    /// From the verified client certificate.
    pub principal: Option<String>,
}

/// The ACLs and who passes them all.
pub struct Authorization {
    pub security: Arc<strom_broker::security::Security>,
    pub super_users: Vec<String>,
}

pub fn peer_of<T>(request: &Request<T>) -> Peer {
    request
        .extensions()
        .get::<Peer>()
        .cloned()
        .unwrap_or_default()
}

fn denied() -> Status {
    // etcd's own words (rpctypes.ErrPermissionDenied).
    Status::permission_denied("etcdserver: permission denied")
}

impl Authorization {
    /// Whether the request's principal may `op` every key of `[key, range_end)`.
    pub fn check<T>(
        &self,
        request: &Request<T>,
        op: Operation,
        key: &[u8],
        range_end: &[u8],
    ) -> Result<(), Status> {
        self.check_peer(&peer_of(request), op, key, range_end)
    }

    /// [`Authorization::check`] for a connection's peer (a watch stream keeps its own).
    pub fn check_peer(
        &self,
        peer: &Peer,
        op: Operation,
        key: &[u8],
        range_end: &[u8],
    ) -> Result<(), Status> {
        self.decide(peer, |s, who| {
            decide_range(&s.acls, who, op, ResourceType::EtcdKey, key, range_end)
        })
        .inspect_err(|_| {
            tracing::debug!(principal = ?peer.principal, ?op, key = %String::from_utf8_lossy(key), "etcd request denied");
        })
    }

    /// Administration of the whole store: Alter on the cluster (super users pass).
    pub fn check_admin<T>(&self, request: &Request<T>) -> Result<(), Status> {
        self.decide(&peer_of(request), |s, who| {
            s.allows(
                who,
                Operation::Alter,
                ResourceType::Cluster,
                "kafka-cluster",
            )
        })
    }

    /// `allowed` on the ACLs for the peer's principal, unless it is a super user.
    fn decide(
        &self,
        peer: &Peer,
        allowed: impl FnOnce(&strom_auth::SecurityState, &Requester<'_>) -> bool,
    ) -> Result<(), Status> {
        let principal = peer
            .principal
            .clone()
            .unwrap_or_else(|| strom_auth::ANONYMOUS.to_string());
        if self.super_users.contains(&principal) {
            return Ok(());
        }
        let host = peer.addr.map(|a| a.ip().to_string()).unwrap_or_default();
        let who = Requester {
            principal: &principal,
            host: &host,
        };
        if self.security.read(|s| allowed(s, &who)) {
            Ok(())
        } else {
            Err(denied())
        }
    }

    /// A lock or election name: its holders' keys are `name/<lease>`.
    pub fn check_name<T>(
        &self,
        request: &Request<T>,
        op: Operation,
        name: &[u8],
    ) -> Result<(), Status> {
        self.check(request, op, name, &prefix_end(name))
    }

    /// Every compare (Read) and every operation of a transaction, nested ones included.
    pub fn check_txn<T>(&self, request: &Request<T>, txn: &PbTxnRequest) -> Result<(), Status> {
        for c in &txn.compare {
            self.check(request, Operation::Read, &c.key, &c.range_end)?;
        }
        for op in txn.success.iter().chain(&txn.failure) {
            match &op.request {
                Some(PbTxnOpRequest::RequestRange(r)) => {
                    self.check(request, Operation::Read, &r.key, &r.range_end)?
                }
                Some(PbTxnOpRequest::RequestPut(p)) => {
                    self.check(request, Operation::Write, &p.key, &[])?
                }
                Some(PbTxnOpRequest::RequestDeleteRange(d)) => {
                    self.check(request, Operation::Write, &d.key, &d.range_end)?
                }
                Some(PbTxnOpRequest::RequestTxn(t)) => self.check_txn(request, t)?,
                None => {}
            }
        }
        Ok(())
    }
}
