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
pub mod auth;
pub mod error;
pub mod metrics;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

pub use auth::{Access, HttpAuth};
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

/// The node's HTTP application: `routers` merged, each behind the access it needs when `auth`
/// is on (the authorizer is), with the limits and a JSON 404 for the rest.
pub fn app(
    routers: Vec<(Access, Router)>,
    config: &HttpConfig,
    auth: Option<Arc<HttpAuth>>,
) -> Router {
    let mut app = Router::new();
    for (access, r) in routers {
        let r = match &auth {
            Some(auth) => r.route_layer(axum::middleware::from_fn_with_state(
                (Arc::clone(auth), access),
                auth::guard,
            )),
            None => r,
        };
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
    tls: Option<Arc<strom_tls::TlsServer>>,
) -> std::io::Result<()> {
    let permits = Arc::new(tokio::sync::Semaphore::new(config.max_connections.max(1)));
    let local = listener.local_addr()?;
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(accept_loop(listener, permits, tls, tx));
    axum::serve(
        Limited { rx, local },
        app.into_make_service_with_connect_info::<RemoteAddr>(),
    )
    .await
}

/// Accepts while fewer than `max_connections` are open; TLS handshakes run in their own tasks
/// (with a deadline), so a client that stalls one holds up nobody else.
async fn accept_loop(
    listener: tokio::net::TcpListener,
    permits: Arc<tokio::sync::Semaphore>,
    tls: Option<Arc<strom_tls::TlsServer>>,
    tx: tokio::sync::mpsc::Sender<(Permitted, std::net::SocketAddr)>,
) {
    loop {
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
            return;
        };
        let (stream, addr) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning on the error.
                tracing::warn!("http accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        match &tls {
            None => {
                let io = Permitted {
                    stream: strom_tls::Conn::Plain(stream),
                    _permit: permit,
                };
                if tx.send((io, addr)).await.is_err() {
                    return;
                }
            }
            Some(tls) => {
                let (tls, tx) = (Arc::clone(tls), tx.clone());
                tokio::spawn(async move {
                    match tls.accept(stream).await {
                        Ok(s) => {
                            let io = Permitted {
                                stream: strom_tls::Conn::Tls(Box::new(s)),
                                _permit: permit,
                            };
                            let _ = tx.send((io, addr)).await;
                        }
                        Err(e) => tracing::info!(%addr, "HTTP TLS handshake failed: {e}"),
                    }
                });
            }
        }
    }
}

/// The client's address, as handlers see it (`ConnectInfo<RemoteAddr>`).
#[derive(Clone, Copy, Debug)]
pub struct RemoteAddr(pub std::net::SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, Limited>>
    for RemoteAddr
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, Limited>) -> RemoteAddr {
        RemoteAddr(*stream.remote_addr())
    }
}

/// The accepted connections, as axum takes them.
struct Limited {
    rx: tokio::sync::mpsc::Receiver<(Permitted, std::net::SocketAddr)>,
    local: std::net::SocketAddr,
}

/// A connection holding one of the listener's permits until it closes.
pub struct Permitted {
    stream: strom_tls::Conn,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl axum::serve::Listener for Limited {
    type Io = Permitted;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(c) => c,
            // The accept loop never ends while the listener works; wait rather than spin.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
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
        let app = app(vec![(Access::Public, echo)], &config, None);
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
