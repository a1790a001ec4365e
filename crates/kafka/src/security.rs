//! Who is on the other end of a connection: listener protocols (Kafka's PLAINTEXT, SSL,
//! SASL_PLAINTEXT, SASL_SSL), the SASL exchange (SaslHandshake v1 + SaslAuthenticate, with
//! KIP-368 re-authentication), and the authorizer's entry point for handlers.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use kafka_protocol::messages::{
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use strom_auth::scram::{self, AuthError, ServerExchange, Step};
use strom_auth::{Mechanism, Operation, Requester, ResourceType};

use crate::handlers::str_bytes;
use crate::Context;
use kafka_protocol::ResponseError;

/// Kafka's listener security protocols.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl Protocol {
    pub fn parse(s: &str) -> Option<Protocol> {
        Some(match s {
            "PLAINTEXT" => Protocol::Plaintext,
            "SSL" => Protocol::Ssl,
            "SASL_PLAINTEXT" => Protocol::SaslPlaintext,
            "SASL_SSL" => Protocol::SaslSsl,
            _ => return None,
        })
    }

    pub fn tls(self) -> bool {
        matches!(self, Protocol::Ssl | Protocol::SaslSsl)
    }

    pub fn sasl(self) -> bool {
        matches!(self, Protocol::SaslPlaintext | Protocol::SaslSsl)
    }
}

/// A SASL mechanism a listener may offer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaslMechanism {
    Scram(Mechanism),
    Plain,
}

impl SaslMechanism {
    pub fn parse(s: &str) -> Option<SaslMechanism> {
        match s {
            "PLAIN" => Some(SaslMechanism::Plain),
            other => Mechanism::from_name(other).map(SaslMechanism::Scram),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Scram(m) => m.name(),
            SaslMechanism::Plain => "PLAIN",
        }
    }
}

/// Settings shared by every listener.
#[derive(Clone, Debug)]
pub struct SecurityConfig {
    /// Enforce ACLs. Off: every principal may do everything (Kafka without an authorizer).
    pub authorizer: bool,
    /// Principals that pass every check (`User:admin`).
    pub super_users: Vec<String>,
    pub sasl_mechanisms: Vec<SaslMechanism>,
    /// PLAIN sends the password itself: refused on a listener without TLS unless this is set.
    pub plain_without_tls: bool,
    /// KIP-368: a SASL session lasts this long, then the client must re-authenticate; 0 = for
    /// the connection's life (Kafka's `connections.max.reauth.ms`).
    pub session_lifetime: Duration,
    /// Most connections from one IP address at once.
    pub max_connections_per_ip: usize,
    /// The node's own clients (connectors, HTTP proxy) log in as this user over SASL; it passes
    /// every check. In a cluster its password derives from the cluster secret, so every node
    /// accepts every node's internal clients.
    pub internal_user: Option<(String, String)>,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        SecurityConfig {
            authorizer: false,
            super_users: Vec::new(),
            sasl_mechanisms: vec![
                SaslMechanism::Scram(Mechanism::Sha256),
                SaslMechanism::Scram(Mechanism::Sha512),
            ],
            plain_without_tls: false,
            session_lifetime: Duration::ZERO,
            max_connections_per_ip: 1000,
            internal_user: None,
        }
    }
}

/// The largest frame an unauthenticated client may send on a SASL listener (Kafka's
/// `sasl.server.max.receive.size`): no large allocation before a login.
pub const UNAUTHENTICATED_FRAME_BYTES: usize = 512 * 1024;

/// Where a connection stands.
pub struct Session {
    pub principal: String,
    pub host: String,
    /// Set on SASL listeners until the first successful login.
    pub needs_login: bool,
    /// When the SASL session ends (KIP-368); requests after it close the connection.
    pub expires: Option<Instant>,
    sasl: Sasl,
}

enum Sasl {
    Idle,
    Chosen(SaslMechanism),
    Scram(ServerExchange, Mechanism),
}

impl Session {
    pub fn new(principal: String, ip: IpAddr, needs_login: bool) -> Session {
        Session {
            principal,
            host: ip.to_string(),
            needs_login,
            expires: None,
            sasl: Sasl::Idle,
        }
    }

    pub fn requester(&self) -> Requester<'_> {
        Requester {
            principal: &self.principal,
            host: &self.host,
        }
    }
}

/// What a SASL request did to the connection.
pub enum SaslOutcome {
    Continue,
    /// The login failed (why, for the log): answer, then close the connection (after the
    /// failure delay).
    Failed(String),
}

pub fn handshake(
    ctx: &Context,
    session: &mut Session,
    req: SaslHandshakeRequest,
    version: i16,
) -> SaslHandshakeResponse {
    let offered = offered(ctx);
    let resp = SaslHandshakeResponse::default()
        .with_mechanisms(offered.iter().map(|m| str_bytes(m.name())).collect());
    // v0 is advertised because librdkafka keys its SASL support on it, but a v0 handshake is
    // followed by unframed SASL tokens (Kafka before 1.0), which Strom does not read.
    if !ctx.listener.protocol.sasl() || version == 0 {
        return resp.with_error_code(ResponseError::IllegalSaslState.code());
    }
    match offered.iter().find(|m| m.name() == req.mechanism.as_str()) {
        Some(m) => {
            session.sasl = Sasl::Chosen(*m);
            resp
        }
        None => {
            tracing::info!(host = %session.host, mechanism = %req.mechanism.as_str(), "unsupported SASL mechanism");
            resp.with_error_code(ResponseError::UnsupportedSaslMechanism.code())
        }
    }
}

/// Mechanisms this listener offers: PLAIN only over TLS unless allowed without.
fn offered(ctx: &Context) -> Vec<SaslMechanism> {
    ctx.security_config
        .sasl_mechanisms
        .iter()
        .copied()
        .filter(|m| {
            *m != SaslMechanism::Plain
                || ctx.listener.protocol.tls()
                || ctx.security_config.plain_without_tls
        })
        .collect()
}

pub fn authenticate(
    ctx: &Context,
    session: &mut Session,
    req: SaslAuthenticateRequest,
) -> (SaslAuthenticateResponse, SaslOutcome) {
    let fail = |session: &mut Session, error: i16, message: String| {
        session.sasl = Sasl::Idle;
        (
            SaslAuthenticateResponse::default()
                .with_error_code(error)
                .with_error_message(Some(str_bytes(message.clone()))),
            SaslOutcome::Failed(message),
        )
    };
    let lookup = |user: &str, m: Mechanism| -> Option<scram::Credential> {
        if let Some((name, password)) = &ctx.security_config.internal_user {
            if name == user {
                return Some(internal_credential(m, password));
            }
        }
        ctx.security.read(|s| s.credential(user, m).cloned())
    };
    let result = match std::mem::replace(&mut session.sasl, Sasl::Idle) {
        Sasl::Idle => {
            return fail(
                session,
                ResponseError::IllegalSaslState.code(),
                "SaslAuthenticate before SaslHandshake".into(),
            )
        }
        Sasl::Chosen(SaslMechanism::Plain) => {
            scram::verify_plain(&req.auth_bytes, lookup).map(|user| Step::Success {
                user,
                message: Vec::new(),
            })
        }
        Sasl::Chosen(SaslMechanism::Scram(m)) => {
            let mut exchange = ServerExchange::new(m);
            let step = exchange.step(&req.auth_bytes, |u| lookup(u, m));
            session.sasl = Sasl::Scram(exchange, m);
            step
        }
        Sasl::Scram(mut exchange, m) => exchange.step(&req.auth_bytes, |u| lookup(u, m)),
    };
    match result {
        Ok(Step::Continue(message)) => (
            SaslAuthenticateResponse::default().with_auth_bytes(message.into()),
            SaslOutcome::Continue,
        ),
        Ok(Step::Success { user, message }) => {
            let principal = format!("User:{user}");
            // KIP-368: a re-authentication may not change who the connection is.
            if !session.needs_login && session.principal != principal {
                return fail(
                    session,
                    ResponseError::SaslAuthenticationFailed.code(),
                    "re-authentication as a different principal".into(),
                );
            }
            session.sasl = Sasl::Idle;
            session.needs_login = false;
            session.principal = principal;
            let lifetime = ctx.security_config.session_lifetime;
            session.expires = (!lifetime.is_zero()).then(|| Instant::now() + lifetime);
            tracing::debug!(host = %session.host, principal = %session.principal, "SASL login");
            (
                SaslAuthenticateResponse::default()
                    .with_auth_bytes(message.into())
                    .with_session_lifetime_ms(lifetime.as_millis().try_into().unwrap_or(i64::MAX)),
                SaslOutcome::Continue,
            )
        }
        Err(e) => {
            // Logged (rate-limited) by the caller, with how often this address failed.
            tracing::debug!(host = %session.host, "SASL authentication failed: {e}");
            let message = match e {
                AuthError::InvalidCredentials(_) => e.to_string(),
                other => format!("Authentication failed: {other}"),
            };
            fail(
                session,
                ResponseError::SaslAuthenticationFailed.code(),
                message,
            )
        }
    }
}

/// The internal user's credential, derived the same way on every node from its password.
fn internal_credential(m: Mechanism, password: &str) -> scram::Credential {
    let salt = b"strom-internal".to_vec();
    let salted = m.salted_password(password.as_bytes(), &salt, scram::MIN_ITERATIONS);
    scram::Credential::from_salted(m, salt, scram::MIN_ITERATIONS, &salted)
}

impl Context {
    /// Kafka's authorizer decision for the connection's principal; everything is allowed with
    /// the authorizer off.
    pub fn allowed(
        &self,
        client: &crate::handlers::Client,
        op: Operation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        self.decide(client, |s, who| s.allows(who, op, resource_type, name))
    }

    /// Whether any resource of `resource_type` allows `op` (Kafka lets an idempotent producer
    /// in with Write on any topic instead of IdempotentWrite on the cluster).
    pub fn allowed_any(
        &self,
        client: &crate::handlers::Client,
        op: Operation,
        resource_type: ResourceType,
    ) -> bool {
        self.decide(client, |s, who| {
            s.acls
                .iter()
                .filter(|a| a.resource_type == resource_type)
                .any(|a| s.allows(who, op, resource_type, &a.resource_name))
        })
    }

    /// `check` on the ACLs, unless the authorizer is off or the principal is a super user.
    fn decide(
        &self,
        client: &crate::handlers::Client,
        check: impl FnOnce(&strom_auth::SecurityState, &Requester<'_>) -> bool,
    ) -> bool {
        if !self.security_config.authorizer || self.is_super(&client.principal) {
            return true;
        }
        let who = Requester {
            principal: &client.principal,
            host: &client.ip,
        };
        self.security.read(|s| check(s, &who))
    }

    fn is_super(&self, principal: &str) -> bool {
        self.security_config
            .super_users
            .iter()
            .any(|u| u == principal)
            || self
                .security_config
                .internal_user
                .as_ref()
                .is_some_and(|(u, _)| principal.strip_prefix("User:") == Some(u.as_str()))
    }
}

/// Connections open per address, shared by every listener.
#[derive(Default)]
pub struct ConnectionCounts {
    per_ip: Mutex<HashMap<IpAddr, usize>>,
    total: std::sync::atomic::AtomicUsize,
}

/// Held while a connection is open.
pub struct ConnectionSlot {
    counts: Arc<ConnectionCounts>,
    ip: IpAddr,
}

impl ConnectionCounts {
    /// A slot for a new connection from `ip`, or why not.
    pub fn admit(
        self: &Arc<Self>,
        ip: IpAddr,
        max_total: usize,
        max_per_ip: usize,
    ) -> Result<ConnectionSlot, &'static str> {
        use std::sync::atomic::Ordering;
        let mut per_ip = self.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        if self.total.load(Ordering::Relaxed) >= max_total {
            return Err("too many connections");
        }
        let n = per_ip.entry(ip).or_insert(0);
        if *n >= max_per_ip {
            return Err("too many connections from this address");
        }
        *n += 1;
        self.total.fetch_add(1, Ordering::Relaxed);
        Ok(ConnectionSlot {
            counts: Arc::clone(self),
            ip,
        })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        use std::sync::atomic::Ordering;
        let mut per_ip = self.counts.per_ip.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                per_ip.remove(&self.ip);
            }
        }
        self.counts.total.fetch_sub(1, Ordering::Relaxed);
    }
}
