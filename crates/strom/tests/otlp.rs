//! `--otlp-endpoint`: a record produced with a W3C `traceparent` header gets a produce span and
//! a fetch span in the producer's trace, exported over OTLP/gRPC to a collector (a tonic
//! server built from OpenTelemetry's own protocol definitions), and the header reaches the
//! consumer untouched, so the consumer continues the trace.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::rdk::{consume_all, create_topic, producer};
use common::{free_port, Strom};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::trace::v1::Span;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;

const TRACE_ID: &str = "0af7651916cd43dd8448eb211c80319c";
const PARENT: &str = "b7ad6b7169203331";

#[derive(Clone, Default)]
struct Collector(Arc<Mutex<Vec<Span>>>);

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut spans = self.0.lock().unwrap();
        for resource in request.into_inner().resource_spans {
            for scope in resource.scope_spans {
                spans.extend(scope.spans);
            }
        }
        Ok(tonic::Response::new(ExportTraceServiceResponse {
            partial_success: None,
        }))
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn produce_and_fetch_spans_join_the_records_trace() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let collector = Collector::default();
    let port = free_port();
    let service = TraceServiceServer::new(collector.clone());
    runtime.spawn(async move {
        tonic::transport::Server::builder()
            .add_service(service)
            .serve(format!("127.0.0.1:{port}").parse().unwrap())
            .await
    });

    let dir = tempfile::tempdir().unwrap();
    let endpoint = format!("http://127.0.0.1:{port}");
    let s = Strom::start(dir.path(), &["--otlp-endpoint", &endpoint]);
    runtime.block_on(create_topic(&s.addr(), "traced", 1));
    let traceparent = format!("00-{TRACE_ID}-{PARENT}-01");
    let p = producer(&s.addr(), &[]);
    runtime.block_on(async {
        for (value, header) in [("with", Some(traceparent.as_str())), ("without", None)] {
            let mut record = FutureRecord::<(), str>::to("traced").payload(value);
            if let Some(h) = header {
                record = record.headers(OwnedHeaders::new().insert(Header {
                    key: "traceparent",
                    value: Some(h),
                }));
            }
            p.send(record, Duration::from_secs(10))
                .await
                .expect("delivered");
        }
    });
    let recs = consume_all(&s.addr(), "traced", 1, 2, Duration::from_secs(30));
    assert_eq!(
        recs[0].headers,
        vec![(
            "traceparent".to_string(),
            Some(traceparent.as_bytes().to_vec())
        )],
        "the header reaches the consumer untouched"
    );

    // The batch exporter sends within seconds.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (produce, fetch) = loop {
        {
            let spans = collector.0.lock().unwrap();
            let find = |name: &str| spans.iter().find(|s| s.name == name).cloned();
            if let (Some(p), Some(f)) = (find("produce traced"), find("fetch traced")) {
                break (p, f);
            }
        }
        assert!(
            Instant::now() < deadline,
            "no produce and fetch spans: {:?}",
            collector.0.lock().unwrap()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    for span in [&produce, &fetch] {
        assert_eq!(hex(&span.trace_id), TRACE_ID, "{span:?}");
        assert_eq!(hex(&span.parent_span_id), PARENT, "{span:?}");
        assert!(span.end_time_unix_nano >= span.start_time_unix_nano);
        let attribute = |key: &str| {
            span.attributes
                .iter()
                .find(|a| a.key == key)
                .and_then(|a| a.value.clone())
        };
        assert!(
            attribute("messaging.destination.name").is_some(),
            "{span:?}"
        );
    }
    // Only the traced record's spans: the untraced one made none of its own.
    let spans = collector.0.lock().unwrap();
    assert!(
        spans.iter().all(|s| hex(&s.trace_id) == TRACE_ID),
        "{spans:?}"
    );
}
