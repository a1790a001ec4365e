//! Helpers for the etcd API tests: a broker with the etcd listener on a free port, etcdctl, the
//! etcd-client library.

use std::process::Command;
use std::time::{Duration, Instant};

use etcd_client::Client;

use super::{free_port, Strom};

pub struct Etcd {
    pub strom: Strom,
    pub endpoint: String,
}

pub fn start(dir: &std::path::Path, extra: &[&str]) -> Etcd {
    let endpoint = format!("127.0.0.1:{}", free_port());
    let mut args = vec!["--etcd-addr", endpoint.as_str()];
    args.extend_from_slice(extra);
    let strom = Strom::start(dir, &args);
    wait_listening(&endpoint);
    Etcd { strom, endpoint }
}

pub fn wait_listening(endpoint: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(endpoint).is_err() {
        assert!(
            Instant::now() < deadline,
            "etcd API not listening on {endpoint}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs etcdctl (API v3) against `endpoint`: (success, stdout, stderr).
pub fn etcdctl(endpoint: &str, args: &[&str], stdin: &str) -> (bool, String, String) {
    // Debian package etcd-client; scripts/test.sh installs it.
    super::run_with_stdin(
        Command::new("etcdctl")
            .env("ETCDCTL_API", "3")
            .arg(format!("--endpoints={endpoint}"))
            .args(args),
        stdin,
    )
}

pub fn ctl_ok(endpoint: &str, args: &[&str]) -> String {
    let (ok, out, err) = etcdctl(endpoint, args, "");
    assert!(ok, "etcdctl {args:?} failed: {err}");
    out
}

pub fn json_field(json: &str, field: &str) -> i64 {
    let v: serde_json::Value = serde_json::from_str(json).expect("json");
    v.pointer(field)
        .and_then(|x| x.as_i64())
        .unwrap_or_else(|| panic!("{field} missing in {json}"))
}

pub async fn client(endpoint: &str) -> Client {
    Client::connect([endpoint], None).await.expect("connect")
}

pub fn grpc_status(e: etcd_client::Error) -> tonic::Status {
    match e {
        etcd_client::Error::GRpcStatus(s) => s,
        other => panic!("expected a gRPC status, got {other:?}"),
    }
}

/// The member id of the key-value journal's leader, as `endpoint` sees it.
pub fn leader(endpoint: &str) -> Option<usize> {
    let (ok, out, _) = etcdctl(endpoint, &["endpoint", "status", "-w", "json"], "");
    if !ok {
        return None;
    }
    let v: serde_json::Value = serde_json::from_str(&out).ok()?;
    let id = v.pointer("/0/Status/leader")?.as_u64()?;
    (id > 0).then_some(id as usize)
}

/// Retries a put until one is acknowledged (an election may be under way); its revision.
pub async fn put_until_acked(endpoint: &str, key: &str, value: &str) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(mut c) = etcd_client::Client::connect([endpoint], None).await {
            if let Ok(r) = c.put(key, value, None).await {
                return r.header().unwrap().revision();
            }
        }
        assert!(
            Instant::now() < deadline,
            "no put acknowledged via {endpoint}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Starts node `id` of a cluster with the etcd API on `etcd`: Raft on `raft`, Kafka on
/// `kafka_port`, the given `--peers`, and `extra` flags (`--join`, `--cluster-id`, ...).
pub fn start_node(
    root: &std::path::Path,
    id: usize,
    raft: &str,
    kafka_port: u16,
    peers: &str,
    etcd: &str,
    extra: &[&str],
) -> Strom {
    let id_arg = id.to_string();
    let mut args = vec![
        "--node-id",
        &id_arg,
        "--raft-addr",
        raft,
        "--peers",
        peers,
        "--cluster-secret",
        super::cluster::SECRET,
        "--etcd-addr",
        etcd,
    ];
    args.extend_from_slice(extra);
    Strom::start_on(&root.join(format!("node{id}")), kafka_port, &args, &[])
}
