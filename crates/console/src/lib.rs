//! The web console at `/`: a few static files (`assets/`, plain HTML, CSS and JavaScript with no
//! build step) embedded in the binary with rust-embed, so the one binary serves it with no CDN
//! and no separate server. The pages read the node's other HTTP APIs (admin `/v1/...`,
//! `/metrics`, the HTTP proxy) and, for the coordination KV, the two routes here:
//! - `GET /v1/kv?prefix=P&limit=N`: keys under a prefix with their revisions, through the
//!   node's etcd API (as a client: the console has no access to the state machine's insides);
//! - `GET /v1/kv/watch?prefix=P`: the same prefix's changes live, as Server-Sent Events.

mod kv;

pub use kv::{EtcdEndpoint, MayRead};

use axum::extract::Path;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

#[derive(rust_embed::RustEmbed)]
#[folder = "assets/"]
struct Assets;

/// The console's routes; `etcd` is the node's etcd client URL (`None`: the etcd API is off,
/// and the KV page says so); `may_read`, with the authorizer on, the key ACLs' verdict.
pub fn routes(etcd: Option<EtcdEndpoint>, may_read: Option<MayRead>) -> Router {
    Router::new()
        .route("/", get(|| asset("index.html")))
        .route(
            "/console/{*file}",
            get(|Path(file): Path<String>| asset_owned(file)),
        )
        .merge(kv::routes(etcd, may_read))
}

async fn asset_owned(file: String) -> Response {
    asset(&file).await
}

async fn asset(file: &str) -> Response {
    let Some(content) = Assets::get(file) else {
        return (StatusCode::NOT_FOUND, "no such file").into_response();
    };
    let kind = match file.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        _ => "application/octet-stream",
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        content.data.into_owned(),
    )
        .into_response()
}
