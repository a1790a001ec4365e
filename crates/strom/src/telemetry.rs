//! `--otlp-endpoint`: produce and fetch spans (see `strom_kafka::trace`) exported with
//! OpenTelemetry's SDK over OTLP/gRPC, batched off the request path.

use anyhow::Context as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;

/// Installs the exporter to `endpoint` (e.g. `http://127.0.0.1:4317`) as the global tracer
/// provider and turns span recording on. The returned provider flushes on `shutdown`.
pub fn start(endpoint: &str, node_id: i32) -> anyhow::Result<SdkTracerProvider> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(endpoint)
        .build()
        .with_context(|| format!("cannot set up the OTLP exporter to {endpoint}"))?;
    let resource = Resource::builder()
        .with_service_name("strom")
        .with_attribute(opentelemetry::KeyValue::new(
            "service.instance.id",
            node_id.to_string(),
        ))
        .build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build();
    opentelemetry::global::set_tracer_provider(provider.clone());
    strom_kafka::trace::enable();
    tracing::info!(endpoint, "exporting produce and fetch spans over OTLP");
    Ok(provider)
}
