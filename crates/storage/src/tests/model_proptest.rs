//! The log against a reference model: a Vec of (base offset, stored bytes).

use proptest::prelude::*;

use super::builder::{batch_with, stored};
use crate::batch::BatchHeader;
use crate::log::{Log, LogConfig};

#[derive(Debug, Clone)]
enum Op {
    Append {
        records: i32,
        payload_len: usize,
        ts: i64,
    },
    Read {
        offset_pick: u64,
        max_bytes: usize,
        upper_pick: u64,
    },
    Truncate {
        pick: usize,
    },
    Retain {
        keep_bytes: u64,
    },
    Sync,
    CloseReopen,
    DropReopen,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (1..6i32, 0..300usize, 0..10_000i64)
            .prop_map(|(records, payload_len, ts)| Op::Append { records, payload_len, ts }),
        4 => (any::<u64>(), 0..1_500usize, any::<u64>())
            .prop_map(|(offset_pick, max_bytes, upper_pick)| Op::Read { offset_pick, max_bytes, upper_pick }),
        1 => any::<usize>().prop_map(|pick| Op::Truncate { pick }),
        1 => (500..5_000u64).prop_map(|keep_bytes| Op::Retain { keep_bytes }),
        1 => Just(Op::Sync),
        1 => Just(Op::CloseReopen),
        1 => Just(Op::DropReopen),
    ]
}

struct Model {
    batches: Vec<(u64, Vec<u8>)>,
    next_offset: u64,
}

impl Model {
    fn start(&self) -> u64 {
        self.batches.first().map_or(self.next_offset, |(b, _)| *b)
    }

    fn last_offset(bytes: &[u8]) -> u64 {
        BatchHeader::parse(bytes).unwrap().last_offset() as u64
    }

    /// Index of the batch containing `offset`.
    fn containing(&self, offset: u64) -> Option<usize> {
        self.batches
            .iter()
            .position(|(_, b)| Self::last_offset(b) >= offset)
    }
}

fn check_read(log: &Log, model: &Model, offset: u64, max_bytes: usize, upper: u64) {
    let result = log.read(offset, max_bytes, upper);
    if offset < model.start() || offset > model.next_offset {
        assert!(result.is_err(), "offset {offset} should be out of range");
        return;
    }
    let result = result.unwrap();
    let upper = upper.min(model.next_offset);
    if offset >= upper {
        assert!(result.bytes.is_empty());
        return;
    }
    let first = model.containing(offset).unwrap();
    if model.batches[first].0 >= upper {
        assert!(result.bytes.is_empty());
        return;
    }
    assert_eq!(result.first_offset, model.batches[first].0);
    let mut expected = Vec::new();
    for (i, (base, bytes)) in model.batches[first..].iter().enumerate() {
        if expected.len() == result.bytes.len() {
            break;
        }
        assert!(
            *base < upper,
            "batch at {base} is at or above the bound {upper}"
        );
        assert!(
            i == 0 || expected.len() + bytes.len() <= max_bytes,
            "max_bytes exceeded"
        );
        expected.extend_from_slice(bytes);
    }
    assert!(!expected.is_empty());
    assert_eq!(&result.bytes[..], &expected[..]);
}

fn check_all(log: &Log, model: &Model) {
    assert_eq!(log.next_offset(), model.next_offset);
    assert_eq!(log.log_start_offset(), model.start());
    assert!(log.durable_offset() <= log.next_offset());
    let expected: Vec<u8> = model.batches.iter().flat_map(|(_, b)| b.clone()).collect();
    let mut offset = model.start();
    let mut got = Vec::new();
    while offset < model.next_offset {
        let result = log.read(offset, 4_096, u64::MAX).unwrap();
        assert!(!result.bytes.is_empty());
        let mut pos = 0;
        while pos < result.bytes.len() {
            let header = BatchHeader::parse(&result.bytes[pos..]).unwrap();
            offset = header.last_offset() as u64 + 1;
            pos += header.total_len();
        }
        got.extend_from_slice(&result.bytes);
    }
    assert_eq!(got, expected);
    assert_eq!(log.size_bytes(), expected.len() as u64);

    let timestamps: Vec<(u64, i64)> = model
        .batches
        .iter()
        .map(|(b, bytes)| (*b, BatchHeader::parse(bytes).unwrap().max_timestamp))
        .collect();
    for query in [i64::MIN, 0, 2_500, 5_000, 7_500, 9_999, 10_000] {
        let want = timestamps.iter().find(|(_, ts)| *ts >= query).copied();
        assert_eq!(
            log.offset_for_timestamp(query, 0).unwrap(),
            want,
            "ts {query}"
        );
    }
    let max = timestamps.iter().map(|(_, ts)| *ts).max();
    let want = max.and_then(|m| timestamps.iter().find(|(_, ts)| *ts == m).copied());
    assert_eq!(log.max_timestamp().unwrap(), want);
}

fn run(config: LogConfig, ops: Vec<Op>) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Some(Log::open(dir.path(), config.clone()).unwrap());
    let mut model = Model {
        batches: Vec::new(),
        next_offset: 0,
    };
    for op in ops {
        let current = log.as_mut().unwrap();
        match op {
            Op::Append {
                records,
                payload_len,
                ts,
            } => {
                let raw = batch_with(records, payload_len, ts);
                crate::batch::validate(&raw).unwrap();
                let info = current.append(&raw, 1, ts).unwrap();
                assert_eq!(info.base_offset, model.next_offset);
                model
                    .batches
                    .push((info.base_offset, stored(&raw, info.base_offset, 1)));
                model.next_offset = info.last_offset + 1;
            }
            Op::Read {
                offset_pick,
                max_bytes,
                upper_pick,
            } => {
                let span = model.next_offset + 2;
                let offset = offset_pick % span;
                let upper = if upper_pick % 4 == 0 {
                    u64::MAX
                } else {
                    upper_pick % span
                };
                check_read(current, &model, offset, max_bytes, upper);
            }
            Op::Truncate { pick } => {
                let index = pick % (model.batches.len() + 1);
                let offset = model
                    .batches
                    .get(index)
                    .map_or(model.next_offset, |(b, _)| *b);
                let was_durable = current.durable_offset();
                current.truncate_suffix(offset).unwrap();
                if index < model.batches.len() {
                    assert_eq!(current.durable_offset(), offset, "truncation fsyncs");
                } else {
                    assert_eq!(current.durable_offset(), was_durable, "no-op");
                }
                model.batches.truncate(index);
                model.next_offset = offset;
            }
            Op::Retain { keep_bytes } => {
                let mut retaining = config.clone();
                retaining.retention_bytes = Some(keep_bytes);
                current.set_config(retaining);
                current.apply_retention(0).unwrap();
                current.set_config(config.clone());
                let start = current.log_start_offset();
                let kept_from = model
                    .batches
                    .iter()
                    .position(|(b, _)| *b == start)
                    .unwrap_or(model.batches.len());
                assert!(kept_from < model.batches.len() || start == model.next_offset);
                model.batches.drain(..kept_from);
            }
            Op::Sync => {
                current.sync().unwrap();
                assert_eq!(current.durable_offset(), current.next_offset());
            }
            Op::CloseReopen => {
                log.take().unwrap().close().unwrap();
                log = Some(Log::open(dir.path(), config.clone()).unwrap());
            }
            Op::DropReopen => {
                drop(log.take());
                log = Some(Log::open(dir.path(), config.clone()).unwrap());
            }
        }
        check_all(log.as_ref().unwrap(), &model);
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn log_matches_model(
        segment_bytes in 150..3_000u64,
        index_interval_bytes in prop_oneof![Just(0u32), Just(64), Just(256), Just(4_096)],
        ops in proptest::collection::vec(op(), 1..50),
    ) {
        let config = LogConfig {
            segment_bytes,
            segment_ms: u64::MAX / 2,
            retention_ms: None,
            retention_bytes: None,
            index_interval_bytes,
        };
        run(config, ops);
    }
}
