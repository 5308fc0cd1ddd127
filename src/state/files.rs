//! Careful file handling in the state dir: nothing planted there (a symlink, a FIFO, a file of
//! another user) can redirect a write, block a reader or eat its memory.
//!
//! Files are created with O_EXCL | O_NOFOLLOW under unpredictable temp names, opened for reading
//! with O_NOFOLLOW | O_NONBLOCK and refused unless regular, and read with a size cap.

use std::fs::{File, Metadata, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use anyhow::{bail, Context, Result};

/// Mode of the files ferry writes: readable by every process, so any user's `runstatus` sees a job.
pub const FILE_MODE: u32 = 0o644;
/// Mode of the dirs ferry creates.
pub const DIR_MODE: u32 = 0o755;
/// Most bytes a state file (lock, progress, last result) may hold; ferry's own are a few KiB.
pub const READ_CAP: u64 = 1 << 20;

/// 16 hex digits from the kernel's random source: temp names nobody can guess in advance.
pub fn random_hex() -> String {
    let mut buf = [0u8; 8];
    // SAFETY: getrandom writes at most buf.len() bytes into buf.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n != buf.len() as isize {
        // getrandom cannot fail for 8 bytes once the pool is ready; this is only a fallback
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        buf = ((t as u64) ^ ((std::process::id() as u64) << 32)).to_le_bytes();
    }
    hex::encode(buf)
}

/// What a file that is not a regular file is, for messages ("a FIFO").
pub fn describe(meta: &Metadata) -> &'static str {
    crate::safe_file::kind(&meta.file_type())
}

/// The error a non-regular state file gives: `ErrorKind::InvalidData` with what it is.
fn not_regular(path: &Path, what: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("{} is {what}, not a regular file: refusing it", path.display()),
    )
}

/// Creates a new file; fails if anything (a file, a symlink, a FIFO) is already at `path`.
pub fn create_new(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
}

/// Opens `path` with `opts` without following a symlink or blocking on a FIFO, and keeps it only
/// if what was opened is a regular file.
fn open_checked(opts: &mut OpenOptions, path: &Path) -> std::io::Result<File> {
    let f = opts
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            // O_NOFOLLOW on a symlink
            Some(libc::ELOOP) => not_regular(path, "a symlink"),
            _ => e,
        })?;
    let meta = f.metadata()?;
    if !meta.is_file() {
        return Err(not_regular(path, describe(&meta)));
    }
    Ok(f)
}

/// Opens an existing regular file for reading without following a symlink or blocking on a FIFO.
pub fn open_regular(path: &Path) -> std::io::Result<File> {
    open_checked(OpenOptions::new().read(true), path)
}

/// Reads at most `cap` bytes of an open file; more is an error, not a truncated read.
pub fn read_capped(f: &mut File, path: &Path, cap: u64) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    f.take(cap + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{} is larger than {cap} bytes: refusing it", path.display()),
        ));
    }
    Ok(bytes)
}

/// A small state file's bytes (None when absent); see `open_regular` and `READ_CAP`.
pub fn read_small(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut f = open_regular(path)?;
    read_capped(&mut f, path, READ_CAP)
}

/// Opens (creating if needed) a regular file for appending; refuses a symlink or a FIFO.
pub fn open_append(path: &Path) -> std::io::Result<File> {
    open_checked(OpenOptions::new().append(true).create(true).mode(FILE_MODE), path)
}

/// Writes a file atomically: a new temp file of unpredictable name next to it, then a rename, so
/// readers never see half of it and concurrent writers never share a temp file. `durable` also
/// syncs the file and its dir (for records a reader relies on after a crash).
pub fn write_atomic(path: &Path, bytes: &[u8], durable: bool) -> std::io::Result<()> {
    write_atomic_if(path, bytes, durable, || true).map(|_| ())
}

/// `write_atomic`, made only if `still` holds once the new content is on disk, just before the
/// rename (a writer that may have lost its right to write checks it there); gives whether it
/// replaced the file. The temp file is removed whenever the rename is not made.
pub fn write_atomic_if(
    path: &Path,
    bytes: &[u8],
    durable: bool,
    still: impl FnOnce() -> bool,
) -> std::io::Result<bool> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.{}.tmp", random_hex()));
    let written = (|| {
        let mut f = create_new(&tmp)?;
        f.write_all(bytes)?;
        if durable {
            f.sync_all()?;
        }
        if !still() {
            return Ok(false);
        }
        std::fs::rename(&tmp, path).map(|_| true)
    })();
    if !matches!(written, Ok(true)) {
        let _ = std::fs::remove_file(&tmp);
        return written;
    }
    if durable {
        sync_parent(path)?;
    }
    Ok(true)
}

/// Syncs the directory holding `path` (a rename or a create in it survives a crash).
pub fn sync_parent(path: &Path) -> std::io::Result<()> {
    match path.parent() {
        Some(d) if d.as_os_str().is_empty() => File::open(".")?.sync_all(),
        Some(d) => File::open(d)?.sync_all(),
        None => Ok(()),
    }
}

/// Writes a copy of `bytes` beside `path` under a new name `<name>.<what>.<random>` (never
/// over anything), for keeping evidence (a damaged journal); gives the copy's path.
pub fn write_copy(path: &Path, what: &str, bytes: &[u8]) -> std::io::Result<std::path::PathBuf> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let copy = path.with_file_name(format!("{name}.{what}.{}", random_hex()));
    let written = (|| {
        let mut f = create_new(&copy)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        sync_parent(&copy)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&copy);
        return Err(e);
    }
    Ok(copy)
}

/// Opens (creating if needed) a regular file for reading and appending; refuses a symlink or a
/// FIFO (a journal, replayed then appended to).
pub fn open_read_append(path: &Path) -> std::io::Result<File> {
    open_checked(
        OpenOptions::new().read(true).append(true).create(true).mode(FILE_MODE),
        path,
    )
}

/// What is wrong with a directory ferry would trust with its files, if anything: not a
/// directory, owned by someone other than this user or root, or writable by its group or every
/// user (another user could plant or swap files in it; a sticky bit does not make that safe for
/// ferry's fixed names, so it is refused too).
fn dir_problem(meta: &Metadata) -> Option<String> {
    if !meta.is_dir() {
        return Some(format!("is {}, not a directory", describe(meta)));
    }
    // SAFETY: geteuid has no failure mode and touches no memory.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me && meta.uid() != 0 {
        return Some(format!(
            "is owned by uid {}, not by this user (uid {me}) or root",
            meta.uid()
        ));
    }
    if meta.mode() & 0o002 != 0 {
        return Some(format!("is writable by every user (mode {:o})", meta.mode() & 0o7777));
    }
    if meta.mode() & 0o020 != 0 {
        return Some(format!("is writable by its group (mode {:o})", meta.mode() & 0o7777));
    }
    None
}

/// Refuses a state dir (or a pair's folder in it) that another user could plant files in:
/// owned by someone other than this user or root, or writable by its group or every user.
pub fn check_dir(path: &Path, meta: &Metadata) -> Result<()> {
    match dir_problem(meta) {
        Some(what) => bail!(
            "state dir {} {what}: refusing it (chown/chmod go-w it, or choose another with --state-dir)",
            path.display()
        ),
        None => Ok(()),
    }
}

/// Creates `dir` (with missing parents) if absent, then refuses it unless it is a real directory
/// (not a symlink) that only this user or root can write into: for directories named in the
/// config (a cluster's persist_path) or holding a journal. `what` names it in the error.
pub fn ensure_trusted_dir(dir: &Path, what: &str) -> std::io::Result<()> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    if std::fs::symlink_metadata(dir).is_err() {
        std::fs::DirBuilder::new().recursive(true).mode(DIR_MODE).create(dir)?;
    }
    let meta = std::fs::symlink_metadata(dir)?;
    let problem = if meta.file_type().is_symlink() {
        Some("is a symlink".to_string())
    } else {
        dir_problem(&meta)
    };
    match problem {
        Some(p) => Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "{what} {} {p}: refusing it (another user could plant files there)",
                dir.display()
            ),
        )),
        None => Ok(()),
    }
}

/// Creates `path` (and missing parents) as a directory with `DIR_MODE`.
pub fn create_dirs(path: &Path) -> Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(path)
        .with_context(|| format!("creating state dir {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mkfifo(p: &Path) {
        let c = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    }

    #[test]
    fn random_names_differ() {
        let a: std::collections::HashSet<String> = (0..1000).map(|_| random_hex()).collect();
        assert_eq!(a.len(), 1000);
    }

    #[test]
    fn readers_refuse_a_fifo_and_a_symlink_without_blocking() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("fifo");
        mkfifo(&fifo);
        let e = read_small(&fifo).unwrap_err();
        assert!(e.to_string().contains("is a FIFO, not a regular file"), "{e}");
        let e = open_append(&fifo).unwrap_err();
        // with no reader the kernel refuses the non-blocking open itself (ENXIO); either way no hang
        assert!(
            e.raw_os_error() == Some(libc::ENXIO) || e.to_string().contains("a FIFO"),
            "{e}"
        );
        let target = d.path().join("target");
        std::fs::write(&target, "secret").unwrap();
        let link = d.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(read_small(&link).unwrap_err().to_string().contains("is a symlink"));
        assert!(open_append(&link).unwrap_err().to_string().contains("is a symlink"));
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "secret");
    }

    #[test]
    fn big_files_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("big");
        std::fs::write(&p, vec![b'x'; 100]).unwrap();
        let mut f = open_regular(&p).unwrap();
        assert!(read_capped(&mut f, &p, 99)
            .unwrap_err()
            .to_string()
            .contains("larger than 99 bytes"));
        let mut f = open_regular(&p).unwrap();
        assert_eq!(read_capped(&mut f, &p, 100).unwrap().len(), 100);
    }

    #[test]
    fn write_atomic_replaces_a_planted_symlink_instead_of_following_it() {
        let d = tempfile::tempdir().unwrap();
        let target = d.path().join("target");
        std::fs::write(&target, "secret").unwrap();
        let p = d.path().join("progress.json");
        std::os::unix::fs::symlink(&target, &p).unwrap();
        write_atomic(&p, b"{}", false).unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "secret");
        assert_eq!(std::fs::read(&p).unwrap(), b"{}");
        assert_eq!(std::fs::metadata(&p).unwrap().permissions().mode() & 0o777, FILE_MODE);
        // no temp file left behind
        let left: Vec<_> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left.len(), 2, "{left:?}");
    }

    #[test]
    fn dirs_of_other_users_or_world_writable_are_refused() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("state");
        create_dirs(&p).unwrap();
        check_dir(&p, &std::fs::metadata(&p).unwrap()).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = check_dir(&p, &std::fs::metadata(&p).unwrap()).unwrap_err().to_string();
        assert!(
            e.contains(&p.display().to_string()) && e.contains("writable by every user (mode 777)"),
            "{e}"
        );
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        // SAFETY: geteuid has no failure mode.
        if unsafe { libc::geteuid() } == 0 {
            std::os::unix::fs::chown(&p, Some(65534), None).unwrap();
            let e = check_dir(&p, &std::fs::metadata(&p).unwrap()).unwrap_err().to_string();
            assert!(e.contains("owned by uid 65534"), "{e}");
        }
    }
}
