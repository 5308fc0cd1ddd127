//! Reading the small files ssh needs (private keys, known_hosts) without hanging on a FIFO or
//! eating memory on /dev/zero: only regular files, and only up to a size cap.

use std::io::Read;
use std::path::Path;

/// Largest private key file read (an RSA 16384-bit key in OpenSSH format is about 13 KiB).
pub const KEY_FILE_CAP: u64 = 1024 * 1024;
/// Largest known_hosts file read (about 100,000 entries).
pub const KNOWN_HOSTS_CAP: u64 = 16 * 1024 * 1024;

/// Why a small file could not be read.
#[derive(Debug)]
pub enum FileError {
    Missing,
    /// A FIFO, device, socket or directory: what it is.
    NotRegular(&'static str),
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

/// What a non-regular file is, for the message.
fn kind_of(ft: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_fifo() {
        "a FIFO"
    } else if ft.is_char_device() {
        "a character device"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_socket() {
        "a socket"
    } else if ft.is_dir() {
        "a directory"
    } else {
        "not a plain file"
    }
}

/// Reads `path` whole if it is a regular file of at most `cap` bytes. Opened non-blocking, so a
/// FIFO with no writer does not hang the open; its type is checked on the open descriptor, so a
/// file swapped in after a check cannot slip through.
pub fn read_regular(path: &Path, cap: u64) -> Result<Vec<u8>, FileError> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(FileError::Missing),
        Err(e) => return Err(FileError::Io(e)),
    };
    let meta = file.metadata().map_err(FileError::Io)?;
    if !meta.file_type().is_file() {
        return Err(FileError::NotRegular(kind_of(&meta.file_type())));
    }
    if meta.len() > cap {
        return Err(FileError::TooLarge(cap));
    }
    let mut buf = Vec::with_capacity(meta.len() as usize);
    // The cap again while reading: the file may grow between the stat and the read.
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
