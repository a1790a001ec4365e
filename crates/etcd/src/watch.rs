//! Watch: many watchers per bidirectional stream. A watcher is just a key range and the next
//! revision it has to deliver; whenever the applied index moves, each watcher reads its
//! events from the store's history. Nothing is buffered per watcher, so a slow client holds
//! back only its own stream (the bounded channel to it), and every event is delivered once,
//! in revision order, from any start revision still in the history.

use std::collections::BTreeMap;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use etcd_client::proto::*;
use futures::Stream;
use strom_kv::EventKind;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status, Streaming};

use crate::convert;
use crate::service::{Etcd, Svc};

/// Values read per watcher per round; a revision's events always go together.
const BATCH_BYTES: usize = 1 << 20;
/// Responses queued towards one client.
const QUEUE: usize = 4;
const INVALID_WATCH_ID: i64 = -1;

type Out = mpsc::Sender<Result<PbWatchResponse, Status>>;

struct Watcher {
    key: Bytes,
    range_end: Bytes,
    next: i64,
    no_put: bool,
    no_delete: bool,
    prev_kv: bool,
    progress_notify: bool,
    fragment: bool,
    last_sent: Instant,
}

#[tonic::async_trait]
impl PbWatchService for Svc {
    type WatchStream = Pin<Box<dyn Stream<Item = Result<PbWatchResponse, Status>> + Send>>;

    async fn watch(
        &self,
        request: Request<Streaming<PbWatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let (tx, rx) = mpsc::channel(QUEUE);
        // Each watch created on the stream is checked against the stream's principal.
        let peer = crate::authz::peer_of(&request);
        tokio::spawn(run(Arc::clone(&self.0), request.into_inner(), tx, peer));
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}

struct Stream_ {
    etcd: Arc<Etcd>,
    out: Out,
    watchers: BTreeMap<i64, Watcher>,
    next_id: i64,
    /// Who opened the stream: every watch created on it is authorized for them.
    peer: crate::authz::Peer,
}

/// The receiver is gone: the stream ends.
struct Closed;

async fn run(
    etcd: Arc<Etcd>,
    mut inbound: Streaming<PbWatchRequest>,
    out: Out,
    peer: crate::authz::Peer,
) {
    let mut applied = etcd.journal().subscribe();
    let interval = etcd.config().progress_notify_interval;
    let mut progress = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    let mut s = Stream_ {
        etcd,
        out,
        watchers: BTreeMap::new(),
        next_id: 0,
        peer,
    };
    loop {
        let step = tokio::select! {
            msg = inbound.message() => match msg {
                Ok(Some(req)) => s.handle(req).await,
                Ok(None) => return,
                Err(e) => {
                    tracing::debug!("watch stream ended: {e}");
                    return;
                }
            },
            changed = applied.changed() => if changed.is_err() { return } else { Ok(()) },
            _ = progress.tick() => s.progress_notify().await,
            _ = s.out.closed() => return,
        };
        if step.is_err() || s.deliver().await.is_err() {
            return;
        }
    }
}

impl Stream_ {
    fn current(&self) -> i64 {
        self.etcd.machine().store.revision()
    }

    async fn send(&self, resp: PbWatchResponse) -> Result<(), Closed> {
        self.out.send(Ok(resp)).await.map_err(|_| Closed)
    }

    fn response(&self, watch_id: i64, revision: i64) -> PbWatchResponse {
        PbWatchResponse {
            header: Some(self.etcd.header(revision)),
            watch_id,
            ..PbWatchResponse::default()
        }
    }

    async fn handle(&mut self, req: PbWatchRequest) -> Result<(), Closed> {
        match req.request_union {
            Some(PbWatchRequestUnion::CreateRequest(c)) => {
                let current = self.current();
                let refuse = |reason: String| PbWatchResponse {
                    created: true,
                    canceled: true,
                    cancel_reason: reason,
                    ..self.response(INVALID_WATCH_ID, current)
                };
                let allowed = self.etcd.authz().is_none_or(|a| {
                    a.check_peer(
                        &self.peer,
                        strom_auth::Operation::Read,
                        &c.key,
                        &c.range_end,
                    )
                    .is_ok()
                });
                if !allowed {
                    return self
                        .send(refuse("etcdserver: permission denied".into()))
                        .await;
                }
                if !c.range_end.is_empty()
                    && c.range_end != [0]
                    && c.key.as_slice() >= c.range_end.as_slice()
                {
                    return self
                        .send(refuse("mvcc: watcher range is empty".into()))
                        .await;
                }
                if self.watchers.len() >= self.etcd.config().max_watchers_per_stream {
                    let max = self.etcd.config().max_watchers_per_stream;
                    return self
                        .send(refuse(format!(
                            "strom: too many watchers on this stream (at most {max}); open another stream"
                        )))
                        .await;
                }
                let id = if c.watch_id != 0 {
                    if self.watchers.contains_key(&c.watch_id) {
                        return self
                            .send(refuse("mvcc: duplicate watch ID provided".into()))
                            .await;
                    }
                    c.watch_id
                } else {
                    while self.watchers.contains_key(&self.next_id) {
                        self.next_id += 1;
                    }
                    self.next_id
                };
                let next = if c.start_revision > 0 {
                    c.start_revision
                } else {
                    current + 1
                };
                self.watchers.insert(
                    id,
                    Watcher {
                        key: Bytes::from(c.key),
                        range_end: Bytes::from(c.range_end),
                        next,
                        no_put: c.filters.contains(&0),
                        no_delete: c.filters.contains(&1),
                        prev_kv: c.prev_kv,
                        progress_notify: c.progress_notify,
                        fragment: c.fragment,
                        last_sent: Instant::now(),
                    },
                );
                let created = PbWatchResponse {
                    created: true,
                    ..self.response(id, current)
                };
                self.send(created).await
            }
            Some(PbWatchRequestUnion::CancelRequest(c)) => {
                if self.watchers.remove(&c.watch_id).is_some() {
                    let current = self.current();
                    let canceled = PbWatchResponse {
                        canceled: true,
                        ..self.response(c.watch_id, current)
                    };
                    return self.send(canceled).await;
                }
                Ok(())
            }
            Some(PbWatchRequestUnion::ProgressRequest(_)) => {
                // Every watcher has been delivered up to the current revision by now.
                self.deliver().await?;
                let current = self.current();
                self.send(self.response(INVALID_WATCH_ID, current)).await
            }
            None => Ok(()),
        }
    }

    /// Sends every watcher its events up to the current revision.
    async fn deliver(&mut self) -> Result<(), Closed> {
        let ids: Vec<i64> = self.watchers.keys().copied().collect();
        for id in ids {
            while let Some(w) = self.watchers.get(&id) {
                let (events, next, compacted, current) = {
                    let m = self.etcd.machine();
                    let current = m.store.revision();
                    let compacted = m.store.compacted();
                    if w.next > current || w.next < compacted {
                        (Vec::new(), w.next, compacted, current)
                    } else {
                        let (ev, next) = m.store.events(w.next, &w.key, &w.range_end, BATCH_BYTES);
                        (ev, next, compacted, current)
                    }
                };
                if w.next > current {
                    break;
                }
                if w.next < compacted {
                    // The history it needs is gone: created, then canceled with the
                    // compaction point, which clients turn into ErrCompacted.
                    self.watchers.remove(&id);
                    let resp = PbWatchResponse {
                        canceled: true,
                        compact_revision: compacted,
                        cancel_reason: strom_kv::KvError::Compacted.to_string(),
                        ..self.response(id, current)
                    };
                    self.send(resp).await?;
                    break;
                }
                let (no_put, no_delete, prev_kv, fragment) =
                    (w.no_put, w.no_delete, w.prev_kv, w.fragment);
                let events: Vec<PbEvent> = events
                    .into_iter()
                    .filter(|e| match e.kind {
                        EventKind::Put => !no_put,
                        EventKind::Delete => !no_delete,
                    })
                    .map(|e| convert::event_out(e, prev_kv))
                    .collect();
                if let Some(w) = self.watchers.get_mut(&id) {
                    w.next = next;
                    if !events.is_empty() {
                        w.last_sent = Instant::now();
                    }
                }
                if !events.is_empty() {
                    // The header says how far this response covers: a client resuming
                    // from header.revision + 1 misses nothing.
                    self.send_events(id, events, next - 1, fragment).await?;
                }
            }
        }
        Ok(())
    }

    async fn send_events(
        &self,
        id: i64,
        events: Vec<PbEvent>,
        revision: i64,
        fragment: bool,
    ) -> Result<(), Closed> {
        let limit = self.etcd.config().max_request_bytes;
        let size = |e: &PbEvent| {
            let kv =
                |k: &Option<PbKeyValue>| k.as_ref().map_or(0, |k| k.key.len() + k.value.len() + 48);
            kv(&e.kv) + kv(&e.prev_kv)
        };
        if !fragment || events.iter().map(size).sum::<usize>() <= limit {
            let resp = PbWatchResponse {
                events,
                ..self.response(id, revision)
            };
            return self.send(resp).await;
        }
        let mut chunk = Vec::new();
        let mut bytes = 0;
        let mut rest = events.into_iter().peekable();
        while let Some(e) = rest.next() {
            bytes += size(&e);
            chunk.push(e);
            let last = rest.peek().is_none();
            if last || bytes + rest.peek().map_or(0, size) > limit {
                let resp = PbWatchResponse {
                    events: std::mem::take(&mut chunk),
                    fragment: !last,
                    ..self.response(id, revision)
                };
                self.send(resp).await?;
                bytes = 0;
            }
        }
        Ok(())
    }

    /// Watchers that asked for progress notifications and heard nothing for an interval get
    /// an empty response with the current revision.
    async fn progress_notify(&mut self) -> Result<(), Closed> {
        self.deliver().await?;
        let interval = self.etcd.config().progress_notify_interval;
        let current = self.current();
        let due: Vec<i64> = self
            .watchers
            .iter_mut()
            .filter(|(_, w)| w.progress_notify && w.last_sent.elapsed() >= interval / 2)
            .map(|(id, w)| {
                w.last_sent = Instant::now();
                *id
            })
            .collect();
        for id in due {
            self.send(self.response(id, current)).await?;
        }
        Ok(())
    }
}
