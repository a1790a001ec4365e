//! The hello exchange and mutual proof of the cluster secret (wire format in the module doc of
//! `transport`). The caller bounds the whole exchange with a timeout.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::NodeId;

pub(super) const MAGIC: [u8; 4] = *b"STRM";
pub(super) const VERSION: u16 = 1;
pub(super) const MAX_CLUSTER_ID: usize = 255;
const LABEL: &[u8] = b"strom-raft-v1";
const NONCE_LEN: usize = 32;
const PROOF_LEN: usize = 32;

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("the peer closed the connection during the handshake (it may have rejected us; see its log)")]
    Closed,
    #[error("i/o error during the handshake: {0}")]
    Io(std::io::Error),
    #[error("the handshake did not complete in time")]
    Timeout,
    #[error("not a Strom node-to-node connection (wrong magic bytes)")]
    BadMagic,
    #[error("the peer speaks protocol version {0}, this node speaks version {VERSION}")]
    Version(u16),
    #[error("malformed hello: {0}")]
    BadHello(&'static str),
    #[error("the peer belongs to cluster {theirs:?}, this node to cluster {ours:?}")]
    ClusterMismatch { ours: String, theirs: String },
    #[error(
        "the peer says it is node {announced}, but node {expected} was expected at this address"
    )]
    WrongNode { expected: NodeId, announced: NodeId },
    #[error("the peer announces this node's own id {0}: two nodes share an id, or a node's peer list holds its own address")]
    SameNodeId(NodeId),
    #[error("node {0} failed authentication: its proof does not match this node's cluster secret (the secrets differ)")]
    BadProof(NodeId),
    #[error("cannot draw a random nonce: {0}")]
    Random(String),
}

impl HandshakeError {
    /// Whether the failure points at configuration (secret, cluster id, node ids, versions)
    /// rather than at the network or the peer being down: those are logged as errors.
    pub fn is_misconfiguration(&self) -> bool {
        !matches!(
            self,
            HandshakeError::Closed | HandshakeError::Io(_) | HandshakeError::Timeout
        )
    }
}

impl From<std::io::Error> for HandshakeError {
    fn from(e: std::io::Error) -> Self {
        use std::io::ErrorKind::*;
        // All of these mean the other end went away, which is how a peer rejects us.
        if matches!(
            e.kind(),
            UnexpectedEof | BrokenPipe | ConnectionReset | ConnectionAborted
        ) {
            HandshakeError::Closed
        } else {
            HandshakeError::Io(e)
        }
    }
}

/// Which end of the connection we are; part of the proof so a proof cannot be reflected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Role {
    Dialer = 1,
    Acceptor = 2,
}

impl Role {
    fn other(self) -> Role {
        match self {
            Role::Dialer => Role::Acceptor,
            Role::Acceptor => Role::Dialer,
        }
    }
}

/// Who we are: node 0 for an admin client, which may leave the cluster id empty.
pub(super) struct Identity<'a> {
    pub node_id: NodeId,
    pub cluster_id: &'a str,
    pub secret: &'a [u8],
}

/// What the peer announced, now authenticated.
#[derive(Debug)]
pub(super) struct PeerHello {
    pub node_id: NodeId,
    pub cluster_id: String,
}

/// Runs the handshake on a fresh connection. `expect` is the node id we dialed, if we know it.
/// `announced` receives the peer's claimed node id as soon as its hello is read, so a failure
/// later on (or a timeout that drops this future) can still be logged with it.
pub(super) async fn handshake<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
    role: Role,
    me: &Identity<'_>,
    expect: Option<NodeId>,
    announced: &mut Option<NodeId>,
) -> Result<PeerHello, HandshakeError> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::getrandom(&mut nonce).map_err(|e| HandshakeError::Random(e.to_string()))?;
    // Both ends write first: with both hellos seen, each end can name a mismatch in its own log.
    stream.write_all(&encode_hello(me, &nonce)?).await?;
    stream.flush().await?;
    let (peer, peer_nonce) = read_hello(stream).await?;
    *announced = Some(peer.node_id);
    check_hello(role, me, expect, &peer)?;

    let proof = prover(me.secret, role, me.node_id, &peer_nonce, &nonce)?;
    stream.write_all(&proof.finalize().into_bytes()).await?;
    stream.flush().await?;
    let mut peer_proof = [0u8; PROOF_LEN];
    stream.read_exact(&mut peer_proof).await?;
    prover(me.secret, role.other(), peer.node_id, &nonce, &peer_nonce)?
        .verify_slice(&peer_proof)
        .map_err(|_| HandshakeError::BadProof(peer.node_id))?;
    Ok(peer)
}

fn encode_hello(me: &Identity<'_>, nonce: &[u8; NONCE_LEN]) -> Result<Vec<u8>, HandshakeError> {
    let cluster = me.cluster_id.as_bytes();
    if cluster.len() > MAX_CLUSTER_ID {
        return Err(HandshakeError::BadHello("our cluster id is too long"));
    }
    let mut out = Vec::with_capacity(4 + 2 + 8 + NONCE_LEN + 2 + cluster.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_be_bytes());
    out.extend_from_slice(&me.node_id.to_be_bytes());
    out.extend_from_slice(nonce);
    out.extend_from_slice(&(cluster.len() as u16).to_be_bytes());
    out.extend_from_slice(cluster);
    Ok(out)
}

async fn read_hello<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> Result<(PeerHello, [u8; NONCE_LEN]), HandshakeError> {
    let mut magic = [0u8; 4];
    stream.read_exact(&mut magic).await?;
    if magic != MAGIC {
        return Err(HandshakeError::BadMagic);
    }
    // The version comes before anything whose layout a later version might change.
    let version = stream.read_u16().await?;
    if version != VERSION {
        return Err(HandshakeError::Version(version));
    }
    let node_id = stream.read_u64().await?;
    let mut nonce = [0u8; NONCE_LEN];
    stream.read_exact(&mut nonce).await?;
    let cluster_len = stream.read_u16().await? as usize;
    if cluster_len > MAX_CLUSTER_ID {
        return Err(HandshakeError::BadHello("cluster id longer than 255 bytes"));
    }
    let mut cluster = vec![0u8; cluster_len];
    stream.read_exact(&mut cluster).await?;
    let cluster_id = String::from_utf8(cluster)
        .map_err(|_| HandshakeError::BadHello("cluster id is not UTF-8"))?;
    Ok((
        PeerHello {
            node_id,
            cluster_id,
        },
        nonce,
    ))
}

fn check_hello(
    role: Role,
    me: &Identity<'_>,
    expect: Option<NodeId>,
    peer: &PeerHello,
) -> Result<(), HandshakeError> {
    if !me.cluster_id.is_empty() && !peer.cluster_id.is_empty() && me.cluster_id != peer.cluster_id
    {
        return Err(HandshakeError::ClusterMismatch {
            ours: me.cluster_id.to_owned(),
            theirs: peer.cluster_id.clone(),
        });
    }
    if me.node_id != 0 && peer.node_id == me.node_id {
        return Err(HandshakeError::SameNodeId(peer.node_id));
    }
    if let Some(expected) = expect {
        if peer.node_id != expected {
            return Err(HandshakeError::WrongNode {
                expected,
                announced: peer.node_id,
            });
        }
    }
    // Only a dialing admin client may be node 0; whoever accepts a connection is a node.
    if role == Role::Dialer && peer.node_id == 0 {
        return Err(HandshakeError::BadHello(
            "the accepting end announces node id 0",
        ));
    }
    Ok(())
}

/// The HMAC state for the proof `role`/`node` sends: the caller finalizes it to send, or checks
/// the peer's proof against it with `verify_slice` (constant time).
fn prover(
    secret: &[u8],
    role: Role,
    node: NodeId,
    their_nonce: &[u8; NONCE_LEN],
    own_nonce: &[u8; NONCE_LEN],
) -> Result<HmacSha256, HandshakeError> {
    // HMAC takes keys of any length; this cannot fail, but it is not worth a panic path.
    let mut mac = <HmacSha256 as Mac>::new_from_slice(secret)
        .map_err(|_| HandshakeError::BadHello("unusable secret"))?;
    mac.update(LABEL);
    mac.update(&[role as u8]);
    mac.update(&node.to_be_bytes());
    mac.update(their_nonce);
    mac.update(own_nonce);
    Ok(mac)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn run_pair(
        dialer: Identity<'static>,
        acceptor: Identity<'static>,
        expect: Option<NodeId>,
    ) -> (
        Result<PeerHello, HandshakeError>,
        Result<PeerHello, HandshakeError>,
    ) {
        let (mut a, mut b) = tokio::io::duplex(4096);
        let dial = async move {
            let r = handshake(&mut a, Role::Dialer, &dialer, expect, &mut None).await;
            drop(a); // a failed end closes, as the real callers do
            r
        };
        let accept = async move {
            let r = handshake(&mut b, Role::Acceptor, &acceptor, None, &mut None).await;
            drop(b);
            r
        };
        tokio::join!(dial, accept)
    }

    fn id(node_id: NodeId, cluster_id: &'static str, secret: &'static [u8]) -> Identity<'static> {
        Identity {
            node_id,
            cluster_id,
            secret,
        }
    }

    #[tokio::test]
    async fn matching_secrets_authenticate_both_ends() {
        let (d, a) = run_pair(id(1, "c", b"s3cret"), id(2, "c", b"s3cret"), Some(2)).await;
        assert_eq!(d.unwrap().node_id, 2);
        assert_eq!(a.unwrap().node_id, 1);
    }

    #[tokio::test]
    async fn wrong_secret_fails_on_both_ends() {
        let (d, a) = run_pair(id(1, "c", b"one"), id(2, "c", b"two"), Some(2)).await;
        assert!(matches!(d, Err(HandshakeError::BadProof(2))), "{d:?}");
        assert!(matches!(a, Err(HandshakeError::BadProof(1))), "{a:?}");
    }

    #[tokio::test]
    async fn wrong_node_at_dialed_address() {
        let (d, a) = run_pair(id(1, "c", b"s"), id(3, "c", b"s"), Some(2)).await;
        assert!(
            matches!(
                d,
                Err(HandshakeError::WrongNode {
                    expected: 2,
                    announced: 3
                })
            ),
            "{d:?}"
        );
        assert!(matches!(a, Err(HandshakeError::Closed)), "{a:?}");
    }

    #[tokio::test]
    async fn cluster_ids_must_match_unless_one_is_empty() {
        let (d, a) = run_pair(id(1, "east", b"s"), id(2, "west", b"s"), Some(2)).await;
        assert!(
            matches!(d, Err(HandshakeError::ClusterMismatch { .. })),
            "{d:?}"
        );
        assert!(
            matches!(a, Err(HandshakeError::ClusterMismatch { .. })),
            "{a:?}"
        );
        let (d, a) = run_pair(id(0, "", b"s"), id(2, "west", b"s"), None).await;
        assert_eq!(d.unwrap().cluster_id, "west");
        assert_eq!(a.unwrap().node_id, 0);
    }

    #[tokio::test]
    async fn same_node_id_is_refused() {
        let (d, _) = run_pair(id(2, "c", b"s"), id(2, "c", b"s"), None).await;
        assert!(matches!(d, Err(HandshakeError::SameNodeId(2))), "{d:?}");
    }

    #[tokio::test]
    async fn reflected_proof_is_refused() {
        // A peer without the secret echoes our own hello (nonce included) and then our own proof.
        let (mut ours, mut theirs) = tokio::io::duplex(4096);
        let mirror = async move {
            let mut hello = vec![0u8; 4 + 2 + 8 + NONCE_LEN + 2 + 1];
            theirs.read_exact(&mut hello).await.unwrap();
            hello[6..14].copy_from_slice(&7u64.to_be_bytes());
            theirs.write_all(&hello).await.unwrap();
            let mut proof = [0u8; PROOF_LEN];
            theirs.read_exact(&mut proof).await.unwrap();
            theirs.write_all(&proof).await.unwrap();
            theirs
        };
        let me = id(1, "c", b"s");
        let mut announced = None;
        let (result, _keep) = tokio::join!(
            handshake(&mut ours, Role::Acceptor, &me, None, &mut announced),
            mirror
        );
        assert_eq!(announced, Some(7));
        assert!(
            matches!(result, Err(HandshakeError::BadProof(7))),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn bad_magic_and_version_are_refused_before_the_rest() {
        let me = id(1, "c", b"s");
        let mut wire: &[u8] = b"\0\0\0\x10kafka";
        let mut out = Vec::new();
        let mut stream = tokio::io::join(&mut wire, &mut out);
        let r = handshake(&mut stream, Role::Acceptor, &me, None, &mut None).await;
        assert!(matches!(r, Err(HandshakeError::BadMagic)), "{r:?}");

        let mut wire: &[u8] = b"STRM\x00\x02";
        let mut out = Vec::new();
        let mut stream = tokio::io::join(&mut wire, &mut out);
        let r = handshake(&mut stream, Role::Acceptor, &me, None, &mut None).await;
        assert!(matches!(r, Err(HandshakeError::Version(2))), "{r:?}");
    }
}
