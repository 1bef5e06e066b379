//! Images a chain names besides its own: the watermarks.
//!
//! A watermark is part of the variant's identity, so the pipeline pins each one's content
//! version (16 hex digits of its bytes' SHA-256) into the chain before it derives the key:
//! replace the watermark image and every variant that shows it gets a new key, with nothing to
//! invalidate. The bytes are loaded through [`Resources`] (the originals store, which
//! validates the id like any image id before any I/O) and kept in process for
//! [`PipelineConfig::resource_ttl`](crate::PipelineConfig), so a hot watermark costs one
//! load per process per TTL, not one per request; a replaced watermark shows within that TTL.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opossum_ops::Chain;
use sha2::{Digest, Sha256};

use crate::{ErrorKind, PipelineError};

/// Where the pipeline loads the images a chain names besides its own (watermarks).
pub trait Resources: Send + Sync {
    /// The bytes of image `id`.
    fn load<'a>(
        &'a self,
        id: &'a str,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<u8>, PipelineError>> + Send + 'a>>;
}

/// One loaded watermark: its bytes and their version.
#[derive(Clone)]
pub(crate) struct Loaded {
    pub(crate) id: Arc<str>,
    pub(crate) bytes: Arc<Vec<u8>>,
    version: Arc<str>,
}

/// The store and the in-process copies of what it returned.
pub(crate) struct ResourceCache {
    source: Arc<dyn Resources>,
    ttl: Duration,
    entries: Mutex<HashMap<Arc<str>, (Instant, Loaded)>>,
}

impl ResourceCache {
    pub(crate) fn new(source: Arc<dyn Resources>, ttl: Duration) -> ResourceCache {
        ResourceCache {
            source,
            ttl,
            entries: Mutex::new(HashMap::new()),
        }
    }

    async fn get(&self, id: &Arc<str>) -> Result<Loaded, PipelineError> {
        if let Some((at, loaded)) = self.entries.lock().expect("resource cache").get(id)
            && at.elapsed() < self.ttl
        {
            return Ok(loaded.clone());
        }
        let bytes = self
            .source
            .load(id)
            .await
            .map_err(|e| e.context(format_args!("watermark `{id}`")))?;
        let digest = Sha256::digest(&bytes);
        let version: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        let loaded = Loaded {
            id: id.clone(),
            bytes: Arc::new(bytes),
            version: version.into(),
        };
        let mut entries = self.entries.lock().expect("resource cache");
        // Bounded by the watermarks in use; expired ones go when the map grows.
        if entries.len() >= 256 {
            let ttl = self.ttl;
            entries.retain(|_, (at, _)| at.elapsed() < ttl);
        }
        entries.insert(id.clone(), (Instant::now(), loaded.clone()));
        Ok(loaded)
    }
}

/// The chain with every watermark's version pinned, and the watermarks' bytes. A chain
/// without watermarks comes back as it is, with nothing loaded.
pub(crate) async fn pin(
    cache: Option<&ResourceCache>,
    chain: &Chain,
) -> Result<(Option<Chain>, Vec<Loaded>), PipelineError> {
    let mut loaded: Vec<Loaded> = Vec::new();
    for watermark in chain.watermarks() {
        if loaded.iter().any(|l| l.id == watermark.image) {
            continue;
        }
        let Some(cache) = cache else {
            return Err(PipelineError::new(
                ErrorKind::BadRequest,
                format!(
                    "watermark `{}`: this process has no originals store to load it from",
                    watermark.image
                ),
            ));
        };
        loaded.push(cache.get(&watermark.image).await?);
    }
    if loaded.is_empty() {
        return Ok((None, loaded));
    }
    let pinned = chain.with_watermark_versions(|id| {
        loaded
            .iter()
            .find(|l| &*l.id == id)
            .map(|l| l.version.clone())
    });
    Ok((Some(pinned), loaded))
}

/// For a caller without a pipeline (`opossum process --no-cache`, `opossum key`): the chain
/// with its watermarks' versions pinned, as the pipeline keys it, and the watermarks decoded.
pub async fn load_watermarks(
    source: Arc<dyn Resources>,
    chain: &Chain,
    limits: &opossum_image::Limits,
) -> Result<(Chain, opossum_image::Overlays), PipelineError> {
    let cache = ResourceCache::new(source, Duration::ZERO);
    let (pinned, loaded) = pin(Some(&cache), chain).await?;
    let mut overlays = opossum_image::Overlays::none();
    for watermark in loaded {
        overlays
            .decode(watermark.id, &watermark.bytes, limits)
            .map_err(PipelineError::from_image)?;
    }
    Ok((pinned.unwrap_or_else(|| chain.clone()), overlays))
}
