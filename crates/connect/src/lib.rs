//! The connector runtime: Kafka Connect inside the node. Connectors are created, configured,
//! paused, restarted and deleted through Kafka Connect's REST API (`rest`, on the node's HTTP
//! listener); their configs, statuses, source offsets and durable state live in compacted
//! topics of the cluster itself (`store`); each runs on one node at a time, chosen from the
//! controller's membership and fenced by a transactional id (`worker`); each batch a source
//! task produces is written in one Kafka transaction together with its offset (`worker`).
//! Plugins (`plugin`) live in their own crates (the MySQL/MariaDB binlog source in
//! `strom-binlog`) and are handed in by the binary.

pub mod plugin;
pub mod props;
pub mod rest;
pub mod store;
pub mod worker;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

pub use plugin::{
    Batch, Config, ConfigDef, ConfigIssue, Plugin, Record, SourceTask, TaskContext, TaskError,
};
pub use worker::Membership;

/// Everything the runtime needs from the node.
pub struct Settings {
    /// The node's own Kafka listener, which the runtime is a client of.
    pub kafka: store::KafkaClient,
    /// The worker id statuses name (the node's HTTP address, as Connect's REST URL).
    pub worker_id: String,
    pub plugins: Vec<Arc<dyn Plugin>>,
    /// This node and the nodes that may run connectors (the controller's live members).
    pub membership: Arc<dyn Fn() -> Membership + Send + Sync>,
}

/// The runtime once its topics are read.
pub struct Runtime {
    store: Arc<store::Store>,
    plugins: Vec<Arc<dyn Plugin>>,
    membership: Arc<dyn Fn() -> Membership + Send + Sync>,
    worker_id: String,
}

impl Runtime {
    /// The plugin a config's `connector.class` names.
    pub fn plugin(&self, config: &Config) -> Result<Arc<dyn Plugin>, String> {
        find_plugin(&self.plugins, config)
    }
}

fn find_plugin(plugins: &[Arc<dyn Plugin>], config: &Config) -> Result<Arc<dyn Plugin>, String> {
    let Some(class) = config.get("connector.class") else {
        return Err("Connector config is missing the required 'connector.class'".into());
    };
    let class = class.trim();
    plugins
        .iter()
        .find(|p| p.class() == class || p.aliases().contains(&class))
        .cloned()
        .ok_or_else(|| {
            let known: Vec<&str> = plugins.iter().map(|p| p.class()).collect();
            format!("Failed to find any class that implements Connector and which name matches {class}, available connectors are: {}", known.join(", "))
        })
}

/// The connector face of a node: the REST API's state and the runtime it starts.
///
/// A node whose cluster has never had a connector creates nothing: the runtime's topics are
/// created by the first write through the REST API (on any node), and every node starts its
/// runtime once it sees them.
pub struct Connect {
    settings: Settings,
    runtime: OnceLock<Arc<Runtime>>,
    opening: tokio::sync::Mutex<()>,
}

impl Connect {
    /// Starts watching for the runtime's topics in the background.
    pub fn start(settings: Settings) -> Arc<Connect> {
        let connect = Arc::new(Connect {
            settings,
            runtime: OnceLock::new(),
            opening: tokio::sync::Mutex::new(()),
        });
        let watcher = Arc::clone(&connect);
        tokio::spawn(async move {
            let mut delay = Duration::from_millis(200);
            while watcher.runtime.get().is_none() {
                let kafka = watcher.settings.kafka.clone();
                let exists = tokio::task::spawn_blocking(move || store::topics_exist(&kafka)).await;
                if let Ok(Ok(true)) = exists {
                    if let Err(e) = watcher.open(false).await {
                        tracing::warn!("connector runtime not ready: {e}");
                    }
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        });
        connect
    }

    /// The runtime, if its topics exist and are read.
    pub fn runtime(&self) -> Option<&Arc<Runtime>> {
        self.runtime.get()
    }

    /// The runtime, creating its topics (`create`) or only opening existing ones.
    pub async fn open(&self, create: bool) -> Result<&Arc<Runtime>, store::StoreError> {
        if let Some(rt) = self.runtime.get() {
            return Ok(rt);
        }
        let _guard = self.opening.lock().await;
        if let Some(rt) = self.runtime.get() {
            return Ok(rt);
        }
        let store = store::Store::open(&self.settings.kafka, create).await?;
        let runtime = Arc::new(Runtime {
            store,
            plugins: self.settings.plugins.clone(),
            membership: Arc::clone(&self.settings.membership),
            worker_id: self.settings.worker_id.clone(),
        });
        let _ = self.runtime.set(Arc::clone(&runtime));
        tracing::info!("connector runtime ready");
        tokio::spawn(worker::run(runtime));
        self.runtime.get().ok_or(store::StoreError::Timeout)
    }
}
