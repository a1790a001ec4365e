//! The connector's properties, by Debezium's names.

use std::time::Duration;

use strom_connect::props::{Filter, Props};
use strom_connect::{Config, ConfigDef, ConfigIssue};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotMode {
    /// Rows first (when there is no offset yet), then the binlog.
    Initial,
    /// Only the schemas and the position, then the binlog.
    NoData,
    /// No snapshot: the binlog from its oldest file.
    Never,
    /// A snapshot when there is no offset or the binlog it names is gone.
    WhenNeeded,
}

#[derive(Debug, Clone)]
pub struct MySqlConfig {
    pub hostname: String,
    pub port: u16,
    pub user: String,
    pub password: String,
    pub server_id: u32,
    pub topic_prefix: String,
    pub databases: Filter,
    /// Matched against `db.table`.
    pub tables: Filter,
    /// Matched against `db.table.column`.
    pub excluded_columns: Filter,
    pub snapshot_mode: SnapshotMode,
    pub heartbeat_interval: Option<Duration>,
    /// Rows per snapshot batch and most records in one batch while streaming.
    pub max_batch_size: usize,
}

/// Databases never captured, as in Debezium.
const SYSTEM_DATABASES: [&str; 4] = ["mysql", "sys", "performance_schema", "information_schema"];

impl MySqlConfig {
    pub fn captures_db(&self, db: &str) -> bool {
        !SYSTEM_DATABASES.contains(&db) && self.databases.accepts(db)
    }

    pub fn captures_table(&self, db: &str, table: &str) -> bool {
        self.captures_db(db) && self.tables.accepts(&format!("{db}.{table}"))
    }

    /// Which of a table's columns events carry (`column.exclude.list`), decided once per
    /// table rather than per row.
    pub fn captured_columns(
        &self,
        db: &str,
        table: &str,
        columns: &[crate::schema::Column],
    ) -> Vec<bool> {
        columns
            .iter()
            .map(|c| {
                let id = format!("{db}.{table}.{}", c.name);
                !self.excluded_columns.names(&id)
            })
            .collect()
    }
}

pub fn defs() -> Vec<ConfigDef> {
    let d = ConfigDef::new;
    vec![
        d("database.hostname", true, None, "Host of the MySQL or MariaDB server."),
        d("database.port", false, Some("3306"), "Port of the server."),
        d("database.user", true, None, "User with REPLICATION SLAVE, REPLICATION CLIENT, SELECT and RELOAD."),
        d("database.password", false, Some(""), "The user's password."),
        d("database.server.id", false, None, "Replica server id, unique among the server's replicas (default derived from the connector name)."),
        d("topic.prefix", true, None, "Prefix of every topic name; also the schema-change topic."),
        d("database.include.list", false, None, "Regular expressions of databases to capture."),
        d("database.exclude.list", false, None, "Regular expressions of databases not to capture."),
        d("table.include.list", false, None, "Regular expressions of db.table to capture."),
        d("table.exclude.list", false, None, "Regular expressions of db.table not to capture."),
        d("column.exclude.list", false, None, "Regular expressions of db.table.column to leave out of events."),
        d("snapshot.mode", false, Some("initial"), "initial, no_data, never or when_needed."),
        d("heartbeat.interval.ms", false, Some("0"), "Heartbeat period; 0 disables heartbeats."),
        d("max.batch.size", false, Some("2048"), "Rows per snapshot batch and records per streaming batch."),
    ]
}

pub fn parse(config: &Config) -> Result<MySqlConfig, Vec<ConfigIssue>> {
    let mut p = Props::new(config, &defs());
    let port = p.number("database.port", 3306, u64::from(u16::MAX)) as u16;
    let name = config.get("name").cloned().unwrap_or_default();
    // Debezium's range for a derived id: 5400..=6400.
    let default_id = 5400 + u64::from(crc32c::crc32c(name.as_bytes()) % 1000);
    let server_id = p.number("database.server.id", default_id, u64::from(u32::MAX)) as u32;
    let heartbeat = p.number("heartbeat.interval.ms", 0, 24 * 3600 * 1000);
    let max_batch_size = p.number("max.batch.size", 2048, 1_000_000).max(1) as usize;
    let snapshot_mode = match p.get("snapshot.mode").unwrap_or("initial") {
        "initial" => SnapshotMode::Initial,
        "no_data" | "schema_only" => SnapshotMode::NoData,
        "never" => SnapshotMode::Never,
        "when_needed" => SnapshotMode::WhenNeeded,
        other => {
            p.issue("snapshot.mode", format!("Invalid value {other} for configuration snapshot.mode: must be one of initial, no_data, never, when_needed"));
            SnapshotMode::Initial
        }
    };
    let databases = p.filter("database.include.list", None, "database.exclude.list", None);
    let tables = p.filter("table.include.list", None, "table.exclude.list", None);
    let excluded_columns = p.filter("column.exclude.list", None, "", None);
    for (inc, exc) in [
        ("database.include.list", "database.exclude.list"),
        ("table.include.list", "table.exclude.list"),
    ] {
        if p.get(inc).is_some() && p.get(exc).is_some() {
            p.issue(exc, format!("{inc} and {exc} cannot both be set"));
        }
    }
    if let Some(prefix) = p.get("topic.prefix") {
        if !prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            p.issue("topic.prefix", format!("Invalid value {prefix} for configuration topic.prefix: only letters, digits, '.', '_' and '-'"));
        }
    }
    let (hostname, user, topic_prefix) = (
        p.string("database.hostname"),
        p.string("database.user"),
        p.string("topic.prefix"),
    );
    p.finish(|| MySqlConfig {
        hostname,
        port,
        user,
        password: config.get("database.password").cloned().unwrap_or_default(),
        server_id,
        topic_prefix,
        databases,
        tables,
        excluded_columns,
        snapshot_mode,
        heartbeat_interval: (heartbeat > 0).then(|| Duration::from_millis(heartbeat)),
        max_batch_size,
    })
}
