//! `GET /metrics`: the node's metrics in the OpenMetrics text format Prometheus scrapes, and
//! the measuring of the HTTP face's own requests. The text is built on a blocking thread: on a
//! node with many partitions it takes milliseconds of CPU, which a Tokio worker should not
//! spend away from clients.

use std::collections::HashSet;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use prometheus_client::registry::Registry;
use strom_broker::Broker;

use crate::ApiError;

const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

pub fn routes(broker: &Arc<Broker>) -> Router {
    let registry = Arc::new(strom_broker::metrics::registry(broker));
    Router::new().route("/metrics", get(move || scrape(Arc::clone(&registry))))
}

async fn scrape(registry: Arc<Registry>) -> Response {
    let encoded = tokio::task::spawn_blocking(move || {
        let mut text = String::with_capacity(64 * 1024);
        prometheus_client::encoding::text::encode(&mut text, &registry).map(|()| text)
    })
    .await;
    match encoded {
        Ok(Ok(text)) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Ok(Err(e)) => {
            tracing::error!("encoding metrics failed: {e}");
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "encoding metrics failed")
                .into_response()
        }
        Err(e) => {
            tracing::error!("the metrics encoder failed: {e}");
            ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "encoding metrics failed")
                .into_response()
        }
    }
}

/// Route templates as static labels. The set is bounded by the routes the app has: only
/// matched routes are measured.
static ROUTES: LazyLock<Mutex<HashSet<&'static str>>> = LazyLock::new(Default::default);

fn route_label(route: &str) -> &'static str {
    let mut routes = ROUTES.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(known) = routes.get(route) {
        return known;
    }
    let leaked: &'static str = Box::leak(route.to_string().into_boxed_str());
    routes.insert(leaked);
    leaked
}

/// Counts and times a request of a matched route: `strom_requests_total{face="http",
/// api="GET /v1/topics/{name}"}`; a 4xx or 5xx answer counts as an error by its status.
pub async fn measure(route: MatchedPath, request: Request, next: Next) -> Response {
    let api = route_label(&format!("{} {}", request.method(), route.as_str()));
    let started = Instant::now();
    let response = next.run(request).await;
    let m = strom_metrics::global();
    m.request("http", api, started.elapsed().as_secs_f64());
    let status = response.status();
    if status.is_client_error() || status.is_server_error() {
        m.request_error("http", api, status.canonical_reason().unwrap_or("error"));
    }
    response
}
