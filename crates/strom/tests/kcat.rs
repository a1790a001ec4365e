//! kcat (a separate librdkafka build, as users run it) produces and consumes through Strom.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::Strom;

fn kcat(args: &[&str], stdin: &str) -> String {
    let mut child = Command::new("kcat")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kcat must be installed (scripts/test.sh installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "kcat {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn kcat_produces_and_consumes() {
    let dir = tempfile::tempdir().unwrap();
    let strom = Strom::start(dir.path(), &["--default-partitions", "3"]);
    let b = strom.addr();
    let lines: Vec<String> = (0..500)
        .map(|i| format!("key{}:value number {i}", i % 7))
        .collect();
    let input = lines.join("\n") + "\n";
    for codec in ["none", "gzip", "snappy", "lz4", "zstd"] {
        kcat(
            &[
                "-b", &b, "-t", "kc", "-P", "-K:", "-z", codec, "-X", "acks=all",
            ],
            &input,
        );
    }

    let meta = kcat(&["-b", &b, "-L", "-t", "kc"], "");
    assert!(meta.contains("topic \"kc\" with 3 partitions"), "{meta}");

    let out = kcat(
        &[
            "-b",
            &b,
            "-t",
            "kc",
            "-C",
            "-e",
            "-o",
            "beginning",
            "-f",
            "%k:%s\n",
            "-q",
        ],
        "",
    );
    let mut got: Vec<&str> = out.lines().collect();
    let mut want: Vec<&str> = lines
        .iter()
        .map(String::as_str)
        .cycle()
        .take(lines.len() * 5)
        .collect();
    got.sort_unstable();
    want.sort_unstable();
    assert_eq!(got, want);

    // Same key, same partition, in order: key0's values come back in produce order per codec run.
    let p = kcat(
        &[
            "-b",
            &b,
            "-t",
            "kc",
            "-C",
            "-e",
            "-o",
            "beginning",
            "-f",
            "%k %p %o %s\n",
            "-q",
        ],
        "",
    );
    let key0: Vec<&str> = p.lines().filter(|l| l.starts_with("key0 ")).collect();
    let parts: std::collections::HashSet<&str> =
        key0.iter().map(|l| l.split(' ').nth(1).unwrap()).collect();
    assert_eq!(
        parts.len(),
        1,
        "one key landed in several partitions: {parts:?}"
    );
}
