//! Helpers shared by the block tests: deterministic pseudo-random data, file hashes, loop
//! devices that detach themselves, state-dir listings.
#![allow(dead_code)]

use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// xorshift64*: reproducible pseudo-random numbers without a dependency.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn fill(&mut self, buf: &mut [u8]) {
        for c in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            c.copy_from_slice(&v[..c.len()]);
        }
    }
}

/// Writes `size` pseudo-random bytes to `path`.
pub fn write_random(path: &Path, size: usize, seed: u64) {
    let mut buf = vec![0u8; size];
    Rng(seed | 1).fill(&mut buf);
    std::fs::write(path, &buf).unwrap();
}

/// Overwrites `count` distinct 4 KiB chunks of `path` at random; returns their indexes.
pub fn scatter_writes(path: &Path, count: usize, seed: u64) -> Vec<u64> {
    let mut f = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    // Devices report no length in their metadata; seeking to the end works for both.
    let chunks = std::io::Seek::seek(&mut f, std::io::SeekFrom::End(0)).unwrap() / 4096;
    let mut rng = Rng(seed | 1);
    let mut picked = std::collections::BTreeSet::new();
    while picked.len() < count {
        picked.insert(rng.below(chunks));
    }
    let mut buf = vec![0u8; 4096];
    for &i in &picked {
        rng.fill(&mut buf);
        f.write_all_at(&buf, i * 4096).unwrap();
    }
    f.sync_all().unwrap();
    picked.into_iter().collect()
}

/// BLAKE3 of the first `len` bytes of a file or device (all of it when `None`).
pub fn hash_file(path: &Path, len: Option<u64>) -> (u64, [u8; 32]) {
    let data = std::fs::read(path).unwrap();
    let n = len.map(|l| l as usize).unwrap_or(data.len()).min(data.len());
    (n as u64, *blake3::hash(&data[..n]).as_bytes())
}

/// Names in a dir, sorted.
pub fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// A loop device over a backing file, detached on drop.
pub struct Loop {
    pub dev: PathBuf,
}

impl Loop {
    /// Attaches `backing`; the block tests need root and loop devices (they fail, not skip).
    pub fn attach(backing: &Path) -> Loop {
        let out = Command::new("losetup")
            .args(["-f", "--show"])
            .arg(backing)
            .output()
            .expect("losetup (util-linux) must be installed for the block device tests");
        assert!(
            out.status.success(),
            "losetup failed (the block tests need root and loop devices): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Loop {
            dev: PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()),
        }
    }
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").arg("-d").arg(&self.dev).status();
    }
}
