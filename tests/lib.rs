//! The end-to-end scenarios live in `e2e/` (one test binary, `cargo test -p opossum-tests`
//! after the workspace is built); this library is empty, as a package needs a target of its
//! own. The harness they share is `opossum-testkit`.
