//! Comparing two manifests: the runs of chunks that changed (or were added by growth).

use super::{scan, Manifest, ManifestError};
use std::path::Path;

/// A run of changed chunks `[start, end)` (chunk indexes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChunkRange {
    pub start: u64,
    pub end: u64,
}

impl ChunkRange {
    /// Byte range `[start, end)` of this run in a source of `size` bytes cut into `chunk` chunks.
    pub fn bytes(&self, chunk: u32, size: u64) -> (u64, u64) {
        let c = u64::from(chunk);
        ((self.start * c).min(size), (self.end * c).min(size))
    }
}

/// The chunks of `new` that differ from `old` (chunks past the end of `old` count as changed),
/// coalesced into runs. A shrink is not a diff: the caller refuses it; here the chunks that
/// remain are compared. Both must share chunk size and algorithm.
pub fn diff(old: &Manifest, new: &Manifest) -> Result<Vec<ChunkRange>, ManifestError> {
    if old.chunk_size != new.chunk_size {
        return Err(ManifestError::Incompatible {
            what: "chunk size",
            ours: old.chunk_size.to_string(),
            theirs: new.chunk_size.to_string(),
        });
    }
    if old.algo != new.algo {
        return Err(ManifestError::Incompatible {
            what: "hash algorithm",
            ours: old.algo.name().into(),
            theirs: new.algo.name().into(),
        });
    }
    let mut out: Vec<ChunkRange> = Vec::new();
    for (i, d) in new.digests.iter().enumerate() {
        let i = i as u64;
        // A grown short tail chunk differs in its digest too: its bytes (and length) changed.
        if old.digests.get(i as usize) == Some(d) {
            continue;
        }
        match out.last_mut() {
            Some(r) if r.end == i => r.end = i + 1,
            _ => out.push(ChunkRange { start: i, end: i + 1 }),
        }
    }
    Ok(out)
}

/// Scans `path` afresh (one read) with `old`'s chunking and compares: the new manifest and the
/// runs of chunks that differ from `old` (what `verify` reports, what an update must send).
pub fn diff_against_source(old: &Manifest, path: &Path) -> Result<(Manifest, Vec<ChunkRange>), ManifestError> {
    let (fresh, _) = scan(path, old.chunk_size, old.algo)?;
    let runs = diff(old, &fresh)?;
    Ok((fresh, runs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::block::{scan, HashAlgo};
    use std::os::unix::fs::FileExt;

    #[test]
    fn diff_of_a_rescan_finds_exactly_the_rewritten_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("img");
        std::fs::write(&path, vec![1u8; 64 * 4096]).unwrap();
        let (old, _) = scan(&path, 4096, HashAlgo::Blake3).unwrap();
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        for chunk in [0u64, 5, 6, 7, 63] {
            f.write_at(b"x", chunk * 4096 + 17).unwrap();
        }
        f.sync_all().unwrap();
        let (new, _) = scan(&path, 4096, HashAlgo::Blake3).unwrap();
        let runs = diff(&old, &new).unwrap();
        assert_eq!(
            runs,
            vec![
                ChunkRange { start: 0, end: 1 },
                ChunkRange { start: 5, end: 8 },
                ChunkRange { start: 63, end: 64 }
            ]
        );
        assert_eq!(runs[1].bytes(4096, new.source_size), (5 * 4096, 8 * 4096));
        assert!(diff(&new, &new).unwrap().is_empty());
    }

    #[test]
    fn a_flipped_byte_on_a_copy_is_found_against_the_manifest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("img");
        std::fs::write(&path, vec![3u8; 10 * 65536]).unwrap();
        let (m, _) = scan(&path, 65536, HashAlgo::Xxh3).unwrap();
        assert!(diff_against_source(&m, &path).unwrap().1.is_empty());
        let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        f.write_at(&[4], 7 * 65536 + 65535).unwrap();
        f.sync_all().unwrap();
        let (fresh, runs) = diff_against_source(&m, &path).unwrap();
        assert_eq!(runs, vec![ChunkRange { start: 7, end: 8 }]);
        assert_ne!(fresh.digests[7], m.digests[7]);
    }

    #[test]
    fn growth_marks_the_old_tail_and_new_chunks_changed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("img");
        std::fs::write(&path, vec![2u8; 3 * 4096 + 10]).unwrap();
        let (old, _) = scan(&path, 4096, HashAlgo::Xxh3).unwrap();
        std::fs::write(&path, vec![2u8; 6 * 4096]).unwrap();
        let (new, _) = scan(&path, 4096, HashAlgo::Xxh3).unwrap();
        assert_eq!(diff(&old, &new).unwrap(), vec![ChunkRange { start: 3, end: 6 }]);
    }

    #[test]
    fn incompatible_manifests_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("img");
        std::fs::write(&path, vec![0u8; 8192]).unwrap();
        let (a, _) = scan(&path, 4096, HashAlgo::Blake3).unwrap();
        let (b, _) = scan(&path, 8192, HashAlgo::Blake3).unwrap();
        let (c, _) = scan(&path, 4096, HashAlgo::Xxh3).unwrap();
        assert!(matches!(
            diff(&a, &b),
            Err(ManifestError::Incompatible { what: "chunk size", .. })
        ));
        assert!(matches!(
            diff(&a, &c),
            Err(ManifestError::Incompatible {
                what: "hash algorithm",
                ..
            })
        ));
    }
}
