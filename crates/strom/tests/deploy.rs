//! The deployment recipes in `deploy/`: the container's command line and the sample config
//! file start a working node with the real binary (what the image and the systemd unit run),
//! and the Dockerfile and unit keep the properties the README promises (multi-stage, non-root,
//! a data volume; restart on failure with a raised file limit).

mod common;

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{curl, free_port, BIN};

fn deploy_file(name: &str) -> String {
    let path = format!("{}/../../deploy/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// Runs `strom` with `args` until its HTTP listener says ready, then stops it.
fn starts_ready(args: &[String], kafka: &str, http: &str) {
    let mut child: Child = Command::new(BIN)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let ready = loop {
        if TcpStream::connect(kafka).is_ok()
            && curl(&[&format!("http://{http}/v1/status/ready")]).0 == 200
        {
            break true;
        }
        if Instant::now() > deadline || child.try_wait().ok().flatten().is_some() {
            break false;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let _ = child.kill();
    let _ = child.wait();
    assert!(ready, "strom {args:?} did not become ready");
}

#[test]
fn the_container_command_line_serves() {
    let dockerfile = deploy_file("Dockerfile");
    let lines: Vec<&str> = dockerfile.lines().map(str::trim).collect();
    assert!(
        lines.iter().filter(|l| l.starts_with("FROM ")).count() >= 2,
        "multi-stage"
    );
    let user = lines
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER line");
    assert!(user != "root" && user != "0", "runs as {user}");
    assert!(dockerfile.contains("VOLUME [\"/var/lib/strom\"]"));
    assert!(dockerfile.contains("EXPOSE 9092 2379 9644"));

    // The ENTRYPOINT, with its listeners moved to free loopback ports and a temporary data
    // directory, is what the image runs.
    let entry = dockerfile
        .split("ENTRYPOINT ")
        .nth(1)
        .expect("an ENTRYPOINT")
        .replace("\\\n", " ");
    let entry = &entry[..entry.find(']').expect("a JSON array") + 1];
    let args: Vec<String> = serde_json::from_str(entry).expect("ENTRYPOINT is a JSON array");
    assert_eq!(args[0], "/usr/local/bin/strom");
    let dir = tempfile::tempdir().unwrap();
    let (kafka, etcd, http) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    let args: Vec<String> = args[1..]
        .iter()
        .map(|a| match a.as_str() {
            "/var/lib/strom" => dir.path().display().to_string(),
            "0.0.0.0:9092" => kafka.clone(),
            "0.0.0.0:2379" => etcd.clone(),
            "0.0.0.0:9644" => http.clone(),
            _ => a.clone(),
        })
        .collect();
    starts_ready(&args, &kafka, &http);
}

#[test]
fn the_sample_config_and_unit_are_sound() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("strom.toml");
    std::fs::write(&config, deploy_file("strom.toml")).unwrap();
    let (kafka, http) = (
        format!("127.0.0.1:{}", free_port()),
        format!("127.0.0.1:{}", free_port()),
    );
    // Flags win over the file: only the paths and ports differ from what the unit runs.
    let args: Vec<String> = [
        "serve",
        "--config",
        config.to_str().unwrap(),
        "--data-dir",
        dir.path().join("data").to_str().unwrap(),
        "--kafka-addr",
        &kafka,
        "--advertised-kafka-addr",
        &kafka,
        "--etcd-addr",
        "",
        "--http-addr",
        &http,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    starts_ready(&args, &kafka, &http);

    let unit = deploy_file("strom.service");
    for line in [
        "ExecStart=/usr/local/bin/strom serve --config /etc/strom/strom.toml",
        "User=strom",
        "Restart=on-failure",
        "LimitNOFILE=1048576",
        "KillSignal=SIGTERM",
    ] {
        assert!(unit.lines().any(|l| l == line), "the unit lacks {line}");
    }
}
