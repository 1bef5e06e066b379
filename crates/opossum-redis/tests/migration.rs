//! Single commands and pipelines from many tasks on one shared cluster connection, while the
//! slot their keys hash to moves to another primary.
//!
//! The redis crate follows `ASK` by sending `ASKING` as a request of its own and the command
//! after it; on a connection that other tasks share, another task's command can come between
//! the two and use up the one-time `ASKING`, and after its retries the command fails with
//! `ASK`. These tests put many tasks on one connection, as the fleet's tier and leases do.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opossum_redis::{Connection, Redis, Settings};
use opossum_testkit::RedisCluster;

const TAG: &str = "{migrating}";

async fn connect(cluster: &RedisCluster) -> Connection {
    Redis::open(&cluster.url())
        .unwrap()
        .connect(&Settings::default())
        .await
        .unwrap()
}

/// Runs `tasks` tasks, each writing new keys (`SET NX PX`, as a lease does) and reading keys
/// written before and during the move, until the move is done; returns the failures.
async fn commands_during_a_move(
    cluster: Arc<RedisCluster>,
    connection: Connection,
    tasks: usize,
    pipelined: bool,
) -> (usize, Vec<String>) {
    let slot = opossum_redis::slot(TAG.as_bytes());
    {
        let mut connection = connection.clone();
        for at in 0..200 {
            let _: () = redis::cmd("SET")
                .arg(format!("{TAG}:before:{at}"))
                .arg("v")
                .query_async(&mut connection)
                .await
                .unwrap();
        }
    }
    let from = cluster.owner_of_slot(slot);
    let to = *cluster.primaries().iter().find(|&&p| p != from).unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let mover = {
        let (cluster, done) = (cluster.clone(), done.clone());
        std::thread::spawn(move || {
            cluster.move_slot(slot, to, 2, Duration::from_millis(20));
            done.store(true, Ordering::SeqCst);
        })
    };
    let runs = (0..tasks).map(|task| {
        let mut connection = connection.clone();
        let done = done.clone();
        tokio::spawn(async move {
            let mut failures = Vec::new();
            let mut round = 0usize;
            while !done.load(Ordering::SeqCst) {
                let new = format!("{TAG}:during:{task}:{round}");
                let old = format!("{TAG}:before:{}", (task * 7 + round) % 200);
                let result: redis::RedisResult<(Option<String>, Option<String>)> = if pipelined {
                    // A plain `SET`: a pipeline may run a command twice during a move (the
                    // redis crate's redirect of the whole pipeline, then each command here), so
                    // pipelines carry only reads and idempotent writes.
                    redis::pipe()
                        .cmd("SET")
                        .arg(&new)
                        .arg("v")
                        .cmd("GET")
                        .arg(&old)
                        .query_async(&mut connection)
                        .await
                } else {
                    let set: redis::RedisResult<Option<String>> = redis::cmd("SET")
                        .arg(&new)
                        .arg("v")
                        .arg("NX")
                        .arg("PX")
                        .arg(600_000)
                        .query_async(&mut connection)
                        .await;
                    match set {
                        Ok(set) => redis::cmd("GET")
                            .arg(&old)
                            .query_async(&mut connection)
                            .await
                            .map(|got| (set, got)),
                        Err(e) => Err(e),
                    }
                };
                match result {
                    Ok((Some(_), Some(_))) => {}
                    Ok((set, got)) => failures.push(format!("{new}: {set:?}, {old}: {got:?}")),
                    Err(e) => failures.push(format!("{new}: {e}")),
                }
                round += 1;
            }
            (round, failures)
        })
    });
    let mut rounds = 0;
    let mut failures = Vec::new();
    for run in futures::future::join_all(runs).await {
        let (done, failed) = run.unwrap();
        rounds += done;
        failures.extend(failed);
    }
    mover.join().unwrap();
    assert_eq!(cluster.owner_of_slot(slot), to);
    (rounds, failures)
}

async fn every_written_key_is_there(connection: &mut Connection, rounds: usize) {
    let keys = connection.scan_match(&format!("{TAG}:*")).await.unwrap();
    assert_eq!(keys.len(), 200 + rounds, "keys lost or doubled by the move");
}

/// Every round of every task succeeds and every key written is there after the move.
async fn commands_follow_a_move(pipelined: bool) {
    let cluster = Arc::new(RedisCluster::start(3, 0));
    let mut connection = connect(&cluster).await;
    let (rounds, failures) =
        commands_during_a_move(cluster.clone(), connection.clone(), 16, pipelined).await;
    assert!(rounds > 100, "only {rounds} rounds ran during the move");
    assert!(
        failures.is_empty(),
        "{} of {rounds} rounds failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(3)]
    );
    every_written_key_is_there(&mut connection, rounds).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn single_commands_from_many_tasks_follow_a_slot_move() {
    commands_follow_a_move(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "fails in some runs (issue 15): 1-2 rounds in 23,000-39,000 answered MOVED after the redis crate's retries (2 of 6 runs on 2026-12-04, with move_slot setting the destination first); run with --ignored"]
async fn pipelines_from_many_tasks_follow_a_slot_move() {
    commands_follow_a_move(true).await;
}
