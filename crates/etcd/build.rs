//! Compiles etcd's lock and election service definitions (v3lockpb, v3electionpb) from the
//! .proto files the etcd-client crate ships: etcd-client compiles them too, but exports only
//! their clients. Their shared messages are etcd-client's own types.

use std::path::PathBuf;
use std::process::Command;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = etcd_client_protos()?;
    println!("cargo:rerun-if-changed=build.rs");
    tonic_prost_build::configure()
        .build_client(false)
        .extern_path(
            ".etcdserverpb.ResponseHeader",
            "::etcd_client::proto::PbResponseHeader",
        )
        .extern_path(".mvccpb.KeyValue", "::etcd_client::proto::PbKeyValue")
        .compile_protos(
            &[
                root.join("etcd/server/etcdserver/api/v3lock/v3lockpb/v3lock.proto"),
                root.join("etcd/server/etcdserver/api/v3election/v3electionpb/v3election.proto"),
            ],
            &[root],
        )?;
    Ok(())
}

/// The `proto` directory of the etcd-client package this build resolved (Cargo knows where
/// its sources are: registry, vendor directory or git checkout).
fn etcd_client_protos() -> Result<PathBuf, Box<dyn std::error::Error>> {
    let cargo = std::env::var("CARGO")?;
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("Cargo.toml");
    // Offline first (the build already has every package it compiles); a fresh registry cache
    // may still lack packages only other platforms use, which a full resolve wants to see.
    let metadata = |offline: bool| {
        let mut command = Command::new(&cargo);
        command.args(["metadata", "--format-version", "1", "--locked"]);
        if offline {
            command.arg("--offline");
        }
        command.arg("--manifest-path").arg(&manifest).output()
    };
    let mut out = metadata(true)?;
    if !out.status.success() {
        out = metadata(false)?;
    }
    if !out.status.success() {
        return Err(format!("cargo metadata: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let manifest_path = meta["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == "etcd-client")
        .and_then(|p| p["manifest_path"].as_str())
        .ok_or("etcd-client is not among the resolved packages")?;
    let dir = PathBuf::from(manifest_path)
        .parent()
        .ok_or("etcd-client's manifest has no directory")?
        .join("proto");
    println!("cargo:rerun-if-changed={}", dir.display());
    Ok(dir)
}
