//! The pipeline against real tiers: prefix resumption, error results, coalescing, leases.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use opossum_cache::{
    DiskConfig, DiskTier, Hierarchy, MemoryConfig, MemoryTier, RedisConfig, RedisTier, Tier,
};
use opossum_ops::{Chain, Options};
use opossum_pipeline::{
    ErrorKind, Leases, Mode, Pipeline, PipelineConfig, PipelineError, Provenance,
};
use opossum_testkit::{RedisCluster, RedisServer, TempDir, unique_namespace};

fn photo() -> Vec<u8> {
    let path = format!(
        "{}/../../../shared/corpus/photos/harvesters.jpeg",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{path}: {e} (is ../shared beside the checkout?)"))
}

fn config(namespace: &str) -> PipelineConfig {
    PipelineConfig {
        namespace: namespace.to_string(),
        ..PipelineConfig::default()
    }
}

fn local_pipeline(dir: &TempDir, namespace: &str) -> Pipeline {
    let disk = Arc::new(
        DiskTier::open(DiskConfig {
            path: dir.join("rocksdb"),
            max_bytes: 256 << 20,
            cleanup_interval: Duration::from_secs(3600),
            memory_bytes: DiskConfig::DEFAULT_MEMORY_BYTES,
        })
        .unwrap(),
    );
    let tiers: Vec<Arc<dyn Tier>> = vec![
        Arc::new(MemoryTier::new(MemoryConfig::default())),
        disk.clone(),
    ];
    Pipeline::new(
        Arc::new(Hierarchy::new(tiers, Some(disk))),
        config(namespace),
        None,
    )
}

/// A loader that counts its calls.
fn counting(
    calls: &Arc<AtomicUsize>,
    bytes: Vec<u8>,
) -> impl FnOnce() -> std::future::Ready<Result<Vec<u8>, PipelineError>> + use<> {
    let calls = calls.clone();
    move || {
        calls.fetch_add(1, Ordering::SeqCst);
        std::future::ready(Ok(bytes))
    }
}

fn never() -> std::future::Ready<Result<Vec<u8>, PipelineError>> {
    panic!("the original must not be loaded: a cached prefix should have been used")
}

#[tokio::test]
async fn a_chain_resumes_from_its_longest_cached_prefix() {
    let dir = TempDir::new("prefix");
    let pipeline = local_pipeline(&dir, "prefix");
    let calls = Arc::new(AtomicUsize::new(0));
    let first = Chain::parse("resize:400:300,grayscale,blur:2,format:png").unwrap();
    let second = Chain::parse("resize:400:300,grayscale,sharpen:1.5,format:png").unwrap();

    let a = pipeline
        .run(
            "harvesters.jpeg",
            &first,
            &Options::new(),
            counting(&calls, photo()),
        )
        .await
        .unwrap();
    assert_eq!(a.provenance, Provenance::Computed);
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    let b = pipeline
        .run("harvesters.jpeg", &second, &Options::new(), never)
        .await
        .unwrap();
    assert_eq!(b.provenance, Provenance::Computed);

    // The resumed result is exactly what a cold computation gives.
    let cold_dir = TempDir::new("prefix-cold");
    let cold = local_pipeline(&cold_dir, "prefix");
    let fresh = cold
        .run(
            "harvesters.jpeg",
            &second,
            &Options::new(),
            counting(&calls, photo()),
        )
        .await
        .unwrap();
    assert_eq!(b.entry.body, fresh.entry.body);
    assert_eq!(b.key, fresh.key);

    // And the whole request is now a hit.
    let again = pipeline
        .run("harvesters.jpeg", &second, &Options::new(), never)
        .await
        .unwrap();
    assert_eq!(
        again.provenance,
        Provenance::Tier(opossum_cache::TierKind::Memory)
    );
}

#[tokio::test]
async fn bad_input_is_remembered_as_an_error_result() {
    let dir = TempDir::new("errors");
    let pipeline = local_pipeline(&dir, "errors");
    let chain = Chain::parse("thumbnail:100").unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let garbage = b"\xff\xd8\xff\xe0 not a jpeg at all".to_vec();
    let first = pipeline
        .run(
            "broken.jpg",
            &chain,
            &Options::new(),
            counting(&calls, garbage),
        )
        .await
        .unwrap_err();
    assert_eq!(first.kind(), ErrorKind::BadImage, "{first:?}");
    assert_eq!(first.provenance(), Some(Provenance::Computed));
    let message = first.message();
    assert!(message.starts_with("corrupt jpeg image"), "{message}");

    let second = pipeline
        .run("broken.jpg", &chain, &Options::new(), never)
        .await
        .unwrap_err();
    assert_eq!(second.kind(), ErrorKind::BadImage, "{second:?}");
    assert_eq!(
        second.provenance(),
        Some(Provenance::Tier(opossum_cache::TierKind::Memory))
    );
    assert_eq!(second.message(), message);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert!(first.is_permanent());
}

#[tokio::test]
async fn identical_concurrent_misses_compute_once_in_a_process() {
    let dir = TempDir::new("coalesce");
    let pipeline = Arc::new(local_pipeline(&dir, "coalesce"));
    let calls = Arc::new(AtomicUsize::new(0));
    let chain = Chain::parse("resize:300:200,format:webp").unwrap();
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (pipeline, calls, chain) = (pipeline.clone(), calls.clone(), chain.clone());
        tasks.push(tokio::spawn(async move {
            let load = move || {
                calls.fetch_add(1, Ordering::SeqCst);
                async {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    Ok(photo())
                }
            };
            pipeline
                .run("harvesters.jpeg", &chain, &Options::new(), load)
                .await
                .unwrap()
        }));
    }
    let mut sources = Vec::new();
    let mut bodies = std::collections::HashSet::new();
    for task in tasks {
        let response = task.await.unwrap();
        sources.push(response.provenance);
        bodies.insert(response.entry.body.clone());
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the original was loaded more than once"
    );
    assert_eq!(
        sources
            .iter()
            .filter(|s| **s == Provenance::Computed)
            .count(),
        1,
        "{sources:?}"
    );
    assert_eq!(bodies.len(), 1, "callers got different bytes");
    assert_eq!(
        pipeline.hierarchy().stats().computed.values().sum::<u64>(),
        1
    );
}

#[tokio::test]
async fn identical_misses_in_two_processes_compute_once_through_the_lease() {
    let server = RedisServer::start();
    compute_once_through_the_lease(&server.url()).await;
}

#[tokio::test]
async fn identical_misses_compute_once_through_the_lease_on_a_cluster() {
    let cluster = RedisCluster::start(3, 0);
    compute_once_through_the_lease(&cluster.url()).await;
}

/// A worker's pipeline: its own memory tier and in-flight map, sharing only the Redis at `url`
/// (the shared tier and leases lasting `ttl`).
fn lease_worker(url: &str, namespace: &str, ttl: Duration) -> Arc<Pipeline> {
    let redis = Arc::new(RedisTier::new(&RedisConfig::new(url)).unwrap());
    let leases = Leases::new(redis.connection(), ttl);
    let tiers: Vec<Arc<dyn Tier>> = vec![Arc::new(MemoryTier::new(MemoryConfig::default())), redis];
    Arc::new(Pipeline::new(
        Arc::new(Hierarchy::new(tiers, None)),
        config(namespace),
        Some(leases),
    ))
}

async fn compute_once_through_the_lease(url: &str) {
    let namespace = unique_namespace("lease");
    // Two workers: each its own memory tier and in-flight map, sharing only Redis.
    let worker = || lease_worker(url, &namespace, Duration::from_secs(10));
    let (one, two) = (worker(), worker());
    let calls = Arc::new(AtomicUsize::new(0));
    let chain = Chain::parse("thumbnail:160,format:jpeg").unwrap();
    let mut tasks = Vec::new();
    for pipeline in [one.clone(), two.clone(), one, two] {
        let (calls, chain) = (calls.clone(), chain.clone());
        tasks.push(tokio::spawn(async move {
            let load = move || {
                calls.fetch_add(1, Ordering::SeqCst);
                async {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    Ok(photo())
                }
            };
            pipeline
                .run("harvesters.jpeg", &chain, &Options::new(), load)
                .await
                .unwrap()
        }));
    }
    let mut bodies = std::collections::HashSet::new();
    for task in tasks {
        bodies.insert(task.await.unwrap().entry.body.clone());
    }
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "computed in more than one worker"
    );
    assert_eq!(bodies.len(), 1);
}

/// What a gated loader returns.
type Loading = std::pin::Pin<Box<dyn Future<Output = Result<Vec<u8>, PipelineError>> + Send>>;

/// A loader that waits for `gate` before answering with the photo.
fn gated(gate: &Arc<tokio::sync::Notify>) -> impl FnOnce() -> Loading + use<> {
    let gate = gate.clone();
    move || {
        Box::pin(async move {
            gate.notified().await;
            Ok(photo())
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_request_that_joins_a_warm_computation_raises_its_priority() {
    let dir = TempDir::new("raise");
    let pipeline = Arc::new(local_pipeline(&dir, "raise"));
    let chain = Chain::parse("thumbnail:120,format:webp").unwrap();
    let gate = Arc::new(tokio::sync::Notify::new());
    let warm = {
        let (pipeline, chain, load) = (pipeline.clone(), chain.clone(), gated(&gate));
        tokio::spawn(async move {
            pipeline
                .respond(
                    "harvesters.jpeg",
                    &chain,
                    &Options::new(),
                    Mode::warm(0),
                    load,
                )
                .await
        })
    };
    // The warm computation is waiting for its original; a user asks for the same variant.
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(pipeline.raised_priorities(), 0);
    let user = {
        let (pipeline, chain) = (pipeline.clone(), chain.clone());
        tokio::spawn(async move {
            pipeline
                .run("harvesters.jpeg", &chain, &Options::new(), never)
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(pipeline.raised_priorities(), 1);
    gate.notify_one();
    let user = user.await.unwrap().unwrap();
    let warm = warm.await.unwrap().unwrap();
    assert_eq!(user.provenance, Provenance::Coalesced);
    assert_eq!(warm.provenance, Provenance::Computed);
    assert_eq!(user.entry.body, warm.entry.body);
    // A warm computation nobody joins stays at background priority.
    let other = Chain::parse("thumbnail:90,format:webp").unwrap();
    pipeline
        .respond(
            "harvesters.jpeg",
            &other,
            &Options::new(),
            Mode::warm(0),
            counting(&Arc::new(AtomicUsize::new(0)), photo()),
        )
        .await
        .unwrap();
    assert_eq!(pipeline.raised_priorities(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_warm_computation_pauses_between_steps_while_user_work_runs() {
    let dir = TempDir::new("yield");
    let busy = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let pipeline = {
        let busy = busy.clone();
        Arc::new(
            local_pipeline(&dir, "yield")
                .yielding_to(Arc::new(move || busy.load(Ordering::SeqCst))),
        )
    };
    let chain = Chain::parse("thumbnail:120,format:webp").unwrap();
    let warm = {
        let (pipeline, chain) = (pipeline.clone(), chain.clone());
        tokio::spawn(async move {
            let load = counting(&Arc::new(AtomicUsize::new(0)), photo());
            pipeline
                .respond(
                    "harvesters.jpeg",
                    &chain,
                    &Options::new(),
                    Mode::warm(0),
                    load,
                )
                .await
        })
    };
    // While user work runs, the warm computation does not get past its first step.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !warm.is_finished(),
        "a warm computation ran beside user work"
    );
    // User requests are never held back, whatever the user-work signal says.
    let user = Chain::parse("thumbnail:100,format:webp").unwrap();
    let answered = tokio::time::timeout(
        Duration::from_secs(10),
        pipeline.run(
            "harvesters.jpeg",
            &user,
            &Options::new(),
            counting(&Arc::new(AtomicUsize::new(0)), photo()),
        ),
    )
    .await
    .expect("a user request waited");
    assert_eq!(answered.unwrap().provenance, Provenance::Computed);
    assert!(!warm.is_finished());
    // The user work is done: the warm computation goes on.
    busy.store(false, Ordering::SeqCst);
    let warm = tokio::time::timeout(Duration::from_secs(10), warm)
        .await
        .expect("the warm computation did not resume")
        .unwrap()
        .unwrap();
    assert_eq!(warm.provenance, Provenance::Computed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_request_does_not_wait_on_another_processes_warm_computation() {
    let server = RedisServer::start();
    let namespace = unique_namespace("warm-lease");
    let worker = || lease_worker(&server.url(), &namespace, Duration::from_secs(30));
    let (warmer, serving) = (worker(), worker());
    let chain = Chain::parse("thumbnail:160,format:jpeg").unwrap();
    let gate = Arc::new(tokio::sync::Notify::new());
    // The warm job holds the lease while it waits for its original (as long as we like).
    let warm = {
        let (pipeline, chain, load) = (warmer.clone(), chain.clone(), gated(&gate));
        tokio::spawn(async move {
            pipeline
                .respond(
                    "harvesters.jpeg",
                    &chain,
                    &Options::new(),
                    Mode::warm(0),
                    load,
                )
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let calls = Arc::new(AtomicUsize::new(0));
    let user = tokio::time::timeout(
        Duration::from_secs(10),
        serving.run(
            "harvesters.jpeg",
            &chain,
            &Options::new(),
            counting(&calls, photo()),
        ),
    )
    .await
    .expect("the user request waited for the warm computation's lease")
    .unwrap();
    assert_eq!(user.provenance, Provenance::Computed);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    gate.notify_one();
    assert!(warm.await.unwrap().is_ok());

    // A user computation's lease is still waited for: the second user coalesces.
    let other = Chain::parse("thumbnail:161,format:jpeg").unwrap();
    let gate = Arc::new(tokio::sync::Notify::new());
    let first = {
        let (pipeline, chain, load) = (warmer.clone(), other.clone(), gated(&gate));
        tokio::spawn(async move {
            pipeline
                .run("harvesters.jpeg", &chain, &Options::new(), load)
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let second = {
        let (pipeline, chain) = (serving.clone(), other.clone());
        tokio::spawn(async move {
            pipeline
                .run("harvesters.jpeg", &chain, &Options::new(), never)
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    gate.notify_one();
    assert_eq!(
        first.await.unwrap().unwrap().provenance,
        Provenance::Computed
    );
    assert_eq!(
        second.await.unwrap().unwrap().provenance,
        Provenance::Coalesced
    );
}

#[tokio::test]
async fn a_version_bump_makes_old_entries_unreachable() {
    let dir = TempDir::new("version");
    let disk = Arc::new(
        DiskTier::open(DiskConfig {
            path: dir.join("rocksdb"),
            max_bytes: 64 << 20,
            cleanup_interval: Duration::from_secs(3600),
            memory_bytes: DiskConfig::DEFAULT_MEMORY_BYTES,
        })
        .unwrap(),
    );
    let hierarchy = Arc::new(Hierarchy::new(
        vec![disk.clone() as Arc<dyn Tier>],
        Some(disk),
    ));
    let chain = Chain::parse("thumbnail:64").unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let v1 = Pipeline::new(
        hierarchy.clone(),
        PipelineConfig {
            version: "1".into(),
            ..config("v")
        },
        None,
    );
    let v2 = Pipeline::new(
        hierarchy,
        PipelineConfig {
            version: "2".into(),
            ..config("v")
        },
        None,
    );
    v1.run("h.jpg", &chain, &Options::new(), counting(&calls, photo()))
        .await
        .unwrap();
    assert!(matches!(
        v1.run("h.jpg", &chain, &Options::new(), never)
            .await
            .unwrap()
            .provenance,
        Provenance::Tier(_)
    ));
    assert_eq!(
        v2.run("h.jpg", &chain, &Options::new(), counting(&calls, photo()))
            .await
            .unwrap()
            .provenance,
        Provenance::Computed
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn warm_lookups_are_not_counted_as_hits_or_misses() {
    let dir = TempDir::new("warm-counts");
    let pipeline = local_pipeline(&dir, "warm-counts");
    let chain = Chain::parse("thumbnail:64,format:png").unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let lookups = |pipeline: &Pipeline| {
        let totals = pipeline.hierarchy().stats().tier_totals("memory");
        (totals.hits, totals.misses)
    };
    // A warm job computes: no miss counted, one computation.
    let warmed = pipeline
        .respond(
            "a.jpg",
            &chain,
            &Options::new(),
            Mode::warm(0),
            counting(&calls, photo()),
        )
        .await
        .unwrap();
    assert_eq!(warmed.provenance, Provenance::Computed);
    assert_eq!(lookups(&pipeline), (0, 0));
    // A warm job that finds it cached: no hit counted either.
    let again = pipeline
        .respond("a.jpg", &chain, &Options::new(), Mode::warm(0), never)
        .await
        .unwrap();
    assert!(
        matches!(again.provenance, Provenance::Tier(_)),
        "{:?}",
        again.provenance
    );
    assert_eq!(lookups(&pipeline), (0, 0));
    // A request is counted.
    pipeline
        .run("a.jpg", &chain, &Options::new(), never)
        .await
        .unwrap();
    assert_eq!(lookups(&pipeline), (1, 0));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_render_past_its_deadline_is_transient_and_not_remembered() {
    // A loaded machine can push any render past its deadline: the next attempt (another
    // worker, a calmer moment) must compute it, not read a remembered error for 5 minutes.
    let hierarchy = Arc::new(Hierarchy::new(
        vec![Arc::new(MemoryTier::new(MemoryConfig::default())) as Arc<dyn Tier>],
        None,
    ));
    let svg = br#"<svg xmlns="http://www.w3.org/2000/svg" width="1600" height="1600">
        <filter id="b"><feGaussianBlur stdDeviation="40"/></filter>
        <circle cx="800" cy="800" r="700" fill="teal" filter="url(#b)"/></svg>"#
        .to_vec();
    let chain = Chain::parse("resize:1600:1600,format:png").unwrap();
    let mut hurried = config("deadline");
    hurried.limits.svg_render_timeout = Duration::ZERO;
    let loaded_machine = Pipeline::new(hierarchy.clone(), hurried, None);
    let calls = Arc::new(AtomicUsize::new(0));
    let late = loaded_machine
        .run(
            "late.svg",
            &chain,
            &Options::new(),
            counting(&calls, svg.clone()),
        )
        .await
        .unwrap_err();
    assert_eq!(late.kind(), ErrorKind::Transient, "{late:?}");
    assert!(!late.is_permanent());
    assert!(
        late.message().contains("svg rendering took longer"),
        "{late}"
    );

    let calm = Pipeline::new(hierarchy, config("deadline"), None);
    let answer = calm
        .run("late.svg", &chain, &Options::new(), counting(&calls, svg))
        .await
        .expect("the deadline's failure was remembered as a bad image");
    assert_eq!(answer.provenance, Provenance::Computed);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

/// Watermarks held in memory, replaceable, counting their loads.
struct Marks {
    bytes: std::sync::Mutex<Vec<u8>>,
    loads: AtomicUsize,
}

impl opossum_pipeline::Resources for Marks {
    fn load<'a>(
        &'a self,
        id: &'a str,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Vec<u8>, PipelineError>> + Send + 'a>,
    > {
        self.loads.fetch_add(1, Ordering::SeqCst);
        let result = match id {
            "logo.png" => Ok(self.bytes.lock().unwrap().clone()),
            other => Err(PipelineError::new(
                ErrorKind::NotFound,
                format!("no image `{other}`"),
            )),
        };
        Box::pin(std::future::ready(result))
    }
}

/// A hierarchy of one disk tier in `dir`: what one process's cache and the fleet's share.
fn disk_only(dir: &TempDir) -> Arc<Hierarchy> {
    let disk = Arc::new(
        DiskTier::open(DiskConfig {
            path: dir.join("rocksdb"),
            max_bytes: 64 << 20,
            cleanup_interval: Duration::from_secs(3600),
            memory_bytes: DiskConfig::DEFAULT_MEMORY_BYTES,
        })
        .unwrap(),
    );
    let tiers: Vec<Arc<dyn Tier>> = vec![disk.clone()];
    Arc::new(Hierarchy::new(tiers, Some(disk)))
}

fn png(rgb: [u8; 3]) -> Vec<u8> {
    let mut bytes = Vec::new();
    image::DynamicImage::ImageRgb8(image::RgbImage::from_pixel(40, 20, image::Rgb(rgb)))
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .unwrap();
    bytes
}

#[tokio::test]
async fn a_watermark_is_pinned_into_the_key_and_a_replaced_one_changes_it() {
    let dir = TempDir::new("watermark");
    let marks = Arc::new(Marks {
        bytes: std::sync::Mutex::new(png([255, 0, 0])),
        loads: AtomicUsize::new(0),
    });
    let mut settings = config("watermark");
    settings.resource_ttl = Duration::ZERO;
    let pipeline = Pipeline::new(disk_only(&dir), settings, None).with_resources(marks.clone());
    let chain = Chain::parse("resize:400:300,watermark:logo.png:north-west:1,format:png").unwrap();
    let run = || async {
        let calls = Arc::new(AtomicUsize::new(0));
        pipeline
            .run(
                "harvesters.jpeg",
                &chain,
                &Options::new(),
                counting(&calls, photo()),
            )
            .await
            .unwrap()
    };
    let first = run().await;
    assert_eq!(first.provenance, Provenance::Computed);
    let corner = image::load_from_memory(&first.entry.body)
        .unwrap()
        .to_rgb8();
    assert_eq!(corner.get_pixel(3, 3).0, [255, 0, 0]);
    // The key is the chain's with the watermark's version in it, not the chain as asked.
    assert_ne!(
        first.key,
        pipeline.key("harvesters.jpeg", &chain, &Options::new())
    );
    assert!(matches!(run().await.provenance, Provenance::Tier(_)));
    // A new watermark image: a new key, computed with the new pixels.
    *marks.bytes.lock().unwrap() = png([0, 0, 255]);
    let replaced = run().await;
    assert_ne!(replaced.key, first.key);
    assert_eq!(replaced.provenance, Provenance::Computed);
    let corner = image::load_from_memory(&replaced.entry.body)
        .unwrap()
        .to_rgb8();
    assert_eq!(corner.get_pixel(3, 3).0, [0, 0, 255]);
    // A missing watermark is the store's answer, named.
    let missing = Chain::parse("watermark:gone.png").unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let err = pipeline
        .run(
            "harvesters.jpeg",
            &missing,
            &Options::new(),
            counting(&calls, photo()),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.to_string().contains("watermark `gone.png`"), "{err}");
    // A pipeline with no store refuses a watermark as a bad request.
    let bare = local_pipeline(&TempDir::new("watermark-bare"), "bare");
    let err = bare
        .run(
            "harvesters.jpeg",
            &chain,
            &Options::new(),
            counting(&calls, photo()),
        )
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::BadRequest);
}

#[tokio::test]
async fn a_watermark_is_cached_for_the_fleet_as_a_resource() {
    let dir = TempDir::new("watermark-shared");
    let marks = Arc::new(Marks {
        bytes: std::sync::Mutex::new(png([0, 200, 0])),
        loads: AtomicUsize::new(0),
    });
    let hierarchy = disk_only(&dir);
    // Two processes' pipelines over one shared cache, each with its own in-process copies.
    let process = || {
        Pipeline::new(hierarchy.clone(), config("watermark-shared"), None)
            .with_resources(marks.clone())
    };
    let (first, second) = (process(), process());
    let chain = Chain::parse("watermark:logo.png,format:png").unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let a = first
        .run(
            "harvesters.jpeg",
            &chain,
            &Options::new(),
            counting(&calls, photo()),
        )
        .await
        .unwrap();
    assert_eq!(marks.loads.load(Ordering::SeqCst), 1);
    // The other process pins the same version from the shared copy: no second load.
    let pinned = second.pin(&chain).await.unwrap();
    assert_eq!(marks.loads.load(Ordering::SeqCst), 1);
    assert_eq!(
        second.key("harvesters.jpeg", &pinned, &Options::new()),
        a.key
    );
    let b = second
        .run(
            "harvesters.jpeg",
            &chain,
            &Options::new(),
            counting(&calls, photo()),
        )
        .await
        .unwrap();
    assert_eq!((b.key, b.provenance.name()), (a.key, "disk"));
    assert_eq!(marks.loads.load(Ordering::SeqCst), 1);
}
