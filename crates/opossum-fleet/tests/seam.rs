//! The conformance suite of the `JobQueue` seam: the same checks against the Redis fleet (a
//! real redis-server, and a real 3-primary Redis Cluster) and the embedded queue (a real worker state over real tiers), so the
//! origin, the scheduler and `opossum submit` can rely on one behaviour.

use std::sync::Arc;
use std::time::Duration;

use opossum_fleet::{
    Embedded, Event, Fleet, Job, JobQueue, Originals, Priority, Status, WorkerState,
    submit_and_wait,
};
use opossum_testkit::{RedisCluster, RedisServer, TempDir, unique_namespace};

/// A backend under test and how a job gets finished on it.
struct Backend {
    name: &'static str,
    queue: Arc<dyn JobQueue>,
    /// the Redis fleet has no worker here: the test writes the completion event itself, as a
    /// worker would; the embedded queue runs the job
    fleet: Option<Fleet>,
    _dirs: Vec<TempDir>,
    _redis: Option<RedisServer>,
    _cluster: Option<RedisCluster>,
}

impl Backend {
    async fn finish(&self, job: &Job) {
        match &self.fleet {
            Some(fleet) => {
                let event = Event::gave_up(
                    job,
                    1,
                    &opossum_fleet::PipelineError::new(
                        opossum_fleet::ErrorKind::Transient,
                        "written by the test",
                    ),
                );
                fleet.events.publish(&[event]).await.unwrap();
            }
            None => self.queue.submit(vec![job.clone()]).await.unwrap(),
        }
    }
}

fn originals() -> TempDir {
    let dir = TempDir::new("seam-originals");
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus");
    std::fs::copy(corpus.join("photos/kodim23.png"), dir.join("a.png"))
        .expect("corpus photo (is ../shared beside the checkout?)");
    dir
}

async fn fleet_on(url: &str) -> Fleet {
    let client = opossum_redis::Redis::open(url).unwrap();
    Fleet::connect(&client, &unique_namespace("seam"))
        .await
        .unwrap()
}

async fn fleet_backend() -> Backend {
    let redis = RedisServer::start();
    let fleet = fleet_on(&redis.url()).await;
    Backend {
        name: "redis",
        queue: Arc::new(fleet.clone()),
        fleet: Some(fleet),
        _dirs: Vec::new(),
        _redis: Some(redis),
        _cluster: None,
    }
}

async fn cluster_backend() -> Backend {
    let cluster = RedisCluster::start(3, 0);
    let fleet = fleet_on(&cluster.url()).await;
    Backend {
        name: "redis cluster",
        queue: Arc::new(fleet.clone()),
        fleet: Some(fleet),
        _dirs: Vec::new(),
        _redis: None,
        _cluster: Some(cluster),
    }
}

async fn embedded_backend() -> Backend {
    let data = TempDir::new("seam-data");
    let originals = originals();
    let tiers = opossum_fleet::open_tiers(
        data.path(),
        None,
        None,
        &opossum_config::CachingSettings::default(),
    )
    .await;
    let state = Arc::new(WorkerState::new(
        &tiers,
        &unique_namespace("seam"),
        opossum_ops::Presets::default(),
        Originals::open(
            originals.path().to_str().unwrap(),
            &opossum_config::SourcesSettings::default(),
        )
        .unwrap(),
        opossum_image::Limits::default(),
    ));
    Backend {
        name: "embedded",
        queue: Arc::new(Embedded::start(state, 2, 1)),
        fleet: None,
        _dirs: vec![data, originals],
        _redis: None,
        _cluster: None,
    }
}

async fn conformance(backend: Backend) {
    let name = backend.name;
    let queue = backend.queue.as_ref();

    // A follower started before a job finishes sees its event; latest_events has it too.
    let mut follower = queue.follow().await.unwrap();
    let job = Job::new("a.png", "thumbnail:32,format:png", Priority::User);
    backend.finish(&job).await;
    let mut seen: Vec<Event> = Vec::new();
    for _ in 0..30 {
        seen.extend(follower.next().await);
        if seen.iter().any(|e| e.job_id == job.job_id) {
            break;
        }
    }
    let event = seen
        .iter()
        .find(|e| e.job_id == job.job_id)
        .unwrap_or_else(|| panic!("{name}: the follower never saw the job's event"));
    assert_eq!(event.image_id, "a.png", "{name}");
    assert_eq!(event.ops, "thumbnail:32,format:png", "{name}");
    let latest = queue.latest_events(10).await.unwrap();
    assert!(
        latest.iter().any(|e| e.job_id == job.job_id),
        "{name}: {latest:?}"
    );

    // Claims: taken once, held, refused while held, free after their TTL.
    let claims = vec![
        format!("seam-claim-{name}-a"),
        format!("seam-claim-{name}-b"),
    ];
    let refs: Vec<&String> = claims.iter().collect();
    assert_eq!(
        queue.claimed(&claims).await.unwrap(),
        [false, false],
        "{name}"
    );
    let ttl = Duration::from_millis(300);
    assert_eq!(
        queue.take_claims(&refs[..1], ttl).await.unwrap(),
        [true],
        "{name}"
    );
    assert_eq!(
        queue.take_claims(&refs, ttl).await.unwrap(),
        [false, true],
        "{name}"
    );
    assert_eq!(
        queue.claimed(&claims).await.unwrap(),
        [true, true],
        "{name}"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        queue.claimed(&claims).await.unwrap(),
        [false, false],
        "{name}"
    );
    assert!(queue.claimed(&[]).await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_fleet_conforms() {
    conformance(fleet_backend().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_fleet_conforms_on_a_cluster() {
    conformance(cluster_backend().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_queue_conforms() {
    conformance(embedded_backend().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backlogs_count_waiting_work_on_both() {
    // Redis without a worker: submitted jobs wait.
    let fleet = fleet_backend().await;
    let jobs: Vec<Job> = (0..3)
        .map(|i| Job::new(format!("{i}.png"), "thumbnail:32", Priority::Warm))
        .collect();
    fleet.queue.submit(jobs).await.unwrap();
    assert_eq!(fleet.queue.backlog(Priority::Warm).await.unwrap(), 3);
    assert_eq!(fleet.queue.backlog(Priority::User).await.unwrap(), 0);

    // The embedded queue runs what it is given; submit_and_wait returns each job's event,
    // and nothing is left waiting.
    let embedded = embedded_backend().await;
    let jobs = vec![
        Job::new("a.png", "thumbnail:40,format:png", Priority::User),
        Job::new("missing.png", "thumbnail:40", Priority::User),
    ];
    let ids: Vec<String> = jobs.iter().map(|j| j.job_id.clone()).collect();
    let events = submit_and_wait(embedded.queue.as_ref(), jobs, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(events.len(), 2, "{events:?}");
    let status = |id: &str| events.iter().find(|e| e.job_id == id).map(|e| e.status);
    assert_eq!(status(&ids[0]), Some(Status::Ok));
    assert_eq!(status(&ids[1]), Some(Status::Error));
    assert_eq!(
        events
            .iter()
            .find(|e| e.job_id == ids[1])
            .and_then(|e| e.error.as_ref())
            .map(|e| e.kind),
        Some(opossum_fleet::ErrorKind::NotFound)
    );
    assert_eq!(embedded.queue.backlog(Priority::User).await.unwrap(), 0);
}
