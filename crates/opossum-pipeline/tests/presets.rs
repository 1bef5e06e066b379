//! Presets through a real Redis: a process publishes the versions in its configuration, and a
//! process with an older configuration resolves a newer exact version from the shared tier.

use std::sync::Arc;

use opossum_cache::{Hierarchy, MemoryConfig, MemoryTier, RedisConfig, RedisTier, Tier};
use opossum_ops::{Chain, Presets};
use opossum_pipeline::PresetStore;
use opossum_testkit::{RedisServer, unique_namespace};

fn presets(yaml_like: serde_json::Value) -> Presets {
    Presets::from_config(&yaml_like).unwrap()
}

/// A process's view: its own memory tier and the shared Redis.
fn hierarchy(redis: &RedisServer) -> Arc<Hierarchy> {
    let tiers: Vec<Arc<dyn Tier>> = vec![
        Arc::new(MemoryTier::new(MemoryConfig::default())),
        Arc::new(RedisTier::new(&RedisConfig::new(redis.url())).unwrap()),
    ];
    Arc::new(Hierarchy::new(tiers, None))
}

#[tokio::test]
async fn a_newer_version_published_by_one_process_resolves_in_another() {
    let redis = RedisServer::start();
    let namespace = unique_namespace("presets");
    let new = PresetStore::new(
        presets(serde_json::json!({
            "avatar": {"version": 3, "ops": "thumbnail:96,format:png", "family": "avatar"},
        })),
        hierarchy(&redis),
        &namespace,
        "1",
    );
    let old = PresetStore::new(
        presets(serde_json::json!({
            "avatar": {"version": 2, "ops": "thumbnail:128,format:webp", "family": "avatar"},
        })),
        hierarchy(&redis),
        &namespace,
        "1",
    );

    // Before anyone published version 3, the old process does not know it: a bad input.
    let err = old.resolve("preset:avatar:3").await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "operation 1: unknown preset `preset:avatar:3`"
    );

    // The new process resolves its own preset and, doing so, publishes it.
    let chain = new.resolve("preset:avatar").await.unwrap();
    assert_eq!(chain, Chain::parse("thumbnail:96,format:png").unwrap());

    // Now the old process finds version 3 in Redis; its own `preset:avatar` is still version 2.
    let fetched = old.resolve("grayscale,preset:avatar:3").await.unwrap();
    assert_eq!(fetched.to_string(), "grayscale,thumbnail:96,format:png");
    let own = old.resolve("preset:avatar").await.unwrap();
    assert_eq!(own.to_string(), "thumbnail:128,format:webp");

    // A version read once is remembered: it still resolves with Redis gone.
    drop(redis);
    let again = old.resolve("preset:avatar:3").await.unwrap();
    assert_eq!(again, chain);
}

#[tokio::test]
async fn published_presets_are_resource_entries_and_invalidate_by_name() {
    let redis = RedisServer::start();
    let namespace = unique_namespace("presets");
    let shared = hierarchy(&redis);
    let store = PresetStore::new(
        presets(serde_json::json!({"mono": {"version": 1, "ops": "grayscale"}})),
        shared.clone(),
        &namespace,
        "1",
    );
    assert_eq!(store.publish().await, 1);
    let key = store.key("mono", 1);
    let hit = shared
        .get(&key, opossum_ops::Category::Resource)
        .await
        .expect("the published preset is cached");
    assert_eq!(hit.entry.category, opossum_ops::Category::Resource);
    let ttl_hours = hit.entry.ttl_ms / 3_600_000;
    assert!((24..=48).contains(&ttl_hours), "resource TTL {ttl_hours} h");
    assert_eq!(
        store.fetch("mono", 1).await.unwrap().ops.to_string(),
        "grayscale"
    );

    // `opossum cache invalidate preset:mono` drops every version of it.
    let prefix = opossum_ops::image_prefix(&namespace, "preset:mono");
    shared.invalidate_image(&prefix).await;
    assert!(store.fetch("mono", 1).await.is_none());
}
