//! The HTTP listener under the authorizer, with curl and the CLI over HTTPS: HTTP Basic logins
//! as the Kafka listeners' SCRAM users, each API's rule (probes open, the admin and connector
//! APIs behind cluster ACLs), the HTTP proxy acting as its caller so the topic and group ACLs
//! decide, consumer instances private to their creator, and the console's key ACLs.

mod common;

use std::time::Duration;

use common::secure::{make_certs, Secured, ADMIN, ADMIN_PASSWORD};
use common::{cli, curl, free_ports, wait_until};
use serde_json::{json, Value};

const V2: &str = "Content-Type: application/vnd.kafka.v2+json";
const JSON: &str = "Content-Type: application/vnd.kafka.json.v2+json";

struct Https {
    addr: String,
    ca: String,
}

impl Https {
    /// `method path` as `login` ("user:password", or none): (status, body).
    fn call(&self, login: Option<&str>, method: &str, path: &str, extra: &[&str]) -> (u16, String) {
        let url = format!("https://{}{path}", self.addr);
        let mut args = vec!["--cacert", &self.ca, "-X", method];
        if let Some(l) = login {
            args.extend(["-u", l]);
        }
        args.extend_from_slice(extra);
        args.push(&url);
        curl(&args)
    }

    fn get(&self, login: Option<&str>, path: &str) -> (u16, String) {
        self.call(login, "GET", path, &[])
    }

    fn send(
        &self,
        login: &str,
        method: &str,
        path: &str,
        ctype: &str,
        body: &Value,
    ) -> (u16, Value) {
        let body = body.to_string();
        let (code, text) = self.call(Some(login), method, path, &["-H", ctype, "--data", &body]);
        (code, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

const ALICE: &str = "alice:alice-secret";
const BOB: &str = "bob:bob-secret";

#[test]
fn http_logins_and_acls() {
    let dir = tempfile::tempdir().unwrap();
    let certs = make_certs(dir.path(), &["node"]);
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
            "--http-addr",
            &http,
            "--http-tls",
            "true",
        ],
    );
    s.create_user("alice", "alice-secret");
    s.create_user("bob", "bob-secret");
    let h = Https {
        addr: http.clone(),
        ca: s.cert("ca.pem"),
    };
    let admin = format!("{ADMIN}:{ADMIN_PASSWORD}");

    // Probes answer anyone; everything else asks for a login with a Basic challenge.
    assert_eq!(h.get(None, "/v1/status/live").0, 200);
    let (code, head) = h.call(None, "GET", "/metrics", &["-D", "-"]);
    assert_eq!(code, 401, "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("www-authenticate: basic realm=\"strom\""),
        "{head}"
    );
    for bad in ["alice:wrong", "nobody:alice-secret", "alice"] {
        assert_eq!(h.get(Some(bad), "/metrics").0, 401, "{bad}");
    }
    assert_eq!(h.get(Some(&admin), "/metrics").0, 200);
    assert_eq!(h.get(Some(ALICE), "/metrics").0, 200, "any user may scrape");

    // The admin and connector APIs: Describe on the cluster to read, Alter to change.
    for path in ["/v1/cluster", "/connectors"] {
        assert_eq!(h.get(Some(&admin), path).0, 200, "{path}");
        let (code, body) = h.get(Some(ALICE), path);
        assert_eq!(code, 403, "{path}: {body}");
        assert!(
            body.contains("User:alice is not authorized to Describe"),
            "{body}"
        );
    }
    s.grant(&[
        "--cluster",
        "--allow-principal",
        "User:alice",
        "--operation",
        "Describe",
    ]);
    for path in ["/v1/cluster", "/connectors"] {
        assert_eq!(h.get(Some(ALICE), path).0, 200, "{path}");
    }
    let connector = json!({"name": "c", "config": {"connector.class": "mysql"}});
    let (code, body) = h.send(
        ALICE,
        "POST",
        "/connectors",
        "Content-Type: application/json",
        &connector,
    );
    assert_eq!(code, 403, "{body}");

    // The proxy acts as its caller: alice sees and writes only what her ACLs allow.
    let (code, body) = h.send(
        &admin,
        "POST",
        "/v3/clusters/any/topics",
        "Content-Type: application/json",
        &json!({"topic_name": "web", "partitions_count": 1}),
    );
    assert!(code == 200 || code == 201, "{code} {body}");
    let (_, topics) = h.get(Some(&admin), "/topics");
    assert!(topics.contains("\"web\""), "{topics}");
    let (_, topics) = h.get(Some(ALICE), "/topics");
    assert!(
        !topics.contains("\"web\""),
        "alice may not Describe web: {topics}"
    );
    let records = json!({"records": [{"value": {"n": 1}}]});
    let (code, body) = h.send(ALICE, "POST", "/topics/web", JSON, &records);
    assert_eq!((code, &body["error_code"]), (403, &json!(40301)), "{body}");
    s.grant(&[
        "--topic",
        "web",
        "--allow-principal",
        "User:alice",
        "--operation",
        "Write",
    ]);
    let (code, body) = h.send(ALICE, "POST", "/topics/web", JSON, &records);
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["offsets"][0]["offset"], 0, "{body}");
    let (_, topics) = h.get(Some(ALICE), "/topics");
    assert!(
        topics.contains("\"web\""),
        "Write implies Describe: {topics}"
    );

    // Consuming needs Read on the topic and the group; an instance is its creator's alone.
    let (code, created) = h.send(
        ALICE,
        "POST",
        "/consumers/readers",
        V2,
        &json!({"name": "a1", "format": "json", "auto.offset.reset": "earliest"}),
    );
    assert_eq!(code, 200, "{created}");
    let base = "/consumers/readers/instances/a1";
    let (code, _) = h.send(
        ALICE,
        "POST",
        &format!("{base}/subscription"),
        V2,
        &json!({"topics": ["web"]}),
    );
    assert_eq!(code, 204);
    let records_path = format!("{base}/records?timeout=500");
    wait_until("alice's read refused", Duration::from_secs(20), || {
        let (code, body) = h.get(Some(ALICE), &records_path);
        (
            code == 403 && body.contains("40301"),
            format!("{code} {body}"),
        )
    });
    let (code, body) = h.get(Some(BOB), &records_path);
    assert_eq!(code, 404, "bob may not use alice's instance: {body}");
    s.grant(&[
        "--topic",
        "web",
        "--allow-principal",
        "User:alice",
        "--operation",
        "Read",
    ]);
    s.grant(&[
        "--group",
        "readers",
        "--allow-principal",
        "User:alice",
        "--operation",
        "Read",
    ]);
    wait_until("alice reads web", Duration::from_secs(30), || {
        let (code, body) = h.get(Some(ALICE), &records_path);
        (
            code == 200 && body.contains("\"n\":1"),
            format!("{code} {body}"),
        )
    });

    // The console's key view: Read on the keys, as the etcd API's key ACLs say.
    let (ok, out) = etcdctl(&etcd, &["put", "/app/k", "v"]);
    assert!(ok, "{out}");
    let (code, body) = h.get(Some(ALICE), "/v1/kv?prefix=/app/");
    assert_eq!(code, 403, "{body}");
    s.grant(&[
        "--etcd-key",
        "/app/",
        "--prefixed",
        "--allow-principal",
        "User:alice",
        "--operation",
        "Read",
    ]);
    let (code, body) = h.get(Some(ALICE), "/v1/kv?prefix=/app/");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("/app/k"), "{body}");
    assert_eq!(
        h.get(Some(ALICE), "/v1/kv?prefix=/").0,
        403,
        "beyond the prefix"
    );

    // The CLI over HTTPS with a login.
    let url = format!("https://{http}");
    let (ok, out, err) = cli(
        &[
            "connector",
            "list",
            "--url",
            &url,
            "--tls-ca",
            &h.ca,
            "--user",
            "alice",
            "--password",
            "alice-secret",
        ],
        "",
    );
    assert!(ok, "{out}{err}");
    let (ok, out, err) = cli(&["connector", "list", "--url", &url, "--tls-ca", &h.ca], "");
    assert!(!ok && err.contains("401"), "{out}{err}");

    // A deleted user's remembered login ends with the user.
    assert_eq!(h.get(Some(BOB), "/metrics").0, 200);
    let (ok, out, err) = s.admin(&["user", "delete", "bob"]);
    assert!(ok, "{out}{err}");
    assert_eq!(h.get(Some(BOB), "/metrics").0, 401);
}

fn etcdctl(endpoint: &str, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new("etcdctl")
        .args([
            "--endpoints",
            &format!("http://{endpoint}"),
            "--command-timeout",
            "5s",
        ])
        .args(args)
        .output()
        .expect("run etcdctl (scripts/test.sh installs etcd-client)");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}
