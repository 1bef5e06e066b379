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

/// `opossum submit IMAGE` of `ops` from the originals in `store`, then `opossum process` of the
/// same variant into `out`, in embedded mode over `data`: the completion event and the
/// process report. The process must answer from the cache with the submitted job's key.
pub(crate) fn submit_then_process(
    data: &opossum_testkit::TempDir,
    store: &str,
    image: &str,
    ops: &str,
    out: &std::path::Path,
) -> (serde_json::Value, serde_json::Value) {
    let event = opossum_testkit::json_lines(&opossum_in(
        data,
        &["submit", image, "--originals", store, "--ops", ops],
    ))
    .remove(0);
    assert_eq!(event["status"], "ok", "{event}");
    let report = process_in(data, store, image, ops, out, &[]);
    assert_eq!(report["key"], event["key"]);
    assert_ne!(report["source"], "computed", "{report}");
    (event, report)
}

/// `opossum process IMAGE --originals STORE --ops OPS --out OUT --json EXTRA...` in embedded
/// mode over `data`: its report (the bytes are in `out`).
pub(crate) fn process_in(
    data: &opossum_testkit::TempDir,
    store: &str,
    image: &str,
    ops: &str,
    out: &std::path::Path,
    extra: &[&str],
) -> serde_json::Value {
    let out = out.to_str().unwrap();
    let mut args = process_args(image, store, ops, out, &["--json"]);
    args.extend(extra);
    opossum_testkit::json_lines(&opossum_in(data, &args)).remove(0)
}

/// The arguments of `opossum process IMAGE --originals STORE --ops OPS --out OUT`, then
/// `extra`.
pub(crate) fn process_args<'a>(
    image: &'a str,
    store: &'a str,
    ops: &'a str,
    out: &'a str,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut args = vec![
        "process",
        image,
        "--originals",
        store,
        "--ops",
        ops,
        "--out",
        out,
    ];
    args.extend_from_slice(extra);
    args
}
