//! The originals store: where workers load source images from.
//!
//! Three kinds of location, one `load`:
//!
//! - a directory (`--originals DIR`, the default), S3-compatible storage (`s3://bucket/prefix`),
//!   Google Cloud Storage (`gs://bucket/prefix`) or Azure Blob Storage (`az://container/prefix`),
//!   through the Arrow project's `object_store`, each configured as its documentation says
//!   (`AWS_*`; `GOOGLE_SERVICE_ACCOUNT` or `GOOGLE_APPLICATION_CREDENTIALS`;
//!   `AZURE_STORAGE_ACCOUNT_NAME` and a key or token);
//! - an HTTP(S) base (`https://images.internal/base/`): the id's segments are appended to the
//!   base, percent-encoded, and fetched by `opossum-fetch`'s guarded client. The operator named
//!   the base, so its own scheme, host and port are trusted as configured; a redirect that
//!   leaves it is checked like a user's URL;
//! - with `sources.url_ids`, an image id that is itself an `http://` or `https://` URL is fetched
//!   directly, whatever the location, under every check `sources:` sets (allowed hosts, ports,
//!   public addresses only).
//!
//! An id that could leave the store is rejected before any I/O. What is fetched over HTTP is
//! kept in the local disk tier (`source_cache.rs`) when the process has one, so the second
//! variant of a remote image does not fetch it again.

use std::sync::Arc;

use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use opossum_config::SourcesSettings;
use opossum_fetch::{FetchError, FetchLimits, Fetcher, Guard, Hosts, Origin, Url};
use opossum_pipeline::{ErrorKind, PipelineError};

use crate::source_cache::SourceCache;

/// Longest image id accepted.
pub const MAX_IMAGE_ID_LEN: usize = 1024;

/// Why an original could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OriginalsError {
    /// The id is not a valid object name or tries to leave the store. Permanent.
    #[error("invalid image id `{id}`: {reason}")]
    InvalidId {
        /// the id as given (truncated)
        id: String,
        /// what is wrong
        reason: &'static str,
    },
    /// No such object. Permanent.
    #[error("no image `{0}` in the originals store")]
    NotFound(String),
    /// The object is larger than the input limit. Permanent.
    #[error("image `{id}` is {size} bytes, more than the limit of {limit} bytes")]
    TooLarge {
        /// the id
        id: String,
        /// its size
        size: u64,
        /// the limit
        limit: u64,
    },
    /// The store failed (I/O, network, timeout). Worth retrying.
    #[error("originals store: {0}")]
    Store(String),
    /// An HTTP(S) fetch failed or was refused: permanent or transient as the failure is.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// The store's location is not usable.
    #[error("originals store `{location}`: {reason}")]
    Config {
        /// the location as given
        location: String,
        /// what is wrong
        reason: String,
    },
}

impl OriginalsError {
    /// What kind of failure this is: only the store failing is worth a retry.
    pub fn kind(&self) -> ErrorKind {
        match self {
            OriginalsError::InvalidId { .. } => ErrorKind::BadRequest,
            OriginalsError::NotFound(_) => ErrorKind::NotFound,
            OriginalsError::TooLarge { .. } => ErrorKind::BadImage,
            OriginalsError::Store(_) => ErrorKind::Transient,
            OriginalsError::Fetch(error) => match error {
                FetchError::Refused(_) | FetchError::TooManyRedirects { .. } => {
                    ErrorKind::BadRequest
                }
                FetchError::NotFound { .. } => ErrorKind::NotFound,
                FetchError::TooLarge { .. } => ErrorKind::BadImage,
                FetchError::Client(_) => ErrorKind::Internal,
                // A 403 or 401: the image cannot be had, as good as missing.
                other if other.is_permanent() => ErrorKind::NotFound,
                _ => ErrorKind::Transient,
            },
            OriginalsError::Config { .. } => ErrorKind::Internal,
        }
    }
}

impl From<OriginalsError> for PipelineError {
    fn from(error: OriginalsError) -> PipelineError {
        PipelineError::from_cause(error.kind(), error)
    }
}

/// True when `id` is written as a URL, `scheme://…` (never a valid object name: `//` is an
/// empty segment). Only `http` and `https` are ever fetched; an id in any other scheme
/// (`file:///etc/passwd`, `gopher://…`) goes to the guard too, which refuses it by name.
pub fn is_url_id(id: &str) -> bool {
    id.split_once("://").is_some_and(|(scheme, _)| {
        scheme.len() <= 32
            && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    })
}

/// True when `location` is an `http://` or `https://` base URL.
fn is_http_location(location: &str) -> bool {
    let start: String = location
        .chars()
        .take(8)
        .collect::<String>()
        .to_ascii_lowercase();
    start.starts_with("http://") || start.starts_with("https://")
}

/// What an image id names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImageRef {
    /// an object in the originals store
    Object(ObjectPath),
    /// a URL to fetch (whether it may be fetched is the fetcher's call, under `sources:`)
    Url(Url),
}

/// Checks `id` as a request carries it: written as a URL ([`is_url_id`]), at most
/// [`MAX_IMAGE_ID_LEN`] bytes that parse as a URL; otherwise an object name
/// ([`validate_image_id`]). Producers call it to refuse a bad id before it is queued; the
/// store calls it again before reading.
pub fn parse_image_id(id: &str) -> Result<ImageRef, OriginalsError> {
    if !is_url_id(id) {
        return validate_image_id(id).map(ImageRef::Object);
    }
    let invalid = |reason| OriginalsError::InvalidId {
        id: id.chars().take(120).collect(),
        reason,
    };
    if id.len() > MAX_IMAGE_ID_LEN {
        return Err(invalid("longer than 1024 bytes"));
    }
    Url::parse(id)
        .map(ImageRef::Url)
        .map_err(|_| invalid("not a valid URL"))
}

/// Checks that `id` names an object inside the store: relative, no empty, `.` or `..`
/// segments, no backslashes or control characters, at most [`MAX_IMAGE_ID_LEN`] bytes.
pub fn validate_image_id(id: &str) -> Result<ObjectPath, OriginalsError> {
    let fail = |reason| OriginalsError::InvalidId {
        id: id.chars().take(120).collect(),
        reason,
    };
    if id.is_empty() {
        return Err(fail("empty"));
    }
    if id.len() > MAX_IMAGE_ID_LEN {
        return Err(fail("longer than 1024 bytes"));
    }
    if id.starts_with('/') {
        return Err(fail("absolute paths are not allowed"));
    }
    if id.contains('\\') {
        return Err(fail("backslashes are not allowed"));
    }
    if id.chars().any(char::is_control) {
        return Err(fail("control characters are not allowed"));
    }
    for segment in id.split('/') {
        match segment {
            "" => return Err(fail("empty path segment")),
            "." | ".." => return Err(fail("`.` and `..` segments are not allowed")),
            _ => {}
        }
    }
    ObjectPath::parse(id).map_err(|_| fail("not a valid object name"))
}

/// Where the objects of a location live.
#[derive(Clone)]
enum Backend {
    /// a directory or S3, through object_store
    Objects(Arc<dyn ObjectStore>),
    /// an HTTP(S) base, its origin trusted as configured
    Http { base: Url, fetcher: Fetcher },
}

/// A store of original images.
#[derive(Clone)]
pub struct Originals {
    backend: Backend,
    /// the fetcher of URL ids, when `sources.url_ids` is on
    urls: Option<Fetcher>,
    /// the local copies of what was fetched over HTTP
    cache: Option<Arc<SourceCache>>,
    location: String,
}

impl std::fmt::Debug for Originals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Originals")
            .field("location", &self.location)
            .field("url_ids", &self.urls.is_some())
            .finish()
    }
}

/// The limits `sources:` sets on every fetch.
fn fetch_limits(sources: &SourcesSettings) -> FetchLimits {
    FetchLimits {
        connect_timeout: sources.connect_timeout,
        total_timeout: sources.timeout,
        min_rate: sources.min_rate,
        rate_grace: sources.rate_grace,
        max_redirects: sources.max_redirects,
    }
}

/// The guard of user URLs: `sources:`'s hosts, ports and networks.
fn user_guard(sources: &SourcesSettings) -> Result<Guard, String> {
    Ok(Guard {
        hosts: Hosts::Only(sources.host_patterns()?),
        ports: sources.allowed_ports.clone(),
        allow_private: sources.allow_private,
        allowed_networks: sources.networks()?,
        trusted: None,
    })
}

impl Originals {
    /// Opens `location` (a directory, `file:///dir`, `s3://bucket[/prefix]`,
    /// `gs://bucket[/prefix]`, `az://container[/prefix]` or `http(s)://host/base/`) with the
    /// HTTP rules of `sources`.
    pub fn open(location: &str, sources: &SourcesSettings) -> Result<Originals, OriginalsError> {
        let config = |reason: String| OriginalsError::Config {
            location: location.to_string(),
            reason,
        };
        let limits = fetch_limits(sources);
        let cloud = ["s3://", "gs://", "az://"]
            .into_iter()
            .find(|scheme| location.starts_with(scheme));
        let backend = if let Some(scheme) = cloud {
            let url = url::Url::parse(location).map_err(|e| config(e.to_string()))?;
            let bucket = url
                .host_str()
                .ok_or_else(|| config("no bucket or container".into()))?
                .to_string();
            let store: Arc<dyn ObjectStore> = match scheme {
                "s3://" => Arc::new(
                    object_store::aws::AmazonS3Builder::from_env()
                        .with_bucket_name(bucket)
                        .build()
                        .map_err(|e| config(e.to_string()))?,
                ),
                "gs://" => Arc::new(
                    object_store::gcp::GoogleCloudStorageBuilder::from_env()
                        .with_bucket_name(bucket)
                        .build()
                        .map_err(|e| config(e.to_string()))?,
                ),
                _ => Arc::new(
                    object_store::azure::MicrosoftAzureBuilder::from_env()
                        .with_container_name(bucket)
                        .build()
                        .map_err(|e| config(e.to_string()))?,
                ),
            };
            let prefix = url.path().trim_matches('/');
            Backend::Objects(if prefix.is_empty() {
                store
            } else {
                Arc::new(object_store::prefix::PrefixStore::new(store, prefix))
            })
        } else if is_http_location(location) {
            let base = Url::parse(location).map_err(|e| config(e.to_string()))?;
            if !base.username().is_empty() || base.password().is_some() {
                return Err(config("credentials in the URL are not supported".into()));
            }
            if base.query().is_some() || base.fragment().is_some() {
                return Err(config("a base URL takes no query or fragment".into()));
            }
            // The base's own origin is trusted; anything a redirect leads to is checked as a
            // user URL would be.
            let guard = Guard {
                trusted: Origin::of(&base),
                ..user_guard(sources).map_err(config)?
            };
            let fetcher = Fetcher::new(guard, limits).map_err(|e| config(e.to_string()))?;
            Backend::Http { base, fetcher }
        } else {
            let dir = location.strip_prefix("file://").unwrap_or(location);
            let dir = std::path::Path::new(dir);
            if !dir.is_dir() {
                return Err(config("not a directory".into()));
            }
            let local = object_store::local::LocalFileSystem::new_with_prefix(dir)
                .map_err(|e| config(e.to_string()))?;
            Backend::Objects(Arc::new(local))
        };
        let urls = if sources.url_ids {
            let guard = user_guard(sources).map_err(config)?;
            Some(Fetcher::new(guard, limits).map_err(|e| config(e.to_string()))?)
        } else {
            None
        };
        Ok(Originals {
            backend,
            urls,
            cache: None,
            location: location.to_string(),
        })
    }

    /// Keeps what is fetched over HTTP in `tier` (the process's disk tier, keys under
    /// `namespace`), for the freshness `sources` bounds.
    pub fn with_source_cache(
        mut self,
        tier: Arc<dyn opossum_cache::Tier>,
        namespace: &str,
        sources: &SourcesSettings,
    ) -> Originals {
        self.cache = Some(Arc::new(SourceCache::new(tier, namespace, sources)));
        self
    }

    /// Where the store is, as given.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Reads the original `id`, refusing objects larger than `limit` bytes before reading them.
    pub async fn load(&self, id: &str, limit: u64) -> Result<Vec<u8>, OriginalsError> {
        let path = match parse_image_id(id)? {
            ImageRef::Url(url) => {
                let fetcher = self
                    .urls
                    .as_ref()
                    .ok_or_else(|| OriginalsError::InvalidId {
                        id: id.chars().take(120).collect(),
                        reason: "image ids that are URLs are not enabled (sources.url_ids)",
                    })?;
                return self.fetch(id, &url, fetcher, limit).await;
            }
            ImageRef::Object(path) => path,
        };
        match &self.backend {
            Backend::Objects(store) => load_object(store.as_ref(), id, &path, limit).await,
            Backend::Http { base, fetcher } => {
                let url = opossum_fetch::join_id(base, path.as_ref()).map_err(|reason| {
                    OriginalsError::Config {
                        location: self.location.clone(),
                        reason,
                    }
                })?;
                self.fetch(id, &url, fetcher, limit).await
            }
        }
    }

    /// Fetches `url` (the original `id`), through the source cache when there is one.
    async fn fetch(
        &self,
        id: &str,
        url: &Url,
        fetcher: &Fetcher,
        limit: u64,
    ) -> Result<Vec<u8>, OriginalsError> {
        match &self.cache {
            Some(cache) => cache.load(id, url, fetcher, limit).await,
            None => Ok(fetcher.fetch(url, limit).await?.body),
        }
    }
}

/// Reads `path` (the original `id`) from an object store in one GET, refusing an object
/// larger than `limit` from the size the response declares, before its body. One request rather than a
/// HEAD and a GET: half the round trips, no window for the object to change between them, and
/// stores (and emulators) without HEAD still serve.
async fn load_object(
    store: &dyn ObjectStore,
    id: &str,
    path: &ObjectPath,
    limit: u64,
) -> Result<Vec<u8>, OriginalsError> {
    let classify = |e: object_store::Error| match e {
        object_store::Error::NotFound { .. } => OriginalsError::NotFound(id.to_string()),
        other => OriginalsError::Store(other.to_string()),
    };
    let too_large = |size: u64| OriginalsError::TooLarge {
        id: id.to_string(),
        size,
        limit,
    };
    let found = store.get(path).await.map_err(classify)?;
    let declared = found.meta.size;
    if declared > limit {
        return Err(too_large(declared));
    }
    // The body is bounded by the declared size (object_store takes it from the response's
    // Content-Length, which the HTTP client enforces, or from the file's metadata), so reading
    // it whole is safe; `bytes()` keeps object_store's one-read path for local files.
    let bytes = found.bytes().await.map_err(classify)?;
    if bytes.len() as u64 > limit {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes.to_vec())
}

/// The store as the pipeline's source of watermarks: the same id validation and size limit
/// as any original.
struct StoreResources {
    originals: Originals,
    limit: u64,
}

impl opossum_pipeline::Resources for StoreResources {
    fn load<'a>(
        &'a self,
        id: &'a str,
    ) -> std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Vec<u8>, PipelineError>> + Send + 'a>,
    > {
        Box::pin(async move { Ok(self.originals.load(id, self.limit).await?) })
    }
}

impl Originals {
    /// This store as the source of the watermarks chains name, each at most `limit` bytes.
    pub fn as_resources(&self, limit: u64) -> Arc<dyn opossum_pipeline::Resources> {
        Arc::new(StoreResources {
            originals: self.clone(),
            limit,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_written_as_urls_in_any_scheme_are_url_ids() {
        for id in [
            "http://a.example/x.png",
            "HTTPS://a.example/x.png",
            "file:///etc/passwd",
            "gopher://127.0.0.1:70/",
            "svn+ssh://a/b",
            "a://b",
        ] {
            assert!(is_url_id(id), "{id}");
        }
        for id in [
            "a.png",
            "photos/b c.png",
            "1http://x",
            "://x",
            "x:/y",
            "a b://c",
        ] {
            assert!(!is_url_id(id), "{id}");
        }
        assert!(!is_http_location("s3://bucket/prefix"));
        assert!(is_http_location("HTTP://images.example/base/"));
    }

    #[test]
    fn request_ids_are_objects_or_urls() {
        assert_eq!(
            parse_image_id("photos/a.png"),
            Ok(ImageRef::Object(ObjectPath::from("photos/a.png")))
        );
        assert!(matches!(
            parse_image_id("https://a.example/x.png"),
            Ok(ImageRef::Url(url)) if url.host_str() == Some("a.example")
        ));
        let reason = |id: &str| match parse_image_id(id) {
            Err(OriginalsError::InvalidId { reason, .. }) => reason,
            other => panic!("{id}: {other:?}"),
        };
        assert_eq!(reason("http://[::1/x.png"), "not a valid URL");
        let long = format!("https://a.example/{}", "x".repeat(MAX_IMAGE_ID_LEN));
        assert_eq!(reason(&long), "longer than 1024 bytes");
        assert_eq!(reason("../etc/passwd"), reason("a/../b"));
    }

    #[test]
    fn ids_that_leave_the_store_are_rejected() {
        for bad in [
            "",
            "/etc/passwd",
            "../secret",
            "a/../../b",
            "a//b",
            "./a",
            "a/.",
            "a\\b",
            "a\u{0}b",
            "a/",
        ] {
            assert!(validate_image_id(bad).is_err(), "{bad:?} accepted");
        }
        for good in ["cat.jpg", "photos/2024/cat.jpg", "a..b/c", "%2e%2e/x"] {
            assert!(validate_image_id(good).is_ok(), "{good:?} rejected");
        }
    }

    #[tokio::test]
    async fn loads_from_a_directory_and_classifies_errors() {
        let dir = std::env::temp_dir().join(format!("opossum-originals-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("photos")).unwrap();
        std::fs::write(dir.join("photos/a.bin"), b"0123456789").unwrap();
        let store = Originals::open(dir.to_str().unwrap(), &SourcesSettings::default()).unwrap();
        assert_eq!(
            store.load("photos/a.bin", 100).await.unwrap(),
            b"0123456789"
        );
        let missing = store.load("photos/b.bin", 100).await.unwrap_err();
        assert!(matches!(missing, OriginalsError::NotFound(_)), "{missing}");
        assert_eq!(missing.kind(), ErrorKind::NotFound);
        let large = store.load("photos/a.bin", 5).await.unwrap_err();
        assert!(
            matches!(large, OriginalsError::TooLarge { size: 10, .. }),
            "{large}"
        );
        let escape = store.load("../a.bin", 100).await.unwrap_err();
        assert!(
            matches!(escape, OriginalsError::InvalidId { .. }),
            "{escape}"
        );
        assert_eq!(escape.kind(), ErrorKind::BadRequest);
        assert_eq!(large.kind(), ErrorKind::BadImage);
        assert!(Originals::open("/no/such/dir", &SourcesSettings::default()).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
