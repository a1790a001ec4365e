//! What the etcd face records in the node's metrics: each call's RPC (`KV/Range`) and time,
//! and the gRPC status of calls that fail at once. A tower layer around tonic's routes, so
//! every service is measured the same way without a line in each handler.

use std::task::{Context, Poll};
use std::time::Instant;

use futures::future::BoxFuture;
use tonic::codegen::http;
use tower::{Layer, Service};

const FACE: &str = "etcd";

/// The RPCs etcd's API has, as `Service/Method`: the label of a call. A path not among them
/// is counted as `other`, so a client cannot grow the label set.
const RPCS: &[&str] = &[
    "KV/Range",
    "KV/Put",
    "KV/DeleteRange",
    "KV/Txn",
    "KV/Compact",
    "Watch/Watch",
    "Lease/LeaseGrant",
    "Lease/LeaseRevoke",
    "Lease/LeaseKeepAlive",
    "Lease/LeaseTimeToLive",
    "Lease/LeaseLeases",
    "Cluster/MemberAdd",
    "Cluster/MemberRemove",
    "Cluster/MemberUpdate",
    "Cluster/MemberList",
    "Cluster/MemberPromote",
    "Maintenance/Alarm",
    "Maintenance/Status",
    "Maintenance/Defragment",
    "Maintenance/Hash",
    "Maintenance/HashKV",
    "Maintenance/Snapshot",
    "Maintenance/MoveLeader",
    "Maintenance/Downgrade",
    "Lock/Lock",
    "Lock/Unlock",
    "Election/Campaign",
    "Election/Proclaim",
    "Election/Leader",
    "Election/Observe",
    "Election/Resign",
];

/// gRPC's status codes by number, by the names of its specification.
const STATUS: &[&str] = &[
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

/// `/etcdserverpb.KV/Range` -> `KV/Range`.
fn rpc_name(path: &str) -> &'static str {
    let Some((service, method)) = path.trim_start_matches('/').split_once('/') else {
        return "other";
    };
    let service = service.rsplit('.').next().unwrap_or(service);
    RPCS.iter()
        .copied()
        .find(|rpc| {
            rpc.split_once('/')
                .is_some_and(|(s, m)| s == service && m == method)
        })
        .unwrap_or("other")
}

/// Measures every call of the wrapped gRPC routes.
#[derive(Clone, Copy, Debug, Default)]
pub struct MetricsLayer;

impl<S> Layer<S> for MetricsLayer {
    type Service = Measured<S>;

    fn layer(&self, inner: S) -> Measured<S> {
        Measured(inner)
    }
}

#[derive(Clone, Debug)]
pub struct Measured<S>(S);

impl<S, B, R> Service<http::Request<B>> for Measured<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let rpc = rpc_name(request.uri().path());
        let started = Instant::now();
        let call = self.0.call(request);
        Box::pin(async move {
            let response = call.await;
            let m = strom_metrics::global();
            // A unary call's response or a stream's opening; a stream's life is not measured.
            m.request(FACE, rpc, started.elapsed().as_secs_f64());
            // A call failing at once carries its status in the headers (trailers-only).
            let status = response.as_ref().ok().and_then(|r| {
                let code = r.headers().get("grpc-status")?.to_str().ok()?;
                code.parse::<usize>().ok()
            });
            if let Some(code) = status.filter(|c| *c != 0) {
                m.request_error(FACE, rpc, STATUS.get(code).copied().unwrap_or("UNKNOWN"));
            }
            response
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpc_names_are_bounded() {
        assert_eq!(rpc_name("/etcdserverpb.KV/Range"), "KV/Range");
        assert_eq!(rpc_name("/v3lockpb.Lock/Unlock"), "Lock/Unlock");
        assert_eq!(rpc_name("/etcdserverpb.KV/Nope"), "other");
        assert_eq!(rpc_name("garbage"), "other");
    }
}
