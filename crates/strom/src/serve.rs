//! `strom serve`: open the data directory, recover, listen, and shut down cleanly on a signal.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use strom_broker::Broker;

use crate::config::ServeArgs;

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let settings = args.resolve()?;
    keep_large_buffers_in_heap();
    init_logging(settings.log_level.as_deref(), settings.log_json)?;
    let data_dir = settings.broker.data_dir.clone();
    let broker = Broker::open(settings.broker.clone())
        .with_context(|| format!("cannot open data directory {}", data_dir.display()))?;
    let interval = Duration::from_millis(settings.broker.retention_check_interval_ms);
    strom_broker::retention::spawn(&broker, interval)
        .context("cannot start the retention thread")?;
    strom_broker::cleaner::spawn(&broker, settings.broker.cleaner.clone())
        .context("cannot start the log cleaner thread")?;

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("strom-io")
        .build()?;
    // Built inside the runtime: the OTLP exporter's gRPC channel runs on it.
    let tracing_provider = match &settings.otlp_endpoint {
        Some(endpoint) => {
            let _guard = runtime.enter();
            Some(crate::telemetry::start(endpoint, settings.broker.node_id)?)
        }
        None => None,
    };
    let result = runtime.block_on(async {
        let sec = &settings.security;
        if sec.tls.is_some() {
            strom_tls::spawn_reloader(Duration::from_secs(10));
        }
        let tls_with_alpn =
            |auth, alpn: &[&[u8]]| -> anyhow::Result<Option<Arc<strom_tls::TlsServer>>> {
                match &sec.tls {
                    None => Ok(None),
                    Some(files) => Ok(Some(
                        strom_tls::TlsServer::with_alpn(files.clone(), auth, alpn)
                            .context("cannot load the TLS certificate")?,
                    )),
                }
            };
        let tls = |auth| tls_with_alpn(auth, &[]);
        // A single node's users and ACLs are loaded before any listener opens: a client that
        // finds the Kafka port open finds the HTTP and etcd listeners open too (as before).
        let single_security = match settings.cluster {
            Some(_) => None,
            None => Some(
                strom_broker::security::Security::open_single(&broker)
                    .await
                    .context("cannot open the security journal")?,
            ),
        };
        // Every Kafka listener is bound before the node registers, so port 0 resolves first.
        let mut kafka_listeners = Vec::new();
        for l in &sec.listeners {
            let bound = tokio::net::TcpListener::bind(l.listener.addr)
                .await
                .with_context(|| format!("cannot listen on {} ({})", l.listener.addr, l.listener.name))?;
            let mut l = l.clone();
            l.listener.addr = bound.local_addr()?;
            if l.advertised_port == 0 {
                l.advertised_port = i32::from(l.listener.addr.port());
            }
            kafka_listeners.push((bound, l));
        }
        let primary = kafka_listeners[0].1.clone();
        let local = primary.listener.addr;
        let mut kafka = settings.kafka.clone();
        kafka.advertised_host = primary.advertised_host.clone();
        kafka.advertised_port = primary.advertised_port;
        if let Some(mut cluster) = settings.cluster.clone() {
            cluster.kafka_host = kafka.advertised_host.clone();
            cluster.kafka_port = u16::try_from(kafka.advertised_port).unwrap_or(local.port());
            for (_, l) in &kafka_listeners {
                cluster.endpoints.insert(
                    format!("kafka:{}", l.listener.name),
                    format!("{}:{}", l.advertised_host, l.advertised_port),
                );
            }
            if sec.raft_tls {
                cluster.tls = sec.tls.clone();
            }
            let raft = cluster.raft_addr;
            broker
                .start_cluster(cluster)
                .await
                .with_context(|| format!("cannot start the cluster node (raft {raft})"))?;
            tracing::info!(raft = %raft, "cluster mode: raft transport listening");
        }
        strom_broker::tiering::task::spawn(&broker);
        let security = match (broker.cluster(), single_security) {
            (Some(cluster), _) => strom_broker::security::Security::cluster(cluster),
            (None, Some(single)) => single,
            (None, None) => anyhow::bail!("a node without a cluster has its security journal"),
        };
        let mut security_config = sec.config.clone();
        security_config.internal_user = Some(crate::security::internal_user(settings.cluster.as_ref()));
        if let Some(files) = &sec.tls {
            // The node's own certificate is its principal on SSL listeners: a super user, as
            // Kafka's brokers are.
            if let Some(p) = strom_tls::cert_principal(&files.cert) {
                security_config.super_users.push(p);
            }
        }
        if let Some(user) = sec.bootstrap_user.clone() {
            crate::security::create_bootstrap_user(Arc::clone(&security), user);
        }
        let internal = crate::security::internal_client(&kafka_listeners, &security_config, sec.tls.as_ref());
        // Counted per address across the Kafka listeners and HTTP, whichever a guesser tries.
        let login_failures = Arc::new(strom_auth::LoginFailures::default());
        // The console's KV page reads the etcd API as a client, at the URL it advertises (over
        // TLS with the node's files).
        let etcd_url = settings.etcd.as_ref().map(|(_, c)| strom_console::EtcdEndpoint {
            url: c.client_url.clone(),
            tls: sec.tls.clone().filter(|_| sec.etcd_tls),
        });
        let http = match settings.http {
            None => None,
            Some(addr) => {
                let listener = tokio::net::TcpListener::bind(addr).await.with_context(|| {
                    format!("cannot listen on {addr} (HTTP API; --http-addr '' turns it off)")
                })?;
                println!("HTTP API listening on {}", listener.local_addr()?);
                let config = strom_http::HttpConfig::default();
                let admin = strom_http::admin::Admin {
                    broker: Arc::clone(&broker),
                    kafka_addr: internal.bootstrap.clone(),
                };
                let mut proxy = strom_proxy::ProxyConfig::new(internal.bootstrap.clone());
                proxy.properties = internal.properties.clone();
                proxy.consumer_instance_timeout = settings.consumer_instance_timeout;
                let connect = strom_connect::Connect::start(strom_connect::Settings {
                    kafka: internal.clone(),
                    worker_id: listener.local_addr()?.to_string(),
                    plugins: vec![Arc::new(strom_binlog::MySqlPlugin), Arc::new(strom_mirror::MirrorPlugin)],
                    membership: membership(&broker),
                });
                use strom_http::Access;
                let routers = vec![
                    (Access::Public, strom_http::admin::health(admin.clone())),
                    (Access::Cluster, strom_http::admin::routes(admin)),
                    (Access::Authenticated, strom_http::metrics::routes(&broker)),
                    (Access::Authenticated, strom_proxy::routes(strom_proxy::Proxy::new(proxy))),
                    (Access::Authenticated, strom_console::routes(etcd_url.clone(), console_key_acls(&security, &security_config))),
                    (Access::Cluster, strom_connect::rest::routes(connect)),
                ];
                // With the authorizer on, HTTP callers log in too (Basic, as SCRAM users).
                let auth = security_config.authorizer.then(|| {
                    let mechanisms = security_config
                        .sasl_mechanisms
                        .iter()
                        .filter_map(|m| match m {
                            strom_kafka::security::SaslMechanism::Scram(m) => Some(*m),
                            strom_kafka::security::SaslMechanism::Plain => None,
                        })
                        .collect();
                    strom_http::HttpAuth::new(
                        Arc::clone(&security),
                        security_config.super_users.clone(),
                        mechanisms,
                        Arc::clone(&login_failures),
                    )
                });
                let app = strom_http::app(routers, &config, auth);
                let http_tls = if sec.http_tls { tls(strom_tls::ClientAuth::None)? } else { None };
                Some(tokio::spawn(async move { strom_http::serve(listener, app, &config, http_tls).await }))
            }
        };
        let http_failed = async {
            match http {
                Some(task) => match task.await {
                    Ok(r) => r.context("HTTP listener failed"),
                    Err(e) => Err(anyhow::anyhow!("HTTP listener task failed: {e}")),
                },
                None => std::future::pending().await,
            }
        };
        let etcd = match &settings.etcd {
            None => None,
            Some((addr, config)) => {
                let listener = tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on {addr} (etcd API; --etcd-addr '' turns it off)"))?;
                let etcd = match broker.cluster() {
                    Some(cluster) => strom_etcd::open_cluster(&broker, cluster, config.clone()),
                    None => strom_etcd::open_single(&broker, config.clone()).await,
                }
                .context("cannot open the key-value journal")?;
                println!("etcd API listening on {}", listener.local_addr()?);
                let etcd_tls = match (sec.etcd_tls, sec.etcd_client_cert_auth) {
                    (false, _) => None,
                    // gRPC over TLS is HTTP/2 negotiated by ALPN; clients refuse a server that
                    // does not offer it.
                    (true, false) => tls_with_alpn(strom_tls::ClientAuth::None, &[b"h2"])?,
                    (true, true) => tls_with_alpn(strom_tls::ClientAuth::Required, &[b"h2"])?,
                };
                // Certificates say who a client is; the ACLs (EtcdKey) what it may touch.
                if sec.etcd_client_cert_auth && security_config.authorizer {
                    etcd.authorize(strom_etcd::authz::Authorization {
                        security: Arc::clone(&security),
                        super_users: security_config.super_users.clone(),
                    });
                }
                Some(tokio::spawn(strom_etcd::serve(listener, etcd, etcd_tls)))
            }
        };
        let etcd_failed = async {
            match etcd {
                Some(task) => match task.await {
                    Ok(r) => r.context("etcd listener failed"),
                    Err(e) => Err(anyhow::anyhow!("etcd listener task failed: {e}")),
                },
                None => std::future::pending().await,
            }
        };
        tracing::info!(kafka = %local, data_dir = %data_dir.display(), flush = ?settings.broker.flush, authorizer = security_config.authorizer, "strom is serving");
        println!("strom listening on {local} (data in {})", data_dir.display());
        let txn = strom_txn::TxnCoordinator::start(&broker, strom_txn::TxnConfig::default())
            .context("cannot load the transaction coordinator's state")?;
        let connections = Arc::new(strom_kafka::security::ConnectionCounts::default());
        let quotas = Arc::new(strom_kafka::quota::Quotas::default());
        let mut serving = tokio::task::JoinSet::new();
        for (bound, l) in kafka_listeners {
            if l.listener.addr != local {
                println!("Kafka {} listener on {}", l.listener.name, l.listener.addr);
            }
            let mut config = kafka.clone();
            config.advertised_host = l.advertised_host.clone();
            config.advertised_port = l.advertised_port;
            let listener_tls = match l.listener.protocol {
                strom_kafka::security::Protocol::Ssl => tls(strom_tls::ClientAuth::Required)?,
                p if p.tls() => tls(strom_tls::ClientAuth::None)?,
                _ => None,
            };
            let ctx = Arc::new(strom_kafka::Context {
                broker: Arc::clone(&broker),
                txn: Arc::clone(&txn),
                config,
                listener: l.listener.clone(),
                security: Arc::clone(&security),
                security_config: security_config.clone(),
                tls: listener_tls,
                connections: Arc::clone(&connections),
                login_failures: Arc::clone(&login_failures),
                quotas: Arc::clone(&quotas),
            });
            serving.spawn(strom_kafka::serve(bound, ctx));
        }
        let kafka_failed = async {
            match serving.join_next().await {
                Some(Ok(r)) => r.context("kafka listener failed"),
                Some(Err(e)) => Err(anyhow::anyhow!("kafka listener task failed: {e}")),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = kafka_failed => r,
            r = etcd_failed => r,
            r = http_failed => r,
            s = shutdown_signal() => s,
        }
    });
    tracing::info!("shutting down");
    broker.shutdown();
    if let Some(provider) = tracing_provider {
        // Exports the spans still batched.
        if let Err(e) = provider.shutdown() {
            tracing::warn!("OTLP exporter shutdown: {e}");
        }
    }
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

async fn shutdown_signal() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    Ok(())
}

fn init_logging(level: Option<&str>, json: bool) -> anyhow::Result<()> {
    let filter = match level {
        Some(l) => tracing_subscriber::EnvFilter::try_new(l)
            .with_context(|| format!("bad --log-level {l:?}"))?,
        None => tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
    };
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        logs.json().init();
    } else {
        logs.init();
    }
    Ok(())
}

/// Who may run connectors: every node the controller has not fenced or removed.
/// The console's caller may read keys the etcd API's key ACLs let them read (super users all).
fn console_key_acls(
    security: &Arc<strom_broker::security::Security>,
    config: &strom_kafka::security::SecurityConfig,
) -> Option<strom_console::MayRead> {
    if !config.authorizer {
        return None;
    }
    let authz = strom_etcd::authz::Authorization {
        security: Arc::clone(security),
        super_users: config.super_users.clone(),
    };
    Some(Arc::new(
        move |caller: &strom_auth::Caller, key: &[u8], end: &[u8]| {
            let peer = strom_etcd::authz::Peer {
                addr: Some(std::net::SocketAddr::new(caller.ip, 0)),
                principal: Some(caller.principal()),
            };
            authz
                .check_peer(&peer, strom_auth::Operation::Read, key, end)
                .is_ok()
        },
    ))
}

fn membership(broker: &Arc<Broker>) -> Arc<dyn Fn() -> strom_connect::Membership + Send + Sync> {
    let broker = Arc::clone(broker);
    Arc::new(move || {
        let me = u64::try_from(broker.node_id()).unwrap_or(0);
        let live = match broker.cluster() {
            None => vec![me],
            Some(c) => c.with_state(|s| {
                s.live_nodes()
                    .into_iter()
                    .filter(|n| !s.fenced_nodes.contains(n))
                    .collect()
            }),
        };
        strom_connect::Membership { me, live }
    })
}

/// glibc serves allocations above its mmap threshold with fresh `mmap`s and unmaps them on free,
/// so every multi-megabyte fetch buffer cost page faults and the kernel zeroing each page: a
/// quarter of the broker's CPU in a catch-up read. Large buffers kept in the heap are reused.
fn keep_large_buffers_in_heap() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only changes allocator tuning; called before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 512 << 20);
    }
}
