//! Scanning a source (a file or a block device) into a manifest: every byte read exactly once,
//! segments read and hashed in parallel on every core, each chunk handed to a callback so an
//! update can send what changed from the same single read.

use super::{check_chunk_size, chunk_count, Digest, HashAlgo, Manifest, ManifestError};
use rayon::prelude::*;
use std::fs::File;
use std::io::{Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// Bytes one worker reads in one go (a multiple of the chunk size is used). Small enough that
/// what was just copied from the page cache is still in the core's cache when it is hashed
/// (4 MiB segments cost up to a third more CPU per byte in scripts/bench-block.sh runs).
const SEGMENT: u64 = 1024 * 1024;

/// What a scan read and how long it took.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScanStats {
    pub bytes_read: u64,
    pub chunks: u64,
    pub elapsed: Duration,
}

/// Size of a file or block device (block devices report 0 in metadata; seeking to the end works).
pub fn source_size(path: &Path) -> Result<u64, ManifestError> {
    let mut f = File::open(path).map_err(|source| ManifestError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    f.seek(SeekFrom::End(0)).map_err(|source| ManifestError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Scans `path` into a manifest.
pub fn scan(path: &Path, chunk_size: u32, algo: HashAlgo) -> Result<(Manifest, ScanStats), ManifestError> {
    scan_with(path, chunk_size, algo, |_, _, _| Ok::<(), ManifestError>(()))
}

/// Scans `path`, calling `on_chunk(index, bytes, digest)` for every chunk (from worker threads,
/// in no particular order); its first error stops the scan and is returned.
pub fn scan_with<E, F>(path: &Path, chunk_size: u32, algo: HashAlgo, on_chunk: F) -> Result<(Manifest, ScanStats), E>
where
    E: From<ManifestError> + Send,
    F: Fn(u64, &[u8], &Digest) -> Result<(), E> + Sync,
{
    scan_prefix_with(path, None, chunk_size, algo, on_chunk)
}

/// `scan_with` over the first `limit` bytes only (a replica on a block device larger than its
/// source holds the source's bytes first); `None` reads to the end.
pub fn scan_prefix_with<E, F>(
    path: &Path,
    limit: Option<u64>,
    chunk_size: u32,
    algo: HashAlgo,
    on_chunk: F,
) -> Result<(Manifest, ScanStats), E>
where
    E: From<ManifestError> + Send,
    F: Fn(u64, &[u8], &Digest) -> Result<(), E> + Sync,
{
    check_chunk_size(chunk_size)?;
    let started = Instant::now();
    let io = |source| ManifestError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(io)?;
    let size = file.seek(SeekFrom::End(0)).map_err(io)?;
    let size = match limit {
        Some(l) if l > size => {
            return Err(ManifestError::SourceShrank {
                path: path.to_path_buf(),
                expected: l,
                got: size,
            }
            .into())
        }
        Some(l) => l,
        None => size,
    };
    let chunk = u64::from(chunk_size);
    let seg = (SEGMENT / chunk).max(1) * chunk;
    let segments = size.div_ceil(seg);
    let file = &file;
    let parts: Vec<Vec<Digest>> = (0..segments)
        .into_par_iter()
        .map_init(
            || vec![0u8; seg as usize],
            |buf, s| -> Result<Vec<Digest>, E> {
                let start = s * seg;
                let len = (size - start).min(seg) as usize;
                read_exact_at(file, &mut buf[..len], start, path, size)?;
                let mut out = Vec::with_capacity(len.div_ceil(chunk_size as usize));
                for (i, data) in buf[..len].chunks(chunk_size as usize).enumerate() {
                    let d = algo.hash(data);
                    on_chunk(start / chunk + i as u64, data, &d)?;
                    out.push(d);
                }
                Ok(out)
            },
        )
        .collect::<Result<_, E>>()?;
    let digests: Vec<Digest> = parts.into_iter().flatten().collect();
    debug_assert_eq!(digests.len() as u64, chunk_count(size, chunk_size));
    let stats = ScanStats {
        bytes_read: size,
        chunks: digests.len() as u64,
        elapsed: started.elapsed(),
    };
    Ok((
        Manifest {
            algo,
            chunk_size,
            source_size: size,
            digests,
        },
        stats,
    ))
}

/// Reads exactly `buf.len()` bytes at `offset`; a source that ends early shrank under us.
fn read_exact_at(file: &File, buf: &mut [u8], offset: u64, path: &Path, size: u64) -> Result<(), ManifestError> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => {
                return Err(ManifestError::SourceShrank {
                    path: path.to_path_buf(),
                    expected: size,
                    got: offset + done as u64,
                })
            }
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(source) => {
                return Err(ManifestError::Io {
                    path: path.to_path_buf(),
                    source,
                })
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    #[test]
    fn scan_matches_a_straight_hash_of_each_chunk_with_a_short_tail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("img");
        // 9 MiB + 123 bytes: several segments, a short last chunk.
        let data: Vec<u8> = (0..9 * 1024 * 1024 + 123u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        std::fs::write(&path, &data).unwrap();
        for algo in [HashAlgo::Blake3, HashAlgo::Xxh3] {
            for chunk in [4096u32, 65536, 1 << 20] {
                let (m, stats) = scan(&path, chunk, algo).unwrap();
                let want: Vec<Digest> = data.chunks(chunk as usize).map(|c| algo.hash(c)).collect();
                assert_eq!(m.digests, want, "{} chunk {chunk}", algo.name());
                assert_eq!(m.source_size, data.len() as u64);
                assert_eq!(stats.bytes_read, data.len() as u64);
            }
        }
    }

    #[test]
    fn callback_sees_every_chunk_once_and_its_error_stops_the_scan() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("img");
        std::fs::write(&path, vec![7u8; 5 * 4096 + 1]).unwrap();
        let seen = Mutex::new(Vec::new());
        let (m, _) = scan_with(&path, 4096, HashAlgo::Blake3, |i, data, d| {
            assert_eq!(&HashAlgo::Blake3.hash(data), d);
            seen.lock().unwrap().push(i);
            Ok::<(), ManifestError>(())
        })
        .unwrap();
        let mut seen = seen.into_inner().unwrap();
        seen.sort();
        assert_eq!(seen, (0..6).collect::<Vec<u64>>());
        assert_eq!(m.digests.len(), 6);
        let err = scan_with(&path, 4096, HashAlgo::Blake3, |i, _, _| {
            if i == 3 {
                Err(ManifestError::BadChunkSize { size: 3 })
            } else {
                Ok(())
            }
        });
        assert!(matches!(err, Err(ManifestError::BadChunkSize { size: 3 })));
    }

    #[test]
    fn empty_source_missing_source_and_bad_chunk_are_clear() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty");
        std::fs::write(&path, b"").unwrap();
        let (m, _) = scan(&path, 4096, HashAlgo::Blake3).unwrap();
        assert!(m.digests.is_empty());
        let missing = dir.path().join("nope");
        let err = scan(&missing, 4096, HashAlgo::Blake3).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
        assert!(matches!(
            scan(&path, 5000, HashAlgo::Blake3),
            Err(ManifestError::BadChunkSize { size: 5000 })
        ));
    }
}
