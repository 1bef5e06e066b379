//! Tier specifics and the hierarchy.

use std::sync::Arc;
use std::time::Duration;

use opossum_cache::{DiskTier, Hierarchy, MemoryConfig, MemoryTier, Tier, TierKind};
use opossum_ops::Category;
use opossum_testkit::{RedisCluster, RedisServer, TempDir, unique_namespace};

use crate::support::{disk, disk_config, entry, memory, redis};

#[tokio::test]
async fn memory_tier_refuses_large_items_and_counts_evictions() {
    let tier = MemoryTier::new(MemoryConfig {
        max_bytes: 200_000,
        max_item_bytes: 50_000,
        ..MemoryConfig::default()
    });
    assert!(
        !tier
            .put("n:i:big", entry(&[0; 60_000], Duration::from_secs(60)))
            .await
            .unwrap()
    );
    for i in 0..40 {
        tier.put(
            &format!("n:i:{i}"),
            entry(&[1; 20_000], Duration::from_secs(60)),
        )
        .await
        .unwrap();
    }
    let usage = tier.usage().await.unwrap();
    assert!(usage.bytes <= 200_000, "{usage:?}");
    assert!(usage.evictions.unwrap() > 0, "{usage:?}");
}

#[tokio::test]
async fn disk_tier_never_serves_a_corrupt_value() {
    let dir = TempDir::new("disk-corrupt");
    let key = "n:{cccccccccccccccc}:01";
    {
        let tier = disk(&dir);
        tier.put(key, entry(b"precious pixels", Duration::from_secs(60)))
            .await
            .unwrap();
    }
    {
        // Flip one byte of the stored value behind the tier's back.
        let db = rocksdb::DB::open_default(dir.join("rocksdb")).unwrap();
        let mut value = db.get(key).unwrap().unwrap();
        let last = value.len() - 1;
        value[last] ^= 0x01;
        db.put(key, value).unwrap();
    }
    let tier = disk(&dir);
    assert!(
        tier.get(key).await.unwrap().is_none(),
        "corrupt value served"
    );
    assert_eq!(tier.usage().await.unwrap().corrupt, 1);
    assert!(tier.get(key).await.unwrap().is_none());
}

#[tokio::test]
async fn disk_tier_cleanup_deletes_expired_values() {
    let dir = TempDir::new("disk-cleanup");
    let tier = disk(&dir);
    tier.put(
        "n:{dddddddddddddddd}:01",
        entry(b"x", Duration::from_millis(300)),
    )
    .await
    .unwrap();
    tier.put(
        "n:{dddddddddddddddd}:02",
        entry(b"y", Duration::from_secs(60)),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(tier.cleanup().unwrap(), 1);
    assert!(tier.get("n:{dddddddddddddddd}:02").await.unwrap().is_some());
}

#[tokio::test]
async fn the_disk_tier_keeps_to_its_memory_budget() {
    let dir = TempDir::new("disk-memory");
    let budget = 8u64 << 20;
    // Room on disk for everything written: FIFO must not drop any of it.
    let tier = DiskTier::open(opossum_cache::DiskConfig {
        memory_bytes: budget,
        max_bytes: 1 << 30,
        ..disk_config(&dir)
    })
    .unwrap();
    // 64 MiB of distinct values, then every one read back: far more than the budget passes
    // through the memtables and the block cache.
    let value = vec![7u8; 64 << 10];
    for i in 0..1024 {
        tier.put(
            &format!("n:{{i{i}}}:v"),
            entry(&value, Duration::from_secs(600)),
        )
        .await
        .unwrap();
    }
    for i in 0..1024 {
        assert!(
            tier.get(&format!("n:{{i{i}}}:v")).await.unwrap().is_some(),
            "{i}"
        );
    }
    let used = tier.memory_usage().unwrap();
    // The memtables get half the budget (plus one arena block of slack); the cache, with the
    // memtables charged to it, the whole budget (plus its shards' rounding).
    assert!(used.memtables <= budget / 2 + (1 << 20), "{used:?}");
    assert!(used.block_cache <= budget + (1 << 20), "{used:?}");
    assert!(used.block_cache > 0, "{used:?}");
    // Index and filter blocks live in the cache, not beside it.
    assert!(used.table_readers < 1 << 20, "{used:?}");
    // The tier's usage reports that memory (what the metrics export), not its bytes on disk.
    let usage = tier.usage().await.unwrap();
    let memory = usage.memory.expect("the disk tier reports its memory");
    assert!(memory > 0 && memory <= budget + (2 << 20), "{usage:?}");
}

#[tokio::test]
async fn a_second_process_on_the_same_data_dir_gets_a_clear_error() {
    let dir = TempDir::new("disk-lock");
    let _first = disk(&dir);
    let err = DiskTier::open(disk_config(&dir))
        .err()
        .expect("second open must fail");
    assert!(
        err.to_string()
            .starts_with("disk tier unavailable: opening"),
        "{err}"
    );
}

#[tokio::test]
async fn redis_tier_writes_the_seed_metadata_with_ttls_everywhere() {
    let server = RedisServer::start();
    let tier = redis(&server.url());
    assert_eq!(
        tier.check_server(Some("allkeys-lfu"), None).await.unwrap(),
        "allkeys-lfu"
    );
    let ns = unique_namespace("meta");
    let key = format!("{ns}:{{eeeeeeeeeeeeeeee}}:01");
    tier.put(&key, entry(b"0123456789", Duration::from_secs(120)))
        .await
        .unwrap();
    tier.get(&key).await.unwrap().unwrap();
    tier.get(&key).await.unwrap().unwrap();

    let mut connection = tier.connection();
    let meta: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
        .arg(format!("{key}:meta"))
        .query_async(&mut connection)
        .await
        .unwrap();
    for field in [
        "created_at",
        "size_bytes",
        "ttl",
        "access_count",
        "last_access",
    ] {
        assert!(meta.contains_key(field), "missing {field} in {meta:?}");
    }
    assert_eq!(meta["access_count"], "2");
    assert_eq!(meta["ttl"], "120");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{ns}:*"))
        .query_async(&mut connection)
        .await
        .unwrap();
    assert_eq!(keys.len(), 3, "{keys:?}");
    for k in keys {
        let ttl: i64 = redis::cmd("PTTL")
            .arg(&k)
            .query_async(&mut connection)
            .await
            .unwrap();
        assert!(ttl > 0 && ttl <= 120_000, "{k} has TTL {ttl}");
    }
    // A read of a missing key creates nothing.
    assert!(
        tier.get(&format!("{ns}:{{eeeeeeeeeeeeeeee}}:02"))
            .await
            .unwrap()
            .is_none()
    );
    let exists: bool = redis::cmd("EXISTS")
        .arg(format!("{ns}:{{eeeeeeeeeeeeeeee}}:02:meta"))
        .query_async(&mut connection)
        .await
        .unwrap();
    assert!(!exists);
}

#[tokio::test]
async fn hits_back_fill_faster_tiers() {
    let server = RedisServer::start();
    let dir = TempDir::new("backfill");
    let memory: Arc<dyn Tier> = Arc::new(memory());
    let disk: Arc<dyn Tier> = Arc::new(disk(&dir));
    let redis_tier: Arc<dyn Tier> = Arc::new(redis(&server.url()));
    let hierarchy = Hierarchy::new(vec![redis_tier.clone(), disk.clone(), memory.clone()], None);
    assert_eq!(
        hierarchy.tiers(),
        vec![TierKind::Memory, TierKind::Disk, TierKind::Redis]
    );

    let key = format!("{}:{{ffffffffffffffff}}:01", unique_namespace("backfill"));
    let value = entry(b"shared by the fleet", Duration::from_secs(60));
    redis_tier.put(&key, value.clone()).await.unwrap();

    let hit = hierarchy.get(&key, Category::Result).await.unwrap();
    assert_eq!(hit.tier, TierKind::Redis);
    assert_eq!(*hit.entry, *value);
    assert!(
        memory.get(&key).await.unwrap().is_some(),
        "memory not back-filled"
    );
    assert!(
        disk.get(&key).await.unwrap().is_some(),
        "disk not back-filled"
    );
    assert_eq!(
        hierarchy.get(&key, Category::Result).await.unwrap().tier,
        TierKind::Memory
    );

    let stats = hierarchy.stats();
    assert_eq!(stats.tier_totals("redis").hits, 1);
    assert_eq!(stats.tier_totals("memory").hits, 1);
    assert_eq!(stats.tier_totals("memory").misses, 1);
}

#[tokio::test]
async fn a_dead_redis_degrades_service_instead_of_failing_it() {
    let server = RedisServer::start();
    degrades_and_recovers(&server.url(), || server.kill(), || server.restart()).await;
}

/// A cluster whose primary of the test's image dies with no replica to take over: the cluster
/// stops serving (`cluster_state:fail`, full coverage required), and the tier degrades exactly
/// as a dead single server does, then comes back when the node does.
#[tokio::test]
async fn a_cluster_primary_without_a_replica_down_degrades_service_too() {
    let cluster = RedisCluster::start(3, 0);
    // The test's keys all carry the tag `1111111111111111`.
    let owner = cluster.owner_of_slot(opossum_redis::slot(b"1111111111111111"));
    degrades_and_recovers(
        &cluster.url(),
        || cluster.kill(owner),
        || {
            cluster.restart(owner);
            cluster.wait_until_ok(Duration::from_secs(30));
        },
    )
    .await;
}

async fn degrades_and_recovers(url: &str, kill: impl FnOnce(), restart: impl FnOnce()) {
    let dir = TempDir::new("redis-down");
    let tiers: Vec<Arc<dyn Tier>> = vec![
        Arc::new(memory()),
        Arc::new(disk(&dir)),
        Arc::new(redis(url)),
    ];
    let hierarchy = Hierarchy::new(tiers, None);
    let ns = unique_namespace("down");

    let before = format!("{ns}:{{1111111111111111}}:01");
    assert_eq!(
        hierarchy
            .put(&before, entry(b"before", Duration::from_secs(60)))
            .await,
        3
    );

    kill();
    // Writes and reads keep working from the local tiers; the failure is counted, not raised.
    let during = format!("{ns}:{{1111111111111111}}:02");
    assert_eq!(
        hierarchy
            .put(&during, entry(b"during", Duration::from_secs(60)))
            .await,
        2
    );
    assert_eq!(
        hierarchy.get(&during, Category::Result).await.unwrap().tier,
        TierKind::Memory
    );
    assert_eq!(
        hierarchy.get(&before, Category::Result).await.unwrap().tier,
        TierKind::Memory
    );
    assert!(
        hierarchy
            .get(&format!("{ns}:{{1111111111111111}}:03"), Category::Result)
            .await
            .is_none()
    );
    let stats = hierarchy.stats();
    assert!(stats.tiers["redis"].errors >= 1, "{stats:?}");

    // Once Redis is back and the backoff has passed, it is used again.
    restart();
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let after = format!("{ns}:{{1111111111111111}}:04");
    let mut admitted = 0;
    for _ in 0..20 {
        admitted = hierarchy
            .put(&after, entry(b"after", Duration::from_secs(60)))
            .await;
        if admitted == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(admitted, 3, "redis not used again after restart");
}

#[tokio::test]
async fn tier_ttl_caps_shorten_long_entries_only() {
    // caching.memory_cache.ttl: an entry of a day lives at most the cap in memory.
    let tier = MemoryTier::new(MemoryConfig {
        max_ttl: Some(Duration::from_millis(300)),
        ..MemoryConfig::default()
    });
    tier.put("n:i:long", entry(b"long", Duration::from_secs(86_400)))
        .await
        .unwrap();
    assert!(tier.get("n:i:long").await.unwrap().is_some());
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(
        tier.get("n:i:long").await.unwrap().is_none(),
        "the memory cap did not expire the entry"
    );

    // caching.redis_cache.ttl: the key's PTTL is the cap, not the entry's day; a short entry
    // keeps its own TTL.
    let server = RedisServer::start();
    let capped = opossum_cache::RedisTier::new(&opossum_cache::RedisConfig {
        max_ttl: Some(Duration::from_secs(60)),
        ..opossum_cache::RedisConfig::new(server.url())
    })
    .unwrap();
    let ns = unique_namespace("cap");
    let long = format!("{ns}:{{aaaaaaaaaaaaaaaa}}:01");
    let short = format!("{ns}:{{aaaaaaaaaaaaaaaa}}:02");
    capped
        .put(&long, entry(b"long", Duration::from_secs(86_400)))
        .await
        .unwrap();
    capped
        .put(&short, entry(b"short", Duration::from_secs(20)))
        .await
        .unwrap();
    let expiries = capped.expiries(&[long, short]).await.unwrap();
    let now = opossum_cache::unix_millis();
    let remaining: Vec<u64> = expiries
        .iter()
        .map(|e| e.expect("both keys expire").saturating_sub(now))
        .collect();
    assert!(
        remaining[0] <= 60_000 && remaining[0] > 55_000,
        "{remaining:?}"
    );
    assert!(remaining[1] <= 20_000, "{remaining:?}");
}
