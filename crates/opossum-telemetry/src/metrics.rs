//! The metric set every process exports, on one Prometheus registry per process.
//!
//! Counters a process increments itself (jobs, HTTP answers, warm jobs) are recorded where the
//! event happens. Numbers that live elsewhere (a tier's size, Redis's memory, a queue's depth,
//! the hierarchy's hit counters) are pulled by a [`crate::Refresh`] just before each scrape,
//! export or summary line, so they are never staler than the reader.
//!
//! Labels are bounded by construction: tier, category, queue, state, outcome, strategy, route
//! and source all come from fixed sets in code; an image id or key is never a label.

use std::sync::OnceLock;

use prometheus::core::{AtomicU64, GenericCounterVec};
use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// A counter family holding absolute totals copied from elsewhere.
type CounterVec = GenericCounterVec<AtomicU64>;

/// The process's metrics.
pub struct Metrics {
    registry: Registry,
    cache_size: IntGaugeVec,
    cache_capacity: IntGaugeVec,
    cache_items: IntGaugeVec,
    cache_memory: IntGaugeVec,
    cache_hits: CounterVec,
    cache_misses: CounterVec,
    cache_writes: CounterVec,
    cache_errors: CounterVec,
    cache_evictions: CounterVec,
    cache_hit_ratio: GaugeVec,
    cache_miss_ratio: GaugeVec,
    cache_average_ttl: GaugeVec,
    overall_hit_ratio: prometheus::Gauge,
    computed: CounterVec,
    queue_jobs: IntGaugeVec,
    queue_backlog: IntGaugeVec,
    queue_workers: IntGaugeVec,
    jobs: CounterVec,
    job_duration: HistogramVec,
    http_requests: CounterVec,
    http_duration: HistogramVec,
    warm_jobs: CounterVec,
    info: IntGaugeVec,
    allocator: IntGaugeVec,
    families: Vec<Family>,
    /// the HTTP children per route of [`HTTP_ROUTES`], resolved once: the origin's hot path
    /// then touches two atomics, never the families' label maps and locks
    http_children: Vec<(
        Vec<prometheus::core::GenericCounter<AtomicU64>>,
        prometheus::Histogram,
    )>,
}

/// The origin's routes and status classes, the only values of their labels.
const HTTP_ROUTES: [&str; 2] = ["img", "info"];
const HTTP_CLASSES: [&str; 4] = ["2xx", "3xx", "4xx", "5xx"];

/// A registered family: name, help and type, known before it has samples.
#[derive(Debug, Clone)]
pub(crate) struct Family {
    pub(crate) name: String,
    pub(crate) help: String,
    pub(crate) kind: prometheus::proto::MetricType,
}

/// One tier's usage, as [`Metrics::set_tier`] takes it.
#[derive(Debug, Clone, Copy, Default)]
pub struct TierGauges {
    /// bytes held
    pub bytes: u64,
    /// configured capacity (0: unknown)
    pub capacity: u64,
    /// entries held
    pub items: u64,
    /// memory held (Redis: `used_memory`; the memory tier: its bytes; disk: RocksDB's caches
    /// and memtables in this process)
    pub memory: Option<u64>,
    /// entries evicted for space since the tier (or the Redis server) started
    pub evictions: Option<u64>,
}

/// One tier's lookup counters for one category, totals since the process started.
#[derive(Debug, Clone, Copy, Default)]
pub struct TierCounts {
    /// lookups answered
    pub hits: u64,
    /// lookups not answered
    pub misses: u64,
    /// entries written
    pub writes: u64,
    /// sum of the TTLs written, milliseconds
    pub ttl_ms_total: u64,
}

/// A queue's depth by state (notes/apalis-redis-1.0.md: read with plain Redis commands).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct QueueGauges {
    /// waiting for room under the due cap
    pub parked: u64,
    /// due now: a worker will take them next
    pub due: u64,
    /// waiting to be retried after a transient failure
    pub retrying: u64,
    /// fetched by a worker and not yet acknowledged
    pub in_flight: u64,
    /// gave up after the last retry
    pub dead: u64,
    /// workers with a live heartbeat
    pub workers: u64,
}

impl QueueGauges {
    /// Jobs still to run: parked, due, retrying and in flight (what autoscaling reads).
    pub fn backlog(&self) -> u64 {
        self.parked + self.due + self.retrying + self.in_flight
    }
}

const OVERALL_HELP: &str = "share of this process's requests that some cache tier answered";

static METRICS: OnceLock<Metrics> = OnceLock::new();

/// This process's metrics.
pub fn metrics() -> &'static Metrics {
    METRICS.get_or_init(Metrics::new)
}

fn register<C: prometheus::core::Collector + Clone + 'static>(registry: &Registry, c: C) -> C {
    registry
        .register(Box::new(c.clone()))
        .expect("metric names are fixed and unique");
    c
}

impl Metrics {
    fn new() -> Metrics {
        use prometheus::proto::MetricType;
        let registry = Registry::new();
        let r = &registry;
        let families = std::cell::RefCell::new(Vec::new());
        let describe = |name: &str, help: &str, kind: MetricType| {
            families.borrow_mut().push(Family {
                name: name.into(),
                help: help.into(),
                kind,
            });
        };
        let int_gauge = |name: &str, help: &str, labels: &[&str]| {
            describe(name, help, MetricType::GAUGE);
            register(
                r,
                IntGaugeVec::new(Opts::new(name, help), labels).expect("valid metric"),
            )
        };
        let gauge = |name: &str, help: &str, labels: &[&str]| {
            describe(name, help, MetricType::GAUGE);
            register(
                r,
                GaugeVec::new(Opts::new(name, help), labels).expect("valid metric"),
            )
        };
        let counter = |name: &str, help: &str, labels: &[&str]| {
            describe(name, help, MetricType::COUNTER);
            register(
                r,
                CounterVec::new(Opts::new(name, help), labels).expect("valid metric"),
            )
        };
        let histogram = |name: &str, help: &str, labels: &[&str], buckets: Vec<f64>| {
            describe(name, help, MetricType::HISTOGRAM);
            register(
                r,
                HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)
                    .expect("valid metric"),
            )
        };
        let seconds = vec![
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            30.0,
        ];
        Metrics {
            cache_size: int_gauge("opossum_cache_size_bytes", "bytes held by a cache tier", &["tier"]),
            cache_capacity: int_gauge(
                "opossum_cache_capacity_bytes",
                "configured capacity of a cache tier (0: unbounded or unknown)",
                &["tier"],
            ),
            cache_items: int_gauge("opossum_cache_items", "entries held by a cache tier", &["tier"]),
            cache_memory: int_gauge(
                "opossum_cache_memory_bytes",
                "memory a cache tier holds (redis: used_memory; disk: what RocksDB keeps in this process's memory)",
                &["tier"],
            ),
            cache_hits: counter(
                "opossum_cache_hits_total",
                "cache lookups answered by a tier",
                &["tier", "category"],
            ),
            cache_misses: counter(
                "opossum_cache_misses_total",
                "cache lookups a tier could not answer",
                &["tier", "category"],
            ),
            cache_writes: counter(
                "opossum_cache_writes_total",
                "entries written to a tier",
                &["tier", "category"],
            ),
            cache_errors: counter(
                "opossum_cache_errors_total",
                "tier operations that failed (the tier is then skipped for a while)",
                &["tier"],
            ),
            cache_evictions: counter(
                "opossum_cache_evictions_total",
                "entries evicted for space (redis: since the server started); rate() gives the eviction rate",
                &["tier"],
            ),
            cache_hit_ratio: gauge(
                "opossum_cache_hit_ratio",
                "hits / lookups of a tier since this process started",
                &["tier"],
            ),
            cache_miss_ratio: gauge(
                "opossum_cache_miss_ratio",
                "misses / lookups of a tier since this process started",
                &["tier"],
            ),
            cache_average_ttl: gauge(
                "opossum_cache_average_ttl_seconds",
                "average TTL of the entries this process wrote to a tier",
                &["tier"],
            ),
            overall_hit_ratio: register(
                {
                    describe(
                        "opossum_cache_overall_hit_ratio",
                        OVERALL_HELP,
                        MetricType::GAUGE,
                    );
                    r
                },
                prometheus::Gauge::new(
                    "opossum_cache_overall_hit_ratio",
                    OVERALL_HELP,
                )
                .expect("valid metric"),
            ),
            computed: counter(
                "opossum_cache_computed_total",
                "results computed because no tier held them",
                &["category"],
            ),
            allocator: int_gauge(
                "opossum_allocator_bytes",
                "the allocator's totals (jemalloc): allocated, the program's bytes; resident, pages it holds; retained, address space kept unmapped",
                &["state"],
            ),
            queue_jobs: int_gauge(
                "opossum_queue_jobs",
                "jobs in a queue by state",
                &["queue", "state"],
            ),
            queue_backlog: int_gauge(
                "opossum_queue_backlog",
                "jobs still to run in a queue (parked, due, retrying, in flight): the autoscaling signal",
                &["queue"],
            ),
            queue_workers: int_gauge(
                "opossum_queue_workers",
                "workers with a live heartbeat on a queue",
                &["queue"],
            ),
            jobs: counter(
                "opossum_jobs_total",
                "jobs finished by this worker, by queue and outcome",
                &["queue", "outcome"],
            ),
            job_duration: histogram(
                "opossum_job_duration_seconds",
                "time from a job's start to its completion event",
                &["queue", "outcome"],
                seconds.clone(),
            ),
            http_requests: counter(
                "opossum_http_responses_total",
                "HTTP responses by route and status class",
                &["route", "status"],
            ),
            http_duration: histogram(
                "opossum_http_request_duration_seconds",
                "HTTP request latency by route",
                &["route"],
                seconds,
            ),
            warm_jobs: counter(
                "opossum_warm_jobs_total",
                "variants the scheduler considered, by strategy and what became of them",
                &["strategy", "result"],
            ),
            info: int_gauge(
                "opossum_build_info",
                "1, labelled with the service and version",
                &["service", "version"],
            ),
            families: Vec::new(),
            http_children: Vec::new(),
            registry,
        }
        .with_families(families.into_inner())
    }

    fn with_families(mut self, families: Vec<Family>) -> Metrics {
        self.families = families;
        self.http_children = HTTP_ROUTES
            .iter()
            .map(|route| {
                (
                    HTTP_CLASSES
                        .iter()
                        .map(|class| self.http_requests.with_label_values(&[route, class]))
                        .collect(),
                    self.http_duration.with_label_values(&[route]),
                )
            })
            .collect();
        self
    }

    /// Every registered family, with or without samples.
    pub(crate) fn families(&self) -> &[Family] {
        &self.families
    }

    /// Adds a family owned by another crate (the origin's counters) to this registry; a name
    /// already taken is logged and the family left out of the exposition.
    pub fn register(&self, collector: Box<dyn prometheus::core::Collector>) {
        if let Err(e) = self.registry.register(collector) {
            tracing::warn!(error = %e, "metric family not registered");
        }
    }

    /// Marks this process as `service`.
    pub fn set_service(&self, service: &str) {
        self.info
            .with_label_values(&[service, env!("CARGO_PKG_VERSION")])
            .set(1);
    }

    /// A finished job.
    pub fn job(&self, queue: &str, outcome: &str, seconds: f64) {
        self.jobs.with_label_values(&[queue, outcome]).inc();
        self.job_duration
            .with_label_values(&[queue, outcome])
            .observe(seconds);
    }

    /// A finished HTTP request; `status` is the code.
    pub fn http(&self, route: &str, status: u16, seconds: f64) {
        let class = match status {
            200..=299 => 0,
            300..=399 => 1,
            400..=499 => 2,
            _ => 3,
        };
        match HTTP_ROUTES.iter().position(|r| *r == route) {
            Some(index) => {
                let (counters, histogram) = &self.http_children[index];
                counters[class].inc();
                histogram.observe(seconds);
            }
            None => {
                self.http_requests
                    .with_label_values(&[route, HTTP_CLASSES[class]])
                    .inc();
                self.http_duration
                    .with_label_values(&[route])
                    .observe(seconds);
            }
        }
    }

    /// `n` variants of `strategy` ended as `result` (enqueued, cached, duplicate, ...).
    pub fn warm(&self, strategy: &str, result: &str, n: u64) {
        self.warm_jobs
            .with_label_values(&[strategy, result])
            .inc_by(n);
    }

    /// A tier's usage.
    pub fn set_tier(&self, tier: &str, g: &TierGauges) {
        let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.cache_size
            .with_label_values(&[tier])
            .set(clamp(g.bytes));
        self.cache_capacity
            .with_label_values(&[tier])
            .set(clamp(g.capacity));
        self.cache_items
            .with_label_values(&[tier])
            .set(clamp(g.items));
        if let Some(memory) = g.memory {
            self.cache_memory
                .with_label_values(&[tier])
                .set(clamp(memory));
        }
        if let Some(evictions) = g.evictions {
            raise(&self.cache_evictions, &[tier], evictions);
        }
    }

    /// A tier's counters (process totals) per category, and its failed operations.
    pub fn set_tier_counts(&self, tier: &str, categories: &[(&str, TierCounts)], errors: u64) {
        let mut total = TierCounts::default();
        for (category, c) in categories {
            raise(&self.cache_hits, &[tier, category], c.hits);
            raise(&self.cache_misses, &[tier, category], c.misses);
            raise(&self.cache_writes, &[tier, category], c.writes);
            total.hits += c.hits;
            total.misses += c.misses;
            total.writes += c.writes;
            total.ttl_ms_total += c.ttl_ms_total;
        }
        raise(&self.cache_errors, &[tier], errors);
        let lookups = total.hits + total.misses;
        if lookups > 0 {
            let hit = total.hits as f64 / lookups as f64;
            self.cache_hit_ratio.with_label_values(&[tier]).set(hit);
            self.cache_miss_ratio
                .with_label_values(&[tier])
                .set(1.0 - hit);
        }
        if total.writes > 0 {
            self.cache_average_ttl
                .with_label_values(&[tier])
                .set(total.ttl_ms_total as f64 / total.writes as f64 / 1000.0);
        }
    }

    /// Results computed, per category (process totals).
    pub fn set_computed(&self, category: &str, total: u64) {
        raise(&self.computed, &[category], total);
    }

    /// A queue's depth.
    pub fn set_queue(&self, queue: &str, g: &QueueGauges) {
        let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        for (state, n) in [
            ("parked", g.parked),
            ("due", g.due),
            ("retrying", g.retrying),
            ("in_flight", g.in_flight),
            ("dead", g.dead),
        ] {
            self.queue_jobs
                .with_label_values(&[queue, state])
                .set(clamp(n));
        }
        self.queue_backlog
            .with_label_values(&[queue])
            .set(clamp(g.backlog()));
        self.queue_workers
            .with_label_values(&[queue])
            .set(clamp(g.workers));
    }

    /// The Prometheus text exposition (format 0.0.4).
    pub fn encode(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec fails only on a metric the registry itself refused.
        let _ = TextEncoder::new().encode(&self.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    /// Every family with its samples (the OTLP bridge reads these); the allocator's totals
    /// are read now.
    pub fn gather(&self) -> Vec<prometheus::proto::MetricFamily> {
        if let Some(stats) = crate::allocator_stats() {
            for (state, bytes) in [
                ("allocated", stats.allocated),
                ("resident", stats.resident),
                ("retained", stats.retained),
            ] {
                self.allocator
                    .with_label_values(&[state])
                    .set(i64::try_from(bytes).unwrap_or(i64::MAX));
            }
        }
        self.registry.gather()
    }

    /// The one-line summary, as the seed's CacheAnalytics logs it: the share of lookups any
    /// tier answered, each tier's hit rate and size, queue backlogs and jobs done.
    pub fn summary(&self) -> String {
        let families = self.gather();
        let samples = |name: &str| -> Vec<(String, f64)> {
            families
                .iter()
                .filter(|f| f.name() == name)
                .flat_map(|f| f.get_metric())
                .map(|m| {
                    let label = m
                        .get_label()
                        .first()
                        .map(|l| l.value().to_string())
                        .unwrap_or_default();
                    let value = match f_type(&families, name) {
                        prometheus::proto::MetricType::COUNTER => m.get_counter().get_value(),
                        _ => m.get_gauge().get_value(),
                    };
                    (label, value)
                })
                .collect()
        };
        let mut line = String::from("cache summary:");
        let lookups: f64 = samples("opossum_cache_hits_total")
            .iter()
            .chain(samples("opossum_cache_misses_total").iter())
            .map(|(_, n)| n)
            .sum();
        match samples("opossum_cache_overall_hit_ratio").first() {
            Some((_, ratio)) if lookups > 0.0 => {
                line.push_str(&format!(" hit_rate={:.1}%", ratio * 100.0))
            }
            _ => line.push_str(" hit_rate=n/a"),
        }
        let ratios = samples("opossum_cache_hit_ratio");
        for (tier, bytes) in samples("opossum_cache_size_bytes") {
            match ratios.iter().find(|(t, _)| *t == tier) {
                Some((_, ratio)) => line.push_str(&format!(" {tier}={:.1}%", ratio * 100.0)),
                None => line.push_str(&format!(" {tier}=n/a")),
            }
            line.push_str(&format!(",size={:.2}MB", bytes / 1024.0 / 1024.0));
        }
        for (queue, backlog) in samples("opossum_queue_backlog") {
            line.push_str(&format!(" queue_{queue}={backlog}"));
        }
        let jobs: f64 = samples("opossum_jobs_total").iter().map(|(_, n)| n).sum();
        if jobs > 0.0 {
            line.push_str(&format!(" jobs={jobs}"));
        }
        line
    }

    /// Every queue's depth as JSON, `{"process": {"backlog": 3, "due": 1, ...}, ...}`: what
    /// KEDA's metrics-api scaler reads (`valueLocation: process.backlog`).
    pub fn queues_json(&self) -> serde_json::Value {
        let mut out = serde_json::Map::new();
        for family in self.gather() {
            let name = family.name();
            for metric in family.get_metric() {
                let label = |key: &str| {
                    metric
                        .get_label()
                        .iter()
                        .find(|l| l.name() == key)
                        .map(|l| l.value().to_string())
                };
                let Some(queue) = label("queue") else {
                    continue;
                };
                let field = match name {
                    "opossum_queue_jobs" => label("state"),
                    "opossum_queue_backlog" => Some("backlog".into()),
                    "opossum_queue_workers" => Some("workers".into()),
                    _ => None,
                };
                if let Some(field) = field {
                    let entry = out
                        .entry(queue)
                        .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
                    entry[field] = serde_json::json!(metric.get_gauge().get_value() as u64);
                }
            }
        }
        serde_json::Value::Object(out)
    }

    /// The share of this process's requests that some tier answered (`None`: none yet).
    pub fn set_overall_hit_ratio(&self, ratio: Option<f64>) {
        if let Some(ratio) = ratio {
            self.overall_hit_ratio.set(ratio);
        }
    }
}

fn f_type(
    families: &[prometheus::proto::MetricFamily],
    name: &str,
) -> prometheus::proto::MetricType {
    families
        .iter()
        .find(|f| f.name() == name)
        .map_or(prometheus::proto::MetricType::GAUGE, |f| f.get_field_type())
}

/// Raises a counter holding a total copied from elsewhere to `total` (never lowers it: a
/// source that restarted from zero simply stops raising it until it passes the old total).
fn raise(family: &CounterVec, labels: &[&str], total: u64) {
    let counter = family.with_label_values(labels);
    let current = counter.get();
    if total > current {
        counter.inc_by(total - current);
    }
}
