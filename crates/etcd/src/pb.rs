//! etcd's lock and election services, compiled by `build.rs` from the .proto files the
//! etcd-client crate ships.

#[allow(clippy::all, clippy::pedantic)]
pub mod v3lockpb {
    tonic::include_proto!("v3lockpb");
}

#[allow(clippy::all, clippy::pedantic)]
pub mod v3electionpb {
    tonic::include_proto!("v3electionpb");
}
