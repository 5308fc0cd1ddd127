//! Reading a file whose name promises more than its type guarantees (a config, a key, known_hosts):
//! only a regular file is read, never past a size cap, and nothing can make the read hang.
//!
//! A FIFO would block the open or the read until someone writes, and a device can stream forever,
//! so the type is checked before opening (no side effects of opening a device) and again on the
//! open descriptor (the path may have been swapped in between), and the open is non-blocking so
//! even that race cannot hang on a FIFO. Symlinks are followed: an administrator's link to a
//! config is normal. (The state dir, where others could plant links, has its own rules.)

use std::io::Read;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// Why a file could not be read.
#[derive(Debug)]
pub enum FileError {
    Missing,
    /// A FIFO, device, socket or directory: what it is.
    NotRegular(&'static str),
    /// Larger than the cap (bytes).
    TooLarge(u64),
    Io(std::io::Error),
}

impl std::fmt::Display for FileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FileError::Missing => write!(f, "it does not exist"),
            FileError::NotRegular(what) => write!(f, "it is {what}, not a regular file"),
            FileError::TooLarge(cap) => write!(f, "it is larger than {} KiB", cap / 1024),
            FileError::Io(e) => write!(f, "{e}"),
        }
    }
}

/// What a file that is not a regular file is, for messages ("a FIFO").
pub fn kind(ft: &std::fs::FileType) -> &'static str {
    if ft.is_dir() {
        "a directory"
    } else if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_symlink() {
        "a symlink"
    } else if ft.is_file() {
        "a regular file"
    } else {
        "not a plain file"
    }
}

fn io(e: std::io::Error) -> FileError {
    if e.kind() == std::io::ErrorKind::NotFound {
        FileError::Missing
    } else {
        FileError::Io(e)
    }
}

/// Reads `path` whole if it is a regular file of at most `cap` bytes.
pub fn read_regular(path: &Path, cap: u64) -> Result<Vec<u8>, FileError> {
    let meta = std::fs::metadata(path).map_err(io)?;
    if !meta.file_type().is_file() {
        return Err(FileError::NotRegular(kind(&meta.file_type())));
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(io)?;
    let meta = file.metadata().map_err(FileError::Io)?;
    if !meta.file_type().is_file() {
        return Err(FileError::NotRegular(kind(&meta.file_type())));
    }
    if meta.len() > cap {
        return Err(FileError::TooLarge(cap));
    }
    let mut buf = Vec::with_capacity(meta.len() as usize);
    // the cap again while reading: the file may grow between the stat and the read
    file.take(cap + 1).read_to_end(&mut buf).map_err(FileError::Io)?;
    if buf.len() as u64 > cap {
        return Err(FileError::TooLarge(cap));
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_fifo_device_and_directory_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        assert!(matches!(read_regular(&fifo, 100), Err(FileError::NotRegular("a FIFO"))));
        assert!(matches!(
            read_regular(Path::new("/dev/zero"), 100),
            Err(FileError::NotRegular("a character device"))
        ));
        assert!(matches!(
            read_regular(dir.path(), 100),
            Err(FileError::NotRegular("a directory"))
        ));
        assert!(matches!(
            read_regular(&dir.path().join("nope"), 100),
            Err(FileError::Missing)
        ));
        // a link to a regular file is read
        let f = dir.path().join("f");
        std::fs::write(&f, "x").unwrap();
        std::os::unix::fs::symlink(&f, dir.path().join("link")).unwrap();
        assert_eq!(read_regular(&dir.path().join("link"), 100).unwrap(), b"x");
    }

    #[test]
    fn caps_the_size() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("f");
        std::fs::write(&f, vec![b'a'; 101]).unwrap();
        assert!(matches!(read_regular(&f, 100), Err(FileError::TooLarge(100))));
        assert_eq!(read_regular(&f, 101).unwrap().len(), 101);
    }
}
