//! Debezium's change event envelope (JSON converter, schemas disabled) and its topics.

use mysql_async::Value;
use serde_json::{json, Map, Value as Json};
use strom_connect::Record;

use crate::config::MySqlConfig;
use crate::schema::Table;
use crate::value::{to_json, Origin};

/// Where an event comes from, Debezium's `source` block.
#[derive(Debug, Clone, Default)]
pub struct Source {
    pub connector: &'static str,
    pub ts_ms: i64,
    /// `"true"`, `"last"` or `"false"`.
    pub snapshot: &'static str,
    pub db: String,
    pub table: String,
    pub server_id: u32,
    pub gtid: Option<String>,
    pub file: String,
    pub pos: u64,
    pub row: usize,
    pub thread: Option<u32>,
}

impl Source {
    pub fn to_json(&self, name: &str) -> Json {
        json!({
            "version": concat!("strom-", env!("CARGO_PKG_VERSION")),
            "connector": self.connector,
            "name": name,
            "ts_ms": self.ts_ms,
            "snapshot": self.snapshot,
            "db": self.db,
            "sequence": null,
            "table": if self.table.is_empty() { Json::Null } else { json!(self.table) },
            "server_id": self.server_id,
            "gtid": self.gtid,
            "file": self.file,
            "pos": self.pos,
            "row": self.row,
            "thread": self.thread,
            "query": null,
        })
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A row's columns as a JSON object, leaving out those not `captured`
/// (`MySqlConfig::captured_columns`).
pub fn row_json(
    table: &Table,
    captured: &[bool],
    values: Vec<Option<Value>>,
    origin: Origin,
) -> Map<String, Json> {
    let mut row = Map::new();
    for ((column, value), keep) in table.columns.iter().zip(values).zip(captured) {
        if !keep {
            continue;
        }
        row.insert(
            column.name.clone(),
            to_json(value.unwrap_or(Value::NULL), column, origin),
        );
    }
    row
}

/// The record key: the primary-key columns, or none for a table without one.
fn key_of(table: &Table, row: &Map<String, Json>) -> Option<Vec<u8>> {
    if table.primary_key.is_empty() {
        return None;
    }
    // serde_json sorts an object's members, so every event of a row has the same key bytes
    // (Debezium writes them in primary-key order; consumers compare keys parsed or as bytes).
    let ordered: Map<String, Json> = table
        .primary_key
        .iter()
        .map(|k| (k.clone(), row.get(k).cloned().unwrap_or(Json::Null)))
        .collect();
    Some(Json::Object(ordered).to_string().into_bytes())
}

/// The records for one row change: a create, read, update or delete (followed by its
/// tombstone), an update of the primary key as Debezium writes it (a delete and tombstone of
/// the old key, then a create of the new one).
pub fn change_records(
    cfg: &MySqlConfig,
    table: &Table,
    source: &Source,
    before: Option<Map<String, Json>>,
    after: Option<Map<String, Json>>,
    read: bool,
) -> Vec<Record> {
    let topic = format!("{}.{}.{}", cfg.topic_prefix, source.db, source.table);
    let envelope =
        |op: &str, before: Option<&Map<String, Json>>, after: Option<&Map<String, Json>>| {
            json!({
                "before": before,
                "after": after,
                "source": source.to_json(&cfg.topic_prefix),
                "op": op,
                "ts_ms": now_ms(),
                "transaction": null,
            })
            .to_string()
            .into_bytes()
        };
    let record = |key: Option<Vec<u8>>, value: Option<Vec<u8>>| Record {
        topic: topic.clone(),
        key,
        value,
        ..Default::default()
    };
    match (before, after) {
        (None, Some(after)) => {
            let op = if read { "r" } else { "c" };
            vec![record(
                key_of(table, &after),
                Some(envelope(op, None, Some(&after))),
            )]
        }
        (Some(before), None) => {
            let key = key_of(table, &before);
            vec![
                record(key.clone(), Some(envelope("d", Some(&before), None))),
                record(key, None),
            ]
        }
        (Some(before), Some(after)) => {
            let old = key_of(table, &before);
            let new = key_of(table, &after);
            if old == new {
                vec![record(
                    new,
                    Some(envelope("u", Some(&before), Some(&after))),
                )]
            } else {
                vec![
                    record(old.clone(), Some(envelope("d", Some(&before), None))),
                    record(old, None),
                    record(new, Some(envelope("c", None, Some(&after)))),
                ]
            }
        }
        (None, None) => Vec::new(),
    }
}

/// A schema-change event on the `<topic.prefix>` topic, as Debezium writes it.
pub fn schema_change_record(
    cfg: &MySqlConfig,
    source: &Source,
    ddl: &str,
    changes: Vec<Json>,
) -> Record {
    let value = json!({
        "source": source.to_json(&cfg.topic_prefix),
        "ts_ms": now_ms(),
        "databaseName": source.db,
        "schemaName": null,
        "ddl": ddl,
        "tableChanges": changes,
    });
    Record {
        topic: cfg.topic_prefix.clone(),
        key: Some(json!({"databaseName": source.db}).to_string().into_bytes()),
        value: Some(value.to_string().into_bytes()),
        ..Default::default()
    }
}

/// One entry of `tableChanges`.
pub fn table_change(kind: &str, id: &str, table: Option<&Table>) -> Json {
    let (db, name) = id.split_once('.').unwrap_or(("", id));
    json!({
        "type": kind,
        "id": format!("\"{db}\".\"{name}\""),
        "table": table.map(|t| json!({
            "primaryKeyColumnNames": t.primary_key,
            "columns": t.columns.iter().enumerate().map(|(i, c)| json!({
                "name": c.name,
                "typeName": c.data_type.to_uppercase(),
                "length": c.size,
                "position": i + 1,
                "enumValues": if c.labels.is_empty() { Json::Null } else { json!(c.labels) },
            })).collect::<Vec<_>>(),
        })),
    })
}

/// A heartbeat record (`__debezium-heartbeat.<prefix>`), which carries the offset forward
/// while no captured table changes.
pub fn heartbeat_record(cfg: &MySqlConfig) -> Record {
    Record {
        topic: format!("__debezium-heartbeat.{}", cfg.topic_prefix),
        key: Some(
            json!({"serverName": cfg.topic_prefix})
                .to_string()
                .into_bytes(),
        ),
        value: Some(json!({"ts_ms": now_ms()}).to_string().into_bytes()),
        ..Default::default()
    }
}
