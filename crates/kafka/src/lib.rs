//! The Kafka wire-protocol front end.
//!
//! A connection task reads size-capped frames, [`precheck`]s every length in the request body
//! before `kafka-protocol` decodes it (its decoders allocate from wire counts), dispatches to a
//! handler, and writes responses strictly in request order while later requests are already being
//! processed (pipelining). Handlers talk to [`strom_broker`] only; they never touch files.

pub mod authz;
pub mod dispatch;
pub mod errors;
pub mod fetch_encoding;
pub mod frame;
pub mod handlers;
pub mod metrics;
pub mod precheck;
pub mod quota;
pub mod security;
pub mod server;
pub mod trace;
pub mod versions;

use std::sync::Arc;

pub use server::serve;

/// Front-end settings.
#[derive(Debug, Clone)]
pub struct KafkaConfig {
    /// Host and port that Metadata tells clients to connect to.
    pub advertised_host: String,
    pub advertised_port: i32,
    /// Largest request frame accepted (Kafka's `socket.request.max.bytes`).
    pub max_request_bytes: usize,
    /// Connections beyond this are closed at once, protecting memory and file descriptors.
    pub max_connections: usize,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig {
            advertised_host: "127.0.0.1".into(),
            advertised_port: 9092,
            max_request_bytes: 100 * 1024 * 1024,
            max_connections: 10_000,
        }
    }
}

/// One Kafka listener (Kafka's `listeners`/`advertised.listeners` entry).
#[derive(Debug, Clone)]
pub struct Listener {
    /// The name in Metadata's per-listener addresses (`PLAINTEXT`, `SASL_SSL`, ...).
    pub name: String,
    pub protocol: security::Protocol,
    pub addr: std::net::SocketAddr,
}

/// What every handler can reach. One per listener: `config` holds that listener's advertised
/// address, so Metadata on each listener names its own.
pub struct Context {
    pub broker: Arc<strom_broker::Broker>,
    /// The transaction coordinator (ids whose `__transaction_state` partition is led here).
    pub txn: Arc<strom_txn::TxnCoordinator>,
    pub config: KafkaConfig,
    pub listener: Listener,
    /// Users, ACLs and quotas as replicated.
    pub security: Arc<strom_broker::security::Security>,
    pub security_config: security::SecurityConfig,
    /// The listener's TLS identity (SSL and SASL_SSL listeners).
    pub tls: Option<Arc<strom_tls::TlsServer>>,
    /// Shared by every listener of the node.
    pub connections: Arc<security::ConnectionCounts>,
    pub login_failures: Arc<strom_auth::LoginFailures>,
    pub quotas: Arc<quota::Quotas>,
}
