//! From a frame to a (future) response: header, version check, pre-check, decode, handler, encode.

use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable};

use crate::handlers::{self, Reply};
use crate::quota::{self, Mute};
use crate::security::{self, SaslOutcome, Session};
use crate::server::PendingResponse;
use crate::{fetch_encoding, precheck, versions, Context};

/// Why a request ends its connection (Kafka closes the connection on these too).
#[derive(Debug, thiserror::Error)]
pub enum DispatchError {
    #[error("unknown api key {0}")]
    UnknownApiKey(i16),
    #[error("unsupported version {version} of {api:?} (supported {min}..={max})")]
    UnsupportedVersion {
        api: ApiKey,
        version: i16,
        min: i16,
        max: i16,
    },
    #[error("malformed {api:?} v{version} request: {reason}")]
    Malformed {
        api: ApiKey,
        version: i16,
        reason: String,
    },
    /// Kafka closes these too: only ApiVersions and SASL before a login.
    #[error("{0:?} request before SASL authentication")]
    Unauthenticated(ApiKey),
    #[error("{0:?} request after the SASL session expired (the client did not re-authenticate)")]
    SessionExpired(ApiKey),
}

/// What the connection does after a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum After {
    Continue,
    /// Send the response, then close (a failed login).
    Close,
}

fn is_sasl(api: ApiKey) -> bool {
    matches!(api, ApiKey::SaslHandshake | ApiKey::SaslAuthenticate)
}

/// The fixed start of every request header.
struct Prefix {
    api_key: i16,
    version: i16,
    correlation_id: i32,
}

fn prefix(frame: &[u8]) -> Prefix {
    // read_frame guarantees at least MIN_FRAME_BYTES.
    let be16 = |i: usize| i16::from_be_bytes([frame[i], frame[i + 1]]);
    Prefix {
        api_key: be16(0),
        version: be16(2),
        correlation_id: i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]),
    }
}

/// Starts handling one request. Work that must keep request order (appends) happens before this
/// returns; waiting (durability, long polls) happens in the returned future.
pub fn handle(
    ctx: &Arc<Context>,
    frame: Bytes,
    peer: std::net::SocketAddr,
    session: &mut Session,
    mute: &Arc<Mute>,
) -> Result<(PendingResponse, After), DispatchError> {
    let frame_bytes = frame.len();
    let p = prefix(&frame);
    let api = ApiKey::try_from(p.api_key).map_err(|_| DispatchError::UnknownApiKey(p.api_key))?;
    if !is_sasl(api) && api != ApiKey::ApiVersions {
        if session.needs_login {
            return Err(DispatchError::Unauthenticated(api));
        }
        if session
            .expires
            .is_some_and(|e| e <= std::time::Instant::now())
        {
            return Err(DispatchError::SessionExpired(api));
        }
    }
    let Some((min, max)) = versions::supported(api) else {
        return Err(DispatchError::UnknownApiKey(p.api_key));
    };
    if p.version < min || p.version > max {
        if api == ApiKey::ApiVersions {
            // KIP-511: answer in v0 with the error and our versions so the client can downgrade.
            let resp = handlers::api_versions::unsupported();
            return Ok((
                ready(encode(p.correlation_id, api, 0, resp.into())),
                After::Continue,
            ));
        }
        return Err(DispatchError::UnsupportedVersion {
            api,
            version: p.version,
            min,
            max,
        });
    }
    let malformed = |reason: String| DispatchError::Malformed {
        api,
        version: p.version,
        reason,
    };
    let mut buf = frame;
    let header = RequestHeader::decode(&mut buf, api.request_header_version(p.version))
        .map_err(|e| malformed(format!("header: {e}")))?;
    let trailing = precheck::check_request_body(p.api_key, p.version, &buf).map_err(|e| {
        tracing::debug!(?api, version = p.version, body = ?&buf[..buf.len().min(256)], "precheck refused");
        malformed(e.to_string())
    })?;
    if trailing > 0 {
        tracing::trace!(
            ?api,
            version = p.version,
            trailing,
            "ignoring bytes after the request body"
        );
    }
    let request =
        RequestKind::decode(api, &mut buf, p.version).map_err(|e| malformed(e.to_string()))?;
    let version = p.version;
    let correlation_id = header.correlation_id;
    let started = std::time::Instant::now();
    match request {
        RequestKind::SaslHandshake(r) => {
            let resp = security::handshake(ctx, session, r, version);
            crate::metrics::record(api, started, None);
            return Ok((
                ready(encode(correlation_id, api, version, resp.into())),
                After::Continue,
            ));
        }
        RequestKind::SaslAuthenticate(r) => {
            let (resp, outcome) = security::authenticate(ctx, session, r);
            crate::metrics::record(api, started, None);
            let chunks = encode(correlation_id, api, version, resp.into());
            return Ok(match outcome {
                SaslOutcome::Continue => (ready(chunks), After::Continue),
                SaslOutcome::Failed(why) => {
                    let (delay, failures) = ctx.login_failures.record(peer.ip());
                    // Never the password or the proof: who tried, from where, how often. A
                    // guesser's flood is logged at the 1st, 2nd, 4th, 8th, ... failure.
                    if failures.is_power_of_two() {
                        tracing::warn!(%peer, failures, "failed authentication: {why} ({failures} from this address in the last minute)");
                    }
                    let pending: PendingResponse = Box::pin(async move {
                        tokio::time::sleep(delay).await;
                        chunks
                    });
                    (pending, After::Close)
                }
            });
        }
        _ => {}
    }
    let client = handlers::Client {
        id: header
            .client_id
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_default(),
        host: format!("/{}", peer.ip()),
        ip: session.host.clone(),
        principal: session.principal.clone(),
    };
    let reply = crate::authz::handle(ctx, request, version, &client);
    // Quotas: request handling time for every request, produce bytes as they arrive, fetch
    // bytes as they leave.
    let record = |kind, amount: f64| {
        ctx.quotas
            .record(&ctx.security, &client.principal, &client.id, kind, amount)
    };
    let mut throttle = record(
        quota::Kind::RequestTime,
        started.elapsed().as_micros() as f64,
    );
    if api == ApiKey::Produce {
        throttle = throttle.max(record(quota::Kind::Produce, frame_bytes as f64));
    }
    mute.extend(throttle);
    let pending: PendingResponse = match reply {
        Reply::Now(mut resp) => {
            crate::metrics::record(api, started, Some(&*resp));
            set_throttle(&mut resp, throttle);
            ready(encode(correlation_id, api, version, *resp))
        }
        Reply::Later(fut) => {
            let (ctx, mute) = (Arc::clone(ctx), Arc::clone(mute));
            Box::pin(async move {
                let resp = fut.await;
                crate::metrics::record(api, started, resp.as_ref());
                let mut resp = resp?;
                let mut throttle = throttle;
                if let ResponseKind::Fetch(f) = &mut resp {
                    let bytes: usize = f
                        .responses
                        .iter()
                        .flat_map(|t| &t.partitions)
                        .map(|p| p.records.as_ref().map_or(0, |r| r.len()))
                        .sum();
                    let record = |amount: f64| {
                        ctx.quotas.record(
                            &ctx.security,
                            &client.principal,
                            &client.id,
                            quota::Kind::Fetch,
                            amount,
                        )
                    };
                    let t = record(bytes as f64);
                    if !t.is_zero() {
                        // Kafka answers a throttled fetch empty and does not count what it
                        // did not send; the consumer asks again for the same offsets.
                        record(-(bytes as f64));
                        f.responses.clear();
                    }
                    mute.extend(t);
                    throttle = throttle.max(t);
                }
                set_throttle(&mut resp, throttle);
                encode(correlation_id, api, version, resp)
            })
        }
        Reply::Nothing => {
            crate::metrics::record(api, started, None);
            Box::pin(async { None })
        }
    };
    Ok((pending, After::Continue))
}

/// Tells a throttled client how long it is held back (Produce and Fetch carry the quotas that
/// matter to clients; every other response keeps 0).
fn set_throttle(resp: &mut ResponseKind, throttle: std::time::Duration) {
    let ms = i32::try_from(throttle.as_millis()).unwrap_or(i32::MAX);
    if ms == 0 {
        return;
    }
    match resp {
        ResponseKind::Produce(p) => p.throttle_time_ms = ms,
        ResponseKind::Fetch(f) => f.throttle_time_ms = ms,
        _ => {}
    }
}

fn ready(chunks: Option<Vec<Bytes>>) -> PendingResponse {
    Box::pin(async move { chunks })
}

/// A length-prefixed response frame as chunks for one vectored write. `None` (logged) if our own
/// response cannot be encoded, which is a bug; the client then times out instead of the broker
/// crashing.
fn encode(
    correlation_id: i32,
    api: ApiKey,
    version: i16,
    resp: ResponseKind,
) -> Option<Vec<Bytes>> {
    let mut head = BytesMut::with_capacity(64);
    head.put_i32(0);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let body = match &resp {
        ResponseKind::Fetch(fetch) => fetch_encoding::encode(fetch, version),
        _ => None,
    };
    let encoded = header
        .encode(&mut head, api.response_header_version(version))
        .and_then(|_| match body {
            Some(_) => Ok(()),
            None => resp.encode(&mut head, version),
        });
    if let Err(e) = encoded {
        tracing::error!(?api, version, "could not encode response: {e}");
        return None;
    }
    let body_len = body.as_ref().map_or(0, |b| b.len());
    let len = (head.len() - 4 + body_len) as i32;
    head[..4].copy_from_slice(&len.to_be_bytes());
    let mut chunks = vec![head.freeze()];
    if let Some(body) = body {
        chunks.extend(body.into_vec());
    }
    Some(chunks)
}
