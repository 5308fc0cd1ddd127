//! The per-pair lock: a file that names its job, held with flock(2) while the job lives.
//!
//! The file stays behind if the job dies (the pair may be inconsistent: an operator decides with
//! `unlock`), but the flock goes with the process, so a live job (Running) and a dead job's lock
//! (Locked) are told apart without trusting pids.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// What the lock file says about its job.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LockInfo {
    pub pid: u32,
    pub action: String,
    /// Unix seconds.
    pub started: i64,
}

/// The lock's state as another process sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockState {
    Free,
    /// Held by a live job.
    Running(LockInfo),
    /// Left by a job that died.
    Stale(Option<LockInfo>),
}

/// A held lock; dropping it without `release` keeps the file (as a crash would).
pub struct Lock {
    path: PathBuf,
    _file: File,
    pub info: LockInfo,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("already running: {} (pid {}) since {}", .0.action, .0.pid, fmt_time(.0.started))]
    Running(LockInfo),
    #[error("locked by a job that did not finish{}; the pair may be inconsistent: check it, then run `ferry unlock`", stale_detail(.0))]
    Stale(Option<LockInfo>),
    #[error("lock {path}: {err}")]
    Io { path: String, err: std::io::Error },
}

fn stale_detail(i: &Option<LockInfo>) -> String {
    match i {
        Some(i) => format!(" ({} by pid {} at {})", i.action, i.pid, fmt_time(i.started)),
        None => String::new(),
    }
}

fn fmt_time(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%Y-%m-%d %H:%M:%SZ").to_string())
        .unwrap_or_else(|| t.to_string())
}

fn try_flock(f: &File) -> bool {
    // SAFETY: flock on a valid open descriptor; no memory is shared.
    unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

fn io_err(path: &Path, err: std::io::Error) -> LockError {
    LockError::Io {
        path: path.display().to_string(),
        err,
    }
}

/// Takes the lock at `path` for `action`.
pub fn acquire(path: &Path, action: &str) -> Result<Lock, LockError> {
    let info = LockInfo {
        pid: std::process::id(),
        action: action.to_string(),
        started: super::now_unix(),
    };
    // Write and flock a private file first, then link it into place: the lock file never exists
    // unlocked or half-written, so no reader mistakes a starting job for a dead one.
    let tmp = path.with_extension(format!("new.{}", info.pid));
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(|e| io_err(&tmp, e))?;
    if !try_flock(&f) {
        let _ = std::fs::remove_file(&tmp);
        return Err(io_err(&tmp, std::io::Error::other("cannot flock a new file")));
    }
    let body = serde_json::to_vec(&info).expect("lock info serializes");
    f.write_all(&body)
        .and_then(|_| f.sync_all())
        .map_err(|e| io_err(&tmp, e))?;
    let linked = std::fs::hard_link(&tmp, path);
    let _ = std::fs::remove_file(&tmp);
    match linked {
        Ok(()) => Ok(Lock {
            path: path.to_path_buf(),
            _file: f,
            info,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => match inspect(path) {
            LockState::Running(i) => Err(LockError::Running(i)),
            LockState::Stale(i) => Err(LockError::Stale(i)),
            // released between our link and our look: try once more
            LockState::Free => acquire(path, action),
        },
        Err(e) => Err(io_err(path, e)),
    }
}

/// Reads the lock's state without taking it.
pub fn inspect(path: &Path) -> LockState {
    let f = match File::open(path) {
        Ok(f) => f,
        Err(_) => return LockState::Free,
    };
    let info: Option<LockInfo> = std::fs::read(path).ok().and_then(|b| serde_json::from_slice(&b).ok());
    if try_flock(&f) {
        // nobody holds it: a dead job's lock. Our probe flock goes when `f` closes.
        LockState::Stale(info)
    } else {
        match info {
            Some(i) => LockState::Running(i),
            None => LockState::Running(LockInfo {
                pid: 0,
                action: "unknown".into(),
                started: 0,
            }),
        }
    }
}

/// Removes a stale lock. Refuses while a live job holds it.
pub fn unlock(path: &Path) -> Result<Option<LockInfo>, LockError> {
    match inspect(path) {
        LockState::Free => Ok(None),
        LockState::Running(i) => Err(LockError::Running(i)),
        LockState::Stale(i) => {
            std::fs::remove_file(path).map_err(|e| io_err(path, e))?;
            Ok(i)
        }
    }
}

impl Lock {
    /// Ends the job normally: the lock file goes, then the flock with the descriptor.
    pub fn release(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_acquire_sees_running_and_release_frees() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("lock");
        let l = acquire(&p, "update").unwrap();
        // flock is per open file description, so a second open in this process conflicts too
        match acquire(&p, "update") {
            Err(LockError::Running(i)) => assert_eq!(i.action, "update"),
            other => panic!("expected Running, got {:?}", other.err()),
        }
        assert!(matches!(inspect(&p), LockState::Running(_)));
        assert!(unlock(&p).is_err());
        l.release();
        assert_eq!(inspect(&p), LockState::Free);
    }

    #[test]
    fn dropped_lock_is_stale_until_unlocked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("lock");
        drop(acquire(&p, "initialize").unwrap());
        match inspect(&p) {
            LockState::Stale(Some(i)) => assert_eq!(i.action, "initialize"),
            other => panic!("expected Stale, got {other:?}"),
        }
        assert!(matches!(acquire(&p, "update"), Err(LockError::Stale(_))));
        assert_eq!(unlock(&p).unwrap().unwrap().action, "initialize");
        assert!(acquire(&p, "update").is_ok());
    }
}
