//! The native consumer: Fetch v12 from each partition leader, one fetch in flight per
//! connection (the next offsets depend on the previous response), no consumer group. Batches
//! are handed out whole; whoever reads them decides whether the records must be decoded.

use std::time::Instant;

use anyhow::bail;
use futures::future::select_all;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{ApiKey, FetchRequest, FetchResponse, TopicName};

use super::batch::{self, Batch};
use super::metadata::{check, list_offsets, Cluster, LATEST};
use crate::kafka_conn::{Connection, Response};

const FETCH_VERSION: i16 = 12;

/// Per-partition byte limit of a fetch.
const PARTITION_MAX_BYTES: i32 = 10 << 20;

/// Byte limit of a whole fetch response.
const MAX_BYTES: i32 = 50 << 20;

/// Where one partition is read.
struct Position {
    partition: i32,
    /// The next offset to fetch.
    offset: i64,
    /// Reading stops at this offset (exclusive), if bounded.
    end: Option<i64>,
}

impl Position {
    fn live(&self) -> bool {
        self.end.is_none_or(|end| self.offset < end)
    }
}

/// The partitions one connection (one leader) serves.
struct Session {
    conn: Connection,
    positions: Vec<Position>,
    fetching: bool,
}

/// Reads a set of partitions of one topic.
pub struct Reader {
    topic: TopicName,
    sessions: Vec<Session>,
    max_wait_ms: i32,
    /// Whole batches of the latest response, with their partition's index in the session.
    batches: Vec<Batch>,
    scratch: Vec<Batch>,
}

impl Reader {
    /// Connects to the leaders of `partitions` and positions each at the offset ListOffsets
    /// gives for `start` ([`super::EARLIEST`] or [`LATEST`]). `bounded` readers stop at the
    /// end offsets seen now; partitions with nothing between start and end are left out.
    pub async fn open(
        cluster: &Cluster,
        partitions: &[i32],
        start: i64,
        bounded: bool,
        max_wait_ms: i32,
    ) -> anyhow::Result<Reader> {
        let mut sessions = Vec::new();
        for (addr, mine) in cluster.by_leader(partitions)? {
            let mut conn = Connection::connect(&addr).await?;
            let starts = list_offsets(&mut conn, &cluster.topic, &mine, start).await?;
            let ends = if bounded {
                Some(list_offsets(&mut conn, &cluster.topic, &mine, LATEST).await?)
            } else {
                None
            };
            let positions = mine
                .iter()
                .map(|p| Position {
                    partition: *p,
                    offset: starts.get(p).copied().unwrap_or(0),
                    end: ends.as_ref().map(|ends| ends.get(p).copied().unwrap_or(0)),
                })
                .filter(Position::live)
                .collect();
            sessions.push(Session {
                conn,
                positions,
                fetching: false,
            });
        }
        Ok(Reader {
            topic: cluster.topic.clone(),
            sessions,
            max_wait_ms,
            batches: Vec::new(),
            scratch: Vec::new(),
        })
    }

    /// True when a bounded reader has reached every end offset.
    pub fn is_done(&self) -> bool {
        self.sessions
            .iter()
            .all(|s| !s.positions.iter().any(Position::live))
    }

    /// Sends a fetch on every idle connection, waits for one response and hands its whole
    /// batches (below the end offsets, control batches left out) to `visit`, with the
    /// response's arrival time.
    pub async fn poll(
        &mut self,
        visit: &mut impl FnMut(&Batch, Instant) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        for index in 0..self.sessions.len() {
            self.start_fetch(index).await?;
        }
        let Some((index, response)) = recv_any(&mut self.sessions).await else {
            return Ok(());
        };
        self.sessions[index].fetching = false;
        let response = response?;
        let arrived = response.arrived;
        self.collect(index, response)?;
        // The next fetch goes out before this response is looked at, so the broker works on
        // it meanwhile.
        self.start_fetch(index).await?;
        let result = self.batches.iter().try_for_each(|b| visit(b, arrived));
        // Dropping the batches lets the connection reuse the response's buffer.
        self.batches.clear();
        result
    }

    /// Sends a fetch for the session's live partitions unless one is in flight.
    async fn start_fetch(&mut self, index: usize) -> anyhow::Result<()> {
        let session = &mut self.sessions[index];
        if session.fetching || !session.positions.iter().any(Position::live) {
            return Ok(());
        }
        let partitions = session
            .positions
            .iter()
            .filter(|p| p.live())
            .map(|p| {
                FetchPartition::default()
                    .with_partition(p.partition)
                    .with_fetch_offset(p.offset)
                    .with_partition_max_bytes(PARTITION_MAX_BYTES)
            })
            .collect();
        let request = FetchRequest::default()
            .with_replica_id((-1).into())
            .with_max_wait_ms(self.max_wait_ms)
            .with_min_bytes(1)
            .with_max_bytes(MAX_BYTES)
            .with_topics(vec![FetchTopic::default()
                .with_topic(self.topic.clone())
                .with_partitions(partitions)]);
        session
            .conn
            .send(ApiKey::Fetch, FETCH_VERSION, &request, true)
            .await?;
        session.fetching = true;
        Ok(())
    }

    /// Splits a fetch response into whole batches and advances the fetch offsets past them.
    fn collect(&mut self, index: usize, response: Response) -> anyhow::Result<()> {
        let fetch: FetchResponse = response.decode()?;
        let addr = self.sessions[index].conn.addr().to_string();
        check(fetch.error_code, || format!("fetch from {addr}"))?;
        let name = self.topic.0.as_str();
        for topic in fetch
            .responses
            .into_iter()
            .filter(|t| t.topic == self.topic)
        {
            for data in topic.partitions {
                let id = data.partition_index;
                check(data.error_code, || format!("fetching {name}/{id}"))?;
                let session = &mut self.sessions[index];
                let Some(position) = session.positions.iter_mut().find(|p| p.partition == id)
                else {
                    bail!("{addr} returned {name}/{id}, which was not fetched");
                };
                let Some(records) = data.records else {
                    continue;
                };
                self.scratch.clear();
                batch::split(records, &mut self.scratch)?;
                for batch in self.scratch.drain(..) {
                    // A broker returns the whole batch holding the fetch offset, which can
                    // start before it: those records were seen with the previous batch.
                    if batch.last_offset < position.offset {
                        continue;
                    }
                    if position.end.is_some_and(|end| batch.base_offset >= end) {
                        position.offset = batch.base_offset;
                        break;
                    }
                    position.offset = batch.last_offset + 1;
                    if !batch.control {
                        self.batches.push(batch);
                    }
                }
            }
        }
        Ok(())
    }
}

/// The next response from any connection with a fetch in flight; `None` if there is none.
async fn recv_any(sessions: &mut [Session]) -> Option<(usize, anyhow::Result<Response>)> {
    let waiting: Vec<_> = sessions
        .iter_mut()
        .enumerate()
        .filter(|(_, s)| s.fetching)
        .map(|(index, s)| Box::pin(async move { (index, s.conn.recv().await) }))
        .collect();
    if waiting.is_empty() {
        return None;
    }
    Some(select_all(waiting).await.0)
}
