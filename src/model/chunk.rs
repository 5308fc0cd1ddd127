//! Block volumes' chunk sizes: what the config accepts and what the block layer scans, sends
//! and journals by, so both read one rule.

/// The default change-detection granularity: 4 KiB, the unit VMs and filesystems write in.
/// Chosen by measurement: scattered 4 KiB writes dirty a whole chunk each, so larger chunks
/// multiply the bytes sent (16× at 64 KiB), while scripts/bench-block.sh shows xxh3 scanning
/// 4 KiB chunks at or above b3sum's single-thread rate per core.
pub const DEFAULT_CHUNK: u32 = 4096;
/// Chunk sizes are multiples of this (the smallest, and the usual page and sector size).
pub const CHUNK_GRANULE: u32 = 4096;
/// The largest chunk size accepted (bounds what one chunk frame or journal record may carry).
pub const MAX_CHUNK: u32 = 16 * 1024 * 1024;

/// A chunk size the block layer can use: a non-zero multiple of `CHUNK_GRANULE`, at most
/// `MAX_CHUNK`.
pub fn chunk_size_ok(size: u32) -> bool {
    size != 0 && size.is_multiple_of(CHUNK_GRANULE) && size <= MAX_CHUNK
}
