//! A minimal raw Kafka client for tests that must send exactly the bytes they mean (bad input)
//! or look at exact error codes.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, InitProducerIdRequest, ProduceRequest, ProducerId, RequestHeader, ResponseHeader,
    ResponseKind, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

pub struct Conn {
    stream: TcpStream,
    correlation: i32,
}

impl Conn {
    pub fn connect(addr: &str) -> Conn {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        Conn {
            stream,
            correlation: 0,
        }
    }

    /// Like [`Conn::connect`], but `None` if the broker cannot be reached within `timeout`;
    /// reads then wait at most `timeout` too.
    pub fn try_connect(addr: &str, timeout: Duration) -> Option<Conn> {
        let addr = addr.parse().ok()?;
        let stream = TcpStream::connect_timeout(&addr, timeout).ok()?;
        stream.set_read_timeout(Some(timeout)).ok()?;
        stream.set_write_timeout(Some(timeout)).ok()?;
        Some(Conn {
            stream,
            correlation: 0,
        })
    }

    pub fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// A well-formed request of `api` at `version` with the given encodable body.
    pub fn send<T: Encodable>(&mut self, api: ApiKey, version: i16, body: &T) -> i32 {
        self.correlation += 1;
        let mut buf = BytesMut::new();
        let header = RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str("strom-test")));
        header
            .encode(&mut buf, api.request_header_version(version))
            .unwrap();
        body.encode(&mut buf, version).unwrap();
        let mut frame = BytesMut::new();
        frame.put_i32(buf.len() as i32);
        frame.extend_from_slice(&buf);
        self.stream.write_all(&frame).expect("send");
        self.correlation
    }

    /// Reads one response frame; `None` if the broker closed the connection.
    pub fn read_frame(&mut self) -> Option<Bytes> {
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len).ok()?;
        let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut body).ok()?;
        Some(Bytes::from(body))
    }

    pub fn request<T: Encodable>(&mut self, api: ApiKey, version: i16, body: &T) -> ResponseKind {
        let id = self.send(api, version, body);
        let mut frame = self.read_frame().expect("response");
        let header =
            ResponseHeader::decode(&mut frame, api.response_header_version(version)).unwrap();
        assert_eq!(header.correlation_id, id);
        ResponseKind::decode(api, &mut frame, version).unwrap()
    }

    /// Like [`Conn::request`], but `None` if the connection fails or times out.
    pub fn try_request<T: Encodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        body: &T,
    ) -> Option<ResponseKind> {
        self.correlation += 1;
        let mut buf = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str("strom-test")))
            .encode(&mut buf, api.request_header_version(version))
            .ok()?;
        body.encode(&mut buf, version).ok()?;
        let mut frame = BytesMut::new();
        frame.put_i32(buf.len() as i32);
        frame.extend_from_slice(&buf);
        self.stream.write_all(&frame).ok()?;
        let mut frame = self.read_frame()?;
        let header =
            ResponseHeader::decode(&mut frame, api.response_header_version(version)).ok()?;
        if header.correlation_id != self.correlation {
            return None;
        }
        ResponseKind::decode(api, &mut frame, version).ok()
    }

    /// Produce with acks=all of `records` to one partition: (error code, base offset).
    pub fn produce(&mut self, topic: &str, partition: i32, records: Bytes) -> (i16, i64) {
        let req = produce_request(topic, partition, records);
        match self.request(ApiKey::Produce, 9, &req) {
            ResponseKind::Produce(r) => {
                let p = &r.responses[0].partition_responses[0];
                (p.error_code, p.base_offset)
            }
            other => panic!("{other:?}"),
        }
    }

    /// True if the broker has closed this connection (EOF within the timeout).
    pub fn closed_by_peer(&mut self) -> bool {
        let mut b = [0u8; 1];
        matches!(self.stream.read(&mut b), Ok(0))
            || matches!(self.stream.read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset)
    }
}

/// A raw frame: length prefix, then `api key, version, correlation id, null client id`, then `body`.
pub fn raw_request(api_key: i16, version: i16, body: &[u8]) -> Vec<u8> {
    let mut b = BytesMut::new();
    b.put_i16(api_key);
    b.put_i16(version);
    b.put_i32(7);
    b.put_i16(-1);
    b.extend_from_slice(body);
    let mut f = BytesMut::new();
    f.put_i32(b.len() as i32);
    f.extend_from_slice(&b);
    f.to_vec()
}

/// Skips a response header v0 (just the correlation id).
pub fn skip_header(frame: &mut Bytes) -> i32 {
    frame.get_i32()
}

/// A valid uncompressed RecordBatch v2 holding one record with `key` and `value`.
pub fn record_batch(key: Option<Bytes>, value: Bytes) -> Bytes {
    record_batch_at(key, value, 1_700_000_000_000)
}

/// [`record_batch`] with the record's timestamp.
pub fn record_batch_at(key: Option<Bytes>, value: Bytes, timestamp_ms: i64) -> Bytes {
    batch_of(key, value, timestamp_ms, false)
}

/// A control batch, as only brokers may write them (a commit marker's shape).
pub fn control_batch() -> Bytes {
    let marker_key = Bytes::from_static(&[0, 0, 0, 1]);
    batch_of(
        Some(marker_key),
        Bytes::from_static(&[0, 0, 0, 0, 0, 0]),
        1_700_000_000_000,
        true,
    )
}

fn batch_of(key: Option<Bytes>, value: Bytes, timestamp_ms: i64, control: bool) -> Bytes {
    let record = Record {
        transactional: control,
        control,
        partition_leader_epoch: 0,
        producer_id: -1,
        producer_epoch: -1,
        timestamp_type: TimestampType::Creation,
        offset: 0,
        sequence: -1,
        timestamp: timestamp_ms,
        key,
        value: Some(value),
        headers: Default::default(),
        delete_horizon: false,
    };
    let mut buf = BytesMut::new();
    let opts = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, [&record], &opts).expect("encode batch");
    buf.freeze()
}

/// A Produce request (acks=all, 10 s timeout) of `records` to one partition.
pub fn produce_request(topic: &str, partition: i32, records: Bytes) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_string())))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(records))])])
}

/// One batch of `count` records from `pid`/`epoch`, sequences `seq..seq + count`.
pub fn idempotent_batch(pid: i64, epoch: i16, seq: i32, count: i32) -> Bytes {
    let values: Vec<String> = (seq..seq + count).map(|s| format!("seq-{s}")).collect();
    producer_batch(pid, epoch, seq, &values, false)
}

/// One batch of `values` from `pid`/`epoch` with sequences `seq..`, with the transactional
/// attribute bit (0x10) set when `transactional`.
pub fn producer_batch<V: AsRef<str>>(
    pid: i64,
    epoch: i16,
    seq: i32,
    values: &[V],
    transactional: bool,
) -> Bytes {
    let records: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            transactional,
            control: false,
            partition_leader_epoch: 0,
            producer_id: pid,
            producer_epoch: epoch,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: seq + i as i32,
            timestamp: 1_700_000_000_000,
            key: None,
            value: Some(Bytes::from(v.as_ref().to_string())),
            headers: Default::default(),
            delete_horizon: false,
        })
        .collect();
    let mut buf = BytesMut::new();
    let opts = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut buf, records.iter(), &opts).expect("encode batch");
    buf.freeze()
}

/// InitProducerId at version `v`, bumping `current` if given: (error code, id, epoch).
pub fn init_producer_id(conn: &mut Conn, v: i16, current: Option<(i64, i16)>) -> (i16, i64, i16) {
    let (pid, epoch) = current.unwrap_or((-1, -1));
    let req = InitProducerIdRequest::default()
        .with_transactional_id(None)
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(pid))
        .with_producer_epoch(epoch);
    match conn.request(ApiKey::InitProducerId, v, &req) {
        ResponseKind::InitProducerId(r) => (r.error_code, r.producer_id.0, r.producer_epoch),
        r => panic!("{r:?}"),
    }
}
