//! Produce requests of the native producer: one built from the partition queues of a
//! leader, and its records settled from the response (or failed with the connection).

use std::time::{Duration, Instant};

use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse};

use super::batch::{self, HEADER_LEN, RECORD_OVERHEAD};
use super::metadata::check;
use super::producer::{InFlight, Queued, Sent, State};
use crate::kafka_conn::Response;

const PRODUCE_VERSION: i16 = 9;

/// A request unanswered for this long fails its records, like librdkafka's
/// `message.timeout.ms` in the other client.
pub(super) const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

impl State<'_> {
    /// One Produce request to `leader` with one batch per partition that has records.
    pub(super) async fn send_request(&mut self, leader: usize) -> anyhow::Result<()> {
        let mut data = Vec::new();
        let mut batches = Vec::new();
        for &p in &self.leaders[leader].partitions {
            let partition = &mut self.partitions[p];
            // As many records as fit in --batch-size (at least one).
            let mut take = 0;
            let mut size = HEADER_LEN;
            for record in &partition.records {
                let record_size = record.value.len() + RECORD_OVERHEAD;
                if take > 0 && size + record_size > self.options.batch_size {
                    break;
                }
                size += record_size;
                take += 1;
            }
            if take == 0 {
                continue;
            }
            partition.bytes -= size - HEADER_LEN;
            let taken: Vec<Queued> = partition.records.drain(..take).collect();
            let clock = self.plan.clock;
            let values = taken.iter().map(|r| {
                let ms = clock.epoch_us(r.intended) / 1000;
                (r.value.clone(), i64::try_from(ms).unwrap_or(i64::MAX))
            });
            batch::encode(&mut self.batch_buf, values, &mut self.scratch)?;
            data.push(
                PartitionProduceData::default()
                    .with_index(partition.id)
                    .with_records(Some(self.batch_buf.split().freeze())),
            );
            batches.push((
                partition.id,
                taken.iter().map(|r| (r.seq, r.intended)).collect(),
            ));
        }
        let request = ProduceRequest::default()
            .with_acks(self.options.acks)
            .with_timeout_ms(REQUEST_TIMEOUT.as_millis() as i32)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(self.topic.clone())
                .with_partition_data(data)]);
        let expect_response = self.options.acks != 0;
        let sent = InFlight {
            sent: Instant::now(),
            batches,
        };
        // Put the records in flight first, so that a failed send fails them too.
        self.leaders[leader].in_flight.push_back(sent);
        let conn = &mut self.leaders[leader].conn;
        conn.send(ApiKey::Produce, PRODUCE_VERSION, &request, expect_response)
            .await?;
        if !expect_response {
            // acks=0: the broker never answers; a record counts as delivered once written,
            // as librdkafka reports it.
            if let Some(done) = self.leaders[leader].in_flight.pop_back() {
                self.settle(done, Ok(Instant::now()));
            }
        }
        Ok(())
    }

    /// Matches a response (or a connection error) with the oldest request of `leader`.
    pub(super) fn on_response(&mut self, leader: usize, result: anyhow::Result<Response>) {
        let response = match result {
            Ok(response) => response,
            Err(err) => return self.fail_leader(leader, &format!("{err:#}")),
        };
        let Some(request) = self.leaders[leader].in_flight.pop_front() else {
            let addr = self.leaders[leader].conn.addr().to_string();
            return self.fail_leader(leader, &format!("{addr}: response without a request"));
        };
        let arrived = response.arrived;
        let decoded: ProduceResponse = match response.decode() {
            Ok(decoded) => decoded,
            Err(err) => {
                let message = format!("{err:#}");
                self.settle(request, Err(&message));
                return self.fail_leader(leader, &message);
            }
        };
        let topic = self.topic.clone();
        for (partition, records) in request.batches {
            let answer = decoded
                .responses
                .iter()
                .filter(|t| t.name == topic)
                .flat_map(|t| &t.partition_responses)
                .find(|p| p.index == partition);
            let name = topic.0.as_str();
            let outcome = match answer {
                None => Err(format!("no produce response for {name}/{partition}")),
                Some(p) => check(p.error_code, || {
                    let detail = p.error_message.as_ref().map_or("", |m| m.as_str());
                    format!("producing to {name}/{partition} {detail}")
                })
                .map_err(|err| format!("{err:#}")),
            };
            match outcome {
                Ok(()) => self.settle_records(records, Ok(arrived)),
                Err(message) => self.settle_records(records, Err(&message)),
            }
        }
    }

    /// Acknowledges (at the given arrival) or fails every record of a request.
    fn settle(&mut self, request: InFlight, outcome: Result<Instant, &str>) {
        for (_, records) in request.batches {
            self.settle_records(records, outcome);
        }
    }

    fn settle_records(&mut self, records: Vec<Sent>, outcome: Result<Instant, &str>) {
        let (measure_from, window_end) = (self.plan.measure_from, self.window_end);
        self.outstanding -= records.len();
        for (seq, intended) in records {
            match outcome {
                Ok(at) => self.stats.ack(intended, at, measure_from, window_end),
                Err(message) => self.stats.fail(seq, || message.to_string()),
            }
        }
    }

    /// A connection failed: its requests and queued records fail, and the producer stops
    /// (the native client does not reconnect or look for a new leader).
    pub(super) fn fail_leader(&mut self, leader: usize, message: &str) {
        while let Some(request) = self.leaders[leader].in_flight.pop_front() {
            self.settle(request, Err(message));
        }
        for p in self.leaders[leader].partitions.clone() {
            let partition = &mut self.partitions[p];
            partition.bytes = 0;
            let records = partition
                .records
                .drain(..)
                .map(|r| (r.seq, r.intended))
                .collect();
            self.settle_records(records, Err(message));
        }
        self.broken = true;
    }

    pub(super) fn fail_all(&mut self, message: &str) {
        for leader in 0..self.leaders.len() {
            self.fail_leader(leader, message);
        }
    }

    /// Fails the connections whose oldest request got no answer within [`REQUEST_TIMEOUT`].
    pub(super) fn expire_requests(&mut self) {
        let now = Instant::now();
        for leader in 0..self.leaders.len() {
            let expired = self.leaders[leader]
                .in_flight
                .front()
                .is_some_and(|req| now >= req.sent + REQUEST_TIMEOUT);
            if expired {
                let addr = self.leaders[leader].conn.addr().to_string();
                let secs = REQUEST_TIMEOUT.as_secs();
                self.fail_leader(leader, &format!("{addr}: no response within {secs} s"));
            }
        }
    }
}
