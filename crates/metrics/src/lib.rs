//! The process's Prometheus instruments (`prometheus-client`). Every layer, from the Raft
//! driver to the Kafka and etcd front ends, records into [`global`] where things happen, so no
//! handle has to be threaded through; the HTTP face serves them at `GET /metrics` together
//! with values read at scrape time (the broker's collector).
//!
//! Recording is a few atomic adds: label sets are static strings, and per-topic counters are
//! looked up once per topic ([`Metrics::topic`]) and kept by it, not looked up per request.
//! Names follow Prometheus conventions (`strom_` prefix, base units, counters get `_total`
//! from the encoder); `docs/metrics.md` lists them all.

use std::sync::LazyLock;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

pub use prometheus_client;

/// Which face served a request: `kafka`, `etcd`, `http`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub face: &'static str,
    pub api: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub face: &'static str,
    pub api: &'static str,
    pub error: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FaceLabel {
    pub face: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageLabel {
    pub stage: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TopicLabel {
    pub topic: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct GroupLabel {
    pub group: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ConnectorLabel {
    pub connector: String,
}

/// A topic's traffic counters, held by the topic so a produce or fetch adds to them directly.
#[derive(Clone, Debug, Default)]
pub struct TopicCounters {
    pub bytes_in: Counter,
    pub records_in: Counter,
    /// Appends: one per partition of a produce request (one Raft entry on a replicated one).
    pub appends_in: Counter,
    pub bytes_out: Counter,
    pub records_out: Counter,
}

/// Every instrument recorded where things happen.
pub struct Metrics {
    pub requests: Family<RequestLabels, Counter>,
    pub request_seconds: Family<RequestLabels, Histogram>,
    pub request_errors: Family<ErrorLabels, Counter>,
    /// A produce with acks=all, split: `queue` (arrival to appended), `fsync` (appended to
    /// durable on the leader), `replication` (durable on the leader to committed on a majority).
    pub produce_stage_seconds: Family<StageLabel, Histogram>,
    pub fsync_seconds: Histogram,
    bytes_in: Family<TopicLabel, Counter>,
    records_in: Family<TopicLabel, Counter>,
    appends_in: Family<TopicLabel, Counter>,
    bytes_out: Family<TopicLabel, Counter>,
    records_out: Family<TopicLabel, Counter>,
    pub connections_accepted: Family<FaceLabel, Counter>,
    pub connections_closed: Family<FaceLabel, Counter>,
    pub connections_rejected: Family<FaceLabel, Counter>,
    pub connections_open: Family<FaceLabel, Gauge>,
    pub request_bytes_queued: Gauge,
    pub isr_shrinks: Counter,
    pub isr_expands: Counter,
    pub raft_elections: Counter,
    pub raft_leader_changes: Counter,
    pub raft_snapshots_sent: Counter,
    pub group_rebalances: Family<GroupLabel, Counter>,
    pub retention_segments_removed: Counter,
    pub cleaner_passes: Counter,
    pub cleaner_bytes_read: Counter,
    pub cleaner_bytes_removed: Counter,
    pub cleaner_records_removed: Counter,
    pub tier_segments_uploaded: Counter,
    pub tier_bytes_uploaded: Counter,
    pub mirror_records: Family<ConnectorLabel, Counter>,
    pub mirror_bytes: Family<ConnectorLabel, Counter>,
    pub mirror_lag_records: Family<ConnectorLabel, Gauge>,
    pub mirror_lag_seconds: Family<ConnectorLabel, Gauge>,
}

/// Latency buckets from 100 µs to about 26 s, doubling.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 2.0, 19))
}

impl Metrics {
    fn new() -> Metrics {
        Metrics {
            requests: Family::default(),
            request_seconds: Family::new_with_constructor(latency_histogram),
            request_errors: Family::default(),
            produce_stage_seconds: Family::new_with_constructor(latency_histogram),
            fsync_seconds: latency_histogram(),
            bytes_in: Family::default(),
            records_in: Family::default(),
            appends_in: Family::default(),
            bytes_out: Family::default(),
            records_out: Family::default(),
            connections_accepted: Family::default(),
            connections_closed: Family::default(),
            connections_rejected: Family::default(),
            connections_open: Family::default(),
            request_bytes_queued: Gauge::default(),
            isr_shrinks: Counter::default(),
            isr_expands: Counter::default(),
            raft_elections: Counter::default(),
            raft_leader_changes: Counter::default(),
            raft_snapshots_sent: Counter::default(),
            group_rebalances: Family::default(),
            retention_segments_removed: Counter::default(),
            cleaner_passes: Counter::default(),
            cleaner_bytes_read: Counter::default(),
            cleaner_bytes_removed: Counter::default(),
            cleaner_records_removed: Counter::default(),
            tier_segments_uploaded: Counter::default(),
            tier_bytes_uploaded: Counter::default(),
            mirror_records: Family::default(),
            mirror_bytes: Family::default(),
            mirror_lag_records: Family::default(),
            mirror_lag_seconds: Family::default(),
        }
    }

    /// A request to `face`'s `api` was answered after `seconds`.
    pub fn request(&self, face: &'static str, api: &'static str, seconds: f64) {
        let labels = RequestLabels { face, api };
        self.requests.get_or_create(&labels).inc();
        self.request_seconds.get_or_create(&labels).observe(seconds);
    }

    /// An answer of `face`'s `api` carried `error` (the protocol's own name for it).
    pub fn request_error(&self, face: &'static str, api: &'static str, error: &'static str) {
        self.request_errors
            .get_or_create(&ErrorLabels { face, api, error })
            .inc();
    }

    /// `topic`'s counters, created on first use.
    pub fn topic(&self, topic: &str) -> TopicCounters {
        let label = TopicLabel {
            topic: topic.to_string(),
        };
        TopicCounters {
            bytes_in: self.bytes_in.get_or_create(&label).clone(),
            records_in: self.records_in.get_or_create(&label).clone(),
            appends_in: self.appends_in.get_or_create(&label).clone(),
            bytes_out: self.bytes_out.get_or_create(&label).clone(),
            records_out: self.records_out.get_or_create(&label).clone(),
        }
    }

    /// Drops a deleted topic's series, so deleted topics do not pile up in every scrape.
    pub fn forget_topic(&self, topic: &str) {
        let label = TopicLabel {
            topic: topic.to_string(),
        };
        for family in [
            &self.bytes_in,
            &self.records_in,
            &self.appends_in,
            &self.bytes_out,
            &self.records_out,
        ] {
            family.remove(&label);
        }
    }

    /// A connection to `face` was accepted; the returned guard counts it closed when dropped.
    pub fn connection(&'static self, face: &'static str) -> ConnectionGuard {
        let label = FaceLabel { face };
        self.connections_accepted.get_or_create(&label).inc();
        self.connections_open.get_or_create(&label).inc();
        ConnectionGuard {
            metrics: self,
            face,
        }
    }

    /// Registers every instrument in `registry` (whose prefix is `strom`).
    pub fn register(&self, r: &mut Registry) {
        r.register(
            "requests",
            "Requests answered, by face (kafka, etcd, http) and API",
            self.requests.clone(),
        );
        r.register_with_unit(
            "request_duration",
            "Time from a request's arrival to its answer, by face and API (a Kafka produce: until its acks were met; a fetch: including its long poll; an etcd stream: until it opened)",
            Unit::Seconds,
            self.request_seconds.clone(),
        );
        r.register(
            "request_errors",
            "Answers carrying an error, by face, API and the protocol's error name",
            self.request_errors.clone(),
        );
        r.register_with_unit(
            "produce_stage_duration",
            "Stages of an acks=all produce: queue (arrival to appended), fsync (appended to durable on the leader), replication (durable on the leader to committed on a majority)",
            Unit::Seconds,
            self.produce_stage_seconds.clone(),
        );
        r.register_with_unit(
            "fsync_duration",
            "Time of each log fsync (fdatasync); its count is the number of fsyncs",
            Unit::Seconds,
            self.fsync_seconds.clone(),
        );
        r.register_with_unit(
            "topic_in",
            "Record batch bytes produced to a topic",
            Unit::Bytes,
            self.bytes_in.clone(),
        );
        r.register(
            "topic_records_in",
            "Records produced to a topic",
            self.records_in.clone(),
        );
        r.register(
            "topic_appends",
            "Appends to a topic's partitions: one per partition of a produce request, one Raft entry on a replicated partition (records_in / appends is the batching clients achieve)",
            self.appends_in.clone(),
        );
        r.register_with_unit(
            "topic_out",
            "Record batch bytes fetched from a topic (consumers and replicas using Fetch)",
            Unit::Bytes,
            self.bytes_out.clone(),
        );
        r.register(
            "topic_records_out",
            "Records fetched from a topic",
            self.records_out.clone(),
        );
        r.register(
            "connections_accepted",
            "Connections accepted, by face",
            self.connections_accepted.clone(),
        );
        r.register(
            "connections_closed",
            "Connections closed, by face",
            self.connections_closed.clone(),
        );
        r.register(
            "connections_rejected",
            "Connections refused at accept because the face's connection limit was reached",
            self.connections_rejected.clone(),
        );
        r.register(
            "connections_open",
            "Connections open now, by face",
            self.connections_open.clone(),
        );
        r.register_with_unit(
            "request_queued",
            "Bytes of Kafka requests read and not answered yet",
            Unit::Bytes,
            self.request_bytes_queued.clone(),
        );
        r.register(
            "isr_shrinks",
            "ISR shrinks this node reported as a partition leader",
            self.isr_shrinks.clone(),
        );
        r.register(
            "isr_expands",
            "ISR expansions this node reported as a partition leader",
            self.isr_expands.clone(),
        );
        r.register(
            "raft_elections",
            "Raft elections this node started (as a candidate), over all groups",
            self.raft_elections.clone(),
        );
        r.register(
            "raft_leader_changes",
            "Leader changes this node's Raft groups saw",
            self.raft_leader_changes.clone(),
        );
        r.register(
            "raft_snapshots_sent",
            "Snapshots this node sent to followers behind its log start",
            self.raft_snapshots_sent.clone(),
        );
        r.register(
            "group_rebalances",
            "Rebalances (join phases completed) of a consumer group this node coordinates",
            self.group_rebalances.clone(),
        );
        r.register(
            "retention_segments_removed",
            "Segments removed by retention (time, size or DeleteRecords)",
            self.retention_segments_removed.clone(),
        );
        r.register(
            "cleaner_passes",
            "Compaction passes completed",
            self.cleaner_passes.clone(),
        );
        r.register_with_unit(
            "cleaner_read",
            "Bytes the log cleaner read",
            Unit::Bytes,
            self.cleaner_bytes_read.clone(),
        );
        r.register_with_unit(
            "cleaner_removed",
            "Bytes compaction removed (segment bytes before minus after)",
            Unit::Bytes,
            self.cleaner_bytes_removed.clone(),
        );
        r.register(
            "cleaner_records_removed",
            "Records compaction removed",
            self.cleaner_records_removed.clone(),
        );
        r.register(
            "tier_segments_uploaded",
            "Segments uploaded to the object store",
            self.tier_segments_uploaded.clone(),
        );
        r.register_with_unit(
            "tier_uploaded",
            "Bytes uploaded to the object store",
            Unit::Bytes,
            self.tier_bytes_uploaded.clone(),
        );
        r.register(
            "mirror_records",
            "Records a mirror connector wrote here, by connector",
            self.mirror_records.clone(),
        );
        r.register_with_unit(
            "mirror",
            "Key and value bytes a mirror connector wrote here, by connector",
            Unit::Bytes,
            self.mirror_bytes.clone(),
        );
        r.register(
            "mirror_lag_records",
            "Offsets of the source a mirror connector has not copied yet (every partition)",
            self.mirror_lag_records.clone(),
        );
        r.register_with_unit(
            "mirror_lag",
            "Age of the last record a mirror connector copied, on its partitions that are behind (0 when caught up)",
            Unit::Seconds,
            self.mirror_lag_seconds.clone(),
        );
    }
}

/// An open connection; counted closed when dropped.
pub struct ConnectionGuard {
    metrics: &'static Metrics,
    face: &'static str,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        let label = FaceLabel { face: self.face };
        self.metrics.connections_open.get_or_create(&label).dec();
        self.metrics.connections_closed.get_or_create(&label).inc();
    }
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's instruments.
pub fn global() -> &'static Metrics {
    &METRICS
}
