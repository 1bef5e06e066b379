//! The scheduler as users run it: a real redis-server (and, for two strategies, a real
//! 3-primary Redis Cluster), a real worker process, the `opossum` CLI and `opossum-scheduler`,
//! each strategy end to end.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use opossum_testkit::{Process, RedisCluster, RedisServer, TempDir, http_get, json_lines};

/// The Redis a scenario runs on: one server or a cluster.
enum Server {
    Single(RedisServer),
    Cluster(RedisCluster),
}

impl Server {
    fn url(&self) -> String {
        match self {
            Server::Single(server) => server.url(),
            Server::Cluster(cluster) => cluster.url(),
        }
    }
}

fn bin(name: &str) -> PathBuf {
    opossum_testkit::binary(name)
}

/// Redis, an originals store, a configuration file and (when started) one worker.
struct Fleet {
    redis: Server,
    originals: TempDir,
    config: PathBuf,
    cli_data: TempDir,
    worker_data: TempDir,
    _config_dir: TempDir,
}

impl Fleet {
    fn new(config_yaml: &str, images: &[&str]) -> Fleet {
        Fleet::on(Server::Single(RedisServer::start()), config_yaml, images)
    }

    fn on_a_cluster(config_yaml: &str, images: &[&str]) -> Fleet {
        Fleet::on(
            Server::Cluster(RedisCluster::start(3, 0)),
            config_yaml,
            images,
        )
    }

    fn on(redis: Server, config_yaml: &str, images: &[&str]) -> Fleet {
        let originals = TempDir::new("warm-originals");
        let corpus = opossum_testkit::corpus();
        for image in images {
            std::fs::copy(corpus.join("photos/kodim23.png"), originals.join(image))
                .expect("corpus photo (is ../shared beside the checkout?)");
        }
        let config_dir = TempDir::new("warm-config");
        let config = config_dir.join("opossum.yaml");
        std::fs::write(&config, config_yaml).unwrap();
        Fleet {
            redis,
            originals,
            config,
            cli_data: TempDir::new("warm-cli"),
            worker_data: TempDir::new("warm-worker"),
            _config_dir: config_dir,
        }
    }

    fn worker(&self) -> Process {
        Process(
            Command::new(bin("opossum-worker"))
                .args(["--redis", &self.redis.url()])
                .arg("--originals")
                .arg(self.originals.path())
                .arg("--data-dir")
                .arg(self.worker_data.path())
                .arg("--config")
                .arg(&self.config)
                .env("OPOSSUM_LOG", "warn")
                .spawn()
                .unwrap(),
        )
    }

    fn command(&self, name: &str, args: &[&str]) -> Command {
        let mut command = Command::new(bin(name));
        command
            .args(args)
            .env("OPOSSUM_REDIS_URL", self.redis.url())
            .env("OPOSSUM_CONFIG", &self.config)
            .env("OPOSSUM_DATA_DIR", self.cli_data.path())
            .env("OPOSSUM_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    fn run(&self, name: &str, args: &[&str]) -> Output {
        let output = self.command(name, args).output().unwrap();
        assert!(
            output.status.success(),
            "{name} {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    fn opossum(&self, args: &[&str]) -> Output {
        self.run("opossum", args)
    }

    fn scheduler(&self, args: &[&str]) -> String {
        stdout(&self.run("opossum-scheduler", args))
    }

    /// Submits a user job and waits for its event.
    fn request(&self, image: &str, ops: &str) -> serde_json::Value {
        let output = self.opossum(&["submit", image, "--ops", ops, "--wait", "--timeout", "60s"]);
        json_lines(&output).remove(0)
    }

    /// Waits until the analytics hold `requests` requests.
    fn wait_for_analytics(&self, requests: u64) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let report: serde_json::Value =
                serde_json::from_slice(&self.opossum(&["stats", "top", "--json"]).stdout).unwrap();
            if report["requests"].as_u64() == Some(requests) {
                return report;
            }
            assert!(
                Instant::now() < deadline,
                "analytics never reached {requests} requests: {report}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits until `count` successful warm events are in the stream; returns them.
    fn wait_for_warm_events(&self, count: usize) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let events: Vec<serde_json::Value> =
                json_lines(&self.opossum(&["events", "--count", "200"]))
                    .into_iter()
                    .filter(|e| e["priority"] == "warm")
                    .collect();
            if events.len() >= count {
                assert!(
                    events.iter().all(|e| e["status"] == "ok"),
                    "a warm job failed: {events:?}"
                );
                return events;
            }
            assert!(
                Instant::now() < deadline,
                "only {} of {count} warm events: {events:?}",
                events.len()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn warm_queue(&self) -> serde_json::Value {
        let stats = json_lines(&self.opossum(&["queue", "stats", "--json"])).remove(0);
        stats["opossum:warm"].clone()
    }
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

fn is_cache_hit(event: &serde_json::Value) -> bool {
    ["memory", "disk", "redis"].contains(&event["source"].as_str().unwrap_or(""))
}

#[test]
fn predictive_warming_restores_an_invalidated_popular_variant() {
    predictive_warming(Fleet::new("# defaults\n", &["a.png"]));
}

#[test]
fn predictive_warming_restores_an_invalidated_popular_variant_on_a_cluster() {
    predictive_warming(Fleet::on_a_cluster("# defaults\n", &["a.png"]));
}

fn predictive_warming(fleet: Fleet) {
    let _worker = fleet.worker();
    // Two popular variants (10 requests each this hour) and one asked for once.
    for _ in 0..10 {
        for ops in ["thumbnail:80,format:webp", "resize:300:200:fill"] {
            assert_eq!(fleet.request("a.png", ops)["status"], "ok");
        }
    }
    fleet.request("a.png", "grayscale");
    let report = fleet.wait_for_analytics(21);
    assert_eq!(report["top_images"][0]["image_id"], "a.png");
    assert_eq!(report["top_images"][0]["requests"], 21);
    assert_eq!(
        report["hit_rates"]["categories"]["thumbnail"]["requests"],
        10
    );
    let text = stdout(&fleet.opossum(&["stats", "top"]));
    assert!(text.contains("a.png  21 requests"), "{text}");

    // Everything is cached: nothing to do.
    let idle = fleet.scheduler(&["warm", "--once", "--strategy", "predictive"]);
    assert_eq!(
        idle,
        "predictive: 2 planned, 2 skipped as cached, 0 duplicates, 0 invalid, 0 over budget, 0 enqueued"
    );

    fleet.opossum(&["cache", "invalidate", "a.png"]);
    std::thread::sleep(Duration::from_millis(300));
    let dry = fleet.scheduler(&["warm", "--once", "--strategy", "predictive", "--dry-run"]);
    assert!(
        dry.ends_with("2 enqueued (dry run: nothing enqueued)"),
        "{dry}"
    );
    assert_eq!(fleet.warm_queue()["parked"], 0);
    assert_eq!(fleet.warm_queue()["due"], 0);

    let warmed = fleet.scheduler(&["warm", "--once", "--strategy", "predictive"]);
    // The variant asked for once is not predicted to come back within the hour.
    assert_eq!(
        warmed,
        "predictive: 2 planned, 0 skipped as cached, 0 duplicates, 0 invalid, 0 over budget, 2 enqueued"
    );
    let events = fleet.wait_for_warm_events(2);
    assert!(
        events.iter().all(|e| e["source"] == "computed"),
        "{events:?}"
    );

    for ops in ["thumbnail:80,format:webp", "resize:300:200:fill"] {
        let event = fleet.request("a.png", ops);
        assert!(is_cache_hit(&event), "{ops} after warming: {event}");
    }
    let uncached = fleet.request("a.png", "grayscale");
    assert_eq!(uncached["source"], "computed", "not warmed: {uncached}");
    // Warm jobs are not requests: the analytics count only the user's.
    fleet.wait_for_analytics(24);
}

const RELATED: &str = "presets:\n  thumb-s:\n    ops: thumbnail:64,format:webp\n    family: thumbs\n  thumb-m:\n    ops: thumbnail:128,format:webp\n    family: thumbs\nwarming:\n  related_formats: [webp, png]\n";

#[test]
fn related_variants_follow_completion_events() {
    related_variants(Fleet::new(RELATED, &["a.png", "b.png"]));
}

#[test]
fn related_variants_follow_completion_events_on_a_cluster() {
    related_variants(Fleet::on_a_cluster(RELATED, &["a.png", "b.png"]));
}

fn related_variants(fleet: Fleet) {
    let _worker = fleet.worker();
    let mut scheduler = Process(
        fleet
            .command("opossum-scheduler", &["run"])
            .spawn()
            .unwrap(),
    );
    // The scheduler reads events from the time it starts: give it a moment.
    std::thread::sleep(Duration::from_millis(1500));

    // Users ask for thumb-m (of another image); nobody asks for PNG thumbnails.
    assert_eq!(fleet.request("b.png", "preset:thumb-m")["status"], "ok");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(fleet.request("a.png", "preset:thumb-s")["status"], "ok");
    let events = fleet.wait_for_warm_events(1);
    assert_eq!(events[0]["ops"], "preset:thumb-m", "{events:?}");
    assert_eq!(events[0]["image_id"], "a.png", "{events:?}");

    let sibling = fleet.request("a.png", "preset:thumb-m");
    assert!(is_cache_hit(&sibling), "{sibling}");
    // The PNG sibling is a chain nobody asked for: not warmed, computed when asked.
    let other_format = fleet.request("a.png", "thumbnail:64,format:png");
    assert_eq!(other_format["source"], "computed", "{other_format}");
    let warm: Vec<serde_json::Value> = json_lines(&fleet.opossum(&["events", "--count", "50"]))
        .into_iter()
        .filter(|e| e["priority"] == "warm")
        .collect();
    assert_eq!(warm.len(), 1, "{warm:?}");

    // SIGTERM stops it cleanly.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(scheduler.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = scheduler.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "scheduler ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status:?}");
}

#[test]
fn preset_requests_through_the_origin_warm_their_family() {
    // The origin resolves `preset:thumb-s` to compute it; the job and its event must still
    // say `preset:thumb-s`, or related-variant warming cannot find the family.
    let config = "presets:\n  thumb-s:\n    ops: thumbnail:64,format:webp\n    family: thumbs\n  thumb-m:\n    ops: thumbnail:128,format:webp\n    family: thumbs\nwarming:\n  related_formats: []\n";
    let fleet = Fleet::new(config, &["a.png", "b.png"]);
    let _worker = fleet.worker();
    let _scheduler = Process(
        fleet
            .command("opossum-scheduler", &["run"])
            .spawn()
            .unwrap(),
    );
    let origin_data = TempDir::new("warm-origin");
    let mut origin = fleet.command("opossum", &["serve", "--listen", "127.0.0.1:0"]);
    origin
        .arg("--originals")
        .arg(fleet.originals.path())
        .env("OPOSSUM_DATA_DIR", origin_data.path())
        .stderr(Stdio::inherit());
    let mut origin = Process(origin.spawn().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(origin.0.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    std::thread::sleep(Duration::from_millis(1500));

    // Users ask for thumb-m (of another image), so it is a sibling worth warming.
    assert_eq!(http_get(&base, "/v1/img/preset:thumb-m/b.png").status, 200);
    std::thread::sleep(Duration::from_millis(1500));
    let first = http_get(&base, "/v1/img/preset:thumb-s/a.png");
    assert_eq!(first.status, 200, "{first:?}");
    assert_eq!(first.header("x-opossum-source"), "computed");
    let events = fleet.wait_for_warm_events(1);
    assert_eq!(events[0]["ops"], "preset:thumb-m", "{events:?}");
    // The user's event names the preset as asked.
    let user: Vec<serde_json::Value> = json_lines(&fleet.opossum(&["events", "--count", "20"]))
        .into_iter()
        .filter(|e| e["priority"] == "user" && e["image_id"] == "a.png")
        .collect();
    assert_eq!(user.len(), 1, "{user:?}");
    assert_eq!(user[0]["ops"], "preset:thumb-s");
    // The sibling is in the shared tier: the origin answers it without the fleet.
    let sibling = http_get(&base, "/v1/img/preset:thumb-m/a.png");
    assert_eq!(sibling.status, 200);
    assert_eq!(sibling.header("x-opossum-source"), "redis");
}

#[test]
fn background_warming_keeps_to_its_budget_and_never_enqueues_twice() {
    let config = "warming:\n  common_operations: [\"thumbnail:50\", grayscale, \"thumbnail:60\"]\n  jobs_per_run: 4\n  backlog_cap: 6\n";
    let fleet = Fleet::new(config, &["a.png", "b.png", "c.png"]);
    {
        let _worker = fleet.worker();
        for image in ["a.png", "b.png", "c.png"] {
            fleet.request(image, "thumbnail:96");
        }
        fleet.wait_for_analytics(3);
    }
    // No worker now: what is enqueued stays queued.
    let first = fleet.scheduler(&["warm", "--once", "--strategy", "background"]);
    assert_eq!(
        first,
        "background: 9 planned, 0 skipped as cached, 0 duplicates, 0 invalid, 5 over budget, 4 enqueued"
    );
    let second = fleet.scheduler(&["warm", "--once", "--strategy", "background"]);
    assert_eq!(
        second,
        "background: 9 planned, 0 skipped as cached, 4 duplicates, 0 invalid, 3 over budget, 2 enqueued",
        "the backlog cap of 6 leaves room for 2"
    );
    let full = fleet.scheduler(&["warm", "--once", "--strategy", "background", "--json"]);
    let full: serde_json::Value = serde_json::from_str(&full).unwrap();
    assert_eq!(full["enqueued"], 0);
    assert_eq!(full["duplicates"], 6);
    let queue = fleet.warm_queue();
    assert_eq!(
        queue["parked"].as_u64().unwrap() + queue["due"].as_u64().unwrap(),
        6,
        "{queue}"
    );
    // The user queue was never touched.
    let stats = json_lines(&fleet.opossum(&["queue", "stats", "--json"])).remove(0);
    assert_eq!(stats["opossum:process"]["due"], 0);

    // A worker drains the warm queue; the next run finds those six cached.
    let _worker = fleet.worker();
    fleet.wait_for_warm_events(6);
    let after = fleet.scheduler(&["warm", "--once", "--strategy", "background", "--json"]);
    let after: serde_json::Value = serde_json::from_str(&after).unwrap();
    assert_eq!(after["cached"], 6, "{after}");

    let bad = fleet
        .command(
            "opossum-scheduler",
            &["warm", "--once", "--strategy", "nightly"],
        )
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("unknown strategy `nightly`"),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}
