//! The per-pair lock: a file that names its job, held with flock(2) while the job lives.
//!
//! The file stays behind if the job dies (the pair may be inconsistent: an operator decides with
//! `unlock`), but the flock goes with the process, so a live job (Running) and a dead job's lock
//! (Locked) are told apart without trusting pids.

use std::fs::File;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::files;

/// What the lock file says about its job.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LockInfo {
    pub pid: u32,
    pub action: String,
    /// Unix seconds.
    pub started: i64,
    /// The host the job runs on, where that is not this one to every reader (a lock held in the
    /// coordination engine); the local lock file leaves it out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

impl LockInfo {
    /// `pid N` or `pid N on HOST`.
    pub fn who(&self) -> String {
        match &self.host {
            Some(h) => format!("pid {} on {h}", self.pid),
            None => format!("pid {}", self.pid),
        }
    }
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
    file: File,
    pub info: LockInfo,
}

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("already running: {} ({}) since {}", .0.action, .0.who(), fmt_time(.0.started))]
    Running(LockInfo),
    #[error("locked by a job that did not finish{}; the pair may be inconsistent", stale_detail(.0))]
    Stale(Option<LockInfo>),
    /// Something ferry never writes sits where the lock belongs (planted, or a damaged state dir).
    #[error("lock {path} is {what}, not a lock file ferry wrote: check who put it there, then remove it by hand")]
    Foreign { path: String, what: String },
    #[error("lock {path}: {err}")]
    Io { path: String, err: std::io::Error },
}

fn stale_detail(i: &Option<LockInfo>) -> String {
    match i {
        Some(i) => format!(" ({} by {} at {})", i.action, i.who(), fmt_time(i.started)),
        None => String::new(),
    }
}

fn fmt_time(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%Y-%m-%d %H:%M:%SZ").to_string())
        .unwrap_or_else(|| t.to_string())
}

/// flock(2) without waiting; `exclusive` false takes a shared lock (a probe that never stops
/// another probe).
fn try_flock(f: &File, exclusive: bool) -> bool {
    let op = if exclusive { libc::LOCK_EX } else { libc::LOCK_SH };
    // SAFETY: flock on a valid open descriptor; no memory is shared.
    unsafe { libc::flock(f.as_raw_fd(), op | libc::LOCK_NB) == 0 }
}

fn io_err(path: &Path, err: std::io::Error) -> LockError {
    LockError::Io {
        path: path.display().to_string(),
        err,
    }
}

/// True when `path` (not followed) is the very file `f` is open on.
fn same_file(f: &File, path: &Path) -> bool {
    match (f.metadata(), std::fs::symlink_metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// Opens the lock at `path` for a look: None when there is none, `Foreign` for a non-regular file.
fn open_lock(path: &Path) -> Result<Option<File>, LockError> {
    match files::open_regular(path) {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => {
            let what = std::fs::symlink_metadata(path)
                .map(|m| files::describe(&m).to_string())
                .unwrap_or_else(|_| "not a regular file".into());
            Err(LockError::Foreign {
                path: path.display().to_string(),
                what,
            })
        }
        Err(e) => Err(io_err(path, e)),
    }
}

/// What an open lock file says about its job (None if unreadable or not ferry's JSON).
fn read_info(f: &mut File, path: &Path) -> Option<LockInfo> {
    let bytes = files::read_capped(f, path, 64 * 1024).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// How many times a changing lock is looked at again before giving up.
const RETRIES: usize = 50;

// The protocol that keeps one holder at a time:
// - a lock file appears at `path` only by link(2) of a new file its creator already holds the
//   flock of, and link fails when anything is at `path`;
// - a lock file leaves `path` only by unlink from a process holding its flock that has checked,
//   holding it, that the file at `path` is still the one it locked (`same_file`).
// So nobody can remove a lock that a live job holds, or a lock that replaced the stale one it
// inspected: the check and the unlink happen under a flock no one else can have.

/// Takes the lock at `path` for `action`.
pub fn acquire(path: &Path, action: &str) -> Result<Lock, LockError> {
    let info = LockInfo {
        pid: std::process::id(),
        action: action.to_string(),
        started: super::now_unix(),
        host: None,
    };
    let body = serde_json::to_vec(&info).expect("lock info serializes");
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    for _ in 0..RETRIES {
        // Write and flock a private file first, then link it into place: the lock file never
        // exists unlocked or half-written, so no reader mistakes a starting job for a dead one.
        let tmp = path.with_file_name(format!(".{name}.new.{}.{}", info.pid, files::random_hex()));
        let mut f = files::create_new(&tmp).map_err(|e| io_err(&tmp, e))?;
        let written = if try_flock(&f, true) {
            f.write_all(&body).and_then(|_| f.sync_all())
        } else {
            Err(std::io::Error::other("cannot flock a new file"))
        };
        let linked = written.and_then(|_| std::fs::hard_link(&tmp, path));
        let _ = std::fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                return Ok(Lock {
                    path: path.to_path_buf(),
                    file: f,
                    info,
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => match open_lock(path)? {
                None => continue, // released between our link and our look: try again
                Some(f) => match state_of(f, path) {
                    LockState::Running(i) => return Err(LockError::Running(i)),
                    LockState::Stale(i) => return Err(LockError::Stale(i)),
                    LockState::Free => continue,
                },
            },
            Err(e) => return Err(io_err(path, e)),
        }
    }
    Err(io_err(path, std::io::Error::other("the lock kept changing: try again")))
}

/// The state of an open lock file, probed with a shared flock (released when `f` closes).
fn state_of(mut f: File, path: &Path) -> LockState {
    let info = read_info(&mut f, path);
    if try_flock(&f, false) {
        // nobody holds it: a dead job's lock
        LockState::Stale(info)
    } else {
        LockState::Running(info.unwrap_or(LockInfo {
            pid: 0,
            action: "unknown".into(),
            started: 0,
            host: None,
        }))
    }
}

/// Reads the lock's state without taking it. Never blocks: something other than a regular file
/// at the lock's place (a planted FIFO) reads as a stale lock, which `acquire` and `unlock` name.
pub fn inspect(path: &Path) -> LockState {
    match open_lock(path) {
        Ok(None) => LockState::Free,
        Ok(Some(f)) => state_of(f, path),
        Err(_) => LockState::Stale(None),
    }
}

/// Removes a stale lock. Refuses while a live job holds it, and never removes a lock that
/// another process took after this one looked (see the protocol above).
pub fn unlock(path: &Path) -> Result<Option<LockInfo>, LockError> {
    for _ in 0..RETRIES {
        let Some(mut f) = open_lock(path)? else {
            return Ok(None);
        };
        // A probe (`inspect` elsewhere) holds a shared flock for an instant: wait that out; a
        // live job holds it for good.
        let mut held = try_flock(&f, true);
        for _ in 0..25 {
            if held {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
            held = try_flock(&f, true);
        }
        if !held {
            return match state_of(f, path) {
                LockState::Stale(_) | LockState::Free => continue,
                LockState::Running(i) => Err(LockError::Running(i)),
            };
        }
        // Ours now: nobody else can remove it. If it is no longer at `path`, someone removed it
        // before we locked it (and maybe another job's lock is there now): look again.
        if !same_file(&f, path) {
            continue;
        }
        let info = read_info(&mut f, path);
        std::fs::remove_file(path).map_err(|e| io_err(path, e))?;
        return Ok(info);
    }
    Err(io_err(path, std::io::Error::other("the lock kept changing: try again")))
}

impl Lock {
    /// Ends the job normally: the lock file goes, then the flock with the descriptor.
    pub fn release(self) {
        // only our own file: never one that replaced it
        if same_file(&self.file, &self.path) {
            let _ = std::fs::remove_file(&self.path);
        }
    }

    /// True while the file at the lock's path is still this lock.
    pub fn still_held(&self) -> bool {
        same_file(&self.file, &self.path)
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

    #[test]
    fn a_planted_fifo_is_named_and_never_blocks() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("lock");
        let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
        // a blocking open of a FIFO waits for a writer forever: each look runs on a thread with a deadline
        let (tx, rx) = std::sync::mpsc::channel();
        let p2 = p.clone();
        std::thread::spawn(move || {
            let st = inspect(&p2);
            let a = acquire(&p2, "update").err().map(|e| e.to_string());
            let u = unlock(&p2).err().map(|e| e.to_string());
            let _ = tx.send((st, a, u));
        });
        let (st, a, u) = rx
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("a FIFO as lock blocked the lock functions");
        assert_eq!(st, LockState::Stale(None));
        for msg in [a.unwrap(), u.unwrap()] {
            assert!(msg.contains("is a FIFO, not a lock file ferry wrote"), "{msg}");
        }
        assert!(
            p.exists(),
            "unlock must leave a foreign file for the operator to inspect"
        );
    }

    #[test]
    fn a_symlink_at_a_temp_name_is_never_followed() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        // the temp name the lock used to have (predictable: pid)
        std::os::unix::fs::symlink(&victim, dir.path().join(format!("lock.new.{}", std::process::id()))).unwrap();
        let p = dir.path().join("lock");
        acquire(&p, "update").unwrap().release();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        // a symlink as the lock itself is refused, and nothing is written through it
        std::os::unix::fs::symlink(&victim, &p).unwrap();
        let e = acquire(&p, "update").err().unwrap().to_string();
        assert!(e.contains("is a symlink"), "{e}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    }

    #[test]
    fn release_never_removes_a_lock_that_replaced_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("lock");
        let a = acquire(&p, "update").unwrap();
        // a broken process removes our file and another job takes the lock
        std::fs::remove_file(&p).unwrap();
        assert!(!a.still_held());
        let b = acquire(&p, "update").unwrap();
        a.release();
        assert!(b.still_held(), "releasing a lost lock removed the new holder's");
        b.release();
        assert_eq!(inspect(&p), LockState::Free);
    }
}
