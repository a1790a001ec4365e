//! The Election service (etcd's `v3electionpb`): candidates wait in line by create revision
//! under the election's name, the first one leads and proclaims values. See
//! [`crate::concurrency`].

use std::pin::Pin;

use bytes::Bytes;
use strom_auth::Operation;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};

use crate::concurrency::{self, Withdraw};
use crate::convert;
use crate::pb::v3electionpb::election_server::Election;
use crate::pb::v3electionpb::*;
use crate::service::Svc;

type Reply<T> = Result<Response<T>, Status>;

// etcd's messages; its server returns them as plain errors (gRPC code Unknown).
const NOT_LEADER: &str = "election: not leader";
const NO_LEADER: &str = "election: no leader";
const MISSING_LEADER: &str = "\"leader\" field must be provided";
/// Observers waiting to be sent a leader change: a slow one skips to the latest.
const OBSERVE_BUFFER: usize = 16;

fn leader_key(leader: Option<LeaderKey>) -> Result<LeaderKey, Status> {
    leader.ok_or_else(|| Status::unknown(MISSING_LEADER))
}

#[tonic::async_trait]
impl Election for Svc {
    async fn campaign(&self, request: Request<CampaignRequest>) -> Reply<CampaignResponse> {
        if let Some(a) = self.authz() {
            a.check_name(&request, Operation::Write, &request.get_ref().name)?;
        }
        let req = request.into_inner();
        if req.lease == 0 {
            return Err(Status::invalid_argument(
                "strom: Campaign needs a lease: grant one, keep it alive and pass its id",
            ));
        }
        let key = concurrency::waiter_key(&req.name, req.lease);
        let value = Bytes::from(req.value);
        let (revision, existing) =
            concurrency::create_or_get(self, &key, value.clone(), req.lease).await?;
        let withdraw = Withdraw::new(self.0.clone(), key.clone(), revision);
        if existing.is_some_and(|v| v != value) {
            // Campaigning again with the same lease proclaims the new value, as in etcd.
            concurrency::put_if_created_at(self, &key, revision, value, req.lease).await?;
        }
        let now = concurrency::wait_turn(self, &req.name, &key, revision).await?;
        withdraw.disarm();
        Ok(Response::new(CampaignResponse {
            header: Some(self.header(now)),
            leader: Some(LeaderKey {
                name: req.name,
                key: key.to_vec(),
                rev: revision,
                lease: req.lease,
            }),
        }))
    }

    async fn proclaim(&self, request: Request<ProclaimRequest>) -> Reply<ProclaimResponse> {
        if let (Some(a), Some(l)) = (self.authz(), request.get_ref().leader.as_ref()) {
            a.check(&request, Operation::Write, &l.key, &[])?;
        }
        let req = request.into_inner();
        let leader = leader_key(req.leader)?;
        let key = Bytes::from(leader.key);
        let value = Bytes::from(req.value);
        let (leads, revision) =
            concurrency::put_if_created_at(self, &key, leader.rev, value, leader.lease).await?;
        if !leads {
            return Err(Status::unknown(NOT_LEADER));
        }
        Ok(Response::new(ProclaimResponse {
            header: Some(self.header(revision)),
        }))
    }

    async fn leader(&self, request: Request<LeaderRequest>) -> Reply<LeaderResponse> {
        if let Some(a) = self.authz() {
            a.check_name(&request, Operation::Read, &request.get_ref().name)?;
        }
        let name = request.into_inner().name;
        self.read_barrier().await?;
        match concurrency::first_waiter(self, &name)? {
            (Some(kv), revision) => Ok(Response::new(LeaderResponse {
                header: Some(self.header(revision)),
                kv: Some(convert::kv_out(kv)),
            })),
            (None, _) => Err(Status::unknown(NO_LEADER)),
        }
    }

    type ObserveStream = Pin<Box<dyn Stream<Item = Result<LeaderResponse, Status>> + Send>>;

    /// Every change of leader or of its value, from the current one on (a burst of changes
    /// may reach a slow observer as its last state only).
    async fn observe(&self, request: Request<LeaderRequest>) -> Reply<Self::ObserveStream> {
        if let Some(a) = self.authz() {
            a.check_name(&request, Operation::Read, &request.get_ref().name)?;
        }
        let name = request.into_inner().name;
        let etcd = self.0.clone();
        let (tx, rx) = tokio::sync::mpsc::channel(OBSERVE_BUFFER);
        tokio::spawn(async move {
            let mut applied = etcd.journal().subscribe();
            let mut last: Option<(Vec<u8>, i64)> = None;
            loop {
                // While the leader's key stands unchanged, no one else can lead (later keys
                // are later in line): one point lookup per applied change.
                let unchanged = match &last {
                    Some((key, modified)) => {
                        let key = bytes::Bytes::from(key.clone());
                        matches!(concurrency::revisions_of(&etcd, &key), Ok(Some((_, m))) if m == *modified)
                    }
                    None => false,
                };
                let answer = if unchanged {
                    None
                } else {
                    match concurrency::first_waiter(&etcd, &name) {
                        Ok((Some(kv), revision)) => {
                            let seen = (kv.key.to_vec(), kv.mod_revision);
                            (last.as_ref() != Some(&seen)).then(|| {
                                last = Some(seen);
                                Ok(LeaderResponse {
                                    header: Some(etcd.header(revision)),
                                    kv: Some(convert::kv_out(kv)),
                                })
                            })
                        }
                        Ok((None, _)) => None,
                        Err(e) => Some(Err(e)),
                    }
                };
                if let Some(answer) = answer {
                    let failed = answer.is_err();
                    if tx.send(answer).await.is_err() || failed {
                        return;
                    }
                }
                tokio::select! {
                    changed = applied.changed() => if changed.is_err() { return },
                    _ = tx.closed() => return,
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }

    async fn resign(&self, request: Request<ResignRequest>) -> Reply<ResignResponse> {
        if let (Some(a), Some(l)) = (self.authz(), request.get_ref().leader.as_ref()) {
            a.check(&request, Operation::Write, &l.key, &[])?;
        }
        let leader = leader_key(request.into_inner().leader)?;
        let key = Bytes::from(leader.key);
        let revision = concurrency::delete_if_created_at(self, &key, leader.rev).await?;
        Ok(Response::new(ResignResponse {
            header: Some(self.header(revision)),
        }))
    }
}
