//! The source cache: originals fetched over HTTP(S), kept in the local disk tier.
//!
//! Every variant of a remote image starts from its original, so without this a page asking for
//! five sizes of one photo fetches it five times. An entry lives under
//! `{namespace}:{image-hash}:source`, beside the image's variants, so `opossum cache invalidate
//! ID` drops it with them. It holds the bytes, the origin's `ETag` and `Last-Modified`, and how
//! long it is fresh: the origin's `Cache-Control` max-age clamped to `sources.cache_min_ttl` ..
//! `cache_max_ttl` (`cache_default_ttl` without one; `no-store` is not kept). A fresh entry
//! answers without a request; an expired one is revalidated with `If-None-Match` /
//! `If-Modified-Since`, and a 304 renews it without a body. The entry itself stays on disk for
//! `cache_max_ttl` past its freshness, so there is something to revalidate.
//!
//! A 404 or 410 is remembered too, for 5 minutes (the error category's TTL), so a missing
//! image asked for in many variants is asked of its server once. Concurrent loads of one URL
//! in a process fetch it once (`SingleFlight`). The tier failing is logged and the fetch goes
//! ahead: the cache degrades service, it never fails it.

use std::sync::Arc;
use std::time::Duration;

use opossum_cache::{Entry, Tier, unix_millis};
use opossum_config::SourcesSettings;
use opossum_fetch::{FetchError, Fetcher, Freshness, Revalidated, Url, Validators};
use opossum_ops::{Category, image_prefix};
use opossum_pipeline::SingleFlight;

use crate::originals::OriginalsError;

/// The media type of a source cache entry (its body is a [`Record`], not an image).
const SOURCE_MEDIA_TYPE: &str = "application/x-opossum-source";

/// What an entry holds (written as [`RecordRef`], which borrows the body).
#[derive(serde::Deserialize)]
struct Record {
    /// Unix milliseconds until which the copy answers without asking the origin
    fresh_until_ms: u64,
    validators: Validators,
    /// the original, or `None` for a remembered 404/410 (with its status)
    #[serde(with = "serde_bytes")]
    body: Option<Vec<u8>>,
    missing_status: u16,
}

/// A [`Record`] to write, borrowing its body.
#[derive(serde::Serialize)]
struct RecordRef<'a> {
    fresh_until_ms: u64,
    validators: &'a Validators,
    #[serde(with = "serde_bytes")]
    body: Option<&'a [u8]>,
    missing_status: u16,
}

/// See the module documentation.
pub(crate) struct SourceCache {
    tier: Arc<dyn Tier>,
    namespace: String,
    min_ttl: Duration,
    max_ttl: Duration,
    default_ttl: Duration,
    flights: SingleFlight<Result<Arc<Vec<u8>>, OriginalsError>>,
}

impl SourceCache {
    pub(crate) fn new(
        tier: Arc<dyn Tier>,
        namespace: &str,
        sources: &SourcesSettings,
    ) -> SourceCache {
        SourceCache {
            tier,
            namespace: namespace.to_string(),
            min_ttl: sources.cache_min_ttl,
            max_ttl: sources.cache_max_ttl,
            default_ttl: sources.cache_default_ttl,
            flights: SingleFlight::default(),
        }
    }

    /// The key of `id`'s source entry.
    fn key(&self, id: &str) -> String {
        format!("{}source", image_prefix(&self.namespace, id))
    }

    /// The original `id` at `url`: the fresh local copy, else fetched (conditionally when an
    /// expired copy has validators) and kept.
    pub(crate) async fn load(
        &self,
        id: &str,
        url: &Url,
        fetcher: &Fetcher,
        limit: u64,
    ) -> Result<Vec<u8>, OriginalsError> {
        let key = self.key(id);
        let (result, _) = self
            .flights
            .run(&key, || self.load_once(&key, id, url, fetcher, limit))
            .await;
        // The last holder of the shared bytes takes them without a copy.
        result.map(|body| Arc::try_unwrap(body).unwrap_or_else(|shared| shared.as_ref().clone()))
    }

    async fn load_once(
        &self,
        key: &str,
        id: &str,
        url: &Url,
        fetcher: &Fetcher,
        limit: u64,
    ) -> Result<Arc<Vec<u8>>, OriginalsError> {
        let stored = self.read(key).await;
        let now = unix_millis();
        if let Some(record) = &stored
            && record.fresh_until_ms > now
        {
            return match &record.body {
                Some(body) if body.len() as u64 > limit => Err(OriginalsError::TooLarge {
                    id: id.to_string(),
                    size: body.len() as u64,
                    limit,
                }),
                Some(body) => Ok(Arc::new(body.clone())),
                None => Err(FetchError::NotFound {
                    url: url.to_string(),
                    status: record.missing_status,
                }
                .into()),
            };
        }
        // An expired copy with validators is revalidated; anything else is fetched whole.
        let kept = stored.and_then(|record| match record.body {
            Some(body) if record.validators.any() => Some((body, record.validators)),
            _ => None,
        });
        let (body, validators, freshness) = match kept {
            Some((body, old)) => match fetcher.revalidate(url, limit, &old).await {
                Ok(Revalidated::Changed(fetched)) => {
                    (fetched.body, fetched.validators, fetched.freshness)
                }
                Ok(Revalidated::NotModified {
                    validators,
                    freshness,
                }) => {
                    // A 304 may send new validators; without them the old ones still hold.
                    let validators = if validators.any() { validators } else { old };
                    (body, validators, freshness)
                }
                Err(error) => return Err(self.failed(key, now, error).await),
            },
            None => match fetcher.fetch(url, limit).await {
                Ok(fetched) => (fetched.body, fetched.validators, fetched.freshness),
                Err(error) => return Err(self.failed(key, now, error).await),
            },
        };
        if !freshness.no_store {
            let fresh = self.freshness(freshness);
            let record = RecordRef {
                fresh_until_ms: now + fresh.as_millis() as u64,
                validators: &validators,
                body: Some(&body),
                missing_status: 0,
            };
            self.write(key, &record, fresh + self.max_ttl).await;
        }
        Ok(Arc::new(body))
    }

    /// A failed fetch as the caller sees it; a 404 or 410 is remembered first.
    async fn failed(&self, key: &str, now: u64, error: FetchError) -> OriginalsError {
        if let FetchError::NotFound { status, .. } = &error {
            let remembered = Category::Error.default_ttl();
            let record = RecordRef {
                fresh_until_ms: now + remembered.as_millis() as u64,
                validators: &Validators::default(),
                body: None,
                missing_status: *status,
            };
            self.write(key, &record, remembered).await;
        }
        error.into()
    }

    /// How long an answer with `freshness` stays fresh here.
    fn freshness(&self, freshness: Freshness) -> Duration {
        freshness
            .max_age
            .unwrap_or(self.default_ttl)
            .clamp(self.min_ttl, self.max_ttl)
    }

    async fn read(&self, key: &str) -> Option<Record> {
        match self.tier.get(key).await {
            Ok(Some(entry)) if entry.media_type == SOURCE_MEDIA_TYPE => {
                match rmp_serde::from_slice(&entry.body) {
                    Ok(record) => Some(record),
                    Err(e) => {
                        tracing::warn!(key, error = %e, "unreadable source cache entry: fetching again");
                        None
                    }
                }
            }
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(key, error = %e, "source cache unavailable: fetching");
                None
            }
        }
    }

    async fn write(&self, key: &str, record: &RecordRef<'_>, ttl: Duration) {
        let bytes = match rmp_serde::to_vec_named(record) {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::warn!(key, error = %e, "cannot encode a source cache entry");
                return;
            }
        };
        let entry = Entry::new(bytes, SOURCE_MEDIA_TYPE, Category::Source, ttl, 0, (0, 0));
        if let Err(e) = self.tier.put(key, Arc::new(entry)).await {
            tracing::warn!(key, error = %e, "source cache unavailable: not kept");
        }
    }
}
