//! MySQL/MariaDB change data capture: the `mysql` connector (Debezium's
//! `io.debezium.connector.mysql.MySqlConnector` properties and event format) for the
//! connector runtime of `strom-connect`.
//!
//! - `config`: the properties.
//! - `snapshot`: the initial snapshot, consistent with the binlog position streaming starts at.
//! - `task`: the binlog, one batch (one Kafka transaction) per database transaction; XA
//!   transactions wait for their decision.
//! - `schema`: the schema history, followed through DDL, stored with the offsets.
//! - `value`, `event`: Debezium's JSON for values and change events.

pub mod config;
pub mod event;
pub mod schema;
pub mod snapshot;
pub mod task;
pub mod value;

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::future::BoxFuture;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, OptsBuilder};
use strom_connect::{
    Batch, Config, ConfigDef, ConfigIssue, Plugin, SourceTask, TaskContext, TaskError,
};
use tokio::sync::mpsc;

use crate::config::SnapshotMode;
use crate::schema::{Schemas, Table};
use crate::task::{MySqlTask, Position};

pub struct MySqlPlugin;

impl Plugin for MySqlPlugin {
    fn class(&self) -> &'static str {
        "mysql"
    }

    fn aliases(&self) -> &'static [&'static str] {
        &[
            "io.debezium.connector.mysql.MySqlConnector",
            "io.debezium.connector.mariadb.MariaDbConnector",
            "mariadb",
        ]
    }

    fn version(&self) -> &'static str {
        env!("CARGO_PKG_VERSION")
    }

    fn config_defs(&self) -> Vec<ConfigDef> {
        config::defs()
    }

    fn validate(&self, config: &Config) -> Vec<ConfigIssue> {
        config::parse(config).err().unwrap_or_default()
    }

    fn start(
        &self,
        ctx: TaskContext,
    ) -> BoxFuture<'static, Result<Box<dyn SourceTask>, TaskError>> {
        Box::pin(async move { start(ctx).await.map(|t| Box::new(t) as Box<dyn SourceTask>) })
    }
}

/// Connects, checks the server's settings, and decides where to start: the stored offset, or
/// a snapshot (with or without rows), or the oldest binlog.
async fn start(ctx: TaskContext) -> Result<MySqlTask, TaskError> {
    let cfg =
        Arc::new(config::parse(&ctx.config).map_err(|issues| TaskError::invalid_config(&issues))?);
    let opts: mysql_async::Opts = OptsBuilder::default()
        .ip_or_hostname(cfg.hostname.clone())
        .tcp_port(cfg.port)
        .user(Some(cfg.user.clone()))
        .pass(Some(cfg.password.clone()))
        .prefer_socket(false)
        .into();
    let mut conn = match Conn::new(opts.clone()).await {
        Ok(c) => c,
        Err(e) => {
            let message = format!(
                "cannot connect to {}:{} as {}: {e}",
                cfg.hostname, cfg.port, cfg.user
            );
            // A source that went away while running is waited for; one that never answered
            // (wrong host, port or password) is a configuration to fix.
            return Err(if ctx.restarting && !message.contains("Access denied") {
                TaskError::retriable(message)
            } else {
                TaskError::fatal(message)
            });
        }
    };
    let mariadb = check_server(&mut conn).await?;
    let schemas = load_schemas(&ctx);
    let prepared: BTreeMap<String, Vec<strom_connect::Record>> = ctx
        .state
        .iter()
        .filter_map(|(k, v)| Some((task::is_xa_key(k)?.to_string(), task::records_from_json(v))))
        .collect();
    let offset = ctx
        .offsets
        .iter()
        .find(|(p, _)| p.get("server").and_then(|s| s.as_str()) == Some(cfg.topic_prefix.as_str()))
        .and_then(|(_, o)| Position::from_offset(o));
    let offset = match (offset, cfg.snapshot_mode) {
        (Some(p), SnapshotMode::WhenNeeded) if !binlog_exists(&mut conn, &p.file).await? => {
            tracing::warn!(file = %p.file, "the stored binlog position is gone; taking a new snapshot");
            None
        }
        (o, _) => o,
    };
    let mut task = match offset {
        Some(position) => {
            let _ = conn.disconnect().await;
            MySqlTask::new(Arc::clone(&cfg), opts, mariadb, schemas, position, prepared)
        }
        None if cfg.snapshot_mode == SnapshotMode::Never => {
            let first: Option<(String, u64)> = conn
                .query_first("SHOW BINARY LOGS")
                .await
                .map_err(|e| snapshot::db_error("listing the binary logs", e))?
                .map(|(f, s): (String, u64)| (f, s));
            let schemas = snapshot::read_schemas(&mut conn, &cfg).await?;
            let _ = conn.disconnect().await;
            let file = first.map(|(f, _)| f).unwrap_or_default();
            MySqlTask::new(
                Arc::clone(&cfg),
                opts,
                mariadb,
                schemas,
                Position {
                    file,
                    pos: 4,
                    gtids: String::new(),
                },
                prepared,
            )
        }
        None => {
            let with_rows = cfg.snapshot_mode != SnapshotMode::NoData;
            let (tx, rx) = mpsc::channel::<Result<Batch, TaskError>>(2);
            let connector = if mariadb { "mariadb" } else { "mysql" };
            // The snapshot's final batch carries the position and schemas; the task takes
            // them from there before streaming (see `snapshot_done`).
            let mut t = MySqlTask::new(
                Arc::clone(&cfg),
                opts,
                mariadb,
                Schemas::default(),
                Position::default(),
                BTreeMap::new(),
            );
            t.snapshot = Some(rx);
            tokio::spawn(snapshot::run(
                conn,
                Arc::clone(&cfg),
                connector,
                mariadb,
                with_rows,
                tx,
            ));
            t
        }
    };
    task.stale_state = ctx
        .state
        .keys()
        .filter(|k| k.starts_with("schema/") || task::is_xa_key(k).is_some())
        .cloned()
        .collect();
    Ok(task)
}

/// MariaDB or MySQL, and the settings row capture needs.
async fn check_server(conn: &mut Conn) -> Result<bool, TaskError> {
    let row: Option<(String, String, String, String)> = conn
        .query_first(
            "SELECT @@version, CAST(@@log_bin AS CHAR), @@binlog_format, @@binlog_row_image",
        )
        .await
        .map_err(|e| snapshot::db_error("reading the server's settings", e))?;
    let Some((version, log_bin, format, image)) = row else {
        return Err(TaskError::fatal("the server did not report its settings"));
    };
    if log_bin != "1" && !log_bin.eq_ignore_ascii_case("ON") {
        return Err(TaskError::fatal("the server's binary log is off: start it with log_bin (and binlog_format=ROW, binlog_row_image=FULL)"));
    }
    if !format.eq_ignore_ascii_case("ROW") {
        return Err(TaskError::fatal(format!(
            "the server's binlog_format is {format}; change data capture needs binlog_format=ROW (set it in the server's configuration, or SET GLOBAL binlog_format=ROW for new sessions)"
        )));
    }
    if !image.eq_ignore_ascii_case("FULL") {
        return Err(TaskError::fatal(format!(
            "the server's binlog_row_image is {image}; change data capture needs binlog_row_image=FULL (every column of every changed row)"
        )));
    }
    Ok(version.to_ascii_lowercase().contains("mariadb"))
}

async fn binlog_exists(conn: &mut Conn, file: &str) -> Result<bool, TaskError> {
    let logs: Vec<(String, u64)> = conn
        .query("SHOW BINARY LOGS")
        .await
        .map_err(|e| snapshot::db_error("listing the binary logs", e))?;
    Ok(logs.iter().any(|(f, _)| f == file))
}

fn load_schemas(ctx: &TaskContext) -> Schemas {
    let tables = ctx
        .state
        .iter()
        .filter_map(|(k, v)| {
            let id = k.strip_prefix("schema/")?;
            let table: Table = serde_json::from_value(v.clone()).ok()?;
            Some((id.to_string(), table))
        })
        .collect();
    Schemas { tables }
}
