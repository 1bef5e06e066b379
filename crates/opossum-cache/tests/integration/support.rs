use std::sync::Arc;
use std::time::Duration;

use opossum_cache::{
    DiskConfig, DiskTier, Entry, MemoryConfig, MemoryTier, RedisConfig, RedisTier,
};
use opossum_ops::Category;
use opossum_testkit::TempDir;

pub(crate) fn entry(body: &[u8], ttl: Duration) -> Arc<Entry> {
    Arc::new(Entry::new(
        body.to_vec(),
        "image/png",
        Category::Result,
        ttl,
        5,
        (3, 2),
    ))
}

pub(crate) fn memory() -> MemoryTier {
    MemoryTier::new(MemoryConfig::default())
}

pub(crate) fn disk_config(dir: &TempDir) -> DiskConfig {
    DiskConfig {
        path: dir.join("rocksdb"),
        max_bytes: 64 << 20,
        cleanup_interval: Duration::from_secs(3600),
        memory_bytes: DiskConfig::DEFAULT_MEMORY_BYTES,
    }
}

pub(crate) fn disk(dir: &TempDir) -> DiskTier {
    DiskTier::open(disk_config(dir)).expect("open rocksdb")
}

pub(crate) fn redis(url: &str) -> RedisTier {
    RedisTier::new(&RedisConfig::new(url)).expect("redis tier")
}
