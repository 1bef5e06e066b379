//! `opossum submit`, `events`, `queue` and `process --originals` as a user runs them, against
//! a real redis-server and a real worker process (and, without Redis, in embedded mode).

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use opossum_testkit::{RedisCluster, RedisServer, TempDir, json_lines};

fn opossum() -> PathBuf {
    opossum_testkit::binary("opossum")
}

fn originals() -> TempDir {
    let dir = TempDir::new("cli-originals");
    let corpus = opossum_testkit::corpus();
    std::fs::copy(corpus.join("photos/kodim23.png"), dir.path().join("a.png"))
        .expect("corpus photo (is ../shared beside the checkout?)");
    std::fs::write(dir.path().join("corrupt.jpg"), b"\xff\xd8\xff garbage").unwrap();
    dir
}

fn run(args: &[&str], data: &TempDir, stdin: Option<&str>) -> Output {
    let mut child = Command::new(opossum())
        .args(args)
        .env("OPOSSUM_DATA_DIR", data.path())
        .env_remove("OPOSSUM_REDIS_URL")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(text) = stdin {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    child.wait_with_output().unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn submit_without_redis_runs_embedded_and_prints_the_event() {
    let originals = originals();
    let data = TempDir::new("cli-data");
    let store = originals.path().to_str().unwrap();
    let ok = run(
        &[
            "submit",
            "a.png",
            "--ops",
            "thumbnail:64,format:webp",
            "--originals",
            store,
        ],
        &data,
        None,
    );
    assert!(ok.status.success(), "{}", stderr(&ok));
    let events = json_lines(&ok);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["status"], "ok");
    assert_eq!(events[0]["source"], "computed");

    let bad = run(
        &[
            "submit",
            "corrupt.jpg",
            "--ops",
            "thumbnail:64",
            "--originals",
            store,
        ],
        &data,
        None,
    );
    assert_eq!(bad.status.code(), Some(1));
    let events = json_lines(&bad);
    assert_eq!(events[0]["status"], "error");
    assert!(
        stderr(&bad).starts_with("error: 1 job(s) ended with an error"),
        "{}",
        stderr(&bad)
    );

    let escape = run(
        &[
            "submit",
            "../a.png",
            "--ops",
            "thumbnail:64",
            "--originals",
            store,
        ],
        &data,
        None,
    );
    assert_eq!(escape.status.code(), Some(1));
    assert!(
        stderr(&escape).contains("invalid image id `../a.png`"),
        "{}",
        stderr(&escape)
    );

    // `process --originals` reads the same store and names the object by its id.
    let processed = run(
        &[
            "process",
            "a.png",
            "--originals",
            store,
            "--ops",
            "thumbnail:64,format:webp",
            "--json",
        ],
        &data,
        None,
    );
    assert!(processed.status.success(), "{}", stderr(&processed));
    let report = &json_lines(&processed)[0];
    let key = run(
        &["key", "a.png", "--ops", "thumbnail:64,format:webp"],
        &data,
        None,
    );
    assert_eq!(report["key"], String::from_utf8_lossy(&key.stdout).trim());
    // The embedded submit cached it in the same data directory.
    assert_eq!(report["source"], "disk");
}

#[test]
fn submit_wait_events_and_queue_stats_against_a_worker() {
    let redis = RedisServer::start();
    every_fleet_command(&redis.url());
}

#[test]
fn every_fleet_command_works_on_a_cluster() {
    let cluster = RedisCluster::start(3, 0);
    every_fleet_command(&cluster.url());
}

/// `submit`, `events`, `queue`, `cache`, `stats` and `process` against a worker on `url`.
fn every_fleet_command(url: &str) {
    let originals = originals();
    let data = TempDir::new("cli-data");
    let worker_data = TempDir::new("cli-worker");
    let mut worker = Command::new(opossum_testkit::binary("opossum-worker"))
        .args(["--redis", url])
        .arg("--originals")
        .arg(originals.path())
        .arg("--data-dir")
        .arg(worker_data.path())
        .env("OPOSSUM_LOG", "warn")
        .spawn()
        .unwrap();
    let with_redis = |args: &[&str], stdin: Option<&str>| {
        let mut all = vec!["--redis", url];
        all.extend_from_slice(args);
        run(&all, &data, stdin)
    };

    let one = with_redis(
        &[
            "submit",
            "a.png",
            "--ops",
            "thumbnail:96",
            "--wait",
            "--timeout",
            "60s",
        ],
        None,
    );
    assert!(one.status.success(), "{}", stderr(&one));
    let event = &json_lines(&one)[0];
    assert_eq!(event["status"], "ok");
    assert!(event["bytes"].as_u64().unwrap() > 0);
    let again = with_redis(
        &["submit", "a.png", "--ops", "thumbnail:96", "--wait"],
        None,
    );
    assert_eq!(
        json_lines(&again)[0]["source"],
        "memory",
        "{}",
        stderr(&again)
    );

    // Invalidation reaches the worker's own memory and disk tiers, not only Redis.
    let dropped = with_redis(&["cache", "invalidate", "a.png", "--json"], None);
    assert!(dropped.status.success(), "{}", stderr(&dropped));
    assert_eq!(json_lines(&dropped)[0]["processes_notified"], 1);
    std::thread::sleep(Duration::from_millis(300));
    let recomputed = with_redis(
        &["submit", "a.png", "--ops", "thumbnail:96", "--wait"],
        None,
    );
    assert_eq!(
        json_lines(&recomputed)[0]["source"],
        "computed",
        "{}",
        stderr(&recomputed)
    );

    let batch = "{\"image_id\": \"a.png\", \"ops\": \"thumbnail:32\"}\n\
                 {\"image_id\": \"a.png\", \"ops\": [{\"op\": \"thumbnail\", \"size\": 33}]}\n\
                 {\"image_id\": \"corrupt.jpg\", \"ops\": \"thumbnail:32\"}\n";
    let many = with_redis(
        &["submit", "--batch", "-", "--wait", "--timeout", "60s"],
        Some(batch),
    );
    assert_eq!(
        many.status.code(),
        Some(1),
        "the corrupt image fails the batch: {}",
        stderr(&many)
    );
    let events = json_lines(&many);
    assert_eq!(events.len(), 3);
    assert_eq!(events.iter().filter(|e| e["status"] == "ok").count(), 2);

    let queued = with_redis(&["submit", "a.png", "--ops", "thumbnail:48"], None);
    assert!(queued.status.success(), "{}", stderr(&queued));
    let job_id = json_lines(&queued)[0]["job_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(json_lines(&queued)[0]["queue"], "opossum:process");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let listed = with_redis(&["events", "--count", "20"], None);
        assert!(listed.status.success(), "{}", stderr(&listed));
        if json_lines(&listed)
            .iter()
            .any(|e| e["job_id"] == job_id.as_str())
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no event for {job_id}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let stats = with_redis(&["queue", "stats", "--json"], None);
    assert!(stats.status.success(), "{}", stderr(&stats));
    let stats = &json_lines(&stats)[0];
    assert_eq!(stats["opossum:process"]["dead"], 0);
    assert_eq!(stats["opossum:warm"]["parked"], 0);

    let other = with_redis(&["--prefix", "tenant2", "queue", "stats", "--json"], None);
    assert!(
        json_lines(&other)[0]["tenant2:process"].is_object(),
        "{}",
        stderr(&other)
    );

    let bad_ops = with_redis(&["submit", "a.png", "--ops", "resize:abc"], None);
    assert_eq!(bad_ops.status.code(), Some(1));
    assert!(
        stderr(&bad_ops).contains("invalid --ops `resize:abc`"),
        "{}",
        stderr(&bad_ops)
    );
    // `process` on the shared tier: computed once, then answered by Redis in a fresh data
    // directory (another machine).
    let store = originals.path().to_str().unwrap();
    let process = [
        "--redis",
        url,
        "process",
        "a.png",
        "--originals",
        store,
        "--ops",
        "thumbnail:40",
        "--json",
    ];
    let processed = run(&process, &data, None);
    assert!(processed.status.success(), "{}", stderr(&processed));
    assert_eq!(json_lines(&processed)[0]["source"], "computed");
    let elsewhere = TempDir::new("cli-elsewhere");
    let shared = run(&process, &elsewhere, None);
    assert!(shared.status.success(), "{}", stderr(&shared));
    assert_eq!(json_lines(&shared)[0]["source"], "redis");

    // The operators' views: cache usage summed over every primary, and the analytics.
    let cache = with_redis(&["cache", "stats", "--json"], None);
    assert!(cache.status.success(), "{}", stderr(&cache));
    let cache: serde_json::Value = serde_json::from_slice(&cache.stdout).unwrap();
    assert!(
        cache["tiers"]["redis"]["usage"]["items"].as_u64().unwrap() >= 1,
        "{cache}"
    );
    // The worker flushes its analytics every second or so: wait for them.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let top = with_redis(&["stats", "top", "--json"], None);
        assert!(top.status.success(), "{}", stderr(&top));
        let top: serde_json::Value = serde_json::from_slice(&top.stdout).unwrap();
        if top["requests"].as_u64().unwrap() >= 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no request in the analytics: {top}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let dead = with_redis(&["queue", "dead"], None);
    assert!(dead.status.success(), "{}", stderr(&dead));

    let no_redis = run(&["events"], &data, None);
    assert_eq!(no_redis.status.code(), Some(1));
    assert!(
        stderr(&no_redis).contains("needs --redis"),
        "{}",
        stderr(&no_redis)
    );

    let _ = worker.kill();
    let _ = worker.wait();
}
