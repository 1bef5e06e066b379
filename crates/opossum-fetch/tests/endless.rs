//! An endless body costs no more memory than the byte limit: alone in its own test binary, so
//! the process's peak resident set is this test's.

mod support;

use opossum_fetch::{FetchError, FetchLimits, Fetcher, Guard, Hosts, Url};
use support::TestServer;

/// The peak resident set of this process so far, in bytes (`VmHWM`).
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/self/status");
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

#[tokio::test]
async fn an_endless_body_is_aborted_at_the_limit_with_bounded_memory() {
    let server = TestServer::start("127.0.0.1").await;
    let guard = Guard {
        hosts: Hosts::Any,
        ports: vec![server.addr.port()],
        allow_private: true,
        ..Guard::none_allowed()
    };
    let fetcher = Fetcher::new(guard, FetchLimits::default()).unwrap();
    let limit = 32 << 20;
    let before = peak_rss();
    let target = Url::parse(&server.url("/endless")).unwrap();
    for _ in 0..3 {
        let error = fetcher.fetch(&target, limit).await.unwrap_err();
        assert!(matches!(error, FetchError::TooLarge { .. }), "{error}");
    }
    let grown = peak_rss().saturating_sub(before);
    eprintln!(
        "three endless bodies cut at {} MiB: peak RSS grew by {:.1} MiB",
        limit >> 20,
        grown as f64 / (1 << 20) as f64
    );
    // The body buffer is at most the limit; a fetcher that doubled a Vec past it, or kept
    // reading, would show more.
    assert!(
        grown < limit + (24 << 20),
        "peak RSS grew by {} MiB for a {} MiB limit",
        grown >> 20,
        limit >> 20
    );
}
