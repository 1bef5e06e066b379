//! The allocator of every Opossum binary, and what it reports.
//!
//! jemalloc (tikv-jemallocator), chosen by measurement: under the soak benchmark
//! (`opossum-bench soak`, issue 19), glibc's malloc kept growing over the second half of the
//! run (+5.5% to +12.3%) while jemalloc settled lowest and gave memory back. Image buffers are
//! large and of every size, which is what fragments glibc's per-thread arenas. The binaries
//! install it with `#[global_allocator]` (see [`Allocator`]), and it is built unprefixed, so
//! it is the `malloc` of the C and C++ libraries too (RocksDB, libwebp, libjpeg-turbo,
//! libheif): the soak's measurement replaced every `malloc` (`LD_PRELOAD`), and RocksDB's
//! block cache and the codecs' buffers are a large share of what fragments. Its options are
//! read from `MALLOC_CONF` as in any jemalloc program.
//!
//! Its statistics split a process's resident set into what the program holds (`allocated`,
//! Rust and C alike) and what the allocator keeps mapped for reuse (`resident` minus
//! `allocated`), which is what a growing RSS needs to be read.

/// The global allocator the binaries install:
/// `#[global_allocator] static ALLOCATOR: Allocator = Allocator;`
pub use tikv_jemallocator::Jemalloc as Allocator;

/// jemalloc's totals, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AllocatorStats {
    /// bytes the program holds
    pub allocated: u64,
    /// bytes in pages the allocator has touched and not returned to the system
    pub resident: u64,
    /// bytes of address space kept for reuse without being resident
    pub retained: u64,
}

/// jemalloc's totals now, or `None` when nothing was allocated through it (a platform where
/// it is not the `malloc`) or its statistics cannot be read.
pub fn allocator_stats() -> Option<AllocatorStats> {
    use tikv_jemalloc_ctl::{epoch, stats};
    // The totals are cached; advancing the epoch refreshes them.
    epoch::advance().ok()?;
    let allocated = stats::allocated::read().ok()? as u64;
    if allocated == 0 {
        return None;
    }
    Some(AllocatorStats {
        allocated,
        resident: stats::resident::read().ok()? as u64,
        retained: stats::retained::read().ok()? as u64,
    })
}
