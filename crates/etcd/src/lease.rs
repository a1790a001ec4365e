//! Leases. Grant and revoke are journal commands; liveness is not: the leader keeps each
//! lease's deadline in memory (`Lessor`), KeepAlive moves it, and when it passes the leader
//! proposes the revoke. No replica applies time on its own. A node that becomes leader (or
//! restarts) gives every lease its full TTL again, as etcd does, so a failover never expires
//! a lease early.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use etcd_client::proto::*;
use futures::{Stream, StreamExt};
use strom_kv::{Command, KvError, Output};
use tonic::{Request, Response, Status, Streaming};

use crate::service::{Etcd, Svc};
use crate::{peer, status};

type Reply<T> = Result<Response<T>, Status>;

/// How often the leader looks for expired leases.
const EXPIRY_CHECK: Duration = Duration::from_millis(250);
/// Revokes proposed per round: a mass expiry must not starve client writes.
const REVOKES_PER_ROUND: usize = 500;

#[derive(Default)]
pub(crate) struct Lessor {
    deadlines: Mutex<HashMap<i64, Instant>>,
    /// The term this node's deadlines were set in; `None` while not leading.
    term: Mutex<Option<u64>>,
}

impl Lessor {
    pub(crate) fn renew(&self, id: i64, ttl: i64) {
        let at = Instant::now() + Duration::from_secs(ttl.max(0) as u64);
        self.lock().insert(id, at);
    }

    fn forget(&self, id: i64) {
        self.lock().remove(&id);
    }

    pub(crate) fn remaining(&self, id: i64) -> Option<Duration> {
        let at = *self.lock().get(&id)?;
        Some(at.saturating_duration_since(Instant::now()))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<i64, Instant>> {
        self.deadlines.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub(crate) fn spawn_lessor(etcd: Arc<Etcd>) {
    let weak = Arc::downgrade(&etcd);
    drop(etcd);
    tokio::spawn(async move {
        let mut every = tokio::time::interval(EXPIRY_CHECK);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let Some(etcd) = weak.upgrade() else { return };
            expire_round(&etcd).await;
        }
    });
}

async fn expire_round(etcd: &Etcd) {
    let lessor = &etcd.lessor;
    let term = etcd
        .journal()
        .role()
        .filter(|r| r.is_leader)
        .map(|r| r.term);
    let leases = etcd.machine().store.leases();
    {
        let mut led = lessor.term.lock().unwrap_or_else(|p| p.into_inner());
        let mut deadlines = lessor.lock();
        match term {
            None => {
                deadlines.clear();
                *led = None;
                return;
            }
            Some(t) if *led != Some(t) => {
                // New leadership: every lease starts a full TTL from now.
                deadlines.clear();
                *led = Some(t);
            }
            Some(_) => {}
        }
        let now = Instant::now();
        let live: std::collections::HashSet<i64> = leases.iter().map(|(id, _)| *id).collect();
        deadlines.retain(|id, _| live.contains(id));
        for (id, ttl) in &leases {
            deadlines
                .entry(*id)
                .or_insert_with(|| now + Duration::from_secs(*ttl as u64));
        }
    }
    let now = Instant::now();
    let expired: Vec<i64> = lessor
        .lock()
        .iter()
        .filter(|(_, at)| **at <= now)
        .map(|(id, _)| *id)
        .take(REVOKES_PER_ROUND)
        .collect();
    for id in expired {
        match etcd.propose(Command::LeaseRevoke { id }).await {
            Ok(_) => {
                tracing::debug!(lease = id, "lease expired");
                lessor.forget(id);
            }
            Err(e) if e.message() == KvError::LeaseNotFound.to_string() => lessor.forget(id),
            Err(e) => {
                tracing::warn!(
                    lease = id,
                    "could not revoke an expired lease: {}",
                    e.message()
                );
                return;
            }
        }
    }
}

#[tonic::async_trait]
impl PbLeaseService for Svc {
    async fn lease_grant(
        &self,
        request: Request<PbLeaseGrantRequest>,
    ) -> Reply<PbLeaseGrantResponse> {
        let req = request.into_inner();
        match self
            .propose(Command::LeaseGrant {
                id: req.id,
                ttl: req.ttl,
            })
            .await?
        {
            (Output::LeaseGrant { id, ttl }, revision) => {
                self.lessor.renew(id, ttl);
                Ok(Response::new(PbLeaseGrantResponse {
                    header: Some(self.header(revision)),
                    id,
                    ttl,
                    error: String::new(),
                }))
            }
            (other, _) => Err(Status::internal(format!("unexpected result {other:?}"))),
        }
    }

    async fn lease_revoke(
        &self,
        request: Request<PbLeaseRevokeRequest>,
    ) -> Reply<PbLeaseRevokeResponse> {
        let id = request.into_inner().id;
        let (_, revision) = self.propose(Command::LeaseRevoke { id }).await?;
        self.lessor.forget(id);
        Ok(Response::new(PbLeaseRevokeResponse {
            header: Some(self.header(revision)),
        }))
    }

    type LeaseKeepAliveStream =
        Pin<Box<dyn Stream<Item = Result<PbLeaseKeepAliveResponse, Status>> + Send>>;

    async fn lease_keep_alive(
        &self,
        request: Request<Streaming<PbLeaseKeepAliveRequest>>,
    ) -> Reply<Self::LeaseKeepAliveStream> {
        let svc = self.clone();
        let stream = request.into_inner().then(move |req| {
            let svc = svc.clone();
            async move {
                let id = req?.id;
                // An unknown or expired lease answers TTL 0: the client stops keeping it.
                let ttl = if svc.journal().is_leader() || svc.cluster().is_none() {
                    // Also answers "not leader" when it is not; a new leader answers only
                    // once it applied every committed grant (else a live lease reads TTL 0).
                    svc.read_barrier().await?;
                    svc.keep_alive_local(id)
                } else {
                    match peer::ask(&svc, &peer::Call::KeepAlive(id)).await {
                        Ok(peer::Reply::Ttl(ttl)) => ttl,
                        Ok(peer::Reply::Unavailable(why)) => return Err(Status::unavailable(why)),
                        Ok(other) => {
                            return Err(Status::internal(format!("unexpected reply {other:?}")))
                        }
                        Err(e) => return Err(status::journal(e)),
                    }
                };
                let revision = svc.machine().store.revision();
                Ok(PbLeaseKeepAliveResponse {
                    header: Some(svc.header(revision)),
                    id,
                    ttl,
                })
            }
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn lease_time_to_live(
        &self,
        request: Request<PbLeaseTimeToLiveRequest>,
    ) -> Reply<PbLeaseTimeToLiveResponse> {
        let req = request.into_inner();
        self.read_barrier().await?;
        let (lease, revision) = {
            let m = self.machine();
            (m.store.lease(req.id), m.store.revision())
        };
        let header = Some(self.header(revision));
        // An expired or unknown lease is TTL -1, not an error (etcd's answer).
        let Some(lease) = lease else {
            return Ok(Response::new(PbLeaseTimeToLiveResponse {
                header,
                id: req.id,
                ttl: -1,
                granted_ttl: 0,
                keys: Vec::new(),
            }));
        };
        let remaining = if self.journal().is_leader() || self.cluster().is_none() {
            self.remaining_local(req.id)
        } else {
            match peer::ask(self, &peer::Call::Remaining(req.id)).await {
                Ok(peer::Reply::Remaining(r)) => r,
                _ => None,
            }
        }
        .unwrap_or(lease.ttl);
        Ok(Response::new(PbLeaseTimeToLiveResponse {
            header,
            id: req.id,
            ttl: remaining,
            granted_ttl: lease.ttl,
            keys: if req.keys {
                lease.keys.iter().map(|k| k.to_vec()).collect()
            } else {
                Vec::new()
            },
        }))
    }

    async fn lease_leases(
        &self,
        _request: Request<PbLeaseLeasesRequest>,
    ) -> Reply<PbLeaseLeasesResponse> {
        self.read_barrier().await?;
        let (leases, revision) = {
            let m = self.machine();
            (m.store.leases(), m.store.revision())
        };
        Ok(Response::new(PbLeaseLeasesResponse {
            header: Some(self.header(revision)),
            leases: leases
                .into_iter()
                .map(|(id, _)| PbLeaseStatus { id })
                .collect(),
        }))
    }
}
