//! Invalidation across the fleet: `opossum cache invalidate` announces an image on a pub/sub
//! channel, and every long-running process drops it from its own memory and disk tiers.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

/// The pub/sub channel on which `opossum cache invalidate` announces an invalidated image
/// (the message is the image's key prefix), so long-running processes clear their own memory
/// and disk tiers too.
pub fn invalidation_channel(prefix: &str) -> String {
    format!("{prefix}:invalidate")
}

/// Announces that `image_prefix` was invalidated; returns how many processes listened.
pub async fn announce_invalidation(
    connection: &mut opossum_redis::Connection,
    prefix: &str,
    image_prefix: &str,
) -> Result<u64, crate::FleetError> {
    Ok(redis::cmd("PUBLISH")
        .arg(invalidation_channel(prefix))
        .arg(image_prefix)
        .query_async(connection)
        .await?)
}

pub(crate) async fn follow_invalidations(
    client: opossum_redis::Redis,
    channel: String,
    hierarchy: Arc<opossum_cache::Hierarchy>,
) {
    loop {
        let followed = async {
            let mut messages = client.subscribe(&channel).await?;
            while let Some(payload) = messages.next().await {
                let Ok(image_prefix) = String::from_utf8(payload) else {
                    continue;
                };
                let removed: u64 = hierarchy
                    .invalidate_image_locally(&image_prefix)
                    .await
                    .iter()
                    .filter_map(|(_, r)| r.as_ref().ok())
                    .sum();
                tracing::info!(%image_prefix, removed, "invalidated on request");
            }
            Ok::<(), redis::RedisError>(())
        };
        if let Err(e) = followed.await {
            tracing::debug!(error = %e, "invalidation subscription lost; resubscribing");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
