//! What a cache tier stores.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use opossum_ops::Category;
use serde::{Deserialize, Serialize};

/// A cached item: the encoded image (or analysis JSON, or error message), and what the cache
/// needs to know about it. Times are Unix milliseconds so every process and machine agrees.
///
/// The body is [`Bytes`]: the HTTP origin hands it to the response without copying it (a
/// reference count, not a copy of the image per request). It serialises as a byte string, as
/// the `Vec<u8>` it replaced did, so stored entries read the same.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// the bytes served
    pub body: Bytes,
    /// MIME type of `body` (`text/plain` for an error result)
    pub media_type: String,
    /// what kind of item it is
    pub category: Category,
    /// when it was computed
    pub created_at_ms: u64,
    /// how long it may be served
    pub ttl_ms: u64,
    /// how long computing it took
    pub compute_ms: u64,
    /// image width (0 for non-images)
    pub width: u32,
    /// image height (0 for non-images)
    pub height: u32,
    /// the quality it was encoded at, for formats with one (what `max-bytes` chose, when the
    /// chain has it); absent in entries written before it was recorded
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<u8>,
}

impl Entry {
    /// An entry created now.
    pub fn new(
        body: impl Into<Bytes>,
        media_type: impl Into<String>,
        category: Category,
        ttl: Duration,
        compute_ms: u64,
        (width, height): (u32, u32),
    ) -> Entry {
        Entry {
            body: body.into(),
            media_type: media_type.into(),
            category,
            created_at_ms: unix_millis(),
            ttl_ms: ttl.as_millis() as u64,
            compute_ms,
            width,
            height,
            quality: None,
        }
    }

    /// When it stops being servable.
    pub fn expires_at_ms(&self) -> u64 {
        self.created_at_ms.saturating_add(self.ttl_ms)
    }

    /// Time left before expiry at `now_ms`; `None` when expired.
    pub fn remaining(&self, now_ms: u64) -> Option<Duration> {
        let expires = self.expires_at_ms();
        (expires > now_ms).then(|| Duration::from_millis(expires - now_ms))
    }

    /// Roughly the bytes it occupies in memory.
    pub fn weight(&self) -> usize {
        self.body.len() + self.media_type.len() + 64
    }

    /// MessagePack, the form every tier outside memory stores.
    pub fn to_msgpack(&self) -> Vec<u8> {
        // Serialising plain data into a Vec cannot fail.
        rmp_serde::to_vec_named(self).unwrap_or_default()
    }

    /// Parses what [`Entry::to_msgpack`] wrote.
    pub fn from_msgpack(bytes: &[u8]) -> Result<Entry, String> {
        rmp_serde::from_slice(bytes).map_err(|e| e.to_string())
    }
}

/// Milliseconds since the Unix epoch.
pub fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_msgpack_compactly() {
        // Bytes >= 128 take two bytes each when packed as an integer array, one as binary.
        let entry = Entry::new(
            vec![200; 1000],
            "image/png",
            Category::Thumbnail,
            Duration::from_secs(60),
            12,
            (10, 20),
        );
        let packed = entry.to_msgpack();
        assert!(
            packed.len() < 1200,
            "bytes must be packed as binary, got {}",
            packed.len()
        );
        assert_eq!(Entry::from_msgpack(&packed).unwrap(), entry);
        assert!(Entry::from_msgpack(&packed[..50]).is_err());
    }

    #[test]
    fn expiry() {
        let mut entry = Entry::new(
            vec![],
            "x",
            Category::Error,
            Duration::from_secs(300),
            0,
            (0, 0),
        );
        entry.created_at_ms = 1_000;
        assert_eq!(entry.remaining(1_000), Some(Duration::from_secs(300)));
        assert_eq!(entry.remaining(301_000), None);
    }
}
