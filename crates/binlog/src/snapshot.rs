//! The initial snapshot: every captured table's rows (`op` `r`) as of one binlog position,
//! and the schemas as of that position, so streaming continues exactly there.
//!
//! Consistency without a long lock: a brief `FLUSH TABLES WITH READ LOCK` holds writes and
//! DDL while the snapshot transaction starts (`START TRANSACTION WITH CONSISTENT SNAPSHOT`)
//! and the position and schemas are read; the lock is released before any row is read. On
//! MariaDB the position comes from `binlog_snapshot_file/position`, which the server keeps
//! consistent with the snapshot transaction even without the lock. A user without RELOAD
//! (no lock) still gets a consistent snapshot on MariaDB; the schemas are then read without
//! DDL held off, which the log says.
//!
//! The rows go to the runtime as batches of one transaction (`more`), so a snapshot that is
//! interrupted leaves nothing visible and starts over.

use std::collections::BTreeMap;

use futures::TryStreamExt as _;
use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Row, Value};
use strom_connect::{Batch, TaskError};
use tokio::sync::mpsc;

use crate::config::MySqlConfig;
use crate::event::{change_records, now_ms, row_json, Source};
use crate::schema::{table_id, Column, Schemas, Table};
use crate::task::{schema_state, Position};
use crate::value::Origin;

pub fn db_error(context: &str, e: mysql_async::Error) -> TaskError {
    TaskError::retriable(format!("{context}: {e}"))
}

/// Runs a statement whose result is not needed.
pub async fn execute(conn: &mut Conn, sql: &str, context: &str) -> Result<(), TaskError> {
    conn.query_drop(sql).await.map_err(|e| db_error(context, e))
}

/// The captured tables' schemas, from `information_schema`.
pub async fn read_schemas(conn: &mut Conn, cfg: &MySqlConfig) -> Result<Schemas, TaskError> {
    let columns: Vec<(String, String, String, String)> = conn
        .query(
            "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, COLUMN_TYPE FROM information_schema.COLUMNS \
             WHERE (TABLE_SCHEMA, TABLE_NAME) IN (SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES WHERE TABLE_TYPE = 'BASE TABLE') \
             ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION",
        )
        .await
        .map_err(|e| db_error("reading table schemas", e))?;
    let keys: Vec<(String, String, String)> = conn
        .query(
            "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME FROM information_schema.KEY_COLUMN_USAGE \
             WHERE CONSTRAINT_NAME = 'PRIMARY' ORDER BY TABLE_SCHEMA, TABLE_NAME, ORDINAL_POSITION",
        )
        .await
        .map_err(|e| db_error("reading primary keys", e))?;
    let mut tables: BTreeMap<String, Table> = BTreeMap::new();
    for (db, table, column, ty) in columns {
        if !cfg.captures_table(&db, &table) {
            continue;
        }
        tables
            .entry(table_id(&db, &table))
            .or_insert_with(|| Table {
                columns: Vec::new(),
                primary_key: Vec::new(),
            })
            .columns
            .push(Column::from_sql_type(&column, &ty));
    }
    for (db, table, column) in keys {
        if let Some(t) = tables.get_mut(&table_id(&db, &table)) {
            t.primary_key.push(column);
        }
    }
    Ok(Schemas { tables })
}

fn quote(ident: &str) -> String {
    format!("`{}`", ident.replace('`', "``"))
}

/// Takes the snapshot on `conn` and sends it as batches; the last one (not `more`) carries
/// the position and the schemas.
pub async fn run(
    mut conn: Conn,
    cfg: std::sync::Arc<MySqlConfig>,
    connector: &'static str,
    mariadb: bool,
    with_rows: bool,
    tx: mpsc::Sender<Result<Batch, TaskError>>,
) {
    let result = take(&mut conn, &cfg, connector, mariadb, with_rows, &tx).await;
    if let Err(e) = result {
        let _ = tx.send(Err(e)).await;
    }
    let _ = conn.disconnect().await;
}

async fn take(
    conn: &mut Conn,
    cfg: &MySqlConfig,
    connector: &'static str,
    mariadb: bool,
    with_rows: bool,
    tx: &mpsc::Sender<Result<Batch, TaskError>>,
) -> Result<(), TaskError> {
    // TIMESTAMP columns are read in UTC, as the binlog has them.
    execute(conn, "SET time_zone = '+00:00'", "setting the time zone").await?;
    execute(
        conn,
        "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
        "setting the isolation level",
    )
    .await?;
    let locked = match conn.query_drop("FLUSH TABLES WITH READ LOCK").await {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!("snapshot without a global read lock (the user lacks RELOAD?): {e}");
            false
        }
    };
    execute(
        conn,
        "START TRANSACTION WITH CONSISTENT SNAPSHOT",
        "starting the snapshot transaction",
    )
    .await?;
    let (file, pos) = if mariadb {
        let vars: Vec<(String, String)> = conn
            .query("SHOW STATUS LIKE 'binlog_snapshot_%'")
            .await
            .map_err(|e| db_error("reading the snapshot's binlog position", e))?;
        let get = |n: &str| {
            vars.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(n))
                .map(|(_, v)| v.clone())
                .unwrap_or_default()
        };
        (
            get("binlog_snapshot_file"),
            get("binlog_snapshot_position").parse().unwrap_or(4),
        )
    } else {
        let row: Option<Row> = conn
            .query_first("SHOW MASTER STATUS")
            .await
            .map_err(|e| db_error("reading the binlog position", e))?;
        let row = row.ok_or_else(|| {
            TaskError::fatal("the server has no binary log: start it with log_bin")
        })?;
        (
            row.get::<String, _>(0).unwrap_or_default(),
            row.get::<u64, _>(1).unwrap_or(4),
        )
    };
    let gtids: Option<String> = if mariadb {
        conn.exec_first("SELECT BINLOG_GTID_POS(?, ?)", (file.clone(), pos))
            .await
            .ok()
            .flatten()
    } else {
        conn.query_first("SELECT @@GLOBAL.gtid_executed")
            .await
            .ok()
            .flatten()
    };
    let schemas = read_schemas(conn, cfg).await?;
    if locked {
        execute(conn, "UNLOCK TABLES", "releasing the read lock").await?;
    }
    let mut batch = Batch {
        more: true,
        ..Batch::default()
    };
    if with_rows {
        for (id, table) in &schemas.tables {
            let (db, name) = id.split_once('.').unwrap_or(("", id));
            let columns: Vec<String> = table.columns.iter().map(|c| quote(&c.name)).collect();
            let sql = format!(
                "SELECT {} FROM {}.{}",
                columns.join(", "),
                quote(db),
                quote(name)
            );
            let mut rows = conn
                .exec_stream::<Row, _, _>(sql, ())
                .await
                .map_err(|e| db_error(&format!("reading {id}"), e))?;
            let source = Source {
                connector,
                ts_ms: now_ms(),
                snapshot: "true",
                db: db.to_string(),
                table: name.to_string(),
                server_id: 0,
                gtid: None,
                file: file.clone(),
                pos,
                row: 0,
                thread: None,
            };
            let captured = cfg.captured_columns(db, name, &table.columns);
            while let Some(row) = rows
                .try_next()
                .await
                .map_err(|e| db_error(&format!("reading {id}"), e))?
            {
                let values: Vec<Option<Value>> = row.unwrap_raw();
                let after = row_json(table, &captured, values, Origin::Snapshot);
                batch
                    .records
                    .extend(change_records(cfg, table, &source, None, Some(after), true));
                if batch.records.len() >= cfg.max_batch_size {
                    let full = std::mem::replace(
                        &mut batch,
                        Batch {
                            more: true,
                            ..Batch::default()
                        },
                    );
                    if tx.send(Ok(full)).await.is_err() {
                        return Ok(());
                    }
                }
            }
        }
    }
    execute(conn, "COMMIT", "ending the snapshot transaction").await?;
    let position = Position {
        file,
        pos,
        gtids: gtids.unwrap_or_default(),
    };
    batch.more = false;
    batch.offsets = vec![position.offset(cfg)];
    batch.state = schema_state(&schemas);
    let _ = tx.send(Ok(batch)).await;
    tracing::info!(
        tables = schemas.tables.len(),
        "snapshot done; streaming from {}:{}",
        position.file,
        position.pos
    );
    Ok(())
}
