//! The Lock service (etcd's `v3lockpb`): a lock held by a lease, released by Unlock or when
//! the lease ends. See [`crate::concurrency`].

use bytes::Bytes;
use tonic::{Request, Response, Status};

use crate::concurrency::{self, Withdraw};
use crate::pb::v3lockpb::lock_server::Lock;
use crate::pb::v3lockpb::{LockRequest, LockResponse, UnlockRequest, UnlockResponse};
use crate::service::Svc;

#[tonic::async_trait]
impl Lock for Svc {
    async fn lock(&self, request: Request<LockRequest>) -> Result<Response<LockResponse>, Status> {
        if let Some(a) = self.authz() {
            a.check_name(
                &request,
                strom_auth::Operation::Write,
                &request.get_ref().name,
            )?;
        }
        let req = request.into_inner();
        if req.lease == 0 {
            // etcd's server would open a session of its own; a lock nobody keeps alive would
            // be held forever here.
            return Err(Status::invalid_argument(
                "strom: Lock needs a lease: grant one, keep it alive and pass its id",
            ));
        }
        let key = concurrency::waiter_key(&req.name, req.lease);
        let (revision, _) = concurrency::create_or_get(self, &key, Bytes::new(), req.lease).await?;
        let withdraw = Withdraw::new(self.0.clone(), key.clone(), revision);
        let now = concurrency::wait_turn(self, &req.name, &key, revision).await?;
        withdraw.disarm();
        Ok(Response::new(LockResponse {
            header: Some(self.header(now)),
            key: key.to_vec(),
        }))
    }

    async fn unlock(
        &self,
        request: Request<UnlockRequest>,
    ) -> Result<Response<UnlockResponse>, Status> {
        if let Some(a) = self.authz() {
            a.check(
                &request,
                strom_auth::Operation::Write,
                &request.get_ref().key,
                &[],
            )?;
        }
        let key = Bytes::from(request.into_inner().key);
        let cmd = strom_kv::Command::DeleteRange(strom_kv::DeleteRangeRequest {
            key,
            ..Default::default()
        });
        let (_, revision) = self.propose(cmd).await?;
        Ok(Response::new(UnlockResponse {
            header: Some(self.header(revision)),
        }))
    }
}
