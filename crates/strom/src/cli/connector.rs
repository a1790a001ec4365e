//! `strom connector`: the connector REST API from the command line (any Kafka Connect
//! compatible endpoint, Strom's own by default).

use std::path::PathBuf;

use anyhow::{bail, Context as _};
use serde_json::{json, Value};

#[derive(clap::Args, Debug, Clone)]
pub struct ConnectArgs {
    /// The connector REST API (a Strom node's HTTP address).
    #[arg(
        long,
        default_value = "http://127.0.0.1:9644",
        env = "STROM_HTTP",
        global = true
    )]
    pub url: String,
    /// Log in as this SCRAM user (HTTP Basic), when the node's authorizer is on.
    #[arg(long, env = "STROM_USER", global = true)]
    pub user: Option<String>,
    #[arg(long, env = "STROM_PASSWORD", global = true, hide_env_values = true)]
    pub password: Option<String>,
    /// Trust this CA (PEM) for an `https://` URL (a node with `--http-tls`).
    #[arg(long, env = "STROM_TLS_CA", global = true)]
    pub tls_ca: Option<PathBuf>,
}

/// The REST client: the CA to trust and the Basic credentials to send.
pub(crate) struct Client {
    agent: ureq::Agent,
    authorization: Option<String>,
}

impl Client {
    pub(crate) fn new(args: &ConnectArgs) -> anyhow::Result<Client> {
        use base64::Engine as _;
        let mut config = ureq::Agent::config_builder().http_status_as_error(false);
        if let Some(ca) = &args.tls_ca {
            let pem = std::fs::read(ca).with_context(|| format!("cannot read {}", ca.display()))?;
            let roots: Vec<ureq::tls::Certificate<'static>> = ureq::tls::parse_pem(&pem)
                .filter_map(|item| match item {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                    _ => None,
                })
                .collect();
            if roots.is_empty() {
                bail!("{} holds no PEM certificate", ca.display());
            }
            let tls = ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::Specific(std::sync::Arc::new(roots)))
                .unversioned_rustls_crypto_provider(strom_tls::provider())
                .build();
            config = config.tls_config(tls);
        }
        let authorization = match (&args.user, &args.password) {
            (Some(user), Some(password)) => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
            )),
            (Some(_), None) => bail!("--user needs --password (or STROM_PASSWORD)"),
            _ => None,
        };
        Ok(Client {
            agent: config.build().into(),
            authorization,
        })
    }
}

#[derive(clap::Subcommand, Debug)]
pub enum ConnectorCommand {
    /// List connectors with their state.
    List,
    /// Create a connector from a JSON (or `key=value` properties) config file.
    Create {
        name: String,
        #[arg(long)]
        config: PathBuf,
    },
    /// Show a connector's status.
    Status {
        name: String,
    },
    Pause {
        name: String,
    },
    Resume {
        name: String,
    },
    Stop {
        name: String,
    },
    Restart {
        name: String,
    },
    Delete {
        name: String,
    },
    /// Show a connector's source offsets; `--reset` clears them (the connector must be stopped).
    Offsets {
        name: String,
        #[arg(long)]
        reset: bool,
    },
}

/// Reads a config file: a JSON object (or `{"name", "config"}`), or Java properties lines.
fn read_config(path: &PathBuf) -> anyhow::Result<Value> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    if let Ok(v) = serde_json::from_str::<Value>(&text) {
        return Ok(if v.get("config").is_some_and(Value::is_object) {
            v["config"].clone()
        } else {
            v
        });
    }
    let mut map = serde_json::Map::new();
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('!'))
    {
        let (k, v) = crate::cli::parse_key_value(line).map_err(anyhow::Error::msg)?;
        map.insert(k.trim().to_string(), json!(v.trim()));
    }
    Ok(Value::Object(map))
}

pub(crate) fn call(
    client: &Client,
    method: &str,
    url: &str,
    body: Option<&Value>,
) -> anyhow::Result<Value> {
    let agent = &client.agent;
    let auth = client.authorization.as_deref().unwrap_or("");
    let with_auth = |r: ureq::RequestBuilder<ureq::typestate::WithBody>| match auth {
        "" => r,
        a => r.header("authorization", a),
    };
    let without_body = |r: ureq::RequestBuilder<ureq::typestate::WithoutBody>| match auth {
        "" => r,
        a => r.header("authorization", a),
    };
    let response = match (method, body) {
        ("GET", _) => without_body(agent.get(url)).call(),
        ("DELETE", _) => without_body(agent.delete(url)).call(),
        ("POST", Some(b)) => with_auth(agent.post(url))
            .header("content-type", "application/json")
            .send(b.to_string().as_bytes()),
        ("POST", None) => with_auth(agent.post(url)).send_empty(),
        ("PUT", Some(b)) => with_auth(agent.put(url))
            .header("content-type", "application/json")
            .send(b.to_string().as_bytes()),
        (_, _) => with_auth(agent.put(url)).send_empty(),
    }
    .with_context(|| format!("cannot reach {url}"))?;
    let status = response.status().as_u16();
    let text = response.into_body().read_to_string().unwrap_or_default();
    let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    if status >= 400 {
        let message = value["message"].as_str().unwrap_or(&text);
        bail!("{status}: {message}");
    }
    Ok(value)
}

pub fn run(args: &ConnectArgs, command: ConnectorCommand) -> anyhow::Result<()> {
    let agent = Client::new(args)?;
    let base = args.url.trim_end_matches('/');
    let path = |name: &str, tail: &str| format!("{base}/connectors/{name}{tail}");
    match command {
        ConnectorCommand::List => {
            let all = call(
                &agent,
                "GET",
                &format!("{base}/connectors?expand=status"),
                None,
            )?;
            println!("{:<30} {:<10} {:<10} WORKER", "NAME", "CONNECTOR", "TASK");
            if let Some(map) = all.as_object() {
                for (name, v) in map {
                    let s = &v["status"];
                    let task = s["tasks"]
                        .get(0)
                        .and_then(|t| t["state"].as_str())
                        .unwrap_or("-");
                    println!(
                        "{:<30} {:<10} {:<10} {}",
                        name,
                        s["connector"]["state"].as_str().unwrap_or("?"),
                        task,
                        s["connector"]["worker_id"].as_str().unwrap_or("")
                    );
                }
            }
        }
        ConnectorCommand::Create { name, config } => {
            let config = read_config(&config)?;
            let created = call(
                &agent,
                "POST",
                &format!("{base}/connectors"),
                Some(&json!({"name": name, "config": config})),
            )?;
            println!(
                "created connector {}",
                created["name"].as_str().unwrap_or(&name)
            );
        }
        ConnectorCommand::Status { name } => {
            let s = call(&agent, "GET", &path(&name, "/status"), None)?;
            println!("{}", serde_json::to_string_pretty(&s)?);
        }
        ConnectorCommand::Pause { name } => {
            call(&agent, "PUT", &path(&name, "/pause"), None)?;
        }
        ConnectorCommand::Resume { name } => {
            call(&agent, "PUT", &path(&name, "/resume"), None)?;
        }
        ConnectorCommand::Stop { name } => {
            call(&agent, "PUT", &path(&name, "/stop"), None)?;
        }
        ConnectorCommand::Restart { name } => {
            call(&agent, "POST", &path(&name, "/restart"), None)?;
        }
        ConnectorCommand::Delete { name } => {
            call(&agent, "DELETE", &path(&name, ""), None)?;
        }
        ConnectorCommand::Offsets { name, reset } => {
            let v = if reset {
                call(&agent, "DELETE", &path(&name, "/offsets"), None)?
            } else {
                call(&agent, "GET", &path(&name, "/offsets"), None)?
            };
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
    }
    Ok(())
}
