//! Integration tests of the `opossum` binary: one test binary (per the house style), driving the
//! real executable as a user would.

mod cli;
mod corpus;
mod ops;
mod serve;
mod support;
