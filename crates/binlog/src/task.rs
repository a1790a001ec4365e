//! The running connector: the snapshot if one is needed, then the binlog, one batch per
//! database transaction (several when they are already waiting, never part of one).
//!
//! Every piece of state lives in the task, not in `poll`'s future, so the runtime may drop a
//! `poll` at any await (to pause) without losing a half-read transaction.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use futures::{FutureExt as _, StreamExt as _};
use mysql_async::binlog::events::{Event, EventData, RowsEventData};
use mysql_async::{BinlogStream, BinlogStreamRequest, Conn, Value};
use serde_json::{json, Value as Json};
use strom_connect::{Batch, Record, SourceTask, TaskError};
use tokio::sync::mpsc;

use crate::config::MySqlConfig;
use crate::event::{
    change_records, heartbeat_record, row_json, schema_change_record, table_change, Source,
};
use crate::schema::{Schemas, Table};

use crate::snapshot::{db_error, execute};
use crate::value::Origin;

/// A binlog position: file and offset of the next event, and the GTID state after it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Position {
    pub file: String,
    pub pos: u64,
    /// MariaDB: `domain-server-seq` per domain, comma-separated; MySQL: the last GTID.
    pub gtids: String,
}

impl Position {
    /// The source partition and offset as stored in the offsets topic.
    pub fn offset(&self, cfg: &MySqlConfig) -> (Json, Json) {
        let offset = json!({
            "file": self.file,
            "pos": self.pos,
            "gtids": self.gtids,
            "ts_sec": crate::event::now_ms() / 1000,
        });
        (json!({"server": cfg.topic_prefix}), offset)
    }

    pub fn from_offset(offset: &Json) -> Option<Position> {
        Some(Position {
            file: offset.get("file")?.as_str()?.to_string(),
            pos: offset.get("pos")?.as_u64()?,
            gtids: offset
                .get("gtids")
                .and_then(Json::as_str)
                .unwrap_or("")
                .to_string(),
        })
    }

    /// Records a MariaDB GTID `domain-server-seq` in the per-domain state.
    fn apply_gtid(&mut self, gtid: &str, mariadb: bool) {
        if !mariadb {
            self.gtids = gtid.to_string();
            return;
        }
        let domain = gtid.split('-').next().unwrap_or("");
        let mut parts: Vec<String> = self
            .gtids
            .split(',')
            .filter(|g| !g.is_empty() && g.split('-').next() != Some(domain))
            .map(str::to_string)
            .collect();
        parts.push(gtid.to_string());
        parts.sort();
        self.gtids = parts.join(",");
    }
}

/// The state records for the schemas: `schema/db.table` -> the table.
pub fn schema_state(schemas: &Schemas) -> Vec<(String, Option<Json>)> {
    schemas
        .tables
        .iter()
        .map(|(id, t)| (format!("schema/{id}"), serde_json::to_value(t).ok()))
        .collect()
}

/// A prepared XA transaction's records, kept in the connector's state until its decision.
const XA_PREFIX: &str = "xa/";
/// The most a prepared XA transaction's events may take in the state topic (one record, within
/// the default `max.message.bytes`).
const MAX_PREPARED_BYTES: usize = 900 * 1024;

/// A transaction being read.
#[derive(Debug, Default)]
struct Txn {
    gtid: Option<String>,
    start_pos: u64,
    records: Vec<Record>,
    /// The XA transaction's id (`XA START`'s argument), if it is one.
    xa: Option<String>,
}

pub struct MySqlTask {
    pub(crate) cfg: Arc<MySqlConfig>,
    pub(crate) opts: mysql_async::Opts,
    pub(crate) mariadb: bool,
    pub(crate) connector: &'static str,
    pub(crate) schemas: Schemas,
    pub(crate) position: Position,
    pub(crate) snapshot: Option<mpsc::Receiver<Result<Batch, TaskError>>>,
    /// Records of prepared XA transactions, by id.
    pub(crate) prepared: BTreeMap<String, Vec<Record>>,
    /// State keys stored before a snapshot; the snapshot's final batch deletes those it does
    /// not rewrite.
    pub(crate) stale_state: Vec<String>,
    stream: Option<BinlogStream>,
    /// The server appends a CRC32 to every event, and no format description was read yet on
    /// this stream: the reader cannot strip the checksum of the first (fake) rotate event.
    unstripped_checksum: bool,
    txn: Option<Txn>,
    ready: Batch,
    last_event: Instant,
    last_emit: Instant,
}

/// How long a binlog connection may be silent (the server sends a heartbeat every second)
/// before it is taken as lost.
const SILENCE: Duration = Duration::from_secs(10);
/// MariaDB's GTID event (mysql_common does not decode it) and its flags.
const MARIADB_GTID_EVENT: u8 = 0xa2;
const XA_PREPARE_LOG_EVENT: u8 = 38;

impl MySqlTask {
    pub(crate) fn new(
        cfg: Arc<MySqlConfig>,
        opts: mysql_async::Opts,
        mariadb: bool,
        schemas: Schemas,
        position: Position,
        prepared: BTreeMap<String, Vec<Record>>,
    ) -> MySqlTask {
        MySqlTask {
            cfg,
            opts,
            mariadb,
            connector: if mariadb { "mariadb" } else { "mysql" },
            schemas,
            position,
            snapshot: None,
            prepared,
            stale_state: Vec::new(),
            stream: None,
            unstripped_checksum: false,
            txn: None,
            ready: Batch::default(),
            last_event: Instant::now(),
            last_emit: Instant::now(),
        }
    }

    async fn open_stream(&mut self) -> Result<BinlogStream, TaskError> {
        let mut conn = Conn::new(self.opts.clone())
            .await
            .map_err(|e| db_error("connecting for the binlog", e))?;
        use mysql_async::prelude::Queryable;
        if self.mariadb {
            // Without it MariaDB replaces GTID and annotate events with dummies.
            execute(
                &mut conn,
                "SET @mariadb_slave_capability = 4",
                "setting the replica capability",
            )
            .await?;
        }
        // A heartbeat each second (in nanoseconds), so a silent server is told from a dead one.
        execute(
            &mut conn,
            "SET @master_heartbeat_period = 1000000000",
            "setting the heartbeat period",
        )
        .await?;
        let checksum: Option<String> = conn
            .query_first("SELECT @@GLOBAL.binlog_checksum")
            .await
            .map_err(|e| db_error("reading binlog_checksum", e))?;
        self.unstripped_checksum = checksum.is_some_and(|c| !c.eq_ignore_ascii_case("NONE"));
        // MariaDB resumes by GTID where it can: the same transaction has the same GTID on every
        // server of a replication topology, while file and position are one server's.
        let by_gtid = self.mariadb && !self.position.gtids.is_empty();
        let file = if by_gtid {
            let state = self.position.gtids.replace('\'', "");
            execute(
                &mut conn,
                &format!("SET @slave_connect_state = '{state}'"),
                "setting the GTID position",
            )
            .await?;
            execute(
                &mut conn,
                "SET @slave_gtid_strict_mode = 1",
                "setting GTID strict mode",
            )
            .await?;
            String::new()
        } else {
            self.position.file.clone()
        };
        let request = BinlogStreamRequest::new(self.cfg.server_id)
            .with_filename(file.as_bytes())
            .with_pos(self.position.pos);
        let stream = conn.get_binlog_stream(request).await.map_err(|e| {
            let message = e.to_string();
            if message.contains("1236") || message.contains("Could not find") || message.contains("purged") {
                TaskError::fatal(format!(
                    "the binlog position {}:{} is no longer on the server ({message}); set snapshot.mode=when_needed or reset the connector's offsets",
                    self.position.file, self.position.pos
                ))
            } else {
                db_error("starting the binlog stream", e)
            }
        })?;
        tracing::info!(file = %self.position.file, pos = self.position.pos, gtids = %self.position.gtids, "reading the binlog");
        self.last_event = Instant::now();
        Ok(stream)
    }

    fn take_ready(&mut self) -> Option<Batch> {
        if self.ready.is_empty() {
            return None;
        }
        self.last_emit = Instant::now();
        Some(std::mem::take(&mut self.ready))
    }

    /// A transaction boundary: what was read is complete, and the position moves past it.
    fn commit(&mut self, end_pos: u64) {
        self.finish(end_pos, true);
    }

    /// The end of a transaction, committed (its records are published) or rolled back; the
    /// position and GTID state move past it either way.
    fn finish(&mut self, end_pos: u64, committed: bool) {
        self.position.pos = end_pos;
        if let Some(txn) = self.txn.take() {
            if let Some(g) = &txn.gtid {
                self.position.apply_gtid(g, self.mariadb);
            }
            if committed {
                self.ready.records.extend(txn.records);
            }
            self.ready.offsets = vec![self.position.offset(&self.cfg)];
        }
    }

    fn source(&self, ev: &Event, db: &str, table: &str) -> Source {
        let h = ev.header();
        Source {
            connector: self.connector,
            ts_ms: i64::from(h.timestamp()) * 1000,
            snapshot: "false",
            db: db.to_string(),
            table: table.to_string(),
            server_id: h.server_id(),
            gtid: self.txn.as_ref().and_then(|t| t.gtid.clone()),
            file: self.position.file.clone(),
            pos: self.txn.as_ref().map_or(self.position.pos, |t| t.start_pos),
            row: 0,
            thread: None,
        }
    }

    fn txn(&mut self) -> &mut Txn {
        let start_pos = self.position.pos;
        self.txn.get_or_insert_with(|| Txn {
            start_pos,
            ..Txn::default()
        })
    }

    /// Applies one binlog event.
    fn handle(&mut self, ev: Event) -> Result<(), TaskError> {
        let header = ev.header();
        let end_pos = u64::from(header.log_pos());
        // Where this event starts (after a GTID connect the server's first rotate event
        // names position 4, not where reading starts).
        let start_pos = end_pos.saturating_sub(u64::from(header.event_size()));
        match header.event_type_raw() {
            MARIADB_GTID_EVENT => {
                let d = ev.data();
                if let Some((seq, domain, xa)) = mariadb_gtid(d) {
                    self.txn = Some(Txn {
                        gtid: Some(format!("{domain}-{}-{seq}", header.server_id())),
                        start_pos,
                        xa,
                        ..Txn::default()
                    });
                }
                return Ok(());
            }
            XA_PREPARE_LOG_EVENT => {
                // The transaction is prepared, not committed: its rows wait (durably, in the
                // connector's state) for XA COMMIT; XA ROLLBACK drops them.
                let txn = self.txn.take().unwrap_or_default();
                let id = txn.xa.clone().unwrap_or_default();
                let stored = records_json(&txn.records);
                if stored.to_string().len() > MAX_PREPARED_BYTES {
                    return Err(TaskError::fatal(format!(
                        "the XA transaction {id} has {} row events, more than the connector can hold until its XA COMMIT ({MAX_PREPARED_BYTES} bytes)",
                        txn.records.len()
                    )));
                }
                self.prepared.insert(id.clone(), txn.records);
                self.ready
                    .state
                    .push((format!("{XA_PREFIX}{id}"), Some(stored)));
                self.position.pos = end_pos;
                if let Some(g) = &txn.gtid {
                    self.position.apply_gtid(g, self.mariadb);
                }
                self.ready.offsets = vec![self.position.offset(&self.cfg)];
                return Ok(());
            }
            _ => {}
        }
        let data = match ev.read_data() {
            Ok(Some(d)) => d,
            Ok(None) => return Ok(()),
            Err(e) => {
                return Err(TaskError::fatal(format!(
                    "cannot decode the binlog event at {}:{}: {e}",
                    self.position.file, self.position.pos
                )))
            }
        };
        match data {
            EventData::RotateEvent(r) => {
                let mut name = r.name_raw();
                if self.unstripped_checksum {
                    name = &name[..name.len().saturating_sub(4)];
                }
                self.position.file = String::from_utf8_lossy(name).into_owned();
                self.position.pos = r.position();
            }
            EventData::FormatDescriptionEvent(_) => self.unstripped_checksum = false,
            EventData::GtidEvent(g) => {
                let sid: String = g.sid().iter().map(|b| format!("{b:02x}")).collect();
                let gtid = format!(
                    "{}-{}-{}-{}-{}:{}",
                    &sid[0..8],
                    &sid[8..12],
                    &sid[12..16],
                    &sid[16..20],
                    &sid[20..32],
                    g.gno()
                );
                self.txn = Some(Txn {
                    gtid: Some(gtid),
                    start_pos,
                    ..Txn::default()
                });
            }
            EventData::XidEvent(_) => self.commit(end_pos),
            EventData::QueryEvent(q) => {
                let sql = q.query().trim().to_string();
                let upper = sql.to_ascii_uppercase();
                if upper == "BEGIN" {
                    self.txn();
                } else if upper == "COMMIT" {
                    self.commit(end_pos);
                } else if upper == "ROLLBACK" {
                    self.finish(end_pos, false);
                } else if upper.starts_with("XA START") {
                    // MySQL logs it as a statement (MariaDB in its GTID event).
                    self.txn().xa = Some(xa_id(&sql[8..]));
                } else if upper.starts_with("XA END") {
                } else if upper.starts_with("XA COMMIT") {
                    self.xa_decided(&sql[9..], true, end_pos);
                } else if upper.starts_with("XA ROLLBACK") {
                    self.xa_decided(&sql[11..], false, end_pos);
                } else {
                    self.ddl(&ev, &q.schema(), &sql, end_pos)?;
                }
            }
            EventData::RowsEvent(rows) => self.rows(&ev, rows)?,
            _ => {}
        }
        Ok(())
    }

    /// `XA COMMIT` publishes a prepared transaction's records, `XA ROLLBACK` drops them;
    /// either way its stored copy goes.
    fn xa_decided(&mut self, statement_id: &str, commit: bool, end_pos: u64) {
        let txn = self.txn.take().unwrap_or_default();
        let id = txn.xa.unwrap_or_else(|| xa_id(statement_id));
        if let Some(records) = self.prepared.remove(&id) {
            if commit {
                self.ready.records.extend(records);
            }
        }
        self.ready.state.push((format!("{XA_PREFIX}{id}"), None));
        self.position.pos = end_pos;
        if let Some(g) = &txn.gtid {
            self.position.apply_gtid(g, self.mariadb);
        }
        self.ready.offsets = vec![self.position.offset(&self.cfg)];
    }

    /// A DDL statement: the schemas follow it, and the schema-change topic gets it.
    fn ddl(&mut self, ev: &Event, db: &str, sql: &str, end_pos: u64) -> Result<(), TaskError> {
        let before = self.schemas.clone();
        let result = self.schemas.apply_ddl(db, sql);
        let change = match result {
            Ok(c) => c,
            Err(e) => {
                let lower = sql.to_ascii_lowercase();
                let touches = lower.starts_with("alter")
                    || lower.starts_with("create table")
                    || lower.starts_with("rename")
                    || lower.starts_with("drop table");
                if touches
                    && before
                        .tables
                        .keys()
                        .any(|id| lower.contains(id.rsplit('.').next().unwrap_or(id)))
                {
                    return Err(TaskError::fatal(format!(
                        "{e}; the schema history cannot follow it, so later rows cannot be decoded"
                    )));
                }
                tracing::debug!("ignoring a statement: {e}");
                self.finish(end_pos, false);
                return Ok(());
            }
        };
        // Tables outside the include lists are not followed.
        let cfg = Arc::clone(&self.cfg);
        self.schemas.tables.retain(|id, _| {
            let (d, t) = id.split_once('.').unwrap_or(("", id));
            cfg.captures_table(d, t)
        });
        let mut changes = Vec::new();
        let mut state = Vec::new();
        for id in &change.changed {
            if let Some(t) = self.schemas.tables.get(id) {
                let kind = if before.tables.contains_key(id) {
                    "ALTER"
                } else {
                    "CREATE"
                };
                changes.push(table_change(kind, id, Some(t)));
                state.push((format!("schema/{id}"), serde_json::to_value(t).ok()));
            }
        }
        for id in &change.dropped {
            if before.tables.contains_key(id) {
                changes.push(table_change("DROP", id, None));
                state.push((format!("schema/{id}"), None));
            }
        }
        // The database is the changed table's (the statement may name it, `USE` or not).
        let db = change
            .changed
            .iter()
            .chain(&change.dropped)
            .next()
            .and_then(|id| id.split_once('.'))
            .map_or(db, |(d, _)| d);
        let source = self.source(ev, db, "");
        let txn = self.txn();
        if !changes.is_empty() {
            txn.records
                .push(schema_change_record(&cfg, &source, sql, changes));
        }
        self.ready.state.extend(state);
        self.commit(end_pos);
        self.ready.offsets = vec![self.position.offset(&self.cfg)];
        Ok(())
    }

    fn rows(&mut self, ev: &Event, rows: RowsEventData<'_>) -> Result<(), TaskError> {
        let Some(stream) = &self.stream else {
            return Ok(());
        };
        let Some(tme) = stream.get_tme(rows.table_id()) else {
            return Err(TaskError::fatal(format!(
                "a rows event at {}:{} without its table map",
                self.position.file, self.position.pos
            )));
        };
        let (db, name) = (
            tme.database_name().into_owned(),
            tme.table_name().into_owned(),
        );
        if !self.cfg.captures_table(&db, &name) {
            return Ok(());
        }
        let id = crate::schema::table_id(&db, &name);
        let Some(table) = self.schemas.tables.get(&id) else {
            return Err(TaskError::fatal(format!("no schema for {id} in the schema history (a table created while the connector was not following DDL?); reset the connector's offsets to take a new snapshot")));
        };
        if tme.columns_count() as usize != table.columns.len() {
            return Err(TaskError::fatal(format!(
                "{id}: the binlog row has {} columns, the schema history {}: the history is out of step with the server",
                tme.columns_count(),
                table.columns.len()
            )));
        }
        let mut source = self.source(ev, &db, &name);
        let cfg = &self.cfg;
        let captured = cfg.captured_columns(&db, &name, &table.columns);
        let mut out = Vec::new();
        for (i, row) in rows.rows(tme).enumerate() {
            let (before, after) =
                row.map_err(|e| TaskError::fatal(format!("cannot decode a row of {id}: {e}")))?;
            source.row = i;
            let decode = |r: Option<mysql_async::binlog::row::BinlogRow>| {
                r.map(|mut r| {
                    let values: Vec<Option<Value>> = (0..table.columns.len())
                        .map(|c| r.take(c).and_then(|v| Value::try_from(v).ok()))
                        .collect();
                    row_json(table, &captured, values, Origin::Binlog)
                })
            };
            out.extend(change_records(
                cfg,
                table,
                &source,
                decode(before),
                decode(after),
                false,
            ));
        }
        self.txn().records.extend(out);
        Ok(())
    }

    /// The snapshot's final batch names the position and the schemas streaming starts from.
    fn snapshot_done(&mut self, batch: &mut Batch) {
        self.snapshot = None;
        if let Some(p) = batch
            .offsets
            .last()
            .and_then(|(_, o)| Position::from_offset(o))
        {
            self.position = p;
        }
        self.schemas.tables = batch
            .state
            .iter()
            .filter_map(|(k, v)| {
                Some((
                    k.strip_prefix("schema/")?.to_string(),
                    serde_json::from_value::<Table>(v.clone()?).ok()?,
                ))
            })
            .collect();
        for key in self.stale_state.drain(..) {
            if !batch.state.iter().any(|(k, _)| *k == key) {
                batch.state.push((key, None));
            }
        }
        self.prepared.clear();
    }

    async fn next_batch(&mut self) -> Result<Option<Batch>, TaskError> {
        if let Some(rx) = &mut self.snapshot {
            return match rx.recv().await {
                Some(Ok(mut batch)) => {
                    if !batch.more {
                        self.snapshot_done(&mut batch);
                    }
                    Ok(Some(batch))
                }
                Some(Err(e)) => Err(e),
                None => Err(TaskError::retriable("the snapshot stopped")),
            };
        }
        if self.stream.is_none() {
            self.stream = Some(self.open_stream().await?);
        }
        loop {
            if self.ready.records.len() >= self.cfg.max_batch_size {
                return Ok(self.take_ready());
            }
            // A large transaction goes out in parts of one Kafka transaction (`more`), so memory
            // stays bounded; its offset comes with the last part. Only committed transactions
            // reach the binlog, except XA ones, which are held until decided.
            if let Some(txn) = self
                .txn
                .as_mut()
                .filter(|t| t.xa.is_none() && t.records.len() >= self.cfg.max_batch_size)
            {
                self.ready.records.append(&mut txn.records);
                self.ready.more = true;
                return Ok(self.take_ready());
            }
            let Some(stream) = self.stream.as_mut() else {
                return Ok(None);
            };
            let event = if !self.ready.is_empty() && self.txn.is_none() {
                // Complete transactions are waiting: add more only if already here.
                match stream.next().now_or_never() {
                    Some(e) => e,
                    None => return Ok(self.take_ready()),
                }
            } else {
                match tokio::time::timeout(Duration::from_millis(500), stream.next()).await {
                    Ok(e) => e,
                    Err(_) => {
                        if self.last_event.elapsed() > SILENCE {
                            self.stream = None;
                            return Err(TaskError::retriable("the binlog connection went silent"));
                        }
                        if let Some(period) = self.cfg.heartbeat_interval {
                            if self.txn.is_none() && self.last_emit.elapsed() >= period {
                                self.last_emit = Instant::now();
                                let mut batch = std::mem::take(&mut self.ready);
                                batch.records.push(heartbeat_record(&self.cfg));
                                batch.offsets = vec![self.position.offset(&self.cfg)];
                                return Ok(Some(batch));
                            }
                        }
                        return Ok(None);
                    }
                }
            };
            self.last_event = Instant::now();
            match event {
                Some(Ok(ev)) => self.handle(ev)?,
                Some(Err(e)) => {
                    self.stream = None;
                    return Err(db_error("reading the binlog", e));
                }
                None => {
                    self.stream = None;
                    return Err(TaskError::retriable("the server closed the binlog stream"));
                }
            }
        }
    }
}

/// FL_GROUP_COMMIT_ID, FL_PREPARED_XA and FL_COMPLETED_XA of a MariaDB GTID event.
const FL_GROUP_COMMIT_ID: u8 = 2;
const FL_XA: u8 = 64 | 128;

/// A MariaDB GTID event's sequence number, domain and, for an XA transaction's prepare or
/// decision, its XID in the form `XA COMMIT` statements write it (`X'..',X'..',N`).
/// Layout: seq_no u64, domain_id u32, flags u8, [commit_id u64], [format_id u32,
/// gtrid_len u8, bqual_len u8, gtrid, bqual]; little-endian.
fn mariadb_gtid(d: &[u8]) -> Option<(u64, u32, Option<String>)> {
    let seq = u64::from_le_bytes(d.get(0..8)?.try_into().ok()?);
    let domain = u32::from_le_bytes(d.get(8..12)?.try_into().ok()?);
    let flags = *d.get(12)?;
    let mut at = 13;
    if flags & FL_GROUP_COMMIT_ID != 0 {
        at += 8;
    }
    let xa = if flags & FL_XA != 0 {
        let format = u32::from_le_bytes(d.get(at..at + 4)?.try_into().ok()?);
        let gtrid_len = usize::from(*d.get(at + 4)?);
        let bqual_len = usize::from(*d.get(at + 5)?);
        let gtrid = d.get(at + 6..at + 6 + gtrid_len)?;
        let bqual = d.get(at + 6 + gtrid_len..at + 6 + gtrid_len + bqual_len)?;
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        Some(format!("x'{}',x'{}',{format}", hex(gtrid), hex(bqual)))
    } else {
        None
    };
    Some((seq, domain, xa))
}

/// An XID as an `XA` statement writes it, normalised (`X'78',X'',1` -> `x'78',x'',1`).
fn xa_id(raw: &str) -> String {
    raw.trim()
        .trim_end_matches("ONE PHASE")
        .trim()
        .to_ascii_lowercase()
}

fn records_json(records: &[Record]) -> Json {
    let list: Vec<Json> = records
        .iter()
        .map(|r| {
            json!({
                "topic": r.topic,
                "key": r.key.as_ref().map(|k| String::from_utf8_lossy(k).into_owned()),
                "value": r.value.as_ref().map(|v| String::from_utf8_lossy(v).into_owned()),
            })
        })
        .collect();
    Json::Array(list)
}

/// The records a prepared XA transaction's state holds.
pub fn records_from_json(v: &Json) -> Vec<Record> {
    v.as_array()
        .map(|list| {
            list.iter()
                .filter_map(|r| {
                    Some(Record {
                        topic: r.get("topic")?.as_str()?.to_string(),
                        key: r
                            .get("key")
                            .and_then(Json::as_str)
                            .map(|s| s.as_bytes().to_vec()),
                        value: r
                            .get("value")
                            .and_then(Json::as_str)
                            .map(|s| s.as_bytes().to_vec()),
                        ..Default::default()
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

pub fn is_xa_key(key: &str) -> Option<&str> {
    key.strip_prefix(XA_PREFIX)
}

impl SourceTask for MySqlTask {
    fn poll(&mut self) -> BoxFuture<'_, Result<Option<Batch>, TaskError>> {
        Box::pin(self.next_batch())
    }
}

impl std::fmt::Debug for MySqlTask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MySqlTask")
            .field("position", &self.position)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gtid_state_and_xa_ids() {
        let mut p = Position::default();
        p.apply_gtid("0-1-5", true);
        p.apply_gtid("1-2-3", true);
        p.apply_gtid("0-1-6", true);
        assert_eq!(p.gtids, "0-1-6,1-2-3");
        assert_eq!(xa_id(" X'7831',X'',1 "), "x'7831',x'',1");
        let mut ev = Vec::new();
        ev.extend_from_slice(&14u64.to_le_bytes());
        ev.extend_from_slice(&0u32.to_le_bytes());
        ev.push(64);
        ev.extend_from_slice(&1u32.to_le_bytes());
        ev.extend_from_slice(&[2, 0, b'x', b'1']);
        assert_eq!(
            mariadb_gtid(&ev),
            Some((14, 0, Some("x'7831',x'',1".into())))
        );
        assert_eq!(mariadb_gtid(&ev[..10]), None);
    }
}
