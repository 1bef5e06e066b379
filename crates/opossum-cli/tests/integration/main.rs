//! Integration tests of the `opossum` binary: one test binary (per the house style), driving the
//! real executable as a user would. The corpus walk has a binary of its own
//! (`tests/corpus_walk.rs`): its memory check reads the peak of this process's children.

mod cli;
mod support;
