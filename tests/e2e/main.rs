//! End-to-end scenarios across real processes, in one test binary: the worker fleet on a real
//! redis-server (`fleet.rs`), the queue commands of the CLI against it (`queue_cli.rs`), the
//! scheduler's warming strategies (`warming.rs`), the HTTP origin in embedded and fleet mode
//! behind a real Varnish (`origin.rs`), gravity, the canvas steps and animations through every
//! entry point (`gravity.rs`, `canvas.rs`, `animation.rs`), the newer input formats, encoder
//! options and `max-bytes` (`formats.rs`), originals over HTTP and URL ids (`sources.rs`),
//! and operations: metrics, OTLP, configuration and
//! deploy/ validated offline (`operations.rs`).
//!
//! The binaries come from the workspace's target directory (`opossum_testkit::binary`):
//! `cargo test --workspace` builds them before it runs this.

mod animation;
mod canvas;
mod cloud;
mod fleet;
mod formats;
mod gravity;
mod operations;
mod origin;
mod queue_cli;
mod sources;
mod support;
mod warming;
