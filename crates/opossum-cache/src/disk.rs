//! L3: the local disk tier, on RocksDB.
//!
//! "FIFO with size limit" as the seed's eviction table asks: FIFO compaction drops the oldest
//! table files once they exceed `max_bytes`, which costs no write amplification (CacheLib's
//! flash cache makes the same choice). FIFO drops whole files late, so every value carries its
//! expiry and is checked on read; a periodic cleanup deletes expired values early.
//!
//! Every value is framed as `OPO1 | crc32(payload) | payload`: a torn or bit-flipped value reads
//! as a miss, is deleted and counted, and is never served. One process owns a data directory
//! (RocksDB locks it); a second process finds the tier unavailable and runs without it.
//!
//! What RocksDB keeps in memory is bounded by one figure, [`DiskConfig::memory_bytes`]: the
//! block cache, the table files' index and filter blocks (held in that cache rather than beside
//! it) and the memtables (charged to the same cache by a write-buffer manager). Left to its
//! defaults RocksDB keeps two 64 MiB memtables and every open file's index outside any bound,
//! which is most of what a long run adds to a process's memory beyond the memory tier.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rocksdb::{
    BlockBasedOptions, Cache, DB, DBCompactionStyle, FifoCompactOptions, IteratorMode, Options,
    ReadOptions, WriteBatch, WriteBufferManager,
};

use crate::{Entry, Tier, TierError, TierKind, TierUsage, unix_millis};

const MAGIC: &[u8; 4] = b"OPO1";
const HEADER: usize = 8;
/// Keys of entries never start with a NUL byte, so the tier's own records cannot collide.
const STATS_KEY: &[u8] = b"\0opossum:stats";

/// Disk tier settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskConfig {
    /// the RocksDB directory
    pub path: PathBuf,
    /// size of the table files at which the oldest are dropped
    pub max_bytes: u64,
    /// how often expired values are deleted
    pub cleanup_interval: Duration,
    /// memory RocksDB may hold: block cache, index and filter blocks, and memtables together
    pub memory_bytes: u64,
}

impl DiskConfig {
    /// The default of [`DiskConfig::memory_bytes`]: 32 MiB. Values are whole images, read
    /// once per memory-tier miss; the memory tier in front is the cache that matters.
    pub const DEFAULT_MEMORY_BYTES: u64 = 32 << 20;
}

/// The disk tier.
pub struct DiskTier {
    db: DB,
    /// the block cache, which the memtables are charged to as well
    cache: Cache,
    config: DiskConfig,
    corrupt: AtomicU64,
}

/// What RocksDB holds in memory now, in bytes ([`DiskTier::memory_usage`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskMemory {
    /// the memtables (charged to the block cache as well)
    pub memtables: u64,
    /// index and filter blocks held by open table files outside the cache
    pub table_readers: u64,
    /// the block cache, memtable charges included
    pub block_cache: u64,
}

impl DiskMemory {
    /// All of it: the block cache (which the memtables are charged to) and the table readers.
    pub fn total(&self) -> u64 {
        self.block_cache.max(self.memtables) + self.table_readers
    }
}

impl DiskTier {
    /// Opens (creating if needed) the RocksDB at `config.path`.
    pub fn open(config: DiskConfig) -> Result<DiskTier, TierError> {
        let mut options = Options::default();
        options.create_if_missing(true);
        options.set_compaction_style(DBCompactionStyle::Fifo);
        let mut fifo = FifoCompactOptions::default();
        fifo.set_max_table_files_size(config.max_bytes);
        options.set_fifo_compaction_options(&fifo);
        // One bound for everything RocksDB holds in memory (see the module documentation).
        let budget = config.memory_bytes.max(4 << 20);
        let cache = Cache::new_lru_cache(budget as usize);
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&cache);
        table.set_cache_index_and_filter_blocks(true);
        options.set_block_based_table_factory(&table);
        let memtables = WriteBufferManager::new_write_buffer_manager_with_cache(
            (budget / 2) as usize,
            false,
            cache.clone(),
        );
        options.set_write_buffer_manager(&memtables);
        // Smaller memtables make the size limit bite in finer steps; two of them (one being
        // flushed) fit in the memtables' half of the budget.
        let write_buffer = (config.max_bytes / 16).clamp(1 << 20, budget / 4);
        options.set_write_buffer_size(write_buffer as usize);
        options.set_max_write_buffer_number(2);
        // FIFO compaction requires every table file open (max_open_files = -1, the default).
        let db = DB::open(&options, &config.path).map_err(|e| {
            TierError::context(
                TierKind::Disk,
                format_args!("opening {}", config.path.display()),
                e,
            )
        })?;
        Ok(DiskTier {
            db,
            cache,
            config,
            corrupt: AtomicU64::new(0),
        })
    }

    fn error(&self, e: rocksdb::Error) -> TierError {
        TierError::new(TierKind::Disk, e)
    }

    /// Deletes expired and corrupt values; returns how many. Called every `cleanup_interval`
    /// by [`DiskTier::spawn_cleanup`].
    pub fn cleanup(&self) -> Result<u64, TierError> {
        let now = unix_millis();
        let mut batch = WriteBatch::default();
        let mut removed = 0;
        // A sweep reads every value once: it must not push the hot blocks out of the cache.
        let mut sweep = ReadOptions::default();
        sweep.fill_cache(false);
        for item in self.db.iterator_opt(IteratorMode::Start, sweep) {
            let (key, value) = item.map_err(|e| self.error(e))?;
            if key.first() == Some(&0) {
                continue;
            }
            let keep = unframe(&value).is_some_and(|entry| entry.remaining(now).is_some());
            if !keep {
                batch.delete(&key);
                removed += 1;
            }
        }
        self.db.write(batch).map_err(|e| self.error(e))?;
        Ok(removed)
    }

    /// Runs [`DiskTier::cleanup`] every `cleanup_interval` on the blocking pool, for as long
    /// as the tier lives.
    pub fn spawn_cleanup(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let weak = Arc::downgrade(self);
        let interval = self.config.cleanup_interval.max(Duration::from_secs(1));
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let Some(tier) = weak.upgrade() else { break };
                match tokio::task::spawn_blocking(move || tier.cleanup()).await {
                    Ok(Ok(removed)) => tracing::debug!(tier = "disk", removed, "cleanup"),
                    Ok(Err(e)) => tracing::warn!(tier = "disk", error = %e, "cleanup failed"),
                    Err(e) => tracing::warn!(tier = "disk", error = %e, "cleanup panicked"),
                }
            }
        })
    }

    /// What RocksDB holds in memory now: within [`DiskConfig::memory_bytes`] (the block
    /// cache and the memtables charged to it) plus what table files keep outside the cache.
    pub fn memory_usage(&self) -> Result<DiskMemory, TierError> {
        let stats = rocksdb::perf::get_memory_usage_stats(Some(&[&self.db]), Some(&[&self.cache]))
            .map_err(|e| self.error(e))?;
        Ok(DiskMemory {
            memtables: stats.mem_table_total,
            table_readers: stats.mem_table_readers_total,
            block_cache: stats.cache_total,
        })
    }

    /// The stats record persisted in this data directory, if any.
    pub fn load_stats(&self) -> Result<Option<Vec<u8>>, TierError> {
        self.db.get(STATS_KEY).map_err(|e| self.error(e))
    }

    /// Replaces the persisted stats record.
    pub fn save_stats(&self, bytes: &[u8]) -> Result<(), TierError> {
        self.db.put(STATS_KEY, bytes).map_err(|e| self.error(e))
    }
}

fn frame(entry: &Entry) -> Vec<u8> {
    let payload = entry.to_msgpack();
    let mut out = Vec::with_capacity(HEADER + payload.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
    out
}

fn unframe(bytes: &[u8]) -> Option<Entry> {
    if bytes.len() < HEADER || &bytes[..4] != MAGIC {
        return None;
    }
    let crc = u32::from_le_bytes(bytes[4..8].try_into().ok()?);
    let payload = &bytes[HEADER..];
    if crc32fast::hash(payload) != crc {
        return None;
    }
    Entry::from_msgpack(payload).ok()
}

/// The smallest key greater than every key starting with `prefix`.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return end;
        }
    }
    vec![u8::MAX; prefix.len() + 1]
}

#[async_trait::async_trait]
impl Tier for DiskTier {
    fn kind(&self) -> TierKind {
        TierKind::Disk
    }

    async fn get(&self, key: &str) -> Result<Option<Arc<Entry>>, TierError> {
        let Some(bytes) = self.db.get_pinned(key).map_err(|e| self.error(e))? else {
            return Ok(None);
        };
        match unframe(&bytes) {
            Some(entry) if entry.remaining(unix_millis()).is_some() => Ok(Some(Arc::new(entry))),
            Some(_expired) => {
                drop(bytes);
                self.db.delete(key).map_err(|e| self.error(e))?;
                Ok(None)
            }
            None => {
                drop(bytes);
                self.corrupt.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(tier = "disk", key, "corrupt entry dropped");
                self.db.delete(key).map_err(|e| self.error(e))?;
                Ok(None)
            }
        }
    }

    async fn put(&self, key: &str, entry: Arc<Entry>) -> Result<bool, TierError> {
        if entry.remaining(unix_millis()).is_none() {
            return Ok(false);
        }
        self.db.put(key, frame(&entry)).map_err(|e| self.error(e))?;
        Ok(true)
    }

    async fn remove(&self, key: &str) -> Result<(), TierError> {
        self.db.delete(key).map_err(|e| self.error(e))
    }

    async fn invalidate_image(&self, image_prefix: &str) -> Result<u64, TierError> {
        let start = image_prefix.as_bytes();
        let end = prefix_end(start);
        let count = self
            .db
            .iterator(IteratorMode::From(start, rocksdb::Direction::Forward))
            .take_while(|item| item.as_ref().is_ok_and(|(k, _)| k.starts_with(start)))
            .count() as u64;
        let mut batch = WriteBatch::default();
        batch.delete_range(start, end.as_slice());
        self.db.write(batch).map_err(|e| self.error(e))?;
        Ok(count)
    }

    async fn usage(&self) -> Result<TierUsage, TierError> {
        let property = |name: &str| -> Result<u64, TierError> {
            Ok(self
                .db
                .property_int_value(name)
                .map_err(|e| self.error(e))?
                .unwrap_or(0))
        };
        Ok(TierUsage {
            items: property("rocksdb.estimate-num-keys")?,
            bytes: property("rocksdb.total-sst-files-size")?
                + property("rocksdb.cur-size-all-mem-tables")?,
            capacity: self.config.max_bytes,
            evictions: None,
            corrupt: self.corrupt.load(Ordering::Relaxed),
            memory: Some(self.memory_usage()?.total()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_is_the_next_key() {
        assert_eq!(prefix_end(b"ns:abc:"), b"ns:abc;".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
    }

    #[test]
    fn frames_detect_damage() {
        let entry = Entry::new(
            vec![1, 2, 3],
            "image/png",
            opossum_ops::Category::Result,
            Duration::from_secs(9),
            0,
            (1, 1),
        );
        let framed = frame(&entry);
        assert_eq!(unframe(&framed), Some(entry));
        for i in 0..framed.len() {
            let mut damaged = framed.clone();
            damaged[i] ^= 0x40;
            assert_eq!(unframe(&damaged), None, "flipped byte {i} went unnoticed");
        }
        assert_eq!(unframe(&framed[..framed.len() - 1]), None);
    }

    #[test]
    fn an_open_failure_names_the_path_as_given() {
        // A data dir whose parent is a file cannot be opened; the error must name the path
        // exactly (case included) and keep RocksDB's own error as its source.
        let base = std::env::temp_dir().join(format!("Opossum-Case-{}", std::process::id()));
        std::fs::create_dir_all(&base).unwrap();
        let blocker = base.join("Not-A-Dir");
        std::fs::write(&blocker, b"x").unwrap();
        let path = blocker.join("RocksDB");
        let error = DiskTier::open(DiskConfig {
            path: path.clone(),
            max_bytes: 1 << 20,
            cleanup_interval: Duration::from_secs(3600),
            memory_bytes: DiskConfig::DEFAULT_MEMORY_BYTES,
        })
        .err()
        .expect("opened a database under a regular file");
        let _ = std::fs::remove_dir_all(&base);
        let text = error.to_string();
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(std::error::Error::source(&error).is_some());
    }
}
