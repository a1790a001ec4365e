//! Bad input never crashes the broker or disturbs other clients: each malformed frame closes only
//! its own connection (or gets an error code), and a well-behaved connection opened before all of
//! them keeps working throughout.

mod common;

use bytes::{BufMut, Bytes, BytesMut};
use common::wire::{control_batch, raw_request, Conn};
use common::Strom;

use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, MetadataRequest, ResponseKind, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::ResponseError;

fn healthy(conn: &mut Conn) {
    match conn.request(ApiKey::ApiVersions, 3, &ApiVersionsRequest::default()) {
        ResponseKind::ApiVersions(r) => assert_eq!(r.error_code, 0),
        other => panic!("{other:?}"),
    }
}

fn batch(value_len: usize) -> Bytes {
    common::wire::record_batch(
        Some(Bytes::from_static(b"k")),
        Bytes::from(vec![b'v'; value_len]),
    )
}

/// Sends `bytes` on a fresh connection and expects the broker to close it.
fn expect_closed(addr: &str, what: &str, bytes: &[u8]) {
    let mut c = Conn::connect(addr);
    let _ = c.send_raw(bytes);
    assert!(c.closed_by_peer(), "{what}: connection was not closed");
}

#[test]
fn malformed_input_is_refused_and_others_carry_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut strom = Strom::start(dir.path(), &["--max-request-bytes", "4194304"]);
    let addr = strom.addr();
    let mut bystander = Conn::connect(&addr);
    healthy(&mut bystander);

    expect_closed(
        &addr,
        "frame over the max request size",
        &(64 * 1024 * 1024i32).to_be_bytes(),
    );
    expect_closed(&addr, "0x7fffffff length", &i32::MAX.to_be_bytes());
    expect_closed(&addr, "negative length", &(-5i32).to_be_bytes());
    expect_closed(&addr, "frame shorter than a header", &[0, 0, 0, 2, 0, 3]);
    expect_closed(&addr, "unknown api key", &raw_request(999, 0, &[]));
    expect_closed(
        &addr,
        "unsupported version",
        &raw_request(ApiKey::Metadata as i16, 99, &[0, 0, 0, 0]),
    );
    // Metadata v0 claiming 54 million topics in a few bytes (the allocation attack).
    expect_closed(
        &addr,
        "huge array count",
        &raw_request(ApiKey::Metadata as i16, 0, &[0x03, 0x3c, 0x0c, 0x00, 0xb6]),
    );
    expect_closed(
        &addr,
        "i32::MAX array count",
        &raw_request(
            ApiKey::Produce as i16,
            3,
            &[0xff, 0xff, 0, 1, 0, 0, 0x27, 0x10, 0x7f, 0xff, 0xff, 0xff],
        ),
    );
    expect_closed(
        &addr,
        "truncated body",
        &raw_request(ApiKey::CreateTopics as i16, 2, &[0, 0, 0, 1, 0, 5, b'a']),
    );
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for n in 0..200 {
        let mut junk = Vec::new();
        for _ in 0..(n % 64 + 8) {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            junk.push(seed as u8);
        }
        let mut frame = BytesMut::new();
        frame.put_i32(junk.len() as i32);
        frame.extend_from_slice(&junk);
        let mut c = Conn::connect(&addr);
        let _ = c.send_raw(&frame);
        // Either refused (closed) or, if the junk happens to be a valid request, answered.
        let _ = c.read_frame();
    }
    // A frame that announces more than it sends, then the client vanishes.
    {
        let mut c = Conn::connect(&addr);
        c.send_raw(&(900_000i32).to_be_bytes()).unwrap();
        c.send_raw(&[0u8; 100]).unwrap();
    }

    // Request-level errors get Kafka's error codes and keep the connection.
    let mut client = Conn::connect(&addr);
    assert_eq!(client.produce("events", 0, batch(10)).0, 0);
    let mut corrupt = batch(10).to_vec();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    assert_eq!(
        client.produce("events", 0, Bytes::from(corrupt)).0,
        ResponseError::CorruptMessage.code()
    );
    assert_eq!(
        client
            .produce("events", 0, Bytes::from_static(b"not a batch at all"))
            .0,
        ResponseError::CorruptMessage.code()
    );
    assert_eq!(
        client.produce("events", 0, batch(2 * 1024 * 1024 / 2)).0,
        ResponseError::MessageTooLarge.code()
    );
    assert_eq!(
        client.produce("bad/name", 0, batch(10)).0,
        ResponseError::InvalidTopicException.code()
    );
    // Commit and abort markers are the broker's to write.
    assert_eq!(
        client.produce("events", 0, control_batch()).0,
        ResponseError::InvalidRecord.code()
    );
    assert_eq!(client.produce("events", 0, batch(10)).0, 0);
    match client.request(
        ApiKey::Metadata,
        12,
        &MetadataRequest::default().with_topics(Some(vec![
            kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
                .with_name(Some(TopicName(StrBytes::from_static_str("no such topic!")))),
        ])),
    ) {
        ResponseKind::Metadata(m) => assert_eq!(
            m.topics[0].error_code,
            ResponseError::InvalidTopicException.code()
        ),
        other => panic!("{other:?}"),
    }
    // ApiVersions from the future: answered in v0 with UNSUPPORTED_VERSION (KIP-511).
    let mut c = Conn::connect(&addr);
    c.send_raw(&raw_request(ApiKey::ApiVersions as i16, 99, &[]))
        .unwrap();
    let frame = c.read_frame().expect("ApiVersions answer");
    assert_eq!(
        i16::from_be_bytes([frame[4], frame[5]]),
        ResponseError::UnsupportedVersion.code()
    );

    assert!(strom.is_running(), "broker died");
    healthy(&mut bystander);
    assert_eq!(bystander.produce("events", 0, batch(10)).0, 0);
}
