//! The `opossum-scheduler` binary's own surface: what a user sees when it cannot start. (Its
//! strategies are tested end to end in the top-level `tests/` crate; this test also makes
//! `cargo test --workspace` build the binary those scenarios run.)

use std::process::Command;

fn scheduler(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_opossum-scheduler"))
        .args(args)
        .env_remove("OPOSSUM_REDIS_URL")
        .env_remove("OPOSSUM_CONFIG")
        .env_remove("OPOSSUM_QUEUES__REDIS_URL")
        .output()
        .expect("the scheduler binary runs")
}

#[test]
fn without_redis_it_says_so_and_a_bad_strategy_is_a_usage_error() {
    let no_redis = scheduler(&["run"]);
    let stderr = String::from_utf8_lossy(&no_redis.stderr);
    assert_eq!(no_redis.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.starts_with("error: the scheduler needs --redis URL"),
        "{stderr}"
    );

    let bad = scheduler(&["warm", "--once", "--strategy", "sideways"]);
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("sideways"), "{stderr}");
    assert!(stderr.contains("predictive"), "{stderr}");
}
