//! Whole transports talking over loopback.

use std::sync::atomic::AtomicUsize;
use std::sync::Mutex;
use std::time::Instant;

use raft::eraftpb::{Entry, Message, MessageType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::handshake::{handshake, Identity, Role};
use super::*;

const SECRET: &[u8] = b"test-secret";
const CLUSTER: &str = "test-cluster";
const WAIT: Duration = Duration::from_secs(4);

#[derive(Default)]
struct Recorder {
    raft: Mutex<Vec<(NodeId, GroupId, Message)>>,
    batches: AtomicUsize,
    rpcs: AtomicUsize,
}

impl Recorder {
    fn raft_len(&self) -> usize {
        self.raft.lock().unwrap().len()
    }
}

impl Inbound for Recorder {
    fn on_raft(&self, from: NodeId, messages: Vec<(GroupId, Message)>) {
        self.batches.fetch_add(1, Ordering::SeqCst);
        let mut raft = self.raft.lock().unwrap();
        raft.extend(messages.into_iter().map(|(g, m)| (from, g, m)));
    }

    fn on_rpc(&self, from: NodeId, request: Bytes) -> Pin<Box<dyn Future<Output = Bytes> + Send>> {
        self.rpcs.fetch_add(1, Ordering::SeqCst);
        Box::pin(async move {
            let text = String::from_utf8_lossy(&request).into_owned();
            // "sleep <ms> ..." answers late, so answers can overtake each other.
            if let Some(ms) = text
                .strip_prefix("sleep ")
                .and_then(|rest| rest.split(' ').next())
                .and_then(|ms| ms.parse().ok())
            {
                tokio::time::sleep(Duration::from_millis(ms)).await;
            }
            Bytes::from(format!("{from}:{text}"))
        })
    }
}

fn config(node_id: NodeId, secret: &[u8]) -> TransportConfig {
    TransportConfig {
        node_id,
        listen: "127.0.0.1:0".parse().unwrap(),
        secret: secret.to_vec(),
        cluster_id: CLUSTER.into(),
        peers: BTreeMap::new(),
        tls: None,
    }
}

async fn start(node_id: NodeId) -> (Arc<Transport>, Arc<Recorder>) {
    start_with(config(node_id, SECRET)).await
}

async fn start_with(config: TransportConfig) -> (Arc<Transport>, Arc<Recorder>) {
    let recorder = Arc::new(Recorder::default());
    let transport = Transport::start(config, recorder.clone()).await.unwrap();
    (transport, recorder)
}

/// Two nodes that know each other.
async fn pair() -> (Arc<Transport>, Arc<Recorder>, Arc<Transport>, Arc<Recorder>) {
    let (a, ra) = start(1).await;
    let (b, rb) = start(2).await;
    a.set_peer(2, b.local_addr());
    b.set_peer(1, a.local_addr());
    (a, ra, b, rb)
}

fn msg(from: NodeId, to: NodeId, index: u64) -> Message {
    let mut m = Message::default();
    m.set_msg_type(MessageType::MsgAppend);
    m.from = from;
    m.to = to;
    m.index = index;
    let e = Entry {
        index: index + 1,
        data: Bytes::from(index.to_be_bytes().to_vec()),
        ..Default::default()
    };
    m.entries = vec![e].into();
    m
}

async fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cond()
}

/// A hand-made connection that has passed the handshake as `node_id`.
async fn raw_connect(addr: SocketAddr, node_id: NodeId) -> TcpStream {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let me = Identity {
        node_id,
        cluster_id: CLUSTER,
        secret: SECRET,
    };
    handshake(&mut stream, Role::Dialer, &me, None, &mut None)
        .await
        .unwrap();
    stream
}

/// Whether the other end closes `stream` soon (EOF or reset), without sending anything.
async fn closed_by_peer(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 16];
    matches!(
        tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

async fn raft_frame(messages: &[(GroupId, Message)]) -> Vec<u8> {
    let encoded: Vec<_> = messages
        .iter()
        .map(|(g, m)| {
            (
                *g,
                Bytes::from(protobuf::Message::write_to_bytes(m).unwrap()),
            )
        })
        .collect();
    let mut out = Vec::new();
    frame::write_raft_batches(&mut out, &encoded).await.unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raft_messages_arrive_in_order_and_batched_both_ways() {
    let (a, ra, b, rb) = pair().await;
    const N: u64 = 20_000;
    const GROUPS: u64 = 50;
    for i in 0..N {
        a.send(2, i % GROUPS, msg(1, 2, i));
        b.send(1, i % GROUPS, msg(2, 1, i));
    }
    let n = N as usize;
    assert!(
        wait_until(WAIT, || ra.raft_len() == n && rb.raft_len() == n).await,
        "delivered {} and {} of {N}",
        rb.raft_len(),
        ra.raft_len()
    );
    for (recorder, from, to) in [(&rb, 1, 2), (&ra, 2, 1)] {
        let got = recorder.raft.lock().unwrap();
        for (i, (f, g, m)) in got.iter().enumerate() {
            let i = i as u64;
            assert_eq!((*f, *g), (from, i % GROUPS));
            assert_eq!(m, &msg(from, to, i));
        }
        let batches = recorder.batches.load(Ordering::SeqCst);
        assert!(batches < n / 2, "{batches} batches for {n} messages");
    }
    assert!(a.is_connected(2) && b.is_connected(1));
    assert_eq!(a.dropped(2) + b.dropped(1), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_round_trip_multiplexed_and_timed_out() {
    let (a, _ra, b, _rb) = pair().await;
    let t = Duration::from_secs(2);
    assert_eq!(
        &a.call(2, Bytes::from("hello"), t).await.unwrap()[..],
        b"1:hello"
    );
    assert_eq!(&b.call(1, Bytes::from("hi"), t).await.unwrap()[..], b"2:hi");

    // Later requests are answered first: each answer must still reach its own caller.
    let mut calls = tokio::task::JoinSet::new();
    for i in 0..20u64 {
        let a = a.clone();
        calls.spawn(async move {
            let req = format!("sleep {} #{i}", (20 - i) * 5);
            let resp = a.call(2, Bytes::from(req.clone()), t).await.unwrap();
            assert_eq!(resp, Bytes::from(format!("1:{req}")));
        });
    }
    while let Some(r) = calls.join_next().await {
        r.unwrap();
    }

    let started = Instant::now();
    let late = a
        .call(2, Bytes::from("sleep 300"), Duration::from_millis(50))
        .await;
    assert!(matches!(late, Err(TransportError::Timeout)), "{late:?}");
    assert!(started.elapsed() < Duration::from_millis(250));
    // The late answer arrives for a caller that is gone; the connection stays usable.
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert!(a.is_connected(2));
    assert_eq!(
        &a.call(2, Bytes::from("again"), t).await.unwrap()[..],
        b"1:again"
    );

    assert!(matches!(
        a.call(9, Bytes::from("x"), t).await,
        Err(TransportError::UnknownPeer(9))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secret_is_rejected() {
    let (a, ra) = start_with(config(1, b"one secret")).await;
    let (b, rb) = start_with(config(2, b"another secret")).await;
    a.set_peer(2, b.local_addr());
    b.set_peer(1, a.local_addr());
    let deadline = Instant::now() + Duration::from_millis(600);
    while Instant::now() < deadline {
        a.send(2, 1, msg(1, 2, 0));
        b.send(1, 1, msg(2, 1, 0));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(ra.raft_len() + rb.raft_len(), 0);
    assert!(!a.is_connected(2) && !b.is_connected(1));
    // Attempts were made, and failed for the right reason.
    let err = a.last_error(2).expect("a connection attempt");
    assert!(err.contains("failed authentication"), "{err}");
    assert!(a.dropped(2) > 0);
    let call = a
        .call(2, Bytes::from("x"), Duration::from_millis(200))
        .await;
    assert!(matches!(call, Err(TransportError::Timeout)), "{call:?}");
    assert_eq!(rb.rpcs.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_node_at_the_dialed_address_is_rejected() {
    let (a, _ra) = start(1).await;
    let (c, rc) = start(3).await;
    // a's peer list says node 2 lives where node 3 listens.
    a.set_peer(2, c.local_addr());
    let deadline = Instant::now() + Duration::from_millis(500);
    while Instant::now() < deadline {
        a.send(2, 1, msg(1, 2, 0));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(rc.raft_len(), 0);
    assert!(!a.is_connected(2));
    let err = a.last_error(2).expect("a connection attempt");
    assert!(
        err.contains("says it is node 3") && err.contains("node 2 was expected"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_frame_closes_only_that_connection() {
    let (a, _ra, b, rb) = pair().await;
    a.send(2, 1, msg(1, 2, 0));
    assert!(wait_until(WAIT, || rb.raft_len() == 1).await);
    let a_conn = shared::lock(&b.shared.inbound_conns).get(&1).map(|c| c.0);
    assert!(a_conn.is_some());

    let valid = raft_frame(&[(7, msg(5, 2, 1))]).await;
    // Claims two messages, carries one valid one: nothing of it may be delivered.
    let mut short = raft_frame(&[(7, msg(5, 2, 1)), (7, msg(5, 2, 2))]).await;
    short.truncate(valid.len());
    let short_len = (short.len() - 4) as u32;
    short[..4].copy_from_slice(&short_len.to_be_bytes());
    let mut not_protobuf = valid.clone();
    let body_start = 4 + 1 + 4 + 12;
    for byte in &mut not_protobuf[body_start..] {
        *byte = 0xff;
    }
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("unknown kind", vec![0, 0, 0, 1, 99]),
        ("empty frame", vec![0, 0, 0, 0]),
        ("oversized", (MAX_FRAME + 1).to_be_bytes().to_vec()),
        ("truncated batch", short),
        ("not protobuf", not_protobuf),
        (
            "short request id",
            vec![0, 0, 0, 5, frame::RPC_REQUEST, 0, 0, 0, 1],
        ),
        (
            "response nobody asked for",
            vec![0, 0, 0, 9, frame::RPC_RESPONSE, 0, 0, 0, 0, 0, 0, 0, 1],
        ),
    ];
    for (name, bytes) in cases {
        let mut raw = raw_connect(b.local_addr(), 5).await;
        raw.write_all(&bytes).await.unwrap();
        assert!(
            closed_by_peer(&mut raw).await,
            "{name}: connection left open"
        );
    }
    // A well-formed frame on the same kind of connection is still served.
    let mut raw = raw_connect(b.local_addr(), 5).await;
    raw.write_all(&valid).await.unwrap();
    assert!(wait_until(WAIT, || rb.raft_len() == 2).await);
    assert_eq!(rb.raft.lock().unwrap()[1].1, 7);

    // Node 1's connection was never touched and still carries traffic.
    a.send(2, 1, msg(1, 2, 1));
    assert!(wait_until(WAIT, || rb.raft_len() == 3).await);
    assert_eq!(
        shared::lock(&b.shared.inbound_conns).get(&1).map(|c| c.0),
        a_conn
    );
    assert!(a.is_connected(2));
    let from_5 = rb.raft.lock().unwrap().iter().filter(|r| r.0 == 5).count();
    assert_eq!(from_5, 1, "only the valid frame from node 5 is delivered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_client_may_not_send_raft() {
    let (b, rb) = start(2).await;
    let mut raw = raw_connect(b.local_addr(), 0).await;
    raw.write_all(&raft_frame(&[(1, msg(0, 2, 1))]).await)
        .await
        .unwrap();
    assert!(closed_by_peer(&mut raw).await);
    assert_eq!(rb.raft_len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_after_the_peer_restarts() {
    let (a, _ra, b, rb) = pair().await;
    a.send(2, 1, msg(1, 2, 0));
    assert!(wait_until(WAIT, || rb.raft_len() == 1).await);
    assert!(a.is_connected(2));

    let b_addr = b.local_addr();
    b.shutdown();
    drop(b);
    assert!(wait_until(WAIT, || !a.is_connected(2)).await);

    // The old listener goes away asynchronously: retry the bind briefly.
    let mut cfg = config(2, SECRET);
    cfg.listen = b_addr;
    cfg.peers.insert(1, a.local_addr());
    let recorder = Arc::new(Recorder::default());
    let deadline = Instant::now() + Duration::from_secs(2);
    let b2 = loop {
        match Transport::start(cfg.clone(), recorder.clone()).await {
            Ok(t) => break t,
            Err(TransportError::Bind { .. }) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            Err(e) => panic!("restart failed: {e}"),
        }
    };
    let deadline = Instant::now() + WAIT;
    let mut i = 1;
    while recorder.raft_len() == 0 && Instant::now() < deadline {
        a.send(2, 1, msg(1, 2, i));
        i += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(recorder.raft_len() > 0, "nothing arrived after the restart");
    assert!(a.is_connected(2));
    // And the restarted node reaches back.
    assert_eq!(
        &b2.call(1, Bytes::from("back"), WAIT).await.unwrap()[..],
        b"2:back"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_connection_fails_calls_in_flight_and_shutdown_fails_the_rest() {
    let (a, _ra, b, _rb) = pair().await;
    let a2 = a.clone();
    let in_flight = tokio::spawn(async move {
        a2.call(2, Bytes::from("sleep 3000"), Duration::from_secs(4))
            .await
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    b.shutdown();
    let r = in_flight.await.unwrap();
    assert!(matches!(r, Err(TransportError::ConnectionLost(2))), "{r:?}");
    assert!(started.elapsed() < Duration::from_secs(1));

    // A call waiting for a connection that cannot be made ends with the transport.
    let a2 = a.clone();
    let waiting =
        tokio::spawn(async move { a2.call(2, Bytes::from("x"), Duration::from_secs(4)).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    a.shutdown();
    let r = waiting.await.unwrap();
    assert!(matches!(r, Err(TransportError::Shutdown)), "{r:?}");
    assert!(matches!(
        a.call(2, Bytes::new(), WAIT).await,
        Err(TransportError::Shutdown)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_call_needs_the_secret() {
    let (b, rb) = start(2).await;
    let t = Duration::from_secs(2);
    let addr = b.local_addr();
    let r = client_call(addr, SECRET, Some(CLUSTER), Bytes::from("status"), t, None).await;
    assert_eq!(&r.unwrap()[..], b"0:status");
    let r = client_call(addr, SECRET, None, Bytes::from("status"), t, None).await;
    assert_eq!(&r.unwrap()[..], b"0:status");
    assert_eq!(rb.rpcs.load(Ordering::SeqCst), 2);

    let r = client_call(addr, b"guess", None, Bytes::from("status"), t, None).await;
    assert!(
        matches!(
            r,
            Err(TransportError::Handshake {
                source: HandshakeError::BadProof(2),
                ..
            })
        ),
        "{r:?}"
    );
    let r = client_call(addr, SECRET, Some("other"), Bytes::from("status"), t, None).await;
    assert!(
        matches!(
            r,
            Err(TransportError::Handshake {
                source: HandshakeError::ClusterMismatch { .. },
                ..
            })
        ),
        "{r:?}"
    );
    assert_eq!(
        rb.rpcs.load(Ordering::SeqCst),
        2,
        "rejected clients reached on_rpc"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connection_is_dropped_after_the_handshake_timeout() {
    let timing = Timing {
        handshake: Duration::from_millis(300),
        ..Timing::default()
    };
    let b = Transport::start_with_timing(config(2, SECRET), Arc::new(Recorder::default()), timing)
        .await
        .unwrap();
    let mut raw = TcpStream::connect(b.local_addr()).await.unwrap();
    let started = Instant::now();
    // b's hello comes at once; then nothing until b gives up on us.
    let mut hello = [0u8; 48 + CLUSTER.len()];
    raw.read_exact(&mut hello).await.unwrap();
    assert_eq!(&hello[..4], b"STRM");
    assert!(closed_by_peer(&mut raw).await);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(2),
        "{waited:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_peer_moves_a_peer() {
    let (b, rb) = start(2).await;
    let unused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let mut cfg = config(1, SECRET);
    cfg.peers.insert(2, unused);
    let (a, _ra) = start_with(cfg).await;
    a.send(2, 1, msg(1, 2, 0));
    assert!(wait_until(WAIT, || a.last_error(2).is_some()).await);
    assert_eq!(rb.raft_len(), 0);

    a.set_peer(2, b.local_addr());
    assert_eq!(a.peers(), vec![(2, b.local_addr())]);
    let deadline = Instant::now() + WAIT;
    while rb.raft_len() == 0 && Instant::now() < deadline {
        a.send(2, 1, msg(1, 2, 1));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(rb.raft_len() > 0);
    assert!(a.is_connected(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_refuses_a_taken_address_and_bad_config() {
    let (b, _rb) = start(2).await;
    let mut cfg = config(3, SECRET);
    cfg.listen = b.local_addr();
    let r = Transport::start(cfg, Arc::new(Recorder::default())).await;
    assert!(matches!(r, Err(TransportError::Bind { .. })));
    for cfg in [config(0, SECRET), config(3, b"")] {
        let r = Transport::start(cfg, Arc::new(Recorder::default())).await;
        assert!(matches!(r, Err(TransportError::Config(_))));
    }
}
