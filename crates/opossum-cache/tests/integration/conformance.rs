//! The conformance suite: what every tier promises, checked against each implementation.

use std::time::Duration;

use opossum_cache::{Tier, TierKind};
use opossum_testkit::{RedisCluster, RedisServer, TempDir, unique_namespace};

use crate::support::{disk, entry, memory, redis};

/// Everything the `Tier` trait promises.
async fn conformance(tier: &dyn Tier) {
    let ns = unique_namespace(tier.kind().name());
    let key = format!("{ns}:{{aaaaaaaaaaaaaaaa}}:0001");
    let name = tier.kind().name();

    assert!(
        tier.get(&key).await.unwrap().is_none(),
        "{name}: empty tier returned something"
    );

    let value = entry(b"\x89PNG some bytes", Duration::from_secs(60));
    assert!(
        tier.put(&key, value.clone()).await.unwrap(),
        "{name}: refused a small entry"
    );
    assert_eq!(
        tier.get(&key).await.unwrap().as_deref(),
        Some(&*value),
        "{name}: read back"
    );

    // Idempotent writes.
    assert!(tier.put(&key, value.clone()).await.unwrap());
    assert_eq!(
        tier.get(&key).await.unwrap().as_deref(),
        Some(&*value),
        "{name}: second write"
    );

    // A megabyte of binary survives unchanged.
    let big: Vec<u8> = (0..1_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let big_key = format!("{ns}:{{aaaaaaaaaaaaaaaa}}:0002");
    assert!(
        tier.put(&big_key, entry(&big, Duration::from_secs(60)))
            .await
            .unwrap()
    );
    assert_eq!(
        tier.get(&big_key).await.unwrap().unwrap().body,
        big,
        "{name}: binary body"
    );

    // Expiries: the entry's own, within a second (Redis rounds through PTTL); none when absent.
    let absent = format!("{ns}:{{aaaaaaaaaaaaaaaa}}:0003");
    // Another image's key: on a cluster, in another slot (the read is split by slot).
    let elsewhere = format!("{ns}:{{cccccccccccccccc}}:0001");
    tier.put(&elsewhere, entry(b"c", Duration::from_secs(60)))
        .await
        .unwrap();
    let expiries = tier
        .expiries(&[key.clone(), absent, big_key.clone(), elsewhere])
        .await
        .unwrap();
    let expected = value.expires_at_ms();
    let got = expiries[0].unwrap_or_else(|| panic!("{name}: no expiry for a present key"));
    assert!(
        got.abs_diff(expected) <= 1000,
        "{name}: expiry {got} versus the entry's {expected}"
    );
    assert_eq!(expiries[1], None, "{name}: expiry of an absent key");
    assert!(expiries[2].is_some(), "{name}: expiry of the second key");
    assert!(
        expiries[3].is_some(),
        "{name}: expiry of another image's key"
    );

    tier.remove(&key).await.unwrap();
    assert!(
        tier.get(&key).await.unwrap().is_none(),
        "{name}: removed key still there"
    );

    // Expired entries are neither admitted nor served.
    let mut stale = (*entry(b"old", Duration::from_secs(60))).clone();
    stale.created_at_ms -= 61_000;
    assert!(
        !tier.put(&key, std::sync::Arc::new(stale)).await.unwrap(),
        "{name}: admitted an expired entry"
    );
    assert!(tier.get(&key).await.unwrap().is_none());
    let short = entry(b"short-lived", Duration::from_millis(1200));
    tier.put(&key, short).await.unwrap();
    assert!(
        tier.get(&key).await.unwrap().is_some(),
        "{name}: fresh short-lived entry"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        tier.get(&key).await.unwrap().is_none(),
        "{name}: served an entry past its TTL"
    );

    // Invalidation drops one image's entries and nothing else.
    let image_a = format!("{ns}:{{aaaaaaaaaaaaaaaa}}:");
    let image_b = format!("{ns}:{{bbbbbbbbbbbbbbbb}}:");
    for variant in ["01", "02", "03"] {
        tier.put(
            &format!("{image_a}{variant}"),
            entry(b"a", Duration::from_secs(60)),
        )
        .await
        .unwrap();
    }
    tier.put(
        &format!("{image_b}01"),
        entry(b"b", Duration::from_secs(60)),
    )
    .await
    .unwrap();
    let removed = tier.invalidate_image(&image_a).await.unwrap();
    assert!(removed >= 3, "{name}: invalidation reported {removed}");
    for variant in ["01", "02", "03"] {
        assert!(
            tier.get(&format!("{image_a}{variant}"))
                .await
                .unwrap()
                .is_none(),
            "{name}: {variant} survived"
        );
    }
    assert!(
        tier.get(&format!("{image_b}01")).await.unwrap().is_some(),
        "{name}: other image dropped"
    );

    let usage = tier.usage().await.unwrap();
    assert!(usage.items >= 1, "{name}: usage {usage:?}");
}

#[tokio::test]
async fn memory_tier_conforms() {
    conformance(&memory()).await;
}

#[tokio::test]
async fn disk_tier_conforms() {
    let dir = TempDir::new("disk-conformance");
    conformance(&disk(&dir)).await;
}

#[tokio::test]
async fn redis_tier_conforms() {
    let server = RedisServer::start();
    let tier = redis(&server.url());
    assert_eq!(tier.kind(), TierKind::Redis);
    conformance(&tier).await;
}

#[tokio::test]
async fn redis_tier_conforms_on_a_cluster() {
    let cluster = RedisCluster::start(3, 0);
    let tier = redis(&cluster.url());
    conformance(&tier).await;
    // Usage is read from every primary; the test's images landed on more than one.
    let nodes = tier.usage_per_node().await.unwrap();
    assert_eq!(nodes.len(), 3, "{nodes:?}");
    let total = tier.usage().await.unwrap();
    assert_eq!(
        total.items,
        nodes.iter().map(|(_, usage)| usage.items).sum::<u64>()
    );
    assert!(
        nodes.iter().filter(|(_, usage)| usage.items > 0).count() >= 2,
        "{nodes:?}"
    );
    // Per-node checks name the node; the policy is read from each.
    assert!(!tier.check_server(None, None).await.unwrap().is_empty());
}

/// Resharding: while an image's slot moves to another primary a key at a time, the tier's
/// writes of that image (a `MULTI` over the value, `:meta` and `:index`) still land, its reads
/// (a pipeline of `GET` and the metadata script) still answer, and every entry is readable
/// after the move.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_land_while_an_images_slot_moves() {
    let cluster = std::sync::Arc::new(RedisCluster::start(3, 0));
    let tier = redis(&cluster.url());
    let namespace = unique_namespace("moving");
    let key = |variant: usize| {
        let chain = opossum_ops::Chain::parse(&format!("resize:{}:0", variant + 1)).unwrap();
        opossum_ops::derive_key(
            &namespace,
            "1",
            "a.png",
            &chain,
            &Default::default(),
            &Default::default(),
        )
        .to_string()
    };
    for variant in 0..8 {
        assert!(
            tier.put(&key(variant), entry(b"before", Duration::from_secs(600)))
                .await
                .unwrap()
        );
    }
    let slot = opossum_redis::slot(opossum_ops::image_hash("a.png").as_bytes());
    let from = cluster.owner_of_slot(slot);
    let to = *cluster.primaries().iter().find(|&&p| p != from).unwrap();
    let mover = {
        let cluster = cluster.clone();
        std::thread::spawn(move || cluster.move_slot(slot, to, 1, Duration::from_millis(80)))
    };
    let mut written = 8;
    let mut failures = Vec::new();
    while !mover.is_finished() {
        match tier
            .put(&key(written), entry(b"during", Duration::from_secs(600)))
            .await
        {
            Ok(_) => {}
            Err(e) => failures.push(e.to_string()),
        }
        // A miss answers as a miss.
        match tier.get(&key(10_000 + written)).await {
            Ok(None) => {}
            Ok(Some(_)) => failures.push("a variant never written was found".to_string()),
            Err(e) => failures.push(e.to_string()),
        }
        // Reads of what was written before and during the move answer too.
        for variant in [written % 8, written / 2] {
            match tier.get(&key(variant)).await {
                Ok(Some(_)) => {}
                Ok(None) => failures.push(format!("variant {variant} not found during the move")),
                Err(e) => failures.push(e.to_string()),
            }
        }
        written += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    mover.join().unwrap();
    assert_eq!(cluster.owner_of_slot(slot), to);
    assert!(
        failures.is_empty(),
        "{} of {written} writes and reads failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(3)]
    );
    for variant in 0..written {
        assert!(
            tier.get(&key(variant)).await.unwrap().is_some(),
            "variant {variant} lost"
        );
    }
}
