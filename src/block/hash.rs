//! Chunk hash algorithms (BLAKE3, xxh3-128) and the fixed-size digest they produce.

use std::fmt;

/// A chunk digest: 32 bytes; algorithms with shorter outputs leave the tail zero.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Digest(pub [u8; 32]);

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", hex::encode(&self.0[..8]))
    }
}

/// The hash algorithm of a manifest, stored in its header as `code()`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HashAlgo {
    /// BLAKE3 (cryptographic, 256-bit): the default; a source can't forge a collision.
    Blake3,
    /// XXH3-128 (non-cryptographic): faster per core, fine against accidental change only.
    Xxh3,
}

impl HashAlgo {
    /// The byte that names the algorithm on disk and on the wire.
    pub fn code(self) -> u8 {
        match self {
            HashAlgo::Blake3 => 1,
            HashAlgo::Xxh3 => 2,
        }
    }

    /// The algorithm named by `code`, if any.
    pub fn from_code(code: u8) -> Option<HashAlgo> {
        match code {
            1 => Some(HashAlgo::Blake3),
            2 => Some(HashAlgo::Xxh3),
            _ => None,
        }
    }

    /// Bytes of a digest kept on disk and on the wire.
    pub fn digest_len(self) -> usize {
        match self {
            HashAlgo::Blake3 => 32,
            HashAlgo::Xxh3 => 16,
        }
    }

    /// The algorithm `name()` names.
    pub fn from_name(name: &str) -> Option<HashAlgo> {
        [HashAlgo::Blake3, HashAlgo::Xxh3]
            .into_iter()
            .find(|a| a.name() == name)
    }

    /// The name used in messages and benchmarks.
    pub fn name(self) -> &'static str {
        match self {
            HashAlgo::Blake3 => "blake3",
            HashAlgo::Xxh3 => "xxh3",
        }
    }

    /// Hashes one chunk on the calling thread (scans parallelise across chunks, not inside one).
    pub fn hash(self, data: &[u8]) -> Digest {
        let mut out = [0u8; 32];
        match self {
            HashAlgo::Blake3 => out.copy_from_slice(blake3::hash(data).as_bytes()),
            HashAlgo::Xxh3 => out[..16].copy_from_slice(&xxhash_rust::xxh3::xxh3_128(data).to_le_bytes()),
        }
        Digest(out)
    }
}

impl std::str::FromStr for HashAlgo {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "blake3" => Ok(HashAlgo::Blake3),
            "xxh3" => Ok(HashAlgo::Xxh3),
            other => Err(format!("unknown hash algorithm {other:?} (expected blake3 or xxh3)")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_digests_differ_per_input() {
        for algo in [HashAlgo::Blake3, HashAlgo::Xxh3] {
            assert_eq!(HashAlgo::from_code(algo.code()), Some(algo));
            assert_eq!(algo.name().parse::<HashAlgo>(), Ok(algo));
            let a = algo.hash(b"a");
            assert_ne!(a, algo.hash(b"b"));
            assert_eq!(a, algo.hash(b"a"));
            assert!(a.0[algo.digest_len()..].iter().all(|&b| b == 0));
        }
        assert_eq!(HashAlgo::from_code(0), None);
        // The known BLAKE3 digest of the empty input pins the algorithm, not just determinism.
        assert_eq!(
            hex::encode(HashAlgo::Blake3.hash(b"").0),
            "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"
        );
    }
}
