//! The security half of `strom serve`'s settings: Kafka listeners in Kafka's syntax, TLS
//! files, SASL, the authorizer and the bootstrap user, resolved and checked.

use std::net::SocketAddr;

use anyhow::{bail, Context as _};
use strom_kafka::security::{Protocol, SaslMechanism, SecurityConfig};
use strom_tls::TlsFiles;

use crate::config::ServeArgs;

/// One Kafka listener and the address Metadata gives for it.
#[derive(Debug, Clone)]
pub struct KafkaListener {
    pub listener: strom_kafka::Listener,
    pub advertised_host: String,
    pub advertised_port: i32,
}

pub struct Security {
    /// The first is the node's primary listener.
    pub listeners: Vec<KafkaListener>,
    pub config: SecurityConfig,
    pub tls: Option<TlsFiles>,
    pub bootstrap_user: Option<(String, String)>,
    pub http_tls: bool,
    pub etcd_tls: bool,
    pub etcd_client_cert_auth: bool,
    pub raft_tls: bool,
}

/// Splits repeated and comma-separated values.
fn list(values: &Option<Vec<String>>) -> Vec<String> {
    values
        .iter()
        .flatten()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(String::from)
        .collect()
}

fn parse_listener(s: &str) -> anyhow::Result<(Protocol, String, u16)> {
    let (proto, addr) = s
        .split_once("://")
        .with_context(|| format!("listener {s:?} is not PROTOCOL://HOST:PORT"))?;
    let protocol = Protocol::parse(proto).with_context(|| {
        format!("listener {s:?}: protocol must be PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL")
    })?;
    let (host, port) = addr
        .rsplit_once(':')
        .with_context(|| format!("listener {s:?} is not PROTOCOL://HOST:PORT"))?;
    let port: u16 = port
        .parse()
        .with_context(|| format!("listener {s:?}: bad port"))?;
    Ok((protocol, host.trim_matches(['[', ']']).to_string(), port))
}

fn name(protocol: Protocol) -> &'static str {
    match protocol {
        Protocol::Plaintext => "PLAINTEXT",
        Protocol::Ssl => "SSL",
        Protocol::SaslPlaintext => "SASL_PLAINTEXT",
        Protocol::SaslSsl => "SASL_SSL",
    }
}

/// `kafka_addr` and its advertised host and port are the single-listener defaults.
pub fn resolve(
    args: &ServeArgs,
    kafka_addr: SocketAddr,
    advertised: (&str, i32),
) -> anyhow::Result<Security> {
    let given = list(&args.kafka_listeners);
    let advertised_given = list(&args.advertised_kafka_listeners);
    let mut listeners = Vec::new();
    if given.is_empty() {
        listeners.push(KafkaListener {
            listener: strom_kafka::Listener {
                name: "PLAINTEXT".into(),
                protocol: Protocol::Plaintext,
                addr: kafka_addr,
            },
            advertised_host: advertised.0.to_string(),
            advertised_port: advertised.1,
        });
    } else if args.kafka_addr.is_some() {
        bail!("--kafka-listeners replaces --kafka-addr: give one of them");
    }
    for s in &given {
        let (protocol, host, port) = parse_listener(s)?;
        let addr: SocketAddr = format!("{host}:{port}")
            .parse()
            .or_else(|_| format!("[{host}]:{port}").parse())
            .with_context(|| {
                format!("listener {s:?}: the host must be an IP address to listen on")
            })?;
        if listeners
            .iter()
            .any(|l: &KafkaListener| l.listener.protocol == protocol)
        {
            bail!("two {} listeners: give each protocol once", name(protocol));
        }
        listeners.push(KafkaListener {
            listener: strom_kafka::Listener {
                name: name(protocol).into(),
                protocol,
                addr,
            },
            advertised_host: host,
            advertised_port: i32::from(port),
        });
    }
    for s in &advertised_given {
        let (protocol, host, port) = parse_listener(s)?;
        let l = listeners
            .iter_mut()
            .find(|l| l.listener.protocol == protocol)
            .with_context(|| {
                format!("advertised listener {s:?} has no listener of its protocol")
            })?;
        l.advertised_host = host;
        l.advertised_port = i32::from(port);
    }
    if let (false, Some(a)) = (given.is_empty(), &args.advertised_kafka_addr) {
        if !advertised_given.is_empty() {
            bail!(
                "--advertised-kafka-listeners replaces --advertised-kafka-addr: give one of them"
            );
        }
        let (host, port) = a
            .rsplit_once(':')
            .with_context(|| format!("--advertised-kafka-addr {a:?} is not HOST:PORT"))?;
        listeners[0].advertised_host = host.to_string();
        listeners[0].advertised_port = port.parse().context("--advertised-kafka-addr: bad port")?;
    }

    // Kafka refuses to advertise the meta-address; so does the listener syntax (a plain
    // --kafka-addr 0.0.0.0 keeps its old meaning for existing setups).
    for l in listeners.iter().filter(|_| !given.is_empty()) {
        if l.advertised_host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_unspecified())
        {
            bail!(
                "the {} listener on {} would be advertised as {}: clients cannot connect there; give --advertised-kafka-listeners {}://HOST:PORT",
                l.listener.name, l.listener.addr, l.advertised_host, l.listener.name
            );
        }
    }
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            ca: args.tls_ca.clone(),
        }),
        (None, None) => None,
        _ => bail!("--tls-cert and --tls-key go together"),
    };
    let http_tls = args.http_tls.unwrap_or(false);
    let etcd_tls = args.etcd_tls.unwrap_or(false);
    let etcd_client_cert_auth = args.etcd_client_cert_auth.unwrap_or(false);
    let raft_tls = args.raft_tls.unwrap_or(false);
    let needs_tls =
        listeners.iter().any(|l| l.listener.protocol.tls()) || http_tls || etcd_tls || raft_tls;
    if needs_tls && tls.is_none() {
        bail!("a TLS listener (SSL, SASL_SSL, --http-tls, --etcd-tls or --raft-tls) needs --tls-cert and --tls-key");
    }
    let needs_ca = listeners
        .iter()
        .any(|l| l.listener.protocol == Protocol::Ssl)
        || etcd_client_cert_auth
        || raft_tls;
    if needs_ca && args.tls_ca.is_none() {
        bail!("client certificates (an SSL listener, --etcd-client-cert-auth or --raft-tls) are verified against --tls-ca: give it");
    }
    if etcd_client_cert_auth && !etcd_tls {
        bail!("--etcd-client-cert-auth needs --etcd-tls");
    }

    let mechanisms: Vec<String> = list(&args.sasl_mechanisms);
    let sasl_mechanisms = if mechanisms.is_empty() {
        SecurityConfig::default().sasl_mechanisms
    } else {
        mechanisms
            .iter()
            .map(|m| {
                SaslMechanism::parse(m).with_context(|| {
                    format!("SASL mechanism {m:?}: use SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN")
                })
            })
            .collect::<anyhow::Result<_>>()?
    };
    let bootstrap_user = match (
        args.bootstrap_user
            .clone()
            .or_else(|| std::env::var("STROM_BOOTSTRAP_USER").ok())
            .filter(|u| !u.is_empty()),
        args.bootstrap_password
            .clone()
            .or_else(|| std::env::var("STROM_BOOTSTRAP_PASSWORD").ok()),
    ) {
        (Some(u), Some(p)) if p.len() >= 8 => Some((u, p)),
        (Some(_), Some(_)) => bail!("the bootstrap password must be at least 8 characters"),
        (Some(_), None) => bail!("a bootstrap user needs a password (STROM_BOOTSTRAP_PASSWORD)"),
        (None, _) => None,
    };
    let mut super_users = list(&args.super_users);
    for u in &super_users {
        if !u.starts_with("User:") || u.len() == 5 {
            bail!("super user {u:?} is not User:NAME");
        }
    }
    if let Some((u, _)) = &bootstrap_user {
        super_users.push(format!("User:{u}"));
    }
    let secured = listeners
        .iter()
        .any(|l| l.listener.protocol != Protocol::Plaintext);
    let config = SecurityConfig {
        authorizer: args.authorizer.unwrap_or(secured),
        super_users,
        sasl_mechanisms,
        plain_without_tls: args.sasl_plain_without_tls.unwrap_or(false),
        session_lifetime: std::time::Duration::from_millis(
            args.sasl_session_lifetime_ms.unwrap_or(0),
        ),
        max_connections_per_ip: args.max_connections_per_ip.unwrap_or(1000).max(1),
        internal_user: None,
    };
    Ok(Security {
        listeners,
        config,
        tls,
        bootstrap_user,
        http_tls,
        etcd_tls,
        etcd_client_cert_auth,
        raft_tls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners_in_kafka_syntax() {
        let args = ServeArgs {
            kafka_listeners: Some(vec![
                "PLAINTEXT://127.0.0.1:9092,SASL_SSL://0.0.0.0:9093".into()
            ]),
            advertised_kafka_listeners: Some(vec!["SASL_SSL://broker.example:9093".into()]),
            tls_cert: Some("c.pem".into()),
            tls_key: Some("k.pem".into()),
            ..Default::default()
        };
        let s = resolve(
            &args,
            "127.0.0.1:9092".parse().unwrap(),
            ("127.0.0.1", 9092),
        )
        .unwrap();
        assert_eq!(s.listeners.len(), 2);
        assert_eq!(s.listeners[1].advertised_host, "broker.example");
        assert!(s.config.authorizer, "on by default with a SASL listener");
        let bad = ServeArgs {
            kafka_listeners: Some(vec!["SSL://127.0.0.1:9094".into()]),
            ..Default::default()
        };
        let err = resolve(&bad, "127.0.0.1:9092".parse().unwrap(), ("127.0.0.1", 9092));
        assert!(err.is_err(), "an SSL listener without certificates");
        let plain = resolve(
            &ServeArgs::default(),
            "127.0.0.1:9092".parse().unwrap(),
            ("h", 1),
        )
        .unwrap();
        assert!(!plain.config.authorizer, "zero-config stays open");
    }
}
