//! The originals store: where workers load source images from.
//!
//! Backed by the `object_store` crate (the Apache Arrow project's), so the same code reads a
//! local directory (`--originals DIR`, the default) or S3-compatible storage
//! (`--originals s3://bucket/prefix`, credentials and endpoint from the usual `AWS_*`
//! environment variables). An image id is an object name inside the store; ids that could
//! leave it are rejected before any I/O.

use std::sync::Arc;

use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use opossum_pipeline::{ErrorKind, PipelineError};

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
            OriginalsError::Config { .. } => ErrorKind::Internal,
        }
    }
}

impl From<OriginalsError> for PipelineError {
    fn from(error: OriginalsError) -> PipelineError {
        PipelineError::from_cause(error.kind(), error)
    }
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

/// A store of original images.
#[derive(Clone)]
pub struct Originals {
    store: Arc<dyn ObjectStore>,
    location: String,
}

impl std::fmt::Debug for Originals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Originals")
            .field("location", &self.location)
            .finish()
    }
}

impl Originals {
    /// Opens `location`: a directory, `file:///dir`, or `s3://bucket[/prefix]`.
    pub fn open(location: &str) -> Result<Originals, OriginalsError> {
        let config = |reason: String| OriginalsError::Config {
            location: location.to_string(),
            reason,
        };
        let store: Arc<dyn ObjectStore> = if location.starts_with("s3://") {
            let url = url::Url::parse(location).map_err(|e| config(e.to_string()))?;
            let bucket = url
                .host_str()
                .ok_or_else(|| config("no bucket".into()))?
                .to_string();
            let s3 = object_store::aws::AmazonS3Builder::from_env()
                .with_bucket_name(bucket)
                .build()
                .map_err(|e| config(e.to_string()))?;
            let prefix = url.path().trim_matches('/');
            if prefix.is_empty() {
                Arc::new(s3)
            } else {
                Arc::new(object_store::prefix::PrefixStore::new(s3, prefix))
            }
        } else {
            let dir = location.strip_prefix("file://").unwrap_or(location);
            let dir = std::path::Path::new(dir);
            if !dir.is_dir() {
                return Err(config("not a directory".into()));
            }
            let local = object_store::local::LocalFileSystem::new_with_prefix(dir)
                .map_err(|e| config(e.to_string()))?;
            Arc::new(local)
        };
        Ok(Originals {
            store,
            location: location.to_string(),
        })
    }

    /// Where the store is, as given.
    pub fn location(&self) -> &str {
        &self.location
    }

    /// Reads the original `id`, refusing objects larger than `limit` bytes before reading them.
    pub async fn load(&self, id: &str, limit: u64) -> Result<Vec<u8>, OriginalsError> {
        let path = validate_image_id(id)?;
        let classify = |e: object_store::Error| match e {
            object_store::Error::NotFound { .. } => OriginalsError::NotFound(id.to_string()),
            other => OriginalsError::Store(other.to_string()),
        };
        let meta = self.store.head(&path).await.map_err(classify)?;
        if meta.size > limit {
            return Err(OriginalsError::TooLarge {
                id: id.to_string(),
                size: meta.size,
                limit,
            });
        }
        let bytes = self
            .store
            .get(&path)
            .await
            .map_err(classify)?
            .bytes()
            .await
            .map_err(classify)?;
        if bytes.len() as u64 > limit {
            return Err(OriginalsError::TooLarge {
                id: id.to_string(),
                size: bytes.len() as u64,
                limit,
            });
        }
        Ok(bytes.to_vec())
    }
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
        let store = Originals::open(dir.to_str().unwrap()).unwrap();
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
        assert!(Originals::open("/no/such/dir").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
