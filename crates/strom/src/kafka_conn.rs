//! One Kafka connection (the native benchmark client's, and the CLI's for the admin APIs
//! librdkafka does not offer): `i32` length-prefixed frames over TCP, requests pipelined on the
//! writer half, responses read on the reader half and matched in order by correlation id
//! (a Kafka broker answers a connection's requests in the order it received them).

use std::collections::VecDeque;
use std::net::ToSocketAddrs;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures::FutureExt;
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest response frame accepted. Fetch responses are bounded by their `max_bytes` (50 MiB
/// here) plus at most one oversized batch; a larger length is a corrupt frame, and must not
/// make us reserve that much memory.
const MAX_RESPONSE_BYTES: usize = 256 << 20;

/// Spare room kept in the read buffer, so that one read takes in many small responses.
const READ_CHUNK: usize = 64 << 10;

/// Below this much spare room, the read buffer is topped up to [`READ_CHUNK`].
const MIN_SPARE: usize = 4 << 10;

/// The client id sent with every request.
const CLIENT_ID: &str = "strom";

/// A request whose response has not arrived yet.
struct Pending {
    correlation_id: i32,
    api: ApiKey,
    version: i16,
}

/// A response frame, header checked and removed.
pub struct Response {
    /// When the read that completed the frame returned: the response's arrival.
    pub arrived: Instant,
    /// The API and version of the request it answers.
    pub api: ApiKey,
    pub version: i16,
    /// The response body, after the header.
    pub body: Bytes,
}

impl Response {
    /// Decodes the body as `R` (the type must match `api`).
    pub fn decode<R: Decodable>(mut self) -> anyhow::Result<R> {
        let api = self.api;
        let response = R::decode(&mut self.body, self.version)
            .map_err(|err| anyhow!("malformed {api:?} v{} response: {err:#}", self.version))?;
        Ok(response)
    }
}

/// A connection to one broker.
pub struct Connection {
    addr: String,
    reader: Box<dyn AsyncRead + Unpin + Send>,
    read_buf: BytesMut,
    /// When the latest read returned (the arrival time of frames it completed).
    last_read: Instant,
    writer: Box<dyn AsyncWrite + Unpin + Send>,
    write_buf: BytesMut,
    next_correlation_id: i32,
    pending: VecDeque<Pending>,
}

/// Connects a blocking socket with Nagle off. Producers connect this way before the clock
/// starts and adopt the socket on their own runtime ([`Connection::adopt`]).
pub fn connect_std(addr: &str) -> anyhow::Result<std::net::TcpStream> {
    let mut last_err = None;
    let resolved = addr
        .to_socket_addrs()
        .with_context(|| format!("resolving {addr}"))?;
    for sockaddr in resolved {
        match std::net::TcpStream::connect_timeout(&sockaddr, CONNECT_TIMEOUT) {
            Ok(stream) => {
                // A small request must not wait in our socket for the previous one's ACK.
                stream.set_nodelay(true)?;
                stream.set_nonblocking(true)?;
                return Ok(stream);
            }
            Err(err) => last_err = Some(err),
        }
    }
    Err(match last_err {
        Some(err) => anyhow!("cannot reach broker at {addr}: {err}"),
        None => anyhow!("cannot reach broker at {addr}: no address"),
    })
}

impl Connection {
    /// Connects to `addr` on the current runtime, over TLS and logged in as the CLI's security
    /// settings say ([`crate::cli::security`]).
    pub async fn connect(addr: &str) -> anyhow::Result<Connection> {
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| anyhow!("cannot reach broker at {addr}: no answer within 5 s"))?
            .map_err(|err| anyhow!("cannot reach broker at {addr}: {err}"))?;
        stream.set_nodelay(true)?;
        Connection::secure(addr, stream).await
    }

    /// Adopts a socket from [`connect_std`] on the current runtime (TLS and login as
    /// [`Connection::connect`]).
    pub async fn adopt(addr: &str, stream: std::net::TcpStream) -> anyhow::Result<Connection> {
        Connection::secure(addr, TcpStream::from_std(stream)?).await
    }

    async fn secure(addr: &str, stream: TcpStream) -> anyhow::Result<Connection> {
        let security = crate::cli::security::get();
        let mut conn = match &security.tls {
            None => Connection::new(addr, stream),
            Some(tls) => {
                let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
                let tls = strom_tls::connect_named(std::sync::Arc::clone(tls), host, stream)
                    .await
                    .map_err(|err| anyhow!("TLS with {addr}: {err}"))?;
                let (reader, writer) = tokio::io::split(tls);
                Connection::with_halves(addr, Box::new(reader), Box::new(writer))
            }
        };
        if let Some(login) = &security.login {
            crate::cli::security::login(&mut conn, login).await?;
        }
        Ok(conn)
    }

    fn new(addr: &str, stream: TcpStream) -> Connection {
        let (reader, writer) = stream.into_split();
        Connection::with_halves(addr, Box::new(reader), Box::new(writer))
    }

    fn with_halves(
        addr: &str,
        reader: Box<dyn AsyncRead + Unpin + Send>,
        writer: Box<dyn AsyncWrite + Unpin + Send>,
    ) -> Connection {
        Connection {
            addr: addr.to_string(),
            reader,
            read_buf: BytesMut::with_capacity(READ_CHUNK),
            last_read: Instant::now(),
            writer,
            write_buf: BytesMut::with_capacity(READ_CHUNK),
            next_correlation_id: 0,
            pending: VecDeque::new(),
        }
    }

    /// The broker address.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Requests sent whose response has not been received.
    pub fn awaiting(&self) -> usize {
        self.pending.len()
    }

    /// Encodes and writes one request. `expect_response` is false only for produce with
    /// acks=0, which the broker never answers.
    ///
    /// The write is awaited: a large request that fills the socket holds up the caller, which
    /// is the backpressure a producer should feel (responses wait in the socket meanwhile and
    /// keep their arrival time of the next read).
    pub async fn send<T: Encodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        body: &T,
        expect_response: bool,
    ) -> anyhow::Result<()> {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_static_str(CLIENT_ID)));
        let buf = &mut self.write_buf;
        buf.clear();
        buf.put_i32(0); // The length, filled in below.
        header
            .encode(buf, api.request_header_version(version))
            .and_then(|()| body.encode(buf, version))
            .map_err(|err| anyhow!("encoding {api:?} v{version} request: {err:#}"))?;
        let len = i32::try_from(buf.len() - 4)
            .map_err(|_| anyhow!("{api:?} request of {} bytes is too large", buf.len()))?;
        buf[..4].copy_from_slice(&len.to_be_bytes());
        // TLS may keep what the socket did not take in its own buffer: flushing sends it, or
        // the request could wait there for the next one.
        let sent = async {
            self.writer.write_all(buf).await?;
            self.writer.flush().await
        };
        sent.await
            .with_context(|| format!("sending {api:?} request to {}", self.addr))?;
        if expect_response {
            self.pending.push_back(Pending {
                correlation_id,
                api,
                version,
            });
        }
        Ok(())
    }

    /// The next response, in request order. Cancel-safe: bytes read before a cancellation
    /// stay buffered for the next call.
    pub async fn recv(&mut self) -> anyhow::Result<Response> {
        if self.pending.is_empty() {
            bail!("no request to {} awaits a response", self.addr);
        }
        loop {
            if let Some(frame) = self.take_frame()? {
                return self.response(frame);
            }
            let read = self.reader.read_buf(&mut self.read_buf).await;
            self.last_read = Instant::now();
            let n = read.with_context(|| format!("reading from {}", self.addr))?;
            if n == 0 {
                bail!(
                    "{} closed the connection with {} requests unanswered",
                    self.addr,
                    self.pending.len()
                );
            }
        }
    }

    /// A response that has already arrived, without waiting for one.
    pub fn try_recv(&mut self) -> anyhow::Result<Option<Response>> {
        if self.pending.is_empty() {
            return Ok(None);
        }
        self.recv().now_or_never().transpose()
    }

    /// Sends a request and waits for its response (for setup requests, not the data path).
    pub async fn request<T: Encodable, R: Decodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        body: &T,
    ) -> anyhow::Result<R> {
        self.send(api, version, body, true).await?;
        self.recv().await?.decode()
    }

    /// Splits one whole frame off the read buffer, or makes room for the rest of it.
    fn take_frame(&mut self) -> anyhow::Result<Option<Bytes>> {
        let buffered = self.read_buf.len();
        let needed = match self.read_buf.get(..4) {
            Some(prefix) => {
                let len = i32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
                let len = usize::try_from(len)
                    .ok()
                    .filter(|len| *len <= MAX_RESPONSE_BYTES)
                    .ok_or_else(|| anyhow!("{} sent a frame of length {len}", self.addr))?;
                if buffered >= 4 + len {
                    self.read_buf.advance(4);
                    return Ok(Some(self.read_buf.split_to(len).freeze()));
                }
                4 + len - buffered
            }
            None => 4 - buffered,
        };
        // Reserving reuses the buffer's allocation once earlier frames are dropped, so large
        // fetch responses do not cost a fresh (page-faulting) allocation each. Only when short
        // of room: this runs on every poll for a response.
        let spare = self.read_buf.capacity() - buffered;
        if spare < needed || spare < MIN_SPARE {
            self.read_buf.reserve(needed.max(READ_CHUNK));
        }
        Ok(None)
    }

    /// Checks a frame's header against the oldest pending request.
    fn response(&mut self, mut frame: Bytes) -> anyhow::Result<Response> {
        let pending = self
            .pending
            .pop_front()
            .ok_or_else(|| anyhow!("{} sent a response nobody asked for", self.addr))?;
        let header_version = pending.api.response_header_version(pending.version);
        let header = ResponseHeader::decode(&mut frame, header_version)
            .map_err(|err| anyhow!("malformed response header from {}: {err:#}", self.addr))?;
        if header.correlation_id != pending.correlation_id {
            bail!(
                "{} answered correlation id {} where {} ({:?}) was next",
                self.addr,
                header.correlation_id,
                pending.correlation_id,
                pending.api
            );
        }
        Ok(Response {
            arrived: self.last_read,
            api: pending.api,
            version: pending.version,
            body: frame,
        })
    }
}
