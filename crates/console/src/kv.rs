//! The coordination KV as the console sees it, read through the node's etcd API with
//! etcd-client: keys under a prefix, and a live watch of them as Server-Sent Events. Keys and
//! values are shown as text (lossy UTF-8) and carried in base64 for the hex view.

use std::convert::Infallible;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use base64::Engine as _;
use etcd_client::{
    Certificate, Client, EventType, GetOptions, Identity, KeyValue, TlsOptions, WatchOptions,
};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::{json, Value};
use strom_auth::Caller;
use strom_tls::TlsFiles;
use tokio::sync::{Mutex, Semaphore};

/// Keys one listing returns at most.
const MAX_KEYS: i64 = 1000;
/// Live watches served at once; more get 429.
const MAX_WATCHES: usize = 64;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Whether an authenticated HTTP caller may read every key of `[key, range_end)` (etcd's range
/// convention): the key ACLs the etcd API enforces, applied to the console's caller, since the
/// console reads the store with the node's own rights.
pub type MayRead = Arc<dyn Fn(&Caller, &[u8], &[u8]) -> bool + Send + Sync>;

/// Where the KV page reads the etcd API: its client URL and, when it is served over TLS, the
/// node's own TLS files. The node's certificate is presented (for `--etcd-client-cert-auth`);
/// the listener's is checked against the CA, or without one against the node's certificate,
/// as every client of the node does.
#[derive(Clone, Debug)]
pub struct EtcdEndpoint {
    pub url: String,
    pub tls: Option<TlsFiles>,
}

/// The certificate the etcd listener's is checked against.
fn trusted(files: &TlsFiles) -> &PathBuf {
    files.ca.as_ref().unwrap_or(&files.cert)
}

/// When each file was last changed: a client made before a change is made again.
async fn stamps(files: &TlsFiles) -> Vec<Option<SystemTime>> {
    let mut out = Vec::with_capacity(3);
    for path in [trusted(files), &files.cert, &files.key] {
        out.push(
            tokio::fs::metadata(path)
                .await
                .and_then(|m| m.modified())
                .ok(),
        );
    }
    out
}

async fn tls_options(files: &TlsFiles) -> Result<TlsOptions, String> {
    let read = |path: PathBuf| async move {
        tokio::fs::read(&path)
            .await
            .map_err(|e| format!("cannot read {}: {e}", path.display()))
    };
    let ca = read(trusted(files).clone()).await?;
    let cert = read(files.cert.clone()).await?;
    let key = read(files.key.clone()).await?;
    Ok(TlsOptions::new()
        .ca_certificate(Certificate::from_pem(ca))
        .identity(Identity::from_pem(cert, key)))
}

/// The client, and the stamps of the TLS files it was made with.
type Held = (Client, Vec<Option<SystemTime>>);

#[derive(Clone)]
struct Kv {
    endpoint: Option<EtcdEndpoint>,
    may_read: Option<MayRead>,
    client: Arc<Mutex<Option<Held>>>,
    watches: Arc<Semaphore>,
}

pub(crate) fn routes(endpoint: Option<EtcdEndpoint>, may_read: Option<MayRead>) -> Router {
    let kv = Kv {
        endpoint,
        may_read,
        client: Arc::new(Mutex::new(None)),
        watches: Arc::new(Semaphore::new(MAX_WATCHES)),
    };
    Router::new()
        .route("/v1/kv", get(list))
        .route("/v1/kv/watch", get(watch))
        .with_state(kv)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    let body = json!({"error_code": status.as_u16(), "message": message.into()});
    (status, Json(body)).into_response()
}

impl Kv {
    /// A connected client, made on first use and kept until a TLS file changes (a renewed
    /// certificate, or CA, is used from then on).
    async fn client(&self) -> Result<Client, Response> {
        let Some(endpoint) = &self.endpoint else {
            return Err(error(
                StatusCode::NOT_FOUND,
                "the etcd API is turned off on this node (--etcd-addr '')",
            ));
        };
        let stamps = match &endpoint.tls {
            Some(tls) => stamps(tls).await,
            None => Vec::new(),
        };
        let mut held = self.client.lock().await;
        if let Some((c, _)) = held.as_ref().filter(|(_, s)| *s == stamps) {
            return Ok(c.clone());
        }
        let mut options = etcd_client::ConnectOptions::new().with_connect_timeout(CONNECT_TIMEOUT);
        if let Some(tls) = &endpoint.tls {
            let tls = tls_options(tls)
                .await
                .map_err(|e| error(StatusCode::BAD_GATEWAY, format!("etcd API over TLS: {e}")))?;
            options = options.with_tls(tls);
        }
        let c = Client::connect([endpoint.url.as_str()], Some(options))
            .await
            .map_err(|e| error(StatusCode::BAD_GATEWAY, format!("etcd API: {e}")))?;
        *held = Some((c.clone(), stamps));
        Ok(c)
    }
}

#[derive(Deserialize)]
struct PrefixQuery {
    #[serde(default)]
    prefix: String,
    limit: Option<i64>,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn kv_json(kv: &KeyValue) -> Value {
    json!({
        "key": String::from_utf8_lossy(kv.key()),
        "value": String::from_utf8_lossy(kv.value()),
        "value_base64": b64(kv.value()),
        "create_revision": kv.create_revision(),
        "mod_revision": kv.mod_revision(),
        "version": kv.version(),
        "lease": kv.lease(),
    })
}

/// The options for every key under `prefix` (the empty prefix: all keys).
fn under(prefix: &str) -> (Vec<u8>, bool) {
    if prefix.is_empty() {
        (vec![0], true)
    } else {
        (prefix.as_bytes().to_vec(), false)
    }
}

impl Kv {
    /// A client for reading every key under `prefix`, if `caller` may.
    async fn open(&self, caller: Option<&Caller>, prefix: &str) -> Result<Client, Response> {
        self.check(caller, prefix)?;
        self.client().await
    }

    /// Refuses a caller the key ACLs do not let read every key under `prefix`.
    fn check(&self, caller: Option<&Caller>, prefix: &str) -> Result<(), Response> {
        let Some(may_read) = &self.may_read else {
            return Ok(());
        };
        let (key, all) = under(prefix);
        let end = if all {
            vec![0]
        } else {
            match strom_auth::acl::prefix_end(&key) {
                end if end.is_empty() => vec![0],
                end => end,
            }
        };
        match caller {
            Some(c) if may_read(c, &key, &end) => Ok(()),
            Some(c) => Err(error(
                StatusCode::FORBIDDEN,
                format!(
                    "{} may not read every key under '{prefix}' (a Read ACL on EtcdKey)",
                    c.principal()
                ),
            )),
            None => Err(error(StatusCode::UNAUTHORIZED, "authentication required")),
        }
    }
}

async fn list(
    State(kv): State<Kv>,
    caller: Option<Extension<Caller>>,
    Query(q): Query<PrefixQuery>,
) -> Response {
    let mut client = match kv.open(caller.as_deref(), &q.prefix).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let limit = q.limit.unwrap_or(100).clamp(1, MAX_KEYS);
    let (key, all) = under(&q.prefix);
    let options = GetOptions::new().with_limit(limit);
    let options = if all {
        options.with_from_key()
    } else {
        options.with_prefix()
    };
    match client.get(key, Some(options)).await {
        Ok(resp) => Json(json!({
            "revision": resp.header().map_or(0, |h| h.revision()),
            "count": resp.count(),
            "more": resp.more(),
            "kvs": resp.kvs().iter().map(kv_json).collect::<Vec<_>>(),
        }))
        .into_response(),
        Err(e) => error(StatusCode::BAD_GATEWAY, format!("etcd range: {e}")),
    }
}

async fn watch(
    State(kv): State<Kv>,
    caller: Option<Extension<Caller>>,
    Query(q): Query<PrefixQuery>,
) -> Response {
    let Ok(permit) = Arc::clone(&kv.watches).try_acquire_owned() else {
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            format!("{MAX_WATCHES} live watches are open"),
        );
    };
    let mut client = match kv.open(caller.as_deref(), &q.prefix).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let (key, all) = under(&q.prefix);
    let options = WatchOptions::new().with_prev_key();
    let options = if all {
        options.with_from_key()
    } else {
        options.with_prefix()
    };
    let stream = match client.watch(key, Some(options)).await {
        Ok(s) => s,
        Err(e) => return error(StatusCode::BAD_GATEWAY, format!("etcd watch: {e}")),
    };
    let events = stream
        .take_while(|r| futures::future::ready(r.is_ok()))
        .flat_map(move |r| {
            // The permit lives as long as the stream: it is moved into every item's closure.
            let _held = &permit;
            let events: Vec<Result<Event, Infallible>> = match r {
                Ok(resp) => resp
                    .events()
                    .iter()
                    .filter_map(|e| {
                        let kind = match e.event_type() {
                            EventType::Put => "PUT",
                            EventType::Delete => "DELETE",
                        };
                        let mut body = kv_json(e.kv()?);
                        body["type"] = json!(kind);
                        Some(Ok(Event::default().data(body.to_string())))
                    })
                    .collect(),
                Err(_) => Vec::new(),
            };
            futures::stream::iter(events)
        });
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}
