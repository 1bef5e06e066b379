//! What the scenarios share beyond `opossum_testkit`: the `opossum` binary, and running it in
//! embedded mode over a data directory of the test's own.

use std::path::PathBuf;

pub(crate) use opossum_testkit::corpus;

/// The `opossum` CLI binary.
pub(crate) fn binary() -> PathBuf {
    opossum_testkit::binary("opossum")
}

/// `opossum ARGS` in embedded mode with its data in `data`; fails the test unless it succeeds.
pub(crate) fn opossum_in(data: &opossum_testkit::TempDir, args: &[&str]) -> std::process::Output {
    let out = run_in(data, args);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `opossum ARGS` in embedded mode that must fail: its stderr.
pub(crate) fn opossum_fails_in(data: &opossum_testkit::TempDir, args: &[&str]) -> String {
    let out = run_in(data, args);
    assert!(!out.status.success(), "{args:?} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `opossum ARGS` in embedded mode, however it ends.
pub(crate) fn run_in(data: &opossum_testkit::TempDir, args: &[&str]) -> std::process::Output {
    std::process::Command::new(binary())
        .args(args)
        .env("OPOSSUM_DATA_DIR", data.path())
        .env_remove("OPOSSUM_REDIS_URL")
        .output()
        .unwrap()
}
