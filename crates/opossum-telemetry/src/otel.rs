//! OpenTelemetry over OTLP/HTTP: `tracing` spans become OTel spans (tracing-opentelemetry),
//! and the Prometheus registry's families are exported as OTel metrics by observable
//! instruments that read the registry at each collection, so both outputs show the same
//! numbers from one set of instruments.

use std::time::Duration;

use anyhow::Context;
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Meter, MeterProvider as _};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};
use opentelemetry_sdk::trace::SdkTracerProvider;
use prometheus::proto::{MetricFamily, MetricType};

use crate::metrics::metrics;

/// The providers, shut down (flushed) on drop.
pub(crate) struct Otel {
    pub(crate) tracer: SdkTracerProvider,
    meter: SdkMeterProvider,
}

impl Drop for Otel {
    fn drop(&mut self) {
        let _ = self.tracer.force_flush();
        let _ = self.tracer.shutdown();
        let _ = self.meter.force_flush();
        let _ = self.meter.shutdown();
    }
}

/// Where and how to export.
pub(crate) struct OtlpTarget {
    /// base URL (`/v1/traces` and `/v1/metrics` are appended); `None`: the OTEL_* variables
    pub(crate) endpoint: Option<String>,
    pub(crate) json: bool,
    pub(crate) interval: Duration,
}

pub(crate) fn start(service: &str, target: &OtlpTarget) -> anyhow::Result<Otel> {
    let protocol = if target.json {
        Protocol::HttpJson
    } else {
        Protocol::HttpBinary
    };
    let endpoint = |path: &str| {
        target
            .endpoint
            .as_ref()
            .map(|base| format!("{}/{path}", base.trim_end_matches('/')))
    };
    let resource = Resource::builder()
        .with_service_name(service.to_string())
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();

    let mut spans = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(protocol);
    if let Some(url) = endpoint("v1/traces") {
        spans = spans.with_endpoint(url);
    }
    let tracer = SdkTracerProvider::builder()
        .with_batch_exporter(spans.build().context("building the OTLP span exporter")?)
        .with_resource(resource.clone())
        .build();

    let mut exporter = opentelemetry_otlp::MetricExporter::builder()
        .with_http()
        .with_protocol(protocol);
    if let Some(url) = endpoint("v1/metrics") {
        exporter = exporter.with_endpoint(url);
    }
    let reader = PeriodicReader::builder(
        exporter
            .build()
            .context("building the OTLP metric exporter")?,
    )
    .with_interval(target.interval)
    .build();
    let meter = SdkMeterProvider::builder()
        .with_reader(reader)
        .with_resource(resource)
        .build();
    bridge(&meter.meter("opossum"));
    Ok(Otel { tracer, meter })
}

/// One observable instrument per registry family: counters as OTel counters, gauges as
/// gauges, histograms as their `_count` and `_sum` counters.
fn bridge(meter: &Meter) {
    for family in metrics().families() {
        let name = family.name.clone();
        let help = family.help.clone();
        match family.kind {
            MetricType::COUNTER => {
                let read = name.clone();
                meter
                    .f64_observable_counter(name)
                    .with_description(help)
                    .with_callback(move |observer| {
                        for (value, attributes) in samples(&read, |m| m.get_counter().get_value()) {
                            observer.observe(value, &attributes);
                        }
                    })
                    .build();
            }
            MetricType::HISTOGRAM => {
                for (suffix, sum) in [("_count", false), ("_sum", true)] {
                    let read = name.clone();
                    meter
                        .f64_observable_counter(format!("{name}{suffix}"))
                        .with_description(help.clone())
                        .with_callback(move |observer| {
                            for (value, attributes) in samples(&read, |m| {
                                let h = m.get_histogram();
                                if sum {
                                    h.get_sample_sum()
                                } else {
                                    h.get_sample_count() as f64
                                }
                            }) {
                                observer.observe(value, &attributes);
                            }
                        })
                        .build();
                }
            }
            _ => {
                let read = name.clone();
                meter
                    .f64_observable_gauge(name)
                    .with_description(help)
                    .with_callback(move |observer| {
                        for (value, attributes) in samples(&read, |m| m.get_gauge().get_value()) {
                            observer.observe(value, &attributes);
                        }
                    })
                    .build();
            }
        }
    }
}

fn samples(
    name: &str,
    value: impl Fn(&prometheus::proto::Metric) -> f64,
) -> Vec<(f64, Vec<KeyValue>)> {
    let families: Vec<MetricFamily> = metrics().gather();
    families
        .iter()
        .filter(|f| f.name() == name)
        .flat_map(|f| f.get_metric())
        .map(|m| {
            let attributes = m
                .get_label()
                .iter()
                .map(|l| KeyValue::new(l.name().to_string(), l.value().to_string()))
                .collect();
            (value(m), attributes)
        })
        .collect()
}
