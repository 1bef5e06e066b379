//! Single commands and pipelines from many tasks on one shared cluster connection, while the
//! slot their keys hash to moves to another primary.
//!
//! The redis crate follows `ASK` by sending `ASKING` as a request of its own and the command
//! after it; on a connection that other tasks share, another task's command can come between
//! the two and use up the one-time `ASKING`, and after its retries the command fails with
//! `ASK`. At the end of the move the nodes learn the new owner one by one, and until the last
//! has, a command goes back and forth between them as `MOVED`, which uses up the crate's
//! retries in a moment. These tests put many tasks on one connection, as the fleet's tier and
//! leases do, and count a round that fails for either reason.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use opossum_redis::{Connection, Redis, Settings};
use opossum_testkit::{Announce, RedisCluster};

const TAG: &str = "{migrating}";

async fn connect(cluster: &RedisCluster) -> Connection {
    Redis::open(&cluster.url())
        .unwrap()
        .connect(&Settings::default())
        .await
        .unwrap()
}

/// What the tasks send: single commands, pipelines, or both (every other task).
#[derive(Clone, Copy)]
enum Traffic {
    Single,
    Pipelined,
    Both,
}

impl Traffic {
    fn pipelined(self, task: usize) -> bool {
        match self {
            Traffic::Single => false,
            Traffic::Pipelined => true,
            Traffic::Both => task % 2 == 1,
        }
    }
}

/// Runs `tasks` tasks, each writing new keys (`SET NX PX`, as a lease does) and reading keys
/// written before and during the move, until the move is done; returns the failures.
async fn commands_during_a_move(
    cluster: Arc<RedisCluster>,
    connection: Connection,
    tasks: usize,
    traffic: Traffic,
    announce: Announce,
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
            cluster.move_slot_announced(slot, to, 2, Duration::from_millis(20), announce);
            done.store(true, Ordering::SeqCst);
        })
    };
    let runs = (0..tasks).map(|task| {
        let mut connection = connection.clone();
        let done = done.clone();
        let pipelined = traffic.pipelined(task);
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
async fn commands_follow_a_move(traffic: Traffic, announce: Announce) {
    let cluster = Arc::new(RedisCluster::start(3, 0));
    let mut connection = connect(&cluster).await;
    let (rounds, failures) =
        commands_during_a_move(cluster.clone(), connection.clone(), 16, traffic, announce).await;
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
    commands_follow_a_move(Traffic::Single, Announce::InPortOrder).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelines_from_many_tasks_follow_a_slot_move() {
    commands_follow_a_move(Traffic::Pipelined, Announce::InPortOrder).await;
}

/// The source learns the new owner half a second before the others: every command sent in that
/// time goes back and forth as `MOVED` (the redis crate's retries, which do not wait, are used
/// up in a moment) and must wait for the nodes to agree instead of failing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commands_wait_while_the_nodes_disagree_on_the_owner() {
    commands_follow_a_move(
        Traffic::Both,
        Announce::SourceFirst(Duration::from_millis(500)),
    )
    .await;
}
