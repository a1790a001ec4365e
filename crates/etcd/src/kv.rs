//! The KV service: Range, Put, DeleteRange, Txn, Compact.

use etcd_client::proto::*;
use strom_auth::Operation;
use strom_kv::{Command, Output};
use tonic::{Request, Response, Status};

use crate::convert;
use crate::service::Svc;
use crate::status;

type Reply<T> = Result<Response<T>, Status>;

fn unexpected(out: Output) -> Status {
    Status::internal(format!("etcdserver: unexpected result {out:?}"))
}

#[tonic::async_trait]
impl PbKvService for Svc {
    async fn range(&self, request: Request<PbRangeRequest>) -> Reply<PbRangeResponse> {
        if let Some(a) = self.authz() {
            let r = request.get_ref();
            a.check(&request, Operation::Read, &r.key, &r.range_end)?;
        }
        let req = convert::range_in(request.into_inner());
        if req.key.is_empty() {
            return Err(status::kv(strom_kv::KvError::EmptyKey));
        }
        if !req.serializable {
            self.read_barrier().await?;
        }
        let machine = self.machine();
        let result = machine.store.range(&req).map_err(status::kv)?;
        let revision = machine.store.revision();
        drop(machine);
        Ok(Response::new(PbRangeResponse {
            header: Some(self.header(revision)),
            ..convert::range_out(result)
        }))
    }

    type RangeStreamStream = futures::stream::Empty<Result<PbRangeStreamResponse, Status>>;

    async fn range_stream(
        &self,
        _request: Request<PbRangeRequest>,
    ) -> Reply<Self::RangeStreamStream> {
        Err(status::unsupported("RangeStream", "use Range with a limit"))
    }

    async fn put(&self, request: Request<PbPutRequest>) -> Reply<PbPutResponse> {
        if let Some(a) = self.authz() {
            a.check(&request, Operation::Write, &request.get_ref().key, &[])?;
        }
        let cmd = Command::Put(convert::put_in(request.into_inner()));
        match self.propose(cmd).await? {
            (Output::Put(p), revision) => Ok(Response::new(PbPutResponse {
                header: Some(self.header(revision)),
                ..convert::put_out(p)
            })),
            (other, _) => Err(unexpected(other)),
        }
    }

    async fn delete_range(&self, request: Request<PbDeleteRequest>) -> Reply<PbDeleteResponse> {
        if let Some(a) = self.authz() {
            let r = request.get_ref();
            a.check(&request, Operation::Write, &r.key, &r.range_end)?;
        }
        let cmd = Command::DeleteRange(convert::delete_in(request.into_inner()));
        match self.propose(cmd).await? {
            (Output::DeleteRange(d), revision) => Ok(Response::new(PbDeleteResponse {
                header: Some(self.header(revision)),
                ..convert::delete_out(d)
            })),
            (other, _) => Err(unexpected(other)),
        }
    }

    async fn txn(&self, request: Request<PbTxnRequest>) -> Reply<PbTxnResponse> {
        if let Some(a) = self.authz() {
            a.check_txn(&request, request.get_ref())?;
        }
        let cmd = Command::Txn(convert::txn_in(request.into_inner()));
        match self.propose(cmd).await? {
            (Output::Txn(t), revision) => {
                Ok(Response::new(convert::txn_out(t, &self.header(revision))))
            }
            (other, _) => Err(unexpected(other)),
        }
    }

    async fn compact(&self, request: Request<PbCompactionRequest>) -> Reply<PbCompactionResponse> {
        if let Some(a) = self.authz() {
            a.check_admin(&request)?;
        }
        let revision = request.into_inner().revision;
        match self.propose(Command::Compact { revision }).await? {
            (Output::Compact, revision) => Ok(Response::new(PbCompactionResponse {
                header: Some(self.header(revision)),
            })),
            (other, _) => Err(unexpected(other)),
        }
    }
}
