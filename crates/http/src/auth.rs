//! Who may use the HTTP listener. With the authorizer on, every request but the health probes
//! carries HTTP Basic credentials of a SCRAM user (the same users as the Kafka listeners, as
//! Redpanda's `http_basic`), and each API says what it needs:
//!
//! - [`Access::Public`]: nothing (liveness and readiness probes).
//! - [`Access::Authenticated`]: a valid login; the API acts as the caller itself (the HTTP
//!   proxy logs in to Kafka as them, so the topic and group ACLs decide there; the console
//!   checks key ACLs).
//! - [`Access::Cluster`]: the cluster's `Describe` ACL to read, `Alter` to change (the admin
//!   and connector APIs act with the node's own rights, so they need cluster-wide ones).
//!
//! A wrong password is answered after the same growing delay as a failed Kafka login (the
//! failures are counted per address across both), and logged without the password.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use sha2::Digest as _;
use strom_auth::{Caller, LoginFailures, Mechanism, Operation, Requester, ResourceType};
use strom_broker::security::Security;

use crate::ApiError;

/// What an API needs of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Public,
    Authenticated,
    Cluster,
}

/// Verified logins kept at most; beyond it the cache starts over.
const VERIFIED_MAX: usize = 10_000;
/// Basic credentials longer than this are refused unread.
const MAX_CREDENTIALS_BYTES: usize = 4096;

pub struct HttpAuth {
    security: Arc<Security>,
    super_users: Vec<String>,
    /// The SCRAM mechanisms the Kafka listeners offer, in preference order: a caller is
    /// verified against (and the proxy logs in with) the first one the user has.
    mechanisms: Vec<Mechanism>,
    failures: Arc<LoginFailures>,
    /// Logins already verified, so a request does not pay PBKDF2 each time: (user, SHA-256 of
    /// the password) -> the mechanism and StoredKey it matched. An entry counts only while the
    /// user's credential still has that StoredKey, so a changed or deleted password ends it.
    verified: Mutex<Verified>,
}

/// (user, SHA-256 of the password) -> (mechanism, StoredKey).
type Verified = HashMap<(String, [u8; 32]), (Mechanism, Vec<u8>)>;

impl HttpAuth {
    pub fn new(
        security: Arc<Security>,
        super_users: Vec<String>,
        mechanisms: Vec<Mechanism>,
        failures: Arc<LoginFailures>,
    ) -> Arc<HttpAuth> {
        let mechanisms = if mechanisms.is_empty() {
            Mechanism::ALL.to_vec()
        } else {
            mechanisms
        };
        Arc::new(HttpAuth {
            security,
            super_users,
            mechanisms,
            failures,
            verified: Mutex::new(HashMap::new()),
        })
    }

    /// The caller named by `headers`' Basic credentials, or why not.
    async fn authenticate(
        self: &Arc<Self>,
        headers: &HeaderMap,
        ip: IpAddr,
    ) -> Result<Caller, Refusal> {
        let value = headers
            .get(header::AUTHORIZATION)
            .ok_or(Refusal::NoCredentials)?;
        if value.len() > MAX_CREDENTIALS_BYTES {
            return Err(Refusal::Bad("credentials too long"));
        }
        let encoded = value
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Basic ")
                    .or_else(|| v.strip_prefix("basic "))
            })
            .ok_or(Refusal::Bad("not HTTP Basic credentials"))?;
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|_| Refusal::Bad("credentials are not base64"))?;
        let text =
            String::from_utf8(decoded).map_err(|_| Refusal::Bad("credentials are not UTF-8"))?;
        let (user, password) = text
            .split_once(':')
            .ok_or(Refusal::Bad("credentials are not user:password"))?;
        let digest: [u8; 32] = sha2::Sha256::digest(password.as_bytes()).into();
        let key = (user.to_string(), digest);
        let current = |m: Mechanism| {
            self.security
                .read(|s| s.credential(user, m).map(|c| c.stored_key.clone()))
        };
        let cached = self.verified_lock().get(&key).cloned();
        if let Some((m, stored)) = cached {
            if current(m).as_ref() == Some(&stored) {
                return Ok(caller(user, password, m, ip));
            }
        }
        // PBKDF2 takes milliseconds of CPU: off the async workers.
        let this = Arc::clone(self);
        let (u, p) = (user.to_string(), password.to_string());
        let matched = tokio::task::spawn_blocking(move || this.verify(&u, &p))
            .await
            .ok()
            .flatten();
        let Some((m, stored)) = matched else {
            return Err(Refusal::Invalid(user.to_string()));
        };
        let mut verified = self.verified_lock();
        if verified.len() >= VERIFIED_MAX {
            verified.clear();
        }
        verified.insert(key, (m, stored));
        Ok(caller(user, password, m, ip))
    }

    /// The first offered mechanism the user has a credential for, if the password matches it.
    fn verify(&self, user: &str, password: &str) -> Option<(Mechanism, Vec<u8>)> {
        let (m, credential) = self.security.read(|s| {
            self.mechanisms
                .iter()
                .find_map(|&m| s.credential(user, m).map(|c| (m, c.clone())))
        })?;
        credential
            .verify_password(m, password)
            .then(|| (m, credential.stored_key.clone()))
    }

    fn verified_lock(&self) -> std::sync::MutexGuard<'_, Verified> {
        self.verified.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `caller` may do `op` on the cluster.
    fn allows_cluster(&self, caller: &Caller, op: Operation) -> bool {
        let principal = caller.principal();
        if self.super_users.contains(&principal) {
            return true;
        }
        let host = caller.ip.to_string();
        let who = Requester {
            principal: &principal,
            host: &host,
        };
        self.security
            .read(|s| s.allows(&who, op, ResourceType::Cluster, "kafka-cluster"))
    }
}

fn caller(user: &str, password: &str, mechanism: Mechanism, ip: IpAddr) -> Caller {
    Caller {
        user: user.to_string(),
        password: password.to_string(),
        mechanism,
        ip,
    }
}

enum Refusal {
    NoCredentials,
    Bad(&'static str),
    Invalid(String),
}

/// The middleware guarding one API: authenticates, checks `access`, and hands the caller on.
pub async fn guard(
    State((auth, access)): State<(Arc<HttpAuth>, Access)>,
    mut request: Request,
    next: Next,
) -> Response {
    if access == Access::Public {
        return next.run(request).await;
    }
    let peer = request
        .extensions()
        .get::<ConnectInfo<crate::RemoteAddr>>()
        .map(|c| c.0 .0)
        .unwrap_or_else(|| SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)));
    let caller = match auth.authenticate(request.headers(), peer.ip()).await {
        Ok(c) => c,
        // A browser's first request carries no credentials; the challenge makes it ask.
        Err(Refusal::NoCredentials) => return unauthorized("authentication required"),
        Err(refusal) => {
            let (delay, failures) = auth.failures.record(peer.ip());
            if failures.is_power_of_two() {
                let why = match &refusal {
                    Refusal::Invalid(user) => format!("wrong password or unknown user '{user}'"),
                    Refusal::Bad(why) => why.to_string(),
                    Refusal::NoCredentials => String::new(),
                };
                tracing::warn!(%peer, failures, "failed HTTP authentication: {why} ({failures} from this address in the last minute)");
            }
            tokio::time::sleep(delay).await;
            return unauthorized("authentication failed: wrong user name or password");
        }
    };
    if access == Access::Cluster {
        let op = match *request.method() {
            Method::GET | Method::HEAD => Operation::Describe,
            _ => Operation::Alter,
        };
        if !auth.allows_cluster(&caller, op) {
            return ApiError::new(
                StatusCode::FORBIDDEN,
                format!(
                    "{} is not authorized to {} the cluster (a {} ACL on the Cluster resource)",
                    caller.principal(),
                    op.name(),
                    op.name()
                ),
            )
            .into_response();
        }
    }
    request.extensions_mut().insert(caller);
    next.run(request).await
}

fn unauthorized(message: &str) -> Response {
    let mut response = ApiError::new(StatusCode::UNAUTHORIZED, message).into_response();
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"strom\", charset=\"UTF-8\""),
    );
    response
}
