//! How a pass is tuned (sizes, parallelism, the shared rate limit) and where it counts what it
//! moves: what the pass, the copy and the engine share, in a file of its own below them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::bwlimit::RateLimit;

/// Tuning of a pass.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// Objects at least this big go multipart.
    pub multipart_threshold: u64,
    pub part_size: usize,
    /// Parts of one object in flight at once.
    pub parallel_parts: usize,
    /// Objects copied at once.
    pub parallel_objects: usize,
    /// Shared byte-rate limit over every copy stream.
    pub bwlimit: Option<Arc<RateLimit>>,
    /// Where the pass counts what it moves, for a job's progress.
    pub progress: PassProgress,
}

/// A pass's figures as it goes: bytes copied, and changes applied of those to apply.
#[derive(Debug, Clone, Default)]
pub struct PassProgress {
    pub bytes: crate::transport::Meter,
    pub done: Arc<AtomicU64>,
    pub total: Arc<AtomicU64>,
    /// Bytes the copies found to do will move (their sizes in the source's listing).
    pub expected: Arc<AtomicU64>,
    /// The listings are read and the changes journaled: copying has begun.
    pub applying: Arc<std::sync::atomic::AtomicBool>,
}

impl PassProgress {
    /// (changes applied, changes to apply) so far.
    pub fn objects(&self) -> (u64, u64) {
        (self.done.load(Ordering::Relaxed), self.total.load(Ordering::Relaxed))
    }
}

impl Default for SyncOptions {
    fn default() -> SyncOptions {
        SyncOptions {
            multipart_threshold: 16 << 20,
            part_size: 8 << 20,
            parallel_parts: 4,
            parallel_objects: 32,
            bwlimit: None,
            progress: PassProgress::default(),
        }
    }
}
