//! What the scenarios share beyond `opossum_testkit`: the `opossum` binary.

use std::path::PathBuf;

pub(crate) use opossum_testkit::corpus;

/// The `opossum` CLI binary.
pub(crate) fn binary() -> PathBuf {
    opossum_testkit::binary("opossum")
}
