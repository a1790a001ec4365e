//! The HTTP face: one HTTP/1.1 listener per node (`--http-addr`, default `127.0.0.1:9644`) for
//! every HTTP API it serves. Each API is an axum `Router` built by the crate that owns it and
//! merged here (`app`), so adding one is adding a router: the admin API (`admin`) and metrics
//! (`metrics`) today, the connector REST API and the console next.
//!
//! Every request is bounded: a body larger than `max_body_bytes` is refused with 413, a request
//! not answered within `request_timeout` with 408, and at most `max_connections` connections are
//! served at once (more wait in the accept queue). Errors are JSON, in Kafka Connect's shape
//! (`{"error_code": N, "message": "..."}`), which its REST clients parse.

pub mod admin;
pub mod error;
pub mod metrics;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

pub use error::ApiError;

/// Limits of the HTTP listener.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    pub max_connections: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_body_bytes: 1 << 20,
            request_timeout: Duration::from_secs(30),
            max_connections: 1024,
        }
    }
}

/// The node's HTTP application: `routers` merged, with the limits and a JSON 404 for the rest.
pub fn app(routers: Vec<Router>, config: &HttpConfig) -> Router {
    let mut app = Router::new();
    for r in routers {
        app = app.merge(r);
    }
    app.route_layer(axum::middleware::from_fn(metrics::measure))
        .fallback(|| async { ApiError::not_found("Not found: no such endpoint") })
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            config.request_timeout,
        ))
        .layer(RequestBodyLimitLayer::new(config.max_body_bytes))
}

/// Serves `app` on `listener` until the task is dropped, at most `max_connections` at once.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    config: &HttpConfig,
) -> std::io::Result<()> {
    let permits = Arc::new(tokio::sync::Semaphore::new(config.max_connections.max(1)));
    let listener = Limited { listener, permits };
    axum::serve(listener, app).await
}

/// A listener that stops accepting while `max_connections` are open.
struct Limited {
    listener: tokio::net::TcpListener,
    permits: Arc<tokio::sync::Semaphore>,
}

/// A connection holding one of the listener's permits until it closes.
pub struct Permitted {
    stream: tokio::net::TcpStream,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl axum::serve::Listener for Limited {
    type Io = Permitted;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok(permit) = Arc::clone(&self.permits).acquire_owned().await else {
                // The semaphore is never closed; wait forever rather than spin.
                std::future::pending::<()>().await;
                continue;
            };
            match self.listener.accept().await {
                Ok((stream, addr)) => {
                    let _ = stream.set_nodelay(true);
                    let io = Permitted {
                        stream,
                        _permit: permit,
                    };
                    return (io, addr);
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning on the error.
                    tracing::warn!("http accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

impl tokio::io::AsyncRead for Permitted {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for Permitted {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use axum::routing::post;
    use tower::ServiceExt;

    async fn send(app: Router, method: &str, path: &str, body: Vec<u8>) -> (StatusCode, String) {
        let request = Request::builder()
            .method(method)
            .uri(path)
            .body(Body::from(body))
            .unwrap();
        let response = app.oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    }

    #[tokio::test]
    async fn bodies_over_the_limit_and_unknown_paths_are_refused() {
        let config = HttpConfig {
            max_body_bytes: 1000,
            ..HttpConfig::default()
        };
        let echo = Router::new().route("/echo", post(|body: String| async move { body }));
        let app = app(vec![echo], &config);
        assert_eq!(
            send(app.clone(), "POST", "/echo", vec![b'a'; 1000]).await,
            (StatusCode::OK, "a".repeat(1000))
        );
        let (status, _) = send(app.clone(), "POST", "/echo", vec![b'a'; 1001]).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        let (status, body) = send(app, "GET", "/nope", Vec::new()).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["error_code"], 404);
    }
}
