//! The connector's properties, by Debezium's names.

use std::time::Duration;

use regex::Regex;
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

/// A list of regular expressions matched against a whole name, as Debezium's include and
/// exclude lists are.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    include: Vec<Regex>,
    exclude: Vec<Regex>,
}

impl Filter {
    fn new(include: Option<&str>, exclude: Option<&str>) -> Result<Filter, String> {
        let compile = |list: Option<&str>| -> Result<Vec<Regex>, String> {
            list.unwrap_or("")
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(|s| Regex::new(&format!("^(?:{s})$")).map_err(|e| format!("'{s}': {e}")))
                .collect()
        };
        Ok(Filter {
            include: compile(include)?,
            exclude: compile(exclude)?,
        })
    }

    pub fn accepts(&self, name: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|r| r.is_match(name)))
            && !self.exclude.iter().any(|r| r.is_match(name))
    }
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
                !self
                    .excluded_columns
                    .include
                    .iter()
                    .any(|r| r.is_match(&id))
            })
            .collect()
    }
}

pub fn defs() -> Vec<ConfigDef> {
    let d = |name, required, default, documentation| ConfigDef {
        name,
        required,
        default,
        documentation,
    };
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
    let mut issues = strom_connect::plugin::missing_required(&defs(), config);
    let mut issue = |name: &str, message: String| {
        issues.push(ConfigIssue {
            name: name.to_string(),
            message,
        })
    };
    let get = |k: &str| config.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let mut number = |k: &str, default: u64, max: u64| -> u64 {
        match get(k).map(str::parse::<u64>) {
            None => default,
            Some(Ok(n)) if n <= max => n,
            Some(_) => {
                issue(
                    k,
                    format!(
                        "Invalid value {} for configuration {k}: must be a number from 0 to {max}",
                        get(k).unwrap_or("")
                    ),
                );
                default
            }
        }
    };
    let port = number("database.port", 3306, u64::from(u16::MAX)) as u16;
    let name = config.get("name").cloned().unwrap_or_default();
    // Debezium's range for a derived id: 5400..=6400.
    let default_id = 5400 + u64::from(crc32c::crc32c(name.as_bytes()) % 1000);
    let server_id = number("database.server.id", default_id, u64::from(u32::MAX)) as u32;
    let heartbeat = number("heartbeat.interval.ms", 0, 24 * 3600 * 1000);
    let max_batch_size = number("max.batch.size", 2048, 1_000_000).max(1) as usize;
    let snapshot_mode = match get("snapshot.mode").unwrap_or("initial") {
        "initial" => SnapshotMode::Initial,
        "no_data" | "schema_only" => SnapshotMode::NoData,
        "never" => SnapshotMode::Never,
        "when_needed" => SnapshotMode::WhenNeeded,
        other => {
            issue("snapshot.mode", format!("Invalid value {other} for configuration snapshot.mode: must be one of initial, no_data, never, when_needed"));
            SnapshotMode::Initial
        }
    };
    let mut filter = |inc: &str, exc: &str| match Filter::new(get(inc), get(exc)) {
        Ok(f) => f,
        Err(e) => {
            issue(inc, format!("Invalid regular expression {e}"));
            Filter::default()
        }
    };
    let databases = filter("database.include.list", "database.exclude.list");
    let tables = filter("table.include.list", "table.exclude.list");
    let excluded_columns = filter("column.exclude.list", "");
    if get("database.include.list").is_some() && get("database.exclude.list").is_some() {
        issue(
            "database.exclude.list",
            "database.include.list and database.exclude.list cannot both be set".into(),
        );
    }
    if get("table.include.list").is_some() && get("table.exclude.list").is_some() {
        issue(
            "table.exclude.list",
            "table.include.list and table.exclude.list cannot both be set".into(),
        );
    }
    if let Some(p) = get("topic.prefix") {
        if !p
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        {
            issue("topic.prefix", format!("Invalid value {p} for configuration topic.prefix: only letters, digits, '.', '_' and '-'"));
        }
    }
    if !issues.is_empty() {
        return Err(issues);
    }
    Ok(MySqlConfig {
        hostname: get("database.hostname").unwrap_or_default().to_string(),
        port,
        user: get("database.user").unwrap_or_default().to_string(),
        password: config.get("database.password").cloned().unwrap_or_default(),
        server_id,
        topic_prefix: get("topic.prefix").unwrap_or_default().to_string(),
        databases,
        tables,
        excluded_columns,
        snapshot_mode,
        heartbeat_interval: (heartbeat > 0).then(|| Duration::from_millis(heartbeat)),
        max_batch_size,
    })
}
