//! Logging and tracing set up once per process: human or JSON logs through
//! `tracing-subscriber`, and, when an OTLP endpoint is configured, spans
//! exported over OTLP/gRPC. The returned guard flushes the exporter on drop.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{CommonArgs, LogFormat};

/// Flushes exported spans when dropped.
#[derive(Debug)]
pub struct Guard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(p) = self.provider.take()
            && let Err(e) = p.shutdown()
        {
            eprintln!("telemetry: flushing spans failed: {e}");
        }
    }
}

/// Installs the global subscriber. Must run inside a tokio runtime (the
/// OTLP exporter needs one). Calling it twice is harmless: the second
/// subscriber is not installed.
pub fn init(service: &'static str, args: &CommonArgs) -> Guard {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&args.log))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let mut provider = None;
    let otel = match args.otlp_endpoint.as_deref().filter(|e| !e.is_empty()) {
        Some(endpoint) => match opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .build()
        {
            Ok(exporter) => {
                let p = SdkTracerProvider::builder()
                    .with_batch_exporter(exporter)
                    .with_resource(
                        opentelemetry_sdk::Resource::builder()
                            .with_service_name(service)
                            .build(),
                    )
                    .build();
                let tracer = p.tracer(service);
                provider = Some(p);
                Some(tracing_opentelemetry::layer().with_tracer(tracer))
            }
            Err(e) => {
                eprintln!("telemetry: OTLP export disabled: {e}");
                None
            }
        },
        None => None,
    };
    let registry = tracing_subscriber::registry().with(filter).with(otel);
    let _ = match args.log_format {
        LogFormat::Human => registry
            .with(tracing_subscriber::fmt::layer().with_target(false))
            .try_init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true),
            )
            .try_init(),
    };
    Guard { provider }
}
