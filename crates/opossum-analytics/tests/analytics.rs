//! Analytics against a real redis-server started on a free port, and the same queries against
//! the in-memory store of embedded mode, which must answer alike.

use std::collections::BTreeMap;
use std::time::Duration;

use opossum_analytics::{
    Access, Analytics, AnalyticsConfig, Answer, MemoryStore, Recorder, Store, Variant,
};
use opossum_ops::Category;
use opossum_redis::{Connection, Redis, Settings};
use opossum_testkit::{RedisCluster, RedisServer, unique_namespace};

const HOUR_MS: u64 = 3_600_000;

async fn connect(url: &str) -> Connection {
    Redis::open(url)
        .unwrap()
        .connect(&Settings::default())
        .await
        .unwrap()
}

fn access(image: &str, chain: &str, answer: Answer, at_ms: u64) -> Access {
    let category = if chain.starts_with("thumbnail") {
        Category::Thumbnail
    } else {
        Category::Result
    };
    Access {
        variant: Variant {
            image_id: image.into(),
            chain: chain.into(),
            key: format!("ns:{image}:{chain}"),
            options: BTreeMap::new(),
        },
        category,
        answer,
        bytes: 100,
        duration_ms: 2.0,
        at_ms,
    }
}

fn config(prefix: &str) -> AnalyticsConfig {
    AnalyticsConfig {
        // the test flushes by hand
        flush_interval: Duration::from_secs(3600),
        ..AnalyticsConfig::new(prefix)
    }
}

#[tokio::test]
async fn records_and_answers_every_query() {
    let server = RedisServer::start();
    records_and_answers_every_query_on(&server.url()).await;
}

#[tokio::test]
async fn records_and_answers_every_query_on_a_cluster() {
    let cluster = RedisCluster::start(3, 0);
    records_and_answers_every_query_on(&cluster.url()).await;
}

async fn records_and_answers_every_query_on(url: &str) {
    let connection = connect(url).await;
    let prefix = unique_namespace("analytics");
    every_query(&prefix, connection.clone()).await;

    // Every key written has a TTL; nothing scratch is left behind.
    let mut c = connection.clone();
    let keys: Vec<String> = c
        .scan_match(&format!("{{{prefix}:stats}}:*"))
        .await
        .unwrap();
    assert_eq!(
        keys.len(),
        7,
        "two buckets of three keys, and the sample: {keys:?}"
    );
    for key in keys {
        assert!(!key.contains("scratch"), "{key}");
        let ttl: i64 = redis::cmd("TTL")
            .arg(&key)
            .query_async(&mut c)
            .await
            .unwrap();
        assert!(ttl > 72 * 3600 && ttl <= 73 * 3600, "{key}: {ttl}");
    }
}

#[tokio::test]
async fn the_memory_store_answers_every_query_alike() {
    every_query("embedded", MemoryStore::new()).await;
}

/// Records a fixed traffic and checks every query's answer, on either store.
async fn every_query(prefix: &str, store: impl Into<Store>) {
    let store = store.into();
    // A rate that samples two of the four keys below (their CRC-32s are 0.38, 0.44, 0.50
    // and 0.79 of the hash space), so the sample check tells kept from left.
    let config = AnalyticsConfig {
        sample_rate: 0.45,
        ..config(prefix)
    };
    let recorder = Recorder::start(config.clone(), store.clone());
    let now = 1_000 * HOUR_MS + 30 * 60_000;
    // Two hours ago: b is hot. This hour: a is hot.
    for _ in 0..10 {
        recorder.record(&access(
            "b",
            "thumbnail:200",
            Answer::Computed,
            now - 2 * HOUR_MS,
        ));
    }
    for i in 0..20 {
        let source = if i < 15 {
            Answer::Memory
        } else {
            Answer::Computed
        };
        recorder.record(&access("a", "thumbnail:200", source, now));
    }
    for _ in 0..5 {
        recorder.record(&access("a", "resize:800:600", Answer::Redis, now));
    }
    recorder.record(&access("c", "blur:2", Answer::Error, now));
    recorder.flush().await;
    assert_eq!(recorder.recorded(), 36);
    assert_eq!(recorder.dropped(), 0);

    let analytics = Analytics::new(config, store);
    let day = Duration::from_secs(24 * 3600);
    let images = analytics.top_images(now, day, 2).await.unwrap();
    assert_eq!(
        images,
        vec![("a".to_string(), 25.0), ("b".to_string(), 10.0)]
    );
    // A one-hour window no longer sees b.
    let images = analytics
        .top_images(now, Duration::from_secs(3600), 10)
        .await
        .unwrap();
    assert!(images.iter().all(|(i, _)| i != "b"), "{images:?}");

    let variants = analytics.top_variants(now, day, 10).await.unwrap();
    assert_eq!(variants[0].0.image_id, "a");
    assert_eq!(variants[0].0.chain, "thumbnail:200");
    assert_eq!(variants[0].1, 20.0);

    // With a one-hour half-life, b's 10 requests two hours ago weigh 2.5, below a's 5 resizes.
    let decayed = analytics
        .decayed_variants(now, day, Duration::from_secs(3600), 10)
        .await
        .unwrap();
    let score = |image: &str, chain: &str| {
        decayed
            .iter()
            .find(|(v, _)| v.image_id == image && v.chain == chain)
            .map(|(_, s)| *s)
            .unwrap()
    };
    assert!((score("b", "thumbnail:200") - 2.5).abs() < 1e-9);
    assert_eq!(score("a", "resize:800:600"), 5.0);

    let buckets = analytics.buckets(now, day).await.unwrap();
    assert_eq!(buckets.len(), 24);
    assert_eq!(buckets.last().unwrap().requests, 26);
    assert_eq!(buckets[buckets.len() - 3].requests, 10);
    assert_eq!(buckets.last().unwrap().sub[30], 26, "minute 30 of the hour");

    let report = analytics.report(now, day, 10, 5).await.unwrap();
    assert_eq!(report.requests, 36);
    assert_eq!(report.top_images[0].image_id, "a");
    assert_eq!(report.top_images[0].variants.len(), 2);
    let thumbs = &report.hit_rates.categories["thumbnail"];
    assert_eq!(thumbs.requests, 30);
    assert!((thumbs.hit_rate - 0.5).abs() < 1e-9, "{thumbs:?}");
    assert_eq!(report.hit_rates.categories["result"].errors, 1);
    let text = report.to_text();
    assert!(text.contains("thumbnail"), "{text}");

    // The SHARDS sample: exactly the requests whose key hashes into the sampled share.
    let rate = analytics.config().sample_rate;
    let mut expected: Vec<&str> = Vec::new();
    for (key, n) in [
        ("ns:b:thumbnail:200", 10),
        ("ns:a:thumbnail:200", 20),
        ("ns:a:resize:800:600", 5),
        ("ns:c:blur:2", 1),
    ] {
        if opossum_analytics::sampled(key, rate) {
            expected.extend(std::iter::repeat_n(key, n));
        }
    }
    let mut samples: Vec<String> = analytics
        .samples(0)
        .await
        .unwrap()
        .into_iter()
        .map(|(key, bytes)| {
            assert_eq!(bytes, 100);
            key
        })
        .collect();
    samples.sort();
    expected.sort();
    assert_eq!(
        expected.len(),
        11,
        "b's thumbnail and c's blur are in the sample"
    );
    assert_eq!(samples, expected);
}

#[tokio::test]
async fn the_memory_store_forgets_what_is_past_retention() {
    let store = MemoryStore::new();
    let config = AnalyticsConfig {
        retention: Duration::from_secs(2 * 3600),
        sample_rate: 1.0,
        ..config("retention")
    };
    let recorder = Recorder::start(config.clone(), store.clone());
    let then = 3_000 * HOUR_MS;
    recorder.record(&access("old", "thumbnail:200", Answer::Computed, then));
    recorder.flush().await;
    let analytics = Analytics::new(config, store);
    let hour = Duration::from_secs(3600);
    assert_eq!(analytics.buckets(then, hour).await.unwrap()[0].requests, 1);
    assert_eq!(analytics.samples(0).await.unwrap().len(), 1);
    // Within retention plus one bucket it stays; past it, it is gone.
    recorder.record(&access(
        "new",
        "thumbnail:200",
        Answer::Computed,
        then + 3 * HOUR_MS,
    ));
    recorder.flush().await;
    assert_eq!(analytics.buckets(then, hour).await.unwrap()[0].requests, 1);
    recorder.record(&access(
        "new",
        "thumbnail:200",
        Answer::Computed,
        then + 4 * HOUR_MS,
    ));
    recorder.flush().await;
    assert_eq!(analytics.buckets(then, hour).await.unwrap()[0].requests, 0);
    let samples = analytics.samples(0).await.unwrap();
    assert_eq!(samples.len(), 2, "{samples:?}");
    assert!(samples.iter().all(|(key, _)| key.contains("new")));
}

#[tokio::test]
async fn sorted_sets_stay_bounded_and_keep_the_head() {
    let server = RedisServer::start();
    let connection = connect(&server.url()).await;
    let prefix = unique_namespace("bounded");
    let config = AnalyticsConfig {
        top_images: 50,
        top_variants: 50,
        ..config(&prefix)
    };
    let recorder = Recorder::start(config.clone(), connection.clone());
    let now = 2_000 * HOUR_MS;
    // One heavy hitter with 1,000 requests, and 2,000 images seen once or twice, in rounds.
    for round in 0..20u64 {
        for _ in 0..50 {
            recorder.record(&access("hot", "thumbnail:200", Answer::Memory, now));
        }
        for i in 0..100 {
            let id = format!("cold-{}", round * 100 + i);
            recorder.record(&access(&id, "thumbnail:200", Answer::Computed, now));
        }
        recorder.flush().await;
    }
    let mut c = connection.clone();
    for what in ["images", "variants"] {
        let key = format!("{{{prefix}:stats}}:{}:{what}", now / 1000);
        let members: u64 = redis::cmd("ZCARD")
            .arg(&key)
            .query_async(&mut c)
            .await
            .unwrap();
        assert!(members <= 100, "{what}: {members} members, cap 2 x 50");
    }
    let analytics = Analytics::new(config, connection);
    let top = analytics
        .top_images(now, Duration::from_secs(3600), 1)
        .await
        .unwrap();
    assert_eq!(top, vec![("hot".to_string(), 1000.0)]);
}

#[tokio::test]
async fn a_dead_redis_drops_the_batch_and_the_recorder_carries_on() {
    let server = RedisServer::start();
    let connection = connect(&server.url()).await;
    let prefix = unique_namespace("dead");
    let recorder = Recorder::start(config(&prefix), connection);
    server.kill();
    recorder.record(&access("a", "thumbnail:200", Answer::Memory, 5 * HOUR_MS));
    tokio::time::timeout(Duration::from_secs(30), recorder.flush())
        .await
        .expect("a flush against a dead server returns");
    assert_eq!(recorder.dropped(), 1);
    assert_eq!(recorder.recorded(), 0);
    server.restart();
    recorder.record(&access("a", "thumbnail:200", Answer::Memory, 5 * HOUR_MS));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while recorder.recorded() == 0 {
        assert!(std::time::Instant::now() < deadline, "never recovered");
        recorder.record(&access("a", "thumbnail:200", Answer::Memory, 5 * HOUR_MS));
        recorder.flush().await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
