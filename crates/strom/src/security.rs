//! The node's own security plumbing: the internal user its clients log in as, the bootstrap
//! super user, and how its clients reach a secured listener.

use std::sync::Arc;
use std::time::Duration;

use strom_auth::scram::{Credential, MIN_ITERATIONS};
use strom_auth::{Command, Mechanism};
use strom_broker::security::Security;
use strom_kafka::security::{Protocol, SaslMechanism, SecurityConfig};

use crate::listeners::KafkaListener;

const INTERNAL_USER: &str = "__strom_internal";

/// The internal user and its password. In a cluster the password derives from the cluster
/// secret, so every node accepts every node's clients; a single node draws a fresh one.
pub fn internal_user(cluster: Option<&strom_broker::cluster::ClusterConfig>) -> (String, String) {
    use hmac::{Mac, SimpleHmac};
    let password = match cluster {
        Some(c) => {
            let mut mac =
                <SimpleHmac<sha2::Sha256> as hmac::digest::KeyInit>::new_from_slice(&c.secret)
                    .unwrap_or_else(|_| unreachable!("hmac accepts any key length"));
            mac.update(b"strom internal user v1");
            hex(&mac.finalize().into_bytes())
        }
        None => hex(&rand::random::<[u8; 32]>()),
    };
    (INTERNAL_USER.to_string(), password)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Creates the bootstrap user (SCRAM-SHA-256 and -512) unless it exists, retrying until the
/// controller has a leader. An existing user keeps its password: the environment only seeds it.
pub fn create_bootstrap_user(security: Arc<Security>, (user, password): (String, String)) {
    tokio::spawn(async move {
        let credentials = Mechanism::ALL
            .into_iter()
            .map(|m| (m, Credential::new(m, &password, MIN_ITERATIONS)))
            .collect();
        let cmd = Command::CreateUserIfAbsent {
            user: user.clone(),
            credentials,
        };
        let mut delay = Duration::from_millis(200);
        loop {
            if security.read(|s| s.users.contains_key(&user)) {
                return;
            }
            match security.propose(cmd.clone()).await {
                Ok(()) => {
                    tracing::info!(%user, "bootstrap user created");
                    return;
                }
                Err(e) => tracing::debug!(%user, "bootstrap user not created yet: {e}"),
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    });
}

/// How the node's own Kafka clients (connectors, HTTP proxy) reach it: a SASL listener as the
/// internal user when the authorizer is on, else the primary listener; with TLS they trust
/// the CA, and on an SSL listener they present the node's certificate (a super user).
pub fn internal_client(
    listeners: &[(tokio::net::TcpListener, KafkaListener)],
    config: &SecurityConfig,
    tls: Option<&strom_tls::TlsFiles>,
) -> strom_connect::store::KafkaClient {
    let chosen = listeners
        .iter()
        .map(|(_, l)| l)
        .find(|l| config.authorizer && l.listener.protocol.sasl())
        .or_else(|| listeners.first().map(|(_, l)| l));
    let Some(l) = chosen else {
        return Default::default();
    };
    let mut properties: Vec<(String, String)> = Vec::new();
    let mut set = |k: &str, v: &str| properties.push((k.to_string(), v.to_string()));
    let protocol = match l.listener.protocol {
        Protocol::Plaintext => "PLAINTEXT",
        Protocol::Ssl => "SSL",
        Protocol::SaslPlaintext => "SASL_PLAINTEXT",
        Protocol::SaslSsl => "SASL_SSL",
    };
    set("security.protocol", protocol);
    if l.listener.protocol.sasl() {
        let mechanism = config
            .sasl_mechanisms
            .iter()
            .find(|m| matches!(m, SaslMechanism::Scram(_)))
            .unwrap_or(&SaslMechanism::Plain);
        set("sasl.mechanism", mechanism.name());
        if let Some((user, password)) = &config.internal_user {
            set("sasl.username", user);
            set("sasl.password", password);
        }
    }
    if let (true, Some(files)) = (l.listener.protocol.tls(), tls) {
        let ca = files.ca.as_ref().unwrap_or(&files.cert);
        set("ssl.ca.location", &ca.display().to_string());
        if l.listener.protocol == Protocol::Ssl {
            set(
                "ssl.certificate.location",
                &files.cert.display().to_string(),
            );
            set("ssl.key.location", &files.key.display().to_string());
        }
    }
    strom_connect::store::KafkaClient {
        bootstrap: format!("{}:{}", l.advertised_host, l.advertised_port),
        properties,
    }
}
