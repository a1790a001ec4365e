//! Security with real clients and real certificates: TLS on the Kafka, etcd and HTTP listeners,
//! SASL/SCRAM and mutual TLS on Kafka listeners (kcat, confluent-kafka, kafka-python, the CLI,
//! etcdctl, curl), every rejection a client can meet, the ACL table and quotas through
//! confluent-kafka's admin APIs, and a cluster whose nodes talk mutual TLS and enforce the same
//! ACLs at once.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::cluster::{self, start_node};
use common::secure::{make_certs, Secured, ADMIN, ADMIN_PASSWORD};
use common::{cli, free_ports, wait_until, Strom};

#[test]
fn tls_sasl_and_mtls_with_real_clients() {
    let dir = tempfile::tempdir().unwrap();
    let certs = make_certs(dir.path(), &["node", "carol"]);
    let ports = free_ports(2);
    let (etcd, http) = (
        format!("127.0.0.1:{}", ports[0]),
        format!("127.0.0.1:{}", ports[1]),
    );
    let s = Secured::start(
        dir.path(),
        &certs,
        &[
            "--etcd-addr",
            &etcd,
            "--etcd-tls",
            "true",
            "--etcd-client-cert-auth",
            "true",
            "--http-addr",
            &http,
            "--http-tls",
            "true",
        ],
    );
    s.create_user("alice", "alice-secret");
    s.create_user("bob", "bob-secret");
    for p in ["User:alice", "User:bob", "User:carol"] {
        s.grant(&[
            "--topic",
            "sec-",
            "--prefixed",
            "--allow-principal",
            p,
            "--operation",
            "Read,Write,Create,Describe",
        ]);
        s.grant(&[
            "--group",
            "*",
            "--allow-principal",
            p,
            "--operation",
            "Read",
        ]);
    }
    s.grant(&[
        "--topic",
        "sec-secret",
        "--deny-principal",
        "User:alice",
        "--operation",
        "All",
    ]);
    let (ok, users, err) = s.admin(&["user", "list"]);
    assert!(
        ok && users.contains("alice\tSCRAM-SHA-256") && users.contains("bob"),
        "{users}{err}"
    );

    // confluent-kafka and kafka-python: SCRAM-SHA-256/512 over TLS, client certificates,
    // wrong passwords, a denied topic.
    let stdout = common::run_python_args(
        "security_clients.py",
        &[
            &s.sasl_ssl,
            &s.ssl,
            &s.cert("ca.pem"),
            &s.cert("carol.pem"),
            &s.cert("carol-key.pem"),
            "sec-",
        ],
    );
    assert!(stdout.contains("security clients ok"), "{stdout}");

    // kcat: SCRAM-SHA-512 over TLS, then a client certificate on the SSL listener.
    let ca = s.cert("ca.pem");
    let bob = s.sasl_ssl_props(&ca, "SCRAM-SHA-512", "bob", "bob-secret");
    let (ok, out) = s.kcat(
        &s.sasl_ssl,
        &bob,
        &["-P", "-t", "sec-kcat", "-K:"],
        "k1:v1\nk2:v2\n",
    );
    assert!(ok, "kcat produce over SASL_SSL: {out}");
    let carol = [
        ("security.protocol", "SSL"),
        ("ssl.ca.location", ca.as_str()),
        ("ssl.certificate.location", &s.cert("carol.pem")),
        ("ssl.key.location", &s.cert("carol-key.pem")),
    ];
    let (ok, out) = s.kcat(
        &s.ssl,
        &carol,
        &["-C", "-t", "sec-kcat", "-e", "-f", "%k=%s\n"],
        "",
    );
    assert!(
        ok && out.contains("k1=v1") && out.contains("k2=v2"),
        "kcat consume over SSL: {out}"
    );

    // etcdctl over mutual TLS: carol's certificate names her, the ACLs (EtcdKey) say which
    // keys she may read and write; the node's own certificate is a super user.
    s.grant(&[
        "--etcd-key",
        "/app/",
        "--prefixed",
        "--allow-principal",
        "User:carol",
        "--operation",
        "Read,Write",
    ]);
    s.grant(&[
        "--etcd-key",
        "/ro/",
        "--prefixed",
        "--allow-principal",
        "User:carol",
        "--operation",
        "Read",
    ]);
    let etcdctl = |who: Option<&str>, args: &[&str]| {
        let mut cmd = std::process::Command::new("etcdctl");
        cmd.args([
            "--endpoints",
            &format!("https://{etcd}"),
            "--cacert",
            &ca,
            "--command-timeout",
            "5s",
        ]);
        if let Some(who) = who {
            cmd.args([
                "--cert",
                &s.cert(&format!("{who}.pem")),
                "--key",
                &s.cert(&format!("{who}-key.pem")),
            ]);
        }
        let out = cmd
            .args(args)
            .output()
            .expect("etcdctl (scripts/test.sh installs etcd-client)");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };
    let (ok, out) = etcdctl(Some("carol"), &["put", "/app/k", "v1"]);
    assert!(ok, "{out}");
    let (ok, out) = etcdctl(Some("carol"), &["get", "/app/", "--prefix"]);
    assert!(ok && out.contains("v1"), "{out}");
    let (ok, out) = etcdctl(Some("carol"), &["put", "/other", "x"]);
    assert!(
        !ok && out.contains("permission denied"),
        "a key outside her ACLs: {out}"
    );
    let (ok, out) = etcdctl(Some("carol"), &["put", "/ro/k", "x"]);
    assert!(
        !ok && out.contains("permission denied"),
        "Read does not allow Put: {out}"
    );
    let (ok, out) = etcdctl(Some("carol"), &["get", "/", "--prefix"]);
    assert!(
        !ok && out.contains("permission denied"),
        "a range beyond her prefixes: {out}"
    );
    let (ok, out) = etcdctl(Some("node"), &["put", "/other", "by the node"]);
    assert!(ok, "the node's certificate is a super user: {out}");
    let (ok, out) = etcdctl(None, &["get", "/app/k"]);
    assert!(!ok, "no client certificate: {out}");
    let (ok, _) = std::process::Command::new("etcdctl")
        .args([
            "--endpoints",
            &format!("http://{etcd}"),
            "--command-timeout",
            "3s",
            "get",
            "/app/k",
        ])
        .output()
        .map(|o| (o.status.success(), ()))
        .unwrap();
    assert!(!ok, "plaintext gRPC to the TLS etcd listener must fail");
    let login = format!("{ADMIN}:{ADMIN_PASSWORD}");
    let (code, body) = common::curl(&[
        "--cacert",
        &ca,
        "-u",
        &login,
        &format!("https://{http}/metrics"),
    ]);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("# EOF"));
    // The console's key view reads the etcd API over its mutual TLS, as the node.
    let (code, body) = common::curl(&[
        "--cacert",
        &ca,
        "-u",
        &login,
        &format!("https://{http}/v1/kv?prefix=/app/"),
    ]);
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"/app/k\""), "{body}");
    let (code, _) = common::curl(&[&format!("http://{http}/metrics")]);
    assert_ne!(code, 200, "plaintext HTTP to the TLS listener must fail");
}

#[test]
fn every_rejection_is_clear() {
    let dir = tempfile::tempdir().unwrap();
    let certs = make_certs(dir.path(), &["node", "carol"]);
    let (ok, out, err) = cli(
        &[
            "cert",
            "issue",
            "old",
            "--dir",
            certs.to_str().unwrap(),
            "--days",
            "0",
        ],
        "",
    );
    assert!(ok, "{out}{err}");
    let rogue = make_certs(&dir.path().join("rogue"), &["mallory"]);
    let s = Secured::start(
        dir.path(),
        &certs,
        &[
            "--sasl-mechanisms",
            "SCRAM-SHA-256,SCRAM-SHA-512,PLAIN",
            "--sasl-session-lifetime-ms",
            "2000",
            "--max-connections-per-ip",
            "50",
        ],
    );
    s.create_user("alice", "alice-secret");
    let ca = s.cert("ca.pem");

    // KIP-368: sessions last 2 s; librdkafka re-authenticates on its open connection and keeps
    // producing past several lifetimes.
    s.grant(&[
        "--topic",
        "reauth",
        "--allow-principal",
        "User:alice",
        "--operation",
        "Write,Create",
    ]);
    {
        use rdkafka::producer::{FutureProducer, FutureRecord};
        let producer: FutureProducer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &s.sasl_ssl)
            .set("security.protocol", "SASL_SSL")
            .set("ssl.ca.location", &ca)
            .set("sasl.mechanism", "SCRAM-SHA-256")
            .set("sasl.username", "alice")
            .set("sasl.password", "alice-secret")
            .set("message.timeout.ms", "5000")
            .create()
            .unwrap();
        let rt = tokio::runtime::Runtime::new().unwrap();
        for i in 0..4 {
            let sent = rt.block_on(producer.send(
                FutureRecord::<str, str>::to("reauth").payload("x"),
                Duration::from_secs(5),
            ));
            assert!(sent.is_ok(), "record {i} after {} s: {sent:?}", 2 * i);
            std::thread::sleep(Duration::from_millis(2100));
        }
    }

    // Wrong password and unknown user: SASL_AUTHENTICATION_FAILED, same words for both.
    for (user, password) in [("alice", "wrong"), ("nobody", "whatever")] {
        let (ok, _, err) = s.as_user(user, password, &["user", "list"]);
        assert!(!ok && err.contains("invalid credentials"), "{user}: {err}");
        let props = s.sasl_ssl_props(&ca, "SCRAM-SHA-256", user, password);
        let (ok, out) = s.kcat(&s.sasl_ssl, &props, &["-L"], "");
        assert!(
            !ok && out.contains("Authentication"),
            "{user} with kcat: {out}"
        );
    }
    // PLAIN is offered over TLS only.
    let plain = |broker: &str, protocol: &str| {
        let mut props = vec![
            ("security.protocol", protocol),
            ("sasl.mechanism", "PLAIN"),
            ("sasl.username", "alice"),
            ("sasl.password", "alice-secret"),
        ];
        if protocol == "SASL_SSL" {
            props.push(("ssl.ca.location", &ca));
        }
        s.kcat(broker, &props, &["-L"], "")
    };
    let (ok, out) = plain(&s.sasl_plaintext, "SASL_PLAINTEXT");
    assert!(
        !ok && out.contains("PLAIN"),
        "PLAIN without TLS must be refused: {out}"
    );
    let (ok, out) = plain(&s.sasl_ssl, "SASL_SSL");
    assert!(ok, "PLAIN over TLS: {out}");

    // Certificates: another CA's, and an expired one, are refused on the SSL listener.
    let ssl_as = |cert: &str, key: &str| {
        let props = [
            ("security.protocol", "SSL"),
            ("ssl.ca.location", ca.as_str()),
            ("ssl.certificate.location", cert),
            ("ssl.key.location", key),
        ];
        s.kcat(&s.ssl, &props, &["-L"], "")
    };
    let rogue_file = |f: &str| rogue.join(f).to_str().unwrap().to_string();
    let (ok, out) = ssl_as(&rogue_file("mallory.pem"), &rogue_file("mallory-key.pem"));
    assert!(!ok, "a certificate of another CA: {out}");
    let (ok, out) = ssl_as(&s.cert("old.pem"), &s.cert("old-key.pem"));
    assert!(!ok, "an expired certificate: {out}");
    let (ok, out) = ssl_as(&s.cert("carol.pem"), &s.cert("carol-key.pem"));
    assert!(ok, "a valid certificate: {out}");
    // No client certificate at all on the SSL listener.
    let (ok, out) = s.kcat(
        &s.ssl,
        &[("security.protocol", "SSL"), ("ssl.ca.location", &ca)],
        &["-L"],
        "",
    );
    assert!(!ok, "SSL without a client certificate: {out}");

    // Plaintext to a TLS port, TLS to a plaintext port.
    let (ok, out) = s.kcat(&s.sasl_ssl, &[], &["-L", "-m", "5"], "");
    assert!(!ok, "plaintext to the SASL_SSL listener: {out}");
    let tls = [
        ("security.protocol", "SSL"),
        ("ssl.ca.location", ca.as_str()),
    ];
    let (ok, out) = s.kcat(&s.plaintext, &tls, &["-L", "-m", "5"], "");
    assert!(!ok, "TLS to the PLAINTEXT listener: {out}");

    // Before a login only ApiVersions and SASL: a Metadata request closes the connection, and so
    // does a frame larger than the unauthenticated limit (nothing allocated for it).
    let closed_after = |bytes: &[u8]| {
        let mut c = TcpStream::connect(&s.sasl_plaintext).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        c.write_all(bytes).unwrap();
        let mut buf = [0u8; 64];
        matches!(c.read(&mut buf), Ok(0))
    };
    // Metadata v1, correlation id 7, client id "t", all topics (null array).
    let metadata: [u8; 19] = [
        0, 0, 0, 15, 0, 3, 0, 1, 0, 0, 0, 7, 0, 1, b't', 0xff, 0xff, 0xff, 0xff,
    ];
    assert!(
        closed_after(&metadata),
        "Metadata before SASL must close the connection"
    );
    assert!(
        closed_after(&(10i32 << 20).to_be_bytes()),
        "a 10 MiB frame before SASL must close the connection"
    );

    // The authorizer is on (SASL listeners exist): the anonymous plaintext principal sees and
    // writes nothing, the admin everything.
    let (ok, out, err) = s.admin(&["topic", "create", "private"]);
    assert!(ok, "{out}{err}");
    let (ok, out) = s.kcat(&s.plaintext, &[], &["-L"], "");
    assert!(
        ok && !out.contains("private"),
        "ANONYMOUS must not see the topic: {out}"
    );
    let (_, out) = s.kcat(&s.plaintext, &[], &["-P", "-t", "private"], "x\n");
    assert!(
        out.contains("authorization failed"),
        "ANONYMOUS must not write: {out}"
    );
    let (ok, out, err) = s.admin(&["topic", "list"]);
    assert!(ok && out.contains("private"), "{out}{err}");
    hostile_connections(&s);
}

/// A client that opens a TLS connection and never handshakes is cut off at the deadline; one
/// address cannot hold more than `--max-connections-per-ip` (50 here) while others still get in.
fn hostile_connections(s: &Secured) {
    let started = std::time::Instant::now();
    let mut stalled = TcpStream::connect(&s.sasl_ssl).unwrap();
    stalled
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut buf = [0u8; 16];
    let n = stalled.read(&mut buf).unwrap_or(0);
    let waited = started.elapsed();
    assert_eq!(n, 0, "a stalled handshake is closed, not answered");
    assert!(
        waited >= Duration::from_secs(9) && waited < Duration::from_secs(15),
        "closed after {waited:?}, the deadline is 10 s"
    );

    // 127.0.0.2 fills its allowance; the next connection from it is closed at once, while
    // 127.0.0.1 is served, and a freed slot is usable again.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let target: std::net::SocketAddr = s.plaintext.parse().unwrap();
    let from_two = || {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        let stream = rt.block_on(socket.connect(target)).unwrap();
        let stream = stream.into_std().unwrap();
        stream.set_nonblocking(false).unwrap();
        stream
    };
    let closed_at_once = |mut c: TcpStream| {
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        matches!(c.read(&mut [0u8; 1]), Ok(0) | Err(_)) && c.peer_addr().is_ok_and(|a| a == target)
    };
    let held: Vec<TcpStream> = (0..50).map(|_| from_two()).collect();
    // The accept loop admits in order: once the 51st is refused, the 50 were counted.
    assert!(
        closed_at_once(from_two()),
        "the 51st connection from 127.0.0.2 is refused"
    );
    let (ok, out) = s.kcat(&s.plaintext, &[], &["-L"], "");
    assert!(ok, "127.0.0.1 is still served: {out}");
    for c in &held {
        c.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let mut one = [0u8; 1];
        assert!(
            matches!((&*c).read(&mut one), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut),
            "the 50 admitted connections stay open"
        );
    }
    drop(held);
    wait_until(
        "a slot freed for 127.0.0.2",
        Duration::from_secs(10),
        || {
            let mut c = from_two();
            c.set_read_timeout(Some(Duration::from_millis(500)))
                .unwrap();
            let refused = matches!(c.read(&mut [0u8; 1]), Ok(0));
            (!refused, "still refused".into())
        },
    );
}

/// The ACL table (every operation denied, then allowed by an ACL on an open connection; DENY
/// over ALLOW; prefixed patterns; users and ACLs through confluent-kafka's admin APIs) and quotas.
#[test]
fn acl_table_and_quotas_through_confluent_kafka() {
    let dir = tempfile::tempdir().unwrap();
    let ports = free_ports(2);
    let (plain, sasl) = (
        format!("127.0.0.1:{}", ports[0]),
        format!("127.0.0.1:{}", ports[1]),
    );
    let listeners = format!("PLAINTEXT://{plain},SASL_PLAINTEXT://{sasl}");
    let _strom = Strom::start_on_with_env(
        dir.path(),
        ports[0],
        &[
            "--kafka-listeners",
            &listeners,
            "--group-initial-rebalance-delay-ms",
            "0",
        ],
        vec![
            ("STROM_BOOTSTRAP_USER".into(), ADMIN.into()),
            ("STROM_BOOTSTRAP_PASSWORD".into(), ADMIN_PASSWORD.into()),
        ],
    );
    let stdout =
        common::run_python_args("security_acls.py", &[&sasl, ADMIN, ADMIN_PASSWORD, "acl-"]);
    assert!(stdout.contains("security acls ok"), "{stdout}");
}

/// Three nodes with mutual TLS between them: a node with another CA's certificate cannot join,
/// and an ACL created through one node applies on the others' open connections at once.
#[test]
fn cluster_mtls_and_acls_on_every_node() {
    use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
    use rdkafka::ClientConfig;

    let root = tempfile::tempdir().unwrap();
    let certs = make_certs(root.path(), &["node1", "node2", "node3", "node4"]);
    let rogue = make_certs(&root.path().join("rogue"), &["node4"]);
    let ports = free_ports(12);
    let (raft, kafka, sasl) = (&ports[0..4], &ports[4..8], &ports[8..12]);
    let peers: String = (0..3)
        .map(|i| format!("{}@127.0.0.1:{}", i + 1, raft[i]))
        .collect::<Vec<_>>()
        .join(",");
    let args_for = |i: usize, certs: &std::path::Path| -> Vec<String> {
        let file = |f: String| certs.join(f).to_str().unwrap().to_string();
        vec![
            "--kafka-listeners".into(),
            format!(
                "PLAINTEXT://127.0.0.1:{},SASL_PLAINTEXT://127.0.0.1:{}",
                kafka[i], sasl[i]
            ),
            "--tls-cert".into(),
            file(format!("node{}.pem", i + 1)),
            "--tls-key".into(),
            file(format!("node{}-key.pem", i + 1)),
            "--tls-ca".into(),
            file("ca.pem".into()),
            "--raft-tls".into(),
            "true".into(),
            "--bootstrap-user".into(),
            ADMIN.into(),
            "--bootstrap-password".into(),
            ADMIN_PASSWORD.into(),
            "--raft-tick-ms".into(),
            "50".into(),
        ]
    };
    let _nodes: Vec<Strom> = (0..3)
        .map(|i| {
            let args = args_for(i, &certs);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            start_node(root.path(), i + 1, raft[i], kafka[i], &peers, &args)
        })
        .collect();
    let sasl_addr = |i: usize| format!("127.0.0.1:{}", sasl[i]);
    let admin = |i: usize, args: &[&str]| {
        let b = sasl_addr(i);
        let mut all = args.to_vec();
        all.extend([
            "-b",
            b.as_str(),
            "--user",
            ADMIN,
            "--password",
            ADMIN_PASSWORD,
        ]);
        cli(&all, "")
    };
    wait_until(
        "the bootstrap admin on node 3",
        Duration::from_secs(60),
        || {
            let (ok, out, err) = admin(2, &["user", "list"]);
            (ok && out.contains(ADMIN), format!("{out}{err}"))
        },
    );
    let mut create = std::process::Command::new(common::BIN);
    create
        .args([
            "user",
            "create",
            "alice",
            "-b",
            &sasl_addr(0),
            "--user",
            ADMIN,
            "--password",
            ADMIN_PASSWORD,
        ])
        .env("STROM_NEW_PASSWORD", "alice-secret");
    let (ok, out, err) = common::run_with_stdin(&mut create, "");
    assert!(ok, "{out}{err}");
    let (ok, out, err) = admin(
        0,
        &[
            "topic",
            "create",
            "orders",
            "--partitions",
            "3",
            "--replication-factor",
            "3",
        ],
    );
    assert!(ok, "{out}{err}");

    // alice's producer connects through node 3 and keeps its connections open throughout.
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", sasl_addr(2))
        .set("security.protocol", "SASL_PLAINTEXT")
        .set("sasl.mechanism", "SCRAM-SHA-512")
        .set("sasl.username", "alice")
        .set("sasl.password", "alice-secret")
        .set("message.timeout.ms", "5000")
        .set("allow.auto.create.topics", "false")
        .create()
        .unwrap();
    let send = |n: u32| {
        let p = producer.clone();
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async move {
            let payload = format!("r{n}");
            p.send(
                FutureRecord::<str, str>::to("orders")
                    .payload(&payload)
                    .partition((n % 3) as i32),
                Duration::from_secs(5),
            )
            .await
            .map(|_| ())
            .map_err(|(e, _)| e.to_string())
        })
    };
    let err = send(0).expect_err("no ACL yet");
    assert!(err.contains("authorization"), "{err}");
    // Granted through node 1: every partition leader (on any node) lets alice write.
    let (ok, out, err) = admin(
        0,
        &[
            "acl",
            "create",
            "--topic",
            "orders",
            "--allow-principal",
            "User:alice",
            "--operation",
            "Write",
        ],
    );
    assert!(ok, "{out}{err}");
    wait_until(
        "alice may write through every leader",
        Duration::from_secs(10),
        || {
            let r: Vec<_> = (1..=3).map(send).collect();
            (r.iter().all(Result::is_ok), format!("{r:?}"))
        },
    );
    // Revoked through node 2: refused again on the same open connections.
    let (ok, out, err) = admin(
        1,
        &[
            "acl",
            "delete",
            "--topic",
            "orders",
            "--allow-principal",
            "User:alice",
        ],
    );
    assert!(ok && out.contains("1 ACL(s) deleted"), "{out}{err}");
    wait_until("alice refused again", Duration::from_secs(10), || {
        let r: Vec<_> = (4..=6).map(send).collect();
        (
            r.iter()
                .all(|r| r.as_ref().is_err_and(|e| e.contains("authorization"))),
            format!("{r:?}"),
        )
    });
    producer.flush(Duration::from_secs(1)).ok();

    // A fourth node whose certificate another CA signed cannot join: it never registers.
    let rogue_args = {
        let mut a = args_for(3, &rogue);
        a.extend(["--join".to_string(), "true".to_string()]);
        a
    };
    let rogue_args: Vec<&str> = rogue_args.iter().map(String::as_str).collect();
    let _rogue = start_node(root.path(), 4, raft[3], kafka[3], &peers, &rogue_args);
    std::thread::sleep(Duration::from_secs(5));
    let tls = |f: &str| certs.join(f).to_str().unwrap().to_string();
    let status = {
        let addr = format!("127.0.0.1:{}", raft[0]);
        let (ok, out, err) = cli(
            &[
                "cluster",
                "status",
                "--raft-addr",
                &addr,
                "--cluster-secret",
                cluster::SECRET,
                "--tls-cert",
                &tls("node1.pem"),
                "--tls-key",
                &tls("node1-key.pem"),
                "--tls-ca",
                &tls("ca.pem"),
            ],
            "",
        );
        assert!(ok, "cluster status over mutual TLS: {err}");
        out
    };
    // The node table: the lines after its NODE header, up to the blank line.
    let ids: Vec<&str> = status
        .lines()
        .skip_while(|l| !l.starts_with("NODE"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(ids, ["1", "2", "3"], "{status}");
    // And the admin client without a certificate is refused by the Raft listener.
    let addr = format!("127.0.0.1:{}", raft[0]);
    let (ok, _, _) = cli(
        &[
            "cluster",
            "status",
            "--raft-addr",
            &addr,
            "--cluster-secret",
            cluster::SECRET,
        ],
        "",
    );
    assert!(
        !ok,
        "the Raft listener must refuse a client without a certificate"
    );
}
