//! Cache categories: what kind of thing an entry is, which decides its default TTL.

use std::time::Duration;

use crate::{Chain, Operation};

/// A resize whose box fits in this many pixels on each side counts as a thumbnail.
const THUMBNAIL_MAX_EDGE: u32 = 256;

/// What kind of entry a cached item is. The default TTLs are the seed's table.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    /// A complete processing result (24 h).
    Result,
    /// A thumbnail or preview (7 d).
    Thumbnail,
    /// The output of a prefix of a longer chain (1 h).
    Intermediate,
    /// The analysis JSON of an image (24 h, like results).
    Analysis,
    /// A preset or other configuration resource (24 h, adapting up to 48 h).
    Resource,
    /// A request that failed on bad input, remembered so it is not reprocessed (5 min).
    Error,
    /// An original fetched over HTTP(S), kept in the local disk tier (its TTL from the
    /// origin's `Cache-Control`; 1 h without one).
    Source,
}

impl Category {
    /// Every category, in display order.
    pub const ALL: [Category; 7] = [
        Category::Result,
        Category::Thumbnail,
        Category::Intermediate,
        Category::Analysis,
        Category::Resource,
        Category::Error,
        Category::Source,
    ];

    /// The category of a complete request for `chain`.
    pub fn of(chain: &Chain) -> Category {
        if chain.is_analysis() {
            return Category::Analysis;
        }
        let is_thumbnail = chain.ops().iter().any(|op| match *op {
            Operation::Thumbnail { .. } => true,
            Operation::Resize { width, height, .. } => {
                width <= THUMBNAIL_MAX_EDGE && height <= THUMBNAIL_MAX_EDGE
            }
            _ => false,
        });
        if is_thumbnail {
            Category::Thumbnail
        } else {
            Category::Result
        }
    }

    /// The seed's default TTL; the cache hierarchy adapts it (see ARCHITECTURE.md).
    pub fn default_ttl(self) -> Duration {
        const HOUR: u64 = 3600;
        Duration::from_secs(match self {
            Category::Result | Category::Analysis | Category::Resource => 24 * HOUR,
            Category::Thumbnail => 7 * 24 * HOUR,
            Category::Intermediate | Category::Source => HOUR,
            Category::Error => 5 * 60,
        })
    }

    /// The category with this [`Category::name`].
    pub fn from_name(name: &str) -> Option<Category> {
        Category::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The lowercase name used in stats, metrics labels and events.
    pub fn name(self) -> &'static str {
        match self {
            Category::Result => "result",
            Category::Thumbnail => "thumbnail",
            Category::Intermediate => "intermediate",
            Category::Analysis => "analysis",
            Category::Resource => "resource",
            Category::Error => "error",
            Category::Source => "source",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(chain: &str, expect: Category) {
        assert_eq!(
            Category::of(&Chain::parse(chain).unwrap()),
            expect,
            "{chain}"
        );
    }

    #[test]
    fn classifies_requests() {
        check("thumbnail:400", Category::Thumbnail);
        check("resize:200:150,format:webp", Category::Thumbnail);
        check("resize:0:120", Category::Thumbnail);
        check("resize:800:600", Category::Result);
        check("grayscale,blur:2", Category::Result);
        check("resize:100:100,analyze", Category::Analysis);
        assert_eq!(Category::Error.default_ttl(), Duration::from_secs(300));
        assert_eq!(
            Category::Thumbnail.default_ttl(),
            Duration::from_secs(604_800)
        );
    }
}
