//! The client side of `strom`: topic administration, a line-oriented producer and a consumer.
//! All of it speaks the Kafka protocol through librdkafka (the `rdkafka` crate), so the same
//! commands work against Strom and against any other Kafka-compatible broker. The transaction
//! admin APIs librdkafka does not offer (FindCoordinator, ListTransactions,
//! DescribeTransactions) go over `kafka_conn` instead: kafka-protocol messages, still nothing
//! Strom-specific.

pub mod client;
pub mod cluster;
pub mod connector;
pub mod consume;
pub mod group;
pub mod mirror;
pub mod produce;
pub mod security;
pub mod topic;
pub mod txn;

/// Where to find the broker; flattened into every client command.
#[derive(clap::Args, Debug, Clone)]
pub struct BrokerArgs {
    /// Bootstrap broker address (host:port).
    // Global so that it may also follow a subcommand: `strom topic list -b HOST:PORT`.
    #[arg(
        long,
        short = 'b',
        default_value = "127.0.0.1:9092",
        env = "STROM_BROKER",
        global = true
    )]
    pub broker: String,
    /// Log in with SASL as this user (SASL_PLAINTEXT, or SASL_SSL with --tls-ca).
    #[arg(long, env = "STROM_USER", global = true)]
    pub user: Option<String>,
    /// The user's password.
    #[arg(long, env = "STROM_PASSWORD", global = true, hide_env_values = true)]
    pub password: Option<String>,
    /// SASL mechanism: SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN.
    #[arg(long, default_value = "SCRAM-SHA-256", global = true)]
    pub sasl_mechanism: String,
    /// Connect over TLS, trusting this CA (PEM).
    #[arg(long, env = "STROM_TLS_CA", global = true)]
    pub tls_ca: Option<std::path::PathBuf>,
    /// Present this client certificate (PEM; an SSL listener's principal is its CN).
    #[arg(long, global = true, requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The client certificate's key (PEM).
    #[arg(long, global = true)]
    pub tls_key: Option<std::path::PathBuf>,
}

/// Parses `key=value` arguments (the value may itself contain `=`).
pub(crate) fn parse_key_value(raw: &str) -> Result<(String, String), String> {
    match raw.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {raw:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_value_parsing() {
        assert_eq!(parse_key_value("a=b=c"), Ok(("a".into(), "b=c".into())));
        assert!(parse_key_value("novalue").is_err());
        assert!(parse_key_value("=x").is_err());
    }
}
