//! Health endpoints, as Redpanda's admin API answers them (what load balancers and Kubernetes
//! probes call): `GET /v1/status/live` answers while the process serves HTTP at all;
//! `GET /v1/status/ready` answers `{"status": "ready"}` once the node can serve clients (on a
//! cluster node: it knows a controller leader), else 503 with `{"status": "booting"}`.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use strom_broker::Broker;

pub fn routes(broker: Arc<Broker>) -> Router {
    Router::new()
        .route(
            "/v1/status/live",
            get(|| async { Json(json!({"status": "live"})) }),
        )
        .route(
            "/v1/status/ready",
            get(move || {
                let broker = Arc::clone(&broker);
                async move { ready(&broker) }
            }),
        )
}

fn ready(broker: &Broker) -> (StatusCode, Json<Value>) {
    let ready = !broker.is_stopping()
        && broker
            .cluster()
            .is_none_or(|c| c.controller_leader().is_some());
    if ready {
        (StatusCode::OK, Json(json!({"status": "ready"})))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "booting"})),
        )
    }
}
