//! The manifest: per-chunk digests of a source at a checkpoint, and its compact on-disk format
//! (header, digests, BLAKE3 trailer), written atomically and durably.
//!
//! Layout (integers little-endian): magic `FERRYMAN` (8) | version u16 | algo u8 | reserved u8 |
//! chunk size u32 | source size u64 | chunk count u64 | digests (count × digest length) |
//! BLAKE3 of everything before it (32). The trailer doubles as the manifest's id.

use super::{check_chunk_size, chunk_count, Digest, HashAlgo};
use std::path::{Path, PathBuf};

const MAGIC: &[u8; 8] = b"FERRYMAN";
/// The on-disk format version this build reads and writes.
pub const VERSION: u16 = 1;
const HEADER_LEN: usize = 8 + 2 + 1 + 1 + 4 + 8 + 8;

/// Errors reading, writing, scanning or comparing manifests.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("chunk size {size} is not a multiple of 4096 between 4 KiB and 16 MiB")]
    BadChunkSize { size: u32 },
    #[error("{path}: not a ferry manifest (bad magic)")]
    BadMagic { path: PathBuf },
    #[error("{path}: manifest format version {version} is not supported (this build reads {VERSION})")]
    UnsupportedVersion { path: PathBuf, version: u16 },
    #[error("{path}: unknown hash algorithm code {code}")]
    UnknownAlgo { path: PathBuf, code: u8 },
    #[error("{path}: manifest is {got} bytes, expected {expected} for its header")]
    Length { path: PathBuf, expected: u64, got: u64 },
    #[error("{path}: manifest checksum mismatch (corrupted)")]
    Checksum { path: PathBuf },
    #[error("{path}: source shrank from {expected} to {got} bytes while being read")]
    SourceShrank { path: PathBuf, expected: u64, got: u64 },
    #[error("manifests differ in {what}: {ours} vs {theirs}; compare manifests of one chunk size and algorithm")]
    Incompatible {
        what: &'static str,
        ours: String,
        theirs: String,
    },
}

/// Per-chunk digests of `source_size` bytes cut into `chunk_size` chunks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Manifest {
    pub algo: HashAlgo,
    pub chunk_size: u32,
    pub source_size: u64,
    pub digests: Vec<Digest>,
}

impl Manifest {
    /// Encodes the manifest in its on-disk format.
    pub fn encode(&self) -> Vec<u8> {
        let dl = self.algo.digest_len();
        let mut out = Vec::with_capacity(HEADER_LEN + self.digests.len() * dl + 32);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        out.push(self.algo.code());
        out.push(0);
        out.extend_from_slice(&self.chunk_size.to_le_bytes());
        out.extend_from_slice(&self.source_size.to_le_bytes());
        out.extend_from_slice(&(self.digests.len() as u64).to_le_bytes());
        for d in &self.digests {
            out.extend_from_slice(&d.0[..dl]);
        }
        let sum = blake3::hash(&out);
        out.extend_from_slice(sum.as_bytes());
        out
    }

    /// The manifest's id: the BLAKE3 trailer of its encoding (what a journal's commit names).
    pub fn id(&self) -> [u8; 32] {
        let bytes = self.encode();
        let mut id = [0u8; 32];
        id.copy_from_slice(&bytes[bytes.len() - 32..]);
        id
    }

    /// Decodes an encoded manifest; `path` names it in errors.
    pub fn decode(bytes: &[u8], path: &Path) -> Result<Manifest, ManifestError> {
        let p = || path.to_path_buf();
        if bytes.len() < HEADER_LEN + 32 {
            return Err(ManifestError::Length {
                path: p(),
                expected: (HEADER_LEN + 32) as u64,
                got: bytes.len() as u64,
            });
        }
        if &bytes[..8] != MAGIC {
            return Err(ManifestError::BadMagic { path: p() });
        }
        let version = u16::from_le_bytes([bytes[8], bytes[9]]);
        if version != VERSION {
            return Err(ManifestError::UnsupportedVersion { path: p(), version });
        }
        let algo = HashAlgo::from_code(bytes[10]).ok_or(ManifestError::UnknownAlgo {
            path: p(),
            code: bytes[10],
        })?;
        let chunk_size = u32::from_le_bytes(le(&bytes[12..16]));
        check_chunk_size(chunk_size)?;
        let source_size = u64::from_le_bytes(le(&bytes[16..24]));
        let count = u64::from_le_bytes(le(&bytes[24..32]));
        let dl = algo.digest_len() as u64;
        // The count must match the size, so a lying header can't make us read past the end.
        let expected = chunk_count(source_size, chunk_size)
            .checked_mul(dl)
            .and_then(|n| n.checked_add((HEADER_LEN + 32) as u64));
        if count != chunk_count(source_size, chunk_size) || expected != Some(bytes.len() as u64) {
            return Err(ManifestError::Length {
                path: p(),
                expected: expected.unwrap_or(u64::MAX),
                got: bytes.len() as u64,
            });
        }
        let body = &bytes[..bytes.len() - 32];
        if blake3::hash(body).as_bytes() != &bytes[bytes.len() - 32..] {
            return Err(ManifestError::Checksum { path: p() });
        }
        let digests = body[HEADER_LEN..]
            .chunks_exact(dl as usize)
            .map(|c| {
                let mut d = [0u8; 32];
                d[..c.len()].copy_from_slice(c);
                Digest(d)
            })
            .collect();
        Ok(Manifest {
            algo,
            chunk_size,
            source_size,
            digests,
        })
    }

    /// Writes the manifest atomically and durably: temp file, fsync, rename, fsync of the dir.
    pub fn write(&self, path: &Path) -> Result<(), ManifestError> {
        crate::state::write_atomic(path, &self.encode(), true).map_err(|source| ManifestError::Io {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Reads and checks a manifest file.
    pub fn read(path: &Path) -> Result<Manifest, ManifestError> {
        let bytes = std::fs::read(path).map_err(|source| ManifestError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Manifest::decode(&bytes, path)
    }

    /// Byte range of chunk `index` in the source.
    pub fn chunk_span(&self, index: u64) -> (u64, usize) {
        let start = index * u64::from(self.chunk_size);
        let len = (self.source_size - start).min(u64::from(self.chunk_size));
        (start, len as usize)
    }
}

fn le<const N: usize>(s: &[u8]) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(s);
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(algo: HashAlgo) -> Manifest {
        let digests = (0..5u8).map(|i| algo.hash(&[i])).collect();
        Manifest {
            algo,
            chunk_size: 4096,
            source_size: 4 * 4096 + 100,
            digests,
        }
    }

    #[test]
    fn encode_decode_round_trip_and_size_is_compact() {
        for algo in [HashAlgo::Blake3, HashAlgo::Xxh3] {
            let m = sample(algo);
            let bytes = m.encode();
            assert_eq!(bytes.len(), HEADER_LEN + 5 * algo.digest_len() + 32);
            assert_eq!(Manifest::decode(&bytes, Path::new("m")).unwrap(), m);
        }
    }

    #[test]
    fn corrupt_manifests_are_refused_with_typed_errors() {
        let good = sample(HashAlgo::Blake3).encode();
        let p = Path::new("m");
        let mut bad = good.clone();
        bad[0] = b'X';
        assert!(matches!(Manifest::decode(&bad, p), Err(ManifestError::BadMagic { .. })));
        let mut bad = good.clone();
        bad[8] = 9;
        assert!(matches!(
            Manifest::decode(&bad, p),
            Err(ManifestError::UnsupportedVersion { version: 9, .. })
        ));
        let mut bad = good.clone();
        bad[10] = 7;
        assert!(matches!(
            Manifest::decode(&bad, p),
            Err(ManifestError::UnknownAlgo { code: 7, .. })
        ));
        let mut bad = good.clone();
        bad[HEADER_LEN + 3] ^= 1;
        assert!(matches!(Manifest::decode(&bad, p), Err(ManifestError::Checksum { .. })));
        assert!(matches!(
            Manifest::decode(&good[..good.len() - 1], p),
            Err(ManifestError::Length { .. })
        ));
        // A header claiming a huge source must not be believed (no huge allocation, no panic).
        let mut bad = good.clone();
        bad[16..24].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(matches!(Manifest::decode(&bad, p), Err(ManifestError::Length { .. })));
        let mut bad = good;
        bad[12..16].copy_from_slice(&1000u32.to_le_bytes());
        assert!(matches!(
            Manifest::decode(&bad, p),
            Err(ManifestError::BadChunkSize { size: 1000 })
        ));
    }

    #[test]
    fn write_is_atomic_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("vm1.manifest");
        let m = sample(HashAlgo::Xxh3);
        m.write(&path).unwrap();
        sample(HashAlgo::Blake3).write(&path).unwrap();
        assert_eq!(Manifest::read(&path).unwrap(), sample(HashAlgo::Blake3));
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("vm1.manifest")]);
        assert_ne!(m.id(), sample(HashAlgo::Blake3).id());
    }
}
