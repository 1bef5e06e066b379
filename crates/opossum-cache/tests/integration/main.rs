//! Integration tests of the cache: the shared conformance suite against every tier, tier
//! specifics, and the hierarchy under failure. Real RocksDB, real redis-server.

mod conformance;
mod hierarchy;
mod support;
