//! The origin's own counters, registered once per process in the telemetry registry beside
//! the tier, queue and HTTP families, so `/metrics` is one exposition and the status page
//! reads the same numbers.

use std::sync::OnceLock;

use prometheus::{IntCounter, IntCounterVec, Opts};

/// The counters (one origin per process; a second one would share them).
pub(crate) struct Counters {
    pub(crate) requests: IntCounter,
    pub(crate) errors: IntCounter,
    pub(crate) not_modified: IntCounter,
    pub(crate) rejected: IntCounter,
    pub(crate) computations: IntCounter,
    pub(crate) answers: IntCounterVec,
}

/// This process's origin counters.
pub(crate) fn counters() -> &'static Counters {
    static COUNTERS: OnceLock<Counters> = OnceLock::new();
    COUNTERS.get_or_init(|| {
        let counter = |name: &str, help: &str| {
            let counter = IntCounter::new(name, help).expect("valid metric");
            opossum_telemetry::metrics().register(Box::new(counter.clone()));
            counter
        };
        let answers = IntCounterVec::new(
            Opts::new(
                "opossum_http_answers_total",
                "requests by where the answer came from",
            ),
            &["source"],
        )
        .expect("valid metric");
        opossum_telemetry::metrics().register(Box::new(answers.clone()));
        Counters {
            requests: counter(
                "opossum_http_requests_total",
                "image and info requests answered",
            ),
            errors: counter(
                "opossum_http_errors_total",
                "requests answered with an error status",
            ),
            not_modified: counter("opossum_http_not_modified_total", "requests answered 304"),
            rejected: counter(
                "opossum_http_rejected_total",
                "misses refused with 503 (computation queue full or timed out)",
            ),
            computations: counter(
                "opossum_origin_computations_total",
                "misses this origin computed or submitted to the fleet",
            ),
            answers,
        }
    })
}
