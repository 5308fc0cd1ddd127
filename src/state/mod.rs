//! The state dir: one folder per pair fingerprint holding its lock, log, progress and last result.
//! Every file here is readable by any process, so `runstatus` and the console see every job.
//! Every durable record ferry keeps lives in this layer: the checksummed record file (`records`)
//! and the two journals written in it, an object pair's per-key status (`object_journal`) and a
//! cluster's change journal (`cluster_journal`).

pub mod caps;
pub mod cluster_journal;
pub mod files;
pub mod last;
pub mod lock;
pub mod log;
pub mod object_journal;
pub mod progress;
pub mod records;

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// A pair's lock file in its folder.
const LOCK: &str = "lock";

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

    /// Creates the state dir if missing, and refuses one that another user could plant files in
    /// (owned by someone else, or writable by every user).
    pub fn check(&self) -> Result<()> {
        if !self.root.exists() {
            files::create_dirs(&self.root)?;
        }
        // the root may be a symlink an administrator made; what it points to is what counts
        let meta = std::fs::metadata(&self.root).with_context(|| format!("state dir {}", self.root.display()))?;
        files::check_dir(&self.root, &meta)
    }

    /// The folder of one pair, created if missing, after checking the state dir. A pair folder
    /// must be a real directory (not a symlink) of this user or root, not writable by everyone.
    pub fn ensure_pair_dir(&self, fp: &str) -> Result<PathBuf> {
        if fp.is_empty() || fp.contains('/') || fp.starts_with('.') {
            bail!("invalid fingerprint {fp:?} for a state folder");
        }
        self.check()?;
        let dir = self.pair_dir(fp);
        match std::fs::DirBuilder::new().mode(files::DIR_MODE).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e).with_context(|| format!("creating state dir {}", dir.display())),
        }
        let meta = std::fs::symlink_metadata(&dir).with_context(|| format!("state dir {}", dir.display()))?;
        files::check_dir(&dir, &meta)?;
        Ok(dir)
    }

    pub fn lock_path(&self, fp: &str) -> PathBuf {
        self.pair_dir(fp).join(LOCK)
    }

    /// Fingerprints of the pairs whose lock file is there (held or stale), in one directory read:
    /// observers look closer only at those.
    pub fn locked_pairs(&self) -> std::collections::HashSet<String> {
        std::fs::read_dir(self.root())
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .filter(|e| e.path().join(LOCK).exists())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
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

    /// Snapshots retention could not destroy, and since when (absent when none were left).
    pub fn retention_path(&self, fp: &str) -> PathBuf {
        self.pair_dir(fp).join("retention.json")
    }

    /// The last job that succeeded (`last.json` holds the last one, failed or not).
    pub fn success_path(&self, fp: &str) -> PathBuf {
        self.pair_dir(fp).join("success.json")
    }
}

/// Writes a file atomically (see `files::write_atomic`): readers never see half of it, and two
/// writers never share a temp file.
pub fn write_atomic(path: &Path, bytes: &[u8], durable: bool) -> std::io::Result<()> {
    files::write_atomic(path, bytes, durable)
}

/// Seconds since the Unix epoch.
pub fn now_unix() -> i64 {
    chrono::Utc::now().timestamp()
}
