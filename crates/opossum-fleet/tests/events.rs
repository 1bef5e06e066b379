//! The completion-event writer against a real redis-server: events of jobs finishing together
//! share round trips, every one is in the stream once, and a failed write fails the jobs it
//! carried (so they run again) without stopping the writer.

use std::collections::HashSet;
use std::time::Duration;

use opossum_fleet::{Event, EventWriter, Fleet, Job, PipelineError, Priority};
use opossum_testkit::{RedisServer, unique_namespace};

fn event(n: usize) -> Event {
    let job = Job::new("a.png", format!("thumbnail:{}", 10 + n), Priority::User);
    Event::gave_up(
        &job,
        1,
        &PipelineError::new(opossum_fleet::ErrorKind::Transient, "written by the test"),
    )
}

/// A fleet on `server` under a prefix of its own, and a writer of its events.
async fn writer_on(server: &RedisServer) -> (Fleet, EventWriter) {
    let client = opossum_redis::Redis::open(server.url().as_str()).unwrap();
    let fleet = Fleet::connect(&client, &unique_namespace("writer"))
        .await
        .unwrap();
    let writer = EventWriter::spawn(fleet.events.clone());
    (fleet, writer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_finishing_together_share_round_trips_and_all_arrive() {
    let server = RedisServer::start();
    let (fleet, writer) = writer_on(&server).await;
    let events: Vec<Event> = (0..300).map(event).collect();
    let ids: HashSet<String> = events.iter().map(|e| e.job_id.clone()).collect();
    let tasks: Vec<_> = events
        .into_iter()
        .map(|event| {
            let writer = writer.clone();
            tokio::spawn(async move { writer.publish(event).await })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let written = fleet.events.latest(1000).await.unwrap();
    let found: Vec<String> = written.into_iter().map(|(_, e)| e.job_id).collect();
    assert_eq!(found.len(), 300, "every event once");
    assert_eq!(found.iter().cloned().collect::<HashSet<_>>(), ids);
    // 300 jobs finishing at once: far fewer round trips than events.
    assert!(writer.writes() < 150, "{} round trips", writer.writes());
    // One at a time, each is written at once.
    let before = writer.writes();
    writer.publish(event(1000)).await.unwrap();
    assert_eq!(writer.writes(), before + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_write_fails_its_jobs_and_the_writer_goes_on() {
    let server = RedisServer::start();
    let (fleet, writer) = writer_on(&server).await;
    writer.publish(event(0)).await.unwrap();
    server.kill();
    let failed = tokio::time::timeout(Duration::from_secs(30), writer.publish(event(1)))
        .await
        .expect("a publish to a dead Redis hung");
    let error = failed.unwrap_err().to_string();
    assert!(error.starts_with("completion events: "), "{error}");
    server.restart();
    // The connection comes back by itself; the writer was never stopped.
    let last = event(2);
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        match writer.publish(last.clone()).await {
            Ok(()) => break,
            Err(e) => assert!(std::time::Instant::now() < deadline, "{e}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let found: Vec<String> = fleet
        .events
        .latest(10)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, e)| e.job_id)
        .collect();
    assert!(found.contains(&last.job_id), "{found:?}");
}
