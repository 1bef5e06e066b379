//! `opossum serve` over real HTTP: headers, conditional requests, errors, signed URLs, the
//! stampede, the computation limit, the embedded scheduler, fleet mode with a real worker, a
//! real Varnish in front, and the status page in headless Chromium.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub(crate) use opossum_testkit::Process;
use opossum_testkit::{RedisServer, TempDir, free_port};

use crate::support::{binary, corpus};

/// A running `opossum serve` and what it serves.
pub(crate) struct Server {
    process: Process,
    pub(crate) base: String,
    pub(crate) originals: TempDir,
    _data: TempDir,
    _config: Option<TempDir>,
}

/// An originals directory: `a.png`, `photos/b c.png` (a space and a directory) and a corrupt
/// `corrupt.jpg`.
pub(crate) fn originals() -> TempDir {
    let dir = TempDir::new("serve-originals");
    std::fs::copy(corpus().join("photos/kodim23.png"), dir.join("a.png")).unwrap();
    std::fs::create_dir_all(dir.join("photos")).unwrap();
    std::fs::copy(
        corpus().join("photos/kodim23.png"),
        dir.join("photos/b c.png"),
    )
    .unwrap();
    std::fs::write(dir.join("corrupt.jpg"), b"\xff\xd8\xff garbage").unwrap();
    dir
}

/// `opossum serve` embedded, with `yaml` as its configuration file.
pub(crate) fn start_with_config(yaml: &str) -> Server {
    let config = TempDir::new("serve-config");
    let file = config.join("opossum.yaml");
    std::fs::write(&file, yaml).unwrap();
    let mut server = start(&["--config", file.to_str().unwrap()], None);
    server._config = Some(config);
    server
}

pub(crate) fn start(extra: &[&str], redis: Option<&str>) -> Server {
    let originals = originals();
    let location = originals.path().to_str().unwrap().to_string();
    start_over(originals, &location, extra, redis)
}

/// `opossum serve` embedded over the originals at `location` (a directory or an `http://`
/// base), keeping `originals` alive with it.
pub(crate) fn start_over(
    originals: TempDir,
    location: &str,
    extra: &[&str],
    redis: Option<&str>,
) -> Server {
    let data = TempDir::new("serve-data");
    let mut command = Command::new(binary());
    command
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(["--originals", location])
        .args(extra)
        .env("OPOSSUM_DATA_DIR", data.path())
        .env_remove("OPOSSUM_REDIS_URL")
        .env("OPOSSUM_LOG", "warn")
        .stdout(Stdio::piped());
    if let Some(url) = redis {
        command.args(["--redis", url]);
    }
    let mut child = command.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let base = line
        .trim()
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    Server {
        process: Process(child),
        base,
        originals,
        _data: data,
        _config: None,
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

pub(crate) async fn get(url: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = client().get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.unwrap()
}

fn header(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get(name)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

/// A sample of /metrics, its labels spelled as rendered (in name order); `None` when absent.
async fn sample_of(base: &str, series: &str) -> Option<f64> {
    let text = get(&format!("{base}/metrics"), &[])
        .await
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{series} ")))
        .map(|v| v.parse().unwrap())
}

async fn metric(base: &str, name: &str) -> f64 {
    sample_of(base, name)
        .await
        .unwrap_or_else(|| panic!("{name} missing from {base}/metrics"))
}

/// Asks for `url` once and checks the origin computed it.
async fn expect_computed(url: &str) {
    let first = get(url, &[]).await;
    assert_eq!(first.status(), 200, "{url}");
    assert_eq!(header(&first, "x-opossum-source"), "computed", "{url}");
}

/// The sum of every sample of the family `name` (all label sets); 0 when absent.
async fn family_sum(base: &str, name: &str) -> f64 {
    let text = get(&format!("{base}/metrics"), &[])
        .await
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .filter_map(|l| l.rsplit(' ').next())
        .map(|v| v.parse::<f64>().unwrap())
        .sum()
}

/// A sample of /metrics, 0 when absent (a counter not yet incremented).
async fn sample(base: &str, series: &str) -> f64 {
    sample_of(base, series).await.unwrap_or(0.0)
}

/// Waits until `series` reaches `at_least`; fails naming it after `within`.
async fn wait_for_sample(base: &str, series: &str, at_least: f64, within: Duration) -> f64 {
    let deadline = Instant::now() + within;
    loop {
        let value = sample(base, series).await;
        if value >= at_least {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "{series} is {value} after {within:?}, expected at least {at_least}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn image_hash(id: &str) -> String {
    let output = Command::new(binary())
        .args(["key", id, "--ops", "thumbnail:64", "--json"])
        .output()
        .unwrap();
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    report["image_hash"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn serve_answers_with_cdn_headers_and_clear_errors() {
    let server = start(&[], None);
    let base = &server.base;
    let url = format!("{base}/v1/img/thumbnail:64/a.png");

    let first = get(&url, &[("accept", "image/avif,image/webp,*/*")]).await;
    assert_eq!(first.status(), 200);
    assert_eq!(header(&first, "content-type"), "image/webp");
    assert_eq!(header(&first, "vary"), "Accept");
    assert_eq!(header(&first, "x-opossum-source"), "computed");
    assert_eq!(header(&first, "surrogate-key"), image_hash("a.png"));
    let cache_control = header(&first, "cache-control");
    let max_age: u64 = cache_control
        .strip_prefix("public, max-age=")
        .unwrap_or_else(|| panic!("{cache_control}"))
        .parse()
        .unwrap();
    // The entry's remaining TTL: a thumbnail's 7 days, adapted (pressure shortens it, cost
    // lengthens it; never past 30 days).
    assert!(max_age > 86_400 && max_age <= 30 * 86_400, "{max_age}");
    let etag = header(&first, "etag");
    assert!(
        etag.starts_with('"') && etag.ends_with('"') && etag.len() > 10,
        "{etag}"
    );
    let body = first.bytes().await.unwrap();
    assert_eq!(&body[8..12], b"WEBP");

    let again = get(&url, &[("accept", "image/webp")]).await;
    assert_eq!(header(&again, "x-opossum-source"), "memory");
    assert_eq!(header(&again, "etag"), etag);
    assert_eq!(again.bytes().await.unwrap(), body);

    let not_modified = get(&url, &[("accept", "image/webp"), ("if-none-match", &etag)]).await;
    assert_eq!(not_modified.status(), 304);
    assert_eq!(header(&not_modified, "etag"), etag);
    assert!(not_modified.bytes().await.unwrap().is_empty());

    // No WebP or AVIF in Accept: the source's format, still varying by Accept.
    let png = get(&url, &[("accept", "image/png")]).await;
    assert_eq!(header(&png, "content-type"), "image/png");
    assert_eq!(header(&png, "vary"), "Accept");
    assert_ne!(header(&png, "etag"), etag);
    // A chain that names its format is not negotiated.
    let fixed = get(
        &format!("{base}/v1/img/thumbnail:64,format:jpeg/a.png"),
        &[("accept", "image/webp")],
    )
    .await;
    assert_eq!(header(&fixed, "content-type"), "image/jpeg");
    assert_eq!(header(&fixed, "vary"), "");
    // Image ids with slashes and spaces.
    let nested = get(
        &format!("{base}/v1/img/thumbnail:32,format:png/photos/b%20c.png"),
        &[],
    )
    .await;
    assert_eq!(nested.status(), 200);

    let info = get(&format!("{base}/v1/info/a.png"), &[]).await;
    assert_eq!(info.status(), 200);
    let info: serde_json::Value = serde_json::from_slice(&info.bytes().await.unwrap()).unwrap();
    assert_eq!(info["width"], 768, "{info}");

    for (path, status, message) in [
        (
            "/v1/img/resize:abc/a.png",
            400,
            "invalid chain `resize:abc`",
        ),
        (
            "/v1/img/thumbnail:64/missing.png",
            404,
            "no image `missing.png`",
        ),
        ("/v1/img/thumbnail:64/corrupt.jpg", 422, "jpeg"),
        ("/v1/img/thumbnail:64/..%2Fa.png", 400, "invalid image id"),
        (
            "/v1/img/thumbnail:64/photos/..%2F..%2Fetc/passwd",
            400,
            "invalid image id",
        ),
        (
            "/v1/img/thumbnail:64/%2Fetc%2Fpasswd",
            400,
            "absolute paths",
        ),
    ] {
        let response = get(&format!("{base}{path}"), &[]).await;
        assert_eq!(response.status(), status, "{path}");
        assert_eq!(header(&response, "cache-control"), "no-store", "{path}");
        let error: serde_json::Value =
            serde_json::from_slice(&response.bytes().await.unwrap()).unwrap();
        assert!(
            error["error"]
                .as_str()
                .unwrap()
                .to_lowercase()
                .contains(message),
            "{path}: {error}"
        );
    }
    let long = format!("{base}/v1/img/thumbnail:64/{}.png", "x".repeat(3000));
    assert_eq!(get(&long, &[]).await.status(), 414);

    assert_eq!(
        get(&format!("{base}/healthz"), &[])
            .await
            .text()
            .await
            .unwrap(),
        "ok\n"
    );
    assert!(metric(base, "opossum_http_requests_total").await >= 14.0);
    assert!(metric(base, "opossum_http_not_modified_total").await >= 1.0);
    drop(server.process);
}

#[tokio::test]
async fn signed_urls_are_required_when_keys_are_set() {
    let server = start(
        &["--signing-key", "old-key", "--signing-key", "new-key"],
        None,
    );
    let path = "/v1/img/thumbnail:48,format:png/a.png";
    let url = format!("{}{path}", server.base);
    let unsigned = get(&url, &[]).await;
    assert_eq!(unsigned.status(), 403);
    assert_eq!(header(&unsigned, "cache-control"), "no-store");
    let forged = opossum_origin::sign(b"guessed", path);
    assert_eq!(get(&format!("{url}?sig={forged}"), &[]).await.status(), 403);
    for key in ["old-key", "new-key"] {
        let sig = opossum_origin::sign(key.as_bytes(), path);
        assert_eq!(
            get(&format!("{url}?sig={sig}"), &[]).await.status(),
            200,
            "{key}"
        );
    }
    // A signature is for one path only.
    let sig = opossum_origin::sign(b"new-key", path);
    let other = format!(
        "{}/v1/img/thumbnail:49,format:png/a.png?sig={sig}",
        server.base
    );
    assert_eq!(get(&other, &[]).await.status(), 403);
}

#[tokio::test]
async fn a_hundred_identical_misses_compute_once() {
    let server = start(&[], None);
    let url = format!(
        "{}/v1/img/resize:500:400:fill,sharpen:1,format:webp/a.png",
        server.base
    );
    let requests = (0..100).map(|_| {
        let url = url.clone();
        tokio::spawn(async move {
            let response = get(&url, &[]).await;
            (response.status().as_u16(), response.bytes().await.unwrap())
        })
    });
    let answers = futures::future::join_all(requests).await;
    let first = &answers[0].as_ref().unwrap().1;
    for answer in &answers {
        let (status, body) = answer.as_ref().unwrap();
        assert_eq!(*status, 200);
        assert_eq!(body, first);
    }
    assert_eq!(
        metric(&server.base, "opossum_origin_computations_total").await,
        1.0
    );
}

#[tokio::test]
async fn misses_beyond_the_limit_get_503_with_retry_after() {
    let server = start(&["--max-computations", "1", "--max-waiting", "0"], None);
    std::fs::copy(
        corpus().join("photos/harvesters.jpeg"),
        server.originals.join("big.jpeg"),
    )
    .unwrap();
    let requests = (0..12).map(|n| {
        let url = format!("{}/v1/img/blur:{}/big.jpeg", server.base, 5 + n);
        tokio::spawn(async move {
            let response = get(&url, &[]).await;
            (response.status().as_u16(), header(&response, "retry-after"))
        })
    });
    let answers: Vec<(u16, String)> = futures::future::join_all(requests)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let refused: Vec<&(u16, String)> = answers.iter().filter(|(s, _)| *s == 503).collect();
    assert!(!refused.is_empty(), "{answers:?}");
    assert!(refused.iter().all(|(_, retry)| retry == "1"), "{answers:?}");
    assert!(answers.iter().any(|(s, _)| *s == 200), "{answers:?}");
    assert!(metric(&server.base, "opossum_http_rejected_total").await >= 1.0);
}

#[tokio::test]
async fn embedded_mode_runs_the_scheduler() {
    let server = start_with_config(
        "warming:\n  related_formats: [webp, png]\n  interval: 1s\n  min_expected_requests: 0.1\n",
    );
    let url = |format: &str| format!("{}/v1/img/thumbnail:64,format:{format}/a.png", server.base);
    // Users ask for the WebP of another image: of a.png's siblings only the WebP is a chain
    // anyone requests, so only it is warmed.
    expect_computed(&format!(
        "{}/v1/img/thumbnail:64,format:webp/photos/b%20c.png",
        server.base
    ))
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    expect_computed(&url("jpeg")).await;
    for _ in 0..3 {
        let again = get(&url("jpeg"), &[]).await;
        assert_eq!(header(&again, "x-opossum-source"), "memory");
    }
    // Related-variant warming: the origin's computation is an event the scheduler follows;
    // the sibling is computed by the warm pool, so nobody waits for it.
    let within = Duration::from_secs(30);
    wait_for_sample(
        &server.base,
        r#"opossum_warm_jobs_total{result="enqueued",strategy="related"}"#,
        1.0,
        within,
    )
    .await;
    wait_for_sample(
        &server.base,
        r#"opossum_jobs_total{outcome="computed",queue="warm"}"#,
        1.0,
        within,
    )
    .await;
    let warmed = get(&url("webp"), &[]).await;
    assert_eq!(warmed.status(), 200);
    assert_eq!(header(&warmed, "x-opossum-source"), "memory");
    assert_eq!(
        metric(&server.base, "opossum_origin_computations_total").await,
        2.0
    );
    // Nobody asks for PNG thumbnails: that sibling was not warmed.
    assert_eq!(
        sample(
            &server.base,
            r#"opossum_warm_jobs_total{result="enqueued",strategy="related"}"#
        )
        .await,
        1.0
    );
    expect_computed(&url("png")).await;
    // Predictive warming reads the requests the origin recorded in its in-memory analytics:
    // every variant asked for is cached for days, so each run finds them cached.
    wait_for_sample(
        &server.base,
        r#"opossum_warm_jobs_total{result="cached",strategy="predictive"}"#,
        3.0,
        within,
    )
    .await;
    assert_eq!(
        sample(
            &server.base,
            r#"opossum_warm_jobs_total{result="enqueued",strategy="predictive"}"#
        )
        .await,
        0.0
    );
}

#[tokio::test]
async fn embedded_preset_requests_warm_their_family() {
    // The origin resolves `preset:thumb-s` to compute it; its completion event must still
    // say `preset:thumb-s`, or related-variant warming cannot find the family.
    let server = start_with_config(
        "presets:\n  thumb-s:\n    ops: thumbnail:64,format:webp\n    family: thumbs\n  thumb-m:\n    ops: thumbnail:128,format:webp\n    family: thumbs\nwarming:\n  related_formats: []\n",
    );
    let url = |preset: &str| format!("{}/v1/img/preset:{preset}/a.png", server.base);
    // Users ask for thumb-m (of another image), so it is a sibling worth warming.
    expect_computed(&format!(
        "{}/v1/img/preset:thumb-m/photos/b%20c.png",
        server.base
    ))
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    expect_computed(&url("thumb-s")).await;
    wait_for_sample(
        &server.base,
        r#"opossum_jobs_total{outcome="computed",queue="warm"}"#,
        1.0,
        Duration::from_secs(30),
    )
    .await;
    let sibling = get(&url("thumb-m"), &[]).await;
    assert_eq!(sibling.status(), 200);
    assert_eq!(header(&sibling, "x-opossum-source"), "memory");
    assert_eq!(
        metric(&server.base, "opossum_origin_computations_total").await,
        2.0
    );
}

#[tokio::test]
async fn embedded_warming_can_be_switched_off() {
    let server = start_with_config("warming:\n  enabled: false\n  interval: 1s\n");
    let url = format!("{}/v1/img/thumbnail:64,format:jpeg/a.png", server.base);
    assert_eq!(get(&url, &[]).await.status(), 200);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let sibling = get(&url.replace("jpeg", "webp"), &[]).await;
    assert_eq!(header(&sibling, "x-opossum-source"), "computed");
    let text = get(&format!("{}/metrics", server.base), &[])
        .await
        .text()
        .await
        .unwrap();
    assert!(!text.contains("opossum_warm_jobs_total{"), "{text}");
}

#[tokio::test]
async fn with_redis_misses_go_to_the_fleet() {
    let redis = RedisServer::start();
    misses_go_to_the_fleet(&redis.url()).await;
}

#[tokio::test]
async fn with_a_redis_cluster_misses_go_to_the_fleet() {
    let cluster = opossum_testkit::RedisCluster::start(3, 0);
    misses_go_to_the_fleet(&cluster.url()).await;
}

async fn misses_go_to_the_fleet(redis_url: &str) {
    let server = start(&[], Some(redis_url));
    let worker_data = TempDir::new("serve-worker");
    let (_worker, worker_base) = Process::spawn_announced(
        Command::new(opossum_testkit::binary("opossum-worker"))
            .args(["--redis", redis_url])
            .arg("--originals")
            .arg(server.originals.path())
            .arg("--data-dir")
            .arg(worker_data.path())
            .args(["--metrics-listen", "127.0.0.1:0"])
            .env("OPOSSUM_LOG", "warn"),
        "metrics on ",
        Duration::from_secs(30),
    );
    let url = format!("{}/v1/img/thumbnail:72,format:png/a.png", server.base);
    expect_computed(&url).await;
    // One request, one miss per tier fleet-wide: the origin looked the key up and counted
    // it; the job says so, and the worker looks up without counting.
    wait_for_sample(
        &worker_base,
        r#"opossum_jobs_total{outcome="computed",queue="process"}"#,
        1.0,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(
        family_sum(&worker_base, "opossum_cache_misses_total").await,
        0.0,
        "the worker counted the origin's miss again"
    );
    assert_eq!(
        family_sum(&server.base, "opossum_cache_misses_total").await,
        3.0,
        "the origin's memory, disk and Redis tiers each missed once"
    );
    let again = get(&url, &[]).await;
    assert_eq!(header(&again, "x-opossum-source"), "memory");
    // The worker computed it: its completion event is in the stream.
    let events = Command::new(binary())
        .args(["--redis", redis_url, "events", "--count", "10"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&events.stdout);
    assert!(text.contains("\"source\":\"computed\""), "{text}");
    // Analytics: the computed request is recorded by the worker that ran the job, the memory
    // hit by the origin; each once.
    let requests = || {
        let output = Command::new(binary())
            .args(["--redis", redis_url, "stats", "top", "--json"])
            .output()
            .unwrap();
        let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        report["requests"].as_u64().unwrap()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while requests() < 2 {
        assert!(
            Instant::now() < deadline,
            "the analytics never saw 2 requests"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Past two flush intervals, still two: nobody recorded a request twice.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(requests(), 2);
    let missing = get(
        &format!("{}/v1/img/thumbnail:72/nothing.png", server.base),
        &[],
    )
    .await;
    assert_eq!(missing.status(), 404);
    let queue = get(&format!("{}/metrics", server.base), &[])
        .await
        .text()
        .await
        .unwrap();
    assert!(
        queue.contains("opossum_queue_jobs{queue=\"process\",state=\"due\"} 0"),
        "{queue}"
    );
}

fn varnishd() -> PathBuf {
    opossum_testkit::tool(&["varnishd"], "install it with `apt-get install varnish`")
}

#[tokio::test]
async fn varnish_caches_the_origin_and_honours_the_purge() {
    let server = start(&[], None);
    let origin_port = server.base.rsplit(':').next().unwrap().to_string();
    let dir = TempDir::new("varnish");
    let vcl =
        std::fs::read_to_string(opossum_testkit::repository().join("deploy/varnish/default.vcl"))
            .unwrap()
            .replace(".port = \"8080\";", &format!(".port = \"{origin_port}\";"));
    std::fs::write(dir.join("test.vcl"), vcl).unwrap();
    let port = free_port();
    let _varnish = Process(
        Command::new(varnishd())
            .args([
                "-F",
                "-j",
                "none",
                "-a",
                &format!("127.0.0.1:{port}"),
                "-s",
                "malloc,64m",
            ])
            .arg("-f")
            .arg(dir.join("test.vcl"))
            .arg("-n")
            .arg(dir.join("work"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let front = format!("http://127.0.0.1:{port}");
    let url = format!("{front}/v1/img/thumbnail:80,format:png/a.png");
    let deadline = Instant::now() + Duration::from_secs(20);
    let first = loop {
        match client().get(&url).send().await {
            Ok(response) => break response,
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => panic!("varnish never answered: {e}"),
        }
    };
    assert_eq!(first.status(), 200);
    assert_eq!(header(&first, "x-cache"), "MISS");
    let origin_requests = metric(&server.base, "opossum_http_requests_total").await;
    let second = get(&url, &[]).await;
    assert_eq!(header(&second, "x-cache"), "HIT");
    assert_eq!(
        metric(&server.base, "opossum_http_requests_total").await,
        origin_requests,
        "a Varnish hit must not reach the origin"
    );

    let data = TempDir::new("purge-data");
    let purged = Command::new(binary())
        .args([
            "cache",
            "invalidate",
            "a.png",
            "--json",
            "--purge",
            &format!("{front}/"),
        ])
        .env("OPOSSUM_DATA_DIR", data.path())
        .env_remove("OPOSSUM_REDIS_URL")
        .output()
        .unwrap();
    assert!(
        purged.status.success(),
        "{}",
        String::from_utf8_lossy(&purged.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&purged.stdout).unwrap();
    assert_eq!(report["cdn_purged"][0]["status"], 200, "{report}");

    let third = get(&url, &[]).await;
    assert_eq!(header(&third, "x-cache"), "MISS");
    assert_eq!(
        metric(&server.base, "opossum_http_requests_total").await,
        origin_requests + 1.0,
        "after the purge the request reaches the origin"
    );
    // A purge without a key is refused, and from Varnish's own answer, not the origin's.
    let bad = client()
        .request(
            reqwest::Method::from_bytes(b"PURGE").unwrap(),
            format!("{front}/"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
}

fn chromium() -> PathBuf {
    opossum_testkit::tool(
        &["chromium", "chromium-browser"],
        "install it with `apt-get install chromium`",
    )
}

#[tokio::test]
async fn the_status_page_shows_the_numbers_in_a_browser() {
    let server = start(&[], None);
    let url = format!("{}/v1/img/thumbnail:40,format:png/a.png", server.base);
    // One miss, then three hits from memory.
    for _ in 0..4 {
        assert_eq!(get(&url, &[]).await.status(), 200);
    }
    let profile = TempDir::new("chromium");
    let output = tokio::process::Command::new(chromium())
        .args(["--headless", "--no-sandbox", "--disable-gpu", "--dump-dom"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("{}/", server.base))
        .output()
        .await
        .unwrap();
    let dom = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        dom.contains("Opossum origin"),
        "{dom}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let value = |marker: &str| -> String {
        let start = dom
            .find(marker)
            .unwrap_or_else(|| panic!("{marker} not in {dom}"))
            + marker.len();
        let rest = &dom[start..];
        let open = rest.find('>').unwrap() + 1;
        let close = rest[open..].find('<').unwrap() + open;
        rest[open..close].to_string()
    };
    assert_eq!(value("data-metric=\"requests\""), "4");
    assert_eq!(value("data-metric=\"computations\""), "1");
    assert_eq!(value("data-metric=\"hit-rate\""), "75.0%");
    assert_eq!(
        value("data-tier=\"memory\" data-category=\"thumbnail\" data-hits=\"3\" data-misses=\"1\""),
        "75.0%"
    );
    assert_eq!(dom.matches("data-metric=\"recent\"").count(), 4);
    assert!(dom.contains("id=\"hit-rate-chart\""));
}
