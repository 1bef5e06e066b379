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

use opossum_cache::{Entry, Hierarchy};
use opossum_ops::{Category, Chain, Options, derive_key};
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

/// Media type of a cached watermark's bytes (whatever image format they are).
const RESOURCE_MEDIA_TYPE: &str = "application/octet-stream";

/// The hierarchy a pipeline shares with the fleet, and its key space.
pub(crate) struct SharedTier {
    pub(crate) hierarchy: Arc<Hierarchy>,
    pub(crate) namespace: String,
    pub(crate) version: String,
}

impl SharedTier {
    fn key(&self, id: &str) -> String {
        let mut options = Options::new();
        let _ = options.insert("resource", "watermark");
        derive_key(
            &self.namespace,
            &self.version,
            id,
            &Chain::default(),
            &options,
            // Not an encoded variant: no encoding setting reaches it.
            &opossum_ops::EncodingDefaults::default(),
        )
        .to_string()
    }
}

/// The store, the shared copies in the hierarchy, and the in-process copies.
pub(crate) struct ResourceCache {
    source: Arc<dyn Resources>,
    ttl: Duration,
    shared: Option<SharedTier>,
    entries: Mutex<HashMap<Arc<str>, (Instant, Loaded)>>,
}

impl ResourceCache {
    pub(crate) fn new(
        source: Arc<dyn Resources>,
        ttl: Duration,
        shared: Option<SharedTier>,
    ) -> ResourceCache {
        ResourceCache {
            source,
            ttl,
            shared,
            entries: Mutex::new(HashMap::new()),
        }
    }

    async fn get(&self, id: &Arc<str>) -> Result<Loaded, PipelineError> {
        if let Some((at, loaded)) = self.entries.lock().expect("resource cache").get(id)
            && at.elapsed() < self.ttl
        {
            return Ok(loaded.clone());
        }
        let cached = match &self.shared {
            // Not a user's lookup: uncounted, like the pipeline's own re-checks.
            Some(shared) => shared.hierarchy.get_uncounted(&shared.key(id)).await,
            None => None,
        };
        let bytes = match cached {
            Some(hit) => hit.entry.body.to_vec(),
            None => {
                let bytes = self
                    .source
                    .load(id)
                    .await
                    .map_err(|e| e.context(format_args!("watermark `{id}`")))?;
                if let Some(shared) = &self.shared
                    && !self.ttl.is_zero()
                {
                    let entry = Entry::new(
                        bytes.clone(),
                        RESOURCE_MEDIA_TYPE,
                        Category::Resource,
                        self.ttl,
                        0,
                        (0, 0),
                    );
                    shared.hierarchy.put(&shared.key(id), Arc::new(entry)).await;
                }
                bytes
            }
        };
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
    let cache = ResourceCache::new(source, Duration::ZERO, None);
    let (pinned, loaded) = pin(Some(&cache), chain).await?;
    let mut overlays = opossum_image::Overlays::none();
    for watermark in loaded {
        overlays
            .decode(watermark.id, &watermark.bytes, limits)
            .map_err(PipelineError::from_image)?;
    }
    Ok((pinned.unwrap_or_else(|| chain.clone()), overlays))
}
