//! OpenTelemetry spans for produce and fetch, so that a trace crosses Strom from producer to
//! consumer: a record carrying a W3C `traceparent` header (as OpenTelemetry's Kafka
//! instrumentations write it) gets a `produce {topic}` span when it is appended and acknowledged,
//! and a `fetch {topic}` span when it is served, both children of the record's context. The
//! header itself is never changed, so the consumer continues the same trace.
//!
//! Off unless `--otlp-endpoint` is given ([`enable`]): finding the headers decodes the records
//! of each batch, which the produce and fetch paths otherwise never do. Compressed batches are
//! not decoded (their records are not looked at), and at most [`MAX_CONTEXTS`] records' contexts
//! are kept per span: the first is the parent, the others are links.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use bytes::Bytes;
use kafka_protocol::records::RecordBatchDecoder;
use opentelemetry::trace::{
    Link, SpanContext, SpanId, SpanKind, TraceContextExt, TraceFlags, TraceId, TraceState, Tracer,
    TracerProvider,
};
use opentelemetry::{Context, KeyValue};

/// Record contexts kept per span.
pub const MAX_CONTEXTS: usize = 32;

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Turns span recording on (the exporter is installed as the global tracer provider).
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// `00-<trace id>-<span id>-<flags>`, as W3C Trace Context has it.
fn parse_traceparent(value: &[u8]) -> Option<SpanContext> {
    let text = std::str::from_utf8(value).ok()?;
    let mut parts = text.trim().split('-');
    let (version, trace, span, flags) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if version != "00" || trace.len() != 32 || span.len() != 16 || flags.len() != 2 {
        return None;
    }
    let trace = TraceId::from_hex(trace).ok()?;
    let span = SpanId::from_hex(span).ok()?;
    let flags = u8::from_str_radix(flags, 16).ok()?;
    let context = SpanContext::new(
        trace,
        span,
        TraceFlags::new(flags),
        true,
        TraceState::default(),
    );
    context.is_valid().then_some(context)
}

/// The trace contexts of the records in `batches` (whole record batches), in offset order.
pub fn record_contexts(batches: &[Bytes]) -> Vec<SpanContext> {
    let mut out = Vec::new();
    for batch in batches {
        let mut buf = batch.clone();
        // A compressed batch fails to decode here (no codecs are built in): skipped.
        let Ok(sets) = RecordBatchDecoder::decode_all(&mut buf) else {
            continue;
        };
        for record in sets.iter().flat_map(|s| &s.records) {
            let header = record
                .headers
                .iter()
                .find(|(k, _)| k.as_str() == "traceparent")
                .and_then(|(_, v)| v.as_ref());
            if let Some(context) = header.and_then(|v| parse_traceparent(v)) {
                out.push(context);
                if out.len() >= MAX_CONTEXTS {
                    return out;
                }
            }
        }
    }
    out
}

/// Records a span `name` from `started` to now, a child of the first of `contexts` and linked
/// to the rest. Nothing when `contexts` is empty: untraced records get no span.
pub fn span(
    name: String,
    started: SystemTime,
    contexts: &[SpanContext],
    attributes: Vec<KeyValue>,
) {
    let Some((first, rest)) = contexts.split_first() else {
        return;
    };
    let tracer = opentelemetry::global::tracer_provider().tracer("strom");
    let parent = Context::new().with_remote_span_context(first.clone());
    let links = rest.iter().map(|c| Link::with_context(c.clone())).collect();
    let mut attributes = attributes;
    attributes.push(KeyValue::new("messaging.system", "kafka"));
    attributes.push(KeyValue::new(
        "messaging.batch.message_count",
        contexts.len() as i64,
    ));
    let span = tracer
        .span_builder(name)
        .with_kind(SpanKind::Server)
        .with_start_time(started)
        .with_links(links)
        .with_attributes(attributes)
        .start_with_context(&tracer, &parent);
    drop(span);
}

/// The attributes naming a partition.
pub fn partition_attributes(topic: &str, partition: i32) -> Vec<KeyValue> {
    vec![
        KeyValue::new("messaging.destination.name", topic.to_string()),
        KeyValue::new("messaging.destination.partition.id", partition.to_string()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparents_are_parsed_as_w3c_has_them() {
        let c = parse_traceparent(b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
            .expect("valid");
        assert_eq!(
            c.trace_id(),
            TraceId::from_hex("0af7651916cd43dd8448eb211c80319c").unwrap()
        );
        assert!(c.is_sampled() && c.is_remote());
        for bad in [
            &b"01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"[..],
            b"00-00000000000000000000000000000000-b7ad6b7169203331-01",
            b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b71692033-01",
            b"garbage",
            b"\xff\xfe",
        ] {
            assert!(parse_traceparent(bad).is_none(), "{bad:?}");
        }
    }
}
