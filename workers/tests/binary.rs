//! The `opossum-worker` binary's own surface: what a user sees when it cannot start. (Its
//! behaviour in a fleet is tested end to end in the top-level `tests/` crate; this test also
//! makes `cargo test --workspace` build the binary those scenarios run.)

use std::process::Command;

use opossum_testkit::TempDir;

fn worker(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_opossum-worker"))
        .args(args)
        .env_remove("OPOSSUM_REDIS_URL")
        .env_remove("OPOSSUM_CONFIG")
        .env_remove("OPOSSUM_QUEUES__REDIS_URL")
        .output()
        .expect("the worker binary runs")
}

#[test]
fn without_redis_or_with_a_bad_config_it_says_what_is_wrong_and_exits_1() {
    let no_redis = worker(&[]);
    let stderr = String::from_utf8_lossy(&no_redis.stderr);
    assert_eq!(no_redis.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("error: the worker needs --redis URL"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");

    let dir = TempDir::new("worker-config");
    let config = dir.join("bad.yaml");
    std::fs::write(&config, "worker:\n  concurrency: 0\n").unwrap();
    let bad = worker(&["--config", config.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("worker.concurrency: must be more than zero"),
        "{stderr}"
    );

    let unreachable = worker(&["--redis", "redis://127.0.0.1:1/"]);
    let stderr = String::from_utf8_lossy(&unreachable.stderr);
    assert_eq!(unreachable.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("connecting to redis://127.0.0.1:1/"),
        "{stderr}"
    );
}
