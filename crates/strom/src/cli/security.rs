//! How the CLI reaches a secured broker (TLS, SASL login) and the security commands:
//! `strom user`, `strom acl`, `strom quota` (Kafka's admin APIs) and `strom cert` (a local CA).

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use anyhow::{anyhow, bail, Context};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use rdkafka::ClientConfig;
use strom_auth::scram::{ClientExchange, MIN_ITERATIONS};
use strom_auth::{Mechanism, Operation, ResourceType};

use super::BrokerArgs;
use crate::kafka_conn::Connection;

/// The security settings of this CLI process (one command per process).
#[derive(Default)]
pub struct ClientSecurity {
    pub tls: Option<Arc<strom_tls::rustls::ClientConfig>>,
    files: Option<(PathBuf, Option<(PathBuf, PathBuf)>)>,
    pub login: Option<Login>,
}

pub struct Login {
    user: String,
    password: String,
    mechanism: String,
}

static SECURITY: OnceLock<ClientSecurity> = OnceLock::new();

/// Reads the security flags once, before any connection.
pub fn init(args: &BrokerArgs) -> anyhow::Result<()> {
    let login = match (&args.user, &args.password) {
        (Some(user), Some(password)) => Some(Login {
            user: user.clone(),
            password: password.clone(),
            mechanism: args.sasl_mechanism.clone(),
        }),
        (Some(_), None) => bail!("--user needs --password (or STROM_PASSWORD)"),
        _ => None,
    };
    let (tls, files) = match &args.tls_ca {
        None => (None, None),
        Some(ca) => {
            let client = args.tls_cert.clone().zip(args.tls_key.clone());
            let files = strom_tls::TlsFiles {
                cert: client.as_ref().map(|c| c.0.clone()).unwrap_or_default(),
                key: client.as_ref().map(|c| c.1.clone()).unwrap_or_default(),
                ca: Some(ca.clone()),
            };
            let config = strom_tls::client_config(&files, client.is_some())
                .context("cannot load the TLS files")?;
            (Some(config), Some((ca.clone(), client)))
        }
    };
    let _ = SECURITY.set(ClientSecurity { tls, files, login });
    Ok(())
}

pub fn get() -> &'static ClientSecurity {
    SECURITY.get_or_init(ClientSecurity::default)
}

impl ClientSecurity {
    /// The same settings for librdkafka.
    pub fn apply(&self, config: &mut ClientConfig) {
        let protocol = match (&self.login, &self.files) {
            (None, None) => return,
            (Some(_), None) => "SASL_PLAINTEXT",
            (None, Some(_)) => "SSL",
            (Some(_), Some(_)) => "SASL_SSL",
        };
        config.set("security.protocol", protocol);
        if let Some(l) = &self.login {
            config
                .set("sasl.mechanism", &l.mechanism)
                .set("sasl.username", &l.user)
                .set("sasl.password", &l.password);
        }
        if let Some((ca, client)) = &self.files {
            config.set("ssl.ca.location", ca.display().to_string());
            if let Some((cert, key)) = client {
                config
                    .set("ssl.certificate.location", cert.display().to_string())
                    .set("ssl.key.location", key.display().to_string());
            }
        }
    }
}

/// SaslHandshake v1, then SaslAuthenticate steps of the chosen mechanism.
pub async fn login(conn: &mut Connection, login: &Login) -> anyhow::Result<()> {
    let handshake: SaslHandshakeResponse = conn
        .request(
            ApiKey::SaslHandshake,
            1,
            &SaslHandshakeRequest::default()
                .with_mechanism(StrBytes::from_string(login.mechanism.clone())),
        )
        .await?;
    if handshake.error_code != 0 {
        let offered: Vec<&str> = handshake.mechanisms.iter().map(|m| m.as_str()).collect();
        bail!(
            "the broker does not offer SASL {} (it offers {offered:?}; is this a SASL listener?)",
            login.mechanism
        );
    }
    match Mechanism::from_name(&login.mechanism) {
        Some(m) => {
            let (mut exchange, first) = ClientExchange::start(m, &login.user, &login.password);
            let challenge = authenticate(&mut *conn, first).await?;
            let last = exchange
                .respond(&challenge)
                .map_err(|e| anyhow!("SCRAM: {e}"))?;
            let verdict = authenticate(&mut *conn, last).await?;
            exchange
                .finish(&verdict)
                .map_err(|e| anyhow!("the broker's SCRAM signature is wrong: {e}"))
        }
        None if login.mechanism == "PLAIN" => {
            let message = format!("\0{}\0{}", login.user, login.password);
            authenticate(&mut *conn, message.into_bytes())
                .await
                .map(drop)
        }
        None => bail!("unknown SASL mechanism {}", login.mechanism),
    }
}

async fn authenticate(conn: &mut Connection, bytes: Vec<u8>) -> anyhow::Result<Vec<u8>> {
    let req = SaslAuthenticateRequest::default().with_auth_bytes(bytes.into());
    let resp: SaslAuthenticateResponse = conn.request(ApiKey::SaslAuthenticate, 2, &req).await?;
    if resp.error_code != 0 {
        bail!(
            "SASL login failed: {}",
            resp.error_message.as_ref().map_or("", |m| m.as_str())
        );
    }
    Ok(resp.auth_bytes.to_vec())
}

/// Checks a response's error code, with Kafka's message if it sent one.
fn check(code: i16, message: Option<&StrBytes>, what: &str) -> anyhow::Result<()> {
    if code == 0 {
        return Ok(());
    }
    let name = kafka_protocol::ResponseError::try_from_code(code)
        .map_or_else(|| format!("error {code}"), |e| format!("{e:?}"));
    match message {
        Some(m) if !m.is_empty() => bail!("{what}: {name}: {}", m.as_str()),
        _ => bail!("{what}: {name}"),
    }
}

// ---- strom user ----

#[derive(clap::Subcommand, Debug)]
pub enum UserCommand {
    /// Create a SCRAM user, or change its password.
    Create {
        name: String,
        /// The user's password (not --password, which is the CLI's own login).
        #[arg(long, env = "STROM_NEW_PASSWORD", hide_env_values = true)]
        new_password: String,
        /// Mechanisms to store the credential for.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "SCRAM-SHA-256,SCRAM-SHA-512"
        )]
        mechanism: Vec<String>,
        #[arg(long, default_value_t = MIN_ITERATIONS)]
        iterations: u32,
    },
    /// Delete a user's credentials (every mechanism unless given).
    Delete {
        name: String,
        #[arg(long, value_delimiter = ',')]
        mechanism: Vec<String>,
    },
    /// Users and their mechanisms.
    List,
}

fn mechanisms(names: &[String]) -> anyhow::Result<Vec<Mechanism>> {
    names
        .iter()
        .map(|n| {
            Mechanism::from_name(n)
                .ok_or_else(|| anyhow!("unknown mechanism {n}: use SCRAM-SHA-256 or SCRAM-SHA-512"))
        })
        .collect()
}

pub async fn user(broker: &BrokerArgs, cmd: UserCommand) -> anyhow::Result<()> {
    use alter_user_scram_credentials_request::{ScramCredentialDeletion, ScramCredentialUpsertion};
    let mut conn = Connection::connect(&broker.broker).await?;
    match cmd {
        UserCommand::Create {
            name,
            new_password: password,
            mechanism,
            iterations,
        } => {
            let upsertions = mechanisms(&mechanism)?
                .into_iter()
                .map(|m| {
                    // The broker gets the salted password only, never the password.
                    let salt: [u8; 32] = rand::random();
                    let salted = m.salted_password(password.as_bytes(), &salt, iterations);
                    ScramCredentialUpsertion::default()
                        .with_name(StrBytes::from_string(name.clone()))
                        .with_mechanism(m.code())
                        .with_iterations(i32::try_from(iterations).unwrap_or(i32::MAX))
                        .with_salt(salt.to_vec().into())
                        .with_salted_password(salted.into())
                })
                .collect();
            alter_users(
                &mut conn,
                AlterUserScramCredentialsRequest::default().with_upsertions(upsertions),
            )
            .await?;
            println!("user {name} saved");
        }
        UserCommand::Delete { name, mechanism } => {
            let ms = if mechanism.is_empty() {
                let resp: DescribeUserScramCredentialsResponse = conn
                    .request(
                        ApiKey::DescribeUserScramCredentials,
                        0,
                        &DescribeUserScramCredentialsRequest::default().with_users(Some(vec![
                            describe_user_scram_credentials_request::UserName::default()
                                .with_name(StrBytes::from_string(name.clone())),
                        ])),
                    )
                    .await?;
                check(
                    resp.error_code,
                    resp.error_message.as_ref(),
                    "describe users",
                )?;
                let mut ms = Vec::new();
                for r in &resp.results {
                    check(
                        r.error_code,
                        r.error_message.as_ref(),
                        &format!("user {name}"),
                    )?;
                    ms.extend(
                        r.credential_infos
                            .iter()
                            .filter_map(|c| Mechanism::from_code(c.mechanism)),
                    );
                }
                ms
            } else {
                mechanisms(&mechanism)?
            };
            let deletions = ms
                .into_iter()
                .map(|m| {
                    ScramCredentialDeletion::default()
                        .with_name(StrBytes::from_string(name.clone()))
                        .with_mechanism(m.code())
                })
                .collect();
            alter_users(
                &mut conn,
                AlterUserScramCredentialsRequest::default().with_deletions(deletions),
            )
            .await?;
            println!("user {name} deleted");
        }
        UserCommand::List => {
            let resp: DescribeUserScramCredentialsResponse = conn
                .request(
                    ApiKey::DescribeUserScramCredentials,
                    0,
                    &DescribeUserScramCredentialsRequest::default(),
                )
                .await?;
            check(
                resp.error_code,
                resp.error_message.as_ref(),
                "describe users",
            )?;
            for r in resp.results {
                let ms: Vec<String> = r
                    .credential_infos
                    .iter()
                    .map(|c| {
                        let name = Mechanism::from_code(c.mechanism).map_or("?", Mechanism::name);
                        format!("{name} (iterations {})", c.iterations)
                    })
                    .collect();
                println!("{}\t{}", r.user.as_str(), ms.join(", "));
            }
        }
    }
    Ok(())
}

async fn alter_users(
    conn: &mut Connection,
    req: AlterUserScramCredentialsRequest,
) -> anyhow::Result<()> {
    let resp: AlterUserScramCredentialsResponse = conn
        .request(ApiKey::AlterUserScramCredentials, 0, &req)
        .await?;
    for r in &resp.results {
        check(
            r.error_code,
            r.error_message.as_ref(),
            &format!("user {}", r.user.as_str()),
        )?;
    }
    Ok(())
}

// ---- strom acl ----

/// A resource and the bindings' fields, as flags (Kafka's kafka-acls.sh spelling).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct AclArgs {
    #[arg(long)]
    pub topic: Option<String>,
    #[arg(long)]
    pub group: Option<String>,
    #[arg(long)]
    pub transactional_id: Option<String>,
    /// Keys of the etcd API (a key, or with --prefixed every key starting with it).
    #[arg(long)]
    pub etcd_key: Option<String>,
    /// The cluster resource (kafka-cluster).
    #[arg(long)]
    pub cluster: bool,
    /// The name is a prefix (PREFIXED pattern) rather than a literal name.
    #[arg(long)]
    pub prefixed: bool,
    /// Principal the binding allows, e.g. User:alice.
    #[arg(long)]
    pub allow_principal: Option<String>,
    /// Principal the binding denies.
    #[arg(long)]
    pub deny_principal: Option<String>,
    /// Operations: Read, Write, Create, Delete, Alter, Describe, ClusterAction,
    /// DescribeConfigs, AlterConfigs, IdempotentWrite, All.
    #[arg(long, value_delimiter = ',')]
    pub operation: Vec<String>,
    /// Host the binding applies to.
    #[arg(long, default_value = "*")]
    pub host: String,
}

#[derive(clap::Subcommand, Debug)]
pub enum AclCommand {
    /// Add bindings.
    Create(AclArgs),
    /// Bindings matching the flags (all if none).
    List(AclArgs),
    /// Remove the bindings matching the flags.
    Delete(AclArgs),
}

impl AclArgs {
    fn resource(&self) -> anyhow::Result<Option<(ResourceType, String)>> {
        let given: Vec<(ResourceType, String)> = [
            self.topic.clone().map(|t| (ResourceType::Topic, t)),
            self.group.clone().map(|g| (ResourceType::Group, g)),
            self.transactional_id
                .clone()
                .map(|t| (ResourceType::TransactionalId, t)),
            self.etcd_key.clone().map(|k| (ResourceType::EtcdKey, k)),
            self.cluster
                .then(|| (ResourceType::Cluster, "kafka-cluster".to_string())),
        ]
        .into_iter()
        .flatten()
        .collect();
        match given.len() {
            0 => Ok(None),
            1 => Ok(given.into_iter().next()),
            _ => bail!("give one of --topic, --group, --transactional-id, --etcd-key, --cluster"),
        }
    }

    fn principal(&self) -> anyhow::Result<Option<(String, i8)>> {
        match (&self.allow_principal, &self.deny_principal) {
            (Some(_), Some(_)) => bail!("give --allow-principal or --deny-principal, not both"),
            (Some(p), None) => Ok(Some((p.clone(), 3))),
            (None, Some(p)) => Ok(Some((p.clone(), 2))),
            (None, None) => Ok(None),
        }
    }

    fn operations(&self) -> anyhow::Result<Vec<Operation>> {
        self.operation
            .iter()
            .map(|o| Operation::from_name(o).ok_or_else(|| anyhow!("unknown operation {o}")))
            .collect()
    }

    fn pattern(&self) -> i8 {
        if self.prefixed {
            4
        } else {
            3
        }
    }
}

pub async fn acl(broker: &BrokerArgs, cmd: AclCommand) -> anyhow::Result<()> {
    let mut conn = Connection::connect(&broker.broker).await?;
    match cmd {
        AclCommand::Create(a) => {
            let Some((rt, name)) = a.resource()? else {
                bail!("give the resource: --topic, --group, --transactional-id, --etcd-key or --cluster");
            };
            let Some((principal, permission)) = a.principal()? else {
                bail!("give --allow-principal or --deny-principal");
            };
            let ops = a.operations()?;
            if ops.is_empty() {
                bail!("give --operation");
            }
            let creations = ops
                .iter()
                .map(|op| {
                    create_acls_request::AclCreation::default()
                        .with_resource_type(rt.code())
                        .with_resource_name(StrBytes::from_string(name.clone()))
                        .with_resource_pattern_type(a.pattern())
                        .with_principal(StrBytes::from_string(principal.clone()))
                        .with_host(StrBytes::from_string(a.host.clone()))
                        .with_operation(op.code())
                        .with_permission_type(permission)
                })
                .collect();
            let resp: CreateAclsResponse = conn
                .request(
                    ApiKey::CreateAcls,
                    3,
                    &CreateAclsRequest::default().with_creations(creations),
                )
                .await?;
            for r in &resp.results {
                check(r.error_code, r.error_message.as_ref(), "create ACL")?;
            }
            println!("{} ACL(s) created", resp.results.len());
        }
        AclCommand::List(a) => {
            let mut f = Filter::of(&a)?;
            // Listing a resource shows its literal and prefixed bindings (kafka-acls.sh lists
            // any pattern too); --prefixed narrows it to the prefixed ones.
            if f.name.is_some() && !a.prefixed {
                f.pattern = 1;
            }
            for op in &f.ops {
                let req = DescribeAclsRequest::default()
                    .with_resource_type_filter(f.resource_type)
                    .with_resource_name_filter(f.name.clone())
                    .with_pattern_type_filter(f.pattern)
                    .with_principal_filter(f.principal.clone())
                    .with_host_filter(None)
                    .with_operation(*op)
                    .with_permission_type(f.permission);
                let resp: DescribeAclsResponse =
                    conn.request(ApiKey::DescribeAcls, 3, &req).await?;
                check(resp.error_code, resp.error_message.as_ref(), "list ACLs")?;
                for r in resp.resources {
                    print_acls(r);
                }
            }
        }
        AclCommand::Delete(a) => {
            let f = Filter::of(&a)?;
            let filters = f
                .ops
                .iter()
                .map(|op| {
                    delete_acls_request::DeleteAclsFilter::default()
                        .with_resource_type_filter(f.resource_type)
                        .with_resource_name_filter(f.name.clone())
                        .with_pattern_type_filter(f.pattern)
                        .with_principal_filter(f.principal.clone())
                        .with_host_filter(None)
                        .with_operation(*op)
                        .with_permission_type(f.permission)
                })
                .collect();
            let resp: DeleteAclsResponse = conn
                .request(
                    ApiKey::DeleteAcls,
                    3,
                    &DeleteAclsRequest::default().with_filters(filters),
                )
                .await?;
            let mut n = 0;
            for r in &resp.filter_results {
                check(r.error_code, r.error_message.as_ref(), "delete ACLs")?;
                n += r.matching_acls.len();
            }
            println!("{n} ACL(s) deleted");
        }
    }
    Ok(())
}

/// DescribeAcls/DeleteAcls filter fields from the flags; 1 is Kafka's ANY.
struct Filter {
    resource_type: i8,
    name: Option<StrBytes>,
    pattern: i8,
    principal: Option<StrBytes>,
    permission: i8,
    /// One filter per operation given (ANY when none).
    ops: Vec<i8>,
}

impl Filter {
    fn of(a: &AclArgs) -> anyhow::Result<Filter> {
        let (resource_type, name, pattern) = match a.resource()? {
            None => (1, None, 1),
            Some((rt, name)) => (rt.code(), Some(StrBytes::from_string(name)), a.pattern()),
        };
        let (principal, permission) = match a.principal()? {
            Some((p, perm)) => (Some(StrBytes::from_string(p)), perm),
            None => (None, 1),
        };
        let ops = a.operations()?;
        Ok(Filter {
            resource_type,
            name,
            pattern,
            principal,
            permission,
            ops: if ops.is_empty() {
                vec![1]
            } else {
                ops.iter().map(|o| o.code()).collect()
            },
        })
    }
}

/// One line per binding: resource, principal, host, operation, permission.
fn print_acls(r: describe_acls_response::DescribeAclsResource) {
    let rt = ResourceType::from_code(r.resource_type).map_or("?", ResourceType::name);
    let pattern = if r.pattern_type == 4 {
        "PREFIXED"
    } else {
        "LITERAL"
    };
    for acl in r.acls {
        let op = Operation::from_code(acl.operation).map_or("?", Operation::name);
        let perm = if acl.permission_type == 2 {
            "DENY"
        } else {
            "ALLOW"
        };
        println!(
            "{rt}:{}:{pattern}\t{}\t{}\t{op}\t{perm}",
            r.resource_name.as_str(),
            acl.principal.as_str(),
            acl.host.as_str()
        );
    }
}

// ---- strom quota ----

#[derive(clap::Args, Debug, Clone)]
pub struct QuotaEntityArgs {
    /// The user the quota is for (principal name without User:); "default" for the default
    /// user. (Not --user, which is the CLI's own login.)
    #[arg(long)]
    pub entity_user: Option<String>,
    /// The client id the quota is for; "default" for the default client id.
    #[arg(long)]
    pub entity_client_id: Option<String>,
}

#[derive(clap::Subcommand, Debug)]
pub enum QuotaCommand {
    /// Set quotas: producer_byte_rate=BYTES/S, consumer_byte_rate=BYTES/S,
    /// request_percentage=PERCENT.
    Set {
        #[command(flatten)]
        entity: QuotaEntityArgs,
        #[arg(required = true, value_parser = super::parse_key_value)]
        values: Vec<(String, String)>,
    },
    /// Remove quotas by name.
    Remove {
        #[command(flatten)]
        entity: QuotaEntityArgs,
        #[arg(required = true)]
        keys: Vec<String>,
    },
    /// Every quota.
    List,
}

fn entity(e: &QuotaEntityArgs) -> anyhow::Result<Vec<alter_client_quotas_request::EntityData>> {
    let part = |t: &str, v: &Option<String>| {
        v.as_ref().map(|n| {
            alter_client_quotas_request::EntityData::default()
                .with_entity_type(StrBytes::from_string(t.to_string()))
                .with_entity_name((n != "default").then(|| StrBytes::from_string(n.clone())))
        })
    };
    let parts: Vec<_> = [
        part("user", &e.entity_user),
        part("client-id", &e.entity_client_id),
    ]
    .into_iter()
    .flatten()
    .collect();
    if parts.is_empty() {
        bail!("give --entity-user and/or --entity-client-id");
    }
    Ok(parts)
}

pub async fn quota(broker: &BrokerArgs, cmd: QuotaCommand) -> anyhow::Result<()> {
    use alter_client_quotas_request::{EntryData, OpData};
    let mut conn = Connection::connect(&broker.broker).await?;
    let ops = match &cmd {
        QuotaCommand::Set { values, .. } => values
            .iter()
            .map(|(k, v)| {
                let value: f64 = v
                    .parse()
                    .with_context(|| format!("{k}={v}: not a number"))?;
                Ok(OpData::default()
                    .with_key(StrBytes::from_string(k.clone()))
                    .with_value(value))
            })
            .collect::<anyhow::Result<Vec<_>>>()?,
        QuotaCommand::Remove { keys, .. } => keys
            .iter()
            .map(|k| {
                OpData::default()
                    .with_key(StrBytes::from_string(k.clone()))
                    .with_remove(true)
            })
            .collect(),
        QuotaCommand::List => {
            let resp: DescribeClientQuotasResponse = conn
                .request(
                    ApiKey::DescribeClientQuotas,
                    1,
                    &DescribeClientQuotasRequest::default(),
                )
                .await?;
            check(resp.error_code, resp.error_message.as_ref(), "list quotas")?;
            for e in resp.entries.unwrap_or_default() {
                let who: Vec<String> = e
                    .entity
                    .iter()
                    .map(|x| {
                        format!(
                            "{}={}",
                            x.entity_type.as_str(),
                            x.entity_name.as_ref().map_or("<default>", |n| n.as_str())
                        )
                    })
                    .collect();
                let values: Vec<String> = e
                    .values
                    .iter()
                    .map(|v| format!("{}={}", v.key.as_str(), v.value))
                    .collect();
                println!("{}\t{}", who.join(","), values.join(","));
            }
            return Ok(());
        }
    };
    let (QuotaCommand::Set { entity: e, .. } | QuotaCommand::Remove { entity: e, .. }) = &cmd
    else {
        return Ok(());
    };
    let req = AlterClientQuotasRequest::default().with_entries(vec![EntryData::default()
        .with_entity(entity(e)?)
        .with_ops(ops)]);
    let resp: AlterClientQuotasResponse = conn.request(ApiKey::AlterClientQuotas, 1, &req).await?;
    for e in &resp.entries {
        check(e.error_code, e.error_message.as_ref(), "alter quotas")?;
    }
    println!("quotas saved");
    Ok(())
}

// ---- strom cert ----

#[derive(clap::Subcommand, Debug)]
pub enum CertCommand {
    /// Create a certificate authority in DIR (ca.pem, ca-key.pem).
    Ca {
        #[arg(long, default_value = "strom-certs")]
        dir: PathBuf,
        #[arg(long, default_value = "Strom local CA")]
        name: String,
        #[arg(long, default_value_t = 825)]
        days: u32,
    },
    /// Issue NAME.pem and NAME-key.pem signed by DIR's CA; NAME is the subject CN (an mTLS
    /// principal User:NAME), --host the names and IPs the certificate is valid for.
    Issue {
        name: String,
        #[arg(long, default_value = "strom-certs")]
        dir: PathBuf,
        #[arg(long, value_delimiter = ',')]
        host: Vec<String>,
        #[arg(long, default_value_t = 825)]
        days: u32,
    },
}

pub fn cert(cmd: CertCommand) -> anyhow::Result<()> {
    match cmd {
        CertCommand::Ca { dir, name, days } => {
            strom_tls::cert::create_ca(&dir, &name, days)?;
            println!("CA written to {}", dir.join("ca.pem").display());
        }
        CertCommand::Issue {
            name,
            dir,
            host,
            days,
        } => {
            if name.is_empty() || name.contains(['/', '\\']) {
                bail!("the name becomes a file name: no slashes");
            }
            strom_tls::cert::issue(&dir, &name, &host, days)?;
            println!(
                "{} and {} written",
                dir.join(format!("{name}.pem")).display(),
                dir.join(format!("{name}-key.pem")).display()
            );
        }
    }
    Ok(())
}
