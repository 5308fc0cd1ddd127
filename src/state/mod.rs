//! The state dir: one folder per pair fingerprint holding its lock, log, progress and last result.
//! Every file here is readable by any process, so `runstatus` and the console see every job.

pub mod last;
pub mod lock;
pub mod log;
pub mod progress;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

#[derive(Debug, Clone)]
pub struct StateDir {
    root: PathBuf,
}

impl StateDir {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        StateDir { root: root.into() }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The folder of one pair (not created).
    pub fn pair_dir(&self, fp: &str) -> PathBuf {
        self.root.join(fp)
    }

    /// The folder of one pair, created if missing.
    pub fn ensure_pair_dir(&self, fp: &str) -> Result<PathBuf> {
        let dir = self.pair_dir(fp);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating state dir {}", dir.display()))?;
        Ok(dir)
    }

    pub fn lock_path(&self, fp: &str) -> PathBuf {
        self.pair_dir(fp).join("lock")
    }

    pub fn log_path(&self, fp: &str) -> PathBuf {
        self.pair_dir(fp).join("log")
    }

    pub fn progress_path(&self, fp: &str) -> PathBuf {
        self.pair_dir(fp).join("progress.json")
    }

    pub fn last_path(&self, fp: &str) -> PathBuf {
        self.pair_dir(fp).join("last.json")
    }

    /// The last job that succeeded (`last.json` holds the last one, failed or not).
    pub fn success_path(&self, fp: &str) -> PathBuf {
        self.pair_dir(fp).join("success.json")
    }
}

/// Writes a file atomically (temp file + rename), so readers never see half of it.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp.{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

/// Seconds since the Unix epoch.
pub fn now_unix() -> i64 {
    chrono::Utc::now().timestamp()
}
