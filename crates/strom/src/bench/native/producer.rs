//! The native producer loop: the same schedule and accounting as the librdkafka loop
//! ([`crate::bench::plan`]), with its own batching and connections so that the client adds
//! little of its own to the latency. Everything of one producer runs on its thread: records
//! are queued per partition, and a leader's connection gets a Produce request (one batch per
//! partition) whenever a batch is full, the linger has passed, or, with linger 0, as soon as
//! the in-flight window has room. Records that queue up while requests are in flight go out
//! together in the next request.

use std::collections::VecDeque;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use futures::future::select_all;
use kafka_protocol::messages::TopicName;
use kafka_protocol::records::Record;

use super::batch::{HEADER_LEN, RECORD_OVERHEAD};
use super::requests::REQUEST_TIMEOUT;
use super::timer::PreciseTimer;
use super::{ProduceOptions, ProducerSetup};
use crate::bench::plan::{Plan, Stats, YIELD_EVERY};
use crate::kafka_conn::{Connection, Response};

/// A record waiting for its batch to be sent.
pub(super) struct Queued {
    pub(super) seq: u64,
    pub(super) intended: Instant,
    pub(super) queued_at: Instant,
    pub(super) value: Bytes,
}

/// One partition's queue.
pub(super) struct Partition {
    pub(super) id: i32,
    pub(super) records: VecDeque<Queued>,
    /// Estimated encoded size of `records`.
    pub(super) bytes: usize,
}

/// A sent request awaiting its response: per partition, the records it carried.
pub(super) struct InFlight {
    pub(super) sent: Instant,
    pub(super) batches: Vec<(i32, Vec<Sent>)>,
}

/// The connection to one partition leader and its requests awaiting an answer, oldest first.
pub(super) struct Leader {
    pub(super) conn: Connection,
    /// Indexes into `State::partitions` of the partitions it leads.
    pub(super) partitions: Vec<usize>,
    pub(super) in_flight: VecDeque<InFlight>,
}

/// A record of a sent request: sequence number and intended send time.
pub(super) type Sent = (u64, Instant);

/// What ended a wait.
enum Event {
    Response(usize, anyhow::Result<Response>),
    Timer(std::io::Result<()>),
}

/// Everything one producer owns.
pub(super) struct State<'a> {
    pub(super) plan: &'a Plan,
    pub(super) options: ProduceOptions,
    pub(super) topic: TopicName,
    pub(super) leaders: Vec<Leader>,
    pub(super) partitions: Vec<Partition>,
    pub(super) stats: Stats,
    pub(super) window_end: Instant,
    /// Records queued or in flight (the `--max-outstanding` window).
    pub(super) outstanding: usize,
    pub(super) timer: PreciseTimer,
    /// Set when a connection failed: its records were failed, and the producer stops.
    pub(super) broken: bool,
    pub(super) batch_buf: BytesMut,
    pub(super) scratch: Vec<Record>,
}

/// One producer: send per the plan, then wait for every outstanding acknowledgement.
pub async fn run(setup: ProducerSetup, plan: Plan) -> anyhow::Result<Stats> {
    let mut state = State::new(setup, &plan).await?;
    let template = Bytes::copy_from_slice(&plan.payload);
    let mut seq = 0u64;
    while !state.broken && plan.max_records.is_none_or(|max| seq < max) {
        state.settle_arrived();
        // Let the runtime look at the sockets now and then, even if the producer never waits.
        if seq % YIELD_EVERY == YIELD_EVERY - 1 {
            tokio::task::yield_now().await;
        }
        let due = plan.due(seq);
        if due.is_some_and(|due| due >= state.window_end) {
            break;
        }
        while state.outstanding >= plan.max_outstanding && !state.broken {
            state.step(None).await;
        }
        if let Some(due) = due {
            while Instant::now() < due && !state.broken {
                state.step(Some(due)).await;
            }
        }
        let now = Instant::now();
        if state.broken || (due.is_none() && now >= state.window_end) {
            break;
        }
        let intended = due.unwrap_or(now);
        let value = if plan.stamp_run.is_some() {
            let mut buf = plan.payload.to_vec();
            plan.stamp(&mut buf, seq, intended);
            Bytes::from(buf)
        } else {
            // Unstamped payloads are all the same bytes: share them.
            template.clone()
        };
        state.enqueue(seq, intended, now, value);
        state.send_ready().await;
        seq += 1;
    }
    state.stats.attempted = seq;
    while state.outstanding > 0 && !state.broken {
        state.step(None).await;
    }
    Ok(state.stats)
}

impl<'a> State<'a> {
    async fn new(setup: ProducerSetup, plan: &'a Plan) -> anyhow::Result<State<'a>> {
        let mut leaders = Vec::with_capacity(setup.connections.len());
        for (addr, stream) in setup.connections {
            leaders.push(Leader {
                conn: Connection::adopt(&addr, stream).await?,
                partitions: Vec::new(),
                in_flight: VecDeque::new(),
            });
        }
        let mut partitions = Vec::with_capacity(plan.partitions.len());
        for (index, (&id, &leader)) in plan.partitions.iter().zip(&setup.leader_of).enumerate() {
            leaders[leader].partitions.push(index);
            partitions.push(Partition {
                id,
                records: VecDeque::new(),
                bytes: 0,
            });
        }
        Ok(State {
            plan,
            options: setup.options,
            topic: setup.topic,
            leaders,
            partitions,
            stats: Stats::new(plan.id)?,
            window_end: plan.window_end(),
            outstanding: 0,
            timer: PreciseTimer::new()?,
            broken: false,
            batch_buf: BytesMut::new(),
            scratch: Vec::new(),
        })
    }

    fn enqueue(&mut self, seq: u64, intended: Instant, now: Instant, value: Bytes) {
        let partition = &mut self.partitions[self.plan.partition_index(seq)];
        partition.bytes += value.len() + RECORD_OVERHEAD;
        partition.records.push_back(Queued {
            seq,
            intended,
            queued_at: now,
            value,
        });
        self.outstanding += 1;
    }

    /// Sends what is ready, then waits for one event: a response, the linger of a queued
    /// batch, or `until`.
    async fn step(&mut self, until: Option<Instant>) {
        self.send_ready().await;
        if self.broken {
            return;
        }
        let awaiting: usize = self.leaders.iter().map(|l| l.conn.awaiting()).sum();
        let deadline = [until, self.linger_deadline(), self.timeout_deadline()]
            .into_iter()
            .flatten()
            .min();
        if awaiting == 0 && deadline.is_none() {
            return; // Nothing can happen; the caller's condition has changed.
        }
        let event = {
            let (leaders, timer) = (&mut self.leaders, &self.timer);
            tokio::select! {
                biased;
                (index, result) = recv_any(leaders), if awaiting > 0 => Event::Response(index, result),
                result = sleep(timer, deadline) => Event::Timer(result),
            }
        };
        match event {
            Event::Response(index, result) => self.on_response(index, result),
            Event::Timer(Ok(())) => {}
            Event::Timer(Err(err)) => self.fail_all(&format!("precise timer: {err}")),
        }
        self.expire_requests();
    }

    /// Handles responses that have arrived already, without waiting.
    fn settle_arrived(&mut self) {
        for index in 0..self.leaders.len() {
            loop {
                match self.leaders[index].conn.try_recv() {
                    Ok(Some(response)) => self.on_response(index, Ok(response)),
                    Ok(None) => break,
                    Err(err) => {
                        self.on_response(index, Err(err));
                        break;
                    }
                }
            }
        }
    }

    /// Sends every request that is due, as far as the in-flight windows allow.
    async fn send_ready(&mut self) {
        let now = Instant::now();
        for index in 0..self.leaders.len() {
            while !self.broken && self.has_room(index) && self.leader_ready(index, now) {
                if let Err(err) = self.send_request(index).await {
                    self.fail_leader(index, &format!("{err:#}"));
                }
            }
        }
    }

    /// With acks=0 nothing stays in flight, so only the record window limits sending.
    fn has_room(&self, leader: usize) -> bool {
        self.options.acks == 0 || self.leaders[leader].in_flight.len() < self.options.max_in_flight
    }

    /// True if one of the leader's partitions has a full batch or one whose linger passed.
    fn leader_ready(&self, leader: usize, now: Instant) -> bool {
        self.leaders[leader].partitions.iter().any(|&p| {
            let partition = &self.partitions[p];
            partition.records.front().is_some_and(|first| {
                partition.bytes + HEADER_LEN >= self.options.batch_size
                    || now.saturating_duration_since(first.queued_at) >= self.options.linger
            })
        })
    }

    /// When the earliest linger expires among leaders that could send then.
    fn linger_deadline(&self) -> Option<Instant> {
        (0..self.leaders.len())
            .filter(|&leader| self.has_room(leader))
            .flat_map(|leader| &self.leaders[leader].partitions)
            .filter_map(|&p| self.partitions[p].records.front())
            .map(|first| first.queued_at + self.options.linger)
            .min()
    }

    /// When the oldest unanswered request times out.
    fn timeout_deadline(&self) -> Option<Instant> {
        self.leaders
            .iter()
            .filter_map(|l| l.in_flight.front())
            .map(|req| req.sent + REQUEST_TIMEOUT)
            .min()
    }
}

/// The next response from any leader with requests in flight.
async fn recv_any(leaders: &mut [Leader]) -> (usize, anyhow::Result<Response>) {
    if let [only] = leaders {
        return (0, only.conn.recv().await);
    }
    let waiting: Vec<_> = leaders
        .iter_mut()
        .enumerate()
        .filter(|(_, leader)| leader.conn.awaiting() > 0)
        .map(|(index, leader)| Box::pin(async move { (index, leader.conn.recv().await) }))
        .collect();
    if waiting.is_empty() {
        return std::future::pending().await;
    }
    select_all(waiting).await.0
}

/// Sleeps until `deadline`, or forever without one.
async fn sleep(timer: &PreciseTimer, deadline: Option<Instant>) -> std::io::Result<()> {
    match deadline {
        Some(at) => timer.sleep_until(at).await,
        None => std::future::pending().await,
    }
}
