//! Operations, with real processes and servers: `opossum config check`, environment
//! overrides, Prometheus `/metrics` of the worker, the scheduler and the origin checked by
//! Debian's `promtool`, OTLP export to a real HTTP receiver, the periodic summary line,
//! `opossum cache size` from recorded traffic, and deploy/ validated offline.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opossum_testkit::{RedisServer, TempDir, tool, unique_namespace};

use crate::origin::{Process, get, start};
use crate::support::{binary, corpus};

/// Fails with the command's stderr unless it exited 0.
fn succeeded(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn repository() -> PathBuf {
    opossum_testkit::repository()
}

fn sibling(name: &str) -> PathBuf {
    opossum_testkit::binary(name)
}

fn opossum(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let data = TempDir::new("ops-data");
    let mut command = Command::new(binary());
    command
        .args(args)
        .env("OPOSSUM_DATA_DIR", data.path())
        .env_remove("OPOSSUM_REDIS_URL")
        .env_remove("OPOSSUM_CONFIG");
    for (k, v) in env {
        command.env(k, v);
    }
    command.output().unwrap()
}

/// The seed's "Configuration Options" example, as the seed has it.
fn seed_example() -> String {
    let seed = repository().join("../shared/seed/caching-strategy.md");
    let text = std::fs::read_to_string(&seed).unwrap();
    let section = &text[text.find("## Configuration Options").unwrap()..];
    let start = section.find("```yaml").unwrap() + "```yaml".len();
    let end = start + section[start..].find("```").unwrap();
    section[start..end].to_string()
}

/// The YAML documents of a manifest file.
fn documents(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .split("\n---\n")
        .map(|doc| {
            serde_saphyr::from_str(doc).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        })
        .collect()
}

#[test]
fn config_check_accepts_the_seed_and_shipped_files_and_names_bad_keys() {
    let dir = TempDir::new("config-check");
    let seed = dir.join("seed.yaml");
    std::fs::write(&seed, seed_example()).unwrap();
    let out = opossum(&["config", "check", seed.to_str().unwrap()], &[]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    succeeded(&out);
    assert!(stdout.contains("memory tier: on, 1.9 GiB"), "{stdout}");
    assert!(
        stdout.contains("redis tier: on, redis://redis.example.com:6379/0, TTL cap 1day"),
        "{stdout}"
    );
    assert!(
        stdout.contains("expects maxmemory-policy allkeys-lfu and maxmemory 46.6 GiB"),
        "{stdout}"
    );

    let example = repository().join("deploy/opossum.example.yaml");
    let out = opossum(&["config", "check", example.to_str().unwrap()], &[]);
    succeeded(&out);

    // The ConfigMap's file, as the pods read it.
    let configmap = &documents(&repository().join("deploy/k8s/config.yaml"))[0];
    let k8s = dir.join("k8s.yaml");
    std::fs::write(&k8s, configmap["data"]["opossum.yaml"].as_str().unwrap()).unwrap();
    let out = opossum(&["config", "check", k8s.to_str().unwrap()], &[]);
    succeeded(&out);

    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, "caching:\n  memory_cache:\n    max_sise: 2GB\n").unwrap();
    let out = opossum(&["config", "check", bad.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(&format!(
            "error: configuration {}: caching.memory_cache.max_sise: unknown field `max_sise`",
            bad.display()
        )),
        "{stderr}"
    );
}

#[test]
fn environment_overrides_apply_to_every_command_and_errors_name_the_variable() {
    let out = opossum(
        &["key", "x.png", "--ops", "grayscale"],
        &[("OPOSSUM_CACHING__MEMORY_CACHE__MAX_SIZE", "lots")],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("error: configuration environment OPOSSUM_CACHING__MEMORY_CACHE__MAX_SIZE: caching.memory_cache.max_size: `lots` is not a size"),
        "{stderr}"
    );
    // The prefix from the environment's file key reaches the key derivation.
    let out = opossum(
        &["key", "x.png", "--ops", "grayscale", "--json"],
        &[("OPOSSUM_PREFIX", "other")],
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["namespace"], "other");
}

#[test]
fn caching_disabled_computes_every_time() {
    let image = corpus().join("photos/kodim23.png");
    let image = image.to_str().unwrap();
    let data = TempDir::new("nocache");
    let run = |env: &[(&str, &str)]| {
        let mut command = Command::new(binary());
        command
            .args(["process", image, "--ops", "thumbnail:32", "--json"])
            .env("OPOSSUM_DATA_DIR", data.path())
            .env_remove("OPOSSUM_REDIS_URL");
        for (k, v) in env {
            command.env(k, v);
        }
        let out = command.output().unwrap();
        succeeded(&out);
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        report["source"].as_str().unwrap().to_string()
    };
    let off = [("OPOSSUM_CACHING__ENABLED", "false")];
    assert_eq!(run(&off), "computed");
    assert_eq!(run(&off), "computed");
    // With caching on, the disk tier answers the second run.
    assert_eq!(run(&[]), "computed");
    assert_eq!(run(&[]), "disk");
}

/// `promtool check metrics` on `text`; panics with promtool's findings.
fn promtool_check(text: &str, what: &str) {
    let promtool = tool(&["promtool"], "install Debian's prometheus package");
    let mut child = Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool rejects the {what} metrics:\n{}{}\n--- metrics ---\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The value of the sample `series` (name with labels, as printed) in `text`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

async fn wait_http(url: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(response) = reqwest::get(url).await
            && response.status().is_success()
        {
            return response.text().await.unwrap();
        }
        assert!(Instant::now() < deadline, "{url} never answered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn worker_scheduler_and_origin_metrics_pass_promtool() {
    let redis = RedisServer::start();
    let server = start(&[], Some(&redis.url()));
    let worker_data = TempDir::new("ops-worker");
    let log = worker_data.join("worker.log");
    let (_worker, worker_base) = Process::spawn_announced(
        Command::new(sibling("opossum-worker"))
            .args(["--redis", &redis.url()])
            .arg("--originals")
            .arg(server.originals.path())
            .arg("--data-dir")
            .arg(worker_data.path())
            .args(["--metrics-listen", "127.0.0.1:0"])
            .env("OPOSSUM_TELEMETRY__SUMMARY_INTERVAL", "1s")
            .env("OPOSSUM_LOG", "info")
            .stderr(std::fs::File::create(&log).unwrap()),
        "metrics on ",
        Duration::from_secs(30),
    );
    let (_scheduler, scheduler_base) = Process::spawn_announced(
        Command::new(sibling("opossum-scheduler"))
            .args(["--redis", &redis.url(), "run"])
            .args(["--metrics-listen", "127.0.0.1:0"])
            .env("OPOSSUM_LOG", "warn"),
        "metrics on ",
        Duration::from_secs(30),
    );
    let url = format!("{}/v1/img/thumbnail:72,format:png/a.png", server.base);
    assert_eq!(get(&url, &[]).await.status(), 200);
    assert_eq!(get(&url, &[]).await.status(), 200);
    // The origin's miss reached the worker as a job that was looked up already, so the
    // worker counted no lookup for it; a job submitted directly (another variant) is the
    // worker's own lookup, a miss in every tier, and its second computation.
    let submitted = Command::new(binary())
        .args(["--redis", &redis.url(), "submit", "a.png"])
        .args(["--ops", "thumbnail:73,format:png", "--wait"])
        .output()
        .unwrap();
    assert!(
        submitted.status.success(),
        "{}",
        String::from_utf8_lossy(&submitted.stderr)
    );

    let worker_metrics = format!("{worker_base}/metrics");
    let worker = wait_http(&worker_metrics).await;
    promtool_check(&worker, "worker");
    assert_eq!(
        sample(
            &worker,
            "opossum_jobs_total{outcome=\"computed\",queue=\"process\"}"
        ),
        Some(2.0),
        "{worker}"
    );
    assert_eq!(
        sample(
            &worker,
            "opossum_job_duration_seconds_count{outcome=\"computed\",queue=\"process\"}"
        ),
        Some(2.0)
    );
    for tier in ["memory", "disk", "redis"] {
        let size = sample(
            &worker,
            &format!("opossum_cache_size_bytes{{tier=\"{tier}\"}}"),
        );
        assert!(size.is_some_and(|s| s > 0.0), "{tier}: {size:?}\n{worker}");
        assert!(sample(&worker, &format!("opossum_cache_items{{tier=\"{tier}\"}}")).is_some());
        assert!(
            sample(
                &worker,
                &format!("opossum_cache_miss_ratio{{tier=\"{tier}\"}}")
            )
            .is_some()
        );
        assert!(
            sample(
                &worker,
                &format!("opossum_cache_average_ttl_seconds{{tier=\"{tier}\"}}")
            )
            .is_some()
        );
    }
    assert!(sample(&worker, "opossum_cache_memory_bytes{tier=\"redis\"}").is_some_and(|m| m > 0.0));
    // What RocksDB keeps in the worker's memory (block cache, memtables), within its bound.
    let disk_memory = sample(&worker, "opossum_cache_memory_bytes{tier=\"disk\"}");
    assert!(
        disk_memory.is_some_and(|m| m > 0.0 && m <= 40.0 * 1024.0 * 1024.0),
        "{disk_memory:?}"
    );
    // The binaries run on jemalloc and export its totals (allocated within resident).
    let allocated = sample(&worker, "opossum_allocator_bytes{state=\"allocated\"}");
    let resident = sample(&worker, "opossum_allocator_bytes{state=\"resident\"}");
    assert!(
        allocated.is_some_and(|a| a > 0.0 && resident.is_some_and(|r| r >= a)),
        "{allocated:?} {resident:?}"
    );
    assert!(sample(&worker, "opossum_cache_evictions_total{tier=\"memory\"}").is_some());
    // The job leaves the in-flight set when apalis acks it, just after the handler published
    // the completion event the origin answered on: on a loaded machine a scrape can fall
    // between the two, so the backlog is read until it drains.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut backlog = sample(&worker, "opossum_queue_backlog{queue=\"process\"}");
    while backlog != Some(0.0) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let text = wait_http(&worker_metrics).await;
        backlog = sample(&text, "opossum_queue_backlog{queue=\"process\"}");
    }
    assert_eq!(backlog, Some(0.0), "the process queue never drained");
    assert_eq!(
        sample(&worker, "opossum_queue_workers{queue=\"process\"}"),
        Some(1.0)
    );

    let scheduler = wait_http(&format!("{scheduler_base}/metrics")).await;
    promtool_check(&scheduler, "scheduler");
    assert!(
        sample(&scheduler, "opossum_cache_memory_bytes{tier=\"redis\"}").is_some_and(|m| m > 0.0)
    );
    assert!(
        sample(
            &scheduler,
            "opossum_queue_jobs{queue=\"warm\",state=\"due\"}"
        )
        .is_some()
    );
    assert!(scheduler.contains("opossum_build_info{service=\"opossum-scheduler\""));

    let origin = wait_http(&format!("{}/metrics", server.base)).await;
    promtool_check(&origin, "origin");
    assert_eq!(
        sample(
            &origin,
            "opossum_http_responses_total{route=\"img\",status=\"2xx\"}"
        ),
        Some(2.0),
        "{origin}"
    );
    assert_eq!(
        sample(&origin, "opossum_origin_computations_total"),
        Some(1.0)
    );
    assert!(
        sample(&origin, "opossum_allocator_bytes{state=\"allocated\"}").is_some_and(|a| a > 0.0),
        "{origin}"
    );

    // Labels are bounded: no image id or key anywhere.
    for text in [&worker, &scheduler, &origin] {
        assert!(!text.contains("a.png"), "an image id in a label:\n{text}");
    }

    // KEDA's metrics-api trigger reads the scheduler's /queues at the manifest's location.
    let queues: serde_json::Value =
        serde_json::from_str(&wait_http(&format!("{scheduler_base}/queues")).await).unwrap();
    let keda = &documents(&repository().join("deploy/k8s/keda.yaml"))[0];
    for trigger in keda["spec"]["triggers"].as_array().unwrap() {
        let location = trigger["metadata"]["valueLocation"].as_str().unwrap();
        let mut value = &queues;
        for part in location.split('.') {
            value = &value[part];
        }
        assert!(value.is_u64(), "{location} not in {queues}");
        let path = trigger["metadata"]["url"].as_str().unwrap();
        assert!(path.ends_with(":9464/queues"), "{path}");
    }

    // The periodic summary line, as the seed's CacheAnalytics logs it: one written after the
    // queue drained (an earlier one may have caught the job in flight).
    let summaries = |text: &str| {
        text.lines()
            .filter(|l| l.contains("cache summary: hit_rate="))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let before = summaries(&std::fs::read_to_string(&log).unwrap_or_default()).len();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(line) = summaries(&text).get(before) {
            assert!(line.contains("memory="), "{line}");
            assert!(line.contains("queue_process=0"), "{line}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no summary line in the worker's log:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A real HTTP/1.1 endpoint that keeps every request body by path: the OTLP/HTTP receiver.
struct Receiver {
    port: u16,
    received: Arc<Mutex<Vec<(String, String)>>>,
}

impl Receiver {
    fn start() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let store = received.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let store = store.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    let mut stream = stream;
                    loop {
                        let mut request_line = String::new();
                        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                            return;
                        }
                        let path = request_line
                            .split_whitespace()
                            .nth(1)
                            .unwrap_or("")
                            .to_string();
                        let mut length = 0;
                        loop {
                            let mut line = String::new();
                            reader.read_line(&mut line).unwrap();
                            let line = line.trim_end();
                            if line.is_empty() {
                                break;
                            }
                            if let Some((name, value)) = line.split_once(':')
                                && name.eq_ignore_ascii_case("content-length")
                            {
                                length = value.trim().parse().unwrap();
                            }
                        }
                        let mut body = vec![0; length];
                        reader.read_exact(&mut body).unwrap();
                        store
                            .lock()
                            .unwrap()
                            .push((path, String::from_utf8_lossy(&body).into_owned()));
                        let _ = stream.write_all(
                            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}",
                        );
                    }
                });
            }
        });
        Receiver { port, received }
    }

    /// Every `"name"` in the OTLP/JSON bodies posted to `path` (span and metric names).
    fn names(&self, path: &str) -> Vec<String> {
        fn collect(value: &serde_json::Value, out: &mut Vec<String>) {
            match value {
                serde_json::Value::Object(map) => {
                    for (key, v) in map {
                        if let (true, Some(name)) = (key == "name", v.as_str()) {
                            out.push(name.to_string());
                        }
                        collect(v, out);
                    }
                }
                serde_json::Value::Array(items) => items.iter().for_each(|v| collect(v, out)),
                _ => {}
            }
        }
        let mut out = Vec::new();
        for (p, body) in self.received.lock().unwrap().iter() {
            if p == path {
                let value: serde_json::Value = serde_json::from_str(body)
                    .unwrap_or_else(|e| panic!("{path} body is not OTLP/JSON ({e}): {body}"));
                collect(&value, &mut out);
            }
        }
        out
    }

    fn bodies(&self, path: &str) -> String {
        self.received
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, b)| b.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

#[test]
fn traces_and_metrics_go_out_over_otlp() {
    let receiver = Receiver::start();
    let redis = RedisServer::start();
    let originals = TempDir::new("otlp-originals");
    std::fs::copy(corpus().join("photos/kodim23.png"), originals.join("a.png")).unwrap();
    let data = TempDir::new("otlp-worker");
    let mut worker = Process(
        Command::new(sibling("opossum-worker"))
            .args(["--redis", &redis.url()])
            .arg("--originals")
            .arg(originals.path())
            .arg("--data-dir")
            .arg(data.path())
            .env(
                "OPOSSUM_TELEMETRY__OTLP_ENDPOINT",
                format!("http://127.0.0.1:{}", receiver.port),
            )
            .env("OPOSSUM_TELEMETRY__OTLP_PROTOCOL", "http/json")
            .env("OPOSSUM_TELEMETRY__EXPORT_INTERVAL", "1s")
            .env("OPOSSUM_LOG", "warn")
            .spawn()
            .unwrap(),
    );
    let out = Command::new(binary())
        .args([
            "--redis",
            &redis.url(),
            "submit",
            "a.png",
            "--ops",
            "thumbnail:40",
            "--wait",
        ])
        .output()
        .unwrap();
    succeeded(&out);
    // Metrics go out every export interval (1 s here), the pulled gauges refreshed before.
    let deadline = Instant::now() + Duration::from_secs(20);
    let wanted = [
        "opossum_jobs_total",
        "opossum_cache_size_bytes",
        "opossum_queue_backlog",
    ];
    loop {
        let metrics = receiver.names("/v1/metrics");
        if wanted
            .iter()
            .all(|name| metrics.contains(&name.to_string()))
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not every metric was exported: {metrics:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // A graceful stop flushes the spans.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(worker.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while worker.0.try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "the worker did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let traces = receiver.names("/v1/traces");
    assert!(
        traces.contains(&"job".to_string()),
        "no job span exported: {traces:?}"
    );
    assert!(
        receiver.bodies("/v1/traces").contains("opossum-worker"),
        "no service name"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cache_size_recommends_from_the_recorded_miss_ratio_curve() {
    let redis = RedisServer::start();
    let report = cache_size_from_the_curve(&redis.url()).await;
    assert_eq!(report["redis_shards"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn cache_size_reports_each_shard_of_a_cluster() {
    let cluster = opossum_testkit::RedisCluster::start(3, 0);
    let report = cache_size_from_the_curve(&cluster.url()).await;
    let shards = report["redis_shards"].as_array().unwrap();
    assert_eq!(shards.len(), 3, "{report}");
    for shard in shards {
        // 1 MB over three shards, rounded up.
        assert_eq!(shard["recommended_bytes"], 333_334, "{shard}");
        assert!(shard["node"].as_str().unwrap().starts_with("127.0.0.1:"));
    }
}

/// Records a known access pattern on `url`, checks `opossum cache size` against it, and
/// returns its JSON report.
async fn cache_size_from_the_curve(url: &str) -> serde_json::Value {
    use opossum_analytics::{Access, AnalyticsConfig, Recorder, Variant};
    let redis_url = url.to_string();
    let prefix = unique_namespace("size");
    let client = opossum_redis::Redis::open(url).unwrap();
    let connection = opossum_fleet::connect(&client).await.unwrap();
    let config = AnalyticsConfig {
        sample_rate: 1.0,
        ..AnalyticsConfig::new(&prefix)
    };
    let recorder = Recorder::start(config, connection);
    // Ten variants of 100 KB requested in a loop, four times: an LRU cache needs all ten
    // (1 MB) to hit at all, and then hits 30 of the 40 requests.
    let now = opossum_cache::unix_millis();
    for round in 0..4u64 {
        for i in 0..10u64 {
            recorder.record(&Access {
                variant: Variant {
                    image_id: format!("img-{i}"),
                    chain: "thumbnail:200".into(),
                    key: format!("{prefix}:{{{i:016x}}}:0123456789abcdef"),
                    options: Default::default(),
                },
                category: opossum_ops::Category::Thumbnail,
                answer: opossum_analytics::Answer::Memory,
                bytes: 100_000,
                duration_ms: 1.0,
                at_ms: now + round * 10 + i,
            });
        }
    }
    recorder.flush().await;
    let run = |target: &str, json: bool| {
        let mut args = vec![
            "--redis",
            &redis_url,
            "--prefix",
            &prefix,
            "cache",
            "size",
            "--target-hit-rate",
            target,
            "--window",
            "1h",
        ];
        if json {
            args.push("--json");
        }
        opossum(&args, &[("OPOSSUM_ANALYTICS__SAMPLE_RATE", "1")])
    };
    let out = run("0.5", true);
    succeeded(&out);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["requests"], 40.0);
    assert_eq!(report["best_hit_rate"], 0.75);
    assert_eq!(report["working_set_bytes"], 1_000_000);
    assert_eq!(report["target_reachable"], true);
    assert_eq!(report["recommended"]["memory_bytes_per_process"], 1_000_000);
    assert_eq!(report["recommended"]["redis_bytes"], 1_000_000);
    let first = report;
    // Out of reach: first requests always miss; it says so and sizes for the best.
    let report: serde_json::Value = serde_json::from_slice(&run("0.9", true).stdout).unwrap();
    assert_eq!(report["target_reachable"], false);
    let stdout = String::from_utf8_lossy(&run("0.9", false).stdout).into_owned();
    assert!(stdout.contains("target 90.0% is out of reach"), "{stdout}");
    assert!(stdout.contains("memory (per process)"), "{stdout}");
    // Nothing recorded under another prefix: a clear error.
    let empty = opossum(
        &[
            "--redis",
            &redis_url,
            "--prefix",
            "nothing-here",
            "cache",
            "size",
            "--target-hit-rate",
            "0.8",
        ],
        &[],
    );
    assert_eq!(empty.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&empty.stderr).contains("no sampled requests"));
    first
}

#[test]
fn deploy_manifests_validate_offline_and_agree_with_each_other() {
    let dir = repository().join("deploy/k8s");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let validate = tool(&["kubernetes-validate"], "pip install kubernetes-validate");
    let out = Command::new(validate)
        .arg("--strict")
        .args(&files)
        .output()
        .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{report}");
    assert!(
        !report.contains("ERROR") && !report.contains("FAIL"),
        "{report}"
    );

    let compose = tool(
        &["docker-compose"],
        "install Debian's docker-compose package",
    );
    let out = Command::new(compose)
        .args(["-f"])
        .arg(repository().join("deploy/compose.yaml"))
        .args(["config", "-q"])
        .output()
        .unwrap();
    succeeded(&out);

    let all: Vec<serde_json::Value> = files.iter().flat_map(|f| documents(f)).collect();
    fn kind_of<'a>(
        all: &'a [serde_json::Value],
        kind: &'a str,
    ) -> impl Iterator<Item = &'a serde_json::Value> {
        all.iter().filter(move |d| d["kind"] == kind)
    }
    let of_kind = |kind: &'static str| kind_of(&all, kind);
    let deployment = |name: &str| {
        of_kind("Deployment")
            .find(|d| d["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no Deployment {name}"))
    };
    // Every Service selects the pods of some Deployment, on a port they expose.
    for service in of_kind("Service") {
        let selector = service["spec"]["selector"].as_object().unwrap();
        let target = of_kind("Deployment")
            .find(|d| {
                let labels = &d["spec"]["template"]["metadata"]["labels"];
                selector.iter().all(|(k, v)| &labels[k] == v)
            })
            .unwrap_or_else(|| panic!("{} selects no Deployment", service["metadata"]["name"]));
        let ports: Vec<&serde_json::Value> =
            target["spec"]["template"]["spec"]["containers"][0]["ports"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| &p["name"])
                .collect();
        for port in service["spec"]["ports"].as_array().unwrap() {
            assert!(
                ports.contains(&&port["targetPort"]),
                "{port} not exposed by {}",
                target["metadata"]["name"]
            );
        }
    }
    // KEDA scales the worker Deployment, reading the scheduler's Service.
    let keda = of_kind("ScaledObject").next().expect("a KEDA ScaledObject");
    let worker = deployment(keda["spec"]["scaleTargetRef"]["name"].as_str().unwrap());
    assert_eq!(worker["metadata"]["name"], "opossum-worker");
    assert!(of_kind("Service").any(|s| s["metadata"]["name"] == "opossum-scheduler"));
    // The pod's grace period outlasts the worker's own, so SIGTERM can finish jobs.
    let config: serde_json::Value = serde_saphyr::from_str(
        of_kind("ConfigMap").next().unwrap()["data"]["opossum.yaml"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let grace =
        humantime::parse_duration(config["worker"]["grace_period"].as_str().unwrap()).unwrap();
    let pod_grace = worker["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        .as_u64()
        .unwrap();
    assert!(
        pod_grace > grace.as_secs() + 10,
        "{pod_grace}s vs {grace:?}"
    );
    // The image runs as a non-root user and ships the three binaries the manifests run.
    let dockerfile = std::fs::read_to_string(repository().join("deploy/Dockerfile")).unwrap();
    assert!(
        dockerfile.contains("\nUSER 10001"),
        "the runtime image must not run as root"
    );
    for binary in ["opossum", "opossum-worker", "opossum-scheduler"] {
        assert!(
            dockerfile.contains(&format!("target/release/{binary} "))
                || dockerfile.contains(&format!("target/release/{binary}\n"))
                || dockerfile.contains(&format!("target/release/{binary} /out")),
            "{binary}"
        );
        assert!(
            sibling(binary).is_file(),
            "{binary} is not a binary of this workspace"
        );
    }
}

#[test]
fn the_cluster_deploy_variants_validate_and_name_a_cluster() {
    let file = repository().join("deploy/k8s-cluster/redis-cluster.yaml");
    let validate = tool(&["kubernetes-validate"], "pip install kubernetes-validate");
    let out = Command::new(validate)
        .arg("--strict")
        .arg(&file)
        .output()
        .unwrap();
    succeeded(&out);
    let compose = tool(
        &["docker-compose"],
        "install Debian's docker-compose package",
    );
    let out = Command::new(compose)
        .arg("-f")
        .arg(repository().join("deploy/compose.yaml"))
        .arg("-f")
        .arg(repository().join("deploy/compose.cluster.yaml"))
        .args(["config"])
        .output()
        .unwrap();
    succeeded(&out);
    let merged: serde_json::Value = serde_saphyr::from_slice(&out.stdout).unwrap();
    let nodes: Vec<&String> = merged["services"]
        .as_object()
        .unwrap()
        .keys()
        .filter(|name| name.starts_with("redis-node-"))
        .collect();
    assert_eq!(nodes.len(), 6, "three primaries and a replica each");
    for service in ["worker", "scheduler", "origin"] {
        let url = merged["services"][service]["environment"]["OPOSSUM_REDIS_URL"]
            .as_str()
            .unwrap();
        assert!(
            url.starts_with("redis+cluster://redis-node-1:6379,"),
            "{service}: {url}"
        );
        assert!(
            matches!(opossum_redis::parse_url(url), Ok(opossum_redis::Target::Cluster(seeds)) if seeds.len() == 3),
            "{url}"
        );
    }

    // The ConfigMap it replaces is a valid configuration whose cache tier is the cluster, and
    // the headless Service selects the StatefulSet's pods.
    let all = documents(&file);
    let config_map = all.iter().find(|d| d["kind"] == "ConfigMap").unwrap();
    let config =
        opossum_config::Config::parse(config_map["data"]["opossum.yaml"].as_str().unwrap(), "cm")
            .unwrap();
    let url = config.redis_url(None).unwrap().unwrap();
    assert!(
        url.starts_with("redis+cluster://opossum-redis-cluster-0."),
        "{url}"
    );
    let set = all.iter().find(|d| d["kind"] == "StatefulSet").unwrap();
    let service = all.iter().find(|d| d["kind"] == "Service").unwrap();
    assert_eq!(
        service["spec"]["selector"],
        set["spec"]["template"]["metadata"]["labels"]
    );
    assert_eq!(set["spec"]["replicas"], 6);
}
