//! The corpus walk in a test binary of its own: its peak-memory check reads the largest
//! resident set among this process's children (`RUSAGE_CHILDREN`), so no other test's
//! children (servers, Chromium) may share the process.

#[allow(dead_code)] // the harness is shared with the main integration binary
#[path = "integration/support.rs"]
mod support;

#[path = "integration/corpus.rs"]
mod corpus;
