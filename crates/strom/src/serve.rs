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
        let listener = tokio::net::TcpListener::bind(settings.kafka_addr)
            .await
            .with_context(|| format!("cannot listen on {}", settings.kafka_addr))?;
        let mut kafka = settings.kafka.clone();
        let local = listener.local_addr()?;
        if kafka.advertised_port == 0 {
            kafka.advertised_port = i32::from(local.port());
        }
        if let Some(mut cluster) = settings.cluster.clone() {
            cluster.kafka_host = kafka.advertised_host.clone();
            cluster.kafka_port = u16::try_from(kafka.advertised_port).unwrap_or(local.port());
            let raft = cluster.raft_addr;
            broker
                .start_cluster(cluster)
                .await
                .with_context(|| format!("cannot start the cluster node (raft {raft})"))?;
            tracing::info!(raft = %raft, "cluster mode: raft transport listening");
        }
        strom_broker::tiering::task::spawn(&broker);
        // The console's KV page reads the etcd API as a client, at the URL it advertises.
        let etcd_url = settings.etcd.as_ref().map(|(_, c)| c.client_url.clone());
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
                    kafka_addr: format!("{}:{}", kafka.advertised_host, kafka.advertised_port),
                };
                let mut proxy = strom_proxy::ProxyConfig::new(admin.kafka_addr.clone());
                proxy.consumer_instance_timeout = settings.consumer_instance_timeout;
                let connect = strom_connect::Connect::start(strom_connect::Settings {
                    bootstrap: admin.kafka_addr.clone(),
                    worker_id: listener.local_addr()?.to_string(),
                    plugins: vec![Arc::new(strom_binlog::MySqlPlugin)],
                    membership: membership(&broker),
                });
                let routers = vec![
                    strom_http::admin::routes(admin),
                    strom_http::metrics::routes(&broker),
                    strom_proxy::routes(strom_proxy::Proxy::new(proxy)),
                    strom_console::routes(etcd_url.clone()),
                    strom_connect::rest::routes(connect),
                ];
                let app = strom_http::app(routers, &config);
                Some(tokio::spawn(async move { strom_http::serve(listener, app, &config).await }))
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
                Some(tokio::spawn(strom_etcd::serve(listener, etcd)))
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
        tracing::info!(kafka = %local, data_dir = %data_dir.display(), flush = ?settings.broker.flush, "strom is serving");
        println!("strom listening on {local} (data in {})", data_dir.display());
        let txn = strom_txn::TxnCoordinator::start(&broker, strom_txn::TxnConfig::default())
            .context("cannot load the transaction coordinator's state")?;
        let ctx = Arc::new(strom_kafka::Context { broker: Arc::clone(&broker), txn, config: kafka });
        tokio::select! {
            r = strom_kafka::serve(listener, ctx) => r.context("kafka listener failed"),
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
